/*
 * control_gate: who may talk to the control socket at all, decided at
 * accept from the peer's SO_PEERCRED uid before a byte of theirs is read
 * (relay/control.c's header has the whole safety story), and what
 * becomes of those refused: an answer, an audit record of their own for
 * the first few per uid and window, one coalesced record for the rest,
 * and past a rate a bare close. The bookkeeping is common/ctlproto.h's
 * ctlproto_gate (pure, unit-tested); this file does the I/O.
 *
 * Entry points (control_int.h): ctl__gate_start, ctl__peer_identify,
 * ctl__refuse, ctl__peek, ctl__gate_flush.
 * OWNERSHIP: a refusal record in flight (struct ctl_refusal) owns itself
 * and is freed by its done callback; one for a connection holds a
 * reference on it until then.
 * THREADS: the loop thread, except ctl_refusal_apply (the writer thread,
 * touching only its own record).
 * ERRORS: a store error while looking up an operator refuses (the gate
 * fails closed) and is logged; a record that cannot be written is logged.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sysexits.h>
#include <unistd.h>

#include <uv.h>

#include "admin/admin.h"
#include "common/ctlproto.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/audit_event.h"
#include "queue/queue.h"
#include "queue/queue_writer.h"
#include "queue/tenancy.h"
#include "relay/conn.h"
#include "relay/control_int.h"

void ctl__gate_start(struct ctl_server *s)
{
	uv_timer_init(s->loop, &s->gate_timer);
	s->gate_timer.data = s;
	ctlproto_gate_init(&s->gate, CTL_GATE_WINDOW_MS, CTL_GATE_RECORD_MAX, CTL_GATE_REPLY_MAX,
	    CTL_GATE_GLOBAL_MAX);
}

/* The login name of uid, or "uid:N" (getpwuid_r: a files lookup, short). */
static void ctl_user_name(uid_t uid, char *out, size_t outlen)
{
	struct passwd pw, *pwp = NULL;
	char pwbuf[4096];

	if (getpwuid_r(uid, &pw, pwbuf, sizeof pwbuf, &pwp) == 0 && pwp != NULL)
		str_copy(out, pw.pw_name, outlen);
	else
		snprintf(out, outlen, "uid:%lu", (unsigned long)uid);
}

/*
 * Whether user is a registered operator: one short read transaction on
 * the loop (LMDB readers take no lock and never wait). A store error
 * refuses: the gate fails closed.
 */
static bool ctl_is_operator(struct ctl_server *s, const char *user)
{
	struct queue_operator *op = NULL;
	struct queue_txn *txn;
	int rc;

	if (s->store == NULL)
		return false;
	if ((rc = queue_txn_begin(s->store, false, &txn)) < 0) {
		log_warn(NULL, "control: cannot read the operators: %s", queue_strerror(rc));
		return false;
	}
	rc = queue_operator_get(txn, user, &op);
	queue_txn_abort(txn);
	queue_operator_free(op);
	if (rc < 0 && rc != -ENOENT)
		log_warn(NULL, "control: cannot read the operators: %s", queue_strerror(rc));
	return rc == 0;
}

/* A refusal's audit record, on its way through the writer. */
struct ctl_refusal {
	struct ctl_conn *c;          /* answered once durable; NULL: coalesced */
	char by[CTL_USER_MAX];
	char command[CTL_COMMAND_MAX];
	char reason[160];
	char count[24];
	char since[40];
};

/* Writer thread: the record (admin, action=denied, via=daemon). */
static int ctl_refusal_apply(struct queue_txn *txn, void *arg)
{
	struct ctl_refusal *r = arg;
	const struct queue_audit_field f[] = {
		{ "command", r->command },
		{ "reason", r->reason },
		{ "count", r->count[0] != '\0' ? r->count : NULL },
		{ "since", r->since[0] != '\0' ? r->since : NULL },
	};

	return queue_audit_admin(txn, time_now_ms(), NULL, "denied", r->by, "daemon", f, 4);
}

static void ctl_refuse_reply(struct ctl_conn *c);

static void ctl_refusal_done(void *arg, int status)
{
	struct ctl_refusal *r = arg;

	if (status < 0)
		log_err(NULL, "control: cannot record a refusal of %s: %s", r->by,
		    queue_strerror(status));
	if (r->c != NULL) {
		r->c->busy = false;
		ctl_refuse_reply(r->c);
		ctl__conn_unref(r->c);
	}
	free(r);
}

/* One coalesced record: "N refusals from uid U since T". */
static void ctl_gate_write(struct ctl_server *s, const struct ctlproto_gate_flush *fl)
{
	struct ctl_refusal *r = xcalloc(1, sizeof *r);
	char since[40];

	time_format_iso(fl->since, since, sizeof since);
	if (fl->any_uid)
		str_copy(r->by, "uid:*", sizeof r->by);
	else
		ctl_user_name(fl->uid, r->by, sizeof r->by);
	str_copy(r->command, "-", sizeof r->command);
	str_copy(r->since, since, sizeof r->since);
	snprintf(r->count, sizeof r->count, "%" PRIu64, fl->count);
	if (fl->any_uid)
		snprintf(r->reason, sizeof r->reason, "%" PRIu64 " refusals from several uids "
		    "since %s: not root, the daemon's user or an operator", fl->count, since);
	else
		snprintf(r->reason, sizeof r->reason, "%" PRIu64 " refusals from uid %lu since "
		    "%s: not root, the daemon's user or an operator", fl->count,
		    (unsigned long)fl->uid, since);
	log_warn(NULL, "control: %s", r->reason);
	queue_writer_submit(s->writer, ctl_refusal_apply, ctl_refusal_done, r);
}

/* Writes the coalesced records due at now; stopping: every count now. */
void ctl__gate_flush(struct ctl_server *s, bool all)
{
	struct ctlproto_gate_flush fl;
	int64_t now = time_now_ms();

	if (all)
		now += 2 * CTL_GATE_WINDOW_MS;
	while (ctlproto_gate_due(&s->gate, now, &fl))
		ctl_gate_write(s, &fl);
}

static void ctl_on_gate_timer(uv_timer_t *t);

static void ctl_gate_arm(struct ctl_server *s)
{
	int64_t due = ctlproto_gate_next_due(&s->gate), now = time_now_ms();

	if (s->stopping)
		return;
	if (due < 0) {
		uv_timer_stop(&s->gate_timer);
		return;
	}
	uv_timer_start(&s->gate_timer, ctl_on_gate_timer,
	    due > now ? (uint64_t)(due - now) + 1 : 1, 0);
}

static void ctl_on_gate_timer(uv_timer_t *t)
{
	struct ctl_server *s = t->data;

	ctl__gate_flush(s, false);
	ctl_gate_arm(s);
}

/* The answer to a refused peer; the written callback closes after it. */
static void ctl_refuse_reply(struct ctl_conn *c)
{
	ctl__reply(c, EX_NOPERM, "permission denied: %s is not an operator; only root, the "
	    "daemon's user and operators (see 'operator add') may use the control socket",
	    c->user);
}

/*
 * Names the refused request for its record from what the peer has sent
 * so far, looked at with MSG_PEEK: nothing is consumed or kept. The
 * request line's verb, or for an exec the command its arguments name
 * ("mailbox add"). false while more may still come.
 */
static bool ctl_peek_name(struct ctl_conn *c, const char *data, size_t n, bool final)
{
	const char *nl = memchr(data, '\n', n);
	char line[CTLPROTO_LINE_MAX + 1], **argv = NULL;
	const char *verb, *arg;
	int argc = 0, rc;
	size_t ll;

	if (nl == NULL)
		return final;
	ll = (size_t)(nl - data);
	memcpy(line, data, ll);
	line[ll] = '\0';
	if (ctlproto_request_parse(line, ll, &verb, &arg) < 0)
		return true;
	if (strcmp(verb, "exec") != 0) {
		admin_command_name(1, (char *const *)&verb, c->command, sizeof c->command);
		return true;
	}
	rc = ctlproto_exec_head(nl + 1, n - ll - 1, &argc, &argv);
	if (rc == -EAGAIN && !final)
		return false;
	if (rc == 0)
		admin_command_name(argc, argv, c->command, sizeof c->command);
	else
		str_copy(c->command, "exec", sizeof c->command);
	ctlproto_exec_free(argc, argv);
	return true;
}

/* A refused peer to be recorded: look, wait a little for more, then record. */
void ctl__peek(struct ctl_conn *c)
{
	char data[CTL_PEEK_MAX];
	struct ctl_refusal *r;
	uv_os_fd_t fd;
	ssize_t n = -1;
	bool final = uv_now(c->srv->loop) >= c->peek_until;

	if (uv_fileno((uv_handle_t *)conn_stream(c->conn), &fd) == 0)
		n = recv(fd, data, sizeof data, MSG_PEEK | MSG_DONTWAIT);
	/* A full buffer, the peer's end of file or an error: nothing more to wait for. */
	if (n == 0 || (size_t)n == sizeof data || (n < 0 && errno != EAGAIN))
		final = true;
	if (!ctl_peek_name(c, data, n > 0 ? (size_t)n : 0, final)) {
		conn_deadline(c->conn, CONN_DL_FIXED, CTL_PEEK_RETRY_MS);
		return;
	}
	c->peeking = false;
	conn_deadline(c->conn, CONN_DL_NONE, 0);
	log_warn(NULL, "control: refused %s from uid %lu (%s): not root, the daemon's user or "
	    "an operator", c->command, (unsigned long)c->uid, c->user);
	r = xcalloc(1, sizeof *r);
	r->c = c;
	str_copy(r->by, c->user, sizeof r->by);
	str_copy(r->command, c->command, sizeof r->command);
	str_copy(r->reason, "not root, the daemon's user or an operator", sizeof r->reason);
	/* Answered once the record is durable, like the engine's own refusals. */
	c->busy = true;
	c->refs++;
	queue_writer_submit(c->srv->writer, ctl_refusal_apply, ctl_refusal_done, r);
}

/* A peer that may not use the socket: nothing of theirs is read. */
void ctl__refuse(struct ctl_conn *c)
{
	struct ctl_server *s = c->srv;
	enum ctlproto_gate_action act;

	ctl__gate_flush(s, false);
	act = ctlproto_gate_refuse(&s->gate, (uint32_t)c->uid, time_now_ms());
	ctl_gate_arm(s);
	switch (act) {
	case CTLPROTO_GATE_RECORD:
		str_copy(c->command, "-", sizeof c->command);
		c->peeking = true;
		c->peek_until = uv_now(s->loop) + CTL_PEEK_WAIT_MS;
		ctl__peek(c);
		break;
	case CTLPROTO_GATE_COUNT:
		ctl_refuse_reply(c);
		break;
	default:
		ctl__conn_close(c);
		break;
	}
}

/*
 * The peer's kernel-verified credentials (SO_PEERCRED): never a name the
 * client claims. root and the daemon's own uid are privileged (every
 * verb); a registered operator may only ask for an exec, whose command
 * the engine authorizes; anyone else is refused at the gate.
 */
bool ctl__peer_identify(struct ctl_conn *c)
{
	struct ctl_server *s = c->srv;
	struct ucred cred;
	socklen_t len = sizeof cred;
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)conn_stream(c->conn), &fd) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof cred) {
		log_warn(NULL, "control: cannot read a client's credentials: %s", strerror(errno));
		ctl__conn_close(c);
		return false;
	}
	snprintf(c->by, sizeof c->by, "uid:%lu", (unsigned long)cred.uid);
	c->uid = cred.uid;
	/*
	 * The daemon's user is whoever it runs as now: asked at each accept,
	 * so a privilege drop after ctl_start needs nothing here.
	 */
	c->privileged = cred.uid == 0 || cred.uid == geteuid();
	ctl_user_name(cred.uid, c->user, sizeof c->user);
	c->allowed = c->privileged || ctl_is_operator(s, c->user);
	return true;
}

