/*
 * test_conn: the connection layer alone, over a socketpair. One end is a
 * conn (uv_pipe_open), the test drives the other end with plain
 * read/write: the bounded line reader, backpressure pausing and resuming
 * reads, the line deadline counted from the first byte, loss at EOF, and
 * closing (the closed callback runs once, after pending writes).
 *
 * Entry points: main (one Check suite).
 * OWNERSHIP: each test owns its loop, conn and peer socket.
 * THREADS: one. ERRORS: assertion failures.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "relay/conn.h"

struct test_conn_fix {
	uv_loop_t loop;
	struct conn *c;
	int peer;
	int ndata, nwritten, ntimeout, nlost, nclosed;
	enum conn_timeout last_timeout;
	uint64_t timeout_at;
	int lost_status;
	bool stop_on_data;
	bool paused_seen;       /* reading stopped for backpressure at some point */
};

static void test_conn_on_data(void *arg)
{
	struct test_conn_fix *f = arg;

	f->ndata++;
	if (f->stop_on_data)
		uv_stop(&f->loop);
}

static void test_conn_on_written(void *arg)
{
	struct test_conn_fix *f = arg;

	f->nwritten++;
}

static void test_conn_on_timeout(void *arg, enum conn_timeout which)
{
	struct test_conn_fix *f = arg;

	f->ntimeout++;
	f->last_timeout = which;
	f->timeout_at = uv_now(&f->loop);
	uv_stop(&f->loop);
}

static void test_conn_on_lost(void *arg, int status, bool tls)
{
	struct test_conn_fix *f = arg;

	ck_assert(!tls);
	f->nlost++;
	f->lost_status = status;
	uv_stop(&f->loop);
}

static void test_conn_on_closed(void *arg)
{
	struct test_conn_fix *f = arg;

	f->nclosed++;
}

static const struct conn_callbacks test_conn_cbs = {
	.data = test_conn_on_data,
	.written = test_conn_on_written,
	.timeout = test_conn_on_timeout,
	.lost = test_conn_on_lost,
	.closed = test_conn_on_closed,
};

static void test_conn_open(struct test_conn_fix *f)
{
	int sv[2];

	memset(f, 0, sizeof *f);
	ck_assert_int_eq(uv_loop_init(&f->loop), 0);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	f->peer = sv[1];
	f->c = conn_new(&f->loop, CONN_PIPE);
	conn_set_callbacks(f->c, &test_conn_cbs, f);
	ck_assert_int_eq(uv_pipe_open((uv_pipe_t *)conn_stream(f->c), sv[0]), 0);
}

/* Closes the conn, runs the loop dry and checks nothing is left open. */
static void test_conn_finish(struct test_conn_fix *f)
{
	conn_close(f->c);
	conn_close(f->c); /* twice is fine */
	ck_assert_int_eq(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(f->nclosed, 1);
	if (f->peer >= 0)
		close(f->peer);
	ck_assert_int_eq(uv_loop_close(&f->loop), 0);
}

static void test_conn_send(struct test_conn_fix *f, const char *s)
{
	size_t len = strlen(s);

	ck_assert_int_eq(write(f->peer, s, len), (ssize_t)len);
}

/* Runs until the conn has delivered new data. */
static void test_conn_wait_data(struct test_conn_fix *f)
{
	int before = f->ndata;

	f->stop_on_data = true;
	while (f->ndata == before)
		uv_run(&f->loop, UV_RUN_ONCE);
	f->stop_on_data = false;
}

/* ------------------------------------------------------- line reader */

START_TEST(test_conn_lines)
{
	struct test_conn_fix f;
	struct conn_line l;

	test_conn_open(&f);
	conn_want_read(f.c, true);
	test_conn_send(&f, "HELO a\r\nbare lf\nbare\rcr\r\npart");
	test_conn_wait_data(&f);
	ck_assert(conn_line_get(f.c, 512, &l));
	ck_assert(l.crlf && !l.bare_cr && !l.too_long);
	ck_assert_uint_eq(l.content, 6);
	ck_assert_int_eq(memcmp(l.data, "HELO a", 6), 0);
	ck_assert(conn_line_get(f.c, 512, &l));
	ck_assert(!l.crlf);
	ck_assert_uint_eq(l.content, 7);
	ck_assert(conn_line_get(f.c, 512, &l));
	ck_assert(l.crlf && l.bare_cr);
	ck_assert(!conn_line_get(f.c, 512, &l));
	ck_assert(!l.long_line);
	ck_assert_uint_eq(conn_in_len(f.c), 4);
	test_conn_send(&f, "ial\r\n");
	test_conn_wait_data(&f);
	ck_assert(conn_line_get(f.c, 512, &l));
	ck_assert_uint_eq(l.len, 9);
	ck_assert_int_eq(memcmp(l.data, "partial\r\n", 9), 0);
	ck_assert_uint_eq(conn_in_len(f.c), 0);
	test_conn_finish(&f);
}
END_TEST

START_TEST(test_conn_line_bounds)
{
	struct test_conn_fix f;
	struct conn_line l;
	char big[4096];

	test_conn_open(&f);
	conn_want_read(f.c, true);
	/* Exactly max octets with CRLF: a good line. */
	memset(big, 'x', 510);
	memcpy(big + 510, "\r\n", 3);
	test_conn_send(&f, big);
	test_conn_wait_data(&f);
	ck_assert(conn_line_get(f.c, 512, &l));
	ck_assert(!l.too_long && l.crlf);
	ck_assert_uint_eq(l.len, 512);
	/* One more: complete and too long. */
	memset(big, 'y', 511);
	memcpy(big + 511, "\r\n", 3);
	test_conn_send(&f, big);
	test_conn_wait_data(&f);
	ck_assert(conn_line_get(f.c, 512, &l));
	ck_assert(l.too_long && !l.skipped);
	/* Far more without LF: dropped as it comes, never buffered whole. */
	memset(big, 'z', sizeof big - 2);
	big[sizeof big - 2] = '\r';
	big[sizeof big - 1] = '\0';
	test_conn_send(&f, big);
	do {
		test_conn_wait_data(&f);
		ck_assert(!conn_line_get(f.c, 512, &l));
	} while (!l.long_line);
	ck_assert_uint_le(conn_in_len(f.c), 1);   /* only the CR kept */
	test_conn_send(&f, "\nNEXT\r\n");
	while (!conn_line_get(f.c, 512, &l))
		test_conn_wait_data(&f);
	ck_assert(l.skipped && l.too_long && l.crlf);
	ck_assert(conn_line_get(f.c, 512, &l));
	ck_assert(!l.skipped && !l.too_long);
	ck_assert_int_eq(memcmp(l.data, "NEXT\r\n", 6), 0);
	test_conn_finish(&f);
}
END_TEST

/* ------------------------------------------------------ backpressure */

static void test_conn_drain_cb(uv_timer_t *t)
{
	struct test_conn_fix *f = t->data;
	char buf[65536];

	/* The peer reads now; it stops the loop once the conn reads again. */
	while (read(f->peer, buf, sizeof buf) > 0)
		;
	if (conn_is_reading(f->c) && conn_out_pending(f->c) == 0)
		uv_stop(&f->loop);
}

START_TEST(test_conn_backpressure)
{
	struct test_conn_fix f;
	uv_timer_t drain;
	char block[16384];
	size_t total = 0;

	test_conn_open(&f);
	ck_assert_int_eq(fcntl(f.peer, F_SETFL, O_NONBLOCK), 0);
	conn_want_read(f.c, true);
	ck_assert(conn_is_reading(f.c));
	memset(block, 'r', sizeof block);
	/* The peer never reads: queue until the kernel buffers are full. */
	while (total < 8 * 1024 * 1024 && conn_out_pending(f.c) <= CONN_OUT_HIGH_WATER) {
		conn_write(f.c, block, sizeof block);
		conn_flush(f.c);
		total += sizeof block;
		uv_run(&f.loop, UV_RUN_NOWAIT);
	}
	ck_assert_uint_gt(conn_out_pending(f.c), CONN_OUT_HIGH_WATER);
	ck_assert(!conn_is_reading(f.c));
	ck_assert(conn_out_is_full(f.c));
	/* Now the peer drains: the writes complete and reading resumes. */
	uv_timer_init(&f.loop, &drain);
	drain.data = &f;
	uv_timer_start(&drain, test_conn_drain_cb, 1, 5);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert(conn_is_reading(f.c));
	ck_assert_uint_eq(conn_out_pending(f.c), 0);
	ck_assert_int_gt(f.nwritten, 0);
	uv_close((uv_handle_t *)&drain, NULL);
	test_conn_finish(&f);
}
END_TEST

/* --------------------------------------------------------- deadlines */

struct test_conn_trickle {
	struct test_conn_fix *f;
	int sent;
};

static void test_conn_trickle_cb(uv_timer_t *t)
{
	struct test_conn_trickle *tr = t->data;

	/* One byte every 50 ms, never a whole line; the conn re-arms LINE. */
	ck_assert_int_eq(write(tr->f->peer, "x", 1), 1);
	tr->sent++;
}

static void test_conn_rearm_on_data(void *arg)
{
	struct test_conn_fix *f = arg;

	f->ndata++;
	/* As an owner does after every read: wait for the rest of the line. */
	conn_deadline(f->c, CONN_DL_LINE, 300);
}

START_TEST(test_conn_line_deadline_from_first_byte)
{
	struct test_conn_fix f;
	struct test_conn_trickle tr;
	struct conn_callbacks cbs = test_conn_cbs;
	uv_timer_t trickle;
	uint64_t first;

	test_conn_open(&f);
	cbs.data = test_conn_rearm_on_data;
	conn_set_callbacks(f.c, &cbs, &f);
	conn_want_read(f.c, true);
	tr.f = &f;
	tr.sent = 0;
	uv_timer_init(&f.loop, &trickle);
	trickle.data = &tr;
	uv_update_time(&f.loop);
	first = uv_now(&f.loop);
	ck_assert_int_eq(write(f.peer, "x", 1), 1);
	conn_deadline(f.c, CONN_DL_LINE, 300);
	uv_timer_start(&trickle, test_conn_trickle_cb, 50, 50);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(f.ntimeout, 1);
	ck_assert_int_eq(f.last_timeout, CONN_TIMEOUT_DEADLINE);
	/*
	 * 300 ms after the first byte, although a byte came every 50 ms: a
	 * deadline renewed by reads would never fire at all (the upper bound
	 * only allows for a loaded machine).
	 */
	ck_assert_uint_ge(f.timeout_at - first, 290);
	ck_assert_uint_lt(f.timeout_at - first, 3000);
	ck_assert_int_ge(tr.sent, 4);
	uv_close((uv_handle_t *)&trickle, NULL);
	test_conn_finish(&f);
}
END_TEST

START_TEST(test_conn_idle_deadline_and_lifetime)
{
	struct test_conn_fix f;
	uint64_t start;

	test_conn_open(&f);
	conn_want_read(f.c, true);
	uv_update_time(&f.loop);
	start = uv_now(&f.loop);
	/* Nothing buffered: the line deadline counts from now. */
	conn_deadline(f.c, CONN_DL_LINE, 100);
	conn_lifetime(f.c, 250);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(f.last_timeout, CONN_TIMEOUT_DEADLINE);
	ck_assert_uint_ge(f.timeout_at - start, 95);
	/* A progress deadline is renewed; the lifetime is not. */
	conn_deadline(f.c, CONN_DL_PROGRESS, 1000);
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(f.ntimeout, 2);
	ck_assert_int_eq(f.last_timeout, CONN_TIMEOUT_LIFETIME);
	ck_assert_uint_ge(f.timeout_at - start, 245);
	test_conn_finish(&f);
}
END_TEST

/* ------------------------------------------------------ loss, closing */

START_TEST(test_conn_eof_is_lost)
{
	struct test_conn_fix f;

	test_conn_open(&f);
	conn_want_read(f.c, true);
	test_conn_send(&f, "last words\r\n");
	close(f.peer);
	f.peer = -1;
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(f.nlost, 1);
	ck_assert_int_eq(f.lost_status, UV_EOF);
	ck_assert_int_eq(f.ndata, 1);               /* the data came first */
	ck_assert_uint_eq(conn_in_len(f.c), 12);
	ck_assert(!conn_is_reading(f.c));
	test_conn_finish(&f);
}
END_TEST

START_TEST(test_conn_close_with_pending_writes)
{
	struct test_conn_fix f;
	char block[65536];

	test_conn_open(&f);
	memset(block, 'w', sizeof block);
	for (int i = 0; i < 16; i++) {
		conn_write(f.c, block, sizeof block);
		conn_flush(f.c);
	}
	ck_assert_uint_gt(conn_out_pending(f.c), 0);
	/* The closed callback waits for the cancelled writes. */
	test_conn_finish(&f);
}
END_TEST

START_TEST(test_conn_shutdown_flushes)
{
	struct test_conn_fix f;
	char buf[64];
	ssize_t n;
	size_t got = 0;

	test_conn_open(&f);
	conn_want_read(f.c, true);
	conn_write(f.c, "221 bye\r\n", 9);
	conn_shutdown(f.c);
	ck_assert(conn_is_shutting_down(f.c));
	ck_assert(!conn_is_reading(f.c));
	uv_run(&f.loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(f.nclosed, 1);
	while ((n = read(f.peer, buf + got, sizeof buf - got)) > 0)
		got += (size_t)n;
	ck_assert_uint_eq(got, 9);
	ck_assert_int_eq(memcmp(buf, "221 bye\r\n", 9), 0);
	close(f.peer);
	ck_assert_int_eq(uv_loop_close(&f.loop), 0);
}
END_TEST

static Suite *test_conn_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_conn_lines);
	tcase_add_test(tc, test_conn_line_bounds);
	tcase_add_test(tc, test_conn_backpressure);
	tcase_add_test(tc, test_conn_line_deadline_from_first_byte);
	tcase_add_test(tc, test_conn_idle_deadline_and_lifetime);
	tcase_add_test(tc, test_conn_eof_is_lost);
	tcase_add_test(tc, test_conn_close_with_pending_writes);
	tcase_add_test(tc, test_conn_shutdown_flushes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	/* As govrelayd does: a peer that hung up is an error code, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	sr = srunner_create(test_conn_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
