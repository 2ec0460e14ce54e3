/*
 * test_ctlproto: the pure parts of the control socket's boundary
 * (common/ctlproto.h): the refusal gate's bookkeeping (which refusals of
 * a non-operator are recorded one by one, counted for a coalesced record,
 * or dropped; when a coalesced record is due and what it says; the
 * budget for all uids together; a full table), the reading of a
 * payload's arguments before the rest has arrived, and the recognition
 * of `mailbox import`, the one command allowed a large payload. Then the
 * paged audit search (queue/audit_query.h, audit_search_step) that lets
 * admin/audit.c write each page outside any read transaction: the pages
 * together give exactly what one search gives, records appended between
 * pages stay out, and propagation (a delivery record found by its
 * message's sender) carries over from page to page; the queue walked
 * in pages the same way (queue_msg_walk_from, admin/queue.c). And the key
 * control_command_time: its default, a value, a bad value at FILE:LINE.
 *
 * OWNERSHIP: none. THREADS: Check forks one process per test.
 * ERRORS: assertion failures.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/ctlproto.h"
#include "common/xmalloc.h"
#include "queue/audit_query.h"
#include "queue/queue.h"

#define TC_WIN 60000
/* 2026-11-23T11:30:00Z */
#define TC_T0 INT64_C(1795433400000)

/* ------------------------------------------------------------ gate */

static struct ctlproto_gate tc_gate;

static void tc_gate_new(uint32_t record_max, uint32_t reply_max, uint32_t global_max)
{
	ctlproto_gate_init(&tc_gate, TC_WIN, record_max, reply_max, global_max);
}

START_TEST(gate_first_recorded_then_counted_then_dropped)
{
	struct ctlproto_gate_flush fl;
	int rec = 0, cnt = 0, drop = 0;

	tc_gate_new(3, 20, 50);
	/* 200 refusals of one uid within a second: a hammering local user. */
	for (int i = 0; i < 200; i++) {
		switch (ctlproto_gate_refuse(&tc_gate, 1000, TC_T0 + i * 5)) {
		case CTLPROTO_GATE_RECORD: rec++; break;
		case CTLPROTO_GATE_COUNT: cnt++; break;
		default: drop++; break;
		}
	}
	ck_assert_int_eq(rec, 3);
	ck_assert_int_eq(cnt, 17);
	ck_assert_int_eq(drop, 180);
	/* Nothing is due while the window runs... */
	ck_assert(!ctlproto_gate_due(&tc_gate, TC_T0 + TC_WIN - 1, &fl));
	ck_assert_int_eq(ctlproto_gate_next_due(&tc_gate), TC_T0 + TC_WIN);
	/* ...then one coalesced record for the 197 not recorded one by one. */
	ck_assert(ctlproto_gate_due(&tc_gate, TC_T0 + TC_WIN, &fl));
	ck_assert_uint_eq(fl.uid, 1000);
	ck_assert(!fl.any_uid);
	ck_assert_uint_eq(fl.count, 197);
	ck_assert_int_eq(fl.since, TC_T0 + 3 * 5);
	ck_assert(!ctlproto_gate_due(&tc_gate, TC_T0 + TC_WIN, &fl));
	ck_assert_int_eq(ctlproto_gate_next_due(&tc_gate), -1);
	/* The next refusal opens a new window: recorded again. */
	ck_assert_int_eq(ctlproto_gate_refuse(&tc_gate, 1000, TC_T0 + TC_WIN + 1),
	    CTLPROTO_GATE_RECORD);
}
END_TEST

START_TEST(gate_quiet_uid_each_refusal_recorded)
{
	struct ctlproto_gate_flush fl;

	tc_gate_new(5, 20, 50);
	/* A few mistakes, far apart: each recorded, nothing coalesced. */
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(ctlproto_gate_refuse(&tc_gate, 7, TC_T0 + (int64_t)i * 2 * TC_WIN),
		    CTLPROTO_GATE_RECORD);
		ck_assert(!ctlproto_gate_due(&tc_gate, TC_T0 + (int64_t)i * 2 * TC_WIN + TC_WIN,
		    &fl));
	}
	ck_assert_int_eq(ctlproto_gate_next_due(&tc_gate), -1);
}
END_TEST

START_TEST(gate_uids_apart)
{
	struct ctlproto_gate_flush fl;
	uint64_t total = 0;
	int n = 0;

	tc_gate_new(1, 20, 50);
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(ctlproto_gate_refuse(&tc_gate, 1, TC_T0 + i),
		    i == 0 ? CTLPROTO_GATE_RECORD : CTLPROTO_GATE_COUNT);
		ck_assert_int_eq(ctlproto_gate_refuse(&tc_gate, 2, TC_T0 + i),
		    i == 0 ? CTLPROTO_GATE_RECORD : CTLPROTO_GATE_COUNT);
	}
	while (ctlproto_gate_due(&tc_gate, TC_T0 + TC_WIN + 10, &fl)) {
		ck_assert(fl.uid == 1 || fl.uid == 2);
		ck_assert_uint_eq(fl.count, 9);
		total += fl.count;
		n++;
	}
	ck_assert_int_eq(n, 2);
	ck_assert_uint_eq(total, 18);
}
END_TEST

START_TEST(gate_global_budget)
{
	struct ctlproto_gate_flush fl;
	int rec = 0;

	/* At most 4 records per window, whatever the uids. */
	tc_gate_new(5, 20, 4);
	for (uint32_t uid = 100; uid < 110; uid++)
		if (ctlproto_gate_refuse(&tc_gate, uid, TC_T0) == CTLPROTO_GATE_RECORD)
			rec++;
	ck_assert_int_eq(rec, 4);
	/* Six uids' counts wait; the next window lets four through, then two. */
	rec = 0;
	while (ctlproto_gate_due(&tc_gate, TC_T0 + TC_WIN, &fl))
		rec++;
	ck_assert_int_eq(rec, 4);
	ck_assert_int_eq(ctlproto_gate_next_due(&tc_gate), TC_T0 + 2 * TC_WIN);
	rec = 0;
	while (ctlproto_gate_due(&tc_gate, TC_T0 + 2 * TC_WIN, &fl))
		rec++;
	ck_assert_int_eq(rec, 2);
	ck_assert_int_eq(ctlproto_gate_next_due(&tc_gate), -1);
}
END_TEST

START_TEST(gate_full_table_overflow)
{
	struct ctlproto_gate_flush fl;
	uint64_t total = 0;
	bool any = false;

	tc_gate_new(0, 1000, 1000);
	/* More uids than slots, each refused twice: every count is reported once. */
	for (uint32_t uid = 0; uid < CTLPROTO_GATE_SLOTS + 10; uid++) {
		ck_assert_int_eq(ctlproto_gate_refuse(&tc_gate, uid, TC_T0 + uid),
		    CTLPROTO_GATE_COUNT);
		ck_assert_int_eq(ctlproto_gate_refuse(&tc_gate, uid, TC_T0 + uid),
		    CTLPROTO_GATE_COUNT);
	}
	while (ctlproto_gate_due(&tc_gate, TC_T0 + 3 * TC_WIN, &fl)) {
		total += fl.count;
		any |= fl.any_uid;
	}
	ck_assert(any);
	ck_assert_uint_eq(total, 2 * (CTLPROTO_GATE_SLOTS + 10));
}
END_TEST

/* ------------------------------------------------------------- exec */

START_TEST(exec_head_partial)
{
	char *argv[] = { "mailbox", "import", "-", "--label", "f.csv" };
	char **got = NULL;
	struct buf b;
	int argc = 0;
	size_t args_end;

	buf_init(&b);
	ctlproto_exec_encode(&b, 5, argv, "a@b.test\n", 9);
	args_end = b.len - 4 - 9;
	/* Every prefix that cuts the arguments: more is needed. */
	for (size_t n = 0; n < args_end; n++)
		ck_assert_int_eq(ctlproto_exec_head(b.data, n, &argc, &got), -EAGAIN);
	ck_assert_int_eq(ctlproto_exec_head(b.data, args_end, &argc, &got), 0);
	ck_assert_int_eq(argc, 5);
	ck_assert_str_eq(got[4], "f.csv");
	ck_assert(ctlproto_exec_is_import(argc, got));
	ctlproto_exec_free(argc, got);
	buf_free(&b);
}
END_TEST

START_TEST(exec_head_bad)
{
	unsigned char zero[4] = { 0, 0, 0, 0 };
	/* One argument announced longer than an ordinary request. */
	unsigned char huge[8] = { 0, 0, 0, 1, 0, 0x10, 0, 0 };
	char **got = NULL;
	int argc = 0;

	ck_assert_int_eq(ctlproto_exec_head(zero, sizeof zero, &argc, &got), -EBADMSG);
	ck_assert_int_eq(ctlproto_exec_head(huge, sizeof huge, &argc, &got), -EBADMSG);
}
END_TEST

START_TEST(exec_is_import)
{
	char *a[] = { "--json", "mailbox", "import", "-" };
	char *b[] = { "mailbox", "add", "x@y.test" };
	char *c[] = { "mailbox" };
	char *d[] = { "import", "mailbox" };

	ck_assert(ctlproto_exec_is_import(4, a));
	ck_assert(!ctlproto_exec_is_import(3, b));
	ck_assert(!ctlproto_exec_is_import(1, c));
	ck_assert(!ctlproto_exec_is_import(2, d));
}
END_TEST

/* ------------------------------------------------------ paged search */

static int tc_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

struct tc_pages {
	struct buf seqs;
	size_t n, page;     /* matches so far; stop every page matches */
};

static int tc_page_cb(void *arg, const struct audit_entry *e)
{
	struct tc_pages *p = arg;

	buf_printf(&p->seqs, "%s%" PRIu64, p->n ? "," : "", e->seq);
	p->n++;
	return p->page != 0 && p->n % p->page == 0 ? 9 : 0;
}

/* Appends one record per call in its own write transaction. */
static void tc_append(struct queue_store *st, int64_t t, const char *qid, const char *event,
    const char *key, const char *value)
{
	struct queue_audit_field f = { key, value };
	struct queue_txn *w;

	ck_assert_int_eq(queue_txn_begin(st, true, &w), 0);
	ck_assert_int_eq(queue_audit_append(w, t, qid, event, &f, 1), 0);
	ck_assert_int_eq(queue_txn_commit(w), 0);
}

START_TEST(search_in_pages)
{
	char dir[64], qid[QUEUE_ID_TEXT_LEN + 1];
	struct queue_store *st = NULL;
	struct audit_filter f;
	struct audit_search *s;
	struct tc_pages one = { .n = 0 }, paged = { .n = 0, .page = 3 };
	struct queue_txn *t;
	int rc, steps = 0;

	snprintf(dir, sizeof dir, "/tmp/test-ctlproto-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(queue_store_open(dir, UINT64_C(16) << 20, false, &st), 0);
	/* 20 messages from a@x.test, b@x.test alternately; each received then delivered. */
	for (int i = 0; i < 20; i++) {
		int64_t t0 = TC_T0 + i * 1000;

		queue_id_format((uint64_t)t0 * 1000u, qid);
		tc_append(st, t0, qid, "received", "from", i % 2 ? "b@x.test" : "a@x.test");
		tc_append(st, t0 + 10, qid, "delivered", "to", "z@y.test");
	}
	memset(&f, 0, sizeof f);
	f.sender = "a@x.test";
	buf_init(&one.seqs);
	buf_init(&paged.seqs);
	ck_assert_int_eq(queue_txn_begin(st, false, &t), 0);
	ck_assert_int_eq(audit_search(t, &f, tc_page_cb, &one), 0);
	queue_txn_abort(t);
	/* received and delivered of the ten messages of a@x.test. */
	ck_assert_uint_eq(one.n, 20);
	s = audit_search_new(&f);
	do {
		ck_assert_int_eq(queue_txn_begin(st, false, &t), 0);
		rc = audit_search_step(s, t, tc_page_cb, &paged);
		queue_txn_abort(t);
		/* Between pages the chain grows: those records are not this search's. */
		queue_id_format((uint64_t)(TC_T0 + 100000 + steps) * 1000u, qid);
		tc_append(st, TC_T0 + 100000 + steps, qid, "received", "from", "a@x.test");
		steps++;
	} while (rc == 9);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_eq(steps, 7); /* 20 matches, 3 a page: 6 full pages and the rest */
	ck_assert_str_eq(buf_cstr(&paged.seqs), buf_cstr(&one.seqs));
	audit_search_free(s);
	buf_free(&one.seqs);
	buf_free(&paged.seqs);
	queue_store_close(st);
	nftw(dir, tc_rm, 8, FTW_DEPTH | FTW_PHYS);
}
END_TEST

/* The ids the walk from `from` sees, stopping after max ("1,2,3"). */
struct tc_walk {
	struct buf ids;
	size_t n, max;
};

static int tc_walk_cb(void *arg, const struct queue_msg *m)
{
	struct tc_walk *w = arg;

	buf_printf(&w->ids, "%s%" PRIu64, w->n ? "," : "", m->id);
	return ++w->n == w->max ? 1 : 0;
}

START_TEST(msg_walk_from)
{
	char dir[64];
	struct queue_store *st = NULL;
	struct queue_txn *t;
	struct tc_walk w = { .n = 0 };

	snprintf(dir, sizeof dir, "/tmp/test-ctlproto-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(queue_store_open(dir, UINT64_C(16) << 20, false, &st), 0);
	ck_assert_int_eq(queue_txn_begin(st, true, &t), 0);
	for (uint64_t id = 10; id <= 50; id += 10) {
		struct queue_msg *m = xcalloc(1, sizeof *m);

		m->id = id;
		m->arrival = 1000;
		m->sender = xstrdup("a@example.org");
		m->client_addr = xstrdup("127.0.0.1");
		m->listener = xstrdup("mx");
		m->nrcpts = 1;
		m->rcpts = xcalloc(1, sizeof *m->rcpts);
		m->rcpts[0].addr = xstrdup("b@example.net");
		m->rcpts[0].state = QUEUE_RCPT_PENDING;
		m->rcpts[0].next_attempt = 5000;
		ck_assert_int_eq(queue_msg_put(t, m), 0);
		queue_msg_free(m);
	}
	ck_assert_int_eq(queue_txn_commit(t), 0);
	buf_init(&w.ids);
	/* Pages of two, each in a read transaction of its own, resuming after the last id. */
	for (uint64_t from = 0;;) {
		size_t before = w.n;
		int rc;

		w.max = w.n + 2;
		ck_assert_int_eq(queue_txn_begin(st, false, &t), 0);
		rc = queue_msg_walk_from(t, from, tc_walk_cb, &w);
		queue_txn_abort(t);
		if (rc == 0)
			break;
		ck_assert_int_eq(rc, 1);
		ck_assert_uint_eq(w.n, before + 2);
		from = (uint64_t)(w.n * 10) + 1;
	}
	ck_assert_str_eq(buf_cstr(&w.ids), "10,20,30,40,50");
	/* From an id between two: the next one. */
	ck_assert_int_eq(queue_txn_begin(st, false, &t), 0);
	buf_reset(&w.ids);
	w.n = 0;
	w.max = 0;
	ck_assert_int_eq(queue_msg_walk_from(t, 31, tc_walk_cb, &w), 0);
	queue_txn_abort(t);
	ck_assert_str_eq(buf_cstr(&w.ids), "40,50");
	buf_free(&w.ids);
	queue_store_close(st);
	nftw(dir, tc_rm, 8, FTW_DEPTH | FTW_PHYS);
}
END_TEST

/* ------------------------------------------------------------ config */

/* Loads text as a configuration file in dir; the errors into errs. */
static int tc_cfg(const char *dir, const char *text, struct config **cfg, struct buf *errs)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof path, "%s/govrelay.conf", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "data_dir = %s\nlisten = mx 127.0.0.1:2525\n%s", dir, text);
	fclose(f);
	buf_reset(errs);
	return cfg_load(path, cfg, errs);
}

START_TEST(config_command_time)
{
	char dir[64];
	struct config *cfg = NULL;
	struct buf errs;

	snprintf(dir, sizeof dir, "/tmp/test-ctlproto-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	buf_init(&errs);
	ck_assert_int_eq(tc_cfg(dir, "", &cfg, &errs), 0);
	ck_assert_uint_eq(cfg->control_command_time, 600000u);   /* 10m */
	cfg_unref(cfg);
	cfg = NULL;
	ck_assert_int_eq(tc_cfg(dir, "control_command_time = 8s\n", &cfg, &errs), 0);
	ck_assert_uint_eq(cfg->control_command_time, 8000u);
	cfg_unref(cfg);
	cfg = NULL;
	/* Below its minimum: an error naming the file and the line. */
	ck_assert_int_ne(tc_cfg(dir, "control_command_time = 0s\n", &cfg, &errs), 0);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&errs), "/govrelay.conf:3: "));
	ck_assert_ptr_nonnull(strstr(buf_cstr(&errs), "control_command_time"));
	cfg_unref(cfg);
	buf_free(&errs);
	nftw(dir, tc_rm, 8, FTW_DEPTH | FTW_PHYS);
}
END_TEST

static Suite *tc_suite(void)
{
	Suite *s = suite_create("ctlproto");
	TCase *g = tcase_create("gate"), *e = tcase_create("exec"), *p = tcase_create("pages");

	tcase_add_test(g, gate_first_recorded_then_counted_then_dropped);
	tcase_add_test(g, gate_quiet_uid_each_refusal_recorded);
	tcase_add_test(g, gate_uids_apart);
	tcase_add_test(g, gate_global_budget);
	tcase_add_test(g, gate_full_table_overflow);
	tcase_add_test(e, exec_head_partial);
	tcase_add_test(e, exec_head_bad);
	tcase_add_test(e, exec_is_import);
	tcase_add_test(p, search_in_pages);
	tcase_add_test(p, msg_walk_from);
	tcase_add_test(p, config_command_time);
	suite_add_tcase(s, g);
	suite_add_tcase(s, e);
	suite_add_tcase(s, p);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tc_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
