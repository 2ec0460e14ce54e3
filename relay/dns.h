#ifndef GOVRELAY_DNS_H
#define GOVRELAY_DNS_H
/*
 * dns: the daemon's only resolver. Asynchronous lookups on the loop thread
 * (libunbound in thread mode, its answer pipe polled by libuv) for MX,
 * addresses (A and AAAA together), TXT, TLSA and PTR, with DNSSEC status,
 * a bounded answer cache and coalescing of identical lookups in flight.
 *
 * One request in, exactly one completion out: a query that was started
 * (return 0) calls its callback exactly once, always from the loop and
 * never from inside the call that started it, unless it is cancelled
 * first (dns_cancel) or the resolver is closed first (dns_close); in those
 * two cases the callback is never called. A caller that holds a reference
 * for a query in flight drops it itself when it cancels.
 *
 * Internal failures (resolver errors, SERVFAIL, REFUSED, timeouts,
 * malformed records, DNSSEC bogus answers) are all DNS_TEMPFAIL: the
 * caller tries again later and never turns them into a permanent failure.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "common/cfg.h"

/* RFC 1035 2.3.4 / RFC 2181 11: 253 characters in text form, no final dot. */
#define DNS_NAME_MAX 253
/* Default time a lookup may take before it completes with DNS_TEMPFAIL. */
#define DNS_TIMEOUT_MS_DEFAULT 20000
/* Default number of cached answers; the oldest is evicted beyond it. */
#define DNS_CACHE_MAX_DEFAULT 10000

enum dns_status {
	DNS_OK,       /* records found (n may still be 0 for a null MX) */
	DNS_NODATA,   /* the name exists but has no record of that type */
	DNS_NXDOMAIN, /* the name does not exist */
	DNS_TEMPFAIL, /* no usable answer now: try again later */
};
const char *dns_status_name(enum dns_status s);

struct dns_mx {
	uint16_t pref;
	char host[DNS_NAME_MAX + 1]; /* lowercase, no final dot */
};

struct dns_txt {
	const char *data; /* the character-strings joined, NUL-terminated; */
	size_t len;       /* may hold NUL bytes itself, so use len */
};

struct dns_tlsa {
	uint8_t usage, selector, mtype; /* RFC 6698 2.1 */
	const uint8_t *data;            /* certificate association data */
	size_t len;
};

struct dns_ptr {
	char host[DNS_NAME_MAX + 1]; /* lowercase, no final dot */
};

/*
 * What a callback receives. Everything it points to is valid only until
 * the callback returns (STYLE.md 5): copy what you keep. Exactly one of
 * the record arrays is set, the one for the kind of query, with n records
 * (n is 0 and the arrays are NULL unless status is DNS_OK).
 */
struct dns_result {
	enum dns_status status;
	/* Every answer used was DNSSEC-validated (gates DANE, RFC 7672). */
	bool secure;
	/* Validation failed: status is DNS_TEMPFAIL, why_bogus says why. */
	bool bogus;
	/*
	 * MX only: the domain publishes a null MX (RFC 7505: "MX 0 ."): it
	 * accepts no mail. status is DNS_OK, the "." records are not in mx,
	 * so n is 0 unless the domain also (wrongly) lists real hosts.
	 */
	bool null_mx;
	uint32_t ttl;          /* seconds left; the shortest of the answers used */
	const char *why_bogus; /* "" unless bogus */
	const char *error;     /* why DNS_TEMPFAIL, in words; "" otherwise */
	size_t n;
	/*
	 * MX: sorted by preference; equal preferences in a random order,
	 * shuffled anew for every answer (RFC 5321 5.1).
	 */
	const struct dns_mx *mx;
	/*
	 * Addresses (dns_query_addr): AF_INET first, then AF_INET6, port 0.
	 * When one family fails temporarily and the other answers, the
	 * answer is DNS_OK with what answered; DNS_NXDOMAIN needs both.
	 */
	const struct sockaddr_storage *addr;
	const struct dns_txt *txt;
	const struct dns_tlsa *tlsa;
	const struct dns_ptr *ptr;
};

struct dns;
struct dns_query;

/* Runs on the loop thread; res is borrowed for the call. */
typedef void dns_cb(void *arg, const struct dns_result *res);

struct dns_stats {
	uint64_t upstream;  /* lookups sent to libunbound */
	uint64_t hits;      /* answered from the cache */
	uint64_t coalesced; /* joined a lookup already in flight */
	uint64_t timeouts;  /* lookups abandoned after the timeout */
	uint64_t cached;    /* answers in the cache now */
	uint64_t inflight;  /* lookups in flight now */
};

/*
 * Creates a resolver on loop. server (dns_server from the configuration)
 * names the one server to forward to; when it is NULL or not set, the
 * nameservers of /etc/resolv.conf are used. /etc/hosts is never read.
 * Returns NULL on error with a message in err. Loop thread.
 */
struct dns *dns_new(uv_loop_t *loop, const struct cfg_hostport *server,
    char *err, size_t errlen);
/*
 * Adds a DNSSEC trust anchor in zone file form ("zone. IN DS 123 13 2
 * hex" or a DNSKEY). Must be called before the first query: -EBUSY
 * afterwards, -EINVAL for an anchor libunbound rejects.
 */
int dns_add_trust_anchor(struct dns *d, const char *anchor);
/* Timeout for lookups started from now on; 0 restores the default. */
void dns_set_timeout(struct dns *d, uint64_t ms);
/* Cache bound; 0 disables the cache. Shrinking evicts at once. */
void dns_set_cache_max(struct dns *d, size_t max);
void dns_get_stats(const struct dns *d, struct dns_stats *out);
/*
 * Begins closing: pending queries are dropped without their callbacks,
 * the cache is emptied, handles are closed; the memory is freed and then
 * cb(arg) runs (cb may be NULL) once every handle is closed. No call on d
 * after this. Loop thread.
 */
void dns_close(struct dns *d, void (*cb)(void *arg), void *arg);

/*
 * Queries. name is a host or domain name in ASCII (A-labels for IDNs),
 * with or without the final dot; letters, digits, '-' and '_' in labels
 * of 1 to 63 characters, 253 characters at most. Each returns 0 and, when
 * out is not NULL, a handle valid until the callback has returned or
 * dns_cancel; or -EINVAL (bad name or address, or d is closing), and then
 * cb never runs.
 */
int dns_query_mx(struct dns *d, const char *domain, dns_cb *cb, void *arg,
    struct dns_query **out);
/* A and AAAA of host, asked in parallel and joined (see dns_result.addr). */
int dns_query_addr(struct dns *d, const char *host, dns_cb *cb, void *arg,
    struct dns_query **out);
int dns_query_txt(struct dns *d, const char *name, dns_cb *cb, void *arg,
    struct dns_query **out);
/* name is the full owner name, e.g. "_25._tcp.mx.example.org" (RFC 7672). */
int dns_query_tlsa(struct dns *d, const char *name, dns_cb *cb, void *arg,
    struct dns_query **out);
/* Reverse lookup of an AF_INET or AF_INET6 address (v4-mapped counts as v4). */
int dns_query_ptr(struct dns *d, const struct sockaddr *addr, dns_cb *cb,
    void *arg, struct dns_query **out);
/* Forgets q: its callback will not run. Not after the callback has run. */
void dns_cancel(struct dns_query *q);

/* True when name passes the checks the query functions apply. */
bool dns_name_is_valid(const char *name);

#endif
