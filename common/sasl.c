/*
 * sasl: the pure decoding half of SMTP AUTH (RFC 4954): strict base64 and
 * the PLAIN message (RFC 4616). The session keeps the exchange; this file
 * only turns bytes into fields, so tests can cover every byte.
 *
 * Entry points: sasl_b64_decode, sasl_b64_encode, sasl_plain_split,
 * sasl_plain_parse.
 *
 * Base64 is RFC 4648 section 4 with no leniency: padding required, no
 * whitespace or line breaks, no characters outside the alphabet, and the
 * unused bits of the last group must be zero (section 3.5, canonical
 * encoding), so one byte string has exactly one accepted encoding.
 *
 * OWNERSHIP: nothing kept; outputs go to caller buffers.
 * THREADS: any; no global state.
 * ERRORS: -EINVAL for any malformed or oversized input.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "common/sasl.h"
#include "common/util.h"

static const char sasl_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of one base64 character, or -1. */
int sasl_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outcap,
    size_t *outlen)
{
	size_t i, o = 0, pad = 0, need;

	*outlen = 0;
	/* RFC 4954 section 4: "=" alone is an empty initial response. */
	if (inlen == 1 && in[0] == '=')
		return 0;
	if (inlen % 4 != 0)
		return -EINVAL;
	if (inlen == 0)
		return 0;
	if (in[inlen - 1] == '=')
		pad = in[inlen - 2] == '=' ? 2 : 1;
	need = inlen / 4 * 3 - pad;
	if (need > outcap)
		return -EINVAL;

	for (i = 0; i < inlen; i += 4) {
		bool last = i + 4 == inlen;
		int v[4];
		unsigned int w;
		int k;

		for (k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)in[i + (size_t)k];

			if (c == '=' && last && k >= 4 - (int)pad) {
				v[k] = 0;
				continue;
			}
			v[k] = b64_value(c);
			if (v[k] < 0)
				return -EINVAL;
		}
		/* RFC 4648 3.5: the bits a pad leaves unused must be zero. */
		if (last && pad == 2 && (v[1] & 0x0f) != 0)
			return -EINVAL;
		if (last && pad == 1 && (v[2] & 0x03) != 0)
			return -EINVAL;
		w = (unsigned int)v[0] << 18 | (unsigned int)v[1] << 12 |
		    (unsigned int)v[2] << 6 | (unsigned int)v[3];
		out[o++] = (unsigned char)(w >> 16);
		if (!last || pad < 2)
			out[o++] = (unsigned char)(w >> 8);
		if (!last || pad < 1)
			out[o++] = (unsigned char)w;
	}
	*outlen = o;
	return 0;
}

void sasl_b64_encode(const unsigned char *in, size_t len, char *out)
{
	size_t i, o = 0;

	for (i = 0; i + 3 <= len; i += 3) {
		unsigned int w = (unsigned int)in[i] << 16 | (unsigned int)in[i + 1] << 8 | in[i + 2];

		out[o++] = sasl_b64_alphabet[w >> 18 & 63];
		out[o++] = sasl_b64_alphabet[w >> 12 & 63];
		out[o++] = sasl_b64_alphabet[w >> 6 & 63];
		out[o++] = sasl_b64_alphabet[w & 63];
	}
	if (len - i == 1) {
		unsigned int w = (unsigned int)in[i] << 16;

		out[o++] = sasl_b64_alphabet[w >> 18 & 63];
		out[o++] = sasl_b64_alphabet[w >> 12 & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (len - i == 2) {
		unsigned int w = (unsigned int)in[i] << 16 | (unsigned int)in[i + 1] << 8;

		out[o++] = sasl_b64_alphabet[w >> 18 & 63];
		out[o++] = sasl_b64_alphabet[w >> 12 & 63];
		out[o++] = sasl_b64_alphabet[w >> 6 & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
}

/* RFC 4616 section 2: UTF8SAFE is well-formed UTF-8 without NUL. */
static bool sasl_utf8_ok(const unsigned char *s, size_t len)
{
	size_t i = 0, n;

	while (i < len) {
		if (s[i] == '\0')
			return false;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		/* The field may end mid-sequence; check the length fits first. */
		n = str_utf8_seq_len(s + i);
		if (n == 0 || n > len - i)
			return false;
		i += n;
	}
	return true;
}

/*
 * message = [authzid] UTF8NUL authcid UTF8NUL passwd (RFC 4616 section 2).
 * str_utf8_seq_len may read up to three bytes past a lead byte, which is
 * safe here only because each field is followed by a NUL or is copied
 * into a NUL-terminated buffer first.
 */
int sasl_plain_split(const unsigned char *msg, size_t len, char *authzid, char *user,
    char *pass)
{
	const unsigned char *nul1, *nul2;
	size_t zlen, clen, plen;

	authzid[0] = '\0';
	user[0] = '\0';
	pass[0] = '\0';
	nul1 = memchr(msg, '\0', len);
	if (nul1 == NULL)
		return -EINVAL;
	nul2 = memchr(nul1 + 1, '\0', len - (size_t)(nul1 + 1 - msg));
	if (nul2 == NULL)
		return -EINVAL;
	zlen = (size_t)(nul1 - msg);
	clen = (size_t)(nul2 - (nul1 + 1));
	plen = len - (size_t)(nul2 + 1 - msg);
	if (clen == 0 || plen == 0)
		return -EINVAL;
	if (zlen > SASL_FIELD_MAX || clen > SASL_FIELD_MAX || plen > SASL_FIELD_MAX)
		return -EINVAL;
	/* A third NUL would be inside passwd: RFC 4616 forbids it there. */
	if (memchr(nul2 + 1, '\0', plen) != NULL)
		return -EINVAL;

	memcpy(authzid, msg, zlen);
	authzid[zlen] = '\0';
	memcpy(user, nul1 + 1, clen);
	user[clen] = '\0';
	memcpy(pass, nul2 + 1, plen);
	pass[plen] = '\0';
	if (!sasl_utf8_ok((const unsigned char *)authzid, zlen) ||
	    !sasl_utf8_ok((const unsigned char *)user, clen) ||
	    !sasl_utf8_ok((const unsigned char *)pass, plen)) {
		memset(authzid, 0, SASL_FIELD_MAX + 1);
		memset(user, 0, SASL_FIELD_MAX + 1);
		memset(pass, 0, SASL_FIELD_MAX + 1);
		return -EINVAL;
	}
	return 0;
}

int sasl_plain_parse(const unsigned char *msg, size_t len, char *user, char *pass)
{
	char authzid[SASL_FIELD_MAX + 1];
	int rc = sasl_plain_split(msg, len, authzid, user, pass);

	if (rc < 0)
		return rc;
	/* We do not let one user act for another (RFC 4616 section 2 allows refusing). */
	if (authzid[0] != '\0' && strcmp(authzid, user) != 0) {
		memset(user, 0, SASL_FIELD_MAX + 1);
		memset(pass, 0, SASL_FIELD_MAX + 1);
		return -EINVAL;
	}
	return 0;
}
