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

/* `user add` and `user passwd`: the change, and what the apply found. */
struct admin_user_pw {
	bool add;
	char addr[ADDR_MAX + 1];
	char hash[PASSWD_HASH_MAX + 1];
	char *tenant;
	bool made_mailbox;
};

/*
 * Who and what first, in a read transaction: a refused caller is not
 * asked for a password. 0 or an exit code (reported).
 */
static int admin_user_pw_check(struct admin *a, struct admin_user_pw *p)
{
	struct queue_user *u = NULL;
	struct queue_txn *txn;
	int rc, qrc;

	if ((rc = admin__txn(a, &txn)) != 0)
		return rc;
	rc = admin__addr_tenant(a, txn, p->addr, &p->tenant);
	if (rc == 0) {
		qrc = queue_user_get(txn, p->addr, &u);
		if (qrc == 0 && p->add) {
			admin__err(a, "user %s already exists ('user passwd' changes the password)",
			    p->addr);
			rc = EX_CANTCREAT;
		} else if (qrc == -ENOENT && !p->add) {
			admin__err(a, "no such user '%s'", p->addr);
			rc = EX_NOINPUT;
		} else if (qrc < 0 && qrc != -ENOENT) {
			rc = admin__fail(a, qrc, NULL, "cannot read user %s", p->addr);
		}
		queue_user_free(u);
	}
	queue_txn_abort(txn);
	return rc;
}

/* Reads the password and hashes it into p->hash: 0 or an exit code (reported). */
static int admin_user_pw_hash(struct admin *a, struct admin_user_pw *p)
{
	char pw[PASSWD_MAX + 2], why[ADMIN_WHY_MAX];
	size_t pwlen;
	int rc;

	why[0] = '\0';
	rc = admin_read_password_stream(a->io->in, pw, sizeof pw, &pwlen, why, sizeof why);
	if (rc != 0) {
		admin__err(a, "%s: %s", p->addr, why);
		return rc;
	}
	/* scrypt takes tens of milliseconds: before the write, never inside it. */
	rc = passwd_hash(pw, pwlen, a->io->cfg != NULL ?
	    (unsigned)a->io->cfg->password_hash_cost : PASSWD_DEFAULT_LN, p->hash,
	    sizeof p->hash);
	explicit_bzero(pw, sizeof pw);
	if (rc < 0) {
		admin__err(a, "cannot hash the password: %s", ADMIN_STRERROR(-rc));
		return EX_SOFTWARE;
	}
	return 0;
}

/* A new user's own address receives mail: its mailbox comes with it. */
static int admin_user_mailbox(struct admin *a, struct queue_txn *txn, struct admin_user_pw *p,
    int64_t created)
{
	struct queue_mailbox *mb = NULL, m;
	char why[ADMIN_WHY_MAX];
	int rc = queue_mailbox_get(txn, p->addr, &mb);

	queue_mailbox_free(mb);
	if (rc == 0)
		return 0;
	if (rc != -ENOENT)
		return admin__fail(a, rc, NULL, "cannot read mailbox %s", p->addr);
	memset(&m, 0, sizeof m);
	m.address = p->addr;
	m.created = created;
	why[0] = '\0';
	if ((rc = queue_mailbox_put(txn, &m, why, sizeof why)) < 0)
		return admin__fail(a, rc, why, "cannot add mailbox %s", p->addr);
	p->made_mailbox = true;
	return 0;
}

static int admin_user_pw_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	struct admin_user_pw *p = arg;
	struct queue_user *u = NULL, nu;
	struct queue_audit_field f[1];
	char why[ADMIN_WHY_MAX];
	int rc = queue_user_get(txn, p->addr, &u);

	if (rc == 0 && p->add) {
		admin__err(a, "user %s already exists", p->addr);
		rc = EX_CANTCREAT;
	} else if (rc == -ENOENT && !p->add) {
		admin__err(a, "no such user '%s'", p->addr);
		rc = EX_NOINPUT;
	} else if (rc < 0 && rc != -ENOENT) {
		rc = admin__fail(a, rc, NULL, "cannot read user %s", p->addr);
	} else if (p->add) {
		memset(&nu, 0, sizeof nu);
		nu.address = p->addr;
		nu.created = time_now_ms();
		rc = admin_user_mailbox(a, txn, p, nu.created);
	} else {
		nu = *u;
		rc = 0;
	}
	if (rc != 0)
		goto out;
	nu.hash = p->hash;
	why[0] = '\0';
	if ((rc = queue_user_put(txn, &nu, why, sizeof why)) < 0) {
		rc = admin__fail(a, rc, why, "cannot store user %s", p->addr);
		goto out;
	}
	f[0] = (struct queue_audit_field){ "mailbox_created",
		p->add ? (p->made_mailbox ? "yes" : "no") : NULL };
	if ((rc = admin__audit(a, txn, p->tenant, p->addr, f, 1)) < 0)
		rc = admin__fail(a, rc, NULL, "cannot write the audit record");
out:
	queue_user_free(u);
	return rc;
}

static void admin_user_pw_done(const struct admin *a, const struct admin_user_pw *p)
{
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "address", p->addr);
		admin__json_kstr(&j, "tenant", p->tenant);
		if (p->add)
			admin__json_kbool(&j, "mailbox_created", p->made_mailbox);
		else
			admin__json_kbool(&j, "password_changed", true);
		admin__json_end(a, &j);
	} else if (p->add) {
		admin__out(a, "user %s added%s\n", p->addr,
		    p->made_mailbox ? " with its mailbox" : "");
	} else {
		admin__out(a, "password of %s changed\n", p->addr);
	}
}

/* `user add` and `user passwd`: the password never leaves admin_user_pw_hash. */
static int admin_user_password(struct admin *a, const struct admin_args *args, bool add)
{
	struct admin_user_pw p;
	int rc;

	memset(&p, 0, sizeof p);
	p.add = add;
	if ((rc = admin__addr_arg(a, "address", admin__arg(args, "address"), p.addr,
	    sizeof p.addr)) != 0)
		return rc;
	if ((rc = admin_user_pw_check(a, &p)) == 0 && (rc = admin_user_pw_hash(a, &p)) == 0)
		rc = admin__write(a, admin_user_pw_apply, &p,
		    add ? "the new user" : "the password");
	if (rc == 0)
		admin_user_pw_done(a, &p);
	explicit_bzero(p.hash, sizeof p.hash);
	free(p.tenant);
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

/* `user lock|unlock`: the address, and the state the apply left. */
struct admin_user_lock {
	bool lock;
	const char *addr;
	char state[16];
	bool unchanged;
};

static int admin_user_lock_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	struct admin_user_lock *l = arg;
	char why[ADMIN_WHY_MAX], *tenant = NULL, nfail[24];
	struct queue_user *u = NULL;
	struct queue_audit_field f[1];
	int rc = queue_user_get(txn, l->addr, &u);

	if (rc == -ENOENT) {
		admin__err(a, "no such user '%s'", l->addr);
		return EX_NOINPUT;
	}
	if (rc < 0)
		return admin__fail(a, rc, NULL, "cannot read user %s", l->addr);
	if ((rc = admin__addr_tenant(a, txn, l->addr, &tenant)) != 0)
		goto out;
	if (l->lock ? u->locked : (!u->locked && !u->locked_out && u->failures == 0)) {
		l->unchanged = true;
		goto out;
	}
	snprintf(nfail, sizeof nfail, "%" PRIu32, u->failures);
	if (l->lock) {
		u->locked = true;
	} else {
		u->locked = false;
		u->locked_out = false;
		u->failures = 0;
		u->last_failure = 0;
	}
	str_copy(l->state, admin_user_state(u), sizeof l->state);
	why[0] = '\0';
	if ((rc = queue_user_put(txn, u, why, sizeof why)) < 0) {
		rc = admin__fail(a, rc, why, "cannot store user %s", l->addr);
		goto out;
	}
	f[0] = (struct queue_audit_field){ "failures", l->lock ? NULL : nfail };
	if ((rc = admin__audit(a, txn, tenant, l->addr, f, 1)) < 0)
		rc = admin__fail(a, rc, NULL, "cannot write the audit record");
out:
	queue_user_free(u);
	free(tenant);
	return rc;
}

/* `user lock` and `user unlock` (which also clears the AUTH lock-out). */
int admin__user_lock(struct admin *a, const struct admin_args *args)
{
	struct admin_user_lock l;
	char addr[ADDR_MAX + 1];
	int rc;

	if ((rc = admin__addr_arg(a, "address", admin__arg(args, "address"), addr,
	    sizeof addr)) != 0)
		return rc;
	memset(&l, 0, sizeof l);
	l.lock = strcmp(a->cmd->verb, "lock") == 0;
	l.addr = addr;
	if ((rc = admin__write(a, admin_user_lock_apply, &l, "the change")) != 0)
		return rc;
	if (l.unchanged) {
		admin__out(a, "user %s is %s already; nothing changed\n", addr,
		    l.lock ? "locked" : "active");
	} else if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "address", addr);
		admin__json_kstr(&j, "state", l.state);
		admin__json_end(a, &j);
	} else {
		admin__out(a, "user %s %s\n", addr, l.lock ? "locked" : "unlocked");
	}
	return EX_OK;
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
		if ((rc = admin__txn(a, &txn)) != 0) {
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
	if ((rc = admin__txn(a, &txn)) != 0)
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

/* Removes user arg (an address; the mailbox stays) with its audit record. */
static int admin_user_remove_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	const char *addr = arg;
	struct queue_user *u = NULL;
	char *tenant = NULL;
	int rc = queue_user_get(txn, addr, &u);

	queue_user_free(u);
	if (rc == -ENOENT) {
		admin__err(a, "no such user '%s'", addr);
		return EX_NOINPUT;
	}
	if (rc < 0)
		return admin__fail(a, rc, NULL, "cannot read user %s", addr);
	if ((rc = admin__addr_tenant(a, txn, addr, &tenant)) != 0)
		return rc;
	if ((rc = queue_user_delete(txn, addr)) < 0 ||
	    (rc = admin__audit(a, txn, tenant, addr, NULL, 0)) < 0)
		rc = admin__fail(a, rc, NULL, "cannot remove user %s", addr);
	free(tenant);
	return rc;
}

int admin__user_remove(struct admin *a, const struct admin_args *args)
{
	char addr[ADDR_MAX + 1];
	int rc;

	if ((rc = admin__addr_arg(a, "address", admin__arg(args, "address"), addr,
	    sizeof addr)) != 0)
		return rc;
	if ((rc = admin__write(a, admin_user_remove_apply, addr, "the removal")) != 0)
		return rc;
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "address", addr);
		admin__json_kbool(&j, "removed", true);
		admin__json_end(a, &j);
	} else {
		admin__out(a, "user %s removed (the mailbox stays)\n", addr);
	}
	return EX_OK;
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
