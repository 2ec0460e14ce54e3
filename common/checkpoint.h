#ifndef GOVRELAY_CHECKPOINT_H
#define GOVRELAY_CHECKPOINT_H
/*
 * checkpoint: signed anchors of the audit chain (doc/govrelay.conf.5,
 * "AUDIT CHECKPOINTS"). A checkpoint says "at TIME the chain's newest
 * record was SEQ and its hash was HASH", signed with an Ed25519 key that
 * lives outside the store, so whoever can rewrite data.mdb still cannot
 * make the chain agree with checkpoints written before the rewrite.
 *
 * One checkpoint is one line of printable ASCII, fields in this order,
 * separated by one space, lowercase hex:
 *
 *   govrelay-audit-checkpoint v1 seq=N hash=H64 time=T key=K64 sig=S128
 *
 *   seq   the newest record's sequence number (0: the chain is empty)
 *   hash  its SHA-256 chain hash (64 zeros for an empty chain)
 *   time  when the checkpoint was made, 2026-12-04T19:03:19.123Z (UTC)
 *   key   the key id: SHA-256 of the 32-byte raw Ed25519 public key
 *   sig   Ed25519 signature (RFC 8032, pure) of the line's bytes from
 *         "govrelay-audit-checkpoint" up to, not including, " sig="
 *
 * A reader finds the line by its marker anywhere in a text line, so the
 * same checkpoint copied into syslog (with the syslog prefix before it,
 * and in a JSON log a quote after it) verifies too.
 *
 * Entry points: ckpt_key_load_private, ckpt_key_check, ckpt_key_load_public,
 * ckpt_key_free, ckpt_key_id, ckpt_sign, ckpt_parse, ckpt_verify,
 * ckpt_append_fd, ckpt_file_open, ckpt_read_last.
 * OWNERSHIP: a ckpt_key owns its OpenSSL key; everything else borrowed.
 * THREADS: any; one key may sign and verify from several threads (OpenSSL
 * 3 keys are read-only once loaded).
 * ERRORS: negative errno values, with an English reason in why where a
 * person must act on it.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CKPT_MARKER "govrelay-audit-checkpoint v1 "
#define CKPT_HASH_LEN 32
#define CKPT_SIG_LEN 64
#define CKPT_HEX_HASH 65 /* 64 hex digits and NUL */
/* Longest canonical line (about 330 bytes) with room to spare. */
#define CKPT_LINE_MAX 512

struct ckpt_key;

/*
 * Loads the signing key: a PEM private key as `openssl genpkey -algorithm
 * ed25519` writes it. Refused (with why) when the file is missing or
 * unreadable, not a regular file, readable or writable by group or others
 * (only the daemon's user may read it), encrypted, not PEM, or not an
 * Ed25519 key. 0 with *out, or -ENOENT, -EACCES, -EPERM (mode), -EINVAL
 * (not a usable Ed25519 PEM key), -EIO.
 */
int ckpt_key_load_private(const char *path, struct ckpt_key **out, char *why, size_t whylen);
/* The same check without keeping the key (for the configuration check). */
int ckpt_key_check(const char *path, char *why, size_t whylen);
/*
 * Loads a key to verify with: a PEM public key (`openssl pkey -pubout`)
 * or a PEM private key (its public half is used; the mode is not checked:
 * verifying needs no secret). Same errors but no -EPERM.
 */
int ckpt_key_load_public(const char *path, struct ckpt_key **out, char *why, size_t whylen);
void ckpt_key_free(struct ckpt_key *k);
/* The key id: 64 lowercase hex digits (the line's key= field). */
const char *ckpt_key_id(const struct ckpt_key *k);
bool ckpt_key_is_private(const struct ckpt_key *k);

/* One parsed checkpoint. */
struct ckpt {
	uint64_t seq;
	uint8_t hash[CKPT_HASH_LEN];
	int64_t time_ms;
	char key_id[CKPT_HEX_HASH];
	uint8_t sig[CKPT_SIG_LEN];
	size_t off;        /* where the marker starts in the text given */
	size_t len;        /* length of the canonical line (marker .. sig) */
	size_t signed_len; /* bytes the signature covers, from off */
};

/*
 * Writes and signs the canonical line (no newline) into out, at least
 * CKPT_LINE_MAX bytes, NUL-terminated. Returns its length, or -EINVAL (a
 * public key, a bad time) or -EIO (OpenSSL failed).
 */
int ckpt_sign(const struct ckpt_key *k, uint64_t seq, const uint8_t hash[CKPT_HASH_LEN],
    int64_t time_ms, char *out, size_t outlen);
/*
 * Finds and parses a checkpoint in text[0..len) (no NUL needed). Only the
 * canonical spelling parses (fields in order, lowercase hex, no leading
 * zero in seq, a real UTC time). 0, -ENOENT when text holds no marker,
 * -EBADMSG when what follows it is not a checkpoint. Checks no signature.
 */
int ckpt_parse(const char *text, size_t len, struct ckpt *out);
/*
 * Checks c's signature (c parsed from text by ckpt_parse) with k:
 * 0, -EKEYREJECTED when c names another key id, -EBADMSG when the
 * signature does not match, -EIO.
 */
int ckpt_verify(const struct ckpt_key *k, const char *text, const struct ckpt *c);

/*
 * Opens path for appending checkpoints: O_RDWR|O_APPEND|O_CREAT with
 * O_NOFOLLOW (a symlink planted there is refused, never followed), mode
 * 0644 for a new file (a checkpoint is no secret), and it must be a
 * regular file (read access lets ckpt_append_fd see a torn last line).
 * The fd, or -errno (-EINVAL: not a regular file).
 */
int ckpt_file_open(const char *path);
/*
 * Appends line and a newline with one write(2), then fsync: 0 or -errno.
 * When the file does not end with a newline (a line torn by a crash), a
 * newline goes first, so the torn line stays alone on its line.
 */
int ckpt_append_fd(int fd, const char *line, size_t len);
/*
 * The last checkpoint line of the file at path (its last 4 KiB are read):
 * 0 with *out and the line in text (textlen >= CKPT_LINE_MAX),
 * -ENOENT (no file or no checkpoint in its tail), -errno.
 */
int ckpt_read_last(const char *path, struct ckpt *out, char *text, size_t textlen);


#endif
