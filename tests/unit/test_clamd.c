/*
 * test_clamd: the clamd INSTREAM client (policy/clamd.c) and the
 * antivirus row (policy/stage_antivirus.c) where no clamd is needed:
 * reply parsing and target parsing (tables, a label per case), and the
 * client's life on a real loop against real sockets that are not clamd:
 * a path with no socket, a TCP port that refuses, and a unix socket that
 * is listened on and never read (connect succeeds, nothing ever answers).
 * Closing in every state must leave the loop closable
 * (uv_loop_close() == 0) and never run the completion afterwards; a
 * transaction freed while the DATA stage waits gets one 451 4.7.1.
 * Answers of a real clamd are tested end to end (tests/e2e/test_antivirus.py).
 *
 * OWNERSHIP: none. THREADS: Check forks one process per test.
 * ERRORS: assertion failures.
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/util.h"
#include "policy/check.h"
#include "policy/clamd.h"
#include "policy/policy.h"

#define N_CASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ------------------------------------------------------------ replies */

static const struct {
	const char *label;
	const char *reply;
	enum clamd_status status;
	const char *text;
} reply_cases[] = {
	{ "clean", "stream: OK", CLAMD_CLEAN, "" },
	{ "clean with newline", "stream: OK\n", CLAMD_CLEAN, "" },
	{ "found", "stream: Eicar-Signature FOUND", CLAMD_FOUND, "Eicar-Signature" },
	{ "found, custom database", "stream: Probe.EICAR.MD5.UNOFFICIAL FOUND", CLAMD_FOUND,
	  "Probe.EICAR.MD5.UNOFFICIAL" },
	{ "found, control byte in the name", "stream: Bad\x01Name FOUND", CLAMD_FOUND,
	  "Bad?Name" },
	{ "size limit (no prefix)", "INSTREAM size limit exceeded. ERROR", CLAMD_ERROR,
	  "INSTREAM size limit exceeded." },
	{ "stream error", "stream: Can't allocate memory ERROR", CLAMD_ERROR,
	  "Can't allocate memory" },
	{ "bare ERROR", "ERROR", CLAMD_ERROR, "clamd answered ERROR" },
	{ "empty", "", CLAMD_ERROR, "clamd sent an empty answer" },
	{ "another command's answer", "PONG", CLAMD_ERROR,
	  "clamd's answer is not understood: 'PONG'" },
	{ "FOUND without a name", "stream: FOUND", CLAMD_ERROR,
	  "clamd's answer is not understood: 'stream: FOUND'" },
	{ "FOUND without the stream prefix", "Eicar FOUND", CLAMD_ERROR,
	  "clamd's answer is not understood: 'Eicar FOUND'" },
	{ "ok in lower case", "stream: ok", CLAMD_ERROR,
	  "clamd's answer is not understood: 'stream: ok'" },
	{ "ok with more after it", "stream: OK then", CLAMD_ERROR,
	  "clamd's answer is not understood: 'stream: OK then'" },
};

START_TEST(test_reply)
{
	struct clamd_result r;
	const char *s = reply_cases[_i].reply;

	memset(&r, 0x55, sizeof r);
	clamd_reply_parse(s, strlen(s), &r);
	ck_assert_msg(r.status == reply_cases[_i].status, "%s: status %s", reply_cases[_i].label,
	    clamd_status_name(r.status));
	ck_assert_msg(strcmp(r.text, reply_cases[_i].text) == 0, "%s: text '%s'",
	    reply_cases[_i].label, r.text);
}
END_TEST

/* A long name is cut to the result's room; a NUL inside the bytes ends nothing early. */
START_TEST(test_reply_bounds)
{
	char reply[1024];
	struct clamd_result r;
	size_t n;

	n = (size_t)snprintf(reply, sizeof reply, "stream: ");
	memset(reply + n, 'A', 600);
	n += 600;
	memcpy(reply + n, " FOUND", 6);
	n += 6;
	clamd_reply_parse(reply, n, &r);
	ck_assert_int_eq(r.status, CLAMD_FOUND);
	ck_assert_uint_eq(strlen(r.text), sizeof r.text - 1);
	ck_assert_int_eq(r.text[0], 'A');

	clamd_reply_parse("stream: OK\0junk", 15, &r);
	ck_assert_int_eq(r.status, CLAMD_ERROR);
}
END_TEST

/* ------------------------------------------------------------ targets */

static const struct {
	const char *label;
	const char *spec;
	int family;             /* 0: refused; AF_UNIX, AF_INET, AF_INET6 */
	const char *want;       /* the path, the port, or words of the error */
} target_cases[] = {
	{ "unix", "unix:/run/clamav/clamd.ctl", AF_UNIX, "/run/clamav/clamd.ctl" },
	{ "tcp loopback", "tcp:127.0.0.1:3310", AF_INET, "3310" },
	{ "tcp any address", "tcp:0.0.0.0:3311", AF_INET, "3311" },
	{ "tcp IPv6", "tcp:[::1]:3312", AF_INET6, "3312" },
	{ "no scheme", "127.0.0.1:3310", 0, "expected unix:PATH or tcp:ADDRESS:PORT" },
	{ "scheme in capitals", "TCP:127.0.0.1:3310", 0, "expected unix:PATH or tcp:" },
	{ "a host name", "tcp:localhost:3310", 0, "names are not resolved" },
	{ "no port", "tcp:127.0.0.1", 0, "needs ADDRESS:PORT" },
	{ "port zero", "tcp:127.0.0.1:0", 0, "port number 1..65535" },
	{ "port too big", "tcp:127.0.0.1:65536", 0, "port number 1..65535" },
	{ "IPv6 without brackets", "tcp:::1:3310", 0, "brackets" },
	{ "bad IPv6", "tcp:[::g]:3310", 0, "not a numeric IPv6" },
	{ "unix without a path", "unix:", 0, "needs a socket path" },
	{ "unix relative path", "unix:run/clamd.sock", 0, "absolute" },
	{ "unix path too long",
	  "unix:/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock",
	  0, "too long" },
};

START_TEST(test_target)
{
	struct clamd_target t;
	char err[256] = "";
	int rc = clamd_target_parse(target_cases[_i].spec, &t, err, sizeof err);
	const char *label = target_cases[_i].label;

	if (target_cases[_i].family == 0) {
		ck_assert_msg(rc == -EINVAL, "%s: accepted", label);
		ck_assert_msg(strstr(err, target_cases[_i].want) != NULL, "%s: error '%s'", label,
		    err);
		ck_assert_msg(strncmp(err, "clamd: ", 7) == 0, "%s: error '%s'", label, err);
		return;
	}
	ck_assert_msg(rc == 0, "%s: %s", label, err);
	ck_assert_str_eq(t.text, target_cases[_i].spec);
	if (target_cases[_i].family == AF_UNIX) {
		ck_assert_msg(t.ep.is_unix, "%s", label);
		ck_assert_str_eq(t.ep.path, target_cases[_i].want);
	} else {
		unsigned port = (unsigned)atoi(target_cases[_i].want);

		ck_assert_msg(!t.ep.is_unix, "%s", label);
		ck_assert_int_eq(t.ep.addr.ss_family, target_cases[_i].family);
		if (t.ep.addr.ss_family == AF_INET)
			ck_assert_uint_eq(ntohs(((struct sockaddr_in *)&t.ep.addr)->sin_port), port);
		else
			ck_assert_uint_eq(ntohs(((struct sockaddr_in6 *)&t.ep.addr)->sin6_port),
			    port);
	}
}
END_TEST

/* ------------------------------------------------ the client on a loop */

static uv_loop_t loop;
static char tmpdir[64];

struct outcome {
	int calls;
	struct clamd_result r;
	struct verdict v;
};

static void test_scan_done(void *arg, const struct clamd_result *r)
{
	struct outcome *o = arg;

	o->calls++;
	o->r = *r;
}

static void test_setup(void)
{
	signal(SIGPIPE, SIG_IGN);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_clamd.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void test_teardown(void)
{
	char path[128];

	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	snprintf(path, sizeof path, "%s/silent.sock", tmpdir);
	unlink(path);
	rmdir(tmpdir);
}

/* Runs the loop until *calls is set; a loop with nothing left to wait on fails. */
static void test_run_until(const int *calls)
{
	while (*calls == 0)
		if (uv_run(&loop, UV_RUN_ONCE) == 0 && *calls == 0)
			ck_abort_msg("the loop has nothing left to run and no answer came");
}

static void test_target_of(const char *spec, struct clamd_target *t)
{
	char err[256];

	ck_assert_msg(clamd_target_parse(spec, t, err, sizeof err) == 0, "%s", err);
}

/*
 * A real unix socket that is listened on and never accepted from: the
 * kernel completes the connect and buffers what is written, and nothing
 * ever answers. Returns its descriptor; spec gets "unix:PATH".
 */
static int test_silent_peer(char *spec, size_t speclen)
{
	struct sockaddr_un sun;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s/silent.sock", tmpdir);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	snprintf(spec, speclen, "unix:%s", sun.sun_path);
	return fd;
}

/* No socket at the path: the answer is an ERROR that says so. */
START_TEST(test_scan_no_socket)
{
	struct clamd_target t;
	struct clamd_scan *sc;
	struct outcome o = { 0 };
	char spec[128];

	snprintf(spec, sizeof spec, "unix:%s/none.sock", tmpdir);
	test_target_of(spec, &t);
	sc = clamd_scan_new(&loop, &t, 5000);
	clamd_scan_write(sc, "Subject: x\r\n\r\nhello\r\n", 21);
	clamd_scan_finish(sc, test_scan_done, &o);
	test_run_until(&o.calls);
	ck_assert_int_eq(o.calls, 1);
	ck_assert_int_eq(o.r.status, CLAMD_ERROR);
	ck_assert_msg(strstr(o.r.text, "cannot connect to clamd at unix:") != NULL &&
	    strstr(o.r.text, "no such file") != NULL, "%s", o.r.text);
	clamd_scan_close(sc);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(o.calls, 1);
}
END_TEST

/* A TCP port that refuses (bound, never listening), before and after finish. */
START_TEST(test_scan_refused)
{
	struct sockaddr_in sin;
	socklen_t slen = sizeof sin;
	struct clamd_target t;
	struct clamd_scan *sc;
	struct outcome o = { 0 };
	char spec[64];
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &slen), 0);
	snprintf(spec, sizeof spec, "tcp:127.0.0.1:%u", (unsigned)ntohs(sin.sin_port));
	test_target_of(spec, &t);
	sc = clamd_scan_new(&loop, &t, 5000);
	clamd_scan_write(sc, "x", 1);
	/* The refusal comes first; finish then answers at once, from the call. */
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(o.calls, 0);
	clamd_scan_finish(sc, test_scan_done, &o);
	ck_assert_int_eq(o.calls, 1);
	ck_assert_int_eq(o.r.status, CLAMD_ERROR);
	ck_assert_msg(strstr(o.r.text, "connection refused") != NULL, "%s", o.r.text);
	clamd_scan_close(sc);
	close(fd);
}
END_TEST

/* Closed in every state before an answer: the completion never runs. */
START_TEST(test_scan_close_any_state)
{
	struct clamd_target t;
	struct clamd_scan *sc;
	struct outcome o = { 0 };
	char spec[128], big[200000];
	int fd = test_silent_peer(spec, sizeof spec);

	test_target_of(spec, &t);
	/* Idle: nothing was ever opened. */
	clamd_scan_close(clamd_scan_new(&loop, &t, 5000));
	/* Connecting, with pieces queued. */
	sc = clamd_scan_new(&loop, &t, 5000);
	clamd_scan_write(sc, "a", 1);
	clamd_scan_close(sc);
	/* Streaming, writes the peer never reads still out. */
	memset(big, 'x', sizeof big);
	sc = clamd_scan_new(&loop, &t, 5000);
	for (int i = 0; i < 20; i++) {
		clamd_scan_write(sc, big, sizeof big);
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	clamd_scan_close(sc);
	/* Finished, waiting for the answer. */
	sc = clamd_scan_new(&loop, &t, 5000);
	clamd_scan_write(sc, big, 1000);
	clamd_scan_finish(sc, test_scan_done, &o);
	for (int i = 0; i < 5; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	clamd_scan_close(sc);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(o.calls, 0);
	close(fd);
}
END_TEST

/* A peer that takes the stream and never answers: the deadline answers. */
START_TEST(test_scan_timeout)
{
	struct clamd_target t;
	struct clamd_scan *sc;
	struct outcome o = { 0 };
	char spec[128];
	int fd = test_silent_peer(spec, sizeof spec);
	uint64_t t0;

	test_target_of(spec, &t);
	sc = clamd_scan_new(&loop, &t, 1000);
	clamd_scan_write(sc, "Subject: x\r\n\r\nhello\r\n", 21);
	t0 = uv_now(&loop);
	clamd_scan_finish(sc, test_scan_done, &o);
	test_run_until(&o.calls);
	ck_assert_int_eq(o.r.status, CLAMD_ERROR);
	ck_assert_msg(strstr(o.r.text, "no answer from clamd at unix:") != NULL &&
	    strstr(o.r.text, "within 1s") != NULL, "%s", o.r.text);
	ck_assert_uint_ge(uv_now(&loop) - t0, 900);
	ck_assert_uint_lt(uv_now(&loop) - t0, 5000);
	clamd_scan_close(sc);
	close(fd);
}
END_TEST

/*
 * A peer that never reads while the message keeps coming: the copies
 * held for it are bounded (32 MiB), past that the scan fails at once.
 */
START_TEST(test_scan_backlog_bounded)
{
	static char piece[1024 * 1024];
	struct clamd_target t;
	struct clamd_scan *sc;
	struct outcome o = { 0 };
	char spec[128];
	int fd = test_silent_peer(spec, sizeof spec);

	test_target_of(spec, &t);
	sc = clamd_scan_new(&loop, &t, 60000);
	memset(piece, 'x', sizeof piece);
	for (int i = 0; i < 48; i++) {
		clamd_scan_write(sc, piece, sizeof piece);
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	clamd_scan_finish(sc, test_scan_done, &o);
	ck_assert_int_eq(o.calls, 1);   /* known before the end: answered at once */
	ck_assert_int_eq(o.r.status, CLAMD_ERROR);
	ck_assert_msg(strstr(o.r.text, "fell more than 32 MiB behind") != NULL, "%s", o.r.text);
	clamd_scan_close(sc);
	close(fd);
}
END_TEST

/* ----------------------------------------------------- the antivirus row */

static const struct policy_check *test_row(void)
{
	for (size_t i = 0; i < policy_nchecks; i++)
		if (strcmp(policy_checks[i].name, "antivirus") == 0)
			return &policy_checks[i];
	ck_abort_msg("no antivirus row in policy/checks.c");
	return NULL;
}

static void test_policy_done(void *arg, const struct verdict *v)
{
	struct outcome *o = arg;

	o->calls++;
	o->v = *v;
}

/* The row: every role, DATA only, a timeout above clamd_timeout's maximum. */
START_TEST(test_row_shape)
{
	const struct policy_check *row = test_row();

	ck_assert_uint_eq(row->stages, POLICY_AT(POLICY_STAGE_DATA));
	ck_assert_uint_eq(row->roles, POLICY_ROLES_ALL);
	ck_assert_uint_gt(row->timeout_ms, 300000);
	ck_assert_ptr_nonnull(row->body);
	/* After dmarc, before dkim_sign. */
	for (size_t i = 0; i < policy_nchecks; i++) {
		size_t at = (size_t)(row - policy_checks);

		if (strcmp(policy_checks[i].name, "dmarc") == 0)
			ck_assert_uint_lt(i, at);
		if (strcmp(policy_checks[i].name, "dkim_sign") == 0)
			ck_assert_uint_gt(i, at);
	}
}
END_TEST

static struct policy *test_engine(struct config *cfg)
{
	struct policy *p = NULL;
	char err[256] = "";

	ck_assert_msg(policy_new_table(&loop, cfg, NULL, test_row(), 1, &p, err,
	    sizeof err) == 0, "policy_new_table: %s", err);
	return p;
}

/* Without the key the row lets every message through untouched. */
START_TEST(test_row_unconfigured)
{
	struct config cfg;
	struct policy *p;
	struct policy_tx *tx;
	struct outcome o = { 0 };
	struct policy_request req = { .stage = POLICY_STAGE_DATA, .session_id = "t1",
		.listener_role = "submission" };

	memset(&cfg, 0, sizeof cfg);
	cfg.clamd_timeout = 30000;
	p = test_engine(&cfg);
	tx = policy_tx_new(p, "submission", "t1");
	policy_tx_body(tx, "Subject: x\r\n\r\n", 14);
	req.tx = tx;
	policy_run(p, &req, test_policy_done, &o);
	ck_assert_int_eq(o.calls, 1);
	ck_assert_int_eq(o.v.kind, VERDICT_CONTINUE);
	policy_tx_free(tx);
	policy_free(p);
}
END_TEST

/* A value the configuration parser would refuse makes the engine refuse too. */
START_TEST(test_row_bad_target)
{
	struct config cfg;
	struct policy *p = NULL;
	char err[256] = "", spec[] = "tcp:clamd.example:3310";

	memset(&cfg, 0, sizeof cfg);
	cfg.clamd = spec;
	cfg.clamd_timeout = 30000;
	ck_assert_int_eq(policy_new_table(&loop, &cfg, NULL, test_row(), 1, &p, err, sizeof err),
	    -EINVAL);
	ck_assert_msg(strstr(err, "names are not resolved") != NULL, "%s", err);
}
END_TEST

/* clamd unreachable: 451 4.7.1, the reason in the audit notes. */
START_TEST(test_row_unreachable)
{
	struct config cfg;
	struct policy *p;
	struct policy_tx *tx;
	struct outcome o = { 0 };
	char spec[128];
	struct policy_request req = { .stage = POLICY_STAGE_DATA, .session_id = "t1",
		.listener_role = "mx" };

	snprintf(spec, sizeof spec, "unix:%s/none.sock", tmpdir);
	memset(&cfg, 0, sizeof cfg);
	cfg.clamd = spec;
	cfg.clamd_timeout = 30000;
	p = test_engine(&cfg);
	tx = policy_tx_new(p, "mx", "t1");
	policy_tx_body(tx, "Subject: x\r\n\r\nhello\r\n", 21);
	req.tx = tx;
	policy_run(p, &req, test_policy_done, &o);
	test_run_until(&o.calls);
	ck_assert_int_eq(o.v.kind, VERDICT_TEMPFAIL);
	ck_assert_int_eq(o.v.code, 451);
	ck_assert_str_eq(o.v.enh, "4.7.1");
	ck_assert_str_eq(o.v.rule, "antivirus");
	ck_assert_msg(strstr(policy_tx_notes(tx), "antivirus=error") != NULL &&
	    strstr(policy_tx_notes(tx), "cannot connect") != NULL, "%s", policy_tx_notes(tx));
	policy_tx_free(tx);
	policy_free(p);
}
END_TEST

/*
 * The transaction ends (a disconnect) while the DATA stage waits on a
 * clamd that never answers: the engine still gets exactly one answer, a
 * 451 4.7.1, from the loop, and nothing is left behind.
 */
START_TEST(test_row_tx_freed_while_waiting)
{
	struct config cfg;
	struct policy *p;
	struct policy_tx *tx;
	struct outcome o = { 0 };
	char spec[128];
	int fd = test_silent_peer(spec, sizeof spec);
	struct policy_request req = { .stage = POLICY_STAGE_DATA, .session_id = "t1",
		.listener_role = "mx" };

	memset(&cfg, 0, sizeof cfg);
	cfg.clamd = spec;
	cfg.clamd_timeout = 60000;
	p = test_engine(&cfg);
	tx = policy_tx_new(p, "mx", "t1");
	policy_tx_body(tx, "Subject: x\r\n\r\nhello\r\n", 21);
	req.tx = tx;
	policy_run(p, &req, test_policy_done, &o);
	for (int i = 0; i < 5; i++)
		uv_run(&loop, UV_RUN_NOWAIT);
	ck_assert_int_eq(o.calls, 0);
	policy_tx_free(tx);
	ck_assert_int_eq(o.calls, 0);   /* never from inside tx_free */
	test_run_until(&o.calls);
	ck_assert_int_eq(o.calls, 1);
	ck_assert_int_eq(o.v.kind, VERDICT_TEMPFAIL);
	ck_assert_int_eq(o.v.code, 451);
	ck_assert_str_eq(o.v.enh, "4.7.1");
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(o.calls, 1);
	policy_free(p);
	close(fd);
}
END_TEST

static Suite *clamd_suite(void)
{
	Suite *s = suite_create("clamd");
	TCase *tc = tcase_create("parse");
	TCase *tl = tcase_create("loop");

	tcase_add_loop_test(tc, test_reply, 0, N_CASES(reply_cases));
	tcase_add_test(tc, test_reply_bounds);
	tcase_add_loop_test(tc, test_target, 0, N_CASES(target_cases));
	tcase_add_test(tc, test_row_shape);
	suite_add_tcase(s, tc);
	tcase_add_checked_fixture(tl, test_setup, test_teardown);
	tcase_add_test(tl, test_scan_no_socket);
	tcase_add_test(tl, test_scan_refused);
	tcase_add_test(tl, test_scan_close_any_state);
	tcase_add_test(tl, test_scan_timeout);
	tcase_add_test(tl, test_scan_backlog_bounded);
	tcase_add_test(tl, test_row_unconfigured);
	tcase_add_test(tl, test_row_bad_target);
	tcase_add_test(tl, test_row_unreachable);
	tcase_add_test(tl, test_row_tx_freed_while_waiting);
	suite_add_tcase(s, tl);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(clamd_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
