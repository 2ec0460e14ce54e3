/*
 * tenancy_tenant: the tenants table (queue/tenancy.h, layout in
 * queue/schema.h): the agencies in their hierarchy, and which tenant a
 * domain or an address belongs to.
 *
 * Entry points: queue_tenant_put/get/delete/walk/within/free,
 * queue_tenant_of_domain, queue_tenant_of_address; inside queue/
 * tenancy__tenant_load and tenancy__parent_of (tenancy_int.h).
 *
 * The hierarchy is kept a tree of at most TENANCY_DEPTH_MAX levels: a
 * put that would make a cycle or too deep a subtree is refused, and
 * every walk up a chain is bounded, so a cycle written by other means
 * ends it too. The integrity checks of a delete (children, operators,
 * owned domains) scan their tables, which are small.
 *
 * OWNERSHIP: getters return fresh records freed with queue_tenant_free
 * (which accepts NULL); on failure *out is NULL. Records passed to walk
 * callbacks are borrowed for the call. Every argument is borrowed.
 * THREADS: any thread that owns the txn.
 * ERRORS: 0 or negative errno: -EINVAL (bad argument, or a write on a
 * read txn), -ENOENT, -ENOTEMPTY, -ELOOP, -EBADMSG (a record does not
 * decode), -ENOSPC, -EIO. Functions with a `why` buffer explain every
 * refusal there (why may be NULL).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/schema.h"
#include "queue/tenancy.h"
#include "queue/tenancy_int.h"

/* ---------------------------------------------------------------- tenants */

void queue_tenant_free(struct queue_tenant *t)
{
	if (t == NULL)
		return;
	free(t->id);
	free(t->name);
	free(t->parent);
	free(t);
}

static int tenancy_tenant_decode(const MDB_val *k, const MDB_val *v, struct queue_tenant **out)
{
	struct queue_dec d = { v->mv_data, v->mv_size };
	struct queue_tenant *t = xcalloc(1, sizeof *t);
	uint64_t created;
	uint8_t version;
	int rc;

	*out = NULL;
	if ((rc = queue__dec_u8(&d, &version)) < 0)
		goto fail;
	rc = -EBADMSG;
	if (version != QUEUE_TENANT_ENC_VERSION)
		goto fail;
	if ((rc = queue__dec_str(&d, &t->id)) < 0 ||
	    (rc = queue__dec_str(&d, &t->name)) < 0 ||
	    (rc = queue__dec_str(&d, &t->parent)) < 0 ||
	    (rc = queue__dec_u64(&d, &created)) < 0)
		goto fail;
	rc = -EBADMSG;
	if (d.left != 0 || t->id == NULL || t->name == NULL || !tenancy__key_is(k, t->id))
		goto fail;
	t->created = (int64_t)created;
	*out = t;
	return 0;
fail:
	queue_tenant_free(t);
	return rc;
}

int tenancy__tenant_load(struct queue_txn *txn, const char *id, struct queue_tenant **out)
{
	MDB_val k = { strlen(id), (void *)id }, v;
	int rc;

	*out = NULL;
	if ((rc = tenancy__raw_get(txn, TENANCY_DB_TENANTS, id, strlen(id), &v)) < 0)
		return rc;
	return tenancy_tenant_decode(&k, &v, out);
}

int queue_tenant_get(struct queue_txn *txn, const char *id, struct queue_tenant **out)
{
	int rc;

	*out = NULL;
	if ((rc = tenancy_id_check(id, NULL, 0)) < 0)
		return rc;
	return tenancy__tenant_load(txn, id, out);
}

/*
 * The parent of id into *parent (fresh, NULL for a root). -ENOENT when
 * id does not exist.
 */
int tenancy__parent_of(struct queue_txn *txn, const char *id, char **parent)
{
	struct queue_tenant *t;
	int rc;

	*parent = NULL;
	if ((rc = tenancy__tenant_load(txn, id, &t)) < 0)
		return rc;
	*parent = t->parent;
	t->parent = NULL;
	queue_tenant_free(t);
	return 0;
}

struct tenancy_height {
	struct queue_txn *txn;
	const char *top;
	unsigned height;   /* levels below top, 0 for a leaf */
};

/* For one tenant x: how far below top is it, if it is? */
static int tenancy_height_cb(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct tenancy_height *h = arg;
	struct queue_tenant *t;
	char *cur, *next;
	int rc;

	if ((rc = tenancy_tenant_decode(k, v, &t)) < 0)
		return rc;
	cur = t->parent;
	t->parent = NULL;
	queue_tenant_free(t);
	for (unsigned up = 1; cur != NULL; up++) {
		if (strcmp(cur, h->top) == 0) {
			if (up > h->height)
				h->height = up;
			break;
		}
		if (up > TENANCY_DEPTH_MAX) {
			free(cur);
			return -ELOOP;
		}
		rc = tenancy__parent_of(h->txn, cur, &next);
		free(cur);
		if (rc == -ENOENT)
			return 0;
		if (rc < 0)
			return rc;
		cur = next;
	}
	free(cur);
	return 0;
}

static void tenancy_tenant_encode(const struct queue_tenant *t, struct buf *b)
{
	queue__enc_u8(b, QUEUE_TENANT_ENC_VERSION);
	queue__enc_str(b, t->id);
	queue__enc_str(b, t->name);
	queue__enc_str(b, t->parent);
	queue__enc_u64(b, (uint64_t)t->created);
}

int queue_tenant_put(struct queue_txn *txn, const struct queue_tenant *t,
    char *why, size_t whylen)
{
	char shown[TENANCY_SHOWN_MAX + 4];
	struct queue_tenant *old = NULL;
	unsigned above = 0;   /* ancestors the new record will have */
	char *cur = NULL, *next;
	struct buf b;
	int rc;

	tenancy__why_clear(why, whylen);
	if ((rc = queue__need_write(txn)) < 0)
		return tenancy__fail(why, whylen, rc, "a read transaction cannot write");
	if ((rc = tenancy_id_check(t->id, why, whylen)) < 0 ||
	    (rc = tenancy_name_check(t->name, why, whylen)) < 0)
		return rc;
	if (t->parent != NULL) {
		if ((rc = tenancy_id_check(t->parent, why, whylen)) < 0)
			return rc;
		if (strcmp(t->parent, t->id) == 0)
			return tenancy__fail(why, whylen, -ELOOP,
			    "tenant %s cannot be its own parent", t->id);
		/*
		 * Walk up from the parent: meeting t itself means t would be
		 * its own ancestor. The walk is bounded, so a cycle already in
		 * the store (written by other means) ends it too.
		 */
		cur = xstrdup(t->parent);
		while (cur != NULL) {
			if (strcmp(cur, t->id) == 0) {
				rc = tenancy__fail(why, whylen, -ELOOP,
				    "tenant %s lies below %s, so it cannot be its parent",
				    t->parent, t->id);
				goto out;
			}
			if (++above >= TENANCY_DEPTH_MAX) {
				rc = tenancy__fail(why, whylen, -ELOOP,
				    "tenant %s would be more than %d levels deep", t->id,
				    TENANCY_DEPTH_MAX);
				goto out;
			}
			rc = tenancy__parent_of(txn, cur, &next);
			if (rc == -ENOENT && above == 1) {
				rc = tenancy__fail(why, whylen, -ENOENT,
				    "parent tenant %s does not exist",
				    tenancy__shown(t->parent, shown));
				goto out;
			}
			if (rc == -ENOENT)
				break;   /* a broken chain ends like a root */
			if (rc < 0)
				goto out;
			free(cur);
			cur = next;
		}
	}
	/*
	 * Moving an existing tenant moves its subtree too: the deepest of
	 * its descendants must stay within TENANCY_DEPTH_MAX.
	 */
	rc = tenancy__tenant_load(txn, t->id, &old);
	if (rc < 0 && rc != -ENOENT)
		goto out;
	if (rc == 0) {
		struct tenancy_height h = { txn, t->id, 0 };

		if ((rc = tenancy__raw_walk(txn, TENANCY_DB_TENANTS, NULL, 0,
		    tenancy_height_cb, &h)) < 0)
			goto out;
		if (above + 1 + h.height > TENANCY_DEPTH_MAX) {
			rc = tenancy__fail(why, whylen, -ELOOP,
			    "moving tenant %s would put its subtree more than %d levels deep",
			    t->id, TENANCY_DEPTH_MAX);
			goto out;
		}
	}
	buf_init(&b);
	tenancy_tenant_encode(t, &b);
	rc = tenancy__raw_put(txn, TENANCY_DB_TENANTS, t->id, strlen(t->id), b.data, b.len);
	buf_free(&b);
	if (rc < 0)
		tenancy__fail(why, whylen, rc, "%s", queue_strerror(rc));
out:
	free(cur);
	queue_tenant_free(old);
	return rc;
}

struct tenancy_find {
	struct queue_txn *txn;
	const char *id;
	char *found;       /* fresh: the first record that refers to id */
};

static int tenancy_owner_domain_cb(void *arg, const struct queue_domain *d)
{
	struct tenancy_find *f = arg;

	if (d->tenant == NULL || strcmp(d->tenant, f->id) != 0)
		return 0;
	f->found = xstrdup(d->name);
	return 1;
}

static int tenancy_child_cb(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct tenancy_find *f = arg;
	struct queue_tenant *t;
	int rc;

	if ((rc = tenancy_tenant_decode(k, v, &t)) < 0)
		return rc;
	if (t->parent != NULL && strcmp(t->parent, f->id) == 0) {
		f->found = t->id;
		t->id = NULL;
		rc = 1;
	}
	queue_tenant_free(t);
	return rc;
}

static int tenancy_named_by_cb(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct tenancy_find *f = arg;
	struct queue_operator *o;
	int rc;

	if ((rc = tenancy__operator_decode(k, v, &o)) < 0)
		return rc;
	if (strcmp(o->tenant, f->id) == 0) {
		f->found = o->unix_user;
		o->unix_user = NULL;
		rc = 1;
	}
	queue_operator_free(o);
	return rc;
}

/* Collects the keys of one tenant's policy range (for deleting them). */
static int tenancy_collect_cb(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct buf *keys = arg;
	uint32_t len = (uint32_t)k->mv_size;

	(void)v;
	buf_append(keys, &len, sizeof len);
	buf_append(keys, k->mv_data, k->mv_size);
	return 0;
}

int queue_tenant_delete(struct queue_txn *txn, const char *id, char *why, size_t whylen)
{
	struct tenancy_find f = { txn, id, NULL };
	char prefix[TENANCY_ID_MAX + 1];
	struct queue_tenant *t;
	struct buf keys;
	size_t off;
	int rc;

	tenancy__why_clear(why, whylen);
	if ((rc = queue__need_write(txn)) < 0)
		return tenancy__fail(why, whylen, rc, "a read transaction cannot write");
	if ((rc = tenancy_id_check(id, why, whylen)) < 0)
		return rc;
	rc = tenancy__tenant_load(txn, id, &t);
	queue_tenant_free(t);
	if (rc == -ENOENT)
		return tenancy__fail(why, whylen, rc, "no tenant %s", id);
	if (rc < 0)
		return tenancy__fail(why, whylen, rc, "%s", queue_strerror(rc));

	rc = queue_domain_walk(txn, tenancy_owner_domain_cb, &f);
	if (rc == 1) {
		rc = tenancy__fail(why, whylen, -ENOTEMPTY, "tenant %s still owns domain %s",
		    id, f.found);
		goto out;
	}
	if (rc == 0)
		rc = tenancy__raw_walk(txn, TENANCY_DB_TENANTS, NULL, 0, tenancy_child_cb, &f);
	if (rc == 1) {
		rc = tenancy__fail(why, whylen, -ENOTEMPTY,
		    "tenant %s still has child tenant %s", id, f.found);
		goto out;
	}
	if (rc == 0)
		rc = tenancy__raw_walk(txn, TENANCY_DB_OPERATORS, NULL, 0,
		    tenancy_named_by_cb, &f);
	if (rc == 1) {
		rc = tenancy__fail(why, whylen, -ENOTEMPTY, "tenant %s is named by operator %s",
		    id, f.found);
		goto out;
	}
	if (rc < 0) {
		tenancy__fail(why, whylen, rc, "%s", queue_strerror(rc));
		goto out;
	}

	/*
	 * The tenant's own policy settings go with it; keys are collected
	 * first because deleting under a cursor that walks a range is the
	 * kind of LMDB subtlety not worth having for a handful of records.
	 */
	memcpy(prefix, id, strlen(id) + 1);
	buf_init(&keys);
	rc = tenancy__raw_walk(txn, TENANCY_DB_POLICIES, prefix, strlen(id) + 1,
	    tenancy_collect_cb, &keys);
	for (off = 0; rc == 0 && off < keys.len;) {
		uint32_t len;

		memcpy(&len, keys.data + off, sizeof len);
		off += sizeof len;
		rc = tenancy__raw_del(txn, TENANCY_DB_POLICIES, keys.data + off, len);
		off += len;
	}
	buf_free(&keys);
	if (rc == 0)
		rc = tenancy__raw_del(txn, TENANCY_DB_TENANTS, id, strlen(id));
	if (rc < 0)
		tenancy__fail(why, whylen, rc, "%s", queue_strerror(rc));
out:
	free(f.found);
	return rc;
}

struct tenancy_tenant_walk {
	queue_tenant_walk_cb *cb;
	void *arg;
};

static int tenancy_tenant_walk_cb(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct tenancy_tenant_walk *w = arg;
	struct queue_tenant *t;
	int rc;

	if ((rc = tenancy_tenant_decode(k, v, &t)) < 0)
		return rc;
	rc = w->cb(w->arg, t);
	queue_tenant_free(t);
	return rc;
}

int queue_tenant_walk(struct queue_txn *txn, queue_tenant_walk_cb *cb, void *arg)
{
	struct tenancy_tenant_walk w = { cb, arg };

	return tenancy__raw_walk(txn, TENANCY_DB_TENANTS, NULL, 0, tenancy_tenant_walk_cb, &w);
}

int queue_tenant_within(struct queue_txn *txn, const char *tenant, const char *ancestor,
    bool *within)
{
	char *cur, *next;
	int rc;

	*within = false;
	if ((rc = tenancy_id_check(tenant, NULL, 0)) < 0)
		return rc;
	if (ancestor == NULL)
		return -EINVAL;
	cur = xstrdup(tenant);
	for (unsigned depth = 0; cur != NULL; depth++) {
		if (depth >= TENANCY_DEPTH_MAX) {
			free(cur);
			return -ELOOP;
		}
		rc = tenancy__parent_of(txn, cur, &next);
		/* Only the tenant itself must exist; a broken chain ends it. */
		if (rc == -ENOENT && depth > 0)
			break;
		if (rc < 0) {
			free(cur);
			return rc;
		}
		if (strcmp(cur, ancestor) == 0) {
			*within = true;
			free(next);
			break;
		}
		free(cur);
		cur = next;
	}
	free(cur);
	return 0;
}

/* --------------------------------------------------- tenant of a domain */

int queue_tenant_of_domain(struct queue_txn *txn, const char *domain, char **tenant)
{
	struct queue_domain *d = NULL;
	int rc;

	*tenant = NULL;
	if ((rc = queue_domain_get(txn, domain, &d)) < 0)
		return rc;
	if (d->tenant != NULL)
		*tenant = xstrdup(d->tenant);
	queue_domain_free(d);
	return 0;
}

int queue_tenant_of_address(struct queue_txn *txn, const char *address, char **tenant)
{
	const char *at;
	int rc;

	*tenant = NULL;
	if (address == NULL || (at = strrchr(address, '@')) == NULL || at[1] == '\0')
		return -EINVAL;
	if ((rc = queue_tenant_of_domain(txn, at + 1, tenant)) < 0)
		return rc;
	/* A domain of ours without a tenant answers to nobody's policy. */
	return *tenant != NULL ? 0 : -ENOENT;
}
