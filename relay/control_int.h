#ifndef GOVRELAY_CONTROL_INT_H
#define GOVRELAY_CONTROL_INT_H
/*
 * control_int: what the two files of the control socket share, and
 * nothing outside relay/control*.c includes: control.c (the socket, the
 * requests, the queue verbs, exec) and control_gate.c (who may talk at
 * all, and how refusals are answered and recorded). relay/control.h says
 * what the module does; the constants below are its limits.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <uv.h>

#include "common/buf.h"
#include "common/ctlproto.h"
#include "queue/queue_admin.h"
#include "relay/control.h"

#define CTL_TIMEOUT_MS 5000
/* After ctl_stop, what a running command still has for its output. */
#define CTL_STOP_GRACE_MS 1000
/* Reading an import's payload (up to 64 MiB), from accept. */
#define CTL_IMPORT_TIMEOUT_MS 60000
/* Refusals: per uid and window, recorded one by one, answered; all uids' records. */
#define CTL_GATE_WINDOW_MS 60000
#define CTL_GATE_RECORD_MAX 5
#define CTL_GATE_REPLY_MAX 20
#define CTL_GATE_GLOBAL_MAX 50
/* How much of a refused request is looked at to name it, and for how long. */
#define CTL_PEEK_MAX 1024
#define CTL_PEEK_WAIT_MS 500
#define CTL_PEEK_RETRY_MS 10
#define CTL_COMMAND_MAX 64
#define CTL_MAX_CONNS 16
/* Connections of any kind open at once; past this, closed at accept. */
#define CTL_MAX_PENDING (4 * CTL_MAX_CONNS)
#define CTL_BACKLOG 16
#define CTL_TEXT_MAX 256
#define CTL_REPLY_MAX (CTL_TEXT_MAX + 32)
/* Exec output waiting for the peer past this makes the command wait. */
#define CTL_EXEC_BACKLOG_MAX (64 * 1024)
#define CTL_USER_MAX 64

struct ctl_server {
	uv_loop_t *loop;
	uv_pipe_t pipe;
	struct queue_writer *writer;
	struct queue_store *store;
	ctl_config_fn *config;
	uv_async_t kick;           /* exec threads ask for a scheduler kick */
	bool kick_closed;
	uv_async_t exec_out;       /* exec threads have output for the loop to write */
	bool exec_out_closed;
	size_t execs_running;
	ctl_changed_fn *changed;
	void *changed_arg;
	ctl_explain_fn *explain;    /* `policy explain`; NULL: not offered */
	void *explain_arg;
	char *path;
	struct ctlproto_gate gate;  /* refusals of peers that may not talk */
	uv_timer_t gate_timer;      /* writes coalesced refusal records when due */
	bool gate_timer_closed;
	struct ctl_conn *conns;
	size_t nconns;              /* every connection, until freed */
	size_t nallowed;            /* of them, those past the gate */
	bool stopping;
	bool pipe_closed;
};

struct ctl_conn {
	struct ctl_server *srv;
	struct ctl_conn *prev, *next;
	struct conn *conn;   /* the socket, its timer, reader and write queue */
	int refs;            /* the conn, plus one while an operation is owed */
	bool closing;
	bool busy;           /* submitted to the writer, done not run yet */
	bool replied;
	char by[32];         /* "uid:N" */
	uid_t uid;           /* SO_PEERCRED */
	char user[CTL_USER_MAX]; /* its login name, or "uid:N" */
	bool privileged;     /* root or the daemon's own uid */
	bool allowed;        /* privileged or a registered operator */
	bool counted;        /* in nallowed */
	/* A refused peer whose request is being looked at to name it. */
	bool peeking;
	uint64_t peek_until; /* uv_now */
	char command[CTL_COMMAND_MAX];
	uint64_t accepted;   /* uv_now at accept: the request's deadline counts from it */
	bool import_ok;      /* a payload over CTLPROTO_REQUEST_MAX is an import */
	uint64_t exec_deadline; /* uv_hrtime: the command's output stops here */
	/* exec: payload being read, then the command running on the pool. */
	size_t exec_len;     /* payload length announced; 0 when not an exec */
	struct buf payload;
	bool exec_running;
	uv_work_t work;
	int exec_code;
	/*
	 * Exec output: the pool thread appends frames to exec_buf and waits
	 * while exec_backlog (bytes not yet written) is over
	 * CTL_EXEC_BACKLOG_MAX; the loop moves exec_buf into the conn's write
	 * queue. exec_mu guards these three and exec_write_failed.
	 */
	uv_mutex_t exec_mu;
	uv_cond_t exec_cv;
	struct buf exec_buf;
	size_t exec_backlog;
	bool exec_write_failed;
	struct config *exec_cfg; /* a reference taken on the loop for the run */
	char out[CTL_REPLY_MAX];
	/* The operation: set on the loop before submit, results by ctl_apply. */
	enum queue_admin_verb verb;
	uint64_t id;
	char qid[QUEUE_ID_TEXT_LEN + 1]; /* "" for flush */
	struct queue_admin_result res;
};

/* ---- control.c */
/* Sends the one reply line (code 0 is "ok") and closes after it. */
void ctl__reply(struct ctl_conn *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void ctl__conn_close(struct ctl_conn *c);
void ctl__conn_unref(struct ctl_conn *c);

/* ---- control_gate.c (loop thread) */
/* Starts the refusal bookkeeping and its timer (ctl_start). */
void ctl__gate_start(struct ctl_server *s);
/*
 * SO_PEERCRED into c (uid, user, privileged, allowed). false when the
 * credentials cannot be read: c is then being closed.
 */
bool ctl__peer_identify(struct ctl_conn *c);
/* A peer that may not talk: answered, recorded or dropped; nothing read. */
void ctl__refuse(struct ctl_conn *c);
/* A peek's retry timer fired (the conn's deadline). */
void ctl__peek(struct ctl_conn *c);
/* Writes the coalesced refusal records due now; all: every count (stopping). */
void ctl__gate_flush(struct ctl_server *s, bool all);

#endif
