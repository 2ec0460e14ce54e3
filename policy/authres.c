/*
 * authres: our Authentication-Results header field (RFC 8601) from what
 * the sender-authentication checks found, and the rule that removes
 * fields from outside claiming our authserv-id (RFC 8601 section 5).
 *
 * Entry points: authres_result_name, authres_render, authres_claims_id.
 * OWNERSHIP: none; callers give the buffers.
 * THREADS: any (pure functions).
 * ERRORS: authres_render returns 0 when the field does not fit.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/util.h"
#include "policy/authres.h"

const char *authres_result_name(enum authres_result r)
{
	switch (r) {
	case AUTHRES_NOT_RUN: return "none";
	case AUTHRES_NONE: return "none";
	case AUTHRES_PASS: return "pass";
	case AUTHRES_FAIL: return "fail";
	case AUTHRES_SOFTFAIL: return "softfail";
	case AUTHRES_NEUTRAL: return "neutral";
	case AUTHRES_POLICY: return "policy";
	case AUTHRES_TEMPERROR: return "temperror";
	case AUTHRES_PERMERROR: return "permerror";
	}
	return "none";
}

/*
 * A property value as RFC 8601 2.2 allows it: an addr-spec or a token as
 * it is when every byte is a plain atom character, else a quoted-string.
 * Text from the sender cannot end the field or open a comment this way.
 */
static void authres_value(struct buf *b, const char *v)
{
	static const char atext[] = "!#$%&'*+-/=?^_`{|}~.@";
	bool plain = v[0] != '\0';

	for (const char *p = v; *p != '\0' && plain; p++) {
		unsigned char c = (unsigned char)*p;

		plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr(atext, c) != NULL;
	}
	if (plain) {
		buf_append_str(b, v);
		return;
	}
	buf_append_char(b, '"');
	for (const char *p = v; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < ' ' || c == 127)
			continue;
		if (c == '"' || c == '\\')
			buf_append_char(b, '\\');
		buf_append_char(b, (char)c);
	}
	buf_append_char(b, '"');
}

/* A comment: printable ASCII without the bytes that would end or nest it. */
static void authres_comment(struct buf *b, const char *text)
{
	if (text == NULL || text[0] == '\0')
		return;
	buf_append_str(b, " (");
	for (const char *p = text; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < ' ' || c >= 127 || c == '(' || c == ')' || c == '\\')
			c = ' ';
		buf_append_char(b, (char)c);
	}
	buf_append_char(b, ')');
}

static void authres_spf(struct buf *b, const struct authres_spf *spf)
{
	buf_printf(b, ";\r\n\tspf=%s", authres_result_name(spf->result));
	authres_comment(b, spf->reason);
	if (spf->identity[0] != '\0') {
		buf_append_str(b, spf->helo_identity ? " smtp.helo=" : " smtp.mailfrom=");
		authres_value(b, spf->identity);
	}
}

static void authres_dkim(struct buf *b, const struct authres_dkim_sig *sig)
{
	buf_printf(b, ";\r\n\tdkim=%s", authres_result_name(sig->result));
	authres_comment(b, sig->reason);
	if (sig->domain[0] != '\0') {
		buf_append_str(b, " header.d=");
		authres_value(b, sig->domain);
	}
	if (sig->selector[0] != '\0') {
		buf_append_str(b, " header.s=");
		authres_value(b, sig->selector);
	}
	if (sig->algorithm[0] != '\0') {
		buf_append_str(b, " header.a=");
		authres_value(b, sig->algorithm);
	}
	if (sig->b_prefix[0] != '\0') {
		buf_append_str(b, " header.b=");
		authres_value(b, sig->b_prefix);
	}
}

static void authres_dmarc(struct buf *b, const struct authres_dmarc *d)
{
	char why[sizeof d->reason + 32];

	buf_printf(b, ";\r\n\tdmarc=%s", authres_result_name(d->result));
	if (d->policy[0] != '\0')
		snprintf(why, sizeof why, "p=%s%s%s", d->policy, d->reason[0] ? " " : "",
		    d->reason);
	else
		str_copy(why, d->reason, sizeof why);
	authres_comment(b, why);
	if (d->from_domain[0] != '\0') {
		buf_append_str(b, " header.from=");
		authres_value(b, d->from_domain);
	}
}

size_t authres_render(const struct authres *ar, const char *authserv_id, char *out,
    size_t outlen)
{
	struct buf b;
	bool any = false;
	size_t len;

	buf_init(&b);
	buf_append_str(&b, "Authentication-Results: ");
	authres_value(&b, authserv_id);
	if (ar->spf.result != AUTHRES_NOT_RUN) {
		authres_spf(&b, &ar->spf);
		any = true;
	}
	if (ar->dkim_ran) {
		for (size_t i = 0; i < ar->ndkim; i++)
			authres_dkim(&b, &ar->dkim[i]);
		if (ar->ndkim == 0)
			buf_append_str(&b, ";\r\n\tdkim=none");
		any = true;
	}
	if (ar->dmarc.result != AUTHRES_NOT_RUN) {
		authres_dmarc(&b, &ar->dmarc);
		any = true;
	}
	if (!any)
		buf_append_str(&b, "; none");
	len = b.len;
	if (len + 1 > outlen) {
		buf_free(&b);
		if (outlen > 0)
			out[0] = '\0';
		return 0;
	}
	memcpy(out, b.data, len);
	out[len] = '\0';
	buf_free(&b);
	return len;
}

/* ------------------------------------------------- claims our id? */

/* Skips white space, folding and (nested) comments: RFC 5322 CFWS. */
static size_t authres_skip_cfws(const char *s, size_t i, size_t len)
{
	int depth = 0;

	while (i < len) {
		char c = s[i];

		if (depth > 0) {
			if (c == '\\' && i + 1 < len)
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			i++;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			i++;
		else if (c == '(') {
			depth++;
			i++;
		} else
			break;
	}
	return i;
}

bool authres_claims_id(const char *field, size_t len, const char *authserv_id)
{
	static const char name[] = "Authentication-Results";
	const size_t nlen = sizeof name - 1;
	char id[256];
	size_t i, n = 0;

	if (len <= nlen || strncasecmp(field, name, nlen) != 0)
		return false;
	i = nlen;
	while (i < len && (field[i] == ' ' || field[i] == '\t'))
		i++;
	if (i >= len || field[i] != ':')
		return false;
	i = authres_skip_cfws(field, i + 1, len);
	if (i < len && field[i] == '"') {
		for (i++; i < len && field[i] != '"'; i++) {
			if (field[i] == '\\' && i + 1 < len)
				i++;
			if (n + 1 < sizeof id)
				id[n++] = field[i];
		}
	} else {
		for (; i < len && field[i] != ';' && field[i] != '(' && field[i] != ' ' &&
		    field[i] != '\t' && field[i] != '\r' && field[i] != '\n'; i++) {
			if (n + 1 < sizeof id)
				id[n++] = field[i];
		}
	}
	id[n] = '\0';
	return strcasecmp(id, authserv_id) == 0;
}
