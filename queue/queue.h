#ifndef GOVRELAY_QUEUE_H
#define GOVRELAY_QUEUE_H
/*
 * queue: the durable store (one LMDB environment in data_dir) and its
 * public API: queue ids, messages and their envelopes, body chunks, the
 * schedule, the domain table and the audit chain. Layouts: queue/schema.h.
 *
 * Used by govrelayd (through the writer thread for every write) and by
 * govrelayctl (directly, from another process: LMDB serializes writers
 * across processes and readers never wait).
 *
 * Errors: 0 or a negative errno: -ENOENT (no such record), -ENOSPC (the
 * store is full: answer 452 4.3.1), -EBADMSG (a record does not decode),
 * -EIO (any other LMDB failure), -EINVAL (bad argument).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* ------------------------------------------------------------------ ids */

/*
 * A queue id is a 64-bit number: microseconds since the epoch, made
 * strictly greater than every id issued before (the last one is persisted),
 * so ids sort by arrival time and never repeat across restarts. Its text
 * form is 16 uppercase hex digits, which sorts the same way.
 */
#define QUEUE_ID_TEXT_LEN 16
#define QUEUE_CHUNK_MAX (256 * 1024)

void queue_id_format(uint64_t id, char out[QUEUE_ID_TEXT_LEN + 1]);
int queue_id_parse(const char *text, uint64_t *id);

/* ---------------------------------------------------------------- store */

struct queue_store;
struct queue_txn;

/*
 * Opens (creating when absent, unless readonly) the environment in dir.
 * Checks the schema version in `meta`, clears stale reader slots
 * (mdb_reader_check). map_size bounds the file; 0 keeps the current size.
 */
int queue_store_open(const char *dir, uint64_t map_size, bool readonly,
    struct queue_store **out);
void queue_store_close(struct queue_store *store);
/* Human-readable text for a queue error code. */
const char *queue_strerror(int err);

/* Next queue id (see above). Process-local, one thread (the loop). */
uint64_t queue_next_id(struct queue_store *store);

/*
 * Transactions. A read transaction may run on any thread; a write
 * transaction must begin and end on one thread. MDB_MAP_RESIZED (another
 * process grew the map) is handled inside begin.
 */
int queue_txn_begin(struct queue_store *store, bool write, struct queue_txn **out);
int queue_txn_commit(struct queue_txn *txn);   /* frees txn, even on error */
void queue_txn_abort(struct queue_txn *txn);   /* frees txn; NULL is fine */

/* ------------------------------------------------------------- messages */

enum queue_rcpt_state {
	QUEUE_RCPT_PENDING,
	QUEUE_RCPT_DELIVERED,
	QUEUE_RCPT_FAILED,    /* permanent failure (5xx); bounce pending */
};
const char *queue_rcpt_state_name(enum queue_rcpt_state st);

/* RFC 3461 NOTIFY, as bits; 0 means the client gave none. */
#define QUEUE_NOTIFY_NEVER 0x1u
#define QUEUE_NOTIFY_SUCCESS 0x2u
#define QUEUE_NOTIFY_FAILURE 0x4u
#define QUEUE_NOTIFY_DELAY 0x8u

enum queue_ret { QUEUE_RET_UNSET, QUEUE_RET_FULL, QUEUE_RET_HDRS };
enum queue_body_type { QUEUE_BODY_UNSET, QUEUE_BODY_7BIT, QUEUE_BODY_8BITMIME, QUEUE_BODY_BINARYMIME };

struct queue_rcpt {
	char *addr;           /* as accepted (source route removed) */
	char *orcpt;          /* ORCPT (RFC 3461), xtext-decoded "type;addr"; NULL */
	unsigned notify;      /* QUEUE_NOTIFY_* */
	enum queue_rcpt_state state;
	uint32_t attempts;
	int64_t next_attempt; /* unix ms; meaningful while PENDING */
	int64_t done_at;      /* unix ms of delivery or failure; 0 */
	int last_code;        /* last SMTP reply code, 0 if none */
	char *last_reply;     /* last reply or error text; NULL */
};

struct queue_msg {
	uint64_t id;
	int64_t arrival;          /* unix ms */
	char *sender;             /* "" for the null sender */
	char *envid;              /* ENVID (RFC 3461), xtext-decoded; NULL */
	enum queue_ret ret;
	enum queue_body_type body_type;
	bool smtputf8;
	bool held;                /* `queue hold` or a hold verdict: not scheduled */
	char *hold_reason;        /* why a policy check held it; NULL */
	bool delay_warned;        /* the sender was told of the delay (RFC 3464 "delayed") */
	bool require_tls;         /* deliveries outside our domains need STARTTLS */
	uint64_t declared_size;   /* SIZE= from MAIL, 0 if none */
	uint64_t size;            /* bytes stored in the body chunks */
	uint32_t nchunks;
	char *client_addr;        /* peer IP, text */
	char *helo;               /* HELO/EHLO name; NULL */
	char *listener;           /* "mx", "submission", "submissions" */
	char *tls;                /* "TLSv1.3 TLS_AES_256_GCM_SHA384"; NULL if cleartext */
	char *auth_user;          /* NULL unless authenticated */
	struct queue_rcpt *rcpts;
	size_t nrcpts;
};

/* Earliest next_attempt over PENDING recipients, or -1 when none pend. */
int64_t queue_msg_next_attempt(const struct queue_msg *msg);
void queue_msg_free(struct queue_msg *msg);                 /* NULL is fine */
void queue_msg_encode(const struct queue_msg *msg, struct buf *out);
int queue_msg_decode(const void *data, size_t len, struct queue_msg **out);

int queue_msg_get(struct queue_txn *txn, uint64_t id, struct queue_msg **out);
/*
 * Stores msg (insert or replace) and keeps its schedule entry in step:
 * scheduled at queue_msg_next_attempt() unless held or nothing pends.
 */
int queue_msg_put(struct queue_txn *txn, const struct queue_msg *msg);
/* Deletes the message, its body chunks and its schedule entry. */
int queue_msg_delete(struct queue_txn *txn, uint64_t id);

/* cb returns 0 to go on, non-zero to stop (that value is returned). */
typedef int queue_msg_walk_cb(void *arg, const struct queue_msg *msg);
int queue_msg_walk(struct queue_txn *txn, queue_msg_walk_cb *cb, void *arg);
/*
 * The same walk from the first id at or after from (ids ascending), so a
 * long listing can go on in a later transaction after the last id it saw.
 */
int queue_msg_walk_from(struct queue_txn *txn, uint64_t from, queue_msg_walk_cb *cb, void *arg);

/*
 * Up to max ids scheduled at or before now, oldest first. *next_due is the
 * earliest schedule time after now (unix ms), or -1 when there is none.
 */
int queue_schedule_due(struct queue_txn *txn, int64_t now, uint64_t *ids,
    size_t max, size_t *n, int64_t *next_due);

/* ---------------------------------------------------------------- bodies */

/* Body chunk seq of message id (fresh key; never overwritten). */
int queue_body_put(struct queue_txn *txn, uint64_t id, uint32_t seq,
    const void *data, size_t len);
/* Appends chunk seq to out (a copy: safe after the txn ends). */
int queue_body_get(struct queue_txn *txn, uint64_t id, uint32_t seq, struct buf *out);
/* Deletes every chunk of id. */
int queue_body_delete(struct queue_txn *txn, uint64_t id);
/* Deletes chunks whose message was never committed; *count = messages freed. */
int queue_body_collect_orphans(struct queue_txn *txn, size_t *count);

/* --------------------------------------------------------------- domains */

struct queue_domain {
	char *name;          /* lowercase, no trailing dot */
	char *tenant;        /* tenant id; NULL until tenancy exists */
	char *route;         /* smtp:HOST:PORT, lmtp:..., maildir:DIR, mx */
	bool require_tls;
	/*
	 * The route is a server that knows its own users (an agency's mail
	 * server), so RCPT is not checked against the mailbox table.
	 */
	bool accept_all;
	int64_t created;     /* unix ms */
};

/* Checks route syntax (INTERFACE.md): 0 or -EINVAL with a reason in why. */
int queue_route_check(const char *route, char *why, size_t whylen);
void queue_domain_free(struct queue_domain *d);
int queue_domain_put(struct queue_txn *txn, const struct queue_domain *d);
/* name is matched case-insensitively. */
int queue_domain_get(struct queue_txn *txn, const char *name, struct queue_domain **out);
int queue_domain_delete(struct queue_txn *txn, const char *name);
typedef int queue_domain_walk_cb(void *arg, const struct queue_domain *d);
int queue_domain_walk(struct queue_txn *txn, queue_domain_walk_cb *cb, void *arg);

/* ----------------------------------------------------------------- audit */

/*
 * The audit chain: each record holds its sequence number, time, queue id
 * (or ""), event name and key=value facts, and the SHA-256 of the record
 * before it; its own hash covers all of that. Appending in the same write
 * transaction as the state change it records makes the two atomic.
 */
struct queue_audit_field {
	const char *key;
	const char *value;
};

struct queue_audit_rec {
	uint64_t seq;           /* 1, 2, 3 ... */
	int64_t time;           /* unix ms */
	const char *qid;        /* "" when not about a message */
	const char *event;
	const char *line;       /* the canonical text the hash covers */
	uint8_t prev[32];
	uint8_t hash[32];
};

int queue_audit_append(struct queue_txn *txn, int64_t time_ms, const char *qid,
    const char *event, const struct queue_audit_field *fields, size_t nfields);
/* Records are borrowed for the callback only. */
typedef int queue_audit_walk_cb(void *arg, const struct queue_audit_rec *rec);
int queue_audit_walk(struct queue_txn *txn, queue_audit_walk_cb *cb, void *arg);
/*
 * Recomputes the chain. 0 when intact (*count = records); -EBADMSG when a
 * record, a link or the stored head does not match (*bad_seq = first one).
 */
int queue_audit_verify(struct queue_txn *txn, uint64_t *count, uint64_t *bad_seq);

#endif
