/*
 * classify_quick: the cheap test in front of the classification finder
 * (policy/classify_int.h). Normalizing a line (NFKC, case folding, word
 * by word) costs about 63,000 instructions, and the first 20 lines of
 * every text part of every message go through it: most of the content
 * check's cost on ordinary mail. Every spelling of a level (mật, mat,
 * tốimật, tuyệtmật, MẬT, composed or decomposed, fullwidth or styled)
 * spells the letters m, a, t in a row once each character is reduced to
 * its base letter, so a line where they never follow each other is
 * answered without normalizing it. Lines with mặt, mắt, mất or mát still
 * take the full path; most prose does not.
 *
 * The base letter of each code point of the first two planes is found
 * once with utf8proc (NFKC decomposition, case folded) and kept in a
 * table (128 KiB): an ASCII letter, a mark or ignorable to skip (a
 * combining tone, a zero-width space), "none", or "complex" when it
 * decomposes into several letters (㎜). A complex character, or one
 * beyond the table, makes the answer "maybe": the test may say maybe
 * wrongly, never "no" to a marking.
 *
 * Entry points: classify__may_mark.
 * OWNERSHIP: none. THREADS: any; the table is built once (pthread_once)
 * and only read after.
 * ERRORS: none.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>

#include <utf8proc.h>

#include "policy/classify_int.h"

#define CQ_END 0x20000
#define CQ_NONE 0       /* not a letter of a level word's skeleton */
#define CQ_SKIP 1       /* a mark or an ignorable: invisible between letters */
#define CQ_COMPLEX 2    /* several letters, or unknown: take the full path */

static uint8_t classify_quick_base[CQ_END];
static pthread_once_t classify_quick_once = PTHREAD_ONCE_INIT;

static uint8_t classify_quick_of(utf8proc_int32_t cp)
{
	utf8proc_int32_t out[32];
	int last = 0;
	utf8proc_ssize_t n = utf8proc_decompose_char(cp, out, 32,
	    UTF8PROC_COMPAT | UTF8PROC_CASEFOLD | UTF8PROC_DECOMPOSE | UTF8PROC_IGNORE, &last);
	uint8_t base = CQ_SKIP;
	int letters = 0;

	if (n < 0 || n > 32)
		return CQ_COMPLEX;
	for (utf8proc_ssize_t i = 0; i < n; i++) {
		const utf8proc_property_t *p = utf8proc_get_property(out[i]);

		if (p->combining_class != 0 || p->category == UTF8PROC_CATEGORY_MN ||
		    p->category == UTF8PROC_CATEGORY_CF)
			continue;
		letters++;
		base = out[i] >= 'a' && out[i] <= 'z' ? (uint8_t)out[i] : CQ_NONE;
	}
	return letters > 1 ? CQ_COMPLEX : base;
}

static void classify_quick_build(void)
{
	for (utf8proc_int32_t cp = 0; cp < CQ_END; cp++) {
		if (cp >= 'A' && cp <= 'Z')
			classify_quick_base[cp] = (uint8_t)(cp - 'A' + 'a');
		else if (cp >= 'a' && cp <= 'z')
			classify_quick_base[cp] = (uint8_t)cp;
		else if (cp < 0x80 || (cp >= 0xD800 && cp <= 0xDFFF))
			classify_quick_base[cp] = CQ_NONE;
		else
			classify_quick_base[cp] = classify_quick_of(cp);
	}
}

bool classify__may_mark(const char *utf8, size_t len)
{
	static const char want[] = "mat";
	const uint8_t *s = (const uint8_t *)utf8;
	size_t got = 0;    /* letters of "mat" seen in a row */

	pthread_once(&classify_quick_once, classify_quick_build);
	for (size_t i = 0; i < len; i++) {
		utf8proc_int32_t cp = s[i];
		uint8_t b;

		if (s[i] >= 0x80) {
			utf8proc_ssize_t n = utf8proc_iterate(s + i, (utf8proc_ssize_t)(len - i), &cp);

			if (n <= 0) {
				got = 0;   /* invalid bytes become U+FFFD: no letter */
				continue;
			}
			i += (size_t)n - 1;
			if (cp >= CQ_END)
				return true;
		}
		b = classify_quick_base[cp];
		if (b == CQ_SKIP)
			continue;
		if (b == CQ_COMPLEX)
			return true;
		if (b == (uint8_t)want[got]) {
			if (++got == sizeof want - 1)
				return true;
		} else {
			got = b == 'm' ? 1 : 0;
		}
	}
	return false;
}
