#ifndef GOVRELAY_SMTP_CLIENT_INT_H
#define GOVRELAY_SMTP_CLIENT_INT_H
/*
 * smtp_client_int.h: what the files of the outbound SMTP client share
 * (smtp_client.c, the state machine and I/O; smtp_client_text.c, the
 * text of the dialogue: replies, EHLO keywords, body stuffing). Never
 * included from outside relay/smtp_client*.c.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "common/buf.h"
#include "relay/conn.h"
#include "relay/smtp_client.h"
#include "relay/tlsio.h"

/*
 * RFC 5321 4.5.3.1.5 allows 512 bytes per reply line; real servers send
 * longer ones, so we accept four times that. A whole multi-line reply
 * (an EHLO with many keywords) is bounded too.
 */
#define SMTPC_LINE_MAX 2048
#define SMTPC_REPLY_MAX (64 * 1024)
/* Unprocessed input we keep (a reply arriving during the body waits). */
#define SMTPC_IN_MAX (SMTPC_REPLY_MAX + SMTPC_LINE_MAX)

enum smtpc_state {
	SMTPC_ST_CONNECT,
	SMTPC_ST_GREETING,
	SMTPC_ST_EHLO,
	SMTPC_ST_LHLO,
	SMTPC_ST_HELO,
	SMTPC_ST_STARTTLS,
	SMTPC_ST_TLS,
	SMTPC_ST_MAIL,
	SMTPC_ST_RCPT,
	SMTPC_ST_DATA,
	SMTPC_ST_BODY,
	SMTPC_ST_DOT,
	SMTPC_ST_RSET,
	SMTPC_ST_QUIT,
	SMTPC_ST_IDLE,
	SMTPC_ST_COUNT
};


struct smtpc {
	uv_loop_t *loop;
	struct conn *conn;             /* TCP or unix socket */
	bool is_unix;
	uv_connect_t connect_req;
	struct sockaddr_storage addr;
	struct smtpc_request rq;       /* copy; what it points to is borrowed */
	smtpc_done_fn *done;
	void *done_arg;
	struct smtpc_result res;
	enum smtpc_state state;
	bool closing;
	bool finished;                 /* every recipient has its verdict */
	bool broken;                   /* a 421 or RSET failure: no next message */
	bool may_idle;                 /* next had nothing: idle instead of QUIT */
	bool need_rset;                /* idle after a failed transaction */
	char idle_id[QUEUE_ID_TEXT_LEN + 1]; /* log id once the message is gone */

	/* Input: the reply being assembled (the lines are the conn's). */
	bool in_overflow;
	int rcode;
	size_t rlines;
	struct buf rtext;              /* reply lines without "NNN-", '\n' between */

	/* What the server announced in EHLO/LHLO. */
	bool ext_size, ext_starttls, ext_8bitmime, ext_smtputf8, ext_dsn;
	bool ext_pipelining;
	uint64_t size_limit;           /* SIZE n; 0 = no fixed limit */

	/* TLS: borrowed from the conn once STARTTLS was answered. */
	struct tlsio *tls;

	/* The current transaction. */
	bool mail_sent;                /* MAIL went out: RSET before the next one */
	bool mail_failed;              /* MAIL refused: later replies only drained */
	bool pipelined;                /* MAIL, RCPTs and DATA went out in one write */
	bool dot_done;                 /* the final reply(ies) arrived */
	size_t rcpt_next;              /* next RCPT reply (and command) */
	size_t naccepted;
	bool *accepted;                /* RCPT got 2xx */
	size_t dot_next;               /* LMTP: next recipient a dot reply is for */

	/* Body transfer. */
	uint32_t chunk_next;
	bool body_bol;                 /* at the start of a line */
	bool body_cr;                  /* a CR waits for its LF */
	struct buf chunk;
	struct buf out;
};

/* smtp_client_text.c */
/* "NNN text text ..." from the reply just read, printable and bounded. */
void smtpc__reply_text(const struct smtpc *c, char *out, size_t outlen);
/* The reply's RFC 3463 code, or its class's generic one. */
void smtpc__reply_dsn(const struct smtpc *c, char *dsn, size_t dsnlen);
enum smtpc_outcome smtpc__class(int code);
/*
 * "host X LEAD: REPLY (in reply to CMD command)" into out, truncated to
 * outlen; no "in reply to" part when cmd is "".
 */
void smtpc__said(const struct smtpc *c, char *out, size_t outlen, const char *lead,
    const char *reply, const char *cmd);
/* Clears what EHLO announced; parses what the reply just read announces. */
void smtpc__ext_reset(struct smtpc *c);
void smtpc__parse_ehlo(struct smtpc *c);
/* True when the envelope itself needs SMTPUTF8 (RFC 6531 section 3.4). */
bool smtpc__envelope_is_utf8(const struct smtpc *c);
/* One reply line: 1 completes the reply, 0 more follow, -1 malformed. */
int smtpc__reply_line(struct smtpc *c, const char *line, size_t len);
/*
 * Whether the current message cannot go to this server at all (BINARYMIME,
 * SMTPUTF8 not offered, over its SIZE): then its RFC 3463 code and words.
 */
bool smtpc__cannot_send(const struct smtpc *c, char *dsn, size_t dsnlen, char *text,
    size_t textlen);
/*
 * The MAIL and RCPT command lines (no CRLF) onto cmd, with the ESMTP
 * parameters the server announced (SIZE, BODY, SMTPUTF8; RFC 3461 RET,
 * ENVID, NOTIFY, ORCPT only when it announced DSN).
 */
void smtpc__mail_command(const struct smtpc *c, struct buf *cmd);
void smtpc__rcpt_command(const struct smtpc *c, size_t idx, struct buf *cmd);
/* len body bytes dot-stuffed onto out, every line ending made CRLF. */
void smtpc__stuff(struct smtpc *c, const char *p, size_t len, struct buf *out);

#endif
