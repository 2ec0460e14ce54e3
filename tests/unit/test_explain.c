/*
 * test_explain: the daemon's side of `policy explain` (relay/explain.c)
 * over an engine of fake rows: a control thread's explain_run waits
 * while the loop (this thread) runs MAIL, RCPT and DATA in explain mode;
 * the answer's records, one explain at a time (-EBUSY), the deadline
 * (-ETIMEDOUT, the run finishing on the loop after the caller left), and
 * the daemon stopping (-ESHUTDOWN, the waiter woken at once).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "admin/admin.h"
#include "common/buf.h"
#include "common/util.h"
#include "policy/check.h"
#include "policy/policy.h"
#include "queue/queue.h"
#include "relay/explain.h"

static char test_dir[64];
static struct queue_store *test_store;
static uv_loop_t test_loop;

/* What the fake rows do and saw. */
static bool gate_holds;                /* the MAIL row never answers by itself */
static struct policy_call *gate_held;
static int gate_runs;
static size_t body_bytes, body_bare_lf;
static char body_last;

static void gate_run(struct policy_call *call, const struct policy_request *req, void *state)
{
	struct verdict v;

	(void)req;
	(void)state;
	gate_runs++;
	if (gate_holds) {
		gate_held = call;
		return;
	}
	policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "gate open");
	policy_call_complete(call, &v);
}

static void refuse_run(struct policy_call *call, const struct policy_request *req, void *state)
{
	struct verdict v;

	(void)state;
	policy_verdict_set(&v, VERDICT_REJECT, 550, "5.7.1", "<%s>: dòng một\nline two",
	    req->rcpt);
	v.rule = "finer";
	policy_call_complete(call, &v);
}

/* The row's message state: the transaction (freed by the engine: no tx_free). */
struct adds_state {
	struct policy_tx *tx;
};

static void *adds_tx_new(void *state, struct policy_tx *tx)
{
	struct adds_state *a = calloc(1, sizeof *a);

	(void)state;
	ck_assert_ptr_nonnull(a);
	a->tx = tx;
	return a;
}

static void adds_body(void *txstate, const char *data, size_t len)
{
	(void)txstate;
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n' && (i > 0 ? data[i - 1] : body_last) != '\r')
			body_bare_lf++;
	}
	if (len > 0)
		body_last = data[len - 1];
	body_bytes += len;
}

static void adds_run(struct policy_call *call, const struct policy_request *req, void *state)
{
	struct adds_state *a = policy_call_tx_state(call);
	struct policy_tx *tx;
	struct verdict v;

	(void)state;
	ck_assert_ptr_nonnull(a);
	tx = a->tx;
	ck_assert_int_eq(req->headers->from_count, 1);
	policy_tx_add_header(tx, "X-Test: one\r\n\ttwo");
	policy_tx_note(tx, "seen", "%llu", (unsigned long long)req->size);
	policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "added");
	policy_call_complete(call, &v);
}

static const struct policy_check rows[] = {
	{ .name = "gate", .stages = POLICY_AT(POLICY_STAGE_MAIL), .roles = POLICY_ROLES_ALL,
	  .timeout_ms = 20000, .run = gate_run },
	{ .name = "refuse", .stages = POLICY_AT(POLICY_STAGE_RCPT),
	  .roles = POLICY_ROLE(CFG_ROLE_MX), .run = refuse_run },
	{ .name = "adds", .stages = POLICY_AT(POLICY_STAGE_DATA), .roles = POLICY_ROLES_ALL,
	  .run = adds_run, .tx_new = adds_tx_new, .body = adds_body },
};

static struct policy *test_policy;
static struct explain *test_x;

static void test_setup(void)
{
	char err[256] = "";

	str_copy(test_dir, "/tmp/govrelay-explain-XXXXXX", sizeof test_dir);
	ck_assert_ptr_nonnull(mkdtemp(test_dir));
	ck_assert_int_eq(queue_store_open(test_dir, 64 << 20, false, &test_store), 0);
	ck_assert_int_eq(uv_loop_init(&test_loop), 0);
	ck_assert_msg(policy_new_table(&test_loop, NULL, test_store, rows, 3, &test_policy, err,
	    sizeof err) == 0, "%s", err);
	test_x = explain_new(&test_loop, test_policy);
	gate_holds = false;
	gate_held = NULL;
	gate_runs = 0;
	body_bytes = body_bare_lf = 0;
	body_last = '\0';
}

static void test_teardown(void)
{
	char cmd[128];

	explain_stop(test_x);
	ck_assert_int_eq(uv_run(&test_loop, UV_RUN_DEFAULT), 0);
	explain_free(test_x);
	policy_free(test_policy);
	ck_assert_int_eq(uv_loop_close(&test_loop), 0);
	queue_store_close(test_store);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", test_dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* One control thread's explain_run. */
struct caller {
	uv_thread_t thread;
	const struct admin_explain_req *req;
	uint64_t wait_ms;
	struct buf out;
	int rc;
	atomic_bool finished;
};

static void caller_main(void *arg)
{
	struct caller *c = arg;

	c->rc = explain_run(test_x, c->req, uv_hrtime() + c->wait_ms * 1000000u, &c->out);
	atomic_store(&c->finished, true);
}

static void caller_start(struct caller *c, const struct admin_explain_req *req, uint64_t wait_ms)
{
	memset(c, 0, sizeof *c);
	buf_init(&c->out);
	c->req = req;
	c->wait_ms = wait_ms;
	atomic_store(&c->finished, false);
	ck_assert_int_eq(uv_thread_create(&c->thread, caller_main, c), 0);
}

/* Runs the loop until pred holds (or 10 s pass: a failure). */
static void loop_until(bool (*pred)(void *), void *arg, const char *what)
{
	uint64_t end = uv_hrtime() + 10000000000u;

	while (!pred(arg)) {
		ck_assert_msg(uv_hrtime() < end, "timed out waiting for %s", what);
		uv_run(&test_loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
}

static bool caller_done(void *arg)
{
	return atomic_load(&((struct caller *)arg)->finished);
}

static bool gate_is_held(void *arg)
{
	(void)arg;
	return gate_held != NULL;
}

static void caller_join(struct caller *c)
{
	loop_until(caller_done, c, "the caller");
	ck_assert_int_eq(uv_thread_join(&c->thread), 0);
}

/* The records as "stage|subject|rule|verdict|code|enh|text" lines. */
static void records_text(const struct buf *out, struct buf *t)
{
	size_t at = 0, k = 0;

	while (at < out->len) {
		const char *f = out->data + at;
		size_t n = strlen(f);

		buf_append(t, f, n);
		buf_append_char(t, ++k % ADMIN_EXPLAIN_FIELDS == 0 ? '\n' : '|');
		at += n + 1;
	}
}

static const char *const rcpts[] = { "a@example.org", "b@example.org" };
static const char message[] = "From: <s@example.org>\nSubject: hi\n\nbody\n";

static struct admin_explain_req test_req(void)
{
	struct admin_explain_req req = { .sender = "s@example.org", .rcpts = rcpts,
		.nrcpts = 2, .auth_user = NULL, .message = message, .len = sizeof message - 1,
		.by = "test" };

	return req;
}

/* Every stage, every rule, every recipient; then the notes and added fields. */
START_TEST(test_explain_records)
{
	struct admin_explain_req req = test_req();
	struct caller c;
	struct buf t;
	static const char want[] =
		"mail||gate|continue|0||gate open\n"
		"mail||(reply)|continue|0||accepted\n"
		"rcpt|a@example.org|refuse/finer|reject|550|5.7.1|"
		"<a@example.org>: dòng một\nline two\n"
		"rcpt|a@example.org|(reply)|reject|550|5.7.1|"
		"<a@example.org>: dòng một\nline two\n"
		"rcpt|b@example.org|refuse/finer|reject|550|5.7.1|"
		"<b@example.org>: dòng một\nline two\n"
		"rcpt|b@example.org|(reply)|reject|550|5.7.1|"
		"<b@example.org>: dòng một\nline two\n"
		"data||adds|continue|0||added\n"
		"data||(reply)|continue|0||accepted: the message would be queued\n"
		"note||||0||seen=44\n"
		"header||||0||X-Test: one\n\ttwo\n";

	caller_start(&c, &req, 5000);
	caller_join(&c);
	ck_assert_int_eq(c.rc, 0);
	buf_init(&t);
	records_text(&c.out, &t);
	ck_assert_str_eq(buf_cstr(&t), want);
	/* The body hooks saw the message with CRLF line ends: 4 lines, 4 CRs more. */
	ck_assert_uint_eq(body_bytes, sizeof message - 1 + 4);
	ck_assert_uint_eq(body_bare_lf, 0);
	buf_free(&t);
	buf_free(&c.out);
}
END_TEST

/* A second explain while one runs is busy at once; stopping wakes the waiter. */
START_TEST(test_explain_busy_then_stop)
{
	struct admin_explain_req req = test_req();
	struct caller c;
	struct buf out;
	struct verdict v;

	gate_holds = true;
	caller_start(&c, &req, 5000);
	loop_until(gate_is_held, NULL, "the gate to run");
	buf_init(&out);
	ck_assert_int_eq(explain_run(test_x, &req, uv_hrtime() + 100000000u, &out), -EBUSY);
	ck_assert_uint_eq(out.len, 0);
	explain_stop(test_x);
	caller_join(&c);
	ck_assert_int_eq(c.rc, -ESHUTDOWN);
	/* New requests are refused; the held check's late answer ends the run. */
	ck_assert_int_eq(explain_run(test_x, &req, uv_hrtime() + 100000000u, &out), -ESHUTDOWN);
	policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "late");
	policy_call_complete(gate_held, &v);
	ck_assert_int_eq(gate_runs, 1);
	buf_free(&out);
	buf_free(&c.out);
}
END_TEST

/*
 * The caller's deadline: -ETIMEDOUT while the run goes on; busy until
 * it has ended on the loop, then a new explain runs.
 */
START_TEST(test_explain_deadline)
{
	struct admin_explain_req req = test_req();
	struct caller c;
	struct buf out;
	struct verdict v;

	gate_holds = true;
	caller_start(&c, &req, 200);
	loop_until(gate_is_held, NULL, "the gate to run");
	caller_join(&c);
	ck_assert_int_eq(c.rc, -ETIMEDOUT);
	ck_assert_uint_eq(c.out.len, 0);
	buf_init(&out);
	ck_assert_int_eq(explain_run(test_x, &req, uv_hrtime() + 100000000u, &out), -EBUSY);
	gate_holds = false;
	policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "late");
	policy_call_complete(gate_held, &v);
	uv_run(&test_loop, UV_RUN_NOWAIT);
	buf_free(&c.out);
	caller_start(&c, &req, 5000);
	caller_join(&c);
	ck_assert_int_eq(c.rc, 0);
	ck_assert_ptr_nonnull(memmem(c.out.data, c.out.len, "gate open", 9));
	buf_free(&out);
	buf_free(&c.out);
}
END_TEST

static Suite *test_explain_suite(void)
{
	Suite *s = suite_create("explain");
	TCase *tc = tcase_create("service");

	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_add_test(tc, test_explain_records);
	tcase_add_test(tc, test_explain_busy_then_stop);
	tcase_add_test(tc, test_explain_deadline);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(test_explain_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
