/*
 * dlp_tenant: a tenant's effective DLP rules (queue/tenancy.h, "DLP
 * rules": stored as policy keys dlp_rule.NAME) compiled into a rule set
 * (policy/dlp.h), so that the content check reads the store in one call.
 * Kept apart from dlp.c, which knows no store.
 *
 * Entry point: dlp_ruleset_for_tenant.
 * OWNERSHIP: the rule set returned is the caller's (dlp_ruleset_free).
 * THREADS: the thread that owns the read txn (the thread pool or the loop).
 * ERRORS: negative errno from the store, or DLP_E_PATTERN / DLP_E_RULE.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/xmalloc.h"
#include "policy/dlp.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

/* A stored rule as a definition: false when a word is not dlp.c's. */
static bool dlp_tenant_def(const struct queue_dlp_rule *q, struct dlp_rule_def *d)
{
	d->name = q->name;
	d->pattern = q->pattern;
	d->builtin = DLP_BUILTIN_NONE;
	d->threshold = q->threshold;
	if (!dlp_action_parse(q->action, &d->action))
		return false;
	return q->pattern != NULL || dlp_builtin_parse(q->builtin, &d->builtin);
}

int dlp_ruleset_for_tenant(struct queue_txn *txn, const char *tenant,
    struct dlp_ruleset **out, char *why, size_t whylen)
{
	struct queue_dlp_rule *rules = NULL;
	struct dlp_rule_def *defs;
	size_t n = 0;
	int rc;

	*out = NULL;
	if (tenant != NULL && (rc = queue_policy_dlp_rules(txn, tenant, &rules, &n)) < 0)
		return rc;
	defs = xcalloc(n + 1, sizeof *defs);
	rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		if (!dlp_tenant_def(&rules[i], &defs[i])) {
			snprintf(why, whylen, "rule %s of tenant %s: unknown action or builtin",
			    rules[i].name, rules[i].source);
			rc = DLP_E_RULE;
		}
	}
	if (rc == 0)
		rc = dlp_ruleset_new(defs, n, out, why, whylen);
	free(defs);
	queue_policy_dlp_free(rules, n);
	return rc;
}
