/*
 * stage_content_agency: what the agencies a message concerns say, for
 * the content check (policy/stage_content.c). The agencies are the
 * recipients' (RCPT, each once) and the sender's (its user, or a
 * trusted agency server's sender address). Some policy is the
 * strictest of those agencies (classified_action, classified_min_level,
 * blocked_attachments, encrypted_archive_action); some holds down the
 * tree and is gathered from each agency and every ancestor, so a ward
 * can add to the city's but never take from it (blocked_extensions,
 * security_contact). DLP rule sets are each agency's own.
 *
 * Entry points: stage_content__rcpt, __agencies_read, __classified_policy,
 * __attach_rules, __contacts (policy/stage_content_int.h).
 * THREADS: loop thread; each entry point reads in one store transaction.
 * ERRORS: a store read that fails is returned (-EIO or the store's
 * error), or left in the state (dlp_error, exts_error) for the verdict
 * to turn into a tempfail; a tenant that is gone is no policy.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/stage_content_int.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

/* One tenant's DLP rule set joins the message's scans (each set once). */
static void sc_dlp_add(struct sc_tx *t, struct queue_txn *txn, const char *tenant)
{
	struct dlp_ruleset *rs = NULL;
	char why[128];
	int rc = dlp_cache_get(t->st->dlp, txn, tenant, &rs, why, sizeof why);

	if (rc < 0) {
		if (t->dlp_error[0] == '\0')
			snprintf(t->dlp_error, sizeof t->dlp_error, "%s: %s", tenant, why);
		return;
	}
	for (size_t i = 0; i < t->nscans; i++) {
		if (t->rulesets[i] == rs) {
			dlp_ruleset_free(rs);
			return;
		}
	}
	if (dlp_ruleset_count(rs) == 0 || t->nscans == SC_DLP_SETS_MAX) {
		if (dlp_ruleset_count(rs) > 0 && t->dlp_error[0] == '\0')
			snprintf(t->dlp_error, sizeof t->dlp_error,
			    "more than %d agencies with DLP rules", SC_DLP_SETS_MAX);
		dlp_ruleset_free(rs);
		return;
	}
	t->rulesets[t->nscans] = rs;
	t->scans[t->nscans++] = dlp_scan_new(rs);
}

static char *sc_strdup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/*
 * fn(arg, txn, tenant) for every agency the message concerns and every
 * ancestor of each (the security contacts: each gets the notice).
 * Returns -EIO when a tenant could not be
 * read (the walk goes on with the others).
 */
static int sc_each_agency_up(const struct sc_tx *t, struct queue_txn *txn,
    void (*fn)(void *arg, struct queue_txn *txn, const char *tenant), void *arg)
{
	int ret = 0;

	for (size_t i = 0; i <= t->ntenants; i++) {
		char *tenant = sc_strdup(i < t->ntenants ? t->tenants[i] : t->sender_tenant);

		/* The store keeps no deeper chain; the bound holds against a cycle too. */
		for (unsigned depth = 0; tenant != NULL && depth < TENANCY_DEPTH_MAX; depth++) {
			struct queue_tenant *rec = NULL;
			int rc;

			fn(arg, txn, tenant);
			rc = queue_tenant_get(txn, tenant, &rec);
			free(tenant);
			tenant = NULL;
			if (rc == 0)
				tenant = sc_strdup(rec->parent);
			else if (rc != -ENOENT)
				ret = -EIO;
			queue_tenant_free(rec);
		}
		free(tenant);
	}
	return ret;
}

/* One agency's blocked_extensions ("iso,lnk") join the message's list. */
static void sc_exts_add(struct sc_tx *t, const char *value)
{
	const char *p = value;

	if (strcmp(value, "none") == 0)
		return;
	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		char item[40];

		if (n > 0 && n + 3 <= sizeof item) {
			snprintf(item, sizeof item, ",%.*s,", (int)n, p);
			if (strstr(buf_cstr(&t->exts), item) == NULL) {
				if (t->exts.len > 0)
					t->exts.len--;   /* the two commas meet */
				buf_append_str(&t->exts, item);
			}
		}
		p += n;
		if (*p == ',')
			p++;
	}
}

/*
 * The blocked_extensions that hold for one agency: its own and every
 * ancestor's, gathered by the store as `policy show` says them. A
 * tenant removed since RCPT has none.
 */
static void sc_exts_of(struct sc_tx *t, struct queue_txn *txn, const char *tenant)
{
	char *value = NULL, *source = NULL;
	int rc = queue_policy_effective(txn, tenant, "blocked_extensions", &value, &source);

	if (rc == 0)
		sc_exts_add(t, value);
	else if (rc != -ENOENT)
		t->exts_error = true;
	free(value);
	free(source);
}

/*
 * At the first piece of the message (RCPT has named every agency it
 * concerns), in one read of the store: a DLP scan per distinct rule set
 * of those agencies, and the blocked_extensions of each and of every
 * ancestor (so each part's file name is checked as it comes; a list only
 * ever grows down the tree).
 */
void stage_content__agencies_read(struct sc_tx *t)
{
	struct queue_txn *txn = NULL;

	t->dlp_ready = true;
	t->exts_ready = true;
	buf_init(&t->exts);
	if (queue_txn_begin(policy_tx_store(t->tx), false, &txn) < 0) {
		str_copy(t->dlp_error, "the store cannot be read", sizeof t->dlp_error);
		t->exts_error = true;
		return;
	}
	for (size_t i = 0; i < t->ntenants; i++) {
		sc_dlp_add(t, txn, t->tenants[i]);
		sc_exts_of(t, txn, t->tenants[i]);
	}
	if (t->sender_tenant != NULL) {
		sc_dlp_add(t, txn, t->sender_tenant);
		sc_exts_of(t, txn, t->sender_tenant);
	}
	queue_txn_abort(txn);
}

/* The recipient's agency, once per agency (the DATA stage reads their policy). */
void stage_content__rcpt(struct policy_call *call, const struct policy_request *req,
    struct sc_tx *t)
{
	struct queue_txn *txn = NULL;
	char *tenant = NULL;

	if (queue_txn_begin(policy_call_store(call), false, &txn) < 0)
		return;
	if (!t->sender_known) {
		/* The sender's agency: its user, or a trusted agency server's sender. */
		t->sender_known = true;
		if (req->auth_user != NULL)
			(void)queue_tenant_of_address(txn, req->auth_user, &t->sender_tenant);
		else if (req->client_trusted && req->sender != NULL && req->sender[0] != '\0')
			(void)queue_tenant_of_address(txn, req->sender, &t->sender_tenant);
	}
	if (req->rcpt_domain != NULL && req->rcpt_domain[0] != '\0' &&
	    queue_tenant_of_domain(txn, req->rcpt_domain, &tenant) == 0 && tenant != NULL) {
		for (size_t i = 0; i < t->ntenants; i++) {
			if (strcmp(t->tenants[i], tenant) == 0) {
				free(tenant);
				tenant = NULL;
				break;
			}
		}
		if (tenant != NULL) {
			t->tenants = xreallocarray(t->tenants, t->ntenants + 1, sizeof *t->tenants);
			t->tenants[t->ntenants++] = tenant;
		}
	}
	queue_txn_abort(txn);
}

/*
 * The strictest classified_action and classified_min_level of the
 * agencies the message concerns: the sender's (its user, or a trusted
 * server's sender domain) and the recipients'. None of ours: the root's
 * (builtin) values.
 */
int stage_content__classified_policy(struct policy_call *call, struct sc_tx *t, bool *quarantine,
    enum classify_level *min_level)
{
	struct queue_txn *txn = NULL;
	char word[TENANCY_POLICY_VALUE_MAX + 1];
	enum classify_level lv;
	bool any_reject = false;
	size_t n = 0;
	int rc;

	*quarantine = false;
	*min_level = CLASSIFY_TUYET_MAT;
	rc = queue_txn_begin(policy_call_store(call), false, &txn);
	if (rc < 0)
		return rc;
	if (!t->sender_known) {
		t->sender_known = true;
		if (t->auth_user != NULL)
			(void)queue_tenant_of_address(txn, t->auth_user, &t->sender_tenant);
		else if (t->client_trusted && t->sender != NULL && t->sender[0] != '\0')
			(void)queue_tenant_of_address(txn, t->sender, &t->sender_tenant);
	}
	for (size_t i = 0; rc == 0 && i <= t->ntenants; i++) {
		const char *tenant = i < t->ntenants ? t->tenants[i] : t->sender_tenant;

		if (i == t->ntenants && (tenant == NULL && n > 0))
			break;
		n++;
		rc = queue_policy_word(txn, tenant, "classified_action", word, sizeof word, NULL,
		    0);
		if (rc == 0 && strcmp(word, "quarantine") != 0)
			any_reject = true;
		if (rc == 0)
			rc = queue_policy_word(txn, tenant, "classified_min_level", word,
			    sizeof word, NULL, 0);
		if (rc == 0 && classify_level_parse(word, &lv) && lv < *min_level)
			*min_level = lv;
	}
	queue_txn_abort(txn);
	*quarantine = !any_reject;
	return rc;
}

/*
 * The strictest blocked_attachments and encrypted_archive_action of the
 * agencies the message concerns (builtin values when none is ours).
 */
int stage_content__attach_rules(struct policy_call *call, struct sc_tx *t)
{
	static const char *const block_words[] = { "executables-and-scripts", "executables",
		"none" };
	static const char *const enc_words[] = { "reject", "quarantine", "accept" };
	struct queue_txn *txn = NULL;
	char word[TENANCY_POLICY_VALUE_MAX + 1];
	unsigned block = 2, enc = 2;
	int rc = queue_txn_begin(policy_call_store(call), false, &txn);

	for (size_t i = 0; rc == 0 && i <= t->ntenants; i++) {
		const char *tenant = i < t->ntenants ? t->tenants[i] : t->sender_tenant;

		if (i == t->ntenants && tenant == NULL && t->ntenants > 0)
			break;
		rc = queue_policy_word(txn, tenant, "blocked_attachments", word, sizeof word, NULL,
		    0);
		for (unsigned k = 0; rc == 0 && k < 3; k++)
			if (strcmp(word, block_words[k]) == 0 && k < block)
				block = k;
		if (rc == 0)
			rc = queue_policy_word(txn, tenant, "encrypted_archive_action", word,
			    sizeof word, NULL, 0);
		for (unsigned k = 0; rc == 0 && k < 3; k++)
			if (strcmp(word, enc_words[k]) == 0 && k < enc)
				enc = k;
	}
	queue_txn_abort(txn);
	t->rules.block = (enum content_block)block;
	t->rules.encrypted = (enum content_encrypted)enc;
	t->rules.extensions = t->exts_ready ? buf_cstr(&t->exts) : NULL;
	if (rc == 0 && t->exts_error)
		rc = -EIO;
	return rc;
}



/*
 * The security contacts of the agencies the message concerns and of
 * each of their ancestors (the ward's team and the city's alike); each
 * once. A store error leaves the list as far as it got: the refusal
 * stands whatever the notices.
 */
struct sc_contact_list {
	char **out;
	size_t n;
};

static void sc_contact_of(void *arg, struct queue_txn *txn, const char *tenant)
{
	struct sc_contact_list *l = arg;
	char *value = NULL;
	bool seen = false;

	if (queue_policy_get(txn, tenant, "security_contact", &value) == 0 &&
	    strcmp(value, "none") != 0) {
		for (size_t k = 0; k < l->n && !seen; k++)
			seen = strcmp(l->out[k], value) == 0;
		if (!seen && l->n < SC_CONTACTS_MAX) {
			l->out[l->n++] = value;
			value = NULL;
		}
	}
	free(value);
}

size_t stage_content__contacts(struct policy_call *call, const struct sc_tx *t,
    char *out[SC_CONTACTS_MAX])
{
	struct sc_contact_list l = { out, 0 };
	struct queue_txn *txn = NULL;

	if (queue_txn_begin(policy_call_store(call), false, &txn) < 0)
		return 0;
	(void)sc_each_agency_up(t, txn, sc_contact_of, &l);
	queue_txn_abort(txn);
	return l.n;
}

