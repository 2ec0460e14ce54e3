/*
 * classify: the Vietnamese state-secret marking finder (policy/classify.h).
 * A message is classified when a level (Mật, Tối mật, Tuyệt mật; Law on
 * Protection of State Secrets) stands as a marking where a reader sees it:
 * an RFC 7444 SIO-Label, the start of the Subject, a stamp line at the top
 * of a text, an attachment's file name. The word "mật" inside prose is
 * not a marking, and false positives cost as much as misses: every rule
 * below says where a level must stand, never merely that it occurs.
 *
 * Entry points: classify_level_name/_label/_parse, classify_where_name,
 * classify_subject, classify_filename,
 * classify_stamp_line, and the streaming classify_text_new/_feed/_level/
 * _is_done/_free.
 *
 * HOW TEXT IS READ. Input is cut to a fixed size at a character boundary,
 * invalid UTF-8 becomes U+FFFD, and utf8proc makes it NFKC with "lumping"
 * (dashes and minus to '-', Unicode spaces to ' ', curly quotes to ASCII)
 * and default-ignorables removed (so a zero-width space or soft hyphen
 * typed inside "MẬT" does not hide it; NFD input from macOS reads as
 * NFC). The text is split into words (runs of letters, marks and digits)
 * and the separator runs between them. Each word is case-folded on its
 * own (utf8proc NFC + CASEFOLD) and compared with a short list of words.
 * A word matches "mật" when it folds to "mật", or when it was typed with
 * no diacritics at all and folds to "mat". Marks are never stripped from
 * a word that has them: "mặt" (face, side), "mắt" (eye), "mất" (lost),
 * "mát" (cool) are other words and must not read as "mật"; only a writer
 * without a Vietnamese keyboard produces plain "mat".
 *
 * A LEVEL is "tối mật" or "tuyệt mật" (the two words joined by spaces,
 * '-' or '_', or glued: "TỐIMẬT", "TuyetMat" in file names), else "mật".
 * The longest wins, so TỐI MẬT is never also reported as MẬT. The single
 * word typed without diacritics counts only in capitals, "MAT": "Mat" is
 * an English given name ("Thanks,\nMat") and "mat" an English word, while
 * a stamp is typed in capitals. The two-word forms count in any case.
 *
 * SUBJECT (decoded): after any number of reply or forward prefixes ("Re:",
 * "RE[2]:", "Fwd:", "FW:", "TL:", "Trả lời:", "CT:", "Chuyển tiếp:", "AW:",
 * "SV:", "TR:"), urgency markings ("KHẨN", "THƯỢNG KHẨN", "HỎA TỐC",
 * bracketed or followed by a separator) and bracketed tags ("[EXT]"), the
 * subject starts with an optional field name "Độ mật:" and a level that
 * stands as a marking: in brackets or quotes ("[MẬT]", "(Tối mật)",
 * "\"MẬT\""), or followed by ':', '-' (en and em dashes lump to it), '|',
 * '/', '*', '=', '#', '~', or by ',' and an urgency word ("MẬT, KHẨN:"),
 * or ending the subject; or written in capitals before words that are not
 * ("MẬT Kế hoạch phòng thủ"), and for the two-word levels in capitals
 * before anything ("TỐI MẬT KẾ HOẠCH"). A level followed by a word is
 * otherwise prose: "Mật khẩu mới", "Mật ong rừng", "MẬT KHẨU MỚI", "MẬT
 * ONG NGUYÊN CHẤT", "Tối mật và bí mật nhà nước: tập huấn", and the
 * capital single word before a word it makes a compound with ("MẬT ong",
 * "MẬT khẩu", "MẬT độ"). A '.' after
 * the level is not a separator ("Mật. ..." reads as a sentence). Also
 * anywhere in the subject: a
 * level alone inside brackets ("Kế hoạch 15 (MẬT)"), and a two-word level
 * ending the subject after '-', ':' or '|' ("Báo cáo - TỐI MẬT"); the
 * single word does not count there, because "Khoa Gan - Mật" (the
 * hepatobiliary ward) ends that way.
 *
 * STAMP LINE: after trimming whitespace and decoration (* - _ = [ ] ( )
 * { } < > « » quotes ` ~ # . : | + and bullets) at both ends, the line is
 * made of items separated by decoration, ',', ';' or '/': exactly one
 * level, any urgency markings ("MẬT - KHẨN"), and field names followed by
 * ':' or '-' ("ĐỘ MẬT: TỐI MẬT", "Mức độ mật: Mật", "Độ khẩn: <one word>").
 * A quoted reply ("> MẬT") is a stamp: quoting a secret is carrying it.
 * Not stamps: "KHÔNG MẬT" and "Tài liệu không mật" (a statement that a
 * document is NOT secret; "không" is no item), "Độ mật: Thường" (normal),
 * "Mật ong", "MẬT ONG NGUYÊN CHẤT", a bare "ĐỘ MẬT" heading, a line
 * listing several levels ("Mật, Tối mật, Tuyệt mật": training material),
 * and a list item: one bullet and the level alone in small letters ("- Mật",
 * "* Tối mật", the same levels listed one per line; "- MẬT" and "* Mật *"
 * are stamps).
 *
 * FILE NAME: a path the client sent is dropped (up to the last '/' or
 * '\'). The extension (the last word after a '.', five characters at
 * most) is ignored, so "data.mat" (MATLAB) is not a marking. A two-word
 * level anywhere as words is a marking ("TOI_MAT_bao_cao.docx",
 * "Tuyet mat - ke hoach.docx"), except after "độ", which names the
 * degree in prose ("Danh muc BMNN do Toi mat.pdf"). The single "mật"/"MAT" is a marking only
 * in brackets ("[MẬT] Kế hoạch.pdf"), as the whole name ("MAT.pdf"), or
 * first or last and set off by a strong separator (':' or a dash with a
 * space: "MẬT - Kế hoạch.docx") or by capitals next to a word with small
 * letters ("MAT_bao_cao.docx", "Bao_cao_MẬT.pdf"). In a slug ("bao-cao-mat.pdf",
 * "bi-mat-kinh-doanh.docx", "mat-khau.txt", "CCCD_mat_truoc.jpg") the
 * separators are spaces and the word is prose: "báo cáo mật" and "bí mật
 * kinh doanh" are ordinary secrets, not state-secret levels, and a plain
 * "mat" there is as often mặt, mắt or mất.
 *
 * SIO-LABEL: policy/classify_sio.c.
 *
 * TEXT: classify_text reads the first CLASSIFY_STAMP_LINES lines that are
 * not blank (CRLF, LF or CR ends), each cut at CLASSIFY_LINE_MAX bytes,
 * as stamp lines, in a fixed-size state: where an administrative letter
 * carries its stamp (under the number and the national motto). A line
 * "Subject:", "Tiêu đề:" or "Chủ đề:" there (a forwarded message's header
 * block) is also read by the subject rule.
 *
 * OWNERSHIP: arguments are borrowed; classify_text_new returns an owned
 *   object released by classify_text_free.
 * THREADS: any thread; no global state beyond utf8proc's constant tables.
 *   The working buffers (about 25 KiB) are on the caller's stack.
 * ERRORS: none; input that cannot be read is not a marking.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <utf8proc.h>

#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/classify.h"
#include "policy/classify_int.h"

/* A subject or file name is read up to this many bytes: a marking sits at
 * the start, and a file name is at most a few hundred bytes. */
#define CLASSIFY_IN_MAX 1024
/* Code points after normalization (NFKC may expand; see classify_norm). */
#define CLASSIFY_CP_MAX 4096
/* Words kept per piece of text; the rest is cut. */
#define CLASSIFY_TOK_MAX 256

/* The normalization: NFKC (COMPOSE|COMPAT), default ignorables dropped,
 * look-alike punctuation lumped, control characters made spaces. */
static const utf8proc_option_t classify_norm_opts =
    UTF8PROC_COMPOSE | UTF8PROC_COMPAT | UTF8PROC_IGNORE | UTF8PROC_LUMP | UTF8PROC_STRIPCC;

enum classify_word {
	CW_OTHER, CW_MAT, CW_TOI, CW_TUYET, CW_TOIMAT, CW_TUYETMAT, CW_DO, CW_MUC,
	CW_KHAN, CW_THUONG, CW_HOA, CW_TOC, CW_HEN, CW_GIO, CW_REPLY, CW_TRA, CW_LOI,
	CW_CHUYEN, CW_TIEP, CW_COMPOUND,
};

/* Case-folded NFC spelling, spelling without diacritics (NULL: none), word. */
static const struct {
	const char *marked;
	const char *bare;
	enum classify_word word;
} classify_words[] = {
	{ "mật", "mat", CW_MAT },
	{ "tối", "toi", CW_TOI },
	{ "tuyệt", "tuyet", CW_TUYET },
	{ "tốimật", "toimat", CW_TOIMAT },
	{ "tuyệtmật", "tuyetmat", CW_TUYETMAT },
	{ "độ", "do", CW_DO },
	{ "mức", "muc", CW_MUC },
	{ "khẩn", "khan", CW_KHAN },
	{ "thượng", "thuong", CW_THUONG },
	{ "hỏa", "hoa", CW_HOA },
	{ "hoả", NULL, CW_HOA },      /* the older tone placement */
	{ "tốc", "toc", CW_TOC },
	{ "hẹn", "hen", CW_HEN },
	{ "giờ", "gio", CW_GIO },
	{ "re", NULL, CW_REPLY },
	{ "fw", NULL, CW_REPLY },
	{ "fwd", NULL, CW_REPLY },
	{ "tl", NULL, CW_REPLY },      /* trả lời */
	{ "ct", NULL, CW_REPLY },      /* chuyển tiếp */
	{ "aw", NULL, CW_REPLY },
	{ "wg", NULL, CW_REPLY },
	{ "sv", NULL, CW_REPLY },
	{ "tr", NULL, CW_REPLY },
	{ "trả", "tra", CW_TRA },
	{ "lời", "loi", CW_LOI },
	{ "chuyển", "chuyen", CW_CHUYEN },
	{ "tiếp", "tiep", CW_TIEP },
	/*
	 * Words that make a common compound after "mật": honey, password,
	 * cipher, bile, molasses, code language, secret talk, spy. ("độ",
	 * density, is CW_DO.) Words that also start a title ("thiết kế",
	 * "danh sách", "lệnh", "vụ việc", "báo cáo") are left out: after a
	 * capital MẬT they are more likely a marked document's title.
	 */
	{ "ong", NULL, CW_COMPOUND },
	{ "khẩu", "khau", CW_COMPOUND },
	{ "mã", NULL, CW_COMPOUND },
	{ "gấu", "gau", CW_COMPOUND },
	{ "mía", "mia", CW_COMPOUND },
	{ "ngữ", NULL, CW_COMPOUND },
	{ "đàm", NULL, CW_COMPOUND },
	{ "thám", NULL, CW_COMPOUND },
};

struct classify_tok {
	uint16_t start, end;   /* code point range in classify_norm.cp */
	uint8_t word;          /* enum classify_word */
	bool ascii;            /* typed without any diacritics */
	bool upper;            /* has capitals and no small letters */
	bool lower;            /* has small letters */
};

struct classify_norm {
	int32_t cp[CLASSIFY_CP_MAX];
	size_t ncp;
	struct classify_tok tok[CLASSIFY_TOK_MAX];
	size_t ntok;
	bool cut;              /* the input went on past what was read */
};

/* ------------------------------------------------------------ names */

const char *classify_level_name(enum classify_level level)
{
	switch (level) {
	case CLASSIFY_NONE: return "none";
	case CLASSIFY_MAT: return "mat";
	case CLASSIFY_TOI_MAT: return "toi-mat";
	case CLASSIFY_TUYET_MAT: return "tuyet-mat";
	}
	return "none";
}

const char *classify_level_label(enum classify_level level)
{
	switch (level) {
	case CLASSIFY_NONE: return "";
	case CLASSIFY_MAT: return "Mật";
	case CLASSIFY_TOI_MAT: return "Tối mật";
	case CLASSIFY_TUYET_MAT: return "Tuyệt mật";
	}
	return "";
}

bool classify_level_parse(const char *word, enum classify_level *out)
{
	static const enum classify_level all[] = { CLASSIFY_NONE, CLASSIFY_MAT,
		CLASSIFY_TOI_MAT, CLASSIFY_TUYET_MAT };

	if (word == NULL)
		return false;
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		if (strcmp(word, classify_level_name(all[i])) == 0) {
			*out = all[i];
			return true;
		}
	}
	return false;
}

const char *classify_where_name(enum classify_where where)
{
	switch (where) {
	case CLASSIFY_IN_SIO_LABEL: return "sio-label";
	case CLASSIFY_IN_SUBJECT: return "subject";
	case CLASSIFY_IN_TEXT: return "text";
	case CLASSIFY_IN_FILENAME: return "filename";
	case CLASSIFY_IN_DOCUMENT: return "document";
	}
	return "text";
}

enum classify_level classify__max(enum classify_level a, enum classify_level b)
{
	return a > b ? a : b;
}

/* ---------------------------------------------------- normalization */

/* The length of s[0..len) cut to at most max bytes at a character start. */
size_t classify__cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	len = max;
	while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
		len--;
	return len;
}

/* Copies s into out (3 * len bytes) with each invalid UTF-8 byte made
 * U+FFFD, which utf8proc would otherwise refuse as a whole. */
static size_t classify_sanitize(const char *s, size_t len, uint8_t *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len;) {
		utf8proc_int32_t cp;
		utf8proc_ssize_t r = utf8proc_iterate((const uint8_t *)s + i,
		    (utf8proc_ssize_t)(len - i), &cp);

		if (r <= 0) {
			memcpy(out + o, "\xEF\xBF\xBD", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(out + o, s + i, (size_t)r);
		o += (size_t)r;
		i += (size_t)r;
	}
	return o;
}

static bool classify_is_word_cp(int32_t cp)
{
	utf8proc_category_t c = utf8proc_category(cp);

	return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_NO;
}

/* The word a token is, from its case-folded NFC spelling. */
static enum classify_word classify_word_of(const int32_t *cp, size_t n, bool ascii)
{
	uint8_t u8[64];
	utf8proc_int32_t f[32];
	char folded[140];
	size_t ul = 0, fl = 0;
	utf8proc_ssize_t r;

	/* No listed word is longer than eight characters. */
	if (n == 0 || n > 12)
		return CW_OTHER;
	for (size_t i = 0; i < n; i++)
		ul += (size_t)utf8proc_encode_char(cp[i], u8 + ul);
	r = utf8proc_decompose(u8, (utf8proc_ssize_t)ul, f, 32,
	    UTF8PROC_COMPOSE | UTF8PROC_CASEFOLD);
	if (r < 0 || r > 32)
		return CW_OTHER;
	r = utf8proc_normalize_utf32(f, r, UTF8PROC_COMPOSE);
	if (r < 0)
		return CW_OTHER;
	for (utf8proc_ssize_t i = 0; i < r; i++)
		fl += (size_t)utf8proc_encode_char(f[i], (uint8_t *)folded + fl);
	folded[fl] = '\0';
	for (size_t i = 0; i < sizeof classify_words / sizeof classify_words[0]; i++) {
		if (strcmp(folded, classify_words[i].marked) == 0)
			return classify_words[i].word;
		if (ascii && classify_words[i].bare != NULL &&
		    strcmp(folded, classify_words[i].bare) == 0)
			return classify_words[i].word;
	}
	return CW_OTHER;
}

static void classify_tokenize(struct classify_norm *n)
{
	size_t i = 0;

	n->ntok = 0;
	while (i < n->ncp) {
		struct classify_tok *t;
		bool lower = false, upper = false, ascii = true;

		if (!classify_is_word_cp(n->cp[i])) {
			i++;
			continue;
		}
		if (n->ntok == CLASSIFY_TOK_MAX) {
			/* What follows is not read: cut the text here. */
			n->ncp = i;
			n->cut = true;
			break;
		}
		t = &n->tok[n->ntok++];
		t->start = (uint16_t)i;
		for (; i < n->ncp && classify_is_word_cp(n->cp[i]); i++) {
			utf8proc_category_t c = utf8proc_category(n->cp[i]);

			ascii = ascii && n->cp[i] < 0x80;
			lower = lower || c == UTF8PROC_CATEGORY_LL;
			upper = upper || c == UTF8PROC_CATEGORY_LU;
		}
		t->end = (uint16_t)i;
		t->ascii = ascii;
		t->upper = upper && !lower;
		t->lower = lower;
		t->word = (uint8_t)classify_word_of(n->cp + t->start, i - t->start, ascii);
	}
}

/*
 * s[0..len), cut to max bytes, normalized and split into words. NFKC can
 * make more code points than bytes (U+FDFA is 18): when the result does
 * not fit, less of the input is read and the text is marked cut.
 */
static void classify_norm(struct classify_norm *n, const char *s, size_t len, size_t max)
{
	uint8_t u8[3 * CLASSIFY_IN_MAX + 3];
	size_t ulen;
	utf8proc_ssize_t r = 0;

	if (max > CLASSIFY_IN_MAX)
		max = CLASSIFY_IN_MAX;
	n->cut = len > max;
	len = classify__cut(s, len, max);
	ulen = classify_sanitize(s, len, u8);
	for (int tries = 0; tries < 8; tries++) {
		r = utf8proc_decompose(u8, (utf8proc_ssize_t)ulen, n->cp,
		    CLASSIFY_CP_MAX, classify_norm_opts);
		if (r <= CLASSIFY_CP_MAX)
			break;
		ulen = classify__cut((const char *)u8, ulen, ulen / 2);
		n->cut = true;
	}
	if (r < 0 || r > CLASSIFY_CP_MAX)
		r = 0;
	if (r > 0)
		r = utf8proc_normalize_utf32(n->cp, r, classify_norm_opts);
	n->ncp = r > 0 ? (size_t)r : 0;
	classify_tokenize(n);
}

/* ------------------------------------------------------- separators */

static bool classify_is_space(int32_t cp)
{
	utf8proc_category_t c;

	if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v')
		return true;
	c = utf8proc_category(cp);
	return c == UTF8PROC_CATEGORY_ZS || c == UTF8PROC_CATEGORY_ZL || c == UTF8PROC_CATEGORY_ZP;
}

static bool classify_in(int32_t cp, const char *set)
{
	return cp > 0 && cp < 0x80 && strchr(set, (int)cp) != NULL;
}

/* What a stamp is decorated with: ASCII rules and brackets, guillemets,
 * bullets, box drawing and geometric shapes (a stamp typed in a box). */
static bool classify_is_deco(int32_t cp)
{
	return classify_is_space(cp) || classify_in(cp, "*-_=[](){}<>\"'`~#.:|+") ||
	    cp == 0xAB || cp == 0xBB || cp == 0x2022 || (cp >= 0x2500 && cp <= 0x25FF) ||
	    cp == 0x3010 || cp == 0x3011;
}

static bool classify_is_joiner(int32_t cp)
{
	return classify_is_space(cp) || cp == '-' || cp == '_';
}

static int32_t classify_closer(int32_t open)
{
	switch (open) {
	case '[': return ']';
	case '(': return ')';
	case '{': return '}';
	case '<': return '>';
	case 0xAB: return 0xBB;
	case 0x3010: return 0x3011;
	case '"': return '"';
	case '\'': return '\'';
	default: return -1;
	}
}

/* The separator run before token i and after token i. */
static size_t classify_run_a(const struct classify_norm *n, size_t i)
{
	return i == 0 ? 0 : n->tok[i - 1].end;
}

static size_t classify_run_b(const struct classify_norm *n, size_t i)
{
	return i < n->ntok ? n->tok[i].start : n->ncp;
}

static bool classify_run_all(const struct classify_norm *n, size_t a, size_t b,
    bool (*pred)(int32_t))
{
	for (size_t k = a; k < b; k++)
		if (!pred(n->cp[k]))
			return false;
	return true;
}

static bool classify_run_has(const struct classify_norm *n, size_t a, size_t b, const char *set)
{
	for (size_t k = a; k < b; k++)
		if (classify_in(n->cp[k], set))
			return true;
	return false;
}

static bool classify_run_has_space(const struct classify_norm *n, size_t a, size_t b)
{
	for (size_t k = a; k < b; k++)
		if (classify_is_space(n->cp[k]))
			return true;
	return false;
}

/* The first or last character of a run that is not a space; -1 if none. */
static int32_t classify_run_first(const struct classify_norm *n, size_t a, size_t b)
{
	for (size_t k = a; k < b; k++)
		if (!classify_is_space(n->cp[k]))
			return n->cp[k];
	return -1;
}

static int32_t classify_run_last(const struct classify_norm *n, size_t a, size_t b)
{
	for (size_t k = b; k > a; k--)
		if (!classify_is_space(n->cp[k - 1]))
			return n->cp[k - 1];
	return -1;
}

/* Tokens i and i + 1 exist and are joined as the words of one phrase. */
static bool classify_joined(const struct classify_norm *n, size_t i)
{
	return i + 1 < n->ntok &&
	    classify_run_all(n, n->tok[i].end, n->tok[i + 1].start, classify_is_joiner);
}

static enum classify_word classify_w(const struct classify_norm *n, size_t i)
{
	return i < n->ntok ? (enum classify_word)n->tok[i].word : CW_OTHER;
}

/* --------------------------------------------------------- phrases */

/*
 * The level whose words start at token i (*len tokens), or NONE. strict:
 * the single word without diacritics must be in capitals ("MAT").
 */
static enum classify_level classify_level_at(const struct classify_norm *n, size_t i,
    size_t *len, bool strict)
{
	enum classify_word w = classify_w(n, i);

	*len = 1;
	if (w == CW_TOIMAT)
		return CLASSIFY_TOI_MAT;
	if (w == CW_TUYETMAT)
		return CLASSIFY_TUYET_MAT;
	if ((w == CW_TOI || w == CW_TUYET) && classify_w(n, i + 1) == CW_MAT &&
	    classify_joined(n, i)) {
		*len = 2;
		return w == CW_TOI ? CLASSIFY_TOI_MAT : CLASSIFY_TUYET_MAT;
	}
	if (w == CW_MAT && (!strict || !n->tok[i].ascii || n->tok[i].upper))
		return CLASSIFY_MAT;
	return CLASSIFY_NONE;
}

/* An urgency marking at token i (Decree 30/2020: Khẩn, Thượng khẩn, Hỏa
 * tốc, Hỏa tốc hẹn giờ): its length in tokens, or 0. */
static size_t classify_urgency_at(const struct classify_norm *n, size_t i)
{
	enum classify_word w = classify_w(n, i);

	if (w == CW_KHAN)
		return 1;
	if (w == CW_THUONG && classify_w(n, i + 1) == CW_KHAN && classify_joined(n, i))
		return 2;
	if (w == CW_HOA && classify_w(n, i + 1) == CW_TOC && classify_joined(n, i)) {
		if (classify_w(n, i + 2) == CW_HEN && classify_w(n, i + 3) == CW_GIO &&
		    classify_joined(n, i + 1) && classify_joined(n, i + 2))
			return 4;
		return 2;
	}
	return 0;
}

/*
 * A field name at token i followed by ':' or '-': "[mức] độ mật" (what)
 * = CW_MAT, or "[mức] độ khẩn" = CW_KHAN. Its length in tokens, or 0.
 */
static size_t classify_field_at(const struct classify_norm *n, size_t i, enum classify_word what)
{
	size_t j = i;

	if (classify_w(n, j) == CW_MUC && classify_joined(n, j))
		j++;
	if (classify_w(n, j) != CW_DO || classify_w(n, j + 1) != what || !classify_joined(n, j))
		return 0;
	j += 2;
	if (j >= n->ntok || !classify_run_has(n, n->tok[j - 1].end, n->tok[j].start, ":-"))
		return 0;
	return j - i;
}

/* ------------------------------------------------------- stamp line */

/* The level's tokens [i, i + len) are in capitals. */
static bool classify_is_upper(const struct classify_norm *n, size_t i, size_t len)
{
	for (size_t k = i; k < i + len; k++)
		if (!n->tok[k].upper)
			return false;
	return true;
}

/* A list bullet: what starts an item of a list typed in plain text. */
static bool classify_is_bullet(int32_t cp)
{
	return cp == '-' || cp == '*' || cp == '+' || cp == 0x2022 || cp == 0x25AA ||
	    cp == 0x25CF || cp == 0x25E6;
}

/*
 * The line is an item of a list, not a stamp: one bullet, then the level
 * alone in small letters, nothing after it ("- Mật", "* Tối mật": the
 * levels listed in training material, honey on a shopping list). A stamp
 * is typed in capitals or decorated on both sides ("- MẬT", "* Mật *").
 */
static bool classify_is_list_item(const struct classify_norm *n, size_t level_len)
{
	int32_t first = classify_run_first(n, 0, n->tok[0].start);

	return level_len == n->ntok && first != -1 && classify_is_bullet(first) &&
	    classify_run_last(n, 0, n->tok[0].start) == first &&
	    classify_run_all(n, n->tok[n->ntok - 1].end, n->ncp, classify_is_space) &&
	    !classify_is_upper(n, 0, level_len);
}

static bool classify_is_item_sep(int32_t cp)
{
	return classify_is_deco(cp) || cp == ',' || cp == ';' || cp == '/';
}

/* The stamp rule of the header comment over a normalized line. */
static enum classify_level classify_stamp(const struct classify_norm *n, bool strict)
{
	enum classify_level level = CLASSIFY_NONE;
	int nlevels = 0;
	size_t i = 0, k;

	if (n->ntok == 0)
		return CLASSIFY_NONE;
	if (!classify_run_all(n, 0, n->tok[0].start, classify_is_deco) ||
	    !classify_run_all(n, n->tok[n->ntok - 1].end, n->ncp, classify_is_deco))
		return CLASSIFY_NONE;
	while (i < n->ntok) {
		enum classify_level lv;

		if (i > 0 && !classify_run_all(n, n->tok[i - 1].end, n->tok[i].start,
		    classify_is_item_sep))
			return CLASSIFY_NONE;
		if ((k = classify_field_at(n, i, CW_MAT)) > 0) {
			i += k;
			continue;
		}
		if ((k = classify_field_at(n, i, CW_KHAN)) > 0) {
			/* "Độ khẩn: Hỏa tốc", "Độ khẩn: Thường": the field and
			 * its value, an urgency marking or one word. */
			i += k;
			k = classify_urgency_at(n, i);
			i += k > 0 ? k : 1;
			continue;
		}
		if ((lv = classify_level_at(n, i, &k, strict)) != CLASSIFY_NONE) {
			if (i == 0 && classify_is_list_item(n, k))
				return CLASSIFY_NONE;
			level = lv;
			nlevels++;
			i += k;
			continue;
		}
		if ((k = classify_urgency_at(n, i)) > 0) {
			i += k;
			continue;
		}
		return CLASSIFY_NONE;
	}
	return nlevels == 1 ? level : CLASSIFY_NONE;
}

enum classify_level classify__stamp_str(const char *s, size_t len, bool strict)
{
	struct classify_norm n;

	classify_norm(&n, s, len, CLASSIFY_LINE_MAX);
	return classify_stamp(&n, strict);
}

enum classify_level classify_stamp_line(const char *utf8, size_t len)
{
	if (utf8 == NULL)
		return CLASSIFY_NONE;
	return classify__stamp_str(utf8, len, true);
}

/* ---------------------------------------------------------- subject */

/* The opening bracket that ends the run before token i, or -1; quotes
 * count too where quoting is a way to mark (quotes: true). */
static int32_t classify_opener_before(const struct classify_norm *n, size_t i, bool quotes)
{
	int32_t c = classify_run_last(n, classify_run_a(n, i), classify_run_b(n, i));

	if (c == '"' || c == '\'')
		return quotes ? c : -1;
	return classify_closer(c) != -1 ? c : -1;
}

/* Token i is the last and nothing but decoration follows it. */
static bool classify_ends(const struct classify_norm *n, size_t i)
{
	return !n->cut && i + 1 == n->ntok &&
	    classify_run_all(n, n->tok[i].end, n->ncp, classify_is_deco);
}

/*
 * A marking at token i of a subject: "[độ mật:] LEVEL" standing as one
 * (the header comment), open being the bracket just before it or -1.
 */
static enum classify_level classify_subject_marking(const struct classify_norm *n, size_t i,
    int32_t open)
{
	size_t j = i + classify_field_at(n, i, CW_MAT), k;
	enum classify_level lv = classify_level_at(n, j, &k, true);
	size_t last = j + k - 1;
	int32_t c;

	if (lv == CLASSIFY_NONE)
		return CLASSIFY_NONE;
	if (classify_ends(n, last))
		return lv;
	c = classify_run_first(n, n->tok[last].end, classify_run_b(n, last + 1));
	if (open != -1 && c == classify_closer(open))
		return lv;
	if (classify_in(c, ":-|/*=#~"))
		return lv;
	if (c == ',' && classify_urgency_at(n, last + 1) > 0)
		return lv;
	/* "TỐI MẬT KẾ HOẠCH ...", "MẬT Kế hoạch ...": a level in capitals
	 * before words that are not is typed as a marking; "MẬT ONG" and
	 * "MẬT KHẨU" are all capitals, and the single word needs the contrast,
	 * unless the word makes a compound with it ("MẬT ong", "MẬT khẩu"). */
	if (c == -1 && last + 1 < n->ntok && classify_is_upper(n, j, k) &&
	    (lv > CLASSIFY_MAT || (n->tok[last + 1].lower &&
	    classify_w(n, last + 1) != CW_COMPOUND && classify_w(n, last + 1) != CW_DO)))
		return lv;
	return CLASSIFY_NONE;
}

/* A reply or forward prefix at token i ("Re:", "RE[2]:", "Trả lời:"):
 * its length in tokens, or 0. */
static size_t classify_reply_at(const struct classify_norm *n, size_t i)
{
	enum classify_word w = classify_w(n, i);
	size_t len;

	if (w == CW_REPLY) {
		len = 1;
		/* "RE[2]:", as some clients count replies. */
		if (i + 1 < n->ntok && n->tok[i + 1].ascii &&
		    classify_run_first(n, n->tok[i].end, n->tok[i + 1].start) == '[' &&
		    classify_run_first(n, n->tok[i + 1].end, classify_run_b(n, i + 2)) == ']')
			len = 2;
	} else if ((w == CW_TRA && classify_w(n, i + 1) == CW_LOI) ||
	    (w == CW_CHUYEN && classify_w(n, i + 1) == CW_TIEP)) {
		if (!classify_joined(n, i))
			return 0;
		len = 2;
	} else {
		return 0;
	}
	if (!classify_run_has(n, n->tok[i + len - 1].end, classify_run_b(n, i + len), ":"))
		return 0;
	return len;
}

/* An urgency marking before the level ("KHẨN - ", "[HỎA TỐC]"), or a
 * bracketed tag ("[EXT]", at most eight words): its length, or 0. */
static size_t classify_prefix_at(const struct classify_norm *n, size_t i, int32_t open)
{
	size_t k = classify_urgency_at(n, i);

	if (k > 0) {
		size_t last = i + k - 1;
		int32_t c = classify_run_first(n, n->tok[last].end, classify_run_b(n, last + 1));

		if ((open != -1 && c == classify_closer(open)) || classify_in(c, ":-|/,*") ||
		    (c == -1 && last + 1 < n->ntok))
			return k;
	}
	if (open == -1)
		return 0;
	for (k = i; k < n->ntok && k < i + 8; k++)
		if (classify_run_first(n, n->tok[k].end, classify_run_b(n, k + 1)) ==
		    classify_closer(open))
			return k - i + 1;
	return 0;
}

/* A level alone in brackets anywhere, or a two-word level ending the
 * subject after '-', ':' or '|'. */
static enum classify_level classify_subject_anywhere(const struct classify_norm *n)
{
	enum classify_level best = CLASSIFY_NONE;
	size_t k;

	for (size_t i = 0; i < n->ntok; i++) {
		int32_t open = classify_opener_before(n, i, false);
		size_t j = i + classify_field_at(n, i, CW_MAT);
		enum classify_level lv;

		if (open == -1)
			continue;
		lv = classify_level_at(n, j, &k, true);
		if (lv != CLASSIFY_NONE && classify_run_first(n, n->tok[j + k - 1].end,
		    classify_run_b(n, j + k)) == classify_closer(open))
			best = classify__max(best, lv);
	}
	for (size_t s = n->ntok > 2 ? n->ntok - 2 : 1; s < n->ntok; s++) {
		enum classify_level lv = classify_level_at(n, s, &k, true);

		if (lv > CLASSIFY_MAT && classify_ends(n, s + k - 1) &&
		    classify_run_has(n, n->tok[s - 1].end, n->tok[s].start, "-:|"))
			best = classify__max(best, lv);
	}
	return best;
}

enum classify_level classify_subject(const char *utf8, size_t len)
{
	struct classify_norm n;
	size_t i = 0;

	if (utf8 == NULL)
		return CLASSIFY_NONE;
	classify_norm(&n, utf8, len, CLASSIFY_IN_MAX);
	/* Prefixes one after the other, a bounded number of times. */
	for (int guard = 0; guard < 16 && i < n.ntok; guard++) {
		int32_t open = classify_opener_before(&n, i, true);
		enum classify_level lv = classify_subject_marking(&n, i, open);
		size_t k;

		if (lv != CLASSIFY_NONE)
			return classify__max(lv, classify_subject_anywhere(&n));
		if ((k = classify_reply_at(&n, i)) == 0 &&
		    (k = classify_prefix_at(&n, i, open)) == 0)
			break;
		i += k;
	}
	return classify_subject_anywhere(&n);
}

/* -------------------------------------------------------- file name */

/* ':' or a dash with a space: a marking set off from the title. */
static bool classify_run_strong(const struct classify_norm *n, size_t a, size_t b)
{
	return classify_run_has(n, a, b, ":") ||
	    (classify_run_has(n, a, b, "-") && classify_run_has_space(n, a, b));
}

enum classify_level classify_filename(const char *utf8, size_t len)
{
	struct classify_norm n;
	enum classify_level best = CLASSIFY_NONE;
	size_t m, k;

	if (utf8 == NULL)
		return CLASSIFY_NONE;
	/* Some clients send the sender's path ("C:\fakepath\MẬT.pdf"). */
	for (size_t i = len; i > 0; i--) {
		if (utf8[i - 1] == '/' || utf8[i - 1] == '\\') {
			utf8 += i;
			len -= i;
			break;
		}
	}
	classify_norm(&n, utf8, len, CLASSIFY_IN_MAX);
	m = n.ntok;
	/* The extension names a format, not the content ("data.mat"). */
	if (m >= 2 && !n.cut && n.tok[m - 1].end == n.ncp &&
	    n.tok[m - 1].end - n.tok[m - 1].start <= 5 &&
	    n.tok[m - 2].end + 1 == n.tok[m - 1].start && n.cp[n.tok[m - 2].end] == '.')
		m--;
	for (size_t i = 0; i < m; i++) {
		enum classify_level lv = classify_level_at(&n, i, &k, true);
		size_t last = i + k - 1;
		size_t after_b = classify_run_b(&n, last + 1);
		int32_t open = classify_opener_before(&n, i, false);

		if (lv == CLASSIFY_NONE || last >= m)
			continue;
		/* "...bi mat nha nuoc do toi mat.pdf": "độ tối mật" names the
		 * degree in prose (the catalogue of secrets of that degree). */
		if (i > 0 && classify_w(&n, i - 1) == CW_DO && classify_joined(&n, i - 1))
			continue;
		if (lv > CLASSIFY_MAT ||
		    (open != -1 && classify_run_first(&n, n.tok[last].end, after_b) ==
		    classify_closer(open)) ||
		    m == 1 ||
		    (i == 0 && classify_run_strong(&n, n.tok[last].end, after_b)) ||
		    (last == m - 1 && i > 0 &&
		    classify_run_strong(&n, n.tok[i - 1].end, n.tok[i].start)) ||
		    (i == 0 && last + 1 < m && classify_is_upper(&n, i, k) &&
		    n.tok[last + 1].lower) ||
		    (last == m - 1 && i > 0 && classify_is_upper(&n, i, k) && n.tok[i - 1].lower))
			best = classify__max(best, lv);
	}
	return best;
}

/* ------------------------------------------------------------- text */

struct classify_text {
	char line[CLASSIFY_LINE_MAX];
	size_t len;                 /* bytes kept of the current line */
	bool blank;                 /* the current line is white space so far */
	bool after_cr;              /* a CR ended the last line: skip one LF */
	unsigned nlines;            /* non-blank lines read */
	enum classify_level level;  /* the highest so far */
};

struct classify_text *classify_text_new(void)
{
	struct classify_text *ct = xcalloc(1, sizeof *ct);

	ct->blank = true;
	return ct;
}

void classify_text_free(struct classify_text *ct)
{
	free(ct);
}

bool classify_text_is_done(const struct classify_text *ct)
{
	return ct->nlines >= CLASSIFY_STAMP_LINES || ct->level == CLASSIFY_TUYET_MAT;
}

/*
 * A forwarded message's header block in the text ("Subject: [MẬT] ...",
 * as mail clients write it above the forwarded body, in English or in
 * Vietnamese): the subject it names is read by the subject rule, since
 * forwarding a classified message carries its marking along.
 */
static enum classify_level classify_text_subject(const char *line, size_t len)
{
	static const char *const names[] = { "Subject:", "Tiêu đề:", "Chủ đề:", "TIÊU ĐỀ:",
		"CHỦ ĐỀ:" };
	size_t i = 0;

	while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '>'))
		i++;
	for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
		size_t nl = strlen(names[k]);

		if (len - i >= nl && strncasecmp(line + i, names[k], nl) == 0)
			return classify_subject(line + i + nl, len - i - nl);
	}
	return CLASSIFY_NONE;
}

static enum classify_level classify_text_line(const char *line, size_t len)
{
	return classify__max(classify_stamp_line(line, len), classify_text_subject(line, len));
}

static void classify_text_end_line(struct classify_text *ct)
{
	if (!ct->blank) {
		ct->nlines++;
		if (classify__may_mark(ct->line, ct->len))
			ct->level = classify__max(ct->level, classify_text_line(ct->line, ct->len));
	}
	ct->len = 0;
	ct->blank = true;
}

void classify_text_feed(struct classify_text *ct, const char *utf8, size_t len)
{
	for (size_t i = 0; i < len && !classify_text_is_done(ct); i++) {
		char c = utf8[i];

		if (ct->after_cr) {
			ct->after_cr = false;
			if (c == '\n')
				continue;
		}
		if (c == '\r' || c == '\n') {
			classify_text_end_line(ct);
			ct->after_cr = c == '\r';
			continue;
		}
		if (c != ' ' && c != '\t' && c != '\f' && c != '\v')
			ct->blank = false;
		/* The rest of a long line is dropped: a stamp is short. */
		if (ct->len < sizeof ct->line)
			ct->line[ct->len++] = c;
	}
}

enum classify_level classify_text_level(struct classify_text *ct)
{
	if (classify_text_is_done(ct) || ct->blank)
		return ct->level;
	return classify__max(ct->level, classify_text_line(ct->line, ct->len));
}
