/*
 * dlp: data-loss-prevention rules over decoded text and file names
 * (policy/dlp.h says what and why; this file says how).
 *
 * Entry points: dlp_pattern_check (a tenant's pattern, when it is set),
 * dlp_ruleset_new/ref/free (compile once, share by reference),
 * dlp_scan_new/text/text_end/name/result/free (one message),
 * dlp_action_* and dlp_builtin_* (the words); dlp__nfc_is_quick for the
 * tests. dlp_tenant.c reads a tenant's rules and caches compiled sets.
 *
 * How a scan works: text is copied into a window of DLP_WINDOW bytes.
 * When the window is full, every rule searches it from where its last
 * search stopped, with PCRE2_PARTIAL_HARD: a complete match is counted
 * (after the builtin's validator, if any) and the search goes on after
 * it; a partial match (the window ended inside it, or inside a
 * look-ahead that needed the next byte) marks where that rule must
 * resume once more text is there. The window then keeps only the text
 * from the earliest resume point (at most DLP_MATCH_MAX bytes back, at
 * a character boundary) plus DLP_CONTEXT bytes before it for
 * look-behind, and PCRE2_NOTBOL once the start of the text is gone. At
 * the end of a text the window is searched without partial matching.
 * Empty matches are excluded (PCRE2_NOTEMPTY and dlp_pattern_check), so
 * every search advances.
 *
 * Before the window, text is brought to Unicode NFC (utf8proc), as the
 * patterns are when compiled, so that "mật" typed with combining marks
 * (decomposed, as some systems and legacy converters write Vietnamese)
 * matches a pattern written precomposed, and the reverse. Text waits in
 * a slice of DLP_NFC_SLICE bytes and is normalized up to the last ASCII
 * byte in it (nothing composes across an ASCII character), or, in a
 * slice without one, up to its last character of combining class 0; a
 * slice that is not valid UTF-8 goes on as it is.
 *
 * Invalid UTF-8 never stops a search: patterns are compiled with
 * PCRE2_MATCH_INVALID_UTF (invalid sequences match nothing), and a
 * window is searched only up to its last complete character.
 *
 * OWNERSHIP: see dlp.h. THREADS: see dlp.h; pcre2 compiled code and the
 *   match context are read-only during matching (pcre2api(3)), so one
 *   rule set serves every thread; each scan owns its match data.
 * ERRORS: dlp_status codes; out of memory aborts (xmalloc).
 */
#include "config.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/dlp.h"

#define DLP_LOOKBEHIND_MAX 64   /* characters; DLP_CONTEXT holds 64 x 4 bytes */
#define DLP_NFC_SLICE 4096      /* bytes of text normalized at once */

/* PCRE2's allocations out of memory: fatal, as xmalloc's are (STYLE.md 5). */
static void dlp_nomem(void)
{
	fputs("govrelay: out of memory in PCRE2\n", stderr);
	abort();
}

/* ------------------------------------------------------------- words */

static const char *const dlp_action_names[] = { "none", "tag", "quarantine", "reject" };
static const char *const dlp_builtin_names[] = { "none", "cccd", "card" };

const char *dlp_action_name(enum dlp_action action)
{
	if ((unsigned)action >= sizeof dlp_action_names / sizeof dlp_action_names[0])
		return "none";
	return dlp_action_names[action];
}

bool dlp_action_parse(const char *word, enum dlp_action *out)
{
	for (unsigned i = DLP_ACTION_TAG; word != NULL && i <= DLP_ACTION_REJECT; i++) {
		if (str_ieq(word, dlp_action_names[i])) {
			*out = (enum dlp_action)i;
			return true;
		}
	}
	return false;
}

const char *dlp_builtin_name(enum dlp_builtin builtin)
{
	if ((unsigned)builtin >= sizeof dlp_builtin_names / sizeof dlp_builtin_names[0])
		return "none";
	return dlp_builtin_names[builtin];
}

bool dlp_builtin_parse(const char *word, enum dlp_builtin *out)
{
	for (unsigned i = DLP_BUILTIN_CCCD; word != NULL && i <= DLP_BUILTIN_CARD; i++) {
		if (str_ieq(word, dlp_builtin_names[i])) {
			*out = (enum dlp_builtin)i;
			return true;
		}
	}
	return false;
}

bool dlp_name_is_valid(const char *name)
{
	size_t len;

	if (name == NULL || (len = strlen(name)) == 0 || len > DLP_NAME_MAX)
		return false;
	/* A label for logs and audit records: printable ASCII, no space. */
	for (size_t i = 0; i < len; i++)
		if (name[i] <= ' ' || name[i] >= 0x7f)
			return false;
	return true;
}

/* ---------------------------------------------------------- builtins */

/*
 * The province codes of Annex I ("Danh mục mã tỉnh, thành phố trực
 * thuộc trung ương nơi công dân đăng ký khai sinh") of Circular
 * 07/2016/TT-BCA of the Ministry of Public Security, 01/02/2016: 63
 * codes from 001 (Hà Nội) to 096 (Cà Mau). The gaps (003, 005, ...) are
 * no province. After the code, the century/sex digit (0-9) and the
 * eight remaining digits. \d in the look-arounds (UCP: any script's
 * digits) keeps the number from being a piece of a longer run.
 */
static const char dlp_cccd_pattern[] =
	"(?<!\\d)(?:001|002|004|006|008|010|011|012|014|015|017|019|020|022|024|025|026|027"
	"|030|031|033|034|035|036|037|038|040|042|044|045|046|048|049|051|052|054|056|058"
	"|060|062|064|066|067|068|070|072|074|075|077|079|080|082|083|084|086|087|089|091"
	"|092|093|094|095|096)[0-9]{9}(?!\\d)";

/*
 * A card number: 13 to 19 digits, one space or dash allowed between
 * digits (the groups of 4-4-4-4, 4-6-5 and the like), no digit right
 * before or after. The Luhn check is dlp_card_valid's.
 */
static const char dlp_card_pattern[] = "(?<!\\d)[0-9](?:[ -]?[0-9]){12,18}(?!\\d)";

/* The Luhn check (ISO/IEC 7812-1 Annex B) of n digits (values 0-9). */
static bool dlp_luhn(const unsigned char *d, size_t n)
{
	unsigned sum = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned v = d[n - 1 - i];

		if (i % 2 == 1) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
	}
	return sum % 10 == 0;
}

/*
 * A card match: the greedy pattern may have swallowed a group that is
 * not part of the card ("4111 1111 1111 1111 2024"), so every prefix
 * that ends at a group boundary and holds 13-19 digits is tried, the
 * longest first.
 */
static bool dlp_card_valid(const char *s, size_t len)
{
	unsigned char digits[19];
	size_t n = 0;

	for (size_t i = 0; i < len && n < sizeof digits; i++) {
		if (s[i] < '0' || s[i] > '9')
			continue;
		digits[n++] = (unsigned char)(s[i] - '0');
	}
	for (size_t k = n; k >= 13; k--) {
		size_t seen = 0, i;

		for (i = 0; i < len && seen < k; i++)
			if (s[i] >= '0' && s[i] <= '9')
				seen++;
		if (i < len && s[i] >= '0' && s[i] <= '9')
			continue;          /* cut inside a group: not a boundary */
		if (dlp_luhn(digits, k))
			return true;
	}
	return false;
}

/* ------------------------------------------------------------ rules */

struct dlp_rule {
	char *name;
	enum dlp_action action;
	unsigned threshold;
	pcre2_code *code;
	bool (*valid)(const char *s, size_t len);   /* a builtin's check of a match */
};

struct dlp_ruleset {
	atomic_uint refs;       /* dlp_ruleset_ref / dlp_ruleset_free */
	struct dlp_rule *rules;
	size_t n;
	bool jit;
	pcre2_match_context *mctx;
};

/*
 * UTF + UCP: characters, not bytes, and Unicode properties for \d, \w,
 * \b and caseless matching (so (?i) matches "MẬT" and "mật" alike).
 * MATCH_INVALID_UTF: a bad byte in the text matches nothing instead of
 * failing the search. NEVER_BACKSLASH_C: \C could split a character.
 */
#define DLP_COMPILE_OPTIONS (PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF | \
	PCRE2_NEVER_BACKSLASH_C)

static void dlp_why(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void dlp_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why == NULL || whylen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

static pcre2_match_context *dlp_match_context(void)
{
	pcre2_match_context *mctx = pcre2_match_context_create(NULL);

	if (mctx == NULL)
		dlp_nomem();
	pcre2_set_match_limit(mctx, DLP_MATCH_LIMIT);
	pcre2_set_depth_limit(mctx, DLP_DEPTH_LIMIT);
	pcre2_set_heap_limit(mctx, DLP_HEAP_LIMIT);
	return mctx;
}

/* Compiles pattern (checked as dlp_pattern_check says): 0 or DLP_E_PATTERN. */
static int dlp_compile(const char *pattern, pcre2_code **out, char *why, size_t whylen)
{
	pcre2_compile_context *cctx;
	pcre2_match_context *mctx;
	pcre2_match_data *md;
	pcre2_code *code;
	PCRE2_SIZE erroff = 0;
	utf8proc_uint8_t *nfc = NULL;
	uint32_t lookbehind = 0;
	int err = 0, rc;

	*out = NULL;
	if (pattern == NULL || pattern[0] == '\0') {
		dlp_why(why, whylen, "the pattern is empty");
		return DLP_E_PATTERN;
	}
	if (strlen(pattern) > DLP_PATTERN_MAX) {
		dlp_why(why, whylen, "the pattern is longer than %d bytes", DLP_PATTERN_MAX);
		return DLP_E_PATTERN;
	}
	if ((cctx = pcre2_compile_context_create(NULL)) == NULL)
		dlp_nomem();
	pcre2_set_max_pattern_length(cctx, DLP_PATTERN_MAX);
	pcre2_set_parens_nest_limit(cctx, 64);
	/* NFC, as the text will be (see the header); invalid UTF-8 is the compiler's to refuse. */
	if (utf8proc_map((const utf8proc_uint8_t *)pattern, (utf8proc_ssize_t)strlen(pattern),
	    &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE) < 0)
		nfc = NULL;
	code = pcre2_compile(nfc != NULL ? (PCRE2_SPTR)nfc : (PCRE2_SPTR)pattern,
	    PCRE2_ZERO_TERMINATED, DLP_COMPILE_OPTIONS, &err, &erroff, cctx);
	free(nfc);
	pcre2_compile_context_free(cctx);
	if (code == NULL) {
		PCRE2_UCHAR msg[160];

		if (pcre2_get_error_message(err, msg, sizeof msg) < 0)
			str_copy((char *)msg, "unknown error", sizeof msg);
		dlp_why(why, whylen, "the pattern does not compile: %s at offset %zu",
		    (const char *)msg, (size_t)erroff);
		return DLP_E_PATTERN;
	}
	if (pcre2_pattern_info(code, PCRE2_INFO_MAXLOOKBEHIND, &lookbehind) == 0 &&
	    lookbehind > DLP_LOOKBEHIND_MAX) {
		pcre2_code_free(code);
		dlp_why(why, whylen, "the pattern looks behind more than %d characters",
		    DLP_LOOKBEHIND_MAX);
		return DLP_E_PATTERN;
	}
	/* A pattern that matches empty text would count at every position. */
	md = pcre2_match_data_create(1, NULL);
	mctx = dlp_match_context();
	if (md == NULL)
		dlp_nomem();
	rc = pcre2_match(code, (PCRE2_SPTR)"", 0, 0, 0, md, mctx);
	pcre2_match_data_free(md);
	pcre2_match_context_free(mctx);
	if (rc >= 0) {
		pcre2_code_free(code);
		dlp_why(why, whylen, "the pattern matches empty text");
		return DLP_E_PATTERN;
	}
	*out = code;
	return 0;
}

int dlp_pattern_check(const char *pattern, char *why, size_t whylen)
{
	pcre2_code *code;
	int rc = dlp_compile(pattern, &code, why, whylen);

	pcre2_code_free(code);
	return rc;
}

struct dlp_ruleset *dlp_ruleset_ref(const struct dlp_ruleset *crs)
{
	/* Shared read-only; only the count changes, atomically. */
	struct dlp_ruleset *rs = (struct dlp_ruleset *)crs;

	atomic_fetch_add(&rs->refs, 1);
	return rs;
}

void dlp_ruleset_free(struct dlp_ruleset *rs)
{
	if (rs == NULL || atomic_fetch_sub(&rs->refs, 1) > 1)
		return;
	for (size_t i = 0; i < rs->n; i++) {
		free(rs->rules[i].name);
		pcre2_code_free(rs->rules[i].code);
	}
	free(rs->rules);
	pcre2_match_context_free(rs->mctx);
	free(rs);
}

/* Compiles one definition into r: 0 or a DLP_E_* code with why. */
static int dlp_rule_compile(const struct dlp_rule_def *d, struct dlp_rule *r, bool *jit,
    char *why, size_t whylen)
{
	const char *pattern = d->pattern;
	char sub[200];
	int rc;

	if (!dlp_name_is_valid(d->name)) {
		dlp_why(why, whylen, "a rule name must be 1-%d printable ASCII characters "
		    "without spaces", DLP_NAME_MAX);
		return DLP_E_RULE;
	}
	if (d->action == DLP_ACTION_NONE || (unsigned)d->action > DLP_ACTION_REJECT ||
	    d->threshold < 1 || d->threshold > DLP_THRESHOLD_MAX ||
	    (d->pattern == NULL) == (d->builtin == DLP_BUILTIN_NONE)) {
		dlp_why(why, whylen, "rule %s: needs an action, a threshold from 1 to %d and "
		    "either a pattern or a builtin", d->name, DLP_THRESHOLD_MAX);
		return DLP_E_RULE;
	}
	if (d->builtin == DLP_BUILTIN_CCCD)
		pattern = dlp_cccd_pattern;
	else if (d->builtin == DLP_BUILTIN_CARD)
		pattern = dlp_card_pattern;
	else if (d->builtin != DLP_BUILTIN_NONE) {
		dlp_why(why, whylen, "rule %s: unknown builtin", d->name);
		return DLP_E_RULE;
	}
	if ((rc = dlp_compile(pattern, &r->code, sub, sizeof sub)) < 0) {
		dlp_why(why, whylen, "rule %s: %s", d->name, sub);
		return rc;
	}
	/* Both complete and hard-partial searches run: JIT code for each. */
	if (pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE | PCRE2_JIT_PARTIAL_HARD) != 0)
		*jit = false;
	r->name = xstrdup(d->name);
	r->action = d->action;
	r->threshold = d->threshold;
	r->valid = d->builtin == DLP_BUILTIN_CARD ? dlp_card_valid : NULL;
	return 0;
}

int dlp_ruleset_new(const struct dlp_rule_def *defs, size_t n, struct dlp_ruleset **out,
    char *why, size_t whylen)
{
	struct dlp_ruleset *rs;
	int rc;

	*out = NULL;
	if (n > DLP_RULES_MAX) {
		dlp_why(why, whylen, "more than %d rules", DLP_RULES_MAX);
		return DLP_E_RULE;
	}
	rs = xcalloc(1, sizeof *rs);
	atomic_init(&rs->refs, 1);
	rs->rules = xcalloc(n + 1, sizeof *rs->rules);
	rs->mctx = dlp_match_context();
	rs->jit = true;
	for (size_t i = 0; i < n; i++) {
		if ((rc = dlp_rule_compile(&defs[i], &rs->rules[i], &rs->jit, why, whylen)) < 0) {
			pcre2_code_free(rs->rules[i].code);
			dlp_ruleset_free(rs);
			return rc;
		}
		rs->n++;
	}
	if (n == 0)
		rs->jit = false;
	*out = rs;
	return 0;
}

size_t dlp_ruleset_count(const struct dlp_ruleset *rs)
{
	return rs != NULL ? rs->n : 0;
}

bool dlp_ruleset_is_jit(const struct dlp_ruleset *rs)
{
	return rs != NULL && rs->jit;
}

/* ------------------------------------------------------------- scan */

struct dlp_scan {
	const struct dlp_ruleset *rs;
	pcre2_match_data *md;
	char *pend;           /* text waiting for NFC: DLP_NFC_SLICE bytes */
	size_t plen;
	char *buf;            /* the window: DLP_WINDOW bytes */
	size_t len;
	bool notbol;          /* the window no longer starts where the text does */
	size_t *pos;          /* per rule: where its next search starts in buf */
	unsigned *count;
	bool *stopped;        /* crossed a limit: not searched again */
	size_t limit_rule;    /* the first rule stopped (rs->n: none) */
	struct dlp_hit *hits;
};

struct dlp_scan *dlp_scan_new(const struct dlp_ruleset *rs)
{
	struct dlp_scan *s = xcalloc(1, sizeof *s);
	size_t n = rs->n + 1;

	s->rs = rs;
	if ((s->md = pcre2_match_data_create(1, NULL)) == NULL)
		dlp_nomem();
	s->pend = xmalloc(DLP_NFC_SLICE);
	s->buf = xmalloc(DLP_WINDOW);
	s->pos = xcalloc(n, sizeof *s->pos);
	s->count = xcalloc(n, sizeof *s->count);
	s->stopped = xcalloc(n, sizeof *s->stopped);
	s->hits = xcalloc(n, sizeof *s->hits);
	s->limit_rule = rs->n;
	return s;
}

void dlp_scan_free(struct dlp_scan *s)
{
	if (s == NULL)
		return;
	pcre2_match_data_free(s->md);
	free(s->pend);
	free(s->buf);
	free(s->pos);
	free(s->count);
	free(s->stopped);
	free(s->hits);
	free(s);
}

/* The length of buf without a UTF-8 sequence its end cuts short. */
static size_t dlp_complete_len(const char *buf, size_t len)
{
	size_t i = len, need;
	unsigned char c;

	/* Back over at most three continuation bytes to the lead byte. */
	while (i > 0 && len - i < 4 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80)
		i--;
	if (i == 0)
		return len;
	c = (unsigned char)buf[i - 1];
	if (c < 0xC0)
		return len;            /* ASCII or a stray continuation: nothing pending */
	need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
	return len - (i - 1) < need ? i - 1 : len;
}

/*
 * Searches rule i over buf[0..n) from its position, counting complete
 * matches. Without final, a partial match leaves the rule's position at
 * its start (to be searched again with more text). A limit stops the
 * rule for good.
 */
static void dlp_scan_rule(struct dlp_scan *s, size_t i, size_t n, bool final)
{
	const struct dlp_rule *r = &s->rs->rules[i];
	uint32_t opts = PCRE2_NOTEMPTY | (final ? 0 : PCRE2_PARTIAL_HARD) |
	    (s->notbol ? PCRE2_NOTBOL : 0);
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
	size_t at = s->pos[i];

	while (at <= n) {
		int rc = pcre2_match(r->code, (PCRE2_SPTR)s->buf, n, at, opts, s->md,
		    s->rs->mctx);

		if (rc == PCRE2_ERROR_NOMATCH) {
			at = n;
			break;
		}
		if (rc == PCRE2_ERROR_PARTIAL) {
			at = ov[0];
			break;
		}
		if (rc < 0) {
			/* Match, depth, heap or JIT stack limit (or a bug): stop, report. */
			s->stopped[i] = true;
			if (s->limit_rule == s->rs->n)
				s->limit_rule = i;
			at = n;
			break;
		}
		if (r->valid != NULL && !r->valid(s->buf + ov[0], ov[1] - ov[0])) {
			/*
			 * Not valid as a whole: the number may still start at a
			 * later group of this match ("12 4111 1111 1111 1111"),
			 * so search again one byte on (a builtin's match starts
			 * with an ASCII digit).
			 */
			at = ov[0] + 1;
			continue;
		}
		if (s->count[i] < UINT_MAX)
			s->count[i]++;
		/* NOTEMPTY: ov[1] > ov[0], so the search moves on. */
		at = ov[1] > at ? ov[1] : at + 1;
	}
	s->pos[i] = at;
}

/*
 * The window is full: search it with partial matching, then keep only
 * what a later search can still need.
 */
static void dlp_scan_window(struct dlp_scan *s)
{
	size_t n = dlp_complete_len(s->buf, s->len), keep = n, ctx;

	for (size_t i = 0; i < s->rs->n; i++) {
		if (s->stopped[i])
			continue;
		dlp_scan_rule(s, i, n, false);
		if (s->pos[i] < keep)
			keep = s->pos[i];
	}
	/* A partial match longer than DLP_MATCH_MAX is given up (dlp.h). */
	if (n - keep > DLP_MATCH_MAX) {
		keep = n - DLP_MATCH_MAX;
		while (keep < n && ((unsigned char)s->buf[keep] & 0xC0) == 0x80)
			keep++;
	}
	ctx = keep > DLP_CONTEXT ? keep - DLP_CONTEXT : 0;
	while (ctx < keep && ((unsigned char)s->buf[ctx] & 0xC0) == 0x80)
		ctx++;
	/*
	 * keep >= n - DLP_MATCH_MAX, far above DLP_CONTEXT in a full window,
	 * so ctx > 0 and room is made; were it not, the text is dropped rather
	 * than looping.
	 */
	if (ctx == 0)
		ctx = keep = s->len;
	memmove(s->buf, s->buf + ctx, s->len - ctx);
	s->len -= ctx;
	s->notbol = true;
	for (size_t i = 0; i < s->rs->n; i++)
		s->pos[i] = (s->pos[i] > keep ? s->pos[i] : keep) - ctx;
}

/* Normalized text into the window, searching it whenever it fills. */
static void dlp_scan_window_add(struct dlp_scan *s, const char *utf8, size_t len)
{
	while (len > 0) {
		size_t room = DLP_WINDOW - s->len, k;

		if (room == 0) {
			dlp_scan_window(s);
			continue;
		}
		k = len < room ? len : room;
		memcpy(s->buf + s->len, utf8, k);
		s->len += k;
		utf8 += k;
		len -= k;
	}
}

/*
 * Where the waiting text may be cut for NFC: before its last ASCII byte,
 * else before its last character of combining class 0; all of it when
 * there is neither (no starter to wait for).
 */
static size_t dlp_nfc_cut(const char *p, size_t len)
{
	size_t i = len;

	while (i > 0 && (unsigned char)p[i - 1] >= 0x80)
		i--;
	if (i > 1)
		return i - 1;
	for (i = len; i > 1; i--) {
		utf8proc_int32_t cp;

		if (((unsigned char)p[i - 1] & 0xC0) == 0x80)
			continue;
		if (utf8proc_iterate((const utf8proc_uint8_t *)p + i - 1,
		    (utf8proc_ssize_t)(len - i + 1), &cp) > 0 &&
		    utf8proc_get_property(cp)->combining_class == 0)
			return i - 1;
	}
	return len;
}

/*
 * Whether p is already NFC for certain because every character is in
 * U+0000-U+02FF, U+1E00-U+1EFF (Latin Extended Additional: Vietnamese
 * precomposed) or U+2010-U+2027 (dashes, quotes, ellipsis): none of
 * those has NFC_Quick_Check No or Maybe (Unicode
 * DerivedNormalizationProps.txt), so none changes or composes with what
 * precedes it. Most Vietnamese text is such; utf8proc_map is then
 * skipped, which is most of the cost of normalizing.
 */
bool dlp__nfc_is_quick(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c < 0x80)
			continue;
		if (c >= 0xC2 && c <= 0xCB && i + 1 < n) {          /* U+0080-U+02FF */
			i += 1;
			continue;
		}
		if (c == 0xE1 && i + 2 < n && ((unsigned char)p[i + 1] == 0xB8 ||
		    (unsigned char)p[i + 1] == 0xB9 || (unsigned char)p[i + 1] == 0xBA ||
		    (unsigned char)p[i + 1] == 0xBB)) {                /* U+1E00-U+1EFF */
			i += 2;
			continue;
		}
		if (c == 0xE2 && i + 2 < n && (unsigned char)p[i + 1] == 0x80 &&
		    (unsigned char)p[i + 2] >= 0x90 && (unsigned char)p[i + 2] <= 0xA7) {
			i += 2;                                     /* U+2010-U+2027 */
			continue;
		}
		return false;
	}
	return true;
}

/* The first n waiting bytes, in NFC, into the window. */
static void dlp_scan_nfc(struct dlp_scan *s, size_t n)
{
	utf8proc_uint8_t *nfc = NULL;
	utf8proc_ssize_t m;

	if (n == 0)
		return;
	if (dlp__nfc_is_quick(s->pend, n)) {
		dlp_scan_window_add(s, s->pend, n);
		memmove(s->pend, s->pend + n, s->plen - n);
		s->plen -= n;
		return;
	}
	m = utf8proc_map((const utf8proc_uint8_t *)s->pend, (utf8proc_ssize_t)n, &nfc,
	    UTF8PROC_STABLE | UTF8PROC_COMPOSE);
	if (m >= 0)
		dlp_scan_window_add(s, (const char *)nfc, (size_t)m);
	else
		dlp_scan_window_add(s, s->pend, n);
	free(nfc);
	memmove(s->pend, s->pend + n, s->plen - n);
	s->plen -= n;
}

void dlp_scan_text(struct dlp_scan *s, const char *utf8, size_t len)
{
	if (s->rs->n == 0)
		return;
	while (len > 0) {
		size_t k = DLP_NFC_SLICE - s->plen;

		if (k == 0) {
			dlp_scan_nfc(s, dlp_nfc_cut(s->pend, s->plen));
			continue;
		}
		k = len < k ? len : k;
		memcpy(s->pend + s->plen, utf8, k);
		s->plen += k;
		utf8 += k;
		len -= k;
	}
}

void dlp_scan_text_end(struct dlp_scan *s)
{
	dlp_scan_nfc(s, s->plen);
	for (size_t i = 0; i < s->rs->n; i++)
		if (!s->stopped[i] && s->len > 0)
			dlp_scan_rule(s, i, s->len, true);
	s->len = 0;
	s->notbol = false;
	for (size_t i = 0; i < s->rs->n; i++)
		s->pos[i] = 0;
}

void dlp_scan_name(struct dlp_scan *s, const char *utf8, size_t len)
{
	dlp_scan_text_end(s);
	/* A name longer than the window is searched in windows like a text. */
	dlp_scan_text(s, utf8, len);
	dlp_scan_text_end(s);
}

int dlp_scan_result(struct dlp_scan *s, struct dlp_result *out)
{
	size_t nhits = 0;

	dlp_scan_text_end(s);
	out->action = DLP_ACTION_NONE;
	for (size_t i = 0; i < s->rs->n; i++) {
		const struct dlp_rule *r = &s->rs->rules[i];

		if (s->count[i] < r->threshold)
			continue;
		s->hits[nhits++] = (struct dlp_hit){ r->name, r->action, s->count[i],
			r->threshold };
		if (r->action > out->action)
			out->action = r->action;
	}
	out->hits = s->hits;
	out->nhits = nhits;
	out->limit_rule = s->limit_rule < s->rs->n ? s->rs->rules[s->limit_rule].name : NULL;
	return out->limit_rule != NULL ? DLP_E_LIMIT : DLP_OK;
}

unsigned dlp_scan_count(const struct dlp_scan *s, size_t i)
{
	return i < s->rs->n ? s->count[i] : 0;
}
