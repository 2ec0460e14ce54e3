/*
 * cmd_tenancy: the tenancy verbs of govrelayctl: tenant, domain,
 * mailbox (with `mailbox import` of a CSV file), user, operator and
 * policy (ARCHITECTURE.md "Tenancy"; INTERFACE.md "Administration").
 *
 * Every change runs in one write transaction together with one audit
 * record (event admin: action=NOUN.VERB by= via= tenant= object= and
 * what else helps: route, role, key, value, count; never a password or
 * a hash), so the chain never misses an administrator's change. For a
 * caller who is not super, each handler checks the tenant of every
 * object it touches against the caller's subtree (admin__need_tenant)
 * before changing anything; a refusal aborts the transaction and the
 * dispatcher records it in a transaction of its own.
 *
 * Entry points: the admin__tenant_*, admin__domain_*, admin__mailbox_*,
 * admin__user_*, admin__operator_*, admin__policy_* handlers of
 * admin_int.h, called by admin_run only.
 * OWNERSHIP: records read from the store are freed before returning;
 * `mailbox list` and `user list` print while they walk (a domain may
 * hold 100,000 mailboxes), the other listings copy, end the read
 * transaction, then print.
 * THREADS: any (see admin.c); password hashing happens before the write
 * transaction begins, so the LMDB write lock is never held across it.
 * ERRORS: sysexits.h codes (admin.c), reported on io->err.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <idn2.h>

#include "admin-cli/admin_int.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/passwd.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

#define ADMIN_WHY_MAX 256
#define ADMIN_IMPORT_MAX (64u * 1024 * 1024) /* bytes of one CSV file */
#define ADMIN_IMPORT_ERRORS_MAX 100
#define ADMIN_LIST_FLUSH 65536 /* bytes buffered by streaming listings */
#define ADMIN_ADDR_COL 40      /* address column of streaming listings */

/* ------------------------------------------------------------ helpers */

/* A display name: UTF-8 without control characters, 1..TENANCY_NAME_MAX bytes. */
static const char *admin_name_check(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t len = strlen(s);

	if (len == 0)
		return "the name is empty";
	if (len > TENANCY_NAME_MAX)
		return "the name is longer than 200 bytes";
	while (*p != '\0') {
		size_t n = *p >= 0x80 ? str_utf8_seq_len(p) : 1;

		if (n == 0)
			return "the name is not valid UTF-8";
		if (*p < 0x20 || *p == 0x7f || (*p == 0xc2 && p[1] < 0xa0))
			return "the name holds a control character";
		p += n;
	}
	return NULL;
}

/* The tenant of a domain of our table (fresh string or NULL), or -ENOENT. */
static int admin_domain_tenant(struct queue_txn *txn, const char *domain, char **tenant)
{
	struct queue_domain *d = NULL;
	int rc = queue_domain_get(txn, domain, &d);

	*tenant = NULL;
	if (rc < 0)
		return rc;
	*tenant = d->tenant != NULL ? xstrdup(d->tenant) : NULL;
	queue_domain_free(d);
	return 0;
}

/*
 * The tenant of an address's domain for a handler: 0 with *tenant, or
 * an exit code (reported: 66 when the domain is not ours, 77 when it is
 * outside the caller's subtree).
 */
static int admin_addr_tenant(struct admin *a, struct queue_txn *txn, const char *addr,
    char **tenant)
{
	const char *domain = addr_domain_of(addr);
	int rc = admin_domain_tenant(txn, domain, tenant);

	if (rc == -ENOENT) {
		admin__err(a, "%s: no such domain '%s' (add it with 'domain add')", addr, domain);
		return EX_NOINPUT;
	}
	if (rc < 0) {
		admin__err(a, "cannot read domain %s: %s", domain, queue_strerror(rc));
		return admin__store_exit(rc);
	}
	if ((rc = admin__need_tenant(a, *tenant, addr)) != 0) {
		free(*tenant);
		*tenant = NULL;
		return rc;
	}
	return 0;
}

/* Whether tenant exists: 0, or 66 (reported, "what" names the argument). */
static int admin_tenant_exists(struct admin *a, struct queue_txn *txn, const char *id,
    const char *what)
{
	struct queue_tenant *t = NULL;
	int rc = queue_tenant_get(txn, id, &t);

	queue_tenant_free(t);
	if (rc == -ENOENT) {
		admin__err(a, "%s \"%s\": no such tenant", what, id);
		return EX_NOINPUT;
	}
	if (rc < 0) {
		admin__err(a, "cannot read tenant %s: %s", id, queue_strerror(rc));
		return admin__store_exit(rc);
	}
	return 0;
}

/* "a,b" of two tenant ids for the audit fact (b may be NULL). */
static void admin_tenants2(char *out, size_t outlen, const char *x, const char *y)
{
	if (y != NULL && y[0] != '\0' && (x == NULL || strcmp(x, y) != 0))
		snprintf(out, outlen, "%s,%s", x != NULL ? x : "", y);
	else
		snprintf(out, outlen, "%s", x != NULL ? x : "");
}

/* ---------------------------------------------------------- tenants */

struct admin_tenant_list {
	struct queue_tenant *v; /* deep copies, sorted by id after the walk */
	size_t n, cap;
};

static int admin_tenant_collect(void *arg, const struct queue_tenant *t)
{
	struct admin_tenant_list *l = arg;
	struct queue_tenant *c;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
	}
	c = &l->v[l->n++];
	c->id = xstrdup(t->id);
	c->name = xstrdup(t->name != NULL ? t->name : "");
	c->parent = t->parent != NULL ? xstrdup(t->parent) : NULL;
	c->created = t->created;
	return 0;
}

static void admin_tenant_list_free(struct admin_tenant_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].id);
		free(l->v[i].name);
		free(l->v[i].parent);
	}
	free(l->v);
}

static int admin_tenant_cmp(const void *x, const void *y)
{
	return strcmp(((const struct queue_tenant *)x)->id, ((const struct queue_tenant *)y)->id);
}

static const struct queue_tenant *admin_tenant_find(const struct admin_tenant_list *l,
    const char *id)
{
	struct queue_tenant key = { (char *)id, NULL, NULL, 0 };

	if (id == NULL || l->n == 0)
		return NULL;
	return bsearch(&key, l->v, l->n, sizeof *l->v, admin_tenant_cmp);
}

static int admin_tenants_read(struct admin *a, struct queue_txn *txn,
    struct admin_tenant_list *l)
{
	int rc = queue_tenant_walk(txn, admin_tenant_collect, l);

	if (rc < 0) {
		admin__err(a, "cannot read the tenants: %s", queue_strerror(rc));
		return admin__store_exit(rc);
	}
	if (l->n > 1)
		qsort(l->v, l->n, sizeof *l->v, admin_tenant_cmp);
	return 0;
}

/* Depth of a tenant: 0 for a root (bounded, so a damaged table cannot loop). */
static int admin_tenant_depth(const struct admin_tenant_list *l, const struct queue_tenant *t)
{
	int depth = 0;

	while (t != NULL && t->parent != NULL && depth < TENANCY_DEPTH_MAX) {
		t = admin_tenant_find(l, t->parent);
		if (t == NULL)
			break;
		depth++;
	}
	return depth;
}

static void admin_tenant_json(const struct admin *a, const struct queue_tenant *t, int depth)
{
	struct admin_json j;
	char tm[ADMIN_TIME_LEN];

	admin__json_begin(&j);
	admin__json_kstr(&j, "id", t->id);
	admin__json_kstr(&j, "name", t->name);
	admin__json_kstr(&j, "parent", t->parent);
	admin__json_kint(&j, "depth", depth);
	admin__json_kstr(&j, "created", admin__time(t->created, t->created != 0, tm));
	admin__json_end(a, &j);
}

int admin__tenant_add(struct admin *a, const struct admin_args *args)
{
	const char *id = admin__arg(args, "id");
	const char *name = admin__arg(args, "--name");
	const char *parent = admin__arg(args, "--parent");
	struct queue_tenant t, *old = NULL;
	struct queue_audit_field f[2];
	struct queue_txn *txn;
	char why[ADMIN_WHY_MAX], tenants[2 * TENANCY_ID_MAX + 2];
	const char *bad;
	int rc;

	if ((rc = admin__tenant_arg(a, "tenant", id)) != 0)
		return rc;
	if (parent != NULL && (rc = admin__tenant_arg(a, "--parent", parent)) != 0)
		return rc;
	if ((bad = admin_name_check(name)) != NULL) {
		char *shown = admin__text_dup(name);

		admin__err(a, "--name \"%s\": %s", shown, bad);
		free(shown);
		return EX_DATAERR;
	}
	/* Postmasters grow their own subtree; only super adds a root. */
	if (parent == NULL && !a->super)
		return admin__deny(a, id, "only root or the store's owner may add a root tenant; "
		    "give --parent inside tenant %s", a->op_tenant);
	if (parent != NULL && (rc = admin__need_tenant(a, parent, "--parent")) != 0)
		return rc;
	if ((rc = admin__txn(a, true, &txn)) != 0)
		return rc;
	rc = queue_tenant_get(txn, id, &old);
	if (rc == 0) {
		/* Ids are global; a name outside the caller's reach is not theirs to read. */
		char *shown = admin__text_dup(old->name);

		if (admin__tenant_in_scope(a, id))
			admin__err(a, "tenant %s already exists (%s)", id, shown);
		else
			admin__err(a, "tenant id %s is taken; choose another", id);
		free(shown);
		queue_tenant_free(old);
		queue_txn_abort(txn);
		return EX_CANTCREAT;
	}
	if (rc != -ENOENT) {
		queue_txn_abort(txn);
		return admin__fail(a, rc, NULL, "cannot read tenant %s", id);
	}
	t.id = (char *)id;
	t.name = (char *)name;
	t.parent = (char *)parent;
	t.created = time_now_ms();
	why[0] = '\0';
	rc = queue_tenant_put(txn, &t, why, sizeof why);
	if (rc < 0) {
		queue_txn_abort(txn);
		if (rc == -ENOENT && why[0] == '\0')
			snprintf(why, sizeof why, "no such tenant '%s'", parent);
		return admin__fail(a, rc, why, "cannot add tenant %s", id);
	}
	admin_tenants2(tenants, sizeof tenants, id, parent);
	f[0] = (struct queue_audit_field){ "name", name };
	f[1] = (struct queue_audit_field){ "parent", parent };
	rc = admin__audit(a, txn, tenants, id, f, 2);
	if (rc < 0) {
		queue_txn_abort(txn);
		return admin__fail(a, rc, NULL, "cannot write the audit record");
	}
	if ((rc = admin__commit(a, txn, "the new tenant")) != 0)
		return rc;
	if (a->json) {
		struct admin_json j;
		char tm[ADMIN_TIME_LEN];

		admin__json_begin(&j);
		admin__json_kstr(&j, "id", id);
		admin__json_kstr(&j, "name", name);
		admin__json_kstr(&j, "parent", parent);
		admin__json_kstr(&j, "created", admin__time(t.created, true, tm));
		admin__json_end(a, &j);
	} else {
		char *shown = admin__text_dup(name);

		admin__out(a, "tenant %s added (%s)%s%s\n", id, shown,
		    parent != NULL ? ", parent " : "", parent != NULL ? parent : "");
		free(shown);
	}
	return EX_OK;
}

/* Depth-first, children in id order: the tree as people draw it. */
static void admin_tenant_tree(const struct admin *a, const struct admin_tenant_list *l,
    const struct queue_tenant *t, int depth, struct admin_table *tab, int guard)
{
	char tm[ADMIN_TIME_LEN];

	if (guard > TENANCY_DEPTH_MAX)
		return;
	if (a->json) {
		admin_tenant_json(a, t, depth);
	} else {
		struct buf b;
		const char *row[3];

		buf_init(&b);
		for (int i = 0; i < depth; i++)
			buf_append_str(&b, "  ");
		buf_append_str(&b, t->id);
		row[0] = buf_cstr(&b);
		row[1] = t->name;
		row[2] = admin__time(t->created, t->created != 0, tm);
		admin__table_row(tab, row);
		buf_free(&b);
	}
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].parent != NULL && strcmp(l->v[i].parent, t->id) == 0)
			admin_tenant_tree(a, l, &l->v[i], depth + 1, tab, guard + 1);
}

int admin__tenant_list(struct admin *a, const struct admin_args *args)
{
	static const char *const head[] = { "TENANT", "NAME", "CREATED" };
	struct admin_tenant_list l = { NULL, 0, 0 };
	struct admin_table tab = { 3, head, "lll", NULL, 0, 0 };
	struct queue_txn *txn;
	int rc = 0;

	(void)args;
	if (a->store != NULL) {
		if ((rc = admin__txn(a, false, &txn)) != 0)
			return rc;
		rc = admin_tenants_read(a, txn, &l);
		queue_txn_abort(txn);
		if (rc != 0)
			goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		const struct queue_tenant *t = &l.v[i];
		bool root;

		if (a->super)
			root = t->parent == NULL || admin_tenant_find(&l, t->parent) == NULL;
		else
			root = strcmp(t->id, a->op_tenant) == 0;
		if (root)
			admin_tenant_tree(a, &l, t, admin_tenant_depth(&l, t), &tab, 0);
	}
	if (!a->json)
		admin__table_print(a, &tab);
out:
	admin__table_free(&tab);
	admin_tenant_list_free(&l);
	return rc;
}

struct admin_tenant_show {
	const char *id;
	struct buf domains;   /* NUL-separated */
	struct buf operators; /* NUL-separated "user\0role\0" */
	size_t ndomains, noperators;
};

static int admin_show_domain(void *arg, const struct queue_domain *d)
{
	struct admin_tenant_show *s = arg;

	if (d->tenant != NULL && strcmp(d->tenant, s->id) == 0) {
		buf_append(&s->domains, d->name, strlen(d->name) + 1);
		s->ndomains++;
	}
	return 0;
}

static int admin_show_operator(void *arg, const struct queue_operator *o)
{
	struct admin_tenant_show *s = arg;
	const char *role = queue_role_name(o->role);

	if (o->tenant != NULL && strcmp(o->tenant, s->id) == 0) {
		buf_append(&s->operators, o->unix_user, strlen(o->unix_user) + 1);
		buf_append(&s->operators, role, strlen(role) + 1);
		s->noperators++;
	}
	return 0;
}

int admin__tenant_show(struct admin *a, const struct admin_args *args)
{
	const char *id = admin__arg(args, "id");
	struct admin_tenant_list l = { NULL, 0, 0 };
	struct admin_tenant_show s;
	const struct queue_tenant *t, *chain[TENANCY_DEPTH_MAX + 1];
	struct queue_txn *txn;
	char tm[ADMIN_TIME_LEN];
	size_t nchain = 0;
	int rc;

	memset(&s, 0, sizeof s);
	s.id = id;
	buf_init(&s.domains);
	buf_init(&s.operators);
	if ((rc = admin__tenant_arg(a, "tenant", id)) != 0)
		goto out;
	if ((rc = admin__need_tenant(a, id, "tenant")) != 0)
		goto out;
	if (a->store == NULL) {
		admin__err(a, "no such tenant '%s'", id);
		rc = EX_NOINPUT;
		goto out;
	}
	if ((rc = admin__txn(a, false, &txn)) != 0)
		goto out;
	rc = admin_tenants_read(a, txn, &l);
	if (rc == 0 && admin_tenant_find(&l, id) != NULL) {
		int qrc = queue_domain_walk(txn, admin_show_domain, &s);

		if (qrc == 0)
			qrc = queue_operator_walk(txn, admin_show_operator, &s);
		if (qrc < 0) {
			admin__err(a, "cannot read tenant %s: %s", id, queue_strerror(qrc));
			rc = admin__store_exit(qrc);
		}
	}
	queue_txn_abort(txn);
	if (rc != 0)
		goto out;
	t = admin_tenant_find(&l, id);
	if (t == NULL) {
		admin__err(a, "no such tenant '%s'", id);
		rc = EX_NOINPUT;
		goto out;
	}
	/* The chain from the root down to the parent. */
	for (const struct queue_tenant *p = admin_tenant_find(&l, t->parent);
	    p != NULL && nchain < TENANCY_DEPTH_MAX; p = admin_tenant_find(&l, p->parent))
		chain[nchain++] = p;
	if (a->json) {
		struct admin_json j;
		const char *p;

		admin__json_begin(&j);
		admin__json_kstr(&j, "id", t->id);
		admin__json_kstr(&j, "name", t->name);
		admin__json_kstr(&j, "parent", t->parent);
		admin__json_kint(&j, "depth", (int64_t)nchain);
		admin__json_open(&j, "chain", '[');
		for (size_t i = nchain; i > 0; i--) {
			admin__json_sep(&j, NULL);
			admin__json_str(&j.b, chain[i - 1]->id);
		}
		admin__json_close(&j, ']');
		admin__json_open(&j, "children", '[');
		for (size_t i = 0; i < l.n; i++) {
			if (l.v[i].parent == NULL || strcmp(l.v[i].parent, id) != 0)
				continue;
			admin__json_sep(&j, NULL);
			admin__json_str(&j.b, l.v[i].id);
		}
		admin__json_close(&j, ']');
		admin__json_open(&j, "domains", '[');
		p = s.domains.data;
		for (size_t i = 0; i < s.ndomains; i++, p += strlen(p) + 1) {
			admin__json_sep(&j, NULL);
			admin__json_str(&j.b, p);
		}
		admin__json_close(&j, ']');
		admin__json_open(&j, "operators", '[');
		p = s.operators.data;
		for (size_t i = 0; i < s.noperators; i++) {
			admin__json_open(&j, NULL, '{');
			admin__json_kstr(&j, "user", p);
			p += strlen(p) + 1;
			admin__json_kstr(&j, "role", p);
			p += strlen(p) + 1;
			admin__json_close(&j, '}');
		}
		admin__json_close(&j, ']');
		admin__json_kstr(&j, "created", admin__time(t->created, t->created != 0, tm));
		admin__json_end(a, &j);
	} else {
		struct buf b;
		const char *p;

		buf_init(&b);
		admin__kv(a, "", "tenant", t->id);
		admin__kv(a, "", "name", t->name);
		admin__kv(a, "", "parent", t->parent);
		for (size_t i = nchain; i > 0; i--) {
			buf_append_str(&b, chain[i - 1]->id);
			buf_append_str(&b, " > ");
		}
		buf_append_str(&b, t->id);
		admin__kv(a, "", "path", buf_cstr(&b));
		admin__kv(a, "", "created", admin__time(t->created, t->created != 0, tm));
		buf_reset(&b);
		for (size_t i = 0; i < l.n; i++) {
			if (l.v[i].parent == NULL || strcmp(l.v[i].parent, id) != 0)
				continue;
			buf_printf(&b, "%s%s", b.len ? ", " : "", l.v[i].id);
		}
		admin__kv(a, "", "children", b.len ? buf_cstr(&b) : NULL);
		buf_reset(&b);
		p = s.domains.data;
		for (size_t i = 0; i < s.ndomains; i++, p += strlen(p) + 1)
			buf_printf(&b, "%s%s", b.len ? ", " : "", p);
		admin__kv(a, "", "domains", b.len ? buf_cstr(&b) : NULL);
		buf_reset(&b);
		p = s.operators.data;
		for (size_t i = 0; i < s.noperators; i++) {
			const char *u = p, *r = p + strlen(p) + 1;

			buf_printf(&b, "%s%s (%s)", b.len ? ", " : "", u, r);
			p = r + strlen(r) + 1;
		}
		admin__kv(a, "", "operators", b.len ? buf_cstr(&b) : NULL);
		buf_free(&b);
	}
	rc = EX_OK;
out:
	buf_free(&s.domains);
	buf_free(&s.operators);
	admin_tenant_list_free(&l);
	return rc;
}

int admin__tenant_remove(struct admin *a, const struct admin_args *args)
{
	const char *id = admin__arg(args, "id");
	struct queue_tenant *t = NULL;
	struct queue_audit_field f[1];
	struct queue_txn *txn;
	char why[ADMIN_WHY_MAX], tenants[2 * TENANCY_ID_MAX + 2];
	int rc;

	if ((rc = admin__tenant_arg(a, "tenant", id)) != 0)
		return rc;
	if (!a->super && strcmp(id, a->op_tenant) == 0)
		return admin__deny(a, id, "a postmaster may not remove their own tenant");
	if ((rc = admin__need_tenant(a, id, "tenant")) != 0)
		return rc;
	if ((rc = admin__txn(a, true, &txn)) != 0)
		return rc;
	rc = queue_tenant_get(txn, id, &t);
	if (rc < 0) {
		queue_txn_abort(txn);
		return admin__fail(a, rc, rc == -ENOENT ? "no such tenant" : NULL,
		    "cannot remove tenant %s", id);
	}
	why[0] = '\0';
	rc = queue_tenant_delete(txn, id, why, sizeof why);
	if (rc < 0) {
		queue_txn_abort(txn);
		queue_tenant_free(t);
		return admin__fail(a, rc, why, "cannot remove tenant %s", id);
	}
	admin_tenants2(tenants, sizeof tenants, id, t->parent);
	f[0] = (struct queue_audit_field){ "name", t->name };
	rc = admin__audit(a, txn, tenants, id, f, 1);
	queue_tenant_free(t);
	if (rc < 0) {
		queue_txn_abort(txn);
		return admin__fail(a, rc, NULL, "cannot write the audit record");
	}
	if ((rc = admin__commit(a, txn, "the removal")) != 0)
		return rc;
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "id", id);
		admin__json_kbool(&j, "removed", true);
		admin__json_end(a, &j);
	} else {
		admin__out(a, "tenant %s removed\n", id);
	}
	return EX_OK;
}

/* ---------------------------------------------------------- domains */

/* The Unicode form of an A-label domain (fresh), or NULL when the same. */
static char *admin_domain_unicode(const char *name)
{
	char *u = NULL, *copy;

	if (strstr(name, "xn--") == NULL)
		return NULL;
	if (idn2_to_unicode_8z8z(name, &u, 0) != IDN2_OK || u == NULL)
		return NULL;
	copy = strcmp(u, name) != 0 ? xstrdup(u) : NULL;
	idn2_free(u);
	return copy;
}

static void admin_domain_json(const struct admin *a, const struct queue_domain *d,
    const uint64_t *mailboxes, const uint64_t *users)
{
	struct admin_json j;
	char t[ADMIN_TIME_LEN], *u = admin_domain_unicode(d->name);

	admin__json_begin(&j);
	admin__json_kstr(&j, "domain", d->name);
	admin__json_kstr(&j, "unicode", u != NULL ? u : d->name);
	admin__json_kstr(&j, "tenant", d->tenant);
	admin__json_kstr(&j, "route", d->route);
	admin__json_kbool(&j, "require_tls", d->require_tls);
	admin__json_kbool(&j, "accept_all", d->accept_all);
	if (mailboxes != NULL)
		admin__json_kuint(&j, "mailboxes", *mailboxes);
	if (users != NULL)
		admin__json_kuint(&j, "users", *users);
	admin__json_kstr(&j, "created", admin__time(d->created, true, t));
	admin__json_end(a, &j);
	free(u);
}

int admin__domain_add(struct admin *a, const struct admin_args *args)
{
	const char *route = admin__arg(args, "--route");
	const char *tenant = admin__arg(args, "--tenant");
	struct queue_domain d, *old = NULL;
	struct queue_audit_field f[3];
	struct queue_txn *txn;
	char name[ADDR_DOMAIN_MAX + 1], why[ADMIN_WHY_MAX];
	int rc;

	if ((rc = admin__domain_arg(a, "domain", admin__arg(args, "domain"), name,
	    sizeof name)) != 0)
		return rc;
	why[0] = '\0';
	if (queue_route_check(route, why, sizeof why) < 0) {
		char *shown = admin__text_dup(route);

		admin__err(a, "--route \"%s\": %s", shown, why);
		free(shown);
		return EX_DATAERR;
	}
	if (tenant == NULL && !a->super)
		return admin__usage(a, "--tenant is required for postmasters");
	if (tenant != NULL && (rc = admin__tenant_arg(a, "--tenant", tenant)) != 0)
		return rc;
	if ((rc = admin__need_tenant(a, tenant, "--tenant")) != 0)
		return rc;
	memset(&d, 0, sizeof d);
	d.name = name;
	d.tenant = (char *)tenant;
	d.route = (char *)route;
	d.require_tls = admin__arg(args, "--require-tls") != NULL;
	d.accept_all = admin__arg(args, "--accept-all") != NULL;
	d.created = time_now_ms();
	if ((rc = admin__txn(a, true, &txn)) != 0)
		return rc;
	rc = queue_domain_get(txn, name, &old);
	if (rc == 0) {
		char *shown = admin__text_dup(old->route);

		if (admin__tenant_in_scope(a, old->tenant))
			admin__err(a, "domain %s already exists (route %s)", name, shown);
		else
			admin__err(a, "domain %s already exists (another tenant's)", name);
		free(shown);
		queue_domain_free(old);
		queue_txn_abort(txn);
		return EX_CANTCREAT;
	}
	if (rc != -ENOENT)
		goto fail;
	if (tenant != NULL && (rc = admin_tenant_exists(a, txn, tenant, "--tenant")) != 0) {
		queue_txn_abort(txn);
		return rc;
	}
	if ((rc = queue_domain_put(txn, &d)) < 0)
		goto fail;
	f[0] = (struct queue_audit_field){ "route", route };
	f[1] = (struct queue_audit_field){ "require_tls", d.require_tls ? "yes" : "no" };
	f[2] = (struct queue_audit_field){ "accept_all", d.accept_all ? "yes" : "no" };
	if ((rc = admin__audit(a, txn, tenant, name, f, 3)) < 0)
		goto fail;
	if ((rc = admin__commit(a, txn, "the new domain")) != 0)
		return rc;
	if (a->json) {
		admin_domain_json(a, &d, NULL, NULL);
	} else {
		char *u = admin_domain_unicode(name);

		admin__out(a, "domain %s%s%s%s added, route %s\n", name, u ? " (" : "", u ? u : "",
		    u ? ")" : "", route);
		free(u);
	}
	return EX_OK;
fail:
	queue_txn_abort(txn);
	/* Our arguments were checked, so a refusal here is our bug. */
	admin__err(a, "cannot add domain %s: %s", name, queue_strerror(rc));
	return rc == -EINVAL ? EX_SOFTWARE : admin__store_exit(rc);
}

struct admin_user_count {
	const char *domain;
	uint64_t n;
};

static int admin_user_count_cb(void *arg, const struct queue_user *u)
{
	struct admin_user_count *c = arg;

	if (strcmp(addr_domain_of(u->address), c->domain) == 0)
		c->n++;
	return 0;
}

int admin__domain_remove(struct admin *a, const struct admin_args *args)
{
	struct queue_domain *d = NULL;
	struct admin_user_count uc;
	struct queue_audit_field f[1];
	struct queue_txn *txn;
	char name[ADDR_DOMAIN_MAX + 1];
	uint64_t mailboxes = 0;
	int rc;

	if ((rc = admin__domain_arg(a, "domain", admin__arg(args, "domain"), name,
	    sizeof name)) != 0)
		return rc;
	if ((rc = admin__txn(a, true, &txn)) != 0)
		return rc;
	rc = queue_domain_get(txn, name, &d);
	if (rc == -ENOENT) {
		queue_txn_abort(txn);
		admin__err(a, "no such domain '%s'", name);
		return EX_NOINPUT;
	}
	if (rc < 0)
		goto fail;
	if ((rc = admin__need_tenant(a, d->tenant, name)) != 0) {
		queue_txn_abort(txn);
		queue_domain_free(d);
		return rc;
	}
	uc.domain = name;
	uc.n = 0;
	if ((rc = queue_mailbox_count_domain(txn, name, &mailboxes)) < 0 ||
	    (rc = queue_user_walk(txn, admin_user_count_cb, &uc)) < 0)
		goto fail;
	if (mailboxes > 0 || uc.n > 0) {
		queue_txn_abort(txn);
		queue_domain_free(d);
		admin__err(a, "domain %s still has %" PRIu64 " mailboxes or aliases and %" PRIu64
		    " users; remove them first", name, mailboxes, uc.n);
		return EX_DATAERR;
	}
	if ((rc = queue_domain_delete(txn, name)) < 0)
		goto fail;
	f[0] = (struct queue_audit_field){ "route", d->route };
	if ((rc = admin__audit(a, txn, d->tenant, name, f, 1)) < 0)
		goto fail;
	queue_domain_free(d);
	if ((rc = admin__commit(a, txn, "the removal")) != 0)
		return rc;
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "domain", name);
		admin__json_kbool(&j, "removed", true);
		admin__json_end(a, &j);
	} else {
		admin__out(a, "domain %s removed\n", name);
	}
	return EX_OK;
fail:
	queue_txn_abort(txn);
	queue_domain_free(d);
	admin__err(a, "cannot remove domain %s: %s", name, queue_strerror(rc));
	return rc == -EINVAL ? EX_SOFTWARE : admin__store_exit(rc);
}

struct admin_domain_rows {
	const struct admin *a;
	const char *tenant; /* filter, or NULL */
	struct queue_domain *v;
	size_t n, cap;
};

static int admin_domain_collect(void *arg, const struct queue_domain *d)
{
	struct admin_domain_rows *l = arg;
	struct queue_domain *c;

	if (l->tenant != NULL && (d->tenant == NULL || strcmp(d->tenant, l->tenant) != 0))
		return 0;
	if (!admin__tenant_in_scope(l->a, d->tenant))
		return 0;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
	}
	c = &l->v[l->n++];
	memset(c, 0, sizeof *c);
	c->name = xstrdup(d->name);
	c->tenant = d->tenant != NULL ? xstrdup(d->tenant) : NULL;
	c->route = xstrdup(d->route != NULL ? d->route : "");
	c->require_tls = d->require_tls;
	c->accept_all = d->accept_all;
	c->created = d->created;
	return 0;
}

int admin__domain_list(struct admin *a, const struct admin_args *args)
{
	static const char *const head[] = { "DOMAIN", "TENANT", "ROUTE", "TLS", "ACCEPT",
		"CREATED" };
	struct admin_domain_rows l = { a, admin__arg(args, "--tenant"), NULL, 0, 0 };
	struct admin_table t = { 6, head, "llllll", NULL, 0, 0 };
	struct queue_txn *txn;
	int rc = 0;

	if (l.tenant != NULL && (rc = admin__tenant_arg(a, "--tenant", l.tenant)) != 0)
		return rc;
	if (l.tenant != NULL && (rc = admin__need_tenant(a, l.tenant, "--tenant")) != 0)
		return rc;
	if (a->store != NULL) {
		if ((rc = admin__txn(a, false, &txn)) != 0)
			return rc;
		rc = queue_domain_walk(txn, admin_domain_collect, &l);
		queue_txn_abort(txn);
		if (rc < 0) {
			admin__err(a, "cannot read the domains: %s", queue_strerror(rc));
			rc = admin__store_exit(rc);
			goto out;
		}
	}
	for (size_t i = 0; i < l.n; i++) {
		const struct queue_domain *d = &l.v[i];
		char tm[ADMIN_TIME_LEN];
		const char *row[6];

		if (a->json) {
			admin_domain_json(a, d, NULL, NULL);
			continue;
		}
		row[0] = d->name;
		row[1] = d->tenant != NULL ? d->tenant : "-";
		row[2] = d->route;
		row[3] = d->require_tls ? "required" : "optional";
		row[4] = d->accept_all ? "any" : "listed";
		row[5] = admin__time(d->created, true, tm);
		admin__table_row(&t, row);
	}
	if (!a->json)
		admin__table_print(a, &t);
out:
	admin__table_free(&t);
	for (size_t i = 0; i < l.n; i++) {
		free(l.v[i].name);
		free(l.v[i].tenant);
		free(l.v[i].route);
	}
	free(l.v);
	return rc;
}

int admin__domain_show(struct admin *a, const struct admin_args *args)
{
	struct queue_domain *d = NULL;
	struct admin_user_count uc;
	struct queue_txn *txn;
	char name[ADDR_DOMAIN_MAX + 1], tm[ADMIN_TIME_LEN], n[24];
	uint64_t mailboxes = 0;
	int rc;

	if ((rc = admin__domain_arg(a, "domain", admin__arg(args, "domain"), name,
	    sizeof name)) != 0)
		return rc;
	rc = -ENOENT;
	uc.domain = name;
	uc.n = 0;
	if (a->store != NULL) {
		if ((rc = admin__txn(a, false, &txn)) != 0)
			return rc;
		rc = queue_domain_get(txn, name, &d);
		if (rc == 0 && (rc = queue_mailbox_count_domain(txn, name, &mailboxes)) == 0)
			rc = queue_user_walk(txn, admin_user_count_cb, &uc);
		queue_txn_abort(txn);
	}
	if (rc == -ENOENT && d == NULL) {
		admin__err(a, "no such domain '%s'", name);
		return EX_NOINPUT;
	}
	if (rc < 0) {
		queue_domain_free(d);
		admin__err(a, "cannot read domain %s: %s", name, queue_strerror(rc));
		return admin__store_exit(rc);
	}
	if ((rc = admin__need_tenant(a, d->tenant, name)) != 0) {
		queue_domain_free(d);
		return rc;
	}
	if (a->json) {
		admin_domain_json(a, d, &mailboxes, &uc.n);
	} else {
		char *u = admin_domain_unicode(d->name);

		admin__kv(a, "", "domain", d->name);
		admin__kv(a, "", "unicode", u != NULL ? u : d->name);
		admin__kv(a, "", "tenant", d->tenant);
		admin__kv(a, "", "route", d->route);
		admin__kv(a, "", "require_tls", d->require_tls ? "yes" : "no");
		admin__kv(a, "", "accept_all", d->accept_all ? "yes" : "no");
		snprintf(n, sizeof n, "%" PRIu64, mailboxes);
		admin__kv(a, "", "mailboxes", n);
		snprintf(n, sizeof n, "%" PRIu64, uc.n);
		admin__kv(a, "", "users", n);
		admin__kv(a, "", "created", admin__time(d->created, true, tm));
		free(u);
	}
	queue_domain_free(d);
	return EX_OK;
}

/* --------------------------------------------------------- mailboxes */

static bool admin_mailbox_has_target(const struct queue_mailbox *m, const char *target)
{
	for (size_t i = 0; i < m->nalias_of; i++)
		if (strcmp(m->alias_of[i], target) == 0)
			return true;
	return false;
}

int admin__mailbox_add(struct admin *a, const struct admin_args *args)
{
	const char *target_arg = admin__arg(args, "--alias-of");
	char addr[ADDR_MAX + 1], target[ADDR_MAX + 1], why[ADMIN_WHY_MAX];
	struct queue_mailbox *old = NULL, m;
	struct queue_audit_field f[1];
	struct queue_txn *txn;
	char *tenant = NULL, **targets = NULL;
	bool alias = target_arg != NULL;
	int rc;

	if ((rc = admin__addr_arg(a, "address", admin__arg(args, "address"), addr,
	    sizeof addr)) != 0)
		return rc;
	if (alias && (rc = admin__addr_arg(a, "--alias-of", target_arg, target,
	    sizeof target)) != 0)
		return rc;
	if (alias && strcmp(addr, target) == 0) {
		admin__err(a, "--alias-of \"%s\": an address cannot be an alias of itself", target);
		return EX_DATAERR;
	}
	if ((rc = admin__txn(a, true, &txn)) != 0)
		return rc;
	if ((rc = admin_addr_tenant(a, txn, addr, &tenant)) != 0) {
		queue_txn_abort(txn);
		return rc;
	}
	rc = queue_mailbox_get(txn, addr, &old);
	if (rc < 0 && rc != -ENOENT) {
		queue_txn_abort(txn);
		free(tenant);
		return admin__fail(a, rc, NULL, "cannot read %s", addr);
	}
	memset(&m, 0, sizeof m);
	m.address = addr;
	m.created = time_now_ms();
	if (old != NULL) {
		const char *what = NULL;

		if (!alias)
			what = old->nalias_of > 0 ? "an alias" : "a mailbox";
		else if (old->nalias_of == 0)
			what = "a mailbox, not an alias";
		if (what != NULL) {
			admin__err(a, "%s already exists as %s", addr, what);
			rc = EX_CANTCREAT;
			goto abort;
		}
		if (admin_mailbox_has_target(old, target)) {
			admin__out(a, "alias %s already delivers to %s; nothing changed\n", addr,
			    target);
			rc = EX_OK;
			goto abort;
		}
		if (old->nalias_of >= TENANCY_ALIAS_TARGETS_MAX) {
			admin__err(a, "alias %s has %d targets already, the most allowed", addr,
			    TENANCY_ALIAS_TARGETS_MAX);
			rc = EX_DATAERR;
			goto abort;
		}
		targets = xcalloc(old->nalias_of + 1, sizeof *targets);
		for (size_t i = 0; i < old->nalias_of; i++)
			targets[i] = old->alias_of[i];
		targets[old->nalias_of] = target;
		m.alias_of = targets;
		m.nalias_of = old->nalias_of + 1;
		m.created = old->created;
	} else if (alias) {
		targets = xcalloc(1, sizeof *targets);
		targets[0] = target;
		m.alias_of = targets;
		m.nalias_of = 1;
	}
	why[0] = '\0';
	if ((rc = queue_mailbox_put(txn, &m, why, sizeof why)) < 0) {
		queue_txn_abort(txn);
		rc = admin__fail(a, rc, why, "cannot add %s", addr);
		goto out;
	}
	f[0] = (struct queue_audit_field){ "alias_of", alias ? target : NULL };
	if ((rc = admin__audit(a, txn, tenant, addr, f, 1)) < 0) {
		queue_txn_abort(txn);
		rc = admin__fail(a, rc, NULL, "cannot write the audit record");
		goto out;
	}
	if ((rc = admin__commit(a, txn, "the mailbox")) != 0)
		goto out;
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "address", addr);
		admin__json_kstr(&j, "type", alias ? "alias" : "mailbox");
		admin__json_open(&j, "alias_of", '[');
		for (size_t i = 0; i < m.nalias_of; i++) {
			admin__json_sep(&j, NULL);
			admin__json_str(&j.b, m.alias_of[i]);
		}
		admin__json_close(&j, ']');
		admin__json_end(a, &j);
	} else if (!alias) {
		admin__out(a, "mailbox %s added\n", addr);
	} else if (old != NULL) {
		admin__out(a, "alias %s: %s appended (%zu targets)\n", addr, target, m.nalias_of);
	} else {
		admin__out(a, "alias %s added: delivers to %s\n", addr, target);
	}
	rc = EX_OK;
	goto out;
abort:
	queue_txn_abort(txn);
out:
	free(targets);
	free(tenant);
	queue_mailbox_free(old);
	return rc;
}

int admin__mailbox_remove(struct admin *a, const struct admin_args *args)
{
	struct queue_mailbox *old = NULL;
	struct queue_user *u = NULL;
	struct queue_txn *txn;
	char addr[ADDR_MAX + 1], *tenant = NULL;
	int rc;

	if ((rc = admin__addr_arg(a, "address", admin__arg(args, "address"), addr,
	    sizeof addr)) != 0)
		return rc;
	if ((rc = admin__txn(a, true, &txn)) != 0)
		return rc;
	rc = queue_mailbox_get(txn, addr, &old);
	if (rc == -ENOENT) {
		queue_txn_abort(txn);
		admin__err(a, "no such mailbox or alias '%s'", addr);
		return EX_NOINPUT;
	}
	if (rc < 0) {
		queue_txn_abort(txn);
		return admin__fail(a, rc, NULL, "cannot read %s", addr);
	}
	if ((rc = admin_addr_tenant(a, txn, addr, &tenant)) != 0)
		goto abort;
	rc = queue_user_get(txn, addr, &u);
	queue_user_free(u);
	if (rc == 0) {
		admin__err(a, "%s is a user's own address; remove the user first ('user remove')",
		    addr);
		rc = EX_DATAERR;
		goto abort;
	}
	if ((rc = queue_mailbox_delete(txn, addr)) < 0 ||
	    (rc = admin__audit(a, txn, tenant, addr, NULL, 0)) < 0) {
		queue_txn_abort(txn);
		rc = admin__fail(a, rc, NULL, "cannot remove %s", addr);
		goto out;
	}
	if ((rc = admin__commit(a, txn, "the removal")) != 0)
		goto out;
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "address", addr);
		admin__json_kbool(&j, "removed", true);
		admin__json_end(a, &j);
	} else {
		admin__out(a, "%s %s removed\n", old->nalias_of > 0 ? "alias" : "mailbox", addr);
	}
	rc = EX_OK;
	goto out;
abort:
	queue_txn_abort(txn);
out:
	free(tenant);
	queue_mailbox_free(old);
	return rc;
}

static void admin_mailbox_json(struct buf *b, const struct queue_mailbox *m)
{
	char tm[ADMIN_TIME_LEN];

	buf_append_str(b, "{\"address\":");
	admin__json_str(b, m->address);
	buf_append_str(b, ",\"type\":");
	admin__json_str(b, m->nalias_of > 0 ? "alias" : "mailbox");
	buf_append_str(b, ",\"alias_of\":[");
	for (size_t i = 0; i < m->nalias_of; i++) {
		if (i > 0)
			buf_append_char(b, ',');
		admin__json_str(b, m->alias_of[i]);
	}
	buf_append_str(b, "],\"created\":");
	admin__json_str(b, admin__time(m->created, m->created != 0, tm));
	buf_append_str(b, "}\n");
}

int admin__mailbox_show(struct admin *a, const struct admin_args *args)
{
	struct queue_mailbox *m = NULL;
	struct queue_user *u = NULL;
	struct queue_txn *txn;
	char addr[ADDR_MAX + 1], *tenant = NULL, tm[ADMIN_TIME_LEN];
	int rc;

	if ((rc = admin__addr_arg(a, "address", admin__arg(args, "address"), addr,
	    sizeof addr)) != 0)
		return rc;
	if (a->store == NULL) {
		admin__err(a, "no such mailbox or alias '%s'", addr);
		return EX_NOINPUT;
	}
	if ((rc = admin__txn(a, false, &txn)) != 0)
		return rc;
	rc = queue_mailbox_get(txn, addr, &m);
	if (rc == 0) {
		rc = admin_addr_tenant(a, txn, addr, &tenant);
		if (rc == 0 && queue_user_get(txn, addr, &u) < 0)
			u = NULL;
	} else if (rc == -ENOENT) {
		admin__err(a, "no such mailbox or alias '%s'", addr);
		rc = EX_NOINPUT;
	} else {
		rc = admin__fail(a, rc, NULL, "cannot read %s", addr);
	}
	queue_txn_abort(txn);
	if (rc != 0)
		goto out;
	if (a->json) {
		struct buf b;

		buf_init(&b);
		admin_mailbox_json(&b, m);
		/* Insert tenant and user before the closing brace. */
		b.len -= 2;
		buf_append_str(&b, ",\"tenant\":");
		admin__json_str(&b, tenant);
		buf_printf(&b, ",\"user\":%s}\n", u != NULL ? "true" : "false");
		admin__out_buf(a, &b);
		buf_free(&b);
	} else {
		struct buf b;

		buf_init(&b);
		admin__kv(a, "", "address", m->address);
		admin__kv(a, "", "type", m->nalias_of > 0 ? "alias" : "mailbox");
		for (size_t i = 0; i < m->nalias_of; i++)
			buf_printf(&b, "%s%s", i ? ", " : "", m->alias_of[i]);
		if (m->nalias_of > 0)
			admin__kv(a, "", "alias_of", buf_cstr(&b));
		admin__kv(a, "", "tenant", tenant);
		admin__kv(a, "", "user", u != NULL ? "yes" : "no");
		admin__kv(a, "", "created", admin__time(m->created, m->created != 0, tm));
		buf_free(&b);
	}
	rc = EX_OK;
out:
	free(tenant);
	queue_user_free(u);
	queue_mailbox_free(m);
	return rc;
}

/* Streaming output of `mailbox list`: printed inside the walk. */
struct admin_mailbox_stream {
	const struct admin *a;
	struct buf b;
	uint64_t n;
};

static int admin_mailbox_row(void *arg, const struct queue_mailbox *m)
{
	struct admin_mailbox_stream *s = arg;

	if (s->a->json) {
		admin_mailbox_json(&s->b, m);
	} else {
		admin__pad(&s->b, m->address, ADMIN_ADDR_COL);
		buf_append_str(&s->b, "  ");
		if (m->nalias_of == 0) {
			buf_append_str(&s->b, "mailbox");
		} else {
			buf_append_str(&s->b, "alias    ");
			for (size_t i = 0; i < m->nalias_of; i++) {
				if (i > 0)
					buf_append_str(&s->b, ", ");
				admin__text(&s->b, m->alias_of[i]);
			}
		}
		buf_append_char(&s->b, '\n');
	}
	s->n++;
	if (s->b.len >= ADMIN_LIST_FLUSH) {
		admin__out_buf(s->a, &s->b);
		buf_reset(&s->b);
	}
	return 0;
}

/*
 * The domains a listing covers: one (--domain), one tenant's
 * (--tenant), or every domain the caller may see. Returns 0 with a
 * NULL-terminated array of borrowed names from a->domains, or an exit
 * code (reported). *all is set when super lists everything, so the
 * caller can walk the whole table at once.
 */
static int admin_list_domains(struct admin *a, struct queue_txn *txn,
    const struct admin_args *args, const char ***out, bool *all, char *one, size_t onelen)
{
	const char *tenant = admin__arg(args, "--tenant");
	const char *domain = admin__arg(args, "--domain");
	const char **v;
	size_t n = 0;
	int rc;

	*out = NULL;
	*all = false;
	if ((rc = admin__domains_load(a, txn)) != 0)
		return rc;
	v = xcalloc(a->domains.n + 2, sizeof *v);
	if (domain != NULL) {
		const struct admin_domain_ent *e = admin__domain_find(a, one);

		(void)onelen;
		if (e == NULL) {
			admin__err(a, "--domain \"%s\": no such domain", one);
			free(v);
			return EX_NOINPUT;
		}
		if ((rc = admin__need_tenant(a, e->tenant, one)) != 0) {
			free(v);
			return rc;
		}
		v[n++] = e->name;
	} else if (tenant != NULL) {
		if ((rc = admin_tenant_exists(a, txn, tenant, "--tenant")) != 0) {
			free(v);
			return rc;
		}
		for (size_t i = 0; i < a->domains.n; i++)
			if (a->domains.v[i].tenant != NULL &&
			    strcmp(a->domains.v[i].tenant, tenant) == 0)
				v[n++] = a->domains.v[i].name;
	} else if (a->super) {
		*all = true;
	} else {
		for (size_t i = 0; i < a->domains.n; i++)
			if (a->domains.v[i].in_scope)
				v[n++] = a->domains.v[i].name;
	}
	*out = v;
	return 0;
}

/* --tenant and --domain of the list verbs: checked, canonical domain in one. */
static int admin_list_filters(struct admin *a, const struct admin_args *args, char *one,
    size_t onelen)
{
	const char *tenant = admin__arg(args, "--tenant");
	const char *domain = admin__arg(args, "--domain");
	int rc;

	if (tenant != NULL && domain != NULL)
		return admin__usage(a, "give --tenant or --domain, not both");
	if (tenant != NULL && (rc = admin__tenant_arg(a, "--tenant", tenant)) != 0)
		return rc;
	if (tenant != NULL && (rc = admin__need_tenant(a, tenant, "--tenant")) != 0)
		return rc;
	if (domain != NULL && (rc = admin__domain_arg(a, "--domain", domain, one, onelen)) != 0)
		return rc;
	return 0;
}

int admin__mailbox_list(struct admin *a, const struct admin_args *args)
{
	struct admin_mailbox_stream s;
	struct queue_txn *txn;
	char one[ADDR_DOMAIN_MAX + 1];
	const char **domains = NULL;
	bool all;
	int rc;

	one[0] = '\0';
	if ((rc = admin_list_filters(a, args, one, sizeof one)) != 0)
		return rc;
	memset(&s, 0, sizeof s);
	s.a = a;
	buf_init(&s.b);
	if (!a->json) {
		admin__pad(&s.b, "ADDRESS", ADMIN_ADDR_COL);
		buf_append_str(&s.b, "  TYPE     TARGETS\n");
	}
	if (a->store == NULL) {
		if (admin__arg(args, "--domain") != NULL || admin__arg(args, "--tenant") != NULL) {
			admin__err(a, "no such %s", admin__arg(args, "--domain") ? "domain" : "tenant");
			buf_free(&s.b);
			return EX_NOINPUT;
		}
		admin__out_buf(a, &s.b);
		buf_free(&s.b);
		return EX_OK;
	}
	if ((rc = admin__txn(a, false, &txn)) != 0) {
		buf_free(&s.b);
		return rc;
	}
	rc = admin_list_domains(a, txn, args, &domains, &all, one, sizeof one);
	if (rc == 0) {
		int qrc = 0;

		if (all)
			qrc = queue_mailbox_walk(txn, admin_mailbox_row, &s);
		for (size_t i = 0; !all && qrc == 0 && domains[i] != NULL; i++)
			qrc = queue_mailbox_walk_domain(txn, domains[i], admin_mailbox_row, &s);
		if (qrc < 0) {
			admin__err(a, "cannot read the mailboxes: %s", queue_strerror(qrc));
			rc = admin__store_exit(qrc);
		}
	}
	queue_txn_abort(txn);
	if (rc == 0)
		admin__out_buf(a, &s.b);
	buf_free(&s.b);
	free(domains);
	return rc;
}

/* ------------------------------------------------------ mailbox import */

/*
 * `mailbox import FILE.csv`: rows "address[,alias-of]" (RFC 4180: quoted
 * fields with "" inside and line breaks allowed), blank lines and lines
 * starting with '#' skipped, an optional header row "address,alias-of".
 * Every row is checked first (canonical address, one of our domains,
 * the caller's reach, the alias target's syntax, no conflict with what
 * is stored); any bad row imports nothing. Then everything goes in ONE
 * write transaction with one audit record: a bulk load is one decision.
 */
struct admin_import_row {
	char *addr;
	char *target; /* NULL for a plain mailbox */
	unsigned line;
};

struct admin_import {
	struct admin *a;
	const char *label;
	struct admin_import_row *rows;
	size_t n, cap;
	size_t nbad, ndenied;
	char deny_tenant[TENANCY_ID_MAX + 1];
	struct buf errors;
};

static void admin_import_bad(struct admin_import *im, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void admin_import_bad(struct admin_import *im, unsigned line, const char *fmt, ...)
{
	va_list ap;
	struct buf msg;

	im->nbad++;
	if (im->nbad > ADMIN_IMPORT_ERRORS_MAX)
		return;
	buf_init(&msg);
	va_start(ap, fmt);
	buf_vprintf(&msg, fmt, ap);
	va_end(ap);
	admin__text(&im->errors, im->label);
	buf_printf(&im->errors, ":%u: ", line);
	admin__text(&im->errors, buf_cstr(&msg));
	buf_append_char(&im->errors, '\n');
	buf_free(&msg);
}

struct admin_csv {
	const char *p;
	size_t len, pos;
	unsigned line;
};

/*
 * One CSV record into fields (at most nmax kept, *nf counts all). 1 with
 * a record, 0 at the end, -1 for a malformed record (why set; the rest
 * of its line is skipped). *start is the record's first line.
 */
static int admin_csv_record(struct admin_csv *c, struct buf *fields, size_t nmax, size_t *nf,
    unsigned *start, const char **why)
{
	*nf = 0;
	*why = NULL;
	for (size_t i = 0; i < nmax; i++)
		buf_reset(&fields[i]);
	/* Skip blank lines and comments. */
	for (;;) {
		if (c->pos >= c->len)
			return 0;
		if (c->p[c->pos] == '\n') {
			c->pos++;
			c->line++;
			continue;
		}
		if (c->p[c->pos] == '\r' && c->pos + 1 < c->len && c->p[c->pos + 1] == '\n') {
			c->pos += 2;
			c->line++;
			continue;
		}
		if (c->p[c->pos] == '#') {
			while (c->pos < c->len && c->p[c->pos] != '\n')
				c->pos++;
			continue;
		}
		break;
	}
	*start = c->line;
	for (;;) {
		struct buf *f = *nf < nmax ? &fields[*nf] : NULL;
		bool quoted = false;

		(*nf)++;
		if (c->pos < c->len && c->p[c->pos] == '"') {
			quoted = true;
			c->pos++;
			for (;;) {
				char ch;

				if (c->pos >= c->len) {
					*why = "a quoted field is not closed";
					return -1;
				}
				ch = c->p[c->pos++];
				if (ch == '"') {
					if (c->pos < c->len && c->p[c->pos] == '"') {
						c->pos++;
					} else {
						break;
					}
				}
				if (ch == '\n')
					c->line++;
				if (ch == '\0')
					*why = "a NUL byte";
				if (f != NULL)
					buf_append_char(f, ch);
			}
		} else {
			while (c->pos < c->len && c->p[c->pos] != ',' && c->p[c->pos] != '\n' &&
			    !(c->p[c->pos] == '\r' && c->pos + 1 < c->len &&
			    c->p[c->pos + 1] == '\n') &&
			    !(c->p[c->pos] == '\r' && c->pos + 1 == c->len)) {
				char ch = c->p[c->pos++];

				if (ch == '"' && *why == NULL)
					*why = "a quote inside a field that is not quoted";
				if (ch == '\0')
					*why = "a NUL byte";
				if (f != NULL)
					buf_append_char(f, ch);
			}
		}
		if (f != NULL && !quoted) {
			/* Spaces around an unquoted field are layout, not data. */
			size_t s = 0, e = f->len;

			while (s < e && (f->data[s] == ' ' || f->data[s] == '\t'))
				s++;
			while (e > s && (f->data[e - 1] == ' ' || f->data[e - 1] == '\t'))
				e--;
			if (s > 0 || e < f->len) {
				memmove(f->data, f->data + s, e - s);
				f->len = e - s;
			}
		}
		if (f != NULL)
			buf_cstr(f);
		if (c->pos >= c->len)
			break;
		if (c->p[c->pos] == ',') {
			c->pos++;
			continue;
		}
		if (c->p[c->pos] == '\n') {
			c->pos++;
			c->line++;
			break;
		}
		if (c->p[c->pos] == '\r') {
			c->pos += (c->pos + 1 < c->len) ? 2 : 1;
			c->line++;
			break;
		}
		/* Text after a closing quote. */
		*why = "text after a closing quote";
		while (c->pos < c->len && c->p[c->pos] != '\n')
			c->pos++;
		if (c->pos < c->len) {
			c->pos++;
			c->line++;
		}
		return -1;
	}
	return *why != NULL ? -1 : 1;
}

static int admin_import_row_cmp(const void *x, const void *y)
{
	const struct admin_import_row *r = x, *s = y;
	int d = strcmp(r->addr, s->addr);

	if (d != 0)
		return d;
	return r->line < s->line ? -1 : r->line > s->line;
}

/* Reads the whole input: the file named (local runs) or io->in ("-"). */
static int admin_import_read(struct admin *a, const char *file, struct buf *out)
{
	FILE *f = NULL;
	char chunk[65536];
	size_t n;
	bool own = false;

	if (strcmp(file, "-") == 0) {
		f = a->io->in;
		if (f == NULL) {
			admin__err(a, "no standard input to read");
			return EX_NOINPUT;
		}
	} else {
		f = fopen(file, "rb");
		if (f == NULL) {
			admin__err(a, "cannot open \"%s\": %s", file, ADMIN_STRERROR(errno));
			return EX_NOINPUT;
		}
		own = true;
	}
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (out->len + n > ADMIN_IMPORT_MAX) {
			admin__err(a, "\"%s\" is larger than %u MiB; split it", file,
			    ADMIN_IMPORT_MAX >> 20);
			if (own)
				fclose(f);
			return EX_DATAERR;
		}
		buf_append(out, chunk, n);
	}
	if (ferror(f)) {
		admin__err(a, "cannot read \"%s\": %s", file, ADMIN_STRERROR(errno));
		if (own)
			fclose(f);
		return EX_IOERR;
	}
	if (own)
		fclose(f);
	return 0;
}

/* Parses and checks every row (first pass: syntax, domains, reach). */
static void admin_import_parse(struct admin_import *im, const struct buf *in)
{
	struct admin_csv c = { in->data, in->len, 0, 1 };
	struct buf fields[2];
	bool first = true;

	buf_init(&fields[0]);
	buf_init(&fields[1]);
	for (;;) {
		char addr[ADDR_MAX + 1], target[ADDR_MAX + 1];
		const struct admin_domain_ent *e;
		const char *why;
		unsigned line = c.line;
		size_t nf;
		int r = admin_csv_record(&c, fields, 2, &nf, &line, &why);
		bool has_target;

		if (r == 0)
			break;
		if (r < 0) {
			admin_import_bad(im, line, "%s", why);
			first = false;
			continue;
		}
		if (first) {
			first = false;
			if (str_ieq(fields[0].data, "address") &&
			    (nf == 1 || str_ieq(fields[1].data, "alias-of") ||
			    str_ieq(fields[1].data, "alias_of")))
				continue;
		}
		if (nf > 2) {
			admin_import_bad(im, line, "%zu fields; expected address[,alias-of]", nf);
			continue;
		}
		if (addr_canon(fields[0].data, addr, sizeof addr, &why) < 0) {
			admin_import_bad(im, line, "bad address \"%s\": %s", fields[0].data,
			    why != NULL ? why : "not an address");
			continue;
		}
		has_target = nf == 2 && fields[1].len > 0;
		if (has_target && addr_canon(fields[1].data, target, sizeof target, &why) < 0) {
			admin_import_bad(im, line, "bad alias target \"%s\": %s", fields[1].data,
			    why != NULL ? why : "not an address");
			continue;
		}
		if (has_target && strcmp(addr, target) == 0) {
			admin_import_bad(im, line, "%s cannot be an alias of itself", addr);
			continue;
		}
		e = admin__domain_find(im->a, addr_domain_of(addr));
		if (e == NULL) {
			admin_import_bad(im, line, "%s: domain %s is not ours (add it with "
			    "'domain add')", addr, addr_domain_of(addr));
			continue;
		}
		if (!e->in_scope) {
			if (im->ndenied++ == 0)
				str_copy(im->deny_tenant, e->tenant != NULL ? e->tenant : "",
				    sizeof im->deny_tenant);
			admin_import_bad(im, line, "permission denied: domain %s belongs to %s%s, "
			    "outside tenant %s", e->name, e->tenant ? "tenant " : "no tenant",
			    e->tenant ? e->tenant : "", im->a->op_tenant);
			continue;
		}
		if (im->n == im->cap) {
			im->cap = im->cap ? im->cap * 2 : 1024;
			im->rows = xreallocarray(im->rows, im->cap, sizeof *im->rows);
		}
		im->rows[im->n].addr = xstrdup(addr);
		im->rows[im->n].target = has_target ? xstrdup(target) : NULL;
		im->rows[im->n].line = line;
		im->n++;
	}
	buf_free(&fields[0]);
	buf_free(&fields[1]);
}

/*
 * Second pass, rows sorted by address: an address is a mailbox or an
 * alias, in the file and in the store, never both; an alias stays within
 * TENANCY_ALIAS_TARGETS_MAX targets.
 */
static int admin_import_conflicts(struct admin_import *im, struct queue_txn *txn)
{
	for (size_t i = 0; i < im->n;) {
		size_t j = i, plain = 0, alias = 0;
		struct queue_mailbox *m = NULL;
		int rc;

		while (j < im->n && strcmp(im->rows[j].addr, im->rows[i].addr) == 0) {
			if (im->rows[j].target != NULL)
				alias++;
			else
				plain++;
			j++;
		}
		if (plain > 0 && alias > 0)
			admin_import_bad(im, im->rows[j - 1].line, "%s is both a mailbox and an "
			    "alias in this file", im->rows[i].addr);
		rc = queue_mailbox_get(txn, im->rows[i].addr, &m);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		if (m != NULL && m->nalias_of == 0 && alias > 0)
			admin_import_bad(im, im->rows[i].line, "%s is a mailbox already, not an "
			    "alias", im->rows[i].addr);
		else if (m != NULL && m->nalias_of > 0 && plain > 0)
			admin_import_bad(im, im->rows[i].line, "%s is an alias already",
			    im->rows[i].addr);
		else if (alias + (m != NULL ? m->nalias_of : 0) > TENANCY_ALIAS_TARGETS_MAX)
			admin_import_bad(im, im->rows[i].line, "%s would have more than %d alias "
			    "targets", im->rows[i].addr, TENANCY_ALIAS_TARGETS_MAX);
		queue_mailbox_free(m);
		i = j;
	}
	return 0;
}

static int admin_strcmp_tenant(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

struct admin_import_counts {
	size_t added, updated, unchanged;
};

/* Third pass, in the write transaction: every address once. */
static int admin_import_write(struct admin_import *im, struct queue_txn *txn,
    struct admin_import_counts *cnt, struct buf *tenants, char *why, size_t whylen)
{
	char **tv = NULL;
	size_t ntv = 0;
	int rc = 0;

	for (size_t i = 0; i < im->n;) {
		size_t j = i;
		struct queue_mailbox *old = NULL, m;
		const struct admin_domain_ent *e;
		char **targets = NULL;
		size_t nt = 0;

		while (j < im->n && strcmp(im->rows[j].addr, im->rows[i].addr) == 0)
			j++;
		rc = queue_mailbox_get(txn, im->rows[i].addr, &old);
		if (rc < 0 && rc != -ENOENT)
			break;
		rc = 0;
		memset(&m, 0, sizeof m);
		m.address = im->rows[i].addr;
		m.created = old != NULL ? old->created : time_now_ms();
		if (im->rows[i].target != NULL) {
			size_t cap = (old != NULL ? old->nalias_of : 0) + (j - i);

			targets = xcalloc(cap, sizeof *targets);
			for (size_t k = 0; old != NULL && k < old->nalias_of; k++)
				targets[nt++] = old->alias_of[k];
			for (size_t k = i; k < j; k++) {
				bool dup = false;

				for (size_t q = 0; q < nt && !dup; q++)
					dup = strcmp(targets[q], im->rows[k].target) == 0;
				if (!dup)
					targets[nt++] = im->rows[k].target;
			}
			m.alias_of = targets;
			m.nalias_of = nt;
		}
		if (old != NULL && nt == old->nalias_of) {
			cnt->unchanged++;
		} else {
			why[0] = '\0';
			rc = queue_mailbox_put(txn, &m, why, whylen);
			if (old != NULL)
				cnt->updated++;
			else
				cnt->added++;
			e = admin__domain_find(im->a, addr_domain_of(m.address));
			if (rc == 0 && e != NULL && e->tenant != NULL &&
			    (ntv == 0 || strcmp(tv[ntv - 1], e->tenant) != 0)) {
				tv = xreallocarray(tv, ntv + 1, sizeof *tv);
				tv[ntv++] = e->tenant;
			}
		}
		free(targets);
		queue_mailbox_free(old);
		if (rc < 0) {
			if (why[0] == '\0')
				snprintf(why, whylen, "%s: %s", m.address, queue_strerror(rc));
			break;
		}
		i = j;
	}
	if (ntv > 1) {
		qsort(tv, ntv, sizeof *tv, admin_strcmp_tenant);
	}
	for (size_t i = 0; i < ntv; i++) {
		if (i > 0 && strcmp(tv[i], tv[i - 1]) == 0)
			continue;
		buf_printf(tenants, "%s%s", tenants->len ? "," : "", tv[i]);
	}
	buf_cstr(tenants);
	free(tv);
	return rc;
}

int admin__mailbox_import(struct admin *a, const struct admin_args *args)
{
	const char *file = admin__arg(args, "file");
	const char *label = admin__arg(args, "--label");
	struct admin_import_counts cnt = { 0, 0, 0 };
	struct queue_audit_field f[4];
	struct admin_import im;
	struct buf in, tenants;
	struct queue_txn *txn = NULL;
	char why[ADMIN_WHY_MAX], nadd[24], nupd[24], nsame[24], nrows[24];
	int rc;

	/*
	 * Inside govrelayd the engine runs with the daemon's permissions: it
	 * never opens a path a peer names. govrelayctl reads the file with
	 * the operator's own permissions and sends it as standard input.
	 */
	if (a->io->remote && strcmp(file, "-") != 0)
		return admin__usage(a, "govrelayd reads the rows from standard input only: give - "
		    "(govrelayctl sends a named file that way by itself)");
	memset(&im, 0, sizeof im);
	im.a = a;
	im.label = label != NULL ? label : strcmp(file, "-") == 0 ? "stdin" : file;
	buf_init(&im.errors);
	buf_init(&in);
	buf_init(&tenants);
	if ((rc = admin_import_read(a, file, &in)) != 0)
		goto out;
	if ((rc = admin__txn(a, false, &txn)) != 0)
		goto out;
	if ((rc = admin__domains_load(a, txn)) != 0)
		goto out;
	admin_import_parse(&im, &in);
	if (im.n > 1)
		qsort(im.rows, im.n, sizeof *im.rows, admin_import_row_cmp);
	if ((rc = admin_import_conflicts(&im, txn)) < 0) {
		rc = admin__fail(a, rc, NULL, "cannot read the mailboxes");
		goto out;
	}
	queue_txn_abort(txn);
	txn = NULL;
	if (im.nbad > 0) {
		fwrite(im.errors.data, 1, im.errors.len, a->io->err);
		if (im.nbad > ADMIN_IMPORT_ERRORS_MAX)
			fprintf(a->io->err, "%s: ... and %zu more bad rows\n", im.label,
			    im.nbad - ADMIN_IMPORT_ERRORS_MAX);
		if (im.ndenied > 0) {
			rc = admin__deny(a, im.deny_tenant, "%zu rows name domains outside tenant %s; "
			    "nothing imported", im.ndenied, a->op_tenant);
		} else {
			admin__err(a, "%zu bad rows in %s; nothing imported", im.nbad, im.label);
			rc = EX_DATAERR;
		}
		goto out;
	}
	if ((rc = admin__txn(a, true, &txn)) != 0)
		goto out;
	why[0] = '\0';
	rc = admin_import_write(&im, txn, &cnt, &tenants, why, sizeof why);
	if (rc == 0 && cnt.added + cnt.updated > 0) {
		snprintf(nadd, sizeof nadd, "%zu", cnt.added);
		snprintf(nupd, sizeof nupd, "%zu", cnt.updated);
		snprintf(nsame, sizeof nsame, "%zu", cnt.unchanged);
		snprintf(nrows, sizeof nrows, "%zu", im.n);
		f[0] = (struct queue_audit_field){ "count", nadd };
		f[1] = (struct queue_audit_field){ "updated", nupd };
		f[2] = (struct queue_audit_field){ "unchanged", nsame };
		f[3] = (struct queue_audit_field){ "rows", nrows };
		rc = admin__audit(a, txn, buf_cstr(&tenants), im.label, f, 4);
	}
	if (rc < 0) {
		queue_txn_abort(txn);
		txn = NULL;
		rc = admin__fail(a, rc, why, "cannot import %s; nothing imported", im.label);
		goto out;
	}
	rc = admin__commit(a, txn, "the import");
	txn = NULL;
	if (rc != 0)
		goto out;
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "file", im.label);
		admin__json_kuint(&j, "rows", im.n);
		admin__json_kuint(&j, "added", cnt.added);
		admin__json_kuint(&j, "updated", cnt.updated);
		admin__json_kuint(&j, "unchanged", cnt.unchanged);
		admin__json_end(a, &j);
	} else {
		char *shown = admin__text_dup(im.label);

		admin__out(a, "imported %s: %zu rows, %zu added, %zu aliases extended, "
		    "%zu unchanged\n", shown, im.n, cnt.added, cnt.updated, cnt.unchanged);
		free(shown);
	}
	rc = EX_OK;
out:
	queue_txn_abort(txn);
	for (size_t i = 0; i < im.n; i++) {
		free(im.rows[i].addr);
		free(im.rows[i].target);
	}
	free(im.rows);
	buf_free(&im.errors);
	buf_free(&in);
	buf_free(&tenants);
	return rc;
}

/* ------------------------------------------------------------- users */

static const char *admin_user_state(const struct queue_user *u)
{
	if (u->locked)
		return "locked";
	if (u->locked_out)
		return "locked-out";
	return "active";
}

/* `user add` and `user passwd`: the password never leaves this function. */
static int admin_user_password(struct admin *a, const struct admin_args *args, bool add)
{
	char addr[ADDR_MAX + 1], pw[PASSWD_MAX + 2], hash[PASSWD_HASH_MAX + 1];
	char why[ADMIN_WHY_MAX], *tenant = NULL;
	struct queue_user *u = NULL, nu;
	struct queue_mailbox *mb = NULL;
	struct queue_audit_field f[1];
	struct queue_txn *txn;
	bool made_mailbox = false;
	size_t pwlen;
	int rc;

	if ((rc = admin__addr_arg(a, "address", admin__arg(args, "address"), addr,
	    sizeof addr)) != 0)
		return rc;
	/* Who and what first: a refused caller is not asked for a password. */
	if ((rc = admin__txn(a, false, &txn)) != 0)
		return rc;
	rc = admin_addr_tenant(a, txn, addr, &tenant);
	if (rc == 0) {
		int qrc = queue_user_get(txn, addr, &u);

		if (qrc == 0 && add) {
			admin__err(a, "user %s already exists ('user passwd' changes the password)",
			    addr);
			rc = EX_CANTCREAT;
		} else if (qrc == -ENOENT && !add) {
			admin__err(a, "no such user '%s'", addr);
			rc = EX_NOINPUT;
		} else if (qrc < 0 && qrc != -ENOENT) {
			rc = admin__fail(a, qrc, NULL, "cannot read user %s", addr);
		}
		queue_user_free(u);
		u = NULL;
	}
	queue_txn_abort(txn);
	if (rc != 0)
		goto out;
	why[0] = '\0';
	rc = admin_read_password(a->io->in, a->io->err, addr, pw, sizeof pw, &pwlen, why,
	    sizeof why);
	if (rc != 0) {
		admin__err(a, "%s: %s", addr, why);
		goto out;
	}
	/* scrypt takes tens of milliseconds: before the write lock, not under it. */
	rc = passwd_hash(pw, pwlen, a->io->cfg != NULL ?
	    (unsigned)a->io->cfg->password_hash_cost : PASSWD_DEFAULT_LN, hash, sizeof hash);
	explicit_bzero(pw, sizeof pw);
	if (rc < 0) {
		admin__err(a, "cannot hash the password: %s", ADMIN_STRERROR(-rc));
		rc = EX_SOFTWARE;
		goto out;
	}
	if ((rc = admin__txn(a, true, &txn)) != 0)
		goto out;
	rc = queue_user_get(txn, addr, &u);
	if (rc == 0 && add) {
		admin__err(a, "user %s already exists", addr);
		rc = EX_CANTCREAT;
		goto abort;
	}
	if (rc == -ENOENT && !add) {
		admin__err(a, "no such user '%s'", addr);
		rc = EX_NOINPUT;
		goto abort;
	}
	if (rc < 0 && rc != -ENOENT) {
		rc = admin__fail(a, rc, NULL, "cannot read user %s", addr);
		goto abort;
	}
	if (add) {
		memset(&nu, 0, sizeof nu);
		nu.address = addr;
		nu.created = time_now_ms();
		/* A user's own address receives mail: its mailbox comes with it. */
		rc = queue_mailbox_get(txn, addr, &mb);
		if (rc == -ENOENT) {
			struct queue_mailbox m;

			memset(&m, 0, sizeof m);
			m.address = addr;
			m.created = nu.created;
			why[0] = '\0';
			if ((rc = queue_mailbox_put(txn, &m, why, sizeof why)) < 0) {
				rc = admin__fail(a, rc, why, "cannot add mailbox %s", addr);
				goto abort;
			}
			made_mailbox = true;
		} else if (rc < 0) {
			rc = admin__fail(a, rc, NULL, "cannot read mailbox %s", addr);
			goto abort;
		}
	} else {
		nu = *u;
	}
	nu.hash = hash;
	why[0] = '\0';
	if ((rc = queue_user_put(txn, &nu, why, sizeof why)) < 0) {
		rc = admin__fail(a, rc, why, "cannot store user %s", addr);
		goto abort;
	}
	f[0] = (struct queue_audit_field){ "mailbox_created", add ? (made_mailbox ? "yes" : "no")
		: NULL };
	if ((rc = admin__audit(a, txn, tenant, addr, f, 1)) < 0) {
		rc = admin__fail(a, rc, NULL, "cannot write the audit record");
		goto abort;
	}
	rc = admin__commit(a, txn, add ? "the new user" : "the password");
	txn = NULL;
	if (rc != 0)
		goto out;
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "address", addr);
		admin__json_kstr(&j, "tenant", tenant);
		if (add)
			admin__json_kbool(&j, "mailbox_created", made_mailbox);
		else
			admin__json_kbool(&j, "password_changed", true);
		admin__json_end(a, &j);
	} else if (add) {
		admin__out(a, "user %s added%s\n", addr, made_mailbox ? " with its mailbox" : "");
	} else {
		admin__out(a, "password of %s changed\n", addr);
	}
	rc = EX_OK;
	goto out;
abort:
	queue_txn_abort(txn);
out:
	explicit_bzero(hash, sizeof hash);
	queue_user_free(u);
	queue_mailbox_free(mb);
	free(tenant);
	return rc;
}

int admin__user_add(struct admin *a, const struct admin_args *args)
{
	return admin_user_password(a, args, true);
}

int admin__user_passwd(struct admin *a, const struct admin_args *args)
{
	return admin_user_password(a, args, false);
}

/* `user lock` and `user unlock` (which also clears the AUTH lock-out). */
int admin__user_lock(struct admin *a, const struct admin_args *args)
{
	bool lock = strcmp(a->cmd->verb, "lock") == 0;
	char addr[ADDR_MAX + 1], why[ADMIN_WHY_MAX], *tenant = NULL, nfail[24];
	struct queue_user *u = NULL;
	struct queue_audit_field f[1];
	struct queue_txn *txn;
	int rc;

	if ((rc = admin__addr_arg(a, "address", admin__arg(args, "address"), addr,
	    sizeof addr)) != 0)
		return rc;
	if ((rc = admin__txn(a, true, &txn)) != 0)
		return rc;
	rc = queue_user_get(txn, addr, &u);
	if (rc == -ENOENT) {
		admin__err(a, "no such user '%s'", addr);
		rc = EX_NOINPUT;
		goto abort;
	}
	if (rc < 0) {
		rc = admin__fail(a, rc, NULL, "cannot read user %s", addr);
		goto abort;
	}
	if ((rc = admin_addr_tenant(a, txn, addr, &tenant)) != 0)
		goto abort;
	if (lock ? u->locked : (!u->locked && !u->locked_out && u->failures == 0)) {
		admin__out(a, "user %s is %s already; nothing changed\n", addr,
		    lock ? "locked" : "active");
		rc = EX_OK;
		goto abort;
	}
	snprintf(nfail, sizeof nfail, "%" PRIu32, u->failures);
	if (lock) {
		u->locked = true;
	} else {
		u->locked = false;
		u->locked_out = false;
		u->failures = 0;
		u->last_failure = 0;
	}
	why[0] = '\0';
	if ((rc = queue_user_put(txn, u, why, sizeof why)) < 0) {
		rc = admin__fail(a, rc, why, "cannot store user %s", addr);
		goto abort;
	}
	f[0] = (struct queue_audit_field){ "failures", lock ? NULL : nfail };
	if ((rc = admin__audit(a, txn, tenant, addr, f, 1)) < 0) {
		rc = admin__fail(a, rc, NULL, "cannot write the audit record");
		goto abort;
	}
	rc = admin__commit(a, txn, "the change");
	txn = NULL;
	if (rc != 0)
		goto out;
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "address", addr);
		admin__json_kstr(&j, "state", admin_user_state(u));
		admin__json_end(a, &j);
	} else {
		admin__out(a, "user %s %s\n", addr, lock ? "locked" : "unlocked");
	}
	rc = EX_OK;
	goto out;
abort:
	queue_txn_abort(txn);
out:
	queue_user_free(u);
	free(tenant);
	return rc;
}

static void admin_user_json(struct buf *b, const struct queue_user *u, const char *tenant)
{
	char tm[ADMIN_TIME_LEN];

	buf_append_str(b, "{\"address\":");
	admin__json_str(b, u->address);
	if (tenant != NULL) {
		buf_append_str(b, ",\"tenant\":");
		admin__json_str(b, tenant);
	}
	buf_append_str(b, ",\"state\":");
	admin__json_str(b, admin_user_state(u));
	buf_printf(b, ",\"locked\":%s,\"locked_out\":%s,\"failures\":%" PRIu32 ",\"last_failure\":",
	    u->locked ? "true" : "false", u->locked_out ? "true" : "false", u->failures);
	admin__json_str(b, admin__time(u->last_failure, u->last_failure != 0, tm));
	buf_append_str(b, ",\"created\":");
	admin__json_str(b, admin__time(u->created, u->created != 0, tm));
	buf_append_str(b, "}\n");
}

struct admin_user_stream {
	struct admin *a;
	const char *tenant;  /* --tenant, or NULL */
	const char *domain;  /* --domain (canonical), or NULL */
	struct buf b;
};

static int admin_user_row(void *arg, const struct queue_user *u)
{
	struct admin_user_stream *s = arg;
	const char *dom = addr_domain_of(u->address);
	const struct admin_domain_ent *e = admin__domain_find(s->a, dom);

	if (s->domain != NULL && strcmp(dom, s->domain) != 0)
		return 0;
	if (s->tenant != NULL && (e == NULL || e->tenant == NULL || strcmp(e->tenant, s->tenant) != 0))
		return 0;
	if (!s->a->super && (e == NULL || !e->in_scope))
		return 0;
	if (s->a->json) {
		admin_user_json(&s->b, u, NULL);
	} else {
		admin__pad(&s->b, u->address, ADMIN_ADDR_COL);
		buf_append_str(&s->b, "  ");
		admin__pad(&s->b, admin_user_state(u), 10);
		buf_printf(&s->b, "  %" PRIu32 "\n", u->failures);
	}
	if (s->b.len >= ADMIN_LIST_FLUSH) {
		admin__out_buf(s->a, &s->b);
		buf_reset(&s->b);
	}
	return 0;
}

int admin__user_list(struct admin *a, const struct admin_args *args)
{
	struct admin_user_stream s;
	struct queue_txn *txn;
	char one[ADDR_DOMAIN_MAX + 1];
	int rc;

	one[0] = '\0';
	if ((rc = admin_list_filters(a, args, one, sizeof one)) != 0)
		return rc;
	memset(&s, 0, sizeof s);
	s.a = a;
	s.tenant = admin__arg(args, "--tenant");
	s.domain = admin__arg(args, "--domain") != NULL ? one : NULL;
	buf_init(&s.b);
	if (!a->json) {
		admin__pad(&s.b, "ADDRESS", ADMIN_ADDR_COL);
		buf_append_str(&s.b, "  STATE       FAILURES\n");
	}
	if (a->store != NULL) {
		if ((rc = admin__txn(a, false, &txn)) != 0) {
			buf_free(&s.b);
			return rc;
		}
		rc = admin__domains_load(a, txn);
		if (rc == 0 && s.domain != NULL) {
			const struct admin_domain_ent *e = admin__domain_find(a, s.domain);

			if (e == NULL) {
				admin__err(a, "--domain \"%s\": no such domain", s.domain);
				rc = EX_NOINPUT;
			} else {
				rc = admin__need_tenant(a, e->tenant, s.domain);
			}
		}
		if (rc == 0 && s.tenant != NULL)
			rc = admin_tenant_exists(a, txn, s.tenant, "--tenant");
		if (rc == 0) {
			int qrc = queue_user_walk(txn, admin_user_row, &s);

			if (qrc < 0) {
				admin__err(a, "cannot read the users: %s", queue_strerror(qrc));
				rc = admin__store_exit(qrc);
			}
		}
		queue_txn_abort(txn);
	}
	if (rc == 0)
		admin__out_buf(a, &s.b);
	buf_free(&s.b);
	return rc;
}

int admin__user_show(struct admin *a, const struct admin_args *args)
{
	char addr[ADDR_MAX + 1], *tenant = NULL, tm[ADMIN_TIME_LEN], n[24];
	struct queue_user *u = NULL;
	struct queue_txn *txn;
	int rc;

	if ((rc = admin__addr_arg(a, "address", admin__arg(args, "address"), addr,
	    sizeof addr)) != 0)
		return rc;
	if (a->store == NULL) {
		admin__err(a, "no such user '%s'", addr);
		return EX_NOINPUT;
	}
	if ((rc = admin__txn(a, false, &txn)) != 0)
		return rc;
	rc = queue_user_get(txn, addr, &u);
	if (rc == -ENOENT) {
		admin__err(a, "no such user '%s'", addr);
		rc = EX_NOINPUT;
	} else if (rc < 0) {
		rc = admin__fail(a, rc, NULL, "cannot read user %s", addr);
	} else {
		rc = admin_addr_tenant(a, txn, addr, &tenant);
	}
	queue_txn_abort(txn);
	if (rc != 0)
		goto out;
	if (a->json) {
		struct buf b;

		buf_init(&b);
		admin_user_json(&b, u, tenant);
		admin__out_buf(a, &b);
		buf_free(&b);
	} else {
		admin__kv(a, "", "address", u->address);
		admin__kv(a, "", "tenant", tenant);
		admin__kv(a, "", "state", admin_user_state(u));
		admin__kv(a, "", "locked", u->locked ? "yes" : "no");
		admin__kv(a, "", "locked_out", u->locked_out ? "yes" : "no");
		snprintf(n, sizeof n, "%" PRIu32, u->failures);
		admin__kv(a, "", "failures", n);
		admin__kv(a, "", "last_failure", admin__time(u->last_failure,
		    u->last_failure != 0, tm));
		admin__kv(a, "", "created", admin__time(u->created, u->created != 0, tm));
	}
	rc = EX_OK;
out:
	queue_user_free(u);
	free(tenant);
	return rc;
}

int admin__user_remove(struct admin *a, const struct admin_args *args)
{
	char addr[ADDR_MAX + 1], *tenant = NULL;
	struct queue_user *u = NULL;
	struct queue_txn *txn;
	int rc;

	if ((rc = admin__addr_arg(a, "address", admin__arg(args, "address"), addr,
	    sizeof addr)) != 0)
		return rc;
	if ((rc = admin__txn(a, true, &txn)) != 0)
		return rc;
	rc = queue_user_get(txn, addr, &u);
	queue_user_free(u);
	if (rc == -ENOENT) {
		admin__err(a, "no such user '%s'", addr);
		rc = EX_NOINPUT;
		goto abort;
	}
	if (rc < 0) {
		rc = admin__fail(a, rc, NULL, "cannot read user %s", addr);
		goto abort;
	}
	if ((rc = admin_addr_tenant(a, txn, addr, &tenant)) != 0)
		goto abort;
	if ((rc = queue_user_delete(txn, addr)) < 0 ||
	    (rc = admin__audit(a, txn, tenant, addr, NULL, 0)) < 0) {
		rc = admin__fail(a, rc, NULL, "cannot remove user %s", addr);
		goto abort;
	}
	rc = admin__commit(a, txn, "the removal");
	txn = NULL;
	if (rc != 0)
		goto out;
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "address", addr);
		admin__json_kbool(&j, "removed", true);
		admin__json_end(a, &j);
	} else {
		admin__out(a, "user %s removed (the mailbox stays)\n", addr);
	}
	rc = EX_OK;
	goto out;
abort:
	queue_txn_abort(txn);
out:
	free(tenant);
	return rc;
}

/* --------------------------------------------------------- operators */

/* Whether a unix user exists (getpwnam_r: the engine may run on any thread). */
static int admin_unix_user_exists(const char *name, bool *exists)
{
	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	struct passwd pw, *res = NULL;
	size_t len = sz > 0 ? (size_t)sz : 16384;
	char *buf;
	int rc;

	for (;;) {
		buf = xmalloc(len);
		rc = getpwnam_r(name, &pw, buf, len, &res);
		free(buf);
		if (rc != ERANGE || len >= 1024 * 1024)
			break;
		len *= 2;
	}
	*exists = rc == 0 && res != NULL;
	return rc == 0 || rc == ENOENT || rc == ESRCH || rc == EBADF || rc == EPERM ? 0 : -rc;
}

int admin__operator_add(struct admin *a, const struct admin_args *args)
{
	const char *user = admin__arg(args, "user");
	const char *tenant = admin__arg(args, "--tenant");
	const char *role_arg = admin__arg(args, "--role");
	struct queue_operator o, *old = NULL;
	struct queue_audit_field f[1];
	enum queue_operator_role role;
	struct queue_txn *txn;
	char why[ADMIN_WHY_MAX];
	bool exists = false;
	int rc;

	if (user[0] == '\0' || strlen(user) >= ADMIN_USER_MAX || strchr(user, ':') != NULL) {
		char *shown = admin__text_dup(user);

		admin__err(a, "user \"%s\": not a unix login name", shown);
		free(shown);
		return EX_DATAERR;
	}
	if ((rc = admin__tenant_arg(a, "--tenant", tenant)) != 0)
		return rc;
	if (queue_role_parse(role_arg, &role) < 0) {
		char *shown = admin__text_dup(role_arg);

		admin__err(a, "--role \"%s\": use postmaster or auditor", shown);
		free(shown);
		return EX_DATAERR;
	}
	if ((rc = admin_unix_user_exists(user, &exists)) < 0) {
		admin__err(a, "cannot look up unix user %s: %s", user, ADMIN_STRERROR(-rc));
		return EX_UNAVAILABLE;
	}
	if (!exists) {
		char *shown = admin__text_dup(user);

		admin__err(a, "no such unix user '%s'", shown);
		free(shown);
		return EX_NOINPUT;
	}
	if ((rc = admin__txn(a, true, &txn)) != 0)
		return rc;
	rc = queue_operator_get(txn, user, &old);
	if (rc == 0) {
		admin__err(a, "%s is an operator already (%s of tenant %s); remove it first", user,
		    queue_role_name(old->role), old->tenant);
		queue_operator_free(old);
		queue_txn_abort(txn);
		return EX_CANTCREAT;
	}
	if (rc != -ENOENT) {
		queue_txn_abort(txn);
		return admin__fail(a, rc, NULL, "cannot read the operators");
	}
	if ((rc = admin_tenant_exists(a, txn, tenant, "--tenant")) != 0) {
		queue_txn_abort(txn);
		return rc;
	}
	o.unix_user = (char *)user;
	o.tenant = (char *)tenant;
	o.role = role;
	o.created = time_now_ms();
	why[0] = '\0';
	if ((rc = queue_operator_put(txn, &o, why, sizeof why)) < 0) {
		queue_txn_abort(txn);
		return admin__fail(a, rc, why, "cannot add operator %s", user);
	}
	f[0] = (struct queue_audit_field){ "role", queue_role_name(role) };
	if ((rc = admin__audit(a, txn, tenant, user, f, 1)) < 0) {
		queue_txn_abort(txn);
		return admin__fail(a, rc, NULL, "cannot write the audit record");
	}
	if ((rc = admin__commit(a, txn, "the new operator")) != 0)
		return rc;
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "user", user);
		admin__json_kstr(&j, "tenant", tenant);
		admin__json_kstr(&j, "role", queue_role_name(role));
		admin__json_end(a, &j);
	} else {
		admin__out(a, "operator %s added: %s of tenant %s\n", user, queue_role_name(role),
		    tenant);
	}
	return EX_OK;
}

struct admin_operator_rows {
	struct queue_operator *v;
	size_t n, cap;
};

static int admin_operator_collect(void *arg, const struct queue_operator *o)
{
	struct admin_operator_rows *l = arg;
	struct queue_operator *c;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
	}
	c = &l->v[l->n++];
	c->unix_user = xstrdup(o->unix_user);
	c->tenant = xstrdup(o->tenant != NULL ? o->tenant : "");
	c->role = o->role;
	c->created = o->created;
	return 0;
}

int admin__operator_list(struct admin *a, const struct admin_args *args)
{
	static const char *const head[] = { "USER", "TENANT", "ROLE", "CREATED" };
	struct admin_operator_rows l = { NULL, 0, 0 };
	struct admin_table t = { 4, head, "llll", NULL, 0, 0 };
	struct queue_txn *txn;
	int rc = 0;

	(void)args;
	if (a->store != NULL) {
		if ((rc = admin__txn(a, false, &txn)) != 0)
			return rc;
		rc = queue_operator_walk(txn, admin_operator_collect, &l);
		queue_txn_abort(txn);
		if (rc < 0) {
			admin__err(a, "cannot read the operators: %s", queue_strerror(rc));
			rc = admin__store_exit(rc);
			goto out;
		}
	}
	for (size_t i = 0; i < l.n; i++) {
		char tm[ADMIN_TIME_LEN];
		const char *row[4];

		if (a->json) {
			struct admin_json j;

			admin__json_begin(&j);
			admin__json_kstr(&j, "user", l.v[i].unix_user);
			admin__json_kstr(&j, "tenant", l.v[i].tenant);
			admin__json_kstr(&j, "role", queue_role_name(l.v[i].role));
			admin__json_kstr(&j, "created", admin__time(l.v[i].created,
			    l.v[i].created != 0, tm));
			admin__json_end(a, &j);
			continue;
		}
		row[0] = l.v[i].unix_user;
		row[1] = l.v[i].tenant;
		row[2] = queue_role_name(l.v[i].role);
		row[3] = admin__time(l.v[i].created, l.v[i].created != 0, tm);
		admin__table_row(&t, row);
	}
	if (!a->json)
		admin__table_print(a, &t);
out:
	admin__table_free(&t);
	for (size_t i = 0; i < l.n; i++) {
		free(l.v[i].unix_user);
		free(l.v[i].tenant);
	}
	free(l.v);
	return rc;
}

int admin__operator_remove(struct admin *a, const struct admin_args *args)
{
	const char *user = admin__arg(args, "user");
	struct queue_operator *o = NULL;
	struct queue_audit_field f[1];
	struct queue_txn *txn;
	int rc;

	if ((rc = admin__txn(a, true, &txn)) != 0)
		return rc;
	rc = queue_operator_get(txn, user, &o);
	if (rc == -ENOENT) {
		char *shown = admin__text_dup(user);

		queue_txn_abort(txn);
		admin__err(a, "no such operator '%s'", shown);
		free(shown);
		return EX_NOINPUT;
	}
	if (rc < 0) {
		queue_txn_abort(txn);
		return admin__fail(a, rc, NULL, "cannot read the operators");
	}
	f[0] = (struct queue_audit_field){ "role", queue_role_name(o->role) };
	if ((rc = queue_operator_delete(txn, user)) < 0 ||
	    (rc = admin__audit(a, txn, o->tenant, user, f, 1)) < 0) {
		queue_txn_abort(txn);
		queue_operator_free(o);
		return admin__fail(a, rc, NULL, "cannot remove operator %s", user);
	}
	queue_operator_free(o);
	if ((rc = admin__commit(a, txn, "the removal")) != 0)
		return rc;
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "user", user);
		admin__json_kbool(&j, "removed", true);
		admin__json_end(a, &j);
	} else {
		admin__out(a, "operator %s removed\n", user);
	}
	return EX_OK;
}

/* ------------------------------------------------------------ policy */

static void admin_policy_known(struct buf *b)
{
	for (const struct tenancy_policy_key *k = tenancy_policy_keys; k->name != NULL; k++)
		buf_printf(b, "%s%s", k == tenancy_policy_keys ? "" : ", ", k->name);
}

/* `policy set TENANT KEY VALUE` and `policy unset TENANT KEY`. */
int admin__policy_set(struct admin *a, const struct admin_args *args)
{
	bool set = strcmp(a->cmd->verb, "set") == 0;
	const char *tenant = admin__arg(args, "tenant");
	const char *keyname = admin__arg(args, "key");
	const char *value = set ? admin__arg(args, "value") : NULL;
	const struct tenancy_policy_key *key;
	struct queue_audit_field f[2];
	struct queue_txn *txn;
	char norm[128], why[ADMIN_WHY_MAX], *old = NULL;
	int rc;

	if ((rc = admin__tenant_arg(a, "tenant", tenant)) != 0)
		return rc;
	key = tenancy_policy_key_find(keyname);
	if (key == NULL) {
		struct buf b;
		char *shown = admin__text_dup(keyname);

		buf_init(&b);
		admin_policy_known(&b);
		admin__err(a, "unknown policy key \"%s\"; the keys are: %s", shown, buf_cstr(&b));
		buf_free(&b);
		free(shown);
		return EX_DATAERR;
	}
	if (set) {
		why[0] = '\0';
		if (tenancy_policy_normalize(key, value, norm, sizeof norm, why, sizeof why) < 0) {
			char *shown = admin__text_dup(value);

			admin__err(a, "%s \"%s\": %s", key->name, shown, why[0] ? why : "bad value");
			free(shown);
			return EX_DATAERR;
		}
	}
	if ((rc = admin__need_tenant(a, tenant, "tenant")) != 0)
		return rc;
	if ((rc = admin__txn(a, true, &txn)) != 0)
		return rc;
	if ((rc = admin_tenant_exists(a, txn, tenant, "tenant")) != 0) {
		queue_txn_abort(txn);
		return rc;
	}
	if (!set) {
		rc = queue_policy_get(txn, tenant, key->name, &old);
		free(old);
		if (rc == -ENOENT) {
			queue_txn_abort(txn);
			admin__err(a, "tenant %s has no own setting of %s (it inherits)", tenant,
			    key->name);
			return EX_NOINPUT;
		}
		if (rc < 0) {
			queue_txn_abort(txn);
			return admin__fail(a, rc, NULL, "cannot read the policy of %s", tenant);
		}
	}
	if ((rc = queue_policy_set(txn, tenant, key->name, set ? norm : NULL)) < 0) {
		queue_txn_abort(txn);
		return admin__fail(a, rc, NULL, "cannot %s %s of tenant %s", a->cmd->verb,
		    key->name, tenant);
	}
	f[0] = (struct queue_audit_field){ "key", key->name };
	f[1] = (struct queue_audit_field){ "value", set ? norm : NULL };
	if ((rc = admin__audit(a, txn, tenant, tenant, f, 2)) < 0) {
		queue_txn_abort(txn);
		return admin__fail(a, rc, NULL, "cannot write the audit record");
	}
	if ((rc = admin__commit(a, txn, "the policy")) != 0)
		return rc;
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "tenant", tenant);
		admin__json_kstr(&j, "key", key->name);
		admin__json_kstr(&j, "value", set ? norm : NULL);
		admin__json_end(a, &j);
	} else if (set) {
		admin__out(a, "policy of %s: %s = %s\n", tenant, key->name, norm);
	} else {
		admin__out(a, "policy of %s: %s inherited again\n", tenant, key->name);
	}
	return EX_OK;
}

/*
 * `policy show`: every key's effective value and where it comes from.
 * max_message_size and max_recipients without a tenant setting come
 * from the configuration (what the daemon really applies), not from the
 * tenancy module's builtin.
 */
int admin__policy_show(struct admin *a, const struct admin_args *args)
{
	static const char *const head[] = { "KEY", "VALUE", "SOURCE" };
	const char *tenant = admin__arg(args, "tenant");
	struct admin_table t = { 3, head, "lll", NULL, 0, 0 };
	struct queue_txn *txn;
	size_t nkeys = 0;
	char **values = NULL, **sources = NULL;
	int rc;

	if ((rc = admin__tenant_arg(a, "tenant", tenant)) != 0)
		return rc;
	if ((rc = admin__need_tenant(a, tenant, "tenant")) != 0)
		return rc;
	if (a->store == NULL) {
		admin__err(a, "no such tenant '%s'", tenant);
		return EX_NOINPUT;
	}
	for (const struct tenancy_policy_key *k = tenancy_policy_keys; k->name != NULL; k++)
		nkeys++;
	values = xcalloc(nkeys + 1, sizeof *values);
	sources = xcalloc(nkeys + 1, sizeof *sources);
	if ((rc = admin__txn(a, false, &txn)) != 0)
		goto out;
	rc = admin_tenant_exists(a, txn, tenant, "tenant");
	for (size_t i = 0; rc == 0 && i < nkeys; i++) {
		int qrc = queue_policy_effective(txn, tenant, tenancy_policy_keys[i].name,
		    &values[i], &sources[i]);

		if (qrc < 0)
			rc = admin__fail(a, qrc, NULL, "cannot read %s of tenant %s",
			    tenancy_policy_keys[i].name, tenant);
	}
	queue_txn_abort(txn);
	if (rc != 0)
		goto out;
	for (size_t i = 0; i < nkeys; i++) {
		const struct tenancy_policy_key *k = &tenancy_policy_keys[i];
		const struct config *cfg = a->io->cfg;
		char num[32];

		if (sources[i] == NULL || strcmp(sources[i], "default") != 0 || cfg == NULL)
			continue;
		if (strcmp(k->name, "max_message_size") == 0)
			snprintf(num, sizeof num, "%" PRIu64, (uint64_t)cfg->max_message_size);
		else if (strcmp(k->name, "max_recipients") == 0)
			snprintf(num, sizeof num, "%" PRIu64, (uint64_t)cfg->max_recipients);
		else
			continue;
		free(values[i]);
		free(sources[i]);
		values[i] = xstrdup(num);
		sources[i] = xstrdup("config");
	}
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "tenant", tenant);
		admin__json_open(&j, "policy", '{');
		for (size_t i = 0; i < nkeys; i++) {
			const struct tenancy_policy_key *k = &tenancy_policy_keys[i];
			const char *v = values[i] != NULL ? values[i] : "";

			admin__json_open(&j, k->name, '{');
			if ((k->type == TENANCY_POLICY_SIZE || k->type == TENANCY_POLICY_COUNT) &&
			    v[0] != '\0' && strspn(v, "0123456789") == strlen(v) && strlen(v) < 20)
				admin__json_kraw(&j, "value", v);
			else if (k->type == TENANCY_POLICY_BOOL &&
			    (strcmp(v, "yes") == 0 || strcmp(v, "no") == 0))
				admin__json_kbool(&j, "value", strcmp(v, "yes") == 0);
			else
				admin__json_kstr(&j, "value", values[i]);
			admin__json_kstr(&j, "source", sources[i]);
			admin__json_close(&j, '}');
		}
		admin__json_close(&j, '}');
		admin__json_end(a, &j);
	} else {
		for (size_t i = 0; i < nkeys; i++) {
			const char *row[3] = { tenancy_policy_keys[i].name, values[i], sources[i] };

			admin__table_row(&t, row);
		}
		admin__table_print(a, &t);
	}
	rc = EX_OK;
out:
	admin__table_free(&t);
	for (size_t i = 0; i < nkeys; i++) {
		free(values[i]);
		free(sources[i]);
	}
	free(values);
	free(sources);
	return rc;
}
