/*
 * admin/queue: the queue verbs (list, show, hold, release, delete,
 * retry, flush).
 *
 * Queue changes take effect at once in the running daemon:
 *   - run by govrelayctl for root or the store's owner (local), they go
 *     to the daemon over control_socket as one line (common/ctlproto.h);
 *     when no daemon answers there (no socket file, or a stale one left by
 *     a crash: ENOENT, ECONNREFUSED) the CLI applies the very same change
 *     to the store itself through queue_admin, which the daemon uses too,
 *     so the audit record is the same but for via=store. Any other failure
 *     to connect is reported, never worked around: a permission problem
 *     must not open a second way in.
 *   - run inside govrelayd for a delegated operator (io->remote), they are
 *     applied through the daemon's writer (store.c, admin__write), via=
 *     daemon, and then io->queue_changed kicks the scheduler.
 * A postmaster sees a message when a recipient's domain belongs to their
 * subtree, or when its sender authenticated as one of their users (the
 * envelope sender alone proves nothing); they are shown only their
 * recipients, and may hold, release, retry or delete only a message all
 * of whose recipients are theirs. Their flush is a retry of each of
 * those (one audit record per message).
 *
 * Entry points: admin__queue_list, admin__queue_show, admin__queue_change,
 * admin__msg_in_scope (admin_int.h).
 * OWNERSHIP: messages are deep-copied out of the read transaction before
 * printing and freed before returning; `queue list` holds one page of
 * them at a time, each read in its own transaction (see "list" below).
 * THREADS: see engine.c. ERRORS: sysexits.h codes (engine.c).
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
#include "common/ctlclient.h"
#include "common/ctlproto.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/queue_admin.h"
#include "queue/tenancy.h"

#define ADMIN_CTL_TIMEOUT_S 60



/*
 * Message scope (doc/THREAT-MODEL.md). The envelope sender is whatever
 * the client typed, so it proves nothing: a message is a postmaster's by
 * its recipients, and by its sender only when the sender authenticated
 * (auth_user, recorded at receive) as a user of their subtree, in which
 * case every recipient is theirs (their user's mail). a->domains must be
 * loaded.
 */
static bool admin_msg_sender_ours(const struct admin *a, const struct queue_msg *m)
{
	char dom[ADDR_DOMAIN_MAX + 1];
	const struct admin_domain_ent *e;

	if (m->auth_user == NULL || m->auth_user[0] == '\0')
		return false;
	admin__addr_domain(m->auth_user, dom, sizeof dom);
	return dom[0] != '\0' && (e = admin__domain_find(a, dom)) != NULL && e->in_scope;
}

/* Whether recipient addr is in scope on its own (its domain is ours). */
static bool admin_rcpt_ours(const struct admin *a, const char *addr, const char **tenant)
{
	char dom[ADDR_DOMAIN_MAX + 1];
	const struct admin_domain_ent *e;

	admin__addr_domain(addr, dom, sizeof dom);
	if (dom[0] == '\0' || (e = admin__domain_find(a, dom)) == NULL)
		return false;
	if (!e->in_scope && tenant != NULL && *tenant == NULL)
		*tenant = e->tenant;
	return e->in_scope;
}

/*
 * Whether the caller may see message m: super always; a postmaster when
 * a recipient's domain is in their subtree, or the sender authenticated
 * as one of their users. *tenant (optional) gets the tenant of the first
 * of our domains among the recipients, for a refusal's record.
 */
bool admin__msg_in_scope(const struct admin *a, const struct queue_msg *m,
    const char **tenant)
{
	if (tenant != NULL)
		*tenant = NULL;
	if (a->super || admin_msg_sender_ours(a, m))
		return true;
	for (size_t i = 0; i < m->nrcpts; i++)
		if (admin_rcpt_ours(a, m->rcpts[i].addr, tenant))
			return true;
	return false;
}

/* Whether every recipient of m is in the caller's scope (a change may touch it whole). */
bool admin__msg_all_in_scope(const struct admin *a, const struct queue_msg *m)
{
	if (a->super || admin_msg_sender_ours(a, m))
		return true;
	for (size_t i = 0; i < m->nrcpts; i++)
		if (!admin_rcpt_ours(a, m->rcpts[i].addr, NULL))
			return false;
	return true;
}

/*
 * What a postmaster is shown of m (a copy of theirs): only the
 * recipients in scope; other tenants' recipients, their states and
 * replies are not theirs to read.
 */
void admin__msg_narrow(const struct admin *a, struct queue_msg *m)
{
	size_t k = 0;

	if (admin__msg_all_in_scope(a, m))
		return;
	for (size_t i = 0; i < m->nrcpts; i++) {
		struct queue_rcpt *r = &m->rcpts[i];

		if (admin_rcpt_ours(a, r->addr, NULL)) {
			m->rcpts[k++] = *r;
			continue;
		}
		free(r->addr);
		free(r->orcpt);
		free(r->last_reply);
	}
	m->nrcpts = k;
}

/* ------------------------------------------------------------- list */

/*
 * The listing is read in pages of at most ADMIN_QUEUE_PAGE messages,
 * each page in a read transaction of its own that ends before anything
 * is printed, resuming after the last id seen: a slow reader (a pipe, the
 * control socket) holds no snapshot of the store, and memory stays at
 * one page. The text form aligns its columns over the whole listing, so
 * it reads the queue twice: once for the widths, once to print.
 */
#define ADMIN_QUEUE_PAGE 256

struct admin_qlist {
	const struct admin *a;
	struct queue_msg *v[ADMIN_QUEUE_PAGE];
	size_t n;
	uint64_t next;     /* the id to resume at */
	bool more;         /* the page filled up: there may be more */
};

/* A deep copy through the store's own encoding: nothing can be missed. */
static int admin_queue_collect(void *arg, const struct queue_msg *m)
{
	struct admin_qlist *l = arg;
	struct buf b;
	int rc;

	l->next = m->id + 1;
	if (!admin__msg_in_scope(l->a, m, NULL))
		return 0;
	buf_init(&b);
	queue_msg_encode(m, &b);
	rc = queue_msg_decode(b.data, b.len, &l->v[l->n]);
	buf_free(&b);
	if (rc < 0)
		return rc;
	admin__msg_narrow(l->a, l->v[l->n]);
	if (++l->n == ADMIN_QUEUE_PAGE) {
		l->more = true;
		return 1;
	}
	return 0;
}

static void admin_qlist_clear(struct admin_qlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		queue_msg_free(l->v[i]);
	l->n = 0;
}

/*
 * The next page of in-scope messages into l, in a transaction of its
 * own. 0 (l->more says whether to go on) or an exit code (reported).
 */
static int admin_qlist_page(struct admin *a, struct admin_qlist *l)
{
	struct queue_txn *txn;
	int rc;

	admin_qlist_clear(l);
	l->more = false;
	if ((rc = admin__txn(a, &txn)) != 0)
		return rc;
	/* The scope is the same for every page: loaded with the first. */
	if (!a->super && a->domains.v == NULL)
		rc = admin__domains_load(a, txn);
	if (rc == 0) {
		rc = queue_msg_walk_from(txn, l->next, admin_queue_collect, l);
		if (rc < 0) {
			admin__err(a, "cannot read the queue: %s", queue_strerror(rc));
			rc = admin__store_exit(rc);
		} else {
			rc = 0;
		}
	}
	queue_txn_abort(txn);
	return rc;
}

static void admin_queue_list_json(const struct admin *a, const struct queue_msg *m)
{
	struct admin_json j;
	char id[QUEUE_ID_TEXT_LEN + 1], t[ADMIN_TIME_LEN];
	size_t n[3] = { 0, 0, 0 };
	int64_t next = queue_msg_next_attempt(m);

	for (size_t i = 0; i < m->nrcpts; i++)
		if ((unsigned)m->rcpts[i].state < 3)
			n[m->rcpts[i].state]++;
	queue_id_format(m->id, id);
	admin__json_begin(&j);
	admin__json_kstr(&j, "id", id);
	admin__json_kstr(&j, "arrival", admin__time(m->arrival, true, t));
	admin__json_kuint(&j, "size", m->size);
	admin__json_kstr(&j, "sender", m->sender != NULL ? m->sender : "");
	admin__json_kbool(&j, "held", m->held);
	admin__json_kstr(&j, "next_attempt", admin__time(next, next >= 0, t));
	admin__json_kuint(&j, "pending", n[QUEUE_RCPT_PENDING]);
	admin__json_kuint(&j, "delivered", n[QUEUE_RCPT_DELIVERED]);
	admin__json_kuint(&j, "failed", n[QUEUE_RCPT_FAILED]);
	admin__json_open(&j, "recipients", '[');
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];

		admin__json_open(&j, NULL, '{');
		admin__json_kstr(&j, "address", r->addr);
		admin__json_kstr(&j, "state", queue_rcpt_state_name(r->state));
		admin__json_kuint(&j, "attempts", r->attempts);
		admin__json_kstr(&j, "next_attempt", admin__time(r->next_attempt,
		    r->state == QUEUE_RCPT_PENDING, t));
		if (r->last_code != 0)
			admin__json_kint(&j, "last_code", r->last_code);
		else
			admin__json_kstr(&j, "last_code", NULL);
		admin__json_kstr(&j, "last_reply", r->last_reply);
		admin__json_close(&j, '}');
	}
	admin__json_close(&j, ']');
	admin__json_end(a, &j);
}

/* Column widths of the text form: ID, ARRIVAL, SIZE, SENDER, STATE; recipients. */
struct admin_qwidths {
	size_t w[5], wr, n;
};

static void admin_qwidths_init(struct admin_qwidths *q)
{
	static const char *const head[] = { "ID", "ARRIVAL", "SIZE", "SENDER", "STATE" };

	memset(q, 0, sizeof *q);
	for (size_t c = 0; c < 5; c++)
		q->w[c] = admin__width(head[c]);
	q->w[0] = q->w[0] < QUEUE_ID_TEXT_LEN ? QUEUE_ID_TEXT_LEN : q->w[0];
	q->w[1] = q->w[1] < 24 ? 24 : q->w[1];
	q->w[4] = q->w[4] < 6 ? 6 : q->w[4];
}

static void admin_qwidths_add(struct admin_qwidths *q, const struct queue_msg *m)
{
	char size[24], *sender = admin__text_dup(m->sender != NULL && m->sender[0] != '\0' ?
	    m->sender : "<>");

	snprintf(size, sizeof size, "%" PRIu64, m->size);
	if (admin__width(size) > q->w[2])
		q->w[2] = admin__width(size);
	if (admin__width(sender) > q->w[3])
		q->w[3] = admin__width(sender);
	free(sender);
	for (size_t k = 0; k < m->nrcpts; k++) {
		char *addr = admin__text_dup(m->rcpts[k].addr);

		if (admin__width(addr) > q->wr)
			q->wr = admin__width(addr);
		free(addr);
	}
	q->n++;
}

/*
 * Text: one line per message (id, arrival, size, sender, held or
 * queued), then one indented line per recipient (address, state,
 * attempts, next attempt, last error). Every stored string is made safe
 * for a terminal.
 */
static void admin_queue_list_text(struct buf *b, const struct admin_qwidths *q,
    const struct queue_msg *m)
{
	char id[QUEUE_ID_TEXT_LEN + 1], arr[ADMIN_TIME_LEN], size[24];
	char *sender = admin__text_dup(m->sender != NULL && m->sender[0] != '\0' ?
	    m->sender : "<>");

	queue_id_format(m->id, id);
	admin__time(m->arrival, true, arr);
	snprintf(size, sizeof size, "%" PRIu64, m->size);
	admin__cell(b, id, q->w[0], 'l', false);
	admin__cell(b, arr, q->w[1], 'l', false);
	admin__cell(b, size, q->w[2], 'r', false);
	admin__cell(b, sender, q->w[3], 'l', false);
	admin__cell(b, m->held ? "held" : "queued", q->w[4], 'l', true);
	buf_append_char(b, '\n');
	free(sender);
	for (size_t k = 0; k < m->nrcpts; k++) {
		const struct queue_rcpt *r = &m->rcpts[k];
		char nxt[ADMIN_TIME_LEN], *addr = admin__text_dup(r->addr);
		const char *next = admin__time(r->next_attempt,
		    r->state == QUEUE_RCPT_PENDING, nxt);

		buf_append_str(b, "    ");
		admin__cell(b, addr, q->wr, 'l', false);
		admin__cell(b, queue_rcpt_state_name(r->state), 9, 'l', false);
		buf_printf(b, "attempts %-3" PRIu32 "  next %-24s", r->attempts,
		    next != NULL ? next : "-");
		if (r->state != QUEUE_RCPT_DELIVERED) {
			char *last = admin__text_dup(r->last_reply);

			buf_printf(b, "  last error: %s", last);
			free(last);
		}
		buf_append_char(b, '\n');
		free(addr);
	}
}

/* The text form's first pass: the widths over every in-scope message. */
static int admin_queue_list_widths(struct admin *a, struct admin_qlist *l,
    struct admin_qwidths *q)
{
	int rc;

	admin_qwidths_init(q);
	l->next = 0;
	do {
		if ((rc = admin_qlist_page(a, l)) != 0)
			return rc;
		for (size_t i = 0; i < l->n; i++)
			admin_qwidths_add(q, l->v[i]);
	} while (l->more);
	return 0;
}

/* Prints one page; false when nobody reads the output any more. */
static bool admin_queue_list_print(struct admin *a, const struct admin_qlist *l,
    const struct admin_qwidths *q)
{
	struct buf b;

	if (a->json) {
		for (size_t i = 0; i < l->n; i++)
			admin_queue_list_json(a, l->v[i]);
	} else {
		buf_init(&b);
		for (size_t i = 0; i < l->n; i++)
			admin_queue_list_text(&b, q, l->v[i]);
		admin__out_buf(a, &b);
		buf_free(&b);
	}
	return fflush(a->io->out) == 0 && !ferror(a->io->out);
}

int admin__queue_list(struct admin *a, const struct admin_args *args)
{
	struct admin_qlist *l = xcalloc(1, sizeof *l);
	struct admin_qwidths q;
	int rc = 0;

	(void)args;
	l->a = a;
	admin_qwidths_init(&q);
	if (a->store != NULL && !a->json && (rc = admin_queue_list_widths(a, l, &q)) != 0)
		goto out;
	if (!a->json) {
		static const char *const head[] = { "ID", "ARRIVAL", "SIZE", "SENDER", "STATE" };
		struct buf b;

		if (q.n == 0) {
			admin__out(a, "queue is empty\n");
			goto out;
		}
		buf_init(&b);
		for (size_t c = 0; c < 5; c++)
			admin__cell(&b, head[c], q.w[c], c == 2 ? 'r' : 'l', c == 4);
		buf_append_char(&b, '\n');
		admin__out_buf(a, &b);
		buf_free(&b);
	}
	l->next = 0;
	l->more = a->store != NULL;
	/* Output errors are admin_run's to report: a reader gone ends the walk. */
	while (l->more) {
		if ((rc = admin_qlist_page(a, l)) != 0 || !admin_queue_list_print(a, l, &q))
			break;
	}
out:
	admin_qlist_clear(l);
	free(l);
	return rc;
}

/* ------------------------------------------------------------- show */

static const char *admin_ret_name(enum queue_ret r)
{
	switch (r) {
	case QUEUE_RET_FULL: return "full";
	case QUEUE_RET_HDRS: return "hdrs";
	default: return NULL;
	}
}

static const char *admin_body_name(enum queue_body_type b)
{
	switch (b) {
	case QUEUE_BODY_7BIT: return "7bit";
	case QUEUE_BODY_8BITMIME: return "8bitmime";
	case QUEUE_BODY_BINARYMIME: return "binarymime";
	default: return NULL;
	}
}

/* RFC 3461 NOTIFY as text: "never", "success,failure,delay", or NULL. */
static const char *admin_notify_text(unsigned notify, char *out, size_t outlen)
{
	static const struct {
		unsigned bit;
		const char *name;
	} bits[] = {
		{ QUEUE_NOTIFY_NEVER, "never" },
		{ QUEUE_NOTIFY_SUCCESS, "success" },
		{ QUEUE_NOTIFY_FAILURE, "failure" },
		{ QUEUE_NOTIFY_DELAY, "delay" },
	};
	size_t o = 0;

	out[0] = '\0';
	if (notify == 0)
		return NULL;
	for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) {
		if (!(notify & bits[i].bit))
			continue;
		o += (size_t)snprintf(out + o, outlen - o, "%s%s", o ? "," : "", bits[i].name);
		if (o >= outlen)
			break;
	}
	return out;
}

static void admin_msg_json(const struct admin *a, const struct queue_msg *m)
{
	struct admin_json j;
	char id[QUEUE_ID_TEXT_LEN + 1], t1[ADMIN_TIME_LEN], nt[48];
	int64_t next = queue_msg_next_attempt(m);

	queue_id_format(m->id, id);
	admin__json_begin(&j);
	admin__json_kstr(&j, "id", id);
	admin__json_kstr(&j, "arrival", admin__time(m->arrival, true, t1));
	admin__json_kstr(&j, "sender", m->sender);
	admin__json_kstr(&j, "envid", m->envid);
	admin__json_kstr(&j, "ret", admin_ret_name(m->ret));
	admin__json_kstr(&j, "body", admin_body_name(m->body_type));
	admin__json_kbool(&j, "smtputf8", m->smtputf8);
	admin__json_kbool(&j, "held", m->held);
	admin__json_kstr(&j, "hold_reason", m->hold_reason);
	admin__json_kuint(&j, "declared_size", m->declared_size);
	admin__json_kuint(&j, "size", m->size);
	admin__json_kuint(&j, "chunks", m->nchunks);
	admin__json_kstr(&j, "client_addr", m->client_addr);
	admin__json_kstr(&j, "helo", m->helo);
	admin__json_kstr(&j, "listener", m->listener);
	admin__json_kstr(&j, "tls", m->tls);
	admin__json_kstr(&j, "auth_user", m->auth_user);
	admin__json_kstr(&j, "next_attempt", admin__time(next, next >= 0, t1));
	admin__json_open(&j, "recipients", '[');
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		bool pending = r->state == QUEUE_RCPT_PENDING;

		admin__json_open(&j, NULL, '{');
		admin__json_kstr(&j, "address", r->addr);
		admin__json_kstr(&j, "orcpt", r->orcpt);
		admin__json_kstr(&j, "notify", admin_notify_text(r->notify, nt, sizeof nt));
		admin__json_kstr(&j, "state", queue_rcpt_state_name(r->state));
		admin__json_kuint(&j, "attempts", r->attempts);
		admin__json_kstr(&j, "next_attempt", admin__time(r->next_attempt, pending, t1));
		admin__json_kstr(&j, "done_at", admin__time(r->done_at, r->done_at != 0, t1));
		if (r->last_code != 0)
			admin__json_kint(&j, "last_code", r->last_code);
		else
			admin__json_kstr(&j, "last_code", NULL);
		admin__json_kstr(&j, "last_reply", r->last_reply);
		admin__json_close(&j, '}');
	}
	admin__json_close(&j, ']');
	admin__json_end(a, &j);
}

static void admin_msg_text(const struct admin *a, const struct queue_msg *m)
{
	char id[QUEUE_ID_TEXT_LEN + 1], t[ADMIN_TIME_LEN], n[48];
	int64_t next = queue_msg_next_attempt(m);

	queue_id_format(m->id, id);
	admin__kv(a, "", "id", id);
	admin__kv(a, "", "arrival", admin__time(m->arrival, true, t));
	admin__kv(a, "", "sender", m->sender != NULL && m->sender[0] ? m->sender : "<>");
	admin__kv(a, "", "envid", m->envid);
	admin__kv(a, "", "ret", admin_ret_name(m->ret));
	admin__kv(a, "", "body", admin_body_name(m->body_type));
	admin__kv(a, "", "smtputf8", m->smtputf8 ? "yes" : "no");
	admin__kv(a, "", "held", m->held ? "yes" : "no");
	admin__kv(a, "", "hold_reason", m->hold_reason);
	snprintf(n, sizeof n, "%" PRIu64, m->declared_size);
	admin__kv(a, "", "declared_size", m->declared_size ? n : NULL);
	snprintf(n, sizeof n, "%" PRIu64, m->size);
	admin__kv(a, "", "size", n);
	snprintf(n, sizeof n, "%" PRIu32, m->nchunks);
	admin__kv(a, "", "chunks", n);
	admin__kv(a, "", "client_addr", m->client_addr);
	admin__kv(a, "", "helo", m->helo);
	admin__kv(a, "", "listener", m->listener);
	admin__kv(a, "", "tls", m->tls);
	admin__kv(a, "", "auth_user", m->auth_user);
	admin__kv(a, "", "next_attempt", admin__time(next, next >= 0, t));
	snprintf(n, sizeof n, "%zu", m->nrcpts);
	admin__kv(a, "", "recipients", n);
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		bool pending = r->state == QUEUE_RCPT_PENDING;

		admin__kv(a, "", "recipient", r->addr);
		admin__kv(a, "  ", "state", queue_rcpt_state_name(r->state));
		admin__kv(a, "  ", "orcpt", r->orcpt);
		admin__kv(a, "  ", "notify", admin_notify_text(r->notify, n, sizeof n));
		snprintf(n, sizeof n, "%" PRIu32, r->attempts);
		admin__kv(a, "  ", "attempts", n);
		admin__kv(a, "  ", "next_attempt", admin__time(r->next_attempt, pending, t));
		admin__kv(a, "  ", "done_at", admin__time(r->done_at, r->done_at != 0, t));
		snprintf(n, sizeof n, "%d", r->last_code);
		admin__kv(a, "  ", "last_code", r->last_code != 0 ? n : NULL);
		admin__kv(a, "  ", "last_reply", r->last_reply);
	}
}

int admin__queue_id_arg(struct admin *a, const char *arg, uint64_t *id)
{
	char *shown;

	if (queue_id_parse(arg, id) == 0)
		return 0;
	shown = admin__text_dup(arg);
	admin__err(a, "bad queue id '%s': expected %d hex digits", shown, QUEUE_ID_TEXT_LEN);
	free(shown);
	return EX_DATAERR;
}

int admin__queue_show(struct admin *a, const struct admin_args *args)
{
	struct queue_msg *m = NULL;
	struct queue_txn *txn;
	char text[QUEUE_ID_TEXT_LEN + 1];
	const char *tenant = NULL;
	uint64_t id;
	int rc;

	if ((rc = admin__queue_id_arg(a, admin__arg(args, "id"), &id)) != 0)
		return rc;
	queue_id_format(id, text);
	rc = -ENOENT;
	if (a->store != NULL) {
		if ((rc = admin__txn(a, &txn)) != 0)
			return rc;
		if (!a->super && (rc = admin__domains_load(a, txn)) != 0) {
			queue_txn_abort(txn);
			return rc;
		}
		rc = queue_msg_get(txn, id, &m);
		queue_txn_abort(txn);
	}
	if (rc == -ENOENT) {
		admin__err(a, "no such message %s", text);
		return EX_NOINPUT;
	}
	if (rc < 0) {
		admin__err(a, "cannot read message %s: %s", text, queue_strerror(rc));
		return admin__store_exit(rc);
	}
	if (!admin__msg_in_scope(a, m, &tenant)) {
		rc = admin__deny(a, tenant, "message %s has no recipient of tenant %s and was "
		    "not sent by one of its users", text, a->op_tenant);
		queue_msg_free(m);
		return rc;
	}
	admin__msg_narrow(a, m);
	if (a->json)
		admin_msg_json(a, m);
	else
		admin_msg_text(a, m);
	queue_msg_free(m);
	return EX_OK;
}

/* ---------------------------------------------------------- changes */

/* One queue change: what to do, and what came of it. */
struct admin_qchange {
	enum queue_admin_verb verb;
	uint64_t id;
	char qid[QUEUE_ID_TEXT_LEN + 1]; /* "" for flush */
	int code;                        /* 0 or a sysexits code */
	bool changed;
	char text[CTLPROTO_LINE_MAX];
};

struct admin_flush_ids {
	const struct admin *a;
	int64_t now;
	uint64_t *ids;
	size_t n, cap, held;
};

/* A postmaster's flush: their messages that wait, not held (as queue_admin_flush). */
static int admin_flush_collect(void *arg, const struct queue_msg *m)
{
	struct admin_flush_ids *fl = arg;
	bool later = false;

	if (!admin__msg_all_in_scope(fl->a, m))
		return 0;
	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state == QUEUE_RCPT_PENDING && m->rcpts[i].next_attempt > fl->now)
			later = true;
	if (!later)
		return 0;
	if (m->held) {
		fl->held++;
		return 0;
	}
	if (fl->n == fl->cap) {
		fl->cap = fl->cap ? fl->cap * 2 : 64;
		fl->ids = xreallocarray(fl->ids, fl->cap, sizeof *fl->ids);
	}
	fl->ids[fl->n++] = m->id;
	return 0;
}

/* One queue change as a write: the change, and for a postmaster's flush the ids. */
struct admin_qchange_op {
	struct admin_qchange *q;
	const char *via;
	int64_t now;
	struct admin_flush_ids fl;
	struct queue_admin_result res;
};

/* A postmaster's flush: a retry of each message collected beforehand. */
static int admin_qchange_flush(struct admin *a, struct queue_txn *txn,
    struct admin_qchange_op *op)
{
	size_t done = 0;
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < op->fl.n; i++) {
		struct queue_admin_result one;

		rc = queue_admin_apply(txn, QUEUE_ADMIN_RETRY, op->fl.ids[i], op->now, a->user,
		    op->via, &one);
		if (rc == 0 && one.changed)
			done++;
	}
	op->res.changed = done > 0;
	snprintf(op->res.text, sizeof op->res.text, "%zu messages due now (%zu held left alone)",
	    done, op->fl.held);
	return rc;
}

static int admin_qchange_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	struct admin_qchange_op *op = arg;
	struct admin_qchange *q = op->q;
	int rc;

	memset(&op->res, 0, sizeof op->res);
	if (a->super) {
		rc = queue_admin_apply(txn, q->verb, q->id, op->now, a->user, op->via, &op->res);
	} else if (q->verb == QUEUE_ADMIN_FLUSH) {
		rc = admin_qchange_flush(a, txn, op);
	} else {
		struct queue_msg *m = NULL;
		const char *tenant = NULL;

		rc = queue_msg_get(txn, q->id, &m);
		if (rc == 0 && !admin__msg_in_scope(a, m, &tenant)) {
			rc = admin__deny(a, tenant, "message %s has no recipient of tenant %s and "
			    "was not sent by one of its users", q->qid, a->op_tenant);
			queue_msg_free(m);
			return rc;
		}
		/*
		 * hold, release, retry and delete act on the whole message: with
		 * another tenant's recipients on it, that is not the caller's to
		 * decide (refused, not narrowed: doc/THREAT-MODEL.md).
		 */
		if (rc == 0 && !admin__msg_all_in_scope(a, m)) {
			rc = admin__deny(a, a->op_tenant, "message %s also has recipients outside "
			    "tenant %s; only root or the daemon's user may %s it", q->qid,
			    a->op_tenant, queue_admin_verb_name(q->verb));
			queue_msg_free(m);
			return rc;
		}
		queue_msg_free(m);
		if (rc == 0 || rc == -ENOENT)
			rc = queue_admin_apply(txn, q->verb, q->id, op->now, a->user, op->via,
			    &op->res);
	}
	if (rc < 0) {
		admin__err(a, "cannot update the queue: %s", queue_strerror(rc));
		return admin__store_exit(rc);
	}
	return 0;
}

/*
 * What a postmaster's change needs before the write: the domains (for
 * the scope), and for a flush the ids of their messages that wait, read
 * in a read transaction so the writer does not walk the queue.
 */
static int admin_qchange_prepare(struct admin *a, struct admin_qchange_op *op)
{
	struct queue_txn *txn;
	int rc;

	if (a->super)
		return 0;
	if ((rc = admin__txn(a, &txn)) != 0)
		return rc;
	rc = admin__domains_load(a, txn);
	if (rc == 0 && op->q->verb == QUEUE_ADMIN_FLUSH) {
		rc = queue_msg_walk(txn, admin_flush_collect, &op->fl);
		if (rc < 0) {
			admin__err(a, "cannot read the queue: %s", queue_strerror(rc));
			rc = admin__store_exit(rc);
		}
	}
	queue_txn_abort(txn);
	return rc;
}

/*
 * The change as one write of ours: inside the daemon for a delegated
 * operator (via=daemon, through the daemon's writer), or from the CLI
 * when no daemon answers (via=store). Scope checks happen in the write.
 */
static int admin_qchange_store(struct admin *a, struct admin_qchange *q, const char *via)
{
	struct admin_qchange_op op;
	int rc;

	memset(&op, 0, sizeof op);
	op.q = q;
	op.via = via;
	op.now = time_now_ms();
	op.fl.a = a;
	op.fl.now = op.now;
	rc = admin_qchange_prepare(a, &op);
	if (rc == 0)
		rc = admin__write(a, admin_qchange_apply, &op, "the queue change");
	free(op.fl.ids);
	if (rc != 0)
		return rc;
	q->code = op.res.code;
	q->changed = op.res.changed;
	str_copy(q->text, op.res.text, sizeof q->text);
	return 0;
}

/*
 * Connects to the daemon: 0 with *out, 1 when no daemon answers (the
 * store path applies), or an exit code (reported).
 */
static int admin_ctl_connect(struct admin *a, struct ctlclient **out)
{
	const char *path = a->io->cfg->control_socket;
	int rc = ctlclient_connect(path, ADMIN_CTL_TIMEOUT_S, out);

	if (rc == 0)
		return 0;
	if (rc == -ENOENT || rc == -ECONNREFUSED)
		return 1;
	if (rc == -ENAMETOOLONG) {
		admin__err(a, "control_socket is not a usable unix socket path");
		return EX_CONFIG;
	}
	admin__err(a, "cannot reach the daemon at %s: %s", path, ADMIN_STRERROR(-rc));
	if (rc == -EACCES || rc == -EPERM)
		return EX_NOPERM;
	return rc == -EAGAIN || rc == -ETIMEDOUT ? EX_TEMPFAIL : EX_UNAVAILABLE;
}

/* Sends one request and reads the one reply line into q (code, text). */
static int admin_ctl_ask(struct admin *a, struct ctlclient *cc, struct admin_qchange *q)
{
	char req[64], line[CTLPROTO_LINE_MAX + 1];
	const char *text;
	int rc;

	/* A verb and a queue id always fit. */
	rc = ctlproto_request_format(req, sizeof req, queue_admin_verb_name(q->verb), q->qid);
	if (rc < 0)
		panic("govrelayctl: request does not fit: %s", queue_admin_verb_name(q->verb));
	rc = ctlclient_send(cc, req, (size_t)rc);
	/*
	 * The daemon may answer at accept (busy, permission denied) and
	 * close before reading: its reply is still there to read.
	 */
	if (rc < 0 && rc != -EPIPE && rc != -ECONNRESET) {
		admin__err(a, "cannot send to the daemon: %s", ADMIN_STRERROR(-rc));
		return EX_UNAVAILABLE;
	}
	rc = ctlclient_line(cc, line, sizeof line);
	if (rc == -EAGAIN) {
		admin__err(a, "no reply from the daemon within %d s; the change may "
		    "or may not have been made ('queue show' tells)", ADMIN_CTL_TIMEOUT_S);
		return EX_TEMPFAIL;
	}
	if (rc == -EPIPE || rc == -EBADMSG) {
		admin__err(a, "the daemon closed the connection without a complete reply");
		return EX_SOFTWARE;
	}
	if (rc < 0) {
		admin__err(a, "cannot read the daemon's reply: %s", ADMIN_STRERROR(-rc));
		return EX_UNAVAILABLE;
	}
	/* Only the codes of the protocol; anything else is an internal error. */
	if (ctlproto_reply_parse(line, &q->code, &text) == 0) {
		str_copy(q->text, text, sizeof q->text);
		return 0;
	}
	{
		char *shown = admin__text_dup(line);

		admin__err(a, "malformed reply from the daemon: '%s'", shown);
		free(shown);
	}
	return EX_SOFTWARE;
}

int admin__queue_change(struct admin *a, const struct admin_args *args)
{
	struct admin_qchange q;
	const char *path, *path_err;
	char *text;
	bool by_daemon;
	struct ctlclient *cc = NULL;
	int rc;

	memset(&q, 0, sizeof q);
	if (queue_admin_verb_parse(a->cmd->verb, &q.verb) < 0)
		panic("govrelayctl: no queue change named %s", a->cmd->verb);
	if (queue_admin_verb_has_id(q.verb)) {
		if ((rc = admin__queue_id_arg(a, admin__arg(args, "id"), &q.id)) != 0)
			return rc;
		queue_id_format(q.id, q.qid);
	}
	if (a->io->remote || !a->super) {
		/* We are the daemon (or act for an operator): apply it here. */
		rc = admin_qchange_store(a, &q, a->io->remote ? "daemon" : "store");
		if (rc != 0)
			return rc;
		by_daemon = a->io->remote;
		if (q.changed && a->io->queue_changed != NULL)
			a->io->queue_changed(a->io->queue_changed_arg);
		path = by_daemon ? "done by the running daemon" :
		    "daemon not running: applied to the store";
		path_err = by_daemon ? "reported by the running daemon" :
		    "daemon not running: checked the store";
	} else {
		rc = admin_ctl_connect(a, &cc);
		by_daemon = rc == 0;
		if (rc == 0) {
			rc = admin_ctl_ask(a, cc, &q);
			ctlclient_free(cc);
			path = "done by the running daemon";
			path_err = "reported by the running daemon";
		} else if (rc == 1) {
			rc = admin_qchange_store(a, &q, "store");
			path = "daemon not running: applied to the store";
			path_err = "daemon not running: checked the store";
		} else {
			return rc;
		}
		if (rc != 0)
			return rc;
	}
	text = admin__text_dup(q.text);
	if (q.code != 0) {
		admin__err(a, "%s (%s)", text, path_err);
	} else if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "action", queue_admin_verb_action(q.verb));
		admin__json_kstr(&j, "id", q.qid[0] != '\0' ? q.qid : NULL);
		admin__json_kstr(&j, "result", q.text);
		admin__json_kstr(&j, "applied_by", by_daemon ? "daemon" : "store");
		admin__json_end(a, &j);
	} else {
		admin__out(a, "%s (%s)\n", text, path);
	}
	free(text);
	return q.code;
}

