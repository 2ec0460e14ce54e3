/*
 * test_auth: the pure rules behind AUTH and probing (issue 9): which
 * client a per-address limit counts (common/ipgroup: IPv4 /32, IPv6 /64,
 * IPv4-mapped IPv6 as IPv4), when a lockout ends and which failures are
 * consecutive (policy/auth), which SASL authorization identities pass,
 * the PLAIN split that hands the authzid to the session, and the new
 * configuration keys (defaults, ranges, FILE:LINE errors).
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/ipgroup.h"
#include "common/sasl.h"
#include "policy/auth.h"

/* ------------------------------------------------------------ ipgroup */

static void ta_group(const char *text, struct ipgroup *g)
{
	ck_assert_msg(ipgroup_parse(text, g) == 0, "'%s' does not parse", text);
}

static const struct group_case {
	const char *a, *b;
	bool same;
} group_cases[] = {
	{ "192.0.2.1", "192.0.2.1", true },
	{ "192.0.2.1", "192.0.2.2", false },          /* IPv4: one address each */
	{ "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true },
	{ "2001:db8:1:2::1", "2001:db8:1:3::1", false },
	{ "2001:db8:1:2::", "2001:db8:1:2:a:b:c:d", true },
	{ "::ffff:192.0.2.1", "192.0.2.1", true },     /* IPv4-mapped is the IPv4 */
	{ "::ffff:192.0.2.1", "::ffff:192.0.2.2", false },
	{ "::1", "::2", true },                        /* one /64 */
	{ "192.0.2.1", "::ffff:c000:201", true },
	{ "0.0.0.1", "::1", false },                   /* families differ */
};

START_TEST(test_group_equal)
{
	const struct group_case *c = &group_cases[_i];
	struct ipgroup a, b;

	ta_group(c->a, &a);
	ta_group(c->b, &b);
	ck_assert_msg(ipgroup_equal(&a, &b) == c->same, "%s vs %s: want %s", c->a, c->b,
	    c->same ? "same" : "different");
}
END_TEST

START_TEST(test_group_format)
{
	struct ipgroup g;
	char out[IPGROUP_TEXT_MAX];

	ta_group("2001:db8:1:2:3:4:5:6", &g);
	ipgroup_format(&g, out, sizeof out);
	ck_assert_str_eq(out, "2001:db8:1:2::/64");
	ta_group("::ffff:10.1.2.3", &g);
	ipgroup_format(&g, out, sizeof out);
	ck_assert_str_eq(out, "10.1.2.3");
	ta_group("203.0.113.9", &g);
	ipgroup_format(&g, out, sizeof out);
	ck_assert_str_eq(out, "203.0.113.9");
	/* the longest /64 fits */
	ta_group("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", &g);
	ipgroup_format(&g, out, sizeof out);
	ck_assert_str_eq(out, "ffff:ffff:ffff:ffff::/64");
	ck_assert_int_eq(ipgroup_parse("local", &g), -EINVAL);
	ck_assert_int_eq(ipgroup_parse("192.0.2.1/24", &g), -EINVAL);
	ck_assert_int_eq(ipgroup_parse("", &g), -EINVAL);
}
END_TEST

START_TEST(test_group_sockaddr)
{
	struct sockaddr_in6 s6;
	struct sockaddr_in s4;
	struct ipgroup a, b;

	memset(&s6, 0, sizeof s6);
	s6.sin6_family = AF_INET6;
	ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::1", &s6.sin6_addr), 1);
	ipgroup_of_sockaddr((struct sockaddr *)&s6, &a);
	ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::beef:1", &s6.sin6_addr), 1);
	ipgroup_of_sockaddr((struct sockaddr *)&s6, &b);
	ck_assert(ipgroup_equal(&a, &b));
	ck_assert_int_eq(a.family, AF_INET6);

	/* a dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d */
	ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:198.51.100.7", &s6.sin6_addr), 1);
	ipgroup_of_sockaddr((struct sockaddr *)&s6, &a);
	memset(&s4, 0, sizeof s4);
	s4.sin_family = AF_INET;
	ck_assert_int_eq(inet_pton(AF_INET, "198.51.100.7", &s4.sin_addr), 1);
	ipgroup_of_sockaddr((struct sockaddr *)&s4, &b);
	ck_assert(ipgroup_equal(&a, &b));
	ck_assert_int_eq(a.family, AF_INET);
	ck_assert_int_eq(inet_pton(AF_INET, "198.51.100.8", &s4.sin_addr), 1);
	ipgroup_of_sockaddr((struct sockaddr *)&s4, &b);
	ck_assert(!ipgroup_equal(&a, &b));
}
END_TEST

START_TEST(test_client_key)
{
	char k1[96], k2[96];

	auth_client_key("2001:db8:5:6::10", k1, sizeof k1);
	auth_client_key("2001:db8:5:6:aaaa::20", k2, sizeof k2);
	ck_assert_str_eq(k1, "ip 2001:db8:5:6::/64");
	ck_assert_str_eq(k1, k2);
	auth_client_key("::ffff:192.0.2.5", k1, sizeof k1);
	auth_client_key("192.0.2.5", k2, sizeof k2);
	ck_assert_str_eq(k1, "ip 192.0.2.5");
	ck_assert_str_eq(k1, k2);
	auth_client_key("192.0.2.6", k2, sizeof k2);
	ck_assert_str_ne(k1, k2);
	auth_client_key("local", k1, sizeof k1);
	ck_assert_str_eq(k1, "ip local");
}
END_TEST

/* ------------------------------------------------------------ lockout */

#define MIN_MS (60 * 1000LL)
#define T0 1800000000000LL   /* some unix ms in 2027 */

START_TEST(test_lockout_window)
{
	uint64_t lock = 15 * MIN_MS;

	ck_assert(!auth_lockout_active(false, T0, T0, lock));
	ck_assert(auth_lockout_active(true, T0, T0, lock));
	ck_assert(auth_lockout_active(true, T0, T0 + 15 * MIN_MS - 1, lock));
	/* expires: not for ever */
	ck_assert(!auth_lockout_active(true, T0, T0 + 15 * MIN_MS, lock));
	ck_assert(!auth_lockout_active(true, T0, T0 + 365 * 24 * 60 * MIN_MS, lock));
	/* a clock that went back keeps the lockout */
	ck_assert(auth_lockout_active(true, T0, T0 - 1000, lock));
	/* a record without a failure time (older stores) is over */
	ck_assert(!auth_lockout_active(true, 0, T0, lock));
}
END_TEST

START_TEST(test_failures_window)
{
	uint64_t win = 15 * MIN_MS;

	ck_assert_uint_eq(auth_failures_after(0, 0, T0, win), 1);
	ck_assert_uint_eq(auth_failures_after(1, T0, T0 + 1000, win), 2);
	ck_assert_uint_eq(auth_failures_after(4, T0, T0 + 15 * MIN_MS - 1, win), 5);
	/* failures further apart than the window are not consecutive */
	ck_assert_uint_eq(auth_failures_after(4, T0, T0 + 15 * MIN_MS, win), 1);
	ck_assert_uint_eq(auth_failures_after(4, T0, T0 + 24 * 60 * MIN_MS, win), 1);
	/* a clock that went back still counts */
	ck_assert_uint_eq(auth_failures_after(2, T0, T0 - 5, win), 3);
	ck_assert_uint_eq(auth_failures_after(UINT32_MAX, T0, T0 + 1, win), UINT32_MAX);
}
END_TEST

/* ------------------------------------------------------------ authzid */

static const struct authz_case {
	const char *authzid, *authcid;
	bool ok;
} authz_cases[] = {
	{ NULL, "user@x.test", true },
	{ "", "user@x.test", true },
	{ "user@x.test", "user@x.test", true },
	{ "user@X.TEST", "user@x.test", true },        /* the same address */
	{ "boss@x.test", "user@x.test", false },
	{ "user", "user@x.test", false },
	{ "user@x.test ", "user@x.test", false },
	{ "*", "user@x.test", false },
};

START_TEST(test_authzid)
{
	const struct authz_case *c = &authz_cases[_i];

	ck_assert_msg(auth_authzid_ok(c->authzid, c->authcid) == c->ok, "'%s' for '%s'",
	    c->authzid ? c->authzid : "(null)", c->authcid);
}
END_TEST

START_TEST(test_plain_split)
{
	static const char msg[] = "boss@x.test\0user@x.test\0secret";
	char z[SASL_FIELD_MAX + 1], u[SASL_FIELD_MAX + 1], p[SASL_FIELD_MAX + 1];

	ck_assert_int_eq(sasl_plain_split((const unsigned char *)msg, sizeof msg - 1, z, u, p), 0);
	ck_assert_str_eq(z, "boss@x.test");
	ck_assert_str_eq(u, "user@x.test");
	ck_assert_str_eq(p, "secret");
	/* sasl_plain_parse still refuses it outright */
	ck_assert_int_eq(sasl_plain_parse((const unsigned char *)msg, sizeof msg - 1, u, p),
	    -EINVAL);
	ck_assert_int_eq(sasl_plain_split((const unsigned char *)"\0u\0p", 4, z, u, p), 0);
	ck_assert_str_eq(z, "");
	ck_assert_int_eq(sasl_plain_split((const unsigned char *)"\xff\0u\0p", 5, z, u, p),
	    -EINVAL);
	ck_assert(z[0] == '\0' && u[0] == '\0' && p[0] == '\0');
	ck_assert_int_eq(sasl_plain_split((const unsigned char *)"z\0u", 3, z, u, p), -EINVAL);
}
END_TEST

/* ------------------------------------------------------------- config */

static char ta_dir[64];

/* Loads BASE + extra; rc of cfg_load, errors into errs. */
static int ta_load(const char *extra, struct config **cfg, struct buf *errs)
{
	char path[128];
	FILE *f;
	int rc;

	snprintf(ta_dir, sizeof ta_dir, "/tmp/govrelay-auth-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(ta_dir));
	snprintf(path, sizeof path, "%s/govrelay.conf", ta_dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "data_dir = /var/lib/govrelay\nlisten = mx 127.0.0.1:2525\n%s", extra);
	ck_assert_int_eq(fclose(f), 0);
	rc = cfg_load(path, cfg, errs);
	unlink(path);
	rmdir(ta_dir);
	return rc;
}

START_TEST(test_config_defaults)
{
	struct config *cfg = NULL;
	struct buf errs;

	buf_init(&errs);
	ck_assert_int_eq(ta_load("", &cfg, &errs), 0);
	ck_assert_uint_eq(cfg->auth_lockout_time, 15 * 60 * 1000);
	ck_assert_uint_eq(cfg->auth_session_failures, 3);
	ck_assert_uint_eq(cfg->rcpt_error_soft_limit, 3);
	ck_assert_uint_eq(cfg->rcpt_error_delay, 1000);
	ck_assert_uint_eq(cfg->rcpt_error_delay_max, 10000);
	cfg_unref(cfg);
	cfg = NULL;
	ck_assert_int_eq(ta_load("auth_lockout_time = 2s\nauth_session_failures = 1\n"
	    "rcpt_error_soft_limit = 0\nrcpt_error_delay = 0s\nrcpt_error_delay_max = 1m\n",
	    &cfg, &errs), 0);
	ck_assert_uint_eq(cfg->auth_lockout_time, 2000);
	ck_assert_uint_eq(cfg->auth_session_failures, 1);
	ck_assert_uint_eq(cfg->rcpt_error_soft_limit, 0);
	ck_assert_uint_eq(cfg->rcpt_error_delay, 0);
	ck_assert_uint_eq(cfg->rcpt_error_delay_max, 60000);
	cfg_unref(cfg);
	buf_free(&errs);
}
END_TEST

static const struct bad_key {
	const char *line, *want;
} bad_keys[] = {
	{ "auth_lockout_time = 15", "needs a unit" },
	{ "auth_lockout_time = 0s", "out of range" },
	{ "auth_lockout_time = 31d", "out of range" },
	{ "auth_session_failures = 0", "out of range (allowed: 1..100)" },
	{ "auth_session_failures = many", "is not a number" },
	{ "rcpt_error_soft_limit = 1001", "out of range (allowed: 0..1000)" },
	{ "rcpt_error_delay = 2m", "out of range" },
	{ "rcpt_error_delay_max = 6m", "out of range" },
};

START_TEST(test_config_bad)
{
	struct config *cfg = NULL;
	struct buf errs;
	char line[256];

	buf_init(&errs);
	snprintf(line, sizeof line, "%s\n", bad_keys[_i].line);
	ck_assert_int_eq(ta_load(line, &cfg, &errs), -EINVAL);
	ck_assert_ptr_null(cfg);
	/* FILE:3: the key's line */
	ck_assert_msg(strstr(buf_cstr(&errs), "govrelay.conf:3: ") != NULL, "%s: %s",
	    bad_keys[_i].line, buf_cstr(&errs));
	ck_assert_msg(strstr(buf_cstr(&errs), bad_keys[_i].want) != NULL, "%s: %s",
	    bad_keys[_i].line, buf_cstr(&errs));
	buf_free(&errs);
}
END_TEST

#define N_CASES(a) (int)(sizeof(a) / sizeof((a)[0]))

static Suite *ta_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("pure");

	tcase_add_loop_test(tc, test_group_equal, 0, N_CASES(group_cases));
	tcase_add_test(tc, test_group_format);
	tcase_add_test(tc, test_group_sockaddr);
	tcase_add_test(tc, test_client_key);
	tcase_add_test(tc, test_lockout_window);
	tcase_add_test(tc, test_failures_window);
	tcase_add_loop_test(tc, test_authzid, 0, N_CASES(authz_cases));
	tcase_add_test(tc, test_plain_split);
	tcase_add_test(tc, test_config_defaults);
	tcase_add_loop_test(tc, test_config_bad, 0, N_CASES(bad_keys));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ta_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
