#ifndef GOVRELAY_RELAY_POLICY_DNS_H
#define GOVRELAY_RELAY_POLICY_DNS_H
/*
 * policy_dns: hands the policy engine the daemon's resolver (see
 * relay/policy_dns.c). dns must outlive p's use of it.
 */
#include <sys/socket.h>

#include "policy/policy.h"
#include "relay/dns.h"

void policy_dns_install(struct policy *p, struct dns *dns);
/* A reverse name (in-addr.arpa, ip6.arpa) back to its address: 0 or -EINVAL. */
int policy_dns_reverse_addr(const char *name, struct sockaddr_storage *ss);

#endif
