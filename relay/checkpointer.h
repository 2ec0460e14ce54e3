#ifndef GOVRELAY_CHECKPOINTER_H
#define GOVRELAY_CHECKPOINTER_H
/*
 * checkpointer: the daemon's clock for signed audit checkpoints
 * (queue/audit_checkpoint.h): every audit_checkpoint_records records and
 * every audit_checkpoint_interval, when the chain's head moved.
 */
#include <uv.h>

#include "common/cfg.h"
#include "queue/queue.h"

struct checkpointer;

/*
 * Loads cfg's audit_signing_key and opens audit_checkpoint_file, while
 * the daemon may still read what only root can (before the privilege
 * drop). Without audit_signing_key: 0 and *out NULL (no checkpoints).
 * -errno with a sentence in err otherwise.
 */
int checkpointer_open(const struct config *cfg, struct checkpointer **out, char *err,
    size_t errlen);
/*
 * Once the store is open: makes the signer the daemon's (`audit
 * checkpoint` through the control socket uses it), logs whether the
 * chain still matches the file's last checkpoint, and starts the timer.
 * NULL is fine. Loop thread.
 */
void checkpointer_start(struct checkpointer *c, uv_loop_t *loop, struct queue_store *store);
/*
 * Stops the timer; the object frees itself once a checkpoint in flight
 * has finished. NULL is fine. Loop thread.
 */
void checkpointer_stop(struct checkpointer *c);

#endif
