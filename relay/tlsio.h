#ifndef GOVRELAY_TLSIO_H
#define GOVRELAY_TLSIO_H
/*
 * tlsio: OpenSSL 3 over memory BIOs, so TLS rides on any libuv stream
 * without OpenSSL touching the socket. The owner feeds ciphertext it read
 * and gets plaintext and ciphertext-to-send back through callbacks.
 * TLS 1.2 and 1.3 only; forward-secret AEAD suites only; no renegotiation.
 */
#include <stdbool.h>
#include <stddef.h>

struct tlsio_ctx;
struct tlsio;

/*
 * Server context from a PEM chain and key. Returns 0, or -EINVAL with a
 * reason (naming the file and OpenSSL's error) in err.
 */
int tlsio_ctx_new_server(const char *cert_file, const char *key_file,
    struct tlsio_ctx **out, char *err, size_t errlen);
/*
 * Client context for outbound STARTTLS: opportunistic (no verification),
 * with a verifying twin whose CA store is ca_file (PEM), or the system's
 * when ca_file is NULL. -EINVAL with a reason when the CAs cannot load.
 * tlsio_ctx_new_client is tlsio_ctx_new_client_ca(NULL, ...).
 */
int tlsio_ctx_new_client_ca(const char *ca_file, struct tlsio_ctx **out, char *err,
    size_t errlen);
int tlsio_ctx_new_client(struct tlsio_ctx **out, char *err, size_t errlen);
/*
 * The verifying twin of a client context (borrowed: it lives as long as
 * ctx), or NULL for a server context. A tlsio made from it with
 * server=false takes its sni argument as the peer's identity: the
 * certificate must chain to the CA store and name it (a host name, or an
 * IP address matched against IP SANs); otherwise the handshake fails
 * (-EPROTO) and tlsio_error says which check failed.
 */
struct tlsio_ctx *tlsio_ctx_verifying(struct tlsio_ctx *ctx);
/* Contexts are reference counted: every tlsio made from one holds it. */
void tlsio_ctx_free(struct tlsio_ctx *ctx);

struct tlsio_callbacks {
	/* Ciphertext to put on the wire. Borrowed: copy before returning. */
	void (*send)(void *arg, const char *data, size_t len);
	/* Decrypted application data. Borrowed: copy before returning. */
	void (*plaintext)(void *arg, const char *data, size_t len);
	/* The handshake completed (once). */
	void (*established)(void *arg);
};

/*
 * A TLS endpoint. server=false starts a client handshake at once (the
 * ClientHello goes out through cb->send), with sni as server name (may
 * be NULL). cb and arg are borrowed for the life of the tlsio.
 */
struct tlsio *tlsio_new(struct tlsio_ctx *ctx, bool server, const char *sni,
    const struct tlsio_callbacks *cb, void *arg);
void tlsio_free(struct tlsio *t); /* NULL is fine */

/*
 * Feeds ciphertext read from the peer; drives the handshake and delivers
 * plaintext. Returns 0, or -EPROTO after a fatal TLS error (the alert, if
 * any, has already gone to cb->send; tlsio_error() says why) or -ECONNRESET
 * when the peer sent close_notify.
 */
int tlsio_feed(struct tlsio *t, const char *data, size_t len);
/* Encrypts application data (after established). 0 or -EPROTO. */
int tlsio_write(struct tlsio *t, const char *data, size_t len);
/* Sends close_notify. */
void tlsio_shutdown(struct tlsio *t);

bool tlsio_is_established(const struct tlsio *t);
const char *tlsio_version(const struct tlsio *t); /* "TLSv1.3" or "" */
const char *tlsio_cipher(const struct tlsio *t);  /* "TLS_AES_256_GCM_SHA384" or "" */
const char *tlsio_error(const struct tlsio *t);   /* last error text or "" */

#endif
