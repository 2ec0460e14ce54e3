/*
 * tenancy_user: the users table (queue/tenancy.h, layout in
 * queue/schema.h): who may submit mail, their password hash and lockout
 * state, and whom they may send as.
 *
 * Entry points: queue_user_put/get/delete/walk/free,
 * queue_user_may_send_as.
 *
 * OWNERSHIP: getters return fresh records freed with queue_user_free
 * (which accepts NULL); on failure *out is NULL. Records passed to walk
 * callbacks are borrowed for the call. Every argument is borrowed.
 * THREADS: any thread that owns the txn.
 * ERRORS: 0 or negative errno: -EINVAL (bad argument, or a write on a
 * read txn), -ENOENT, -EBADMSG (a record does not decode), -ENOSPC,
 * -EIO. queue_user_put explains every refusal in `why` (may be NULL).
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/schema.h"
#include "queue/tenancy.h"
#include "queue/tenancy_int.h"

#define TENANCY_HASH_MAX 1024        /* an opaque password hash, bytes */

#define TENANCY_USER_LOCKED 0x1u
#define TENANCY_USER_LOCKED_OUT 0x2u

/* ------------------------------------------------------------------ users */

void queue_user_free(struct queue_user *u)
{
	if (u == NULL)
		return;
	free(u->address);
	free(u->hash);
	free(u);
}

static int tenancy_user_decode(const MDB_val *k, const MDB_val *v, struct queue_user **out)
{
	struct queue_dec d = { v->mv_data, v->mv_size };
	struct queue_user *u = xcalloc(1, sizeof *u);
	uint64_t last, created;
	uint8_t version, flags;
	int rc;

	*out = NULL;
	if ((rc = queue__dec_u8(&d, &version)) < 0)
		goto fail;
	rc = -EBADMSG;
	if (version != QUEUE_USER_ENC_VERSION)
		goto fail;
	if ((rc = queue__dec_str(&d, &u->address)) < 0 ||
	    (rc = queue__dec_str(&d, &u->hash)) < 0 ||
	    (rc = queue__dec_u8(&d, &flags)) < 0 ||
	    (rc = queue__dec_u32(&d, &u->failures)) < 0 ||
	    (rc = queue__dec_u64(&d, &last)) < 0 ||
	    (rc = queue__dec_u64(&d, &created)) < 0)
		goto fail;
	rc = -EBADMSG;
	if (d.left != 0 || u->address == NULL || u->hash == NULL ||
	    !tenancy__key_is(k, u->address) ||
	    (flags & ~(TENANCY_USER_LOCKED | TENANCY_USER_LOCKED_OUT)) != 0)
		goto fail;
	u->locked = (flags & TENANCY_USER_LOCKED) != 0;
	u->locked_out = (flags & TENANCY_USER_LOCKED_OUT) != 0;
	u->last_failure = (int64_t)last;
	u->created = (int64_t)created;
	*out = u;
	return 0;
fail:
	queue_user_free(u);
	return rc;
}

int queue_user_put(struct queue_txn *txn, const struct queue_user *u, char *why, size_t whylen)
{
	struct tenancy_addr a;
	struct buf b;
	int rc;

	tenancy__why_clear(why, whylen);
	if ((rc = queue__need_write(txn)) < 0)
		return tenancy__fail(why, whylen, rc, "a read transaction cannot write");
	if ((rc = tenancy__addr_split(u->address, "user address", &a, why, whylen)) < 0)
		return rc;
	if (u->hash == NULL || u->hash[0] == '\0' || strlen(u->hash) > TENANCY_HASH_MAX)
		return tenancy__fail(why, whylen, -EINVAL, "user %s has no usable password hash",
		    u->address);
	if ((rc = tenancy__domain_is_ours(txn, &a, why, whylen)) < 0)
		return rc;
	buf_init(&b);
	queue__enc_u8(&b, QUEUE_USER_ENC_VERSION);
	queue__enc_str(&b, u->address);
	queue__enc_str(&b, u->hash);
	queue__enc_u8(&b, (uint8_t)((u->locked ? TENANCY_USER_LOCKED : 0) |
	    (u->locked_out ? TENANCY_USER_LOCKED_OUT : 0)));
	queue__enc_u32(&b, u->failures);
	queue__enc_u64(&b, (uint64_t)u->last_failure);
	queue__enc_u64(&b, (uint64_t)u->created);
	rc = tenancy__raw_put(txn, TENANCY_DB_USERS, u->address, strlen(u->address),
	    b.data, b.len);
	buf_free(&b);
	if (rc < 0)
		tenancy__fail(why, whylen, rc, "%s", queue_strerror(rc));
	return rc;
}

int queue_user_get(struct queue_txn *txn, const char *address, struct queue_user **out)
{
	struct tenancy_addr a;
	MDB_val k, v;
	int rc;

	*out = NULL;
	if ((rc = tenancy__addr_split(address, "address", &a, NULL, 0)) < 0)
		return rc;
	k.mv_size = strlen(address);
	k.mv_data = (void *)address;
	if ((rc = tenancy__raw_get(txn, TENANCY_DB_USERS, address, k.mv_size, &v)) < 0)
		return rc;
	return tenancy_user_decode(&k, &v, out);
}

int queue_user_delete(struct queue_txn *txn, const char *address)
{
	struct tenancy_addr a;
	int rc;

	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	if ((rc = tenancy__addr_split(address, "address", &a, NULL, 0)) < 0)
		return rc;
	return tenancy__raw_del(txn, TENANCY_DB_USERS, address, strlen(address));
}

struct tenancy_user_walk {
	queue_user_walk_cb *cb;
	void *arg;
};

static int tenancy_user_walk_cb(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct tenancy_user_walk *w = arg;
	struct queue_user *u;
	int rc;

	if ((rc = tenancy_user_decode(k, v, &u)) < 0)
		return rc;
	rc = w->cb(w->arg, u);
	queue_user_free(u);
	return rc;
}

int queue_user_walk(struct queue_txn *txn, queue_user_walk_cb *cb, void *arg)
{
	struct tenancy_user_walk w = { cb, arg };

	return tenancy__raw_walk(txn, TENANCY_DB_USERS, NULL, 0, tenancy_user_walk_cb, &w);
}

int queue_user_may_send_as(struct queue_txn *txn, const char *user, const char *sender,
    bool *ok)
{
	struct queue_mailbox *m = NULL;
	int rc;

	*ok = false;
	if (user == NULL || sender == NULL)
		return -EINVAL;
	if (strcmp(user, sender) == 0) {
		*ok = true;
		return 0;
	}
	/*
	 * Only a direct target counts: a user reached through a chain of
	 * aliases (a list of lists) may receive as the outer list but not
	 * speak for it (RFC 6409 section 8.1 leaves the rule to the MSA).
	 */
	rc = queue_mailbox_get(txn, sender, &m);
	if (rc == -ENOENT || rc == -EINVAL)
		return 0;
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < m->nalias_of; i++) {
		if (strcmp(m->alias_of[i], user) == 0) {
			*ok = true;
			break;
		}
	}
	queue_mailbox_free(m);
	return 0;
}
