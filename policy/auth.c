/*
 * auth: credential checks with failure throttling and lockout (see
 * auth.h for the rules).
 *
 * One check goes: per-address throttle test (loop) -> user lookup and
 * scrypt verification (thread pool) -> failure or success bookkeeping in
 * the store with its audit record (writer thread, one transaction) ->
 * delay timer when it failed (loop) -> done (loop).
 *
 * Entry points: auth_guard_new, auth_guard_free, auth_check.
 * OWNERSHIP: the guard owns the per-address table; each check owns its
 * request until done has run and its timer has closed. The password copy
 * is wiped as soon as the verification is over.
 * THREADS: everything on the loop thread except auth_work (thread pool:
 * reads the store in its own read transaction, touches only its request)
 * and auth_record_apply (writer thread: touches only its request).
 * ERRORS: a store failure is a tempfail (454 4.7.0), never an accept.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "common/addr.h"
#include "common/log.h"
#include "common/passwd.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/auth.h"
#include "queue/audit_event.h"
#include "queue/tenancy.h"

#define AUTH_IP_BUCKETS 4096
#define AUTH_IP_MAX 65536     /* addresses remembered; beyond, sweep then stop tracking */
#define AUTH_IP_LEN 64

struct auth_ip {
	struct auth_ip *next;
	char ip[AUTH_IP_LEN];
	uint32_t failures;
	uint64_t last_ms;         /* monotonic */
};

struct auth_guard {
	uv_loop_t *loop;
	struct queue_store *store;
	struct queue_writer *writer;
	struct auth_ip *buckets[AUTH_IP_BUCKETS];
	size_t nips;
};

struct auth_request {
	struct auth_guard *g;
	const struct config *cfg;
	uv_work_t work;
	uv_timer_t timer;
	auth_done_fn *done;
	void *arg;
	char ip[AUTH_IP_LEN];
	char listener[16];
	char user[ADDR_MAX + 1];       /* canonical when it parsed, else as given (cut) */
	bool user_valid;
	char pass[PASSWD_MAX + 1];
	size_t passlen;
	/* Set by auth_work. */
	bool user_exists;
	int store_error;
	struct auth_result result;
	/* Set by auth_record_apply. */
	uint32_t user_failures;
	bool locked_now;
};

struct auth_guard *auth_guard_new(uv_loop_t *loop, struct queue_store *store,
    struct queue_writer *writer)
{
	struct auth_guard *g = xcalloc(1, sizeof *g);

	g->loop = loop;
	g->store = store;
	g->writer = writer;
	return g;
}

void auth_guard_free(struct auth_guard *g)
{
	if (g == NULL)
		return;
	for (size_t i = 0; i < AUTH_IP_BUCKETS; i++) {
		struct auth_ip *e = g->buckets[i];

		while (e != NULL) {
			struct auth_ip *next = e->next;

			free(e);
			e = next;
		}
	}
	free(g);
}

/* ------------------------------------------------- per-address memory */

static size_t auth_ip_hash(const char *ip)
{
	return str_hash(ip) % AUTH_IP_BUCKETS;
}

static void auth_ip_sweep(struct auth_guard *g, uint64_t now, uint64_t window)
{
	for (size_t i = 0; i < AUTH_IP_BUCKETS; i++) {
		struct auth_ip **pp = &g->buckets[i];

		while (*pp != NULL) {
			struct auth_ip *e = *pp;

			if (now - e->last_ms >= window) {
				*pp = e->next;
				free(e);
				g->nips--;
			} else {
				pp = &e->next;
			}
		}
	}
}

/* The entry of ip, expired counts forgotten; NULL when none (and !create). */
static struct auth_ip *auth_ip_find(struct auth_guard *g, const char *ip, uint64_t now,
    uint64_t window, bool create)
{
	size_t h = auth_ip_hash(ip);
	struct auth_ip *e;

	for (e = g->buckets[h]; e != NULL; e = e->next) {
		if (strcmp(e->ip, ip) == 0) {
			if (now - e->last_ms >= window)
				e->failures = 0;
			return e;
		}
	}
	if (!create)
		return NULL;
	if (g->nips >= AUTH_IP_MAX)
		auth_ip_sweep(g, now, window);
	if (g->nips >= AUTH_IP_MAX)
		return NULL; /* a flood of addresses: each still gets the base delay */
	e = xcalloc(1, sizeof *e);
	str_copy(e->ip, ip, sizeof e->ip);
	e->last_ms = now;
	e->next = g->buckets[h];
	g->buckets[h] = e;
	g->nips++;
	return e;
}

/* ------------------------------------------------------------ checking */

static void auth_work(uv_work_t *w)
{
	struct auth_request *r = w->data;
	struct queue_txn *txn = NULL;
	struct queue_user *u = NULL;
	bool ok = false;
	int rc;

	r->result.outcome = AUTH_OUTCOME_BAD;
	if (!r->user_valid) {
		passwd_dummy_verify(r->pass, r->passlen);
		goto out;
	}
	rc = queue_txn_begin(r->g->store, false, &txn);
	if (rc == 0)
		rc = queue_user_get(txn, r->user, &u);
	queue_txn_abort(txn);
	if (rc == -ENOENT) {
		/* Same cost as a real check, so timing does not tell who exists. */
		passwd_dummy_verify(r->pass, r->passlen);
		goto out;
	}
	if (rc < 0) {
		r->store_error = rc;
		r->result.outcome = AUTH_OUTCOME_TEMPFAIL;
		goto out;
	}
	r->user_exists = true;
	if (u->locked || u->locked_out) {
		r->result.outcome = AUTH_OUTCOME_LOCKED;
		goto out;
	}
	rc = passwd_verify(r->pass, r->passlen, u->hash, &ok);
	if (rc < 0) {
		r->store_error = rc;
		r->result.outcome = AUTH_OUTCOME_TEMPFAIL;
	} else if (ok) {
		r->result.outcome = AUTH_OUTCOME_OK;
		r->user_failures = u->failures;
	}
out:
	OPENSSL_cleanse(r->pass, sizeof r->pass);
	r->passlen = 0;
	queue_user_free(u);
	/*
	 * OpenSSL keeps per-thread state (error queue, DRBG) on this pool
	 * thread; release it, as libuv never tells OpenSSL the thread ends.
	 */
	OPENSSL_thread_stop();
}

static const char *auth_outcome_word(enum auth_outcome o)
{
	switch (o) {
	case AUTH_OUTCOME_OK: return "success";
	case AUTH_OUTCOME_BAD: return "failure";
	case AUTH_OUTCOME_LOCKED: return "locked";
	case AUTH_OUTCOME_THROTTLED: return "throttled";
	case AUTH_OUTCOME_TEMPFAIL: return "tempfail";
	}
	return "unknown";
}

/*
 * Writer thread: the user's failure count (re-read here, so concurrent
 * attempts and a `user unlock` in between are both respected) and the
 * audit record, in one transaction.
 */
static int auth_record_apply(struct queue_txn *txn, void *arg)
{
	struct auth_request *r = arg;
	struct queue_user *u = NULL;
	char *tenant = NULL;
	struct queue_audit_auth a = { .user = r->user, .client = r->ip,
		.listener = r->listener, .result = auth_outcome_word(r->result.outcome) };
	int rc = 0;

	r->locked_now = false;
	if (r->user_exists && queue_user_get(txn, r->user, &u) == 0) {
		bool changed = false;

		if (r->result.outcome == AUTH_OUTCOME_OK && u->failures > 0) {
			u->failures = 0;
			changed = true;
		} else if (r->result.outcome == AUTH_OUTCOME_BAD) {
			u->failures++;
			u->last_failure = time_now_ms();
			if (u->failures >= r->cfg->auth_max_failures && !u->locked_out) {
				u->locked_out = true;
				r->locked_now = true;
			}
			changed = true;
		}
		r->user_failures = u->failures;
		a.has_failures = true;
		a.failures = u->failures;
		if (changed)
			rc = queue_user_put(txn, u, NULL, 0);
		queue_user_free(u);
		if (rc < 0)
			return rc;
	}
	if (r->user_valid)
		(void)queue_tenant_of_address(txn, r->user, &tenant);
	a.lockout = r->locked_now;
	a.tenant = tenant;
	rc = queue_audit_auth(txn, time_now_ms(), &a);
	free(tenant);
	return rc;
}

static void auth_timer_closed(uv_handle_t *h)
{
	free(h->data);
}

static void auth_finish(struct auth_request *r)
{
	r->done(r->arg, &r->result);
	r->timer.data = r;
	uv_close((uv_handle_t *)&r->timer, auth_timer_closed);
}

static void auth_delay_over(uv_timer_t *t)
{
	auth_finish(t->data);
}

/* Base delay doubled per earlier failure of the address or the user. */
static uint64_t auth_delay(const struct config *cfg, uint32_t failures)
{
	uint64_t d = cfg->auth_failure_delay;

	for (uint32_t i = 1; i < failures && d < cfg->auth_failure_delay_max; i++)
		d *= 2;
	return d < cfg->auth_failure_delay_max ? d : cfg->auth_failure_delay_max;
}

static void auth_record_done(void *arg, int status)
{
	struct auth_request *r = arg;
	struct auth_guard *g = r->g;
	uint64_t now = uv_now(g->loop);
	uint32_t worst = r->user_failures;
	uint64_t delay;

	if (status < 0) {
		log_err(NULL, "auth: cannot record the attempt of %s: %s", r->user,
		    queue_strerror(status));
		/* Unrecorded, a success must not count: the audit trail is the promise. */
		if (r->result.outcome == AUTH_OUTCOME_OK)
			r->result.outcome = AUTH_OUTCOME_TEMPFAIL;
	}
	if (r->locked_now)
		log_event(LOG_LVL_WARN, NULL, "event", "auth_lockout", "user", r->user,
		    "client", r->ip, NULL);
	if (r->result.outcome == AUTH_OUTCOME_OK) {
		log_event(LOG_LVL_INFO, NULL, "event", "auth", "user", r->user, "client", r->ip,
		    "result", "success", NULL);
		auth_finish(r);
		return;
	}
	log_event(LOG_LVL_WARN, NULL, "event", "auth", "user", r->user, "client", r->ip,
	    "result", auth_outcome_word(r->result.outcome), NULL);
	{
		bool failed = r->result.outcome == AUTH_OUTCOME_BAD ||
		    r->result.outcome == AUTH_OUTCOME_LOCKED;
		struct auth_ip *e = auth_ip_find(g, r->ip, now, r->cfg->auth_failure_window,
		    failed);

		if (e != NULL && failed) {
			e->failures++;
			e->last_ms = now;
		}
		if (e != NULL && e->failures > worst)
			worst = e->failures;
	}
	delay = auth_delay(r->cfg, worst > 0 ? worst : 1);
	if (delay == 0 || r->result.outcome == AUTH_OUTCOME_TEMPFAIL) {
		auth_finish(r);
		return;
	}
	uv_timer_start(&r->timer, auth_delay_over, delay, 0);
}

static void auth_work_done(uv_work_t *w, int status)
{
	struct auth_request *r = w->data;

	if (status < 0)
		r->result.outcome = AUTH_OUTCOME_TEMPFAIL;
	if (r->store_error < 0)
		log_err(NULL, "auth: cannot check %s: %s", r->user, queue_strerror(r->store_error));
	queue_writer_submit(r->g->writer, auth_record_apply, auth_record_done, r);
}

void auth_check(struct auth_guard *g, const struct config *cfg, const char *client_ip,
    const char *listener, const char *user, const char *pass, auth_done_fn *done,
    void *arg)
{
	struct auth_request *r = xcalloc(1, sizeof *r);
	const char *why = NULL;
	struct auth_ip *e;
	size_t passlen = strlen(pass);

	r->g = g;
	r->cfg = cfg;
	r->done = done;
	r->arg = arg;
	str_copy(r->ip, client_ip, sizeof r->ip);
	str_copy(r->listener, listener, sizeof r->listener);
	r->user_valid = addr_canon(user, r->user, sizeof r->user, &why) == 0;
	if (!r->user_valid)
		str_copy(r->user, user, sizeof r->user);
	if (passlen > PASSWD_MAX)
		passlen = PASSWD_MAX;
	memcpy(r->pass, pass, passlen);
	r->passlen = passlen;
	uv_timer_init(g->loop, &r->timer);
	r->timer.data = r;
	str_copy(r->result.user, r->user, sizeof r->result.user);

	e = auth_ip_find(g, r->ip, uv_now(g->loop), cfg->auth_failure_window, false);
	if (e != NULL && e->failures >= cfg->auth_ip_max_failures) {
		/* No hashing for an address that is guessing: it costs us, not them. */
		OPENSSL_cleanse(r->pass, sizeof r->pass);
		r->passlen = 0;
		r->result.outcome = AUTH_OUTCOME_THROTTLED;
		queue_writer_submit(g->writer, auth_record_apply, auth_record_done, r);
		return;
	}
	r->work.data = r;
	if (uv_queue_work(g->loop, &r->work, auth_work, auth_work_done) != 0) {
		OPENSSL_cleanse(r->pass, sizeof r->pass);
		r->result.outcome = AUTH_OUTCOME_TEMPFAIL;
		queue_writer_submit(g->writer, auth_record_apply, auth_record_done, r);
	}
}
