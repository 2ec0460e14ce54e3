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
 * Routes (a domain's record, INTERFACE.md; delivery_hop.c parses them,
 * looks next hops up and shares sessions): smtp:HOST:PORT and
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
 * Entry points: dlv_start, dlv_kick, dlv_set_config, dlv_stop. The
 * structures both files share are in delivery_int.h.
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
#include "relay/delivery_int.h"
#include "relay/dns.h"
#include "relay/dsn.h"
#include "relay/maildir.h"
#include "relay/smtp_client.h"
#include "relay/tlsio.h"

/* Longest sleep: external changes (govrelayctl) are seen within this. */
#define DLV_MAX_SLEEP_MS 60000
/* A message we could not load or record is left alone this long. */
#define DLV_SKIP_MS 60000

static void dlv_kick_later(struct dlv *d, uint64_t ms);

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
void dlv__textf(char *dst, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(dst, len, fmt, ap);
	va_end(ap);
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

void dlv__maybe_stopped(struct dlv *d)
{
	if (!d->stopping || d->closing || d->njobs > 0 || d->nsessions > 0)
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
		dlv__maybe_stopped(d);
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
		dlv__maybe_stopped(d);
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
		dlv__textf(sr->reply, sizeof(sr->reply), "%s %s", mr->dsn, mr->text);
	}
	dlv__job_next(j);
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

/* Starts the next group's session, or records the job when none is left. */
void dlv__job_next(struct dlv_job *j)
{
	while (j->group_next < j->ngroups && !j->d->stopping) {
		struct dlv_group *g = &j->groups[j->group_next++];
		size_t i;
		int rc;

		if (g->hop == DLV_HOP_MAILDIR)
			rc = dlv_group_maildir(j, g);
		else if (j->r[g->start].host_is_name)
			rc = dlv__group_resolve(j, g);
		else
			rc = dlv__group_direct(j, g);
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
		if (g > 0 && dlv__same_hop(&j->r[j->groups[g - 1].start], &j->r[i])) {
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
		j->r[n].domain = dlv__domain_of(q->addr);
		j->sr[n].addr = q->addr;
		j->sr[n].orcpt = q->orcpt;
		j->sr[n].notify = q->notify;
		n++;
	}
	by = xcalloc(n ? n : 1, sizeof(*by));
	for (i = 0; i < n; i++)
		by[i] = &j->r[i];
	dlv__resolve_routes(j, txn, by);
	queue_txn_abort(txn);

	/* Reorder so that each next hop's recipients are contiguous. */
	qsort(by, n, sizeof(*by), dlv__cmp_route);
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
	dlv__job_next(j);
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
	dlv__hops_drain(d);
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
			dlv__job_next(j);
		}
	}
	dlv__maybe_stopped(d);
}
