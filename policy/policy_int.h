#ifndef GOVRELAY_POLICY_INT_H
#define GOVRELAY_POLICY_INT_H
/*
 * policy_int: the engine's own structures, shared by policy.c (stages
 * and runs) and policy_tx.c (transactions, resolver). Not for checks:
 * they see policy/check.h.
 */
#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "common/buf.h"
#include "policy/authres.h"
#include "policy/check.h"
#include "policy/policy.h"

/* Roles are enum cfg_role; one more array holds the rows of every role. */
#define POLICY_NROLES (CFG_ROLE_SUBMISSIONS + 1)
#define POLICY_ANY_ROLE POLICY_NROLES

struct policy_rule {
	const struct policy_check *check;
	void *state;
	size_t row;             /* index in the table: the key of its tx state */
};

/* One mail transaction (policy.h): each row's message state by row. */
struct policy_tx {
	struct policy *p;
	char session_id[64];
	void **states;          /* p->nchecks entries; NULL where a row keeps none */
	struct authres authres;
	struct buf headers;     /* added fields, each ending in CRLF */
	struct buf notes;       /* "k=v; k=v" */
	struct policy_notice *notices; /* messages to queue with a refusal */
	size_t nnotices;
};

struct policy {
	uv_loop_t *loop;
	struct queue_store *store;
	const struct policy_check *checks;
	size_t nchecks;
	void **states;                  /* one per row of checks */
	struct policy_rule *rules[POLICY_STAGE_COUNT][POLICY_NROLES + 1];
	struct policy_resolver resolver; /* lookup NULL until policy_set_resolver */
	size_t nrules[POLICY_STAGE_COUNT][POLICY_NROLES + 1];
};

struct policy_call {
	struct policy *p;
	const struct policy_request *req;
	policy_done_fn *done;
	void *arg;
	const struct policy_rule *rules; /* the stage's and role's array */
	size_t nrules;
	size_t next;            /* index of the next rule to run */
	bool check_running;     /* current check has not completed yet */
	bool in_check;          /* inside the check function right now */
	bool finished;          /* done() has been called */
	bool timer_started;
	bool closing;
	uv_timer_t timer;
	struct verdict current;
	/* Explain mode (policy_run_explain): each != NULL. */
	policy_each_fn *each;
	void *each_arg;
	bool decided;           /* a rule gave a decisive verdict */
	struct verdict decision; /* the first one: what policy_run would answer */
};


/* The rule array for a role name; NULL role: the rows of every role. */
int policy__role_index(const char *role, size_t *index);

#endif
