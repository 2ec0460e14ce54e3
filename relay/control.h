#ifndef GOVRELAY_CONTROL_H
#define GOVRELAY_CONTROL_H
/*
 * control: the daemon side of the admin socket, through which
 * govrelayctl's live queue verbs take effect at once.
 *
 * One request per connection, then the daemon closes it. Besides the queue
 * verbs (root and the daemon's user only), a request may be a whole
 * govrelayctl command ("exec"), which runs the admin engine (admin/) on
 * the thread pool with the peer's kernel-verified identity: that is how
 * delegated operators, who cannot open the store, administer their
 * subtree. The engine's writes go through the daemon's one queue writer.
 * relay links the admin engine for this (admin -> queue -> common), never
 * the other way round. The line format and the reply codes are
 * common/ctlproto.h's, the verbs and what they do queue/queue_admin.h's;
 * govrelayctl links both, so admin/ never needs a relay/ header
 * (doc/ARCHITECTURE.md: dependencies point one way).
 */
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/cfg.h"
#include "queue/queue.h"
#include "queue/queue_writer.h"

struct ctl_server;

/* Called on the loop thread after a change is durable (kicks the scheduler). */
typedef void ctl_changed_fn(void *arg);
/*
 * The configuration in force, as a new reference (cfg_unref when done).
 * Loop thread.
 */
typedef struct config *ctl_config_fn(void *arg);

/*
 * Creates the unix socket at path (mode 0666: operators are ordinary
 * users; at accept, before a byte is read, the peer's SO_PEERCRED uid
 * must be root, the daemon's own or a registered operator's, and each
 * request is then authorized from it; a stale socket file nobody
 * answers on is replaced, a live one or a non-socket is an error) and
 * starts accepting. Changes go through writer; changed(arg) runs after
 * each durable change. On failure returns a negative errno and writes a
 * sentence naming path into err. Loop thread, before the loop runs.
 * OWNERSHIP: path is copied; writer must outlive the server (every
 * operation it submits completes before queue_writer_stop returns).
 */
int ctl_start(uv_loop_t *loop, const char *path, struct queue_writer *writer,
    struct queue_store *store, ctl_config_fn *config, ctl_changed_fn *changed, void *arg,
    struct ctl_server **out, char *err, size_t errlen);
/*
 * `policy explain` (admin/admin.h's io->explain): runs req on the daemon's
 * policy engine and waits until done or deadline_ns (uv_hrtime); 0 with
 * the records in out, or a negative errno. Called on a pool thread.
 */
struct admin_explain_req;
struct buf;
typedef int ctl_explain_fn(void *arg, const struct admin_explain_req *req,
    uint64_t deadline_ns, struct buf *out);
/*
 * Offers `policy explain` to exec requests through fn(arg); without it
 * the command says it needs the running daemon. Loop thread, before any
 * request (right after ctl_start).
 */
void ctl_set_explain(struct ctl_server *s, ctl_explain_fn *fn, void *arg);

/*
 * Stops accepting, removes the socket file and closes idle connections;
 * a connection whose change is in flight gets its reply first. changed
 * is not called any more. The server frees itself once every handle has
 * closed. NULL is fine. Loop thread.
 */
void ctl_stop(struct ctl_server *s);

#endif
