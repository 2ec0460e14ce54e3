#ifndef GOVRELAY_STAGE_TENANT_H
#define GOVRELAY_STAGE_TENANT_H
/*
 * stage_tenant: the rules that come from tenancy (queue/tenancy.h).
 *   MAIL  an authenticated user may send only as their own addresses and
 *         aliases they own (553 5.7.1), within their agency's hourly
 *         message rate (450 4.7.1) and size limit (552 5.3.4).
 *   RCPT  a recipient in one of our domains must be a mailbox or alias
 *         unless the domain accepts all (550 5.1.1); mail leaving the city
 *         needs the sending agency's allow_external (550 5.7.1), and from
 *         a trusted agency server a sender address of ours (554 5.7.1);
 *         the agency's max_recipients (452 4.5.3).
 *   DATA  for an authenticated user, the From: header must name exactly
 *         the envelope sender (550 5.7.1); the agency's size limit.
 * Policy values are read live from the store for each request, so a
 * `govrelayctl policy set` applies to the next command.
 */
#include "policy/policy.h"

struct stage_tenant;

struct stage_tenant *stage_tenant_new(void);
void stage_tenant_free(struct stage_tenant *st);

/* policy_check_fn for MAIL, RCPT and DATA; rule_arg is the stage_tenant. */
void stage_tenant_mail(struct policy_call *call, const struct policy_request *req,
    void *rule_arg);
void stage_tenant_rcpt(struct policy_call *call, const struct policy_request *req,
    void *rule_arg);
void stage_tenant_data(struct policy_call *call, const struct policy_request *req,
    void *rule_arg);
/* A message of req->auth_user was queued: count it for the hourly rate. */
void stage_tenant_queued(struct stage_tenant *st, const struct policy_request *req);

#endif
