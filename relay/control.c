/*
 * control: the daemon side of the admin socket. govrelayctl's live queue
 * verbs (hold, release, delete, retry, flush; and kick, which only wakes
 * the scheduler after govrelayctl released a quarantined message in its
 * own process) arrive here and take
 * effect at once: each is applied through the queue writer in one
 * transaction together with its audit record, and once that transaction
 * is durable the scheduler is kicked (the changed callback) and the
 * client gets its one-line reply. The line format is in common/ctlproto.h.
 *
 * The changes themselves and their audit records are queue_admin's
 * (queue/queue_admin.h), which govrelayctl's store path uses too when the
 * daemon is down; here they carry by=uid:N (the peer's kernel-verified
 * uid) and via=daemon.
 *
 * Entry points: ctl_start, ctl_set_explain, ctl_stop.
 *
 * Exec: a whole govrelayctl command from an operator, run by the admin
 * engine (admin/) on the thread pool with that user's SO_PEERCRED
 * identity (the engine checks what the operator may do and audits
 * refusals); its output streams back in frames (common/ctlproto.h).
 *
 * Safety, in the order a connection meets it:
 *   - The gate, at accept, before a byte is read: the peer's
 *     kernel-verified uid must be root, the daemon's own uid, or that of
 *     a registered operator (looked up by the uid's login name in the
 *     operators table, in one short read transaction, as the engine
 *     does). Anyone else is refused without a byte of theirs consumed;
 *     how they are answered and recorded is ctlproto_gate's bookkeeping:
 *     a few refusals per uid and CTL_GATE_WINDOW_MS get their own audit
 *     record (admin, action=denied), naming the command from at most
 *     CTL_PEEK_MAX bytes looked at with MSG_PEEK (never consumed, never
 *     kept: the record names what was refused); further ones are
 *     counted and written as one coalesced record when the window ends,
 *     and past a rate they are closed unanswered. So the socket may stay
 *     mode 0666: operators are ordinary Unix users who must reach it, and
 *     the uid check, not the file mode, is the boundary; a non-operator
 *     can cost the daemon one lookup per connection and nothing durable.
 *   - The request: a line of at most CTLPROTO_LINE_MAX bytes, an exec
 *     payload of at most CTLPROTO_REQUEST_MAX, `mailbox import` alone
 *     (recognized from the arguments at the payload's head) up to
 *     CTLPROTO_IMPORT_MAX. Reading it has one total deadline from accept
 *     (CTL_TIMEOUT_MS, CTL_IMPORT_TIMEOUT_MS for an import), never
 *     restarted by a read.
 *   - The answer: a queue verb waits for the writer without a timer (it
 *     always completes, and a reply to a change that was made must not be
 *     lost), then has CTL_TIMEOUT_MS to be written; an exec has
 *     control_command_time in all, running and output together. The
 *     engine reads long listings in pages, each in its own short read
 *     transaction (admin/audit.c, admin/queue.c), and its output waits
 *     while more than CTL_EXEC_BACKLOG_MAX is unsent: a slow reader holds
 *     memory bounded by that and no snapshot of the store.
 * At most CTL_MAX_CONNS authorized connections are served; the next as
 * many again get "error 75 busy", any beyond that are closed unanswered;
 * connections not yet judged count apart (CTL_MAX_PENDING in all), so
 * refused peers, which are closed at once, cannot crowd operators out.
 *
 * OWNERSHIP: the server owns its listening pipe, its path copy and its
 * connections. A connection lives until its conn (relay/conn.h: socket,
 * timer, line reader, write queue) has closed and, when it submitted an
 * operation, until that operation's done
 * callback has run (a reference each). The server frees itself after
 * ctl_stop once its pipe has closed and its last connection is gone.
 *
 * THREADS: everything on the loop thread except ctl_exec_work and the
 * frame writers it drives (thread pool: they touch only their connection's
 * exec fields, which the loop leaves alone while exec_running, and the
 * exec output buffer under exec_mu, which the loop moves into the conn's
 * write queue from the exec_out async) and ctl_apply, which runs on
 * the writer thread between submit and done; it touches only its
 * connection's operation fields (verb, id, by, res), which the loop
 * leaves alone meanwhile (the writer's mutex orders the two).
 *
 * ERRORS: ctl_start returns a negative errno with a sentence for main;
 * everything a client does is answered or closed, never fatal.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <uv.h>

#include "admin/admin.h"
#include "common/buf.h"
#include "common/ctlproto.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/audit_event.h"
#include "queue/queue_admin.h"
#include "queue/queue_writer.h"
#include "queue/tenancy.h"
#include "relay/conn.h"
#include "relay/control.h"
#include "relay/control_int.h"


/* ------------------------------------------------------------ lifetime */

static void ctl_server_maybe_free(struct ctl_server *s)
{
	if (!s->stopping || !s->pipe_closed || !s->kick_closed || !s->exec_out_closed ||
	    !s->gate_timer_closed || s->nconns > 0)
		return;
	free(s->path);
	free(s);
}

void ctl__conn_unref(struct ctl_conn *c)
{
	struct ctl_server *s = c->srv;

	if (--c->refs > 0)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	s->nconns--;
	if (c->counted)
		s->nallowed--;
	buf_free(&c->payload);
	buf_free(&c->exec_buf);
	uv_cond_destroy(&c->exec_cv);
	uv_mutex_destroy(&c->exec_mu);
	free(c);
	ctl_server_maybe_free(s);
}

static void ctl_on_conn_closed(void *arg)
{
	ctl__conn_unref(arg);
}

void ctl__conn_close(struct ctl_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	conn_close(c->conn);
}

static void ctl_on_server_closed(uv_handle_t *h)
{
	struct ctl_server *s = h->data;

	s->pipe_closed = true;
	ctl_server_maybe_free(s);
}

static void ctl_on_kick_closed(uv_handle_t *h)
{
	struct ctl_server *s = h->data;

	s->kick_closed = true;
	ctl_server_maybe_free(s);
}

static void ctl_on_exec_out_closed(uv_handle_t *h)
{
	struct ctl_server *s = h->data;

	s->exec_out_closed = true;
	ctl_server_maybe_free(s);
}

static void ctl_on_gate_timer_closed(uv_handle_t *h)
{
	struct ctl_server *s = h->data;

	s->gate_timer_closed = true;
	ctl_server_maybe_free(s);
}

static void ctl_on_kick(uv_async_t *a)
{
	struct ctl_server *s = a->data;

	if (!s->stopping && s->changed != NULL)
		s->changed(s->changed_arg);
}

/* --------------------------------------------------------------- reply */

static void ctl_exec_backlog_update(struct ctl_conn *c);
static void ctl_exec_cut(struct ctl_conn *c);

static void ctl_on_written(void *arg)
{
	struct ctl_conn *c = arg;

	if (c->exec_running) {
		ctl_exec_backlog_update(c);
		return;
	}
	/* One request per connection: the reply is out, so is the client. */
	if (c->replied && conn_out_pending(c->conn) == 0)
		ctl__conn_close(c);
}

static void ctl_on_lost(void *arg, int status, bool tls)
{
	struct ctl_conn *c = arg;

	(void)status; /* EOF or an error: nobody to answer (or the reply is lost) */
	(void)tls;
	if (c->peeking)
		return; /* the refusal's record is still to be written; then it closes */
	if (c->exec_running)
		ctl_exec_cut(c);
	ctl__conn_close(c);
}

/* Loop: the command's output has nowhere to go any more: it stops waiting. */
static void ctl_exec_cut(struct ctl_conn *c)
{
	uv_mutex_lock(&c->exec_mu);
	c->exec_write_failed = true;
	uv_cond_signal(&c->exec_cv);
	uv_mutex_unlock(&c->exec_mu);
}

/* Sends what the conn has buffered; the written callback closes after. */
static void ctl_send(struct ctl_conn *c, const char *data, size_t n)
{
	conn_want_read(c->conn, false);
	conn_deadline(c->conn, CONN_DL_FIXED, CTL_TIMEOUT_MS);
	conn_write(c->conn, data, n);
	conn_flush(c->conn);
}


/*
 * The deadline (a reply's write, a peek's retry) or the lifetime (the
 * request's, or the command's, one total deadline) passed.
 */
static void ctl_on_timeout(void *arg, enum conn_timeout which)
{
	struct ctl_conn *c = arg;

	if (c->closing)
		return;
	if (c->peeking) {
		if (which == CONN_TIMEOUT_DEADLINE)
			ctl__peek(c);
		return;
	}
	if (c->exec_running) {
		/* control_command_time is over: the output stops, the client goes. */
		ctl_exec_cut(c);
		ctl__conn_close(c);
		return;
	}
	if (c->busy)
		return; /* the writer answers; ctl_reply's own deadline follows */
	if (c->replied) {
		/* The client does not read its reply. */
		ctl__conn_close(c);
		return;
	}
	ctl__reply(c, EX_TEMPFAIL, "timeout: no complete request within %d s",
	    CTL_TIMEOUT_MS / 1000);
}

/*
 * Sends the one reply line and closes after it (code 0 is "ok"). The
 * text is ours, but is still forced onto one line.
 */
void ctl__reply(struct ctl_conn *c, int code, const char *fmt, ...)
{
	char text[CTL_TEXT_MAX];
	va_list ap;
	size_t n;

	if (c->closing || c->replied)
		return;
	c->replied = true;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	n = ctlproto_reply_format(c->out, sizeof c->out, code, text);
	ctl_send(c, c->out, n);
}

/* ------------------------------------------------ the queue operations */

/* Writer thread, inside the batch's (nested) write transaction. */
static int ctl_apply(struct queue_txn *txn, void *arg)
{
	struct ctl_conn *c = arg;
	int64_t now = time_now_ms();

	return queue_admin_apply(txn, c->verb, c->id, now, c->by, "daemon", &c->res);
}

/* Loop thread: the change is durable (status 0), or rolled back. */
static void ctl_done(void *arg, int status)
{
	struct ctl_conn *c = arg;
	struct ctl_server *s = c->srv;
	const char *action = queue_admin_verb_action(c->verb);
	const char *id = c->qid[0] != '\0' ? c->qid : NULL;
	bool changed;

	c->busy = false;
	if (status < 0) {
		log_err(id, "control: %s by %s failed: %s", action, c->by, queue_strerror(status));
		ctl__reply(c, status == -ENOSPC || status == -EAGAIN ? EX_TEMPFAIL : EX_SOFTWARE,
		    "cannot update the queue: %s", queue_strerror(status));
	} else {
		/* A flush kicks anyway: a due message may be waiting behind a long sleep. */
		changed = c->res.changed || c->verb == QUEUE_ADMIN_FLUSH;
		if (changed)
			log_event(LOG_LVL_INFO, id, "action", action, "by", c->by, "result",
			    c->res.text, NULL);
		ctl__reply(c, c->res.code, "%s", c->res.text);
		if (changed && !s->stopping && s->changed != NULL)
			s->changed(s->changed_arg);
	}
	ctl__conn_unref(c);
}

/* ---------------------------------------------------------------- exec */

/*
 * A delegated operator's govrelayctl command (admin/admin.h), run on
 * the thread pool with the identity the kernel gives for the socket's
 * peer. Output goes back in frames as it is produced: the pool thread
 * hands them to the loop (exec_buf, then the exec_out async), and the
 * loop writes them through the conn's one write queue. A peer that does
 * not read makes the command wait (CTL_EXEC_BACKLOG_MAX), until the
 * command's one total deadline (control_command_time from its start);
 * then its output is cut and the engine, which checks its output stream
 * between pages, stops.
 */

/* Loop: what is still to be written, for the waiting pool thread. */
static void ctl_exec_backlog_update(struct ctl_conn *c)
{
	uv_mutex_lock(&c->exec_mu);
	c->exec_backlog = c->exec_buf.len + conn_out_pending(c->conn);
	uv_cond_signal(&c->exec_cv);
	uv_mutex_unlock(&c->exec_mu);
}

/* Loop: moves the frames a pool thread produced into the write queue. */
static void ctl_exec_flush(struct ctl_conn *c)
{
	uv_mutex_lock(&c->exec_mu);
	if (c->exec_buf.len > 0 && !c->closing && !c->exec_write_failed) {
		conn_write(c->conn, c->exec_buf.data, c->exec_buf.len);
		conn_flush(c->conn);
	}
	buf_reset(&c->exec_buf);
	c->exec_backlog = c->closing ? 0 : conn_out_pending(c->conn);
	uv_cond_signal(&c->exec_cv);
	uv_mutex_unlock(&c->exec_mu);
}

static void ctl_on_exec_out(uv_async_t *a)
{
	struct ctl_server *s = a->data;

	for (struct ctl_conn *c = s->conns; c != NULL; c = c->next)
		if (c->exec_running)
			ctl_exec_flush(c);
}

struct ctl_frame_sink {
	struct ctl_conn *c;
	const char *kind; /* "out" or "err" */
};

/* Pool thread: one frame to the loop, waiting while the peer lags. */
static int ctl_frame_put(struct ctl_conn *c, const char *kind, const char *data, size_t n)
{
	uint64_t deadline = c->exec_deadline; /* set on the loop before the work was queued */
	int rc = 0;

	uv_mutex_lock(&c->exec_mu);
	while (!c->exec_write_failed && c->exec_backlog > CTL_EXEC_BACKLOG_MAX) {
		uint64_t now = uv_hrtime();

		if (now >= deadline ||
		    uv_cond_timedwait(&c->exec_cv, &c->exec_mu, deadline - now) == UV_ETIMEDOUT) {
			if (c->exec_backlog > CTL_EXEC_BACKLOG_MAX)
				c->exec_write_failed = true;
		}
	}
	if (c->exec_write_failed) {
		rc = -1;
	} else {
		buf_printf(&c->exec_buf, "%s %zu\n", kind, n);
		buf_append(&c->exec_buf, data, n);
		c->exec_backlog += n;
	}
	uv_mutex_unlock(&c->exec_mu);
	if (rc == 0)
		uv_async_send(&c->srv->exec_out);
	return rc;
}

static ssize_t ctl_frame_write(void *cookie, const char *data, size_t size)
{
	struct ctl_frame_sink *sink = cookie;
	struct ctl_conn *c = sink->c;
	size_t done = 0;

	while (done < size) {
		size_t n = size - done < CTLPROTO_FRAME_MAX ? size - done : CTLPROTO_FRAME_MAX;

		if (ctl_frame_put(c, sink->kind, data + done, n) < 0)
			return -1;
		done += n;
	}
	return (ssize_t)size;
}

/*
 * Pool thread: `policy explain` through the daemon's explain service,
 * with what is left of the command's time (a second of it kept for the
 * output).
 */
static int ctl_exec_explain(void *arg, const struct admin_explain_req *req, struct buf *out)
{
	struct ctl_conn *c = arg;
	uint64_t margin = 1000000000u;
	uint64_t deadline = c->exec_deadline > margin ? c->exec_deadline - margin : 0;

	return c->srv->explain(c->srv->explain_arg, req, deadline, out);
}

void ctl_set_explain(struct ctl_server *s, ctl_explain_fn *fn, void *arg)
{
	s->explain = fn;
	s->explain_arg = arg;
}

/* Pool thread: called by the engine after a committed queue change. */
static void ctl_exec_queue_changed(void *arg)
{
	struct ctl_server *s = arg;

	uv_async_send(&s->kick);
}

static void ctl_exec_work(uv_work_t *w)
{
	struct ctl_conn *c = w->data;
	struct ctl_server *s = c->srv;
	struct ctl_frame_sink out_sink = { c, "out" }, err_sink = { c, "err" };
	cookie_io_functions_t fns = { .write = ctl_frame_write };
	struct admin_io io;
	char **argv = NULL;
	int argc = 0;
	const void *in = NULL;
	size_t inlen = 0;
	const struct config *cfg = c->exec_cfg;

	c->exec_code = EX_SOFTWARE;
	if (ctlproto_exec_decode(c->payload.data, c->payload.len, &argc, &argv, &in, &inlen) < 0) {
		c->exec_code = EX_USAGE;
		return;
	}
	memset(&io, 0, sizeof io);
	io.out = fopencookie(&out_sink, "w", fns);
	io.err = fopencookie(&err_sink, "w", fns);
	/* fmemopen refuses an empty buffer: an empty stdin is /dev/null. */
	io.in = inlen > 0 ? fmemopen((void *)in, inlen, "r") : fopen("/dev/null", "r");
	io.config_file = cfg->file;
	io.cfg = cfg;
	io.store = s->store;
	/* Every change of the command goes through the daemon's one writer. */
	io.writer = s->writer;
	io.uid = c->uid;
	io.user = c->user; /* the gate's lookup of the peer's uid */
	io.super = c->privileged;
	io.remote = true;
	io.queue_changed = ctl_exec_queue_changed;
	io.queue_changed_arg = s;
	if (s->explain != NULL) {
		io.explain = ctl_exec_explain;
		io.explain_arg = c;
	}
	if (io.out != NULL && io.err != NULL && io.in != NULL)
		c->exec_code = admin_run(&io, argc, argv);
	if (io.out != NULL)
		fclose(io.out);
	if (io.err != NULL)
		fclose(io.err);
	if (io.in != NULL)
		fclose(io.in);
	ctlproto_exec_free(argc, argv);
	/* Per-thread OpenSSL state of a pool thread (password hashing). */
	OPENSSL_thread_stop();
}

/* One exec less; after ctl_stop the last one lets the exec_out async go. */
static void ctl_exec_done_count(struct ctl_server *s)
{
	if (--s->execs_running == 0 && s->stopping && !uv_is_closing((uv_handle_t *)&s->exec_out))
		uv_close((uv_handle_t *)&s->exec_out, ctl_on_exec_out_closed);
}

static void ctl_exec_done(uv_work_t *w, int status)
{
	struct ctl_conn *c = w->data;
	int n;

	/* The last frames may not have been moved yet: before the exit line. */
	ctl_exec_flush(c);
	c->exec_running = false;
	queue_writer_unref(c->srv->writer);
	ctl_exec_done_count(c->srv);
	buf_free(&c->payload);
	cfg_unref(c->exec_cfg);
	c->exec_cfg = NULL;
	if (status < 0)
		c->exec_code = EX_SOFTWARE;
	log_event(LOG_LVL_INFO, NULL, "event", "control_exec", "by", c->by, "exit",
	    c->exec_code == 0 ? "0" : "nonzero", NULL);
	if (c->closing || c->exec_write_failed) {
		ctl__conn_close(c);
		ctl__conn_unref(c);
		return;
	}
	c->replied = true;
	n = snprintf(c->out, sizeof c->out, "exit %d\n", c->exec_code);
	ctl_send(c, c->out, (size_t)n);
	ctl__conn_unref(c);
}

static void ctl_exec_start(struct ctl_conn *c)
{
	uint64_t total;

	/*
	 * Until ctl_exec_done only the command's output moves (no reads),
	 * within one total deadline for running and writing together.
	 */
	conn_want_read(c->conn, false);
	conn_deadline(c->conn, CONN_DL_NONE, 0);
	c->exec_write_failed = false;
	c->exec_backlog = 0;
	c->exec_cfg = c->srv->config(c->srv->changed_arg);
	total = c->exec_cfg->control_command_time;
	conn_lifetime(c->conn, total);
	c->exec_deadline = uv_hrtime() + total * 1000000u;
	c->exec_running = true;
	c->srv->execs_running++;
	c->busy = true;
	c->refs++;
	/* The pool thread may call the writer until ctl_exec_done: keep it. */
	queue_writer_ref(c->srv->writer);
	c->work.data = c;
	if (uv_queue_work(c->srv->loop, &c->work, ctl_exec_work, ctl_exec_done) < 0) {
		queue_writer_unref(c->srv->writer);
		c->exec_running = false;
		ctl_exec_done_count(c->srv);
		c->busy = false;
		c->refs--;
		cfg_unref(c->exec_cfg);
		c->exec_cfg = NULL;
		ctl__reply(c, EX_SOFTWARE, "cannot run the command");
	}
}

/* "exec LEN": the payload follows (maybe partly read with the line already). */
static void ctl_exec_begin(struct ctl_conn *c, const char *arg)
{
	char *end;
	unsigned long long len;

	if (c->srv->store == NULL || c->srv->config == NULL) {
		ctl__reply(c, EX_UNAVAILABLE, "this daemon does not run commands");
		return;
	}
	errno = 0;
	len = arg != NULL ? strtoull(arg, &end, 10) : 0;
	if (arg == NULL || errno != 0 || *end != '\0' || len == 0 ||
	    len > CTLPROTO_IMPORT_MAX) {
		ctl__reply(c, EX_USAGE, "exec needs a payload length of 1 to %u bytes (%u for "
		    "mailbox import)", CTLPROTO_REQUEST_MAX, CTLPROTO_IMPORT_MAX);
		return;
	}
	c->exec_len = (size_t)len;
	buf_init(&c->payload);
}

/* ------------------------------------------------------------- request */

/* Parses one request line (NUL-terminated, newline removed) and acts. */
static void ctl_dispatch(struct ctl_conn *c, char *line, size_t len)
{
	const char *verb, *arg;
	bool needs_id;

	if (ctlproto_request_parse(line, len, &verb, &arg) < 0) {
		ctl__reply(c, EX_USAGE, "request must be printable ASCII");
		return;
	}
	if (strcmp(verb, "exec") == 0) {
		ctl_exec_begin(c, arg);
		return;
	}
	if (!c->privileged) {
		log_warn(NULL, "control: refused %s from uid %lu: only root and uid %lu may "
		    "use the queue verbs", verb, (unsigned long)c->uid,
		    (unsigned long)geteuid());
		ctl__reply(c, EX_NOPERM, "permission denied: only root and the daemon's user may "
		    "change the queue this way; operators use govrelayctl, which runs their "
		    "command with their own rights");
		return;
	}
	if (strcmp(verb, "kick") == 0 && arg == NULL) {
		/*
		 * govrelayctl changed the schedule in its own process (a
		 * quarantine release): look at it now. No state of ours changes.
		 */
		if (!c->srv->stopping && c->srv->changed != NULL)
			c->srv->changed(c->srv->changed_arg);
		ctl__reply(c, 0, "scheduler woken");
		return;
	}
	if (queue_admin_verb_parse(verb, &c->verb) < 0) {
		ctl__reply(c, EX_USAGE,
		    "unknown verb; expected hold, release, delete or retry ID, or flush");
		return;
	}
	needs_id = queue_admin_verb_has_id(c->verb);
	c->qid[0] = '\0';
	c->id = 0;
	if (needs_id && arg == NULL) {
		ctl__reply(c, EX_USAGE, "%s needs a queue id", verb);
		return;
	}
	if (needs_id && queue_id_parse(arg, &c->id) < 0) {
		ctl__reply(c, EX_DATAERR, "bad queue id: expected %d hex digits",
		    QUEUE_ID_TEXT_LEN);
		return;
	}
	if (!needs_id && arg != NULL) {
		ctl__reply(c, EX_USAGE, "%s takes no argument", verb);
		return;
	}
	if (needs_id)
		queue_id_format(c->id, c->qid);
	/* From here the writer sets the pace, not the client. */
	conn_want_read(c->conn, false);
	conn_deadline(c->conn, CONN_DL_NONE, 0);
	conn_lifetime(c->conn, 0);
	c->busy = true;
	c->refs++;
	queue_writer_submit(c->srv->writer, ctl_apply, ctl_done, c);
}

static void ctl_exec_more(struct ctl_conn *c);

/* Moves what the conn buffered into the exec payload. */
static void ctl_exec_take(struct ctl_conn *c)
{
	size_t n = conn_in_len(c->conn);

	if (!c->import_ok && c->exec_len > CTLPROTO_REQUEST_MAX) {
		/* Undecided: no more than an ordinary request until the head says import. */
		if (n > CTLPROTO_REQUEST_MAX - c->payload.len)
			n = CTLPROTO_REQUEST_MAX - c->payload.len;
		buf_append(&c->payload, conn_in_data(c->conn), n);
		conn_in_consume(c->conn, n);
		ctl_exec_more(c);
		return;
	}
	/* One byte over what was announced is enough to refuse. */
	if (n > c->exec_len - c->payload.len + 1)
		n = c->exec_len - c->payload.len + 1;
	buf_append(&c->payload, conn_in_data(c->conn), n);
	conn_in_clear(c->conn);
	ctl_exec_more(c);
}

static void ctl_on_data(void *arg)
{
	struct ctl_conn *c = arg;
	struct conn_line l;
	char line[CTLPROTO_LINE_MAX + 1];

	if (c->closing || c->replied || c->busy)
		return;
	if (c->exec_len > 0) {
		ctl_exec_take(c);
		return;
	}
	/* The reader never buffers more than the longest request. */
	if (!conn_line_get(c->conn, CTLPROTO_LINE_MAX, &l)) {
		if (l.long_line)
			ctl__reply(c, EX_USAGE, "request longer than %d bytes", CTLPROTO_LINE_MAX);
		return;
	}
	if (l.too_long) {
		ctl__reply(c, EX_USAGE, "request longer than %d bytes", CTLPROTO_LINE_MAX);
		return;
	}
	/* Only the newline goes: a CR is the parser's to refuse. */
	memcpy(line, l.data, l.len - 1);
	line[l.len - 1] = '\0';
	ctl_dispatch(c, line, l.len - 1);
	if (c->exec_len > 0 && !c->replied) {
		/* Payload bytes that came with the line. */
		ctl_exec_take(c);
		return;
	}
	/* One request per connection: anything after the newline is ignored. */
	conn_want_read(c->conn, false);
}

/*
 * `policy explain` sends a whole message as its stdin: a large payload
 * too, bounded by the engine (max_message_size) once it runs.
 */
static bool ctl_exec_is_explain(int argc, char *const *argv)
{
	const char *w[2];

	return ctlproto_exec_words(argc, argv, w, 2) == 2 && strcmp(w[0], "policy") == 0 &&
	    strcmp(w[1], "explain") == 0;
}

/*
 * A payload announced over CTLPROTO_REQUEST_MAX must be an import (or a
 * policy explain, which is read the same way): the
 * arguments at its head say so within the first CTLPROTO_REQUEST_MAX
 * bytes, or it is refused there. An import gets its longer deadline,
 * still counted from accept. false when refused or still undecided.
 */
static bool ctl_exec_big_ok(struct ctl_conn *c)
{
	size_t n = c->payload.len < CTLPROTO_REQUEST_MAX ? c->payload.len : CTLPROTO_REQUEST_MAX;
	uint64_t spent = uv_now(c->srv->loop) - c->accepted;
	char **argv = NULL;
	int argc = 0, rc;
	bool import;

	rc = ctlproto_exec_head(c->payload.data, n, &argc, &argv);
	if (rc == -EAGAIN && c->payload.len < CTLPROTO_REQUEST_MAX)
		return false;
	import = rc == 0 &&
	    (ctlproto_exec_is_import(argc, argv) || ctl_exec_is_explain(argc, argv));
	ctlproto_exec_free(argc, argv);
	if (!import) {
		ctl__reply(c, EX_USAGE, "a request of %zu bytes is refused: commands send at most "
		    "%u bytes, mailbox import and policy explain at most %u", c->exec_len,
		    CTLPROTO_REQUEST_MAX, CTLPROTO_IMPORT_MAX);
		return false;
	}
	c->import_ok = true;
	conn_lifetime(c->conn, spent < CTL_IMPORT_TIMEOUT_MS ? CTL_IMPORT_TIMEOUT_MS - spent : 1);
	return true;
}

/* Payload bytes arrived: wait for more, refuse too many, or run. */
static void ctl_exec_more(struct ctl_conn *c)
{
	if (c->payload.len > c->exec_len) {
		ctl__reply(c, EX_USAGE, "exec payload longer than announced");
		return;
	}
	/* No timer here: the request's one deadline runs from accept. */
	if (!c->import_ok && c->exec_len > CTLPROTO_REQUEST_MAX) {
		if (!ctl_exec_big_ok(c))
			return;
		/* An import now: what waited behind the head is payload too. */
		if (conn_in_len(c->conn) > 0) {
			ctl_exec_take(c);
			return;
		}
	}
	if (c->payload.len < c->exec_len)
		return;
	ctl_exec_start(c);
}

static const struct conn_callbacks ctl_conn_callbacks = {
	.data = ctl_on_data,
	.written = ctl_on_written,
	.timeout = ctl_on_timeout,
	.lost = ctl_on_lost,
	.closed = ctl_on_conn_closed,
};

static void ctl_on_connection(uv_stream_t *server, int status)
{
	struct ctl_server *s = server->data;
	struct ctl_conn *c;
	int rc;

	if (status < 0) {
		log_warn(NULL, "control: accept: %s", uv_strerror(status));
		return;
	}
	c = xcalloc(1, sizeof *c);
	c->srv = s;
	c->conn = conn_new(s->loop, CONN_PIPE);
	conn_set_callbacks(c->conn, &ctl_conn_callbacks, c);
	c->refs = 1;
	buf_init(&c->exec_buf);
	uv_mutex_init(&c->exec_mu);
	uv_cond_init(&c->exec_cv);
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	rc = uv_accept(server, conn_stream(c->conn));
	if (rc < 0) {
		log_warn(NULL, "control: accept: %s", uv_strerror(rc));
		ctl__conn_close(c);
		return;
	}
	/* Before anything else is spent on it (refused peers close at once). */
	if (s->nconns > CTL_MAX_PENDING) {
		ctl__conn_close(c);
		return;
	}
	/* The whole request within CTL_TIMEOUT_MS of the accept, however it trickles in. */
	c->accepted = uv_now(s->loop);
	conn_lifetime(c->conn, CTL_TIMEOUT_MS);
	/* The gate, before a byte is read. */
	if (!ctl__peer_identify(c))
		return;
	if (!c->allowed) {
		ctl__refuse(c);
		return;
	}
	/* Only those who may talk count here: refused peers cannot crowd them out. */
	c->counted = true;
	if (++s->nallowed > 2 * CTL_MAX_CONNS) {
		ctl__conn_close(c);
		return;
	}
	if (s->nallowed > CTL_MAX_CONNS) {
		ctl__reply(c, EX_TEMPFAIL, "busy: too many control connections; try again");
		return;
	}
	conn_want_read(c->conn, true);
}

/* ---------------------------------------------------------------- start */

/*
 * A socket file left by a daemon that died is removed, but only after
 * checking that nobody answers on it: a second daemon must not steal a
 * live socket, and a file that is not a socket is never removed.
 */
static int ctl_clear_stale(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		rc = -errno;
		snprintf(err, errlen, "control_socket %s: %s", path, strerror(-rc));
		return rc;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "control_socket %s exists and is not a socket; "
		    "not removing it", path);
		return -EEXIST;
	}
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (str_copy(sa.sun_path, path, sizeof sa.sun_path) >= sizeof sa.sun_path) {
		snprintf(err, errlen, "control_socket %s: path too long", path);
		return -ENAMETOOLONG;
	}
	/* Non-blocking: a live daemon with a full backlog answers EAGAIN. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "control_socket %s: socket: %s", path, strerror(-rc));
		return rc;
	}
	rc = connect(fd, (const struct sockaddr *)&sa, sizeof sa) == 0 ? 0 : -errno;
	close(fd);
	if (rc == 0 || rc == -EAGAIN || rc == -EINPROGRESS) {
		snprintf(err, errlen, "control_socket %s is in use: another govrelayd "
		    "answers on it", path);
		return -EADDRINUSE;
	}
	if (rc != -ECONNREFUSED) {
		snprintf(err, errlen, "control_socket %s: cannot check the existing socket: %s",
		    path, strerror(-rc));
		return rc;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		rc = -errno;
		snprintf(err, errlen, "control_socket %s: cannot remove the stale socket: %s",
		    path, strerror(-rc));
		return rc;
	}
	log_info(NULL, "control: removed the stale socket %s (nobody answered on it)", path);
	return 0;
}

int ctl_start(uv_loop_t *loop, const char *path, struct queue_writer *writer,
    struct queue_store *store, ctl_config_fn *config, ctl_changed_fn *changed, void *arg,
    struct ctl_server **out, char *err, size_t errlen)
{
	struct ctl_server *s;
	mode_t old;
	bool bound;
	int rc;

	*out = NULL;
	if (path == NULL || path[0] == '\0') {
		snprintf(err, errlen, "control_socket is not set");
		return -EINVAL;
	}
	if ((rc = ctl_clear_stale(path, err, errlen)) < 0)
		return rc;
	s = xcalloc(1, sizeof *s);
	s->loop = loop;
	s->writer = writer;
	s->store = store;
	s->config = config;
	s->changed = changed;
	s->changed_arg = arg;
	s->path = xstrdup(path);
	rc = uv_pipe_init(loop, &s->pipe, 0);
	if (rc < 0) {
		snprintf(err, errlen, "control_socket %s: %s", path, uv_strerror(rc));
		free(s->path);
		free(s);
		return rc;
	}
	s->pipe.data = s;
	uv_async_init(loop, &s->kick, ctl_on_kick);
	s->kick.data = s;
	uv_async_init(loop, &s->exec_out, ctl_on_exec_out);
	s->exec_out.data = s;
	ctl__gate_start(s);
	/*
	 * Anyone may connect (mode 0666): delegated operators are ordinary
	 * Unix users. Who may talk at all is decided at accept, and what a
	 * peer may do per request, from its SO_PEERCRED uid, never from the
	 * socket's mode or anything the peer says. umask is per process: only the queue writer thread runs
	 * besides this one now, and it creates no files.
	 */
	old = umask(0111);
	rc = uv_pipe_bind(&s->pipe, path);
	umask(old);
	bound = rc == 0;
	if (rc == 0 && chmod(path, 0666) < 0)
		rc = -errno;
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s->pipe, CTL_BACKLOG, ctl_on_connection);
	if (rc < 0) {
		snprintf(err, errlen, "control_socket %s: cannot listen: %s", path,
		    uv_strerror(rc));
		if (bound)
			(void)unlink(path);
		s->stopping = true;
		uv_close((uv_handle_t *)&s->kick, ctl_on_kick_closed);
		uv_close((uv_handle_t *)&s->exec_out, ctl_on_exec_out_closed);
		uv_close((uv_handle_t *)&s->gate_timer, ctl_on_gate_timer_closed);
		uv_close((uv_handle_t *)&s->pipe, ctl_on_server_closed);
		return rc;
	}
	log_info(NULL, "control: listening on %s", path);
	*out = s;
	return 0;
}

void ctl_stop(struct ctl_server *s)
{
	struct ctl_conn *c;

	if (s == NULL || s->stopping)
		return;
	s->stopping = true;
	/* From now on govrelayctl finds no socket and works on the store. */
	if (unlink(s->path) < 0 && errno != ENOENT)
		log_warn(NULL, "control: cannot remove %s: %s", s->path, strerror(errno));
	uv_close((uv_handle_t *)&s->kick, ctl_on_kick_closed);
	/* Refusals counted and not yet reported are written now (the writer outlives us). */
	ctl__gate_flush(s, true);
	uv_close((uv_handle_t *)&s->gate_timer, ctl_on_gate_timer_closed);
	/* Running commands still hand output over: closed after the last. */
	if (s->execs_running == 0)
		uv_close((uv_handle_t *)&s->exec_out, ctl_on_exec_out_closed);
	uv_close((uv_handle_t *)&s->pipe, ctl_on_server_closed);
	/*
	 * Connections owed a writer completion, or writing their reply,
	 * close by themselves once they have answered; close only the
	 * idle ones now (closing does not free, so the walk is safe). A
	 * running command gets CTL_STOP_GRACE_MS more for its output, not
	 * the rest of control_command_time: a slow reader must not hold up
	 * the daemon's exit (its output is cut, and the engine stops at its
	 * next page).
	 */
	for (c = s->conns; c != NULL; c = c->next) {
		if (c->exec_running && !c->closing)
			conn_lifetime(c->conn, CTL_STOP_GRACE_MS);
		else if (!c->busy && !c->replied)
			ctl__conn_close(c);
	}
}
