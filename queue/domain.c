/*
 * domain: the domain table (which agency owns a domain and where its mail
 * goes) and the syntax of a route (INTERFACE.md "ROUTE").
 *
 * Entry points: queue_route_check, queue_domain_put/get/delete/walk,
 * queue_domain_free.
 * OWNERSHIP: queue_domain_get returns a fresh copy freed with
 * queue_domain_free; records passed to a walk callback are borrowed for
 * the call. Every argument is borrowed.
 * Records are written as QUEUE_DOMAIN_ENC_VERSION 2 (with accept_all);
 * version 1 records from before tenancy still decode (schema.h).
 * THREADS: any thread that owns the txn; queue_route_check on any thread.
 * ERRORS: -EINVAL (bad name or route, or a write on a read txn), -ENOENT,
 * -EBADMSG (a record does not decode), -ENOSPC, -EIO.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/addr.h"
#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/schema.h"

#define QUEUE_HOST_MAX 253   /* RFC 1035 section 2.3.4, without the final dot */
#define QUEUE_LABEL_MAX 63
#define QUEUE_PATH_MAX 4095

/* ---------------------------------------------------------------- routes */

static int queue_route_fail(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int queue_route_fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/*
 * A host name: dot-separated labels of letters, digits and hyphens, no
 * label empty, longer than 63 or starting or ending with a hyphen
 * (RFC 1123 section 2.1). An all-numeric last label is refused, so a
 * mistyped address like 10.0.0.256 is not taken for a name (RFC 3696
 * section 2).
 */
static bool queue_route_is_hostname(const char *s, size_t len)
{
	size_t label = 0;
	bool numeric = true;

	if (len == 0 || len > QUEUE_HOST_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? s[i] : '.';

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			if (i == len && numeric)
				return false;
			label = 0;
			numeric = true;
			continue;
		}
		if (c >= '0' && c <= '9') {
			/* stays numeric */
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			numeric = false;
		} else if (c == '-') {
			if (label == 0)
				return false;
			numeric = false;
		} else {
			return false;
		}
		if (++label > QUEUE_LABEL_MAX)
			return false;
	}
	return true;
}

/* An absolute path of printable ASCII (no control bytes, no DEL). */
static int queue_route_check_path(const char *path, size_t max, const char *what,
    char *why, size_t whylen)
{
	size_t len = strlen(path);

	if (path[0] != '/')
		return queue_route_fail(why, whylen, "%s must be an absolute path", what);
	if (len > max)
		return queue_route_fail(why, whylen, "%s is longer than %zu bytes",
		    what, max);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)path[i];

		if (c < 0x20 || c == 0x7f)
			return queue_route_fail(why, whylen,
			    "%s contains a control character", what);
	}
	return 0;
}

/* "HOST:PORT" with HOST an IPv4 literal, [IPv6] or a host name. */
static int queue_route_check_hostport(const char *s, char *why, size_t whylen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port, *colon;
	unsigned long p = 0;
	size_t hlen, i;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		struct in6_addr a6;

		if (end == NULL)
			return queue_route_fail(why, whylen, "missing ']' after IPv6 address");
		hlen = (size_t)(end - s - 1);
		if (hlen == 0 || hlen >= sizeof host)
			return queue_route_fail(why, whylen, "bad IPv6 address");
		memcpy(host, s + 1, hlen);
		host[hlen] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return queue_route_fail(why, whylen, "bad IPv6 address '%s'", host);
		if (end[1] != ':')
			return queue_route_fail(why, whylen, "expected ':PORT' after ']'");
		port = end + 2;
	} else {
		struct in_addr a4;

		colon = strrchr(s, ':');
		if (colon == NULL)
			return queue_route_fail(why, whylen, "expected HOST:PORT");
		hlen = (size_t)(colon - s);
		if (memchr(s, ':', hlen) != NULL)
			return queue_route_fail(why, whylen,
			    "an IPv6 address must be written in brackets");
		if (hlen == 0)
			return queue_route_fail(why, whylen, "empty host");
		if (hlen < sizeof host) {
			memcpy(host, s, hlen);
			host[hlen] = '\0';
			if (inet_pton(AF_INET, host, &a4) == 1)
				goto port;
		}
		if (!queue_route_is_hostname(s, hlen))
			return queue_route_fail(why, whylen,
			    "host is neither an IP address nor a valid host name");
port:
		port = colon + 1;
	}
	for (i = 0; port[i] != '\0'; i++) {
		if (port[i] < '0' || port[i] > '9' || i >= 5)
			return queue_route_fail(why, whylen, "port must be a number 1-65535");
		p = p * 10 + (unsigned long)(port[i] - '0');
	}
	if (i == 0 || p < 1 || p > 65535)
		return queue_route_fail(why, whylen, "port must be a number 1-65535");
	return 0;
}

int queue_route_check(const char *route, char *why, size_t whylen)
{
	struct sockaddr_un sa_un;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if (route == NULL || route[0] == '\0')
		return queue_route_fail(why, whylen, "empty route");
	if (strcmp(route, "mx") == 0)
		return 0;
	if (strncmp(route, "smtp:", 5) == 0)
		return queue_route_check_hostport(route + 5, why, whylen);
	if (strncmp(route, "lmtp:unix:", 10) == 0)
		return queue_route_check_path(route + 10, sizeof sa_un.sun_path - 1,
		    "LMTP socket path", why, whylen);
	if (strncmp(route, "lmtp:", 5) == 0)
		return queue_route_check_hostport(route + 5, why, whylen);
	if (strncmp(route, "maildir:", 8) == 0)
		return queue_route_check_path(route + 8, QUEUE_PATH_MAX,
		    "maildir", why, whylen);
	return queue_route_fail(why, whylen,
	    "route must be smtp:HOST:PORT, lmtp:HOST:PORT, lmtp:unix:PATH, "
	    "maildir:DIR or mx");
}

/* --------------------------------------------------------------- records */

/*
 * The key form of a domain name: lowercase, without a trailing dot, and
 * with host name syntax (A-labels for internationalized names), so one
 * domain has exactly one key. -EINVAL otherwise.
 */
static int queue_domain_key(const char *name, char key[QUEUE_HOST_MAX + 2], size_t *klen)
{
	size_t len;

	if (name == NULL)
		return -EINVAL;
	len = strlen(name);
	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > QUEUE_HOST_MAX)
		return -EINVAL;
	memcpy(key, name, len);
	key[len] = '\0';
	str_lower(key);
	if (!queue_route_is_hostname(key, len))
		return -EINVAL;
	*klen = len;
	return 0;
}

void queue_domain_free(struct queue_domain *d)
{
	if (d == NULL)
		return;
	free(d->name);
	free(d->tenant);
	free(d->route);
	free(d);
}

static int queue_domain_decode(const void *data, size_t len, struct queue_domain **out)
{
	struct queue_dec d = { data, len };
	struct queue_domain *dom = xcalloc(1, sizeof *dom);
	uint64_t created;
	uint8_t version, u8, all = 0;
	int rc;

	*out = NULL;
	if ((rc = queue__dec_u8(&d, &version)) < 0)
		goto fail;
	rc = -EBADMSG;
	/* Version 1 predates accept_all (schema.h): it decodes as false. */
	if (version != 1 && version != QUEUE_DOMAIN_ENC_VERSION)
		goto fail;
	if ((rc = queue__dec_str(&d, &dom->name)) < 0 ||
	    (rc = queue__dec_str(&d, &dom->tenant)) < 0 ||
	    (rc = queue__dec_str(&d, &dom->route)) < 0 ||
	    (rc = queue__dec_u8(&d, &u8)) < 0 ||
	    (rc = queue__dec_u64(&d, &created)) < 0)
		goto fail;
	if (version >= 2 && (rc = queue__dec_u8(&d, &all)) < 0)
		goto fail;
	rc = -EBADMSG;
	if (u8 > 1 || all > 1 || d.left != 0 || dom->name == NULL)
		goto fail;
	dom->require_tls = u8 != 0;
	dom->accept_all = all != 0;
	dom->created = (int64_t)created;
	*out = dom;
	return 0;
fail:
	queue_domain_free(dom);
	return rc;
}

int queue_domain_put(struct queue_txn *txn, const struct queue_domain *d)
{
	char key[QUEUE_HOST_MAX + 2];
	MDB_val k, v;
	struct buf b;
	size_t klen;
	int rc;

	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	if ((rc = queue_domain_key(d->name, key, &klen)) < 0)
		return rc;
	if ((rc = queue_route_check(d->route, NULL, 0)) < 0)
		return rc;
	buf_init(&b);
	queue__enc_u8(&b, QUEUE_DOMAIN_ENC_VERSION);
	queue__enc_str(&b, key);
	queue__enc_str(&b, d->tenant);
	queue__enc_str(&b, d->route);
	queue__enc_u8(&b, d->require_tls ? 1 : 0);
	queue__enc_u64(&b, (uint64_t)d->created);
	queue__enc_u8(&b, d->accept_all ? 1 : 0);
	k.mv_size = klen;
	k.mv_data = key;
	v.mv_size = b.len;
	v.mv_data = b.data;
	rc = mdb_put(txn->txn, txn->store->db_domains, &k, &v, 0);
	buf_free(&b);
	return queue__lmdb_err(rc);
}

int queue_domain_get(struct queue_txn *txn, const char *name, struct queue_domain **out)
{
	char alabel[ADDR_DOMAIN_MAX + 1];
	char key[QUEUE_HOST_MAX + 2];
	MDB_val k, v;
	size_t klen;
	int rc;

	*out = NULL;
	/*
	 * An internationalized name as a client wrote it (RFC 6531 allows
	 * U-labels in RCPT TO) is looked up in the stored A-label form.
	 */
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (*p >= 0x80) {
			const char *why = NULL;

			if (addr_domain_canon(name, alabel, sizeof alabel, &why) < 0)
				return -EINVAL;
			name = alabel;
			break;
		}
	}
	if ((rc = queue_domain_key(name, key, &klen)) < 0)
		return rc;
	k.mv_size = klen;
	k.mv_data = key;
	rc = mdb_get(txn->txn, txn->store->db_domains, &k, &v);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	return queue_domain_decode(v.mv_data, v.mv_size, out);
}

int queue_domain_delete(struct queue_txn *txn, const char *name)
{
	char key[QUEUE_HOST_MAX + 2];
	MDB_val k;
	size_t klen;
	int rc;

	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	if ((rc = queue_domain_key(name, key, &klen)) < 0)
		return rc;
	k.mv_size = klen;
	k.mv_data = key;
	return queue__lmdb_err(mdb_del(txn->txn, txn->store->db_domains, &k, NULL));
}

int queue_domain_walk(struct queue_txn *txn, queue_domain_walk_cb *cb, void *arg)
{
	struct queue_domain *d;
	MDB_cursor *c;
	MDB_val k, v;
	int rc, ret = 0;

	rc = mdb_cursor_open(txn->txn, txn->store->db_domains, &c);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if ((ret = queue_domain_decode(v.mv_data, v.mv_size, &d)) < 0)
			break;
		ret = cb(arg, d);
		queue_domain_free(d);
		if (ret != 0)
			break;
	}
	mdb_cursor_close(c);
	if (ret != 0)
		return ret;
	return rc == MDB_NOTFOUND ? 0 : queue__lmdb_err(rc);
}
