#ifndef GOVRELAY_SMTP_CLIENT_H
#define GOVRELAY_SMTP_CLIENT_H
/*
 * smtp_client (smtpc_): one outbound SMTP or LMTP session on libuv, for
 * one message (or, with connection reuse, a series of messages) and a
 * group of its recipients that share a next hop. Connects to a numeric
 * address or a unix socket, EHLO (HELO after a 5xx) or, in LMTP mode,
 * LHLO, STARTTLS when offered and a client context is given (never over
 * a unix socket), MAIL with the ESMTP parameters the server offers, one
 * RCPT per recipient, DATA with the body streamed from the store
 * (dot-stuffed), the final reply (LMTP: one per accepted recipient),
 * QUIT. MAIL, the RCPTs and DATA go out in one write when the server
 * announces PIPELINING (RFC 2920). Every state has its own timeout.
 * Exactly one completion per session, with a result for every recipient.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "queue/queue.h"
#include "relay/tlsio.h"

/* Recorded reply text, NUL included: "550 5.1.1 <a@b>: unknown user". */
#define SMTPC_TEXT_MAX 512
/* "host[address]:port" with the longest IPv6 text. */
#define SMTPC_RELAY_MAX 128

enum smtpc_outcome {
	SMTPC_NONE,  /* no verdict: the session was aborted first (smtpc_abort) */
	SMTPC_OK,    /* the end-of-data reply (LMTP: this recipient's) was 2xx */
	SMTPC_TEMP,  /* a 4xx, or no usable answer (connection, timeout, TLS) */
	SMTPC_PERM,  /* a 5xx, or a local reason retrying cannot cure */
};
const char *smtpc_outcome_name(enum smtpc_outcome o);

struct smtpc_rcpt {
	/* In: borrowed until the completion has run. */
	const char *addr;
	const char *orcpt;  /* RFC 3461 "type;address", xtext-decoded; NULL */
	unsigned notify;    /* QUEUE_NOTIFY_* bits; 0 when none */
	/* Out: filled before the completion runs. */
	enum smtpc_outcome outcome;
	int code;                   /* the server's reply code; 0 when none */
	char dsn[16];               /* RFC 3463 code: "2.0.0", "4.4.1" */
	char reply[SMTPC_TEXT_MAX]; /* the reply, or what went wrong, in words */
};

struct smtpc_request;

/*
 * Connection reuse. Called on the loop thread when the transaction of
 * prev is over (every recipient of prev has its verdict, which is final
 * from now on) and the connection can take another message: after the
 * final reply(ies) to the dot, or after the server refused MAIL, every
 * RCPT or DATA (a 421 reply, a broken connection or a TLS refusal ends
 * the session instead, and next is not called). prev is the session's
 * copy of the finished request; its rcpts point into the caller's array.
 *
 * Return the next message for the SAME next hop, or NULL: then the
 * session ends with QUIT, or, when the request's idle_ms is not 0, it
 * waits idle for smtpc_resume (a connection cache: the next message to
 * this next hop skips the connect, greeting, EHLO and STARTTLS). next is
 * called only on a healthy session, so NULL with idle_ms set always
 * means idle; an idle session ends by itself (QUIT after idle_ms, or the
 * server closing), and then done runs as usual.
 *
 * Only id, store, msg, rcpts and nrcpts are taken from the returned
 * request (its connection fields are ignored: host, port, unix_path,
 * lmtp, helo_name, tls, require_tls, tls_name, next, next_arg and idle_ms
 * stay those given to smtpc_start); the request struct itself is copied
 * before next returns, what it points to is borrowed as for smtpc_start.
 * msg must be non-NULL and nrcpts > 0 (else: panic, a caller bug). When
 * the transaction before had failed after MAIL was sent, RSET goes out
 * first (a 2xx to RSET is required, otherwise the new message's
 * recipients get a temporary failure and the session ends). next must
 * not call smtpc_abort; it may do anything else (it runs synchronously,
 * so the next message must be ready).
 */
typedef const struct smtpc_request *smtpc_next_fn(void *arg,
    const struct smtpc_request *prev);

struct smtpc_request {
	const char *id;           /* queue id text: starts the log lines */
	const char *host;         /* numeric IPv4 or IPv6 address */
	uint16_t port;
	/*
	 * When non-NULL: connect to this unix socket instead (host and port
	 * are ignored; the relay text is "unix:PATH"). No STARTTLS is tried
	 * over a unix socket, and require_tls is treated as met: the bytes
	 * never leave this host.
	 */
	const char *unix_path;
	/*
	 * LMTP (RFC 2033): LHLO instead of EHLO (no HELO fallback), and after
	 * the final dot one reply per recipient that got a 2xx to RCPT, in
	 * RCPT order, each one that recipient's verdict.
	 */
	bool lmtp;
	const char *helo_name;    /* our EHLO/HELO/LHLO name */
	struct tlsio_ctx *tls;    /* client context, or NULL: never STARTTLS */
	/*
	 * No STARTTLS (or no context): temporary failure. And the server's
	 * certificate is verified (tlsio_ctx_verifying) against tls_name:
	 * failing that is a 4.7.5 temporary failure.
	 */
	bool require_tls;
	/*
	 * The next hop's name for that check: the MX host name, or the host
	 * of an smtp:/lmtp: route; NULL: host (the IP address connected to,
	 * matched against the certificate's IP addresses). Borrowed as host.
	 */
	const char *tls_name;
	struct queue_store *store;
	/*
	 * The message as loaded: sender, envid, ret, body_type, smtputf8,
	 * size, nchunks and id are used. Its body is read chunk by chunk in
	 * short read transactions; a chunk gone missing (the message was
	 * deleted meanwhile) abandons the session before the final dot.
	 */
	const struct queue_msg *msg;
	struct smtpc_rcpt *rcpts; /* the group's recipients; results go here */
	size_t nrcpts;
	/* Connection reuse (see smtpc_next_fn); NULL: one message, then QUIT. */
	smtpc_next_fn *next;
	void *next_arg;
	/* With next: how long to wait idle for smtpc_resume; 0: QUIT at once. */
	uint32_t idle_ms;
};

struct smtpc_result {
	/*
	 * 0 when the dialogue got far enough to give every recipient an SMTP
	 * answer (which may itself be a failure), -ECANCELED after
	 * smtpc_abort, another negative errno when the session broke
	 * (connect, timeout, TLS, lost connection, malformed reply): then
	 * the recipients without an answer carry SMTPC_TEMP and error says
	 * what happened.
	 */
	int status;
	char relay[SMTPC_RELAY_MAX];  /* "127.0.0.1[127.0.0.1]:2526", "unix:/run/lmtp" */
	char tls[96];                 /* "TLSv1.3 TLS_AES_256_GCM_SHA384" or "" */
	char error[SMTPC_TEXT_MAX];   /* session-level problem, or "" */
};

struct smtpc;

/*
 * Runs on the loop thread after every handle of the session is closed;
 * c is already gone. res is borrowed for the call. With connection
 * reuse, res concerns the last request the session worked on (the one
 * given to smtpc_start, or the last one next returned); every request is
 * final once done has run (those passed to next as prev were final
 * already then).
 */
typedef void smtpc_done_fn(void *arg, const struct smtpc_result *res);

/*
 * Starts a session. OWNERSHIP: req is copied; everything it points to
 * (strings, msg, rcpts) is borrowed until done has run, or, for the
 * per-message fields (id, store, msg, rcpts), until the request is passed
 * to next as prev; results are written into req->rcpts. Returns 0, after
 * which done runs exactly once (never from inside this call), or -EINVAL
 * (host not a numeric address, unix_path empty or too long for a socket
 * address, no recipients, no message), in which case done never runs.
 * Loop thread.
 */
int smtpc_start(uv_loop_t *loop, const struct smtpc_request *req,
    smtpc_done_fn *done, void *arg, struct smtpc **out);
/*
 * Gives an idle session (see smtpc_next_fn) its next message, taken from
 * req as from next's return value (the same fields, borrowed the same
 * way). The transaction starts at once, RSET first when the one before
 * failed after MAIL; a message the server cannot take (SIZE, SMTPUTF8)
 * gets its verdict and next is asked, from inside this call. Returns 0,
 * -EBUSY when the session is not idle (it is ending by itself: its done
 * will run), or -EINVAL for a request without message or recipients.
 * Loop thread.
 */
int smtpc_resume(struct smtpc *c, const struct smtpc_request *req);
/*
 * Abandons the session: closes the socket at once. Recipients without a
 * verdict get SMTPC_NONE; done still runs (status -ECANCELED unless the
 * session had already finished). Safe to call more than once, but not
 * after done has run. Loop thread.
 */
void smtpc_abort(struct smtpc *c);

#endif
