/*
 * admin/dmarc: `dmarc report --since T [--until T] [--domain D]`: what a
 * postmaster needs to tune the city's own SPF, DKIM and DMARC records,
 * in the spirit of a DMARC aggregate report (RFC 7489 section 7.2): per
 * From: domain and source address, how many messages, with which SPF
 * result (and domain, and whether it aligned), which DKIM result (the
 * same), the DMARC result and what was done with them (the disposition:
 * none, quarantine, reject, defer) under which published policy.
 *
 * The data are the audit chain's records of messages received, refused
 * and deferred, whose `auth` field carries the policy checks' notes
 * (policy_tx_notes: "key=value; key=value", written by
 * policy/stage_dmarc.c: dmarc, header_from, dmarc_policy,
 * dmarc_disposition, dmarc_spf, dmarc_spf_domain, dmarc_spf_aligned,
 * dmarc_dkim, dmarc_dkim_domain, dmarc_dkim_aligned) and a `client` fact
 * (the source address). A record whose notes hold no header_from did
 * not pass through DMARC and is not counted.
 *
 * Scope: root and the store's owner see every From: domain; a delegated
 * postmaster sees the domains of their tenant subtree (and names below
 * them) only, and --domain outside it is refused (77, audited).
 *
 * Text: an aligned table, one row per distinct combination, sorted by
 * domain, source, then count (largest first). --json: one object per
 * row, keys in the table's order.
 *
 * Entry points: admin__dmarc_report (admin_int.h).
 * OWNERSHIP: the aggregation is the call's; entries are borrowed.
 * THREADS: see engine.c; one read transaction for the walk, ended before
 * anything is written.
 * ERRORS: sysexits.h codes (engine.c): 65 for a bad time or domain, 77
 * for a domain outside the caller's scope.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "admin/admin_int.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/audit_query.h"
#include "queue/queue.h"

/* Distinct rows kept; beyond, messages are counted as "other" (a flood of sources). */
#define ADMIN_DMARC_ROWS_MAX 200000
#define ADMIN_DMARC_BUCKETS 4096
#define ADMIN_DMARC_NCOLS 11
#define ADMIN_DMARC_VALUE_MAX 320   /* a note's value (domains, result words) */

/* The note keys of a row, in the table's column order (after source and count). */
enum admin_dmarc_col {
	ADC_DOMAIN, ADC_SOURCE, ADC_SPF, ADC_SPF_DOMAIN, ADC_SPF_ALIGNED, ADC_DKIM,
	ADC_DKIM_DOMAIN, ADC_DKIM_ALIGNED, ADC_DMARC, ADC_POLICY, ADC_DISPOSITION, ADC_NKEYS
};

static const char *const admin_dmarc_notes[ADC_NKEYS] = {
	[ADC_DOMAIN] = "header_from", [ADC_SOURCE] = NULL, [ADC_SPF] = "dmarc_spf",
	[ADC_SPF_DOMAIN] = "dmarc_spf_domain", [ADC_SPF_ALIGNED] = "dmarc_spf_aligned",
	[ADC_DKIM] = "dmarc_dkim", [ADC_DKIM_DOMAIN] = "dmarc_dkim_domain",
	[ADC_DKIM_ALIGNED] = "dmarc_dkim_aligned", [ADC_DMARC] = "dmarc",
	[ADC_POLICY] = "dmarc_policy", [ADC_DISPOSITION] = "dmarc_disposition",
};

/* JSON keys (and, upper-cased, the text table's headings). */
static const char *const admin_dmarc_keys[ADC_NKEYS] = {
	"header_from", "source", "spf", "spf_domain", "spf_aligned", "dkim", "dkim_domain",
	"dkim_aligned", "dmarc", "policy", "disposition",
};

struct admin_dmarc_row {
	struct admin_dmarc_row *next;
	char *v[ADC_NKEYS];
	uint64_t count;
};

struct admin_dmarc {
	struct admin *a;
	const char *domain;          /* --domain, canonical; NULL: all in scope */
	struct admin_dmarc_row *buckets[ADMIN_DMARC_BUCKETS];
	struct admin_dmarc_row **rows;
	size_t nrows, cap;
	uint64_t messages, other, hidden;
};

/* The value of key in a notes string ("k=v; k=v"), copied into out; false when absent. */
static bool admin_dmarc_note(const char *notes, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);

	for (const char *p = notes; p != NULL && *p != '\0';) {
		const char *end = strstr(p, "; ");
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

		if (len > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
			str_copyn(out, p + klen + 1, len - klen - 1, outlen);
			return true;
		}
		p = end != NULL ? end + 2 : NULL;
	}
	return false;
}

/* A value of a record: from its auth notes, else a fact of that name. */
static void admin_dmarc_value(const struct audit_entry *e, const char *notes, const char *key,
    char *out, size_t outlen)
{
	const char *fact;

	if (notes != NULL && admin_dmarc_note(notes, key, out, outlen))
		return;
	fact = audit_entry_get(e, key);
	str_copy(out, fact != NULL ? fact : "-", outlen);
}

/* Whether the caller may see results about From: domain d (a->domains loaded). */
static bool admin_dmarc_visible(const struct admin *a, const char *d)
{
	const struct admin_domain_ent *ent;

	if (a->super)
		return true;
	ent = admin__domain_find(a, d);
	if (ent == NULL)
		ent = admin__domain_parent(a, d);
	return ent != NULL && ent->in_scope;
}

static unsigned admin_dmarc_hash(char *const *v)
{
	unsigned h = 2166136261u;

	for (size_t i = 0; i < ADC_NKEYS; i++) {
		for (const unsigned char *p = (const unsigned char *)v[i]; *p; p++)
			h = (h ^ *p) * 16777619u;
		h = (h ^ 0xff) * 16777619u;
	}
	return h % ADMIN_DMARC_BUCKETS;
}

static void admin_dmarc_add(struct admin_dmarc *r, char v[ADC_NKEYS][ADMIN_DMARC_VALUE_MAX])
{
	char *key[ADC_NKEYS];
	struct admin_dmarc_row *row;
	unsigned h;

	for (size_t i = 0; i < ADC_NKEYS; i++)
		key[i] = v[i];
	h = admin_dmarc_hash(key);
	for (row = r->buckets[h]; row != NULL; row = row->next) {
		size_t i;

		for (i = 0; i < ADC_NKEYS && strcmp(row->v[i], key[i]) == 0; i++)
			;
		if (i == ADC_NKEYS) {
			row->count++;
			return;
		}
	}
	if (r->nrows >= ADMIN_DMARC_ROWS_MAX) {
		r->other++;
		return;
	}
	row = xcalloc(1, sizeof *row);
	for (size_t i = 0; i < ADC_NKEYS; i++)
		row->v[i] = xstrdup(key[i]);
	row->count = 1;
	row->next = r->buckets[h];
	r->buckets[h] = row;
	if (r->nrows == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 64;
		r->rows = xreallocarray(r->rows, r->cap, sizeof *r->rows);
	}
	r->rows[r->nrows++] = row;
}

static int admin_dmarc_record(void *arg, const struct audit_entry *e)
{
	struct admin_dmarc *r = arg;
	char v[ADC_NKEYS][ADMIN_DMARC_VALUE_MAX];
	const char *notes = audit_entry_get(e, "auth");
	const char *client;

	if (strcmp(e->event, "received") != 0 && strcmp(e->event, "rejected") != 0 &&
	    strcmp(e->event, "tempfailed") != 0)
		return 0;
	admin_dmarc_value(e, notes, "header_from", v[ADC_DOMAIN], sizeof v[0]);
	if (strcmp(v[ADC_DOMAIN], "-") == 0 || v[ADC_DOMAIN][0] == '\0')
		return 0;
	str_lower(v[ADC_DOMAIN]);
	if (r->domain != NULL && strcmp(v[ADC_DOMAIN], r->domain) != 0)
		return 0;
	if (!admin_dmarc_visible(r->a, v[ADC_DOMAIN])) {
		r->hidden++;
		return 0;
	}
	client = audit_entry_get(e, "client");
	str_copy(v[ADC_SOURCE], client != NULL ? client : "-", sizeof v[0]);
	for (size_t i = ADC_SPF; i < ADC_NKEYS; i++)
		admin_dmarc_value(e, notes, admin_dmarc_notes[i], v[i], sizeof v[0]);
	r->messages++;
	admin_dmarc_add(r, v);
	return 0;
}

static int admin_dmarc_cmp(const void *x, const void *y)
{
	const struct admin_dmarc_row *a = *(const struct admin_dmarc_row *const *)x;
	const struct admin_dmarc_row *b = *(const struct admin_dmarc_row *const *)y;
	int c = strcmp(a->v[ADC_DOMAIN], b->v[ADC_DOMAIN]);

	if (c == 0)
		c = strcmp(a->v[ADC_SOURCE], b->v[ADC_SOURCE]);
	if (c == 0 && a->count != b->count)
		c = a->count > b->count ? -1 : 1;
	for (size_t i = 0; c == 0 && i < ADC_NKEYS; i++)
		c = strcmp(a->v[i], b->v[i]);
	return c;
}

static void admin_dmarc_print(const struct admin *a, const struct admin_dmarc *r)
{
	static const char *const head[ADMIN_DMARC_NCOLS + 1] = { "FROM DOMAIN", "SOURCE",
		"COUNT", "SPF", "SPF DOMAIN", "SPF ALIGNED", "DKIM", "DKIM DOMAIN",
		"DKIM ALIGNED", "DMARC", "POLICY", "DISPOSITION" };
	struct admin_table t = { .ncols = ADMIN_DMARC_NCOLS + 1, .head = head,
		.align = "llrlllllllll" };
	char count[24];

	for (size_t i = 0; i < r->nrows; i++) {
		const struct admin_dmarc_row *row = r->rows[i];
		const char *cols[ADMIN_DMARC_NCOLS + 1];

		snprintf(count, sizeof count, "%" PRIu64, row->count);
		cols[0] = row->v[ADC_DOMAIN];
		cols[1] = row->v[ADC_SOURCE];
		cols[2] = count;
		for (size_t c = ADC_SPF; c < ADC_NKEYS; c++)
			cols[c + 1] = row->v[c];
		admin__table_row(&t, cols);
	}
	if (r->nrows > 0)
		admin__table_print(a, &t);
	admin__table_free(&t);
	admin__out(a, "%" PRIu64 " message%s, %zu row%s", r->messages,
	    r->messages == 1 ? "" : "s", r->nrows, r->nrows == 1 ? "" : "s");
	if (r->other > 0)
		admin__out(a, " (%" PRIu64 " more messages in rows past %d not shown)", r->other,
		    ADMIN_DMARC_ROWS_MAX);
	admin__out(a, "\n");
}

static void admin_dmarc_json(const struct admin *a, const struct admin_dmarc *r)
{
	for (size_t i = 0; i < r->nrows; i++) {
		const struct admin_dmarc_row *row = r->rows[i];
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, admin_dmarc_keys[ADC_DOMAIN], row->v[ADC_DOMAIN]);
		admin__json_kstr(&j, admin_dmarc_keys[ADC_SOURCE], row->v[ADC_SOURCE]);
		admin__json_kuint(&j, "count", row->count);
		for (size_t c = ADC_SPF; c < ADC_NKEYS; c++) {
			if (c == ADC_SPF_ALIGNED || c == ADC_DKIM_ALIGNED)
				admin__json_kbool(&j, admin_dmarc_keys[c],
				    strcmp(row->v[c], "yes") == 0);
			else
				admin__json_kstr(&j, admin_dmarc_keys[c], row->v[c]);
		}
		admin__json_end(a, &j);
	}
}

static void admin_dmarc_free(struct admin_dmarc *r)
{
	for (size_t i = 0; i < r->nrows; i++) {
		for (size_t c = 0; c < ADC_NKEYS; c++)
			free(r->rows[i]->v[c]);
		free(r->rows[i]);
	}
	free(r->rows);
}

/* --since: audit search's forms, and "24h" meaning the last 24 hours. */
static int admin_dmarc_time(struct admin *a, const char *opt, const char *v, int64_t now,
    int64_t *ms)
{
	char rel[40];
	size_t n = strspn(v, "0123456789");
	char *shown;

	if (audit_time_parse(v, now, ms) == 0)
		return 0;
	if (n > 0 && n < 20 && strchr("smhd", v[n]) != NULL && v[n] != '\0' &&
	    v[n + 1] == '\0') {
		snprintf(rel, sizeof rel, "-%s", v);
		if (audit_time_parse(rel, now, ms) == 0)
			return 0;
	}
	shown = admin__text_dup(v);
	admin__err(a, "%s \"%s\": use ISO 8601 (2026-11-23T10:00Z), a relative time (24h, -2h, "
	    "-7d), now, or @UNIXSECONDS", opt, shown);
	free(shown);
	return EX_DATAERR;
}

/* The filter and --domain: 0 or an exit code (reported). */
static int admin_dmarc_args(struct admin *a, const struct admin_args *args,
    struct audit_filter *f, char *domain, size_t domainlen)
{
	const char *since = admin__arg(args, "--since");
	const char *until = admin__arg(args, "--until");
	const char *d = admin__arg(args, "--domain");
	int64_t now = time_now_ms();
	int rc;

	memset(f, 0, sizeof *f);
	if ((rc = admin_dmarc_time(a, "--since", since, now, &f->since)) != 0)
		return rc;
	if (until != NULL && (rc = admin_dmarc_time(a, "--until", until, now, &f->until)) != 0)
		return rc;
	domain[0] = '\0';
	if (d != NULL && (rc = admin__domain_arg(a, "--domain", d, domain, domainlen)) != 0)
		return rc;
	if (domain[0] != '\0' && !a->super && !admin_dmarc_visible(a, domain)) {
		const struct admin_domain_ent *ent = admin__domain_find(a, domain);

		return admin__deny(a, ent != NULL ? ent->tenant : NULL,
		    "%s is not a domain of your tenant", domain);
	}
	return 0;
}

int admin__dmarc_report(struct admin *a, const struct admin_args *args)
{
	struct admin_dmarc *r = xcalloc(1, sizeof *r);
	char domain[ADDR_DOMAIN_MAX + 1];
	struct audit_filter f;
	struct queue_txn *txn = NULL;
	int rc = 0;

	r->a = a;
	if (a->store != NULL) {
		if ((rc = admin__txn(a, &txn)) != 0)
			goto out;
		if ((rc = admin__domains_load(a, txn)) != 0)
			goto out;
	}
	if ((rc = admin_dmarc_args(a, args, &f, domain, sizeof domain)) != 0)
		goto out;
	r->domain = domain[0] != '\0' ? domain : NULL;
	if (txn != NULL) {
		rc = audit_search(txn, &f, admin_dmarc_record, r);
		queue_txn_abort(txn);
		txn = NULL;
		if (rc < 0) {
			admin__err(a, "cannot read the audit chain: %s", queue_strerror(rc));
			rc = rc == -EBADMSG ? EX_DATAERR : admin__store_exit(rc);
			goto out;
		}
	}
	qsort(r->rows, r->nrows, sizeof *r->rows, admin_dmarc_cmp);
	if (a->json)
		admin_dmarc_json(a, r);
	else
		admin_dmarc_print(a, r);
	rc = EX_OK;
out:
	queue_txn_abort(txn);
	admin_dmarc_free(r);
	free(r);
	return rc;
}
