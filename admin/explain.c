/*
 * admin/explain: `policy explain FILE --from ADDRESS --to ADDRESS[,ADDRESS...]
 * [--tenant ID]`: what every check of the daemon's policy says about a
 * message, rule by rule, without queueing it: what a postmaster needs
 * when a civil servant asks "why was my mail refused?".
 *
 * The checks themselves run inside govrelayd, on its policy engine (its
 * resolver, its configuration, its clamd), through io->explain
 * (relay/explain.c): admin/ never includes a policy/ header. This file
 * checks the arguments, decides the scope for a delegated postmaster,
 * decides whether --from is a user of ours (the checks then see mail that
 * user submitted; otherwise mail arriving from outside), reads the message
 * from io->in (the daemon never opens a path a peer names: govrelayctl
 * reads FILE and sends it as standard input), and prints the answer as an
 * aligned table or, with --json, one object per line.
 *
 * Scope: the tenant named by --tenant, else the tenant of --from's domain
 * when it is ours, else that of the first --to's domain; a postmaster may
 * explain only for a tenant of their subtree (77 otherwise, with the
 * engine's audited refusal), and, when --from is a user of ours, only
 * for a user of their subtree (the checks act as that user). Like every read-only command, a permitted
 * explain writes no audit record of its own, and the daemon records the
 * message nowhere (nothing is queued).
 *
 * Entry points: admin__policy_explain (admin_int.h).
 * OWNERSHIP: everything is freed before returning.
 * THREADS: see engine.c; io->explain waits for the daemon's loop.
 * ERRORS: sysexits.h codes, reported on io->err: 64 usage, 65 a bad
 * address or message, 66 an unknown tenant, 69 no daemon (run from
 * govrelayctl's own process) or the daemon stopping, 75 busy or no
 * answer in time, 77 outside the caller's subtree.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "admin/admin_int.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

/* More recipients than a message may have is refused by the daemon's own limit. */
#define ADMIN_EXPLAIN_RCPT_MAX 1000

struct admin_explain {
	char sender[ADDR_MAX + 1];
	char **rcpts;
	size_t nrcpts;
	char *tenant;        /* the scope decided, or NULL */
	bool sender_is_user;
	struct buf message;
	struct buf answer;
};

static void admin_explain_free(struct admin_explain *x)
{
	for (size_t i = 0; i < x->nrcpts; i++)
		free(x->rcpts[i]);
	free(x->rcpts);
	free(x->tenant);
	buf_free(&x->message);
	buf_free(&x->answer);
}

/* --to a@x,b@y: each canonical, at least one. 0 or an exit code (reported). */
static int admin_explain_rcpts(struct admin *a, struct admin_explain *x, const char *list)
{
	char *copy = xstrdup(list), *save = NULL;
	int rc = 0;

	for (char *t = strtok_r(copy, ",", &save); t != NULL && rc == 0;
	     t = strtok_r(NULL, ",", &save)) {
		char addr[ADDR_MAX + 1];
		size_t n;

		while (*t == ' ' || *t == '\t')
			t++;
		n = strlen(t);
		while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
			t[--n] = '\0';
		if (x->nrcpts == ADMIN_EXPLAIN_RCPT_MAX) {
			admin__err(a, "--to: more than %d recipients", ADMIN_EXPLAIN_RCPT_MAX);
			rc = EX_DATAERR;
			break;
		}
		if ((rc = admin__addr_arg(a, "--to", t, addr, sizeof addr)) != 0)
			break;
		x->rcpts = xreallocarray(x->rcpts, x->nrcpts + 1, sizeof *x->rcpts);
		x->rcpts[x->nrcpts++] = xstrdup(addr);
	}
	free(copy);
	if (rc == 0 && x->nrcpts == 0)
		rc = admin__usage(a, "--to needs at least one address");
	return rc;
}

/* The tenant of addr's domain when it is ours: 0 with *tenant (maybe NULL), or -errno. */
static int admin_explain_domain_tenant(struct queue_txn *txn, const char *addr, char **tenant)
{
	char domain[ADDR_DOMAIN_MAX + 1];
	int rc;

	*tenant = NULL;
	admin__addr_domain(addr, domain, sizeof domain);
	if (domain[0] == '\0')
		return -ENOENT;
	rc = queue_tenant_of_domain(txn, domain, tenant);
	return rc;
}

/*
 * Mail from a user of ours is checked as that user's submission, under
 * their tenant's policy: a postmaster may do that only for a user of
 * their subtree, whatever --tenant says (else --tenant would let them
 * try another agency's limits as one of its users). 0 or an exit code.
 */
static int admin_explain_user_scope(struct admin *a, struct queue_txn *txn, const char *user)
{
	char *tenant = NULL;
	int rc = admin_explain_domain_tenant(txn, user, &tenant);

	if (rc < 0)
		return admin__fail(a, rc, NULL, "cannot read the domain of %s", user);
	rc = admin__need_tenant(a, tenant, user);
	free(tenant);
	return rc;
}

/*
 * The scope (--tenant, else --from's tenant, else the first --to's) and
 * whether --from is a user of ours. 0 or an exit code (reported; 77 is
 * the engine's audited refusal).
 */
static int admin_explain_scope(struct admin *a, struct queue_txn *txn, struct admin_explain *x,
    const char *tenant_arg)
{
	struct queue_user *u = NULL;
	const char *what;
	int rc;

	if (x->sender[0] != '\0') {
		rc = queue_user_get(txn, x->sender, &u);
		queue_user_free(u);
		if (rc < 0 && rc != -ENOENT)
			return admin__fail(a, rc, NULL, "cannot read user %s", x->sender);
		x->sender_is_user = rc == 0;
	}
	if (x->sender_is_user && !a->super &&
	    (rc = admin_explain_user_scope(a, txn, x->sender)) != 0)
		return rc;
	if (tenant_arg != NULL) {
		if ((rc = admin__tenant_arg(a, "--tenant", tenant_arg)) != 0 ||
		    (rc = admin__tenant_exists(a, txn, tenant_arg, "--tenant")) != 0)
			return rc;
		x->tenant = xstrdup(tenant_arg);
		return admin__need_tenant(a, x->tenant, "--tenant");
	}
	what = x->sender;
	rc = x->sender[0] != '\0' ? admin_explain_domain_tenant(txn, x->sender, &x->tenant) :
	    -ENOENT;
	if (rc == -ENOENT) {
		what = x->rcpts[0];
		rc = admin_explain_domain_tenant(txn, x->rcpts[0], &x->tenant);
	}
	if (rc < 0 && rc != -ENOENT)
		return admin__fail(a, rc, NULL, "cannot read the domains");
	if (a->super)
		return 0;
	if (x->tenant == NULL)
		return admin__deny(a, NULL, "neither --from nor the first --to is an address of a "
		    "tenant (give --tenant)");
	return admin__need_tenant(a, x->tenant, what);
}

/* The message from io->in, at most max_message_size. 0 or an exit code (reported). */
static int admin_explain_read(struct admin *a, struct admin_explain *x)
{
	uint64_t max = a->io->cfg->max_message_size;
	char chunk[65536];
	size_t n;

	if (a->io->in == NULL) {
		admin__err(a, "no message to read on standard input");
		return EX_NOINPUT;
	}
	while ((n = fread(chunk, 1, sizeof chunk, a->io->in)) > 0) {
		if ((uint64_t)x->message.len + n > max) {
			admin__err(a, "the message is larger than max_message_size (%llu bytes): "
			    "the relay refuses it for its size alone (552 5.3.4)",
			    (unsigned long long)max);
			return EX_DATAERR;
		}
		buf_append(&x->message, chunk, n);
	}
	if (ferror(a->io->in)) {
		admin__err(a, "cannot read the message: %s", ADMIN_STRERROR(errno));
		return EX_IOERR;
	}
	if (x->message.len == 0) {
		admin__err(a, "the message is empty");
		return EX_DATAERR;
	}
	return 0;
}

/* ------------------------------------------------------------ output */

struct admin_explain_rec {
	const char *f[ADMIN_EXPLAIN_FIELDS]; /* stage subject rule verdict code enh text */
};

/* The next record of the answer at *at; false at its end or on a torn record. */
static bool admin_explain_next(const struct buf *b, size_t *at, struct admin_explain_rec *r)
{
	for (int k = 0; k < ADMIN_EXPLAIN_FIELDS; k++) {
		const char *nul;

		if (*at >= b->len)
			return false;
		nul = memchr(b->data + *at, '\0', b->len - *at);
		if (nul == NULL)
			return false;
		r->f[k] = b->data + *at;
		*at = (size_t)(nul - b->data) + 1;
	}
	return true;
}

static void admin_explain_json(const struct admin *a, const struct admin_explain_rec *r)
{
	struct admin_json j;

	admin__json_begin(&j);
	admin__json_kstr(&j, "stage", r->f[0]);
	if (strcmp(r->f[0], "rcpt") == 0)
		admin__json_kstr(&j, "rcpt", r->f[1]);
	admin__json_kstr(&j, "rule", r->f[2]);
	admin__json_kstr(&j, "verdict", r->f[3]);
	admin__json_kint(&j, "code", strtol(r->f[4], NULL, 10));
	admin__json_kstr(&j, "enh", r->f[5]);
	admin__json_kstr(&j, "text", r->f[6]);
	admin__json_end(a, &j);
}

/* The stage column: "rcpt a@b" names the recipient. */
static void admin_explain_stage(struct buf *b, const struct admin_explain_rec *r)
{
	buf_append_str(b, r->f[0]);
	if (r->f[1][0] != '\0') {
		buf_append_char(b, ' ');
		buf_append_str(b, r->f[1]);
	}
}

/* Text, one line per line of a multi-line verdict, each indented to col. */
static void admin_explain_text(struct buf *b, const char *text, size_t col)
{
	const char *p = text;

	for (;;) {
		const char *nl = strchr(p, '\n');
		char *line = nl != NULL ? xstrndup(p, (size_t)(nl - p)) : xstrdup(p);

		admin__text(b, line);
		free(line);
		buf_append_char(b, '\n');
		if (nl == NULL)
			break;
		p = nl + 1;
		/* A folded header field's continuation: our indentation replaces its tab. */
		if (*p == '\t')
			p++;
		for (size_t i = 0; i < col; i++)
			buf_append_char(b, ' ');
	}
}

static void admin_explain_table(const struct admin *a, const struct buf *ans)
{
	static const char *const head[] = { "STAGE", "RULE", "VERDICT", "CODE", "ENH" };
	size_t w[5], at = 0;
	struct admin_explain_rec r;
	struct buf b, cell;
	bool extra = false;

	for (int k = 0; k < 5; k++)
		w[k] = strlen(head[k]);
	buf_init(&b);
	buf_init(&cell);
	while (admin_explain_next(ans, &at, &r)) {
		const char *v[5] = { NULL, r.f[2], r.f[3], r.f[4], r.f[5] };

		if (strcmp(r.f[0], "note") == 0 || strcmp(r.f[0], "header") == 0)
			continue;
		buf_reset(&cell);
		admin_explain_stage(&cell, &r);
		v[0] = buf_cstr(&cell);
		for (int k = 0; k < 5; k++) {
			char *t = admin__text_dup(v[k]);
			size_t n = admin__width(t);

			w[k] = n > w[k] ? n : w[k];
			free(t);
		}
	}
	for (int k = 0; k < 5; k++)
		admin__cell(&b, head[k], w[k], 'l', false);
	buf_append_str(&b, "TEXT\n");
	at = 0;
	while (admin_explain_next(ans, &at, &r)) {
		bool rule_row = strcmp(r.f[0], "note") != 0 && strcmp(r.f[0], "header") != 0;
		size_t col = 0;

		if (!rule_row) {
			extra = true;
			continue;
		}
		buf_reset(&cell);
		admin_explain_stage(&cell, &r);
		admin__cell(&b, buf_cstr(&cell), w[0], 'l', false);
		admin__cell(&b, r.f[2], w[1], 'l', false);
		admin__cell(&b, r.f[3], w[2], 'l', false);
		admin__cell(&b, strcmp(r.f[4], "0") == 0 ? "" : r.f[4], w[3], 'l', false);
		admin__cell(&b, r.f[5], w[4], 'l', false);
		for (int k = 0; k < 5; k++)
			col += w[k] + 2;
		admin_explain_text(&b, r.f[6], col);
	}
	if (extra) {
		at = 0;
		while (admin_explain_next(ans, &at, &r)) {
			if (strcmp(r.f[0], "note") == 0)
				buf_append_str(&b, "note: ");
			else if (strcmp(r.f[0], "header") == 0)
				buf_append_str(&b, "header: ");
			else
				continue;
			admin_explain_text(&b, r.f[6], strlen("header: "));
		}
	}
	admin__out_buf(a, &b);
	buf_free(&b);
	buf_free(&cell);
}

static void admin_explain_print(const struct admin *a, const struct admin_explain *x)
{
	size_t at = 0;
	struct admin_explain_rec r;

	if (!a->json) {
		char *shown = admin__text_dup(x->sender[0] != '\0' ? x->sender : "<>");

		admin__out(a, "# as %s from <%s>%s%s\n", x->sender_is_user ?
		    "submitted by our user" : "arriving from outside (mx, client 192.0.2.1)",
		    shown, x->tenant != NULL ? ", tenant " : "",
		    x->tenant != NULL ? x->tenant : "");
		free(shown);
		admin_explain_table(a, &x->answer);
		return;
	}
	while (admin_explain_next(&x->answer, &at, &r))
		admin_explain_json(a, &r);
}

/* ------------------------------------------------------------- entry */

static int admin_explain_ask(struct admin *a, struct admin_explain *x)
{
	struct admin_explain_req req;
	int rc;

	memset(&req, 0, sizeof req);
	req.sender = x->sender;
	req.rcpts = (const char *const *)x->rcpts;
	req.nrcpts = x->nrcpts;
	req.auth_user = x->sender_is_user ? x->sender : NULL;
	req.message = x->message.data;
	req.len = x->message.len;
	req.by = a->user;
	rc = a->io->explain(a->io->explain_arg, &req, &x->answer);
	switch (rc) {
	case 0:
		return 0;
	case -EBUSY:
		admin__err(a, "busy: another policy explain is running; try again");
		return EX_TEMPFAIL;
	case -ETIMEDOUT:
		admin__err(a, "the checks did not finish in time; try again");
		return EX_TEMPFAIL;
	case -ESHUTDOWN:
		admin__err(a, "govrelayd is stopping");
		return EX_UNAVAILABLE;
	default:
		admin__err(a, "govrelayd could not run the checks: %s", ADMIN_STRERROR(-rc));
		return EX_SOFTWARE;
	}
}

int admin__policy_explain(struct admin *a, const struct admin_args *args)
{
	const char *file = admin__arg(args, "file"), *from = admin__arg(args, "--from");
	struct admin_explain x;
	struct queue_txn *txn;
	int rc;

	if (a->io->explain == NULL) {
		admin__err(a, "policy explain needs the running daemon: it runs the checks on "
		    "govrelayd's own policy engine (start govrelayd, then ask again)");
		return EX_UNAVAILABLE;
	}
	if (strcmp(file, "-") != 0)
		return admin__usage(a, "govrelayd reads the message from standard input only: give "
		    "- (govrelayctl sends a named file that way by itself)");
	memset(&x, 0, sizeof x);
	buf_init(&x.message);
	buf_init(&x.answer);
	rc = 0;
	if (strcmp(from, "<>") != 0 && from[0] != '\0')
		rc = admin__addr_arg(a, "--from", from, x.sender, sizeof x.sender);
	if (rc == 0)
		rc = admin_explain_rcpts(a, &x, admin__arg(args, "--to"));
	if (rc == 0)
		rc = admin__txn(a, &txn);
	if (rc == 0) {
		rc = admin_explain_scope(a, txn, &x, admin__arg(args, "--tenant"));
		queue_txn_abort(txn);
	}
	if (rc == 0)
		rc = admin_explain_read(a, &x);
	if (rc == 0)
		rc = admin_explain_ask(a, &x);
	if (rc == 0)
		admin_explain_print(a, &x);
	admin_explain_free(&x);
	return rc;
}
