/*
 * test_quarantine: unit tests of the quarantine (queue/quarantine.c) as
 * the store sees it, and of receiving into it (queue_receive_apply with
 * a quarantine verdict): the message is kept whole (envelope with its
 * expanded recipients, body chunks, rule, reason, notes, tenants, time)
 * with no `messages` record and no schedule entry, `received` then
 * `quarantined` recorded; list (walk, from an id); release makes it a
 * queued message due now with its schedule entry, in one transaction;
 * delete frees the body chunks; orphan collection leaves a quarantined
 * message's chunks alone; corrupt records are refused (-EBADMSG) case by
 * case; the operator roles, security included; a store written before
 * the `quarantine` database existed reads as an empty quarantine when
 * opened read-only and gains the database on a read-write open; the
 * admin engine's role matrix, in process as the daemon runs it for an
 * operator (table-driven, in order: who, command, exit status, what the
 * output must and must not show, whether the scheduler was kicked).
 *
 * Every test works in its own fresh mkdtemp directory, removed at the end.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <lmdb.h>

#include "admin/admin.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/audit_event.h"
#include "queue/quarantine.h"
#include "queue/queue.h"
#include "queue/receive.h"
#include "queue/tenancy.h"

/* ------------------------------------------------------------ helpers */

static int tq_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

struct tq_env {
	char dir[64];
	struct queue_store *store;
};

static struct queue_txn *tq_begin(struct tq_env *e, bool write)
{
	struct queue_txn *t;

	ck_assert_int_eq(queue_txn_begin(e->store, write, &t), 0);
	return t;
}

/* A store with city (city.test) -> ward (ward.test); alias team@ward.test. */
static void tq_setup(struct tq_env *e)
{
	struct queue_tenant city = { "city", "City", NULL, 1000 };
	struct queue_tenant ward = { "ward", "Ward", "city", 1000 };
	struct queue_domain dc = { .name = "city.test", .tenant = "city", .route = "mx" };
	struct queue_domain dw = { .name = "ward.test", .tenant = "ward", .route = "mx" };
	const char *team[] = { "a@ward.test", "b@ward.test" };
	struct queue_mailbox alias = { "team@ward.test", (char **)team, 2, 7 };
	struct queue_txn *t;
	char why[256];

	snprintf(e->dir, sizeof e->dir, "/tmp/test-quarantine-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(e->dir));
	ck_assert_int_eq(queue_store_open(e->dir, 256u << 20, false, &e->store), 0);
	t = tq_begin(e, true);
	ck_assert_int_eq(queue_tenant_put(t, &city, why, sizeof why), 0);
	ck_assert_int_eq(queue_tenant_put(t, &ward, why, sizeof why), 0);
	ck_assert_int_eq(queue_domain_put(t, &dc), 0);
	ck_assert_int_eq(queue_domain_put(t, &dw), 0);
	ck_assert_msg(queue_mailbox_put(t, &alias, why, sizeof why) == 0, "%s", why);
	ck_assert_int_eq(queue_txn_commit(t), 0);
}

static void tq_teardown(struct tq_env *e)
{
	queue_store_close(e->store);
	nftw(e->dir, tq_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

#define TQ_ARRIVAL 1700000000000LL
#define TQ_HEAD "Received: from client\r\n"
#define TQ_BODY "From: <x@quarantine.org>\r\nSubject: hi\r\n\r\nbody\r\n"

/*
 * Receives message id from x@quarantine.org to rcpt (and rcpt2 when not
 * NULL) with a quarantine verdict when rule is not NULL; chunk 1 is the
 * body (written first, as a session streams it), the head rides in the
 * commit.
 */
static int tq_receive(struct tq_env *e, uint64_t id, const char *rcpt, const char *rcpt2,
    const char *rule)
{
	struct queue_receive req;
	struct queue_receive_result res;
	struct queue_txn *t = tq_begin(e, true);
	int rc;

	memset(&req, 0, sizeof req);
	req.msg.id = id;
	req.msg.arrival = TQ_ARRIVAL;
	req.msg.sender = xstrdup("x@quarantine.org");
	req.msg.client_addr = xstrdup("192.0.2.7");
	req.msg.listener = xstrdup("mx");
	req.msg.nrcpts = rcpt2 ? 2 : 1;
	req.msg.rcpts = xcalloc(2, sizeof *req.msg.rcpts);
	req.msg.rcpts[0].addr = xstrdup(rcpt);
	req.msg.rcpts[0].next_attempt = TQ_ARRIVAL;
	if (rcpt2 != NULL) {
		req.msg.rcpts[1].addr = xstrdup(rcpt2);
		req.msg.rcpts[1].next_attempt = TQ_ARRIVAL;
	}
	req.msg.nchunks = 2;
	req.msg.size = strlen(TQ_HEAD) + strlen(TQ_BODY);
	ck_assert_int_eq(queue_body_put(t, id, 1, TQ_BODY, strlen(TQ_BODY)), 0);
	buf_init(&req.body);
	buf_init(&req.head);
	buf_append_str(&req.head, TQ_HEAD);
	req.notes = xstrdup("dmarc=fail; header_from=quarantine.org");
	if (rule != NULL) {
		req.quarantine_rule = rule;
		req.quarantine_reason = xstrdup("DMARC policy of quarantine.org says quarantine");
	}
	rc = queue_receive_apply(t, &req, &res);
	queue_receive_result_free(&res);
	queue_receive_clear(&req);
	if (rc == 0)
		ck_assert_int_eq(queue_txn_commit(t), 0);
	else
		queue_txn_abort(t);
	return rc;
}

/* The event names of the audit chain, "received,quarantined,". */
static int tq_events_cb(void *arg, const struct queue_audit_rec *rec)
{
	buf_printf(arg, "%s,", rec->event);
	return 0;
}

/* Every audit line, one per line. */
static int tq_lines_cb(void *arg, const struct queue_audit_rec *rec)
{
	buf_printf(arg, "%s\n", rec->line);
	return 0;
}

static int tq_last_cb(void *arg, const struct queue_audit_rec *rec)
{
	buf_reset(arg);
	buf_append_str(arg, rec->line);
	return 0;
}

static size_t tq_scheduled(struct tq_env *e, int64_t now)
{
	struct queue_txn *t = tq_begin(e, false);
	uint64_t ids[8];
	size_t n;
	int64_t next;

	ck_assert_int_eq(queue_schedule_due(t, now, ids, 8, &n, &next), 0);
	queue_txn_abort(t);
	return n;
}

static int tq_count_cb(void *arg, const struct queue_msg *m)
{
	(void)m;
	(*(size_t *)arg)++;
	return 0;
}

static size_t tq_queued(struct tq_env *e)
{
	struct queue_txn *t = tq_begin(e, false);
	size_t n = 0;

	ck_assert_int_eq(queue_msg_walk(t, tq_count_cb, &n), 0);
	queue_txn_abort(t);
	return n;
}

/* -------------------------------------------------------------- tests */

START_TEST(test_receive_into_quarantine)
{
	struct tq_env e;
	struct queue_quarantine *q;
	struct queue_msg *m;
	struct queue_txn *t;
	struct buf b;

	tq_setup(&e);
	buf_init(&b);
	ck_assert_int_eq(tq_receive(&e, 0x100, "team@ward.test", "mayor@city.test", "dmarc"), 0);
	/* Out of the delivery queue: no record, no schedule entry, whatever the time. */
	ck_assert_uint_eq(tq_queued(&e), 0);
	ck_assert_uint_eq(tq_scheduled(&e, INT64_MAX - 1), 0);
	t = tq_begin(&e, false);
	ck_assert_int_eq(queue_msg_get(t, 0x100, &m), -ENOENT);
	ck_assert_int_eq(queue_quarantine_get(t, 0x100, &q), 0);
	ck_assert_uint_eq(q->id, 0x100);
	ck_assert_int_eq(q->time, TQ_ARRIVAL);
	ck_assert_str_eq(q->rule, "dmarc");
	ck_assert_str_eq(q->reason, "DMARC policy of quarantine.org says quarantine");
	ck_assert_str_eq(q->notes, "dmarc=fail; header_from=quarantine.org");
	ck_assert_str_eq(q->tenants, "ward,city");
	/* The envelope as it would have been queued: the alias expanded. */
	ck_assert_str_eq(q->msg->sender, "x@quarantine.org");
	ck_assert_uint_eq(q->msg->nrcpts, 3);
	ck_assert_str_eq(q->msg->rcpts[0].addr, "a@ward.test");
	ck_assert_str_eq(q->msg->rcpts[1].addr, "b@ward.test");
	ck_assert_str_eq(q->msg->rcpts[2].addr, "mayor@city.test");
	ck_assert_uint_eq(q->msg->nchunks, 2);
	/* Whole: the head and the body chunks are there. */
	ck_assert_int_eq(queue_body_get(t, 0x100, 0, &b), 0);
	ck_assert_int_eq(queue_body_get(t, 0x100, 1, &b), 0);
	ck_assert_str_eq(buf_cstr(&b), TQ_HEAD TQ_BODY);
	queue_quarantine_free(q);
	buf_reset(&b);
	ck_assert_int_eq(queue_audit_walk(t, tq_events_cb, &b), 0);
	ck_assert_str_eq(buf_cstr(&b), "received,quarantined,");
	ck_assert_int_eq(queue_audit_walk(t, tq_last_cb, &b), 0);
	ck_assert_msg(strstr(buf_cstr(&b), " qid=0000000000000100 event=quarantined rule=dmarc "
	    "reason=DMARC\\x20policy\\x20of\\x20quarantine.org\\x20says\\x20quarantine "
	    "from=x@quarantine.org tenant=ward,city nrcpt=3 to=a@ward.test to=b@ward.test "
	    "to=mayor@city.test") != NULL, "%s", buf_cstr(&b));
	queue_txn_abort(t);
	/* The same id twice: refused, the first record kept. */
	t = tq_begin(&e, true);
	ck_assert_int_eq(queue_quarantine_get(t, 0x100, &q), 0);
	ck_assert_int_eq(queue_quarantine_put(t, q), -EEXIST);
	q->id = 0x101;
	ck_assert_int_eq(queue_quarantine_put(t, q), -EINVAL); /* envelope id differs */
	queue_quarantine_free(q);
	queue_txn_abort(t);
	/* Without a verdict the same path queues for delivery. */
	ck_assert_int_eq(tq_receive(&e, 0x200, "a@ward.test", NULL, NULL), 0);
	ck_assert_uint_eq(tq_queued(&e), 1);
	ck_assert_uint_eq(tq_scheduled(&e, TQ_ARRIVAL), 1);
	buf_free(&b);
	tq_teardown(&e);
}
END_TEST

static int tq_walk_cb(void *arg, const struct queue_quarantine *q)
{
	char id[QUEUE_ID_TEXT_LEN + 1];

	queue_id_format(q->id, id);
	buf_printf(arg, "%s:%s:%s;", id + 13, q->rule, q->msg->rcpts[0].addr);
	return 0;
}

START_TEST(test_list_walk)
{
	struct tq_env e;
	struct queue_txn *t;
	struct buf b;

	tq_setup(&e);
	buf_init(&b);
	ck_assert_int_eq(tq_receive(&e, 0x300, "a@ward.test", NULL, "content"), 0);
	ck_assert_int_eq(tq_receive(&e, 0x100, "mayor@city.test", NULL, "dmarc"), 0);
	ck_assert_int_eq(tq_receive(&e, 0x200, "b@ward.test", NULL, NULL), 0);
	t = tq_begin(&e, false);
	ck_assert_int_eq(queue_quarantine_walk(t, 0, tq_walk_cb, &b), 0);
	ck_assert_str_eq(buf_cstr(&b), "100:dmarc:mayor@city.test;300:content:a@ward.test;");
	buf_reset(&b);
	ck_assert_int_eq(queue_quarantine_walk(t, 0x101, tq_walk_cb, &b), 0);
	ck_assert_str_eq(buf_cstr(&b), "300:content:a@ward.test;");
	queue_txn_abort(t);
	buf_free(&b);
	tq_teardown(&e);
}
END_TEST

START_TEST(test_release_makes_deliverable)
{
	const int64_t now = TQ_ARRIVAL + 86400000LL * 6; /* past a 5-day lifetime */
	struct tq_env e;
	struct queue_quarantine *q;
	struct queue_msg *m;
	struct queue_txn *t;
	struct buf b;

	tq_setup(&e);
	buf_init(&b);
	ck_assert_int_eq(tq_receive(&e, 0x100, "team@ward.test", NULL, "dmarc"), 0);
	t = tq_begin(&e, true);
	ck_assert_int_eq(queue_quarantine_release(t, 0x100, now, &q), 0);
	ck_assert_str_eq(q->rule, "dmarc");
	queue_quarantine_free(q);
	ck_assert_int_eq(queue_txn_commit(t), 0);
	/* Queued, every recipient pending and due now, the lifetime from now. */
	ck_assert_uint_eq(tq_queued(&e), 1);
	ck_assert_uint_eq(tq_scheduled(&e, now - 1), 0);
	ck_assert_uint_eq(tq_scheduled(&e, now), 1);
	t = tq_begin(&e, false);
	ck_assert_int_eq(queue_msg_get(t, 0x100, &m), 0);
	ck_assert(!m->held);
	ck_assert_ptr_null(m->hold_reason);
	ck_assert_int_eq(m->arrival, now);
	ck_assert_uint_eq(m->nrcpts, 2);
	for (size_t i = 0; i < m->nrcpts; i++) {
		ck_assert_int_eq(m->rcpts[i].state, QUEUE_RCPT_PENDING);
		ck_assert_int_eq(m->rcpts[i].next_attempt, now);
	}
	queue_msg_free(m);
	ck_assert_int_eq(queue_quarantine_get(t, 0x100, &q), -ENOENT);
	/* The body went along: still the message's chunks. */
	ck_assert_int_eq(queue_body_get(t, 0x100, 1, &b), 0);
	ck_assert_str_eq(buf_cstr(&b), TQ_BODY);
	queue_txn_abort(t);
	/* Released twice, or never quarantined: nothing to release. */
	t = tq_begin(&e, true);
	ck_assert_int_eq(queue_quarantine_release(t, 0x100, now, NULL), -ENOENT);
	ck_assert_int_eq(queue_quarantine_release(t, 0x999, now, NULL), -ENOENT);
	queue_txn_abort(t);
	/* A read transaction cannot release. */
	ck_assert_int_eq(tq_receive(&e, 0x400, "a@ward.test", NULL, "dmarc"), 0);
	t = tq_begin(&e, false);
	ck_assert_int_eq(queue_quarantine_release(t, 0x400, now, NULL), -EINVAL);
	queue_txn_abort(t);
	buf_free(&b);
	tq_teardown(&e);
}
END_TEST

START_TEST(test_delete_frees_chunks)
{
	struct tq_env e;
	struct queue_quarantine *q;
	struct queue_txn *t;
	struct buf b;
	size_t orphans;

	tq_setup(&e);
	buf_init(&b);
	ck_assert_int_eq(tq_receive(&e, 0x100, "a@ward.test", NULL, "content"), 0);
	ck_assert_int_eq(tq_receive(&e, 0x200, "b@ward.test", NULL, "content"), 0);
	/* An orphan (a body that never committed) next to them. */
	t = tq_begin(&e, true);
	ck_assert_int_eq(queue_body_put(t, 0x300, 1, "x", 1), 0);
	/* Orphan collection leaves quarantined messages' chunks alone. */
	ck_assert_int_eq(queue_body_collect_orphans(t, &orphans), 0);
	ck_assert_uint_eq(orphans, 1);
	ck_assert_int_eq(queue_body_get(t, 0x100, 1, &b), 0);
	ck_assert_int_eq(queue_quarantine_delete(t, 0x100), 0);
	ck_assert_int_eq(queue_txn_commit(t), 0);
	t = tq_begin(&e, false);
	ck_assert_int_eq(queue_quarantine_get(t, 0x100, &q), -ENOENT);
	ck_assert_int_eq(queue_body_get(t, 0x100, 0, &b), -ENOENT);
	ck_assert_int_eq(queue_body_get(t, 0x100, 1, &b), -ENOENT);
	ck_assert_int_eq(queue_body_get(t, 0x300, 1, &b), -ENOENT);
	/* The other one is untouched. */
	ck_assert_int_eq(queue_quarantine_get(t, 0x200, &q), 0);
	queue_quarantine_free(q);
	ck_assert_int_eq(queue_body_get(t, 0x200, 1, &b), 0);
	queue_txn_abort(t);
	t = tq_begin(&e, true);
	ck_assert_int_eq(queue_quarantine_delete(t, 0x100), -ENOENT);
	queue_txn_abort(t);
	ck_assert_uint_eq(tq_queued(&e), 0);
	buf_free(&b);
	tq_teardown(&e);
}
END_TEST

/* quarantine_lifetime: what has been kept that long goes, in batches, audited. */
START_TEST(test_expire)
{
	const uint64_t lifetime = 2000;
	struct tq_env e;
	struct queue_quarantine *q;
	struct queue_txn *t;
	struct buf b;
	size_t n;
	bool more;
	const char *p;
	int records = 0;

	tq_setup(&e);
	buf_init(&b);
	ck_assert_int_eq(tq_receive(&e, 0x100, "a@ward.test", NULL, "content"), 0);
	ck_assert_int_eq(tq_receive(&e, 0x200, "b@ward.test", NULL, "dmarc"), 0);
	ck_assert_int_eq(tq_receive(&e, 0x300, "c@ward.test", NULL, "content"), 0);
	t = tq_begin(&e, true);
	/* Not kept long enough yet; a lifetime of 0 keeps everything. */
	ck_assert_int_eq(queue_quarantine_expire(t, TQ_ARRIVAL + 1999, lifetime, 8, &n, &more), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert(!more);
	ck_assert_int_eq(queue_quarantine_expire(t, TQ_ARRIVAL + 86400000, 0, 8, &n, &more), 0);
	ck_assert_uint_eq(n, 0);
	/* Due: two per call, then the last one. */
	ck_assert_int_eq(queue_quarantine_expire(t, TQ_ARRIVAL + 2000, lifetime, 2, &n, &more), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert(more);
	ck_assert_int_eq(queue_quarantine_expire(t, TQ_ARRIVAL + 2000, lifetime, 2, &n, &more), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert(!more);
	ck_assert_int_eq(queue_txn_commit(t), 0);
	t = tq_begin(&e, false);
	ck_assert_int_eq(queue_quarantine_get(t, 0x100, &q), -ENOENT);
	ck_assert_int_eq(queue_quarantine_get(t, 0x300, &q), -ENOENT);
	ck_assert_int_eq(queue_body_get(t, 0x200, 1, &b), -ENOENT);
	ck_assert_int_eq(queue_audit_walk(t, tq_lines_cb, &b), 0);
	queue_txn_abort(t);
	for (p = buf_cstr(&b); (p = strstr(p, " event=admin action=quarantine.expire by=govrelayd "
	    "via=retention tenant=ward")) != NULL; p++)
		records++;
	ck_assert_int_eq(records, 3);
	ck_assert_ptr_nonnull(strstr(buf_cstr(&b), "qid=0000000000000200 event=admin "
	    "action=quarantine.expire by=govrelayd via=retention tenant=ward object=0000000000000200 "
	    "rule=dmarc reason="));
	/* A read transaction cannot expire anything. */
	t = tq_begin(&e, false);
	ck_assert_int_lt(queue_quarantine_expire(t, TQ_ARRIVAL + 9000, lifetime, 2, &n, &more), 0);
	queue_txn_abort(t);
	ck_assert_uint_eq(tq_queued(&e), 0);
	buf_free(&b);
	tq_teardown(&e);
}
END_TEST

/* One valid record's encoding, then damaged case by case. */
START_TEST(test_decode_refuses_damage)
{
	struct queue_rcpt r = { .addr = "a@ward.test" };
	struct queue_msg m = { .id = 7, .arrival = 1, .sender = "s@x.test", .nrcpts = 1,
		.rcpts = &r, .client_addr = "192.0.2.1", .listener = "mx" };
	struct queue_quarantine q = { .id = 7, .time = 2, .rule = "dmarc", .reason = "why",
		.msg = &m };
	struct queue_quarantine *out;
	struct buf good, bad;
	static const struct {
		const char *label;
		size_t cut;        /* bytes cut from the end (0: none) */
		size_t flip_at;    /* byte to change, or SIZE_MAX */
		uint8_t flip_to;
		bool extra;        /* a trailing byte added */
	} cases[] = {
		{ "intact", 0, SIZE_MAX, 0, false },
		{ "truncated envelope", 5, SIZE_MAX, 0, false },
		{ "truncated to the version", 0, 1, 0, false },
		{ "unknown version", 0, 0, 9, false },
		{ "trailing byte", 0, SIZE_MAX, 0, true },
		{ "id differs from the envelope's", 0, 8, 8, false },
	};

	buf_init(&good);
	queue_quarantine_encode(&q, &good);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc;

		buf_init(&bad);
		buf_append(&bad, good.data, good.len - cases[i].cut);
		if (cases[i].flip_at != SIZE_MAX && cases[i].flip_at == 1)
			bad.len = 1;
		else if (cases[i].flip_at != SIZE_MAX)
			((uint8_t *)bad.data)[cases[i].flip_at] = cases[i].flip_to;
		if (cases[i].extra)
			buf_append(&bad, "", 1);
		rc = queue_quarantine_decode(bad.data, bad.len, &out);
		if (i == 0) {
			ck_assert_msg(rc == 0, "%s: %d", cases[i].label, rc);
			ck_assert_str_eq(out->rule, "dmarc");
			ck_assert_ptr_null(out->notes);
			ck_assert_str_eq(out->msg->rcpts[0].addr, "a@ward.test");
			queue_quarantine_free(out);
		} else {
			ck_assert_msg(rc == -EBADMSG, "%s: %d", cases[i].label, rc);
			ck_assert_ptr_null(out);
		}
		buf_free(&bad);
	}
	buf_free(&good);
}
END_TEST

START_TEST(test_roles)
{
	static const struct {
		const char *label;
		const char *text;
		int rc;
		enum queue_operator_role role;
	} cases[] = {
		{ "postmaster", "postmaster", 0, QUEUE_ROLE_POSTMASTER },
		{ "auditor", "auditor", 0, QUEUE_ROLE_AUDITOR },
		{ "security", "security", 0, QUEUE_ROLE_SECURITY },
		{ "case matters", "Security", -EINVAL, 0 },
		{ "no such role", "root", -EINVAL, 0 },
		{ "empty", "", -EINVAL, 0 },
	};
	struct tq_env e;
	struct queue_operator op = { "nobody", "ward", QUEUE_ROLE_SECURITY, 5 };
	struct queue_operator *got;
	struct queue_txn *t;
	char why[256];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		enum queue_operator_role r = QUEUE_ROLE_POSTMASTER;

		ck_assert_msg(queue_role_parse(cases[i].text, &r) == cases[i].rc, "%s",
		    cases[i].label);
		if (cases[i].rc == 0) {
			ck_assert_msg(r == cases[i].role, "%s", cases[i].label);
			ck_assert_str_eq(queue_role_name(r), cases[i].text);
		}
	}
	/* A security operator is stored and read back as such. */
	tq_setup(&e);
	t = tq_begin(&e, true);
	ck_assert_int_eq(queue_operator_put(t, &op, why, sizeof why), 0);
	ck_assert_int_eq(queue_operator_get(t, "nobody", &got), 0);
	ck_assert_int_eq(got->role, QUEUE_ROLE_SECURITY);
	ck_assert_str_eq(got->tenant, "ward");
	queue_operator_free(got);
	queue_txn_abort(t);
	tq_teardown(&e);
}
END_TEST

/* Drops the `quarantine` database, as a store written before it existed. */
static void tq_drop_db(const char *dir)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;

	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 32), 0);
	ck_assert_int_eq(mdb_env_set_mapsize(env, 256u << 20), 0);
	ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "quarantine", 0, &dbi), 0);
	ck_assert_int_eq(mdb_drop(txn, dbi, 1), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

START_TEST(test_store_before_quarantine)
{
	struct tq_env e;
	struct queue_quarantine *q;
	struct queue_txn *t;
	struct buf b;

	tq_setup(&e);
	buf_init(&b);
	ck_assert_int_eq(tq_receive(&e, 0x200, "a@ward.test", NULL, NULL), 0);
	queue_store_close(e.store);
	tq_drop_db(e.dir);
	/* Read-only: an empty quarantine, the rest of the store as it was. */
	ck_assert_int_eq(queue_store_open(e.dir, 0, true, &e.store), 0);
	t = tq_begin(&e, false);
	ck_assert_int_eq(queue_quarantine_walk(t, 0, tq_walk_cb, &b), 0);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(queue_quarantine_get(t, 0x200, &q), -ENOENT);
	queue_txn_abort(t);
	ck_assert_uint_eq(tq_queued(&e), 1);
	queue_store_close(e.store);
	/* Read-write: the database is made, and used. */
	ck_assert_int_eq(queue_store_open(e.dir, 0, false, &e.store), 0);
	ck_assert_int_eq(tq_receive(&e, 0x300, "a@ward.test", NULL, "dmarc"), 0);
	t = tq_begin(&e, false);
	ck_assert_int_eq(queue_quarantine_walk(t, 0, tq_walk_cb, &b), 0);
	ck_assert_str_eq(buf_cstr(&b), "300:dmarc:a@ward.test;");
	queue_txn_abort(t);
	buf_free(&b);
	tq_teardown(&e);
}
END_TEST

/* ------------------------------------------------ the admin engine */

static int tq_kicks;

static void tq_kicked(void *arg)
{
	(void)arg;
	tq_kicks++;
}

/* Adds the operator user of tenant with role. */
static void tq_operator(struct tq_env *e, const char *user, const char *tenant,
    enum queue_operator_role role)
{
	struct queue_operator op = { (char *)user, (char *)tenant, role, 5 };
	struct queue_txn *t = tq_begin(e, true);
	char why[256];

	ck_assert_msg(queue_operator_put(t, &op, why, sizeof why) == 0, "%s", why);
	ck_assert_int_eq(queue_txn_commit(t), 0);
}

/*
 * Runs "quarantine VERB [ID]" as user (NULL: super) the way the daemon
 * runs an operator's command (remote, scoped); the exit status, with
 * stdout and stderr in out and err.
 */
static int tq_admin(struct tq_env *e, const char *user, const char *verb, const char *id,
    struct buf *out, struct buf *err)
{
	struct config cfg;
	struct admin_io io;
	char *ob = NULL, *eb = NULL;
	size_t ol = 0, el = 0;
	char *argv[4] = { "quarantine", (char *)verb, (char *)id, NULL };
	int rc;

	memset(&cfg, 0, sizeof cfg);
	memset(&io, 0, sizeof io);
	io.out = open_memstream(&ob, &ol);
	io.err = open_memstream(&eb, &el);
	ck_assert_ptr_nonnull(io.out);
	ck_assert_ptr_nonnull(io.err);
	io.cfg = &cfg;
	io.config_file = "test.conf";
	io.store = e->store;
	io.uid = 4242;
	io.user = user != NULL ? user : "root";
	io.super = user == NULL;
	io.remote = true;
	io.queue_changed = tq_kicked;
	rc = admin_run(&io, id != NULL ? 3 : 2, argv);
	fclose(io.out);
	fclose(io.err);
	buf_reset(out);
	buf_reset(err);
	buf_append(out, ob, ol);
	buf_append(err, eb, el);
	free(ob);
	free(eb);
	return rc;
}

#define TQ_WARD "0000000000000100"
#define TQ_CITY "0000000000000200"
#define TQ_MIXED "0000000000000300"
#define TQ_WARD2 "0000000000000400"

START_TEST(test_admin_roles)
{
	static const struct {
		const char *label;
		const char *user;    /* NULL: root */
		const char *verb, *id;
		int rc;
		const char *shows;   /* in stdout (rc 0) or stderr; NULL: nothing asked */
		const char *hides;   /* not in stdout; NULL */
		int kicks;           /* scheduler kicks expected by now */
	} cases[] = {
		{ "security lists its subtree only", "sec", "list", NULL, 0, TQ_WARD, TQ_CITY, 0 },
		{ "security sees its recipients only", "sec", "list", NULL, 0, "w3@ward.test",
		  "deputy@city.test", 0 },
		{ "security shows its own", "sec", "show", TQ_WARD, 0, "rule: dmarc", NULL, 0 },
		{ "security may not show the city's", "sec", "show", TQ_CITY, 77,
		  "permission denied: sec", NULL, 0 },
		{ "security may not release the city's", "sec", "release", TQ_CITY, 77,
		  "permission denied", NULL, 0 },
		{ "security may not delete a mixed one", "sec", "delete", TQ_MIXED, 77,
		  "outside tenant ward", NULL, 0 },
		{ "auditor lists", "aud", "list", NULL, 0, TQ_WARD, TQ_CITY, 0 },
		{ "auditor shows", "aud", "show", TQ_WARD, 0, "Subject: hi", NULL, 0 },
		{ "auditor may not release", "aud", "release", TQ_WARD, 77,
		  "only security operators", NULL, 0 },
		{ "auditor may not delete", "aud", "delete", TQ_WARD, 77,
		  "only security operators", NULL, 0 },
		{ "postmaster may not list", "pm", "list", NULL, 77,
		  "for security operators and auditors", NULL, 0 },
		{ "postmaster may not release", "pm", "release", TQ_WARD, 77,
		  "only security operators", NULL, 0 },
		{ "a stranger may not list", "nobody", "list", NULL, 77, "permission denied",
		  NULL, 0 },
		{ "security releases its own", "sec", "release", TQ_WARD, 0, "released", NULL, 1 },
		{ "released is gone", "sec", "show", TQ_WARD, 66, "no such quarantined", NULL, 1 },
		{ "security deletes its own", "sec", "delete", TQ_WARD2, 0, "deleted", NULL, 1 },
		{ "the city's security takes a mixed one", "citysec", "release", TQ_MIXED, 0,
		  "released", NULL, 2 },
		{ "root lists everything", NULL, "list", NULL, 0, TQ_CITY, TQ_MIXED, 2 },
		{ "root deletes the city's", NULL, "delete", TQ_CITY, 0, "deleted", NULL, 2 },
		{ "a bad id", NULL, "delete", "xyz", 65, "bad queue id", NULL, 2 },
	};
	struct tq_env e;
	struct buf out, err;

	tq_setup(&e);
	buf_init(&out);
	buf_init(&err);
	tq_kicks = 0;
	ck_assert_int_eq(tq_receive(&e, 0x100, "w1@ward.test", NULL, "dmarc"), 0);
	ck_assert_int_eq(tq_receive(&e, 0x200, "mayor@city.test", NULL, "dmarc"), 0);
	ck_assert_int_eq(tq_receive(&e, 0x300, "w3@ward.test", "deputy@city.test", "dmarc"), 0);
	ck_assert_int_eq(tq_receive(&e, 0x400, "w4@ward.test", NULL, "dmarc"), 0);
	tq_operator(&e, "sec", "ward", QUEUE_ROLE_SECURITY);
	tq_operator(&e, "aud", "ward", QUEUE_ROLE_AUDITOR);
	tq_operator(&e, "pm", "ward", QUEUE_ROLE_POSTMASTER);
	tq_operator(&e, "citysec", "city", QUEUE_ROLE_SECURITY);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = tq_admin(&e, cases[i].user, cases[i].verb, cases[i].id, &out, &err);
		const char *where = rc == 0 ? buf_cstr(&out) : buf_cstr(&err);

		ck_assert_msg(rc == cases[i].rc, "%s: exit %d, expected %d\n%s%s", cases[i].label,
		    rc, cases[i].rc, buf_cstr(&out), buf_cstr(&err));
		ck_assert_msg(cases[i].shows == NULL || strstr(where, cases[i].shows) != NULL,
		    "%s: no \"%s\" in\n%s", cases[i].label, cases[i].shows, where);
		ck_assert_msg(cases[i].hides == NULL || strstr(buf_cstr(&out), cases[i].hides) == NULL,
		    "%s: \"%s\" shown\n%s", cases[i].label, cases[i].hides, buf_cstr(&out));
		ck_assert_msg(tq_kicks == cases[i].kicks, "%s: %d kicks", cases[i].label, tq_kicks);
	}
	/* What was released is queued, what was deleted is gone. */
	ck_assert_uint_eq(tq_queued(&e), 2);
	/* Every action is a record naming who: shows too; refusals as denied. */
	{
		struct queue_txn *t = tq_begin(&e, false);

		buf_reset(&out);
		ck_assert_int_eq(queue_audit_walk(t, tq_lines_cb, &out), 0);
		queue_txn_abort(t);
		ck_assert_ptr_nonnull(strstr(buf_cstr(&out), "qid=" TQ_WARD
		    " event=admin action=quarantine.show by=sec via=daemon"));
		ck_assert_ptr_nonnull(strstr(buf_cstr(&out), "qid=" TQ_WARD
		    " event=admin action=quarantine.show by=aud via=daemon"));
		ck_assert_ptr_nonnull(strstr(buf_cstr(&out), "qid=" TQ_WARD
		    " event=admin action=quarantine.release by=sec via=daemon tenant=ward object="
		    TQ_WARD " rule=dmarc reason="));
		ck_assert_ptr_nonnull(strstr(buf_cstr(&out), "qid=" TQ_MIXED
		    " event=admin action=quarantine.release by=citysec"));
		ck_assert_ptr_nonnull(strstr(buf_cstr(&out), "qid=" TQ_CITY
		    " event=admin action=quarantine.delete by=root"));
		ck_assert_ptr_nonnull(strstr(buf_cstr(&out), "action=denied by=aud"));
	}
	buf_free(&out);
	buf_free(&err);
	tq_teardown(&e);
}
END_TEST

static Suite *quarantine_suite(void)
{
	Suite *s = suite_create("quarantine");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_receive_into_quarantine);
	tcase_add_test(tc, test_list_walk);
	tcase_add_test(tc, test_release_makes_deliverable);
	tcase_add_test(tc, test_delete_frees_chunks);
	tcase_add_test(tc, test_expire);
	tcase_add_test(tc, test_decode_refuses_damage);
	tcase_add_test(tc, test_roles);
	tcase_add_test(tc, test_store_before_quarantine);
	tcase_add_test(tc, test_admin_roles);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(quarantine_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
