/*
 * admin/import: `mailbox import FILE.csv`: rows "address[,alias-of]".
 *
 * The whole file is read, parsed and checked first, in a read transaction
 * (syntax, our domains, the caller's scope, conflicts with what is
 * stored): any bad row imports nothing. Then the rows are written in
 * batches of ADMIN_IMPORT_BATCH rows, each batch one apply (store.c) with
 * one audit record (action=mailbox.import, count=, batch=N/M), so a
 * 100,000-row import never holds the store's single writer for more than
 * one batch: in the daemon, mail queued meanwhile commits between batches.
 * If the command stops mid-way (the daemon stops, the store fills up), the
 * batches already committed stay; importing the same file again is
 * idempotent (rows already there are skipped, alias targets are not
 * repeated), so the remedy is to run it again.
 *
 * Entry points: admin__mailbox_import (admin_int.h).
 * OWNERSHIP: the file is read into one buffer, parsed rows point into it.
 * THREADS: see engine.c. ERRORS: 65 for a bad file (up to 100 errors
 * listed, LINE: reason), else sysexits.h codes, reported on io->err.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

#define ADMIN_IMPORT_MAX (64u * 1024 * 1024) /* bytes of one CSV file */
#define ADMIN_IMPORT_ERRORS_MAX 100
/*
 * Rows per write. Each batch is one writer op: with 1,000 rows it takes
 * the writer a few milliseconds, so mail queued meanwhile waits for at
 * most one batch, never for the whole file (doc/PERFORMANCE.md).
 */
#define ADMIN_IMPORT_BATCH 1000

/* ------------------------------------------------------ mailbox import */

/*
 * `mailbox import FILE.csv`: rows "address[,alias-of]" (RFC 4180: quoted
 * fields with "" inside and line breaks allowed), blank lines and lines
 * starting with '#' skipped, an optional header row "address,alias-of".
 * Every row is checked first (canonical address, one of our domains,
 * the caller's reach, the alias target's syntax, no conflict with what
 * is stored); any bad row imports nothing. Then the rows go in batches
 * of about ADMIN_IMPORT_BATCH rows (an address's rows always in one
 * batch), each one write with one audit record (see the file header).
 */
struct admin_import_row {
	char *addr;
	char *target; /* NULL for a plain mailbox */
	unsigned line;
};

struct admin_import {
	struct admin *a;
	const char *label;
	struct admin_import_row *rows;
	size_t n, cap;
	size_t nbad, ndenied;
	char deny_tenant[TENANCY_ID_MAX + 1];
	struct buf errors;
};

static void admin_import_bad(struct admin_import *im, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void admin_import_bad(struct admin_import *im, unsigned line, const char *fmt, ...)
{
	va_list ap;
	struct buf msg;

	im->nbad++;
	if (im->nbad > ADMIN_IMPORT_ERRORS_MAX)
		return;
	buf_init(&msg);
	va_start(ap, fmt);
	buf_vprintf(&msg, fmt, ap);
	va_end(ap);
	admin__text(&im->errors, im->label);
	buf_printf(&im->errors, ":%u: ", line);
	admin__text(&im->errors, buf_cstr(&msg));
	buf_append_char(&im->errors, '\n');
	buf_free(&msg);
}

struct admin_csv {
	const char *p;
	size_t len, pos;
	unsigned line;
};

/*
 * One CSV record into fields (at most nmax kept, *nf counts all). 1 with
 * a record, 0 at the end, -1 for a malformed record (why set; the rest
 * of its line is skipped). *start is the record's first line.
 */
/* Skips blank lines and comments: false at the end of the input. */
static bool admin_csv_skip(struct admin_csv *c)
{
	for (;;) {
		if (c->pos >= c->len)
			return false;
		if (c->p[c->pos] == '\n') {
			c->pos++;
			c->line++;
			continue;
		}
		if (c->p[c->pos] == '\r' && c->pos + 1 < c->len && c->p[c->pos + 1] == '\n') {
			c->pos += 2;
			c->line++;
			continue;
		}
		if (c->p[c->pos] == '#') {
			while (c->pos < c->len && c->p[c->pos] != '\n')
				c->pos++;
			continue;
		}
		return true;
	}
}

/* A quoted field after its opening quote, into f (NULL: dropped). 0 or -1. */
static int admin_csv_quoted(struct admin_csv *c, struct buf *f, const char **why)
{
	for (;;) {
		char ch;

		if (c->pos >= c->len) {
			*why = "a quoted field is not closed";
			return -1;
		}
		ch = c->p[c->pos++];
		if (ch == '"') {
			if (c->pos < c->len && c->p[c->pos] == '"')
				c->pos++;
			else
				return 0;
		}
		if (ch == '\n')
			c->line++;
		if (ch == '\0')
			*why = "a NUL byte";
		if (f != NULL)
			buf_append_char(f, ch);
	}
}

/* An unquoted field, up to ',' or the end of the line; trimmed of blanks. */
static void admin_csv_plain(struct admin_csv *c, struct buf *f, const char **why)
{
	size_t s = 0, e;

	while (c->pos < c->len && c->p[c->pos] != ',' && c->p[c->pos] != '\n' &&
	    !(c->p[c->pos] == '\r' && c->pos + 1 < c->len && c->p[c->pos + 1] == '\n') &&
	    !(c->p[c->pos] == '\r' && c->pos + 1 == c->len)) {
		char ch = c->p[c->pos++];

		if (ch == '"' && *why == NULL)
			*why = "a quote inside a field that is not quoted";
		if (ch == '\0')
			*why = "a NUL byte";
		if (f != NULL)
			buf_append_char(f, ch);
	}
	if (f == NULL)
		return;
	/* Spaces around an unquoted field are layout, not data. */
	e = f->len;
	while (s < e && (f->data[s] == ' ' || f->data[s] == '\t'))
		s++;
	while (e > s && (f->data[e - 1] == ' ' || f->data[e - 1] == '\t'))
		e--;
	if (s > 0 || e < f->len) {
		memmove(f->data, f->data + s, e - s);
		f->len = e - s;
	}
}

/*
 * After a field: 1 for another field of the record, 0 at the record's
 * end, -1 for text after a closing quote (the rest of the line skipped).
 */
static int admin_csv_next(struct admin_csv *c, const char **why)
{
	if (c->pos >= c->len)
		return 0;
	if (c->p[c->pos] == ',') {
		c->pos++;
		return 1;
	}
	if (c->p[c->pos] == '\n') {
		c->pos++;
		c->line++;
		return 0;
	}
	if (c->p[c->pos] == '\r') {
		c->pos += (c->pos + 1 < c->len) ? 2 : 1;
		c->line++;
		return 0;
	}
	*why = "text after a closing quote";
	while (c->pos < c->len && c->p[c->pos] != '\n')
		c->pos++;
	if (c->pos < c->len) {
		c->pos++;
		c->line++;
	}
	return -1;
}

static int admin_csv_record(struct admin_csv *c, struct buf *fields, size_t nmax, size_t *nf,
    unsigned *start, const char **why)
{
	int more;

	*nf = 0;
	*why = NULL;
	for (size_t i = 0; i < nmax; i++)
		buf_reset(&fields[i]);
	if (!admin_csv_skip(c))
		return 0;
	*start = c->line;
	do {
		struct buf *f = *nf < nmax ? &fields[*nf] : NULL;

		(*nf)++;
		if (c->pos < c->len && c->p[c->pos] == '"') {
			c->pos++;
			if (admin_csv_quoted(c, f, why) < 0)
				return -1;
		} else {
			admin_csv_plain(c, f, why);
		}
		if (f != NULL)
			buf_cstr(f);
		if ((more = admin_csv_next(c, why)) < 0)
			return -1;
	} while (more);
	return *why != NULL ? -1 : 1;
}

static int admin_import_row_cmp(const void *x, const void *y)
{
	const struct admin_import_row *r = x, *s = y;
	int d = strcmp(r->addr, s->addr);

	if (d != 0)
		return d;
	return r->line < s->line ? -1 : r->line > s->line;
}

/* Reads the whole input: the file named (local runs) or io->in ("-"). */
static int admin_import_read(struct admin *a, const char *file, struct buf *out)
{
	FILE *f = NULL;
	char chunk[65536];
	size_t n;
	bool own = false;

	if (strcmp(file, "-") == 0) {
		f = a->io->in;
		if (f == NULL) {
			admin__err(a, "no standard input to read");
			return EX_NOINPUT;
		}
	} else {
		f = fopen(file, "rb");
		if (f == NULL) {
			admin__err(a, "cannot open \"%s\": %s", file, ADMIN_STRERROR(errno));
			return EX_NOINPUT;
		}
		own = true;
	}
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (out->len + n > ADMIN_IMPORT_MAX) {
			admin__err(a, "\"%s\" is larger than %u MiB; split it", file,
			    ADMIN_IMPORT_MAX >> 20);
			if (own)
				fclose(f);
			return EX_DATAERR;
		}
		buf_append(out, chunk, n);
	}
	if (ferror(f)) {
		admin__err(a, "cannot read \"%s\": %s", file, ADMIN_STRERROR(errno));
		if (own)
			fclose(f);
		return EX_IOERR;
	}
	if (own)
		fclose(f);
	return 0;
}

/* Parses and checks every row (first pass: syntax, domains, reach). */
static void admin_import_parse(struct admin_import *im, const struct buf *in)
{
	struct admin_csv c = { in->data, in->len, 0, 1 };
	struct buf fields[2];
	bool first = true;

	buf_init(&fields[0]);
	buf_init(&fields[1]);
	for (;;) {
		char addr[ADDR_MAX + 1], target[ADDR_MAX + 1];
		const struct admin_domain_ent *e;
		const char *why;
		unsigned line = c.line;
		size_t nf;
		int r = admin_csv_record(&c, fields, 2, &nf, &line, &why);
		bool has_target;

		if (r == 0)
			break;
		if (r < 0) {
			admin_import_bad(im, line, "%s", why);
			first = false;
			continue;
		}
		if (first) {
			first = false;
			if (str_ieq(fields[0].data, "address") &&
			    (nf == 1 || str_ieq(fields[1].data, "alias-of") ||
			    str_ieq(fields[1].data, "alias_of")))
				continue;
		}
		if (nf > 2) {
			admin_import_bad(im, line, "%zu fields; expected address[,alias-of]", nf);
			continue;
		}
		if (addr_canon(fields[0].data, addr, sizeof addr, &why) < 0) {
			admin_import_bad(im, line, "bad address \"%s\": %s", fields[0].data,
			    why != NULL ? why : "not an address");
			continue;
		}
		has_target = nf == 2 && fields[1].len > 0;
		if (has_target && addr_canon(fields[1].data, target, sizeof target, &why) < 0) {
			admin_import_bad(im, line, "bad alias target \"%s\": %s", fields[1].data,
			    why != NULL ? why : "not an address");
			continue;
		}
		if (has_target && strcmp(addr, target) == 0) {
			admin_import_bad(im, line, "%s cannot be an alias of itself", addr);
			continue;
		}
		e = admin__domain_find(im->a, addr_domain_of(addr));
		if (e == NULL) {
			admin_import_bad(im, line, "%s: domain %s is not ours (add it with "
			    "'domain add')", addr, addr_domain_of(addr));
			continue;
		}
		if (!e->in_scope) {
			if (im->ndenied++ == 0)
				str_copy(im->deny_tenant, e->tenant != NULL ? e->tenant : "",
				    sizeof im->deny_tenant);
			admin_import_bad(im, line, "permission denied: domain %s belongs to %s%s, "
			    "outside tenant %s", e->name, e->tenant ? "tenant " : "no tenant",
			    e->tenant ? e->tenant : "", im->a->op_tenant);
			continue;
		}
		if (im->n == im->cap) {
			im->cap = im->cap ? im->cap * 2 : 1024;
			im->rows = xreallocarray(im->rows, im->cap, sizeof *im->rows);
		}
		im->rows[im->n].addr = xstrdup(addr);
		im->rows[im->n].target = has_target ? xstrdup(target) : NULL;
		im->rows[im->n].line = line;
		im->n++;
	}
	buf_free(&fields[0]);
	buf_free(&fields[1]);
}

/*
 * Second pass, rows sorted by address: an address is a mailbox or an
 * alias, in the file and in the store, never both; an alias stays within
 * TENANCY_ALIAS_TARGETS_MAX targets.
 */
static int admin_import_conflicts(struct admin_import *im, struct queue_txn *txn)
{
	for (size_t i = 0; i < im->n;) {
		size_t j = i, plain = 0, alias = 0;
		struct queue_mailbox *m = NULL;
		int rc;

		while (j < im->n && strcmp(im->rows[j].addr, im->rows[i].addr) == 0) {
			if (im->rows[j].target != NULL)
				alias++;
			else
				plain++;
			j++;
		}
		if (plain > 0 && alias > 0)
			admin_import_bad(im, im->rows[j - 1].line, "%s is both a mailbox and an "
			    "alias in this file", im->rows[i].addr);
		rc = queue_mailbox_get(txn, im->rows[i].addr, &m);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		if (m != NULL && m->nalias_of == 0 && alias > 0)
			admin_import_bad(im, im->rows[i].line, "%s is a mailbox already, not an "
			    "alias", im->rows[i].addr);
		else if (m != NULL && m->nalias_of > 0 && plain > 0)
			admin_import_bad(im, im->rows[i].line, "%s is an alias already",
			    im->rows[i].addr);
		else if (alias + (m != NULL ? m->nalias_of : 0) > TENANCY_ALIAS_TARGETS_MAX)
			admin_import_bad(im, im->rows[i].line, "%s would have more than %d alias "
			    "targets", im->rows[i].addr, TENANCY_ALIAS_TARGETS_MAX);
		queue_mailbox_free(m);
		i = j;
	}
	return 0;
}

static int admin_strcmp_tenant(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

struct admin_import_counts {
	size_t added, updated, unchanged;
};

/* One batch: rows [from, to) of the sorted rows, and what came of it. */
struct admin_import_batch {
	struct admin_import *im;
	size_t from, to;
	size_t k, nbatches;            /* this is batch k of nbatches (from 1) */
	struct admin_import_counts cnt;
	char why[ADMIN_WHY_MAX];
};

/* The end of the batch starting at row i: whole addresses, about BATCH rows. */
static size_t admin_import_batch_end(const struct admin_import *im, size_t i)
{
	size_t j = i + ADMIN_IMPORT_BATCH < im->n ? i + ADMIN_IMPORT_BATCH : im->n;

	while (j < im->n && j > i && strcmp(im->rows[j].addr, im->rows[j - 1].addr) == 0)
		j++;
	return j;
}

/* "a,b,c": the distinct tenants of the changed rows' domains, sorted. */
static void admin_import_tenants(char **tv, size_t ntv, struct buf *tenants)
{
	if (ntv > 1)
		qsort(tv, ntv, sizeof *tv, admin_strcmp_tenant);
	for (size_t i = 0; i < ntv; i++) {
		if (i > 0 && strcmp(tv[i], tv[i - 1]) == 0)
			continue;
		buf_printf(tenants, "%s%s", tenants->len ? "," : "", tv[i]);
	}
	buf_cstr(tenants);
}

/*
 * m (address rows[i]) with the targets of rows [i, j) added to old's,
 * each once. Returns the targets array (owned by the caller) or NULL.
 */
static char **admin_import_targets(const struct admin_import *im, size_t i, size_t j,
    const struct queue_mailbox *old, struct queue_mailbox *m)
{
	size_t cap = (old != NULL ? old->nalias_of : 0) + (j - i), nt = 0;
	char **targets;

	if (im->rows[i].target == NULL)
		return NULL;
	targets = xcalloc(cap, sizeof *targets);
	for (size_t k = 0; old != NULL && k < old->nalias_of; k++)
		targets[nt++] = old->alias_of[k];
	for (size_t k = i; k < j; k++) {
		bool dup = false;

		for (size_t q = 0; q < nt && !dup; q++)
			dup = strcmp(targets[q], im->rows[k].target) == 0;
		if (!dup)
			targets[nt++] = im->rows[k].target;
	}
	m->alias_of = targets;
	m->nalias_of = nt;
	return targets;
}

/*
 * One address (rows [i, j)) into the store. 0, 1 when unchanged, or a
 * negative errno with b->why set. Refuses (-EEXIST) when the address
 * changed kind since the file was checked (a mailbox became an alias or
 * the other way round): the checked plan no longer holds.
 */
static int admin_import_one(struct admin_import_batch *b, struct queue_txn *txn, size_t i,
    size_t j)
{
	const struct admin_import_row *r = &b->im->rows[i];
	struct queue_mailbox *old = NULL, m;
	char **targets;
	int rc = queue_mailbox_get(txn, r->addr, &old);

	if (rc < 0 && rc != -ENOENT)
		return rc;
	if (old != NULL && (old->nalias_of > 0) != (r->target != NULL)) {
		snprintf(b->why, sizeof b->why, "%s became %s since the file was checked",
		    r->addr, old->nalias_of > 0 ? "an alias" : "a mailbox");
		queue_mailbox_free(old);
		return -EEXIST;
	}
	memset(&m, 0, sizeof m);
	m.address = r->addr;
	m.created = old != NULL ? old->created : time_now_ms();
	targets = admin_import_targets(b->im, i, j, old, &m);
	if (old != NULL && m.nalias_of == old->nalias_of) {
		rc = 1;
	} else {
		b->why[0] = '\0';
		rc = queue_mailbox_put(txn, &m, b->why, sizeof b->why);
		if (rc < 0 && b->why[0] == '\0')
			snprintf(b->why, sizeof b->why, "%s: %s", m.address, queue_strerror(rc));
		if (rc == 0 && old != NULL)
			b->cnt.updated++;
		else if (rc == 0)
			b->cnt.added++;
	}
	free(targets);
	queue_mailbox_free(old);
	return rc;
}

/* The batch's audit record: what it changed, and which batch it was. */
static int admin_import_audit(struct admin *a, struct queue_txn *txn,
    const struct admin_import_batch *b, const char *tenants)
{
	struct queue_audit_field f[5];
	char nadd[24], nupd[24], nsame[24], nrows[24], nb[48];

	snprintf(nadd, sizeof nadd, "%zu", b->cnt.added);
	snprintf(nupd, sizeof nupd, "%zu", b->cnt.updated);
	snprintf(nsame, sizeof nsame, "%zu", b->cnt.unchanged);
	snprintf(nrows, sizeof nrows, "%zu", b->to - b->from);
	snprintf(nb, sizeof nb, "%zu/%zu", b->k, b->nbatches);
	f[0] = (struct queue_audit_field){ "count", nadd };
	f[1] = (struct queue_audit_field){ "updated", nupd };
	f[2] = (struct queue_audit_field){ "unchanged", nsame };
	f[3] = (struct queue_audit_field){ "rows", nrows };
	f[4] = (struct queue_audit_field){ "batch", nb };
	return admin__audit(a, txn, tenants, b->im->label, f, 5);
}

/* One batch as one write: every address once, then its audit record. */
static int admin_import_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	struct admin_import_batch *b = arg;
	struct admin_import *im = b->im;
	struct buf tenants;
	char **tv = NULL;
	size_t ntv = 0;
	int rc = 0;

	memset(&b->cnt, 0, sizeof b->cnt);
	b->why[0] = '\0';
	for (size_t i = b->from, j; rc >= 0 && i < b->to; i = j) {
		const struct admin_domain_ent *e;

		for (j = i; j < b->to && strcmp(im->rows[j].addr, im->rows[i].addr) == 0; j++)
			;
		rc = admin_import_one(b, txn, i, j);
		if (rc == 1)
			b->cnt.unchanged++;
		e = admin__domain_find(a, addr_domain_of(im->rows[i].addr));
		if (rc == 0 && e != NULL && e->tenant != NULL &&
		    (ntv == 0 || strcmp(tv[ntv - 1], e->tenant) != 0)) {
			tv = xreallocarray(tv, ntv + 1, sizeof *tv);
			tv[ntv++] = e->tenant;
		}
	}
	buf_init(&tenants);
	admin_import_tenants(tv, ntv, &tenants);
	free(tv);
	if (rc >= 0 && b->cnt.added + b->cnt.updated > 0)
		rc = admin_import_audit(a, txn, b, buf_cstr(&tenants));
	buf_free(&tenants);
	if (rc < 0)
		return admin__fail(a, rc, b->why, "cannot import %s: batch %zu of %zu failed",
		    im->label, b->k, b->nbatches);
	return 0;
}

/*
 * Writes every row, batch after batch, each durable before the next is
 * handed over. On a failure, says what stays: the batches before it.
 */
static int admin_import_write(struct admin *a, struct admin_import *im,
    struct admin_import_counts *cnt)
{
	struct admin_import_batch b;
	size_t nbatches = 0, done_rows = 0;
	int rc;

	for (size_t i = 0; i < im->n; i = admin_import_batch_end(im, i))
		nbatches++;
	memset(&b, 0, sizeof b);
	b.im = im;
	b.nbatches = nbatches;
	for (size_t i = 0; i < im->n; i = b.to) {
		b.from = i;
		b.to = admin_import_batch_end(im, i);
		b.k++;
		rc = admin__write(a, admin_import_apply, &b, "the import");
		if (rc != 0) {
			if (b.k == 1)
				admin__err(a, "nothing imported");
			else
				admin__err(a, "the %zu rows of batches 1 to %zu stay imported; "
				    "importing %s again finishes the job", done_rows, b.k - 1,
				    im->label);
			return rc;
		}
		done_rows += b.to - b.from;
		cnt->added += b.cnt.added;
		cnt->updated += b.cnt.updated;
		cnt->unchanged += b.cnt.unchanged;
	}
	return 0;
}

/*
 * Reads, parses and checks the whole file in one read transaction. 0
 * when every row is good; else the bad rows are listed and the exit
 * code says why (65, or 77 for rows outside the caller's reach).
 */
static int admin_import_check(struct admin *a, struct admin_import *im, const char *file)
{
	struct queue_txn *txn = NULL;
	struct buf in;
	int rc;

	buf_init(&in);
	if ((rc = admin_import_read(a, file, &in)) != 0)
		goto out;
	if ((rc = admin__txn(a, &txn)) != 0)
		goto out;
	if ((rc = admin__domains_load(a, txn)) != 0)
		goto out;
	admin_import_parse(im, &in);
	if (im->n > 1)
		qsort(im->rows, im->n, sizeof *im->rows, admin_import_row_cmp);
	if ((rc = admin_import_conflicts(im, txn)) < 0) {
		rc = admin__fail(a, rc, NULL, "cannot read the mailboxes");
		goto out;
	}
	if (im->nbad == 0)
		goto out;
	fwrite(im->errors.data, 1, im->errors.len, a->io->err);
	if (im->nbad > ADMIN_IMPORT_ERRORS_MAX)
		fprintf(a->io->err, "%s: ... and %zu more bad rows\n", im->label,
		    im->nbad - ADMIN_IMPORT_ERRORS_MAX);
	if (im->ndenied > 0) {
		rc = admin__deny(a, im->deny_tenant, "%zu rows name domains outside tenant %s; "
		    "nothing imported", im->ndenied, a->op_tenant);
	} else {
		admin__err(a, "%zu bad rows in %s; nothing imported", im->nbad, im->label);
		rc = EX_DATAERR;
	}
out:
	if (txn != NULL)
		queue_txn_abort(txn);
	buf_free(&in);
	return rc;
}

static void admin_import_done(const struct admin *a, const struct admin_import *im,
    const struct admin_import_counts *cnt)
{
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "file", im->label);
		admin__json_kuint(&j, "rows", im->n);
		admin__json_kuint(&j, "added", cnt->added);
		admin__json_kuint(&j, "updated", cnt->updated);
		admin__json_kuint(&j, "unchanged", cnt->unchanged);
		admin__json_end(a, &j);
	} else {
		char *shown = admin__text_dup(im->label);

		admin__out(a, "imported %s: %zu rows, %zu added, %zu aliases extended, "
		    "%zu unchanged\n", shown, im->n, cnt->added, cnt->updated, cnt->unchanged);
		free(shown);
	}
}

int admin__mailbox_import(struct admin *a, const struct admin_args *args)
{
	const char *file = admin__arg(args, "file");
	const char *label = admin__arg(args, "--label");
	struct admin_import_counts cnt = { 0, 0, 0 };
	struct admin_import im;
	int rc;

	/*
	 * Inside govrelayd the engine runs with the daemon's permissions: it
	 * never opens a path a peer names. govrelayctl reads the file with
	 * the operator's own permissions and sends it as standard input.
	 */
	if (a->io->remote && strcmp(file, "-") != 0)
		return admin__usage(a, "govrelayd reads the rows from standard input only: give - "
		    "(govrelayctl sends a named file that way by itself)");
	memset(&im, 0, sizeof im);
	im.a = a;
	im.label = label != NULL ? label : strcmp(file, "-") == 0 ? "stdin" : file;
	buf_init(&im.errors);
	rc = admin_import_check(a, &im, file);
	if (rc == 0)
		rc = admin_import_write(a, &im, &cnt);
	if (rc == 0)
		admin_import_done(a, &im, &cnt);
	for (size_t i = 0; i < im.n; i++) {
		free(im.rows[i].addr);
		free(im.rows[i].target);
	}
	free(im.rows);
	buf_free(&im.errors);
	return rc;
}
