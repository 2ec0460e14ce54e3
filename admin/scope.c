/*
 * admin/scope: what a delegated operator may touch. A postmaster or
 * auditor answers for one tenant and its subtree; the scope is that
 * subtree's sorted tenant ids, loaded once per command, and the domains
 * with their tenants, loaded when a handler needs them. Refusals
 * (admin__deny) are printed here and recorded by the dispatcher. Also the
 * lookups every noun shares: the tenant of an address, whether a tenant
 * exists, and the list filters --tenant/--domain.
 *
 * Entry points: admin__tenant_in_scope, admin__scope_load,
 * admin__domains_load, admin__domain_find, admin__addr_domain,
 * admin__deny, admin__deny_cmd, admin__need_tenant, admin__addr_tenant,
 * admin__tenant_exists, admin__tenants2; and the pure rules of delegated
 * administration (doc/THREAT-MODEL.md): admin__path_below,
 * admin__route_delegable, admin__domain_is_below, admin__domain_parent
 * (admin_int.h).
 * OWNERSHIP: the scope and the domains live in struct admin, freed by
 * admin_run's cleanup.
 * THREADS: the caller's (or the writer's, inside an apply).
 * ERRORS: sysexits.h codes, reported.
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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "admin/admin_int.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

/* ------------------------------------------------------------ scope */

static int admin_strcmp_p(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

bool admin__tenant_in_scope(const struct admin *a, const char *tenant)
{
	if (a->super)
		return true;
	if (tenant == NULL || a->scope.ntenants == 0)
		return false;
	return bsearch(&tenant, a->scope.tenants, a->scope.ntenants, sizeof *a->scope.tenants,
	    admin_strcmp_p) != NULL;
}

struct admin_tenant_ids {
	char **id;
	size_t n, cap;
};

static int admin_tenant_id(void *arg, const struct queue_tenant *t)
{
	struct admin_tenant_ids *l = arg;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->id = xreallocarray(l->id, l->cap, sizeof *l->id);
	}
	l->id[l->n++] = xstrdup(t->id);
	return 0;
}

/*
 * The subtree of a->op_tenant: every tenant of the (small: about 600
 * agencies) table that queue_tenant_within, the store's one rule for
 * "below", puts within it. A chain longer than TENANCY_DEPTH_MAX, which
 * only a store edited by other means holds, is outside.
 */
int admin__scope_load(struct admin *a, struct queue_txn *txn)
{
	struct admin_tenant_ids l = { NULL, 0, 0 };
	int rc = queue_tenant_walk(txn, admin_tenant_id, &l);

	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		bool inside = false;

		rc = queue_tenant_within(txn, l.id[i], a->op_tenant, &inside);
		if (rc == -ELOOP || rc == -ENOENT || rc == -EINVAL)
			rc = 0;
		if (rc < 0 || !inside)
			continue;
		a->scope.tenants = xreallocarray(a->scope.tenants, a->scope.ntenants + 1,
		    sizeof *a->scope.tenants);
		a->scope.tenants[a->scope.ntenants++] = xstrdup(l.id[i]);
	}
	if (rc == 0 && a->scope.ntenants > 0)
		qsort(a->scope.tenants, a->scope.ntenants, sizeof *a->scope.tenants,
		    admin_strcmp_p);
	for (size_t i = 0; i < l.n; i++)
		free(l.id[i]);
	free(l.id);
	return rc;
}

static int admin_domain_ent_cmp(const void *x, const void *y)
{
	return strcmp(((const struct admin_domain_ent *)x)->name,
	    ((const struct admin_domain_ent *)y)->name);
}

struct admin_domains_ctx {
	struct admin *a;
	size_t cap;
};

static int admin_domains_collect(void *arg, const struct queue_domain *d)
{
	struct admin_domains_ctx *c = arg;
	struct admin_domains *l = &c->a->domains;
	struct admin_domain_ent *e;

	if (l->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		l->v = xreallocarray(l->v, c->cap, sizeof *l->v);
	}
	e = &l->v[l->n++];
	e->name = xstrdup(d->name);
	e->tenant = d->tenant != NULL ? xstrdup(d->tenant) : NULL;
	e->in_scope = admin__tenant_in_scope(c->a, d->tenant);
	return 0;
}

int admin__domains_load(struct admin *a, struct queue_txn *txn)
{
	struct admin_domains_ctx c = { a, 0 };
	int rc;

	if (a->domains.loaded)
		return 0;
	rc = queue_domain_walk(txn, admin_domains_collect, &c);
	if (rc < 0) {
		admin__err(a, "cannot read the domains: %s", queue_strerror(rc));
		return admin__store_exit(rc);
	}
	if (a->domains.n > 1)
		qsort(a->domains.v, a->domains.n, sizeof *a->domains.v, admin_domain_ent_cmp);
	a->domains.loaded = true;
	return 0;
}

const struct admin_domain_ent *admin__domain_find(const struct admin *a, const char *domain)
{
	struct admin_domain_ent key = { (char *)domain, NULL, false };

	if (a->domains.n == 0)
		return NULL;
	return bsearch(&key, a->domains.v, a->domains.n, sizeof *a->domains.v,
	    admin_domain_ent_cmp);
}

void admin__addr_domain(const char *addr, char *out, size_t outlen)
{
	const char *at = addr != NULL ? strrchr(addr, '@') : NULL;
	const char *why;

	out[0] = '\0';
	if (at == NULL || at[1] == '\0')
		return;
	if (addr_domain_canon(at + 1, out, outlen, &why) < 0) {
		str_copy(out, at + 1, outlen);
		str_lower(out);
	}
}

/*
 * The refusal: the message on err, the facts for the record. show says
 * whether the tenant was what the caller asked about (printed "on
 * tenant X") or only the caller's own (recorded, so that auditors of
 * that tenant see the attempt, but not printed).
 */
static int admin_deny_v(struct admin *a, const char *tenant, bool show, const char *fmt,
    va_list ap)
{
	FILE *f = a->io->err;
	char reason[256], *u, *r;

	vsnprintf(reason, sizeof reason, fmt, ap);
	u = admin__text_dup(a->user);
	r = admin__text_dup(reason);
	admin__prefix(a, f);
	fprintf(f, "permission denied: %s", u);
	if (a->is_operator)
		fprintf(f, " (%s of tenant %s)", queue_role_name(a->role), a->op_tenant);
	else
		fputs(" (not an operator)", f);
	fprintf(f, " may not run '%s%s%s'", a->cmd->noun, a->cmd->verb[0] ? " " : "",
	    a->cmd->verb);
	if (show && tenant != NULL && tenant[0] != '\0') {
		char *t = admin__text_dup(tenant);

		fprintf(f, " on tenant %s", t);
		free(t);
	}
	fprintf(f, ": %s\n", r);
	free(u);
	free(r);
	if (!a->denied) {
		a->denied = true;
		str_copy(a->deny_tenant, tenant != NULL ? tenant : "", sizeof a->deny_tenant);
		str_copy(a->deny_reason, reason, sizeof a->deny_reason);
	}
	return EX_NOPERM;
}

int admin__deny(struct admin *a, const char *tenant, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = admin_deny_v(a, tenant, true, fmt, ap);
	va_end(ap);
	return rc;
}

int admin__deny_cmd(struct admin *a, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = admin_deny_v(a, a->is_operator ? a->op_tenant : NULL, false, fmt, ap);
	va_end(ap);
	return rc;
}

int admin__need_tenant(struct admin *a, const char *tenant, const char *what)
{
	if (admin__tenant_in_scope(a, tenant))
		return 0;
	if (tenant == NULL)
		return admin__deny(a, NULL, "%s belongs to no tenant", what);
	/* An argument that names the tenant itself ("--tenant", "tenant"). */
	if (strncmp(what, "--", 2) == 0 || strcmp(what, "tenant") == 0)
		return admin__deny(a, tenant, "tenant %s is outside tenant %s and its subtree",
		    tenant, a->op_tenant);
	return admin__deny(a, tenant, "%s belongs to tenant %s, outside tenant %s", what, tenant,
	    a->op_tenant);
}

/* ------------------------------------------------------------ helpers */

/*
 * The tenant of an address's domain for a handler: 0 with *tenant, or
 * an exit code (reported: 66 when the domain is not ours, 77 when it is
 * outside the caller's subtree).
 */
int admin__addr_tenant(struct admin *a, struct queue_txn *txn, const char *addr,
    char **tenant)
{
	const char *domain = addr_domain_of(addr);
	int rc = queue_tenant_of_domain(txn, domain, tenant);

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
int admin__tenant_exists(struct admin *a, struct queue_txn *txn, const char *id,
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
void admin__tenants2(char *out, size_t outlen, const char *x, const char *y)
{
	if (y != NULL && y[0] != '\0' && (x == NULL || strcmp(x, y) != 0))
		snprintf(out, outlen, "%s,%s", x != NULL ? x : "", y);
	else
		snprintf(out, outlen, "%s", x != NULL ? x : "");
}


/* ------------------------------------------- delegated administration */

/*
 * Whether path lies strictly below dir, judged on the text alone: dir's
 * components, then at least one more, none of them empty, "." or "..".
 * The file system is not consulted: a symbolic link below dir is the
 * delivery's business (relay/maildir.c opens beneath the root without
 * following links), and a socket folder must not be writable by the
 * people this rule constrains (doc/THREAT-MODEL.md).
 */
bool admin__path_below(const char *dir, const char *path)
{
	size_t dlen;
	const char *p;

	if (dir == NULL || path == NULL || dir[0] != '/' || path[0] != '/')
		return false;
	dlen = strlen(dir);
	while (dlen > 1 && dir[dlen - 1] == '/')
		dlen--;
	if (dlen == 1)
		dlen = 0; /* dir is "/": every absolute path starts below it */
	if (strncmp(path, dir, dlen) != 0 || path[dlen] != '/')
		return false;
	p = path + dlen + 1;
	if (*p == '\0')
		return false;
	while (*p != '\0') {
		size_t n = strcspn(p, "/");

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += n;
		if (*p == '/') {
			p++;
			if (*p == '\0')
				return true; /* one trailing slash: "dir/x/" is dir/x */
		}
	}
	return true;
}

/*
 * The next hop of "HOST:PORT" or "[V6]:PORT" when HOST is an IP literal:
 * 0 with *sa filled, or -EINVAL (a host name, or no port).
 */
static int admin_route_addr(const char *hostport, struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *end;
	size_t len;

	memset(ss, 0, sizeof *ss);
	if (hostport[0] == '[') {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		if ((end = strchr(hostport, ']')) == NULL)
			return -EINVAL;
		len = (size_t)(end - hostport - 1);
		if (len == 0 || len >= sizeof host)
			return -EINVAL;
		memcpy(host, hostport + 1, len);
		host[len] = '\0';
		s6->sin6_family = AF_INET6;
		return inet_pton(AF_INET6, host, &s6->sin6_addr) == 1 ? 0 : -EINVAL;
	}
	if ((end = strrchr(hostport, ':')) == NULL)
		return -EINVAL;
	len = (size_t)(end - hostport);
	if (len == 0 || len >= sizeof host)
		return -EINVAL;
	memcpy(host, hostport, len);
	host[len] = '\0';
	((struct sockaddr_in *)ss)->sin_family = AF_INET;
	return inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1 ? 0 :
	    -EINVAL;
}

/*
 * Whether a delegated postmaster may name route (its syntax already
 * checked): mx always; smtp:/lmtp: to an IP literal inside
 * delegated_route_networks; lmtp:unix: below lmtp_socket_dir; maildir:
 * below maildir_root. 0, or -EPERM with the reason in why.
 */
int admin__route_delegable(const struct config *cfg, const char *route, char *why,
    size_t whylen)
{
	struct sockaddr_storage ss;
	const char *hostport = NULL;

	why[0] = '\0';
	if (strcmp(route, "mx") == 0)
		return 0;
	if (strncmp(route, "maildir:", 8) == 0) {
		if (cfg == NULL || cfg->maildir_root == NULL) {
			snprintf(why, whylen, "maildir routes are for root (maildir_root is not set)");
			return -EPERM;
		}
		if (!admin__path_below(cfg->maildir_root, route + 8)) {
			snprintf(why, whylen, "the folder must lie below maildir_root %s, with no "
			    "'.' or '..' component", cfg->maildir_root);
			return -EPERM;
		}
		return 0;
	}
	if (strncmp(route, "lmtp:unix:", 10) == 0) {
		if (cfg == NULL || cfg->lmtp_socket_dir == NULL) {
			snprintf(why, whylen, "lmtp:unix: routes are for root (lmtp_socket_dir is "
			    "not set)");
			return -EPERM;
		}
		if (!admin__path_below(cfg->lmtp_socket_dir, route + 10)) {
			snprintf(why, whylen, "the socket must lie below lmtp_socket_dir %s, with "
			    "no '.' or '..' component", cfg->lmtp_socket_dir);
			return -EPERM;
		}
		return 0;
	}
	if (strncmp(route, "smtp:", 5) == 0 || strncmp(route, "lmtp:", 5) == 0)
		hostport = route + 5;
	if (hostport == NULL) {
		snprintf(why, whylen, "unknown kind of route");
		return -EPERM;
	}
	if (admin_route_addr(hostport, &ss) < 0) {
		snprintf(why, whylen, "a delegated postmaster's next hop must be an IP address "
		    "(a host name may resolve anywhere)");
		return -EPERM;
	}
	if (cfg == NULL || cfg->delegated_route_networks.n == 0) {
		snprintf(why, whylen, "host routes are for root (delegated_route_networks is "
		    "not set)");
		return -EPERM;
	}
	if (!cfg_cidr_list_has(&cfg->delegated_route_networks, (const struct sockaddr *)&ss)) {
		snprintf(why, whylen, "the next hop is outside delegated_route_networks");
		return -EPERM;
	}
	return 0;
}

/* Whether domain is a proper subdomain of parent (both canonical). */
bool admin__domain_is_below(const char *domain, const char *parent)
{
	size_t dl = strlen(domain), pl = strlen(parent);

	return pl > 0 && dl > pl + 1 && domain[dl - pl - 1] == '.' &&
	    strcmp(domain + dl - pl, parent) == 0;
}

/*
 * The nearest of our domains above domain (a->domains loaded), or NULL:
 * for a.b.ward.test, b.ward.test if we have it, else ward.test, else
 * test.
 */
const struct admin_domain_ent *admin__domain_parent(const struct admin *a, const char *domain)
{
	for (const char *p = strchr(domain, '.'); p != NULL; p = strchr(p + 1, '.')) {
		const struct admin_domain_ent *e = admin__domain_find(a, p + 1);

		if (e != NULL)
			return e;
	}
	return NULL;
}
