/*
 * rfc5322: just enough of RFC 5322 to check who a message claims to be
 * from.
 *
 * Entry points: rfc5322_scan_init and rfc5322_scan_line (an incremental
 * scanner of the header section that keeps the first From: field body,
 * unfolded, and counts From: and the other fields of enum rfc5322_field),
 * rfc5322_field_name, rfc5322_parse_address_list (the
 * addr-specs of an address-list field body, canonical per common/addr.h),
 * rfc5322_free_list.
 *
 * The scanner sees lines already dot-unstuffed and stripped of CRLF. It
 * unfolds by appending continuation lines as they are (RFC 5322 2.2.3:
 * unfolding removes only the CRLF before the WSP). A field name may be
 * followed by WSP before its colon (RFC 5322 4.5, obs-optional) and is
 * still counted: a MUA that shows "From :" as the author must not let a
 * second author through our one-From check.
 *
 * The parser follows RFC 5322 3.4 with RFC 6532's UTF-8: display names of
 * atoms and quoted strings (encoded-words are just atoms), obs-phrase's
 * "." inside a name ("John Q. Public"), angle addresses, bare addr-specs,
 * nested comments with quoted-pairs anywhere CFWS may stand, and groups
 * ("name: a@b, c@d;", possibly empty). Refused, as obsolete or as not
 * meaning one plain mailbox: routes inside angle brackets, address
 * literals, CFWS inside a dot-atom, empty list elements, nested groups,
 * CR/LF or other control characters (folding is already removed).
 *
 * OWNERSHIP: the scanner keeps copies in the caller's struct; the parser
 * returns an array of fresh strings that the caller frees with
 * rfc5322_free_list.
 * THREADS: any; no global state.
 * ERRORS: the scanner records flags; the parser returns -EINVAL with *why
 * a static English reason.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/addr.h"
#include "common/rfc5322.h"
#include "common/util.h"
#include "common/xmalloc.h"

/* ------------------------------------------------------------ scanner */

static const char *const rfc5322_field_names[RFC5322_F_COUNT] = {
	[RFC5322_F_FROM] = "From",
	[RFC5322_F_SENDER] = "Sender",
	[RFC5322_F_SUBJECT] = "Subject",
	[RFC5322_F_DATE] = "Date",
	[RFC5322_F_MESSAGE_ID] = "Message-ID",
	[RFC5322_F_TO] = "To",
	[RFC5322_F_CC] = "Cc",
};

const char *rfc5322_field_name(enum rfc5322_field f)
{
	return (unsigned)f < RFC5322_F_COUNT ? rfc5322_field_names[f] : "?";
}

/* Counts a field whose name (without the colon or WSP) is one we count. */
static void rfc5322_scan_count(struct rfc5322_scan *sc, const char *name, size_t len)
{
	for (size_t i = 0; i < RFC5322_F_COUNT; i++) {
		const char *want = rfc5322_field_names[i];

		if (strlen(want) == len && strncasecmp(name, want, len) == 0) {
			sc->counts[i]++;
			return;
		}
	}
}

void rfc5322_scan_init(struct rfc5322_scan *sc)
{
	memset(sc, 0, sizeof *sc);
}

static void rfc5322_scan_append_from(struct rfc5322_scan *sc, const char *p, size_t n)
{
	size_t room = RFC5322_FROM_MAX - sc->from_len;

	if (n > room) {
		n = room;
		sc->from_truncated = true;
	}
	memcpy(sc->from + sc->from_len, p, n);
	sc->from_len += n;
	sc->from[sc->from_len] = '\0';
}

void rfc5322_scan_line(struct rfc5322_scan *sc, const char *line, size_t len)
{
	bool first = sc->seen == 0;
	size_t colon, name_len;

	if (sc->done)
		return;
	/* Count the CRLF the wire carried, as a size limit on the message would. */
	if (sc->seen <= RFC5322_HEADER_MAX)
		sc->seen += len + 2;
	if (sc->seen > RFC5322_HEADER_MAX)
		sc->too_large = true;

	/* RFC 5322 2.1: the first empty line ends the header section. */
	if (len == 0) {
		sc->done = true;
		sc->in_from = false;
		return;
	}

	/* RFC 5322 2.2.3: a line starting with WSP continues the field above. */
	if (line[0] == ' ' || line[0] == '\t') {
		if (first)
			sc->malformed = true;
		else if (sc->in_from)
			rfc5322_scan_append_from(sc, line, len);
		return;
	}

	sc->in_from = false;
	/* RFC 5322 2.2: field-name = 1*ftext (printable US-ASCII but ':'). */
	for (colon = 0; colon < len && line[colon] != ':'; colon++)
		;
	if (colon == len) {
		sc->malformed = true;
		return;
	}
	name_len = colon;
	while (name_len > 0 && (line[name_len - 1] == ' ' || line[name_len - 1] == '\t'))
		name_len--;
	if (name_len == 0) {
		sc->malformed = true;
		return;
	}
	for (size_t i = 0; i < name_len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 33 || c > 126) {
			sc->malformed = true;
			return;
		}
	}
	rfc5322_scan_count(sc, line, name_len);
	if (name_len == 4 && strncasecmp(line, "From", 4) == 0) {
		sc->from_count++;
		if (sc->from_count == 1) {
			sc->in_from = true;
			rfc5322_scan_append_from(sc, line + colon + 1, len - colon - 1);
		}
	}
}

/* ------------------------------------------------------------- parser */

struct rfc5322_p {
	const char *s;          /* NUL-terminated copy of the field body */
	size_t len;
	size_t pos;
	const char *why;
	char **list;
	size_t n;
	size_t cap;
};

static int rfc5322_fail(struct rfc5322_p *p, const char *why)
{
	if (p->why == NULL)
		p->why = why;
	return -EINVAL;
}

static unsigned char rfc5322_peek(const struct rfc5322_p *p)
{
	return p->pos < p->len ? (unsigned char)p->s[p->pos] : '\0';
}

static bool rfc5322_at_end(const struct rfc5322_p *p)
{
	return p->pos >= p->len;
}

/* RFC 5322 3.2.3 atext (ASCII part; UTF-8 is RFC 6532's addition). */
static bool rfc5322_is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* Steps over one well-formed UTF-8 sequence (RFC 6532 3.2, RFC 3629). */
static int rfc5322_skip_utf8(struct rfc5322_p *p)
{
	size_t n = str_utf8_seq_len((const unsigned char *)p->s + p->pos);

	if (n == 0 || n > p->len - p->pos)
		return rfc5322_fail(p, "header is not well-formed UTF-8");
	p->pos += n;
	return 0;
}

/*
 * comment = "(" *([FWS] ccontent) [FWS] ")", ccontent = ctext /
 * quoted-pair / comment (RFC 5322 3.2.2). Depth is a counter, not
 * recursion, so nesting cannot exhaust the stack.
 */
static int rfc5322_skip_comment(struct rfc5322_p *p)
{
	size_t depth = 0;
	unsigned char c;

	for (;;) {
		if (rfc5322_at_end(p))
			return rfc5322_fail(p, "unterminated comment (missing ')')");
		c = rfc5322_peek(p);
		if (c == '(') {
			depth++;
			p->pos++;
		} else if (c == ')') {
			p->pos++;
			if (--depth == 0)
				return 0;
		} else if (c == '\\') {
			p->pos++;
			if (rfc5322_at_end(p))
				return rfc5322_fail(p, "unterminated comment (missing ')')");
			c = rfc5322_peek(p);
			if (c >= 0x80) {
				if (rfc5322_skip_utf8(p) < 0)
					return -EINVAL;
			} else if (c == '\t' || (c >= 32 && c < 127)) {
				p->pos++;
			} else {
				return rfc5322_fail(p, "control character in a comment");
			}
		} else if (c >= 0x80) {
			if (rfc5322_skip_utf8(p) < 0)
				return -EINVAL;
		} else if (c == '\t' || (c >= 32 && c < 127)) {
			p->pos++;
		} else {
			return rfc5322_fail(p, "control character in a comment");
		}
	}
}

/* CFWS = any run of WSP and comments (RFC 5322 3.2.2). */
static int rfc5322_skip_cfws(struct rfc5322_p *p)
{
	for (;;) {
		unsigned char c = rfc5322_peek(p);

		if (rfc5322_at_end(p))
			return 0;
		if (c == ' ' || c == '\t')
			p->pos++;
		else if (c == '(') {
			if (rfc5322_skip_comment(p) < 0)
				return -EINVAL;
		} else
			return 0;
	}
}

/*
 * quoted-string = DQUOTE *([FWS] qcontent) [FWS] DQUOTE (RFC 5322 3.2.4),
 * with UTF-8 allowed in qtext and quoted-pair (RFC 6532 3.2). On return
 * p->pos is past the closing quote.
 */
static int rfc5322_skip_quoted(struct rfc5322_p *p)
{
	unsigned char c;

	p->pos++;
	for (;;) {
		if (rfc5322_at_end(p))
			return rfc5322_fail(p, "unterminated quoted string (missing '\"')");
		c = rfc5322_peek(p);
		if (c == '"') {
			p->pos++;
			return 0;
		}
		if (c == '\\') {
			p->pos++;
			if (rfc5322_at_end(p))
				return rfc5322_fail(p, "unterminated quoted string (missing '\"')");
			c = rfc5322_peek(p);
		}
		if (c >= 0x80) {
			if (rfc5322_skip_utf8(p) < 0)
				return -EINVAL;
		} else if (c == '\t' || (c >= 32 && c < 127)) {
			p->pos++;
		} else {
			return rfc5322_fail(p, "control character in a quoted string");
		}
	}
}

/* 1*atext (UTF-8 included); 0 when none was there. */
static int rfc5322_skip_atom(struct rfc5322_p *p, bool *any)
{
	*any = false;
	for (;;) {
		unsigned char c = rfc5322_peek(p);

		if (rfc5322_at_end(p))
			return 0;
		if (c >= 0x80) {
			if (rfc5322_skip_utf8(p) < 0)
				return -EINVAL;
		} else if (rfc5322_is_atext(c)) {
			p->pos++;
		} else {
			return 0;
		}
		*any = true;
	}
}

/* dot-atom-text = 1*atext *("." 1*atext), with no CFWS inside. */
static int rfc5322_skip_dot_atom_text(struct rfc5322_p *p, const char *what_bad)
{
	bool any;

	for (;;) {
		if (rfc5322_skip_atom(p, &any) < 0)
			return -EINVAL;
		if (!any)
			return rfc5322_fail(p, what_bad);
		if (rfc5322_peek(p) != '.' || rfc5322_at_end(p))
			return 0;
		p->pos++;
	}
}

static void rfc5322_push(struct rfc5322_p *p, const char *addr)
{
	if (p->n == p->cap) {
		p->cap = p->cap ? 2 * p->cap : 4;
		p->list = xreallocarray(p->list, p->cap, sizeof *p->list);
	}
	p->list[p->n++] = xstrdup(addr);
}

/* addr-spec = local-part "@" domain, each a dot-atom or quoted-string. */
static int rfc5322_addr_spec(struct rfc5322_p *p)
{
	char canon[ADDR_MAX + 1];
	char *raw;
	size_t lstart, lend, dstart, dend, rawlen;
	const char *why = NULL;
	unsigned char c;
	int rc;

	if (rfc5322_skip_cfws(p) < 0)
		return -EINVAL;
	c = rfc5322_peek(p);
	lstart = p->pos;
	if (rfc5322_at_end(p))
		return rfc5322_fail(p, "empty address");
	if (c == '"') {
		if (rfc5322_skip_quoted(p) < 0)
			return -EINVAL;
	} else if (c == '@') {
		return rfc5322_fail(p, "address has an empty local part");
	} else if (c >= 0x80 || rfc5322_is_atext(c)) {
		if (rfc5322_skip_dot_atom_text(p, "local part has an empty atom (stray '.')") < 0)
			return -EINVAL;
	} else {
		return rfc5322_fail(p, "unexpected character where an address should start");
	}
	lend = p->pos;
	if (rfc5322_skip_cfws(p) < 0)
		return -EINVAL;
	if (rfc5322_peek(p) != '@' || rfc5322_at_end(p))
		return rfc5322_fail(p, "address has no @domain");
	p->pos++;
	if (rfc5322_skip_cfws(p) < 0)
		return -EINVAL;
	if (rfc5322_peek(p) == '[' && !rfc5322_at_end(p))
		return rfc5322_fail(p, "address literals such as user@[192.0.2.1] are not accepted; use a domain name");
	dstart = p->pos;
	if (rfc5322_at_end(p))
		return rfc5322_fail(p, "address has an empty domain");
	if (rfc5322_skip_dot_atom_text(p, "address has a malformed domain") < 0)
		return -EINVAL;
	dend = p->pos;
	if (rfc5322_skip_cfws(p) < 0)
		return -EINVAL;
	if (rfc5322_peek(p) == '@' && !rfc5322_at_end(p))
		return rfc5322_fail(p, "address has more than one @");

	rawlen = (lend - lstart) + 1 + (dend - dstart);
	raw = xmalloc(rawlen + 1);
	memcpy(raw, p->s + lstart, lend - lstart);
	raw[lend - lstart] = '@';
	memcpy(raw + (lend - lstart) + 1, p->s + dstart, dend - dstart);
	raw[rawlen] = '\0';
	rc = addr_canon(raw, canon, sizeof canon, &why);
	free(raw);
	if (rc < 0)
		return rfc5322_fail(p, why != NULL ? why : "malformed address");
	rfc5322_push(p, canon);
	return 0;
}

/*
 * phrase = 1*word / obs-phrase (RFC 5322 3.2.5, 4.1): words are atoms
 * and quoted strings; obs-phrase also lets "." follow the first word,
 * which real display names ("John Q. Public") use.
 */
static int rfc5322_skip_phrase(struct rfc5322_p *p, size_t *words)
{
	bool any;

	*words = 0;
	for (;;) {
		unsigned char c;

		if (rfc5322_skip_cfws(p) < 0)
			return -EINVAL;
		if (rfc5322_at_end(p))
			return 0;
		c = rfc5322_peek(p);
		if (c == '"') {
			if (rfc5322_skip_quoted(p) < 0)
				return -EINVAL;
		} else if (c >= 0x80 || rfc5322_is_atext(c)) {
			if (rfc5322_skip_atom(p, &any) < 0)
				return -EINVAL;
		} else if (c == '.' && *words > 0) {
			p->pos++;
			continue;
		} else {
			return 0;
		}
		(*words)++;
	}
}

/* angle-addr = [CFWS] "<" addr-spec ">" [CFWS]; p->pos is at '<'. */
static int rfc5322_angle_addr(struct rfc5322_p *p)
{
	p->pos++;
	if (rfc5322_skip_cfws(p) < 0)
		return -EINVAL;
	if (rfc5322_at_end(p))
		return rfc5322_fail(p, "unterminated <address> (missing '>')");
	if (rfc5322_peek(p) == '>')
		return rfc5322_fail(p, "empty <> address");
	if (rfc5322_peek(p) == '@')
		return rfc5322_fail(p, "source routes (<@host:user@domain>) are not accepted");
	if (rfc5322_addr_spec(p) < 0)
		return -EINVAL;
	if (rfc5322_at_end(p))
		return rfc5322_fail(p, "unterminated <address> (missing '>')");
	if (rfc5322_peek(p) != '>')
		return rfc5322_fail(p, "unexpected text inside <address>");
	p->pos++;
	return rfc5322_skip_cfws(p);
}

/*
 * address = mailbox / group; mailbox = name-addr / addr-spec;
 * group = display-name ":" [group-list] ";" [CFWS] (RFC 5322 3.4).
 * A phrase is read first; what follows it tells which form this is, and
 * for a bare addr-spec we go back and read it as one.
 */
static int rfc5322_address(struct rfc5322_p *p, bool allow_group)
{
	size_t start = p->pos, words;
	unsigned char c;

	if (rfc5322_skip_phrase(p, &words) < 0)
		return -EINVAL;
	c = rfc5322_peek(p);
	if (c == '<' && !rfc5322_at_end(p))
		return rfc5322_angle_addr(p);
	if (c != ':' || rfc5322_at_end(p)) {
		p->pos = start;
		return rfc5322_addr_spec(p);
	}
	if (!allow_group)
		return rfc5322_fail(p, "groups cannot be nested");
	if (words == 0)
		return rfc5322_fail(p, "group has no name before ':'");
	p->pos++;
	if (rfc5322_skip_cfws(p) < 0)
		return -EINVAL;
	if (rfc5322_peek(p) != ';' || rfc5322_at_end(p)) {
		for (;;) {
			if (rfc5322_address(p, false) < 0)
				return -EINVAL;
			if (rfc5322_skip_cfws(p) < 0)
				return -EINVAL;
			if (rfc5322_at_end(p))
				return rfc5322_fail(p, "unterminated group (missing ';')");
			c = rfc5322_peek(p);
			if (c == ';')
				break;
			if (c != ',')
				return rfc5322_fail(p, "expected ',' or ';' after an address in a group");
			p->pos++;
		}
	}
	p->pos++;
	return rfc5322_skip_cfws(p);
}

void rfc5322_free_list(char **list, size_t n)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

int rfc5322_parse_address_list(const char *value, size_t len, char ***out,
    size_t *n, const char **why)
{
	struct rfc5322_p p;
	char *copy = NULL;
	int rc = -EINVAL;

	*out = NULL;
	*n = 0;
	memset(&p, 0, sizeof p);
	if (len > RFC5322_HEADER_MAX) {
		rfc5322_fail(&p, "header field too long");
		goto out;
	}
	if (memchr(value, '\0', len) != NULL) {
		rfc5322_fail(&p, "NUL byte in header field");
		goto out;
	}
	/* A NUL-terminated copy lets str_utf8_seq_len stop safely at the end. */
	copy = xmalloc(len + 1);
	memcpy(copy, value, len);
	copy[len] = '\0';
	p.s = copy;
	p.len = len;

	if (rfc5322_skip_cfws(&p) < 0)
		goto out;
	if (rfc5322_at_end(&p)) {
		rfc5322_fail(&p, "empty address list");
		goto out;
	}
	for (;;) {
		if (rfc5322_address(&p, true) < 0)
			goto out;
		if (rfc5322_skip_cfws(&p) < 0)
			goto out;
		if (rfc5322_at_end(&p))
			break;
		if (rfc5322_peek(&p) != ',') {
			rfc5322_fail(&p, "expected ',' between addresses");
			goto out;
		}
		p.pos++;
		if (rfc5322_skip_cfws(&p) < 0)
			goto out;
		/* obs-addr-list's empty elements are refused (RFC 5322 4.4). */
		if (rfc5322_at_end(&p) || rfc5322_peek(&p) == ',') {
			rfc5322_fail(&p, "empty element in address list");
			goto out;
		}
	}
	rc = 0;
out:
	free(copy);
	if (rc == 0) {
		*out = p.list;
		*n = p.n;
	} else {
		rfc5322_free_list(p.list, p.n);
		if (why != NULL)
			*why = p.why;
	}
	return rc;
}
