#ifndef GOVRELAY_DELIVERY_H
#define GOVRELAY_DELIVERY_H
/*
 * delivery: the scheduler. Finds due messages in the store's schedule,
 * groups each message's pending recipients by route, and hands them to the
 * outbound SMTP client; records every outcome (delivered, deferred with
 * backoff, failed) through the queue writer, with an audit record in the
 * same transaction and a Postfix-style log line.
 */
#include <uv.h>

#include "common/cfg.h"
#include "queue/queue.h"
#include "queue/queue_writer.h"
#include "relay/tlsio.h"

struct dlv;
struct dns;

/*
 * Starts the scheduler on loop. It rebuilds its view from the store (so
 * messages queued before a restart are picked up at their scheduled time).
 * cfg is referenced (cfg_ref); client_tls may be NULL (no outbound TLS);
 * dns (borrowed, must outlive dlv_stop's callback) resolves MX routes and
 * host names in routes, NULL defers them. Loop thread.
 */
int dlv_start(uv_loop_t *loop, struct config *cfg, struct queue_store *store,
    struct queue_writer *writer, struct tlsio_ctx *client_tls, struct dns *dns,
    struct dlv **out);
/* A message was just committed (or released): look at the schedule now. */
void dlv_kick(struct dlv *d);
/* Adopts a new configuration snapshot (SIGHUP); in-flight work keeps its own. */
void dlv_set_config(struct dlv *d, struct config *cfg);
/*
 * Stops scheduling, aborts in-flight SMTP sessions (their messages stay
 * queued and are retried after restart: nothing is lost), waits for the
 * writer completions it is owed, closes its handles, then calls cb(arg).
 */
void dlv_stop(struct dlv *d, void (*cb)(void *arg), void *arg);

#endif
