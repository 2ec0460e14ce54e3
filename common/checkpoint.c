/*
 * checkpoint: Ed25519 keys, and the signed checkpoint line that anchors
 * the audit chain (the format is in common/checkpoint.h). Pure: no store,
 * no loop; the queue side (queue/audit_checkpoint.c) reads the chain's
 * head and decides when, the daemon side (relay/checkpointer.c) when on
 * a timer.
 *
 * Entry points: see checkpoint.h.
 * OWNERSHIP: a ckpt_key owns its EVP_PKEY; every other argument is
 * borrowed for the call.
 * THREADS: any. Each signature or verification uses its own EVP_MD_CTX;
 * the key itself is only read once loaded.
 * ERRORS: negative errno values; a key refused at start-up comes with an
 * English reason for the FILE:LINE message (common/cfg.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/checkpoint.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define CKPT_TIME_LEN 24 /* 2026-12-04T19:03:19.123Z */
#define CKPT_TAIL 4096   /* bytes of the file ckpt_read_last reads */

struct ckpt_key {
	EVP_PKEY *pkey;
	bool priv;
	char id[CKPT_HEX_HASH];
};

/* Lowercase hex only: the canonical spelling, so a line has one form. */
static int ckpt_unhex(const char *s, size_t n, uint8_t *out)
{
	for (size_t i = 0; i < 2 * n; i++) {
		char c = s[i];
		int v;

		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			return -EBADMSG;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return 0;
}

/* ---------------------------------------------------------------- keys */

/* A passphrase callback that refuses: a daemon never prompts. */
static int ckpt_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* The key id: SHA-256 over the raw 32-byte public key. */
static int ckpt_key_finish(EVP_PKEY *pkey, bool priv, struct ckpt_key **out)
{
	uint8_t raw[32], digest[CKPT_HASH_LEN];
	size_t rawlen = sizeof raw;
	unsigned int dlen = 0;
	struct ckpt_key *k;

	if (EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen) != 1 || rawlen != sizeof raw ||
	    EVP_Digest(raw, rawlen, digest, &dlen, EVP_sha256(), NULL) != 1 ||
	    dlen != sizeof digest)
		return -EIO;
	k = xcalloc(1, sizeof *k);
	k->pkey = pkey;
	k->priv = priv;
	hex_encode(digest, sizeof digest, k->id);
	*out = k;
	return 0;
}

static const char *ckpt_key_type_name(const EVP_PKEY *pkey)
{
	switch (EVP_PKEY_get_id(pkey)) {
	case EVP_PKEY_RSA: return "an RSA key";
	case EVP_PKEY_EC: return "an EC key";
	case EVP_PKEY_ED448: return "an Ed448 key";
	case EVP_PKEY_X25519: return "an X25519 key";
	default: return "another kind of key";
	}
}

/* Opens path for reading; for the signing key the mode is checked too. */
static FILE *ckpt_key_open(const char *path, bool check_mode, int *err, char *why,
    size_t whylen)
{
	struct stat st;
	FILE *f;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);

	if (fd < 0) {
		*err = errno == ENOENT ? -ENOENT : errno == EACCES ? -EACCES : -errno;
		snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*err = -EINVAL;
		snprintf(why, whylen, "%s is not a regular file", path);
		close(fd);
		return NULL;
	}
	/*
	 * Only the daemon's user may read the signing key: a key that others
	 * can read signs checkpoints for whoever reads it, and anchors
	 * nothing. Group bits count too (a shared group is other people).
	 */
	if (check_mode && (st.st_mode & 077) != 0) {
		*err = -EPERM;
		snprintf(why, whylen, "%s is accessible by group or others (mode %04o); only "
		    "the daemon's user may read it: chmod 600 %s", path,
		    (unsigned)(st.st_mode & 07777), path);
		close(fd);
		return NULL;
	}
	f = fdopen(fd, "r");
	if (f == NULL) {
		*err = -errno;
		snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
		close(fd);
	}
	return f;
}

int ckpt_key_load_private(const char *path, struct ckpt_key **out, char *why, size_t whylen)
{
	EVP_PKEY *pkey;
	FILE *f;
	int rc = 0;

	*out = NULL;
	if ((f = ckpt_key_open(path, true, &rc, why, whylen)) == NULL)
		return rc;
	pkey = PEM_read_PrivateKey(f, NULL, ckpt_no_passphrase, NULL);
	fclose(f);
	ERR_clear_error();
	if (pkey == NULL) {
		snprintf(why, whylen, "%s is not a PEM private key without passphrase (make one "
		    "with: openssl genpkey -algorithm ed25519 -out FILE)", path);
		return -EINVAL;
	}
	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		snprintf(why, whylen, "%s is %s, not an Ed25519 key (make one with: openssl "
		    "genpkey -algorithm ed25519 -out FILE)", path, ckpt_key_type_name(pkey));
		EVP_PKEY_free(pkey);
		return -EINVAL;
	}
	if ((rc = ckpt_key_finish(pkey, true, out)) < 0) {
		snprintf(why, whylen, "%s: cannot read its public half", path);
		EVP_PKEY_free(pkey);
	}
	return rc;
}

int ckpt_key_check(const char *path, char *why, size_t whylen)
{
	struct ckpt_key *k;
	int rc = ckpt_key_load_private(path, &k, why, whylen);

	ckpt_key_free(k);
	return rc;
}

int ckpt_key_load_public(const char *path, struct ckpt_key **out, char *why, size_t whylen)
{
	EVP_PKEY *pkey;
	FILE *f;
	bool priv = false;
	int rc = 0;

	*out = NULL;
	if ((f = ckpt_key_open(path, false, &rc, why, whylen)) == NULL)
		return rc;
	pkey = PEM_read_PUBKEY(f, NULL, ckpt_no_passphrase, NULL);
	if (pkey == NULL) {
		rewind(f);
		pkey = PEM_read_PrivateKey(f, NULL, ckpt_no_passphrase, NULL);
		priv = pkey != NULL;
	}
	fclose(f);
	ERR_clear_error();
	if (pkey == NULL) {
		snprintf(why, whylen, "%s is neither a PEM public key nor a PEM private key "
		    "without passphrase", path);
		return -EINVAL;
	}
	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		snprintf(why, whylen, "%s is %s, not an Ed25519 key", path,
		    ckpt_key_type_name(pkey));
		EVP_PKEY_free(pkey);
		return -EINVAL;
	}
	if ((rc = ckpt_key_finish(pkey, priv, out)) < 0) {
		snprintf(why, whylen, "%s: cannot read the public key", path);
		EVP_PKEY_free(pkey);
	}
	return rc;
}

void ckpt_key_free(struct ckpt_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

const char *ckpt_key_id(const struct ckpt_key *k)
{
	return k->id;
}

bool ckpt_key_is_private(const struct ckpt_key *k)
{
	return k->priv;
}

/* ------------------------------------------------------------- the line */


int ckpt_sign(const struct ckpt_key *k, uint64_t seq, const uint8_t hash[CKPT_HASH_LEN],
    int64_t time_ms, char *out, size_t outlen)
{
	char hhex[CKPT_HEX_HASH], tm[32], shex[2 * CKPT_SIG_LEN + 1];
	uint8_t sig[CKPT_SIG_LEN];
	size_t siglen = sizeof sig;
	EVP_MD_CTX *ctx;
	int n, ok;

	if (!k->priv || time_ms < 0 || outlen < CKPT_LINE_MAX)
		return -EINVAL;
	hex_encode(hash, CKPT_HASH_LEN, hhex);
	time_format_iso(time_ms, tm, sizeof tm);
	if (strlen(tm) != CKPT_TIME_LEN)
		return -EINVAL;
	n = snprintf(out, outlen, CKPT_MARKER "seq=%" PRIu64 " hash=%s time=%s key=%s", seq,
	    hhex, tm, k->id);
	if (n < 0 || (size_t)n + sizeof " sig=" + sizeof shex > outlen)
		return -EINVAL;
	/* Ed25519 is "pure" (RFC 8032): no digest, so md is NULL. */
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -EIO;
	ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	    EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)out, (size_t)n) == 1 &&
	    siglen == sizeof sig;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		ERR_clear_error();
		return -EIO;
	}
	hex_encode(sig, sizeof sig, shex);
	n += snprintf(out + n, outlen - (size_t)n, " sig=%s", shex);
	return n;
}

/* "NAME=" at *p (no space before it is checked here); moves past it. */
static bool ckpt_take(const char **p, const char *end, const char *name)
{
	size_t n = strlen(name);

	if ((size_t)(end - *p) < n || memcmp(*p, name, n) != 0)
		return false;
	*p += n;
	return true;
}

/* Fixed-width hex of n bytes at *p, then moves past it. */
static bool ckpt_take_hex(const char **p, const char *end, uint8_t *out, size_t n)
{
	if ((size_t)(end - *p) < 2 * n || ckpt_unhex(*p, n, out) < 0)
		return false;
	*p += 2 * n;
	return true;
}

static bool ckpt_take_seq(const char **p, const char *end, uint64_t *seq)
{
	const char *s = *p;

	*seq = 0;
	/* 0 alone, or no leading zero: one spelling per number. */
	if (s < end && *s == '0') {
		*p = s + 1;
		return true;
	}
	while (s < end && *s >= '0' && *s <= '9') {
		uint64_t d = (uint64_t)(*s - '0');

		if (*seq > (UINT64_MAX - d) / 10)
			return false;
		*seq = *seq * 10 + d;
		s++;
	}
	if (s == *p)
		return false;
	*p = s;
	return true;
}

int ckpt_parse(const char *text, size_t len, struct ckpt *out)
{
	static const size_t mlen = sizeof CKPT_MARKER - 1;
	const char *end = text + len, *start = NULL, *p;
	uint8_t keyid[CKPT_HASH_LEN];

	memset(out, 0, sizeof *out);
	for (p = text; (size_t)(end - p) >= mlen; p++) {
		p = memchr(p, 'g', (size_t)(end - p));
		if (p == NULL || (size_t)(end - p) < mlen)
			break;
		if (memcmp(p, CKPT_MARKER, mlen) == 0) {
			start = p;
			break;
		}
	}
	if (start == NULL)
		return -ENOENT;
	p = start + mlen;
	if (!ckpt_take(&p, end, "seq=") || !ckpt_take_seq(&p, end, &out->seq) ||
	    !ckpt_take(&p, end, " hash=") || !ckpt_take_hex(&p, end, out->hash, CKPT_HASH_LEN) ||
	    !ckpt_take(&p, end, " time="))
		return -EBADMSG;
	if ((size_t)(end - p) < CKPT_TIME_LEN || time_parse_iso(p, CKPT_TIME_LEN, &out->time_ms) < 0)
		return -EBADMSG;
	p += CKPT_TIME_LEN;
	if (!ckpt_take(&p, end, " key=") || !ckpt_take_hex(&p, end, keyid, sizeof keyid))
		return -EBADMSG;
	hex_encode(keyid, sizeof keyid, out->key_id);
	out->off = (size_t)(start - text);
	out->signed_len = (size_t)(p - start);
	if (!ckpt_take(&p, end, " sig=") || !ckpt_take_hex(&p, end, out->sig, CKPT_SIG_LEN))
		return -EBADMSG;
	/* What follows must not continue the signature (a 129th hex digit). */
	if (p < end && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
		return -EBADMSG;
	out->len = (size_t)(p - start);
	return 0;
}

int ckpt_verify(const struct ckpt_key *k, const char *text, const struct ckpt *c)
{
	EVP_MD_CTX *ctx;
	int rc;

	if (strcmp(c->key_id, k->id) != 0)
		return -EKEYREJECTED;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -EIO;
	if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k->pkey) != 1) {
		EVP_MD_CTX_free(ctx);
		ERR_clear_error();
		return -EIO;
	}
	rc = EVP_DigestVerify(ctx, c->sig, sizeof c->sig,
	    (const unsigned char *)text + c->off, c->signed_len);
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return rc == 1 ? 0 : -EBADMSG;
}

/* -------------------------------------------------------------- the file */

int ckpt_file_open(const char *path)
{
	struct stat st;
	/* O_NONBLOCK: a FIFO planted at path must not hang us in open(2). */
	int fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK,
	    0644);

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

int ckpt_append_fd(int fd, const char *line, size_t len)
{
	char last = '\n', buf[CKPT_LINE_MAX + 2];
	struct stat st;
	size_t n = 0;
	ssize_t w;

	if (len > CKPT_LINE_MAX)
		return -EINVAL;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size > 0 && pread(fd, &last, 1, st.st_size - 1) != 1)
		return -errno;
	if (last != '\n')
		buf[n++] = '\n';
	memcpy(buf + n, line, len);
	n += len;
	buf[n++] = '\n';
	/* One write: with O_APPEND the line lands whole after the others. */
	do
		w = write(fd, buf, n);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return -errno;
	if ((size_t)w != n)
		return -EIO;
	return fsync(fd) < 0 ? -errno : 0;
}

int ckpt_read_last(const char *path, struct ckpt *out, char *text, size_t textlen)
{
	char buf[CKPT_TAIL + 1];
	struct stat st;
	off_t from;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK), rc = -ENOENT;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	from = st.st_size > CKPT_TAIL ? st.st_size - CKPT_TAIL : 0;
	n = pread(fd, buf, CKPT_TAIL, from);
	close(fd);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	/* Lines from the end; the first one that parses is the last checkpoint. */
	for (ssize_t e = n; e > 0 && rc == -ENOENT;) {
		ssize_t s = e - 1;

		while (s > 0 && buf[s - 1] != '\n')
			s--;
		if (ckpt_parse(buf + s, (size_t)(e - s), out) == 0 && out->len < textlen) {
			memcpy(text, buf + s + out->off, out->len);
			text[out->len] = '\0';
			out->off = 0;
			rc = 0;
		}
		e = s > 0 ? s - 1 : 0;
	}
	return rc;
}
