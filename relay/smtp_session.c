/*
 * smtp_session: the inbound SMTP state machine.
 *
 * Entry points: smtp_server_init, smtp_session_accept, smtp_session_new,
 * smtp_session_start, smtp_session_refuse, smtp_session_peer,
 * smtp_server_shutdown.
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
 * (policy_run, maybe asynchronous) and proceed (the handler). While a
 * command waits on policy or on the queue writer, the session is "busy":
 * it stops parsing and stops reading, so pipelined commands are answered
 * strictly in order (RFC 2920). Replies are collected in the conn's
 * output and written when the input runs dry, at a last-in-group command
 * or when the session must wait, so a pipelined group costs one write.
 * While more than CONN_OUT_HIGH_WATER of replies wait for a client that
 * does not read, the session stops processing and the conn stops reading.
 * NOOP, RSET, HELP, VRFY, EHLO and HELO count toward junk_command_limit;
 * a queued message resets the count.
 *
 * The body is dot-unstuffed once and streamed into queue chunks of at most
 * QUEUE_CHUNK_MAX bytes while it arrives; only CRLF.CRLF ends DATA (bare
 * CR and bare LF poison the message, they never end it). The 250 is sent
 * from the commit completion only: the message, its schedule entry and its
 * audit record are then durable.
 *
 * OWNERSHIP: a session owns its conn and transaction. Every asynchronous
 * operation in flight (policy, writer operations, the conn until its
 * closed callback) holds a reference; the memory goes when the last one
 * is dropped. s->conn is NULL once the conn has closed.
 * Completions check s->closing before touching the connection.
 * THREADS: loop thread only. Writer operations run their apply functions on
 * the writer thread and touch nothing but their own op struct there.
 * ERRORS: internal failures become 4xx replies; nothing a peer sends
 * reaches panic() or fatal().
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/crypto.h>

#include "common/addr.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/rfc5322.h"
#include "common/sasl.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/auth.h"
#include "queue/receive.h"
#include "queue/tenancy.h"
#include "relay/conn.h"
#include "relay/smtp_parse.h"
#include "relay/smtp_session.h"

/* Input kept while commands wait: a pipelining client cannot grow it past this. */
#define SMTP_INPUT_HIGH_WATER (256 * 1024)
/* How long a last reply may wait for a client that does not read it. */
#define SMTP_GOODBYE_WAIT_MS 10000
/* Body bytes handed to the writer and not yet committed before we stop reading. */
#define SMTP_INFLIGHT_HIGH_WATER (4 * 1024 * 1024)

enum smtp_state {
	SMTP_ST_CONNECTED,  /* greet pause and connect policy */
	SMTP_ST_HANDSHAKE,  /* TLS handshake (implicit or after STARTTLS) */
	SMTP_ST_INIT,       /* greeting sent, no EHLO/HELO yet */
	SMTP_ST_READY,      /* after EHLO/HELO, no transaction */
	SMTP_ST_MAIL,       /* MAIL accepted, no recipient yet */
	SMTP_ST_RCPT,       /* at least one recipient */
	SMTP_ST_DATA,       /* reading the DATA body */
	SMTP_ST_BDAT,       /* reading the bytes of one BDAT chunk */
	SMTP_ST_BDAT_IDLE,  /* inside a BDAT transaction, between chunks */
	SMTP_ST_QUIT,       /* QUIT, error or shutdown: nothing more is read */
	SMTP_ST_COUNT
};

static const char *const smtp_state_names[SMTP_ST_COUNT] = {
	"connected", "handshake", "init", "ready", "mail", "rcpt", "data",
	"bdat", "bdat-idle", "quit",
};

#define SMTP_T(st) (1u << (st))
/* Legal transitions: smtp_set_state() asserts against this table. */
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

/* Where an AUTH exchange (RFC 4954 section 4) stands. */
enum smtp_auth_step {
	SMTP_AUTH_IDLE,
	SMTP_AUTH_PLAIN,        /* sent "334 ", waiting for the PLAIN message */
	SMTP_AUTH_LOGIN_USER,   /* sent "334 VXNlcm5hbWU6" (Username:) */
	SMTP_AUTH_LOGIN_PASS,   /* sent "334 UGFzc3dvcmQ6" (Password:) */
	SMTP_AUTH_CHECKING,     /* credentials handed to policy/auth */
};

struct smtp_rcpt {
	char *addr;
	char *orcpt;
	unsigned notify;
};

/* Why a message can no longer be accepted; the first cause wins the reply. */
enum smtp_body_fault {
	SMTP_BODY_OK,
	SMTP_BODY_BARE_NEWLINE,
	SMTP_BODY_LINE_TOO_LONG,
	SMTP_BODY_TOO_BIG,
};

struct smtp_tx {
	bool active;
	uint64_t qid;
	char qid_text[QUEUE_ID_TEXT_LEN + 1];
	char sender[SMTP_PATH_MAX + 1];
	struct smtp_mail_params params;
	struct smtp_rcpt *rcpts;
	size_t nrcpt;
	/* Body streaming. */
	bool body_started;
	struct buf chunk;          /* bytes not yet handed to the writer */
	uint32_t nchunks;          /* chunks handed to the writer */
	uint64_t client_bytes;     /* body bytes from the client, after unstuffing */
	uint64_t stored_bytes;     /* bytes in chunks, Received header included */
	size_t chunks_inflight;
	int chunk_error;
	enum smtp_body_fault fault;
	/* DATA line state. */
	bool at_line_start;        /* previous line ended with a real CRLF */
	bool waiting_chunks;       /* end of data seen; chunks still in flight */
	/*
	 * The header section as policy sees it (From: checks); allocated only
	 * for authenticated submissions, whose From: must match the sender.
	 */
	struct rfc5322_scan *hdr;
	struct buf hdr_line;       /* BDAT: bytes of a header line not yet ended */
	bool commit_submitted;     /* the chunks now belong to the commit op */
	/* Final recipients so far, aliases expanded: bounded at RCPT. */
	struct queue_expansion *expansion;
	/* BDAT state. */
	uint64_t bdat_remaining;
	bool bdat_last;
	bool bdat_chunk_rejected;  /* consume the bytes, then answer 503 */
	bool bdat_prev_cr;
	uint64_t bdat_line_len;
};

struct smtp_session {
	struct smtp_session *next, *prev;
	struct smtp_server *srv;
	struct config *cfg;
	struct conn *conn;         /* NULL once it has closed */
	int refs;
	bool closing;
	bool close_after_flush;
	bool started;
	bool shutdown_sent;
	enum cfg_role role;
	enum smtp_state state;
	struct sockaddr_storage peer;
	char peer_addr[INET6_ADDRSTRLEN];
	char id[24];
	bool trusted;
	char helo[SMTP_DOMAIN_MAX + 1];
	bool esmtp;
	struct tlsio *tls;         /* borrowed from the conn, once TLS started */
	bool tls_active;
	bool busy;                 /* a command waits on policy or the queue */
	bool out_blocked;          /* stopped processing: output is backed up */
	bool waited;               /* was busy: the pending line's clock restarts */
	bool in_process;
	bool greeted;
	unsigned errors;
	unsigned junk;             /* junk commands since the last queued message */
	unsigned ncommands;
	struct smtp_tx tx;
	/* Kept here so it outlives an asynchronous policy run. */
	struct policy_request preq;
	char preq_rcpt[SMTP_PATH_MAX + 1];
	char preq_domain[SMTP_DOMAIN_MAX + 1];
	struct smtp_path pending_path;
	struct smtp_rcpt_params pending_rparams;
	uint64_t inflight_bytes;
	enum smtp_state bdat_return_state;
	bool admitted;             /* counted by the listener */
	/* AUTH (RFC 4954). */
	bool authenticated;
	char auth_user[ADDR_MAX + 1];    /* canonical address once authenticated */
	enum smtp_auth_step auth_step;
	char auth_login_user[SASL_FIELD_MAX + 1];
};

static uint64_t smtp_session_counter;

/* Unconsumed input lives in the conn; a session without one has none. */
static const char *smtp_in_data(struct smtp_session *s)
{
	return conn_in_data(s->conn);
}

static size_t smtp_in_len(const struct smtp_session *s)
{
	return s->conn ? conn_in_len(s->conn) : 0;
}

static void smtp_in_consume(struct smtp_session *s, size_t n)
{
	conn_in_consume(s->conn, n);
}

static void smtp_process_input(struct smtp_session *s);
static void smtp_close(struct smtp_session *s);
static void smtp_tx_reset(struct smtp_session *s);
static void smtp_finish_message(struct smtp_session *s);
static void smtp_update_reading(struct smtp_session *s);
static void smtp_arm_timer(struct smtp_session *s);

/* ---------------------------------------------------------- lifetime */

static void smtp_ref(struct smtp_session *s)
{
	s->refs++;
}

static void smtp_unref(struct smtp_session *s)
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

static void smtp_set_state(struct smtp_session *s, enum smtp_state to)
{
	if (!(smtp_transitions[s->state] & SMTP_T(to)))
		panic("smtp session %s: illegal transition %s -> %s", s->id,
		    smtp_state_names[s->state], smtp_state_names[to]);
	log_debug(s->id, "state %s -> %s", smtp_state_names[s->state], smtp_state_names[to]);
	s->state = to;
}

void smtp_server_init(struct smtp_server *srv, uv_loop_t *loop)
{
	memset(srv, 0, sizeof *srv);
	srv->loop = loop;
}

static const char *smtp_hostname(const struct smtp_session *s)
{
	return s->cfg->hostname;
}

/* ------------------------------------------------------------ output */

static void smtp_flush(struct smtp_session *s)
{
	if (s->closing)
		return;
	conn_flush(s->conn);
}

/*
 * Appends one reply line to the conn's output; smtp_flush sends what a
 * pipelined group collected in one write.
 */
static void smtp_reply(struct smtp_session *s, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void smtp_reply(struct smtp_session *s, int code, const char *enh,
    const char *fmt, ...)
{
	struct buf *out;
	va_list ap;

	if (s->closing)
		return;
	out = conn_out(s->conn);
	buf_printf(out, "%03d ", code);
	if (enh && enh[0])
		buf_printf(out, "%s ", enh);
	va_start(ap, fmt);
	buf_vprintf(out, fmt, ap);
	va_end(ap);
	buf_append_str(out, "\r\n");
}

static void smtp_reply_parse_error(struct smtp_session *s, const struct smtp_parse_error *e)
{
	smtp_reply(s, e->code, e->enh, "%s", e->text);
}

/* Answers 421 with text, after which nothing more is read. */
static void smtp_goodbye(struct smtp_session *s, const char *enh, const char *text)
{
	smtp_reply(s, 421, enh, "%s %s", smtp_hostname(s), text);
	s->close_after_flush = true;
	if (s->state != SMTP_ST_QUIT)
		smtp_set_state(s, SMTP_ST_QUIT);
}

/* Counts a client error; past the limit, answers 421 and ends the session. */
static void smtp_count_error(struct smtp_session *s)
{
	if (++s->errors <= s->cfg->max_bad_commands)
		return;
	log_event(LOG_LVL_INFO, s->id, "event", "too_many_errors", "client",
	    s->peer_addr, NULL);
	smtp_goodbye(s, "4.7.0", "Error: too many errors");
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
	smtp_tx_reset(s);
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
	smtp_unref(s);
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

/* ------------------------------------------------------ queue writer */

/* Writer completion of one body chunk (queue_receive_chunk_submit). */
static void smtp_chunk_done(void *arg, int status, uint64_t qid, size_t len)
{
	struct smtp_session *s = arg;

	s->inflight_bytes -= len;
	if (s->tx.active && s->tx.qid == qid) {
		s->tx.chunks_inflight--;
		if (status < 0 && s->tx.chunk_error == 0)
			s->tx.chunk_error = status;
	}
	if (!s->closing) {
		/* The end of data may have been waiting for this chunk. */
		if (s->tx.active && s->tx.waiting_chunks && s->tx.chunks_inflight == 0) {
			s->tx.waiting_chunks = false;
			s->busy = false;
			smtp_finish_message(s);
		}
		smtp_update_reading(s);
		smtp_process_input(s);
	}
	smtp_unref(s);
}

static void smtp_chunk_flush(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;

	if (tx->chunk.len == 0)
		return;
	tx->chunks_inflight++;
	s->inflight_bytes += tx->chunk.len;
	smtp_ref(s);
	queue_receive_chunk_submit(s->srv->writer, tx->qid, tx->nchunks++, tx->chunk.data,
	    tx->chunk.len, smtp_chunk_done, s);
	buf_reset(&tx->chunk);
}

/* Deletes the chunks of a message that will never be committed. */
static void smtp_discard_chunks(struct queue_writer *writer, uint64_t qid)
{
	queue_receive_discard_submit(writer, qid);
}

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
	};

	queue_receive_refusal_submit(s->srv->writer, &r);
}

/* ------------------------------------------------------- transaction */

static void smtp_tx_reset(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;

	/*
	 * Once the commit is submitted its completion decides the chunks'
	 * fate: a client that hangs up while it is in flight must not delete
	 * the body of a message that is being queued.
	 */
	if (tx->active && tx->nchunks > 0 && !tx->commit_submitted)
		smtp_discard_chunks(s->srv->writer, tx->qid);
	for (size_t i = 0; i < tx->nrcpt; i++) {
		free(tx->rcpts[i].addr);
		free(tx->rcpts[i].orcpt);
	}
	free(tx->rcpts);
	queue_expansion_free(tx->expansion);
	buf_free(&tx->chunk);
	free(tx->hdr);
	buf_free(&tx->hdr_line);
	memset(tx, 0, sizeof *tx);
}

/* Ends the transaction and returns to the after-EHLO state. */
static void smtp_tx_end(struct smtp_session *s)
{
	smtp_tx_reset(s);
	if (s->state != SMTP_ST_QUIT && s->state != SMTP_ST_READY)
		smtp_set_state(s, SMTP_ST_READY);
}

static void smtp_body_store(struct smtp_session *s, const char *data, size_t len)
{
	struct smtp_tx *tx = &s->tx;

	while (len > 0) {
		size_t room = QUEUE_CHUNK_MAX - tx->chunk.len;
		size_t n = len < room ? len : room;

		buf_append(&tx->chunk, data, n);
		tx->stored_bytes += n;
		data += n;
		len -= n;
		if (tx->chunk.len == QUEUE_CHUNK_MAX)
			smtp_chunk_flush(s);
	}
}

/* Client body bytes: counted against max_message_size, then stored. */
static void smtp_body_client(struct smtp_session *s, const char *data, size_t len)
{
	struct smtp_tx *tx = &s->tx;

	tx->client_bytes += len;
	if (tx->fault == SMTP_BODY_OK && tx->client_bytes > s->cfg->max_message_size)
		tx->fault = SMTP_BODY_TOO_BIG;
	if (tx->fault != SMTP_BODY_OK)
		return; /* the message will be refused: keep nothing more */
	smtp_body_store(s, data, len);
}

static const char *smtp_protocol_name(const struct smtp_session *s)
{
	/* RFC 3848 and RFC 6531 section 3.7.3 "with" values. */
	bool utf8 = s->tx.params.smtputf8;

	if (!s->esmtp)
		return "SMTP";
	if (utf8)
		return s->tls_active ? "UTF8SMTPS" : "UTF8SMTP";
	return s->tls_active ? "ESMTPS" : "ESMTP";
}

/* RFC 5321 section 4.4: the trace header we prepend to every message. */
static void smtp_body_begin(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;
	struct buf h;
	char date[64];

	buf_init(&h);
	time_format_rfc5322(time_now_ms(), date, sizeof date);
	buf_printf(&h, "Received: from %s ([%s])\r\n", s->helo[0] ? s->helo : "unknown",
	    s->peer_addr);
	if (s->tls_active)
		buf_printf(&h, "\t(using %s with cipher %s)\r\n", tlsio_version(s->tls),
		    tlsio_cipher(s->tls));
	buf_printf(&h, "\tby %s (govrelay) with %s id %s", smtp_hostname(s),
	    smtp_protocol_name(s), tx->qid_text);
	/* Naming the recipient only when there is one keeps Bcc private. */
	if (tx->nrcpt == 1)
		buf_printf(&h, "\r\n\tfor <%s>", tx->rcpts[0].addr);
	buf_printf(&h, "; %s\r\n", date);
	tx->body_started = true;
	tx->at_line_start = true;
	if (s->authenticated) {
		tx->hdr = xmalloc(sizeof *tx->hdr);
		rfc5322_scan_init(tx->hdr);
	}
	smtp_body_store(s, h.data, h.len);
	buf_free(&h);
}

/* -------------------------------------------------------- commit */

static void smtp_policy_refused(struct smtp_session *s, const char *stage,
    const struct verdict *v, const char *rcpt);

/*
 * The bound on final recipients: QUEUE_RECEIVE_EXPANDED_MAX, or
 * max_recipients when a site allows more plain recipients than that.
 */
static size_t smtp_expanded_max(const struct smtp_session *s)
{
	return s->cfg->max_recipients > QUEUE_RECEIVE_EXPANDED_MAX ?
	    (size_t)s->cfg->max_recipients : QUEUE_RECEIVE_EXPANDED_MAX;
}

static void smtp_commit_done(void *arg, int status, const struct queue_receive *req,
    const struct queue_receive_result *res)
{
	struct smtp_session *s = arg;
	const struct queue_msg *m = &req->msg;
	char qid[QUEUE_ID_TEXT_LEN + 1];

	queue_id_format(m->id, qid);
	if (status == 0) {
		char from[SMTP_PATH_MAX + 3], size[24], nrcpt[24];

		snprintf(from, sizeof from, "<%s>", m->sender);
		snprintf(size, sizeof size, "%llu", (unsigned long long)m->size);
		snprintf(nrcpt, sizeof nrcpt, "%zu", res->nrcpts);
		log_event(LOG_LVL_INFO, qid, "from", from, "size", size, "nrcpt", nrcpt,
		    "client", m->client_addr, "tls", m->tls, "status", "queued", NULL);
		if (s->srv->on_queued)
			s->srv->on_queued(s->srv->on_queued_arg);
		if (m->auth_user != NULL) {
			struct policy_request queued = { .stage = POLICY_STAGE_DATA,
				.auth_user = m->auth_user, .sender = m->sender };

			policy_message_queued(s->srv->policy, &queued);
		}
	} else {
		log_err(qid, "queue commit failed: %s", queue_strerror(status));
		/* The commit rolled back: its earlier chunks are orphans now. */
		if (m->nchunks > 0)
			smtp_discard_chunks(s->srv->writer, m->id);
	}
	if (!s->closing) {
		if (status == 0) {
			smtp_reply(s, 250, "2.0.0", "Ok: queued as %s", qid);
			s->junk = 0; /* a delivered message resets the junk count */
		} else if (status == -E2BIG) {
			/*
			 * An alias grew between RCPT (where the bound is checked)
			 * and now. Permanent, as at RCPT: a retry cannot fit either.
			 */
			struct verdict v;

			policy_verdict_set(&v, VERDICT_REJECT, 554, "5.5.3",
			    "Too many recipients after alias expansion");
			v.rule = "alias_limit";
			smtp_policy_refused(s, "data", &v, NULL);
		} else if (status == -ENOSPC) {
			smtp_reply(s, 452, "4.3.1", "Insufficient system storage");
		} else {
			smtp_reply(s, 451, "4.3.0", "Error: queue write failed");
		}
		s->busy = false;
		smtp_tx_end(s);
		if (s->srv->shutting_down) {
			smtp_reply(s, 421, "4.3.2", "%s Service shutting down", smtp_hostname(s));
			smtp_set_state(s, SMTP_ST_QUIT);
			s->close_after_flush = true;
		}
		smtp_update_reading(s);
		smtp_process_input(s);
	}
	smtp_unref(s);
}

/*
 * End of data with a passing verdict: say what was accepted and let
 * queue/ store it (queue_receive_apply: aliases, tenants, schedule,
 * audit). The 250 waits for the completion.
 */
static void smtp_commit(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;
	struct queue_receive *req = xcalloc(1, sizeof *req);
	struct queue_msg *m = &req->msg;
	int64_t now = time_now_ms();
	char tlsdesc[128];

	m->id = tx->qid;
	m->arrival = now;
	m->sender = xstrdup(tx->sender);
	m->envid = tx->params.has_envid ? xstrdup(tx->params.envid) : NULL;
	m->ret = tx->params.ret;
	m->body_type = tx->params.body;
	m->smtputf8 = tx->params.smtputf8;
	m->declared_size = tx->params.has_size ? tx->params.size : 0;
	m->size = tx->stored_bytes;
	m->client_addr = xstrdup(s->peer_addr);
	m->helo = s->helo[0] ? xstrdup(s->helo) : NULL;
	m->listener = xstrdup(cfg_role_name(s->role));
	m->auth_user = s->authenticated ? xstrdup(s->auth_user) : NULL;
	if (s->tls_active) {
		snprintf(tlsdesc, sizeof tlsdesc, "%s %s", tlsio_version(s->tls), tlsio_cipher(s->tls));
		m->tls = xstrdup(tlsdesc);
	}
	m->nrcpts = tx->nrcpt;
	m->rcpts = xcalloc(tx->nrcpt ? tx->nrcpt : 1, sizeof *m->rcpts);
	for (size_t i = 0; i < tx->nrcpt; i++) {
		struct queue_rcpt *r = &m->rcpts[i];

		r->addr = xstrdup(tx->rcpts[i].addr);
		r->orcpt = tx->rcpts[i].orcpt ? xstrdup(tx->rcpts[i].orcpt) : NULL;
		r->notify = tx->rcpts[i].notify;
		r->state = QUEUE_RCPT_PENDING;
		r->next_attempt = now;
	}
	/* The tail of the body rides in the commit itself: one write for small mail. */
	buf_init(&req->body);
	if (tx->chunk.len > 0) {
		req->body_seq = tx->nchunks++;
		buf_append(&req->body, tx->chunk.data, tx->chunk.len);
		buf_reset(&tx->chunk);
	}
	m->nchunks = tx->nchunks;
	/* The commit expands again (aliases may have grown since RCPT). */
	req->expanded_max = smtp_expanded_max(s);
	s->busy = true;
	tx->commit_submitted = true;
	smtp_ref(s);
	queue_receive_submit(s->srv->writer, req, smtp_commit_done, s);
}

/* ------------------------------------------------- policy outcomes */

/*
 * A policy stage said no: reply with its words, log and audit the
 * refusal, and hang up when it asked for that.
 */
static void smtp_policy_refused(struct smtp_session *s, const char *stage,
    const struct verdict *v, const char *rcpt)
{
	char code[16];

	snprintf(code, sizeof code, "%d", v->code);
	smtp_reply(s, v->code, v->enh, "%s", v->text);
	log_event(LOG_LVL_INFO, s->tx.active ? s->tx.qid_text : s->id, "event", "reject",
	    "stage", stage, "code", code, "dsn", v->enh, "reason", v->text, "client",
	    s->peer_addr, "to", rcpt, "rule", v->rule, NULL);
	smtp_audit_reject(s, stage, v, rcpt);
	if (v->kind == VERDICT_DISCONNECT) {
		smtp_set_state(s, SMTP_ST_QUIT);
		s->close_after_flush = true;
	}
}

/* An asynchronous step is over: take up the input where it stopped. */
static void smtp_resume(struct smtp_session *s)
{
	smtp_update_reading(s);
	smtp_process_input(s);
}

/* ------------------------------------------------------ end of data */

static void smtp_data_policy_done(void *arg, const struct verdict *v)
{
	struct smtp_session *s = arg;

	if (s->closing) {
		smtp_unref(s);
		return;
	}
	s->busy = false;
	if (v->kind == VERDICT_CONTINUE || v->kind == VERDICT_ACCEPT) {
		smtp_commit(s);
	} else {
		smtp_policy_refused(s, "data", v, NULL);
		smtp_tx_end(s);
	}
	smtp_resume(s);
	smtp_unref(s);
}

static void smtp_refuse_message(struct smtp_session *s, int code, const char *enh,
    const char *text, const char *reason)
{
	struct verdict v;

	policy_verdict_set(&v, VERDICT_REJECT, code, enh, "%s", text);
	v.rule = reason;
	smtp_policy_refused(s, "data", &v, NULL);
	smtp_tx_end(s);
}

/* CRLF.CRLF (or BDAT LAST) has been read: decide, then commit. */
static void smtp_finish_message(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;

	switch (tx->fault) {
	case SMTP_BODY_BARE_NEWLINE:
		smtp_refuse_message(s, 550, "5.5.2",
		    "Error: bare <LF> or <CR> in message text (RFC 5321 section 2.3.8)",
		    "bare newline");
		return;
	case SMTP_BODY_LINE_TOO_LONG:
		smtp_refuse_message(s, 552, "5.3.4",
		    "Error: text line too long (RFC 5321 limit is 1000 octets)",
		    "line too long");
		return;
	case SMTP_BODY_TOO_BIG:
		smtp_refuse_message(s, 552, "5.3.4", "Error: message file too big",
		    "message too big");
		return;
	case SMTP_BODY_OK:
		break;
	}
	if (tx->chunks_inflight > 0) {
		/* Wait: a failed chunk must fail the message (smtp_chunk_done resumes). */
		tx->waiting_chunks = true;
		s->busy = true;
		return;
	}
	if (tx->chunk_error < 0) {
		if (tx->chunk_error == -ENOSPC)
			smtp_reply(s, 452, "4.3.1", "Insufficient system storage");
		else
			smtp_reply(s, 451, "4.3.0", "Error: queue write failed");
		smtp_tx_end(s);
		return;
	}
	/* Bodies that lack a final CRLF (possible with BDAT) get one. */
	if (tx->chunk.len > 0 && tx->chunk.data[tx->chunk.len - 1] != '\n')
		smtp_body_store(s, "\r\n", 2);
	memset(&s->preq, 0, sizeof s->preq);
	s->preq.stage = POLICY_STAGE_DATA;
	s->preq.session_id = s->id;
	s->preq.client_addr = s->peer_addr;
	s->preq.client_trusted = s->trusted;
	s->preq.listener_role = cfg_role_name(s->role);
	s->preq.tls = s->tls_active;
	s->preq.helo = s->helo;
	s->preq.sender = tx->sender;
	s->preq.nrcpt = tx->nrcpt;
	s->preq.auth_user = s->authenticated ? s->auth_user : NULL;
	s->preq.declared_size = tx->params.has_size ? tx->params.size : 0;
	s->preq.headers = tx->hdr;
	s->preq.size = tx->client_bytes;
	s->busy = true;
	smtp_ref(s);
	policy_run(s->srv->policy, &s->preq, smtp_data_policy_done, s);
}

/* ------------------------------------------------------ DATA reading */

/*
 * Consumes DATA body bytes from s->in. Returns true when it made progress
 * and the caller should loop again, false when it needs more input.
 *
 * Lines are split at LF only to look at them: a line counts as properly
 * ended only with CRLF, and "." ends the data only when it is a whole line
 * that follows a CRLF and ends in CRLF. Anything else with a lone CR or LF
 * marks the message bad, but never ends it (SMTP smuggling).
 */
static bool smtp_data_consume(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;
	struct conn_line l;
	const char *p;
	size_t linelen, content;

	if (!conn_line_get(s->conn, SMTP_TEXTLINE_MAX, &l)) {
		/*
		 * No line end yet. More than 1000 octets without LF cannot be a
		 * legal line (RFC 5321 section 4.5.3.1.6): the reader drops it as
		 * it arrives.
		 */
		if (l.long_line && tx->fault == SMTP_BODY_OK)
			tx->fault = SMTP_BODY_LINE_TOO_LONG;
		return false;
	}
	if (l.skipped) {
		tx->at_line_start = l.crlf;
		return true;
	}
	p = l.data;
	linelen = l.len;
	content = l.content;
	if (!l.crlf || l.bare_cr) {
		if (tx->fault == SMTP_BODY_OK)
			tx->fault = SMTP_BODY_BARE_NEWLINE;
	}
	if (l.crlf && tx->at_line_start && content == 1 && p[0] == '.') {
		smtp_finish_message(s);
		return true;
	}
	if (l.too_long && tx->fault == SMTP_BODY_OK)
		tx->fault = SMTP_BODY_LINE_TOO_LONG;
	if (tx->fault == SMTP_BODY_OK) {
		/* RFC 5321 section 4.5.2: remove exactly one leading dot. */
		if (tx->at_line_start && content > 0 && p[0] == '.') {
			p++;
			linelen--;
			content--;
		}
		if (tx->hdr != NULL && !tx->hdr->done)
			rfc5322_scan_line(tx->hdr, p, content);
		smtp_body_client(s, p, linelen);
	}
	tx->at_line_start = l.crlf;
	return true;
}

/*
 * BDAT bytes come in arbitrary pieces: header lines are assembled here
 * (each at most a legal text line; longer ones are cut, which the
 * scanner's own limits then report) and handed to the scanner whole.
 */
static void smtp_hdr_feed_bytes(struct smtp_session *s, const char *data, size_t n)
{
	struct smtp_tx *tx = &s->tx;

	while (n > 0 && tx->hdr != NULL && !tx->hdr->done) {
		const char *lf = memchr(data, '\n', n);
		size_t take = lf ? (size_t)(lf - data) + 1 : n;
		size_t room = SMTP_TEXTLINE_MAX > tx->hdr_line.len ?
		    SMTP_TEXTLINE_MAX - tx->hdr_line.len : 0;

		buf_append(&tx->hdr_line, data, take < room ? take : room);
		data += take;
		n -= take;
		if (lf != NULL) {
			size_t len = tx->hdr_line.len;

			while (len > 0 && (tx->hdr_line.data[len - 1] == '\n' ||
			    tx->hdr_line.data[len - 1] == '\r'))
				len--;
			rfc5322_scan_line(tx->hdr, tx->hdr_line.data, len);
			buf_reset(&tx->hdr_line);
		}
	}
}

/* BDAT chunk bytes: counted, no unstuffing; line rules still apply. */
static bool smtp_bdat_consume(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;
	const char *data = smtp_in_data(s);
	size_t n = smtp_in_len(s);

	if (n == 0 && tx->bdat_remaining > 0)
		return false;
	if (n > tx->bdat_remaining)
		n = (size_t)tx->bdat_remaining;
	if (!tx->bdat_chunk_rejected) {
		for (size_t i = 0; i < n && tx->fault == SMTP_BODY_OK; i++) {
			char c = data[i];

			if (c == '\n') {
				if (!tx->bdat_prev_cr)
					tx->fault = SMTP_BODY_BARE_NEWLINE;
				tx->bdat_line_len = 0;
			} else {
				if (tx->bdat_prev_cr)
					tx->fault = SMTP_BODY_BARE_NEWLINE;
				if (++tx->bdat_line_len > SMTP_TEXTLINE_MAX - 2)
					tx->fault = SMTP_BODY_LINE_TOO_LONG;
			}
			tx->bdat_prev_cr = c == '\r';
		}
		smtp_hdr_feed_bytes(s, data, n);
		smtp_body_client(s, data, n);
	}
	smtp_in_consume(s, n);
	tx->bdat_remaining -= n;
	if (tx->bdat_remaining > 0)
		return false;

	if (tx->bdat_chunk_rejected) {
		/* The refused chunk is gone: back where the BDAT found us. */
		tx->bdat_chunk_rejected = false;
		smtp_set_state(s, s->bdat_return_state);
		smtp_count_error(s);
		return true;
	}
	if (tx->bdat_last) {
		/* A chunk ending in CR leaves the CR unpaired. */
		if (tx->bdat_prev_cr && tx->fault == SMTP_BODY_OK)
			tx->fault = SMTP_BODY_BARE_NEWLINE;
		smtp_finish_message(s);
		return true;
	}
	smtp_reply(s, 250, "2.0.0", "%llu octets received",
	    (unsigned long long)tx->client_bytes);
	smtp_set_state(s, SMTP_ST_BDAT_IDLE);
	return true;
}

/* ---------------------------------------------------------- commands */

static void smtp_cmd_helo(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	struct smtp_parse_error err;
	char name[SMTP_DOMAIN_MAX + 1];

	if (smtp_parse_helo(arg, name, sizeof name, &err) < 0) {
		smtp_reply_parse_error(s, &err);
		smtp_count_error(s);
		return;
	}
	/* RFC 5321 section 4.1.4: EHLO/HELO also resets any transaction. */
	smtp_tx_reset(s);
	str_copy(s->helo, name, sizeof s->helo);
	s->esmtp = cmd == SMTP_CMD_EHLO;
	smtp_set_state(s, SMTP_ST_READY);
	if (cmd == SMTP_CMD_HELO) {
		smtp_reply(s, 250, NULL, "%s", smtp_hostname(s));
		return;
	}
	buf_printf(conn_out(s->conn), "250-%s\r\n", smtp_hostname(s));
	buf_append_str(conn_out(s->conn), "250-PIPELINING\r\n");
	buf_printf(conn_out(s->conn), "250-SIZE %llu\r\n", (unsigned long long)s->cfg->max_message_size);
	if (s->srv->tls && !s->tls_active && s->role != CFG_ROLE_SUBMISSIONS)
		buf_append_str(conn_out(s->conn), "250-STARTTLS\r\n");
	buf_append_str(conn_out(s->conn), "250-8BITMIME\r\n");
	buf_append_str(conn_out(s->conn), "250-SMTPUTF8\r\n");
	buf_append_str(conn_out(s->conn), "250-ENHANCEDSTATUSCODES\r\n");
	buf_append_str(conn_out(s->conn), "250-CHUNKING\r\n");
	/* RFC 4954 section 4: no cleartext passwords, so AUTH only under TLS. */
	if (s->role != CFG_ROLE_MX && s->tls_active && s->srv->auth != NULL)
		buf_append_str(conn_out(s->conn), "250-AUTH PLAIN LOGIN\r\n");
	buf_append_str(conn_out(s->conn), "250 DSN\r\n");
}

/* Why a transaction command is refused in the current state (503 5.5.1). */
static void smtp_state_refusal(struct smtp_session *s, enum smtp_cmd cmd)
{
	switch (s->state) {
	case SMTP_ST_INIT:
		smtp_reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
		break;
	case SMTP_ST_READY:
		smtp_reply(s, 503, "5.5.1", "Error: need MAIL command");
		break;
	case SMTP_ST_MAIL:
		if (cmd == SMTP_CMD_MAIL)
			smtp_reply(s, 503, "5.5.1", "Error: nested MAIL command");
		else
			smtp_reply(s, 503, "5.5.1", "Error: need RCPT command");
		break;
	case SMTP_ST_RCPT:
		smtp_reply(s, 503, "5.5.1", "Error: nested MAIL command");
		break;
	case SMTP_ST_BDAT_IDLE:
		smtp_reply(s, 503, "5.5.1", "Error: %s not allowed inside a BDAT transaction",
		    smtp_cmd_name(cmd));
		break;
	default:
		smtp_reply(s, 503, "5.5.1", "Error: bad sequence of commands");
		break;
	}
}

static void smtp_fill_request(struct smtp_session *s, enum policy_stage stage)
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
}

static void smtp_mail_policy_done(void *arg, const struct verdict *v)
{
	struct smtp_session *s = arg;

	if (!s->closing) {
		s->busy = false;
		if (v->kind == VERDICT_CONTINUE || v->kind == VERDICT_ACCEPT) {
			smtp_set_state(s, SMTP_ST_MAIL);
			log_event(LOG_LVL_INFO, s->tx.qid_text, "client", s->peer_addr,
			    "sess", s->id, NULL);
			smtp_reply(s, 250, "2.1.0", "Ok");
		} else {
			smtp_policy_refused(s, "mail", v, NULL);
			smtp_tx_reset(s);
		}
		smtp_resume(s);
	}
	smtp_unref(s);
}

static void smtp_cmd_mail(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	struct smtp_parse_error err;
	struct smtp_path path;
	struct smtp_mail_params params;
	const char *rest;

	(void)cmd;
	/* Parse with UTF-8 allowed, then hold it against the SMTPUTF8 parameter. */
	if (smtp_parse_path(arg, false, true, true, &path, &rest, &err) < 0 ||
	    smtp_parse_mail_params(rest, &params, &err) < 0) {
		smtp_reply_parse_error(s, &err);
		smtp_count_error(s);
		return;
	}
	if (path.is_utf8 && !params.smtputf8) {
		smtp_reply(s, 553, "5.6.7", "Error: non-ASCII address needs SMTPUTF8");
		smtp_count_error(s);
		return;
	}
	if (params.has_size && params.size > s->cfg->max_message_size) {
		smtp_reply(s, 552, "5.3.4", "Error: message file too big");
		return;
	}
	smtp_tx_reset(s);
	s->tx.active = true;
	s->tx.qid = queue_next_id(s->srv->store);
	queue_id_format(s->tx.qid, s->tx.qid_text);
	str_copy(s->tx.sender, path.addr, sizeof s->tx.sender);
	s->tx.params = params;
	smtp_fill_request(s, POLICY_STAGE_MAIL);
	s->busy = true;
	smtp_ref(s);
	policy_run(s->srv->policy, &s->preq, smtp_mail_policy_done, s);
}

/*
 * Counts the final recipients the pending RCPT brings once its aliases
 * are expanded (a read transaction: mmap lookups on the loop thread, as
 * the tenant check does) and refuses it when the message would go over
 * smtp_expanded_max. Refusing here, not at end of data, tells
 * the sender which recipient is the problem before the body is sent.
 *
 * Two codes, by whether a later transaction could succeed:
 * - the earlier recipients of this message fill the bound: 452 4.5.3,
 *   RFC 5321 section 4.5.3.1.10's "too many recipients"; the client
 *   sends to those it has and retries this one in a new transaction,
 *   where it fits;
 * - this recipient alone expands past the bound: no retry can ever fit,
 *   so the refusal is permanent. 550 5.5.3, not 552: section
 *   4.5.3.1.10 tells clients to treat a 552 "too many recipients" as
 *   452 and retry, which is the retry for ever this avoids.
 * A store error counts nothing here; the commit expands again anyway.
 */
static bool smtp_rcpt_bound(struct smtp_session *s)
{
	struct queue_rcpt r = { .addr = s->pending_path.addr,
		.orcpt = s->pending_rparams.has_orcpt ? s->pending_rparams.orcpt : NULL,
		.notify = s->pending_rparams.notify };
	struct queue_expansion *alone;
	struct queue_txn *txn;
	struct verdict v;
	int rc;

	if (s->tx.expansion == NULL)
		s->tx.expansion = queue_expansion_new(smtp_expanded_max(s));
	if (queue_txn_begin(s->srv->store, false, &txn) < 0)
		return true;
	rc = queue_expansion_add(txn, s->tx.expansion, &r, NULL);
	if (rc == -E2BIG) {
		alone = queue_expansion_new(smtp_expanded_max(s));
		rc = queue_expansion_add(txn, alone, &r, NULL);
		queue_expansion_free(alone);
		if (rc == -E2BIG)
			policy_verdict_set(&v, VERDICT_REJECT, 550, "5.5.3",
			    "Too many recipients after alias expansion");
		else
			policy_verdict_set(&v, VERDICT_TEMPFAIL, 452, "4.5.3",
			    "Too many recipients after alias expansion; send the rest later");
		rc = -E2BIG;
	}
	queue_txn_abort(txn);
	if (rc != -E2BIG)
		return true;
	v.rule = "alias_limit";
	smtp_policy_refused(s, "rcpt", &v, s->pending_path.addr);
	return false;
}

static void smtp_rcpt_policy_done(void *arg, const struct verdict *v)
{
	struct smtp_session *s = arg;

	if (!s->closing) {
		s->busy = false;
		if ((v->kind == VERDICT_CONTINUE || v->kind == VERDICT_ACCEPT) &&
		    smtp_rcpt_bound(s)) {
			struct smtp_tx *tx = &s->tx;
			struct smtp_rcpt *r;

			tx->rcpts = xreallocarray(tx->rcpts, tx->nrcpt + 1, sizeof *tx->rcpts);
			r = &tx->rcpts[tx->nrcpt++];
			r->addr = xstrdup(s->pending_path.addr);
			r->orcpt = s->pending_rparams.has_orcpt ? xstrdup(s->pending_rparams.orcpt) : NULL;
			r->notify = s->pending_rparams.notify;
			if (s->state == SMTP_ST_MAIL)
				smtp_set_state(s, SMTP_ST_RCPT);
			smtp_reply(s, 250, "2.1.5", "Ok");
		} else if (v->kind != VERDICT_CONTINUE && v->kind != VERDICT_ACCEPT) {
			smtp_policy_refused(s, "rcpt", v, s->pending_path.addr);
		}
		smtp_resume(s);
	}
	smtp_unref(s);
}

static void smtp_cmd_rcpt(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	struct smtp_parse_error err;
	const char *rest;

	(void)cmd;
	if (smtp_parse_path(arg, true, false, s->tx.params.smtputf8, &s->pending_path,
	        &rest, &err) < 0 ||
	    smtp_parse_rcpt_params(rest, &s->pending_rparams, &err) < 0) {
		smtp_reply_parse_error(s, &err);
		smtp_count_error(s);
		return;
	}
	/* RFC 5321 section 4.5.3.1.8: 452 4.5.3 when a message has too many. */
	if (s->tx.nrcpt >= s->cfg->max_recipients) {
		smtp_reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	smtp_fill_request(s, POLICY_STAGE_RCPT);
	str_copy(s->preq_rcpt, s->pending_path.addr, sizeof s->preq_rcpt);
	str_copy(s->preq_domain, s->pending_path.domain, sizeof s->preq_domain);
	s->preq.rcpt = s->preq_rcpt;
	s->preq.rcpt_domain = s->preq_domain;
	s->preq.rcpt_routing_chars = s->pending_path.has_routing_chars;
	s->busy = true;
	smtp_ref(s);
	policy_run(s->srv->policy, &s->preq, smtp_rcpt_policy_done, s);
}

static void smtp_cmd_data(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	(void)cmd;
	(void)arg;
	smtp_set_state(s, SMTP_ST_DATA);
	smtp_body_begin(s);
	smtp_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

static void smtp_cmd_bdat(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	struct smtp_parse_error err;
	uint64_t size;
	bool last;

	if (smtp_parse_bdat(arg, &size, &last, &err) < 0) {
		smtp_reply_parse_error(s, &err);
		smtp_count_error(s);
		return;
	}
	if (s->state != SMTP_ST_RCPT && s->state != SMTP_ST_BDAT_IDLE) {
		const char *why = s->state == SMTP_ST_INIT ? "Error: send HELO/EHLO first" :
		    s->state == SMTP_ST_READY ? "Error: need MAIL command" :
		    "Error: need RCPT command";

		(void)cmd;
		smtp_reply(s, 503, "5.5.1", "%s", why);
		/*
		 * RFC 3030 section 4: the chunk's octets are read even when the
		 * command is refused, or they would be taken for commands; the
		 * session then returns to this state.
		 */
		s->bdat_return_state = s->state;
		s->tx.bdat_remaining = size;
		s->tx.bdat_chunk_rejected = true;
		s->tx.bdat_last = last;
		smtp_set_state(s, SMTP_ST_BDAT);
		if (size == 0)
			smtp_bdat_consume(s);
		return;
	}
	if (!s->tx.body_started)
		smtp_body_begin(s);
	s->tx.bdat_remaining = size;
	s->tx.bdat_last = last;
	smtp_set_state(s, SMTP_ST_BDAT);
	if (size == 0) {
		/* A zero-length chunk completes at once (usually "BDAT 0 LAST"). */
		smtp_bdat_consume(s);
	}
}

static void smtp_cmd_rset(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	(void)cmd;
	(void)arg;
	smtp_tx_reset(s);
	if (s->state != SMTP_ST_INIT)
		smtp_set_state(s, SMTP_ST_READY);
	smtp_reply(s, 250, "2.0.0", "Ok");
}

static void smtp_cmd_noop(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	(void)cmd;
	(void)arg;
	smtp_reply(s, 250, "2.0.0", "Ok");
}

static void smtp_cmd_quit(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	(void)cmd;
	(void)arg;
	smtp_reply(s, 221, "2.0.0", "Bye");
	smtp_tx_reset(s);
	smtp_set_state(s, SMTP_ST_QUIT);
	s->close_after_flush = true;
}

static void smtp_cmd_help(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	(void)cmd;
	(void)arg;
	smtp_reply(s, 214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT "
	    "HELP VRFY STARTTLS; see RFC 5321");
}

static void smtp_cmd_vrfy(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	(void)cmd;
	(void)arg;
	/* RFC 5321 section 3.5.3: 252 without saying whether the user exists. */
	smtp_reply(s, 252, "2.5.0",
	    "Cannot VRFY user, but will accept message and attempt delivery");
}

static void smtp_cmd_expn(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	(void)cmd;
	(void)arg;
	smtp_reply(s, 502, "5.5.1", "Error: EXPN not available");
	smtp_count_error(s);
}

/* ---------------------------------------------------------------- AUTH */

static void smtp_auth_done(void *arg, const struct auth_result *r)
{
	struct smtp_session *s = arg;

	if (!s->closing) {
		s->busy = false;
		s->auth_step = SMTP_AUTH_IDLE;
		switch (r->outcome) {
		case AUTH_OUTCOME_OK:
			s->authenticated = true;
			str_copy(s->auth_user, r->user, sizeof s->auth_user);
			smtp_reply(s, 235, "2.7.0", "Authentication successful");
			break;
		case AUTH_OUTCOME_LOCKED:
			smtp_reply(s, 535, "5.7.8", "Authentication credentials invalid: the "
			    "account is locked after too many failed attempts; ask your "
			    "postmaster to unlock it");
			smtp_count_error(s);
			break;
		case AUTH_OUTCOME_BAD:
			smtp_reply(s, 535, "5.7.8", "Authentication credentials invalid");
			smtp_count_error(s);
			break;
		case AUTH_OUTCOME_THROTTLED:
			smtp_reply(s, 454, "4.7.0", "Too many failed authentications from your "
			    "address; try again later");
			smtp_count_error(s);
			break;
		case AUTH_OUTCOME_TEMPFAIL:
			smtp_reply(s, 454, "4.7.0", "Temporary authentication failure");
			break;
		}
		smtp_resume(s);
	}
	smtp_unref(s);
}

/* Hands the credentials over; the password buffer is the caller's to wipe. */
static void smtp_auth_submit(struct smtp_session *s, const char *user, const char *pass)
{
	s->auth_step = SMTP_AUTH_CHECKING;
	s->busy = true;
	smtp_ref(s);
	auth_check(s->srv->auth, s->cfg, s->peer_addr, cfg_role_name(s->role), user, pass,
	    smtp_auth_done, s);
}

static void smtp_auth_fail_syntax(struct smtp_session *s)
{
	s->auth_step = SMTP_AUTH_IDLE;
	smtp_reply(s, 501, "5.5.2", "Error: cannot decode the authentication response");
	smtp_count_error(s);
}

/* A PLAIN message (RFC 4616), still base64-encoded. */
static void smtp_auth_plain(struct smtp_session *s, const char *b64, size_t len)
{
	unsigned char msg[3 * SASL_FIELD_MAX + 3];
	char user[SASL_FIELD_MAX + 1], pass[SASL_FIELD_MAX + 1];
	size_t n;

	if (sasl_b64_decode(b64, len, msg, sizeof msg, &n) < 0 ||
	    sasl_plain_parse(msg, n, user, pass) < 0) {
		OPENSSL_cleanse(msg, sizeof msg);
		smtp_auth_fail_syntax(s);
		return;
	}
	smtp_auth_submit(s, user, pass);
	OPENSSL_cleanse(msg, sizeof msg);
	OPENSSL_cleanse(pass, sizeof pass);
}

/* One base64 field of LOGIN (user name or password) into out. */
static int smtp_auth_login_field(const char *b64, size_t len, char *out)
{
	size_t n;

	if (sasl_b64_decode(b64, len, (unsigned char *)out, SASL_FIELD_MAX, &n) < 0 ||
	    n == 0 || memchr(out, '\0', n) != NULL)
		return -EINVAL;
	out[n] = '\0';
	return 0;
}

/* A line that answers our 334 challenge (RFC 4954 section 4). */
static void smtp_auth_response(struct smtp_session *s, const char *line, size_t len)
{
	char pass[SASL_FIELD_MAX + 1];

	if (len == 1 && line[0] == '*') {
		s->auth_step = SMTP_AUTH_IDLE;
		smtp_reply(s, 501, "5.0.0", "Authentication aborted");
		return;
	}
	switch (s->auth_step) {
	case SMTP_AUTH_PLAIN:
		smtp_auth_plain(s, line, len);
		return;
	case SMTP_AUTH_LOGIN_USER:
		if (smtp_auth_login_field(line, len, s->auth_login_user) < 0) {
			smtp_auth_fail_syntax(s);
			return;
		}
		s->auth_step = SMTP_AUTH_LOGIN_PASS;
		smtp_reply(s, 334, NULL, "UGFzc3dvcmQ6");
		return;
	case SMTP_AUTH_LOGIN_PASS:
		if (smtp_auth_login_field(line, len, pass) < 0) {
			OPENSSL_cleanse(pass, sizeof pass);
			smtp_auth_fail_syntax(s);
			return;
		}
		smtp_auth_submit(s, s->auth_login_user, pass);
		OPENSSL_cleanse(pass, sizeof pass);
		return;
	default:
		return;
	}
}

static void smtp_cmd_auth(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	const char *sp = strchr(arg, ' ');
	size_t mechlen = sp ? (size_t)(sp - arg) : strlen(arg);
	const char *initial = sp ? sp + 1 : NULL;

	(void)cmd;
	if (mechlen == 5 && strncasecmp(arg, "PLAIN", 5) == 0) {
		if (initial == NULL) {
			s->auth_step = SMTP_AUTH_PLAIN;
			smtp_reply(s, 334, NULL, "%s", "");
			return;
		}
		smtp_auth_plain(s, initial, strlen(initial));
		return;
	}
	if (mechlen == 5 && strncasecmp(arg, "LOGIN", 5) == 0) {
		if (initial == NULL) {
			s->auth_step = SMTP_AUTH_LOGIN_USER;
			smtp_reply(s, 334, NULL, "VXNlcm5hbWU6");
			return;
		}
		if (smtp_auth_login_field(initial, strlen(initial), s->auth_login_user) < 0) {
			smtp_auth_fail_syntax(s);
			return;
		}
		s->auth_step = SMTP_AUTH_LOGIN_PASS;
		smtp_reply(s, 334, NULL, "UGFzc3dvcmQ6");
		return;
	}
	smtp_reply(s, 504, "5.5.4", "Unrecognized authentication type; use PLAIN or LOGIN");
	smtp_count_error(s);
}

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
	smtp_set_state(s, SMTP_ST_HANDSHAKE);
	smtp_arm_timer(s);
}

static void smtp_cmd_starttls(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	(void)cmd;
	(void)arg;
	/* conn_start_tls sends this in clear before the handshake. */
	smtp_reply(s, 220, "2.0.0", "Ready to start TLS");
	s->helo[0] = '\0';
	s->esmtp = false;
	smtp_start_tls(s);
}

typedef void smtp_cmd_fn(struct smtp_session *s, enum smtp_cmd cmd, const char *arg);

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
	[SMTP_CMD_HELO] = { smtp_cmd_helo, 0, NULL,
	    SMTP_CMD_JUNK | SMTP_CMD_LAST_IN_GROUP, { SMTP_PRE_END } },
	[SMTP_CMD_EHLO] = { smtp_cmd_helo, 0, NULL,
	    SMTP_CMD_JUNK | SMTP_CMD_LAST_IN_GROUP, { SMTP_PRE_END } },
	[SMTP_CMD_MAIL] = { smtp_cmd_mail, SMTP_T(SMTP_ST_READY), NULL, 0,
	    { SMTP_PRE_STATE, SMTP_PRE_SUBMIT_TLS, SMTP_PRE_AUTHED } },
	[SMTP_CMD_RCPT] = { smtp_cmd_rcpt, SMTP_TX_STATES, NULL, 0, { SMTP_PRE_STATE } },
	[SMTP_CMD_DATA] = { smtp_cmd_data, SMTP_T(SMTP_ST_RCPT), NULL, SMTP_CMD_LAST_IN_GROUP,
	    { SMTP_PRE_NO_ARG, SMTP_PRE_STATE } },
	/* BDAT checks its state itself: a refused chunk is still read (RFC 3030). */
	[SMTP_CMD_BDAT] = { smtp_cmd_bdat, 0, NULL, 0, { SMTP_PRE_END } },
	[SMTP_CMD_RSET] = { smtp_cmd_rset, 0, NULL, SMTP_CMD_JUNK, { SMTP_PRE_NO_ARG } },
	[SMTP_CMD_NOOP] = { smtp_cmd_noop, 0, NULL,
	    SMTP_CMD_JUNK | SMTP_CMD_LAST_IN_GROUP, { SMTP_PRE_END } },
	[SMTP_CMD_QUIT] = { smtp_cmd_quit, 0, NULL, SMTP_CMD_LAST_IN_GROUP, { SMTP_PRE_END } },
	[SMTP_CMD_HELP] = { smtp_cmd_help, 0, NULL, SMTP_CMD_JUNK, { SMTP_PRE_END } },
	[SMTP_CMD_VRFY] = { smtp_cmd_vrfy, 0, NULL,
	    SMTP_CMD_JUNK | SMTP_CMD_LAST_IN_GROUP, { SMTP_PRE_ARG } },
	[SMTP_CMD_EXPN] = { smtp_cmd_expn, 0, NULL, SMTP_CMD_LAST_IN_GROUP, { SMTP_PRE_END } },
	[SMTP_CMD_STARTTLS] = { smtp_cmd_starttls, SMTP_T(SMTP_ST_READY),
	    "Error: STARTTLS not allowed in a mail transaction", SMTP_CMD_LAST_IN_GROUP,
	    { SMTP_PRE_NO_TLS, SMTP_PRE_TLS_OFFERED, SMTP_PRE_NO_ARG, SMTP_PRE_STATE } },
	/* RFC 4954 section 4: not during a mail transaction. */
	[SMTP_CMD_AUTH] = { smtp_cmd_auth, SMTP_T(SMTP_ST_READY),
	    "Error: AUTH not allowed during a mail transaction", SMTP_CMD_LAST_IN_GROUP,
	    { SMTP_PRE_AUTH_OFFERED, SMTP_PRE_AUTH_TLS, SMTP_PRE_NOT_AUTHED, SMTP_PRE_STATE } },
};

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
		smtp_reply(s, 501, "5.5.4", "Error: %s takes no argument", smtp_cmd_name(cmd));
		return false;
	case SMTP_PRE_ARG:
		if (arg[0] != '\0')
			return true;
		smtp_reply(s, 501, "5.5.4", "Error: %s needs an argument", smtp_cmd_name(cmd));
		return false;
	case SMTP_PRE_STATE:
		if (row->states & SMTP_T(s->state))
			return true;
		if (row->state_text == NULL)
			smtp_state_refusal(s, cmd);
		else
			smtp_reply(s, 503, "5.5.1", "%s", s->state == SMTP_ST_INIT ?
			    "Error: send EHLO first" : row->state_text);
		return false;
	case SMTP_PRE_NO_TLS:
		if (!s->tls_active)
			return true;
		smtp_reply(s, 503, "5.5.1", "Error: TLS already active");
		return false;
	case SMTP_PRE_TLS_OFFERED:
		if (s->srv->tls != NULL && s->role != CFG_ROLE_SUBMISSIONS)
			return true;
		smtp_reply(s, 502, "5.5.1", "Error: STARTTLS not available");
		return false;
	case SMTP_PRE_SUBMIT_TLS:
		if (s->role != CFG_ROLE_SUBMISSION || s->tls_active)
			return true;
		smtp_reply(s, 530, "5.7.0", "Must issue a STARTTLS command first");
		return false;
	case SMTP_PRE_AUTHED:
		/* RFC 6409 section 4.3: a submission server needs to know the submitter. */
		if (s->role == CFG_ROLE_MX || s->authenticated)
			return true;
		smtp_reply(s, 530, "5.7.0", "Authentication required");
		return false;
	case SMTP_PRE_AUTH_OFFERED:
		if (s->role != CFG_ROLE_MX && s->srv->auth != NULL)
			return true;
		smtp_reply(s, 502, "5.5.1", "Error: authentication not enabled");
		return false;
	case SMTP_PRE_AUTH_TLS:
		if (s->tls_active)
			return true;
		smtp_reply(s, 538, "5.7.11", "Encryption required for requested authentication "
		    "mechanism: issue STARTTLS first");
		return false;
	case SMTP_PRE_NOT_AUTHED:
		if (!s->authenticated)
			return true;
		smtp_reply(s, 503, "5.5.1", "Error: already authenticated");
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
		smtp_auth_response(s, line, len);
		return;
	}
	s->ncommands++;
	if (smtp_parse_command(line, len, &cmd, &arg, &err) < 0) {
		smtp_reply_parse_error(s, &err);
		smtp_count_error(s);
		return;
	}
	if ((size_t)cmd >= sizeof smtp_commands / sizeof smtp_commands[0] ||
	    smtp_commands[cmd].fn == NULL) {
		smtp_reply(s, 500, "5.5.2", "Error: command not recognized");
		smtp_count_error(s);
		return;
	}
	row = &smtp_commands[cmd];
	if ((row->flags & SMTP_CMD_JUNK) && ++s->junk > s->cfg->junk_command_limit) {
		log_event(LOG_LVL_INFO, s->id, "event", "too_many_junk_commands", "client",
		    s->peer_addr, "command", smtp_cmd_name(cmd), NULL);
		smtp_tx_reset(s);
		smtp_goodbye(s, "4.7.0", "Error: too many junk commands");
		return;
	}
	/* Check: every precondition of the row, in its order; a refusal counts. */
	for (size_t i = 0; i < SMTP_PRE_MAX && row->pre[i] != SMTP_PRE_END; i++) {
		if (!smtp_precondition(s, cmd, row, row->pre[i], arg)) {
			smtp_count_error(s);
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
		smtp_flush(s);
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
		smtp_reply(s, 500, "5.5.2", "Error: line too long");
		smtp_count_error(s);
		return true;
	}
	if (!l.crlf || l.bare_cr) {
		/* Never guess where a command ends (RFC 5321 section 2.3.8). */
		log_event(LOG_LVL_INFO, s->id, "event", "bare_newline", "client",
		    s->peer_addr, "reason", "bare <LF> or <CR> in command", NULL);
		smtp_reply(s, 500, "5.5.2", "Error: bare <LF> or <CR> received");
		smtp_count_error(s);
		return true;
	}
	memcpy(line, l.data, l.content);
	line[l.content] = '\0';
	smtp_handle_line(s, line, l.content);
	return true;
}

static void smtp_process_input(struct smtp_session *s)
{
	if (s->in_process || s->closing)
		return;
	s->in_process = true;
	smtp_ref(s);
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
		if (smtp_in_len(s) == 0 &&
		    !(s->state == SMTP_ST_BDAT && s->tx.bdat_remaining == 0))
			break;
		if (s->state == SMTP_ST_DATA)
			progressed = smtp_data_consume(s);
		else if (s->state == SMTP_ST_BDAT)
			progressed = smtp_bdat_consume(s);
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
			smtp_flush(s);
		smtp_update_reading(s);
		smtp_arm_timer(s);
	}
	s->in_process = false;
	smtp_unref(s);
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
	smtp_set_state(s, SMTP_ST_INIT);
	if (!s->greeted)
		smtp_greet(s);
	else
		smtp_process_input(s);
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
		smtp_reply(s, 554, "5.5.0", "%s Error: client talked before the greeting",
		    smtp_hostname(s));
		smtp_set_state(s, SMTP_ST_QUIT);
		smtp_close_graceful(s);
		return;
	}
	if (s->state == SMTP_ST_QUIT) {
		conn_in_clear(s->conn); /* ignore everything after QUIT */
		return;
	}
	smtp_process_input(s);
}

static void smtp_conn_written(void *arg)
{
	struct smtp_session *s = arg;

	/* The client reads again: take up the commands where they stopped. */
	if (s->closing || !s->out_blocked || conn_out_is_full(s->conn))
		return;
	s->out_blocked = false;
	smtp_process_input(s);
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

static void smtp_update_reading(struct smtp_session *s)
{
	bool want;

	if (s->closing || s->shutdown_sent)
		return;
	want = !s->busy && smtp_in_len(s) < SMTP_INPUT_HIGH_WATER &&
	    s->inflight_bytes < SMTP_INFLIGHT_HIGH_WATER && s->state != SMTP_ST_QUIT;
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
	smtp_tx_reset(s);
	smtp_goodbye(s, "4.4.2", "Error: session time limit exceeded");
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
		smtp_flush(s);
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
	smtp_tx_reset(s);
	smtp_goodbye(s, "4.4.2", "Error: timeout exceeded");
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
	smtp_reply(s, code, enh, "%s %s", smtp_hostname(s), text);
	if (s->state != SMTP_ST_QUIT)
		smtp_set_state(s, SMTP_ST_QUIT);
	smtp_close_graceful(s);
}

static void smtp_connect_policy_done(void *arg, const struct verdict *v)
{
	struct smtp_session *s = arg;

	if (!s->closing) {
		s->busy = false;
		if (v->kind == VERDICT_CONTINUE || v->kind == VERDICT_ACCEPT) {
			smtp_reply(s, 220, NULL, "%s ESMTP govrelay", smtp_hostname(s));
			s->greeted = true;
			if (s->state == SMTP_ST_CONNECTED)
				smtp_set_state(s, SMTP_ST_INIT);
		} else {
			/* Refused at connect: nothing more is accepted either way. */
			smtp_policy_refused(s, "connect", v, NULL);
			if (s->state != SMTP_ST_QUIT)
				smtp_set_state(s, SMTP_ST_QUIT);
			s->close_after_flush = true;
		}
		smtp_process_input(s);
	}
	smtp_unref(s);
}

static void smtp_greet(struct smtp_session *s)
{
	smtp_fill_request(s, POLICY_STAGE_CONNECT);
	s->busy = true;
	smtp_ref(s);
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
		smtp_update_reading(s);
		smtp_start_tls(s);
		return;
	}
	if (s->role == CFG_ROLE_MX && !s->trusted && s->cfg->greet_pause > 0) {
		smtp_update_reading(s);
		conn_deadline(s->conn, CONN_DL_FIXED, s->cfg->greet_pause);
		return;
	}
	smtp_greet(s);
	smtp_flush(s);
	smtp_arm_timer(s);
	smtp_update_reading(s);
}

/* ------------------------------------------------------- shutdown */

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
			smtp_reply(s, 421, "4.3.2", "%s Service shutting down", smtp_hostname(s));
		smtp_tx_reset(s);
		if (s->state != SMTP_ST_QUIT)
			smtp_set_state(s, SMTP_ST_QUIT);
		smtp_close_graceful(s);
	}
}
