/*
 * dkim_verify_pubkey: the public-key step of DKIM verification (the rest
 * of the check is policy/stage_dkim_verify.c and dkim_verify_keys.c).
 *
 * libopendkim parses the signatures, selects and canonicalizes the
 * signed header fields and hashes them (and the body, when a signature
 * has l=; otherwise the body hashes are ours, policy/dkim_canon.c); this
 * file takes over from there, in libopendkim's "final" callback inside
 * dkim_eom (on the loop or the thread pool, stage_dkim_verify.c decides):
 *   - the key record (RFC 6376 3.6.1) is parsed and checked once per
 *     distinct record text and kept in a cache shared by all messages:
 *     libopendkim would decode it again for every message, and OpenSSL
 *     3.0's decoder made that 135 µs of the 300 µs a 5 KB message cost
 *     (tests/bench, perf), with no way to hand the library a parsed key;
 *   - the body hash is compared with bh=;
 *   - the header hash is verified against b= with the cached key:
 *     rsa-sha256 (RSASSA-PKCS1-v1_5, RFC 6376 3.3.1) or ed25519-sha256
 *     (PureEdDSA over the SHA-256 hash, RFC 8463 3);
 *   - the signature is then marked "ignore" so libopendkim does not
 *     process it again, and its result stays in the message state.
 * The cache is keyed by the record's text, so a changed record is simply
 * a different entry; it is direct-mapped and bounded (a colliding record
 * replaces the older one).
 *
 * Entry points: stage_dkimv__keycache_new/_free (with the row),
 * stage_dkimv__keycache_cheap (may the check run on the loop?),
 * stage_dkimv__final (libopendkim's final callback).
 * OWNERSHIP: the cache owns its records and keys; a verification holds
 * its own reference to the key (EVP_PKEY_up_ref), so an entry replaced
 * meanwhile by another thread is freed only when both are done.
 * THREADS: any; the cache is guarded by its mutex, which is never held
 * while a key is parsed or a signature verified.
 * ERRORS: none returned: every failure is the signature's result.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "common/sasl.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/dkim_verify_int.h"

/* Distinct key records kept; a city gateway sees a few hundred signers a day. */
#define DKIMV_KEYCACHE_SLOTS 512
/* RFC 8301 3.2: RSA keys below 1024 bits must not be accepted. */
#define DKIMV_RSA_MIN_BITS 1024
/* RSA keys whose check may run on the event loop (see the caller). */
#define DKIMV_RSA_CHEAP_BITS 4096
/* Decoded b= / p=: an 8192-bit RSA signature is 1024 bytes. */
#define DKIMV_BLOB_MAX 1100

/* What a key record says, parsed once. */
struct dkimv_pubkey {
	EVP_PKEY *pkey;       /* NULL: unusable, reason says why */
	int type;             /* EVP_PKEY_RSA or EVP_PKEY_ED25519 */
	int bits;
	bool sha256_ok;       /* h= absent or naming sha256 */
	bool strict;          /* t=s: i= must be in d= itself */
	char reason[96];
};

struct dkimv_keyslot {
	char *txt;            /* the record; NULL: empty slot */
	struct dkimv_pubkey key;
};

/*
 * An RSA verification context made ready once (EVP_PKEY_CTX_new, init,
 * padding, digest: about a fifth of an RSA-2048 check) and used again for
 * the same key. Loop thread only (the inline path of stage_dkim_verify.c),
 * so no lock; the key is held by a reference of its own.
 */
#define DKIMV_LOOP_CTXS 16
struct dkimv_loop_ctx {
	EVP_PKEY *pkey;
	EVP_PKEY_CTX *ctx;
};

struct stage_dkimv_keycache {
	uv_mutex_t lock;
	EVP_MD *sha256;       /* fetched once: a fetch per message costs a lock */
	struct dkimv_keyslot slot[DKIMV_KEYCACHE_SLOTS];
	struct dkimv_loop_ctx loop_ctx[DKIMV_LOOP_CTXS];
	unsigned loop_next;   /* the entry a new key replaces (round robin) */
};

struct stage_dkimv_keycache *stage_dkimv__keycache_new(void)
{
	struct stage_dkimv_keycache *c = xcalloc(1, sizeof *c);

	if (uv_mutex_init(&c->lock) != 0)
		abort();
	c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (c->sha256 == NULL)
		abort();   /* OpenSSL without SHA-256 cannot run this daemon at all */
	return c;
}

void stage_dkimv__keycache_free(struct stage_dkimv_keycache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < DKIMV_KEYCACHE_SLOTS; i++) {
		free(c->slot[i].txt);
		EVP_PKEY_free(c->slot[i].key.pkey);
	}
	for (size_t i = 0; i < DKIMV_LOOP_CTXS; i++) {
		EVP_PKEY_CTX_free(c->loop_ctx[i].ctx);
		EVP_PKEY_free(c->loop_ctx[i].pkey);
	}
	EVP_MD_free(c->sha256);
	uv_mutex_destroy(&c->lock);
	free(c);
}

/* ------------------------------------------------------- key records */

static bool dkimv_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Base64 with folding whitespace anywhere (RFC 6376 3.5 b=, 3.6.1 p=)
 * into out. -1 when malformed or longer than outcap.
 */
static int dkimv_b64(const char *in, size_t inlen, unsigned char *out, size_t outcap,
    size_t *outlen)
{
	char packed[4 * (DKIMV_BLOB_MAX / 3 + 2)];
	size_t n = 0;

	for (size_t i = 0; i < inlen; i++) {
		if (dkimv_wsp(in[i]))
			continue;
		if (n == sizeof packed)
			return -1;
		packed[n++] = in[i];
	}
	if (n == 0)
		return -1;
	return sasl_b64_decode(packed, n, out, outcap, outlen) == 0 ? 0 : -1;
}

/* Does the colon-separated list (RFC 6376 3.6.1 h=, s=, t=) hold word? */
static bool dkimv_list_has(const char *v, size_t len, const char *word)
{
	size_t wlen = strlen(word), i = 0;

	while (i <= len) {
		size_t start, end;

		while (i < len && dkimv_wsp(v[i]))
			i++;
		start = i;
		while (i < len && v[i] != ':')
			i++;
		end = i;
		while (end > start && dkimv_wsp(v[end - 1]))
			end--;
		if (end - start == wlen && strncasecmp(v + start, word, wlen) == 0)
			return true;
		i++;   /* past the ':' (or the end) */
	}
	return false;
}

static void dkimv_bad(struct dkimv_pubkey *k, const char *why)
{
	k->pkey = NULL;
	str_copy(k->reason, why, sizeof k->reason);
}

/* p= into an OpenSSL key of k->type. */
static void dkimv_key_decode(struct dkimv_pubkey *k, const char *p, size_t plen)
{
	unsigned char der[DKIMV_BLOB_MAX];
	const unsigned char *q = der;
	size_t n;

	if (dkimv_b64(p, plen, der, sizeof der, &n) < 0) {
		dkimv_bad(k, "key p= is not valid base64");
		return;
	}
	if (k->type == EVP_PKEY_ED25519) {
		/* RFC 8463 4.2: the raw 32-byte public key, not SubjectPublicKeyInfo. */
		k->pkey = n == 32 ? EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, n) :
		    NULL;
		if (k->pkey == NULL)
			dkimv_bad(k, "ed25519 key is not 32 bytes");
		return;
	}
	k->pkey = d2i_PUBKEY(NULL, &q, (long)n);
	if (k->pkey == NULL || q != der + n || EVP_PKEY_get_base_id(k->pkey) != EVP_PKEY_RSA) {
		EVP_PKEY_free(k->pkey);
		dkimv_bad(k, "rsa key could not be decoded");
		return;
	}
	k->bits = EVP_PKEY_get_bits(k->pkey);
	if (k->bits < DKIMV_RSA_MIN_BITS) {
		EVP_PKEY_free(k->pkey);
		dkimv_bad(k, "rsa key shorter than 1024 bits (RFC 8301)");
	}
}

static void dkimv_key_parse_tags(const char *txt, struct dkimv_pubkey *k);

/*
 * The tag list of a key record (RFC 6376 3.2, 3.6.1) into *k. Unknown
 * tags are ignored, as the RFC requires; a duplicate tag voids the record.
 */
static void dkimv_key_parse(const char *txt, struct dkimv_pubkey *k)
{
	dkimv_key_parse_tags(txt, k);
	/* OpenSSL's decoders may queue errors even on success: see dkimv_sig_ok. */
	ERR_clear_error();
}

static void dkimv_key_parse_tags(const char *txt, struct dkimv_pubkey *k)
{
	static const char *const known[] = { "v", "h", "k", "n", "p", "s", "t" };
	const char *val[7] = { NULL };
	size_t vlen[7] = { 0 };
	size_t len = strlen(txt), i = 0;
	bool first = true;

	memset(k, 0, sizeof *k);
	while (i < len) {
		size_t tstart, tend, vstart, vend;

		while (i < len && dkimv_wsp(txt[i]))
			i++;
		if (i == len)
			break;
		if (txt[i] == ';') {   /* an empty element (";;", a trailing ";") */
			i++;
			continue;
		}
		tstart = i;
		while (i < len && txt[i] != '=' && txt[i] != ';' && !dkimv_wsp(txt[i]))
			i++;
		tend = i;
		while (i < len && dkimv_wsp(txt[i]))
			i++;
		if (i == len || txt[i] != '=' || tend == tstart) {
			dkimv_bad(k, "key record is not a tag list");
			return;
		}
		i++;
		while (i < len && dkimv_wsp(txt[i]))
			i++;
		vstart = i;
		while (i < len && txt[i] != ';')
			i++;
		vend = i;
		while (vend > vstart && dkimv_wsp(txt[vend - 1]))
			vend--;
		for (size_t j = 0; j < 7; j++) {
			if (tend - tstart != 1 || txt[tstart] != known[j][0])
				continue;
			if (val[j] != NULL) {
				dkimv_bad(k, "key record repeats a tag");
				return;
			}
			/* RFC 6376 3.6.1: v=, when present, is the first tag. */
			if (j == 0 && !first) {
				dkimv_bad(k, "key record v= is not the first tag");
				return;
			}
			val[j] = txt + vstart;
			vlen[j] = vend - vstart;
		}
		first = false;
	}
	if (val[0] != NULL && !(vlen[0] == 5 && strncmp(val[0], "DKIM1", 5) == 0)) {
		dkimv_bad(k, "key record version is not DKIM1");
		return;
	}
	k->sha256_ok = val[1] == NULL || dkimv_list_has(val[1], vlen[1], "sha256");
	if (val[2] == NULL || (vlen[2] == 3 && strncasecmp(val[2], "rsa", 3) == 0)) {
		k->type = EVP_PKEY_RSA;
	} else if (vlen[2] == 7 && strncasecmp(val[2], "ed25519", 7) == 0) {
		k->type = EVP_PKEY_ED25519;
	} else {
		dkimv_bad(k, "key type k= unknown");
		return;
	}
	if (val[5] != NULL && !dkimv_list_has(val[5], vlen[5], "*") &&
	    !dkimv_list_has(val[5], vlen[5], "email")) {
		dkimv_bad(k, "key not for email (s=)");
		return;
	}
	k->strict = val[6] != NULL && dkimv_list_has(val[6], vlen[6], "s");
	if (val[4] == NULL) {
		dkimv_bad(k, "key record has no p=");
		return;
	}
	if (vlen[4] == 0) {
		dkimv_bad(k, "key revoked (empty p=)");
		return;
	}
	dkimv_key_decode(k, val[4], vlen[4]);
}

/* The one slot record txt may occupy. */
static struct dkimv_keyslot *dkimv_slot(struct stage_dkimv_keycache *c, const char *txt)
{
	return &c->slot[str_hash(txt) % DKIMV_KEYCACHE_SLOTS];
}

/* *out = the parsed record txt, with its own reference to the key. */
static void dkimv_keycache_get(struct stage_dkimv_keycache *c, const char *txt,
    struct dkimv_pubkey *out)
{
	struct dkimv_keyslot *s = dkimv_slot(c, txt);
	struct dkimv_pubkey fresh;
	char *old_txt = NULL;
	EVP_PKEY *old_key = NULL;

	uv_mutex_lock(&c->lock);
	if (s->txt != NULL && strcmp(s->txt, txt) == 0) {
		*out = s->key;
		if (out->pkey != NULL && EVP_PKEY_up_ref(out->pkey) != 1)
			dkimv_bad(out, "key reference failed");
		uv_mutex_unlock(&c->lock);
		return;
	}
	uv_mutex_unlock(&c->lock);

	dkimv_key_parse(txt, &fresh);
	*out = fresh;
	if (fresh.pkey != NULL && EVP_PKEY_up_ref(fresh.pkey) != 1) {
		/* Not cached: the caller keeps the only reference. */
		return;
	}
	uv_mutex_lock(&c->lock);
	old_txt = s->txt;
	old_key = s->key.pkey;
	s->txt = xstrdup(txt);
	s->key = fresh;
	uv_mutex_unlock(&c->lock);
	free(old_txt);
	EVP_PKEY_free(old_key);
}

/*
 * Is the record txt parsed already, and its check cheap (an unusable
 * record, Ed25519, or RSA up to DKIMV_RSA_CHEAP_BITS: tens of µs)?
 */
bool stage_dkimv__keycache_cheap(struct stage_dkimv_keycache *c, const char *txt)
{
	struct dkimv_keyslot *s = dkimv_slot(c, txt);
	bool cheap;

	uv_mutex_lock(&c->lock);
	cheap = s->txt != NULL && strcmp(s->txt, txt) == 0 &&
	    (s->key.pkey == NULL || s->key.type == EVP_PKEY_ED25519 ||
	    s->key.bits <= DKIMV_RSA_CHEAP_BITS);
	uv_mutex_unlock(&c->lock);
	return cheap;
}

/* ---------------------------------------------------- verification */

static EVP_PKEY_CTX *dkimv_rsa_ctx(const struct stage_dkimv_keycache *c, EVP_PKEY *pkey)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pkey, NULL);

	if (ctx != NULL && (EVP_PKEY_verify_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, c->sha256) != 1)) {
		EVP_PKEY_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

/* The loop thread's ready context for pkey (made now if need be), or NULL. */
static struct dkimv_loop_ctx *dkimv_loop_ctx(struct stage_dkimv_keycache *c, EVP_PKEY *pkey)
{
	struct dkimv_loop_ctx *e;
	EVP_PKEY_CTX *ctx;

	for (size_t i = 0; i < DKIMV_LOOP_CTXS; i++)
		if (c->loop_ctx[i].pkey == pkey && c->loop_ctx[i].ctx != NULL)
			return &c->loop_ctx[i];
	if ((ctx = dkimv_rsa_ctx(c, pkey)) == NULL || EVP_PKEY_up_ref(pkey) != 1) {
		EVP_PKEY_CTX_free(ctx);
		return NULL;
	}
	e = &c->loop_ctx[c->loop_next++ % DKIMV_LOOP_CTXS];
	EVP_PKEY_CTX_free(e->ctx);
	EVP_PKEY_free(e->pkey);
	e->pkey = pkey;
	e->ctx = ctx;
	return e;
}

/*
 * b= over the header hash hh with key k: 1 verified, 0 not. on_loop: the
 * caller is the loop thread, which may use its ready RSA contexts.
 */
static int dkimv_sig_ok(struct stage_dkimv_keycache *c, const struct dkimv_pubkey *k,
    bool on_loop, const unsigned char *sig, size_t siglen, const unsigned char *hh,
    size_t hhlen)
{
	int ok = 0;

	if (k->type == EVP_PKEY_ED25519) {
		EVP_MD_CTX *m = EVP_MD_CTX_new();

		ok = m != NULL && EVP_DigestVerifyInit(m, NULL, NULL, NULL, k->pkey) == 1 &&
		    EVP_DigestVerify(m, sig, siglen, hh, hhlen) == 1;
		EVP_MD_CTX_free(m);
	} else if (on_loop) {
		struct dkimv_loop_ctx *e = dkimv_loop_ctx(c, k->pkey);

		ok = e != NULL && EVP_PKEY_verify(e->ctx, sig, siglen, hh, hhlen) == 1;
		if (e != NULL && !ok) {
			/* After a failure the context is made afresh next time. */
			EVP_PKEY_CTX_free(e->ctx);
			e->ctx = NULL;
		}
	} else {
		EVP_PKEY_CTX *ctx = dkimv_rsa_ctx(c, k->pkey);

		ok = ctx != NULL && EVP_PKEY_verify(ctx, sig, siglen, hh, hhlen) == 1;
		EVP_PKEY_CTX_free(ctx);
	}
	/*
	 * A failed check leaves errors in this thread's OpenSSL queue: the
	 * loop thread's TLS code reads that queue, so nothing stays behind.
	 */
	if (!ok)
		ERR_clear_error();
	return ok;
}

/* The domain of i= (or its default) is d= itself: the t=s rule. */
static bool dkimv_identity_exact(struct stage_dkimv_tx *t, DKIM_SIGINFO *sig)
{
	char id[320];   /* as authres keeps i= */
	const char *d = (const char *)dkim_sig_getdomain(sig), *at;

	if (d == NULL || dkim_sig_getidentity(t->dkim, sig, (unsigned char *)id,
	    sizeof id) != DKIM_STAT_OK)
		return true;   /* no i=: it defaults to "@" d= (RFC 6376 3.5) */
	at = strrchr(id, '@');
	return at != NULL && strcasecmp(at + 1, d) == 0;
}

static void dkimv_result(struct stage_dkimv_sig *s, enum authres_result r, const char *why)
{
	s->preset = r;
	str_copy(s->reason, why, sizeof s->reason);
}

/* Our final body hashes (stage_dkimv_tx.own_bh), each at most once. */
struct dkimv_own_bh {
	unsigned char simple[EVP_MAX_MD_SIZE], relaxed[EVP_MAX_MD_SIZE];
	unsigned simple_len, relaxed_len;   /* 0: unavailable */
};

static void dkimv_own_bh(struct stage_dkimv_tx *t, struct dkimv_own_bh *o)
{
	memset(o, 0, sizeof *o);
	if (t->want_simple &&
	    dkim_body_canon_final(&t->body_simple, o->simple, &o->simple_len) < 0)
		o->simple_len = 0;
	if (t->want_relaxed &&
	    dkim_body_canon_final(&t->body_relaxed, o->relaxed, &o->relaxed_len) < 0)
		o->relaxed_len = 0;
}

/* One signature whose key record is k->txt: the result into *s. */
static void dkimv_check(struct stage_dkimv_tx *t, DKIM_SIGINFO *sig, const char *txt,
    const struct dkimv_own_bh *own, struct stage_dkimv_sig *s)
{
	struct stage_dkimv_keycache *c = t->sl->keys;
	struct dkimv_pubkey k;
	dkim_alg_t alg = DKIM_SIGN_UNKNOWN;
	void *hh = NULL, *bh = NULL, *unused = NULL;
	size_t hhlen = 0, bhlen = 0, unused_len = 0, wantlen = 0, siglen = 0;
	unsigned char want[64], b[DKIMV_BLOB_MAX];
	const char *tag;

	dkimv_keycache_get(c, txt, &k);
	if (t->own_bh) {
		dkim_canon_t hc = DKIM_CANON_SIMPLE, bc = DKIM_CANON_SIMPLE;

		(void)dkim_sig_getcanons(sig, &hc, &bc);
		bh = bc == DKIM_CANON_RELAXED ? (void *)own->relaxed : (void *)own->simple;
		bhlen = bc == DKIM_CANON_RELAXED ? own->relaxed_len : own->simple_len;
	}
	if (k.pkey == NULL) {
		dkimv_result(s, AUTHRES_PERMERROR, k.reason);
		return;
	}
	(void)dkim_sig_getsignalg(sig, &alg);
	if ((alg == DKIM_SIGN_ED25519SHA256 && k.type != EVP_PKEY_ED25519) ||
	    (alg == DKIM_SIGN_RSASHA256 && k.type != EVP_PKEY_RSA)) {
		dkimv_result(s, AUTHRES_PERMERROR, "key type does not match a=");
	} else if (alg != DKIM_SIGN_ED25519SHA256 && alg != DKIM_SIGN_RSASHA256) {
		dkimv_result(s, AUTHRES_PERMERROR, "signature algorithm not accepted");
	} else if (!k.sha256_ok) {
		dkimv_result(s, AUTHRES_PERMERROR, "key does not allow sha256 (h=)");
	} else if (k.strict && !dkimv_identity_exact(t, sig)) {
		dkimv_result(s, AUTHRES_PERMERROR, "i= is a subdomain of d= but the key says t=s");
	} else if (dkim_sig_gethashes(sig, &hh, &hhlen, t->own_bh ? &unused : &bh,
	    t->own_bh ? &unused_len : &bhlen) != DKIM_STAT_OK || hh == NULL || bh == NULL ||
	    bhlen == 0) {
		dkimv_result(s, AUTHRES_TEMPERROR, "not verified: hashes unavailable");
	} else if ((tag = (const char *)dkim_sig_gettagvalue(sig, false,
	    (unsigned char *)"bh")) == NULL ||
	    dkimv_b64(tag, strlen(tag), want, sizeof want, &wantlen) < 0) {
		dkimv_result(s, AUTHRES_PERMERROR, "bh= is not valid base64");
	} else if (wantlen != bhlen || memcmp(want, bh, bhlen) != 0) {
		dkimv_result(s, AUTHRES_FAIL, "body hash did not verify");
	} else if ((tag = (const char *)dkim_sig_gettagvalue(sig, false,
	    (unsigned char *)"b")) == NULL ||
	    dkimv_b64(tag, strlen(tag), b, sizeof b, &siglen) < 0) {
		dkimv_result(s, AUTHRES_PERMERROR, "b= is not valid base64");
	} else if (!dkimv_sig_ok(c, &k, t->eom_on_loop, b, siglen, hh, hhlen)) {
		dkimv_result(s, AUTHRES_FAIL, "signature did not verify");
	} else if (stage_dkimv__short_l(t, sig)) {
		dkimv_result(s, AUTHRES_POLICY, "l= does not cover the body");
	} else {
		dkimv_result(s, AUTHRES_PASS, "");
	}
	EVP_PKEY_free(k.pkey);
}

DKIM_CBSTAT stage_dkimv__final(DKIM *dkim, DKIM_SIGINFO **sigs, int nsigs)
{
	struct stage_dkimv_tx *t = dkim_get_user_context(dkim);
	struct dkimv_own_bh own = { .simple_len = 0 };

	if (t == NULL)
		return DKIM_CBSTAT_CONTINUE;
	if (t->own_bh)
		dkimv_own_bh(t, &own);
	for (int i = 0; i < nsigs && i < t->nsigs && i < STAGE_DKIMV_MAX_SIGS; i++) {
		struct stage_dkimv_sig *s = &t->sig[i];
		int err = dkim_sig_geterror(sigs[i]);

		/*
		 * Decided before (key trouble), or libopendkim's own finding
		 * (malformed, l= past the body): its result stands.
		 */
		if (s->preset != AUTHRES_NOT_RUN || s->key < 0 ||
		    (err != DKIM_SIGERROR_UNKNOWN && err != DKIM_SIGERROR_OK))
			continue;
		if (t->keys[s->key].state != STAGE_DKIMV_KEY_OK)
			continue;
		dkimv_check(t, sigs[i], t->keys[s->key].txt, &own, s);
		dkim_sig_ignore(sigs[i]);
	}
	return DKIM_CBSTAT_CONTINUE;
}
