/*
 * tenancy_operator: the operators table (queue/tenancy.h, layout in
 * queue/schema.h): the unix users delegated to administer one tenant's
 * subtree, with their role.
 *
 * Entry points: queue_role_name, queue_role_parse,
 * queue_operator_put/get/delete/walk/free; inside queue/
 * tenancy__operator_decode (tenancy_int.h).
 *
 * OWNERSHIP: getters return fresh records freed with queue_operator_free
 * (which accepts NULL); on failure *out is NULL. Records passed to walk
 * callbacks are borrowed for the call. Every argument is borrowed.
 * THREADS: any thread that owns the txn; the role names on any thread.
 * ERRORS: 0 or negative errno: -EINVAL (bad argument, or a write on a
 * read txn), -ENOENT, -EBADMSG (a record does not decode), -ENOSPC,
 * -EIO. queue_operator_put explains every refusal in `why` (may be NULL).
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

/* -------------------------------------------------------------- operators */

const char *queue_role_name(enum queue_operator_role r)
{
	switch (r) {
	case QUEUE_ROLE_POSTMASTER: return "postmaster";
	case QUEUE_ROLE_AUDITOR: return "auditor";
	case QUEUE_ROLE_SECURITY: return "security";
	}
	return "unknown";
}

int queue_role_parse(const char *s, enum queue_operator_role *r)
{
	if (s != NULL && strcmp(s, "postmaster") == 0) {
		*r = QUEUE_ROLE_POSTMASTER;
		return 0;
	}
	if (s != NULL && strcmp(s, "auditor") == 0) {
		*r = QUEUE_ROLE_AUDITOR;
		return 0;
	}
	if (s != NULL && strcmp(s, "security") == 0) {
		*r = QUEUE_ROLE_SECURITY;
		return 0;
	}
	return -EINVAL;
}

void queue_operator_free(struct queue_operator *o)
{
	if (o == NULL)
		return;
	free(o->unix_user);
	free(o->tenant);
	free(o);
}

int tenancy__operator_decode(const MDB_val *k, const MDB_val *v,
    struct queue_operator **out)
{
	struct queue_dec d = { v->mv_data, v->mv_size };
	struct queue_operator *o = xcalloc(1, sizeof *o);
	uint64_t created;
	uint8_t version, role;
	int rc;

	*out = NULL;
	if ((rc = queue__dec_u8(&d, &version)) < 0)
		goto fail;
	rc = -EBADMSG;
	if (version != QUEUE_OPERATOR_ENC_VERSION)
		goto fail;
	if ((rc = queue__dec_str(&d, &o->unix_user)) < 0 ||
	    (rc = queue__dec_str(&d, &o->tenant)) < 0 ||
	    (rc = queue__dec_u8(&d, &role)) < 0 ||
	    (rc = queue__dec_u64(&d, &created)) < 0)
		goto fail;
	rc = -EBADMSG;
	if (d.left != 0 || o->unix_user == NULL || o->tenant == NULL ||
	    !tenancy__key_is(k, o->unix_user) || role > QUEUE_ROLE_SECURITY)
		goto fail;
	o->role = (enum queue_operator_role)role;
	o->created = (int64_t)created;
	*out = o;
	return 0;
fail:
	queue_operator_free(o);
	return rc;
}

int queue_operator_put(struct queue_txn *txn, const struct queue_operator *o, char *why,
    size_t whylen)
{
	struct queue_tenant *t;
	struct buf b;
	int rc;

	tenancy__why_clear(why, whylen);
	if ((rc = queue__need_write(txn)) < 0)
		return tenancy__fail(why, whylen, rc, "a read transaction cannot write");
	if ((rc = tenancy_unix_user_check(o->unix_user, why, whylen)) < 0 ||
	    (rc = tenancy_id_check(o->tenant, why, whylen)) < 0)
		return rc;
	if (o->role != QUEUE_ROLE_POSTMASTER && o->role != QUEUE_ROLE_AUDITOR &&
	    o->role != QUEUE_ROLE_SECURITY)
		return tenancy__fail(why, whylen, -EINVAL, "unknown operator role %d",
		    (int)o->role);
	rc = tenancy__tenant_load(txn, o->tenant, &t);
	queue_tenant_free(t);
	if (rc == -ENOENT)
		return tenancy__fail(why, whylen, rc, "tenant %s does not exist", o->tenant);
	if (rc < 0)
		return tenancy__fail(why, whylen, rc, "%s", queue_strerror(rc));
	buf_init(&b);
	queue__enc_u8(&b, QUEUE_OPERATOR_ENC_VERSION);
	queue__enc_str(&b, o->unix_user);
	queue__enc_str(&b, o->tenant);
	queue__enc_u8(&b, (uint8_t)o->role);
	queue__enc_u64(&b, (uint64_t)o->created);
	rc = tenancy__raw_put(txn, TENANCY_DB_OPERATORS, o->unix_user, strlen(o->unix_user),
	    b.data, b.len);
	buf_free(&b);
	if (rc < 0)
		tenancy__fail(why, whylen, rc, "%s", queue_strerror(rc));
	return rc;
}

int queue_operator_get(struct queue_txn *txn, const char *unix_user, struct queue_operator **out)
{
	MDB_val k, v;
	int rc;

	*out = NULL;
	if ((rc = tenancy_unix_user_check(unix_user, NULL, 0)) < 0)
		return rc;
	k.mv_size = strlen(unix_user);
	k.mv_data = (void *)unix_user;
	if ((rc = tenancy__raw_get(txn, TENANCY_DB_OPERATORS, unix_user, k.mv_size, &v)) < 0)
		return rc;
	return tenancy__operator_decode(&k, &v, out);
}

int queue_operator_delete(struct queue_txn *txn, const char *unix_user)
{
	int rc;

	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	if ((rc = tenancy_unix_user_check(unix_user, NULL, 0)) < 0)
		return rc;
	return tenancy__raw_del(txn, TENANCY_DB_OPERATORS, unix_user, strlen(unix_user));
}

struct tenancy_operator_walk {
	queue_operator_walk_cb *cb;
	void *arg;
};

static int tenancy_operator_walk_cb(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct tenancy_operator_walk *w = arg;
	struct queue_operator *o;
	int rc;

	if ((rc = tenancy__operator_decode(k, v, &o)) < 0)
		return rc;
	rc = w->cb(w->arg, o);
	queue_operator_free(o);
	return rc;
}

int queue_operator_walk(struct queue_txn *txn, queue_operator_walk_cb *cb, void *arg)
{
	struct tenancy_operator_walk w = { cb, arg };

	return tenancy__raw_walk(txn, TENANCY_DB_OPERATORS, NULL, 0, tenancy_operator_walk_cb, &w);
}
