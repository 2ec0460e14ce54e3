/*
 * smtp_reply: what the inbound session says.
 *
 * Entry points (smtp_session_int.h): smtp__reply (one line, with an
 * optional enhanced status code, RFC 2034), smtp__reply_more (a line of
 * a multi-line reply, "250-"), smtp__reply_parse_error, smtp__flush,
 * smtp__goodbye (421 and no more input), smtp__count_error
 * (max_bad_commands), smtp__policy_refused (a verdict's reply, log line
 * and audit record), smtp__policy_record (the log line and audit record
 * alone).
 *
 * Replies are appended to the conn's output buffer and written by
 * smtp__flush, which the dispatcher calls when a pipelined group ends
 * (RFC 2920), so a group costs one write; conn bounds what may wait.
 *
 * OWNERSHIP: nothing is kept here; the text goes into the conn's buffer.
 * THREADS: loop thread only.
 * ERRORS: none; once the session is closing, replies are dropped.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/receive.h"
#include "relay/conn.h"
#include "relay/smtp_session_int.h"

/* ------------------------------------------------------------ output */

void smtp__flush(struct smtp_session *s)
{
	if (s->closing)
		return;
	conn_flush(s->conn);
}

/*
 * Appends one reply line to the conn's output; smtp__flush sends what a
 * pipelined group collected in one write. sep is ' ' for the last line of
 * a reply and '-' for the others (RFC 5321 section 4.2.1).
 */
static void smtp_reply_line(struct smtp_session *s, int code, char sep, const char *enh,
    const char *fmt, va_list ap)
{
	struct buf *out;

	if (s->closing)
		return;
	out = conn_out(s->conn);
	buf_printf(out, "%03d%c", code, sep);
	if (enh && enh[0])
		buf_printf(out, "%s ", enh);
	buf_vprintf(out, fmt, ap);
	buf_append_str(out, "\r\n");
}

void smtp__reply(struct smtp_session *s, int code, const char *enh,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_reply_line(s, code, ' ', enh, fmt, ap);
	va_end(ap);
}

void smtp__reply_more(struct smtp_session *s, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_reply_line(s, code, '-', NULL, fmt, ap);
	va_end(ap);
}

void smtp__reply_more_enh(struct smtp_session *s, int code, const char *enh,
    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_reply_line(s, code, '-', enh, fmt, ap);
	va_end(ap);
}

void smtp__reply_parse_error(struct smtp_session *s, const struct smtp_parse_error *e)
{
	smtp__reply(s, e->code, e->enh, "%s", e->text);
}

/* Answers 421 with text, after which nothing more is read. */
void smtp__goodbye(struct smtp_session *s, const char *enh, const char *text)
{
	smtp__reply(s, 421, enh, "%s %s", smtp__hostname(s), text);
	s->close_after_flush = true;
	if (s->state != SMTP_ST_QUIT)
		smtp__set_state(s, SMTP_ST_QUIT);
}

/* Counts a client error; past the limit, answers 421 and ends the session. */
void smtp__count_error(struct smtp_session *s)
{
	if (++s->errors <= s->cfg->max_bad_commands)
		return;
	log_event(LOG_LVL_INFO, s->id, "event", "too_many_errors", "client",
	    s->peer_addr, NULL);
	smtp__goodbye(s, "4.7.0", "Error: too many errors");
}

/* ------------------------------------------------- policy outcomes */

/* A refusal's notices are queued: the scheduler looks at them now. */
static void smtp_notices_queued(void *arg, int status)
{
	struct smtp_server *srv = arg;

	if (status == 0 && srv->on_queued != NULL)
		srv->on_queued(srv->on_queued_arg);
}

/*
 * The notices the checks asked for (policy_tx_add_notice) with a refusal
 * or a quarantine, as messages of the null sender (RFC 5321 4.5.5: no
 * report loops back) to their security contacts; NULL when there are none.
 */
struct queue_receive **smtp__policy_notices(struct smtp_session *s, size_t *n)
{
	const struct policy_notice *pn;
	struct queue_receive **out;
	int64_t now = time_now_ms();

	*n = 0;
	if (!s->tx.active || s->tx.ptx == NULL)
		return NULL;
	pn = policy_tx_notices(s->tx.ptx, n);
	if (*n == 0)
		return NULL;
	out = xcalloc(*n, sizeof *out);
	for (size_t i = 0; i < *n; i++) {
		struct queue_receive *q = out[i] = xcalloc(1, sizeof *q);
		struct queue_msg *m = &q->msg;

		buf_init(&q->body);
		buf_init(&q->head);
		buf_append(&q->body, pn[i].message, pn[i].len);
		m->id = queue_next_id(s->srv->store);
		m->arrival = now;
		m->sender = xstrdup("");
		m->ret = QUEUE_RET_UNSET;
		m->body_type = QUEUE_BODY_8BITMIME;
		m->size = pn[i].len;
		m->nchunks = (uint32_t)((pn[i].len + QUEUE_CHUNK_MAX - 1) / QUEUE_CHUNK_MAX);
		m->client_addr = xstrdup("127.0.0.1");
		m->listener = xstrdup("notice");
		m->nrcpts = 1;
		m->rcpts = xcalloc(1, sizeof *m->rcpts);
		m->rcpts[0].addr = xstrdup(pn[i].to);
		m->rcpts[0].notify = QUEUE_NOTIFY_NEVER;
		m->rcpts[0].state = QUEUE_RCPT_PENDING;
		m->rcpts[0].next_attempt = now;
		q->report_kind = "notice";
		str_copy(q->report_about, s->tx.qid_text, sizeof q->report_about);
	}
	return out;
}

/* The audit record of a refusal: queue/ decides its fields. */
static void smtp_audit_reject(struct smtp_session *s, const char *stage,
    const struct verdict *v, const char *rcpt)
{
	/*
	 * A refusal at end of data concerns every recipient of the
	 * transaction: the record names them, as "received" would have.
	 */
	bool whole_message = s->tx.active && rcpt == NULL && s->tx.nrcpt > 0;
	const char **rcpts = whole_message ? xcalloc(s->tx.nrcpt, sizeof *rcpts) : NULL;
	struct queue_audit_refusal r = {
		.qid = s->tx.active ? s->tx.qid_text : NULL,
		.tempfail = v->kind == VERDICT_TEMPFAIL,
		.stage = stage,
		.rule = v->rule,
		.code = v->code,
		.enh = v->enh,
		.reason = v->text,
		.client = s->peer_addr,
		.helo = s->helo[0] ? s->helo : NULL,
		.from = s->tx.active ? s->tx.sender : NULL,
		.to = rcpt,
		.sess = s->id,
		.auth = s->tx.active && s->tx.ptx && policy_tx_notes(s->tx.ptx)[0] ?
		    policy_tx_notes(s->tx.ptx) : NULL,
		.rcpts = rcpts,
		.nrcpts = whole_message ? s->tx.nrcpt : 0,
		.classified = v->event != NULL && strcmp(v->event, "classified") == 0,
	};

	struct queue_receive **notices;
	size_t nnotices;

	for (size_t i = 0; whole_message && i < s->tx.nrcpt; i++)
		rcpts[i] = s->tx.rcpts[i].addr;
	notices = smtp__policy_notices(s, &nnotices);
	queue_receive_refusal_notices_submit(s->srv->writer, &r, notices, nnotices,
	    nnotices > 0 ? smtp_notices_queued : NULL, s->srv);
	free(rcpts);
}

/*
 * The record of a refusal, without the reply: the log line and the audit
 * record. smtp_tarpit writes these at once and the reply later.
 */
void smtp__policy_record(struct smtp_session *s, const char *stage,
    const struct verdict *v, const char *rcpt)
{
	char code[16];

	snprintf(code, sizeof code, "%d", v->code);
	log_event(LOG_LVL_INFO, s->tx.active ? s->tx.qid_text : s->id, "event", "reject",
	    "stage", stage, "code", code, "dsn", v->enh, "reason", v->text, "client",
	    s->peer_addr, "to", rcpt, "rule", v->rule, NULL);
	smtp_audit_reject(s, stage, v, rcpt);
}

/*
 * A policy stage said no: reply with its words, log and audit the
 * refusal, and hang up when it asked for that.
 */
void smtp__policy_refused(struct smtp_session *s, const char *stage,
    const struct verdict *v, const char *rcpt)
{
	const char *line = v->text, *nl;

	/*
	 * A text of several lines is a multi-line reply, each line with the
	 * code and the enhanced code (RFC 5321 4.2.1, RFC 2034 section 4).
	 */
	while ((nl = strchr(line, '\n')) != NULL) {
		smtp__reply_more_enh(s, v->code, v->enh, "%.*s", (int)(nl - line), line);
		line = nl + 1;
	}
	smtp__reply(s, v->code, v->enh, "%s", line);
	smtp__policy_record(s, stage, v, rcpt);
	if (v->kind == VERDICT_DISCONNECT) {
		smtp__set_state(s, SMTP_ST_QUIT);
		s->close_after_flush = true;
	}
}
