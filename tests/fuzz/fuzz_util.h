#ifndef GOVRELAY_FUZZ_UTIL_H
#define GOVRELAY_FUZZ_UTIL_H
/*
 * fuzz_util: independent checks the fuzz targets hold the parsers' output
 * to, written apart from the code under test so a shared mistake cannot
 * hide: strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
 * above U+10FFFF) and the absence of control characters, which would let
 * an address forge a log field or a protocol line.
 */
#include <stdbool.h>
#include <stddef.h>

static inline bool fuzz_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	while (p < end) {
		unsigned c = *p++, need, min, cp;

		if (c < 0x80)
			continue;
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1; min = 0x80; cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2; min = 0x800; cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3; min = 0x10000; cp = c & 0x07;
		} else {
			return false;
		}
		if ((size_t)(end - p) < need)
			return false;
		while (need-- > 0) {
			if ((*p & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (*p++ & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

/* Whether s holds a C0 control character or DEL. */
static inline bool fuzz_has_ctl(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

#endif
