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

#include "common/buf.h"
#include "common/log.h"
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

/* The audit record of a refusal: queue/ decides its fields. */
static void smtp_audit_reject(struct smtp_session *s, const char *stage,
    const struct verdict *v, const char *rcpt)
{
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
	};

	queue_receive_refusal_submit(s->srv->writer, &r);
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
	smtp__reply(s, v->code, v->enh, "%s", v->text);
	smtp__policy_record(s, stage, v, rcpt);
	if (v->kind == VERDICT_DISCONNECT) {
		smtp__set_state(s, SMTP_ST_QUIT);
		s->close_after_flush = true;
	}
}
