/*
 * control: the daemon side of the admin socket. govrelayctl's live queue
 * verbs (hold, release, delete, retry, flush) arrive here and take
 * effect at once: each is applied through the queue writer in one
 * transaction together with its audit record, and once that transaction
 * is durable the scheduler is kicked (the changed callback) and the
 * client gets its one-line reply. The protocol is in control.h.
 *
 * Semantics, shared with govrelayctl's own store path (which repeats
 * them for when the daemon is down; keep the two in step):
 *   hold     sets the message's held flag: it leaves the schedule. An
 *            attempt already under way finishes (its result is
 *            recorded; the message stays held).
 *   release  clears held and makes every pending recipient due now.
 *   delete   removes the message, its body and its schedule entry, with
 *            no DSN (postsuper -d). An attempt under way cannot bring it
 *            back: delivery's apply re-reads the message in its own write
 *            transaction, finds it gone and records nothing.
 *   retry    makes every pending recipient of a message that is not held
 *            due now.
 *   flush    the same for every message that is not held, in one
 *            transaction, with ONE summary audit record (qid empty,
 *            messages=N, held=M): a flush is one decision by one person,
 *            and the delivery records that follow carry the queue ids.
 * A verb that changes nothing (hold of a held message, an unknown id)
 * writes no audit record; its reply says why. Audit records are event
 * "admin" with action=queue.VERB, by=uid:N (the peer's kernel-verified
 * uid) and via=daemon (the CLI's store path writes via=store).
 *
 * Entry points: ctl_start, ctl_stop.
 *
 * Safety: the socket is created mode 0600 (umask around bind, then
 * chmod) and owned by the daemon's user, and each peer's credentials
 * (SO_PEERCRED) must be uid 0 or the daemon's own uid. A request is one
 * line of at most CTL_REQUEST_MAX bytes; reading it and writing the reply
 * each have CTL_TIMEOUT_MS (the wait for the writer does not: it always
 * completes, and a reply to a change that was made must not be lost to a
 * timer). At most CTL_MAX_CONNS connections are served; the next as many
 * again get "error 75 busy", any beyond that are closed unanswered.
 *
 * OWNERSHIP: the server owns its listening pipe, its path copy and its
 * connections. A connection lives until both of its handles have closed
 * and, when it submitted an operation, until that operation's done
 * callback has run (a reference each). The server frees itself after
 * ctl_stop once its pipe has closed and its last connection is gone.
 *
 * THREADS: everything on the loop thread except ctl_apply, which runs on
 * the writer thread between submit and done; it touches only its
 * connection's operation fields, which the loop leaves alone meanwhile
 * (the writer's mutex orders the two).
 *
 * ERRORS: ctl_start returns a negative errno with a sentence for main;
 * everything a client does is answered or closed, never fatal.
 */
#include "config.h"

#include <errno.h>
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

#include <uv.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/queue_writer.h"
#include "relay/control.h"

#define CTL_TIMEOUT_MS 5000
#define CTL_MAX_CONNS 16
#define CTL_BACKLOG 16
#define CTL_TEXT_MAX 256
#define CTL_REPLY_MAX (CTL_TEXT_MAX + 32)

enum ctl_verb { CTL_VERB_HOLD, CTL_VERB_RELEASE, CTL_VERB_DELETE, CTL_VERB_RETRY, CTL_VERB_FLUSH };

static const struct ctl_verb_def {
	const char *name;
	const char *action; /* the audit and log value */
	bool needs_id;
} ctl_verbs[] = {
	[CTL_VERB_HOLD] = { "hold", "queue.hold", true },
	[CTL_VERB_RELEASE] = { "release", "queue.release", true },
	[CTL_VERB_DELETE] = { "delete", "queue.delete", true },
	[CTL_VERB_RETRY] = { "retry", "queue.retry", true },
	[CTL_VERB_FLUSH] = { "flush", "queue.flush", false },
};

#define CTL_NVERBS (sizeof ctl_verbs / sizeof ctl_verbs[0])

struct ctl_server {
	uv_loop_t *loop;
	uv_pipe_t pipe;
	struct queue_writer *writer;
	ctl_changed_fn *changed;
	void *changed_arg;
	char *path;
	uid_t self_uid;
	struct ctl_conn *conns;
	size_t nconns;
	bool stopping;
	bool pipe_closed;
};

struct ctl_conn {
	struct ctl_server *srv;
	struct ctl_conn *prev, *next;
	uv_pipe_t pipe;
	uv_timer_t timer;
	uv_write_t wreq;
	int refs;            /* two handles, plus one while an operation is owed */
	bool closing;
	bool busy;           /* submitted to the writer, done not run yet */
	bool replied;
	char by[32];         /* "uid:N" */
	char in[CTL_REQUEST_MAX];
	size_t inlen;
	char out[CTL_REPLY_MAX];
	/* The operation: set on the loop before submit, results by ctl_apply. */
	enum ctl_verb verb;
	uint64_t id;
	char qid[QUEUE_ID_TEXT_LEN + 1]; /* "" for flush */
	int code;            /* 0 (ok) or the sysexits code of the error */
	bool changed;
	char text[CTL_TEXT_MAX];
};

static void ctl_reply(struct ctl_conn *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------ lifetime */

static void ctl_server_maybe_free(struct ctl_server *s)
{
	if (!s->stopping || !s->pipe_closed || s->nconns > 0)
		return;
	free(s->path);
	free(s);
}

static void ctl_conn_unref(struct ctl_conn *c)
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
	free(c);
	ctl_server_maybe_free(s);
}

static void ctl_on_conn_closed(uv_handle_t *h)
{
	ctl_conn_unref(h->data);
}

static void ctl_conn_close(struct ctl_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->pipe, ctl_on_conn_closed);
	uv_close((uv_handle_t *)&c->timer, ctl_on_conn_closed);
}

static void ctl_on_server_closed(uv_handle_t *h)
{
	struct ctl_server *s = h->data;

	s->pipe_closed = true;
	ctl_server_maybe_free(s);
}

/* --------------------------------------------------------------- reply */

static void ctl_on_write(uv_write_t *req, int status)
{
	(void)status; /* one request per connection: close either way */
	ctl_conn_close(req->data);
}

static void ctl_on_timeout(uv_timer_t *t)
{
	struct ctl_conn *c = t->data;

	if (c->replied) {
		/* The client does not read its reply. */
		ctl_conn_close(c);
		return;
	}
	ctl_reply(c, EX_TEMPFAIL, "timeout: no complete request within %d s",
	    CTL_TIMEOUT_MS / 1000);
}

/*
 * Sends the one reply line and closes after it (code 0 is "ok"). The
 * text is ours, but is still forced onto one line.
 */
static void ctl_reply(struct ctl_conn *c, int code, const char *fmt, ...)
{
	char text[CTL_TEXT_MAX];
	uv_buf_t b;
	va_list ap;
	size_t n;
	int rc;

	if (c->closing || c->replied)
		return;
	c->replied = true;
	uv_read_stop((uv_stream_t *)&c->pipe);
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	for (char *p = text; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (code == 0)
		rc = snprintf(c->out, sizeof c->out, "ok %s\n", text);
	else
		rc = snprintf(c->out, sizeof c->out, "error %d %s\n", code, text);
	n = rc < 0 ? 0 : (size_t)rc;
	if (n >= sizeof c->out) {
		n = sizeof c->out - 1;
		c->out[n - 1] = '\n';
	}
	uv_timer_start(&c->timer, ctl_on_timeout, CTL_TIMEOUT_MS, 0);
	b = uv_buf_init(c->out, (unsigned)n);
	c->wreq.data = c;
	rc = uv_write(&c->wreq, (uv_stream_t *)&c->pipe, &b, 1, ctl_on_write);
	if (rc < 0)
		ctl_conn_close(c);
}

/* ------------------------------------------------ the queue operations */

/* Makes every pending recipient due at now; returns how many pend. */
static size_t ctl_due_now(struct queue_msg *m, int64_t now)
{
	size_t pending = 0;

	for (size_t i = 0; i < m->nrcpts; i++) {
		struct queue_rcpt *r = &m->rcpts[i];

		if (r->state != QUEUE_RCPT_PENDING)
			continue;
		pending++;
		if (r->next_attempt > now)
			r->next_attempt = now;
	}
	return pending;
}

static size_t ctl_pending(const struct queue_msg *m)
{
	size_t pending = 0;

	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state == QUEUE_RCPT_PENDING)
			pending++;
	return pending;
}

/* hold, release, delete, retry of one message (writer thread). */
static int ctl_apply_msg(struct queue_txn *txn, struct ctl_conn *c, int64_t now)
{
	struct queue_audit_field f[5];
	struct queue_msg *m;
	char npend[24];
	size_t nf = 0, pending;
	int rc;

	rc = queue_msg_get(txn, c->id, &m);
	if (rc == -ENOENT) {
		c->code = EX_NOINPUT;
		snprintf(c->text, sizeof c->text, "no such message %s", c->qid);
		return 0;
	}
	if (rc < 0)
		return rc;
	pending = ctl_pending(m);
	switch (c->verb) {
	case CTL_VERB_HOLD:
		if (m->held) {
			snprintf(c->text, sizeof c->text, "%s is already held", c->qid);
			goto out;
		}
		m->held = true;
		snprintf(c->text, sizeof c->text, "%s held", c->qid);
		break;
	case CTL_VERB_RELEASE:
		if (!m->held) {
			snprintf(c->text, sizeof c->text, "%s is not held", c->qid);
			goto out;
		}
		m->held = false;
		ctl_due_now(m, now);
		snprintf(c->text, sizeof c->text, "%s released; %zu pending recipients due now",
		    c->qid, pending);
		break;
	case CTL_VERB_RETRY:
		if (pending == 0) {
			snprintf(c->text, sizeof c->text, "%s has no pending recipients", c->qid);
			goto out;
		}
		if (m->held) {
			snprintf(c->text, sizeof c->text,
			    "%s is held; release it to have it delivered", c->qid);
			goto out;
		}
		ctl_due_now(m, now);
		snprintf(c->text, sizeof c->text, "%s: %zu pending recipients due now",
		    c->qid, pending);
		break;
	case CTL_VERB_DELETE:
		snprintf(c->text, sizeof c->text, "%s deleted", c->qid);
		break;
	case CTL_VERB_FLUSH:
		panic("control: flush in ctl_apply_msg");
	}
	c->changed = true;
	snprintf(npend, sizeof npend, "%zu", pending);
	f[nf++] = (struct queue_audit_field){ "action", ctl_verbs[c->verb].action };
	f[nf++] = (struct queue_audit_field){ "by", c->by };
	f[nf++] = (struct queue_audit_field){ "via", "daemon" };
	f[nf++] = (struct queue_audit_field){ "pending", npend };
	if (c->verb == CTL_VERB_DELETE) {
		f[nf++] = (struct queue_audit_field){ "sender",
			m->sender != NULL && m->sender[0] != '\0' ? m->sender : "<>" };
		rc = queue_msg_delete(txn, m->id);
	} else {
		/* queue_msg_put keeps the schedule entry in step with held/next. */
		rc = queue_msg_put(txn, m);
	}
	if (rc == 0)
		rc = queue_audit_append(txn, now, c->qid, "admin", f, nf);
out:
	queue_msg_free(m);
	return rc;
}

struct ctl_flush {
	int64_t now;
	uint64_t *ids;
	size_t n, cap;
	size_t held;
};

static int ctl_flush_collect(void *arg, const struct queue_msg *m)
{
	struct ctl_flush *fl = arg;
	bool later = false;

	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state == QUEUE_RCPT_PENDING && m->rcpts[i].next_attempt > fl->now)
			later = true;
	if (!later)
		return 0; /* nothing pends, or it is due already */
	if (m->held) {
		fl->held++;
		return 0;
	}
	if (fl->n == fl->cap) {
		fl->cap = fl->cap ? fl->cap * 2 : 64;
		fl->ids = xreallocarray(fl->ids, fl->cap, sizeof *fl->ids);
	}
	fl->ids[fl->n++] = m->id;
	return 0;
}

/*
 * flush (writer thread): ids are collected first and changed after, so
 * no cursor walks a database that is being written.
 */
static int ctl_apply_flush(struct queue_txn *txn, struct ctl_conn *c, int64_t now)
{
	struct ctl_flush fl = { now, NULL, 0, 0, 0 };
	struct queue_audit_field f[5];
	char nmsg[24], nheld[24];
	int rc;

	rc = queue_msg_walk(txn, ctl_flush_collect, &fl);
	for (size_t i = 0; rc == 0 && i < fl.n; i++) {
		struct queue_msg *m;

		rc = queue_msg_get(txn, fl.ids[i], &m);
		if (rc < 0)
			break;
		ctl_due_now(m, now);
		rc = queue_msg_put(txn, m);
		queue_msg_free(m);
	}
	free(fl.ids);
	if (rc < 0)
		return rc;
	snprintf(c->text, sizeof c->text, "%zu messages due now (%zu held left alone)",
	    fl.n, fl.held);
	/* Kick anyway: a due message may be waiting behind a long sleep. */
	c->changed = true;
	if (fl.n == 0)
		return 0;
	snprintf(nmsg, sizeof nmsg, "%zu", fl.n);
	snprintf(nheld, sizeof nheld, "%zu", fl.held);
	f[0] = (struct queue_audit_field){ "action", ctl_verbs[CTL_VERB_FLUSH].action };
	f[1] = (struct queue_audit_field){ "by", c->by };
	f[2] = (struct queue_audit_field){ "via", "daemon" };
	f[3] = (struct queue_audit_field){ "messages", nmsg };
	f[4] = (struct queue_audit_field){ "held", nheld };
	return queue_audit_append(txn, now, "", "admin", f, 5);
}

/* Writer thread, inside the batch's (nested) write transaction. */
static int ctl_apply(struct queue_txn *txn, void *arg)
{
	struct ctl_conn *c = arg;
	int64_t now = time_now_ms();

	c->code = 0;
	c->changed = false;
	c->text[0] = '\0';
	if (c->verb == CTL_VERB_FLUSH)
		return ctl_apply_flush(txn, c, now);
	return ctl_apply_msg(txn, c, now);
}

/* Loop thread: the change is durable (status 0), or rolled back. */
static void ctl_done(void *arg, int status)
{
	struct ctl_conn *c = arg;
	struct ctl_server *s = c->srv;
	const char *action = ctl_verbs[c->verb].action;
	const char *id = c->qid[0] != '\0' ? c->qid : NULL;

	c->busy = false;
	if (status < 0) {
		log_err(id, "control: %s by %s failed: %s", action, c->by, queue_strerror(status));
		ctl_reply(c, status == -ENOSPC || status == -EAGAIN ? EX_TEMPFAIL : EX_SOFTWARE,
		    "cannot update the queue: %s", queue_strerror(status));
	} else {
		if (c->changed)
			log_event(LOG_LVL_INFO, id, "action", action, "by", c->by, "result",
			    c->text, NULL);
		ctl_reply(c, c->code, "%s", c->text);
		if (c->changed && !s->stopping && s->changed != NULL)
			s->changed(s->changed_arg);
	}
	ctl_conn_unref(c);
}

/* ------------------------------------------------------------- request */

/* Parses one request line (NUL-terminated, newline removed) and acts. */
static void ctl_dispatch(struct ctl_conn *c, char *line, size_t len)
{
	const struct ctl_verb_def *v = NULL;
	const char *arg = NULL;
	char *sp;
	size_t i;

	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if (ch < 0x20 || ch >= 0x7f) {
			ctl_reply(c, EX_USAGE, "request must be printable ASCII");
			return;
		}
	}
	sp = strchr(line, ' ');
	if (sp != NULL) {
		*sp = '\0';
		arg = sp + 1;
	}
	for (i = 0; i < CTL_NVERBS; i++) {
		if (strcmp(line, ctl_verbs[i].name) == 0) {
			v = &ctl_verbs[i];
			break;
		}
	}
	if (v == NULL) {
		ctl_reply(c, EX_USAGE,
		    "unknown verb; expected hold, release, delete or retry ID, or flush");
		return;
	}
	c->verb = (enum ctl_verb)i;
	c->qid[0] = '\0';
	if (v->needs_id && arg == NULL) {
		ctl_reply(c, EX_USAGE, "%s needs a queue id", v->name);
		return;
	}
	if (v->needs_id && queue_id_parse(arg, &c->id) < 0) {
		ctl_reply(c, EX_DATAERR, "bad queue id: expected %d hex digits",
		    QUEUE_ID_TEXT_LEN);
		return;
	}
	if (!v->needs_id && arg != NULL) {
		ctl_reply(c, EX_USAGE, "%s takes no argument", v->name);
		return;
	}
	if (v->needs_id)
		queue_id_format(c->id, c->qid);
	/* From here the writer sets the pace, not the client. */
	uv_timer_stop(&c->timer);
	c->busy = true;
	c->refs++;
	queue_writer_submit(c->srv->writer, ctl_apply, ctl_done, c);
}

static void ctl_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct ctl_conn *c = h->data;

	(void)suggested;
	/* Never more than the rest of the request buffer: the bound is here. */
	buf->base = c->in + c->inlen;
	buf->len = sizeof c->in - c->inlen;
}

static void ctl_on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct ctl_conn *c = st->data;
	char *nl;

	(void)buf;
	if (c->closing || c->replied || c->busy || nread == 0)
		return;
	if (nread < 0) {
		/* EOF or an error before a whole request: nobody to answer. */
		ctl_conn_close(c);
		return;
	}
	nl = memchr(c->in + c->inlen, '\n', (size_t)nread);
	c->inlen += (size_t)nread;
	if (nl == NULL) {
		if (c->inlen == sizeof c->in)
			ctl_reply(c, EX_USAGE, "request longer than %d bytes", CTL_REQUEST_MAX);
		return;
	}
	/* One request per connection: anything after the newline is ignored. */
	uv_read_stop(st);
	*nl = '\0';
	ctl_dispatch(c, c->in, (size_t)(nl - c->in));
}

/*
 * The peer's kernel-verified credentials. Only root and the daemon's own
 * uid may act for now; operators and their roles (govrelayctl operator
 * add, a later issue) will widen this check, and the audit records
 * already name the uid.
 */
static bool ctl_peer_is_allowed(struct ctl_conn *c)
{
	struct ctl_server *s = c->srv;
	struct ucred cred;
	socklen_t len = sizeof cred;
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof cred) {
		log_warn(NULL, "control: cannot read a client's credentials: %s", strerror(errno));
		ctl_reply(c, EX_SOFTWARE, "cannot identify the caller");
		return false;
	}
	snprintf(c->by, sizeof c->by, "uid:%lu", (unsigned long)cred.uid);
	if (cred.uid == 0 || cred.uid == s->self_uid)
		return true;
	log_warn(NULL, "control: refused uid %lu (pid %ld): only root and uid %lu may use %s",
	    (unsigned long)cred.uid, (long)cred.pid, (unsigned long)s->self_uid, s->path);
	ctl_reply(c, EX_NOPERM, "permission denied: only root and the daemon's user may "
	    "change the queue");
	return false;
}

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
	/* Neither init can fail for a unix pipe and a timer on a live loop. */
	uv_pipe_init(s->loop, &c->pipe, 0);
	uv_timer_init(s->loop, &c->timer);
	c->pipe.data = c;
	c->timer.data = c;
	c->refs = 2;
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	rc = uv_accept(server, (uv_stream_t *)&c->pipe);
	if (rc < 0) {
		log_warn(NULL, "control: accept: %s", uv_strerror(rc));
		ctl_conn_close(c);
		return;
	}
	if (s->nconns > 2 * CTL_MAX_CONNS) {
		ctl_conn_close(c);
		return;
	}
	uv_timer_start(&c->timer, ctl_on_timeout, CTL_TIMEOUT_MS, 0);
	if (s->nconns > CTL_MAX_CONNS) {
		ctl_reply(c, EX_TEMPFAIL, "busy: too many control connections; try again");
		return;
	}
	if (!ctl_peer_is_allowed(c))
		return;
	rc = uv_read_start((uv_stream_t *)&c->pipe, ctl_on_alloc, ctl_on_read);
	if (rc < 0)
		ctl_conn_close(c);
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
    ctl_changed_fn *changed, void *arg, struct ctl_server **out, char *err, size_t errlen)
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
	s->changed = changed;
	s->changed_arg = arg;
	s->path = xstrdup(path);
	s->self_uid = geteuid();
	rc = uv_pipe_init(loop, &s->pipe, 0);
	if (rc < 0) {
		snprintf(err, errlen, "control_socket %s: %s", path, uv_strerror(rc));
		free(s->path);
		free(s);
		return rc;
	}
	s->pipe.data = s;
	/*
	 * The socket must never exist with a wider mode, not even between
	 * bind and chmod. umask is per process: only the queue writer thread
	 * runs besides this one now, and it creates no files. The socket is
	 * owned by the user the daemon runs as; a later privilege drop must
	 * bind after it (or chown the socket) to keep that true.
	 */
	old = umask(0177);
	rc = uv_pipe_bind(&s->pipe, path);
	umask(old);
	bound = rc == 0;
	if (rc == 0 && chmod(path, 0600) < 0)
		rc = -errno;
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s->pipe, CTL_BACKLOG, ctl_on_connection);
	if (rc < 0) {
		snprintf(err, errlen, "control_socket %s: cannot listen: %s", path,
		    uv_strerror(rc));
		if (bound)
			(void)unlink(path);
		s->stopping = true;
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
	uv_close((uv_handle_t *)&s->pipe, ctl_on_server_closed);
	/*
	 * Connections owed a writer completion, or writing their reply,
	 * close by themselves once they have answered; close only the
	 * idle ones now (closing does not free, so the walk is safe).
	 */
	for (c = s->conns; c != NULL; c = c->next)
		if (!c->busy && !c->replied)
			ctl_conn_close(c);
}
