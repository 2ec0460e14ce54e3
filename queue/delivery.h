#ifndef GOVRELAY_QUEUE_DELIVERY_H
#define GOVRELAY_QUEUE_DELIVERY_H
/*
 * queue/delivery: recording the results of one delivery pass over one
 * message, as a store operation by intent (the scheduler, relay/
 * delivery.c, runs the sessions; this decides what the store keeps):
 * each recipient's new state, its backoff or expiry, one audit record
 * per recipient, the delivery status notifications the results call for
 * (queued through queue_receive_apply, like any message received), and
 * the message's schedule entry, or its deletion once nothing pends.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/queue.h"
#include "queue/receive.h"

/* What one attempt at one recipient came to. */
enum queue_outcome {
	QUEUE_OUTCOME_NONE,  /* no verdict (the session was aborted): left as it is */
	QUEUE_OUTCOME_OK,    /* 2xx */
	QUEUE_OUTCOME_TEMP,  /* 4xx or no usable answer: retried, or expired */
	QUEUE_OUTCOME_PERM,  /* 5xx, or a local reason retrying cannot cure */
};

/* RFC 3464 report kinds; the names are the audit's "kind" values. */
enum queue_dsn_kind { QUEUE_DSN_FAILURE, QUEUE_DSN_DELAY, QUEUE_DSN_SUCCESS };
const char *queue_dsn_kind_name(enum queue_dsn_kind kind);  /* "failure", ... */

/*
 * Whether recipient r of msg wants a report of this kind (RFC 3461
 * section 4.1): never for the null sender (RFC 5321 section 4.5.5);
 * NOTIFY=NEVER: none; no NOTIFY: FAILURE and DELAY; else what it asked.
 */
bool queue_dsn_wanted(const struct queue_msg *msg, const struct queue_rcpt *r,
    enum queue_dsn_kind kind);

/*
 * Builds a report about orig's recipients marked in want: fills out->msg
 * (id report_id, arrival now, the null sender, orig's sender as the one
 * recipient) and out->body (the whole report). Called inside the
 * operation's transaction (txn reads orig's body). Returns 0 or an error,
 * which rolls the whole operation back.
 */
typedef int queue_report_fn(void *arg, struct queue_txn *txn, const struct queue_msg *orig,
    const bool *want, enum queue_dsn_kind kind, uint64_t report_id, int64_t now,
    struct queue_receive *out);

struct queue_delivery_attempt {
	size_t idx;              /* index in the message when it was read (a hint) */
	const char *addr;
	enum queue_outcome outcome;
	int code;                /* reply code, 0 when none */
	const char *dsn;         /* RFC 3463 code of the reply */
	const char *reply;
	const char *relay;       /* for the audit record */
};

#define QUEUE_DELIVERY_TEXT_MAX 512

/* What was recorded for one attempt (filled by queue_delivery_apply). */
struct queue_delivery_record {
	bool applied;            /* false: no verdict, or changed meanwhile */
	enum queue_delivery_status status;
	enum queue_rcpt_state state;
	uint32_t attempts;
	char dsn[16];
	char reply[QUEUE_DELIVERY_TEXT_MAX];
};

/* Times in ms, as in the configuration; each divided by time_scale. */
struct queue_delivery_result {
	uint64_t id;
	int64_t now;
	const struct queue_delivery_attempt *rcpts;
	size_t n;
	uint64_t max_queue_lifetime, delay_warning_time;  /* 0: never warn */
	uint64_t minimal_backoff_time, maximal_backoff_time;
	uint64_t time_scale;                              /* 0 counts as 1 */
	/* Ids for the reports this operation may queue (unused ones cost nothing). */
	uint64_t failure_report_id, delay_report_id;
	queue_report_fn *report;
	void *report_arg;
};

struct queue_delivery_outcome {
	struct queue_delivery_record *rcpts;  /* n records, the caller's array */
	bool gone;                            /* the message had been deleted */
	bool failure_report_queued, delay_report_queued;
};

/*
 * Writer thread, inside the batch's (nested) write transaction. Re-reads
 * the message (govrelayctl may have changed or deleted it while the
 * sessions ran) and updates only recipients still pending: OK
 * DELIVERED, PERM FAILED, TEMP PENDING again with attempts + 1 and
 * next_attempt = now + backoff, or FAILED as expired (4.4.7) when the
 * message is older than max_queue_lifetime. Failure reports for the
 * recipients that failed now, one delay warning per message once
 * delay_warning_time has passed. Any error rolls everything back, audit
 * records and reports included: the message is then delivered again
 * later (at least once).
 */
int queue_delivery_apply(struct queue_txn *txn, const struct queue_delivery_result *req,
    struct queue_delivery_outcome *out);

/* Postfix's backoff: minimal doubled per earlier attempt, within [min, max]. */
int64_t queue_delivery_backoff(const struct queue_delivery_result *req, uint32_t attempts);

#endif
