/*
 * test_queue_delivery: unit tests of recording a delivery pass as one
 * queue operation (queue/delivery.c): delivered, deferred with backoff,
 * bounced with a failure report queued through the receive path (and its
 * `received` record), expired past max_queue_lifetime (4.4.7), one delay
 * warning per message, a recipient changed meanwhile left alone, a
 * message deleted meanwhile, NOTIFY rules, and the backoff curve.
 *
 * Every test works in its own fresh mkdtemp directory, removed at the end.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/delivery.h"
#include "queue/queue.h"

#define TQ_ARRIVAL INT64_C(1795433400000)
#define TQ_MIN 300000u
#define TQ_MAX 4000000u

static int tq_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

struct tq_env {
	char dir[64];
	struct queue_store *store;
	/* What the report callback saw. */
	unsigned reports;
	enum queue_dsn_kind kinds[4];
	size_t wanted[4];
};

static void tq_setup(struct tq_env *e)
{
	memset(e, 0, sizeof *e);
	snprintf(e->dir, sizeof e->dir, "/tmp/test-qdlv-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(e->dir));
	ck_assert_int_eq(queue_store_open(e->dir, 64u << 20, false, &e->store), 0);
}

static void tq_teardown(struct tq_env *e)
{
	queue_store_close(e->store);
	nftw(e->dir, tq_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static struct queue_txn *tq_begin(struct tq_env *e, bool write)
{
	struct queue_txn *t;

	ck_assert_int_eq(queue_txn_begin(e->store, write, &t), 0);
	return t;
}

/* A queued message from sender to the given recipients, NOTIFY as given. */
static void tq_message(struct tq_env *e, uint64_t id, const char *sender,
    const char *const *rcpts, const unsigned *notify)
{
	struct queue_msg m = { .id = id, .arrival = TQ_ARRIVAL, .sender = (char *)sender,
		.client_addr = "192.0.2.1", .listener = "mx" };
	struct queue_rcpt r[8];
	struct queue_txn *t;

	memset(r, 0, sizeof r);
	while (rcpts[m.nrcpts] != NULL) {
		r[m.nrcpts].addr = (char *)rcpts[m.nrcpts];
		r[m.nrcpts].notify = notify ? notify[m.nrcpts] : 0;
		r[m.nrcpts].next_attempt = TQ_ARRIVAL;
		m.nrcpts++;
	}
	m.rcpts = r;
	t = tq_begin(e, true);
	ck_assert_int_eq(queue_body_put(t, id, 0, "Subject: x\r\n\r\nx\r\n", 17), 0);
	m.nchunks = 1;
	m.size = 17;
	ck_assert_int_eq(queue_msg_put(t, &m), 0);
	ck_assert_int_eq(queue_txn_commit(t), 0);
}

static int tq_report(void *arg, struct queue_txn *txn, const struct queue_msg *orig,
    const bool *want, enum queue_dsn_kind kind, uint64_t id, int64_t now,
    struct queue_receive *out)
{
	struct tq_env *e = arg;
	size_t n = 0;

	(void)txn;
	for (size_t i = 0; i < orig->nrcpts; i++)
		n += want[i];
	ck_assert_uint_lt(e->reports, 4);
	e->kinds[e->reports] = kind;
	e->wanted[e->reports] = n;
	e->reports++;
	out->msg.id = id;
	out->msg.arrival = now;
	out->msg.sender = xstrdup("");
	out->msg.listener = xstrdup("dsn");
	out->msg.nrcpts = 1;
	out->msg.rcpts = xcalloc(1, sizeof *out->msg.rcpts);
	out->msg.rcpts[0].addr = xstrdup(orig->sender);
	out->msg.rcpts[0].notify = QUEUE_NOTIFY_NEVER;
	out->msg.rcpts[0].next_attempt = now;
	buf_append_str(&out->body, "a report\r\n");
	out->msg.size = out->body.len;
	out->msg.nchunks = 1;
	return 0;
}

static void tq_request(struct tq_env *e, struct queue_delivery_result *req, uint64_t id,
    int64_t now, const struct queue_delivery_attempt *att, size_t n)
{
	memset(req, 0, sizeof *req);
	req->id = id;
	req->now = now;
	req->rcpts = att;
	req->n = n;
	req->max_queue_lifetime = 5u * 86400000u;
	req->delay_warning_time = 4u * 3600000u;
	req->minimal_backoff_time = TQ_MIN;
	req->maximal_backoff_time = TQ_MAX;
	req->failure_report_id = id + 100;
	req->delay_report_id = id + 200;
	req->report = tq_report;
	req->report_arg = e;
}

static int tq_apply(struct tq_env *e, const struct queue_delivery_result *req,
    struct queue_delivery_outcome *out)
{
	struct queue_txn *t = tq_begin(e, true);
	int rc = queue_delivery_apply(t, req, out);

	if (rc == 0)
		ck_assert_int_eq(queue_txn_commit(t), 0);
	else
		queue_txn_abort(t);
	return rc;
}

static int tq_line_cb(void *arg, const struct queue_audit_rec *rec)
{
	struct buf *b = arg;

	buf_append_str(b, rec->event);
	buf_append_char(b, ' ');
	buf_append_str(b, rec->line);
	buf_append_char(b, '\n');
	return 0;
}

static void tq_audit(struct tq_env *e, struct buf *out)
{
	struct queue_txn *t = tq_begin(e, false);

	buf_reset(out);
	ck_assert_int_eq(queue_audit_walk(t, tq_line_cb, out), 0);
	queue_txn_abort(t);
}

START_TEST(test_outcomes_and_failure_report)
{
	struct tq_env e;
	const char *rcpts[] = { "ok@a.test", "temp@a.test", "perm@a.test", "none@a.test", NULL };
	struct queue_delivery_attempt att[] = {
		{ 0, "ok@a.test", QUEUE_OUTCOME_OK, 250, "2.0.0", "2.0.0 Ok", "hop" },
		{ 1, "temp@a.test", QUEUE_OUTCOME_TEMP, 451, "4.3.0", "4.3.0 later", "hop" },
		{ 2, "perm@a.test", QUEUE_OUTCOME_PERM, 550, "5.1.1", "5.1.1 no such user", "hop" },
		{ 3, "none@a.test", QUEUE_OUTCOME_NONE, 0, "", "", "hop" },
	};
	struct queue_delivery_record rec[4];
	struct queue_delivery_outcome out = { .rcpts = rec };
	struct queue_delivery_result req;
	struct queue_msg *m;
	struct queue_txn *t;
	struct buf b;
	int64_t now = TQ_ARRIVAL + 60000;

	tq_setup(&e);
	buf_init(&b);
	tq_message(&e, 0x10, "sender@b.test", rcpts, NULL);
	tq_request(&e, &req, 0x10, now, att, 4);
	ck_assert_int_eq(tq_apply(&e, &req, &out), 0);
	ck_assert(!out.gone);
	ck_assert(rec[0].applied && rec[1].applied && rec[2].applied && !rec[3].applied);
	ck_assert_int_eq(rec[0].status, QUEUE_DELIVERY_SENT);
	ck_assert_int_eq(rec[1].status, QUEUE_DELIVERY_DEFERRED);
	ck_assert_int_eq(rec[2].status, QUEUE_DELIVERY_BOUNCED);
	ck_assert_uint_eq(rec[1].attempts, 1);
	/* One failure report, about the bounced recipient only. */
	ck_assert(out.failure_report_queued && !out.delay_report_queued);
	ck_assert_uint_eq(e.reports, 1);
	ck_assert_int_eq(e.kinds[0], QUEUE_DSN_FAILURE);
	ck_assert_uint_eq(e.wanted[0], 1);

	t = tq_begin(&e, false);
	ck_assert_int_eq(queue_msg_get(t, 0x10, &m), 0);
	ck_assert_int_eq(m->rcpts[0].state, QUEUE_RCPT_DELIVERED);
	ck_assert_int_eq(m->rcpts[1].state, QUEUE_RCPT_PENDING);
	ck_assert_int_eq(m->rcpts[1].next_attempt, now + TQ_MIN);
	ck_assert_str_eq(m->rcpts[1].last_reply, "4.3.0 later");
	ck_assert_int_eq(m->rcpts[2].state, QUEUE_RCPT_FAILED);
	ck_assert_int_eq(m->rcpts[3].state, QUEUE_RCPT_PENDING);
	ck_assert_uint_eq(m->rcpts[3].attempts, 0);
	queue_msg_free(m);
	/* The report is a message of its own, received with its record. */
	ck_assert_int_eq(queue_msg_get(t, 0x10 + 100, &m), 0);
	ck_assert_str_eq(m->sender, "");
	ck_assert_str_eq(m->rcpts[0].addr, "sender@b.test");
	queue_msg_free(m);
	queue_txn_abort(t);
	tq_audit(&e, &b);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&b), "delivered "));
	ck_assert_ptr_nonnull(strstr(buf_cstr(&b), "event=deferred to=temp@a.test relay=hop "
	    "dsn=4.3.0 status=deferred"));
	ck_assert_ptr_nonnull(strstr(buf_cstr(&b), "event=failed to=perm@a.test relay=hop "
	    "dsn=5.1.1 status=bounced"));
	ck_assert_ptr_nonnull(strstr(buf_cstr(&b), "qid=0000000000000074 event=received from= "
	    "to=sender@b.test kind=failure about=0000000000000010"));
	ck_assert_ptr_null(strstr(buf_cstr(&b), "none@a.test"));
	buf_free(&b);
	tq_teardown(&e);
}
END_TEST

START_TEST(test_expiry_delay_and_gone)
{
	struct tq_env e;
	const char *rcpts[] = { "x@a.test", "y@a.test", NULL };
	const unsigned notify[] = { QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY, QUEUE_NOTIFY_NEVER };
	struct queue_delivery_attempt att[] = {
		{ 0, "x@a.test", QUEUE_OUTCOME_TEMP, 451, "4.4.1", "4.4.1 no answer", "hop" },
		{ 1, "y@a.test", QUEUE_OUTCOME_TEMP, 451, "4.4.1", "4.4.1 no answer", "hop" },
	};
	struct queue_delivery_record rec[2];
	struct queue_delivery_outcome out = { .rcpts = rec };
	struct queue_delivery_result req;
	struct queue_msg *m;
	struct queue_txn *t;

	tq_setup(&e);
	tq_message(&e, 0x20, "sender@b.test", rcpts, notify);
	/* Five hours in: a delay warning, for x only (y said NEVER). */
	tq_request(&e, &req, 0x20, TQ_ARRIVAL + 5 * 3600000, att, 2);
	ck_assert_int_eq(tq_apply(&e, &req, &out), 0);
	ck_assert(out.delay_report_queued && !out.failure_report_queued);
	ck_assert_uint_eq(e.reports, 1);
	ck_assert_int_eq(e.kinds[0], QUEUE_DSN_DELAY);
	ck_assert_uint_eq(e.wanted[0], 1);
	/* Once per message. */
	tq_request(&e, &req, 0x20, TQ_ARRIVAL + 6 * 3600000, att, 2);
	ck_assert_int_eq(tq_apply(&e, &req, &out), 0);
	ck_assert(!out.delay_report_queued);
	ck_assert_uint_eq(e.reports, 1);
	ck_assert_uint_eq(rec[0].attempts, 2);
	/* Past max_queue_lifetime: expired, 4.4.7, failure report for x. */
	tq_request(&e, &req, 0x20, TQ_ARRIVAL + 6 * 86400000LL, att, 2);
	ck_assert_int_eq(tq_apply(&e, &req, &out), 0);
	ck_assert_int_eq(rec[0].status, QUEUE_DELIVERY_EXPIRED);
	ck_assert_str_eq(rec[0].dsn, "4.4.7");
	ck_assert_str_eq(rec[0].reply, "4.4.7 message expired; last error: 4.4.1 no answer");
	ck_assert(out.failure_report_queued);
	ck_assert_uint_eq(e.reports, 2);
	ck_assert_uint_eq(e.wanted[1], 1);
	/* Nothing pends: the message is gone, the reports stay. */
	t = tq_begin(&e, false);
	ck_assert_int_eq(queue_msg_get(t, 0x20, &m), -ENOENT);
	ck_assert_int_eq(queue_msg_get(t, 0x20 + 100, &m), 0);
	queue_msg_free(m);
	queue_txn_abort(t);
	/* Results for a message deleted meanwhile change nothing. */
	ck_assert_int_eq(tq_apply(&e, &req, &out), 0);
	ck_assert(out.gone);
	ck_assert(!rec[0].applied);
	tq_teardown(&e);
}
END_TEST

START_TEST(test_rules)
{
	struct queue_delivery_result req = { .minimal_backoff_time = TQ_MIN,
		.maximal_backoff_time = TQ_MAX };
	struct queue_rcpt r = { .addr = "x@a.test" };
	struct queue_msg m = { .sender = "s@b.test" };

	ck_assert_int_eq(queue_delivery_backoff(&req, 1), TQ_MIN);
	ck_assert_int_eq(queue_delivery_backoff(&req, 2), 2 * TQ_MIN);
	ck_assert_int_eq(queue_delivery_backoff(&req, 4), 8 * TQ_MIN);
	ck_assert_int_eq(queue_delivery_backoff(&req, 30), TQ_MAX);
	req.time_scale = 1000;
	ck_assert_int_eq(queue_delivery_backoff(&req, 1), TQ_MIN / 1000);
	req.minimal_backoff_time = 1;
	ck_assert_int_eq(queue_delivery_backoff(&req, 1), 1);  /* never 0 */
	/* RFC 3461 section 4.1 */
	ck_assert(queue_dsn_wanted(&m, &r, QUEUE_DSN_FAILURE));
	ck_assert(queue_dsn_wanted(&m, &r, QUEUE_DSN_DELAY));
	ck_assert(!queue_dsn_wanted(&m, &r, QUEUE_DSN_SUCCESS));
	r.notify = QUEUE_NOTIFY_SUCCESS;
	ck_assert(!queue_dsn_wanted(&m, &r, QUEUE_DSN_FAILURE));
	ck_assert(queue_dsn_wanted(&m, &r, QUEUE_DSN_SUCCESS));
	m.sender = "";
	ck_assert(!queue_dsn_wanted(&m, &r, QUEUE_DSN_SUCCESS));
	ck_assert_str_eq(queue_dsn_kind_name(QUEUE_DSN_DELAY), "delay");
}
END_TEST

static Suite *qdlv_suite(void)
{
	Suite *s = suite_create("queue_delivery");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_outcomes_and_failure_report);
	tcase_add_test(tc, test_expiry_delay_and_gone);
	tcase_add_test(tc, test_rules);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(qdlv_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
