#ifndef GOVRELAY_DNS_INT_H
#define GOVRELAY_DNS_INT_H
/*
 * dns_int: what relay/dns.c (the resolver: libunbound, cache, queries)
 * and relay/dns_parse.c (the DNS wire format) share and nobody else may
 * see (STYLE.md section 2). Never include this from outside relay/.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relay/dns.h"

/* RR types (RFC 1035 3.2.2, RFC 3596, RFC 6698). */
#define DNS_T_A 1
#define DNS_T_SOA 6
#define DNS_T_PTR 12
#define DNS_T_MX 15
#define DNS_T_TXT 16
#define DNS_T_AAAA 28
#define DNS_T_TLSA 52

/*
 * The records of one answer, as dns__parse_records leaves them: recs is
 * an array of n of the public record type for the RR type (struct
 * sockaddr_storage, dns_mx, dns_ptr, dns_txt or dns_tlsa), blob the TXT
 * or TLSA bytes they point into. Both are the caller's to free.
 */
struct dns_records {
	void *recs;
	void *blob;
	size_t n;
	bool null_mx;   /* an "MX 0 ." was among the rdata (RFC 7505) */
};

/* The cache key: lowercase, final dot removed. name must be valid. */
void dns__key(const char *name, char key[DNS_NAME_MAX + 1]);
/* A TTL as the cache keeps it: RFC 2181 8, capped at one day. */
uint32_t dns__ttl_clamp(uint32_t ttl);
/*
 * The negative-answer TTL of a reply packet (RFC 2308 5): min(SOA TTL,
 * SOA MINIMUM), or five minutes when there is no SOA to read.
 */
uint32_t dns__negative_ttl(const unsigned char *pkt, size_t len);
/*
 * Parses the n rdata data[i] of len[i] bytes of an RR of the given type
 * into *out (zeroed first). 0, or -EBADMSG with nothing left in *out.
 */
int dns__parse_records(uint16_t type, char *const *data, const int *len, size_t n,
    struct dns_records *out);

#endif
