/*
 * admin/quarantine: the quarantine verbs (list, show, release, delete;
 * issue 11). A quarantined message is kept whole in the store, out of the
 * delivery queue, with the verdict that put it there (queue/quarantine.h).
 *
 * Who (doc/THREAT-MODEL.md, "Quarantine"): root and the store's owner
 * (the daemon's user) see and act on every quarantined message. A
 * security operator of tenant T sees a message that concerns T's
 * subtree, by the queue's rule (admin__msg_in_scope): a recipient's
 * domain belongs to the subtree, or the sender authenticated as one of
 * its users; the envelope sender alone proves nothing (a forged MAIL
 * FROM of the ward's domain is exactly what DMARC quarantines). They are
 * shown only their own recipients, and may release or delete only a
 * message all of whose recipients are theirs (or whose authenticated
 * sender is theirs): release and delete act on the whole message, which
 * another agency's recipients make not theirs alone to decide. An
 * auditor sees what a security operator of their tenant would see, read
 * only (list, show). A postmaster has no access: the quarantine holds
 * what the content checks stopped (state secrets, malware), which is the
 * security team's to judge, not the mail administrator's.
 *
 * Every release and delete is one transaction with its audit record
 * (event admin, action=quarantine.release or quarantine.delete, by= the
 * operator, via=, tenant=, object= and qid= the message, rule=, reason=);
 * a show is recorded the same way (action=quarantine.show) before the
 * header section is printed, since that may disclose what the checks
 * stopped; a refusal is audited by the dispatcher (action=denied). A release made
 * inside the daemon (an operator's command) kicks the scheduler through
 * io->queue_changed; one made by govrelayctl in its own process sends the
 * daemon a `kick` over control_socket, and when no daemon answers the
 * message waits for the daemon's next start (or its next look at the
 * schedule).
 *
 * Entry points: admin__quarantine_list, admin__quarantine_show,
 * admin__quarantine_change (admin_int.h).
 * OWNERSHIP: records are read in pages (list) or one at a time (show,
 * change) in short read transactions, printed after the transaction
 * ended, and freed before returning.
 * THREADS: see engine.c. ERRORS: sysexits.h codes (engine.c).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "admin/admin_int.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/ctlclient.h"
#include "common/ctlproto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/audit_event.h"
#include "queue/quarantine.h"
#include "queue/queue.h"

/* Records per read transaction of `quarantine list`. */
#define ADMIN_QUAR_PAGE 256
/* The most of a header section `quarantine show` prints. */
#define ADMIN_QUAR_HEADER_MAX (64 * 1024)
#define ADMIN_QUAR_KICK_TIMEOUT_S 10

/* "a, b, c": the recipients of m, for the table and the text of show. */
static void admin_quar_rcpts(const struct queue_msg *m, struct buf *b)
{
	for (size_t i = 0; i < m->nrcpts; i++)
		buf_printf(b, "%s%s", i > 0 ? ", " : "", m->rcpts[i].addr);
}

/* ------------------------------------------------------------- list */

struct admin_quar_list {
	struct admin *a;
	struct admin_table *t; /* text */
	struct buf out;        /* JSON lines of the page */
	size_t n;              /* records of this page */
	uint64_t next;         /* where the next page starts */
	bool more;
};

static void admin_quar_list_json(struct admin_quar_list *l, const struct queue_quarantine *q,
    const struct queue_msg *m)
{
	struct admin_json j;
	char id[QUEUE_ID_TEXT_LEN + 1], t[ADMIN_TIME_LEN];

	queue_id_format(q->id, id);
	admin__json_begin(&j);
	admin__json_kstr(&j, "id", id);
	admin__json_kstr(&j, "time", admin__time(q->time, true, t));
	admin__json_kstr(&j, "sender", m->sender);
	admin__json_open(&j, "recipients", '[');
	for (size_t i = 0; i < m->nrcpts; i++) {
		admin__json_sep(&j, NULL);
		admin__json_str(&j.b, m->rcpts[i].addr);
	}
	admin__json_close(&j, ']');
	admin__json_kstr(&j, "rule", q->rule);
	admin__json_kstr(&j, "reason", q->reason);
	admin__json_kstr(&j, "tenants", q->tenants);
	admin__json_close(&j, '}');
	buf_append(&l->out, j.b.data, j.b.len);
	buf_append(&l->out, "\n", 1);
	buf_free(&j.b);
}

static int admin_quar_list_cb(void *arg, const struct queue_quarantine *q)
{
	struct admin_quar_list *l = arg;
	struct queue_msg *m;
	struct buf env;
	int rc;

	if (l->n == ADMIN_QUAR_PAGE) {
		l->next = q->id;
		l->more = true;
		return 1;
	}
	l->n++;
	if (!admin__msg_in_scope(l->a, q->msg, NULL))
		return 0;
	/* A copy to narrow: another agency's recipients are not shown. */
	buf_init(&env);
	queue_msg_encode(q->msg, &env);
	rc = queue_msg_decode(env.data, env.len, &m);
	buf_free(&env);
	if (rc < 0)
		return rc;
	admin__msg_narrow(l->a, m);
	if (l->a->json) {
		admin_quar_list_json(l, q, m);
	} else {
		char id[QUEUE_ID_TEXT_LEN + 1], t[ADMIN_TIME_LEN];
		struct buf rcpts;
		const char *row[6];

		buf_init(&rcpts);
		admin_quar_rcpts(m, &rcpts);
		queue_id_format(q->id, id);
		row[0] = id;
		row[1] = admin__time(q->time, true, t);
		row[2] = m->sender[0] != '\0' ? m->sender : "<>";
		row[3] = buf_cstr(&rcpts);
		row[4] = q->rule;
		row[5] = q->reason;
		admin__table_row(l->t, row);
		buf_free(&rcpts);
	}
	queue_msg_free(m);
	return 0;
}

/*
 * `quarantine list` tells who wrote to whom and why it was stopped: an
 * admin record action=quarantine.list names who looked, before anything
 * is shown (no record, no list).
 */
static int admin_quar_listed(struct admin *a, struct queue_txn *txn, void *arg)
{
	int rc;

	(void)arg;
	rc = queue_audit_admin(txn, time_now_ms(), NULL, "quarantine.list", a->user, a->via,
	    NULL, 0);
	if (rc < 0) {
		admin__err(a, "cannot record the list: %s", queue_strerror(rc));
		return admin__store_exit(rc);
	}
	return 0;
}

int admin__quarantine_list(struct admin *a, const struct admin_args *args)
{
	static const char *const head[] = { "ID", "QUARANTINED", "SENDER", "RECIPIENTS",
		"RULE", "REASON" };
	struct admin_table t = { 6, head, "llllll", NULL, 0, 0 };
	struct admin_quar_list l;
	struct queue_txn *txn;
	int rc = 0;

	(void)args;
	memset(&l, 0, sizeof l);
	l.a = a;
	l.t = &t;
	buf_init(&l.out);
	if (a->store != NULL && (rc = admin__write(a, admin_quar_listed, NULL,
	    "the record of the list")) != 0) {
		admin__table_free(&t);
		buf_free(&l.out);
		return rc;
	}
	do {
		if (a->store == NULL)
			break;
		if ((rc = admin__txn(a, &txn)) != 0)
			break;
		if (!a->super && (rc = admin__domains_load(a, txn)) != 0) {
			queue_txn_abort(txn);
			break;
		}
		l.n = 0;
		l.more = false;
		rc = queue_quarantine_walk(txn, l.next, admin_quar_list_cb, &l);
		queue_txn_abort(txn);
		if (rc < 0) {
			admin__err(a, "cannot read the quarantine: %s", queue_strerror(rc));
			rc = admin__store_exit(rc);
			break;
		}
		rc = 0;
		/* The page is printed after its transaction ended. */
		admin__out_buf(a, &l.out);
		buf_reset(&l.out);
	} while (l.more);
	if (rc == 0 && !a->json)
		admin__table_print(a, &t);
	admin__table_free(&t);
	buf_free(&l.out);
	return rc;
}

/* ------------------------------------------------------------- show */

/*
 * The header section of message id (our head chunk and the client's
 * header fields), up to the blank line that ends it, at most
 * ADMIN_QUAR_HEADER_MAX bytes; read chunk by chunk in txn.
 */
static int admin_quar_header(struct queue_txn *txn, const struct queue_msg *m, struct buf *out)
{
	for (uint32_t seq = 0; seq < m->nchunks && out->len < ADMIN_QUAR_HEADER_MAX; seq++) {
		size_t from = out->len >= 3 ? out->len - 3 : 0;
		const char *end;
		int rc = queue_body_get(txn, m->id, seq, out);

		/* Chunk 0 is absent when the session stored no head of its own. */
		if (rc == -ENOENT && seq == 0)
			continue;
		if (rc < 0)
			return rc;
		end = memmem(out->data + from, out->len - from, "\r\n\r\n", 4);
		if (end != NULL) {
			out->len = (size_t)(end - out->data) + 2;
			break;
		}
	}
	if (out->len > ADMIN_QUAR_HEADER_MAX)
		out->len = ADMIN_QUAR_HEADER_MAX;
	return 0;
}

static void admin_quar_show_json(const struct admin *a, const struct queue_quarantine *q,
    const struct queue_msg *m, const struct buf *header)
{
	struct admin_json j;
	char id[QUEUE_ID_TEXT_LEN + 1], t[ADMIN_TIME_LEN];
	char *hdr = xstrndup(header->data ? header->data : "", header->len);

	queue_id_format(q->id, id);
	admin__json_begin(&j);
	admin__json_kstr(&j, "id", id);
	admin__json_kstr(&j, "time", admin__time(q->time, true, t));
	admin__json_kstr(&j, "rule", q->rule);
	admin__json_kstr(&j, "reason", q->reason);
	admin__json_kstr(&j, "notes", q->notes);
	admin__json_kstr(&j, "tenants", q->tenants);
	admin__json_kstr(&j, "sender", m->sender);
	admin__json_open(&j, "recipients", '[');
	for (size_t i = 0; i < m->nrcpts; i++) {
		admin__json_sep(&j, NULL);
		admin__json_str(&j.b, m->rcpts[i].addr);
	}
	admin__json_close(&j, ']');
	admin__json_kuint(&j, "size", m->size);
	admin__json_kstr(&j, "client_addr", m->client_addr);
	admin__json_kstr(&j, "helo", m->helo);
	admin__json_kstr(&j, "listener", m->listener);
	admin__json_kstr(&j, "tls", m->tls);
	admin__json_kstr(&j, "auth_user", m->auth_user);
	admin__json_kstr(&j, "header", hdr);
	admin__json_end(a, &j);
	free(hdr);
}

static void admin_quar_show_text(const struct admin *a, const struct queue_quarantine *q,
    const struct queue_msg *m, const struct buf *header)
{
	char id[QUEUE_ID_TEXT_LEN + 1], t[ADMIN_TIME_LEN], n[24];
	struct buf b;

	queue_id_format(q->id, id);
	admin__kv(a, "", "id", id);
	admin__kv(a, "", "quarantined", admin__time(q->time, true, t));
	admin__kv(a, "", "rule", q->rule);
	admin__kv(a, "", "reason", q->reason);
	admin__kv(a, "", "tenants", q->tenants);
	admin__kv(a, "", "sender", m->sender[0] != '\0' ? m->sender : "<>");
	for (size_t i = 0; i < m->nrcpts; i++)
		admin__kv(a, "", "recipient", m->rcpts[i].addr);
	snprintf(n, sizeof n, "%" PRIu64, m->size);
	admin__kv(a, "", "size", n);
	admin__kv(a, "", "client_addr", m->client_addr);
	admin__kv(a, "", "helo", m->helo);
	admin__kv(a, "", "listener", m->listener);
	admin__kv(a, "", "tls", m->tls);
	admin__kv(a, "", "auth_user", m->auth_user);
	/* The notes, one per line: "key=value; key=value" as the checks wrote them. */
	for (const char *p = q->notes; p != NULL && *p != '\0';) {
		size_t len = strcspn(p, ";");
		char *one = xstrndup(p, len);

		admin__kv(a, "", "note", one);
		free(one);
		p += len;
		while (*p == ';' || *p == ' ')
			p++;
	}
	admin__out(a, "header:\n");
	/* Each line made safe for a terminal (admin__text), indented. */
	buf_init(&b);
	for (size_t off = 0; off < header->len;) {
		const char *nl = memchr(header->data + off, '\n', header->len - off);
		size_t len = nl ? (size_t)(nl - (header->data + off)) : header->len - off;
		char *line = xstrndup(header->data + off, len && header->data[off + len - 1] == '\r' ?
		    len - 1 : len);

		buf_append_str(&b, "  ");
		admin__text(&b, line);
		buf_append_str(&b, "\n");
		free(line);
		off += len + (nl ? 1 : 0);
	}
	admin__out_buf(a, &b);
	buf_free(&b);
}

/*
 * One quarantined message for show or change: read, and checked against
 * the caller's scope (all: every recipient must be theirs). 0 with *out,
 * or an exit code (reported; 77 audited by the dispatcher).
 */
static int admin_quar_get(struct admin *a, struct queue_txn *txn, uint64_t id, bool all,
    struct queue_quarantine **out)
{
	char qid[QUEUE_ID_TEXT_LEN + 1];
	const char *tenant = NULL;
	int rc;

	queue_id_format(id, qid);
	rc = queue_quarantine_get(txn, id, out);
	if (rc == -ENOENT) {
		admin__err(a, "no such quarantined message %s", qid);
		return EX_NOINPUT;
	}
	if (rc < 0) {
		admin__err(a, "cannot read quarantined message %s: %s", qid, queue_strerror(rc));
		return admin__store_exit(rc);
	}
	if (!admin__msg_in_scope(a, (*out)->msg, &tenant)) {
		rc = admin__deny(a, tenant, "quarantined message %s has no recipient of tenant %s "
		    "and was not sent by one of its users", qid, a->op_tenant);
	} else if (all && !admin__msg_all_in_scope(a, (*out)->msg)) {
		rc = admin__deny(a, a->op_tenant, "quarantined message %s also has recipients "
		    "outside tenant %s; only root or the daemon's user may %s it", qid,
		    a->op_tenant, a->cmd->verb);
	}
	if (rc != 0) {
		queue_quarantine_free(*out);
		*out = NULL;
	}
	return rc;
}

/* The audit fields of an action on q: tenant, object, rule, reason. */
static void admin_quar_fields(const struct queue_quarantine *q, const char *qid,
    struct queue_audit_field f[4])
{
	f[0] = (struct queue_audit_field){ "tenant", q->tenants };
	f[1] = (struct queue_audit_field){ "object", qid };
	f[2] = (struct queue_audit_field){ "rule", q->rule };
	f[3] = (struct queue_audit_field){ "reason", q->reason };
}

/*
 * `quarantine show` discloses the header section of a message a check
 * stopped (a state-secret marking, malware): an admin record
 * action=quarantine.show names who looked.
 */
static int admin_quar_shown(struct admin *a, struct queue_txn *txn, void *arg)
{
	const struct queue_quarantine *q = arg;
	struct queue_audit_field f[4];
	char qid[QUEUE_ID_TEXT_LEN + 1];
	int rc;

	queue_id_format(q->id, qid);
	admin_quar_fields(q, qid, f);
	rc = queue_audit_admin(txn, time_now_ms(), qid, "quarantine.show", a->user, a->via, f, 4);
	if (rc < 0) {
		admin__err(a, "cannot record the show of %s: %s", qid, queue_strerror(rc));
		return admin__store_exit(rc);
	}
	return 0;
}

int admin__quarantine_show(struct admin *a, const struct admin_args *args)
{
	struct queue_quarantine *q = NULL;
	struct queue_txn *txn;
	struct buf header;
	uint64_t id;
	int rc;

	if ((rc = admin__queue_id_arg(a, admin__arg(args, "id"), &id)) != 0)
		return rc;
	if (a->store == NULL) {
		char qid[QUEUE_ID_TEXT_LEN + 1];

		queue_id_format(id, qid);
		admin__err(a, "no such quarantined message %s", qid);
		return EX_NOINPUT;
	}
	if ((rc = admin__txn(a, &txn)) != 0)
		return rc;
	buf_init(&header);
	if (!a->super)
		rc = admin__domains_load(a, txn);
	if (rc == 0)
		rc = admin_quar_get(a, txn, id, false, &q);
	if (rc == 0 && (rc = admin_quar_header(txn, q->msg, &header)) < 0) {
		admin__err(a, "cannot read the message's header section: %s", queue_strerror(rc));
		rc = admin__store_exit(rc);
	}
	queue_txn_abort(txn);
	/* Who read a quarantined message's header section is recorded first. */
	if (rc == 0)
		rc = admin__write(a, admin_quar_shown, q, "the record of the show");
	if (rc == 0) {
		admin__msg_narrow(a, q->msg);
		if (a->json)
			admin_quar_show_json(a, q, q->msg, &header);
		else
			admin_quar_show_text(a, q, q->msg, &header);
	}
	queue_quarantine_free(q);
	buf_free(&header);
	return rc;
}

/* ----------------------------------------------------------- change */

struct admin_quar_change {
	uint64_t id;
	char qid[QUEUE_ID_TEXT_LEN + 1];
	bool release;
};

static int admin_quar_change_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	struct admin_quar_change *op = arg;
	struct queue_quarantine *q = NULL;
	struct queue_audit_field f[4];
	char action[64];
	int64_t now = time_now_ms();
	int rc;

	/* Read and judged inside the write: what is changed is what was checked. */
	if ((rc = admin_quar_get(a, txn, op->id, true, &q)) != 0)
		return rc;
	admin_quar_fields(q, op->qid, f);
	snprintf(action, sizeof action, "quarantine.%s", a->cmd->verb);
	rc = op->release ? queue_quarantine_release(txn, op->id, now, NULL) :
	    queue_quarantine_delete(txn, op->id);
	if (rc == 0)
		rc = queue_audit_admin(txn, now, op->qid, action, a->user, a->via, f, 4);
	queue_quarantine_free(q);
	if (rc == -EEXIST) {
		admin__err(a, "a queued message already has id %s; nothing released", op->qid);
		return EX_CANTCREAT;
	}
	if (rc < 0) {
		admin__err(a, "cannot %s %s: %s", a->cmd->verb, op->qid, queue_strerror(rc));
		return admin__store_exit(rc);
	}
	return 0;
}

/*
 * govrelayctl in its own process released a message: the running
 * daemon's scheduler is told at once (`kick`, common/ctlproto.h) rather
 * than at its next look at the store. No daemon, or one that does not
 * answer: the schedule entry is durable and the daemon finds it anyway.
 */
static bool admin_quar_kick(const struct admin *a)
{
	struct ctlclient *cc = NULL;
	char line[CTLPROTO_LINE_MAX + 1];
	const char *text;
	int code = -1;

	if (a->io->cfg == NULL || a->io->cfg->control_socket == NULL ||
	    ctlclient_connect(a->io->cfg->control_socket, ADMIN_QUAR_KICK_TIMEOUT_S, &cc) < 0)
		return false;
	if (ctlclient_send(cc, "kick\n", 5) == 0 && ctlclient_line(cc, line, sizeof line) >= 0 &&
	    ctlproto_reply_parse(line, &code, &text) < 0)
		code = -1;
	ctlclient_free(cc);
	return code == 0;
}

int admin__quarantine_change(struct admin *a, const struct admin_args *args)
{
	struct admin_quar_change op;
	struct queue_txn *txn;
	const char *how = "";
	int rc;

	memset(&op, 0, sizeof op);
	if ((rc = admin__queue_id_arg(a, admin__arg(args, "id"), &op.id)) != 0)
		return rc;
	queue_id_format(op.id, op.qid);
	op.release = strcmp(a->cmd->verb, "release") == 0;
	if (!a->super) {
		/* The scope needs the domains; they are read before the write. */
		if ((rc = admin__txn(a, &txn)) != 0)
			return rc;
		rc = admin__domains_load(a, txn);
		queue_txn_abort(txn);
		if (rc != 0)
			return rc;
	}
	if ((rc = admin__write(a, admin_quar_change_apply, &op, "the quarantine change")) != 0)
		return rc;
	if (op.release && a->io->remote && a->io->queue_changed != NULL) {
		a->io->queue_changed(a->io->queue_changed_arg);
	} else if (op.release && !a->io->remote) {
		how = admin_quar_kick(a) ? "" :
		    " (no daemon answered: delivery starts when it runs)";
	}
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "action", op.release ? "quarantine.release" :
		    "quarantine.delete");
		admin__json_kstr(&j, "id", op.qid);
		admin__json_kstr(&j, "result", op.release ? "released" : "deleted");
		admin__json_end(a, &j);
	} else if (op.release) {
		admin__out(a, "%s released from the quarantine: queued for delivery%s\n", op.qid,
		    how);
	} else {
		admin__out(a, "%s deleted from the quarantine\n", op.qid);
	}
	return EX_OK;
}
