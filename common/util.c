/*
 * util: bounded string copies, ASCII case helpers and clocks.
 *
 * Entry points: str_copy, str_copyn, str_lower, str_ieq, str_hash, str_has_iprefix,
 * str_utf8_seq_len, b64_value,
 * time_now_ms, time_mono_ms, time_format_iso, time_parse_iso,
 * time_format_rfc5322, hex_encode.
 * OWNERSHIP: nothing kept. THREADS: any. ERRORS: none.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/util.h"

size_t str_copy(char *dst, const char *src, size_t dstlen)
{
	return str_copyn(dst, src, strlen(src), dstlen);
}

size_t str_copyn(char *dst, const char *src, size_t n, size_t dstlen)
{
	size_t len = strnlen(src, n);

	if (dstlen > 0) {
		size_t c = len < dstlen - 1 ? len : dstlen - 1;

		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return len;
}

void str_lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

uint32_t str_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

bool str_ieq(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

bool str_has_iprefix(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/*
 * Length of the well-formed UTF-8 sequence at p (2 to 4), or 0. This is
 * RFC 3629's UTF8-2/3/4 exactly: no overlong forms (C0, C1, E0 80..9F,
 * F0 80..8F), no UTF-16 surrogates (ED A0..BF), nothing above U+10FFFF.
 * Reading stops at the first bad byte, so a NUL ends the check safely.
 */
size_t str_utf8_seq_len(const unsigned char *p)
{
	unsigned char c = p[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n, i;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

int64_t time_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t time_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void time_format_iso(int64_t unix_ms, char *out, size_t outlen)
{
	time_t secs = (time_t)(unix_ms / 1000);
	struct tm tm;
	char base[32];

	gmtime_r(&secs, &tm);
	strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, outlen, "%s.%03dZ", base, (int)(unix_ms % 1000));
}

static int time_digits(const char *s, size_t n, int *v)
{
	*v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		*v = *v * 10 + (s[i] - '0');
	}
	return 0;
}

int time_parse_iso(const char *s, size_t len, int64_t *unix_ms)
{
	char again[64];
	struct tm tm;
	int y, mo, d, h, mi, se, frac;
	time_t secs;

	if (len != TIME_ISO_LEN || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
	    s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z')
		return -1;
	if (time_digits(s, 4, &y) < 0 || time_digits(s + 5, 2, &mo) < 0 ||
	    time_digits(s + 8, 2, &d) < 0 || time_digits(s + 11, 2, &h) < 0 ||
	    time_digits(s + 14, 2, &mi) < 0 || time_digits(s + 17, 2, &se) < 0 ||
	    time_digits(s + 20, 3, &frac) < 0)
		return -1;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	if ((secs = timegm(&tm)) < 0)
		return -1;
	*unix_ms = (int64_t)secs * 1000 + frac;
	/* Only the canonical spelling of a time (no 31 April, no :60). */
	time_format_iso(*unix_ms, again, sizeof again);
	return memcmp(again, s, TIME_ISO_LEN) == 0 ? 0 : -1;
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 0xf];
	}
	out[2 * n] = '\0';
}

void time_format_rfc5322(int64_t unix_ms, char *out, size_t outlen)
{
	/* English names whatever the locale, as RFC 5322 section 3.3 requires. */
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t secs = (time_t)(unix_ms / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	snprintf(out, outlen, "%s, %d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
	    tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	    tm.tm_sec);
}
