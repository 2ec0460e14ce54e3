#ifndef GOVRELAY_POLICY_AUTHRES_H
#define GOVRELAY_POLICY_AUTHRES_H
/*
 * authres: what the sender-authentication checks found about one message,
 * kept in its policy transaction (policy_tx_authres) so that each check
 * can read what the ones before it wrote: SPF (MAIL stage) and DKIM
 * verify (DATA) write, DMARC (DATA, after both) reads them, writes its
 * own and renders our one Authentication-Results header field (RFC 8601).
 * Also the rule for incoming fields that claim our authserv-id.
 *
 * Plain data: no allocation (fixed, bounded fields), copied freely.
 */
#include <stdbool.h>
#include <stddef.h>

#define AUTHRES_DOMAIN_MAX 253
#define AUTHRES_MAX_SIGS 8        /* DKIM signatures reported; more are counted */

/* RFC 8601 2.7 result words, shared by the three methods. */
enum authres_result {
	AUTHRES_NOT_RUN,   /* the check did not run for this message */
	AUTHRES_NONE,
	AUTHRES_PASS,
	AUTHRES_FAIL,
	AUTHRES_SOFTFAIL,  /* SPF */
	AUTHRES_NEUTRAL,   /* SPF, DKIM */
	AUTHRES_POLICY,    /* DKIM: valid but not acceptable (l= short of the body) */
	AUTHRES_TEMPERROR,
	AUTHRES_PERMERROR,
};
const char *authres_result_name(enum authres_result r);

struct authres_spf {
	enum authres_result result;
	bool helo_identity;                    /* null sender: the HELO name was checked */
	char domain[AUTHRES_DOMAIN_MAX + 1];   /* the identity's domain */
	char identity[320];                    /* smtp.mailfrom or smtp.helo value */
	char reason[160];                      /* libspf2's explanation, for comments */
};

struct authres_dkim_sig {
	enum authres_result result;
	char domain[AUTHRES_DOMAIN_MAX + 1];   /* d= */
	char selector[64];                     /* s= */
	char algorithm[24];                    /* "rsa-sha256", "ed25519-sha256" */
	char identity[320];                    /* i=, or "@" + d= */
	char b_prefix[16];                     /* first characters of b= (RFC 8601 header.b) */
	char reason[120];                      /* why not pass, in words */
};

struct authres_dmarc {
	enum authres_result result;
	char from_domain[AUTHRES_DOMAIN_MAX + 1];
	char policy[16];                       /* "none", "quarantine", "reject", "" */
	bool spf_aligned, dkim_aligned;
	char reason[120];
};

struct authres {
	struct authres_spf spf;
	struct authres_dkim_sig dkim[AUTHRES_MAX_SIGS];
	size_t ndkim;                          /* entries of dkim[] used */
	size_t ndkim_total;                    /* signatures seen, even past the array */
	bool dkim_ran;                         /* verification ran (none seen: dkim=none) */
	struct authres_dmarc dmarc;
};

/*
 * Renders "Authentication-Results: AUTHSERV-ID; spf=...; dkim=...;
 * dmarc=..." (methods that did not run are left out; none ran:
 * "AUTHSERV-ID; none"), folded, no final CRLF. NUL-terminated; the
 * length, or 0 when out was too small.
 */
size_t authres_render(const struct authres *ar, const char *authserv_id, char *out,
    size_t outlen);
/*
 * True when field (one whole header field "Name: value", maybe folded)
 * is an Authentication-Results field whose authserv-id is authserv_id
 * (compared without case, RFC 8601 2.5): RFC 8601 section 5 says such
 * fields from outside must be removed before ours is added.
 */
bool authres_claims_id(const char *field, size_t len, const char *authserv_id);

#endif
