#ifndef GOVRELAY_PASSWD_H
#define GOVRELAY_PASSWD_H
/*
 * passwd: salted, memory-hard password hashes (scrypt, RFC 7914, through
 * OpenSSL 3's EVP_KDF) in a self-describing text form, so the cost can be
 * raised later without invalidating stored hashes:
 *
 *   $scrypt$ln=15,r=8,p=1$<salt, base64>$<hash, base64>
 *
 * ln is log2(N). The salt is 16 random bytes (RAND_bytes), the hash 32.
 * Verification recomputes with the stored parameters and compares with
 * CRYPTO_memcmp (constant time). Both calls take tens of milliseconds and
 * 32 MiB: run them on the thread pool, never on the loop.
 */
#include <stdbool.h>
#include <stddef.h>

#define PASSWD_HASH_MAX 160
#define PASSWD_MAX 1024          /* longest password accepted, bytes */
#define PASSWD_DEFAULT_LN 15
#define PASSWD_DEFAULT_R 8
#define PASSWD_DEFAULT_P 1
#define PASSWD_SALT_LEN 16
#define PASSWD_KEY_LEN 32
/* Bounds a stored hash must respect (passwd_verify), and ln for passwd_hash. */
#define PASSWD_LN_MIN 10
#define PASSWD_LN_MAX 20
#define PASSWD_R_MAX 32
#define PASSWD_P_MAX 16
/* Largest scrypt memory (128 * r * 2^ln bytes) we agree to spend: 1 GiB. */
#define PASSWD_MEM_MAX (1024ULL * 1024 * 1024)

/*
 * Hash password (len bytes, 1..PASSWD_MAX, may hold any byte but NUL) with
 * N = 2^ln (PASSWD_LN_MIN..PASSWD_LN_MAX), r = 8, p = 1 into out
 * (PASSWD_HASH_MAX + 1 bytes is always enough). 0, -EINVAL, -EIO.
 */
int passwd_hash(const char *password, size_t len, unsigned ln, char *out, size_t outlen);
/*
 * *ok = password matches stored. -EINVAL when stored is not a hash this
 * module wrote (or its parameters are out of bounds: ln 10..20, r 1..32,
 * p 1..16, 128 * r * 2^ln <= PASSWD_MEM_MAX), -EIO on a library failure.
 * *ok is false on every error. A password with a NUL or longer than
 * PASSWD_MAX never matches (0, *ok false).
 */
int passwd_verify(const char *password, size_t len, const char *stored, bool *ok);
/*
 * Spends the same time as a verification against a real hash: used for
 * unknown users so the answer's timing does not tell which users exist.
 */
void passwd_dummy_verify(const char *password, size_t len);
/*
 * The same with N = 2^ln (the site's password_hash_cost, the cost its
 * users' hashes have), so an unknown user costs what a known one does;
 * an ln out of bounds falls back to PASSWD_DEFAULT_LN.
 */
void passwd_dummy_verify_cost(const char *password, size_t len, unsigned ln);

#endif
