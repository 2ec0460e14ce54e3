#ifndef GOVRELAY_LISTENER_H
#define GOVRELAY_LISTENER_H
/*
 * listener: binds the configured listeners and accepts connections,
 * enforcing max_connections and max_connections_per_ip before a single
 * byte is read (421 4.7.0).
 */
#include <uv.h>

#include "common/cfg.h"
#include "relay/smtp_session.h"

struct listener_set;

/*
 * Binds every listen line of cfg. On failure returns a negative uv error
 * and writes "FILE:LINE: cannot listen on ADDR: reason" into err.
 */
int listener_start(uv_loop_t *loop, struct config *cfg, struct smtp_server *srv,
    struct listener_set **out, char *err, size_t errlen);
/* New snapshot for the limits (listen lines themselves need a restart). */
void listener_set_config(struct listener_set *ls, struct config *cfg);
/* Stops accepting and closes the listening sockets; frees ls on close. */
void listener_stop(struct listener_set *ls);

#endif
