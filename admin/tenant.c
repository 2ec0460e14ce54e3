/*
 * admin/tenant: `tenant add|list|show|remove` (ARCHITECTURE.md
 * "Tenancy"; INTERFACE.md "Administration"). Tenants form a tree
 * (agencies and their departments); a postmaster adds and removes tenants
 * only inside their own subtree, a root tenant is for super alone.
 *
 * Every change is one apply (store.c) that writes the change and its audit
 * record (event admin: action=tenant.VERB by= via= tenant= object=) in the
 * same transaction; scope checks run before anything changes.
 * Entry points: admin__tenant_add, admin__tenant_list, admin__tenant_show,
 * admin__tenant_remove (admin_int.h).
 * OWNERSHIP: records read from the store are copied, the read transaction
 * ends, then they are printed and freed.
 * THREADS: see engine.c. ERRORS: sysexits.h codes, reported on io->err.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

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

/* What `tenant add` writes, and when (for the output). */
struct admin_tenant_new {
	const char *id, *name, *parent;
	int64_t created;
};

/* The new tenant and its audit record, unless the id is taken. */
static int admin_tenant_add_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	struct admin_tenant_new *n = arg;
	struct queue_tenant t, *old = NULL;
	struct queue_audit_field f[2];
	char why[ADMIN_WHY_MAX], tenants[2 * TENANCY_ID_MAX + 2];
	int rc = queue_tenant_get(txn, n->id, &old);

	if (rc == 0) {
		/* Ids are global; a name outside the caller's reach is not theirs to read. */
		char *shown = admin__text_dup(old->name);

		if (admin__tenant_in_scope(a, n->id))
			admin__err(a, "tenant %s already exists (%s)", n->id, shown);
		else
			admin__err(a, "tenant id %s is taken; choose another", n->id);
		free(shown);
		queue_tenant_free(old);
		return EX_CANTCREAT;
	}
	if (rc != -ENOENT)
		return admin__fail(a, rc, NULL, "cannot read tenant %s", n->id);
	t.id = (char *)n->id;
	t.name = (char *)n->name;
	t.parent = (char *)n->parent;
	t.created = n->created = time_now_ms();
	why[0] = '\0';
	rc = queue_tenant_put(txn, &t, why, sizeof why);
	if (rc < 0) {
		if (rc == -ENOENT && why[0] == '\0')
			snprintf(why, sizeof why, "no such tenant '%s'", n->parent);
		return admin__fail(a, rc, why, "cannot add tenant %s", n->id);
	}
	admin__tenants2(tenants, sizeof tenants, n->id, n->parent);
	f[0] = (struct queue_audit_field){ "name", n->name };
	f[1] = (struct queue_audit_field){ "parent", n->parent };
	rc = admin__audit(a, txn, tenants, n->id, f, 2);
	if (rc < 0)
		return admin__fail(a, rc, NULL, "cannot write the audit record");
	return 0;
}

int admin__tenant_add(struct admin *a, const struct admin_args *args)
{
	struct admin_tenant_new n = { admin__arg(args, "id"), admin__arg(args, "--name"),
		admin__arg(args, "--parent"), 0 };
	char why[ADMIN_WHY_MAX];
	int rc;

	if ((rc = admin__tenant_arg(a, "tenant", n.id)) != 0)
		return rc;
	if (n.parent != NULL && (rc = admin__tenant_arg(a, "--parent", n.parent)) != 0)
		return rc;
	if (tenancy_name_check(n.name, why, sizeof why) < 0) {
		char *shown = admin__text_dup(n.name);

		admin__err(a, "--name \"%s\": %s", shown, why);
		free(shown);
		return EX_DATAERR;
	}
	/* Postmasters grow their own subtree; only super adds a root. */
	if (n.parent == NULL && !a->super)
		return admin__deny(a, n.id, "only root or the store's owner may add a root tenant; "
		    "give --parent inside tenant %s", a->op_tenant);
	if (n.parent != NULL && (rc = admin__need_tenant(a, n.parent, "--parent")) != 0)
		return rc;
	if ((rc = admin__write(a, admin_tenant_add_apply, &n, "the new tenant")) != 0)
		return rc;
	if (a->json) {
		struct admin_json j;
		char tm[ADMIN_TIME_LEN];

		admin__json_begin(&j);
		admin__json_kstr(&j, "id", n.id);
		admin__json_kstr(&j, "name", n.name);
		admin__json_kstr(&j, "parent", n.parent);
		admin__json_kstr(&j, "created", admin__time(n.created, true, tm));
		admin__json_end(a, &j);
	} else {
		char *shown = admin__text_dup(n.name);

		admin__out(a, "tenant %s added (%s)%s%s\n", n.id, shown,
		    n.parent != NULL ? ", parent " : "", n.parent != NULL ? n.parent : "");
		free(shown);
	}
	return EX_OK;
}

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
		if ((rc = admin__txn(a, &txn)) != 0)
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

/* `tenant show`'s view: the tenant, its parent chain, and the list. */
struct admin_tenant_view {
	const struct queue_tenant *t;
	const struct queue_tenant *chain[TENANCY_DEPTH_MAX + 1]; /* parent first */
	size_t nchain;
	const struct admin_tenant_list *l;
	const struct admin_tenant_show *s;
};

/* Every tenant, and the domains and operators of s->id: 0 or an exit code. */
static int admin_tenant_show_read(struct admin *a, struct admin_tenant_list *l,
    struct admin_tenant_show *s)
{
	struct queue_txn *txn;
	int rc;

	if ((rc = admin__txn(a, &txn)) != 0)
		return rc;
	rc = admin_tenants_read(a, txn, l);
	if (rc == 0 && admin_tenant_find(l, s->id) != NULL) {
		int qrc = queue_domain_walk(txn, admin_show_domain, s);

		if (qrc == 0)
			qrc = queue_operator_walk(txn, admin_show_operator, s);
		if (qrc < 0) {
			admin__err(a, "cannot read tenant %s: %s", s->id, queue_strerror(qrc));
			rc = admin__store_exit(qrc);
		}
	}
	queue_txn_abort(txn);
	return rc;
}

static void admin_tenant_show_json(const struct admin *a, const struct admin_tenant_view *v)
{
	const struct queue_tenant *t = v->t;
	struct admin_json j;
	char tm[ADMIN_TIME_LEN];
	const char *p;

	admin__json_begin(&j);
	admin__json_kstr(&j, "id", t->id);
	admin__json_kstr(&j, "name", t->name);
	admin__json_kstr(&j, "parent", t->parent);
	admin__json_kint(&j, "depth", (int64_t)v->nchain);
	admin__json_open(&j, "chain", '[');
	for (size_t i = v->nchain; i > 0; i--) {
		admin__json_sep(&j, NULL);
		admin__json_str(&j.b, v->chain[i - 1]->id);
	}
	admin__json_close(&j, ']');
	admin__json_open(&j, "children", '[');
	for (size_t i = 0; i < v->l->n; i++) {
		if (v->l->v[i].parent == NULL || strcmp(v->l->v[i].parent, t->id) != 0)
			continue;
		admin__json_sep(&j, NULL);
		admin__json_str(&j.b, v->l->v[i].id);
	}
	admin__json_close(&j, ']');
	admin__json_open(&j, "domains", '[');
	p = v->s->domains.data;
	for (size_t i = 0; i < v->s->ndomains; i++, p += strlen(p) + 1) {
		admin__json_sep(&j, NULL);
		admin__json_str(&j.b, p);
	}
	admin__json_close(&j, ']');
	admin__json_open(&j, "operators", '[');
	p = v->s->operators.data;
	for (size_t i = 0; i < v->s->noperators; i++) {
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
}

static void admin_tenant_show_text(const struct admin *a, const struct admin_tenant_view *v)
{
	const struct queue_tenant *t = v->t;
	char tm[ADMIN_TIME_LEN];
	struct buf b;
	const char *p;

	buf_init(&b);
	admin__kv(a, "", "tenant", t->id);
	admin__kv(a, "", "name", t->name);
	admin__kv(a, "", "parent", t->parent);
	for (size_t i = v->nchain; i > 0; i--) {
		buf_append_str(&b, v->chain[i - 1]->id);
		buf_append_str(&b, " > ");
	}
	buf_append_str(&b, t->id);
	admin__kv(a, "", "path", buf_cstr(&b));
	admin__kv(a, "", "created", admin__time(t->created, t->created != 0, tm));
	buf_reset(&b);
	for (size_t i = 0; i < v->l->n; i++) {
		if (v->l->v[i].parent == NULL || strcmp(v->l->v[i].parent, t->id) != 0)
			continue;
		buf_printf(&b, "%s%s", b.len ? ", " : "", v->l->v[i].id);
	}
	admin__kv(a, "", "children", b.len ? buf_cstr(&b) : NULL);
	buf_reset(&b);
	p = v->s->domains.data;
	for (size_t i = 0; i < v->s->ndomains; i++, p += strlen(p) + 1)
		buf_printf(&b, "%s%s", b.len ? ", " : "", p);
	admin__kv(a, "", "domains", b.len ? buf_cstr(&b) : NULL);
	buf_reset(&b);
	p = v->s->operators.data;
	for (size_t i = 0; i < v->s->noperators; i++) {
		const char *u = p, *r = p + strlen(p) + 1;

		buf_printf(&b, "%s%s (%s)", b.len ? ", " : "", u, r);
		p = r + strlen(r) + 1;
	}
	admin__kv(a, "", "operators", b.len ? buf_cstr(&b) : NULL);
	buf_free(&b);
}

int admin__tenant_show(struct admin *a, const struct admin_args *args)
{
	const char *id = admin__arg(args, "id");
	struct admin_tenant_list l = { NULL, 0, 0 };
	struct admin_tenant_show s;
	struct admin_tenant_view v;
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
	if ((rc = admin_tenant_show_read(a, &l, &s)) != 0)
		goto out;
	memset(&v, 0, sizeof v);
	v.l = &l;
	v.s = &s;
	v.t = admin_tenant_find(&l, id);
	if (v.t == NULL) {
		admin__err(a, "no such tenant '%s'", id);
		rc = EX_NOINPUT;
		goto out;
	}
	/* The chain from the parent up to the root. */
	for (const struct queue_tenant *p = admin_tenant_find(&l, v.t->parent);
	    p != NULL && v.nchain < TENANCY_DEPTH_MAX; p = admin_tenant_find(&l, p->parent))
		v.chain[v.nchain++] = p;
	if (a->json)
		admin_tenant_show_json(a, &v);
	else
		admin_tenant_show_text(a, &v);
	rc = EX_OK;
out:
	buf_free(&s.domains);
	buf_free(&s.operators);
	admin_tenant_list_free(&l);
	return rc;
}

/* Removes tenant arg (an id) and writes the audit record. */
static int admin_tenant_remove_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	const char *id = arg;
	struct queue_tenant *t = NULL;
	struct queue_audit_field f[1];
	char why[ADMIN_WHY_MAX], tenants[2 * TENANCY_ID_MAX + 2];
	int rc = queue_tenant_get(txn, id, &t);

	if (rc < 0)
		return admin__fail(a, rc, rc == -ENOENT ? "no such tenant" : NULL,
		    "cannot remove tenant %s", id);
	why[0] = '\0';
	rc = queue_tenant_delete(txn, id, why, sizeof why);
	if (rc < 0) {
		queue_tenant_free(t);
		return admin__fail(a, rc, why, "cannot remove tenant %s", id);
	}
	admin__tenants2(tenants, sizeof tenants, id, t->parent);
	f[0] = (struct queue_audit_field){ "name", t->name };
	rc = admin__audit(a, txn, tenants, id, f, 1);
	queue_tenant_free(t);
	if (rc < 0)
		return admin__fail(a, rc, NULL, "cannot write the audit record");
	return 0;
}

int admin__tenant_remove(struct admin *a, const struct admin_args *args)
{
	const char *id = admin__arg(args, "id");
	int rc;

	if ((rc = admin__tenant_arg(a, "tenant", id)) != 0)
		return rc;
	if (!a->super && strcmp(id, a->op_tenant) == 0)
		return admin__deny(a, id, "a postmaster may not remove their own tenant");
	if ((rc = admin__need_tenant(a, id, "tenant")) != 0)
		return rc;
	if ((rc = admin__write(a, admin_tenant_remove_apply, (void *)id, "the removal")) != 0)
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
