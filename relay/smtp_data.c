/*
 * smtp_data: the mail transaction's body and its commit.
 *
 * Entry points (smtp_session_int.h): smtp__cmd_data, smtp__cmd_bdat
 * (RFC 3030), smtp__data_consume and smtp__bdat_consume (the input loop
 * in SMTP_ST_DATA and SMTP_ST_BDAT), smtp__tx_reset, smtp__tx_end.
 *
 * The body is dot-unstuffed once and streamed into queue chunks of at most
 * QUEUE_CHUNK_MAX bytes while it arrives (queue_receive_chunk_submit);
 * only CRLF.CRLF ends DATA (bare CR and bare LF poison the message, they
 * never end it: SMTP smuggling). For authenticated submissions the header
 * section is scanned for the DATA-stage policy. At the end of data the
 * DATA policy stage runs, then queue_receive_submit commits the message
 * (envelope, alias expansion, tenant facts, schedule, audit); the 250 is
 * sent from the commit completion only, when all of it is durable.
 *
 * OWNERSHIP: the transaction (s->tx) belongs to the session; body chunks
 * handed to the writer belong to the store. Until the commit is submitted,
 * smtp__tx_reset discards them; after, the commit's completion decides.
 * Each chunk, policy run and commit in flight holds a session reference.
 * THREADS: loop thread only; writer completions come back on the loop.
 * ERRORS: a body fault is a 5xx at end of data; store failures are 451 or
 * 452; a commit that finds too many recipients after expansion is 554.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/rfc5322.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/authres.h"
#include "queue/receive.h"
#include "relay/conn.h"
#include "relay/smtp_parse.h"
#include "relay/smtp_session_int.h"
#include "relay/tlsio.h"

static void smtp_finish_message(struct smtp_session *s);
static void smtp_commit(struct smtp_session *s, const struct verdict *quarantine);
static void smtp_chunk_flush(struct smtp_session *s);

/* ------------------------------------------------- in-flight memory */

/*
 * max_inflight_memory bounds the message bytes all sessions together
 * hold in memory before they are queued: srv->body_memory is the sum of
 * every session's chunk buffer (tx->chunk.len) and its chunks handed to
 * the writer and not yet written (inflight_bytes); a body tail leaves it
 * when it is handed to the commit (at most one chunk per session, for the
 * time of one group commit). Three rules keep the daemon from growing with the
 * number of senders:
 * - admission: a DATA, or the first BDAT of a message, while less than
 *   one chunk (QUEUE_CHUNK_MAX) of the budget is left is answered
 *   452 4.3.1, a temporary refusal the client retries later;
 * - backpressure: a session in DATA or BDAT stops reading while the
 *   budget is spent, after handing its partial chunk to the writer (so
 *   memory always drains: a paused session never sits on a buffer);
 * - wake-up: when a write or commit completes and the total is under the
 *   budget again, the paused sessions read again.
 * Bytes a session had already read when it paused are still stored, so
 * the total can pass the budget by at most one input buffer per session.
 */
static void smtp_mem_add(struct smtp_session *s, size_t n)
{
	s->srv->body_memory += n;
}

/* Releases n bytes; paused sessions read again once there is room. */
static void smtp_mem_sub(struct smtp_session *s, size_t n)
{
	struct smtp_server *srv = s->srv;

	srv->body_memory -= n < srv->body_memory ? n : srv->body_memory;
	if (!srv->body_memory_waiters || srv->body_memory >= srv->cfg->max_inflight_memory)
		return;
	srv->body_memory_waiters = false;
	for (struct smtp_session *x = srv->sessions; x != NULL; x = x->next) {
		if (x->body_memory_wait && !x->closing) {
			x->body_memory_wait = false;
			smtp__update_reading(x);
		}
	}
}

bool smtp__body_memory_wait(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;

	if ((s->state != SMTP_ST_DATA && s->state != SMTP_ST_BDAT) ||
	    s->srv->body_memory < s->cfg->max_inflight_memory) {
		s->body_memory_wait = false;
		return false;
	}
	if (!s->body_memory_wait) {
		/* Hand over what we hold: a paused session never pins memory. */
		smtp_chunk_flush(s);
		buf_free(&tx->chunk);
		s->body_memory_wait = true;
	}
	s->srv->body_memory_waiters = true;
	return true;
}

/* DATA or a message's first BDAT: false after a 452 when the budget is spent. */
static bool smtp_mem_admit(struct smtp_session *s)
{
	if (s->srv->body_memory + QUEUE_CHUNK_MAX <= s->cfg->max_inflight_memory)
		return true;
	log_event(LOG_LVL_WARN, s->id, "event", "inflight_memory_full", "client", s->peer_addr,
	    NULL);
	smtp__reply(s, 452, "4.3.1", "Insufficient system storage: too much mail in "
	    "transit, try again later");
	return false;
}

/* ------------------------------------------------------ queue writer */

/* Writer completion of one body chunk (queue_receive_chunk_submit). */
static void smtp_chunk_done(void *arg, int status, uint64_t qid, size_t len)
{
	struct smtp_session *s = arg;

	s->inflight_bytes -= len;
	smtp_mem_sub(s, len);
	if (s->tx.active && s->tx.qid == qid) {
		s->tx.chunks_inflight--;
		if (status < 0 && s->tx.chunk_error == 0)
			s->tx.chunk_error = status;
	}
	if (!s->closing) {
		/* The end of data may have been waiting for this chunk. */
		if (s->tx.active && s->tx.waiting_chunks && s->tx.chunks_inflight == 0) {
			s->tx.waiting_chunks = false;
			s->busy = false;
			smtp_finish_message(s);
		}
		smtp__update_reading(s);
		smtp__process_input(s);
	}
	smtp__unref(s);
}

static void smtp_chunk_flush(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;

	if (tx->chunk.len == 0)
		return;
	tx->chunks_inflight++;
	s->inflight_bytes += tx->chunk.len;
	smtp__ref(s);
	queue_receive_chunk_submit(s->srv->writer, tx->qid, tx->nchunks++, tx->chunk.data,
	    tx->chunk.len, smtp_chunk_done, s);
	buf_reset(&tx->chunk);
}

/* Deletes the chunks of a message that will never be committed. */
static void smtp_discard_chunks(struct queue_writer *writer, uint64_t qid)
{
	queue_receive_discard_submit(writer, qid);
}

/* ------------------------------------------------------- transaction */

void smtp__tx_reset(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;

	/*
	 * Once the commit is submitted its completion decides the chunks'
	 * fate: a client that hangs up while it is in flight must not delete
	 * the body of a message that is being queued.
	 */
	if (tx->active && tx->nchunks > 0 && !tx->commit_submitted)
		smtp_discard_chunks(s->srv->writer, tx->qid);
	for (size_t i = 0; i < tx->nrcpt; i++) {
		free(tx->rcpts[i].addr);
		free(tx->rcpts[i].orcpt);
	}
	free(tx->rcpts);
	queue_expansion_free(tx->expansion);
	smtp_mem_sub(s, tx->chunk.len);
	buf_free(&tx->chunk);
	free(tx->hdr);
	buf_free(&tx->head);
	smtp__hdr_free(&tx->hdrf);
	policy_tx_free(tx->ptx);
	memset(tx, 0, sizeof *tx);
}

/* Ends the transaction and returns to the after-EHLO state. */
void smtp__tx_end(struct smtp_session *s)
{
	smtp__tx_reset(s);
	if (s->state != SMTP_ST_QUIT && s->state != SMTP_ST_READY)
		smtp__set_state(s, SMTP_ST_READY);
}

/* -------------------------------------------------------------- body */

void smtp__body_store(struct smtp_session *s, const char *data, size_t len)
{
	struct smtp_tx *tx = &s->tx;

	while (len > 0) {
		size_t room = QUEUE_CHUNK_MAX - tx->chunk.len;
		size_t n = len < room ? len : room;

		buf_append(&tx->chunk, data, n);
		smtp_mem_add(s, n);
		tx->stored_bytes += n;
		data += n;
		len -= n;
		if (tx->chunk.len == QUEUE_CHUNK_MAX)
			smtp_chunk_flush(s);
	}
}

/*
 * Client body bytes: counted against max_message_size, shown to the
 * policy checks as the client sent them, then through the header filter
 * into the store.
 */
static void smtp_body_client(struct smtp_session *s, const char *data, size_t len)
{
	struct smtp_tx *tx = &s->tx;

	tx->client_bytes += len;
	if (tx->fault == SMTP_BODY_OK && tx->client_bytes > s->cfg->max_message_size)
		tx->fault = SMTP_BODY_TOO_BIG;
	if (tx->fault != SMTP_BODY_OK)
		return; /* the message will be refused: keep nothing more */
	if (tx->ptx != NULL)
		policy_tx_body(tx->ptx, data, len);
	smtp__hdr_feed(s, data, len);
}

static const char *smtp_protocol_name(const struct smtp_session *s)
{
	/* RFC 3848 and RFC 6531 section 3.7.3 "with" values. */
	bool utf8 = s->tx.params.smtputf8;

	if (!s->esmtp)
		return "SMTP";
	if (utf8)
		return s->tls_active ? "UTF8SMTPS" : "UTF8SMTP";
	return s->tls_active ? "ESMTPS" : "ESMTP";
}

/*
 * A recipient the Received header may name: its local part is a dot-atom
 * (RFC 5322 atext and single inner dots; UTF-8 as RFC 6532 allows, the
 * parser having required SMTPUTF8 for it). A quoted local part may hold
 * '>', ';' or spaces that would change what the trace line says, so it
 * is never copied there.
 */
static bool smtp_rcpt_is_plain(const char *addr)
{
	static const char specials[] = "!#$%&'*+-/=?^_`{|}~";
	const char *at = strrchr(addr, '@');
	bool dot_ok = false;

	if (at == NULL || at == addr)
		return false;
	for (const char *p = addr; p < at; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '.') {
			if (!dot_ok)
				return false;
			dot_ok = false;
			continue;
		}
		if (!(c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || (c != '\0' && strchr(specials, c) != NULL)))
			return false;
		dot_ok = true;
	}
	return dot_ok;
}

/* RFC 5321 section 4.4: the trace header we prepend to every message. */
static void smtp_body_begin(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;
	struct buf h;
	char date[64];

	buf_init(&h);
	time_format_rfc5322(time_now_ms(), date, sizeof date);
	buf_printf(&h, "Received: from %s ([%s])\r\n", s->helo[0] ? s->helo : "unknown",
	    s->peer_addr);
	if (s->tls_active)
		buf_printf(&h, "\t(using %s with cipher %s)\r\n", tlsio_version(s->tls),
		    tlsio_cipher(s->tls));
	buf_printf(&h, "\tby %s (govrelay) with %s id %s", smtp__hostname(s),
	    smtp_protocol_name(s), tx->qid_text);
	/*
	 * Naming the recipient only when there is one keeps Bcc private, and
	 * only a plain one: the header is no place for a quoted local part.
	 */
	if (tx->nrcpt == 1 && smtp_rcpt_is_plain(tx->rcpts[0].addr))
		buf_printf(&h, "\r\n\tfor <%s>", tx->rcpts[0].addr);
	buf_printf(&h, "; %s\r\n", date);
	tx->body_started = true;
	tx->at_line_start = true;
	tx->hdr = xmalloc(sizeof *tx->hdr);
	rfc5322_scan_init(tx->hdr);
	/* Chunk 0 is the head, written at the commit (smtp_commit). */
	tx->head = h;
	tx->nchunks = 1;
}

/* ----------------------------------------------------- DATA and BDAT */

void smtp__cmd_data(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	(void)cmd;
	(void)arg;
	if (!smtp_mem_admit(s))
		return;
	smtp__set_state(s, SMTP_ST_DATA);
	smtp_body_begin(s);
	smtp__reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

/*
 * RFC 3030 section 4: the octets of a refused chunk are read even so, or
 * they would be taken for commands; the session then returns to the state
 * it was in.
 */
static void smtp_bdat_refuse_chunk(struct smtp_session *s, uint64_t size, bool last)
{
	s->bdat_return_state = s->state;
	s->tx.bdat_remaining = size;
	s->tx.bdat_chunk_rejected = true;
	s->tx.bdat_last = last;
	smtp__set_state(s, SMTP_ST_BDAT);
	if (size == 0)
		smtp__bdat_consume(s);
}

void smtp__cmd_bdat(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	struct smtp_parse_error err;
	uint64_t size;
	bool last;

	(void)cmd;
	if (smtp_parse_bdat(arg, &size, &last, &err) < 0) {
		smtp__reply_parse_error(s, &err);
		smtp__count_error(s);
		return;
	}
	if (s->state != SMTP_ST_RCPT && s->state != SMTP_ST_BDAT_IDLE) {
		const char *why = s->state == SMTP_ST_INIT ? "Error: send HELO/EHLO first" :
		    s->state == SMTP_ST_READY ? "Error: need MAIL command" :
		    "Error: need RCPT command";

		smtp__reply(s, 503, "5.5.1", "%s", why);
		smtp_bdat_refuse_chunk(s, size, last);
		return;
	}
	/* Only a message's first chunk: later ones wait on backpressure. */
	if (!s->tx.body_started && !smtp_mem_admit(s)) {
		smtp_bdat_refuse_chunk(s, size, last);
		return;
	}
	if (!s->tx.body_started)
		smtp_body_begin(s);
	s->tx.bdat_remaining = size;
	s->tx.bdat_last = last;
	smtp__set_state(s, SMTP_ST_BDAT);
	if (size == 0) {
		/* A zero-length chunk completes at once (usually "BDAT 0 LAST"). */
		smtp__bdat_consume(s);
	}
}

/* ------------------------------------------------------ DATA reading */

/*
 * Consumes DATA body bytes from the conn's input. Returns true when it
 * made progress and the caller should loop again, false when it needs
 * more input.
 *
 * Lines are split at LF only to look at them: a line counts as properly
 * ended only with CRLF, and "." ends the data only when it is a whole line
 * that follows a CRLF and ends in CRLF. Anything else with a lone CR or LF
 * marks the message bad, but never ends it (SMTP smuggling).
 */
bool smtp__data_consume(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;
	struct conn_line l;
	const char *p;
	size_t linelen, content;

	if (!conn_line_get(s->conn, SMTP_TEXTLINE_MAX, &l)) {
		/*
		 * No line end yet. More than 1000 octets without LF cannot be a
		 * legal line (RFC 5321 section 4.5.3.1.6): the reader drops it as
		 * it arrives.
		 */
		if (l.long_line && tx->fault == SMTP_BODY_OK)
			tx->fault = SMTP_BODY_LINE_TOO_LONG;
		return false;
	}
	if (l.skipped) {
		tx->at_line_start = l.crlf;
		return true;
	}
	p = l.data;
	linelen = l.len;
	content = l.content;
	if (!l.crlf || l.bare_cr) {
		if (tx->fault == SMTP_BODY_OK)
			tx->fault = SMTP_BODY_BARE_NEWLINE;
	}
	if (l.crlf && tx->at_line_start && content == 1 && p[0] == '.') {
		smtp_finish_message(s);
		return true;
	}
	if (l.too_long && tx->fault == SMTP_BODY_OK)
		tx->fault = SMTP_BODY_LINE_TOO_LONG;
	if (tx->fault == SMTP_BODY_OK) {
		/* RFC 5321 section 4.5.2: remove exactly one leading dot. */
		if (tx->at_line_start && content > 0 && p[0] == '.') {
			p++;
			linelen--;
			content--;
		}
		smtp_body_client(s, p, linelen);
	}
	tx->at_line_start = l.crlf;
	return true;
}

/* BDAT chunk bytes: counted, no unstuffing; line rules still apply. */
bool smtp__bdat_consume(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;
	const char *data = smtp__in_data(s);
	size_t n = smtp__in_len(s);

	if (n == 0 && tx->bdat_remaining > 0)
		return false;
	if (n > tx->bdat_remaining)
		n = (size_t)tx->bdat_remaining;
	if (!tx->bdat_chunk_rejected) {
		for (size_t i = 0; i < n && tx->fault == SMTP_BODY_OK; i++) {
			char c = data[i];

			if (c == '\n') {
				if (!tx->bdat_prev_cr)
					tx->fault = SMTP_BODY_BARE_NEWLINE;
				tx->bdat_line_len = 0;
			} else {
				if (tx->bdat_prev_cr)
					tx->fault = SMTP_BODY_BARE_NEWLINE;
				if (++tx->bdat_line_len > SMTP_TEXTLINE_MAX - 2)
					tx->fault = SMTP_BODY_LINE_TOO_LONG;
			}
			tx->bdat_prev_cr = c == '\r';
		}
		smtp_body_client(s, data, n);
	}
	smtp__in_consume(s, n);
	tx->bdat_remaining -= n;
	if (tx->bdat_remaining > 0)
		return false;

	if (tx->bdat_chunk_rejected) {
		/* The refused chunk is gone: back where the BDAT found us. */
		tx->bdat_chunk_rejected = false;
		smtp__set_state(s, s->bdat_return_state);
		smtp__count_error(s);
		return true;
	}
	if (tx->bdat_last) {
		/* A chunk ending in CR leaves the CR unpaired. */
		if (tx->bdat_prev_cr && tx->fault == SMTP_BODY_OK)
			tx->fault = SMTP_BODY_BARE_NEWLINE;
		smtp_finish_message(s);
		return true;
	}
	smtp__reply(s, 250, "2.0.0", "%llu octets received",
	    (unsigned long long)tx->client_bytes);
	smtp__set_state(s, SMTP_ST_BDAT_IDLE);
	return true;
}

/* ------------------------------------------------------ end of data */

static void smtp_data_policy_done(void *arg, const struct verdict *v)
{
	struct smtp_session *s = arg;

	if (s->closing) {
		smtp__unref(s);
		return;
	}
	s->busy = false;
	if (v->kind == VERDICT_CONTINUE || v->kind == VERDICT_ACCEPT) {
		smtp_commit(s, NULL);
	} else if (v->kind == VERDICT_QUARANTINE) {
		log_event(LOG_LVL_INFO, s->tx.qid_text, "event", "quarantine", "rule",
		    v->rule ? v->rule : "-", "reason", v->text, "client", s->peer_addr, NULL);
		smtp_commit(s, v);
	} else {
		smtp__policy_refused(s, "data", v, NULL);
		smtp__tx_end(s);
		/*
		 * Shutdown let this session finish its message (as a commit's
		 * completion does): now that it is decided, say goodbye.
		 */
		if (s->srv->shutting_down && s->state != SMTP_ST_QUIT)
			smtp__goodbye(s, "4.3.2", "Service shutting down");
	}
	smtp__resume(s);
	smtp__unref(s);
}

static void smtp_refuse_message(struct smtp_session *s, int code, const char *enh,
    const char *text, const char *reason)
{
	struct verdict v;

	policy_verdict_set(&v, VERDICT_REJECT, code, enh, "%s", text);
	v.rule = reason;
	smtp__policy_refused(s, "data", &v, NULL);
	smtp__tx_end(s);
}

/* CRLF.CRLF (or BDAT LAST) has been read: decide, then commit. */
static void smtp_finish_message(struct smtp_session *s)
{
	struct smtp_tx *tx = &s->tx;

	switch (tx->fault) {
	case SMTP_BODY_BARE_NEWLINE:
		smtp_refuse_message(s, 550, "5.5.2",
		    "Error: bare <LF> or <CR> in message text (RFC 5321 section 2.3.8)",
		    "bare newline");
		return;
	case SMTP_BODY_LINE_TOO_LONG:
		smtp_refuse_message(s, 552, "5.3.4",
		    "Error: text line too long (RFC 5321 limit is 1000 octets)",
		    "line too long");
		return;
	case SMTP_BODY_TOO_BIG:
		smtp_refuse_message(s, 552, "5.3.4", "Error: message file too big",
		    "message too big");
		return;
	case SMTP_BODY_OK:
		break;
	}
	if (tx->chunks_inflight > 0) {
		/* Wait: a failed chunk must fail the message (smtp_chunk_done resumes). */
		tx->waiting_chunks = true;
		s->busy = true;
		return;
	}
	if (tx->chunk_error < 0) {
		if (tx->chunk_error == -ENOSPC)
			smtp__reply(s, 452, "4.3.1", "Insufficient system storage");
		else
			smtp__reply(s, 451, "4.3.0", "Error: queue write failed");
		smtp__tx_end(s);
		return;
	}
	smtp__hdr_end(s);
	/* Bodies that lack a final CRLF (possible with BDAT) get one. */
	if (tx->chunk.len > 0 && tx->chunk.data[tx->chunk.len - 1] != '\n')
		smtp__body_store(s, "\r\n", 2);
	memset(&s->preq, 0, sizeof s->preq);
	s->preq.stage = POLICY_STAGE_DATA;
	s->preq.session_id = s->id;
	s->preq.client_addr = s->peer_addr;
	s->preq.client_trusted = s->trusted;
	s->preq.listener_role = cfg_role_name(s->role);
	s->preq.tls = s->tls_active;
	s->preq.helo = s->helo;
	s->preq.sender = tx->sender;
	s->preq.nrcpt = tx->nrcpt;
	s->preq.auth_user = s->authenticated ? s->auth_user : NULL;
	s->preq.declared_size = tx->params.has_size ? tx->params.size : 0;
	s->preq.headers = tx->hdr;
	s->preq.size = tx->client_bytes;
	s->preq.tx = tx->ptx;
	s->busy = true;
	smtp__ref(s);
	policy_run(s->srv->policy, &s->preq, smtp_data_policy_done, s);
}

/* ------------------------------------------------------------ commit */

static void smtp_commit_done(void *arg, int status, const struct queue_receive *req,
    const struct queue_receive_result *res)
{
	struct smtp_session *s = arg;
	const struct queue_msg *m = &req->msg;
	char qid[QUEUE_ID_TEXT_LEN + 1];

	queue_id_format(m->id, qid);
	if (status == 0) {
		char from[SMTP_PATH_MAX + 3], size[24], nrcpt[24];

		snprintf(from, sizeof from, "<%s>", m->sender);
		snprintf(size, sizeof size, "%llu", (unsigned long long)m->size);
		snprintf(nrcpt, sizeof nrcpt, "%zu", res->nrcpts);
		log_event(LOG_LVL_INFO, qid, "from", from, "size", size, "nrcpt", nrcpt,
		    "client", m->client_addr, "tls", m->tls, "status",
		    req->quarantine_rule != NULL ? "quarantined" : "queued", NULL);
		if (s->srv->on_queued)
			s->srv->on_queued(s->srv->on_queued_arg);
		if (m->auth_user != NULL) {
			struct policy_request queued = { .stage = POLICY_STAGE_DATA,
				.auth_user = m->auth_user, .sender = m->sender };

			policy_message_queued(s->srv->policy, &queued);
		}
	} else {
		log_err(qid, "queue commit failed: %s", queue_strerror(status));
		/* The commit rolled back: its earlier chunks are orphans now. */
		if (m->nchunks > 0)
			smtp_discard_chunks(s->srv->writer, m->id);
	}
	if (!s->closing) {
		if (status == 0) {
			smtp__reply(s, 250, "2.0.0", "Ok: queued as %s", qid);
			s->junk = 0; /* a delivered message resets the junk count */
		} else if (status == -E2BIG) {
			/*
			 * An alias grew between RCPT (where the bound is checked)
			 * and now. Permanent, as at RCPT: a retry cannot fit either.
			 */
			struct verdict v;

			policy_verdict_set(&v, VERDICT_REJECT, 554, "5.5.3",
			    "Too many recipients after alias expansion");
			v.rule = "alias_limit";
			smtp__policy_refused(s, "data", &v, NULL);
		} else if (status == -ENOSPC) {
			smtp__reply(s, 452, "4.3.1", "Insufficient system storage");
		} else {
			smtp__reply(s, 451, "4.3.0", "Error: queue write failed");
		}
		s->busy = false;
		smtp__tx_end(s);
		if (s->srv->shutting_down) {
			smtp__reply(s, 421, "4.3.2", "%s Service shutting down", smtp__hostname(s));
			smtp__set_state(s, SMTP_ST_QUIT);
			s->close_after_flush = true;
		}
		smtp__update_reading(s);
		smtp__process_input(s);
	}
	smtp__unref(s);
}

/*
 * Chunk 0, above the message as the client sent it: our Received: line,
 * our Authentication-Results when a sender-authentication check ran
 * (RFC 8601: below the trace field of the hop that added it), then the
 * fields the checks added (Received-SPF, DKIM-Signature).
 */
static void smtp_head_build(struct smtp_session *s, struct buf *head)
{
	struct smtp_tx *tx = &s->tx;
	size_t added_len = 0;
	const char *added = tx->ptx ? policy_tx_headers(tx->ptx, &added_len) : "";

	buf_append(head, tx->head.data, tx->head.len);
	if (tx->ptx != NULL) {
		const struct authres *ar = policy_tx_authres(tx->ptx);

		if (ar->spf.result != AUTHRES_NOT_RUN || ar->dkim_ran ||
		    ar->dmarc.result != AUTHRES_NOT_RUN) {
			char field[8192];
			const char *id = s->cfg->authserv_id ? s->cfg->authserv_id :
			    smtp__hostname(s);

			if (authres_render(ar, id, field, sizeof field) > 0)
				buf_printf(head, "%s\r\n", field);
		}
	}
	buf_append(head, added, added_len);
}

/*
 * End of data with a passing verdict (or a quarantine verdict: the
 * message goes to the quarantine, out of delivery, with the verdict's
 * rule and words and the checks' notes): say what was accepted and let
 * queue/ store it (queue_receive_apply: aliases, tenants, schedule or
 * quarantine, audit). The 250 waits for the completion, in both cases.
 */
static void smtp_commit(struct smtp_session *s, const struct verdict *quarantine)
{
	struct smtp_tx *tx = &s->tx;
	struct queue_receive *req = xcalloc(1, sizeof *req);
	struct queue_msg *m = &req->msg;
	int64_t now = time_now_ms();
	char tlsdesc[128];

	m->id = tx->qid;
	m->arrival = now;
	m->sender = xstrdup(tx->sender);
	m->envid = tx->params.has_envid ? xstrdup(tx->params.envid) : NULL;
	m->ret = tx->params.ret;
	m->body_type = tx->params.body;
	m->smtputf8 = tx->params.smtputf8;
	m->declared_size = tx->params.has_size ? tx->params.size : 0;
	buf_init(&req->head);
	smtp_head_build(s, &req->head);
	m->size = tx->stored_bytes + req->head.len;
	if (quarantine != NULL) {
		/* The rule names are static strings (check table rows). */
		req->quarantine_rule = quarantine->rule ? quarantine->rule : "policy";
		req->quarantine_reason = xstrdup(quarantine->text);
		req->notices = smtp__policy_notices(s, &req->nnotices);
	}
	if (tx->ptx != NULL && policy_tx_notes(tx->ptx)[0] != '\0')
		req->notes = xstrdup(policy_tx_notes(tx->ptx));
	m->client_addr = xstrdup(s->peer_addr);
	m->helo = s->helo[0] ? xstrdup(s->helo) : NULL;
	m->listener = xstrdup(cfg_role_name(s->role));
	m->auth_user = s->authenticated ? xstrdup(s->auth_user) : NULL;
	if (s->tls_active) {
		snprintf(tlsdesc, sizeof tlsdesc, "%s %s", tlsio_version(s->tls), tlsio_cipher(s->tls));
		m->tls = xstrdup(tlsdesc);
	}
	m->nrcpts = tx->nrcpt;
	m->rcpts = xcalloc(tx->nrcpt ? tx->nrcpt : 1, sizeof *m->rcpts);
	for (size_t i = 0; i < tx->nrcpt; i++) {
		struct queue_rcpt *r = &m->rcpts[i];

		r->addr = xstrdup(tx->rcpts[i].addr);
		r->orcpt = tx->rcpts[i].orcpt ? xstrdup(tx->rcpts[i].orcpt) : NULL;
		r->notify = tx->rcpts[i].notify;
		r->state = QUEUE_RCPT_PENDING;
		r->next_attempt = now;
	}
	/* The tail of the body rides in the commit itself: one write for small mail. */
	buf_init(&req->body);
	if (tx->chunk.len > 0) {
		req->body_seq = tx->nchunks++;
		buf_append(&req->body, tx->chunk.data, tx->chunk.len);
		/* The commit's own copy is short-lived: it leaves the budget here. */
		smtp_mem_sub(s, tx->chunk.len);
		buf_free(&tx->chunk);
	}
	m->nchunks = tx->nchunks;
	/* The commit expands again (aliases may have grown since RCPT). */
	req->expanded_max = smtp__expanded_max(s);
	s->busy = true;
	tx->commit_submitted = true;
	smtp__ref(s);
	queue_receive_submit(s->srv->writer, req, smtp_commit_done, s);
}
