/*
 * policy: the stage engine and the verdict vocabulary.
 *
 * Entry points: policy_new/free (compile the rule arrays from a config
 * snapshot), policy_run (walk one stage), policy_call_complete (a check's
 * one completion), policy_verdict_set, policy_stage_name, verdict_kind_name,
 * policy_message_queued (tell counting checks a message was queued).
 * OWNERSHIP: a policy_call is owned by the engine; it lives until both
 * the run has finished (done called) and its current check has completed,
 * so a check that completes after the engine timed it out touches valid
 * memory and is merely ignored.
 * THREADS: loop thread only.
 * ERRORS: a check that does not complete within the timeout yields a
 * tempfail (STYLE.md section 6: internal failure means tempfail).
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/policy.h"
#include "policy/stage_relay.h"
#include "policy/stage_tenant.h"

/* Dry run: audit and log what the rule would have done, then go on. */
#define POLICY_RULE_WARN_ONLY 0x1u

/* A check that waits longer than this is treated as a tempfail. */
#define POLICY_CHECK_TIMEOUT_MS 30000

struct policy_rule {
	policy_check_fn *check;
	void *arg;
	const char *name;
	unsigned flags;
};

struct policy {
	uv_loop_t *loop;
	struct queue_store *store;
	struct policy_rule *rules[POLICY_STAGE_COUNT];
	size_t nrules[POLICY_STAGE_COUNT];
	struct stage_tenant *tenant;
};

struct policy_call {
	struct policy *p;
	const struct policy_request *req;
	policy_done_fn *done;
	void *arg;
	size_t next;            /* index of the next rule to run */
	bool check_running;     /* current check has not completed yet */
	bool in_check;          /* inside the check function right now */
	bool finished;          /* done() has been called */
	bool timer_started;
	bool closing;
	uv_timer_t timer;
	struct verdict current;
};

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
}

static void policy_add_rule(struct policy *p, enum policy_stage stage,
    policy_check_fn *check, void *arg, const char *name, unsigned flags)
{
	size_t n = p->nrules[stage];

	p->rules[stage] = xreallocarray(p->rules[stage], n + 1, sizeof *p->rules[stage]);
	p->rules[stage][n] = (struct policy_rule){ check, arg, name, flags };
	p->nrules[stage] = n + 1;
}

struct policy *policy_new(uv_loop_t *loop, const struct config *cfg,
    struct queue_store *store)
{
	struct policy *p = xcalloc(1, sizeof *p);

	(void)cfg;
	p->loop = loop;
	p->store = store;
	/* One registration line per check (STYLE.md section 8). */
	p->tenant = stage_tenant_new();
	policy_add_rule(p, POLICY_STAGE_MAIL, stage_tenant_mail, p->tenant, "tenant-mail", 0);
	policy_add_rule(p, POLICY_STAGE_RCPT, stage_relay_check, NULL, "relay", 0);
	policy_add_rule(p, POLICY_STAGE_RCPT, stage_tenant_rcpt, p->tenant, "tenant-rcpt", 0);
	policy_add_rule(p, POLICY_STAGE_DATA, stage_tenant_data, p->tenant, "tenant-data", 0);
	return p;
}

void policy_free(struct policy *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < POLICY_STAGE_COUNT; i++)
		free(p->rules[i]);
	stage_tenant_free(p->tenant);
	free(p);
}

void policy_message_queued(struct policy *p, const struct policy_request *req)
{
	stage_tenant_queued(p->tenant, req);
}

struct queue_store *policy_call_store(const struct policy_call *call)
{
	return call->p->store;
}

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

static void policy_timeout_cb(uv_timer_t *t)
{
	struct policy_call *call = t->data;
	const struct policy_rule *rule = &call->p->rules[call->req->stage][call->next - 1];
	struct verdict v;

	log_warn(call->req->session_id, "policy check %s timed out at stage %s",
	    rule->name, policy_stage_name(call->req->stage));
	policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0",
	    "Temporary policy failure, try again later");
	v.rule = rule->name;
	policy_call_finish(call, &v);
}

void policy_call_complete(struct policy_call *call, const struct verdict *v)
{
	const struct policy_rule *rule;

	if (!call->check_running) {
		log_err(call->req->session_id, "policy check completed twice (ignored)");
		return;
	}
	call->check_running = false;
	if (call->finished) {
		/* Timed out earlier: the answer arrives too late to matter. */
		policy_call_release(call);
		return;
	}
	rule = &call->p->rules[call->req->stage][call->next - 1];
	call->current = *v;
	if (call->current.rule == NULL)
		call->current.rule = rule->name;
	if (call->current.kind != VERDICT_CONTINUE && (rule->flags & POLICY_RULE_WARN_ONLY)) {
		log_event(LOG_LVL_INFO, call->req->session_id, "warn_only", rule->name,
		    "would", verdict_kind_name(call->current.kind), "reason",
		    call->current.text, NULL);
		call->current.kind = VERDICT_CONTINUE;
	}
	if (call->current.kind != VERDICT_CONTINUE) {
		policy_call_finish(call, &call->current);
		return;
	}
	if (!call->in_check)
		policy_call_step(call);
}

static void policy_call_step(struct policy_call *call)
{
	struct policy *p = call->p;
	enum policy_stage stage = call->req->stage;

	while (!call->finished && call->next < p->nrules[stage]) {
		const struct policy_rule *rule = &p->rules[stage][call->next++];

		call->check_running = true;
		call->in_check = true;
		rule->check(call, call->req, rule->arg);
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
			uv_timer_start(&call->timer, policy_timeout_cb, POLICY_CHECK_TIMEOUT_MS, 0);
			return;
		}
	}
	if (!call->finished) {
		struct verdict v;

		policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "no rule decided");
		policy_call_finish(call, &v);
	}
}

void policy_run(struct policy *p, const struct policy_request *req,
    policy_done_fn *done, void *arg)
{
	struct policy_call *call = xcalloc(1, sizeof *call);

	call->p = p;
	call->req = req;
	call->done = done;
	call->arg = arg;
	policy_call_step(call);
}
