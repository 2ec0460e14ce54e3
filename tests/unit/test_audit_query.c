/*
 * test_audit_query: unit tests of queue/audit_query.c and the detailed
 * verification in queue/audit.c: --since/--until time arguments, a
 * record's line taken apart (escapes undone) and refused when damaged,
 * the search with every filter and the propagation of message filters
 * from a `received` record to the records about the same queue id, the
 * time window found by bisection (checked against a brute-force filter,
 * and by how few records it reads), streaming 10,000 records, and
 * verification that names the record, the expected and the found hash
 * after tampering through raw LMDB.
 *
 * Every test that needs a store works in its own mkdtemp directory,
 * removed at the end.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <lmdb.h>
#include <openssl/evp.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "queue/audit_query.h"
#include "queue/queue.h"
#include "queue/schema.h"

/* 2026-11-23T11:30:00.123Z */
#define TA_NOW INT64_C(1795433400123)
/* 2026-11-23T00:00:00Z */
#define TA_DAY INT64_C(1795392000000)
#define TA_MAP_SIZE (UINT64_C(64) << 20)

/* ------------------------------------------------------------ helpers */

static int ta_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

struct ta_env {
	char dir[64];
	struct queue_store *store;
	struct queue_txn *wtxn;     /* open batch of appends, or NULL */
};

static void ta_setup(struct ta_env *e)
{
	memset(e, 0, sizeof *e);
	snprintf(e->dir, sizeof e->dir, "/tmp/test-auditq-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(e->dir));
	/* LMDB's default map (1 MiB) is too small for the 10,000-record chain. */
	ck_assert_int_eq(queue_store_open(e->dir, TA_MAP_SIZE, false, &e->store), 0);
}

static void ta_reopen(struct ta_env *e)
{
	queue_store_close(e->store);
	e->store = NULL;
	ck_assert_int_eq(queue_store_open(e->dir, 0, false, &e->store), 0);
}

static void ta_teardown(struct ta_env *e)
{
	ck_assert_ptr_null(e->wtxn);
	queue_store_close(e->store);
	e->store = NULL;
	nftw(e->dir, ta_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static struct queue_txn *ta_begin(struct ta_env *e, bool write)
{
	struct queue_txn *t;

	ck_assert_int_eq(queue_txn_begin(e->store, write, &t), 0);
	return t;
}

/* Appends go into one write txn until ta_flush: 10,000 commits are slow. */
static void ta_append(struct ta_env *e, int64_t time, const char *qid, const char *event,
    const struct queue_audit_field *f, size_t n)
{
	if (e->wtxn == NULL)
		e->wtxn = ta_begin(e, true);
	ck_assert_int_eq(queue_audit_append(e->wtxn, time, qid, event, f, n), 0);
}

static void ta_flush(struct ta_env *e)
{
	if (e->wtxn != NULL)
		ck_assert_int_eq(queue_txn_commit(e->wtxn), 0);
	e->wtxn = NULL;
}

/* The text of a queue id whose arrival time is ms (queue.h: microseconds). */
static void ta_qid(int64_t ms, char out[QUEUE_ID_TEXT_LEN + 1])
{
	queue_id_format((uint64_t)ms * 1000u, out);
}

/* Collects matched seqs as "1,2,3" and checks they come in order. */
struct ta_seen {
	struct buf seqs;
	uint64_t last;
	size_t n;
	size_t stop_at;   /* return 7 at this match; 0 never */
};

static int ta_seen_cb(void *arg, const struct audit_entry *en)
{
	struct ta_seen *s = arg;

	ck_assert_uint_gt(en->seq, s->last);
	s->last = en->seq;
	buf_printf(&s->seqs, "%s%" PRIu64, s->n ? "," : "", en->seq);
	s->n++;
	return s->stop_at != 0 && s->n == s->stop_at ? 7 : 0;
}

static int ta_search(struct ta_env *e, const struct audit_filter *f, struct buf *out,
    struct audit_search_stats *st)
{
	struct ta_seen s = { .n = 0 };
	struct queue_txn *t = ta_begin(e, false);
	int rc;

	buf_init(&s.seqs);
	rc = audit_search_ex(t, f, ta_seen_cb, &s, st);
	queue_txn_abort(t);
	buf_reset(out);
	buf_append(out, s.seqs.data ? s.seqs.data : "", s.seqs.len);
	buf_cstr(out);
	buf_free(&s.seqs);
	return rc;
}

static void ta_raw_open(const char *dir, MDB_env **env, MDB_txn **txn, const char *db,
    MDB_dbi *dbi)
{
	ck_assert_int_eq(mdb_env_create(env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(*env, 8), 0);
	ck_assert_int_eq(mdb_env_open(*env, dir, 0, 0600), 0);
	ck_assert_int_eq(mdb_txn_begin(*env, NULL, 0, txn), 0);
	ck_assert_int_eq(mdb_dbi_open(*txn, db, 0, dbi), 0);
}

static void ta_raw_close(MDB_env *env, MDB_txn *txn)
{
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void ta_hex(const uint8_t *h, char out[65])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		out[2 * i] = hex[h[i] >> 4];
		out[2 * i + 1] = hex[h[i] & 0xf];
	}
	out[64] = '\0';
}

static void ta_sha(const uint8_t *prev, const void *line, size_t len, uint8_t out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n;

	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
	ck_assert_int_eq(EVP_DigestUpdate(ctx, prev, 32), 1);
	ck_assert_int_eq(EVP_DigestUpdate(ctx, line, len), 1);
	ck_assert_int_eq(EVP_DigestFinal_ex(ctx, out, &n), 1);
	EVP_MD_CTX_free(ctx);
}

/* ---------------------------------------------------------- time parse */

static const struct {
	const char *label;
	const char *text;
	int rc;
	int64_t ms;
} ta_time_cases[] = {
	/* ISO 8601 */
	{ "date is midnight UTC", "2026-11-23", 0, TA_DAY },
	{ "minutes", "2026-11-23T10:00", 0, TA_DAY + 36000000 },
	{ "seconds Z", "2026-11-23T10:00:00Z", 0, TA_DAY + 36000000 },
	{ "no zone is UTC", "2026-11-23T10:00:00", 0, TA_DAY + 36000000 },
	{ "lowercase t z", "2026-11-23t10:00:00z", 0, TA_DAY + 36000000 },
	{ "space separator", "2026-11-23 10:00:00", 0, TA_DAY + 36000000 },
	{ "+07:00", "2026-11-23T10:00:00+07:00", 0, TA_DAY + 36000000 - 25200000 },
	{ "+0700", "2026-11-23T10:00+0700", 0, TA_DAY + 36000000 - 25200000 },
	{ "+07", "2026-11-23T10:00+07", 0, TA_DAY + 36000000 - 25200000 },
	{ "-05:30", "2026-11-23T10:00:00-05:30", 0, TA_DAY + 36000000 + 19800000 },
	{ "zone crosses the day", "2026-11-23T03:00+07:00", 0, TA_DAY - 4 * 3600000 },
	{ "+00:00", "2026-11-23T10:00:00+00:00", 0, TA_DAY + 36000000 },
	{ "millis", "2026-11-23T11:30:00.123Z", 0, TA_NOW },
	{ "one fraction digit", "2026-11-23T11:30:00.5Z", 0, TA_NOW - 123 + 500 },
	{ "comma fraction", "2026-11-23T11:30:00,5Z", 0, TA_NOW - 123 + 500 },
	{ "nanos are cut", "2026-11-23T11:30:00.123999999Z", 0, TA_NOW },
	{ "fraction and zone", "2026-11-23T18:30:00.123+07:00", 0, TA_NOW },
	{ "epoch", "1970-01-01", 0, 0 },
	{ "epoch Z", "1970-01-01T00:00:00Z", 0, 0 },
	{ "leap day 2024", "2024-02-29", 0, INT64_C(1709164800000) },
	{ "leap day 2000", "2000-02-29", 0, INT64_C(951782400000) },
	{ "last ms of 9999", "9999-12-31T23:59:59.999Z", 0, INT64_C(253402300799999) },
	{ "31 Dec", "2026-12-31T23:59:59Z", 0, INT64_C(1798761599000) },
	/* relative, now, unix seconds */
	{ "now", "now", 0, TA_NOW },
	{ "-2h", "-2h", 0, TA_NOW - 7200000 },
	{ "-30m", "-30m", 0, TA_NOW - 1800000 },
	{ "-7d", "-7d", 0, TA_NOW - 7 * INT64_C(86400000) },
	{ "-45s", "-45s", 0, TA_NOW - 45000 },
	{ "-0s", "-0s", 0, TA_NOW },
	{ "@unix", "@1763900000", 0, INT64_C(1763900000000) },
	{ "@0", "@0", 0, 0 },
	/* garbage */
	{ "empty", "", -EINVAL, 0 },
	{ "word", "yesterday", -EINVAL, 0 },
	{ "NOW", "NOW", -EINVAL, 0 },
	{ "lone T", "2026-11-23T", -EINVAL, 0 },
	{ "hour only", "2026-11-23T10", -EINVAL, 0 },
	{ "one-digit minute", "2026-11-23T10:0", -EINVAL, 0 },
	{ "one-digit second", "2026-11-23T10:00:0", -EINVAL, 0 },
	{ "short year", "226-11-23", -EINVAL, 0 },
	{ "slashes", "2026/11/23", -EINVAL, 0 },
	{ "month 13", "2026-13-01", -EINVAL, 0 },
	{ "month 0", "2026-00-01", -EINVAL, 0 },
	{ "day 0", "2026-11-00", -EINVAL, 0 },
	{ "31 April", "2026-04-31", -EINVAL, 0 },
	{ "29 Feb 2023", "2023-02-29", -EINVAL, 0 },
	{ "29 Feb 2100", "2100-02-29", -EINVAL, 0 },
	{ "hour 24", "2026-11-23T24:00", -EINVAL, 0 },
	{ "minute 60", "2026-11-23T10:60", -EINVAL, 0 },
	{ "leap second", "2026-11-23T10:00:60Z", -EINVAL, 0 },
	{ "zone 24h", "2026-11-23T10:00:00+24:00", -EINVAL, 0 },
	{ "zone :60", "2026-11-23T10:00:00+07:60", -EINVAL, 0 },
	{ "zone one digit", "2026-11-23T10:00:00+7", -EINVAL, 0 },
	{ "zone three digits", "2026-11-23T10:00:00+070", -EINVAL, 0 },
	{ "junk after Z", "2026-11-23T10:00:00Zjunk", -EINVAL, 0 },
	{ "zone on a date", "2026-11-23+07:00", -EINVAL, 0 },
	{ "Z on a date", "2026-11-23Z", -EINVAL, 0 },
	{ "leading space", " 2026-11-23", -EINVAL, 0 },
	{ "trailing space", "2026-11-23 ", -EINVAL, 0 },
	{ "trailing newline", "2026-11-23T10:00\n", -EINVAL, 0 },
	{ "empty fraction", "2026-11-23T10:00:00.Z", -EINVAL, 0 },
	{ "ten fraction digits", "2026-11-23T10:00:00.1234567890Z", -EINVAL, 0 },
	{ "fraction without seconds", "2026-11-23T10:00.5", -EINVAL, 0 },
	{ "before 1970", "1969-12-31", -EINVAL, 0 },
	{ "zone before 1970", "1970-01-01T00:00:00+01:00", -EINVAL, 0 },
	{ "year 10000", "10000-01-01", -EINVAL, 0 },
	{ "no unit", "-2", -EINVAL, 0 },
	{ "bad unit", "-2x", -EINVAL, 0 },
	{ "week unit", "-2w", -EINVAL, 0 },
	{ "no number", "-h", -EINVAL, 0 },
	{ "no minus", "2h", -EINVAL, 0 },
	{ "plus", "+2h", -EINVAL, 0 },
	{ "two units", "-2hh", -EINVAL, 0 },
	{ "negative number", "--2h", -EINVAL, 0 },
	{ "space in relative", "-2 h", -EINVAL, 0 },
	{ "before the epoch", "-100000d", -EINVAL, 0 },
	{ "too many digits", "-1000000000000s", -EINVAL, 0 },
	{ "lone @", "@", -EINVAL, 0 },
	{ "@ junk", "@12a", -EINVAL, 0 },
	{ "@ negative", "@-5", -EINVAL, 0 },
	{ "@ past 9999", "@253402300800", -EINVAL, 0 },
	{ "@ fraction", "@1763900000.5", -EINVAL, 0 },
};

START_TEST(test_time_parse)
{
	int64_t ms;

	for (size_t i = 0; i < sizeof ta_time_cases / sizeof ta_time_cases[0]; i++) {
		int rc;

		ms = -12345;
		rc = audit_time_parse(ta_time_cases[i].text, TA_NOW, &ms);
		ck_assert_msg(rc == ta_time_cases[i].rc, "case %s: rc %d", ta_time_cases[i].label,
		    rc);
		if (rc == 0)
			ck_assert_msg(ms == ta_time_cases[i].ms, "case %s: %" PRId64 " != %" PRId64,
			    ta_time_cases[i].label, ms, ta_time_cases[i].ms);
		else
			ck_assert_msg(ms == -12345, "case %s: output written",
			    ta_time_cases[i].label);
	}
	ck_assert_int_eq(audit_time_parse(NULL, TA_NOW, &ms), -EINVAL);
	/* Relative forms need a clock after 1970. */
	ck_assert_int_eq(audit_time_parse("-1s", 500, &ms), -EINVAL);
	ck_assert_int_eq(audit_time_parse("-1s", 1000, &ms), 0);
	ck_assert_int_eq(ms, 0);
	ck_assert_int_eq(audit_time_parse("now", -1, &ms), -EINVAL);
}
END_TEST

/* --------------------------------------------------------- entry parse */

START_TEST(test_entry_roundtrip)
{
	static const struct queue_audit_field f[] = {
		{ "from", "alice@example.org" },
		{ "to", "bob@example.net" },
		{ "to", "Nguyễn.Văn.A@bộ.gov.vn" },
		{ "reason", "a b=c\\d\te\r\nf" },
		{ "empty", "" },
		{ "eq", "==" },
		{ "x.y-z_9", "\\x41 literal backslash-x" },
		{ "ctl", "\x01\x1f\x7f\xff" },
	};
	struct ta_env e;
	struct queue_txn *t;
	struct audit_entry en;
	struct ta_seen s = { .n = 0 };
	char hex[65];

	ta_setup(&e);
	ta_append(&e, TA_NOW, "0005F1A2B3C4D5E6", "received", f, sizeof f / sizeof f[0]);
	ta_append(&e, 0, "q id=\\x", "admin.hold", NULL, 0);
	ta_flush(&e);

	/* The search parses every record it reads. */
	t = ta_begin(&e, false);
	buf_init(&s.seqs);
	ck_assert_int_eq(audit_search(t, NULL, ta_seen_cb, &s), 0);
	ck_assert_str_eq(buf_cstr(&s.seqs), "1,2");
	buf_free(&s.seqs);
	queue_txn_abort(t);

	/* The same through audit_entry_parse on the stored line. */
	{
		MDB_env *env;
		MDB_txn *txn;
		MDB_dbi dbi;
		MDB_val k, v;
		uint8_t key[8] = { 0, 0, 0, 0, 0, 0, 0, 1 };
		struct queue_audit_rec rec;
		char *line;

		queue_store_close(e.store);
		e.store = NULL;
		ta_raw_open(e.dir, &env, &txn, QUEUE_DB_AUDIT, &dbi);
		k.mv_size = 8;
		k.mv_data = key;
		ck_assert_int_eq(mdb_get(txn, dbi, &k, &v), 0);
		memset(&rec, 0, sizeof rec);
		rec.seq = 1;
		memcpy(rec.prev, v.mv_data, 32);
		memcpy(rec.hash, (uint8_t *)v.mv_data + 32, 32);
		line = xstrndup((char *)v.mv_data + 64, v.mv_size - 64);
		rec.line = line;
		ck_assert_int_eq(audit_entry_parse(&rec, &en), 0);
		ck_assert_uint_eq(en.seq, 1);
		ck_assert_int_eq(en.time, TA_NOW);
		ck_assert_str_eq(en.qid, "0005F1A2B3C4D5E6");
		ck_assert_str_eq(en.event, "received");
		ck_assert_uint_eq(en.nfields, sizeof f / sizeof f[0]);
		for (size_t i = 0; i < en.nfields; i++) {
			ck_assert_str_eq(en.fields[i].key, f[i].key);
			ck_assert_str_eq(en.fields[i].value, f[i].value);
		}
		ck_assert_str_eq(audit_entry_get(&en, "to"), "bob@example.net");
		ck_assert_str_eq(audit_entry_get(&en, "empty"), "");
		ck_assert_ptr_null(audit_entry_get(&en, "nope"));
		ta_hex(rec.hash, hex);
		ck_assert_str_eq(en.hash_hex, hex);
		ck_assert_str_eq(en.prev_hex,
		    "0000000000000000000000000000000000000000000000000000000000000000");
		/* The hash is SHA-256(prev || line), lowercase hex. */
		{
			uint8_t h[32];

			ta_sha(rec.prev, line, strlen(line), h);
			ta_hex(h, hex);
			ck_assert_str_eq(en.hash_hex, hex);
		}
		audit_entry_clear(&en);
		/* The key's seq must be the line's. */
		rec.seq = 2;
		ck_assert_int_eq(audit_entry_parse(&rec, &en), -EBADMSG);
		ck_assert_ptr_null(en.qid);
		ck_assert_uint_eq(en.nfields, 0);
		audit_entry_clear(&en);
		free(line);

		key[7] = 2;
		ck_assert_int_eq(mdb_get(txn, dbi, &k, &v), 0);
		memset(&rec, 0, sizeof rec);
		memcpy(rec.prev, v.mv_data, 32);
		memcpy(rec.hash, (uint8_t *)v.mv_data + 32, 32);
		line = xstrndup((char *)v.mv_data + 64, v.mv_size - 64);
		rec.line = line;
		/* rec.seq 0: the line alone decides. */
		ck_assert_int_eq(audit_entry_parse(&rec, &en), 0);
		ck_assert_uint_eq(en.seq, 2);
		ck_assert_int_eq(en.time, 0);
		ck_assert_str_eq(en.qid, "q id=\\x");
		ck_assert_str_eq(en.event, "admin.hold");
		ck_assert_uint_eq(en.nfields, 0);
		ck_assert_ptr_null(audit_entry_get(&en, "from"));
		/* Record 2 links to record 1. */
		{
			uint8_t h1[32];

			memcpy(h1, rec.prev, 32);
			ta_hex(h1, hex);
			ck_assert_str_eq(en.prev_hex, hex);
		}
		audit_entry_clear(&en);
		audit_entry_clear(&en);
		audit_entry_clear(NULL);
		free(line);
		ta_raw_close(env, txn);
		ta_reopen(&e);
	}
	ta_teardown(&e);
}
END_TEST

#define TA_T "time=2026-11-23T11:30:00.123Z"

static const struct {
	const char *label;
	const char *line;
	int rc;
} ta_line_cases[] = {
	{ "minimal", "seq=1 " TA_T " qid= event=x", 0 },
	{ "facts", "seq=18446744073709551615 " TA_T " qid=A event=x a=1 b= a=\\x20", 0 },
	{ "empty", "", -EBADMSG },
	{ "no seq", TA_T " qid= event=x", -EBADMSG },
	{ "seq 0", "seq=0 " TA_T " qid= event=x", -EBADMSG },
	{ "seq leading 0", "seq=01 " TA_T " qid= event=x", -EBADMSG },
	{ "seq overflow", "seq=18446744073709551616 " TA_T " qid= event=x", -EBADMSG },
	{ "seq sign", "seq=+1 " TA_T " qid= event=x", -EBADMSG },
	{ "seq empty", "seq= " TA_T " qid= event=x", -EBADMSG },
	{ "time no millis", "seq=1 time=2026-11-23T11:30:00Z qid= event=x", -EBADMSG },
	{ "time zone", "seq=1 time=2026-11-23T18:30:00.123+07:00 qid= event=x", -EBADMSG },
	{ "time 31 April", "seq=1 time=2026-04-31T11:30:00.123Z qid= event=x", -EBADMSG },
	{ "time lowercase", "seq=1 time=2026-11-23t11:30:00.123z qid= event=x", -EBADMSG },
	{ "no qid", "seq=1 " TA_T " event=x", -EBADMSG },
	{ "swapped", "seq=1 " TA_T " event=x qid=", -EBADMSG },
	{ "no event", "seq=1 " TA_T " qid=", -EBADMSG },
	{ "empty event", "seq=1 " TA_T " qid= event=", -EBADMSG },
	{ "trailing space", "seq=1 " TA_T " qid= event=x ", -EBADMSG },
	{ "double space", "seq=1 " TA_T " qid= event=x  a=1", -EBADMSG },
	{ "leading space", " seq=1 " TA_T " qid= event=x", -EBADMSG },
	{ "token without =", "seq=1 " TA_T " qid= event=x junk", -EBADMSG },
	{ "raw = in value", "seq=1 " TA_T " qid= event=x a=b=c", -EBADMSG },
	{ "empty key", "seq=1 " TA_T " qid= event=x =v", -EBADMSG },
	{ "uppercase key", "seq=1 " TA_T " qid= event=x Key=v", -EBADMSG },
	{ "reserved fact", "seq=1 " TA_T " qid= event=x seq=2", -EBADMSG },
	{ "raw non-ASCII", "seq=1 " TA_T " qid= event=x a=\xc3\xa9", -EBADMSG },
	{ "raw tab", "seq=1 " TA_T " qid= event=x a=\t", -EBADMSG },
	{ "short escape", "seq=1 " TA_T " qid= event=x a=\\x4", -EBADMSG },
	{ "escape not x", "seq=1 " TA_T " qid= event=x a=\\u0041", -EBADMSG },
	{ "escaped NUL", "seq=1 " TA_T " qid= event=x a=\\x00", -EBADMSG },
	{ "lowercase hex", "seq=1 " TA_T " qid= event=x a=\\xc3", -EBADMSG },
	{ "lone backslash", "seq=1 " TA_T " qid= event=x a=\\", -EBADMSG },
};

START_TEST(test_entry_parse_bad)
{
	struct queue_audit_rec rec;
	struct audit_entry en;
	struct buf b;

	for (size_t i = 0; i < sizeof ta_line_cases / sizeof ta_line_cases[0]; i++) {
		memset(&rec, 0, sizeof rec);
		rec.line = ta_line_cases[i].line;
		ck_assert_msg(audit_entry_parse(&rec, &en) == ta_line_cases[i].rc, "line case %s",
		    ta_line_cases[i].label);
		if (ta_line_cases[i].rc != 0)
			ck_assert_msg(en.qid == NULL && en.fields == NULL && en.nfields == 0,
			    "line case %s: not empty", ta_line_cases[i].label);
		audit_entry_clear(&en);
	}
	memset(&rec, 0, sizeof rec);
	ck_assert_int_eq(audit_entry_parse(&rec, &en), -EBADMSG);
	ck_assert_int_eq(audit_entry_parse(NULL, &en), -EBADMSG);

	/* AUDIT_FIELDS_MAX facts parse; one more is damage. */
	buf_init(&b);
	buf_append_str(&b, "seq=1 " TA_T " qid= event=x");
	for (int i = 0; i < AUDIT_FIELDS_MAX; i++)
		buf_printf(&b, " to=r%d@example.net", i);
	rec.line = buf_cstr(&b);
	ck_assert_int_eq(audit_entry_parse(&rec, &en), 0);
	ck_assert_uint_eq(en.nfields, AUDIT_FIELDS_MAX);
	ck_assert_str_eq(en.fields[AUDIT_FIELDS_MAX - 1].value, "r1023@example.net");
	audit_entry_clear(&en);
	buf_append_str(&b, " to=one@more");
	rec.line = buf_cstr(&b);
	ck_assert_int_eq(audit_entry_parse(&rec, &en), -EBADMSG);
	audit_entry_clear(&en);
	buf_free(&b);
}
END_TEST

/* -------------------------------------------------------------- search */

/*
 * A small chain about four messages (A, B, D and the bounce C), an auth
 * and an admin record; record i is at TA_DAY + i seconds.
 */
static void ta_chain(struct ta_env *e, char qa[17], char qb[17], char qc[17], char qd[17])
{
	int64_t t = TA_DAY;

	ta_qid(t + 500, qa);
	ta_qid(t + 3500, qb);
	ta_qid(t + 8500, qc);
	ta_qid(t + 10500, qd);
	{
		struct queue_audit_field f[] = { { "from", "alice@ex.org" }, { "size", "10" },
			{ "to", "bob@ex.net" }, { "to", "carol@ex.net" } };

		ta_append(e, t + 1000, qa, "received", f, 4);
	}
	{
		struct queue_audit_field f[] = { { "to", "bob@ex.net" }, { "status", "sent" } };

		ta_append(e, t + 2000, qa, "delivered", f, 2);
	}
	{
		struct queue_audit_field f[] = { { "to", "carol@ex.net" } };

		ta_append(e, t + 3000, qa, "deferred", f, 1);
	}
	{
		struct queue_audit_field f[] = { { "from", "dave@ex.org" },
			{ "to", "Bob@EX.net" } };

		ta_append(e, t + 4000, qb, "received", f, 2);
	}
	{
		struct queue_audit_field f[] = { { "user", "clerk@ex.org" },
			{ "tenant", "hn-01" } };

		ta_append(e, t + 5000, "", "auth", f, 2);
	}
	{
		struct queue_audit_field f[] = { { "to", "bob@ex.net" } };

		ta_append(e, t + 6000, qb, "failed", f, 1);
	}
	{
		struct queue_audit_field f[] = { { "to", "carol@ex.net" } };

		ta_append(e, t + 7000, qa, "delivered", f, 1);
	}
	{
		struct queue_audit_field f[] = { { "verb", "domain.add" },
			{ "tenant", "hn-02, hn-03" } };

		ta_append(e, t + 8000, "", "admin", f, 2);
	}
	{
		struct queue_audit_field f[] = { { "from", "" }, { "to", "alice@ex.org" },
			{ "kind", "failure" }, { "about", qa } };

		ta_append(e, t + 9000, qc, "received", f, 4);
	}
	{
		struct queue_audit_field f[] = { { "to", "alice@ex.org" } };

		ta_append(e, t + 10000, qc, "delivered", f, 1);
	}
	{
		struct queue_audit_field f[] = { { "from", "<alice@ex.org>" },
			{ "orcpt", "rfc822;X@Y.example" }, { "tenant", "hn-01" } };

		ta_append(e, t + 11000, qd, "received", f, 3);
	}
	{
		struct queue_audit_field f[] = { { "rcpt", "x@y.example" } };

		ta_append(e, t + 12000, qd, "delivered", f, 1);
	}
	{
		/* A record about A with no facts at all: inherits everything. */
		ta_append(e, t + 13000, qa, "admin.hold", NULL, 0);
	}
	ta_flush(e);
}

START_TEST(test_search_filters)
{
	struct ta_env e;
	char qa[17], qb[17], qc[17], qd[17], qa_lower[17];
	struct audit_search_stats st;
	struct buf out;
	const int64_t t = TA_DAY;
	const struct {
		const char *label;
		struct audit_filter f;
		const char *want;
	} cases[] = {
		{ "none", { 0 }, "1,2,3,4,5,6,7,8,9,10,11,12,13" },
		{ "sender", { .sender = "alice@ex.org" }, "1,2,3,7,11,12,13" },
		{ "sender case and brackets", { .sender = "<ALICE@Ex.Org>" },
			"1,2,3,7,11,12,13" },
		{ "null sender", { .sender = "" }, "9,10" },
		{ "null sender <>", { .sender = "<>" }, "9,10" },
		{ "unknown sender", { .sender = "nobody@ex.org" }, "" },
		{ "sender is not a substring", { .sender = "alice@ex" }, "" },
		/* 13 has no `to`: it inherits A's, which lists bob. */
		{ "recipient", { .recipient = "bob@ex.net" }, "1,2,4,6,13" },
		{ "recipient carol", { .recipient = "carol@ex.net" }, "1,3,7,13" },
		{ "recipient of the bounce", { .recipient = "alice@ex.org" }, "9,10" },
		{ "orcpt and rcpt facts", { .recipient = "x@y.example" }, "11,12" },
		{ "tenant", { .tenant = "hn-01" }, "5,11,12" },
		{ "tenant in a list", { .tenant = "hn-03" }, "8" },
		{ "tenant first of list", { .tenant = "hn-02" }, "8" },
		{ "tenant prefix is no match", { .tenant = "hn" }, "" },
		{ "tenant case matters", { .tenant = "HN-01" }, "" },
		{ "event", { .event = "delivered" }, "2,7,10,12" },
		{ "event received", { .event = "received" }, "1,4,9,11" },
		{ "event is exact", { .event = "deliver" }, "" },
		{ "qid", { .qid = qa }, "1,2,3,7,13" },
		{ "qid lowercase", { .qid = qa_lower }, "1,2,3,7,13" },
		{ "empty qid", { .qid = "" }, "5,8" },
		{ "event and sender", { .event = "delivered", .sender = "alice@ex.org" },
			"2,7,12" },
		{ "qid and recipient", { .qid = qa, .recipient = "carol@ex.net" }, "1,3,7,13" },
		{ "sender and recipient", { .sender = "alice@ex.org",
			.recipient = "carol@ex.net" }, "1,3,7,13" },
		{ "sender and event failed", { .sender = "dave@ex.org", .event = "failed" }, "6" },
		{ "sender and tenant", { .sender = "alice@ex.org", .tenant = "hn-01" }, "11,12" },
		{ "all three", { .sender = "alice@ex.org", .recipient = "x@y.example",
			.tenant = "hn-01" }, "11,12" },
		{ "since inclusive", { .since = t + 5000 }, "5,6,7,8,9,10,11,12,13" },
		{ "until exclusive", { .until = t + 5000 }, "1,2,3,4" },
		{ "window", { .since = t + 5000, .until = t + 8000 }, "5,6,7" },
		{ "window between records", { .since = t + 5001, .until = t + 5999 }, "" },
		{ "window and sender", { .since = t + 2000, .sender = "alice@ex.org" },
			"2,3,7,11,12,13" },
		{ "window and recipient", { .since = t + 2000, .until = t + 7001,
			.recipient = "carol@ex.net" }, "3,7" },
		{ "since after the end", { .since = t + 14000 }, "" },
		{ "until before the start", { .until = t + 1000 }, "" },
		{ "since == until", { .since = t + 5000, .until = t + 5000 }, "" },
		{ "until before since", { .since = t + 6000, .until = t + 5000 }, "" },
	};

	ta_setup(&e);
	ta_chain(&e, qa, qb, qc, qd);
	for (int i = 0; i < 16; i++)
		qa_lower[i] = (char)(qa[i] >= 'A' && qa[i] <= 'F' ? qa[i] - 'A' + 'a' : qa[i]);
	qa_lower[16] = '\0';
	ck_assert_str_ne(qa, qa_lower);
	buf_init(&out);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ck_assert_msg(ta_search(&e, &cases[i].f, &out, &st) == 0, "case %s",
		    cases[i].label);
		ck_assert_msg(strcmp(buf_cstr(&out), cases[i].want) == 0,
		    "case %s: got '%s', want '%s'", cases[i].label, out.data, cases[i].want);
		ck_assert_uint_eq(st.untracked, 0);
	}
	/* A NULL filter is everything; the stats count what was read and given. */
	ck_assert_int_eq(ta_search(&e, NULL, &out, &st), 0);
	ck_assert_str_eq(buf_cstr(&out), "1,2,3,4,5,6,7,8,9,10,11,12,13");
	ck_assert_uint_eq(st.records_read, 13);
	ck_assert_uint_eq(st.matched, 13);
	/* An empty chain. */
	{
		struct ta_env e2;

		ta_setup(&e2);
		ck_assert_int_eq(ta_search(&e2, &cases[0].f, &out, &st), 0);
		ck_assert_str_eq(buf_cstr(&out), "");
		ck_assert_uint_eq(st.records_read, 0);
		ta_teardown(&e2);
	}
	buf_free(&out);
	ta_teardown(&e);
}
END_TEST

/* The rule as the issue states it, alone. */
START_TEST(test_search_propagation)
{
	struct ta_env e;
	struct audit_filter f = { .sender = "a@example.org" };
	struct buf out;
	char q[17], other[17];

	ta_setup(&e);
	ta_qid(TA_NOW, q);
	ta_qid(TA_NOW + 1, other);
	{
		struct queue_audit_field r[] = { { "from", "a@example.org" },
			{ "to", "b@example.net" } };
		struct queue_audit_field d[] = { { "to", "b@example.net" } };

		ta_append(&e, TA_NOW, q, "received", r, 2);
		ta_append(&e, TA_NOW + 1, other, "delivered", d, 1);
		ta_append(&e, TA_NOW + 2, q, "delivered", d, 1);
	}
	ta_flush(&e);
	buf_init(&out);
	ck_assert_int_eq(ta_search(&e, &f, &out, NULL), 0);
	ck_assert_str_eq(buf_cstr(&out), "1,3");
	/* Not the other way round: a later received does not reach back. */
	{
		struct queue_audit_field r[] = { { "from", "a@example.org" } };

		ta_append(&e, TA_NOW + 3, other, "received", r, 1);
	}
	ta_flush(&e);
	ck_assert_int_eq(ta_search(&e, &f, &out, NULL), 0);
	ck_assert_str_eq(buf_cstr(&out), "1,3,4");
	buf_free(&out);
	ta_teardown(&e);
}
END_TEST

/*
 * With --since, a message received hours before the window still has
 * its delivery found: the search reads back to the arrival time its
 * queue id names, once, and not further.
 */
START_TEST(test_search_read_back)
{
	enum { BEFORE = 400, BETWEEN = 300 };
	struct ta_env e;
	struct audit_search_stats st;
	struct buf out, want;
	int64_t t = TA_DAY, arrival;
	char q[17], q2[17];
	uint64_t seq = 0, seq_delivered;
	struct queue_audit_field filler[] = { { "from", "z@example.org" } };
	struct queue_audit_field r[] = { { "from", "a@example.org" }, { "to", "b@example.net" } };
	struct queue_audit_field d[] = { { "to", "b@example.net" } };

	ta_setup(&e);
	for (int i = 0; i < BEFORE; i++, seq++)
		ta_append(&e, t + i * 1000, "", "noise", filler, 1);
	arrival = t + BEFORE * 1000;
	ta_qid(arrival, q);
	ta_append(&e, arrival + 2000, q, "received", r, 2);
	seq++;
	/* Two hours of other traffic, far beyond the slack. */
	for (int i = 0; i < BETWEEN; i++, seq++)
		ta_append(&e, arrival + 3000 + i * 24000, "", "noise", filler, 1);
	ta_append(&e, arrival + 3 * 3600000, q, "delivered", d, 1);
	seq_delivered = ++seq;
	/* A record about a message nobody matched, in the window too. */
	ta_qid(arrival - 100000, q2);
	ta_append(&e, arrival + 3 * 3600000 + 1, q2, "deferred", d, 1);
	seq++;
	ta_flush(&e);

	buf_init(&out);
	buf_init(&want);
	buf_printf(&want, "%" PRIu64, seq_delivered);
	{
		struct audit_filter f = { .since = arrival + 3 * 3600000,
			.sender = "a@example.org" };

		ck_assert_int_eq(ta_search(&e, &f, &out, &st), 0);
		ck_assert_str_eq(buf_cstr(&out), want.data);
		/*
		 * Read back to q2's arrival less the slack (the furthest back any
		 * window record needs), not to the start of the chain.
		 */
		ck_assert_uint_gt(st.records_read, BETWEEN);
		ck_assert_uint_lt(st.records_read, seq - (BEFORE - 200));
	}
	{
		/* Without a message filter there is nothing to read back for. */
		struct audit_filter f = { .since = arrival + 3 * 3600000 };

		ck_assert_int_eq(ta_search(&e, &f, &out, &st), 0);
		ck_assert_uint_eq(st.matched, 2);
		ck_assert_uint_lt(st.records_read, 40);
	}
	{
		/* The event filter does not hide the received record from propagation. */
		struct audit_filter f = { .since = arrival + 3000, .event = "delivered",
			.recipient = "b@example.net" };

		ck_assert_int_eq(ta_search(&e, &f, &out, &st), 0);
		ck_assert_str_eq(buf_cstr(&out), want.data);
	}
	buf_free(&out);
	buf_free(&want);
	ta_teardown(&e);
}
END_TEST

/* A small deterministic generator, so a failure reproduces. */
static uint64_t ta_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * since/until against a brute-force filter over records with chosen
 * times: runs of equal times, gaps of a millisecond to a day, and a few
 * steps back in time smaller than the slack (two writers' clocks).
 */
START_TEST(test_search_window_edges)
{
	enum { N = 400 };
	static const int64_t steps[] = { 0, 0, 1, 999, 1000, 59999, 60000, 3600000,
		86400000, -500 };
	struct ta_env e;
	int64_t *times = xcalloc(N, sizeof *times), t = TA_DAY;
	uint64_t seed = 0x9E3779B97F4A7C15u;
	struct buf out, want;
	struct audit_search_stats st;

	ta_setup(&e);
	for (int i = 0; i < N; i++) {
		int64_t step = steps[ta_rand(&seed) % (sizeof steps / sizeof steps[0])];

		/* Never two steps back in a row: disorder stays within 500 ms. */
		if (step < 0 && i > 0 && times[i - 1] < (i > 1 ? times[i - 2] : 0))
			step = 1;
		t += step;
		times[i] = t;
		ta_append(&e, t, "", "tick", NULL, 0);
	}
	ta_flush(&e);

	buf_init(&out);
	buf_init(&want);
	for (int round = 0; round < 600; round++) {
		struct audit_filter f = { 0 };
		int pick = (int)(ta_rand(&seed) % 8);
		int64_t a = times[ta_rand(&seed) % N], b = times[ta_rand(&seed) % N];

		/* Record times, and one ms either side of them, as bounds. */
		a += (int64_t)(ta_rand(&seed) % 3) - 1;
		b += (int64_t)(ta_rand(&seed) % 3) - 1;
		if (a > b) {
			int64_t x = a;

			a = b;
			b = x;
		}
		f.since = pick & 1 ? a : 0;
		f.until = pick & 2 ? b : 0;
		if (pick == 4)
			f.since = times[0] - 1;      /* before the first */
		if (pick == 5)
			f.since = times[N - 1] + 1;  /* after the last */
		if (pick == 6)
			f.until = times[0];          /* the first record excluded */
		if (pick == 7)
			f.since = times[N - 1];      /* the last record included */
		buf_reset(&want);
		for (int i = 0; i < N; i++) {
			if ((f.since == 0 || times[i] >= f.since) &&
			    (f.until == 0 || times[i] < f.until))
				buf_printf(&want, "%s%d", want.len ? "," : "", i + 1);
		}
		ck_assert_int_eq(ta_search(&e, &f, &out, &st), 0);
		ck_assert_msg(strcmp(buf_cstr(&out), buf_cstr(&want)) == 0,
		    "round %d since %" PRId64 " until %" PRId64 ":\n got %s\nwant %s", round,
		    f.since, f.until, out.data, want.data);
	}
	buf_free(&out);
	buf_free(&want);
	free(times);
	ta_teardown(&e);
}
END_TEST

static int ta_count_cb(void *arg, const struct audit_entry *en)
{
	uint64_t *n = arg;

	/* Each entry arrives complete and in order. */
	ck_assert_uint_eq(en->seq, *n + 1);
	ck_assert_ptr_nonnull(en->qid);
	ck_assert_uint_eq(strlen(en->hash_hex), 64);
	(*n)++;
	return 0;
}

/* 10,000 records: streamed in order, stopped early, bisected cheaply. */
START_TEST(test_search_10k)
{
	enum { N = 10000 };
	struct ta_env e;
	struct queue_txn *t;
	struct audit_search_stats st;
	struct buf out;
	uint64_t n = 0;
	char q[17];

	ta_setup(&e);
	for (int i = 0; i < N; i++) {
		/* Pairs: a received from a@ or c@, then its delivery. */
		int64_t at = TA_DAY + (int64_t)i * 1000;

		if (i % 2 == 0) {
			struct queue_audit_field r[] = {
				{ "from", i % 4 == 0 ? "a@example.org" : "c@example.org" },
				{ "to", "b@example.net" } };

			ta_qid(at, q);
			ta_append(&e, at, q, "received", r, 2);
		} else {
			struct queue_audit_field d[] = { { "to", "b@example.net" } };

			ta_append(&e, at, q, "delivered", d, 1);
		}
		if (i % 2500 == 2499)
			ta_flush(&e);
	}
	ta_flush(&e);

	t = ta_begin(&e, false);
	ck_assert_int_eq(audit_search_ex(t, NULL, ta_count_cb, &n, &st), 0);
	queue_txn_abort(t);
	ck_assert_uint_eq(n, N);
	ck_assert_uint_eq(st.matched, N);
	ck_assert_uint_eq(st.records_read, N);

	/* The callback's non-zero value stops the walk and comes back. */
	{
		struct ta_seen s = { .stop_at = 5000 };

		buf_init(&s.seqs);
		t = ta_begin(&e, false);
		ck_assert_int_eq(audit_search_ex(t, NULL, ta_seen_cb, &s, &st), 7);
		queue_txn_abort(t);
		ck_assert_uint_eq(s.n, 5000);
		ck_assert_uint_eq(s.last, 5000);
		ck_assert_uint_eq(st.records_read, 5000);
		buf_free(&s.seqs);
	}

	/* Propagation at scale: half the messages are a@'s, both records each. */
	buf_init(&out);
	{
		struct audit_filter f = { .sender = "a@example.org" };

		ck_assert_int_eq(ta_search(&e, &f, &out, &st), 0);
		ck_assert_uint_eq(st.matched, N / 2);
		ck_assert_uint_eq(st.untracked, 0);
		ck_assert(strncmp(out.data, "1,2,5,6,9,10,", 13) == 0);
	}

	/*
	 * The last 1,000 seconds: bisection reads about log2(N) probes, the
	 * slack and the window, not the chain.
	 */
	{
		struct audit_filter f = { .since = TA_DAY + (int64_t)(N - 1000) * 1000 };

		ck_assert_int_eq(ta_search(&e, &f, &out, &st), 0);
		ck_assert_uint_eq(st.matched, 1000);
		ck_assert_uint_lt(st.records_read, 1000 + 60 + 2 * 16);
		ck_assert(strncmp(out.data, "9001,9002,", 10) == 0);
	}
	{
		/* A window in the middle stops soon after until. */
		struct audit_filter f = { .since = TA_DAY + 4000 * 1000,
			.until = TA_DAY + 4100 * 1000, .event = "delivered" };

		ck_assert_int_eq(ta_search(&e, &f, &out, &st), 0);
		ck_assert_uint_eq(st.matched, 50);
		ck_assert_uint_lt(st.records_read, 100 + 2 * 61 + 2 * 16);
	}
	{
		/* --sender with a window: deliveries whose received is just before it. */
		struct audit_filter f = { .since = TA_DAY + 9001 * 1000,
			.sender = "a@example.org", .event = "delivered" };

		ck_assert_int_eq(ta_search(&e, &f, &out, &st), 0);
		ck_assert_uint_eq(st.matched, 250);
		ck_assert(strncmp(out.data, "9002,9006,", 10) == 0);
	}
	buf_free(&out);
	ta_teardown(&e);
}
END_TEST

/* -------------------------------------------------------------- verify */

static int ta_verify(struct ta_env *e, uint64_t *count, struct audit_fault *fault,
    uint64_t *bad_seq)
{
	struct queue_txn *t = ta_begin(e, false);
	uint64_t count2;
	int rc = audit_verify_detail(t, count, fault), rc2;

	/* The short form agrees with the detailed one. */
	rc2 = queue_audit_verify(t, &count2, bad_seq);
	queue_txn_abort(t);
	ck_assert_int_eq(rc, rc2);
	ck_assert_uint_eq(*count, count2);
	if (rc == -EBADMSG)
		ck_assert_uint_eq(*bad_seq, fault->seq);
	return rc;
}

START_TEST(test_verify_intact)
{
	struct ta_env e;
	struct audit_fault fault;
	uint64_t count, bad;
	struct queue_txn *t;

	ta_setup(&e);
	memset(&fault, 'x', sizeof fault);
	ck_assert_int_eq(ta_verify(&e, &count, &fault, &bad), 0);
	ck_assert_uint_eq(count, 0);
	ck_assert_uint_eq(fault.seq, 0);
	ck_assert_str_eq(fault.what, "");
	ck_assert_str_eq(fault.expected_hex, "");
	for (int i = 0; i < 50; i++) {
		struct queue_audit_field f[] = { { "who", "someone with spaces" } };

		ta_append(&e, TA_NOW + i, "", "admin", f, 1);
		if (i % 10 == 9)
			ta_flush(&e);
	}
	memset(&fault, 'x', sizeof fault);
	ck_assert_int_eq(ta_verify(&e, &count, &fault, &bad), 0);
	ck_assert_uint_eq(count, 50);
	ck_assert_str_eq(fault.what, "");
	t = ta_begin(&e, false);
	ck_assert_int_eq(audit_verify_detail(t, &count, NULL), 0);
	queue_txn_abort(t);
	ta_teardown(&e);
}
END_TEST

enum ta_tamper {
	TA_FLIP_LINE,        /* one byte of record 3's line */
	TA_FLIP_SYNTAX,      /* record 3's line no longer decodes */
	TA_REHASH,           /* record 3 edited, its own hash fixed */
	TA_PREV,             /* record 4's stored prev hash changed */
	TA_PREV_FIRST,       /* record 1's stored prev hash changed */
	TA_DELETE_MID,
	TA_DELETE_FIRST,
	TA_DELETE_LAST,
	TA_HEAD_DELETE,
	TA_HEAD_HASH,
	TA_HEAD_SIZE,
	TA_EXTRA,            /* a well-chained record 6 behind the head's back */
	TA_SHORT,            /* record 2 shorter than two hashes */
};

static const struct {
	const char *label;
	enum ta_tamper how;
	uint64_t seq;
	const char *what;
	bool expected, found;   /* which hashes the fault carries */
} ta_tamper_cases[] = {
	{ "flip a line byte", TA_FLIP_LINE, 3,
		"record 3 was changed: its hash does not match its contents", true, true },
	{ "break the syntax", TA_FLIP_SYNTAX, 3,
		"record 3 was changed: its hash does not match its contents", true, true },
	{ "edit and rehash", TA_REHASH, 4, "record 4 does not link to record 3", true, true },
	{ "change a prev hash", TA_PREV, 4, "record 4 does not link to record 3", true, true },
	{ "change the first prev", TA_PREV_FIRST, 1,
		"record 1 does not start the chain: its previous hash is not zero", true, true },
	{ "delete record 2", TA_DELETE_MID, 2,
		"record 2 is missing: record 1 is followed by record 3", false, false },
	{ "delete record 1", TA_DELETE_FIRST, 1,
		"record 1 is missing: the chain starts at record 2", false, false },
	{ "delete the last record", TA_DELETE_LAST, 5,
		"record 5 is missing: the chain head in meta names record 5 but the chain ends "
		"at record 4", true, false },
	{ "delete the head", TA_HEAD_DELETE, 5,
		"the chain head in meta is missing, but the chain holds 5 records", true, false },
	{ "change the head hash", TA_HEAD_HASH, 5,
		"the chain head in meta does not match record 5's hash", true, true },
	{ "truncate the head", TA_HEAD_SIZE, 5, "the chain head in meta does not decode",
		false, false },
	{ "a record beyond the head", TA_EXTRA, 6,
		"record 6 lies beyond the chain head in meta, which names record 5", false, false },
	{ "a record too short", TA_SHORT, 2, "record 2 is too short to hold its hashes",
		false, false },
};

/* Raw copies of the five records (prev + hash + line), before tampering. */
struct ta_raw {
	uint8_t val[6][512];
	size_t len[6];
};

static void ta_raw_get(MDB_txn *txn, MDB_dbi dbi, uint64_t seq, uint8_t *key,
    struct ta_raw *raw)
{
	MDB_val k = { 8, key }, v;

	memset(key, 0, 8);
	key[7] = (uint8_t)seq;
	ck_assert_int_eq(mdb_get(txn, dbi, &k, &v), 0);
	ck_assert_uint_lt(v.mv_size, sizeof raw->val[0]);
	memcpy(raw->val[seq], v.mv_data, v.mv_size);
	raw->len[seq] = v.mv_size;
}

static void ta_raw_put(MDB_txn *txn, MDB_dbi dbi, uint64_t seq, const uint8_t *val,
    size_t len)
{
	uint8_t key[8] = { 0 };
	MDB_val k = { 8, key }, v = { len, (void *)val };

	key[7] = (uint8_t)seq;
	ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
}

START_TEST(test_verify_tamper)
{
	static const uint8_t zero[32];
	struct ta_env e;
	struct audit_fault fault;
	struct ta_raw *raw = xcalloc(1, sizeof *raw);
	uint8_t key[8], val[512], h[32];
	char hex_exp[65] = "", hex_found[65] = "";
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi, meta;
	MDB_val k, v;
	uint64_t count, bad;
	size_t len;
	int i = _i;

	ta_setup(&e);
	for (int n = 0; n < 5; n++) {
		struct queue_audit_field f[] = { { "who", "someone" } };

		ta_append(&e, TA_NOW + n, "", "received", f, 1);
	}
	ta_flush(&e);
	ck_assert_int_eq(ta_verify(&e, &count, &fault, &bad), 0);
	queue_store_close(e.store);
	e.store = NULL;

	ta_raw_open(e.dir, &env, &txn, QUEUE_DB_AUDIT, &dbi);
	ck_assert_int_eq(mdb_dbi_open(txn, QUEUE_DB_META, 0, &meta), 0);
	for (uint64_t s = 1; s <= 5; s++)
		ta_raw_get(txn, dbi, s, key, raw);
	k.mv_size = 8;
	k.mv_data = key;
	memset(key, 0, sizeof key);
	switch (ta_tamper_cases[i].how) {
	case TA_FLIP_LINE:
	case TA_FLIP_SYNTAX:
	case TA_REHASH:
		len = raw->len[3];
		memcpy(val, raw->val[3], len);
		if (ta_tamper_cases[i].how == TA_FLIP_SYNTAX) {
			/* "who=someone" -> "who someone": a token without '='. */
			ck_assert_int_eq(val[len - 8], '=');
			val[len - 8] = ' ';
		} else {
			/* "someone" -> "somEone": still a well-formed line. */
			ck_assert_int_eq(val[len - 4], 'e');
			val[len - 4] = 'E';
		}
		if (ta_tamper_cases[i].how == TA_REHASH)
			ta_sha(val, val + 64, len - 64, val + 32);
		ta_raw_put(txn, dbi, 3, val, len);
		if (ta_tamper_cases[i].how == TA_REHASH) {
			/* Expected: the edited record's hash; found: what 4 still links to. */
			ta_hex(val + 32, hex_exp);
			ta_hex(raw->val[4], hex_found);
		} else {
			ta_sha(val, val + 64, len - 64, h);
			ta_hex(h, hex_exp);
			ta_hex(raw->val[3] + 32, hex_found);
		}
		break;
	case TA_PREV:
	case TA_PREV_FIRST: {
		uint64_t s = ta_tamper_cases[i].how == TA_PREV ? 4 : 1;

		len = raw->len[s];
		memcpy(val, raw->val[s], len);
		val[5] ^= 0x01;
		ta_raw_put(txn, dbi, s, val, len);
		ta_hex(s == 1 ? zero : raw->val[s - 1] + 32, hex_exp);
		ta_hex(val, hex_found);
		break;
	}
	case TA_DELETE_MID:
	case TA_DELETE_FIRST:
	case TA_DELETE_LAST:
		key[7] = ta_tamper_cases[i].how == TA_DELETE_MID ? 2 :
		    ta_tamper_cases[i].how == TA_DELETE_FIRST ? 1 : 5;
		ck_assert_int_eq(mdb_del(txn, dbi, &k, NULL), 0);
		/* The head still names record 5 and its hash. */
		ta_hex(raw->val[5] + 32, hex_exp);
		break;
	case TA_HEAD_DELETE:
	case TA_HEAD_HASH:
	case TA_HEAD_SIZE: {
		uint8_t head[40];

		k.mv_size = strlen(QUEUE_META_AUDIT_HEAD);
		k.mv_data = (void *)QUEUE_META_AUDIT_HEAD;
		ck_assert_int_eq(mdb_get(txn, meta, &k, &v), 0);
		ck_assert_uint_eq(v.mv_size, 40);
		memcpy(head, v.mv_data, 40);
		ta_hex(raw->val[5] + 32, hex_exp);
		if (ta_tamper_cases[i].how == TA_HEAD_DELETE) {
			ck_assert_int_eq(mdb_del(txn, meta, &k, NULL), 0);
			break;
		}
		head[39] ^= 0x80;
		ta_hex(head + 8, hex_found);
		v.mv_data = head;
		v.mv_size = ta_tamper_cases[i].how == TA_HEAD_SIZE ? 39 : 40;
		ck_assert_int_eq(mdb_put(txn, meta, &k, &v, 0), 0);
		break;
	}
	case TA_EXTRA: {
		/* A perfectly chained record 6, but the head was not moved. */
		static const char line[] = "seq=6 time=2026-11-23T11:30:00.123Z qid= event=x";

		memcpy(val, raw->val[5] + 32, 32);
		memcpy(val + 64, line, sizeof line - 1);
		ta_sha(val, line, sizeof line - 1, val + 32);
		ta_raw_put(txn, dbi, 6, val, 64 + sizeof line - 1);
		break;
	}
	case TA_SHORT:
		ta_raw_put(txn, dbi, 2, raw->val[2], 63);
		break;
	}
	ta_raw_close(env, txn);
	ta_reopen(&e);

	memset(&fault, 'x', sizeof fault);
	ck_assert_msg(ta_verify(&e, &count, &fault, &bad) == -EBADMSG, "case %s",
	    ta_tamper_cases[i].label);
	ck_assert_msg(fault.seq == ta_tamper_cases[i].seq, "case %s: seq %" PRIu64,
	    ta_tamper_cases[i].label, fault.seq);
	ck_assert_msg(strcmp(fault.what, ta_tamper_cases[i].what) == 0, "case %s: what '%s'",
	    ta_tamper_cases[i].label, fault.what);
	if (ta_tamper_cases[i].expected) {
		ck_assert_uint_eq(strlen(fault.expected_hex), 64);
		if (hex_exp[0] != '\0')
			ck_assert_msg(strcmp(fault.expected_hex, hex_exp) == 0,
			    "case %s: expected %s, want %s", ta_tamper_cases[i].label,
			    fault.expected_hex, hex_exp);
	} else {
		ck_assert_str_eq(fault.expected_hex, "");
	}
	if (ta_tamper_cases[i].found) {
		ck_assert_uint_eq(strlen(fault.found_hex), 64);
		ck_assert_msg(strcmp(fault.found_hex, hex_found) == 0, "case %s: found %s, want %s",
		    ta_tamper_cases[i].label, fault.found_hex, hex_found);
		ck_assert_str_ne(fault.expected_hex, fault.found_hex);
	} else {
		ck_assert_str_eq(fault.found_hex, "");
	}
	/* Everything before the fault was verified. */
	if (ta_tamper_cases[i].how != TA_HEAD_DELETE && ta_tamper_cases[i].how != TA_HEAD_HASH &&
	    ta_tamper_cases[i].how != TA_HEAD_SIZE && ta_tamper_cases[i].how != TA_EXTRA)
		ck_assert_uint_eq(count, fault.seq - 1);

	/*
	 * Search reads what still decodes (audit verify is what judges the
	 * chain) and refuses what does not.
	 */
	{
		struct buf out;
		int rc;

		buf_init(&out);
		rc = ta_search(&e, NULL, &out, NULL);
		if (ta_tamper_cases[i].how == TA_FLIP_SYNTAX || ta_tamper_cases[i].how == TA_SHORT)
			ck_assert_int_eq(rc, -EBADMSG);
		else
			ck_assert_msg(rc == 0, "case %s: search %d", ta_tamper_cases[i].label, rc);
		buf_free(&out);
	}
	free(raw);
	ta_teardown(&e);
}
END_TEST

/* ---------------------------------------------------------------- main */

static Suite *ta_suite(void)
{
	Suite *s = suite_create("audit_query");
	TCase *tc = tcase_create("audit_query");

	/* Generous: the 10,000-record test also runs under valgrind. */
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_time_parse);
	tcase_add_test(tc, test_entry_roundtrip);
	tcase_add_test(tc, test_entry_parse_bad);
	tcase_add_test(tc, test_search_filters);
	tcase_add_test(tc, test_search_propagation);
	tcase_add_test(tc, test_search_read_back);
	tcase_add_test(tc, test_search_window_edges);
	tcase_add_test(tc, test_search_10k);
	tcase_add_test(tc, test_verify_intact);
	tcase_add_loop_test(tc, test_verify_tamper, 0,
	    (int)(sizeof ta_tamper_cases / sizeof ta_tamper_cases[0]));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ta_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
