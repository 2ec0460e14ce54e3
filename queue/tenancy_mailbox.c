/*
 * tenancy_mailbox: the mailboxes table (queue/tenancy.h, layout in
 * queue/schema.h): mailboxes of our domains, aliases (a mailbox with
 * targets), and alias expansion.
 *
 * Entry points: queue_mailbox_put/get/delete/walk/walk_domain/
 * count_domain/free, queue_alias_expand, queue_alias_list_free.
 *
 * A city has 10^5 mailboxes, so everything here goes by key or by one
 * domain's cursor range (key DOMAIN + 0x00 + LOCALPART), never by a scan
 * of the table. Expansion keeps its seen and done sets in a hash set,
 * so it stays linear in the number of targets.
 *
 * OWNERSHIP: getters return fresh records freed with queue_mailbox_free
 * (which accepts NULL); on failure *out is NULL. queue_alias_expand's
 * list is freed with queue_alias_list_free. Records passed to walk
 * callbacks are borrowed for the call. Every argument is borrowed.
 * THREADS: any thread that owns the txn.
 * ERRORS: 0 or negative errno: -EINVAL (bad argument, or a write on a
 * read txn), -ENOENT, -EBADMSG (a record does not decode), -ENOSPC,
 * -EIO. Functions with a `why` buffer explain every refusal there (why
 * may be NULL).
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/buf.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/schema.h"
#include "queue/tenancy.h"
#include "queue/tenancy_int.h"

#define TENANCY_MAILBOX_KEY_MAX (ADDR_DOMAIN_MAX + 1 + ADDR_LOCAL_MAX)

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

/* The mailbox key DOMAIN + 0x00 + LOCAL (schema.h). */
static size_t tenancy_mailbox_key(const struct tenancy_addr *a,
    char key[TENANCY_MAILBOX_KEY_MAX])
{
	memcpy(key, a->domain, a->dlen);
	key[a->dlen] = '\0';
	memcpy(key + a->dlen + 1, a->local, a->llen);
	return a->dlen + 1 + a->llen;
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

	tenancy__why_clear(why, whylen);
	if ((rc = queue__need_write(txn)) < 0)
		return tenancy__fail(why, whylen, rc, "a read transaction cannot write");
	if ((rc = tenancy__addr_split(m->address, "address", &a, why, whylen)) < 0)
		return rc;
	if (m->nalias_of > TENANCY_ALIAS_TARGETS_MAX)
		return tenancy__fail(why, whylen, -EINVAL,
		    "alias %s has %zu targets, more than %d", m->address, m->nalias_of,
		    TENANCY_ALIAS_TARGETS_MAX);
	if (m->nalias_of > 0 && m->alias_of == NULL)
		return tenancy__fail(why, whylen, -EINVAL, "alias %s has no target list",
		    m->address);
	for (size_t i = 0; i < m->nalias_of; i++) {
		/* Targets may be external: only their syntax is ours to check. */
		if ((rc = tenancy__addr_split(m->alias_of[i], "alias target", &ta, why,
		    whylen)) < 0)
			return rc;
	}
	if ((rc = tenancy__domain_is_ours(txn, &a, why, whylen)) < 0)
		return rc;
	klen = tenancy_mailbox_key(&a, key);
	buf_init(&b);
	queue__enc_u8(&b, QUEUE_MAILBOX_ENC_VERSION);
	queue__enc_str(&b, m->address);
	queue__enc_u64(&b, (uint64_t)m->created);
	queue__enc_u32(&b, (uint32_t)m->nalias_of);
	for (size_t i = 0; i < m->nalias_of; i++)
		queue__enc_str(&b, m->alias_of[i]);
	rc = tenancy__raw_put(txn, TENANCY_DB_MAILBOXES, key, klen, b.data, b.len);
	buf_free(&b);
	if (rc < 0)
		tenancy__fail(why, whylen, rc, "%s", queue_strerror(rc));
	return rc;
}

int queue_mailbox_get(struct queue_txn *txn, const char *address, struct queue_mailbox **out)
{
	char key[TENANCY_MAILBOX_KEY_MAX];
	struct tenancy_addr a;
	MDB_val k, v;
	int rc;

	*out = NULL;
	if ((rc = tenancy__addr_split(address, "address", &a, NULL, 0)) < 0)
		return rc;
	k.mv_size = tenancy_mailbox_key(&a, key);
	k.mv_data = key;
	if ((rc = tenancy__raw_get(txn, TENANCY_DB_MAILBOXES, key, k.mv_size, &v)) < 0)
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
	if ((rc = tenancy__addr_split(address, "address", &a, NULL, 0)) < 0)
		return rc;
	return tenancy__raw_del(txn, TENANCY_DB_MAILBOXES, key, tenancy_mailbox_key(&a, key));
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
	if (!tenancy__domain_ok(domain, len))
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
	return tenancy__raw_walk(txn, TENANCY_DB_MAILBOXES, prefix, plen,
	    tenancy_mailbox_walk_cb, &w);
}

int queue_mailbox_walk(struct queue_txn *txn, queue_mailbox_walk_cb *cb, void *arg)
{
	struct tenancy_mailbox_walk w = { cb, arg };

	return tenancy__raw_walk(txn, TENANCY_DB_MAILBOXES, NULL, 0, tenancy_mailbox_walk_cb, &w);
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
	return tenancy__raw_walk(txn, TENANCY_DB_MAILBOXES, prefix, plen, tenancy_count_cb, count);
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
