/*
 * stage_tenant: the rules that come from tenancy (queue/tenancy.h), the
 * "tenant" row of policy/checks.c.
 *   MAIL  an authenticated user may send only as their own addresses and
 *         aliases they own (553 5.7.1), within their agency's hourly
 *         message rate (450 4.7.1) and size limit (552 5.3.4).
 *   RCPT  a recipient in one of our domains must be a mailbox or alias
 *         unless the domain accepts all (550 5.1.1); mail leaving the city
 *         needs the sending agency's allow_external (550 5.7.1), and from
 *         a trusted agency server a sender address of ours (554 5.7.1);
 *         the agency's max_recipients (452 4.5.3).
 *   DATA  for an authenticated user, the From: header must name exactly
 *         the envelope sender (550 5.7.1); the agency's size limit.
 *   after-queue: a queued message of an authenticated user counts for
 *         the hourly rate.
 * Policy values are read live from the store for each request (through
 * queue_policy_u64/queue_policy_bool), so a `govrelayctl policy set`
 * applies to the next command.
 *
 * Entry points: stage_tenant_new/free (the per-user rate table),
 * stage_tenant_run (MAIL, RCPT, DATA), stage_tenant_queued.
 * OWNERSHIP: the check owns its per-user rate table; requests are borrowed.
 * THREADS: loop thread. Lookups are LMDB read transactions, which never
 * wait for the writer; each check opens one and ends it before replying.
 * ERRORS: a store failure is a tempfail (451 4.3.0), never an accept.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/rfc5322.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/check.h"
#include "queue/tenancy.h"

policy_check_new_fn stage_tenant_new;
policy_check_free_fn stage_tenant_free;
policy_check_run_fn stage_tenant_run;
policy_check_queued_fn stage_tenant_queued;

#define ST_RATE_BUCKETS 4096
#define ST_RATE_MAX 200000          /* users remembered before a sweep */
#define ST_HOUR_MS (3600u * 1000u)

static const char st_rule_sender[] = "sender-ownership";
static const char st_rule_rate[] = "hourly-rate";
static const char st_rule_size[] = "tenant-size";
static const char st_rule_mailbox[] = "recipient-mailbox";
static const char st_rule_external[] = "allow-external";
static const char st_rule_relay[] = "trusted-relay";
static const char st_rule_rcpts[] = "tenant-recipients";
static const char st_rule_from[] = "from-header";
static const char st_rule_store[] = "tenancy-store";

/*
 * Messages per user in fixed one-hour windows; the rate is estimated over
 * the last sliding hour as the current window's count plus the previous
 * window's, weighted by how much of it the sliding hour still covers
 * (the estimate rate limiters commonly use: memory per user is constant).
 */
struct st_rate {
	struct st_rate *next;
	char *user;
	uint64_t window_start;   /* monotonic ms */
	uint64_t count;
	uint64_t prev;
};

struct stage_tenant {
	struct st_rate *buckets[ST_RATE_BUCKETS];
	size_t nrates;
};

int stage_tenant_new(const struct config *cfg, void **state, char *err, size_t errlen)
{
	(void)cfg;
	(void)err;
	(void)errlen;
	*state = xcalloc(1, sizeof(struct stage_tenant));
	return 0;
}

static void st_rate_free(struct st_rate *e)
{
	free(e->user);
	free(e);
}

void stage_tenant_free(void *state)
{
	struct stage_tenant *st = state;

	if (st == NULL)
		return;
	for (size_t i = 0; i < ST_RATE_BUCKETS; i++) {
		struct st_rate *e = st->buckets[i];

		while (e != NULL) {
			struct st_rate *next = e->next;

			st_rate_free(e);
			e = next;
		}
	}
	free(st);
}

static size_t st_hash(const char *s)
{
	return str_hash(s) % ST_RATE_BUCKETS;
}

/* Rolls e's windows forward to now. */
static void st_rate_roll(struct st_rate *e, uint64_t now)
{
	if (now - e->window_start >= 2 * (uint64_t)ST_HOUR_MS) {
		e->prev = 0;
		e->count = 0;
		e->window_start = now;
	} else if (now - e->window_start >= ST_HOUR_MS) {
		e->prev = e->count;
		e->count = 0;
		e->window_start += ST_HOUR_MS;
	}
}

static void st_rate_sweep(struct stage_tenant *st, uint64_t now)
{
	for (size_t i = 0; i < ST_RATE_BUCKETS; i++) {
		struct st_rate **pp = &st->buckets[i];

		while (*pp != NULL) {
			struct st_rate *e = *pp;

			if (now - e->window_start >= 2 * (uint64_t)ST_HOUR_MS) {
				*pp = e->next;
				st_rate_free(e);
				st->nrates--;
			} else {
				pp = &e->next;
			}
		}
	}
}

static struct st_rate *st_rate_find(struct stage_tenant *st, const char *user, bool create)
{
	size_t h = st_hash(user);
	uint64_t now = time_mono_ms();
	struct st_rate *e;

	for (e = st->buckets[h]; e != NULL; e = e->next) {
		if (strcmp(e->user, user) == 0) {
			st_rate_roll(e, now);
			return e;
		}
	}
	if (!create)
		return NULL;
	if (st->nrates >= ST_RATE_MAX)
		st_rate_sweep(st, now);
	e = xcalloc(1, sizeof *e);
	e->user = xstrdup(user);
	e->window_start = now;
	e->next = st->buckets[h];
	st->buckets[h] = e;
	st->nrates++;
	return e;
}

static uint64_t st_rate_estimate(const struct st_rate *e)
{
	uint64_t elapsed = time_mono_ms() - e->window_start;
	uint64_t left = elapsed < ST_HOUR_MS ? ST_HOUR_MS - elapsed : 0;

	return e->count + (e->prev * left) / ST_HOUR_MS;
}

void stage_tenant_queued(void *state, const struct policy_request *req)
{
	struct stage_tenant *st = state;
	struct st_rate *e;

	if (req->auth_user == NULL)
		return;
	e = st_rate_find(st, req->auth_user, true);
	e->count++;
}

/* ------------------------------------------------------------ helpers */

static void st_complete(struct policy_call *call, struct verdict *v, const char *rule)
{
	v->rule = rule;
	policy_call_complete(call, v);
}

static void st_continue(struct policy_call *call)
{
	struct verdict v;

	policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "tenancy rules passed");
	st_complete(call, &v, st_rule_store);
}

static void st_tempfail(struct policy_call *call, int rc)
{
	struct verdict v;

	policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0",
	    "Temporary failure reading the agency tables (%s); try again later",
	    queue_strerror(rc));
	st_complete(call, &v, st_rule_store);
}

/*
 * A numeric key (queue_policy_u64). The builtins of the limits that the
 * configuration also sets (max_message_size, max_recipients) stand for
 * "the global limit", which the session enforces already: no tenant
 * limit then.
 */
static int st_policy_u64(struct queue_txn *txn, const char *tenant, const char *key,
    uint64_t *out)
{
	char source[TENANCY_ID_MAX + 1];
	int rc = queue_policy_u64(txn, tenant, key, out, source, sizeof source);

	if (rc == 0 && strcmp(source, "default") == 0 &&
	    (strcmp(key, "max_message_size") == 0 || strcmp(key, "max_recipients") == 0))
		*out = UINT64_MAX;
	return rc;
}

/* The tenant of addr's domain (fresh) or NULL; -ENOENT is not an error. */
static int st_tenant_of(struct queue_txn *txn, const char *addr, char **tenant)
{
	int rc = queue_tenant_of_address(txn, addr, tenant);

	if (rc == -ENOENT || rc == -EINVAL) {
		*tenant = NULL;
		return 0;
	}
	return rc;
}

/* ---------------------------------------------------------------- MAIL */

static void stage_tenant_mail(struct policy_call *call, const struct policy_request *req,
    struct stage_tenant *st)
{
	struct queue_txn *txn = NULL;
	char sender[ADDR_MAX + 1];
	char *tenant = NULL;
	const char *why = NULL;
	struct verdict v;
	uint64_t limit;
	bool ok = false;
	int rc;

	if (req->auth_user == NULL) {
		st_continue(call);
		return;
	}
	/* RFC 6409 section 8: the MSA enforces who a submitter may claim to be. */
	if (req->sender[0] == '\0' || addr_canon(req->sender, sender, sizeof sender, &why) < 0) {
		policy_verdict_set(&v, VERDICT_REJECT, 553, "5.7.1",
		    "<%s>: Sender address rejected: %s may send only as their own addresses",
		    req->sender, req->auth_user);
		st_complete(call, &v, st_rule_sender);
		return;
	}
	rc = queue_txn_begin(policy_call_store(call), false, &txn);
	if (rc == 0)
		rc = queue_user_may_send_as(txn, req->auth_user, sender, &ok);
	if (rc == 0)
		rc = st_tenant_of(txn, req->auth_user, &tenant);
	if (rc < 0)
		goto fail;
	if (!ok) {
		policy_verdict_set(&v, VERDICT_REJECT, 553, "5.7.1",
		    "<%s>: Sender address rejected: not owned by user %s", req->sender,
		    req->auth_user);
		st_complete(call, &v, st_rule_sender);
		goto out;
	}
	if (req->declared_size > 0) {
		rc = st_policy_u64(txn, tenant, "max_message_size", &limit);
		if (rc < 0)
			goto fail;
		if (req->declared_size > limit) {
			policy_verdict_set(&v, VERDICT_REJECT, 552, "5.3.4",
			    "Message size exceeds your agency's limit of %" PRIu64 " bytes", limit);
			st_complete(call, &v, st_rule_size);
			goto out;
		}
	}
	rc = st_policy_u64(txn, tenant, "messages_per_hour", &limit);
	if (rc < 0)
		goto fail;
	if (limit > 0) {
		struct st_rate *e = st_rate_find(st, req->auth_user, false);

		if (e != NULL && st_rate_estimate(e) >= limit) {
			policy_verdict_set(&v, VERDICT_TEMPFAIL, 450, "4.7.1",
			    "%s has sent %" PRIu64 " messages in the last hour, the limit of "
			    "the agency; try again later", req->auth_user, limit);
			st_complete(call, &v, st_rule_rate);
			goto out;
		}
	}
	st_continue(call);
	goto out;
fail:
	st_tempfail(call, rc);
out:
	queue_txn_abort(txn);
	free(tenant);
}

/* ---------------------------------------------------------------- RCPT */

/* The recipient is in one of our domains: is it a mailbox or alias? */
static bool st_rcpt_local(struct policy_call *call, struct queue_txn *txn,
    const struct queue_domain *dom, const char *rcpt, const struct policy_request *req)
{
	struct queue_mailbox *mb = NULL;
	struct verdict v;
	int rc;

	if (dom->accept_all)
		return true;
	rc = queue_mailbox_get(txn, rcpt, &mb);
	queue_mailbox_free(mb);
	if (rc == 0)
		return true;
	if (rc != -ENOENT) {
		st_tempfail(call, rc);
		return false;
	}
	policy_verdict_set(&v, VERDICT_REJECT, 550, "5.1.1",
	    "<%s>: Recipient address rejected: no such user here", req->rcpt);
	st_complete(call, &v, st_rule_mailbox);
	return false;
}

/* Mail leaving the city: may the sending agency do that? */
static bool st_rcpt_external(struct policy_call *call, struct queue_txn *txn,
    const struct policy_request *req)
{
	char sender[ADDR_MAX + 1];
	char *tenant = NULL;
	const char *why = NULL;
	struct queue_domain *sdom = NULL;
	struct verdict v;
	bool allowed = true;
	int rc;

	if (req->auth_user != NULL) {
		rc = st_tenant_of(txn, req->auth_user, &tenant);
	} else if (req->client_trusted) {
		/* Bounces from the agencies' own servers carry the null sender. */
		if (req->sender[0] == '\0')
			return true;
		if (addr_canon(req->sender, sender, sizeof sender, &why) < 0 ||
		    queue_domain_get(txn, addr_domain_of(sender), &sdom) < 0) {
			policy_verdict_set(&v, VERDICT_REJECT, 554, "5.7.1",
			    "<%s>: Relay access denied: the sender <%s> is not an address of "
			    "the city's domains", req->rcpt, req->sender);
			st_complete(call, &v, st_rule_relay);
			return false;
		}
		queue_domain_free(sdom);
		rc = st_tenant_of(txn, sender, &tenant);
	} else {
		return true; /* stage_relay has refused it already */
	}
	if (rc == 0)
		rc = queue_policy_bool(txn, tenant, "allow_external", &allowed, NULL, 0);
	if (rc < 0) {
		free(tenant);
		st_tempfail(call, rc);
		return false;
	}
	if (!allowed) {
		policy_verdict_set(&v, VERDICT_REJECT, 550, "5.7.1",
		    "<%s>: Recipient address rejected: your agency%s%s may not send mail "
		    "outside the city", req->rcpt, tenant ? " " : "", tenant ? tenant : "");
		free(tenant);
		st_complete(call, &v, st_rule_external);
		return false;
	}
	free(tenant);
	return true;
}

static void stage_tenant_rcpt(struct policy_call *call, const struct policy_request *req)
{
	struct queue_txn *txn = NULL;
	struct queue_domain *dom = NULL;
	char rcpt[ADDR_MAX + 1];
	char *tenant = NULL;
	const char *why = NULL;
	struct verdict v;
	uint64_t limit;
	int rc;

	/* <Postmaster> and address literals: stage_relay has decided. */
	if (req->rcpt_domain[0] == '\0' || addr_canon(req->rcpt, rcpt, sizeof rcpt, &why) < 0) {
		st_continue(call);
		return;
	}
	rc = queue_txn_begin(policy_call_store(call), false, &txn);
	if (rc < 0) {
		st_tempfail(call, rc);
		return;
	}
	if (req->auth_user != NULL) {
		rc = st_tenant_of(txn, req->auth_user, &tenant);
		if (rc == 0)
			rc = st_policy_u64(txn, tenant, "max_recipients", &limit);
		if (rc < 0) {
			st_tempfail(call, rc);
			goto out;
		}
		if (req->nrcpt >= limit) {
			policy_verdict_set(&v, VERDICT_TEMPFAIL, 452, "4.5.3",
			    "Too many recipients: your agency's limit is %" PRIu64 " per message",
			    limit);
			st_complete(call, &v, st_rule_rcpts);
			goto out;
		}
	}
	rc = queue_domain_get(txn, addr_domain_of(rcpt), &dom);
	if (rc == 0) {
		if (st_rcpt_local(call, txn, dom, rcpt, req))
			st_continue(call);
	} else if (rc == -ENOENT || rc == -EINVAL) {
		if (st_rcpt_external(call, txn, req))
			st_continue(call);
	} else {
		st_tempfail(call, rc);
	}
out:
	queue_domain_free(dom);
	queue_txn_abort(txn);
	free(tenant);
}

/* ---------------------------------------------------------------- DATA */

/* RFC 5322 section 3.6.2: the author; for a submitter it must be the sender. */
static bool st_from_matches(struct policy_call *call, const struct policy_request *req)
{
	const struct rfc5322_scan *sc = req->headers;
	char sender[ADDR_MAX + 1];
	const char *why = NULL;
	char **list = NULL;
	size_t n = 0;
	struct verdict v;
	bool ok = false;

	if (sc == NULL)
		return true;
	if (sc->too_large || sc->from_truncated) {
		policy_verdict_set(&v, VERDICT_REJECT, 552, "5.6.0",
		    "Message header too large to check its From: address");
	} else if (sc->from_count == 0) {
		policy_verdict_set(&v, VERDICT_REJECT, 550, "5.6.0",
		    "Message has no From: header (RFC 5322 section 3.6)");
	} else if (sc->from_count > 1) {
		policy_verdict_set(&v, VERDICT_REJECT, 550, "5.6.0",
		    "Message has more than one From: header (RFC 5322 section 3.6)");
	} else if (rfc5322_parse_address_list(sc->from, sc->from_len, &list, &n, &why) < 0) {
		policy_verdict_set(&v, VERDICT_REJECT, 550, "5.6.0",
		    "From: header cannot be read: %s", why ? why : "malformed");
	} else if (n != 1) {
		policy_verdict_set(&v, VERDICT_REJECT, 550, "5.7.1",
		    "From: header must name exactly one address, the sender <%s>", req->sender);
	} else if (addr_canon(req->sender, sender, sizeof sender, &why) < 0 ||
	    !str_ieq(list[0], sender)) {
		policy_verdict_set(&v, VERDICT_REJECT, 550, "5.7.1",
		    "From: header address <%s> does not match the sender address <%s>",
		    list[0], req->sender);
	} else {
		ok = true;
	}
	rfc5322_free_list(list, n);
	if (!ok)
		st_complete(call, &v, st_rule_from);
	return ok;
}

static void stage_tenant_data(struct policy_call *call, const struct policy_request *req)
{
	struct queue_txn *txn = NULL;
	char *tenant = NULL;
	struct verdict v;
	uint64_t limit;
	int rc;

	if (req->auth_user == NULL) {
		st_continue(call);
		return;
	}
	if (!st_from_matches(call, req))
		return;
	rc = queue_txn_begin(policy_call_store(call), false, &txn);
	if (rc == 0)
		rc = st_tenant_of(txn, req->auth_user, &tenant);
	if (rc == 0)
		rc = st_policy_u64(txn, tenant, "max_message_size", &limit);
	queue_txn_abort(txn);
	free(tenant);
	if (rc < 0) {
		st_tempfail(call, rc);
		return;
	}
	if (req->size > limit) {
		policy_verdict_set(&v, VERDICT_REJECT, 552, "5.3.4",
		    "Message size exceeds your agency's limit of %" PRIu64 " bytes", limit);
		st_complete(call, &v, st_rule_size);
		return;
	}
	st_continue(call);
}

/* The row's run: one entry, the stage picks the rules. */
void stage_tenant_run(struct policy_call *call, const struct policy_request *req, void *state)
{
	switch (req->stage) {
	case POLICY_STAGE_MAIL:
		stage_tenant_mail(call, req, state);
		return;
	case POLICY_STAGE_RCPT:
		stage_tenant_rcpt(call, req);
		return;
	case POLICY_STAGE_DATA:
		stage_tenant_data(call, req);
		return;
	default:
		/* The row names no other stage. */
		st_continue(call);
		return;
	}
}
