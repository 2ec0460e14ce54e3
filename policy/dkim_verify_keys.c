/*
 * dkim_verify_keys: the DKIM verify check's key lookups and results (the
 * rest of the check is policy/stage_dkim_verify.c, which says how they fit).
 *   - the asynchronous TXT lookup of each distinct SELECTOR._domainkey.DOMAIN
 *     (RFC 6376 3.6.2) through the daemon's resolver, its answer kept in
 *     the message state;
 *   - the key callback libopendkim calls inside dkim_eom on the thread
 *     pool, answered from those answers only;
 *   - each signature's result in RFC 8601 words: pass only when the header
 *     signature verified AND the body hash matched (DEPENDENCIES.md 5:
 *     libopendkim sets PASSED on a bad body hash), not when l= leaves part
 *     of the body unsigned (RFC 6376 8.2), temperror for a DNS failure,
 *     permerror for a missing or unusable key, a malformed signature or
 *     rsa-sha1 (RFC 8301);
 *   - the canonical body length per canonicalization, counted as the body
 *     streams, that the l= rule compares with.
 *
 * Entry points: stage_dkimv__keys_start (after the header section),
 * stage_dkimv__keys_preset (before dkim_eom), stage_dkimv__key_lookup
 * (libopendkim's callback), stage_dkimv__report (results into authres and
 * the audit notes), stage_dkimv__bodylen_feed/_total.
 * OWNERSHIP: keys live in the message state; an answer is copied out of
 * the resolver's borrowed buffer in its callback.
 * THREADS: loop thread, except stage_dkimv__key_lookup (thread pool, read only).
 * ERRORS: none returned: every failure becomes a signature's result.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "policy/dkim_verify_int.h"

/* A key name we are willing to ask for: LDH labels plus "_", 1-63 bytes each. */
static bool stage_dkimv_name_ok(const char *name)
{
	size_t label = 0, total = 0;

	for (const char *p = name; *p != '\0'; p++, total++) {
		unsigned char c = (unsigned char)*p;

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0 && total <= STAGE_DKIMV_NAME_MAX;
}

static void stage_dkimv_key_name(DKIM_SIGINFO *sig, char *out, size_t outlen)
{
	const char *s = (const char *)dkim_sig_getselector(sig);
	const char *d = (const char *)dkim_sig_getdomain(sig);
	int n;

	out[0] = '\0';
	if (s == NULL || d == NULL)
		return;
	n = snprintf(out, outlen, "%s._domainkey.%s", s, d);
	if (n < 0 || (size_t)n >= outlen)
		out[0] = '\0';
}

/*
 * The resolver's answer: the record libopendkim will read. Several TXT
 * records: the first that holds a p= tag (RFC 6376 3.6.2.2 leaves the
 * choice to the verifier).
 */
static void stage_dkimv_key_answer(struct stage_dkimv_key *k,
    const struct policy_dns_answer *ans)
{
	size_t i, pick = 0;

	switch (ans->status) {
	case POLICY_DNS_OK:
		break;
	case POLICY_DNS_NODATA:
	case POLICY_DNS_NXDOMAIN:
		k->state = STAGE_DKIMV_KEY_NOTFOUND;
		return;
	case POLICY_DNS_TEMPFAIL:
	default:
		k->state = STAGE_DKIMV_KEY_TEMPFAIL;
		snprintf(k->reason, sizeof k->reason, "key lookup failed: %s",
		    ans->error != NULL && ans->error[0] != '\0' ? ans->error : "DNS error");
		return;
	}
	if (ans->n == 0) {
		k->state = STAGE_DKIMV_KEY_NOTFOUND;
		return;
	}
	for (i = 0; i < ans->n; i++) {
		if (memmem(ans->rr[i], ans->len[i], "p=", 2) != NULL) {
			pick = i;
			break;
		}
	}
	if (ans->len[pick] > STAGE_DKIMV_KEY_TXT_MAX) {
		k->state = STAGE_DKIMV_KEY_BAD;
		str_copy(k->reason, "key record too long", sizeof k->reason);
	} else if (memchr(ans->rr[pick], '\0', ans->len[pick]) != NULL) {
		k->state = STAGE_DKIMV_KEY_BAD;
		str_copy(k->reason, "key record holds a NUL byte", sizeof k->reason);
	} else {
		memcpy(k->txt, ans->rr[pick], ans->len[pick]);
		k->txt[ans->len[pick]] = '\0';
		k->state = STAGE_DKIMV_KEY_OK;
	}
}

static void stage_dkimv_key_cb(void *arg, const struct policy_dns_answer *ans)
{
	struct stage_dkimv_key *k = arg;
	struct stage_dkimv_tx *t = k->t;

	/* After the wait gave up, keys[] belongs to dkim_eom: too late, dropped. */
	if (t->phase == STAGE_DKIMV_PH_HEADER || t->phase == STAGE_DKIMV_PH_BODY)
		stage_dkimv_key_answer(k, ans);
	t->pending--;
	stage_dkimv__keys_done(t);
	stage_dkimv__unref(t);
}

/* The key of signature i: an existing lookup of the same name, or a new one. */
static int stage_dkimv_key_for(struct stage_dkimv_tx *t, const char *name)
{
	struct stage_dkimv_key *k;
	int rc;

	for (size_t j = 0; j < t->nkeys; j++)
		if (strcasecmp(t->keys[j].name, name) == 0)
			return (int)j;
	k = &t->keys[t->nkeys];
	memset(k, 0, sizeof *k);
	k->t = t;
	str_copy(k->name, name, sizeof k->name);
	k->state = STAGE_DKIMV_KEY_PENDING;
	t->pending++;
	t->refs++;
	rc = policy_resolve(t->p, POLICY_DNS_TXT, name, stage_dkimv_key_cb, k);
	if (rc < 0) {
		/* The callback will not run: undo what it would have undone. */
		t->pending--;
		t->refs--;
		k->state = rc == -EINVAL ? STAGE_DKIMV_KEY_BAD : STAGE_DKIMV_KEY_TEMPFAIL;
		snprintf(k->reason, sizeof k->reason, "%s",
		    rc == -EINVAL ? "key name refused by the resolver" :
		    "key lookup failed: no resolver");
	}
	return (int)t->nkeys++;
}

void stage_dkimv__keys_start(struct stage_dkimv_tx *t)
{
	char name[STAGE_DKIMV_NAME_MAX + 64];

	for (int i = 0; i < t->nsigs; i++) {
		DKIM_SIGINFO *sig = t->sigs[i];
		struct stage_dkimv_sig *s;
		int err = dkim_sig_geterror(sig);
		ssize_t signlen = -1;
		dkim_alg_t alg = DKIM_SIGN_UNKNOWN;

		if (i >= STAGE_DKIMV_MAX_SIGS) {
			/* Bounded work per message: counted, never looked up. */
			dkim_sig_ignore(sig);
			continue;
		}
		s = &t->sig[i];
		s->key = -1;
		s->preset = AUTHRES_NOT_RUN;
		if (err != DKIM_SIGERROR_UNKNOWN && err != DKIM_SIGERROR_OK)
			continue;   /* malformed: libopendkim's error is the result */
		if (dkim_sig_getsignalg(sig, &alg) == DKIM_STAT_OK && alg == DKIM_SIGN_RSASHA1) {
			/* RFC 8301 3.1: rsa-sha1 must not be used for verifying. */
			s->preset = AUTHRES_PERMERROR;
			str_copy(s->reason, "rsa-sha1 is not accepted (RFC 8301)", sizeof s->reason);
			continue;
		}
		if (dkim_sig_getcanonlen(t->dkim, sig, NULL, NULL, &signlen) == DKIM_STAT_OK &&
		    signlen >= 0)
			t->want_len = true;
		stage_dkimv_key_name(sig, name, sizeof name);
		if (!stage_dkimv_name_ok(name)) {
			s->preset = AUTHRES_PERMERROR;
			str_copy(s->reason, "invalid d= or s=", sizeof s->reason);
			continue;
		}
		s->key = stage_dkimv_key_for(t, name);
	}
}

void stage_dkimv__keys_preset(struct stage_dkimv_tx *t)
{
	for (int i = 0; i < t->nsigs && i < STAGE_DKIMV_MAX_SIGS; i++) {
		struct stage_dkimv_sig *s = &t->sig[i];

		if (s->key >= 0) {
			const struct stage_dkimv_key *k = &t->keys[s->key];

			switch (k->state) {
			case STAGE_DKIMV_KEY_OK:
				break;
			case STAGE_DKIMV_KEY_NOTFOUND:
				s->preset = AUTHRES_PERMERROR;
				str_copy(s->reason, "no key for signature", sizeof s->reason);
				break;
			case STAGE_DKIMV_KEY_BAD:
				s->preset = AUTHRES_PERMERROR;
				str_copy(s->reason, k->reason, sizeof s->reason);
				break;
			case STAGE_DKIMV_KEY_TEMPFAIL:
			case STAGE_DKIMV_KEY_PENDING:
				s->preset = AUTHRES_TEMPERROR;
				str_copy(s->reason, k->state == STAGE_DKIMV_KEY_PENDING ?
				    "key lookup did not finish" : k->reason, sizeof s->reason);
				break;
			}
		}
		/* Decided already: libopendkim must not ask for its key. */
		if (s->preset != AUTHRES_NOT_RUN)
			dkim_sig_ignore(t->sigs[i]);
	}
}

DKIM_CBSTAT stage_dkimv__key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, unsigned char *buf,
    size_t buflen)
{
	const struct stage_dkimv_tx *t = dkim_get_user_context(dkim);
	char name[STAGE_DKIMV_NAME_MAX + 64];

	if (t == NULL)
		return DKIM_CBSTAT_NOTFOUND;
	stage_dkimv_key_name(sig, name, sizeof name);
	for (size_t j = 0; j < t->nkeys; j++) {
		const struct stage_dkimv_key *k = &t->keys[j];
		size_t n;

		if (k->state != STAGE_DKIMV_KEY_OK || strcasecmp(k->name, name) != 0)
			continue;
		n = strlen(k->txt);
		if (n >= buflen)
			break;
		memcpy(buf, k->txt, n + 1);
		return DKIM_CBSTAT_CONTINUE;
	}
	/* Never DEFAULT: that would send libopendkim to its own resolver. */
	return DKIM_CBSTAT_NOTFOUND;
}

/* ------------------------------------------------------------- l= */

/*
 * Counts the canonical body length (RFC 6376 3.4.3 simple, 3.4.4 relaxed)
 * without keeping the body: empty lines count only once content follows
 * them (trailing empty lines are ignored); relaxed drops whitespace at the
 * end of a line and turns each run of it into one SP. A CR counts with the
 * LF after it; a lone CR is content (rare; libopendkim may differ on such
 * broken bodies, which only matters for l=).
 */
static void stage_dkimv_bodylen_eol(struct stage_dkimv_bodylen *bl)
{
	if (bl->line == 0) {
		bl->blanks += 2;
	} else {
		bl->committed += bl->blanks + bl->line + 2;
		bl->blanks = 0;
	}
	bl->line = 0;
	bl->wsp = false;
}

/* One byte of line content, after the whitespace that waited before it. */
static void stage_dkimv_bodylen_content(struct stage_dkimv_bodylen *bl)
{
	if (bl->wsp) {
		bl->line++;
		bl->wsp = false;
	}
	bl->line++;
}

void stage_dkimv__bodylen_feed(struct stage_dkimv_bodylen *bl, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)data[i];

		if (bl->cr) {
			bl->cr = false;
			if (c == '\n') {
				stage_dkimv_bodylen_eol(bl);
				continue;
			}
			stage_dkimv_bodylen_content(bl);   /* a lone CR */
		}
		if (c == '\r') {
			bl->cr = true;   /* the line end, if an LF follows */
		} else if (c == '\n') {
			stage_dkimv_bodylen_eol(bl);
		} else if (bl->relaxed && (c == ' ' || c == '\t')) {
			bl->wsp = true;
		} else {
			stage_dkimv_bodylen_content(bl);
		}
	}
}

uint64_t stage_dkimv__bodylen_total(const struct stage_dkimv_bodylen *bl)
{
	uint64_t n = bl->committed, line = bl->line + (bl->cr ? 1 : 0);

	/* A last line without CRLF gets one (3.4.3, 3.4.4). */
	if (line > 0)
		n += bl->blanks + line + 2;
	/* simple: an empty body is one CRLF; relaxed: empty (RFC 6376 errata 3192 aside). */
	if (n == 0 && !bl->relaxed)
		n = 2;
	return n;
}

/* ---------------------------------------------------------- results */

/* Does l= leave part of this canonical body unsigned? */
bool stage_dkimv__short_l(const struct stage_dkimv_tx *t, DKIM_SIGINFO *sig)
{
	ssize_t signlen = -1;
	dkim_canon_t hc = DKIM_CANON_SIMPLE, bc = DKIM_CANON_SIMPLE;

	if (dkim_sig_getcanonlen(t->dkim, sig, NULL, NULL, &signlen) != DKIM_STAT_OK ||
	    signlen < 0)
		return false;
	(void)dkim_sig_getcanons(sig, &hc, &bc);
	return (uint64_t)signlen < stage_dkimv__bodylen_total(bc == DKIM_CANON_RELAXED ?
	    &t->len_relaxed : &t->len_simple);
}

static enum authres_result stage_dkimv_result(const struct stage_dkimv_tx *t, DKIM_SIGINFO *sig,
    char *reason, size_t rlen)
{
	unsigned int flags = dkim_sig_getflags(sig);
	int bh = dkim_sig_getbh(sig), err = dkim_sig_geterror(sig);
	bool clean = err == DKIM_SIGERROR_UNKNOWN || err == DKIM_SIGERROR_OK;
	const char *es;

	reason[0] = '\0';
	if (!t->eom_ran) {
		str_copy(reason, "not verified: internal error", rlen);
		return AUTHRES_TEMPERROR;
	}
	if (err == DKIM_SIGERROR_NOKEY) {
		str_copy(reason, "no key for signature", rlen);
		return AUTHRES_PERMERROR;
	}
	if (err == DKIM_SIGERROR_KEYFAIL) {
		str_copy(reason, "key unavailable", rlen);
		return AUTHRES_TEMPERROR;
	}
	if ((flags & DKIM_SIGFLAG_PASSED) && bh == DKIM_SIGBH_MATCH && clean) {
		if (!stage_dkimv__short_l(t, sig))
			return AUTHRES_PASS;
		str_copy(reason, "l= does not cover the body", rlen);
		return AUTHRES_POLICY;
	}
	if ((flags & DKIM_SIGFLAG_PROCESSED) && bh == DKIM_SIGBH_MISMATCH) {
		str_copy(reason, "body hash did not verify", rlen);
		return AUTHRES_FAIL;
	}
	if (err == DKIM_SIGERROR_BADSIG || ((flags & DKIM_SIGFLAG_PROCESSED) && clean)) {
		str_copy(reason, "signature did not verify", rlen);
		return AUTHRES_FAIL;
	}
	if (!clean) {
		es = dkim_sig_geterrorstr(err);
		str_copy(reason, es != NULL ? es : "unusable signature", rlen);
		return AUTHRES_PERMERROR;
	}
	snprintf(reason, rlen, "not verified: %s", dkim_getresultstr(t->eom_status));
	return AUTHRES_TEMPERROR;
}

static const char *stage_dkimv_alg_name(DKIM_SIGINFO *sig)
{
	dkim_alg_t alg = DKIM_SIGN_UNKNOWN;

	if (dkim_sig_getsignalg(sig, &alg) != DKIM_STAT_OK)
		return "unknown";
	switch (alg) {
	case DKIM_SIGN_RSASHA256: return "rsa-sha256";
	case DKIM_SIGN_RSASHA1: return "rsa-sha1";
	case DKIM_SIGN_ED25519SHA256: return "ed25519-sha256";
	default: return "unknown";
	}
}

/* One signature into authres and the audit notes. */
static void stage_dkimv_report_sig(struct stage_dkimv_tx *t, int i, struct authres_dkim_sig *e)
{
	DKIM_SIGINFO *sig = t->sigs[i];
	const struct stage_dkimv_sig *s = &t->sig[i];
	const char *d = (const char *)dkim_sig_getdomain(sig);
	const char *sel = (const char *)dkim_sig_getselector(sig);
	size_t blen = sizeof e->b_prefix - 1;

	memset(e, 0, sizeof *e);
	str_copy(e->domain, d != NULL ? d : "", sizeof e->domain);
	str_copy(e->selector, sel != NULL ? sel : "", sizeof e->selector);
	str_copy(e->algorithm, stage_dkimv_alg_name(sig), sizeof e->algorithm);
	if (dkim_sig_getidentity(t->dkim, sig, (unsigned char *)e->identity,
	    sizeof e->identity) != DKIM_STAT_OK)
	{
		e->identity[0] = '@';   /* RFC 6376 3.5: i= defaults to "@" d= */
		str_copy(e->identity + 1, e->domain, sizeof e->identity - 1);
	}
	if (dkim_get_sigsubstring(t->dkim, sig, e->b_prefix, &blen) == DKIM_STAT_OK)
		e->b_prefix[blen < sizeof e->b_prefix ? blen : sizeof e->b_prefix - 1] = '\0';
	else
		e->b_prefix[0] = '\0';
	if (s->preset != AUTHRES_NOT_RUN) {
		e->result = s->preset;
		str_copy(e->reason, s->reason, sizeof e->reason);
	} else {
		e->result = stage_dkimv_result(t, sig, e->reason, sizeof e->reason);
	}
	policy_tx_note(t->tx, "dkim", "d=%s s=%s a=%s %s%s%s%s", e->domain[0] ? e->domain : "-",
	    e->selector[0] ? e->selector : "-", e->algorithm, authres_result_name(e->result),
	    e->reason[0] ? " (" : "", e->reason, e->reason[0] ? ")" : "");
}

void stage_dkimv__report(struct stage_dkimv_tx *t)
{
	struct authres *ar = policy_tx_authres(t->tx);
	int n;

	ar->dkim_ran = true;

	if (t->dkim == NULL || t->sigs == NULL || t->nsigs <= 0) {
		/* Nothing verified: unsigned, or stopped early (the reason says). */
		ar->ndkim = 0;
		ar->ndkim_total = t->nsigfields;
		if (t->stop_reason[0] != '\0')
			policy_tx_note(t->tx, "dkim", "none (%s)", t->stop_reason);
		return;
	}
	n = t->nsigs < STAGE_DKIMV_MAX_SIGS ? t->nsigs : STAGE_DKIMV_MAX_SIGS;
	ar->ndkim = 0;
	for (int i = 0; i < n; i++)
		stage_dkimv_report_sig(t, i, &ar->dkim[ar->ndkim++]);
	ar->ndkim_total = (size_t)t->nsigs;
	if (t->nsigs > n)
		policy_tx_note(t->tx, "dkim", "%d more signatures not checked (limit %d)",
		    t->nsigs - n, STAGE_DKIMV_MAX_SIGS);
	if (t->stop_reason[0] != '\0')
		policy_tx_note(t->tx, "dkim_error", "%s", t->stop_reason);
}
