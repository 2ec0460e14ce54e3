/*
 * retention: when govrelayd deletes quarantined messages kept longer than
 * quarantine_lifetime (relay/retention.h). A one-shot libuv timer looks
 * every RETENTION_LOOK_MS, or sooner for a short lifetime, so a message
 * goes at most a few percent of its lifetime late; each look is one
 * operation of the LMDB writer (queue_quarantine_expire in the writer's
 * batch transaction, so the deletes and their audit records are as
 * durable as any other write, and nothing else writes while it reads).
 * A look deletes at most RETENTION_BATCH messages; when more are due the
 * next look follows at once, so a large backlog never holds the writer
 * (and every 250 waiting on it) for long.
 *
 * Entry points: retention_start, retention_set_lifetime, retention_stop.
 * OWNERSHIP: the object owns its timer and its pass; it frees itself
 * once stopped, its timer closed and no pass in flight.
 * THREADS: loop thread, but retention_apply, which runs on the writer
 * thread and touches only the pass.
 * ERRORS: a failed pass is logged and tried again at the next look.
 */
#include "config.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/quarantine.h"
#include "relay/retention.h"

#define RETENTION_LOOK_MS 60000
#define RETENTION_LOOK_MIN_MS 250
#define RETENTION_BATCH 256

struct retention_pass {
	int64_t now;
	uint64_t lifetime_ms;
	size_t expired;
	bool more;
};

struct retention {
	struct queue_writer *writer;
	uint64_t lifetime_ms;
	uv_timer_t timer;
	struct retention_pass pass;
	bool in_flight;
	bool stopping;
	bool timer_closed;
};

static void retention_maybe_free(struct retention *r)
{
	if (r->stopping && r->timer_closed && !r->in_flight)
		free(r);
}

/* Until the next look: a minute, a quarter of a short lifetime. */
static uint64_t retention_interval(const struct retention *r)
{
	uint64_t ms = r->lifetime_ms / 4;

	if (ms == 0 || ms > RETENTION_LOOK_MS)
		ms = RETENTION_LOOK_MS;
	return ms < RETENTION_LOOK_MIN_MS ? RETENTION_LOOK_MIN_MS : ms;
}

/* Writer thread: only r->pass, which the loop leaves alone while in flight. */
static int retention_apply(struct queue_txn *txn, void *arg)
{
	struct retention *r = arg;
	struct retention_pass *p = &r->pass;

	return queue_quarantine_expire(txn, p->now, p->lifetime_ms, RETENTION_BATCH, &p->expired,
	    &p->more);
}

static void retention_look(uv_timer_t *t);

static void retention_arm(struct retention *r, uint64_t ms)
{
	uv_timer_start(&r->timer, retention_look, ms, 0);
}

static void retention_done(void *arg, int status)
{
	struct retention *r = arg;

	r->in_flight = false;
	if (status < 0)
		log_err(NULL, "quarantine retention: %s; tried again at the next look",
		    queue_strerror(status));
	else if (r->pass.expired > 0)
		log_info(NULL, "quarantine retention: deleted %zu message%s kept %" PRIu64
		    " s or longer", r->pass.expired, r->pass.expired == 1 ? "" : "s",
		    r->pass.lifetime_ms / 1000);
	if (r->stopping) {
		retention_maybe_free(r);
		return;
	}
	retention_arm(r, status == 0 && r->pass.more ? 0 : retention_interval(r));
}

static void retention_look(uv_timer_t *t)
{
	struct retention *r = t->data;

	if (r->in_flight || r->stopping)
		return;
	if (r->lifetime_ms == 0) {
		retention_arm(r, retention_interval(r));
		return;
	}
	r->pass = (struct retention_pass){ time_now_ms(), r->lifetime_ms, 0, false };
	r->in_flight = true;
	queue_writer_submit(r->writer, retention_apply, retention_done, r);
}

struct retention *retention_start(uv_loop_t *loop, struct queue_writer *writer,
    uint64_t lifetime_ms)
{
	struct retention *r = xcalloc(1, sizeof *r);

	r->writer = writer;
	r->lifetime_ms = lifetime_ms;
	uv_timer_init(loop, &r->timer);
	r->timer.data = r;
	/* The first look soon after start-up: a daemon that was down owes some. */
	retention_arm(r, RETENTION_LOOK_MIN_MS);
	/* The timer alone must not keep the loop running at shutdown. */
	uv_unref((uv_handle_t *)&r->timer);
	return r;
}

void retention_set_lifetime(struct retention *r, uint64_t lifetime_ms)
{
	if (r == NULL || r->stopping || r->lifetime_ms == lifetime_ms)
		return;
	r->lifetime_ms = lifetime_ms;
	/* A shorter lifetime is looked at on its own schedule, not the old one's. */
	if (!r->in_flight)
		retention_arm(r, RETENTION_LOOK_MIN_MS);
}

static void retention_timer_closed(uv_handle_t *h)
{
	struct retention *r = h->data;

	r->timer_closed = true;
	retention_maybe_free(r);
}

void retention_stop(struct retention *r)
{
	if (r == NULL || r->stopping)
		return;
	r->stopping = true;
	uv_timer_stop(&r->timer);
	uv_close((uv_handle_t *)&r->timer, retention_timer_closed);
}
