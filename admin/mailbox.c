/*
 * admin/mailbox: `mailbox add|remove|list|show`: mailboxes and aliases
 * of our domains (an alias's targets may be anywhere). `mailbox import`
 * is import.c.
 *
 * Every change is one apply (store.c) with its audit record in the same
 * transaction. Entry points: admin__mailbox_add, admin__mailbox_remove,
 * admin__mailbox_list, admin__mailbox_show, admin__list_filters
 * (admin_int.h).
 * OWNERSHIP: `mailbox list` prints while it walks (a domain may hold
 * 100,000 mailboxes), with output buffered and flushed every 64 KiB.
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

/* --------------------------------------------------------- mailboxes */

static bool admin_mailbox_has_target(const struct queue_mailbox *m, const char *target)
{
	for (size_t i = 0; i < m->nalias_of; i++)
		if (strcmp(m->alias_of[i], target) == 0)
			return true;
	return false;
}

/* `mailbox add`: what is asked, and what the apply found and wrote. */
struct admin_mailbox_new {
	const char *addr, *target; /* target NULL: a mailbox */
	struct queue_mailbox m;    /* as written (targets owned by .targets) */
	struct queue_mailbox *old; /* what was there, or NULL */
	char **targets;
	char *tenant;
	bool unchanged;            /* the alias delivered to target already */
};

/*
 * The targets of alias n->addr once n->target is appended to old's: 0,
 * or an exit code (reported) when old is no alias or is full; sets
 * n->unchanged when the target is there already.
 */
static int admin_mailbox_append(struct admin *a, struct admin_mailbox_new *n)
{
	const struct queue_mailbox *old = n->old;
	const char *what = NULL;

	if (n->target == NULL)
		what = old->nalias_of > 0 ? "an alias" : "a mailbox";
	else if (old->nalias_of == 0)
		what = "a mailbox, not an alias";
	if (what != NULL) {
		admin__err(a, "%s already exists as %s", n->addr, what);
		return EX_CANTCREAT;
	}
	if (admin_mailbox_has_target(old, n->target)) {
		n->unchanged = true;
		return 0;
	}
	if (old->nalias_of >= TENANCY_ALIAS_TARGETS_MAX) {
		admin__err(a, "alias %s has %d targets already, the most allowed", n->addr,
		    TENANCY_ALIAS_TARGETS_MAX);
		return EX_DATAERR;
	}
	n->targets = xcalloc(old->nalias_of + 1, sizeof *n->targets);
	for (size_t i = 0; i < old->nalias_of; i++)
		n->targets[i] = old->alias_of[i];
	n->targets[old->nalias_of] = (char *)n->target;
	n->m.alias_of = n->targets;
	n->m.nalias_of = old->nalias_of + 1;
	n->m.created = old->created;
	return 0;
}

static int admin_mailbox_add_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	struct admin_mailbox_new *n = arg;
	struct queue_audit_field f[1];
	char why[ADMIN_WHY_MAX];
	int rc;

	if ((rc = admin__addr_tenant(a, txn, n->addr, &n->tenant)) != 0)
		return rc;
	rc = queue_mailbox_get(txn, n->addr, &n->old);
	if (rc < 0 && rc != -ENOENT)
		return admin__fail(a, rc, NULL, "cannot read %s", n->addr);
	memset(&n->m, 0, sizeof n->m);
	n->m.address = (char *)n->addr;
	n->m.created = time_now_ms();
	if (n->old != NULL) {
		if ((rc = admin_mailbox_append(a, n)) != 0 || n->unchanged)
			return rc;
	} else if (n->target != NULL) {
		n->targets = xcalloc(1, sizeof *n->targets);
		n->targets[0] = (char *)n->target;
		n->m.alias_of = n->targets;
		n->m.nalias_of = 1;
	}
	why[0] = '\0';
	if ((rc = queue_mailbox_put(txn, &n->m, why, sizeof why)) < 0)
		return admin__fail(a, rc, why, "cannot add %s", n->addr);
	f[0] = (struct queue_audit_field){ "alias_of", n->target };
	if ((rc = admin__audit(a, txn, n->tenant, n->addr, f, 1)) < 0)
		return admin__fail(a, rc, NULL, "cannot write the audit record");
	return 0;
}

static void admin_mailbox_added(const struct admin *a, const struct admin_mailbox_new *n)
{
	if (n->unchanged) {
		admin__out(a, "alias %s already delivers to %s; nothing changed\n", n->addr,
		    n->target);
	} else if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "address", n->addr);
		admin__json_kstr(&j, "type", n->target != NULL ? "alias" : "mailbox");
		admin__json_open(&j, "alias_of", '[');
		for (size_t i = 0; i < n->m.nalias_of; i++) {
			admin__json_sep(&j, NULL);
			admin__json_str(&j.b, n->m.alias_of[i]);
		}
		admin__json_close(&j, ']');
		admin__json_end(a, &j);
	} else if (n->target == NULL) {
		admin__out(a, "mailbox %s added\n", n->addr);
	} else if (n->old != NULL) {
		admin__out(a, "alias %s: %s appended (%zu targets)\n", n->addr, n->target,
		    n->m.nalias_of);
	} else {
		admin__out(a, "alias %s added: delivers to %s\n", n->addr, n->target);
	}
}

int admin__mailbox_add(struct admin *a, const struct admin_args *args)
{
	const char *target_arg = admin__arg(args, "--alias-of");
	char addr[ADDR_MAX + 1], target[ADDR_MAX + 1];
	struct admin_mailbox_new n;
	int rc;

	if ((rc = admin__addr_arg(a, "address", admin__arg(args, "address"), addr,
	    sizeof addr)) != 0)
		return rc;
	if (target_arg != NULL && (rc = admin__addr_arg(a, "--alias-of", target_arg, target,
	    sizeof target)) != 0)
		return rc;
	if (target_arg != NULL && strcmp(addr, target) == 0) {
		admin__err(a, "--alias-of \"%s\": an address cannot be an alias of itself", target);
		return EX_DATAERR;
	}
	memset(&n, 0, sizeof n);
	n.addr = addr;
	n.target = target_arg != NULL ? target : NULL;
	rc = admin__write(a, admin_mailbox_add_apply, &n, "the mailbox");
	if (rc == 0)
		admin_mailbox_added(a, &n);
	free(n.targets);
	free(n.tenant);
	queue_mailbox_free(n.old);
	return rc;
}

/* `mailbox remove`: the address, and whether it was an alias. */
struct admin_mailbox_gone {
	const char *addr;
	bool alias;
};

static int admin_mailbox_remove_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	struct admin_mailbox_gone *g = arg;
	struct queue_mailbox *old = NULL;
	struct queue_user *u = NULL;
	char *tenant = NULL;
	int rc = queue_mailbox_get(txn, g->addr, &old);

	if (rc == -ENOENT) {
		admin__err(a, "no such mailbox or alias '%s'", g->addr);
		return EX_NOINPUT;
	}
	if (rc < 0)
		return admin__fail(a, rc, NULL, "cannot read %s", g->addr);
	g->alias = old->nalias_of > 0;
	queue_mailbox_free(old);
	if ((rc = admin__addr_tenant(a, txn, g->addr, &tenant)) != 0)
		return rc;
	rc = queue_user_get(txn, g->addr, &u);
	queue_user_free(u);
	if (rc == 0) {
		admin__err(a, "%s is a user's own address; remove the user first ('user remove')",
		    g->addr);
		free(tenant);
		return EX_DATAERR;
	}
	if ((rc = queue_mailbox_delete(txn, g->addr)) < 0 ||
	    (rc = admin__audit(a, txn, tenant, g->addr, NULL, 0)) < 0)
		rc = admin__fail(a, rc, NULL, "cannot remove %s", g->addr);
	free(tenant);
	return rc;
}

int admin__mailbox_remove(struct admin *a, const struct admin_args *args)
{
	struct admin_mailbox_gone g;
	char addr[ADDR_MAX + 1];
	int rc;

	if ((rc = admin__addr_arg(a, "address", admin__arg(args, "address"), addr,
	    sizeof addr)) != 0)
		return rc;
	g.addr = addr;
	g.alias = false;
	if ((rc = admin__write(a, admin_mailbox_remove_apply, &g, "the removal")) != 0)
		return rc;
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "address", addr);
		admin__json_kbool(&j, "removed", true);
		admin__json_end(a, &j);
	} else {
		admin__out(a, "%s %s removed\n", g.alias ? "alias" : "mailbox", addr);
	}
	return EX_OK;
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
	if ((rc = admin__txn(a, &txn)) != 0)
		return rc;
	rc = queue_mailbox_get(txn, addr, &m);
	if (rc == 0) {
		rc = admin__addr_tenant(a, txn, addr, &tenant);
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
		if ((rc = admin__tenant_exists(a, txn, tenant, "--tenant")) != 0) {
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
int admin__list_filters(struct admin *a, const struct admin_args *args, char *one,
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
	if ((rc = admin__list_filters(a, args, one, sizeof one)) != 0)
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
	if ((rc = admin__txn(a, &txn)) != 0) {
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

