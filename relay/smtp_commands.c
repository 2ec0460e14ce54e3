/*
 * smtp_commands: the envelope verbs of the inbound session.
 *
 * Entry points (smtp_session_int.h, rows of the command table in
 * smtp_session.c): smtp__cmd_helo (HELO and EHLO), smtp__cmd_mail,
 * smtp__cmd_rcpt, smtp__cmd_rset, smtp__cmd_noop, smtp__cmd_quit,
 * smtp__cmd_help, smtp__cmd_vrfy, smtp__cmd_expn; smtp__expanded_max.
 *
 * The dispatcher has checked each row's preconditions (state, TLS, AUTH,
 * role) before a handler runs; the handler parses its argument, runs the
 * policy stage (MAIL, RCPT) and proceeds from the verdict's callback.
 * RCPT also bounds the message's final recipients, aliases expanded,
 * when the recipient is accepted (smtp_rcpt_bound), not at the commit,
 * and rewrites <Postmaster> to the postmaster's address before policy
 * (smtp_rcpt_postmaster).
 *
 * OWNERSHIP: MAIL begins s->tx, RCPT adds to it; the pending RCPT's path
 * and the policy request live in the session, so they outlive an
 * asynchronous policy run, which holds a session reference.
 * THREADS: loop thread only (the alias bound's read transaction included).
 * ERRORS: a bad argument is a 5xx reply counted toward max_bad_commands;
 * so is a refused recipient from outside trusted_networks, answered
 * later and later past rcpt_error_soft_limit (smtp_tarpit.c); a store
 * error while expanding a RCPT's aliases is 451 4.3.0 (counts nothing).
 */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "common/addr.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/receive.h"
#include "queue/tenancy.h"
#include "relay/smtp_parse.h"
#include "relay/smtp_session_int.h"

/* ---------------------------------------------------------- commands */

void smtp__cmd_helo(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	struct smtp_parse_error err;
	char name[SMTP_DOMAIN_MAX + 1];

	if (smtp_parse_helo(arg, name, sizeof name, &err) < 0) {
		smtp__reply_parse_error(s, &err);
		smtp__count_error(s);
		return;
	}
	/* RFC 5321 section 4.1.4: EHLO/HELO also resets any transaction. */
	smtp__tx_reset(s);
	str_copy(s->helo, name, sizeof s->helo);
	s->esmtp = cmd == SMTP_CMD_EHLO;
	smtp__set_state(s, SMTP_ST_READY);
	if (cmd == SMTP_CMD_HELO) {
		smtp__reply(s, 250, NULL, "%s", smtp__hostname(s));
		return;
	}
	smtp__reply_more(s, 250, "%s", smtp__hostname(s));
	smtp__reply_more(s, 250, "PIPELINING");
	smtp__reply_more(s, 250, "SIZE %llu", (unsigned long long)s->cfg->max_message_size);
	if (s->srv->tls && !s->tls_active && s->role != CFG_ROLE_SUBMISSIONS)
		smtp__reply_more(s, 250, "STARTTLS");
	smtp__reply_more(s, 250, "8BITMIME");
	smtp__reply_more(s, 250, "SMTPUTF8");
	smtp__reply_more(s, 250, "ENHANCEDSTATUSCODES");
	smtp__reply_more(s, 250, "CHUNKING");
	/* RFC 4954 section 4: no cleartext passwords, so AUTH only under TLS. */
	if (s->role != CFG_ROLE_MX && s->tls_active && s->srv->auth != NULL)
		smtp__reply_more(s, 250, "AUTH PLAIN LOGIN");
	smtp__reply(s, 250, NULL, "DSN");
}


/*
 * The bound on final recipients: QUEUE_RECEIVE_EXPANDED_MAX, or
 * max_recipients when a site allows more plain recipients than that.
 */
size_t smtp__expanded_max(const struct smtp_session *s)
{
	return s->cfg->max_recipients > QUEUE_RECEIVE_EXPANDED_MAX ?
	    (size_t)s->cfg->max_recipients : QUEUE_RECEIVE_EXPANDED_MAX;
}

static void smtp_mail_policy_done(void *arg, const struct verdict *v)
{
	struct smtp_session *s = arg;

	if (!s->closing) {
		s->busy = false;
		if (v->kind == VERDICT_CONTINUE || v->kind == VERDICT_ACCEPT) {
			smtp__set_state(s, SMTP_ST_MAIL);
			log_event(LOG_LVL_INFO, s->tx.qid_text, "client", s->peer_addr,
			    "sess", s->id, NULL);
			smtp__reply(s, 250, "2.1.0", "Ok");
		} else {
			smtp__policy_refused(s, "mail", v, NULL);
			smtp__tx_reset(s);
		}
		smtp__resume(s);
	}
	smtp__unref(s);
}

void smtp__cmd_mail(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	struct smtp_parse_error err;
	struct smtp_path path;
	struct smtp_mail_params params;
	const char *rest;

	(void)cmd;
	/* Parse with UTF-8 allowed, then hold it against the SMTPUTF8 parameter. */
	if (smtp_parse_path(arg, false, true, true, &path, &rest, &err) < 0 ||
	    smtp_parse_mail_params(rest, &params, &err) < 0) {
		smtp__reply_parse_error(s, &err);
		smtp__count_error(s);
		return;
	}
	if (path.is_utf8 && !params.smtputf8) {
		smtp__reply(s, 553, "5.6.7", "Error: non-ASCII address needs SMTPUTF8");
		smtp__count_error(s);
		return;
	}
	if (params.has_size && params.size > s->cfg->max_message_size) {
		smtp__reply(s, 552, "5.3.4", "Error: message file too big");
		return;
	}
	smtp__tx_reset(s);
	s->tx.active = true;
	s->tx.qid = queue_next_id(s->srv->store);
	queue_id_format(s->tx.qid, s->tx.qid_text);
	str_copy(s->tx.sender, path.addr, sizeof s->tx.sender);
	s->tx.params = params;
	/* Before the MAIL stage: its checks (SPF) record their results in it. */
	s->tx.ptx = policy_tx_new(s->srv->policy, cfg_role_name(s->role), s->tx.qid_text);
	smtp__fill_request(s, POLICY_STAGE_MAIL);
	s->busy = true;
	smtp__ref(s);
	policy_run(s->srv->policy, &s->preq, smtp_mail_policy_done, s);
}

/*
 * Counts the final recipients the pending RCPT brings once its aliases
 * are expanded (a read transaction: mmap lookups on the loop thread, as
 * the tenant check does) and refuses it when the message would go over
 * smtp__expanded_max. Refusing here, not at end of data, tells
 * the sender which recipient is the problem before the body is sent.
 *
 * Two codes, by whether a later transaction could succeed:
 * - the earlier recipients of this message fill the bound: 452 4.5.3,
 *   RFC 5321 section 4.5.3.1.10's "too many recipients"; the client
 *   sends to those it has and retries this one in a new transaction,
 *   where it fits;
 * - this recipient alone expands past the bound: no retry can ever fit,
 *   so the refusal is permanent. 550 5.5.3, not 552: section
 *   4.5.3.1.10 tells clients to treat a 552 "too many recipients" as
 *   452 and retry, which is the retry for ever this avoids.
 * A store error is 451 4.3.0: an alias that could not be read is never
 * taken for "not an alias" (that would queue the alias's own address).
 */
static bool smtp_rcpt_bound(struct smtp_session *s)
{
	struct queue_rcpt r = { .addr = s->pending_path.addr,
		.orcpt = s->pending_rparams.has_orcpt ? s->pending_rparams.orcpt : NULL,
		.notify = s->pending_rparams.notify };
	struct queue_expansion *alone;
	struct queue_txn *txn;
	struct verdict v;
	int rc;

	if (s->tx.expansion == NULL)
		s->tx.expansion = queue_expansion_new(smtp__expanded_max(s));
	if ((rc = queue_txn_begin(s->srv->store, false, &txn)) < 0)
		goto store_error;
	rc = queue_expansion_add(txn, s->tx.expansion, &r, NULL);
	if (rc == -E2BIG) {
		alone = queue_expansion_new(smtp__expanded_max(s));
		rc = queue_expansion_add(txn, alone, &r, NULL);
		queue_expansion_free(alone);
		if (rc == -E2BIG)
			policy_verdict_set(&v, VERDICT_REJECT, 550, "5.5.3",
			    "Too many recipients after alias expansion");
		else
			policy_verdict_set(&v, VERDICT_TEMPFAIL, 452, "4.5.3",
			    "Too many recipients after alias expansion; send the rest later");
		rc = -E2BIG;
	}
	queue_txn_abort(txn);
	if (rc >= 0)
		return true;
	if (rc == -E2BIG) {
		v.rule = "alias_limit";
		(void)smtp__rcpt_refused(s, &v);
		return false;
	}
store_error:
	log_err(s->tx.qid_text, "alias lookup failed: %s", queue_strerror(rc));
	policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0",
	    "<%s>: Temporary lookup failure, try again later", s->pending_path.addr);
	v.rule = "alias_lookup";
	(void)smtp__rcpt_refused(s, &v);
	return false;
}

static void smtp_rcpt_policy_done(void *arg, const struct verdict *v)
{
	struct smtp_session *s = arg;

	if (!s->closing) {
		s->busy = false;
		if ((v->kind == VERDICT_CONTINUE || v->kind == VERDICT_ACCEPT) &&
		    smtp_rcpt_bound(s)) {
			struct smtp_tx *tx = &s->tx;
			struct smtp_rcpt *r;

			tx->rcpts = xreallocarray(tx->rcpts, tx->nrcpt + 1, sizeof *tx->rcpts);
			r = &tx->rcpts[tx->nrcpt++];
			r->addr = xstrdup(s->pending_path.addr);
			r->orcpt = s->pending_rparams.has_orcpt ? xstrdup(s->pending_rparams.orcpt) : NULL;
			r->notify = s->pending_rparams.notify;
			if (s->state == SMTP_ST_MAIL)
				smtp__set_state(s, SMTP_ST_RCPT);
			smtp__reply(s, 250, "2.1.5", "Ok");
		} else if (v->kind != VERDICT_CONTINUE && v->kind != VERDICT_ACCEPT) {
			(void)smtp__rcpt_refused(s, v);
		}
		/* A refusal's reply may be held back (smtp_tarpit): it resumes then. */
		if (!s->busy)
			smtp__resume(s);
	}
	smtp__unref(s);
}

/* ------------------------------------------------------- <Postmaster> */

struct smtp_pm_walk {
	struct queue_txn *txn;
	char *out;
	size_t cap;
	bool found;
};

/* A domain of a root tenant (or of none) ends the walk with its postmaster. */
static int smtp_pm_walk_cb(void *arg, const struct queue_domain *d)
{
	struct smtp_pm_walk *w = arg;
	struct queue_tenant *t = NULL;
	bool root = d->tenant == NULL;
	int rc;

	if (!root) {
		rc = queue_tenant_get(w->txn, d->tenant, &t);
		if (rc == -ENOENT)
			return 0;
		if (rc < 0)
			return rc;
		root = t->parent == NULL;
		queue_tenant_free(t);
	}
	if (!root)
		return 0;
	w->found = snprintf(w->out, w->cap, "postmaster@%s", d->name) < (int)w->cap;
	return w->found ? 1 : 0;
}

/*
 * Where <Postmaster> goes: postmaster_address, else postmaster@ the first
 * domain (in the domain table's name order) of a root tenant or of no
 * tenant, looked up now so a domain added while running counts. 0,
 * -ENOENT when there is no such domain, or a store error.
 */
static int smtp_postmaster_address(struct smtp_session *s, char *out, size_t cap)
{
	struct smtp_pm_walk w = { NULL, out, cap, false };
	int rc;

	if (s->cfg->postmaster_address != NULL) {
		str_copy(out, s->cfg->postmaster_address, cap);
		return 0;
	}
	if ((rc = queue_txn_begin(s->srv->store, false, &w.txn)) < 0)
		return rc;
	rc = queue_domain_walk(w.txn, smtp_pm_walk_cb, &w);
	queue_txn_abort(w.txn);
	if (rc < 0)
		return rc;
	return w.found ? 0 : -ENOENT;
}

/*
 * RFC 5321 section 4.5.1: <Postmaster>, without a domain and in any case,
 * is accepted from anyone. With no domain it has no route, so it becomes
 * the postmaster's real address here, before any policy stage, and from
 * then on is checked, queued, audited and delivered like any recipient;
 * its ORCPT keeps what the client wrote unless the client sent its own.
 * false after a 451 reply when there is nowhere to send it (yet).
 */
static bool smtp_rcpt_postmaster(struct smtp_session *s)
{
	struct smtp_path *p = &s->pending_path;
	char addr[ADDR_MAX + 1];
	const char *at;
	int rc;

	rc = smtp_postmaster_address(s, addr, sizeof addr);
	at = rc == 0 ? strrchr(addr, '@') : NULL;
	if (at == NULL || (size_t)(at - addr) >= sizeof p->local ||
	    strlen(at + 1) >= sizeof p->domain || strlen(addr) >= sizeof p->addr) {
		log_event(LOG_LVL_WARN, s->id, "event", "postmaster_unroutable", "error",
		    rc == -ENOENT ? "no domain of a root tenant; set postmaster_address" :
		    queue_strerror(rc), NULL);
		smtp__reply(s, 451, "4.3.0", "<Postmaster>: no postmaster address yet, "
		    "try again later");
		return false;
	}
	str_copy(p->addr, addr, sizeof p->addr);
	memcpy(p->local, addr, (size_t)(at - addr));
	p->local[at - addr] = '\0';
	str_copy(p->domain, at + 1, sizeof p->domain);
	p->is_quoted = p->local[0] == '"';
	p->has_routing_chars = false;
	p->is_address_literal = false;
	p->is_utf8 = false;
	if (!s->pending_rparams.has_orcpt) {
		s->pending_rparams.has_orcpt = true;
		str_copy(s->pending_rparams.orcpt, "rfc822;Postmaster",
		    sizeof s->pending_rparams.orcpt);
	}
	return true;
}

void smtp__cmd_rcpt(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	struct smtp_parse_error err;
	const char *rest;

	(void)cmd;
	if (smtp_parse_path(arg, true, false, s->tx.params.smtputf8, &s->pending_path,
	        &rest, &err) < 0 ||
	    smtp_parse_rcpt_params(rest, &s->pending_rparams, &err) < 0) {
		smtp__reply_parse_error(s, &err);
		smtp__count_error(s);
		return;
	}
	/* RFC 5321 section 4.5.3.1.8: 452 4.5.3 when a message has too many. */
	if (s->tx.nrcpt >= s->cfg->max_recipients) {
		smtp__reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	if (s->pending_path.domain[0] == '\0' && !smtp_rcpt_postmaster(s))
		return;
	smtp__fill_request(s, POLICY_STAGE_RCPT);
	str_copy(s->preq_rcpt, s->pending_path.addr, sizeof s->preq_rcpt);
	str_copy(s->preq_domain, s->pending_path.domain, sizeof s->preq_domain);
	s->preq.rcpt = s->preq_rcpt;
	s->preq.rcpt_domain = s->preq_domain;
	s->preq.rcpt_routing_chars = s->pending_path.has_routing_chars;
	s->busy = true;
	smtp__ref(s);
	policy_run(s->srv->policy, &s->preq, smtp_rcpt_policy_done, s);
}

void smtp__cmd_rset(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	(void)cmd;
	(void)arg;
	smtp__tx_reset(s);
	if (s->state != SMTP_ST_INIT)
		smtp__set_state(s, SMTP_ST_READY);
	smtp__reply(s, 250, "2.0.0", "Ok");
}

void smtp__cmd_noop(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	(void)cmd;
	(void)arg;
	smtp__reply(s, 250, "2.0.0", "Ok");
}

void smtp__cmd_quit(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	(void)cmd;
	(void)arg;
	smtp__reply(s, 221, "2.0.0", "Bye");
	smtp__tx_reset(s);
	smtp__set_state(s, SMTP_ST_QUIT);
	s->close_after_flush = true;
}

void smtp__cmd_help(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	(void)cmd;
	(void)arg;
	smtp__reply(s, 214, "2.0.0", "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT "
	    "HELP VRFY STARTTLS; see RFC 5321");
}

void smtp__cmd_vrfy(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	(void)cmd;
	(void)arg;
	/* RFC 5321 section 3.5.3: 252 without saying whether the user exists. */
	smtp__reply(s, 252, "2.5.0",
	    "Cannot VRFY user, but will accept message and attempt delivery");
}

void smtp__cmd_expn(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	(void)cmd;
	(void)arg;
	smtp__reply(s, 502, "5.5.1", "Error: EXPN not available");
	smtp__count_error(s);
}
