/*
 * test_smtp_session: the real inbound session in-process, over a
 * socketpair. The session gets one end as its conn (uv_pipe_open); the
 * test is the client on the other end and drives the loop itself. A real
 * store in a temporary folder, the real queue writer and the real policy
 * engine: a whole transaction answered 250 after the commit (the message
 * is then in the store), pipelining answered in order while the commands
 * arrive one byte at a time, STARTTLS discarding pipelined plaintext, and
 * backpressure: the client never reads, the session stops reading, then
 * resumes when the client drains its replies.
 *
 * Entry points: main (one Check suite).
 * OWNERSHIP: the fixture owns the folder, store, writer, policy, TLS
 * context and loop; the session owns its conn.
 * THREADS: the loop thread and the queue writer's thread.
 * ERRORS: assertion failures.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <uv.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/util.h"
#include "policy/policy.h"
#include "queue/queue.h"
#include "queue/queue_writer.h"
#include "relay/conn.h"
#include "relay/smtp_session.h"
#include "relay/tlsio.h"

#define TEST_SS_WAIT_MS 10000

struct test_ss {
	char dir[64];
	uv_loop_t loop;
	struct config *cfg;
	struct queue_store *store;
	struct queue_writer *writer;
	struct policy *policy;
	struct tlsio_ctx *tls;
	struct smtp_server srv;
	struct smtp_session *s;
	struct conn *c;          /* the session's, borrowed for inspection */
	int fd;                  /* the client's end */
	SSL_CTX *sslctx;
	SSL *ssl;
	struct buf in;           /* bytes the client has read, not yet taken */
};

static struct test_ss ts;

/* ---------------------------------------------------------- fixtures */

static void test_ss_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_ge(fputs(text, f), 0);
	ck_assert_int_eq(fclose(f), 0);
}

/* A self-signed P-256 certificate for relay.test, as test_tlsio makes. */
static void test_ss_make_cert(const char *cert, const char *key)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	FILE *f;

	ck_assert_ptr_nonnull(k);
	ck_assert_int_eq(X509_set_version(x, 2), 1);
	ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	ck_assert_int_eq(X509_set_pubkey(x, k), 1);
	name = X509_get_subject_name(x);
	ck_assert_int_eq(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)"relay.test", -1, -1, 0), 1);
	ck_assert_int_eq(X509_set_issuer_name(x, name), 1);
	ck_assert_int_gt(X509_sign(x, k, EVP_sha256()), 0);
	f = fopen(cert, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_X509(f, x), 1);
	ck_assert_int_eq(fclose(f), 0);
	f = fopen(key, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	ck_assert_int_eq(fclose(f), 0);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void test_ss_setup(void)
{
	char conf[128], data[96], cert[96], key[96], text[1024], err[256];
	struct queue_domain d = { .name = "ours.test", .route = "smtp:127.0.0.1:1",
		.accept_all = true };
	struct queue_txn *txn;
	struct buf errors;
	struct sockaddr_in peer;
	struct sockaddr_storage ss;
	int sv[2];

	memset(&ts, 0, sizeof ts);
	buf_init(&ts.in);
	str_copy(ts.dir, "/tmp/test_smtp_session.XXXXXX", sizeof ts.dir);
	ck_assert_ptr_nonnull(mkdtemp(ts.dir));
	snprintf(data, sizeof data, "%s/data", ts.dir);
	ck_assert_int_eq(mkdir(data, 0700), 0);
	snprintf(cert, sizeof cert, "%s/cert.pem", ts.dir);
	snprintf(key, sizeof key, "%s/key.pem", ts.dir);
	test_ss_make_cert(cert, key);
	snprintf(conf, sizeof conf, "%s/govrelay.conf", ts.dir);
	snprintf(text, sizeof text,
	    "hostname = relay.test\n"
	    "data_dir = %s\n"
	    "greet_pause = 0s\n"
	    "junk_command_limit = 1000000000\n"
	    "tls_cert_file = %s\n"
	    "tls_key_file = %s\n"
	    "listen = mx 127.0.0.1:2525\n", data, cert, key);
	test_ss_write_file(conf, text);
	buf_init(&errors);
	ck_assert_msg(cfg_load(conf, &ts.cfg, &errors) == 0, "%s", buf_cstr(&errors));
	buf_free(&errors);
	ck_assert_int_eq(tlsio_ctx_new_server(cert, key, &ts.tls, err, sizeof err), 0);

	ck_assert_int_eq(uv_loop_init(&ts.loop), 0);
	ck_assert_int_eq(queue_store_open(data, 64 << 20, false, &ts.store), 0);
	ck_assert_int_eq(queue_txn_begin(ts.store, true, &txn), 0);
	ck_assert_int_eq(queue_domain_put(txn, &d), 0);
	ck_assert_int_eq(queue_txn_commit(txn), 0);
	ck_assert_int_eq(queue_writer_start(&ts.loop, ts.store, &ts.writer), 0);
	ck_assert_int_eq(policy_new(&ts.loop, ts.cfg, ts.store, &ts.policy, err, sizeof err), 0);
	smtp_server_init(&ts.srv, &ts.loop);
	ts.srv.cfg = cfg_ref(ts.cfg);
	ts.srv.store = ts.store;
	ts.srv.writer = ts.writer;
	ts.srv.policy = ts.policy;
	ts.srv.tls = ts.tls;

	/* The session's end of a socketpair, from a made-up loopback peer. */
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ts.fd = sv[1];
	ck_assert_int_eq(fcntl(ts.fd, F_SETFL, O_NONBLOCK), 0);
	ts.c = conn_new(&ts.loop, CONN_PIPE);
	ck_assert_int_eq(uv_pipe_open((uv_pipe_t *)conn_stream(ts.c), sv[0]), 0);
	memset(&peer, 0, sizeof peer);
	peer.sin_family = AF_INET;
	peer.sin_port = htons(40000);
	peer.sin_addr.s_addr = htonl(0x7f000001);
	memset(&ss, 0, sizeof ss);
	memcpy(&ss, &peer, sizeof peer);
	smtp_session_new(&ts.srv, ts.c, CFG_ROLE_MX, &ss, &ts.s);
	smtp_session_start(ts.s);
}

static void test_ss_teardown(void)
{
	char cmd[128];

	/* The client hangs up: the session sees EOF and goes. */
	if (ts.ssl != NULL)
		SSL_free(ts.ssl);
	if (ts.sslctx != NULL)
		SSL_CTX_free(ts.sslctx);
	close(ts.fd);
	while (ts.srv.nsessions > 0)
		uv_run(&ts.loop, UV_RUN_ONCE);
	queue_writer_stop(ts.writer);
	ck_assert_int_eq(uv_run(&ts.loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(&ts.loop), 0);
	policy_free(ts.policy);
	tlsio_ctx_free(ts.tls);
	cfg_unref(ts.srv.cfg);
	cfg_unref(ts.cfg);
	queue_store_close(ts.store);
	buf_free(&ts.in);
	snprintf(cmd, sizeof cmd, "rm -rf %s", ts.dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* ------------------------------------------------------------ client */

/* Lets the loop (and the writer's completions) run for up to ms. */
static void test_ss_pump(int ms)
{
	struct pollfd p = { .fd = ts.fd, .events = POLLIN };

	uv_run(&ts.loop, UV_RUN_NOWAIT);
	(void)poll(&p, 1, ms);
	uv_run(&ts.loop, UV_RUN_NOWAIT);
}

/* Reads what is there (through TLS once it is up). */
static void test_ss_read_some(void)
{
	char chunk[65536];
	ssize_t n;

	for (;;) {
		if (ts.ssl != NULL) {
			int r = SSL_read(ts.ssl, chunk, sizeof chunk);

			n = r > 0 ? r : -1;
		} else {
			n = read(ts.fd, chunk, sizeof chunk);
		}
		if (n <= 0)
			return;
		buf_append(&ts.in, chunk, (size_t)n);
	}
}

/* Length of the first complete reply in ts.in (all its lines), or 0. */
static size_t test_ss_reply_len(void)
{
	size_t pos = 0;

	while (pos < ts.in.len) {
		const char *lf = memchr(ts.in.data + pos, '\n', ts.in.len - pos);
		size_t len;

		if (lf == NULL)
			return 0;
		len = (size_t)(lf - (ts.in.data + pos)) + 1;
		if (len < 5 || ts.in.data[pos + 3] == ' ')
			return pos + len;
		pos += len;
	}
	return 0;
}

/* The next reply (last line, CRLF removed), waiting for it. */
static void test_ss_reply(char *out, size_t outlen)
{
	uint64_t deadline = uv_hrtime() / 1000000 + TEST_SS_WAIT_MS;
	size_t len, start;

	while ((len = test_ss_reply_len()) == 0) {
		ck_assert_msg(uv_hrtime() / 1000000 < deadline, "no reply; have \"%.*s\"",
		    (int)ts.in.len, ts.in.data);
		test_ss_pump(5);
		test_ss_read_some();
	}
	/* The last line of the reply. */
	start = len - 2;
	while (start > 0 && ts.in.data[start - 1] != '\n')
		start--;
	snprintf(out, outlen, "%.*s", (int)(len - start - 2), ts.in.data + start);
	buf_consume(&ts.in, len);
}

static void test_ss_expect(const char *prefix)
{
	char line[1024];

	test_ss_reply(line, sizeof line);
	ck_assert_msg(strncmp(line, prefix, strlen(prefix)) == 0,
	    "expected \"%s...\", got \"%s\"", prefix, line);
}

static void test_ss_send(const char *text)
{
	size_t len = strlen(text);

	if (ts.ssl != NULL)
		ck_assert_int_eq(SSL_write(ts.ssl, text, (int)len), (int)len);
	else
		ck_assert_int_eq(write(ts.fd, text, len), (ssize_t)len);
}

/* One byte at a time, the loop running in between. */
static void test_ss_send_slowly(const char *text)
{
	for (; *text; text++) {
		ck_assert_int_eq(write(ts.fd, text, 1), 1);
		uv_run(&ts.loop, UV_RUN_NOWAIT);
	}
}

/* ------------------------------------------------------------- tests */

START_TEST(test_ss_transaction)
{
	char line[1024];
	struct queue_txn *txn;
	struct queue_msg *msg;
	uint64_t id;

	test_ss_expect("220 relay.test ESMTP");
	test_ss_send("EHLO client.test\r\n");
	test_ss_expect("250 DSN");
	test_ss_send("MAIL FROM:<a@example.test>\r\n");
	test_ss_expect("250 2.1.0");
	test_ss_send("RCPT TO:<b@ours.test>\r\n");
	test_ss_expect("250 2.1.5");
	test_ss_send("DATA\r\n");
	test_ss_expect("354 ");
	test_ss_send("Subject: test\r\n\r\nhello\r\n..dot\r\n.\r\n");
	test_ss_reply(line, sizeof line);
	ck_assert_msg(strncmp(line, "250 2.0.0 Ok: queued as ", 24) == 0, "%s", line);
	/* Durable when the 250 left: the message is in the store now. */
	ck_assert_int_eq(queue_id_parse(line + 24, &id), 0);
	ck_assert_int_eq(queue_txn_begin(ts.store, false, &txn), 0);
	ck_assert_int_eq(queue_msg_get(txn, id, &msg), 0);
	ck_assert_str_eq(msg->sender, "a@example.test");
	queue_msg_free(msg);
	queue_txn_abort(txn);
	test_ss_send("QUIT\r\n");
	test_ss_expect("221 2.0.0");
}
END_TEST

START_TEST(test_ss_pipelining_in_order)
{
	test_ss_expect("220 ");
	test_ss_send_slowly("EHLO client.test\r\nNOOP\r\nHELP\r\nVRFY someone\r\n"
	    "MAIL FROM:<p@example.test>\r\nRCPT TO:<q@ours.test>\r\n"
	    "RCPT TO:<r@ours.test>\r\nBOGUS\r\nRSET\r\nQUIT\r\n");
	test_ss_expect("250 DSN");
	test_ss_expect("250 2.0.0 Ok");
	test_ss_expect("214 2.0.0");
	test_ss_expect("252 2.5.0");
	test_ss_expect("250 2.1.0");
	test_ss_expect("250 2.1.5");
	test_ss_expect("250 2.1.5");
	test_ss_expect("500 5.5.2");
	test_ss_expect("250 2.0.0 Ok");
	test_ss_expect("221 2.0.0");
}
END_TEST

START_TEST(test_ss_starttls_discards_plaintext)
{
	uint64_t deadline = uv_hrtime() / 1000000 + TEST_SS_WAIT_MS;
	int rc;

	test_ss_expect("220 ");
	test_ss_send("EHLO client.test\r\n");
	test_ss_expect("250 DSN");
	/* The NOOP rides in the same segment as STARTTLS: never executed. */
	test_ss_send("STARTTLS\r\nNOOP\r\n");
	test_ss_expect("220 2.0.0 Ready to start TLS");
	ck_assert_uint_eq(ts.in.len, 0);
	ts.sslctx = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(ts.sslctx);
	ts.ssl = SSL_new(ts.sslctx);
	ck_assert_int_eq(SSL_set_fd(ts.ssl, ts.fd), 1);
	while ((rc = SSL_connect(ts.ssl)) != 1) {
		int e = SSL_get_error(ts.ssl, rc);

		ck_assert_msg(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE,
		    "handshake failed: %d", e);
		ck_assert(uv_hrtime() / 1000000 < deadline);
		test_ss_pump(5);
	}
	/* RFC 3207: back to the start; the first reply is the EHLO's. */
	test_ss_send("EHLO client.test\r\n");
	test_ss_expect("250 DSN");
	test_ss_send("NOOP\r\n");
	test_ss_expect("250 2.0.0 Ok");
	ck_assert_uint_eq(ts.in.len, 0);
}
END_TEST

START_TEST(test_ss_backpressure)
{
	static const char help[] = "HELP\r\n";
	char block[6 * 1024];
	size_t sent = 0, answered = 0;
	int stalls = 0;
	uint64_t deadline = uv_hrtime() / 1000000 + TEST_SS_WAIT_MS;

	test_ss_expect("220 ");
	for (size_t i = 0; i < sizeof block; i += 6)
		memcpy(block + i, help, 6);
	/* The client never reads: write until the session stops reading. */
	while (stalls < 50) {
		/* The block repeats HELP, so going on from any offset keeps the stream whole. */
		size_t off = sent % sizeof block;
		ssize_t n = write(ts.fd, block + off, sizeof block - off);

		if (n > 0) {
			sent += (size_t)n;
			stalls = 0;
		} else {
			ck_assert_int_eq(errno, EAGAIN);
			stalls++;
		}
		uv_run(&ts.loop, UV_RUN_NOWAIT);
		ck_assert(uv_hrtime() / 1000000 < deadline);
	}
	ck_assert(!conn_is_reading(ts.c));
	ck_assert_uint_gt(conn_out_pending(ts.c), CONN_OUT_HIGH_WATER);
	/* Held replies are bounded: far fewer than the commands sent. */
	ck_assert_uint_lt(conn_out_pending(ts.c), 4 * 1024 * 1024);
	/* The client drains: the session resumes and answers every HELP. */
	while (answered < sent / 6 || sent % 6 != 0) {
		size_t len;

		/* No progress for TEST_SS_WAIT_MS fails (a slow valgrind run still passes). */
		ck_assert_msg(uv_hrtime() / 1000000 < deadline,
		    "%zu of %zu answered", answered, sent / 6);
		if (sent % 6 != 0) {
			/* Finish the command a short write cut. */
			ssize_t n = write(ts.fd, block + sent % sizeof block, 6 - sent % 6);

			if (n > 0)
				sent += (size_t)n;
		}
		test_ss_pump(1);
		test_ss_read_some();
		while ((len = test_ss_reply_len()) > 0) {
			ck_assert_int_eq(memcmp(ts.in.data, "214 2.0.0", 9), 0);
			buf_consume(&ts.in, len);
			answered++;
			deadline = uv_hrtime() / 1000000 + TEST_SS_WAIT_MS;
		}
	}
	ck_assert_uint_eq(answered, sent / 6);
	ck_assert(conn_is_reading(ts.c));
}
END_TEST

static Suite *test_ss_suite(void)
{
	Suite *s = suite_create("smtp_session");
	TCase *tc = tcase_create("socketpair");

	tcase_add_checked_fixture(tc, test_ss_setup, test_ss_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_ss_transaction);
	tcase_add_test(tc, test_ss_pipelining_in_order);
	tcase_add_test(tc, test_ss_starttls_discards_plaintext);
	tcase_add_test(tc, test_ss_backpressure);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	/* As govrelayd does: a peer that hung up is an error code, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	sr = srunner_create(test_ss_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
