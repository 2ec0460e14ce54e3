/*
 * tenancy: the tenancy tables of the queue's LMDB store (queue/tenancy.h,
 * layouts in queue/schema.h). The tables are handled one noun a file:
 * tenancy_tenant.c (tenants, their hierarchy, the tenant of a domain),
 * tenancy_mailbox.c (mailboxes and alias expansion), tenancy_user.c
 * (users), tenancy_policy.c (per-tenant policy with inheritance) and
 * tenancy_operator.c (operators). This file holds what they share
 * (tenancy_int.h): reasons for `why`, the raw get/put/del/walk of one
 * table, and the syntax checks of ids, names and keys.
 *
 * Entry points: tenancy_id_check, tenancy_name_check,
 * tenancy_unix_user_check; inside queue/ the tenancy__* helpers.
 *
 * Addresses and domains must already be canonical (common/addr.h): the
 * tenancy files check only what keeps the keys unambiguous (one '@'
 * split, a lowercase LDH domain, no control bytes), not the full RFC
 * 5321 syntax.
 *
 * OWNERSHIP: every argument is borrowed; tenancy__shown returns s or
 * the caller's buffer.
 * THREADS: the raw functions on any thread that owns the txn; the pure
 * checks on any thread.
 * ERRORS: 0 or negative errno: -EINVAL (bad argument), -ENOENT, -EROFS
 * (a write to a table a read-only open did not find), -EIO. Functions
 * with a `why` buffer explain every refusal there (why may be NULL).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/addr.h"
#include "common/util.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/tenancy.h"
#include "queue/tenancy_int.h"

/* -------------------------------------------------------------- helpers */

int tenancy__fail(char *why, size_t whylen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

void tenancy__why_clear(char *why, size_t whylen)
{
	if (why != NULL && whylen > 0)
		why[0] = '\0';
}

/*
 * s as it may appear in a reason: control bytes become '?' (the reason
 * reaches a terminal or a log line), at most TENANCY_SHOWN_MAX bytes.
 */
const char *tenancy__shown(const char *s, char out[TENANCY_SHOWN_MAX + 4])
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
	case TENANCY_DB_DKIM:
		*dbi = s->db_dkim;
		bit = QUEUE_ABSENT_DKIM;
		break;
	}
	return (s->absent & bit) == 0;
}

int tenancy__raw_get(struct queue_txn *txn, enum tenancy_db which, const void *key,
    size_t klen, MDB_val *v)
{
	MDB_val k = { klen, (void *)key };
	MDB_dbi dbi;

	if (!tenancy_db(txn, which, &dbi))
		return -ENOENT;
	return queue__lmdb_err(mdb_get(txn->txn, dbi, &k, v));
}

/* The caller has checked queue__need_write. */
int tenancy__raw_put(struct queue_txn *txn, enum tenancy_db which, const void *key,
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

int tenancy__raw_del(struct queue_txn *txn, enum tenancy_db which, const void *key,
    size_t klen)
{
	MDB_val k = { klen, (void *)key };
	MDB_dbi dbi;

	if (!tenancy_db(txn, which, &dbi))
		return -EROFS;
	return queue__lmdb_err(mdb_del(txn->txn, dbi, &k, NULL));
}

/*
 * Every record whose key starts with prefix (plen 0: every record), in
 * key order, by one cursor: MDB_SET_RANGE lands on the first key >=
 * prefix and the walk ends at the first key without it, so a range costs
 * its own records, not the table. cb returns 0 to go on; anything else
 * stops the walk and is returned.
 */
int tenancy__raw_walk(struct queue_txn *txn, enum tenancy_db which, const void *prefix,
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
bool tenancy__key_is(const MDB_val *k, const char *s)
{
	size_t len = s != NULL ? strlen(s) : 0;

	return s != NULL && k->mv_size == len && memcmp(k->mv_data, s, len) == 0;
}

/* --------------------------------------------------------------- syntax */

int tenancy_id_check(const char *id, char *why, size_t whylen)
{
	char shown[TENANCY_SHOWN_MAX + 4];
	size_t len;

	tenancy__why_clear(why, whylen);
	if (id == NULL || id[0] == '\0')
		return tenancy__fail(why, whylen, -EINVAL, "empty tenant id");
	len = strlen(id);
	if (len > TENANCY_ID_MAX)
		return tenancy__fail(why, whylen, -EINVAL,
		    "tenant id '%s' is longer than %d characters",
		    tenancy__shown(id, shown), TENANCY_ID_MAX);
	for (size_t i = 0; i < len; i++) {
		char c = id[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    (i > 0 && (c == '.' || c == '_' || c == '-'));

		if (!ok)
			return tenancy__fail(why, whylen, -EINVAL,
			    "tenant id '%s' must be lowercase letters, digits, '.', '_' "
			    "and '-', starting with a letter or digit",
			    tenancy__shown(id, shown));
	}
	return 0;
}

int tenancy_name_check(const char *name, char *why, size_t whylen)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t len;

	tenancy__why_clear(why, whylen);
	if (name == NULL || name[0] == '\0')
		return tenancy__fail(why, whylen, -EINVAL, "empty tenant name");
	len = strlen(name);
	if (len > TENANCY_NAME_MAX)
		return tenancy__fail(why, whylen, -EINVAL,
		    "tenant name is longer than %d bytes", TENANCY_NAME_MAX);
	for (size_t i = 0; i < len;) {
		size_t n;

		if (p[i] < 0x80) {
			if (p[i] < 0x20 || p[i] == 0x7f)
				return tenancy__fail(why, whylen, -EINVAL,
				    "tenant name contains a control character");
			i++;
			continue;
		}
		n = str_utf8_seq_len(p + i);
		if (n == 0)
			return tenancy__fail(why, whylen, -EINVAL,
			    "tenant name is not valid UTF-8");
		/* U+0080..U+009F, the C1 controls, are 0xC2 0x80..0x9F. */
		if (n == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0)
			return tenancy__fail(why, whylen, -EINVAL,
			    "tenant name contains a control character");
		i += n;
	}
	return 0;
}

int tenancy_unix_user_check(const char *user, char *why, size_t whylen)
{
	char shown[TENANCY_SHOWN_MAX + 4];
	size_t len;

	tenancy__why_clear(why, whylen);
	if (user == NULL || user[0] == '\0')
		return tenancy__fail(why, whylen, -EINVAL, "empty unix user name");
	len = strlen(user);
	if (len > TENANCY_UNIX_USER_MAX)
		return tenancy__fail(why, whylen, -EINVAL,
		    "unix user name '%s' is longer than %d characters",
		    tenancy__shown(user, shown), TENANCY_UNIX_USER_MAX);
	/*
	 * The portable subset useradd(8) accepts by default; Samba machine
	 * accounts' trailing '$' are no operators and are refused.
	 */
	for (size_t i = 0; i < len; i++) {
		char c = user[i];
		bool ok = (c >= 'a' && c <= 'z') || c == '_' ||
		    (i > 0 && ((c >= '0' && c <= '9') || c == '.' || c == '-'));

		if (!ok)
			return tenancy__fail(why, whylen, -EINVAL,
			    "unix user name '%s' must be lowercase letters, digits, '_', "
			    "'.' and '-', starting with a letter or '_'",
			    tenancy__shown(user, shown));
	}
	return 0;
}

/*
 * A canonical domain as the key part: 1..253 bytes of lowercase letters,
 * digits, '-' and '.', no empty label (A-labels, common/addr.h).
 */
bool tenancy__domain_ok(const char *d, size_t len)
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

/*
 * What the tables need of a canonical address: LOCAL@DOMAIN with a
 * local part of 1..64 bytes without control bytes and a canonical domain
 * (split at the last '@': a quoted local part may hold one).
 */
int tenancy__addr_split(const char *addr, const char *what, struct tenancy_addr *a,
    char *why, size_t whylen)
{
	char shown[TENANCY_SHOWN_MAX + 4];
	const char *at;
	size_t len;

	if (addr == NULL || addr[0] == '\0')
		return tenancy__fail(why, whylen, -EINVAL, "empty %s", what);
	len = strlen(addr);
	at = strrchr(addr, '@');
	if (len > ADDR_MAX || at == NULL || at == addr)
		return tenancy__fail(why, whylen, -EINVAL, "%s '%s' is not LOCAL@DOMAIN",
		    what, tenancy__shown(addr, shown));
	a->local = addr;
	a->llen = (size_t)(at - addr);
	a->domain = at + 1;
	a->dlen = len - a->llen - 1;
	if (a->llen > ADDR_LOCAL_MAX)
		return tenancy__fail(why, whylen, -EINVAL,
		    "%s '%s' has a local part longer than %d bytes", what,
		    tenancy__shown(addr, shown), ADDR_LOCAL_MAX);
	for (size_t i = 0; i < a->llen; i++) {
		unsigned char c = (unsigned char)addr[i];

		if (c < 0x20 || c == 0x7f)
			return tenancy__fail(why, whylen, -EINVAL,
			    "%s '%s' contains a control character", what,
			    tenancy__shown(addr, shown));
	}
	if (!tenancy__domain_ok(a->domain, a->dlen))
		return tenancy__fail(why, whylen, -EINVAL,
		    "%s '%s' does not end in a canonical (lowercase, A-label) domain",
		    what, tenancy__shown(addr, shown));
	return 0;
}

/* The domain of a is in the domain table (-ENOENT with why otherwise). */
int tenancy__domain_is_ours(struct queue_txn *txn, const struct tenancy_addr *a,
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
		return tenancy__fail(why, whylen, -ENOENT, "domain %s is not ours", name);
	if (rc < 0)
		return tenancy__fail(why, whylen, rc, "domain %s: %s", name, queue_strerror(rc));
	return 0;
}
