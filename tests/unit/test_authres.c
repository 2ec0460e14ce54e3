/*
 * test_authres: the pieces of the sender-authentication seam that are
 * pure logic: policy/authres.c (our Authentication-Results field, and
 * which incoming fields claim our authserv-id), the transaction's added
 * header fields and audit notes (policy/policy_tx.c: a field that could
 * start a header of its own is dropped), and the reverse names the
 * resolver adapter turns back into addresses (relay/policy_dns.c).
 *
 * OWNERSHIP: none. THREADS: Check forks one process per test.
 * ERRORS: assertion failures.
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/authres.h"
#include "policy/check.h"
#include "policy/policy.h"
#include "relay/policy_dns.h"

#define N_CASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const struct {
	const char *label;
	const char *field;
	bool ours;
} claim_cases[] = {
	{ "plain", "Authentication-Results: mx.city.vn; spf=pass", true },
	{ "case of name and id", "authentication-results: MX.City.VN; dkim=pass", true },
	{ "folded before the id", "Authentication-Results:\r\n\tmx.city.vn; none", true },
	{ "comment before the id", "Authentication-Results: (forged) mx.city.vn; none", true },
	{ "nested comment", "Authentication-Results: (a (b) c) mx.city.vn; none", true },
	{ "quoted id", "Authentication-Results: \"mx.city.vn\"; none", true },
	{ "version after the id", "Authentication-Results: mx.city.vn 1; none", true },
	{ "space before the colon", "Authentication-Results : mx.city.vn; none", true },
	{ "no space after the id", "Authentication-Results: mx.city.vn;spf=fail", true },
	{ "another id", "Authentication-Results: mx.other.vn; spf=pass", false },
	{ "a longer id", "Authentication-Results: mx.city.vn.evil; none", false },
	{ "a prefix of ours", "Authentication-Results: mx.city; none", false },
	{ "another field", "Authentication-Results-X: mx.city.vn; none", false },
	{ "ARC field", "ARC-Authentication-Results: i=1; mx.city.vn; none", false },
	{ "empty", "Authentication-Results:", false },
};

START_TEST(test_claims)
{
	const char *f = claim_cases[_i].field;

	ck_assert_msg(authres_claims_id(f, strlen(f), "mx.city.vn") == claim_cases[_i].ours,
	    "%s", claim_cases[_i].label);
}
END_TEST

START_TEST(test_render)
{
	struct authres ar;
	char out[4096];

	memset(&ar, 0, sizeof ar);
	ck_assert_uint_gt(authres_render(&ar, "mx.city.vn", out, sizeof out), 0);
	ck_assert_str_eq(out, "Authentication-Results: mx.city.vn; none");

	ar.spf.result = AUTHRES_PASS;
	snprintf(ar.spf.identity, sizeof ar.spf.identity, "a@b.org");
	ar.dkim_ran = true;
	ar.ndkim = 1;
	ar.dkim[0].result = AUTHRES_FAIL;
	snprintf(ar.dkim[0].domain, sizeof ar.dkim[0].domain, "b.org");
	snprintf(ar.dkim[0].selector, sizeof ar.dkim[0].selector, "s1");
	snprintf(ar.dkim[0].reason, sizeof ar.dkim[0].reason, "body hash (bh=) mismatch");
	ar.dmarc.result = AUTHRES_FAIL;
	snprintf(ar.dmarc.policy, sizeof ar.dmarc.policy, "reject");
	snprintf(ar.dmarc.from_domain, sizeof ar.dmarc.from_domain, "b.org");
	ck_assert_uint_gt(authres_render(&ar, "mx.city.vn", out, sizeof out), 0);
	ck_assert_str_eq(out, "Authentication-Results: mx.city.vn;\r\n"
	    "\tspf=pass smtp.mailfrom=a@b.org;\r\n"
	    "\tdkim=fail (body hash  bh=  mismatch) header.d=b.org header.s=s1;\r\n"
	    "\tdmarc=fail (p=reject) header.from=b.org");
	/* It claims our id, so a copy of it arriving from outside is removed. */
	ck_assert(authres_claims_id(out, strlen(out), "mx.city.vn"));
	/* Too small a buffer: nothing, never a cut field. */
	ck_assert_uint_eq(authres_render(&ar, "mx.city.vn", out, 40), 0);
	ck_assert_str_eq(out, "");
}
END_TEST

/* Text from the sender cannot end the field, open a comment or a line. */
START_TEST(test_render_hostile)
{
	struct authres ar;
	char out[4096];

	memset(&ar, 0, sizeof ar);
	ar.spf.result = AUTHRES_FAIL;
	snprintf(ar.spf.identity, sizeof ar.spf.identity, "x;dkim=pass@b.org");
	snprintf(ar.spf.reason, sizeof ar.spf.reason, "a) dmarc=pass (b\r\nX-Evil: 1");
	ck_assert_uint_gt(authres_render(&ar, "mx.city.vn", out, sizeof out), 0);
	ck_assert_str_eq(out, "Authentication-Results: mx.city.vn;\r\n"
	    "\tspf=fail (a  dmarc=pass  b  X-Evil: 1) smtp.mailfrom=\"x;dkim=pass@b.org\"");
}
END_TEST

static const struct {
	const char *name;
	int family;
	const char *addr; /* NULL: -EINVAL */
} rev_cases[] = {
	{ "4.3.2.1.in-addr.arpa", AF_INET, "1.2.3.4" },
	{ "1.0.0.127.IN-ADDR.ARPA.", AF_INET, "127.0.0.1" },
	{ "256.3.2.1.in-addr.arpa", 0, NULL },
	{ "3.2.1.in-addr.arpa", 0, NULL },
	{ "5.4.3.2.1.in-addr.arpa", 0, NULL },
	{ "x.3.2.1.in-addr.arpa", 0, NULL },
	{ "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa",
	  AF_INET6, "4321:0:1:2:3:4:567:89ab" },
	{ "a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa", 0, NULL },
	{ "example.org", 0, NULL },
};

START_TEST(test_reverse)
{
	struct sockaddr_storage ss;
	char text[INET6_ADDRSTRLEN] = "";
	int rc = policy_dns_reverse_addr(rev_cases[_i].name, &ss);

	if (rev_cases[_i].addr == NULL) {
		ck_assert_msg(rc == -EINVAL, "%s accepted", rev_cases[_i].name);
		return;
	}
	ck_assert_msg(rc == 0, "%s refused", rev_cases[_i].name);
	ck_assert_int_eq(ss.ss_family, rev_cases[_i].family);
	inet_ntop(ss.ss_family, ss.ss_family == AF_INET ?
	    (void *)&((struct sockaddr_in *)&ss)->sin_addr :
	    (void *)&((struct sockaddr_in6 *)&ss)->sin6_addr, text, sizeof text);
	ck_assert_str_eq(text, rev_cases[_i].addr);
}
END_TEST

/* The engine's transaction: fields kept whole and safe, notes joined. */
START_TEST(test_tx_fields)
{
	uv_loop_t loop;
	struct policy *p = NULL;
	struct policy_tx *tx;
	char err[256];
	size_t len;
	const char *h;

	uv_loop_init(&loop);
	ck_assert_int_eq(policy_new_table(&loop, NULL, NULL, NULL, 0, &p, err, sizeof err), 0);
	tx = policy_tx_new(p, "mx", "t1");
	policy_tx_add_header(tx, "Received-SPF: pass (ok)\r\n\tclient-ip=1.2.3.4");
	policy_tx_add_header(tx, "X-A: 1\r\nX-Injected: 2");
	policy_tx_add_header(tx, "X-B: bare\nLF");
	policy_tx_add_header(tx, "no colon");
	policy_tx_add_header(tx, "Bad Name: x");
	h = policy_tx_headers(tx, &len);
	ck_assert_uint_eq(len, strlen(h));
	ck_assert_str_eq(h, "Received-SPF: pass (ok)\r\n\tclient-ip=1.2.3.4\r\n");
	ck_assert_str_eq(policy_tx_notes(tx), "");
	policy_tx_note(tx, "spf", "%s", "pass");
	policy_tx_note(tx, "dkim", "d=a; s=b\nc");
	ck_assert_str_eq(policy_tx_notes(tx), "spf=pass; dkim=d=a  s=b c");
	ck_assert_int_eq(policy_resolve(p, POLICY_DNS_TXT, "x.org", NULL, NULL), -ENOSYS);
	policy_tx_free(tx);
	policy_free(p);
	uv_loop_close(&loop);
}
END_TEST

static Suite *authres_suite(void)
{
	Suite *s = suite_create("authres");
	TCase *tc = tcase_create("all");

	tcase_add_loop_test(tc, test_claims, 0, N_CASES(claim_cases));
	tcase_add_test(tc, test_render);
	tcase_add_test(tc, test_render_hostile);
	tcase_add_loop_test(tc, test_reverse, 0, N_CASES(rev_cases));
	tcase_add_test(tc, test_tx_fields);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(authres_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
