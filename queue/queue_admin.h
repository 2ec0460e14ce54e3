#ifndef GOVRELAY_QUEUE_ADMIN_H
#define GOVRELAY_QUEUE_ADMIN_H
/*
 * queue_admin: the postmaster's queue changes (hold, release, delete,
 * retry, flush), each applied inside the caller's write transaction
 * together with its audit record. govrelayd applies them on its writer
 * thread when govrelayctl asks over the control socket (via=daemon);
 * govrelayctl applies them to the store itself when no daemon answers
 * (via=store). Both call these functions, so the two paths cannot
 * differ.
 *
 * Semantics:
 *   hold     sets the message's held flag: it leaves the schedule. An
 *            attempt already under way finishes (its result is
 *            recorded; the message stays held).
 *   release  clears held and makes every pending recipient due now.
 *   delete   removes the message, its body and its schedule entry, with
 *            no DSN (postsuper -d). An attempt under way cannot bring it
 *            back: delivery's apply re-reads the message in its own write
 *            transaction, finds it gone and records nothing.
 *   retry    makes every pending recipient of a message that is not held
 *            due now.
 *   flush    the same for every message that is not held, in one
 *            transaction, with ONE summary audit record (qid empty,
 *            messages=N, held=M): a flush is one decision by one person,
 *            and the delivery records that follow carry the queue ids.
 * A change that changes nothing (hold of a held message, an unknown id,
 * a flush with nothing to do) writes no audit record; the result text
 * says why. Audit records are event "admin" with action=queue.VERB,
 * by=WHO, via=VIA, then pending=N (and sender=S for delete) or, for
 * flush, messages=N held=M.
 */
#include <stdbool.h>
#include <stdint.h>

#include "queue/queue.h"

enum queue_admin_verb {
	QUEUE_ADMIN_HOLD,
	QUEUE_ADMIN_RELEASE,
	QUEUE_ADMIN_DELETE,
	QUEUE_ADMIN_RETRY,
	QUEUE_ADMIN_FLUSH,
};

#define QUEUE_ADMIN_TEXT_MAX 256

/* What came of one change. */
struct queue_admin_result {
	int code;     /* 0, or the sysexits code of the refusal (EX_NOINPUT) */
	bool changed; /* the store was changed (and an audit record written) */
	char text[QUEUE_ADMIN_TEXT_MAX]; /* one line for the operator */
};

/* "hold", "release", "delete", "retry", "flush": the CLI and wire verb. */
const char *queue_admin_verb_name(enum queue_admin_verb verb);
/* "queue.hold" ...: the audit and log action. */
const char *queue_admin_verb_action(enum queue_admin_verb verb);
/* Whether the verb takes a queue id (every one but flush). */
bool queue_admin_verb_has_id(enum queue_admin_verb verb);
/* The verb named name (exact match): 0, or -ENOENT. */
int queue_admin_verb_parse(const char *name, enum queue_admin_verb *out);

/*
 * Applies verb to message id (ignored for flush, which runs
 * queue_admin_flush) in txn, a write transaction, with its audit record
 * at now (unix ms). by names who asked ("uid:0"), via which path
 * ("daemon", "store"). An unknown id is not an error: out->code is then
 * EX_NOINPUT. Returns 0 (see *out) or a negative queue error, after
 * which the caller aborts txn.
 * OWNERSHIP: all borrowed. THREADS: the thread that owns txn.
 */
int queue_admin_apply(struct queue_txn *txn, enum queue_admin_verb verb, uint64_t id,
    int64_t now, const char *by, const char *via, struct queue_admin_result *out);
/* flush, as above (the message ids are collected before any is changed). */
int queue_admin_flush(struct queue_txn *txn, int64_t now, const char *by, const char *via,
    struct queue_admin_result *out);

#endif
