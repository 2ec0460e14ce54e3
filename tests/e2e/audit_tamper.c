/*
 * audit_tamper: what an attacker who can write data.mdb does to the audit
 * chain, done through LMDB itself (liblmdb, no govrelay code), so the
 * end-to-end tests can show that signed checkpoints catch it while the
 * chain alone cannot. Each change is made consistently: the meta head is
 * rewritten to match, so plain `audit verify` still says "intact".
 *
 *   audit_tamper DATA_DIR cut N     delete the last N records
 *   audit_tamper DATA_DIR rewrite   change a letter in record 1's line and
 *                                   recompute every hash after it
 *   audit_tamper DATA_DIR empty     delete every record and the head
 *
 * The layout is queue/schema.h's: db "audit", key u64 big-endian seq,
 * value prev hash (32) || hash (32) || line, hash = SHA-256(prev || line)
 * (queue/audit.c); db "meta", key "audit_head", value u64 seq || hash.
 * Run it only while govrelayd is stopped.
 * OWNERSHIP: one process, one write transaction, nothing kept.
 * THREADS: one. ERRORS: a message on stderr and exit 1; 0 when done.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>
#include <openssl/evp.h>

#include "queue/schema.h"

#define TAMPER_HASH QUEUE_AUDIT_HASH_LEN

static void tamper_die(const char *what, int rc)
{
	fprintf(stderr, "audit_tamper: %s: %s\n", what, mdb_strerror(rc));
	exit(1);
}

static uint64_t tamper_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void tamper_put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

static void tamper_sha(const uint8_t *prev, const void *line, size_t len, uint8_t *out)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;

	if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, prev, TAMPER_HASH) != 1 ||
	    EVP_DigestUpdate(ctx, line, len) != 1 || EVP_DigestFinal_ex(ctx, out, &n) != 1) {
		fprintf(stderr, "audit_tamper: SHA-256 failed\n");
		exit(1);
	}
	EVP_MD_CTX_free(ctx);
}

static void tamper_set_head(MDB_txn *txn, MDB_dbi meta, uint64_t seq, const uint8_t *hash)
{
	uint8_t head[8 + TAMPER_HASH];
	MDB_val k = { sizeof QUEUE_META_AUDIT_HEAD - 1, (void *)QUEUE_META_AUDIT_HEAD };
	MDB_val v = { sizeof head, head };
	int rc;

	if (seq == 0) {
		rc = mdb_del(txn, meta, &k, NULL);
		if (rc != 0 && rc != MDB_NOTFOUND)
			tamper_die("delete the head", rc);
		return;
	}
	tamper_put_be64(head, seq);
	memcpy(head + 8, hash, TAMPER_HASH);
	if ((rc = mdb_put(txn, meta, &k, &v, 0)) != 0)
		tamper_die("write the head", rc);
}

/* The last record's seq (0 when none). */
static uint64_t tamper_last(MDB_txn *txn, MDB_dbi audit)
{
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t seq = 0;
	int rc;

	if ((rc = mdb_cursor_open(txn, audit, &c)) != 0)
		tamper_die("cursor", rc);
	if (mdb_cursor_get(c, &k, &v, MDB_LAST) == 0)
		seq = tamper_be64(k.mv_data);
	mdb_cursor_close(c);
	return seq;
}

static void tamper_get(MDB_txn *txn, MDB_dbi audit, uint64_t seq, MDB_val *v)
{
	uint8_t key[8];
	MDB_val k = { sizeof key, key };
	int rc;

	tamper_put_be64(key, seq);
	if ((rc = mdb_get(txn, audit, &k, v)) != 0)
		tamper_die("read a record", rc);
}

static void tamper_cut(MDB_txn *txn, MDB_dbi audit, MDB_dbi meta, uint64_t n)
{
	uint64_t last = tamper_last(txn, audit);
	uint8_t key[8], hash[TAMPER_HASH];
	MDB_val k = { sizeof key, key }, v;
	int rc;

	if (n > last) {
		fprintf(stderr, "audit_tamper: the chain has only %llu records\n",
		    (unsigned long long)last);
		exit(1);
	}
	for (uint64_t s = last; s > last - n; s--) {
		tamper_put_be64(key, s);
		if ((rc = mdb_del(txn, audit, &k, NULL)) != 0)
			tamper_die("delete a record", rc);
	}
	memset(hash, 0, sizeof hash);
	if (last - n > 0) {
		tamper_get(txn, audit, last - n, &v);
		memcpy(hash, (uint8_t *)v.mv_data + TAMPER_HASH, TAMPER_HASH);
	}
	tamper_set_head(txn, meta, last - n, hash);
	printf("cut records %llu..%llu; head now %llu\n", (unsigned long long)(last - n + 1),
	    (unsigned long long)last, (unsigned long long)(last - n));
}

/* Record 1's line gets one letter's case flipped; every hash after it is recomputed. */
static void tamper_rewrite(MDB_txn *txn, MDB_dbi audit, MDB_dbi meta)
{
	uint64_t last = tamper_last(txn, audit);
	uint8_t prev[TAMPER_HASH], key[8];
	MDB_val k = { sizeof key, key }, v;
	int rc;

	memset(prev, 0, sizeof prev);
	for (uint64_t s = 1; s <= last; s++) {
		uint8_t *val;
		size_t len;

		tamper_get(txn, audit, s, &v);
		len = v.mv_size;
		val = malloc(len);
		if (val == NULL)
			exit(1);
		memcpy(val, v.mv_data, len);
		if (s == 1) {
			/* A letter in the second half of the line: the line still decodes. */
			size_t i = 2 * TAMPER_HASH + (len - 2 * TAMPER_HASH) / 2;

			while (i < len && !(val[i] >= 'a' && val[i] <= 'z'))
				i++;
			if (i == len)
				exit(1);
			val[i] ^= 0x20;
		}
		memcpy(val, prev, TAMPER_HASH);
		tamper_sha(prev, val + 2 * TAMPER_HASH, len - 2 * TAMPER_HASH, val + TAMPER_HASH);
		memcpy(prev, val + TAMPER_HASH, TAMPER_HASH);
		tamper_put_be64(key, s);
		v.mv_size = len;
		v.mv_data = val;
		if ((rc = mdb_put(txn, audit, &k, &v, 0)) != 0)
			tamper_die("write a record", rc);
		free(val);
	}
	tamper_set_head(txn, meta, last, prev);
	printf("rewrote record 1 and recomputed %llu hashes\n", (unsigned long long)last);
}

static void tamper_empty(MDB_txn *txn, MDB_dbi audit, MDB_dbi meta)
{
	int rc = mdb_drop(txn, audit, 0);

	if (rc != 0)
		tamper_die("empty the chain", rc);
	tamper_set_head(txn, meta, 0, NULL);
	printf("emptied the chain\n");
}

int main(int argc, char **argv)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi audit, meta;
	int rc;

	if (argc < 3 || (strcmp(argv[2], "cut") == 0 && argc != 4)) {
		fprintf(stderr, "usage: audit_tamper DATA_DIR cut N | rewrite | empty\n");
		return 1;
	}
	if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, 32)) != 0 ||
	    (rc = mdb_env_open(env, argv[1], 0, 0600)) != 0)
		tamper_die("open the store", rc);
	if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
		tamper_die("begin", rc);
	if ((rc = mdb_dbi_open(txn, QUEUE_DB_AUDIT, 0, &audit)) != 0 ||
	    (rc = mdb_dbi_open(txn, QUEUE_DB_META, 0, &meta)) != 0)
		tamper_die("open the databases", rc);
	if (strcmp(argv[2], "cut") == 0)
		tamper_cut(txn, audit, meta, strtoull(argv[3], NULL, 10));
	else if (strcmp(argv[2], "rewrite") == 0)
		tamper_rewrite(txn, audit, meta);
	else if (strcmp(argv[2], "empty") == 0)
		tamper_empty(txn, audit, meta);
	else
		return 1;
	if ((rc = mdb_txn_commit(txn)) != 0)
		tamper_die("commit", rc);
	mdb_env_close(env);
	return 0;
}
