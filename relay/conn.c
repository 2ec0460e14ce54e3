/*
 * conn: the connection layer under the inbound session, the outbound
 * client and the control socket: one write queue, one bounded line
 * reader, backpressure, deadlines and TLS over any libuv stream.
 *
 * Entry points: conn_new, conn_want_read, conn_in_*, conn_line_get,
 * conn_out/conn_write/conn_flush, conn_start_tls, conn_deadline,
 * conn_lifetime, conn_shutdown, conn_close (see conn.h).
 *
 * Backpressure: every byte handed to uv_write counts as pending until its
 * write completes. While pending output exceeds CONN_OUT_HIGH_WATER the
 * conn does not read, whatever the owner wants, so a peer that sends
 * commands and never reads the replies cannot grow our memory: its input
 * waits in its own socket buffer. The owner also stops processing while
 * conn_out_is_full() and resumes from the written callback.
 *
 * Deadlines: one timer serves the owner's deadline and the lifetime (the
 * earlier wins). A LINE deadline counts from the first byte of the line
 * not yet complete, so a client trickling one byte at a time cannot hold
 * a connection by keeping it "active".
 *
 * OWNERSHIP: the conn owns its stream and timer handles, its buffers and
 * its tlsio. It is freed when both handles have closed and every write
 * has completed (a reference each); the owner hears of it through
 * cb->closed and must not use the conn afterwards. Write requests carry a
 * copy of their bytes and point only at the conn, never at the owner.
 * THREADS: loop thread only.
 * ERRORS: nothing here logs; failures reach the owner through cb->lost.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "relay/conn.h"

struct conn {
	uv_loop_t *loop;
	union {
		uv_handle_t handle;
		uv_stream_t stream;
		uv_tcp_t tcp;
		uv_pipe_t pipe;
	} sock;
	uv_timer_t timer;
	uv_shutdown_t shutdown_req;
	const struct conn_callbacks *cb;
	void *arg;
	int refs;                /* handles open + writes in flight */
	bool closing;
	bool shutting_down;
	bool want_read;
	bool reading;
	bool lost;               /* lost was reported: no more reads */
	/* Input: unconsumed bytes are in[in_pos..len). */
	struct buf in;
	size_t in_pos;
	bool skipping;           /* dropping an over-long line until its LF */
	uint64_t line_start;     /* uv_now of the first byte of the pending line; 0: none */
	/* Output. */
	struct buf out;
	size_t pending;
	/* TLS. */
	struct tlsio *tls;
	bool tls_active;
	bool tls_just_established;
	/* Timer. */
	enum conn_deadline dl_mode;
	uint64_t dl_ms;
	uint64_t dl_due;         /* absolute uv_now ms; 0: none */
	uint64_t life_due;       /* absolute uv_now ms; 0: none */
};

struct conn_write_req {
	uv_write_t req;
	struct conn *c;
	size_t len;
	char data[];
};

static void conn_update_reading(struct conn *c);
static void conn_timer_arm(struct conn *c);

/* ---------------------------------------------------------- lifetime */

static void conn_unref(struct conn *c)
{
	if (--c->refs > 0)
		return;
	/* Last reference: the owner hears of it, then the memory goes. */
	if (c->cb->closed)
		c->cb->closed(c->arg);
	tlsio_free(c->tls);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
}

static void conn_handle_closed(uv_handle_t *h)
{
	conn_unref(h->data);
}

/* Until the owner sets its own: a conn closed before that tells no one. */
static const struct conn_callbacks conn_no_callbacks;

struct conn *conn_new(uv_loop_t *loop, enum conn_kind kind)
{
	struct conn *c = xcalloc(1, sizeof *c);

	c->loop = loop;
	c->cb = &conn_no_callbacks;
	buf_init(&c->in);
	buf_init(&c->out);
	if (kind == CONN_PIPE)
		uv_pipe_init(loop, &c->sock.pipe, 0);
	else
		uv_tcp_init(loop, &c->sock.tcp);
	c->sock.handle.data = c;
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	c->refs = 2; /* one per handle */
	return c;
}

void conn_set_callbacks(struct conn *c, const struct conn_callbacks *cb, void *arg)
{
	c->cb = cb;
	c->arg = arg;
}

uv_stream_t *conn_stream(struct conn *c)
{
	return &c->sock.stream;
}

uv_loop_t *conn_loop(const struct conn *c)
{
	return c->loop;
}

void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->reading)
		uv_read_stop(&c->sock.stream);
	c->reading = false;
	uv_timer_stop(&c->timer);
	uv_close(&c->sock.handle, conn_handle_closed);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

bool conn_is_closing(const struct conn *c)
{
	return c->closing;
}

static void conn_shutdown_cb(uv_shutdown_t *req, int status)
{
	struct conn *c = req->data;

	(void)status;
	conn_close(c);
	conn_unref(c);
}

void conn_shutdown(struct conn *c)
{
	if (c->closing || c->shutting_down)
		return;
	conn_flush(c);
	if (c->tls_active)
		tlsio_shutdown(c->tls);
	c->shutting_down = true;
	conn_update_reading(c);
	c->shutdown_req.data = c;
	c->refs++;
	if (uv_shutdown(&c->shutdown_req, &c->sock.stream, conn_shutdown_cb) < 0) {
		conn_close(c);
		conn_unref(c);
	}
}

bool conn_is_shutting_down(const struct conn *c)
{
	return c->shutting_down;
}

/* ------------------------------------------------------------- output */

static void conn_write_cb(uv_write_t *req, int status)
{
	struct conn_write_req *w = (struct conn_write_req *)req;
	struct conn *c = w->c;

	c->pending -= w->len;
	free(w);
	if (!c->closing) {
		if (status < 0 && status != UV_ECANCELED && !c->lost) {
			c->lost = true;
			conn_update_reading(c);
			c->cb->lost(c->arg, status, false);
		} else {
			conn_update_reading(c);
			if (c->cb->written && !c->closing)
				c->cb->written(c->arg);
		}
	}
	conn_unref(c);
}

/* Bytes for the wire (ciphertext under TLS): the one write path. */
static void conn_write_raw(struct conn *c, const char *data, size_t len)
{
	struct conn_write_req *w;
	uv_buf_t b;

	if (c->closing || len == 0)
		return;
	w = xmalloc(sizeof *w + len);
	w->c = c;
	w->len = len;
	memcpy(w->data, data, len);
	b = uv_buf_init(w->data, (unsigned)len);
	if (uv_write(&w->req, &c->sock.stream, &b, 1, conn_write_cb) < 0) {
		/* The stream is going away; its read side reports it. */
		free(w);
		return;
	}
	c->refs++;
	c->pending += len;
	conn_update_reading(c);
}

struct buf *conn_out(struct conn *c)
{
	return &c->out;
}

void conn_write(struct conn *c, const char *data, size_t len)
{
	buf_append(&c->out, data, len);
}

int conn_flush(struct conn *c)
{
	int rc = 0;

	if (c->out.len == 0)
		return 0;
	if (c->closing) {
		buf_reset(&c->out);
		return 0;
	}
	if (c->tls != NULL)
		rc = tlsio_write(c->tls, c->out.data, c->out.len);
	else
		conn_write_raw(c, c->out.data, c->out.len);
	buf_reset(&c->out);
	return rc;
}

size_t conn_out_pending(const struct conn *c)
{
	return c->pending;
}

bool conn_out_is_full(const struct conn *c)
{
	return c->pending + c->out.len > CONN_OUT_HIGH_WATER;
}

/* -------------------------------------------------------------- input */

static void conn_in_append(struct conn *c, const char *data, size_t len)
{
	if (c->in_pos > 0) {
		buf_consume(&c->in, c->in_pos);
		c->in_pos = 0;
	}
	if (c->in.len == 0 && len > 0)
		c->line_start = uv_now(c->loop);
	buf_append(&c->in, data, len);
}

const char *conn_in_data(const struct conn *c)
{
	return c->in.data + c->in_pos;
}

size_t conn_in_len(const struct conn *c)
{
	return c->in.len - c->in_pos;
}

void conn_in_consume(struct conn *c, size_t n)
{
	c->in_pos += n;
	if (c->in_pos >= c->in.len) {
		buf_reset(&c->in);
		c->in_pos = 0;
		c->line_start = 0;
	}
}

size_t conn_in_clear(struct conn *c)
{
	size_t n = conn_in_len(c);

	buf_reset(&c->in);
	c->in_pos = 0;
	c->line_start = 0;
	c->skipping = false;
	return n;
}

bool conn_line_get(struct conn *c, size_t max, struct conn_line *l)
{
	const char *data = conn_in_data(c);
	size_t avail = conn_in_len(c);
	const char *lf = avail > 0 ? memchr(data, '\n', avail) : NULL;

	memset(l, 0, sizeof *l);
	if (lf == NULL) {
		if (avail > max) {
			/* Never buffer an over-long line: keep a CR that may pair with LF. */
			c->skipping = true;
			c->in_pos += avail - 1;
		}
		l->long_line = c->skipping;
		return false;
	}
	l->data = data;
	l->len = (size_t)(lf - data) + 1;
	l->crlf = l->len >= 2 && data[l->len - 2] == '\r';
	l->content = l->crlf ? l->len - 2 : l->len - 1;
	l->bare_cr = memchr(data, '\r', l->content) != NULL;
	l->skipped = c->skipping;
	l->too_long = c->skipping || l->len > max;
	c->skipping = false;
	/* The next line starts now (its bytes may already be here). */
	conn_in_consume(c, l->len);
	if (conn_in_len(c) > 0)
		c->line_start = uv_now(c->loop);
	return true;
}

void conn_line_restart(struct conn *c)
{
	if (conn_in_len(c) > 0)
		c->line_start = uv_now(c->loop);
}

/* ------------------------------------------------------------ reading */

static char conn_read_buffer[65536];

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	(void)h;
	(void)suggested;
	/* One loop thread, and a read is consumed before the next: one buffer. */
	*b = uv_buf_init(conn_read_buffer, sizeof conn_read_buffer);
}

static void conn_lose(struct conn *c, int status, bool tls)
{
	if (c->lost || c->closing)
		return;
	c->lost = true;
	conn_update_reading(c);
	c->cb->lost(c->arg, status, tls);
}

static void conn_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
	struct conn *c = stream->data;
	size_t before = conn_in_len(c);
	int rc = 0;

	if (nread == 0 || c->closing)
		return;
	if (nread < 0) {
		conn_lose(c, (int)nread, false);
		return;
	}
	if (c->dl_mode == CONN_DL_PROGRESS)
		conn_deadline(c, CONN_DL_PROGRESS, c->dl_ms);
	/* A reference: the owner may close the conn from any callback below. */
	c->refs++;
	if (c->tls != NULL)
		rc = tlsio_feed(c->tls, b->base, (size_t)nread);
	else
		conn_in_append(c, b->base, (size_t)nread);
	if (c->tls_just_established && !c->closing) {
		c->tls_just_established = false;
		if (c->cb->tls_established)
			c->cb->tls_established(c->arg);
	}
	/* What arrived before a TLS error or close_notify is still input. */
	if (!c->closing && conn_in_len(c) != before)
		c->cb->data(c->arg);
	if (rc < 0)
		conn_lose(c, rc, true);
	conn_unref(c);
}

static void conn_update_reading(struct conn *c)
{
	bool want;

	if (c->closing)
		return;
	want = c->want_read && !c->lost && !c->shutting_down &&
	    c->pending <= CONN_OUT_HIGH_WATER;
	if (want && !c->reading) {
		if (uv_read_start(&c->sock.stream, conn_alloc_cb, conn_read_cb) == 0)
			c->reading = true;
	} else if (!want && c->reading) {
		uv_read_stop(&c->sock.stream);
		c->reading = false;
	}
}

void conn_want_read(struct conn *c, bool want)
{
	c->want_read = want;
	conn_update_reading(c);
}

bool conn_is_reading(const struct conn *c)
{
	return c->reading;
}

/* ---------------------------------------------------------------- TLS */

static void conn_tls_send(void *arg, const char *data, size_t len)
{
	conn_write_raw(arg, data, len);
}

static void conn_tls_plaintext(void *arg, const char *data, size_t len)
{
	conn_in_append(arg, data, len);
}

static void conn_tls_established(void *arg)
{
	struct conn *c = arg;

	c->tls_active = true;
	/* Told to the owner once the feed that completed it returns. */
	c->tls_just_established = true;
}

static const struct tlsio_callbacks conn_tls_callbacks = {
	.send = conn_tls_send,
	.plaintext = conn_tls_plaintext,
	.established = conn_tls_established,
};

size_t conn_start_tls(struct conn *c, struct tlsio_ctx *ctx, bool server, const char *sni)
{
	size_t discarded;

	conn_flush(c);
	discarded = conn_in_clear(c);
	c->tls = tlsio_new(ctx, server, sni, &conn_tls_callbacks, c);
	return discarded;
}

struct tlsio *conn_tls(const struct conn *c)
{
	return c->tls;
}

bool conn_tls_is_active(const struct conn *c)
{
	return c->tls_active;
}

/* ---------------------------------------------------------- deadlines */

static void conn_timer_cb(uv_timer_t *t)
{
	struct conn *c = t->data;
	uint64_t now = uv_now(c->loop);

	if (c->closing)
		return;
	if (c->life_due != 0 && now >= c->life_due) {
		c->life_due = 0;
		conn_timer_arm(c);
		c->cb->timeout(c->arg, CONN_TIMEOUT_LIFETIME);
		return;
	}
	if (c->dl_due != 0 && now >= c->dl_due) {
		c->dl_due = 0;
		c->dl_mode = CONN_DL_NONE;
		conn_timer_arm(c);
		c->cb->timeout(c->arg, CONN_TIMEOUT_DEADLINE);
		return;
	}
	conn_timer_arm(c);
}

static void conn_timer_arm(struct conn *c)
{
	uint64_t due = c->dl_due, now = uv_now(c->loop);

	if (c->closing)
		return;
	if (c->life_due != 0 && (due == 0 || c->life_due < due))
		due = c->life_due;
	if (due == 0) {
		uv_timer_stop(&c->timer);
		return;
	}
	uv_timer_start(&c->timer, conn_timer_cb, due > now ? due - now : 0, 0);
}

void conn_deadline(struct conn *c, enum conn_deadline mode, uint64_t ms)
{
	uint64_t now = uv_now(c->loop);

	c->dl_mode = mode;
	c->dl_ms = ms;
	switch (mode) {
	case CONN_DL_NONE:
		c->dl_due = 0;
		break;
	case CONN_DL_LINE:
		/* From the first byte of the pending line, or from now. */
		c->dl_due = (conn_in_len(c) > 0 && c->line_start != 0 ? c->line_start : now) + ms;
		break;
	case CONN_DL_PROGRESS:
	case CONN_DL_FIXED:
		c->dl_due = now + ms;
		break;
	}
	if (c->dl_due == 0 && mode != CONN_DL_NONE)
		c->dl_due = 1; /* uv_now of 0 plus 0 ms: due at once */
	conn_timer_arm(c);
}

void conn_lifetime(struct conn *c, uint64_t ms)
{
	c->life_due = ms == 0 ? 0 : uv_now(c->loop) + ms;
	conn_timer_arm(c);
}
