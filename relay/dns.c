/*
 * dns: the daemon's only resolver (STYLE.md 1: nothing on the loop
 * blocks). libunbound runs its resolver on a thread of its own
 * (ub_ctx_async(ctx, 1): the default would fork a process) and writes
 * answers to a pipe; a uv_poll_t watches that pipe and ub_process() runs
 * our answer callback on the loop thread. The answer is parsed once into
 * a refcounted struct dns_answer (by relay/dns_parse.c: every rdata
 * length checked, names decoded with dn_expand and validated), cached
 * per (lowercased name, type), and handed to every query waiting for
 * it. User callbacks never run inside ub_process() nor inside the call
 * that started the query: finished queries go on a ready list that an
 * idle handle drains, so a callback may start, cancel or close anything.
 *
 * Layers: a query (struct dns_query, the caller's handle) has one or two
 * sub-lookups (MX; or A and AAAA for an address lookup). A sub-lookup is
 * answered from the cache, or waits on the lookup in flight for the same
 * (name, type) (coalescing), or starts one (struct dns_upq). A lookup
 * whose waiters are all cancelled keeps running, so its answer still
 * fills the cache; the timeout bounds it.
 *
 * Cache: at most cache_max answers (oldest evicted first), each kept for
 * its TTL capped at one day; negative answers for min(SOA TTL, SOA
 * MINIMUM) (RFC 2308 5) or five minutes when the answer has no SOA;
 * temporary failures are never kept.
 *
 * Entry points: dns_new, dns_add_trust_anchor, dns_set_timeout,
 * dns_set_cache_max, dns_get_stats, dns_close, dns_query_mx,
 * dns_query_addr, dns_query_txt, dns_query_tlsa, dns_query_ptr,
 * dns_cancel, dns_status_name (dns_name_is_valid is in dns_parse.c).
 *
 * OWNERSHIP: struct dns owns the libunbound context, its three handles,
 * the cache and every lookup in flight; each query is owned by dns until
 * its callback has returned (then freed) or it is cancelled. Answers are
 * shared by reference count between the cache and the queries holding
 * them. What a callback receives is borrowed for the call.
 *
 * THREADS: loop thread only. libunbound's own thread never touches our
 * structures: it talks to us through the pipe only.
 *
 * ERRORS: dns_new reports in words; query functions return -EINVAL for a
 * bad name (the callback then never runs); every failure after that is a
 * DNS_TEMPFAIL answer with an error text. Nothing is logged here except
 * a broken libunbound pipe, which has no caller to report to.
 *
 * Not done yet: the root trust anchor for production (RFC 5011 tracking
 * with ub_ctx_add_ta_autr) is left to the caller's configuration; without
 * any anchor every answer is insecure (secure = false), never bogus.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <resolv.h>
#include <unbound.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "relay/dns.h"
#include "relay/dns_int.h"

/* RR class (RFC 1035 3.2.4); the types are in dns_int.h. */
#define DNS_CLASS_IN 1

/* Rcodes (RFC 1035 4.1.1). */
#define DNS_RCODE_NXDOMAIN 3

#define DNS_CACHE_BUCKETS 4096  /* powers of two */
#define DNS_INFLIGHT_BUCKETS 1024

enum dns_kind { DNS_K_MX, DNS_K_ADDR, DNS_K_TXT, DNS_K_TLSA, DNS_K_PTR };

/* One parsed answer for (name, type), shared by the cache and queries. */
struct dns_answer {
	int refs;
	uint16_t type;
	enum dns_status status;
	bool secure;
	bool bogus;
	bool null_mx;
	uint64_t expires;  /* uv_now() milliseconds */
	char *error;       /* NULL unless DNS_TEMPFAIL */
	char *why_bogus;   /* NULL unless bogus */
	size_t n;
	void *recs;        /* array of the public record type for type */
	void *blob;        /* TXT and TLSA bytes the records point into */
	/* Cache links: hash chain, and age order for eviction. */
	uint32_t hash;
	struct dns_answer *hnext;
	struct dns_answer *older, *newer;
	char name[DNS_NAME_MAX + 1]; /* lowercase, no final dot */
};

struct dns_query;

/* One (name, type) a query needs answered. */
struct dns_sub {
	struct dns_query *q;
	uint16_t type;
	struct dns_answer *answer; /* set once answered */
	struct dns_upq *upq;       /* set while waiting on a lookup */
	struct dns_sub *wprev, *wnext;
};

struct dns_query {
	struct dns *d;
	enum dns_kind kind;
	dns_cb *cb;
	void *arg;
	unsigned nsub;
	unsigned pending;       /* sub-lookups not answered yet */
	bool ready;
	bool in_callback;
	uint64_t seq;           /* ready-list order, see dns_on_idle */
	struct dns_sub sub[2];
	struct dns_query *prev, *next;   /* every live query */
	struct dns_query *rprev, *rnext; /* the ready list */
};

/* One lookup in flight in libunbound. */
struct dns_upq {
	struct dns *d;
	uint16_t type;
	int async_id;
	uint64_t started;  /* uv_now() milliseconds */
	uint64_t deadline;
	uint32_t hash;
	struct dns_upq *hnext;
	struct dns_upq *prev, *next; /* start order, hence deadline order */
	struct dns_sub *waiters, *wlast; /* in request order */
	char name[DNS_NAME_MAX + 1];
};

struct dns {
	uv_loop_t *loop;
	struct ub_ctx *ub;
	uv_poll_t poll;
	uv_timer_t timer;
	uv_idle_t idle;
	int open_handles;
	bool closing;
	bool started;      /* a query reached libunbound: config is final */
	void (*close_cb)(void *arg);
	void *close_arg;
	uint64_t timeout_ms;
	size_t cache_max;
	uint64_t rng;      /* xorshift64 state: MX ties, hash seed */
	uint32_t hash_seed;
	struct dns_answer *cache[DNS_CACHE_BUCKETS];
	struct dns_answer *oldest, *newest;
	struct dns_upq *inflight[DNS_INFLIGHT_BUCKETS];
	struct dns_upq *up_first, *up_last;
	struct dns_query *queries;
	struct dns_query *ready_first, *ready_last;
	uint64_t ready_seq;
	struct dns_stats stats;
};

static void dns_on_idle(uv_idle_t *h);
static void dns_on_timer(uv_timer_t *t);

const char *dns_status_name(enum dns_status s)
{
	switch (s) {
	case DNS_OK: return "ok";
	case DNS_NODATA: return "nodata";
	case DNS_NXDOMAIN: return "nxdomain";
	case DNS_TEMPFAIL: return "tempfail";
	}
	return "?";
}

static const char *dns_type_name(uint16_t type)
{
	switch (type) {
	case DNS_T_A: return "A";
	case DNS_T_PTR: return "PTR";
	case DNS_T_MX: return "MX";
	case DNS_T_TXT: return "TXT";
	case DNS_T_AAAA: return "AAAA";
	case DNS_T_TLSA: return "TLSA";
	}
	return "?";
}

static uint64_t dns_random(struct dns *d)
{
	/* xorshift64: spreads MX ties, no secrecy needed. */
	d->rng ^= d->rng << 13;
	d->rng ^= d->rng >> 7;
	d->rng ^= d->rng << 17;
	return d->rng;
}

/* ------------------------------------------------------- cache keys */

static uint32_t dns_hash(const struct dns *d, const char *key, uint16_t type)
{
	/* FNV-1a with a per-resolver seed, so chains cannot be aimed at. */
	uint32_t h = 2166136261u ^ d->hash_seed;

	for (; *key; key++) {
		h ^= (unsigned char)*key;
		h *= 16777619u;
	}
	h ^= type & 0xff;
	h *= 16777619u;
	h ^= type >> 8;
	h *= 16777619u;
	return h;
}

/* ---------------------------------------------------------- answers */

static struct dns_answer *dns_answer_new(const char *key, uint16_t type)
{
	struct dns_answer *a = xcalloc(1, sizeof(*a));

	a->refs = 1;
	a->type = type;
	str_copy(a->name, key, sizeof(a->name));
	return a;
}

static struct dns_answer *dns_answer_ref(struct dns_answer *a)
{
	a->refs++;
	return a;
}

static void dns_answer_unref(struct dns_answer *a)
{
	if (a == NULL || --a->refs > 0)
		return;
	free(a->error);
	free(a->why_bogus);
	free(a->recs);
	free(a->blob);
	free(a);
}

static void dns_answer_fail(struct dns_answer *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Turns a into a temporary failure, dropping any records. */
static void dns_answer_fail(struct dns_answer *a, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	free(a->recs);
	free(a->blob);
	free(a->error);
	a->recs = a->blob = NULL;
	a->n = 0;
	a->null_mx = false;
	a->secure = false;
	a->status = DNS_TEMPFAIL;
	a->error = xstrdup(text);
}

static const char *dns_rcode_name(int rcode)
{
	switch (rcode) {
	case 1: return "FORMERR";
	case 2: return "SERVFAIL";
	case 4: return "NOTIMP";
	case 5: return "REFUSED";
	}
	return "an error";
}

/* What libunbound reported, as an answer. Does not free r. */
static struct dns_answer *dns_answer_from_ub(const char *key, uint16_t type,
    int err, const struct ub_result *r)
{
	struct dns_answer *a = dns_answer_new(key, type);
	const char *tname = dns_type_name(type);
	size_t n = 0;

	if (err != 0 || r == NULL) {
		dns_answer_fail(a, "%s lookup of %s failed: resolver error: %s",
		    tname, key, ub_strerror(err));
		return a;
	}
	/* Bogus data is returned alongside: it must never be used. */
	if (r->bogus) {
		dns_answer_fail(a, "%s lookup of %s failed DNSSEC validation",
		    tname, key);
		a->bogus = true;
		a->why_bogus = xstrdup(r->why_bogus ? r->why_bogus : "unknown reason");
		return a;
	}
	if (r->nxdomain || r->rcode == DNS_RCODE_NXDOMAIN) {
		a->status = DNS_NXDOMAIN;
	} else if (r->rcode != 0) {
		dns_answer_fail(a, "%s lookup of %s failed: server answered %s",
		    tname, key, dns_rcode_name(r->rcode));
		return a;
	} else if (!r->havedata || r->data == NULL || r->data[0] == NULL) {
		a->status = DNS_NODATA;
	} else {
		struct dns_records recs;

		while (r->data[n] != NULL)
			n++;
		if (r->len == NULL || dns__parse_records(type, r->data, r->len, n, &recs) < 0) {
			dns_answer_fail(a, "%s lookup of %s failed: malformed %s record",
			    tname, key, tname);
			return a;
		}
		a->recs = recs.recs;
		a->blob = recs.blob;
		a->n = recs.n;
		a->null_mx = recs.null_mx;
		a->status = DNS_OK;
	}
	a->secure = r->secure != 0;
	return a;
}

/* Seconds a answer stays valid, for the answer and the cache. */
static uint32_t dns_answer_ttl(const struct dns_answer *a, const struct ub_result *r)
{
	if (a->status == DNS_TEMPFAIL)
		return 0;
	if (a->status == DNS_OK)
		return dns__ttl_clamp(r->ttl > 0 ? (uint32_t)r->ttl : 0);
	return dns__negative_ttl(r->answer_packet, r->answer_len > 0 ?
	    (size_t)r->answer_len : 0);
}

/* ------------------------------------------------------------ cache */

static void dns_cache_unlink(struct dns *d, struct dns_answer *a)
{
	struct dns_answer **pp = &d->cache[a->hash & (DNS_CACHE_BUCKETS - 1)];

	while (*pp != a)
		pp = &(*pp)->hnext;
	*pp = a->hnext;
	if (a->older)
		a->older->newer = a->newer;
	else
		d->oldest = a->newer;
	if (a->newer)
		a->newer->older = a->older;
	else
		d->newest = a->older;
	a->hnext = a->older = a->newer = NULL;
	d->stats.cached--;
	dns_answer_unref(a);
}

static struct dns_answer *dns_cache_get(struct dns *d, const char *key,
    uint16_t type, uint32_t hash)
{
	struct dns_answer *a = d->cache[hash & (DNS_CACHE_BUCKETS - 1)];

	for (; a != NULL; a = a->hnext) {
		if (a->hash != hash || a->type != type || strcmp(a->name, key) != 0)
			continue;
		if (a->expires <= uv_now(d->loop)) {
			dns_cache_unlink(d, a);
			return NULL;
		}
		return a;
	}
	return NULL;
}

static void dns_cache_put(struct dns *d, struct dns_answer *a, uint32_t ttl)
{
	struct dns_answer *old;

	if (d->cache_max == 0 || ttl == 0 || a->status == DNS_TEMPFAIL)
		return;
	a->hash = dns_hash(d, a->name, a->type);
	/* An expired copy may still sit there: never keep two. */
	if ((old = dns_cache_get(d, a->name, a->type, a->hash)) != NULL)
		dns_cache_unlink(d, old);
	while (d->stats.cached >= d->cache_max)
		dns_cache_unlink(d, d->oldest);
	a->hnext = d->cache[a->hash & (DNS_CACHE_BUCKETS - 1)];
	d->cache[a->hash & (DNS_CACHE_BUCKETS - 1)] = a;
	a->older = d->newest;
	a->newer = NULL;
	if (d->newest)
		d->newest->newer = a;
	else
		d->oldest = a;
	d->newest = a;
	d->stats.cached++;
	dns_answer_ref(a);
}

/* ----------------------------------------------------- ready queries */

static void dns_ready_push(struct dns_query *q)
{
	struct dns *d = q->d;

	q->ready = true;
	q->seq = ++d->ready_seq;
	q->rnext = NULL;
	q->rprev = d->ready_last;
	if (d->ready_last)
		d->ready_last->rnext = q;
	else
		d->ready_first = q;
	d->ready_last = q;
	if (!uv_is_active((uv_handle_t *)&d->idle))
		uv_idle_start(&d->idle, dns_on_idle);
}

static void dns_ready_unlink(struct dns_query *q)
{
	struct dns *d = q->d;

	if (!q->ready)
		return;
	if (q->rprev)
		q->rprev->rnext = q->rnext;
	else
		d->ready_first = q->rnext;
	if (q->rnext)
		q->rnext->rprev = q->rprev;
	else
		d->ready_last = q->rprev;
	q->rprev = q->rnext = NULL;
	q->ready = false;
}

static void dns_sub_answered(struct dns_sub *s, struct dns_answer *a)
{
	s->answer = dns_answer_ref(a);
	s->upq = NULL;
	if (--s->q->pending == 0)
		dns_ready_push(s->q);
}

/* ---------------------------------------------------------- lookups */

static void dns_upq_unlink(struct dns_upq *u)
{
	struct dns *d = u->d;
	struct dns_upq **pp = &d->inflight[u->hash & (DNS_INFLIGHT_BUCKETS - 1)];

	while (*pp != u)
		pp = &(*pp)->hnext;
	*pp = u->hnext;
	if (u->prev)
		u->prev->next = u->next;
	else
		d->up_first = u->next;
	if (u->next)
		u->next->prev = u->prev;
	else
		d->up_last = u->prev;
	d->stats.inflight--;
}

/* The lookup is over: a goes to every waiter, u is freed. */
static void dns_upq_finish(struct dns_upq *u, struct dns_answer *a, uint32_t ttl)
{
	struct dns *d = u->d;
	struct dns_sub *s;

	dns_upq_unlink(u);
	a->expires = uv_now(d->loop) + (uint64_t)ttl * 1000;
	dns_cache_put(d, a, ttl);
	while ((s = u->waiters) != NULL) {
		u->waiters = s->wnext;
		s->wprev = s->wnext = NULL;
		dns_sub_answered(s, a);
	}
	free(u);
}

/* libunbound's callback: inside ub_process(), on the loop thread. */
static void dns_on_answer(void *arg, int err, struct ub_result *r)
{
	struct dns_upq *u = arg;
	struct dns_answer *a = dns_answer_from_ub(u->name, u->type, err, r);
	uint32_t ttl = r ? dns_answer_ttl(a, r) : 0;

	ub_resolve_free(r);
	dns_upq_finish(u, a, ttl);
	dns_answer_unref(a);
}

static void dns_timer_arm(struct dns *d)
{
	uint64_t now = uv_now(d->loop);

	if (d->up_first == NULL || d->closing)
		return;
	uv_timer_start(&d->timer, dns_on_timer, d->up_first->deadline > now ?
	    d->up_first->deadline - now : 0, 0);
}

static void dns_on_timer(uv_timer_t *t)
{
	struct dns *d = t->data;
	uint64_t now = uv_now(d->loop);
	struct dns_upq *u;

	/* Deadlines grow with start order, so expired lookups come first. */
	while ((u = d->up_first) != NULL && u->deadline <= now) {
		struct dns_answer *a = dns_answer_new(u->name, u->type);

		/* In thread mode a cancelled query's answer is dropped unread. */
		(void)ub_cancel(d->ub, u->async_id);
		dns_answer_fail(a, "%s lookup of %s failed: timed out after %llu ms",
		    dns_type_name(u->type), u->name,
		    (unsigned long long)(now - u->started));
		d->stats.timeouts++;
		dns_upq_finish(u, a, 0);
		dns_answer_unref(a);
	}
	dns_timer_arm(d);
}

/* Answers s from the cache, or joins or starts a lookup for it. */
static void dns_sub_start(struct dns *d, struct dns_sub *s, const char *key)
{
	uint32_t hash = dns_hash(d, key, s->type);
	struct dns_answer *a;
	struct dns_upq *u;
	int rc;

	if ((a = dns_cache_get(d, key, s->type, hash)) != NULL) {
		d->stats.hits++;
		dns_sub_answered(s, a);
		return;
	}
	for (u = d->inflight[hash & (DNS_INFLIGHT_BUCKETS - 1)]; u; u = u->hnext)
		if (u->hash == hash && u->type == s->type && strcmp(u->name, key) == 0)
			break;
	if (u != NULL) {
		d->stats.coalesced++;
	} else {
		u = xcalloc(1, sizeof(*u));
		u->d = d;
		u->type = s->type;
		u->hash = hash;
		str_copy(u->name, key, sizeof(u->name));
		d->started = true;
		rc = ub_resolve_async(d->ub, key, s->type, DNS_CLASS_IN, u,
		    dns_on_answer, &u->async_id);
		if (rc != 0) {
			a = dns_answer_new(key, s->type);
			dns_answer_fail(a, "%s lookup of %s failed: resolver error: %s",
			    dns_type_name(s->type), key, ub_strerror(rc));
			free(u);
			dns_sub_answered(s, a);
			dns_answer_unref(a);
			return;
		}
		d->stats.upstream++;
		d->stats.inflight++;
		u->started = uv_now(d->loop);
		u->deadline = u->started + d->timeout_ms;
		u->hnext = d->inflight[hash & (DNS_INFLIGHT_BUCKETS - 1)];
		d->inflight[hash & (DNS_INFLIGHT_BUCKETS - 1)] = u;
		u->prev = d->up_last;
		if (d->up_last)
			d->up_last->next = u;
		else
			d->up_first = u;
		d->up_last = u;
		if (!uv_is_active((uv_handle_t *)&d->timer))
			dns_timer_arm(d);
	}
	s->upq = u;
	s->wnext = NULL;
	s->wprev = u->wlast;
	if (u->wlast)
		u->wlast->wnext = s;
	else
		u->waiters = s;
	u->wlast = s;
}

/* ---------------------------------------------------------- queries */

/* Unhooks q from everything and frees it; its callback never runs. */
static void dns_query_free(struct dns_query *q)
{
	struct dns *d = q->d;
	unsigned i;

	for (i = 0; i < q->nsub; i++) {
		struct dns_sub *s = &q->sub[i];

		if (s->upq != NULL) {
			if (s->wprev)
				s->wprev->wnext = s->wnext;
			else
				s->upq->waiters = s->wnext;
			if (s->wnext)
				s->wnext->wprev = s->wprev;
			else
				s->upq->wlast = s->wprev;
			s->upq = NULL;
		}
		dns_answer_unref(s->answer);
		s->answer = NULL;
	}
	dns_ready_unlink(q);
	if (q->prev || d->queries == q) {
		if (q->prev)
			q->prev->next = q->next;
		else
			d->queries = q->next;
		if (q->next)
			q->next->prev = q->prev;
	}
	free(q);
}

void dns_cancel(struct dns_query *q)
{
	/* From its own callback it is finished anyway: freed on return. */
	if (q == NULL || q->in_callback)
		return;
	dns_query_free(q);
}

static int dns_query_start(struct dns *d, enum dns_kind kind, const char *name,
    dns_cb *cb, void *arg, struct dns_query **out)
{
	char key[DNS_NAME_MAX + 1];
	struct dns_query *q;
	unsigned i;

	if (out)
		*out = NULL;
	if (d == NULL || d->closing || cb == NULL || !dns_name_is_valid(name))
		return -EINVAL;
	dns__key(name, key);
	q = xcalloc(1, sizeof(*q));
	q->d = d;
	q->kind = kind;
	q->cb = cb;
	q->arg = arg;
	switch (kind) {
	case DNS_K_MX: q->sub[0].type = DNS_T_MX; q->nsub = 1; break;
	case DNS_K_TXT: q->sub[0].type = DNS_T_TXT; q->nsub = 1; break;
	case DNS_K_TLSA: q->sub[0].type = DNS_T_TLSA; q->nsub = 1; break;
	case DNS_K_PTR: q->sub[0].type = DNS_T_PTR; q->nsub = 1; break;
	case DNS_K_ADDR:
		q->sub[0].type = DNS_T_A;
		q->sub[1].type = DNS_T_AAAA;
		q->nsub = 2;
		break;
	}
	q->pending = q->nsub;
	q->next = d->queries;
	if (d->queries)
		d->queries->prev = q;
	d->queries = q;
	if (out)
		*out = q;
	/* Cache hits land on the ready list: never a callback from here. */
	for (i = 0; i < q->nsub; i++) {
		q->sub[i].q = q;
		dns_sub_start(d, &q->sub[i], key);
	}
	return 0;
}

int dns_query_mx(struct dns *d, const char *domain, dns_cb *cb, void *arg,
    struct dns_query **out)
{
	return dns_query_start(d, DNS_K_MX, domain, cb, arg, out);
}

int dns_query_addr(struct dns *d, const char *host, dns_cb *cb, void *arg,
    struct dns_query **out)
{
	return dns_query_start(d, DNS_K_ADDR, host, cb, arg, out);
}

int dns_query_txt(struct dns *d, const char *name, dns_cb *cb, void *arg,
    struct dns_query **out)
{
	return dns_query_start(d, DNS_K_TXT, name, cb, arg, out);
}

int dns_query_tlsa(struct dns *d, const char *name, dns_cb *cb, void *arg,
    struct dns_query **out)
{
	return dns_query_start(d, DNS_K_TLSA, name, cb, arg, out);
}

/*
 * The reverse-lookup name of addr into name (at least 80 bytes): RFC 1035
 * 3.5 for IPv4 (and v4-mapped IPv6), RFC 3596 2.5 nibbles for IPv6.
 */
static int dns_reverse_name(const struct sockaddr *addr, char *name, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const uint8_t *b;
	size_t pos = 0;
	int i;

	if (addr->sa_family == AF_INET) {
		b = (const uint8_t *)&((const struct sockaddr_in *)addr)->sin_addr;
	} else if (addr->sa_family == AF_INET6) {
		b = ((const struct sockaddr_in6 *)addr)->sin6_addr.s6_addr;
		if (!IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)b)) {
			/* 32 "x." pairs and "ip6.arpa": 73 bytes with the NUL. */
			for (i = 15; i >= 0; i--) {
				name[pos++] = hex[b[i] & 0xf];
				name[pos++] = '.';
				name[pos++] = hex[b[i] >> 4];
				name[pos++] = '.';
			}
			str_copy(name + pos, "ip6.arpa", len - pos);
			return 0;
		}
		b += 12;
	} else {
		return -EINVAL;
	}
	snprintf(name, len, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
	return 0;
}

int dns_query_ptr(struct dns *d, const struct sockaddr *addr, dns_cb *cb,
    void *arg, struct dns_query **out)
{
	char name[80];

	if (out)
		*out = NULL;
	if (addr == NULL || dns_reverse_name(addr, name, sizeof(name)) < 0)
		return -EINVAL;
	return dns_query_start(d, DNS_K_PTR, name, cb, arg, out);
}

/* ---------------------------------------------------------- results */

static uint32_t dns_remaining(const struct dns *d, const struct dns_answer *a)
{
	uint64_t now = uv_now(d->loop);

	if (a->status == DNS_TEMPFAIL || a->expires <= now)
		return 0;
	return (uint32_t)((a->expires - now + 999) / 1000);
}

static void dns_result_from(struct dns *d, struct dns_result *res,
    const struct dns_answer *a)
{
	res->status = a->status;
	res->secure = a->secure;
	res->bogus = a->bogus;
	res->why_bogus = a->why_bogus ? a->why_bogus : "";
	res->error = a->error ? a->error : "";
	res->ttl = dns_remaining(d, a);
	res->n = a->status == DNS_OK ? a->n : 0;
}

/*
 * Joins the A and AAAA answers (see dns.h): any addresses win; otherwise
 * a temporary failure of either wins, since the other family might have
 * had addresses; NXDOMAIN needs both.
 */
static struct sockaddr_storage *dns_result_addr(struct dns *d,
    struct dns_result *res, const struct dns_answer *a4,
    const struct dns_answer *a6)
{
	const struct dns_answer *both[2] = { a4, a6 };
	struct sockaddr_storage *v = NULL;
	size_t k = 0;
	int i;

	if (a4->status == DNS_OK || a6->status == DNS_OK) {
		memset(res, 0, sizeof(*res));
		res->status = DNS_OK;
		res->secure = true;
		res->ttl = UINT32_MAX;
		res->why_bogus = res->error = "";
		v = xcalloc(a4->n + a6->n, sizeof(*v));
		for (i = 0; i < 2; i++) {
			uint32_t ttl = dns_remaining(d, both[i]);

			if (both[i]->status == DNS_TEMPFAIL)
				continue;
			res->secure = res->secure && both[i]->secure;
			if (ttl < res->ttl)
				res->ttl = ttl;
			if (both[i]->status == DNS_OK) {
				memcpy(v + k, both[i]->recs, both[i]->n * sizeof(*v));
				k += both[i]->n;
			}
		}
		res->addr = v;
		res->n = k;
		return v;
	}
	if (a4->status == DNS_TEMPFAIL || a6->status == DNS_TEMPFAIL) {
		const struct dns_answer *f = a4->status == DNS_TEMPFAIL ? a4 : a6;

		/* Both failed: report the DNSSEC failure if there is one. */
		if (f == a4 && a6->status == DNS_TEMPFAIL && !a4->bogus && a6->bogus)
			f = a6;
		dns_result_from(d, res, f);
		return NULL;
	}
	dns_result_from(d, res, a4);
	res->secure = a4->secure && a6->secure;
	if (dns_remaining(d, a6) < res->ttl)
		res->ttl = dns_remaining(d, a6);
	res->status = a4->status == DNS_NXDOMAIN && a6->status == DNS_NXDOMAIN ?
	    DNS_NXDOMAIN : DNS_NODATA;
	return NULL;
}

/*
 * A copy of the sorted MX list with each run of equal preferences in a
 * new random order (RFC 5321 5.1: spread the load over equal hosts).
 */
static struct dns_mx *dns_mx_shuffled(struct dns *d, const struct dns_mx *sorted,
    size_t n)
{
	struct dns_mx *mx = xcalloc(n, sizeof(*mx));
	size_t i, j, start;

	memcpy(mx, sorted, n * sizeof(*mx));
	for (start = 0; start < n; start = j) {
		for (j = start + 1; j < n && mx[j].pref == mx[start].pref; j++)
			;
		/* Fisher-Yates over [start, j). */
		for (i = j - 1; i > start; i--) {
			size_t r = start + (size_t)(dns_random(d) % (i - start + 1));
			struct dns_mx t = mx[i];

			mx[i] = mx[r];
			mx[r] = t;
		}
	}
	return mx;
}

/* Runs q's callback, then frees q. */
static void dns_deliver(struct dns_query *q)
{
	struct dns *d = q->d;
	const struct dns_answer *a = q->sub[0].answer;
	struct dns_result res;
	void *tmp = NULL;

	/* Off the live list first: a dns_close from the callback skips q. */
	if (q->prev)
		q->prev->next = q->next;
	else
		d->queries = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;

	memset(&res, 0, sizeof(res));
	if (q->kind == DNS_K_ADDR) {
		tmp = dns_result_addr(d, &res, a, q->sub[1].answer);
	} else {
		dns_result_from(d, &res, a);
		if (res.status == DNS_OK) {
			switch (q->kind) {
			case DNS_K_MX:
				res.mx = tmp = dns_mx_shuffled(d, a->recs, a->n);
				res.null_mx = a->null_mx;
				break;
			case DNS_K_TXT: res.txt = a->recs; break;
			case DNS_K_TLSA: res.tlsa = a->recs; break;
			case DNS_K_PTR: res.ptr = a->recs; break;
			case DNS_K_ADDR: break;
			}
		}
	}
	q->in_callback = true;
	q->cb(q->arg, &res);
	free(tmp);
	dns_query_free(q);
}

static void dns_on_idle(uv_idle_t *h)
{
	struct dns *d = h->data;
	uint64_t last = d->ready_seq;
	struct dns_query *q;

	/*
	 * Only the queries ready before this pass: a callback that starts a
	 * query answered from the cache gets its answer on the next pass, so
	 * a callback that always asks again cannot starve the loop.
	 */
	while (!d->closing && (q = d->ready_first) != NULL && q->seq <= last) {
		dns_ready_unlink(q);
		dns_deliver(q);
	}
	if (!d->closing && d->ready_first == NULL)
		uv_idle_stop(h);
}

static void dns_on_poll(uv_poll_t *h, int status, int events)
{
	struct dns *d = h->data;
	int rc;

	(void)status;
	(void)events;
	if (d->closing)
		return;
	rc = ub_process(d->ub);
	if (rc != 0) {
		/*
		 * The pipe to libunbound's thread is gone: stop polling a dead
		 * fd (it would stay readable forever). Lookups in flight and
		 * new ones time out into DNS_TEMPFAIL.
		 */
		log_err(NULL, "dns: libunbound failed: %s; lookups will time out",
		    ub_strerror(rc));
		uv_poll_stop(h);
	}
}

/* ------------------------------------------------------- life cycle */

struct dns *dns_new(uv_loop_t *loop, const struct cfg_hostport *server,
    char *err, size_t errlen)
{
	struct dns *d = xcalloc(1, sizeof(*d));
	char fwd[96];
	int rc;

	d->loop = loop;
	d->timeout_ms = DNS_TIMEOUT_MS_DEFAULT;
	d->cache_max = DNS_CACHE_MAX_DEFAULT;
	d->rng = uv_hrtime() ^ (uint64_t)(uintptr_t)d ^ 0x9e3779b97f4a7c15ull;
	if (d->rng == 0)
		d->rng = 1;
	d->hash_seed = (uint32_t)dns_random(d);
	if ((d->ub = ub_ctx_create()) == NULL) {
		snprintf(err, errlen, "dns: cannot create the libunbound context");
		goto fail;
	}
	/* 1 = a thread; the default would fork a resolver process. */
	if ((rc = ub_ctx_async(d->ub, 1)) != 0) {
		snprintf(err, errlen, "dns: ub_ctx_async: %s", ub_strerror(rc));
		goto fail;
	}
	if (server != NULL && server->set) {
		snprintf(fwd, sizeof(fwd), "%s@%u", server->host,
		    server->port ? server->port : 53);
		if ((rc = ub_ctx_set_fwd(d->ub, fwd)) != 0) {
			snprintf(err, errlen, "dns: dns_server %s: %s", fwd,
			    ub_strerror(rc));
			goto fail;
		}
	} else if ((rc = ub_ctx_resolvconf(d->ub, NULL)) != 0) {
		snprintf(err, errlen, "dns: /etc/resolv.conf: %s", ub_strerror(rc));
		goto fail;
	}
	/*
	 * libunbound answers its default local zones itself. Keep the RFC
	 * 6761 ones (test., invalid., localhost.), but let reverse lookups of
	 * private ranges reach the server: an agency's internal clients have
	 * their PTR records there. Unsigned in a signed tree, they are
	 * insecure rather than bogus.
	 */
	if ((rc = ub_ctx_set_option(d->ub, "unblock-lan-zones:", "yes")) != 0 ||
	    (rc = ub_ctx_set_option(d->ub, "insecure-lan-zones:", "yes")) != 0) {
		snprintf(err, errlen, "dns: libunbound options: %s", ub_strerror(rc));
		goto fail;
	}
	/* /etc/hosts is deliberately not loaded (ub_ctx_hosts): mail routing
	 * follows the DNS only. */
	if ((rc = uv_poll_init(loop, &d->poll, ub_fd(d->ub))) != 0) {
		snprintf(err, errlen, "dns: cannot poll the libunbound pipe: %s",
		    uv_strerror(rc));
		goto fail;
	}
	uv_timer_init(loop, &d->timer);
	uv_idle_init(loop, &d->idle);
	d->poll.data = d->timer.data = d->idle.data = d;
	d->open_handles = 3;
	/* Cannot fail once uv_poll_init has accepted the fd. */
	uv_poll_start(&d->poll, UV_READABLE, dns_on_poll);
	return d;
fail:
	if (d->ub)
		ub_ctx_delete(d->ub);
	free(d);
	return NULL;
}

/*
 * libunbound only parses anchors when the first lookup starts, and a bad
 * one would then fail every lookup; catch the obvious mistakes here: an
 * owner name, then a DS or DNSKEY type followed by at least three fields.
 */
static bool dns_anchor_looks_valid(const char *anchor)
{
	char copy[4096], *tok, *save = NULL;
	int after = -1, n = 0;

	if (str_copy(copy, anchor, sizeof(copy)) >= sizeof(copy))
		return false;
	for (tok = strtok_r(copy, " \t", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t", &save), n++) {
		if (n == 0 && strcmp(tok, ".") != 0 && !dns_name_is_valid(tok))
			return false;
		if (n > 0 && after < 0 && (str_ieq(tok, "DS") || str_ieq(tok, "DNSKEY")))
			after = 0;
		else if (after >= 0)
			after++;
	}
	return after >= 3;
}

int dns_add_trust_anchor(struct dns *d, const char *anchor)
{
	int rc;

	if (d->started)
		return -EBUSY;
	if (anchor == NULL || !dns_anchor_looks_valid(anchor))
		return -EINVAL;
	rc = ub_ctx_add_ta(d->ub, anchor);
	if (rc == UB_AFTERFINAL)
		return -EBUSY;
	return rc == 0 ? 0 : -EINVAL;
}

void dns_set_timeout(struct dns *d, uint64_t ms)
{
	d->timeout_ms = ms ? ms : DNS_TIMEOUT_MS_DEFAULT;
}

void dns_set_cache_max(struct dns *d, size_t max)
{
	d->cache_max = max;
	while (d->stats.cached > max)
		dns_cache_unlink(d, d->oldest);
}

void dns_get_stats(const struct dns *d, struct dns_stats *out)
{
	*out = d->stats;
}

static void dns_on_close(uv_handle_t *h)
{
	struct dns *d = h->data;
	void (*cb)(void *) = d->close_cb;
	void *arg = d->close_arg;

	if (--d->open_handles > 0)
		return;
	/* Joins libunbound's thread; the pipe is no longer polled. */
	ub_ctx_delete(d->ub);
	free(d);
	if (cb)
		cb(arg);
}

void dns_close(struct dns *d, void (*cb)(void *arg), void *arg)
{
	struct dns_upq *u;

	if (d->closing)
		return;
	d->closing = true;
	d->close_cb = cb;
	d->close_arg = arg;
	while (d->queries != NULL)
		dns_query_free(d->queries);
	while ((u = d->up_first) != NULL) {
		(void)ub_cancel(d->ub, u->async_id);
		dns_upq_unlink(u);
		free(u);
	}
	while (d->oldest != NULL)
		dns_cache_unlink(d, d->oldest);
	uv_close((uv_handle_t *)&d->poll, dns_on_close);
	uv_close((uv_handle_t *)&d->timer, dns_on_close);
	uv_close((uv_handle_t *)&d->idle, dns_on_close);
}
