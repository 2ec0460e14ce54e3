/*
 * dkim: the DKIM key store (queue/dkim.h): the dkim_keys records (layout
 * in queue/schema.h), the rule that picks the signing key of a domain and
 * algorithm, key generation with OpenSSL, the private key files and the
 * DNS records to publish.
 *
 * Entry points: queue_dkim_alg_name/parse/sig, queue_dkim_state_name,
 * queue_dkim_key_free, queue_dkim_selector_check, queue_dkim_put/get/walk,
 * queue_dkim_signer, queue_dkim_is_signing, queue_dkim_keygen,
 * queue_dkim_pem_wipe, queue_dkim_key_path, queue_dkim_file_stage/
 * install/discard, queue_dkim_dns_record.
 *
 * OWNERSHIP: getters return fresh records (queue_dkim_key_free accepts
 * NULL); records passed to walk callbacks are borrowed for the call.
 * Private key bytes live only in the caller's buffer and the key file;
 * buffers that held them are wiped (queue_dkim_pem_wipe), and nothing here
 * logs or prints them.
 * THREADS: any thread that owns the txn; file functions on any thread
 * (the CLI's, or a daemon pool thread running an admin command).
 * ERRORS: 0 or negative errno: -EINVAL (bad argument, write on a read
 * txn), -ENOENT, -EBADMSG (a record does not decode), -ENOSPC, -EIO, and
 * the errno of a failed file operation.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/dkim.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/schema.h"
#include "queue/tenancy_int.h"

/* ---------------------------------------------------------------- names */

const char *queue_dkim_alg_name(enum queue_dkim_alg a)
{
	return a == QUEUE_DKIM_ED25519 ? "ed25519" : "rsa";
}

int queue_dkim_alg_parse(const char *s, enum queue_dkim_alg *a)
{
	if (s != NULL && strcmp(s, "rsa") == 0) {
		*a = QUEUE_DKIM_RSA;
		return 0;
	}
	if (s != NULL && strcmp(s, "ed25519") == 0) {
		*a = QUEUE_DKIM_ED25519;
		return 0;
	}
	return -EINVAL;
}

const char *queue_dkim_alg_sig(enum queue_dkim_alg a)
{
	return a == QUEUE_DKIM_ED25519 ? "ed25519-sha256" : "rsa-sha256";
}

const char *queue_dkim_state_name(enum queue_dkim_state s)
{
	switch (s) {
	case QUEUE_DKIM_ACTIVE: return "active";
	case QUEUE_DKIM_RETIRING: return "retiring";
	case QUEUE_DKIM_RETIRED: return "retired";
	}
	return "unknown";
}

void queue_dkim_key_free(struct queue_dkim_key *k)
{
	if (k == NULL)
		return;
	free(k->domain);
	free(k->selector);
	free(k->pub);
	free(k);
}

int queue_dkim_selector_check(const char *s, char *why, size_t whylen)
{
	size_t n;

	tenancy__why_clear(why, whylen);
	if (s == NULL || s[0] == '\0')
		return tenancy__fail(why, whylen, -EINVAL, "the selector is empty");
	n = strlen(s);
	if (n > QUEUE_DKIM_SELECTOR_MAX)
		return tenancy__fail(why, whylen, -EINVAL,
		    "a selector has at most %d characters", QUEUE_DKIM_SELECTOR_MAX);
	/* One LDH label (RFC 1035 2.3.1), lowercase: it is a file name too. */
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			continue;
		if (c == '-' && i > 0 && i + 1 < n)
			continue;
		return tenancy__fail(why, whylen, -EINVAL, "a selector is one DNS label of "
		    "lowercase letters, digits and inner hyphens");
	}
	return 0;
}

/* ------------------------------------------------------------- records */

/* DOMAIN + 0x00 + SELECTOR (schema.h), or -EINVAL. */
static int queue_dkim_key(const char *domain, const char *selector, struct buf *k)
{
	if (domain == NULL || !tenancy__domain_ok(domain, strlen(domain)) ||
	    queue_dkim_selector_check(selector, NULL, 0) < 0)
		return -EINVAL;
	buf_init(k);
	buf_append(k, domain, strlen(domain));
	buf_append_char(k, '\0');
	buf_append(k, selector, strlen(selector));
	return 0;
}

static int queue_dkim_decode(const MDB_val *kv, const MDB_val *v, struct queue_dkim_key **out)
{
	struct queue_dec d = { v->mv_data, v->mv_size };
	struct queue_dkim_key *k = xcalloc(1, sizeof *k);
	uint64_t created, changed;
	uint8_t version, alg, state;
	struct buf want;
	int rc;

	*out = NULL;
	if ((rc = queue__dec_u8(&d, &version)) < 0)
		goto fail;
	rc = -EBADMSG;
	if (version != QUEUE_DKIM_ENC_VERSION)
		goto fail;
	if ((rc = queue__dec_str(&d, &k->domain)) < 0 ||
	    (rc = queue__dec_str(&d, &k->selector)) < 0 ||
	    (rc = queue__dec_u8(&d, &alg)) < 0 || (rc = queue__dec_u8(&d, &state)) < 0 ||
	    (rc = queue__dec_u64(&d, &created)) < 0 ||
	    (rc = queue__dec_u64(&d, &changed)) < 0 ||
	    (rc = queue__dec_str(&d, &k->pub)) < 0)
		goto fail;
	rc = -EBADMSG;
	if (d.left != 0 || k->pub == NULL || alg > QUEUE_DKIM_ED25519 ||
	    state > QUEUE_DKIM_RETIRED || queue_dkim_key(k->domain, k->selector, &want) < 0)
		goto fail;
	if (want.len != kv->mv_size || memcmp(want.data, kv->mv_data, want.len) != 0) {
		buf_free(&want);
		goto fail;
	}
	buf_free(&want);
	k->alg = (enum queue_dkim_alg)alg;
	k->state = (enum queue_dkim_state)state;
	k->created = (int64_t)created;
	k->changed = (int64_t)changed;
	*out = k;
	return 0;
fail:
	queue_dkim_key_free(k);
	return rc;
}

int queue_dkim_put(struct queue_txn *txn, const struct queue_dkim_key *k, char *why,
    size_t whylen)
{
	struct buf key, b;
	int rc;

	tenancy__why_clear(why, whylen);
	if ((rc = queue__need_write(txn)) < 0)
		return tenancy__fail(why, whylen, rc, "a read transaction cannot write");
	if ((rc = queue_dkim_selector_check(k->selector, why, whylen)) < 0)
		return rc;
	if (queue_dkim_key(k->domain, k->selector, &key) < 0)
		return tenancy__fail(why, whylen, -EINVAL, "not a canonical domain");
	if (k->pub == NULL || k->pub[0] == '\0' || k->alg > QUEUE_DKIM_ED25519 ||
	    k->state > QUEUE_DKIM_RETIRED) {
		buf_free(&key);
		return tenancy__fail(why, whylen, -EINVAL, "incomplete key record");
	}
	buf_init(&b);
	queue__enc_u8(&b, QUEUE_DKIM_ENC_VERSION);
	queue__enc_str(&b, k->domain);
	queue__enc_str(&b, k->selector);
	queue__enc_u8(&b, (uint8_t)k->alg);
	queue__enc_u8(&b, (uint8_t)k->state);
	queue__enc_u64(&b, (uint64_t)k->created);
	queue__enc_u64(&b, (uint64_t)k->changed);
	queue__enc_str(&b, k->pub);
	rc = tenancy__raw_put(txn, TENANCY_DB_DKIM, key.data, key.len, b.data, b.len);
	buf_free(&b);
	buf_free(&key);
	if (rc < 0)
		tenancy__fail(why, whylen, rc, "%s", queue_strerror(rc));
	return rc;
}

int queue_dkim_get(struct queue_txn *txn, const char *domain, const char *selector,
    struct queue_dkim_key **out)
{
	struct buf key;
	MDB_val k, v;
	int rc;

	*out = NULL;
	if (queue_dkim_key(domain, selector, &key) < 0)
		return -EINVAL;
	rc = tenancy__raw_get(txn, TENANCY_DB_DKIM, key.data, key.len, &v);
	if (rc == 0) {
		k.mv_size = key.len;
		k.mv_data = key.data;
		rc = queue_dkim_decode(&k, &v, out);
	}
	buf_free(&key);
	return rc;
}

struct queue_dkim_walk {
	queue_dkim_walk_cb *cb;
	void *arg;
};

static int queue_dkim_walk_one(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct queue_dkim_walk *w = arg;
	struct queue_dkim_key *key;
	int rc;

	if ((rc = queue_dkim_decode(k, v, &key)) < 0)
		return rc;
	rc = w->cb(w->arg, key);
	queue_dkim_key_free(key);
	return rc;
}

int queue_dkim_walk(struct queue_txn *txn, const char *domain, queue_dkim_walk_cb *cb,
    void *arg)
{
	struct queue_dkim_walk w = { cb, arg };
	struct buf prefix;
	int rc;

	if (domain == NULL)
		return tenancy__raw_walk(txn, TENANCY_DB_DKIM, NULL, 0, queue_dkim_walk_one, &w);
	if (!tenancy__domain_ok(domain, strlen(domain)))
		return -EINVAL;
	/* "a.b" + 0x00 is no prefix of an "a.bc" key (schema.h). */
	buf_init(&prefix);
	buf_append(&prefix, domain, strlen(domain));
	buf_append_char(&prefix, '\0');
	rc = tenancy__raw_walk(txn, TENANCY_DB_DKIM, prefix.data, prefix.len,
	    queue_dkim_walk_one, &w);
	buf_free(&prefix);
	return rc;
}

/* --------------------------------------------------------------- signer */

struct queue_dkim_pick {
	enum queue_dkim_alg alg;
	struct queue_dkim_key *oldest_active;
	struct queue_dkim_key *newest_retiring;
};

static struct queue_dkim_key *queue_dkim_copy(const struct queue_dkim_key *k)
{
	struct queue_dkim_key *c = xcalloc(1, sizeof *c);

	*c = *k;
	c->domain = xstrdup(k->domain);
	c->selector = xstrdup(k->selector);
	c->pub = xstrdup(k->pub);
	return c;
}

/* Earlier created first; the selector breaks a tie so the pick is stable. */
static bool queue_dkim_older(const struct queue_dkim_key *a, const struct queue_dkim_key *b)
{
	if (a->created != b->created)
		return a->created < b->created;
	return strcmp(a->selector, b->selector) < 0;
}

static int queue_dkim_pick_cb(void *arg, const struct queue_dkim_key *k)
{
	struct queue_dkim_pick *p = arg;

	if (k->alg != p->alg)
		return 0;
	if (k->state == QUEUE_DKIM_ACTIVE &&
	    (p->oldest_active == NULL || queue_dkim_older(k, p->oldest_active))) {
		queue_dkim_key_free(p->oldest_active);
		p->oldest_active = queue_dkim_copy(k);
	} else if (k->state == QUEUE_DKIM_RETIRING &&
	    (p->newest_retiring == NULL || queue_dkim_older(p->newest_retiring, k))) {
		queue_dkim_key_free(p->newest_retiring);
		p->newest_retiring = queue_dkim_copy(k);
	}
	return 0;
}

int queue_dkim_signer(struct queue_txn *txn, const char *domain, enum queue_dkim_alg alg,
    struct queue_dkim_key **out)
{
	struct queue_dkim_pick p = { alg, NULL, NULL };
	int rc;

	*out = NULL;
	rc = queue_dkim_walk(txn, domain, queue_dkim_pick_cb, &p);
	if (rc < 0) {
		queue_dkim_key_free(p.oldest_active);
		queue_dkim_key_free(p.newest_retiring);
		return rc;
	}
	/*
	 * The oldest active key signs: a newer one waits for its DNS record
	 * and the retirement of the old. A retiring key signs only while no
	 * active key of its algorithm exists, so a retirement never leaves
	 * the domain unsigned.
	 */
	if (p.oldest_active != NULL) {
		*out = p.oldest_active;
		queue_dkim_key_free(p.newest_retiring);
		return 0;
	}
	*out = p.newest_retiring;
	return *out != NULL ? 0 : -ENOENT;
}

int queue_dkim_is_signing(struct queue_txn *txn, const struct queue_dkim_key *k,
    bool *signing)
{
	struct queue_dkim_key *s = NULL;
	int rc = queue_dkim_signer(txn, k->domain, k->alg, &s);

	*signing = rc == 0 && strcmp(s->selector, k->selector) == 0;
	queue_dkim_key_free(s);
	return rc == -ENOENT ? 0 : rc;
}

/* -------------------------------------------------------------- keygen */

static char *queue_dkim_b64(const unsigned char *in, size_t n)
{
	char *out = xmalloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, in, (int)n);
	return out;
}

/* The p= value: raw 32 bytes for Ed25519 (RFC 8463 4.2), SPKI DER for RSA. */
static char *queue_dkim_pub(EVP_PKEY *pk, enum queue_dkim_alg alg)
{
	unsigned char raw[32], *der = NULL;
	size_t rawlen = sizeof raw;
	char *out;
	int n;

	if (alg == QUEUE_DKIM_ED25519) {
		if (EVP_PKEY_get_raw_public_key(pk, raw, &rawlen) != 1 || rawlen != 32)
			return NULL;
		return queue_dkim_b64(raw, rawlen);
	}
	n = i2d_PUBKEY(pk, &der);
	if (n <= 0)
		return NULL;
	out = queue_dkim_b64(der, (size_t)n);
	OPENSSL_free(der);
	return out;
}

int queue_dkim_keygen(enum queue_dkim_alg alg, struct buf *pem, char **pub)
{
	EVP_PKEY *pk;
	BIO *bio;
	BUF_MEM *mem = NULL;
	int rc = -EIO;

	*pub = NULL;
	if (alg == QUEUE_DKIM_ED25519)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)QUEUE_DKIM_RSA_BITS);
	if (pk == NULL)
		return -EIO;
	bio = BIO_new(BIO_s_secmem());
	if (bio == NULL)
		bio = BIO_new(BIO_s_mem());
	/* PKCS#8 without a passphrase: the file's mode is its protection. */
	if (bio != NULL && PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) == 1 &&
	    BIO_get_mem_ptr(bio, &mem) == 1 && mem != NULL &&
	    (*pub = queue_dkim_pub(pk, alg)) != NULL) {
		buf_append(pem, mem->data, mem->length);
		rc = 0;
	}
	BIO_free(bio);
	EVP_PKEY_free(pk);
	return rc;
}

void queue_dkim_pem_wipe(struct buf *pem)
{
	if (pem->data != NULL)
		OPENSSL_cleanse(pem->data, pem->len);
	buf_free(pem);
}

/* --------------------------------------------------------------- files */

int queue_dkim_key_path(const char *data_dir, const char *domain, const char *selector,
    char *out, size_t outlen)
{
	int n;

	/* Checked names: no '/', no "..", nothing a path could be bent by. */
	if (data_dir == NULL || domain == NULL ||
	    !tenancy__domain_ok(domain, strlen(domain)) ||
	    queue_dkim_selector_check(selector, NULL, 0) < 0)
		return -EINVAL;
	n = snprintf(out, outlen, "%s/dkim/%s/%s.pem", data_dir, domain, selector);
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

/* mkdir 0700 unless it is there; a non-folder in the way is refused. */
static int queue_dkim_mkdir(const char *path)
{
	struct stat st;

	if (mkdir(path, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	if (lstat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int queue_dkim_sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static int queue_dkim_write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int queue_dkim_file_stage(const char *data_dir, const char *domain, const char *selector,
    const struct buf *pem, char *tmp, size_t tmplen)
{
	char dir[4096], final[4096];
	unsigned char rnd[8];
	char hex[17];
	int fd, rc, n;

	if ((rc = queue_dkim_key_path(data_dir, domain, selector, final, sizeof final)) < 0)
		return rc;
	n = snprintf(dir, sizeof dir, "%s/dkim", data_dir);
	if (n < 0 || (size_t)n >= sizeof dir)
		return -ENAMETOOLONG;
	if ((rc = queue_dkim_mkdir(dir)) < 0)
		return rc;
	n = snprintf(dir, sizeof dir, "%s/dkim/%s", data_dir, domain);
	if (n < 0 || (size_t)n >= sizeof dir)
		return -ENAMETOOLONG;
	if ((rc = queue_dkim_mkdir(dir)) < 0)
		return rc;
	if (RAND_bytes(rnd, sizeof rnd) != 1)
		return -EIO;
	hex_encode(rnd, sizeof rnd, hex);
	n = snprintf(tmp, tmplen, "%s/.%s.pem.%s.tmp", dir, selector, hex);
	if (n < 0 || (size_t)n >= tmplen)
		return -ENAMETOOLONG;
	/* O_EXCL|O_NOFOLLOW: never through a link someone placed there. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	rc = queue_dkim_write_all(fd, pem->data, pem->len);
	if (rc == 0 && fchmod(fd, 0600) < 0)
		rc = -errno;
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

int queue_dkim_file_install(const char *tmp, const char *data_dir, const char *domain,
    const char *selector)
{
	char final[4096], dir[4096];
	int rc, n;

	if ((rc = queue_dkim_key_path(data_dir, domain, selector, final, sizeof final)) < 0)
		return rc;
	if (rename(tmp, final) < 0)
		return -errno;
	n = snprintf(dir, sizeof dir, "%s/dkim/%s", data_dir, domain);
	if (n < 0 || (size_t)n >= sizeof dir)
		return -ENAMETOOLONG;
	return queue_dkim_sync_dir(dir);
}

void queue_dkim_file_discard(const char *tmp)
{
	if (tmp != NULL && tmp[0] != '\0')
		unlink(tmp);
}

/* ------------------------------------------------------------------ dns */

void queue_dkim_dns_record(const struct queue_dkim_key *k, struct buf *out)
{
	struct buf txt;
	size_t off;

	buf_init(&txt);
	buf_printf(&txt, "v=DKIM1; k=%s; p=%s", queue_dkim_alg_name(k->alg), k->pub);
	buf_printf(out, "%s._domainkey.%s. IN TXT", k->selector, k->domain);
	/*
	 * RFC 6376 3.6.2.2: a record longer than one 255-byte
	 * character-string (an RSA-2048 key) is published as several,
	 * which resolvers and verifiers join without a separator.
	 */
	for (off = 0; off < txt.len; off += QUEUE_DKIM_TXT_CHUNK) {
		size_t n = txt.len - off;

		if (n > QUEUE_DKIM_TXT_CHUNK)
			n = QUEUE_DKIM_TXT_CHUNK;
		buf_printf(out, " \"%.*s\"", (int)n, txt.data + off);
	}
	buf_append_char(out, '\n');
	buf_free(&txt);
}
