/*
 * stage_relay: may this client send to this recipient through us? A
 * recipient is accepted when its domain is one of ours (the domain table)
 * or the client may relay (trusted_networks, or authenticated).
 * Address-routing forms from clients that may not relay are refused like
 * Postfix's allow_untrusted_routing=no, so none of the classic open-relay
 * tricks work.
 *
 * Entry points: stage_relay_run (the "relay" row of policy/checks.c, at
 * RCPT; no state, no constructor).
 * OWNERSHIP: nothing kept beyond the call.
 * THREADS: loop thread; the domain lookup is an LMDB read transaction,
 * which never waits for the writer.
 * ERRORS: a store failure is a tempfail (451 4.3.0), never an accept.
 */
#include "config.h"

#include <errno.h>

#include "policy/check.h"
#include "queue/queue.h"

policy_check_run_fn stage_relay_run;

static const char stage_relay_rule[] = "relay";

void stage_relay_run(struct policy_call *call, const struct policy_request *req,
    void *state)
{
	struct verdict v;
	struct queue_txn *txn = NULL;
	struct queue_domain *dom = NULL;
	int rc;

	(void)state;
	policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "relay allowed");
	v.rule = stage_relay_rule;

	/* Trusted agency servers relay anywhere, as Postfix's mynetworks. */
	if (req->client_trusted || req->auth_user != NULL) {
		policy_call_complete(call, &v);
		return;
	}
	/*
	 * user%other@us, other!user@us and "user@other"@us ask the receiving
	 * host to route onwards; some mailers honour that, which would make us
	 * an open relay by proxy.
	 */
	if (req->rcpt_routing_chars) {
		policy_verdict_set(&v, VERDICT_REJECT, 554, "5.7.1",
		    "<%s>: Relay access denied", req->rcpt);
		v.rule = stage_relay_rule;
		policy_call_complete(call, &v);
		return;
	}
	/* RFC 5321 section 4.5.1: <Postmaster> must always be accepted. */
	if (req->rcpt_domain[0] == '\0') {
		policy_call_complete(call, &v);
		return;
	}
	rc = queue_txn_begin(policy_call_store(call), false, &txn);
	if (rc == 0)
		rc = queue_domain_get(txn, req->rcpt_domain, &dom);
	queue_txn_abort(txn);
	if (rc == 0) {
		queue_domain_free(dom);
	} else if (rc == -ENOENT || rc == -EINVAL) {
		/* -EINVAL: not a name the table can hold (an address literal). */
		policy_verdict_set(&v, VERDICT_REJECT, 554, "5.7.1",
		    "<%s>: Relay access denied", req->rcpt);
	} else {
		policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0",
		    "<%s>: Temporary lookup failure, try again later", req->rcpt);
	}
	v.rule = stage_relay_rule;
	policy_call_complete(call, &v);
}
