/*
 * delivery_hop: where the scheduler's recipients go next. Parses each
 * domain's route (INTERFACE.md: smtp:, lmtp:, lmtp:unix:, maildir:, mx),
 * looks next hops up in DNS (MX, then addresses; a domain without MX is
 * its own, RFC 5321 section 5.1; a null MX refuses, RFC 7505), tries the
 * hosts and addresses in turn, and shares sessions per next hop known
 * without DNS (at most destination_concurrency, each taking the next
 * waiting group over the same connection). A session with nothing left
 * to send waits idle for connection_cache_time (smtpc_resume), so a
 * steady flow to one next hop does not pay a connect, greeting and EHLO
 * per message; the idle sessions are each hop queue's idle list.
 *
 * Entry points (for delivery.c only, delivery_int.h): dlv__domain_of,
 * dlv__cmp_route, dlv__same_hop, dlv__resolve_routes, dlv__group_resolve,
 * dlv__group_direct, dlv__hops_drain.
 * OWNERSHIP: groups, hop queues and sessions belong to their job or dlv
 * (delivery.c frees them); a session's completion hands its verdicts to
 * the job and starts the job's next group (dlv__job_next).
 * THREADS: loop thread only.
 * ERRORS: a group that cannot start is a temporary local failure of its
 * recipients; DNS and session failures become their verdicts.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "relay/delivery_int.h"

/* Parses "HOST:PORT" (IPv6 in brackets) into r->host/port/host_is_name. */
static bool dlv_hostport_parse(const char *s, struct dlv_rcpt *r)
{
	const char *port, *end;
	unsigned char addr[sizeof(struct in6_addr)];
	unsigned long p = 0;
	size_t hlen, i;
	bool v6 = s[0] == '[';

	if (v6) {
		end = strchr(s, ']');
		if (end == NULL || end[1] != ':')
			return false;
		s++;
		hlen = (size_t)(end - s);
		port = end + 2;
	} else {
		end = strrchr(s, ':');
		if (end == NULL)
			return false;
		hlen = (size_t)(end - s);
		port = end + 1;
	}
	if (hlen == 0 || hlen >= sizeof(r->host))
		return false;
	memcpy(r->host, s, hlen);
	r->host[hlen] = '\0';
	for (i = 0; port[i] != '\0'; i++) {
		if (port[i] < '0' || port[i] > '9' || i >= 5)
			return false;
		p = p * 10 + (unsigned long)(port[i] - '0');
	}
	if (i == 0 || p == 0 || p > 65535)
		return false;
	r->port = (uint16_t)p;
	if (inet_pton(v6 ? AF_INET6 : AF_INET, r->host, addr) == 1) {
		r->host_is_name = false;
	} else {
		/* queue_route_check allowed only LDH names here; v6 must be numeric. */
		if (v6)
			return false;
		r->host_is_name = true;
	}
	return true;
}

/*
 * Parses a domain's route (INTERFACE.md: smtp:HOST:PORT, lmtp:HOST:PORT,
 * lmtp:unix:PATH, maildir:DIR, mx) into r. A recipient whose domain has
 * no record goes over MX: that is mail the trusted agency servers relay
 * to the Internet. Returns false for a route this build cannot use.
 */
static bool dlv_route_parse(const char *route, struct dlv_rcpt *r)
{
	r->hop = DLV_HOP_NONE;
	r->host_is_name = false;
	r->path[0] = '\0';
	if (route == NULL || strcmp(route, "mx") == 0) {
		if (r->domain == NULL || r->domain[0] == '\0' || r->domain[0] == '[' ||
		    str_copy(r->host, r->domain, sizeof(r->host)) >= sizeof(r->host))
			return false;
		r->hop = DLV_HOP_MX;
		r->host_is_name = true;
		r->port = 0; /* smtp_port, from the job's config */
		dlv__textf(r->relay, sizeof(r->relay), "mx:%s", r->host);
	} else if (strncmp(route, "smtp:", 5) == 0) {
		if (!dlv_hostport_parse(route + 5, r))
			return false;
		r->hop = DLV_HOP_SMTP;
		dlv__textf(r->relay, sizeof(r->relay), "%s[%s]:%u", r->host,
		    r->host_is_name ? "?" : r->host, (unsigned)r->port);
	} else if (strncmp(route, "lmtp:unix:", 10) == 0) {
		if (route[10] != '/' ||
		    str_copy(r->path, route + 10, sizeof(r->path)) >= sizeof(r->path))
			return false;
		r->hop = DLV_HOP_LMTP;
		r->host[0] = '\0';
		r->port = 0;
		dlv__textf(r->relay, sizeof(r->relay), "unix:%s", r->path);
	} else if (strncmp(route, "lmtp:", 5) == 0) {
		if (!dlv_hostport_parse(route + 5, r))
			return false;
		r->hop = DLV_HOP_LMTP;
		dlv__textf(r->relay, sizeof(r->relay), "lmtp:%s[%s]:%u", r->host,
		    r->host_is_name ? "?" : r->host, (unsigned)r->port);
	} else if (strncmp(route, "maildir:", 8) == 0) {
		if (route[8] != '/' ||
		    str_copy(r->path, route + 8, sizeof(r->path)) >= sizeof(r->path))
			return false;
		r->hop = DLV_HOP_MAILDIR;
		r->host[0] = '\0';
		r->port = 0;
		dlv__textf(r->relay, sizeof(r->relay), "maildir:%s", r->path);
	} else {
		return false;
	}
	r->smtp = true;
	return true;
}

/* The lowercased domain of an address, without a final dot; NULL if none. */
char *dlv__domain_of(const char *addr)
{
	const char *at = strrchr(addr, '@');
	char *dom;
	size_t len;

	if (at == NULL || at[1] == '\0')
		return NULL;
	dom = xstrdup(at + 1);
	len = strlen(dom);
	if (len > 0 && dom[len - 1] == '.')
		dom[len - 1] = '\0';
	str_lower(dom);
	return dom;
}

static int dlv_cmp_domain(const void *a, const void *b)
{
	const struct dlv_rcpt *x = *(const struct dlv_rcpt *const *)a;
	const struct dlv_rcpt *y = *(const struct dlv_rcpt *const *)b;

	if (x->domain == NULL || y->domain == NULL)
		return (x->domain == NULL) - (y->domain == NULL);
	return strcmp(x->domain, y->domain);
}

/* Local verdicts first, then by next hop, then in message order. */
int dlv__cmp_route(const void *a, const void *b)
{
	const struct dlv_rcpt *x = *(const struct dlv_rcpt *const *)a;
	const struct dlv_rcpt *y = *(const struct dlv_rcpt *const *)b;
	int c;

	if (x->smtp != y->smtp)
		return x->smtp ? 1 : -1;
	if (x->smtp) {
		if (x->hop != y->hop)
			return x->hop < y->hop ? -1 : 1;
		if ((c = strcmp(x->host, y->host)) != 0)
			return c;
		if ((c = strcmp(x->path, y->path)) != 0)
			return c;
		if (x->port != y->port)
			return x->port < y->port ? -1 : 1;
		if (x->require_tls != y->require_tls)
			return x->require_tls ? 1 : -1;
	}
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

bool dlv__same_hop(const struct dlv_rcpt *x, const struct dlv_rcpt *y)
{
	return x->smtp && y->smtp && x->hop == y->hop && strcmp(x->host, y->host) == 0 &&
	    strcmp(x->path, y->path) == 0 && x->port == y->port &&
	    x->require_tls == y->require_tls;
}

/* Gives every recipient of g the same local verdict. */
static void dlv_group_fail(struct dlv_job *j, struct dlv_group *g,
    enum smtpc_outcome outcome, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void dlv_group_fail(struct dlv_job *j, struct dlv_group *g,
    enum smtpc_outcome outcome, const char *dsn, const char *fmt, ...)
{
	char text[SMTPC_TEXT_MAX];
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	for (i = 0; i < g->n; i++) {
		struct smtpc_rcpt *sr = &j->sr[g->start + i];

		sr->outcome = outcome;
		sr->code = 0;
		str_copy(sr->dsn, dsn, sizeof(sr->dsn));
		dlv__textf(sr->reply, sizeof(sr->reply), "%s %s", dsn, text);
	}
}

static void dlv_resolve_next_host(struct dlv_job *j, struct dlv_group *g);

/* Copies a session's relay text ("host[addr]:port") to its recipients. */
static void dlv_group_relay(struct dlv_job *j, struct dlv_group *g, const char *relay)
{
	size_t i;

	if (relay == NULL || relay[0] == '\0')
		return;
	for (i = 0; i < g->n; i++)
		str_copy(j->r[g->start + i].relay, relay, sizeof(j->r[g->start + i].relay));
}

static void dlv_try_next_addr(struct dlv_job *j, struct dlv_group *g);

/*
 * A session to a looked-up address ended. A session that broke before
 * any recipient got a verdict (refused, timed out, lost, TLS) moves on to
 * the next address, then the next MX host (RFC 5321 section 5.1);
 * anything the server actually answered is final for this attempt.
 */
static void dlv_on_resolved_session_done(void *arg, const struct smtpc_result *res)
{
	struct dlv_job *j = arg;
	struct dlv_group *g = &j->groups[j->group_next - 1];
	bool answered = false;
	size_t i;

	j->session = NULL;
	dlv_group_relay(j, g, res->relay);
	for (i = 0; i < g->n; i++) {
		const struct smtpc_rcpt *sr = &j->sr[g->start + i];

		if (sr->outcome == SMTPC_OK || sr->outcome == SMTPC_PERM || sr->code != 0)
			answered = true;
	}
	if (res->status < 0 && res->status != -ECANCELED && !answered && !j->d->stopping) {
		str_copy(g->last_error, j->sr[g->start].reply, sizeof(g->last_error));
		log_debug(j->qid, "delivery to %s failed: %s; trying the next address",
		    res->relay, res->error);
		dlv_try_next_addr(j, g);
		return;
	}
	dlv__job_next(j);
}

static void dlv_try_next_addr(struct dlv_job *j, struct dlv_group *g)
{
	const struct dlv_rcpt *r = &j->r[g->start];
	const struct sockaddr_storage *ss;
	size_t i;
	int rc;

	while (g->addr_next < g->naddrs && g->tries < DLV_TRIES_MAX) {
		ss = &g->addrs_found[g->addr_next++];
		if (ss->ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr,
			    g->addr_text, sizeof(g->addr_text));
		else
			inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr,
			    g->addr_text, sizeof(g->addr_text));
		g->req.host = g->addr_text;
		/* Required TLS verifies the certificate against this host's name. */
		g->req.tls_name = g->hosts[g->host_next - 1];
		g->req.port = r->hop == DLV_HOP_MX ? (uint16_t)j->cfg->smtp_port : r->port;
		g->tries++;
		for (i = 0; i < g->n; i++) {
			struct smtpc_rcpt *sr = &j->sr[g->start + i];

			sr->outcome = SMTPC_NONE;
			sr->code = 0;
			sr->dsn[0] = sr->reply[0] = '\0';
		}
		rc = smtpc_start(j->d->loop, &g->req, dlv_on_resolved_session_done, j,
		    &j->session);
		if (rc == 0)
			return;
		snprintf(g->last_error, sizeof(g->last_error), "cannot start a session to %s: %s",
		    g->addr_text, strerror(-rc));
	}
	dlv_resolve_next_host(j, g);
}

static void dlv_on_addr(void *arg, const struct dns_result *res)
{
	struct dlv_job *j = arg;
	struct dlv_group *g = &j->groups[j->group_next - 1];
	const char *host = g->hosts[g->host_next - 1];
	size_t i;

	j->dns_q = NULL;
	if (res->status != DNS_OK || res->n == 0) {
		snprintf(g->last_error, sizeof(g->last_error), "no address for %s: %s%s%s", host,
		    dns_status_name(res->status), res->error[0] ? ": " : "", res->error);
		dlv_resolve_next_host(j, g);
		return;
	}
	g->naddrs = res->n < DLV_ADDR_MAX ? res->n : DLV_ADDR_MAX;
	for (i = 0; i < g->naddrs; i++)
		g->addrs_found[i] = res->addr[i];
	g->addr_next = 0;
	dlv_try_next_addr(j, g);
}

/* Looks up the next host's addresses, or ends the group when none is left. */
static void dlv_resolve_next_host(struct dlv_job *j, struct dlv_group *g)
{
	bool tried = g->tries > 0;
	int rc;

	while (g->host_next < g->nhosts && g->tries < DLV_TRIES_MAX && !j->d->stopping) {
		rc = dns_query_addr(j->d->dns, g->hosts[g->host_next++], dlv_on_addr, j,
		    &j->dns_q);
		if (rc == 0)
			return;
		snprintf(g->last_error, sizeof(g->last_error), "bad host name %s",
		    g->hosts[g->host_next - 1]);
	}
	/*
	 * Every next hop failed. A session that ran has left its own verdicts
	 * (temporary: it broke); otherwise say what the lookups found.
	 */
	if (!tried || j->sr[g->start].outcome == SMTPC_NONE)
		dlv_group_fail(j, g, SMTPC_TEMP, "4.4.3", "%s",
		    g->last_error[0] ? g->last_error : "no next hop found");
	dlv__job_next(j);
}

static void dlv_on_mx(void *arg, const struct dns_result *res)
{
	struct dlv_job *j = arg;
	struct dlv_group *g = &j->groups[j->group_next - 1];
	const char *domain = j->r[g->start].host;
	const char *self = j->cfg->hostname;
	size_t i;

	j->dns_q = NULL;
	switch (res->status) {
	case DNS_TEMPFAIL:
		dlv_group_fail(j, g, SMTPC_TEMP, "4.4.3", "MX lookup for %s failed: %s",
		    domain, res->error[0] ? res->error : "temporary DNS failure");
		dlv__job_next(j);
		return;
	case DNS_NXDOMAIN:
		dlv_group_fail(j, g, SMTPC_PERM, "5.1.2",
		    "domain %s does not exist (DNS: no such domain)", domain);
		dlv__job_next(j);
		return;
	case DNS_NODATA:
		break;
	case DNS_OK:
		if (res->null_mx && res->n == 0) {
			dlv_group_fail(j, g, SMTPC_PERM, "5.1.10",
			    "domain %s accepts no mail (null MX, RFC 7505)", domain);
			dlv__job_next(j);
			return;
		}
		break;
	}
	g->hosts = xcalloc(DLV_MX_MAX, sizeof(*g->hosts));
	if (res->status == DNS_OK && res->n > 0) {
		for (i = 0; i < res->n && g->nhosts < DLV_MX_MAX; i++) {
			/* Mail for a domain whose MX is us would loop (RFC 5321 5.1). */
			if (self != NULL && strcasecmp(res->mx[i].host, self) == 0)
				break;
			str_copy(g->hosts[g->nhosts++], res->mx[i].host, sizeof(g->hosts[0]));
		}
		if (g->nhosts == 0) {
			dlv_group_fail(j, g, SMTPC_PERM, "5.4.6",
			    "mail for %s loops back to myself", domain);
			dlv__job_next(j);
			return;
		}
	} else {
		/* No MX: the domain itself is the implicit MX (RFC 5321 5.1). */
		str_copy(g->hosts[g->nhosts++], domain, sizeof(g->hosts[0]));
	}
	dlv_resolve_next_host(j, g);
}

/* Starts the DNS side of a group whose next hop is a name. */
int dlv__group_resolve(struct dlv_job *j, struct dlv_group *g)
{
	const struct dlv_rcpt *r = &j->r[g->start];

	if (j->d->dns == NULL)
		return -ENOSYS;
	if (r->hop == DLV_HOP_MX)
		return dns_query_mx(j->d->dns, r->host, dlv_on_mx, j, &j->dns_q);
	g->hosts = xcalloc(1, sizeof(*g->hosts));
	str_copy(g->hosts[0], r->host, sizeof(g->hosts[0]));
	g->nhosts = 1;
	dlv_resolve_next_host(j, g);
	return 0;
}

/* ------------------------------------------------- sessions per next hop */

static bool dlv_hopq_is(const struct dlv_hopq *hq, const struct dlv_rcpt *r)
{
	return hq->hop == r->hop && hq->port == r->port && hq->require_tls == r->require_tls &&
	    strcmp(hq->host, r->host) == 0 && strcmp(hq->path, r->path) == 0;
}

static struct dlv_hopq *dlv_hopq_get(struct dlv *d, const struct dlv_rcpt *r)
{
	struct dlv_hopq *hq;

	for (hq = d->hops; hq != NULL; hq = hq->next)
		if (dlv_hopq_is(hq, r))
			return hq;
	hq = xcalloc(1, sizeof(*hq));
	hq->hop = r->hop;
	str_copy(hq->host, r->host, sizeof(hq->host));
	str_copy(hq->path, r->path, sizeof(hq->path));
	hq->port = r->port;
	hq->require_tls = r->require_tls;
	hq->next = d->hops;
	d->hops = hq;
	return hq;
}

static void dlv_hopq_release(struct dlv *d, struct dlv_hopq *hq)
{
	struct dlv_hopq **pp;

	if (hq->sessions > 0 || hq->head != NULL)
		return;
	for (pp = &d->hops; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == hq) {
			*pp = hq->next;
			free(hq);
			return;
		}
	}
}

static void dlv_idle_push(struct dlv_conn *conn)
{
	struct dlv_hopq *hq = conn->hq;

	conn->idle = true;
	conn->idle_prev = NULL;
	conn->idle_next = hq->idle;
	if (hq->idle != NULL)
		hq->idle->idle_prev = conn;
	hq->idle = conn;
}

static void dlv_idle_remove(struct dlv_conn *conn)
{
	struct dlv_hopq *hq = conn->hq;

	if (!conn->idle)
		return;
	conn->idle = false;
	if (conn->idle_prev != NULL)
		conn->idle_prev->idle_next = conn->idle_next;
	else
		hq->idle = conn->idle_next;
	if (conn->idle_next != NULL)
		conn->idle_next->idle_prev = conn->idle_prev;
	conn->idle_prev = conn->idle_next = NULL;
}

static bool dlv_hopq_pop(struct dlv_hopq *hq, struct dlv_job **j, struct dlv_group **g)
{
	struct dlv_wait *w = hq->head;

	if (w == NULL)
		return false;
	hq->head = w->next;
	if (hq->head == NULL)
		hq->tail = NULL;
	*j = w->j;
	*g = w->g;
	free(w);
	return true;
}

static int dlv_conn_start(struct dlv_hopq *hq, struct dlv_job *j, struct dlv_group *g);

/*
 * The session finished its message (prev's verdicts are final): hand it
 * the next waiting group for this hop, then let the finished job go on.
 */
static const struct smtpc_request *dlv_conn_next(void *arg, const struct smtpc_request *prev)
{
	struct dlv_conn *conn = arg;
	struct dlv_job *done_job = conn->j, *j2 = NULL;
	struct dlv_group *g2 = NULL;

	(void)prev;
	done_job->session = NULL;
	if (!conn->d->stopping && dlv_hopq_pop(conn->hq, &j2, &g2)) {
		conn->j = j2;
		conn->g = g2;
		j2->session = conn->c;
	} else {
		conn->j = NULL;
		conn->g = NULL;
		/*
		 * With idle_ms set the session now waits idle (smtp_client.h).
		 * Never while stopping: dlv_stop has aborted every session that
		 * could still ask.
		 */
		if (conn->idle_ms > 0)
			dlv_idle_push(conn);
	}
	/* Reassigned first: the finished job may start other groups now. */
	dlv__job_next(done_job);
	return j2 != NULL ? &g2->req : NULL;
}

static void dlv_conn_done(void *arg, const struct smtpc_result *res)
{
	struct dlv_conn *conn = arg;
	struct dlv *d = conn->d;
	struct dlv_hopq *hq = conn->hq;
	struct dlv_job *j = conn->j, *wj;
	struct dlv_group *wg;

	dlv_idle_remove(conn);
	hq->sessions--;
	d->nsessions--;
	free(conn);
	if (j != NULL) {
		j->session = NULL;
		dlv_group_relay(j, &j->groups[j->group_next - 1], res->relay);
		if (res->status < 0 && res->status != -ECANCELED)
			log_debug(j->qid, "delivery session to %s ended: %s", res->relay,
			    res->error);
		dlv__job_next(j);
	}
	/* A session that broke leaves waiting groups: give them a new one. */
	while (!d->stopping && hq->sessions < d->cfg->destination_concurrency &&
	    dlv_hopq_pop(hq, &wj, &wg)) {
		if (dlv_conn_start(hq, wj, wg) < 0) {
			dlv_group_fail(wj, wg, SMTPC_TEMP, "4.3.0", "cannot start a delivery session");
			dlv__job_next(wj);
		}
	}
	dlv_hopq_release(d, hq);
	dlv__maybe_stopped(d);
}

static int dlv_conn_start(struct dlv_hopq *hq, struct dlv_job *j, struct dlv_group *g)
{
	struct dlv_conn *conn = xcalloc(1, sizeof(*conn));
	int rc;

	conn->d = j->d;
	conn->hq = hq;
	conn->j = j;
	conn->g = g;
	conn->idle_ms = (uint32_t)j->cfg->connection_cache_time;
	g->req.next = dlv_conn_next;
	g->req.next_arg = conn;
	g->req.idle_ms = conn->idle_ms;
	rc = smtpc_start(j->d->loop, &g->req, dlv_conn_done, conn, &conn->c);
	if (rc < 0) {
		free(conn);
		return rc;
	}
	hq->sessions++;
	j->d->nsessions++;
	j->session = conn->c;
	return 0;
}

/*
 * Gives group g to a session waiting idle for this next hop. False when
 * none is left; one that is ending by itself (its QUIT has gone out) is
 * dropped from the list, its done will come.
 */
static bool dlv_idle_take(struct dlv_hopq *hq, struct dlv_job *j, struct dlv_group *g)
{
	while (hq->idle != NULL) {
		struct dlv_conn *conn = hq->idle;

		dlv_idle_remove(conn);
		conn->j = j;
		conn->g = g;
		j->session = conn->c;
		if (smtpc_resume(conn->c, &g->req) == 0)
			return true;
		conn->j = NULL;
		conn->g = NULL;
		j->session = NULL;
	}
	return false;
}

/* Starts a group whose next hop needs no lookup, or queues it for a session. */
int dlv__group_direct(struct dlv_job *j, struct dlv_group *g)
{
	struct dlv *d = j->d;
	struct dlv_hopq *hq = dlv_hopq_get(d, &j->r[g->start]);
	struct dlv_wait *w;
	int rc;

	if (dlv_idle_take(hq, j, g))
		return 0;
	if (hq->sessions < d->cfg->destination_concurrency) {
		rc = dlv_conn_start(hq, j, g);
		dlv_hopq_release(d, hq);
		return rc;
	}
	w = xcalloc(1, sizeof(*w));
	w->j = j;
	w->g = g;
	if (hq->tail != NULL)
		hq->tail->next = w;
	else
		hq->head = w;
	hq->tail = w;
	return 0;
}

/*
 * Stopping: groups that never got a session end without a verdict, and
 * idle sessions close (their done comes back through dlv_conn_done).
 */
void dlv__hops_drain(struct dlv *d)
{
	struct dlv_hopq *hq, *next;
	struct dlv_job *j;
	struct dlv_group *g;

	for (hq = d->hops; hq != NULL; hq = next) {
		next = hq->next;
		while (dlv_hopq_pop(hq, &j, &g))
			dlv__job_next(j);
		while (hq->idle != NULL) {
			struct dlv_conn *conn = hq->idle;

			dlv_idle_remove(conn);
			smtpc_abort(conn->c);
		}
		dlv_hopq_release(d, hq);
	}
}

/*
 * Resolves each recipient's route: one domain lookup per distinct
 * domain, all in the caller's read transaction.
 */
void dlv__resolve_routes(struct dlv_job *j, struct queue_txn *txn,
    struct dlv_rcpt **by)
{
	size_t i = 0, k;

	qsort(by, j->n, sizeof(*by), dlv_cmp_domain);
	while (i < j->n) {
		struct queue_domain *dom = NULL;
		const char *fail = DLV_TEXT_NO_ROUTE;
		char route_err[SMTPC_TEXT_MAX];
		int rc = -ENOENT;

		if (by[i]->domain != NULL)
			rc = queue_domain_get(txn, by[i]->domain, &dom);
		if (rc < 0 && rc != -ENOENT) {
			snprintf(route_err, sizeof(route_err),
			    "4.3.0 cannot read the domain table: %s", queue_strerror(rc));
			fail = route_err;
		}
		for (k = i; k < j->n && dlv_cmp_domain(&by[i], &by[k]) == 0; k++) {
			struct dlv_rcpt *r = by[k];
			struct smtpc_rcpt *s = &j->sr[r - j->r];

			if ((rc == 0 || rc == -ENOENT) &&
			    dlv_route_parse(dom != NULL ? dom->route : NULL, r)) {
				/*
				 * Mail leaving the city from an agency whose policy
				 * says require_tls_outbound was marked so at arrival.
				 */
				r->require_tls = dom != NULL ? dom->require_tls :
				    j->msg->require_tls;
				continue;
			}
			s->outcome = SMTPC_TEMP;
			s->code = 0;
			str_copy(r->relay, "none", sizeof(r->relay));
			if (dom != NULL)
				fail = DLV_TEXT_UNSUPPORTED;
			str_copyn(s->dsn, fail, 5, sizeof(s->dsn));
			str_copy(s->reply, fail, sizeof(s->reply));
		}
		queue_domain_free(dom);
		i = k;
	}
}
