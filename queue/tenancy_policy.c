/*
 * tenancy_policy: per-tenant policy (queue/tenancy.h, layout in
 * queue/schema.h): the table of keys, normalizing a value, the stored
 * settings, and the effective value a tenant inherits from its
 * ancestors or the builtin default.
 *
 * An ancestor's value is a ceiling (doc/THREAT-MODEL.md): which way is
 * tighter is one table here (tenancy_policy_orders), the effective value
 * honours the ceiling, and a looser value set by root or the daemon's
 * user is stored with an exemption marker (a deliberate exception).
 *
 * Entry points: tenancy_policy_keys, tenancy_policy_key_find,
 * tenancy_policy_normalize, tenancy_policy_compare,
 * queue_policy_set/get/effective/ceiling, and the
 * typed getters queue_policy_bool and queue_policy_u64, which every
 * caller uses so that all read the same answer.
 *
 * OWNERSHIP: values and sources returned by set/get/effective are
 * fresh (free them); the typed getters write into the caller's buffers.
 * Every argument is borrowed.
 * THREADS: any thread that owns the txn; key_find and normalize on any
 * thread.
 * ERRORS: 0 or negative errno: -EINVAL (unknown key, bad value, or a
 * write on a read txn), -ENOENT, -ELOOP, -EBADMSG (a stored value is not
 * normalized), -ENOSPC, -EIO. tenancy_policy_normalize explains every
 * refusal in `why` (may be NULL).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/schema.h"
#include "queue/tenancy.h"
#include "queue/tenancy_int.h"

/* TENANT + 0x00 + KEY; "dlp_rule." + a 64-byte rule name is the longest KEY. */
#define TENANCY_POLICY_KEY_MAX (TENANCY_ID_MAX + 1 + 80)
#define TENANCY_POLICY_SIZE_MAX (UINT64_C(1) << 40)
#define TENANCY_POLICY_COUNT_MAX UINT64_C(1000000000)

/* ----------------------------------------------------------------- policy */

/*
 * The per-tenant keys. The builtins of max_message_size and
 * max_recipients equal the configuration defaults (INTERFACE.md), and a
 * tenant's setting can only narrow what the configuration allows.
 */
/* spf_fail_action: what an SPF fail of a stranger's domain does to mail for the tenant. */
static const char *const tenancy_spf_fail_words[] = { "reject", "tag", NULL };
/*
 * classified_action and classified_min_level: what a state-secret marking
 * (Mật, Tối mật, Tuyệt mật) does to the tenant's mail, from which level.
 * The words are in tightening order for the ceiling rule: refusing is
 * tighter than keeping the message for the security team, and a lower
 * level catches more.
 */
static const char *const tenancy_classified_action_words[] = { "reject", "quarantine", NULL };
static const char *const tenancy_classified_level_words[] = { "mat", "toi-mat", "tuyet-mat",
	NULL };
/*
 * blocked_attachments and encrypted_archive_action: the attachment rules
 * (policy/content_attach.c). An encrypted archive hides its content from
 * every check; refusing it is the tightest.
 */
static const char *const tenancy_blocked_attachment_words[] = { "executables-and-scripts",
	"executables", "none", NULL };
static const char *const tenancy_encrypted_archive_words[] = { "reject", "quarantine", "accept",
	NULL };

const struct tenancy_policy_key tenancy_policy_keys[] = {
	{ "max_message_size", TENANCY_POLICY_SIZE, "26214400",
		"largest message the tenant's users may submit, in bytes (K/M/G accepted)", NULL },
	{ "max_recipients", TENANCY_POLICY_COUNT, "100",
		"most recipients one message of the tenant's users may have", NULL },
	{ "messages_per_hour", TENANCY_POLICY_COUNT, "0",
		"messages one user of the tenant may submit per hour; 0 means unlimited", NULL },
	{ "allow_external", TENANCY_POLICY_BOOL, "yes",
		"whether the tenant's users may send to domains that are not ours", NULL },
	{ "require_tls_outbound", TENANCY_POLICY_BOOL, "no",
		"whether the tenant's mail leaves only over TLS (deferred otherwise)", NULL },
	{ "spf_fail_action", TENANCY_POLICY_WORD, "reject",
		"SPF fail for a sender domain not ours: reject (550 5.7.23) or tag "
		"(accept, the headers say fail)", tenancy_spf_fail_words },
	{ "classified_action", TENANCY_POLICY_WORD, "reject",
		"a message marked as a state secret: reject (550 5.7.1) or quarantine (kept "
		"for the security team)", tenancy_classified_action_words },
	{ "classified_min_level", TENANCY_POLICY_WORD, "mat",
		"the lowest state-secret level acted on: mat (Mật), toi-mat (Tối mật) or "
		"tuyet-mat (Tuyệt mật)", tenancy_classified_level_words },
	{ "blocked_attachments", TENANCY_POLICY_WORD, "executables-and-scripts",
		"attachments refused by their content or name, inside archives too: "
		"executables-and-scripts, executables or none", tenancy_blocked_attachment_words },
	{ "encrypted_archive_action", TENANCY_POLICY_WORD, "reject",
		"an encrypted archive (its content hidden from every check): reject, quarantine "
		"or accept", tenancy_encrypted_archive_words },
	{ "blocked_extensions", TENANCY_POLICY_EXTENSIONS, "none",
		"file name extensions refused besides blocked_attachments (.iso, .lnk, .docm), "
		"inside archives too, comma-separated, or none; each agency adds to its "
		"ancestors' list, never removes from it", NULL },
	{ "security_contact", TENANCY_POLICY_ADDRESS, "none",
		"the address of the tenant's security team: a notice goes there when mail "
		"concerning the tenant (or a tenant below it) is refused as a state secret; "
		"none for no notice", NULL },
	{ NULL, TENANCY_POLICY_COUNT, NULL, NULL, NULL },
};

const struct tenancy_policy_key *tenancy_policy_key_find(const char *name)
{
	if (name == NULL)
		return NULL;
	for (const struct tenancy_policy_key *k = tenancy_policy_keys; k->name != NULL; k++) {
		if (strcmp(k->name, name) == 0)
			return k;
	}
	/* The family of DLP rules, "dlp_rule.NAME" (tenancy_dlp.c). */
	if (tenancy_dlp_key_is(name))
		return &tenancy__dlp_rule_key;
	return NULL;
}

/*
 * Which way is tighter, per key: the one table of the ceiling rule
 * (doc/THREAT-MODEL.md). A key without a row here is unordered: a
 * descendant may only repeat an ancestor's value, never change it.
 */
enum tenancy_policy_order {
	TENANCY_ORDER_NONE,          /* unordered: any other value is looser */
	TENANCY_ORDER_LOWER,         /* a smaller number is tighter */
	TENANCY_ORDER_LOWER_NONZERO, /* smaller is tighter, and 0 means unlimited */
	TENANCY_ORDER_NO,            /* "no" is tighter than "yes" */
	TENANCY_ORDER_YES,           /* "yes" is tighter than "no" */
	TENANCY_ORDER_WORDS,         /* a word earlier in the key's list is tighter */
	/*
	 * No value is looser than another: each tenant names its own, and
	 * an ancestor's still holds for the subtree (security_contact: the
	 * notice goes to every contact up the tree).
	 */
	TENANCY_ORDER_ANY,
};

static const struct {
	const char *key;
	enum tenancy_policy_order order;
} tenancy_policy_orders[] = {
	{ "max_message_size", TENANCY_ORDER_LOWER },
	{ "max_recipients", TENANCY_ORDER_LOWER },
	{ "messages_per_hour", TENANCY_ORDER_LOWER_NONZERO },
	{ "allow_external", TENANCY_ORDER_NO },
	{ "require_tls_outbound", TENANCY_ORDER_YES },
	{ "spf_fail_action", TENANCY_ORDER_WORDS },     /* reject is tighter than tag */
	{ "classified_action", TENANCY_ORDER_WORDS },   /* reject, then quarantine */
	{ "classified_min_level", TENANCY_ORDER_WORDS },  /* mat catches the most */
	{ "blocked_attachments", TENANCY_ORDER_WORDS },
	{ "encrypted_archive_action", TENANCY_ORDER_WORDS },
	{ "security_contact", TENANCY_ORDER_ANY },
	/* Each tenant's list adds to its ancestors' (queue_policy_effective gathers them). */
	{ "blocked_extensions", TENANCY_ORDER_ANY },
};

static enum tenancy_policy_order tenancy_policy_order_of(const struct tenancy_policy_key *key)
{
	for (size_t i = 0; i < sizeof tenancy_policy_orders / sizeof tenancy_policy_orders[0];
	    i++)
		if (strcmp(tenancy_policy_orders[i].key, key->name) == 0)
			return tenancy_policy_orders[i].order;
	return TENANCY_ORDER_NONE;
}

static bool tenancy_parse_decimal(const char *s, size_t len, uint64_t max, uint64_t *v);

/* Index of word (any case) in key's words, or -1. */
static long tenancy_word_index(const struct tenancy_policy_key *key, const char *word)
{
	for (long i = 0; key->words != NULL && key->words[i] != NULL; i++)
		if (str_ieq(word, key->words[i]))
			return i;
	return -1;
}

int tenancy_policy_compare(const struct tenancy_policy_key *key, const char *a, const char *b)
{
	enum tenancy_policy_order o = tenancy_policy_order_of(key);
	uint64_t x, y;

	if (strcmp(a, b) == 0)
		return 0;
	switch (o) {
	case TENANCY_ORDER_LOWER:
	case TENANCY_ORDER_LOWER_NONZERO:
		/* Normalized values are decimal; anything else is looser (refused). */
		if (!tenancy_parse_decimal(a, strlen(a), TENANCY_POLICY_SIZE_MAX, &x) ||
		    !tenancy_parse_decimal(b, strlen(b), TENANCY_POLICY_SIZE_MAX, &y))
			return 1;
		if (o == TENANCY_ORDER_LOWER_NONZERO) {
			x = x == 0 ? UINT64_MAX : x;
			y = y == 0 ? UINT64_MAX : y;
		}
		return x < y ? -1 : x > y ? 1 : 0;
	case TENANCY_ORDER_NO:
		return strcmp(a, "no") == 0 ? -1 : 1;
	case TENANCY_ORDER_YES:
		return strcmp(a, "yes") == 0 ? -1 : 1;
	case TENANCY_ORDER_WORDS: {
		long ia = tenancy_word_index(key, a), ib = tenancy_word_index(key, b);

		/* An unknown word is looser than any known one. */
		if (ia < 0)
			return 1;
		if (ib < 0)
			return -1;
		return ia < ib ? -1 : ia > ib ? 1 : 0;
	}
	case TENANCY_ORDER_ANY:
		return 0;
	default:
		return 1;
	}
}

/* Decimal digits into *v, refusing anything above max (no sign, no space). */
static bool tenancy_parse_decimal(const char *s, size_t len, uint64_t max, uint64_t *v)
{
	uint64_t x = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		x = x * 10 + (uint64_t)(s[i] - '0');
		/* max < 2^60, so one more digit cannot wrap before this check. */
		if (x > max)
			return false;
	}
	*v = x;
	return true;
}

/* strcmp for qsort over an array of strings. */
static int tenancy_str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * blocked_extensions: "none", or extensions separated by commas or white
 * space, each with or without its "." or "*." (".ISO, *.lnk docm"); the
 * normal form is lowercased, sorted, each once: "docm,iso,lnk".
 */
static int tenancy_extensions_normalize(const struct tenancy_policy_key *key, const char *value,
    char *out, size_t outlen, char *why, size_t whylen)
{
	char items[TENANCY_EXTENSIONS_MAX][TENANCY_EXTENSION_LEN_MAX + 1];
	char ext[TENANCY_EXTENSION_LEN_MAX + 1];
	const char *sorted[TENANCY_EXTENSIONS_MAX];
	char shown[TENANCY_SHOWN_MAX + 4];
	size_t n = 0, used = 0;
	const char *p = value;

	if (str_ieq(value, "none"))
		return snprintf(out, outlen, "none") < (int)outlen ? 0 :
		    tenancy__fail(why, whylen, -EINVAL, "%s: no room for the value", key->name);
	while (*p != '\0') {
		size_t len = 0;
		bool dup = false;

		while (*p == ',' || *p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if (p[0] == '*' && p[1] == '.')
			p++;
		if (*p == '.')
			p++;
		while (p[len] != '\0' && p[len] != ',' && p[len] != ' ' && p[len] != '\t')
			len++;
		if (len == 0 || len > TENANCY_EXTENSION_LEN_MAX)
			return tenancy__fail(why, whylen, -EINVAL, "%s: '%s': each extension is 1 to "
			    "%d letters, digits, '-' or '_', as in .iso or docm", key->name,
			    tenancy__shown(value, shown), TENANCY_EXTENSION_LEN_MAX);
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)p[i];

			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '_'))
				return tenancy__fail(why, whylen, -EINVAL, "%s: '%s': an extension is "
				    "made of letters, digits, '-' and '_' (as in .iso or docm)",
				    key->name, tenancy__shown(value, shown));
			ext[i] = (char)c;
		}
		ext[len] = '\0';
		str_lower(ext);
		p += len;
		for (size_t k = 0; k < n && !dup; k++)
			dup = strcmp(items[k], ext) == 0;
		if (dup)
			continue;
		if (n == TENANCY_EXTENSIONS_MAX)
			return tenancy__fail(why, whylen, -EINVAL, "%s: more than %d extensions",
			    key->name, TENANCY_EXTENSIONS_MAX);
		memcpy(items[n++], ext, len + 1);
	}
	if (n == 0)
		return tenancy__fail(why, whylen, -EINVAL, "%s: no extension given (or none)",
		    key->name);
	for (size_t i = 0; i < n; i++)
		sorted[i] = items[i];
	qsort(sorted, n, sizeof sorted[0], tenancy_str_cmp);
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(out + used, outlen - used, "%s%s", i > 0 ? "," : "", sorted[i]);

		if (w < 0 || (size_t)w >= outlen - used)
			return tenancy__fail(why, whylen, -EINVAL, "%s: no room for the value",
			    key->name);
		used += (size_t)w;
	}
	return 0;
}

int tenancy_policy_normalize(const struct tenancy_policy_key *key, const char *value,
    char *out, size_t outlen, char *why, size_t whylen)
{
	static const struct {
		const char *word;
		bool yes;
	} words[] = {
		{ "yes", true }, { "true", true }, { "on", true }, { "1", true },
		{ "no", false }, { "false", false }, { "off", false }, { "0", false },
	};
	char shown[TENANCY_SHOWN_MAX + 4];
	uint64_t v, mult = 1;
	size_t len;
	int n;

	tenancy__why_clear(why, whylen);
	if (key == NULL)
		return tenancy__fail(why, whylen, -EINVAL, "unknown policy key");
	if (value == NULL || value[0] == '\0')
		return tenancy__fail(why, whylen, -EINVAL, "%s: empty value", key->name);
	len = strlen(value);
	switch (key->type) {
	case TENANCY_POLICY_SIZE:
		/* 1024-based, as sizes of mail are counted everywhere else here. */
		switch (value[len - 1]) {
		case 'k': case 'K': mult = UINT64_C(1) << 10; break;
		case 'm': case 'M': mult = UINT64_C(1) << 20; break;
		case 'g': case 'G': mult = UINT64_C(1) << 30; break;
		default: break;
		}
		if (mult > 1)
			len--;
		if (!tenancy_parse_decimal(value, len, TENANCY_POLICY_SIZE_MAX, &v) ||
		    v == 0 || v > TENANCY_POLICY_SIZE_MAX / mult)
			return tenancy__fail(why, whylen, -EINVAL,
			    "%s: '%s' is not a size from 1 byte to 1T (a number of bytes, "
			    "or with K, M or G)", key->name, tenancy__shown(value, shown));
		n = snprintf(out, outlen, "%" PRIu64, v * mult);
		break;
	case TENANCY_POLICY_COUNT:
		if (!tenancy_parse_decimal(value, len, TENANCY_POLICY_COUNT_MAX, &v))
			return tenancy__fail(why, whylen, -EINVAL,
			    "%s: '%s' is not a whole number from 0 to 1000000000", key->name,
			    tenancy__shown(value, shown));
		n = snprintf(out, outlen, "%" PRIu64, v);
		break;
	case TENANCY_POLICY_BOOL:
		n = -1;
		for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
			if (str_ieq(value, words[i].word)) {
				n = snprintf(out, outlen, "%s", words[i].yes ? "yes" : "no");
				break;
			}
		}
		if (n < 0)
			return tenancy__fail(why, whylen, -EINVAL,
			    "%s: '%s' is not yes or no", key->name, tenancy__shown(value, shown));
		break;
	case TENANCY_POLICY_WORD: {
		long i = tenancy_word_index(key, value);
		char list[128] = "";

		if (i < 0) {
			for (size_t w = 0; key->words[w] != NULL; w++) {
				size_t at = strlen(list);

				snprintf(list + at, sizeof list - at, "%s%s", w > 0 ? ", " : "",
				    key->words[w]);
			}
			return tenancy__fail(why, whylen, -EINVAL, "%s: '%s' is not one of: %s",
			    key->name, tenancy__shown(value, shown), list);
		}
		n = snprintf(out, outlen, "%s", key->words[i]);
		break;
	}
	case TENANCY_POLICY_ADDRESS: {
		char canon[ADDR_MAX + 1];
		const char *bad = NULL;

		if (str_ieq(value, "none")) {
			n = snprintf(out, outlen, "none");
			break;
		}
		if (addr_canon(value, canon, sizeof canon, &bad) < 0)
			return tenancy__fail(why, whylen, -EINVAL,
			    "%s: '%s' is not a mail address (local@domain) or none: %s", key->name,
			    tenancy__shown(value, shown), bad != NULL ? bad : "invalid");
		n = snprintf(out, outlen, "%s", canon);
		break;
	}
	case TENANCY_POLICY_DLP_RULE:
		return tenancy__dlp_normalize(value, out, outlen, why, whylen);
	case TENANCY_POLICY_EXTENSIONS:
		return tenancy_extensions_normalize(key, value, out, outlen, why, whylen);
	default:
		return tenancy__fail(why, whylen, -EINVAL, "%s: unknown type", key->name);
	}
	if (n < 0 || (size_t)n >= outlen)
		return tenancy__fail(why, whylen, -EINVAL, "%s: no room for the value", key->name);
	return 0;
}

/* The policies key TENANT + 0x00 + KEY (schema.h). */
static int tenancy_policy_dbkey(const char *tenant, const char *key,
    char out[TENANCY_POLICY_KEY_MAX], size_t *len)
{
	size_t tl, kl;
	int rc;

	if ((rc = tenancy_id_check(tenant, NULL, 0)) < 0)
		return rc;
	if (tenancy_policy_key_find(key) == NULL)
		return -EINVAL;
	tl = strlen(tenant);
	kl = strlen(key);
	if (tl + 1 + kl > TENANCY_POLICY_KEY_MAX)
		return -EINVAL;
	memcpy(out, tenant, tl);
	out[tl] = '\0';
	memcpy(out + tl + 1, key, kl);
	*len = tl + 1 + kl;
	return 0;
}

/*
 * The exemption marker of a setting: TENANT + 0x00 + KEY + 0x00 +
 * "exempt", beside the setting in the same database (so `tenant remove`,
 * which deletes every key starting with TENANT + 0x00, takes it too).
 * Present when root or the daemon's user set a value looser than the
 * ancestors' ceiling: a deliberate exception the evaluation honours.
 */
#define TENANCY_EXEMPT_SUFFIX "exempt"
#define TENANCY_EXEMPT_KEY_MAX (TENANCY_POLICY_KEY_MAX + sizeof TENANCY_EXEMPT_SUFFIX + 1)

static int tenancy_policy_exempt_key(const char *tenant, const char *key,
    char out[TENANCY_EXEMPT_KEY_MAX], size_t *len)
{
	size_t klen;
	int rc;

	if ((rc = tenancy_policy_dbkey(tenant, key, out, &klen)) < 0)
		return rc;
	out[klen] = '\0';
	memcpy(out + klen + 1, TENANCY_EXEMPT_SUFFIX, sizeof TENANCY_EXEMPT_SUFFIX - 1);
	*len = klen + 1 + sizeof TENANCY_EXEMPT_SUFFIX - 1;
	return 0;
}

/* Whether tenant's setting of key is an exemption: 0 with *out, or -errno. */
static int tenancy_policy_is_exempt(struct queue_txn *txn, const char *tenant,
    const char *key, bool *out)
{
	char ek[TENANCY_EXEMPT_KEY_MAX];
	size_t elen;
	MDB_val v;
	int rc;

	*out = false;
	if ((rc = tenancy_policy_exempt_key(tenant, key, ek, &elen)) < 0)
		return rc;
	rc = tenancy__raw_get(txn, TENANCY_DB_POLICIES, ek, elen, &v);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	*out = true;
	return 0;
}

/* Sets or clears the exemption marker of tenant's key. */
static int tenancy_policy_exempt_set(struct queue_txn *txn, const char *tenant,
    const char *key, bool exempt)
{
	char ek[TENANCY_EXEMPT_KEY_MAX];
	size_t elen;
	int rc;

	if ((rc = tenancy_policy_exempt_key(tenant, key, ek, &elen)) < 0)
		return rc;
	if (exempt)
		return tenancy__raw_put(txn, TENANCY_DB_POLICIES, ek, elen, "1", 1);
	rc = tenancy__raw_del(txn, TENANCY_DB_POLICIES, ek, elen);
	return rc == -ENOENT ? 0 : rc;
}

int queue_policy_set(struct queue_txn *txn, const char *tenant, const char *key,
    const char *value)
{
	char *cv = NULL, *cs = NULL;
	char dbkey[TENANCY_POLICY_KEY_MAX], norm[TENANCY_DLP_VALUE_MAX + 1];
	const struct tenancy_policy_key *pk = tenancy_policy_key_find(key);
	struct queue_tenant *t;
	size_t klen;
	int rc;

	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	if ((rc = tenancy_policy_dbkey(tenant, key, dbkey, &klen)) < 0)
		return rc;
	rc = tenancy__tenant_load(txn, tenant, &t);
	queue_tenant_free(t);
	if (rc < 0)
		return rc;
	if (value == NULL) {
		if ((rc = tenancy__raw_del(txn, TENANCY_DB_POLICIES, dbkey, klen)) < 0)
			return rc;
		return tenancy_policy_exempt_set(txn, tenant, key, false);
	}
	if ((rc = tenancy_policy_normalize(pk, value, norm, sizeof norm, NULL, 0)) < 0)
		return rc;
	/*
	 * A DLP rule has no ceiling to be exempt from (rules are additive,
	 * tenancy.h), but a tenant's own rules are counted.
	 */
	if (pk->type == TENANCY_POLICY_DLP_RULE) {
		size_t own = 0;
		char *old = NULL;

		if ((rc = queue_policy_dlp_count_own(txn, tenant, &own)) < 0)
			return rc;
		rc = queue_policy_get(txn, tenant, key, &old);
		free(old);
		if (rc == -ENOENT && own >= TENANCY_DLP_RULES_PER_TENANT)
			return -ENOSPC;
		return tenancy__raw_put(txn, TENANCY_DB_POLICIES, dbkey, klen, norm, strlen(norm));
	}
	/*
	 * Looser than the ceiling: only root and the daemon's user get here
	 * with such a value (admin/policy.c refuses it to the others), so it
	 * is a deliberate exception and marked as one.
	 */
	rc = queue_policy_ceiling(txn, tenant, key, &cv, &cs);
	if (rc == 0)
		rc = tenancy_policy_exempt_set(txn, tenant, key,
		    tenancy_policy_compare(tenancy_policy_key_find(key), norm, cv) > 0);
	else if (rc == -ENOENT)
		rc = tenancy_policy_exempt_set(txn, tenant, key, false);
	free(cv);
	free(cs);
	if (rc < 0)
		return rc;
	return tenancy__raw_put(txn, TENANCY_DB_POLICIES, dbkey, klen, norm, strlen(norm));
}

/* The raw value, checked: no NUL, not longer than any normalized value. */
static int tenancy_policy_load(struct queue_txn *txn, const char *dbkey, size_t klen,
    char **value)
{
	/* The key's name follows TENANT + 0x00 in dbkey (not NUL-terminated). */
	size_t tl = strnlen(dbkey, klen), max = TENANCY_POLICY_VALUE_MAX;
	char name[TENANCY_POLICY_KEY_MAX + 1];
	MDB_val v;
	int rc;

	if (tl < klen) {
		str_copyn(name, dbkey + tl + 1, klen - tl - 1, sizeof name);
		if (tenancy_dlp_key_is(name))
			max = TENANCY_DLP_VALUE_MAX;
	}

	*value = NULL;
	if ((rc = tenancy__raw_get(txn, TENANCY_DB_POLICIES, dbkey, klen, &v)) < 0)
		return rc;
	if (v.mv_size == 0 || v.mv_size > max ||
	    memchr(v.mv_data, '\0', v.mv_size) != NULL)
		return -EBADMSG;
	*value = xstrndup(v.mv_data, v.mv_size);
	return 0;
}

int queue_policy_get(struct queue_txn *txn, const char *tenant, const char *key, char **value)
{
	char dbkey[TENANCY_POLICY_KEY_MAX];
	size_t klen;
	int rc;

	*value = NULL;
	if ((rc = tenancy_policy_dbkey(tenant, key, dbkey, &klen)) < 0)
		return rc;
	return tenancy_policy_load(txn, dbkey, klen, value);
}

/*
 * One step of a walk up the tree: cur's parent (*next, NULL at the top)
 * and cur's own setting of key (*v, NULL when it has none). 0; 1 when
 * cur is gone (an ancestor removed: the walk ends there, no error);
 * -ELOOP past TENANCY_DEPTH_MAX; else the store's error. The tenant the
 * walk starts from (depth 0) must exist.
 */
static int tenancy_policy_step(struct queue_txn *txn, const char *cur, unsigned depth,
    const char *key, char **next, char **v)
{
	char dbkey[TENANCY_POLICY_KEY_MAX];
	size_t klen;
	int rc;

	*next = NULL;
	*v = NULL;
	if (depth >= TENANCY_DEPTH_MAX)
		return -ELOOP;
	rc = tenancy__parent_of(txn, cur, next);
	if (rc == -ENOENT && depth > 0)
		return 1;
	if (rc < 0)
		return rc;
	if ((rc = tenancy_policy_dbkey(cur, key, dbkey, &klen)) == 0)
		rc = tenancy_policy_load(txn, dbkey, klen, v);
	if (rc < 0 && rc != -ENOENT) {
		free(*next);
		*next = NULL;
		return rc;
	}
	return 0;
}

/* One value (or one extension) of a gathered key, kept once. */
static void tenancy_gather_add(char ***items, size_t *n, const char *item, size_t len)
{
	for (size_t i = 0; i < *n; i++)
		if (strlen((*items)[i]) == len && memcmp((*items)[i], item, len) == 0)
			return;
	*items = xreallocarray(*items, *n + 1, sizeof **items);
	(*items)[(*n)++] = xstrndup(item, len);
}

/*
 * The effective value of a key no value of which is looser than another
 * (TENANCY_ORDER_ANY): every tenant's own from tenant up to the root,
 * since each holds for the whole subtree (what the content check reads,
 * policy/stage_content_agency.c). blocked_extensions: one sorted list,
 * each extension once; security_contact: each address once, nearest
 * first, ", " between. source: the tenants that set it, nearest
 * first, "," between; nothing added: the builtin, "default".
 */
static int tenancy_policy_gathered(struct queue_txn *txn, const char *tenant,
    const struct tenancy_policy_key *pk, char **value, char **source)
{
	bool list = pk->type == TENANCY_POLICY_EXTENSIONS;
	char **items = NULL, *cur = xstrdup(tenant), *next = NULL;
	size_t n = 0;
	struct buf out, from;
	int rc = 0;

	buf_init(&out);
	buf_init(&from);
	for (unsigned depth = 0; cur != NULL; depth++) {
		char *v = NULL;

		if ((rc = tenancy_policy_step(txn, cur, depth, pk->name, &next, &v)) != 0) {
			rc = rc > 0 ? 0 : rc;
			break;
		}
		if (v != NULL && strcmp(v, "none") != 0) {
			/* A stored list is normalized: "docm,iso". */
			for (const char *p = v; list && *p != '\0'; p += *p == ',') {
				size_t len = strcspn(p, ",");

				if (len > 0)
					tenancy_gather_add(&items, &n, p, len);
				p += len;
			}
			if (!list)
				tenancy_gather_add(&items, &n, v, strlen(v));
			buf_printf(&from, "%s%s", from.len > 0 ? "," : "", cur);
		}
		free(v);
		free(cur);
		cur = next;
	}
	free(cur);
	if (list && n > 1)
		qsort(items, n, sizeof *items, tenancy_str_cmp);
	for (size_t i = 0; i < n; i++) {
		buf_printf(&out, "%s%s", i == 0 ? "" : list ? "," : ", ", items[i]);
		free(items[i]);
	}
	free(items);
	if (rc == 0) {
		*value = xstrdup(n > 0 ? buf_cstr(&out) : pk->builtin);
		*source = xstrdup(n > 0 ? buf_cstr(&from) : "default");
	}
	buf_free(&out);
	buf_free(&from);
	return rc;
}

/*
 * The effective value: walking up from tenant, the nearest setting,
 * tightened by every setting above it (an ancestor's value is a
 * ceiling), up to and including the first exempt setting (root's
 * deliberate exception shields its subtree from what lies above it).
 * The source is the tenant whose value won. Settings made before the
 * ceiling existed are clamped the same way.
 */
int queue_policy_effective(struct queue_txn *txn, const char *tenant, const char *key,
    char **value, char **source)
{
	const struct tenancy_policy_key *pk = tenancy_policy_key_find(key);
	char *cur, *next = NULL;
	bool exempt = false;
	int rc = 0;

	*value = NULL;
	*source = NULL;
	if (pk == NULL)
		return -EINVAL;
	if ((rc = tenancy_id_check(tenant, NULL, 0)) < 0)
		return rc;
	if (tenancy_policy_order_of(pk) == TENANCY_ORDER_ANY)
		return tenancy_policy_gathered(txn, tenant, pk, value, source);
	cur = xstrdup(tenant);
	for (unsigned depth = 0; cur != NULL && !exempt; depth++) {
		char *v = NULL;

		if ((rc = tenancy_policy_step(txn, cur, depth, key, &next, &v)) != 0) {
			rc = rc > 0 ? 0 : rc;
			break;
		}
		if (v != NULL && (rc = tenancy_policy_is_exempt(txn, cur, key, &exempt)) < 0 &&
		    rc != -ENOENT) {
			free(v);
			free(next);
			break;
		}
		rc = 0;
		if (v != NULL && (*value == NULL || tenancy_policy_compare(pk, v, *value) < 0)) {
			free(*value);
			free(*source);
			*value = v;
			*source = xstrdup(cur);
		} else {
			free(v);
		}
		free(cur);
		cur = next;
	}
	free(cur);
	if (rc < 0) {
		free(*value);
		free(*source);
		*value = NULL;
		*source = NULL;
		return rc;
	}
	if (*value != NULL)
		return 0;
	*value = xstrdup(pk->builtin);
	*source = xstrdup("default");
	return 0;
}

int queue_policy_ceiling(struct queue_txn *txn, const char *tenant, const char *key,
    char **value, char **source)
{
	char *parent = NULL;
	int rc;

	*value = NULL;
	*source = NULL;
	if (tenancy_policy_key_find(key) == NULL)
		return -EINVAL;
	if ((rc = tenancy__parent_of(txn, tenant, &parent)) < 0)
		return rc;
	if (parent == NULL)
		return -ENOENT;
	rc = queue_policy_effective(txn, parent, key, value, source);
	free(parent);
	if (rc == 0 && strcmp(*source, "default") == 0)
		rc = -ENOENT;
	if (rc < 0) {
		free(*value);
		free(*source);
		*value = NULL;
		*source = NULL;
	}
	return rc;
}

/*
 * The effective text of key for tenant and its source; tenant NULL (an
 * address of a domain with no agency) reads the builtin. The one place a
 * typed getter reads the store, so every caller gets the same answer.
 */
static int tenancy_policy_text(struct queue_txn *txn, const char *tenant,
    const struct tenancy_policy_key *pk, char *text, size_t textlen, char *source,
    size_t sourcelen)
{
	char *value = NULL, *src = NULL;
	int rc;

	if (tenant == NULL) {
		str_copy(text, pk->builtin, textlen);
		if (source != NULL)
			str_copy(source, "default", sourcelen);
		return 0;
	}
	rc = queue_policy_effective(txn, tenant, pk->name, &value, &src);
	if (rc == 0) {
		if (strlen(value) >= textlen)
			rc = -EBADMSG;
		else
			str_copy(text, value, textlen);
		if (source != NULL)
			str_copy(source, src, sourcelen);
	}
	free(value);
	free(src);
	return rc;
}

int queue_policy_bool(struct queue_txn *txn, const char *tenant, const char *key,
    bool *out, char *source, size_t sourcelen)
{
	const struct tenancy_policy_key *pk = tenancy_policy_key_find(key);
	char text[TENANCY_POLICY_VALUE_MAX + 1];
	int rc;

	if (pk == NULL || pk->type != TENANCY_POLICY_BOOL)
		return -EINVAL;
	if ((rc = tenancy_policy_text(txn, tenant, pk, text, sizeof text, source,
	    sourcelen)) < 0)
		return rc;
	/* Stored values are normalized (tenancy_policy_normalize): yes or no. */
	if (strcmp(text, "yes") == 0)
		*out = true;
	else if (strcmp(text, "no") == 0)
		*out = false;
	else
		return -EBADMSG;
	return 0;
}

int queue_policy_word(struct queue_txn *txn, const char *tenant, const char *key,
    char *out, size_t outlen, char *source, size_t sourcelen)
{
	const struct tenancy_policy_key *pk = tenancy_policy_key_find(key);
	char text[TENANCY_POLICY_VALUE_MAX + 1];
	long i;
	int rc;

	if (pk == NULL || pk->type != TENANCY_POLICY_WORD)
		return -EINVAL;
	if ((rc = tenancy_policy_text(txn, tenant, pk, text, sizeof text, source,
	    sourcelen)) < 0)
		return rc;
	/* Stored values are normalized: one of the key's words. */
	i = tenancy_word_index(pk, text);
	if (i < 0 || strlen(pk->words[i]) >= outlen)
		return -EBADMSG;
	str_copy(out, pk->words[i], outlen);
	return 0;
}

int queue_policy_u64(struct queue_txn *txn, const char *tenant, const char *key,
    uint64_t *out, char *source, size_t sourcelen)
{
	const struct tenancy_policy_key *pk = tenancy_policy_key_find(key);
	char text[TENANCY_POLICY_VALUE_MAX + 1];
	int rc;

	if (pk == NULL || (pk->type != TENANCY_POLICY_SIZE && pk->type != TENANCY_POLICY_COUNT))
		return -EINVAL;
	if ((rc = tenancy_policy_text(txn, tenant, pk, text, sizeof text, source,
	    sourcelen)) < 0)
		return rc;
	/* Normalized sizes and counts are plain decimal within the size bound. */
	if (!tenancy_parse_decimal(text, strlen(text), TENANCY_POLICY_SIZE_MAX, out))
		return -EBADMSG;
	return 0;
}
