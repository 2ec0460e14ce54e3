/*
 * test_addr: table-driven tests of the four small pure modules of issue 4:
 * common/addr.c (canonical domains through IDNA2008 and canonical
 * addresses), common/rfc5322.c (the header scanner and the address-list
 * parser), common/sasl.c (strict base64 and the PLAIN message) and
 * common/passwd.c (scrypt hashes); and common/buf.c's buf_printf, which
 * formats into the room it has and again only when that was short.
 *
 * Every table row carries a label that names what it checks; failures
 * print the label. Length limits are built at run time, exactly at the
 * limit and one over. The scrypt tests are few on purpose: each default
 * hash costs about 100 ms and 32 MiB (much more under valgrind), so only
 * three run at the default cost and the rest use ln = 10.
 *
 * OWNERSHIP: none. THREADS: Check forks one process per test.
 * ERRORS: assertion failures.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/buf.h"
#include "common/passwd.h"
#include "common/rfc5322.h"
#include "common/sasl.h"

/* n copies of c, NUL-terminated, into out (room for n + 1). */
static void ta_fill(char *out, char c, size_t n)
{
	memset(out, c, n);
	out[n] = '\0';
}

/* Appends src to the NUL-terminated dst of capacity cap; fails the test on overflow. */
static void ta_cat(char *dst, size_t cap, const char *src)
{
	size_t dl = strlen(dst), sl = strlen(src);

	ck_assert_uint_lt(dl + sl, cap);
	memcpy(dst + dl, src, sl + 1);
}

static void ta_feed(struct rfc5322_scan *sc, const char *line)
{
	rfc5322_scan_line(sc, line, strlen(line));
}

/* ------------------------------------------------------------- domains */

static const struct domain_case {
	const char *label;
	const char *in;
	int rc;
	const char *out;      /* canonical form when rc == 0 */
	const char *why;      /* substring of *why when rc != 0, or NULL */
} domain_cases[] = {
	{ "U-labels Vietnamese", "H\xc3\xa0-N\xe1\xbb\x99i.vn", 0, "xn--h-ni-0na4517b.vn", NULL },
	{ "same name as uppercase A-label", "XN--H-NI-0NA4517B.VN", 0, "xn--h-ni-0na4517b.vn", NULL },
	{ "another uppercase A-label", "XN--H-NI-5QA.vn", 0, "xn--h-ni-5qa.vn", NULL },
	{ "U-label with trailing dot", "b\xc3\xbc" "cher.example.", 0, "xn--bcher-kva.example", NULL },
	{ "A-label mixed case", "xn--Bcher-kva.Example", 0, "xn--bcher-kva.example", NULL },
	{ "S\xe1\xbb\x9f.vn", "S\xe1\xbb\x9f.vn", 0, "xn--s-lym.vn", NULL },
	{ "uppercase U-label mapped (UTS 46)", "\xc3\x80" "B.VN", 0, "xn--b-rfa.vn", NULL },
	{ "fullwidth letters mapped", "\xef\xbd\x85\xef\xbd\x98\xef\xbd\x81\xef\xbd\x8d\xef\xbd\x90\xef\xbd\x8c\xef\xbd\x85.com", 0, "example.com", NULL },
	{ "ideographic full stop is a dot", "a\xe3\x80\x82" "b\xc3\xbc.vn", 0, "a.xn--b-eha.vn", NULL },
	{ "sharp s kept (non-transitional)", "fa\xc3\x9f.de", 0, "xn--fa-hia.de", NULL },
	{ "ASCII lowercased", "Mail.Example.COM", 0, "mail.example.com", NULL },
	{ "ASCII trailing dot removed", "example.com.", 0, "example.com", NULL },
	{ "RFC 1123 name with --- kept", "r1---sn.Example", 0, "r1---sn.example", NULL },
	{ "single label", "localhost", 0, "localhost", NULL },
	{ "digits in a non-last label", "123.example", 0, "123.example", NULL },
	{ "digits and letters in last label", "a.b2", 0, "a.b2", NULL },

	{ "empty", "", -EINVAL, NULL, "empty" },
	{ "only a dot", ".", -EINVAL, NULL, "empty" },
	{ "two trailing dots", "a.vn..", -EINVAL, NULL, "empty label" },
	{ "empty middle label", "a..vn", -EINVAL, NULL, "empty label" },
	{ "leading dot", ".a.vn", -EINVAL, NULL, "empty label" },
	{ "IPv4 literal", "[192.0.2.1]", -EINVAL, NULL, "literal" },
	{ "IPv6 literal", "[IPv6:2001:db8::1]", -EINVAL, NULL, "literal" },
	{ "bare IPv4 address", "192.0.2.1", -EINVAL, NULL, "all digits" },
	{ "all-numeric last label", "example.123", -EINVAL, NULL, "all digits" },
	{ "underscore", "a_b.vn", -EINVAL, NULL, "letters, digits, hyphens" },
	{ "slash", "a/b.vn", -EINVAL, NULL, "letters, digits, hyphens" },
	{ "space", "a b.vn", -EINVAL, NULL, "space" },
	{ "control character", "a\x01" "b.vn", -EINVAL, NULL, "control" },
	{ "leading hyphen", "-ab.vn", -EINVAL, NULL, "hyphen" },
	{ "trailing hyphen", "ab-.vn", -EINVAL, NULL, "hyphen" },
	{ "U-label with trailing hyphen", "h\xc3\xa0-.vn", -EINVAL, NULL, "hyphen" },
	{ "bad punycode", "xn--zzzz.vn", -EINVAL, NULL, "punycode" },
	{ "A-label of a disallowed string", "xn--abc.vn", -EINVAL, NULL, "IDNA2008" },
	{ "ZWJ refused, no transitional fallback", "a\xe2\x80\x8d" "b.vn", -EINVAL, NULL, "IDNA2008" },
	{ "ZWNJ refused, no transitional fallback", "a\xe2\x80\x8c" "b.vn", -EINVAL, NULL, "IDNA2008" },
	{ "R-LDH label inside an IDN", "ab--cd.h\xc3\xa0.vn", -EINVAL, NULL, "--" },
	{ "bad UTF-8", "\xc3\x28.vn", -EINVAL, NULL, "UTF-8" },
	{ "truncated UTF-8", "a\xe1\xbb", -EINVAL, NULL, "UTF-8" },
	{ "overlong UTF-8", "\xc0\xae.vn", -EINVAL, NULL, "UTF-8" },
	{ "symbol disallowed", "\xe2\x98\x83.vn", -EINVAL, NULL, "IDNA2008" },
};

START_TEST(test_domain)
{
	const struct domain_case *c = &domain_cases[_i];
	char out[ADDR_DOMAIN_MAX + 1];
	const char *why = NULL;
	int rc;

	rc = addr_domain_canon(c->in, out, sizeof out, &why);
	ck_assert_msg(rc == c->rc, "%s: rc %d want %d (%s)", c->label, rc, c->rc,
	    why ? why : "-");
	if (rc == 0) {
		ck_assert_msg(strcmp(out, c->out) == 0, "%s: '%s' want '%s'", c->label, out, c->out);
	} else {
		ck_assert_msg(why != NULL, "%s: no reason", c->label);
		ck_assert_msg(c->why == NULL || strstr(why, c->why) != NULL,
		    "%s: reason '%s' lacks '%s'", c->label, why, c->why);
		ck_assert_msg(out[0] == '\0', "%s: output not cleared", c->label);
	}
}
END_TEST

/* RFC 1035 2.3.4: 63-octet labels, 253-octet names; one over each fails. */
START_TEST(test_domain_lengths)
{
	char in[600], out[ADDR_DOMAIN_MAX + 1], small[8];
	const char *why = NULL;

	ta_fill(in, 'a', 63);
	ta_cat(in, sizeof in, ".vn");
	ck_assert_int_eq(addr_domain_canon(in, out, sizeof out, &why), 0);
	ck_assert_str_eq(out, in);
	ta_fill(in, 'a', 64);
	ta_cat(in, sizeof in, ".vn");
	ck_assert_int_eq(addr_domain_canon(in, out, sizeof out, &why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "63"));

	/* 4 labels of 63 plus 3 dots is 255; trim to exactly 253 and 254. */
	for (int i = 0; i < 4; i++) {
		memset(in + i * 64, 'b', 63);
		in[i * 64 + 63] = '.';
	}
	in[253] = '\0';
	in[252] = 'c';
	ck_assert_int_eq(addr_domain_canon(in, out, sizeof out, &why), 0);
	ck_assert_uint_eq(strlen(out), 253);
	/* The same 253 octets plus a trailing dot are still 253. */
	in[253] = '.';
	in[254] = '\0';
	ck_assert_int_eq(addr_domain_canon(in, out, sizeof out, &why), 0);
	in[253] = 'd';
	ck_assert_int_eq(addr_domain_canon(in, out, sizeof out, &why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "253"));

	/*
	 * U-labels: 226 octets of UTF-8 whose A-label form ("xn--h-ni-h-ni-x-
	 * 76af2358hga", 27 octets) is 9 * 28 + 2 = 254 octets: one too many,
	 * though the input itself is short.
	 */
	in[0] = '\0';
	for (int i = 0; i < 9; i++)
		ta_cat(in, sizeof in, "h\xc3\xa0-n\xe1\xbb\x99i-h\xc3\xa0-n\xe1\xbb\x99i-x.");
	ta_cat(in, sizeof in, "vn");
	ck_assert_int_eq(addr_domain_canon(in, out, sizeof out, &why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "253"));
	/* One label fewer fits. */
	in[0] = '\0';
	for (int i = 0; i < 8; i++)
		ta_cat(in, sizeof in, "h\xc3\xa0-n\xe1\xbb\x99i-h\xc3\xa0-n\xe1\xbb\x99i-x.");
	ta_cat(in, sizeof in, "vn");
	ck_assert_int_eq(addr_domain_canon(in, out, sizeof out, &why), 0);
	ck_assert_uint_eq(strlen(out), 8 * 28 + 2);

	/* Too small an output buffer is an error, never a truncated name. */
	ck_assert_int_eq(addr_domain_canon("example.com", small, sizeof small, &why), -EINVAL);
	ck_assert_str_eq(small, "");
	/* Very long input is refused before libidn2 sees it. */
	ta_fill(in, 'a', sizeof in - 1);
	ck_assert_int_eq(addr_domain_canon(in, out, sizeof out, &why), -EINVAL);
}
END_TEST

/* ----------------------------------------------------------- addresses */

static const struct addr_case {
	const char *label;
	const char *in;
	int rc;
	const char *out;
	const char *why;
} addr_cases[] = {
	{ "lowercased", "User@Example.COM", 0, "user@example.com", NULL },
	{ "dotted local", "First.Last@x.vn", 0, "first.last@x.vn", NULL },
	{ "every atext special", "a+b!#$%&'*/=?^_`{|}~-@x.vn", 0, "a+b!#$%&'*/=?^_`{|}~-@x.vn", NULL },
	{ "UTF-8 local, IDN domain", "Nguy\xe1\xbb\x85n@S\xe1\xbb\x9f.vn", 0, "nguy\xe1\xbb\x85n@xn--s-lym.vn", NULL },
	{ "non-ASCII letters kept as they are", "\xc3\x80" "B@x.vn", 0, "\xc3\x80" "b@x.vn", NULL },
	{ "trailing dot in domain", "a@x.vn.", 0, "a@x.vn", NULL },
	{ "A-label domain", "a@XN--H-NI-0NA4517B.vn", 0, "a@xn--h-ni-0na4517b.vn", NULL },
	{ "quoted with space kept quoted", "\"A B\"@x.vn", 0, "\"a b\"@x.vn", NULL },
	{ "needless quotes removed", "\"Ab\"@x.vn", 0, "ab@x.vn", NULL },
	{ "needless quoted-pair removed", "\"a\\b\"@x.vn", 0, "ab@x.vn", NULL },
	{ "quoted @ kept", "\"a@b\"@x.vn", 0, "\"a@b\"@x.vn", NULL },
	{ "quoted DQUOTE escaped", "\"a\\\"b\"@x.vn", 0, "\"a\\\"b\"@x.vn", NULL },
	{ "quoted backslash escaped", "\"a\\\\b\"@x.vn", 0, "\"a\\\\b\"@x.vn", NULL },
	{ "quoted leading dot", "\".a\"@x.vn", 0, "\".a\"@x.vn", NULL },
	{ "quoted escaped space minimised", "\"a\\ b\"@x.vn", 0, "\"a b\"@x.vn", NULL },
	{ "quoted UTF-8", "\"\xc3\xbc x\"@x.vn", 0, "\"\xc3\xbc x\"@x.vn", NULL },

	{ "empty", "", -EINVAL, NULL, "empty" },
	{ "no @", "user.x.vn", -EINVAL, NULL, "@domain" },
	{ "empty local part", "@x.vn", -EINVAL, NULL, "empty local" },
	{ "empty domain", "a@", -EINVAL, NULL, "empty domain" },
	{ "IPv4 literal", "a@[192.0.2.1]", -EINVAL, NULL, "address literals" },
	{ "IPv6 literal", "a@[IPv6:2001:db8::1]", -EINVAL, NULL, "address literals" },
	{ "bare IP as domain", "a@192.0.2.1", -EINVAL, NULL, "all digits" },
	{ "two @", "a@b@x.vn", -EINVAL, NULL, "dot-atom" },
	{ "double dot", "a..b@x.vn", -EINVAL, NULL, "dot-atom" },
	{ "leading dot", ".a@x.vn", -EINVAL, NULL, "dot-atom" },
	{ "trailing dot", "a.@x.vn", -EINVAL, NULL, "dot-atom" },
	{ "space", "a b@x.vn", -EINVAL, NULL, "dot-atom" },
	{ "text after quote", "\"a\"b@x.vn", -EINVAL, NULL, "after its closing quote" },
	{ "unterminated quote", "\"ab@x.vn", -EINVAL, NULL, "unterminated" },
	{ "tab in quotes", "\"a\tb\"@x.vn", -EINVAL, NULL, "control" },
	{ "empty quotes", "\"\"@x.vn", -EINVAL, NULL, "empty local" },
	{ "lone backslash", "\"a\\\"@x.vn", -EINVAL, NULL, NULL },
	{ "bad UTF-8", "\xff@x.vn", -EINVAL, NULL, "UTF-8" },
	{ "overlong UTF-8", "\xc0\xaf@x.vn", -EINVAL, NULL, "UTF-8" },
	{ "truncated UTF-8", "a\xe1\xbb@x.vn", -EINVAL, NULL, "UTF-8" },
	{ "surrogate", "\xed\xa0\x80@x.vn", -EINVAL, NULL, "UTF-8" },
	{ "bad domain", "a@x_y.vn", -EINVAL, NULL, "letters, digits" },
	{ "ZWJ in domain", "a@a\xe2\x80\x8d" "b.vn", -EINVAL, NULL, "IDNA2008" },
};

START_TEST(test_addr)
{
	const struct addr_case *c = &addr_cases[_i];
	char out[ADDR_MAX + 1];
	const char *why = NULL;
	int rc;

	rc = addr_canon(c->in, out, sizeof out, &why);
	ck_assert_msg(rc == c->rc, "%s: rc %d want %d (%s)", c->label, rc, c->rc,
	    why ? why : "-");
	if (rc == 0) {
		ck_assert_msg(strcmp(out, c->out) == 0, "%s: '%s' want '%s'", c->label, out, c->out);
		/* Canonical forms are fixed points. */
		ck_assert_int_eq(addr_canon(out, out, sizeof out, &why), 0);
		ck_assert_msg(strcmp(out, c->out) == 0, "%s: not idempotent: '%s'", c->label, out);
	} else {
		ck_assert_msg(why != NULL, "%s: no reason", c->label);
		ck_assert_msg(c->why == NULL || strstr(why, c->why) != NULL,
		    "%s: reason '%s' lacks '%s'", c->label, why, c->why);
	}
}
END_TEST

/* RFC 5321 4.5.3.1.1: a 64-octet local part is fine, 65 is not. */
START_TEST(test_addr_lengths)
{
	char in[ADDR_MAX + 64], out[ADDR_MAX + 1], small[8];
	const char *why = NULL;

	ta_fill(in, 'x', 64);
	ta_cat(in, sizeof in, "@x.vn");
	ck_assert_int_eq(addr_canon(in, out, sizeof out, &why), 0);
	ck_assert_str_eq(out, in);
	ta_fill(in, 'x', 65);
	ta_cat(in, sizeof in, "@x.vn");
	ck_assert_int_eq(addr_canon(in, out, sizeof out, &why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "64"));
	/* Quoted: 62 octets of content plus the two quotes. */
	in[0] = '"';
	ta_fill(in + 1, 'y', 61);
	ta_cat(in, sizeof in, " \"@x.vn");
	ck_assert_int_eq(addr_canon(in, out, sizeof out, &why), 0);
	ck_assert_str_eq(out, in);
	/* The longest address: 64 + 1 + 253 octets. */
	ta_fill(in, 'x', 64);
	in[64] = '@';
	for (int i = 0; i < 4; i++) {
		memset(in + 65 + i * 64, 'b', 63);
		in[65 + i * 64 + 63] = '.';
	}
	in[65 + 253] = '\0';
	in[65 + 252] = 'c';
	ck_assert_int_eq(addr_canon(in, out, sizeof out, &why), 0);
	ck_assert_uint_eq(strlen(out), ADDR_MAX);
	ck_assert_int_eq(addr_canon("a@x.vn", small, 6, &why), -EINVAL);
	ck_assert_str_eq(small, "");
	ck_assert_int_eq(addr_canon("a@x.vn", small, 7, &why), 0);
	ck_assert_str_eq(small, "a@x.vn");
}
END_TEST

START_TEST(test_addr_domain_of)
{
	ck_assert_str_eq(addr_domain_of("a@x.vn"), "x.vn");
	ck_assert_str_eq(addr_domain_of("\"a@b\"@x.vn"), "x.vn");
	ck_assert_str_eq(addr_domain_of("nodomain"), "");
	ck_assert_str_eq(addr_domain_of(""), "");
}
END_TEST

/* ---------------------------------------------------- header scanner */

#define SCAN_LINES 8

static const struct scan_case {
	const char *label;
	const char *lines[SCAN_LINES];  /* NULL-terminated */
	bool done;
	bool malformed;
	unsigned from_count;
	const char *from;               /* expected body of the first From: */
} scan_cases[] = {
	{ "one From, body ignored",
	  { "From: a@b.vn", "To: c@d.vn", "", "From: evil@x.vn", "body", NULL },
	  true, false, 1, " a@b.vn" },
	{ "folded From unfolded",
	  { "Subject: x", "From: \"Name\"", " <a@b.vn>", "\t(comment)", "To: c@d.vn", "", NULL },
	  true, false, 1, " \"Name\" <a@b.vn>\t(comment)" },
	{ "two From fields",
	  { "From: a@b.vn", "Subject: x", "from: c@d.vn", "", NULL },
	  true, false, 2, " a@b.vn" },
	{ "field name case-insensitive, no space",
	  { "FROM:a@b.vn", "", NULL },
	  true, false, 1, "a@b.vn" },
	{ "WSP before colon still From (RFC 5322 4.5)",
	  { "From : a@b.vn", "From\t: c@d.vn", "", NULL },
	  true, false, 2, " a@b.vn" },
	{ "From only after the blank line",
	  { "Subject: x", "", "From: evil@x.vn", NULL },
	  true, false, 0, "" },
	{ "no blank line",
	  { "From: a@b.vn", "Subject: x", NULL },
	  false, false, 1, " a@b.vn" },
	{ "line without a colon",
	  { "From: a@b.vn", "this is not a field", "", NULL },
	  true, true, 1, " a@b.vn" },
	{ "continuation before any field",
	  { " leading", "From: a@b.vn", "", NULL },
	  true, true, 1, " a@b.vn" },
	{ "empty field name",
	  { ": x", "", NULL },
	  true, true, 0, "" },
	{ "space inside field name",
	  { "Fr om: a@b.vn", "", NULL },
	  true, true, 0, "" },
	{ "other names are not From",
	  { "X-From: a@b.vn", "Resent-From: b@b.vn", "Fromage: c@b.vn", "Reply-To: d@b.vn", "", NULL },
	  true, false, 0, "" },
	{ "continuation of another field not kept",
	  { "Subject: a", " b", "From: c@d.vn", " (x)", "Subject2: y", " z", "", NULL },
	  true, false, 1, " c@d.vn (x)" },
	{ "empty From body",
	  { "From:", "", NULL },
	  true, false, 1, "" },
	{ "UTF-8 From (RFC 6532)",
	  { "From: \"Nguy\xe1\xbb\x85n\" <a@b.vn>", "", NULL },
	  true, false, 1, " \"Nguy\xe1\xbb\x85n\" <a@b.vn>" },
};

START_TEST(test_scan)
{
	const struct scan_case *c = &scan_cases[_i];
	struct rfc5322_scan *sc = malloc(sizeof *sc);

	ck_assert_ptr_nonnull(sc);
	rfc5322_scan_init(sc);
	for (size_t i = 0; i < SCAN_LINES && c->lines[i] != NULL; i++)
		ta_feed(sc, c->lines[i]);
	ck_assert_msg(sc->done == c->done, "%s: done %d", c->label, sc->done);
	ck_assert_msg(sc->malformed == c->malformed, "%s: malformed %d", c->label, sc->malformed);
	ck_assert_msg(!sc->too_large, "%s: too_large", c->label);
	ck_assert_msg(sc->from_count == c->from_count, "%s: from_count %u want %u", c->label,
	    sc->from_count, c->from_count);
	ck_assert_msg(!sc->from_truncated, "%s: truncated", c->label);
	ck_assert_msg(sc->from_len == strlen(c->from) && strcmp(sc->from, c->from) == 0,
	    "%s: from '%s' want '%s'", c->label, sc->from, c->from);
	free(sc);
}
END_TEST

START_TEST(test_scan_limits)
{
	struct rfc5322_scan *sc = malloc(sizeof *sc);
	char line[1001];
	size_t fed = 0;

	ck_assert_ptr_nonnull(sc);

	/* Exactly RFC5322_HEADER_MAX octets with CRLFs is fine, one more is not. */
	rfc5322_scan_init(sc);
	rfc5322_scan_line(sc, "From: a@b.vn", 12);
	fed = 14;
	ta_fill(line, 'x', 998);
	memcpy(line, "X-Pad: ", 7);
	while (fed + 1000 <= RFC5322_HEADER_MAX) {
		rfc5322_scan_line(sc, line, 998);
		fed += 1000;
	}
	ck_assert(!sc->too_large);
	rfc5322_scan_line(sc, line, RFC5322_HEADER_MAX - fed - 2);
	ck_assert(!sc->too_large);
	rfc5322_scan_line(sc, "Y: z", 4);
	ck_assert(sc->too_large);
	ck_assert(!sc->done);
	rfc5322_scan_line(sc, "From: c@d.vn", 12);
	rfc5322_scan_line(sc, "", 0);
	ck_assert(sc->done);
	ck_assert_uint_eq(sc->from_count, 2);
	ck_assert_str_eq(sc->from, " a@b.vn");

	/* A From: longer than RFC5322_FROM_MAX is kept cut and flagged. */
	rfc5322_scan_init(sc);
	rfc5322_scan_line(sc, "From: a@b.vn", 12);
	ta_fill(line, 'y', 1000);
	line[0] = ' ';
	for (int i = 0; i < 10; i++)
		rfc5322_scan_line(sc, line, 1000);
	rfc5322_scan_line(sc, "", 0);
	ck_assert(sc->from_truncated);
	ck_assert_uint_eq(sc->from_len, RFC5322_FROM_MAX);
	ck_assert_uint_eq(strlen(sc->from), RFC5322_FROM_MAX);
	ck_assert(sc->done && !sc->too_large && !sc->malformed);

	/* Exactly RFC5322_FROM_MAX octets is not truncated. */
	rfc5322_scan_init(sc);
	rfc5322_scan_line(sc, "From:", 5);
	for (int i = 0; i < 8; i++)
		rfc5322_scan_line(sc, line, 1000);
	rfc5322_scan_line(sc, line, RFC5322_FROM_MAX - 8000);
	ck_assert(!sc->from_truncated);
	ck_assert_uint_eq(sc->from_len, RFC5322_FROM_MAX);
	free(sc);
}
END_TEST

/* -------------------------------------------------------- address lists */

#define LIST_MAX 3

static const struct list_case {
	const char *label;
	const char *value;
	size_t len;                 /* 0: strlen(value) */
	int rc;
	size_t n;
	const char *addr[LIST_MAX];
	const char *why;
} list_cases[] = {
	{ "quoted UTF-8 name, IDN domain", "\"Nguy\xe1\xbb\x85n V\xc4\x83n A\" <a@S\xe1\xbb\x9f.vn>", 0, 0, 1, { "a@xn--s-lym.vn" }, NULL },
	{ "unquoted UTF-8 name", "Nguy\xe1\xbb\x85n V\xc4\x83n A <A@B.VN>", 0, 0, 1, { "a@b.vn" }, NULL },
	{ "nested comment", "a@b.vn (comment (nested))", 0, 0, 1, { "a@b.vn" }, NULL },
	{ "group of two", "Group: x@y.vn, \"q\" <z@w.vn>;", 0, 0, 2, { "x@y.vn", "z@w.vn" }, NULL },
	{ "angle only", "<a@b.vn>", 0, 0, 1, { "a@b.vn" }, NULL },
	{ "two bare", "a@b.vn, c@d.vn", 0, 0, 2, { "a@b.vn", "c@d.vn" }, NULL },
	{ "encoded-word name", "=?utf-8?q?Nguy=E1=BB=85n?= <a@b.vn>", 0, 0, 1, { "a@b.vn" }, NULL },
	{ "obs-phrase with dot", "John Q. Public <jqp@x.vn>", 0, 0, 1, { "jqp@x.vn" }, NULL },
	{ "leading comment", "(boss) a@b.vn", 0, 0, 1, { "a@b.vn" }, NULL },
	{ "quoted-pair in comment", "a@b.vn (x \\) y)", 0, 0, 1, { "a@b.vn" }, NULL },
	{ "quoted-pair in name", "\"a\\\"b\" <c@d.vn>", 0, 0, 1, { "c@d.vn" }, NULL },
	{ "quoted local part", "\"a b\"@x.vn", 0, 0, 1, { "\"a b\"@x.vn" }, NULL },
	{ "CFWS around @", "a (x) @ (y) b.vn", 0, 0, 1, { "a@b.vn" }, NULL },
	{ "spaces inside angle", "Name < a@b.vn >", 0, 0, 1, { "a@b.vn" }, NULL },
	{ "empty group", "undisclosed-recipients:;", 0, 0, 0, { NULL }, NULL },
	{ "empty group with CFWS", "G: (none) ;", 0, 0, 0, { NULL }, NULL },
	{ "group then mailbox", "\"Ann\" <a@b.vn> (work), g: x@y.vn;, c@d.vn", 0, 0, 3, { "a@b.vn", "x@y.vn", "c@d.vn" }, NULL },
	{ "A-label and U-label", "  <A@H\xc3\xa0-N\xe1\xbb\x99i.vn>  ", 0, 0, 1, { "a@xn--h-ni-0na4517b.vn" }, NULL },
	{ "tab as WSP", "Name\t<a@b.vn>", 0, 0, 1, { "a@b.vn" }, NULL },

	{ "unterminated quote", "\"Name <a@b.vn>", 0, -EINVAL, 0, { NULL }, "unterminated quoted" },
	{ "unterminated comment", "a@b.vn (note", 0, -EINVAL, 0, { NULL }, "unterminated comment" },
	{ "unterminated nested comment", "a@b.vn (x (y)", 0, -EINVAL, 0, { NULL }, "unterminated comment" },
	{ "unterminated angle", "Name <a@b.vn", 0, -EINVAL, 0, { NULL }, "unterminated <" },
	{ "angle only opened", "Name <", 0, -EINVAL, 0, { NULL }, "unterminated <" },
	{ "empty", "", 0, -EINVAL, 0, { NULL }, "empty address list" },
	{ "only spaces", "   ", 0, -EINVAL, 0, { NULL }, "empty address list" },
	{ "only a comment", " (nobody) ", 0, -EINVAL, 0, { NULL }, "empty address list" },
	{ "missing @", "ab.vn", 0, -EINVAL, 0, { NULL }, "@domain" },
	{ "name without address", "John Smith", 0, -EINVAL, 0, { NULL }, "@domain" },
	{ "two @", "a@b@c.vn", 0, -EINVAL, 0, { NULL }, "more than one @" },
	{ "two @ in angle", "<a@b@c.vn>", 0, -EINVAL, 0, { NULL }, "more than one @" },
	{ "empty angle", "<>", 0, -EINVAL, 0, { NULL }, "empty <>" },
	{ "trailing comma", "a@b.vn,", 0, -EINVAL, 0, { NULL }, "empty element" },
	{ "double comma", "a@b.vn,,c@d.vn", 0, -EINVAL, 0, { NULL }, "empty element" },
	{ "missing comma", "a@b.vn c@d.vn", 0, -EINVAL, 0, { NULL }, "expected ','" },
	{ "text after angle", "Name <a@b.vn> trailing", 0, -EINVAL, 0, { NULL }, "expected ','" },
	{ "address literal", "a@[192.0.2.1]", 0, -EINVAL, 0, { NULL }, "address literals" },
	{ "source route", "<@r.vn:a@b.vn>", 0, -EINVAL, 0, { NULL }, "source routes" },
	{ "unterminated group", "G: a@b.vn", 0, -EINVAL, 0, { NULL }, "missing ';'" },
	{ "nested group", "G: H: a@b.vn;;", 0, -EINVAL, 0, { NULL }, "nested" },
	{ "group without name", ": a@b.vn;", 0, -EINVAL, 0, { NULL }, "no name" },
	{ "stray dot in local part", "a.@b.vn", 0, -EINVAL, 0, { NULL }, "stray '.'" },
	{ "CFWS inside local part (obs)", "a . b@c.vn", 0, -EINVAL, 0, { NULL }, "@domain" },
	{ "empty local part", "@b.vn", 0, -EINVAL, 0, { NULL }, "empty local part" },
	{ "empty domain", "a@", 0, -EINVAL, 0, { NULL }, "empty domain" },
	{ "trailing dot in domain", "a@b.vn.", 0, -EINVAL, 0, { NULL }, "malformed domain" },
	{ "bad domain from addr_canon", "a@-b.vn", 0, -EINVAL, 0, { NULL }, "hyphen" },
	{ "bad UTF-8 in name", "\"\xc3\" <a@b.vn>", 0, -EINVAL, 0, { NULL }, "UTF-8" },
	{ "bad UTF-8 in comment", "a@b.vn (\xff)", 0, -EINVAL, 0, { NULL }, "UTF-8" },
	{ "CR LF left in", "a@b.vn\r\n", 0, -EINVAL, 0, { NULL }, NULL },
	{ "control in quoted", "\"a\x01\" <a@b.vn>", 0, -EINVAL, 0, { NULL }, "control" },
	{ "NUL byte", "a@b.vn\0, c@d.vn", 15, -EINVAL, 0, { NULL }, "NUL" },
	{ "second address bad frees the first", "a@b.vn, c@", 0, -EINVAL, 0, { NULL }, "empty domain" },
};

START_TEST(test_list)
{
	const struct list_case *c = &list_cases[_i];
	size_t len = c->len ? c->len : strlen(c->value);
	const char *why = NULL;
	char **list = (char **)1;
	size_t n = 99;
	int rc;

	rc = rfc5322_parse_address_list(c->value, len, &list, &n, &why);
	ck_assert_msg(rc == c->rc, "%s: rc %d want %d (%s)", c->label, rc, c->rc,
	    why ? why : "-");
	if (rc == 0) {
		ck_assert_msg(n == c->n, "%s: n %zu want %zu", c->label, n, c->n);
		for (size_t i = 0; i < n && i < LIST_MAX; i++)
			ck_assert_msg(strcmp(list[i], c->addr[i]) == 0, "%s: [%zu] '%s' want '%s'",
			    c->label, i, list[i], c->addr[i]);
	} else {
		ck_assert_msg(list == NULL && n == 0, "%s: outputs not cleared", c->label);
		ck_assert_msg(why != NULL, "%s: no reason", c->label);
		ck_assert_msg(c->why == NULL || strstr(why, c->why) != NULL,
		    "%s: reason '%s' lacks '%s'", c->label, why, c->why);
	}
	rfc5322_free_list(list, n);
}
END_TEST

/* The scanner's output feeds the parser, as policy/stage_tenant.c does. */
START_TEST(test_scan_then_parse)
{
	struct rfc5322_scan *sc = malloc(sizeof *sc);
	const char *why = NULL;
	char **list = NULL;
	size_t n = 0;

	ck_assert_ptr_nonnull(sc);
	rfc5322_scan_init(sc);
	ta_feed(sc, "Subject: hi");
	ta_feed(sc, "From: \"S\xe1\xbb\x9f N\xe1\xbb\x99i v\xe1\xbb\xa5\"");
	ta_feed(sc, "\t<VanThu@S\xe1\xbb\x9f.vn> (office");
	ta_feed(sc, " (nested))");
	ta_feed(sc, "");
	ck_assert(sc->done);
	ck_assert_int_eq(rfc5322_parse_address_list(sc->from, sc->from_len, &list, &n, &why), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(list[0], "vanthu@xn--s-lym.vn");
	rfc5322_free_list(list, n);
	rfc5322_free_list(NULL, 0);
	free(sc);
}
END_TEST

/* --------------------------------------------------------------- base64 */

static const struct b64_case {
	const char *label;
	const char *in;
	size_t inlen;        /* 0: strlen(in) */
	int rc;
	const char *out;     /* decoded bytes (text here) when rc == 0 */
	size_t outlen;
} b64_cases[] = {
	/* RFC 4648 section 10 test vectors. */
	{ "empty", "", 0, 0, "", 0 },
	{ "f", "Zg==", 0, 0, "f", 1 },
	{ "fo", "Zm8=", 0, 0, "fo", 2 },
	{ "foo", "Zm9v", 0, 0, "foo", 3 },
	{ "foob", "Zm9vYg==", 0, 0, "foob", 4 },
	{ "fooba", "Zm9vYmE=", 0, 0, "fooba", 5 },
	{ "foobar", "Zm9vYmFy", 0, 0, "foobar", 6 },
	{ "= alone is empty (RFC 4954 4)", "=", 0, 0, "", 0 },
	{ "PLAIN message", "AHVzZXIAcGFzcw==", 0, 0, "\0user\0pass", 10 },
	{ "+ and /", "+/+/", 0, 0, "\xfb\xff\xbf", 3 },

	{ "missing padding", "Zg", 0, -EINVAL, NULL, 0 },
	{ "half padding", "Zg=", 0, -EINVAL, NULL, 0 },
	{ "CRLF", "Zm9v\r\n", 0, -EINVAL, NULL, 0 },
	{ "space inside", "Zm 9vYg==", 0, -EINVAL, NULL, 0 },
	{ "non-zero bits before ==", "Zh==", 0, -EINVAL, NULL, 0 },
	{ "non-zero bits before =", "Zm9=", 0, -EINVAL, NULL, 0 },
	{ "three pads", "Z===", 0, -EINVAL, NULL, 0 },
	{ "four pads", "====", 0, -EINVAL, NULL, 0 },
	{ "pad in the middle", "Zg==Zg==", 0, -EINVAL, NULL, 0 },
	{ "pad then data", "Zm=v", 0, -EINVAL, NULL, 0 },
	{ "URL alphabet", "Zm-_", 0, -EINVAL, NULL, 0 },
	{ "two =", "==", 0, -EINVAL, NULL, 0 },
	{ "NUL inside", "Zm\0v", 4, -EINVAL, NULL, 0 },
};

START_TEST(test_b64)
{
	const struct b64_case *c = &b64_cases[_i];
	unsigned char out[64];
	char enc[128];
	size_t outlen = 99, inlen = c->inlen ? c->inlen : strlen(c->in);
	int rc;

	rc = sasl_b64_decode(c->in, inlen, out, sizeof out, &outlen);
	ck_assert_msg(rc == c->rc, "%s: rc %d want %d", c->label, rc, c->rc);
	if (rc == 0) {
		ck_assert_msg(outlen == c->outlen && memcmp(out, c->out, outlen) == 0,
		    "%s: wrong bytes (%zu)", c->label, outlen);
		/* Strict decoding means the encoding round-trips byte for byte. */
		sasl_b64_encode(out, outlen, enc);
		if (strcmp(c->in, "=") != 0)
			ck_assert_msg(strcmp(enc, c->in) == 0, "%s: encoded '%s'", c->label, enc);
	} else {
		ck_assert_msg(outlen == 0, "%s: outlen %zu", c->label, outlen);
	}
}
END_TEST

START_TEST(test_b64_bounds)
{
	unsigned char out[6], all[256], back[256];
	char enc[4 * ((256 + 2) / 3) + 1];
	size_t outlen;

	/* "foobar" needs 6 bytes: 6 fits, 5 does not. */
	ck_assert_int_eq(sasl_b64_decode("Zm9vYmFy", 8, out, 6, &outlen), 0);
	ck_assert_uint_eq(outlen, 6);
	ck_assert_int_eq(sasl_b64_decode("Zm9vYmFy", 8, out, 5, &outlen), -EINVAL);
	ck_assert_int_eq(sasl_b64_decode("Zm9vYg==", 8, out, 4, &outlen), 0);
	ck_assert_int_eq(sasl_b64_decode("Zm9vYg==", 8, out, 3, &outlen), -EINVAL);
	/* Every byte value, every length 0..256 round-trips. */
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	for (size_t len = 0; len <= 256; len++) {
		sasl_b64_encode(all, len, enc);
		ck_assert_uint_eq(strlen(enc), 4 * ((len + 2) / 3));
		ck_assert_int_eq(sasl_b64_decode(enc, strlen(enc), back, sizeof back, &outlen), 0);
		ck_assert_uint_eq(outlen, len);
		ck_assert(memcmp(all, back, len) == 0);
	}
}
END_TEST

/* ---------------------------------------------------------------- PLAIN */

#define P(s) s, sizeof(s) - 1

static const struct plain_case {
	const char *label;
	const char *msg;
	size_t len;
	int rc;
	const char *user;
	const char *pass;
} plain_cases[] = {
	{ "no authzid", P("\0user@x.vn\0secret"), 0, "user@x.vn", "secret" },
	{ "authzid equal to authcid", P("user@x.vn\0user@x.vn\0secret"), 0, "user@x.vn", "secret" },
	{ "UTF-8 fields", P("\0nguy\xe1\xbb\x85n@x.vn\0m\xe1\xba\xadt kh\xe1\xba\xa9u"), 0, "nguy\xe1\xbb\x85n@x.vn", "m\xe1\xba\xadt kh\xe1\xba\xa9u" },
	{ "password with spaces and symbols", P("\0u\0 p@ss :w0rd "), 0, "u", " p@ss :w0rd " },

	{ "authzid differs", P("boss@x.vn\0user@x.vn\0secret"), -EINVAL, NULL, NULL },
	{ "authzid differs in case only", P("User@x.vn\0user@x.vn\0secret"), -EINVAL, NULL, NULL },
	{ "authzid a prefix of authcid", P("user\0user@x.vn\0secret"), -EINVAL, NULL, NULL },
	{ "one NUL only", P("user@x.vn\0secret"), -EINVAL, NULL, NULL },
	{ "no NUL", P("user@x.vn secret"), -EINVAL, NULL, NULL },
	{ "empty message", P(""), -EINVAL, NULL, NULL },
	{ "empty authcid", P("\0\0secret"), -EINVAL, NULL, NULL },
	{ "empty password", P("\0user@x.vn\0"), -EINVAL, NULL, NULL },
	{ "third NUL in password", P("\0user@x.vn\0sec\0ret"), -EINVAL, NULL, NULL },
	{ "bad UTF-8 in password", P("\0u\0\xff"), -EINVAL, NULL, NULL },
	{ "bad UTF-8 in authcid", P("\0\xc3\x28\0p"), -EINVAL, NULL, NULL },
	{ "UTF-8 cut by the NUL", P("\0u\xe1\xbb\0p"), -EINVAL, NULL, NULL },
	{ "UTF-8 cut at the end", P("\0u\0p\xe1\xbb"), -EINVAL, NULL, NULL },
	{ "bad UTF-8 in authzid", P("\xff\0u\0p"), -EINVAL, NULL, NULL },
};

START_TEST(test_plain)
{
	const struct plain_case *c = &plain_cases[_i];
	char user[SASL_FIELD_MAX + 1], pass[SASL_FIELD_MAX + 1];
	int rc;

	rc = sasl_plain_parse((const unsigned char *)c->msg, c->len, user, pass);
	ck_assert_msg(rc == c->rc, "%s: rc %d want %d", c->label, rc, c->rc);
	if (rc == 0) {
		ck_assert_msg(strcmp(user, c->user) == 0, "%s: user '%s'", c->label, user);
		ck_assert_msg(strcmp(pass, c->pass) == 0, "%s: pass '%s'", c->label, pass);
	} else {
		ck_assert_msg(user[0] == '\0' && pass[0] == '\0', "%s: fields left filled",
		    c->label);
	}
}
END_TEST

START_TEST(test_plain_lengths)
{
	static unsigned char msg[3 * SASL_FIELD_MAX + 8];
	char user[SASL_FIELD_MAX + 1], pass[SASL_FIELD_MAX + 1];
	size_t len;

	/* authcid and passwd of exactly SASL_FIELD_MAX octets. */
	msg[0] = '\0';
	memset(msg + 1, 'u', SASL_FIELD_MAX);
	msg[1 + SASL_FIELD_MAX] = '\0';
	memset(msg + 2 + SASL_FIELD_MAX, 'p', SASL_FIELD_MAX);
	len = 2 + 2 * SASL_FIELD_MAX;
	ck_assert_int_eq(sasl_plain_parse(msg, len, user, pass), 0);
	ck_assert_uint_eq(strlen(user), SASL_FIELD_MAX);
	ck_assert_uint_eq(strlen(pass), SASL_FIELD_MAX);
	/* One more password octet is refused. */
	msg[len] = 'p';
	ck_assert_int_eq(sasl_plain_parse(msg, len + 1, user, pass), -EINVAL);
	/* One more authcid octet is refused. */
	msg[0] = '\0';
	memset(msg + 1, 'u', SASL_FIELD_MAX + 1);
	msg[2 + SASL_FIELD_MAX] = '\0';
	msg[3 + SASL_FIELD_MAX] = 'p';
	ck_assert_int_eq(sasl_plain_parse(msg, 4 + SASL_FIELD_MAX, user, pass), -EINVAL);
}
END_TEST

/* ------------------------------------------------------------- passwords */

/* A well-formed ln=10 hash (of nothing we test) to mutate. */
#define PW_SALT "c2FsdHNhbHRzYWx0c2FsdA=="
#define PW_KEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define PW_GOOD "$scrypt$ln=10,r=8,p=1$" PW_SALT "$" PW_KEY

static const struct stored_case {
	const char *label;
	const char *stored;
} stored_cases[] = {
	{ "empty", "" },
	{ "prefix only", "$scrypt$" },
	{ "bcrypt", "$2b$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234" },
	{ "uppercase scheme", "$SCRYPT$ln=10,r=8,p=1$" PW_SALT "$" PW_KEY },
	{ "ln below 10", "$scrypt$ln=9,r=8,p=1$" PW_SALT "$" PW_KEY },
	{ "ln above 20", "$scrypt$ln=21,r=8,p=1$" PW_SALT "$" PW_KEY },
	{ "ln leading zero", "$scrypt$ln=010,r=8,p=1$" PW_SALT "$" PW_KEY },
	{ "ln with sign", "$scrypt$ln=+10,r=8,p=1$" PW_SALT "$" PW_KEY },
	{ "ln three digits", "$scrypt$ln=100,r=8,p=1$" PW_SALT "$" PW_KEY },
	{ "r zero", "$scrypt$ln=10,r=0,p=1$" PW_SALT "$" PW_KEY },
	{ "r above 32", "$scrypt$ln=10,r=33,p=1$" PW_SALT "$" PW_KEY },
	{ "p zero", "$scrypt$ln=10,r=8,p=0$" PW_SALT "$" PW_KEY },
	{ "p above 16", "$scrypt$ln=10,r=8,p=17$" PW_SALT "$" PW_KEY },
	{ "memory over 1 GiB", "$scrypt$ln=20,r=32,p=1$" PW_SALT "$" PW_KEY },
	{ "fields reordered", "$scrypt$r=8,ln=10,p=1$" PW_SALT "$" PW_KEY },
	{ "p missing", "$scrypt$ln=10,r=8$" PW_SALT "$" PW_KEY },
	{ "space after comma", "$scrypt$ln=10, r=8,p=1$" PW_SALT "$" PW_KEY },
	{ "salt missing", "$scrypt$ln=10,r=8,p=1$" PW_KEY },
	{ "salt short", "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2Fs$" PW_KEY },
	{ "salt not base64", "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2F!dA==$" PW_KEY },
	{ "salt unpadded", "$scrypt$ln=10,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$" PW_KEY },
	{ "hash short", "$scrypt$ln=10,r=8,p=1$" PW_SALT "$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8" },
	{ "hash of 33 bytes", "$scrypt$ln=10,r=8,p=1$" PW_SALT "$AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g" },
	{ "trailing garbage", PW_GOOD "x" },
	{ "trailing dollar", PW_GOOD "$" },
	{ "trailing newline", PW_GOOD "\n" },
	{ "hash with whitespace", "$scrypt$ln=10,r=8,p=1$" PW_SALT "$AAECAwQFBgcICQoLDA0O DxAREhMUFRYXGBkaGxwdHh8=" },
};

START_TEST(test_passwd_stored_bad)
{
	const struct stored_case *c = &stored_cases[_i];
	bool ok = true;

	ck_assert_msg(passwd_verify("pw", 2, c->stored, &ok) == -EINVAL, "%s: accepted", c->label);
	ck_assert_msg(!ok, "%s: ok set", c->label);
}
END_TEST

/* Three scrypt runs at the default cost: hash, right password, dummy. */
START_TEST(test_passwd_roundtrip)
{
	char h[PASSWD_HASH_MAX + 1];
	bool ok = false;

	ck_assert_int_eq(passwd_hash("correct horse", 13, PASSWD_DEFAULT_LN, h, sizeof h), 0);
	ck_assert_msg(strncmp(h, "$scrypt$ln=15,r=8,p=1$", 22) == 0, "format: %s", h);
	ck_assert_uint_eq(strlen(h), 22 + 24 + 1 + 44);
	ck_assert_int_eq(passwd_verify("correct horse", 13, h, &ok), 0);
	ck_assert(ok);
	/* Same time spent, result discarded; must not crash or leak. */
	passwd_dummy_verify("whatever", 8);
}
END_TEST

/* The rest at ln = 10 (1 MiB, about a millisecond). */
START_TEST(test_passwd_wrong_and_tampered)
{
	char h[PASSWD_HASH_MAX + 1], h2[PASSWD_HASH_MAX + 1], small[40];
	char *k;
	bool ok = true;

	ck_assert_int_eq(passwd_hash("s\xe1\xba\xadt kh\xe1\xba\xa9u", 11, 10, h, sizeof h), 0);
	ck_assert_int_eq(passwd_verify("s\xe1\xba\xadt kh\xe1\xba\xa9u", 11, h, &ok), 0);
	ck_assert(ok);
	/* Wrong password, and the right one with a byte more or less. */
	ck_assert_int_eq(passwd_verify("wrong", 5, h, &ok), 0);
	ck_assert(!ok);
	ok = true;
	ck_assert_int_eq(passwd_verify("s\xe1\xba\xadt kh\xe1\xba\xa9", 10, h, &ok), 0);
	ck_assert(!ok);
	/* Empty password never matches a real hash. */
	ok = true;
	ck_assert_int_eq(passwd_verify("", 0, h, &ok), 0);
	ck_assert(!ok);
	/* One base64 character of the hash changed: still well-formed, no match. */
	memcpy(h2, h, sizeof h);
	k = strrchr(h2, '$') + 1;
	k[0] = k[0] == 'A' ? 'B' : 'A';
	ok = true;
	ck_assert_int_eq(passwd_verify("s\xe1\xba\xadt kh\xe1\xba\xa9u", 11, h2, &ok), 0);
	ck_assert(!ok);
	/* Salt changed the same way: no match either. */
	memcpy(h2, h, sizeof h);
	k = strchr(h2 + 9, '$') + 1;
	k[0] = k[0] == 'A' ? 'B' : 'A';
	ok = true;
	ck_assert_int_eq(passwd_verify("s\xe1\xba\xadt kh\xe1\xba\xa9u", 11, h2, &ok), 0);
	ck_assert(!ok);
	/* Cost changed: different key, no match. */
	memcpy(h2, h, sizeof h);
	h2[12] = '1';
	ok = true;
	ck_assert_int_eq(passwd_verify("s\xe1\xba\xadt kh\xe1\xba\xa9u", 11, h2, &ok), 0);
	ck_assert(!ok);
	/* Fresh salt each time: two hashes of one password differ. */
	ck_assert_int_eq(passwd_hash("s\xe1\xba\xadt kh\xe1\xba\xa9u", 11, 10, h2, sizeof h2), 0);
	ck_assert_str_ne(h, h2);
	/* A NUL inside, or an over-long password, never matches. */
	ok = true;
	ck_assert_int_eq(passwd_verify("a\0b", 3, h, &ok), 0);
	ck_assert(!ok);

	/* Refused arguments of passwd_hash. */
	ck_assert_int_eq(passwd_hash("", 0, 10, h2, sizeof h2), -EINVAL);
	ck_assert_int_eq(passwd_hash("a\0b", 3, 10, h2, sizeof h2), -EINVAL);
	ck_assert_int_eq(passwd_hash("pw", 2, 9, h2, sizeof h2), -EINVAL);
	ck_assert_int_eq(passwd_hash("pw", 2, 21, h2, sizeof h2), -EINVAL);
	ck_assert_int_eq(passwd_hash("pw", PASSWD_MAX + 1, 10, h2, sizeof h2), -EINVAL);
	ck_assert_int_eq(passwd_hash("pw", 2, 10, small, sizeof small), -EINVAL);
	ck_assert_str_eq(small, "");
}
END_TEST

/* A hash written with other in-bounds parameters verifies under them. */
START_TEST(test_passwd_params)
{
	bool ok = true;

	/* Wrong password against a hand-made r=1,p=2 hash: parsed, computed, no match. */
	ck_assert_int_eq(passwd_verify("pw", 2, "$scrypt$ln=10,r=1,p=2$" PW_SALT "$" PW_KEY, &ok), 0);
	ck_assert(!ok);
}
END_TEST

/* ----------------------------------------------------------------- buf */

/*
 * Every split of the room around the end of the text: a prefix of p
 * bytes, then "%s|%d" of an n-byte word, against snprintf into a plain
 * array. Runs the lengths across the 64-byte first allocation and the
 * doublings after it, so the text fits, fills the room but for the NUL,
 * needs exactly one byte more, and needs more than twice the room.
 */
START_TEST(test_buf_printf_every_fit)
{
	static char prefix[140], word[300], want[sizeof(prefix) + sizeof(word) + 16];
	struct buf b;
	int p, n;

	memset(prefix, 'p', sizeof(prefix));
	memset(word, 'w', sizeof(word));
	for (p = 0; p < (int)sizeof(prefix); p += 3) {
		for (n = 0; n < (int)sizeof(word); n += (n < 140 ? 1 : 7)) {
			buf_init(&b);
			if (p > 0)
				buf_printf(&b, "%.*s", p, prefix);
			ck_assert_uint_eq(b.len, (size_t)p);
			buf_printf(&b, "%.*s|%d", n, word, n);
			snprintf(want, sizeof(want), "%.*s%.*s|%d", p, prefix, n, word, n);
			ck_assert_uint_eq(b.len, strlen(want));
			ck_assert_uint_lt(b.len, b.cap);
			ck_assert_str_eq(buf_cstr(&b), want);
			buf_free(&b);
		}
	}
}
END_TEST

/* An empty result adds nothing and leaves the text as it was. */
START_TEST(test_buf_printf_empty)
{
	struct buf b;

	buf_init(&b);
	buf_printf(&b, "%s", "");
	ck_assert_uint_eq(b.len, 0);
	buf_append_str(&b, "abc");
	buf_printf(&b, "%s", "");
	ck_assert_uint_eq(b.len, 3);
	ck_assert_str_eq(buf_cstr(&b), "abc");
	buf_free(&b);
}
END_TEST

/* ---------------------------------------------------------------- main */

#define N_CASES(a) (int)(sizeof(a) / sizeof((a)[0]))

static Suite *ta_suite(void)
{
	Suite *s = suite_create("addr");
	TCase *tc = tcase_create("pure");

	/* scrypt at the default cost is slow under valgrind. */
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_domain, 0, N_CASES(domain_cases));
	tcase_add_test(tc, test_domain_lengths);
	tcase_add_loop_test(tc, test_addr, 0, N_CASES(addr_cases));
	tcase_add_test(tc, test_addr_lengths);
	tcase_add_test(tc, test_addr_domain_of);
	tcase_add_loop_test(tc, test_scan, 0, N_CASES(scan_cases));
	tcase_add_test(tc, test_scan_limits);
	tcase_add_loop_test(tc, test_list, 0, N_CASES(list_cases));
	tcase_add_test(tc, test_scan_then_parse);
	tcase_add_loop_test(tc, test_b64, 0, N_CASES(b64_cases));
	tcase_add_test(tc, test_b64_bounds);
	tcase_add_loop_test(tc, test_plain, 0, N_CASES(plain_cases));
	tcase_add_test(tc, test_plain_lengths);
	tcase_add_loop_test(tc, test_passwd_stored_bad, 0, N_CASES(stored_cases));
	tcase_add_test(tc, test_passwd_roundtrip);
	tcase_add_test(tc, test_passwd_wrong_and_tampered);
	tcase_add_test(tc, test_passwd_params);
	tcase_add_test(tc, test_buf_printf_every_fit);
	tcase_add_test(tc, test_buf_printf_empty);
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
