/*
 * policy_tx: one mail transaction's policy state (policy.h), and the
 * resolver seam. A transaction carries, for the length of one message,
 * what the checks keep between stages: each row's message state (made by
 * its tx_new hook, fed by its body hook), the sender-authentication
 * results they share (struct authres), the header fields they want above
 * the message and the notes for its audit record. The session reads the
 * last two back at the commit.
 *
 * The resolver is the daemon's (relay/dns.c behind struct
 * policy_resolver): policy never includes a relay header, and checks
 * never make a resolver of their own, so every lookup a check makes has
 * the daemon's server, cache, timeout and DNSSEC handling.
 *
 * Entry points: policy_tx_new/free, policy_tx_body, policy_tx_headers,
 * policy_tx_notes, policy_tx_add_header, policy_tx_note,
 * policy_tx_authres, policy_tx_policy, policy_tx_store, policy_tx_add_notice,
 * policy_tx_notices,
 * policy_set_resolver, policy_resolve.
 * OWNERSHIP: the session owns a tx; the tx owns the rows' message states
 * (freed by their tx_free hooks) and its buffers. A check that still has
 * work in flight when its tx_free runs must detach from it (check.h).
 * THREADS: loop thread only.
 * ERRORS: none reported: added fields and notes past their bounds are
 * dropped with a log line (a message is not refused for a long comment).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/policy_int.h"

/* Bounds: what checks add stays far below a queue chunk (the head of a message). */
#define POLICY_TX_HEADERS_MAX (64 * 1024)
#define POLICY_TX_NOTES_MAX (8 * 1024)

struct policy_tx *policy_tx_new(struct policy *p, const char *listener_role,
    const char *session_id)
{
	struct policy_tx *tx = xcalloc(1, sizeof *tx);
	size_t role;

	tx->p = p;
	str_copy(tx->session_id, session_id ? session_id : "", sizeof tx->session_id);
	tx->states = xcalloc(p->nchecks ? p->nchecks : 1, sizeof *tx->states);
	buf_init(&tx->headers);
	buf_init(&tx->notes);
	if (policy__role_index(listener_role, &role) < 0)
		return tx; /* policy_run refuses an unknown role itself */
	for (size_t i = 0; i < p->nchecks; i++) {
		const struct policy_check *c = &p->checks[i];

		if (c->tx_new == NULL)
			continue;
		if (role != POLICY_ANY_ROLE && !(c->roles & POLICY_ROLE(role)))
			continue;
		tx->states[i] = c->tx_new(p->states[i], tx);
	}
	return tx;
}

void policy_tx_free(struct policy_tx *tx)
{
	if (tx == NULL)
		return;
	for (size_t i = tx->p->nchecks; i-- > 0;) {
		const struct policy_check *c = &tx->p->checks[i];

		if (tx->states[i] == NULL)
			continue;
		if (c->tx_free != NULL)
			c->tx_free(tx->states[i]);
		else
			free(tx->states[i]);
	}
	free(tx->states);
	buf_free(&tx->headers);
	buf_free(&tx->notes);
	for (size_t i = 0; i < tx->nnotices; i++) {
		free(tx->notices[i].to);
		free(tx->notices[i].message);
	}
	free(tx->notices);
	free(tx);
}

void policy_tx_add_notice(struct policy_tx *tx, const char *to, const char *message,
    size_t len)
{
	struct policy_notice *n;

	tx->notices = xreallocarray(tx->notices, tx->nnotices + 1, sizeof *tx->notices);
	n = &tx->notices[tx->nnotices++];
	n->to = xstrdup(to);
	n->message = xmalloc(len + 1);
	memcpy(n->message, message, len);
	n->message[len] = '\0';
	n->len = len;
}

const struct policy_notice *policy_tx_notices(const struct policy_tx *tx, size_t *n)
{
	*n = tx->nnotices;
	return tx->notices;
}

void policy_tx_body(struct policy_tx *tx, const char *data, size_t len)
{
	if (len == 0)
		return;
	for (size_t i = 0; i < tx->p->nchecks; i++) {
		const struct policy_check *c = &tx->p->checks[i];

		if (tx->states[i] != NULL && c->body != NULL)
			c->body(tx->states[i], data, len);
	}
}

/* NUL-terminated too (policy_tx_add_header keeps it so). */
const char *policy_tx_headers(const struct policy_tx *tx, size_t *len)
{
	*len = tx->headers.len;
	return tx->headers.len ? tx->headers.data : "";
}

const char *policy_tx_notes(const struct policy_tx *tx)
{
	/* policy_tx_note keeps the buffer NUL-terminated. */
	return tx->notes.len ? tx->notes.data : "";
}

struct policy *policy_tx_policy(const struct policy_tx *tx)
{
	return tx->p;
}

struct queue_store *policy_tx_store(const struct policy_tx *tx)
{
	return tx->p->store;
}

struct authres *policy_tx_authres(struct policy_tx *tx)
{
	return &tx->authres;
}

/*
 * A field goes into the stored message as it is: it must be one header
 * field, so a bare CR or LF, or a CRLF not followed by folding white
 * space, would let a check's input (a DNS comment, say) start a header
 * of its own. Such a field is dropped.
 */
static bool policy_field_is_safe(const char *field, size_t len)
{
	const char *colon = memchr(field, ':', len);

	if (colon == NULL || colon == field)
		return false;
	for (const char *p = field; p < colon; p++) {
		if (*p <= ' ' || *p >= 127)
			return false;
	}
	for (size_t i = 0; i < len; i++) {
		if (field[i] == '\0')
			return false;
		if (field[i] == '\n')
			return false; /* only as part of CRLF, checked below */
		if (field[i] == '\r') {
			if (i + 2 >= len || field[i + 1] != '\n' ||
			    (field[i + 2] != ' ' && field[i + 2] != '\t'))
				return false;
			i++;
		}
	}
	return true;
}

void policy_tx_add_header(struct policy_tx *tx, const char *field)
{
	size_t len = strlen(field);

	if (!policy_field_is_safe(field, len)) {
		log_err(tx->session_id, "policy: a check added a malformed header field (dropped)");
		return;
	}
	if (tx->headers.len + len + 2 > POLICY_TX_HEADERS_MAX) {
		log_warn(tx->session_id, "policy: added header fields past %d bytes (dropped)",
		    POLICY_TX_HEADERS_MAX);
		return;
	}
	buf_append(&tx->headers, field, len);
	buf_append(&tx->headers, "\r\n", 2);
	buf_cstr(&tx->headers);
}

void policy_tx_note(struct policy_tx *tx, const char *key, const char *fmt, ...)
{
	char value[1024];
	size_t before = tx->notes.len;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(value, sizeof value, fmt, ap);
	va_end(ap);
	/* "; " separates notes, so a value may not hold it; nor control bytes. */
	for (char *p = value; *p != '\0'; p++) {
		if ((unsigned char)*p < ' ' || *p == ';' || *p == 127)
			*p = ' ';
	}
	if (before + strlen(key) + strlen(value) + 4 > POLICY_TX_NOTES_MAX) {
		log_warn(tx->session_id, "policy: audit notes past %d bytes (note %s dropped)",
		    POLICY_TX_NOTES_MAX, key);
		return;
	}
	if (before > 0)
		buf_append(&tx->notes, "; ", 2);
	buf_printf(&tx->notes, "%s=%s", key, value);
	buf_cstr(&tx->notes);
}

/* ---------------------------------------------------------- resolver */

void policy_set_resolver(struct policy *p, const struct policy_resolver *r)
{
	p->resolver = *r;
}

int policy_resolve(struct policy *p, enum policy_dns_kind kind, const char *name,
    policy_dns_cb *cb, void *arg)
{
	if (p->resolver.lookup == NULL)
		return -ENOSYS;
	return p->resolver.lookup(p->resolver.ctx, kind, name, cb, arg);
}
