/*
 * smtp_auth: AUTH for the submission listeners (RFC 4954), with the PLAIN
 * (RFC 4616) and LOGIN mechanisms.
 *
 * Entry points (smtp_session_int.h): smtp__cmd_auth (the command row),
 * smtp__auth_response (the client's answer to a 334 challenge, while
 * s->auth_step waits for one).
 *
 * The dispatcher has checked that AUTH is offered (not mx, a user store),
 * that TLS is active and that the session is not yet authenticated. The
 * credentials go to policy/auth (auth_check: password, lockout,
 * per-address throttling); its completion sets s->authenticated.
 *
 * OWNERSHIP: decoded passwords live on the stack and are wiped
 * (OPENSSL_cleanse) once handed over; the LOGIN user name waits in the
 * session. The auth_check in flight holds a session reference.
 * THREADS: loop thread only; auth_check completes on the loop thread.
 * ERRORS: undecodable responses are 501, unknown mechanisms 504; a wrong
 * password, an unknown user, a locked account and a PLAIN authzid that
 * is not the user are all the same 535 5.7.8; a throttled address or a
 * failing user store 454. A failed attempt counts toward
 * auth_session_failures (the last one: 421 4.7.0 and the end of the
 * session), a syntax error toward max_bad_commands.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "common/sasl.h"
#include "common/util.h"
#include "policy/auth.h"
#include "relay/smtp_session_int.h"

/* ---------------------------------------------------------------- AUTH */

/*
 * A failed attempt: counted toward auth_session_failures, whose last one
 * ends the session with 421 4.7.0 (a guesser gets a few tries per
 * connection, then pays for a new one), else toward max_bad_commands.
 */
static void smtp_auth_failed(struct smtp_session *s)
{
	char n[16];

	if (++s->auth_failures < s->cfg->auth_session_failures) {
		smtp__count_error(s);
		return;
	}
	snprintf(n, sizeof n, "%u", s->auth_failures);
	log_event(LOG_LVL_INFO, s->id, "event", "too_many_auth_failures", "client",
	    s->peer_addr, "failures", n, NULL);
	smtp__goodbye(s, "4.7.0", "Error: too many failed authentications");
}

static void smtp_auth_done(void *arg, const struct auth_result *r)
{
	struct smtp_session *s = arg;

	if (!s->closing) {
		s->busy = false;
		s->auth_step = SMTP_AUTH_IDLE;
		switch (r->outcome) {
		case AUTH_OUTCOME_OK:
			s->authenticated = true;
			str_copy(s->auth_user, r->user, sizeof s->auth_user);
			smtp__reply(s, 235, "2.7.0", "Authentication successful");
			break;
		case AUTH_OUTCOME_LOCKED:
		case AUTH_OUTCOME_BAD:
			/*
			 * One reply for a wrong password, an unknown user, a
			 * locked account and a refused authzid: which one it was
			 * is for the audit trail, not for whoever is guessing.
			 */
			smtp__reply(s, 535, "5.7.8", "Authentication credentials invalid");
			smtp_auth_failed(s);
			break;
		case AUTH_OUTCOME_THROTTLED:
			smtp__reply(s, 454, "4.7.0", "Too many failed authentications from your "
			    "address; try again later");
			smtp_auth_failed(s);
			break;
		case AUTH_OUTCOME_TEMPFAIL:
			smtp__reply(s, 454, "4.7.0", "Temporary authentication failure");
			break;
		}
		smtp__resume(s);
	}
	smtp__unref(s);
}

/* Hands the credentials over; the password buffer is the caller's to wipe. */
static void smtp_auth_submit(struct smtp_session *s, const char *authzid, const char *user,
    const char *pass)
{
	s->auth_step = SMTP_AUTH_CHECKING;
	s->busy = true;
	smtp__ref(s);
	auth_check(s->srv->auth, s->cfg, s->peer_addr, cfg_role_name(s->role), authzid, user,
	    pass, smtp_auth_done, s);
}

static void smtp_auth_fail_syntax(struct smtp_session *s)
{
	s->auth_step = SMTP_AUTH_IDLE;
	smtp__reply(s, 501, "5.5.2", "Error: cannot decode the authentication response");
	smtp__count_error(s);
}

/* A PLAIN message (RFC 4616), still base64-encoded. */
static void smtp_auth_plain(struct smtp_session *s, const char *b64, size_t len)
{
	unsigned char msg[3 * SASL_FIELD_MAX + 3];
	char authzid[SASL_FIELD_MAX + 1], user[SASL_FIELD_MAX + 1], pass[SASL_FIELD_MAX + 1];
	size_t n;

	if (sasl_b64_decode(b64, len, msg, sizeof msg, &n) < 0 ||
	    sasl_plain_split(msg, n, authzid, user, pass) < 0) {
		OPENSSL_cleanse(msg, sizeof msg);
		smtp_auth_fail_syntax(s);
		return;
	}
	/* An authzid naming another user is judged (and refused) by policy/auth. */
	smtp_auth_submit(s, authzid, user, pass);
	OPENSSL_cleanse(msg, sizeof msg);
	OPENSSL_cleanse(pass, sizeof pass);
}

/* One base64 field of LOGIN (user name or password) into out. */
static int smtp_auth_login_field(const char *b64, size_t len, char *out)
{
	size_t n;

	if (sasl_b64_decode(b64, len, (unsigned char *)out, SASL_FIELD_MAX, &n) < 0 ||
	    n == 0 || memchr(out, '\0', n) != NULL)
		return -EINVAL;
	out[n] = '\0';
	return 0;
}

/* A line that answers our 334 challenge (RFC 4954 section 4). */
void smtp__auth_response(struct smtp_session *s, const char *line, size_t len)
{
	char pass[SASL_FIELD_MAX + 1];

	if (len == 1 && line[0] == '*') {
		s->auth_step = SMTP_AUTH_IDLE;
		smtp__reply(s, 501, "5.0.0", "Authentication aborted");
		return;
	}
	switch (s->auth_step) {
	case SMTP_AUTH_PLAIN:
		smtp_auth_plain(s, line, len);
		return;
	case SMTP_AUTH_LOGIN_USER:
		if (smtp_auth_login_field(line, len, s->auth_login_user) < 0) {
			smtp_auth_fail_syntax(s);
			return;
		}
		s->auth_step = SMTP_AUTH_LOGIN_PASS;
		smtp__reply(s, 334, NULL, "UGFzc3dvcmQ6");
		return;
	case SMTP_AUTH_LOGIN_PASS:
		if (smtp_auth_login_field(line, len, pass) < 0) {
			OPENSSL_cleanse(pass, sizeof pass);
			smtp_auth_fail_syntax(s);
			return;
		}
		smtp_auth_submit(s, NULL, s->auth_login_user, pass);
		OPENSSL_cleanse(pass, sizeof pass);
		return;
	default:
		return;
	}
}

void smtp__cmd_auth(struct smtp_session *s, enum smtp_cmd cmd, const char *arg)
{
	const char *sp = strchr(arg, ' ');
	size_t mechlen = sp ? (size_t)(sp - arg) : strlen(arg);
	const char *initial = sp ? sp + 1 : NULL;

	(void)cmd;
	if (mechlen == 5 && strncasecmp(arg, "PLAIN", 5) == 0) {
		if (initial == NULL) {
			s->auth_step = SMTP_AUTH_PLAIN;
			smtp__reply(s, 334, NULL, "%s", "");
			return;
		}
		smtp_auth_plain(s, initial, strlen(initial));
		return;
	}
	if (mechlen == 5 && strncasecmp(arg, "LOGIN", 5) == 0) {
		if (initial == NULL) {
			s->auth_step = SMTP_AUTH_LOGIN_USER;
			smtp__reply(s, 334, NULL, "VXNlcm5hbWU6");
			return;
		}
		if (smtp_auth_login_field(initial, strlen(initial), s->auth_login_user) < 0) {
			smtp_auth_fail_syntax(s);
			return;
		}
		s->auth_step = SMTP_AUTH_LOGIN_PASS;
		smtp__reply(s, 334, NULL, "UGFzc3dvcmQ6");
		return;
	}
	smtp__reply(s, 504, "5.5.4", "Unrecognized authentication type; use PLAIN or LOGIN");
	smtp__count_error(s);
}
