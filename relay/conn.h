#ifndef GOVRELAY_CONN_H
#define GOVRELAY_CONN_H
/*
 * conn: one connection of the daemon (inbound SMTP, outbound SMTP/LMTP,
 * control socket), whatever the protocol. A conn wraps a libuv stream
 * (TCP, or a pipe: a unix socket or one end of a socketpair), optionally
 * wrapped by tlsio, and owns:
 *
 *   - the input buffer and the one bounded line reader of the tree, plus
 *     raw access for payloads (DATA, BDAT, exec);
 *   - the one write queue, with backpressure: reading stops while more
 *     than CONN_OUT_HIGH_WATER bytes of output are pending, and resumes
 *     when they drain;
 *   - deadlines: the next line must be complete within a time counted
 *     from its FIRST byte (or from now when nothing is buffered), progress
 *     deadlines re-armed on every read, fixed ones, and a total lifetime;
 *   - closing with a callback, never touching freed memory.
 *
 * It knows nothing of SMTP.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/buf.h"
#include "relay/tlsio.h"

/* Output pending past this stops reading (and should stop processing). */
#define CONN_OUT_HIGH_WATER (64 * 1024)

struct conn;

enum conn_kind {
	CONN_TCP,   /* uv_tcp_t */
	CONN_PIPE,  /* uv_pipe_t: unix socket, socketpair end */
};

enum conn_deadline {
	CONN_DL_NONE,     /* no deadline (the lifetime still runs) */
	CONN_DL_LINE,     /* the next line, counted from its first byte */
	CONN_DL_PROGRESS, /* the next read; re-armed by every read */
	CONN_DL_FIXED,    /* from now, whatever arrives */
};

enum conn_timeout {
	CONN_TIMEOUT_DEADLINE,
	CONN_TIMEOUT_LIFETIME,
};

struct conn_callbacks {
	/* New plaintext is buffered (conn_in_*, conn_line_get). */
	void (*data)(void *arg);
	/* A write completed: conn_out_pending() went down. May be NULL. */
	void (*written)(void *arg);
	/* The deadline or the lifetime passed; the conn stays open. */
	void (*timeout)(void *arg, enum conn_timeout which);
	/*
	 * The connection is unusable: end of file (status UV_EOF), a read or
	 * write error (a uv error), or tls is true: a fatal TLS error
	 * (tlsio_error() says why) or the peer's close_notify (-ECONNRESET).
	 * Buffered input was delivered first. The conn stays open.
	 */
	void (*lost)(void *arg, int status, bool tls);
	/* The TLS handshake completed (once). May be NULL. */
	void (*tls_established)(void *arg);
	/* After conn_close/conn_shutdown: every handle is closed; the conn is freed after this returns. */
	void (*closed)(void *arg);
};

/*
 * A new connection on loop with an initialized, unconnected stream of
 * the given kind: accept, open or connect it through conn_stream().
 * Nothing is read until the owner has set its callbacks and asks.
 */
struct conn *conn_new(uv_loop_t *loop, enum conn_kind kind);
/* The owner: cb and arg are borrowed for the life of the conn. */
void conn_set_callbacks(struct conn *c, const struct conn_callbacks *cb, void *arg);
uv_stream_t *conn_stream(struct conn *c);
uv_loop_t *conn_loop(const struct conn *c);

/* The owner wants input (reading still pauses for backpressure). */
void conn_want_read(struct conn *c, bool want);
bool conn_is_reading(const struct conn *c);

/* ---- input: the unconsumed plaintext */
const char *conn_in_data(const struct conn *c);
size_t conn_in_len(const struct conn *c);
void conn_in_consume(struct conn *c, size_t n);
/* Drops all buffered input; returns how many bytes that was. */
size_t conn_in_clear(struct conn *c);

/*
 * The bounded line reader. A line ends at LF. conn_line_get returns true
 * with the next line consumed from the input (its bytes stay valid until
 * the owner's callback returns or the next conn_line_get), false when no
 * whole line is buffered. A line longer than max (terminator included)
 * is never buffered whole: once more than max bytes without LF are
 * buffered, all but the last byte (a CR that may pair with the LF) are
 * dropped and the rest of the line follows with skipped set; l->long_line
 * tells the caller (also on false) that such a line is being skipped.
 */
struct conn_line {
	const char *data;   /* the line, terminator included */
	size_t len;         /* with the terminator */
	size_t content;     /* without CRLF (or the bare LF) */
	bool crlf;          /* ended in CR LF */
	bool bare_cr;       /* a CR inside the content */
	bool skipped;       /* its head was dropped: longer than max */
	bool too_long;      /* skipped, or len > max */
	bool long_line;     /* on false: a long line is being dropped */
};
bool conn_line_get(struct conn *c, size_t max, struct conn_line *l);
/* Makes the line deadline count from now (after the owner's own wait). */
void conn_line_restart(struct conn *c);

/* ---- output */
/* Buffered output; conn_flush() sends it (through TLS when active). */
struct buf *conn_out(struct conn *c);
void conn_write(struct conn *c, const char *data, size_t len);
/* 0, or -EPROTO when TLS failed (tlsio_error() says why). */
int conn_flush(struct conn *c);
/* Bytes handed to the stream and not yet written. */
size_t conn_out_pending(const struct conn *c);
/* Pending plus buffered output is over CONN_OUT_HIGH_WATER. */
bool conn_out_is_full(const struct conn *c);

/* ---- TLS */
/*
 * Starts TLS in the given role, after flushing buffered output in clear.
 * Every byte of input buffered before the handshake is discarded (RFC
 * 3207 section 4.2, CVE-2011-0411); returns how many that was, for the
 * owner's log. sni may be NULL. tlsio_error(conn_tls(c)) is set when the
 * endpoint could not be made.
 */
size_t conn_start_tls(struct conn *c, struct tlsio_ctx *ctx, bool server, const char *sni);
struct tlsio *conn_tls(const struct conn *c); /* NULL before conn_start_tls */
bool conn_tls_is_active(const struct conn *c);  /* handshake done */

/* ---- deadlines (one timer) */
void conn_deadline(struct conn *c, enum conn_deadline mode, uint64_t ms);
/* Total lifetime from now; 0 removes it. */
void conn_lifetime(struct conn *c, uint64_t ms);

/* ---- closing */
/* Flushes, sends close_notify under TLS, half-closes, then closes. */
void conn_shutdown(struct conn *c);
bool conn_is_shutting_down(const struct conn *c);
/* Closes at once; cb->closed follows. Safe to call twice. */
void conn_close(struct conn *c);
bool conn_is_closing(const struct conn *c);

#endif
