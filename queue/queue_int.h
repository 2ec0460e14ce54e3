#ifndef GOVRELAY_QUEUE_INT_H
#define GOVRELAY_QUEUE_INT_H
/*
 * queue_int: what the files of queue/ share and nobody else may see
 * (STYLE.md section 2). Never include this from outside queue/.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmdb.h>

#include "common/buf.h"
#include "queue/queue.h"
#include "queue/schema.h"

struct queue_store {
	MDB_env *env;
	MDB_dbi db_meta;
	MDB_dbi db_messages;
	MDB_dbi db_bodies;
	MDB_dbi db_schedule;
	MDB_dbi db_domains;
	MDB_dbi db_audit;
	MDB_dbi db_tenants;
	MDB_dbi db_mailboxes;
	MDB_dbi db_users;
	MDB_dbi db_policies;
	MDB_dbi db_operators;
	MDB_dbi db_dkim;
	MDB_dbi db_quarantine;
	/*
	 * QUEUE_ABSENT_* bits: tenancy databases a read-only open did not
	 * find (a store written before they existed). Their dbi is not valid;
	 * readers in tenancy.c treat them as empty. A read-write open creates
	 * them, so a write txn never sees a bit set.
	 */
	unsigned absent;
	bool readonly;
	uint64_t last_id;   /* greatest id issued or seen; loop thread only */
};

struct queue_txn {
	struct queue_store *store;
	MDB_txn *txn;
	bool write;
};

#define QUEUE_ABSENT_TENANTS 0x01u
#define QUEUE_ABSENT_MAILBOXES 0x02u
#define QUEUE_ABSENT_USERS 0x04u
#define QUEUE_ABSENT_POLICIES 0x08u
#define QUEUE_ABSENT_OPERATORS 0x10u
#define QUEUE_ABSENT_DKIM 0x20u
#define QUEUE_ABSENT_QUARANTINE 0x40u

/* LMDB return code to our negative errno (MAP_FULL -> -ENOSPC, ...). */
int queue__lmdb_err(int rc);

/*
 * A nested write transaction inside parent (the writer's one-transaction-
 * per-operation rule). Commit merges it into parent; abort undoes only it.
 */
int queue__txn_begin_child(struct queue_txn *parent, struct queue_txn **out);

/* Raises meta "last_id" to id when id is greater (write txn). */
int queue__note_id(struct queue_txn *txn, uint64_t id);

/*
 * Whether id has a `quarantine` record (quarantine.c): its body chunks
 * are then no orphans. *err: 0, or the store error that kept us from
 * knowing (then false is no answer).
 */
bool queue__quarantine_has(struct queue_txn *txn, uint64_t id, int *err);

/*
 * The records of dbi, keyed by a message id (big-endian), from id from
 * on in id order: fn(arg, id, value, length) for each until it returns
 * non-zero, which is returned. A key of another length is -EBADMSG.
 */
int queue__walk_ids(struct queue_txn *txn, MDB_dbi dbi, uint64_t from,
    int (*fn)(void *arg, uint64_t id, const void *value, size_t len), void *arg);

/* Lookups that fail with -EINVAL on a read-only transaction. */
int queue__need_write(const struct queue_txn *txn);

/* Big-endian helpers for keys and values. */
void queue__be64_put(uint8_t *p, uint64_t v);
uint64_t queue__be64_get(const uint8_t *p);
void queue__be32_put(uint8_t *p, uint32_t v);
uint32_t queue__be32_get(const uint8_t *p);

/* Value encoding (schema.h "str", "u32", ...). */
void queue__enc_u8(struct buf *b, uint8_t v);
void queue__enc_u32(struct buf *b, uint32_t v);
void queue__enc_u64(struct buf *b, uint64_t v);
void queue__enc_str(struct buf *b, const char *s);

/*
 * Decoding cursor. Each getter returns 0 or -EBADMSG when the value is
 * too short or malformed; the cursor is then no longer usable.
 */
struct queue_dec {
	const uint8_t *p;
	size_t left;
};
int queue__dec_u8(struct queue_dec *d, uint8_t *v);
int queue__dec_u32(struct queue_dec *d, uint32_t *v);
int queue__dec_u64(struct queue_dec *d, uint64_t *v);
/* *s is NULL (encoded NULL) or a fresh NUL-terminated copy. */
int queue__dec_str(struct queue_dec *d, char **s);

#endif
