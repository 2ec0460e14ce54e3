/*
 * smtp_headers: the header section of a message on its way to the queue.
 * Every body byte the client sends passes here after the policy checks
 * have seen it (policy_tx_body) and before it is stored:
 * - complete header lines go to the header scanner (rfc5322_scan: the
 *   From: address and the field counts the policy checks read), the
 *   same way for DATA and for BDAT's arbitrary pieces;
 * - an Authentication-Results field that claims our authserv-id is
 *   removed (RFC 8601 section 5): only our own field, added at the
 *   commit, may speak for this gateway. Such a field is held until it is
 *   complete (its folded lines may come in later pieces) and then
 *   dropped or stored.
 * After the empty line that ends the header section, bytes go straight
 * to the store without a copy.
 *
 * Entry points (smtp_session_int.h): smtp__hdr_feed, smtp__hdr_end.
 * OWNERSHIP: the line and held-field buffers live in the transaction
 * (struct smtp_hdrfilter) and are freed with it.
 * THREADS: loop thread only.
 * ERRORS: none: a line longer than a legal one (the message is refused
 * for it anyway) is passed through in pieces; a held field past
 * SMTP_HDR_HELD_MAX is dropped whatever it says (an A-R field that long
 * is no verdict a reader should trust).
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/rfc5322.h"
#include "policy/authres.h"
#include "relay/smtp_session_int.h"

#define SMTP_HDR_HELD_MAX (16 * 1024)
#define SMTP_HDR_LINE_MAX (SMTP_TEXTLINE_MAX + 2)

static const char smtp_ar_name[] = "Authentication-Results";

static const char *smtp_authserv_id(const struct smtp_session *s)
{
	return s->cfg->authserv_id ? s->cfg->authserv_id : smtp__hostname(s);
}

/* The field being held is complete: store it, or drop it when it claims us. */
static void smtp_hdr_release(struct smtp_session *s)
{
	struct smtp_hdrfilter *f = &s->tx.hdrf;

	if (!f->holding)
		return;
	f->holding = false;
	if (!f->held_overflow &&
	    !authres_claims_id(f->held.data, f->held.len, smtp_authserv_id(s))) {
		smtp__body_store(s, f->held.data, f->held.len);
	} else {
		s->tx.ar_removed++;
		log_event(LOG_LVL_INFO, s->tx.qid_text, "event", "header_removed", "header",
		    smtp_ar_name, "reason", f->held_overflow ? "too long" :
		    "claims our authserv-id (RFC 8601 section 5)", "client", s->peer_addr, NULL);
	}
	buf_reset(&f->held);
	f->held_overflow = false;
}

static bool smtp_hdr_is_ar(const char *line, size_t len)
{
	size_t n = sizeof smtp_ar_name - 1;

	if (len <= n || strncasecmp(line, smtp_ar_name, n) != 0)
		return false;
	while (n < len && (line[n] == ' ' || line[n] == '\t'))
		n++;
	return n < len && line[n] == ':';
}

/* One whole header line (with its line end) of the header section. */
static void smtp_hdr_line(struct smtp_session *s, const char *line, size_t len)
{
	struct smtp_hdrfilter *f = &s->tx.hdrf;
	size_t content = len;

	while (content > 0 && (line[content - 1] == '\n' || line[content - 1] == '\r'))
		content--;
	if (s->tx.hdr != NULL && !s->tx.hdr->done)
		rfc5322_scan_line(s->tx.hdr, line, content);
	if (content == 0) {
		smtp_hdr_release(s);
		f->done = true;
		smtp__body_store(s, line, len);
		return;
	}
	if (line[0] == ' ' || line[0] == '\t') {
		if (!f->holding) {
			smtp__body_store(s, line, len);
		} else if (f->held.len + len > SMTP_HDR_HELD_MAX) {
			f->held_overflow = true;
		} else {
			buf_append(&f->held, line, len);
		}
		return;
	}
	smtp_hdr_release(s);
	if (smtp_hdr_is_ar(line, content)) {
		f->holding = true;
		buf_append(&f->held, line, len);
		return;
	}
	smtp__body_store(s, line, len);
}

void smtp__hdr_feed(struct smtp_session *s, const char *data, size_t len)
{
	struct smtp_hdrfilter *f = &s->tx.hdrf;

	while (len > 0 && !f->done) {
		const char *lf = memchr(data, '\n', len);
		size_t take = lf ? (size_t)(lf - data) + 1 : len;

		if (f->line.len == 0 && lf != NULL) {
			/* The common case: a whole line in one piece, no copy. */
			smtp_hdr_line(s, data, take);
		} else if (f->line.len + take > SMTP_HDR_LINE_MAX) {
			/* Longer than any legal line: the message is refused for it. */
			smtp__body_store(s, f->line.data, f->line.len);
			smtp__body_store(s, data, take);
			buf_reset(&f->line);
		} else {
			buf_append(&f->line, data, take);
			if (lf != NULL) {
				smtp_hdr_line(s, f->line.data, f->line.len);
				buf_reset(&f->line);
			}
		}
		data += take;
		len -= take;
	}
	if (len > 0)
		smtp__body_store(s, data, len);
}

void smtp__hdr_end(struct smtp_session *s)
{
	struct smtp_hdrfilter *f = &s->tx.hdrf;

	if (f->done)
		return;
	if (f->line.len > 0) {
		/* A last line without its line end (BDAT): a line all the same. */
		smtp_hdr_line(s, f->line.data, f->line.len);
		buf_reset(&f->line);
	}
	smtp_hdr_release(s);
	f->done = true;
}

void smtp__hdr_free(struct smtp_hdrfilter *f)
{
	buf_free(&f->line);
	buf_free(&f->held);
	memset(f, 0, sizeof *f);
}
