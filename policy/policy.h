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
};
const char *verdict_kind_name(enum verdict_kind kind);

struct verdict {
	enum verdict_kind kind;
	int code;          /* SMTP reply code, 0 for CONTINUE/ACCEPT */
	char enh[12];      /* RFC 3463 enhanced code, "" for CONTINUE/ACCEPT */
	char text[256];    /* for the reply: words a civil servant understands */
	const char *rule;  /* name of the rule that decided, static storage */
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
};

struct policy;

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
 * The message of req (DATA stage request) is durably queued: every row's
 * after-queue hook sees it (the tenant check counts it for the per-user
 * hourly rate). Loop thread.
 */
void policy_message_queued(struct policy *p, const struct policy_request *req);
#endif
