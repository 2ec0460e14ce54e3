/*
 * test_dsn: unit tests of relay/dsn.c, the delivery status notifications.
 *
 * The report cases are a table: each row names a message (RET, ENVID,
 * SMTPUTF8, the body and how it is cut into chunks) and its recipients
 * (ORCPT, status, remote reply, remote MTA), builds the DSN from a real
 * store (queue_store_open in a mkdtemp directory, body chunks written with
 * queue_body_put), and writes the bytes with the expectations derived
 * from the row to a temporary directory; one run of tests/unit/check_dsn.py
 * (Python starts slowly) then parses every report with Python's email
 * package and by hand (CRLF only, lines <= 998 octets, the
 * multipart/report structure, every delivery-status field, the decoded
 * bilingual Subject). Hostile replies (CR/LF/control bytes, Bcc:
 * injection), long replies (folding, truncation) and originals that cannot
 * be returned whole are rows too. Separate tests cover the NOTIFY table,
 * the null sender, bad arguments, read errors and dsn_envelope_new.
 *
 * The script is found through GOVRELAY_SRCDIR (set by make check), else
 * next to this file's path as compiled.
 *
 * OWNERSHIP: each test owns its store directory and removes it.
 * THREADS: Check forks one process per test (or none with CK_FORK=no).
 * ERRORS: assertion failures.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <check.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "relay/dsn.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define TD_HOST "relay.hanoi.gov.vn"
#define TD_ID 0x0005f1e2d3c4b5a6ull
#define TD_NOW 1790000000000ll

/* ------------------------------------------------------------ helpers */

static int td_rm_entry(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int td_rm_tree(const char *dir)
{
	return nftw(dir, td_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

struct td_env {
	char dir[64];
	struct queue_store *store;
};

static void td_setup(struct td_env *e)
{
	snprintf(e->dir, sizeof e->dir, "/tmp/test-dsn-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(e->dir));
	ck_assert_int_eq(queue_store_open(e->dir, 64u * 1024 * 1024, false, &e->store), 0);
}

static void td_teardown(struct td_env *e)
{
	queue_store_close(e->store);
	e->store = NULL;
	td_rm_tree(e->dir);
}

/* Stores body as chunks of at most chunk bytes; sets size and nchunks. */
static void td_put_body(struct td_env *e, struct queue_msg *m, const char *body,
    size_t len, size_t chunk)
{
	struct queue_txn *t;
	uint32_t seq = 0;

	ck_assert_int_eq(queue_txn_begin(e->store, true, &t), 0);
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk;

		ck_assert_int_eq(queue_body_put(t, m->id, seq++, body + off, n), 0);
	}
	ck_assert_int_eq(queue_txn_commit(t), 0);
	m->size = len;
	m->nchunks = seq;
}

static struct queue_msg *td_msg(const char *sender, size_t nrcpts)
{
	struct queue_msg *m = xcalloc(1, sizeof *m);

	m->id = 0x0005f1e2d3c40001ull;
	m->arrival = TD_NOW - 3600 * 1000;
	m->sender = xstrdup(sender);
	m->client_addr = xstrdup("127.0.0.1");
	m->listener = xstrdup("submission");
	m->nrcpts = nrcpts;
	m->rcpts = xcalloc(nrcpts ? nrcpts : 1, sizeof *m->rcpts);
	for (size_t i = 0; i < nrcpts; i++)
		m->rcpts[i].addr = xstrdup("r@example.net");
	return m;
}

/* Builds in a read transaction; returns dsn_build's code. */
static int td_build(struct td_env *e, const struct queue_msg *m,
    const struct dsn_rcpt_report *r, size_t n, const struct dsn_params *p,
    struct buf *out)
{
	struct queue_txn *t;
	int rc;

	ck_assert_int_eq(queue_txn_begin(e->store, false, &t), 0);
	rc = dsn_build(t, m, r, n, p, out);
	queue_txn_abort(t);
	return rc;
}

static void td_json_str(struct buf *b, const char *s)
{
	if (s == NULL) {
		buf_append_str(b, "null");
		return;
	}
	buf_append_char(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			buf_printf(b, "\\%c", c);
		else if (c < 0x20)
			buf_printf(b, "\\u%04x", c);
		else
			buf_append_char(b, (char)c);
	}
	buf_append_char(b, '"');
}

static void td_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

/* Path of check_dsn.py: GOVRELAY_SRCDIR, else beside this file as compiled. */
static void td_script(char *out, size_t outlen)
{
	const char *srcdir = getenv("GOVRELAY_SRCDIR");
	const char *slash = strrchr(__FILE__, '/');

	if (srcdir != NULL && srcdir[0] != '\0')
		snprintf(out, outlen, "%s/tests/unit/check_dsn.py", srcdir);
	else if (slash != NULL)
		snprintf(out, outlen, "%.*s/check_dsn.py", (int)(slash - __FILE__), __FILE__);
	else
		snprintf(out, outlen, "./check_dsn.py");
}

/* --------------------------------------------------------- the originals */

/* A plain original: our Received line first, a header, a body marker. */
static const char td_body_plain[] =
	"Received: from client.example.org ([192.0.2.7])\r\n"
	"\tby " TD_HOST " (govrelay) with ESMTPS id 0005F1E2D3C40001;\r\n"
	"\tMon, 23 Nov 2026 11:30:00 +0000\r\n"
	"From: Nguyen Van A <a@example.org>\r\n"
	"To: <b@example.net>\r\n"
	"Subject: =?UTF-8?B?QsOhbyBjw6Fv?=\r\n"
	"Message-ID: <orig-1@example.org>\r\n"
	"\r\n"
	"BODY-MARKER line one\r\n"
	"line two\r\n";

/* Headers in 8-bit UTF-8 (RFC 6532), as an SMTPUTF8 client sends them. */
static const char td_body_utf8[] =
	"Received: from client.example.org ([192.0.2.7])\r\n"
	"\tby " TD_HOST " (govrelay) with UTF8SMTPS id 0005F1E2D3C40001;\r\n"
	"\tMon, 23 Nov 2026 11:30:00 +0000\r\n"
	"From: Trần Thị B <người.gửi@ví-dụ.vn>\r\n"
	"Subject: Báo cáo tháng\r\n"
	"Message-ID: <orig-1@example.org>\r\n"
	"\r\n"
	"BODY-MARKER nội dung\r\n";

/* Body variants made at run time. */
enum td_body {
	TD_BODY_PLAIN,
	TD_BODY_UTF8,
	TD_BODY_LONG_LINE,   /* a 1200-octet body line: cannot return whole */
	TD_BODY_BIG_HEADER,  /* 70 KiB of headers, one 1100-octet header line */
	TD_BODY_NO_BODY,     /* headers only, no empty line */
};

static void td_make_body(enum td_body kind, struct buf *b)
{
	buf_reset(b);
	switch (kind) {
	case TD_BODY_PLAIN:
		buf_append_str(b, td_body_plain);
		break;
	case TD_BODY_UTF8:
		buf_append_str(b, td_body_utf8);
		break;
	case TD_BODY_LONG_LINE:
		buf_append_str(b, td_body_plain);
		for (int i = 0; i < 1200; i++)
			buf_append_char(b, 'x');
		buf_append_str(b, "\r\n");
		break;
	case TD_BODY_BIG_HEADER:
		buf_append(b, td_body_plain, strstr(td_body_plain, "\r\n\r\n") + 2 -
		    td_body_plain);
		buf_append_str(b, "X-Long: ");
		for (int i = 0; i < 1100; i++)
			buf_append_char(b, 'y');
		buf_append_str(b, "\r\n");
		for (int i = 0; i < 1100; i++)
			buf_printf(b, "X-Filler-%04d: %s\r\n", i,
			    "padding padding padding padding padding padding");
		buf_append_str(b, "X-Last: never returned\r\n\r\nBODY-MARKER\r\n");
		break;
	case TD_BODY_NO_BODY:
		buf_append(b, td_body_plain, strstr(td_body_plain, "\r\n\r\n") + 2 -
		    td_body_plain);
		break;
	}
}

/* ------------------------------------------------------- report cases */

enum td_diag {
	TD_DIAG_GIVEN,       /* diag as written in the row */
	TD_DIAG_LONG,        /* 1500 octets of words: folded, kept whole */
	TD_DIAG_LONG_WORD,   /* 1500 octets without a space: hard folds */
	TD_DIAG_HUGE,        /* 3000 octets: cut with "..." */
};

enum td_dmode { TD_EXACT, TD_SQUASHED, TD_TRUNCATED };

struct td_rcpt_case {
	const char *addr;
	const char *orcpt;
	const char *status;
	const char *diag;
	const char *remote;
	int64_t last;
	int64_t until;
	enum td_diag gen;
	/* Expectations; NULL derives them from the inputs. */
	const char *x_final;
	const char *x_orcpt;
	const char *x_status;
	const char *x_diag;
	const char *x_remote;
};

struct td_case {
	const char *label;
	enum dsn_kind kind;
	enum queue_ret ret;
	bool utf8;
	const char *sender;
	const char *envid;
	const char *x_envid;     /* NULL: envid as given */
	enum td_body body;
	size_t chunk;            /* chunk size in the store; 0: one chunk */
	uint64_t full_max;
	size_t n;
	struct td_rcpt_case r[3];
	const char *x_part3;     /* NULL: a two-part report */
	bool x_full;             /* the original body came back */
	const char *text_has;    /* also expected in the text part; NULL */
};

static const char td_subject_fail[] = "Thư không gửi được / Undelivered Mail Returned to Sender";
static const char td_subject_delay[] = "Thư bị chậm / Delayed Mail (still being retried)";
static const char td_subject_ok[] = "Thư đã được chuyển / Successful Mail Delivery Report";

#define TD_R1 { "b@example.net", NULL, "5.1.1", "550 5.1.1 <b@example.net>: user unknown", \
	"mx.example.net", TD_NOW - 60000, 0, TD_DIAG_GIVEN, NULL, NULL, NULL, NULL, NULL }

static const struct td_case td_cases[] = {
	{ "failure, 1 rcpt, RET unset: headers", DSN_FAILURE, QUEUE_RET_UNSET, false,
	  "a@example.org", NULL, NULL, TD_BODY_PLAIN, 0, 0, 1, { TD_R1 },
	  "text/rfc822-headers", false, "user unknown" },
	{ "failure, 3 rcpts, ENVID, ORCPT, RET=HDRS", DSN_FAILURE, QUEUE_RET_HDRS, false,
	  "a@example.org", "QQ314159", NULL, TD_BODY_PLAIN, 0, 0, 3, {
		{ "b@example.net", "rfc822;B@Example.NET", "5.1.1", "550 5.1.1 no such user",
		  "mx1.example.net", TD_NOW - 1000, 0, TD_DIAG_GIVEN,
		  NULL, "rfc822; B@Example.NET", NULL, NULL, NULL },
		{ "c@example.com", NULL, "5.7.1", "554-5.7.1 policy\r\n554 5.7.1 rejected",
		  NULL, 0, 0, TD_DIAG_GIVEN,
		  NULL, NULL, NULL, "smtp; 554-5.7.1 policy 554 5.7.1 rejected", NULL },
		{ "d@example.com", "rfc822;old-d@example.com", "4.4.7",
		  "connect to mx.example.com[192.0.2.9]:25: Connection timed out", NULL,
		  TD_NOW, 0, TD_DIAG_GIVEN, NULL, "rfc822; old-d@example.com", NULL,
		  "X-Govrelay; connect to mx.example.com[192.0.2.9]:25: Connection timed out",
		  NULL },
	  }, "text/rfc822-headers", false, "no such user" },
	{ "failure, RET=FULL, body over 3 chunks", DSN_FAILURE, QUEUE_RET_FULL, false,
	  "a@example.org", NULL, NULL, TD_BODY_PLAIN, 100, 0, 1, { TD_R1 },
	  "message/rfc822", true, NULL },
	{ "failure, RET=FULL over the limit: headers", DSN_FAILURE, QUEUE_RET_FULL, false,
	  "a@example.org", NULL, NULL, TD_BODY_PLAIN, 0, 100, 1, { TD_R1 },
	  "text/rfc822-headers", false, NULL },
	{ "failure, RET=FULL with a 1200-octet line: headers", DSN_FAILURE, QUEUE_RET_FULL,
	  false, "a@example.org", NULL, NULL, TD_BODY_LONG_LINE, 0, 0, 1, { TD_R1 },
	  "text/rfc822-headers", false, NULL },
	{ "failure, 70 KiB of headers: cut, long header folded", DSN_FAILURE,
	  QUEUE_RET_HDRS, false, "a@example.org", NULL, NULL, TD_BODY_BIG_HEADER,
	  4096, 0, 1, { TD_R1 }, "text/rfc822-headers", false, NULL },
	{ "failure, original without a body", DSN_FAILURE, QUEUE_RET_FULL, false,
	  "a@example.org", NULL, NULL, TD_BODY_NO_BODY, 0, 0, 1, { TD_R1 },
	  "message/rfc822", false, NULL },
	{ "failure, CR/LF/control bytes everywhere: no injection", DSN_FAILURE,
	  QUEUE_RET_UNSET, false, "a@example.org", "id\r\nBcc: x@evil.example",
	  "id Bcc: x@evil.example", TD_BODY_PLAIN, 0, 0, 2, {
		{ "b@example.net", "rfc822;b@example.net\r\nBcc: y@evil.example", "5.1.1",
		  "550 5.1.1 bad\r\nBcc: victim@evil.example\r\n\r\nX-Injected: 1\x01\x7f\x1b[0m end",
		  "mx.example.net\r\nX-Evil: 1", TD_NOW, 0, TD_DIAG_GIVEN,
		  NULL, "rfc822; b@example.net Bcc: y@evil.example", NULL,
		  "smtp; 550 5.1.1 bad Bcc: victim@evil.example X-Injected: 1[0m end",
		  "dns; mx.example.net X-Evil: 1" },
		{ "c@example.net\r\nBcc: z@evil.example", NULL, "5.1.1",
		  "550 \xff\xfe caf\xc3\xa9 \t tab", NULL, 0, 0, TD_DIAG_GIVEN,
		  "rfc822; c@example.net Bcc: z@evil.example", NULL, NULL,
		  "smtp; 550 ?? caf?? tab", NULL },
	  }, "text/rfc822-headers", false, "café" },
	{ "failure, long diagnostics: folded, hard-folded, cut", DSN_FAILURE,
	  QUEUE_RET_UNSET, false, "a@example.org", NULL, NULL, TD_BODY_PLAIN, 0, 0, 3, {
		{ "b@example.net", NULL, "5.2.2", NULL, "mx.example.net", TD_NOW, 0,
		  TD_DIAG_LONG, NULL, NULL, NULL, NULL, NULL },
		{ "c@example.net", NULL, "5.2.2", NULL, "mx.example.net", TD_NOW, 0,
		  TD_DIAG_LONG_WORD, NULL, NULL, NULL, NULL, NULL },
		{ "d@example.net", NULL, "5.2.2", NULL, "mx.example.net", TD_NOW, 0,
		  TD_DIAG_HUGE, NULL, NULL, NULL, NULL, NULL },
	  }, "text/rfc822-headers", false, NULL },
	{ "failure, malformed status: default 5.0.0", DSN_FAILURE, QUEUE_RET_UNSET, false,
	  "a@example.org", NULL, NULL, TD_BODY_PLAIN, 0, 0, 2, {
		{ "b@example.net", NULL, "5.1", "550 nope", NULL, 0, 0, TD_DIAG_GIVEN,
		  NULL, NULL, "5.0.0", NULL, NULL },
		{ "c@example.net", NULL, "2.0.0\r\nBcc: x", NULL, NULL, 0, 0, TD_DIAG_GIVEN,
		  NULL, NULL, "5.0.0", NULL, NULL },
	  }, "text/rfc822-headers", false, NULL },
	{ "delay, 1 rcpt, RET unset", DSN_DELAY, QUEUE_RET_UNSET, false,
	  "a@example.org", NULL, NULL, TD_BODY_PLAIN, 0, 0, 1, {
		{ "b@example.net", NULL, "4.4.1", "421 4.4.1 try later", "mx.example.net",
		  TD_NOW - 5000, TD_NOW + 5 * 86400000ll, TD_DIAG_GIVEN,
		  NULL, NULL, NULL, NULL, NULL },
	  }, "text/rfc822-headers", false, "Retrying until" },
	{ "delay, 3 rcpts, ENVID, ORCPT, RET=FULL", DSN_DELAY, QUEUE_RET_FULL, false,
	  "a@example.org", "env-42", NULL, TD_BODY_PLAIN, 64, 0, 3, {
		{ "b@example.net", "rfc822;b@example.net", "4.4.1", "451 4.4.1 greylisted",
		  "mx.example.net", TD_NOW, TD_NOW + 86400000ll, TD_DIAG_GIVEN,
		  NULL, "rfc822; b@example.net", NULL, NULL, NULL },
		{ "c@example.net", NULL, "4.4.2", NULL, NULL, 0, TD_NOW + 86400000ll,
		  TD_DIAG_GIVEN, NULL, NULL, NULL, NULL, NULL },
		{ "d@example.net", NULL, "5.1.1", "550 5.1.1 odd", NULL, 0, 0,
		  TD_DIAG_GIVEN, NULL, NULL, "4.0.0", NULL, NULL },
	  }, "message/rfc822", true, "greylisted" },
	{ "success, relayed and delivered", DSN_SUCCESS, QUEUE_RET_HDRS, false,
	  "a@example.org", NULL, NULL, TD_BODY_PLAIN, 0, 0, 2, {
		{ "b@example.net", NULL, "2.0.0", "250 2.0.0 Ok: queued as 123",
		  "mx.example.net", TD_NOW, 0, TD_DIAG_GIVEN, NULL, NULL, NULL, NULL, NULL },
		{ "c@example.net", NULL, "2.0.0", NULL, NULL, TD_NOW, 0, TD_DIAG_GIVEN,
		  NULL, NULL, NULL, NULL, NULL },
	  }, "text/rfc822-headers", false, "relayed" },
	{ "SMTPUTF8 failure: global types (RFC 6533)", DSN_FAILURE, QUEUE_RET_HDRS, true,
	  "người.gửi@ví-dụ.vn", NULL, NULL, TD_BODY_UTF8, 0, 0, 2, {
		{ "người.nhận@ví-dụ.vn", "utf-8;người.nhận@ví-dụ.vn", "5.1.1",
		  "550 5.1.1 không có người dùng này", NULL, TD_NOW, 0, TD_DIAG_GIVEN,
		  NULL, NULL, NULL, NULL, NULL },
		{ "b@example.net", NULL, "5.1.1", "550 user unknown \xc3", NULL, TD_NOW, 0,
		  TD_DIAG_GIVEN, NULL, NULL, NULL, "smtp; 550 user unknown ?", NULL },
	  }, "message/global-headers", false, "không có người dùng này" },
	{ "SMTPUTF8 failure, RET=FULL: message/global", DSN_FAILURE, QUEUE_RET_FULL, true,
	  "người.gửi@ví-dụ.vn", NULL, NULL, TD_BODY_UTF8, 0, 0, 1, { TD_R1 },
	  "message/global", true, NULL },
};

static void td_gen_diag(enum td_diag gen, struct buf *b)
{
	buf_reset(b);
	switch (gen) {
	case TD_DIAG_GIVEN:
		break;
	case TD_DIAG_LONG:
		buf_append_str(b, "552-5.2.2 mailbox full");
		while (b->len < 1500)
			buf_append_str(b, " quota exceeded,");
		break;
	case TD_DIAG_LONG_WORD:
		buf_append_str(b, "552 5.2.2 ");
		while (b->len < 1500)
			buf_append_char(b, (char)('a' + b->len % 26));
		break;
	case TD_DIAG_HUGE:
		buf_append_str(b, "552 5.2.2");
		while (b->len < 3000)
			buf_append_str(b, " full");
		break;
	}
}

/* "rfc822; addr", or "utf-8; addr" for a non-ASCII address (RFC 6533). */
static void td_addr_field(struct buf *b, const char *type, const char *addr)
{
	bool ascii = true;

	for (const char *p = addr; *p; p++)
		if ((unsigned char)*p >= 0x80)
			ascii = false;
	buf_reset(b);
	buf_printf(b, "%s; %s", type ? type : (ascii ? "rfc822" : "utf-8"), addr);
}

static bool td_is_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s >= 0x80)
			return false;
	return true;
}

static const char *td_action(enum dsn_kind kind, const struct td_rcpt_case *r)
{
	switch (kind) {
	case DSN_FAILURE: return "failed";
	case DSN_DELAY: return "delayed";
	case DSN_SUCCESS: return r->remote ? "relayed" : "delivered";
	}
	return "";
}

/*
 * Builds the report of row idx from a fresh store and writes it, with its
 * expectations as JSON, to dir/NN.eml and dir/NN.json.
 */
static void td_report(const char *dir, size_t idx)
{
	const struct td_case *tc = &td_cases[idx];
	char path[128];
	struct dsn_rcpt_report rep[3];
	struct buf diags[3], body, out, exp, tmp;
	struct dsn_params p = { tc->kind, TD_HOST, TD_NOW, TD_ID, tc->full_max };
	struct queue_msg *m;
	struct td_env e;

	td_setup(&e);
	buf_init(&body);
	buf_init(&out);
	buf_init(&exp);
	buf_init(&tmp);
	m = td_msg(tc->sender, tc->n);
	m->ret = tc->ret;
	m->smtputf8 = tc->utf8;
	m->body_type = tc->utf8 ? QUEUE_BODY_8BITMIME : QUEUE_BODY_7BIT;
	if (tc->envid)
		m->envid = xstrdup(tc->envid);
	td_make_body(tc->body, &body);
	td_put_body(&e, m, body.data, body.len, tc->chunk ? tc->chunk : body.len);

	for (size_t i = 0; i < tc->n; i++) {
		const struct td_rcpt_case *r = &tc->r[i];

		buf_init(&diags[i]);
		td_gen_diag(r->gen, &diags[i]);
		rep[i] = (struct dsn_rcpt_report){
			.addr = r->addr, .orcpt = r->orcpt, .status = r->status,
			.diagnostic = r->gen == TD_DIAG_GIVEN ? r->diag : buf_cstr(&diags[i]),
			.remote_mta = r->remote, .last_attempt = r->last,
			.retry_until = r->until,
		};
	}
	ck_assert_msg(td_build(&e, m, rep, tc->n, &p, &out) == 0, "%s: dsn_build", tc->label);

	/* The expectations, as JSON for check_dsn.py. */
	buf_append_str(&exp, "{\"label\": ");
	td_json_str(&exp, tc->label);
	buf_append_str(&exp, ", \"subject\": ");
	td_json_str(&exp, tc->kind == DSN_FAILURE ? td_subject_fail :
	    tc->kind == DSN_DELAY ? td_subject_delay : td_subject_ok);
	buf_append_str(&exp, ", \"to\": ");
	td_json_str(&exp, tc->sender);
	buf_append_str(&exp, ", \"host\": ");
	td_json_str(&exp, TD_HOST);
	buf_append_str(&exp, ", \"kind\": ");
	td_json_str(&exp, dsn_kind_name(tc->kind));
	buf_printf(&exp, ", \"utf8\": %s, \"part3\": ", tc->utf8 ? "true" : "false");
	td_json_str(&exp, tc->x_part3);
	buf_append_str(&exp, ", \"envid\": ");
	td_json_str(&exp, tc->x_envid ? tc->x_envid : tc->envid);
	buf_append_str(&exp, ", \"part3_has\": [\"Message-ID: <orig-1@example.org>\"");
	if (tc->x_full)
		buf_append_str(&exp, ", \"BODY-MARKER\"");
	if (tc->body == TD_BODY_UTF8)
		buf_append_str(&exp, ", \"Subject: Báo cáo tháng\"");
	buf_append_str(&exp, "], \"part3_lacks\": [");
	if (!tc->x_full)
		buf_append_str(&exp, "\"BODY-MARKER\"");
	if (tc->body == TD_BODY_BIG_HEADER)
		buf_append_str(&exp, ", \"X-Last\"");
	buf_append_str(&exp, "], \"text_has\": [");
	if (tc->text_has)
		td_json_str(&exp, tc->text_has);
	buf_append_str(&exp, "], \"rcpts\": [");
	for (size_t i = 0; i < tc->n; i++) {
		const struct td_rcpt_case *r = &tc->r[i];
		const char *diag = rep[i].diagnostic;

		buf_append_str(&exp, i ? ", {" : "{");
		buf_append_str(&exp, "\"final\": ");
		if (r->x_final) {
			td_json_str(&exp, r->x_final);
		} else {
			td_addr_field(&tmp, NULL, r->addr);
			td_json_str(&exp, buf_cstr(&tmp));
		}
		buf_append_str(&exp, ", \"orcpt\": ");
		if (r->x_orcpt) {
			td_json_str(&exp, r->x_orcpt);
		} else if (r->orcpt) {
			const char *semi = strchr(r->orcpt, ';');

			buf_reset(&tmp);
			buf_printf(&tmp, "%.*s; %s", (int)(semi - r->orcpt), r->orcpt, semi + 1);
			td_json_str(&exp, buf_cstr(&tmp));
		} else {
			td_json_str(&exp, NULL);
		}
		buf_append_str(&exp, ", \"action\": ");
		td_json_str(&exp, td_action(tc->kind, r));
		buf_append_str(&exp, ", \"status\": ");
		td_json_str(&exp, r->x_status ? r->x_status : r->status);
		buf_append_str(&exp, ", \"remote\": ");
		if (r->x_remote) {
			td_json_str(&exp, r->x_remote);
		} else if (r->remote) {
			buf_reset(&tmp);
			buf_printf(&tmp, "dns; %s", r->remote);
			td_json_str(&exp, buf_cstr(&tmp));
		} else {
			td_json_str(&exp, NULL);
		}
		buf_append_str(&exp, ", \"diag\": ");
		if (r->x_diag) {
			td_json_str(&exp, r->x_diag);
		} else if (diag) {
			buf_reset(&tmp);
			buf_printf(&tmp, "smtp; %s", diag);
			td_json_str(&exp, buf_cstr(&tmp));
		} else {
			td_json_str(&exp, NULL);
		}
		buf_printf(&exp, ", \"diag_mode\": \"%s\"",
		    r->gen == TD_DIAG_LONG_WORD ? "squashed" :
		    r->gen == TD_DIAG_HUGE ? "truncated" : "exact");
		buf_printf(&exp, ", \"diag_in_text\": %s",
		    diag && td_is_ascii(diag) ? "true" : "false");
		buf_printf(&exp, ", \"last\": %s, \"retry\": %s}",
		    r->last > 0 ? "true" : "false",
		    tc->kind == DSN_DELAY && r->until > 0 ? "true" : "false");
	}
	buf_append_str(&exp, "]}\n");
	snprintf(path, sizeof path, "%s/%02zu.eml", dir, idx);
	td_write_file(path, out.data, out.len);
	snprintf(path, sizeof path, "%s/%02zu.json", dir, idx);
	td_write_file(path, exp.data, exp.len);

	for (size_t i = 0; i < tc->n; i++)
		buf_free(&diags[i]);
	queue_msg_free(m);
	buf_free(&tmp);
	buf_free(&exp);
	buf_free(&out);
	buf_free(&body);
	td_teardown(&e);
}

/*
 * Every row of the table, then one run of check_dsn.py over all of them
 * (it names the failing rows by label).
 */
START_TEST(test_reports)
{
	char dir[64], script[512], cmd[1024];
	int st;

	td_script(script, sizeof script);
	ck_assert_msg(access(script, R_OK) == 0, "cannot read %s", script);
	snprintf(dir, sizeof dir, "/tmp/test-dsn-py-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	for (size_t i = 0; i < N(td_cases); i++)
		td_report(dir, i);
	snprintf(cmd, sizeof cmd, "python3 '%s' '%s'", script, dir);
	st = system(cmd);
	ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	    "check_dsn.py failed (status %d); reports kept in %s", st, dir);
	td_rm_tree(dir);
}
END_TEST

/* The raw bytes, checked in C as well: no line starts an injected field. */
START_TEST(test_no_injection_raw)
{
	struct dsn_rcpt_report r = {
		.addr = "b@example.net", .status = "5.1.1",
		.diagnostic = "550 x\r\nBcc: victim@evil.example\nSubject: pwned\r\x00",
		.remote_mta = "mx\nX-Evil: 1",
	};
	struct dsn_params p = { DSN_FAILURE, TD_HOST, TD_NOW, TD_ID, 0 };
	struct queue_msg *m = td_msg("a@example.org", 1);
	struct buf out;
	struct td_env e;

	td_setup(&e);
	buf_init(&out);
	td_put_body(&e, m, td_body_plain, strlen(td_body_plain), 4096);
	ck_assert_int_eq(td_build(&e, m, &r, 1, &p, &out), 0);
	buf_cstr(&out);
	ck_assert_ptr_null(strstr(out.data, "\r\nBcc:"));
	ck_assert_ptr_null(strstr(out.data, "\r\nX-Evil:"));
	ck_assert_ptr_null(strstr(out.data, "\nSubject: pwned"));
	ck_assert_ptr_nonnull(strstr(out.data,
	    "Diagnostic-Code: smtp; 550 x Bcc: victim@evil.example Subject: pwned\r\n"));
	ck_assert_ptr_nonnull(strstr(out.data, "Remote-MTA: dns; mx X-Evil: 1\r\n"));
	/* Exactly one Subject field at the top (ours). */
	ck_assert_ptr_nonnull(strstr(out.data, "\r\nSubject: =?UTF-8?B?"));
	ck_assert_uint_eq(memchr(out.data, '\0', out.len) == NULL, 1);
	buf_free(&out);
	queue_msg_free(m);
	td_teardown(&e);
}
END_TEST

/* ------------------------------------------------------------- NOTIFY */

static const struct notify_case {
	const char *label;
	const char *sender;
	unsigned notify;
	bool failure, delay, success;
} notify_cases[] = {
	{ "no NOTIFY: failure and delay", "a@example.org", 0, true, true, false },
	{ "NOTIFY=NEVER", "a@example.org", QUEUE_NOTIFY_NEVER, false, false, false },
	{ "NOTIFY=SUCCESS", "a@example.org", QUEUE_NOTIFY_SUCCESS, false, false, true },
	{ "NOTIFY=FAILURE", "a@example.org", QUEUE_NOTIFY_FAILURE, true, false, false },
	{ "NOTIFY=DELAY", "a@example.org", QUEUE_NOTIFY_DELAY, false, true, false },
	{ "NOTIFY=FAILURE,DELAY", "a@example.org",
	  QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY, true, true, false },
	{ "NOTIFY=SUCCESS,FAILURE,DELAY", "a@example.org",
	  QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY, true, true, true },
	{ "NEVER wins over stray bits", "a@example.org",
	  QUEUE_NOTIFY_NEVER | QUEUE_NOTIFY_FAILURE, false, false, false },
	{ "null sender, no NOTIFY", "", 0, false, false, false },
	{ "null sender, NOTIFY=FAILURE", "", QUEUE_NOTIFY_FAILURE, false, false, false },
	{ "null sender, all asked", "",
	  QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY, false, false, false },
};

START_TEST(test_notify_table)
{
	const struct notify_case *c = &notify_cases[_i];
	struct queue_msg *m = td_msg(c->sender, 1);

	m->rcpts[0].notify = c->notify;
	ck_assert_msg(dsn_wanted(m, &m->rcpts[0], DSN_FAILURE) == c->failure,
	    "%s: failure", c->label);
	ck_assert_msg(dsn_wanted(m, &m->rcpts[0], DSN_DELAY) == c->delay,
	    "%s: delay", c->label);
	ck_assert_msg(dsn_wanted(m, &m->rcpts[0], DSN_SUCCESS) == c->success,
	    "%s: success", c->label);
	queue_msg_free(m);
}
END_TEST

/* ------------------------------------------------------ refused inputs */

START_TEST(test_null_sender)
{
	struct dsn_rcpt_report r = { .addr = "b@example.net", .status = "5.1.1" };
	struct dsn_params p = { DSN_FAILURE, TD_HOST, TD_NOW, TD_ID, 0 };
	struct queue_msg *m = td_msg("", 1), dummy, *env = &dummy;
	struct buf out, body;
	struct td_env e;

	td_setup(&e);
	buf_init(&out);
	buf_init(&body);
	td_put_body(&e, m, td_body_plain, strlen(td_body_plain), 4096);
	ck_assert(!dsn_wanted(m, &m->rcpts[0], DSN_FAILURE));
	ck_assert_int_eq(td_build(&e, m, &r, 1, &p, &out), -EINVAL);
	ck_assert_uint_eq(out.len, 0);
	buf_append_str(&body, "x");
	ck_assert_int_eq(dsn_envelope_new(m, TD_ID, TD_NOW, &body, &env), -EINVAL);
	ck_assert_ptr_null(env);
	buf_free(&body);
	buf_free(&out);
	queue_msg_free(m);
	td_teardown(&e);
}
END_TEST

static const struct bad_case {
	const char *label;
	const char *host;
	const char *sender;
	const char *addr;
	size_t n;
	int kind;
} bad_cases[] = {
	{ "no recipients", TD_HOST, "a@example.org", "b@example.net", 0, DSN_FAILURE },
	{ "recipient without address", TD_HOST, "a@example.org", NULL, 1, DSN_FAILURE },
	{ "empty recipient address", TD_HOST, "a@example.org", "", 1, DSN_FAILURE },
	{ "host with a space", "relay example", "a@example.org", "b@example.net", 1, DSN_FAILURE },
	{ "host with CRLF", "relay\r\nBcc: x", "a@example.org", "b@example.net", 1, DSN_FAILURE },
	{ "empty host", "", "a@example.org", "b@example.net", 1, DSN_FAILURE },
	{ "NULL host", NULL, "a@example.org", "b@example.net", 1, DSN_FAILURE },
	{ "sender with CRLF", TD_HOST, "a@example.org\r\nBcc: x@y", "b@example.net", 1,
	  DSN_FAILURE },
	{ "sender with '>'", TD_HOST, "a>@example.org", "b@example.net", 1, DSN_FAILURE },
	{ "UTF-8 sender without SMTPUTF8", TD_HOST, "người@ví-dụ.vn", "b@example.net", 1,
	  DSN_FAILURE },
	{ "unknown kind", TD_HOST, "a@example.org", "b@example.net", 1, 7 },
};

START_TEST(test_bad_args)
{
	const struct bad_case *c = &bad_cases[_i];
	struct dsn_rcpt_report r = { .addr = c->addr, .status = "5.1.1" };
	struct dsn_params p = { (enum dsn_kind)c->kind, c->host, TD_NOW, TD_ID, 0 };
	struct queue_msg *m = td_msg(c->sender, 1);
	struct buf out;
	struct td_env e;

	td_setup(&e);
	buf_init(&out);
	buf_append_str(&out, "keep");
	td_put_body(&e, m, td_body_plain, strlen(td_body_plain), 4096);
	ck_assert_msg(td_build(&e, m, &r, c->n, &p, &out) == -EINVAL, "%s", c->label);
	ck_assert_msg(out.len == 4 && memcmp(out.data, "keep", 4) == 0,
	    "%s: out changed", c->label);
	buf_free(&out);
	queue_msg_free(m);
	td_teardown(&e);
}
END_TEST

/*
 * A missing chunk: an error for RET=FULL (the caller decides), none for
 * headers when the empty line came in an earlier chunk.
 */
START_TEST(test_missing_chunk)
{
	struct dsn_rcpt_report r = { .addr = "b@example.net", .status = "5.1.1" };
	struct dsn_params p = { DSN_FAILURE, TD_HOST, TD_NOW, TD_ID, 0 };
	struct queue_msg *m = td_msg("a@example.org", 1);
	size_t hlen = (size_t)(strstr(td_body_plain, "\r\n\r\n") - td_body_plain) + 4;
	struct buf out;
	struct td_env e;

	td_setup(&e);
	buf_init(&out);
	td_put_body(&e, m, td_body_plain, hlen, hlen);
	m->nchunks = 2;   /* the second chunk was never stored */
	m->size = strlen(td_body_plain);
	m->ret = QUEUE_RET_FULL;
	ck_assert_int_eq(td_build(&e, m, &r, 1, &p, &out), -ENOENT);
	ck_assert_uint_eq(out.len, 0);
	m->ret = QUEUE_RET_HDRS;
	ck_assert_int_eq(td_build(&e, m, &r, 1, &p, &out), 0);
	buf_cstr(&out);
	ck_assert_ptr_nonnull(strstr(out.data, "Content-Type: text/rfc822-headers\r\n"));
	buf_free(&out);
	queue_msg_free(m);
	td_teardown(&e);
}
END_TEST

/* --------------------------------------------------------- the envelope */

START_TEST(test_envelope)
{
	struct queue_msg *orig = td_msg("a@example.org", 2), *env;
	struct buf body, enc;
	struct queue_msg *back;

	buf_init(&body);
	buf_init(&enc);
	buf_append_str(&body, "Subject: x\r\n\r\nplain\r\n");
	ck_assert_int_eq(dsn_envelope_new(orig, TD_ID, TD_NOW, &body, &env), 0);
	ck_assert_str_eq(env->sender, "");
	ck_assert_uint_eq(env->id, TD_ID);
	ck_assert_int_eq(env->arrival, TD_NOW);
	ck_assert_uint_eq(env->nrcpts, 1);
	ck_assert_str_eq(env->rcpts[0].addr, "a@example.org");
	ck_assert_uint_eq(env->rcpts[0].notify, QUEUE_NOTIFY_NEVER);
	ck_assert_int_eq(env->rcpts[0].state, QUEUE_RCPT_PENDING);
	ck_assert_int_eq(env->rcpts[0].next_attempt, TD_NOW);
	ck_assert_int_eq(env->body_type, QUEUE_BODY_7BIT);
	ck_assert(!env->smtputf8);
	ck_assert_uint_eq(env->size, body.len);
	ck_assert_uint_eq(env->nchunks, 1);
	/* A DSN about the DSN is never wanted. */
	ck_assert(!dsn_wanted(env, &env->rcpts[0], DSN_FAILURE));
	/* It survives the store's encoding. */
	queue_msg_encode(env, &enc);
	ck_assert_int_eq(queue_msg_decode(enc.data, enc.len, &back), 0);
	ck_assert_str_eq(back->sender, "");
	ck_assert_str_eq(back->rcpts[0].addr, "a@example.org");
	queue_msg_free(back);
	queue_msg_free(env);

	/* 8-bit content and more than one chunk. */
	buf_reset(&body);
	while (body.len <= QUEUE_CHUNK_MAX)
		buf_append_str(&body, "Tiếng Việt\r\n");
	orig->smtputf8 = true;
	ck_assert_int_eq(dsn_envelope_new(orig, TD_ID, TD_NOW, &body, &env), 0);
	ck_assert_int_eq(env->body_type, QUEUE_BODY_8BITMIME);
	ck_assert(env->smtputf8);
	ck_assert_uint_eq(env->nchunks, 2);
	queue_msg_free(env);

	buf_free(&enc);
	buf_free(&body);
	queue_msg_free(orig);
}
END_TEST

START_TEST(test_kind_names)
{
	ck_assert_str_eq(dsn_kind_name(DSN_FAILURE), "failure");
	ck_assert_str_eq(dsn_kind_name(DSN_DELAY), "delay");
	ck_assert_str_eq(dsn_kind_name(DSN_SUCCESS), "success");
	ck_assert_str_eq(dsn_kind_name((enum dsn_kind)9), "unknown");
}
END_TEST

static Suite *td_suite(void)
{
	Suite *s = suite_create("dsn");
	TCase *tc = tcase_create("dsn");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_reports);
	tcase_add_test(tc, test_no_injection_raw);
	tcase_add_loop_test(tc, test_notify_table, 0, N(notify_cases));
	tcase_add_test(tc, test_null_sender);
	tcase_add_loop_test(tc, test_bad_args, 0, N(bad_cases));
	tcase_add_test(tc, test_missing_chunk);
	tcase_add_test(tc, test_envelope);
	tcase_add_test(tc, test_kind_names);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(td_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
