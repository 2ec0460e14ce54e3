/*
 * smtp_parse: pure parsing of what an SMTP client sends in a command line:
 * the verb and its argument, reverse- and forward-paths, the ESMTP
 * parameters of MAIL and RCPT (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531
 * SMTPUTF8, RFC 3461 RET/ENVID/NOTIFY/ORCPT, RFC 4954 AUTH), the BDAT
 * argument (RFC 3030) and the HELO/EHLO name (RFC 5321 4.1.1.1).
 *
 * Entry points: smtp_cmd_name, smtp_parse_command, smtp_parse_path,
 * smtp_parse_mail_params, smtp_parse_rcpt_params, smtp_parse_bdat,
 * smtp_parse_helo, smtp_parse_xtext_decode, smtp_parse_xtext_encode.
 *
 * The parser is deliberately strict where leniency has been an attack
 * surface (open relays through routing forms, address smuggling with
 * spaces or control characters, UTF-8 overlongs) and lenient only where
 * real clients are sloppy in harmless ways: spaces between "FROM:" and
 * '<', several spaces between parameters, trailing spaces, underscores in
 * HELO names. Routing forms (user%other@us, "user@other"@us, bang paths)
 * are syntactically valid and therefore accepted, but flagged in
 * has_routing_chars so relay policy can refuse them; source routes are
 * dropped as RFC 5321 section 4.1.1.3 requires and flagged as well.
 *
 * OWNERSHIP: nothing is allocated or kept. Results go into caller storage;
 * *arg and *rest point into the caller's string. smtp_parse_command reads
 * exactly len bytes, but the session must keep line[len] == '\0' because
 * the argument parsers that follow take NUL-terminated strings.
 * THREADS: no state at all; any thread.
 * ERRORS: 0, or -1 with err filled in with the reply the session should
 * send (code, enhanced code and text). Reply texts never echo control
 * characters or unbounded peer data.
 */
#include "config.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "relay/smtp_parse.h"

/* Longest address text echoed back in a reply, to keep replies bounded. */
#define SMTP_PARSE_ECHO_MAX 60

/* Flags for smtp_parse_domain(). */
#define SMTP_PARSE_DOM_UTF8 0x1u       /* U-labels allowed (RFC 6531) */
#define SMTP_PARSE_DOM_UNDERSCORE 0x2u /* HELO names: real clients use '_' */

/* smtp_parse_domain() and friends: non-ASCII seen without SMTPUTF8. */
#define SMTP_PARSE_E_NONASCII (-2)

/* ------------------------------------------------------------- helpers */

static void smtp_parse_seterr(struct smtp_parse_error *err, int code, const char *enh,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void smtp_parse_seterr(struct smtp_parse_error *err, int code, const char *enh,
    const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	err->code = code;
	err->enh = enh;
	va_start(ap, fmt);
	vsnprintf(err->text, sizeof err->text, fmt, ap);
	va_end(ap);
}

/*
 * Copies at most SMTP_PARSE_ECHO_MAX bytes of peer text for a reply,
 * stopping at stop (or NUL), with anything but printable ASCII replaced by
 * '?', so a reply can never carry a line break or a terminal escape.
 */
static void smtp_parse_echo(const char *s, char stop, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; s[i] != '\0' && s[i] != stop; i++) {
		unsigned char c = (unsigned char)s[i];

		if (i == SMTP_PARSE_ECHO_MAX) {
			if (o + 4 <= outlen) {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (o + 1 >= outlen)
			break;
		out[o++] = (char)(c >= 0x20 && c < 0x7f ? c : '?');
	}
	out[o] = '\0';
}

static bool smtp_parse_is_alpha(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool smtp_parse_is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool smtp_parse_is_alnum(unsigned char c)
{
	return smtp_parse_is_alpha(c) || smtp_parse_is_digit(c);
}

/* RFC 5322 atext, the characters of an unquoted local part (RFC 5321 4.1.2). */
static bool smtp_parse_is_atext(unsigned char c)
{
	return smtp_parse_is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* One uppercase hex digit (xtext allows no lowercase, RFC 3461 section 4). */
static int smtp_parse_xdigit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Why an unexpected character c was refused, for a reply a person reads. */
static const char *smtp_parse_why_char(unsigned char c)
{
	if (c == '\0')
		return "address ends early";
	if (c == ' ' || c == '\t')
		return "spaces are not allowed";
	if (c < 0x20 || c == 0x7f)
		return "control characters are not allowed";
	return "unexpected character";
}

/*
 * 1*20DIGIT into *v with overflow checked; s..end must be non-empty.
 * Used for SIZE (RFC 1870) and the BDAT chunk size (RFC 3030).
 */
static int smtp_parse_u64(const char *s, size_t len, uint64_t *v)
{
	uint64_t n = 0;
	size_t i;

	if (len == 0 || len > 20)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned d;

		if (!smtp_parse_is_digit((unsigned char)s[i]))
			return -1;
		d = (unsigned)(s[i] - '0');
		if (n > (UINT64_MAX - d) / 10)
			return -1;
		n = n * 10 + d;
	}
	*v = n;
	return 0;
}

/* ------------------------------------------------------------- domains */

/*
 * Domain = sub-domain *("." sub-domain) (RFC 5321 4.1.2), each label 1 to
 * 63 octets of letters, digits and hyphens, not starting or ending with a
 * hyphen, the whole at most 255 octets (4.5.3.1.2). With
 * SMTP_PARSE_DOM_UTF8 a label may hold UTF-8 (RFC 6531 U-labels). Stops
 * at the first byte that cannot continue the domain and leaves *pp there.
 * Returns 0, -1 with *why, or SMTP_PARSE_E_NONASCII.
 */
static int smtp_parse_domain(const char **pp, unsigned flags, const char **why)
{
	const unsigned char *start = (const unsigned char *)*pp, *p = start;
	unsigned char first = 0, last = 0;
	size_t lablen = 0;

	for (;;) {
		unsigned char c = *p;

		if (smtp_parse_is_alnum(c) || c == '-' ||
		    (c == '_' && (flags & SMTP_PARSE_DOM_UNDERSCORE))) {
			if (lablen == 0)
				first = c;
			last = c;
			lablen++;
			p++;
		} else if (c >= 0x80) {
			size_t n;

			if (!(flags & SMTP_PARSE_DOM_UTF8)) {
				*why = "non-ASCII domain";
				return SMTP_PARSE_E_NONASCII;
			}
			n = str_utf8_seq_len(p);
			if (n == 0) {
				*why = "invalid UTF-8";
				return -1;
			}
			if (lablen == 0)
				first = 'a';
			last = 'a';
			lablen += n;
			p += n;
		} else if (c == '.') {
			if (lablen == 0) {
				*why = p == start ? "domain starts with a dot" : "empty domain label";
				return -1;
			}
			if (first == '-' || last == '-') {
				*why = "domain label starts or ends with a hyphen";
				return -1;
			}
			lablen = 0;
			p++;
		} else {
			break;
		}
		if (lablen > 63) {
			*why = "domain label longer than 63 octets";
			return -1;
		}
		if ((size_t)(p - start) > SMTP_DOMAIN_MAX) {
			*why = "domain longer than 255 octets";
			return -1;
		}
	}
	if (p == start) {
		*why = "missing domain";
		return -1;
	}
	if (lablen == 0) {
		/* A trailing dot: "example.org." is not a Domain in RFC 5321. */
		*why = "domain ends with a dot";
		return -1;
	}
	if (first == '-' || last == '-') {
		*why = "domain label starts or ends with a hyphen";
		return -1;
	}
	*pp = (const char *)p;
	return 0;
}

/*
 * address-literal = "[" ( IPv4-address-literal / IPv6-address-literal /
 * General-address-literal ) "]" (RFC 5321 4.1.3). The addresses are
 * checked with inet_pton, which refuses leading zeros and out-of-range
 * octets; general literals have no registered tags we could route, so
 * they are refused. *pp is at '['; norm gets "[1.2.3.4]" or
 * "[IPv6:hex-lowercased]".
 */
static int smtp_parse_addr_literal(const char **pp, char *norm, size_t normlen,
    const char **why)
{
	const char *p = *pp + 1, *end;
	char text[INET6_ADDRSTRLEN + 8];
	unsigned char bin[16];
	size_t len;

	end = p;
	while (*end != '\0' && *end != ']' &&
	    (smtp_parse_is_alnum((unsigned char)*end) || *end == ':' || *end == '.'))
		end++;
	if (*end != ']') {
		*why = "bad address literal";
		return -1;
	}
	len = (size_t)(end - p);
	if (len >= sizeof text) {
		*why = "bad address literal";
		return -1;
	}
	memcpy(text, p, len);
	text[len] = '\0';
	if (strncasecmp(text, "IPv6:", 5) == 0) {
		if (inet_pton(AF_INET6, text + 5, bin) != 1) {
			*why = "bad IPv6 address literal";
			return -1;
		}
		str_lower(text + 5);
		if (snprintf(norm, normlen, "[IPv6:%s]", text + 5) >= (int)normlen) {
			*why = "bad address literal";
			return -1;
		}
	} else if (inet_pton(AF_INET, text, bin) == 1) {
		if (snprintf(norm, normlen, "[%s]", text) >= (int)normlen) {
			*why = "bad address literal";
			return -1;
		}
	} else {
		*why = strchr(text, ':') != NULL ? "unsupported address literal" :
		    "bad IPv4 address literal";
		return -1;
	}
	*pp = end + 1;
	return 0;
}

/* --------------------------------------------------------------- paths */

/*
 * One UTF-8 character at p in a local part (RFC 6531 3.3): its length in
 * *n and is_utf8 set. SMTP_PARSE_E_NONASCII without SMTPUTF8, -1 with
 * *why for a malformed sequence.
 */
static int smtp_parse_local_utf8(const unsigned char *p, bool smtputf8,
    struct smtp_path *out, const char **why, size_t *n)
{
	if (!smtputf8)
		return SMTP_PARSE_E_NONASCII;
	*n = str_utf8_seq_len(p);
	if (*n == 0) {
		*why = "invalid UTF-8";
		return -1;
	}
	out->is_utf8 = true;
	return 0;
}

/*
 * Quoted-string at *pp (on its opening quote): *pp ends after the closing
 * quote, *content counts the bytes between the quotes.
 */
static int smtp_parse_local_quoted(const unsigned char **pp, bool smtputf8,
    struct smtp_path *out, const char **why, size_t *content)
{
	const unsigned char *start = *pp, *p = start + 1;
	int rc;

	for (;;) {
		unsigned char c = *p;

		if (c == '"')
			break;
		if (c == '\\') {
			/* quoted-pairSMTP = %d92 %d32-126 */
			c = p[1];
			if (c < 0x20 || c > 0x7e) {
				*why = c == '\0' ? "unterminated quoted string" :
				    "bad quoted pair";
				return -1;
			}
			p += 2;
		} else if (c >= 0x20 && c <= 0x7e) {
			p++;
		} else if (c >= 0x80) {
			size_t n;

			if ((rc = smtp_parse_local_utf8(p, smtputf8, out, why, &n)) != 0)
				return rc;
			p += n;
			continue;
		} else {
			*why = c == '\0' ? "unterminated quoted string" :
			    smtp_parse_why_char(c);
			return -1;
		}
		/* '@' is only special inside quotes; '%' and '!' anywhere. */
		if (c == '@' || c == '%' || c == '!')
			out->has_routing_chars = true;
	}
	*content = (size_t)(p - start) - 1;
	*pp = p + 1;
	return 0;
}

/* Dot-string at *pp: atoms of atext (or UTF-8) separated by single dots. */
static int smtp_parse_local_dots(const unsigned char **pp, bool smtputf8,
    struct smtp_path *out, const char **why, size_t *content)
{
	const unsigned char *start = *pp, *p = start;
	bool atom_empty = true;
	int rc;

	for (;;) {
		unsigned char c = *p;

		if (smtp_parse_is_atext(c)) {
			if (c == '%' || c == '!')
				out->has_routing_chars = true;
			atom_empty = false;
			p++;
		} else if (c >= 0x80) {
			size_t n;

			if ((rc = smtp_parse_local_utf8(p, smtputf8, out, why, &n)) != 0)
				return rc;
			atom_empty = false;
			p += n;
		} else if (c == '.') {
			if (atom_empty) {
				*why = "empty part in the local part (dots)";
				return -1;
			}
			atom_empty = true;
			p++;
		} else {
			break;
		}
	}
	if (p == start) {
		*why = *p == '@' ? "empty local part" : smtp_parse_why_char(*p);
		return -1;
	}
	if (atom_empty) {
		*why = "local part ends with a dot";
		return -1;
	}
	*content = (size_t)(p - start);
	*pp = p;
	return 0;
}

/*
 * Local-part = Dot-string / Quoted-string (RFC 5321 4.1.2; RFC 6531 adds
 * UTF-8 to atext and qtextSMTP). The 64-octet limit (4.5.3.1.1) counts the
 * local part as written, quotes excluded, so the quoted form of a local
 * part gets the same room as the unquoted one. Fills out->local,
 * is_quoted, has_routing_chars and is_utf8. Returns 0, -1 with *why, or
 * SMTP_PARSE_E_NONASCII.
 */
static int smtp_parse_local(const char **pp, bool smtputf8, struct smtp_path *out,
    const char **why)
{
	const unsigned char *start = (const unsigned char *)*pp, *p = start;
	size_t content;
	int rc;

	if (*p == '"') {
		out->is_quoted = true;
		rc = smtp_parse_local_quoted(&p, smtputf8, out, why, &content);
	} else {
		rc = smtp_parse_local_dots(&p, smtputf8, out, why, &content);
	}
	if (rc != 0)
		return rc;
	if (content > SMTP_LOCAL_MAX) {
		*why = "local part longer than 64 octets";
		return -1;
	}
	str_copyn(out->local, (const char *)start, (size_t)(p - start), sizeof out->local);
	*pp = (const char *)p;
	return 0;
}

/*
 * A-d-l = At-domain *( "," At-domain ) followed by ":" (RFC 5321 4.1.2).
 * Syntax is checked so garbage cannot hide in it; the hosts themselves are
 * ignored (4.1.1.3 and appendix C).
 */
static int smtp_parse_source_route(const char **pp, bool smtputf8, const char **why)
{
	const char *p = *pp;
	int rc;

	for (;;) {
		if (*p != '@') {
			*why = "bad source route";
			return -1;
		}
		p++;
		rc = smtp_parse_domain(&p, smtputf8 ? SMTP_PARSE_DOM_UTF8 : 0, why);
		if (rc != 0)
			return rc;
		if (*p == ',') {
			p++;
			continue;
		}
		if (*p == ':')
			break;
		*why = "bad source route";
		return -1;
	}
	*pp = p + 1;
	return 0;
}

static int smtp_parse_path_fail(struct smtp_parse_error *err, bool is_rcpt,
    const char *start, int rc, const char *why)
{
	char echo[SMTP_PARSE_ECHO_MAX + 4];

	if (rc == SMTP_PARSE_E_NONASCII) {
		/* RFC 6531 section 3.4: such an address needs SMTPUTF8. */
		smtp_parse_seterr(err, 553, "5.6.7", "Error: non-ASCII address needs SMTPUTF8");
		return -1;
	}
	smtp_parse_echo(start, '>', echo, sizeof echo);
	smtp_parse_seterr(err, 501, is_rcpt ? "5.1.3" : "5.1.7",
	    "Error: bad address syntax in <%s>: %s", echo, why);
	return -1;
}

int smtp_parse_path(const char *s, bool is_rcpt, bool allow_null, bool smtputf8,
    struct smtp_path *out, const char **rest, struct smtp_parse_error *err)
{
	const char *p = s, *start, *why = "";
	char dom[SMTP_DOMAIN_MAX + 1];
	size_t llen, dlen;
	int rc;

	memset(out, 0, sizeof *out);
	while (*p == ' ')
		p++;
	if (*p != '<') {
		smtp_parse_seterr(err, 501, is_rcpt ? "5.1.3" : "5.1.7",
		    "Error: the address must be enclosed in <>, e.g. <user@example.org>");
		return -1;
	}
	start = ++p;
	if (*p == '>') {
		if (!allow_null) {
			smtp_parse_seterr(err, 501, is_rcpt ? "5.1.3" : "5.1.7",
			    "Error: the null address <> is not allowed here");
			return -1;
		}
		out->is_null = true;
		p++;
		goto done;
	}
	/*
	 * RFC 5321 4.5.1: every server must accept mail for "Postmaster"
	 * without a domain, case-insensitively; only as a recipient.
	 */
	if (is_rcpt && strncasecmp(p, "postmaster>", 11) == 0) {
		str_copy(out->addr, "Postmaster", sizeof out->addr);
		str_copy(out->local, "Postmaster", sizeof out->local);
		p += 11;
		goto done;
	}
	if (*p == '@') {
		rc = smtp_parse_source_route(&p, smtputf8, &why);
		if (rc != 0)
			return smtp_parse_path_fail(err, is_rcpt, start, rc, why);
		out->had_source_route = true;
	}
	rc = smtp_parse_local(&p, smtputf8, out, &why);
	if (rc != 0)
		return smtp_parse_path_fail(err, is_rcpt, start, rc, why);
	if (*p != '@')
		return smtp_parse_path_fail(err, is_rcpt, start, -1,
		    *p == '>' ? "missing @domain" : smtp_parse_why_char((unsigned char)*p));
	p++;
	if (*p == '[') {
		rc = smtp_parse_addr_literal(&p, dom, sizeof dom, &why);
		out->is_address_literal = true;
	} else {
		const char *d = p;

		rc = smtp_parse_domain(&p, smtputf8 ? SMTP_PARSE_DOM_UTF8 : 0, &why);
		if (rc == 0) {
			str_copyn(dom, d, (size_t)(p - d), sizeof dom);
			str_lower(dom);
		}
	}
	if (rc != 0)
		return smtp_parse_path_fail(err, is_rcpt, start, rc, why);
	if (*p != '>') {
		/* "user@other@us" lands here: only one unquoted '@' is allowed. */
		return smtp_parse_path_fail(err, is_rcpt, start, -1,
		    *p == '@' ? "more than one @ outside quotes" :
		    *p == '\0' ? "missing >" : smtp_parse_why_char((unsigned char)*p));
	}
	p++;
	/*
	 * 4.5.3.1.3: the whole path, "<" and ">" and any source route
	 * included, is at most 256 octets.
	 */
	if ((size_t)(p - start) + 1 > SMTP_PATH_MAX) {
		smtp_parse_seterr(err, 501, is_rcpt ? "5.1.3" : "5.1.7",
		    "Error: address longer than %d octets", SMTP_PATH_MAX);
		return -1;
	}
	str_copy(out->domain, dom, sizeof out->domain);
	for (dlen = 0; dom[dlen] != '\0'; dlen++)
		if ((unsigned char)dom[dlen] >= 0x80)
			out->is_utf8 = true;
	llen = strlen(out->local);
	/* Fits: the path bound above keeps local + '@' + domain under 256. */
	memcpy(out->addr, out->local, llen);
	out->addr[llen] = '@';
	memcpy(out->addr + llen + 1, dom, dlen + 1);
done:
	if (*p != '\0' && *p != ' ') {
		smtp_parse_seterr(err, 501, "5.5.4",
		    "Error: a space must separate the address from its parameters");
		return -1;
	}
	if (rest != NULL)
		*rest = p;
	return 0;
}

/* ---------------------------------------------------------- parameters */

struct smtp_parse_param {
	const char *kw;
	size_t kwlen;
	const char *val;   /* NULL when there is no '=' */
	size_t vallen;
};

/*
 * Next esmtp-param = esmtp-keyword ["=" esmtp-value] (RFC 5321 4.1.2):
 * keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"), value = 1*(%d33-60 /
 * %d62-126), plus UTF-8 under RFC 6531 (the value parsers decide).
 * Returns 1 with *pr, 0 at the end, -1 with err.
 */
static int smtp_parse_next_param(const char **pp, struct smtp_parse_param *pr,
    struct smtp_parse_error *err)
{
	const char *p = *pp;
	size_t i;

	while (*p == ' ')
		p++;
	if (*p == '\0') {
		*pp = p;
		return 0;
	}
	pr->kw = p;
	while (smtp_parse_is_alnum((unsigned char)*p) || *p == '-')
		p++;
	pr->kwlen = (size_t)(p - pr->kw);
	pr->val = NULL;
	pr->vallen = 0;
	if (pr->kwlen == 0 || pr->kw[0] == '-' || (*p != '\0' && *p != ' ' && *p != '=')) {
		smtp_parse_seterr(err, 501, "5.5.4", "Error: bad parameter syntax");
		return -1;
	}
	if (*p == '=') {
		pr->val = ++p;
		while (*p != '\0' && *p != ' ')
			p++;
		pr->vallen = (size_t)(p - pr->val);
		for (i = 0; i < pr->vallen; i++) {
			unsigned char c = (unsigned char)pr->val[i];

			if (c < 0x21 || c == '=' || c == 0x7f) {
				smtp_parse_seterr(err, 501, "5.5.4",
				    "Error: bad value for parameter %.*s", (int)pr->kwlen, pr->kw);
				return -1;
			}
		}
		if (pr->vallen == 0) {
			smtp_parse_seterr(err, 501, "5.5.4",
			    "Error: empty value for parameter %.*s", (int)pr->kwlen, pr->kw);
			return -1;
		}
	}
	*pp = p;
	return 1;
}

static bool smtp_parse_kw_is(const struct smtp_parse_param *pr, const char *name)
{
	return strlen(name) == pr->kwlen && strncasecmp(pr->kw, name, pr->kwlen) == 0;
}

static bool smtp_parse_val_is(const char *val, size_t len, const char *name)
{
	return strlen(name) == len && strncasecmp(val, name, len) == 0;
}

/*
 * Looks pr up in names: 0 with *idx, or -1 with err for an unknown (555)
 * or repeated (501) keyword, or a missing or unexpected value (501).
 * takes_value[i] says whether names[i] needs "=value".
 */
static int smtp_parse_param_lookup(const struct smtp_parse_param *pr,
    const char *const *names, const bool *takes_value, size_t n, unsigned *seen,
    size_t *idx, struct smtp_parse_error *err)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (smtp_parse_kw_is(pr, names[i]))
			break;
	if (i == n) {
		/* The keyword holds only letters, digits and '-': safe to echo. */
		smtp_parse_seterr(err, 555, "5.5.4", "Error: unsupported parameter %.*s",
		    pr->kwlen > 40 ? 40 : (int)pr->kwlen, pr->kw);
		return -1;
	}
	if (*seen & (1u << i)) {
		smtp_parse_seterr(err, 501, "5.5.4", "Error: duplicate parameter %s", names[i]);
		return -1;
	}
	*seen |= 1u << i;
	if (takes_value[i] && pr->val == NULL) {
		smtp_parse_seterr(err, 501, "5.5.4", "Error: %s requires a value", names[i]);
		return -1;
	}
	if (!takes_value[i] && pr->val != NULL) {
		smtp_parse_seterr(err, 501, "5.5.4", "Error: %s takes no value", names[i]);
		return -1;
	}
	*idx = i;
	return 0;
}

/*
 * Decodes an xtext value into out and refuses control characters: ENVID
 * and ORCPT end up in DSN header fields (RFC 3464), where a decoded CR or
 * LF would let a client inject header lines.
 */
static int smtp_parse_xtext_printable(const char *in, size_t inlen, char *out, size_t outlen)
{
	size_t i;

	if (smtp_parse_xtext_decode(in, inlen, out, outlen) != 0)
		return -1;
	for (i = 0; out[i] != '\0'; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			return -1;
	return 0;
}

enum {
	SMTP_PARSE_MP_SIZE,
	SMTP_PARSE_MP_BODY,
	SMTP_PARSE_MP_SMTPUTF8,
	SMTP_PARSE_MP_RET,
	SMTP_PARSE_MP_ENVID,
	SMTP_PARSE_MP_AUTH,
	SMTP_PARSE_MP_COUNT,
};

int smtp_parse_mail_params(const char *s, struct smtp_mail_params *out,
    struct smtp_parse_error *err)
{
	static const char *const names[SMTP_PARSE_MP_COUNT] = {
		"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH",
	};
	static const bool takes_value[SMTP_PARSE_MP_COUNT] = {
		true, true, false, true, true, true,
	};
	struct smtp_parse_param pr;
	unsigned seen = 0;
	size_t idx;
	int rc;

	memset(out, 0, sizeof *out);
	out->body = QUEUE_BODY_UNSET;
	out->ret = QUEUE_RET_UNSET;
	while ((rc = smtp_parse_next_param(&s, &pr, err)) == 1) {
		if (smtp_parse_param_lookup(&pr, names, takes_value, SMTP_PARSE_MP_COUNT,
		    &seen, &idx, err) != 0)
			return -1;
		switch (idx) {
		case SMTP_PARSE_MP_SIZE:
			/* RFC 1870: size-value = 1*20DIGIT. */
			if (smtp_parse_u64(pr.val, pr.vallen, &out->size) != 0)
				goto bad;
			out->has_size = true;
			break;
		case SMTP_PARSE_MP_BODY:
			/* RFC 6152 and RFC 3030 section 3. */
			if (smtp_parse_val_is(pr.val, pr.vallen, "7BIT"))
				out->body = QUEUE_BODY_7BIT;
			else if (smtp_parse_val_is(pr.val, pr.vallen, "8BITMIME"))
				out->body = QUEUE_BODY_8BITMIME;
			else if (smtp_parse_val_is(pr.val, pr.vallen, "BINARYMIME"))
				out->body = QUEUE_BODY_BINARYMIME;
			else
				goto bad;
			break;
		case SMTP_PARSE_MP_SMTPUTF8:
			out->smtputf8 = true;
			break;
		case SMTP_PARSE_MP_RET:
			/* RFC 3461 section 4.3. */
			if (smtp_parse_val_is(pr.val, pr.vallen, "FULL"))
				out->ret = QUEUE_RET_FULL;
			else if (smtp_parse_val_is(pr.val, pr.vallen, "HDRS"))
				out->ret = QUEUE_RET_HDRS;
			else
				goto bad;
			break;
		case SMTP_PARSE_MP_ENVID:
			/* RFC 3461 section 4.4: at most 100 characters. */
			if (smtp_parse_xtext_printable(pr.val, pr.vallen, out->envid,
			    sizeof out->envid) != 0)
				goto bad;
			out->has_envid = true;
			break;
		case SMTP_PARSE_MP_AUTH: {
			/*
			 * RFC 4954 section 5: AUTH=<mailbox> in xtext. Without an
			 * authenticated session we must accept it and may
			 * ignore it; the syntax is still checked.
			 */
			char tmp[SMTP_CMDLINE_MAX + 1];

			if (smtp_parse_xtext_decode(pr.val, pr.vallen, tmp, sizeof tmp) != 0)
				goto bad;
			break;
		}
		}
	}
	return rc;
bad:
	smtp_parse_seterr(err, 501, "5.5.4", "Error: bad value for parameter %s", names[idx]);
	return -1;
}

/* RFC 3461 section 4.1: "NEVER" alone, or a list of SUCCESS/FAILURE/DELAY. */
static int smtp_parse_notify(const char *v, size_t len, unsigned *bits)
{
	static const struct {
		const char *name;
		unsigned bit;
	} words[] = {
		{ "NEVER", QUEUE_NOTIFY_NEVER },
		{ "SUCCESS", QUEUE_NOTIFY_SUCCESS },
		{ "FAILURE", QUEUE_NOTIFY_FAILURE },
		{ "DELAY", QUEUE_NOTIFY_DELAY },
	};
	const char *end = v + len;
	unsigned n = 0, items = 0;
	size_t i;

	for (;;) {
		const char *comma = memchr(v, ',', (size_t)(end - v));
		size_t wl = (size_t)((comma != NULL ? comma : end) - v);

		for (i = 0; i < sizeof words / sizeof words[0]; i++)
			if (smtp_parse_val_is(v, wl, words[i].name))
				break;
		if (i == sizeof words / sizeof words[0] || (n & words[i].bit))
			return -1;
		n |= words[i].bit;
		items++;
		if (comma == NULL)
			break;
		v = comma + 1;
	}
	if ((n & QUEUE_NOTIFY_NEVER) && items > 1)
		return -1;
	*bits = n;
	return 0;
}

/*
 * RFC 3461 section 4.2: ORCPT=addr-type ";" xtext, addr-type an RFC 822
 * atom. Stored as "type;decoded"; that whole text must fit in 500 octets.
 */
static int smtp_parse_orcpt(const char *v, size_t len, char *out, size_t outlen)
{
	const char *semi = memchr(v, ';', len);
	size_t tl, i;

	if (semi == NULL || semi == v)
		return -1;
	tl = (size_t)(semi - v);
	for (i = 0; i < tl; i++)
		if (!smtp_parse_is_atext((unsigned char)v[i]))
			return -1;
	if (tl + 2 > outlen)
		return -1;
	memcpy(out, v, tl + 1);
	if (semi + 1 == v + len)
		return -1; /* an empty address is no original recipient */
	return smtp_parse_xtext_printable(semi + 1, len - tl - 1, out + tl + 1,
	    outlen - tl - 1);
}

int smtp_parse_rcpt_params(const char *s, struct smtp_rcpt_params *out,
    struct smtp_parse_error *err)
{
	static const char *const names[] = { "NOTIFY", "ORCPT" };
	static const bool takes_value[] = { true, true };
	struct smtp_parse_param pr;
	unsigned seen = 0;
	size_t idx;
	int rc;

	memset(out, 0, sizeof *out);
	while ((rc = smtp_parse_next_param(&s, &pr, err)) == 1) {
		if (smtp_parse_param_lookup(&pr, names, takes_value, 2, &seen, &idx, err) != 0)
			return -1;
		if (idx == 0) {
			if (smtp_parse_notify(pr.val, pr.vallen, &out->notify) != 0)
				goto bad;
		} else {
			if (smtp_parse_orcpt(pr.val, pr.vallen, out->orcpt, sizeof out->orcpt) != 0)
				goto bad;
			out->has_orcpt = true;
		}
	}
	return rc;
bad:
	out->orcpt[0] = '\0';
	smtp_parse_seterr(err, 501, "5.5.4", "Error: bad value for parameter %s", names[idx]);
	return -1;
}

/* --------------------------------------------------------------- xtext */

int smtp_parse_xtext_decode(const char *in, size_t inlen, char *out, size_t outlen)
{
	size_t i, o = 0;

	if (outlen == 0)
		return -1;
	for (i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '+') {
			int hi, lo;

			if (inlen - i < 3)
				return -1;
			hi = smtp_parse_xdigit((unsigned char)in[i + 1]);
			lo = smtp_parse_xdigit((unsigned char)in[i + 2]);
			/* "+00" would cut the C string short: refused. */
			if (hi < 0 || lo < 0 || (hi | lo) == 0)
				return -1;
			c = (unsigned char)(hi * 16 + lo);
			i += 2;
		} else if (c < 33 || c > 126 || c == '=') {
			return -1;
		}
		if (o + 1 >= outlen)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

int smtp_parse_xtext_encode(const char *in, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	if (outlen == 0)
		return -1;
	for (; *in != '\0'; in++) {
		unsigned char c = (unsigned char)*in;

		if (c >= 33 && c <= 126 && c != '+' && c != '=') {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= outlen)
				return -1;
			out[o++] = '+';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		}
	}
	out[o] = '\0';
	return 0;
}

/* ---------------------------------------------------------- BDAT, HELO */

int smtp_parse_bdat(const char *arg, uint64_t *size, bool *last,
    struct smtp_parse_error *err)
{
	const char *p = arg, *d;

	*last = false;
	while (*p == ' ')
		p++;
	d = p;
	while (smtp_parse_is_digit((unsigned char)*p))
		p++;
	/* RFC 3030 section 2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ]. */
	if (p == d || (*p != '\0' && *p != ' '))
		goto bad;
	if (smtp_parse_u64(d, (size_t)(p - d), size) != 0) {
		smtp_parse_seterr(err, 501, "5.5.4", "Error: BDAT chunk size too large");
		return -1;
	}
	while (*p == ' ')
		p++;
	if (strncasecmp(p, "LAST", 4) == 0) {
		*last = true;
		p += 4;
		while (*p == ' ')
			p++;
	}
	if (*p != '\0')
		goto bad;
	return 0;
bad:
	smtp_parse_seterr(err, 501, "5.5.4", "Error: syntax: BDAT <size> [LAST]");
	return -1;
}

int smtp_parse_helo(const char *arg, char *out, size_t outlen,
    struct smtp_parse_error *err)
{
	const char *p = arg, *start, *why = "";
	char lit[SMTP_DOMAIN_MAX + 1];
	size_t len;
	int rc;

	while (*p == ' ')
		p++;
	start = p;
	if (*p == '\0') {
		smtp_parse_seterr(err, 501, "5.5.4", "Error: HELO/EHLO requires a domain name");
		return -1;
	}
	if (*p == '[')
		rc = smtp_parse_addr_literal(&p, lit, sizeof lit, &why);
	else
		rc = smtp_parse_domain(&p, SMTP_PARSE_DOM_UNDERSCORE, &why);
	if (rc == 0 && *p != '\0' && *p != ' ') {
		rc = -1;
		why = *p == '.' ? "domain ends with a dot" : smtp_parse_why_char((unsigned char)*p);
	}
	len = (size_t)(p - start);
	while (rc == 0 && *p == ' ')
		p++;
	if (rc == 0 && *p != '\0') {
		rc = -1;
		why = "only one name is allowed";
	}
	if (rc == 0 && len + 1 > outlen) {
		rc = -1;
		why = "name too long";
	}
	if (rc != 0) {
		char echo[SMTP_PARSE_ECHO_MAX + 4];

		if (rc == SMTP_PARSE_E_NONASCII)
			why = "non-ASCII name";
		smtp_parse_echo(start, '\0', echo, sizeof echo);
		smtp_parse_seterr(err, 501, "5.5.4", "Error: bad HELO/EHLO name '%s': %s",
		    echo, why);
		return -1;
	}
	str_copyn(out, start, len, outlen);
	return 0;
}

/* ------------------------------------------------------------ commands */

enum smtp_parse_argkind {
	SMTP_PARSE_ARG_NONE,     /* DATA, RSET, QUIT, STARTTLS */
	SMTP_PARSE_ARG_OPTIONAL, /* NOOP, HELP */
	SMTP_PARSE_ARG_REQUIRED, /* HELO, EHLO, VRFY, EXPN, BDAT, AUTH */
	SMTP_PARSE_ARG_FROM,     /* MAIL FROM: */
	SMTP_PARSE_ARG_TO,       /* RCPT TO: */
};

static const struct smtp_parse_verb {
	const char *name;
	enum smtp_cmd cmd;
	enum smtp_parse_argkind arg;
	const char *missing; /* reply text when a required argument is absent */
} smtp_parse_verbs[] = {
	{ "HELO", SMTP_CMD_HELO, SMTP_PARSE_ARG_REQUIRED, "Error: HELO requires a domain name" },
	{ "EHLO", SMTP_CMD_EHLO, SMTP_PARSE_ARG_REQUIRED, "Error: EHLO requires a domain name" },
	{ "MAIL", SMTP_CMD_MAIL, SMTP_PARSE_ARG_FROM, "Error: syntax: MAIL FROM:<address>" },
	{ "RCPT", SMTP_CMD_RCPT, SMTP_PARSE_ARG_TO, "Error: syntax: RCPT TO:<address>" },
	{ "DATA", SMTP_CMD_DATA, SMTP_PARSE_ARG_NONE, NULL },
	{ "BDAT", SMTP_CMD_BDAT, SMTP_PARSE_ARG_REQUIRED, "Error: syntax: BDAT <size> [LAST]" },
	{ "RSET", SMTP_CMD_RSET, SMTP_PARSE_ARG_NONE, NULL },
	{ "NOOP", SMTP_CMD_NOOP, SMTP_PARSE_ARG_OPTIONAL, NULL },
	{ "QUIT", SMTP_CMD_QUIT, SMTP_PARSE_ARG_NONE, NULL },
	{ "HELP", SMTP_CMD_HELP, SMTP_PARSE_ARG_OPTIONAL, NULL },
	{ "VRFY", SMTP_CMD_VRFY, SMTP_PARSE_ARG_REQUIRED, "Error: VRFY requires an argument" },
	{ "EXPN", SMTP_CMD_EXPN, SMTP_PARSE_ARG_REQUIRED, "Error: EXPN requires an argument" },
	{ "STARTTLS", SMTP_CMD_STARTTLS, SMTP_PARSE_ARG_NONE, NULL },
	{ "AUTH", SMTP_CMD_AUTH, SMTP_PARSE_ARG_REQUIRED, "Error: AUTH requires a mechanism name" },
};

const char *smtp_cmd_name(enum smtp_cmd cmd)
{
	size_t i;

	for (i = 0; i < sizeof smtp_parse_verbs / sizeof smtp_parse_verbs[0]; i++)
		if (smtp_parse_verbs[i].cmd == cmd)
			return smtp_parse_verbs[i].name;
	return "UNKNOWN";
}

int smtp_parse_command(const char *line, size_t len, enum smtp_cmd *cmd,
    const char **arg, struct smtp_parse_error *err)
{
	const struct smtp_parse_verb *v = NULL;
	size_t i, vl;

	*cmd = SMTP_CMD_UNKNOWN;
	*arg = line + len;
	if (memchr(line, '\0', len) != NULL) {
		smtp_parse_seterr(err, 500, "5.5.2", "Error: NUL character in command");
		return -1;
	}
	if (len > SMTP_CMDLINE_MAX - 2) {
		smtp_parse_seterr(err, 500, "5.5.2", "Error: line too long");
		return -1;
	}
	for (vl = 0; vl < len && line[vl] != ' '; vl++)
		;
	for (i = 0; i < sizeof smtp_parse_verbs / sizeof smtp_parse_verbs[0]; i++) {
		if (strlen(smtp_parse_verbs[i].name) == vl &&
		    strncasecmp(line, smtp_parse_verbs[i].name, vl) == 0) {
			v = &smtp_parse_verbs[i];
			break;
		}
	}
	if (v == NULL) {
		smtp_parse_seterr(err, 500, "5.5.2", "Error: command not recognized");
		return -1;
	}
	*cmd = v->cmd;
	/* One SP separates verb and argument; more are tolerated. */
	for (i = vl; i < len && line[i] == ' '; i++)
		;
	switch (v->arg) {
	case SMTP_PARSE_ARG_NONE:
		/* Trailing spaces are not an argument (Postfix agrees). */
		if (i < len) {
			smtp_parse_seterr(err, 501, "5.5.4", "Error: %s takes no argument",
			    v->name);
			return -1;
		}
		break;
	case SMTP_PARSE_ARG_OPTIONAL:
		break;
	case SMTP_PARSE_ARG_REQUIRED:
		if (i == len) {
			smtp_parse_seterr(err, 501, "5.5.4", "%s", v->missing);
			return -1;
		}
		break;
	case SMTP_PARSE_ARG_FROM:
	case SMTP_PARSE_ARG_TO: {
		/* The keyword is case-insensitive like the verb (RFC 5321 2.4). */
		const char *kw = v->arg == SMTP_PARSE_ARG_FROM ? "FROM:" : "TO:";
		size_t kl = strlen(kw);

		if (len - i < kl || strncasecmp(line + i, kw, kl) != 0) {
			smtp_parse_seterr(err, 501, "5.5.4", "%s", v->missing);
			return -1;
		}
		i += kl;
		break;
	}
	}
	*arg = line + i;
	return 0;
}
