/*
 * test_dlp: the DLP matcher (policy/dlp.h): custom patterns and their
 * thresholds, the strongest action winning, matches split across pieces
 * at every byte position and across the window boundary, the built-in
 * CCCD and card matchers (positives and negatives), a catastrophic
 * backtracking pattern stopped by the match limit, Vietnamese text
 * matched case-insensitively, decomposed text and patterns (NFC), file
 * names, invalid UTF-8, and the
 * refusals of dlp_pattern_check; and the rules as tenant policy keys
 * (queue/tenancy.h): parsing and normalizing a value, the additive
 * inheritance of queue_policy_dlp_rules, dlp_ruleset_for_tenant
 * scanning with a city's and a ward's rules, and the cache of compiled
 * sets following a change.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <utf8proc.h>

#include "common/xmalloc.h"
#include "policy/dlp.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

/* A rule set from defs, failing the test when it does not compile. */
static struct dlp_ruleset *td_rules(const struct dlp_rule_def *defs, size_t n)
{
	struct dlp_ruleset *rs = NULL;
	char why[256] = "";
	int rc = dlp_ruleset_new(defs, n, &rs, why, sizeof why);

	ck_assert_msg(rc == 0, "ruleset: %s", why);
	return rs;
}

/* Counts of each rule over text fed in one piece. */
static unsigned td_count_one(const struct dlp_rule_def *def, const char *text)
{
	struct dlp_ruleset *rs = td_rules(def, 1);
	struct dlp_scan *s = dlp_scan_new(rs);
	struct dlp_result res;
	unsigned c;

	dlp_scan_text(s, text, strlen(text));
	ck_assert_int_eq(dlp_scan_result(s, &res), DLP_OK);
	c = dlp_scan_count(s, 0);
	dlp_scan_free(s);
	dlp_ruleset_free(rs);
	return c;
}

/* ------------------------------------------------- custom patterns */

static const struct {
	const char *label;
	const char *pattern;
	unsigned threshold;
	const char *text;
	unsigned count;
	bool fires;
} td_custom[] = {
	{ "one match, threshold 1", "hợp đồng số \\d+", 1, "Theo hợp đồng số 123/2024.", 1, true },
	{ "two matches, threshold 3", "HD-\\d{4}", 3, "HD-0001 và HD-0002", 2, false },
	{ "three matches, threshold 3", "HD-\\d{4}", 3, "HD-0001, HD-0002, HD-0003", 3, true },
	{ "no match", "mã bí mật", 1, "không có gì ở đây", 0, false },
	{ "case matters without (?i)", "Mật khẩu", 1, "MẬT KHẨU: x", 0, false },
	{ "matches do not overlap", "aa", 1, "aaaaa", 2, true },
	{ "anchored at the text start", "^Kính gửi", 1, "Kính gửi: ông A\nKính gửi: bà B", 1, true },
	{ "multiline anchors", "(?m)^Kính gửi", 2, "Kính gửi: ông A\nKính gửi: bà B", 2, true },
	{ "word boundary with UCP", "\\bmật\\b", 1, "bímật mật", 1, true },
};

START_TEST(test_custom_thresholds)
{
	for (size_t i = 0; i < sizeof td_custom / sizeof td_custom[0]; i++) {
		struct dlp_rule_def d = { "r", td_custom[i].pattern, DLP_BUILTIN_NONE,
			DLP_ACTION_QUARANTINE, td_custom[i].threshold };
		struct dlp_ruleset *rs = td_rules(&d, 1);
		struct dlp_scan *s = dlp_scan_new(rs);
		struct dlp_result res;

		dlp_scan_text(s, td_custom[i].text, strlen(td_custom[i].text));
		ck_assert_int_eq(dlp_scan_result(s, &res), DLP_OK);
		ck_assert_msg(dlp_scan_count(s, 0) == td_custom[i].count, "%s: count %u, want %u",
		    td_custom[i].label, dlp_scan_count(s, 0), td_custom[i].count);
		ck_assert_msg((res.nhits == 1) == td_custom[i].fires, "%s: fired %zu",
		    td_custom[i].label, res.nhits);
		if (td_custom[i].fires) {
			ck_assert_str_eq(res.hits[0].name, "r");
			ck_assert_uint_eq(res.hits[0].count, td_custom[i].count);
			ck_assert_uint_eq(res.hits[0].threshold, td_custom[i].threshold);
			ck_assert_int_eq(res.action, DLP_ACTION_QUARANTINE);
		} else {
			ck_assert_int_eq(res.action, DLP_ACTION_NONE);
		}
		dlp_scan_free(s);
		dlp_ruleset_free(rs);
	}
}
END_TEST

/* The strongest action among the rules that fired wins; the others are still reported. */
START_TEST(test_strongest_action)
{
	static const struct dlp_rule_def defs[] = {
		{ "tagme", "alpha", DLP_BUILTIN_NONE, DLP_ACTION_TAG, 1 },
		{ "rejectme", "beta", DLP_BUILTIN_NONE, DLP_ACTION_REJECT, 2 },
		{ "holdme", "gamma", DLP_BUILTIN_NONE, DLP_ACTION_QUARANTINE, 1 },
	};
	static const struct {
		const char *label;
		const char *text;
		enum dlp_action action;
		size_t nhits;
	} cases[] = {
		{ "tag only", "alpha", DLP_ACTION_TAG, 1 },
		{ "tag and quarantine", "alpha gamma", DLP_ACTION_QUARANTINE, 2 },
		{ "reject under its threshold", "alpha beta gamma", DLP_ACTION_QUARANTINE, 2 },
		{ "all three", "beta alpha beta gamma", DLP_ACTION_REJECT, 3 },
		{ "nothing", "delta", DLP_ACTION_NONE, 0 },
	};
	struct dlp_ruleset *rs = td_rules(defs, 3);

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct dlp_scan *s = dlp_scan_new(rs);
		struct dlp_result res;

		dlp_scan_text(s, cases[i].text, strlen(cases[i].text));
		ck_assert_int_eq(dlp_scan_result(s, &res), DLP_OK);
		ck_assert_msg(res.action == cases[i].action, "%s: action %s", cases[i].label,
		    dlp_action_name(res.action));
		ck_assert_msg(res.nhits == cases[i].nhits, "%s: %zu hits", cases[i].label,
		    res.nhits);
		dlp_scan_free(s);
	}
	dlp_ruleset_free(rs);
}
END_TEST

/* ------------------------------------------------ split across pieces */

static const struct dlp_rule_def td_split_defs[] = {
	{ "ids", NULL, DLP_BUILTIN_CCCD, DLP_ACTION_REJECT, 1 },
	{ "cards", NULL, DLP_BUILTIN_CARD, DLP_ACTION_REJECT, 1 },
	{ "code", "mã-\\d+-Đ", DLP_BUILTIN_NONE, DLP_ACTION_TAG, 1 },
	{ "word", "(?i)tối mật", DLP_BUILTIN_NONE, DLP_ACTION_TAG, 1 },
};

static void td_split_expect(struct dlp_scan *s, const char *label, size_t k)
{
	struct dlp_result res;

	ck_assert_int_eq(dlp_scan_result(s, &res), DLP_OK);
	for (size_t r = 0; r < 4; r++)
		ck_assert_msg(dlp_scan_count(s, r) == 1, "%s at %zu: rule %s counted %u", label, k,
		    td_split_defs[r].name, dlp_scan_count(s, r));
}

/*
 * Every rule matches once in the text; fed in two pieces cut at every
 * byte (inside the UTF-8 of "Đ" and "ố" too), and one byte at a time,
 * each still counts exactly one.
 */
START_TEST(test_split_every_byte)
{
	static const char text[] =
	    "CCCD 001099012345, thẻ 4111-1111-1111-1111, mã-77-Đ, TỐI MẬT.";
	struct dlp_ruleset *rs = td_rules(td_split_defs, 4);
	size_t len = strlen(text);

	for (size_t k = 0; k <= len; k++) {
		struct dlp_scan *s = dlp_scan_new(rs);

		dlp_scan_text(s, text, k);
		dlp_scan_text(s, text + k, len - k);
		td_split_expect(s, "two pieces", k);
		dlp_scan_free(s);
	}
	{
		struct dlp_scan *s = dlp_scan_new(rs);

		for (size_t k = 0; k < len; k++)
			dlp_scan_text(s, text + k, 1);
		td_split_expect(s, "byte by byte", len);
		dlp_scan_free(s);
	}
	dlp_ruleset_free(rs);
}
END_TEST

/*
 * The same text placed so that the window boundary (DLP_WINDOW) falls at
 * every byte of it, after a filler of three-byte characters (so the
 * window also ends inside a character): the bounded window with partial
 * matching still counts each match once.
 */
START_TEST(test_split_window_boundary)
{
	static const char match[] = " 001099012345 4111 1111 1111 1111 mã-77-Đ tối mật ";
	struct dlp_ruleset *rs = td_rules(td_split_defs, 4);
	size_t mlen = strlen(match), total = DLP_WINDOW * 3;
	char *text = xmalloc(total);

	for (size_t off = 0; off <= mlen + 2; off++) {
		size_t start = DLP_WINDOW - off, i = 0;
		struct dlp_scan *s = dlp_scan_new(rs);

		/* "ậ" (3 bytes) up to start, padded with '.' to land exactly. */
		while (i + 3 <= start) {
			memcpy(text + i, "\xe1\xba\xad", 3);
			i += 3;
		}
		while (i < start)
			text[i++] = '.';
		memcpy(text + i, match, mlen);
		i += mlen;
		memset(text + i, '.', 100);
		i += 100;
		dlp_scan_text(s, text, i);
		td_split_expect(s, "window boundary", off);
		dlp_scan_free(s);
	}
	free(text);
	dlp_ruleset_free(rs);
}
END_TEST

/* Two texts (two parts) never make one match between them. */
START_TEST(test_texts_are_separate)
{
	struct dlp_rule_def d = { "r", "abc", DLP_BUILTIN_NONE, DLP_ACTION_TAG, 1 };
	struct dlp_ruleset *rs = td_rules(&d, 1);
	struct dlp_scan *s = dlp_scan_new(rs);
	struct dlp_result res;

	dlp_scan_text(s, "xab", 3);
	dlp_scan_text_end(s);
	dlp_scan_text(s, "cx", 2);
	ck_assert_int_eq(dlp_scan_result(s, &res), DLP_OK);
	ck_assert_uint_eq(dlp_scan_count(s, 0), 0);
	/* The counts go on across texts and names. */
	dlp_scan_text(s, "abc", 3);
	dlp_scan_name(s, "abc.pdf", 7);
	dlp_scan_text(s, "ab", 2);
	dlp_scan_name(s, "c", 1);
	ck_assert_int_eq(dlp_scan_result(s, &res), DLP_OK);
	ck_assert_uint_eq(dlp_scan_count(s, 0), 2);
	ck_assert_uint_eq(res.nhits, 1);
	dlp_scan_free(s);
	dlp_ruleset_free(rs);
}
END_TEST

/* ------------------------------------------------------------ builtins */

static const struct {
	const char *label;
	const char *text;
	unsigned count;
} td_cccd[] = {
	{ "Hà Nội, 20th century male", "Số CCCD: 001099012345.", 1 },
	{ "Cà Mau (096), century digit 9", "096912345678", 1 },
	{ "Hồ Chí Minh (079), female", "CCCD 079301000123 cấp ngày", 1 },
	{ "Đắk Nông (067)", "(067205001234)", 1 },
	{ "two numbers", "001099012345 và 048188000111", 2 },
	{ "Vietnamese letters around", "sốđịnhdanh001099012345là", 1 },
	{ "province 003 does not exist", "003099012345", 0 },
	{ "province 097 does not exist", "097099012345", 0 },
	{ "province 000", "000099012345", 0 },
	{ "province 100", "100099012345", 0 },
	{ "11 digits", "00109901234", 0 },
	{ "13 digits", "0010990123456", 0 },
	{ "inside a longer number", "9001099012345", 0 },
	{ "followed by a digit", "0010990123450", 0 },
	{ "spaced is not a CCCD", "001 099 012 345", 0 },
	{ "a digit of another script next to it", "\xd9\xa3" "001099012345", 0 },
};

START_TEST(test_cccd)
{
	struct dlp_rule_def d = { "cccd", NULL, DLP_BUILTIN_CCCD, DLP_ACTION_REJECT, 1 };

	for (size_t i = 0; i < sizeof td_cccd / sizeof td_cccd[0]; i++) {
		unsigned c = td_count_one(&d, td_cccd[i].text);

		ck_assert_msg(c == td_cccd[i].count, "%s: counted %u, want %u", td_cccd[i].label,
		    c, td_cccd[i].count);
	}
}
END_TEST

/* base + its Luhn check digit (base has n-1 digits). */
static void td_luhn_complete(const char *base, char *out, size_t outlen)
{
	size_t n = strlen(base);
	unsigned sum = 0;

	ck_assert(n + 2 <= outlen);
	for (size_t i = 0; i < n; i++) {
		unsigned v = (unsigned)(base[n - 1 - i] - '0');

		if (i % 2 == 0) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
	}
	memcpy(out, base, n);
	out[n] = (char)('0' + (10 - sum % 10) % 10);
	out[n + 1] = '\0';
}

static const struct {
	const char *label;
	const char *text;
	unsigned count;
} td_card[] = {
	{ "Visa 16 digits", "the 4111111111111111 ok", 1 },
	{ "Mastercard", "5555555555554444", 1 },
	{ "Amex 15 digits 4-6-5", "3782 822463 10005", 1 },
	{ "Visa 13 digits", "4222222222222", 1 },
	{ "with spaces", "số thẻ: 4111 1111 1111 1111.", 1 },
	{ "with dashes", "4111-1111-1111-1111", 1 },
	{ "a year after the card", "4111 1111 1111 1111 2024", 1 },
	{ "a stray group after the card", "4111 1111 1111 1111 12", 1 },
	{ "a number in groups before the card", "0010 9901 2345 4111 1111 1111 1111", 1 },
	{ "a CCCD before the card", "001099012345 4111 1111 1111 1111", 1 },
	{ "Luhn fails", "4111111111111112", 0 },
	{ "Luhn fails with spaces", "4111 1111 1111 1112", 0 },
	{ "12 digits", "411111111116", 0 },
	{ "inside a longer run", "004111111111111111100", 0 },
	{ "two separators in a row", "4111  1111  1111  1111", 0 },
	{ "two cards", "4111111111111111, 5555-5555-5555-4444", 2 },
};

START_TEST(test_card)
{
	struct dlp_rule_def d = { "card", NULL, DLP_BUILTIN_CARD, DLP_ACTION_REJECT, 1 };
	char num[32], text[64];

	for (size_t i = 0; i < sizeof td_card / sizeof td_card[0]; i++) {
		unsigned c = td_count_one(&d, td_card[i].text);

		ck_assert_msg(c == td_card[i].count, "%s: counted %u, want %u", td_card[i].label,
		    c, td_card[i].count);
	}
	/* Every length from 13 to 19 digits, Luhn-valid: found; one digit off: not. */
	for (size_t n = 12; n <= 20; n++) {
		char base[32];

		memset(base, '7', n - 1);
		base[0] = '4';
		base[n - 1] = '\0';
		td_luhn_complete(base, num, sizeof num);
		snprintf(text, sizeof text, "x %s x", num);
		ck_assert_msg(td_count_one(&d, text) == (n >= 13 && n <= 19 ? 1u : 0u),
		    "%zu digits, Luhn-valid", n);
		num[n - 1] = num[n - 1] == '9' ? '0' : (char)(num[n - 1] + 1);
		snprintf(text, sizeof text, "x %s x", num);
		ck_assert_msg(td_count_one(&d, text) == 0, "%zu digits, Luhn-invalid", n);
	}
}
END_TEST

/* ----------------------------------------------------- hostile input */

/*
 * (a+)+$ over "aaaa...b" backtracks exponentially: the match limit
 * stops the rule quickly with DLP_E_LIMIT naming it, and the other rule
 * of the set still counts. Through the JIT and through the interpreter
 * ((*NO_JIT)), whose limits count differently, and a second shape of
 * the same trap.
 */
START_TEST(test_catastrophic_backtracking)
{
	static const char *const evil[] = { "(a+)+$", "(*NO_JIT)(a+)+$", "(a|aa)+$",
		"(*NO_JIT)(a|aa)+$" };
	size_t n = 100000;
	char *text = xmalloc(n + 16);

	memset(text, 'a', n);
	memcpy(text + n, "b needle", 8);
	for (size_t e = 0; e < sizeof evil / sizeof evil[0]; e++) {
		const struct dlp_rule_def defs[] = {
			{ "evil", evil[e], DLP_BUILTIN_NONE, DLP_ACTION_TAG, 1 },
			{ "fine", "needle", DLP_BUILTIN_NONE, DLP_ACTION_TAG, 1 },
		};
		struct dlp_ruleset *rs = td_rules(defs, 2);
		struct dlp_scan *s = dlp_scan_new(rs);
		struct dlp_result res;
		struct timespec t0, t1;
		double secs;
		int rc;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		dlp_scan_text(s, text, n + 8);
		rc = dlp_scan_result(s, &res);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		ck_assert_msg(secs < 2.0, "%s took %.3f s", evil[e], secs);
		ck_assert_msg(rc == DLP_E_LIMIT, "%s: %d", evil[e], rc);
		ck_assert_ptr_nonnull(res.limit_rule);
		ck_assert_str_eq(res.limit_rule, "evil");
		ck_assert_uint_eq(dlp_scan_count(s, 0), 0);
		ck_assert_uint_eq(dlp_scan_count(s, 1), 1);
		ck_assert_uint_eq(res.nhits, 1);
		ck_assert_str_eq(res.hits[0].name, "fine");
		dlp_scan_free(s);
		dlp_ruleset_free(rs);
	}
	free(text);
}
END_TEST

/* Invalid UTF-8 in the text matches nothing but stops nothing. */
START_TEST(test_invalid_utf8)
{
	struct dlp_rule_def d = { "r", "mật", DLP_BUILTIN_NONE, DLP_ACTION_TAG, 1 };

	ck_assert_uint_eq(td_count_one(&d, "\xff\xfe mật \xc3 mật \xe1\xba"), 2);
}
END_TEST

/* ---------------------------------------------------------- Vietnamese */

#define DLP_NFC_TEST_SLICE 4096   /* dlp.c's DLP_NFC_SLICE */

/*
 * NFC: decomposed Vietnamese (base letter + combining marks) matches a
 * pattern written precomposed, and a decomposed pattern matches
 * precomposed text; also when the decomposed word straddles the NFC
 * slice and a filler without ASCII comes before it.
 */
START_TEST(test_nfc)
{
	/* "mật" as m, a, U+0323 (dot below), U+0302 (circumflex), t. */
	static const char dec[] = "m" "a\xcc\xa3\xcc\x82" "t";
	static const struct {
		const char *label;
		const char *pattern;
		const char *text;
		unsigned count;
	} cases[] = {
		{ "decomposed text", "(?i)tối mật", "TỐI M" "A\xcc\xa3\xcc\x82" "T", 1 },
		{ "decomposed pattern", "m" "a\xcc\xa3\xcc\x82" "t", "bí mật", 1 },
		{ "marks in the other order", "mật", "m" "a\xcc\x82\xcc\xa3" "t", 1 },
		{ "another letter", "mật", "m" "a\xcc\x82" "t", 0 },
	};
	struct dlp_rule_def d = { "r", "(?i)\\bmật\\b", DLP_BUILTIN_NONE, DLP_ACTION_TAG, 1 };
	struct dlp_ruleset *rs;
	char *text = xmalloc(3 * DLP_NFC_TEST_SLICE);

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct dlp_rule_def c = { "r", cases[i].pattern, DLP_BUILTIN_NONE, DLP_ACTION_TAG,
			1 };
		unsigned n = td_count_one(&c, cases[i].text);

		ck_assert_msg(n == cases[i].count, "%s: counted %u", cases[i].label, n);
	}
	rs = td_rules(&d, 1);
	for (size_t off = DLP_NFC_TEST_SLICE - 12; off <= DLP_NFC_TEST_SLICE + 2; off++) {
		for (size_t piece = 7; piece <= 7 * DLP_NFC_TEST_SLICE; piece *= DLP_NFC_TEST_SLICE) {
			struct dlp_scan *s = dlp_scan_new(rs);
			struct dlp_result res;
			size_t i = 0, len;

			/* "Đ" (2 bytes) and one "ậ" (3) when odd: exactly off bytes, no ASCII. */
			if (off % 2 == 1) {
				memcpy(text, "\xe1\xba\xad", 3);
				i = 3;
			}
			for (; i < off; i += 2)
				memcpy(text + i, "\xc4\x90", 2);
			text[i++] = ' ';
			memcpy(text + i, dec, sizeof dec - 1);
			i += sizeof dec - 1;
			text[i++] = ' ';
			len = i;
			for (i = 0; i < len; i += piece)
				dlp_scan_text(s, text + i, len - i < piece ? len - i : piece);
			ck_assert_int_eq(dlp_scan_result(s, &res), DLP_OK);
			ck_assert_msg(dlp_scan_count(s, 0) == 1, "offset %zu, pieces of %zu: %u", off,
			    piece, dlp_scan_count(s, 0));
			dlp_scan_free(s);
		}
	}
	dlp_ruleset_free(rs);
	free(text);
}
END_TEST


START_TEST(test_vietnamese_caseless)
{
	static const struct {
		const char *label;
		const char *pattern;
		const char *text;
		unsigned count;
	} cases[] = {
		{ "upper text, lower pattern", "(?i)bí mật nhà nước", "TÀI LIỆU BÍ MẬT NHÀ NƯỚC", 1 },
		{ "mixed case", "(?i)tuyệt mật", "Tuyệt Mật, TUYỆT MẬT, tuyệt mật", 3 },
		{ "Đ and đ", "(?i)đường dây nóng", "ĐƯỜNG DÂY NÓNG", 1 },
		{ "diacritics still matter", "(?i)mật", "MAT mat", 0 },
		{ "\\w is a Vietnamese letter", "(?i)số\\s+\\w+", "SỐ ĐỊNH", 1 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct dlp_rule_def d = { "r", cases[i].pattern, DLP_BUILTIN_NONE, DLP_ACTION_TAG,
			1 };
		unsigned c = td_count_one(&d, cases[i].text);

		ck_assert_msg(c == cases[i].count, "%s: counted %u", cases[i].label, c);
	}
}
END_TEST

START_TEST(test_file_names)
{
	static const struct dlp_rule_def defs[] = {
		{ "ids", NULL, DLP_BUILTIN_CCCD, DLP_ACTION_QUARANTINE, 1 },
		{ "salary", "(?i)bảng lương", DLP_BUILTIN_NONE, DLP_ACTION_TAG, 1 },
	};
	struct dlp_ruleset *rs = td_rules(defs, 2);
	struct dlp_scan *s = dlp_scan_new(rs);
	struct dlp_result res;

	dlp_scan_name(s, "Bảng lương tháng 3.xlsx", strlen("Bảng lương tháng 3.xlsx"));
	dlp_scan_name(s, "cccd_001099012345.pdf", strlen("cccd_001099012345.pdf"));
	ck_assert_int_eq(dlp_scan_result(s, &res), DLP_OK);
	ck_assert_uint_eq(res.nhits, 2);
	ck_assert_int_eq(res.action, DLP_ACTION_QUARANTINE);
	dlp_scan_free(s);
	dlp_ruleset_free(rs);
}
END_TEST

/* ------------------------------------------------------------ refusals */

START_TEST(test_pattern_check)
{
	static const struct {
		const char *label;
		const char *pattern;
		const char *why;   /* a part of the reason */
	} cases[] = {
		{ "fine", "mã\\s*\\d+", NULL },
		{ "empty", "", "empty" },
		{ "unbalanced", "(abc", "does not compile" },
		{ "bad class", "[z-a]", "does not compile" },
		{ "matches empty text", "a*", "matches empty text" },
		{ "long look-behind", "(?<=a{100})b", "looks behind" },
		{ "backslash C", "a\\Cb", "does not compile" },
	};
	char why[256], *longp;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc;

		why[0] = '\0';
		rc = dlp_pattern_check(cases[i].pattern, why, sizeof why);
		if (cases[i].why == NULL) {
			ck_assert_msg(rc == 0, "%s: %s", cases[i].label, why);
		} else {
			ck_assert_msg(rc == DLP_E_PATTERN, "%s: accepted", cases[i].label);
			ck_assert_msg(strstr(why, cases[i].why) != NULL, "%s: why '%s'",
			    cases[i].label, why);
		}
	}
	longp = xmalloc(DLP_PATTERN_MAX + 2);
	memset(longp, 'a', DLP_PATTERN_MAX + 1);
	longp[DLP_PATTERN_MAX + 1] = '\0';
	ck_assert_int_eq(dlp_pattern_check(longp, why, sizeof why), DLP_E_PATTERN);
	ck_assert_ptr_nonnull(strstr(why, "longer than"));
	longp[DLP_PATTERN_MAX] = '\0';
	ck_assert_int_eq(dlp_pattern_check(longp, why, sizeof why), 0);
	free(longp);
}
END_TEST

START_TEST(test_rule_refusals)
{
	static const struct {
		const char *label;
		struct dlp_rule_def d;
	} cases[] = {
		{ "bad name", { "Bad Name", "x", DLP_BUILTIN_NONE, DLP_ACTION_TAG, 1 } },
		{ "threshold 0", { "r", "x", DLP_BUILTIN_NONE, DLP_ACTION_TAG, 0 } },
		{ "threshold 1001", { "r", "x", DLP_BUILTIN_NONE, DLP_ACTION_TAG, 1001 } },
		{ "no action", { "r", "x", DLP_BUILTIN_NONE, DLP_ACTION_NONE, 1 } },
		{ "pattern and builtin", { "r", "x", DLP_BUILTIN_CARD, DLP_ACTION_TAG, 1 } },
		{ "neither", { "r", NULL, DLP_BUILTIN_NONE, DLP_ACTION_TAG, 1 } },
		{ "bad pattern", { "r", "(", DLP_BUILTIN_NONE, DLP_ACTION_TAG, 1 } },
	};
	enum dlp_action a;
	enum dlp_builtin b;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct dlp_ruleset *rs = NULL;
		char why[256] = "";

		ck_assert_msg(dlp_ruleset_new(&cases[i].d, 1, &rs, why, sizeof why) < 0,
		    "%s: accepted", cases[i].label);
		ck_assert_ptr_null(rs);
		ck_assert_msg(why[0] != '\0', "%s: no reason", cases[i].label);
	}
	ck_assert(dlp_action_parse("REJECT", &a) && a == DLP_ACTION_REJECT);
	ck_assert(dlp_action_parse("quarantine", &a) && a == DLP_ACTION_QUARANTINE);
	ck_assert(dlp_action_parse("tag", &a) && a == DLP_ACTION_TAG);
	ck_assert(!dlp_action_parse("none", &a) && !dlp_action_parse("drop", &a));
	ck_assert(dlp_builtin_parse("cccd", &b) && b == DLP_BUILTIN_CCCD);
	ck_assert(dlp_builtin_parse("Card", &b) && b == DLP_BUILTIN_CARD);
	ck_assert(!dlp_builtin_parse("iban", &b));
}
END_TEST


/* ------------------------------------------------ tenant policy keys */

static const struct {
	const char *label;
	const char *value;
	const char *norm;   /* NULL: refused */
	const char *why;    /* part of the reason when refused */
} td_values[] = {
	{ "pattern, defaults", "action=reject pattern=a b", "action=reject threshold=1 pattern=a b",
		NULL },
	{ "any order, any case", "threshold=3  ACTION=Tag pattern=(?i)mật  ",
		"action=tag threshold=3 pattern=(?i)mật  ", NULL },
	{ "builtin", "action=quarantine threshold=5 builtin=CCCD",
		"action=quarantine threshold=5 builtin=cccd", NULL },
	{ "pattern keeps '=' and spaces", "action=tag pattern=x=1 y", "action=tag threshold=1 "
		"pattern=x=1 y", NULL },
	{ "no action", "threshold=2 pattern=x", NULL, "action= is missing" },
	{ "unknown action", "action=drop pattern=x", NULL, "action 'drop'" },
	{ "threshold 0", "action=tag threshold=0 pattern=x", NULL, "threshold '0'" },
	{ "threshold 1001", "action=tag threshold=1001 pattern=x", NULL, "threshold '1001'" },
	{ "threshold not a number", "action=tag threshold=3x pattern=x", NULL, "threshold '3x'" },
	{ "no pattern", "action=tag threshold=2", NULL, "pattern= or builtin= is missing" },
	{ "empty pattern", "action=tag pattern=", NULL, "pattern is empty" },
	{ "unknown builtin", "action=tag builtin=iban", NULL, "builtin 'iban'" },
	{ "builtin not last", "action=tag builtin=card threshold=2", NULL, "builtin 'card'" },
	{ "unknown field", "action=tag level=2 pattern=x", NULL, "'level='" },
	{ "field twice", "action=tag action=reject pattern=x", NULL, "'action='" },
	{ "not field=value", "action=tag oops pattern=x", NULL, "'oops' is not field=value" },
	{ "control character", "action=tag pattern=a\nb", NULL, "control character" },
};

START_TEST(test_policy_values)
{
	const struct tenancy_policy_key *k = tenancy_policy_key_find("dlp_rule.secret");
	char out[TENANCY_DLP_VALUE_MAX + 1], why[256];

	ck_assert_ptr_nonnull(k);
	ck_assert_int_eq(k->type, TENANCY_POLICY_DLP_RULE);
	for (size_t i = 0; i < sizeof td_values / sizeof td_values[0]; i++) {
		int rc;

		why[0] = '\0';
		rc = tenancy_policy_normalize(k, td_values[i].value, out, sizeof out, why, sizeof why);
		if (td_values[i].norm != NULL) {
			ck_assert_msg(rc == 0, "%s: %s", td_values[i].label, why);
			ck_assert_msg(strcmp(out, td_values[i].norm) == 0, "%s: '%s'",
			    td_values[i].label, out);
		} else {
			ck_assert_msg(rc == -EINVAL, "%s: accepted", td_values[i].label);
			ck_assert_msg(strstr(why, td_values[i].why) != NULL, "%s: why '%s'",
			    td_values[i].label, why);
		}
	}
	/* Key names: the family's grammar. */
	ck_assert(tenancy_dlp_key_is("dlp_rule.a-b_9"));
	ck_assert(!tenancy_dlp_key_is("dlp_rule."));
	ck_assert(!tenancy_dlp_key_is("dlp_rule.Secret"));
	ck_assert(!tenancy_dlp_key_is("dlp_rule._x"));
	ck_assert(!tenancy_dlp_key_is("dlp_rules.x"));
	ck_assert_ptr_null(tenancy_policy_key_find("dlp_rule.a b"));
	/* The store's words are the matcher's words. */
	for (size_t i = 0; tenancy_dlp_actions[i] != NULL; i++) {
		enum dlp_action a;

		ck_assert(dlp_action_parse(tenancy_dlp_actions[i], &a));
		ck_assert_str_eq(dlp_action_name(a), tenancy_dlp_actions[i]);
	}
	for (size_t i = 0; tenancy_dlp_builtins[i] != NULL; i++) {
		enum dlp_builtin b;

		ck_assert(dlp_builtin_parse(tenancy_dlp_builtins[i], &b));
		ck_assert_str_eq(dlp_builtin_name(b), tenancy_dlp_builtins[i]);
	}
}
END_TEST

static int td_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void td_tenant(struct queue_txn *t, const char *id, const char *parent)
{
	struct queue_tenant rec = { (char *)id, (char *)id, (char *)parent, 1000 };
	char why[256];

	ck_assert_msg(queue_tenant_put(t, &rec, why, sizeof why) == 0, "%s: %s", id, why);
}

/*
 * city -> ward -> street: the effective rules are every ancestor's then
 * the tenant's own; unsetting the ward's rule leaves the city's; the
 * compiled set for the street scans with all of them.
 */
START_TEST(test_policy_inheritance)
{
	char dir[64] = "/tmp/test-dlp-XXXXXX", why[256] = "";
	struct queue_store *store = NULL;
	struct queue_txn *t;
	struct queue_dlp_rule *rules;
	struct dlp_ruleset *rs, *rs2;
	struct dlp_cache *cache;
	struct dlp_scan *s;
	struct dlp_result res;
	char *owner = NULL;
	size_t n, own;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(queue_store_open(dir, 0, false, &store), 0);
	ck_assert_int_eq(queue_txn_begin(store, true, &t), 0);
	td_tenant(t, "city", NULL);
	td_tenant(t, "ward", "city");
	td_tenant(t, "street", "ward");
	ck_assert_int_eq(queue_policy_set(t, "city", "dlp_rule.secret",
	    "action=reject threshold=2 pattern=(?i)bí mật"), 0);
	ck_assert_int_eq(queue_policy_set(t, "city", "dlp_rule.ids",
	    "action=quarantine builtin=cccd"), 0);
	ck_assert_int_eq(queue_policy_set(t, "ward", "dlp_rule.cards",
	    "action=tag threshold=1 builtin=card"), 0);
	ck_assert_int_eq(queue_policy_set(t, "ward", "dlp_rule.bad", "action=tag"), -EINVAL);
	ck_assert_int_eq(queue_txn_commit(t), 0);

	ck_assert_int_eq(queue_txn_begin(store, false, &t), 0);
	ck_assert_int_eq(queue_policy_dlp_rules(t, "street", &rules, &n), 0);
	ck_assert_uint_eq(n, 3);
	/* The root's first, each tenant's in name order. */
	ck_assert_str_eq(rules[0].name, "ids");
	ck_assert_str_eq(rules[0].source, "city");
	ck_assert_str_eq(rules[0].builtin, "cccd");
	ck_assert_str_eq(rules[1].name, "secret");
	ck_assert_str_eq(rules[1].pattern, "(?i)bí mật");
	ck_assert_uint_eq(rules[1].threshold, 2);
	ck_assert_str_eq(rules[2].name, "cards");
	ck_assert_str_eq(rules[2].source, "ward");
	queue_policy_dlp_free(rules, n);
	ck_assert_int_eq(queue_policy_dlp_rules(t, "city", &rules, &n), 0);
	ck_assert_uint_eq(n, 2);
	queue_policy_dlp_free(rules, n);
	ck_assert_int_eq(queue_policy_dlp_rules(t, "nowhere", &rules, &n), -ENOENT);
	ck_assert_int_eq(queue_policy_dlp_owner(t, "street", "dlp_rule.secret", &owner), 0);
	ck_assert_str_eq(owner, "city");
	free(owner);
	ck_assert_int_eq(queue_policy_dlp_owner(t, "ward", "dlp_rule.cards", &owner), -ENOENT);
	ck_assert_int_eq(queue_policy_dlp_owner(t, "street", "dlp_rule.cards", &owner), 0);
	ck_assert_str_eq(owner, "ward");
	free(owner);
	ck_assert_int_eq(queue_policy_dlp_count_own(t, "ward", &own), 0);
	ck_assert_uint_eq(own, 1);

	ck_assert_int_eq(dlp_ruleset_for_tenant(t, "street", &rs, why, sizeof why), 0);
	ck_assert_uint_eq(dlp_ruleset_count(rs), 3);
	s = dlp_scan_new(rs);
	dlp_scan_text(s, "BÍ MẬT: 001099012345, thẻ 4111 1111 1111 1111",
	    strlen("BÍ MẬT: 001099012345, thẻ 4111 1111 1111 1111"));
	ck_assert_int_eq(dlp_scan_result(s, &res), DLP_OK);
	ck_assert_uint_eq(res.nhits, 2);          /* "secret" needs 2 */
	ck_assert_int_eq(res.action, DLP_ACTION_QUARANTINE);
	dlp_scan_free(s);
	dlp_ruleset_free(rs);
	ck_assert_int_eq(dlp_ruleset_for_tenant(t, NULL, &rs, why, sizeof why), 0);
	ck_assert_uint_eq(dlp_ruleset_count(rs), 0);
	dlp_ruleset_free(rs);
	/* The cache: the same texts give the same compiled set. */
	cache = dlp_cache_new();
	ck_assert_int_eq(dlp_cache_get(cache, t, "street", &rs, why, sizeof why), 0);
	ck_assert_int_eq(dlp_cache_get(cache, t, "street", &rs2, why, sizeof why), 0);
	ck_assert_ptr_eq(rs, rs2);
	ck_assert_uint_eq(dlp_ruleset_count(rs), 3);
	dlp_ruleset_free(rs2);
	queue_txn_abort(t);

	/* The ward's own rule goes; the city's stay. */
	ck_assert_int_eq(queue_txn_begin(store, true, &t), 0);
	ck_assert_int_eq(queue_policy_set(t, "ward", "dlp_rule.cards", NULL), 0);
	ck_assert_int_eq(queue_policy_set(t, "ward", "dlp_rule.secret", NULL), -ENOENT);
	ck_assert_int_eq(queue_policy_dlp_rules(t, "street", &rules, &n), 0);
	ck_assert_uint_eq(n, 2);
	queue_policy_dlp_free(rules, n);
	/* Changed texts: compiled again; the reference taken before stays usable. */
	ck_assert_int_eq(dlp_cache_get(cache, t, "street", &rs2, why, sizeof why), 0);
	ck_assert_ptr_ne(rs, rs2);
	ck_assert_uint_eq(dlp_ruleset_count(rs2), 2);
	s = dlp_scan_new(rs);
	dlp_scan_text(s, "4111111111111111", 16);
	ck_assert_int_eq(dlp_scan_result(s, &res), DLP_OK);
	ck_assert_uint_eq(res.nhits, 1);
	dlp_scan_free(s);
	dlp_ruleset_free(rs);
	dlp_ruleset_free(rs2);
	dlp_cache_free(cache);
	/* At most TENANCY_DLP_RULES_PER_TENANT own rules; replacing one is fine. */
	for (int i = 0; i < TENANCY_DLP_RULES_PER_TENANT; i++) {
		char key[32];

		snprintf(key, sizeof key, "dlp_rule.r%d", i);
		ck_assert_int_eq(queue_policy_set(t, "street", key, "action=tag pattern=x"), 0);
	}
	ck_assert_int_eq(queue_policy_set(t, "street", "dlp_rule.one-more",
	    "action=tag pattern=x"), -ENOSPC);
	ck_assert_int_eq(queue_policy_set(t, "street", "dlp_rule.r0", "action=reject pattern=y"),
	    0);
	queue_txn_abort(t);
	queue_store_close(store);
	nftw(dir, td_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}
END_TEST

/*
 * The ranges whose text skips normalization are NFC for certain: every
 * character there is unchanged by NFC and of combining class 0 (and the
 * Unicode data says none composes with what precedes it); characters
 * just outside them take the slow path.
 */
START_TEST(test_nfc_quick_ranges)
{
	static const struct { utf8proc_int32_t lo, hi; } quick[] = {
		{ 0x0001, 0x02FF }, { 0x1E00, 0x1EFF }, { 0x2010, 0x2027 },
	};
	static const utf8proc_int32_t slow[] = { 0x0300, 0x0301, 0x0323, 0x0340, 0x1DFF,
		0x1F00, 0x2000, 0x2001, 0x200F, 0x2028, 0x212B, 0x1161, 0xAC00 };

	for (size_t r = 0; r < sizeof quick / sizeof quick[0]; r++) {
		for (utf8proc_int32_t cp = quick[r].lo; cp <= quick[r].hi; cp++) {
			utf8proc_uint8_t in[8], *out = NULL;
			utf8proc_ssize_t n = utf8proc_encode_char(cp, in), m;

			m = utf8proc_map(in, n, &out, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
			ck_assert_msg(m == n && memcmp(in, out, (size_t)n) == 0, "U+%04X changes", cp);
			free(out);
			ck_assert_msg(utf8proc_get_property(cp)->combining_class == 0,
			    "U+%04X combines", cp);
			ck_assert_msg(dlp__nfc_is_quick((const char *)in, (size_t)n), "U+%04X slow", cp);
		}
	}
	for (size_t i = 0; i < sizeof slow / sizeof slow[0]; i++) {
		utf8proc_uint8_t in[8];
		utf8proc_ssize_t n = utf8proc_encode_char(slow[i], in);

		ck_assert_msg(!dlp__nfc_is_quick((const char *)in, (size_t)n), "U+%04X quick",
		    slow[i]);
	}
	/* A character cut short is not quick (left to utf8proc). */
	ck_assert(!dlp__nfc_is_quick("\xe1\xbb", 2));
	ck_assert(dlp__nfc_is_quick("Tối mật – “Đ”…", strlen("Tối mật – “Đ”…")));
}
END_TEST

static Suite *td_suite(void)
{
	Suite *s = suite_create("dlp");
	TCase *tc = tcase_create("dlp");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_custom_thresholds);
	tcase_add_test(tc, test_strongest_action);
	tcase_add_test(tc, test_split_every_byte);
	tcase_add_test(tc, test_split_window_boundary);
	tcase_add_test(tc, test_texts_are_separate);
	tcase_add_test(tc, test_cccd);
	tcase_add_test(tc, test_card);
	tcase_add_test(tc, test_catastrophic_backtracking);
	tcase_add_test(tc, test_invalid_utf8);
	tcase_add_test(tc, test_vietnamese_caseless);
	tcase_add_test(tc, test_nfc);
	tcase_add_test(tc, test_nfc_quick_ranges);
	tcase_add_test(tc, test_file_names);
	tcase_add_test(tc, test_pattern_check);
	tcase_add_test(tc, test_rule_refusals);
	tcase_add_test(tc, test_policy_values);
	tcase_add_test(tc, test_policy_inheritance);
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
