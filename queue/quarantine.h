#ifndef GOVRELAY_QUARANTINE_H
#define GOVRELAY_QUARANTINE_H
/*
 * quarantine: messages a policy verdict kept out of delivery (issue 11:
 * VERDICT_QUARANTINE, DMARC p=quarantine, the content checks), held whole
 * in the store with the verdict that put them there. Layout: the
 * `quarantine` database in queue/schema.h.
 *
 * A quarantined message is its body chunks (in `bodies`, under its id,
 * as for any message) and one `quarantine` record holding the envelope
 * and the verdict. It has no `messages` record and no `schedule` entry,
 * so the scheduler, `queue list` and `queue flush` never see it. It
 * leaves the quarantine one of two ways, each one transaction:
 *   release  the envelope becomes a `messages` record, every recipient
 *            pending and due now, with its schedule entry: it is
 *            delivered as if it had passed. The queue lifetime
 *            (max_queue_lifetime, delay_warning_time) counts from the
 *            release, so a message kept for days is not expired on its
 *            first attempt; its original arrival stays in the audit
 *            chain (`received`, `quarantined`).
 *   delete   the record and every body chunk go (also when it has been
 *            kept quarantine_lifetime: queue_quarantine_expire).
 * The audit records (`quarantined` at receive, the operator's action at
 * release and delete) are the callers' (queue/receive.c, admin/).
 *
 * Errors: 0 or a negative errno as queue.h: -ENOENT (no such quarantined
 * message), -EEXIST (release: a queued message already has that id),
 * -EBADMSG (a record does not decode), -ENOSPC, -EIO, -EINVAL.
 */
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "queue/queue.h"

struct queue_quarantine {
	uint64_t id;           /* the queue id the client was given */
	int64_t time;          /* unix ms: when the verdict quarantined it */
	char *rule;            /* the rule that decided ("dmarc", "content") */
	char *reason;          /* the verdict's text */
	char *notes;           /* the checks' notes (policy_tx_notes); NULL */
	char *tenants;         /* "a,b": the agencies concerned; NULL */
	struct queue_msg *msg; /* the envelope (msg->id == id), owned */
};

void queue_quarantine_free(struct queue_quarantine *q); /* NULL is fine */
void queue_quarantine_encode(const struct queue_quarantine *q, struct buf *out);
int queue_quarantine_decode(const void *data, size_t len, struct queue_quarantine **out);

/*
 * Stores q (insert; -EEXIST when the id is quarantined already). The
 * body chunks are the caller's (queue_body_put, before or after, in the
 * same transaction). Write txn.
 */
int queue_quarantine_put(struct queue_txn *txn, const struct queue_quarantine *q);
int queue_quarantine_get(struct queue_txn *txn, uint64_t id, struct queue_quarantine **out);

/*
 * Every quarantined message from the first id at or after from, ids
 * ascending; cb returns 0 to go on, non-zero to stop (that value is
 * returned). Records are borrowed for the callback only.
 */
typedef int queue_quarantine_walk_cb(void *arg, const struct queue_quarantine *q);
int queue_quarantine_walk(struct queue_txn *txn, uint64_t from, queue_quarantine_walk_cb *cb,
    void *arg);

/*
 * Release (see above), at now (unix ms). *out (may be NULL) gets the
 * record as it was, for the caller's audit record. Write txn.
 */
int queue_quarantine_release(struct queue_txn *txn, uint64_t id, int64_t now,
    struct queue_quarantine **out);
/* Delete (see above): the record and the body chunks. Write txn. */
int queue_quarantine_delete(struct queue_txn *txn, uint64_t id);
/*
 * Retention (quarantine_lifetime): deletes, as queue_quarantine_delete
 * does, at most max messages quarantined lifetime_ms or longer before
 * now (unix ms), each with an audit record (admin, action
 * quarantine.expire, by govrelayd, via retention, and the fields an
 * operator's delete records). *expired: how many went; *more: others are
 * due too (call again). lifetime_ms 0 expires nothing. Write txn; every
 * record is read, so a caller runs it now and then, not per message.
 */
int queue_quarantine_expire(struct queue_txn *txn, int64_t now, uint64_t lifetime_ms,
    size_t max, size_t *expired, bool *more);

#endif
