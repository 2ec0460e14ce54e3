/*
 * delivery: the scheduler. A timer wakes at the earliest time in the
 * store's schedule (capped at DLV_MAX_SLEEP_MS, so changes made by
 * govrelayctl from another process are noticed without a kick). Each due
 * message becomes a job: its due recipients are grouped by the route of
 * their domain, each group is handed to one outbound SMTP session in turn
 * (so at most one session per message, and at most delivery_concurrency
 * messages at once), and when every group is done the outcomes are
 * recorded through the queue writer in one operation per message, with
 * one audit record per recipient in the same transaction. The Postfix-like
 * log lines are written only after that transaction is durable.
 *
 * Routes (a domain's record, INTERFACE.md): smtp:HOST:PORT and
 * lmtp:HOST:PORT (HOST an address or a name looked up through relay/dns),
 * lmtp:unix:PATH, maildir:DIR (written on the thread pool by
 * relay/maildir), and mx (the domain's MX hosts, or its address when it
 * has none, on port smtp_port). A recipient whose domain has no record
 * goes over mx: mail the trusted agency servers relay to the Internet. A
 * route that cannot be parsed is a temporary failure, retried with
 * backoff until the message expires. Sessions to one next hop known
 * without DNS are shared: at most destination_concurrency at once, each
 * taking the next waiting group over the same connection. STARTTLS is
 * required where the domain says so, or where the sender's agency had
 * require_tls_outbound when the message arrived (queue_receive marks it).
 *
 * Recording is queue_delivery_apply's (queue/delivery.c), on the writer
 * thread in one transaction per message: it re-reads the message (an
 * operator may have changed or deleted it meanwhile) and updates only
 * recipients still pending: 2xx delivered, 5xx failed, anything else
 * pending again with backoff, or failed as expired (4.4.7) past
 * max_queue_lifetime. Failures that asked for it get an RFC 3464 failure
 * report, and a message pending past delay_warning_time gets one delay
 * report: the words come from relay/dsn (dlv_make_report), and the
 * report is queued like a received message (queue_receive_apply) in the
 * same transaction, null sender, never about a report. A message with
 * nothing pending is deleted. If the operation fails the store keeps the
 * message as it was: it is delivered again later, which is the
 * at-least-once promise (a crash mid-session does the same). Success
 * reports (NOTIFY=SUCCESS) are not sent.
 *
 * Entry points: dlv_start, dlv_kick, dlv_set_config, dlv_stop.
 *
 * OWNERSHIP: the dlv owns its timer, its jobs and a reference on its
 * config snapshot; each job owns a message snapshot, a config reference
 * (in-flight work keeps its own snapshot across SIGHUP) and its session.
 * store, writer and client_tls are borrowed and must outlive dlv_stop's
 * callback. A job submitted to the writer lives until its done callback.
 *
 * THREADS: everything on the loop thread except dlv_apply and
 * dlv_make_report, which run on the writer thread while the loop does not
 * touch that job (between submit and done); they read the job's config
 * snapshot, which is immutable while referenced.
 *
 * ERRORS: store read errors are logged and the message is left for a
 * later pass; nothing a peer sends can stop the scheduler.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/audit_event.h"
#include "queue/delivery.h"
#include "queue/queue.h"
#include "queue/queue_writer.h"
#include "relay/delivery.h"
#include "relay/dns.h"
#include "relay/dsn.h"
#include "relay/maildir.h"
#include "relay/smtp_client.h"
#include "relay/tlsio.h"

/* Longest sleep: external changes (govrelayctl) are seen within this. */
#define DLV_MAX_SLEEP_MS 60000
/* A message we could not load or record is left alone this long. */
#define DLV_SKIP_MS 60000
#define DLV_SKIP_MAX 64
/* Next-hop search: MX hosts, addresses per host, and sessions per group. */
#define DLV_MX_MAX 8
#define DLV_ADDR_MAX 8
#define DLV_TRIES_MAX 10

#define DLV_TEXT_NO_ROUTE "4.3.0 no route for domain"
#define DLV_TEXT_UNSUPPORTED "4.4.0 the route of the domain cannot be used"

/* How a group of recipients leaves the relay. */
enum dlv_hop {
	DLV_HOP_NONE,     /* decided locally (no route, bad route) */
	DLV_HOP_SMTP,     /* smtp:HOST:PORT */
	DLV_HOP_LMTP,     /* lmtp:HOST:PORT or lmtp:unix:PATH */
	DLV_HOP_MAILDIR,  /* maildir:DIR */
	DLV_HOP_MX,       /* mx: the domain's MX hosts, port smtp_port */
};

/* One recipient of a job, in the job's (grouped) order. */
struct dlv_rcpt {
	size_t idx;                  /* index in the message snapshot */
	char *domain;                /* lowercased domain part; NULL when none */
	bool smtp;                   /* has a next hop (hop != DLV_HOP_NONE) */
	enum dlv_hop hop;
	bool host_is_name;           /* host needs an address lookup */
	char host[256];              /* address, host name, or (MX) the domain */
	char path[256];              /* unix socket or maildir folder */
	uint16_t port;
	bool require_tls;
	char relay[SMTPC_RELAY_MAX]; /* for the log and the audit record */
};

/* Consecutive recipients of a job that share one next hop. */
struct dlv_group {
	size_t start, n;
	enum dlv_hop hop;
	struct smtpc_request req;
	/* DLV_HOP_MAILDIR */
	const char **addrs;
	struct maildir_result *mres;
	/* Next hops found in DNS (MX, or a route's host name). */
	char (*hosts)[DNS_NAME_MAX + 1];
	size_t nhosts, host_next;
	struct sockaddr_storage addrs_found[DLV_ADDR_MAX];
	size_t naddrs, addr_next;
	unsigned tries;
	char addr_text[INET6_ADDRSTRLEN];
	char last_error[SMTPC_TEXT_MAX];
};

struct dlv_job {
	struct dlv *d;
	struct dlv_job *prev, *next;
	struct config *cfg;
	struct queue_msg *msg;       /* snapshot from when the job started */
	char qid[QUEUE_ID_TEXT_LEN + 1];
	size_t n;
	struct dlv_rcpt *r;          /* n */
	struct smtpc_rcpt *sr;       /* n, parallel to r */
	struct dlv_group *groups;
	size_t ngroups, group_next;
	struct smtpc *session;       /* the running session, or NULL */
	int64_t finished_at;         /* unix ms: "now" for the record */
	/*
	 * What queue_delivery_apply records (built by dlv_job_finish on the
	 * loop; read, and out/rec written, on the writer thread; read by
	 * dlv_done on the loop again). Report ids are loop-allocated.
	 */
	struct queue_delivery_attempt *att;   /* n */
	struct queue_delivery_record *rec;    /* n */
	struct queue_delivery_result req;
	struct queue_delivery_outcome out;
	bool maildir_busy;           /* a maildir delivery is running */
	struct dns_query *dns_q;     /* a next-hop lookup in flight */
};

/* A group waiting for a session to its next hop. */
struct dlv_wait {
	struct dlv_wait *next;
	struct dlv_job *j;
	struct dlv_group *g;
};

/*
 * One next hop known without DNS (an address and port, a unix socket):
 * how many sessions are open to it, and the groups waiting for one. A
 * session that finishes a message takes the next waiting group over the
 * same connection (RSET between when needed), so a busy destination gets
 * at most destination_concurrency connections, kept in use.
 */
struct dlv_hopq {
	struct dlv_hopq *next;
	enum dlv_hop hop;
	char host[256];
	char path[256];
	uint16_t port;
	bool require_tls;
	unsigned sessions;
	struct dlv_wait *head, *tail;
};

/* One session to a dlv_hopq and the group it is working for now. */
struct dlv_conn {
	struct dlv *d;
	struct dlv_hopq *hq;
	struct dlv_job *j;           /* NULL once the session has no more work */
	struct dlv_group *g;
	struct smtpc *c;
};

struct dlv_skip {
	uint64_t id;
	uint64_t until;              /* monotonic ms */
};

struct dlv {
	uv_loop_t *loop;
	struct dns *dns;             /* borrowed; NULL: no lookups possible */
	struct config *cfg;
	struct queue_store *store;
	struct queue_writer *writer;
	struct tlsio_ctx *client_tls;
	uv_timer_t timer;
	struct dlv_job *jobs;        /* in flight: session or writer op owed */
	size_t njobs;
	struct dlv_hopq *hops;       /* next hops with sessions or waiting groups */
	uint64_t *ids;               /* scratch for queue_schedule_due */
	size_t ids_cap;
	struct dlv_skip skip[DLV_SKIP_MAX];
	bool stopping;
	bool closing;
	void (*stop_cb)(void *arg);
	void *stop_arg;
};

static void dlv_job_next(struct dlv_job *j);
static void dlv_kick_later(struct dlv *d, uint64_t ms);
static void dlv_group_relay(struct dlv_job *j, struct dlv_group *g, const char *relay);

/* ------------------------------------------------------------- helpers */

static void dlv_skip_add(struct dlv *d, uint64_t id)
{
	uint64_t now = time_mono_ms();
	size_t i, oldest = 0;

	for (i = 0; i < DLV_SKIP_MAX; i++) {
		if (d->skip[i].id == id || d->skip[i].until <= now) {
			oldest = i;
			break;
		}
		if (d->skip[i].until < d->skip[oldest].until)
			oldest = i;
	}
	d->skip[oldest].id = id;
	d->skip[oldest].until = now + DLV_SKIP_MS;
}

static bool dlv_is_skipped(const struct dlv *d, uint64_t id)
{
	uint64_t now = time_mono_ms();
	size_t i;

	for (i = 0; i < DLV_SKIP_MAX; i++)
		if (d->skip[i].id == id && d->skip[i].until > now)
			return true;
	return false;
}

static bool dlv_is_in_flight(const struct dlv *d, uint64_t id)
{
	const struct dlv_job *j;

	for (j = d->jobs; j != NULL; j = j->next)
		if (j->msg->id == id)
			return true;
	return false;
}

/* Formats log and reply texts, where cutting a long one short is fine. */
static void dlv_textf(char *dst, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void dlv_textf(char *dst, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, len, fmt, ap);
	va_end(ap);
}

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
		dlv_textf(r->relay, sizeof(r->relay), "mx:%s", r->host);
	} else if (strncmp(route, "smtp:", 5) == 0) {
		if (!dlv_hostport_parse(route + 5, r))
			return false;
		r->hop = DLV_HOP_SMTP;
		dlv_textf(r->relay, sizeof(r->relay), "%s[%s]:%u", r->host,
		    r->host_is_name ? "?" : r->host, (unsigned)r->port);
	} else if (strncmp(route, "lmtp:unix:", 10) == 0) {
		if (route[10] != '/' ||
		    str_copy(r->path, route + 10, sizeof(r->path)) >= sizeof(r->path))
			return false;
		r->hop = DLV_HOP_LMTP;
		r->host[0] = '\0';
		r->port = 0;
		dlv_textf(r->relay, sizeof(r->relay), "unix:%s", r->path);
	} else if (strncmp(route, "lmtp:", 5) == 0) {
		if (!dlv_hostport_parse(route + 5, r))
			return false;
		r->hop = DLV_HOP_LMTP;
		dlv_textf(r->relay, sizeof(r->relay), "lmtp:%s[%s]:%u", r->host,
		    r->host_is_name ? "?" : r->host, (unsigned)r->port);
	} else if (strncmp(route, "maildir:", 8) == 0) {
		if (route[8] != '/' ||
		    str_copy(r->path, route + 8, sizeof(r->path)) >= sizeof(r->path))
			return false;
		r->hop = DLV_HOP_MAILDIR;
		r->host[0] = '\0';
		r->port = 0;
		dlv_textf(r->relay, sizeof(r->relay), "maildir:%s", r->path);
	} else {
		return false;
	}
	r->smtp = true;
	return true;
}

/* The lowercased domain of an address, without a final dot; NULL if none. */
static char *dlv_domain_of(const char *addr)
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
static int dlv_cmp_route(const void *a, const void *b)
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

static bool dlv_same_hop(const struct dlv_rcpt *x, const struct dlv_rcpt *y)
{
	return x->smtp && y->smtp && x->hop == y->hop && strcmp(x->host, y->host) == 0 &&
	    strcmp(x->path, y->path) == 0 && x->port == y->port &&
	    x->require_tls == y->require_tls;
}

/* ---------------------------------------------------------------- jobs */

static void dlv_job_free(struct dlv_job *j)
{
	struct dlv *d = j->d;
	size_t i;

	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		d->jobs = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	d->njobs--;
	for (i = 0; i < j->n; i++)
		free(j->r[i].domain);
	for (i = 0; i < j->ngroups; i++) {
		free(j->groups[i].addrs);
		free(j->groups[i].mres);
		free(j->groups[i].hosts);
	}
	free(j->r);
	free(j->sr);
	free(j->att);
	free(j->rec);
	free(j->groups);
	queue_msg_free(j->msg);
	cfg_unref(j->cfg);
	free(j);
}

/* Finishes dlv_stop once nothing is owed any more. */
static void dlv_on_timer_close(uv_handle_t *h)
{
	struct dlv *d = h->data;
	void (*cb)(void *arg) = d->stop_cb;
	void *arg = d->stop_arg;

	cfg_unref(d->cfg);
	free(d->ids);
	free(d);
	if (cb != NULL)
		cb(arg);
}

static void dlv_maybe_stopped(struct dlv *d)
{
	if (!d->stopping || d->closing || d->njobs > 0)
		return;
	d->closing = true;
	uv_close((uv_handle_t *)&d->timer, dlv_on_timer_close);
}

static void dlv_log_outcome(const struct dlv_job *j, const struct dlv_rcpt *r,
    const struct queue_delivery_record *rec, const struct smtpc_rcpt *s)
{
	char to[SMTPC_TEXT_MAX], delay[32], status[SMTPC_TEXT_MAX + 16];
	int64_t ms = j->finished_at - j->msg->arrival;
	struct buf b;

	if (ms < 0)
		ms = 0;
	snprintf(delay, sizeof(delay), "%" PRId64 ".%02d", ms / 1000, (int)(ms % 1000) / 10);
	buf_init(&b);
	buf_printf(&b, "<%s>", s->addr);
	str_copy(to, buf_cstr(&b), sizeof(to));
	buf_reset(&b);
	buf_printf(&b, "%s (%s)", queue_delivery_status_name(rec->status), rec->reply);
	str_copy(status, buf_cstr(&b), sizeof(status));
	buf_free(&b);
	log_event(LOG_LVL_INFO, j->qid, "to", to, "relay", r->relay, "delay", delay,
	    "dsn", rec->dsn, "status", status, NULL);
}

/*
 * Writer completion (loop thread): the outcomes are durable (status 0) or
 * were not recorded at all (the transaction rolled back).
 */
static void dlv_done(void *arg, int status)
{
	struct dlv_job *j = arg;
	struct dlv *d = j->d;
	size_t i;

	if (status < 0) {
		log_err(j->qid, "cannot record delivery results: %s; the message stays "
		    "queued as it was and will be delivered again", queue_strerror(status));
		/* Do not hammer the next hop while the store is unwell. */
		dlv_skip_add(d, j->msg->id);
	} else if (j->out.gone) {
		log_info(j->qid, "message was removed while being delivered; "
		    "results not recorded");
	} else {
		char dsn_qid[QUEUE_ID_TEXT_LEN + 1];

		for (i = 0; i < j->n; i++)
			if (j->rec[i].applied)
				dlv_log_outcome(j, &j->r[i], &j->rec[i], &j->sr[i]);
		if (j->out.failure_report_queued) {
			queue_id_format(j->req.failure_report_id, dsn_qid);
			log_event(LOG_LVL_INFO, j->qid, "event", "dsn", "kind", "failure",
			    "dsn_id", dsn_qid, NULL);
		}
		if (j->out.delay_report_queued) {
			queue_id_format(j->req.delay_report_id, dsn_qid);
			log_event(LOG_LVL_INFO, j->qid, "event", "dsn", "kind", "delay",
			    "dsn_id", dsn_qid, NULL);
		}
		if (j->out.failure_report_queued || j->out.delay_report_queued)
			dlv_kick(d);
	}
	dlv_job_free(j);
	if (d->stopping)
		dlv_maybe_stopped(d);
	else
		dlv_kick(d);
}

/*
 * queue_report_fn: the words of an RFC 3464 report about orig's
 * recipients marked in want (relay/dsn.c), for queue_delivery_apply to
 * queue in its own transaction. Writer thread; reads the job's config
 * snapshot, immutable while referenced.
 */
static int dlv_make_report(void *arg, struct queue_txn *txn, const struct queue_msg *m,
    const bool *want, enum queue_dsn_kind qkind, uint64_t dsn_id, int64_t now,
    struct queue_receive *out)
{
	const struct dlv_job *j = arg;
	const struct config *cfg = j->cfg;
	uint64_t scale = cfg->time_scale ? cfg->time_scale : 1;
	enum dsn_kind kind = qkind == QUEUE_DSN_DELAY ? DSN_DELAY : DSN_FAILURE;
	struct dsn_rcpt_report *rep;
	char (*codes)[16];
	struct dsn_params p;
	struct queue_msg *dm = NULL;
	size_t n = 0;
	int rc;

	rep = xcalloc(m->nrcpts ? m->nrcpts : 1, sizeof(*rep));
	codes = xcalloc(m->nrcpts ? m->nrcpts : 1, sizeof(*codes));
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct queue_rcpt *q = &m->rcpts[i];
		const char *reply = q->last_reply;

		if (!want[i])
			continue;
		rep[n].addr = q->addr;
		rep[n].orcpt = q->orcpt;
		/* last_reply starts with the enhanced code when there is one. */
		rep[n].status = NULL;
		if (reply != NULL && reply[0] >= '2' && reply[0] <= '5' && reply[1] == '.') {
			str_copyn(codes[n], reply, strcspn(reply, " "), sizeof(codes[n]));
			rep[n].status = codes[n];
		}
		rep[n].diagnostic = reply;
		rep[n].last_attempt = now;
		if (kind == DSN_DELAY)
			rep[n].retry_until = m->arrival + (int64_t)(cfg->max_queue_lifetime / scale);
		n++;
	}
	p.kind = kind;
	p.reporting_mta = cfg->hostname != NULL && cfg->hostname[0] ? cfg->hostname : "localhost";
	p.now = now;
	p.dsn_id = dsn_id;
	p.full_max = 0;
	rc = n > 0 ? dsn_build(txn, m, rep, n, &p, &out->body) : -EINVAL;
	if (rc == 0)
		rc = dsn_envelope_new(m, dsn_id, now, &out->body, &dm);
	if (rc == 0) {
		/* The record's strings move to the request (queue_receive_clear frees them). */
		out->msg = *dm;
		free(dm);
	}
	free(codes);
	free(rep);
	return rc;
}

static enum queue_outcome dlv_outcome(enum smtpc_outcome o)
{
	switch (o) {
	case SMTPC_OK: return QUEUE_OUTCOME_OK;
	case SMTPC_TEMP: return QUEUE_OUTCOME_TEMP;
	case SMTPC_PERM: return QUEUE_OUTCOME_PERM;
	case SMTPC_NONE: break;
	}
	return QUEUE_OUTCOME_NONE;
}

/* Writer thread: the job's results, recorded by queue/ (queue_delivery_apply). */
static int dlv_apply(struct queue_txn *txn, void *arg)
{
	struct dlv_job *j = arg;

	return queue_delivery_apply(txn, &j->req, &j->out);
}

/* Loop thread: what the writer is to record, from the sessions' results. */
static void dlv_job_request(struct dlv_job *j)
{
	const struct config *cfg = j->cfg;
	struct queue_delivery_result *q = &j->req;

	j->att = xcalloc(j->n ? j->n : 1, sizeof(*j->att));
	j->rec = xcalloc(j->n ? j->n : 1, sizeof(*j->rec));
	for (size_t i = 0; i < j->n; i++) {
		const struct smtpc_rcpt *sr = &j->sr[i];

		j->att[i] = (struct queue_delivery_attempt){ .idx = j->r[i].idx,
			.addr = sr->addr, .outcome = dlv_outcome(sr->outcome), .code = sr->code,
			.dsn = sr->dsn, .reply = sr->reply, .relay = j->r[i].relay };
	}
	q->id = j->msg->id;
	q->now = j->finished_at;
	q->rcpts = j->att;
	q->n = j->n;
	q->max_queue_lifetime = cfg->max_queue_lifetime;
	q->delay_warning_time = cfg->delay_warning_time;
	q->minimal_backoff_time = cfg->minimal_backoff_time;
	q->maximal_backoff_time = cfg->maximal_backoff_time;
	q->time_scale = cfg->time_scale;
	/* Ids come from the loop thread only; unused ones cost nothing. */
	q->failure_report_id = queue_next_id(j->d->store);
	q->delay_report_id = queue_next_id(j->d->store);
	q->report = dlv_make_report;
	q->report_arg = j;
	j->out.rcpts = j->rec;
}

static void dlv_job_finish(struct dlv_job *j)
{
	size_t i, verdicts = 0;

	for (i = 0; i < j->n; i++)
		if (j->sr[i].outcome != SMTPC_NONE)
			verdicts++;
	if (j->n > 0 && verdicts == 0) {
		/* Every session was aborted (stop): nothing to record. */
		struct dlv *d = j->d;

		dlv_job_free(j);
		dlv_maybe_stopped(d);
		return;
	}
	j->finished_at = time_now_ms();
	dlv_job_request(j);
	queue_writer_submit(j->d->writer, dlv_apply, dlv_done, j);
}

/* Maildir completion: its results become the group's verdicts. */
static void dlv_on_maildir_done(void *arg)
{
	struct dlv_job *j = arg;
	struct dlv_group *g = &j->groups[j->group_next - 1];
	size_t i;

	j->maildir_busy = false;
	for (i = 0; i < g->n; i++) {
		struct smtpc_rcpt *sr = &j->sr[g->start + i];
		const struct maildir_result *mr = &g->mres[i];

		switch (mr->outcome) {
		case MAILDIR_OK: sr->outcome = SMTPC_OK; sr->code = 250; break;
		case MAILDIR_PERM: sr->outcome = SMTPC_PERM; sr->code = 550; break;
		case MAILDIR_TEMP: sr->outcome = SMTPC_TEMP; sr->code = 451; break;
		case MAILDIR_NONE: sr->outcome = SMTPC_NONE; sr->code = 0; break;
		}
		str_copy(sr->dsn, mr->dsn, sizeof(sr->dsn));
		dlv_textf(sr->reply, sizeof(sr->reply), "%s %s", mr->dsn, mr->text);
	}
	dlv_job_next(j);
}

/* Starts a maildir group: 0 when its completion will run, else an error. */
static int dlv_group_maildir(struct dlv_job *j, struct dlv_group *g)
{
	size_t i;
	int rc;

	g->addrs = xcalloc(g->n, sizeof(*g->addrs));
	g->mres = xcalloc(g->n, sizeof(*g->mres));
	for (i = 0; i < g->n; i++)
		g->addrs[i] = j->sr[g->start + i].addr;
	rc = maildir_deliver(j->d->loop, j->d->store, j->r[g->start].path, j->msg,
	    g->addrs, g->n, g->mres, dlv_on_maildir_done, j);
	if (rc == 0)
		j->maildir_busy = true;
	return rc;
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
		dlv_textf(sr->reply, sizeof(sr->reply), "%s %s", dsn, text);
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
	dlv_job_next(j);
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
	dlv_job_next(j);
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
		dlv_job_next(j);
		return;
	case DNS_NXDOMAIN:
		dlv_group_fail(j, g, SMTPC_PERM, "5.1.2",
		    "domain %s does not exist (DNS: no such domain)", domain);
		dlv_job_next(j);
		return;
	case DNS_NODATA:
		break;
	case DNS_OK:
		if (res->null_mx && res->n == 0) {
			dlv_group_fail(j, g, SMTPC_PERM, "5.1.10",
			    "domain %s accepts no mail (null MX, RFC 7505)", domain);
			dlv_job_next(j);
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
			dlv_job_next(j);
			return;
		}
	} else {
		/* No MX: the domain itself is the implicit MX (RFC 5321 5.1). */
		str_copy(g->hosts[g->nhosts++], domain, sizeof(g->hosts[0]));
	}
	dlv_resolve_next_host(j, g);
}

/* Starts the DNS side of a group whose next hop is a name. */
static int dlv_group_resolve(struct dlv_job *j, struct dlv_group *g)
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
	}
	/* Reassigned first: the finished job may start other groups now. */
	dlv_job_next(done_job);
	return j2 != NULL ? &g2->req : NULL;
}

static void dlv_conn_done(void *arg, const struct smtpc_result *res)
{
	struct dlv_conn *conn = arg;
	struct dlv *d = conn->d;
	struct dlv_hopq *hq = conn->hq;
	struct dlv_job *j = conn->j, *wj;
	struct dlv_group *wg;

	hq->sessions--;
	free(conn);
	if (j != NULL) {
		j->session = NULL;
		dlv_group_relay(j, &j->groups[j->group_next - 1], res->relay);
		if (res->status < 0 && res->status != -ECANCELED)
			log_debug(j->qid, "delivery session to %s ended: %s", res->relay,
			    res->error);
		dlv_job_next(j);
	}
	/* A session that broke leaves waiting groups: give them a new one. */
	while (!d->stopping && hq->sessions < d->cfg->destination_concurrency &&
	    dlv_hopq_pop(hq, &wj, &wg)) {
		if (dlv_conn_start(hq, wj, wg) < 0) {
			dlv_group_fail(wj, wg, SMTPC_TEMP, "4.3.0", "cannot start a delivery session");
			dlv_job_next(wj);
		}
	}
	dlv_hopq_release(d, hq);
}

static int dlv_conn_start(struct dlv_hopq *hq, struct dlv_job *j, struct dlv_group *g)
{
	struct dlv_conn *conn = xcalloc(1, sizeof(*conn));
	int rc;

	conn->d = j->d;
	conn->hq = hq;
	conn->j = j;
	conn->g = g;
	g->req.next = dlv_conn_next;
	g->req.next_arg = conn;
	hq->sessions++;
	rc = smtpc_start(j->d->loop, &g->req, dlv_conn_done, conn, &conn->c);
	if (rc < 0) {
		hq->sessions--;
		free(conn);
		return rc;
	}
	j->session = conn->c;
	return 0;
}

/* Starts a group whose next hop needs no lookup, or queues it for a session. */
static int dlv_group_direct(struct dlv_job *j, struct dlv_group *g)
{
	struct dlv *d = j->d;
	struct dlv_hopq *hq = dlv_hopq_get(d, &j->r[g->start]);
	struct dlv_wait *w;
	int rc;

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

/* Stopping: groups that never got a session end without a verdict. */
static void dlv_hops_drain(struct dlv *d)
{
	struct dlv_hopq *hq, *next;
	struct dlv_job *j;
	struct dlv_group *g;

	for (hq = d->hops; hq != NULL; hq = next) {
		next = hq->next;
		while (dlv_hopq_pop(hq, &j, &g))
			dlv_job_next(j);
		dlv_hopq_release(d, hq);
	}
}

/* Starts the next group's session, or records the job when none is left. */
static void dlv_job_next(struct dlv_job *j)
{
	while (j->group_next < j->ngroups && !j->d->stopping) {
		struct dlv_group *g = &j->groups[j->group_next++];
		size_t i;
		int rc;

		if (g->hop == DLV_HOP_MAILDIR)
			rc = dlv_group_maildir(j, g);
		else if (j->r[g->start].host_is_name)
			rc = dlv_group_resolve(j, g);
		else
			rc = dlv_group_direct(j, g);
		if (rc == 0)
			return;
		/* A group that could not even start: a temporary local failure. */
		for (i = 0; i < g->n; i++) {
			struct smtpc_rcpt *s = &j->sr[g->start + i];

			s->outcome = SMTPC_TEMP;
			str_copy(s->dsn, "4.3.0", sizeof(s->dsn));
			snprintf(s->reply, sizeof(s->reply),
			    "4.3.0 cannot start a delivery session: %s", strerror(-rc));
		}
	}
	dlv_job_finish(j);
}

/*
 * Resolves each recipient's route: one domain lookup per distinct
 * domain, all in the caller's read transaction.
 */
static void dlv_resolve_routes(struct dlv_job *j, struct queue_txn *txn,
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

/*
 * One group per next hop over j's sorted recipients (those with one),
 * each with the outbound request its session will run.
 */
static void dlv_job_groups(struct dlv_job *j)
{
	struct dlv *d = j->d;
	size_t i, g, n = j->n;

	j->groups = xcalloc(n ? n : 1, sizeof(*j->groups));
	for (i = 0, g = 0; i < n; i++) {
		struct smtpc_request *rq;

		if (!j->r[i].smtp)
			continue;
		if (g > 0 && dlv_same_hop(&j->r[j->groups[g - 1].start], &j->r[i])) {
			j->groups[g - 1].n++;
			continue;
		}
		j->groups[g].start = i;
		j->groups[g].n = 1;
		j->groups[g].hop = j->r[i].hop;
		rq = &j->groups[g].req;
		rq->id = j->qid;
		rq->host = j->r[i].path[0] == '\0' ? j->r[i].host : NULL;
		rq->unix_path = j->r[i].path[0] != '\0' ? j->r[i].path : NULL;
		rq->lmtp = j->r[i].hop == DLV_HOP_LMTP;
		rq->port = j->r[i].port;
		rq->helo_name = j->cfg->hostname != NULL && j->cfg->hostname[0] != '\0' ?
		    j->cfg->hostname : "localhost";
		rq->tls = d->client_tls;
		rq->require_tls = j->r[i].require_tls;
		rq->store = d->store;
		rq->msg = j->msg;
		g++;
	}
	j->ngroups = g;
	for (g = 0; g < j->ngroups; g++) {
		j->groups[g].req.rcpts = &j->sr[j->groups[g].start];
		j->groups[g].req.nrcpts = j->groups[g].n;
	}

}

/*
 * Loads message id (short read transaction), builds its job and starts
 * it. Returns false when the message could not be taken on.
 */
static bool dlv_job_start(struct dlv *d, uint64_t id)
{
	struct queue_txn *txn;
	struct queue_msg *m;
	struct dlv_job *j;
	struct dlv_rcpt **by, *sorted;
	struct smtpc_rcpt *ssorted;
	int64_t now = time_now_ms();
	size_t i, n = 0;
	char qid[QUEUE_ID_TEXT_LEN + 1];
	int rc;

	queue_id_format(id, qid);
	rc = queue_txn_begin(d->store, false, &txn);
	if (rc < 0) {
		log_err(NULL, "delivery: cannot read the queue: %s", queue_strerror(rc));
		return false;
	}
	rc = queue_msg_get(txn, id, &m);
	if (rc < 0) {
		queue_txn_abort(txn);
		/* -ENOENT: deleted since the schedule was read (govrelayctl). */
		if (rc != -ENOENT)
			log_err(qid, "delivery: cannot load the message: %s",
			    queue_strerror(rc));
		dlv_skip_add(d, id);
		return false;
	}
	if (m->held) {
		queue_txn_abort(txn);
		queue_msg_free(m);
		return false;
	}

	j = xcalloc(1, sizeof(*j));
	j->d = d;
	j->cfg = cfg_ref(d->cfg);
	j->msg = m;
	str_copy(j->qid, qid, sizeof(j->qid));
	for (i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state == QUEUE_RCPT_PENDING && m->rcpts[i].next_attempt <= now)
			n++;
	j->n = n;
	j->r = xcalloc(n ? n : 1, sizeof(*j->r));
	j->sr = xcalloc(n ? n : 1, sizeof(*j->sr));
	for (i = 0, n = 0; i < m->nrcpts; i++) {
		const struct queue_rcpt *q = &m->rcpts[i];

		if (q->state != QUEUE_RCPT_PENDING || q->next_attempt > now)
			continue;
		j->r[n].idx = i;
		j->r[n].domain = dlv_domain_of(q->addr);
		j->sr[n].addr = q->addr;
		j->sr[n].orcpt = q->orcpt;
		j->sr[n].notify = q->notify;
		n++;
	}
	by = xcalloc(n ? n : 1, sizeof(*by));
	for (i = 0; i < n; i++)
		by[i] = &j->r[i];
	dlv_resolve_routes(j, txn, by);
	queue_txn_abort(txn);

	/* Reorder so that each next hop's recipients are contiguous. */
	qsort(by, n, sizeof(*by), dlv_cmp_route);
	sorted = xcalloc(n ? n : 1, sizeof(*sorted));
	ssorted = xcalloc(n ? n : 1, sizeof(*ssorted));
	for (i = 0; i < n; i++) {
		sorted[i] = *by[i];
		ssorted[i] = j->sr[by[i] - j->r];
	}
	free(by);
	free(j->r);
	free(j->sr);
	j->r = sorted;
	j->sr = ssorted;

	dlv_job_groups(j);
	if (n == 0)
		/*
		 * Scheduled yet nothing due: the schedule entry is out of step.
		 * The job's put sets it right; until then leave the id alone.
		 */
		dlv_skip_add(d, id);
	j->next = d->jobs;
	if (d->jobs != NULL)
		d->jobs->prev = j;
	d->jobs = j;
	d->njobs++;
	dlv_job_next(j);
	return true;
}

/* ----------------------------------------------------------- scheduler */

static void dlv_pass(struct dlv *d)
{
	struct queue_txn *txn;
	uint64_t limit = d->cfg->delivery_concurrency ? d->cfg->delivery_concurrency : 1;
	size_t want, n = 0, i;
	int64_t now = time_now_ms(), next_due = -1;
	uint64_t sleep = DLV_MAX_SLEEP_MS;
	int rc;

	if (d->stopping)
		return;
	if (d->njobs >= limit)
		goto arm; /* a completion runs the next pass */
	/*
	 * Due ids come oldest first and include messages already in flight
	 * or set aside; asking for that many more than we can start means a
	 * startable one is never hidden behind them.
	 */
	want = (size_t)limit + DLV_SKIP_MAX;
	if (want > d->ids_cap) {
		d->ids = xreallocarray(d->ids, want, sizeof(*d->ids));
		d->ids_cap = want;
	}
	rc = queue_txn_begin(d->store, false, &txn);
	if (rc == 0) {
		rc = queue_schedule_due(txn, now, d->ids, want, &n, &next_due);
		queue_txn_abort(txn);
	}
	if (rc < 0) {
		log_err(NULL, "delivery: cannot read the schedule: %s", queue_strerror(rc));
		sleep = 5000;
		goto arm;
	}
	for (i = 0; i < n && d->njobs < limit && !d->stopping; i++) {
		if (dlv_is_in_flight(d, d->ids[i]) || dlv_is_skipped(d, d->ids[i]))
			continue;
		(void)dlv_job_start(d, d->ids[i]);
	}
	if (next_due > now && (uint64_t)(next_due - now) < sleep)
		sleep = (uint64_t)(next_due - now);
arm:
	dlv_kick_later(d, sleep);
}

static void dlv_on_timer(uv_timer_t *t)
{
	dlv_pass(t->data);
}

static void dlv_kick_later(struct dlv *d, uint64_t ms)
{
	if (d->stopping)
		return;
	uv_timer_start(&d->timer, dlv_on_timer, ms, 0);
}

/* --------------------------------------------------------- entry points */

int dlv_start(uv_loop_t *loop, struct config *cfg, struct queue_store *store,
    struct queue_writer *writer, struct tlsio_ctx *client_tls, struct dns *dns,
    struct dlv **out)
{
	struct dlv *d = xcalloc(1, sizeof(*d));
	int rc;

	d->loop = loop;
	d->dns = dns;
	d->store = store;
	d->writer = writer;
	d->client_tls = client_tls;
	rc = uv_timer_init(loop, &d->timer);
	if (rc < 0) {
		free(d);
		*out = NULL;
		return rc;
	}
	d->timer.data = d;
	d->cfg = cfg_ref(cfg);
	/*
	 * Nothing to rebuild in memory: the store's schedule is the index,
	 * so messages queued before a restart come due at their time. The
	 * first pass runs on the next loop iteration.
	 */
	dlv_kick(d);
	*out = d;
	return 0;
}

void dlv_kick(struct dlv *d)
{
	/* A zero timeout runs the pass from the loop, never from the caller. */
	dlv_kick_later(d, 0);
}

void dlv_set_config(struct dlv *d, struct config *cfg)
{
	struct config *old = d->cfg;

	d->cfg = cfg_ref(cfg);
	cfg_unref(old);
	/* delivery_concurrency may have grown. */
	dlv_kick(d);
}

void dlv_stop(struct dlv *d, void (*cb)(void *arg), void *arg)
{
	struct dlv_job *j, *next;

	if (d->stopping)
		return;
	d->stopping = true;
	d->stop_cb = cb;
	d->stop_arg = arg;
	uv_timer_stop(&d->timer);
	dlv_hops_drain(d);
	/*
	 * Sessions close now; their completions come back through
	 * dlv_conn_done, record what verdicts they already had (a
	 * recipient delivered before the abort must not be sent twice) and
	 * leave the rest pending.
	 */
	for (j = d->jobs; j != NULL; j = next) {
		next = j->next;
		if (j->session != NULL) {
			smtpc_abort(j->session);
		} else if (j->dns_q != NULL) {
			/* Nothing was sent yet: the job records what it has and ends. */
			dns_cancel(j->dns_q);
			j->dns_q = NULL;
			dlv_job_next(j);
		}
	}
	dlv_maybe_stopped(d);
}
