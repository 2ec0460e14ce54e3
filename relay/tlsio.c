/*
 * tlsio: the OpenSSL 3 adapter. TLS runs over two memory BIOs so that the
 * owner's libuv stream stays the only thing that touches the socket: the
 * owner feeds the ciphertext it read (tlsio_feed) and gets plaintext and
 * ciphertext-to-send back through its callbacks (DEPENDENCIES.md 3).
 *
 * Entry points: tlsio_ctx_new_server, tlsio_ctx_new_client(_ca),
 * tlsio_ctx_verifying, tlsio_ctx_free;
 * tlsio_new, tlsio_free, tlsio_feed, tlsio_write, tlsio_shutdown and the
 * accessors tlsio_is_established, tlsio_version, tlsio_cipher, tlsio_error.
 *
 * Outbound, a client context comes as a pair: the opportunistic one
 * (no verification: encrypt whatever the next hop presents) and its
 * verifying twin (tlsio_ctx_verifying), used when TLS is required: the
 * chain must lead to the CA store and the certificate must name the next
 * hop given to tlsio_new (a host name, or an IP address matched against
 * the IP SANs).
 *
 * OWNERSHIP: a tlsio_ctx wraps one SSL_CTX. Every SSL made from it takes
 * its own SSL_CTX reference (SSL_new calls SSL_CTX_up_ref), so the owner
 * may call tlsio_ctx_free (a reload) while sessions still run on the old
 * context; the SSL_CTX goes when its last tlsio does. The callbacks and
 * their arg are borrowed for the life of the tlsio; the data they are
 * handed is borrowed for the call only.
 *
 * Re-entrancy: callbacks run from inside tlsio_feed, tlsio_write,
 * tlsio_shutdown and tlsio_new. From a callback the owner may call
 * tlsio_write and tlsio_shutdown (they run between two SSL calls, never
 * inside one), and it may even call tlsio_free: while a tlsio call is on
 * the stack the free is deferred to the outermost call's return, no
 * callback runs after it, and that call returns 0. A nested tlsio_feed
 * on the same tlsio (two endpoints piped into each other synchronously,
 * as a test does) only queues the bytes; the outermost call consumes
 * them before it returns.
 *
 * THREADS: a tlsio belongs to one thread (the loop). Contexts may be
 * created on any thread. The OpenSSL error queue is per thread: every SSL
 * call here starts from a cleared queue so other sessions' leftovers never
 * leak into this one's error text.
 *
 * ERRORS: 0 or a negative errno. -EPROTO is a fatal TLS error (the alert,
 * if any, went out through send; tlsio_error says why); -ECONNRESET is the
 * peer's close_notify; -EINVAL a bad context file, with text naming it.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <openssl/x509_vfy.h>

#include "common/util.h"
#include "common/xmalloc.h"
#include "relay/tlsio.h"

/*
 * TLS 1.2 suites: forward secrecy (ECDHE or DHE) and an AEAD cipher only.
 * PSK/SRP/DSS and anonymous suites would match the broad terms, so they
 * are excluded by name. TLS 1.3 suites are all forward-secret AEAD and
 * keep OpenSSL's default list.
 */
#define TLSIO_CIPHERS_12 \
	"ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:" \
	"!aNULL:!eNULL:!PSK:!SRP:!DSS"

#define TLSIO_ERR_MAX 256
/* One TLS record's worth of plaintext or ciphertext per BIO/SSL read. */
#define TLSIO_IO_CHUNK 16384
/* SSL_write takes an int; larger writes go in slices. */
#define TLSIO_WRITE_SLICE (64 * 1024)

struct tlsio_ctx {
	SSL_CTX *ssl_ctx;
	bool verify;                 /* a verifying client context */
	struct tlsio_ctx *verifying; /* an opportunistic one's twin (owned) */
};

struct tlsio {
	SSL *ssl;
	BIO *rbio;                 /* ciphertext from the peer; owned by ssl */
	BIO *wbio;                 /* ciphertext to the peer; owned by ssl */
	const struct tlsio_callbacks *cb;
	void *arg;
	unsigned depth;            /* tlsio calls on the stack (re-entrancy) */
	bool free_pending;         /* tlsio_free called while depth > 0 */
	bool established;
	bool failed;               /* fatal error: everything returns -EPROTO */
	bool peer_closed;          /* close_notify received */
	bool shutdown_sent;
	bool verify;               /* the peer's certificate is verified */
	char err[TLSIO_ERR_MAX];
};

/* ------------------------------------------------------------ contexts */

/*
 * Appends OpenSSL's queued errors (oldest first) to the text already in
 * out, then leaves the queue empty.
 */
static void tlsio_errstack(char *out, size_t outlen)
{
	size_t used = strnlen(out, outlen);
	unsigned long e;
	bool any = false;

	while ((e = ERR_get_error()) != 0) {
		char one[160];
		int n;

		ERR_error_string_n(e, one, sizeof(one));
		if (used + 1 < outlen) {
			n = snprintf(out + used, outlen - used, "%s%s", any ? "; " : "", one);
			if (n > 0)
				used = used + (size_t)n >= outlen ? outlen - 1 : used + (size_t)n;
		}
		any = true;
	}
	if (!any && used + 1 < outlen)
		snprintf(out + used, outlen - used, "no OpenSSL error queued");
}

/* err holds the reason's start; add ": " and OpenSSL's errors to it. */
static void tlsio_ctx_err(char *err, size_t errlen)
{
	size_t used;

	if (errlen == 0) {
		ERR_clear_error();
		return;
	}
	used = strnlen(err, errlen);
	if (used + 1 < errlen)
		snprintf(err + used, errlen - used, ": ");
	tlsio_errstack(err, errlen);
}

/* What both roles share: versions, options and the TLS 1.2 suites. */
static SSL_CTX *tlsio_ctx_base(const SSL_METHOD *method, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(method);

	if (ctx == NULL) {
		snprintf(err, errlen, "cannot create a TLS context");
		tlsio_ctx_err(err, errlen);
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLSIO_CIPHERS_12) != 1) {
		snprintf(err, errlen, "cannot restrict TLS versions or ciphers");
		tlsio_ctx_err(err, errlen);
		SSL_CTX_free(ctx);
		return NULL;
	}
	/*
	 * No renegotiation (a CPU and state-machine attack surface); a peer
	 * that drops TCP without close_notify is an ordinary end of session
	 * for SMTP, whose own dot and QUIT delimit the data; no compression
	 * (CRIME).
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
	    SSL_OP_NO_COMPRESSION);
	return ctx;
}

int tlsio_ctx_new_server(const char *cert_file, const char *key_file,
    struct tlsio_ctx **out, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	*out = NULL;
	ERR_clear_error();
	ctx = tlsio_ctx_base(TLS_server_method(), err, errlen);
	if (ctx == NULL)
		return -EINVAL;
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
	/* DHE suites need parameters; let OpenSSL pick them by key size. */
	SSL_CTX_set_dh_auto(ctx, 1);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		snprintf(err, errlen, "cannot load certificate chain %s", cert_file);
		tlsio_ctx_err(err, errlen);
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "cannot load private key %s", key_file);
		tlsio_ctx_err(err, errlen);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "private key %s does not match certificate %s",
		    key_file, cert_file);
		tlsio_ctx_err(err, errlen);
		goto fail;
	}
	*out = xcalloc(1, sizeof(**out));
	(*out)->ssl_ctx = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return -EINVAL;
}

/*
 * The verifying twin: the CA store is ca_file (PEM, one or more CAs) or,
 * when NULL, the system's (OpenSSL's default paths, e.g.
 * /etc/ssl/certs); the peer's name is set per connection by tlsio_new.
 */
static int tlsio_ctx_new_verifying(const char *ca_file, struct tlsio_ctx **out,
    char *err, size_t errlen)
{
	SSL_CTX *ctx = tlsio_ctx_base(TLS_client_method(), err, errlen);
	int ok;

	if (ctx == NULL)
		return -EINVAL;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ok = ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL) :
	    SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		snprintf(err, errlen, "cannot load the CA certificates %s",
		    ca_file != NULL ? ca_file : "of the system store");
		tlsio_ctx_err(err, errlen);
		SSL_CTX_free(ctx);
		return -EINVAL;
	}
	*out = xcalloc(1, sizeof(**out));
	(*out)->ssl_ctx = ctx;
	(*out)->verify = true;
	return 0;
}

int tlsio_ctx_new_client_ca(const char *ca_file, struct tlsio_ctx **out, char *err,
    size_t errlen)
{
	SSL_CTX *ctx;
	struct tlsio_ctx *twin;

	*out = NULL;
	ERR_clear_error();
	if (tlsio_ctx_new_verifying(ca_file, &twin, err, errlen) < 0)
		return -EINVAL;
	ctx = tlsio_ctx_base(TLS_client_method(), err, errlen);
	if (ctx == NULL) {
		tlsio_ctx_free(twin);
		return -EINVAL;
	}
	/*
	 * Opportunistic TLS (RFC 3207 as MTAs deploy it): encrypt whenever
	 * the next hop offers STARTTLS, but do not authenticate it, since
	 * nothing says which name to expect. A certificate we cannot verify
	 * must not make us fall back to cleartext, which would be worse.
	 * Where TLS is required, the verifying twin is used instead.
	 */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	*out = xcalloc(1, sizeof(**out));
	(*out)->ssl_ctx = ctx;
	(*out)->verifying = twin;
	return 0;
}

int tlsio_ctx_new_client(struct tlsio_ctx **out, char *err, size_t errlen)
{
	return tlsio_ctx_new_client_ca(NULL, out, err, errlen);
}

struct tlsio_ctx *tlsio_ctx_verifying(struct tlsio_ctx *ctx)
{
	return ctx != NULL ? ctx->verifying : NULL;
}

void tlsio_ctx_free(struct tlsio_ctx *ctx)
{
	if (ctx == NULL)
		return;
	tlsio_ctx_free(ctx->verifying);
	/* Live SSL objects keep their own reference on the SSL_CTX. */
	SSL_CTX_free(ctx->ssl_ctx);
	free(ctx);
}

/* ----------------------------------------------------------- endpoints */

static void tlsio_destroy(struct tlsio *t)
{
	SSL_free(t->ssl); /* frees both BIOs and drops the SSL_CTX reference */
	free(t);
}

/* True when callbacks may still run: the owner has not freed t. */
static bool tlsio_is_live(const struct tlsio *t)
{
	return !t->free_pending;
}

static void tlsio_enter(struct tlsio *t)
{
	t->depth++;
}

static int tlsio_drive(struct tlsio *t);

/*
 * Leaves a tlsio call. Input queued by a nested tlsio_feed while the
 * outermost call was busy (a peer piped back synchronously) is consumed
 * before that call returns; a fatal error it finds is kept for the next
 * call. Returns true when the tlsio is gone (a callback freed it), in
 * which case the caller returns at once without touching t.
 */
static bool tlsio_leave(struct tlsio *t)
{
	if (t->depth == 1 && !t->free_pending && !t->failed && !t->peer_closed &&
	    BIO_ctrl_pending(t->rbio) > 0)
		(void)tlsio_drive(t);
	if (--t->depth == 0 && t->free_pending) {
		tlsio_destroy(t);
		return true;
	}
	return false;
}

/*
 * Hands everything OpenSSL queued in the write BIO to cb->send. Needed
 * after every SSL call: SSL_read emits records too (TLS 1.3 tickets,
 * KeyUpdate answers, alerts).
 */
static void tlsio_flush(struct tlsio *t)
{
	char data[TLSIO_IO_CHUNK];
	int n;

	while (tlsio_is_live(t) && (n = BIO_read(t->wbio, data, sizeof(data))) > 0)
		t->cb->send(t->arg, data, (size_t)n);
	if (!tlsio_is_live(t))
		(void)BIO_reset(t->wbio);
}

/* Records a fatal error from SSL call result r, sends any alert. */
static int tlsio_fail(struct tlsio *t, const char *what, int r)
{
	int e = SSL_get_error(t->ssl, r);

	t->failed = true;
	switch (e) {
	case SSL_ERROR_SSL:
		/* Say which check the certificate failed, not only "verify failed". */
		if (t->verify && SSL_get_verify_result(t->ssl) != X509_V_OK) {
			snprintf(t->err, sizeof(t->err), "%s failed: the server certificate "
			    "did not verify: %s", what,
			    X509_verify_cert_error_string(SSL_get_verify_result(t->ssl)));
			ERR_clear_error();
			break;
		}
		snprintf(t->err, sizeof(t->err), "%s failed: ", what);
		tlsio_errstack(t->err, sizeof(t->err));
		break;
	case SSL_ERROR_SYSCALL:
		snprintf(t->err, sizeof(t->err), "%s failed: unexpected end of stream", what);
		ERR_clear_error();
		break;
	default:
		snprintf(t->err, sizeof(t->err), "%s failed: SSL error %d", what, e);
		ERR_clear_error();
		break;
	}
	/* The alert OpenSSL wrote (if any) tells the peer why. */
	tlsio_flush(t);
	return -EPROTO;
}

/*
 * A verifying client: the certificate must name peer, checked before the
 * ClientHello leaves. An IP address is matched against the IP SANs only
 * (and sends no SNI); a name against the DNS SANs, wildcards only as a
 * whole left label, and goes out as SNI. No name at all would check the
 * chain alone, so it is replaced by "invalid", which no certificate from
 * a public CA can carry (RFC 6761 section 6.4): it fails closed.
 */
static void tlsio_set_peer(struct tlsio *t, const char *peer)
{
	X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
	unsigned char ip[16];

	t->verify = true;
	if (peer == NULL || peer[0] == '\0')
		peer = "invalid";
	if (inet_pton(AF_INET, peer, ip) == 1 || inet_pton(AF_INET6, peer, ip) == 1) {
		if (X509_VERIFY_PARAM_set1_ip_asc(param, peer) == 1)
			return;
		peer = "invalid";
	}
	X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (SSL_set1_host(t->ssl, peer) != 1)
		(void)SSL_set1_host(t->ssl, "invalid");
	(void)SSL_set_tlsext_host_name(t->ssl, peer);
}

struct tlsio *tlsio_new(struct tlsio_ctx *ctx, bool server, const char *sni,
    const struct tlsio_callbacks *cb, void *arg)
{
	struct tlsio *t = xcalloc(1, sizeof(*t));

	t->cb = cb;
	t->arg = arg;
	ERR_clear_error();
	t->ssl = SSL_new(ctx->ssl_ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
		/* Only memory exhaustion gets here: same policy as xmalloc. */
		fprintf(stderr, "tlsio: out of memory creating a TLS endpoint\n");
		abort();
	}
	/* An empty read BIO means "wait for more" (WANT_READ), not EOF. */
	BIO_set_mem_eof_return(t->rbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	if (server) {
		SSL_set_accept_state(t->ssl);
		return t;
	}
	SSL_set_connect_state(t->ssl);
	if (ctx->verify)
		tlsio_set_peer(t, sni);
	/* SNI must be a host name (RFC 6066 section 3), never an IP literal. */
	else if (sni != NULL && sni[0] != '\0')
		(void)SSL_set_tlsext_host_name(t->ssl, sni);
	/*
	 * Sends the ClientHello now. The owner has no pointer yet, so it
	 * cannot free t from a callback here. If the send callback fed the
	 * answer straight back (nested tlsio_feed), tlsio_drive consumes it.
	 */
	tlsio_enter(t);
	(void)tlsio_drive(t);
	(void)tlsio_leave(t);
	return t;
}

void tlsio_free(struct tlsio *t)
{
	if (t == NULL)
		return;
	if (t->depth > 0) {
		/* Called from one of our callbacks: the outermost call frees. */
		t->free_pending = true;
		return;
	}
	tlsio_destroy(t);
}

/*
 * Runs the handshake (if not done) and reads all plaintext available.
 * Loops while the read BIO still holds bytes, because a nested tlsio_feed
 * from a send callback may add some after OpenSSL last looked.
 */
static int tlsio_drive(struct tlsio *t)
{
	char data[TLSIO_IO_CHUNK];
	int r;

	for (;;) {
		if (!t->established) {
			ERR_clear_error();
			r = SSL_do_handshake(t->ssl);
			if (r <= 0) {
				if (SSL_get_error(t->ssl, r) != SSL_ERROR_WANT_READ)
					return tlsio_fail(t, "TLS handshake", r);
				tlsio_flush(t);
				if (!tlsio_is_live(t))
					return 0;
				if (BIO_ctrl_pending(t->rbio) > 0)
					continue;
				return 0;
			}
			tlsio_flush(t);
			if (!tlsio_is_live(t))
				return 0;
			t->established = true;
			if (t->cb->established != NULL)
				t->cb->established(t->arg);
			if (!tlsio_is_live(t))
				return 0;
		}
		ERR_clear_error();
		r = SSL_read(t->ssl, data, sizeof(data));
		if (r > 0) {
			tlsio_flush(t);
			if (tlsio_is_live(t))
				t->cb->plaintext(t->arg, data, (size_t)r);
			if (!tlsio_is_live(t) || t->failed)
				return t->failed ? -EPROTO : 0;
			continue;
		}
		switch (SSL_get_error(t->ssl, r)) {
		case SSL_ERROR_WANT_READ:
			tlsio_flush(t);
			if (tlsio_is_live(t) && BIO_ctrl_pending(t->rbio) > 0)
				continue;
			return 0;
		case SSL_ERROR_ZERO_RETURN:
			tlsio_flush(t);
			t->peer_closed = true;
			return -ECONNRESET;
		default:
			return tlsio_fail(t, "TLS read", r);
		}
	}
}

int tlsio_feed(struct tlsio *t, const char *data, size_t len)
{
	int rc;

	if (t->failed)
		return -EPROTO;
	if (t->peer_closed)
		return -ECONNRESET;
	/* A memory BIO grows to take everything; BIO_write takes an int. */
	while (len > 0) {
		int n = len > INT_MAX ? INT_MAX : (int)len;
		int w = BIO_write(t->rbio, data, n);

		if (w <= 0) {
			fprintf(stderr, "tlsio: out of memory buffering TLS input\n");
			abort();
		}
		data += w;
		len -= (size_t)w;
	}
	if (t->depth > 0)
		return 0; /* nested: the outer call reads what was just queued */
	tlsio_enter(t);
	rc = tlsio_drive(t);
	if (tlsio_leave(t))
		return 0;
	return rc;
}

int tlsio_write(struct tlsio *t, const char *data, size_t len)
{
	int rc = 0;

	if (t->failed || !t->established || t->shutdown_sent)
		return -EPROTO;
	tlsio_enter(t);
	while (len > 0 && tlsio_is_live(t)) {
		int n = len > TLSIO_WRITE_SLICE ? TLSIO_WRITE_SLICE : (int)len;
		int w;

		ERR_clear_error();
		w = SSL_write(t->ssl, data, n);
		if (w <= 0) {
			rc = tlsio_fail(t, "TLS write", w);
			break;
		}
		/* Flushing per slice keeps the write BIO small for big bodies. */
		tlsio_flush(t);
		data += w;
		len -= (size_t)w;
	}
	if (tlsio_leave(t))
		return 0;
	return rc;
}

void tlsio_shutdown(struct tlsio *t)
{
	if (t->failed || !t->established || t->shutdown_sent)
		return;
	t->shutdown_sent = true;
	tlsio_enter(t);
	ERR_clear_error();
	/* 0 means "sent ours, theirs not seen yet": we do not wait for it. */
	(void)SSL_shutdown(t->ssl);
	ERR_clear_error();
	tlsio_flush(t);
	(void)tlsio_leave(t);
}

bool tlsio_is_established(const struct tlsio *t)
{
	return t->established;
}

const char *tlsio_version(const struct tlsio *t)
{
	return t->established ? SSL_get_version(t->ssl) : "";
}

const char *tlsio_cipher(const struct tlsio *t)
{
	const SSL_CIPHER *c;

	if (!t->established)
		return "";
	c = SSL_get_current_cipher(t->ssl);
	return c != NULL ? SSL_CIPHER_get_name(c) : "";
}

const char *tlsio_error(const struct tlsio *t)
{
	return t->err;
}
