/*
 * admin/domain: `domain add|list|show|remove`: the domains we accept
 * mail for, their route and their tenant.
 *
 * Every change is one apply (store.c) with its audit record in the same
 * transaction. A delegated postmaster adds only subdomains of their own
 * domains, over routes the configuration lets them name
 * (doc/THREAT-MODEL.md, scope.c). Entry points: admin__domain_add, admin__domain_list,
 * admin__domain_show, admin__domain_remove (admin_int.h).
 * OWNERSHIP: listings copy, end the read transaction, then print.
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

#include <idn2.h>

#include "admin/admin_int.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/dkim.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

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

/*
 * A delegated postmaster adds only subdomains of a domain their subtree
 * owns: the nearest of our domains above the new one must be theirs. A
 * top domain (gmail.com), or one under nothing of ours, would take mail
 * meant for someone else: root and the daemon's user only.
 */
static int admin_domain_need_parent(struct admin *a, struct queue_txn *txn, const char *name)
{
	const struct admin_domain_ent *p;
	int rc;

	if ((rc = admin__domains_load(a, txn)) != 0)
		return rc;
	p = admin__domain_parent(a, name);
	if (p == NULL)
		return admin__deny(a, a->op_tenant, "domain %s: a delegated postmaster may add "
		    "only subdomains of a domain of tenant %s and its subtree, and %s is below "
		    "none of ours (new top domains are for root and the daemon's user)", name,
		    a->op_tenant, name);
	if (!p->in_scope)
		return admin__deny(a, p->tenant, "domain %s: it is below %s, which belongs to "
		    "tenant %s, outside tenant %s", name, p->name,
		    p->tenant != NULL ? p->tenant : "(none)", a->op_tenant);
	return 0;
}

/* The new domain d and its audit record, unless the name is taken. */
static int admin_domain_add_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	struct queue_domain *d = arg, *old = NULL;
	struct queue_audit_field f[3];
	int rc = queue_domain_get(txn, d->name, &old);

	if (rc == 0) {
		char *shown = admin__text_dup(old->route);

		if (admin__tenant_in_scope(a, old->tenant))
			admin__err(a, "domain %s already exists (route %s)", d->name, shown);
		else
			admin__err(a, "domain %s already exists (another tenant's)", d->name);
		free(shown);
		queue_domain_free(old);
		return EX_CANTCREAT;
	}
	if (rc != -ENOENT)
		goto fail;
	/* In the write: the parent domain cannot change between check and put. */
	if (!a->super && (rc = admin_domain_need_parent(a, txn, d->name)) != 0)
		return rc;
	if (d->tenant != NULL &&
	    (rc = admin__tenant_exists(a, txn, d->tenant, "--tenant")) != 0)
		return rc;
	if ((rc = queue_domain_put(txn, d)) < 0)
		goto fail;
	f[0] = (struct queue_audit_field){ "route", d->route };
	f[1] = (struct queue_audit_field){ "require_tls", d->require_tls ? "yes" : "no" };
	f[2] = (struct queue_audit_field){ "accept_all", d->accept_all ? "yes" : "no" };
	if ((rc = admin__audit(a, txn, d->tenant, d->name, f, 3)) < 0)
		goto fail;
	return 0;
fail:
	/* Our arguments were checked, so a refusal here is our bug. */
	admin__err(a, "cannot add domain %s: %s", d->name, queue_strerror(rc));
	return rc == -EINVAL ? EX_SOFTWARE : admin__store_exit(rc);
}

int admin__domain_add(struct admin *a, const struct admin_args *args)
{
	const char *route = admin__arg(args, "--route");
	const char *tenant = admin__arg(args, "--tenant");
	struct queue_domain d;
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
	if (!a->super && admin__route_delegable(a->io->cfg, route, why, sizeof why) < 0) {
		char *shown = admin__text_dup(route);

		rc = admin__deny(a, tenant, "--route \"%s\": %s", shown, why);
		free(shown);
		return rc;
	}
	memset(&d, 0, sizeof d);
	d.name = name;
	d.tenant = (char *)tenant;
	d.route = (char *)route;
	d.require_tls = admin__arg(args, "--require-tls") != NULL;
	d.accept_all = admin__arg(args, "--accept-all") != NULL;
	d.created = time_now_ms();
	if ((rc = admin__write(a, admin_domain_add_apply, &d, "the new domain")) != 0)
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

/* The selectors of a domain's DKIM keys that may still sign, "a b c". */
static int admin_dkim_live_cb(void *arg, const struct queue_dkim_key *k)
{
	struct buf *live = arg;

	if (k->state != QUEUE_DKIM_RETIRED)
		buf_printf(live, "%s%s", live->len > 0 ? " " : "", k->selector);
	return 0;
}

/*
 * Every DKIM key of domain that may still sign is retired: added again
 * later (by another agency, perhaps), the domain must not sign with the
 * old owner's keys. The key files stay, as for any retired key.
 */
static int admin_dkim_retire_all(struct queue_txn *txn, const char *domain, struct buf *live)
{
	int rc = queue_dkim_walk(txn, domain, admin_dkim_live_cb, live);
	char *sels = live->len > 0 ? xstrdup(buf_cstr(live)) : NULL, *save = NULL;

	for (char *sel = sels != NULL ? strtok_r(sels, " ", &save) : NULL; rc >= 0 && sel != NULL;
	    sel = strtok_r(NULL, " ", &save)) {
		struct queue_dkim_key *k = NULL;

		if ((rc = queue_dkim_get(txn, domain, sel, &k)) < 0)
			break;
		k->state = QUEUE_DKIM_RETIRED;
		k->changed = time_now_ms();
		rc = queue_dkim_put(txn, k, NULL, 0);
		queue_dkim_key_free(k);
	}
	free(sels);
	return rc < 0 ? rc : 0;
}

/*
 * Removes domain arg (a name) when it is empty, with its audit record;
 * its DKIM keys are retired in the same transaction.
 */
static int admin_domain_remove_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	const char *name = arg;
	struct queue_domain *d = NULL;
	struct admin_user_count uc = { name, 0 };
	struct queue_audit_field f[2];
	struct buf retired;
	uint64_t mailboxes = 0;
	int rc;

	buf_init(&retired);
	rc = queue_domain_get(txn, name, &d);

	if (rc == -ENOENT) {
		admin__err(a, "no such domain '%s'", name);
		return EX_NOINPUT;
	}
	if (rc < 0)
		goto fail;
	if ((rc = admin__need_tenant(a, d->tenant, name)) != 0) {
		queue_domain_free(d);
		return rc;
	}
	if ((rc = queue_mailbox_count_domain(txn, name, &mailboxes)) < 0 ||
	    (rc = queue_user_walk(txn, admin_user_count_cb, &uc)) < 0)
		goto fail;
	if (mailboxes > 0 || uc.n > 0) {
		queue_domain_free(d);
		admin__err(a, "domain %s still has %" PRIu64 " mailboxes or aliases and %" PRIu64
		    " users; remove them first", name, mailboxes, uc.n);
		return EX_DATAERR;
	}
	if ((rc = admin_dkim_retire_all(txn, name, &retired)) < 0 ||
	    (rc = queue_domain_delete(txn, name)) < 0)
		goto fail;
	f[0] = (struct queue_audit_field){ "route", d->route };
	f[1] = (struct queue_audit_field){ "dkim_retired", buf_cstr(&retired) };
	if ((rc = admin__audit(a, txn, d->tenant, name, f, retired.len > 0 ? 2 : 1)) < 0)
		goto fail;
	queue_domain_free(d);
	buf_free(&retired);
	return 0;
fail:
	queue_domain_free(d);
	buf_free(&retired);
	admin__err(a, "cannot remove domain %s: %s", name, queue_strerror(rc));
	return rc == -EINVAL ? EX_SOFTWARE : admin__store_exit(rc);
}

int admin__domain_remove(struct admin *a, const struct admin_args *args)
{
	char name[ADDR_DOMAIN_MAX + 1];
	int rc;

	if ((rc = admin__domain_arg(a, "domain", admin__arg(args, "domain"), name,
	    sizeof name)) != 0)
		return rc;
	if ((rc = admin__write(a, admin_domain_remove_apply, name, "the removal")) != 0)
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
		if ((rc = admin__txn(a, &txn)) != 0)
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
		if ((rc = admin__txn(a, &txn)) != 0)
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

