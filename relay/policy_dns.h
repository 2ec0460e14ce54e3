#ifndef GOVRELAY_RELAY_POLICY_DNS_H
#define GOVRELAY_RELAY_POLICY_DNS_H
/*
 * policy_dns: hands the policy engine the daemon's resolver (see
 * relay/policy_dns.c). dns must outlive p's use of it.
 */
#include <sys/socket.h>

#include "policy/policy.h"
#include "relay/dns.h"

struct policy_dns;

/* Returns the adapter; close it before the resolver (dns_close). */
struct policy_dns *policy_dns_install(struct policy *p, struct dns *dns);
/*
 * Cancels the lookups still in flight, answering each with a temporary
 * failure (the daemon is stopping), and frees the adapter. NULL is fine. After it,
 * policy_resolve must not be called. Loop thread.
 */
void policy_dns_close(struct policy_dns *pd);
/* A reverse name (in-addr.arpa, ip6.arpa) back to its address: 0 or -EINVAL. */
int policy_dns_reverse_addr(const char *name, struct sockaddr_storage *ss);

#endif
