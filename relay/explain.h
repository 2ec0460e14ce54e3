#ifndef GOVRELAY_EXPLAIN_H
#define GOVRELAY_EXPLAIN_H
/*
 * explain: the daemon's side of `govrelayctl policy explain`. The admin
 * engine (admin/explain.c) runs on a control-socket thread; the policy
 * engine is the loop's. explain_run, called on that thread, hands the
 * request to the loop, which runs MAIL, each RCPT and DATA over the
 * message in the engine's explain mode (policy_run_explain) on a
 * policy_tx of its own, and waits for the answer (the records of
 * admin/admin.h's struct admin_explain_req comment). Nothing is queued
 * and nothing is recorded as received.
 *
 * One explain at a time: a second one, while the first is being waited
 * for or still runs on the loop, gets -EBUSY at once, so waiting explains
 * can never fill the thread pool.
 */
#include <stdint.h>

#include <uv.h>

#include "admin/admin.h"
#include "common/buf.h"
#include "policy/policy.h"

struct explain;

/* The service over the daemon's engine p (borrowed). Loop thread. */
struct explain *explain_new(uv_loop_t *loop, struct policy *p);
/*
 * The daemon is stopping: a waiting caller wakes at once with
 * -ESHUTDOWN, a request not yet started is dropped, one being run stops
 * after its current stage; new requests get -ESHUTDOWN. Loop thread.
 * NULL and a second call are fine.
 */
void explain_stop(struct explain *x);
/*
 * After the loop has run to its end (every run has finished): frees x.
 * NULL is fine.
 */
void explain_free(struct explain *x);
/*
 * Runs req on the loop and waits until it is done or until deadline_ns
 * (uv_hrtime) passes: 0 with the records appended to out; -EBUSY,
 * -ETIMEDOUT, -ESHUTDOWN. Any thread but the loop's.
 */
int explain_run(struct explain *x, const struct admin_explain_req *req, uint64_t deadline_ns,
    struct buf *out);

#endif
