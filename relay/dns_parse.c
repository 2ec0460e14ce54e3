/*
 * dns_parse: the DNS wire format for the resolver (relay/dns.c): host
 * name syntax, names inside rdata (dn_expand, checked and lowercased),
 * the negative-answer TTL from a reply's SOA (RFC 2308 5), and the rdata
 * of A, AAAA, MX, PTR, TXT and TLSA records into the public record
 * types of relay/dns.h. Pure functions: no libunbound, no loop, no state.
 *
 * Entry points: dns_name_is_valid (public); inside relay/ dns__key,
 * dns__ttl_clamp, dns__negative_ttl, dns__parse_records (dns_int.h).
 *
 * Every rdata length and every count in a packet is checked against the
 * end of its buffer before a byte is read; a record that does not decode
 * fails the whole answer (-EBADMSG), which the resolver reports as a
 * temporary failure.
 *
 * OWNERSHIP: inputs are borrowed; dns__parse_records leaves fresh arrays
 * in struct dns_records for the caller to free, and nothing on failure.
 * THREADS: any thread (pure).
 * ERRORS: -EBADMSG for malformed data; the TTL functions fall back to
 * their defaults instead of failing.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <resolv.h>

#include "common/util.h"
#include "common/xmalloc.h"
#include "relay/dns.h"
#include "relay/dns_int.h"

#define DNS_TTL_CAP 86400u      /* one day, whatever the zone says */
#define DNS_NEG_TTL_DEFAULT 300 /* negative answer without an SOA */
/* dn_expand output: RFC 1035 names in text form, with \DDD escapes. */
#define DNS_EXPAND_MAX 1025

/* ------------------------------------------------------------ names */

bool dns_name_is_valid(const char *name)
{
	size_t len, label = 0, i;

	if (name == NULL)
		return false;
	len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return false;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0)
				return false; /* empty label */
			label = 0;
			continue;
		}
		/*
		 * Host names are letters, digits and hyphens (RFC 1123 2.1);
		 * '_' appears in service names (_25._tcp, _domainkey). Anything
		 * else, a backslash above all, would reach libunbound's
		 * presentation-format parser as an escape.
		 */
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0; /* "a.b.." ends with an empty label */
}

/* The cache key: lowercase, final dot removed. name must be valid. */
void dns__key(const char *name, char key[DNS_NAME_MAX + 1])
{
	size_t len = strlen(name);

	if (len > 0 && name[len - 1] == '.')
		len--;
	str_copyn(key, name, len, DNS_NAME_MAX + 1);
	str_lower(key);
}

/* ------------------------------------------------------- wire format */

static uint16_t dns_get16(const unsigned char *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t dns_get32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* RFC 2181 8: a TTL with the top bit set is read as zero. */
uint32_t dns__ttl_clamp(uint32_t ttl)
{
	if (ttl > 0x7fffffffu)
		return 0;
	return ttl > DNS_TTL_CAP ? DNS_TTL_CAP : ttl;
}

/*
 * Negative-answer TTL (RFC 2308 5): min(SOA TTL, SOA MINIMUM) of the SOA
 * in the authority section, or DNS_NEG_TTL_DEFAULT when the reply has
 * none or cannot be walked. Every count and length is checked against
 * the packet's end.
 */
uint32_t dns__negative_ttl(const unsigned char *pkt, size_t len)
{
	const unsigned char *p, *end;
	unsigned qd, an, ns, i;
	int n;

	if (pkt == NULL || len < 12)
		return DNS_NEG_TTL_DEFAULT;
	end = pkt + len;
	qd = dns_get16(pkt + 4);
	an = dns_get16(pkt + 6);
	ns = dns_get16(pkt + 8);
	p = pkt + 12;
	for (i = 0; i < qd; i++) {
		if ((n = dn_skipname(p, end)) < 0 || end - (p + n) < 4)
			return DNS_NEG_TTL_DEFAULT;
		p += n + 4;
	}
	for (i = 0; i < an + ns; i++) {
		uint16_t type, rdlen;
		uint32_t ttl;

		if ((n = dn_skipname(p, end)) < 0 || end - (p + n) < 10)
			return DNS_NEG_TTL_DEFAULT;
		p += n;
		type = dns_get16(p);
		ttl = dns_get32(p + 4);
		rdlen = dns_get16(p + 8);
		p += 10;
		if (end - p < rdlen)
			return DNS_NEG_TTL_DEFAULT;
		if (i >= an && type == DNS_T_SOA) {
			const unsigned char *rd = p, *rdend = p + rdlen;
			uint32_t minimum;

			/* MNAME, RNAME, then five 32-bit fields. */
			if ((n = dn_skipname(rd, rdend)) < 0)
				return DNS_NEG_TTL_DEFAULT;
			rd += n;
			if ((n = dn_skipname(rd, rdend)) < 0 || rdend - (rd + n) < 20)
				return DNS_NEG_TTL_DEFAULT;
			rd += n;
			minimum = dns_get32(rd + 16);
			return dns__ttl_clamp(ttl < minimum ? ttl : minimum);
		}
		p += rdlen;
	}
	return DNS_NEG_TTL_DEFAULT;
}

/*
 * Decodes a domain name that fills rdata[off..len) exactly into out,
 * lowercase, without the final dot; "" is the root. -EBADMSG unless the
 * name is well formed and a valid host name (or the root).
 */
static int dns_rdata_name(const unsigned char *rdata, size_t len, size_t off,
    char out[DNS_NAME_MAX + 1])
{
	char text[DNS_EXPAND_MAX];
	int n;

	if (off >= len)
		return -EBADMSG;
	n = dn_expand(rdata, rdata + len, rdata + off, text, sizeof(text));
	if (n < 0 || (size_t)n != len - off)
		return -EBADMSG;
	if (text[0] == '\0' || strcmp(text, ".") == 0) {
		out[0] = '\0';
		return 0;
	}
	if (!dns_name_is_valid(text))
		return -EBADMSG;
	dns__key(text, out);
	return 0;
}

static int dns_mx_cmp(const void *a, const void *b)
{
	const struct dns_mx *x = a, *y = b;

	return (int)x->pref - (int)y->pref;
}

/* ---------------------------------------------------------- records */

/* A (4 bytes) or AAAA (16 bytes) rdata as addresses with port 0. */
static int dns_parse_addr(uint16_t type, char *const *data, const int *len, size_t n,
    struct dns_records *out)
{
	struct sockaddr_storage *v = xcalloc(n, sizeof(*v));

	out->recs = v;
	for (size_t i = 0; i < n; i++) {
		if (type == DNS_T_A) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&v[i];

			if (len[i] != 4)
				return -EBADMSG;
			sin->sin_family = AF_INET;
			memcpy(&sin->sin_addr, data[i], 4);
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&v[i];

			if (len[i] != 16)
				return -EBADMSG;
			sin6->sin6_family = AF_INET6;
			memcpy(&sin6->sin6_addr, data[i], 16);
		}
	}
	out->n = n;
	return 0;
}

/* MX rdata (RFC 1035 3.3.9), sorted by preference; the null MX set aside. */
static int dns_parse_mx(char *const *data, const int *len, size_t n, struct dns_records *out)
{
	struct dns_mx *v = xcalloc(n, sizeof(*v));
	size_t k = 0;

	out->recs = v;
	for (size_t i = 0; i < n; i++) {
		const unsigned char *rd = (const unsigned char *)data[i];

		if (len[i] < 3 || dns_rdata_name(rd, (size_t)len[i], 2, v[k].host) < 0)
			return -EBADMSG;
		v[k].pref = dns_get16(rd);
		/* RFC 7505 3: "MX 0 ." means no mail at all. */
		if (v[k].host[0] == '\0') {
			out->null_mx = true;
			continue;
		}
		k++;
	}
	qsort(v, k, sizeof(*v), dns_mx_cmp);
	out->n = k;
	return 0;
}

/* PTR rdata (RFC 1035 3.3.12): one host name each, never the root. */
static int dns_parse_ptr(char *const *data, const int *len, size_t n, struct dns_records *out)
{
	struct dns_ptr *v = xcalloc(n, sizeof(*v));

	out->recs = v;
	for (size_t i = 0; i < n; i++)
		if (dns_rdata_name((const unsigned char *)data[i], (size_t)len[i], 0,
		    v[i].host) < 0 || v[i].host[0] == '\0')
			return -EBADMSG;
	out->n = n;
	return 0;
}

/*
 * TXT rdata (RFC 1035 3.3.14): one or more <length><bytes> strings,
 * joined into one NUL-terminated text per record. All are checked before
 * the blob is sized, so the copy cannot run past it.
 */
static int dns_parse_txt(char *const *data, const int *len, size_t n, struct dns_records *out)
{
	struct dns_txt *v = xcalloc(n, sizeof(*v));
	size_t total = 0, pos;
	char *blob;

	out->recs = v;
	for (size_t i = 0; i < n; i++) {
		const unsigned char *rd = (const unsigned char *)data[i];
		size_t rlen = (size_t)len[i];

		for (pos = 0; pos < rlen; pos += 1 + (size_t)rd[pos])
			if (rd[pos] > rlen - pos - 1)
				return -EBADMSG;
		total += rlen + 1; /* joined text never exceeds rdata */
	}
	out->blob = blob = xmalloc(total);
	for (size_t i = 0; i < n; i++) {
		const unsigned char *rd = (const unsigned char *)data[i];
		size_t rlen = (size_t)len[i], used = 0;

		v[i].data = blob;
		for (pos = 0; pos < rlen; pos += 1 + (size_t)rd[pos]) {
			memcpy(blob + used, rd + pos + 1, rd[pos]);
			used += rd[pos];
		}
		blob[used] = '\0';
		v[i].len = used;
		blob += used + 1;
	}
	out->n = n;
	return 0;
}

/* TLSA rdata (RFC 6698 2.1): usage, selector, matching type, data. */
static int dns_parse_tlsa(char *const *data, const int *len, size_t n,
    struct dns_records *out)
{
	struct dns_tlsa *v = xcalloc(n, sizeof(*v));
	size_t total = 0;
	uint8_t *blob;

	out->recs = v;
	for (size_t i = 0; i < n; i++) {
		if (len[i] < 3)
			return -EBADMSG;
		total += (size_t)len[i] - 3;
	}
	out->blob = blob = xmalloc(total);
	for (size_t i = 0; i < n; i++) {
		const unsigned char *rd = (const unsigned char *)data[i];
		size_t dlen = (size_t)len[i] - 3;

		v[i].usage = rd[0];
		v[i].selector = rd[1];
		v[i].mtype = rd[2];
		memcpy(blob, rd + 3, dlen);
		v[i].data = blob;
		v[i].len = dlen;
		blob += dlen;
	}
	out->n = n;
	return 0;
}

int dns__parse_records(uint16_t type, char *const *data, const int *len, size_t n,
    struct dns_records *out)
{
	int rc = -EBADMSG;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		if (len[i] < 0)
			return -EBADMSG;
	switch (type) {
	case DNS_T_A:
	case DNS_T_AAAA:
		rc = dns_parse_addr(type, data, len, n, out);
		break;
	case DNS_T_MX:
		rc = dns_parse_mx(data, len, n, out);
		break;
	case DNS_T_PTR:
		rc = dns_parse_ptr(data, len, n, out);
		break;
	case DNS_T_TXT:
		rc = dns_parse_txt(data, len, n, out);
		break;
	case DNS_T_TLSA:
		rc = dns_parse_tlsa(data, len, n, out);
		break;
	}
	if (rc < 0) {
		free(out->recs);
		free(out->blob);
		memset(out, 0, sizeof(*out));
	}
	return rc;
}
