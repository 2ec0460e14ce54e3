#ifndef GOVRELAY_POLICY_SPF_H
#define GOVRELAY_POLICY_SPF_H
/*
 * spf: one SPF evaluation (RFC 7208) with libspf2, its DNS answered by
 * a lookup function the caller gives (the check's bridge to the daemon's
 * resolver, or a table in a unit test), never the system resolver. The
 * evaluation is synchronous: call it from a worker thread.
 *
 * Before libspf2 sees anything attacker-supplied, this module checks it:
 * the identity's domain (syntax, length, labels), every TXT record that
 * starts with "v=spf1" (its macros against RFC 7208 section 7.1, its
 * length), so that bookworm's libspf2 (CVE-2023-42118, unfixed) is only
 * handed records of a shape it handles. It also enforces the RFC 7208
 * section 4.6.4 limits itself (10 DNS-querying terms, 2 void lookups,
 * 10 MX names) and maps every DNS failure to temperror.
 */
#include <stdbool.h>
#include <stddef.h>

#include "policy/authres.h"
#include "policy/policy.h"

#define SPF_MAX_DNS_TERMS 10       /* RFC 7208 4.6.4 */
#define SPF_MAX_VOID 2             /* RFC 7208 4.6.4 */
#define SPF_MAX_MX_NAMES 10        /* RFC 7208 4.6.4: more is permerror */
#define SPF_RECORD_MAX 1024        /* a longer v=spf1 record is permerror */
#define SPF_TERM_MAX 255           /* a longer term is permerror */
#define SPF_TERM_MACROS_MAX 16     /* macro-expands in one term */
#define SPF_MACRO_DIGITS_MAX 128   /* the DIGIT transformer's bound */
#define SPF_DNS_RR_MAX 64          /* records of one answer kept */

/* One answer of the lookup function, owned by the evaluation. */
struct spf_dns_reply {
	enum policy_dns_status status;
	size_t n;
	char **rr;      /* n records, NUL-terminated (xmalloc'd) */
	size_t *len;    /* their lengths (a TXT may hold NUL bytes) */
	char error[96]; /* why TEMPFAIL */
	uint32_t ttl;   /* the answer's, 0: not to be kept */
};
/* Copies ans into r (at most SPF_DNS_RR_MAX records). */
void spf_dns_reply_set(struct spf_dns_reply *r, const struct policy_dns_answer *ans);
void spf_dns_reply_clear(struct spf_dns_reply *r);

/*
 * Answers one query synchronously into out (zeroed before the call;
 * the evaluation clears it). PTR names are reverse names.
 */
typedef void spf_lookup_fn(void *arg, enum policy_dns_kind kind, const char *name,
    struct spf_dns_reply *out);

struct spf_query {
	const char *client_ip;  /* numeric IPv4 or IPv6 */
	const char *helo;       /* as the client said it; NULL or "" if none */
	const char *sender;     /* envelope sender, "" for <> */
	const char *receiver;   /* our host name (Received-SPF receiver=, %{r}) */
};

struct spf_outcome {
	enum authres_result result;
	bool helo_identity;                    /* null sender: HELO checked */
	char domain[AUTHRES_DOMAIN_MAX + 1];   /* the identity's domain */
	char identity[320];                    /* "user@domain" or the HELO name */
	char reason[160];                      /* why, in words (for comments) */
	char explanation[200];                 /* fail: the published exp, sanitized */
	unsigned queries;                      /* DNS queries made */
	unsigned void_lookups;
	/*
	 * Seconds the result holds: the shortest TTL of the answers it was
	 * drawn from; 0 when it must not be kept (temperror, no lookup, an
	 * answer without a TTL).
	 */
	uint32_t ttl;
};

/* Runs the whole evaluation (any thread; lookup is called inline). */
void spf_evaluate(const struct spf_query *q, spf_lookup_fn *lookup, void *arg,
    struct spf_outcome *out);

/* RFC 7208 section 2.6's word for r (none for anything else). */
const char *spf_result_name(enum authres_result r);
/*
 * "Received-SPF: RESULT (comment) key=value; ..." (RFC 7208 section 9.1),
 * folded, no final CRLF. The length, 0 when out is too small.
 */
size_t spf_received_field(const struct spf_query *q, const struct spf_outcome *o,
    char *out, size_t outlen);

/* A domain libspf2 may be given: LDH labels of 1..63, at most 253 bytes. */
bool spf_domain_ok(const char *d);
/*
 * Checks a v=spf1 record (or, exp true, an explanation string) against
 * RFC 7208 section 7.1 and the bounds above: 0, or -EINVAL with why.
 */
int spf_record_check(const char *txt, size_t len, bool exp, char *why, size_t whylen);

#endif
