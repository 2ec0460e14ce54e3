/*
 * test_holes: the smaller holes of issue 9 that a unit can show.
 * - common/log.c: a text log line splits into exactly the fields its
 *   caller gave, whatever bytes a value holds (a recipient such as
 *   "x, status=sent"@d cannot plant a status= field; CR, LF and other
 *   controls cannot start a line).
 * - queue/audit_event.c: the `received` record of a message with 300
 *   recipients names all 300.
 * - queue/receive.c: a store error while expanding aliases (a mailbox
 *   record that cannot be decoded, written through the raw layer) is
 *   returned, never taken for "not an alias"; the commit fails with it.
 * - the configuration keys postmaster_address, max_inflight_memory and
 *   tls_ca_file: defaults and FILE:LINE errors.
 * - relay/tlsio.c: the verifying client context checks the chain and the
 *   next hop's name (host names with wildcards as a whole left label only,
 *   IP addresses against IP SANs, no name: refused); the opportunistic
 *   one checks nothing. Certificates come from the openssl command.
 *
 * Stores live in fresh mkdtemp folders, removed at the end.
 * OWNERSHIP: none. THREADS: Check forks one process per test.
 * ERRORS: assertion failures.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "queue/audit_event.h"
#include "queue/queue.h"
#include "queue/receive.h"
#include "queue/tenancy.h"
#include "queue/tenancy_int.h"
#include "relay/tlsio.h"

/* ----------------------------------------------------------------- log */

/*
 * Runs log_event with stderr pointed at a temporary file and returns the
 * line written (without its newline) in out.
 */
static void th_capture_event(const char *to, const char *status, char *out, size_t cap)
{
	FILE *f = tmpfile();
	int saved;
	size_t n;

	ck_assert_ptr_nonnull(f);
	saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(dup2(fileno(f), STDERR_FILENO), 0);
	log_open("test", true, LOG_FORMAT_TEXT);
	log_event(LOG_LVL_INFO, "0123456789ABCDEF", "to", to, "relay", "local",
	    "status", status, NULL);
	ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
	close(saved);
	rewind(f);
	n = fread(out, 1, cap - 1, f);
	fclose(f);
	out[n] = '\0';
	/* Exactly one line: nothing a value held may break it. */
	ck_assert_ptr_nonnull(strchr(out, '\n'));
	ck_assert_ptr_eq(strchr(out, '\n'), out + n - 1);
	out[n - 1] = '\0';
}

/* Replaces each \xNN in s by its byte, in place (a reader's decoding). */
static void th_unescape(char *s)
{
	char *w = s;

	while (*s) {
		unsigned v;

		if (s[0] == '\\' && s[1] == 'x' && sscanf(s + 2, "%2x", &v) == 1) {
			*w++ = (char)v;
			s += 4;
		} else {
			*w++ = *s++;
		}
	}
	*w = '\0';
}

/*
 * Splits the fields after "ID: " at ", " and each at its first '=';
 * checks the keys are exactly to, relay, status and returns the decoded
 * values of to and status.
 */
static void th_parse(char *line, char *to, char *status, size_t cap)
{
	const char *keys[] = { "to", "relay", "status" };
	char *p = strstr(line, "0123456789ABCDEF: "), *field, *save = NULL;
	size_t i = 0;

	ck_assert_ptr_nonnull(p);
	p += strlen("0123456789ABCDEF: ");
	for (field = strtok_r(p, ",", &save); field != NULL;
	    field = strtok_r(NULL, ",", &save), i++) {
		char *eq;

		if (i > 0) {
			ck_assert_int_eq(field[0], ' ');
			field++;
		}
		ck_assert_uint_lt(i, 3);
		eq = strchr(field, '=');
		ck_assert_ptr_nonnull(eq);
		*eq = '\0';
		ck_assert_str_eq(field, keys[i]);
		/* A value never holds an unescaped '=' either. */
		ck_assert_ptr_null(strchr(eq + 1, '='));
		th_unescape(eq + 1);
		if (i == 0)
			snprintf(to, cap, "%s", eq + 1);
		if (i == 2)
			snprintf(status, cap, "%s", eq + 1);
	}
	ck_assert_uint_eq(i, 3);
}

START_TEST(test_log_field_injection)
{
	static const struct {
		const char *to, *status;
	} cases[] = {
		{ "<\"x, status=sent\"@ours.test>", "deferred (451 4.3.0 try again)" },
		{ "<\"a\\\\b=c\"@ours.test>", "bounced (550 5.1.1 x=y, z)" },
		{ "<\"x\r\n0123456789ABCDEF: to=<y>, status=sent\"@d>", "deferred" },
		{ "<\"\x01\x7f\t\"@d>", "sent (250 2.0.0 Ok)" },
	};
	char line[2048], to[512], status[512];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		th_capture_event(cases[i].to, cases[i].status, line, sizeof line);
		/* The raw line carries exactly one "status=" and no CR. */
		ck_assert_ptr_nonnull(strstr(line, "status="));
		ck_assert_ptr_null(strstr(strstr(line, "status=") + 1, "status="));
		ck_assert_ptr_null(strchr(line, '\r'));
		th_parse(line, to, status, sizeof to);
		ck_assert_str_eq(to, cases[i].to);
		ck_assert_str_eq(status, cases[i].status);
	}
	/* The documented form of the example. */
	th_capture_event("<\"x, status=sent\"@ours.test>", "deferred", line, sizeof line);
	ck_assert_ptr_nonnull(strstr(line, "0123456789ABCDEF: to=<\"x\\x2c status\\x3dsent\"@ours.test>, "
	    "relay=local, status=deferred"));
}
END_TEST

/* ------------------------------------------------------------- store */

static int th_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

struct th_env {
	char dir[64];
	struct queue_store *store;
};

static void th_setup(struct th_env *e)
{
	snprintf(e->dir, sizeof e->dir, "/tmp/test-holes-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(e->dir));
	ck_assert_int_eq(queue_store_open(e->dir, 256u << 20, false, &e->store), 0);
}

static void th_teardown(struct th_env *e)
{
	queue_store_close(e->store);
	nftw(e->dir, th_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static struct queue_txn *th_begin(struct th_env *e, bool write)
{
	struct queue_txn *t;

	ck_assert_int_eq(queue_txn_begin(e->store, write, &t), 0);
	return t;
}

static int th_last_line_cb(void *arg, const struct queue_audit_rec *rec)
{
	struct buf *b = arg;

	buf_reset(b);
	buf_append_str(b, rec->line);
	return 0;
}

/* A request from 192.0.2.7 for n recipients r0@d.test ... or the given ones. */
static struct queue_receive *th_request(uint64_t id, size_t n, const char *const *rcpts)
{
	struct queue_receive *req = xcalloc(1, sizeof *req);
	struct queue_msg *m = &req->msg;

	m->id = id;
	m->arrival = 1795433400000;
	m->sender = xstrdup("boss@city.test");
	m->client_addr = xstrdup("192.0.2.7");
	m->listener = xstrdup("mx");
	m->nrcpts = n;
	m->rcpts = xcalloc(n, sizeof *m->rcpts);
	for (size_t i = 0; i < n; i++) {
		char a[64];

		snprintf(a, sizeof a, "r%zu@d.test", i);
		m->rcpts[i].addr = xstrdup(rcpts != NULL ? rcpts[i] : a);
		m->rcpts[i].next_attempt = m->arrival;
	}
	buf_init(&req->body);
	buf_append_str(&req->body, "Subject: x\r\n\r\nhi\r\n");
	m->size = req->body.len;
	m->nchunks = 1;
	return req;
}

START_TEST(test_audit_received_all_recipients)
{
	struct th_env e;
	struct queue_txn *t;
	struct queue_receive *req;
	struct queue_receive_result res;
	struct buf b;
	const char *p;
	size_t n = 0;

	th_setup(&e);
	buf_init(&b);
	req = th_request(0x5F1A2B3C4D5E6ull, 300, NULL);
	t = th_begin(&e, true);
	ck_assert_int_eq(queue_receive_apply(t, req, &res), 0);
	ck_assert_uint_eq(res.nrcpts, 300);
	ck_assert_int_eq(queue_audit_walk(t, th_last_line_cb, &b), 0);
	ck_assert_int_eq(queue_txn_commit(t), 0);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&b), " event=received "));
	ck_assert_ptr_nonnull(strstr(buf_cstr(&b), " nrcpt=300 "));
	for (p = buf_cstr(&b); (p = strstr(p, " to=r")) != NULL; p++) {
		char want[32];

		snprintf(want, sizeof want, " to=r%zu@d.test", n);
		ck_assert_msg(strncmp(p, want, strlen(want)) == 0, "recipient %zu: %.40s", n, p);
		n++;
	}
	ck_assert_uint_eq(n, 300);
	/* The chain still verifies with the large record in it. */
	t = th_begin(&e, false);
	{
		uint64_t count = 0, bad = 0;

		ck_assert_int_eq(queue_audit_verify(t, &count, &bad), 0);
		ck_assert_uint_eq(count, 1);
	}
	queue_txn_abort(t);
	queue_receive_result_free(&res);
	queue_receive_clear(req);
	free(req);
	buf_free(&b);
	th_teardown(&e);
}
END_TEST

START_TEST(test_alias_store_error)
{
	struct th_env e;
	struct queue_txn *t;
	struct queue_expansion *x;
	struct queue_receive *req;
	struct queue_receive_result res;
	struct queue_msg *got = NULL;
	struct queue_rcpt r = { .addr = "team@d.test" };
	static const char key[] = "d.test\0team";
	static const unsigned char junk[] = { 0xff, 0x00 };
	const char *rcpts[] = { "ok@d.test", "team@d.test" };
	size_t added = 7;

	th_setup(&e);
	t = th_begin(&e, true);
	/* An undecodable mailbox record: the lookup fails with -EBADMSG. */
	ck_assert_int_eq(tenancy__raw_put(t, TENANCY_DB_MAILBOXES, key, sizeof key - 1,
	    junk, sizeof junk), 0);
	ck_assert_int_eq(queue_txn_commit(t), 0);

	t = th_begin(&e, false);
	x = queue_expansion_new(0);
	r.addr = "ok@d.test";
	ck_assert_int_eq(queue_expansion_add(t, x, &r, &added), 0);
	ck_assert_uint_eq(added, 1);
	/* Before the fix: 0, and team@d.test queued as its own recipient. */
	r.addr = "team@d.test";
	ck_assert_int_eq(queue_expansion_add(t, x, &r, &added), -EBADMSG);
	ck_assert_uint_eq(added, 0);
	ck_assert_uint_eq(queue_expansion_count(x), 1);
	queue_expansion_free(x);
	queue_txn_abort(t);

	/* The commit fails with the store's error (the session answers 451). */
	req = th_request(0x5F1A2B3C4D5E7ull, 2, rcpts);
	t = th_begin(&e, true);
	ck_assert_int_eq(queue_receive_apply(t, req, &res), -EBADMSG);
	queue_receive_result_free(&res);
	queue_txn_abort(t);
	t = th_begin(&e, false);
	ck_assert_int_eq(queue_msg_get(t, 0x5F1A2B3C4D5E7ull, &got), -ENOENT);
	queue_txn_abort(t);
	queue_receive_clear(req);
	free(req);
	th_teardown(&e);
}
END_TEST

/* ------------------------------------------------------------ config */

/* Loads a config of the given extra lines; returns cfg_load's result. */
static int th_cfg(const char *extra, struct config **out, struct buf *errors)
{
	char path[] = "/tmp/test-holes-cfg-XXXXXX";
	int fd = mkstemp(path), rc;
	FILE *f;

	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "data_dir = /tmp\nhostname = relay.test\nlisten = mx 127.0.0.1:2525\n%s",
	    extra);
	fclose(f);
	rc = cfg_load_flags(path, 0, out, errors);
	unlink(path);
	return rc;
}

START_TEST(test_config_keys)
{
	struct config *cfg = NULL;
	struct buf err;

	buf_init(&err);
	ck_assert_int_eq(th_cfg("", &cfg, &err), 0);
	ck_assert_ptr_null(cfg->postmaster_address);
	ck_assert_uint_eq(cfg->max_inflight_memory, 268435456u);
	ck_assert_ptr_null(cfg->tls_ca_file);
	cfg_unref(cfg);

	ck_assert_int_eq(th_cfg("postmaster_address = PM@City.Test\n"
	    "max_inflight_memory = 1048576\n", &cfg, &err), 0);
	ck_assert_str_eq(cfg->postmaster_address, "pm@city.test");
	ck_assert_uint_eq(cfg->max_inflight_memory, 1048576u);
	cfg_unref(cfg);

	buf_reset(&err);
	ck_assert_int_eq(th_cfg("postmaster_address = Postmaster\n", &cfg, &err), -EINVAL);
	ck_assert_msg(strstr(buf_cstr(&err), ":4: postmaster_address:") != NULL, "%s",
	    buf_cstr(&err));
	buf_reset(&err);
	ck_assert_int_eq(th_cfg("max_inflight_memory = 100\n", &cfg, &err), -EINVAL);
	ck_assert_msg(strstr(buf_cstr(&err), ":4: max_inflight_memory") != NULL, "%s",
	    buf_cstr(&err));
	buf_reset(&err);
	ck_assert_int_eq(th_cfg("tls_ca_file = /nonexistent/ca.pem\n", &cfg, &err), -EINVAL);
	ck_assert_msg(strstr(buf_cstr(&err), ":4: tls_ca_file: cannot read") != NULL, "%s",
	    buf_cstr(&err));
	buf_free(&err);
}
END_TEST

/* -------------------------------------------------------------- tlsio */

struct th_end {
	struct tlsio *t;
	struct buf wire;   /* ciphertext sent, not yet delivered */
	bool up;
	int rc;
};

static void th_on_send(void *arg, const char *data, size_t len)
{
	buf_append(&((struct th_end *)arg)->wire, data, len);
}

static void th_on_plain(void *arg, const char *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
}

static void th_on_up(void *arg)
{
	((struct th_end *)arg)->up = true;
}

static const struct tlsio_callbacks th_cbs = { th_on_send, th_on_plain, th_on_up };

static bool th_move(struct th_end *from, struct th_end *to)
{
	struct buf b = from->wire;
	int rc;

	if (b.len == 0)
		return false;
	buf_init(&from->wire);
	if (to->rc == 0 && (rc = tlsio_feed(to->t, b.data, b.len)) != 0)
		to->rc = rc;
	buf_free(&b);
	return true;
}

/* A handshake with client context cctx and peer name; true when it completed. */
static bool th_handshake(struct tlsio_ctx *sctx, struct tlsio_ctx *cctx, const char *name,
    char *why, size_t whylen)
{
	struct th_end s = { 0 }, c = { 0 };
	int rounds = 0;
	bool ok;

	buf_init(&s.wire);
	buf_init(&c.wire);
	s.t = tlsio_new(sctx, true, NULL, &th_cbs, &s);
	c.t = tlsio_new(cctx, false, name, &th_cbs, &c);
	while ((th_move(&c, &s) | th_move(&s, &c)) && rounds++ < 1000)
		;
	ok = c.up && c.rc == 0;
	snprintf(why, whylen, "%s", tlsio_error(c.t));
	tlsio_free(s.t);
	tlsio_free(c.t);
	buf_free(&s.wire);
	buf_free(&c.wire);
	return ok;
}

static void th_sh(const char *dir, const char *cmd)
{
	char line[1024];

	snprintf(line, sizeof line, "cd %s && { %s; } >/dev/null 2>&1", dir, cmd);
	ck_assert_msg(system(line) == 0, "%s", cmd);
}

START_TEST(test_tls_verify_names)
{
	static const struct {
		const char *name;
		bool ok;
		const char *why;   /* substring of the error when refused */
	} cases[] = {
		{ "mx.good.test", true, NULL },
		{ "MX.Good.Test", true, NULL },
		{ "a.wild.test", true, NULL },
		{ "b.a.wild.test", false, "mismatch" },
		{ "other.test", false, "mismatch" },
		{ "127.0.0.1", true, NULL },
		{ "127.0.0.2", false, "IP address mismatch" },
		{ "::1", false, "IP address mismatch" },
		{ NULL, false, "mismatch" },
	};
	char dir[] = "/tmp/test-holes-tls-XXXXXX", path[128], key[128], ca[128], why[256];
	struct tlsio_ctx *sctx, *cctx, *sys;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	th_sh(dir, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
	    "-days 2 -subj /CN=ca -keyout ca.key -out ca.pem "
	    "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign");
	th_sh(dir, "printf 'subjectAltName=DNS:mx.good.test,DNS:*.wild.test,IP:127.0.0.1\\n"
	    "basicConstraints=CA:FALSE\\n' > leaf.ext && "
	    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=leaf "
	    "-keyout leaf.key -out leaf.csr && openssl x509 -req -in leaf.csr -CA ca.pem "
	    "-CAkey ca.key -CAcreateserial -days 2 -extfile leaf.ext -out leaf.pem");
	snprintf(path, sizeof path, "%s/leaf.pem", dir);
	snprintf(key, sizeof key, "%s/leaf.key", dir);
	snprintf(ca, sizeof ca, "%s/ca.pem", dir);
	ck_assert_int_eq(tlsio_ctx_new_server(path, key, &sctx, why, sizeof why), 0);
	ck_assert_msg(tlsio_ctx_new_client_ca(ca, &cctx, why, sizeof why) == 0, "%s", why);
	ck_assert_ptr_nonnull(tlsio_ctx_verifying(cctx));
	ck_assert_ptr_null(tlsio_ctx_verifying(sctx));
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bool ok = th_handshake(sctx, tlsio_ctx_verifying(cctx), cases[i].name, why,
		    sizeof why);

		ck_assert_msg(ok == cases[i].ok, "%s: %s", cases[i].name ? cases[i].name : "NULL",
		    why);
		if (!ok)
			ck_assert_msg(strstr(why, "did not verify") != NULL &&
			    strstr(why, cases[i].why) != NULL, "%s: %s", cases[i].name, why);
	}
	/* Opportunistic: any name, no verification. */
	ck_assert(th_handshake(sctx, cctx, "other.test", why, sizeof why));
	/* The system store does not know our test CA. */
	ck_assert_msg(tlsio_ctx_new_client(&sys, why, sizeof why) == 0, "%s", why);
	ck_assert(!th_handshake(sctx, tlsio_ctx_verifying(sys), "mx.good.test", why, sizeof why));
	ck_assert_msg(strstr(why, "unable to get local issuer certificate") != NULL, "%s", why);
	/* A CA file that cannot load is an error naming it. */
	tlsio_ctx_free(sys);
	ck_assert_int_eq(tlsio_ctx_new_client_ca("/nonexistent/ca.pem", &sys, why, sizeof why),
	    -EINVAL);
	ck_assert_ptr_null(sys);
	ck_assert_msg(strstr(why, "/nonexistent/ca.pem") != NULL, "%s", why);
	tlsio_ctx_free(cctx);
	tlsio_ctx_free(sctx);
	th_sh(dir, "rm -f ca.key ca.pem ca.srl leaf.ext leaf.key leaf.csr leaf.pem");
	rmdir(dir);
}
END_TEST

static Suite *holes_suite(void)
{
	Suite *s = suite_create("holes");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_log_field_injection);
	tcase_add_test(tc, test_audit_received_all_recipients);
	tcase_add_test(tc, test_alias_store_error);
	tcase_add_test(tc, test_config_keys);
	tcase_add_test(tc, test_tls_verify_names);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(holes_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
