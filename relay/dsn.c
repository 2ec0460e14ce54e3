/*
 * dsn: delivery status notifications (RFC 3461, RFC 3464, RFC 6522, and
 * RFC 6533 for SMTPUTF8 messages), built as complete RFC 5322 messages.
 *
 * A report is a multipart/report with three parts: a bilingual text for
 * people (Vietnamese first, then English: what happened, each recipient
 * with the remote server's reply, what to do), the machine-readable
 * message/delivery-status, and the original's header block or, for
 * RET=FULL, the whole original within a size limit.
 *
 * Everything that reaches a header field or the status part and did not
 * come from us (remote replies, addresses, ENVID, ORCPT) is cleaned first:
 * CR, LF and TAB become one space, other control bytes go, bytes that are
 * not (allowed) UTF-8 become '?', and the length is bounded; then fields
 * are folded at whitespace, never past RFC 5322's 998 octets. That is what
 * keeps a hostile "550 ok\r\nBcc: victim" reply a harmless line of text.
 *
 * Entry points: dsn_wanted (the NOTIFY rules), dsn_build (the message),
 * dsn_envelope_new (the DSN's own queue record), dsn_kind_name.
 * OWNERSHIP: every argument is borrowed; dsn_build appends to the caller's
 * buf; dsn_envelope_new returns a record the caller frees.
 * THREADS: any thread; dsn_build uses the caller's transaction on the
 * caller's thread (LMDB's rule).
 * ERRORS: -EINVAL for arguments no report can be built from; errors of
 * queue_body_get (-ENOENT, -EBADMSG, -EIO) pass through.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/delivery.h"
#include "queue/queue.h"
#include "relay/dsn.h"

/* RFC 5322 section 2.1.1: 78 is the polite width, 998 the hard limit. */
#define DSN_LINE_SOFT 78
#define DSN_LINE_MAX 998
/* Width of the wrapped text for people, in characters. */
#define DSN_TEXT_WIDTH 72
/* Bounds on what we copy from outside: a remote reply, anything else. */
#define DSN_DIAG_MAX 2048
#define DSN_FIELD_MAX 512
/* RFC 1035: a host name fits 255 octets. */
#define DSN_HOST_MAX 255
/* RFC 2047 section 2: an encoded-word is at most 75 characters. */
#define DSN_EW_MAX 75
#define DSN_BOUNDARY_TRIES 8

struct dsn_ctx {
	const struct queue_msg *msg;
	const struct dsn_params *p;
	bool utf8;           /* RFC 6533: the original was SMTPUTF8 */
	uint64_t full_max;
};

/* What differs between the kinds of report, in both languages. */
static const struct dsn_text {
	const char *subject_vi;
	const char *subject_en;
	const char *what_vi;     /* follows "Thư của bạn (gửi lúc DATE) " */
	const char *what_en;     /* follows "Your message (sent DATE) " */
	const char *todo_vi;
	const char *todo_en;
	const char *default_status;
	const char *part3;       /* Content-Description of the returned part */
} dsn_texts[] = {
	[DSN_FAILURE] = {
		"Thư không gửi được",
		"Undelivered Mail Returned to Sender",
		"không thể chuyển tới người nhận được liệt kê bên dưới. Đây là "
		"lỗi vĩnh viễn: hệ thống sẽ không gửi lại thư này nữa.",
		"could not be delivered to the recipients listed below. This is "
		"a permanent error: the system will not try again.",
		"Bạn nên làm gì: kiểm tra lại địa chỉ người nhận (lỗi chính tả, "
		"địa chỉ cũ) và đọc phản hồi của máy chủ bên dưới. Nếu cần hỗ "
		"trợ, hãy liên hệ bộ phận quản trị thư điện tử và gửi kèm toàn "
		"bộ thông báo này.",
		"What you should do: check the recipient addresses (typing "
		"mistakes, old addresses) and read the server's reply below. If "
		"you need help, contact your e-mail administrator and include "
		"this whole report.",
		"5.0.0",
		"Undelivered Message",
	},
	[DSN_DELAY] = {
		"Thư bị chậm",
		"Delayed Mail (still being retried)",
		"chưa chuyển được tới người nhận được liệt kê bên dưới. Hệ "
		"thống vẫn đang tiếp tục thử gửi lại.",
		"has not yet been delivered to the recipients listed below. The "
		"system is still trying.",
		"Bạn nên làm gì: hiện chưa cần làm gì, và đừng gửi lại thư "
		"(người nhận có thể nhận được hai lần). Nếu thư vẫn không gửi "
		"được trước thời hạn ghi bên dưới, bạn sẽ nhận được một thông "
		"báo khác.",
		"What you should do: nothing yet, and do not send the message "
		"again (the recipients could get it twice). If it still cannot "
		"be delivered by the time shown below, you will get another "
		"report.",
		"4.0.0",
		"Delayed Message",
	},
	[DSN_SUCCESS] = {
		"Thư đã được chuyển",
		"Successful Mail Delivery Report",
		"đã được chuyển tới người nhận được liệt kê bên dưới, theo yêu "
		"cầu xác nhận của bạn. \"Chuyển tiếp\" nghĩa là thư đã tới một "
		"máy chủ không gửi thêm xác nhận nào nữa.",
		"was delivered to the recipients listed below, as you asked to "
		"be told. \"Relayed\" means it reached a server that sends no "
		"further confirmation.",
		"Bạn nên làm gì: không cần làm gì.",
		"What you should do: nothing.",
		"2.0.0",
		"Delivered Message",
	},
};

const char *dsn_kind_name(enum dsn_kind kind)
{
	switch (kind) {
	case DSN_FAILURE: return "failure";
	case DSN_DELAY: return "delay";
	case DSN_SUCCESS: return "success";
	}
	return "unknown";
}

/* ------------------------------------------------------------- NOTIFY */

/* The rule is the queue's (it decides which reports a delivery queues). */
bool dsn_wanted(const struct queue_msg *msg, const struct queue_rcpt *r,
    enum dsn_kind kind)
{
	switch (kind) {
	case DSN_FAILURE: return queue_dsn_wanted(msg, r, QUEUE_DSN_FAILURE);
	case DSN_DELAY: return queue_dsn_wanted(msg, r, QUEUE_DSN_DELAY);
	case DSN_SUCCESS: return queue_dsn_wanted(msg, r, QUEUE_DSN_SUCCESS);
	}
	return false;
}

/* ------------------------------------------------------------ helpers */

/* Bytes of the character at p: a valid UTF-8 sequence, else 1. */
static size_t dsn_char_len(const char *p)
{
	size_t l;

	if ((unsigned char)*p < 0x80)
		return 1;
	l = str_utf8_seq_len((const unsigned char *)p);
	return l ? l : 1;
}

static bool dsn_has_8bit(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)p[i] >= 0x80)
			return true;
	return false;
}

/*
 * Appends s cleaned for one header line: CR, LF, TAB and space runs become
 * one space (trimmed at both ends), other controls are dropped, bytes >=
 * 0x80 stay only as well-formed UTF-8 when utf8 allows, else '?'. At most
 * max bytes are copied; a cut text ends in "...".
 */
static void dsn_clean(struct buf *out, const char *s, size_t max, bool utf8)
{
	size_t start = out->len;
	bool space = false;

	while (*s) {
		unsigned char c = (unsigned char)*s;
		size_t l = 1;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			space = true;
			s++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			s++;
			continue;
		}
		if (c >= 0x80)
			l = utf8 ? str_utf8_seq_len((const unsigned char *)s) : 0;
		if (out->len - start + (space ? 1 : 0) + (l ? l : 1) > max) {
			buf_append_str(out, "...");
			return;
		}
		if (space && out->len > start)
			buf_append_char(out, ' ');
		space = false;
		if (l == 0) {
			buf_append_char(out, '?');
			s++;
		} else {
			buf_append(out, s, l);
			s += l;
		}
	}
}

/* A host name we may print after "dns;" and "@": LDH labels, dots, '_'. */
static bool dsn_host_ok(const char *h)
{
	size_t len;

	if (h == NULL)
		return false;
	len = strlen(h);
	if (len == 0 || len > DSN_HOST_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = h[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'))
			return false;
	}
	return true;
}

/*
 * The sender goes into To: as <addr>, so it must be one clean token: no
 * controls, no angle brackets, UTF-8 only for SMTPUTF8 (RFC 6532).
 */
static bool dsn_sender_ok(const char *s, bool utf8)
{
	size_t len = strlen(s);

	if (len == 0 || len > DSN_FIELD_MAX)
		return false;
	for (const char *p = s; *p; ) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c == 0x7f || c == '<' || c == '>')
			return false;
		if (c >= 0x80) {
			size_t l = utf8 ? str_utf8_seq_len((const unsigned char *)p) : 0;

			if (l == 0)
				return false;
			p += l;
			continue;
		}
		p++;
	}
	return true;
}

/* RFC 3463: class "." subject "." detail, 1-3 digits each. */
static bool dsn_status_ok(const char *s, enum dsn_kind kind)
{
	int parts = 0;

	if (s == NULL)
		return false;
	/* A failure may be 4.4.7 (expired), as Postfix reports it. */
	switch (kind) {
	case DSN_FAILURE:
		if (s[0] != '4' && s[0] != '5')
			return false;
		break;
	case DSN_DELAY:
		if (s[0] != '4')
			return false;
		break;
	case DSN_SUCCESS:
		if (s[0] != '2')
			return false;
		break;
	}
	if (s[1] != '.')
		return false;
	s += 2;
	for (parts = 0; parts < 2; parts++) {
		size_t d = 0;

		while (s[d] >= '0' && s[d] <= '9')
			d++;
		if (d < 1 || d > 3)
			return false;
		s += d;
		if (parts == 0) {
			if (*s != '.')
				return false;
			s++;
		}
	}
	return *s == '\0';
}

static const char *dsn_status(const struct dsn_rcpt_report *r, enum dsn_kind kind)
{
	return dsn_status_ok(r->status, kind) ? r->status : dsn_texts[kind].default_status;
}

/*
 * Appends "Name: value" CRLF, folded (RFC 5322 section 2.2.3) before a
 * space so lines stay within 78 octets where the words allow, and never
 * over 998: a run without spaces that long is cut, at a character
 * boundary, with a fold that adds one space. value is already clean.
 */
static void dsn_field(struct buf *out, const char *name, const char *value)
{
	size_t col = strlen(name) + 2;
	const char *p = value;

	buf_printf(out, "%s: ", name);
	while (*p) {
		size_t rest = strlen(p), lim, cut = 0, i;

		if (col + rest <= DSN_LINE_SOFT) {
			buf_append(out, p, rest);
			break;
		}
		lim = col < DSN_LINE_SOFT ? DSN_LINE_SOFT - col : 1;
		/* From 1: a continuation starts with the space folded before. */
		for (i = 1; i <= lim && i < rest; i++)
			if (p[i] == ' ')
				cut = i;
		for (i = lim + 1; cut == 0 && i < rest && col + i <= DSN_LINE_MAX; i++)
			if (p[i] == ' ')
				cut = i;
		if (cut == 0) {
			if (col + rest <= DSN_LINE_MAX) {
				buf_append(out, p, rest);
				break;
			}
			cut = DSN_LINE_MAX - col;
			while (cut > 1 && ((unsigned char)p[cut] & 0xc0) == 0x80)
				cut--;
			buf_append(out, p, cut);
			buf_append_str(out, "\r\n ");
			col = 1;
			p += cut;
			continue;
		}
		buf_append(out, p, cut);
		buf_append_str(out, "\r\n");
		col = 0;
		p += cut;
	}
	buf_append_str(out, "\r\n");
}

/* A field whose value is raw outside text: cleaned, then folded. */
static void dsn_field_clean(struct buf *out, const char *name, const char *prefix,
    const char *raw, size_t max, bool utf8)
{
	struct buf v;

	buf_init(&v);
	buf_append_str(&v, prefix);
	dsn_clean(&v, raw, max, utf8);
	dsn_field(out, name, buf_cstr(&v));
	buf_free(&v);
}

static void dsn_field_date(struct buf *out, const char *name, int64_t ms)
{
	char date[64];

	time_format_rfc5322(ms, date, sizeof date);
	dsn_field(out, name, date);
}

static bool dsn_is_ascii(const char *s)
{
	return !dsn_has_8bit(s, strlen(s));
}

/* ------------------------------------------------------------ Subject */

static void dsn_base64(struct buf *out, const unsigned char *p, size_t len)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		size_t left = len - i;

		if (left > 1)
			v |= (uint32_t)p[i + 1] << 8;
		if (left > 2)
			v |= p[i + 2];
		buf_append_char(out, tab[v >> 18 & 63]);
		buf_append_char(out, tab[v >> 12 & 63]);
		buf_append_char(out, left > 1 ? tab[v >> 6 & 63] : '=');
		buf_append_char(out, left > 2 ? tab[v & 63] : '=');
	}
}

/*
 * Subject: the Vietnamese as RFC 2047 "B" encoded-words (whole characters
 * per word, each word <= 75 characters, one per line), then the English
 * as plain text on a continuation line. A decoder drops the folds between
 * encoded-words but keeps the space before the English (section 6.2).
 */
static void dsn_subject(struct buf *out, const char *vi, const char *en)
{
	/* 75 minus "=?UTF-8?B??=" leaves 63 characters: 45 bytes of text. */
	const size_t per_word = (DSN_EW_MAX - 12) / 4 * 3;
	const char *p = vi;

	buf_append_str(out, "Subject:");
	while (*p) {
		size_t n = 0;

		while (p[n]) {
			size_t l = dsn_char_len(p + n);

			if (n + l > per_word)
				break;
			n += l;
		}
		buf_append_str(out, p == vi ? " " : "\r\n ");
		buf_append_str(out, "=?UTF-8?B?");
		dsn_base64(out, (const unsigned char *)p, n);
		buf_append_str(out, "?=");
		p += n;
	}
	buf_printf(out, "\r\n / %s\r\n", en);
}

/* ------------------------------------------------------- text for people */

/*
 * Appends s wrapped at width characters, each line after indent spaces,
 * "\n" ends (the quoted-printable step makes them CRLF). Words longer
 * than a line are cut at a character boundary.
 */
static void dsn_wrap(struct buf *b, const char *s, size_t indent, size_t width)
{
	while (*s == ' ')
		s++;
	while (*s) {
		const char *p = s, *brk = NULL;
		size_t chars = 0;

		while (*p && chars < width) {
			if (*p == ' ')
				brk = p;
			p += dsn_char_len(p);
			chars++;
		}
		for (size_t i = 0; i < indent; i++)
			buf_append_char(b, ' ');
		if (*p == '\0') {
			buf_append(b, s, (size_t)(p - s));
			buf_append_char(b, '\n');
			break;
		}
		if (*p == ' ')
			brk = p;
		if (brk == NULL || brk == s)
			brk = p;
		buf_append(b, s, (size_t)(brk - s));
		buf_append_char(b, '\n');
		s = brk;
		while (*s == ' ')
			s++;
	}
}

/* Wraps a cleaned copy of raw (outside text) under indent. */
static void dsn_wrap_clean(struct buf *b, const char *raw, size_t max, size_t indent)
{
	struct buf v;

	buf_init(&v);
	dsn_clean(&v, raw, max, true);
	dsn_wrap(b, buf_cstr(&v), indent, DSN_TEXT_WIDTH - indent);
	buf_free(&v);
}

/* "Label: value" under indent, value cleaned; wrapped if long. */
static void dsn_text_item(struct buf *b, const char *label, const char *raw, size_t max)
{
	struct buf v;

	buf_init(&v);
	buf_printf(&v, "%s: ", label);
	dsn_clean(&v, raw, max, true);
	dsn_wrap(b, buf_cstr(&v), 4, DSN_TEXT_WIDTH - 4);
	buf_free(&v);
}

static const char *dsn_action(enum dsn_kind kind, const struct dsn_rcpt_report *r)
{
	switch (kind) {
	case DSN_FAILURE: return "failed";
	case DSN_DELAY: return "delayed";
	case DSN_SUCCESS: return r->remote_mta ? "relayed" : "delivered";
	}
	return "failed";
}

/* The same action word for people, in both languages. */
static const char *dsn_action_words(enum dsn_kind kind, const struct dsn_rcpt_report *r)
{
	switch (kind) {
	case DSN_FAILURE: return "thất bại / failed";
	case DSN_DELAY: return "đang chờ gửi lại / delayed";
	case DSN_SUCCESS:
		return r->remote_mta ? "đã chuyển tiếp / relayed" : "đã giao / delivered";
	}
	return "";
}

/* Part 1, before encoding: "\n" line ends, UTF-8. */
static void dsn_text(const struct dsn_ctx *c, const struct dsn_rcpt_report *rcpts,
    size_t n, struct buf *b)
{
	const struct dsn_text *t = &dsn_texts[c->p->kind];
	char arrival[64], date[64];
	struct buf para;

	time_format_rfc5322(c->msg->arrival, arrival, sizeof arrival);
	buf_init(&para);

	buf_printf(&para, "Đây là thông báo tự động từ hệ thống chuyển thư tại %s.",
	    c->p->reporting_mta);
	dsn_wrap(b, buf_cstr(&para), 0, DSN_TEXT_WIDTH);
	buf_reset(&para);
	buf_printf(&para, "This is an automatic message from the mail system at %s.",
	    c->p->reporting_mta);
	dsn_wrap(b, buf_cstr(&para), 0, DSN_TEXT_WIDTH);

	buf_append_str(b, "\n--- Tiếng Việt ---\n\n");
	buf_reset(&para);
	buf_printf(&para, "Thư của bạn (gửi lúc %s) %s", arrival, t->what_vi);
	dsn_wrap(b, buf_cstr(&para), 0, DSN_TEXT_WIDTH);
	buf_append_char(b, '\n');
	dsn_wrap(b, t->todo_vi, 0, DSN_TEXT_WIDTH);

	buf_append_str(b, "\n--- English ---\n\n");
	buf_reset(&para);
	buf_printf(&para, "Your message (sent %s) %s", arrival, t->what_en);
	dsn_wrap(b, buf_cstr(&para), 0, DSN_TEXT_WIDTH);
	buf_append_char(b, '\n');
	dsn_wrap(b, t->todo_en, 0, DSN_TEXT_WIDTH);

	buf_append_str(b, "\n--- Người nhận / Recipients ---\n");
	for (size_t i = 0; i < n; i++) {
		const struct dsn_rcpt_report *r = &rcpts[i];

		buf_append_char(b, '\n');
		buf_reset(&para);
		buf_append_char(&para, '<');
		dsn_clean(&para, r->addr, DSN_FIELD_MAX, true);
		buf_append_char(&para, '>');
		dsn_wrap(b, buf_cstr(&para), 0, DSN_TEXT_WIDTH);
		if (r->orcpt != NULL && r->orcpt[0] != '\0')
			dsn_text_item(b, "Địa chỉ gốc / Original address", r->orcpt,
			    DSN_FIELD_MAX);
		dsn_text_item(b, "Kết quả / Result", dsn_action_words(c->p->kind, r),
		    DSN_FIELD_MAX);
		dsn_text_item(b, "Mã trạng thái / Status", dsn_status(r, c->p->kind),
		    DSN_FIELD_MAX);
		if (r->remote_mta != NULL)
			dsn_text_item(b, "Máy chủ nhận / Remote server", r->remote_mta,
			    DSN_FIELD_MAX);
		if (r->last_attempt > 0) {
			time_format_rfc5322(r->last_attempt, date, sizeof date);
			dsn_text_item(b, "Lần thử cuối / Last attempt", date, sizeof date);
		}
		if (c->p->kind == DSN_DELAY && r->retry_until > 0) {
			time_format_rfc5322(r->retry_until, date, sizeof date);
			dsn_text_item(b, "Thử lại tới / Retrying until", date, sizeof date);
		}
		if (r->diagnostic != NULL && r->diagnostic[0] != '\0') {
			dsn_wrap(b, "Phản hồi / Reply:", 4, DSN_TEXT_WIDTH - 4);
			dsn_wrap_clean(b, r->diagnostic, DSN_DIAG_MAX, 8);
		}
	}
	buf_free(&para);
}

/*
 * RFC 2045 section 6.7 quoted-printable of s ("\n" line ends become CRLF):
 * 7-bit safe for any next hop, lines <= 76 with soft breaks, and it never
 * produces "=_", which our boundaries start with.
 */
static void dsn_qp(struct buf *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t col = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		bool end = i + 1 == len || s[i + 1] == '\n';
		bool lit;

		if (ch == '\n') {
			buf_append_str(out, "\r\n");
			col = 0;
			continue;
		}
		lit = (ch >= 33 && ch <= 126 && ch != '=') || (ch == ' ' && !end);
		if (col + (lit ? 1 : 3) > 75) {
			buf_append_str(out, "=\r\n");
			col = 0;
		}
		if (lit) {
			buf_append_char(out, (char)ch);
			col++;
		} else {
			buf_append_char(out, '=');
			buf_append_char(out, hex[ch >> 4]);
			buf_append_char(out, hex[ch & 15]);
			col += 3;
		}
	}
}

/* ------------------------------------------------------ delivery-status */

/*
 * "rfc822; addr", or with RFC 6533 "utf-8; addr" for an address that
 * needs it. Outside a global report an address is plain ASCII.
 */
static void dsn_field_addr(struct buf *out, const char *name, const char *type,
    const char *addr, bool utf8)
{
	struct buf v;

	buf_init(&v);
	if (type == NULL)
		type = utf8 && !dsn_is_ascii(addr) ? "utf-8" : "rfc822";
	buf_printf(&v, "%s; ", type);
	dsn_clean(&v, addr, DSN_FIELD_MAX, utf8);
	dsn_field(out, name, buf_cstr(&v));
	buf_free(&v);
}

/*
 * RFC 3464 section 2.3.1: Original-Recipient from ORCPT "type;addr"
 * (stored xtext-decoded, as RFC 3461 section 4.2 has us keep it). A
 * value without a sensible address type is left out.
 */
static void dsn_field_orcpt(struct buf *out, const char *orcpt, bool utf8)
{
	const char *semi = strchr(orcpt, ';');
	char type[32];
	size_t tlen;

	if (semi == NULL)
		return;
	tlen = (size_t)(semi - orcpt);
	if (tlen == 0 || tlen >= sizeof type)
		return;
	for (size_t i = 0; i < tlen; i++) {
		char ch = orcpt[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-'))
			return;
	}
	str_copyn(type, orcpt, tlen, sizeof type);
	semi++;
	while (*semi == ' ')
		semi++;
	if (*semi == '\0')
		return;
	dsn_field_addr(out, "Original-Recipient", type, semi, utf8);
}

/*
 * RFC 3464 section 2.3.6: "smtp;" when the text is an SMTP reply (three
 * digits first), else our own X- type for a local error text.
 */
static const char *dsn_diag_type(const char *clean)
{
	if (clean[0] >= '2' && clean[0] <= '5' && clean[1] >= '0' && clean[1] <= '9' &&
	    clean[2] >= '0' && clean[2] <= '9' &&
	    (clean[3] == '\0' || clean[3] == ' ' || clean[3] == '-'))
		return "smtp";
	return "X-Govrelay";
}

static void dsn_status_part(const struct dsn_ctx *c, const struct dsn_rcpt_report *rcpts,
    size_t n, struct buf *b)
{
	const struct queue_msg *m = c->msg;
	char qid[QUEUE_ID_TEXT_LEN + 1];
	struct buf v;

	buf_init(&v);
	/* Per-message fields (RFC 3464 section 2.2). */
	buf_printf(&v, "dns; %s", c->p->reporting_mta);
	dsn_field(b, "Reporting-MTA", buf_cstr(&v));
	queue_id_format(m->id, qid);
	dsn_field(b, "X-Govrelay-Queue-ID", qid);
	if (m->envid != NULL && m->envid[0] != '\0')
		dsn_field_clean(b, "Original-Envelope-Id", "", m->envid, DSN_FIELD_MAX, c->utf8);
	dsn_field_date(b, "Arrival-Date", m->arrival);

	/* One block per recipient (section 2.3), each after an empty line. */
	for (size_t i = 0; i < n; i++) {
		const struct dsn_rcpt_report *r = &rcpts[i];

		buf_append_str(b, "\r\n");
		if (r->orcpt != NULL && r->orcpt[0] != '\0')
			dsn_field_orcpt(b, r->orcpt, c->utf8);
		dsn_field_addr(b, "Final-Recipient", NULL, r->addr, c->utf8);
		dsn_field(b, "Action", dsn_action(c->p->kind, r));
		dsn_field(b, "Status", dsn_status(r, c->p->kind));
		if (r->remote_mta != NULL && r->remote_mta[0] != '\0')
			dsn_field_clean(b, "Remote-MTA", "dns; ", r->remote_mta,
			    DSN_FIELD_MAX, false);
		if (r->diagnostic != NULL) {
			buf_reset(&v);
			dsn_clean(&v, r->diagnostic, DSN_DIAG_MAX, c->utf8);
			if (v.len > 0) {
				struct buf f;

				buf_init(&f);
				buf_printf(&f, "%s; %s", dsn_diag_type(buf_cstr(&v)), v.data);
				dsn_field(b, "Diagnostic-Code", buf_cstr(&f));
				buf_free(&f);
			}
		}
		if (r->last_attempt > 0)
			dsn_field_date(b, "Last-Attempt-Date", r->last_attempt);
		if (c->p->kind == DSN_DELAY && r->retry_until > 0)
			dsn_field_date(b, "Will-Retry-Until", r->retry_until);
	}
	buf_free(&v);
}

/* ------------------------------------------------------- the original */

/*
 * Length of the header block of p[0..len): up to and including the CRLF
 * (or lone LF) of the last header line, or -1 when no empty line was seen.
 */
static ssize_t dsn_header_end(const char *p, size_t len)
{
	if (len >= 2 && p[0] == '\r' && p[1] == '\n')
		return 0;
	if (len >= 1 && p[0] == '\n')
		return 0;
	for (size_t i = 0; i + 1 < len; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i + 1] == '\n')
			return (ssize_t)i + 1;
		if (p[i + 1] == '\r' && i + 2 < len && p[i + 2] == '\n')
			return (ssize_t)i + 1;
	}
	return -1;
}

/*
 * Appends the header block p[0..len) with every line ending in CRLF (a
 * lone CR or LF is a line end too, a NUL is dropped) and lines over 998
 * octets folded. Our own Received line is the first header; it stays, as
 * it tells the sender which relay took the message.
 */
static void dsn_copy_headers(struct buf *out, const char *p, size_t len)
{
	size_t col = 0;

	for (size_t i = 0; i < len; i++) {
		char ch = p[i];

		if (ch == '\r' || ch == '\n') {
			if (ch == '\r' && i + 1 < len && p[i + 1] == '\n')
				i++;
			buf_append_str(out, "\r\n");
			col = 0;
			continue;
		}
		if (ch == '\0')
			continue;
		if (col >= DSN_LINE_MAX - 1) {
			buf_append_str(out, "\r\n ");
			col = 1;
		}
		buf_append_char(out, ch);
		col++;
	}
	if (col > 0)
		buf_append_str(out, "\r\n");
}

/*
 * Whether the whole original can travel as message/rfc822 untouched:
 * CRLF line ends only, no NUL, no line over 998 octets (RFC 5322 2.1.1,
 * RFC 2045 section 2.8 for 8bit).
 */
static bool dsn_full_ok(const char *p, size_t len)
{
	size_t col = 0;

	for (size_t i = 0; i < len; i++) {
		char ch = p[i];

		if (ch == '\r') {
			if (i + 1 >= len || p[i + 1] != '\n')
				return false;
			i++;
			col = 0;
			continue;
		}
		if (ch == '\n' || ch == '\0')
			return false;
		if (++col > DSN_LINE_MAX)
			return false;
	}
	return true;
}

/*
 * Fills part (the returned content, ready to go between the boundaries)
 * and *full (whether it is the whole message). Only the chunks needed are
 * read: for headers, until the empty line or DSN_HEADERS_MAX.
 */
static int dsn_original(const struct dsn_ctx *c, struct queue_txn *txn, struct buf *part,
    bool *full)
{
	const struct queue_msg *m = c->msg;
	struct buf raw;
	ssize_t hend = -1;
	int rc = 0;

	/* BINARYMIME content cannot ride in a 7bit/8bit report: headers. */
	*full = m->ret == QUEUE_RET_FULL && m->body_type != QUEUE_BODY_BINARYMIME &&
	    m->size <= c->full_max;
	buf_init(&raw);
	for (uint32_t seq = 0; seq < m->nchunks; seq++) {
		rc = queue_body_get(txn, m->id, seq, &raw);
		if (rc < 0)
			goto out;
		/* The record's size is a claim; the bytes decide. */
		if (*full && raw.len > c->full_max)
			*full = false;
		if (*full)
			continue;
		hend = dsn_header_end(raw.data, raw.len);
		if (hend >= 0 || raw.len >= DSN_HEADERS_MAX)
			break;
	}
	if (*full && !dsn_full_ok(raw.data, raw.len))
		*full = false;
	if (*full) {
		buf_append(part, raw.data, raw.len);
		goto out;
	}
	if (hend < 0)
		hend = dsn_header_end(raw.data, raw.len);
	if (hend < 0)
		hend = (ssize_t)raw.len; /* all header, no body */
	if ((size_t)hend > DSN_HEADERS_MAX) {
		/* Whole lines only: cut after the last line end that fits. */
		size_t cut = DSN_HEADERS_MAX;

		while (cut > 0 && raw.data[cut - 1] != '\n')
			cut--;
		hend = (ssize_t)(cut > 0 ? cut : DSN_HEADERS_MAX);
	}
	dsn_copy_headers(part, raw.data, (size_t)hend);
out:
	buf_free(&raw);
	return rc;
}

/* ---------------------------------------------------------- assembling */

static bool dsn_contains(const struct buf *b, const char *s)
{
	return b->len > 0 && memmem(b->data, b->len, s, strlen(s)) != NULL;
}

/*
 * RFC 2046 section 5.1.1: the boundary must not occur in any part. It is
 * "=_" (which quoted-printable never produces), the DSN's id and 64 random
 * bits, so the original's author cannot predict it; and it is checked.
 */
static int dsn_boundary(uint64_t id, const struct buf *const *parts, size_t nparts,
    char *out, size_t outlen)
{
	for (unsigned attempt = 0; attempt < DSN_BOUNDARY_TRIES; attempt++) {
		uint64_t rnd = 0;
		bool clash = false;

		if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
			rnd = (uint64_t)time_mono_ms() * 2654435761u + attempt;
		snprintf(out, outlen, "=_govrelay-%016" PRIX64 "-%016" PRIX64, id, rnd);
		for (size_t i = 0; i < nparts && !clash; i++)
			clash = dsn_contains(parts[i], out);
		if (!clash)
			return 0;
	}
	return -EIO;
}

/* The report's own header section, up to its MIME preamble. */
static void dsn_head(const struct dsn_ctx *c, const struct dsn_text *t, const char *boundary,
    bool eight, struct buf *res)
{
	char date[64];

	/* The message header (RFC 5322 section 3.6, RFC 3834 section 5). */
	buf_printf(res, "From: \"Mail Delivery System\" <MAILER-DAEMON@%s>\r\n",
	    c->p->reporting_mta);
	buf_printf(res, "To: <%s>\r\n", c->msg->sender);
	dsn_subject(res, t->subject_vi, t->subject_en);
	time_format_rfc5322(c->p->now, date, sizeof date);
	buf_printf(res, "Date: %s\r\n", date);
	buf_printf(res, "Message-ID: <%016" PRIX64 ".dsn@%s>\r\n", c->p->dsn_id,
	    c->p->reporting_mta);
	buf_append_str(res, "MIME-Version: 1.0\r\n");
	/* Keeps vacation responders and the like from answering a bounce. */
	buf_append_str(res, "Auto-Submitted: auto-replied\r\n");
	/* RFC 6522 section 3 and RFC 6533 section 6: the report's types. */
	buf_printf(res, "Content-Type: multipart/report; report-type=%s;\r\n"
	    "\tboundary=\"%s\"\r\n",
	    c->utf8 ? "global-delivery-status" : "delivery-status", boundary);
	if (eight)
		buf_append_str(res, "Content-Transfer-Encoding: 8bit\r\n");
	buf_append_str(res, "\r\nThis is a MIME-encapsulated message "
	    "(a delivery status notification).\r\n");
}

int dsn_build(struct queue_txn *txn, const struct queue_msg *msg,
    const struct dsn_rcpt_report *rcpts, size_t n, const struct dsn_params *p,
    struct buf *out)
{
	struct dsn_ctx c;
	struct buf text, part1, part2, part3, res;
	const struct buf *parts[3] = { &part1, &part2, &part3 };
	const struct dsn_text *t;
	char boundary[64];
	bool full = false, eight;
	int rc;

	if (txn == NULL || msg == NULL || rcpts == NULL || n == 0 || p == NULL ||
	    out == NULL)
		return -EINVAL;
	if ((unsigned)p->kind > DSN_SUCCESS || !dsn_host_ok(p->reporting_mta))
		return -EINVAL;
	/* RFC 3461 section 6.2: never a DSN to the null sender. */
	if (msg->sender == NULL || !dsn_sender_ok(msg->sender, msg->smtputf8))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (rcpts[i].addr == NULL || rcpts[i].addr[0] == '\0')
			return -EINVAL;
	c.msg = msg;
	c.p = p;
	c.utf8 = msg->smtputf8;
	c.full_max = p->full_max ? p->full_max : DSN_FULL_MAX_DEFAULT;
	t = &dsn_texts[p->kind];

	buf_init(&text);
	buf_init(&part1);
	buf_init(&part2);
	buf_init(&part3);
	buf_init(&res);
	rc = dsn_original(&c, txn, &part3, &full);
	if (rc < 0)
		goto out;
	dsn_text(&c, rcpts, n, &text);
	dsn_qp(&part1, text.data, text.len);
	dsn_status_part(&c, rcpts, n, &part2);
	rc = dsn_boundary(p->dsn_id, parts, 3, boundary, sizeof boundary);
	if (rc < 0)
		goto out;
	eight = dsn_has_8bit(part2.data, part2.len) || dsn_has_8bit(part3.data, part3.len);

	dsn_head(&c, t, boundary, eight, &res);
	buf_printf(&res, "\r\n--%s\r\n", boundary);
	buf_append_str(&res, "Content-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
	buf_append(&res, part1.data, part1.len);

	buf_printf(&res, "\r\n--%s\r\n", boundary);
	buf_printf(&res, "Content-Description: Delivery report\r\n"
	    "Content-Type: message/%s\r\n",
	    c.utf8 ? "global-delivery-status" : "delivery-status");
	if (dsn_has_8bit(part2.data, part2.len))
		buf_append_str(&res, "Content-Transfer-Encoding: 8bit\r\n");
	buf_append_str(&res, "\r\n");
	buf_append(&res, part2.data, part2.len);

	/* A message that had no header at all leaves a two-part report. */
	if (part3.len > 0) {
		const char *type;

		if (full)
			type = c.utf8 ? "message/global" : "message/rfc822";
		else
			type = c.utf8 ? "message/global-headers" : "text/rfc822-headers";
		buf_printf(&res, "\r\n--%s\r\n", boundary);
		buf_printf(&res, "Content-Description: %s%s\r\nContent-Type: %s\r\n",
		    t->part3, full ? "" : " Headers", type);
		buf_printf(&res, "Content-Transfer-Encoding: %s\r\n\r\n",
		    dsn_has_8bit(part3.data, part3.len) ? "8bit" : "7bit");
		buf_append(&res, part3.data, part3.len);
	}
	buf_printf(&res, "\r\n--%s--\r\n", boundary);
	buf_append(out, res.data, res.len);
out:
	buf_free(&res);
	buf_free(&part3);
	buf_free(&part2);
	buf_free(&part1);
	buf_free(&text);
	return rc;
}

/* ------------------------------------------------------------ envelope */

int dsn_envelope_new(const struct queue_msg *orig, uint64_t dsn_id, int64_t now,
    const struct buf *body, struct queue_msg **out)
{
	struct queue_msg *m;
	struct queue_rcpt *r;

	*out = NULL;
	if (orig == NULL || orig->sender == NULL || orig->sender[0] == '\0' ||
	    body == NULL)
		return -EINVAL;
	m = xcalloc(1, sizeof *m);
	m->id = dsn_id;
	m->arrival = now;
	/* RFC 5321 section 4.5.5: the null reverse-path, so no DSN loops. */
	m->sender = xstrdup("");
	m->ret = QUEUE_RET_UNSET;
	m->body_type = dsn_has_8bit(body->data, body->len) ? QUEUE_BODY_8BITMIME :
	    QUEUE_BODY_7BIT;
	m->smtputf8 = orig->smtputf8;
	m->size = body->len;
	m->nchunks = (uint32_t)((body->len + QUEUE_CHUNK_MAX - 1) / QUEUE_CHUNK_MAX);
	m->client_addr = xstrdup("127.0.0.1");
	m->listener = xstrdup("dsn");
	m->nrcpts = 1;
	m->rcpts = r = xcalloc(1, sizeof *r);
	r->addr = xstrdup(orig->sender);
	r->notify = QUEUE_NOTIFY_NEVER;
	r->state = QUEUE_RCPT_PENDING;
	r->next_attempt = now;
	*out = m;
	return 0;
}
