#ifndef GOVRELAY_QUEUE_DKIM_H
#define GOVRELAY_QUEUE_DKIM_H
/*
 * dkim: the DKIM signing keys of our domains. The store's dkim_keys
 * database (queue/schema.h) holds one record per DOMAIN and SELECTOR:
 * algorithm, state, times and the public key; the private key is a file
 * of its own, DATA_DIR/dkim/DOMAIN/SELECTOR.pem, readable by the daemon's
 * user only, never in the store, never printed, never logged.
 *
 * States (doc/govrelayctl.8 "DKIM KEYS"):
 *   active    may sign. Of several active keys of one domain and
 *             algorithm the OLDEST signs, so a new key waits until the
 *             operator has published its DNS record and retires the old
 *             one.
 *   retiring  `dkim retire` asked for it while no other active key of its
 *             algorithm existed: it keeps signing (no gap in the
 *             signatures) until one does; the next `dkim keygen` of that
 *             algorithm makes it retired.
 *   retired   never signs again.
 * queue_dkim_signer applies that rule; admin/dkim.c makes the changes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "queue/queue.h"

#define QUEUE_DKIM_SELECTOR_MAX 63   /* one DNS label */
#define QUEUE_DKIM_RSA_BITS 2048
#define QUEUE_DKIM_PEM_MAX 16384     /* a key file longer than this is refused */
#define QUEUE_DKIM_TXT_CHUNK 255     /* RFC 1035 character-string limit */

enum queue_dkim_alg { QUEUE_DKIM_RSA, QUEUE_DKIM_ED25519 };
#define QUEUE_DKIM_NALGS 2
enum queue_dkim_state { QUEUE_DKIM_ACTIVE, QUEUE_DKIM_RETIRING, QUEUE_DKIM_RETIRED };

/* "rsa" / "ed25519"; parse takes the same words. */
const char *queue_dkim_alg_name(enum queue_dkim_alg a);
int queue_dkim_alg_parse(const char *s, enum queue_dkim_alg *a);
/* The k= tag of the DNS record and the a= of a signature. */
const char *queue_dkim_alg_sig(enum queue_dkim_alg a);
const char *queue_dkim_state_name(enum queue_dkim_state s);

struct queue_dkim_key {
	char *domain;
	char *selector;
	enum queue_dkim_alg alg;
	enum queue_dkim_state state;
	int64_t created;     /* unix ms */
	int64_t changed;     /* unix ms of the last state change */
	char *pub;           /* base64 p= value */
};
void queue_dkim_key_free(struct queue_dkim_key *k);

/*
 * A selector we accept: one DNS label, [a-z0-9] and '-' inside, at most
 * QUEUE_DKIM_SELECTOR_MAX bytes (it is also a file name, so never '/' or
 * '.'). 0 or -EINVAL with why.
 */
int queue_dkim_selector_check(const char *s, char *why, size_t whylen);

/*
 * Records. put refuses a domain that is not canonical or a bad selector
 * (-EINVAL, why). get: -ENOENT when absent. walk: domain NULL for every
 * key, else that domain's keys, in selector order; a nonzero return of
 * cb stops the walk and is returned. Keys given to cb are borrowed.
 */
int queue_dkim_put(struct queue_txn *txn, const struct queue_dkim_key *k, char *why,
    size_t whylen);
int queue_dkim_get(struct queue_txn *txn, const char *domain, const char *selector,
    struct queue_dkim_key **out);
typedef int queue_dkim_walk_cb(void *arg, const struct queue_dkim_key *k);
int queue_dkim_walk(struct queue_txn *txn, const char *domain, queue_dkim_walk_cb *cb,
    void *arg);

/*
 * The key of domain that signs with algorithm alg now (the rule above),
 * or -ENOENT. *out is a fresh record.
 */
int queue_dkim_signer(struct queue_txn *txn, const char *domain, enum queue_dkim_alg alg,
    struct queue_dkim_key **out);
/* Whether k signs now: queue_dkim_signer's rule over the domain's keys. */
int queue_dkim_is_signing(struct queue_txn *txn, const struct queue_dkim_key *k,
    bool *signing);

/*
 * A new key pair: the private key as PKCS#8 PEM into pem (never logged:
 * the caller wipes it with queue_dkim_pem_wipe) and
 * the base64 p= value into *pub (fresh). 0 or -EIO (OpenSSL failed).
 */
int queue_dkim_keygen(enum queue_dkim_alg alg, struct buf *pem, char **pub);
/* Zeroes and frees a buffer that held a private key. */
void queue_dkim_pem_wipe(struct buf *pem);

/* DATA_DIR/dkim/DOMAIN/SELECTOR.pem into out; -ENAMETOOLONG, -EINVAL. */
int queue_dkim_key_path(const char *data_dir, const char *domain, const char *selector,
    char *out, size_t outlen);
/*
 * Writes pem to a fresh temporary file next to the key's final path
 * (making DATA_DIR/dkim and DATA_DIR/dkim/DOMAIN with mode 0700 as
 * needed), mode 0600, flushed to disk; its path into tmp. Then install
 * renames it over the final path and syncs the folder (atomic: a reader
 * sees the old file or the new, whole), and discard removes it. 0 or
 * negative errno.
 */
int queue_dkim_file_stage(const char *data_dir, const char *domain, const char *selector,
    const struct buf *pem, char *tmp, size_t tmplen);
int queue_dkim_file_install(const char *tmp, const char *data_dir, const char *domain,
    const char *selector);
void queue_dkim_file_discard(const char *tmp);

/*
 * The DNS record to publish for k, one line with its final newline:
 * SELECTOR._domainkey.DOMAIN. IN TXT "v=DKIM1; k=ALG; p=..." with the
 * text split into quoted strings of at most 255 bytes. Appended to out.
 */
void queue_dkim_dns_record(const struct queue_dkim_key *k, struct buf *out);

#endif
