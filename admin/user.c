/*
 * admin/user: `user add|passwd|lock|unlock|list|show|remove`: the users
 * who may submit mail with AUTH. A password is read from the engine's
 * standard input (never the command line), hashed before the write
 * begins (hashing is slow on purpose and must not hold the writer), and
 * neither it nor its hash ever reaches an audit record or the output.
 *
 * Every change is one apply (store.c) with its audit record in the same
 * transaction. Entry points: admin__user_add, admin__user_passwd,
 * admin__user_lock, admin__user_list, admin__user_show,
 * admin__user_remove, admin_read_password_stream (admin.h, admin_int.h).
 * OWNERSHIP: the password buffer is wiped before returning.
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
#include "common/passwd.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

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
	rc = admin__addr_tenant(a, txn, addr, &tenant);
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
	rc = admin_read_password_stream(a->io->in, pw, sizeof pw, &pwlen, why,
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
	if ((rc = admin__addr_tenant(a, txn, addr, &tenant)) != 0)
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
	if ((rc = admin__list_filters(a, args, one, sizeof one)) != 0)
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
			rc = admin__tenant_exists(a, txn, s.tenant, "--tenant");
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
		rc = admin__addr_tenant(a, txn, addr, &tenant);
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
	if ((rc = admin__addr_tenant(a, txn, addr, &tenant)) != 0)
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

/* ---------------------------------------------------------- password */

int admin_read_password_stream(FILE *in, char *out, size_t outlen, size_t *len, char *why,
    size_t whylen)
{
	size_t n = 0;
	bool nul = false, too_long = false, got = false;
	int c;

	*len = 0;
	out[0] = '\0';
	if (outlen < PASSWD_MAX + 1)
		panic("admin_read_password_stream: buffer too small");
	if (in == NULL) {
		snprintf(why, whylen, "no password on standard input");
		return EX_DATAERR;
	}
	while ((c = getc(in)) != EOF) {
		got = true;
		if (c == '\n')
			break;
		if (c == '\0')
			nul = true;
		if (n < PASSWD_MAX + 1 && n + 1 < outlen)
			out[n++] = (char)c;
		else
			too_long = true;
	}
	if (!got) {
		snprintf(why, whylen, "no password on standard input");
		return EX_DATAERR;
	}
	if (n > 0 && out[n - 1] == '\r')
		n--;
	out[n] = '\0';
	if (too_long || n > PASSWD_MAX) {
		explicit_bzero(out, outlen);
		snprintf(why, whylen, "the password is longer than %d bytes", PASSWD_MAX);
		return EX_DATAERR;
	}
	if (nul) {
		explicit_bzero(out, outlen);
		snprintf(why, whylen, "the password holds a NUL byte");
		return EX_DATAERR;
	}
	if (n == 0) {
		snprintf(why, whylen, "the password is empty");
		return EX_DATAERR;
	}
	*len = n;
	return 0;
}
