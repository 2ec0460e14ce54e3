#ifndef GOVRELAY_TENANCY_H
#define GOVRELAY_TENANCY_H
/*
 * tenancy: the agencies (tenants) in their hierarchy, their mailboxes and
 * aliases, the users who submit mail, per-tenant policy with inheritance,
 * and the delegated operators (ARCHITECTURE.md "Tenancy"). Records live
 * in the queue's LMDB environment (layouts in queue/schema.h), are
 * written by govrelayctl and read live by govrelayd in read transactions.
 *
 * Names passed in must already be canonical (common/addr.h): domains in
 * A-label lowercase form, addresses LOCAL@DOMAIN as addr_canon returns.
 * Functions that take a `why` buffer fill it with an English reason that
 * names the offending value when they return an error.
 *
 * Errors: as queue.h, plus -EEXIST (already there), -ENOTEMPTY (a tenant
 * that still owns domains or children), -ELOOP (a parent that would make
 * a cycle).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/queue.h"

#define TENANCY_ID_MAX 64
#define TENANCY_NAME_MAX 200
#define TENANCY_DEPTH_MAX 16          /* city -> ... -> ward is 3 */
#define TENANCY_ALIAS_TARGETS_MAX 1000
#define TENANCY_ALIAS_DEPTH_MAX 8     /* levels queue_alias_expand follows */
#define TENANCY_UNIX_USER_MAX 32
#define TENANCY_POLICY_VALUE_MAX 256  /* longest normalized policy value (an address) */

/* ---------------------------------------------------------------- tenants */

struct queue_tenant {
	char *id;          /* [a-z0-9][a-z0-9._-]{0,63} */
	char *name;        /* display name, UTF-8, no control characters */
	char *parent;      /* NULL for a root (the city) */
	int64_t created;   /* unix ms */
};

/* 0 or -EINVAL (why says what is wrong with id). */
int tenancy_id_check(const char *id, char *why, size_t whylen);
/* A display name: UTF-8, 1..TENANCY_NAME_MAX bytes, no control characters. */
int tenancy_name_check(const char *name, char *why, size_t whylen);
void queue_tenant_free(struct queue_tenant *t);
/*
 * Insert or replace. The parent must exist (-ENOENT, why names it) and
 * may not be t itself or below it (-ELOOP).
 */
int queue_tenant_put(struct queue_txn *txn, const struct queue_tenant *t,
    char *why, size_t whylen);
int queue_tenant_get(struct queue_txn *txn, const char *id, struct queue_tenant **out);
/*
 * -ENOTEMPTY while the tenant owns a domain, has a child tenant, or is
 * named by an operator; why names the first one found. The tenant's own
 * policy settings go with it.
 */
int queue_tenant_delete(struct queue_txn *txn, const char *id, char *why, size_t whylen);
typedef int queue_tenant_walk_cb(void *arg, const struct queue_tenant *t);
int queue_tenant_walk(struct queue_txn *txn, queue_tenant_walk_cb *cb, void *arg);
/*
 * *within = tenant is ancestor or lies below it. -ENOENT when tenant does
 * not exist.
 */
int queue_tenant_within(struct queue_txn *txn, const char *tenant, const char *ancestor,
    bool *within);
/*
 * Depth: queue_tenant_put keeps every chain (a tenant and its ancestors,
 * including the subtree of a tenant it moves) at most TENANCY_DEPTH_MAX
 * tenants long, else -ELOOP. queue_tenant_within and
 * queue_policy_effective return -ELOOP on a longer chain, which only a
 * store edited by other means can hold.
 */

/* ------------------------------------------------- mailboxes and aliases */

/*
 * A mailbox is an address of one of our domains that accepts mail. An
 * alias is an address whose mail goes to its targets instead: mailboxes
 * of ours or external addresses. nalias_of == 0 means a plain mailbox.
 */
struct queue_mailbox {
	char *address;      /* canonical LOCAL@DOMAIN */
	char **alias_of;    /* canonical target addresses */
	size_t nalias_of;
	int64_t created;
};

void queue_mailbox_free(struct queue_mailbox *m);
/* Insert or replace. The domain must be in the domain table (-ENOENT). */
int queue_mailbox_put(struct queue_txn *txn, const struct queue_mailbox *m,
    char *why, size_t whylen);
int queue_mailbox_get(struct queue_txn *txn, const char *address, struct queue_mailbox **out);
int queue_mailbox_delete(struct queue_txn *txn, const char *address);
typedef int queue_mailbox_walk_cb(void *arg, const struct queue_mailbox *m);
/* One domain's mailboxes in address order, by a cursor range (streams). */
int queue_mailbox_walk_domain(struct queue_txn *txn, const char *domain,
    queue_mailbox_walk_cb *cb, void *arg);
int queue_mailbox_walk(struct queue_txn *txn, queue_mailbox_walk_cb *cb, void *arg);
/* Number of mailboxes of domain (so `domain remove` can refuse). */
int queue_mailbox_count_domain(struct queue_txn *txn, const char *domain, uint64_t *count);

/*
 * The final recipients of address: itself when it is a mailbox or not in
 * our table, otherwise the targets of the alias, expanded again when a
 * target is an alias itself (at most 8 levels; a loop stops there),
 * without duplicates. *out is an array of fresh strings (free with
 * rfc-style: each, then the array).
 */
int queue_alias_expand(struct queue_txn *txn, const char *address, char ***out, size_t *n);
/*
 * Details of queue_alias_expand: a target that is an alias on the current
 * expansion path (a -> b -> a, or an alias naming itself to keep a copy,
 * as Postfix's virtual(5) allows) is delivered as itself and not
 * expanded again; an address met after TENANCY_ALIAS_DEPTH_MAX levels is
 * returned as itself. Order: depth first, in target order. *n >= 1.
 */
/* Frees what queue_alias_expand returned (NULL is fine). */
void queue_alias_list_free(char **list, size_t n);

/* ------------------------------------------------------------------ users */

struct queue_user {
	char *address;     /* canonical; also their own mailbox */
	char *hash;        /* common/passwd.h text form */
	bool locked;       /* `user lock` by a postmaster */
	bool locked_out;   /* too many failed AUTH attempts */
	uint32_t failures; /* consecutive failed AUTH attempts */
	int64_t last_failure; /* unix ms, 0 if none */
	int64_t created;
};

void queue_user_free(struct queue_user *u);
/* Insert or replace. The domain must be ours (-ENOENT). */
int queue_user_put(struct queue_txn *txn, const struct queue_user *u, char *why, size_t whylen);
int queue_user_get(struct queue_txn *txn, const char *address, struct queue_user **out);
int queue_user_delete(struct queue_txn *txn, const char *address);
typedef int queue_user_walk_cb(void *arg, const struct queue_user *u);
int queue_user_walk(struct queue_txn *txn, queue_user_walk_cb *cb, void *arg);
/*
 * *ok = the user may use sender as envelope and From: address: it is
 * their own address, or an alias whose targets include their address.
 */
int queue_user_may_send_as(struct queue_txn *txn, const char *user, const char *sender,
    bool *ok);

/* ----------------------------------------------------------------- policy */

/* WORD: one of the key's words (lowercase; any case accepted on input). */
/* DLP_RULE: a "dlp_rule.NAME" key (below, "DLP rules"). */
/* ADDRESS: a canonical mail address (common/addr.h), or "none". */
enum tenancy_policy_type { TENANCY_POLICY_SIZE, TENANCY_POLICY_COUNT, TENANCY_POLICY_BOOL,
	TENANCY_POLICY_WORD, TENANCY_POLICY_DLP_RULE, TENANCY_POLICY_ADDRESS,
	TENANCY_POLICY_EXTENSIONS /* file name extensions: "iso,lnk" or "none" */ };
/* Most extensions one blocked_extensions value lists, and the longest one. */
#define TENANCY_EXTENSIONS_MAX 32
#define TENANCY_EXTENSION_LEN_MAX 16

struct tenancy_policy_key {
	const char *name;
	enum tenancy_policy_type type;
	const char *builtin;   /* effective value when no tenant sets it */
	const char *doc;
	/* WORD keys: the allowed words, NULL-terminated, tightest first. */
	const char *const *words;
};

/* The known keys, NULL-name terminated. */
extern const struct tenancy_policy_key tenancy_policy_keys[];
const struct tenancy_policy_key *tenancy_policy_key_find(const char *name);
/*
 * Checks value against key's type and writes its normal form to out
 * (sizes in bytes; counts in decimal; booleans "yes"/"no"; accepts
 * "10M", "yes"/"no"/"true"/"false"/"on"/"off"/"1"/"0"). 0 or -EINVAL.
 */
int tenancy_policy_normalize(const struct tenancy_policy_key *key, const char *value,
    char *out, size_t outlen, char *why, size_t whylen);

/*
 * An ancestor's value is a ceiling (doc/THREAT-MODEL.md): -1 when a is
 * tighter than b, 0 when the same, 1 when looser (normalized values of
 * key). Which way is tighter is one table in tenancy_policy.c; for a key
 * without a row every other value counts as looser.
 */
int tenancy_policy_compare(const struct tenancy_policy_key *key, const char *a, const char *b);
/*
 * The ceiling above tenant: its parent's effective value and the tenant
 * that set it (fresh), or -ENOENT when no ancestor sets key (a root
 * tenant, or only the builtin above).
 */
int queue_policy_ceiling(struct queue_txn *txn, const char *tenant, const char *key,
    char **value, char **source);
/*
 * value NULL removes the tenant's own setting (-ENOENT when it had none).
 * The tenant must exist (-ENOENT); an unknown key or a value its type
 * refuses is -EINVAL. The value is stored normalized. No ceiling is
 * enforced here (the store's owner may set anything): a value looser
 * than queue_policy_ceiling is stored as an exemption that
 * queue_policy_effective honours; the admin engine refuses such values
 * to delegated operators before calling this.
 */
int queue_policy_set(struct queue_txn *txn, const char *tenant, const char *key,
    const char *value);
/* The tenant's own setting, or -ENOENT. */
int queue_policy_get(struct queue_txn *txn, const char *tenant, const char *key, char **value);
/*
 * The effective value: the tenant's own, else the nearest ancestor's,
 * tightened by every ancestor's value above it up to the first exemption
 * (see queue_policy_set); else the key's builtin. *source is the tenant
 * id whose value won, or "default" for the builtin (fresh strings).
 * A key no value of which is looser than another (security_contact,
 * blocked_extensions) holds at every level at once: its value gathers
 * every setting from the tenant up (one sorted list of extensions; the
 * contacts nearest first, ", " between) and *source lists the tenants
 * that set it, nearest first, "," between.
 */
int queue_policy_effective(struct queue_txn *txn, const char *tenant, const char *key,
    char **value, char **source);
/*
 * The effective value, typed: the one parsing rule for every caller (the
 * policy checks, the session, govrelayctl). tenant NULL (an address whose
 * domain has no agency) reads the key's builtin from tenancy_policy_keys.
 * source, unless NULL, receives the tenant id that set the value or
 * "default" (truncated to sourcelen). 0; -EINVAL for an unknown key or a
 * key of the other type; -EBADMSG for a stored value that does not parse;
 * else as queue_policy_effective (-ENOENT: no such tenant).
 */
int queue_policy_bool(struct queue_txn *txn, const char *tenant, const char *key,
    bool *out, char *source, size_t sourcelen);
/* WORD keys: the word (normalized) into out. */
int queue_policy_word(struct queue_txn *txn, const char *tenant, const char *key,
    char *out, size_t outlen, char *source, size_t sourcelen);
/* Sizes (bytes) and counts. */
int queue_policy_u64(struct queue_txn *txn, const char *tenant, const char *key,
    uint64_t *out, char *source, size_t sourcelen);

/* -------------------------------------------------------------- operators */

/*
 * postmaster: the subtree's domains, mailboxes, users, policy and queue;
 * auditor: its audit trail, and the quarantine read-only; security: its
 * quarantine (list, show, release, delete; issue 11). The stored value
 * is the enum's number (schema.h).
 */
enum queue_operator_role { QUEUE_ROLE_POSTMASTER, QUEUE_ROLE_AUDITOR, QUEUE_ROLE_SECURITY };
const char *queue_role_name(enum queue_operator_role r);
/* "postmaster", "auditor" or "security": 0, else -EINVAL. */
int queue_role_parse(const char *s, enum queue_operator_role *r);
/* A unix user name [a-z_][a-z0-9_.-]{0,31}: 0 or -EINVAL with why. */
int tenancy_unix_user_check(const char *user, char *why, size_t whylen);

struct queue_operator {
	char *unix_user;
	char *tenant;
	enum queue_operator_role role;
	int64_t created;
};

void queue_operator_free(struct queue_operator *o);
/* The tenant must exist (-ENOENT). */
int queue_operator_put(struct queue_txn *txn, const struct queue_operator *o, char *why,
    size_t whylen);
int queue_operator_get(struct queue_txn *txn, const char *unix_user, struct queue_operator **out);
int queue_operator_delete(struct queue_txn *txn, const char *unix_user);
typedef int queue_operator_walk_cb(void *arg, const struct queue_operator *o);
int queue_operator_walk(struct queue_txn *txn, queue_operator_walk_cb *cb, void *arg);

/* ------------------------------------------------------------- helpers */

/*
 * Tenant owning a domain of ours: 0 with *tenant a fresh string, or NULL
 * for a domain without tenant; -ENOENT when the domain is not ours.
 */
int queue_tenant_of_domain(struct queue_txn *txn, const char *domain, char **tenant);
/* Tenant owning the domain of address (fresh string), or -ENOENT. */
int queue_tenant_of_address(struct queue_txn *txn, const char *address, char **tenant);

/* -------------------------------------------------------------- DLP rules */

/*
 * A tenant's DLP rules (issue 11) are policy keys of a family:
 *
 *   policy set TENANT dlp_rule.NAME 'action=reject threshold=3 pattern=REGEX'
 *   policy set TENANT dlp_rule.NAME 'action=quarantine threshold=5 builtin=cccd'
 *   policy unset TENANT dlp_rule.NAME
 *
 * NAME is [a-z0-9][a-z0-9_-]{0,63}. In the value, action= (reject,
 * quarantine, tag) is required, threshold= (1..1000) defaults to 1, and
 * the last field is either pattern= (PCRE2, the rest of the value
 * verbatim, spaces included, at most TENANCY_DLP_PATTERN_MAX bytes) or
 * builtin= (cccd, card: policy/dlp.h). Stored normalized: "action=A
 * threshold=N pattern=P" or "action=A threshold=N builtin=B".
 *
 * Inheritance is additive: a tenant's effective rules are its own and
 * every ancestor's (queue_policy_dlp_rules), so a descendant may add
 * rules but can neither remove an ancestor's (it is not its setting) nor
 * loosen one (a same-named rule would not replace it; admin/policy.c
 * refuses the name so that no one believes otherwise). A built-in
 * matcher is off until a rule names it. queue_policy_effective and
 * queue_policy_ceiling read one rule by its full key like any key (the
 * builtin value is "").
 *
 * Whether a pattern compiles is policy/dlp.c's to say (dlp_pattern_check,
 * which admin/policy.c calls before storing); this layer checks the
 * value's form only.
 */
#define TENANCY_DLP_PREFIX "dlp_rule."
#define TENANCY_DLP_NAME_MAX 64
#define TENANCY_DLP_PATTERN_MAX 1000
#define TENANCY_DLP_VALUE_MAX 1100      /* longest normalized rule value */
#define TENANCY_DLP_THRESHOLD_MAX 1000
#define TENANCY_DLP_RULES_PER_TENANT 20 /* own rules of one tenant */

/* The actions, strongest first, and the built-in matchers (NULL-terminated). */
extern const char *const tenancy_dlp_actions[];
extern const char *const tenancy_dlp_builtins[];
/* key is "dlp_rule." followed by a valid rule name. */
bool tenancy_dlp_key_is(const char *key);

struct queue_dlp_rule {
	char *name;          /* NAME of dlp_rule.NAME */
	char *source;        /* the tenant that set it */
	char *value;         /* normalized text */
	char action[16];     /* one of tenancy_dlp_actions */
	unsigned threshold;
	char builtin[8];     /* one of tenancy_dlp_builtins, or "" */
	char *pattern;       /* NULL for a builtin */
};

/*
 * Parses a rule value into out (name, source and value left NULL;
 * pattern fresh). 0 or -EINVAL with why naming the field.
 */
int tenancy_dlp_parse(const char *value, struct queue_dlp_rule *out, char *why, size_t whylen);
/*
 * The effective rules of tenant: every ancestor's, from the root down,
 * then its own, each in name order (fresh array; free with
 * queue_policy_dlp_free). -ENOENT (no such tenant), -ELOOP, -EBADMSG (a
 * stored value does not parse).
 */
int queue_policy_dlp_rules(struct queue_txn *txn, const char *tenant,
    struct queue_dlp_rule **out, size_t *n);
void queue_policy_dlp_free(struct queue_dlp_rule *rules, size_t n);
/* How many rules tenant sets itself. */
int queue_policy_dlp_count_own(struct queue_txn *txn, const char *tenant, size_t *n);
/*
 * The nearest tenant strictly above tenant that sets key (a dlp_rule.NAME
 * key), fresh in *owner; -ENOENT when none does.
 */
int queue_policy_dlp_owner(struct queue_txn *txn, const char *tenant, const char *key,
    char **owner);

#endif
