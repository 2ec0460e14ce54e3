/*
 * policy: the stage engine and the verdict vocabulary. It knows no check:
 * the rows of a check table (policy/check.h; the product's is
 * policy/checks.c) are compiled here into one rule array per stage and
 * listener role, and walked per request.
 *
 * Entry points: policy_new/policy_new_table/policy_free (run the rows'
 * constructors and compile), policy_run (walk one stage),
 * policy_run_explain (walk every rule of one stage and report each),
 * policy_call_complete (a check's one completion), policy_call_store,
 * policy_message_queued (every row's after-queue hook), policy_loop,
 * policy_verdict_set, policy_stage_name, verdict_kind_name.
 * OWNERSHIP: the engine owns each row's state (made by its constructor,
 * freed by its destructor). A policy_call is owned by the engine; it
 * lives until both the run has finished (done called) and its current
 * check has completed, so a check that completes after the engine timed
 * it out touches valid memory and is merely ignored.
 * THREADS: loop thread only.
 * ERRORS: a check that does not complete within its timeout yields a
 * tempfail (STYLE.md section 6: internal failure means tempfail); so does
 * a request from a listener role the engine does not know. A second
 * completion of one check is a broken invariant: panic, or a logged and
 * ignored error when built with NDEBUG.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/check.h"
#include "policy/policy.h"
#include "policy/policy_int.h"

const char *policy_stage_name(enum policy_stage stage)
{
	switch (stage) {
	case POLICY_STAGE_CONNECT: return "connect";
	case POLICY_STAGE_HELO: return "helo";
	case POLICY_STAGE_MAIL: return "mail";
	case POLICY_STAGE_RCPT: return "rcpt";
	case POLICY_STAGE_DATA: return "data";
	case POLICY_STAGE_COUNT: break;
	}
	return "unknown";
}

const char *verdict_kind_name(enum verdict_kind kind)
{
	switch (kind) {
	case VERDICT_CONTINUE: return "continue";
	case VERDICT_ACCEPT: return "accept";
	case VERDICT_TEMPFAIL: return "tempfail";
	case VERDICT_REJECT: return "reject";
	case VERDICT_DISCONNECT: return "disconnect";
	case VERDICT_QUARANTINE: return "quarantine";
	}
	return "unknown";
}

void policy_verdict_set(struct verdict *v, enum verdict_kind kind, int code,
    const char *enh, const char *fmt, ...)
{
	va_list ap;

	v->kind = kind;
	v->code = code;
	str_copy(v->enh, enh, sizeof v->enh);
	va_start(ap, fmt);
	vsnprintf(v->text, sizeof v->text, fmt, ap);
	va_end(ap);
	v->rule = NULL;
	v->event = NULL;
}

/* ------------------------------------------------------- construction */

static void policy_add_rule(struct policy *p, enum policy_stage stage, size_t role,
    const struct policy_check *check, void *state, size_t row)
{
	size_t n = p->nrules[stage][role];

	p->rules[stage][role] = xreallocarray(p->rules[stage][role], n + 1,
	    sizeof *p->rules[stage][role]);
	p->rules[stage][role][n] = (struct policy_rule){ check, state, row };
	p->nrules[stage][role] = n + 1;
}

/* A row the engine could not run correctly is a bug in the table. */
static int policy_row_check(const struct policy_check *c, char *err, size_t errlen)
{
	const unsigned all_stages = (1u << POLICY_STAGE_COUNT) - 1;

	if (c->name == NULL || c->run == NULL || c->stages == 0 ||
	    (c->stages & ~all_stages) != 0 || c->roles == 0 ||
	    (c->roles & ~(unsigned)POLICY_ROLES_ALL) != 0) {
		snprintf(err, errlen, "policy check table: row %s is incomplete",
		    c->name ? c->name : "(unnamed)");
		return -EINVAL;
	}
	return 0;
}

/* Compiles the rows into per stage and role arrays, in table order. */
static void policy_compile(struct policy *p)
{
	for (size_t i = 0; i < p->nchecks; i++) {
		const struct policy_check *c = &p->checks[i];

		for (int st = 0; st < POLICY_STAGE_COUNT; st++) {
			if (!(c->stages & POLICY_AT(st)))
				continue;
			for (size_t role = 0; role < POLICY_NROLES; role++) {
				if (c->roles & POLICY_ROLE(role))
					policy_add_rule(p, (enum policy_stage)st, role, c, p->states[i], i);
			}
			policy_add_rule(p, (enum policy_stage)st, POLICY_ANY_ROLE, c, p->states[i],
			    i);
		}
	}
}

int policy_new_table(uv_loop_t *loop, const struct config *cfg, struct queue_store *store,
    const struct policy_check *checks, size_t nchecks, struct policy **out, char *err,
    size_t errlen)
{
	struct policy *p = xcalloc(1, sizeof *p);
	int rc = 0;

	*out = NULL;
	p->loop = loop;
	p->store = store;
	p->checks = checks;
	p->states = xcalloc(nchecks ? nchecks : 1, sizeof *p->states);
	for (size_t i = 0; i < nchecks && rc == 0; i++) {
		rc = policy_row_check(&checks[i], err, errlen);
		if (rc == 0 && checks[i].create != NULL)
			rc = checks[i].create(cfg, &p->states[i], err, errlen);
		if (rc < 0)
			break;
		/* Only constructed rows are destroyed on the way out. */
		p->nchecks = i + 1;
	}
	if (rc < 0) {
		policy_free(p);
		return rc;
	}
	policy_compile(p);
	*out = p;
	return 0;
}

int policy_new(uv_loop_t *loop, const struct config *cfg, struct queue_store *store,
    struct policy **out, char *err, size_t errlen)
{
	return policy_new_table(loop, cfg, store, policy_checks, policy_nchecks, out, err,
	    errlen);
}

void policy_free(struct policy *p)
{
	if (p == NULL)
		return;
	for (size_t st = 0; st < POLICY_STAGE_COUNT; st++) {
		for (size_t role = 0; role <= POLICY_NROLES; role++)
			free(p->rules[st][role]);
	}
	for (size_t i = p->nchecks; i-- > 0;) {
		if (p->checks[i].destroy != NULL)
			p->checks[i].destroy(p->states[i]);
	}
	free(p->states);
	free(p);
}

void policy_message_queued(struct policy *p, const struct policy_request *req)
{
	for (size_t i = 0; i < p->nchecks; i++) {
		if (p->checks[i].queued != NULL)
			p->checks[i].queued(p->states[i], req);
	}
}

struct queue_store *policy_call_store(const struct policy_call *call)
{
	return call->p->store;
}

struct policy *policy_call_policy(const struct policy_call *call)
{
	return call->p;
}

uv_loop_t *policy_call_loop(const struct policy_call *call)
{
	return call->p->loop;
}

uv_loop_t *policy_loop(const struct policy *p)
{
	return p->loop;
}

void *policy_call_tx_state(const struct policy_call *call)
{
	const struct policy_tx *tx = call->req->tx;

	if (tx == NULL || call->next == 0)
		return NULL;
	return tx->states[call->rules[call->next - 1].row];
}

/* --------------------------------------------------------------- runs */

static void policy_call_free_cb(uv_handle_t *h)
{
	free(h->data);
}

static void policy_call_release(struct policy_call *call)
{
	if (!call->finished || call->check_running || call->in_check || call->closing)
		return;
	call->closing = true;
	if (call->timer_started) {
		uv_close((uv_handle_t *)&call->timer, policy_call_free_cb);
		return;
	}
	free(call);
}

static void policy_call_finish(struct policy_call *call, const struct verdict *v)
{
	call->finished = true;
	if (call->timer_started)
		uv_timer_stop(&call->timer);
	call->done(call->arg, v);
	policy_call_release(call);
}

static void policy_call_step(struct policy_call *call);

static const struct policy_check *policy_call_check(const struct policy_call *call)
{
	return call->rules[call->next - 1].check;
}

/*
 * Explain mode: the rule that timed out is reported as its tempfail and
 * the rules after it as not run; the run ends there (the timed-out check
 * still owns the call until it completes, so no other check may start).
 * The answer is what policy_run would have given: an earlier decisive
 * verdict, else the tempfail.
 */
static void policy_explain_timeout(struct policy_call *call, struct verdict *v)
{
	const struct policy_check *check = policy_call_check(call);
	unsigned ms = check->timeout_ms ? check->timeout_ms : POLICY_CHECK_TIMEOUT_MS;
	struct verdict told = *v;

	policy_verdict_set(&told, VERDICT_TEMPFAIL, 451, "4.3.0",
	    "the check did not answer within %u ms: Temporary policy failure, try again "
	    "later", ms);
	told.rule = check->name;
	call->each(call->each_arg, check->name, &told);
	for (size_t i = call->next; i < call->nrules; i++)
		call->each(call->each_arg, call->rules[i].check->name, NULL);
	if (call->decided)
		*v = call->decision;
}

static void policy_timeout_cb(uv_timer_t *t)
{
	struct policy_call *call = t->data;
	const char *name = policy_call_check(call)->name;
	struct verdict v;

	log_warn(call->req->session_id, "policy check %s timed out at stage %s", name,
	    policy_stage_name(call->req->stage));
	policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0",
	    "Temporary policy failure, try again later");
	v.rule = name;
	if (call->each != NULL)
		policy_explain_timeout(call, &v);
	policy_call_finish(call, &v);
}

/*
 * Explain mode: one rule's verdict is reported and the walk goes on; the
 * first decisive verdict is kept as the run's answer.
 */
static void policy_explain_one(struct policy_call *call, const struct policy_check *check)
{
	call->each(call->each_arg, check->name, &call->current);
	if (!call->decided && call->current.kind != VERDICT_CONTINUE) {
		call->decided = true;
		call->decision = call->current;
	}
}

/* A WARN_ONLY row's decisive verdict as explain reports it: what it would have done. */
static void policy_explain_warn_only(struct verdict *v)
{
	char said[sizeof v->text + 96];

	/* Cut to fit the verdict's text (a report, not a reply: nothing is parsed). */
	snprintf(said, sizeof said, "warn only, not enforced: would %s with %d %s: %s",
	    verdict_kind_name(v->kind), v->code, v->enh, v->text);
	str_copy(v->text, said, sizeof v->text);
	v->code = 0;
	v->enh[0] = '\0';
}

void policy_call_complete(struct policy_call *call, const struct verdict *v)
{
	const struct policy_check *check = policy_call_check(call);

	if (!call->check_running) {
		/* STYLE.md section 8: loud where it can be afforded. */
#ifdef NDEBUG
		log_err(call->req->session_id, "policy check %s completed twice (ignored)",
		    check->name);
		return;
#else
		panic("policy check %s completed twice at stage %s", check->name,
		    policy_stage_name(call->req->stage));
#endif
	}
	call->check_running = false;
	if (call->finished) {
		/* Timed out earlier: the answer arrives too late to matter. */
		policy_call_release(call);
		return;
	}
	call->current = *v;
	if (call->current.rule == NULL)
		call->current.rule = check->name;
	if (call->current.kind != VERDICT_CONTINUE && (check->flags & POLICY_CHECK_WARN_ONLY)) {
		log_event(LOG_LVL_INFO, call->req->session_id, "warn_only", check->name,
		    "would", verdict_kind_name(call->current.kind), "reason",
		    call->current.text, NULL);
		if (call->each != NULL)
			policy_explain_warn_only(&call->current);
		call->current.kind = VERDICT_CONTINUE;
	}
	if (call->each != NULL)
		policy_explain_one(call, check);
	else if (call->current.kind != VERDICT_CONTINUE) {
		policy_call_finish(call, &call->current);
		return;
	}
	if (!call->in_check)
		policy_call_step(call);
}

static void policy_call_step(struct policy_call *call)
{
	struct policy *p = call->p;

	while (!call->finished && call->next < call->nrules) {
		const struct policy_rule *rule = &call->rules[call->next++];
		unsigned timeout = rule->check->timeout_ms;

		call->check_running = true;
		call->in_check = true;
		rule->check->run(call, call->req, rule->state);
		call->in_check = false;
		if (call->finished) {
			/* Decided inside the check: release deferred until here. */
			policy_call_release(call);
			return;
		}
		if (call->check_running) {
			/* The check waits: the engine, not the check, owns the clock. */
			if (!call->timer_started) {
				uv_timer_init(p->loop, &call->timer);
				call->timer.data = call;
				call->timer_started = true;
			}
			uv_timer_start(&call->timer, policy_timeout_cb,
			    timeout ? timeout : POLICY_CHECK_TIMEOUT_MS, 0);
			return;
		}
	}
	if (!call->finished) {
		struct verdict v;

		if (call->decided)
			v = call->decision;
		else
			policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "no rule decided");
		policy_call_finish(call, &v);
	}
}

/* The rule array for a role name; NULL role: the rows of every role. */
int policy__role_index(const char *role, size_t *index)
{
	if (role == NULL) {
		*index = POLICY_ANY_ROLE;
		return 0;
	}
	for (size_t i = 0; i < POLICY_NROLES; i++) {
		if (strcmp(role, cfg_role_name((enum cfg_role)i)) == 0) {
			*index = i;
			return 0;
		}
	}
	return -EINVAL;
}

/* policy_run and policy_run_explain: each NULL is the ordinary run. */
static void policy_start(struct policy *p, const struct policy_request *req,
    policy_each_fn *each, void *each_arg, policy_done_fn *done, void *arg)
{
	struct policy_call *call;
	size_t role;

	if (req->stage >= POLICY_STAGE_COUNT ||
	    policy__role_index(req->listener_role, &role) < 0) {
		struct verdict v;

		log_err(req->session_id, "policy: no rules for stage %d, role %s",
		    (int)req->stage, req->listener_role ? req->listener_role : "(any)");
		policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0",
		    "Temporary policy failure, try again later");
		done(arg, &v);
		return;
	}
	call = xcalloc(1, sizeof *call);
	call->p = p;
	call->req = req;
	call->done = done;
	call->arg = arg;
	call->each = each;
	call->each_arg = each_arg;
	call->rules = p->rules[req->stage][role];
	call->nrules = p->nrules[req->stage][role];
	policy_call_step(call);
}

void policy_run(struct policy *p, const struct policy_request *req,
    policy_done_fn *done, void *arg)
{
	policy_start(p, req, NULL, NULL, done, arg);
}

void policy_run_explain(struct policy *p, const struct policy_request *req,
    policy_each_fn *each, void *each_arg, policy_done_fn *done, void *arg)
{
	policy_start(p, req, each, each_arg, done, arg);
}
