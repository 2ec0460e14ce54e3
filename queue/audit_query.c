/*
 * audit_query: the audit chain read by people (issue 4, `govrelayctl audit
 * search|export|verify`): time arguments, a record's canonical line taken
 * apart into fields, and a filtered, streaming search. The detailed
 * verification, audit_verify_detail, lives in queue/audit.c beside the
 * chain code it shares.
 *
 * Entry points: audit_time_parse (a --since/--until argument),
 * audit_entry_parse/audit_entry_clear/audit_entry_get (one record's line),
 * audit_search/audit_search_ex (filtered walk with a callback per match).
 *
 * The search reads LMDB directly (queue_int.h): records are keyed by
 * big-endian seq 1..N and their times do not decrease (up to
 * AUDIT_TIME_SLACK_MS), so the first record of a time window is found by
 * bisection over seq with MDB_SET_RANGE, and one cursor walks forward
 * from there until the window ends.
 *
 * OWNERSHIP: arguments are borrowed. audit_entry_parse fills an entry the
 * caller owns and frees with audit_entry_clear. The entry given to a search
 * callback belongs to the search and lives until the callback returns.
 * THREADS: any thread that owns the txn; no state outlives a call.
 * ERRORS: audit_time_parse -EINVAL; audit_entry_parse -EBADMSG; the search
 * -EBADMSG (a record read does not decode), -EIO, or the callback's value.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lmdb.h>

#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/audit_event.h"
#include "queue/audit_query.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/schema.h"

#define AUDIT_MS_PER_DAY INT64_C(86400000)
/* 9999-12-31T23:59:59.999Z: audit.c's lines keep a four-digit year. */
#define AUDIT_TIME_MAX INT64_C(253402300799999)
/* "2026-11-23T11:30:00.123Z", as queue/audit.c writes it. */
#define AUDIT_CANON_TIME_LEN 24
/* Room for anything the time format could print (no truncation). */
#define AUDIT_TIME_BUF 80
#define AUDIT_KEY_MAX 64
/* Digits accepted in "-NNNu" and "@NNN": enough for any year up to 9999. */
#define AUDIT_NUM_DIGITS_MAX 12

/* The message filters, as bits (audit_query.h "PROPAGATION"). */
#define AUDIT_F_SENDER 0x1u
#define AUDIT_F_RCPT 0x2u
#define AUDIT_F_TENANT 0x4u

/* --------------------------------------------------------- calendar */

/*
 * Days between 1970-01-01 and y-m-d in the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil), so parsing needs neither timegm nor TZ.
 */
static int64_t audit_days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void audit_civil_from_days(int64_t z, int *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

static int audit_days_in_month(int y, int m)
{
	static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dim[m - 1];
}

/* The canonical spelling queue/audit.c writes; ms in [0, AUDIT_TIME_MAX]. */
static void audit_format_time(int64_t ms, char out[AUDIT_TIME_BUF])
{
	int64_t rem = ms % AUDIT_MS_PER_DAY;
	int y, mo, d;

	audit_civil_from_days(ms / AUDIT_MS_PER_DAY, &y, &mo, &d);
	snprintf(out, AUDIT_TIME_BUF, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, mo, d,
	    (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
	    (int)(rem % 1000));
}

/* ------------------------------------------------------- time input */

static bool audit_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Exactly n digits at *p into *v; advances *p. */
static bool audit_digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (!audit_is_digit((*p)[i]))
			return false;
		*v = *v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	return true;
}

/* One literal character; never steps over the terminating NUL. */
static bool audit_lit(const char **p, char c)
{
	if (**p != c)
		return false;
	(*p)++;
	return true;
}

/* ISO 8601 as audit_query.h describes it. */
static int audit_iso_parse(const char *s, int64_t *ms)
{
	const char *p = s;
	int y, mo, d, h = 0, mi = 0, se = 0, zh = 0, zm = 0;
	int64_t frac = 0, off = 0, t;

	if (!audit_digits(&p, 4, &y) || !audit_lit(&p, '-') || !audit_digits(&p, 2, &mo) ||
	    !audit_lit(&p, '-') || !audit_digits(&p, 2, &d))
		return -EINVAL;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > audit_days_in_month(y, mo))
		return -EINVAL;
	if (*p != '\0') {
		if (*p != 'T' && *p != 't' && *p != ' ')
			return -EINVAL;
		p++;
		if (!audit_digits(&p, 2, &h) || !audit_lit(&p, ':') || !audit_digits(&p, 2, &mi))
			return -EINVAL;
		if (audit_lit(&p, ':')) {
			if (!audit_digits(&p, 2, &se))
				return -EINVAL;
			if (*p == '.' || *p == ',') {
				int nd = 0;

				for (p++; audit_is_digit(*p); p++, nd++)
					if (nd < 3)
						frac = frac * 10 + (*p - '0');
				if (nd == 0 || nd > 9)
					return -EINVAL;
				for (; nd < 3; nd++)
					frac *= 10;
			}
		}
		/* No leap second: the audit line never holds one either. */
		if (h > 23 || mi > 59 || se > 59)
			return -EINVAL;
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int64_t sign = *p == '-' ? -1 : 1;

			p++;
			if (!audit_digits(&p, 2, &zh))
				return -EINVAL;
			if (audit_lit(&p, ':')) {
				if (!audit_digits(&p, 2, &zm))
					return -EINVAL;
			} else if (audit_is_digit(*p) && !audit_digits(&p, 2, &zm)) {
				return -EINVAL;
			}
			if (zh > 23 || zm > 59)
				return -EINVAL;
			off = sign * ((int64_t)zh * 3600000 + (int64_t)zm * 60000);
		}
		if (*p != '\0')
			return -EINVAL;
	}
	/* Local time at +07:00 is seven hours ahead of UTC: subtract it. */
	t = audit_days_from_civil(y, mo, d) * AUDIT_MS_PER_DAY + (int64_t)h * 3600000 +
	    (int64_t)mi * 60000 + (int64_t)se * 1000 + frac - off;
	if (t < 0)
		return -EINVAL;
	*ms = t;
	return 0;
}

/* 1..AUDIT_NUM_DIGITS_MAX digits ending the string exactly where *end says. */
static bool audit_number(const char *p, int64_t *v, const char **end)
{
	int n = 0;

	*v = 0;
	for (; audit_is_digit(p[n]); n++) {
		if (n >= AUDIT_NUM_DIGITS_MAX)
			return false;
		*v = *v * 10 + (p[n] - '0');
	}
	*end = p + n;
	return n > 0;
}

int audit_time_parse(const char *s, int64_t now_ms, int64_t *ms)
{
	const char *end;
	int64_t n, unit;

	if (s == NULL || ms == NULL)
		return -EINVAL;
	if (strcmp(s, "now") == 0) {
		if (now_ms < 0)
			return -EINVAL;
		*ms = now_ms;
		return 0;
	}
	if (s[0] == '@') {
		if (!audit_number(s + 1, &n, &end) || *end != '\0' || n > AUDIT_TIME_MAX / 1000)
			return -EINVAL;
		*ms = n * 1000;
		return 0;
	}
	if (s[0] == '-') {
		if (!audit_number(s + 1, &n, &end) || end[0] == '\0' || end[1] != '\0')
			return -EINVAL;
		switch (end[0]) {
		case 's': unit = 1000; break;
		case 'm': unit = 60000; break;
		case 'h': unit = 3600000; break;
		case 'd': unit = AUDIT_MS_PER_DAY; break;
		default: return -EINVAL;
		}
		/* n has at most 12 digits, so n * unit cannot overflow once n <= now/unit. */
		if (now_ms < 0 || n > now_ms / unit)
			return -EINVAL;
		*ms = now_ms - n * unit;
		return 0;
	}
	return audit_iso_parse(s, ms);
}

/* ------------------------------------------------------------ entries */

static bool audit_key_is_valid(const char *k, size_t n)
{
	if (n == 0 || n > AUDIT_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = k[i];

		if (!((c >= 'a' && c <= 'z') || audit_is_digit(c) || c == '_' || c == '.' ||
		    c == '-'))
			return false;
	}
	return true;
}

static bool audit_key_is(const char *k, size_t n, const char *want)
{
	return strlen(want) == n && memcmp(k, want, n) == 0;
}

static int audit_hexval(char c)
{
	if (audit_is_digit(c))
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Undoes queue/audit.c's escaping (schema.h: space, '=', '\\', control
 * and non-ASCII bytes as \xNN, uppercase hex) into a fresh string. A raw
 * byte that should have been escaped, a broken escape or \x00 (values
 * cannot hold NUL) is -EBADMSG.
 */
static int audit_unescape(const char *s, size_t len, char **out)
{
	char *o = xmalloc(len + 1);
	size_t n = 0;

	*out = NULL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int hi, lo;

		if (c == '\\') {
			if (len - i < 4 || s[i + 1] != 'x' || (hi = audit_hexval(s[i + 2])) < 0 ||
			    (lo = audit_hexval(s[i + 3])) < 0 || (hi == 0 && lo == 0))
				goto fail;
			o[n++] = (char)(hi << 4 | lo);
			i += 3;
		} else if (c <= 0x20 || c >= 0x7f || c == '=') {
			goto fail;
		} else {
			o[n++] = (char)c;
		}
	}
	o[n] = '\0';
	*out = o;
	return 0;
fail:
	free(o);
	return -EBADMSG;
}

/* "seq=" value: decimal, no sign, no leading zero, not 0, fits u64. */
static int audit_parse_seq(const char *v, size_t n, uint64_t *seq)
{
	if (n == 0 || n > 20 || v[0] == '0')
		return -EBADMSG;
	*seq = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t d;

		if (!audit_is_digit(v[i]))
			return -EBADMSG;
		d = (uint64_t)(v[i] - '0');
		if (*seq > (UINT64_MAX - d) / 10)
			return -EBADMSG;
		*seq = *seq * 10 + d;
	}
	return 0;
}

/* "time=" value: only the canonical spelling (no 31 April, no other zone). */
static int audit_parse_canon_time(const char *v, size_t n, int64_t *ms)
{
	char copy[AUDIT_CANON_TIME_LEN + 1], again[AUDIT_TIME_BUF];

	if (n != AUDIT_CANON_TIME_LEN || memchr(v, '\0', n) != NULL)
		return -EBADMSG;
	memcpy(copy, v, n);
	copy[n] = '\0';
	if (audit_iso_parse(copy, ms) < 0 || *ms > AUDIT_TIME_MAX)
		return -EBADMSG;
	audit_format_time(*ms, again);
	return strcmp(again, copy) == 0 ? 0 : -EBADMSG;
}

static void audit_entry_add(struct audit_entry *e, size_t *cap, char *key, char *value)
{
	if (e->nfields == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		e->fields = xreallocarray(e->fields, *cap, sizeof *e->fields);
	}
	e->fields[e->nfields].key = key;
	e->fields[e->nfields].value = value;
	e->nfields++;
}

int audit_entry_parse(const struct queue_audit_rec *rec, struct audit_entry *out)
{
	const char *p, *end, *q, *eq, *val;
	size_t cap = 0, klen, vlen;
	unsigned idx = 0;
	char *s;

	memset(out, 0, sizeof *out);
	if (rec == NULL || rec->line == NULL || rec->line[0] == '\0')
		return -EBADMSG;
	p = rec->line;
	end = p + strlen(p);
	for (;;) {
		q = memchr(p, ' ', (size_t)(end - p));
		if (q == NULL)
			q = end;
		eq = memchr(p, '=', (size_t)(q - p));
		if (eq == NULL)
			goto fail;
		klen = (size_t)(eq - p);
		val = eq + 1;
		vlen = (size_t)(q - val);
		if (!audit_key_is_valid(p, klen))
			goto fail;
		/* The line starts with seq, time, qid and event, in this order. */
		switch (idx) {
		case 0:
			if (!audit_key_is(p, klen, "seq") ||
			    audit_parse_seq(val, vlen, &out->seq) < 0)
				goto fail;
			if (rec->seq != 0 && rec->seq != out->seq)
				goto fail;
			break;
		case 1:
			if (!audit_key_is(p, klen, "time") ||
			    audit_parse_canon_time(val, vlen, &out->time) < 0)
				goto fail;
			break;
		case 2:
			if (!audit_key_is(p, klen, "qid") ||
			    audit_unescape(val, vlen, &out->qid) < 0)
				goto fail;
			break;
		case 3:
			if (!audit_key_is(p, klen, "event") || vlen == 0 ||
			    audit_unescape(val, vlen, &out->event) < 0)
				goto fail;
			break;
		default:
			/* audit.c refuses facts named like the head: a sign of tampering. */
			if (audit_key_is(p, klen, "seq") || audit_key_is(p, klen, "time") ||
			    audit_key_is(p, klen, "qid") || audit_key_is(p, klen, "event") ||
			    out->nfields >= AUDIT_FIELDS_MAX || audit_unescape(val, vlen, &s) < 0)
				goto fail;
			audit_entry_add(out, &cap, xstrndup(p, klen), s);
			break;
		}
		idx++;
		if (q == end)
			break;
		p = q + 1;
		/* One space between pairs, none at the end. */
		if (p == end)
			goto fail;
	}
	if (idx < 4)
		goto fail;
	hex_encode(rec->hash, QUEUE_AUDIT_HASH_LEN, out->hash_hex);
	hex_encode(rec->prev, QUEUE_AUDIT_HASH_LEN, out->prev_hex);
	return 0;
fail:
	audit_entry_clear(out);
	return -EBADMSG;
}

void audit_entry_clear(struct audit_entry *e)
{
	if (e == NULL)
		return;
	free(e->qid);
	free(e->event);
	for (size_t i = 0; i < e->nfields; i++) {
		free(e->fields[i].key);
		free(e->fields[i].value);
	}
	free(e->fields);
	memset(e, 0, sizeof *e);
}

const char *audit_entry_get(const struct audit_entry *e, const char *key)
{
	for (size_t i = 0; i < e->nfields; i++)
		if (strcmp(e->fields[i].key, key) == 0)
			return e->fields[i].value;
	return NULL;
}

/* ------------------------------------------------------------ matching */

static char audit_ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* ASCII-only case folding: independent of the locale the CLI runs in. */
static bool audit_ieq(const char *a, size_t an, const char *b, size_t bn)
{
	if (an != bn)
		return false;
	for (size_t i = 0; i < an; i++)
		if (audit_ascii_lower(a[i]) != audit_ascii_lower(b[i]))
			return false;
	return true;
}

/* One pair of enclosing angle brackets does not change the address. */
static void audit_addr_trim(const char **s, size_t *n)
{
	if (*n >= 2 && (*s)[0] == '<' && (*s)[*n - 1] == '>') {
		(*s)++;
		*n -= 2;
	}
}

static bool audit_addr_eq(const char *fact, bool is_orcpt, const char *want)
{
	size_t fn, wn = strlen(want);
	const char *semi;

	/* RFC 3461 section 4.2: ORCPT is "addr-type ; xtext"; compare the address. */
	if (is_orcpt && (semi = strchr(fact, ';')) != NULL)
		fact = semi + 1;
	fn = strlen(fact);
	audit_addr_trim(&fact, &fn);
	audit_addr_trim(&want, &wn);
	return audit_ieq(fact, fn, want, wn);
}

/* A comma list of tenant ids (blanks around ids ignored) holding want. */
static bool audit_tenant_has(const char *list, const char *want)
{
	size_t wn = strlen(want);
	const char *p = list;

	for (;;) {
		const char *q = strchr(p, ',');
		const char *e = q ? q : p + strlen(p);

		while (p < e && *p == ' ')
			p++;
		while (e > p && e[-1] == ' ')
			e--;
		if ((size_t)(e - p) == wn && memcmp(p, want, wn) == 0)
			return true;
		if (q == NULL)
			return false;
		p = q + 1;
	}
}

/*
 * For each message filter f sets: does e carry facts of that kind (*has),
 * and does one of them match (*ok)? Only filters that are set count.
 */
static void audit_judge(const struct audit_filter *f, const struct audit_entry *e,
    unsigned *has, unsigned *ok)
{
	*has = 0;
	*ok = 0;
	for (size_t i = 0; i < e->nfields; i++) {
		const char *k = e->fields[i].key, *v = e->fields[i].value;

		if (f->sender != NULL && strcmp(k, "from") == 0) {
			*has |= AUDIT_F_SENDER;
			if (audit_addr_eq(v, false, f->sender))
				*ok |= AUDIT_F_SENDER;
		} else if (f->recipient != NULL && (strcmp(k, "to") == 0 ||
		    strcmp(k, "rcpt") == 0 || strcmp(k, "orcpt") == 0)) {
			*has |= AUDIT_F_RCPT;
			if (audit_addr_eq(v, strcmp(k, "orcpt") == 0, f->recipient))
				*ok |= AUDIT_F_RCPT;
		} else if (f->tenant != NULL && strcmp(k, "tenant") == 0) {
			*has |= AUDIT_F_TENANT;
			if (audit_tenant_has(v, f->tenant))
				*ok |= AUDIT_F_TENANT;
		}
	}
}

/* ------------------------------------------------------------- qid set */

/*
 * Open addressing with linear probing over the 64-bit queue ids; a slot
 * is free when its bits are 0 (only ids that matched something are
 * stored). The load stays at most one half, and the count at most
 * AUDIT_QID_SET_MAX, so the table never exceeds 2^21 slots (9 bytes each).
 */
struct audit_qset {
	uint64_t *keys;
	uint8_t *bits;
	size_t cap;      /* a power of two, or 0 */
	size_t n;
	uint64_t dropped;
};

static size_t audit_qset_slot(const struct audit_qset *s, uint64_t id)
{
	/* splitmix64's finalizer: queue ids are close together in the low bits. */
	uint64_t h = id;
	size_t i;

	h ^= h >> 33;
	h *= UINT64_C(0xff51afd7ed558ccd);
	h ^= h >> 33;
	h *= UINT64_C(0xc4ceb9fe1a85ec53);
	h ^= h >> 33;
	i = (size_t)h & (s->cap - 1);
	while (s->bits[i] != 0 && s->keys[i] != id)
		i = (i + 1) & (s->cap - 1);
	return i;
}

static unsigned audit_qset_get(const struct audit_qset *s, uint64_t id)
{
	return s->cap == 0 ? 0 : s->bits[audit_qset_slot(s, id)];
}

static void audit_qset_grow(struct audit_qset *s)
{
	struct audit_qset old = *s;

	s->cap = old.cap ? old.cap * 2 : 1024;
	s->keys = xcalloc(s->cap, sizeof *s->keys);
	s->bits = xcalloc(s->cap, sizeof *s->bits);
	for (size_t i = 0; i < old.cap; i++) {
		if (old.bits[i] != 0) {
			size_t j = audit_qset_slot(s, old.keys[i]);

			s->keys[j] = old.keys[i];
			s->bits[j] = old.bits[i];
		}
	}
	free(old.keys);
	free(old.bits);
}

static void audit_qset_add(struct audit_qset *s, uint64_t id, unsigned bits)
{
	size_t i;

	if (s->cap != 0) {
		i = audit_qset_slot(s, id);
		if (s->bits[i] != 0) {
			s->bits[i] |= (uint8_t)bits;
			return;
		}
	}
	/* Full: the bound of audit_query.h; this message is counted, not kept. */
	if (s->n >= AUDIT_QID_SET_MAX) {
		s->dropped++;
		return;
	}
	if ((s->n + 1) * 2 > s->cap)
		audit_qset_grow(s);
	i = audit_qset_slot(s, id);
	s->keys[i] = id;
	s->bits[i] = (uint8_t)bits;
	s->n++;
}

static void audit_qset_free(struct audit_qset *s)
{
	free(s->keys);
	free(s->bits);
}

/* -------------------------------------------------------------- search */

struct audit_search {
	struct queue_txn *txn;
	const struct audit_filter *f;
	unsigned want;            /* AUDIT_F_* of the message filters given */
	int64_t since, until;     /* 0: none */
	uint64_t first, last;     /* the chain's first and last keys */
	MDB_cursor *probe;        /* bisection and read-back; opened on demand */
	struct buf line;
	struct audit_qset qset;
	uint64_t low_seq;         /* records from here on have been (or will be) read */
	int64_t covered_from;     /* received records at or after this time are known */
	struct audit_search_stats st;
	/* Between steps (each in its own transaction): where the walk goes on. */
	bool started, finished;
	uint64_t next;            /* the next seq to read */
	int64_t stop;             /* records at or after this time end the walk */
};

/* Decodes one stored record (key k, value v) into e. */
static int audit_search_decode(struct audit_search *s, const MDB_val *k, const MDB_val *v,
    struct audit_entry *e)
{
	struct queue_audit_rec rec;
	const uint8_t *data = v->mv_data;
	size_t llen;

	memset(e, 0, sizeof *e);
	if (k->mv_size != QUEUE_KEY_AUDIT_LEN || v->mv_size < 2 * QUEUE_AUDIT_HASH_LEN)
		return -EBADMSG;
	memset(&rec, 0, sizeof rec);
	rec.seq = queue__be64_get(k->mv_data);
	memcpy(rec.prev, data, QUEUE_AUDIT_HASH_LEN);
	memcpy(rec.hash, data + QUEUE_AUDIT_HASH_LEN, QUEUE_AUDIT_HASH_LEN);
	llen = v->mv_size - 2 * QUEUE_AUDIT_HASH_LEN;
	buf_reset(&s->line);
	buf_append(&s->line, data + 2 * QUEUE_AUDIT_HASH_LEN, llen);
	rec.line = buf_cstr(&s->line);
	if (memchr(rec.line, '\0', llen) != NULL)
		return -EBADMSG;
	s->st.records_read++;
	return audit_entry_parse(&rec, e);
}

static int audit_search_probe_open(struct audit_search *s)
{
	int rc;

	if (s->probe != NULL)
		return 0;
	rc = mdb_cursor_open(s->txn->txn, s->txn->store->db_audit, &s->probe);
	return rc == MDB_SUCCESS ? 0 : queue__lmdb_err(rc);
}

/*
 * The smallest seq from which every record has time >= t (s->last + 1
 * when none has). Keys are 1..N without gaps in an intact chain; with
 * MDB_SET_RANGE a probe lands on the next record that exists, so a
 * damaged chain still bisects instead of failing on a missing key.
 */
static int audit_search_bisect(struct audit_search *s, int64_t t, uint64_t *out)
{
	uint64_t lo = s->first, hi = s->last + 1;
	uint8_t key[QUEUE_KEY_AUDIT_LEN];
	struct audit_entry e;
	MDB_val k, v;
	int rc;

	if ((rc = audit_search_probe_open(s)) < 0)
		return rc;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2, at;
		int64_t time;

		queue__be64_put(key, mid);
		k.mv_size = sizeof key;
		k.mv_data = key;
		rc = mdb_cursor_get(s->probe, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND)
			return -EBADMSG; /* mid <= last, so a record must follow */
		if (rc != MDB_SUCCESS)
			return queue__lmdb_err(rc);
		if ((rc = audit_search_decode(s, &k, &v, &e)) < 0)
			return rc;
		at = e.seq;
		time = e.time;
		audit_entry_clear(&e);
		if (at < mid)
			return -EBADMSG;
		if (time >= t)
			hi = mid;
		else
			lo = at + 1;
	}
	*out = lo;
	return 0;
}

/* Remembers a `received` record that matched message filters on its own. */
static void audit_search_track(struct audit_search *s, const struct audit_entry *e)
{
	unsigned has, ok;
	uint64_t id;

	if (s->want == 0 ||
	    strcmp(e->event, queue_audit_event_name(QUEUE_AUDIT_RECEIVED)) != 0 ||
	    queue_id_parse(e->qid, &id) < 0)
		return;
	audit_judge(s->f, e, &has, &ok);
	if ((ok & s->want) != 0)
		audit_qset_add(&s->qset, id, ok & s->want);
}

/*
 * Reads records [from seq of time `from`, s->low_seq) for their received
 * records only, then counts them as read: each record is read back at
 * most once, however many messages ask.
 */
static int audit_search_read_back(struct audit_search *s, int64_t from)
{
	uint8_t key[QUEUE_KEY_AUDIT_LEN];
	struct audit_entry e;
	MDB_val k, v;
	uint64_t start;
	int rc;

	if ((rc = audit_search_bisect(s, from, &start)) < 0)
		return rc;
	if (start < s->low_seq) {
		queue__be64_put(key, start);
		k.mv_size = sizeof key;
		k.mv_data = key;
		for (rc = mdb_cursor_get(s->probe, &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
		    rc = mdb_cursor_get(s->probe, &k, &v, MDB_NEXT)) {
			if (k.mv_size == QUEUE_KEY_AUDIT_LEN &&
			    queue__be64_get(k.mv_data) >= s->low_seq)
				break;
			if ((rc = audit_search_decode(s, &k, &v, &e)) < 0)
				return rc;
			audit_search_track(s, &e);
			audit_entry_clear(&e);
		}
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			return queue__lmdb_err(rc);
		s->low_seq = start;
	}
	s->covered_from = from;
	return 0;
}

/* Whether e passes every filter; may read back for propagation. */
static int audit_search_match(struct audit_search *s, const struct audit_entry *e,
    bool *match)
{
	const struct audit_filter *f = s->f;
	unsigned has, ok, need, bits;
	uint64_t id;
	int rc;

	*match = false;
	if (s->since > 0 && e->time < s->since)
		return 0;
	if (s->until > 0 && e->time >= s->until)
		return 0;
	if (f->event != NULL && strcmp(e->event, f->event) != 0)
		return 0;
	if (f->qid != NULL && !audit_ieq(e->qid, strlen(e->qid), f->qid, strlen(f->qid)))
		return 0;
	if (s->want == 0) {
		*match = true;
		return 0;
	}
	audit_judge(f, e, &has, &ok);
	/* A record that carries facts of a kind is judged by them. */
	if ((has & ~ok) != 0)
		return 0;
	need = s->want & ~has;
	if (need == 0) {
		*match = true;
		return 0;
	}
	/* The rest it inherits from its message's received record. */
	if (queue_id_parse(e->qid, &id) < 0)
		return 0;
	bits = audit_qset_get(&s->qset, id);
	if ((bits & need) != need) {
		/* Queue ids are arrival times in microseconds (queue.h). */
		int64_t from = (int64_t)(id / 1000) - AUDIT_TIME_SLACK_MS;

		if (from < s->covered_from) {
			if ((rc = audit_search_read_back(s, from)) < 0)
				return rc;
			bits = audit_qset_get(&s->qset, id);
		}
	}
	*match = (bits & need) == need;
	return 0;
}

static int audit_search_bounds(struct audit_search *s, MDB_cursor *c, bool *empty)
{
	MDB_val k, v;
	int rc;

	*empty = false;
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	if (rc == MDB_NOTFOUND) {
		*empty = true;
		return 0;
	}
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	if (k.mv_size != QUEUE_KEY_AUDIT_LEN)
		return -EBADMSG;
	s->first = queue__be64_get(k.mv_data);
	rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	if (k.mv_size != QUEUE_KEY_AUDIT_LEN)
		return -EBADMSG;
	s->last = queue__be64_get(k.mv_data);
	/* seq N + 1 must stay representable for the bisection's end. */
	if (s->last == UINT64_MAX || s->last < s->first)
		return -EBADMSG;
	return 0;
}

struct audit_search *audit_search_new(const struct audit_filter *f)
{
	static const struct audit_filter none;
	struct audit_search *s = xcalloc(1, sizeof *s);

	s->f = f != NULL ? f : &none;
	s->since = s->f->since > 0 ? s->f->since : 0;
	s->until = s->f->until > 0 ? s->f->until : 0;
	s->want = (s->f->sender ? AUDIT_F_SENDER : 0) | (s->f->recipient ? AUDIT_F_RCPT : 0) |
	    (s->f->tenant ? AUDIT_F_TENANT : 0);
	s->covered_from = INT64_MIN;
	s->stop = INT64_MAX;
	buf_init(&s->line);
	return s;
}

void audit_search_free(struct audit_search *s)
{
	if (s == NULL)
		return;
	audit_qset_free(&s->qset);
	buf_free(&s->line);
	free(s);
}

void audit_search_stats_get(const struct audit_search *s, struct audit_search_stats *out)
{
	*out = s->st;
	out->untracked = s->qset.dropped;
}

/* The first step: the chain's bounds, where the walk starts and ends. */
static int audit_search_begin(struct audit_search *s, MDB_cursor *c)
{
	bool empty;
	int rc;

	s->started = true;
	if ((rc = audit_search_bounds(s, c, &empty)) < 0)
		return rc;
	if (empty) {
		s->finished = true;
		return 0;
	}
	s->next = s->first;
	if (s->since > 0) {
		/* Start a little early: records may be slightly out of time order. */
		if ((rc = audit_search_bisect(s, s->since - AUDIT_TIME_SLACK_MS, &s->next)) < 0)
			return rc;
		s->covered_from = s->since - AUDIT_TIME_SLACK_MS;
	}
	s->low_seq = s->next;
	if (s->until > 0 && s->until <= INT64_MAX - AUDIT_TIME_SLACK_MS)
		s->stop = s->until + AUDIT_TIME_SLACK_MS;
	return 0;
}

int audit_search_step(struct audit_search *s, struct queue_txn *txn, audit_search_cb *cb,
    void *arg)
{
	uint8_t key[QUEUE_KEY_AUDIT_LEN];
	struct audit_entry e;
	MDB_cursor *c = NULL;
	MDB_val k, v;
	bool match;
	int rc, ret = 0;

	if (txn == NULL || cb == NULL)
		return -EINVAL;
	if (s->finished)
		return 0;
	s->txn = txn;
	s->probe = NULL;
	memset(&e, 0, sizeof e);
	rc = mdb_cursor_open(txn->txn, txn->store->db_audit, &c);
	if (rc != MDB_SUCCESS) {
		ret = queue__lmdb_err(rc);
		goto out;
	}
	if (!s->started && ((ret = audit_search_begin(s, c)) < 0 || s->finished))
		goto out;
	queue__be64_put(key, s->next);
	k.mv_size = sizeof key;
	k.mv_data = key;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		/* Records appended since the search began are not part of it. */
		if (k.mv_size == QUEUE_KEY_AUDIT_LEN && queue__be64_get(k.mv_data) > s->last)
			break;
		if ((ret = audit_search_decode(s, &k, &v, &e)) < 0)
			goto out;
		if (e.time >= s->stop)
			break;
		audit_search_track(s, &e);
		if ((ret = audit_search_match(s, &e, &match)) < 0)
			goto out;
		s->next = e.seq + 1;
		if (match) {
			s->st.matched++;
			if ((ret = cb(arg, &e)) != 0)
				goto out;
		}
		audit_entry_clear(&e);
	}
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		ret = queue__lmdb_err(rc);
	else
		s->finished = true;
out:
	audit_entry_clear(&e);
	if (s->probe != NULL)
		mdb_cursor_close(s->probe);
	s->probe = NULL;
	s->txn = NULL;
	if (c != NULL)
		mdb_cursor_close(c);
	/* An error ends the search; a stop by cb may go on in a later step. */
	if (ret < 0)
		s->finished = true;
	return ret;
}

int audit_search_ex(struct queue_txn *txn, const struct audit_filter *f,
    audit_search_cb *cb, void *arg, struct audit_search_stats *stats)
{
	struct audit_search *s;
	int ret;

	if (stats != NULL)
		memset(stats, 0, sizeof *stats);
	if (txn == NULL || cb == NULL)
		return -EINVAL;
	s = audit_search_new(f);
	ret = audit_search_step(s, txn, cb, arg);
	if (stats != NULL)
		audit_search_stats_get(s, stats);
	audit_search_free(s);
	return ret;
}

int audit_search(struct queue_txn *txn, const struct audit_filter *f, audit_search_cb *cb,
    void *arg)
{
	return audit_search_ex(txn, f, cb, arg, NULL);
}
