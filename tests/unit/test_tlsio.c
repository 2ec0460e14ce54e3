/*
 * test_tlsio: the TLS adapter, end to end in memory. A client tlsio and a
 * server tlsio are wired back to back (each one's send output is fed to
 * the other by a pump loop), with a self-signed P-256 certificate made at
 * test time. Raw OpenSSL clients stand in for peers our own client would
 * never be (TLS 1.1 only, CBC suites only).
 *
 * Entry points: main (one Check suite).
 * OWNERSHIP: the unchecked fixture owns the temporary folder and its PEM
 * files; each test owns its endpoints.
 * THREADS: one. ERRORS: assertion failures.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/buf.h"
#include "relay/tlsio.h"

#define TEST_TLSIO_BIG (100 * 1024)

static char test_tlsio_dir[64];
static char test_tlsio_cert[128];     /* self-signed, matches key */
static char test_tlsio_key[128];
static char test_tlsio_otherkey[128]; /* a second key: mismatch */
static char test_tlsio_garbage[128];  /* not PEM at all */
static char test_tlsio_missing[128];  /* never created */

/* ---------------------------------------------------------- fixtures */

static void test_tlsio_write_key(EVP_PKEY *k, const char *path)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	ck_assert_int_eq(fclose(f), 0);
}

static void test_tlsio_make_files(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	EVP_PKEY *other = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	FILE *f;

	ck_assert_ptr_nonnull(k);
	ck_assert_ptr_nonnull(other);
	ck_assert_ptr_nonnull(x);
	snprintf(test_tlsio_dir, sizeof(test_tlsio_dir), "/tmp/test_tlsio.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(test_tlsio_dir));
	snprintf(test_tlsio_cert, sizeof(test_tlsio_cert), "%s/cert.pem", test_tlsio_dir);
	snprintf(test_tlsio_key, sizeof(test_tlsio_key), "%s/key.pem", test_tlsio_dir);
	snprintf(test_tlsio_otherkey, sizeof(test_tlsio_otherkey), "%s/other.pem", test_tlsio_dir);
	snprintf(test_tlsio_garbage, sizeof(test_tlsio_garbage), "%s/garbage.pem", test_tlsio_dir);
	snprintf(test_tlsio_missing, sizeof(test_tlsio_missing), "%s/missing.pem", test_tlsio_dir);

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

	f = fopen(test_tlsio_cert, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(PEM_write_X509(f, x), 1);
	ck_assert_int_eq(fclose(f), 0);
	test_tlsio_write_key(k, test_tlsio_key);
	test_tlsio_write_key(other, test_tlsio_otherkey);
	f = fopen(test_tlsio_garbage, "w");
	ck_assert_ptr_nonnull(f);
	fputs("this is not a PEM file\n", f);
	ck_assert_int_eq(fclose(f), 0);

	X509_free(x);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static void test_tlsio_remove_files(void)
{
	unlink(test_tlsio_cert);
	unlink(test_tlsio_key);
	unlink(test_tlsio_otherkey);
	unlink(test_tlsio_garbage);
	rmdir(test_tlsio_dir);
}

/* ------------------------------------------------------------ harness */

struct test_tlsio_end {
	struct tlsio *t;
	struct buf wire;        /* ciphertext sent, not yet delivered */
	struct buf plain;       /* plaintext received */
	int established;        /* established callbacks seen */
	bool echo;              /* plaintext callback writes it back */
	bool free_in_cb;        /* plaintext callback frees the tlsio */
	bool direct;            /* send feeds the peer at once (nesting) */
	struct test_tlsio_end *peer;
	int rc;                 /* first non-zero tlsio_feed result */
};

struct test_tlsio_pair {
	struct tlsio_ctx *sctx, *cctx;
	struct test_tlsio_end s, c;
};

static void test_tlsio_on_send(void *arg, const char *data, size_t len)
{
	struct test_tlsio_end *e = arg;
	int rc;

	if (!e->direct || e->peer == NULL) {
		buf_append(&e->wire, data, len);
		return;
	}
	ck_assert_ptr_nonnull(e->peer->t);
	rc = tlsio_feed(e->peer->t, data, len);
	if (rc != 0 && e->peer->rc == 0)
		e->peer->rc = rc;
}

static void test_tlsio_on_plain(void *arg, const char *data, size_t len)
{
	struct test_tlsio_end *e = arg;

	buf_append(&e->plain, data, len);
	if (e->echo)
		ck_assert_int_eq(tlsio_write(e->t, data, len), 0);
	if (e->free_in_cb) {
		tlsio_free(e->t);
		e->t = NULL;
	}
}

static void test_tlsio_on_established(void *arg)
{
	struct test_tlsio_end *e = arg;

	e->established++;
}

static const struct tlsio_callbacks test_tlsio_cbs = {
	.send = test_tlsio_on_send,
	.plaintext = test_tlsio_on_plain,
	.established = test_tlsio_on_established,
};

/* Moves pending ciphertext from one end into the other; false when idle. */
static bool test_tlsio_move(struct test_tlsio_end *from, struct test_tlsio_end *to)
{
	struct buf b;
	int rc;

	if (from->wire.len == 0)
		return false;
	b = from->wire;
	buf_init(&from->wire);
	if (to->t != NULL) {
		rc = tlsio_feed(to->t, b.data, b.len);
		if (rc != 0 && to->rc == 0)
			to->rc = rc;
	}
	buf_free(&b);
	return true;
}

static void test_tlsio_pump(struct test_tlsio_pair *p)
{
	int rounds = 0;

	while (test_tlsio_move(&p->c, &p->s) | test_tlsio_move(&p->s, &p->c))
		ck_assert_int_lt(++rounds, 10000);
}

static void test_tlsio_pair_init(struct test_tlsio_pair *p)
{
	char err[512];

	memset(p, 0, sizeof(*p));
	buf_init(&p->s.wire);
	buf_init(&p->s.plain);
	buf_init(&p->c.wire);
	buf_init(&p->c.plain);
	ck_assert_msg(tlsio_ctx_new_server(test_tlsio_cert, test_tlsio_key, &p->sctx,
	    err, sizeof(err)) == 0, "server ctx: %s", err);
	ck_assert_msg(tlsio_ctx_new_client(&p->cctx, err, sizeof(err)) == 0,
	    "client ctx: %s", err);
	p->s.t = tlsio_new(p->sctx, true, NULL, &test_tlsio_cbs, &p->s);
	p->c.t = tlsio_new(p->cctx, false, "relay.test", &test_tlsio_cbs, &p->c);
	ck_assert_ptr_nonnull(p->s.t);
	ck_assert_ptr_nonnull(p->c.t);
	/* The client's ClientHello is already out. */
	ck_assert_uint_gt(p->c.wire.len, 0);
}

static void test_tlsio_pair_free(struct test_tlsio_pair *p)
{
	tlsio_free(p->s.t);
	tlsio_free(p->c.t);
	tlsio_ctx_free(p->sctx);
	tlsio_ctx_free(p->cctx);
	buf_free(&p->s.wire);
	buf_free(&p->s.plain);
	buf_free(&p->c.wire);
	buf_free(&p->c.plain);
}

static void test_tlsio_handshake(struct test_tlsio_pair *p)
{
	test_tlsio_pump(p);
	ck_assert_msg(p->s.rc == 0 && p->c.rc == 0, "feed rc s=%d c=%d (%s / %s)",
	    p->s.rc, p->c.rc, tlsio_error(p->s.t), tlsio_error(p->c.t));
	ck_assert_int_eq(p->s.established, 1);
	ck_assert_int_eq(p->c.established, 1);
	ck_assert(tlsio_is_established(p->s.t));
	ck_assert(tlsio_is_established(p->c.t));
}

static void test_tlsio_pattern(char *out, size_t len, unsigned seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		out[i] = (char)((i * 131 + seed) & 0xff);
}

/* -------------------------------------------------------------- tests */

START_TEST(test_tlsio_handshake_version)
{
	struct test_tlsio_pair p;

	test_tlsio_pair_init(&p);
	ck_assert(!tlsio_is_established(p.s.t));
	ck_assert_str_eq(tlsio_version(p.s.t), "");
	ck_assert_str_eq(tlsio_cipher(p.c.t), "");
	test_tlsio_handshake(&p);
	/* Both sides agree, on TLS 1.2 or 1.3 and nothing older. */
	ck_assert_str_eq(tlsio_version(p.s.t), tlsio_version(p.c.t));
	ck_assert_msg(strcmp(tlsio_version(p.s.t), "TLSv1.3") == 0 ||
	    strcmp(tlsio_version(p.s.t), "TLSv1.2") == 0, "version %s",
	    tlsio_version(p.s.t));
	ck_assert_str_eq(tlsio_cipher(p.s.t), tlsio_cipher(p.c.t));
	ck_assert_uint_gt(strlen(tlsio_cipher(p.s.t)), 0);
	ck_assert_str_eq(tlsio_error(p.s.t), "");
	ck_assert_str_eq(tlsio_error(p.c.t), "");
	/* Nothing decrypted out of thin air. */
	ck_assert_uint_eq(p.s.plain.len, 0);
	ck_assert_uint_eq(p.c.plain.len, 0);
	test_tlsio_pair_free(&p);
}
END_TEST

START_TEST(test_tlsio_write_before_handshake)
{
	struct test_tlsio_pair p;

	test_tlsio_pair_init(&p);
	ck_assert_int_eq(tlsio_write(p.c.t, "EHLO x\r\n", 8), -EPROTO);
	ck_assert_int_eq(tlsio_write(p.s.t, "220 x\r\n", 7), -EPROTO);
	test_tlsio_pair_free(&p);
}
END_TEST

static const struct {
	const char *label;
	size_t c2s;  /* bytes the client sends */
	size_t s2c;  /* bytes the server sends */
} test_tlsio_data_cases[] = {
	{ "one byte each way", 1, 1 },
	{ "a command and a reply", 8, 40 },
	{ "100 KB client to server", TEST_TLSIO_BIG, 10 },
	{ "100 KB server to client", 10, TEST_TLSIO_BIG },
	{ "100 KB both ways", TEST_TLSIO_BIG, TEST_TLSIO_BIG },
};

START_TEST(test_tlsio_data_both_ways)
{
	struct test_tlsio_pair p;
	size_t c2s = test_tlsio_data_cases[_i].c2s, s2c = test_tlsio_data_cases[_i].s2c;
	char *a = malloc(c2s), *b = malloc(s2c);

	test_tlsio_pair_init(&p);
	test_tlsio_handshake(&p);
	test_tlsio_pattern(a, c2s, 7);
	test_tlsio_pattern(b, s2c, 11);
	ck_assert_int_eq(tlsio_write(p.c.t, a, c2s), 0);
	ck_assert_int_eq(tlsio_write(p.s.t, b, s2c), 0);
	test_tlsio_pump(&p);
	ck_assert_msg(p.s.plain.len == c2s && memcmp(p.s.plain.data, a, c2s) == 0,
	    "%s: server got %zu of %zu bytes", test_tlsio_data_cases[_i].label,
	    p.s.plain.len, c2s);
	ck_assert_msg(p.c.plain.len == s2c && memcmp(p.c.plain.data, b, s2c) == 0,
	    "%s: client got %zu of %zu bytes", test_tlsio_data_cases[_i].label,
	    p.c.plain.len, s2c);
	ck_assert_int_eq(p.s.rc, 0);
	ck_assert_int_eq(p.c.rc, 0);
	free(a);
	free(b);
	test_tlsio_pair_free(&p);
}
END_TEST

/* The plaintext callback writes back through the same tlsio (re-entrancy). */
START_TEST(test_tlsio_write_from_callback)
{
	struct test_tlsio_pair p;
	char *a = malloc(TEST_TLSIO_BIG);

	test_tlsio_pair_init(&p);
	test_tlsio_handshake(&p);
	p.s.echo = true;
	test_tlsio_pattern(a, TEST_TLSIO_BIG, 3);
	ck_assert_int_eq(tlsio_write(p.c.t, a, TEST_TLSIO_BIG), 0);
	test_tlsio_pump(&p);
	ck_assert_uint_eq(p.s.plain.len, TEST_TLSIO_BIG);
	ck_assert_uint_eq(p.c.plain.len, TEST_TLSIO_BIG);
	ck_assert(memcmp(p.c.plain.data, a, TEST_TLSIO_BIG) == 0);
	free(a);
	test_tlsio_pair_free(&p);
}
END_TEST

/* The owner frees the tlsio from its plaintext callback: deferred free. */
START_TEST(test_tlsio_free_from_callback)
{
	struct test_tlsio_pair p;
	char *a = malloc(TEST_TLSIO_BIG);

	test_tlsio_pair_init(&p);
	test_tlsio_handshake(&p);
	p.s.free_in_cb = true;
	test_tlsio_pattern(a, TEST_TLSIO_BIG, 5);
	/* Several records: the free happens after the first one. */
	ck_assert_int_eq(tlsio_write(p.c.t, a, TEST_TLSIO_BIG), 0);
	test_tlsio_pump(&p);
	ck_assert_ptr_null(p.s.t);
	ck_assert_int_eq(p.s.rc, 0);
	/* No callback ran after the free: only the first record arrived. */
	ck_assert_uint_gt(p.s.plain.len, 0);
	ck_assert_uint_lt(p.s.plain.len, TEST_TLSIO_BIG);
	free(a);
	test_tlsio_pair_free(&p);
}
END_TEST

START_TEST(test_tlsio_close_notify)
{
	struct test_tlsio_pair p;

	test_tlsio_pair_init(&p);
	test_tlsio_handshake(&p);
	ck_assert_int_eq(tlsio_write(p.c.t, "QUIT\r\n", 6), 0);
	tlsio_shutdown(p.c.t);
	ck_assert_int_eq(tlsio_write(p.c.t, "x", 1), -EPROTO);
	test_tlsio_pump(&p);
	/* Data before close_notify still arrives, then the close is seen. */
	ck_assert_uint_eq(p.s.plain.len, 6);
	ck_assert_int_eq(p.s.rc, -ECONNRESET);
	ck_assert_int_eq(tlsio_feed(p.s.t, "", 0), -ECONNRESET);
	/* The server answers with its own close_notify; the client sees it. */
	tlsio_shutdown(p.s.t);
	test_tlsio_pump(&p);
	ck_assert_int_eq(p.c.rc, -ECONNRESET);
	test_tlsio_pair_free(&p);
}
END_TEST

static const struct {
	const char *label;
	const char *data;
	size_t len;
} test_tlsio_garbage_cases[] = {
	{ "plaintext SMTP command", "EHLO client.example\r\n", 21 },
	{ "HTTP request", "GET / HTTP/1.0\r\n\r\n", 18 },
	{ "record of unknown type", "\x63\x03\x03\x00\x05hello", 10 },
	{ "handshake record with bad body", "\x16\x03\x01\x00\x04\xff\xff\xff\xff", 9 },
};

START_TEST(test_tlsio_garbage_server)
{
	struct test_tlsio_pair p;
	const char *d = test_tlsio_garbage_cases[_i].data;
	size_t n = test_tlsio_garbage_cases[_i].len;
	int rc;

	test_tlsio_pair_init(&p);
	rc = tlsio_feed(p.s.t, d, n);
	ck_assert_msg(rc == -EPROTO, "%s: rc %d", test_tlsio_garbage_cases[_i].label, rc);
	ck_assert_uint_gt(strlen(tlsio_error(p.s.t)), 0);
	ck_assert(!tlsio_is_established(p.s.t));
	ck_assert_int_eq(p.s.established, 0);
	/* Fatal errors stay fatal. */
	ck_assert_int_eq(tlsio_feed(p.s.t, d, n), -EPROTO);
	ck_assert_int_eq(tlsio_write(p.s.t, "x", 1), -EPROTO);
	test_tlsio_pair_free(&p);
}
END_TEST

/* A client that gets garbage back instead of a ServerHello. */
START_TEST(test_tlsio_garbage_client)
{
	struct test_tlsio_pair p;
	int rc;

	test_tlsio_pair_init(&p);
	rc = tlsio_feed(p.c.t, "220 mail.example ESMTP\r\n", 24);
	ck_assert_int_eq(rc, -EPROTO);
	ck_assert_uint_gt(strlen(tlsio_error(p.c.t)), 0);
	test_tlsio_pair_free(&p);
}
END_TEST

/*
 * Send callbacks feed the peer synchronously, so every tlsio call nests
 * inside the other endpoint's: feed inside feed, feed inside write.
 */
START_TEST(test_tlsio_direct_wiring)
{
	struct test_tlsio_pair p;
	char *a = malloc(TEST_TLSIO_BIG);
	struct buf hello;

	test_tlsio_pair_init(&p);
	p.s.peer = &p.c;
	p.c.peer = &p.s;
	p.s.direct = p.c.direct = true;
	p.s.echo = true;
	/* The ClientHello went out before the pointers existed: deliver it. */
	hello = p.c.wire;
	buf_init(&p.c.wire);
	ck_assert_int_eq(tlsio_feed(p.s.t, hello.data, hello.len), 0);
	buf_free(&hello);
	ck_assert_msg(p.s.rc == 0 && p.c.rc == 0, "rc s=%d c=%d", p.s.rc, p.c.rc);
	ck_assert_int_eq(p.s.established, 1);
	ck_assert_int_eq(p.c.established, 1);
	test_tlsio_pattern(a, TEST_TLSIO_BIG, 9);
	ck_assert_int_eq(tlsio_write(p.c.t, a, TEST_TLSIO_BIG), 0);
	ck_assert_uint_eq(p.s.plain.len, TEST_TLSIO_BIG);
	/* The echo came back through a feed nested in the client's write. */
	ck_assert_uint_eq(p.c.plain.len, TEST_TLSIO_BIG);
	ck_assert(memcmp(p.c.plain.data, a, TEST_TLSIO_BIG) == 0);
	ck_assert_uint_eq(p.s.wire.len + p.c.wire.len, 0);
	free(a);
	test_tlsio_pair_free(&p);
}
END_TEST

/* Contexts may be freed while their endpoints live (config reload). */
START_TEST(test_tlsio_ctx_freed_early)
{
	struct test_tlsio_pair p;

	test_tlsio_pair_init(&p);
	tlsio_ctx_free(p.sctx);
	tlsio_ctx_free(p.cctx);
	p.sctx = p.cctx = NULL;
	test_tlsio_handshake(&p);
	ck_assert_int_eq(tlsio_write(p.c.t, "NOOP\r\n", 6), 0);
	test_tlsio_pump(&p);
	ck_assert_uint_eq(p.s.plain.len, 6);
	test_tlsio_pair_free(&p);
}
END_TEST

/* ----------------------------------------------- raw OpenSSL clients */

static const struct {
	const char *label;
	int max_version;
	const char *ciphers;       /* TLS 1.2 list */
	bool ok;                   /* handshake should succeed */
	const char *cipher_prefix; /* what the server must pick */
} test_tlsio_raw_cases[] = {
	{ "TLS 1.1 only", TLS1_1_VERSION, "DEFAULT:@SECLEVEL=0", false, NULL },
	{ "TLS 1.0 only", TLS1_VERSION, "DEFAULT:@SECLEVEL=0", false, NULL },
	{ "TLS 1.2 CBC suites only", TLS1_2_VERSION,
	  "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384", false, NULL },
	{ "TLS 1.2 static RSA and ECDH suites", TLS1_2_VERSION,
	  "AES128-GCM-SHA256:ECDH-ECDSA-AES128-GCM-SHA256", false, NULL },
	{ "TLS 1.2 defaults", TLS1_2_VERSION, "DEFAULT", true, "ECDHE-ECDSA-" },
	{ "TLS 1.3", TLS1_3_VERSION, "DEFAULT", true, "TLS_" },
};

START_TEST(test_tlsio_raw_client)
{
	struct test_tlsio_pair p;
	SSL_CTX *ctx;
	SSL *ssl;
	BIO *rbio, *wbio;
	char data[16384];
	int n, r = 0, rounds;

	test_tlsio_pair_init(&p);
	ctx = SSL_CTX_new(TLS_client_method());
	ck_assert_ptr_nonnull(ctx);
	SSL_CTX_set_security_level(ctx, 0);
	ck_assert_int_eq(SSL_CTX_set_min_proto_version(ctx, 0), 1);
	ck_assert_int_eq(SSL_CTX_set_max_proto_version(ctx,
	    test_tlsio_raw_cases[_i].max_version), 1);
	ck_assert_int_eq(SSL_CTX_set_cipher_list(ctx, test_tlsio_raw_cases[_i].ciphers), 1);
	ssl = SSL_new(ctx);
	rbio = BIO_new(BIO_s_mem());
	wbio = BIO_new(BIO_s_mem());
	BIO_set_mem_eof_return(rbio, -1);
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_connect_state(ssl);
	for (rounds = 0; rounds < 20; rounds++) {
		r = SSL_do_handshake(ssl);
		while ((n = BIO_read(wbio, data, sizeof(data))) > 0) {
			int rc = tlsio_feed(p.s.t, data, (size_t)n);

			if (rc != 0 && p.s.rc == 0)
				p.s.rc = rc;
		}
		if (p.s.wire.len == 0)
			break;
		ck_assert_int_eq(BIO_write(rbio, p.s.wire.data, (int)p.s.wire.len),
		    (int)p.s.wire.len);
		buf_reset(&p.s.wire);
	}
	if (test_tlsio_raw_cases[_i].ok) {
		ck_assert_msg(r == 1 && p.s.rc == 0, "%s: r %d rc %d: %s",
		    test_tlsio_raw_cases[_i].label, r, p.s.rc, tlsio_error(p.s.t));
		ck_assert(tlsio_is_established(p.s.t));
		ck_assert_str_eq(tlsio_version(p.s.t), SSL_get_version(ssl));
		ck_assert_msg(strncmp(tlsio_cipher(p.s.t), test_tlsio_raw_cases[_i].cipher_prefix,
		    strlen(test_tlsio_raw_cases[_i].cipher_prefix)) == 0, "%s: cipher %s",
		    test_tlsio_raw_cases[_i].label, tlsio_cipher(p.s.t));
		/* Forward-secret AEAD only, whatever the version. */
		ck_assert(strstr(tlsio_cipher(p.s.t), "GCM") != NULL ||
		    strstr(tlsio_cipher(p.s.t), "CHACHA20") != NULL);
	} else {
		ck_assert_msg(p.s.rc == -EPROTO, "%s: server rc %d",
		    test_tlsio_raw_cases[_i].label, p.s.rc);
		ck_assert_int_ne(r, 1);
		ck_assert(!tlsio_is_established(p.s.t));
		ck_assert_uint_gt(strlen(tlsio_error(p.s.t)), 0);
	}
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	test_tlsio_pair_free(&p);
}
END_TEST

/* ----------------------------------------------------- context errors */

enum test_tlsio_file { TF_CERT, TF_KEY, TF_OTHERKEY, TF_GARBAGE, TF_MISSING };

static const char *test_tlsio_path(enum test_tlsio_file f)
{
	switch (f) {
	case TF_CERT: return test_tlsio_cert;
	case TF_KEY: return test_tlsio_key;
	case TF_OTHERKEY: return test_tlsio_otherkey;
	case TF_GARBAGE: return test_tlsio_garbage;
	case TF_MISSING: return test_tlsio_missing;
	}
	return "";
}

static const struct {
	const char *label;
	enum test_tlsio_file cert, key;
	enum test_tlsio_file named; /* the file the error must name */
	const char *phrase;
} test_tlsio_ctx_cases[] = {
	{ "certificate file missing", TF_MISSING, TF_KEY, TF_MISSING, "certificate" },
	{ "certificate file not PEM", TF_GARBAGE, TF_KEY, TF_GARBAGE, "certificate" },
	{ "key file missing", TF_CERT, TF_MISSING, TF_MISSING, "private key" },
	{ "key file not PEM", TF_CERT, TF_GARBAGE, TF_GARBAGE, "private key" },
	{ "key does not match certificate", TF_CERT, TF_OTHERKEY, TF_OTHERKEY, "mismatch" },
};

START_TEST(test_tlsio_ctx_errors)
{
	struct tlsio_ctx *ctx = (struct tlsio_ctx *)&ctx;
	const char *named = test_tlsio_path(test_tlsio_ctx_cases[_i].named);
	char err[512];
	int rc;

	err[0] = '\0';
	rc = tlsio_ctx_new_server(test_tlsio_path(test_tlsio_ctx_cases[_i].cert),
	    test_tlsio_path(test_tlsio_ctx_cases[_i].key), &ctx, err, sizeof(err));
	ck_assert_msg(rc == -EINVAL, "%s: rc %d", test_tlsio_ctx_cases[_i].label, rc);
	ck_assert_ptr_null(ctx);
	ck_assert_msg(strstr(err, named) != NULL, "%s: error does not name %s: %s",
	    test_tlsio_ctx_cases[_i].label, named, err);
	ck_assert_msg(strstr(err, test_tlsio_ctx_cases[_i].phrase) != NULL,
	    "%s: %s", test_tlsio_ctx_cases[_i].label, err);
	/* OpenSSL's own reason is included ("error:XXXXXXXX:..."). */
	ck_assert_msg(strstr(err, "error:") != NULL, "%s: %s",
	    test_tlsio_ctx_cases[_i].label, err);
	/* Nothing left on the thread's error queue to confuse a session. */
	ck_assert_uint_eq(ERR_peek_error(), 0);
}
END_TEST

START_TEST(test_tlsio_ctx_truncated_error)
{
	struct tlsio_ctx *ctx;
	char err[24];

	ck_assert_int_eq(tlsio_ctx_new_server(test_tlsio_missing, test_tlsio_key, &ctx,
	    err, sizeof(err)), -EINVAL);
	ck_assert_uint_eq(strlen(err), sizeof(err) - 1);
	ck_assert_int_eq(tlsio_ctx_new_server(test_tlsio_missing, test_tlsio_key, &ctx,
	    NULL, 0), -EINVAL);
}
END_TEST

static Suite *test_tlsio_suite(void)
{
	Suite *s = suite_create("tlsio");
	TCase *tc = tcase_create("tlsio");

	tcase_add_unchecked_fixture(tc, test_tlsio_make_files, test_tlsio_remove_files);
	tcase_add_test(tc, test_tlsio_handshake_version);
	tcase_add_test(tc, test_tlsio_write_before_handshake);
	tcase_add_loop_test(tc, test_tlsio_data_both_ways, 0,
	    sizeof(test_tlsio_data_cases) / sizeof(test_tlsio_data_cases[0]));
	tcase_add_test(tc, test_tlsio_write_from_callback);
	tcase_add_test(tc, test_tlsio_free_from_callback);
	tcase_add_test(tc, test_tlsio_close_notify);
	tcase_add_loop_test(tc, test_tlsio_garbage_server, 0,
	    sizeof(test_tlsio_garbage_cases) / sizeof(test_tlsio_garbage_cases[0]));
	tcase_add_test(tc, test_tlsio_garbage_client);
	tcase_add_test(tc, test_tlsio_ctx_freed_early);
	tcase_add_test(tc, test_tlsio_direct_wiring);
	tcase_add_loop_test(tc, test_tlsio_raw_client, 0,
	    sizeof(test_tlsio_raw_cases) / sizeof(test_tlsio_raw_cases[0]));
	tcase_add_loop_test(tc, test_tlsio_ctx_errors, 0,
	    sizeof(test_tlsio_ctx_cases) / sizeof(test_tlsio_ctx_cases[0]));
	tcase_add_test(tc, test_tlsio_ctx_truncated_error);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(test_tlsio_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
