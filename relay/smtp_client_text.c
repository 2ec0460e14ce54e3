/*
 * smtp_client_text: the text of the outbound SMTP dialogue, apart from
 * the state machine in smtp_client.c: reading replies (bounded lines,
 * their words and RFC 3463 codes), the EHLO keywords, whether the
 * envelope needs SMTPUTF8, the MAIL and RCPT lines with their ESMTP
 * parameters, and dot-stuffing the body.
 *
 * Entry points: smtpc_outcome_name, and the smtpc__ functions of
 * smtp_client_int.h.
 * OWNERSHIP: nothing is kept; struct smtpc is the caller's.
 * THREADS: loop thread only (pure functions of their arguments).
 * ERRORS: smtpc__reply_line returns -1 for a malformed line; the rest
 * cannot fail.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/util.h"
#include "relay/smtp_client_int.h"
#include "relay/smtp_parse.h"

const char *smtpc_outcome_name(enum smtpc_outcome o)
{
	switch (o) {
	case SMTPC_NONE: return "none";
	case SMTPC_OK: return "ok";
	case SMTPC_TEMP: return "temporary";
	case SMTPC_PERM: return "permanent";
	}
	return "unknown";
}

/* "NNN text text ..." from the reply just read, printable and bounded. */
void smtpc__reply_text(const struct smtpc *c, char *out, size_t outlen)
{
	size_t o, i;

	o = (size_t)snprintf(out, outlen, "%d", c->rcode);
	if (o >= outlen)
		return;
	if (c->rtext.len > 0 && o + 1 < outlen)
		out[o++] = ' ';
	for (i = 0; i < c->rtext.len && o + 1 < outlen; i++) {
		unsigned char ch = (unsigned char)c->rtext.data[i];

		/* Lines are joined by spaces; no control byte is kept. */
		out[o++] = ch == '\n' ? ' ' : (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
	}
	out[o] = '\0';
}

/*
 * The RFC 3463 code at the start of the reply's first line, when it is
 * well formed and of the reply's class; else the class's generic code.
 */
void smtpc__reply_dsn(const struct smtpc *c, char *dsn, size_t dsnlen)
{
	const char *p = c->rtext.data;
	size_t len = c->rtext.len, i = 0, n;
	int part, klass = c->rcode / 100;

	if (klass != 2 && klass != 4 && klass != 5) {
		/* 3xx where no 3xx was due: treated as a protocol error. */
		str_copy(dsn, "4.5.0", dsnlen);
		return;
	}
	if (p != NULL && len >= 5 && p[0] == (char)('0' + c->rcode / 100) && p[1] == '.') {
		i = 2;
		for (part = 0; part < 2; part++) {
			for (n = 0; i < len && n < 4 && p[i] >= '0' && p[i] <= '9'; n++)
				i++;
			if (n == 0 || n > 3)
				break;
			if (part == 0) {
				if (i >= len || p[i] != '.')
					break;
				i++;
			}
		}
		if (part == 2 && (i == len || p[i] == ' ' || p[i] == '\n')) {
			str_copyn(dsn, p, i, dsnlen);
			return;
		}
	}
	snprintf(dsn, dsnlen, "%d.0.0", klass);
}

enum smtpc_outcome smtpc__class(int code)
{
	return code >= 500 ? SMTPC_PERM : code >= 200 && code < 300 ? SMTPC_OK : SMTPC_TEMP;
}


/* Clears what EHLO announced: a new EHLO (after TLS) starts from nothing. */
void smtpc__ext_reset(struct smtpc *c)
{
	c->ext_size = c->ext_starttls = c->ext_8bitmime = false;
	c->ext_smtputf8 = c->ext_dsn = c->ext_pipelining = false;
	c->size_limit = 0;
}

/* RFC 5321 4.1.1.1: EHLO (and LHLO) keywords, one per line after the first. */
void smtpc__parse_ehlo(struct smtpc *c)
{
	const char *p = buf_cstr(&c->rtext), *nl = NULL;
	bool first = true;

	smtpc__ext_reset(c);
	for (; p != NULL && *p != '\0'; p = nl != NULL ? nl + 1 : p + strlen(p)) {
		char kw[32];
		size_t n;

		nl = strchr(p, '\n');
		if (first) {
			first = false; /* the server's name and greeting */
			continue;
		}
		n = strcspn(p, " \n");
		if (n == 0 || n >= sizeof(kw))
			continue;
		str_copyn(kw, p, n, sizeof(kw));
		if (str_ieq(kw, "SIZE")) {
			/* RFC 1870: "SIZE" alone or "SIZE 0" means no fixed limit. */
			c->ext_size = true;
			if (p[n] == ' ') {
				char *end;
				unsigned long long v = strtoull(p + n + 1, &end, 10);

				if (end != p + n + 1)
					c->size_limit = v;
			}
		} else if (str_ieq(kw, "STARTTLS")) {
			c->ext_starttls = true;
		} else if (str_ieq(kw, "8BITMIME")) {
			c->ext_8bitmime = true;
		} else if (str_ieq(kw, "SMTPUTF8")) {
			c->ext_smtputf8 = true;
		} else if (str_ieq(kw, "DSN")) {
			c->ext_dsn = true;
		} else if (str_ieq(kw, "PIPELINING")) {
			c->ext_pipelining = true;
		}
	}
}

static bool smtpc_is_ascii(const char *s)
{
	for (; s != NULL && *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

/* True when the envelope itself needs SMTPUTF8 (RFC 6531 section 3.4). */
bool smtpc__envelope_is_utf8(const struct smtpc *c)
{
	size_t i;

	if (!smtpc_is_ascii(c->rq.msg->sender))
		return true;
	for (i = 0; i < c->rq.nrcpts; i++)
		if (!smtpc_is_ascii(c->rq.rcpts[i].addr))
			return true;
	return false;
}

/*
 * Adds one reply line (CR LF removed). Returns 1 when it completed the
 * reply, 0 when more lines follow, -1 when it is malformed.
 */
int smtpc__reply_line(struct smtpc *c, const char *line, size_t len)
{
	int code;

	/* RFC 5321 4.2: three digits, the first 2 to 5, then ' ', '-' or end. */
	if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
	    line[2] < '0' || line[2] > '9')
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (c->rlines > 0 && code != c->rcode)
		return -1;
	c->rcode = code;
	if (c->rtext.len + len + 1 > SMTPC_REPLY_MAX)
		return -1;
	if (c->rlines > 0)
		buf_append_char(&c->rtext, '\n');
	if (len > 4)
		buf_append(&c->rtext, line + 4, len - 4);
	c->rlines++;
	return len == 3 || line[3] == ' ' ? 1 : 0;
}

/*
 * Appends len body bytes to out, dot-stuffed (RFC 5321 4.5.2) and with
 * every line ending made CRLF: a bare LF or bare CR becomes CRLF, so no
 * byte sequence in a stored body can look like an end of data to a
 * lenient next hop (SMTP smuggling). State carries across chunks.
 */
void smtpc__stuff(struct smtpc *c, const char *p, size_t len, struct buf *out)
{
	size_t i = 0;
	char *o;

	/* Worst case: every byte doubles. */
	buf_reserve(out, len * 2 + 2);
	o = out->data + out->len;
	while (i < len) {
		char ch = p[i];
		size_t run;

		if (c->body_cr) {
			c->body_cr = false;
			*o++ = '\r';
			*o++ = '\n';
			c->body_bol = true;
			if (ch == '\n') {
				i++;
				continue;
			}
		}
		if (ch == '\r') {
			c->body_cr = true;
			i++;
			continue;
		}
		if (ch == '\n') {
			*o++ = '\r';
			*o++ = '\n';
			c->body_bol = true;
			i++;
			continue;
		}
		if (c->body_bol && ch == '.')
			*o++ = '.';
		c->body_bol = false;
		/* The rest of the line up to CR or LF is copied as it is. */
		for (run = 1; i + run < len && p[i + run] != '\r' && p[i + run] != '\n'; run++)
			;
		memcpy(o, p + i, run);
		o += run;
		i += run;
	}
	out->len = (size_t)(o - out->data);
}

/*
 * "host X said: REPLY (in reply to CMD command)" into out, truncated to
 * outlen (built in a buf: the pieces may add up to more than outlen).
 */
void smtpc__said(const struct smtpc *c, char *out, size_t outlen, const char *lead,
    const char *reply, const char *cmd)
{
	struct buf b;

	buf_init(&b);
	buf_printf(&b, "host %s %s: %s", c->res.relay, lead, reply);
	if (cmd[0] != '\0')
		buf_printf(&b, " (in reply to %s command)", cmd);
	str_copy(out, buf_cstr(&b), outlen);
	buf_free(&b);
}

/* ---------------------------------------------------------- envelope */

bool smtpc__cannot_send(const struct smtpc *c, char *dsn, size_t dsnlen, char *text,
    size_t textlen)
{
	const struct queue_msg *m = c->rq.msg;

	if (m->body_type == QUEUE_BODY_BINARYMIME) {
		/* RFC 3030 binary content needs BDAT; this client sends DATA only. */
		str_copy(dsn, "5.6.3", dsnlen);
		snprintf(text, textlen, "cannot relay BINARYMIME content to %s: "
		    "sending BDAT is not supported", c->res.relay);
		return true;
	}
	if (m->smtputf8 && smtpc__envelope_is_utf8(c) && !c->ext_smtputf8) {
		/* RFC 6531 section 3.4: must not be downgraded silently. */
		str_copy(dsn, "5.6.7", dsnlen);
		snprintf(text, textlen, "SMTPUTF8 is required, but was not offered by host %s",
		    c->res.relay);
		return true;
	}
	if (c->ext_size && c->size_limit > 0 && m->size > c->size_limit) {
		str_copy(dsn, "5.3.4", dsnlen);
		snprintf(text, textlen, "message size %llu exceeds size limit %llu of server %s",
		    (unsigned long long)m->size, (unsigned long long)c->size_limit,
		    c->res.relay);
		return true;
	}
	return false;
}

void smtpc__mail_command(const struct smtpc *c, struct buf *cmd)
{
	const struct queue_msg *m = c->rq.msg;
	bool utf8 = m->smtputf8 && smtpc__envelope_is_utf8(c);

	buf_printf(cmd, "MAIL FROM:<%s>", m->sender);
	if (c->ext_size)
		buf_printf(cmd, " SIZE=%llu", (unsigned long long)m->size);
	if (m->body_type == QUEUE_BODY_8BITMIME && c->ext_8bitmime)
		buf_append_str(cmd, " BODY=8BITMIME");
	if (utf8)
		buf_append_str(cmd, " SMTPUTF8");
	/* RFC 3461 parameters only to a server that announced DSN. */
	if (c->ext_dsn) {
		char x[SMTP_ENVID_MAX * 3 + 1];

		if (m->ret == QUEUE_RET_FULL)
			buf_append_str(cmd, " RET=FULL");
		else if (m->ret == QUEUE_RET_HDRS)
			buf_append_str(cmd, " RET=HDRS");
		if (m->envid != NULL && m->envid[0] != '\0' &&
		    smtp_parse_xtext_encode(m->envid, x, sizeof(x)) == 0)
			buf_printf(cmd, " ENVID=%s", x);
	}
}

void smtpc__rcpt_command(const struct smtpc *c, size_t idx, struct buf *cmd)
{
	const struct smtpc_rcpt *r = &c->rq.rcpts[idx];

	buf_printf(cmd, "RCPT TO:<%s>", r->addr);
	if (c->ext_dsn && r->notify != 0) {
		if (r->notify & QUEUE_NOTIFY_NEVER) {
			buf_append_str(cmd, " NOTIFY=NEVER");
		} else {
			const char *sep = "=";

			buf_append_str(cmd, " NOTIFY");
			if (r->notify & QUEUE_NOTIFY_SUCCESS) {
				buf_printf(cmd, "%sSUCCESS", sep);
				sep = ",";
			}
			if (r->notify & QUEUE_NOTIFY_FAILURE) {
				buf_printf(cmd, "%sFAILURE", sep);
				sep = ",";
			}
			if (r->notify & QUEUE_NOTIFY_DELAY)
				buf_printf(cmd, "%sDELAY", sep);
		}
	}
	if (c->ext_dsn && r->orcpt != NULL) {
		/* Stored decoded as "type;address": only the address is xtext. */
		const char *semi = strchr(r->orcpt, ';');
		char x[SMTP_ORCPT_MAX + 1];

		if (semi != NULL && semi != r->orcpt && semi - r->orcpt < 32 &&
		    smtp_parse_xtext_encode(semi + 1, x, sizeof(x)) == 0)
			buf_printf(cmd, " ORCPT=%.*s;%s", (int)(semi - r->orcpt), r->orcpt, x);
	}
}
