#ifndef GOVRELAY_SMTP_CLIENT_H
#define GOVRELAY_SMTP_CLIENT_H
/*
 * smtp_client (smtpc_): one outbound SMTP session on libuv, for one
 * message and a group of its recipients that share a next hop. Connects
 * to a numeric address, EHLO (HELO after a 5xx), STARTTLS when offered
 * and a client context is given, MAIL with the ESMTP parameters the server
 * offers, one RCPT per recipient, DATA with the body streamed from the
 * store (dot-stuffed), the final reply, QUIT. Every state has its own
 * timeout. Exactly one completion per session, with a result for every
 * recipient.
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
	SMTPC_OK,    /* the end-of-data reply was 2xx: delivered */
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

struct smtpc_request {
	const char *id;           /* queue id text: starts the log lines */
	const char *host;         /* numeric IPv4 or IPv6 address */
	uint16_t port;
	const char *helo_name;    /* our EHLO/HELO name */
	struct tlsio_ctx *tls;    /* client context, or NULL: never STARTTLS */
	bool require_tls;         /* no STARTTLS (or no context): temporary failure */
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
	char relay[SMTPC_RELAY_MAX];  /* "127.0.0.1[127.0.0.1]:2526" */
	char tls[96];                 /* "TLSv1.3 TLS_AES_256_GCM_SHA384" or "" */
	char error[SMTPC_TEXT_MAX];   /* session-level problem, or "" */
};

struct smtpc;

/*
 * Runs on the loop thread after every handle of the session is closed;
 * c is already gone. res is borrowed for the call.
 */
typedef void smtpc_done_fn(void *arg, const struct smtpc_result *res);

/*
 * Starts a session. OWNERSHIP: req and everything it points to (strings,
 * msg, rcpts) are borrowed until done has run; results are written into
 * req->rcpts. Returns 0, after which done runs exactly once (never from
 * inside this call), or -EINVAL (host not a numeric address, no
 * recipients), in which case done never runs. Loop thread.
 */
int smtpc_start(uv_loop_t *loop, const struct smtpc_request *req,
    smtpc_done_fn *done, void *arg, struct smtpc **out);
/*
 * Abandons the session: closes the socket at once. Recipients without a
 * verdict get SMTPC_NONE; done still runs (status -ECANCELED unless the
 * session had already finished). Safe to call more than once, but not
 * after done has run. Loop thread.
 */
void smtpc_abort(struct smtpc *c);

#endif
