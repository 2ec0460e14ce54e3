#ifndef GOVRELAY_CONTROL_H
#define GOVRELAY_CONTROL_H
/*
 * control: the daemon side of the admin socket, through which
 * govrelayctl's live queue verbs take effect at once.
 *
 * Protocol (one request per connection, then the daemon closes it):
 *   request  "VERB\n" or "VERB ARG\n", at most CTL_REQUEST_MAX bytes
 *            including the newline (a CR before it is tolerated);
 *            VERB is hold, release, delete or retry with a queue id as
 *            ARG, or flush with no ARG.
 *   reply    "ok TEXT\n" or "error CODE TEXT\n", one line; CODE is the
 *            sysexits.h code the CLI exits with: 64 bad request, 65 bad
 *            queue id, 66 no such message, 70 internal error, 75 busy or
 *            try again, 77 permission denied.
 * The CLI keeps its own copy of these constants: admin-cli may not
 * include relay/ headers (ARCHITECTURE.md, dependencies point one way).
 */
#include <stddef.h>

#include <uv.h>

#include "queue/queue_writer.h"

#define CTL_REQUEST_MAX 1024

struct ctl_server;

/* Called on the loop thread after a change is durable (kicks the scheduler). */
typedef void ctl_changed_fn(void *arg);

/*
 * Creates the unix socket at path (mode 0600; a stale socket file nobody
 * answers on is replaced, a live one or a non-socket is an error) and
 * starts accepting. Changes go through writer; changed(arg) runs after
 * each durable change. On failure returns a negative errno and writes a
 * sentence naming path into err. Loop thread, before the loop runs.
 * OWNERSHIP: path is copied; writer must outlive the server (every
 * operation it submits completes before queue_writer_stop returns).
 */
int ctl_start(uv_loop_t *loop, const char *path, struct queue_writer *writer,
    ctl_changed_fn *changed, void *arg, struct ctl_server **out, char *err, size_t errlen);
/*
 * Stops accepting, removes the socket file and closes idle connections;
 * a connection whose change is in flight gets its reply first. changed
 * is not called any more. The server frees itself once every handle has
 * closed. NULL is fine. Loop thread.
 */
void ctl_stop(struct ctl_server *s);

#endif
