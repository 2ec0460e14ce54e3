#ifndef GOVRELAY_AUDIT_QUERY_H
#define GOVRELAY_AUDIT_QUERY_H
/*
 * audit_query: reading the audit chain for people: filters (time range,
 * sender, recipient, tenant, event, queue id), a parser of a record's
 * canonical line into fields, and a detailed verification that names the
 * first broken link with the expected and found hashes.
 *
 * A search walks the records in sequence order with one cursor and calls
 * back for each match, so output can stream; the time range is found by
 * bisection over sequence numbers (times do not decrease along the chain,
 * give or take AUDIT_TIME_SLACK_MS), so `--since -2h` on a large chain
 * does not read it all.
 *
 * Everything here reads through a caller's transaction and keeps nothing
 * after the call: any thread that owns the txn may call it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/queue.h"

/*
 * Most facts one line may hold. A `received` record lists every recipient
 * (up to 100 and its own eight facts), so this is well above what the
 * relay writes; a longer line is treated as damaged (-EBADMSG).
 */
#define AUDIT_FIELDS_MAX 1024

/*
 * Parses a time for --since/--until: ISO 8601 ("2026-11-23",
 * "2026-11-23T10:00", "2026-11-23T10:00:00Z", "...+07:00"; without a zone
 * it is UTC), a relative form "-2h", "-30m", "-7d", "-45s" (before now_ms),
 * "now", or unix seconds "@1763900000". 0 and *ms, or -EINVAL.
 *
 * ISO details: a date alone is midnight UTC (no zone allowed after it);
 * 'T', 't' or one space separates date and time; seconds may carry a
 * fraction (".123" or ",5", up to 9 digits, cut to milliseconds); the zone
 * is "Z"/"z", "+HH:MM", "+HHMM" or "+HH" (or '-'), at most 23:59. Years
 * 1970-9999, real calendar dates, no leap second. Anything else, or a
 * result before 1970, is -EINVAL; nothing may follow the time.
 */
int audit_time_parse(const char *s, int64_t now_ms, int64_t *ms);

/* One field of a record, unescaped (values may hold any byte but NUL). */
struct audit_field {
	char *key;
	char *value;
};

/* A record as people read it: the chain's own fields plus the facts. */
struct audit_entry {
	uint64_t seq;
	int64_t time;
	char *qid;      /* "" when not about a message */
	char *event;
	struct audit_field *fields;   /* facts after event=, in order */
	size_t nfields;
	char hash_hex[65];
	char prev_hex[65];
};
/*
 * Parses rec->line (schema.h's canonical form: seq, time, qid, event in
 * that order, then facts; \xNN escapes undone) and hex-encodes rec->hash
 * and rec->prev (lowercase). seq and time come from the line; when
 * rec->seq is not 0 it must equal the line's seq. 0 or -EBADMSG (out is
 * then empty, and clearing it is still fine). Free with audit_entry_clear,
 * which accepts a zeroed or cleared entry.
 */
int audit_entry_parse(const struct queue_audit_rec *rec, struct audit_entry *out);
void audit_entry_clear(struct audit_entry *e);
/* Value of key in e's facts, or NULL. */
const char *audit_entry_get(const struct audit_entry *e, const char *key);

/*
 * Filters; NULL/0 fields do not filter, and every filter given must hold.
 *
 * event compares the record's event name exactly, qid its queue id (hex
 * digits, in either case). since/until compare the record's time.
 *
 * sender, recipient and tenant are the message filters:
 *   sender     matches a `from` fact;
 *   recipient  matches a `to`, `rcpt` or `orcpt` fact (an orcpt's
 *              "rfc822;" type prefix is ignored);
 *   tenant     matches a `tenant` fact, a comma list of tenant ids, when
 *              one id equals the filter exactly.
 * Addresses compare as whole canonical addresses, ASCII case-insensitively
 * (UTF-8 bytes exactly), with one pair of enclosing angle brackets ignored
 * on either side, so "" and "<>" both find the null sender. A record with
 * several facts of the kind (one `to` per recipient) matches when any does.
 *
 * PROPAGATION. Delivery records carry only `to`, and most records carry
 * no tenant, yet `audit search --sender a@b` must show what happened to
 * a@b's mail. So, for each message filter separately:
 *   - a record that carries facts of that kind is judged by them;
 *   - a record that carries none, and has a queue id, matches when the
 *     `received` record of that queue id (read earlier in the search)
 *     matched that filter by its own facts.
 * So --sender a@b shows the message's received, delivered, deferred and
 * failed records; --recipient c@d shows the received record and the
 * delivery records *for c@d*, not those for the message's other
 * recipients (they carry a `to` of their own, which does not match).
 *
 * With since, the received record usually precedes the window. The queue
 * id names the arrival time (queue.h), so when a record in the window is
 * about a message whose received record could lie before what has been
 * read, the search first reads back to that arrival time (less
 * AUDIT_TIME_SLACK_MS), once, collecting received records only. Each
 * record is read at most once this way; a window holding a record about a
 * message received long ago reads the chain back to that day.
 *
 * The queue ids whose received record matched are remembered in a hash
 * set of at most AUDIT_QID_SET_MAX ids (19 MB at most). Past that,
 * further received records still match on their own facts, but their
 * later records that rely on propagation are not found; the search goes
 * on and counts those messages in audit_search_stats.untracked.
 */
struct audit_filter {
	int64_t since;      /* unix ms, inclusive; 0 none */
	int64_t until;      /* unix ms, exclusive; 0 none */
	const char *sender;
	const char *recipient;
	const char *tenant;
	const char *event;
	const char *qid;
};

#define AUDIT_QID_SET_MAX 1000000

/*
 * Records are appended by several writers (the daemon's writer thread,
 * govrelayctl) with their own idea of "now", so the chain's times may step
 * back a little. since/until are exact on each record, but the bisection
 * starts this much before since and the walk stops this much after until,
 * so records out of order by less than this are still found.
 */
#define AUDIT_TIME_SLACK_MS 60000

/*
 * cb returns 0 to go on, non-zero to stop (that value is returned by
 * audit_search). The entry is borrowed for the call only: copy what you
 * keep. Matches come in sequence order.
 */
typedef int audit_search_cb(void *arg, const struct audit_entry *e);

/* What one search did, for the CLI's summary and for tests. */
struct audit_search_stats {
	uint64_t records_read;   /* records decoded, bisection probes included */
	uint64_t matched;        /* entries passed to cb */
	uint64_t untracked;      /* matching messages the qid set had no room for */
};

/*
 * Walks the records of [since, until) in sequence order and calls cb for
 * each that passes f (f may be NULL: everything). txn may be a read txn.
 * 0, cb's non-zero value, -EBADMSG when a record read does not decode
 * (audit verify says more), -EIO. audit_search_ex also fills *stats
 * (stats may be NULL).
 */
int audit_search(struct queue_txn *txn, const struct audit_filter *f, audit_search_cb *cb,
    void *arg);
int audit_search_ex(struct queue_txn *txn, const struct audit_filter *f,
    audit_search_cb *cb, void *arg, struct audit_search_stats *stats);

/*
 * The same search in steps, each in a transaction of its own, so that a
 * caller who writes its output at someone else's pace holds no read
 * transaction meanwhile (admin/audit.c): audit_search_new(f) (f is
 * borrowed until audit_search_free), then audit_search_step with a fresh
 * txn until it returns anything but cb's stop value. A step walks from
 * where the last one stopped until cb returns non-zero (that value is
 * returned, and the record cb was given counts as read), the walk ends
 * (0) or an error (negative; the search is then over). The walk covers
 * the records that existed when the first step began; what propagation
 * learnt (the received records read) carries over between steps.
 * Records deleted between steps are skipped.
 */
struct audit_search;
struct audit_search *audit_search_new(const struct audit_filter *f);
int audit_search_step(struct audit_search *s, struct queue_txn *txn, audit_search_cb *cb,
    void *arg);
void audit_search_stats_get(const struct audit_search *s, struct audit_search_stats *out);
void audit_search_free(struct audit_search *s);

/*
 * Verifies the whole chain. 0 when intact (*count records, fault zeroed).
 * -EBADMSG on the first fault (*count = records verified before it):
 * fault->seq is the record, fault->what says which check failed, in
 * English, and the hashes (64 lowercase hex digits, or "" when the check
 * has none) are:
 *   "record N was changed: its hash does not match its contents"
 *       expected = SHA-256(prev || line) recomputed, found = stored hash;
 *   "record N does not link to record N-1" (record 1: "does not start
 *   the chain")
 *       expected = record N-1's hash (zero for record 1), found = the
 *       previous hash stored in record N;
 *   "record N is missing: ..." (a gap, or the end cut off, then
 *       expected = the hash the meta head names), "record N lies beyond
 *       the chain head ...", "record N does not decode ...",
 *   "the chain head in meta is missing ..." (expected = the last
 *       record's hash), "... does not match record N's hash" (expected =
 *       the last record's hash, found = the head's), "... does not decode".
 * Other errors: -EIO (fault->what ""). Checks run in that order per
 * record (place, link, hash, decoding), so an edited record whose own
 * hash was recomputed is named at the next record, whose link breaks.
 * Defined in queue/audit.c next to queue_audit_verify, which is this
 * check reduced to the record's sequence number. fault may be NULL.
 */
struct audit_fault {
	uint64_t seq;
	char expected_hex[65];
	char found_hex[65];
	char what[160];
};
int audit_verify_detail(struct queue_txn *txn, uint64_t *count, struct audit_fault *fault);

/*
 * The chain head as meta "audit_head" names it: 0 with *seq and hash
 * (seq 0 and a zero hash for an empty chain), -EBADMSG when it does not
 * decode. A read is one mdb_get: cheap enough for the loop thread.
 * Defined in queue/audit.c (the one reader of the head's layout).
 */
int audit_head(struct queue_txn *txn, uint64_t *seq, uint8_t hash[32]);
/*
 * The hash stored in record seq (its own chain hash): 0, -ENOENT when
 * there is no such record, -EBADMSG when it is too short. Checkpoints are
 * compared with it (queue/audit_checkpoint.c). Defined in queue/audit.c.
 */
int audit_hash_at(struct queue_txn *txn, uint64_t seq, uint8_t hash[32]);

#endif
