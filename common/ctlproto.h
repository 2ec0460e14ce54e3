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
 *            queue id as ARG, or flush with no ARG.
 *   reply    "ok TEXT\n" or "error CODE TEXT\n", one line; CODE is the
 *            sysexits.h code the CLI exits with: 64 bad request, 65 bad
 *            queue id, 66 no such message, 69 unavailable, 70 internal
 *            error, 75 busy or try again, 77 permission denied.
 *
 * Exec (a delegated operator's whole govrelayctl command, run by the
 * daemon with the peer's identity, admin/admin.h):
 *   request  "exec LEN\n" then LEN bytes (at most CTLPROTO_EXEC_MAX):
 *            u32 argc, argc times (u32 len, bytes), u32 stdin length,
 *            stdin bytes; integers big-endian, strings without NUL.
 *   reply    frames until the last: "out LEN\n" + LEN bytes (stdout),
 *            "err LEN\n" + LEN bytes (stderr), and finally
 *            "exit CODE\n" (a sysexits.h code, 0 for success); or one
 *            "error CODE TEXT\n" line when the request itself is refused.
 */
#include <stdbool.h>
#include <stddef.h>

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

#endif
