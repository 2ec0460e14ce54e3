#ifndef GOVRELAY_SMTP_SESSION_H
#define GOVRELAY_SMTP_SESSION_H
/*
 * smtp_session: the inbound SMTP state machine (RFC 5321 with PIPELINING,
 * SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, CHUNKING, DSN, STARTTLS).
 * One session per accepted connection, driven by complete lines from a
 * bounded reader; the body streams into queue chunks while it arrives, and
 * 250 is sent only from the commit completion.
 */
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include <uv.h>

#include "common/cfg.h"
#include "policy/policy.h"
#include "queue/queue.h"
#include "queue/queue_writer.h"
#include "relay/tlsio.h"

struct smtp_session;

/* What every session of the daemon shares; owned by main. */
struct smtp_server {
	uv_loop_t *loop;
	struct config *cfg;             /* current snapshot; sessions ref their own */
	struct queue_store *store;
	struct queue_writer *writer;
	struct policy *policy;
	struct auth_guard *auth;        /* NULL: AUTH not offered */
	struct tlsio_ctx *tls;          /* NULL: no certificate configured */
	/* A message was queued: the scheduler should look now. */
	void (*on_queued)(void *arg);
	void *on_queued_arg;
	/* A session ended (the listener keeps the per-address counts). */
	void (*on_closed)(void *arg, const struct sockaddr_storage *peer);
	void *on_closed_arg;
	bool shutting_down;
	/*
	 * Message bytes all sessions hold in memory, bounded by
	 * max_inflight_memory (smtp_data.c), and whether a session paused
	 * reading for it.
	 */
	uint64_t body_memory;
	bool body_memory_waiters;
	size_t nsessions;
	struct smtp_session *sessions;  /* intrusive list, for shutdown */
};

void smtp_server_init(struct smtp_server *srv, uv_loop_t *loop);

/*
 * Accepts one pending connection from listen_stream into a new session
 * (not yet started). Returns 0 or a negative uv error.
 */
int smtp_session_accept(struct smtp_server *srv, uv_stream_t *listen_stream,
    enum cfg_role role, struct smtp_session **out);
/*
 * A session over an open conn (any stream: a unit test hands it one end
 * of a socketpair), from peer. OWNERSHIP: takes c; the session sets
 * itself as the conn's owner.
 */
struct conn;
void smtp_session_new(struct smtp_server *srv, struct conn *c, enum cfg_role role,
    const struct sockaddr_storage *peer, struct smtp_session **out);
const struct sockaddr_storage *smtp_session_peer(const struct smtp_session *s);
/* Begins the dialogue (greet pause, connect policy, greeting). */
void smtp_session_start(struct smtp_session *s);
/* Refuses before reading anything: "code enh HOSTNAME text", then closes. */
void smtp_session_refuse(struct smtp_session *s, int code, const char *enh,
    const char *text);

/*
 * Shutdown (SIGTERM): sessions waiting for a commit finish it and then
 * close; the others get 421 at once. A message in the middle of DATA is
 * discarded, never half queued. Loop thread.
 */
void smtp_server_shutdown(struct smtp_server *srv);
/*
 * After the shutdown grace: every session still open (a message still
 * being decided, a client that never leaves) is closed at once, so that
 * nothing of a session runs once the queue writer has stopped.
 */
void smtp_server_abort(struct smtp_server *srv);

#endif
