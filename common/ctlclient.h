#ifndef GOVRELAY_CTLCLIENT_H
#define GOVRELAY_CTLCLIENT_H
/*
 * ctlclient: the client side of the control socket (common/ctlproto.h has
 * the protocol), for govrelayctl. Blocking I/O with a timeout on every
 * send and receive: a command-line program waits for the daemon, it runs
 * no event loop. The daemon's side is relay/control.c over relay/conn.c.
 *
 * OWNERSHIP: a ctlclient owns its socket and its read buffer.
 * THREADS: one client per thread.
 * ERRORS: negative errno values; -EAGAIN when the timeout passed, -EPIPE
 * when the daemon closed the stream before what was asked for came,
 * -EBADMSG for a line longer than CTLPROTO_LINE_MAX.
 */
#include <stddef.h>
#include <stdio.h>

struct ctlclient;

/*
 * Connects to the unix socket at path with timeout_s on every later send
 * and receive. 0 with *out, or -errno: -ENAMETOOLONG for a path that is no
 * usable socket path, -ENOENT/-ECONNREFUSED when no daemon listens.
 */
int ctlclient_connect(const char *path, int timeout_s, struct ctlclient **out);
void ctlclient_free(struct ctlclient *c);

/*
 * Sends all of data. A daemon that answers at once (busy, refused) may
 * close before reading: -EPIPE and -ECONNRESET then still leave its
 * answer to read.
 */
int ctlclient_send(struct ctlclient *c, const void *data, size_t len);

/* One line without its newline into out (NUL-terminated): 0 or -errno. */
int ctlclient_line(struct ctlclient *c, char *out, size_t outlen);

/* Copies the next len bytes of the stream to f: 0 or -errno. */
int ctlclient_copy(struct ctlclient *c, size_t len, FILE *f);

#endif
