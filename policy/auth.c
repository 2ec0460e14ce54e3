/*
 * auth: credential checks with failure throttling and lockout (see
 * auth.h for the rules).
 *
 * One check goes: per-address throttle test (loop) -> user lookup and
 * scrypt verification (thread pool) -> failure or success bookkeeping in
 * the store with its audit record (writer thread, one transaction) ->
 * delay timer when it failed (loop) -> done (loop).
 *
 * Every failure the client could learn something from costs the same:
 * one scrypt (the user's own hash when the user exists, locked or not;
 * otherwise a dummy at password_hash_cost, the cost the site's hashes
 * are made with), then a delay computed from in-memory counts kept for
 * any client and any name, so whether the name exists changes neither.
 * The store's per-user count only decides the lockout.
 *
 * Entry points: auth_guard_new, auth_guard_free, auth_check; the pure
 * rules auth_lockout_active, auth_failures_after, auth_authzid_ok,
 * auth_client_key.
 * OWNERSHIP: the guard owns the memory table (clients and names); each
 * check owns its request until done has run and its timer has closed. The password copy
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
#include "common/ipgroup.h"
#include "common/log.h"
#include "common/passwd.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/auth.h"
#include "queue/audit_event.h"
#include "queue/tenancy.h"

#define AUTH_IP_BUCKETS 4096
#define AUTH_IP_MAX 65536     /* clients and names remembered; beyond, sweep then stop tracking */
#define AUTH_IP_LEN 64
/*
 * A table key: "ip " and the client's group, or "user " and the name as
 * given (canonical when it parses). A longer name is cut: two names that
 * share the first bytes then share a delay, which only slows a guesser.
 */
#define AUTH_KEY_LEN 96

struct auth_ip {
	struct auth_ip *next;
	char key[AUTH_KEY_LEN];
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
	char ip_key[AUTH_KEY_LEN];     /* "ip " and the client's group */
	char name_key[AUTH_KEY_LEN];   /* "user " and the name */
	char listener[16];
	char user[ADDR_MAX + 1];       /* canonical when it parsed, else as given (cut) */
	bool user_valid;
	bool authz_refused;            /* the authzid named someone else */
	const char *why;               /* the true reason of a failure, for audit and log */
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

/* ------------------------------------ per-client and per-name memory */

static size_t auth_ip_hash(const char *key)
{
	return str_hash(key) % AUTH_IP_BUCKETS;
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

/* The entry of key, expired counts forgotten; NULL when none (and !create). */
static struct auth_ip *auth_ip_find(struct auth_guard *g, const char *key, uint64_t now,
    uint64_t window, bool create)
{
	size_t h = auth_ip_hash(key);
	struct auth_ip *e;

	for (e = g->buckets[h]; e != NULL; e = e->next) {
		if (strcmp(e->key, key) == 0) {
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
		return NULL; /* a flood of clients or names: each still gets the base delay */
	e = xcalloc(1, sizeof *e);
	str_copy(e->key, key, sizeof e->key);
	e->last_ms = now;
	e->next = g->buckets[h];
	g->buckets[h] = e;
	g->nips++;
	return e;
}

/* ------------------------------------------------------------ checking */

/*
 * Thread pool: the lookup and one scrypt, whatever the lookup found, so
 * an unknown or locked user costs what a wrong password does.
 */
static void auth_work(uv_work_t *w)
{
	struct auth_request *r = w->data;
	struct queue_txn *txn = NULL;
	struct queue_user *u = NULL;
	bool ok = false, locked;
	int rc;

	r->result.outcome = AUTH_OUTCOME_BAD;
	r->why = r->authz_refused ? "authzid-refused" : "unknown-user";
	if (!r->user_valid || r->authz_refused) {
		passwd_dummy_verify_cost(r->pass, r->passlen, (unsigned)r->cfg->password_hash_cost);
		goto out;
	}
	rc = queue_txn_begin(r->g->store, false, &txn);
	if (rc == 0)
		rc = queue_user_get(txn, r->user, &u);
	queue_txn_abort(txn);
	if (rc == -ENOENT) {
		passwd_dummy_verify_cost(r->pass, r->passlen, (unsigned)r->cfg->password_hash_cost);
		goto out;
	}
	if (rc < 0) {
		r->store_error = rc;
		r->result.outcome = AUTH_OUTCOME_TEMPFAIL;
		r->why = NULL;
		goto out;
	}
	r->user_exists = true;
	r->why = "failure";
	locked = u->locked || auth_lockout_active(u->locked_out, u->last_failure, time_now_ms(),
	    r->cfg->auth_lockout_time);
	/* Verified even when locked: the time spent must not say "locked". */
	rc = passwd_verify(r->pass, r->passlen, u->hash, &ok);
	if (locked) {
		r->result.outcome = AUTH_OUTCOME_LOCKED;
		r->why = "locked";
	} else if (rc < 0) {
		r->store_error = rc;
		r->result.outcome = AUTH_OUTCOME_TEMPFAIL;
		r->why = NULL;
	} else if (ok) {
		r->result.outcome = AUTH_OUTCOME_OK;
		r->why = NULL;
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
	const char *result = r->why != NULL ? r->why : auth_outcome_word(r->result.outcome);
	struct queue_audit_auth a = { .user = r->user, .client = r->ip,
		.listener = r->listener, .result = result };
	int rc = 0;

	r->locked_now = false;
	if (r->user_exists && queue_user_get(txn, r->user, &u) == 0) {
		int64_t now = time_now_ms();
		uint64_t lockout = r->cfg->auth_lockout_time;
		bool active = auth_lockout_active(u->locked_out, u->last_failure, now, lockout);
		bool changed = false;

		if (u->locked_out && !active) {
			/* The lockout is over: the count starts again. */
			u->locked_out = false;
			u->failures = 0;
			changed = true;
		}
		if (r->result.outcome == AUTH_OUTCOME_OK && u->failures > 0) {
			u->failures = 0;
			changed = true;
		} else if (r->result.outcome == AUTH_OUTCOME_BAD && !active) {
			/* A lockout in force is not prolonged: it ends on time. */
			u->failures = auth_failures_after(u->failures, u->last_failure, now, lockout);
			u->last_failure = now;
			if (u->failures >= r->cfg->auth_max_failures) {
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

/* Counts one failure of the table entry key; its count after it (0: untracked). */
static uint32_t auth_mem_fail(struct auth_guard *g, const char *key, uint64_t now,
    uint64_t window, bool failed)
{
	struct auth_ip *e = auth_ip_find(g, key, now, window, failed);

	if (e == NULL)
		return 0;
	if (failed) {
		e->failures++;
		e->last_ms = now;
	}
	return e->failures;
}

static void auth_record_done(void *arg, int status)
{
	struct auth_request *r = arg;
	struct auth_guard *g = r->g;
	uint64_t now = uv_now(g->loop);
	uint64_t window = r->cfg->auth_failure_window;
	const char *result;
	uint32_t worst, by_name;
	bool failed;
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
	result = r->why != NULL ? r->why : auth_outcome_word(r->result.outcome);
	log_event(LOG_LVL_WARN, NULL, "event", "auth", "user", r->user, "client", r->ip,
	    "result", result, NULL);
	/*
	 * The delay counts what any client or name can be charged with, in
	 * memory: never the store's per-user count, which only a name that
	 * exists has, so the delay cannot tell who exists.
	 */
	failed = r->result.outcome == AUTH_OUTCOME_BAD ||
	    r->result.outcome == AUTH_OUTCOME_LOCKED;
	worst = auth_mem_fail(g, r->ip_key, now, window, failed);
	by_name = auth_mem_fail(g, r->name_key, now, window, failed);
	if (by_name > worst)
		worst = by_name;
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
    const char *listener, const char *authzid, const char *user, const char *pass,
    auth_done_fn *done, void *arg)
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
	auth_client_key(client_ip, r->ip_key, sizeof r->ip_key);
	str_copy(r->listener, listener, sizeof r->listener);
	r->user_valid = addr_canon(user, r->user, sizeof r->user, &why) == 0;
	if (!r->user_valid)
		str_copy(r->user, user, sizeof r->user);
	/* Cut to the key's size on purpose (see AUTH_KEY_LEN). */
	str_copy(r->name_key, "user ", sizeof r->name_key);
	str_copy(r->name_key + 5, r->user, sizeof r->name_key - 5);
	r->authz_refused = !auth_authzid_ok(authzid, user);
	if (passlen > PASSWD_MAX)
		passlen = PASSWD_MAX;
	memcpy(r->pass, pass, passlen);
	r->passlen = passlen;
	uv_timer_init(g->loop, &r->timer);
	r->timer.data = r;
	str_copy(r->result.user, r->user, sizeof r->result.user);

	e = auth_ip_find(g, r->ip_key, uv_now(g->loop), cfg->auth_failure_window, false);
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

/* ------------------------------------------------------- pure rules */

bool auth_lockout_active(bool locked_out, int64_t last_failure_ms, int64_t now_ms,
    uint64_t lockout_ms)
{
	if (!locked_out)
		return false;
	if (now_ms < last_failure_ms)
		return true;
	return (uint64_t)(now_ms - last_failure_ms) < lockout_ms;
}

uint32_t auth_failures_after(uint32_t failures, int64_t last_failure_ms, int64_t now_ms,
    uint64_t window_ms)
{
	if (failures == 0 || last_failure_ms <= 0)
		return 1;
	if (now_ms >= last_failure_ms && (uint64_t)(now_ms - last_failure_ms) >= window_ms)
		return 1;
	return failures < UINT32_MAX ? failures + 1 : failures;
}

bool auth_authzid_ok(const char *authzid, const char *authcid)
{
	char a[ADDR_MAX + 1], b[ADDR_MAX + 1];
	const char *why = NULL;

	if (authzid == NULL || authzid[0] == '\0' || strcmp(authzid, authcid) == 0)
		return true;
	/* Not one user acting for another: none of our users may (issue 9). */
	if (addr_canon(authzid, a, sizeof a, &why) < 0 ||
	    addr_canon(authcid, b, sizeof b, &why) < 0)
		return false;
	return strcmp(a, b) == 0;
}

void auth_client_key(const char *client_ip, char *out, size_t outlen)
{
	struct ipgroup grp;
	char text[IPGROUP_TEXT_MAX];

	if (ipgroup_parse(client_ip, &grp) == 0) {
		ipgroup_format(&grp, text, sizeof text);
		snprintf(out, outlen, "ip %s", text);
	} else {
		snprintf(out, outlen, "ip %s", client_ip);
	}
}
