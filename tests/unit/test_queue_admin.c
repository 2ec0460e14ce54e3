/*
 * test_queue_admin: unit tests of the queue changes shared by the daemon's
 * control socket and govrelayctl's store path (queue/queue_admin.c), and
 * of the control socket's line format (common/ctlproto.c).
 *
 * Each change case runs on a fresh store in its own mkdtemp directory,
 * removed at the end, and checks the result (code, text, changed), the
 * message afterwards and the audit record (or its absence).
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <check.h>

#include "common/ctlproto.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/queue_admin.h"

#define TQA_NOW 2000
#define TQA_LATER 5000
#define TQA_ID UINT64_C(0x10)

/* ------------------------------------------------------------ helpers */

struct tqa_env {
	char dir[64];
	struct queue_store *store;
};

static int tqa_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void tqa_setup(struct tqa_env *e)
{
	snprintf(e->dir, sizeof e->dir, "/tmp/test-queue-admin-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(e->dir));
	ck_assert_int_eq(queue_store_open(e->dir, 0, false, &e->store), 0);
}

static void tqa_teardown(struct tqa_env *e)
{
	queue_store_close(e->store);
	nftw(e->dir, tqa_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Stores a message with one pending recipient due at next. */
static void tqa_put(struct tqa_env *e, uint64_t id, int64_t next, bool held)
{
	struct queue_msg *m = xcalloc(1, sizeof *m);
	struct queue_txn *t;

	m->id = id;
	m->arrival = 1000;
	m->sender = xstrdup("a@example.org");
	m->client_addr = xstrdup("127.0.0.1");
	m->listener = xstrdup("mx");
	m->held = held;
	m->nrcpts = 1;
	m->rcpts = xcalloc(1, sizeof *m->rcpts);
	m->rcpts[0].addr = xstrdup("b@example.net");
	m->rcpts[0].state = QUEUE_RCPT_PENDING;
	m->rcpts[0].next_attempt = next;
	ck_assert_int_eq(queue_txn_begin(e->store, true, &t), 0);
	ck_assert_int_eq(queue_msg_put(t, m), 0);
	ck_assert_int_eq(queue_txn_commit(t), 0);
	queue_msg_free(m);
}

/* The message as stored now, or NULL when it is gone. */
static struct queue_msg *tqa_get(struct tqa_env *e, uint64_t id)
{
	struct queue_msg *m = NULL;
	struct queue_txn *t;
	int rc;

	ck_assert_int_eq(queue_txn_begin(e->store, false, &t), 0);
	rc = queue_msg_get(t, id, &m);
	queue_txn_abort(t);
	ck_assert(rc == 0 || rc == -ENOENT);
	return rc == 0 ? m : NULL;
}

struct tqa_audit {
	size_t n;
	char last[512]; /* the newest record from "qid=" on */
};

static int tqa_audit_cb(void *arg, const struct queue_audit_rec *rec)
{
	struct tqa_audit *a = arg;
	const char *p = strstr(rec->line, " qid=");

	a->n++;
	snprintf(a->last, sizeof a->last, "%s", p != NULL ? p + 1 : rec->line);
	return 0;
}

static void tqa_audit_read(struct tqa_env *e, struct tqa_audit *a)
{
	struct queue_txn *t;

	memset(a, 0, sizeof *a);
	ck_assert_int_eq(queue_txn_begin(e->store, false, &t), 0);
	ck_assert_int_eq(queue_audit_walk(t, tqa_audit_cb, a), 0);
	queue_txn_abort(t);
}

/* Applies one change in its own write transaction, committed. */
static void tqa_apply(struct tqa_env *e, enum queue_admin_verb verb, uint64_t id,
    struct queue_admin_result *res)
{
	struct queue_txn *t;

	ck_assert_int_eq(queue_txn_begin(e->store, true, &t), 0);
	ck_assert_int_eq(queue_admin_apply(t, verb, id, TQA_NOW, "uid:0", "store", res), 0);
	ck_assert_int_eq(queue_txn_commit(t), 0);
}

/* ------------------------------------------------------- one message */

static const struct tqa_case {
	const char *label;
	enum queue_admin_verb verb;
	bool held;           /* the message before */
	uint64_t id;         /* TQA_ID exists */
	int code;
	const char *text;
	const char *audit;   /* NULL: no record */
	int after;           /* -1 gone, else held afterwards */
	int64_t next;        /* next_attempt afterwards */
} tqa_cases[] = {
	{ "hold", QUEUE_ADMIN_HOLD, false, TQA_ID, 0, "0000000000000010 held",
	  "qid=0000000000000010 event=admin action=queue.hold by=uid:0 via=store pending=1",
	  1, TQA_LATER },
	{ "hold of a held message", QUEUE_ADMIN_HOLD, true, TQA_ID, 0,
	  "0000000000000010 is already held", NULL, 1, TQA_LATER },
	{ "release", QUEUE_ADMIN_RELEASE, true, TQA_ID, 0,
	  "0000000000000010 released; 1 pending recipients due now",
	  "qid=0000000000000010 event=admin action=queue.release by=uid:0 via=store pending=1",
	  0, TQA_NOW },
	{ "release of a message not held", QUEUE_ADMIN_RELEASE, false, TQA_ID, 0,
	  "0000000000000010 is not held", NULL, 0, TQA_LATER },
	{ "retry", QUEUE_ADMIN_RETRY, false, TQA_ID, 0,
	  "0000000000000010: 1 pending recipients due now",
	  "qid=0000000000000010 event=admin action=queue.retry by=uid:0 via=store pending=1",
	  0, TQA_NOW },
	{ "retry of a held message", QUEUE_ADMIN_RETRY, true, TQA_ID, 0,
	  "0000000000000010 is held; release it to have it delivered", NULL, 1, TQA_LATER },
	{ "delete", QUEUE_ADMIN_DELETE, false, TQA_ID, 0, "0000000000000010 deleted",
	  "qid=0000000000000010 event=admin action=queue.delete by=uid:0 via=store pending=1 "
	  "sender=a@example.org", -1, 0 },
	{ "unknown id", QUEUE_ADMIN_HOLD, false, 0xFF, EX_NOINPUT,
	  "no such message 00000000000000FF", NULL, 0, TQA_LATER },
};

START_TEST(test_apply)
{
	const struct tqa_case *tc = &tqa_cases[_i];
	struct queue_admin_result res;
	struct tqa_audit a;
	struct queue_msg *m;
	struct tqa_env e;

	tqa_setup(&e);
	tqa_put(&e, TQA_ID, TQA_LATER, tc->held);
	tqa_apply(&e, tc->verb, tc->id, &res);
	ck_assert_msg(res.code == tc->code, "%s: code %d", tc->label, res.code);
	ck_assert_msg(strcmp(res.text, tc->text) == 0, "%s: text '%s'", tc->label, res.text);
	ck_assert_msg(res.changed == (tc->audit != NULL), "%s: changed", tc->label);
	tqa_audit_read(&e, &a);
	if (tc->audit == NULL) {
		ck_assert_msg(a.n == 0, "%s: %zu audit records", tc->label, a.n);
	} else {
		ck_assert_msg(a.n == 1, "%s: %zu audit records", tc->label, a.n);
		ck_assert_msg(strcmp(a.last, tc->audit) == 0, "%s: audit '%s'", tc->label, a.last);
	}
	m = tqa_get(&e, TQA_ID);
	if (tc->after < 0) {
		ck_assert_msg(m == NULL, "%s: still stored", tc->label);
	} else {
		ck_assert_msg(m != NULL, "%s: gone", tc->label);
		ck_assert_msg(m->held == (tc->after == 1), "%s: held", tc->label);
		ck_assert_msg(m->rcpts[0].next_attempt == tc->next, "%s: next %lld", tc->label,
		    (long long)m->rcpts[0].next_attempt);
	}
	queue_msg_free(m);
	tqa_teardown(&e);
}
END_TEST

/* -------------------------------------------------------------- flush */

START_TEST(test_flush)
{
	struct queue_admin_result res;
	struct tqa_audit a;
	struct queue_msg *m;
	struct tqa_env e;

	tqa_setup(&e);
	tqa_put(&e, 1, TQA_LATER, false); /* made due */
	tqa_put(&e, 2, TQA_LATER, true);  /* held: left alone, counted */
	tqa_put(&e, 3, TQA_NOW, false);   /* due already: neither */
	tqa_apply(&e, QUEUE_ADMIN_FLUSH, 0, &res);
	ck_assert_int_eq(res.code, 0);
	ck_assert(res.changed);
	ck_assert_str_eq(res.text, "1 messages due now (1 held left alone)");
	m = tqa_get(&e, 1);
	ck_assert_int_eq(m->rcpts[0].next_attempt, TQA_NOW);
	queue_msg_free(m);
	m = tqa_get(&e, 2);
	ck_assert_int_eq(m->rcpts[0].next_attempt, TQA_LATER);
	queue_msg_free(m);
	tqa_audit_read(&e, &a);
	ck_assert_uint_eq(a.n, 1);
	ck_assert_str_eq(a.last, "qid= event=admin action=queue.flush by=uid:0 via=store "
	    "messages=1 held=1");

	/* Nothing left to do: no change and no second record. */
	tqa_apply(&e, QUEUE_ADMIN_FLUSH, 0, &res);
	ck_assert(!res.changed);
	ck_assert_str_eq(res.text, "0 messages due now (1 held left alone)");
	tqa_audit_read(&e, &a);
	ck_assert_uint_eq(a.n, 1);
	tqa_teardown(&e);
}
END_TEST

/* -------------------------------------------------------------- verbs */

START_TEST(test_verbs)
{
	static const struct {
		const char *name, *action;
		bool has_id;
	} want[] = {
		{ "hold", "queue.hold", true }, { "release", "queue.release", true },
		{ "delete", "queue.delete", true }, { "retry", "queue.retry", true },
		{ "flush", "queue.flush", false },
	};
	enum queue_admin_verb v;

	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		ck_assert_int_eq(queue_admin_verb_parse(want[i].name, &v), 0);
		ck_assert_int_eq(v, (int)i);
		ck_assert_str_eq(queue_admin_verb_name(v), want[i].name);
		ck_assert_str_eq(queue_admin_verb_action(v), want[i].action);
		ck_assert(queue_admin_verb_has_id(v) == want[i].has_id);
	}
	ck_assert_int_eq(queue_admin_verb_parse("HOLD", &v), -ENOENT);
	ck_assert_int_eq(queue_admin_verb_parse("", &v), -ENOENT);
}
END_TEST

/* ----------------------------------------------------------- ctlproto */

START_TEST(test_request)
{
	char out[32], line[64];
	const char *verb, *arg;

	ck_assert_int_eq(ctlproto_request_format(out, sizeof out, "hold", "0000000000000010"), 22);
	ck_assert_str_eq(out, "hold 0000000000000010\n");
	ck_assert_int_eq(ctlproto_request_format(out, sizeof out, "flush", ""), 6);
	ck_assert_str_eq(out, "flush\n");
	ck_assert_int_eq(ctlproto_request_format(out, 8, "release", "x"), -ENAMETOOLONG);

	/* A CR before the newline is dropped; the first space splits. */
	snprintf(line, sizeof line, "retry 00AB c\r");
	ck_assert_int_eq(ctlproto_request_parse(line, strlen(line), &verb, &arg), 0);
	ck_assert_str_eq(verb, "retry");
	ck_assert_str_eq(arg, "00AB c");
	snprintf(line, sizeof line, "flush");
	ck_assert_int_eq(ctlproto_request_parse(line, strlen(line), &verb, &arg), 0);
	ck_assert_str_eq(verb, "flush");
	ck_assert_ptr_null(arg);
	snprintf(line, sizeof line, "hold \t1");
	ck_assert_int_eq(ctlproto_request_parse(line, strlen(line), &verb, &arg), -EINVAL);
	snprintf(line, sizeof line, "hold \xc3\xa9");
	ck_assert_int_eq(ctlproto_request_parse(line, strlen(line), &verb, &arg), -EINVAL);
}
END_TEST

START_TEST(test_reply)
{
	static const struct {
		const char *label, *line;
		int rc, code;
		const char *text;
	} cases[] = {
		{ "ok", "ok 0000000000000010 held", 0, 0, "0000000000000010 held" },
		{ "error", "error 66 no such message X", 0, EX_NOINPUT, "no such message X" },
		{ "unavailable", "error 69 x", 0, EX_UNAVAILABLE, "x" },
		{ "code not of the protocol", "error 99 x", -EBADMSG, 0, NULL },
		{ "no space after code", "error 64x", -EBADMSG, 0, NULL },
		{ "bare ok", "ok", -EBADMSG, 0, NULL },
		{ "other", "hello", -EBADMSG, 0, NULL },
	};
	char out[24];
	const char *text;
	size_t n;
	int code;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		code = -1;
		ck_assert_msg(ctlproto_reply_parse(cases[i].line, &code, &text) == cases[i].rc,
		    "%s: rc", cases[i].label);
		if (cases[i].rc == 0) {
			ck_assert_msg(code == cases[i].code, "%s: code %d", cases[i].label, code);
			ck_assert_msg(strcmp(text, cases[i].text) == 0, "%s: text", cases[i].label);
		}
	}
	n = ctlproto_reply_format(out, sizeof out, 0, "a\nb\rc");
	ck_assert_uint_eq(n, 9);
	ck_assert_str_eq(out, "ok a b c\n");
	n = ctlproto_reply_format(out, sizeof out, EX_TEMPFAIL, "busy");
	ck_assert_str_eq(out, "error 75 busy\n");
	ck_assert_uint_eq(n, 14);
	/* Cut to the buffer, still one line. */
	n = ctlproto_reply_format(out, sizeof out, EX_USAGE, "0123456789abcdefghij\nrest");
	ck_assert_uint_eq(n, sizeof out - 1);
	ck_assert_str_eq(out, "error 64 0123456789abc\n");
}
END_TEST

static Suite *tqa_suite(void)
{
	Suite *s = suite_create("queue_admin");
	TCase *tc = tcase_create("admin");

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_apply, 0, (int)(sizeof tqa_cases / sizeof tqa_cases[0]));
	tcase_add_test(tc, test_flush);
	tcase_add_test(tc, test_verbs);
	tcase_add_test(tc, test_request);
	tcase_add_test(tc, test_reply);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tqa_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
