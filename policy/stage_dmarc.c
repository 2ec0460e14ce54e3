/*
 * stage_dmarc: DMARC (RFC 7489), the "dmarc" row of policy/checks.c. At
 * DATA, on mx listeners, for clients outside trusted_networks that did
 * not authenticate: the From: domain (one domain; the "headers" row
 * before it made sure there is one From: field) is checked against the
 * SPF and DKIM results the rows before it left in the transaction's
 * struct authres, under the policy the domain publishes at
 * _dmarc.DOMAIN, or at _dmarc.ORGDOMAIN (the organizational domain,
 * found with the public suffix list), fetched through the daemon's
 * resolver (policy_resolve), never libopendmarc's own DNS: the record we
 * fetched is handed to libopendmarc, which parses it.
 *
 *   pass (an aligned SPF or DKIM pass) -> continue
 *   fail, p=reject                      -> 550 5.7.1
 *   fail, p=quarantine                  -> VERDICT_QUARANTINE, the quarantine
 *                                          ("DMARC policy of DOMAIN says
 *                                          quarantine")
 *   fail, p=none; no record             -> continue
 *   pct= below 100: the policy applies to that share of failing mail;
 *   the rest gets the next milder one (RFC 7489 6.6.4).
 *   a From: domain of ours (the domain table) without SPF or DKIM
 *   alignment -> 550 5.7.1 whatever the policy, even with no record: the
 *   city's mail comes from the city's servers.
 *
 * Temporary errors (our choice; RFC 7489 leaves it to the receiver): when
 * the record cannot be fetched (DNS tempfail) and no aligned identifier
 * passed, the policy that would apply is unknown and a reject or
 * quarantine may be due, so the answer is 451 4.7.0 and the sender's
 * server retries; accepting would let a forger use a DNS outage (which he
 * may cause) to pass. With an aligned pass no policy can act, so a
 * tempfail there does not delay the message (dmarc=temperror is noted).
 * Likewise a message whose only aligned identifier failed temporarily
 * (an aligned DKIM key not fetched) is deferred, not rejected, when the
 * policy would act.
 *
 * Results go to authres->dmarc (the session renders our one
 * Authentication-Results field from it) and to the audit notes:
 * dmarc, header_from, dmarc_policy, dmarc_disposition, dmarc_spf,
 * dmarc_spf_domain, dmarc_spf_aligned, dmarc_dkim, dmarc_dkim_domain,
 * dmarc_dkim_aligned (read back by `govrelayctl dmarc report`,
 * admin/dmarc.c).
 *
 * Entry points: stage_dmarc_new/free (the `dmarc` key; loads the public
 * suffix list), stage_dmarc_run (DATA), stage_dmarc_tx_new/tx_free (the
 * pending lookup of a message), and the pure functions of stage_dmarc.h.
 * OWNERSHIP: a lookup owns its context; the transaction state points at
 * it while it is pending, and a transaction that ends first orphans it
 * (the answer then only completes the call).
 * THREADS: loop thread (DNS answers arrive on it).
 * ERRORS: a store failure is 451 4.3.0; a From: that cannot be read is
 * 550 5.6.0; DNS failures as above.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>
#include <unistd.h>

#include <opendmarc/dmarc.h>
#include <uv.h>

#include "common/addr.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/rfc5322.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/check.h"
#include "policy/stage_dmarc.h"
#include "queue/queue.h"

policy_check_new_fn stage_dmarc_new;
policy_check_free_fn stage_dmarc_free;
policy_check_run_fn stage_dmarc_run;
policy_check_tx_new_fn stage_dmarc_tx_new;
policy_check_tx_free_fn stage_dmarc_tx_free;

/* Not in <opendmarc/dmarc.h>, but exported by libopendmarc 1.4. */
int opendmarc_get_tld(u_char *domain, u_char *tld, size_t tld_len);

/* A DMARC record longer than this is not one (libopendmarc copies into BUFSIZ). */
#define SD_RECORD_MAX 4000
#define SD_NAME_MAX 253

static const char sd_rule_ours[] = "dmarc-own-domain";
static const char sd_rule_from[] = "dmarc-from";

/* 1 loaded, -1 tried and failed, 0 not tried (loop thread only). */
static int sd_psl_state;

struct sd_state {
	bool enabled;
};

struct sd_lookup;

/* The message's state: the lookup in flight, if any. */
struct sd_tx {
	struct sd_lookup *pending;
};

struct sd_lookup {
	struct policy_call *call;
	struct sd_tx *txs;          /* NULL once the transaction ended */
	struct policy_tx *tx;
	struct policy *p;
	char session[64];
	bool ours;                  /* the From: domain is one of ours */
	bool at_org;                /* the query in flight is the org domain's */
	char from[SD_NAME_MAX + 1];
	char org[SD_NAME_MAX + 1];
};

/* ------------------------------------------------------------ words */

const char *dmarc_disposition_name(enum dmarc_disposition d)
{
	switch (d) {
	case DMARC_DISP_NONE: return "none";
	case DMARC_DISP_QUARANTINE: return "quarantine";
	case DMARC_DISP_REJECT: return "reject";
	case DMARC_DISP_DEFER: return "defer";
	}
	return "none";
}

const char *dmarc_result_word(enum authres_result r)
{
	/* A method that did not run has no word in the notes (RFC 8601's "none" means it ran). */
	return r == AUTHRES_NOT_RUN ? "" : authres_result_name(r);
}

const char *dmarc_policy_name(char p)
{
	switch (p) {
	case 'n': return "none";
	case 'q': return "quarantine";
	case 'r': return "reject";
	default: return "";
	}
}

/* ------------------------------------------------ organizational domain */

int dmarc_psl_load(const char *path)
{
	if (sd_psl_state != 0)
		return sd_psl_state > 0 ? 0 : -ENOENT;
	if (access(path, R_OK) != 0) {
		sd_psl_state = -1;
		return -errno;
	}
	/* "//" comments; "*." wildcards and "!" exceptions as the list writes them. */
	if (opendmarc_tld_read_file((char *)path, "//", "*.", "!") != 0) {
		sd_psl_state = -1;
		return -EIO;
	}
	sd_psl_state = 1;
	return 0;
}

/* The last two labels of d (or d when it has one): the list's rule "*". */
static void sd_two_labels(const char *d, char *out, size_t outlen)
{
	const char *last = strrchr(d, '.');
	const char *start = d;

	if (last != NULL) {
		for (const char *q = last; q > d; q--) {
			if (q[-1] == '.') {
				start = q;
				break;
			}
		}
	}
	str_copy(out, start, outlen);
}

void dmarc_org_domain(const char *domain, char *out, size_t outlen)
{
	char d[SD_NAME_MAX + 2];
	u_char tld[SD_NAME_MAX + 2];
	size_t n;

	str_copy(d, domain, sizeof d);
	str_lower(d);
	n = strlen(d);
	if (n > 0 && d[n - 1] == '.')
		d[n - 1] = '\0';
	memset(tld, 0, sizeof tld);
	/* libopendmarc answers "" for a suffix it does not know: rule "*" then. */
	if (sd_psl_state > 0 && opendmarc_get_tld((u_char *)d, tld, sizeof tld - 1) == 0 &&
	    tld[0] != '\0')
		str_copy(out, (const char *)tld, outlen);
	else
		sd_two_labels(d, out, outlen);
}

static bool sd_name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	/* A trailing dot (absolute name) does not make another domain. */
	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

bool dmarc_aligned(const char *id_domain, const char *from_domain, char mode)
{
	char o1[SD_NAME_MAX + 1], o2[SD_NAME_MAX + 1];

	if (id_domain == NULL || id_domain[0] == '\0' || from_domain == NULL ||
	    from_domain[0] == '\0')
		return false;
	if (sd_name_eq(id_domain, from_domain))
		return true;
	if (mode == 's')
		return false;
	dmarc_org_domain(id_domain, o1, sizeof o1);
	dmarc_org_domain(from_domain, o2, sizeof o2);
	return o1[0] != '\0' && strcmp(o1, o2) == 0;
}

/* ------------------------------------------------------------- record */

/* "v" *WSP "=" *WSP "DMARC1" then end, WSP or ';' (RFC 7489 6.4). */
static bool sd_is_dmarc(const char *s, size_t len)
{
	size_t i = 0;

	if (len < 1 || s[0] != 'v')
		return false;
	for (i = 1; i < len && (s[i] == ' ' || s[i] == '\t'); i++)
		;
	if (i >= len || s[i] != '=')
		return false;
	for (i++; i < len && (s[i] == ' ' || s[i] == '\t'); i++)
		;
	if (len - i < 6 || memcmp(s + i, "DMARC1", 6) != 0)
		return false;
	i += 6;
	return i == len || s[i] == ';' || s[i] == ' ' || s[i] == '\t';
}

/* The value of tag name in the record's tag list (RFC 7489 6.4), trimmed. */
static bool sd_tag(const char *txt, const char *name, char *out, size_t outlen)
{
	size_t nlen = strlen(name);

	for (const char *p = txt; *p != '\0';) {
		const char *end = strchr(p, ';'), *eq, *v, *ve;

		if (end == NULL)
			end = p + strlen(p);
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		eq = memchr(p, '=', (size_t)(end - p));
		if (eq != NULL) {
			const char *ne = eq;

			while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
				ne--;
			if ((size_t)(ne - p) == nlen && strncasecmp(p, name, nlen) == 0) {
				for (v = eq + 1; v < end && (*v == ' ' || *v == '\t'); v++)
					;
				for (ve = end; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
					;
				if ((size_t)(ve - v) >= outlen)
					return false;
				memcpy(out, v, (size_t)(ve - v));
				out[ve - v] = '\0';
				return true;
			}
		}
		p = *end == ';' ? end + 1 : end;
	}
	return false;
}

/* rua= holds at least one syntactically valid URI (RFC 3986 scheme ":" more). */
static bool sd_rua_ok(const char *rua)
{
	for (const char *u = rua; *u != '\0';) {
		const char *end = strchr(u, ',');
		size_t n;
		const char *colon;

		if (end == NULL)
			end = u + strlen(u);
		while (u < end && (*u == ' ' || *u == '\t'))
			u++;
		n = (size_t)(end - u);
		colon = memchr(u, ':', n);
		if (colon != NULL && colon > u && colon + 1 < end &&
		    ((*u >= 'a' && *u <= 'z') || (*u >= 'A' && *u <= 'Z'))) {
			bool ok = true;

			for (const char *c = u + 1; c < colon && ok; c++)
				ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
				    (*c >= '0' && *c <= '9') || *c == '+' || *c == '-' || *c == '.';
			if (ok)
				return true;
		}
		u = *end == ',' ? end + 1 : end;
	}
	return false;
}

static bool sd_policy_word(const char *v)
{
	return strcmp(v, "none") == 0 || strcmp(v, "quarantine") == 0 || strcmp(v, "reject") == 0;
}

/*
 * RFC 7489 6.6.3 step 6: a record without a valid p=, or with an sp= that
 * is not valid, is taken as p=none when its rua= holds a valid URI (the
 * domain wants reports); otherwise it is no record at all.
 */
static bool sd_p_invalid_with_rua(const char *txt, struct dmarc_record *rec)
{
	char v[512];
	bool p_ok = sd_tag(txt, "p", v, sizeof v) && sd_policy_word(v);
	bool sp_ok = !sd_tag(txt, "sp", v, sizeof v) || sd_policy_word(v);

	if (p_ok && sp_ok)
		return false;
	if (!sd_tag(txt, "rua", v, sizeof v) || !sd_rua_ok(v))
		return false;
	memset(rec, 0, sizeof *rec);
	rec->p = 'n';
	rec->adkim = 'r';
	rec->aspf = 'r';
	rec->pct = 100;
	return true;
}

/* libopendmarc parses; a fresh context each time (it keeps sp= across records). */
static int sd_record_parse(const char *txt, struct dmarc_record *rec, const char **why)
{
	DMARC_POLICY_T *pctx = opendmarc_policy_connect_init((u_char *)"0.0.0.0", 0);
	OPENDMARC_STATUS_T st;
	int p = 0, sp = 0, adkim = 0, aspf = 0, pct = 100;

	if (pctx == NULL) {
		*why = "out of memory parsing the DMARC record";
		return 0;
	}
	if (sd_p_invalid_with_rua(txt, rec)) {
		opendmarc_policy_connect_shutdown(pctx);
		return 1;
	}
	st = opendmarc_policy_store_dmarc(pctx, (u_char *)txt, (u_char *)"dmarc.invalid", NULL);
	if (st == DMARC_PARSE_OKAY) {
		opendmarc_policy_fetch_p(pctx, &p);
		opendmarc_policy_fetch_sp(pctx, &sp);
		opendmarc_policy_fetch_adkim(pctx, &adkim);
		opendmarc_policy_fetch_aspf(pctx, &aspf);
		opendmarc_policy_fetch_pct(pctx, &pct);
	}
	opendmarc_policy_connect_shutdown(pctx);
	if (st != DMARC_PARSE_OKAY) {
		*why = "the DMARC record does not parse (RFC 7489 6.3)";
		return 0;
	}
	memset(rec, 0, sizeof *rec);
	rec->p = (char)p;
	rec->sp = (p == 0) ? '\0' : (char)sp;
	rec->adkim = adkim == DMARC_RECORD_A_STRICT ? 's' : 'r';
	rec->aspf = aspf == DMARC_RECORD_A_STRICT ? 's' : 'r';
	rec->pct = pct < 0 ? 100 : pct > 100 ? 100 : pct;
	if (dmarc_policy_name(rec->p)[0] == '\0') {
		*why = "the DMARC record has no valid p=";
		return 0;
	}
	if (rec->sp != '\0' && dmarc_policy_name(rec->sp)[0] == '\0')
		rec->sp = '\0';
	return 1;
}

int dmarc_record_pick(const char *const *rr, const size_t *len, size_t n,
    struct dmarc_record *rec, const char **why)
{
	size_t found = 0, which = 0;

	*why = "no DMARC record";
	for (size_t i = 0; i < n; i++) {
		if (rr[i] == NULL || !sd_is_dmarc(rr[i], len[i]))
			continue;
		if (memchr(rr[i], '\0', len[i]) != NULL || len[i] > SD_RECORD_MAX)
			continue;
		found++;
		which = i;
	}
	if (found == 0)
		return 0;
	if (found > 1) {
		/* RFC 7489 6.6.3 step 5: several records mean no policy at all. */
		*why = "more than one DMARC record";
		return 0;
	}
	return sd_record_parse(rr[which], rec, why);
}

/* ----------------------------------------------------------- decision */

/* Whether an aligned identifier failed only for now (SPF or DKIM temperror). */
static bool sd_aligned_temperror(const struct authres *ar, const char *from, char aspf,
    char adkim)
{
	if (ar->spf.result == AUTHRES_TEMPERROR && dmarc_aligned(ar->spf.domain, from, aspf))
		return true;
	for (size_t i = 0; i < ar->ndkim && i < AUTHRES_MAX_SIGS; i++) {
		if (ar->dkim[i].result == AUTHRES_TEMPERROR &&
		    dmarc_aligned(ar->dkim[i].domain, from, adkim))
			return true;
	}
	return false;
}

/* The policy one step milder (RFC 7489 6.6.4, a message sampled out by pct=). */
static char sd_milder(char p)
{
	return p == 'r' ? 'q' : 'n';
}

enum dmarc_disposition dmarc_evaluate(const struct authres *ar, const char *from_domain,
    const struct dmarc_record *rec, bool dns_tempfail, unsigned roll,
    struct authres_dmarc *out)
{
	char aspf = rec != NULL ? rec->aspf : 'r', adkim = rec != NULL ? rec->adkim : 'r';
	char applied;

	memset(out, 0, sizeof *out);
	str_copy(out->from_domain, from_domain, sizeof out->from_domain);
	out->spf_aligned = ar->spf.result == AUTHRES_PASS &&
	    dmarc_aligned(ar->spf.domain, from_domain, aspf);
	for (size_t i = 0; i < ar->ndkim && i < AUTHRES_MAX_SIGS; i++) {
		if (ar->dkim[i].result == AUTHRES_PASS &&
		    dmarc_aligned(ar->dkim[i].domain, from_domain, adkim))
			out->dkim_aligned = true;
	}
	if (rec != NULL)
		str_copy(out->policy, dmarc_policy_name(rec->at_org && rec->sp ? rec->sp : rec->p),
		    sizeof out->policy);
	if (dns_tempfail) {
		out->result = AUTHRES_TEMPERROR;
		str_copy(out->reason, "the DMARC record could not be fetched", sizeof out->reason);
		return out->spf_aligned || out->dkim_aligned ? DMARC_DISP_NONE : DMARC_DISP_DEFER;
	}
	if (rec == NULL) {
		out->result = AUTHRES_NONE;
		str_copy(out->reason, "no DMARC record", sizeof out->reason);
		return DMARC_DISP_NONE;
	}
	if (out->spf_aligned || out->dkim_aligned) {
		out->result = AUTHRES_PASS;
		str_copy(out->reason, out->dkim_aligned ? "aligned DKIM pass" : "aligned SPF pass",
		    sizeof out->reason);
		return DMARC_DISP_NONE;
	}
	applied = rec->at_org && rec->sp ? rec->sp : rec->p;
	if (applied != 'n' && sd_aligned_temperror(ar, from_domain, aspf, adkim)) {
		out->result = AUTHRES_TEMPERROR;
		str_copy(out->reason, "an aligned identifier failed temporarily",
		    sizeof out->reason);
		return DMARC_DISP_DEFER;
	}
	out->result = AUTHRES_FAIL;
	if (roll >= (unsigned)rec->pct && applied != 'n') {
		snprintf(out->reason, sizeof out->reason,
		    "no aligned SPF or DKIM pass, pct=%d: the policy was not applied", rec->pct);
		applied = sd_milder(applied);
	} else {
		str_copy(out->reason, "no aligned SPF or DKIM pass", sizeof out->reason);
	}
	return applied == 'r' ? DMARC_DISP_REJECT :
	    applied == 'q' ? DMARC_DISP_QUARANTINE : DMARC_DISP_NONE;
}

/* ------------------------------------------------------------- the row */

int stage_dmarc_new(const struct config *cfg, void **state, char *err, size_t errlen)
{
	struct sd_state *st = xcalloc(1, sizeof *st);
	int rc;

	(void)err;
	(void)errlen;
	st->enabled = cfg == NULL || cfg->dmarc;
	if (st->enabled && (rc = dmarc_psl_load(DMARC_PSL_PATH)) < 0 && sd_psl_state == -1) {
		/* Once: relaxed alignment then takes the last two labels. */
		sd_psl_state = -2;
		log_warn(NULL, "dmarc: cannot load the public suffix list %s (%s): "
		    "organizational domains are the last two labels", DMARC_PSL_PATH,
		    strerror(-rc));
	}
	*state = st;
	return 0;
}

void stage_dmarc_free(void *state)
{
	free(state);
}

void *stage_dmarc_tx_new(void *state, struct policy_tx *tx)
{
	const struct sd_state *st = state;

	(void)tx;
	return st->enabled ? xcalloc(1, sizeof(struct sd_tx)) : NULL;
}

void stage_dmarc_tx_free(void *txstate)
{
	struct sd_tx *txs = txstate;

	/* The answer may still come: it must not touch this transaction. */
	if (txs->pending != NULL)
		txs->pending->txs = NULL;
	free(txs);
}

static void sd_complete(struct policy_call *call, struct verdict *v, const char *rule)
{
	v->rule = rule;
	policy_call_complete(call, v);
}

static void sd_continue(struct policy_call *call, const char *why)
{
	struct verdict v;

	policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "%s", why);
	sd_complete(call, &v, NULL);
}

/*
 * The From: domain (RFC 7489 6.6.1): one domain, even when the field
 * names several mailboxes of it. 0, or a verdict in v.
 */
static int sd_from_domain(const struct rfc5322_scan *sc, char *out, size_t outlen,
    struct verdict *v)
{
	const char *why = NULL;
	char **list = NULL;
	size_t n = 0;
	int rc = 0;

	if (sc->from_count == 0) {
		policy_verdict_set(v, VERDICT_REJECT, 550, "5.6.0",
		    "Message has no From: header field (RFC 5322 section 3.6 requires one)");
		return -EINVAL;
	}
	if (sc->from_count != 1 || sc->from_truncated) {
		policy_verdict_set(v, VERDICT_REJECT, 550, "5.6.0",
		    "Message must have exactly one readable From: header field");
		return -EINVAL;
	}
	if (rfc5322_parse_address_list(sc->from, sc->from_len, &list, &n, &why) < 0 || n == 0) {
		policy_verdict_set(v, VERDICT_REJECT, 550, "5.6.0",
		    "From: header cannot be read: %s", why != NULL ? why : "it names no address");
		rfc5322_free_list(list, n);
		return -EINVAL;
	}
	str_copy(out, addr_domain_of(list[0]), outlen);
	for (size_t i = 1; i < n; i++) {
		if (!str_ieq(addr_domain_of(list[i]), out)) {
			policy_verdict_set(v, VERDICT_REJECT, 550, "5.7.1",
			    "From: header names authors in more than one domain");
			rc = -EINVAL;
			break;
		}
	}
	rfc5322_free_list(list, n);
	return rc;
}

/* Whether domain or a parent of it up to its organizational domain is ours: 1, 0, -errno. */
static int sd_is_ours(struct queue_store *store, const char *domain, const char *org)
{
	struct queue_txn *txn = NULL;
	struct queue_domain *d = NULL;
	const char *q = domain;
	int rc, found = 0;

	if (store == NULL)
		return 0;
	if ((rc = queue_txn_begin(store, false, &txn)) < 0)
		return rc;
	for (;;) {
		rc = queue_domain_get(txn, q, &d);
		queue_domain_free(d);
		d = NULL;
		if (rc == 0) {
			found = 1;
			break;
		}
		if (rc != -ENOENT && rc != -EINVAL) {
			found = rc;
			break;
		}
		if (strcmp(q, org) == 0 || (q = strchr(q, '.')) == NULL)
			break;
		q++;
	}
	queue_txn_abort(txn);
	return found;
}

static unsigned sd_roll(void)
{
	unsigned char b[2] = { 0, 0 };

	/* Synchronous form (no loop): the kernel's CSPRNG, never blocking after boot. */
	if (uv_random(NULL, NULL, b, sizeof b, 0, NULL) != 0)
		return 0;
	return (unsigned)((b[0] << 8) | b[1]) % 100;
}

/* The best DKIM result for the notes: an aligned pass, else any pass, else the first. */
static const struct authres_dkim_sig *sd_best_sig(const struct authres *ar, const char *from,
    char adkim)
{
	const struct authres_dkim_sig *best = NULL;
	size_t n = ar->ndkim < AUTHRES_MAX_SIGS ? ar->ndkim : AUTHRES_MAX_SIGS;

	for (size_t i = 0; i < n; i++) {
		if (ar->dkim[i].result == AUTHRES_PASS &&
		    dmarc_aligned(ar->dkim[i].domain, from, adkim))
			return &ar->dkim[i];
		if (best == NULL || (ar->dkim[i].result == AUTHRES_PASS &&
		    best->result != AUTHRES_PASS))
			best = &ar->dkim[i];
	}
	return best;
}

static void sd_notes(struct policy_tx *tx, const struct authres *ar,
    const struct dmarc_record *rec, enum dmarc_disposition disp)
{
	const struct authres_dmarc *dm = &ar->dmarc;
	const struct authres_dkim_sig *sig = sd_best_sig(ar, dm->from_domain,
	    rec != NULL ? rec->adkim : 'r');
	const char *spf = dmarc_result_word(ar->spf.result);

	policy_tx_note(tx, "dmarc", "%s", dmarc_result_word(dm->result));
	policy_tx_note(tx, "header_from", "%s", dm->from_domain);
	policy_tx_note(tx, "dmarc_policy", "%s", dm->policy[0] ? dm->policy : "-");
	policy_tx_note(tx, "dmarc_disposition", "%s", dmarc_disposition_name(disp));
	policy_tx_note(tx, "dmarc_spf", "%s", spf[0] ? spf : "none");
	policy_tx_note(tx, "dmarc_spf_domain", "%s", ar->spf.domain[0] ? ar->spf.domain : "-");
	policy_tx_note(tx, "dmarc_spf_aligned", "%s", dm->spf_aligned ? "yes" : "no");
	policy_tx_note(tx, "dmarc_dkim", "%s", sig != NULL ? dmarc_result_word(sig->result) :
	    "none");
	policy_tx_note(tx, "dmarc_dkim_domain", "%s", sig != NULL && sig->domain[0] ?
	    sig->domain : "-");
	policy_tx_note(tx, "dmarc_dkim_aligned", "%s", dm->dkim_aligned ? "yes" : "no");
}

/* The verdict for a decided message; v is filled, the rule returned. */
static const char *sd_verdict(const struct sd_lookup *l, const struct authres_dmarc *dm,
    enum dmarc_disposition *disp, struct verdict *v)
{
	if (l->ours && !dm->spf_aligned && !dm->dkim_aligned) {
		*disp = DMARC_DISP_REJECT;
		policy_verdict_set(v, VERDICT_REJECT, 550, "5.7.1",
		    "Mail from %s, a domain of this city, must come from its own servers "
		    "(neither SPF nor DKIM vouch for this message)", l->from);
		return sd_rule_ours;
	}
	switch (*disp) {
	case DMARC_DISP_REJECT:
		policy_verdict_set(v, VERDICT_REJECT, 550, "5.7.1",
		    "Message refused: the DMARC policy of %s says reject (neither SPF nor "
		    "DKIM vouch for its From: address)", l->from);
		break;
	case DMARC_DISP_QUARANTINE:
		policy_verdict_set(v, VERDICT_QUARANTINE, 0, "", "DMARC policy of %s says quarantine",
		    l->from);
		break;
	case DMARC_DISP_DEFER:
		policy_verdict_set(v, VERDICT_TEMPFAIL, 451, "4.7.0",
		    "Cannot check the DMARC policy of %s now (%s), try again later", l->from,
		    dm->reason);
		break;
	case DMARC_DISP_NONE:
		policy_verdict_set(v, VERDICT_CONTINUE, 0, "", "dmarc=%s",
		    dmarc_result_word(dm->result));
		break;
	}
	return NULL;
}

/* The end of a lookup: decide, note, complete, free. */
static void sd_finish(struct sd_lookup *l, const struct dmarc_record *rec, bool tempfail)
{
	struct policy_call *call = l->call;
	enum dmarc_disposition disp;
	const char *rule;
	struct authres *ar;
	struct verdict v;

	if (l->txs == NULL) {
		/* The transaction ended (timed out, client gone): nothing to write. */
		free(l);
		sd_continue(call, "transaction over");
		return;
	}
	l->txs->pending = NULL;
	ar = policy_tx_authres(l->tx);
	disp = dmarc_evaluate(ar, l->from, rec, tempfail, sd_roll(), &ar->dmarc);
	rule = sd_verdict(l, &ar->dmarc, &disp, &v);
	sd_notes(l->tx, ar, rec, disp);
	free(l);
	sd_complete(call, &v, rule);
}

static void sd_dns_cb(void *arg, const struct policy_dns_answer *ans);

/* Asks for _dmarc.NAME; false when no query was started (then l is untouched). */
static bool sd_query(struct sd_lookup *l, const char *name, int *rc)
{
	char q[SD_NAME_MAX + 8];

	if (snprintf(q, sizeof q, "_dmarc.%s", name) >= (int)sizeof q || strlen(q) > SD_NAME_MAX) {
		*rc = -EINVAL;
		return false;
	}
	*rc = policy_resolve(l->p, POLICY_DNS_TXT, q, sd_dns_cb, l);
	return *rc == 0;
}

/* No record at the From: domain: try the organizational domain's, once. */
static void sd_try_org(struct sd_lookup *l)
{
	int rc;

	if (l->at_org || l->org[0] == '\0' || strcmp(l->org, l->from) == 0 || l->txs == NULL) {
		sd_finish(l, NULL, false);
		return;
	}
	l->at_org = true;
	if (!sd_query(l, l->org, &rc))
		sd_finish(l, NULL, rc == -ENOSYS);
}

static void sd_dns_cb(void *arg, const struct policy_dns_answer *ans)
{
	struct sd_lookup *l = arg;
	struct dmarc_record rec;
	const char *why = NULL;

	switch (ans->status) {
	case POLICY_DNS_OK:
		if (dmarc_record_pick(ans->rr, ans->len, ans->n, &rec, &why) == 1) {
			rec.at_org = l->at_org;
			sd_finish(l, &rec, false);
			return;
		}
		sd_try_org(l);
		return;
	case POLICY_DNS_NODATA:
	case POLICY_DNS_NXDOMAIN:
		sd_try_org(l);
		return;
	case POLICY_DNS_TEMPFAIL:
		log_warn(l->session, "dmarc: no answer for the DMARC record of %s: %s",
		    l->at_org ? l->org : l->from, ans->error != NULL ? ans->error : "");
		sd_finish(l, NULL, true);
		return;
	}
	sd_finish(l, NULL, true);
}

void stage_dmarc_run(struct policy_call *call, const struct policy_request *req, void *state)
{
	const struct sd_state *st = state;
	struct sd_tx *txs = policy_call_tx_state(call);
	struct sd_lookup *l;
	struct verdict v;
	int rc;

	if (!st->enabled || req->client_trusted || req->auth_user != NULL ||
	    req->stage != POLICY_STAGE_DATA) {
		sd_continue(call, "dmarc does not apply");
		return;
	}
	if (txs == NULL || req->tx == NULL || req->headers == NULL) {
		sd_continue(call, "no transaction to check");
		return;
	}
	l = xcalloc(1, sizeof *l);
	l->call = call;
	l->txs = txs;
	l->tx = req->tx;
	l->p = policy_call_policy(call);
	str_copy(l->session, req->session_id != NULL ? req->session_id : "", sizeof l->session);
	if (sd_from_domain(req->headers, l->from, sizeof l->from, &v) < 0) {
		free(l);
		sd_complete(call, &v, sd_rule_from);
		return;
	}
	dmarc_org_domain(l->from, l->org, sizeof l->org);
	rc = sd_is_ours(policy_call_store(call), l->from, l->org);
	if (rc < 0) {
		free(l);
		policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0",
		    "Temporary policy failure, try again later");
		sd_complete(call, &v, sd_rule_ours);
		return;
	}
	l->ours = rc == 1;
	txs->pending = l;
	if (!sd_query(l, l->from, &rc)) {
		/* No resolver is a DNS failure; a name too long has no record. */
		if (rc == -ENOSYS)
			sd_finish(l, NULL, true);
		else
			sd_try_org(l);
	}
}
