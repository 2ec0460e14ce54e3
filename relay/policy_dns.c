/*
 * policy_dns: the daemon's resolver (relay/dns.c) as the policy engine's
 * resolver operations (struct policy_resolver in policy/policy.h), so the
 * checks' lookups (SPF records, DKIM keys, DMARC policies) share the one
 * resolver: its server, cache, coalescing, timeout and DNSSEC handling.
 *
 * The engine asks by record kind and gets text back: TXT as given, A and
 * AAAA as numeric addresses (one dns_query_addr, split by family), MX and
 * PTR as host names. A PTR question comes as a reverse name and is turned
 * back into the address dns_query_ptr takes.
 *
 * Entry points: policy_dns_install, policy_dns_close.
 * OWNERSHIP: the adapter owns each lookup's small request until its
 * callback has run; requests still pending when the daemon stops (the
 * resolver would drop them without callbacks) are cancelled by
 * policy_dns_close, which answers each with a temporary failure.
 * THREADS: loop thread only.
 * ERRORS: what dns.c says, mapped one to one; a name that is not a
 * reverse name for PTR, or that dns.c refuses, is -EINVAL.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/policy.h"
#include "relay/dns.h"
#include "relay/policy_dns.h"

struct policy_dns {
	struct policy *p;
	struct dns *dns;
	struct policy_dns_req *pending;   /* lookups in flight, a list */
};

struct policy_dns_req {
	struct policy_dns_req *next, *prev;
	struct policy_dns *pd;
	struct dns_query *query;
	enum policy_dns_kind kind;
	policy_dns_cb *cb;
	void *arg;
};

static void policy_dns_unlink(struct policy_dns_req *q)
{
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		q->pd->pending = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
}

static enum policy_dns_status policy_dns_status_of(enum dns_status s)
{
	switch (s) {
	case DNS_OK: return POLICY_DNS_OK;
	case DNS_NODATA: return POLICY_DNS_NODATA;
	case DNS_NXDOMAIN: return POLICY_DNS_NXDOMAIN;
	case DNS_TEMPFAIL: break;
	}
	return POLICY_DNS_TEMPFAIL;
}

/* The records of res the engine asked for, as text, into rr/len. */
static size_t policy_dns_texts(const struct policy_dns_req *q, const struct dns_result *res,
    char **rr, size_t *len)
{
	size_t n = 0;

	for (size_t i = 0; i < res->n; i++) {
		char text[INET6_ADDRSTRLEN];

		switch (q->kind) {
		case POLICY_DNS_TXT:
			rr[n] = xmalloc(res->txt[i].len + 1);
			memcpy(rr[n], res->txt[i].data, res->txt[i].len);
			rr[n][res->txt[i].len] = '\0';
			len[n++] = res->txt[i].len;
			break;
		case POLICY_DNS_A:
		case POLICY_DNS_AAAA: {
			const struct sockaddr_storage *ss = &res->addr[i];
			int want = q->kind == POLICY_DNS_A ? AF_INET : AF_INET6;
			const void *a = ss->ss_family == AF_INET ?
			    (const void *)&((const struct sockaddr_in *)ss)->sin_addr :
			    (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;

			if (ss->ss_family != want || inet_ntop(want, a, text, sizeof text) == NULL)
				break;
			rr[n] = xstrdup(text);
			len[n] = strlen(text);
			n++;
			break;
		}
		case POLICY_DNS_MX:
			rr[n] = xstrdup(res->mx[i].host);
			len[n] = strlen(rr[n]);
			n++;
			break;
		case POLICY_DNS_PTR:
			rr[n] = xstrdup(res->ptr[i].host);
			len[n] = strlen(rr[n]);
			n++;
			break;
		}
	}
	return n;
}

static void policy_dns_done(void *arg, const struct dns_result *res)
{
	struct policy_dns_req *q = arg;
	struct policy_dns_answer ans = { .status = policy_dns_status_of(res->status),
		.error = res->error ? res->error : "" };

	/* A failure says nothing about tomorrow: never kept. */
	ans.ttl = ans.status == POLICY_DNS_TEMPFAIL ? 0 : res->ttl;
	char **rr = xcalloc(res->n ? res->n : 1, sizeof *rr);
	size_t *len = xcalloc(res->n ? res->n : 1, sizeof *len);

	if (ans.status == POLICY_DNS_OK) {
		ans.n = policy_dns_texts(q, res, rr, len);
		/* An address family, or a null MX, without a record: no data. */
		if (ans.n == 0)
			ans.status = POLICY_DNS_NODATA;
	}
	ans.rr = (const char *const *)rr;
	ans.len = len;
	policy_dns_unlink(q);
	q->cb(q->arg, &ans);
	for (size_t i = 0; i < ans.n; i++)
		free(rr[i]);
	free(rr);
	free(len);
	free(q);
}

/* One label of a reverse name as a number of at most max; -1 if it is not. */
static int policy_dns_label_num(const char **p, int base, int max)
{
	char *end;
	long v = strtol(*p, &end, base);

	if (end == *p || *end != '.' || v < 0 || v > max || end - *p > 3)
		return -1;
	*p = end + 1;
	return (int)v;
}

/* "4.3.2.1.in-addr.arpa" or the 32 nibbles of ip6.arpa, to an address. */
int policy_dns_reverse_addr(const char *name, struct sockaddr_storage *ss)
{
	size_t len = strlen(name);

	memset(ss, 0, sizeof *ss);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len > 13 && strncasecmp(name + len - 13, ".in-addr.arpa", 13) == 0) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		const char *p = name;
		uint8_t b[4];

		for (int i = 3; i >= 0; i--) {
			int v = policy_dns_label_num(&p, 10, 255);

			if (v < 0)
				return -EINVAL;
			b[i] = (uint8_t)v;
		}
		if ((size_t)(p - name) != len - 12)
			return -EINVAL;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, b, 4);
		return 0;
	}
	if (len > 9 && strncasecmp(name + len - 9, ".ip6.arpa", 9) == 0) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		const char *p = name;
		uint8_t b[16] = { 0 };

		for (int i = 31; i >= 0; i--) {
			int v;

			if (p[0] == '\0' || p[1] != '.')
				return -EINVAL;
			v = policy_dns_label_num(&p, 16, 15);
			if (v < 0)
				return -EINVAL;
			b[i / 2] |= (uint8_t)(i % 2 ? v : v << 4);
		}
		if ((size_t)(p - name) != len - 8)
			return -EINVAL;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, b, 16);
		return 0;
	}
	return -EINVAL;
}

static int policy_dns_lookup(void *ctx, enum policy_dns_kind kind, const char *name,
    policy_dns_cb *cb, void *arg)
{
	struct policy_dns *pd = ctx;
	struct dns *dns = pd->dns;
	struct policy_dns_req *q = xcalloc(1, sizeof *q);
	struct sockaddr_storage ss;
	int rc = -EINVAL;

	q->kind = kind;
	q->cb = cb;
	q->arg = arg;
	switch (kind) {
	case POLICY_DNS_TXT:
		rc = dns_query_txt(dns, name, policy_dns_done, q, &q->query);
		break;
	case POLICY_DNS_A:
	case POLICY_DNS_AAAA:
		rc = dns_query_addr(dns, name, policy_dns_done, q, &q->query);
		break;
	case POLICY_DNS_MX:
		rc = dns_query_mx(dns, name, policy_dns_done, q, &q->query);
		break;
	case POLICY_DNS_PTR:
		rc = policy_dns_reverse_addr(name, &ss);
		if (rc == 0)
			rc = dns_query_ptr(dns, (const struct sockaddr *)&ss, policy_dns_done, q,
			    &q->query);
		break;
	}
	if (rc < 0) {
		free(q);
		return rc;
	}
	q->pd = pd;
	q->next = pd->pending;
	if (q->next != NULL)
		q->next->prev = q;
	pd->pending = q;
	return 0;
}

struct policy_dns *policy_dns_install(struct policy *p, struct dns *dns)
{
	struct policy_dns *pd = xcalloc(1, sizeof *pd);
	struct policy_resolver r = { .ctx = pd, .lookup = policy_dns_lookup };

	pd->p = p;
	pd->dns = dns;
	policy_set_resolver(p, &r);
	return pd;
}

void policy_dns_close(struct policy_dns *pd)
{
	struct policy_resolver none = { NULL, NULL };

	if (pd == NULL)
		return;
	/* From now on a check's lookup fails at once (-ENOSYS). */
	policy_set_resolver(pd->p, &none);
	while (pd->pending != NULL) {
		struct policy_dns_req *q = pd->pending;
		struct policy_dns_answer ans = { .status = POLICY_DNS_TEMPFAIL, .n = 0,
			.rr = NULL, .len = NULL, .error = "the resolver is closing" };

		pd->pending = q->next;
		if (pd->pending != NULL)
			pd->pending->prev = NULL;
		dns_cancel(q->query);
		/*
		 * The caller hears back (a temporary failure), so what it holds
		 * for the lookup (a check's message state) is released.
		 */
		q->cb(q->arg, &ans);
		free(q);
	}
	free(pd);
}
