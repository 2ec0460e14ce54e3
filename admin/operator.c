/*
 * admin/operator: `operator add|list|remove`: which unix users act as
 * postmaster or auditor of which tenant (super only).
 *
 * Every change is one apply (store.c) with its audit record in the same
 * transaction. Entry points: admin__operator_add, admin__operator_list,
 * admin__operator_remove (admin_int.h).
 * OWNERSHIP: listings copy, end the read transaction, then print.
 * THREADS: see engine.c (getpwnam_r only). ERRORS: sysexits.h codes.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
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

/* The new operator o and its audit record, unless the user is one already. */
static int admin_operator_add_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	struct queue_operator *o = arg, *old = NULL;
	struct queue_audit_field f[1];
	char why[ADMIN_WHY_MAX];
	int rc = queue_operator_get(txn, o->unix_user, &old);

	if (rc == 0) {
		admin__err(a, "%s is an operator already (%s of tenant %s); remove it first",
		    o->unix_user, queue_role_name(old->role), old->tenant);
		queue_operator_free(old);
		return EX_CANTCREAT;
	}
	if (rc != -ENOENT)
		return admin__fail(a, rc, NULL, "cannot read the operators");
	if ((rc = admin__tenant_exists(a, txn, o->tenant, "--tenant")) != 0)
		return rc;
	why[0] = '\0';
	if ((rc = queue_operator_put(txn, o, why, sizeof why)) < 0)
		return admin__fail(a, rc, why, "cannot add operator %s", o->unix_user);
	f[0] = (struct queue_audit_field){ "role", queue_role_name(o->role) };
	if ((rc = admin__audit(a, txn, o->tenant, o->unix_user, f, 1)) < 0)
		return admin__fail(a, rc, NULL, "cannot write the audit record");
	return 0;
}

int admin__operator_add(struct admin *a, const struct admin_args *args)
{
	const char *user = admin__arg(args, "user");
	const char *tenant = admin__arg(args, "--tenant");
	const char *role_arg = admin__arg(args, "--role");
	struct queue_operator o;
	enum queue_operator_role role;
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

		admin__err(a, "--role \"%s\": use postmaster, auditor or security", shown);
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
	o.unix_user = (char *)user;
	o.tenant = (char *)tenant;
	o.role = role;
	o.created = time_now_ms();
	if ((rc = admin__write(a, admin_operator_add_apply, &o, "the new operator")) != 0)
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
		if ((rc = admin__txn(a, &txn)) != 0)
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

/* Removes operator arg (a unix user) with its audit record. */
static int admin_operator_remove_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	const char *user = arg;
	struct queue_operator *o = NULL;
	struct queue_audit_field f[1];
	int rc = queue_operator_get(txn, user, &o);

	if (rc == -ENOENT) {
		char *shown = admin__text_dup(user);

		admin__err(a, "no such operator '%s'", shown);
		free(shown);
		return EX_NOINPUT;
	}
	if (rc < 0)
		return admin__fail(a, rc, NULL, "cannot read the operators");
	f[0] = (struct queue_audit_field){ "role", queue_role_name(o->role) };
	if ((rc = queue_operator_delete(txn, user)) < 0 ||
	    (rc = admin__audit(a, txn, o->tenant, user, f, 1)) < 0) {
		queue_operator_free(o);
		return admin__fail(a, rc, NULL, "cannot remove operator %s", user);
	}
	queue_operator_free(o);
	return 0;
}

int admin__operator_remove(struct admin *a, const struct admin_args *args)
{
	const char *user = admin__arg(args, "user");
	int rc;

	if ((rc = admin__write(a, admin_operator_remove_apply, (void *)user, "the removal")) != 0)
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
