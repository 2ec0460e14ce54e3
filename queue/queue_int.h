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
	bool readonly;
	uint64_t last_id;   /* greatest id issued or seen; loop thread only */
};

struct queue_txn {
	struct queue_store *store;
	MDB_txn *txn;
	bool write;
};

/* LMDB return code to our negative errno (MAP_FULL -> -ENOSPC, ...). */
int queue__lmdb_err(int rc);

/*
 * A nested write transaction inside parent (the writer's one-transaction-
 * per-operation rule). Commit merges it into parent; abort undoes only it.
 */
int queue__txn_begin_child(struct queue_txn *parent, struct queue_txn **out);

/* Raises meta "last_id" to id when id is greater (write txn). */
int queue__note_id(struct queue_txn *txn, uint64_t id);

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
