/*
 * tenancy: the tenancy tables of the queue's LMDB store (queue/tenancy.h,
 * layouts in queue/schema.h): tenants and their hierarchy, mailboxes and
 * aliases, users, per-tenant policy with inheritance, and operators.
 *
 * Entry points: tenancy_id_check, tenancy_name_check,
 * tenancy_unix_user_check, tenancy_policy_key_find/normalize;
 * queue_tenant_put/get/delete/walk/within, queue_mailbox_put/get/delete/
 * walk/walk_domain/count_domain, queue_alias_expand, queue_user_put/get/
 * delete/walk/may_send_as, queue_policy_set/get/effective,
 * queue_operator_put/get/delete/walk, queue_role_name/parse,
 * queue_tenant_of_domain, queue_tenant_of_address, and the *_free functions.
 *
 * The tables are small except mailboxes (a city has 10^5 of them), so the
 * integrity checks of a tenant change (children, operators, owned
 * domains) scan their tables, while everything about mailboxes goes by
 * key or by one domain's cursor range (DOMAIN + 0x00 + LOCALPART).
 * Addresses and domains must already be canonical (common/addr.h); this
 * file checks only what keeps the keys unambiguous (one '@' split, a
 * lowercase LDH domain, no control bytes), not the full RFC 5321 syntax.
 *
 * OWNERSHIP: getters return fresh records freed with the matching
 * *_free (which accept NULL); on failure *out is NULL. Records passed to
 * walk callbacks are borrowed for the call. Every argument is borrowed.
 * THREADS: any thread that owns the txn; the pure checks on any thread.
 * ERRORS: 0 or negative errno: -EINVAL (bad argument, or a write on a
 * read txn), -ENOENT, -EEXIST, -ENOTEMPTY, -ELOOP, -EBADMSG (a record
 * does not decode), -ENOSPC, -EIO. Functions with a `why` buffer explain
 * every refusal there (why may be NULL).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/schema.h"
#include "queue/tenancy.h"

#define TENANCY_SHOWN_MAX 80         /* bytes of a value quoted in `why` */
#define TENANCY_HASH_MAX 1024        /* an opaque password hash, bytes */
#define TENANCY_MAILBOX_KEY_MAX (ADDR_DOMAIN_MAX + 1 + ADDR_LOCAL_MAX)
#define TENANCY_POLICY_KEY_MAX (TENANCY_ID_MAX + 1 + 64)
#define TENANCY_POLICY_SIZE_MAX (UINT64_C(1) << 40)
#define TENANCY_POLICY_COUNT_MAX UINT64_C(1000000000)

#define TENANCY_USER_LOCKED 0x1u
#define TENANCY_USER_LOCKED_OUT 0x2u

enum tenancy_db {
	TENANCY_DB_TENANTS,
	TENANCY_DB_MAILBOXES,
	TENANCY_DB_USERS,
	TENANCY_DB_POLICIES,
	TENANCY_DB_OPERATORS,
};

/* -------------------------------------------------------------- helpers */

static int tenancy_fail(char *why, size_t whylen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int tenancy_fail(char *why, size_t whylen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static void tenancy_why_clear(char *why, size_t whylen)
{
	if (why != NULL && whylen > 0)
		why[0] = '\0';
}

/*
 * s as it may appear in a reason: control bytes become '?' (the reason
 * reaches a terminal or a log line), at most TENANCY_SHOWN_MAX bytes.
 */
static const char *tenancy_shown(const char *s, char out[TENANCY_SHOWN_MAX + 4])
{
	size_t i;

	if (s == NULL)
		return "(null)";
	for (i = 0; s[i] != '\0' && i < TENANCY_SHOWN_MAX; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	if (s[i] != '\0') {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

/*
 * The dbi of one of the tenancy databases. false when a read-only open
 * found the store without it (queue_int.h): it is then read as empty.
 */
static bool tenancy_db(const struct queue_txn *txn, enum tenancy_db which, MDB_dbi *dbi)
{
	const struct queue_store *s = txn->store;
	unsigned bit = 0;

	switch (which) {
	case TENANCY_DB_TENANTS:
		*dbi = s->db_tenants;
		bit = QUEUE_ABSENT_TENANTS;
		break;
	case TENANCY_DB_MAILBOXES:
		*dbi = s->db_mailboxes;
		bit = QUEUE_ABSENT_MAILBOXES;
		break;
	case TENANCY_DB_USERS:
		*dbi = s->db_users;
		bit = QUEUE_ABSENT_USERS;
		break;
	case TENANCY_DB_POLICIES:
		*dbi = s->db_policies;
		bit = QUEUE_ABSENT_POLICIES;
		break;
	case TENANCY_DB_OPERATORS:
		*dbi = s->db_operators;
		bit = QUEUE_ABSENT_OPERATORS;
		break;
	}
	return (s->absent & bit) == 0;
}

static int tenancy_raw_get(struct queue_txn *txn, enum tenancy_db which, const void *key,
    size_t klen, MDB_val *v)
{
	MDB_val k = { klen, (void *)key };
	MDB_dbi dbi;

	if (!tenancy_db(txn, which, &dbi))
		return -ENOENT;
	return queue__lmdb_err(mdb_get(txn->txn, dbi, &k, v));
}

/* The caller has checked queue__need_write. */
static int tenancy_raw_put(struct queue_txn *txn, enum tenancy_db which, const void *key,
    size_t klen, const void *data, size_t len)
{
	MDB_val k = { klen, (void *)key };
	MDB_val v = { len, (void *)data };
	MDB_dbi dbi;

	/* Unreachable: a write txn needs a read-write open, which creates it. */
	if (!tenancy_db(txn, which, &dbi))
		return -EROFS;
	return queue__lmdb_err(mdb_put(txn->txn, dbi, &k, &v, 0));
}

static int tenancy_raw_del(struct queue_txn *txn, enum tenancy_db which, const void *key,
    size_t klen)
{
	MDB_val k = { klen, (void *)key };
	MDB_dbi dbi;

	if (!tenancy_db(txn, which, &dbi))
		return -EROFS;
	return queue__lmdb_err(mdb_del(txn->txn, dbi, &k, NULL));
}

typedef int tenancy_raw_cb(void *arg, const MDB_val *k, const MDB_val *v);

/*
 * Every record whose key starts with prefix (plen 0: every record), in
 * key order, by one cursor: MDB_SET_RANGE lands on the first key >=
 * prefix and the walk ends at the first key without it, so a range costs
 * its own records, not the table. cb returns 0 to go on; anything else
 * stops the walk and is returned.
 */
static int tenancy_raw_walk(struct queue_txn *txn, enum tenancy_db which, const void *prefix,
    size_t plen, tenancy_raw_cb *cb, void *arg)
{
	MDB_cursor_op op = plen > 0 ? MDB_SET_RANGE : MDB_FIRST;
	MDB_cursor *c;
	MDB_val k = { plen, (void *)prefix }, v;
	MDB_dbi dbi;
	int rc, ret = 0;

	if (!tenancy_db(txn, which, &dbi))
		return 0;
	rc = mdb_cursor_open(txn->txn, dbi, &c);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	for (rc = mdb_cursor_get(c, &k, &v, op); rc == MDB_SUCCESS;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (plen > 0 && (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)) {
			rc = MDB_NOTFOUND;
			break;
		}
		if ((ret = cb(arg, &k, &v)) != 0)
			break;
	}
	mdb_cursor_close(c);
	if (ret != 0)
		return ret;
	return rc == MDB_NOTFOUND ? 0 : queue__lmdb_err(rc);
}

/* True when the key (not NUL-terminated) equals s. */
static bool tenancy_key_is(const MDB_val *k, const char *s)
{
	size_t len = s != NULL ? strlen(s) : 0;

	return s != NULL && k->mv_size == len && memcmp(k->mv_data, s, len) == 0;
}

/* --------------------------------------------------------------- syntax */

int tenancy_id_check(const char *id, char *why, size_t whylen)
{
	char shown[TENANCY_SHOWN_MAX + 4];
	size_t len;

	tenancy_why_clear(why, whylen);
	if (id == NULL || id[0] == '\0')
		return tenancy_fail(why, whylen, -EINVAL, "empty tenant id");
	len = strlen(id);
	if (len > TENANCY_ID_MAX)
		return tenancy_fail(why, whylen, -EINVAL,
		    "tenant id '%s' is longer than %d characters",
		    tenancy_shown(id, shown), TENANCY_ID_MAX);
	for (size_t i = 0; i < len; i++) {
		char c = id[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    (i > 0 && (c == '.' || c == '_' || c == '-'));

		if (!ok)
			return tenancy_fail(why, whylen, -EINVAL,
			    "tenant id '%s' must be lowercase letters, digits, '.', '_' "
			    "and '-', starting with a letter or digit",
			    tenancy_shown(id, shown));
	}
	return 0;
}

int tenancy_name_check(const char *name, char *why, size_t whylen)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t len;

	tenancy_why_clear(why, whylen);
	if (name == NULL || name[0] == '\0')
		return tenancy_fail(why, whylen, -EINVAL, "empty tenant name");
	len = strlen(name);
	if (len > TENANCY_NAME_MAX)
		return tenancy_fail(why, whylen, -EINVAL,
		    "tenant name is longer than %d bytes", TENANCY_NAME_MAX);
	for (size_t i = 0; i < len;) {
		size_t n;

		if (p[i] < 0x80) {
			if (p[i] < 0x20 || p[i] == 0x7f)
				return tenancy_fail(why, whylen, -EINVAL,
				    "tenant name contains a control character");
			i++;
			continue;
		}
		n = str_utf8_seq_len(p + i);
		if (n == 0)
			return tenancy_fail(why, whylen, -EINVAL,
			    "tenant name is not valid UTF-8");
		/* U+0080..U+009F, the C1 controls, are 0xC2 0x80..0x9F. */
		if (n == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0)
			return tenancy_fail(why, whylen, -EINVAL,
			    "tenant name contains a control character");
		i += n;
	}
	return 0;
}

int tenancy_unix_user_check(const char *user, char *why, size_t whylen)
{
	char shown[TENANCY_SHOWN_MAX + 4];
	size_t len;

	tenancy_why_clear(why, whylen);
	if (user == NULL || user[0] == '\0')
		return tenancy_fail(why, whylen, -EINVAL, "empty unix user name");
	len = strlen(user);
	if (len > TENANCY_UNIX_USER_MAX)
		return tenancy_fail(why, whylen, -EINVAL,
		    "unix user name '%s' is longer than %d characters",
		    tenancy_shown(user, shown), TENANCY_UNIX_USER_MAX);
	/*
	 * The portable subset useradd(8) accepts by default; Samba machine
	 * accounts' trailing '$' are no operators and are refused.
	 */
	for (size_t i = 0; i < len; i++) {
		char c = user[i];
		bool ok = (c >= 'a' && c <= 'z') || c == '_' ||
		    (i > 0 && ((c >= '0' && c <= '9') || c == '.' || c == '-'));

		if (!ok)
			return tenancy_fail(why, whylen, -EINVAL,
			    "unix user name '%s' must be lowercase letters, digits, '_', "
			    "'.' and '-', starting with a letter or '_'",
			    tenancy_shown(user, shown));
	}
	return 0;
}

/*
 * A canonical domain as the key part: 1..253 bytes of lowercase letters,
 * digits, '-' and '.', no empty label (A-labels, common/addr.h).
 */
static bool tenancy_domain_ok(const char *d, size_t len)
{
	if (len == 0 || len > ADDR_DOMAIN_MAX || d[0] == '.' || d[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = d[i];

		if (c == '.' && d[i + 1] == '.')
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* An address split at its last '@'. */
struct tenancy_addr {
	const char *local;
	size_t llen;
	const char *domain;
	size_t dlen;
};

/*
 * What the tables need of a canonical address: LOCAL@DOMAIN with a
 * local part of 1..64 bytes without control bytes and a canonical domain
 * (split at the last '@': a quoted local part may hold one).
 */
static int tenancy_addr_split(const char *addr, const char *what, struct tenancy_addr *a,
    char *why, size_t whylen)
{
	char shown[TENANCY_SHOWN_MAX + 4];
	const char *at;
	size_t len;

	if (addr == NULL || addr[0] == '\0')
		return tenancy_fail(why, whylen, -EINVAL, "empty %s", what);
	len = strlen(addr);
	at = strrchr(addr, '@');
	if (len > ADDR_MAX || at == NULL || at == addr)
		return tenancy_fail(why, whylen, -EINVAL, "%s '%s' is not LOCAL@DOMAIN",
		    what, tenancy_shown(addr, shown));
	a->local = addr;
	a->llen = (size_t)(at - addr);
	a->domain = at + 1;
	a->dlen = len - a->llen - 1;
	if (a->llen > ADDR_LOCAL_MAX)
		return tenancy_fail(why, whylen, -EINVAL,
		    "%s '%s' has a local part longer than %d bytes", what,
		    tenancy_shown(addr, shown), ADDR_LOCAL_MAX);
	for (size_t i = 0; i < a->llen; i++) {
		unsigned char c = (unsigned char)addr[i];

		if (c < 0x20 || c == 0x7f)
			return tenancy_fail(why, whylen, -EINVAL,
			    "%s '%s' contains a control character", what,
			    tenancy_shown(addr, shown));
	}
	if (!tenancy_domain_ok(a->domain, a->dlen))
		return tenancy_fail(why, whylen, -EINVAL,
		    "%s '%s' does not end in a canonical (lowercase, A-label) domain",
		    what, tenancy_shown(addr, shown));
	return 0;
}

/* The mailbox key DOMAIN + 0x00 + LOCAL (schema.h). */
static size_t tenancy_mailbox_key(const struct tenancy_addr *a,
    char key[TENANCY_MAILBOX_KEY_MAX])
{
	memcpy(key, a->domain, a->dlen);
	key[a->dlen] = '\0';
	memcpy(key + a->dlen + 1, a->local, a->llen);
	return a->dlen + 1 + a->llen;
}

/* The domain of a is in the domain table (-ENOENT with why otherwise). */
static int tenancy_domain_is_ours(struct queue_txn *txn, const struct tenancy_addr *a,
    char *why, size_t whylen)
{
	char name[ADDR_DOMAIN_MAX + 1];
	struct queue_domain *d = NULL;
	int rc;

	memcpy(name, a->domain, a->dlen);
	name[a->dlen] = '\0';
	rc = queue_domain_get(txn, name, &d);
	queue_domain_free(d);
	if (rc == -ENOENT || rc == -EINVAL)
		return tenancy_fail(why, whylen, -ENOENT, "domain %s is not ours", name);
	if (rc < 0)
		return tenancy_fail(why, whylen, rc, "domain %s: %s", name, queue_strerror(rc));
	return 0;
}

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
	if (d.left != 0 || t->id == NULL || t->name == NULL || !tenancy_key_is(k, t->id))
		goto fail;
	t->created = (int64_t)created;
	*out = t;
	return 0;
fail:
	queue_tenant_free(t);
	return rc;
}

static int tenancy_tenant_load(struct queue_txn *txn, const char *id, struct queue_tenant **out)
{
	MDB_val k = { strlen(id), (void *)id }, v;
	int rc;

	*out = NULL;
	if ((rc = tenancy_raw_get(txn, TENANCY_DB_TENANTS, id, strlen(id), &v)) < 0)
		return rc;
	return tenancy_tenant_decode(&k, &v, out);
}

int queue_tenant_get(struct queue_txn *txn, const char *id, struct queue_tenant **out)
{
	int rc;

	*out = NULL;
	if ((rc = tenancy_id_check(id, NULL, 0)) < 0)
		return rc;
	return tenancy_tenant_load(txn, id, out);
}

/*
 * The parent of id into *parent (fresh, NULL for a root). -ENOENT when
 * id does not exist.
 */
static int tenancy_parent_of(struct queue_txn *txn, const char *id, char **parent)
{
	struct queue_tenant *t;
	int rc;

	*parent = NULL;
	if ((rc = tenancy_tenant_load(txn, id, &t)) < 0)
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
		rc = tenancy_parent_of(h->txn, cur, &next);
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

	tenancy_why_clear(why, whylen);
	if ((rc = queue__need_write(txn)) < 0)
		return tenancy_fail(why, whylen, rc, "a read transaction cannot write");
	if ((rc = tenancy_id_check(t->id, why, whylen)) < 0 ||
	    (rc = tenancy_name_check(t->name, why, whylen)) < 0)
		return rc;
	if (t->parent != NULL) {
		if ((rc = tenancy_id_check(t->parent, why, whylen)) < 0)
			return rc;
		if (strcmp(t->parent, t->id) == 0)
			return tenancy_fail(why, whylen, -ELOOP,
			    "tenant %s cannot be its own parent", t->id);
		/*
		 * Walk up from the parent: meeting t itself means t would be
		 * its own ancestor. The walk is bounded, so a cycle already in
		 * the store (written by other means) ends it too.
		 */
		cur = xstrdup(t->parent);
		while (cur != NULL) {
			if (strcmp(cur, t->id) == 0) {
				rc = tenancy_fail(why, whylen, -ELOOP,
				    "tenant %s lies below %s, so it cannot be its parent",
				    t->parent, t->id);
				goto out;
			}
			if (++above >= TENANCY_DEPTH_MAX) {
				rc = tenancy_fail(why, whylen, -ELOOP,
				    "tenant %s would be more than %d levels deep", t->id,
				    TENANCY_DEPTH_MAX);
				goto out;
			}
			rc = tenancy_parent_of(txn, cur, &next);
			if (rc == -ENOENT && above == 1) {
				rc = tenancy_fail(why, whylen, -ENOENT,
				    "parent tenant %s does not exist",
				    tenancy_shown(t->parent, shown));
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
	rc = tenancy_tenant_load(txn, t->id, &old);
	if (rc < 0 && rc != -ENOENT)
		goto out;
	if (rc == 0) {
		struct tenancy_height h = { txn, t->id, 0 };

		if ((rc = tenancy_raw_walk(txn, TENANCY_DB_TENANTS, NULL, 0,
		    tenancy_height_cb, &h)) < 0)
			goto out;
		if (above + 1 + h.height > TENANCY_DEPTH_MAX) {
			rc = tenancy_fail(why, whylen, -ELOOP,
			    "moving tenant %s would put its subtree more than %d levels deep",
			    t->id, TENANCY_DEPTH_MAX);
			goto out;
		}
	}
	buf_init(&b);
	tenancy_tenant_encode(t, &b);
	rc = tenancy_raw_put(txn, TENANCY_DB_TENANTS, t->id, strlen(t->id), b.data, b.len);
	buf_free(&b);
	if (rc < 0)
		tenancy_fail(why, whylen, rc, "%s", queue_strerror(rc));
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

static int tenancy_operator_decode(const MDB_val *k, const MDB_val *v,
    struct queue_operator **out);

static int tenancy_named_by_cb(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct tenancy_find *f = arg;
	struct queue_operator *o;
	int rc;

	if ((rc = tenancy_operator_decode(k, v, &o)) < 0)
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

	tenancy_why_clear(why, whylen);
	if ((rc = queue__need_write(txn)) < 0)
		return tenancy_fail(why, whylen, rc, "a read transaction cannot write");
	if ((rc = tenancy_id_check(id, why, whylen)) < 0)
		return rc;
	rc = tenancy_tenant_load(txn, id, &t);
	queue_tenant_free(t);
	if (rc == -ENOENT)
		return tenancy_fail(why, whylen, rc, "no tenant %s", id);
	if (rc < 0)
		return tenancy_fail(why, whylen, rc, "%s", queue_strerror(rc));

	rc = queue_domain_walk(txn, tenancy_owner_domain_cb, &f);
	if (rc == 1) {
		rc = tenancy_fail(why, whylen, -ENOTEMPTY, "tenant %s still owns domain %s",
		    id, f.found);
		goto out;
	}
	if (rc == 0)
		rc = tenancy_raw_walk(txn, TENANCY_DB_TENANTS, NULL, 0, tenancy_child_cb, &f);
	if (rc == 1) {
		rc = tenancy_fail(why, whylen, -ENOTEMPTY,
		    "tenant %s still has child tenant %s", id, f.found);
		goto out;
	}
	if (rc == 0)
		rc = tenancy_raw_walk(txn, TENANCY_DB_OPERATORS, NULL, 0,
		    tenancy_named_by_cb, &f);
	if (rc == 1) {
		rc = tenancy_fail(why, whylen, -ENOTEMPTY, "tenant %s is named by operator %s",
		    id, f.found);
		goto out;
	}
	if (rc < 0) {
		tenancy_fail(why, whylen, rc, "%s", queue_strerror(rc));
		goto out;
	}

	/*
	 * The tenant's own policy settings go with it; keys are collected
	 * first because deleting under a cursor that walks a range is the
	 * kind of LMDB subtlety not worth having for a handful of records.
	 */
	memcpy(prefix, id, strlen(id) + 1);
	buf_init(&keys);
	rc = tenancy_raw_walk(txn, TENANCY_DB_POLICIES, prefix, strlen(id) + 1,
	    tenancy_collect_cb, &keys);
	for (off = 0; rc == 0 && off < keys.len;) {
		uint32_t len;

		memcpy(&len, keys.data + off, sizeof len);
		off += sizeof len;
		rc = tenancy_raw_del(txn, TENANCY_DB_POLICIES, keys.data + off, len);
		off += len;
	}
	buf_free(&keys);
	if (rc == 0)
		rc = tenancy_raw_del(txn, TENANCY_DB_TENANTS, id, strlen(id));
	if (rc < 0)
		tenancy_fail(why, whylen, rc, "%s", queue_strerror(rc));
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

	return tenancy_raw_walk(txn, TENANCY_DB_TENANTS, NULL, 0, tenancy_tenant_walk_cb, &w);
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
		rc = tenancy_parent_of(txn, cur, &next);
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

/* ------------------------------------------------- mailboxes and aliases */

void queue_mailbox_free(struct queue_mailbox *m)
{
	if (m == NULL)
		return;
	free(m->address);
	for (size_t i = 0; i < m->nalias_of; i++)
		free(m->alias_of[i]);
	free(m->alias_of);
	free(m);
}

/* The key back into LOCAL@DOMAIN form, compared with the stored address. */
static bool tenancy_mailbox_key_is(const MDB_val *k, const char *address)
{
	const char *key = k->mv_data;
	const char *nul = memchr(key, '\0', k->mv_size);
	size_t dlen, llen, alen = strlen(address);

	if (nul == NULL)
		return false;
	dlen = (size_t)(nul - key);
	llen = k->mv_size - dlen - 1;
	return alen == llen + 1 + dlen && memcmp(address, key + dlen + 1, llen) == 0 &&
	    address[llen] == '@' && memcmp(address + llen + 1, key, dlen) == 0;
}

static int tenancy_mailbox_decode(const MDB_val *k, const MDB_val *v,
    struct queue_mailbox **out)
{
	struct queue_dec d = { v->mv_data, v->mv_size };
	struct queue_mailbox *m = xcalloc(1, sizeof *m);
	uint64_t created;
	uint32_t n;
	uint8_t version;
	int rc;

	*out = NULL;
	if ((rc = queue__dec_u8(&d, &version)) < 0)
		goto fail;
	rc = -EBADMSG;
	if (version != QUEUE_MAILBOX_ENC_VERSION)
		goto fail;
	if ((rc = queue__dec_str(&d, &m->address)) < 0 ||
	    (rc = queue__dec_u64(&d, &created)) < 0 ||
	    (rc = queue__dec_u32(&d, &n)) < 0)
		goto fail;
	rc = -EBADMSG;
	/* Each target takes at least its 4-byte length: bound n first. */
	if (m->address == NULL || !tenancy_mailbox_key_is(k, m->address) ||
	    n > TENANCY_ALIAS_TARGETS_MAX || n > d.left / 4)
		goto fail;
	m->created = (int64_t)created;
	if (n > 0)
		m->alias_of = xcalloc(n, sizeof *m->alias_of);
	for (uint32_t i = 0; i < n; i++) {
		rc = queue__dec_str(&d, &m->alias_of[i]);
		m->nalias_of = i + 1;
		if (rc < 0)
			goto fail;
		rc = -EBADMSG;
		if (m->alias_of[i] == NULL)
			goto fail;
	}
	rc = -EBADMSG;
	if (d.left != 0)
		goto fail;
	*out = m;
	return 0;
fail:
	queue_mailbox_free(m);
	return rc;
}

int queue_mailbox_put(struct queue_txn *txn, const struct queue_mailbox *m,
    char *why, size_t whylen)
{
	char key[TENANCY_MAILBOX_KEY_MAX];
	struct tenancy_addr a, ta;
	struct buf b;
	size_t klen;
	int rc;

	tenancy_why_clear(why, whylen);
	if ((rc = queue__need_write(txn)) < 0)
		return tenancy_fail(why, whylen, rc, "a read transaction cannot write");
	if ((rc = tenancy_addr_split(m->address, "address", &a, why, whylen)) < 0)
		return rc;
	if (m->nalias_of > TENANCY_ALIAS_TARGETS_MAX)
		return tenancy_fail(why, whylen, -EINVAL,
		    "alias %s has %zu targets, more than %d", m->address, m->nalias_of,
		    TENANCY_ALIAS_TARGETS_MAX);
	if (m->nalias_of > 0 && m->alias_of == NULL)
		return tenancy_fail(why, whylen, -EINVAL, "alias %s has no target list",
		    m->address);
	for (size_t i = 0; i < m->nalias_of; i++) {
		/* Targets may be external: only their syntax is ours to check. */
		if ((rc = tenancy_addr_split(m->alias_of[i], "alias target", &ta, why,
		    whylen)) < 0)
			return rc;
	}
	if ((rc = tenancy_domain_is_ours(txn, &a, why, whylen)) < 0)
		return rc;
	klen = tenancy_mailbox_key(&a, key);
	buf_init(&b);
	queue__enc_u8(&b, QUEUE_MAILBOX_ENC_VERSION);
	queue__enc_str(&b, m->address);
	queue__enc_u64(&b, (uint64_t)m->created);
	queue__enc_u32(&b, (uint32_t)m->nalias_of);
	for (size_t i = 0; i < m->nalias_of; i++)
		queue__enc_str(&b, m->alias_of[i]);
	rc = tenancy_raw_put(txn, TENANCY_DB_MAILBOXES, key, klen, b.data, b.len);
	buf_free(&b);
	if (rc < 0)
		tenancy_fail(why, whylen, rc, "%s", queue_strerror(rc));
	return rc;
}

int queue_mailbox_get(struct queue_txn *txn, const char *address, struct queue_mailbox **out)
{
	char key[TENANCY_MAILBOX_KEY_MAX];
	struct tenancy_addr a;
	MDB_val k, v;
	int rc;

	*out = NULL;
	if ((rc = tenancy_addr_split(address, "address", &a, NULL, 0)) < 0)
		return rc;
	k.mv_size = tenancy_mailbox_key(&a, key);
	k.mv_data = key;
	if ((rc = tenancy_raw_get(txn, TENANCY_DB_MAILBOXES, key, k.mv_size, &v)) < 0)
		return rc;
	return tenancy_mailbox_decode(&k, &v, out);
}

int queue_mailbox_delete(struct queue_txn *txn, const char *address)
{
	char key[TENANCY_MAILBOX_KEY_MAX];
	struct tenancy_addr a;
	int rc;

	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	if ((rc = tenancy_addr_split(address, "address", &a, NULL, 0)) < 0)
		return rc;
	return tenancy_raw_del(txn, TENANCY_DB_MAILBOXES, key, tenancy_mailbox_key(&a, key));
}

struct tenancy_mailbox_walk {
	queue_mailbox_walk_cb *cb;
	void *arg;
};

static int tenancy_mailbox_walk_cb(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct tenancy_mailbox_walk *w = arg;
	struct queue_mailbox *m;
	int rc;

	if ((rc = tenancy_mailbox_decode(k, v, &m)) < 0)
		return rc;
	rc = w->cb(w->arg, m);
	queue_mailbox_free(m);
	return rc;
}

/* "DOMAIN" + 0x00: the prefix of exactly one domain's keys (schema.h). */
static int tenancy_domain_prefix(const char *domain, char prefix[ADDR_DOMAIN_MAX + 1],
    size_t *plen)
{
	size_t len;

	if (domain == NULL)
		return -EINVAL;
	len = strlen(domain);
	if (!tenancy_domain_ok(domain, len))
		return -EINVAL;
	memcpy(prefix, domain, len + 1);
	*plen = len + 1;
	return 0;
}

int queue_mailbox_walk_domain(struct queue_txn *txn, const char *domain,
    queue_mailbox_walk_cb *cb, void *arg)
{
	struct tenancy_mailbox_walk w = { cb, arg };
	char prefix[ADDR_DOMAIN_MAX + 1];
	size_t plen;
	int rc;

	if ((rc = tenancy_domain_prefix(domain, prefix, &plen)) < 0)
		return rc;
	return tenancy_raw_walk(txn, TENANCY_DB_MAILBOXES, prefix, plen,
	    tenancy_mailbox_walk_cb, &w);
}

int queue_mailbox_walk(struct queue_txn *txn, queue_mailbox_walk_cb *cb, void *arg)
{
	struct tenancy_mailbox_walk w = { cb, arg };

	return tenancy_raw_walk(txn, TENANCY_DB_MAILBOXES, NULL, 0, tenancy_mailbox_walk_cb, &w);
}

static int tenancy_count_cb(void *arg, const MDB_val *k, const MDB_val *v)
{
	uint64_t *count = arg;

	(void)k;
	(void)v;
	(*count)++;
	return 0;
}

int queue_mailbox_count_domain(struct queue_txn *txn, const char *domain, uint64_t *count)
{
	char prefix[ADDR_DOMAIN_MAX + 1];
	size_t plen;
	int rc;

	*count = 0;
	if ((rc = tenancy_domain_prefix(domain, prefix, &plen)) < 0)
		return rc;
	/* Keys only: the values are not decoded, just counted. */
	return tenancy_raw_walk(txn, TENANCY_DB_MAILBOXES, prefix, plen, tenancy_count_cb, count);
}

/*
 * A set of strings (open addressing, FNV-1a), so that expanding an alias
 * of many targets stays linear in their number.
 */
struct tenancy_set {
	char **slot;
	size_t cap;    /* a power of two, or 0 */
	size_t n;
};

static size_t tenancy_set_hash(const char *s)
{
	uint64_t h = UINT64_C(14695981039346656037);

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= UINT64_C(1099511628211);
	}
	return (size_t)h;
}

static bool tenancy_set_has(const struct tenancy_set *set, const char *s)
{
	if (set->cap == 0)
		return false;
	for (size_t i = tenancy_set_hash(s) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
		if (set->slot[i] == NULL)
			return false;
		if (strcmp(set->slot[i], s) == 0)
			return true;
	}
}

/* Adds a copy of s, which must not be in the set yet. */
static void tenancy_set_add(struct tenancy_set *set, const char *s)
{
	size_t i;

	if (2 * (set->n + 1) > set->cap) {
		struct tenancy_set big = { NULL, set->cap ? 2 * set->cap : 16, set->n };

		big.slot = xcalloc(big.cap, sizeof *big.slot);
		for (size_t j = 0; j < set->cap; j++) {
			if (set->slot[j] == NULL)
				continue;
			for (i = tenancy_set_hash(set->slot[j]) & (big.cap - 1);
			    big.slot[i] != NULL; i = (i + 1) & (big.cap - 1))
				;
			big.slot[i] = set->slot[j];
		}
		free(set->slot);
		*set = big;
	}
	for (i = tenancy_set_hash(s) & (set->cap - 1); set->slot[i] != NULL;
	    i = (i + 1) & (set->cap - 1))
		;
	set->slot[i] = xstrdup(s);
	set->n++;
}

static void tenancy_set_free(struct tenancy_set *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slot[i]);
	free(set->slot);
}

struct tenancy_expand {
	struct queue_txn *txn;
	const char *path[TENANCY_ALIAS_DEPTH_MAX];  /* aliases being expanded */
	struct tenancy_set done;     /* aliases expanded (their targets are in) */
	struct tenancy_set seen;     /* addresses in the result */
	char **out;
	size_t n, cap;
};

static void tenancy_expand_emit(struct tenancy_expand *x, const char *addr)
{
	if (tenancy_set_has(&x->seen, addr))
		return;
	tenancy_set_add(&x->seen, addr);
	if (x->n == x->cap) {
		x->cap = x->cap ? 2 * x->cap : 8;
		x->out = xreallocarray(x->out, x->cap, sizeof *x->out);
	}
	x->out[x->n++] = xstrdup(addr);
}

static int tenancy_expand_one(struct tenancy_expand *x, const char *addr, unsigned depth)
{
	struct queue_mailbox *m = NULL;
	int rc;

	/* On the current path: a loop, or an alias keeping its own copy. */
	for (unsigned i = 0; i < depth; i++) {
		if (strcmp(x->path[i], addr) == 0) {
			tenancy_expand_emit(x, addr);
			return 0;
		}
	}
	/* Expanded already through another target: its results are in. */
	if (tenancy_set_has(&x->done, addr) || tenancy_set_has(&x->seen, addr))
		return 0;
	if (depth >= TENANCY_ALIAS_DEPTH_MAX) {
		tenancy_expand_emit(x, addr);
		return 0;
	}
	rc = queue_mailbox_get(x->txn, addr, &m);
	/*
	 * Not in the table (external, or a form the table cannot hold): the
	 * address is its own final recipient.
	 */
	if (rc == -ENOENT || rc == -EINVAL || (rc == 0 && m->nalias_of == 0)) {
		queue_mailbox_free(m);
		tenancy_expand_emit(x, addr);
		return 0;
	}
	if (rc < 0)
		return rc;
	tenancy_set_add(&x->done, addr);
	x->path[depth] = m->address;
	for (size_t i = 0; i < m->nalias_of && rc == 0; i++)
		rc = tenancy_expand_one(x, m->alias_of[i], depth + 1);
	queue_mailbox_free(m);
	return rc;
}

void queue_alias_list_free(char **list, size_t n)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

int queue_alias_expand(struct queue_txn *txn, const char *address, char ***out, size_t *n)
{
	struct tenancy_expand x;
	int rc;

	*out = NULL;
	*n = 0;
	if (address == NULL || address[0] == '\0')
		return -EINVAL;
	memset(&x, 0, sizeof x);
	x.txn = txn;
	rc = tenancy_expand_one(&x, address, 0);
	tenancy_set_free(&x.done);
	tenancy_set_free(&x.seen);
	if (rc < 0) {
		queue_alias_list_free(x.out, x.n);
		return rc;
	}
	*out = x.out;
	*n = x.n;
	return 0;
}

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
	    !tenancy_key_is(k, u->address) ||
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

	tenancy_why_clear(why, whylen);
	if ((rc = queue__need_write(txn)) < 0)
		return tenancy_fail(why, whylen, rc, "a read transaction cannot write");
	if ((rc = tenancy_addr_split(u->address, "user address", &a, why, whylen)) < 0)
		return rc;
	if (u->hash == NULL || u->hash[0] == '\0' || strlen(u->hash) > TENANCY_HASH_MAX)
		return tenancy_fail(why, whylen, -EINVAL, "user %s has no usable password hash",
		    u->address);
	if ((rc = tenancy_domain_is_ours(txn, &a, why, whylen)) < 0)
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
	rc = tenancy_raw_put(txn, TENANCY_DB_USERS, u->address, strlen(u->address),
	    b.data, b.len);
	buf_free(&b);
	if (rc < 0)
		tenancy_fail(why, whylen, rc, "%s", queue_strerror(rc));
	return rc;
}

int queue_user_get(struct queue_txn *txn, const char *address, struct queue_user **out)
{
	struct tenancy_addr a;
	MDB_val k, v;
	int rc;

	*out = NULL;
	if ((rc = tenancy_addr_split(address, "address", &a, NULL, 0)) < 0)
		return rc;
	k.mv_size = strlen(address);
	k.mv_data = (void *)address;
	if ((rc = tenancy_raw_get(txn, TENANCY_DB_USERS, address, k.mv_size, &v)) < 0)
		return rc;
	return tenancy_user_decode(&k, &v, out);
}

int queue_user_delete(struct queue_txn *txn, const char *address)
{
	struct tenancy_addr a;
	int rc;

	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	if ((rc = tenancy_addr_split(address, "address", &a, NULL, 0)) < 0)
		return rc;
	return tenancy_raw_del(txn, TENANCY_DB_USERS, address, strlen(address));
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

	return tenancy_raw_walk(txn, TENANCY_DB_USERS, NULL, 0, tenancy_user_walk_cb, &w);
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

/* ----------------------------------------------------------------- policy */

/*
 * The per-tenant keys. The builtins of max_message_size and
 * max_recipients equal the configuration defaults (INTERFACE.md), and a
 * tenant's setting can only narrow what the configuration allows.
 */
const struct tenancy_policy_key tenancy_policy_keys[] = {
	{ "max_message_size", TENANCY_POLICY_SIZE, "26214400",
		"largest message the tenant's users may submit, in bytes (K/M/G accepted)" },
	{ "max_recipients", TENANCY_POLICY_COUNT, "100",
		"most recipients one message of the tenant's users may have" },
	{ "messages_per_hour", TENANCY_POLICY_COUNT, "0",
		"messages one user of the tenant may submit per hour; 0 means unlimited" },
	{ "allow_external", TENANCY_POLICY_BOOL, "yes",
		"whether the tenant's users may send to domains that are not ours" },
	{ "require_tls_outbound", TENANCY_POLICY_BOOL, "no",
		"whether the tenant's mail leaves only over TLS (deferred otherwise)" },
	{ NULL, TENANCY_POLICY_COUNT, NULL, NULL },
};

const struct tenancy_policy_key *tenancy_policy_key_find(const char *name)
{
	if (name == NULL)
		return NULL;
	for (const struct tenancy_policy_key *k = tenancy_policy_keys; k->name != NULL; k++) {
		if (strcmp(k->name, name) == 0)
			return k;
	}
	return NULL;
}

/* Decimal digits into *v, refusing anything above max (no sign, no space). */
static bool tenancy_parse_decimal(const char *s, size_t len, uint64_t max, uint64_t *v)
{
	uint64_t x = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		x = x * 10 + (uint64_t)(s[i] - '0');
		/* max < 2^60, so one more digit cannot wrap before this check. */
		if (x > max)
			return false;
	}
	*v = x;
	return true;
}

int tenancy_policy_normalize(const struct tenancy_policy_key *key, const char *value,
    char *out, size_t outlen, char *why, size_t whylen)
{
	static const struct {
		const char *word;
		bool yes;
	} words[] = {
		{ "yes", true }, { "true", true }, { "on", true }, { "1", true },
		{ "no", false }, { "false", false }, { "off", false }, { "0", false },
	};
	char shown[TENANCY_SHOWN_MAX + 4];
	uint64_t v, mult = 1;
	size_t len;
	int n;

	tenancy_why_clear(why, whylen);
	if (key == NULL)
		return tenancy_fail(why, whylen, -EINVAL, "unknown policy key");
	if (value == NULL || value[0] == '\0')
		return tenancy_fail(why, whylen, -EINVAL, "%s: empty value", key->name);
	len = strlen(value);
	switch (key->type) {
	case TENANCY_POLICY_SIZE:
		/* 1024-based, as sizes of mail are counted everywhere else here. */
		switch (value[len - 1]) {
		case 'k': case 'K': mult = UINT64_C(1) << 10; break;
		case 'm': case 'M': mult = UINT64_C(1) << 20; break;
		case 'g': case 'G': mult = UINT64_C(1) << 30; break;
		default: break;
		}
		if (mult > 1)
			len--;
		if (!tenancy_parse_decimal(value, len, TENANCY_POLICY_SIZE_MAX, &v) ||
		    v == 0 || v > TENANCY_POLICY_SIZE_MAX / mult)
			return tenancy_fail(why, whylen, -EINVAL,
			    "%s: '%s' is not a size from 1 byte to 1T (a number of bytes, "
			    "or with K, M or G)", key->name, tenancy_shown(value, shown));
		n = snprintf(out, outlen, "%" PRIu64, v * mult);
		break;
	case TENANCY_POLICY_COUNT:
		if (!tenancy_parse_decimal(value, len, TENANCY_POLICY_COUNT_MAX, &v))
			return tenancy_fail(why, whylen, -EINVAL,
			    "%s: '%s' is not a whole number from 0 to 1000000000", key->name,
			    tenancy_shown(value, shown));
		n = snprintf(out, outlen, "%" PRIu64, v);
		break;
	case TENANCY_POLICY_BOOL:
		n = -1;
		for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
			if (str_ieq(value, words[i].word)) {
				n = snprintf(out, outlen, "%s", words[i].yes ? "yes" : "no");
				break;
			}
		}
		if (n < 0)
			return tenancy_fail(why, whylen, -EINVAL,
			    "%s: '%s' is not yes or no", key->name, tenancy_shown(value, shown));
		break;
	default:
		return tenancy_fail(why, whylen, -EINVAL, "%s: unknown type", key->name);
	}
	if (n < 0 || (size_t)n >= outlen)
		return tenancy_fail(why, whylen, -EINVAL, "%s: no room for the value", key->name);
	return 0;
}

/* The policies key TENANT + 0x00 + KEY (schema.h). */
static int tenancy_policy_dbkey(const char *tenant, const char *key,
    char out[TENANCY_POLICY_KEY_MAX], size_t *len)
{
	size_t tl, kl;
	int rc;

	if ((rc = tenancy_id_check(tenant, NULL, 0)) < 0)
		return rc;
	if (tenancy_policy_key_find(key) == NULL)
		return -EINVAL;
	tl = strlen(tenant);
	kl = strlen(key);
	if (tl + 1 + kl > TENANCY_POLICY_KEY_MAX)
		return -EINVAL;
	memcpy(out, tenant, tl);
	out[tl] = '\0';
	memcpy(out + tl + 1, key, kl);
	*len = tl + 1 + kl;
	return 0;
}

int queue_policy_set(struct queue_txn *txn, const char *tenant, const char *key,
    const char *value)
{
	char dbkey[TENANCY_POLICY_KEY_MAX], norm[TENANCY_POLICY_VALUE_MAX + 1];
	struct queue_tenant *t;
	size_t klen;
	int rc;

	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	if ((rc = tenancy_policy_dbkey(tenant, key, dbkey, &klen)) < 0)
		return rc;
	rc = tenancy_tenant_load(txn, tenant, &t);
	queue_tenant_free(t);
	if (rc < 0)
		return rc;
	if (value == NULL)
		return tenancy_raw_del(txn, TENANCY_DB_POLICIES, dbkey, klen);
	if ((rc = tenancy_policy_normalize(tenancy_policy_key_find(key), value, norm,
	    sizeof norm, NULL, 0)) < 0)
		return rc;
	return tenancy_raw_put(txn, TENANCY_DB_POLICIES, dbkey, klen, norm, strlen(norm));
}

/* The raw value, checked: no NUL, not longer than any normalized value. */
static int tenancy_policy_load(struct queue_txn *txn, const char *dbkey, size_t klen,
    char **value)
{
	MDB_val v;
	int rc;

	*value = NULL;
	if ((rc = tenancy_raw_get(txn, TENANCY_DB_POLICIES, dbkey, klen, &v)) < 0)
		return rc;
	if (v.mv_size == 0 || v.mv_size > TENANCY_POLICY_VALUE_MAX ||
	    memchr(v.mv_data, '\0', v.mv_size) != NULL)
		return -EBADMSG;
	*value = xstrndup(v.mv_data, v.mv_size);
	return 0;
}

int queue_policy_get(struct queue_txn *txn, const char *tenant, const char *key, char **value)
{
	char dbkey[TENANCY_POLICY_KEY_MAX];
	size_t klen;
	int rc;

	*value = NULL;
	if ((rc = tenancy_policy_dbkey(tenant, key, dbkey, &klen)) < 0)
		return rc;
	return tenancy_policy_load(txn, dbkey, klen, value);
}

int queue_policy_effective(struct queue_txn *txn, const char *tenant, const char *key,
    char **value, char **source)
{
	const struct tenancy_policy_key *pk = tenancy_policy_key_find(key);
	char dbkey[TENANCY_POLICY_KEY_MAX];
	char *cur, *next;
	size_t klen;
	int rc = 0;

	*value = NULL;
	*source = NULL;
	if (pk == NULL)
		return -EINVAL;
	if ((rc = tenancy_id_check(tenant, NULL, 0)) < 0)
		return rc;
	cur = xstrdup(tenant);
	for (unsigned depth = 0; cur != NULL; depth++) {
		if (depth >= TENANCY_DEPTH_MAX) {
			rc = -ELOOP;
			break;
		}
		/* The tenant itself must exist; a broken chain above ends it. */
		rc = tenancy_parent_of(txn, cur, &next);
		if (rc == -ENOENT && depth > 0) {
			rc = 0;
			break;
		}
		if (rc < 0)
			break;
		if ((rc = tenancy_policy_dbkey(cur, key, dbkey, &klen)) == 0)
			rc = tenancy_policy_load(txn, dbkey, klen, value);
		if (rc == 0) {
			*source = cur;
			free(next);
			return 0;
		}
		if (rc != -ENOENT) {
			free(next);
			break;
		}
		rc = 0;
		free(cur);
		cur = next;
	}
	free(cur);
	if (rc < 0)
		return rc;
	*value = xstrdup(pk->builtin);
	*source = xstrdup("default");
	return 0;
}

/*
 * The effective text of key for tenant and its source; tenant NULL (an
 * address of a domain with no agency) reads the builtin. The one place a
 * typed getter reads the store, so every caller gets the same answer.
 */
static int tenancy_policy_text(struct queue_txn *txn, const char *tenant,
    const struct tenancy_policy_key *pk, char *text, size_t textlen, char *source,
    size_t sourcelen)
{
	char *value = NULL, *src = NULL;
	int rc;

	if (tenant == NULL) {
		str_copy(text, pk->builtin, textlen);
		if (source != NULL)
			str_copy(source, "default", sourcelen);
		return 0;
	}
	rc = queue_policy_effective(txn, tenant, pk->name, &value, &src);
	if (rc == 0) {
		if (strlen(value) >= textlen)
			rc = -EBADMSG;
		else
			str_copy(text, value, textlen);
		if (source != NULL)
			str_copy(source, src, sourcelen);
	}
	free(value);
	free(src);
	return rc;
}

int queue_policy_bool(struct queue_txn *txn, const char *tenant, const char *key,
    bool *out, char *source, size_t sourcelen)
{
	const struct tenancy_policy_key *pk = tenancy_policy_key_find(key);
	char text[TENANCY_POLICY_VALUE_MAX + 1];
	int rc;

	if (pk == NULL || pk->type != TENANCY_POLICY_BOOL)
		return -EINVAL;
	if ((rc = tenancy_policy_text(txn, tenant, pk, text, sizeof text, source,
	    sourcelen)) < 0)
		return rc;
	/* Stored values are normalized (tenancy_policy_normalize): yes or no. */
	if (strcmp(text, "yes") == 0)
		*out = true;
	else if (strcmp(text, "no") == 0)
		*out = false;
	else
		return -EBADMSG;
	return 0;
}

int queue_policy_u64(struct queue_txn *txn, const char *tenant, const char *key,
    uint64_t *out, char *source, size_t sourcelen)
{
	const struct tenancy_policy_key *pk = tenancy_policy_key_find(key);
	char text[TENANCY_POLICY_VALUE_MAX + 1];
	int rc;

	if (pk == NULL || (pk->type != TENANCY_POLICY_SIZE && pk->type != TENANCY_POLICY_COUNT))
		return -EINVAL;
	if ((rc = tenancy_policy_text(txn, tenant, pk, text, sizeof text, source,
	    sourcelen)) < 0)
		return rc;
	/* Normalized sizes and counts are plain decimal within the size bound. */
	if (!tenancy_parse_decimal(text, strlen(text), TENANCY_POLICY_SIZE_MAX, out))
		return -EBADMSG;
	return 0;
}

/* -------------------------------------------------------------- operators */

const char *queue_role_name(enum queue_operator_role r)
{
	switch (r) {
	case QUEUE_ROLE_POSTMASTER: return "postmaster";
	case QUEUE_ROLE_AUDITOR: return "auditor";
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

static int tenancy_operator_decode(const MDB_val *k, const MDB_val *v,
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
	    !tenancy_key_is(k, o->unix_user) || role > QUEUE_ROLE_AUDITOR)
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

	tenancy_why_clear(why, whylen);
	if ((rc = queue__need_write(txn)) < 0)
		return tenancy_fail(why, whylen, rc, "a read transaction cannot write");
	if ((rc = tenancy_unix_user_check(o->unix_user, why, whylen)) < 0 ||
	    (rc = tenancy_id_check(o->tenant, why, whylen)) < 0)
		return rc;
	if (o->role != QUEUE_ROLE_POSTMASTER && o->role != QUEUE_ROLE_AUDITOR)
		return tenancy_fail(why, whylen, -EINVAL, "unknown operator role %d",
		    (int)o->role);
	rc = tenancy_tenant_load(txn, o->tenant, &t);
	queue_tenant_free(t);
	if (rc == -ENOENT)
		return tenancy_fail(why, whylen, rc, "tenant %s does not exist", o->tenant);
	if (rc < 0)
		return tenancy_fail(why, whylen, rc, "%s", queue_strerror(rc));
	buf_init(&b);
	queue__enc_u8(&b, QUEUE_OPERATOR_ENC_VERSION);
	queue__enc_str(&b, o->unix_user);
	queue__enc_str(&b, o->tenant);
	queue__enc_u8(&b, (uint8_t)o->role);
	queue__enc_u64(&b, (uint64_t)o->created);
	rc = tenancy_raw_put(txn, TENANCY_DB_OPERATORS, o->unix_user, strlen(o->unix_user),
	    b.data, b.len);
	buf_free(&b);
	if (rc < 0)
		tenancy_fail(why, whylen, rc, "%s", queue_strerror(rc));
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
	if ((rc = tenancy_raw_get(txn, TENANCY_DB_OPERATORS, unix_user, k.mv_size, &v)) < 0)
		return rc;
	return tenancy_operator_decode(&k, &v, out);
}

int queue_operator_delete(struct queue_txn *txn, const char *unix_user)
{
	int rc;

	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	if ((rc = tenancy_unix_user_check(unix_user, NULL, 0)) < 0)
		return rc;
	return tenancy_raw_del(txn, TENANCY_DB_OPERATORS, unix_user, strlen(unix_user));
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

	if ((rc = tenancy_operator_decode(k, v, &o)) < 0)
		return rc;
	rc = w->cb(w->arg, o);
	queue_operator_free(o);
	return rc;
}

int queue_operator_walk(struct queue_txn *txn, queue_operator_walk_cb *cb, void *arg)
{
	struct tenancy_operator_walk w = { cb, arg };

	return tenancy_raw_walk(txn, TENANCY_DB_OPERATORS, NULL, 0, tenancy_operator_walk_cb, &w);
}

/* ------------------------------------------------------------- helpers */

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
