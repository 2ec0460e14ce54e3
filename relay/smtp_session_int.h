#ifndef GOVRELAY_SMTP_SESSION_INT_H
#define GOVRELAY_SMTP_SESSION_INT_H
/*
 * smtp_session_int.h: what the files of the inbound SMTP session share,
 * and nothing else includes (tests use relay/smtp_session.h only):
 * - smtp_session.c   lifecycle, state machine, command table and
 *                    dispatcher, input loop, STARTTLS hand-off, timers;
 * - smtp_commands.c  the envelope verbs (HELO/EHLO, MAIL, RCPT, RSET,
 *                    NOOP, QUIT, HELP, VRFY, EXPN);
 * - smtp_data.c      the transaction, DATA/BDAT streaming and the commit;
 * - smtp_auth.c      AUTH (RFC 4954);
 * - smtp_reply.c     replies, error counting, policy refusals.
 * Functions shared between these files and not exported carry the
 * smtp__ prefix (STYLE.md section 4). Loop thread only, all of it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "common/addr.h"
#include "common/buf.h"
#include "common/rfc5322.h"
#include "common/sasl.h"
#include "policy/policy.h"
#include "queue/receive.h"
#include "relay/conn.h"
#include "relay/smtp_parse.h"
#include "relay/smtp_session.h"

/*
 * Where a session stands; only smtp__set_state changes it, along the
 * transition table in smtp_session.c.
 */
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

/* Where an AUTH exchange (RFC 4954 section 4) stands. */
enum smtp_auth_step {
	SMTP_AUTH_IDLE,
	SMTP_AUTH_PLAIN,        /* sent "334 ", waiting for the PLAIN message */
	SMTP_AUTH_LOGIN_USER,   /* sent "334 VXNlcm5hbWU6" (Username:) */
	SMTP_AUTH_LOGIN_PASS,   /* sent "334 UGFzc3dvcmQ6" (Password:) */
	SMTP_AUTH_CHECKING,     /* credentials handed to policy/auth */
};

/* One accepted RCPT, as the client gave it (aliases expand at commit). */
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

/* The header section on its way to the store (smtp_headers.c). */
struct smtp_hdrfilter {
	bool done;                 /* past the empty line: bytes pass straight */
	struct buf line;           /* a header line not yet ended */
	struct buf held;           /* an Authentication-Results field, held whole */
	bool holding;
	bool held_overflow;
};

/* The mail transaction: from MAIL to the commit, RSET or the end. */
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
	uint64_t stored_bytes;     /* bytes in chunks (the head is apart) */
	/*
	 * Our Received: line; at the commit it goes with the fields the
	 * checks added into chunk 0, which body chunks leave free for it.
	 */
	struct buf head;
	struct policy_tx *ptx;     /* the policy's state for this message */
	struct smtp_hdrfilter hdrf;
	unsigned ar_removed;       /* forged Authentication-Results removed */
	size_t chunks_inflight;
	int chunk_error;
	enum smtp_body_fault fault;
	/* DATA line state. */
	bool at_line_start;        /* previous line ended with a real CRLF */
	bool waiting_chunks;       /* end of data seen; chunks still in flight */
	/* The header section as policy sees it (From: and field counts). */
	struct rfc5322_scan *hdr;
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

/* One inbound connection; see OWNERSHIP in smtp_session.c. */
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
	bool body_memory_wait;     /* not reading: max_inflight_memory is spent */
	enum smtp_state bdat_return_state;
	bool admitted;             /* counted by the listener */
	/* AUTH (RFC 4954). */
	bool authenticated;
	char auth_user[ADDR_MAX + 1];    /* canonical address once authenticated */
	enum smtp_auth_step auth_step;
	char auth_login_user[SASL_FIELD_MAX + 1];
	unsigned auth_failures;    /* failed AUTH attempts: auth_session_failures */
	/* Probing (issue 9): refused recipients so far, and the reply held back. */
	unsigned rcpt_refusals;
	struct smtp_tarpit *tarpit;
};

/* ------------------------------------------------ smtp_session.c */

/* An asynchronous operation in flight holds the session: see OWNERSHIP. */
void smtp__ref(struct smtp_session *s);
void smtp__unref(struct smtp_session *s);
/* Every state change goes through here; an illegal one panics. */
void smtp__set_state(struct smtp_session *s, enum smtp_state to);
/* Parses and runs what the conn holds, as far as the session may. */
void smtp__process_input(struct smtp_session *s);
/* Starts or stops reading from the conn, from the session's state. */
void smtp__update_reading(struct smtp_session *s);
/* An asynchronous step is over: take up the input where it stopped. */
void smtp__resume(struct smtp_session *s);

/* ------------------------------------------------- smtp_data.c */

/*
 * True when s, in DATA or BDAT, must not read because max_inflight_memory
 * is spent; its partial chunk is then handed to the writer, and it is
 * woken when memory drains.
 */
bool smtp__body_memory_wait(struct smtp_session *s);
/* smtp_data.c: bytes into the queue chunks (after the header filter). */
void smtp__body_store(struct smtp_session *s, const char *data, size_t len);
/* smtp_headers.c: body bytes through the header section's filter. */
void smtp__hdr_feed(struct smtp_session *s, const char *data, size_t len);
/* The message ended: a field still held or a line still open is settled. */
void smtp__hdr_end(struct smtp_session *s);
void smtp__hdr_free(struct smtp_hdrfilter *f);

/* s->preq from the session's facts, for one policy stage. */
void smtp__fill_request(struct smtp_session *s, enum policy_stage stage);

/* ------------------------------------------------- smtp_reply.c */

void smtp__reply(struct smtp_session *s, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* One line of a multi-line reply ("250-..."); the last is smtp__reply. */
void smtp__reply_more(struct smtp_session *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A line of a multi-line reply with an enhanced status code ("550-5.7.1 "). */
void smtp__reply_more_enh(struct smtp_session *s, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void smtp__reply_parse_error(struct smtp_session *s, const struct smtp_parse_error *e);
/* The checks' notices for this transaction as messages to queue (n of them), or NULL. */
struct queue_receive **smtp__policy_notices(struct smtp_session *s, size_t *n);
void smtp__flush(struct smtp_session *s);
void smtp__goodbye(struct smtp_session *s, const char *enh, const char *text);
void smtp__count_error(struct smtp_session *s);
void smtp__policy_refused(struct smtp_session *s, const char *stage,
    const struct verdict *v, const char *rcpt);
/* The log line and audit record of a refusal, without its reply. */
void smtp__policy_record(struct smtp_session *s, const char *stage,
    const struct verdict *v, const char *rcpt);

/* ------------------------------------------------- smtp_tarpit.c */

/*
 * RCPT was refused (v): replies, or, past rcpt_error_soft_limit for a
 * client outside trusted_networks, holds the reply back on a timer and
 * leaves the session busy (the timer answers and resumes it). A 5xx
 * refusal counts toward max_bad_commands. True when the reply waits.
 */
bool smtp__rcpt_refused(struct smtp_session *s, const struct verdict *v);
/* The session ends: a reply still held back is dropped with its timer. */
void smtp__tarpit_cancel(struct smtp_session *s);
/* The delay before answering the n-th refused recipient of a session (ms). */
uint64_t smtp__rcpt_refusal_delay(const struct config *cfg, unsigned n);

/* ---------------------------------------------- smtp_commands.c */

typedef void smtp_cmd_fn(struct smtp_session *s, enum smtp_cmd cmd, const char *arg);

smtp_cmd_fn smtp__cmd_helo, smtp__cmd_mail, smtp__cmd_rcpt, smtp__cmd_rset,
    smtp__cmd_noop, smtp__cmd_quit, smtp__cmd_help, smtp__cmd_vrfy, smtp__cmd_expn;
/* The bound on a message's final recipients, aliases expanded. */
size_t smtp__expanded_max(const struct smtp_session *s);

/* -------------------------------------------------- smtp_data.c */

smtp_cmd_fn smtp__cmd_data, smtp__cmd_bdat;
/* Input in SMTP_ST_DATA / SMTP_ST_BDAT: true when progress was made. */
bool smtp__data_consume(struct smtp_session *s);
bool smtp__bdat_consume(struct smtp_session *s);
/* Drops the transaction (its uncommitted chunks too). */
void smtp__tx_reset(struct smtp_session *s);
/* Ends the transaction and returns to the after-EHLO state. */
void smtp__tx_end(struct smtp_session *s);

/* -------------------------------------------------- smtp_auth.c */

smtp_cmd_fn smtp__cmd_auth;
/* A line that answers our 334 challenge, while auth_step waits for one. */
void smtp__auth_response(struct smtp_session *s, const char *line, size_t len);

/* ------------------------------------------------------- inline */

static inline const char *smtp__hostname(const struct smtp_session *s)
{
	return s->cfg->hostname;
}

/* Unconsumed input lives in the conn; a session without one has none. */
static inline const char *smtp__in_data(struct smtp_session *s)
{
	return conn_in_data(s->conn);
}

static inline size_t smtp__in_len(const struct smtp_session *s)
{
	return s->conn ? conn_in_len(s->conn) : 0;
}

static inline void smtp__in_consume(struct smtp_session *s, size_t n)
{
	conn_in_consume(s->conn, n);
}

#endif
