/*
 * stage_headers: the header rules that protect the sender-authentication
 * verdicts, the "headers" row of policy/checks.c. At DATA, for every
 * message of every role (inbound and submitted alike): at most one From:,
 * Sender:, Subject:, Date:, Message-ID:, To: and Cc: (RFC 5322 section
 * 3.6). A second From: is the classic way to show a
 * reader one author while DMARC checks another; a second Subject: or To:
 * lets a signature cover one value while the reader sees the other. A
 * message that breaks the rule is refused 550 5.6.0 naming the field.
 *
 * A message with no From: at all is refused where a verdict depends on
 * it: by the tenant row for a submitter (before this one) and by the
 * dmarc row for mail from outside the city (DMARC has nothing to check
 * without it). From a client in trusted_networks (an agency's own server
 * relaying, where scanners and old applications send mail without one)
 * it is accepted, as it always was: there it misleads no reader and no
 * check.
 *
 * Entry points: stage_headers_run (DATA).
 * OWNERSHIP: no state; the request is borrowed.
 * THREADS: loop thread; decides synchronously.
 * ERRORS: none of its own: without a header scan (tools, unit tests
 * without one) the check has nothing to judge and continues.
 */
#include "config.h"

#include "common/rfc5322.h"
#include "policy/check.h"

policy_check_run_fn stage_headers_run;

void stage_headers_run(struct policy_call *call, const struct policy_request *req,
    void *state)
{
	const struct rfc5322_scan *sc = req->headers;
	struct verdict v;

	(void)state;
	if (req->stage != POLICY_STAGE_DATA || sc == NULL) {
		policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "no header section to check");
		policy_call_complete(call, &v);
		return;
	}
	for (unsigned i = 0; i < RFC5322_F_COUNT; i++) {
		if (sc->counts[i] <= 1)
			continue;
		policy_verdict_set(&v, VERDICT_REJECT, 550, "5.6.0",
		    "Message has %u %s: header fields (RFC 5322 section 3.6 allows one)",
		    sc->counts[i], rfc5322_field_name((enum rfc5322_field)i));
		policy_call_complete(call, &v);
		return;
	}
	policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "header fields counted");
	policy_call_complete(call, &v);
}
