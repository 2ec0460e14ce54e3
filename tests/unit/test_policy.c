/*
 * test_policy: the verdict engine, the relay check and the tenancy rules
 * of RCPT (stage_tenant), against a real store in a temporary folder.
 *
 * The fixture holds two of our domains: us.gov.vn, added with accept_all
 * (any local part, no agency), on which the relay table runs, and
 * strict.gov.vn of tenant "city", which accepts only its mailboxes
 * (known@, and the alias team@ -> known@).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "common/util.h"
#include "policy/check.h"
#include "policy/policy.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

static char test_dir[64];
static struct queue_store *test_store;
static uv_loop_t test_loop;

static void test_setup(void)
{
	struct queue_txn *txn;
	struct queue_domain d = { .name = "us.gov.vn", .route = "smtp:127.0.0.1:2526",
		.accept_all = true };
	struct queue_tenant city = { .id = "city", .name = "Thành phố" };
	struct queue_domain strict = { .name = "strict.gov.vn", .tenant = "city",
		.route = "smtp:127.0.0.1:2526" };
	char *team_targets[] = { "known@strict.gov.vn" };
	struct queue_mailbox known = { .address = "known@strict.gov.vn" };
	struct queue_mailbox team = { .address = "team@strict.gov.vn",
		.alias_of = team_targets, .nalias_of = 1 };
	char why[256];

	str_copy(test_dir, "/tmp/govrelay-policy-XXXXXX", sizeof test_dir);
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	ck_assert_int_eq(queue_store_open(test_dir, 64 << 20, false, &test_store), 0);
	ck_assert_int_eq(queue_txn_begin(test_store, true, &txn), 0);
	ck_assert_int_eq(queue_domain_put(txn, &d), 0);
	ck_assert_int_eq(queue_tenant_put(txn, &city, why, sizeof why), 0);
	ck_assert_int_eq(queue_domain_put(txn, &strict), 0);
	ck_assert_int_eq(queue_mailbox_put(txn, &known, why, sizeof why), 0);
	ck_assert_int_eq(queue_mailbox_put(txn, &team, why, sizeof why), 0);
	ck_assert_int_eq(queue_txn_commit(txn), 0);
	ck_assert_int_eq(uv_loop_init(&test_loop), 0);
}

static void test_teardown(void)
{
	char cmd[128];

	ck_assert_int_eq(uv_run(&test_loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(&test_loop), 0);
	queue_store_close(test_store);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* The product's table over store (the API call; the assertions are the tests'). */
static struct policy *test_policy_new(struct queue_store *store)
{
	struct policy *p = NULL;
	char err[256] = "";

	ck_assert_msg(policy_new(&test_loop, NULL, store, &p, err, sizeof err) == 0,
	    "policy_new: %s", err);
	return p;
}

struct policy_test_result {
	int calls;
	struct verdict v;
};

static void test_done(void *arg, const struct verdict *v)
{
	struct policy_test_result *r = arg;

	r->calls++;
	r->v = *v;
}

static const struct {
	const char *label;
	bool trusted;
	const char *rcpt;
	const char *domain;
	bool routing;
	enum verdict_kind want;
	int code;
	const char *enh;
} relay_cases[] = {
	{ "our domain, untrusted", false, "a@us.gov.vn", "us.gov.vn", false, VERDICT_CONTINUE, 0, "" },
	{ "our domain, other case", false, "a@US.gov.vn", "US.GOV.VN", false, VERDICT_CONTINUE, 0, "" },
	{ "foreign, untrusted", false, "a@other.org", "other.org", false, VERDICT_REJECT, 554, "5.7.1" },
	{ "foreign, trusted", true, "a@other.org", "other.org", false, VERDICT_CONTINUE, 0, "" },
	{ "percent hack, untrusted", false, "a%other.org@us.gov.vn", "us.gov.vn", true, VERDICT_REJECT, 554, "5.7.1" },
	{ "bang path, untrusted", false, "other.org!a@us.gov.vn", "us.gov.vn", true, VERDICT_REJECT, 554, "5.7.1" },
	{ "quoted at, untrusted", false, "\"a@other.org\"@us.gov.vn", "us.gov.vn", true, VERDICT_REJECT, 554, "5.7.1" },
	{ "percent hack, trusted", true, "a%other.org@us.gov.vn", "us.gov.vn", true, VERDICT_CONTINUE, 0, "" },
	{ "postmaster without domain", false, "Postmaster", "", false, VERDICT_CONTINUE, 0, "" },
	{ "subdomain is not ours", false, "a@x.us.gov.vn", "x.us.gov.vn", false, VERDICT_REJECT, 554, "5.7.1" },
	{ "literal, untrusted", false, "a@[127.0.0.1]", "[127.0.0.1]", false, VERDICT_REJECT, 554, "5.7.1" },
};

START_TEST(test_relay_table)
{
	struct policy *p = test_policy_new(test_store);
	struct policy_request req;
	struct policy_test_result r;

	memset(&req, 0, sizeof req);
	memset(&r, 0, sizeof r);
	req.stage = POLICY_STAGE_RCPT;
	req.session_id = "test";
	req.client_addr = "127.0.0.2";
	req.listener_role = "mx";
	req.helo = "client.example";
	/*
	 * Inbound mail comes from anywhere; a trusted agency server relaying
	 * out must use a sender of ours (stage_tenant, tested below), so the
	 * trusted rows send as one and test only the relay decision.
	 */
	req.sender = relay_cases[_i].trusted ? "s@us.gov.vn" : "s@example.org";
	req.client_trusted = relay_cases[_i].trusted;
	req.rcpt = relay_cases[_i].rcpt;
	req.rcpt_domain = relay_cases[_i].domain;
	req.rcpt_routing_chars = relay_cases[_i].routing;
	policy_run(p, &req, test_done, &r);
	ck_assert_msg(r.calls == 1, "%s: done called %d times", relay_cases[_i].label, r.calls);
	ck_assert_msg(r.v.kind == relay_cases[_i].want, "%s: verdict %s, want %s",
	    relay_cases[_i].label, verdict_kind_name(r.v.kind),
	    verdict_kind_name(relay_cases[_i].want));
	ck_assert_msg(r.v.code == relay_cases[_i].code, "%s: code %d", relay_cases[_i].label, r.v.code);
	ck_assert_msg(strcmp(r.v.enh, relay_cases[_i].enh) == 0, "%s: enh %s",
	    relay_cases[_i].label, r.v.enh);
	if (r.v.kind == VERDICT_REJECT) {
		ck_assert_msg(strstr(r.v.text, "Relay access denied") != NULL, "%s: text %s",
		    relay_cases[_i].label, r.v.text);
		ck_assert_str_eq(r.v.rule, "relay");
	}
	policy_free(p);
}
END_TEST

/* The RCPT rules of stage_tenant for clients that did not authenticate. */
static const struct {
	const char *label;
	bool trusted;
	const char *sender;
	const char *rcpt;
	const char *domain;
	enum verdict_kind want;
	int code;
	const char *enh;
	const char *rule;
} tenant_cases[] = {
	/* RCPT to one of our domains without accept_all: mailboxes only. */
	{ "unknown user, strict domain", false, "s@example.org", "nobody@strict.gov.vn",
	  "strict.gov.vn", VERDICT_REJECT, 550, "5.1.1", "recipient-mailbox" },
	{ "unknown user, strict domain, trusted", true, "s@us.gov.vn", "nobody@strict.gov.vn",
	  "strict.gov.vn", VERDICT_REJECT, 550, "5.1.1", "recipient-mailbox" },
	{ "unknown user, null sender", false, "", "nobody@strict.gov.vn",
	  "strict.gov.vn", VERDICT_REJECT, 550, "5.1.1", "recipient-mailbox" },
	{ "known mailbox", false, "s@example.org", "known@strict.gov.vn",
	  "strict.gov.vn", VERDICT_CONTINUE, 0, "", NULL },
	{ "known mailbox, other case", false, "s@example.org", "Known@STRICT.gov.vn",
	  "strict.gov.vn", VERDICT_CONTINUE, 0, "", NULL },
	{ "alias", false, "s@example.org", "team@strict.gov.vn",
	  "strict.gov.vn", VERDICT_CONTINUE, 0, "", NULL },
	{ "any user, accept-all domain", false, "s@example.org", "whoever@us.gov.vn",
	  "us.gov.vn", VERDICT_CONTINUE, 0, "", NULL },
	/* A trusted client relaying out must send as one of our domains. */
	{ "trusted relay, foreign sender", true, "s@example.org", "a@other.org",
	  "other.org", VERDICT_REJECT, 554, "5.7.1", "trusted-relay" },
	{ "trusted relay, sender in a subdomain of ours", true, "s@x.us.gov.vn", "a@other.org",
	  "other.org", VERDICT_REJECT, 554, "5.7.1", "trusted-relay" },
	{ "trusted relay, our sender (no agency)", true, "s@us.gov.vn", "a@other.org",
	  "other.org", VERDICT_CONTINUE, 0, "", NULL },
	{ "trusted relay, our sender (agency)", true, "anyone@STRICT.GOV.VN", "a@other.org",
	  "other.org", VERDICT_CONTINUE, 0, "", NULL },
	{ "trusted relay, null sender", true, "", "a@other.org",
	  "other.org", VERDICT_CONTINUE, 0, "", NULL },
	/* stage_relay refuses an untrusted client first. */
	{ "untrusted relay, our sender", false, "s@us.gov.vn", "a@other.org",
	  "other.org", VERDICT_REJECT, 554, "5.7.1", "relay" },
};

static void tenant_request(struct policy_request *req, bool trusted, const char *sender,
    const char *rcpt, const char *domain)
{
	memset(req, 0, sizeof *req);
	req->stage = POLICY_STAGE_RCPT;
	req->session_id = "test";
	req->client_addr = trusted ? "127.0.0.1" : "127.0.0.2";
	req->client_trusted = trusted;
	req->listener_role = "mx";
	req->helo = "client.example";
	req->sender = sender;
	req->rcpt = rcpt;
	req->rcpt_domain = domain;
}

START_TEST(test_tenant_table)
{
	struct policy *p = test_policy_new(test_store);
	struct policy_request req;
	struct policy_test_result r;

	tenant_request(&req, tenant_cases[_i].trusted, tenant_cases[_i].sender,
	    tenant_cases[_i].rcpt, tenant_cases[_i].domain);
	memset(&r, 0, sizeof r);
	policy_run(p, &req, test_done, &r);
	ck_assert_msg(r.calls == 1, "%s: done called %d times", tenant_cases[_i].label, r.calls);
	ck_assert_msg(r.v.kind == tenant_cases[_i].want, "%s: verdict %s (%d %s %s), want %s",
	    tenant_cases[_i].label, verdict_kind_name(r.v.kind), r.v.code, r.v.enh, r.v.text,
	    verdict_kind_name(tenant_cases[_i].want));
	ck_assert_msg(r.v.code == tenant_cases[_i].code, "%s: code %d", tenant_cases[_i].label,
	    r.v.code);
	ck_assert_msg(strcmp(r.v.enh, tenant_cases[_i].enh) == 0, "%s: enh %s",
	    tenant_cases[_i].label, r.v.enh);
	if (tenant_cases[_i].rule != NULL) {
		ck_assert_msg(r.v.rule != NULL && strcmp(r.v.rule, tenant_cases[_i].rule) == 0,
		    "%s: rule %s", tenant_cases[_i].label, r.v.rule ? r.v.rule : "(null)");
		/* The reply names the refused recipient. */
		ck_assert_msg(strstr(r.v.text, tenant_cases[_i].rcpt) != NULL, "%s: text %s",
		    tenant_cases[_i].label, r.v.text);
	}
	policy_free(p);
}
END_TEST

/*
 * A mailbox added while the policy exists counts at the next RCPT: the
 * tables are read live, not cached.
 */
START_TEST(test_tenant_mailbox_added_live)
{
	struct policy *p = test_policy_new(test_store);
	struct queue_mailbox mb = { .address = "late@strict.gov.vn" };
	struct policy_request req;
	struct policy_test_result r;
	struct queue_txn *txn;
	char why[256];

	tenant_request(&req, false, "s@example.org", "late@strict.gov.vn", "strict.gov.vn");
	memset(&r, 0, sizeof r);
	policy_run(p, &req, test_done, &r);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.v.kind, VERDICT_REJECT);
	ck_assert_int_eq(r.v.code, 550);
	ck_assert_str_eq(r.v.enh, "5.1.1");

	ck_assert_int_eq(queue_txn_begin(test_store, true, &txn), 0);
	ck_assert_int_eq(queue_mailbox_put(txn, &mb, why, sizeof why), 0);
	ck_assert_int_eq(queue_txn_commit(txn), 0);
	memset(&r, 0, sizeof r);
	policy_run(p, &req, test_done, &r);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.v.kind, VERDICT_CONTINUE);
	policy_free(p);
}
END_TEST

/* allow_external "no" on the sender's agency stops a trusted relay out. */
START_TEST(test_tenant_allow_external)
{
	struct policy *p = test_policy_new(test_store);
	struct policy_request req;
	struct policy_test_result r;
	struct queue_txn *txn;

	ck_assert_int_eq(queue_txn_begin(test_store, true, &txn), 0);
	ck_assert_int_eq(queue_policy_set(txn, "city", "allow_external", "no"), 0);
	ck_assert_int_eq(queue_txn_commit(txn), 0);

	tenant_request(&req, true, "s@strict.gov.vn", "a@other.org", "other.org");
	memset(&r, 0, sizeof r);
	policy_run(p, &req, test_done, &r);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.v.kind, VERDICT_REJECT);
	ck_assert_int_eq(r.v.code, 550);
	ck_assert_str_eq(r.v.enh, "5.7.1");
	ck_assert_str_eq(r.v.rule, "allow-external");

	/* A domain without an agency has the builtin (yes); mail inside the city is fine. */
	tenant_request(&req, true, "s@us.gov.vn", "a@other.org", "other.org");
	memset(&r, 0, sizeof r);
	policy_run(p, &req, test_done, &r);
	ck_assert_int_eq(r.v.kind, VERDICT_CONTINUE);
	tenant_request(&req, true, "s@strict.gov.vn", "known@strict.gov.vn", "strict.gov.vn");
	memset(&r, 0, sizeof r);
	policy_run(p, &req, test_done, &r);
	ck_assert_int_eq(r.v.kind, VERDICT_CONTINUE);
	policy_free(p);
}
END_TEST

/*
 * The typed getters every caller reads tenant policy through: builtins
 * for no tenant, inheritance with its source, one parsing rule, and the
 * wrong type refused.
 */
START_TEST(test_tenant_policy_getters)
{
	struct queue_tenant ward = { .id = "ward", .name = "Ward", .parent = "city" };
	struct queue_txn *txn;
	char source[TENANCY_ID_MAX + 1];
	char why[256];
	uint64_t n = 0;
	bool b = false;

	ck_assert_int_eq(queue_txn_begin(test_store, true, &txn), 0);
	ck_assert_int_eq(queue_tenant_put(txn, &ward, why, sizeof why), 0);
	ck_assert_int_eq(queue_policy_set(txn, "city", "max_recipients", "7"), 0);
	ck_assert_int_eq(queue_policy_set(txn, "city", "require_tls_outbound", "on"), 0);
	ck_assert_int_eq(queue_txn_commit(txn), 0);

	ck_assert_int_eq(queue_txn_begin(test_store, false, &txn), 0);
	/* No tenant (a domain without an agency): the builtin. */
	ck_assert_int_eq(queue_policy_u64(txn, NULL, "max_recipients", &n, source,
	    sizeof source), 0);
	ck_assert_uint_eq(n, 100);
	ck_assert_str_eq(source, "default");
	ck_assert_int_eq(queue_policy_bool(txn, NULL, "allow_external", &b, NULL, 0), 0);
	ck_assert(b);
	/* Inherited from the parent, which set it. */
	ck_assert_int_eq(queue_policy_u64(txn, "ward", "max_recipients", &n, source,
	    sizeof source), 0);
	ck_assert_uint_eq(n, 7);
	ck_assert_str_eq(source, "city");
	ck_assert_int_eq(queue_policy_bool(txn, "ward", "require_tls_outbound", &b, source,
	    sizeof source), 0);
	ck_assert(b);
	ck_assert_str_eq(source, "city");
	/* Set nowhere up the tree: the builtin, from "default". */
	ck_assert_int_eq(queue_policy_u64(txn, "ward", "max_message_size", &n, source,
	    sizeof source), 0);
	ck_assert_uint_eq(n, 26214400);
	ck_assert_str_eq(source, "default");
	ck_assert_int_eq(queue_policy_u64(txn, "ward", "messages_per_hour", &n, NULL, 0), 0);
	ck_assert_uint_eq(n, 0);
	/* Refusals: the other type, an unknown key, an unknown tenant. */
	ck_assert_int_eq(queue_policy_bool(txn, "ward", "max_recipients", &b, NULL, 0), -EINVAL);
	ck_assert_int_eq(queue_policy_u64(txn, "ward", "allow_external", &n, NULL, 0), -EINVAL);
	ck_assert_int_eq(queue_policy_u64(txn, "ward", "no_such_key", &n, NULL, 0), -EINVAL);
	ck_assert_int_eq(queue_policy_bool(txn, "nobody", "allow_external", &b, NULL, 0),
	    -ENOENT);
	queue_txn_abort(txn);
}
END_TEST

START_TEST(test_stage_without_rules_continues)
{
	struct policy *p = test_policy_new(test_store);
	struct policy_request req;
	struct policy_test_result r;
	enum policy_stage stages[] = { POLICY_STAGE_CONNECT, POLICY_STAGE_HELO,
		POLICY_STAGE_MAIL, POLICY_STAGE_DATA };

	for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
		memset(&req, 0, sizeof req);
		memset(&r, 0, sizeof r);
		req.stage = stages[i];
		req.session_id = "test";
		policy_run(p, &req, test_done, &r);
		ck_assert_int_eq(r.calls, 1);
		ck_assert_int_eq(r.v.kind, VERDICT_CONTINUE);
	}
	policy_free(p);
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(policy_stage_name(POLICY_STAGE_RCPT), "rcpt");
	ck_assert_str_eq(verdict_kind_name(VERDICT_TEMPFAIL), "tempfail");
	ck_assert_str_eq(verdict_kind_name(VERDICT_DISCONNECT), "disconnect");
}
END_TEST

START_TEST(test_readonly_store_lookup)
{
	struct policy *p;
	struct policy_request req;
	struct policy_test_result r;
	struct queue_store *ro;

	/* The relay check only reads: a read-only handle must be enough. */
	ck_assert_int_eq(queue_store_open(test_dir, 0, true, &ro), 0);
	p = test_policy_new(ro);
	memset(&req, 0, sizeof req);
	memset(&r, 0, sizeof r);
	req.stage = POLICY_STAGE_RCPT;
	req.session_id = "test";
	req.rcpt = "a@us.gov.vn";
	req.rcpt_domain = "us.gov.vn";
	policy_run(p, &req, test_done, &r);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.v.kind, VERDICT_CONTINUE);
	/* The mailbox table too. */
	tenant_request(&req, false, "s@example.org", "known@strict.gov.vn", "strict.gov.vn");
	memset(&r, 0, sizeof r);
	policy_run(p, &req, test_done, &r);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.v.kind, VERDICT_CONTINUE);
	tenant_request(&req, false, "s@example.org", "nobody@strict.gov.vn", "strict.gov.vn");
	memset(&r, 0, sizeof r);
	policy_run(p, &req, test_done, &r);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.v.kind, VERDICT_REJECT);
	ck_assert_int_eq(r.v.code, 550);
	policy_free(p);
	queue_store_close(ro);
}
END_TEST


/* ------------------------------------------------- the table, with fake rows */

/*
 * Test-only rows: what each one does is its state (a struct fake), so one
 * run function serves them all and the tests read as tables.
 */
enum fake_action { FAKE_CONTINUE, FAKE_REJECT, FAKE_TEMPFAIL, FAKE_TWICE, FAKE_NEVER,
	FAKE_LATER };

struct fake {
	enum fake_action action;
	int runs;
	int queued;
	int freed;
	int create_rc;
	struct policy_call *held;    /* FAKE_NEVER: the call it never completed */
	uv_timer_t timer;            /* FAKE_LATER */
};

static struct fake fakes[4];
static int fake_next;      /* the fake the next constructor call takes */

static int fake_index(const void *state)
{
	return (int)((const struct fake *)state - fakes);
}

static int fake_new(const struct config *cfg, void **state, char *err, size_t errlen)
{
	/* A constructor does not know its row: rows take the fakes in order. */
	struct fake *f = &fakes[fake_next++ % 4];

	(void)cfg;
	if (f->create_rc < 0) {
		snprintf(err, errlen, "fake %d refuses the configuration", fake_index(f));
		return f->create_rc;
	}
	*state = f;
	return 0;
}

static void fake_free(void *state)
{
	((struct fake *)state)->freed++;
}

static void fake_queued(void *state, const struct policy_request *req)
{
	(void)req;
	((struct fake *)state)->queued++;
}

static void fake_later_cb(uv_timer_t *t)
{
	struct fake *f = t->data;
	struct verdict v;

	policy_verdict_set(&v, VERDICT_REJECT, 550, "5.7.1", "decided later");
	policy_call_complete(f->held, &v);
	f->held = NULL;
	uv_close((uv_handle_t *)&f->timer, NULL);
}

static void fake_run(struct policy_call *call, const struct policy_request *req, void *state)
{
	struct fake *f = state;
	struct verdict v;

	(void)req;
	f->runs++;
	switch (f->action) {
	case FAKE_CONTINUE:
		policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "fine");
		break;
	case FAKE_REJECT:
	case FAKE_TWICE:
		policy_verdict_set(&v, VERDICT_REJECT, 554, "5.7.1", "fake %d says no",
		    fake_index(f));
		break;
	case FAKE_TEMPFAIL:
		policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.7.1", "later");
		break;
	case FAKE_NEVER:
		f->held = call;
		return;
	case FAKE_LATER:
		f->held = call;
		uv_timer_init(&test_loop, &f->timer);
		f->timer.data = f;
		uv_timer_start(&f->timer, fake_later_cb, 5, 0);
		return;
	}
	policy_call_complete(call, &v);
	if (f->action == FAKE_TWICE)
		policy_call_complete(call, &v);
}

#define FAKE_ROW(name, stages, roles, flags) \
	{ name, stages, roles, flags, 0, fake_new, fake_free, fake_run, fake_queued, NULL, NULL, NULL }

static struct policy *fake_policy(const struct policy_check *rows, size_t n)
{
	struct policy *p = NULL;
	char err[256] = "";

	ck_assert_msg(policy_new_table(&test_loop, NULL, test_store, rows, n, &p, err,
	    sizeof err) == 0, "policy_new_table: %s", err);
	return p;
}

static void fake_reset(void)
{
	memset(fakes, 0, sizeof fakes);
	fake_next = 0;
}

static struct policy_test_result fake_request(struct policy *p, enum policy_stage stage,
    const char *role)
{
	struct policy_request req;
	struct policy_test_result r;

	memset(&req, 0, sizeof req);
	memset(&r, 0, sizeof r);
	req.stage = stage;
	req.session_id = "fake";
	req.listener_role = role;
	req.sender = "";
	req.rcpt = "";
	req.rcpt_domain = "";
	policy_run(p, &req, test_done, &r);
	ck_assert_int_eq(r.calls, 1);
	return r;
}

/* The first decisive verdict wins; CONTINUE falls through; later rows never run. */
START_TEST(test_table_first_decisive_wins)
{
	const unsigned all = POLICY_AT(POLICY_STAGE_MAIL);
	const struct policy_check rows[] = {
		FAKE_ROW("a", all, POLICY_ROLES_ALL, 0),
		FAKE_ROW("b", all, POLICY_ROLES_ALL, 0),
		FAKE_ROW("c", all, POLICY_ROLES_ALL, 0),
	};
	struct policy *p;
	struct policy_test_result r;

	fake_reset();
	fakes[1].action = FAKE_REJECT;
	p = fake_policy(rows, 3);
	r = fake_request(p, POLICY_STAGE_MAIL, "mx");
	ck_assert_int_eq(r.v.kind, VERDICT_REJECT);
	ck_assert_int_eq(r.v.code, 554);
	ck_assert_str_eq(r.v.rule, "b");      /* the row's name when the check names none */
	ck_assert_int_eq(fakes[0].runs, 1);
	ck_assert_int_eq(fakes[1].runs, 1);
	ck_assert_int_eq(fakes[2].runs, 0);
	policy_free(p);
	ck_assert_int_eq(fakes[0].freed + fakes[1].freed + fakes[2].freed, 3);
}
END_TEST

/* Rows run only at their stages and for their listener roles. */
START_TEST(test_table_stage_and_role_filter)
{
	const struct policy_check rows[] = {
		FAKE_ROW("mx-mail", POLICY_AT(POLICY_STAGE_MAIL), POLICY_ROLE(CFG_ROLE_MX), 0),
		FAKE_ROW("sub-rcpt", POLICY_AT(POLICY_STAGE_RCPT),
		    POLICY_ROLE(CFG_ROLE_SUBMISSION) | POLICY_ROLE(CFG_ROLE_SUBMISSIONS), 0),
		FAKE_ROW("everywhere", POLICY_AT(POLICY_STAGE_MAIL) | POLICY_AT(POLICY_STAGE_RCPT),
		    POLICY_ROLES_ALL, 0),
	};
	static const struct {
		enum policy_stage stage;
		const char *role;
		int runs[3];
	} cases[] = {
		{ POLICY_STAGE_MAIL, "mx", { 1, 0, 1 } },
		{ POLICY_STAGE_MAIL, "submission", { 0, 0, 1 } },
		{ POLICY_STAGE_RCPT, "mx", { 0, 0, 1 } },
		{ POLICY_STAGE_RCPT, "submission", { 0, 1, 1 } },
		{ POLICY_STAGE_RCPT, "submissions", { 0, 1, 1 } },
		{ POLICY_STAGE_CONNECT, "mx", { 0, 0, 0 } },
		{ POLICY_STAGE_DATA, "submission", { 0, 0, 0 } },
		{ POLICY_STAGE_RCPT, NULL, { 0, 1, 1 } },   /* no role: every row */
	};
	struct policy *p;

	fake_reset();
	p = fake_policy(rows, 3);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct policy_test_result r;

		for (int k = 0; k < 3; k++)
			fakes[k].runs = 0;
		r = fake_request(p, cases[i].stage, cases[i].role);
		ck_assert_int_eq(r.v.kind, VERDICT_CONTINUE);
		for (int k = 0; k < 3; k++)
			ck_assert_msg(fakes[k].runs == cases[i].runs[k], "case %zu (%s %s): row %d "
			    "ran %d times, want %d", i, policy_stage_name(cases[i].stage),
			    cases[i].role ? cases[i].role : "(any)", k, fakes[k].runs,
			    cases[i].runs[k]);
	}
	/* A role the engine does not know is an internal failure: tempfail. */
	{
		struct policy_test_result r = fake_request(p, POLICY_STAGE_MAIL, "smtp-out");

		ck_assert_int_eq(r.v.kind, VERDICT_TEMPFAIL);
		ck_assert_int_eq(r.v.code, 451);
	}
	policy_free(p);
}
END_TEST

/* The engine owns the clock: a check that never answers becomes a tempfail. */
START_TEST(test_table_timeout_tempfails)
{
	const struct policy_check rows[] = {
		{ "slow", POLICY_AT(POLICY_STAGE_RCPT), POLICY_ROLES_ALL, 0, 20, fake_new,
		  fake_free, fake_run, NULL, NULL, NULL, NULL },
		FAKE_ROW("after", POLICY_AT(POLICY_STAGE_RCPT), POLICY_ROLES_ALL, 0),
	};
	struct policy_request req;
	struct policy_test_result r;
	struct policy *p;
	struct verdict late;

	fake_reset();
	fakes[0].action = FAKE_NEVER;
	p = fake_policy(rows, 2);
	memset(&req, 0, sizeof req);
	memset(&r, 0, sizeof r);
	req.stage = POLICY_STAGE_RCPT;
	req.session_id = "fake";
	req.listener_role = "mx";
	policy_run(p, &req, test_done, &r);
	ck_assert_int_eq(r.calls, 0);          /* waiting */
	ck_assert_int_eq(uv_run(&test_loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.v.kind, VERDICT_TEMPFAIL);
	ck_assert_int_eq(r.v.code, 451);
	ck_assert_str_eq(r.v.enh, "4.3.0");
	ck_assert_str_eq(r.v.rule, "slow");
	ck_assert_int_eq(fakes[1].runs, 0);
	/* The answer after the deadline is ignored, and frees the call. */
	policy_verdict_set(&late, VERDICT_CONTINUE, 0, "", "too late");
	policy_call_complete(fakes[0].held, &late);
	ck_assert_int_eq(uv_run(&test_loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(r.calls, 1);
	policy_free(p);
}
END_TEST

/* A check may complete later, from a callback on the loop. */
START_TEST(test_table_async_completion)
{
	const struct policy_check rows[] = {
		FAKE_ROW("later", POLICY_AT(POLICY_STAGE_HELO), POLICY_ROLES_ALL, 0),
		FAKE_ROW("after", POLICY_AT(POLICY_STAGE_HELO), POLICY_ROLES_ALL, 0),
	};
	struct policy_request req;
	struct policy_test_result r;
	struct policy *p;

	fake_reset();
	fakes[0].action = FAKE_LATER;
	p = fake_policy(rows, 2);
	memset(&req, 0, sizeof req);
	memset(&r, 0, sizeof r);
	req.stage = POLICY_STAGE_HELO;
	req.session_id = "fake";
	req.listener_role = "submission";
	policy_run(p, &req, test_done, &r);
	ck_assert_int_eq(r.calls, 0);
	ck_assert_int_eq(uv_run(&test_loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(r.calls, 1);
	ck_assert_int_eq(r.v.kind, VERDICT_REJECT);
	ck_assert_str_eq(r.v.text, "decided later");
	ck_assert_int_eq(fakes[1].runs, 0);
	policy_free(p);
}
END_TEST

/* warn_only: the row's refusal is logged, and the walk goes on. */
START_TEST(test_table_warn_only)
{
	const struct policy_check rows[] = {
		FAKE_ROW("dry", POLICY_AT(POLICY_STAGE_DATA), POLICY_ROLES_ALL,
		    POLICY_CHECK_WARN_ONLY),
		FAKE_ROW("real", POLICY_AT(POLICY_STAGE_DATA), POLICY_ROLES_ALL, 0),
	};
	struct policy *p;
	struct policy_test_result r;

	fake_reset();
	fakes[0].action = FAKE_REJECT;
	fakes[1].action = FAKE_TEMPFAIL;
	p = fake_policy(rows, 2);
	r = fake_request(p, POLICY_STAGE_DATA, "mx");
	ck_assert_int_eq(fakes[1].runs, 1);
	ck_assert_int_eq(r.v.kind, VERDICT_TEMPFAIL);
	ck_assert_str_eq(r.v.rule, "real");
	policy_free(p);
}
END_TEST

/* Every row's after-queue hook hears of a queued message; rows without one are skipped. */
START_TEST(test_table_after_queue_hook)
{
	const struct policy_check rows[] = {
		FAKE_ROW("counts", POLICY_AT(POLICY_STAGE_MAIL), POLICY_ROLES_ALL, 0),
		{ "no-hook", POLICY_AT(POLICY_STAGE_MAIL), POLICY_ROLES_ALL, 0, 0, fake_new,
		  fake_free, fake_run, NULL, NULL, NULL, NULL },
	};
	struct policy_request req = { .stage = POLICY_STAGE_DATA, .auth_user = "u@us.gov.vn",
		.sender = "u@us.gov.vn" };
	struct policy *p;

	fake_reset();
	p = fake_policy(rows, 2);
	policy_message_queued(p, &req);
	policy_message_queued(p, &req);
	ck_assert_int_eq(fakes[0].queued, 2);
	ck_assert_int_eq(fakes[1].queued, 0);
	policy_free(p);
}
END_TEST

/* A constructor refusing the configuration fails policy_new with its words. */
START_TEST(test_table_constructor_fails)
{
	const struct policy_check rows[] = {
		FAKE_ROW("ok", POLICY_AT(POLICY_STAGE_MAIL), POLICY_ROLES_ALL, 0),
		FAKE_ROW("refuses", POLICY_AT(POLICY_STAGE_MAIL), POLICY_ROLES_ALL, 0),
		FAKE_ROW("never built", POLICY_AT(POLICY_STAGE_MAIL), POLICY_ROLES_ALL, 0),
	};
	const struct policy_check broken[] = {
		{ "no run", POLICY_AT(POLICY_STAGE_MAIL), POLICY_ROLES_ALL, 0, 0, NULL, NULL,
		  NULL, NULL, NULL, NULL, NULL },
	};
	struct policy *p = (struct policy *)1;
	char err[256] = "";

	fake_reset();
	fakes[1].create_rc = -EINVAL;
	ck_assert_int_eq(policy_new_table(&test_loop, NULL, test_store, rows, 3, &p, err,
	    sizeof err), -EINVAL);
	ck_assert_ptr_null(p);
	ck_assert_str_eq(err, "fake 1 refuses the configuration");
	ck_assert_int_eq(fakes[0].freed, 1);   /* built, so freed */
	ck_assert_int_eq(fakes[2].freed, 0);   /* never built */
	ck_assert_int_eq(policy_new_table(&test_loop, NULL, test_store, broken, 1, &p, err,
	    sizeof err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "no run"));
}
END_TEST

/*
 * A check completing twice is a broken invariant: the engine aborts (in a
 * child, so this test survives it); with NDEBUG it logs and ignores it.
 */
START_TEST(test_table_double_completion)
{
	const struct policy_check rows[] = {
		FAKE_ROW("twice", POLICY_AT(POLICY_STAGE_MAIL), POLICY_ROLES_ALL, 0),
	};
	pid_t pid;
	int status = 0;

	fake_reset();
	fakes[0].action = FAKE_TWICE;
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct policy *p = fake_policy(rows, 1);

		fake_request(p, POLICY_STAGE_MAIL, "mx");
		policy_free(p);
		_exit(0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
#ifdef NDEBUG
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
#else
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
	    "a double completion must abort (status %d)", status);
#endif
}
END_TEST

/* ------------------------------------------------------ explain mode */

/* What policy_run_explain reported: each rule's verdict (or not run), then done. */
struct explain_log {
	int n;
	const char *rule[8];
	bool ran[8];
	struct verdict v[8];
	int after_done;     /* reports that came after done: must stay 0 */
	struct policy_test_result r;
};

static void explain_each(void *arg, const char *rule, const struct verdict *v)
{
	struct explain_log *l = arg;

	if (l->r.calls > 0)
		l->after_done++;
	ck_assert_int_lt(l->n, 8);
	l->rule[l->n] = rule;
	l->ran[l->n] = v != NULL;
	if (v != NULL)
		l->v[l->n] = *v;
	l->n++;
}

static void explain_done(void *arg, const struct verdict *v)
{
	struct explain_log *l = arg;

	l->r.calls++;
	l->r.v = *v;
}

static void explain_request(struct policy *p, enum policy_stage stage, struct explain_log *l)
{
	struct policy_request req;

	memset(&req, 0, sizeof req);
	memset(l, 0, sizeof *l);
	req.stage = stage;
	req.session_id = "explain";
	req.listener_role = "mx";
	req.sender = "";
	req.rcpt = "";
	req.rcpt_domain = "";
	policy_run_explain(p, &req, explain_each, l, explain_done, l);
	/* Checks that answer later (FAKE_LATER) need the loop; req outlives it. */
	ck_assert_int_eq(uv_run(&test_loop, UV_RUN_DEFAULT), 0);
}

static const struct {
	const char *label;
	enum fake_action action[4];
	enum verdict_kind want[4];
	enum verdict_kind done;
	const char *done_rule;    /* NULL: no rule decided */
} explain_cases[] = {
	{ "every rule continues", { FAKE_CONTINUE, FAKE_CONTINUE, FAKE_CONTINUE, FAKE_CONTINUE },
	  { VERDICT_CONTINUE, VERDICT_CONTINUE, VERDICT_CONTINUE, VERDICT_CONTINUE },
	  VERDICT_CONTINUE, NULL },
	{ "a refusal does not stop the walk",
	  { FAKE_CONTINUE, FAKE_REJECT, FAKE_TEMPFAIL, FAKE_CONTINUE },
	  { VERDICT_CONTINUE, VERDICT_REJECT, VERDICT_TEMPFAIL, VERDICT_CONTINUE },
	  VERDICT_REJECT, "b" },
	{ "the first decisive verdict is the answer",
	  { FAKE_TEMPFAIL, FAKE_REJECT, FAKE_REJECT, FAKE_CONTINUE },
	  { VERDICT_TEMPFAIL, VERDICT_REJECT, VERDICT_REJECT, VERDICT_CONTINUE },
	  VERDICT_TEMPFAIL, "a" },
	{ "a check that answers later, then the others",
	  { FAKE_LATER, FAKE_CONTINUE, FAKE_REJECT, FAKE_CONTINUE },
	  { VERDICT_REJECT, VERDICT_CONTINUE, VERDICT_REJECT, VERDICT_CONTINUE },
	  VERDICT_REJECT, "a" },
	{ "the last rule decides", { FAKE_CONTINUE, FAKE_CONTINUE, FAKE_CONTINUE, FAKE_REJECT },
	  { VERDICT_CONTINUE, VERDICT_CONTINUE, VERDICT_CONTINUE, VERDICT_REJECT },
	  VERDICT_REJECT, "d" },
};

/* Every rule of the stage is reported, in table order, and each one ran. */
START_TEST(test_explain_every_rule)
{
	const unsigned at = POLICY_AT(POLICY_STAGE_MAIL);
	const struct policy_check rows[] = {
		FAKE_ROW("a", at, POLICY_ROLES_ALL, 0),
		FAKE_ROW("b", at, POLICY_ROLES_ALL, 0),
		FAKE_ROW("c", at, POLICY_ROLES_ALL, 0),
		FAKE_ROW("d", at, POLICY_ROLES_ALL, 0),
	};
	static const char *const names[] = { "a", "b", "c", "d" };
	struct explain_log l;
	struct policy *p;

	fake_reset();
	for (int k = 0; k < 4; k++)
		fakes[k].action = explain_cases[_i].action[k];
	p = fake_policy(rows, 4);
	explain_request(p, POLICY_STAGE_MAIL, &l);
	ck_assert_msg(l.n == 4, "%s: %d rules reported", explain_cases[_i].label, l.n);
	for (int k = 0; k < 4; k++) {
		ck_assert_msg(strcmp(l.rule[k], names[k]) == 0 && l.ran[k] &&
		    l.v[k].kind == explain_cases[_i].want[k] && fakes[k].runs == 1,
		    "%s: report %d is %s %s (ran %d times), want %s %s", explain_cases[_i].label,
		    k, l.rule[k], verdict_kind_name(l.v[k].kind), fakes[k].runs, names[k],
		    verdict_kind_name(explain_cases[_i].want[k]));
	}
	ck_assert_msg(l.r.calls == 1 && l.after_done == 0, "%s: done %d times, %d reports "
	    "after it", explain_cases[_i].label, l.r.calls, l.after_done);
	ck_assert_msg(l.r.v.kind == explain_cases[_i].done, "%s: answer %s",
	    explain_cases[_i].label, verdict_kind_name(l.r.v.kind));
	if (explain_cases[_i].done_rule != NULL)
		ck_assert_str_eq(l.r.v.rule, explain_cases[_i].done_rule);
	/* A refusal keeps its words and codes in the report. */
	for (int k = 0; k < 4; k++)
		if (explain_cases[_i].action[k] == FAKE_REJECT) {
			ck_assert_int_eq(l.v[k].code, 554);
			ck_assert_str_eq(l.v[k].enh, "5.7.1");
			ck_assert_str_eq(l.v[k].rule, names[k]);
		}
	policy_free(p);
}
END_TEST

/*
 * A rule that times out is its tempfail; the rules after it are reported
 * as not run (the slow check still holds the call) and never run; a
 * decisive verdict before the timeout stays the answer. The late answer
 * is ignored and reports nothing.
 */
START_TEST(test_explain_timeout)
{
	static const struct {
		const char *label;
		enum fake_action first;
		enum verdict_kind done;
		const char *done_rule;
	} cases[] = {
		{ "timeout decides", FAKE_CONTINUE, VERDICT_TEMPFAIL, "slow" },
		{ "an earlier refusal stays the answer", FAKE_REJECT, VERDICT_REJECT, "first" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct policy_check rows[] = {
			FAKE_ROW("first", POLICY_AT(POLICY_STAGE_RCPT), POLICY_ROLES_ALL, 0),
			{ "slow", POLICY_AT(POLICY_STAGE_RCPT), POLICY_ROLES_ALL, 0, 20, fake_new,
			  fake_free, fake_run, NULL, NULL, NULL, NULL },
			FAKE_ROW("after", POLICY_AT(POLICY_STAGE_RCPT), POLICY_ROLES_ALL, 0),
			FAKE_ROW("last", POLICY_AT(POLICY_STAGE_RCPT), POLICY_ROLES_ALL, 0),
		};
		struct explain_log l;
		struct policy *p;
		struct verdict late;

		fake_reset();
		fakes[0].action = cases[i].first;
		fakes[1].action = FAKE_NEVER;
		p = fake_policy(rows, 4);
		explain_request(p, POLICY_STAGE_RCPT, &l);
		ck_assert_msg(l.n == 4, "%s: %d reports", cases[i].label, l.n);
		ck_assert_str_eq(l.rule[1], "slow");
		ck_assert(l.ran[1]);
		ck_assert_int_eq(l.v[1].kind, VERDICT_TEMPFAIL);
		ck_assert_int_eq(l.v[1].code, 451);
		ck_assert_str_eq(l.v[1].enh, "4.3.0");
		ck_assert_ptr_nonnull(strstr(l.v[1].text, "20 ms"));
		ck_assert_str_eq(l.rule[2], "after");
		ck_assert_str_eq(l.rule[3], "last");
		ck_assert_msg(!l.ran[2] && !l.ran[3], "%s: rules after the timeout reported as run",
		    cases[i].label);
		ck_assert_int_eq(fakes[2].runs + fakes[3].runs, 0);
		ck_assert_int_eq(l.r.calls, 1);
		ck_assert_int_eq(l.r.v.kind, cases[i].done);
		ck_assert_str_eq(l.r.v.rule, cases[i].done_rule);
		/* The late answer: ignored, nothing more reported, the call freed. */
		policy_verdict_set(&late, VERDICT_REJECT, 550, "5.7.1", "too late");
		policy_call_complete(fakes[1].held, &late);
		ck_assert_int_eq(uv_run(&test_loop, UV_RUN_DEFAULT), 0);
		ck_assert_int_eq(l.n, 4);
		ck_assert_int_eq(l.r.calls, 1);
		ck_assert_int_eq(l.after_done, 0);
		policy_free(p);
	}
}
END_TEST

/* A warn-only rule is reported as the CONTINUE it is, saying what it would do. */
START_TEST(test_explain_warn_only)
{
	const struct policy_check rows[] = {
		FAKE_ROW("dry", POLICY_AT(POLICY_STAGE_DATA), POLICY_ROLES_ALL,
		    POLICY_CHECK_WARN_ONLY),
		FAKE_ROW("real", POLICY_AT(POLICY_STAGE_DATA), POLICY_ROLES_ALL, 0),
	};
	struct explain_log l;
	struct policy *p;

	fake_reset();
	fakes[0].action = FAKE_REJECT;
	p = fake_policy(rows, 2);
	explain_request(p, POLICY_STAGE_DATA, &l);
	ck_assert_int_eq(l.n, 2);
	ck_assert_int_eq(l.v[0].kind, VERDICT_CONTINUE);
	ck_assert_int_eq(l.v[0].code, 0);
	ck_assert_ptr_nonnull(strstr(l.v[0].text, "would reject with 554 5.7.1: fake 0 says no"));
	ck_assert_int_eq(l.r.v.kind, VERDICT_CONTINUE);
	policy_free(p);
}
END_TEST

/* The ordinary run is unchanged by the explain mode beside it. */
START_TEST(test_explain_ordinary_run_still_stops)
{
	const struct policy_check rows[] = {
		FAKE_ROW("a", POLICY_AT(POLICY_STAGE_MAIL), POLICY_ROLES_ALL, 0),
		FAKE_ROW("b", POLICY_AT(POLICY_STAGE_MAIL), POLICY_ROLES_ALL, 0),
	};
	struct explain_log l;
	struct policy *p;
	struct policy_test_result r;

	fake_reset();
	fakes[0].action = FAKE_REJECT;
	p = fake_policy(rows, 2);
	explain_request(p, POLICY_STAGE_MAIL, &l);
	ck_assert_int_eq(fakes[1].runs, 1);
	r = fake_request(p, POLICY_STAGE_MAIL, "mx");
	ck_assert_int_eq(r.v.kind, VERDICT_REJECT);
	ck_assert_int_eq(fakes[1].runs, 1);   /* not run again by policy_run */
	policy_free(p);
}
END_TEST

static Suite *test_policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("relay");

	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_add_loop_test(tc, test_relay_table, 0,
	    (int)(sizeof relay_cases / sizeof relay_cases[0]));
	tcase_add_loop_test(tc, test_tenant_table, 0,
	    (int)(sizeof tenant_cases / sizeof tenant_cases[0]));
	tcase_add_test(tc, test_tenant_mailbox_added_live);
	tcase_add_test(tc, test_tenant_allow_external);
	tcase_add_test(tc, test_tenant_policy_getters);
	tcase_add_test(tc, test_stage_without_rules_continues);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_readonly_store_lookup);
	suite_add_tcase(s, tc);
	tc = tcase_create("table");
	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_add_test(tc, test_table_first_decisive_wins);
	tcase_add_test(tc, test_table_stage_and_role_filter);
	tcase_add_test(tc, test_table_timeout_tempfails);
	tcase_add_test(tc, test_table_async_completion);
	tcase_add_test(tc, test_table_warn_only);
	tcase_add_test(tc, test_table_after_queue_hook);
	tcase_add_test(tc, test_table_constructor_fails);
	tcase_add_test(tc, test_table_double_completion);
	suite_add_tcase(s, tc);
	tc = tcase_create("explain");
	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_add_loop_test(tc, test_explain_every_rule, 0,
	    (int)(sizeof explain_cases / sizeof explain_cases[0]));
	tcase_add_test(tc, test_explain_timeout);
	tcase_add_test(tc, test_explain_warn_only);
	tcase_add_test(tc, test_explain_ordinary_run_still_stops);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(test_policy_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
