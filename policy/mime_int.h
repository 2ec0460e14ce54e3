#ifndef GOVRELAY_POLICY_MIME_INT_H
#define GOVRELAY_POLICY_MIME_INT_H
/*
 * mime_int: what the files of the MIME module (mime.c, mime_words.c,
 * mime_text.c) share and nobody else includes: the UTF-8 sequence check
 * and the "bytes in a charset to bounded UTF-8" helper the header
 * decoders use.
 */
#include <stdbool.h>
#include <stddef.h>

/*
 * The strict UTF-8 sequence (RFC 3629) at p, n bytes available: its
 * length (1-4) when valid, 0 when the bytes are a valid but incomplete
 * start (more input may complete it), -1 when invalid.
 */
int mime__utf8_seq(const unsigned char *p, size_t n);
/* Whether the charset name is one we hand to iconv_open (letters, digits, ".:_+-()"). */
bool mime__charset_ok(const char *cs);
/*
 * Converts len bytes in charset cs (as mime_text_new reads it) to UTF-8
 * and appends them to out (cap bytes, *used so far, always NUL-terminated;
 * what does not fit is dropped, never half a sequence).
 */
bool mime__utf8_valid(const char *s, size_t len);
void mime__to_utf8(const char *cs, const char *in, size_t len, char *out, size_t cap,
    size_t *used);
/*
 * Appends UTF-8 bytes to out as mime__to_utf8 does (controls and invalid
 * bytes become U+FFFD, a tab a space). *used becomes cap once a piece did not fit: the
 * length written is then strlen(out).
 */
void mime__put(const char *s, size_t len, char *out, size_t cap, size_t *used);
/*
 * mime_param, and with raw the value as written: no charset conversion,
 * no RFC 2047 decoding (a boundary is matched byte for byte), truncated
 * to outlen - 1 bytes; an unquoted value with white space inside
 * (boundary=a b) is MIME_E_AMBIGUOUS there, since readers cut it apart
 * differently.
 */
int mime__param(const char *value, size_t len, const char *name, char *out, size_t outlen,
    bool raw);

#endif
