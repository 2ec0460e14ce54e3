/*
 * smtp_client: the outbound SMTP (RFC 5321) and LMTP (RFC 2033) state
 * machine, one session per next hop. The session connects to a numeric
 * address or a unix socket, reads the greeting, says EHLO (HELO after a
 * 5xx) or LHLO, upgrades with STARTTLS (RFC 3207) when the server offers
 * it, we have a client context and the socket is TCP, sends MAIL with
 * the parameters the server announced (SIZE, BODY=8BITMIME, SMTPUTF8, and
 * RET/ENVID/NOTIFY/ORCPT only when DSN is offered), one RCPT per
 * recipient, DATA, the body dot-stuffed from the store, the final dot and
 * QUIT. When the server announces PIPELINING (RFC 2920), MAIL, every RCPT
 * and DATA leave in one write and the replies are read in order; else
 * one command at a time.
 *
 * LMTP differs in two places only: LHLO (no HELO fallback: RFC 2033 4.1
 * makes LHLO mandatory), and after the dot one reply per recipient whose
 * RCPT got a 2xx, in RCPT order (RFC 2033 4.2).
 *
 * Connection reuse: when a transaction is over and the request has a
 * next callback, the session asks it for another message for the same
 * next hop; RSET goes out first when the transaction before failed after
 * MAIL (RFC 5321 4.1.1.5), and QUIT when next has nothing more, unless
 * the request asks to wait idle (idle_ms): then the connection stays
 * open for smtpc_resume, like Postfix's connection cache, and QUITs when
 * nothing comes in time. A 421 (RFC 5321 3.8: the server is closing) or
 * any session-level failure ends the session without asking.
 *
 * Every state has a timeout and a phrase for the log, from one table
 * (Postfix's smtp_proto.c "while sending end of data -- message may be
 * sent more than once"). Replies are parsed line by line with bounds:
 * SMTPC_LINE_MAX per line, SMTPC_REPLY_MAX per reply.
 *
 * Entry points: smtpc_start, smtpc_resume, smtpc_abort (smtpc_outcome_name and the text
 * of the dialogue, replies, EHLO keywords and body stuffing, are in
 * smtp_client_text.c).
 *
 * OWNERSHIP: the session owns its conn (and so its tlsio) and buffers.
 * The request and what it points to are the caller's, borrowed until
 * the completion (per-message fields: until passed to next). The body is
 * read chunk by chunk, each in its own short read transaction (never one
 * held across I/O, which would pin LMDB pages); a chunk is dot-stuffed
 * into a buffer and written, and the next one is read only when the
 * previous writes have completed, so a session holds about two chunks of
 * memory whatever the message size.
 *
 * Lifetime: the connection (socket, timer, write queue, TLS, line
 * reader) is a conn (relay/conn.h). Every path to the end goes through
 * smtpc_close, which marks the session closing and closes the conn;
 * libuv runs a pending connect callback (with UV_ECANCELED) before the
 * close callbacks, and the conn's closed callback frees the session and
 * then runs the completion. Callbacks check c->closing first.
 *
 * THREADS: loop thread only.
 * ERRORS: smtpc_start returns -EINVAL for unusable arguments; everything
 * else is reported through the completion (struct smtpc_result).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "relay/conn.h"
#include "relay/smtp_client.h"
#include "relay/smtp_client_int.h"
#include "relay/tlsio.h"

#define SMTPC_B(st) (1u << (st))

/*
 * Per state: the timeout (Postfix's defaults: smtp_connect_timeout,
 * smtp_helo_timeout, smtp_starttls_timeout, smtp_mail_timeout,
 * smtp_rcpt_timeout, smtp_data_init_timeout, smtp_data_xfer_timeout,
 * smtp_data_done_timeout, smtp_rset_timeout; QUIT is shorter because
 * every verdict is known by then and only the completion waits), what we
 * were doing for "timed out while ..." and "lost connection ... while
 * ...", the command a reply answers, whether a reply is awaited (BODY and
 * TLS read none), and the states that may follow. MAIL, RCPT and DATA may
 * lead to RSET (a failed transaction before the next message), DOT to
 * MAIL (the next message after a complete one); every state that can end
 * a transaction may lead to IDLE (the connection cache).
 */
static const struct smtpc_state_info {
	const char *name;
	uint64_t timeout_ms;
	const char *doing;
	const char *command;
	bool awaits_reply;
	unsigned next;
} smtpc_states[SMTPC_ST_COUNT] = {
	[SMTPC_ST_CONNECT] = { "connect", 30000, "connecting", "",
	    false, SMTPC_B(SMTPC_ST_GREETING) },
	[SMTPC_ST_GREETING] = { "greeting", 300000,
	    "receiving the initial server greeting", "",
	    true, SMTPC_B(SMTPC_ST_EHLO) | SMTPC_B(SMTPC_ST_LHLO) | SMTPC_B(SMTPC_ST_QUIT) },
	[SMTPC_ST_EHLO] = { "ehlo", 300000, "performing the EHLO handshake", "EHLO",
	    true, SMTPC_B(SMTPC_ST_HELO) | SMTPC_B(SMTPC_ST_STARTTLS) |
	    SMTPC_B(SMTPC_ST_MAIL) | SMTPC_B(SMTPC_ST_QUIT) | SMTPC_B(SMTPC_ST_IDLE) },
	[SMTPC_ST_LHLO] = { "lhlo", 300000, "performing the LHLO handshake", "LHLO",
	    true, SMTPC_B(SMTPC_ST_STARTTLS) | SMTPC_B(SMTPC_ST_MAIL) | SMTPC_B(SMTPC_ST_QUIT) |
	    SMTPC_B(SMTPC_ST_IDLE) },
	[SMTPC_ST_HELO] = { "helo", 300000, "performing the HELO handshake", "HELO",
	    true, SMTPC_B(SMTPC_ST_MAIL) | SMTPC_B(SMTPC_ST_QUIT) | SMTPC_B(SMTPC_ST_IDLE) },
	[SMTPC_ST_STARTTLS] = { "starttls", 300000, "sending STARTTLS", "STARTTLS",
	    true, SMTPC_B(SMTPC_ST_TLS) | SMTPC_B(SMTPC_ST_MAIL) | SMTPC_B(SMTPC_ST_QUIT) |
	    SMTPC_B(SMTPC_ST_IDLE) },
	[SMTPC_ST_TLS] = { "tls", 300000, "performing the TLS handshake", "",
	    false, SMTPC_B(SMTPC_ST_EHLO) | SMTPC_B(SMTPC_ST_LHLO) },
	[SMTPC_ST_MAIL] = { "mail", 300000, "sending MAIL FROM", "MAIL FROM",
	    true, SMTPC_B(SMTPC_ST_RCPT) | SMTPC_B(SMTPC_ST_RSET) | SMTPC_B(SMTPC_ST_QUIT) |
	    SMTPC_B(SMTPC_ST_IDLE) },
	[SMTPC_ST_RCPT] = { "rcpt", 300000, "sending RCPT TO", "RCPT TO",
	    true, SMTPC_B(SMTPC_ST_DATA) | SMTPC_B(SMTPC_ST_RSET) | SMTPC_B(SMTPC_ST_QUIT) |
	    SMTPC_B(SMTPC_ST_IDLE) },
	[SMTPC_ST_DATA] = { "data", 120000, "sending DATA command", "DATA",
	    true, SMTPC_B(SMTPC_ST_BODY) | SMTPC_B(SMTPC_ST_RSET) | SMTPC_B(SMTPC_ST_QUIT) |
	    SMTPC_B(SMTPC_ST_IDLE) },
	[SMTPC_ST_BODY] = { "body", 180000, "sending message body", "",
	    false, SMTPC_B(SMTPC_ST_DOT) },
	[SMTPC_ST_DOT] = { "dot", 600000,
	    "sending end of data -- message may be sent more than once",
	    "end of DATA", true, SMTPC_B(SMTPC_ST_MAIL) | SMTPC_B(SMTPC_ST_QUIT) |
	    SMTPC_B(SMTPC_ST_IDLE) },
	[SMTPC_ST_RSET] = { "rset", 20000, "sending RSET", "RSET",
	    true, SMTPC_B(SMTPC_ST_MAIL) | SMTPC_B(SMTPC_ST_QUIT) | SMTPC_B(SMTPC_ST_IDLE) },
	[SMTPC_ST_QUIT] = { "quit", 60000, "sending QUIT", "QUIT", true, 0 },
	/*
	 * Waiting for smtpc_resume; the timeout is the request's idle_ms. A
	 * reply is "awaited" so that a server's 421 or stray text is read.
	 */
	[SMTPC_ST_IDLE] = { "idle", 0, "waiting idle for the next message", "",
	    true, SMTPC_B(SMTPC_ST_MAIL) | SMTPC_B(SMTPC_ST_RSET) | SMTPC_B(SMTPC_ST_QUIT) },
};

static void smtpc_process(struct smtpc *c);
static void smtpc_body_pump(struct smtpc *c);
static void smtpc_quit(struct smtpc *c);

/* ------------------------------------------------------------ closing */

/* The conn has closed: the session goes, then its completion runs. */
static void smtpc_on_close(void *arg)
{
	struct smtpc *c = arg;
	struct smtpc_result res;
	smtpc_done_fn *done;

	res = c->res;
	done = c->done;
	arg = c->done_arg;
	buf_free(&c->rtext);
	buf_free(&c->chunk);
	buf_free(&c->out);
	free(c->accepted);
	free(c);
	/* After the free, so the completion may do anything it likes. */
	done(arg, &res);
}

static void smtpc_close(struct smtpc *c)
{
	if (c->closing)
		return;
	c->closing = true;
	conn_close(c->conn);
}

static void smtpc_set_rcpt(struct smtpc_rcpt *r, enum smtpc_outcome o, int code,
    const char *dsn, const char *text)
{
	r->outcome = o;
	r->code = code;
	str_copy(r->dsn, dsn, sizeof(r->dsn));
	str_copy(r->reply, text, sizeof(r->reply));
}

/* Gives every recipient still without a verdict this one. */
static void smtpc_set_open(struct smtpc *c, enum smtpc_outcome o, int code,
    const char *dsn, const char *text)
{
	size_t i;

	for (i = 0; i < c->rq.nrcpts; i++)
		if (c->rq.rcpts[i].outcome == SMTPC_NONE)
			smtpc_set_rcpt(&c->rq.rcpts[i], o, code, dsn, text);
}

/*
 * The session cannot go on: recipients without a verdict get a temporary
 * failure with this text, and the connection is closed. After QUIT every
 * verdict is known already, so trouble there changes nothing.
 */
static void smtpc_fail(struct smtpc *c, int status, const char *dsn, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void smtpc_fail(struct smtpc *c, int status, const char *dsn, const char *fmt, ...)
{
	va_list ap;

	if (c->closing)
		return;
	if (c->finished) {
		smtpc_close(c);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(c->res.error, sizeof(c->res.error), fmt, ap);
	va_end(ap);
	c->res.status = status < 0 ? status : -EPROTO;
	smtpc_set_open(c, SMTPC_TEMP, 0, dsn, c->res.error);
	c->finished = true;
	log_debug(c->rq.id, "smtp client: %s", c->res.error);
	smtpc_close(c);
}

static void smtpc_lost(struct smtpc *c, int status)
{
	smtpc_fail(c, status, "4.4.2", "lost connection with %s while %s", c->res.relay,
	    smtpc_states[c->state].doing);
}

static void smtpc_protocol_error(struct smtpc *c, const char *what)
{
	smtpc_fail(c, -EPROTO, "4.5.0", "%s from %s while %s", what, c->res.relay,
	    smtpc_states[c->state].doing);
}

void smtpc_abort(struct smtpc *c)
{
	if (c->closing)
		return;
	if (!c->finished) {
		c->res.status = -ECANCELED;
		snprintf(c->res.error, sizeof(c->res.error),
		    "delivery to %s abandoned while %s", c->res.relay,
		    smtpc_states[c->state].doing);
	}
	/* Recipients without a verdict keep SMTPC_NONE: nothing is known. */
	smtpc_close(c);
}

/* ------------------------------------------------------------- states */

static void smtpc_on_timeout(void *arg, enum conn_timeout which)
{
	struct smtpc *c = arg;

	(void)which; /* no lifetime is set: the per-state deadline only */
	if (c->closing)
		return;
	if (c->state == SMTPC_ST_IDLE)
		smtpc_quit(c); /* nothing came for idle_ms: a polite end */
	else if (c->state == SMTPC_ST_CONNECT)
		smtpc_fail(c, -ETIMEDOUT, "4.4.1", "connect to %s: Connection timed out",
		    c->res.relay);
	else
		smtpc_fail(c, -ETIMEDOUT, "4.4.2", "conversation with %s timed out while %s",
		    c->res.relay, smtpc_states[c->state].doing);
}

static void smtpc_timer_restart(struct smtpc *c)
{
	conn_deadline(c->conn, CONN_DL_FIXED, c->state == SMTPC_ST_IDLE ? c->rq.idle_ms :
	    smtpc_states[c->state].timeout_ms);
}

/*
 * The only place the state changes. An illegal transition is a bug in
 * this file, never something a peer can cause.
 */
static void smtpc_set_state(struct smtpc *c, enum smtpc_state st)
{
	if (!(smtpc_states[c->state].next & SMTPC_B(st)))
		panic("smtp client: illegal transition %s -> %s",
		    smtpc_states[c->state].name, smtpc_states[st].name);
	log_debug(c->rq.id, "smtp client %s: %s -> %s", c->res.relay,
	    smtpc_states[c->state].name, smtpc_states[st].name);
	c->state = st;
	smtpc_timer_restart(c);
}

/* --------------------------------------------------------------- output */

/* A write completed: the next body chunk goes once the last has. */
static void smtpc_on_written(void *arg)
{
	struct smtpc *c = arg;

	if (c->closing)
		return;
	if (c->state == SMTPC_ST_BODY && conn_out_pending(c->conn) == 0)
		smtpc_body_pump(c);
}

/* Plaintext out (through TLS once it is up). Check c->closing after. */
static void smtpc_send(struct smtpc *c, const char *data, size_t len)
{
	int rc;

	if (c->closing)
		return;
	conn_write(c->conn, data, len);
	rc = conn_flush(c->conn);
	if (rc < 0 && !c->closing)
		smtpc_fail(c, rc, "4.7.5", "TLS failure with %s while %s: %s", c->res.relay,
		    smtpc_states[c->state].doing, tlsio_error(c->tls));
}

/*
 * Adds one command line (CRLF added) to c->out, logging it at debug
 * level; smtpc_flush sends what was added. A pipelined group (RFC 2920)
 * is several appends and one flush, so it leaves in one write.
 */
static void smtpc_append(struct smtpc *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void smtpc_append(struct smtpc *c, const char *fmt, ...)
{
	size_t start = c->out.len;
	va_list ap;

	va_start(ap, fmt);
	buf_vprintf(&c->out, fmt, ap);
	va_end(ap);
	log_debug(c->rq.id, "smtp client > %s: %.*s", c->res.relay,
	    (int)(c->out.len - start), c->out.data + start);
	buf_append(&c->out, "\r\n", 2);
}

static void smtpc_flush(struct smtpc *c)
{
	smtpc_send(c, c->out.data, c->out.len);
	buf_reset(&c->out);
}

/* Sends one command line (CRLF added) and logs it at debug level. */
static void smtpc_command(struct smtpc *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void smtpc_command(struct smtpc *c, const char *fmt, ...)
{
	va_list ap;

	buf_reset(&c->out);
	va_start(ap, fmt);
	buf_vprintf(&c->out, fmt, ap);
	va_end(ap);
	log_debug(c->rq.id, "smtp client > %s: %s", c->res.relay, buf_cstr(&c->out));
	buf_append(&c->out, "\r\n", 2);
	smtpc_flush(c);
}

/* ------------------------------------------------------------ replies */

/* "host X said: REPLY (in reply to CMD command)", CMD the state's. */
static void smtpc_said(const struct smtpc *c, char *out, size_t outlen, const char *lead,
    const char *reply)
{
	smtpc__said(c, out, outlen, lead, reply, smtpc_states[c->state].command);
}

/*
 * The server refused something that concerns every open recipient:
 * "host X said: 550 ... (in reply to MAIL FROM command)". The caller
 * decides what follows (QUIT, or the end of this transaction).
 */
static void smtpc_site_record(struct smtpc *c, const char *lead)
{
	char text[SMTPC_TEXT_MAX], reply[SMTPC_TEXT_MAX], dsn[16];
	enum smtpc_outcome o = smtpc__class(c->rcode);

	smtpc__reply_text(c, reply, sizeof(reply));
	smtpc__reply_dsn(c, dsn, sizeof(dsn));
	if (o == SMTPC_OK) {
		/* A 2xx where something else was due is a protocol error. */
		o = SMTPC_TEMP;
		str_copy(dsn, "4.5.0", sizeof(dsn));
	}
	smtpc_said(c, text, sizeof(text), lead, reply);
	smtpc_set_open(c, o, c->rcode, dsn, text);
}

/* A refusal that ends the session: record it, then QUIT. */
static void smtpc_site_reply(struct smtpc *c, const char *lead)
{
	smtpc_site_record(c, lead);
	smtpc_quit(c);
}

static void smtpc_refuse_all(struct smtpc *c, const char *dsn, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A local verdict for every open recipient (no server reply). */
static void smtpc_refuse_all(struct smtpc *c, const char *dsn, const char *fmt, ...)
{
	char text[SMTPC_TEXT_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	smtpc_set_open(c, dsn[0] == '5' ? SMTPC_PERM : SMTPC_TEMP, 0, dsn, text);
}

/*
 * A message this server cannot take (smtpc__cannot_send) gets its local
 * verdict for every recipient; true then.
 */
static bool smtpc_mail_is_refused(struct smtpc *c)
{
	char text[SMTPC_TEXT_MAX], dsn[16];

	if (!smtpc__cannot_send(c, dsn, sizeof(dsn), text, sizeof(text)))
		return false;
	smtpc_set_open(c, dsn[0] == '5' ? SMTPC_PERM : SMTPC_TEMP, 0, dsn, text);
	return true;
}

static void smtpc_append_mail(struct smtpc *c)
{
	struct buf cmd;

	buf_init(&cmd);
	smtpc__mail_command(c, &cmd);
	smtpc_append(c, "%s", buf_cstr(&cmd));
	buf_free(&cmd);
}

static void smtpc_append_rcpt(struct smtpc *c, size_t idx)
{
	struct buf cmd;

	buf_init(&cmd);
	smtpc__rcpt_command(c, idx, &cmd);
	smtpc_append(c, "%s", buf_cstr(&cmd));
	buf_free(&cmd);
}

/*
 * MAIL for the current message. With PIPELINING (RFC 2920 3.1: MAIL,
 * RCPT and DATA may all be sent before any reply, DATA last in the
 * group) the whole envelope and DATA leave in one write; the replies are
 * then read in order through the same states as without it.
 */
static void smtpc_mail_send(struct smtpc *c)
{
	size_t i;

	smtpc_set_state(c, SMTPC_ST_MAIL);
	c->mail_sent = true;
	c->pipelined = c->ext_pipelining;
	buf_reset(&c->out);
	smtpc_append_mail(c);
	if (c->pipelined) {
		for (i = 0; i < c->rq.nrcpts; i++)
			smtpc_append_rcpt(c, i);
		smtpc_append(c, "DATA");
	}
	smtpc_flush(c);
}

static void smtpc_rcpt_send(struct smtpc *c)
{
	buf_reset(&c->out);
	smtpc_append_rcpt(c, c->rcpt_next);
	smtpc_flush(c);
}

static void smtpc_quit(struct smtpc *c)
{
	c->finished = true;
	c->res.status = 0;
	if (c->closing)
		return;
	smtpc_set_state(c, SMTPC_ST_QUIT);
	smtpc_command(c, "QUIT");
}

/*
 * Every verdict is known, but the connection is in a state we cannot
 * continue from (a server that accepted DATA with no recipient): hang up
 * without QUIT.
 */
static void smtpc_hangup(struct smtpc *c, const char *why)
{
	log_warn(c->rq.id, "closing the connection to %s: %s", c->res.relay, why);
	c->finished = true;
	c->res.status = 0;
	smtpc_close(c);
}

/* Installs the per-message fields of req: its recipients open, the transaction fresh. */
static void smtpc_install(struct smtpc *c, const struct smtpc_request *req)
{
	size_t i;

	c->rq.id = req->id;
	c->rq.store = req->store;
	c->rq.msg = req->msg;
	c->rq.rcpts = req->rcpts;
	c->rq.nrcpts = req->nrcpts;
	free(c->accepted);
	c->accepted = xcalloc(req->nrcpts, sizeof(*c->accepted));
	c->naccepted = 0;
	c->rcpt_next = 0;
	c->dot_next = 0;
	c->mail_sent = c->mail_failed = c->pipelined = c->dot_done = false;
	c->finished = false;
	c->may_idle = false;
	for (i = 0; i < c->rq.nrcpts; i++)
		smtpc_set_rcpt(&c->rq.rcpts[i], SMTPC_NONE, 0, "", "");
}

/*
 * Asks next for another message once the current one is over. Returns
 * true when one was installed, false when the session should end (or,
 * with may_idle set, wait idle).
 */
static bool smtpc_take_next(struct smtpc *c)
{
	const struct smtpc_request *n;

	if (c->rq.next == NULL || c->broken || c->closing)
		return false;
	/* The current message is final from here on, whatever happens next. */
	c->finished = true;
	c->res.status = 0;
	n = c->rq.next(c->rq.next_arg, &c->rq);
	if (c->closing)
		return false;
	if (n == NULL) {
		c->may_idle = c->rq.idle_ms > 0;
		return false;
	}
	if (n->msg == NULL || n->nrcpts == 0 || n->rcpts == NULL)
		panic("smtp client: next returned a request without message or recipients");
	smtpc_install(c, n);
	return true;
}

/*
 * Nothing more to send: QUIT, or wait idle for smtpc_resume. The
 * finished message and its recipients are the caller's again, so the
 * session forgets them (only its own copy of the id stays, for the log).
 */
static void smtpc_no_more(struct smtpc *c, bool need_rset)
{
	if (!c->may_idle || c->closing) {
		smtpc_quit(c);
		return;
	}
	str_copy(c->idle_id, c->rq.id, sizeof(c->idle_id));
	c->rq.id = c->idle_id;
	c->rq.msg = NULL;
	c->rq.rcpts = NULL;
	c->rq.nrcpts = 0;
	c->need_rset = need_rset;
	smtpc_set_state(c, SMTPC_ST_IDLE);
}

/*
 * Starts the current message's transaction: messages that cannot go over
 * this connection get their local verdict and the next one is asked for
 * (a loop, not recursion, however many are refused in a row).
 */
static void smtpc_txn_start(struct smtpc *c)
{
	while (smtpc_mail_is_refused(c)) {
		if (!smtpc_take_next(c)) {
			/* Nothing went out for the refused ones: no RSET owed. */
			smtpc_no_more(c, false);
			return;
		}
	}
	smtpc_mail_send(c);
}

/* RSET when the server may still hold part of a transaction (RFC 5321 4.1.1.5). */
static void smtpc_txn_begin(struct smtpc *c, bool need_rset)
{
	if (need_rset) {
		smtpc_set_state(c, SMTPC_ST_RSET);
		smtpc_command(c, "RSET");
		return;
	}
	smtpc_txn_start(c);
}

/*
 * The current transaction is over: every recipient has a verdict. On to
 * the next message, or QUIT, or idle.
 */
static void smtpc_txn_end(struct smtpc *c)
{
	bool need_rset = c->mail_sent && !c->dot_done;

	if (!smtpc_take_next(c)) {
		smtpc_no_more(c, need_rset);
		return;
	}
	smtpc_txn_begin(c, need_rset);
}

int smtpc_resume(struct smtpc *c, const struct smtpc_request *req)
{
	if (req->msg == NULL || req->nrcpts == 0 || req->rcpts == NULL)
		return -EINVAL;
	if (c->closing || c->state != SMTPC_ST_IDLE)
		return -EBUSY;
	smtpc_install(c, req);
	smtpc_txn_begin(c, c->need_rset);
	return 0;
}

/* After a successful EHLO, LHLO or HELO: STARTTLS, or on to MAIL. */
static void smtpc_after_helo(struct smtpc *c)
{
	/* A unix socket never leaves the host: no STARTTLS, nothing to require. */
	if (c->tls == NULL && !c->is_unix && c->ext_starttls && c->rq.tls != NULL) {
		smtpc_set_state(c, SMTPC_ST_STARTTLS);
		smtpc_command(c, "STARTTLS");
		return;
	}
	if (c->tls == NULL && !c->is_unix && c->rq.require_tls) {
		smtpc_refuse_all(c, "4.7.4", "TLS is required, but %s by host %s",
		    c->rq.tls == NULL ? "no client TLS context is configured for delivery to" :
		    "was not offered", c->res.relay);
		smtpc_quit(c);
		return;
	}
	smtpc_txn_start(c);
}

/* EHLO, or LHLO for LMTP (RFC 2033 4.1). */
static void smtpc_hello(struct smtpc *c)
{
	if (c->rq.lmtp) {
		smtpc_set_state(c, SMTPC_ST_LHLO);
		smtpc_command(c, "LHLO %s", c->rq.helo_name);
	} else {
		smtpc_set_state(c, SMTPC_ST_EHLO);
		smtpc_command(c, "EHLO %s", c->rq.helo_name);
	}
}

static void smtpc_tls_ready(struct smtpc *c)
{
	snprintf(c->res.tls, sizeof(c->res.tls), "%s %s", tlsio_version(c->tls),
	    tlsio_cipher(c->tls));
	/* Opportunistic: the certificate is not verified; required: it was. */
	log_info(c->rq.id, "%s TLS connection established to %s: %s with cipher %s",
	    c->rq.require_tls ? "Verified" : "Untrusted", c->res.relay,
	    tlsio_version(c->tls), tlsio_cipher(c->tls));
	/* RFC 3207 4.2: forget everything learned before; EHLO again. */
	smtpc__ext_reset(c);
	smtpc_hello(c);
}

/* The next recipient, from i on, whose RCPT got a 2xx; nrcpts if none. */
static size_t smtpc_next_accepted(const struct smtpc *c, size_t i)
{
	while (i < c->rq.nrcpts && !c->accepted[i])
		i++;
	return i;
}

static void smtpc_on_rcpt_reply(struct smtpc *c)
{
	char text[SMTPC_TEXT_MAX], reply[SMTPC_TEXT_MAX], dsn[16];
	struct smtpc_rcpt *r = &c->rq.rcpts[c->rcpt_next];

	/* After a refused MAIL the RCPT replies are only drained. */
	if (c->mail_failed) {
		/* Nothing to record. */
	} else if (c->rcode / 100 == 2) {
		c->accepted[c->rcpt_next] = true;
		c->naccepted++;
	} else {
		smtpc__reply_text(c, reply, sizeof(reply));
		smtpc__reply_dsn(c, dsn, sizeof(dsn));
		smtpc_said(c, text, sizeof(text), "said", reply);
		smtpc_set_rcpt(r, smtpc__class(c->rcode), c->rcode, dsn, text);
	}
	if (++c->rcpt_next < c->rq.nrcpts) {
		smtpc_timer_restart(c);
		if (!c->pipelined)
			smtpc_rcpt_send(c);
	} else if (c->pipelined) {
		/* DATA went out with the group; its reply comes next. */
		smtpc_set_state(c, SMTPC_ST_DATA);
	} else if (c->naccepted == 0) {
		smtpc_txn_end(c);
	} else {
		smtpc_set_state(c, SMTPC_ST_DATA);
		smtpc_command(c, "DATA");
	}
}

/*
 * A reply to the final dot. SMTP: one for every accepted recipient.
 * LMTP (RFC 2033 4.2): one per accepted recipient, in RCPT order.
 */
static void smtpc_on_dot_reply(struct smtpc *c)
{
	char text[SMTPC_TEXT_MAX], reply[SMTPC_TEXT_MAX], dsn[16];
	size_t i;

	smtpc__reply_text(c, reply, sizeof(reply));
	smtpc__reply_dsn(c, dsn, sizeof(dsn));
	if (!c->rq.lmtp) {
		if (c->rcode / 100 == 2) {
			for (i = 0; i < c->rq.nrcpts; i++)
				if (c->accepted[i])
					smtpc_set_rcpt(&c->rq.rcpts[i], SMTPC_OK, c->rcode, dsn,
					    reply);
		} else {
			smtpc_site_record(c, "said");
		}
		c->dot_done = true;
		smtpc_txn_end(c);
		return;
	}
	i = smtpc_next_accepted(c, c->dot_next);
	if (i < c->rq.nrcpts) {
		if (c->rcode / 100 == 2) {
			smtpc_set_rcpt(&c->rq.rcpts[i], SMTPC_OK, c->rcode, dsn, reply);
		} else {
			smtpc_said(c, text, sizeof(text), "said", reply);
			smtpc_set_rcpt(&c->rq.rcpts[i], smtpc__class(c->rcode), c->rcode, dsn,
			    text);
		}
		c->dot_next = i + 1;
	}
	if (smtpc_next_accepted(c, c->dot_next) < c->rq.nrcpts) {
		smtpc_timer_restart(c);
		return;
	}
	c->dot_done = true;
	smtpc_txn_end(c);
}

/* ---------------------------------------------------- one reply per state */

static void smtpc_on_greeting_reply(struct smtpc *c)
{
	if (c->rcode / 100 == 2)
		smtpc_hello(c);
	else
		smtpc_site_reply(c, "refused to talk to me");
}

static void smtpc_on_ehlo_reply(struct smtpc *c)
{
	int klass = c->rcode / 100;

	if (klass == 2) {
		smtpc__parse_ehlo(c);
		smtpc_after_helo(c);
	} else if (klass == 5) {
		/* RFC 5321 3.2: an old server; fall back to HELO. */
		smtpc_set_state(c, SMTPC_ST_HELO);
		smtpc__ext_reset(c);
		smtpc_command(c, "HELO %s", c->rq.helo_name);
	} else {
		smtpc_site_reply(c, "said");
	}
}

static void smtpc_on_lhlo_reply(struct smtpc *c)
{
	/* RFC 2033 4.1: every LMTP server supports LHLO; no fallback. */
	if (c->rcode / 100 == 2) {
		smtpc__parse_ehlo(c);
		smtpc_after_helo(c);
	} else {
		smtpc_site_reply(c, "said");
	}
}

static void smtpc_on_helo_reply(struct smtpc *c)
{
	if (c->rcode / 100 == 2)
		smtpc_after_helo(c);
	else
		smtpc_site_reply(c, "said");
}

static void smtpc_on_starttls_reply(struct smtpc *c)
{
	char text[SMTPC_TEXT_MAX];
	size_t discarded;

	if (c->rcode / 100 != 2) {
		smtpc__reply_text(c, text, sizeof(text));
		if (c->rq.require_tls) {
			smtpc_refuse_all(c, "4.7.4", "TLS is required, but host %s refused "
			    "to start TLS: %s", c->res.relay, text);
			smtpc_quit(c);
			return;
		}
		/* Opportunistic: carry on in cleartext, as Postfix does. */
		log_info(c->rq.id, "host %s refused STARTTLS (%s); continuing "
		    "without TLS", c->res.relay, text);
		smtpc_txn_start(c);
		return;
	}
	/*
	 * RFC 3207 4.2 and the CVE-2011-0411 class: anything the server sent
	 * after its 220 in cleartext was injected by someone; it must never
	 * be read as a TLS-protected reply. conn_start_tls drops it.
	 */
	smtpc_set_state(c, SMTPC_ST_TLS);
	/* Required TLS verifies the next hop's name; opportunistic: no SNI, no check. */
	discarded = c->rq.require_tls ? conn_start_tls(c->conn, tlsio_ctx_verifying(c->rq.tls),
	    false, c->rq.tls_name != NULL ? c->rq.tls_name : c->rq.host) :
	    conn_start_tls(c->conn, c->rq.tls, false, NULL);
	c->tls = conn_tls(c->conn);
	if (discarded > 0)
		log_warn(c->rq.id, "discarding %zu bytes of cleartext after "
		    "STARTTLS reply from %s", discarded, c->res.relay);
	if (!c->closing && tlsio_error(c->tls)[0] != '\0')
		smtpc_fail(c, -EPROTO, "4.7.5", "Cannot start TLS: handshake failure with %s: %s",
		    c->res.relay, tlsio_error(c->tls));
}

static void smtpc_on_mail_reply(struct smtpc *c)
{
	if (c->rcode / 100 == 2) {
		smtpc_set_state(c, SMTPC_ST_RCPT);
		c->rcpt_next = 0;
		if (!c->pipelined)
			smtpc_rcpt_send(c);
		return;
	}
	/* Every recipient gets the MAIL refusal. */
	smtpc_site_record(c, "said");
	c->mail_failed = true;
	if (c->pipelined) {
		/* RFC 2920 3.1: the RCPT and DATA replies still come. */
		smtpc_set_state(c, SMTPC_ST_RCPT);
		c->rcpt_next = 0;
	} else {
		smtpc_txn_end(c);
	}
}

static void smtpc_on_data_reply(struct smtpc *c)
{
	if (c->rcode == 354 && c->naccepted == 0) {
		/*
		 * Only possible pipelined: the server took DATA although MAIL
		 * or every RCPT failed (RFC 2920 3.1 says it must not). Its
		 * state is unknown; sending an empty message to learn it is not
		 * worth it.
		 */
		smtpc_hangup(c, "server accepted DATA without recipients");
	} else if (c->rcode == 354) {
		smtpc_set_state(c, SMTPC_ST_BODY);
		c->chunk_next = 0;
		c->body_bol = true;
		c->body_cr = false;
		smtpc_body_pump(c);
	} else {
		/* With no accepted recipient every verdict is known already. */
		if (c->naccepted > 0)
			smtpc_site_record(c, "said");
		smtpc_txn_end(c);
	}
}

static void smtpc_on_rset_reply(struct smtpc *c)
{
	char reply[SMTPC_TEXT_MAX], text[SMTPC_TEXT_MAX];

	if (c->rcode / 100 == 2) {
		smtpc_txn_start(c);
		return;
	}
	/*
	 * The server cannot start over. That says nothing about the new
	 * message, so even a 5xx is only temporary for it: it waits for a
	 * fresh connection.
	 */
	c->broken = true;
	smtpc__reply_text(c, reply, sizeof(reply));
	smtpc_said(c, text, sizeof(text), "said", reply);
	smtpc_set_open(c, SMTPC_TEMP, c->rcode, "4.5.0", text);
	smtpc_quit(c);
}

static void smtpc_on_quit_reply(struct smtpc *c)
{
	smtpc_close(c);
}

/* Nothing was asked: a server talking out of turn is not reused. */
static void smtpc_on_idle_reply(struct smtpc *c)
{
	smtpc_protocol_error(c, "unexpected reply");
}

/* What a reply means depends on the state it answers: one row each. */
typedef void smtpc_reply_fn(struct smtpc *c);

static smtpc_reply_fn *const smtpc_reply_handlers[SMTPC_ST_COUNT] = {
	[SMTPC_ST_GREETING] = smtpc_on_greeting_reply,
	[SMTPC_ST_EHLO] = smtpc_on_ehlo_reply,
	[SMTPC_ST_LHLO] = smtpc_on_lhlo_reply,
	[SMTPC_ST_HELO] = smtpc_on_helo_reply,
	[SMTPC_ST_STARTTLS] = smtpc_on_starttls_reply,
	[SMTPC_ST_MAIL] = smtpc_on_mail_reply,
	[SMTPC_ST_RCPT] = smtpc_on_rcpt_reply,
	[SMTPC_ST_DATA] = smtpc_on_data_reply,
	[SMTPC_ST_DOT] = smtpc_on_dot_reply,
	[SMTPC_ST_RSET] = smtpc_on_rset_reply,
	[SMTPC_ST_QUIT] = smtpc_on_quit_reply,
	[SMTPC_ST_IDLE] = smtpc_on_idle_reply,
	/* CONNECT, TLS and BODY await no reply (smtpc_states[].awaits_reply). */
};

static void smtpc_on_reply(struct smtpc *c)
{
	char text[SMTPC_TEXT_MAX];

	if (log_is_debug()) {
		smtpc__reply_text(c, text, sizeof(text));
		log_debug(c->rq.id, "smtp client < %s: %s", c->res.relay, text);
	}
	/*
	 * RFC 5321 3.8: 421 means the server is closing the channel. Every
	 * open recipient gets it (no later pipelined reply will come), and
	 * the connection is not reused.
	 */
	if (c->rcode == 421 && c->state != SMTPC_ST_QUIT) {
		c->broken = true;
		smtpc_site_reply(c, c->state == SMTPC_ST_GREETING ? "refused to talk to me" :
		    "said");
		return;
	}
	if (smtpc_reply_handlers[c->state] == NULL)
		panic("smtp client: reply in state %s", smtpc_states[c->state].name);
	smtpc_reply_handlers[c->state](c);
}

/*
 * Takes complete lines from the input while a reply is awaited. Every
 * reason to stop is its own branch: the session closed, the state awaits
 * no reply (body, TLS handshake), or no complete line is buffered.
 */
static void smtpc_process(struct smtpc *c)
{
	for (;;) {
		struct conn_line l;
		int r;

		if (c->closing)
			break;
		if (!smtpc_states[c->state].awaits_reply)
			break;
		if (c->in_overflow) {
			smtpc_protocol_error(c, "too much reply data");
			break;
		}
		/* Lines end at LF, CR LF or not (real servers differ). */
		if (!conn_line_get(c->conn, SMTPC_LINE_MAX + 2, &l)) {
			if (l.long_line)
				smtpc_protocol_error(c, "reply line too long");
			break;
		}
		if (l.content > SMTPC_LINE_MAX) {
			smtpc_protocol_error(c, "reply line too long");
			break;
		}
		r = smtpc__reply_line(c, l.data, l.content);
		if (r < 0) {
			smtpc_protocol_error(c, "malformed reply");
			break;
		}
		if (r == 0)
			continue;
		smtpc_on_reply(c);
		c->rlines = 0;
		c->rcode = 0;
		buf_reset(&c->rtext);
	}
}

/* ---------------------------------------------------------------- body */

static int smtpc_chunk_read(struct smtpc *c, uint32_t seq, struct buf *out)
{
	struct queue_txn *txn;
	int rc;

	rc = queue_txn_begin(c->rq.store, false, &txn);
	if (rc < 0)
		return rc;
	rc = queue_body_get(txn, c->rq.msg->id, seq, out);
	queue_txn_abort(txn);
	return rc;
}

/*
 * The end of the data onto c->out (RFC 5321 4.1.1.4: CRLF before the dot
 * line), and the state that awaits its reply.
 */
static void smtpc_body_end(struct smtpc *c)
{
	if (c->body_cr) {
		c->body_cr = false;
		c->body_bol = true;
		buf_append(&c->out, "\r\n", 2);
	}
	if (!c->body_bol)
		buf_append(&c->out, "\r\n", 2);
	buf_append(&c->out, ".\r\n", 3);
	smtpc_set_state(c, SMTPC_ST_DOT);
}

/*
 * Sends the next chunk once the previous one is on the wire, so at most
 * one chunk (stuffed) is in flight and memory stays bounded. The final
 * dot leaves in the same write as the last chunk: one segment fewer per
 * message for both ends.
 */
static void smtpc_body_pump(struct smtpc *c)
{
	while (!c->closing && c->state == SMTPC_ST_BODY && conn_out_pending(c->conn) == 0) {
		int rc;

		buf_reset(&c->out);
		if (c->chunk_next < c->rq.msg->nchunks) {
			buf_reset(&c->chunk);
			rc = smtpc_chunk_read(c, c->chunk_next, &c->chunk);
			if (rc < 0) {
				/* Never send the dot after a partial body: close instead. */
				smtpc_fail(c, rc, "4.3.0", "cannot read body chunk %u of the "
				    "message: %s", (unsigned)c->chunk_next, queue_strerror(rc));
				return;
			}
			c->chunk_next++;
			smtpc__stuff(c, c->chunk.data, c->chunk.len, &c->out);
			buf_reset(&c->chunk);
			smtpc_timer_restart(c);
		}
		if (c->chunk_next >= c->rq.msg->nchunks)
			smtpc_body_end(c);
		smtpc_send(c, c->out.data, c->out.len);
		buf_reset(&c->out);
	}
	/* A reply may already be buffered (an early answer). */
	if (!c->closing && c->state == SMTPC_ST_DOT)
		smtpc_process(c);
}

/* --------------------------------------------------------------- input */

static void smtpc_on_data(void *arg)
{
	struct smtpc *c = arg;

	if (c->closing)
		return;
	/* A server that sends more than any reply can be is broken. */
	if (conn_in_len(c->conn) > SMTPC_IN_MAX)
		c->in_overflow = true;
	smtpc_process(c);
}

static void smtpc_on_tls_established(void *arg)
{
	struct smtpc *c = arg;

	if (!c->closing && c->state == SMTPC_ST_TLS)
		smtpc_tls_ready(c);
}

static void smtpc_on_lost(void *arg, int status, bool tls)
{
	struct smtpc *c = arg;

	if (c->closing)
		return;
	if (!tls || status == -ECONNRESET)
		smtpc_lost(c, status);
	else if (c->state == SMTPC_ST_TLS)
		smtpc_fail(c, status, "4.7.5", "Cannot start TLS: handshake failure with %s: %s",
		    c->res.relay, tlsio_error(c->tls));
	else
		smtpc_fail(c, status, "4.7.5", "TLS failure with %s while %s: %s", c->res.relay,
		    smtpc_states[c->state].doing, tlsio_error(c->tls));
}

static const struct conn_callbacks smtpc_conn_callbacks = {
	.data = smtpc_on_data,
	.written = smtpc_on_written,
	.timeout = smtpc_on_timeout,
	.lost = smtpc_on_lost,
	.tls_established = smtpc_on_tls_established,
	.closed = smtpc_on_close,
};

static void smtpc_on_connect(uv_connect_t *req, int status)
{
	struct smtpc *c = req->data;

	if (c->closing)
		return;
	if (status < 0) {
		smtpc_fail(c, status, "4.4.1", "connect to %s: %s", c->res.relay,
		    uv_strerror(status));
		return;
	}
	conn_want_read(c->conn, true);
	smtpc_set_state(c, SMTPC_ST_GREETING);
}

/* --------------------------------------------------------------- start */

int smtpc_start(uv_loop_t *loop, const struct smtpc_request *req,
    smtpc_done_fn *done, void *arg, struct smtpc **out)
{
	struct sockaddr_storage ss;
	struct smtpc *c;
	size_t i;
	int rc;

	*out = NULL;
	memset(&ss, 0, sizeof(ss));
	if (req->nrcpts == 0 || req->rcpts == NULL || req->msg == NULL)
		return -EINVAL;
	if (req->unix_path != NULL) {
		size_t len = strlen(req->unix_path);

		/* sun_path holds the path and its NUL; libuv would truncate. */
		if (len == 0 || len >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
			return -EINVAL;
	} else if (req->host == NULL ||
	    (uv_ip4_addr(req->host, req->port, (struct sockaddr_in *)&ss) != 0 &&
	    uv_ip6_addr(req->host, req->port, (struct sockaddr_in6 *)&ss) != 0)) {
		return -EINVAL;
	}

	c = xcalloc(1, sizeof(*c));
	c->loop = loop;
	c->addr = ss;
	c->rq = *req;
	c->is_unix = req->unix_path != NULL;
	c->done = done;
	c->done_arg = arg;
	c->state = SMTPC_ST_CONNECT;
	c->accepted = xcalloc(req->nrcpts, sizeof(*c->accepted));
	buf_init(&c->rtext);
	buf_init(&c->chunk);
	buf_init(&c->out);
	if (c->is_unix)
		snprintf(c->res.relay, sizeof(c->res.relay), "unix:%s", req->unix_path);
	else
		snprintf(c->res.relay, sizeof(c->res.relay), "%s[%s]:%u", req->host,
		    req->host, (unsigned)req->port);
	for (i = 0; i < req->nrcpts; i++)
		smtpc_set_rcpt(&req->rcpts[i], SMTPC_NONE, 0, "", "");

	c->conn = conn_new(loop, c->is_unix ? CONN_PIPE : CONN_TCP);
	conn_set_callbacks(c->conn, &smtpc_conn_callbacks, c);
	*out = c;
	smtpc_timer_restart(c);
	c->connect_req.data = c;
	if (c->is_unix) {
		/* Errors (ENOENT, ECONNREFUSED) come through the callback. */
		uv_pipe_connect(&c->connect_req, (uv_pipe_t *)conn_stream(c->conn), req->unix_path,
		    smtpc_on_connect);
		return 0;
	}
	/*
	 * The body goes out in several writes and the final dot in another;
	 * with Nagle's algorithm each small write after a large one waits for
	 * the peer's delayed ACK (40 ms on Linux) and caps a session at about
	 * 25 messages a second.
	 */
	uv_tcp_nodelay((uv_tcp_t *)conn_stream(c->conn), 1);
	rc = uv_tcp_connect(&c->connect_req, (uv_tcp_t *)conn_stream(c->conn),
	    (const struct sockaddr *)&c->addr, smtpc_on_connect);
	if (rc < 0)
		smtpc_fail(c, rc, "4.4.1", "connect to %s: %s", c->res.relay, uv_strerror(rc));
	return 0;
}
