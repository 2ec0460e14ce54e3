#ifndef GOVRELAY_QUEUE_WRITER_H
#define GOVRELAY_QUEUE_WRITER_H
/*
 * queue_writer: the one thread that writes to LMDB in the daemon, with
 * group commit (ARCHITECTURE.md step 5). Every operation waiting when the
 * writer wakes is applied, each in its own nested transaction so one
 * failing operation does not sink the others, and then all of them are
 * made durable by one commit (one fsync). Only after that commit returns
 * does any operation's completion run, on the loop thread.
 */
#include <uv.h>

#include "queue/queue.h"

struct queue_writer;

/* Runs on the writer thread inside the batch's write transaction. */
typedef int queue_apply_fn(struct queue_txn *txn, void *arg);
/*
 * Runs on the loop thread once the batch is durable (status 0), or failed:
 * the apply's own error, or the batch commit's error (-ENOSPC, -EIO).
 */
typedef void queue_done_fn(void *arg, int status);

int queue_writer_start(uv_loop_t *loop, struct queue_store *store,
    struct queue_writer **out);
/*
 * Queues one operation. OWNERSHIP: arg stays the caller's; it must live
 * until done runs. Operations are applied in submission order. Loop thread.
 */
void queue_writer_submit(struct queue_writer *w, queue_apply_fn *apply,
    queue_done_fn *done, void *arg);
/*
 * Applies one operation from a thread that is not the loop thread (a
 * thread-pool thread), in the writer's next batch, and waits until that
 * batch is durable. Returns the op's status as a done callback would get
 * it (0, the apply's negative error, or the commit's), or -ESHUTDOWN
 * once queue_writer_stop has begun. Panics on the loop thread or the
 * writer thread (it would wait for itself). OWNERSHIP: arg is borrowed
 * until it returns. The caller must hold a queue_writer_ref taken on the
 * loop thread for as long as it may call this, so w outlives it.
 */
int queue_writer_run_sync(struct queue_writer *w, queue_apply_fn *apply, void *arg);
/*
 * A reference that keeps w's memory alive after queue_writer_stop (for a
 * pool thread that may still call run_sync, which then fails with
 * -ESHUTDOWN). Loop thread.
 */
void queue_writer_ref(struct queue_writer *w);
void queue_writer_unref(struct queue_writer *w);
/* Operations submitted and not yet completed. */
size_t queue_writer_pending(const struct queue_writer *w);
/*
 * Applies and commits everything already submitted, runs the remaining
 * completions, joins the thread, and closes the async handle; w is freed
 * in its close callback, so the caller runs the loop once more (as it does
 * anyway to close its other handles). Loop thread.
 */
void queue_writer_stop(struct queue_writer *w);

#endif
