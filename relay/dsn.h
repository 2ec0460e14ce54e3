#ifndef GOVRELAY_DSN_H
#define GOVRELAY_DSN_H
/*
 * dsn: builds delivery status notifications (RFC 3461, 3464, 6522; 6533
 * for SMTPUTF8 messages) as complete RFC 5322 messages with CRLF line ends.
 * Pure: the only I/O is reading the original message's body chunks through
 * a transaction the caller passes.
 *
 * What the module does NOT do: the DSN's own envelope and its storage. The
 * caller queues the result as a new message with the null reverse path
 * (MAIL FROM:<>, RFC 5321 section 4.5.5 and RFC 3461 section 6.2: a DSN
 * must never cause another DSN) and exactly one recipient, the original
 * sender. dsn_envelope_new() fills that record; the caller stores it and
 * the body chunks (QUEUE_CHUNK_MAX bytes each) in one write transaction,
 * with the audit record of the bounce.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "queue/queue.h"

enum dsn_kind {
	DSN_FAILURE,   /* Action: failed (5xx, or expiry: 4.4.7) */
	DSN_DELAY,     /* Action: delayed (delay_warning_time passed) */
	/*
	 * Action: relayed when remote_mta is set (the next hop did not offer
	 * DSN, RFC 3461 section 6.2.2), else delivered (final delivery, e.g.
	 * maildir). Only for recipients that asked: NOTIFY=SUCCESS.
	 */
	DSN_SUCCESS,
};
const char *dsn_kind_name(enum dsn_kind kind);

/* RET=FULL returns the whole original only up to this size; else headers. */
#define DSN_FULL_MAX_DEFAULT (10u * 1024 * 1024)
/* The original's header block returned is cut at this size (whole lines). */
#define DSN_HEADERS_MAX (64u * 1024)

/*
 * One recipient of the report. Every string is borrowed and may hold
 * anything a remote server sent: dsn_build strips CR, LF and control
 * bytes, and bounds the length, before any of it reaches a header field.
 */
struct dsn_rcpt_report {
	const char *addr;        /* final recipient, as queued; required */
	const char *orcpt;       /* ORCPT "type;addr", xtext-decoded; NULL */
	const char *status;      /* enhanced code "5.1.1"; NULL or malformed:
	                          * the kind's default (5.0.0, 4.0.0, 2.0.0) */
	const char *diagnostic;  /* remote reply or local error text; NULL */
	const char *remote_mta;  /* host name of the remote MTA; NULL */
	int64_t last_attempt;    /* unix ms; 0 omits Last-Attempt-Date */
	int64_t retry_until;     /* unix ms; DSN_DELAY only; 0 omits Will-Retry-Until */
};

struct dsn_params {
	enum dsn_kind kind;
	const char *reporting_mta; /* our host name (config "hostname"); required */
	int64_t now;               /* unix ms: Date of the report */
	uint64_t dsn_id;           /* queue id of the DSN message: Message-ID */
	uint64_t full_max;         /* RET=FULL size limit; 0: DSN_FULL_MAX_DEFAULT */
};

/*
 * Whether recipient r of msg wants a DSN of this kind (RFC 3461 section
 * 4.1): never for the null sender; NOTIFY=NEVER: none; no NOTIFY: FAILURE
 * and DELAY; otherwise exactly the kinds asked for.
 */
bool dsn_wanted(const struct queue_msg *msg, const struct queue_rcpt *r,
    enum dsn_kind kind);

/*
 * Appends to out a DSN about rcpts[0..n) of msg: a multipart/report with a
 * bilingual (Vietnamese, then English) text/plain part, the
 * message/delivery-status part, and the original's headers
 * (text/rfc822-headers; RET=HDRS or no RET, as Postfix does) or the whole
 * original (message/rfc822; RET=FULL, when at most full_max bytes, 7bit or
 * 8bit, and every line fits RFC 5322's 998 octets; else headers). For an
 * SMTPUTF8 message the global types of RFC 6533 are used instead.
 *
 * txn: any transaction (read or write) on the store holding msg's body
 * chunks; inside the writer thread pass the batch's write transaction, so
 * the DSN is queued atomically with the failure it reports.
 * OWNERSHIP: everything borrowed; out is appended to (on error it is left
 * as it was).
 * ERRORS: -EINVAL (null sender, n == 0, a recipient without address, a bad
 * reporting_mta or kind, a sender that cannot appear in To:), or the
 * error of queue_body_get (-ENOENT, -EBADMSG, -EIO).
 */
int dsn_build(struct queue_txn *txn, const struct queue_msg *msg,
    const struct dsn_rcpt_report *rcpts, size_t n, const struct dsn_params *p,
    struct buf *out);

/*
 * The envelope of a DSN whose bytes are body: id dsn_id, arrival now, null
 * sender, one PENDING recipient (orig's sender, NOTIFY=NEVER, due now),
 * BODY=8BITMIME when body has any 8-bit byte, SMTPUTF8 as orig, size and
 * nchunks for chunks of QUEUE_CHUNK_MAX bytes, listener "dsn".
 * OWNERSHIP: *out is the caller's (queue_msg_free).
 * ERRORS: -EINVAL when orig has the null sender (no DSN about a DSN).
 */
int dsn_envelope_new(const struct queue_msg *orig, uint64_t dsn_id, int64_t now,
    const struct buf *body, struct queue_msg **out);

#endif
