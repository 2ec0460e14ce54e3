/*
 * clamd: the INSTREAM client (policy/clamd.h) that the antivirus check
 * (stage_antivirus.c) streams each message through. The protocol is
 * clamd(8)'s: the command "zINSTREAM\0", then chunks of a 4-byte length
 * in network byte order followed by that many bytes, then a chunk of
 * length zero, then one reply ending in NUL: "stream: OK", "stream: NAME
 * FOUND" or "TEXT ERROR". clamd closes the connection after replying,
 * and also, with "INSTREAM size limit exceeded. ERROR", while it is still
 * being written to when the stream passes its StreamMaxLength; the reply
 * is read as soon as the connection is up, so that answer is not lost to
 * the write error (EPIPE, ECONNRESET) that follows it.
 *
 * A scan is a small state machine: IDLE (nothing sent; the connection
 * opens with the first piece, so a message that never comes costs
 * nothing), CONNECTING (pieces wait in order in a queue), STREAMING
 * (each piece is written as it comes) and DONE (the answer is known;
 * pieces that still come are dropped). Writes are uv_write requests that
 * own a copy of their bytes until libuv reports them written.
 *
 * The deadline: while the scan waits on clamd before the message has
 * ended (the connect, writes clamd has not taken) a timer of timeout_ms
 * runs and restarts whenever clamd makes progress, so a slow client is
 * not counted against clamd but a clamd that stops reading is. From
 * clamd_scan_finish on, one timer of timeout_ms covers the rest (the
 * writes still out, the scan, the reply), so the answer comes at most
 * timeout_ms after the message ended.
 *
 * Entry points: clamd_target_parse, clamd_reply_parse (pure);
 * clamd_scan_new, _write, _finish, _close (one scan).
 * OWNERSHIP: a scan is reference counted: one reference for its owner
 * (dropped by clamd_scan_close), one per libuv handle open (until its
 * close callback), one per connect or write request in flight (until its
 * callback, which libuv runs with UV_ECANCELED when the handle closes).
 * The owner may close at any moment, inside the done callback included:
 * no callback touches the owner after that, and the memory goes with the
 * last reference. Write requests own their chunk's bytes.
 * THREADS: loop thread only.
 * ERRORS: nothing is returned; every failure (no connection, a write or
 * read error, a reply too long or not understood, the deadline) is an
 * ERROR result whose text says why, for the caller to log.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/clamd.h"

/*
 * Bytes per INSTREAM chunk. clamd has no chunk limit of its own below
 * StreamMaxLength (clamd(8)), but a bounded chunk keeps each write's copy
 * small whatever size of piece the session hands over.
 */
#define CLAMD_CHUNK_MAX (64u * 1024u)
/*
 * Most message bytes held for clamd at once (queued while connecting or
 * written but not yet taken). The session bounds its own body memory
 * (max_inflight_memory) and pauses its client; this copy is outside that
 * budget, so a clamd that falls this far behind fails the scan (a
 * tempfail) rather than letting the copies grow with the message.
 */
#define CLAMD_BACKLOG_MAX (32u * 1024u * 1024u)
/* Longest reply kept: "stream: " + a signature name + " FOUND" is far less. */
#define CLAMD_REPLY_MAX 1024u

static const char clamd_command[] = "zINSTREAM"; /* sent with its NUL */

enum clamd_phase {
	CLAMD_PH_IDLE,
	CLAMD_PH_CONNECTING,
	CLAMD_PH_STREAMING,
	CLAMD_PH_DONE,
};

enum clamd_chunk_kind {
	CLAMD_CHUNK_COMMAND,    /* "zINSTREAM\0", no length prefix */
	CLAMD_CHUNK_DATA,       /* length prefix + bytes */
	CLAMD_CHUNK_END,        /* the zero-length chunk */
};

/* One write request and the bytes it owns. */
struct clamd_chunk {
	uv_write_t req;
	struct clamd_scan *sc;
	struct clamd_chunk *next;       /* the queue while connecting */
	enum clamd_chunk_kind kind;
	size_t len;
	unsigned char hdr[4];
	char data[];
};

struct clamd_scan {
	uv_loop_t *loop;
	struct clamd_target target;
	uint64_t timeout_ms;
	enum clamd_phase phase;
	unsigned refs;
	bool closed;            /* the owner has called clamd_scan_close */
	bool finished;          /* clamd_scan_finish was called */
	bool write_broken;      /* a write failed: only the reply may still come */
	bool stream_open, stream_closing, timer_open, timer_closing;
	union {
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} h;
	uv_connect_t connect;
	uv_timer_t timer;
	struct clamd_chunk *queue, **queue_tail;
	size_t writes_pending;
	size_t backlog;         /* message bytes copied and not yet taken */
	clamd_done_cb *done;
	void *done_arg;
	struct clamd_result result;
	char write_error[sizeof(((struct clamd_result *)0)->text)];
	size_t reply_len;
	char reply[CLAMD_REPLY_MAX];
};

const char *clamd_status_name(enum clamd_status status)
{
	switch (status) {
	case CLAMD_CLEAN:
		return "clean";
	case CLAMD_FOUND:
		return "found";
	case CLAMD_ERROR:
		return "error";
	}
	return "?";
}

/* ------------------------------------------------------------ parsing */

int clamd_target_parse(const char *spec, struct clamd_target *t, char *err, size_t errlen)
{
	const char *why;

	memset(t, 0, sizeof *t);
	if (cfg_parse_endpoint(spec, &t->ep, &why) < 0) {
		snprintf(err, errlen, "clamd: '%.64s' %s", spec, why);
		return -EINVAL;
	}
	str_copy(t->text, spec, sizeof t->text);
	return 0;
}

/* Copies len bytes of s as printable ASCII (others become '?'), bounded. */
static void clamd_copy_printable(char *dst, size_t dstlen, const char *s, size_t len)
{
	size_t i;

	if (len > dstlen - 1)
		len = dstlen - 1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		dst[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	dst[i] = '\0';
}

static bool clamd_ends_with(const char *s, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

void clamd_reply_parse(const char *reply, size_t len, struct clamd_result *r)
{
	static const char prefix[] = "stream: ";
	const size_t plen = sizeof prefix - 1;
	size_t n = len;

	memset(r, 0, sizeof *r);
	/* The terminator is excluded by the caller; spaces and line ends too. */
	while (n > 0 && (reply[n - 1] == ' ' || reply[n - 1] == '\r' ||
	    reply[n - 1] == '\n' || reply[n - 1] == '\0'))
		n--;
	r->status = CLAMD_ERROR;
	if (n == 0) {
		str_copy(r->text, "clamd sent an empty answer", sizeof r->text);
		return;
	}
	/* "... ERROR" wherever it comes from (the size limit has no prefix). */
	if (clamd_ends_with(reply, n, " ERROR") || (n == 5 && memcmp(reply, "ERROR", 5) == 0)) {
		size_t m = n >= 6 ? n - 6 : 0;

		if (m >= plen && memcmp(reply, prefix, plen) == 0) {
			reply += plen;
			m -= plen;
		}
		clamd_copy_printable(r->text, sizeof r->text, reply, m);
		if (r->text[0] == '\0')
			str_copy(r->text, "clamd answered ERROR", sizeof r->text);
		return;
	}
	if (n >= plen && memcmp(reply, prefix, plen) == 0) {
		const char *v = reply + plen;
		size_t vlen = n - plen;

		if (vlen == 2 && memcmp(v, "OK", 2) == 0) {
			r->status = CLAMD_CLEAN;
			return;
		}
		if (vlen > 6 && clamd_ends_with(v, vlen, " FOUND")) {
			r->status = CLAMD_FOUND;
			clamd_copy_printable(r->text, sizeof r->text, v, vlen - 6);
			return;
		}
	}
	{
		char quoted[120];

		clamd_copy_printable(quoted, sizeof quoted, reply, n);
		snprintf(r->text, sizeof r->text, "clamd's answer is not understood: '%s'",
		    quoted);
	}
}

/* ------------------------------------------------------- the life cycle */

static uv_stream_t *clamd_stream(struct clamd_scan *sc)
{
	return sc->target.ep.is_unix ? (uv_stream_t *)&sc->h.pipe : (uv_stream_t *)&sc->h.tcp;
}

static void clamd_unref(struct clamd_scan *sc)
{
	struct clamd_chunk *c, *next;

	if (--sc->refs > 0)
		return;
	for (c = sc->queue; c != NULL; c = next) {
		next = c->next;
		free(c);
	}
	free(sc);
}

static void clamd_handle_closed(uv_handle_t *h)
{
	clamd_unref(h->data);
}

/*
 * Closes the connection and the timer (each once); their callbacks unref.
 * A handle someone else closed already (the daemon's last-resort walk at
 * exit) is left alone: closing it twice is a libuv assertion, and its
 * reference is then only lost at exit.
 */
static void clamd_close_handles(struct clamd_scan *sc)
{
	uv_handle_t *stream = (uv_handle_t *)clamd_stream(sc);

	if (sc->stream_open && !sc->stream_closing) {
		sc->stream_closing = true;
		if (!uv_is_closing(stream))
			uv_close(stream, clamd_handle_closed);
	}
	if (sc->timer_open && !sc->timer_closing) {
		sc->timer_closing = true;
		if (!uv_is_closing((uv_handle_t *)&sc->timer))
			uv_close((uv_handle_t *)&sc->timer, clamd_handle_closed);
	}
}

/*
 * The answer is known: the connection closes (writes still out end with
 * UV_ECANCELED) and, when the message has ended, the owner hears it. The
 * owner may close the scan from its callback; nothing here touches the
 * scan after the callback.
 */
static void clamd_decide(struct clamd_scan *sc, const struct clamd_result *r)
{
	clamd_done_cb *done;

	if (sc->phase == CLAMD_PH_DONE)
		return;
	sc->phase = CLAMD_PH_DONE;
	sc->result = *r;
	clamd_close_handles(sc);
	if (!sc->finished || sc->closed || sc->done == NULL)
		return;
	done = sc->done;
	sc->done = NULL;
	done(sc->done_arg, &sc->result);
}

static void clamd_fail(struct clamd_scan *sc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void clamd_fail(struct clamd_scan *sc, const char *fmt, ...)
{
	struct clamd_result r;
	va_list ap;

	memset(&r, 0, sizeof r);
	r.status = CLAMD_ERROR;
	va_start(ap, fmt);
	vsnprintf(r.text, sizeof r.text, fmt, ap);
	va_end(ap);
	clamd_decide(sc, &r);
}

static unsigned long long clamd_timeout_s(const struct clamd_scan *sc)
{
	return (unsigned long long)(sc->timeout_ms + 999) / 1000;
}

static void clamd_timer_cb(uv_timer_t *t)
{
	struct clamd_scan *sc = t->data;

	if (sc->phase == CLAMD_PH_CONNECTING)
		clamd_fail(sc, "no connection to clamd at %s within %llus", sc->target.text,
		    clamd_timeout_s(sc));
	else if (sc->finished)
		clamd_fail(sc, "no answer from clamd at %s within %llus of the end of the message",
		    sc->target.text, clamd_timeout_s(sc));
	else
		clamd_fail(sc, "clamd at %s took no data for %llus", sc->target.text,
		    clamd_timeout_s(sc));
}

/*
 * Before the end of the message the timer runs only while the scan waits
 * on clamd, and restarts on progress; after it, it is never restarted
 * (clamd_scan_finish started it once).
 */
static void clamd_timer_update(struct clamd_scan *sc, bool progress)
{
	bool waiting;

	if (sc->finished || sc->phase == CLAMD_PH_DONE || !sc->timer_open)
		return;
	waiting = sc->phase == CLAMD_PH_CONNECTING || sc->writes_pending > 0 ||
	    sc->write_broken;
	if (!waiting)
		uv_timer_stop(&sc->timer);
	else if (progress || !uv_is_active((uv_handle_t *)&sc->timer))
		uv_timer_start(&sc->timer, clamd_timer_cb, sc->timeout_ms, 0);
}

struct clamd_scan *clamd_scan_new(uv_loop_t *loop, const struct clamd_target *target,
    uint64_t timeout_ms)
{
	struct clamd_scan *sc = xcalloc(1, sizeof *sc);

	sc->loop = loop;
	sc->target = *target;
	sc->timeout_ms = timeout_ms;
	sc->phase = CLAMD_PH_IDLE;
	sc->refs = 1;   /* the owner's */
	sc->queue_tail = &sc->queue;
	return sc;
}

void clamd_scan_close(struct clamd_scan *sc)
{
	if (sc == NULL)
		return;
	sc->closed = true;
	sc->done = NULL;
	clamd_close_handles(sc);
	clamd_unref(sc);
}

/* ------------------------------------------------------------- writing */

static struct clamd_chunk *clamd_chunk_new(struct clamd_scan *sc, enum clamd_chunk_kind kind,
    const char *data, size_t len)
{
	struct clamd_chunk *c = xmalloc(sizeof *c + len);

	memset(c, 0, sizeof *c);
	c->sc = sc;
	c->kind = kind;
	c->len = len;
	/* INSTREAM: a 4-byte length in network byte order (clamd(8)). */
	c->hdr[0] = (unsigned char)(len >> 24);
	c->hdr[1] = (unsigned char)(len >> 16);
	c->hdr[2] = (unsigned char)(len >> 8);
	c->hdr[3] = (unsigned char)len;
	if (len > 0)
		memcpy(c->data, data, len);
	return c;
}

static void clamd_write_cb(uv_write_t *req, int status)
{
	struct clamd_chunk *c = req->data;
	struct clamd_scan *sc = c->sc;

	sc->backlog -= c->kind == CLAMD_CHUNK_DATA ? c->len : 0;
	free(c);
	sc->writes_pending--;
	if (!sc->closed && sc->phase == CLAMD_PH_STREAMING) {
		if (status < 0 && !sc->write_broken) {
			/*
			 * clamd closed its side (its size limit, a restart): its
			 * reply, if it sent one, is still to be read, so the
			 * write error is only the answer when no reply comes.
			 */
			sc->write_broken = true;
			snprintf(sc->write_error, sizeof sc->write_error,
			    "writing to clamd at %s failed: %s", sc->target.text,
			    uv_strerror(status));
		}
		clamd_timer_update(sc, status == 0);
	}
	clamd_unref(sc);
}

/* Hands c to libuv (STREAMING); c is freed by its callback or here. */
static void clamd_submit(struct clamd_scan *sc, struct clamd_chunk *c)
{
	uv_buf_t bufs[2];
	unsigned n = 0;
	int rc;

	if (sc->write_broken) {
		free(c);
		return;
	}
	if (c->kind != CLAMD_CHUNK_COMMAND)
		bufs[n++] = uv_buf_init((char *)c->hdr, sizeof c->hdr);
	if (c->len > 0)
		bufs[n++] = uv_buf_init(c->data, (unsigned)c->len);
	c->req.data = c;
	sc->refs++;
	sc->writes_pending++;
	rc = uv_write(&c->req, clamd_stream(sc), bufs, n, clamd_write_cb);
	if (rc < 0) {
		sc->refs--;
		sc->writes_pending--;
		free(c);
		clamd_fail(sc, "writing to clamd at %s failed: %s", sc->target.text,
		    uv_strerror(rc));
		return;
	}
	clamd_timer_update(sc, false);
}

/* Queues c while connecting, writes it when streaming, drops it otherwise. */
static void clamd_put(struct clamd_scan *sc, struct clamd_chunk *c)
{
	if (sc->phase == CLAMD_PH_CONNECTING) {
		*sc->queue_tail = c;
		sc->queue_tail = &c->next;
	} else if (sc->phase == CLAMD_PH_STREAMING) {
		clamd_submit(sc, c);
	} else {
		free(c);
	}
}

/* ------------------------------------------------------------- reading */

static void clamd_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct clamd_scan *sc = h->data;

	(void)suggested;
	/* Room is never 0 while reading: a full buffer ends the scan. */
	*buf = uv_buf_init(sc->reply + sc->reply_len,
	    (unsigned)(sizeof sc->reply - sc->reply_len));
}

/* The connection ended (EOF or an error) before a NUL: say what we know. */
static void clamd_read_ended(struct clamd_scan *sc, ssize_t nread)
{
	struct clamd_result r;

	if (sc->reply_len > 0) {
		/* A reply without its NUL is still clamd's word. */
		clamd_reply_parse(sc->reply, sc->reply_len, &r);
		clamd_decide(sc, &r);
	} else if (sc->write_broken) {
		clamd_fail(sc, "%s", sc->write_error);
	} else if (nread == UV_EOF) {
		clamd_fail(sc, "clamd at %s closed the connection without an answer",
		    sc->target.text);
	} else {
		clamd_fail(sc, "reading from clamd at %s failed: %s", sc->target.text,
		    uv_strerror((int)nread));
	}
}

static void clamd_read_cb(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	struct clamd_scan *sc = stream->data;
	const char *end;
	size_t from = sc->reply_len;

	(void)buf;
	if (sc->closed || sc->phase != CLAMD_PH_STREAMING || nread == 0)
		return;
	if (nread < 0) {
		clamd_read_ended(sc, nread);
		return;
	}
	sc->reply_len += (size_t)nread;
	/* The z command form ends the reply with NUL; accept a newline too. */
	end = memchr(sc->reply + from, '\0', sc->reply_len - from);
	if (end == NULL)
		end = memchr(sc->reply + from, '\n', sc->reply_len - from);
	if (end != NULL) {
		struct clamd_result r;

		clamd_reply_parse(sc->reply, (size_t)(end - sc->reply), &r);
		clamd_decide(sc, &r);
		return;
	}
	if (sc->reply_len == sizeof sc->reply)
		clamd_fail(sc, "clamd's answer is longer than %zu bytes", sizeof sc->reply);
}

/* ---------------------------------------------------------- connecting */

static void clamd_connect_cb(uv_connect_t *req, int status)
{
	struct clamd_scan *sc = req->data;
	struct clamd_chunk *c, *next;
	int rc;

	if (sc->closed || sc->phase != CLAMD_PH_CONNECTING) {
		clamd_unref(sc);
		return;
	}
	if (status < 0) {
		clamd_fail(sc, "cannot connect to clamd at %s: %s", sc->target.text,
		    uv_strerror(status));
		clamd_unref(sc);
		return;
	}
	sc->phase = CLAMD_PH_STREAMING;
	rc = uv_read_start(clamd_stream(sc), clamd_alloc_cb, clamd_read_cb);
	if (rc < 0) {
		clamd_fail(sc, "cannot read from clamd at %s: %s", sc->target.text,
		    uv_strerror(rc));
		clamd_unref(sc);
		return;
	}
	clamd_submit(sc, clamd_chunk_new(sc, CLAMD_CHUNK_COMMAND, clamd_command,
	    sizeof clamd_command));
	/* The pieces that came while connecting, in order (the end included). */
	c = sc->queue;
	sc->queue = NULL;
	sc->queue_tail = &sc->queue;
	for (; c != NULL; c = next) {
		next = c->next;
		c->next = NULL;
		clamd_put(sc, c);
	}
	clamd_timer_update(sc, true);
	clamd_unref(sc);
}

/* Opens the connection (IDLE -> CONNECTING, or DONE when it cannot start). */
static void clamd_connect(struct clamd_scan *sc)
{
	uv_stream_t *stream = clamd_stream(sc);
	int rc = 0;

	uv_timer_init(sc->loop, &sc->timer);
	sc->timer.data = sc;
	sc->timer_open = true;
	sc->refs++;
	if (sc->target.ep.is_unix)
		rc = uv_pipe_init(sc->loop, &sc->h.pipe, 0);
	else
		rc = uv_tcp_init(sc->loop, &sc->h.tcp);
	if (rc < 0) {
		sc->phase = CLAMD_PH_CONNECTING;
		clamd_fail(sc, "no socket for clamd: %s", uv_strerror(rc));
		return;
	}
	stream->data = sc;
	sc->stream_open = true;
	sc->refs++;
	sc->phase = CLAMD_PH_CONNECTING;
	sc->connect.data = sc;
	sc->refs++;     /* the connect request's, dropped by its callback */
	if (sc->target.ep.is_unix) {
		/* A failure here comes through the callback, as libuv defers it. */
		uv_pipe_connect(&sc->connect, &sc->h.pipe, sc->target.ep.path, clamd_connect_cb);
	} else {
		rc = uv_tcp_connect(&sc->connect, &sc->h.tcp,
		    (const struct sockaddr *)&sc->target.ep.addr, clamd_connect_cb);
		if (rc < 0) {
			sc->refs--;
			clamd_fail(sc, "cannot connect to clamd at %s: %s", sc->target.text,
			    uv_strerror(rc));
			return;
		}
	}
	clamd_timer_update(sc, true);
}

void clamd_scan_write(struct clamd_scan *sc, const char *data, size_t len)
{
	if (sc->closed || sc->finished || len == 0)
		return;
	if (sc->phase == CLAMD_PH_IDLE)
		clamd_connect(sc);
	while (len > 0 && sc->phase != CLAMD_PH_DONE && !sc->write_broken) {
		size_t n = len < CLAMD_CHUNK_MAX ? len : CLAMD_CHUNK_MAX;

		if (sc->backlog + n > CLAMD_BACKLOG_MAX) {
			clamd_fail(sc, "clamd at %s fell more than %u MiB behind the message",
			    sc->target.text, CLAMD_BACKLOG_MAX >> 20);
			return;
		}
		sc->backlog += n;
		clamd_put(sc, clamd_chunk_new(sc, CLAMD_CHUNK_DATA, data, n));
		data += n;
		len -= n;
	}
}

void clamd_scan_finish(struct clamd_scan *sc, clamd_done_cb *done, void *arg)
{
	if (sc->closed || sc->finished)
		return;
	if (sc->phase == CLAMD_PH_IDLE)
		clamd_connect(sc);  /* an empty message is still scanned */
	sc->done = done;
	sc->done_arg = arg;
	sc->finished = true;
	if (sc->phase == CLAMD_PH_DONE) {
		sc->done = NULL;
		done(arg, &sc->result);
		return;
	}
	clamd_put(sc, clamd_chunk_new(sc, CLAMD_CHUNK_END, NULL, 0));
	/* From here on one deadline covers the writes left, the scan and the reply. */
	if (sc->phase != CLAMD_PH_DONE)
		uv_timer_start(&sc->timer, clamd_timer_cb, sc->timeout_ms, 0);
}
