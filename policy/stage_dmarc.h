#ifndef GOVRELAY_STAGE_DMARC_H
#define GOVRELAY_STAGE_DMARC_H
/*
 * stage_dmarc: the parts of the DMARC check (policy/stage_dmarc.c) that
 * are pure functions, so that the unit tests (tests/unit/test_dmarc.c)
 * can drive the alignment and policy logic without DNS or a session:
 * the organizational domain (public suffix list), identifier alignment,
 * picking and parsing the published record (through libopendmarc), and
 * the decision over struct authres and that record.
 * Loop thread (the public suffix list is libopendmarc's global table).
 */
#include <stdbool.h>
#include <stddef.h>

#include "policy/authres.h"

/* Debian's publicsuffix package. */
#define DMARC_PSL_PATH "/usr/share/publicsuffix/public_suffix_list.dat"

/* A published DMARC record (RFC 7489 section 6.3), as libopendmarc parsed it. */
struct dmarc_record {
	char p;         /* 'n' none, 'q' quarantine, 'r' reject */
	char sp;        /* as p; '\0' when the record has no sp= */
	char adkim;     /* 'r' relaxed or 's' strict */
	char aspf;
	int pct;        /* 0..100 (default 100) */
	bool at_org;    /* found at the organizational domain, not the From: domain */
};

/* What the receiver does with the message. */
enum dmarc_disposition {
	DMARC_DISP_NONE,        /* deliver (DMARC pass, none, or p=none) */
	DMARC_DISP_QUARANTINE,  /* hold in the queue */
	DMARC_DISP_REJECT,      /* 550 5.7.1 */
	DMARC_DISP_DEFER,       /* 451 4.7.0: the outcome cannot be known now */
};
const char *dmarc_disposition_name(enum dmarc_disposition d);
/* RFC 8601 result words ("pass", "temperror"); "" for AUTHRES_NOT_RUN. */
const char *dmarc_result_word(enum authres_result r);
/* "none", "quarantine", "reject" for 'n', 'q', 'r'; "" otherwise. */
const char *dmarc_policy_name(char p);

/*
 * Loads the public suffix list (libopendmarc's opendmarc_tld_read_file)
 * once per process: 0, or a negative errno when the file is missing or
 * unreadable; then dmarc_org_domain falls back to the last two labels
 * (the list's default rule "*" alone).
 */
int dmarc_psl_load(const char *path);
/*
 * The organizational domain of domain (RFC 7489 section 3.2): the public
 * suffix plus one label; domain itself when it is a suffix or one label.
 * Lowercase, no trailing dot.
 */
void dmarc_org_domain(const char *domain, char *out, size_t outlen);
/*
 * Whether an authenticated identifier's domain is aligned with the From:
 * domain in mode 's' (equal) or 'r' (same organizational domain).
 */
bool dmarc_aligned(const char *id_domain, const char *from_domain, char mode);

/*
 * The DMARC record among the TXT records of a _dmarc name (RFC 7489
 * section 6.6.3): those that start "v=DMARC1" count; exactly one must,
 * and must parse (a valid p=). 1 with *rec filled (at_org false), 0 when
 * there is none usable (*why says why, static). len[i] is the length of
 * rr[i] (a TXT may hold a NUL byte: such a record is not one).
 */
int dmarc_record_pick(const char *const *rr, const size_t *len, size_t n,
    struct dmarc_record *rec, const char **why);

/*
 * The decision (RFC 7489 sections 4.2, 6.6): SPF (its identity's domain
 * and result) and each DKIM signature of ar are checked for alignment
 * with from_domain under rec's modes (relaxed without a record), and
 * out (ar->dmarc usually) is filled: result pass when one aligned
 * identifier passed; none without a record; fail otherwise, temperror
 * when the record could not be fetched (dns_tempfail) or when an aligned
 * identifier failed only temporarily under a policy that would act.
 * roll (0..99, random per message) applies pct=: a failed message is
 * subject to the policy when roll < pct, else the next milder policy
 * applies (reject -> quarantine -> none, RFC 7489 section 6.6.4).
 * Returns the disposition.
 */
enum dmarc_disposition dmarc_evaluate(const struct authres *ar, const char *from_domain,
    const struct dmarc_record *rec, bool dns_tempfail, unsigned roll,
    struct authres_dmarc *out);

#endif
