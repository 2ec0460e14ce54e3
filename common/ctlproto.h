#ifndef GOVRELAY_CTLPROTO_H
#define GOVRELAY_CTLPROTO_H
/*
 * ctlproto: the line format of the control socket, shared by govrelayd
 * (relay/control.c) and govrelayctl. Pure string functions, no I/O.
 *
 * Protocol (one request per connection, then the daemon closes it):
 *   request  "VERB\n" or "VERB ARG\n", at most CTLPROTO_LINE_MAX bytes
 *            including the newline (a CR before it is tolerated), and
 *            printable ASCII only. The verbs are the queue changes of
 *            queue/queue_admin.h: hold, release, delete or retry with a
 *            queue id as ARG, or flush with no ARG; and kick (no ARG):
 *            the scheduler looks at the store's schedule now (sent by
 *            govrelayctl after it released a quarantined message).
 *   reply    "ok TEXT\n" or "error CODE TEXT\n", one line; CODE is the
 *            sysexits.h code the CLI exits with: 64 bad request, 65 bad
 *            queue id, 66 no such message, 69 unavailable, 70 internal
 *            error, 75 busy or try again, 77 permission denied.
 *
 * Who may talk: the daemon decides from the peer's SO_PEERCRED uid at
 * accept, before it reads a byte: root, the daemon's own uid and the
 * registered operators; anyone else gets one "error 77 ..." line (or,
 * past a rate, a bare close) without a byte of theirs being consumed.
 *
 * Exec (a delegated operator's whole govrelayctl command, run by the
 * daemon with the peer's identity, admin/admin.h):
 *   request  "exec LEN\n" then LEN bytes (at most CTLPROTO_REQUEST_MAX;
 *            `mailbox import` alone, recognized from the arguments at
 *            the head of the payload, up to CTLPROTO_IMPORT_MAX):
 *            u32 argc, argc times (u32 len, bytes), u32 stdin length,
 *            stdin bytes; integers big-endian, strings without NUL.
 *   reply    frames until the last: "out LEN\n" + LEN bytes (stdout),
 *            "err LEN\n" + LEN bytes (stderr), and finally
 *            "exit CODE\n" (a sysexits.h code, 0 for success); or one
 *            "error CODE TEXT\n" line when the request itself is refused.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest line either side sends or accepts, newline included. */
#define CTLPROTO_LINE_MAX 1024

/* Whether code may follow "error " in a reply (the list above). */
bool ctlproto_code_is_valid(int code);

/*
 * "VERB\n", or "VERB ARG\n" when arg is neither NULL nor "", into out.
 * Returns the length, or -ENAMETOOLONG when it does not fit in outlen.
 */
int ctlproto_request_format(char *out, size_t outlen, const char *verb, const char *arg);
/*
 * Splits one request line in place: line holds len bytes with the
 * newline already removed and is NUL-terminated. A final CR is dropped.
 * *verb is the text before the first space, *arg the rest or NULL when
 * there is no space. Returns 0, or -EINVAL when a byte is not printable
 * ASCII (*verb and *arg are then untouched).
 */
int ctlproto_request_parse(char *line, size_t len, const char **verb, const char **arg);

/*
 * The one reply line for code (0 is "ok") and text into out, newline
 * included; CR and LF inside text become spaces, so the reply stays one
 * line. Text that does not fit is cut, keeping the newline. Returns the
 * length (no NUL counted). outlen must be at least 16.
 */
size_t ctlproto_reply_format(char *out, size_t outlen, int code, const char *text);
/*
 * Parses one reply line (NUL-terminated, newline removed): *code is 0
 * for "ok TEXT", or the code of "error CODE TEXT" when it is one of the
 * protocol's; *text points into line. Returns 0 or -EBADMSG.
 */
int ctlproto_reply_parse(const char *line, int *code, const char **text);

/* ------------------------------------------------------------- exec */

#define CTLPROTO_EXEC_MAX (64u * 1024 * 1024)
/* An ordinary command with its standard input (a password): small. */
#define CTLPROTO_REQUEST_MAX (64u * 1024)
/* `mailbox import`: the CSV file travels as standard input. */
#define CTLPROTO_IMPORT_MAX CTLPROTO_EXEC_MAX
#define CTLPROTO_EXEC_ARGS_MAX 64
#define CTLPROTO_FRAME_MAX (64u * 1024)

struct buf;

/* The exec payload for argv and stdin bytes (in may be NULL when inlen 0). */
void ctlproto_exec_encode(struct buf *out, int argc, char *const *argv,
    const void *in, size_t inlen);
/*
 * Decodes a payload of len bytes. *argv is a fresh NULL-terminated array
 * of fresh strings (ctlproto_exec_free), *in points into data. 0 or
 * -EBADMSG (truncated, trailing bytes, a NUL in an argument, too many
 * arguments).
 */
int ctlproto_exec_decode(const void *data, size_t len, int *argc, char ***argv,
    const void **in, size_t *inlen);
void ctlproto_exec_free(int argc, char **argv);
/*
 * The arguments alone, from the first len bytes of a payload whose rest
 * may still be on its way: 0 with a fresh *argv (ctlproto_exec_free),
 * -EAGAIN when they end past len, -EBADMSG when no payload starts so
 * (an argument longer than CTLPROTO_REQUEST_MAX included).
 */
int ctlproto_exec_head(const void *data, size_t len, int *argc, char ***argv);
/*
 * The command words of argv (those that are not --json, --help or -h),
 * at most max of them into w (pointers into argv); returns how many.
 */
size_t ctlproto_exec_words(int argc, char *const *argv, const char **w, size_t max);
/* Whether argv is `mailbox import ...`, the one command with a large payload. */
bool ctlproto_exec_is_import(int argc, char *const *argv);

/* ------------------------------------------------------------- gate */

/*
 * How the daemon answers and records refusals of peers that may not use
 * the socket, so that a local user hammering it cannot fill the audit
 * chain: per uid and window, the first record_max refusals are recorded
 * one by one (CTLPROTO_GATE_RECORD), further ones are only counted and
 * answered (COUNT) up to reply_max, then closed unanswered (DROP). When
 * the uid's window has ended its count comes out of ctlproto_gate_due
 * as one coalesced record ("N refusals from uid U since T"). At most
 * global_max records of either kind are let through per window for all
 * uids together; counts wait for the next window beyond that. With every
 * slot taken, the oldest uid's count is kept as one "any uid" count.
 * Times are milliseconds of any monotonic-enough clock.
 */
#define CTLPROTO_GATE_SLOTS 64

enum ctlproto_gate_action {
	CTLPROTO_GATE_RECORD,  /* answer, and write this refusal's own record */
	CTLPROTO_GATE_COUNT,   /* answer; counted for a coalesced record */
	CTLPROTO_GATE_DROP,    /* close unanswered; counted too */
};

struct ctlproto_gate_slot {
	bool used;
	uint32_t uid;
	int64_t start;      /* the window began */
	int64_t since;      /* first refusal counted and not yet reported */
	uint64_t pending;   /* refusals counted and not yet reported */
	uint32_t seen;      /* refusals in this window */
	uint32_t recorded;  /* of them recorded one by one */
};

struct ctlproto_gate {
	int64_t window_ms;
	uint32_t record_max, reply_max, global_max;
	int64_t global_start;
	uint32_t global_used;
	uint64_t overflow;          /* counts of uids pushed out of the table */
	int64_t overflow_since;
	struct ctlproto_gate_slot slot[CTLPROTO_GATE_SLOTS];
};

/* A coalesced record to write: count refusals of uid (any uid) since then. */
struct ctlproto_gate_flush {
	uint32_t uid;
	bool any_uid;
	uint64_t count;
	int64_t since;
};

void ctlproto_gate_init(struct ctlproto_gate *g, int64_t window_ms, uint32_t record_max,
    uint32_t reply_max, uint32_t global_max);
/*
 * One refusal of uid at now: what to do with it. Call ctlproto_gate_due
 * until it returns false first, so that an ended window is reported
 * before the uid's new one begins.
 */
enum ctlproto_gate_action ctlproto_gate_refuse(struct ctlproto_gate *g, uint32_t uid,
    int64_t now);
/* A coalesced record due at now into *out (true), or false: none now. */
bool ctlproto_gate_due(struct ctlproto_gate *g, int64_t now, struct ctlproto_gate_flush *out);
/* When ctlproto_gate_due next has something, or -1 when nothing waits. */
int64_t ctlproto_gate_next_due(const struct ctlproto_gate *g);

#endif
