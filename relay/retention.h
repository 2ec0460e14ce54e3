#ifndef GOVRELAY_RETENTION_H
#define GOVRELAY_RETENTION_H
/*
 * retention: the daemon's clock for quarantine_lifetime. A quarantined
 * message kept that long is deleted with an audit record
 * (queue_quarantine_expire), so the quarantine cannot grow until the
 * store is full and every new message is refused for want of space.
 */
#include <stdint.h>

#include <uv.h>

#include "queue/queue_writer.h"

struct retention;

/* Starts the clock; lifetime_ms 0 keeps messages until an operator acts. Loop thread. */
struct retention *retention_start(uv_loop_t *loop, struct queue_writer *writer,
    uint64_t lifetime_ms);
/* A reload's new quarantine_lifetime, used from the next look. Loop thread. */
void retention_set_lifetime(struct retention *r, uint64_t lifetime_ms);
/*
 * Stops the clock; the object frees itself once a pass in flight has
 * completed (before the writer stops). NULL is fine. Loop thread.
 */
void retention_stop(struct retention *r);

#endif
