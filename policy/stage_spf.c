/*
 * stage_spf: the "spf" row of policy/checks.c (issue 10): SPF (RFC 7208)
 * on the mx role for clients outside trusted_networks.
 *   MAIL  evaluates the MAIL FROM identity (the HELO identity for the
 *         null sender) off the loop, records the result in the
 *         transaction (authres, an audit note, a Received-SPF field) and
 *         decides: temperror is 451 4.7.24 (RFC 7372); fail for a sender
 *         domain of ours is 550 5.7.23; anything else continues
 *         (permerror is recorded and tagged, not refused: a broken record
 *         of a stranger is no proof of forgery).
 *   RCPT  after a fail for a domain not ours, each recipient's agency
 *         decides (tenant policy spf_fail_action): reject is 550 5.7.23
 *         for that recipient, tag accepts and lets the headers say fail.
 *
 * libspf2 is synchronous (policy/spf.c), so the evaluation runs on the
 * libuv thread pool (uv_queue_work). Its DNS questions come back to the
 * loop thread: the worker posts one question at a time in the job and
 * wakes the loop (uv_async_t), the loop asks the daemon's resolver
 * (policy_resolve) and hands the answer back under the job's mutex; the
 * worker waits on a condition variable with a deadline (SS_LOOKUP_MS per
 * question, SS_EVAL_MS for the whole evaluation), after which the
 * question is a DNS failure (temperror). The loop never waits. The pool
 * is shared with maildir deliveries, AUTH and control commands, so SPF
 * jobs hold at most half of its threads; the others wait in a queue of
 * the check (in order, and within the same deadline).
 *
 * Results are kept per (client address, HELO name, sender) for as long as
 * every DNS answer they were drawn from stays valid (the shortest TTL,
 * at most SS_CACHE_MAX_S), so a client sending many messages is evaluated
 * once: the same inputs and the same DNS data give the same result
 * (RFC 7208 4.3-4.6 depend on nothing else; the receiver name is fixed).
 * Temperror is never kept.
 *
 * Entry points: stage_spf_new/free, stage_spf_run, stage_spf_tx_new,
 * stage_spf_tx_free.
 * OWNERSHIP: a job owns copies of everything the worker reads; it lives
 * until its work is done, its async handle is closed and no resolver
 * callback is pending, whichever comes last (the transaction may end
 * first: the job is then detached from it, and the engine's call, which
 * lives until completed, still gets its one completion from after_work).
 * THREADS: loop thread, except ss_work and ss_lookup (a pool thread),
 * which touch only the job, the lookup slot under job->mu.
 * ERRORS: DNS trouble is temperror (451 4.7.24); a store failure when
 * asking whether a domain is ours is 451 4.3.0.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <uv.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/authres.h"
#include "policy/check.h"
#include "policy/spf.h"
#include "queue/tenancy.h"

policy_check_new_fn stage_spf_new;
policy_check_free_fn stage_spf_free;
policy_check_run_fn stage_spf_run;
policy_check_tx_new_fn stage_spf_tx_new;
policy_check_tx_free_fn stage_spf_tx_free;

#define SS_LOOKUP_MS 5000u   /* one question */
#define SS_EVAL_MS 12000u    /* the whole evaluation (the row's timeout is longer) */

static const char ss_rule[] = "spf";

/* Results kept (direct-mapped: a colliding key replaces the older entry). */
#define SS_CACHE_SLOTS 1024u
#define SS_CACHE_MAX_S 600u

struct ss_cached {
	char *key;                 /* "ip\nhelo\nsender"; NULL: empty */
	uint64_t expires;          /* time_mono_ms */
	struct spf_outcome out;
};

/*
 * The libuv pool is shared (maildir deliveries, AUTH hashing, control
 * commands): SPF jobs, which may wait seconds on a silent name server,
 * hold at most half of its threads; the others wait here, in order.
 */
struct stage_spf {
	bool enabled;
	char receiver[256];
	unsigned running, max_running;
	struct ss_job *qhead, *qtail;
	struct ss_cached *cache;   /* SS_CACHE_SLOTS, made on first use */
};

struct ss_job;

/* Per transaction. */
struct ss_tx {
	struct policy_tx *tx;
	struct ss_job *job;        /* evaluation in flight, or NULL */
	bool done;                 /* out is the transaction's result */
	struct spf_outcome out;
};

enum ss_slot { SS_IDLE, SS_WANT, SS_ASKED, SS_DONE };

struct ss_job {
	uv_work_t work;
	uv_async_t async;
	struct stage_spf *st;
	struct ss_job *qnext;      /* waiting for a pool thread */
	uv_loop_t *loop;
	struct policy *p;
	struct policy_call *call;
	struct ss_tx *stx;         /* NULL once the transaction ended */
	char *ip, *helo, *sender, *receiver;
	struct spf_outcome out;
	uint64_t deadline;         /* time_mono_ms */
	/* The lookup slot: the worker's one question, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	enum ss_slot slot;
	unsigned seq;
	enum policy_dns_kind kind;
	char name[256];
	struct spf_dns_reply reply;
	/*
	 * The identity's TXT is asked on the loop when the job is made, as
	 * the slot's first question (seq 1): the worker's first question is
	 * that one, and finds it answered or on its way, without a round
	 * trip through the loop (a record of ip4/ip6 terms needs none at all).
	 */
	bool prefetched;
	/* Loop thread only. */
	unsigned pending;          /* resolver callbacks still to come */
	bool work_done, closed;
};

/* One question handed to the resolver: its answer finds the job. */
struct ss_ask {
	struct ss_job *job;
	unsigned seq;
};

/* Half of libuv's pool (UV_THREADPOOL_SIZE, 4 by default), at least one. */
static unsigned ss_pool_share(void)
{
	const char *env = getenv("UV_THREADPOOL_SIZE");
	long n = env != NULL ? strtol(env, NULL, 10) : 4;

	if (n < 1)
		n = 4;
	if (n > 1024)
		n = 1024;
	return n / 2 > 0 ? (unsigned)(n / 2) : 1;
}

static void ss_job_maybe_free(struct ss_job *job);

int stage_spf_new(const struct config *cfg, void **state, char *err, size_t errlen)
{
	struct stage_spf *st = xcalloc(1, sizeof *st);

	(void)err;
	(void)errlen;
	st->enabled = cfg != NULL ? cfg->spf : true;
	st->max_running = ss_pool_share();
	str_copy(st->receiver, cfg != NULL && cfg->hostname != NULL ? cfg->hostname :
	    "localhost", sizeof st->receiver);
	*state = st;
	return 0;
}

void stage_spf_free(void *state)
{
	struct stage_spf *st = state;

	if (st == NULL)
		return;
	/* Jobs that never started (the loop has ended): their calls die with it. */
	while (st->qhead != NULL) {
		struct ss_job *job = st->qhead;

		st->qhead = job->qnext;
		if (job->stx != NULL)
			job->stx->job = NULL;
		job->work_done = true;
		job->closed = true;
		ss_job_maybe_free(job);
	}
	if (st->cache != NULL)
		for (size_t i = 0; i < SS_CACHE_SLOTS; i++)
			free(st->cache[i].key);
	free(st->cache);
	free(st);
}

/* ---------------------------------------------------------- the cache */

static char *ss_cache_key(const char *ip, const char *helo, const char *sender)
{
	struct buf b;

	buf_init(&b);
	buf_printf(&b, "%s\n%s\n%s", ip, helo, sender);
	return buf_steal(&b, NULL);
}

static struct ss_cached *ss_cache_slot(struct stage_spf *st, const char *key)
{
	if (st->cache == NULL)
		st->cache = xcalloc(SS_CACHE_SLOTS, sizeof *st->cache);
	return &st->cache[str_hash(key) % SS_CACHE_SLOTS];
}

/* The kept result for key, or NULL. */
static const struct spf_outcome *ss_cache_get(struct stage_spf *st, const char *key)
{
	struct ss_cached *c = ss_cache_slot(st, key);

	if (c->key == NULL || strcmp(c->key, key) != 0 || time_mono_ms() >= c->expires)
		return NULL;
	return &c->out;
}

static void ss_cache_put(struct stage_spf *st, const char *key, const struct spf_outcome *o)
{
	struct ss_cached *c;

	if (o->ttl == 0 || o->result == AUTHRES_TEMPERROR)
		return;
	c = ss_cache_slot(st, key);
	free(c->key);
	c->key = xstrdup(key);
	c->out = *o;
	c->expires = time_mono_ms() + 1000u * (uint64_t)(o->ttl < SS_CACHE_MAX_S ? o->ttl :
	    SS_CACHE_MAX_S);
}

void *stage_spf_tx_new(void *state, struct policy_tx *tx)
{
	const struct stage_spf *st = state;
	struct ss_tx *stx;

	if (st == NULL || !st->enabled)
		return NULL;
	stx = xcalloc(1, sizeof *stx);
	stx->tx = tx;
	return stx;
}

void stage_spf_tx_free(void *txstate)
{
	struct ss_tx *stx = txstate;

	if (stx == NULL)
		return;
	if (stx->job != NULL)
		stx->job->stx = NULL;
	free(stx);
}

/* ------------------------------------------------------------ the job */

static void ss_job_destroy(struct ss_job *job)
{
	spf_dns_reply_clear(&job->reply);
	pthread_cond_destroy(&job->cv);
	pthread_mutex_destroy(&job->mu);
	free(job->ip);
	free(job->helo);
	free(job->sender);
	free(job->receiver);
	free(job);
}

static void ss_job_maybe_free(struct ss_job *job)
{
	if (job->work_done && job->closed && job->pending == 0)
		ss_job_destroy(job);
}

static void ss_async_closed(uv_handle_t *h)
{
	struct ss_job *job = h->data;

	job->closed = true;
	ss_job_maybe_free(job);
}

/* The resolver's answer (loop thread): into the slot if still wanted. */
static void ss_answer(void *arg, const struct policy_dns_answer *ans)
{
	struct ss_ask *a = arg;
	struct ss_job *job = a->job;

	pthread_mutex_lock(&job->mu);
	if (job->seq == a->seq && job->slot == SS_ASKED) {
		spf_dns_reply_set(&job->reply, ans);
		job->slot = SS_DONE;
		pthread_cond_signal(&job->cv);
	}
	pthread_mutex_unlock(&job->mu);
	free(a);
	job->pending--;
	ss_job_maybe_free(job);
}

/* The worker asked (loop thread): start the lookup. */
static void ss_async_cb(uv_async_t *h)
{
	struct ss_job *job = h->data;
	struct ss_ask *a;
	enum policy_dns_kind kind;
	char name[sizeof job->name];
	int rc;

	pthread_mutex_lock(&job->mu);
	if (job->slot != SS_WANT) {
		pthread_mutex_unlock(&job->mu);
		return;
	}
	job->slot = SS_ASKED;
	kind = job->kind;
	memcpy(name, job->name, sizeof name);
	a = xmalloc(sizeof *a);
	a->job = job;
	a->seq = job->seq;
	pthread_mutex_unlock(&job->mu);
	job->pending++;
	rc = policy_resolve(job->p, kind, name, ss_answer, a);
	if (rc < 0) {
		/* No callback will come: answer here. */
		struct policy_dns_answer ans = {
			.status = rc == -EINVAL ? POLICY_DNS_NXDOMAIN : POLICY_DNS_TEMPFAIL,
			.error = rc == -EINVAL ? "" : "no resolver",
		};

		ss_answer(a, &ans);
	}
}

/* Absolute CLOCK_MONOTONIC time ms from now. */
static void ss_abstime(uint64_t ms, struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ms / 1000);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* spf_lookup_fn on the pool thread: one question through the loop. */
static void ss_lookup(void *arg, enum policy_dns_kind kind, const char *name,
    struct spf_dns_reply *out)
{
	struct ss_job *job = arg;
	uint64_t now = time_mono_ms(), wait;
	struct timespec until;

	if (now >= job->deadline) {
		out->status = POLICY_DNS_TEMPFAIL;
		str_copy(out->error, "the SPF evaluation ran out of time", sizeof out->error);
		return;
	}
	wait = job->deadline - now < SS_LOOKUP_MS ? job->deadline - now : SS_LOOKUP_MS;
	ss_abstime(wait, &until);
	pthread_mutex_lock(&job->mu);
	if (job->prefetched && kind == job->kind && strcasecmp(name, job->name) == 0) {
		/* The loop asked this one when the job was made (ss_prefetch). */
		job->prefetched = false;
	} else {
		job->prefetched = false;
		job->seq++;
		job->kind = kind;
		str_copy(job->name, name, sizeof job->name);
		job->slot = SS_WANT;
		pthread_mutex_unlock(&job->mu);
		uv_async_send(&job->async);
		pthread_mutex_lock(&job->mu);
	}
	while (job->slot != SS_DONE) {
		if (pthread_cond_timedwait(&job->cv, &job->mu, &until) == ETIMEDOUT)
			break;
	}
	if (job->slot == SS_DONE) {
		*out = job->reply;
		memset(&job->reply, 0, sizeof job->reply);
	} else {
		out->status = POLICY_DNS_TEMPFAIL;
		snprintf(out->error, sizeof out->error, "no answer within %u ms",
		    (unsigned)wait);
	}
	/* A late answer finds another state (or seq) and is dropped. */
	job->slot = SS_IDLE;
	pthread_mutex_unlock(&job->mu);
}

static void ss_work(uv_work_t *w)
{
	struct ss_job *job = w->data;
	struct spf_query q = { job->ip, job->helo, job->sender, job->receiver };

	spf_evaluate(&q, ss_lookup, job, &job->out);
}

/* ------------------------------------------------------------ verdicts */

/* Is domain one of ours? 1 yes, 0 no, negative errno on a store failure. */
static int ss_domain_ours(struct policy_call *call, const char *domain)
{
	struct queue_txn *txn = NULL;
	struct queue_domain *dom = NULL;
	char name[AUTHRES_DOMAIN_MAX + 1];
	size_t len;
	int rc;

	len = str_copy(name, domain, sizeof name);
	if (len > 0 && name[len - 1] == '.')
		name[len - 1] = '\0';
	str_lower(name);
	rc = queue_txn_begin(policy_call_store(call), false, &txn);
	if (rc < 0)
		return rc;
	rc = queue_domain_get(txn, name, &dom);
	queue_domain_free(dom);
	queue_txn_abort(txn);
	if (rc == -ENOENT)
		return 0;
	return rc < 0 ? rc : 1;
}

/* The MAIL stage's verdict for an outcome. */
static void ss_mail_verdict(struct policy_call *call, const struct spf_outcome *o,
    const char *ip, struct verdict *v)
{
	int ours;

	policy_verdict_set(v, VERDICT_CONTINUE, 0, "", "spf %s", spf_result_name(o->result));
	if (o->result == AUTHRES_TEMPERROR) {
		policy_verdict_set(v, VERDICT_TEMPFAIL, 451, "4.7.24",
		    "SPF check of %s could not be completed (%s), try again later",
		    o->domain, o->reason);
	} else if (o->result == AUTHRES_FAIL) {
		ours = ss_domain_ours(call, o->domain);
		if (ours < 0)
			policy_verdict_set(v, VERDICT_TEMPFAIL, 451, "4.3.0",
			    "Temporary policy failure, try again later");
		else if (ours > 0)
			policy_verdict_set(v, VERDICT_REJECT, 550, "5.7.23",
			    "SPF fail: %s may not send mail for %s, a domain of ours", ip,
			    o->domain);
	}
	v->rule = ss_rule;
}

/* Into the transaction: authres, the audit note, Received-SPF. */
static void ss_record(struct ss_tx *stx, const struct spf_query *q, const struct spf_outcome *o)
{
	struct authres *ar = policy_tx_authres(stx->tx);
	char field[2048];

	stx->out = *o;
	stx->done = true;
	if (ar != NULL) {
		ar->spf.result = o->result;
		ar->spf.helo_identity = o->helo_identity;
		str_copy(ar->spf.domain, o->domain, sizeof ar->spf.domain);
		str_copy(ar->spf.identity, o->identity, sizeof ar->spf.identity);
		str_copy(ar->spf.reason, o->reason, sizeof ar->spf.reason);
	}
	policy_tx_note(stx->tx, "spf", "%s", spf_result_name(o->result));
	policy_tx_note(stx->tx, "spf_identity", "%s %s", o->helo_identity ? "helo" : "mailfrom",
	    o->domain);
	policy_tx_note(stx->tx, "spf_reason", "%s", o->reason);
	if (spf_received_field(q, o, field, sizeof field) > 0)
		policy_tx_add_header(stx->tx, field);
}

static void ss_pump(struct stage_spf *st);

static void ss_after_work(uv_work_t *w, int status)
{
	struct ss_job *job = w->data;
	struct stage_spf *st = job->st;
	struct verdict v;

	if (status != 0) {
		/* Cancelled (only at shutdown): DNS trouble, as far as SPF goes. */
		job->out.result = AUTHRES_TEMPERROR;
		str_copy(job->out.reason, "the evaluation was cancelled", sizeof job->out.reason);
	}
	job->work_done = true;
	st->running--;
	if (status == 0) {
		char *key = ss_cache_key(job->ip, job->helo, job->sender);

		ss_cache_put(st, key, &job->out);
		free(key);
	}
	if (job->stx != NULL) {
		struct spf_query q = { job->ip, job->helo, job->sender, job->receiver };

		job->stx->job = NULL;
		ss_record(job->stx, &q, &job->out);
	}
	ss_mail_verdict(job->call, &job->out, job->ip, &v);
	if (!uv_is_closing((uv_handle_t *)&job->async))
		uv_close((uv_handle_t *)&job->async, ss_async_closed);
	policy_call_complete(job->call, &v);
	ss_job_maybe_free(job);
	ss_pump(st);
}

/* Completes a job that never ran (verdict v) and frees it. */
static void ss_job_drop(struct ss_job *job, const struct verdict *v)
{
	struct policy_call *call = job->call;

	if (job->stx != NULL)
		job->stx->job = NULL;
	/* Never started; a prefetch answer may still be due (then it frees). */
	job->work_done = true;
	job->closed = true;
	ss_job_maybe_free(job);
	policy_call_complete(call, v);
}

/*
 * Hands a job to the pool: 0, or a libuv error, nothing started and the
 * job left to ss_job_maybe_free (now, or when its handle has closed).
 */
static int ss_start(struct ss_job *job)
{
	int rc = uv_async_init(job->loop, &job->async, ss_async_cb);

	if (rc < 0) {
		job->work_done = true;
		job->closed = true;
		return rc;
	}
	rc = uv_queue_work(job->loop, &job->work, ss_work, ss_after_work);
	if (rc < 0) {
		/* Closed before any callback could need the job: it goes on close. */
		job->work_done = true;
		uv_close((uv_handle_t *)&job->async, ss_async_closed);
		return rc;
	}
	job->st->running++;
	return 0;
}

/* Starts waiting jobs while the pool share allows. */
static void ss_pump(struct stage_spf *st)
{
	while (st->qhead != NULL && st->running < st->max_running) {
		struct ss_job *job = st->qhead;
		struct verdict v;
		int rc;

		st->qhead = job->qnext;
		if (st->qhead == NULL)
			st->qtail = NULL;
		job->qnext = NULL;
		policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.7.24",
		    "SPF check could not be completed in time, try again later");
		v.rule = ss_rule;
		if (job->stx == NULL) {
			/* The transaction ended while it waited: nothing to decide. */
			policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "spf not checked");
			v.rule = ss_rule;
			ss_job_drop(job, &v);
		} else if (time_mono_ms() >= job->deadline) {
			ss_job_drop(job, &v);
		} else if ((rc = ss_start(job)) < 0) {
			struct policy_call *call = job->call;

			log_warn(NULL, "spf: cannot start an evaluation: %s", uv_strerror(rc));
			job->stx->job = NULL;
			ss_job_maybe_free(job);
			policy_call_complete(call, &v);
		}
	}
}

/* Queues a job for a pool thread and starts what the share allows. */
static void ss_enqueue(struct ss_job *job)
{
	struct stage_spf *st = job->st;

	if (st->qtail != NULL)
		st->qtail->qnext = job;
	else
		st->qhead = job;
	st->qtail = job;
	ss_pump(st);
}

/*
 * Asks the identity's TXT now, as the slot's first question (the job is
 * not started yet: no worker reads the slot). Any failure here only
 * means the worker asks it itself.
 */
static void ss_prefetch(struct ss_job *job)
{
	const char *at = strrchr(job->sender, '@');
	const char *dom = job->sender[0] != '\0' ? (at != NULL ? at + 1 : "") : job->helo;
	struct ss_ask *a;

	if (!spf_domain_ok(dom) || strlen(dom) >= sizeof job->name)
		return;
	a = xmalloc(sizeof *a);
	a->job = job;
	a->seq = job->seq = 1;
	job->kind = POLICY_DNS_TXT;
	str_copy(job->name, dom, sizeof job->name);
	job->slot = SS_ASKED;
	job->prefetched = true;
	job->pending++;
	if (policy_resolve(job->p, POLICY_DNS_TXT, dom, ss_answer, a) == 0)
		return;
	job->pending--;
	job->slot = SS_IDLE;
	job->prefetched = false;
	free(a);
}

static void ss_mail(struct policy_call *call, const struct policy_request *req,
    struct stage_spf *st, struct ss_tx *stx)
{
	struct spf_query q = { req->client_addr != NULL ? req->client_addr : "",
		req->helo != NULL ? req->helo : "", req->sender != NULL ? req->sender : "",
		st->receiver };
	char *key = ss_cache_key(q.client_ip, q.helo, q.sender);
	const struct spf_outcome *kept = ss_cache_get(st, key);
	struct ss_job *job;
	pthread_condattr_t ca;

	free(key);
	if (kept != NULL) {
		struct spf_outcome o = *kept;   /* the slot may be replaced meanwhile */
		struct verdict v;

		ss_record(stx, &q, &o);
		ss_mail_verdict(call, &o, q.client_ip, &v);
		policy_call_complete(call, &v);
		return;
	}
	job = xcalloc(1, sizeof *job);
	job->st = st;
	job->loop = policy_call_loop(call);
	job->p = policy_call_policy(call);
	job->call = call;
	job->stx = stx;
	job->ip = xstrdup(req->client_addr != NULL ? req->client_addr : "");
	job->helo = xstrdup(req->helo != NULL ? req->helo : "");
	job->sender = xstrdup(req->sender != NULL ? req->sender : "");
	job->receiver = xstrdup(st->receiver);
	/* From now, queueing included: the verdict comes before the row's timeout. */
	job->deadline = time_mono_ms() + SS_EVAL_MS;
	pthread_mutex_init(&job->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&job->cv, &ca);
	pthread_condattr_destroy(&ca);
	job->work.data = job;
	job->async.data = job;
	stx->job = job;
	ss_prefetch(job);
	ss_enqueue(job);
}

/* A fail for a domain not ours: the recipient's agency decides. */
static void ss_rcpt(struct policy_call *call, const struct policy_request *req,
    const struct ss_tx *stx, struct verdict *v)
{
	struct queue_txn *txn = NULL;
	char *tenant = NULL;
	char action[TENANCY_POLICY_VALUE_MAX + 1] = "reject";
	int rc;

	if (!stx->done || stx->out.result != AUTHRES_FAIL)
		return;
	rc = queue_txn_begin(policy_call_store(call), false, &txn);
	if (rc == 0) {
		rc = req->rcpt_domain != NULL && req->rcpt_domain[0] != '\0' ?
		    queue_tenant_of_domain(txn, req->rcpt_domain, &tenant) : -ENOENT;
		if (rc == -ENOENT)
			rc = 0;
		if (rc == 0)
			rc = queue_policy_word(txn, tenant, "spf_fail_action", action,
			    sizeof action, NULL, 0);
		queue_txn_abort(txn);
	}
	free(tenant);
	if (rc < 0) {
		log_warn(req->session_id, "spf: cannot read spf_fail_action for %s: %s",
		    req->rcpt_domain, queue_strerror(rc));
		policy_verdict_set(v, VERDICT_TEMPFAIL, 451, "4.3.0",
		    "Temporary policy failure, try again later");
	} else if (strcmp(action, "tag") != 0) {
		policy_verdict_set(v, VERDICT_REJECT, 550, "5.7.23",
		    "SPF fail: %s may not send mail for %s", req->client_addr,
		    stx->out.domain);
	}
	v->rule = ss_rule;
}

void stage_spf_run(struct policy_call *call, const struct policy_request *req, void *state)
{
	struct stage_spf *st = state;
	struct ss_tx *stx = policy_call_tx_state(call);
	struct verdict v;

	policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "spf not checked");
	v.rule = ss_rule;
	if (st == NULL || !st->enabled || req->client_trusted || stx == NULL) {
		policy_call_complete(call, &v);
		return;
	}
	if (req->stage == POLICY_STAGE_MAIL && stx->job == NULL) {
		ss_mail(call, req, st, stx);
		return;
	}
	if (req->stage == POLICY_STAGE_RCPT)
		ss_rcpt(call, req, stx, &v);
	policy_call_complete(call, &v);
}
