#ifndef GOVRELAY_IPGROUP_H
#define GOVRELAY_IPGROUP_H
/*
 * ipgroup: the unit a per-address limit counts. One IPv4 address is one
 * client; an IPv6 client is its /64, since a single subscriber line or
 * host is routinely given a whole /64 and can pick any address in it; an
 * IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address it maps.
 * Pure: no state, any thread.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest text ipgroup_format writes, NUL included. */
#define IPGROUP_TEXT_MAX 48

struct ipgroup {
	int family;          /* AF_INET or AF_INET6; 0 for anything else */
	uint8_t bytes[16];   /* the address, host bits of a /64 cleared; rest zero */
};

/* The group of a peer address (AF_INET, AF_INET6; others: family 0). */
void ipgroup_of_sockaddr(const struct sockaddr *sa, struct ipgroup *g);
/* The group of a numeric address as text. 0, or -EINVAL when it is not one. */
int ipgroup_parse(const char *text, struct ipgroup *g);
/* "192.0.2.7" or "2001:db8:1:2::/64" into out (IPGROUP_TEXT_MAX bytes). */
void ipgroup_format(const struct ipgroup *g, char *out, size_t outlen);
bool ipgroup_equal(const struct ipgroup *a, const struct ipgroup *b);

#endif
