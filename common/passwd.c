/*
 * passwd: salted scrypt password hashes (RFC 7914) through OpenSSL 3's
 * EVP_KDF "SCRYPT", stored as "$scrypt$ln=15,r=8,p=1$<salt>$<hash>" with
 * standard padded base64 (RFC 4648 section 4, common/sasl.h).
 *
 * Entry points: passwd_hash (new hash with a fresh RAND_bytes salt),
 * passwd_verify (recompute with the stored parameters, compare with
 * CRYPTO_memcmp), passwd_dummy_verify (the same work for unknown users).
 *
 * The stored form is parsed strictly: fixed field order, decimal numbers
 * without leading zeros, parameters inside the bounds in passwd.h, a salt
 * of exactly PASSWD_SALT_LEN bytes and a hash of exactly PASSWD_KEY_LEN,
 * nothing after. Anything else is not a hash this module wrote.
 *
 * OWNERSHIP: nothing kept. Derived keys live on the stack and are wiped
 * with OPENSSL_cleanse before returning.
 * THREADS: any thread, but every call costs tens of milliseconds and
 * 128 * r * N bytes (32 MiB by default): run them on the thread pool.
 * ERRORS: -EINVAL for bad arguments or a stored string we did not write,
 * -EIO when OpenSSL fails (including running out of memory).
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "common/passwd.h"
#include "common/sasl.h"

#define PASSWD_SALT_B64_LEN (4 * ((PASSWD_SALT_LEN + 2) / 3))
#define PASSWD_KEY_B64_LEN (4 * ((PASSWD_KEY_LEN + 2) / 3))
#define PASSWD_PREFIX "$scrypt$"

/* The salt of passwd_dummy_verify: any fixed bytes do, these spell a name. */
static const unsigned char passwd_dummy_salt[PASSWD_SALT_LEN] = "govrelay-dummy!";

/* Bytes scrypt needs: V is 128 * r * N, B is 128 * r * p (RFC 7914 section 5). */
static uint64_t passwd_mem_need(unsigned ln, unsigned r, unsigned p)
{
	return 128ULL * r * ((1ULL << ln) + 2) + 128ULL * r * p;
}

static bool passwd_params_ok(unsigned ln, unsigned r, unsigned p)
{
	if (ln < PASSWD_LN_MIN || ln > PASSWD_LN_MAX || r < 1 || r > PASSWD_R_MAX ||
	    p < 1 || p > PASSWD_P_MAX)
		return false;
	return 128ULL * r * (1ULL << ln) <= PASSWD_MEM_MAX;
}

/* scrypt(password, salt, N = 2^ln, r, p) into key[0..keylen). 0 or -EIO. */
static int passwd_derive(const char *password, size_t len, const unsigned char *salt,
    size_t saltlen, unsigned ln, unsigned r, unsigned p, unsigned char *key, size_t keylen)
{
	EVP_KDF *kdf;
	EVP_KDF_CTX *ctx = NULL;
	OSSL_PARAM params[7], *pp = params;
	uint64_t n = 1ULL << ln;
	uint32_t r32 = r, p32 = p;
	/* OpenSSL's default cap is 32 MiB, exactly the default cost: add room. */
	uint64_t maxmem = passwd_mem_need(ln, r, p) + 1024 * 1024;
	int rc = -EIO;

	kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	if (kdf == NULL)
		goto out;
	ctx = EVP_KDF_CTX_new(kdf);
	if (ctx == NULL)
		goto out;
	/* An empty password still needs a valid pointer for the octet string. */
	*pp++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
	    (void *)(len > 0 ? password : ""), len);
	*pp++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen);
	*pp++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	*pp++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r32);
	*pp++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p32);
	*pp++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem);
	*pp = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, key, keylen, params) != 1) {
		OPENSSL_cleanse(key, keylen);
		goto out;
	}
	rc = 0;
out:
	EVP_KDF_CTX_free(ctx);
	EVP_KDF_free(kdf);
	return rc;
}

int passwd_hash(const char *password, size_t len, unsigned ln, char *out, size_t outlen)
{
	unsigned char salt[PASSWD_SALT_LEN], key[PASSWD_KEY_LEN];
	char salt64[PASSWD_SALT_B64_LEN + 1], key64[PASSWD_KEY_B64_LEN + 1];
	int rc, n;

	if (outlen > 0)
		out[0] = '\0';
	if (len == 0 || len > PASSWD_MAX || memchr(password, '\0', len) != NULL)
		return -EINVAL;
	if (!passwd_params_ok(ln, PASSWD_DEFAULT_R, PASSWD_DEFAULT_P))
		return -EINVAL;
	if (RAND_bytes(salt, sizeof salt) != 1)
		return -EIO;
	rc = passwd_derive(password, len, salt, sizeof salt, ln, PASSWD_DEFAULT_R,
	    PASSWD_DEFAULT_P, key, sizeof key);
	if (rc < 0)
		return rc;
	sasl_b64_encode(salt, sizeof salt, salt64);
	sasl_b64_encode(key, sizeof key, key64);
	OPENSSL_cleanse(key, sizeof key);
	n = snprintf(out, outlen, PASSWD_PREFIX "ln=%u,r=%u,p=%u$%s$%s", ln,
	    (unsigned)PASSWD_DEFAULT_R, (unsigned)PASSWD_DEFAULT_P, salt64, key64);
	OPENSSL_cleanse(key64, sizeof key64);
	if (n < 0 || (size_t)n >= outlen) {
		if (outlen > 0)
			OPENSSL_cleanse(out, outlen);
		return -EINVAL;
	}
	return 0;
}

/*
 * Reads "key=" then a decimal of 1..2 digits without a leading zero (every
 * bound in passwd.h is below 100), then the separator sep. Advances *s.
 */
static bool passwd_take_param(const char **s, const char *key, char sep, unsigned *v)
{
	size_t kl = strlen(key);
	const char *p = *s;
	unsigned val = 0;
	int digits = 0;

	if (strncmp(p, key, kl) != 0)
		return false;
	p += kl;
	if (*p == '0')
		return false;
	while (*p >= '0' && *p <= '9') {
		if (++digits > 2)
			return false;
		val = val * 10 + (unsigned)(*p - '0');
		p++;
	}
	if (digits == 0 || *p != sep)
		return false;
	*s = p + 1;
	*v = val;
	return true;
}

/* Strict parse of a stored hash. 0 or -EINVAL. */
static int passwd_parse(const char *stored, unsigned *ln, unsigned *r, unsigned *p,
    unsigned char *salt, unsigned char *key)
{
	const char *s = stored, *dollar;
	size_t got;

	if (strnlen(stored, PASSWD_HASH_MAX + 1) > PASSWD_HASH_MAX)
		return -EINVAL;
	if (strncmp(s, PASSWD_PREFIX, strlen(PASSWD_PREFIX)) != 0)
		return -EINVAL;
	s += strlen(PASSWD_PREFIX);
	if (!passwd_take_param(&s, "ln=", ',', ln) || !passwd_take_param(&s, "r=", ',', r) ||
	    !passwd_take_param(&s, "p=", '$', p))
		return -EINVAL;
	if (!passwd_params_ok(*ln, *r, *p))
		return -EINVAL;
	dollar = strchr(s, '$');
	if (dollar == NULL || (size_t)(dollar - s) != PASSWD_SALT_B64_LEN)
		return -EINVAL;
	if (sasl_b64_decode(s, PASSWD_SALT_B64_LEN, salt, PASSWD_SALT_LEN, &got) < 0 ||
	    got != PASSWD_SALT_LEN)
		return -EINVAL;
	s = dollar + 1;
	if (strlen(s) != PASSWD_KEY_B64_LEN)
		return -EINVAL;
	if (sasl_b64_decode(s, PASSWD_KEY_B64_LEN, key, PASSWD_KEY_LEN, &got) < 0 ||
	    got != PASSWD_KEY_LEN)
		return -EINVAL;
	return 0;
}

int passwd_verify(const char *password, size_t len, const char *stored, bool *ok)
{
	unsigned char salt[PASSWD_SALT_LEN], want[PASSWD_KEY_LEN], got[PASSWD_KEY_LEN];
	unsigned ln, r, p;
	int rc;

	*ok = false;
	rc = passwd_parse(stored, &ln, &r, &p, salt, want);
	if (rc < 0)
		goto out;
	/* No password we would have hashed can match; say so without the work. */
	if (len > PASSWD_MAX || memchr(password, '\0', len) != NULL)
		goto out;
	rc = passwd_derive(password, len, salt, sizeof salt, ln, r, p, got, sizeof got);
	if (rc < 0)
		goto out;
	*ok = CRYPTO_memcmp(got, want, sizeof got) == 0;
out:
	OPENSSL_cleanse(got, sizeof got);
	OPENSSL_cleanse(want, sizeof want);
	return rc;
}

void passwd_dummy_verify_cost(const char *password, size_t len, unsigned ln)
{
	unsigned char got[PASSWD_KEY_LEN];

	if (len > PASSWD_MAX)
		len = PASSWD_MAX;
	if (!passwd_params_ok(ln, PASSWD_DEFAULT_R, PASSWD_DEFAULT_P))
		ln = PASSWD_DEFAULT_LN;
	/* The result is thrown away: only the time spent matters. */
	if (passwd_derive(password, len, passwd_dummy_salt, sizeof passwd_dummy_salt,
	    ln, PASSWD_DEFAULT_R, PASSWD_DEFAULT_P, got, sizeof got) == 0)
		OPENSSL_cleanse(got, sizeof got);
}

void passwd_dummy_verify(const char *password, size_t len)
{
	passwd_dummy_verify_cost(password, len, PASSWD_DEFAULT_LN);
}
