/*
 * smtp_session: the inbound SMTP session, its state machine and its
 * command dispatcher.
 *
 * Entry points: smtp_server_init, smtp_session_accept, smtp_session_new,
 * smtp_session_start, smtp_session_refuse, smtp_session_peer,
 * smtp_server_shutdown (smtp_session.h); inside the session,
 * smtp__set_state, smtp__process_input, smtp__ref/smtp__unref
 * (smtp_session_int.h).
 *
 * The session speaks over a conn (relay/conn.h): any libuv stream, so a
 * unit test can hand it one end of a socketpair. The conn owns the socket,
 * the write queue, the bounded line reader, TLS and the deadlines; the
 * session decides which deadline applies (the next command line within
 * command_timeout of its first byte, DATA/BDAT bytes within data_timeout
 * of the last read, the whole session within max_session_time).
 *
 * Each command goes through parse (smtp_parse.c, pure), check (the
 * preconditions in its row of smtp_commands: state, TLS, AUTH, role,
 * argument; one immediate reply, counted as an error), policy
 * (policy_run, maybe asynchronous) and proceed (the handler, in
 * smtp_commands.c, smtp_data.c or smtp_auth.c). While a command waits on
 * policy or on the queue writer, the session is "busy": it stops parsing
 * and stops reading, so pipelined commands are answered strictly in order
 * (RFC 2920). Replies are collected in the conn's output and written when
 * the input runs dry, at a last-in-group command or when the session must
 * wait, so a pipelined group costs one write. While more than
 * CONN_OUT_HIGH_WATER of replies wait for a client that does not read,
 * the session stops processing and the conn stops reading. NOOP, RSET,
 * HELP, VRFY, EHLO and HELO count toward junk_command_limit; a queued
 * message resets the count.
 *
 * OWNERSHIP: a session owns its conn and transaction. Every asynchronous
 * operation in flight (policy, writer operations, the conn until its
 * closed callback) holds a reference; the memory goes when the last one
 * is dropped. s->conn is NULL once the conn has closed. Completions check
 * s->closing before touching the connection.
 * THREADS: loop thread only. Policy verdicts and writer completions
 * (queue_receive_*) come back on the loop thread; the writer's apply
 * functions belong to queue/receive.c, and no session code runs on the
 * writer thread.
 * ERRORS: internal failures become 4xx replies; nothing a peer sends
 * reaches panic() or fatal() (an illegal state change is our bug, and
 * smtp__set_state panics on it).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "relay/conn.h"
#include "relay/smtp_parse.h"
#include "relay/smtp_session.h"
#include "relay/smtp_session_int.h"

/* Input kept while commands wait: a pipelining client cannot grow it past this. */
#define SMTP_INPUT_HIGH_WATER (256 * 1024)
/* How long a last reply may wait for a client that does not read it. */
#define SMTP_GOODBYE_WAIT_MS 10000
/* Body bytes handed to the writer and not yet committed before we stop reading. */
#define SMTP_INFLIGHT_HIGH_WATER (4 * 1024 * 1024)

/* ----------------------------------------------------- state machine */

static const char *const smtp_state_names[SMTP_ST_COUNT] = {
	"connected", "handshake", "init", "ready", "mail", "rcpt", "data",
	"bdat", "bdat-idle", "quit",
};

#define SMTP_T(st) (1u << (st))
/* Legal transitions: smtp__set_state() asserts against this table. */
static const unsigned smtp_transitions[SMTP_ST_COUNT] = {
	[SMTP_ST_CONNECTED] = SMTP_T(SMTP_ST_INIT) | SMTP_T(SMTP_ST_HANDSHAKE) | SMTP_T(SMTP_ST_QUIT),
	[SMTP_ST_HANDSHAKE] = SMTP_T(SMTP_ST_INIT) | SMTP_T(SMTP_ST_QUIT),
	/*
	 * INIT, READY and MAIL -> BDAT and back: a refused BDAT still has its
	 * octets read (RFC 3030 section 4), then the session returns to where
	 * the command found it.
	 */
	[SMTP_ST_INIT] = SMTP_T(SMTP_ST_READY) | SMTP_T(SMTP_ST_BDAT) | SMTP_T(SMTP_ST_QUIT),
	[SMTP_ST_READY] = SMTP_T(SMTP_ST_READY) | SMTP_T(SMTP_ST_MAIL) |
	    SMTP_T(SMTP_ST_HANDSHAKE) | SMTP_T(SMTP_ST_BDAT) | SMTP_T(SMTP_ST_QUIT),
	[SMTP_ST_MAIL] = SMTP_T(SMTP_ST_RCPT) | SMTP_T(SMTP_ST_READY) | SMTP_T(SMTP_ST_BDAT) |
	    SMTP_T(SMTP_ST_QUIT),
	[SMTP_ST_RCPT] = SMTP_T(SMTP_ST_RCPT) | SMTP_T(SMTP_ST_DATA) | SMTP_T(SMTP_ST_BDAT) |
	    SMTP_T(SMTP_ST_READY) | SMTP_T(SMTP_ST_QUIT),
	[SMTP_ST_DATA] = SMTP_T(SMTP_ST_READY) | SMTP_T(SMTP_ST_QUIT),
	[SMTP_ST_BDAT] = SMTP_T(SMTP_ST_BDAT_IDLE) | SMTP_T(SMTP_ST_READY) | SMTP_T(SMTP_ST_INIT) |
	    SMTP_T(SMTP_ST_MAIL) | SMTP_T(SMTP_ST_RCPT) | SMTP_T(SMTP_ST_QUIT),
	[SMTP_ST_BDAT_IDLE] = SMTP_T(SMTP_ST_BDAT) | SMTP_T(SMTP_ST_READY) | SMTP_T(SMTP_ST_QUIT),
	[SMTP_ST_QUIT] = SMTP_T(SMTP_ST_QUIT),
};

void smtp__set_state(struct smtp_session *s, enum smtp_state to)
{
	if (!(smtp_transitions[s->state] & SMTP_T(to)))
		panic("smtp session %s: illegal transition %s -> %s", s->id,
		    smtp_state_names[s->state], smtp_state_names[to]);
	log_debug(s->id, "state %s -> %s", smtp_state_names[s->state], smtp_state_names[to]);
	s->state = to;
}

static uint64_t smtp_session_counter;

static void smtp_arm_timer(struct smtp_session *s);

/* ---------------------------------------------------------- lifetime */

void smtp__ref(struct smtp_session *s)
{
	s->refs++;
}

void smtp__unref(struct smtp_session *s)
{
	if (--s->refs > 0)
		return;
	if (s->admitted && s->srv->on_closed)
		s->srv->on_closed(s->srv->on_closed_arg, &s->peer);
	buf_free(&s->tx.chunk);
	free(s->tx.rcpts);
	cfg_unref(s->cfg);
	free(s);
}

void smtp_server_init(struct smtp_server *srv, uv_loop_t *loop)
{
	memset(srv, 0, sizeof *srv);
	srv->loop = loop;
}

/* ------------------------------------------------------- close paths */

static void smtp_list_remove(struct smtp_session *s)
{
	struct smtp_server *srv = s->srv;

	if (s->prev)
		s->prev->next = s->next;
	else if (srv->sessions == s)
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
	srv->nsessions--;
}

/* The session side of the end: once, whichever way the conn went. */
static void smtp_end(struct smtp_session *s)
{
	if (s->closing)
		return;
	s->closing = true;
	smtp__tarpit_cancel(s);
	smtp__tx_reset(s);
	smtp_list_remove(s);
	if (s->admitted) {
		char ncmd[16], nerr[16];

		snprintf(ncmd, sizeof ncmd, "%u", s->ncommands);
		snprintf(nerr, sizeof nerr, "%u", s->errors);
		log_event(LOG_LVL_INFO, s->id, "event", "disconnect", "client", s->peer_addr,
		    "commands", ncmd, "errors", nerr, NULL);
	}
}

/* The conn's handles are closed: it holds the session no longer. */
static void smtp_conn_closed(void *arg)
{
	struct smtp_session *s = arg;

	smtp_end(s);
	s->conn = NULL;
	s->tls = NULL;
	smtp__unref(s);
}

static void smtp_close(struct smtp_session *s)
{
	if (s->closing)
		return;
	smtp_end(s);
	conn_close(s->conn);
}

/* Sends what is buffered, then closes once the kernel has it. */
static void smtp_close_graceful(struct smtp_session *s)
{
	if (s->closing || s->shutdown_sent)
		return;
	s->shutdown_sent = true;
	conn_shutdown(s->conn);
	/* A peer that never reads must not hold the slot: bound the wait. */
	if (!s->closing)
		conn_deadline(s->conn, CONN_DL_FIXED, SMTP_GOODBYE_WAIT_MS);
}

/* ------------------------------------------------------ shared steps */

/* An asynchronous step is over: take up the input where it stopped. */
void smtp__resume(struct smtp_session *s)
{
	smtp__update_reading(s);
	smtp__process_input(s);
}

/* s->preq from what the session knows, for one policy stage. */
void smtp__fill_request(struct smtp_session *s, enum policy_stage stage)
{
	memset(&s->preq, 0, sizeof s->preq);
	s->preq.stage = stage;
	s->preq.session_id = s->tx.active ? s->tx.qid_text : s->id;
	s->preq.client_addr = s->peer_addr;
	s->preq.client_trusted = s->trusted;
	s->preq.listener_role = cfg_role_name(s->role);
	s->preq.tls = s->tls_active;
	s->preq.helo = s->helo;
	s->preq.sender = s->tx.active ? s->tx.sender : "";
	s->preq.nrcpt = s->tx.nrcpt;
	s->preq.rcpt = "";
	s->preq.rcpt_domain = "";
	s->preq.auth_user = s->authenticated ? s->auth_user : NULL;
	s->preq.declared_size = s->tx.active && s->tx.params.has_size ? s->tx.params.size : 0;
	s->preq.tx = s->tx.active ? s->tx.ptx : NULL;
}

/* ---------------------------------------------------------- STARTTLS */

static void smtp_start_tls(struct smtp_session *s)
{
	size_t discarded = conn_start_tls(s->conn, s->srv->tls, true, NULL);

	s->tls = conn_tls(s->conn);
	/*
	 * RFC 3207 section 4.2 and CVE-2011-0411: whatever the client sent
	 * after STARTTLS came in cleartext and must never be executed.
	 */
	if (discarded > 0) {
		char n[24];

		snprintf(n, sizeof n, "%zu", discarded);
		log_event(LOG_LVL_WARN, s->id, "event", "starttls_injection", "client",
		    s->peer_addr, "discarded_bytes", n, "reason",
		    "plaintext pipelined after STARTTLS", NULL);
	}
	smtp__set_state(s, SMTP_ST_HANDSHAKE);
	smtp_arm_timer(s);
}

static void smtp_cmd_starttls(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	(void)cmd;
	(void)arg;
	/* conn_start_tls sends this in clear before the handshake. */
	smtp__reply(s, 220, "2.0.0", "Ready to start TLS");
	s->helo[0] = '\0';
	s->esmtp = false;
	smtp_start_tls(s);
}

/* ----------------------------------------------------- command table */

/*
 * Preconditions a command row can carry, checked by the dispatcher in the
 * row's order before the handler runs (OpenSMTPD's check/proceed split).
 * Each failure has one fixed reply and counts toward max_bad_commands.
 */
enum smtp_pre {
	SMTP_PRE_END,
	SMTP_PRE_NO_ARG,        /* 501 5.5.4 "Error: X takes no argument" */
	SMTP_PRE_ARG,           /* 501 5.5.4 "Error: X needs an argument" */
	SMTP_PRE_STATE,         /* the row's states, else 503 5.5.1 */
	SMTP_PRE_NO_TLS,        /* 503 5.5.1: TLS already active */
	SMTP_PRE_TLS_OFFERED,   /* 502 5.5.1: no certificate, or implicit TLS */
	SMTP_PRE_SUBMIT_TLS,    /* submission listener: 530 5.7.0 before STARTTLS */
	SMTP_PRE_AUTHED,        /* submission roles: 530 5.7.0 before AUTH */
	SMTP_PRE_AUTH_OFFERED,  /* 502 5.5.1 on mx or without a user store */
	SMTP_PRE_AUTH_TLS,      /* 538 5.7.11: AUTH only under TLS (RFC 4954) */
	SMTP_PRE_NOT_AUTHED,    /* 503 5.5.1: already authenticated */
};
#define SMTP_PRE_MAX 4

/* Counts toward junk_command_limit (Postfix's smtpd_junk_command_limit). */
#define SMTP_CMD_JUNK 0x1u
/*
 * RFC 2920 section 3.1: EHLO, DATA, VRFY, EXPN, TURN, QUIT and NOOP (and
 * STARTTLS, AUTH: RFC 3207, 4954) may only end a pipelined group; the
 * client waits for their reply, so it is flushed at once.
 */
#define SMTP_CMD_LAST_IN_GROUP 0x2u

struct smtp_cmd_row {
	smtp_cmd_fn *fn;
	unsigned states;            /* SMTP_PRE_STATE: where it is allowed */
	const char *state_text;     /* its refusal after EHLO; NULL: the transaction words */
	unsigned flags;
	enum smtp_pre pre[SMTP_PRE_MAX];
};

#define SMTP_TX_STATES (SMTP_T(SMTP_ST_MAIL) | SMTP_T(SMTP_ST_RCPT))

/* One row per verb: handler, where it is allowed, what it needs. */
static const struct smtp_cmd_row smtp_commands[] = {
	[SMTP_CMD_HELO] = { smtp__cmd_helo, 0, NULL,
	    SMTP_CMD_JUNK | SMTP_CMD_LAST_IN_GROUP, { SMTP_PRE_END } },
	[SMTP_CMD_EHLO] = { smtp__cmd_helo, 0, NULL,
	    SMTP_CMD_JUNK | SMTP_CMD_LAST_IN_GROUP, { SMTP_PRE_END } },
	[SMTP_CMD_MAIL] = { smtp__cmd_mail, SMTP_T(SMTP_ST_READY), NULL, 0,
	    { SMTP_PRE_STATE, SMTP_PRE_SUBMIT_TLS, SMTP_PRE_AUTHED } },
	[SMTP_CMD_RCPT] = { smtp__cmd_rcpt, SMTP_TX_STATES, NULL, 0, { SMTP_PRE_STATE } },
	[SMTP_CMD_DATA] = { smtp__cmd_data, SMTP_T(SMTP_ST_RCPT), NULL, SMTP_CMD_LAST_IN_GROUP,
	    { SMTP_PRE_NO_ARG, SMTP_PRE_STATE } },
	/* BDAT checks its state itself: a refused chunk is still read (RFC 3030). */
	[SMTP_CMD_BDAT] = { smtp__cmd_bdat, 0, NULL, 0, { SMTP_PRE_END } },
	[SMTP_CMD_RSET] = { smtp__cmd_rset, 0, NULL, SMTP_CMD_JUNK, { SMTP_PRE_NO_ARG } },
	[SMTP_CMD_NOOP] = { smtp__cmd_noop, 0, NULL,
	    SMTP_CMD_JUNK | SMTP_CMD_LAST_IN_GROUP, { SMTP_PRE_END } },
	[SMTP_CMD_QUIT] = { smtp__cmd_quit, 0, NULL, SMTP_CMD_LAST_IN_GROUP, { SMTP_PRE_END } },
	[SMTP_CMD_HELP] = { smtp__cmd_help, 0, NULL, SMTP_CMD_JUNK, { SMTP_PRE_END } },
	[SMTP_CMD_VRFY] = { smtp__cmd_vrfy, 0, NULL,
	    SMTP_CMD_JUNK | SMTP_CMD_LAST_IN_GROUP, { SMTP_PRE_ARG } },
	[SMTP_CMD_EXPN] = { smtp__cmd_expn, 0, NULL, SMTP_CMD_LAST_IN_GROUP, { SMTP_PRE_END } },
	[SMTP_CMD_STARTTLS] = { smtp_cmd_starttls, SMTP_T(SMTP_ST_READY),
	    "Error: STARTTLS not allowed in a mail transaction", SMTP_CMD_LAST_IN_GROUP,
	    { SMTP_PRE_NO_TLS, SMTP_PRE_TLS_OFFERED, SMTP_PRE_NO_ARG, SMTP_PRE_STATE } },
	/* RFC 4954 section 4: not during a mail transaction. */
	[SMTP_CMD_AUTH] = { smtp__cmd_auth, SMTP_T(SMTP_ST_READY),
	    "Error: AUTH not allowed during a mail transaction", SMTP_CMD_LAST_IN_GROUP,
	    { SMTP_PRE_AUTH_OFFERED, SMTP_PRE_AUTH_TLS, SMTP_PRE_NOT_AUTHED, SMTP_PRE_STATE } },
};

/* Why a transaction command is refused in the current state (503 5.5.1). */
static void smtp_state_refusal(struct smtp_session *s, enum smtp_cmd cmd)
{
	switch (s->state) {
	case SMTP_ST_INIT:
		smtp__reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
		break;
	case SMTP_ST_READY:
		smtp__reply(s, 503, "5.5.1", "Error: need MAIL command");
		break;
	case SMTP_ST_MAIL:
		if (cmd == SMTP_CMD_MAIL)
			smtp__reply(s, 503, "5.5.1", "Error: nested MAIL command");
		else
			smtp__reply(s, 503, "5.5.1", "Error: need RCPT command");
		break;
	case SMTP_ST_RCPT:
		smtp__reply(s, 503, "5.5.1", "Error: nested MAIL command");
		break;
	case SMTP_ST_BDAT_IDLE:
		smtp__reply(s, 503, "5.5.1", "Error: %s not allowed inside a BDAT transaction",
		    smtp_cmd_name(cmd));
		break;
	default:
		smtp__reply(s, 503, "5.5.1", "Error: bad sequence of commands");
		break;
	}
}

/* One precondition of a row: true when it holds, else the refusal is sent. */
static bool smtp_precondition(struct smtp_session *s, enum smtp_cmd cmd,
    const struct smtp_cmd_row *row, enum smtp_pre pre, const char *arg)
{
	switch (pre) {
	case SMTP_PRE_END:
		return true;
	case SMTP_PRE_NO_ARG:
		if (arg[0] == '\0')
			return true;
		smtp__reply(s, 501, "5.5.4", "Error: %s takes no argument", smtp_cmd_name(cmd));
		return false;
	case SMTP_PRE_ARG:
		if (arg[0] != '\0')
			return true;
		smtp__reply(s, 501, "5.5.4", "Error: %s needs an argument", smtp_cmd_name(cmd));
		return false;
	case SMTP_PRE_STATE:
		if (row->states & SMTP_T(s->state))
			return true;
		if (row->state_text == NULL)
			smtp_state_refusal(s, cmd);
		else
			smtp__reply(s, 503, "5.5.1", "%s", s->state == SMTP_ST_INIT ?
			    "Error: send EHLO first" : row->state_text);
		return false;
	case SMTP_PRE_NO_TLS:
		if (!s->tls_active)
			return true;
		smtp__reply(s, 503, "5.5.1", "Error: TLS already active");
		return false;
	case SMTP_PRE_TLS_OFFERED:
		if (s->srv->tls != NULL && s->role != CFG_ROLE_SUBMISSIONS)
			return true;
		smtp__reply(s, 502, "5.5.1", "Error: STARTTLS not available");
		return false;
	case SMTP_PRE_SUBMIT_TLS:
		if (s->role != CFG_ROLE_SUBMISSION || s->tls_active)
			return true;
		smtp__reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
		return false;
	case SMTP_PRE_AUTHED:
		/* RFC 6409 section 4.3: a submission server needs to know the submitter. */
		if (s->role == CFG_ROLE_MX || s->authenticated)
			return true;
		smtp__reply(s, 530, "5.7.0", "Authentication required");
		return false;
	case SMTP_PRE_AUTH_OFFERED:
		if (s->role != CFG_ROLE_MX && s->srv->auth != NULL)
			return true;
		smtp__reply(s, 502, "5.5.1", "Error: authentication not enabled");
		return false;
	case SMTP_PRE_AUTH_TLS:
		if (s->tls_active)
			return true;
		smtp__reply(s, 538, "5.7.11", "Encryption required for requested authentication "
		    "mechanism: issue STARTTLS first");
		return false;
	case SMTP_PRE_NOT_AUTHED:
		if (!s->authenticated)
			return true;
		smtp__reply(s, 503, "5.5.1", "Error: already authenticated");
		return false;
	}
	return true;
}

static void smtp_handle_line(struct smtp_session *s, const char *line, size_t len)
{
	const struct smtp_cmd_row *row;
	struct smtp_parse_error err;
	enum smtp_cmd cmd;
	const char *arg;

	if (s->auth_step == SMTP_AUTH_PLAIN || s->auth_step == SMTP_AUTH_LOGIN_USER ||
	    s->auth_step == SMTP_AUTH_LOGIN_PASS) {
		/* Not a command: the client's answer to our 334. */
		smtp__auth_response(s, line, len);
		return;
	}
	s->ncommands++;
	if (smtp_parse_command(line, len, &cmd, &arg, &err) < 0) {
		smtp__reply_parse_error(s, &err);
		smtp__count_error(s);
		return;
	}
	if ((size_t)cmd >= sizeof smtp_commands / sizeof smtp_commands[0] ||
	    smtp_commands[cmd].fn == NULL) {
		smtp__reply(s, 500, "5.5.2", "Error: command not recognized");
		smtp__count_error(s);
		return;
	}
	row = &smtp_commands[cmd];
	if ((row->flags & SMTP_CMD_JUNK) && ++s->junk > s->cfg->junk_command_limit) {
		log_event(LOG_LVL_INFO, s->id, "event", "too_many_junk_commands", "client",
		    s->peer_addr, "command", smtp_cmd_name(cmd), NULL);
		smtp__tx_reset(s);
		smtp__goodbye(s, "4.7.0", "Error: too many junk commands");
		return;
	}
	/* Check: every precondition of the row, in its order; a refusal counts. */
	for (size_t i = 0; i < SMTP_PRE_MAX && row->pre[i] != SMTP_PRE_END; i++) {
		if (!smtp_precondition(s, cmd, row, row->pre[i], arg)) {
			smtp__count_error(s);
			return;
		}
	}
	/* Policy and proceed: the handler. */
	row->fn(s, cmd, arg);
	/*
	 * RFC 2920 section 3.1: the client waits for the reply to a command
	 * that ends a group, so it must not wait in our buffer.
	 */
	if ((row->flags & SMTP_CMD_LAST_IN_GROUP) && !s->busy && !s->close_after_flush)
		smtp__flush(s);
}

/* ------------------------------------------------------ input loop */

/*
 * Takes one command line from the conn's line reader. Returns true when
 * a line (good or bad) was consumed, false when more input is needed.
 */
static bool smtp_command_consume(struct smtp_session *s)
{
	struct conn_line l;
	char line[SMTP_CMDLINE_MAX];

	/* An over-long line is dropped as it arrives; answered when it ends. */
	if (!conn_line_get(s->conn, SMTP_CMDLINE_MAX, &l))
		return false;
	if (l.too_long) {
		smtp__reply(s, 500, "5.5.2", "Error: line too long");
		smtp__count_error(s);
		return true;
	}
	if (!l.crlf || l.bare_cr) {
		/* Never guess where a command ends (RFC 5321 section 2.3.8). */
		log_event(LOG_LVL_INFO, s->id, "event", "bare_newline", "client",
		    s->peer_addr, "reason", "bare <LF> or <CR> in command", NULL);
		smtp__reply(s, 500, "5.5.2", "Error: bare <LF> or <CR> received");
		smtp__count_error(s);
		return true;
	}
	memcpy(line, l.data, l.content);
	line[l.content] = '\0';
	smtp_handle_line(s, line, l.content);
	return true;
}

void smtp__process_input(struct smtp_session *s)
{
	if (s->in_process || s->closing)
		return;
	s->in_process = true;
	smtp__ref(s);
	if (s->waited && !s->busy) {
		/* Our own wait is not the client's: its partial line starts now. */
		conn_line_restart(s->conn);
		s->waited = false;
	}
	for (;;) {
		bool progressed;

		/* Closing: nothing more to do with this connection. */
		if (s->closing)
			break;
		/* A command waits on policy or the queue: answer it first. */
		if (s->busy)
			break;
		/* QUIT or a fatal error: commands after it are ignored. */
		if (s->state == SMTP_ST_QUIT)
			break;
		/* No plaintext exists until the handshake is done. */
		if (s->state == SMTP_ST_HANDSHAKE || s->state == SMTP_ST_CONNECTED)
			break;
		/* The client does not read its replies: wait until it does. */
		if (conn_out_is_full(s->conn)) {
			s->out_blocked = true;
			break;
		}
		/* Nothing left to parse (a BDAT chunk of 0 octets needs none). */
		if (smtp__in_len(s) == 0 &&
		    !(s->state == SMTP_ST_BDAT && s->tx.bdat_remaining == 0))
			break;
		if (s->state == SMTP_ST_DATA)
			progressed = smtp__data_consume(s);
		else if (s->state == SMTP_ST_BDAT)
			progressed = smtp__bdat_consume(s);
		else
			progressed = smtp_command_consume(s);
		/* Input ran dry in the middle of a line: wait for more. */
		if (!progressed)
			break;
	}
	if (!s->closing) {
		if (s->close_after_flush)
			smtp_close_graceful(s);
		else
			smtp__flush(s);
		smtp__update_reading(s);
		smtp_arm_timer(s);
	}
	s->in_process = false;
	smtp__unref(s);
}

/* ------------------------------------------------- conn callbacks */

static void smtp_greet(struct smtp_session *s);

static void smtp_conn_tls_established(void *arg)
{
	struct smtp_session *s = arg;

	if (s->closing)
		return;
	s->tls_active = true;
	log_event(LOG_LVL_INFO, s->id, "event", "tls", "client", s->peer_addr,
	    "version", tlsio_version(s->tls), "cipher", tlsio_cipher(s->tls), NULL);
	smtp__set_state(s, SMTP_ST_INIT);
	if (!s->greeted)
		smtp_greet(s);
	else
		smtp__process_input(s);
}

static void smtp_conn_data(void *arg)
{
	struct smtp_session *s = arg;

	if (s->closing)
		return;
	if (s->state == SMTP_ST_CONNECTED) {
		/* Real mail clients wait for the greeting (RFC 5321 section 3.1). */
		log_event(LOG_LVL_INFO, s->id, "event", "pregreet", "client", s->peer_addr,
		    "reason", "client talked before the greeting", NULL);
		smtp__reply(s, 554, "5.5.0", "%s Error: client talked before the greeting",
		    smtp__hostname(s));
		smtp__set_state(s, SMTP_ST_QUIT);
		smtp_close_graceful(s);
		return;
	}
	if (s->state == SMTP_ST_QUIT) {
		conn_in_clear(s->conn); /* ignore everything after QUIT */
		return;
	}
	smtp__process_input(s);
}

static void smtp_conn_written(void *arg)
{
	struct smtp_session *s = arg;

	/* The client reads again: take up the commands where they stopped. */
	if (s->closing || !s->out_blocked || conn_out_is_full(s->conn))
		return;
	s->out_blocked = false;
	smtp__process_input(s);
}

static void smtp_conn_lost(void *arg, int status, bool tls)
{
	struct smtp_session *s = arg;

	if (s->closing)
		return;
	if (tls && status != -ECONNRESET)
		log_event(LOG_LVL_INFO, s->id, "event", "tls_error", "client",
		    s->peer_addr, "reason", tlsio_error(s->tls), NULL);
	else if (!tls && status != UV_EOF)
		log_debug(s->id, "connection: %s", uv_strerror(status));
	smtp_close(s);
}

void smtp__update_reading(struct smtp_session *s)
{
	bool want;

	if (s->closing || s->shutdown_sent)
		return;
	want = !s->busy && smtp__in_len(s) < SMTP_INPUT_HIGH_WATER &&
	    s->inflight_bytes < SMTP_INFLIGHT_HIGH_WATER && s->state != SMTP_ST_QUIT &&
	    !smtp__body_memory_wait(s);
	/* The pregreet check needs to see early bytes. */
	if (s->state == SMTP_ST_CONNECTED)
		want = true;
	conn_want_read(s->conn, want);
}

/* ------------------------------------------------------- timers */

/* max_session_time passed: the session ends whatever it is doing. */
static void smtp_expired(struct smtp_session *s)
{
	if (s->busy) {
		/* Our own wait (a commit may be in flight): end right after it. */
		conn_lifetime(s->conn, 1000);
		return;
	}
	log_event(LOG_LVL_INFO, s->id, "event", "timeout", "client", s->peer_addr,
	    "state", smtp_state_names[s->state], "limit", "max_session_time", NULL);
	if (s->shutdown_sent || s->state == SMTP_ST_HANDSHAKE ||
	    s->state == SMTP_ST_CONNECTED) {
		smtp_close(s);
		return;
	}
	smtp__tx_reset(s);
	smtp__goodbye(s, "4.4.2", "Error: session time limit exceeded");
	smtp_close_graceful(s);
}

static void smtp_conn_timeout(void *arg, enum conn_timeout which)
{
	struct smtp_session *s = arg;

	if (s->closing)
		return;
	if (which == CONN_TIMEOUT_LIFETIME) {
		smtp_expired(s);
		return;
	}
	if (s->state == SMTP_ST_CONNECTED) {
		smtp_greet(s);
		smtp__flush(s);
		smtp_arm_timer(s);
		return;
	}
	if (s->busy) {
		/* Our own wait, not the client's: check again later. */
		smtp_arm_timer(s);
		return;
	}
	log_event(LOG_LVL_INFO, s->id, "event", "timeout", "client", s->peer_addr,
	    "state", smtp_state_names[s->state], NULL);
	if (s->shutdown_sent) {
		smtp_close(s);
		return;
	}
	if (s->state == SMTP_ST_HANDSHAKE) {
		/* No TLS channel to speak in yet: just hang up. */
		smtp_close(s);
		return;
	}
	smtp__tx_reset(s);
	smtp__goodbye(s, "4.4.2", "Error: timeout exceeded");
	smtp_close_graceful(s);
}

/*
 * Commands: the next line must be complete within command_timeout of
 * its first byte (or of now, when none has come), so a client trickling
 * bytes cannot hold the session. Body bytes: data_timeout between reads.
 * Our own waits (policy, the queue) are not the client's: a fixed wait
 * that the timeout handler simply renews.
 */
static void smtp_arm_timer(struct smtp_session *s)
{
	if (s->closing || s->shutdown_sent)
		return;
	if (s->state == SMTP_ST_CONNECTED)
		return; /* the greet pause timer is armed by smtp_session_start */
	if (s->busy) {
		s->waited = true;
		conn_deadline(s->conn, CONN_DL_FIXED, s->cfg->command_timeout);
	} else if (s->state == SMTP_ST_DATA || s->state == SMTP_ST_BDAT) {
		conn_deadline(s->conn, CONN_DL_PROGRESS, s->cfg->data_timeout);
	} else if (s->state == SMTP_ST_HANDSHAKE) {
		conn_deadline(s->conn, CONN_DL_FIXED, s->cfg->command_timeout);
	} else {
		conn_deadline(s->conn, CONN_DL_LINE, s->cfg->command_timeout);
	}
}

/* -------------------------------------------------- connection start */

static const struct conn_callbacks smtp_conn_callbacks = {
	.data = smtp_conn_data,
	.written = smtp_conn_written,
	.timeout = smtp_conn_timeout,
	.lost = smtp_conn_lost,
	.tls_established = smtp_conn_tls_established,
	.closed = smtp_conn_closed,
};

static void smtp_peer_format(struct smtp_session *s)
{
	if (s->peer.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&s->peer;

		/* Show v4-mapped peers (dual-stack listeners) as plain IPv4. */
		if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr))
			inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], s->peer_addr,
			    sizeof s->peer_addr);
		else
			inet_ntop(AF_INET6, &a6->sin6_addr, s->peer_addr, sizeof s->peer_addr);
	} else if (s->peer.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)&s->peer)->sin_addr,
		    s->peer_addr, sizeof s->peer_addr);
	} else {
		str_copy(s->peer_addr, "local", sizeof s->peer_addr);
	}
}

/* A session object linked into the server, with no conn yet. */
static struct smtp_session *smtp_session_alloc(struct smtp_server *srv, enum cfg_role role)
{
	struct smtp_session *s = xcalloc(1, sizeof *s);

	s->srv = srv;
	s->cfg = cfg_ref(srv->cfg);
	s->role = role;
	s->refs = 1; /* the conn's, dropped when it has closed */
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;
	snprintf(s->id, sizeof s->id, "S%llX", (unsigned long long)++smtp_session_counter);
	return s;
}

void smtp_session_new(struct smtp_server *srv, struct conn *c, enum cfg_role role,
    const struct sockaddr_storage *peer, struct smtp_session **out)
{
	struct smtp_session *s = smtp_session_alloc(srv, role);

	s->conn = c;
	conn_set_callbacks(c, &smtp_conn_callbacks, s);
	s->peer = *peer;
	smtp_peer_format(s);
	s->admitted = true;
	*out = s;
}

int smtp_session_accept(struct smtp_server *srv, uv_stream_t *listen_stream,
    enum cfg_role role, struct smtp_session **out)
{
	struct smtp_session *s = smtp_session_alloc(srv, role);
	int len = sizeof s->peer;
	int rc;

	s->conn = conn_new(srv->loop, CONN_TCP);
	conn_set_callbacks(s->conn, &smtp_conn_callbacks, s);
	rc = uv_accept(listen_stream, conn_stream(s->conn));
	if (rc == 0)
		rc = uv_tcp_getpeername((uv_tcp_t *)conn_stream(s->conn),
		    (struct sockaddr *)&s->peer, &len);
	if (rc < 0) {
		smtp_close(s);
		return rc;
	}
	smtp_peer_format(s);
	uv_tcp_nodelay((uv_tcp_t *)conn_stream(s->conn), 1);
	s->admitted = true;
	*out = s;
	return 0;
}

const struct sockaddr_storage *smtp_session_peer(const struct smtp_session *s)
{
	return &s->peer;
}

void smtp_session_refuse(struct smtp_session *s, int code, const char *enh,
    const char *text)
{
	log_event(LOG_LVL_INFO, s->id, "event", "refused", "client", s->peer_addr,
	    "reason", text, NULL);
	smtp__reply(s, code, enh, "%s %s", smtp__hostname(s), text);
	if (s->state != SMTP_ST_QUIT)
		smtp__set_state(s, SMTP_ST_QUIT);
	smtp_close_graceful(s);
}

static void smtp_connect_policy_done(void *arg, const struct verdict *v)
{
	struct smtp_session *s = arg;

	if (!s->closing) {
		s->busy = false;
		if (v->kind == VERDICT_CONTINUE || v->kind == VERDICT_ACCEPT) {
			smtp__reply(s, 220, NULL, "%s ESMTP govrelay", smtp__hostname(s));
			s->greeted = true;
			if (s->state == SMTP_ST_CONNECTED)
				smtp__set_state(s, SMTP_ST_INIT);
		} else {
			/* Refused at connect: nothing more is accepted either way. */
			smtp__policy_refused(s, "connect", v, NULL);
			if (s->state != SMTP_ST_QUIT)
				smtp__set_state(s, SMTP_ST_QUIT);
			s->close_after_flush = true;
		}
		smtp__process_input(s);
	}
	smtp__unref(s);
}

static void smtp_greet(struct smtp_session *s)
{
	smtp__fill_request(s, POLICY_STAGE_CONNECT);
	s->busy = true;
	smtp__ref(s);
	policy_run(s->srv->policy, &s->preq, smtp_connect_policy_done, s);
}

void smtp_session_start(struct smtp_session *s)
{
	s->trusted = cfg_cidr_list_has(&s->cfg->trusted_networks,
	    (const struct sockaddr *)&s->peer);
	s->started = true;
	log_event(LOG_LVL_INFO, s->id, "event", "connect", "client", s->peer_addr,
	    "listener", cfg_role_name(s->role), NULL);
	conn_lifetime(s->conn, s->cfg->max_session_time);
	if (s->srv->shutting_down) {
		smtp_session_refuse(s, 421, "4.3.2", "Service shutting down");
		return;
	}
	if (s->role == CFG_ROLE_SUBMISSIONS) {
		/* RFC 8314: TLS first, the greeting comes inside it. */
		smtp__update_reading(s);
		smtp_start_tls(s);
		return;
	}
	if (s->role == CFG_ROLE_MX && !s->trusted && s->cfg->greet_pause > 0) {
		smtp__update_reading(s);
		conn_deadline(s->conn, CONN_DL_FIXED, s->cfg->greet_pause);
		return;
	}
	smtp_greet(s);
	smtp__flush(s);
	smtp_arm_timer(s);
	smtp__update_reading(s);
}

/* ------------------------------------------------------- shutdown */

void smtp_server_abort(struct smtp_server *srv)
{
	struct smtp_session *s, *next;

	for (s = srv->sessions; s; s = next) {
		next = s->next;
		if (!s->closing)
			smtp_close(s);
	}
}

void smtp_server_shutdown(struct smtp_server *srv)
{
	struct smtp_session *s, *next;

	srv->shutting_down = true;
	for (s = srv->sessions; s; s = next) {
		next = s->next;
		if (s->closing || s->shutdown_sent)
			continue;
		if (s->busy && s->tx.active && s->tx.body_started) {
			/* Its commit is in flight: the commit completion says goodbye. */
			continue;
		}
		if (s->state != SMTP_ST_HANDSHAKE && s->started)
			smtp__reply(s, 421, "4.3.2", "%s Service shutting down", smtp__hostname(s));
		smtp__tx_reset(s);
		if (s->state != SMTP_ST_QUIT)
			smtp__set_state(s, SMTP_ST_QUIT);
		smtp_close_graceful(s);
	}
}
