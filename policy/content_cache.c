/*
 * content_cache: attachment verdicts by the SHA-256 of their name and bytes
 * (policy/content_cache.h says what and when).
 *
 * Entry points: content_cache_new/free, content_cache_key,
 * content_cache_get/put.
 * OWNERSHIP: entries are copied in and out. THREADS: any, under the
 * cache's mutex (a copy of a few hundred bytes is all it guards).
 * ERRORS: none; a digest OpenSSL cannot compute is a key of zeros that
 * is never stored (content_cache_put refuses it).
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/xmalloc.h"
#include "policy/content_cache.h"

#define CONTENT_CACHE_SLOTS 1024

struct content_cache_slot {
	bool used;
	unsigned char key[32];
	struct content_cache_entry e;
};

struct content_cache {
	pthread_mutex_t mu;
	struct content_cache_slot slot[CONTENT_CACHE_SLOTS];
};

static const unsigned char content_cache_zero[32];

struct content_cache *content_cache_new(void)
{
	struct content_cache *c = xcalloc(1, sizeof *c);

	pthread_mutex_init(&c->mu, NULL);
	return c;
}

void content_cache_free(struct content_cache *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->mu);
	free(c);
}

void content_cache_key(const char *name, const char *data, size_t len, bool whole,
    const struct content_attach_rules *rules, unsigned char key[32])
{
	/* The length first, so no (data, name) pair reads as another. */
	uint64_t n64 = len;
	unsigned char tail[4] = { (unsigned char)whole, (unsigned char)rules->block,
		(unsigned char)rules->encrypted, name != NULL };
	unsigned int n = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, &n64, sizeof n64) != 1 ||
	    EVP_DigestUpdate(ctx, data, len) != 1 || EVP_DigestUpdate(ctx, tail, sizeof tail) != 1 ||
	    (name != NULL && EVP_DigestUpdate(ctx, name, strlen(name) + 1) != 1) ||
	    (rules->extensions != NULL &&
	    EVP_DigestUpdate(ctx, rules->extensions, strlen(rules->extensions)) != 1) ||
	    EVP_DigestFinal_ex(ctx, key, &n) != 1 || n != 32)
		memset(key, 0, 32);
	EVP_MD_CTX_free(ctx);
}

static struct content_cache_slot *content_cache_slot(struct content_cache *c,
    const unsigned char key[32])
{
	uint32_t h;

	memcpy(&h, key, sizeof h);
	return &c->slot[h % CONTENT_CACHE_SLOTS];
}

bool content_cache_get(struct content_cache *c, const unsigned char key[32],
    struct content_cache_entry *out)
{
	struct content_cache_slot *s;
	bool hit;

	if (c == NULL || memcmp(key, content_cache_zero, 32) == 0)
		return false;
	pthread_mutex_lock(&c->mu);
	s = content_cache_slot(c, key);
	hit = s->used && memcmp(s->key, key, 32) == 0;
	if (hit)
		*out = s->e;
	pthread_mutex_unlock(&c->mu);
	return hit;
}

void content_cache_put(struct content_cache *c, const unsigned char key[32],
    const struct content_cache_entry *e)
{
	struct content_cache_slot *s;

	if (c == NULL || memcmp(key, content_cache_zero, 32) == 0)
		return;
	pthread_mutex_lock(&c->mu);
	s = content_cache_slot(c, key);
	s->used = true;
	memcpy(s->key, key, 32);
	s->e = *e;
	pthread_mutex_unlock(&c->mu);
}
