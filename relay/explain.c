/*
 * explain: `govrelayctl policy explain` inside the daemon (relay/explain.h).
 * The control socket's thread (admin_run in ctl_exec_work) calls
 * explain_run; the request is copied into a job, posted to the loop
 * through an async handle, and the thread waits on a condition variable
 * with the command's deadline. On the loop the job runs the daemon's own
 * policy engine, in explain mode, over a transaction of its own:
 *
 *   who   --from a user of ours (admin/explain.c decides): listener role
 *         "submission", authenticated as that user, as their mail client
 *         would send it; anything else: role "mx", an untrusted client at
 *         192.0.2.1 (RFC 5737 documentation address, HELO [192.0.2.1]), so
 *         SPF, DKIM verification and DMARC run as for mail from outside.
 *         TLS is taken as used (mail clients and most servers use it).
 *   what  MAIL (SIZE= the message's size), each RCPT, the whole message
 *         through policy_tx_body (lone LF line ends made CRLF, as a client
 *         sends them; the header section scanned as the session does),
 *         then DATA. Every stage runs, whatever the one before answered:
 *         the reply records say what the client would have been told.
 *   out   one record per rule and per stage reply, then the checks' notes
 *         and the header fields they would add (admin/admin.h).
 * Nothing is queued; no message audit record is written, and no
 * after-queue hook runs (the hourly rate does not count an explain).
 *
 * Entry points: explain_new, explain_stop, explain_free, explain_run.
 * OWNERSHIP: a job is shared by the waiting thread and the loop, each
 * holding a reference (under the mutex); the last to let go frees it, so
 * a waiter that gave up (deadline, stop) never frees what the loop still
 * uses. The service lives until explain_free, after the loop's end.
 * THREADS: explain_run on any thread but the loop's; everything else,
 * and all of the job's run, on the loop thread. mu guards pending, busy,
 * stopping and each job's refs, done and status.
 * ERRORS: -EBUSY, -ETIMEDOUT, -ESHUTDOWN to the caller; the checks'
 * failures are verdicts in the answer.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/rfc5322.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "relay/explain.h"

#define EXPLAIN_CLIENT "192.0.2.1"
#define EXPLAIN_HELO "[192.0.2.1]"
#define EXPLAIN_PIECE (64 * 1024)

enum explain_step { EXPLAIN_MAIL, EXPLAIN_RCPT, EXPLAIN_DATA, EXPLAIN_END };

struct explain_job {
	struct explain *x;
	/* The request, copied: the waiter may leave before the loop is done. */
	char *sender;
	char **rcpts;
	size_t nrcpts;
	char *auth_user;
	struct buf message;        /* CRLF line ends */
	char by[64];
	/* Under x->mu. */
	int refs;
	bool done;
	int status;
	/* Loop thread only, until done. */
	struct buf out;
	enum explain_step step;
	size_t rcpt;               /* the recipient being run */
	size_t accepted;           /* recipients no rule refused */
	char session_id[32];
	char domain[ADDR_DOMAIN_MAX + 1];
	struct policy_tx *ptx;
	struct policy_request req;
	struct rfc5322_scan *hdr;
};

struct explain {
	uv_loop_t *loop;
	struct policy *p;
	uv_async_t async;
	uv_mutex_t mu;
	uv_cond_t cv;
	struct explain_job *pending; /* posted, not taken by the loop yet */
	bool busy;                   /* a job exists (until its last reference goes) */
	bool stopping;
	unsigned long seq;           /* loop thread: session ids */
};

/* ------------------------------------------------------------ records */

static void explain_field(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
	buf_append_char(b, '\0');
}

static void explain_record(struct buf *b, const char *stage, const char *subject,
    const char *rule, const char *verdict, int code, const char *enh, const char *text)
{
	char num[16];

	snprintf(num, sizeof num, "%d", code);
	explain_field(b, stage);
	explain_field(b, subject);
	explain_field(b, rule);
	explain_field(b, verdict);
	explain_field(b, num);
	explain_field(b, enh);
	explain_field(b, text);
}

static const char *explain_subject(const struct explain_job *j)
{
	return j->step == EXPLAIN_RCPT ? j->rcpts[j->rcpt] : "";
}

/* policy_each_fn: one rule's verdict (v NULL: not run). */
static void explain_each(void *arg, const char *rule, const struct verdict *v)
{
	struct explain_job *j = arg;
	const char *stage = policy_stage_name(j->req.stage);
	char name[160];

	if (v == NULL) {
		explain_record(&j->out, stage, explain_subject(j), rule, "not-run", 0, "",
		    "not run: a rule before it did not answer in time");
		return;
	}
	/* The finer rule matters where it decided: a CONTINUE names none worth showing. */
	if (v->kind != VERDICT_CONTINUE && v->rule != NULL && strcmp(v->rule, rule) != 0)
		snprintf(name, sizeof name, "%s/%s", rule, v->rule);
	else
		str_copy(name, rule, sizeof name);
	explain_record(&j->out, stage, explain_subject(j), name, verdict_kind_name(v->kind),
	    v->code, v->enh, v->text);
}

/* The checks' notes, and the fields they would add (one record each, folding as lines). */
static void explain_tx_records(struct explain_job *j)
{
	size_t len = 0;
	const char *h = policy_tx_headers(j->ptx, &len);
	const char *notes = policy_tx_notes(j->ptx);
	struct buf field;

	if (notes[0] != '\0')
		explain_record(&j->out, "note", "", "", "", 0, "", notes);
	buf_init(&field);
	for (size_t i = 0; i < len; i++) {
		/* A field ends at a CRLF not followed by folding white space. */
		if (h[i] == '\r' && i + 1 < len && h[i + 1] == '\n') {
			if (i + 2 < len && (h[i + 2] == ' ' || h[i + 2] == '\t')) {
				buf_append_char(&field, '\n');
				i++;
				continue;
			}
			explain_record(&j->out, "header", "", "", "", 0, "", buf_cstr(&field));
			buf_reset(&field);
			i++;
			continue;
		}
		buf_append_char(&field, h[i] == '\0' ? ' ' : h[i]);
	}
	if (field.len > 0)
		explain_record(&j->out, "header", "", "", "", 0, "", buf_cstr(&field));
	buf_free(&field);
}

/* ------------------------------------------------------------- the job */

static void explain_job_unref(struct explain_job *j)
{
	struct explain *x = j->x;
	bool last;

	uv_mutex_lock(&x->mu);
	last = --j->refs == 0;
	if (last)
		x->busy = false;
	uv_mutex_unlock(&x->mu);
	if (!last)
		return;
	for (size_t i = 0; i < j->nrcpts; i++)
		free(j->rcpts[i]);
	free(j->rcpts);
	free(j->sender);
	free(j->auth_user);
	buf_free(&j->message);
	buf_free(&j->out);
	free(j->hdr);
	free(j);
}

/* Loop: the run is over (status 0, or why not); the waiter may read out. */
static void explain_job_end(struct explain_job *j, int status)
{
	struct explain *x = j->x;

	policy_tx_free(j->ptx);
	j->ptx = NULL;
	uv_mutex_lock(&x->mu);
	j->done = true;
	j->status = status;
	uv_cond_broadcast(&x->cv);
	uv_mutex_unlock(&x->mu);
	log_event(LOG_LVL_INFO, j->session_id, "event", "policy_explain", "by", j->by,
	    "status", status == 0 ? "done" : "stopped", NULL);
	explain_job_unref(j);
}

static void explain_step(struct explain_job *j);

/* policy_done_fn: a stage's answer, as the client would have been told; then the next. */
static void explain_stage_done(void *arg, const struct verdict *v)
{
	struct explain_job *j = arg;
	const char *text = v->text;

	if (v->kind == VERDICT_CONTINUE || v->kind == VERDICT_ACCEPT)
		text = j->step == EXPLAIN_DATA ? "accepted: the message would be queued" :
		    "accepted";
	explain_record(&j->out, policy_stage_name(j->req.stage), explain_subject(j),
	    ADMIN_EXPLAIN_REPLY, verdict_kind_name(v->kind), v->code, v->enh, text);
	if (j->step == EXPLAIN_RCPT) {
		if (v->kind == VERDICT_CONTINUE || v->kind == VERDICT_ACCEPT)
			j->accepted++;
		if (++j->rcpt < j->nrcpts) {
			explain_step(j);
			return;
		}
	}
	j->step++;
	explain_step(j);
}

/* The request fields every stage shares (relay/smtp_session.c's smtp__fill_request). */
static void explain_fill(struct explain_job *j, enum policy_stage stage)
{
	memset(&j->req, 0, sizeof j->req);
	j->req.stage = stage;
	j->req.session_id = j->session_id;
	j->req.client_addr = EXPLAIN_CLIENT;
	j->req.client_trusted = false;
	j->req.listener_role = j->auth_user != NULL ? "submission" : "mx";
	j->req.tls = true;
	j->req.auth_user = j->auth_user;
	j->req.helo = EXPLAIN_HELO;
	j->req.sender = j->sender;
	j->req.rcpt = "";
	j->req.rcpt_domain = "";
	j->req.nrcpt = j->accepted;
	j->req.declared_size = j->message.len;
	j->req.tx = j->ptx;
}

/* Whether an address's local part holds % ! or @ (source routing, RFC 5321 3.6.1). */
static bool explain_routing_chars(const char *addr)
{
	const char *at = strrchr(addr, '@');
	size_t n = at != NULL ? (size_t)(at - addr) : strlen(addr);

	for (size_t i = 0; i < n; i++)
		if (addr[i] == '%' || addr[i] == '!' || addr[i] == '@')
			return true;
	return false;
}

/* The message through every body hook, and its header section through the scanner. */
static void explain_feed(struct explain_job *j)
{
	const char *m = j->message.data;
	size_t len = j->message.len, line = 0;

	j->hdr = xcalloc(1, sizeof *j->hdr);
	rfc5322_scan_init(j->hdr);
	for (size_t i = 0; i < len && !j->hdr->done; i++) {
		if (m[i] != '\n')
			continue;
		rfc5322_scan_line(j->hdr, m + line, i - line - (i > line && m[i - 1] == '\r'));
		line = i + 1;
	}
	for (size_t off = 0; off < len; off += EXPLAIN_PIECE)
		policy_tx_body(j->ptx, m + off, len - off < EXPLAIN_PIECE ? len - off :
		    EXPLAIN_PIECE);
}

/* Loop: runs the job's next stage, or ends it. */
static void explain_step(struct explain_job *j)
{
	bool stopping;

	uv_mutex_lock(&j->x->mu);
	stopping = j->x->stopping;
	uv_mutex_unlock(&j->x->mu);
	if (stopping) {
		explain_job_end(j, -ESHUTDOWN);
		return;
	}
	switch (j->step) {
	case EXPLAIN_MAIL:
		explain_fill(j, POLICY_STAGE_MAIL);
		break;
	case EXPLAIN_RCPT:
		explain_fill(j, POLICY_STAGE_RCPT);
		j->req.rcpt = j->rcpts[j->rcpt];
		str_copy(j->domain, addr_domain_of(j->rcpts[j->rcpt]), sizeof j->domain);
		str_lower(j->domain);
		j->req.rcpt_domain = j->domain;
		j->req.rcpt_routing_chars = explain_routing_chars(j->rcpts[j->rcpt]);
		break;
	case EXPLAIN_DATA:
		explain_feed(j);
		explain_fill(j, POLICY_STAGE_DATA);
		j->req.headers = j->hdr;
		j->req.size = j->message.len;
		break;
	case EXPLAIN_END:
		explain_tx_records(j);
		explain_job_end(j, 0);
		return;
	}
	policy_run_explain(j->x->p, &j->req, explain_each, j, explain_stage_done, j);
}

static void explain_job_start(struct explain *x, struct explain_job *j)
{
	snprintf(j->session_id, sizeof j->session_id, "explain-%lu", ++x->seq);
	j->ptx = policy_tx_new(x->p, j->auth_user != NULL ? "submission" : "mx", j->session_id);
	j->step = EXPLAIN_MAIL;
	explain_step(j);
}

static void explain_async_cb(uv_async_t *a)
{
	struct explain *x = a->data;
	struct explain_job *j;

	uv_mutex_lock(&x->mu);
	j = x->pending;
	x->pending = NULL;
	uv_mutex_unlock(&x->mu);
	if (j != NULL)
		explain_job_start(x, j);
}

/* ------------------------------------------------------------ service */

struct explain *explain_new(uv_loop_t *loop, struct policy *p)
{
	struct explain *x = xcalloc(1, sizeof *x);

	x->loop = loop;
	x->p = p;
	uv_mutex_init(&x->mu);
	uv_cond_init(&x->cv);
	uv_async_init(loop, &x->async, explain_async_cb);
	x->async.data = x;
	return x;
}

void explain_stop(struct explain *x)
{
	struct explain_job *dropped;

	if (x == NULL)
		return;
	uv_mutex_lock(&x->mu);
	if (x->stopping) {
		uv_mutex_unlock(&x->mu);
		return;
	}
	x->stopping = true;
	dropped = x->pending;
	x->pending = NULL;
	if (dropped != NULL) {
		dropped->done = true;
		dropped->status = -ESHUTDOWN;
	}
	uv_cond_broadcast(&x->cv);
	uv_mutex_unlock(&x->mu);
	if (dropped != NULL)
		explain_job_unref(dropped);
	/* Posting happens under mu and only while !stopping: no send after this. */
	uv_close((uv_handle_t *)&x->async, NULL);
}

void explain_free(struct explain *x)
{
	if (x == NULL)
		return;
	/* The loop has ended: no run is left, and no waiter (the pool is drained). */
	uv_cond_destroy(&x->cv);
	uv_mutex_destroy(&x->mu);
	free(x);
}

/* The request copied into a new job (two references: the waiter's and the loop's). */
static struct explain_job *explain_job_new(struct explain *x, const struct admin_explain_req *req)
{
	struct explain_job *j = xcalloc(1, sizeof *j);

	j->x = x;
	j->refs = 2;
	j->sender = xstrdup(req->sender != NULL ? req->sender : "");
	j->auth_user = req->auth_user != NULL ? xstrdup(req->auth_user) : NULL;
	j->rcpts = xcalloc(req->nrcpts ? req->nrcpts : 1, sizeof *j->rcpts);
	for (size_t i = 0; i < req->nrcpts; i++)
		j->rcpts[i] = xstrdup(req->rcpts[i]);
	j->nrcpts = req->nrcpts;
	str_copy(j->by, req->by != NULL ? req->by : "", sizeof j->by);
	buf_init(&j->out);
	buf_init(&j->message);
	/* Lone LF line ends become CRLF, as a mail client sends the file. */
	for (size_t i = 0; i < req->len; i++) {
		if (req->message[i] == '\n' && (i == 0 || req->message[i - 1] != '\r'))
			buf_append_char(&j->message, '\r');
		buf_append_char(&j->message, req->message[i]);
	}
	return j;
}

int explain_run(struct explain *x, const struct admin_explain_req *req, uint64_t deadline_ns,
    struct buf *out)
{
	struct explain_job *j;
	int rc;

	if (req->nrcpts == 0)
		return -EINVAL;
	uv_mutex_lock(&x->mu);
	rc = x->stopping ? -ESHUTDOWN : x->busy ? -EBUSY : 0;
	if (rc == 0)
		x->busy = true;
	uv_mutex_unlock(&x->mu);
	if (rc < 0)
		return rc;
	j = explain_job_new(x, req);
	uv_mutex_lock(&x->mu);
	if (x->stopping) {
		/* Stopped while the job was being built: the loop never sees it. */
		j->refs = 1;
		rc = -ESHUTDOWN;
	} else {
		x->pending = j;
		uv_async_send(&x->async);
		for (;;) {
			uint64_t now = uv_hrtime();

			if (j->done) {
				rc = j->status;
				break;
			}
			if (x->stopping) {
				rc = -ESHUTDOWN;
				break;
			}
			if (now >= deadline_ns) {
				rc = -ETIMEDOUT;
				break;
			}
			(void)uv_cond_timedwait(&x->cv, &x->mu, deadline_ns - now);
		}
	}
	uv_mutex_unlock(&x->mu);
	/* done is set under mu after the loop's last write to out: reading it is safe. */
	if (rc == 0)
		buf_append(out, j->out.data, j->out.len);
	explain_job_unref(j);
	return rc;
}
