/*
 * audit_checkpoint: the audit chain's anchor. The chain's hash is
 * unkeyed and its head lives in the same store, so whoever can write
 * data.mdb can cut the tail or recompute every hash; a checkpoint signed
 * with a key outside the store, kept in a file outside it and in syslog,
 * is what such a rewrite cannot follow (doc/govrelay.conf.5).
 *
 * Entry points: audit_ckpt_new, audit_ckpt_free, audit_ckpt_write, audit_ckpt_check,
 * audit_ckpt_is_due, audit_ckpt_daemon_set/audit_ckpt_daemon,
 * audit_ckpt_judge, audit_ckpt_verdict_name.
 * OWNERSHIP: a signer owns its key, its file descriptor and its mutex.
 * THREADS: any. The signer's mutex covers the read of the head, the
 * signature (about 50 microseconds) and the append with its fsync (a
 * millisecond or so), so concurrent callers write lines in head order.
 * None of it runs on the LMDB writer thread: the head is read in a read
 * transaction of the caller's own, and no 250 ever waits for a
 * checkpoint. The daemon calls audit_ckpt_write from the thread pool
 * (relay/checkpointer.c), never from the loop, because of the fsync.
 * ERRORS: negative errno values with an English reason.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/audit_checkpoint.h"
#include "queue/audit_query.h"

struct audit_ckpt {
	pthread_mutex_t mu;
	struct ckpt_key *key;
	char *file;
	int fd;
	/* The last checkpoint written (or found in the file at start). */
	bool have_last;
	uint64_t last_seq;
	uint8_t last_hash[CKPT_HASH_LEN];
	int64_t last_time;
};

/* Set once before any thread reads it, cleared after they are done. */
static struct audit_ckpt *audit_ckpt_the_daemon;

void audit_ckpt_daemon_set(struct audit_ckpt *c)
{
	audit_ckpt_the_daemon = c;
}

struct audit_ckpt *audit_ckpt_daemon(void)
{
	return audit_ckpt_the_daemon;
}

int audit_ckpt_new(struct ckpt_key *key, const char *file, struct audit_ckpt **out,
    char *why, size_t whylen)
{
	struct audit_ckpt *c;
	char text[CKPT_LINE_MAX];
	struct ckpt last;
	int fd;

	*out = NULL;
	fd = ckpt_file_open(file);
	if (fd < 0) {
		snprintf(why, whylen, "audit_checkpoint_file: cannot open %s for appending: %s",
		    file, fd == -EINVAL ? "not a regular file" : fd == -ELOOP ?
		    "it is a symbolic link" : strerror(-fd));
		ckpt_key_free(key);
		return fd;
	}
	c = xcalloc(1, sizeof *c);
	pthread_mutex_init(&c->mu, NULL);
	c->key = key;
	c->file = xstrdup(file);
	c->fd = fd;
	/* Another key's line (before a key change) is no "last" of ours. */
	if (ckpt_read_last(file, &last, text, sizeof text) == 0 &&
	    ckpt_verify(key, text, &last) == 0) {
		c->have_last = true;
		c->last_seq = last.seq;
		memcpy(c->last_hash, last.hash, sizeof c->last_hash);
		c->last_time = last.time_ms;
	}
	*out = c;
	return 0;
}

void audit_ckpt_free(struct audit_ckpt *c)
{
	if (c == NULL)
		return;
	if (audit_ckpt_the_daemon == c)
		audit_ckpt_the_daemon = NULL;
	close(c->fd);
	ckpt_key_free(c->key);
	free(c->file);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

const char *audit_ckpt_file(const struct audit_ckpt *c)
{
	return c->file;
}

bool audit_ckpt_is_due(struct audit_ckpt *c, uint64_t head_seq,
    const uint8_t head_hash[CKPT_HASH_LEN], int64_t now_ms, uint64_t every_records,
    uint64_t every_ms)
{
	bool due;

	pthread_mutex_lock(&c->mu);
	if (!c->have_last)
		due = head_seq > 0;
	else if (head_seq == c->last_seq && memcmp(head_hash, c->last_hash, CKPT_HASH_LEN) == 0)
		due = false; /* the head did not move: nothing new to anchor */
	else
		due = head_seq < c->last_seq || head_seq - c->last_seq >= every_records ||
		    now_ms - c->last_time >= (int64_t)every_ms || now_ms < c->last_time;
	pthread_mutex_unlock(&c->mu);
	return due;
}

/* The head, and the previous checkpoint's record judged, in one read txn. */
static int audit_ckpt_read(struct audit_ckpt *c, struct queue_store *store, uint64_t *seq,
    uint8_t hash[CKPT_HASH_LEN], struct audit_ckpt_res *res)
{
	struct queue_txn *txn;
	enum audit_ckpt_verdict v = AUDIT_CKPT_OK;
	uint8_t found[CKPT_HASH_LEN];
	int rc;

	if ((rc = queue_txn_begin(store, false, &txn)) < 0)
		return rc;
	rc = audit_head(txn, seq, hash);
	if (rc == 0 && c->have_last) {
		struct ckpt prev;

		memset(&prev, 0, sizeof prev);
		prev.seq = c->last_seq;
		memcpy(prev.hash, c->last_hash, sizeof prev.hash);
		rc = audit_ckpt_judge(txn, *seq, &prev, &v, found);
	}
	queue_txn_abort(txn);
	if (rc == 0 && v != AUDIT_CKPT_OK) {
		res->mismatch = true;
		snprintf(res->mismatch_what, sizeof res->mismatch_what,
		    "%s: the previous checkpoint names record %" PRIu64 " but the chain's head "
		    "is record %" PRIu64, audit_ckpt_verdict_name(v), c->last_seq, *seq);
	}
	return rc;
}

int audit_ckpt_check(struct audit_ckpt *c, struct queue_store *store,
    struct audit_ckpt_res *res, char *why, size_t whylen)
{
	uint8_t hash[CKPT_HASH_LEN];
	uint64_t seq = 0;
	int rc;

	memset(res, 0, sizeof *res);
	pthread_mutex_lock(&c->mu);
	rc = audit_ckpt_read(c, store, &seq, hash, res);
	pthread_mutex_unlock(&c->mu);
	if (rc < 0) {
		snprintf(why, whylen, "cannot read the audit chain's head: %s", queue_strerror(rc));
		return rc;
	}
	res->seq = seq;
	hex_encode(hash, sizeof hash, res->hash_hex);
	return 0;
}

int audit_ckpt_write(struct audit_ckpt *c, struct queue_store *store, bool force,
    struct audit_ckpt_res *res, char *why, size_t whylen)
{
	uint8_t hash[CKPT_HASH_LEN];
	uint64_t seq = 0;
	int64_t now = time_now_ms();
	int rc, n;

	memset(res, 0, sizeof *res);
	pthread_mutex_lock(&c->mu);
	if ((rc = audit_ckpt_read(c, store, &seq, hash, res)) < 0) {
		snprintf(why, whylen, "cannot read the audit chain's head: %s", queue_strerror(rc));
		goto out;
	}
	res->seq = seq;
	hex_encode(hash, sizeof hash, res->hash_hex);
	if (res->mismatch)
		log_err(NULL, "audit chain does not match the last checkpoint in %s: %s", c->file,
		    res->mismatch_what);
	if (!force && c->have_last && seq == c->last_seq &&
	    memcmp(hash, c->last_hash, sizeof hash) == 0)
		goto out;
	/* Times along the file never go back, even if the clock does. */
	if (c->have_last && now < c->last_time)
		now = c->last_time;
	if ((n = ckpt_sign(c->key, seq, hash, now, res->line, sizeof res->line)) < 0) {
		rc = n;
		snprintf(why, whylen, "cannot sign the checkpoint: %s", strerror(-n));
		res->line[0] = '\0';
		goto out;
	}
	if ((rc = ckpt_append_fd(c->fd, res->line, (size_t)n)) < 0) {
		snprintf(why, whylen, "cannot append to %s: %s", c->file, strerror(-rc));
		log_err(NULL, "audit checkpoint not written to %s: %s", c->file, strerror(-rc));
		goto out;
	}
	log_info(NULL, "audit checkpoint: %s", res->line);
	res->written = true;
	c->have_last = true;
	c->last_seq = seq;
	memcpy(c->last_hash, hash, sizeof hash);
	c->last_time = now;
out:
	pthread_mutex_unlock(&c->mu);
	return rc;
}

/* ------------------------------------------------------------- judging */

const char *audit_ckpt_verdict_name(enum audit_ckpt_verdict v)
{
	switch (v) {
	case AUDIT_CKPT_OK: return "ok";
	case AUDIT_CKPT_EMPTIED: return "emptied";
	case AUDIT_CKPT_TRUNCATED: return "truncated";
	case AUDIT_CKPT_REWRITTEN: return "rewritten";
	}
	return "unknown";
}

int audit_ckpt_judge(struct queue_txn *txn, uint64_t head_seq, const struct ckpt *k,
    enum audit_ckpt_verdict *v, uint8_t found[CKPT_HASH_LEN])
{
	static const uint8_t zero[CKPT_HASH_LEN];
	int rc;

	memset(found, 0, CKPT_HASH_LEN);
	*v = AUDIT_CKPT_OK;
	/* A checkpoint of an empty chain holds for any chain. */
	if (k->seq == 0) {
		if (memcmp(k->hash, zero, sizeof zero) != 0)
			*v = AUDIT_CKPT_REWRITTEN;
		return 0;
	}
	if (head_seq == 0) {
		*v = AUDIT_CKPT_EMPTIED;
		return 0;
	}
	if (k->seq > head_seq) {
		*v = AUDIT_CKPT_TRUNCATED;
		return 0;
	}
	rc = audit_hash_at(txn, k->seq, found);
	if (rc == -ENOENT) {
		*v = AUDIT_CKPT_TRUNCATED;
		return 0;
	}
	if (rc < 0)
		return rc;
	if (memcmp(found, k->hash, CKPT_HASH_LEN) != 0)
		*v = AUDIT_CKPT_REWRITTEN;
	return 0;
}
