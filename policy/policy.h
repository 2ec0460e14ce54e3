#ifndef GOVRELAY_POLICY_H
#define GOVRELAY_POLICY_H
/*
 * policy: the verdict pipeline as the session sees it (ARCHITECTURE.md
 * step 3, STYLE.md section 8). At construction the engine compiles the
 * check table (policy/checks.c) into one rule array per stage and
 * listener role; at request time it walks that array, the first decisive
 * verdict wins and CONTINUE falls through. A check completes exactly once,
 * synchronously or later by callback; the engine owns the timeout, which
 * turns a slow check into a tempfail (never an accept, never a 5xx).
 *
 * policy sees a session only through struct policy_request: it never
 * includes a relay/ header. What a check's author needs (the table row,
 * the completion call) is in policy/check.h.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/cfg.h"
#include "common/rfc5322.h"
#include "queue/queue.h"

struct policy;
struct policy_tx;
struct authres;

enum policy_stage {
	POLICY_STAGE_CONNECT,
	POLICY_STAGE_HELO,
	POLICY_STAGE_MAIL,
	POLICY_STAGE_RCPT,
	POLICY_STAGE_DATA,
	POLICY_STAGE_COUNT
};
const char *policy_stage_name(enum policy_stage stage);

enum verdict_kind {
	VERDICT_CONTINUE,
	VERDICT_ACCEPT,
	VERDICT_TEMPFAIL,
	VERDICT_REJECT,
	VERDICT_DISCONNECT,
	/*
	 * DATA stage only: accept the message (the client gets 250) but keep
	 * it out of delivery, whole in the quarantine (queue/quarantine.h)
	 * with the verdict: rule (verdict.rule), reason (verdict.text, what
	 * `quarantine list/show` print) and the transaction's notes
	 * (policy_tx_note), plus a `quarantined` audit record naming rule and
	 * reason. code and enh are not used (set 0 and ""). A security
	 * operator or root may release it (`quarantine release`) or delete
	 * it. DMARC p=quarantine gives it; so does the content check.
	 * Decisive, like ACCEPT.
	 */
	VERDICT_QUARANTINE,
};
const char *verdict_kind_name(enum verdict_kind kind);

struct verdict {
	enum verdict_kind kind;
	int code;          /* SMTP reply code, 0 for CONTINUE/ACCEPT */
	char enh[12];      /* RFC 3463 enhanced code, "" for CONTINUE/ACCEPT */
	/*
	 * For the reply: words a civil servant understands. A "\n" starts
	 * another line of a multi-line reply (a refusal said in Vietnamese,
	 * then in English); each line stays under RFC 5321's 512 octets.
	 */
	char text[640];
	const char *rule;  /* name of the rule that decided, static storage */
	/*
	 * A refusal that is its own kind of audit record ("classified"),
	 * static storage; NULL: the record is "rejected" or "tempfailed".
	 */
	const char *event;
};

void policy_verdict_set(struct verdict *v, enum verdict_kind kind, int code,
    const char *enh, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* What a check may know about the session and transaction. Borrowed. */
struct policy_request {
	enum policy_stage stage;
	const char *session_id;
	const char *client_addr;      /* numeric IP */
	bool client_trusted;          /* in trusted_networks */
	/*
	 * "mx", "submission", "submissions" (cfg_role_name): only the rows
	 * whose roles include it run. NULL (unit tests, tools): every row.
	 */
	const char *listener_role;
	bool tls;
	const char *auth_user;        /* canonical address after AUTH, else NULL */
	const char *helo;
	const char *sender;           /* "" for <> */
	/* RCPT stage */
	const char *rcpt;             /* full address */
	const char *rcpt_domain;      /* lowercased; "" for <Postmaster> */
	bool rcpt_routing_chars;      /* % ! or quoted @ in the local part */
	size_t nrcpt;                 /* recipients accepted so far */
	uint64_t declared_size;       /* SIZE= at MAIL, 0 when not given */
	/* DATA stage */
	const struct rfc5322_scan *headers; /* what the header section said */
	uint64_t size;                /* body bytes from the client */
	/*
	 * The transaction's policy state (MAIL, RCPT and DATA stages of a
	 * session; NULL elsewhere and in tools): per-check message state,
	 * the sender-authentication results, added header fields, notes.
	 */
	struct policy_tx *tx;
};

/* ------------------------------------------------------------ resolver */

/*
 * The resolver seam: policy never includes relay/dns.h; the daemon hands
 * the engine these operations (policy_set_resolver) and checks reach them
 * through policy_resolve. Kinds are the record types SPF, DKIM and DMARC
 * need. Answers are text: TXT records (character-strings joined), A and
 * AAAA as numeric addresses, MX and PTR as host names (MX sorted by
 * preference, ties in random order).
 */
enum policy_dns_kind { POLICY_DNS_TXT, POLICY_DNS_A, POLICY_DNS_AAAA, POLICY_DNS_MX,
	POLICY_DNS_PTR };
enum policy_dns_status { POLICY_DNS_OK, POLICY_DNS_NODATA, POLICY_DNS_NXDOMAIN,
	POLICY_DNS_TEMPFAIL };

struct policy_dns_answer {
	enum policy_dns_status status;
	size_t n;
	const char *const *rr;  /* n records, NUL-terminated; borrowed */
	const size_t *len;      /* their lengths (a TXT may hold NUL bytes) */
	const char *error;      /* why TEMPFAIL, in words; "" otherwise */
	uint32_t ttl;           /* seconds it stays true; 0: not to be kept */
};
/* Runs once on the loop thread; ans is borrowed for the call. */
typedef void policy_dns_cb(void *arg, const struct policy_dns_answer *ans);

struct policy_resolver {
	void *ctx;
	/*
	 * Starts a lookup; name is ASCII (A-labels), PTR takes the reverse
	 * name ("4.3.2.1.in-addr.arpa"). 0: cb runs exactly once, later,
	 * from the loop; -EINVAL: bad name, cb never runs. Loop thread.
	 */
	int (*lookup)(void *ctx, enum policy_dns_kind kind, const char *name,
	    policy_dns_cb *cb, void *arg);
};

/* Gives the engine the daemon's resolver (copied). Loop thread. */
void policy_set_resolver(struct policy *p, const struct policy_resolver *r);
/*
 * A lookup through the daemon's resolver: as policy_resolver.lookup;
 * -ENOSYS when none was set (then cb never runs). Loop thread.
 */
int policy_resolve(struct policy *p, enum policy_dns_kind kind, const char *name,
    policy_dns_cb *cb, void *arg);

typedef void policy_done_fn(void *arg, const struct verdict *v);

/*
 * Builds the engine from the product's check table: every row's
 * constructor runs with cfg (may be NULL: builtin settings). 0, or a
 * negative errno with err naming the check that refused the
 * configuration (then nothing is kept). Loop thread.
 */
int policy_new(uv_loop_t *loop, const struct config *cfg, struct queue_store *store,
    struct policy **out, char *err, size_t errlen);
void policy_free(struct policy *p);

/*
 * Runs stage's rules over req. done(arg, verdict) runs exactly once, maybe
 * before policy_run returns; the verdict is CONTINUE when no rule decided.
 * req must stay valid until done runs. Loop thread.
 */
void policy_run(struct policy *p, const struct policy_request *req,
    policy_done_fn *done, void *arg);

/*
 * Explain mode (`govrelayctl policy explain`): what each rule of the
 * stage says about req, not only the one that decides. each(each_arg,
 * rule, v) runs once per rule of the stage and role, in table order,
 * with rule the row's name and v its verdict (v->rule may name a
 * sub-rule; a WARN_ONLY row's decisive verdict is reported as the
 * CONTINUE the engine makes of it, its text saying what it would have
 * done). A decisive verdict does not stop the walk: every rule runs.
 * A rule that times out is reported as its tempfail, and every rule
 * after it with v NULL (not run): the timed-out check may still complete
 * later, and the engine's one-completion rule forbids starting another
 * check of the same call meanwhile. Then done(arg, verdict) runs exactly
 * once with what policy_run would have answered: the first decisive
 * verdict, else the timeout's tempfail, else CONTINUE. each runs before
 * done, maybe before policy_run_explain returns; neither runs after
 * done. req must stay valid until done runs. Loop thread.
 */
typedef void policy_each_fn(void *arg, const char *rule, const struct verdict *v);
void policy_run_explain(struct policy *p, const struct policy_request *req,
    policy_each_fn *each, void *each_arg, policy_done_fn *done, void *arg);

/*
 * The message of req (DATA stage request) is durably queued: every row's
 * after-queue hook sees it (the tenant check counts it for the per-user
 * hourly rate). Loop thread.
 */
void policy_message_queued(struct policy *p, const struct policy_request *req);

/* ------------------------------------------------------- transactions */

/*
 * One mail transaction's policy state. The session makes it when MAIL is
 * accepted by the policy... precisely: before the MAIL stage runs (so the
 * MAIL stage's checks can record results in it), passes it in every
 * request of the transaction (policy_request.tx), feeds it the message as
 * it streams in, reads back what the checks added at the commit, and
 * frees it when the transaction ends, whatever way it ends. Loop thread.
 */
struct policy_tx *policy_tx_new(struct policy *p, const char *listener_role,
    const char *session_id);
/* Frees tx and every check's message state. NULL is fine. */
void policy_tx_free(struct policy_tx *tx);
/*
 * The message as the client sent it (after dot-unstuffing, before any
 * header of ours), in order, in pieces of any size, from its first header
 * line to its last byte: every check's body hook sees each piece.
 */
void policy_tx_body(struct policy_tx *tx, const char *data, size_t len);
/*
 * Header fields the checks added (policy_tx_add_header), ready to store
 * above the message: "Name: value\r\n" each, folded, in the order added.
 */
const char *policy_tx_headers(const struct policy_tx *tx, size_t *len);
/*
 * The checks' notes for the audit record of this message: "key=value"
 * pairs separated by "; " (policy_tx_note), or "".
 */
const char *policy_tx_notes(const struct policy_tx *tx);
/* The engine of tx, for checks that need policy_resolve from a hook. */
struct policy *policy_tx_policy(const struct policy_tx *tx);
/*
 * The engine's event loop, for checks that put heavy work on its thread
 * pool (uv_queue_work) instead of the loop thread.
 */
uv_loop_t *policy_loop(const struct policy *p);
/* What the sender-authentication checks found (policy/authres.h). */
struct authres *policy_tx_authres(struct policy_tx *tx);
/*
 * A header field to add above the message: field is "Name: value",
 * folded as it should be stored (lines joined with "\r\n\t"), no final
 * CRLF. Added fields are stored in the order added, above the original
 * header section and below our Received: line.
 */
void policy_tx_add_header(struct policy_tx *tx, const char *field);
/*
 * A message the refusal of this transaction must send (a classified
 * refusal's notice to a security contact): to, and the whole message
 * (header section and body, CRLF line ends), copied. The session queues
 * each with the refusal's audit record, in one transaction, so the
 * record and its notices commit together; nothing is sent when the
 * message is accepted after all.
 */
struct policy_notice {
	char *to;
	char *message;
	size_t len;
};
void policy_tx_add_notice(struct policy_tx *tx, const char *to, const char *message,
    size_t len);
/* The notices added so far (n of them), borrowed from tx. */
const struct policy_notice *policy_tx_notices(const struct policy_tx *tx, size_t *n);
/* A note for the audit record; value is escaped by the engine. */
void policy_tx_note(struct policy_tx *tx, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
#endif
