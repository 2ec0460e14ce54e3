/*
 * test_classify: the state-secret marking finder (policy/classify.c).
 * The corpus tests/unit/classify_corpus.tsv (read through
 * GOVRELAY_SRCDIR) holds real-looking Vietnamese subjects, stamp lines,
 * letters, SIO-Label values and file names, each with the level it must
 * give; the corpus test prints precision and recall and every case it
 * gets wrong to stdout, and fails unless both are 100%. Table-driven
 * cases pin each entry point, and classify_text is fed whole, in pieces
 * and one byte at a time.
 *
 * OWNERSHIP: none. THREADS: Check forks one process per test.
 * ERRORS: assertion failures.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/classify.h"
#include "policy/classify_int.h"

#define N_CASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ------------------------------------------------------------ corpus */

#define CORPUS_LINE_MAX 8192

/* Undoes the corpus escapes: \n \r \t \\ \xHH (a raw byte) and \uXXXX
 * (a code point, for decomposed forms). Returns the length. */
static size_t corpus_unescape(const char *in, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; in[i] != '\0' && o + 4 < cap; i++) {
		unsigned long cp;
		char hex[9] = { 0 };

		if (in[i] != '\\' || in[i + 1] == '\0') {
			out[o++] = in[i];
			continue;
		}
		switch (in[++i]) {
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'x':
			memcpy(hex, in + i + 1, 2);
			out[o++] = (char)strtoul(hex, NULL, 16);
			i += 2;
			break;
		case 'u':
			memcpy(hex, in + i + 1, 4);
			cp = strtoul(hex, NULL, 16);
			i += 4;
			if (cp < 0x80) {
				out[o++] = (char)cp;
			} else if (cp < 0x800) {
				out[o++] = (char)(0xC0 | (cp >> 6));
				out[o++] = (char)(0x80 | (cp & 0x3F));
			} else {
				out[o++] = (char)(0xE0 | (cp >> 12));
				out[o++] = (char)(0x80 | ((cp >> 6) & 0x3F));
				out[o++] = (char)(0x80 | (cp & 0x3F));
			}
			break;
		default: out[o++] = in[i]; break;
		}
	}
	out[o] = '\0';
	return o;
}

static enum classify_level corpus_text(const char *s, size_t len, size_t piece)
{
	struct classify_text *ct = classify_text_new();
	enum classify_level lv;

	for (size_t i = 0; i < len; i += piece)
		classify_text_feed(ct, s + i, len - i < piece ? len - i : piece);
	lv = classify_text_level(ct);
	classify_text_free(ct);
	return lv;
}

/* The level the finder gives for one case; -1 for an unknown kind. */
static int corpus_run(const char *kind, const char *s, size_t len)
{
	if (strcmp(kind, "subject") == 0)
		return (int)classify_subject(s, len);
	if (strcmp(kind, "stamp") == 0)
		return (int)classify_stamp_line(s, len);
	if (strcmp(kind, "file") == 0)
		return (int)classify_filename(s, len);
	if (strcmp(kind, "sio") == 0)
		return (int)classify_sio_label(s, len);
	if (strcmp(kind, "text") == 0) {
		enum classify_level whole = corpus_text(s, len, len ? len : 1);

		/* Fed one byte at a time, a text reads the same. */
		if (corpus_text(s, len, 1) != whole || corpus_text(s, len, 7) != whole)
			return -2;
		return (int)whole;
	}
	return -1;
}

START_TEST(test_corpus)
{
	const char *srcdir = getenv("GOVRELAY_SRCDIR");
	char path[4096], line[CORPUS_LINE_MAX], input[CORPUS_LINE_MAX];
	int tp = 0, fp = 0, fn = 0, tn = 0, npos = 0, nneg = 0, lineno = 0;
	FILE *f;

	ck_assert_msg(srcdir != NULL, "GOVRELAY_SRCDIR is not set (run through make check)");
	snprintf(path, sizeof path, "%s/tests/unit/classify_corpus.tsv", srcdir);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	while (fgets(line, sizeof line, f) != NULL) {
		char *kind, *want, *text, *note, *save = NULL;
		enum classify_level expect;
		size_t len;
		int got;

		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		kind = strtok_r(line, "\t", &save);
		want = strtok_r(NULL, "\t", &save);
		text = strtok_r(NULL, "\t", &save);
		note = strtok_r(NULL, "\t", &save);
		ck_assert_msg(kind && want && text, "corpus line %d: kind, level, text", lineno);
		ck_assert_msg(classify_level_parse(want, &expect), "corpus line %d: level %s",
		    lineno, want);
		len = corpus_unescape(text, input, sizeof input);
		got = corpus_run(kind, input, len);
		ck_assert_msg(got >= 0, "corpus line %d: kind %s (or pieces disagree)", lineno, kind);
		if (expect != CLASSIFY_NONE)
			npos++;
		else
			nneg++;
		if ((enum classify_level)got == expect) {
			if (expect != CLASSIFY_NONE)
				tp++;
			else
				tn++;
			continue;
		}
		if (got != CLASSIFY_NONE)
			fp++;
		if (expect != CLASSIFY_NONE)
			fn++;
		printf("MISCLASSIFIED line %d %s: want %s got %s: %s%s%s\n", lineno, kind,
		    want, classify_level_name((enum classify_level)got), text,
		    note ? "  # " : "", note ? note : "");
	}
	fclose(f);
	printf("classify corpus: %d positive, %d negative cases; tp=%d fp=%d fn=%d tn=%d\n",
	    npos, nneg, tp, fp, fn, tn);
	printf("classify corpus: precision %.2f%%, recall %.2f%%\n",
	    tp + fp ? 100.0 * tp / (tp + fp) : 100.0, tp + fn ? 100.0 * tp / (tp + fn) : 100.0);
	fflush(stdout);
	ck_assert_int_ge(npos, 70);
	ck_assert_int_ge(nneg, 70);
	ck_assert_msg(fp == 0 && fn == 0, "precision or recall below 100%% (see stdout)");
}
END_TEST

/* ------------------------------------------------------------- names */

START_TEST(test_names)
{
	static const struct {
		enum classify_level level;
		const char *name, *label;
	} lv[] = {
		{ CLASSIFY_NONE, "none", "" },
		{ CLASSIFY_MAT, "mat", "Mật" },
		{ CLASSIFY_TOI_MAT, "toi-mat", "Tối mật" },
		{ CLASSIFY_TUYET_MAT, "tuyet-mat", "Tuyệt mật" },
	};
	enum classify_level out;

	for (int i = 0; i < N_CASES(lv); i++) {
		ck_assert_str_eq(classify_level_name(lv[i].level), lv[i].name);
		ck_assert_str_eq(classify_level_label(lv[i].level), lv[i].label);
		ck_assert(classify_level_parse(lv[i].name, &out));
		ck_assert_int_eq(out, lv[i].level);
	}
	ck_assert(!classify_level_parse("Mật", &out));
	ck_assert(!classify_level_parse("toi_mat", &out));
	ck_assert(!classify_level_parse("", &out));
	ck_assert(!classify_level_parse(NULL, &out));
	ck_assert(CLASSIFY_MAT < CLASSIFY_TOI_MAT && CLASSIFY_TOI_MAT < CLASSIFY_TUYET_MAT);
	ck_assert_str_eq(classify_where_name(CLASSIFY_IN_SIO_LABEL), "sio-label");
	ck_assert_str_eq(classify_where_name(CLASSIFY_IN_SUBJECT), "subject");
	ck_assert_str_eq(classify_where_name(CLASSIFY_IN_TEXT), "text");
	ck_assert_str_eq(classify_where_name(CLASSIFY_IN_FILENAME), "filename");
	ck_assert_str_eq(classify_where_name(CLASSIFY_IN_DOCUMENT), "document");
}
END_TEST

/* ------------------------------------------------ the entry points */

struct level_case {
	const char *label;
	const char *in;
	enum classify_level want;
};

static const struct level_case subject_cases[] = {
	{ "bracketed", "[MẬT] Kế hoạch phòng thủ", CLASSIFY_MAT },
	{ "parenthesized", "(Tối mật) Báo cáo", CLASSIFY_TOI_MAT },
	{ "colon", "MẬT: Kế hoạch", CLASSIFY_MAT },
	{ "dash", "TỐI MẬT - Kế hoạch", CLASSIFY_TOI_MAT },
	{ "en dash lumped", "Tuyệt mật \u2013 Kế hoạch", CLASSIFY_TUYET_MAT },
	{ "higher wins", "TUYỆT MẬT: x", CLASSIFY_TUYET_MAT },
	{ "hyphen joins the words", "TUYỆT-MẬT: x", CLASSIFY_TUYET_MAT },
	{ "glued words", "TỐIMẬT: x", CLASSIFY_TOI_MAT },
	{ "reply prefixes", "Re: Fwd: TL: [MẬT] x", CLASSIFY_MAT },
	{ "Vietnamese reply", "Trả lời: Chuyển tiếp: MẬT - x", CLASSIFY_MAT },
	{ "counted reply", "RE[2]: MẬT: x", CLASSIFY_MAT },
	{ "whole subject", "Tối mật", CLASSIFY_TOI_MAT },
	{ "field name", "Độ mật: Tối mật - Báo cáo", CLASSIFY_TOI_MAT },
	{ "urgency first", "HỎA TỐC - MẬT: Công văn", CLASSIFY_MAT },
	{ "urgency after comma", "MẬT, KHẨN: Công văn", CLASSIFY_MAT },
	{ "bracket at the end", "Kế hoạch 15 (MẬT)", CLASSIFY_MAT },
	{ "two words at the end", "Báo cáo quý III - TỐI MẬT", CLASSIFY_TOI_MAT },
	{ "capital MAT", "MAT: ke hoach", CLASSIFY_MAT },
	{ "quoted at the start", "\"MẬT\" Kế hoạch", CLASSIFY_MAT },
	{ "capitals before small letters", "MẬT Kế hoạch phòng thủ", CLASSIFY_MAT },
	{ "two words in capitals", "TỐI MẬT KẾ HOẠCH", CLASSIFY_TOI_MAT },
	{ "honey in capitals", "MẬT ONG NGUYÊN CHẤT", CLASSIFY_NONE },
	{ "quoted in prose", "Tài liệu \"mật\" là gì", CLASSIFY_NONE },
	{ "full stop", "MẬT. Tình hình", CLASSIFY_NONE },
	{ "emoji first", "\U0001F512 MẬT: Kế hoạch", CLASSIFY_MAT },
	{ "bare two words, any case", "toi mat - ke hoach", CLASSIFY_TOI_MAT },
	{ "zero-width space inside", "M\u200bẬT: x", CLASSIFY_MAT },
	{ "decomposed", "ma\u0323\u0302t: x", CLASSIFY_MAT },
	{ "password", "Mật khẩu mới", CLASSIFY_NONE },
	{ "password in capitals", "MẬT KHẨU MỚI CỦA BẠN", CLASSIFY_NONE },
	{ "honey", "Mật ong rừng - giá tốt", CLASSIFY_NONE },
	{ "a name", "Mat: quick question", CLASSIFY_NONE },
	{ "face", "Mặt: bản vẽ", CLASSIFY_NONE },
	{ "prose after the level", "Tối mật và bí mật nhà nước: tập huấn", CLASSIFY_NONE },
	{ "ward", "Lịch khám Khoa Gan - Mật", CLASSIFY_NONE },
	{ "not secret", "Không mật - tài liệu công khai", CLASSIFY_NONE },
	{ "list in brackets", "Phân loại (Mật, Tối mật, Tuyệt mật)", CLASSIFY_NONE },
	{ "security policy", "Chính sách bảo mật: cập nhật", CLASSIFY_NONE },
	{ "comma then prose", "Mật, tối mật và tuyệt mật: phân biệt", CLASSIFY_NONE },
	{ "empty", "", CLASSIFY_NONE },
};

static const struct level_case stamp_cases[] = {
	{ "capitals", "MẬT", CLASSIFY_MAT },
	{ "two words", "TỐI MẬT", CLASSIFY_TOI_MAT },
	{ "extra spaces", "  TUYỆT    MẬT  ", CLASSIFY_TUYET_MAT },
	{ "decorated", "*** [TỐI MẬT] ***", CLASSIFY_TOI_MAT },
	{ "field", "ĐỘ MẬT: TỐI MẬT", CLASSIFY_TOI_MAT },
	{ "field, sentence case", "Độ mật: Mật", CLASSIFY_MAT },
	{ "with urgency", "MẬT - KHẨN", CLASSIFY_MAT },
	{ "two fields", "Độ mật: Tối mật; Độ khẩn: Thường", CLASSIFY_TOI_MAT },
	{ "urgency field first", "Độ khẩn: Hỏa tốc hẹn giờ, Độ mật: Mật", CLASSIFY_MAT },
	{ "urgency field only", "Độ khẩn: Thượng khẩn", CLASSIFY_NONE },
	{ "quoted reply", "> MẬT", CLASSIFY_MAT },
	{ "in a drawn box", "\u2502 TỐI MẬT \u2502", CLASSIFY_TOI_MAT },
	{ "bare capitals", "MAT", CLASSIFY_MAT },
	{ "NBSP around", "\u00a0MẬT\u00a0", CLASSIFY_MAT },
	{ "fullwidth", "\uff2d\u1eac\uff34", CLASSIFY_MAT },
	{ "signature name", "Mat", CLASSIFY_NONE },
	{ "not secret", "KHÔNG MẬT", CLASSIFY_NONE },
	{ "field says normal", "Độ mật: Thường", CLASSIFY_NONE },
	{ "heading", "ĐỘ MẬT", CLASSIFY_NONE },
	{ "honey label", "MẬT ONG NGUYÊN CHẤT", CLASSIFY_NONE },
	{ "list of levels", "Mật, Tối mật, Tuyệt mật", CLASSIFY_NONE },
	{ "question", "Mật?", CLASSIFY_NONE },
	{ "face", "MẶT", CLASSIFY_NONE },
	{ "empty", "", CLASSIFY_NONE },
	{ "only decoration", "-----", CLASSIFY_NONE },
};

static const struct level_case file_cases[] = {
	{ "two words, underscores", "TOI_MAT_bao_cao.docx", CLASSIFY_TOI_MAT },
	{ "bracketed", "[MẬT] Kế hoạch.pdf", CLASSIFY_MAT },
	{ "two words, dash", "Tuyet mat - ke hoach.docx", CLASSIFY_TUYET_MAT },
	{ "camel case glued", "BaoCao_TuyetMat.pdf", CLASSIFY_TUYET_MAT },
	{ "set off by a dash", "MẬT - Kế hoạch.docx", CLASSIFY_MAT },
	{ "last, set off", "Ke hoach - MAT.docx", CLASSIFY_MAT },
	{ "the whole name", "MAT.pdf", CLASSIFY_MAT },
	{ "slug", "bao-cao-mat.pdf", CLASSIFY_NONE },
	{ "password", "mat-khau.txt", CLASSIFY_NONE },
	{ "density", "mat_do_dan_so.xlsx", CLASSIFY_NONE },
	{ "trade secret", "bi-mat-kinh-doanh.docx", CLASSIFY_NONE },
	{ "MATLAB", "data.mat", CLASSIFY_NONE },
	{ "ID card front", "CCCD_mat_truoc.jpg", CLASSIFY_NONE },
	{ "yoga mat", "yoga_mat.png", CLASSIFY_NONE },
	{ "capitals first", "MAT_bao_cao.docx", CLASSIFY_MAT },
	{ "capitals last", "Bao_cao_MẬT.pdf", CLASSIFY_MAT },
	{ "all capitals slug", "CCCD_MAT_TRUOC.JPG", CLASSIFY_NONE },
	{ "path sent by the client", "C:\\fakepath\\[MẬT] Kế hoạch.pdf", CLASSIFY_MAT },
	{ "path, the level in a folder", "TOI_MAT/ke_hoach.pdf", CLASSIFY_NONE },
	{ "not secret", "KHONG_MAT_ke_hoach.docx", CLASSIFY_NONE },
};

static const struct level_case sio_cases[] = {
	{ "marking", "marking=\"TỐI MẬT\"; fgcolor=black; bgcolor=red", CLASSIFY_TOI_MAT },
	{ "marking token", "marking=MAT; type=\":ess\"", CLASSIFY_MAT },
	{ "marking with caveat", "marking=\"TUYỆT MẬT//VN\"", CLASSIFY_TUYET_MAT },
	{ "label xml base64",
	  /* <label><class>TỐI MẬT</class></label> */
	  "type=\":xml\"; label=\"PGxhYmVsPjxjbGFzcz5U4buQSSBN4bqsVDwvY2xhc3M+PC9sYWJlbD4=\"",
	  CLASSIFY_TOI_MAT },
	{ "label character references",
	  "label=\"&lt;c&gt;M&#7852;T&lt;/c&gt;\"", CLASSIFY_MAT },
	{ "unquoted by hand", "marking=TỐI MẬT ; fgcolor=red", CLASSIFY_TOI_MAT },
	{ "unclassified", "marking=\"KHÔNG MẬT\"; fgcolor=black", CLASSIFY_NONE },
	{ "other parameters only", "fgcolor=black; bgcolor=red; type=\":ess\"", CLASSIFY_NONE },
	{ "broken", "marking=\"", CLASSIFY_NONE },
};

static void check_cases(const struct level_case *c, int n,
    enum classify_level (*fn)(const char *, size_t))
{
	for (int i = 0; i < n; i++)
		ck_assert_msg(fn(c[i].in, strlen(c[i].in)) == c[i].want, "%s: %s gave %s",
		    c[i].label, c[i].in, classify_level_name(fn(c[i].in, strlen(c[i].in))));
}

START_TEST(test_subject)
{
	check_cases(subject_cases, N_CASES(subject_cases), classify_subject);
	ck_assert_int_eq(classify_subject(NULL, 0), CLASSIFY_NONE);
	/* Only the length given is read. */
	ck_assert_int_eq(classify_subject("MẬT khẩu", strlen("MẬT")), CLASSIFY_MAT);
}
END_TEST

START_TEST(test_stamp_line)
{
	check_cases(stamp_cases, N_CASES(stamp_cases), classify_stamp_line);
}
END_TEST

START_TEST(test_filename)
{
	check_cases(file_cases, N_CASES(file_cases), classify_filename);
}
END_TEST

START_TEST(test_sio_label)
{
	check_cases(sio_cases, N_CASES(sio_cases), classify_sio_label);
}
END_TEST

/* Invalid UTF-8, overlong input and odd bytes never crash or match. */
START_TEST(test_hostile_input)
{
	static const char bad[] = "\xff\xfe M\xc3 \xe1\xba T \xed\xa0\x80";
	char *big = malloc(70000);

	ck_assert_ptr_nonnull(big);
	ck_assert_int_eq(classify_subject(bad, sizeof bad - 1), CLASSIFY_NONE);
	ck_assert_int_eq(classify_stamp_line(bad, sizeof bad - 1), CLASSIFY_NONE);
	ck_assert_int_eq(classify_filename(bad, sizeof bad - 1), CLASSIFY_NONE);
	ck_assert_int_eq(classify_sio_label(bad, sizeof bad - 1), CLASSIFY_NONE);
	/* U+FDFA makes 18 code points from 3 bytes. */
	for (size_t i = 0; i + 3 <= 69999; i += 3)
		memcpy(big + i, "\xef\xb7\xba", 3);
	ck_assert_int_eq(classify_subject(big, 69999), CLASSIFY_NONE);
	ck_assert_int_eq(classify_stamp_line(big, 69999), CLASSIFY_NONE);
	ck_assert_int_eq(classify_filename(big, 69999), CLASSIFY_NONE);
	memset(big, 'A', 70000);
	ck_assert_int_eq(classify_sio_label(big, 70000), CLASSIFY_NONE);
	/* A marking first, then far too much. */
	memcpy(big, "MẬT: ", strlen("MẬT: "));
	ck_assert_int_eq(classify_subject(big, 70000), CLASSIFY_MAT);
	free(big);
}
END_TEST

/* ------------------------------------------------------------- text */

static const struct {
	const char *label;
	const char *in;
	enum classify_level want;
} text_cases[] = {
	{ "letter, LF",
	  "ỦY BAN NHÂN DÂN\nTHÀNH PHỐ HÀ NỘI\nSố: 123/UBND-VP\n\n"
	  "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM\nĐộc lập - Tự do - Hạnh phúc\n"
	  "Hà Nội, ngày 05 tháng 12 năm 2026\nMẬT\nKẾ HOẠCH\n", CLASSIFY_MAT },
	{ "CRLF", "Kính gửi: Sở Nội vụ\r\n\r\nTỐI MẬT\r\nNội dung", CLASSIFY_TOI_MAT },
	{ "CR only", "Kính gửi\rTUYỆT MẬT\rNội dung", CLASSIFY_TUYET_MAT },
	{ "unterminated last line", "Kính gửi\n  TỐI MẬT  ", CLASSIFY_TOI_MAT },
	{ "two stamps, highest", "MẬT\nTỐI MẬT\n", CLASSIFY_TOI_MAT },
	{ "forwarded subject", "Fwd below\n> Subject: Re: [MẬT] Kế hoạch\n", CLASSIFY_MAT },
	{ "forwarded subject, prose", "Subject: Mật khẩu mới\n", CLASSIFY_NONE },
	{ "prose", "Mật khẩu mới của anh là 123.\nThân mật,\nLan\n", CLASSIFY_NONE },
	{ "stamp after twenty lines",
	  "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\n19\n20\nMẬT\n",
	  CLASSIFY_NONE },
	{ "blank lines do not count",
	  "1\n\n2\n\n3\n \n4\n\t\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n16\n17\n18\n19\nMẬT\n",
	  CLASSIFY_MAT },
	{ "empty", "", CLASSIFY_NONE },
};

static enum classify_level text_in_pieces(const char *s, size_t len, size_t piece)
{
	struct classify_text *ct = classify_text_new();
	enum classify_level lv;

	for (size_t i = 0; i < len; i += piece)
		classify_text_feed(ct, s + i, len - i < piece ? len - i : piece);
	lv = classify_text_level(ct);
	classify_text_free(ct);
	return lv;
}

START_TEST(test_text)
{
	for (int i = 0; i < N_CASES(text_cases); i++) {
		size_t len = strlen(text_cases[i].in);

		for (size_t piece = 1; piece <= 9; piece += 4)
			ck_assert_msg(text_in_pieces(text_cases[i].in, len, piece) ==
			    text_cases[i].want, "%s (pieces of %zu)", text_cases[i].label, piece);
		ck_assert_msg(text_in_pieces(text_cases[i].in, len, len + 1) == text_cases[i].want,
		    "%s (whole)", text_cases[i].label);
	}
}
END_TEST

START_TEST(test_text_done_and_long_lines)
{
	struct classify_text *ct = classify_text_new();
	char line[CLASSIFY_LINE_MAX * 3];

	/* A line longer than the maximum is cut, and still one line. */
	memset(line, 'x', sizeof line);
	classify_text_feed(ct, line, sizeof line);
	classify_text_feed(ct, "\nMẬT\n", strlen("\nMẬT\n"));
	ck_assert_int_eq(classify_text_level(ct), CLASSIFY_MAT);
	ck_assert(!classify_text_is_done(ct));
	for (int i = 0; i < CLASSIFY_STAMP_LINES - 3; i++)
		classify_text_feed(ct, "dòng\r\n", strlen("dòng\r\n"));
	ck_assert(!classify_text_is_done(ct));
	classify_text_feed(ct, "dòng cuối\n", strlen("dòng cuối\n"));
	ck_assert(classify_text_is_done(ct));
	classify_text_feed(ct, "TUYỆT MẬT\n", strlen("TUYỆT MẬT\n"));
	ck_assert_int_eq(classify_text_level(ct), CLASSIFY_MAT);
	classify_text_free(ct);

	/* The highest level ends the reading at once. */
	ct = classify_text_new();
	classify_text_feed(ct, "TUYỆT MẬT\n", strlen("TUYỆT MẬT\n"));
	ck_assert(classify_text_is_done(ct));
	ck_assert_int_eq(classify_text_level(ct), CLASSIFY_TUYET_MAT);
	classify_text_free(ct);

	/* A stamp spaced out past the line limit is cut, not read whole. */
	ct = classify_text_new();
	memset(line, ' ', sizeof line);
	memcpy(line + CLASSIFY_LINE_MAX - 2, "MẬT", strlen("MẬT"));
	classify_text_feed(ct, line, sizeof line);
	classify_text_feed(ct, "\n", 1);
	ck_assert_int_eq(classify_text_level(ct), CLASSIFY_NONE);
	classify_text_free(ct);
	classify_text_free(NULL);
}
END_TEST

/* The quick test never says "no" to a line that could be a marking. */
static const struct {
	const char *label, *text;
	bool may;
} tc_quick_cases[] = {
	{ "ascii capital", "TOI MAT", true },
	{ "composed", "Tối mật", true },
	{ "decomposed", "To\xcc\x82\xcc\x81i ma\xcc\xa3\xcc\x82t", true },
	{ "fullwidth", "\xef\xbc\xad\xef\xbc\xa1\xef\xbc\xb4", true },
	{ "fullwidth m alone", "\xef\xbc\xad", false },
	{ "circled", "\xe2\x93\x82\xe2\x93\x90\xe2\x93\xa3", true },
	{ "mathematical bold", "\xf0\x9d\x90\x8c\xf0\x9d\x90\x9a\xf0\x9d\x90\xad", true },
	{ "square mm", "\xe3\x8e\x9c", true },
	{ "fullwidth lower", "\xef\xbd\x8d\xef\xbd\x81\xef\xbd\x94", true },
	{ "beyond the first planes", "\xf3\xa0\x80\x81", true },
	{ "prose without the letter", "Kính gửi các phòng ban", false },
	{ "motto", "Độc lập - Tự do - Hạnh phúc", false },
	{ "m and a and t apart", "một năm làm việc tốt", false },
	{ "mặt is read in full", "mặt trận", true },
	{ "zero-width space inside", "M\xe2\x80\x8b\xe1\xba\xac\x54", true },
	{ "glued", "TỐIMẬT", true },
	{ "tab between is no word", "m\tat", false },
	{ "invalid bytes", "\xff\xfe abc", false },
	{ "empty", "", false },
};

START_TEST(test_quick_prefilter)
{
	for (size_t i = 0; i < sizeof tc_quick_cases / sizeof tc_quick_cases[0]; i++)
		ck_assert_msg(classify__may_mark(tc_quick_cases[i].text, strlen(tc_quick_cases[i].text))
		    == tc_quick_cases[i].may, "%s", tc_quick_cases[i].label);
}
END_TEST

static Suite *classify_suite(void)
{
	Suite *s = suite_create("classify");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_subject);
	tcase_add_test(tc, test_stamp_line);
	tcase_add_test(tc, test_filename);
	tcase_add_test(tc, test_sio_label);
	tcase_add_test(tc, test_hostile_input);
	tcase_add_test(tc, test_text);
	tcase_add_test(tc, test_text_done_and_long_lines);
	tcase_add_test(tc, test_corpus);
	tcase_add_test(tc, test_quick_prefilter);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(classify_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
