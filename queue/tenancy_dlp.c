/*
 * tenancy_dlp: a tenant's DLP rules as policy keys of the family
 * "dlp_rule.NAME" (queue/tenancy.h "DLP rules" says the form and the
 * inheritance; layout in queue/schema.h, policies): the key's table row,
 * parsing and normalizing a rule value, and the effective rules of a
 * tenant, its ancestors' and its own, for the content check to compile
 * (policy/dlp.h).
 *
 * Entry points: tenancy_dlp_key_is, tenancy_dlp_parse,
 * queue_policy_dlp_rules/free, queue_policy_dlp_count_own,
 * queue_policy_dlp_owner; tenancy__dlp_rule_key and
 * tenancy__dlp_normalize for tenancy_policy.c (tenancy_int.h).
 *
 * OWNERSHIP: returned rules and strings are fresh; arguments borrowed.
 * THREADS: any thread that owns the txn; the pure functions on any.
 * ERRORS: 0 or negative errno: -EINVAL (a bad value, explained in why),
 * -ENOENT, -ELOOP, -EBADMSG (a stored value that does not parse), -EIO.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/tenancy.h"
#include "queue/tenancy_int.h"

/* Strongest first, as the WORD keys list their words tightest first. */
const char *const tenancy_dlp_actions[] = { "reject", "quarantine", "tag", NULL };
const char *const tenancy_dlp_builtins[] = { "cccd", "card", NULL };

/*
 * The row every "dlp_rule.NAME" resolves to (tenancy_policy_key_find):
 * not in tenancy_policy_keys[], whose rows are one key each.
 */
const struct tenancy_policy_key tenancy__dlp_rule_key = {
	"dlp_rule", TENANCY_POLICY_DLP_RULE, "",
	"a DLP rule, dlp_rule.NAME: 'action=reject|quarantine|tag [threshold=1..1000] "
	"pattern=PCRE2' or '... builtin=cccd|card'; an ancestor's rules apply to its "
	"whole subtree", tenancy_dlp_actions,
};

bool tenancy_dlp_key_is(const char *key)
{
	const size_t plen = sizeof TENANCY_DLP_PREFIX - 1;
	size_t len;

	if (key == NULL || strncmp(key, TENANCY_DLP_PREFIX, plen) != 0)
		return false;
	key += plen;
	len = strlen(key);
	if (len == 0 || len > TENANCY_DLP_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = key[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '_' && c != '-')))
			return false;
	}
	return true;
}

/* Index of word (any case) in list, or -1. */
static long tenancy_dlp_word(const char *const *list, const char *word, size_t len)
{
	for (long i = 0; list[i] != NULL; i++)
		if (strlen(list[i]) == len && strncasecmp(list[i], word, len) == 0)
			return i;
	return -1;
}

/* One "field=" at *p: its value [v, v + vlen) up to the next space. */
static size_t tenancy_dlp_token(const char *p, const char **v)
{
	const char *eq = strchr(p, '=');

	*v = eq + 1;
	return strcspn(*v, " ");
}

/* action= and threshold= (not the last field): 0 or -EINVAL with why. */
static int tenancy_dlp_field(const char *field, size_t flen, const char *v, size_t vlen,
    struct queue_dlp_rule *out, unsigned *seen, char *why, size_t whylen)
{
	char shown[TENANCY_SHOWN_MAX + 4], word[TENANCY_SHOWN_MAX];
	long i;

	str_copyn(word, v, vlen, sizeof word);
	if (flen == 6 && strncasecmp(field, "action", 6) == 0 && !(*seen & 1)) {
		if ((i = tenancy_dlp_word(tenancy_dlp_actions, v, vlen)) < 0)
			return tenancy__fail(why, whylen, -EINVAL, "action '%s' is not one of: "
			    "reject, quarantine, tag", tenancy__shown(word, shown));
		str_copy(out->action, tenancy_dlp_actions[i], sizeof out->action);
		*seen |= 1;
		return 0;
	}
	if (flen == 9 && strncasecmp(field, "threshold", 9) == 0 && !(*seen & 2)) {
		unsigned t = 0;

		for (size_t k = 0; k < vlen && t <= TENANCY_DLP_THRESHOLD_MAX; k++)
			t = v[k] >= '0' && v[k] <= '9' ? t * 10 + (unsigned)(v[k] - '0') : UINT_MAX;
		if (vlen == 0 || t < 1 || t > TENANCY_DLP_THRESHOLD_MAX)
			return tenancy__fail(why, whylen, -EINVAL, "threshold '%s' is not a whole "
			    "number from 1 to %d", tenancy__shown(word, shown),
			    TENANCY_DLP_THRESHOLD_MAX);
		out->threshold = t;
		*seen |= 2;
		return 0;
	}
	str_copyn(word, field, flen, sizeof word);
	return tenancy__fail(why, whylen, -EINVAL, "'%s=' is unknown or given twice (the "
	    "fields are action=, threshold= and, last, pattern= or builtin=)",
	    tenancy__shown(word, shown));
}

int tenancy_dlp_parse(const char *value, struct queue_dlp_rule *out, char *why, size_t whylen)
{
	char shown[TENANCY_SHOWN_MAX + 4], word[TENANCY_SHOWN_MAX];
	const char *p = value;
	unsigned seen = 0;
	int rc;

	tenancy__why_clear(why, whylen);
	memset(out, 0, sizeof *out);
	out->threshold = 1;
	if (value == NULL || value[0] == '\0')
		return tenancy__fail(why, whylen, -EINVAL, "empty value");
	for (const unsigned char *c = (const unsigned char *)value; *c != '\0'; c++)
		if (*c < 0x20 || *c == 0x7f)
			return tenancy__fail(why, whylen, -EINVAL, "a control character in the "
			    "value (write \\n, \\t and the like in the pattern instead)");
	for (;;) {
		const char *v;
		size_t flen, vlen;

		p += strspn(p, " ");
		if (*p == '\0')
			return tenancy__fail(why, whylen, -EINVAL, "pattern= or builtin= is missing "
			    "(the last field)");
		flen = strcspn(p, "= ");
		if (p[flen] != '=') {
			str_copyn(word, p, flen, sizeof word);
			return tenancy__fail(why, whylen, -EINVAL, "'%s' is not field=value",
			    tenancy__shown(word, shown));
		}
		if (flen == 7 && strncasecmp(p, "pattern", 7) == 0) {
			v = p + 8;
			if (*v == '\0')
				return tenancy__fail(why, whylen, -EINVAL, "pattern is empty");
			if (strlen(v) > TENANCY_DLP_PATTERN_MAX)
				return tenancy__fail(why, whylen, -EINVAL, "pattern is longer than %d "
				    "bytes", TENANCY_DLP_PATTERN_MAX);
			out->pattern = xstrdup(v);
			break;
		}
		vlen = tenancy_dlp_token(p, &v);
		if (flen == 7 && strncasecmp(p, "builtin", 7) == 0) {
			long i = tenancy_dlp_word(tenancy_dlp_builtins, v, vlen);

			if (i < 0 || v[vlen + strspn(v + vlen, " ")] != '\0') {
				str_copyn(word, v, vlen, sizeof word);
				return tenancy__fail(why, whylen, -EINVAL, "builtin '%s' is not one "
				    "of: cccd, card (and must be the last field)",
				    tenancy__shown(word, shown));
			}
			str_copy(out->builtin, tenancy_dlp_builtins[i], sizeof out->builtin);
			break;
		}
		if ((rc = tenancy_dlp_field(p, flen, v, vlen, out, &seen, why, whylen)) < 0)
			return rc;
		p = v + vlen;
	}
	if (!(seen & 1)) {
		free(out->pattern);
		out->pattern = NULL;
		return tenancy__fail(why, whylen, -EINVAL, "action= is missing (reject, "
		    "quarantine or tag)");
	}
	return 0;
}

int tenancy__dlp_normalize(const char *value, char *out, size_t outlen, char *why,
    size_t whylen)
{
	struct queue_dlp_rule r;
	int rc, n;

	if ((rc = tenancy_dlp_parse(value, &r, why, whylen)) < 0)
		return rc;
	n = snprintf(out, outlen, "action=%s threshold=%u %s=%s", r.action, r.threshold,
	    r.pattern != NULL ? "pattern" : "builtin",
	    r.pattern != NULL ? r.pattern : r.builtin);
	free(r.pattern);
	if (n < 0 || (size_t)n >= outlen)
		return tenancy__fail(why, whylen, -EINVAL, "no room for the value");
	return 0;
}

/* ------------------------------------------------------------ reading */

struct tenancy_dlp_walk {
	const char *tenant;
	size_t plen;                  /* TENANT + 0x00 + "dlp_rule." */
	struct queue_dlp_rule *rules;
	size_t n, cap;
	bool parse;                   /* false: count only */
};

static int tenancy_dlp_walk_cb(void *arg, const MDB_val *k, const MDB_val *v)
{
	struct tenancy_dlp_walk *w = arg;
	struct queue_dlp_rule r;
	const char *name = (const char *)k->mv_data + w->plen;
	size_t nlen = k->mv_size - w->plen;
	char *value;

	/* Only TENANT\0dlp_rule.NAME itself: no marker beside it is a rule. */
	if (nlen == 0 || nlen > TENANCY_DLP_NAME_MAX || memchr(name, '\0', nlen) != NULL)
		return 0;
	if (!w->parse) {
		w->n++;
		return 0;
	}
	if (v->mv_size == 0 || v->mv_size > TENANCY_DLP_VALUE_MAX ||
	    memchr(v->mv_data, '\0', v->mv_size) != NULL)
		return -EBADMSG;
	value = xstrndup(v->mv_data, v->mv_size);
	if (tenancy_dlp_parse(value, &r, NULL, 0) < 0) {
		free(value);
		return -EBADMSG;
	}
	r.name = xstrndup(name, nlen);
	r.source = xstrdup(w->tenant);
	r.value = value;
	if (w->n == w->cap) {
		w->cap = w->cap == 0 ? 8 : w->cap * 2;
		w->rules = xreallocarray(w->rules, w->cap, sizeof *w->rules);
	}
	w->rules[w->n++] = r;
	return 0;
}

/* tenant's own rules appended to w (in name order: the key order). */
static int tenancy_dlp_own(struct queue_txn *txn, const char *tenant,
    struct tenancy_dlp_walk *w)
{
	char prefix[TENANCY_ID_MAX + sizeof TENANCY_DLP_PREFIX + 1];
	size_t tl;
	int rc;

	if ((rc = tenancy_id_check(tenant, NULL, 0)) < 0)
		return rc;
	tl = strlen(tenant);
	memcpy(prefix, tenant, tl);
	prefix[tl] = '\0';
	memcpy(prefix + tl + 1, TENANCY_DLP_PREFIX, sizeof TENANCY_DLP_PREFIX - 1);
	w->tenant = tenant;
	w->plen = tl + 1 + sizeof TENANCY_DLP_PREFIX - 1;
	return tenancy__raw_walk(txn, TENANCY_DB_POLICIES, prefix, w->plen, tenancy_dlp_walk_cb,
	    w);
}

void queue_policy_dlp_free(struct queue_dlp_rule *rules, size_t n)
{
	for (size_t i = 0; rules != NULL && i < n; i++) {
		free(rules[i].name);
		free(rules[i].source);
		free(rules[i].value);
		free(rules[i].pattern);
	}
	free(rules);
}

/* tenant and its ancestors, tenant first (fresh strings): 0 or -errno. */
static int tenancy_dlp_chain(struct queue_txn *txn, const char *tenant,
    char *chain[TENANCY_DEPTH_MAX], size_t *depth)
{
	char *cur = xstrdup(tenant);
	int rc = 0;

	*depth = 0;
	while (cur != NULL) {
		char *parent = NULL;

		if (*depth >= TENANCY_DEPTH_MAX) {
			rc = -ELOOP;
			break;
		}
		rc = tenancy__parent_of(txn, cur, &parent);
		/* The tenant itself must exist; a broken chain above ends it. */
		if (rc == -ENOENT && *depth > 0) {
			rc = 0;
			break;
		}
		if (rc < 0)
			break;
		chain[(*depth)++] = cur;
		cur = parent;
	}
	free(cur);
	if (rc < 0) {
		for (size_t i = 0; i < *depth; i++)
			free(chain[i]);
		*depth = 0;
	}
	return rc;
}

int queue_policy_dlp_rules(struct queue_txn *txn, const char *tenant,
    struct queue_dlp_rule **out, size_t *n)
{
	struct tenancy_dlp_walk w = { NULL, 0, NULL, 0, 0, true };
	char *chain[TENANCY_DEPTH_MAX];
	size_t depth;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = tenancy_id_check(tenant, NULL, 0)) < 0)
		return rc;
	if ((rc = tenancy_dlp_chain(txn, tenant, chain, &depth)) < 0)
		return rc;
	/* From the root down: the city's rules first, as they were set first. */
	for (size_t i = depth; rc == 0 && i > 0; i--)
		rc = tenancy_dlp_own(txn, chain[i - 1], &w);
	for (size_t i = 0; i < depth; i++)
		free(chain[i]);
	if (rc < 0) {
		queue_policy_dlp_free(w.rules, w.n);
		return rc;
	}
	*out = w.rules;
	*n = w.n;
	return 0;
}

int queue_policy_dlp_count_own(struct queue_txn *txn, const char *tenant, size_t *n)
{
	struct tenancy_dlp_walk w = { NULL, 0, NULL, 0, 0, false };
	int rc = tenancy_dlp_own(txn, tenant, &w);

	*n = w.n;
	return rc;
}

int queue_policy_dlp_owner(struct queue_txn *txn, const char *tenant, const char *key,
    char **owner)
{
	char *chain[TENANCY_DEPTH_MAX], *v = NULL;
	size_t depth;
	int rc;

	*owner = NULL;
	if (!tenancy_dlp_key_is(key))
		return -EINVAL;
	if ((rc = tenancy_dlp_chain(txn, tenant, chain, &depth)) < 0)
		return rc;
	rc = -ENOENT;
	/* The nearest ancestor first (chain[0] is tenant itself). */
	for (size_t i = 1; i < depth && rc == -ENOENT; i++) {
		rc = queue_policy_get(txn, chain[i], key, &v);
		free(v);
		v = NULL;
		if (rc == 0)
			*owner = xstrdup(chain[i]);
	}
	for (size_t i = 0; i < depth; i++)
		free(chain[i]);
	return rc;
}
