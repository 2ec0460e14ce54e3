#ifndef GOVRELAY_AUTH_H
#define GOVRELAY_AUTH_H
/*
 * auth: checking SASL credentials (RFC 4954) against the users table, and
 * slowing down whoever guesses. The SMTP session runs the exchange
 * (common/sasl.h decodes it) and hands the user name and password here.
 *
 * A check hashes on the libuv thread pool (scrypt is deliberately slow),
 * never on the loop. A failure is remembered per client address (in
 * memory, for auth_failure_window) and per user (in the store, so
 * `govrelayctl user unlock` sees and clears it); the answer to a failure
 * is delayed by auth_failure_delay doubled for each earlier failure of
 * that address or user, up to auth_failure_delay_max. After
 * auth_max_failures consecutive failures the user is locked out until a
 * postmaster unlocks it; after auth_ip_max_failures failures within the
 * window an address may not try again until the window has passed.
 * Every attempt leaves an `auth` audit record (never the password).
 */
#include <stdint.h>

#include <uv.h>

#include "common/addr.h"
#include "common/cfg.h"
#include "queue/queue.h"
#include "queue/queue_writer.h"

enum auth_outcome {
	AUTH_OUTCOME_OK,
	AUTH_OUTCOME_BAD,        /* 535 5.7.8 */
	AUTH_OUTCOME_LOCKED,     /* 535 5.7.8, the account is locked */
	AUTH_OUTCOME_THROTTLED,  /* 454 4.7.0, this address failed too often */
	AUTH_OUTCOME_TEMPFAIL,   /* 454 4.7.0, the store could not be read */
};

struct auth_result {
	enum auth_outcome outcome;
	char user[ADDR_MAX + 1];   /* canonical address when OK */
};

typedef void auth_done_fn(void *arg, const struct auth_result *r);

struct auth_guard;

struct auth_guard *auth_guard_new(uv_loop_t *loop, struct queue_store *store,
    struct queue_writer *writer);
/* After the loop has run every pending check to its end. */
void auth_guard_free(struct auth_guard *g);

/*
 * Checks user/pass (copied; the copy is wiped) for a client at client_ip,
 * with the limits of cfg (borrowed until done). done(arg, result) runs on
 * the loop exactly once, after the failure delay when there is one; the
 * caller keeps arg alive until then. Loop thread.
 */
void auth_check(struct auth_guard *g, const struct config *cfg, const char *client_ip,
    const char *listener, const char *user, const char *pass, auth_done_fn *done,
    void *arg);

#endif
