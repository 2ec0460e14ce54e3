/*
 * receive: receiving a message, as store operations by intent. The SMTP
 * session says what it accepted (struct queue_receive) and this module
 * decides what is written: the final recipients once aliases are
 * expanded, the agencies concerned, whether the sender's agency requires
 * TLS outbound, the body tail, the envelope with its schedule entry, and
 * the `received` audit record, in the one transaction that queues the
 * message. A quarantine verdict changes only where the envelope goes:
 * to the quarantine (queue/quarantine.h), with a `quarantined` record.
 * Delivery reports (queue/delivery.c) are queued by the same path, so a
 * DSN is received like any other message.
 *
 * Alias expansion is bounded twice with one rule. The session counts at
 * RCPT (queue_expansion_add in a read transaction on the loop thread, an
 * mmap lookup per address) and refuses the RCPT that would go over the
 * bound, so a sender learns it at once and for good; the commit expands
 * again in its own transaction (the aliases may have changed since RCPT)
 * and refuses with -E2BIG, which the session also answers permanently.
 *
 * Entry points: queue_expansion_new/free/count/add/get,
 * queue_receive_apply, queue_receive_result_free, queue_receive_clear,
 * queue_receive_submit, queue_receive_chunk_submit,
 * queue_receive_discard_apply/submit, queue_receive_refusal_submit,
 * queue_receive_refusal_notices_submit.
 * OWNERSHIP: see receive.h; an expansion owns copies of its recipients.
 * THREADS: the *_apply functions and queue_expansion_add on any thread
 * owning the txn; the *_submit functions on the loop thread, their
 * completions on the loop thread.
 * ERRORS: -E2BIG (over the bound), otherwise the store's negative errno.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/addr.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/quarantine.h"
#include "queue/receive.h"
#include "queue/tenancy.h"

/* ------------------------------------------------------------ expansion */

/*
 * The final recipients in arrival order, and an open-addressing index on
 * them (slot = entry index + 1, 0 free; the capacity is a power of two,
 * at most half full), so "is it in already" costs one hash, not a scan:
 * ten aliases of 1,000 members used to cost 50 million comparisons.
 */
struct queue_expansion {
	struct queue_rcpt *v;
	size_t n, cap;
	size_t *slot;
	size_t nslot;
	size_t max;
};

/* Case-insensitive FNV-1a: duplicates are judged as str_ieq judges them. */
static size_t queue_expansion_hash(const char *s)
{
	uint64_t h = UINT64_C(14695981039346656037);

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h ^= c;
		h *= UINT64_C(1099511628211);
	}
	return (size_t)h;
}

struct queue_expansion *queue_expansion_new(size_t max)
{
	struct queue_expansion *x = xcalloc(1, sizeof *x);

	x->max = max ? max : QUEUE_RECEIVE_EXPANDED_MAX;
	return x;
}

void queue_expansion_free(struct queue_expansion *x)
{
	if (x == NULL)
		return;
	for (size_t i = 0; i < x->n; i++) {
		free(x->v[i].addr);
		free(x->v[i].orcpt);
	}
	free(x->v);
	free(x->slot);
	free(x);
}

size_t queue_expansion_count(const struct queue_expansion *x)
{
	return x->n;
}

const struct queue_rcpt *queue_expansion_get(const struct queue_expansion *x, size_t i)
{
	return i < x->n ? &x->v[i] : NULL;
}

static bool queue_expansion_has(const struct queue_expansion *x, const char *addr)
{
	if (x->nslot == 0)
		return false;
	for (size_t i = queue_expansion_hash(addr) & (x->nslot - 1);;
	    i = (i + 1) & (x->nslot - 1)) {
		if (x->slot[i] == 0)
			return false;
		if (str_ieq(x->v[x->slot[i] - 1].addr, addr))
			return true;
	}
}

static void queue_expansion_index(size_t *slot, size_t nslot, const char *addr, size_t idx)
{
	size_t i;

	for (i = queue_expansion_hash(addr) & (nslot - 1); slot[i] != 0; i = (i + 1) & (nslot - 1))
		;
	slot[i] = idx + 1;
}

/* Appends r (its strings taken), which must not be in the set yet. */
static void queue_expansion_push(struct queue_expansion *x, const struct queue_rcpt *r)
{
	if (2 * (x->n + 1) > x->nslot) {
		size_t nslot = x->nslot ? 2 * x->nslot : 16;
		size_t *slot = xcalloc(nslot, sizeof *slot);

		for (size_t i = 0; i < x->n; i++)
			queue_expansion_index(slot, nslot, x->v[i].addr, i);
		free(x->slot);
		x->slot = slot;
		x->nslot = nslot;
	}
	if (x->n == x->cap) {
		x->cap = x->cap ? 2 * x->cap : 8;
		x->v = xreallocarray(x->v, x->cap, sizeof *x->v);
	}
	x->v[x->n] = *r;
	queue_expansion_index(x->slot, x->nslot, r->addr, x->n);
	x->n++;
}

/* A copy of r's envelope facts under another address (no delivery history). */
static struct queue_rcpt queue_expansion_entry(const struct queue_rcpt *r, const char *addr,
    char *orcpt)
{
	struct queue_rcpt e = *r;

	e.addr = xstrdup(addr);
	e.orcpt = orcpt;
	e.last_reply = NULL;
	return e;
}

/*
 * Targets of r when it is an alias (*nt > 0), else none. An address the
 * table cannot hold is no alias; a store error is returned, never taken
 * for "not an alias": that would deliver to the alias's own address
 * instead of its members, a silent misdelivery (issue 9).
 */
static int queue_expansion_targets(struct queue_txn *txn, const char *addr,
    char ***targets, size_t *nt)
{
	char canon[ADDR_MAX + 1];
	const char *why = NULL;
	int rc;

	*targets = NULL;
	*nt = 0;
	if (addr_canon(addr, canon, sizeof canon, &why) < 0)
		return 0;
	if ((rc = queue_alias_expand(txn, canon, targets, nt)) < 0) {
		*targets = NULL;
		*nt = 0;
		return rc;
	}
	/* A plain mailbox expands to itself: it is not an alias. */
	if (*nt == 1 && strcmp((*targets)[0], canon) == 0) {
		queue_alias_list_free(*targets, *nt);
		*targets = NULL;
		*nt = 0;
	}
	return 0;
}

int queue_expansion_add(struct queue_txn *txn, struct queue_expansion *x,
    const struct queue_rcpt *r, size_t *added)
{
	char **targets;
	size_t nt, fresh = 0;
	int rc = 0;

	if (added != NULL)
		*added = 0;
	if ((rc = queue_expansion_targets(txn, r->addr, &targets, &nt)) < 0)
		return rc;
	if (nt == 0) {
		struct queue_rcpt e;

		if (queue_expansion_has(x, r->addr))
			return 0;
		if (x->n >= x->max)
			return -E2BIG;
		e = queue_expansion_entry(r, r->addr, r->orcpt ? xstrdup(r->orcpt) : NULL);
		queue_expansion_push(x, &e);
		if (added != NULL)
			*added = 1;
		return 0;
	}
	for (size_t k = 0; k < nt; k++)
		fresh += !queue_expansion_has(x, targets[k]);
	if (fresh > x->max - x->n) {
		rc = -E2BIG;
		goto out;
	}
	fresh = 0;
	for (size_t k = 0; k < nt; k++) {
		struct queue_rcpt e;
		char *orcpt;

		if (queue_expansion_has(x, targets[k]))
			continue;
		/* RFC 3461 section 4.2: the DSN names the address the client gave. */
		if (r->orcpt != NULL) {
			orcpt = xstrdup(r->orcpt);
		} else {
			size_t len = strlen(r->addr) + 8;

			orcpt = xmalloc(len);
			snprintf(orcpt, len, "rfc822;%s", r->addr);
		}
		e = queue_expansion_entry(r, targets[k], orcpt);
		queue_expansion_push(x, &e);
		fresh++;
	}
	if (added != NULL)
		*added = fresh;
out:
	queue_alias_list_free(targets, nt);
	return rc;
}

/* Moves the recipients out of x (which is then empty). */
static void queue_expansion_take(struct queue_expansion *x, struct queue_rcpt **v, size_t *n)
{
	*v = x->v;
	*n = x->n;
	x->v = NULL;
	x->n = x->cap = 0;
	free(x->slot);
	x->slot = NULL;
	x->nslot = 0;
}

/* ---------------------------------------------------------- tenant facts */

/* Adds tenant (taken) to the comma list *list unless it is there. */
static void queue_receive_tenant_add(char **list, char *tenant)
{
	size_t have, add;
	const char *p;

	if (tenant == NULL)
		return;
	add = strlen(tenant);
	for (p = *list; p != NULL && *p != '\0';) {
		size_t len = strcspn(p, ",");

		if (len == add && memcmp(p, tenant, add) == 0) {
			free(tenant);
			return;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	have = *list ? strlen(*list) : 0;
	*list = xrealloc(*list, have + add + 2);
	if (have > 0)
		(*list)[have++] = ',';
	memcpy(*list + have, tenant, add + 1);
	free(tenant);
}

/*
 * The agencies the message concerns (the sender's and each final
 * recipient's domain owner), for the audit record, and whether the
 * sender's agency requires TLS for mail leaving the city.
 */
static int queue_receive_tenancy(struct queue_txn *txn, const char *sender,
    struct queue_receive_result *res)
{
	char canon[ADDR_MAX + 1];
	const char *why = NULL;
	char *tenant = NULL;
	int rc;

	if (sender[0] != '\0' && addr_canon(sender, canon, sizeof canon, &why) == 0 &&
	    queue_tenant_of_address(txn, canon, &tenant) == 0) {
		bool require_tls = false;

		rc = queue_policy_bool(txn, tenant, "require_tls_outbound", &require_tls, NULL, 0);
		if (rc < 0 && rc != -ENOENT) {
			free(tenant);
			return rc;
		}
		res->require_tls = require_tls;
		queue_receive_tenant_add(&res->tenants, tenant);
	}
	for (size_t i = 0; i < res->nrcpts; i++) {
		tenant = NULL;
		if (addr_canon(res->rcpts[i].addr, canon, sizeof canon, &why) == 0 &&
		    queue_tenant_of_address(txn, canon, &tenant) == 0)
			queue_receive_tenant_add(&res->tenants, tenant);
	}
	return 0;
}

/* ---------------------------------------------------------------- receive */

/* The final recipients of req, into res (which owns them). */
static int queue_receive_expand(struct queue_txn *txn, const struct queue_receive *req,
    struct queue_receive_result *res)
{
	struct queue_expansion *x = queue_expansion_new(req->expanded_max);
	int rc = 0;

	for (size_t i = 0; i < req->msg.nrcpts && rc == 0; i++)
		rc = queue_expansion_add(txn, x, &req->msg.rcpts[i], NULL);
	queue_expansion_take(x, &res->rcpts, &res->nrcpts);
	queue_expansion_free(x);
	return rc;
}

static int queue_receive_body(struct queue_txn *txn, const struct queue_receive *req)
{
	uint32_t seq = req->body_seq;
	int rc = 0;

	/* The head (chunk 0) is small: our trace and verdict fields. */
	if (req->head.len > QUEUE_CHUNK_MAX)
		return -EINVAL;
	if (req->head.len > 0)
		rc = queue_body_put(txn, req->msg.id, 0, req->head.data, req->head.len);

	for (size_t off = 0; rc == 0 && off < req->body.len; off += QUEUE_CHUNK_MAX) {
		size_t len = req->body.len - off;

		if (len > QUEUE_CHUNK_MAX)
			len = QUEUE_CHUNK_MAX;
		rc = queue_body_put(txn, req->msg.id, seq++, req->body.data + off, len);
	}
	return rc;
}

/*
 * A quarantine verdict: the envelope (recipients expanded, as it would
 * have been queued) goes to the quarantine with the verdict, not to
 * `messages` and the schedule; `received` then `quarantined` record it.
 */
static int queue_receive_quarantine(struct queue_txn *txn, const struct queue_receive *req,
    const struct queue_msg *msg, const struct queue_receive_result *res)
{
	struct queue_quarantine q = {
		.id = msg->id,
		.time = msg->arrival,
		.rule = (char *)req->quarantine_rule,
		.reason = req->quarantine_reason ? req->quarantine_reason : "quarantined",
		.notes = req->notes,
		.tenants = res->tenants,
		.msg = (struct queue_msg *)msg,
	};
	int rc;

	if ((rc = queue_quarantine_put(txn, &q)) < 0)
		return rc;
	if ((rc = queue_audit_received(txn, msg, res->tenants, req->notes)) < 0)
		return rc;
	return queue_audit_quarantined(txn, &q);
}

int queue_receive_apply(struct queue_txn *txn, const struct queue_receive *req,
    struct queue_receive_result *res)
{
	struct queue_msg msg = req->msg;
	int rc;

	memset(res, 0, sizeof *res);
	if (req->report_kind == NULL) {
		rc = queue_receive_expand(txn, req, res);
		if (rc == 0)
			rc = queue_receive_tenancy(txn, req->msg.sender, res);
		if (rc < 0)
			return rc;
		msg.rcpts = res->rcpts;
		msg.nrcpts = res->nrcpts;
		msg.require_tls = res->require_tls;
	} else {
		/* A report goes to the original sender as it is: no alias of ours. */
		res->nrcpts = msg.nrcpts;
	}
	rc = queue_receive_body(txn, req);
	if (rc == 0 && req->quarantine_rule != NULL && req->report_kind == NULL)
		return queue_receive_quarantine(txn, req, &msg, res);
	if (rc == 0)
		rc = queue_msg_put(txn, &msg);  /* with its schedule entry */
	if (rc < 0)
		return rc;
	if (req->report_kind != NULL)
		return queue_audit_received_report(txn, msg.arrival, msg.id,
		    msg.nrcpts > 0 ? msg.rcpts[0].addr : "", req->report_kind, req->report_about);
	return queue_audit_received(txn, &msg, res->tenants, req->notes);
}

void queue_receive_result_free(struct queue_receive_result *res)
{
	for (size_t i = 0; res->rcpts != NULL && i < res->nrcpts; i++) {
		free(res->rcpts[i].addr);
		free(res->rcpts[i].orcpt);
	}
	free(res->rcpts);
	free(res->tenants);
	memset(res, 0, sizeof *res);
}

void queue_receive_clear(struct queue_receive *req)
{
	struct queue_msg *m = &req->msg;

	for (size_t i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].orcpt);
		free(m->rcpts[i].last_reply);
	}
	free(m->rcpts);
	free(m->sender);
	free(m->envid);
	free(m->client_addr);
	free(m->helo);
	free(m->listener);
	free(m->tls);
	free(m->auth_user);
	free(m->hold_reason);
	memset(m, 0, sizeof *m);
	buf_free(&req->body);
	buf_free(&req->head);
	free(req->notes);
	req->notes = NULL;
	free(req->quarantine_reason);
	req->quarantine_reason = NULL;
	for (size_t i = 0; i < req->nnotices; i++) {
		queue_receive_clear(req->notices[i]);
		free(req->notices[i]);
	}
	free(req->notices);
	req->notices = NULL;
	req->nnotices = 0;
}

/* ----------------------------------------------------- through the writer */

struct queue_receive_op {
	struct queue_receive *req;
	struct queue_receive_result res;
	queue_receive_done_fn *done;
	void *arg;
};

static int queue_receive_op_apply(struct queue_txn *txn, void *arg)
{
	struct queue_receive_op *op = arg;
	struct queue_receive_result res;
	int rc = queue_receive_apply(txn, op->req, &op->res);

	/* The notices commit with the message they are about, or neither does. */
	for (size_t i = 0; rc == 0 && i < op->req->nnotices; i++) {
		rc = queue_receive_apply(txn, op->req->notices[i], &res);
		queue_receive_result_free(&res);
	}
	return rc;
}

static void queue_receive_op_done(void *arg, int status)
{
	struct queue_receive_op *op = arg;

	op->done(op->arg, status, op->req, &op->res);
	queue_receive_result_free(&op->res);
	queue_receive_clear(op->req);
	free(op->req);
	free(op);
}

void queue_receive_submit(struct queue_writer *w, struct queue_receive *req,
    queue_receive_done_fn *done, void *arg)
{
	struct queue_receive_op *op = xcalloc(1, sizeof *op);

	op->req = req;
	op->done = done;
	op->arg = arg;
	queue_writer_submit(w, queue_receive_op_apply, queue_receive_op_done, op);
}

struct queue_chunk_op {
	queue_chunk_done_fn *done;
	void *arg;
	uint64_t id;
	uint32_t seq;
	size_t len;
	char data[];
};

static int queue_chunk_op_apply(struct queue_txn *txn, void *arg)
{
	struct queue_chunk_op *op = arg;

	return queue_body_put(txn, op->id, op->seq, op->data, op->len);
}

static void queue_chunk_op_done(void *arg, int status)
{
	struct queue_chunk_op *op = arg;
	queue_chunk_done_fn *done = op->done;
	void *darg = op->arg;
	uint64_t id = op->id;
	size_t len = op->len;

	free(op);
	done(darg, status, id, len);
}

void queue_receive_chunk_submit(struct queue_writer *w, uint64_t id, uint32_t seq,
    const void *data, size_t len, queue_chunk_done_fn *done, void *arg)
{
	struct queue_chunk_op *op = xmalloc(sizeof *op + len);

	op->done = done;
	op->arg = arg;
	op->id = id;
	op->seq = seq;
	op->len = len;
	memcpy(op->data, data, len);
	queue_writer_submit(w, queue_chunk_op_apply, queue_chunk_op_done, op);
}

int queue_receive_discard_apply(struct queue_txn *txn, uint64_t id)
{
	int rc = queue_body_delete(txn, id);

	return rc == -ENOENT ? 0 : rc;
}

static int queue_discard_op_apply(struct queue_txn *txn, void *arg)
{
	return queue_receive_discard_apply(txn, *(uint64_t *)arg);
}

static void queue_discard_op_done(void *arg, int status)
{
	/* Orphan chunks left here are collected at the next start-up. */
	if (status < 0)
		log_warn(NULL, "discarding chunks of an unfinished message: %s",
		    queue_strerror(status));
	free(arg);
}

void queue_receive_discard_submit(struct queue_writer *w, uint64_t id)
{
	uint64_t *op = xmalloc(sizeof *op);

	*op = id;
	queue_writer_submit(w, queue_discard_op_apply, queue_discard_op_done, op);
}

/* A refusal with its own copies of every string (the session moves on). */
struct queue_refusal_op {
	struct queue_audit_refusal r;
	int64_t time;
	char *strings[11];
	char **rcpts;
	struct queue_receive **notices;
	size_t nnotices;
	void (*done)(void *arg, int status);
	void *done_arg;
	struct queue_writer *w;
};

static void queue_refusal_notices_free(struct queue_refusal_op *op)
{
	for (size_t i = 0; i < op->nnotices; i++) {
		queue_receive_clear(op->notices[i]);
		free(op->notices[i]);
	}
	free(op->notices);
	op->notices = NULL;
	op->nnotices = 0;
}

static const char *queue_refusal_keep(struct queue_refusal_op *op, size_t i, const char *s)
{
	op->strings[i] = s ? xstrdup(s) : NULL;
	return op->strings[i];
}

static int queue_refusal_op_apply(struct queue_txn *txn, void *arg)
{
	struct queue_refusal_op *op = arg;
	struct queue_receive_result res;
	int rc = queue_audit_refused(txn, op->time, &op->r);

	for (size_t i = 0; rc == 0 && i < op->nnotices; i++) {
		rc = queue_receive_apply(txn, op->notices[i], &res);
		queue_receive_result_free(&res);
	}
	return rc;
}

static void queue_refusal_op_done(void *arg, int status)
{
	struct queue_refusal_op *op = arg;

	if (status < 0 && op->nnotices > 0) {
		/*
		 * The notices could not be queued (a full map, say): the record
		 * of the refusal matters more than its notices. It goes again,
		 * alone; the log says the notices are missing.
		 */
		log_err(op->r.qid && op->r.qid[0] ? op->r.qid : NULL,
		    "%zu notice(s) about the refusal not queued: %s", op->nnotices,
		    queue_strerror(status));
		queue_refusal_notices_free(op);
		queue_writer_submit(op->w, queue_refusal_op_apply, queue_refusal_op_done, op);
		return;
	}

	if (status < 0)
		log_err(op->r.qid && op->r.qid[0] ? op->r.qid : NULL,
		    "audit record %s not written: %s",
		    queue_audit_event_name(op->r.classified ? QUEUE_AUDIT_CLASSIFIED :
		    op->r.tempfail ? QUEUE_AUDIT_TEMPFAILED : QUEUE_AUDIT_REJECTED),
		    queue_strerror(status));
	for (size_t i = 0; i < sizeof op->strings / sizeof op->strings[0]; i++)
		free(op->strings[i]);
	for (size_t i = 0; i < op->r.nrcpts; i++)
		free(op->rcpts[i]);
	free(op->rcpts);
	queue_refusal_notices_free(op);
	if (op->done != NULL)
		op->done(op->done_arg, status);
	free(op);
}

void queue_receive_refusal_submit(struct queue_writer *w, const struct queue_audit_refusal *r)
{
	queue_receive_refusal_notices_submit(w, r, NULL, 0, NULL, NULL);
}

void queue_receive_refusal_notices_submit(struct queue_writer *w,
    const struct queue_audit_refusal *r, struct queue_receive **notices, size_t n,
    void (*done)(void *arg, int status), void *arg)
{
	struct queue_refusal_op *op = xcalloc(1, sizeof *op);

	op->w = w;
	op->notices = notices;
	op->nnotices = n;
	op->done = done;
	op->done_arg = arg;

	op->time = time_now_ms();
	op->r.tempfail = r->tempfail;
	op->r.code = r->code;
	op->r.qid = queue_refusal_keep(op, 0, r->qid);
	op->r.stage = queue_refusal_keep(op, 1, r->stage);
	op->r.rule = queue_refusal_keep(op, 2, r->rule);
	op->r.enh = queue_refusal_keep(op, 3, r->enh);
	op->r.reason = queue_refusal_keep(op, 4, r->reason);
	op->r.client = queue_refusal_keep(op, 5, r->client);
	op->r.helo = queue_refusal_keep(op, 6, r->helo);
	op->r.from = queue_refusal_keep(op, 7, r->from);
	op->r.to = queue_refusal_keep(op, 8, r->to);
	op->r.sess = queue_refusal_keep(op, 9, r->sess);
	op->r.auth = queue_refusal_keep(op, 10, r->auth);
	op->r.classified = r->classified;
	if (r->nrcpts > 0) {
		op->rcpts = xcalloc(r->nrcpts, sizeof *op->rcpts);
		for (size_t i = 0; i < r->nrcpts; i++)
			op->rcpts[i] = xstrdup(r->rcpts[i]);
		op->r.rcpts = (const char *const *)op->rcpts;
		op->r.nrcpts = r->nrcpts;
	}
	queue_writer_submit(w, queue_refusal_op_apply, queue_refusal_op_done, op);
}
