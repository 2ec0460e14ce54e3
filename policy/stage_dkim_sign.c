/*
 * stage_dkim_sign: DKIM signing of the mail we send (the "dkim_sign" row,
 * the last of policy/checks.c, so it signs only what every other check
 * let through). A message is signed when it comes in over submission or
 * submissions, or from a trusted agency server (trusted_networks) over
 * mx, and its From: domain has keys (queue/dkim.h): one ed25519-sha256
 * signature (RFC 8463) and one rsa-sha256 when the domain has a signing
 * key of each, relaxed/relaxed (RFC 6376 3.4), h= From To Cc Subject
 * Date Message-ID MIME-Version Content-Type Content-Transfer-Encoding as
 * present, with From and Subject oversigned (one more h= entry than
 * instances, RFC 6376 8.15) so a field added on the way breaks the
 * signature. The DKIM-Signature fields are added above the message
 * (policy_tx_add_header), which is stored and delivered byte for byte as
 * it was fed here: what is signed is what leaves.
 *
 * Per message, streaming: the body hook collects the header section
 * (at most RFC5322_HEADER_MAX bytes), and at its end finds the From:
 * domain, looks up its signing keys (a read transaction), loads their
 * files (cached by path, inode, size and mtime), makes one libopendkim
 * signing handle per key and feeds it the header fields; the body then
 * streams to the handles as it arrives (canonicalization and hashing,
 * cheap). At the DATA stage the signatures themselves (dkim_eom, an RSA
 * private-key operation) run on the libuv thread pool.
 *
 * Failures: a message of ours that should be signed and cannot be (a key
 * file unreadable, libopendkim failing) is refused with 451 4.7.0, so the
 * client retries: leaving unsigned it would fail the receivers' DMARC
 * checks, which is worse than a retry. A header section too large to
 * sign is 552 5.6.0 (as the tenant check says of one too large to read). A domain without keys is not signed and not noted.
 *
 * Entry points: stage_dkim_sign_new/free, stage_dkim_sign_run (MAIL and
 * DATA), stage_dkim_sign_tx_new/body/tx_free.
 * OWNERSHIP: the check owns the DKIM_LIB and the key cache; each
 * transaction state owns its handles, its copies of the keys (wiped on
 * free) and its header buffer. A state freed while its signing runs on
 * the pool is freed by the pool's completion instead.
 * THREADS: loop thread, except stage_dkim_sign_work (a pool thread),
 * which touches only its transaction's handles while the loop leaves
 * them alone. One DKIM_LIB serves every thread (DEPENDENCIES.md 5).
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
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <opendkim/dkim.h>
#include <uv.h>

#include "common/addr.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/rfc5322.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/check.h"
#include "policy/policy_int.h"
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
#define SDS_CACHE_MAX 256  /* key files remembered; the oldest goes first */

/* RFC 6376 5.4.1's recommended set, as ARCHITECTURE/issue 10 asks. */
static const char *sds_signhdrs[] = { "from", "to", "cc", "subject", "date", "message-id",
	"mime-version", "content-type", "content-transfer-encoding", NULL };
static const char *sds_oversign[] = { "from", "subject", NULL };

/* ------------------------------------------- libopendkim 2.11.0's leak */

/*
 * libopendkim 2.11.0 (Debian 12's 2.11.0~beta2) leaks on every Ed25519
 * signing handle: dkim_free() releases the private key's OpenSSL objects
 * (EVP_PKEY, its BIO) and output buffer only for RSA signatures
 * (libopendkim/dkim.c, dkim_free: `if (sig_keytype == DKIM_KEYTYPE_RSA)`),
 * about 600 bytes a message, measured with valgrind. For that version
 * only, each handle gets an allocation ledger (dkim_init's allocator,
 * with the handle's memclosure): when the library frees its key
 * structure we free the two OpenSSL objects it forgot, and after
 * dkim_free we free the blocks it left behind. Any other version runs
 * with the plain allocator, untouched.
 */
#define SDS_ODK_LEAKY_VERSION 0x020B0000u

/* libopendkim 2.11.0's struct dkim_crypto (dkim-types.h, OpenSSL build). */
struct sds_odk_crypto {
	unsigned char pad;
	int keysize;
	size_t inlen;
	size_t outlen;
	EVP_PKEY *pkey;
	void *key;            /* RSA *: NULL for Ed25519 */
	BIO *keydata;
	unsigned char *in;
	unsigned char *out;
};

/* A handle's live allocations: open addressing, pointer keys. */
struct sds_ledger {
	struct sds_block { void *p; size_t n; } *v;
	size_t cap;           /* a power of two, or 0 */
	size_t used;          /* live entries plus tombstones */
	size_t live;
};
#define SDS_TOMB ((void *)&sds_rule)

static size_t sds_ledger_slot(const struct sds_ledger *l, const void *p)
{
	uintptr_t h = (uintptr_t)p;

	h ^= h >> 17;
	h *= 0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 7) & (l->cap - 1);
}

static struct sds_block *sds_ledger_find(struct sds_ledger *l, const void *p)
{
	if (l->cap == 0)
		return NULL;
	for (size_t i = sds_ledger_slot(l, p);; i = (i + 1) & (l->cap - 1)) {
		if (l->v[i].p == p)
			return &l->v[i];
		if (l->v[i].p == NULL)
			return NULL;
	}
}

static void sds_ledger_add(struct sds_ledger *l, void *p, size_t n)
{
	if ((l->used + 1) * 4 >= l->cap * 3) {
		struct sds_ledger old = *l;

		l->cap = old.live * 4 > 64 ? old.live * 4 : 64;
		while ((l->cap & (l->cap - 1)) != 0)
			l->cap &= l->cap - 1;
		l->cap *= 2;
		l->v = xcalloc(l->cap, sizeof *l->v);
		l->used = l->live = 0;
		for (size_t i = 0; i < old.cap; i++)
			if (old.v[i].p != NULL && old.v[i].p != SDS_TOMB)
				sds_ledger_add(l, old.v[i].p, old.v[i].n);
		free(old.v);
	}
	for (size_t i = sds_ledger_slot(l, p);; i = (i + 1) & (l->cap - 1)) {
		if (l->v[i].p == NULL) {
			l->v[i].p = p;
			l->v[i].n = n;
			l->used++;
			l->live++;
			return;
		}
	}
}

static void *sds_odk_malloc(void *closure, size_t n)
{
	void *p = xmalloc(n > 0 ? n : 1);

	if (closure != NULL)
		sds_ledger_add(closure, p, n);
	return p;
}

/*
 * The library frees its key structure of an Ed25519 signature with the
 * EVP_PKEY and BIO still in it: free them first. Recognized by its size,
 * its sizes (a 64-byte output for a 512-bit key) and its output buffer
 * being a live block of this very handle, then by the key's type.
 */
static void sds_odk_reclaim(struct sds_ledger *l, const struct sds_block *b)
{
	struct sds_odk_crypto *c = b->p;
	struct sds_block *out;

	if (b->n != sizeof *c || c->keysize != 512 || c->outlen != 64 || c->pkey == NULL ||
	    c->key != NULL || c->out == NULL)
		return;
	out = sds_ledger_find(l, c->out);
	if (out == NULL || out->n != 64 || EVP_PKEY_get_base_id(c->pkey) != EVP_PKEY_ED25519)
		return;
	EVP_PKEY_free(c->pkey);
	c->pkey = NULL;
	if (c->keydata != NULL)
		BIO_free(c->keydata);
	c->keydata = NULL;
}

static void sds_odk_free(void *closure, void *p)
{
	struct sds_ledger *l = closure;
	struct sds_block *b;

	if (p == NULL)
		return;
	if (l != NULL && (b = sds_ledger_find(l, p)) != NULL) {
		sds_odk_reclaim(l, b);
		b->p = SDS_TOMB;
		l->live--;
	}
	free(p);
}

/* After dkim_free: what the library left behind is ours to free. */
static void sds_ledger_sweep(struct sds_ledger *l)
{
	for (size_t i = 0; i < l->cap; i++)
		if (l->v[i].p != NULL && l->v[i].p != SDS_TOMB)
			free(l->v[i].p);
	free(l->v);
	memset(l, 0, sizeof *l);
}

/* One key file as last read. */
struct sds_key {
	char *path;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	char *pem;           /* NUL-terminated; wiped when dropped */
	size_t pemlen;
};

struct stage_dkim_sign {
	bool enabled;
	bool ledger;         /* the library leaks: account for its blocks */
	char *data_dir;
	DKIM_LIB *lib;
	struct sds_key *cache;
	size_t ncache;
};

enum sds_phase { SDS_HEADERS, SDS_BODY, SDS_OFF };

struct sds_sig {
	DKIM *dkim;
	char *pem;           /* our copy of the private key, wiped on free */
	size_t pemlen;
	char *selector;
	enum queue_dkim_alg alg;
	char *field;         /* the DKIM-Signature field, after the work */
	struct sds_ledger ledger; /* the handle's allocations (leaky versions) */
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
	st->data_dir = cfg != NULL && cfg->data_dir != NULL ? xstrdup(cfg->data_dir) : NULL;
	if (st->enabled && st->data_dir != NULL) {
		st->ledger = dkim_libversion() == SDS_ODK_LEAKY_VERSION;
		st->lib = st->ledger ? dkim_init(sds_odk_malloc, sds_odk_free) :
		    dkim_init(NULL, NULL);
		if (st->lib == NULL ||
		    /* libopendkim wants the list itself and the size of a char ** */
		    dkim_options(st->lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, sds_signhdrs,
		    sizeof(char **)) != DKIM_STAT_OK ||
		    dkim_options(st->lib, DKIM_OP_SETOPT, DKIM_OPTS_OVERSIGNHDRS, sds_oversign,
		    sizeof(char **)) != DKIM_STAT_OK) {
			snprintf(err, errlen, "dkim_sign: libopendkim could not be set up");
			if (st->lib != NULL)
				dkim_close(st->lib);
			free(st->data_dir);
			free(st);
			return -EIO;
		}
	}
	*state = st;
	return 0;
}

static void sds_key_drop(struct sds_key *k)
{
	free(k->path);
	if (k->pem != NULL) {
		OPENSSL_cleanse(k->pem, k->pemlen);
		free(k->pem);
	}
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
	if (st->lib != NULL)
		dkim_close(st->lib);
	free(st->data_dir);
	free(st);
}

/* ---------------------------------------------------------- key files */

/* Reads an open key file of at most QUEUE_DKIM_PEM_MAX bytes. */
static int sds_key_read(int fd, const struct stat *sb, struct sds_key *k)
{
	size_t got = 0;

	if (!S_ISREG(sb->st_mode) || sb->st_size <= 0 || sb->st_size > QUEUE_DKIM_PEM_MAX)
		return -EINVAL;
	k->pem = xmalloc((size_t)sb->st_size + 1);
	while (got < (size_t)sb->st_size) {
		ssize_t n = read(fd, k->pem + got, (size_t)sb->st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		got += (size_t)n;
	}
	k->pem[got] = '\0';
	k->pemlen = got;
	return 0;
}

/*
 * The key file at path, from the cache when the file did not change
 * (same inode, size and mtime: keygen replaces a file by rename, so a new
 * key is a new inode). A small local read on the loop thread: the file is
 * read again only when it changed.
 */
static const struct sds_key *sds_key_load(struct stage_dkim_sign *st, const char *path,
    int *err)
{
	struct sds_key *slot = NULL, fresh;
	struct stat sb;
	int fd, rc;

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
			return k;
		}
		slot = k;
		break;
	}
	memset(&fresh, 0, sizeof fresh);
	rc = sds_key_read(fd, &sb, &fresh);
	close(fd);
	if (rc < 0) {
		sds_key_drop(&fresh);
		*err = -rc;
		return NULL;
	}
	fresh.path = xstrdup(path);
	fresh.dev = sb.st_dev;
	fresh.ino = sb.st_ino;
	fresh.size = sb.st_size;
	fresh.mtime = sb.st_mtim;
	if (slot == NULL && st->ncache == SDS_CACHE_MAX) {
		/* Full: the first entry goes, the rest move up. */
		sds_key_drop(&st->cache[0]);
		memmove(st->cache, st->cache + 1, (st->ncache - 1) * sizeof *st->cache);
		slot = &st->cache[--st->ncache];
	} else if (slot == NULL) {
		st->cache = xreallocarray(st->cache, st->ncache + 1, sizeof *st->cache);
		slot = &st->cache[st->ncache];
	} else {
		sds_key_drop(slot);
		*slot = fresh;
		return slot;
	}
	*slot = fresh;
	st->ncache++;
	return slot;
}

/* ------------------------------------------------------- transactions */

void *stage_dkim_sign_tx_new(void *state, struct policy_tx *tx)
{
	struct stage_dkim_sign *st = state;
	struct sds_tx *t;

	if (st == NULL || !st->enabled || st->lib == NULL)
		return NULL;
	t = xcalloc(1, sizeof *t);
	t->st = st;
	t->tx = tx;
	t->phase = SDS_HEADERS;
	buf_init(&t->hdr);
	return t;
}

static void sds_sigs_free(struct sds_tx *t)
{
	for (size_t i = 0; i < t->nsig; i++) {
		struct sds_sig *s = &t->sig[i];

		if (s->dkim != NULL)
			dkim_free(s->dkim);
		sds_ledger_sweep(&s->ledger);
		if (s->pem != NULL) {
			OPENSSL_cleanse(s->pem, s->pemlen);
			free(s->pem);
		}
		free(s->selector);
		free(s->field);
		memset(s, 0, sizeof *s);
	}
	t->nsig = 0;
}

static void sds_tx_destroy(struct sds_tx *t)
{
	sds_sigs_free(t);
	buf_free(&t->hdr);
	free(t);
}

void stage_dkim_sign_tx_free(void *txstate)
{
	struct sds_tx *t = txstate;

	if (t == NULL)
		return;
	if (t->busy) {
		/* The pool still uses the handles: its completion frees them. */
		t->orphan = true;
		return;
	}
	sds_tx_destroy(t);
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

/* Feeds the header fields (folded lines kept, no final CRLF) to one handle. */
static DKIM_STAT sds_feed_headers(DKIM *d, const char *h, size_t len)
{
	size_t start = 0, i = 0;
	DKIM_STAT rc;

	while (i < len) {
		const char *eol = memchr(h + i, '\n', len - i);
		size_t next = eol != NULL ? (size_t)(eol - h) + 1 : len;

		/* A field ends where the next line does not continue it (WSP). */
		if (next >= len || (h[next] != ' ' && h[next] != '\t')) {
			size_t flen = next - start;

			while (flen > 0 && (h[start + flen - 1] == '\n' || h[start + flen - 1] == '\r'))
				flen--;
			rc = dkim_header(d, (u_char *)(h + start), flen);
			if (rc != DKIM_STAT_OK)
				return rc;
			start = next;
		}
		i = next;
	}
	return dkim_eoh(d);
}

/* One signing handle for key k over the header section h. */
static void sds_sig_start(struct sds_tx *t, const struct queue_dkim_key *k, const char *h,
    size_t len)
{
	struct stage_dkim_sign *st = t->st;
	struct sds_sig *s = &t->sig[t->nsig];
	const struct sds_key *file;
	char path[4096];
	DKIM_STAT rc = DKIM_STAT_OK;
	int err = 0;

	if (queue_dkim_key_path(st->data_dir, k->domain, k->selector, path, sizeof path) < 0 ||
	    (file = sds_key_load(st, path, &err)) == NULL) {
		sds_fail(t, "key %s of %s unreadable (%s)", k->selector, k->domain,
		    err != 0 ? strerror(err) : "bad name");
		return;
	}
	s->pem = xmalloc(file->pemlen + 1);
	memcpy(s->pem, file->pem, file->pemlen + 1);
	s->pemlen = file->pemlen;
	s->selector = xstrdup(k->selector);
	s->alg = k->alg;
	t->nsig++;
	s->dkim = dkim_sign(st->lib, (const u_char *)"govrelay", st->ledger ? &s->ledger : NULL,
	    (dkim_sigkey_t)s->pem,
	    (const u_char *)k->selector, (const u_char *)k->domain, DKIM_CANON_RELAXED,
	    DKIM_CANON_RELAXED, k->alg == QUEUE_DKIM_ED25519 ? DKIM_SIGN_ED25519SHA256 :
	    DKIM_SIGN_RSASHA256, -1, &rc);
	if (s->dkim == NULL || rc != DKIM_STAT_OK) {
		sds_fail(t, "libopendkim refused key %s of %s (%s)", k->selector, k->domain,
		    dkim_getresultstr(rc));
		return;
	}
	if ((rc = sds_feed_headers(s->dkim, h, len)) != DKIM_STAT_OK)
		sds_fail(t, "header section not signable (%s)", dkim_getresultstr(rc));
}

/* The end of the header section: the From: domain's keys, one handle each. */
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
			sds_sig_start(t, keys[i], t->hdr.data, hlen);
		queue_dkim_key_free(keys[i]);
	}
	if (t->nsig == 0 && t->phase == SDS_BODY)
		t->phase = SDS_OFF;
}

static void sds_body_feed(struct sds_tx *t, const char *data, size_t len)
{
	for (size_t i = 0; i < t->nsig && t->phase == SDS_BODY; i++) {
		DKIM_STAT rc = dkim_body(t->sig[i].dkim, (u_char *)data, len);

		if (rc != DKIM_STAT_OK)
			sds_fail(t, "body not signable (%s)", dkim_getresultstr(rc));
	}
}

void stage_dkim_sign_body(void *txstate, const char *data, size_t len)
{
	struct sds_tx *t = txstate;
	const size_t limit = RFC5322_HEADER_MAX + 4;
	size_t old, take, from, hlen;
	const char *hit;

	if (t->phase == SDS_BODY) {
		sds_body_feed(t, data, len);
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
		sds_body_feed(t, t->hdr.data + hlen + 2, t->hdr.len - hlen - 2);
	if (t->phase == SDS_BODY && take < len)
		sds_body_feed(t, data + take, len - take);
	buf_free(&t->hdr);
	buf_init(&t->hdr);
}

/* ---------------------------------------------------------------- run */

/* "DKIM-Signature: " + libopendkim's value, with every line end CRLF. */
static char *sds_field(const u_char *v, size_t len)
{
	struct buf b;

	buf_init(&b);
	buf_append_str(&b, SDS_HDR ": ");
	for (size_t i = 0; i < len; i++) {
		if (v[i] == '\r')
			continue;
		if (v[i] == '\n')
			buf_append(&b, "\r\n", 2);
		else
			buf_append_char(&b, (char)v[i]);
	}
	return buf_steal(&b, NULL);
}

/* Pool thread: the signatures (RSA's private-key operation is the cost). */
static void sds_work(uv_work_t *w)
{
	struct sds_tx *t = w->data;

	for (size_t i = 0; i < t->nsig; i++) {
		struct sds_sig *s = &t->sig[i];
		u_char *v = NULL;
		size_t vlen = 0;
		DKIM_STAT rc = dkim_eom(s->dkim, NULL);

		if (rc == DKIM_STAT_OK)
			rc = dkim_getsighdr_d(s->dkim, strlen(SDS_HDR) + 2, &v, &vlen);
		if (rc != DKIM_STAT_OK || v == NULL) {
			/* t->error is read by the loop only after this work ended. */
			snprintf(t->error, sizeof t->error, "signing with %s failed (%s)",
			    s->selector, dkim_getresultstr(rc));
			return;
		}
		s->field = sds_field(v, vlen);
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
	/* The engine's loop (policy_int.h: files of policy/ share it). */
	rc = uv_queue_work(policy_call_policy(call)->loop, &t->work, sds_work, sds_after_work);
	if (rc != 0) {
		t->busy = false;
		snprintf(t->error, sizeof t->error, "cannot queue the signing: %s",
		    uv_strerror(rc));
		sds_tempfail(call, t);
	}
}
