#ifndef GOVRELAY_AUTH_H
#define GOVRELAY_AUTH_H
/*
 * auth: checking SASL credentials (RFC 4954) against the users table, and
 * slowing down whoever guesses. The SMTP session runs the exchange
 * (common/sasl.h decodes it) and hands the identities and password here.
 *
 * A check hashes on the libuv thread pool (scrypt is deliberately slow),
 * never on the loop. A failure is remembered per client (in memory, for
 * auth_failure_window; an IPv6 client by its /64, common/ipgroup.h), per
 * user name (in memory, any name, existing or not) and per existing user
 * (in the store, so `govrelayctl user unlock` sees and clears it); the
 * answer to a failure is delayed by auth_failure_delay doubled for each
 * earlier failure of that client or name, up to auth_failure_delay_max.
 * After auth_max_failures consecutive failures (failures further apart
 * than auth_lockout_time start the count again) the user is locked out
 * for auth_lockout_time, or until a postmaster unlocks it; attempts
 * during a lockout do not prolong it. After auth_ip_max_failures
 * failures within the window a client may not try again until the
 * window has passed.
 *
 * An unknown user, a locked user, a wrong password and an authorization
 * identity that is not the authentication identity all end as a failure
 * the client cannot tell apart: the same work (one scrypt at the site's
 * cost), the same delay rule and, in the session, the same reply. Only
 * the audit record and the log say which it was. Every attempt leaves an
 * `auth` audit record (never the password).
 */
#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "common/addr.h"
#include "common/cfg.h"
#include "queue/queue.h"
#include "queue/queue_writer.h"

enum auth_outcome {
	AUTH_OUTCOME_OK,
	AUTH_OUTCOME_BAD,        /* 535 5.7.8: wrong password, unknown user, authzid */
	AUTH_OUTCOME_LOCKED,     /* 535 5.7.8 as BAD: the client must not learn it */
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
 * with the limits of cfg (borrowed until done). authzid is the SASL
 * authorization identity, NULL or "" when none was given; one that does
 * not name the same user as `user` is a failure. done(arg, result) runs
 * on the loop exactly once, after the failure delay when there is one;
 * the caller keeps arg alive until then. Loop thread.
 */
void auth_check(struct auth_guard *g, const struct config *cfg, const char *client_ip,
    const char *listener, const char *authzid, const char *user, const char *pass,
    auth_done_fn *done, void *arg);

/* ------------------------------------------- pure rules (unit tested) */

/*
 * Whether a lockout recorded at last_failure_ms (unix ms) still holds at
 * now_ms: for lockout_ms after it. A clock that went back keeps it.
 */
bool auth_lockout_active(bool locked_out, int64_t last_failure_ms, int64_t now_ms,
    uint64_t lockout_ms);
/*
 * The count of consecutive failures once one more happens at now_ms:
 * failures + 1, or 1 when the last one is window_ms or more ago.
 */
uint32_t auth_failures_after(uint32_t failures, int64_t last_failure_ms, int64_t now_ms,
    uint64_t window_ms);
/*
 * Whether a SASL authorization identity may be used by the user who
 * authenticated as authcid: absent, or the same address (compared in
 * canonical form, so a case difference in the domain is the same user).
 */
bool auth_authzid_ok(const char *authzid, const char *authcid);
/* The per-address table's key of a client: its ipgroup, as text. */
void auth_client_key(const char *client_ip, char *out, size_t outlen);

#endif
