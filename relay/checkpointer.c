/*
 * checkpointer: when govrelayd writes a signed audit checkpoint. A libuv
 * timer ticks every CHECKPOINTER_TICK_MS; each tick reads the chain's
 * head (one mdb_get in a read transaction: microseconds, fine on the
 * loop) and, when a checkpoint is due (queue/audit_checkpoint.h: the
 * head moved, and audit_checkpoint_records records or
 * audit_checkpoint_interval passed since the last one), hands the
 * writing to the thread pool.
 *
 * Why the pool and not the loop or the LMDB writer: signing is about 50
 * microseconds and would be harmless anywhere, but the append is followed
 * by an fsync of the checkpoint file, which can take milliseconds on a
 * busy disk. On the loop that would stall every session; on the writer
 * it would delay the group commit and so every 250. On the pool it
 * delays nobody; one checkpoint at a time is in flight.
 *
 * Entry points: checkpointer_start, checkpointer_stop.
 * OWNERSHIP: the checkpointer owns its timer; the signer it creates is
 * handed to audit_ckpt_daemon_set and lives as long as the process (an
 * `audit checkpoint` run on the pool may still be using it while the
 * daemon stops, so it is never freed under it).
 * THREADS: loop thread, but checkpointer_work (thread pool), which
 * touches only the signer (which has its own mutex) and the store.
 * ERRORS: checkpointer_start returns -errno with a sentence; a failed
 * checkpoint later is logged (audit_ckpt_write) and tried again at the
 * next tick, never fatal.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/checkpoint.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/audit_checkpoint.h"
#include "queue/audit_query.h"
#include "relay/checkpointer.h"

/* How often the head is looked at: the bound on how late a due checkpoint is. */
#define CHECKPOINTER_TICK_MS 1000

struct checkpointer {
	uv_loop_t *loop;
	struct queue_store *store;
	struct audit_ckpt *signer;
	uint64_t every_records;
	uint64_t every_ms;
	uv_timer_t timer;
	uv_work_t work;
	bool in_flight;
	bool started;
	bool stopping;
	bool timer_closed;
};

static void checkpointer_maybe_free(struct checkpointer *c)
{
	if (c->stopping && c->timer_closed && !c->in_flight)
		free(c);
}

/* Thread pool: the signer serializes with `audit checkpoint` runs. */
static void checkpointer_work(uv_work_t *w)
{
	struct checkpointer *c = w->data;
	struct audit_ckpt_res res;
	char why[256];

	/* Errors are logged by audit_ckpt_write; the next tick tries again. */
	(void)audit_ckpt_write(c->signer, c->store, false, &res, why, sizeof why);
	/*
	 * Signing left OpenSSL per-thread state (its error queue) on this pool
	 * thread; pool threads are never joined, so free it now (control.c
	 * does the same after a command).
	 */
	OPENSSL_thread_stop();
}

static void checkpointer_after(uv_work_t *w, int status)
{
	struct checkpointer *c = w->data;

	(void)status;
	c->in_flight = false;
	checkpointer_maybe_free(c);
}

static void checkpointer_tick(uv_timer_t *t)
{
	struct checkpointer *c = t->data;
	uint8_t hash[CKPT_HASH_LEN];
	struct queue_txn *txn;
	uint64_t seq = 0;
	int rc;

	if (c->in_flight || c->stopping)
		return;
	if (queue_txn_begin(c->store, false, &txn) < 0)
		return;
	rc = audit_head(txn, &seq, hash);
	queue_txn_abort(txn);
	if (rc < 0 || !audit_ckpt_is_due(c->signer, seq, hash, time_now_ms(), c->every_records,
	    c->every_ms))
		return;
	c->work.data = c;
	if (uv_queue_work(c->loop, &c->work, checkpointer_work, checkpointer_after) == 0)
		c->in_flight = true;
}

static void checkpointer_timer_closed(uv_handle_t *h)
{
	struct checkpointer *c = h->data;

	c->timer_closed = true;
	checkpointer_maybe_free(c);
}

/* At start-up: does the chain still end where the file's last checkpoint said? */
static void checkpointer_check_start(struct checkpointer *c)
{
	struct audit_ckpt_res res;
	char why[256];

	if (audit_ckpt_check(c->signer, c->store, &res, why, sizeof why) < 0)
		log_err(NULL, "audit checkpoints: %s", why);
	else if (res.mismatch)
		log_err(NULL, "audit chain does not match the last checkpoint in %s: %s "
		    "(govrelayctl audit verify --checkpoints %s tells more)",
		    audit_ckpt_file(c->signer), res.mismatch_what, audit_ckpt_file(c->signer));
}

int checkpointer_open(const struct config *cfg, struct checkpointer **out, char *err,
    size_t errlen)
{
	struct checkpointer *c;
	struct ckpt_key *key;
	struct audit_ckpt *signer;
	char why[512];
	int rc;

	*out = NULL;
	if (cfg->audit_signing_key == NULL || cfg->audit_checkpoint_file == NULL)
		return 0;
	rc = ckpt_key_load_private(cfg->audit_signing_key, &key, why, sizeof why);
	if (rc < 0) {
		snprintf(err, errlen, "audit_signing_key: %s", why);
		return rc;
	}
	if ((rc = audit_ckpt_new(key, cfg->audit_checkpoint_file, &signer, why, sizeof why)) < 0) {
		snprintf(err, errlen, "%s", why);
		return rc;
	}
	c = xcalloc(1, sizeof *c);
	c->signer = signer;
	c->every_records = cfg->audit_checkpoint_records;
	c->every_ms = cfg->audit_checkpoint_interval;
	log_info(NULL, "audit checkpoints: key %s, file %s, every %" PRIu64 " records or %"
	    PRIu64 " s", ckpt_key_id(key), cfg->audit_checkpoint_file, c->every_records,
	    c->every_ms / 1000);
	*out = c;
	return 0;
}

void checkpointer_start(struct checkpointer *c, uv_loop_t *loop, struct queue_store *store)
{
	if (c == NULL)
		return;
	c->loop = loop;
	c->store = store;
	audit_ckpt_daemon_set(c->signer);
	checkpointer_check_start(c);
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	uv_timer_start(&c->timer, checkpointer_tick, CHECKPOINTER_TICK_MS, CHECKPOINTER_TICK_MS);
	/* The timer alone must not keep the loop running at shutdown. */
	uv_unref((uv_handle_t *)&c->timer);
	c->started = true;
}

void checkpointer_stop(struct checkpointer *c)
{
	if (c == NULL || c->stopping || !c->started)
		return;
	c->stopping = true;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, checkpointer_timer_closed);
}
