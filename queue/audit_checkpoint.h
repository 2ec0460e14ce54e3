#ifndef GOVRELAY_AUDIT_CHECKPOINT_H
#define GOVRELAY_AUDIT_CHECKPOINT_H
/*
 * audit_checkpoint: signed checkpoints of the audit chain's head, and the
 * judgement of a chain against checkpoints written earlier (the line
 * format and the keys are common/checkpoint.h's).
 *
 * A signer (struct audit_ckpt) holds the Ed25519 private key, the open
 * checkpoint file and the last checkpoint written, behind a mutex: the
 * daemon's timer (relay/checkpointer.c, on the thread pool) and
 * `govrelayctl audit checkpoint` run inside the daemon (admin/audit.c, on
 * the thread pool too) share the daemon's one signer, so the file's lines
 * come in head order and "only when the head moved" holds for both.
 *
 * THREADS: any; a signer serializes itself. Reading the head is one short
 * read transaction of the caller's thread, never the writer's.
 */
#include <stdbool.h>
#include <stdint.h>

#include "common/checkpoint.h"
#include "queue/queue.h"

struct audit_ckpt;

/*
 * A signer for key (owned by the signer from now on, freed with it even
 * on failure) appending to file (opened now, kept open: a daemon that
 * later gives up root keeps writing through the same descriptor). The
 * file's last checkpoint signed by this key, if any, is the "last
 * written" that later checkpoints are compared with. 0 with *out, or
 * -errno with why.
 */
int audit_ckpt_new(struct ckpt_key *key, const char *file, struct audit_ckpt **out,
    char *why, size_t whylen);
void audit_ckpt_free(struct audit_ckpt *c);
const char *audit_ckpt_file(const struct audit_ckpt *c);

/* What one call of audit_ckpt_write did. */
struct audit_ckpt_res {
	bool written;             /* false: the head had not moved (not forced) */
	uint64_t seq;             /* the head checkpointed (or found unmoved) */
	char hash_hex[CKPT_HEX_HASH];
	char line[CKPT_LINE_MAX]; /* the line written ("" when not written) */
	/* The previous checkpoint's record no longer has its hash: alarm. */
	bool mismatch;
	char mismatch_what[200];
};

/*
 * Reads store's head in a read transaction of its own and, when force or
 * the head moved since the last checkpoint written (by seq or hash),
 * signs a checkpoint of it (time: now), appends it to the file (fsync'd)
 * and logs it at info ("audit checkpoint: LINE", so syslog holds a copy).
 * On the way it checks that the record of the previous checkpoint still
 * carries the hash that checkpoint names (res->mismatch, logged as an
 * error): a chain cut or rewritten under a running daemon is reported
 * at once. 0, or -errno with why (the file cannot be written, the store
 * cannot be read).
 */
int audit_ckpt_write(struct audit_ckpt *c, struct queue_store *store, bool force,
    struct audit_ckpt_res *res, char *why, size_t whylen);

/*
 * Only the check of audit_ckpt_write: reads the head and judges the last
 * checkpoint written against the chain (res->seq, hash_hex, mismatch).
 * Writes nothing; the daemon calls it once at start. 0 or -errno.
 */
int audit_ckpt_check(struct audit_ckpt *c, struct queue_store *store,
    struct audit_ckpt_res *res, char *why, size_t whylen);

/*
 * Whether a checkpoint is due: the head (seq) moved and either at least
 * every_records records were added since the last checkpoint written or
 * at least every_ms passed since it (now_ms, unix milliseconds). With no
 * checkpoint written yet, any head beyond 0 is due.
 */
bool audit_ckpt_is_due(struct audit_ckpt *c, uint64_t head_seq,
    const uint8_t head_hash[CKPT_HASH_LEN], int64_t now_ms, uint64_t every_records,
    uint64_t every_ms);

/*
 * The daemon's signer, for `audit checkpoint` run by the admin engine
 * inside govrelayd: set once at start-up (before the control socket
 * accepts) and cleared before it is freed at exit. One process has one
 * signing key, as it has one store; this is the only way the engine
 * (admin/, which may not include relay/) reaches it without a field in
 * every admin_io. NULL when no audit_signing_key is configured or outside
 * the daemon.
 */
void audit_ckpt_daemon_set(struct audit_ckpt *c);
struct audit_ckpt *audit_ckpt_daemon(void);

/* ------------------------------------------------------------- judging */

enum audit_ckpt_verdict {
	AUDIT_CKPT_OK,        /* the chain holds the record with that hash */
	AUDIT_CKPT_EMPTIED,   /* the chain is empty, the checkpoint is not */
	AUDIT_CKPT_TRUNCATED, /* the chain ends before the checkpoint's record */
	AUDIT_CKPT_REWRITTEN, /* the record is there with another hash */
};
const char *audit_ckpt_verdict_name(enum audit_ckpt_verdict v);

/*
 * Judges checkpoint k against the chain in txn, whose head is head_seq
 * (audit_head). found gets the record's hash when REWRITTEN. 0 with *v,
 * or -errno (the record does not decode: -EBADMSG).
 */
int audit_ckpt_judge(struct queue_txn *txn, uint64_t head_seq, const struct ckpt *k,
    enum audit_ckpt_verdict *v, uint8_t found[CKPT_HASH_LEN]);

#endif
