/*
 * admin/policy: `policy set|unset|show`: a tenant's policy keys, each
 * inherited by its subtree, where a delegated postmaster may tighten but
 * never loosen it (the ceiling rule, queue_policy_ceiling). What the keys mean is
 * the store's (queue/tenancy.h); this file only checks, writes and shows.
 *
 * Every change is one apply (store.c) with its audit record in the same
 * transaction. Entry points: admin__policy_set, admin__policy_show
 * (admin_int.h).
 * OWNERSHIP: the effective policy read is freed before returning.
 * THREADS: see engine.c. ERRORS: sysexits.h codes, reported on io->err.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/dlp.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

/* ------------------------------------------------------------ policy */

static void admin_policy_known(struct buf *b)
{
	for (const struct tenancy_policy_key *k = tenancy_policy_keys; k->name != NULL; k++)
		buf_printf(b, "%s%s", k == tenancy_policy_keys ? "" : ", ", k->name);
	buf_printf(b, ", %sNAME", TENANCY_DLP_PREFIX);
}

/* `policy set|unset`: the tenant, the key and the new value (NULL: unset). */
struct admin_policy_change {
	const char *tenant;
	const struct tenancy_policy_key *key;
	const char *value;
	const char *keyname;   /* as given: key->name, or dlp_rule.NAME of the family */
};

/*
 * DLP rules are additive (queue/tenancy.h): an ancestor's rule applies to
 * the whole subtree, so a descendant can neither remove it (it is not
 * the descendant's setting) nor shadow it with a rule of the same name,
 * which would look like a replacement and be none. Refused to everyone,
 * as a denial to a delegated operator. 0 or an exit code (reported).
 */
static int admin_policy_dlp_ancestor(struct admin *a, struct queue_txn *txn,
    const struct admin_policy_change *c)
{
	char *owner = NULL;
	int rc = queue_policy_dlp_owner(txn, c->tenant, c->keyname, &owner);

	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return admin__fail(a, rc, NULL, "cannot read the DLP rules above %s", c->tenant);
	if (c->value == NULL && !a->super)
		rc = admin__deny(a, c->tenant, "%s is a rule of tenant %s above %s; an "
		    "ancestor's DLP rule applies to its whole subtree and a descendant cannot "
		    "remove it", c->keyname, owner, c->tenant);
	else if (c->value == NULL)
		rc = 0;            /* root: the usual "no own setting" answer follows */
	else if (!a->super)
		rc = admin__deny(a, c->tenant, "%s is a rule of tenant %s above %s; an "
		    "ancestor's DLP rule cannot be replaced or loosened below it (add a rule "
		    "of another name to tighten)", c->keyname, owner, c->tenant);
	else {
		admin__err(a, "%s is a rule of tenant %s above %s; a rule of the same name "
		    "below it would not replace it: change it at %s or choose another name",
		    c->keyname, owner, c->tenant, owner);
		rc = EX_DATAERR;
	}
	free(owner);
	return rc;
}

/* A DLP rule value's pattern compiles (policy/dlp.c): 0 or EX_DATAERR (reported). */
static int admin_policy_dlp_check(struct admin *a, const char *keyname, const char *value)
{
	struct queue_dlp_rule r;
	char why[ADMIN_WHY_MAX] = "";
	int rc = 0;

	if (tenancy_dlp_parse(value, &r, why, sizeof why) < 0) {
		admin__err(a, "%s: %s", keyname, why);
		return EX_DATAERR;
	}
	if (r.pattern != NULL && dlp_pattern_check(r.pattern, why, sizeof why) < 0) {
		char *shown = admin__text_dup(r.pattern);

		admin__err(a, "%s: pattern \"%s\": %s", keyname, shown, why);
		free(shown);
		rc = EX_DATAERR;
	}
	free(r.pattern);
	return rc;
}

/*
 * An ancestor's value is a ceiling: a delegated postmaster may tighten
 * it, never loosen it (doc/THREAT-MODEL.md; which way is tighter:
 * tenancy_policy_compare). Unsetting only inherits the ceiling again, so
 * only a set is checked. Read in the write, so the ceiling cannot move
 * between the check and the change.
 */
static int admin_policy_need_ceiling(struct admin *a, struct queue_txn *txn,
    const struct admin_policy_change *c)
{
	char *cv = NULL, *cs = NULL;
	int rc = queue_policy_ceiling(txn, c->tenant, c->key->name, &cv, &cs);

	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return admin__fail(a, rc, NULL, "cannot read the policy above %s", c->tenant);
	if (tenancy_policy_compare(c->key, c->value, cv) > 0)
		rc = admin__deny(a, c->tenant, "%s %s would loosen %s %s set by tenant %s above "
		    "it; an ancestor's value is a ceiling (a delegated postmaster may only "
		    "tighten it)", c->key->name, c->value, c->key->name, cv, cs);
	free(cv);
	free(cs);
	return rc;
}

static int admin_policy_set_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	struct admin_policy_change *c = arg;
	struct queue_audit_field f[2];
	char *old = NULL;
	int rc;

	if ((rc = admin__tenant_exists(a, txn, c->tenant, "tenant")) != 0)
		return rc;
	if (c->key->type == TENANCY_POLICY_DLP_RULE) {
		if ((rc = admin_policy_dlp_ancestor(a, txn, c)) != 0)
			return rc;
	} else if (!a->super && c->value != NULL &&
	    (rc = admin_policy_need_ceiling(a, txn, c)) != 0) {
		return rc;
	}
	if (c->value == NULL) {
		rc = queue_policy_get(txn, c->tenant, c->keyname, &old);
		free(old);
		if (rc == -ENOENT) {
			admin__err(a, "tenant %s has no own setting of %s (it inherits)", c->tenant,
			    c->keyname);
			return EX_NOINPUT;
		}
		if (rc < 0)
			return admin__fail(a, rc, NULL, "cannot read the policy of %s", c->tenant);
	}
	if ((rc = queue_policy_set(txn, c->tenant, c->keyname, c->value)) == -ENOSPC) {
		admin__err(a, "tenant %s already sets %d DLP rules of its own; remove one first",
		    c->tenant, TENANCY_DLP_RULES_PER_TENANT);
		return EX_DATAERR;
	}
	if (rc < 0)
		return admin__fail(a, rc, NULL, "cannot %s %s of tenant %s", a->cmd->verb,
		    c->keyname, c->tenant);
	f[0] = (struct queue_audit_field){ "key", c->keyname };
	f[1] = (struct queue_audit_field){ "value", c->value };
	if ((rc = admin__audit(a, txn, c->tenant, c->tenant, f, 2)) < 0)
		return admin__fail(a, rc, NULL, "cannot write the audit record");
	return 0;
}

/* The key named keyname, or NULL (reported, listing the keys). */
static const struct tenancy_policy_key *admin_policy_key(struct admin *a, const char *keyname)
{
	const struct tenancy_policy_key *key = tenancy_policy_key_find(keyname);
	struct buf b;
	char *shown;

	if (key != NULL)
		return key;
	shown = admin__text_dup(keyname);
	buf_init(&b);
	admin_policy_known(&b);
	admin__err(a, "unknown policy key \"%s\"; the keys are: %s", shown, buf_cstr(&b));
	buf_free(&b);
	free(shown);
	return NULL;
}

/* `policy set TENANT KEY VALUE` and `policy unset TENANT KEY`. */
int admin__policy_set(struct admin *a, const struct admin_args *args)
{
	bool set = strcmp(a->cmd->verb, "set") == 0;
	const char *value = set ? admin__arg(args, "value") : NULL;
	struct admin_policy_change c = { admin__arg(args, "tenant"), NULL, NULL,
		admin__arg(args, "key") };
	char norm[TENANCY_DLP_VALUE_MAX + 1], why[ADMIN_WHY_MAX];
	int rc;

	if ((rc = admin__tenant_arg(a, "tenant", c.tenant)) != 0)
		return rc;
	if ((c.key = admin_policy_key(a, c.keyname)) == NULL)
		return EX_DATAERR;
	if (set) {
		why[0] = '\0';
		if (tenancy_policy_normalize(c.key, value, norm, sizeof norm, why, sizeof why) < 0) {
			char *shown = admin__text_dup(value);

			admin__err(a, "%s \"%s\": %s", c.keyname, shown, why[0] ? why : "bad value");
			free(shown);
			return EX_DATAERR;
		}
		if (c.key->type == TENANCY_POLICY_DLP_RULE &&
		    (rc = admin_policy_dlp_check(a, c.keyname, norm)) != 0)
			return rc;
		c.value = norm;
	}
	if ((rc = admin__need_tenant(a, c.tenant, "tenant")) != 0)
		return rc;
	if ((rc = admin__write(a, admin_policy_set_apply, &c, "the policy")) != 0)
		return rc;
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "tenant", c.tenant);
		admin__json_kstr(&j, "key", c.keyname);
		admin__json_kstr(&j, "value", c.value);
		admin__json_end(a, &j);
	} else if (set) {
		admin__out(a, "policy of %s: %s = %s\n", c.tenant, c.keyname, norm);
	} else if (c.key->type == TENANCY_POLICY_DLP_RULE) {
		admin__out(a, "policy of %s: %s removed\n", c.tenant, c.keyname);
	} else {
		admin__out(a, "policy of %s: %s inherited again\n", c.tenant, c.keyname);
	}
	return EX_OK;
}

/* The effective DLP rules of a tenant, shown after the keys. */
struct admin_policy_dlp {
	struct queue_dlp_rule *rules;
	size_t n;
};

/*
 * Every key's effective value and source, and the effective DLP rules:
 * 0 or an exit code (reported).
 */
static int admin_policy_read(struct admin *a, const char *tenant, size_t nkeys,
    char **values, char **sources, struct admin_policy_dlp *dlp)
{
	struct queue_txn *txn;
	int rc;

	if ((rc = admin__txn(a, &txn)) != 0)
		return rc;
	rc = admin__tenant_exists(a, txn, tenant, "tenant");
	for (size_t i = 0; rc == 0 && i < nkeys; i++) {
		int qrc = queue_policy_effective(txn, tenant, tenancy_policy_keys[i].name,
		    &values[i], &sources[i]);

		if (qrc < 0)
			rc = admin__fail(a, qrc, NULL, "cannot read %s of tenant %s",
			    tenancy_policy_keys[i].name, tenant);
	}
	if (rc == 0) {
		int qrc = queue_policy_dlp_rules(txn, tenant, &dlp->rules, &dlp->n);

		if (qrc < 0)
			rc = admin__fail(a, qrc, NULL, "cannot read the DLP rules of tenant %s",
			    tenant);
	}
	queue_txn_abort(txn);
	return rc;
}

/*
 * max_message_size and max_recipients without a tenant setting come from
 * the configuration (what the daemon really applies), not the builtin.
 */
static void admin_policy_config(const struct admin *a, size_t nkeys, char **values,
    char **sources)
{
	const struct config *cfg = a->io->cfg;

	for (size_t i = 0; cfg != NULL && i < nkeys; i++) {
		const struct tenancy_policy_key *k = &tenancy_policy_keys[i];
		char num[32];

		if (sources[i] == NULL || strcmp(sources[i], "default") != 0)
			continue;
		if (strcmp(k->name, "max_message_size") == 0)
			snprintf(num, sizeof num, "%" PRIu64, (uint64_t)cfg->max_message_size);
		else if (strcmp(k->name, "max_recipients") == 0)
			snprintf(num, sizeof num, "%" PRIu64, (uint64_t)cfg->max_recipients);
		else
			continue;
		free(values[i]);
		free(sources[i]);
		values[i] = xstrdup(num);
		sources[i] = xstrdup("config");
	}
}

static void admin_policy_json(const struct admin *a, const char *tenant, size_t nkeys,
    char **values, char **sources, const struct admin_policy_dlp *dlp)
{
	struct admin_json j;

	admin__json_begin(&j);
	admin__json_kstr(&j, "tenant", tenant);
	admin__json_open(&j, "policy", '{');
	for (size_t i = 0; i < nkeys; i++) {
		const struct tenancy_policy_key *k = &tenancy_policy_keys[i];
		const char *v = values[i] != NULL ? values[i] : "";

		admin__json_open(&j, k->name, '{');
		if ((k->type == TENANCY_POLICY_SIZE || k->type == TENANCY_POLICY_COUNT) &&
		    v[0] != '\0' && strspn(v, "0123456789") == strlen(v) && strlen(v) < 20)
			admin__json_kraw(&j, "value", v);
		else if (k->type == TENANCY_POLICY_BOOL &&
		    (strcmp(v, "yes") == 0 || strcmp(v, "no") == 0))
			admin__json_kbool(&j, "value", strcmp(v, "yes") == 0);
		else
			admin__json_kstr(&j, "value", values[i]);
		admin__json_kstr(&j, "source", sources[i]);
		admin__json_close(&j, '}');
	}
	/* Each effective DLP rule as its key, "dlp_rule.NAME". */
	for (size_t i = 0; i < dlp->n; i++) {
		char key[sizeof TENANCY_DLP_PREFIX + TENANCY_DLP_NAME_MAX];

		snprintf(key, sizeof key, "%s%s", TENANCY_DLP_PREFIX, dlp->rules[i].name);
		admin__json_open(&j, key, '{');
		admin__json_kstr(&j, "value", dlp->rules[i].value);
		admin__json_kstr(&j, "source", dlp->rules[i].source);
		admin__json_close(&j, '}');
	}
	admin__json_close(&j, '}');
	admin__json_end(a, &j);
}

/* `policy show`: every key's effective value and where it comes from. */
int admin__policy_show(struct admin *a, const struct admin_args *args)
{
	static const char *const head[] = { "KEY", "VALUE", "SOURCE" };
	const char *tenant = admin__arg(args, "tenant");
	struct admin_table t = { 3, head, "lll", NULL, 0, 0 };
	struct admin_policy_dlp dlp = { NULL, 0 };
	size_t nkeys = 0;
	char **values = NULL, **sources = NULL;
	int rc;

	if ((rc = admin__tenant_arg(a, "tenant", tenant)) != 0)
		return rc;
	if ((rc = admin__need_tenant(a, tenant, "tenant")) != 0)
		return rc;
	if (a->store == NULL) {
		admin__err(a, "no such tenant '%s'", tenant);
		return EX_NOINPUT;
	}
	for (const struct tenancy_policy_key *k = tenancy_policy_keys; k->name != NULL; k++)
		nkeys++;
	values = xcalloc(nkeys + 1, sizeof *values);
	sources = xcalloc(nkeys + 1, sizeof *sources);
	if ((rc = admin_policy_read(a, tenant, nkeys, values, sources, &dlp)) != 0)
		goto out;
	admin_policy_config(a, nkeys, values, sources);
	if (a->json) {
		admin_policy_json(a, tenant, nkeys, values, sources, &dlp);
	} else {
		for (size_t i = 0; i < nkeys; i++) {
			const char *row[3] = { tenancy_policy_keys[i].name, values[i], sources[i] };

			admin__table_row(&t, row);
		}
		for (size_t i = 0; i < dlp.n; i++) {
			char key[sizeof TENANCY_DLP_PREFIX + TENANCY_DLP_NAME_MAX];
			const char *row[3] = { key, dlp.rules[i].value, dlp.rules[i].source };

			snprintf(key, sizeof key, "%s%s", TENANCY_DLP_PREFIX, dlp.rules[i].name);
			admin__table_row(&t, row);
		}
		admin__table_print(a, &t);
	}
	rc = EX_OK;
out:
	queue_policy_dlp_free(dlp.rules, dlp.n);
	admin__table_free(&t);
	for (size_t i = 0; i < nkeys; i++) {
		free(values[i]);
		free(sources[i]);
	}
	free(values);
	free(sources);
	return rc;
}

