#ifndef GOVRELAY_POLICY_DKIM_CANON_H
#define GOVRELAY_POLICY_DKIM_CANON_H
/*
 * dkim_canon: DKIM body canonicalization (RFC 6376 3.4.3 simple, 3.4.4
 * relaxed) streamed into a SHA-256 body hash, shared by the signer
 * (policy/stage_dkim_sign.c) and the verifier (policy/dkim_verify_*.c).
 * The body goes in as it arrives, in pieces of any size; nothing of it
 * is kept but a few bytes of state and a 4 KiB buffer for the hash.
 * No l= limit: the verifier leaves bodies with l= signatures to libopendkim.
 */
#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>

struct dkim_body_canon {
	EVP_MD_CTX *md;
	bool relaxed;
	bool failed;          /* OpenSSL refused: the hash is unusable */
	unsigned char out[4096];
	size_t n;             /* bytes waiting in out */
	size_t crlf;          /* line ends not yet written: trailing empty lines vanish */
	bool wsp;             /* relaxed: a run of WSP not yet written */
	bool cr;              /* a CR waiting for its LF */
	bool any;             /* the canonical body has content */
};

/* SHA-256, fetched once for the process (an implicit fetch takes locks). */
const EVP_MD *dkim_sha256(void);

/* 0, or -1 (b->failed) when OpenSSL cannot hash. */
int dkim_body_canon_init(struct dkim_body_canon *b, bool relaxed);
void dkim_body_canon_feed(struct dkim_body_canon *b, const char *data, size_t len);
/* The body hash into hash (EVP_MAX_MD_SIZE), its length into *hlen; 0 or -1. */
int dkim_body_canon_final(struct dkim_body_canon *b, unsigned char *hash, unsigned *hlen);
void dkim_body_canon_free(struct dkim_body_canon *b);

#endif
