/*
 * message: queue ids in text, the message record (envelope and
 * per-recipient state), its schedule entry and its body chunks.
 *
 * Entry points: queue_id_format/parse, queue_rcpt_state_name,
 * queue_msg_next_attempt/free/encode/decode, queue_msg_get/put/delete/
 * walk, queue_schedule_due, queue_body_put/get/delete/collect_orphans.
 * OWNERSHIP: records handed out (queue_msg_get, queue_msg_decode) are
 * fresh copies the caller frees with queue_msg_free; they stay valid
 * after the txn ends. Records passed to a walk callback are borrowed for
 * the call. Every argument is borrowed.
 * THREADS: any thread that owns the txn.
 * ERRORS: -ENOENT (no record), -EBADMSG (a record or key does not
 * decode), -EEXIST (a body chunk key is taken), -ENOSPC (map full),
 * -EINVAL (bad argument, or a write on a read txn), -EIO.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/schema.h"

/*
 * The fewest bytes one encoded recipient can take (two NULL strings, the
 * fixed fields, a NULL reply): bounds nrcpts before we allocate for it.
 */
#define QUEUE_RCPT_ENC_MIN (4 + 4 + 4 + 1 + 4 + 8 + 8 + 4 + 4)

#define QUEUE_MSG_FLAG_SMTPUTF8 0x1u
#define QUEUE_MSG_FLAG_HELD 0x2u
#define QUEUE_MSG_FLAG_DELAY_WARNED 0x4u
#define QUEUE_MSG_FLAG_REQUIRE_TLS 0x8u
#define QUEUE_NOTIFY_ALL (QUEUE_NOTIFY_NEVER | QUEUE_NOTIFY_SUCCESS | \
	QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY)

/* ----------------------------------------------------------------- ids */

void queue_id_format(uint64_t id, char out[QUEUE_ID_TEXT_LEN + 1])
{
	snprintf(out, QUEUE_ID_TEXT_LEN + 1, "%016" PRIX64, id);
}

int queue_id_parse(const char *text, uint64_t *id)
{
	uint64_t v = 0;
	size_t i;

	if (text == NULL)
		return -EINVAL;
	for (i = 0; i < QUEUE_ID_TEXT_LEN; i++) {
		char c = text[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return -EINVAL; /* includes an early NUL */
		v = v << 4 | d;
	}
	if (text[i] != '\0')
		return -EINVAL;
	*id = v;
	return 0;
}

const char *queue_rcpt_state_name(enum queue_rcpt_state st)
{
	switch (st) {
	case QUEUE_RCPT_PENDING: return "pending";
	case QUEUE_RCPT_DELIVERED: return "delivered";
	case QUEUE_RCPT_FAILED: return "failed";
	}
	return "unknown";
}

/* ------------------------------------------------------------- records */

int64_t queue_msg_next_attempt(const struct queue_msg *msg)
{
	int64_t best = -1;

	for (size_t i = 0; i < msg->nrcpts; i++) {
		int64_t t = msg->rcpts[i].next_attempt;

		if (msg->rcpts[i].state != QUEUE_RCPT_PENDING)
			continue;
		/* Before the epoch means "now": never collide with -1. */
		if (t < 0)
			t = 0;
		if (best < 0 || t < best)
			best = t;
	}
	return best;
}

void queue_msg_free(struct queue_msg *msg)
{
	if (msg == NULL)
		return;
	for (size_t i = 0; i < msg->nrcpts; i++) {
		free(msg->rcpts[i].addr);
		free(msg->rcpts[i].orcpt);
		free(msg->rcpts[i].last_reply);
	}
	free(msg->rcpts);
	free(msg->sender);
	free(msg->envid);
	free(msg->client_addr);
	free(msg->helo);
	free(msg->listener);
	free(msg->tls);
	free(msg->auth_user);
	free(msg->hold_reason);
	free(msg);
}

/* Appends the encoding (schema.h, "messages") to out. */
void queue_msg_encode(const struct queue_msg *msg, struct buf *out)
{
	uint8_t flags = 0;

	if (msg->smtputf8)
		flags |= QUEUE_MSG_FLAG_SMTPUTF8;
	if (msg->held)
		flags |= QUEUE_MSG_FLAG_HELD;
	if (msg->delay_warned)
		flags |= QUEUE_MSG_FLAG_DELAY_WARNED;
	if (msg->require_tls)
		flags |= QUEUE_MSG_FLAG_REQUIRE_TLS;
	/* nrcpts travels as u32; RCPT limits keep it far below that. */
	if (msg->nrcpts > UINT32_MAX)
		panic("queue: %zu recipients cannot be encoded", msg->nrcpts);

	queue__enc_u8(out, QUEUE_MSG_ENC_VERSION);
	queue__enc_u64(out, msg->id);
	queue__enc_u64(out, (uint64_t)msg->arrival);
	queue__enc_str(out, msg->sender);
	queue__enc_str(out, msg->envid);
	queue__enc_u8(out, (uint8_t)msg->ret);
	queue__enc_u8(out, (uint8_t)msg->body_type);
	queue__enc_u8(out, flags);
	queue__enc_u64(out, msg->declared_size);
	queue__enc_u64(out, msg->size);
	queue__enc_u32(out, msg->nchunks);
	queue__enc_str(out, msg->client_addr);
	queue__enc_str(out, msg->helo);
	queue__enc_str(out, msg->listener);
	queue__enc_str(out, msg->tls);
	queue__enc_str(out, msg->auth_user);
	queue__enc_u32(out, (uint32_t)msg->nrcpts);
	for (size_t i = 0; i < msg->nrcpts; i++) {
		const struct queue_rcpt *r = &msg->rcpts[i];

		queue__enc_str(out, r->addr);
		queue__enc_str(out, r->orcpt);
		queue__enc_u32(out, r->notify);
		queue__enc_u8(out, (uint8_t)r->state);
		queue__enc_u32(out, r->attempts);
		queue__enc_u64(out, (uint64_t)r->next_attempt);
		queue__enc_u64(out, (uint64_t)r->done_at);
		queue__enc_u32(out, (uint32_t)r->last_code);
		queue__enc_str(out, r->last_reply);
	}
	/* Appended last: records written before it existed end above. */
	if (msg->hold_reason != NULL)
		queue__enc_str(out, msg->hold_reason);
}

static int queue_msg_decode_rcpt(struct queue_dec *d, struct queue_rcpt *r)
{
	uint64_t u64;
	uint32_t u32;
	uint8_t u8;
	int rc;

	if ((rc = queue__dec_str(d, &r->addr)) < 0 ||
	    (rc = queue__dec_str(d, &r->orcpt)) < 0 ||
	    (rc = queue__dec_u32(d, &u32)) < 0)
		return rc;
	if (u32 & ~QUEUE_NOTIFY_ALL)
		return -EBADMSG;
	r->notify = u32;
	if ((rc = queue__dec_u8(d, &u8)) < 0)
		return rc;
	if (u8 > QUEUE_RCPT_FAILED)
		return -EBADMSG;
	r->state = (enum queue_rcpt_state)u8;
	if ((rc = queue__dec_u32(d, &r->attempts)) < 0 ||
	    (rc = queue__dec_u64(d, &u64)) < 0)
		return rc;
	r->next_attempt = (int64_t)u64;
	if ((rc = queue__dec_u64(d, &u64)) < 0)
		return rc;
	r->done_at = (int64_t)u64;
	if ((rc = queue__dec_u32(d, &u32)) < 0)
		return rc;
	r->last_code = (int32_t)u32;
	return queue__dec_str(d, &r->last_reply);
}

static int queue_msg_decode_body(struct queue_dec *d, struct queue_msg *m)
{
	uint64_t u64;
	uint32_t n;
	uint8_t u8;
	int rc;

	if ((rc = queue__dec_u8(d, &u8)) < 0)
		return rc;
	if (u8 != QUEUE_MSG_ENC_VERSION)
		return -EBADMSG;
	if ((rc = queue__dec_u64(d, &m->id)) < 0 ||
	    (rc = queue__dec_u64(d, &u64)) < 0)
		return rc;
	m->arrival = (int64_t)u64;
	if ((rc = queue__dec_str(d, &m->sender)) < 0 ||
	    (rc = queue__dec_str(d, &m->envid)) < 0 ||
	    (rc = queue__dec_u8(d, &u8)) < 0)
		return rc;
	if (u8 > QUEUE_RET_HDRS)
		return -EBADMSG;
	m->ret = (enum queue_ret)u8;
	if ((rc = queue__dec_u8(d, &u8)) < 0)
		return rc;
	if (u8 > QUEUE_BODY_BINARYMIME)
		return -EBADMSG;
	m->body_type = (enum queue_body_type)u8;
	if ((rc = queue__dec_u8(d, &u8)) < 0)
		return rc;
	if (u8 & ~(QUEUE_MSG_FLAG_SMTPUTF8 | QUEUE_MSG_FLAG_HELD | QUEUE_MSG_FLAG_DELAY_WARNED |
	    QUEUE_MSG_FLAG_REQUIRE_TLS))
		return -EBADMSG;
	m->smtputf8 = (u8 & QUEUE_MSG_FLAG_SMTPUTF8) != 0;
	m->held = (u8 & QUEUE_MSG_FLAG_HELD) != 0;
	m->delay_warned = (u8 & QUEUE_MSG_FLAG_DELAY_WARNED) != 0;
	m->require_tls = (u8 & QUEUE_MSG_FLAG_REQUIRE_TLS) != 0;
	if ((rc = queue__dec_u64(d, &m->declared_size)) < 0 ||
	    (rc = queue__dec_u64(d, &m->size)) < 0 ||
	    (rc = queue__dec_u32(d, &m->nchunks)) < 0 ||
	    (rc = queue__dec_str(d, &m->client_addr)) < 0 ||
	    (rc = queue__dec_str(d, &m->helo)) < 0 ||
	    (rc = queue__dec_str(d, &m->listener)) < 0 ||
	    (rc = queue__dec_str(d, &m->tls)) < 0 ||
	    (rc = queue__dec_str(d, &m->auth_user)) < 0 ||
	    (rc = queue__dec_u32(d, &n)) < 0)
		return rc;
	/* A count the remaining bytes cannot hold is garbage: never allocate it. */
	if (n > d->left / QUEUE_RCPT_ENC_MIN)
		return -EBADMSG;
	if (n > 0)
		m->rcpts = xcalloc(n, sizeof *m->rcpts);
	for (uint32_t i = 0; i < n; i++) {
		/* Counted first, so queue_msg_free releases a half-decoded one. */
		m->nrcpts = (size_t)i + 1;
		if ((rc = queue_msg_decode_rcpt(d, &m->rcpts[i])) < 0)
			return rc;
	}
	if (d->left > 0 && (rc = queue__dec_str(d, &m->hold_reason)) < 0)
		return rc;
	if (d->left != 0)
		return -EBADMSG;
	return 0;
}

int queue_msg_decode(const void *data, size_t len, struct queue_msg **out)
{
	struct queue_dec d = { data, len };
	struct queue_msg *m;
	int rc;

	*out = NULL;
	if (data == NULL && len > 0)
		return -EINVAL;
	m = xcalloc(1, sizeof *m);
	if ((rc = queue_msg_decode_body(&d, m)) < 0) {
		queue_msg_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

/* ------------------------------------------------------------ schedule */

static void queue_sched_key(uint8_t key[QUEUE_KEY_SCHED_LEN], int64_t t, uint64_t id)
{
	queue__be64_put(key, t < 0 ? 0 : (uint64_t)t);
	queue__be64_put(key + 8, id);
}

/* Schedule time of msg, or -1 when it must have no entry. */
static int64_t queue_msg_sched_time(const struct queue_msg *msg)
{
	if (msg->held)
		return -1;
	return queue_msg_next_attempt(msg);
}

/*
 * Removes every schedule entry of id by a full scan. Only for an old
 * record that no longer decodes, whose entry we cannot compute.
 */
static int queue_sched_purge(struct queue_txn *txn, uint64_t id)
{
	MDB_cursor *c;
	MDB_val k, v;
	struct buf keys;
	int rc;

	/* Collect first, delete after: no reliance on cursor state across deletes. */
	buf_init(&keys);
	rc = mdb_cursor_open(txn->txn, txn->store->db_schedule, &c);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
		if (k.mv_size == QUEUE_KEY_SCHED_LEN &&
		    queue__be64_get((const uint8_t *)k.mv_data + 8) == id)
			buf_append(&keys, k.mv_data, k.mv_size);
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND) {
		buf_free(&keys);
		return queue__lmdb_err(rc);
	}
	rc = MDB_SUCCESS;
	for (size_t off = 0; off < keys.len && rc == MDB_SUCCESS;
	    off += QUEUE_KEY_SCHED_LEN) {
		k.mv_size = QUEUE_KEY_SCHED_LEN;
		k.mv_data = keys.data + off;
		rc = mdb_del(txn->txn, txn->store->db_schedule, &k, NULL);
	}
	buf_free(&keys);
	return queue__lmdb_err(rc);
}

/* Removes the schedule entry recorded by the stored version of id. */
static int queue_sched_remove_old(struct queue_txn *txn, const MDB_val *old)
{
	struct queue_msg *m;
	uint8_t key[QUEUE_KEY_SCHED_LEN];
	MDB_val k = { sizeof key, key };
	int64_t t;
	int rc;

	if (queue_msg_decode(old->mv_data, old->mv_size, &m) < 0)
		return -ENOENT; /* caller purges by scan */
	t = queue_msg_sched_time(m);
	if (t >= 0) {
		queue_sched_key(key, t, m->id);
		rc = mdb_del(txn->txn, txn->store->db_schedule, &k, NULL);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
			queue_msg_free(m);
			return queue__lmdb_err(rc);
		}
	}
	queue_msg_free(m);
	return 0;
}

/* Drops the schedule entry of the record stored under id, if any. */
static int queue_sched_unlink(struct queue_txn *txn, uint64_t id, const MDB_val *old)
{
	int rc = queue_sched_remove_old(txn, old);

	if (rc == -ENOENT)
		return queue_sched_purge(txn, id);
	return rc;
}

int queue_schedule_due(struct queue_txn *txn, int64_t now, uint64_t *ids,
    size_t max, size_t *n, int64_t *next_due)
{
	uint8_t key[QUEUE_KEY_SCHED_LEN];
	MDB_cursor *c;
	MDB_val k, v;
	int rc;

	*n = 0;
	*next_due = -1;
	if (ids == NULL && max > 0)
		return -EINVAL;
	rc = mdb_cursor_open(txn->txn, txn->store->db_schedule, &c);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	/* Stored times are >= 0, so nothing is due at a negative now. */
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (now >= 0 && rc == MDB_SUCCESS && *n < max) {
		if (k.mv_size != QUEUE_KEY_SCHED_LEN) {
			mdb_cursor_close(c);
			return -EBADMSG;
		}
		if (queue__be64_get(k.mv_data) > (uint64_t)now)
			break;
		ids[(*n)++] = queue__be64_get((const uint8_t *)k.mv_data + 8);
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
		mdb_cursor_close(c);
		return queue__lmdb_err(rc);
	}
	/* The first entry strictly after now, even when max cut the list. */
	queue_sched_key(key, now < 0 ? 0 : now + 1, 0);
	k.mv_size = sizeof key;
	k.mv_data = key;
	if (now < 0)
		rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	else if (now == INT64_MAX)
		rc = MDB_NOTFOUND;
	else
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	if (rc == MDB_SUCCESS) {
		if (k.mv_size != QUEUE_KEY_SCHED_LEN) {
			mdb_cursor_close(c);
			return -EBADMSG;
		}
		/* Times beyond INT64_MAX cannot come from our own keys. */
		if (queue__be64_get(k.mv_data) <= (uint64_t)INT64_MAX)
			*next_due = (int64_t)queue__be64_get(k.mv_data);
	}
	mdb_cursor_close(c);
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return queue__lmdb_err(rc);
	return 0;
}

/* ------------------------------------------------------------ messages */

int queue_msg_get(struct queue_txn *txn, uint64_t id, struct queue_msg **out)
{
	uint8_t key[QUEUE_KEY_ID_LEN];
	MDB_val k = { sizeof key, key }, v;
	int rc;

	*out = NULL;
	queue__be64_put(key, id);
	rc = mdb_get(txn->txn, txn->store->db_messages, &k, &v);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	if ((rc = queue_msg_decode(v.mv_data, v.mv_size, out)) < 0)
		return rc;
	if ((*out)->id != id) {
		queue_msg_free(*out);
		*out = NULL;
		return -EBADMSG;
	}
	return 0;
}

int queue_msg_put(struct queue_txn *txn, const struct queue_msg *msg)
{
	struct queue_store *s = txn->store;
	uint8_t key[QUEUE_KEY_ID_LEN], skey[QUEUE_KEY_SCHED_LEN];
	MDB_val k = { sizeof key, key }, v, sk, sv = { 0, NULL };
	struct buf b;
	int64_t t;
	int rc;

	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	queue__be64_put(key, msg->id);
	rc = mdb_get(txn->txn, s->db_messages, &k, &v);
	if (rc == MDB_SUCCESS)
		rc = queue_sched_unlink(txn, msg->id, &v);
	else if (rc == MDB_NOTFOUND)
		rc = 0;
	else
		rc = queue__lmdb_err(rc);
	if (rc < 0)
		return rc;

	buf_init(&b);
	queue_msg_encode(msg, &b);
	v.mv_size = b.len;
	v.mv_data = b.data;
	rc = mdb_put(txn->txn, s->db_messages, &k, &v, 0);
	buf_free(&b);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);

	t = queue_msg_sched_time(msg);
	if (t >= 0) {
		queue_sched_key(skey, t, msg->id);
		sk.mv_size = sizeof skey;
		sk.mv_data = skey;
		rc = mdb_put(txn->txn, s->db_schedule, &sk, &sv, 0);
		if (rc != MDB_SUCCESS)
			return queue__lmdb_err(rc);
	}
	return queue__note_id(txn, msg->id);
}

int queue_msg_delete(struct queue_txn *txn, uint64_t id)
{
	uint8_t key[QUEUE_KEY_ID_LEN];
	MDB_val k = { sizeof key, key }, v;
	int rc;

	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	queue__be64_put(key, id);
	rc = mdb_get(txn->txn, txn->store->db_messages, &k, &v);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	if ((rc = queue_sched_unlink(txn, id, &v)) < 0)
		return rc;
	rc = mdb_del(txn->txn, txn->store->db_messages, &k, NULL);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	return queue_body_delete(txn, id);
}

int queue_msg_walk(struct queue_txn *txn, queue_msg_walk_cb *cb, void *arg)
{
	return queue_msg_walk_from(txn, 0, cb, arg);
}

int queue__walk_ids(struct queue_txn *txn, MDB_dbi dbi, uint64_t from,
    int (*fn)(void *arg, uint64_t id, const void *value, size_t len), void *arg)
{
	uint8_t key[QUEUE_KEY_ID_LEN];
	MDB_cursor *c;
	MDB_val k, v;
	int rc, ret = 0;

	rc = mdb_cursor_open(txn->txn, dbi, &c);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	queue__be64_put(key, from);
	k.mv_size = sizeof key;
	k.mv_data = key;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size != QUEUE_KEY_ID_LEN) {
			ret = -EBADMSG;
			break;
		}
		if ((ret = fn(arg, queue__be64_get(k.mv_data), v.mv_data, v.mv_size)) != 0)
			break;
	}
	mdb_cursor_close(c);
	if (ret != 0)
		return ret;
	return rc == MDB_NOTFOUND ? 0 : queue__lmdb_err(rc);
}

struct queue_msg_walk {
	queue_msg_walk_cb *cb;
	void *arg;
};

/* One record of the messages table: decoded, its id checked against its key. */
static int queue_msg_walk_one(void *arg, uint64_t id, const void *value, size_t len)
{
	struct queue_msg_walk *w = arg;
	struct queue_msg *m;
	int ret;

	if ((ret = queue_msg_decode(value, len, &m)) < 0)
		return ret;
	ret = m->id == id ? w->cb(w->arg, m) : -EBADMSG;
	queue_msg_free(m);
	return ret;
}

int queue_msg_walk_from(struct queue_txn *txn, uint64_t from, queue_msg_walk_cb *cb, void *arg)
{
	struct queue_msg_walk w = { cb, arg };

	return queue__walk_ids(txn, txn->store->db_messages, from, queue_msg_walk_one, &w);
}

/* -------------------------------------------------------------- bodies */

static void queue_body_key(uint8_t key[QUEUE_KEY_BODY_LEN], uint64_t id, uint32_t seq)
{
	queue__be64_put(key, id);
	queue__be32_put(key + 8, seq);
}

int queue_body_put(struct queue_txn *txn, uint64_t id, uint32_t seq,
    const void *data, size_t len)
{
	uint8_t key[QUEUE_KEY_BODY_LEN];
	MDB_val k = { sizeof key, key }, v = { len, (void *)data };
	int rc;

	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	if (len > QUEUE_CHUNK_MAX || (data == NULL && len > 0))
		return -EINVAL;
	queue_body_key(key, id, seq);
	/* Chunks go under fresh keys; a taken key is a caller bug, not data to lose. */
	rc = mdb_put(txn->txn, txn->store->db_bodies, &k, &v, MDB_NOOVERWRITE);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	return queue__note_id(txn, id);
}

int queue_body_get(struct queue_txn *txn, uint64_t id, uint32_t seq, struct buf *out)
{
	uint8_t key[QUEUE_KEY_BODY_LEN];
	MDB_val k = { sizeof key, key }, v;
	int rc;

	queue_body_key(key, id, seq);
	rc = mdb_get(txn->txn, txn->store->db_bodies, &k, &v);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	if (v.mv_size > QUEUE_CHUNK_MAX)
		return -EBADMSG;
	buf_append(out, v.mv_data, v.mv_size);
	return 0;
}

/* Deletes every chunk of id with cursor c; *found tells whether any were. */
static int queue_body_delete_cur(MDB_cursor *c, uint64_t id, bool *found)
{
	uint8_t key[QUEUE_KEY_BODY_LEN];
	MDB_val k, v;
	int rc;

	*found = false;
	for (;;) {
		/* Re-seek each time rather than trust cursor state after a delete. */
		queue_body_key(key, id, 0);
		k.mv_size = sizeof key;
		k.mv_data = key;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND)
			return 0;
		if (rc != MDB_SUCCESS)
			return queue__lmdb_err(rc);
		if (k.mv_size < 8 || queue__be64_get(k.mv_data) != id)
			return 0;
		rc = mdb_cursor_del(c, 0);
		if (rc != MDB_SUCCESS)
			return queue__lmdb_err(rc);
		*found = true;
	}
}

int queue_body_delete(struct queue_txn *txn, uint64_t id)
{
	MDB_cursor *c;
	bool found;
	int rc;

	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	rc = mdb_cursor_open(txn->txn, txn->store->db_bodies, &c);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	rc = queue_body_delete_cur(c, id, &found);
	mdb_cursor_close(c);
	return rc;
}

/*
 * A chunk whose id has no message record (and no quarantine record)
 * belongs to a message that never reached its final commit (the session died, or the commit failed). The
 * caller runs this when no message is being received (start-up), since a
 * message still streaming in looks exactly like an orphan.
 */
int queue_body_collect_orphans(struct queue_txn *txn, size_t *count)
{
	uint8_t key[QUEUE_KEY_BODY_LEN], mkey[QUEUE_KEY_ID_LEN];
	MDB_val k, v, mk = { sizeof mkey, mkey };
	MDB_cursor *c;
	uint64_t id;
	bool found;
	int rc, qerr = 0;

	*count = 0;
	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	rc = mdb_cursor_open(txn->txn, txn->store->db_bodies, &c);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (rc == MDB_SUCCESS) {
		if (k.mv_size != QUEUE_KEY_BODY_LEN) {
			rc = -EBADMSG;
			goto out;
		}
		id = queue__be64_get(k.mv_data);
		queue__be64_put(mkey, id);
		rc = mdb_get(txn->txn, txn->store->db_messages, &mk, &v);
		/* A quarantined message's chunks belong to its quarantine record. */
		if (rc == MDB_NOTFOUND && queue__quarantine_has(txn, id, &qerr))
			rc = MDB_SUCCESS;
		if (rc == MDB_NOTFOUND && qerr < 0) {
			rc = qerr;
			goto out;
		}
		if (rc == MDB_NOTFOUND) {
			if ((rc = queue_body_delete_cur(c, id, &found)) < 0)
				goto out;
			(*count)++;
		} else if (rc != MDB_SUCCESS) {
			rc = queue__lmdb_err(rc);
			goto out;
		}
		if (id == UINT64_MAX)
			break;
		/* Skip the rest of this message's chunks in one seek. */
		queue_body_key(key, id + 1, 0);
		k.mv_size = sizeof key;
		k.mv_data = key;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
		rc = queue__lmdb_err(rc);
		goto out;
	}
	rc = 0;
out:
	mdb_cursor_close(c);
	return rc;
}
