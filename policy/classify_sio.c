/*
 * classify_sio: the RFC 7444 SIO-Label rule of the marking finder
 * (policy/classify.h; the words and the stamp rule are classify.c's).
 *
 * RFC 7444 section 2: the parameters are read (token or
 * quoted-string values, RFC 2045 section 5.1; an unquoted value is read to
 * the ';', as "marking=TỐI MẬT" is typed by hand). marking= is split at '/'
 * and '|' ("TỐI MẬT//VN") and each piece read as a stamp line, the bare
 * single "mat" allowed in any case (a label field is nothing but a
 * marking). label= is base64 (RFC 7444: ":ess" DER or ":xml" XML); the
 * decoded bytes (and the raw value, which may be plain text) have XML
 * character references undone and are cut into fields at markup and
 * control bytes, each field read as a stamp line: "<classification>TỐI
 * MẬT</classification>" and a DER privacy mark "TỐI MẬT" are found, a
 * policy name in prose is not.
 *
 * Entry points: classify_sio_label.
 * OWNERSHIP: the value is borrowed; decoding copies are freed before return.
 * THREADS: any; no global state.
 * ERRORS: none; a value that cannot be read is not a marking.
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

/* An SIO-Label value is read up to this many bytes. */
#define CLASSIFY_SIO_MAX 16384

/*
 * Base64 (RFC 4648 section 4) of s[0..len) into out (at least len bytes),
 * white space skipped, stopping at '='. Returns the decoded length, or -1
 * when a byte is not base64 or fewer than eight bits are left over.
 */
static long classify_b64_decode(const char *s, size_t len, unsigned char *out)
{
	unsigned long acc = 0;
	int bits = 0, nchars = 0;
	long o = 0;

	for (size_t i = 0; i < len && s[i] != '='; i++) {
		unsigned char c = (unsigned char)s[i];
		int v = b64_value(c);

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (v < 0)
			return -1;
		acc = ((acc << 6) | (unsigned long)v) & 0xFFFFFF;
		bits += 6;
		nchars++;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return nchars % 4 == 1 ? -1 : o;
}

/*
 * XML character references (XML 1.0 section 4.1, "&#7853;", "&#x1EAD;")
 * and the five predefined entities undone in place, so a label cannot
 * hide "MẬT" as "M&#7852;T". Returns the new length (never longer).
 */
static size_t classify_xml_unescape(char *s, size_t len)
{
	static const struct { const char *name; char c; } ent[] = {
		{ "&lt;", '<' }, { "&gt;", '>' }, { "&amp;", '&' },
		{ "&quot;", '"' }, { "&apos;", '\'' },
	};
	size_t o = 0;

	for (size_t i = 0; i < len;) {
		size_t e = i + 1, k;
		unsigned long cp = 0;
		bool hex, done = false;

		if (s[i] != '&') {
			s[o++] = s[i++];
			continue;
		}
		for (k = 0; k < sizeof ent / sizeof ent[0]; k++) {
			size_t el = strlen(ent[k].name);

			if (len - i >= el && memcmp(s + i, ent[k].name, el) == 0) {
				s[o++] = ent[k].c;
				i += el;
				done = true;
				break;
			}
		}
		if (done)
			continue;
		if (e >= len || s[e] != '#') {
			s[o++] = s[i++];
			continue;
		}
		hex = ++e < len && (s[e] == 'x' || s[e] == 'X');
		e += hex;
		for (k = e; k < len && k < e + 7; k++) {
			int lc = s[k] | 0x20;

			if (s[k] >= '0' && s[k] <= '9')
				cp = cp * (hex ? 16 : 10) + (unsigned long)(s[k] - '0');
			else if (hex && lc >= 'a' && lc <= 'f')
				cp = cp * 16 + (unsigned long)(lc - 'a' + 10);
			else
				break;
		}
		/* A reference longer than the character it makes, always. */
		if (k == e || k >= len || s[k] != ';' || cp == 0 || cp > 0x10FFFF ||
		    !utf8proc_codepoint_valid((utf8proc_int32_t)cp)) {
			s[o++] = s[i++];
			continue;
		}
		o += (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (uint8_t *)s + o);
		i = k + 1;
	}
	return o;
}

static bool classify_is_field_break(unsigned char c)
{
	return c < 0x20 || c == 0x7F || c == '<' || c == '>' || c == '"' || c == '=';
}

/* Each field of a label (text between markup and control bytes) read as
 * a stamp line. */
static enum classify_level classify_label_fields(const char *s, size_t len)
{
	enum classify_level best = CLASSIFY_NONE;

	for (size_t i = 0; i < len && best != CLASSIFY_TUYET_MAT;) {
		size_t j = i;

		while (j < len && !classify_is_field_break((unsigned char)s[j]))
			j++;
		if (j > i)
			best = classify__max(best, classify__stamp_str(s + i, j - i, false));
		i = j + 1;
	}
	return best;
}

/* label=: base64 (RFC 7444 section 2) decoded, and the value as it is
 * too: "TOIMAT" is also base64 and decodes to noise. */
static enum classify_level classify_label_value(const char *v, size_t len)
{
	unsigned char *out = xmalloc(len + 1);
	long n = classify_b64_decode(v, len, out);
	enum classify_level lv = CLASSIFY_NONE;

	if (n > 0) {
		n = (long)classify_xml_unescape((char *)out, (size_t)n);
		lv = classify_label_fields((const char *)out, (size_t)n);
	}
	memcpy(out, v, len);
	n = (long)classify_xml_unescape((char *)out, len);
	lv = classify__max(lv, classify_label_fields((const char *)out, (size_t)n));
	free(out);
	return lv;
}

/* marking=: pieces between '/' and '|' ("TỐI MẬT//VN"), each a stamp. */
static enum classify_level classify_marking_value(const char *v, size_t len)
{
	enum classify_level best = CLASSIFY_NONE;

	for (size_t i = 0; i <= len;) {
		size_t j = i;

		while (j < len && v[j] != '/' && v[j] != '|')
			j++;
		if (j > i)
			best = classify__max(best, classify__stamp_str(v + i, j - i, false));
		i = j + 1;
	}
	return best;
}

/*
 * One parameter value at v[*pos] (RFC 2045 section 5.1: token or
 * quoted-string, RFC 5322 section 3.2.4 quoted-pair undone) into out;
 * *pos is left after it. Returns its length.
 */
static size_t classify_param_value(const char *v, size_t len, size_t *pos, char *out)
{
	size_t i = *pos, o = 0;

	if (i < len && v[i] == '"') {
		for (i++; i < len && v[i] != '"'; i++) {
			if (v[i] == '\\' && i + 1 < len)
				i++;
			if (v[i] != '\r' && v[i] != '\n')
				out[o++] = v[i];
		}
		i += i < len;
	} else {
		/* A token (RFC 2045) ends at a space, but a marking typed by
		 * hand without quotes ("marking=TỐI MẬT") is read to the ';'. */
		for (; i < len && v[i] != ';'; i++)
			out[o++] = v[i];
		while (o > 0 && strchr(" \t\r\n", out[o - 1]) != NULL)
			o--;
	}
	*pos = i;
	return o;
}

enum classify_level classify_sio_label(const char *value, size_t len)
{
	enum classify_level best = CLASSIFY_NONE;
	char *val;
	size_t i = 0;

	if (value == NULL)
		return CLASSIFY_NONE;
	len = classify__cut(value, len, CLASSIFY_SIO_MAX);
	val = xmalloc(len + 1);
	while (i < len) {
		size_t ns, ne, vl;

		while (i < len && strchr(" \t\r\n;", value[i]) != NULL)
			i++;
		ns = i;
		while (i < len && strchr(" \t\r\n;=", value[i]) == NULL)
			i++;
		ne = i;
		while (i < len && strchr(" \t\r\n", value[i]) != NULL)
			i++;
		if (i >= len || value[i] != '=') {
			/* Not name=value: skip to the next parameter. */
			while (i < len && value[i] != ';')
				i++;
			continue;
		}
		i++;
		while (i < len && strchr(" \t\r\n", value[i]) != NULL)
			i++;
		vl = classify_param_value(value, len, &i, val);
		if (ne - ns == 7 && strncasecmp(value + ns, "marking", 7) == 0)
			best = classify__max(best, classify_marking_value(val, vl));
		else if (ne - ns == 5 && strncasecmp(value + ns, "label", 5) == 0)
			best = classify__max(best, classify_label_value(val, vl));
	}
	free(val);
	return best;
}
