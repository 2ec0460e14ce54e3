/*
 * test_admin_explain: the admin side of `policy explain` (admin/explain.c)
 * through admin_run, with a fake io->explain standing in for the daemon:
 * what the hook is asked (canonical recipients from a comma-separated
 * list, the submission identity when --from is a user of ours, the
 * message), how its records print (text with a multi-line verdict
 * indented, JSON one object per line) and the exit codes around it (no
 * daemon 69, busy 75, stopping 69, a message too large or empty 65, a
 * bad address 65). A real store in a temporary folder.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "admin/admin.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/util.h"
#include "queue/queue.h"

static char dir[64];
static struct config *cfg;
static struct queue_store *store;

/* What the fake daemon was asked, and what it answers. */
static struct {
	int calls;
	int rc;
	char sender[128];
	char rcpts[256];
	char auth_user[128];
	size_t len;
} fake;

static void add_field(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
	buf_append_char(b, '\0');
}

static void add_record(struct buf *b, const char *const f[7])
{
	for (int k = 0; k < 7; k++)
		add_field(b, f[k]);
}

static int fake_explain(void *arg, const struct admin_explain_req *req, struct buf *out)
{
	static const char *const recs[][7] = {
		{ "mail", "", "tenant", "continue", "0", "", "tenancy rules passed" },
		{ "rcpt", "a@example.org", "tenant/allow-external", "reject", "550", "5.7.1",
		  "dòng một\nline two" },
		{ "note", "", "", "", "0", "", "k=v" },
		{ "header", "", "", "", "0", "", "X-A: 1\n\t2" },
	};

	(void)arg;
	fake.calls++;
	str_copy(fake.sender, req->sender, sizeof fake.sender);
	fake.rcpts[0] = '\0';
	for (size_t i = 0; i < req->nrcpts; i++) {
		size_t n = strlen(fake.rcpts);

		snprintf(fake.rcpts + n, sizeof fake.rcpts - n, "%s%s", i ? "," : "", req->rcpts[i]);
	}
	str_copy(fake.auth_user, req->auth_user ? req->auth_user : "-", sizeof fake.auth_user);
	fake.len = req->len;
	if (fake.rc != 0)
		return fake.rc;
	for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++)
		add_record(out, recs[i]);
	return 0;
}

/* Runs one command as root with stdin in; its exit code, stdout and stderr. */
static int run(bool hook, const char *in, size_t inlen, char **out, char **err,
    const char *const *args)
{
	struct admin_io io;
	size_t outlen = 0, errlen = 0;
	char *argv[16];
	int argc = 0, rc;

	while (args[argc] != NULL) {
		argv[argc] = (char *)args[argc];
		argc++;
	}
	memset(&io, 0, sizeof io);
	io.out = open_memstream(out, &outlen);
	io.err = open_memstream(err, &errlen);
	io.in = inlen > 0 ? fmemopen((void *)in, inlen, "r") : fopen("/dev/null", "r");
	io.cfg = cfg;
	io.config_file = cfg->file;
	io.store = store;
	io.uid = 0;
	io.user = "root";
	io.super = true;
	io.remote = true;
	if (hook)
		io.explain = fake_explain;
	rc = admin_run(&io, argc, argv);
	fclose(io.out);
	fclose(io.err);
	fclose(io.in);
	return rc;
}

static void setup(void)
{
	char path[128], *out = NULL, *err = NULL;
	struct buf errs;
	FILE *f;
	static const char *const steps[][8] = {
		{ "tenant", "add", "ward", "--name", "Ward", NULL },
		{ "domain", "add", "ward.test", "--tenant", "ward", "--route", "mx", NULL },
		{ "user", "add", "clerk@ward.test", NULL },
	};

	str_copy(dir, "/tmp/govrelay-admexp-XXXXXX", sizeof dir);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/govrelay.conf", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "data_dir = %s\nlisten = mx 127.0.0.1:2525\nmax_message_size = 2048\n", dir);
	fclose(f);
	buf_init(&errs);
	ck_assert_msg(cfg_load(path, &cfg, &errs) == 0, "%s", buf_cstr(&errs));
	buf_free(&errs);
	ck_assert_int_eq(queue_store_open(dir, 64 << 20, false, &store), 0);
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		int rc = run(false, "Pw-long-enough-1\n", 17, &out, &err, steps[i]);

		ck_assert_msg(rc == 0, "%s %s: %d %s", steps[i][0], steps[i][1], rc, err);
		free(out);
		free(err);
	}
	memset(&fake, 0, sizeof fake);
}

static void teardown(void)
{
	char cmd[128];

	queue_store_close(store);
	cfg_unref(cfg);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static const char msg[] = "From: <clerk@ward.test>\r\nSubject: x\r\n\r\nhello\r\n";

/* Text: the table, the multi-line verdict indented to its column, notes, fields. */
START_TEST(test_text_output)
{
	static const char *const args[] = { "policy", "explain", "-", "--from",
		"clerk@ward.test", "--to", "a@example.org, b@EXAMPLE.org", NULL };
	char *out = NULL, *err = NULL, *two, *line_two;
	int rc = run(true, msg, sizeof msg - 1, &out, &err, args);

	ck_assert_msg(rc == 0, "%d: %s", rc, err);
	ck_assert_int_eq(fake.calls, 1);
	ck_assert_str_eq(fake.sender, "clerk@ward.test");
	ck_assert_str_eq(fake.rcpts, "a@example.org,b@example.org");
	ck_assert_str_eq(fake.auth_user, "clerk@ward.test");
	ck_assert_uint_eq(fake.len, sizeof msg - 1);
	ck_assert_ptr_nonnull(strstr(out, "# as submitted by our user from <clerk@ward.test>, "
	    "tenant ward\n"));
	ck_assert_ptr_nonnull(strstr(out, "STAGE"));
	two = strstr(out, "rcpt a@example.org  tenant/allow-external  reject");
	ck_assert_msg(two != NULL, "%s", out);
	ck_assert_ptr_nonnull(strstr(two, "550   5.7.1  dòng một\n"));
	/* The second line starts at the TEXT column. */
	line_two = strstr(two, "\n") + 1;
	ck_assert_int_eq((int)(strstr(line_two, "line two") - line_two),
	    (int)(strstr(two, "dòng") - two));
	ck_assert_ptr_nonnull(strstr(out, "\nnote: k=v\n"));
	ck_assert_ptr_nonnull(strstr(out, "\nheader: X-A: 1\n        2\n"));
	free(out);
	free(err);
}
END_TEST

/* --json: one object per record, the recipient on rcpt lines, code a number. */
START_TEST(test_json_output)
{
	static const char *const args[] = { "policy", "explain", "-", "--from",
		"someone@example.org", "--to", "a@example.org", "--json", NULL };
	char *out = NULL, *err = NULL;
	int rc = run(true, msg, sizeof msg - 1, &out, &err, args);

	ck_assert_msg(rc == 0, "%d: %s", rc, err);
	ck_assert_str_eq(fake.auth_user, "-");   /* not a user of ours: from outside */
	ck_assert_str_eq(out,
	    "{\"stage\":\"mail\",\"rule\":\"tenant\",\"verdict\":\"continue\",\"code\":0,"
	    "\"enh\":\"\",\"text\":\"tenancy rules passed\"}\n"
	    "{\"stage\":\"rcpt\",\"rcpt\":\"a@example.org\",\"rule\":\"tenant/allow-external\","
	    "\"verdict\":\"reject\",\"code\":550,\"enh\":\"5.7.1\",\"text\":\"dòng một\\nline two\"}\n"
	    "{\"stage\":\"note\",\"rule\":\"\",\"verdict\":\"\",\"code\":0,\"enh\":\"\","
	    "\"text\":\"k=v\"}\n"
	    "{\"stage\":\"header\",\"rule\":\"\",\"verdict\":\"\",\"code\":0,\"enh\":\"\","
	    "\"text\":\"X-A: 1\\n\\t2\"}\n");
	free(out);
	free(err);
}
END_TEST

/* The exit codes around the hook, each with the words that say why. */
static const struct {
	const char *label;
	bool hook;
	int hook_rc;
	const char *from, *to;
	size_t len;            /* of the message; (size_t)-1: 4096 bytes */
	int want;
	const char *words;
	int calls;
} codes[] = {
	{ "no daemon", false, 0, "a@example.org", "b@example.org", 10, EX_UNAVAILABLE,
	  "needs the running daemon", 0 },
	{ "busy", true, -EBUSY, "a@example.org", "b@example.org", 10, EX_TEMPFAIL,
	  "busy", 1 },
	{ "no answer in time", true, -ETIMEDOUT, "a@example.org", "b@example.org", 10,
	  EX_TEMPFAIL, "in time", 1 },
	{ "daemon stopping", true, -ESHUTDOWN, "a@example.org", "b@example.org", 10,
	  EX_UNAVAILABLE, "stopping", 1 },
	{ "too large", true, 0, "a@example.org", "b@example.org", (size_t)-1, EX_DATAERR,
	  "max_message_size (2048 bytes)", 0 },
	{ "empty", true, 0, "a@example.org", "b@example.org", 0, EX_DATAERR, "empty", 0 },
	{ "bad --to", true, 0, "a@example.org", "b@example.org,nope", 10, EX_DATAERR,
	  "--to", 0 },
	{ "bad --from", true, 0, "a b", "b@example.org", 10, EX_DATAERR, "--from", 0 },
	{ "null sender", true, 0, "<>", "b@example.org", 10, 0, "", 1 },
};

START_TEST(test_exit_codes)
{
	const char *args[] = { "policy", "explain", "-", "--from", codes[_i].from, "--to",
		codes[_i].to, NULL };
	static char big[4096];
	char *out = NULL, *err = NULL;
	size_t len = codes[_i].len == (size_t)-1 ? sizeof big : codes[_i].len;
	int rc;

	memset(big, 'x', sizeof big);
	fake.rc = codes[_i].hook_rc;
	rc = run(codes[_i].hook, big, len, &out, &err, args);
	ck_assert_msg(rc == codes[_i].want, "%s: exit %d, want %d (%s)", codes[_i].label, rc,
	    codes[_i].want, err);
	ck_assert_msg(strstr(err, codes[_i].words) != NULL, "%s: stderr %s", codes[_i].label,
	    err);
	ck_assert_msg(fake.calls == codes[_i].calls, "%s: the daemon asked %d times",
	    codes[_i].label, fake.calls);
	free(out);
	free(err);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("admin_explain");
	TCase *tc = tcase_create("explain");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_text_output);
	tcase_add_test(tc, test_json_output);
	tcase_add_loop_test(tc, test_exit_codes, 0, (int)(sizeof codes / sizeof codes[0]));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
