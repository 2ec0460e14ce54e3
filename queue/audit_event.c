/*
 * audit_event: the one place that names audit events and decides their
 * fields (STYLE.md: no caller assembles an audit event by hand). Each
 * builder turns typed facts into the field list of its event and appends
 * the record in the caller's write transaction.
 *
 * Entry points: queue_audit_event_name, queue_delivery_status_name,
 * queue_audit_received, queue_audit_received_report, queue_audit_refused,
 * queue_audit_delivery, queue_audit_auth, queue_audit_admin,
 * queue_audit_quarantined.
 * OWNERSHIP: every argument is borrowed for the call.
 * THREADS: any thread that owns the write txn (in govrelayd: the writer).
 * ERRORS: those of queue_audit_append; -EINVAL for an unknown status.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/audit_event.h"
#include "queue/quarantine.h"

static const char *const queue_audit_event_names[QUEUE_AUDIT_EVENT_COUNT] = {
	[QUEUE_AUDIT_RECEIVED] = "received",
	[QUEUE_AUDIT_REJECTED] = "rejected",
	[QUEUE_AUDIT_TEMPFAILED] = "tempfailed",
	[QUEUE_AUDIT_DELIVERED] = "delivered",
	[QUEUE_AUDIT_DEFERRED] = "deferred",
	[QUEUE_AUDIT_FAILED] = "failed",
	[QUEUE_AUDIT_AUTH] = "auth",
	[QUEUE_AUDIT_ADMIN] = "admin",
	[QUEUE_AUDIT_CLASSIFIED] = "classified",
	[QUEUE_AUDIT_QUARANTINED] = "quarantined",
};

const char *queue_audit_event_name(enum queue_audit_event ev)
{
	if ((unsigned)ev >= QUEUE_AUDIT_EVENT_COUNT)
		return "unknown";
	return queue_audit_event_names[ev];
}

const char *queue_delivery_status_name(enum queue_delivery_status st)
{
	switch (st) {
	case QUEUE_DELIVERY_SENT: return "sent";
	case QUEUE_DELIVERY_DEFERRED: return "deferred";
	case QUEUE_DELIVERY_BOUNCED: return "bounced";
	case QUEUE_DELIVERY_EXPIRED: return "expired";
	}
	return "unknown";
}

/* A field list that leaves out NULL values, as every event here does. */
struct queue_audit_fields {
	struct queue_audit_field *f;
	size_t n, max;
};

static void queue_audit_put(struct queue_audit_fields *fs, const char *key, const char *value)
{
	if (value == NULL || fs->n >= fs->max)
		return;
	fs->f[fs->n++] = (struct queue_audit_field){ key, value };
}

static int queue_audit_emit(struct queue_txn *txn, int64_t time_ms, const char *qid,
    enum queue_audit_event ev, const struct queue_audit_fields *fs)
{
	return queue_audit_append(txn, time_ms, qid ? qid : "", queue_audit_event_name(ev),
	    fs->f, fs->n);
}

/* Room for received's fields before its recipients (9 today, and spare). */
#define QUEUE_AUDIT_RECEIVED_HEAD 16

int queue_audit_received(struct queue_txn *txn, const struct queue_msg *msg,
    const char *tenants, const char *auth)
{
	/*
	 * Every final recipient is in the record: an audit trail that drops
	 * some cannot answer "who got this message?". The count is bounded
	 * upstream (the expansion bound), so the record is too.
	 */
	struct queue_audit_fields fs = {
		xcalloc(QUEUE_AUDIT_RECEIVED_HEAD + msg->nrcpts, sizeof *fs.f), 0,
		QUEUE_AUDIT_RECEIVED_HEAD + msg->nrcpts };
	char qid[QUEUE_ID_TEXT_LEN + 1], size[24], nrcpt[24];
	int rc;

	queue_id_format(msg->id, qid);
	snprintf(size, sizeof size, "%" PRIu64, msg->size);
	snprintf(nrcpt, sizeof nrcpt, "%zu", msg->nrcpts);
	queue_audit_put(&fs, "from", msg->sender);
	queue_audit_put(&fs, "size", size);
	queue_audit_put(&fs, "nrcpt", nrcpt);
	queue_audit_put(&fs, "client", msg->client_addr);
	queue_audit_put(&fs, "helo", msg->helo);
	queue_audit_put(&fs, "listener", msg->listener);
	queue_audit_put(&fs, "user", msg->auth_user);
	queue_audit_put(&fs, "tenant", tenants);
	queue_audit_put(&fs, "tls", msg->tls);
	queue_audit_put(&fs, "auth", auth);
	if (msg->held)
		queue_audit_put(&fs, "held", msg->hold_reason ? msg->hold_reason : "yes");
	for (size_t i = 0; i < msg->nrcpts; i++)
		queue_audit_put(&fs, "to", msg->rcpts[i].addr);
	rc = queue_audit_emit(txn, msg->arrival, qid, QUEUE_AUDIT_RECEIVED, &fs);
	free(fs.f);
	return rc;
}

int queue_audit_received_report(struct queue_txn *txn, int64_t time_ms,
    uint64_t report_id, const char *to, const char *kind, const char *about)
{
	struct queue_audit_field f[4];
	struct queue_audit_fields fs = { f, 0, 4 };
	char qid[QUEUE_ID_TEXT_LEN + 1];

	queue_id_format(report_id, qid);
	queue_audit_put(&fs, "from", "");  /* RFC 3461 section 6.2: the null sender */
	queue_audit_put(&fs, "to", to);
	queue_audit_put(&fs, "kind", kind);
	queue_audit_put(&fs, "about", about);
	return queue_audit_emit(txn, time_ms, qid, QUEUE_AUDIT_RECEIVED, &fs);
}

int queue_audit_refused(struct queue_txn *txn, int64_t time_ms,
    const struct queue_audit_refusal *r)
{
	struct queue_audit_fields fs = { xcalloc(10 + r->nrcpts, sizeof *fs.f), 0,
		10 + r->nrcpts };
	char code[64];
	enum queue_audit_event ev = r->tempfail ? QUEUE_AUDIT_TEMPFAILED : QUEUE_AUDIT_REJECTED;
	int rc;

	if (r->classified)
		ev = QUEUE_AUDIT_CLASSIFIED;
	snprintf(code, sizeof code, "%d %s", r->code, r->enh ? r->enh : "");
	queue_audit_put(&fs, "stage", r->stage);
	queue_audit_put(&fs, "rule", r->rule ? r->rule : "-");
	queue_audit_put(&fs, "code", code);
	queue_audit_put(&fs, "reason", r->reason);
	queue_audit_put(&fs, "client", r->client);
	queue_audit_put(&fs, "helo", r->helo);
	queue_audit_put(&fs, "from", r->from);
	queue_audit_put(&fs, "to", r->to);
	queue_audit_put(&fs, "sess", r->sess);
	queue_audit_put(&fs, "auth", r->auth);
	for (size_t i = 0; i < r->nrcpts; i++)
		queue_audit_put(&fs, "to", r->rcpts[i]);
	rc = queue_audit_emit(txn, time_ms, r->qid, ev, &fs);
	free(fs.f);
	return rc;
}

int queue_audit_delivery(struct queue_txn *txn, int64_t time_ms,
    const struct queue_audit_delivery *d)
{
	struct queue_audit_field f[7];
	struct queue_audit_fields fs = { f, 0, 7 };
	char attempts[16], delay[32], reply[QUEUE_AUDIT_REPLY_MAX + 1];
	int64_t age = d->delay_ms < 0 ? 0 : d->delay_ms;
	enum queue_audit_event ev;

	switch (d->status) {
	case QUEUE_DELIVERY_SENT: ev = QUEUE_AUDIT_DELIVERED; break;
	case QUEUE_DELIVERY_DEFERRED: ev = QUEUE_AUDIT_DEFERRED; break;
	case QUEUE_DELIVERY_BOUNCED:
	case QUEUE_DELIVERY_EXPIRED: ev = QUEUE_AUDIT_FAILED; break;
	default: return -EINVAL;
	}
	snprintf(attempts, sizeof attempts, "%" PRIu32, d->attempts);
	snprintf(delay, sizeof delay, "%" PRId64 ".%02d", age / 1000, (int)(age % 1000) / 10);
	str_copy(reply, d->reply ? d->reply : "", sizeof reply);
	queue_audit_put(&fs, "to", d->to);
	queue_audit_put(&fs, "relay", d->relay);
	queue_audit_put(&fs, "dsn", d->dsn);
	queue_audit_put(&fs, "status", queue_delivery_status_name(d->status));
	queue_audit_put(&fs, "reply", reply);
	queue_audit_put(&fs, "attempts", attempts);
	queue_audit_put(&fs, "delay", delay);
	return queue_audit_emit(txn, time_ms, d->qid, ev, &fs);
}

int queue_audit_auth(struct queue_txn *txn, int64_t time_ms, const struct queue_audit_auth *a)
{
	struct queue_audit_field f[7];
	struct queue_audit_fields fs = { f, 0, 7 };
	char failures[16];

	snprintf(failures, sizeof failures, "%u", a->failures);
	queue_audit_put(&fs, "user", a->user);
	queue_audit_put(&fs, "client", a->client);
	queue_audit_put(&fs, "listener", a->listener);
	queue_audit_put(&fs, "result", a->result);
	queue_audit_put(&fs, "failures", a->has_failures ? failures : NULL);
	queue_audit_put(&fs, "lockout", a->lockout ? "yes" : NULL);
	queue_audit_put(&fs, "tenant", a->tenant);
	return queue_audit_emit(txn, time_ms, "", QUEUE_AUDIT_AUTH, &fs);
}

int queue_audit_quarantined(struct queue_txn *txn, const struct queue_quarantine *q)
{
	const struct queue_msg *m = q->msg;
	/* Every final recipient, as in `received`: bounded by the expansion bound. */
	struct queue_audit_fields fs = { xcalloc(5 + m->nrcpts, sizeof *fs.f), 0, 5 + m->nrcpts };
	char qid[QUEUE_ID_TEXT_LEN + 1], nrcpt[24];
	int rc;

	queue_id_format(q->id, qid);
	snprintf(nrcpt, sizeof nrcpt, "%zu", m->nrcpts);
	queue_audit_put(&fs, "rule", q->rule);
	queue_audit_put(&fs, "reason", q->reason);
	queue_audit_put(&fs, "from", m->sender);
	queue_audit_put(&fs, "tenant", q->tenants);
	queue_audit_put(&fs, "nrcpt", nrcpt);
	for (size_t i = 0; i < m->nrcpts; i++)
		queue_audit_put(&fs, "to", m->rcpts[i].addr);
	rc = queue_audit_emit(txn, q->time, qid, QUEUE_AUDIT_QUARANTINED, &fs);
	free(fs.f);
	return rc;
}

int queue_audit_admin(struct queue_txn *txn, int64_t time_ms, const char *qid,
    const char *action, const char *by, const char *via,
    const struct queue_audit_field *extra, size_t nextra)
{
	struct queue_audit_fields fs = { xcalloc(nextra + 3, sizeof *fs.f), 0, nextra + 3 };
	int rc;

	queue_audit_put(&fs, "action", action);
	queue_audit_put(&fs, "by", by);
	queue_audit_put(&fs, "via", via);
	for (size_t i = 0; i < nextra; i++)
		queue_audit_put(&fs, extra[i].key, extra[i].value);
	rc = queue_audit_emit(txn, time_ms, qid, QUEUE_AUDIT_ADMIN, &fs);
	free(fs.f);
	return rc;
}
