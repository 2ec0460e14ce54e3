/*
 * admin/dkim: `dkim keygen|dns|list|retire`: the DKIM signing keys of our
 * domains (queue/dkim.h for the store and the states).
 *
 * keygen makes the key pair here (OpenSSL), writes the private key to a
 * temporary file beside its final path DATA_DIR/dkim/DOMAIN/SELECTOR.pem
 * (mode 0600), and then, in one apply (store.c) that re-checks the domain,
 * the caller's scope and that the selector is free, renames it into place
 * and writes the record and its audit record. Whoever runs the engine
 * writes the file as the daemon's user: govrelayctl run by root acts with
 * the effective ids of data_dir's owner (common/datadir.c), the owner is
 * that user, and for a delegated operator the daemon runs this code
 * itself. The private key is never printed, logged or audited: only the
 * public key and the DNS record are shown.
 *
 * A delegated postmaster manages the keys of the domains of their own
 * subtree only (the domain's tenant must be in scope, scope.c).
 *
 * Entry points: admin__dkim_keygen, admin__dkim_dns, admin__dkim_list,
 * admin__dkim_retire (admin_int.h).
 * OWNERSHIP: listings copy, end the read transaction, then print; the
 * buffer that held a private key is wiped before it is freed.
 * THREADS: see engine.c. ERRORS: sysexits.h codes, reported on io->err.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "admin/admin_int.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/dkim.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

/*
 * The default algorithm of keygen: RSA, because every receiver verifies
 * rsa-sha256 while many still ignore ed25519-sha256 (RFC 8463 asks
 * signers to add an RSA signature for them); a domain that wants both
 * runs keygen twice.
 */
#define ADMIN_DKIM_DEFAULT_ALG QUEUE_DKIM_RSA

/* --------------------------------------------------------- arguments */

/*
 * The domain argument: canonical, one of ours, and in the caller's scope.
 * 0, or an exit code (reported). *tenant is a fresh copy (may be NULL).
 */
static int admin_dkim_domain(struct admin *a, struct queue_txn *txn, const char *name,
    char **tenant)
{
	struct queue_domain *d = NULL;
	int rc = queue_domain_get(txn, name, &d);

	*tenant = NULL;
	if (rc == -ENOENT) {
		admin__err(a, "no such domain '%s' (only our own domains have keys)", name);
		return EX_NOINPUT;
	}
	if (rc < 0) {
		admin__err(a, "cannot read domain %s: %s", name, queue_strerror(rc));
		return admin__store_exit(rc);
	}
	if ((rc = admin__need_tenant(a, d->tenant, name)) != 0) {
		queue_domain_free(d);
		return rc;
	}
	*tenant = d->tenant != NULL ? xstrdup(d->tenant) : NULL;
	queue_domain_free(d);
	return 0;
}

static int admin_dkim_selector(const struct admin *a, const char *in, char *out, size_t outlen)
{
	char why[ADMIN_WHY_MAX];

	if (in == NULL || strlen(in) >= outlen ||
	    queue_dkim_selector_check(in, why, sizeof why) < 0) {
		char *shown = admin__text_dup(in);

		admin__err(a, "selector \"%s\": %s", shown,
		    in == NULL || strlen(in) >= outlen ? "too long" : why);
		free(shown);
		return EX_DATAERR;
	}
	str_copy(out, in, outlen);
	return 0;
}

/* ------------------------------------------------------------ keygen */

struct admin_dkim_new {
	struct queue_dkim_key key;
	const char *tmp;        /* the staged private key file */
	struct buf retired;     /* selectors retired by this key, "a,b" */
	bool installed;
};

/* Every retiring key of the new key's algorithm is retired: it has a successor. */
struct admin_dkim_succ {
	const struct queue_dkim_key *nk;
	struct queue_dkim_key **v;
	size_t n;
};

static int admin_dkim_succ_cb(void *arg, const struct queue_dkim_key *k)
{
	struct admin_dkim_succ *s = arg;

	if (k->alg != s->nk->alg || k->state != QUEUE_DKIM_RETIRING)
		return 0;
	s->v = xreallocarray(s->v, s->n + 1, sizeof *s->v);
	s->v[s->n] = xcalloc(1, sizeof **s->v);
	*s->v[s->n] = *k;
	s->v[s->n]->domain = xstrdup(k->domain);
	s->v[s->n]->selector = xstrdup(k->selector);
	s->v[s->n]->pub = xstrdup(k->pub);
	s->n++;
	return 0;
}

static int admin_dkim_retire_older(struct admin *a, struct queue_txn *txn,
    struct admin_dkim_new *n)
{
	struct admin_dkim_succ s = { &n->key, NULL, 0 };
	int rc = queue_dkim_walk(txn, n->key.domain, admin_dkim_succ_cb, &s);

	for (size_t i = 0; i < s.n; i++) {
		if (rc >= 0) {
			s.v[i]->state = QUEUE_DKIM_RETIRED;
			s.v[i]->changed = n->key.created;
			rc = queue_dkim_put(txn, s.v[i], NULL, 0);
			buf_printf(&n->retired, "%s%s", n->retired.len > 0 ? "," : "",
			    s.v[i]->selector);
		}
		queue_dkim_key_free(s.v[i]);
	}
	free(s.v);
	if (rc < 0)
		admin__err(a, "cannot retire the older keys: %s", queue_strerror(rc));
	return rc < 0 ? admin__store_exit(rc) : 0;
}

static int admin_dkim_keygen_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	struct admin_dkim_new *n = arg;
	struct queue_dkim_key *old = NULL;
	char *tenant = NULL, why[ADMIN_WHY_MAX];
	int rc;

	buf_reset(&n->retired);
	why[0] = '\0';
	/* In the write: the domain, its tenant and the selector cannot change under us. */
	if ((rc = admin_dkim_domain(a, txn, n->key.domain, &tenant)) != 0)
		return rc;
	rc = queue_dkim_get(txn, n->key.domain, n->key.selector, &old);
	queue_dkim_key_free(old);
	if (rc == 0) {
		admin__err(a, "domain %s already has a key with selector %s (retired keys keep "
		    "their selector: choose a new one)", n->key.domain, n->key.selector);
		rc = EX_CANTCREAT;
		goto out;
	}
	if (rc == -ENOENT)
		rc = queue_dkim_put(txn, &n->key, why, sizeof why);
	if (rc < 0) {
		admin__err(a, "cannot add the key: %s", why[0] != '\0' ? why : queue_strerror(rc));
		rc = rc == -EINVAL ? EX_SOFTWARE : admin__store_exit(rc);
		goto out;
	}
	if ((rc = admin_dkim_retire_older(a, txn, n)) != 0)
		goto out;
	{
		const struct queue_audit_field f[] = {
			{ "selector", n->key.selector },
			{ "algorithm", queue_dkim_alg_name(n->key.alg) },
			{ "retired", n->retired.len > 0 ? buf_cstr(&n->retired) : NULL },
		};

		if ((rc = admin__audit(a, txn, tenant, n->key.domain, f, 3)) < 0) {
			admin__err(a, "cannot write the audit record: %s", queue_strerror(rc));
			rc = admin__store_exit(rc);
			goto out;
		}
	}
	/* Last: a failure above leaves no key file where the record is missing. */
	if ((rc = queue_dkim_file_install(n->tmp, a->io->cfg->data_dir, n->key.domain,
	    n->key.selector)) < 0) {
		admin__err(a, "cannot install the key file: %s", ADMIN_STRERROR(-rc));
		rc = EX_CANTCREAT;
		goto out;
	}
	n->installed = true;
	rc = 0;
out:
	free(tenant);
	return rc;
}

static void admin_dkim_key_json(const struct admin *a, const struct queue_dkim_key *k,
    bool signing, bool with_dns)
{
	struct admin_json j;
	char t[ADMIN_TIME_LEN];

	admin__json_begin(&j);
	admin__json_kstr(&j, "domain", k->domain);
	admin__json_kstr(&j, "selector", k->selector);
	admin__json_kstr(&j, "algorithm", queue_dkim_alg_name(k->alg));
	admin__json_kstr(&j, "state", queue_dkim_state_name(k->state));
	admin__json_kbool(&j, "signing", signing);
	admin__json_kstr(&j, "created", admin__time(k->created, true, t));
	admin__json_kstr(&j, "changed", admin__time(k->changed, true, t));
	if (with_dns) {
		struct buf rec;

		buf_init(&rec);
		queue_dkim_dns_record(k, &rec);
		if (rec.len > 0)
			rec.len--; /* the newline */
		admin__json_kstr(&j, "dns", buf_cstr(&rec));
		buf_free(&rec);
	}
	admin__json_end(a, &j);
}

/* Checks before the key is made, so that a refusal costs no key generation. */
static int admin_dkim_keygen_check(struct admin *a, const char *domain, const char *sel)
{
	struct queue_dkim_key *old = NULL;
	struct queue_txn *txn;
	char *tenant = NULL;
	int rc;

	if ((rc = admin__txn(a, &txn)) != 0)
		return rc;
	rc = admin_dkim_domain(a, txn, domain, &tenant);
	if (rc == 0 && queue_dkim_get(txn, domain, sel, &old) == 0) {
		admin__err(a, "domain %s already has a key with selector %s", domain, sel);
		rc = EX_CANTCREAT;
	}
	queue_dkim_key_free(old);
	queue_txn_abort(txn);
	free(tenant);
	return rc;
}

int admin__dkim_keygen(struct admin *a, const struct admin_args *args)
{
	const char *alg_arg = admin__arg(args, "--algorithm");
	struct admin_dkim_new n;
	char domain[ADDR_DOMAIN_MAX + 1], sel[QUEUE_DKIM_SELECTOR_MAX + 1], tmp[4096];
	struct buf pem;
	char *pub = NULL;
	int rc;

	memset(&n, 0, sizeof n);
	n.key.alg = ADMIN_DKIM_DEFAULT_ALG;
	if ((rc = admin__domain_arg(a, "domain", admin__arg(args, "domain"), domain,
	    sizeof domain)) != 0 ||
	    (rc = admin_dkim_selector(a, admin__arg(args, "--selector"), sel, sizeof sel)) != 0)
		return rc;
	if (alg_arg != NULL && queue_dkim_alg_parse(alg_arg, &n.key.alg) < 0) {
		char *shown = admin__text_dup(alg_arg);

		admin__err(a, "--algorithm \"%s\": not ed25519 or rsa", shown);
		free(shown);
		return EX_DATAERR;
	}
	if ((rc = admin_dkim_keygen_check(a, domain, sel)) != 0)
		return rc;
	buf_init(&pem);
	if (queue_dkim_keygen(n.key.alg, &pem, &pub) < 0) {
		queue_dkim_pem_wipe(&pem);
		admin__err(a, "cannot generate the %s key (OpenSSL)", queue_dkim_alg_name(n.key.alg));
		return EX_SOFTWARE;
	}
	rc = queue_dkim_file_stage(a->io->cfg->data_dir, domain, sel, &pem, tmp, sizeof tmp);
	queue_dkim_pem_wipe(&pem);
	if (rc < 0) {
		free(pub);
		admin__err(a, "cannot write the key file under %s/dkim: %s", a->io->cfg->data_dir,
		    ADMIN_STRERROR(-rc));
		return EX_CANTCREAT;
	}
	n.key.domain = domain;
	n.key.selector = sel;
	n.key.state = QUEUE_DKIM_ACTIVE;
	n.key.created = n.key.changed = time_now_ms();
	n.key.pub = pub;
	n.tmp = tmp;
	buf_init(&n.retired);
	rc = admin__write(a, admin_dkim_keygen_apply, &n, "the new key");
	if (!n.installed)
		queue_dkim_file_discard(tmp);
	if (rc == 0) {
		if (a->json) {
			admin_dkim_key_json(a, &n.key, false, true);
		} else {
			struct buf rec;

			buf_init(&rec);
			queue_dkim_dns_record(&n.key, &rec);
			admin__out(a, "dkim key %s selector %s (%s) created%s%s%s; publish:\n",
			    domain, sel, queue_dkim_alg_name(n.key.alg),
			    n.retired.len > 0 ? ", retired " : "",
			    n.retired.len > 0 ? buf_cstr(&n.retired) : "",
			    n.retired.len > 0 ? " (it had no successor)" : "");
			admin__out_buf(a, &rec);
			buf_free(&rec);
		}
	}
	buf_free(&n.retired);
	free(pub);
	return rc;
}

/* ------------------------------------------------------- list and dns */

struct admin_dkim_rows {
	struct queue_dkim_key **v;
	size_t n;
};

static int admin_dkim_collect(void *arg, const struct queue_dkim_key *k)
{
	struct admin_dkim_rows *r = arg;
	struct queue_dkim_key *c = xcalloc(1, sizeof *c);

	*c = *k;
	c->domain = xstrdup(k->domain);
	c->selector = xstrdup(k->selector);
	c->pub = xstrdup(k->pub);
	r->v = xreallocarray(r->v, r->n + 1, sizeof *r->v);
	r->v[r->n++] = c;
	return 0;
}

static void admin_dkim_rows_free(struct admin_dkim_rows *r)
{
	for (size_t i = 0; i < r->n; i++)
		queue_dkim_key_free(r->v[i]);
	free(r->v);
	r->v = NULL;
	r->n = 0;
}

/*
 * Whether row i signs, by queue_dkim_signer's rule over the collected
 * rows (every key of its domain is among them).
 */
static bool admin_dkim_row_signs(const struct admin_dkim_rows *r, size_t i)
{
	const struct queue_dkim_key *k = r->v[i], *best = NULL;
	bool active = false;

	for (size_t j = 0; j < r->n; j++) {
		const struct queue_dkim_key *o = r->v[j];

		if (strcmp(o->domain, k->domain) != 0 || o->alg != k->alg)
			continue;
		if (o->state == QUEUE_DKIM_ACTIVE) {
			if (!active || o->created < best->created ||
			    (o->created == best->created && strcmp(o->selector, best->selector) < 0))
				best = o;
			active = true;
		} else if (o->state == QUEUE_DKIM_RETIRING && !active) {
			if (best == NULL || o->created > best->created ||
			    (o->created == best->created && strcmp(o->selector, best->selector) > 0))
				best = o;
		}
	}
	return best == k;
}

/* Drops the rows of domains outside the caller's scope (domains loaded). */
static void admin_dkim_rows_scope(const struct admin *a, struct admin_dkim_rows *r)
{
	size_t out = 0;

	for (size_t i = 0; i < r->n; i++) {
		const struct admin_domain_ent *e = admin__domain_find(a, r->v[i]->domain);

		/* Keys of a domain removed since: root and the daemon's user only. */
		if (a->super || (e != NULL && e->in_scope))
			r->v[out++] = r->v[i];
		else
			queue_dkim_key_free(r->v[i]);
	}
	r->n = out;
}

int admin__dkim_list(struct admin *a, const struct admin_args *args)
{
	static const char *const head[] = { "DOMAIN", "SELECTOR", "ALGORITHM", "STATE",
		"SIGNING", "CREATED" };
	struct admin_table t = { 6, head, "llllll", NULL, 0, 0 };
	struct admin_dkim_rows r = { NULL, 0 };
	const char *darg = admin__arg(args, "--domain");
	char domain[ADDR_DOMAIN_MAX + 1];
	struct queue_txn *txn;
	char *tenant = NULL;
	int rc = 0;

	if (darg != NULL && (rc = admin__domain_arg(a, "--domain", darg, domain,
	    sizeof domain)) != 0)
		return rc;
	if (a->store != NULL) {
		if ((rc = admin__txn(a, &txn)) != 0)
			return rc;
		if (darg != NULL)
			rc = admin_dkim_domain(a, txn, domain, &tenant);
		if (rc == 0)
			rc = admin__domains_load(a, txn);
		if (rc == 0 && (rc = queue_dkim_walk(txn, darg != NULL ? domain : NULL,
		    admin_dkim_collect, &r)) < 0) {
			admin__err(a, "cannot read the keys: %s", queue_strerror(rc));
			rc = admin__store_exit(rc);
		}
		queue_txn_abort(txn);
		free(tenant);
		if (rc != 0)
			goto out;
	}
	admin_dkim_rows_scope(a, &r);
	for (size_t i = 0; i < r.n; i++) {
		const struct queue_dkim_key *k = r.v[i];
		char tm[ADMIN_TIME_LEN];
		const char *row[6];

		if (a->json) {
			admin_dkim_key_json(a, k, admin_dkim_row_signs(&r, i), false);
			continue;
		}
		row[0] = k->domain;
		row[1] = k->selector;
		row[2] = queue_dkim_alg_name(k->alg);
		row[3] = queue_dkim_state_name(k->state);
		row[4] = admin_dkim_row_signs(&r, i) ? "yes" : "no";
		row[5] = admin__time(k->created, true, tm);
		admin__table_row(&t, row);
	}
	if (!a->json)
		admin__table_print(a, &t);
out:
	admin__table_free(&t);
	admin_dkim_rows_free(&r);
	return rc;
}

int admin__dkim_dns(struct admin *a, const struct admin_args *args)
{
	struct admin_dkim_rows r = { NULL, 0 };
	char domain[ADDR_DOMAIN_MAX + 1];
	struct queue_txn *txn;
	struct buf out;
	char *tenant = NULL;
	size_t shown = 0;
	int rc;

	if ((rc = admin__domain_arg(a, "domain", admin__arg(args, "domain"), domain,
	    sizeof domain)) != 0)
		return rc;
	if ((rc = admin__txn(a, &txn)) != 0)
		return rc;
	rc = admin_dkim_domain(a, txn, domain, &tenant);
	if (rc == 0 && (rc = queue_dkim_walk(txn, domain, admin_dkim_collect, &r)) < 0) {
		admin__err(a, "cannot read the keys: %s", queue_strerror(rc));
		rc = admin__store_exit(rc);
	}
	queue_txn_abort(txn);
	free(tenant);
	buf_init(&out);
	for (size_t i = 0; rc == 0 && i < r.n; i++) {
		/*
		 * Retired keys sign nothing new; their records may go once the
		 * mail they signed has been delivered, so they are not listed.
		 */
		if (r.v[i]->state == QUEUE_DKIM_RETIRED)
			continue;
		shown++;
		if (a->json)
			admin_dkim_key_json(a, r.v[i], admin_dkim_row_signs(&r, i), true);
		else
			queue_dkim_dns_record(r.v[i], &out);
	}
	if (rc == 0 && shown == 0) {
		admin__err(a, "domain %s has no active key (make one with 'dkim keygen')", domain);
		rc = EX_NOINPUT;
	}
	if (rc == 0)
		admin__out_buf(a, &out);
	buf_free(&out);
	admin_dkim_rows_free(&r);
	return rc;
}

/* ------------------------------------------------------------ retire */

struct admin_dkim_retire {
	const char *domain;
	const char *selector;
	enum queue_dkim_state was, now;
};

/* Whether another active key of k's algorithm exists (a successor). */
struct admin_dkim_other {
	const struct queue_dkim_key *k;
	bool found;
};

static int admin_dkim_other_cb(void *arg, const struct queue_dkim_key *o)
{
	struct admin_dkim_other *x = arg;

	if (o->alg == x->k->alg && o->state == QUEUE_DKIM_ACTIVE &&
	    strcmp(o->selector, x->k->selector) != 0)
		x->found = true;
	return 0;
}

static int admin_dkim_retire_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	struct admin_dkim_retire *r = arg;
	struct queue_dkim_key *k = NULL;
	struct admin_dkim_other other = { NULL, false };
	char *tenant = NULL;
	int rc;

	if ((rc = admin_dkim_domain(a, txn, r->domain, &tenant)) != 0)
		return rc;
	rc = queue_dkim_get(txn, r->domain, r->selector, &k);
	if (rc == -ENOENT) {
		admin__err(a, "domain %s has no key with selector %s", r->domain, r->selector);
		rc = EX_NOINPUT;
		goto out;
	}
	other.k = k;
	if (rc < 0 || (rc = queue_dkim_walk(txn, r->domain, admin_dkim_other_cb, &other)) < 0)
		goto fail;
	r->was = k->state;
	/* Without a successor it keeps signing, retiring, until keygen makes one. */
	r->now = other.found ? QUEUE_DKIM_RETIRED : QUEUE_DKIM_RETIRING;
	if (r->was == QUEUE_DKIM_RETIRED)
		r->now = QUEUE_DKIM_RETIRED;
	if (r->now != r->was) {
		const struct queue_audit_field f[] = {
			{ "selector", k->selector },
			{ "algorithm", queue_dkim_alg_name(k->alg) },
			{ "state", queue_dkim_state_name(r->now) },
		};

		k->state = r->now;
		k->changed = time_now_ms();
		if ((rc = queue_dkim_put(txn, k, NULL, 0)) < 0 ||
		    (rc = admin__audit(a, txn, tenant, r->domain, f, 3)) < 0)
			goto fail;
	}
	rc = 0;
	goto out;
fail:
	admin__err(a, "cannot retire the key: %s", queue_strerror(rc));
	rc = admin__store_exit(rc);
out:
	queue_dkim_key_free(k);
	free(tenant);
	return rc;
}

int admin__dkim_retire(struct admin *a, const struct admin_args *args)
{
	struct admin_dkim_retire r;
	char domain[ADDR_DOMAIN_MAX + 1], sel[QUEUE_DKIM_SELECTOR_MAX + 1];
	int rc;

	if ((rc = admin__domain_arg(a, "domain", admin__arg(args, "domain"), domain,
	    sizeof domain)) != 0 ||
	    (rc = admin_dkim_selector(a, admin__arg(args, "selector"), sel, sizeof sel)) != 0)
		return rc;
	memset(&r, 0, sizeof r);
	r.domain = domain;
	r.selector = sel;
	if ((rc = admin__write(a, admin_dkim_retire_apply, &r, "the retirement")) != 0)
		return rc;
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "domain", domain);
		admin__json_kstr(&j, "selector", sel);
		admin__json_kstr(&j, "state", queue_dkim_state_name(r.now));
		admin__json_kbool(&j, "signing", r.now != QUEUE_DKIM_RETIRED);
		admin__json_end(a, &j);
	} else if (r.now == QUEUE_DKIM_RETIRED && r.was == QUEUE_DKIM_RETIRED) {
		admin__out(a, "dkim key %s selector %s was already retired\n", domain, sel);
	} else if (r.now == QUEUE_DKIM_RETIRED) {
		admin__out(a, "dkim key %s selector %s retired: it signs no more\n", domain, sel);
	} else {
		admin__out(a, "dkim key %s selector %s retiring: it keeps signing until a newer "
		    "key of its algorithm exists ('dkim keygen')\n", domain, sel);
	}
	return EX_OK;
}
