#ifndef GOVRELAY_RECEIVE_H
#define GOVRELAY_RECEIVE_H
/*
 * receive: the store operations of receiving a message, by intent.
 *
 *   queue_expansion_*      the final recipients of a message as its
 *                          aliases expand, bounded; the session counts
 *                          with it at RCPT, the commit expands with it
 *   queue_receive_apply    one message queued: envelope with aliases
 *                          expanded, tenant facts, require_tls, body tail,
 *                          schedule entry and the `received` record (or,
 *                          for a quarantine verdict, the quarantine
 *                          record and `received` + `quarantined`)
 *   queue_receive_*_submit the same operations (and body chunks, the
 *                          discard of an unfinished body, a policy
 *                          refusal's record) through the writer thread
 *
 * A session fills a struct queue_receive and submits it; it never opens
 * a transaction or builds an audit record itself.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "queue/audit_event.h"
#include "queue/queue.h"
#include "queue/queue_writer.h"

/* Most recipients a message may have once its aliases are expanded. */
#define QUEUE_RECEIVE_EXPANDED_MAX 10000

/* ------------------------------------------------------------ expansion */

struct queue_expansion;

/* An empty set bounded to max final recipients (0: QUEUE_RECEIVE_EXPANDED_MAX). */
struct queue_expansion *queue_expansion_new(size_t max);
void queue_expansion_free(struct queue_expansion *x);  /* NULL is fine */
size_t queue_expansion_count(const struct queue_expansion *x);

/*
 * Adds the final recipients of one accepted recipient: addr itself, or,
 * when addr is an alias, its targets (queue_alias_expand: nested aliases
 * followed, loops stopped), each once: an address already in the set
 * (compared case-insensitively, in constant time by hash) is not added
 * again. A target keeps the client's ORCPT, or gets "rfc822;addr" (RFC
 * 3461 section 4.2), so a DSN names the address the sender used.
 *
 * *added (may be NULL) is how many new final recipients addr brought.
 * -E2BIG when they would take the set over its bound; the set is then
 * unchanged (duplicates among an alias's targets that differ only in case
 * are counted twice by that check, which errs on the safe side).
 * txn: any transaction (a read one on the loop thread is fine). An
 * address the mailbox table cannot hold is its own final recipient; a
 * store error during the lookup is returned (the set is then unchanged),
 * never taken for "not an alias": callers answer it 451 4.3.0.
 */
int queue_expansion_add(struct queue_txn *txn, struct queue_expansion *x,
    const struct queue_rcpt *r, size_t *added);
/* The i-th final recipient (i < count), borrowed from the set. */
const struct queue_rcpt *queue_expansion_get(const struct queue_expansion *x, size_t i);

/* ---------------------------------------------------------------- receive */

/*
 * One message to queue. msg is the envelope as accepted: id, arrival,
 * sender and MAIL parameters, client facts, nchunks and size counting the
 * tail in body, and the recipients as the client gave them (PENDING, due
 * at arrival). body holds the bytes not stored yet (the last chunk, or a
 * whole generated report); they go to chunks body_seq, body_seq + 1, ...
 * of at most QUEUE_CHUNK_MAX bytes.
 *
 * report_kind NULL: mail from a client; its aliases are expanded (bounded
 * by expanded_max, 0 meaning QUEUE_RECEIVE_EXPANDED_MAX), the tenant facts
 * are gathered and the `received` record names client, listener, tenants.
 * report_kind set ("failure", "delay"): a report we generated about the
 * message report_about; stored as it is, `received` names kind and about.
 */
struct queue_receive {
	struct queue_msg msg;
	struct buf body;
	uint32_t body_seq;
	/*
	 * Chunk 0 when not empty: what the session puts above the message
	 * (its Received: line, the policy's fields); body chunks start at 1.
	 */
	struct buf head;
	char *notes;                                /* the policy's notes for the audit record; NULL */
	/*
	 * Set by a VERDICT_QUARANTINE (policy/policy.h): the message is
	 * stored in the quarantine (queue/quarantine.h) instead of the
	 * delivery queue, with the rule (static string) and reason (owned)
	 * and the notes above, and a `quarantined` record follows
	 * `received`. NULL: queued for delivery.
	 */
	/*
	 * Messages we generated about this one (a quarantined classified
	 * message's notices to the security contacts), queued in the same
	 * transaction; owned, freed by queue_receive_clear.
	 */
	struct queue_receive **notices;
	size_t nnotices;
	const char *quarantine_rule;
	char *quarantine_reason;
	const char *report_kind;                    /* static string or NULL */
	char report_about[QUEUE_ID_TEXT_LEN + 1];
	size_t expanded_max;
};

struct queue_receive_result {
	struct queue_rcpt *rcpts;   /* the final recipients as stored (owned) */
	size_t nrcpts;
	char *tenants;              /* "a,b": agencies concerned; NULL */
	bool require_tls;           /* the sender's agency requires TLS outbound */
};

/*
 * Writer thread, inside the batch's write transaction: stores everything
 * above atomically (any error: the caller's nested transaction rolls it
 * all back). *res is filled (queue_receive_result_free it) even on error.
 * ERRORS: -E2BIG (more final recipients than the bound: refuse the
 * message permanently), the store's (-ENOSPC, -EIO, -EEXIST ...).
 */
int queue_receive_apply(struct queue_txn *txn, const struct queue_receive *req,
    struct queue_receive_result *res);
void queue_receive_result_free(struct queue_receive_result *res);
/* Frees what req holds (msg's strings and recipients, body), not req. */
void queue_receive_clear(struct queue_receive *req);

/* ----------------------------------------------------- through the writer */

/*
 * Loop thread. Completion (loop thread, once the batch is durable or has
 * failed) sees the request and its result; both are freed after it.
 * OWNERSHIP: req (allocated with malloc) and everything it holds are taken.
 */
typedef void queue_receive_done_fn(void *arg, int status, const struct queue_receive *req,
    const struct queue_receive_result *res);
void queue_receive_submit(struct queue_writer *w, struct queue_receive *req,
    queue_receive_done_fn *done, void *arg);

/* Body chunk seq of message id (data is copied). done gets id and len back. */
typedef void queue_chunk_done_fn(void *arg, int status, uint64_t id, size_t len);
void queue_receive_chunk_submit(struct queue_writer *w, uint64_t id, uint32_t seq,
    const void *data, size_t len, queue_chunk_done_fn *done, void *arg);

/*
 * Deletes the chunks of a message that will never be committed. Writer
 * order puts it after the chunks it deletes; a failure is logged (the
 * orphans are collected at the next start-up).
 */
int queue_receive_discard_apply(struct queue_txn *txn, uint64_t id);
void queue_receive_discard_submit(struct queue_writer *w, uint64_t id);

/*
 * The audit record of a policy refusal (no state change of its own). The
 * strings are copied; a failure is logged.
 */
void queue_receive_refusal_submit(struct queue_writer *w, const struct queue_audit_refusal *r);
/*
 * The same, with messages we generated about the refusal (a classified
 * refusal's notices to the security contacts, report_kind "notice",
 * report_about the refused transaction's id) queued in the same
 * transaction: the record and its notices commit together or not at all.
 * done (may be NULL) runs on the loop once that is durable or has failed
 * (to wake the scheduler). OWNERSHIP: notices (n of them, each malloc'd,
 * and the array) are taken.
 */
void queue_receive_refusal_notices_submit(struct queue_writer *w,
    const struct queue_audit_refusal *r, struct queue_receive **notices, size_t n,
    void (*done)(void *arg, int status), void *arg);

#endif
