/*
 * test_spf: the SPF evaluation of policy/spf.c over a fake resolver (a
 * table here), without the engine: every result, the RFC 7208 limits
 * (10 DNS-querying terms, 2 void lookups, 10 MX names), the records our
 * layer refuses before libspf2 sees them (macros against section 7.1,
 * lengths), DNS failure as temperror, the null sender's HELO identity,
 * loopback clients evaluated like any other, the type-99 query never
 * asked, and the Received-SPF field; the `spf` configuration key.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "policy/check.h"
#include "policy/spf.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

#define N_CASES(a) (int)(sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------- fake resolver */

struct fake_rr {
	enum policy_dns_kind kind;
	const char *name;
	enum policy_dns_status status;
	const char *rr[12];
};

static const struct fake_rr zone[] = {
	{ POLICY_DNS_TXT, "pass.example.org", POLICY_DNS_OK,
	  { "v=spf1 ip4:192.0.2.0/24 -all" } },
	{ POLICY_DNS_TXT, "fail.example.org", POLICY_DNS_OK, { "v=spf1 ip4:198.51.100.1 -all" } },
	{ POLICY_DNS_TXT, "soft.example.org", POLICY_DNS_OK, { "v=spf1 ~all" } },
	{ POLICY_DNS_TXT, "neutral.example.org", POLICY_DNS_OK, { "v=spf1 ?all" } },
	{ POLICY_DNS_TXT, "empty.example.org", POLICY_DNS_OK, { "v=spf1" } },
	{ POLICY_DNS_TXT, "other.example.org", POLICY_DNS_OK, { "google-site-verification=x" } },
	{ POLICY_DNS_TXT, "two.example.org", POLICY_DNS_OK,
	  { "v=spf1 -all", "v=spf1 +all" } },
	{ POLICY_DNS_TXT, "temp.example.org", POLICY_DNS_TEMPFAIL, { NULL } },
	{ POLICY_DNS_TXT, "inc.example.org", POLICY_DNS_OK,
	  { "v=spf1 include:pass.example.org -all" } },
	{ POLICY_DNS_TXT, "inctemp.example.org", POLICY_DNS_OK,
	  { "v=spf1 include:temp.example.org -all" } },
	{ POLICY_DNS_TXT, "a.example.org", POLICY_DNS_OK, { "v=spf1 a -all" } },
	{ POLICY_DNS_A, "a.example.org", POLICY_DNS_OK, { "192.0.2.7" } },
	{ POLICY_DNS_TXT, "loop.example.org", POLICY_DNS_OK, { "v=spf1 ip4:127.0.0.2 -all" } },
	{ POLICY_DNS_TXT, "v6.example.org", POLICY_DNS_OK, { "v=spf1 ip6:2001:db8::/32 -all" } },
	{ POLICY_DNS_TXT, "mx.example.org", POLICY_DNS_OK, { "v=spf1 mx -all" } },
	{ POLICY_DNS_MX, "mx.example.org", POLICY_DNS_OK, { "mail.example.org" } },
	{ POLICY_DNS_A, "mail.example.org", POLICY_DNS_OK, { "192.0.2.25" } },
	{ POLICY_DNS_TXT, "manymx.example.org", POLICY_DNS_OK, { "v=spf1 mx -all" } },
	{ POLICY_DNS_MX, "manymx.example.org", POLICY_DNS_OK,
	  { "m1.example.org", "m2.example.org", "m3.example.org", "m4.example.org",
	    "m5.example.org", "m6.example.org", "m7.example.org", "m8.example.org",
	    "m9.example.org", "m10.example.org", "m11.example.org" } },
	{ POLICY_DNS_TXT, "exists.example.org", POLICY_DNS_OK,
	  { "v=spf1 exists:%{ir}.%{v}._spf.%{d} -all" } },
	{ POLICY_DNS_A, "1.2.0.192.in-addr._spf.exists.example.org", POLICY_DNS_OK,
	  { "127.0.0.2" } },
	{ POLICY_DNS_TXT, "void.example.org", POLICY_DNS_OK,
	  { "v=spf1 a:n1.example.org a:n2.example.org a:n3.example.org -all" } },
	{ POLICY_DNS_TXT, "void2.example.org", POLICY_DNS_OK,
	  { "v=spf1 a:n1.example.org a:n2.example.org ip4:192.0.2.1 -all" } },
	{ POLICY_DNS_TXT, "i11.example.org", POLICY_DNS_OK,
	  { "v=spf1 include:e1.example.org include:e2.example.org include:e3.example.org "
	    "include:e4.example.org include:e5.example.org include:e6.example.org "
	    "include:e7.example.org include:e8.example.org include:e9.example.org "
	    "include:e10.example.org include:e11.example.org -all" } },
	{ POLICY_DNS_TXT, "i11last.example.org", POLICY_DNS_OK,
	  { "v=spf1 include:e1.example.org include:e2.example.org include:e3.example.org "
	    "include:e4.example.org include:e5.example.org include:e6.example.org "
	    "include:e7.example.org include:e8.example.org include:e9.example.org "
	    "include:e10.example.org include:e11.example.org" } },
	{ POLICY_DNS_TXT, "i10.example.org", POLICY_DNS_OK,
	  { "v=spf1 include:e1.example.org include:e2.example.org include:e3.example.org "
	    "include:e4.example.org include:e5.example.org include:e6.example.org "
	    "include:e7.example.org include:e8.example.org include:e9.example.org "
	    "include:e10.example.org -all" } },
	{ POLICY_DNS_TXT, "badmacro.example.org", POLICY_DNS_OK,
	  { "v=spf1 exists:%{d0}.example.org -all" } },
	{ POLICY_DNS_TXT, "bigdigit.example.org", POLICY_DNS_OK,
	  { "v=spf1 exists:%{d999999999999}.example.org -all" } },
	{ POLICY_DNS_TXT, "crt.example.org", POLICY_DNS_OK, { "v=spf1 exists:%{c}.x.org -all" } },
	{ POLICY_DNS_TXT, "incbad.example.org", POLICY_DNS_OK,
	  { "v=spf1 include:badmacro.example.org ip4:192.0.2.1 -all" } },
	{ POLICY_DNS_TXT, "under.example.org", POLICY_DNS_OK,
	  { "v=spf1 a:%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_%_.x.org -all" } },
	{ POLICY_DNS_TXT, "redir.example.org", POLICY_DNS_OK,
	  { "v=spf1 redirect=fail.example.org" } },
	{ POLICY_DNS_TXT, "exp.example.org", POLICY_DNS_OK,
	  { "v=spf1 -all exp=why.example.org" } },
	{ POLICY_DNS_TXT, "why.example.org", POLICY_DNS_OK, { "%{i} may not send for %{d}" } },
	{ POLICY_DNS_TXT, "helo.example.org", POLICY_DNS_OK, { "v=spf1 ip4:192.0.2.9 -all" } },
	{ POLICY_DNS_TXT, "nul.example.org", POLICY_DNS_OK, { "v=spf1 -all" } },
	{ POLICY_DNS_TXT, "ptr.example.org", POLICY_DNS_OK, { "v=spf1 ptr -all" } },
	{ POLICY_DNS_PTR, "1.0.0.127.in-addr.arpa", POLICY_DNS_OK, { "mail.ptr.example.org" } },
	{ POLICY_DNS_A, "mail.ptr.example.org", POLICY_DNS_OK, { "127.0.0.1" } },
	{ POLICY_DNS_TXT, "syntax.example.org", POLICY_DNS_OK, { "v=spf1 foo:bar -all" } },
};

struct fake {
	unsigned asked;
	char last[256];
};

static void fake_lookup(void *arg, enum policy_dns_kind kind, const char *name,
    struct spf_dns_reply *out)
{
	struct fake *f = arg;
	struct policy_dns_answer ans = { POLICY_DNS_NXDOMAIN, 0, NULL, NULL, "", 300 };
	bool name_seen = false;

	f->asked++;
	snprintf(f->last, sizeof f->last, "%s", name);
	for (size_t i = 0; i < sizeof zone / sizeof zone[0]; i++) {
		if (strcasecmp(zone[i].name, name) != 0)
			continue;
		name_seen = true;
		if (zone[i].kind != kind)
			continue;
		ans.status = zone[i].status;
		for (ans.n = 0; zone[i].rr[ans.n] != NULL; ans.n++)
			;
		ans.rr = zone[i].rr;
		ans.error = zone[i].status == POLICY_DNS_TEMPFAIL ? "SERVFAIL" : "";
		spf_dns_reply_set(out, &ans);
		return;
	}
	/* e1..e11.example.org: one empty record each, never matching. */
	if (strncmp(name, "e", 1) == 0 && strstr(name, ".example.org") != NULL &&
	    kind == POLICY_DNS_TXT) {
		static const char *const rec[] = { "v=spf1 ip4:203.0.113.250" };

		ans.status = POLICY_DNS_OK;
		ans.n = 1;
		ans.rr = rec;
	} else if (name_seen) {
		ans.status = POLICY_DNS_NODATA;
	}
	spf_dns_reply_set(out, &ans);
}

/* ------------------------------------------------------------- results */

static const struct eval_case {
	const char *ip, *helo, *sender;
	enum authres_result want;
	const char *reason_has;  /* NULL: not checked */
} eval_cases[] = {
	{ "192.0.2.1", "h.example.net", "a@pass.example.org", AUTHRES_PASS, NULL },
	{ "192.0.2.1", "h.example.net", "a@fail.example.org", AUTHRES_FAIL, NULL },
	{ "192.0.2.1", "h.example.net", "a@soft.example.org", AUTHRES_SOFTFAIL, NULL },
	{ "192.0.2.1", "h.example.net", "a@neutral.example.org", AUTHRES_NEUTRAL, NULL },
	{ "192.0.2.1", "h.example.net", "a@empty.example.org", AUTHRES_NEUTRAL, NULL },
	{ "192.0.2.1", "h.example.net", "a@other.example.org", AUTHRES_NONE, NULL },
	{ "192.0.2.1", "h.example.net", "a@nowhere.example.org", AUTHRES_NONE, NULL },
	{ "192.0.2.1", "h.example.net", "a@two.example.org", AUTHRES_PERMERROR, NULL },
	{ "192.0.2.1", "h.example.net", "a@temp.example.org", AUTHRES_TEMPERROR, "SERVFAIL" },
	{ "192.0.2.1", "h.example.net", "a@inc.example.org", AUTHRES_PASS, NULL },
	{ "198.51.100.9", "h.example.net", "a@inc.example.org", AUTHRES_FAIL, NULL },
	{ "192.0.2.1", "h.example.net", "a@inctemp.example.org", AUTHRES_TEMPERROR, NULL },
	{ "192.0.2.7", "h.example.net", "a@a.example.org", AUTHRES_PASS, NULL },
	{ "192.0.2.8", "h.example.net", "a@a.example.org", AUTHRES_FAIL, NULL },
	/* No free ride for loopback clients (libspf2 would pass them all). */
	{ "127.0.0.1", "h.example.net", "a@loop.example.org", AUTHRES_FAIL, NULL },
	{ "127.0.0.2", "h.example.net", "a@loop.example.org", AUTHRES_PASS, NULL },
	{ "::1", "h.example.net", "a@loop.example.org", AUTHRES_FAIL, NULL },
	{ "2001:db8::5", "h.example.net", "a@v6.example.org", AUTHRES_PASS, NULL },
	{ "::ffff:192.0.2.1", "h.example.net", "a@pass.example.org", AUTHRES_PASS, NULL },
	{ "192.0.2.25", "h.example.net", "a@mx.example.org", AUTHRES_PASS, NULL },
	{ "192.0.2.26", "h.example.net", "a@mx.example.org", AUTHRES_FAIL, NULL },
	{ "192.0.2.25", "h.example.net", "a@manymx.example.org", AUTHRES_PERMERROR, "MX" },
	{ "192.0.2.1", "h.example.net", "a@exists.example.org", AUTHRES_PASS, NULL },
	{ "192.0.2.2", "h.example.net", "a@exists.example.org", AUTHRES_FAIL, NULL },
	{ "192.0.2.1", "h.example.net", "a@void.example.org", AUTHRES_PERMERROR, "void" },
	{ "192.0.2.1", "h.example.net", "a@void2.example.org", AUTHRES_PASS, NULL },
	{ "192.0.2.1", "h.example.net", "a@i11.example.org", AUTHRES_PERMERROR, NULL },
	{ "192.0.2.1", "h.example.net", "a@i11last.example.org", AUTHRES_PERMERROR, NULL },
	{ "192.0.2.1", "h.example.net", "a@i10.example.org", AUTHRES_FAIL, NULL },
	{ "192.0.2.1", "h.example.net", "a@badmacro.example.org", AUTHRES_PERMERROR, "macro" },
	{ "192.0.2.1", "h.example.net", "a@bigdigit.example.org", AUTHRES_PERMERROR, "macro" },
	{ "192.0.2.1", "h.example.net", "a@crt.example.org", AUTHRES_PERMERROR, "macro" },
	{ "192.0.2.1", "h.example.net", "a@incbad.example.org", AUTHRES_PERMERROR, "macro" },
	{ "192.0.2.1", "h.example.net", "a@under.example.org", AUTHRES_PERMERROR, "macros" },
	{ "192.0.2.1", "h.example.net", "a@redir.example.org", AUTHRES_FAIL, NULL },
	{ "127.0.0.1", "h.example.net", "a@ptr.example.org", AUTHRES_PASS, NULL },
	{ "127.0.0.2", "h.example.net", "a@ptr.example.org", AUTHRES_FAIL, NULL },
	{ "192.0.2.1", "h.example.net", "a@syntax.example.org", AUTHRES_PERMERROR, NULL },
	/* The null sender: the HELO identity. */
	{ "192.0.2.9", "helo.example.org", "", AUTHRES_PASS, NULL },
	{ "192.0.2.8", "helo.example.org", "", AUTHRES_FAIL, NULL },
	{ "192.0.2.8", "[192.0.2.8]", "", AUTHRES_NONE, "HELO" },
	/* Names refused before any lookup. */
	{ "192.0.2.1", "h.example.net", "a@nodot", AUTHRES_NONE, "domain" },
	{ "192.0.2.1", "h.example.net", "a@bad_-.example..org", AUTHRES_NONE, "domain" },
	{ "192.0.2.1", "h.example.net", "a@-x.example.org", AUTHRES_NONE, "domain" },
	{ "192.0.2.1", "h.example.net", "a\x01" "b@pass.example.org", AUTHRES_NONE, "local" },
	{ "not-an-ip", "h.example.net", "a@pass.example.org", AUTHRES_PERMERROR, "address" },
};

START_TEST(test_eval)
{
	const struct eval_case *c = &eval_cases[_i];
	struct spf_query q = { c->ip, c->helo, c->sender, "mx.city.example" };
	struct spf_outcome o;
	struct fake f = { 0 };

	spf_evaluate(&q, fake_lookup, &f, &o);
	ck_assert_msg(o.result == c->want, "%s from %s: %s (%s), want %s", c->sender, c->ip,
	    spf_result_name(o.result), o.reason, spf_result_name(c->want));
	if (c->reason_has != NULL)
		ck_assert_msg(strstr(o.reason, c->reason_has) != NULL, "%s: reason '%s' lacks '%s'",
		    c->sender, o.reason, c->reason_has);
	ck_assert_uint_le(o.void_lookups, SPF_MAX_VOID + 1);
}
END_TEST

START_TEST(test_explanation)
{
	struct spf_query q = { "192.0.2.1", "h.example.net", "a@exp.example.org", "mx.city.example" };
	struct spf_outcome o;
	struct fake f = { 0 };

	spf_evaluate(&q, fake_lookup, &f, &o);
	ck_assert_int_eq(o.result, AUTHRES_FAIL);
	ck_assert_str_eq(o.explanation, "192.0.2.1 may not send for exp.example.org");
}
END_TEST

START_TEST(test_domain_lowercased)
{
	struct spf_query q = { "192.0.2.1", "h.example.net", "A@Pass.Example.ORG",
		"mx.city.example" };
	struct spf_outcome o;
	struct fake f = { 0 };

	spf_evaluate(&q, fake_lookup, &f, &o);
	ck_assert_int_eq(o.result, AUTHRES_PASS);
	ck_assert_str_eq(o.domain, "pass.example.org");
	ck_assert_str_eq(o.identity, "A@Pass.Example.ORG");
}
END_TEST

START_TEST(test_null_sender_identity)
{
	struct spf_query q = { "192.0.2.9", "helo.example.org", "", "mx.city.example" };
	struct spf_outcome o;
	struct fake f = { 0 };

	spf_evaluate(&q, fake_lookup, &f, &o);
	ck_assert(o.helo_identity);
	ck_assert_str_eq(o.domain, "helo.example.org");
	ck_assert_str_eq(o.identity, "helo.example.org");
}
END_TEST

/* The bad record is never handed on: one TXT query, then nothing. */
START_TEST(test_refused_record_stops)
{
	struct spf_query q = { "192.0.2.1", "h.example.net", "a@badmacro.example.org",
		"mx.city.example" };
	struct spf_outcome o;
	struct fake f = { 0 };

	spf_evaluate(&q, fake_lookup, &f, &o);
	ck_assert_int_eq(o.result, AUTHRES_PERMERROR);
	ck_assert_uint_eq(f.asked, 1);
	ck_assert_str_eq(f.last, "badmacro.example.org");
}
END_TEST

/* ------------------------------------------------------ record checks */

static const struct rec_case {
	const char *txt;
	bool exp;
	bool ok;
} rec_cases[] = {
	{ "v=spf1 -all", false, true },
	{ "v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all", false, true },
	{ "v=spf1 exists:%{d128}.x.org", false, true },
	{ "v=spf1 exists:%{d129}.x.org", false, false },
	{ "v=spf1 exists:%{d0}.x.org", false, false },
	{ "v=spf1 exists:%{D2R=_}.x.org", false, true },
	{ "v=spf1 a:%%.%_.%-.x.org", false, true },
	{ "v=spf1 a:%x.org", false, false },
	{ "v=spf1 a:%{q}.org", false, false },
	{ "v=spf1 a:%{d", false, false },
	{ "v=spf1 a:%{d2rr}.org", false, false },
	{ "v=spf1 a:%{d*}.org", false, false },
	{ "v=spf1 a:x.org%", false, false },
	{ "v=spf1 exists:%{c}.org", false, false },
	{ "v=spf1 exists:%{t}.org", false, false },
	{ "%{c} at %{t} via %{r}", true, true },
	{ "%{z}", true, false },
	{ "v=spf1 \x01 -all", false, false },
	{ "v=spf1 ptr:localhost -all", false, false },
	{ "v=spf1 a:example.org/24 mx:mx.example.org//64 -all", false, true },
	{ "v=spf1 a:%{d}/24 exists:%{i}.x.example.org", false, true },
	{ "v=spf1 include:example.123 -all", false, false },
	{ "v=spf1 include:example.-x -all", false, false },
	{ "v=spf1 redirect=example.org.", false, true },
	{ "v=spf1 -include:foo", false, false },
	{ "v=spf1 exp=x.%{d} -all", false, true },
	{ "v=spf1 \xc3\xa9 -all", false, false },
};

START_TEST(test_record_check)
{
	const struct rec_case *c = &rec_cases[_i];
	char why[120] = "";
	int rc = spf_record_check(c->txt, strlen(c->txt), c->exp, why, sizeof why);

	ck_assert_msg((rc == 0) == c->ok, "'%s': %d (%s)", c->txt, rc, why);
}
END_TEST

START_TEST(test_record_bounds)
{
	char rec[SPF_RECORD_MAX + 24], why[120];
	size_t n;

	/* A term longer than SPF_TERM_MAX. */
	n = (size_t)snprintf(rec, sizeof rec, "v=spf1 a:");
	memset(rec + n, 'a', SPF_TERM_MAX);
	rec[n + SPF_TERM_MAX] = '\0';
	ck_assert_int_lt(spf_record_check(rec, strlen(rec), false, why, sizeof why), 0);
	/* A whole record longer than SPF_RECORD_MAX, of short terms. */
	for (n = 0; n < SPF_RECORD_MAX + 8; n += 8)
		memcpy(rec + n, "a:x.org ", 8);
	rec[n] = '\0';
	ck_assert_int_lt(spf_record_check(rec, n, false, why, sizeof why), 0);
	ck_assert_msg(spf_record_check(rec, SPF_RECORD_MAX - 8, false, why, sizeof why) == 0,
	    "%s", why);
}
END_TEST

static const struct dom_case {
	const char *d;
	bool ok;
} dom_cases[] = {
	{ "example.org", true }, { "example.org.", true }, { "a-b.example.org", true },
	{ "_spf.example.org", true }, { "example", false }, { "", false },
	{ "-a.example.org", false }, { "a-.example.org", false }, { "a..org", false },
	{ ".a.org", false }, { "a b.org", false }, { "a%b.org", false },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org", false },
};

START_TEST(test_domain_ok)
{
	ck_assert_msg(spf_domain_ok(dom_cases[_i].d) == dom_cases[_i].ok, "'%s'",
	    dom_cases[_i].d);
}
END_TEST

/* ------------------------------------------------------- Received-SPF */

START_TEST(test_received_field)
{
	struct spf_query q = { "192.0.2.1", "h.example.net", "a b\"c@pass.example.org",
		"mx.city.example" };
	struct spf_outcome o;
	char field[1024];
	size_t n;

	memset(&o, 0, sizeof o);
	o.result = AUTHRES_PASS;
	snprintf(o.reason, sizeof o.reason, "matched (ip4) \\ here");
	n = spf_received_field(&q, &o, field, sizeof field);
	ck_assert_uint_gt(n, 0);
	ck_assert_uint_eq(n, strlen(field));
	ck_assert_msg(strncmp(field, "Received-SPF: pass (mx.city.example: ", 37) == 0, "%s",
	    field);
	ck_assert_ptr_nonnull(strstr(field, "client-ip=192.0.2.1;"));
	ck_assert_ptr_nonnull(strstr(field, "envelope-from=\"a b\\\"c@pass.example.org\";"));
	ck_assert_ptr_nonnull(strstr(field, "helo=h.example.net;"));
	ck_assert_ptr_nonnull(strstr(field, "identity=mailfrom"));
	ck_assert_ptr_null(strstr(field, "(ip4)"));
	ck_assert_uint_eq(spf_received_field(&q, &o, field, 40), 0);
	q.sender = "";
	o.helo_identity = true;
	o.result = AUTHRES_TEMPERROR;
	n = spf_received_field(&q, &o, field, sizeof field);
	ck_assert_ptr_nonnull(strstr(field, "Received-SPF: temperror ("));
	ck_assert_ptr_null(strstr(field, "envelope-from"));
	ck_assert_ptr_nonnull(strstr(field, "identity=helo"));
}
END_TEST

/* --------------------------------------------------------- the key */

static struct config *ts_load(const char *text, struct buf *errs)
{
	char path[] = "/tmp/test_spf_cfg_XXXXXX";
	int fd = mkstemp(path);
	struct config *cfg = NULL;
	FILE *f;

	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "data_dir = /var/lib/govrelay\nlisten = mx 127.0.0.1:2525\n%s", text);
	ck_assert_int_eq(fclose(f), 0);
	buf_init(errs);
	(void)cfg_load(path, &cfg, errs);
	unlink(path);
	return cfg;
}

START_TEST(test_config_key)
{
	static const struct {
		const char *line;
		bool want;
	} ok[] = { { "", true }, { "spf = no\n", false }, { "spf = Off\n", false },
		{ "spf = yes\n", true }, { "spf = 1\n", true } };
	struct buf errs;
	struct config *cfg;

	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		cfg = ts_load(ok[i].line, &errs);
		ck_assert_msg(cfg != NULL, "%s: %s", ok[i].line, buf_cstr(&errs));
		ck_assert_msg(cfg->spf == ok[i].want, "%s", ok[i].line);
		cfg_unref(cfg);
		buf_free(&errs);
	}
	cfg = ts_load("spf = maybe\n", &errs);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(strstr(buf_cstr(&errs), ":3: spf: 'maybe' is not yes or no") != NULL,
	    "%s", buf_cstr(&errs));
	buf_free(&errs);
}
END_TEST

/* ---------------------------------------------- spf_fail_action */

START_TEST(test_fail_action_key)
{
	const struct tenancy_policy_key *k = tenancy_policy_key_find("spf_fail_action");
	char out[32], why[160];

	ck_assert_ptr_nonnull(k);
	ck_assert_str_eq(k->builtin, "reject");
	ck_assert_int_eq(tenancy_policy_normalize(k, "TAG", out, sizeof out, why, sizeof why), 0);
	ck_assert_str_eq(out, "tag");
	ck_assert_int_eq(tenancy_policy_normalize(k, "Reject", out, sizeof out, why,
	    sizeof why), 0);
	ck_assert_str_eq(out, "reject");
	ck_assert_int_eq(tenancy_policy_normalize(k, "drop", out, sizeof out, why, sizeof why),
	    -EINVAL);
	ck_assert_msg(strstr(why, "'drop' is not one of: reject, tag") != NULL, "%s", why);
	/* The ceiling: reject is tighter than tag. */
	ck_assert_int_eq(tenancy_policy_compare(k, "reject", "tag"), -1);
	ck_assert_int_eq(tenancy_policy_compare(k, "tag", "reject"), 1);
}
END_TEST

static int ts_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void ts_tenant(struct queue_txn *t, const char *id, const char *parent)
{
	struct queue_tenant rec = { (char *)id, (char *)id, (char *)parent, 1000 };
	char why[256];

	ck_assert_msg(queue_tenant_put(t, &rec, why, sizeof why) == 0, "%s: %s", id, why);
}

static void ts_word(struct queue_txn *t, const char *tenant, const char *want,
    const char *want_source)
{
	char out[32], source[64];

	ck_assert_int_eq(queue_policy_word(t, tenant, "spf_fail_action", out, sizeof out, source,
	    sizeof source), 0);
	ck_assert_msg(strcmp(out, want) == 0 && strcmp(source, want_source) == 0,
	    "%s: %s from %s, want %s from %s", tenant ? tenant : "(none)", out, source, want,
	    want_source);
}

START_TEST(test_fail_action_store)
{
	char dir[] = "/tmp/test-spf-XXXXXX", out[32];
	struct queue_store *store = NULL;
	struct queue_txn *t;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(queue_store_open(dir, 0, false, &store), 0);
	ck_assert_int_eq(queue_txn_begin(store, true, &t), 0);
	ts_tenant(t, "city", NULL);
	ts_tenant(t, "dept", "city");
	ts_word(t, NULL, "reject", "default");
	ts_word(t, "dept", "reject", "default");
	ck_assert_int_eq(queue_policy_set(t, "dept", "spf_fail_action", "tag"), 0);
	ts_word(t, "dept", "tag", "dept");
	ts_word(t, "city", "reject", "default");
	/* The city's reject is a ceiling the department's tag cannot pass. */
	ck_assert_int_eq(queue_policy_set(t, "city", "spf_fail_action", "reject"), 0);
	ts_word(t, "dept", "reject", "city");
	ck_assert_int_eq(queue_policy_set(t, "city", "spf_fail_action", "bogus"), -EINVAL);
	/* Typed getters refuse keys of another type. */
	ck_assert_int_eq(queue_policy_word(t, "dept", "allow_external", out, sizeof out, NULL, 0),
	    -EINVAL);
	queue_txn_abort(t);
	queue_store_close(store);
	nftw(dir, ts_rm, 8, FTW_DEPTH | FTW_PHYS);
}
END_TEST

/* ------------------------------------------- the row, through the engine */

/*
 * A resolver with the policy_resolver contract over the zone above:
 * answers come later, from the loop (a 0 ms timer); names under
 * silent.example.org are never answered until te_release_silent.
 */
struct te_answer {
	uv_timer_t timer;
	struct spf_dns_reply reply;
	policy_dns_cb *cb;
	void *arg;
};

static uv_loop_t te_loop;
static struct queue_store *te_store;
static char te_dir[64];
static struct policy *te_p;
static policy_dns_cb *te_silent_cb[8];
static void *te_silent_arg[8];
static size_t te_nsilent;
static unsigned te_lookups;

static void te_closed(uv_handle_t *h)
{
	struct te_answer *a = h->data;

	spf_dns_reply_clear(&a->reply);
	free(a);
}

static void te_fire(uv_timer_t *t)
{
	struct te_answer *a = t->data;
	struct policy_dns_answer ans = { a->reply.status, a->reply.n,
		(const char *const *)a->reply.rr, a->reply.len, a->reply.error, a->reply.ttl };

	a->cb(a->arg, &ans);
	uv_close((uv_handle_t *)t, te_closed);
}

static int te_lookup(void *ctx, enum policy_dns_kind kind, const char *name,
    policy_dns_cb *cb, void *arg)
{
	struct te_answer *a;

	(void)ctx;
	te_lookups++;
	if (strstr(name, "silent.example.org") != NULL) {
		ck_assert_uint_lt(te_nsilent, 8);
		te_silent_cb[te_nsilent] = cb;
		te_silent_arg[te_nsilent++] = arg;
		return 0;
	}
	a = calloc(1, sizeof *a);
	fake_lookup(&(struct fake){ 0 }, kind, name, &a->reply);
	a->cb = cb;
	a->arg = arg;
	a->timer.data = a;
	uv_timer_init(&te_loop, &a->timer);
	uv_timer_start(&a->timer, te_fire, 0, 0);
	return 0;
}

/* Late answers to the silent names: a DNS failure, after the verdict. */
static void te_release_silent(void)
{
	struct policy_dns_answer ans = { POLICY_DNS_TEMPFAIL, 0, NULL, NULL, "late", 0 };

	for (size_t i = 0; i < te_nsilent; i++)
		te_silent_cb[i](te_silent_arg[i], &ans);
	te_nsilent = 0;
}

static void te_setup(void)
{
	struct queue_domain ours = { .name = "fail.example.org", .route = "smtp:127.0.0.1:2526" };
	struct queue_domain plain = { .name = "us.example.vn", .route = "smtp:127.0.0.1:2526",
		.accept_all = true };
	struct policy_resolver r = { NULL, te_lookup };
	const struct policy_check *row = NULL;
	struct queue_txn *txn;
	char err[256];

	snprintf(te_dir, sizeof te_dir, "/tmp/test-spf-engine-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(te_dir));
	ck_assert_int_eq(queue_store_open(te_dir, 64 << 20, false, &te_store), 0);
	ck_assert_int_eq(queue_txn_begin(te_store, true, &txn), 0);
	ck_assert_int_eq(queue_domain_put(txn, &ours), 0);
	ck_assert_int_eq(queue_domain_put(txn, &plain), 0);
	ck_assert_int_eq(queue_txn_commit(txn), 0);
	ck_assert_int_eq(uv_loop_init(&te_loop), 0);
	for (size_t i = 0; i < policy_nchecks; i++)
		if (strcmp(policy_checks[i].name, "spf") == 0)
			row = &policy_checks[i];
	ck_assert_ptr_nonnull(row);
	ck_assert_msg(policy_new_table(&te_loop, NULL, te_store, row, 1, &te_p, err,
	    sizeof err) == 0, "%s", err);
	policy_set_resolver(te_p, &r);
	te_nsilent = 0;
	te_lookups = 0;
}

static void te_teardown(void)
{
	ck_assert_int_eq(uv_run(&te_loop, UV_RUN_DEFAULT), 0);
	policy_free(te_p);
	ck_assert_int_eq(uv_loop_close(&te_loop), 0);
	queue_store_close(te_store);
	nftw(te_dir, ts_rm, 8, FTW_DEPTH | FTW_PHYS);
}

struct te_run {
	struct verdict v;
	unsigned done;
	uv_timer_t *ticker;
};

static void te_done(void *arg, const struct verdict *v)
{
	struct te_run *r = arg;

	r->v = *v;
	r->done++;
	if (r->ticker != NULL)
		uv_timer_stop(r->ticker);
}

static void te_req(struct policy_request *req, enum policy_stage stage, const char *sender,
    struct policy_tx *tx)
{
	memset(req, 0, sizeof *req);
	req->stage = stage;
	req->session_id = "S1";
	req->client_addr = "192.0.2.1";
	req->listener_role = "mx";
	req->helo = "h.example.net";
	req->sender = sender;
	req->tx = tx;
}

/* Runs MAIL for sender in tx and waits for the verdict. */
static struct te_run te_mail(struct policy_tx *tx, const char *sender)
{
	struct policy_request req;
	struct te_run r = { 0 };

	te_req(&req, POLICY_STAGE_MAIL, sender, tx);
	policy_run(te_p, &req, te_done, &r);
	ck_assert_int_eq(uv_run(&te_loop, UV_RUN_DEFAULT), 0);
	ck_assert_uint_eq(r.done, 1);
	return r;
}

START_TEST(test_row_pass_records)
{
	struct policy_tx *tx = policy_tx_new(te_p, "mx", "S1");
	struct te_run r = te_mail(tx, "a@pass.example.org");
	const char *h;
	size_t len;

	ck_assert_int_eq(r.v.kind, VERDICT_CONTINUE);
	ck_assert_int_eq(policy_tx_authres(tx)->spf.result, AUTHRES_PASS);
	ck_assert_str_eq(policy_tx_authres(tx)->spf.domain, "pass.example.org");
	h = policy_tx_headers(tx, &len);
	ck_assert_msg(strncmp(h, "Received-SPF: pass (localhost: ", 31) == 0, "%s", h);
	ck_assert_msg(strstr(policy_tx_notes(tx), "spf=pass") != NULL, "%s",
	    policy_tx_notes(tx));
	policy_tx_free(tx);
}
END_TEST

/*
 * A result holds as long as the answers it came from (their TTL): the same
 * client, HELO and sender again is answered without a lookup; another
 * sender is evaluated; a temperror is never kept.
 */
START_TEST(test_row_result_kept)
{
	struct policy_tx *tx = policy_tx_new(te_p, "mx", "S1");
	struct te_run r = te_mail(tx, "a@pass.example.org");
	unsigned asked = te_lookups;
	const char *h;
	size_t len;

	ck_assert_uint_gt(asked, 0);
	policy_tx_free(tx);
	tx = policy_tx_new(te_p, "mx", "S1");
	r = te_mail(tx, "a@pass.example.org");
	ck_assert_int_eq(r.v.kind, VERDICT_CONTINUE);
	ck_assert_uint_eq(te_lookups, asked);
	ck_assert_int_eq(policy_tx_authres(tx)->spf.result, AUTHRES_PASS);
	h = policy_tx_headers(tx, &len);
	ck_assert_msg(strncmp(h, "Received-SPF: pass (localhost: ", 31) == 0, "%s", h);
	policy_tx_free(tx);
	tx = policy_tx_new(te_p, "mx", "S1");
	(void)te_mail(tx, "b@pass.example.org");
	ck_assert_uint_gt(te_lookups, asked);
	policy_tx_free(tx);
	for (int i = 0; i < 2; i++) {
		asked = te_lookups;
		tx = policy_tx_new(te_p, "mx", "S1");
		r = te_mail(tx, "a@temp.example.org");
		ck_assert_int_eq(r.v.kind, VERDICT_TEMPFAIL);
		ck_assert_uint_gt(te_lookups, asked);
		policy_tx_free(tx);
	}
}
END_TEST

/* The result's TTL is the shortest of its answers'; none for a temperror. */
START_TEST(test_outcome_ttl)
{
	struct spf_query q = { "192.0.2.1", "h.example.net", "a@pass.example.org", "mx" };
	struct spf_outcome o;
	struct fake f = { 0 };

	spf_evaluate(&q, fake_lookup, &f, &o);
	ck_assert_int_eq(o.result, AUTHRES_PASS);
	ck_assert_uint_eq(o.ttl, 300);
	q.sender = "a@temp.example.org";
	memset(&f, 0, sizeof f);
	spf_evaluate(&q, fake_lookup, &f, &o);
	ck_assert_int_eq(o.result, AUTHRES_TEMPERROR);
	ck_assert_uint_eq(o.ttl, 0);
}
END_TEST

START_TEST(test_row_temperror_451)
{
	struct policy_tx *tx = policy_tx_new(te_p, "mx", "S1");
	struct te_run r = te_mail(tx, "a@temp.example.org");

	ck_assert_int_eq(r.v.kind, VERDICT_TEMPFAIL);
	ck_assert_int_eq(r.v.code, 451);
	ck_assert_str_eq(r.v.enh, "4.7.24");
	ck_assert_int_eq(policy_tx_authres(tx)->spf.result, AUTHRES_TEMPERROR);
	policy_tx_free(tx);
}
END_TEST

START_TEST(test_row_fail_ours_and_rcpt)
{
	struct policy_tx *tx = policy_tx_new(te_p, "mx", "S1");
	struct policy_request req;
	struct te_run r = te_mail(tx, "a@fail.example.org");

	/* fail.example.org is in our domain table: refused at MAIL. */
	ck_assert_int_eq(r.v.kind, VERDICT_REJECT);
	ck_assert_int_eq(r.v.code, 550);
	ck_assert_str_eq(r.v.enh, "5.7.23");
	policy_tx_free(tx);
	/* inc.example.org is not ours: MAIL goes on, RCPT follows the tenant (none: reject). */
	tx = policy_tx_new(te_p, "mx", "S1");
	r = te_mail(tx, "a@inc.example.org");
	ck_assert_int_eq(r.v.kind, VERDICT_CONTINUE);
	ck_assert_int_eq(policy_tx_authres(tx)->spf.result, AUTHRES_PASS);
	policy_tx_free(tx);
	tx = policy_tx_new(te_p, "mx", "S1");
	r = te_mail(tx, "a@soft.example.org");
	ck_assert_int_eq(r.v.kind, VERDICT_CONTINUE);
	policy_tx_free(tx);
	tx = policy_tx_new(te_p, "mx", "S1");
	te_req(&req, POLICY_STAGE_MAIL, "a@redir.example.org", tx);
	memset(&r, 0, sizeof r);
	policy_run(te_p, &req, te_done, &r);
	ck_assert_int_eq(uv_run(&te_loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(r.v.kind, VERDICT_CONTINUE);
	ck_assert_int_eq(policy_tx_authres(tx)->spf.result, AUTHRES_FAIL);
	te_req(&req, POLICY_STAGE_RCPT, "a@redir.example.org", tx);
	req.rcpt = "u@us.example.vn";
	req.rcpt_domain = "us.example.vn";
	memset(&r, 0, sizeof r);
	policy_run(te_p, &req, te_done, &r);
	ck_assert_uint_eq(r.done, 1);
	ck_assert_int_eq(r.v.kind, VERDICT_REJECT);
	ck_assert_str_eq(r.v.enh, "5.7.23");
	policy_tx_free(tx);
}
END_TEST

START_TEST(test_row_trusted_skipped)
{
	struct policy_tx *tx = policy_tx_new(te_p, "mx", "S1");
	struct policy_request req;
	struct te_run r = { 0 };
	size_t len;

	te_req(&req, POLICY_STAGE_MAIL, "a@fail.example.org", tx);
	req.client_trusted = true;
	policy_run(te_p, &req, te_done, &r);
	ck_assert_uint_eq(r.done, 1);
	ck_assert_int_eq(r.v.kind, VERDICT_CONTINUE);
	ck_assert_uint_eq(te_lookups, 0);
	ck_assert_int_eq(policy_tx_authres(tx)->spf.result, AUTHRES_NOT_RUN);
	(void)policy_tx_headers(tx, &len);
	ck_assert_uint_eq(len, 0);
	policy_tx_free(tx);
}
END_TEST

/* The transaction ends while the worker waits: one completion, nothing touched. */
START_TEST(test_row_tx_freed_in_flight)
{
	struct policy_tx *tx = policy_tx_new(te_p, "mx", "S1");
	struct policy_request req;
	struct te_run r = { 0 };

	te_req(&req, POLICY_STAGE_MAIL, "a@mx.example.org", tx);
	policy_run(te_p, &req, te_done, &r);
	ck_assert_uint_eq(r.done, 0);
	policy_tx_free(tx);
	ck_assert_int_eq(uv_run(&te_loop, UV_RUN_DEFAULT), 0);
	ck_assert_uint_eq(r.done, 1);
	ck_assert_int_eq(r.v.kind, VERDICT_CONTINUE);
}
END_TEST

static void te_tick(uv_timer_t *t)
{
	(*(unsigned *)t->data)++;
}

/*
 * A name that is never answered: the loop keeps running (a 50 ms ticker
 * fires all along), the verdict is 451 4.7.24 after the lookup deadline,
 * and the late answer is dropped.
 */
START_TEST(test_row_silent_dns)
{
	struct policy_tx *tx = policy_tx_new(te_p, "mx", "S1");
	struct policy_request req;
	uv_timer_t ticker;
	unsigned ticks = 0;
	struct te_run r = { .ticker = &ticker };
	uint64_t t0;

	uv_timer_init(&te_loop, &ticker);
	ticker.data = &ticks;
	uv_timer_start(&ticker, te_tick, 50, 50);
	te_req(&req, POLICY_STAGE_MAIL, "a@silent.example.org", tx);
	t0 = uv_hrtime();
	policy_run(te_p, &req, te_done, &r);
	while (r.done == 0)
		uv_run(&te_loop, UV_RUN_ONCE);
	ck_assert_int_eq(r.v.kind, VERDICT_TEMPFAIL);
	ck_assert_str_eq(r.v.enh, "4.7.24");
	ck_assert_uint_ge((uv_hrtime() - t0) / 1000000u, 4000);
	ck_assert_uint_ge(ticks, 40);
	ck_assert_uint_eq(te_nsilent, 1);
	uv_close((uv_handle_t *)&ticker, NULL);
	ck_assert_int_eq(uv_run(&te_loop, UV_RUN_DEFAULT), 0);
	te_release_silent();
	policy_tx_free(tx);
}
END_TEST

static void te_other_work(uv_work_t *w)
{
	(void)w;
}

static void te_other_done(uv_work_t *w, int status)
{
	(void)status;
	*(uint64_t *)w->data = uv_hrtime();
}

/*
 * SPF holds at most half of libuv's pool (4 threads: 2): with two checks
 * stuck on silent names, a third waits its turn, and other work on the
 * pool (maildir, AUTH, control) still runs at once.
 */
START_TEST(test_row_pool_share)
{
	struct policy_tx *tx[3];
	struct policy_request req[3];
	struct te_run r[3];
	const char *senders[3] = { "a@silent.example.org", "b@silent.example.org",
		"a@pass.example.org" };
	uv_work_t other;
	uint64_t t0, other_done = 0;

	memset(r, 0, sizeof r);
	t0 = uv_hrtime();
	for (int i = 0; i < 3; i++) {
		tx[i] = policy_tx_new(te_p, "mx", "S1");
		te_req(&req[i], POLICY_STAGE_MAIL, senders[i], tx[i]);
		policy_run(te_p, &req[i], te_done, &r[i]);
	}
	/* Both stuck evaluations have asked their silent names... */
	while (te_nsilent < 2 && (uv_hrtime() - t0) / 1000000u < 3000)
		uv_run(&te_loop, UV_RUN_NOWAIT);
	ck_assert_uint_eq(te_nsilent, 2);
	/* ... and other work on the pool runs at once. */
	t0 = uv_hrtime();
	other.data = &other_done;
	ck_assert_int_eq(uv_queue_work(&te_loop, &other, te_other_work, te_other_done), 0);
	while (other_done == 0)
		uv_run(&te_loop, UV_RUN_ONCE);
	ck_assert_uint_lt((other_done - t0) / 1000000u, 1000);
	/* The third check waits its turn: not started, not decided. */
	ck_assert_uint_eq(te_nsilent, 2);
	ck_assert_uint_eq(r[2].done, 0);
	while (r[0].done + r[1].done + r[2].done < 3)
		uv_run(&te_loop, UV_RUN_ONCE);
	ck_assert_str_eq(r[0].v.enh, "4.7.24");
	ck_assert_str_eq(r[1].v.enh, "4.7.24");
	ck_assert_int_eq(r[2].v.kind, VERDICT_CONTINUE);
	ck_assert_int_eq(policy_tx_authres(tx[2])->spf.result, AUTHRES_PASS);
	ck_assert_int_eq(uv_run(&te_loop, UV_RUN_DEFAULT), 0);
	te_release_silent();
	for (int i = 0; i < 3; i++)
		policy_tx_free(tx[i]);
}
END_TEST

/* A transaction that ends while its check waits for a thread: dropped, one completion. */
START_TEST(test_row_queued_tx_freed)
{
	struct policy_tx *tx[3];
	struct policy_request req[3];
	struct te_run r[3];
	/* The third one's own prefetch is never answered either, until the end. */
	const char *senders[3] = { "a@silent.example.org", "b@silent.example.org",
		"c@silent.example.org" };

	memset(r, 0, sizeof r);
	for (int i = 0; i < 3; i++) {
		tx[i] = policy_tx_new(te_p, "mx", "S1");
		te_req(&req[i], POLICY_STAGE_MAIL, senders[i], tx[i]);
		policy_run(te_p, &req[i], te_done, &r[i]);
	}
	policy_tx_free(tx[2]);
	while (r[0].done + r[1].done + r[2].done < 3)
		uv_run(&te_loop, UV_RUN_ONCE);
	ck_assert_uint_eq(r[2].done, 1);
	ck_assert_int_eq(r[2].v.kind, VERDICT_CONTINUE);
	ck_assert_int_eq(uv_run(&te_loop, UV_RUN_DEFAULT), 0);
	te_release_silent();
	policy_tx_free(tx[0]);
	policy_tx_free(tx[1]);
}
END_TEST

static Suite *ts_suite(void)
{
	Suite *s = suite_create("spf");
	TCase *tc = tcase_create("core");

	tcase_add_loop_test(tc, test_eval, 0, N_CASES(eval_cases));
	tcase_add_test(tc, test_explanation);
	tcase_add_test(tc, test_outcome_ttl);
	tcase_add_test(tc, test_null_sender_identity);
	tcase_add_test(tc, test_domain_lowercased);
	tcase_add_test(tc, test_refused_record_stops);
	tcase_add_loop_test(tc, test_record_check, 0, N_CASES(rec_cases));
	tcase_add_test(tc, test_record_bounds);
	tcase_add_loop_test(tc, test_domain_ok, 0, N_CASES(dom_cases));
	tcase_add_test(tc, test_received_field);
	tcase_add_test(tc, test_config_key);
	tcase_add_test(tc, test_fail_action_key);
	tcase_add_test(tc, test_fail_action_store);
	suite_add_tcase(s, tc);
	tc = tcase_create("engine");
	tcase_add_checked_fixture(tc, te_setup, te_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_row_pass_records);
	tcase_add_test(tc, test_row_temperror_451);
	tcase_add_test(tc, test_row_result_kept);
	tcase_add_test(tc, test_row_fail_ours_and_rcpt);
	tcase_add_test(tc, test_row_trusted_skipped);
	tcase_add_test(tc, test_row_tx_freed_in_flight);
	tcase_add_test(tc, test_row_silent_dns);
	tcase_add_test(tc, test_row_pool_share);
	tcase_add_test(tc, test_row_queued_tx_freed);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ts_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
