#ifndef GOVRELAY_POLICY_CHECK_H
#define GOVRELAY_POLICY_CHECK_H
/*
 * check: what a policy check is to the engine (STYLE.md section 8). Each
 * check is one file (policy/stage_<name>.c) and one row of the table in
 * policy/checks.c, the only file that names every check; the engine
 * (policy.c) knows none of them. A row says where the check runs (stages
 * and listener roles) and how to build it, run it, tell it a message was
 * queued and free it.
 *
 * The contract of run: it completes the call exactly once through
 * policy_call_complete, either before returning or later from a callback
 * on the loop thread. The engine times it out (timeout_ms, else
 * POLICY_CHECK_TIMEOUT_MS) into a tempfail; a completion after that is
 * ignored. A second completion is a bug: it panics (logged and ignored
 * when built with NDEBUG).
 */
#include <stddef.h>

#include "policy/policy.h"

struct policy_call;

/* Bit sets of stages and of listener roles (enum cfg_role) for a row. */
#define POLICY_AT(stage) (1u << (stage))
#define POLICY_ROLE(role) (1u << (role))
#define POLICY_ROLES_ALL (POLICY_ROLE(CFG_ROLE_MX) | POLICY_ROLE(CFG_ROLE_SUBMISSION) | \
	POLICY_ROLE(CFG_ROLE_SUBMISSIONS))

/*
 * Row flags. WARN_ONLY: dry run; a decisive verdict is logged as what
 * the rule would have done and the walk goes on (Postfix warn_if_reject).
 */
#define POLICY_CHECK_WARN_ONLY 0x1u
/*
 * delay_to_rcpt (STYLE.md section 8) is not a flag yet: no row refuses
 * before RCPT today (the tenant check's MAIL refusals concern the
 * authenticated sender itself). It comes with the first check that does.
 */

/* A check that waits longer than this (unless its row says) is a tempfail. */
#define POLICY_CHECK_TIMEOUT_MS 30000

/*
 * Builds the check's state from the configuration snapshot (cfg may be
 * NULL: builtin settings). 0, or a negative errno with err saying what
 * in the configuration is wrong.
 */
typedef int policy_check_new_fn(const struct config *cfg, void **state, char *err,
    size_t errlen);
typedef void policy_check_free_fn(void *state);
/* Decides for req->stage (one of the row's stages); see the contract above. */
typedef void policy_check_run_fn(struct policy_call *call, const struct policy_request *req,
    void *state);
/* A message is durably queued (req is a DATA stage request). */
typedef void policy_check_queued_fn(void *state, const struct policy_request *req);
/*
 * Per-transaction hooks (optional). tx_new runs in policy_tx_new for the
 * rows of the transaction's listener role and returns the check's state
 * for this message (NULL: nothing to keep; body and tx_free are then not
 * called). body sees every piece of the message as policy_tx_body does;
 * it must not block (copy, hash, count; no DNS wait, no heavy CPU:
 * that belongs in run, on the thread pool). tx_free runs once, when the
 * transaction ends. All on the loop thread.
 */
typedef void *policy_check_tx_new_fn(void *state, struct policy_tx *tx);
typedef void policy_check_body_fn(void *txstate, const char *data, size_t len);
typedef void policy_check_tx_free_fn(void *txstate);

struct policy_check {
	const char *name;               /* the rule name in logs and audit */
	unsigned stages;                /* POLICY_AT() bits */
	unsigned roles;                 /* POLICY_ROLE() bits */
	unsigned flags;                 /* POLICY_CHECK_* */
	unsigned timeout_ms;            /* 0: POLICY_CHECK_TIMEOUT_MS */
	policy_check_new_fn *create;    /* NULL: the state is NULL */
	policy_check_free_fn *destroy;  /* NULL: nothing to free */
	policy_check_run_fn *run;
	policy_check_queued_fn *queued; /* NULL: no after-queue hook */
	policy_check_tx_new_fn *tx_new;   /* NULL: no per-message state */
	policy_check_body_fn *body;       /* NULL: does not read the body */
	policy_check_tx_free_fn *tx_free; /* NULL: free() is not called */
};

/* The product's table (policy/checks.c), in the order the rows run. */
extern const struct policy_check policy_checks[];
extern const size_t policy_nchecks;

/*
 * policy_new over another table: unit tests register fake rows this way.
 * checks must outlive the engine.
 */
int policy_new_table(uv_loop_t *loop, const struct config *cfg, struct queue_store *store,
    const struct policy_check *checks, size_t nchecks, struct policy **out, char *err,
    size_t errlen);

/* The one completion of a run; v is copied. Loop thread. */
void policy_call_complete(struct policy_call *call, const struct verdict *v);
/* The engine's queue store, for lookups (read transactions only). */
struct queue_store *policy_call_store(const struct policy_call *call);
/* The running row's per-transaction state (tx_new's), or NULL. */
void *policy_call_tx_state(const struct policy_call *call);
/* The engine of a call (policy_resolve from a run). */
struct policy *policy_call_policy(const struct policy_call *call);
/* The engine's loop, for checks that work on the thread pool (uv_queue_work). */
uv_loop_t *policy_call_loop(const struct policy_call *call);
/* The engine's store, from a transaction hook. */
struct queue_store *policy_tx_store(const struct policy_tx *tx);

#endif
