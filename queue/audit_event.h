#ifndef GOVRELAY_AUDIT_EVENT_H
#define GOVRELAY_AUDIT_EVENT_H
/*
 * audit_event: the vocabulary of the audit chain. Every event name and
 * every event's fields, in their order, are decided here and nowhere else:
 * callers pass typed facts to one builder per event, which appends the
 * record (queue_audit_append) in the caller's write transaction, so the
 * record commits with the change it describes.
 *
 * The field names and their order are those every record written so far
 * carries (`govrelayctl audit search/verify/export` and the collectors
 * read them); a new field goes at the end of its event, never in between.
 *
 * Errors: queue_audit_append's (-EINVAL, -ENOSPC, -EIO, -EBADMSG).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/queue.h"

enum queue_audit_event {
	QUEUE_AUDIT_RECEIVED,    /* a message was queued (from a client, or a DSN) */
	QUEUE_AUDIT_REJECTED,    /* a policy stage refused for good (5xx) */
	QUEUE_AUDIT_TEMPFAILED,  /* a policy stage refused for now (4xx) */
	QUEUE_AUDIT_DELIVERED,   /* a recipient was delivered */
	QUEUE_AUDIT_DEFERRED,    /* a recipient's delivery will be retried */
	QUEUE_AUDIT_FAILED,      /* a recipient bounced or expired */
	QUEUE_AUDIT_AUTH,        /* an AUTH attempt */
	QUEUE_AUDIT_ADMIN,       /* an administrator's change or refusal */
	QUEUE_AUDIT_CLASSIFIED,  /* a message marked as a state secret was refused */
	QUEUE_AUDIT_QUARANTINED, /* a verdict kept a received message in the quarantine */
	QUEUE_AUDIT_EVENT_COUNT
};
/* The event's name in the record ("received", ...); "unknown" out of range. */
const char *queue_audit_event_name(enum queue_audit_event ev);

/*
 * received, for mail from a client: from, size, nrcpt, client, helo,
 * listener, user, tenant, tls, then one "to" per final recipient (all of
 * them, however many: the expansion bound limits them). helo, user, tenant and
 * tls are left out when NULL. The qid, the time (arrival), size and
 * nrcpt come from msg, which holds the final (expanded) recipients.
 * tenants: "a,b", the agencies the message concerns; NULL for none.
 */
int queue_audit_received(struct queue_txn *txn, const struct queue_msg *msg,
    const char *tenants, const char *auth);

/*
 * received, for a delivery status notification we generated: from (""),
 * to (the original sender), kind ("failure", "delay"), about (the
 * original's queue id). qid and time are the report's.
 */
int queue_audit_received_report(struct queue_txn *txn, int64_t time_ms,
    uint64_t report_id, const char *to, const char *kind, const char *about);

/*
 * rejected / tempfailed: a policy refusal at a session stage. Fields:
 * stage, rule ("-" when NULL), code ("550 5.7.1"), reason, client, helo,
 * from, to, sess, then one "to" per recipient of rcpts (a refusal at
 * end of data concerns them all); a NULL value leaves its field out.
 * qid: the transaction's id, or NULL/"" before MAIL. classified: the
 * record is "classified" (a state-secret marking; its level and where it
 * was found are in auth, the checks' notes) instead of "rejected".
 */
struct queue_audit_refusal {
	const char *qid;
	bool tempfail;       /* tempfailed rather than rejected */
	const char *stage;   /* "connect", "helo", "mail", "rcpt", "data" */
	const char *rule;
	int code;
	const char *enh;     /* "5.7.1" */
	const char *reason;
	const char *client;
	const char *helo;
	const char *from;
	const char *to;
	const char *sess;
	const char *auth;    /* the policy checks' notes (policy_tx_notes); NULL */
	const char *const *rcpts;
	size_t nrcpts;
	bool classified;
};
int queue_audit_refused(struct queue_txn *txn, int64_t time_ms,
    const struct queue_audit_refusal *r);

/*
 * delivered / deferred / failed: the outcome of one delivery attempt for
 * one recipient. Fields: to, relay, dsn, status (the status word below),
 * reply (cut at QUEUE_AUDIT_REPLY_MAX bytes), attempts, delay (seconds
 * since arrival, two decimals).
 */
enum queue_delivery_status {
	QUEUE_DELIVERY_SENT,      /* event delivered */
	QUEUE_DELIVERY_DEFERRED,  /* event deferred */
	QUEUE_DELIVERY_BOUNCED,   /* event failed: a 5xx */
	QUEUE_DELIVERY_EXPIRED,   /* event failed: max_queue_lifetime passed */
};
/* "sent", "deferred", "bounced", "expired": the log's and the record's word. */
const char *queue_delivery_status_name(enum queue_delivery_status st);
#define QUEUE_AUDIT_REPLY_MAX 200

struct queue_audit_delivery {
	const char *qid;
	const char *to;
	const char *relay;
	const char *dsn;
	enum queue_delivery_status status;
	const char *reply;
	uint32_t attempts;
	int64_t delay_ms;    /* negative counts as 0 */
};
int queue_audit_delivery(struct queue_txn *txn, int64_t time_ms,
    const struct queue_audit_delivery *d);

/*
 * auth: one AUTH attempt. Fields: user, client, listener, result,
 * failures (when has_failures), lockout ("yes" when this attempt locked
 * the user), tenant (when not NULL). Never the password.
 */
struct queue_audit_auth {
	const char *user;
	const char *client;
	const char *listener;
	const char *result;      /* "ok", "bad", ... */
	bool has_failures;
	unsigned failures;
	bool lockout;
	const char *tenant;
};
int queue_audit_auth(struct queue_txn *txn, int64_t time_ms, const struct queue_audit_auth *a);

/*
 * quarantined: a message a policy verdict kept out of delivery (issue 11,
 * queue/quarantine.h), written with its `received` record in the commit
 * that stores it. Fields: rule, reason, from, tenant (the agencies
 * concerned; left out when NULL), nrcpt, then one "to" per final
 * recipient. qid and time: the message's and the quarantine's.
 */
struct queue_quarantine;
int queue_audit_quarantined(struct queue_txn *txn, const struct queue_quarantine *q);

/*
 * admin: an administrator's change (or a refused command). Fields:
 * action, by, via, then extra in order, leaving out those whose value is
 * NULL. qid: the message changed, or NULL/"" when not about one.
 */
int queue_audit_admin(struct queue_txn *txn, int64_t time_ms, const char *qid,
    const char *action, const char *by, const char *via,
    const struct queue_audit_field *extra, size_t nextra);

#endif
