/*
 * test_checkpoint: unit tests of common/checkpoint.c (keys, the signed
 * line, the file) and queue/audit_checkpoint.c (when a checkpoint is due,
 * writing one from a store's head, judging a chain against one).
 *
 * Keys are made here with EVP_PKEY_Q_keygen and written as PEM, as
 * `openssl genpkey -algorithm ed25519` would. Every test works in its
 * own mkdtemp directory, removed at the end.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "common/checkpoint.h"
#include "common/util.h"
#include "queue/audit_checkpoint.h"
#include "queue/audit_query.h"
#include "queue/queue.h"

#define TC_NOW INT64_C(1795433400123) /* 2026-11-23T11:30:00.123Z */

static int tc_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

struct tc_env {
	char dir[64];
	char key[128], pub[128], other[128], file[128];
};

static void tc_write_key(const char *path, const char *alg, bool pub, mode_t mode)
{
	EVP_PKEY *k = strcmp(alg, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048) :
	    EVP_PKEY_Q_keygen(NULL, NULL, alg);
	FILE *f;

	ck_assert_ptr_nonnull(k);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	if (pub)
		ck_assert_int_eq(PEM_write_PUBKEY(f, k), 1);
	else
		ck_assert_int_eq(PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
	ck_assert_int_eq(chmod(path, mode), 0);
	EVP_PKEY_free(k);
}

static void tc_setup(struct tc_env *e)
{
	memset(e, 0, sizeof *e);
	snprintf(e->dir, sizeof e->dir, "/tmp/test-ckpt-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(e->dir));
	snprintf(e->key, sizeof e->key, "%s/key.pem", e->dir);
	snprintf(e->pub, sizeof e->pub, "%s/pub.pem", e->dir);
	snprintf(e->other, sizeof e->other, "%s/other.pem", e->dir);
	snprintf(e->file, sizeof e->file, "%s/checkpoints", e->dir);
	tc_write_key(e->key, "ED25519", false, 0600);
	tc_write_key(e->other, "ED25519", false, 0600);
}

static void tc_teardown(struct tc_env *e)
{
	nftw(e->dir, tc_rm, 8, FTW_DEPTH | FTW_PHYS);
}

static struct ckpt_key *tc_key(const char *path)
{
	struct ckpt_key *k = NULL;
	char why[512];

	ck_assert_msg(ckpt_key_load_private(path, &k, why, sizeof why) == 0, "%s", why);
	return k;
}

/* -------------------------------------------------------------- lines */

START_TEST(test_sign_parse_verify)
{
	static const uint8_t hash[CKPT_HASH_LEN] = { 0xde, 0xad, 0xbe, 0xef };
	struct tc_env e;
	struct ckpt_key *k, *o;
	char line[CKPT_LINE_MAX], wrapped[CKPT_LINE_MAX + 64];
	struct ckpt c;
	int n;

	tc_setup(&e);
	k = tc_key(e.key);
	o = tc_key(e.other);
	ck_assert_str_ne(ckpt_key_id(k), ckpt_key_id(o));
	ck_assert_uint_eq(strlen(ckpt_key_id(k)), 64);
	n = ckpt_sign(k, 4217, hash, TC_NOW, line, sizeof line);
	ck_assert_int_gt(n, 0);
	ck_assert_uint_eq(strlen(line), (size_t)n);
	ck_assert_msg(strncmp(line, CKPT_MARKER "seq=4217 hash=deadbeef00", 42) == 0, "%s", line);
	ck_assert_ptr_nonnull(strstr(line, " time=2026-11-23T11:30:00.123Z key="));
	ck_assert_int_eq(ckpt_parse(line, (size_t)n, &c), 0);
	ck_assert_uint_eq(c.seq, 4217);
	ck_assert_int_eq(memcmp(c.hash, hash, sizeof hash), 0);
	ck_assert_int_eq(c.time_ms, TC_NOW);
	ck_assert_str_eq(c.key_id, ckpt_key_id(k));
	ck_assert_uint_eq(c.len, (size_t)n);
	ck_assert_int_eq(ckpt_verify(k, line, &c), 0);
	/* Another key: named as such, not as a bad signature. */
	ck_assert_int_eq(ckpt_verify(o, line, &c), -EKEYREJECTED);

	/* Inside a syslog line, and a JSON log's string: found and verified. */
	snprintf(wrapped, sizeof wrapped, "Dec  4 19:03:19 h govrelayd[7]: audit checkpoint: %s\"}",
	    line);
	ck_assert_int_eq(ckpt_parse(wrapped, strlen(wrapped), &c), 0);
	ck_assert_uint_eq(c.seq, 4217);
	ck_assert_int_eq(ckpt_verify(k, wrapped, &c), 0);

	/* One changed digit of seq: still a checkpoint, no longer its signature. */
	memcpy(wrapped, line, (size_t)n + 1);
	wrapped[sizeof CKPT_MARKER - 1 + 4] = '5';
	ck_assert_int_eq(ckpt_parse(wrapped, (size_t)n, &c), 0);
	ck_assert_uint_eq(c.seq, 5217);
	ck_assert_int_eq(ckpt_verify(k, wrapped, &c), -EBADMSG);
	ckpt_key_free(k);
	ckpt_key_free(o);
	tc_teardown(&e);
}
END_TEST

/* Lines that are not canonical checkpoints. */
static const struct {
	const char *label;
	const char *line;
	int rc;
} tc_bad_lines[] = {
	{ "no marker", "seq=1 hash=00", -ENOENT },
	{ "empty", "", -ENOENT },
	{ "leading zero", CKPT_MARKER "seq=01 hash=", -EBADMSG },
	{ "no seq", CKPT_MARKER "seq= hash=", -EBADMSG },
	{ "short hash", CKPT_MARKER "seq=1 hash=abc time=", -EBADMSG },
	{ "upper hex", CKPT_MARKER "seq=1 hash=ABCDEF0000000000000000000000000000000000000000000000"
	  "000000000000 time=2026-11-23T11:30:00.123Z key=", -EBADMSG },
	{ "31 April", CKPT_MARKER "seq=1 hash=00000000000000000000000000000000000000000000000000"
	  "00000000000000 time=2026-04-31T11:30:00.123Z key=", -EBADMSG },
	{ "seq overflow", CKPT_MARKER "seq=18446744073709551616 hash=", -EBADMSG },
};

START_TEST(test_parse_bad)
{
	struct ckpt c;
	const char *l = tc_bad_lines[_i].line;

	ck_assert_msg(ckpt_parse(l, strlen(l), &c) == tc_bad_lines[_i].rc, "%s",
	    tc_bad_lines[_i].label);
}
END_TEST

START_TEST(test_parse_sig_bounds)
{
	static const uint8_t hash[CKPT_HASH_LEN];
	struct tc_env e;
	struct ckpt_key *k;
	char line[CKPT_LINE_MAX + 8];
	struct ckpt c;
	int n;

	tc_setup(&e);
	k = tc_key(e.key);
	n = ckpt_sign(k, 0, hash, TC_NOW, line, CKPT_LINE_MAX);
	ck_assert_int_gt(n, 0);
	/* A 129th hex digit continues the signature: refused. */
	line[n] = 'a';
	line[n + 1] = '\0';
	ck_assert_int_eq(ckpt_parse(line, (size_t)n + 1, &c), -EBADMSG);
	/* One digit short. */
	ck_assert_int_eq(ckpt_parse(line, (size_t)n - 1, &c), -EBADMSG);
	ckpt_key_free(k);
	tc_teardown(&e);
}
END_TEST

/* --------------------------------------------------------------- keys */

START_TEST(test_key_refusals)
{
	struct tc_env e;
	struct ckpt_key *k = NULL, *p = NULL;
	char why[512], path[160];
	FILE *f;

	tc_setup(&e);
	/* Readable by others: refused, and the message says how to fix it. */
	ck_assert_int_eq(chmod(e.key, 0640), 0);
	ck_assert_int_eq(ckpt_key_load_private(e.key, &k, why, sizeof why), -EPERM);
	ck_assert_ptr_nonnull(strstr(why, "chmod 600"));
	ck_assert_int_eq(ckpt_key_check(e.key, why, sizeof why), -EPERM);
	ck_assert_int_eq(chmod(e.key, 0400), 0);
	ck_assert_int_eq(ckpt_key_check(e.key, why, sizeof why), 0);
	/* Missing. */
	snprintf(path, sizeof path, "%s/missing.pem", e.dir);
	ck_assert_int_eq(ckpt_key_load_private(path, &k, why, sizeof why), -ENOENT);
	ck_assert_ptr_nonnull(strstr(why, "missing.pem"));
	/* Not Ed25519. */
	snprintf(path, sizeof path, "%s/rsa.pem", e.dir);
	tc_write_key(path, "RSA", false, 0600);
	ck_assert_int_eq(ckpt_key_load_private(path, &k, why, sizeof why), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "RSA"));
	/* Not a key at all. */
	snprintf(path, sizeof path, "%s/junk.pem", e.dir);
	f = fopen(path, "w");
	fputs("hello\n", f);
	fclose(f);
	chmod(path, 0600);
	ck_assert_int_eq(ckpt_key_load_private(path, &k, why, sizeof why), -EINVAL);
	/* A folder. */
	ck_assert_int_eq(ckpt_key_load_private(e.dir, &k, why, sizeof why), -EINVAL);
	ck_assert_ptr_null(k);

	/* The public key verifies as the private one does, with the same id. */
	tc_write_key(e.pub, "ED25519", true, 0644);
	ck_assert_int_eq(ckpt_key_load_public(e.pub, &p, why, sizeof why), 0);
	ck_assert(!ckpt_key_is_private(p));
	ckpt_key_free(p);
	ck_assert_int_eq(ckpt_key_load_public(e.key, &p, why, sizeof why), 0);
	k = tc_key(e.key);
	ck_assert_str_eq(ckpt_key_id(p), ckpt_key_id(k));
	ckpt_key_free(p);
	ckpt_key_free(k);
	tc_teardown(&e);
}
END_TEST

/* --------------------------------------------------------------- file */

START_TEST(test_file_append_read_last)
{
	static const uint8_t hash[CKPT_HASH_LEN] = { 1 };
	struct tc_env e;
	struct ckpt_key *k;
	char line[CKPT_LINE_MAX], text[CKPT_LINE_MAX], link[160];
	struct ckpt c;
	int fd, n;

	tc_setup(&e);
	k = tc_key(e.key);
	ck_assert_int_eq(ckpt_read_last(e.file, &c, text, sizeof text), -ENOENT);
	fd = ckpt_file_open(e.file);
	ck_assert_int_ge(fd, 0);
	for (uint64_t s = 1; s <= 3; s++) {
		n = ckpt_sign(k, s, hash, TC_NOW + (int64_t)s, line, sizeof line);
		ck_assert_int_eq(ckpt_append_fd(fd, line, (size_t)n), 0);
	}
	ck_assert_int_eq(ckpt_read_last(e.file, &c, text, sizeof text), 0);
	ck_assert_uint_eq(c.seq, 3);
	ck_assert_int_eq(ckpt_verify(k, text, &c), 0);
	/* A line torn by a crash: the next checkpoint still starts a line. */
	ck_assert_int_eq(write(fd, "govrelay-audit-chec", 19), 19);
	n = ckpt_sign(k, 4, hash, TC_NOW + 4, line, sizeof line);
	ck_assert_int_eq(ckpt_append_fd(fd, line, (size_t)n), 0);
	ck_assert_int_eq(ckpt_read_last(e.file, &c, text, sizeof text), 0);
	ck_assert_uint_eq(c.seq, 4);
	ck_assert_int_eq(ckpt_verify(k, text, &c), 0);
	close(fd);
	/* A symbolic link planted at the path is refused, never followed. */
	snprintf(link, sizeof link, "%s/link", e.dir);
	ck_assert_int_eq(symlink(e.file, link), 0);
	ck_assert_int_eq(ckpt_file_open(link), -ELOOP);
	ck_assert_int_eq(ckpt_file_open(e.dir), -EISDIR);
	ckpt_key_free(k);
	tc_teardown(&e);
}
END_TEST

/* ------------------------------------------------------ against a chain */

static void tc_append(struct queue_store *st, int n)
{
	struct queue_txn *txn;

	ck_assert_int_eq(queue_txn_begin(st, true, &txn), 0);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(queue_audit_append(txn, TC_NOW, NULL, "test", NULL, 0), 0);
	ck_assert_int_eq(queue_txn_commit(txn), 0);
}

START_TEST(test_write_due_judge)
{
	struct tc_env e;
	struct queue_store *st;
	struct queue_txn *txn;
	struct audit_ckpt *c, *again;
	struct audit_ckpt_res res;
	enum audit_ckpt_verdict v;
	uint8_t hash[CKPT_HASH_LEN], found[CKPT_HASH_LEN];
	char why[512], text[CKPT_LINE_MAX];
	struct ckpt k;
	uint64_t seq;

	tc_setup(&e);
	ck_assert_int_eq(queue_store_open(e.dir, 0, false, &st), 0);
	ck_assert_int_eq(audit_ckpt_new(tc_key(e.key), e.file, &c, why, sizeof why), 0);
	memset(hash, 0, sizeof hash);
	memset(found, 0, sizeof found);
	/* Nothing to anchor yet; then 5 records: due at once (no checkpoint yet). */
	ck_assert(!audit_ckpt_is_due(c, 0, hash, TC_NOW, 3, 60000));
	tc_append(st, 5);
	ck_assert_int_eq(queue_txn_begin(st, false, &txn), 0);
	ck_assert_int_eq(audit_head(txn, &seq, hash), 0);
	queue_txn_abort(txn);
	ck_assert_uint_eq(seq, 5);
	ck_assert(audit_ckpt_is_due(c, seq, hash, TC_NOW, 3, 60000));
	ck_assert_int_eq(audit_ckpt_write(c, st, false, &res, why, sizeof why), 0);
	ck_assert(res.written);
	ck_assert_uint_eq(res.seq, 5);
	/* The head did not move: not due, not written unless forced. */
	ck_assert(!audit_ckpt_is_due(c, seq, hash, time_now_ms() + 3600000, 3, 60000));
	ck_assert_int_eq(audit_ckpt_write(c, st, false, &res, why, sizeof why), 0);
	ck_assert(!res.written);
	ck_assert_int_eq(audit_ckpt_write(c, st, true, &res, why, sizeof why), 0);
	ck_assert(res.written);
	/* Two records: fewer than 3 and the interval not passed; three: due. */
	tc_append(st, 2);
	ck_assert(!audit_ckpt_is_due(c, 7, found, time_now_ms(), 3, 60000));
	ck_assert(audit_ckpt_is_due(c, 7, found, time_now_ms() + 61000, 3, 60000));
	ck_assert(audit_ckpt_is_due(c, 8, found, time_now_ms(), 3, 60000));
	ck_assert_int_eq(audit_ckpt_write(c, st, false, &res, why, sizeof why), 0);
	ck_assert(res.written && res.seq == 7 && !res.mismatch);
	audit_ckpt_free(c);

	/* A new signer picks up the file's last checkpoint as its last. */
	ck_assert_int_eq(audit_ckpt_new(tc_key(e.key), e.file, &again, why, sizeof why), 0);
	ck_assert_int_eq(queue_txn_begin(st, false, &txn), 0);
	ck_assert_int_eq(audit_head(txn, &seq, hash), 0);
	queue_txn_abort(txn);
	ck_assert(!audit_ckpt_is_due(again, seq, hash, time_now_ms() + 86400000, 1, 1000));
	audit_ckpt_free(again);

	/* Judging: the last checkpoint (seq 7) against chains of every kind. */
	ck_assert_int_eq(ckpt_read_last(e.file, &k, text, sizeof text), 0);
	ck_assert_int_eq(queue_txn_begin(st, false, &txn), 0);
	ck_assert_int_eq(audit_ckpt_judge(txn, 7, &k, &v, found), 0);
	ck_assert_int_eq(v, AUDIT_CKPT_OK);
	ck_assert_int_eq(audit_ckpt_judge(txn, 4, &k, &v, found), 0);
	ck_assert_int_eq(v, AUDIT_CKPT_TRUNCATED);
	ck_assert_int_eq(audit_ckpt_judge(txn, 0, &k, &v, found), 0);
	ck_assert_int_eq(v, AUDIT_CKPT_EMPTIED);
	k.hash[0] ^= 1;
	ck_assert_int_eq(audit_ckpt_judge(txn, 7, &k, &v, found), 0);
	ck_assert_int_eq(v, AUDIT_CKPT_REWRITTEN);
	ck_assert_int_eq(found[0], k.hash[0] ^ 1);
	ck_assert_int_eq(audit_hash_at(txn, 99, found), -ENOENT);
	queue_txn_abort(txn);
	ck_assert_str_eq(audit_ckpt_verdict_name(AUDIT_CKPT_REWRITTEN), "rewritten");
	queue_store_close(st);
	tc_teardown(&e);
}
END_TEST

static Suite *tc_suite(void)
{
	Suite *s = suite_create("checkpoint");
	TCase *tc = tcase_create("checkpoint");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_sign_parse_verify);
	tcase_add_loop_test(tc, test_parse_bad, 0,
	    (int)(sizeof tc_bad_lines / sizeof tc_bad_lines[0]));
	tcase_add_test(tc, test_parse_sig_bounds);
	tcase_add_test(tc, test_key_refusals);
	tcase_add_test(tc, test_file_append_read_last);
	tcase_add_test(tc, test_write_due_judge);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tc_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
