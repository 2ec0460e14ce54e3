/*
 * audit: the tamper-evident audit chain in the store. Each record is one
 * canonical text line; its hash is SHA-256(previous hash || line), and
 * meta "audit_head" names the newest record, so deleting, editing or
 * reordering any record, or cutting the end of the chain, shows up in
 * queue_audit_verify.
 *
 * Entry points: queue_audit_append, queue_audit_walk, queue_audit_verify,
 * and audit_verify_detail (declared in queue/audit_query.h, defined here
 * so both verifications run the very same checks; queue_audit_verify is
 * the detailed one reduced to a sequence number); audit_head and
 * audit_hash_at (audit_query.h), which the signed checkpoints of
 * queue/audit_checkpoint.c read: the head and a record's hash are this
 * file's layout, read nowhere else.
 * OWNERSHIP: every argument is borrowed; the record passed to a walk
 * callback and all its strings are valid only during the call.
 * THREADS: any thread that owns the txn. Append reads the head inside
 * the caller's write txn, and LMDB admits one write txn at a time across
 * processes, so the daemon and govrelayctl can both append and the chain
 * stays linear.
 * ERRORS: -EINVAL (bad key, event or time, or a read txn for append),
 * -EBADMSG (a record or the head does not decode, or the chain is
 * broken), -ENOSPC, -EIO (also an OpenSSL failure).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/audit_query.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/schema.h"

#define QUEUE_AUDIT_KEY_MAX 64
/* 9999-12-31T23:59:59.999Z: the time field keeps a four-digit year. */
#define QUEUE_AUDIT_TIME_MAX INT64_C(253402300799999)
/* Room for any int the format could print, so snprintf never truncates. */
#define QUEUE_AUDIT_TIME_BUF 80

static const uint8_t queue_audit_zero[QUEUE_AUDIT_HASH_LEN];

/* ----------------------------------------------------------- the line */

static bool queue_audit_key_is_valid(const char *k)
{
	size_t n = 0;

	for (; k[n] != '\0'; n++) {
		char c = k[n];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '.' || c == '-'))
			return false;
	}
	return n > 0 && n <= QUEUE_AUDIT_KEY_MAX;
}

/* The four keys every line starts with; fields may not reuse them. */
static bool queue_audit_key_is_reserved(const char *k)
{
	return strcmp(k, "seq") == 0 || strcmp(k, "time") == 0 ||
	    strcmp(k, "qid") == 0 || strcmp(k, "event") == 0;
}

/*
 * Values: space separates pairs and '=' separates key from value, so both
 * are escaped, as is the escape character itself; control bytes would let
 * a value forge a line break in an export, and non-ASCII is escaped so the
 * line is plain ASCII whatever encoding the reader assumes.
 */
static void queue_audit_escape(struct buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (c <= 0x20 || c >= 0x7f || c == '=' || c == '\\') {
			char e[4] = { '\\', 'x', hex[c >> 4], hex[c & 0xf] };

			buf_append(b, e, sizeof e);
		} else {
			buf_append_char(b, (char)c);
		}
	}
}

static int queue_audit_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reverses queue_audit_escape on s[0..len) into out; -EBADMSG on junk. */
static int queue_audit_unescape(const char *s, size_t len, struct buf *out)
{
	buf_reset(out);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int hi, lo;

		if (c == '\\') {
			if (len - i < 4 || s[i + 1] != 'x' ||
			    (hi = queue_audit_hexval(s[i + 2])) < 0 ||
			    (lo = queue_audit_hexval(s[i + 3])) < 0 ||
			    (hi == 0 && lo == 0))
				return -EBADMSG;
			buf_append_char(out, (char)(hi << 4 | lo));
			i += 3;
		} else if (c <= 0x20 || c >= 0x7f || c == '=') {
			return -EBADMSG;
		} else {
			buf_append_char(out, (char)c);
		}
	}
	buf_cstr(out);
	return 0;
}


/*
 * The parsed head of a stored line. qid and event are unescaped into the
 * two bufs, which the caller owns and reuses record after record.
 */
struct queue_audit_parsed {
	uint64_t seq;
	int64_t time;
	struct buf qid;
	struct buf event;
};

/* Splits off the next "key=value" token; -EBADMSG unless key matches. */
static int queue_audit_token(const char **p, const char *end, const char *key,
    const char **val, size_t *vlen)
{
	size_t klen = strlen(key);
	const char *sp;

	if ((size_t)(end - *p) <= klen || memcmp(*p, key, klen) != 0 ||
	    (*p)[klen] != '=')
		return -EBADMSG;
	*val = *p + klen + 1;
	sp = memchr(*val, ' ', (size_t)(end - *val));
	*vlen = (size_t)((sp ? sp : end) - *val);
	*p = sp ? sp + 1 : end;
	return 0;
}

static int queue_audit_parse_line(const char *line, size_t len,
    struct queue_audit_parsed *out)
{
	const char *p = line, *end = line + len, *val;
	size_t vlen;
	int d;

	if (queue_audit_token(&p, end, "seq", &val, &vlen) < 0 || vlen == 0 ||
	    vlen > 20 || val[0] == '0')
		return -EBADMSG;
	out->seq = 0;
	for (size_t i = 0; i < vlen; i++) {
		if (val[i] < '0' || val[i] > '9')
			return -EBADMSG;
		d = val[i] - '0';
		if (out->seq > (UINT64_MAX - (uint64_t)d) / 10)
			return -EBADMSG;
		out->seq = out->seq * 10 + (uint64_t)d;
	}
	if (queue_audit_token(&p, end, "time", &val, &vlen) < 0 ||
	    time_parse_iso(val, vlen, &out->time) < 0)
		return -EBADMSG;
	if (queue_audit_token(&p, end, "qid", &val, &vlen) < 0 ||
	    queue_audit_unescape(val, vlen, &out->qid) < 0)
		return -EBADMSG;
	if (queue_audit_token(&p, end, "event", &val, &vlen) < 0 ||
	    queue_audit_unescape(val, vlen, &out->event) < 0 || vlen == 0)
		return -EBADMSG;
	/* The rest are key=value pairs; a raw control byte is never valid. */
	for (const char *q = p; q < end; q++)
		if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f)
			return -EBADMSG;
	return 0;
}

/* ----------------------------------------------------------- hashing */

static int queue_audit_hash(const uint8_t prev[QUEUE_AUDIT_HASH_LEN],
    const void *line, size_t len, uint8_t out[QUEUE_AUDIT_HASH_LEN])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;
	int ok;

	if (ctx == NULL)
		return -EIO;
	ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, prev, QUEUE_AUDIT_HASH_LEN) == 1 &&
	    EVP_DigestUpdate(ctx, line, len) == 1 &&
	    EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == QUEUE_AUDIT_HASH_LEN;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -EIO;
}

/* ------------------------------------------------------------- head */

static int queue_audit_head_get(struct queue_txn *txn, bool *present, uint64_t *seq,
    uint8_t hash[QUEUE_AUDIT_HASH_LEN])
{
	MDB_val k = { sizeof QUEUE_META_AUDIT_HEAD - 1, (void *)QUEUE_META_AUDIT_HEAD };
	MDB_val v;
	int rc;

	*present = false;
	*seq = 0;
	memset(hash, 0, QUEUE_AUDIT_HASH_LEN);
	rc = mdb_get(txn->txn, txn->store->db_meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	if (v.mv_size != QUEUE_AUDIT_HEAD_LEN)
		return -EBADMSG;
	*present = true;
	*seq = queue__be64_get(v.mv_data);
	memcpy(hash, (const uint8_t *)v.mv_data + 8, QUEUE_AUDIT_HASH_LEN);
	return 0;
}

int audit_head(struct queue_txn *txn, uint64_t *seq, uint8_t hash[QUEUE_AUDIT_HASH_LEN])
{
	bool present;

	return queue_audit_head_get(txn, &present, seq, hash);
}

int audit_hash_at(struct queue_txn *txn, uint64_t seq, uint8_t hash[QUEUE_AUDIT_HASH_LEN])
{
	uint8_t key[QUEUE_KEY_AUDIT_LEN];
	MDB_val k = { sizeof key, key }, v;
	int rc;

	queue__be64_put(key, seq);
	rc = mdb_get(txn->txn, txn->store->db_audit, &k, &v);
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	if (v.mv_size < 2 * QUEUE_AUDIT_HASH_LEN)
		return -EBADMSG;
	memcpy(hash, (const uint8_t *)v.mv_data + QUEUE_AUDIT_HASH_LEN, QUEUE_AUDIT_HASH_LEN);
	return 0;
}

/* ------------------------------------------------------------- append */

int queue_audit_append(struct queue_txn *txn, int64_t time_ms, const char *qid,
    const char *event, const struct queue_audit_field *fields, size_t nfields)
{
	uint8_t head[QUEUE_AUDIT_HEAD_LEN], key[QUEUE_KEY_AUDIT_LEN];
	uint8_t prev[QUEUE_AUDIT_HASH_LEN], hash[QUEUE_AUDIT_HASH_LEN];
	char tbuf[QUEUE_AUDIT_TIME_BUF];
	MDB_val k, v;
	struct buf line, val;
	uint64_t seq;
	bool present;
	int rc;

	if ((rc = queue__need_write(txn)) < 0)
		return rc;
	if (time_ms < 0 || time_ms > QUEUE_AUDIT_TIME_MAX || event == NULL ||
	    !queue_audit_key_is_valid(event) || (fields == NULL && nfields > 0))
		return -EINVAL;
	for (size_t i = 0; i < nfields; i++)
		if (fields[i].key == NULL || fields[i].value == NULL ||
		    !queue_audit_key_is_valid(fields[i].key) ||
		    queue_audit_key_is_reserved(fields[i].key))
			return -EINVAL;

	/* Read in this write txn: no other writer can move the head under us. */
	if ((rc = queue_audit_head_get(txn, &present, &seq, prev)) < 0)
		return rc;
	if (seq == UINT64_MAX)
		return -EBADMSG;
	seq++;

	buf_init(&line);
	time_format_iso(time_ms, tbuf, sizeof tbuf);
	buf_printf(&line, "seq=%" PRIu64 " time=%s qid=", seq, tbuf);
	queue_audit_escape(&line, qid ? qid : "");
	buf_append_str(&line, " event=");
	queue_audit_escape(&line, event);
	for (size_t i = 0; i < nfields; i++) {
		buf_printf(&line, " %s=", fields[i].key);
		queue_audit_escape(&line, fields[i].value);
	}
	if ((rc = queue_audit_hash(prev, line.data, line.len, hash)) < 0) {
		buf_free(&line);
		return rc;
	}

	buf_init(&val);
	buf_append(&val, prev, sizeof prev);
	buf_append(&val, hash, sizeof hash);
	buf_append(&val, line.data, line.len);
	buf_free(&line);
	queue__be64_put(key, seq);
	k.mv_size = sizeof key;
	k.mv_data = key;
	v.mv_size = val.len;
	v.mv_data = val.data;
	rc = mdb_put(txn->txn, txn->store->db_audit, &k, &v, MDB_NOOVERWRITE);
	buf_free(&val);
	/* A record beyond the head means the chain was tampered with. */
	if (rc == MDB_KEYEXIST)
		return -EBADMSG;
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);

	memcpy(head, key, sizeof key);
	memcpy(head + 8, hash, sizeof hash);
	k.mv_size = sizeof QUEUE_META_AUDIT_HEAD - 1;
	k.mv_data = (void *)QUEUE_META_AUDIT_HEAD;
	v.mv_size = sizeof head;
	v.mv_data = head;
	return queue__lmdb_err(mdb_put(txn->txn, txn->store->db_meta, &k, &v, 0));
}

/* -------------------------------------------------------- walk/verify */

/*
 * Fills rec from one stored record (key k, value v); line points into
 * linebuf, qid and event into the bufs of p. -EBADMSG when it does not
 * decode or its line names another seq than its key.
 */
static int queue_audit_load(const MDB_val *k, const MDB_val *v, struct buf *linebuf,
    struct queue_audit_parsed *p, struct queue_audit_rec *rec)
{
	const uint8_t *data = v->mv_data;
	size_t llen;

	if (k->mv_size != QUEUE_KEY_AUDIT_LEN || v->mv_size < 2 * QUEUE_AUDIT_HASH_LEN)
		return -EBADMSG;
	memset(rec, 0, sizeof *rec);
	rec->seq = queue__be64_get(k->mv_data);
	memcpy(rec->prev, data, QUEUE_AUDIT_HASH_LEN);
	memcpy(rec->hash, data + QUEUE_AUDIT_HASH_LEN, QUEUE_AUDIT_HASH_LEN);
	llen = v->mv_size - 2 * QUEUE_AUDIT_HASH_LEN;
	buf_reset(linebuf);
	buf_append(linebuf, data + 2 * QUEUE_AUDIT_HASH_LEN, llen);
	rec->line = buf_cstr(linebuf);
	if (memchr(rec->line, '\0', llen) != NULL)
		return -EBADMSG;
	if (queue_audit_parse_line(rec->line, llen, p) < 0 || p->seq != rec->seq)
		return -EBADMSG;
	rec->time = p->time;
	rec->qid = p->qid.data;
	rec->event = p->event.data;
	return 0;
}

int queue_audit_walk(struct queue_txn *txn, queue_audit_walk_cb *cb, void *arg)
{
	struct queue_audit_parsed p;
	struct queue_audit_rec rec;
	struct buf linebuf;
	MDB_cursor *c;
	MDB_val k, v;
	int rc, ret = 0;

	rc = mdb_cursor_open(txn->txn, txn->store->db_audit, &c);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	buf_init(&linebuf);
	buf_init(&p.qid);
	buf_init(&p.event);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if ((ret = queue_audit_load(&k, &v, &linebuf, &p, &rec)) < 0)
			break;
		if ((ret = cb(arg, &rec)) != 0)
			break;
	}
	mdb_cursor_close(c);
	buf_free(&linebuf);
	buf_free(&p.qid);
	buf_free(&p.event);
	if (ret != 0)
		return ret;
	return rc == MDB_NOTFOUND ? 0 : queue__lmdb_err(rc);
}

static void queue_audit_hex(const uint8_t h[QUEUE_AUDIT_HASH_LEN], char out[65])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < QUEUE_AUDIT_HASH_LEN; i++) {
		out[2 * i] = hex[h[i] >> 4];
		out[2 * i + 1] = hex[h[i] & 0xf];
	}
	out[2 * QUEUE_AUDIT_HASH_LEN] = '\0';
}

/* Records fault seq and the English sentence; the hashes are optional. */
static int queue_audit_fault(struct audit_fault *f, uint64_t seq,
    const uint8_t *expected, const uint8_t *found, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int queue_audit_fault(struct audit_fault *f, uint64_t seq,
    const uint8_t *expected, const uint8_t *found, const char *fmt, ...)
{
	va_list ap;

	f->seq = seq;
	if (expected != NULL)
		queue_audit_hex(expected, f->expected_hex);
	if (found != NULL)
		queue_audit_hex(found, f->found_hex);
	va_start(ap, fmt);
	vsnprintf(f->what, sizeof f->what, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

/*
 * The head catches what the walk cannot: records cut from the end (head
 * beyond the last record) or appended behind our back. n records were
 * walked; prev is the last one's hash.
 */
static int queue_audit_verify_head(struct queue_txn *txn, uint64_t n,
    const uint8_t prev[QUEUE_AUDIT_HASH_LEN], struct audit_fault *fault)
{
	uint8_t head_hash[QUEUE_AUDIT_HASH_LEN];
	uint64_t head_seq;
	bool present;
	int rc;

	rc = queue_audit_head_get(txn, &present, &head_seq, head_hash);
	if (rc == -EBADMSG)
		return queue_audit_fault(fault, n > 0 ? n : 1, NULL, NULL,
		    "the chain head in meta does not decode");
	if (rc < 0)
		return rc;
	if (!present && n == 0)
		return 0;
	if (!present)
		return queue_audit_fault(fault, n, prev, NULL,
		    "the chain head in meta is missing, but the chain holds %" PRIu64
		    " records", n);
	if (head_seq > n)
		return queue_audit_fault(fault, n + 1, head_hash, NULL,
		    "record %" PRIu64 " is missing: the chain head in meta names record %"
		    PRIu64 " but the chain ends at record %" PRIu64, n + 1, head_seq, n);
	if (head_seq < n)
		return queue_audit_fault(fault, head_seq + 1, NULL, NULL,
		    "record %" PRIu64 " lies beyond the chain head in meta, which names record %"
		    PRIu64, head_seq + 1, head_seq);
	if (memcmp(head_hash, prev, QUEUE_AUDIT_HASH_LEN) != 0)
		return queue_audit_fault(fault, n > 0 ? n : 1, prev, head_hash,
		    "the chain head in meta does not match record %" PRIu64 "'s hash", n);
	return 0;
}

/*
 * The one verification both entry points share. Each record is checked
 * in the order a reader can explain: it is where the sequence says it
 * should be, it links to the record before it, its hash covers its own
 * text, and the text decodes. Checking the link before the hash means an
 * attacker who edits record N and fixes N's own hash is named at N+1,
 * whose stored link no longer matches (there is nothing wrong inside N
 * that the chain alone can show).
 */
int audit_verify_detail(struct queue_txn *txn, uint64_t *count, struct audit_fault *fault)
{
	uint8_t prev[QUEUE_AUDIT_HASH_LEN], hash[QUEUE_AUDIT_HASH_LEN];
	struct audit_fault scratch;
	struct queue_audit_parsed p;
	struct queue_audit_rec rec;
	struct buf linebuf;
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t n = 0, kseq;
	int rc, ret = 0;

	if (fault == NULL)
		fault = &scratch;
	memset(fault, 0, sizeof *fault);
	*count = 0;
	memcpy(prev, queue_audit_zero, sizeof prev);
	rc = mdb_cursor_open(txn->txn, txn->store->db_audit, &c);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	buf_init(&linebuf);
	buf_init(&p.qid);
	buf_init(&p.event);
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
	    rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const uint8_t *data = v.mv_data;

		/* Records must be 1, 2, 3 ... : a gap is a deleted record. */
		if (k.mv_size != QUEUE_KEY_AUDIT_LEN) {
			ret = queue_audit_fault(fault, n + 1, NULL, NULL,
			    "a record after record %" PRIu64 " has a malformed key (%zu bytes)",
			    n, k.mv_size);
			break;
		}
		kseq = queue__be64_get(k.mv_data);
		if (kseq != n + 1) {
			if (n == 0)
				ret = queue_audit_fault(fault, 1, NULL, NULL,
				    "record 1 is missing: the chain starts at record %" PRIu64,
				    kseq);
			else
				ret = queue_audit_fault(fault, n + 1, NULL, NULL,
				    "record %" PRIu64 " is missing: record %" PRIu64
				    " is followed by record %" PRIu64, n + 1, n, kseq);
			break;
		}
		if (v.mv_size < 2 * QUEUE_AUDIT_HASH_LEN) {
			ret = queue_audit_fault(fault, n + 1, NULL, NULL,
			    "record %" PRIu64 " is too short to hold its hashes", n + 1);
			break;
		}
		if (memcmp(data, prev, sizeof prev) != 0) {
			if (n == 0)
				ret = queue_audit_fault(fault, 1, prev, data, "record 1 does not "
				    "start the chain: its previous hash is not zero");
			else
				ret = queue_audit_fault(fault, n + 1, prev, data,
				    "record %" PRIu64 " does not link to record %" PRIu64,
				    n + 1, n);
			break;
		}
		if ((ret = queue_audit_hash(prev, data + 2 * QUEUE_AUDIT_HASH_LEN,
		    v.mv_size - 2 * QUEUE_AUDIT_HASH_LEN, hash)) < 0)
			break;
		if (memcmp(hash, data + QUEUE_AUDIT_HASH_LEN, sizeof hash) != 0) {
			ret = queue_audit_fault(fault, n + 1, hash, data + QUEUE_AUDIT_HASH_LEN,
			    "record %" PRIu64 " was changed: its hash does not match its contents",
			    n + 1);
			break;
		}
		if (queue_audit_load(&k, &v, &linebuf, &p, &rec) < 0) {
			ret = queue_audit_fault(fault, n + 1, NULL, NULL,
			    "record %" PRIu64 " does not decode as an audit line", n + 1);
			break;
		}
		memcpy(prev, hash, sizeof prev);
		n++;
	}
	mdb_cursor_close(c);
	buf_free(&linebuf);
	buf_free(&p.qid);
	buf_free(&p.event);
	*count = n;
	if (ret != 0)
		return ret;
	if (rc != MDB_NOTFOUND)
		return queue__lmdb_err(rc);
	return queue_audit_verify_head(txn, n, prev, fault);
}

int queue_audit_verify(struct queue_txn *txn, uint64_t *count, uint64_t *bad_seq)
{
	struct audit_fault fault;
	int rc = audit_verify_detail(txn, count, &fault);

	*bad_seq = rc == -EBADMSG ? fault.seq : 0;
	return rc;
}
