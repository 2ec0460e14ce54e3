/*
 * quarantine: the store side of the quarantine (queue/quarantine.h):
 * the `quarantine` record (envelope and verdict; layout in schema.h), and
 * the ways out, release, delete and expiry, each inside the caller's write
 * transaction so that the caller's audit record commits with it.
 *
 * Entry points: queue_quarantine_free/encode/decode/put/get/walk/expire/
 * release/delete, and queue__quarantine_has for orphan collection
 * (queue_int.h).
 * OWNERSHIP: records handed out (get, decode, release's *out) are fresh
 * copies the caller frees with queue_quarantine_free; walk callbacks
 * borrow theirs for the call. Every argument is borrowed.
 * THREADS: any thread that owns the txn.
 * ERRORS: see quarantine.h.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "queue/audit_event.h"
#include "queue/quarantine.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/schema.h"

void queue_quarantine_free(struct queue_quarantine *q)
{
	if (q == NULL)
		return;
	free(q->rule);
	free(q->reason);
	free(q->notes);
	free(q->tenants);
	queue_msg_free(q->msg);
	free(q);
}

void queue_quarantine_encode(const struct queue_quarantine *q, struct buf *out)
{
	struct buf env;

	buf_init(&env);
	queue_msg_encode(q->msg, &env);
	queue__enc_u8(out, QUEUE_QUARANTINE_ENC_VERSION);
	queue__enc_u64(out, q->id);
	queue__enc_u64(out, (uint64_t)q->time);
	queue__enc_str(out, q->rule);
	queue__enc_str(out, q->reason);
	queue__enc_str(out, q->notes);
	queue__enc_str(out, q->tenants);
	/* An envelope is bounded by the expansion bound: far below 4 GiB. */
	queue__enc_u32(out, (uint32_t)env.len);
	buf_append(out, env.data, env.len);
	buf_free(&env);
}

static int queue_quarantine_decode_into(struct queue_dec *d, struct queue_quarantine *q)
{
	uint64_t u64;
	uint32_t envlen;
	uint8_t version;
	int rc;

	if ((rc = queue__dec_u8(d, &version)) < 0)
		return rc;
	if (version != QUEUE_QUARANTINE_ENC_VERSION)
		return -EBADMSG;
	if ((rc = queue__dec_u64(d, &q->id)) < 0 || (rc = queue__dec_u64(d, &u64)) < 0)
		return rc;
	q->time = (int64_t)u64;
	if ((rc = queue__dec_str(d, &q->rule)) < 0 ||
	    (rc = queue__dec_str(d, &q->reason)) < 0 ||
	    (rc = queue__dec_str(d, &q->notes)) < 0 ||
	    (rc = queue__dec_str(d, &q->tenants)) < 0 ||
	    (rc = queue__dec_u32(d, &envlen)) < 0)
		return rc;
	/* The envelope must be exactly the rest: no trailing bytes, none missing. */
	if (envlen != d->left || q->rule == NULL || q->reason == NULL)
		return -EBADMSG;
	if ((rc = queue_msg_decode(d->p, envlen, &q->msg)) < 0)
		return rc;
	if (q->msg->id != q->id)
		return -EBADMSG;
	return 0;
}

int queue_quarantine_decode(const void *data, size_t len, struct queue_quarantine **out)
{
	struct queue_dec d = { data, len };
	struct queue_quarantine *q;
	int rc;

	*out = NULL;
	if (data == NULL && len > 0)
		return -EINVAL;
	q = xcalloc(1, sizeof *q);
	if ((rc = queue_quarantine_decode_into(&d, q)) < 0) {
		queue_quarantine_free(q);
		return rc;
	}
	*out = q;
	return 0;
}

/* false when a read-only open found a store older than the database. */
static bool queue_quarantine_db(const struct queue_txn *txn)
{
	return (txn->store->absent & QUEUE_ABSENT_QUARANTINE) == 0;
}

int queue_quarantine_put(struct queue_txn *txn, const struct queue_quarantine *q)
{
	uint8_t key[QUEUE_KEY_ID_LEN];
	MDB_val k = { sizeof key, key }, v;
	struct buf b;
	int rc;

	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	if (q->msg == NULL || q->msg->id != q->id || q->rule == NULL || q->reason == NULL)
		return -EINVAL;
	queue__be64_put(key, q->id);
	buf_init(&b);
	queue_quarantine_encode(q, &b);
	v.mv_size = b.len;
	v.mv_data = b.data;
	rc = mdb_put(txn->txn, txn->store->db_quarantine, &k, &v, MDB_NOOVERWRITE);
	buf_free(&b);
	if (rc == MDB_KEYEXIST)
		return -EEXIST;
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	return queue__note_id(txn, q->id);
}

int queue_quarantine_get(struct queue_txn *txn, uint64_t id, struct queue_quarantine **out)
{
	uint8_t key[QUEUE_KEY_ID_LEN];
	MDB_val k = { sizeof key, key }, v;
	int rc;

	*out = NULL;
	if (!queue_quarantine_db(txn))
		return -ENOENT;
	queue__be64_put(key, id);
	rc = mdb_get(txn->txn, txn->store->db_quarantine, &k, &v);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	if ((rc = queue_quarantine_decode(v.mv_data, v.mv_size, out)) < 0)
		return rc;
	if ((*out)->id != id) {
		queue_quarantine_free(*out);
		*out = NULL;
		return -EBADMSG;
	}
	return 0;
}

bool queue__quarantine_has(struct queue_txn *txn, uint64_t id, int *err)
{
	uint8_t key[QUEUE_KEY_ID_LEN];
	MDB_val k = { sizeof key, key }, v;
	int rc;

	*err = 0;
	if (!queue_quarantine_db(txn))
		return false;
	queue__be64_put(key, id);
	rc = mdb_get(txn->txn, txn->store->db_quarantine, &k, &v);
	if (rc == MDB_SUCCESS)
		return true;
	if (rc != MDB_NOTFOUND)
		*err = queue__lmdb_err(rc);
	return false;
}

struct queue_quarantine_walk {
	queue_quarantine_walk_cb *cb;
	void *arg;
};

/* One quarantine record: decoded, its id checked against its key. */
static int queue_quarantine_walk_one(void *arg, uint64_t id, const void *value, size_t len)
{
	struct queue_quarantine_walk *w = arg;
	struct queue_quarantine *q;
	int ret;

	if ((ret = queue_quarantine_decode(value, len, &q)) < 0)
		return ret;
	ret = q->id == id ? w->cb(w->arg, q) : -EBADMSG;
	queue_quarantine_free(q);
	return ret;
}

int queue_quarantine_walk(struct queue_txn *txn, uint64_t from, queue_quarantine_walk_cb *cb,
    void *arg)
{
	struct queue_quarantine_walk w = { cb, arg };

	if (!queue_quarantine_db(txn))
		return 0;
	return queue__walk_ids(txn, txn->store->db_quarantine, from, queue_quarantine_walk_one,
	    &w);
}

static int queue_quarantine_del_record(struct queue_txn *txn, uint64_t id)
{
	uint8_t key[QUEUE_KEY_ID_LEN];
	MDB_val k = { sizeof key, key };

	queue__be64_put(key, id);
	return queue__lmdb_err(mdb_del(txn->txn, txn->store->db_quarantine, &k, NULL));
}

int queue_quarantine_release(struct queue_txn *txn, uint64_t id, int64_t now,
    struct queue_quarantine **out)
{
	struct queue_quarantine *q = NULL;
	struct queue_msg *clash = NULL;
	struct queue_msg *m;
	int rc;

	if (out != NULL)
		*out = NULL;
	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	if ((rc = queue_quarantine_get(txn, id, &q)) < 0)
		return rc;
	/* A queued message under the same id would be overwritten: never. */
	rc = queue_msg_get(txn, id, &clash);
	queue_msg_free(clash);
	if (rc != -ENOENT) {
		queue_quarantine_free(q);
		return rc == 0 ? -EEXIST : rc;
	}
	m = q->msg;
	/* As if it had passed: every recipient pending and due now, nothing held. */
	m->arrival = now;
	m->held = false;
	free(m->hold_reason);
	m->hold_reason = NULL;
	for (size_t i = 0; i < m->nrcpts; i++) {
		struct queue_rcpt *r = &m->rcpts[i];

		r->state = QUEUE_RCPT_PENDING;
		r->attempts = 0;
		r->next_attempt = now;
		r->done_at = 0;
		r->last_code = 0;
		free(r->last_reply);
		r->last_reply = NULL;
	}
	rc = queue_quarantine_del_record(txn, id);
	if (rc == 0)
		rc = queue_msg_put(txn, m); /* with its schedule entry */
	if (rc == 0 && out != NULL)
		*out = q;
	else
		queue_quarantine_free(q);
	return rc;
}

int queue_quarantine_delete(struct queue_txn *txn, uint64_t id)
{
	int rc;

	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	if ((rc = queue_quarantine_del_record(txn, id)) < 0)
		return rc;
	return queue_body_delete(txn, id);
}

/* ------------------------------------------------------------ retention */

struct queue_quar_expiring {
	int64_t before;          /* quarantined at or before this (unix ms) */
	uint64_t *ids;
	size_t n, max;
	bool more;
};

static int queue_quar_expiring_cb(void *arg, const struct queue_quarantine *q)
{
	struct queue_quar_expiring *e = arg;

	if (q->time > e->before)
		return 0;
	if (e->n == e->max) {
		e->more = true;
		return 1;
	}
	e->ids[e->n++] = q->id;
	return 0;
}

/* One expired message out, and its audit record, as an operator's delete is. */
static int queue_quar_expire_one(struct queue_txn *txn, uint64_t id, int64_t now)
{
	struct queue_quarantine *q = NULL;
	char qid[QUEUE_ID_TEXT_LEN + 1];
	int rc;

	if ((rc = queue_quarantine_get(txn, id, &q)) < 0)
		return rc;
	queue_id_format(id, qid);
	rc = queue_quarantine_delete(txn, id);
	if (rc == 0) {
		const struct queue_audit_field f[4] = {
			{ "tenant", q->tenants }, { "object", qid }, { "rule", q->rule },
			{ "reason", q->reason },
		};

		rc = queue_audit_admin(txn, now, qid, "quarantine.expire", "govrelayd", "retention",
		    f, 4);
	}
	queue_quarantine_free(q);
	return rc;
}

int queue_quarantine_expire(struct queue_txn *txn, int64_t now, uint64_t lifetime_ms,
    size_t max, size_t *expired, bool *more)
{
	struct queue_quar_expiring e = { 0 };
	int rc;

	*expired = 0;
	*more = false;
	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	if (lifetime_ms == 0 || max == 0 || lifetime_ms > (uint64_t)now)
		return 0;
	e.before = now - (int64_t)lifetime_ms;
	e.max = max;
	e.ids = xreallocarray(NULL, max, sizeof *e.ids);
	rc = queue_quarantine_walk(txn, 0, queue_quar_expiring_cb, &e);
	if (rc > 0)
		rc = 0;     /* the batch is full */
	for (size_t i = 0; rc == 0 && i < e.n; i++)
		if ((rc = queue_quar_expire_one(txn, e.ids[i], now)) == 0)
			(*expired)++;
	free(e.ids);
	*more = e.more;
	return rc;
}
