#ifndef GOVRELAY_POLICY_DLP_H
#define GOVRELAY_POLICY_DLP_H
/*
 * dlp: a tenant's data-loss-prevention rules (issue 11, "DLP rules") over
 * the text a message carries (decoded UTF-8: the Subject, Comments,
 * Keywords and Content-Description, the display names and comments of
 * the address fields, text parts, a multipart's preamble and epilogue,
 * the text of attached documents) and
 * over attachment file names. A rule is
 * {name, pattern, action, threshold}: PCRE2 counts the pattern's matches
 * in the message, and a rule whose count reaches its threshold fires; the
 * strongest action among the rules that fired wins (reject > quarantine
 * > tag). Two built-in matchers stand in for a pattern where a regular
 * expression alone cannot say it (dlp_builtin below); they are off
 * unless a rule names them.
 *
 * A rule set is compiled once (PCRE2 with UTF and UCP, so \w, \d, \b and
 * caseless matching know Vietnamese letters; JIT when the library has
 * it) and shared read-only by every scan of every thread. Hostile
 * patterns and texts cannot hang a scan: a pattern is at most
 * DLP_PATTERN_MAX bytes and every match attempt has a match limit, a
 * depth limit and a heap limit; crossing one stops that rule for the
 * rest of the message and is reported (DLP_E_LIMIT), never a hang.
 *
 * Text and patterns are matched in Unicode NFC (utf8proc): a word typed
 * with combining marks matches the precomposed pattern and the reverse.
 * Case is as the pattern says: (?i) for any case.
 *
 * Streaming: text comes in pieces of any size. The scan copies them into
 * a window of DLP_WINDOW bytes and searches it when full, so memory is
 * fixed whatever the message (the whole text is never held). A match may
 * cross a piece or window boundary: the search uses PCRE2 hard partial
 * matching (pcre2partial(3), "multi-segment matching"), and the text from
 * the start of a partial match is kept for the next search, with up to
 * DLP_CONTEXT bytes before it for look-behind assertions. The limit: a
 * match longer than DLP_MATCH_MAX bytes is not guaranteed to be found
 * across a window boundary (a partial match longer than that is
 * dropped). Within one window (and in file names) any length matches.
 *
 * Built-in matchers:
 *   cccd  Vietnamese citizen identity number (Căn cước công dân): 12
 *         ASCII digits not part of a longer digit run, whose first three
 *         are a province code of Annex I of Circular 07/2016/TT-BCA (the
 *         63 codes 001 Hà Nội ... 096 Cà Mau, where the citizen's birth
 *         was registered) and whose fourth is the century/sex code (any
 *         digit 0-9).
 *   card  Payment card number: 13 to 19 ASCII digits, optionally in
 *         groups separated by one space or dash, not part of a longer
 *         digit run, passing the Luhn check (ISO/IEC 7812-1 Annex B).
 *
 * OWNERSHIP: definitions passed to dlp_ruleset_new are copied; a scan
 *   borrows its rule set (which must outlive it); a result's strings are
 *   the rule set's, valid while it lives.
 * THREADS: a rule set on any number of threads at once (read-only after
 *   dlp_ruleset_new); a scan on one thread at a time. No global state.
 * ERRORS: negative DLP_E_* codes with a reason in `why` where one is
 *   taken; a scan reports at the end, never fails midway.
 */
#include <stdbool.h>
#include <stddef.h>

#define DLP_NAME_MAX 64          /* bytes of a rule name */
#define DLP_PATTERN_MAX 1000     /* bytes of one pattern */
#define DLP_THRESHOLD_MAX 1000   /* thresholds are 1..DLP_THRESHOLD_MAX */
#define DLP_RULES_MAX 400        /* rules in one set (16 levels x 20 own rules fit) */
#define DLP_WINDOW 32768         /* bytes of text searched at once */
#define DLP_MATCH_MAX 1024       /* longest match found across a boundary */
#define DLP_CONTEXT 256          /* bytes kept before a match for look-behind */
#define DLP_MATCH_LIMIT 200000   /* pcre2_set_match_limit for each search */
#define DLP_DEPTH_LIMIT 2000     /* pcre2_set_depth_limit (backtracking depth) */
#define DLP_HEAP_LIMIT 4096      /* pcre2_set_heap_limit, KiB */

enum dlp_status {
	DLP_OK = 0,
	/* Apart from negative errno values, which dlp_ruleset_for_tenant also returns. */
	DLP_E_PATTERN = -1001, /* a pattern does not compile or is refused */
	DLP_E_RULE = -1002,    /* a rule definition is wrong (name, threshold, ...) */
	DLP_E_LIMIT = -1003,   /* a search crossed the match, depth or heap limit */
};

/* Ordered: a higher action is stronger. */
enum dlp_action { DLP_ACTION_NONE, DLP_ACTION_TAG, DLP_ACTION_QUARANTINE, DLP_ACTION_REJECT };
/* "tag", "quarantine", "reject" ("none"). */
const char *dlp_action_name(enum dlp_action action);
/* A word (any case) to an action other than NONE; false when it is not one. */
bool dlp_action_parse(const char *word, enum dlp_action *out);

enum dlp_builtin { DLP_BUILTIN_NONE, DLP_BUILTIN_CCCD, DLP_BUILTIN_CARD };
/* "cccd", "card" ("none"). */
const char *dlp_builtin_name(enum dlp_builtin builtin);
bool dlp_builtin_parse(const char *word, enum dlp_builtin *out);

/* One rule as a tenant wrote it: exactly one of pattern and builtin. */
struct dlp_rule_def {
	const char *name;
	const char *pattern;        /* PCRE2 syntax, UTF-8; NULL for a builtin */
	enum dlp_builtin builtin;   /* DLP_BUILTIN_NONE for a pattern */
	enum dlp_action action;     /* not NONE */
	unsigned threshold;         /* 1..DLP_THRESHOLD_MAX */
};

/*
 * A rule name as a label: 1..DLP_NAME_MAX printable ASCII characters, no
 * space (safe in logs). Which names a tenant may give is the policy
 * key's rule (queue/tenancy.h, dlp_rule.NAME), stricter than this.
 */
bool dlp_name_is_valid(const char *name);
/*
 * Whether pattern is acceptable as a rule's: at most DLP_PATTERN_MAX
 * bytes, compiles under the rule set's options, cannot match empty text
 * (it would count at every position), looks behind at most 64
 * characters. 0, or DLP_E_PATTERN with the compiler's reason and offset
 * in why.
 */
int dlp_pattern_check(const char *pattern, char *why, size_t whylen);

struct dlp_ruleset;
/*
 * Compiles n definitions (n <= DLP_RULES_MAX; 0 gives an empty set that
 * never fires). 0 with *out, or DLP_E_PATTERN / DLP_E_RULE with why
 * naming the rule.
 */
int dlp_ruleset_new(const struct dlp_rule_def *defs, size_t n, struct dlp_ruleset **out,
    char *why, size_t whylen);
/*
 * A rule set is reference-counted: dlp_ruleset_new gives one reference,
 * dlp_ruleset_ref another (any thread), dlp_ruleset_free drops one and
 * frees at the last (NULL is fine).
 */
struct dlp_ruleset *dlp_ruleset_ref(const struct dlp_ruleset *rs);
void dlp_ruleset_free(struct dlp_ruleset *rs);
size_t dlp_ruleset_count(const struct dlp_ruleset *rs);
/* Whether the rules were JIT-compiled (informational: both paths are limited). */
bool dlp_ruleset_is_jit(const struct dlp_ruleset *rs);

/* One rule that fired: its count reached its threshold. */
struct dlp_hit {
	const char *name;
	enum dlp_action action;
	unsigned count;             /* matches counted (saturates at UINT_MAX) */
	unsigned threshold;
};

struct dlp_result {
	enum dlp_action action;     /* strongest action among hits; NONE: nothing fired */
	const struct dlp_hit *hits; /* rule order; valid until the scan is freed or fed */
	size_t nhits;
	/*
	 * The first rule whose search crossed a limit (then dlp_scan_result
	 * returns DLP_E_LIMIT), else NULL. Its count stopped growing there;
	 * the caller decides (failing closed: treat as the rule firing).
	 */
	const char *limit_rule;
};

struct dlp_scan;
struct dlp_scan *dlp_scan_new(const struct dlp_ruleset *rs);
void dlp_scan_free(struct dlp_scan *scan);
/* A piece of the current text (any size, may split a UTF-8 character). */
void dlp_scan_text(struct dlp_scan *scan, const char *utf8, size_t len);
/* The current text ended (a part, a document): no match spans two texts. */
void dlp_scan_text_end(struct dlp_scan *scan);
/* A whole file name (UTF-8): searched as a text of its own. */
void dlp_scan_name(struct dlp_scan *scan, const char *utf8, size_t len);
/*
 * Ends the current text and reports every rule whose count reached its
 * threshold. DLP_OK, or DLP_E_LIMIT (out->limit_rule names the rule);
 * out is filled either way. The scan may be fed again afterwards (the
 * counts go on).
 */
int dlp_scan_result(struct dlp_scan *scan, struct dlp_result *out);
/* The count of rule i (dlp_ruleset order) so far, for tests and explain. */
unsigned dlp_scan_count(const struct dlp_scan *scan, size_t i);

/*
 * The effective rule set of a tenant (its ancestors' DLP rules and its
 * own, queue_policy_dlp_rules), compiled, for the content check. tenant
 * NULL (an address of no agency) gives an empty set. In a read txn.
 * 0 with *out; a negative errno from the store (-ENOENT: no such
 * tenant); DLP_E_PATTERN / DLP_E_RULE when a stored rule does not
 * compile (stored by other means than `policy set`), why naming it; the
 * caller fails closed (tempfail).
 */
struct queue_txn;
int dlp_ruleset_for_tenant(struct queue_txn *txn, const char *tenant,
    struct dlp_ruleset **out, char *why, size_t whylen);

/*
 * Compiling (and JIT-compiling) rules costs far more than reading their
 * texts, so the content check keeps a cache: per tenant, the compiled
 * set and the exact texts it was compiled from (every rule's source,
 * name and value: exact, not a hash a tenant could collide). Each call
 * reads the texts in the caller's read txn and compiles again only when
 * they differ, so a `policy set` takes effect on the next message. At
 * most DLP_CACHE_TENANTS tenants; the least recently used goes.
 * dlp_cache_get gives a reference (dlp_ruleset_free it after the scan);
 * errors as dlp_ruleset_for_tenant. Thread-safe (one mutex, not held
 * while reading the store or compiling).
 */
#define DLP_CACHE_TENANTS 256
struct dlp_cache;
struct dlp_cache *dlp_cache_new(void);
void dlp_cache_free(struct dlp_cache *cache);
int dlp_cache_get(struct dlp_cache *cache, struct queue_txn *txn, const char *tenant,
    struct dlp_ruleset **out, char *why, size_t whylen);

/*
 * For the tests: whether utf8 (n bytes) is NFC for certain by the ranges
 * of its characters, so normalizing it is skipped (dlp.c).
 */
bool dlp__nfc_is_quick(const char *utf8, size_t n);
#endif
