/*
 * ipgroup: which client a per-address limit counts (see ipgroup.h): the
 * connection limit per client (relay/listener.c) and the AUTH failure
 * throttle (policy/auth.c) both key on it, so an IPv6 client cannot
 * escape either by rotating through the 2^64 addresses of its prefix.
 *
 * Entry points: ipgroup_of_sockaddr, ipgroup_parse, ipgroup_format,
 * ipgroup_equal.
 * OWNERSHIP: nothing kept; results go into caller memory.
 * THREADS: any; no state.
 * ERRORS: ipgroup_parse: -EINVAL for text that is not a numeric address.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "common/ipgroup.h"
#include "common/util.h"

static const uint8_t ipgroup_v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* The group of the 16 bytes of an IPv6 address. */
static void ipgroup_from_v6(const uint8_t a[16], struct ipgroup *g)
{
	memset(g, 0, sizeof *g);
	if (memcmp(a, ipgroup_v4mapped, sizeof ipgroup_v4mapped) == 0) {
		g->family = AF_INET;
		memcpy(g->bytes, a + 12, 4);
		return;
	}
	g->family = AF_INET6;
	memcpy(g->bytes, a, 8);   /* the /64: the interface identifier is the client's to choose */
}

void ipgroup_of_sockaddr(const struct sockaddr *sa, struct ipgroup *g)
{
	memset(g, 0, sizeof *g);
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;

		ipgroup_from_v6(s6->sin6_addr.s6_addr, g);
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;

		g->family = AF_INET;
		memcpy(g->bytes, &s4->sin_addr, 4);
	}
}

int ipgroup_parse(const char *text, struct ipgroup *g)
{
	uint8_t a[16];

	memset(g, 0, sizeof *g);
	if (inet_pton(AF_INET, text, a) == 1) {
		g->family = AF_INET;
		memcpy(g->bytes, a, 4);
		return 0;
	}
	if (inet_pton(AF_INET6, text, a) == 1) {
		ipgroup_from_v6(a, g);
		return 0;
	}
	return -EINVAL;
}

void ipgroup_format(const struct ipgroup *g, char *out, size_t outlen)
{
	char text[INET6_ADDRSTRLEN];

	if (outlen == 0)
		return;
	if (g->family == AF_INET && inet_ntop(AF_INET, g->bytes, text, sizeof text) != NULL) {
		str_copy(out, text, outlen);
	} else if (g->family == AF_INET6 &&
	    inet_ntop(AF_INET6, g->bytes, text, sizeof text) != NULL) {
		snprintf(out, outlen, "%s/64", text);
	} else {
		str_copy(out, "unknown", outlen);
	}
}

bool ipgroup_equal(const struct ipgroup *a, const struct ipgroup *b)
{
	return a->family == b->family && memcmp(a->bytes, b->bytes, sizeof a->bytes) == 0;
}
