/*
 * test_content: the pure pieces of the content check (issue 11): the
 * HTML reducer (policy/html_text.c), what is kept whole
 * (content_attach_wants_whole), the attachment rules over real bytes
 * (content_attach_check), and the verdict cache (policy/content_cache.c).
 * The check itself runs against the real daemon in tests/e2e/test_content.py.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "policy/content_attach.h"
#include "policy/content_cache.h"
#include "policy/html_text.h"
#include "policy/mime.h"

/* ------------------------------------------------------------- HTML */

static void tc_collect(void *arg, const char *utf8, size_t len)
{
	buf_append(arg, utf8, len);
}

static char *tc_html(const char *html, size_t piece)
{
	struct html_text h;
	struct buf out;
	size_t len = strlen(html);

	memset(&h, 0, sizeof h);
	buf_init(&out);
	for (size_t at = 0; at < len; at += piece)
		html_text_feed(&h, html + at, len - at < piece ? len - at : piece, tc_collect, &out);
	buf_append(&out, "", 1);
	return out.data;
}

static const struct {
	const char *label, *html, *text;
} tc_html_cases[] = {
	{ "tags dropped", "<b>MẬT</b>", "MẬT" },
	{ "paragraphs are lines", "<p>SỞ</p><p>MẬT</p>", "\nSỞ\n\nMẬT\n" },
	{ "br and div", "a<br>b<div>c</div>", "a\nb\nc\n" },
	{ "headings", "<h1>TỐI MẬT</h1>x", "\nTỐI MẬT\nx" },
	{ "decimal references", "T&#7888;I M&#7852;T", "TỐI MẬT" },
	{ "hex references", "&#x54;&#x1ED0;I", "TỐI" },
	{ "named references", "a&nbsp;&amp;&lt;&gt;&quot;b", "a &<>\"b" },
	{ "unknown reference dropped", "a&bogus;b", "ab" },
	{ "surrogate reference dropped", "a&#xD800;b", "ab" },
	{ "long tag cut, still closed", "<span style=\"color:red;font-weight:bold\">x</span>", "x" },
	{ "attribute with br-like name is not br", "<brand>x", "x" },
};

START_TEST(test_html_text)
{
	for (size_t i = 0; i < sizeof tc_html_cases / sizeof tc_html_cases[0]; i++) {
		/* Whole, and one byte at a time: the same text. */
		for (size_t piece = 1; piece <= 4096; piece *= 4096) {
			char *got = tc_html(tc_html_cases[i].html, piece);

			ck_assert_msg(strcmp(got, tc_html_cases[i].text) == 0, "%s (pieces of %zu): %s",
			    tc_html_cases[i].label, piece, got);
			free(got);
		}
	}
}
END_TEST

/* ------------------------------------------------------ UTF-8 text */

static char *tc_text(const char *charset, const char *in, size_t len, size_t piece)
{
	struct mime_text *t = mime_text_new(charset);
	struct buf out;

	buf_init(&out);
	for (size_t at = 0; at < len; at += piece)
		mime_text_feed(t, in + at, len - at < piece ? len - at : piece, tc_collect, &out);
	mime_text_finish(t, tc_collect, &out);
	mime_text_free(t);
	buf_append(&out, "", 1);
	return out.data;
}

/* Declared UTF-8 is checked, not converted: each bad byte one U+FFFD, the rest kept. */
START_TEST(test_declared_utf8)
{
	static const struct {
		const char *label, *in, *want;
	} cases[] = {
		{ "valid", "T\xe1\xbb\x90I M\xe1\xba\xacT", "T\xe1\xbb\x90I M\xe1\xba\xacT" },
		{ "a stray byte", "A\xffM\xe1\xba\xacT", "A\xef\xbf\xbdM\xe1\xba\xacT" },
		{ "a lone continuation", "\x80x", "\xef\xbf\xbdx" },
		{ "cut short, then ASCII", "\xe1\xbax", "\xef\xbf\xbd\xef\xbf\xbdx" },
		{ "cut short at the end", "ok\xe1\xba", "ok\xef\xbf\xbd\xef\xbf\xbd" },
		{ "above U+10FFFF", "\xf4\x90\x80\x80", NULL },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len = strlen(cases[i].in);
		char *whole = tc_text("utf-8", cases[i].in, len, len);

		for (size_t piece = 1; piece < len; piece++) {
			char *got = tc_text("UTF-8", cases[i].in, len, piece);

			ck_assert_msg(strcmp(got, whole) == 0, "%s: pieces of %zu differ",
			    cases[i].label, piece);
			free(got);
		}
		if (cases[i].want != NULL)
			ck_assert_msg(strcmp(whole, cases[i].want) == 0, "%s: %s", cases[i].label, whole);
		else
			ck_assert_msg(strstr(whole, "\xf4\x90") == NULL, "%s passed through",
			    cases[i].label);
		free(whole);
	}
}
END_TEST

/* ------------------------------------------------------- attachments */

static const struct {
	const char *label;
	const char *head;
	size_t len;
	bool whole;
} tc_whole_cases[] = {
	{ "zip", "PK\x03\x04rest", 8, true },
	{ "empty zip", "PK\x05\x06", 4, true },
	{ "pdf", "%PDF-1.7\n", 9, true },
	{ "pdf after junk", "junk junk\n%PDF-1.4", 18, true },
	{ "gzip", "\x1f\x8b\x08\x00", 4, true },
	{ "7z", "7z\xbc\xaf\x27\x1c\x00", 7, true },
	{ "rar", "Rar!\x1a\x07\x01", 7, true },
	{ "png", "\x89PNG\r\n\x1a\n", 8, false },
	{ "text", "hello world", 11, false },
	{ "too short for zip", "PK", 2, false },
};

START_TEST(test_wants_whole)
{
	for (size_t i = 0; i < sizeof tc_whole_cases / sizeof tc_whole_cases[0]; i++)
		ck_assert_msg(content_attach_wants_whole(tc_whole_cases[i].head,
		    tc_whole_cases[i].len) == tc_whole_cases[i].whole, "%s", tc_whole_cases[i].label);
}
END_TEST

/* A minimal PE file: "MZ", e_lfanew pointing at "PE\0\0". */
static void tc_pe(char out[256])
{
	memset(out, 0, 256);
	memcpy(out, "MZ", 2);
	out[0x3c] = 64;
	memcpy(out + 64, "PE\0\0", 4);
}

START_TEST(test_attach_rules)
{
	struct content_attach_rules strict = { CONTENT_BLOCK_EXEC_SCRIPTS, CONTENT_ENC_REJECT, NULL };
	struct content_attach_rules lax = { CONTENT_BLOCK_NONE, CONTENT_ENC_ACCEPT, NULL };
	struct content_attach_result r;
	char pe[256];

	tc_pe(pe);
	/* By content whatever the name; by name whatever the content. */
	content_attach_check("bao-cao.pdf", pe, sizeof pe, false, &strict, NULL, NULL, &r);
	ck_assert_int_eq(r.outcome, CONTENT_ATTACH_REJECT);
	ck_assert_ptr_nonnull(strstr(r.why, "an executable file (bao-cao.pdf"));
	content_attach_check("chay.bat", "@echo off\r\n", 11, false, &strict, NULL, NULL, &r);
	ck_assert_int_eq(r.outcome, CONTENT_ATTACH_REJECT);
	content_attach_check("tinh.py", "print(1)\n", 9, false, &strict, NULL, NULL, &r);
	ck_assert_int_eq(r.outcome, CONTENT_ATTACH_REJECT);
	ck_assert_ptr_nonnull(strstr(r.why, "a script file"));
	/* What the agency allows passes. */
	content_attach_check("tinh.py", "print(1)\n", 9, false, &lax, NULL, NULL, &r);
	ck_assert_int_eq(r.outcome, CONTENT_ATTACH_PASS);
	content_attach_check("bao-cao.pdf", pe, sizeof pe, false, &lax, NULL, NULL, &r);
	ck_assert_int_eq(r.outcome, CONTENT_ATTACH_PASS);
	/* Plain data is no finding. */
	content_attach_check("anh.png", "\x89PNG\r\n\x1a\n", 8, false, &strict, NULL, NULL, &r);
	ck_assert_int_eq(r.outcome, CONTENT_ATTACH_PASS);
	ck_assert_str_eq(r.why, "");
	/* Bytes that claim to be a zip and are not: refused, never passed unread. */
	content_attach_check("x.zip", "PK\x03\x04garbage", 11, true, &strict, NULL, NULL, &r);
	ck_assert_int_eq(r.outcome, CONTENT_ATTACH_REJECT);
	ck_assert_ptr_nonnull(strstr(r.why, "cannot be inspected"));
}
END_TEST

/* blocked_extensions: the name's last extension, as Windows reads it. */
START_TEST(test_attach_extensions)
{
	static const struct {
		const char *name;
		const char *ext;      /* NULL: not blocked */
	} cases[] = {
		{ "dia.iso", "iso" }, { "DIA.ISO", "iso" }, { "dia.iso.", "iso" },
		{ "dia.iso . ", "iso" }, { "bao-cao.pdf.lnk", "lnk" }, { "thu-muc/x.docm", "docm" },
		{ "dia.iso.pdf", NULL }, { "iso", NULL }, { "dia.", NULL }, { "", NULL },
		{ "dia.isox", NULL }, { "dia.is", NULL }, { "x.so", NULL },
	};
	struct content_attach_rules r = { CONTENT_BLOCK_EXEC_SCRIPTS, CONTENT_ENC_REJECT,
		",docm,iso,lnk," };
	struct content_attach_result res;
	char ext[24];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bool got = content_attach_ext_blocked(r.extensions, cases[i].name, ext, sizeof ext);

		ck_assert_msg(got == (cases[i].ext != NULL), "%s", cases[i].name);
		if (got)
			ck_assert_str_eq(ext, cases[i].ext);
	}
	ck_assert(!content_attach_ext_blocked(NULL, "dia.iso", ext, sizeof ext));
	ck_assert(!content_attach_ext_blocked("", "dia.iso", ext, sizeof ext));
	/* Attached, whatever the content; the reason names the extension and the file. */
	content_attach_check("Dia.ISO", "CD001", 5, false, &r, NULL, NULL, &res);
	ck_assert_int_eq(res.outcome, CONTENT_ATTACH_REJECT);
	ck_assert_str_eq(res.why, "a .iso file (Dia.ISO)");
	content_attach_check("dia.img", "CD001", 5, false, &r, NULL, NULL, &res);
	ck_assert_int_eq(res.outcome, CONTENT_ATTACH_PASS);
}
END_TEST

/* ------------------------------------------------------------- cache */

START_TEST(test_cache)
{
	struct content_cache *c = content_cache_new();
	struct content_attach_rules strict = { CONTENT_BLOCK_EXEC_SCRIPTS, CONTENT_ENC_REJECT, NULL };
	struct content_attach_rules lax = { CONTENT_BLOCK_NONE, CONTENT_ENC_ACCEPT, NULL };
	struct content_cache_entry e, got;
	unsigned char k1[32], k2[32], k3[32], k4[32], k5[32], k6[32];

	content_cache_key("a.pdf", "document one", 12, true, &strict, k1);
	content_cache_key("a.pdf", "document two", 12, true, &strict, k2);
	content_cache_key("a.pdf", "document one", 12, true, &lax, k3);
	content_cache_key("a.pdf", "document one", 12, false, &strict, k4);
	content_cache_key("b.pdf", "document one", 12, true, &strict, k5);
	content_cache_key(NULL, "document one", 12, true, &strict, k6);
	ck_assert(memcmp(k1, k2, 32) != 0);
	ck_assert_msg(memcmp(k1, k5, 32) != 0, "another name, another key");
	ck_assert_msg(memcmp(k5, k6, 32) != 0, "no name is not an empty one");
	{
		struct content_attach_rules iso = strict;
		unsigned char k7[32];

		iso.extensions = ",iso,";
		content_cache_key("a.pdf", "document one", 12, true, &iso, k7);
		ck_assert_msg(memcmp(k1, k7, 32) != 0, "other blocked extensions, other key");
	}
	ck_assert_msg(memcmp(k1, k3, 32) != 0, "other rules, other key");
	ck_assert_msg(memcmp(k1, k4, 32) != 0, "the head alone is another key");
	ck_assert(!content_cache_get(c, k1, &got));
	memset(&e, 0, sizeof e);
	e.level = CLASSIFY_TOI_MAT;
	snprintf(e.found, sizeof e.found, "%s", "ho-so.zip/ke-hoach.docx");
	e.kind = DOCTEXT_DOCX;
	e.attach.outcome = CONTENT_ATTACH_PASS;
	content_cache_put(c, k1, &e);
	ck_assert(content_cache_get(c, k1, &got));
	ck_assert_int_eq(got.level, CLASSIFY_TOI_MAT);
	ck_assert_str_eq(got.found, "ho-so.zip/ke-hoach.docx");
	ck_assert(!content_cache_get(c, k2, &got));
	ck_assert(!content_cache_get(c, k3, &got));
	content_cache_free(c);
	content_cache_free(NULL);
}
END_TEST

static Suite *tc_suite(void)
{
	Suite *s = suite_create("content");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_html_text);
	tcase_add_test(tc, test_declared_utf8);
	tcase_add_test(tc, test_wants_whole);
	tcase_add_test(tc, test_attach_rules);
	tcase_add_test(tc, test_attach_extensions);
	tcase_add_test(tc, test_cache);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tc_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
