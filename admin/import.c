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

/* ------------------------------------------------------ mailbox import */

/*
 * `mailbox import FILE.csv`: rows "address[,alias-of]" (RFC 4180: quoted
 * fields with "" inside and line breaks allowed), blank lines and lines
 * starting with '#' skipped, an optional header row "address,alias-of".
 * Every row is checked first (canonical address, one of our domains,
 * the caller's reach, the alias target's syntax, no conflict with what
 * is stored); any bad row imports nothing. Then everything goes in ONE
 * write transaction with one audit record: a bulk load is one decision.
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
static int admin_csv_record(struct admin_csv *c, struct buf *fields, size_t nmax, size_t *nf,
    unsigned *start, const char **why)
{
	*nf = 0;
	*why = NULL;
	for (size_t i = 0; i < nmax; i++)
		buf_reset(&fields[i]);
	/* Skip blank lines and comments. */
	for (;;) {
		if (c->pos >= c->len)
			return 0;
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
		break;
	}
	*start = c->line;
	for (;;) {
		struct buf *f = *nf < nmax ? &fields[*nf] : NULL;
		bool quoted = false;

		(*nf)++;
		if (c->pos < c->len && c->p[c->pos] == '"') {
			quoted = true;
			c->pos++;
			for (;;) {
				char ch;

				if (c->pos >= c->len) {
					*why = "a quoted field is not closed";
					return -1;
				}
				ch = c->p[c->pos++];
				if (ch == '"') {
					if (c->pos < c->len && c->p[c->pos] == '"') {
						c->pos++;
					} else {
						break;
					}
				}
				if (ch == '\n')
					c->line++;
				if (ch == '\0')
					*why = "a NUL byte";
				if (f != NULL)
					buf_append_char(f, ch);
			}
		} else {
			while (c->pos < c->len && c->p[c->pos] != ',' && c->p[c->pos] != '\n' &&
			    !(c->p[c->pos] == '\r' && c->pos + 1 < c->len &&
			    c->p[c->pos + 1] == '\n') &&
			    !(c->p[c->pos] == '\r' && c->pos + 1 == c->len)) {
				char ch = c->p[c->pos++];

				if (ch == '"' && *why == NULL)
					*why = "a quote inside a field that is not quoted";
				if (ch == '\0')
					*why = "a NUL byte";
				if (f != NULL)
					buf_append_char(f, ch);
			}
		}
		if (f != NULL && !quoted) {
			/* Spaces around an unquoted field are layout, not data. */
			size_t s = 0, e = f->len;

			while (s < e && (f->data[s] == ' ' || f->data[s] == '\t'))
				s++;
			while (e > s && (f->data[e - 1] == ' ' || f->data[e - 1] == '\t'))
				e--;
			if (s > 0 || e < f->len) {
				memmove(f->data, f->data + s, e - s);
				f->len = e - s;
			}
		}
		if (f != NULL)
			buf_cstr(f);
		if (c->pos >= c->len)
			break;
		if (c->p[c->pos] == ',') {
			c->pos++;
			continue;
		}
		if (c->p[c->pos] == '\n') {
			c->pos++;
			c->line++;
			break;
		}
		if (c->p[c->pos] == '\r') {
			c->pos += (c->pos + 1 < c->len) ? 2 : 1;
			c->line++;
			break;
		}
		/* Text after a closing quote. */
		*why = "text after a closing quote";
		while (c->pos < c->len && c->p[c->pos] != '\n')
			c->pos++;
		if (c->pos < c->len) {
			c->pos++;
			c->line++;
		}
		return -1;
	}
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

/* Third pass, in the write transaction: every address once. */
static int admin_import_write(struct admin_import *im, struct queue_txn *txn,
    struct admin_import_counts *cnt, struct buf *tenants, char *why, size_t whylen)
{
	char **tv = NULL;
	size_t ntv = 0;
	int rc = 0;

	for (size_t i = 0; i < im->n;) {
		size_t j = i;
		struct queue_mailbox *old = NULL, m;
		const struct admin_domain_ent *e;
		char **targets = NULL;
		size_t nt = 0;

		while (j < im->n && strcmp(im->rows[j].addr, im->rows[i].addr) == 0)
			j++;
		rc = queue_mailbox_get(txn, im->rows[i].addr, &old);
		if (rc < 0 && rc != -ENOENT)
			break;
		rc = 0;
		memset(&m, 0, sizeof m);
		m.address = im->rows[i].addr;
		m.created = old != NULL ? old->created : time_now_ms();
		if (im->rows[i].target != NULL) {
			size_t cap = (old != NULL ? old->nalias_of : 0) + (j - i);

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
			m.alias_of = targets;
			m.nalias_of = nt;
		}
		if (old != NULL && nt == old->nalias_of) {
			cnt->unchanged++;
		} else {
			why[0] = '\0';
			rc = queue_mailbox_put(txn, &m, why, whylen);
			if (old != NULL)
				cnt->updated++;
			else
				cnt->added++;
			e = admin__domain_find(im->a, addr_domain_of(m.address));
			if (rc == 0 && e != NULL && e->tenant != NULL &&
			    (ntv == 0 || strcmp(tv[ntv - 1], e->tenant) != 0)) {
				tv = xreallocarray(tv, ntv + 1, sizeof *tv);
				tv[ntv++] = e->tenant;
			}
		}
		free(targets);
		queue_mailbox_free(old);
		if (rc < 0) {
			if (why[0] == '\0')
				snprintf(why, whylen, "%s: %s", m.address, queue_strerror(rc));
			break;
		}
		i = j;
	}
	if (ntv > 1) {
		qsort(tv, ntv, sizeof *tv, admin_strcmp_tenant);
	}
	for (size_t i = 0; i < ntv; i++) {
		if (i > 0 && strcmp(tv[i], tv[i - 1]) == 0)
			continue;
		buf_printf(tenants, "%s%s", tenants->len ? "," : "", tv[i]);
	}
	buf_cstr(tenants);
	free(tv);
	return rc;
}

int admin__mailbox_import(struct admin *a, const struct admin_args *args)
{
	const char *file = admin__arg(args, "file");
	const char *label = admin__arg(args, "--label");
	struct admin_import_counts cnt = { 0, 0, 0 };
	struct queue_audit_field f[4];
	struct admin_import im;
	struct buf in, tenants;
	struct queue_txn *txn = NULL;
	char why[ADMIN_WHY_MAX], nadd[24], nupd[24], nsame[24], nrows[24];
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
	buf_init(&in);
	buf_init(&tenants);
	if ((rc = admin_import_read(a, file, &in)) != 0)
		goto out;
	if ((rc = admin__txn(a, false, &txn)) != 0)
		goto out;
	if ((rc = admin__domains_load(a, txn)) != 0)
		goto out;
	admin_import_parse(&im, &in);
	if (im.n > 1)
		qsort(im.rows, im.n, sizeof *im.rows, admin_import_row_cmp);
	if ((rc = admin_import_conflicts(&im, txn)) < 0) {
		rc = admin__fail(a, rc, NULL, "cannot read the mailboxes");
		goto out;
	}
	queue_txn_abort(txn);
	txn = NULL;
	if (im.nbad > 0) {
		fwrite(im.errors.data, 1, im.errors.len, a->io->err);
		if (im.nbad > ADMIN_IMPORT_ERRORS_MAX)
			fprintf(a->io->err, "%s: ... and %zu more bad rows\n", im.label,
			    im.nbad - ADMIN_IMPORT_ERRORS_MAX);
		if (im.ndenied > 0) {
			rc = admin__deny(a, im.deny_tenant, "%zu rows name domains outside tenant %s; "
			    "nothing imported", im.ndenied, a->op_tenant);
		} else {
			admin__err(a, "%zu bad rows in %s; nothing imported", im.nbad, im.label);
			rc = EX_DATAERR;
		}
		goto out;
	}
	if ((rc = admin__txn(a, true, &txn)) != 0)
		goto out;
	why[0] = '\0';
	rc = admin_import_write(&im, txn, &cnt, &tenants, why, sizeof why);
	if (rc == 0 && cnt.added + cnt.updated > 0) {
		snprintf(nadd, sizeof nadd, "%zu", cnt.added);
		snprintf(nupd, sizeof nupd, "%zu", cnt.updated);
		snprintf(nsame, sizeof nsame, "%zu", cnt.unchanged);
		snprintf(nrows, sizeof nrows, "%zu", im.n);
		f[0] = (struct queue_audit_field){ "count", nadd };
		f[1] = (struct queue_audit_field){ "updated", nupd };
		f[2] = (struct queue_audit_field){ "unchanged", nsame };
		f[3] = (struct queue_audit_field){ "rows", nrows };
		rc = admin__audit(a, txn, buf_cstr(&tenants), im.label, f, 4);
	}
	if (rc < 0) {
		queue_txn_abort(txn);
		txn = NULL;
		rc = admin__fail(a, rc, why, "cannot import %s; nothing imported", im.label);
		goto out;
	}
	rc = admin__commit(a, txn, "the import");
	txn = NULL;
	if (rc != 0)
		goto out;
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "file", im.label);
		admin__json_kuint(&j, "rows", im.n);
		admin__json_kuint(&j, "added", cnt.added);
		admin__json_kuint(&j, "updated", cnt.updated);
		admin__json_kuint(&j, "unchanged", cnt.unchanged);
		admin__json_end(a, &j);
	} else {
		char *shown = admin__text_dup(im.label);

		admin__out(a, "imported %s: %zu rows, %zu added, %zu aliases extended, "
		    "%zu unchanged\n", shown, im.n, cnt.added, cnt.updated, cnt.unchanged);
		free(shown);
	}
	rc = EX_OK;
out:
	queue_txn_abort(txn);
	for (size_t i = 0; i < im.n; i++) {
		free(im.rows[i].addr);
		free(im.rows[i].target);
	}
	free(im.rows);
	buf_free(&im.errors);
	buf_free(&in);
	buf_free(&tenants);
	return rc;
}

