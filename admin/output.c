/*
 * admin/output: what the engine prints: terminal-safe text, aligned
 * tables, "key: value" lines, JSON objects (one per line, keys in order),
 * ISO 8601 times and RFC 4180 CSV fields.
 *
 * Entry points: admin__text, admin__width, admin__pad, admin__cell, the
 * admin__table_*, admin__kv, the admin__json_*, admin__time,
 * admin__strerror, admin__csv_field (admin_int.h).
 * OWNERSHIP: tables own their cells until admin__table_free.
 * THREADS: any (no static state). ERRORS: none; output errors are seen
 * once by admin_run's final fflush.
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

/* ------------------------------------------------------------ output */

/*
 * Text for a terminal: C0 and C1 control characters, DEL and invalid
 * UTF-8 become \xNN, so a stored name or a remote reply can never move
 * the cursor or forge a line (U+009B is CSI on some terminals). Other
 * UTF-8 is kept.
 */
void admin__text(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		size_t n = *p >= 0x80 ? str_utf8_seq_len(p) : 1;

		if (n == 0 || *p < 0x20 || *p == 0x7f || (*p == 0xc2 && p[1] < 0xa0)) {
			buf_printf(b, "\\x%02X", *p);
			p++;
			continue;
		}
		buf_append(b, p, n);
		p += n;
	}
}

char *admin__text_dup(const char *s)
{
	struct buf b;

	buf_init(&b);
	admin__text(&b, s != NULL ? s : "-");
	buf_cstr(&b);
	return buf_steal(&b, NULL);
}

/* Display width: one column per UTF-8 character (wide CJK aside). */
size_t admin__width(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

void admin__pad(struct buf *b, const char *s, size_t width)
{
	size_t w;
	char *t = admin__text_dup(s);

	w = admin__width(t);
	buf_append_str(b, t);
	for (; w < width; w++)
		buf_append_char(b, ' ');
	free(t);
}

void admin__table_row(struct admin_table *t, const char *const *cols)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = xreallocarray(t->cells, t->cap, t->ncols * sizeof *t->cells);
	}
	for (size_t c = 0; c < t->ncols; c++)
		t->cells[t->nrows * t->ncols + c] = admin__text_dup(cols[c]);
	t->nrows++;
}

void admin__cell(struct buf *b, const char *s, size_t width, char align, bool last)
{
	size_t w = admin__width(s), pad = width > w ? width - w : 0;

	if (align == 'r')
		for (size_t i = 0; i < pad; i++)
			buf_append_char(b, ' ');
	buf_append_str(b, s);
	if (!last && align != 'r')
		for (size_t i = 0; i < pad; i++)
			buf_append_char(b, ' ');
	if (!last)
		buf_append_str(b, "  ");
}

void admin__table_print(const struct admin *a, const struct admin_table *t)
{
	size_t *w = xcalloc(t->ncols, sizeof *w);
	struct buf b;

	buf_init(&b);
	for (size_t c = 0; c < t->ncols; c++) {
		w[c] = admin__width(t->head[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t cw = admin__width(t->cells[r * t->ncols + c]);

			if (cw > w[c])
				w[c] = cw;
		}
	}
	for (size_t c = 0; c < t->ncols; c++)
		admin__cell(&b, t->head[c], w[c], t->align[c], c + 1 == t->ncols);
	buf_append_char(&b, '\n');
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++)
			admin__cell(&b, t->cells[r * t->ncols + c], w[c], t->align[c],
			    c + 1 == t->ncols);
		buf_append_char(&b, '\n');
		if (b.len > 65536) {
			admin__out_buf(a, &b);
			buf_reset(&b);
		}
	}
	admin__out_buf(a, &b);
	buf_free(&b);
	free(w);
}

void admin__table_free(struct admin_table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

void admin__kv(const struct admin *a, const char *indent, const char *key, const char *value)
{
	char *v = admin__text_dup(value);

	fprintf(a->io->out, "%s%s: %s\n", indent, key, v);
	free(v);
}

/*
 * A JSON string (RFC 8259 section 7): '"', '\\' and every byte below 0x20
 * and DEL are escaped; valid UTF-8 passes through; a byte that is not
 * part of valid UTF-8 becomes U+FFFD, so the output is always valid JSON
 * whatever is stored.
 */
void admin__json_str(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL) {
		buf_append_str(b, "null");
		return;
	}
	buf_append_char(b, '"');
	while (*p != '\0') {
		unsigned char c = *p;

		if (c == '"' || c == '\\') {
			buf_append_char(b, '\\');
			buf_append_char(b, (char)c);
		} else if (c == '\n') {
			buf_append_str(b, "\\n");
		} else if (c == '\r') {
			buf_append_str(b, "\\r");
		} else if (c == '\t') {
			buf_append_str(b, "\\t");
		} else if (c < 0x20 || c == 0x7f) {
			buf_printf(b, "\\u%04x", c);
		} else if (c >= 0x80) {
			size_t n = str_utf8_seq_len(p);

			if (n == 0) {
				buf_append_str(b, "\\ufffd");
			} else {
				buf_append(b, p, n);
				p += n;
				continue;
			}
		} else {
			buf_append_char(b, (char)c);
		}
		p++;
	}
	buf_append_char(b, '"');
}

void admin__json_sep(struct admin_json *j, const char *key)
{
	if (!j->first[j->depth])
		buf_append_char(&j->b, ',');
	j->first[j->depth] = false;
	if (key != NULL) {
		admin__json_str(&j->b, key);
		buf_append_char(&j->b, ':');
	}
}

void admin__json_open(struct admin_json *j, const char *key, char c)
{
	if (j->depth >= 0)
		admin__json_sep(j, key);
	buf_append_char(&j->b, c);
	j->depth++;
	if (j->depth >= (int)(sizeof j->first / sizeof j->first[0]))
		panic("govrelayctl: JSON nested too deep");
	j->first[j->depth] = true;
}

void admin__json_close(struct admin_json *j, char c)
{
	buf_append_char(&j->b, c);
	j->depth--;
}

void admin__json_begin(struct admin_json *j)
{
	buf_init(&j->b);
	j->depth = -1;
	admin__json_open(j, NULL, '{');
}

void admin__json_end(const struct admin *a, struct admin_json *j)
{
	admin__json_close(j, '}');
	buf_append_char(&j->b, '\n');
	admin__out_buf(a, &j->b);
	buf_free(&j->b);
}

void admin__json_kstr(struct admin_json *j, const char *key, const char *v)
{
	admin__json_sep(j, key);
	admin__json_str(&j->b, v);
}

void admin__json_kint(struct admin_json *j, const char *key, int64_t v)
{
	admin__json_sep(j, key);
	buf_printf(&j->b, "%" PRId64, v);
}

void admin__json_kuint(struct admin_json *j, const char *key, uint64_t v)
{
	admin__json_sep(j, key);
	buf_printf(&j->b, "%" PRIu64, v);
}

void admin__json_kbool(struct admin_json *j, const char *key, bool v)
{
	admin__json_sep(j, key);
	buf_append_str(&j->b, v ? "true" : "false");
}

void admin__json_kraw(struct admin_json *j, const char *key, const char *raw)
{
	admin__json_sep(j, key);
	buf_append_str(&j->b, raw);
}

const char *admin__time(int64_t ms, bool set, char out[ADMIN_TIME_LEN])
{
	if (!set)
		return NULL;
	time_format_iso(ms, out, ADMIN_TIME_LEN);
	return out;
}

const char *admin__strerror(int err, char *buf, size_t len)
{
	return strerror_r(err, buf, len);
}

/* RFC 4180 section 2: quote a field holding a comma, a quote or a line break. */
void admin__csv_field(struct buf *b, const char *s)
{
	if (s == NULL)
		s = "";
	if (strpbrk(s, ",\"\r\n") == NULL) {
		buf_append_str(b, s);
		return;
	}
	buf_append_char(b, '"');
	for (; *s != '\0'; s++) {
		if (*s == '"')
			buf_append_char(b, '"');
		buf_append_char(b, *s);
	}
	buf_append_char(b, '"');
}

