/*
 * test_receive: unit tests of receiving a message as one queue operation
 * (queue/receive.c) and of the audit vocabulary (queue/audit_event.c):
 * alias expansion with nested aliases, loops, duplicates (also by case)
 * and ORCPT kept; the bound, which leaves the set unchanged when it
 * refuses; ten aliases of 1,000 members (the time is printed, never
 * asserted); queue_receive_apply storing envelope, body, schedule, tenant
 * facts, require_tls and the `received` record; a generated report
 * received as it is; and each event builder's field names and order.
 *
 * Every test works in its own fresh mkdtemp directory, removed at the end.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/audit_event.h"
#include "queue/queue.h"
#include "queue/receive.h"
#include "queue/tenancy.h"

/* ------------------------------------------------------------ helpers */

static int tr_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

struct tr_env {
	char dir[64];
	struct queue_store *store;
};

static void tr_setup(struct tr_env *e)
{
	snprintf(e->dir, sizeof e->dir, "/tmp/test-receive-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(e->dir));
	ck_assert_int_eq(queue_store_open(e->dir, 256u << 20, false, &e->store), 0);
}

static void tr_teardown(struct tr_env *e)
{
	queue_store_close(e->store);
	nftw(e->dir, tr_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static struct queue_txn *tr_begin(struct tr_env *e, bool write)
{
	struct queue_txn *t;

	ck_assert_int_eq(queue_txn_begin(e->store, write, &t), 0);
	return t;
}

static void tr_tenant(struct queue_txn *t, const char *id, const char *parent)
{
	struct queue_tenant rec = { (char *)id, (char *)id, (char *)parent, 1000 };
	char why[256];

	ck_assert_int_eq(queue_tenant_put(t, &rec, why, sizeof why), 0);
}

static void tr_domain(struct queue_txn *t, const char *name, const char *tenant)
{
	struct queue_domain d = { .name = (char *)name, .tenant = (char *)tenant,
		.route = "mx", .created = 5 };

	ck_assert_int_eq(queue_domain_put(t, &d), 0);
}

/* A mailbox, or an alias of the NULL-terminated targets. */
static void tr_mailbox(struct queue_txn *t, const char *addr, const char *const *targets)
{
	struct queue_mailbox m = { (char *)addr, NULL, 0, 7 };
	char why[256];

	while (targets != NULL && targets[m.nalias_of] != NULL)
		m.nalias_of++;
	m.alias_of = (char **)targets;
	ck_assert_msg(queue_mailbox_put(t, &m, why, sizeof why) == 0, "%s: %s", addr, why);
}

/* "a;b;c;" of the set's addresses, in order. */
static void tr_list(const struct queue_expansion *x, struct buf *out)
{
	buf_reset(out);
	for (size_t i = 0; i < queue_expansion_count(x); i++) {
		buf_append_str(out, queue_expansion_get(x, i)->addr);
		buf_append_char(out, ';');
	}
}

static int tr_add(struct queue_txn *t, struct queue_expansion *x, const char *addr,
    const char *orcpt, size_t *added)
{
	struct queue_rcpt r = { .addr = (char *)addr, .orcpt = (char *)orcpt,
		.notify = QUEUE_NOTIFY_FAILURE };

	return queue_expansion_add(t, x, &r, added);
}

/* The canonical line of the last audit record. */
static int tr_last_line_cb(void *arg, const struct queue_audit_rec *rec)
{
	struct buf *b = arg;

	buf_reset(b);
	buf_append_str(b, rec->line);
	return 0;
}

static void tr_last_line(struct queue_txn *t, struct buf *out)
{
	ck_assert_int_eq(queue_audit_walk(t, tr_last_line_cb, out), 0);
}

/* The audit line without its "seq=N time=T " head. */
static const char *tr_tail(struct buf *line)
{
	const char *p = strstr(buf_cstr(line), " qid=");

	ck_assert_ptr_nonnull(p);
	return p + 1;
}

/* -------------------------------------------------------------- tests */

START_TEST(test_expand_nested_dups_orcpt)
{
	struct tr_env e;
	struct queue_txn *t;
	struct queue_expansion *x;
	struct buf b;
	size_t added;
	const char *team[] = { "a@d.test", "sub@d.test", NULL };
	const char *sub[] = { "b@d.test", "c@d.test", "a@d.test", NULL };

	tr_setup(&e);
	buf_init(&b);
	t = tr_begin(&e, true);
	tr_domain(t, "d.test", NULL);
	tr_mailbox(t, "a@d.test", NULL);
	tr_mailbox(t, "b@d.test", NULL);
	tr_mailbox(t, "team@d.test", team);
	tr_mailbox(t, "sub@d.test", sub);
	x = queue_expansion_new(0);
	ck_assert_int_eq(tr_add(t, x, "Team@D.test", NULL, &added), 0);
	ck_assert_uint_eq(added, 3);
	tr_list(x, &b);
	ck_assert_str_eq(buf_cstr(&b), "a@d.test;b@d.test;c@d.test;");
	/* The DSN names the address the client gave (RFC 3461 section 4.2). */
	ck_assert_str_eq(queue_expansion_get(x, 0)->orcpt, "rfc822;Team@D.test");
	ck_assert_uint_eq(queue_expansion_get(x, 0)->notify, QUEUE_NOTIFY_FAILURE);
	/* A plain mailbox already there, in another case: not twice. */
	ck_assert_int_eq(tr_add(t, x, "A@D.TEST", NULL, &added), 0);
	ck_assert_uint_eq(added, 0);
	/* The alias again, and an external address with its own ORCPT. */
	ck_assert_int_eq(tr_add(t, x, "team@d.test", "rfc822;x@y", &added), 0);
	ck_assert_uint_eq(added, 0);
	ck_assert_int_eq(tr_add(t, x, "Ext@Example.org", "rfc822;orig@example.org", &added), 0);
	ck_assert_uint_eq(added, 1);
	ck_assert_str_eq(queue_expansion_get(x, 3)->addr, "Ext@Example.org");
	ck_assert_str_eq(queue_expansion_get(x, 3)->orcpt, "rfc822;orig@example.org");
	queue_expansion_free(x);

	/* The client's ORCPT wins over the alias address. */
	x = queue_expansion_new(0);
	ck_assert_int_eq(tr_add(t, x, "sub@d.test", "rfc822;list@old.example", &added), 0);
	ck_assert_uint_eq(added, 3);
	for (size_t i = 0; i < 3; i++)
		ck_assert_str_eq(queue_expansion_get(x, i)->orcpt, "rfc822;list@old.example");
	queue_expansion_free(x);
	queue_txn_abort(t);
	buf_free(&b);
	tr_teardown(&e);
}
END_TEST

START_TEST(test_expand_loops)
{
	struct tr_env e;
	struct queue_txn *t;
	struct queue_expansion *x;
	struct buf b;
	size_t added;
	const char *l1[] = { "l2@d.test", NULL };
	const char *l2[] = { "l1@d.test", "m@d.test", NULL };
	const char *self[] = { "self@d.test", "m@d.test", NULL };

	tr_setup(&e);
	buf_init(&b);
	t = tr_begin(&e, true);
	tr_domain(t, "d.test", NULL);
	tr_mailbox(t, "l1@d.test", l1);
	tr_mailbox(t, "l2@d.test", l2);
	tr_mailbox(t, "self@d.test", self);
	x = queue_expansion_new(0);
	/* l1 -> l2 -> l1 stops at the loop; m once. */
	ck_assert_int_eq(tr_add(t, x, "l1@d.test", NULL, &added), 0);
	tr_list(x, &b);
	ck_assert_str_eq(buf_cstr(&b), "l1@d.test;m@d.test;");
	/* From l2 the loop closes at l2 (queue_alias_expand's rule); m once. */
	ck_assert_int_eq(tr_add(t, x, "l2@d.test", NULL, &added), 0);
	ck_assert_uint_eq(added, 1);
	/* An alias that keeps its own copy. */
	ck_assert_int_eq(tr_add(t, x, "self@d.test", NULL, &added), 0);
	ck_assert_uint_eq(added, 1);
	tr_list(x, &b);
	ck_assert_str_eq(buf_cstr(&b), "l1@d.test;m@d.test;l2@d.test;self@d.test;");
	queue_expansion_free(x);
	queue_txn_abort(t);
	buf_free(&b);
	tr_teardown(&e);
}
END_TEST

START_TEST(test_expand_bound)
{
	struct tr_env e;
	struct queue_txn *t;
	struct queue_expansion *x;
	struct buf b;
	size_t added = 99;
	const char *six[] = { "p1@d.test", "p2@d.test", "p3@d.test", "p4@d.test",
		"p5@d.test", "p6@d.test", NULL };
	const char *two[] = { "p1@d.test", "q1@d.test", "q2@d.test", NULL };

	tr_setup(&e);
	buf_init(&b);
	t = tr_begin(&e, true);
	tr_domain(t, "d.test", NULL);
	tr_mailbox(t, "six@d.test", six);
	tr_mailbox(t, "two@d.test", two);
	x = queue_expansion_new(5);
	/* Alone over the bound: refused, nothing added. */
	ck_assert_int_eq(tr_add(t, x, "six@d.test", NULL, &added), -E2BIG);
	ck_assert_uint_eq(added, 0);
	ck_assert_uint_eq(queue_expansion_count(x), 0);
	ck_assert_int_eq(tr_add(t, x, "p1@d.test", NULL, NULL), 0);
	ck_assert_int_eq(tr_add(t, x, "p2@d.test", NULL, NULL), 0);
	ck_assert_int_eq(tr_add(t, x, "p3@d.test", NULL, NULL), 0);
	ck_assert_int_eq(tr_add(t, x, "p4@d.test", NULL, NULL), 0);
	/* two brings q1 and q2 (p1 is in): 6 > 5, refused, set unchanged. */
	ck_assert_int_eq(tr_add(t, x, "two@d.test", NULL, NULL), -E2BIG);
	tr_list(x, &b);
	ck_assert_str_eq(buf_cstr(&b), "p1@d.test;p2@d.test;p3@d.test;p4@d.test;");
	/* Already there costs nothing, even at the bound. */
	ck_assert_int_eq(tr_add(t, x, "p5@d.test", NULL, NULL), 0);
	ck_assert_int_eq(tr_add(t, x, "P5@d.test", NULL, &added), 0);
	ck_assert_uint_eq(added, 0);
	ck_assert_int_eq(tr_add(t, x, "p6@d.test", NULL, NULL), -E2BIG);
	ck_assert_uint_eq(queue_expansion_count(x), 5);
	queue_expansion_free(x);
	/* 0 means the default bound. */
	x = queue_expansion_new(0);
	ck_assert_int_eq(tr_add(t, x, "six@d.test", NULL, NULL), 0);
	ck_assert_uint_eq(queue_expansion_count(x), 6);
	queue_expansion_free(x);
	queue_txn_abort(t);
	buf_free(&b);
	tr_teardown(&e);
}
END_TEST

/* Ten aliases of 1,000 members overlapping by half: 5,500 people. */
START_TEST(test_expand_ten_wide_aliases)
{
	struct tr_env e;
	struct queue_txn *t;
	struct queue_expansion *x;
	struct queue_mailbox m = { NULL, NULL, 0, 0 };
	char **targets = xcalloc(TENANCY_ALIAS_TARGETS_MAX, sizeof *targets);
	struct timespec t0, t1;
	double ms;

	tr_setup(&e);
	t = tr_begin(&e, true);
	tr_domain(t, "hn.test", NULL);
	for (int l = 0; l < 10; l++) {
		char addr[64];

		snprintf(addr, sizeof addr, "list%d@hn.test", l);
		for (int i = 0; i < TENANCY_ALIAS_TARGETS_MAX; i++) {
			char p[64];

			snprintf(p, sizeof p, "p%d@hn.test", l * 500 + i);
			targets[i] = xstrdup(p);
		}
		m.address = addr;
		m.alias_of = targets;
		m.nalias_of = TENANCY_ALIAS_TARGETS_MAX;
		ck_assert_int_eq(queue_mailbox_put(t, &m, NULL, 0), 0);
		for (int i = 0; i < TENANCY_ALIAS_TARGETS_MAX; i++)
			free(targets[i]);
	}
	ck_assert_int_eq(queue_txn_commit(t), 0);
	free(targets);

	t = tr_begin(&e, false);
	x = queue_expansion_new(0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int l = 0; l < 10; l++) {
		char addr[64];

		snprintf(addr, sizeof addr, "list%d@hn.test", l);
		ck_assert_int_eq(tr_add(t, x, addr, NULL, NULL), 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	fprintf(stderr, "test_receive: ten aliases of 1,000 members expanded to %zu in %.1f ms\n",
	    queue_expansion_count(x), ms);
	ck_assert_uint_eq(queue_expansion_count(x), 9 * 500 + 1000);
	/* Each person once, in the order of the first alias naming them. */
	for (size_t i = 0; i < queue_expansion_count(x); i++) {
		char want[64];

		snprintf(want, sizeof want, "p%zu@hn.test", i);
		ck_assert_str_eq(queue_expansion_get(x, i)->addr, want);
	}
	queue_expansion_free(x);
	queue_txn_abort(t);
	tr_teardown(&e);
}
END_TEST

static struct queue_receive *tr_request(uint64_t id, const char *sender,
    const char *const *rcpts, const char *body)
{
	struct queue_receive *req = xcalloc(1, sizeof *req);
	struct queue_msg *m = &req->msg;

	m->id = id;
	m->arrival = 1795433400000;
	m->sender = xstrdup(sender);
	m->client_addr = xstrdup("192.0.2.7");
	m->helo = xstrdup("client.example");
	m->listener = xstrdup("mx");
	while (rcpts[m->nrcpts] != NULL)
		m->nrcpts++;
	m->rcpts = xcalloc(m->nrcpts, sizeof *m->rcpts);
	for (size_t i = 0; i < m->nrcpts; i++) {
		m->rcpts[i].addr = xstrdup(rcpts[i]);
		m->rcpts[i].next_attempt = m->arrival;
	}
	buf_init(&req->body);
	buf_append_str(&req->body, body);
	m->size = req->body.len;
	m->nchunks = 1;
	return req;
}

START_TEST(test_receive_apply)
{
	struct tr_env e;
	struct queue_txn *t;
	struct queue_receive *req;
	struct queue_receive_result res;
	struct queue_msg *got;
	struct buf b;
	uint64_t ids[4];
	size_t n;
	int64_t next;
	const char *team[] = { "a@d.test", "b@d.test", NULL };
	const char *rcpts[] = { "team@d.test", "a@d.test", "x@ext.example", NULL };

	tr_setup(&e);
	buf_init(&b);
	t = tr_begin(&e, true);
	tr_tenant(t, "city", NULL);
	tr_tenant(t, "dept", "city");
	tr_domain(t, "d.test", "dept");
	tr_domain(t, "city.test", "city");
	ck_assert_int_eq(queue_policy_set(t, "city", "require_tls_outbound", "yes"), 0);
	tr_mailbox(t, "team@d.test", team);
	ck_assert_int_eq(queue_txn_commit(t), 0);

	req = tr_request(0x5F1A2B3C4D5E6ull, "boss@city.test", rcpts, "Subject: x\r\n\r\nhi\r\n");
	t = tr_begin(&e, true);
	ck_assert_int_eq(queue_receive_apply(t, req, &res), 0);
	ck_assert_uint_eq(res.nrcpts, 3);
	ck_assert(res.require_tls);
	ck_assert_str_eq(res.tenants, "city,dept");
	tr_last_line(t, &b);
	ck_assert_str_eq(tr_tail(&b), "qid=0005F1A2B3C4D5E6 event=received from=boss@city.test "
	    "size=18 nrcpt=3 client=192.0.2.7 helo=client.example listener=mx tenant=city,dept "
	    "to=a@d.test to=b@d.test to=x@ext.example");
	ck_assert_int_eq(queue_txn_commit(t), 0);
	queue_receive_result_free(&res);

	t = tr_begin(&e, false);
	ck_assert_int_eq(queue_msg_get(t, 0x5F1A2B3C4D5E6ull, &got), 0);
	ck_assert_uint_eq(got->nrcpts, 3);
	ck_assert_str_eq(got->rcpts[1].addr, "b@d.test");
	ck_assert_str_eq(got->rcpts[1].orcpt, "rfc822;team@d.test");
	ck_assert_ptr_null(got->rcpts[2].orcpt);
	ck_assert(got->require_tls);
	queue_msg_free(got);
	buf_reset(&b);
	ck_assert_int_eq(queue_body_get(t, 0x5F1A2B3C4D5E6ull, 0, &b), 0);
	ck_assert_str_eq(buf_cstr(&b), "Subject: x\r\n\r\nhi\r\n");
	ck_assert_int_eq(queue_schedule_due(t, 1795433400000, ids, 4, &n, &next), 0);
	ck_assert_uint_eq(n, 1);
	queue_txn_abort(t);
	queue_receive_clear(req);
	free(req);

	/* Over the bound at commit: -E2BIG, and nothing stored. */
	req = tr_request(0x5F1A2B3C4D5E7ull, "", rcpts, "x");
	req->expanded_max = 2;
	t = tr_begin(&e, true);
	ck_assert_int_eq(queue_receive_apply(t, req, &res), -E2BIG);
	queue_receive_result_free(&res);
	queue_txn_abort(t);
	t = tr_begin(&e, false);
	ck_assert_int_eq(queue_msg_get(t, 0x5F1A2B3C4D5E7ull, &got), -ENOENT);
	queue_txn_abort(t);
	queue_receive_clear(req);
	free(req);
	buf_free(&b);
	tr_teardown(&e);
}
END_TEST

START_TEST(test_receive_report)
{
	struct tr_env e;
	struct queue_txn *t;
	struct queue_receive *req;
	struct queue_receive_result res;
	struct queue_msg *got;
	struct buf b, body;
	const char *rcpts[] = { "team@d.test", NULL };
	const char *team[] = { "a@d.test", "b@d.test", NULL };

	tr_setup(&e);
	buf_init(&b);
	buf_init(&body);
	t = tr_begin(&e, true);
	tr_domain(t, "d.test", NULL);
	tr_mailbox(t, "team@d.test", team);
	/* A report bigger than one chunk goes in several. */
	req = tr_request(0x77ull, "", rcpts, "");
	for (size_t i = 0; i < QUEUE_CHUNK_MAX + 10; i++)
		buf_append_char(&req->body, (char)('a' + i % 26));
	req->msg.size = req->body.len;
	req->msg.nchunks = 2;
	req->report_kind = "failure";
	str_copy(req->report_about, "0005F1A2B3C4D5E6", sizeof req->report_about);
	ck_assert_int_eq(queue_receive_apply(t, req, &res), 0);
	tr_last_line(t, &b);
	ck_assert_str_eq(tr_tail(&b), "qid=0000000000000077 event=received from= "
	    "to=team@d.test kind=failure about=0005F1A2B3C4D5E6");
	/* Stored as it is: a report is not expanded. */
	ck_assert_int_eq(queue_msg_get(t, 0x77ull, &got), 0);
	ck_assert_uint_eq(got->nrcpts, 1);
	ck_assert_str_eq(got->rcpts[0].addr, "team@d.test");
	queue_msg_free(got);
	ck_assert_int_eq(queue_body_get(t, 0x77ull, 0, &body), 0);
	ck_assert_int_eq(queue_body_get(t, 0x77ull, 1, &body), 0);
	ck_assert_uint_eq(body.len, QUEUE_CHUNK_MAX + 10);
	ck_assert_int_eq(memcmp(body.data, req->body.data, body.len), 0);
	queue_receive_result_free(&res);
	queue_receive_clear(req);
	free(req);
	/* Discarding a body that is not there is fine. */
	ck_assert_int_eq(queue_receive_discard_apply(t, 0x99ull), 0);
	ck_assert_int_eq(queue_receive_discard_apply(t, 0x77ull), 0);
	buf_reset(&body);
	ck_assert_int_eq(queue_body_get(t, 0x77ull, 0, &body), -ENOENT);
	queue_txn_abort(t);
	buf_free(&b);
	buf_free(&body);
	tr_teardown(&e);
}
END_TEST

START_TEST(test_event_builders)
{
	struct tr_env e;
	struct queue_txn *t;
	struct buf b, longreply;
	struct queue_audit_refusal rf = { .qid = NULL, .stage = "rcpt", .code = 550,
		.enh = "5.1.1", .reason = "no such user", .client = "192.0.2.1",
		.to = "x@d.test", .sess = "S1" };
	struct queue_audit_delivery dl = { .qid = "0000000000000001", .to = "a@d.test",
		.relay = "127.0.0.1[127.0.0.1]:25", .dsn = "4.4.1",
		.status = QUEUE_DELIVERY_DEFERRED, .reply = "4.4.1 no answer",
		.attempts = 2, .delay_ms = 61234 };
	struct queue_audit_auth au = { .user = "u@d.test", .client = "192.0.2.2",
		.listener = "submission", .result = "failure", .has_failures = true,
		.failures = 3, .lockout = true, .tenant = "dept" };
	struct queue_audit_field extra[] = { { "pending", "2" }, { "sender", NULL },
		{ "object", "x" } };

	ck_assert_str_eq(queue_audit_event_name(QUEUE_AUDIT_RECEIVED), "received");
	ck_assert_str_eq(queue_audit_event_name(QUEUE_AUDIT_FAILED), "failed");
	ck_assert_str_eq(queue_audit_event_name(QUEUE_AUDIT_EVENT_COUNT), "unknown");
	ck_assert_str_eq(queue_delivery_status_name(QUEUE_DELIVERY_EXPIRED), "expired");
	tr_setup(&e);
	buf_init(&b);
	buf_init(&longreply);
	t = tr_begin(&e, true);
	ck_assert_int_eq(queue_audit_refused(t, 5, &rf), 0);
	tr_last_line(t, &b);
	ck_assert_str_eq(tr_tail(&b), "qid= event=rejected stage=rcpt rule=- code=550\\x205.1.1 "
	    "reason=no\\x20such\\x20user client=192.0.2.1 to=x@d.test sess=S1");
	rf.tempfail = true;
	rf.rule = "rate";
	rf.qid = "0000000000000002";
	ck_assert_int_eq(queue_audit_refused(t, 5, &rf), 0);
	tr_last_line(t, &b);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&b), "qid=0000000000000002 event=tempfailed "
	    "stage=rcpt rule=rate "));

	ck_assert_int_eq(queue_audit_delivery(t, 6, &dl), 0);
	tr_last_line(t, &b);
	ck_assert_str_eq(tr_tail(&b), "qid=0000000000000001 event=deferred to=a@d.test "
	    "relay=127.0.0.1[127.0.0.1]:25 dsn=4.4.1 status=deferred "
	    "reply=4.4.1\\x20no\\x20answer attempts=2 delay=61.23");
	for (int i = 0; i < 300; i++)
		buf_append_char(&longreply, 'r');
	dl.reply = buf_cstr(&longreply);
	dl.status = QUEUE_DELIVERY_BOUNCED;
	ck_assert_int_eq(queue_audit_delivery(t, 6, &dl), 0);
	tr_last_line(t, &b);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&b), "event=failed "));
	ck_assert_ptr_nonnull(strstr(buf_cstr(&b), "status=bounced "));
	/* The reply is cut at QUEUE_AUDIT_REPLY_MAX bytes. */
	ck_assert_ptr_nonnull(strstr(buf_cstr(&b), " attempts=2"));
	ck_assert_ptr_null(strstr(buf_cstr(&b), longreply.data + 99));

	ck_assert_int_eq(queue_audit_auth(t, 7, &au), 0);
	tr_last_line(t, &b);
	ck_assert_str_eq(tr_tail(&b), "qid= event=auth user=u@d.test client=192.0.2.2 "
	    "listener=submission result=failure failures=3 lockout=yes tenant=dept");

	ck_assert_int_eq(queue_audit_admin(t, 8, NULL, "queue.hold", "root", "cli", extra, 3), 0);
	tr_last_line(t, &b);
	ck_assert_str_eq(tr_tail(&b), "qid= event=admin action=queue.hold by=root via=cli "
	    "pending=2 object=x");
	queue_txn_abort(t);
	buf_free(&b);
	buf_free(&longreply);
	tr_teardown(&e);
}
END_TEST

static Suite *receive_suite(void)
{
	Suite *s = suite_create("receive");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_expand_nested_dups_orcpt);
	tcase_add_test(tc, test_expand_loops);
	tcase_add_test(tc, test_expand_bound);
	tcase_add_test(tc, test_expand_ten_wide_aliases);
	tcase_add_test(tc, test_receive_apply);
	tcase_add_test(tc, test_receive_report);
	tcase_add_test(tc, test_event_builders);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(receive_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
