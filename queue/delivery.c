/*
 * queue/delivery: records what one delivery pass did to a message, in one
 * write transaction: recipient states, backoff and expiry, an audit
 * record per recipient (queue_audit_delivery), the RFC 3464 reports the
 * results call for, and the schedule entry (or the message's deletion
 * once nothing pends). The reports' words are the relay's (relay/dsn.c,
 * through the queue_report_fn the caller passes); storing them is
 * queue_receive_apply's, the path every message takes into the queue.
 *
 * Entry points: queue_delivery_apply, queue_delivery_backoff,
 * queue_dsn_wanted, queue_dsn_kind_name.
 * OWNERSHIP: the request is borrowed; the outcome's record array is the
 * caller's and is written in place.
 * THREADS: any thread that owns the write txn (govrelayd: the writer).
 * ERRORS: the store's negative errno, or the report callback's.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/audit_event.h"
#include "queue/delivery.h"

const char *queue_dsn_kind_name(enum queue_dsn_kind kind)
{
	switch (kind) {
	case QUEUE_DSN_FAILURE: return "failure";
	case QUEUE_DSN_DELAY: return "delay";
	case QUEUE_DSN_SUCCESS: return "success";
	}
	return "unknown";
}

bool queue_dsn_wanted(const struct queue_msg *msg, const struct queue_rcpt *r,
    enum queue_dsn_kind kind)
{
	/* RFC 5321 section 4.5.5: nothing ever goes back to the null sender. */
	if (msg == NULL || r == NULL || msg->sender == NULL || msg->sender[0] == '\0')
		return false;
	if (r->notify & QUEUE_NOTIFY_NEVER)
		return false;
	/*
	 * RFC 3461 section 4.1: without NOTIFY, behave as NOTIFY=FAILURE or
	 * NOTIFY=FAILURE,DELAY; we warn of delays, as Postfix and sendmail do.
	 */
	if (r->notify == 0)
		return kind == QUEUE_DSN_FAILURE || kind == QUEUE_DSN_DELAY;
	switch (kind) {
	case QUEUE_DSN_FAILURE: return (r->notify & QUEUE_NOTIFY_FAILURE) != 0;
	case QUEUE_DSN_DELAY: return (r->notify & QUEUE_NOTIFY_DELAY) != 0;
	case QUEUE_DSN_SUCCESS: return (r->notify & QUEUE_NOTIFY_SUCCESS) != 0;
	}
	return false;
}

static uint64_t queue_delivery_scale(const struct queue_delivery_result *req)
{
	return req->time_scale ? req->time_scale : 1;
}

/*
 * Never 0, so a deferred recipient cannot be retried in a tight loop;
 * divided by time_scale (a test aid) after the doubling, as configured.
 */
int64_t queue_delivery_backoff(const struct queue_delivery_result *req, uint32_t attempts)
{
	uint64_t min = req->minimal_backoff_time, max = req->maximal_backoff_time;
	uint64_t b = min;

	if (max < min)
		max = min;
	for (uint32_t i = 1; i < attempts && b < max; i++)
		b = b > max / 2 ? max : b * 2;
	if (b > max)
		b = max;
	b /= queue_delivery_scale(req);
	return b > 0 ? (int64_t)b : 1;
}

/* Finds the stored recipient a result belongs to. */
static struct queue_rcpt *queue_delivery_match(struct queue_msg *m, size_t idx, const char *addr)
{
	if (idx < m->nrcpts && strcmp(m->rcpts[idx].addr, addr) == 0)
		return &m->rcpts[idx];
	/* The list changed meanwhile: match by address, pending first. */
	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state == QUEUE_RCPT_PENDING && strcmp(m->rcpts[i].addr, addr) == 0)
			return &m->rcpts[i];
	return NULL;
}

/* The new state of stored recipient q after attempt a; rec says what it was. */
static void queue_delivery_decide(const struct queue_delivery_result *req,
    const struct queue_msg *m, const struct queue_delivery_attempt *a,
    struct queue_rcpt *q, struct queue_delivery_record *rec)
{
	int64_t lifetime = (int64_t)(req->max_queue_lifetime / queue_delivery_scale(req));

	if (q->attempts < UINT32_MAX)
		q->attempts++;
	q->last_code = a->code;
	str_copy(rec->dsn, a->dsn ? a->dsn : "", sizeof rec->dsn);
	str_copy(rec->reply, a->reply ? a->reply : "", sizeof rec->reply);
	if (a->outcome == QUEUE_OUTCOME_OK) {
		q->state = QUEUE_RCPT_DELIVERED;
		q->done_at = req->now;
		rec->status = QUEUE_DELIVERY_SENT;
	} else if (a->outcome == QUEUE_OUTCOME_PERM) {
		q->state = QUEUE_RCPT_FAILED;
		q->done_at = req->now;
		rec->status = QUEUE_DELIVERY_BOUNCED;
	} else if (req->now - m->arrival >= lifetime) {
		/* RFC 3463 4.4.7: the verdict is final now; the failure DSN says why. */
		char text[QUEUE_DELIVERY_TEXT_MAX];
		struct buf b;

		buf_init(&b);
		buf_printf(&b, "4.4.7 message expired; last error: %s", a->reply ? a->reply : "");
		str_copy(text, buf_cstr(&b), sizeof text);
		buf_free(&b);
		str_copy(rec->reply, text, sizeof rec->reply);
		str_copy(rec->dsn, "4.4.7", sizeof rec->dsn);
		q->state = QUEUE_RCPT_FAILED;
		q->done_at = req->now;
		rec->status = QUEUE_DELIVERY_EXPIRED;
	} else {
		q->next_attempt = req->now + queue_delivery_backoff(req, q->attempts);
		rec->status = QUEUE_DELIVERY_DEFERRED;
	}
	free(q->last_reply);
	q->last_reply = xstrdup(rec->reply);
	rec->state = q->state;
	rec->attempts = q->attempts;
}

/* Every attempt with a verdict, into m and the audit chain. */
static int queue_delivery_record_all(struct queue_txn *txn,
    const struct queue_delivery_result *req, struct queue_msg *m,
    struct queue_delivery_outcome *out, bool *failed_now, size_t *nfailed)
{
	for (size_t i = 0; i < req->n; i++) {
		const struct queue_delivery_attempt *a = &req->rcpts[i];
		struct queue_delivery_record *rec = &out->rcpts[i];
		struct queue_audit_delivery ad;
		char qid[QUEUE_ID_TEXT_LEN + 1];
		struct queue_rcpt *q;
		int rc;

		rec->applied = false;
		if (a->outcome == QUEUE_OUTCOME_NONE)
			continue; /* aborted before a verdict: leave it as it is */
		q = queue_delivery_match(m, a->idx, a->addr);
		if (q == NULL || q->state != QUEUE_RCPT_PENDING)
			continue; /* changed by an administrator meanwhile */
		queue_delivery_decide(req, m, a, q, rec);
		if (q->state == QUEUE_RCPT_FAILED && queue_dsn_wanted(m, q, QUEUE_DSN_FAILURE)) {
			failed_now[q - m->rcpts] = true;
			(*nfailed)++;
		}
		ad = (struct queue_audit_delivery){ .to = a->addr, .relay = a->relay,
			.dsn = rec->dsn, .status = rec->status, .reply = rec->reply,
			.attempts = q->attempts, .delay_ms = req->now - m->arrival };
		queue_id_format(m->id, qid);
		ad.qid = qid;
		if ((rc = queue_audit_delivery(txn, req->now, &ad)) < 0)
			return rc;
		rec->applied = true;
	}
	return 0;
}

/*
 * One report about m's recipients marked in want, queued as a message of
 * its own in this transaction: the report and what it reports commit
 * together or not at all.
 */
static int queue_delivery_report(struct queue_txn *txn, const struct queue_delivery_result *req,
    const struct queue_msg *m, const bool *want, enum queue_dsn_kind kind, uint64_t id)
{
	struct queue_receive rr;
	struct queue_receive_result res;
	int rc;

	memset(&rr, 0, sizeof rr);
	buf_init(&rr.body);
	rc = req->report(req->report_arg, txn, m, want, kind, id, req->now, &rr);
	if (rc == 0) {
		rr.report_kind = queue_dsn_kind_name(kind);
		queue_id_format(m->id, rr.report_about);
		rc = queue_receive_apply(txn, &rr, &res);
		queue_receive_result_free(&res);
	}
	queue_receive_clear(&rr);
	return rc;
}

/* RFC 3464 reports, never about a report (queue_dsn_wanted: null sender). */
static int queue_delivery_reports(struct queue_txn *txn, const struct queue_delivery_result *req,
    struct queue_msg *m, const bool *failed_now, size_t nfailed, bool pending,
    struct queue_delivery_outcome *out)
{
	uint64_t warn = req->delay_warning_time / queue_delivery_scale(req);
	bool *delayed;
	size_t ndelayed = 0;
	int rc;

	if (nfailed > 0) {
		rc = queue_delivery_report(txn, req, m, failed_now, QUEUE_DSN_FAILURE,
		    req->failure_report_id);
		if (rc < 0)
			return rc;
		out->failure_report_queued = true;
	}
	if (!pending || m->delay_warned || req->delay_warning_time == 0 ||
	    req->now - m->arrival < (int64_t)warn)
		return 0;
	delayed = xcalloc(m->nrcpts ? m->nrcpts : 1, sizeof *delayed);
	for (size_t i = 0; i < m->nrcpts; i++) {
		delayed[i] = m->rcpts[i].state == QUEUE_RCPT_PENDING &&
		    queue_dsn_wanted(m, &m->rcpts[i], QUEUE_DSN_DELAY);
		ndelayed += delayed[i];
	}
	/* Warn once per message, even when nobody asked to be warned. */
	m->delay_warned = true;
	rc = 0;
	if (ndelayed > 0) {
		rc = queue_delivery_report(txn, req, m, delayed, QUEUE_DSN_DELAY,
		    req->delay_report_id);
		if (rc == 0)
			out->delay_report_queued = true;
	}
	free(delayed);
	return rc;
}

int queue_delivery_apply(struct queue_txn *txn, const struct queue_delivery_result *req,
    struct queue_delivery_outcome *out)
{
	struct queue_msg *m;
	bool pending = false, *failed_now;
	size_t nfailed = 0;
	int rc;

	out->gone = out->failure_report_queued = out->delay_report_queued = false;
	for (size_t i = 0; i < req->n; i++)
		out->rcpts[i].applied = false;
	rc = queue_msg_get(txn, req->id, &m);
	if (rc == -ENOENT) {
		out->gone = true;
		return 0;
	}
	if (rc < 0)
		return rc;
	failed_now = xcalloc(m->nrcpts ? m->nrcpts : 1, sizeof *failed_now);
	rc = queue_delivery_record_all(txn, req, m, out, failed_now, &nfailed);
	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state == QUEUE_RCPT_PENDING)
			pending = true;
	if (rc == 0)
		rc = queue_delivery_reports(txn, req, m, failed_now, nfailed, pending, out);
	/* queue_msg_put also puts the schedule entry in step (or repairs it). */
	if (rc == 0)
		rc = pending ? queue_msg_put(txn, m) : queue_msg_delete(txn, m->id);
	free(failed_now);
	queue_msg_free(m);
	return rc;
}
