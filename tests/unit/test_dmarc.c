/*
 * test_dmarc: the header rules and DMARC's pure logic (policy/stage_dmarc.h):
 * the field counts of the header scanner, the "headers" row's verdicts,
 * organizational domains with the public suffix list, relaxed and strict
 * alignment, picking and parsing records through libopendmarc, the
 * decision over struct authres (p=, sp=, pct=, temporary errors), and the
 * "dmarc" row run over a fake resolver that answers later from the loop
 * (the organizational domain's record, the own-domain rule, a transaction
 * that ends before the answer comes).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "common/rfc5322.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/authres.h"
#include "policy/check.h"
#include "policy/policy.h"
#include "policy/stage_dmarc.h"
#include "queue/queue.h"

policy_check_run_fn stage_headers_run;
policy_check_new_fn stage_dmarc_new;
policy_check_free_fn stage_dmarc_free;
policy_check_run_fn stage_dmarc_run;
policy_check_tx_new_fn stage_dmarc_tx_new;
policy_check_tx_free_fn stage_dmarc_tx_free;

static const struct policy_check td_rows[] = {
	{ .name = "headers", .stages = POLICY_AT(POLICY_STAGE_DATA), .roles = POLICY_ROLES_ALL,
	  .run = stage_headers_run },
	{ .name = "dmarc", .stages = POLICY_AT(POLICY_STAGE_DATA),
	  .roles = POLICY_ROLE(CFG_ROLE_MX), .create = stage_dmarc_new,
	  .destroy = stage_dmarc_free, .run = stage_dmarc_run, .tx_new = stage_dmarc_tx_new,
	  .tx_free = stage_dmarc_tx_free },
};

static uv_loop_t td_loop;
static char td_dir[64];
static struct queue_store *td_store;

/* ------------------------------------------------------------ helpers */

static void td_scan(struct rfc5322_scan *sc, const char *const *lines, size_t n)
{
	rfc5322_scan_init(sc);
	for (size_t i = 0; i < n; i++)
		rfc5322_scan_line(sc, lines[i], strlen(lines[i]));
	rfc5322_scan_line(sc, "", 0);
}

static struct dmarc_record td_rec(char p, char sp, char adkim, char aspf, int pct)
{
	struct dmarc_record r = { .p = p, .sp = sp, .adkim = adkim, .aspf = aspf, .pct = pct };

	return r;
}

static void td_spf(struct authres *ar, enum authres_result r, const char *domain)
{
	ar->spf.result = r;
	str_copy(ar->spf.domain, domain, sizeof ar->spf.domain);
}

static void td_dkim(struct authres *ar, enum authres_result r, const char *domain)
{
	ar->dkim[ar->ndkim].result = r;
	str_copy(ar->dkim[ar->ndkim].domain, domain, sizeof ar->dkim[0].domain);
	ar->ndkim++;
	ar->ndkim_total++;
}

static void td_setup(void)
{
	struct queue_txn *txn;
	struct queue_domain ours = { .name = "hanoi-city.org", .route = "smtp:127.0.0.1:2526",
		.accept_all = true };

	ck_assert_int_eq(uv_loop_init(&td_loop), 0);
	str_copy(td_dir, "/tmp/govrelay-dmarc-XXXXXX", sizeof td_dir);
	ck_assert_ptr_nonnull(mkdtemp(td_dir));
	ck_assert_int_eq(queue_store_open(td_dir, 64 << 20, false, &td_store), 0);
	ck_assert_int_eq(queue_txn_begin(td_store, true, &txn), 0);
	ck_assert_int_eq(queue_domain_put(txn, &ours), 0);
	ck_assert_int_eq(queue_txn_commit(txn), 0);
	/* Debian's publicsuffix package is a test dependency. */
	ck_assert_int_eq(dmarc_psl_load(DMARC_PSL_PATH), 0);
}

static void td_teardown(void)
{
	char cmd[128];

	ck_assert_int_eq(uv_run(&td_loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(&td_loop), 0);
	queue_store_close(td_store);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", td_dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* ----------------------------------------------------- header counts */

START_TEST(test_scan_counts)
{
	static const char *const lines[] = {
		"From: a@example.org", "Subject: one", "subject : two", "To: b@example.org",
		"\tc@example.org", "Message-Id: <x@y>", "Cc: d@example.org", "Date: today",
		"Sender: s@example.org", "Reply-To: r@example.org", "X-Subject: not counted",
	};
	struct rfc5322_scan *sc = xmalloc(sizeof *sc);

	td_scan(sc, lines, sizeof lines / sizeof lines[0]);
	ck_assert_uint_eq(sc->from_count, 1);
	ck_assert_uint_eq(sc->counts[RFC5322_F_FROM], 1);
	ck_assert_uint_eq(sc->counts[RFC5322_F_SUBJECT], 2);
	ck_assert_uint_eq(sc->counts[RFC5322_F_TO], 1);
	ck_assert_uint_eq(sc->counts[RFC5322_F_MESSAGE_ID], 1);
	ck_assert_uint_eq(sc->counts[RFC5322_F_CC], 1);
	ck_assert_uint_eq(sc->counts[RFC5322_F_DATE], 1);
	ck_assert_uint_eq(sc->counts[RFC5322_F_SENDER], 1);
	ck_assert_str_eq(sc->from, " a@example.org");
	ck_assert_str_eq(rfc5322_field_name(RFC5322_F_MESSAGE_ID), "Message-ID");
	/* After the header section nothing counts. */
	rfc5322_scan_line(sc, "From: body@example.org", 22);
	ck_assert_uint_eq(sc->counts[RFC5322_F_FROM], 1);
	free(sc);
}
END_TEST

/* --------------------------------------------------- the headers row */

struct td_result {
	bool done;
	struct verdict v;
};

static void td_done(void *arg, const struct verdict *v)
{
	struct td_result *r = arg;

	r->done = true;
	r->v = *v;
}

static struct policy *td_policy(void)
{
	struct policy *p = NULL;
	char err[256] = "";

	ck_assert_msg(policy_new_table(&td_loop, NULL, td_store, td_rows,
	    sizeof td_rows / sizeof td_rows[0], &p, err, sizeof err) == 0, "%s", err);
	return p;
}

static struct verdict td_headers(const char *const *lines, size_t n, bool trusted)
{
	struct rfc5322_scan *sc = xmalloc(sizeof *sc);
	struct policy *p = td_policy();
	struct policy_request req = { .stage = POLICY_STAGE_DATA, .session_id = "t",
		.client_addr = "192.0.2.1", .client_trusted = trusted,
		.listener_role = "submission", .sender = "a@example.org" };
	struct td_result r = { 0 };

	td_scan(sc, lines, n);
	req.headers = sc;
	policy_run(p, &req, td_done, &r);
	ck_assert(r.done);
	policy_free(p);
	free(sc);
	return r.v;
}

START_TEST(test_headers_row)
{
	static const char *const two_from[] = { "From: a@example.org", "Subject: x",
		"From: ceo@hanoi-city.org" };
	static const char *const two_subject[] = { "From: a@example.org", "Subject: x",
		"SUBJECT: y" };
	static const char *const two_msgid[] = { "From: a@example.org", "Message-ID: <1@x>",
		"Message-ID: <2@x>" };
	static const char *const no_from[] = { "Subject: x" };
	static const char *const fine[] = { "From: a@example.org", "To: b@example.org",
		"Subject: x", "Received: one", "Received: two" };
	struct verdict v;

	v = td_headers(two_from, 3, false);
	ck_assert_int_eq(v.kind, VERDICT_REJECT);
	ck_assert_int_eq(v.code, 550);
	ck_assert_str_eq(v.enh, "5.6.0");
	ck_assert_msg(strstr(v.text, "2 From: header fields") != NULL, "%s", v.text);
	ck_assert_str_eq(v.rule, "headers");
	v = td_headers(two_subject, 3, true);
	ck_assert_int_eq(v.kind, VERDICT_REJECT);
	ck_assert_msg(strstr(v.text, "2 Subject: header fields") != NULL, "%s", v.text);
	v = td_headers(two_msgid, 3, true);
	ck_assert_msg(strstr(v.text, "2 Message-ID: header fields") != NULL, "%s", v.text);
	/* No From: is for the tenant and dmarc rows to judge (existing behaviour kept). */
	v = td_headers(no_from, 1, true);
	ck_assert_int_eq(v.kind, VERDICT_CONTINUE);
	v = td_headers(fine, 5, false);
	ck_assert_int_eq(v.kind, VERDICT_CONTINUE);
}
END_TEST

/* ------------------------------------------- organizational domains */

START_TEST(test_org_domain)
{
	char o[256];

	dmarc_org_domain("a.b.example.org", o, sizeof o);
	ck_assert_str_eq(o, "example.org");
	dmarc_org_domain("example.org", o, sizeof o);
	ck_assert_str_eq(o, "example.org");
	dmarc_org_domain("Mail.Example.ORG.", o, sizeof o);
	ck_assert_str_eq(o, "example.org");
	/* gov.vn and co.uk are public suffixes. */
	dmarc_org_domain("mail.hanoi.gov.vn", o, sizeof o);
	ck_assert_str_eq(o, "hanoi.gov.vn");
	dmarc_org_domain("a.b.shop.co.uk", o, sizeof o);
	ck_assert_str_eq(o, "shop.co.uk");
	/* A suffix the list does not know: the default rule "*". */
	dmarc_org_domain("a.b.c.unknowntld", o, sizeof o);
	ck_assert_str_eq(o, "c.unknowntld");
}
END_TEST

START_TEST(test_alignment)
{
	ck_assert(dmarc_aligned("example.org", "example.org", 's'));
	ck_assert(dmarc_aligned("EXAMPLE.org.", "example.org", 's'));
	ck_assert(dmarc_aligned("mail.example.org", "example.org", 'r'));
	ck_assert(!dmarc_aligned("mail.example.org", "example.org", 's'));
	ck_assert(dmarc_aligned("example.org", "news.example.org", 'r'));
	ck_assert(!dmarc_aligned("example.net", "example.org", 'r'));
	/* Two agencies under gov.vn are different organizations. */
	ck_assert(!dmarc_aligned("hanoi.gov.vn", "hue.gov.vn", 'r'));
	ck_assert(!dmarc_aligned("", "example.org", 'r'));
	ck_assert(!dmarc_aligned("gov.vn", "hanoi.gov.vn", 'r'));
}
END_TEST

/* ----------------------------------------------------------- records */

static int td_pick1(const char *txt, struct dmarc_record *rec)
{
	const char *rr[] = { txt };
	size_t len[] = { strlen(txt) };
	const char *why = NULL;

	return dmarc_record_pick(rr, len, 1, rec, &why);
}

START_TEST(test_record_pick)
{
	struct dmarc_record rec;
	const char *why = NULL;
	const char *rr[3];
	size_t len[3];

	ck_assert_int_eq(td_pick1("v=DMARC1; p=reject", &rec), 1);
	ck_assert_int_eq(rec.p, 'r');
	ck_assert_int_eq(rec.sp, '\0');
	ck_assert_int_eq(rec.adkim, 'r');
	ck_assert_int_eq(rec.aspf, 'r');
	ck_assert_int_eq(rec.pct, 100);
	ck_assert(!rec.at_org);
	ck_assert_int_eq(td_pick1("v=DMARC1;p=quarantine;sp=none;adkim=s;aspf=s;pct=20;"
	    "rua=mailto:d@example.org", &rec), 1);
	ck_assert_int_eq(rec.p, 'q');
	ck_assert_int_eq(rec.sp, 'n');
	ck_assert_int_eq(rec.adkim, 's');
	ck_assert_int_eq(rec.aspf, 's');
	ck_assert_int_eq(rec.pct, 20);
	ck_assert_int_eq(td_pick1("v=DMARC1; p=none", &rec), 1);
	ck_assert_int_eq(rec.p, 'n');
	/* Not DMARC, no p=, a bad p=, a bad pct=: no record. */
	ck_assert_int_eq(td_pick1("v=spf1 -all", &rec), 0);
	ck_assert_int_eq(td_pick1("v=DMARC1; p=bogus", &rec), 0);
	ck_assert_int_eq(td_pick1("v=DMARC1; rua=not a uri", &rec), 0);
	/* RFC 7489 6.6.3 step 6: no valid p= but a valid rua=: p=none. */
	ck_assert_int_eq(td_pick1("v=DMARC1; rua=mailto:x@example.org", &rec), 1);
	ck_assert_int_eq(rec.p, 'n');
	ck_assert_int_eq(td_pick1("v=DMARC1; p=bogus; rua = mailto:x@example.org", &rec), 1);
	ck_assert_int_eq(rec.p, 'n');
	ck_assert_int_eq(rec.pct, 100);
	/* So does a bad sp=, whatever p= says; without rua= it is no record. */
	ck_assert_int_eq(td_pick1("v=DMARC1; p=reject; sp=bogus; rua=mailto:x@example.org",
	    &rec), 1);
	ck_assert_int_eq(rec.p, 'n');
	ck_assert_int_eq(td_pick1("v=DMARC1; p=reject; sp=bogus", &rec), 0);
	ck_assert_int_eq(td_pick1("v=DMARC1; p=reject; pct=150", &rec), 0);
	ck_assert_int_eq(td_pick1("v=DMARC10; p=reject", &rec), 0);
	/* Other TXT records beside it are ignored; two DMARC records are none. */
	rr[0] = "google-site-verification=abc";
	rr[1] = "v=DMARC1; p=reject";
	rr[2] = "v=DMARC1; p=none";
	for (size_t i = 0; i < 3; i++)
		len[i] = strlen(rr[i]);
	ck_assert_int_eq(dmarc_record_pick(rr, len, 2, &rec, &why), 1);
	ck_assert_int_eq(rec.p, 'r');
	ck_assert_int_eq(dmarc_record_pick(rr, len, 3, &rec, &why), 0);
	ck_assert_str_eq(why, "more than one DMARC record");
	/* A NUL byte inside makes it no record. */
	rr[0] = "v=DMARC1; p=reject\0; p=none";
	len[0] = 27;
	ck_assert_int_eq(dmarc_record_pick(rr, len, 1, &rec, &why), 0);
}
END_TEST

/* ---------------------------------------------------------- decision */

START_TEST(test_evaluate_policies)
{
	struct authres ar;
	struct authres_dmarc out;
	struct dmarc_record rec;

	memset(&ar, 0, sizeof ar);
	td_spf(&ar, AUTHRES_PASS, "bounce.elsewhere.net");
	td_dkim(&ar, AUTHRES_PASS, "elsewhere.net");
	rec = td_rec('r', 0, 'r', 'r', 100);
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", &rec, false, 99, &out),
	    DMARC_DISP_REJECT);
	ck_assert_int_eq(out.result, AUTHRES_FAIL);
	ck_assert_str_eq(out.policy, "reject");
	ck_assert_str_eq(out.from_domain, "example.org");
	ck_assert(!out.spf_aligned && !out.dkim_aligned);
	rec.p = 'q';
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", &rec, false, 0, &out),
	    DMARC_DISP_QUARANTINE);
	rec.p = 'n';
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", &rec, false, 0, &out),
	    DMARC_DISP_NONE);
	ck_assert_int_eq(out.result, AUTHRES_FAIL);
	ck_assert_str_eq(out.policy, "none");
	/* No record: none, whatever the checks said. */
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", NULL, false, 0, &out),
	    DMARC_DISP_NONE);
	ck_assert_int_eq(out.result, AUTHRES_NONE);
	ck_assert_str_eq(out.policy, "");
}
END_TEST

START_TEST(test_evaluate_alignment)
{
	struct authres ar;
	struct authres_dmarc out;
	struct dmarc_record rec = td_rec('r', 0, 'r', 'r', 100);

	/* SPF of a subdomain: relaxed passes, strict fails. */
	memset(&ar, 0, sizeof ar);
	td_spf(&ar, AUTHRES_PASS, "mail.example.org");
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", &rec, false, 0, &out),
	    DMARC_DISP_NONE);
	ck_assert_int_eq(out.result, AUTHRES_PASS);
	ck_assert(out.spf_aligned);
	rec.aspf = 's';
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", &rec, false, 0, &out),
	    DMARC_DISP_REJECT);
	ck_assert_int_eq(out.result, AUTHRES_FAIL);
	ck_assert(!out.spf_aligned);
	/* A softfail is no pass, aligned or not. */
	rec.aspf = 'r';
	td_spf(&ar, AUTHRES_SOFTFAIL, "example.org");
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", &rec, false, 0, &out),
	    DMARC_DISP_REJECT);
	/* DKIM: a failing aligned signature does not help; a passing one does. */
	td_dkim(&ar, AUTHRES_FAIL, "example.org");
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", &rec, false, 0, &out),
	    DMARC_DISP_REJECT);
	td_dkim(&ar, AUTHRES_PASS, "news.example.org");
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", &rec, false, 0, &out),
	    DMARC_DISP_NONE);
	ck_assert(out.dkim_aligned);
	ck_assert_int_eq(out.result, AUTHRES_PASS);
	rec.adkim = 's';
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", &rec, false, 0, &out),
	    DMARC_DISP_REJECT);
	ck_assert(!out.dkim_aligned);
}
END_TEST

START_TEST(test_evaluate_pct_and_sp)
{
	struct authres ar;
	struct authres_dmarc out;
	struct dmarc_record rec = td_rec('r', 0, 'r', 'r', 0);

	memset(&ar, 0, sizeof ar);
	td_spf(&ar, AUTHRES_FAIL, "example.org");
	/* pct=0: never applied; the next milder policy (RFC 7489 6.6.4). */
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", &rec, false, 0, &out),
	    DMARC_DISP_QUARANTINE);
	ck_assert_int_eq(out.result, AUTHRES_FAIL);
	ck_assert_msg(strstr(out.reason, "pct=0") != NULL, "%s", out.reason);
	rec.p = 'q';
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", &rec, false, 0, &out),
	    DMARC_DISP_NONE);
	/* pct=30: rolls 0..29 get the policy, 30..99 do not. */
	rec.pct = 30;
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", &rec, false, 29, &out),
	    DMARC_DISP_QUARANTINE);
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", &rec, false, 30, &out),
	    DMARC_DISP_NONE);
	/* sp= applies to a subdomain whose record came from the org domain. */
	rec = td_rec('r', 'q', 'r', 'r', 100);
	rec.at_org = true;
	ck_assert_int_eq(dmarc_evaluate(&ar, "sub.example.org", &rec, false, 0, &out),
	    DMARC_DISP_QUARANTINE);
	ck_assert_str_eq(out.policy, "quarantine");
	rec.sp = 0;
	ck_assert_int_eq(dmarc_evaluate(&ar, "sub.example.org", &rec, false, 0, &out),
	    DMARC_DISP_REJECT);
	/* The From: domain's own record: p=, never sp=. */
	rec = td_rec('n', 'r', 'r', 'r', 100);
	ck_assert_int_eq(dmarc_evaluate(&ar, "sub.example.org", &rec, false, 0, &out),
	    DMARC_DISP_NONE);
}
END_TEST

START_TEST(test_evaluate_temperror)
{
	struct authres ar;
	struct authres_dmarc out;
	struct dmarc_record rec = td_rec('r', 0, 'r', 'r', 100);

	memset(&ar, 0, sizeof ar);
	td_spf(&ar, AUTHRES_FAIL, "example.org");
	/* The record could not be fetched and nothing passed: defer. */
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", NULL, true, 0, &out),
	    DMARC_DISP_DEFER);
	ck_assert_int_eq(out.result, AUTHRES_TEMPERROR);
	/* An aligned pass needs no record to be delivered. */
	td_dkim(&ar, AUTHRES_PASS, "example.org");
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", NULL, true, 0, &out),
	    DMARC_DISP_NONE);
	ck_assert_int_eq(out.result, AUTHRES_TEMPERROR);
	/* An aligned DKIM key that could not be fetched: defer, not reject. */
	memset(&ar, 0, sizeof ar);
	td_spf(&ar, AUTHRES_FAIL, "example.org");
	td_dkim(&ar, AUTHRES_TEMPERROR, "example.org");
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", &rec, false, 0, &out),
	    DMARC_DISP_DEFER);
	ck_assert_int_eq(out.result, AUTHRES_TEMPERROR);
	/* ... but under p=none there is nothing to wait for. */
	rec.p = 'n';
	ck_assert_int_eq(dmarc_evaluate(&ar, "example.org", &rec, false, 0, &out),
	    DMARC_DISP_NONE);
	ck_assert_int_eq(out.result, AUTHRES_FAIL);
}
END_TEST

/* ------------------------------------------- the row over a resolver */

struct td_zone {
	const char *name;
	enum policy_dns_status status;
	const char *txt;
};

static const struct td_zone td_zones[] = {
	{ "_dmarc.reject.org", POLICY_DNS_OK, "v=DMARC1; p=reject" },
	{ "_dmarc.quarantine.org", POLICY_DNS_OK, "v=DMARC1; p=quarantine" },
	{ "_dmarc.parent.org", POLICY_DNS_OK, "v=DMARC1; p=none; sp=reject" },
	{ "_dmarc.broken.org", POLICY_DNS_TEMPFAIL, NULL },
};

struct td_answer {
	uv_timer_t timer;
	policy_dns_cb *cb;
	void *arg;
	const struct td_zone *z;
};

static unsigned td_queries;
static char td_asked[4][128];

static void td_answer_closed(uv_handle_t *h)
{
	free(h->data);
}

static void td_answer_cb(uv_timer_t *t)
{
	struct td_answer *a = t->data;
	struct policy_dns_answer ans = { .status = POLICY_DNS_NXDOMAIN, .error = "" };
	const char *rr[1];
	size_t len[1];

	if (a->z != NULL) {
		ans.status = a->z->status;
		if (a->z->txt != NULL) {
			rr[0] = a->z->txt;
			len[0] = strlen(a->z->txt);
			ans.n = 1;
			ans.rr = rr;
			ans.len = len;
		}
		if (ans.status == POLICY_DNS_TEMPFAIL)
			ans.error = "test: server failure";
	}
	a->cb(a->arg, &ans);
	uv_close((uv_handle_t *)t, td_answer_closed);
}

static int td_lookup(void *ctx, enum policy_dns_kind kind, const char *name, policy_dns_cb *cb,
    void *arg)
{
	struct td_answer *a = xcalloc(1, sizeof *a);

	(void)ctx;
	ck_assert_int_eq(kind, POLICY_DNS_TXT);
	if (td_queries < 4)
		str_copy(td_asked[td_queries], name, sizeof td_asked[0]);
	td_queries++;
	for (size_t i = 0; i < sizeof td_zones / sizeof td_zones[0]; i++)
		if (strcmp(td_zones[i].name, name) == 0)
			a->z = &td_zones[i];
	a->cb = cb;
	a->arg = arg;
	uv_timer_init(&td_loop, &a->timer);
	a->timer.data = a;
	uv_timer_start(&a->timer, td_answer_cb, 1, 0);
	return 0;
}

/*
 * One DATA request from outside with header line (none when NULL) and
 * ar's SPF/DKIM results; from: the From: domain DMARC must find, or NULL
 * when the message is refused before DMARC looks it up.
 */
static struct verdict td_run_line(const char *line, const char *from, const struct authres *ar,
    char *notes, size_t noteslen, bool free_early)
{
	struct policy_resolver res = { .ctx = NULL, .lookup = td_lookup };
	struct rfc5322_scan *sc = xmalloc(sizeof *sc);
	struct policy *p = td_policy();
	struct policy_tx *tx;
	struct policy_request req = { .stage = POLICY_STAGE_DATA, .session_id = "t",
		.client_addr = "192.0.2.1", .listener_role = "mx", .sender = "x@elsewhere.net" };
	struct td_result r = { 0 };
	const char *lines[1] = { line };

	td_scan(sc, lines, line != NULL ? 1 : 0);
	policy_set_resolver(p, &res);
	tx = policy_tx_new(p, "mx", "t");
	*policy_tx_authres(tx) = *ar;
	req.headers = sc;
	req.tx = tx;
	td_queries = 0;
	policy_run(p, &req, td_done, &r);
	if (free_early) {
		/* The transaction ends before the answer: the answer must not touch it. */
		policy_tx_free(tx);
		tx = NULL;
	}
	ck_assert_int_eq(uv_run(&td_loop, UV_RUN_DEFAULT), 0);
	ck_assert(r.done);
	if (tx != NULL) {
		str_copy(notes, policy_tx_notes(tx), noteslen);
		ck_assert_str_eq(policy_tx_authres(tx)->dmarc.from_domain, from != NULL ? from : "");
		policy_tx_free(tx);
	}
	policy_free(p);
	free(sc);
	return r.v;
}

static struct verdict td_run(const char *from, const struct authres *ar, char *notes,
    size_t noteslen, bool free_early)
{
	char line[300];

	snprintf(line, sizeof line, "From: Someone <someone@%s>", from);
	return td_run_line(line, from, ar, notes, noteslen, free_early);
}

START_TEST(test_row_from_rules)
{
	struct authres ar;
	struct verdict v;
	char notes[2048] = "";

	memset(&ar, 0, sizeof ar);
	/* No From: from outside: nothing for DMARC to check, refused. */
	v = td_run_line(NULL, NULL, &ar, notes, sizeof notes, false);
	ck_assert_int_eq(v.kind, VERDICT_REJECT);
	ck_assert_str_eq(v.enh, "5.6.0");
	ck_assert_msg(strstr(v.text, "no From:") != NULL, "%s", v.text);
	ck_assert_uint_eq(td_queries, 0);
	/* Authors in two domains: which one would DMARC check? Refused. */
	v = td_run_line("From: a@none.org, b@hanoi-city.org", NULL, &ar, notes, sizeof notes,
	    false);
	ck_assert_int_eq(v.kind, VERDICT_REJECT);
	ck_assert_str_eq(v.enh, "5.7.1");
	/* Two authors of one domain: that domain. */
	v = td_run_line("From: a@reject.org, b@Reject.ORG", "reject.org", &ar, notes,
	    sizeof notes, false);
	ck_assert_int_eq(v.kind, VERDICT_REJECT);
	ck_assert_msg(strstr(v.text, "DMARC policy of reject.org") != NULL, "%s", v.text);
	/* An unreadable From: */
	v = td_run_line("From: <a@@b>", NULL, &ar, notes, sizeof notes, false);
	ck_assert_int_eq(v.kind, VERDICT_REJECT);
	ck_assert_str_eq(v.enh, "5.6.0");
}
END_TEST

START_TEST(test_row_policies)
{
	struct authres ar;
	struct verdict v;
	char notes[2048] = "";

	memset(&ar, 0, sizeof ar);
	td_spf(&ar, AUTHRES_PASS, "elsewhere.net");
	v = td_run("reject.org", &ar, notes, sizeof notes, false);
	ck_assert_int_eq(v.kind, VERDICT_REJECT);
	ck_assert_int_eq(v.code, 550);
	ck_assert_str_eq(v.enh, "5.7.1");
	ck_assert_msg(strstr(notes, "dmarc=fail") != NULL, "%s", notes);
	ck_assert_msg(strstr(notes, "header_from=reject.org") != NULL, "%s", notes);
	ck_assert_msg(strstr(notes, "dmarc_disposition=reject") != NULL, "%s", notes);
	ck_assert_msg(strstr(notes, "dmarc_spf=pass") != NULL, "%s", notes);
	ck_assert_msg(strstr(notes, "dmarc_spf_aligned=no") != NULL, "%s", notes);
	ck_assert_uint_eq(td_queries, 1);

	v = td_run("quarantine.org", &ar, notes, sizeof notes, false);
	ck_assert_int_eq(v.kind, VERDICT_QUARANTINE);
	ck_assert_str_eq(v.text, "DMARC policy of quarantine.org says quarantine");

	/* No record at the subdomain: the org domain's, with its sp=reject. */
	v = td_run("news.parent.org", &ar, notes, sizeof notes, false);
	ck_assert_int_eq(v.kind, VERDICT_REJECT);
	ck_assert_uint_eq(td_queries, 2);
	ck_assert_str_eq(td_asked[0], "_dmarc.news.parent.org");
	ck_assert_str_eq(td_asked[1], "_dmarc.parent.org");
	/* The org domain itself: p=none. */
	v = td_run("parent.org", &ar, notes, sizeof notes, false);
	ck_assert_int_eq(v.kind, VERDICT_CONTINUE);

	/* Aligned: passes even under p=reject. */
	td_spf(&ar, AUTHRES_PASS, "mail.reject.org");
	v = td_run("reject.org", &ar, notes, sizeof notes, false);
	ck_assert_int_eq(v.kind, VERDICT_CONTINUE);
	ck_assert_msg(strstr(notes, "dmarc=pass") != NULL, "%s", notes);
	ck_assert_msg(strstr(notes, "dmarc_spf_aligned=yes") != NULL, "%s", notes);

	/* No record anywhere: none. */
	td_spf(&ar, AUTHRES_FAIL, "elsewhere.net");
	v = td_run("norecord.org", &ar, notes, sizeof notes, false);
	ck_assert_int_eq(v.kind, VERDICT_CONTINUE);
	ck_assert_msg(strstr(notes, "dmarc=none") != NULL, "%s", notes);

	/* A DNS failure without an aligned pass: 451 4.7.0. */
	v = td_run("broken.org", &ar, notes, sizeof notes, false);
	ck_assert_int_eq(v.kind, VERDICT_TEMPFAIL);
	ck_assert_int_eq(v.code, 451);
	ck_assert_str_eq(v.enh, "4.7.0");
	ck_assert_msg(strstr(notes, "dmarc=temperror") != NULL, "%s", notes);
}
END_TEST

START_TEST(test_row_own_domain)
{
	struct authres ar;
	struct verdict v;
	char notes[2048] = "";

	/* One of our domains, no DMARC record published, nothing aligned: refused. */
	memset(&ar, 0, sizeof ar);
	td_spf(&ar, AUTHRES_PASS, "elsewhere.net");
	v = td_run("hanoi-city.org", &ar, notes, sizeof notes, false);
	ck_assert_int_eq(v.kind, VERDICT_REJECT);
	ck_assert_int_eq(v.code, 550);
	ck_assert_str_eq(v.enh, "5.7.1");
	ck_assert_str_eq(v.rule, "dmarc-own-domain");
	ck_assert_msg(strstr(notes, "dmarc_disposition=reject") != NULL, "%s", notes);
	/* Below one of ours too. */
	v = td_run("mail.hanoi-city.org", &ar, notes, sizeof notes, false);
	ck_assert_int_eq(v.kind, VERDICT_REJECT);
	/* A DKIM signature of ours that verifies: welcome. */
	td_dkim(&ar, AUTHRES_PASS, "hanoi-city.org");
	v = td_run("hanoi-city.org", &ar, notes, sizeof notes, false);
	ck_assert_int_eq(v.kind, VERDICT_CONTINUE);
}
END_TEST

START_TEST(test_row_tx_ends_first)
{
	struct authres ar;
	struct verdict v;
	char notes[16] = "";

	memset(&ar, 0, sizeof ar);
	v = td_run("reject.org", &ar, notes, sizeof notes, true);
	/* The call still completes once; the freed transaction is not touched. */
	ck_assert_int_eq(v.kind, VERDICT_CONTINUE);
}
END_TEST

static Suite *td_suite(void)
{
	Suite *s = suite_create("dmarc");
	TCase *tc = tcase_create("dmarc");

	tcase_add_checked_fixture(tc, td_setup, td_teardown);
	tcase_add_test(tc, test_scan_counts);
	tcase_add_test(tc, test_headers_row);
	tcase_add_test(tc, test_org_domain);
	tcase_add_test(tc, test_alignment);
	tcase_add_test(tc, test_record_pick);
	tcase_add_test(tc, test_evaluate_policies);
	tcase_add_test(tc, test_evaluate_alignment);
	tcase_add_test(tc, test_evaluate_pct_and_sp);
	tcase_add_test(tc, test_evaluate_temperror);
	tcase_add_test(tc, test_row_from_rules);
	tcase_add_test(tc, test_row_policies);
	tcase_add_test(tc, test_row_own_domain);
	tcase_add_test(tc, test_row_tx_ends_first);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(td_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
