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
 * Loads cfg's audit_signing_key, opens audit_checkpoint_file (both now,
 * while the daemon may still read what only root can), makes the signer
 * the daemon's (`audit checkpoint` through the control socket uses it),
 * logs whether the chain still matches the file's last checkpoint, and
 * starts the timer. Without audit_signing_key: 0 and *out NULL (no
 * checkpoints). -errno with a sentence in err otherwise.
 */
int checkpointer_start(uv_loop_t *loop, const struct config *cfg, struct queue_store *store,
    struct checkpointer **out, char *err, size_t errlen);
/*
 * Stops the timer; the object frees itself once a checkpoint in flight
 * has finished. NULL is fine. Loop thread.
 */
void checkpointer_stop(struct checkpointer *c);

#endif
