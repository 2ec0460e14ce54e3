#ifndef GOVRELAY_TENANCY_INT_H
#define GOVRELAY_TENANCY_INT_H
/*
 * tenancy_int: what the tenancy files of queue/ (tenancy.c,
 * tenancy_tenant.c, tenancy_mailbox.c, tenancy_user.c, tenancy_policy.c,
 * tenancy_operator.c) share and nobody else may see (STYLE.md section
 * 2). Never include this from outside queue/; the public interface is
 * queue/tenancy.h and the record layouts are in queue/schema.h.
 *
 * Conventions of the functions below are those of tenancy.c's header:
 * 0 or negative errno, `why` may be NULL, every argument borrowed.
 */
#include <stdbool.h>
#include <stddef.h>

#include <lmdb.h>

#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/tenancy.h"

#define TENANCY_SHOWN_MAX 80         /* bytes of a value quoted in `why` */

enum tenancy_db {
	TENANCY_DB_TENANTS,
	TENANCY_DB_MAILBOXES,
	TENANCY_DB_USERS,
	TENANCY_DB_POLICIES,
	TENANCY_DB_OPERATORS,
	TENANCY_DB_DKIM,     /* queue/dkim.c */
};

/* An address split at its last '@'. */
struct tenancy_addr {
	const char *local;
	size_t llen;
	const char *domain;
	size_t dlen;
};

/* ------------------------------------------------ reasons (tenancy.c) */

/* Writes the reason into why (when there is one) and returns rc. */
int tenancy__fail(char *why, size_t whylen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void tenancy__why_clear(char *why, size_t whylen);
/* s as a reason may quote it: control bytes as '?', bounded. */
const char *tenancy__shown(const char *s, char out[TENANCY_SHOWN_MAX + 4]);

/* ------------------------------------------- raw records (tenancy.c) */

typedef int tenancy_raw_cb(void *arg, const MDB_val *k, const MDB_val *v);

int tenancy__raw_get(struct queue_txn *txn, enum tenancy_db which, const void *key,
    size_t klen, MDB_val *v);
/* put and del: the caller has checked queue__need_write. */
int tenancy__raw_put(struct queue_txn *txn, enum tenancy_db which, const void *key,
    size_t klen, const void *data, size_t len);
int tenancy__raw_del(struct queue_txn *txn, enum tenancy_db which, const void *key,
    size_t klen);
/* Every record whose key starts with prefix (plen 0: all), in key order. */
int tenancy__raw_walk(struct queue_txn *txn, enum tenancy_db which, const void *prefix,
    size_t plen, tenancy_raw_cb *cb, void *arg);
/* True when the key (not NUL-terminated) equals s. */
bool tenancy__key_is(const MDB_val *k, const char *s);

/* ------------------------------------------ keys and names (tenancy.c) */

/* A canonical (lowercase LDH, A-label) domain of 1..253 bytes. */
bool tenancy__domain_ok(const char *d, size_t len);
/* Splits a canonical LOCAL@DOMAIN at its last '@'; what names it in why. */
int tenancy__addr_split(const char *addr, const char *what, struct tenancy_addr *a,
    char *why, size_t whylen);
/* The domain of a is in the domain table (-ENOENT with why otherwise). */
int tenancy__domain_is_ours(struct queue_txn *txn, const struct tenancy_addr *a,
    char *why, size_t whylen);

/* ------------------------------------------------- tenancy_tenant.c */

/* The tenant record of a checked id (-ENOENT when absent). */
int tenancy__tenant_load(struct queue_txn *txn, const char *id, struct queue_tenant **out);
/* The parent of id into *parent (fresh, NULL for a root); -ENOENT. */
int tenancy__parent_of(struct queue_txn *txn, const char *id, char **parent);

/* ----------------------------------------------- tenancy_operator.c */

int tenancy__operator_decode(const MDB_val *k, const MDB_val *v,
    struct queue_operator **out);

/* ---------------------------------------------------- tenancy_dlp.c */

/* The row of every "dlp_rule.NAME" key (tenancy_policy_key_find). */
extern const struct tenancy_policy_key tenancy__dlp_rule_key;
/* A DLP rule value in its normal form (queue/tenancy.h): 0 or -EINVAL with why. */
int tenancy__dlp_normalize(const char *value, char *out, size_t outlen, char *why,
    size_t whylen);

#endif
