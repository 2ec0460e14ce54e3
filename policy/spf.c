/*
 * spf: one SPF evaluation (RFC 7208) with libspf2 over a DNS layer of
 * ours (DEPENDENCIES.md section 4b): libspf2 asks our layer, our layer
 * asks the caller's lookup function, which reaches the daemon's resolver
 * (stage_spf.c) or a table (tests/unit/test_spf.c).
 *
 * libspf2 is treated as unmaintained, attacker-reachable code: bookworm's
 * build lacks the 2023 fix for the macro-expansion underflow
 * (CVE-2023-42118). So the layer looks at every TXT record before
 * libspf2 does: a "v=spf1" record whose macros do not follow RFC 7208
 * section 7.1, or whose length or terms pass the bounds of spf.h, is a
 * permerror decided here, and libspf2 never receives it (it gets a
 * NO_RECOVERY answer, and this module overrides its result). Other TXT
 * records (explanations) with bad macros are dropped from the answer,
 * as if the exp= were absent (RFC 7208 section 6.2). The identity's
 * domain is checked before the evaluation starts.
 *
 * The limits of RFC 7208 section 4.6.4 are enforced here as well:
 * libspf2 counts DNS-querying terms but tests the count only before the
 * next term, so a record whose last term is the eleventh would slip
 * through; the count it keeps in the response is checked once more at
 * the end. Void lookups (NXDOMAIN, or no records) are counted in the
 * layer; the third is a permerror. More than 10 MX names is permerror.
 * libspf2's loopback shortcut (127/8 and ::1 pass without looking) is
 * bypassed: the evaluation calls the steps of SPF_request_query_mailfrom
 * itself, without it.
 *
 * Entry points: spf_evaluate, spf_received_field, spf_domain_ok,
 * spf_record_check, spf_dns_reply_set/clear.
 * OWNERSHIP: an evaluation owns its libspf2 server, request, response
 * and layer, all freed before spf_evaluate returns; query strings are
 * borrowed.
 * THREADS: any thread; evaluations share nothing (the libspf2 log
 * handlers are set once, under pthread_once).
 * ERRORS: none returned: every failure is an SPF result (temperror for
 * DNS trouble and memory, permerror for records and limits).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <spf2/spf.h>
#include <spf2/spf_dns.h>

#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/spf.h"

/* Queries of one evaluation, all kinds: a runaway guard past the RFC's limits. */
#define SPF_QUERIES_MAX 120
#define SPF_EXP_MAX 300

/* ------------------------------------------------------------ replies */

void spf_dns_reply_clear(struct spf_dns_reply *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->rr[i]);
	free(r->rr);
	free(r->len);
	memset(r, 0, sizeof *r);
}

void spf_dns_reply_set(struct spf_dns_reply *r, const struct policy_dns_answer *ans)
{
	size_t n = ans->n < SPF_DNS_RR_MAX ? ans->n : SPF_DNS_RR_MAX;

	spf_dns_reply_clear(r);
	r->status = ans->status;
	r->ttl = ans->ttl;
	str_copy(r->error, ans->error != NULL ? ans->error : "", sizeof r->error);
	if (ans->status != POLICY_DNS_OK || n == 0)
		return;
	r->rr = xcalloc(n, sizeof *r->rr);
	r->len = xcalloc(n, sizeof *r->len);
	for (size_t i = 0; i < n; i++) {
		size_t len = ans->len != NULL ? ans->len[i] : strlen(ans->rr[i]);

		r->rr[i] = xmalloc(len + 1);
		memcpy(r->rr[i], ans->rr[i], len);
		r->rr[i][len] = '\0';
		r->len[i] = len;
	}
	r->n = n;
}

/* ------------------------------------------------------------- checks */

/* LDH labels of 1..63 (and "_"), at most 253 bytes; multi: two labels at least. */
static bool spf_name_ok(const char *d, bool multi)
{
	size_t len, label = 0;
	bool dot = false;

	if (d == NULL)
		return false;
	len = strlen(d);
	if (len > 0 && d[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = d[i];

		if (c == '.') {
			if (label == 0 || d[i - 1] == '-')
				return false;
			label = 0;
			dot = true;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
		if (label == 0 && c == '-')
			return false;
		if (++label > 63)
			return false;
	}
	return (dot || !multi) && d[len - 1] != '-';
}

bool spf_domain_ok(const char *d)
{
	/* RFC 7208 4.3: a single-label name is not checked (result none). */
	return spf_name_ok(d, true);
}

static int spf_fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int spf_fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/*
 * One macro-expand at s (s[0] == '%'): its length, or 0 when it breaks
 * RFC 7208 section 7.1 (exp: the c, r, t letters are allowed).
 */
static size_t spf_macro_len(const char *s, size_t len, bool exp)
{
	size_t i = 2;
	unsigned digits = 0;
	bool any = false;

	if (len < 2)
		return 0;
	if (s[1] == '%' || s[1] == '_' || s[1] == '-')
		return 2;
	if (s[1] != '{' || len < 4)
		return 0;
	if (strchr(exp ? "slodiphcrtvSLODIPHCRTV" : "slodiphvSLODIPHV", s[2]) == NULL ||
	    s[2] == '\0')
		return 0;
	for (i = 3; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
		digits = digits * 10 + (unsigned)(s[i] - '0');
		any = true;
		if (digits > SPF_MACRO_DIGITS_MAX)
			return 0;
	}
	/* RFC 7208 7.3: a DIGIT transformer must be nonzero. */
	if (any && digits == 0)
		return 0;
	if (i < len && (s[i] == 'r' || s[i] == 'R'))
		i++;
	while (i < len && strchr(".-+,/_=", s[i]) != NULL && s[i] != '\0')
		i++;
	if (i >= len || s[i] != '}')
		return 0;
	return i + 1;
}

/*
 * RFC 7208 7.1 domain-end: the domain-spec s[0..len) ends in a
 * macro-expand, or in "." toplabel ["."], where a toplabel is LDH with a
 * letter and no hyphen at either end ("ptr:localhost" is a syntax error).
 */
static bool spf_domain_end_ok(const char *s, size_t len)
{
	size_t end = len, start;
	bool alpha = false;

	if (len > 0 && s[len - 1] == '}')
		return true;
	if (end > 0 && s[end - 1] == '.')
		end--;
	for (start = end; start > 0 && s[start - 1] != '.'; start--)
		;
	if (start == 0 || start == end || s[start] == '-' || s[end - 1] == '-')
		return false;
	for (size_t i = start; i < end; i++) {
		char c = s[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
			alpha = true;
		else if (!((c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return alpha;
}

/* The domain-spec of one term, when it has one: false if it is malformed. */
static bool spf_term_domain_ok(const char *t, size_t len)
{
	static const char *const withspec[] = { "a:", "mx:", "ptr:", "include:", "exists:",
		"redirect=", "exp=" };
	size_t i = 0, plen, end;
	bool brace = false;

	if (len > 0 && strchr("+-~?", t[0]) != NULL)
		i = 1;
	for (size_t k = 0; k < sizeof withspec / sizeof withspec[0]; k++) {
		plen = strlen(withspec[k]);
		if (len - i < plen || strncasecmp(t + i, withspec[k], plen) != 0)
			continue;
		/* a and mx may end in a CIDR length: the spec stops at a "/" outside %{}. */
		for (end = i + plen; end < len; end++) {
			if (t[end] == '{' && end > 0 && t[end - 1] == '%')
				brace = true;
			else if (t[end] == '}')
				brace = false;
			else if (t[end] == '/' && !brace && k < 2)
				break;
		}
		return spf_domain_end_ok(t + i + plen, end - i - plen);
	}
	return true;
}

int spf_record_check(const char *txt, size_t len, bool exp, char *why, size_t whylen)
{
	size_t max = exp ? SPF_EXP_MAX : SPF_RECORD_MAX;
	size_t term = 0, macros = 0;

	if (len > max)
		return spf_fail(why, whylen, "record of %zu bytes (more than %zu)", len, max);
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)txt[i];
		size_t m;

		if (c < 0x20 || c > 0x7e)
			return spf_fail(why, whylen, "byte 0x%02x at %zu is not printable ASCII",
			    c, i);
		if (c == ' ' && !exp) {
			if (term > 0 && !spf_term_domain_ok(txt + i - term, term))
				return spf_fail(why, whylen, "a malformed domain in '%.*s'",
				    (int)(term < 60 ? term : 60), txt + i - term);
			term = 0;
			macros = 0;
			i++;
			continue;
		}
		if (c != '%') {
			i++;
			if (++term > SPF_TERM_MAX && !exp)
				return spf_fail(why, whylen, "a term longer than %d bytes",
				    SPF_TERM_MAX);
			continue;
		}
		m = spf_macro_len(txt + i, len - i, exp);
		if (m == 0)
			return spf_fail(why, whylen, "bad macro at byte %zu", i);
		if (++macros > SPF_TERM_MACROS_MAX)
			return spf_fail(why, whylen, "more than %d macros in one %s",
			    SPF_TERM_MACROS_MAX, exp ? "explanation" : "term");
		term += m;
		i += m;
		if (term > SPF_TERM_MAX && !exp)
			return spf_fail(why, whylen, "a term longer than %d bytes", SPF_TERM_MAX);
	}
	if (!exp && term > 0 && !spf_term_domain_ok(txt + len - term, term))
		return spf_fail(why, whylen, "a malformed domain in '%.*s'",
		    (int)(term < 60 ? term : 60), txt + len - term);
	return 0;
}

/* "v=spf1" then a space or the end, without case: the record libspf2 picks. */
static bool spf_is_record(const char *txt, size_t len)
{
	return len >= 6 && strncasecmp(txt, "v=spf1", 6) == 0 && (len == 6 || txt[6] == ' ');
}

/* ------------------------------------------------------------- layer */

struct spf_eval {
	spf_lookup_fn *lookup;
	void *arg;
	unsigned queries;
	unsigned voids;
	bool perm;                 /* a permerror decided here */
	char perm_why[160];
	bool temp;                 /* a lookup failed */
	char temp_why[160];
	uint32_t ttl;              /* the shortest TTL of the answers so far */
};

static void spf_eval_perm(struct spf_eval *ev, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void spf_eval_perm(struct spf_eval *ev, const char *fmt, ...)
{
	va_list ap;

	if (ev->perm)
		return;
	ev->perm = true;
	va_start(ap, fmt);
	vsnprintf(ev->perm_why, sizeof ev->perm_why, fmt, ap);
	va_end(ap);
}

static bool spf_kind_of(ns_type t, enum policy_dns_kind *kind)
{
	switch (t) {
	case ns_t_a: *kind = POLICY_DNS_A; return true;
	case ns_t_aaaa: *kind = POLICY_DNS_AAAA; return true;
	case ns_t_mx: *kind = POLICY_DNS_MX; return true;
	case ns_t_ptr: *kind = POLICY_DNS_PTR; return true;
	case ns_t_txt: *kind = POLICY_DNS_TXT; return true;
	default: return false;
	}
}

/*
 * A TXT record that is not an SPF record: libspf2 reads it only as an
 * explanation (exp=), and compiles it with the record grammar, where a
 * space ends the term: "may not" would come out "may%not". Each space is
 * handed over as the macro "%_" (RFC 7208 7.1: a space), which it
 * expands right. The text was checked (spf_record_check, exp).
 */
static bool spf_rr_add_exp(SPF_dns_rr_t *rr, const char *data, size_t len)
{
	int n = rr->num_rr;
	size_t spaces = 0, j = 0;

	for (size_t i = 0; i < len; i++)
		spaces += data[i] == ' ';
	if (SPF_dns_rr_buf_realloc(rr, n, len + spaces + 1) != SPF_E_SUCCESS)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (data[i] == ' ') {
			rr->rr[n]->txt[j++] = '%';
			rr->rr[n]->txt[j++] = '_';
		} else {
			rr->rr[n]->txt[j++] = data[i];
		}
	}
	rr->rr[n]->txt[j] = '\0';
	rr->num_rr = n + 1;
	return true;
}

/* Adds one record of an answer to rr; false when it is left out. */
static bool spf_rr_add(struct spf_eval *ev, SPF_dns_rr_t *rr, ns_type t, const char *dom,
    const char *data, size_t len)
{
	int n = rr->num_rr;
	char why[120];

	switch (t) {
	case ns_t_a: {
		struct in_addr a;

		if (inet_pton(AF_INET, data, &a) != 1 ||
		    SPF_dns_rr_buf_realloc(rr, n, sizeof a) != SPF_E_SUCCESS)
			return false;
		rr->rr[n]->a = a;
		break;
	}
	case ns_t_aaaa: {
		struct in6_addr a6;

		if (inet_pton(AF_INET6, data, &a6) != 1 ||
		    SPF_dns_rr_buf_realloc(rr, n, sizeof a6) != SPF_E_SUCCESS)
			return false;
		rr->rr[n]->aaaa = a6;
		break;
	}
	case ns_t_txt:
		if (spf_is_record(data, len)) {
			if (memchr(data, '\0', len) != NULL) {
				spf_eval_perm(ev, "the SPF record of %s holds a NUL byte", dom);
				return false;
			}
			if (spf_record_check(data, len, false, why, sizeof why) < 0) {
				spf_eval_perm(ev, "the SPF record of %s is refused: %s", dom, why);
				return false;
			}
		} else if (memchr(data, '\0', len) != NULL ||
		    spf_record_check(data, len, true, NULL, 0) < 0) {
			/* Not an SPF record; as an explanation it would be bad: drop it. */
			return false;
		} else {
			return spf_rr_add_exp(rr, data, len);
		}
		/* FALLTHROUGH */
	case ns_t_mx:
	case ns_t_ptr:
		if (SPF_dns_rr_buf_realloc(rr, n, len + 1) != SPF_E_SUCCESS)
			return false;
		memcpy(rr->rr[n]->txt, data, len);
		rr->rr[n]->txt[len] = '\0';
		break;
	default:
		return false;
	}
	rr->num_rr = n + 1;
	return true;
}

/* Builds libspf2's answer from ours. */
static SPF_dns_rr_t *spf_layer_answer(SPF_dns_server_t *d, struct spf_eval *ev,
    const char *dom, ns_type t, const struct spf_dns_reply *r)
{
	SPF_dns_rr_t *rr;

	switch (r->status) {
	case POLICY_DNS_TEMPFAIL:
		if (!ev->temp) {
			ev->temp = true;
			snprintf(ev->temp_why, sizeof ev->temp_why, "DNS lookup of %s failed%s%s",
			    dom, r->error[0] ? ": " : "", r->error);
		}
		return SPF_dns_rr_new_init(d, dom, t, 0, TRY_AGAIN);
	case POLICY_DNS_NXDOMAIN:
		rr = SPF_dns_rr_new_nxdomain(d, dom);
		break;
	case POLICY_DNS_NODATA:
		rr = SPF_dns_rr_new_init(d, dom, t, 0, NO_DATA);
		break;
	default:
		if (t == ns_t_mx && r->n > SPF_MAX_MX_NAMES) {
			spf_eval_perm(ev, "%s has %zu MX records (more than %d)", dom, r->n,
			    SPF_MAX_MX_NAMES);
			return SPF_dns_rr_new_init(d, dom, t, 0, NO_RECOVERY);
		}
		rr = SPF_dns_rr_new_init(d, dom, t, 0, NETDB_SUCCESS);
		for (size_t i = 0; rr != NULL && i < r->n && !ev->perm; i++)
			(void)spf_rr_add(ev, rr, t, dom, r->rr[i], r->len[i]);
		if (ev->perm) {
			SPF_dns_rr_free(rr);
			return SPF_dns_rr_new_init(d, dom, t, 0, NO_RECOVERY);
		}
		if (rr != NULL && rr->num_rr == 0)
			rr->herrno = NO_DATA;
		break;
	}
	if (rr != NULL && rr->herrno != NETDB_SUCCESS) {
		/* RFC 7208 4.6.4: the third void lookup is a permerror. */
		if (++ev->voids > SPF_MAX_VOID) {
			spf_eval_perm(ev, "more than %d void DNS lookups (the last: %s)",
			    SPF_MAX_VOID, dom);
			SPF_dns_rr_free(rr);
			return SPF_dns_rr_new_init(d, dom, t, 0, NO_RECOVERY);
		}
	}
	return rr;
}

static SPF_dns_rr_t *spf_layer_lookup(SPF_dns_server_t *d, const char *domain, ns_type t,
    int should_cache)
{
	struct spf_eval *ev = d->hook;
	struct spf_dns_reply r;
	enum policy_dns_kind kind;
	char name[256];
	SPF_dns_rr_t *rr;
	size_t len;

	(void)should_cache;
	/* After a permerror of ours every answer is final, so libspf2 stops. */
	if (ev->perm)
		return SPF_dns_rr_new_init(d, domain, t, 0, NO_RECOVERY);
	/* RFC 7208 3.1: the type-99 record is obsolete; no round trip for it. */
	if (t == ns_t_spf || !spf_kind_of(t, &kind))
		return SPF_dns_rr_new_init(d, domain, t, 0, NO_DATA);
	len = domain != NULL ? strlen(domain) : 0;
	/* A PTR answer may be a single label ("localhost"): looked up as is. */
	if (len == 0 || len >= sizeof name || !spf_name_ok(domain, false))
		return SPF_dns_rr_new_nxdomain(d, domain != NULL ? domain : "");
	memcpy(name, domain, len + 1);
	if (name[len - 1] == '.')
		name[len - 1] = '\0';
	if (++ev->queries > SPF_QUERIES_MAX) {
		spf_eval_perm(ev, "more than %d DNS queries", SPF_QUERIES_MAX);
		return SPF_dns_rr_new_init(d, domain, t, 0, NO_RECOVERY);
	}
	memset(&r, 0, sizeof r);
	ev->lookup(ev->arg, kind, name, &r);
	if (r.ttl < ev->ttl)
		ev->ttl = r.ttl;
	rr = spf_layer_answer(d, ev, domain, t, &r);
	spf_dns_reply_clear(&r);
	return rr;
}

/* The layer lives in the evaluation's frame: nothing for libspf2 to free. */
static void spf_layer_destroy(SPF_dns_server_t *d)
{
	(void)d;
}

/* ------------------------------------------------------ log handlers */

/* libspf2 prints warnings to stderr by default: the daemon's log is ours. */
static void spf_log_quiet(const char *file, int line, const char *msg)
{
	(void)file;
	(void)line;
	(void)msg;
}

static pthread_once_t spf_once = PTHREAD_ONCE_INIT;

static void spf_init_once(void)
{
	SPF_warning_handler = spf_log_quiet;
	SPF_info_handler = spf_log_quiet;
	SPF_debug_handler = spf_log_quiet;
}

/* ------------------------------------------------------- evaluation */

static enum authres_result spf_result_of(SPF_result_t r)
{
	switch (r) {
	case SPF_RESULT_PASS: return AUTHRES_PASS;
	case SPF_RESULT_FAIL: return AUTHRES_FAIL;
	case SPF_RESULT_SOFTFAIL: return AUTHRES_SOFTFAIL;
	case SPF_RESULT_NEUTRAL: return AUTHRES_NEUTRAL;
	case SPF_RESULT_NONE: return AUTHRES_NONE;
	case SPF_RESULT_PERMERROR: return AUTHRES_PERMERROR;
	case SPF_RESULT_TEMPERROR: return AUTHRES_TEMPERROR;
	default: return AUTHRES_TEMPERROR;  /* "(invalid)": DEPENDENCIES.md 4a */
	}
}

/* Printable ASCII of s into out, at most outlen - 1 bytes. */
static void spf_sanitize(const char *s, char *out, size_t outlen)
{
	size_t j = 0;

	for (size_t i = 0; s != NULL && s[i] != '\0' && j + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];

		out[j++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (outlen > 0)
		out[j] = '\0';
}

/* The identity: its domain and the address libspf2 is given; false: none. */
static bool spf_identity(const struct spf_query *q, struct spf_outcome *o, char *from,
    size_t fromlen)
{
	const char *at;
	size_t lp;

	if (q->sender != NULL && q->sender[0] != '\0') {
		at = strrchr(q->sender, '@');
		lp = at != NULL ? (size_t)(at - q->sender) : 0;
		spf_sanitize(q->sender, o->identity, sizeof o->identity);
		spf_sanitize(at != NULL ? at + 1 : q->sender, o->domain, sizeof o->domain);
		/* DMARC compares this domain with the From: domain: one case. */
		str_lower(o->domain);
		if (at == NULL || lp == 0 || lp > 64 || !spf_domain_ok(at + 1)) {
			str_copy(o->reason, "the sender's domain is not a domain name",
			    sizeof o->reason);
			return false;
		}
		for (size_t i = 0; i < lp; i++) {
			unsigned char c = (unsigned char)q->sender[i];

			if (c <= 0x20 || c >= 0x7f) {
				str_copy(o->reason, "the sender's local part is not plain ASCII",
				    sizeof o->reason);
				return false;
			}
		}
		snprintf(from, fromlen, "%s", q->sender);
		return true;
	}
	/* RFC 7208 2.4: the null sender is checked as postmaster@HELO. */
	o->helo_identity = true;
	spf_sanitize(q->helo != NULL ? q->helo : "", o->identity, sizeof o->identity);
	spf_sanitize(q->helo != NULL ? q->helo : "", o->domain, sizeof o->domain);
	str_lower(o->domain);
	if (q->helo == NULL || !spf_domain_ok(q->helo)) {
		str_copy(o->reason, "the HELO name is not a domain name", sizeof o->reason);
		return false;
	}
	snprintf(from, fromlen, "postmaster@%s", q->helo);
	return true;
}

/* Runs libspf2 on a prepared request: SPF_request_query_mailfrom, minus loopback. */
static SPF_errcode_t spf_run(SPF_server_t *srv, SPF_request_t *req, SPF_response_t **resp)
{
	SPF_record_t *rec = NULL;
	SPF_errcode_t err;

	*resp = SPF_response_new(req);
	if (*resp == NULL)
		return SPF_E_NO_MEMORY;
	req->use_helo = 0;
	req->cur_dom = req->env_from_dp;
	err = SPF_server_get_record(srv, req, *resp, &rec);
	if (err != SPF_E_SUCCESS) {
		if (rec != NULL)
			SPF_record_free(rec);
		SPF_i_done(*resp, (*resp)->result, (*resp)->reason, (*resp)->err);
		return err;
	}
	(*resp)->spf_record_exp = rec;
	err = SPF_record_interpret(rec, req, *resp, 0);
	SPF_record_free(rec);
	return err;
}

/* Sets the client address; false when it is not a numeric address. */
static bool spf_set_ip(SPF_request_t *req, const char *ip)
{
	struct in_addr a;
	struct in6_addr a6;

	if (ip == NULL)
		return false;
	if (inet_pton(AF_INET, ip, &a) == 1)
		return SPF_request_set_ipv4(req, a) == SPF_E_SUCCESS;
	if (inet_pton(AF_INET6, ip, &a6) != 1)
		return false;
	if (IN6_IS_ADDR_V4MAPPED(&a6)) {
		memcpy(&a, &a6.s6_addr[12], sizeof a);
		return SPF_request_set_ipv4(req, a) == SPF_E_SUCCESS;
	}
	return SPF_request_set_ipv6(req, a6) == SPF_E_SUCCESS;
}

/* The reason, truncated to its field (a long domain shortens the words). */
static void spf_reasonf(struct spf_outcome *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void spf_reasonf(struct spf_outcome *o, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(o->reason, sizeof o->reason, fmt, ap);
	va_end(ap);
}

/* The reason of a settled result, in the words of RFC 7208 section 9.1's example. */
static void spf_reason_words(struct spf_outcome *o, SPF_errcode_t rc, const char *ip)
{
	const char *d = o->domain;

	switch (o->result) {
	case AUTHRES_PASS:
		spf_reasonf(o, "domain of %s designates %s as permitted sender", d, ip);
		break;
	case AUTHRES_FAIL:
		spf_reasonf(o, "domain of %s does not designate %s as permitted sender", d, ip);
		break;
	case AUTHRES_SOFTFAIL:
		spf_reasonf(o, "domain of %s discourages use of %s as permitted sender", d, ip);
		break;
	case AUTHRES_NEUTRAL:
		spf_reasonf(o, "%s is neither permitted nor denied by domain of %s", ip, d);
		break;
	case AUTHRES_NONE:
		spf_reasonf(o, "domain of %s has no SPF record", d);
		break;
	default:
		spf_reasonf(o, "%s", SPF_strerror(rc));
		break;
	}
}

/* Our verdict over libspf2's answer (see the header comment). */
static void spf_settle(struct spf_eval *ev, SPF_errcode_t rc, SPF_response_t *resp,
    const char *ip, struct spf_outcome *o)
{
	SPF_result_t r = resp != NULL ? SPF_response_result(resp) : SPF_RESULT_INVALID;

	o->queries = ev->queries;
	o->void_lookups = ev->voids;
	if (ev->perm) {
		o->result = AUTHRES_PERMERROR;
		str_copy(o->reason, ev->perm_why, sizeof o->reason);
		return;
	}
	if (resp != NULL && resp->num_dns_mech > SPF_MAX_DNS_TERMS) {
		o->result = AUTHRES_PERMERROR;
		snprintf(o->reason, sizeof o->reason,
		    "more than %d DNS-querying mechanisms", SPF_MAX_DNS_TERMS);
		return;
	}
	if (ev->temp || rc == SPF_E_DNS_ERROR || rc == SPF_E_NO_MEMORY ||
	    r == SPF_RESULT_TEMPERROR) {
		o->result = AUTHRES_TEMPERROR;
		str_copy(o->reason, ev->temp ? ev->temp_why : rc == SPF_E_NO_MEMORY ?
		    "out of memory in libspf2" : "DNS failure", sizeof o->reason);
		return;
	}
	if (r == SPF_RESULT_INVALID) {
		/* No DNS trouble: the record did not compile (RFC 7208 4.6). */
		o->result = AUTHRES_PERMERROR;
		snprintf(o->reason, sizeof o->reason, "the SPF record is invalid: %s",
		    SPF_strerror(rc));
		return;
	}
	o->result = spf_result_of(r);
	spf_reason_words(o, rc, ip);
	if (o->result == AUTHRES_FAIL)
		spf_sanitize(SPF_response_get_explanation(resp), o->explanation,
		    sizeof o->explanation);
}

void spf_evaluate(const struct spf_query *q, spf_lookup_fn *lookup, void *arg,
    struct spf_outcome *out)
{
	struct spf_eval ev = { .lookup = lookup, .arg = arg, .ttl = UINT32_MAX };
	SPF_dns_server_t layer;
	SPF_server_t *srv;
	SPF_request_t *req = NULL;
	SPF_response_t *resp = NULL, *tmp = NULL;
	SPF_errcode_t rc;
	char from[400];

	pthread_once(&spf_once, spf_init_once);
	memset(out, 0, sizeof *out);
	out->result = AUTHRES_NONE;
	if (!spf_identity(q, out, from, sizeof from))
		return;
	memset(&layer, 0, sizeof layer);
	layer.lookup = spf_layer_lookup;
	layer.destroy = spf_layer_destroy;
	layer.name = "govrelay";
	layer.hook = &ev;
	srv = SPF_server_new_dns(&layer, 0);
	if (srv == NULL)
		goto nomem;
	SPF_server_set_max_dns_mech(srv, SPF_MAX_DNS_TERMS);
	SPF_server_set_max_dns_mx(srv, SPF_MAX_MX_NAMES);
	SPF_server_set_max_dns_ptr(srv, SPF_MAX_MX_NAMES);
	if (q->receiver != NULL && spf_domain_ok(q->receiver))
		SPF_server_set_rec_dom(srv, q->receiver);
	SPF_server_set_explanation(srv, "not%_authorized%_by%_the%_domain's%_SPF%_record",
	    &tmp);
	if (tmp != NULL)
		SPF_response_free(tmp);
	req = SPF_request_new(srv);
	if (req == NULL || !spf_set_ip(req, q->client_ip)) {
		out->result = AUTHRES_PERMERROR;
		str_copy(out->reason, "the client address is not an IP address",
		    sizeof out->reason);
		goto done;
	}
	if (q->helo != NULL && spf_domain_ok(q->helo))
		SPF_request_set_helo_dom(req, q->helo);
	if (SPF_request_set_env_from(req, from) != 0 || req->env_from_dp == NULL)
		goto nomem;
	rc = spf_run(srv, req, &resp);
	spf_settle(&ev, rc, resp, q->client_ip, out);
	out->ttl = out->result == AUTHRES_TEMPERROR || ev.queries == 0 || ev.ttl == UINT32_MAX ?
	    0 : ev.ttl;
	goto done;
nomem:
	out->result = AUTHRES_TEMPERROR;
	str_copy(out->reason, "out of memory in libspf2", sizeof out->reason);
done:
	if (resp != NULL)
		SPF_response_free(resp);
	if (req != NULL)
		SPF_request_free(req);
	SPF_server_free(srv);
}

/* ------------------------------------------------------ Received-SPF */

const char *spf_result_name(enum authres_result r)
{
	switch (r) {
	case AUTHRES_PASS: return "pass";
	case AUTHRES_FAIL: return "fail";
	case AUTHRES_SOFTFAIL: return "softfail";
	case AUTHRES_NEUTRAL: return "neutral";
	case AUTHRES_TEMPERROR: return "temperror";
	case AUTHRES_PERMERROR: return "permerror";
	default: return "none";
	}
}

struct spf_out {
	char *p;
	size_t n, cap;
	bool over;
};

static void spf_put(struct spf_out *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void spf_put(struct spf_out *b, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (b->over)
		return;
	va_start(ap, fmt);
	k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
	va_end(ap);
	if (k < 0 || (size_t)k >= b->cap - b->n) {
		b->over = true;
		return;
	}
	b->n += (size_t)k;
}

static bool spf_atext(const char *v)
{
	if (v[0] == '\0' || v[0] == '.')
		return false;
	for (size_t i = 0; v[i] != '\0'; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c <= 0x20 || c >= 0x7f || strchr("()<>[]:;@\\,\"", c) != NULL)
			return false;
		if (c == '.' && (v[i + 1] == '.' || v[i + 1] == '\0'))
			return false;
	}
	return true;
}

/* A value as RFC 5322 dot-atom when it is one, else a quoted-string. */
static void spf_put_value(struct spf_out *b, const char *v)
{
	char q[700];
	size_t j = 0;

	if (spf_atext(v)) {
		spf_put(b, "%s", v);
		return;
	}
	for (size_t i = 0; v[i] != '\0' && j + 3 < sizeof q; i++) {
		unsigned char c = (unsigned char)v[i];

		if (c < 0x20 || c >= 0x7f)
			c = '?';
		if (c == '"' || c == '\\')
			q[j++] = '\\';
		q[j++] = (char)c;
	}
	q[j] = '\0';
	spf_put(b, "\"%s\"", q);
}

size_t spf_received_field(const struct spf_query *q, const struct spf_outcome *o,
    char *out, size_t outlen)
{
	struct spf_out b = { out, 0, outlen, outlen == 0 };
	const char *name = spf_result_name(o->result);
	char ip[64], reason[sizeof o->reason];
	const char *receiver = q->receiver != NULL && spf_domain_ok(q->receiver) ?
	    q->receiver : "localhost";

	spf_sanitize(q->client_ip, ip, sizeof ip);
	/* A comment may not hold unbalanced parentheses or backslashes. */
	spf_sanitize(o->reason, reason, sizeof reason);
	for (char *p = reason; *p != '\0'; p++)
		if (*p == '(' || *p == ')' || *p == '\\')
			*p = ' ';
	spf_put(&b, "Received-SPF: %s (%s: %s)\r\n\treceiver=%s; client-ip=%s;", name,
	    receiver, reason, receiver, ip);
	if (!o->helo_identity) {
		spf_put(&b, "\r\n\tenvelope-from=");
		spf_put_value(&b, q->sender != NULL ? q->sender : "");
		spf_put(&b, ";");
	}
	if (q->helo != NULL && q->helo[0] != '\0') {
		spf_put(&b, " helo=");
		spf_put_value(&b, q->helo);
		spf_put(&b, ";");
	}
	spf_put(&b, " identity=%s", o->helo_identity ? "helo" : "mailfrom");
	if (b.over) {
		if (outlen > 0)
			out[0] = '\0';
		return 0;
	}
	return b.n;
}
