/*
 * addr: the canonical byte form of a domain and of a mail address, so the
 * store, the CLI and the SMTP session compare the same bytes.
 *
 * Entry points: addr_domain_canon (U- or A-labels to lowercase A-labels),
 * addr_canon (LOCAL@DOMAIN to its canonical form), addr_domain_of.
 *
 * Domains. A name that holds a non-ASCII byte or an "xn--" label goes
 * through libidn2 (IDNA2008 lookup, UTS #46 non-transitional mapping, NFC
 * input; A-labels are decoded and checked). A pure-ASCII name without
 * A-labels is only lowercased: RFC 1123 host names such as "r1---x.example"
 * are valid in the DNS although IDNA2008 reserves their "--" (RFC 5891
 * section 4.2.3.1), and mail must still reach them. Whichever path ran,
 * the result is then checked as an RFC 1035 / RFC 1123 host name (LDH,
 * labels of 1..63 octets, no leading or trailing hyphen, total 253) with a
 * last label that is not all digits (so no IPv4 address hides as a name).
 *
 * We never fall back to UTS #46 transitional processing, though curl and
 * GnuTLS do for browser compatibility: transitional mapping deletes ZWJ
 * and ZWNJ and maps "ß" to "ss", so "a<ZWJ>b.vn" would silently become
 * "ab.vn", a second spelling of someone else's domain, and Unicode 15.1
 * deprecated it. We also do not pass IDN2_USE_STD3_ASCII_RULES: libidn2
 * then *drops* disallowed ASCII ("a b.vn" becomes "ab.vn"); we refuse such
 * names ourselves instead.
 *
 * Addresses. The local part is RFC 5321 section 4.1.2's Dot-string or
 * Quoted-string, with RFC 6531's UTF-8 in atoms and quoted text. Quoting
 * is semantically invisible (RFC 5322 section 3.2.4), so a quoted local
 * part whose content is a valid Dot-string is written unquoted, and one
 * that needs quotes is rewritten with the minimal quoted-pairs (only
 * before '"' and '\'): "\"a\\b\"@x" and "ab@x" are one address.
 *
 * OWNERSHIP: nothing kept; outputs go to caller buffers.
 * THREADS: any thread (libidn2 conversion is reentrant).
 * ERRORS: -EINVAL with *why a static English sentence fragment.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>

#include "common/addr.h"
#include "common/util.h"

/* Longest input we hand to libidn2: four UTF-8 octets per A-label octet. */
#define ADDR_DOMAIN_INPUT_MAX (4 * ADDR_DOMAIN_MAX + 1)

static int addr_fail(const char **why, const char *reason)
{
	if (why != NULL)
		*why = reason;
	return -EINVAL;
}

static bool addr_is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-';
}

/* RFC 5322 section 3.2.3 atext, plus UTF-8 (checked separately). */
static bool addr_is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/*
 * Checks that every non-ASCII byte of s[0..len) starts a well-formed UTF-8
 * sequence (RFC 3629) that ends inside the range. s must be readable one
 * byte past a sequence cut at len, which holds for NUL-terminated input.
 */
static bool addr_utf8_ok(const char *s, size_t len)
{
	size_t i = 0, n;

	while (i < len) {
		if ((unsigned char)s[i] < 0x80) {
			i++;
			continue;
		}
		n = str_utf8_seq_len((const unsigned char *)s + i);
		if (n == 0 || n > len - i)
			return false;
		i += n;
	}
	return true;
}

/* The libidn2 failures a user can cause, in words an operator can act on. */
static const char *addr_idn2_reason(int rc)
{
	switch (rc) {
	case IDN2_PUNYCODE_BAD_INPUT:
	case IDN2_PUNYCODE_BIG_OUTPUT:
	case IDN2_PUNYCODE_OVERFLOW:
		return "domain has an xn-- label that is not valid punycode";
	case IDN2_TOO_BIG_LABEL:
		return "domain label longer than 63 octets";
	case IDN2_TOO_BIG_DOMAIN:
		return "domain longer than 253 octets";
	case IDN2_2HYPHEN:
		return "internationalized domain has a label with \"--\" in the third and fourth positions (RFC 5891 4.2.3.1)";
	case IDN2_HYPHEN_STARTEND:
		return "domain label starts or ends with a hyphen";
	case IDN2_DISALLOWED:
	case IDN2_UNASSIGNED:
	case IDN2_CONTEXTJ:
	case IDN2_CONTEXTJ_NO_RULE:
	case IDN2_CONTEXTO:
	case IDN2_CONTEXTO_NO_RULE:
	case IDN2_INVALID_TRANSITIONAL:
	case IDN2_INVALID_NONTRANSITIONAL:
		return "domain contains a character IDNA2008 does not allow";
	case IDN2_LEADING_COMBINING:
		return "domain label starts with a combining mark";
	case IDN2_BIDI:
		return "domain label breaks the IDNA2008 bidirectional rule (RFC 5893)";
	case IDN2_ALABEL_ROUNDTRIP_FAILED:
		return "domain has an xn-- label that is not a canonical A-label";
	default:
		return "not a valid internationalized domain name (IDNA2008)";
	}
}

/*
 * RFC 1035 2.3.1 / RFC 1123 2.1 host name check of the converted,
 * lowercase name: LDH labels of 1..63 octets with no hyphen at either end,
 * and a last label that is not all digits.
 */
static int addr_check_hostname(const char *d, size_t len, const char **why)
{
	size_t start = 0, i;
	bool all_digits = true;

	if (len == 0)
		return addr_fail(why, "empty domain");
	if (len > ADDR_DOMAIN_MAX)
		return addr_fail(why, "domain longer than 253 octets");
	for (i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)d[i] : '.';

		if (c == '.') {
			size_t ll = i - start;

			if (ll == 0)
				return addr_fail(why, "domain has an empty label");
			if (ll > 63)
				return addr_fail(why, "domain label longer than 63 octets");
			if (d[start] == '-' || d[i - 1] == '-')
				return addr_fail(why, "domain label starts or ends with a hyphen");
			if (i < len)
				all_digits = true;
			start = i + 1;
			continue;
		}
		if (!addr_is_ldh(c))
			return addr_fail(why, "domain may hold only letters, digits, hyphens and dots");
		if (c < '0' || c > '9')
			all_digits = false;
	}
	if (all_digits)
		return addr_fail(why, "domain's last label is all digits (an IP address is not a mail domain)");
	return 0;
}

/* Does the name hold an A-label ("xn--" at the start of a label)? */
static bool addr_has_alabel(const char *d, size_t len)
{
	size_t i;

	for (i = 0; i + 4 <= len; i++)
		if ((i == 0 || d[i - 1] == '.') && str_has_iprefix(d + i, "xn--"))
			return true;
	return false;
}

static int addr_domain_canon_into(const char *in, char *out, size_t outlen, const char **why)
{
	char work[ADDR_DOMAIN_INPUT_MAX + 1];
	size_t len, i;
	bool ascii = true;
	int rc;

	len = strnlen(in, ADDR_DOMAIN_INPUT_MAX + 1);
	if (len == 0)
		return addr_fail(why, "empty domain");
	if (in[0] == '[')
		return addr_fail(why, "address literals such as [192.0.2.1] are not accepted; use a domain name");
	if (len > ADDR_DOMAIN_INPUT_MAX)
		return addr_fail(why, "domain longer than 253 octets");
	memcpy(work, in, len + 1);
	/* One trailing dot names the root (RFC 1034 3.1); it is not part of the key. */
	if (work[len - 1] == '.')
		work[--len] = '\0';
	if (len == 0)
		return addr_fail(why, "empty domain");
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)work[i];

		if (c >= 0x80)
			ascii = false;
		else if (c < 0x21 || c == 0x7f)
			return addr_fail(why, "domain contains a space or control character");
	}
	if (!ascii && !addr_utf8_ok(work, len))
		return addr_fail(why, "domain is not well-formed UTF-8");

	if (ascii && !addr_has_alabel(work, len)) {
		str_lower(work);
	} else {
		char *ace = NULL;

		rc = idn2_lookup_u8((const uint8_t *)work, (uint8_t **)&ace,
		    IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
		if (rc != IDN2_OK) {
			idn2_free(ace);
			return addr_fail(why, addr_idn2_reason(rc));
		}
		len = strlen(ace);
		if (len > ADDR_DOMAIN_MAX) {
			idn2_free(ace);
			return addr_fail(why, "domain longer than 253 octets");
		}
		memcpy(work, ace, len + 1);
		idn2_free(ace);
		str_lower(work);
	}
	rc = addr_check_hostname(work, len, why);
	if (rc < 0)
		return rc;
	if (len >= outlen)
		return addr_fail(why, "domain does not fit the output buffer");
	memcpy(out, work, len + 1);
	return 0;
}

/* in is read in full before out is written, so they may be one buffer. */
int addr_domain_canon(const char *in, char *out, size_t outlen, const char **why)
{
	int rc = addr_domain_canon_into(in, out, outlen, why);

	if (rc < 0 && outlen > 0)
		out[0] = '\0';
	return rc;
}

/* RFC 5321 qtextSMTP (%d32-33 / %d35-91 / %d93-126) for one ASCII byte. */
static bool addr_is_qtext(unsigned char c)
{
	return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

/* Does s[0..len) form an RFC 5321 Dot-string (atoms may hold UTF-8)? */
static bool addr_is_dot_string(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || s[0] == '.' || s[len - 1] == '.')
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (s[i + 1] == '.')
				return false;
		} else if (c < 0x80 && !addr_is_atext(c)) {
			return false;
		}
	}
	return true;
}

/*
 * Canonical local part of in[0..len) into out (ADDR_LOCAL_MAX + 1 bytes).
 * A Quoted-string is decoded to its content first (the DQUOTEs and the
 * backslashes of quoted-pairs are not part of it, RFC 5322 3.2.4), then
 * written unquoted when the content is a Dot-string, else re-quoted.
 */
static int addr_local_canon(const char *in, size_t len, char *out, const char **why)
{
	char content[ADDR_LOCAL_MAX + 1];
	size_t n = 0, i, o = 0;

	if (len == 0)
		return addr_fail(why, "empty local part");
	if (len > ADDR_LOCAL_MAX)
		return addr_fail(why, "local part longer than 64 octets (RFC 5321 4.5.3.1.1)");
	if (!addr_utf8_ok(in, len))
		return addr_fail(why, "local part is not well-formed UTF-8");

	if (in[0] != '"') {
		if (!addr_is_dot_string(in, len))
			return addr_fail(why, "local part is neither a dot-atom nor a quoted string (RFC 5321 4.1.2)");
		memcpy(out, in, len);
		out[len] = '\0';
		str_lower(out);
		return 0;
	}

	for (i = 1;; i++) {
		unsigned char c;

		if (i >= len)
			return addr_fail(why, "unterminated quoted local part");
		c = (unsigned char)in[i];
		if (c == '"') {
			if (i != len - 1)
				return addr_fail(why, "local part has text after its closing quote");
			break;
		}
		if (c == '\\') {
			/* quoted-pairSMTP = %d92 %d32-126 */
			if (++i >= len)
				return addr_fail(why, "unterminated quoted local part");
			c = (unsigned char)in[i];
			if (c < 32 || c > 126)
				return addr_fail(why, "quoted local part has a backslash before a character that cannot be escaped");
		} else if (c < 0x80 && !addr_is_qtext(c)) {
			return addr_fail(why, "quoted local part contains a control character");
		}
		content[n++] = (char)c;
	}
	content[n] = '\0';
	if (n == 0)
		return addr_fail(why, "empty local part");
	str_lower(content);
	if (addr_is_dot_string(content, n)) {
		memcpy(out, content, n + 1);
		return 0;
	}
	out[o++] = '"';
	for (i = 0; i < n; i++) {
		if (content[i] == '"' || content[i] == '\\') {
			if (o + 1 >= ADDR_LOCAL_MAX)
				return addr_fail(why, "local part longer than 64 octets (RFC 5321 4.5.3.1.1)");
			out[o++] = '\\';
		}
		if (o + 1 >= ADDR_LOCAL_MAX)
			return addr_fail(why, "local part longer than 64 octets (RFC 5321 4.5.3.1.1)");
		out[o++] = content[i];
	}
	out[o++] = '"';
	out[o] = '\0';
	return 0;
}

static int addr_canon_into(const char *in, char *out, size_t outlen, const char **why)
{
	char local[ADDR_LOCAL_MAX + 1];
	char domain[ADDR_DOMAIN_MAX + 1];
	const char *at;
	size_t len;
	int rc;

	len = strnlen(in, ADDR_LOCAL_MAX + 1 + ADDR_DOMAIN_INPUT_MAX + 1);
	if (len == 0)
		return addr_fail(why, "empty address");
	if (len > ADDR_LOCAL_MAX + 1 + ADDR_DOMAIN_INPUT_MAX)
		return addr_fail(why, "address too long");
	/* The domain holds no '@', so the last one splits even a quoted "a@b"@c. */
	at = memrchr(in, '@', len);
	if (at == NULL)
		return addr_fail(why, "address has no @domain");
	if (at[1] == '\0')
		return addr_fail(why, "address has an empty domain");
	if (at[1] == '[')
		return addr_fail(why, "address literals such as user@[192.0.2.1] are not accepted; use a domain name");
	rc = addr_local_canon(in, (size_t)(at - in), local, why);
	if (rc < 0)
		return rc;
	rc = addr_domain_canon(at + 1, domain, sizeof domain, why);
	if (rc < 0)
		return rc;
	if ((size_t)snprintf(out, outlen, "%s@%s", local, domain) >= outlen)
		return addr_fail(why, "address does not fit the output buffer");
	return 0;
}

/* in is read in full before out is written, so they may be one buffer. */
int addr_canon(const char *in, char *out, size_t outlen, const char **why)
{
	int rc = addr_canon_into(in, out, outlen, why);

	if (rc < 0 && outlen > 0)
		out[0] = '\0';
	return rc;
}

const char *addr_domain_of(const char *canon_addr)
{
	const char *at = strrchr(canon_addr, '@');

	return at != NULL ? at + 1 : "";
}
