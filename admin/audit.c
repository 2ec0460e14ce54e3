/*
 * admin/audit: `audit search`, `audit export` and `audit verify`: the
 * security team's view of the tamper-evident audit chain
 * (ARCHITECTURE.md "Account"; queue/audit_query.h reads it).
 *
 * search and export read the chain in pages (a chain holds millions of
 * records): each page is one audit_search_step in a read transaction of
 * its own, ending once ADMIN_AUDIT_FLUSH bytes of output are ready; the
 * transaction is over before the page is written, so a reader at the
 * other end of a pipe or of the control socket, however slow, holds no
 * snapshot of the store, and memory stays at about one page. A failed
 * write (a reader gone, or past control_command_time) ends the search.
 * Text: one line per record,
 *   TIME seq=N event=E qid=Q key=value ...
 * with values escaped so a line stays one line; --json and `export
 * --format jsonl`: one object per line with seq, time, qid, event, hash,
 * prev and every fact as a key (a repeated key, such as the `to` of a
 * message with several recipients, becomes an array); `export --format
 * csv`: a header row, then seq,time,qid,event,hash,prev,facts (RFC 4180).
 *
 * An auditor of tenant T sees only records whose `tenant` fact names a
 * tenant of T's subtree; records without one (message traffic, the
 * store's own events) are not theirs to read. verify checks the whole
 * chain for anyone allowed to run it: it reveals no content.
 *
 * Entry points: admin__audit_search (search and export),
 * admin__audit_verify, admin__audit_count (admin_int.h).
 * OWNERSHIP: entries are the search's, borrowed for the callback.
 * THREADS: any (see engine.c). ERRORS: sysexits.h codes (engine.c): 65 for
 * a bad filter or a broken chain.
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
#include "common/checkpoint.h"
#include "queue/queue.h"

#define ADMIN_AUDIT_FLUSH 65536
/* admin_audit_row's "this page is full" (audit_search_step's stop value). */
#define ADMIN_AUDIT_PAGE 1

enum admin_audit_fmt { ADMIN_AUDIT_TEXT, ADMIN_AUDIT_JSONL, ADMIN_AUDIT_CSV };

/* Queue ids of messages a delegated auditor may see (open addressing). */
#define ADMIN_QIDS_MAX (1u << 20)

struct admin_audit_out {
	struct admin *a;
	enum admin_audit_fmt fmt;
	struct buf b;
	uint64_t n;
	uint64_t *qids;     /* 0 = empty slot; ids are never 0 */
	size_t qcap, qn;
};

static bool admin_qids_has(const struct admin_audit_out *o, uint64_t id)
{
	if (o->qcap == 0)
		return false;
	for (size_t i = (size_t)(id * 0x9E3779B97F4A7C15ull) & (o->qcap - 1);;
	    i = (i + 1) & (o->qcap - 1)) {
		if (o->qids[i] == 0)
			return false;
		if (o->qids[i] == id)
			return true;
	}
}

/* Past ADMIN_QIDS_MAX ids, later records of further messages stay hidden. */
static void admin_qids_add(struct admin_audit_out *o, uint64_t id)
{
	if (admin_qids_has(o, id) || o->qn >= ADMIN_QIDS_MAX)
		return;
	if (2 * (o->qn + 1) > o->qcap) {
		size_t ncap = o->qcap ? 2 * o->qcap : 1024;
		uint64_t *old = o->qids;
		size_t ocap = o->qcap;

		o->qids = xcalloc(ncap, sizeof *o->qids);
		o->qcap = ncap;
		o->qn = 0;
		for (size_t i = 0; i < ocap; i++)
			if (old[i] != 0)
				admin_qids_add(o, old[i]);
		free(old);
	}
	for (size_t i = (size_t)(id * 0x9E3779B97F4A7C15ull) & (o->qcap - 1);;
	    i = (i + 1) & (o->qcap - 1)) {
		if (o->qids[i] == 0) {
			o->qids[i] = id;
			o->qn++;
			return;
		}
	}
}

/*
 * A fact's value on a text line: space, '=', '\\', control bytes and
 * invalid UTF-8 as \xNN (so key=value pairs split unambiguously and the
 * terminal is safe); other UTF-8 is kept for people to read.
 */
static void admin_audit_value(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		size_t n = *p >= 0x80 ? str_utf8_seq_len(p) : 1;

		if (n == 0 || *p <= 0x20 || *p == 0x7f || *p == '=' || *p == '\\' ||
		    (*p == 0xc2 && p[1] < 0xa0)) {
			buf_printf(b, "\\x%02X", *p);
			p++;
			continue;
		}
		buf_append(b, p, n);
		p += n;
	}
}

static bool admin_audit_reserved(const char *k)
{
	return strcmp(k, "seq") == 0 || strcmp(k, "time") == 0 || strcmp(k, "qid") == 0 ||
	    strcmp(k, "event") == 0 || strcmp(k, "hash") == 0 || strcmp(k, "prev") == 0;
}

static void admin_audit_json(struct buf *b, const struct audit_entry *e)
{
	char tm[ADMIN_TIME_LEN];
	bool *done = e->nfields > 0 ? xcalloc(e->nfields, sizeof *done) : NULL;

	time_format_iso(e->time, tm, sizeof tm);
	buf_printf(b, "{\"seq\":%" PRIu64 ",\"time\":", e->seq);
	admin__json_str(b, tm);
	buf_append_str(b, ",\"qid\":");
	admin__json_str(b, e->qid != NULL ? e->qid : "");
	buf_append_str(b, ",\"event\":");
	admin__json_str(b, e->event);
	buf_append_str(b, ",\"hash\":");
	admin__json_str(b, e->hash_hex);
	buf_append_str(b, ",\"prev\":");
	admin__json_str(b, e->prev_hex);
	/* Each key once, in order of first appearance; repeats make an array. */
	for (size_t i = 0; i < e->nfields; i++) {
		size_t count = 0;

		if (done[i])
			continue;
		for (size_t k = i; k < e->nfields; k++)
			if (strcmp(e->fields[k].key, e->fields[i].key) == 0)
				count++;
		buf_append_char(b, ',');
		if (admin_audit_reserved(e->fields[i].key)) {
			struct buf key;

			buf_init(&key);
			buf_printf(&key, "fact.%s", e->fields[i].key);
			admin__json_str(b, buf_cstr(&key));
			buf_free(&key);
		} else {
			admin__json_str(b, e->fields[i].key);
		}
		buf_append_char(b, ':');
		if (count == 1) {
			admin__json_str(b, e->fields[i].value);
			done[i] = true;
			continue;
		}
		buf_append_char(b, '[');
		for (size_t k = i, m = 0; k < e->nfields; k++) {
			if (strcmp(e->fields[k].key, e->fields[i].key) != 0)
				continue;
			if (m++ > 0)
				buf_append_char(b, ',');
			admin__json_str(b, e->fields[k].value);
			done[k] = true;
		}
		buf_append_char(b, ']');
	}
	buf_append_str(b, "}\n");
	free(done);
}

static void admin_audit_facts(struct buf *b, const struct audit_entry *e)
{
	for (size_t i = 0; i < e->nfields; i++) {
		if (i > 0)
			buf_append_char(b, ' ');
		buf_append_str(b, e->fields[i].key);
		buf_append_char(b, '=');
		admin_audit_value(b, e->fields[i].value);
	}
}

static void admin_audit_text(struct buf *b, const struct audit_entry *e)
{
	char tm[ADMIN_TIME_LEN];

	time_format_iso(e->time, tm, sizeof tm);
	buf_printf(b, "%s seq=%" PRIu64 " event=", tm, e->seq);
	admin_audit_value(b, e->event);
	buf_append_str(b, " qid=");
	admin_audit_value(b, e->qid != NULL ? e->qid : "");
	if (e->nfields > 0)
		buf_append_char(b, ' ');
	admin_audit_facts(b, e);
	buf_append_char(b, '\n');
}

static void admin_audit_csv(struct buf *b, const struct audit_entry *e)
{
	char tm[ADMIN_TIME_LEN];
	struct buf facts;

	time_format_iso(e->time, tm, sizeof tm);
	buf_init(&facts);
	admin_audit_facts(&facts, e);
	buf_printf(b, "%" PRIu64 ",%s,", e->seq, tm);
	admin__csv_field(b, e->qid);
	buf_append_char(b, ',');
	admin__csv_field(b, e->event);
	buf_printf(b, ",%s,%s,", e->hash_hex, e->prev_hex);
	admin__csv_field(b, buf_cstr(&facts));
	buf_append_str(b, "\r\n");
	buf_free(&facts);
}

/* Whether an auditor may read e: its tenant fact names a tenant of their subtree. */
static bool admin_audit_tenant_hit(const struct admin *a, const struct audit_entry *e)
{
	for (size_t i = 0; i < e->nfields; i++) {
		char *list, *save = NULL, *t;
		bool hit = false;

		if (strcmp(e->fields[i].key, "tenant") != 0)
			continue;
		list = xstrdup(e->fields[i].value);
		for (t = strtok_r(list, ", ", &save); t != NULL && !hit;
		    t = strtok_r(NULL, ", ", &save))
			hit = admin__tenant_in_scope(a, t);
		free(list);
		if (hit)
			return true;
	}
	return false;
}

/*
 * A delegated auditor sees records whose tenant fact names a tenant of
 * their subtree, and the later records (delivered, deferred, bounced,
 * which carry no tenant) of the messages whose visible records they saw.
 */
static bool admin_audit_visible(struct admin_audit_out *o, const struct audit_entry *e)
{
	const struct admin *a = o->a;
	uint64_t id = 0;
	bool has_qid = e->qid[0] != '\0' && queue_id_parse(e->qid, &id) == 0 && id != 0;

	if (a->super)
		return true;
	if (admin_audit_tenant_hit(a, e)) {
		if (has_qid)
			admin_qids_add(o, id);
		return true;
	}
	return has_qid && audit_entry_get(e, "tenant") == NULL && admin_qids_has(o, id);
}

static int admin_audit_row(void *arg, const struct audit_entry *e)
{
	struct admin_audit_out *o = arg;

	if (!admin_audit_visible(o, e))
		return 0;
	switch (o->fmt) {
	case ADMIN_AUDIT_JSONL:
		admin_audit_json(&o->b, e);
		break;
	case ADMIN_AUDIT_CSV:
		admin_audit_csv(&o->b, e);
		break;
	default:
		admin_audit_text(&o->b, e);
		break;
	}
	o->n++;
	/* A page is ready: the step ends, and its transaction with it. */
	return o->b.len >= ADMIN_AUDIT_FLUSH ? ADMIN_AUDIT_PAGE : 0;
}

static int admin_audit_time_arg(struct admin *a, const char *opt, const char *v, int64_t now,
    int64_t *ms)
{
	char *shown;

	if (v == NULL)
		return 0;
	if (audit_time_parse(v, now, ms) == 0)
		return 0;
	shown = admin__text_dup(v);
	admin__err(a, "%s \"%s\": use ISO 8601 (2026-11-23T10:00Z), a relative time (-2h, -30m, "
	    "-7d), now, or @UNIXSECONDS", opt, shown);
	free(shown);
	return EX_DATAERR;
}

/* `audit search` and `audit export`. */
/* The output format of search (text, --json) or export --format: 0 or 65. */
static int admin_audit_format(struct admin *a, const struct admin_args *args,
    enum admin_audit_fmt *fmt)
{
	const char *name;
	char *shown;

	*fmt = a->json ? ADMIN_AUDIT_JSONL : ADMIN_AUDIT_TEXT;
	if (strcmp(a->cmd->verb, "export") != 0)
		return 0;
	name = admin__arg(args, "--format");
	if (strcmp(name, "jsonl") == 0 || strcmp(name, "json") == 0) {
		*fmt = ADMIN_AUDIT_JSONL;
		return 0;
	}
	if (strcmp(name, "csv") == 0) {
		*fmt = ADMIN_AUDIT_CSV;
		return 0;
	}
	shown = admin__text_dup(name);
	admin__err(a, "--format \"%s\": use jsonl or csv", shown);
	free(shown);
	return EX_DATAERR;
}

/* Canonical forms the filter points to. */
struct admin_audit_keys {
	char sender[ADDR_MAX + 1], rcpt[ADDR_MAX + 1], qid[QUEUE_ID_TEXT_LEN + 1];
};

/* The filters of the command line into f: 0, or an exit code (reported). */
static int admin_audit_filter(struct admin *a, const struct admin_args *args,
    struct audit_filter *f, struct admin_audit_keys *k)
{
	const char *sender = admin__arg(args, "--sender");
	const char *rcpt = admin__arg(args, "--recipient");
	const char *qid = admin__arg(args, "--queue-id");
	int64_t now = time_now_ms();
	int rc;

	if ((rc = admin_audit_time_arg(a, "--since", admin__arg(args, "--since"), now,
	    &f->since)) != 0 ||
	    (rc = admin_audit_time_arg(a, "--until", admin__arg(args, "--until"), now,
	    &f->until)) != 0)
		return rc;
	if (f->since != 0 && f->until != 0 && f->until <= f->since) {
		admin__err(a, "--until is not after --since: nothing can match");
		return EX_DATAERR;
	}
	/* The chain's addresses are canonical: so is what we look for. */
	if (sender != NULL) {
		if ((rc = admin__addr_arg(a, "--sender", sender, k->sender, sizeof k->sender)) != 0)
			return rc;
		f->sender = k->sender;
	}
	if (rcpt != NULL) {
		if ((rc = admin__addr_arg(a, "--recipient", rcpt, k->rcpt, sizeof k->rcpt)) != 0)
			return rc;
		f->recipient = k->rcpt;
	}
	if (qid != NULL) {
		uint64_t id;

		if (queue_id_parse(qid, &id) < 0) {
			char *shown = admin__text_dup(qid);

			admin__err(a, "--queue-id \"%s\": expected %d hex digits", shown,
			    QUEUE_ID_TEXT_LEN);
			free(shown);
			return EX_DATAERR;
		}
		queue_id_format(id, k->qid);
		f->qid = k->qid;
	}
	f->tenant = admin__arg(args, "--tenant");
	if (f->tenant != NULL) {
		if ((rc = admin__tenant_arg(a, "--tenant", f->tenant)) != 0)
			return rc;
		if ((rc = admin__need_tenant(a, f->tenant, "--tenant")) != 0)
			return rc;
	}
	f->event = admin__arg(args, "--event");
	return 0;
}

/*
 * The search, page by page: each step in its own read transaction, its
 * output written after the transaction ended. 0 or an exit code (reported).
 */
static int admin_audit_pages(struct admin *a, const struct audit_filter *f,
    struct admin_audit_out *o)
{
	struct audit_search *s = audit_search_new(f);
	struct queue_txn *txn;
	int rc;

	for (;;) {
		if ((rc = admin__txn(a, &txn)) != 0)
			break;
		rc = audit_search_step(s, txn, admin_audit_row, o);
		queue_txn_abort(txn);
		if (rc < 0) {
			admin__out_buf(a, &o->b);
			admin__err(a, "cannot read the audit chain: %s", queue_strerror(rc));
			rc = rc == -EBADMSG ? EX_DATAERR : admin__store_exit(rc);
			break;
		}
		if (rc != ADMIN_AUDIT_PAGE)
			break;
		admin__out_buf(a, &o->b);
		buf_reset(&o->b);
		/* Nobody reads any more: admin_run reports the failed output. */
		if (fflush(a->io->out) != 0 || ferror(a->io->out)) {
			rc = 0;
			break;
		}
	}
	audit_search_free(s);
	return rc;
}

int admin__audit_search(struct admin *a, const struct admin_args *args)
{
	struct audit_filter f;
	struct admin_audit_keys k;
	struct admin_audit_out o;
	int rc;

	memset(&f, 0, sizeof f);
	memset(&o, 0, sizeof o);
	o.a = a;
	if ((rc = admin_audit_format(a, args, &o.fmt)) != 0 ||
	    (rc = admin_audit_filter(a, args, &f, &k)) != 0)
		return rc;
	buf_init(&o.b);
	if (o.fmt == ADMIN_AUDIT_CSV)
		buf_append_str(&o.b, "seq,time,qid,event,hash,prev,facts\r\n");
	if (a->store != NULL)
		rc = admin_audit_pages(a, &f, &o);
	if (rc == 0)
		admin__out_buf(a, &o.b);
	buf_free(&o.b);
	free(o.qids);
	return rc == 0 ? EX_OK : rc;
}

/* The head as meta names it (what was verified when the chain is intact). */
static void admin_audit_head(struct queue_txn *txn, uint64_t *seq, char hex[65])
{
	uint8_t hash[CKPT_HASH_LEN];

	*seq = 0;
	memset(hash, 0, sizeof hash);
	if (txn != NULL && audit_head(txn, seq, hash) < 0)
		*seq = 0;
	hex_encode(hash, sizeof hash, hex);
}

/* The broken chain's finding, after the head (text or JSON). */
static void admin_audit_fault_out(struct admin *a, struct admin_json *j, struct buf *text,
    const struct audit_fault *fault)
{
	char *what;

	if (j != NULL) {
		admin__json_kuint(j, "seq", fault->seq);
		admin__json_kstr(j, "what", fault->what);
		admin__json_kstr(j, "expected", fault->expected_hex);
		admin__json_kstr(j, "found", fault->found_hex);
		return;
	}
	what = admin__text_dup(fault->what);
	buf_printf(text, "audit chain broken at record %" PRIu64 ": %s (expected %s, found %s)\n",
	    fault->seq, what, fault->expected_hex[0] ? fault->expected_hex : "-",
	    fault->found_hex[0] ? fault->found_hex : "-");
	free(what);
}

/*
 * `audit verify [--checkpoints FILE [--key FILE]]`: the chain, then the
 * head it verified (always printed: seq and hash), then, with
 * --checkpoints, the chain against the signed checkpoints (audit_anchor.c).
 */
int admin__audit_verify(struct admin *a, const struct admin_args *args)
{
	const char *ckfile = admin__arg(args, "--checkpoints"), *keyfile = admin__arg(args, "--key");
	struct admin_json j, *jp = a->json ? &j : NULL;
	struct audit_fault fault;
	struct queue_txn *txn = NULL;
	uint64_t count = 0, head_seq;
	char head_hex[65];
	struct buf text;
	int rc = 0, arc = 0;

	if (keyfile != NULL && ckfile == NULL)
		return admin__usage(a, "--key goes with --checkpoints");
	memset(&fault, 0, sizeof fault);
	if (a->store != NULL) {
		if ((rc = admin__txn(a, &txn)) != 0)
			return rc;
		rc = audit_verify_detail(txn, &count, &fault);
	}
	admin_audit_head(txn, &head_seq, head_hex);
	if (txn != NULL)
		queue_txn_abort(txn);
	if (rc != 0 && rc != -EBADMSG) {
		admin__err(a, "cannot read the audit chain: %s", queue_strerror(rc));
		return admin__store_exit(rc);
	}
	buf_init(&text);
	if (jp != NULL) {
		admin__json_begin(jp);
		admin__json_kbool(jp, "intact", rc == 0);
		admin__json_kuint(jp, "records", count);
		admin__json_kuint(jp, "head_seq", head_seq);
		admin__json_kstr(jp, "head_hash", head_hex);
	} else if (rc == 0) {
		buf_printf(&text, "audit chain intact: %" PRIu64 " records\n", count);
	}
	if (rc != 0)
		admin_audit_fault_out(a, jp, &text, &fault);
	if (jp == NULL)
		buf_printf(&text, "head%s: seq=%" PRIu64 " hash=%s\n", rc == 0 ? "" :
		    " (as meta names it; not verified)", head_seq, head_hex);
	/* The chain is judged against checkpoints only as far as it verified. */
	if (ckfile != NULL)
		arc = admin__audit_anchor(a, ckfile, keyfile, rc == 0 ? head_seq : count, jp, &text);
	if (jp != NULL)
		admin__json_end(a, jp);
	admin__out_buf(a, &text);
	buf_free(&text);
	if (rc != 0) {
		admin__err(a, "audit chain broken at record %" PRIu64, fault.seq);
		return EX_DATAERR;
	}
	if (arc == EX_DATAERR)
		admin__err(a, "the audit chain does not hold its signed checkpoints");
	return arc;
}

/* ------------------------------------------------------------ count */

static int admin_audit_last(void *arg, const struct audit_entry *e)
{
	uint64_t *last = arg;

	if (e->seq > *last)
		*last = e->seq;
	return 0;
}

int admin__audit_count(struct queue_txn *txn, uint64_t *count)
{
	/* Growing windows back from now; the last one is the whole chain. */
	static const int64_t windows[] = {
		60 * 1000LL, 3600 * 1000LL, 86400 * 1000LL, 31 * 86400 * 1000LL,
		366 * 86400 * 1000LL, 0,
	};
	int64_t now = time_now_ms();
	uint64_t last = 0;
	int rc = 0;

	for (size_t i = 0; i < sizeof windows / sizeof windows[0]; i++) {
		struct audit_filter f;

		memset(&f, 0, sizeof f);
		if (windows[i] != 0 && now > windows[i])
			f.since = now - windows[i];
		else if (windows[i] != 0)
			continue;
		rc = audit_search(txn, &f, admin_audit_last, &last);
		if (rc < 0 || last > 0)
			break;
	}
	*count = last;
	return rc < 0 ? rc : 0;
}
