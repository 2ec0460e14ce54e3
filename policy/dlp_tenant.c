/*
 * dlp_tenant: a tenant's effective DLP rules (queue/tenancy.h, "DLP
 * rules": stored as policy keys dlp_rule.NAME) compiled into a rule set
 * (policy/dlp.h), and the cache of compiled sets the content check
 * keeps, so that a message costs a read of the rules' texts, not a
 * compilation. Kept apart from dlp.c, which knows no store.
 *
 * Entry points: dlp_ruleset_for_tenant, dlp_cache_new/free/get.
 * OWNERSHIP: rule sets returned are references of the caller
 *   (dlp_ruleset_free); the cache holds its own.
 * THREADS: the thread that owns the read txn (the thread pool or the
 *   loop); the cache from any number of threads (one mutex).
 * ERRORS: negative errno from the store, or DLP_E_PATTERN / DLP_E_RULE.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
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

/* Compiles n stored rules. */
static int dlp_tenant_compile(const struct queue_dlp_rule *rules, size_t n,
    struct dlp_ruleset **out, char *why, size_t whylen)
{
	struct dlp_rule_def *defs = xcalloc(n + 1, sizeof *defs);
	int rc = 0;

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
	return rc;
}

int dlp_ruleset_for_tenant(struct queue_txn *txn, const char *tenant,
    struct dlp_ruleset **out, char *why, size_t whylen)
{
	struct queue_dlp_rule *rules = NULL;
	size_t n = 0;
	int rc;

	*out = NULL;
	if (tenant != NULL && (rc = queue_policy_dlp_rules(txn, tenant, &rules, &n)) < 0)
		return rc;
	rc = dlp_tenant_compile(rules, n, out, why, whylen);
	queue_policy_dlp_free(rules, n);
	return rc;
}

/* ------------------------------------------------------------- cache */

struct dlp_cache_entry {
	char *tenant;            /* NULL: a free slot */
	struct buf texts;        /* source, name, value of each rule, NUL-separated */
	struct dlp_ruleset *rs;  /* the cache's reference */
	unsigned long used;      /* the cache's clock at the last hit */
};

struct dlp_cache {
	pthread_mutex_t mu;
	unsigned long clock;
	struct dlp_cache_entry e[DLP_CACHE_TENANTS];
};

struct dlp_cache *dlp_cache_new(void)
{
	struct dlp_cache *c = xcalloc(1, sizeof *c);

	pthread_mutex_init(&c->mu, NULL);
	for (size_t i = 0; i < DLP_CACHE_TENANTS; i++)
		buf_init(&c->e[i].texts);
	return c;
}

void dlp_cache_free(struct dlp_cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < DLP_CACHE_TENANTS; i++) {
		free(c->e[i].tenant);
		buf_free(&c->e[i].texts);
		dlp_ruleset_free(c->e[i].rs);
	}
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* The texts a compiled set is known by: every rule's source, name and value. */
static void dlp_cache_texts(const struct queue_dlp_rule *rules, size_t n, struct buf *b)
{
	for (size_t i = 0; i < n; i++) {
		buf_append(b, rules[i].source, strlen(rules[i].source) + 1);
		buf_append(b, rules[i].name, strlen(rules[i].name) + 1);
		buf_append(b, rules[i].value, strlen(rules[i].value) + 1);
	}
}

/* Under the mutex: a reference to tenant's set when compiled from texts, else NULL. */
static struct dlp_ruleset *dlp_cache_find(struct dlp_cache *c, const char *tenant,
    const struct buf *texts)
{
	for (size_t i = 0; i < DLP_CACHE_TENANTS; i++) {
		struct dlp_cache_entry *e = &c->e[i];

		if (e->tenant == NULL || strcmp(e->tenant, tenant) != 0)
			continue;
		if (e->texts.len != texts->len ||
		    (texts->len > 0 && memcmp(e->texts.data, texts->data, texts->len) != 0))
			return NULL;
		e->used = ++c->clock;
		return dlp_ruleset_ref(e->rs);
	}
	return NULL;
}

/* Under the mutex: rs (a reference moved in) becomes tenant's entry. */
static void dlp_cache_put(struct dlp_cache *c, const char *tenant, const struct buf *texts,
    struct dlp_ruleset *rs)
{
	struct dlp_cache_entry *slot = NULL;

	for (size_t i = 0; i < DLP_CACHE_TENANTS && slot == NULL; i++)
		if (c->e[i].tenant != NULL && strcmp(c->e[i].tenant, tenant) == 0)
			slot = &c->e[i];
	for (size_t i = 0; i < DLP_CACHE_TENANTS && slot == NULL; i++)
		if (c->e[i].tenant == NULL)
			slot = &c->e[i];
	if (slot == NULL) {
		slot = &c->e[0];
		for (size_t i = 1; i < DLP_CACHE_TENANTS; i++)
			if (c->e[i].used < slot->used)
				slot = &c->e[i];
	}
	if (slot->tenant == NULL || strcmp(slot->tenant, tenant) != 0) {
		free(slot->tenant);
		slot->tenant = xstrdup(tenant);
	}
	buf_reset(&slot->texts);
	buf_append(&slot->texts, texts->data, texts->len);
	dlp_ruleset_free(slot->rs);
	slot->rs = rs;
	slot->used = ++c->clock;
}

int dlp_cache_get(struct dlp_cache *c, struct queue_txn *txn, const char *tenant,
    struct dlp_ruleset **out, char *why, size_t whylen)
{
	struct queue_dlp_rule *rules = NULL;
	struct dlp_ruleset *rs;
	struct buf texts;
	size_t n = 0;
	int rc;

	*out = NULL;
	if (tenant == NULL)
		return dlp_ruleset_for_tenant(txn, NULL, out, why, whylen);
	if ((rc = queue_policy_dlp_rules(txn, tenant, &rules, &n)) < 0)
		return rc;
	buf_init(&texts);
	dlp_cache_texts(rules, n, &texts);
	pthread_mutex_lock(&c->mu);
	rs = dlp_cache_find(c, tenant, &texts);
	pthread_mutex_unlock(&c->mu);
	/* Compiled outside the mutex: two threads may both compile; the last one stays. */
	if (rs == NULL && (rc = dlp_tenant_compile(rules, n, &rs, why, whylen)) == 0) {
		pthread_mutex_lock(&c->mu);
		dlp_cache_put(c, tenant, &texts, dlp_ruleset_ref(rs));
		pthread_mutex_unlock(&c->mu);
	}
	buf_free(&texts);
	queue_policy_dlp_free(rules, n);
	*out = rs;
	return rc;
}
