#ifndef GOVRELAY_UTIL_H
#define GOVRELAY_UTIL_H
/* util: small string and time helpers every module needs. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Bounded copy: always NUL-terminates (when dstlen > 0) and returns
 * strlen(src), so truncation is detected by result >= dstlen.
 */
size_t str_copy(char *dst, const char *src, size_t dstlen);
/* Same for n bytes of src that need not be NUL-terminated. */
size_t str_copyn(char *dst, const char *src, size_t n, size_t dstlen);
/* ASCII-only lowercasing in place (UTF-8 bytes are left alone). */
void str_lower(char *s);
bool str_ieq(const char *a, const char *b);
/* FNV-1a of s: bucket index for small in-memory tables, not for security. */
uint32_t str_hash(const char *s);
/* The value of a base64 character (RFC 4648 table 1), or -1. */
int b64_value(unsigned char c);
bool str_has_iprefix(const char *s, const char *prefix);
/*
 * Length of the well-formed UTF-8 sequence starting at p (RFC 3629: no
 * overlongs, no surrogates, nothing above U+10FFFF), or 0. p[0] must be
 * a lead byte >= 0x80; reading stops at the first bad byte, so a NUL ends
 * it safely.
 */
size_t str_utf8_seq_len(const unsigned char *p);

/* Wall clock in unix milliseconds and monotonic milliseconds. */
int64_t time_now_ms(void);
uint64_t time_mono_ms(void);
/* "2026-11-23T11:30:00.123Z" into out (at least 32 bytes). */
void time_format_iso(int64_t unix_ms, char *out, size_t outlen);
#define TIME_ISO_LEN 24
/*
 * The reverse, for exactly that spelling (len bytes, no NUL needed) of a
 * real date; 0, or -1 for anything else.
 */
int time_parse_iso(const char *s, size_t len, int64_t *unix_ms);
/* n bytes as 2n lowercase hex digits and a NUL into out. */
void hex_encode(const uint8_t *in, size_t n, char *out);
/* RFC 5322 date for headers, e.g. "Mon, 23 Nov 2026 11:30:00 +0000". */
void time_format_rfc5322(int64_t unix_ms, char *out, size_t outlen);

#endif
