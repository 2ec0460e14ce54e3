/*
 * stage_dkim_sign: DKIM signing of the mail we send (the "dkim_sign" row,
 * the last of policy/checks.c, so it signs only what every other check
 * let through). A message is signed when it comes in over submission or
 * submissions, or from a trusted agency server (trusted_networks) over
 * mx, and its From: domain has keys (queue/dkim.h): one ed25519-sha256
 * signature (RFC 8463) and one rsa-sha256 when the domain has a signing
 * key of each, relaxed/relaxed (RFC 6376 3.4.2, 3.4.4), h= From To Cc
 * Subject Date Message-ID MIME-Version Content-Type
 * Content-Transfer-Encoding as present, with From and Subject oversigned
 * (one more h= entry than instances, RFC 6376 8.15) so a field added on
 * the way breaks the signature. The DKIM-Signature fields are added above
 * the message (policy_tx_add_header), which is stored and delivered byte
 * for byte as it was fed here: what is signed is what leaves.
 *
 * The signer is ours (RFC 6376 5), over OpenSSL, not libopendkim's: that
 * library parses the PEM private key again for every message (OpenSSL
 * 3's decoders: 450 microseconds for an Ed25519 key, most of the cost of
 * a signature; the signing relay ran at 40% of the plain relay's
 * throughput) and, in Debian 12's 2.11.0~beta2, leaks about 600 bytes
 * for every Ed25519 signature. Here a key file is parsed once and the
 * EVP_PKEY kept until the file changes. The Ed25519 signature itself is
 * libsodium's (crypto_sign_detached; the same RFC 8032 signature, which
 * is deterministic): 14 microseconds against OpenSSL 3.0's 32 (best of
 * eight runs of 5,000 on this machine), a third of the signing relay's
 * added cost; the expanded key is derived once, when the file is parsed.
 * libopendkim, dkimpy and
 * opendkim-testmsg verify what we sign (tests/unit/test_dkim_keys.c,
 * tests/e2e/test_dkim_sign.py).
 *
 * Per message, streaming: the body hook collects the header section
 * (at most RFC5322_HEADER_MAX bytes); at its end it finds the From:
 * domain, looks up its signing keys (a read transaction), takes their
 * parsed keys from the cache (a key file is read and parsed on the loop
 * thread only when it changed: inode, size, mtime) and canonicalizes the
 * header fields to sign; the body then streams through the relaxed body
 * canonicalization into one SHA-256 (the same body hash serves both
 * signatures). At the DATA stage the signatures (an RSA private-key
 * operation is the cost) run on the libuv thread pool.
 *
 * Failures: a message of ours that should be signed and cannot be (a key
 * file unreadable or not a key of its algorithm, OpenSSL failing) is
 * refused with 451 4.7.0, so the client retries: leaving unsigned it
 * would fail the receivers' DMARC checks, which is worse than a retry. A
 * header section too large to sign is 552 5.6.0 (as the tenant check says
 * of one too large to read). A domain without keys is not signed and not
 * noted.
 *
 * Entry points: stage_dkim_sign_new/free, stage_dkim_sign_run (MAIL and
 * DATA), stage_dkim_sign_tx_new/body/tx_free.
 * OWNERSHIP: the check owns the key cache (parsed keys); each transaction
 * state holds a reference on the keys it signs with, its header buffer,
 * its canonical header block and its body hash. A state freed while its
 * signing runs on the pool is freed by the pool's completion instead.
 * THREADS: loop thread, except sds_work (a pool thread), which touches
 * only its transaction's state while the loop leaves it alone. A parsed
 * EVP_PKEY is only read while signing, which OpenSSL allows from several
 * threads at once.
 * ERRORS: verdicts as above; the reasons go to the audit notes
 * (policy_tx_note "dkim_sign") and the log, never a key's bytes.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <uv.h>

#include "common/addr.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/rfc5322.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/check.h"
#include "policy/dkim_canon.h"
#include "queue/dkim.h"
#include "queue/queue.h"

policy_check_new_fn stage_dkim_sign_new;
policy_check_free_fn stage_dkim_sign_free;
policy_check_run_fn stage_dkim_sign_run;
policy_check_tx_new_fn stage_dkim_sign_tx_new;
policy_check_body_fn stage_dkim_sign_body;
policy_check_tx_free_fn stage_dkim_sign_tx_free;

static const char sds_rule[] = "dkim_sign";

#define SDS_HDR "DKIM-Signature"
#define SDS_CACHE_MAX 256   /* key files remembered; the oldest goes first */
#define SDS_B64_LINE 72     /* b= folded into lines of this many characters */
#define SDS_SIG_MAX 1024    /* room for an RSA-8192 signature */

/*
 * RFC 6376 5.4.1's recommended set, as issue 10 asks, in h= order; the
 * oversigned ones get one h= entry more than they have instances.
 */
static const struct { const char *name; bool oversign; } sds_signhdrs[] = {
	{ "from", true }, { "to", false }, { "cc", false }, { "subject", true },
	{ "date", false }, { "message-id", false }, { "mime-version", false },
	{ "content-type", false }, { "content-transfer-encoding", false },
};

/* One key file as last read, parsed. */
struct sds_key {
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	int64_t checked_ms;     /* when the file was last compared (time_now_ms) */
	EVP_PKEY *pkey;
	/* Ed25519 keys: libsodium's expanded secret key (seed and public key). */
	unsigned char ed_sk[crypto_sign_SECRETKEYBYTES];
};

/*
 * A cached key is compared with its file at most this often: a selector's
 * file is never rewritten (keygen refuses a selector in use), so this
 * only bounds how long a key replaced by hand goes on signing, and it
 * spares an open and fstat per message.
 */
#define SDS_KEY_RECHECK_MS 1000

struct stage_dkim_sign {
	bool enabled;
	char *data_dir;
	struct sds_key *cache;
	size_t ncache;
};

enum sds_phase { SDS_HEADERS, SDS_BODY, SDS_OFF };

struct sds_sig {
	EVP_PKEY *pkey;       /* a reference of our own */
	unsigned char ed_sk[crypto_sign_SECRETKEYBYTES]; /* ed25519: a copy, wiped at the end */
	enum queue_dkim_alg alg;
	char *selector;
	char *field;          /* the DKIM-Signature field, after the work */
};

struct sds_tx {
	struct stage_dkim_sign *st;
	struct policy_tx *tx;
	bool wanted;          /* the MAIL stage saw a sender we sign for */
	enum sds_phase phase;
	struct buf hdr;       /* the header section so far */
	char domain[ADDR_DOMAIN_MAX + 1];
	struct sds_sig sig[QUEUE_DKIM_NALGS];
	size_t nsig;
	struct buf hcanon;    /* the signed header fields, canonical, in h= order */
	struct buf hlist;     /* the h= value */
	struct dkim_body_canon body;   /* relaxed */
	bool too_large;
	char error[160];      /* why signing failed ("": it did not) */
	/* the pool */
	uv_work_t work;
	struct policy_call *call;
	char session_id[64];  /* for the log line of a failure */
	bool busy;            /* the work is queued or running */
	bool orphan;          /* tx_free ran meanwhile: free after the work */
};

/* ------------------------------------------------------------ the row */

int stage_dkim_sign_new(const struct config *cfg, void **state, char *err, size_t errlen)
{
	struct stage_dkim_sign *st = xcalloc(1, sizeof *st);

	st->enabled = cfg == NULL || cfg->dkim_sign;
	/* Idempotent and thread-safe; it only fails where no random source exists. */
	if (st->enabled && sodium_init() < 0) {
		snprintf(err, errlen, "dkim_sign: libsodium cannot start");
		free(st);
		return -EIO;
	}
	st->data_dir = cfg != NULL && cfg->data_dir != NULL ? xstrdup(cfg->data_dir) : NULL;
	*state = st;
	return 0;
}

static void sds_key_drop(struct sds_key *k)
{
	free(k->path);
	EVP_PKEY_free(k->pkey);
	sodium_memzero(k->ed_sk, sizeof k->ed_sk);
	memset(k, 0, sizeof *k);
}

void stage_dkim_sign_free(void *state)
{
	struct stage_dkim_sign *st = state;

	if (st == NULL)
		return;
	for (size_t i = 0; i < st->ncache; i++)
		sds_key_drop(&st->cache[i]);
	free(st->cache);
	free(st->data_dir);
	free(st);
}

/* ---------------------------------------------------------- key files */

/* Reads and parses an open key file of at most QUEUE_DKIM_PEM_MAX bytes. */
static int sds_key_parse(int fd, const struct stat *sb, struct sds_key *k)
{
	char *pem;
	size_t got = 0;
	BIO *bio;
	int rc = 0;

	if (!S_ISREG(sb->st_mode) || sb->st_size <= 0 || sb->st_size > QUEUE_DKIM_PEM_MAX)
		return -EINVAL;
	pem = xmalloc((size_t)sb->st_size);
	while (got < (size_t)sb->st_size) {
		ssize_t n = read(fd, pem + got, (size_t)sb->st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			break;
		}
		got += (size_t)n;
	}
	if (rc == 0) {
		bio = BIO_new_mem_buf(pem, (int)got);
		k->pkey = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
		if (k->pkey == NULL)
			rc = -EBADMSG;
	}
	if (rc == 0 && EVP_PKEY_get_base_id(k->pkey) == EVP_PKEY_ED25519) {
		unsigned char seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES];
		size_t sl = sizeof seed;

		if (EVP_PKEY_get_raw_private_key(k->pkey, seed, &sl) != 1 || sl != sizeof seed ||
		    crypto_sign_seed_keypair(pk, k->ed_sk, seed) != 0)
			rc = -EBADMSG;
		sodium_memzero(seed, sizeof seed);
	}
	/* The private key's text lives no longer than this call. */
	OPENSSL_cleanse(pem, (size_t)sb->st_size);
	free(pem);
	return rc;
}

/*
 * The parsed key of the file at path, from the cache when the file did
 * not change (same inode, size and mtime: keygen replaces a file by
 * rename, so a new key is a new inode). A small local read and one parse
 * on the loop thread, only when the file changed. *err: an errno.
 */
static const struct sds_key *sds_key_load(struct stage_dkim_sign *st, const char *path,
    int *err)
{
	struct sds_key *slot = NULL, fresh;
	struct stat sb;
	int64_t now = time_now_ms();
	int fd, rc;

	for (size_t i = 0; i < st->ncache; i++) {
		struct sds_key *k = &st->cache[i];

		if (now - k->checked_ms < SDS_KEY_RECHECK_MS && now >= k->checked_ms &&
		    strcmp(k->path, path) == 0)
			return k;
	}
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		*err = errno;
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	for (size_t i = 0; i < st->ncache; i++) {
		struct sds_key *k = &st->cache[i];

		if (strcmp(k->path, path) != 0)
			continue;
		if (k->dev == sb.st_dev && k->ino == sb.st_ino && k->size == sb.st_size &&
		    k->mtime.tv_sec == sb.st_mtim.tv_sec &&
		    k->mtime.tv_nsec == sb.st_mtim.tv_nsec) {
			close(fd);
			k->checked_ms = now;
			return k;
		}
		slot = k;
		break;
	}
	memset(&fresh, 0, sizeof fresh);
	rc = sds_key_parse(fd, &sb, &fresh);
	close(fd);
	if (rc < 0) {
		*err = -rc;
		return NULL;
	}
	fresh.path = xstrdup(path);
	fresh.dev = sb.st_dev;
	fresh.ino = sb.st_ino;
	fresh.size = sb.st_size;
	fresh.mtime = sb.st_mtim;
	fresh.checked_ms = now;
	if (slot != NULL) {
		sds_key_drop(slot);
	} else if (st->ncache == SDS_CACHE_MAX) {
		/* Full: the first entry goes, the rest move up. */
		sds_key_drop(&st->cache[0]);
		memmove(st->cache, st->cache + 1, (st->ncache - 1) * sizeof *st->cache);
		slot = &st->cache[st->ncache - 1];
	} else {
		st->cache = xreallocarray(st->cache, st->ncache + 1, sizeof *st->cache);
		slot = &st->cache[st->ncache++];
	}
	*slot = fresh;
	return slot;
}

/* ------------------------------------------------------- transactions */

void *stage_dkim_sign_tx_new(void *state, struct policy_tx *tx)
{
	struct stage_dkim_sign *st = state;
	struct sds_tx *t;

	if (st == NULL || !st->enabled || st->data_dir == NULL)
		return NULL;
	t = xcalloc(1, sizeof *t);
	t->st = st;
	t->tx = tx;
	t->phase = SDS_HEADERS;
	buf_init(&t->hdr);
	buf_init(&t->hcanon);
	buf_init(&t->hlist);
	return t;
}

static void sds_tx_destroy(struct sds_tx *t)
{
	for (size_t i = 0; i < t->nsig; i++) {
		EVP_PKEY_free(t->sig[i].pkey);
		sodium_memzero(t->sig[i].ed_sk, sizeof t->sig[i].ed_sk);
		free(t->sig[i].selector);
		free(t->sig[i].field);
	}
	dkim_body_canon_free(&t->body);
	buf_free(&t->hdr);
	buf_free(&t->hcanon);
	buf_free(&t->hlist);
	free(t);
}

void stage_dkim_sign_tx_free(void *txstate)
{
	struct sds_tx *t = txstate;

	if (t == NULL)
		return;
	if (t->busy) {
		/* The pool still uses the state: its completion frees it. */
		t->orphan = true;
		return;
	}
	sds_tx_destroy(t);
}

/* -------------------------------------------------- canonicalization */

static bool sds_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/*
 * RFC 6376 3.4.2 relaxed header canonicalization of one field (folded
 * lines kept, no final CRLF): name lowercased, unfolded, WSP runs as one
 * SP, no WSP at the end of the value nor around the colon; "name:value"
 * and CRLF appended to out.
 */
static void sds_canon_header(struct buf *out, const char *f, size_t len)
{
	const char *colon = memchr(f, ':', len);
	size_t nlen = colon != NULL ? (size_t)(colon - f) : len, i;
	bool wsp = false, started = false;

	while (nlen > 0 && sds_is_wsp(f[nlen - 1]))
		nlen--;
	for (i = 0; i < nlen; i++) {
		char c = f[i];

		buf_append_char(out, c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c);
	}
	buf_append_char(out, ':');
	for (i = colon != NULL ? (size_t)(colon - f) + 1 : len; i < len; i++) {
		char c = f[i];

		if (c == '\r' || c == '\n')
			continue;            /* unfold */
		if (sds_is_wsp(c)) {
			wsp = started;       /* WSP after the colon goes */
			continue;
		}
		if (wsp)
			buf_append_char(out, ' ');
		wsp = false;
		started = true;
		buf_append_char(out, c);
	}
	buf_append(out, "\r\n", 2);
}

/* One field of the header section: where it starts, its length, its name. */
struct sds_field {
	const char *p;
	size_t len;           /* without the final CRLF */
	size_t nlen;          /* the name, without WSP before the colon */
};

/* Splits the header section h into fields (continuation lines joined). */
static struct sds_field *sds_fields(const char *h, size_t len, size_t *n)
{
	struct sds_field *v = NULL;
	size_t start = 0, i = 0;

	*n = 0;
	while (i < len) {
		const char *eol = memchr(h + i, '\n', len - i);
		size_t next = eol != NULL ? (size_t)(eol - h) + 1 : len;

		/* A field ends where the next line does not continue it (WSP). */
		if (next >= len || !sds_is_wsp(h[next])) {
			struct sds_field f = { h + start, next - start, 0 };
			const char *colon;

			while (f.len > 0 && (f.p[f.len - 1] == '\n' || f.p[f.len - 1] == '\r'))
				f.len--;
			colon = memchr(f.p, ':', f.len);
			f.nlen = colon != NULL ? (size_t)(colon - f.p) : 0;
			while (f.nlen > 0 && sds_is_wsp(f.p[f.nlen - 1]))
				f.nlen--;
			v = xreallocarray(v, *n + 1, sizeof *v);
			v[(*n)++] = f;
			start = next;
		}
		i = next;
	}
	return v;
}

/*
 * The signed fields in h= order into t->hcanon and their names into
 * t->hlist. Several instances of a name are signed from the bottom up
 * (RFC 6376 5.4.2); an oversigned name gets one more entry, which no
 * field matches.
 */
static void sds_select_headers(struct sds_tx *t, const char *h, size_t len)
{
	size_t n;
	struct sds_field *f = sds_fields(h, len, &n);

	for (size_t k = 0; k < sizeof sds_signhdrs / sizeof sds_signhdrs[0]; k++) {
		const char *name = sds_signhdrs[k].name;
		size_t nl = strlen(name);

		for (size_t i = n; i-- > 0;) {
			if (f[i].nlen != nl || strncasecmp(f[i].p, name, nl) != 0)
				continue;
			sds_canon_header(&t->hcanon, f[i].p, f[i].len);
			buf_printf(&t->hlist, "%s%s", t->hlist.len > 0 ? ":" : "", name);
		}
		if (sds_signhdrs[k].oversign)
			buf_printf(&t->hlist, "%s%s", t->hlist.len > 0 ? ":" : "", name);
	}
	free(f);
}

/* The body hash, base64 (RFC 6376 3.7), into out. */
static int sds_body_end(struct sds_tx *t, char *out, size_t outlen)
{
	unsigned char h[EVP_MAX_MD_SIZE];
	unsigned hl = 0;

	if (dkim_body_canon_final(&t->body, h, &hl) < 0 || outlen < 4 * ((hl + 2) / 3) + 1)
		return -EIO;
	EVP_EncodeBlock((unsigned char *)out, h, (int)hl);
	return 0;
}

static void sds_fail(struct sds_tx *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sds_fail(struct sds_tx *t, const char *fmt, ...)
{
	va_list ap;

	if (t->error[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(t->error, sizeof t->error, fmt, ap);
		va_end(ap);
	}
	t->phase = SDS_OFF;
}

/*
 * The From: domain of the header section (its first From: field's first
 * mailbox), canonical, into t->domain; "" when there is none to sign for.
 */
static void sds_from_domain(struct sds_tx *t, const char *h, size_t len)
{
	struct rfc5322_scan *sc = xmalloc(sizeof *sc);
	const char *p = h, *end = h + len, *why;
	char **list = NULL;
	size_t n = 0;

	rfc5322_scan_init(sc);
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t l = eol != NULL ? (size_t)(eol - p) : (size_t)(end - p);

		rfc5322_scan_line(sc, p, l > 0 && p[l - 1] == '\r' ? l - 1 : l);
		p += l + (eol != NULL);
	}
	rfc5322_scan_line(sc, "", 0);
	t->domain[0] = '\0';
	if (sc->from_count > 0 && !sc->from_truncated &&
	    rfc5322_parse_address_list(sc->from, sc->from_len, &list, &n, &why) == 0 && n > 0)
		str_copy(t->domain, addr_domain_of(list[0]), sizeof t->domain);
	rfc5322_free_list(list, n);
	free(sc);
}

/* One signature with the key of k (the key file parsed, or from the cache). */
static void sds_sig_start(struct sds_tx *t, const struct queue_dkim_key *k)
{
	struct stage_dkim_sign *st = t->st;
	struct sds_sig *s = &t->sig[t->nsig];
	char path[4096];
	const struct sds_key *key = NULL;
	EVP_PKEY *pkey = NULL;
	int err = 0, want;

	want = k->alg == QUEUE_DKIM_ED25519 ? EVP_PKEY_ED25519 : EVP_PKEY_RSA;
	if (queue_dkim_key_path(st->data_dir, k->domain, k->selector, path, sizeof path) < 0 ||
	    (key = sds_key_load(st, path, &err)) == NULL) {
		sds_fail(t, "key %s of %s unreadable (%s)", k->selector, k->domain,
		    err == EBADMSG ? "not a PEM private key" :
		    err != 0 ? strerror(err) : "bad name");
		return;
	}
	pkey = key->pkey;
	if (EVP_PKEY_get_base_id(pkey) != want) {
		sds_fail(t, "key %s of %s is not an %s key", k->selector, k->domain,
		    queue_dkim_alg_name(k->alg));
		return;
	}
	if (EVP_PKEY_up_ref(pkey) != 1) {
		sds_fail(t, "key %s of %s: OpenSSL failed", k->selector, k->domain);
		return;
	}
	s->pkey = pkey;
	memcpy(s->ed_sk, key->ed_sk, sizeof s->ed_sk);
	s->alg = k->alg;
	s->selector = xstrdup(k->selector);
	t->nsig++;
}

/* The end of the header section: the From: domain's keys, the signed fields. */
static void sds_headers_done(struct sds_tx *t, size_t hlen)
{
	static const enum queue_dkim_alg algs[] = { QUEUE_DKIM_ED25519, QUEUE_DKIM_RSA };
	struct queue_store *store = policy_tx_store(t->tx);
	struct queue_dkim_key *keys[QUEUE_DKIM_NALGS] = { NULL, NULL };
	struct queue_txn *txn;
	int rc = 0;

	t->phase = SDS_BODY;
	sds_from_domain(t, t->hdr.data, hlen);
	if (t->domain[0] == '\0' || store == NULL) {
		t->phase = SDS_OFF;
		return;
	}
	if ((rc = queue_txn_begin(store, false, &txn)) < 0) {
		sds_fail(t, "cannot read the keys: %s", queue_strerror(rc));
		return;
	}
	for (size_t i = 0; i < QUEUE_DKIM_NALGS && rc >= 0; i++) {
		rc = queue_dkim_signer(txn, t->domain, algs[i], &keys[i]);
		if (rc == -ENOENT || rc == -EINVAL)
			rc = 0;
	}
	queue_txn_abort(txn);
	if (rc < 0)
		sds_fail(t, "cannot read the keys: %s", queue_strerror(rc));
	for (size_t i = 0; i < QUEUE_DKIM_NALGS; i++) {
		if (keys[i] != NULL && t->phase == SDS_BODY)
			sds_sig_start(t, keys[i]);
		queue_dkim_key_free(keys[i]);
	}
	if (t->nsig == 0 && t->phase == SDS_BODY)
		t->phase = SDS_OFF;
	if (t->phase != SDS_BODY)
		return;
	sds_select_headers(t, t->hdr.data, hlen);
	if (dkim_body_canon_init(&t->body, true) < 0)
		sds_fail(t, "SHA-256 is not available");
}

void stage_dkim_sign_body(void *txstate, const char *data, size_t len)
{
	struct sds_tx *t = txstate;
	const size_t limit = RFC5322_HEADER_MAX + 4;
	size_t old, take, from, hlen;
	const char *hit;

	if (t->phase == SDS_BODY) {
		dkim_body_canon_feed(&t->body, data, len);
		return;
	}
	if (t->phase != SDS_HEADERS || !t->wanted)
		return;
	old = t->hdr.len;
	take = len < limit - old ? len : limit - old;
	buf_append(&t->hdr, data, take);
	/* A message without header fields starts with its empty line. */
	if (t->hdr.len >= 2 && memcmp(t->hdr.data, "\r\n", 2) == 0) {
		t->phase = SDS_OFF;
		return;
	}
	/* The empty line may straddle two pieces: look 3 bytes back. */
	from = old >= 3 ? old - 3 : 0;
	hit = t->hdr.len >= 4 ? memmem(t->hdr.data + from, t->hdr.len - from, "\r\n\r\n", 4) :
	    NULL;
	if (hit == NULL) {
		if (t->hdr.len >= limit) {
			t->too_large = true;
			t->phase = SDS_OFF;
			buf_free(&t->hdr);
			buf_init(&t->hdr);
		}
		return;
	}
	hlen = (size_t)(hit - t->hdr.data) + 2; /* up to the last field's CRLF */
	sds_headers_done(t, hlen);
	if (t->phase == SDS_BODY && t->hdr.len > hlen + 2)
		dkim_body_canon_feed(&t->body, t->hdr.data + hlen + 2, t->hdr.len - hlen - 2);
	if (t->phase == SDS_BODY && take < len)
		dkim_body_canon_feed(&t->body, data + take, len - take);
	buf_free(&t->hdr);
	buf_init(&t->hdr);
}

/* ---------------------------------------------------------------- run */

/*
 * The signature of one key over the signed fields and its own field with
 * b= empty (RFC 6376 3.7), canonical and without its final CRLF. rsa-sha256
 * signs SHA-256 with PKCS#1 v1.5; ed25519-sha256 signs the SHA-256 digest
 * with PureEdDSA (RFC 8463 3). 0 with the base64 into out, or -EIO.
 */
static int sds_sign(const struct sds_tx *t, const struct sds_sig *s, const struct buf *canon,
    char *out, size_t outlen)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char sig[SDS_SIG_MAX], h[EVP_MAX_MD_SIZE];
	unsigned int hl = 0;
	size_t sl = sizeof sig;
	int ok = 0;

	if (ctx == NULL)
		return -EIO;
	if (s->alg == QUEUE_DKIM_RSA) {
		ok = EVP_DigestSignInit(ctx, NULL, dkim_sha256(), NULL, s->pkey) == 1 &&
		    EVP_DigestSignUpdate(ctx, t->hcanon.data, t->hcanon.len) == 1 &&
		    EVP_DigestSignUpdate(ctx, canon->data, canon->len) == 1 &&
		    EVP_DigestSignFinal(ctx, NULL, &sl) == 1 && sl <= sizeof sig &&
		    EVP_DigestSignFinal(ctx, sig, &sl) == 1;
	} else {
		unsigned long long edl = 0;

		ok = EVP_DigestInit_ex(ctx, dkim_sha256(), NULL) == 1 &&
		    EVP_DigestUpdate(ctx, t->hcanon.data, t->hcanon.len) == 1 &&
		    EVP_DigestUpdate(ctx, canon->data, canon->len) == 1 &&
		    EVP_DigestFinal_ex(ctx, h, &hl) == 1 &&
		    crypto_sign_detached(sig, &edl, h, hl, s->ed_sk) == 0;
		sl = (size_t)edl;
	}
	EVP_MD_CTX_free(ctx);
	if (!ok || outlen < 4 * ((sl + 2) / 3) + 1)
		return -EIO;
	EVP_EncodeBlock((unsigned char *)out, sig, (int)sl);
	return 0;
}

/* One DKIM-Signature field: the tags, then b= folded (its FWS is not signed). */
static int sds_sig_field(struct sds_tx *t, struct sds_sig *s, const char *bh, time_t now)
{
	struct buf f, canon;
	char b64[2 * SDS_SIG_MAX];
	size_t len;
	int rc;

	buf_init(&f);
	buf_init(&canon);
	buf_printf(&f, SDS_HDR ": v=1; a=%s; c=relaxed/relaxed; d=%s; s=%s;\r\n\tt=%lld; "
	    "h=%s;\r\n\tbh=%s;\r\n\tb=", queue_dkim_alg_sig(s->alg), t->domain, s->selector,
	    (long long)now, buf_cstr(&t->hlist), bh);
	sds_canon_header(&canon, f.data, f.len);
	canon.len -= 2;   /* presented without its CRLF (RFC 6376 3.7) */
	rc = sds_sign(t, s, &canon, b64, sizeof b64);
	len = rc == 0 ? strlen(b64) : 0;
	for (size_t off = 0; off < len; off += SDS_B64_LINE) {
		if (off > 0)
			buf_append_str(&f, "\r\n\t ");
		buf_append(&f, b64 + off, len - off < SDS_B64_LINE ? len - off : SDS_B64_LINE);
	}
	buf_free(&canon);
	if (rc == 0)
		s->field = buf_steal(&f, NULL);
	buf_free(&f);
	return rc;
}

/* Pool thread: the body hash and the signatures. */
static void sds_work(uv_work_t *w)
{
	struct sds_tx *t = w->data;
	char bh[EVP_MAX_MD_SIZE * 2];
	time_t now = time(NULL);

	/* t->error is read by the loop only after this work ended. */
	if (sds_body_end(t, bh, sizeof bh) < 0) {
		snprintf(t->error, sizeof t->error, "the body hash failed");
		return;
	}
	for (size_t i = 0; i < t->nsig; i++) {
		if (sds_sig_field(t, &t->sig[i], bh, now) < 0) {
			snprintf(t->error, sizeof t->error, "signing with %s failed (OpenSSL)",
			    t->sig[i].selector);
			return;
		}
	}
}

static void sds_tempfail(struct policy_call *call, struct sds_tx *t)
{
	struct verdict v;

	log_warn(t->session_id, "dkim_sign: %s: %s", t->domain, t->error);
	policy_tx_note(t->tx, "dkim_sign", "failed: %s", t->error);
	policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.7.0",
	    "the message could not be signed (DKIM) for %s; please try again later",
	    t->domain);
	v.rule = sds_rule;
	policy_call_complete(call, &v);
}

static void sds_continue(struct policy_call *call)
{
	struct verdict v;

	policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "signed");
	v.rule = sds_rule;
	policy_call_complete(call, &v);
}

static void sds_after_work(uv_work_t *w, int status)
{
	struct sds_tx *t = w->data;
	struct policy_call *call = t->call;
	struct buf note;

	t->busy = false;
	if (t->orphan) {
		/*
		 * The transaction ended while we signed (the engine timed the
		 * call out first): nothing to add to. The completion still
		 * releases the call, which waits for it (policy.c).
		 */
		struct verdict v;

		sds_tx_destroy(t);
		policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.7.0", "not signed in time");
		v.rule = sds_rule;
		policy_call_complete(call, &v);
		return;
	}
	if (status != 0 && t->error[0] == '\0')
		snprintf(t->error, sizeof t->error, "the signing work was cancelled");
	if (t->error[0] != '\0') {
		sds_tempfail(call, t);
		return;
	}
	buf_init(&note);
	for (size_t i = 0; i < t->nsig; i++) {
		policy_tx_add_header(t->tx, t->sig[i].field);
		buf_printf(&note, "%sd=%s s=%s a=%s", i > 0 ? ", " : "", t->domain,
		    t->sig[i].selector, queue_dkim_alg_sig(t->sig[i].alg));
	}
	policy_tx_note(t->tx, "dkim_sign", "%s", buf_cstr(&note));
	buf_free(&note);
	sds_continue(call);
}

/* MAIL: whether we sign for this transaction at all. */
static void sds_run_mail(struct policy_call *call, const struct policy_request *req,
    struct sds_tx *t)
{
	/*
	 * Mail we send: submitted by a user, or handed to us by an agency's
	 * own server. Mail from the Internet is never signed with our keys,
	 * whatever its From: claims.
	 */
	if (t != NULL)
		t->wanted = req->listener_role == NULL || strcmp(req->listener_role, "mx") != 0 ||
		    req->client_trusted;
	sds_continue(call);
}

static bool sds_all_ed25519(const struct sds_tx *t)
{
	for (size_t i = 0; i < t->nsig; i++) {
		if (t->sig[i].alg != QUEUE_DKIM_ED25519)
			return false;
	}
	return true;
}

void stage_dkim_sign_run(struct policy_call *call, const struct policy_request *req,
    void *state)
{
	struct sds_tx *t = policy_call_tx_state(call);
	struct verdict v;
	int rc;

	(void)state;
	if (t != NULL)
		str_copy(t->session_id, req->session_id != NULL ? req->session_id : "-",
		    sizeof t->session_id);
	if (req->stage == POLICY_STAGE_MAIL) {
		sds_run_mail(call, req, t);
		return;
	}
	if (t == NULL || !t->wanted) {
		sds_continue(call);
		return;
	}
	if (t->too_large) {
		policy_verdict_set(&v, VERDICT_REJECT, 552, "5.6.0",
		    "Message header too large to be signed (DKIM)");
		v.rule = sds_rule;
		policy_tx_note(t->tx, "dkim_sign", "failed: header section too large");
		policy_call_complete(call, &v);
		return;
	}
	/*
	 * A message of header fields only, without the empty line (RFC 5322
	 * 3.5 makes the body optional): its whole text is the header section.
	 */
	if (t->phase == SDS_HEADERS && t->hdr.len >= 2 &&
	    memcmp(t->hdr.data + t->hdr.len - 2, "\r\n", 2) == 0)
		sds_headers_done(t, t->hdr.len);
	if (t->error[0] != '\0') {
		sds_tempfail(call, t);
		return;
	}
	if (t->nsig == 0 || t->phase != SDS_BODY || t->busy) {
		sds_continue(call);
		return;
	}
	t->call = call;
	t->work.data = t;
	t->busy = true;
	if (sds_all_ed25519(t)) {
		/*
		 * Ed25519 signatures cost about 40 microseconds here: less than
		 * the trip to the thread pool and back (two wake-ups, two
		 * context switches), so they are made on the loop. RSA (about a
		 * millisecond for 2048 bits) always goes to the pool.
		 */
		sds_work(&t->work);
		sds_after_work(&t->work, 0);
		return;
	}
	rc = uv_queue_work(policy_call_loop(call), &t->work, sds_work, sds_after_work);
	if (rc != 0) {
		t->busy = false;
		snprintf(t->error, sizeof t->error, "cannot queue the signing: %s",
		    uv_strerror(rc));
		sds_tempfail(call, t);
	}
}
