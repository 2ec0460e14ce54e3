#ifndef GOVRELAY_STAGE_RELAY_H
#define GOVRELAY_STAGE_RELAY_H
/*
 * stage_relay: relay authorization at RCPT. A recipient is accepted when
 * its domain is one of ours (the domain table) or the client may relay
 * (trusted_networks; later: authenticated). Address-routing forms from
 * clients that may not relay are refused like Postfix's
 * allow_untrusted_routing=no, so none of the classic open-relay tricks work.
 */
#include "policy/policy.h"

void stage_relay_check(struct policy_call *call, const struct policy_request *req,
    void *rule_arg);

#endif
