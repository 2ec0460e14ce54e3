/*
 * test_tenancy: unit tests of the tenancy tables (queue/tenancy*.c): id,
 * name and unix user syntax, policy normalization, a three-level tenant
 * tree with inherited policy, refused deletes and cycles, mailbox ranges
 * that must not leak into a neighbouring domain ("a.b" and "a.bc"), alias
 * expansion, send-as rights, users and operators, version-1 domain
 * records built by hand, a store written before the tenancy databases
 * existed, reopening, and 100,000 mailboxes in one transaction.
 *
 * Every test works in its own fresh mkdtemp directory, removed at the
 * end.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <lmdb.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/schema.h"
#include "queue/tenancy.h"

/* ------------------------------------------------------------ helpers */

static int tt_rm_entry(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

struct tt_env {
	char dir[64];
	struct queue_store *store;
};

static void tt_mkdir(struct tt_env *e)
{
	snprintf(e->dir, sizeof e->dir, "/tmp/test-tenancy-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(e->dir));
	e->store = NULL;
}

static void tt_setup_size(struct tt_env *e, uint64_t map_size)
{
	tt_mkdir(e);
	ck_assert_int_eq(queue_store_open(e->dir, map_size, false, &e->store), 0);
}

static void tt_setup(struct tt_env *e)
{
	tt_setup_size(e, 0);
}

static void tt_reopen(struct tt_env *e, bool readonly)
{
	queue_store_close(e->store);
	e->store = NULL;
	ck_assert_int_eq(queue_store_open(e->dir, 0, readonly, &e->store), 0);
}

static void tt_teardown(struct tt_env *e)
{
	queue_store_close(e->store);
	e->store = NULL;
	nftw(e->dir, tt_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static struct queue_txn *tt_begin(struct tt_env *e, bool write)
{
	struct queue_txn *t;

	ck_assert_int_eq(queue_txn_begin(e->store, write, &t), 0);
	return t;
}

static void tt_tenant(struct queue_txn *t, const char *id, const char *name,
    const char *parent)
{
	struct queue_tenant rec = { (char *)id, (char *)name, (char *)parent, 1000 };
	char why[256];
	int rc = queue_tenant_put(t, &rec, why, sizeof why);

	ck_assert_msg(rc == 0, "tenant %s: %d %s", id, rc, why);
}

static void tt_domain(struct queue_txn *t, const char *name, const char *tenant)
{
	struct queue_domain d = { .name = (char *)name, .tenant = (char *)tenant,
		.route = "mx", .created = 5 };

	ck_assert_int_eq(queue_domain_put(t, &d), 0);
}

/* A mailbox, or an alias of the NULL-terminated targets. */
static int tt_mailbox(struct queue_txn *t, const char *addr, const char *const *targets,
    char *why, size_t whylen)
{
	struct queue_mailbox m = { (char *)addr, NULL, 0, 7 };
	char buf[256];

	while (targets != NULL && targets[m.nalias_of] != NULL)
		m.nalias_of++;
	m.alias_of = (char **)targets;
	if (why == NULL) {
		why = buf;
		whylen = sizeof buf;
	}
	return queue_mailbox_put(t, &m, why, whylen);
}

static void tt_operator(struct queue_txn *t, const char *user, const char *tenant,
    enum queue_operator_role role)
{
	struct queue_operator o = { (char *)user, (char *)tenant, role, 9 };
	char why[256];
	int rc = queue_operator_put(t, &o, why, sizeof why);

	ck_assert_msg(rc == 0, "operator %s: %d %s", user, rc, why);
}

/* Collects addresses of a walk as "a;b;c;". */
static int tt_mailbox_cb(void *arg, const struct queue_mailbox *m)
{
	struct buf *b = arg;

	buf_append_str(b, m->address);
	buf_append_char(b, ';');
	return 0;
}

static int tt_tenant_cb(void *arg, const struct queue_tenant *t)
{
	struct buf *b = arg;

	buf_printf(b, "%s<%s;", t->id, t->parent ? t->parent : "-");
	return 0;
}

static int tt_operator_cb(void *arg, const struct queue_operator *o)
{
	struct buf *b = arg;

	buf_printf(b, "%s=%s/%s;", o->unix_user, o->tenant, queue_role_name(o->role));
	return 0;
}

static int tt_user_cb(void *arg, const struct queue_user *u)
{
	struct buf *b = arg;

	buf_printf(b, "%s;", u->address);
	return 0;
}

/* ------------------------------------------------------------- syntax */

static const struct {
	const char *label;
	const char *id;
	bool ok;
} tt_id_cases[] = {
	{ "simple", "so-noi-vu", true },
	{ "digits", "0123", true },
	{ "dots and underscores", "hn.ba_dinh-01", true },
	{ "one char", "a", true },
	{ "64 chars", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true },
	{ "65 chars", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false },
	{ "empty", "", false },
	{ "NULL", NULL, false },
	{ "uppercase", "Hanoi", false },
	{ "leading dash", "-x", false },
	{ "leading dot", ".x", false },
	{ "space", "a b", false },
	{ "slash", "a/b", false },
	{ "utf-8", "s\xe1\xbb\x9f", false },
	{ "control", "a\tb", false },
};

static const struct {
	const char *label;
	const char *name;
	bool ok;
} tt_name_cases[] = {
	{ "ascii", "Department of Home Affairs", true },
	{ "vietnamese", "S\xe1\xbb\x9f N\xe1\xbb\x99i v\xe1\xbb\xa5 H\xc3\xa0 N\xe1\xbb\x99i", true },
	{ "empty", "", false },
	{ "NULL", NULL, false },
	{ "tab", "a\tb", false },
	{ "newline", "a\nb", false },
	{ "DEL", "a\x7f", false },
	{ "C1 control", "a\xc2\x85z", false },
	{ "bad utf-8", "a\xc3", false },
	{ "overlong", "\xc0\xaf", false },
	{ "surrogate", "\xed\xa0\x80", false },
};

static const struct {
	const char *label;
	const char *user;
	bool ok;
} tt_unix_cases[] = {
	{ "plain", "lan", true },
	{ "underscore first", "_svc", true },
	{ "digits and dot", "nguyen.van-a2", true },
	{ "32 chars", "abcdefghijabcdefghijabcdefghijab", true },
	{ "33 chars", "abcdefghijabcdefghijabcdefghijabc", false },
	{ "digit first", "1lan", false },
	{ "uppercase", "Lan", false },
	{ "machine account", "host$", false },
	{ "empty", "", false },
	{ "colon", "a:b", false },
};

START_TEST(test_syntax)
{
	enum queue_operator_role r;
	char why[256];

	for (size_t i = 0; i < sizeof tt_id_cases / sizeof tt_id_cases[0]; i++) {
		int rc = tenancy_id_check(tt_id_cases[i].id, why, sizeof why);

		ck_assert_msg((rc == 0) == tt_id_cases[i].ok, "id case %s: %d %s",
		    tt_id_cases[i].label, rc, why);
		if (rc != 0) {
			ck_assert_int_eq(rc, -EINVAL);
			ck_assert_msg(why[0] != '\0', "id case %s: no reason", tt_id_cases[i].label);
		}
	}
	for (size_t i = 0; i < sizeof tt_name_cases / sizeof tt_name_cases[0]; i++) {
		int rc = tenancy_name_check(tt_name_cases[i].name, why, sizeof why);

		ck_assert_msg((rc == 0) == tt_name_cases[i].ok, "name case %s: %d %s",
		    tt_name_cases[i].label, rc, why);
		if (rc != 0)
			ck_assert_msg(why[0] != '\0', "name case %s: no reason",
			    tt_name_cases[i].label);
	}
	{
		char big[TENANCY_NAME_MAX + 2];

		memset(big, 'x', sizeof big);
		big[TENANCY_NAME_MAX] = '\0';
		ck_assert_int_eq(tenancy_name_check(big, why, sizeof why), 0);
		big[TENANCY_NAME_MAX] = 'x';
		big[TENANCY_NAME_MAX + 1] = '\0';
		ck_assert_int_eq(tenancy_name_check(big, why, sizeof why), -EINVAL);
	}
	for (size_t i = 0; i < sizeof tt_unix_cases / sizeof tt_unix_cases[0]; i++) {
		int rc = tenancy_unix_user_check(tt_unix_cases[i].user, why, sizeof why);

		ck_assert_msg((rc == 0) == tt_unix_cases[i].ok, "unix user case %s: %d %s",
		    tt_unix_cases[i].label, rc, why);
	}
	/* A reason never carries a control byte of the refused value. */
	ck_assert_int_eq(tenancy_id_check("a\x1b[2Jb", why, sizeof why), -EINVAL);
	ck_assert_ptr_null(strchr(why, '\x1b'));

	ck_assert_int_eq(queue_role_parse("postmaster", &r), 0);
	ck_assert_int_eq(r, QUEUE_ROLE_POSTMASTER);
	ck_assert_int_eq(queue_role_parse("auditor", &r), 0);
	ck_assert_int_eq(r, QUEUE_ROLE_AUDITOR);
	ck_assert_int_eq(queue_role_parse("root", &r), -EINVAL);
	ck_assert_int_eq(queue_role_parse(NULL, &r), -EINVAL);
	ck_assert_str_eq(queue_role_name(QUEUE_ROLE_POSTMASTER), "postmaster");
	ck_assert_str_eq(queue_role_name(QUEUE_ROLE_AUDITOR), "auditor");
}
END_TEST

/* ------------------------------------------------------------- policy */

static const struct {
	const char *label;
	const char *key;
	const char *value;
	const char *want;     /* NULL: refused */
} tt_norm_cases[] = {
	{ "size bytes", "max_message_size", "1048576", "1048576" },
	{ "size K", "max_message_size", "512K", "524288" },
	{ "size k", "max_message_size", "512k", "524288" },
	{ "size M", "max_message_size", "10M", "10485760" },
	{ "size G", "max_message_size", "2G", "2147483648" },
	{ "size 1 byte", "max_message_size", "1", "1" },
	{ "size 2^40", "max_message_size", "1099511627776", "1099511627776" },
	{ "size 1024G", "max_message_size", "1024G", "1099511627776" },
	{ "size leading zeros", "max_message_size", "007", "7" },
	{ "size 0", "max_message_size", "0", NULL },
	{ "size 0M", "max_message_size", "0M", NULL },
	{ "size 2^40+1", "max_message_size", "1099511627777", NULL },
	{ "size 1025G", "max_message_size", "1025G", NULL },
	{ "size huge", "max_message_size", "99999999999999999999999", NULL },
	{ "size negative", "max_message_size", "-1", NULL },
	{ "size only suffix", "max_message_size", "M", NULL },
	{ "size T", "max_message_size", "1T", NULL },
	{ "size MB", "max_message_size", "10MB", NULL },
	{ "size space", "max_message_size", " 10", NULL },
	{ "size fraction", "max_message_size", "1.5M", NULL },
	{ "size empty", "max_message_size", "", NULL },
	{ "count", "max_recipients", "50", "50" },
	{ "count 0", "messages_per_hour", "0", "0" },
	{ "count 10^9", "messages_per_hour", "1000000000", "1000000000" },
	{ "count 10^9+1", "messages_per_hour", "1000000001", NULL },
	{ "count suffix", "max_recipients", "5K", NULL },
	{ "count sign", "max_recipients", "+5", NULL },
	{ "count hex", "max_recipients", "0x10", NULL },
	{ "bool yes", "allow_external", "yes", "yes" },
	{ "bool YES", "allow_external", "YES", "yes" },
	{ "bool true", "allow_external", "true", "yes" },
	{ "bool on", "allow_external", "on", "yes" },
	{ "bool 1", "allow_external", "1", "yes" },
	{ "bool no", "require_tls_outbound", "no", "no" },
	{ "bool False", "require_tls_outbound", "False", "no" },
	{ "bool off", "require_tls_outbound", "off", "no" },
	{ "bool 0", "require_tls_outbound", "0", "no" },
	{ "bool maybe", "require_tls_outbound", "maybe", NULL },
	{ "bool y", "require_tls_outbound", "y", NULL },
	{ "bool 2", "require_tls_outbound", "2", NULL },
	{ "word upper", "classified_min_level", "TOI-MAT", "toi-mat" },
	{ "word third", "classified_min_level", "tuyet-mat", "tuyet-mat" },
	{ "word unknown", "classified_min_level", "secret", NULL },
	{ "word action", "classified_action", "Quarantine", "quarantine" },
	{ "address", "security_contact", "Bao.Mat@City.Example", "bao.mat@city.example" },
	{ "address none", "security_contact", "NONE", "none" },
	{ "address no domain", "security_contact", "baomat", NULL },
	{ "address literal", "security_contact", "a@[192.0.2.1]", NULL },
	{ "extensions", "blocked_extensions", ".ISO, *.lnk docm,iso", "docm,iso,lnk" },
	{ "extensions none", "blocked_extensions", "None", "none" },
	{ "extensions one", "blocked_extensions", "img", "img" },
	{ "extensions empty", "blocked_extensions", " , ", NULL },
	{ "extensions path", "blocked_extensions", "../iso", NULL },
	{ "extensions too long", "blocked_extensions", "abcdefghijklmnopq", NULL },
	{ "extensions non-ASCII", "blocked_extensions", "t\xe1\xbb\x87p", NULL },
};

START_TEST(test_policy_normalize)
{
	char out[TENANCY_POLICY_VALUE_MAX + 1], why[256], tiny[3];
	size_t nkeys = 0;

	for (size_t i = 0; i < sizeof tt_norm_cases / sizeof tt_norm_cases[0]; i++) {
		const struct tenancy_policy_key *k = tenancy_policy_key_find(tt_norm_cases[i].key);
		int rc;

		ck_assert_ptr_nonnull(k);
		rc = tenancy_policy_normalize(k, tt_norm_cases[i].value, out, sizeof out, why,
		    sizeof why);
		if (tt_norm_cases[i].want == NULL) {
			ck_assert_msg(rc == -EINVAL, "normalize case %s: %d", tt_norm_cases[i].label,
			    rc);
			ck_assert_msg(strstr(why, k->name) != NULL, "normalize case %s: reason %s",
			    tt_norm_cases[i].label, why);
		} else {
			ck_assert_msg(rc == 0, "normalize case %s: %d %s", tt_norm_cases[i].label, rc,
			    why);
			ck_assert_msg(strcmp(out, tt_norm_cases[i].want) == 0,
			    "normalize case %s: %s", tt_norm_cases[i].label, out);
		}
	}
	/* Every key is documented, and its builtin is in normal form. */
	for (const struct tenancy_policy_key *k = tenancy_policy_keys; k->name != NULL; k++) {
		nkeys++;
		ck_assert_msg(k->doc != NULL && strlen(k->doc) > 10, "%s lacks a doc", k->name);
		ck_assert_int_eq(tenancy_policy_normalize(k, k->builtin, out, sizeof out, why,
		    sizeof why), 0);
		ck_assert_str_eq(out, k->builtin);
		ck_assert_ptr_eq(tenancy_policy_key_find(k->name), k);
	}
	ck_assert_uint_eq(nkeys, 12);
	ck_assert_str_eq(tenancy_policy_key_find("max_message_size")->builtin, "26214400");
	ck_assert_str_eq(tenancy_policy_key_find("max_recipients")->builtin, "100");
	ck_assert_str_eq(tenancy_policy_key_find("messages_per_hour")->builtin, "0");
	ck_assert_str_eq(tenancy_policy_key_find("allow_external")->builtin, "yes");
	ck_assert_str_eq(tenancy_policy_key_find("require_tls_outbound")->builtin, "no");
	ck_assert_str_eq(tenancy_policy_key_find("spf_fail_action")->builtin, "reject");
	ck_assert_str_eq(tenancy_policy_key_find("classified_action")->builtin, "reject");
	ck_assert_str_eq(tenancy_policy_key_find("classified_min_level")->builtin, "mat");
	ck_assert_str_eq(tenancy_policy_key_find("security_contact")->builtin, "none");
	ck_assert_ptr_null(tenancy_policy_key_find("max_size"));
	ck_assert_ptr_null(tenancy_policy_key_find(NULL));
	ck_assert_int_eq(tenancy_policy_normalize(NULL, "1", out, sizeof out, why, sizeof why),
	    -EINVAL);
	/* No room for the normal form is refused, not truncated. */
	ck_assert_int_eq(tenancy_policy_normalize(tenancy_policy_key_find("max_recipients"),
	    "1000", tiny, sizeof tiny, NULL, 0), -EINVAL);
}
END_TEST

/* ------------------------------------------------------------ tenants */

/* city -> so-noi-vu -> phong-1, and city -> quan-ba-dinh. */
static void tt_tree(struct tt_env *e)
{
	struct queue_txn *t = tt_begin(e, true);

	tt_tenant(t, "city", "Th\xc3\xa0nh ph\xe1\xbb\x91 H\xc3\xa0 N\xe1\xbb\x99i", NULL);
	tt_tenant(t, "so-noi-vu", "S\xe1\xbb\x9f N\xe1\xbb\x99i v\xe1\xbb\xa5", "city");
	tt_tenant(t, "phong-1", "Ph\xc3\xb2ng 1", "so-noi-vu");
	tt_tenant(t, "quan-ba-dinh", "Qu\xe1\xba\xadn Ba \xc4\x90\xc3\xacnh", "city");
	ck_assert_int_eq(queue_txn_commit(t), 0);
}

static void tt_effective(struct queue_txn *t, const char *tenant, const char *key,
    const char *want_value, const char *want_source)
{
	char *value, *source;

	ck_assert_int_eq(queue_policy_effective(t, tenant, key, &value, &source), 0);
	ck_assert_msg(strcmp(value, want_value) == 0 && strcmp(source, want_source) == 0,
	    "%s %s: %s from %s, want %s from %s", tenant, key, value, source, want_value,
	    want_source);
	free(value);
	free(source);
}

START_TEST(test_tenant_tree)
{
	struct tt_env e;
	struct queue_txn *t;
	struct queue_tenant *g;
	char *value, *source;
	bool within;
	struct buf b;

	tt_setup(&e);
	tt_tree(&e);
	buf_init(&b);

	t = tt_begin(&e, false);
	ck_assert_int_eq(queue_tenant_get(t, "phong-1", &g), 0);
	ck_assert_str_eq(g->id, "phong-1");
	ck_assert_str_eq(g->name, "Ph\xc3\xb2ng 1");
	ck_assert_str_eq(g->parent, "so-noi-vu");
	ck_assert_int_eq(g->created, 1000);
	queue_tenant_free(g);
	ck_assert_int_eq(queue_tenant_get(t, "city", &g), 0);
	ck_assert_ptr_null(g->parent);
	queue_tenant_free(g);
	ck_assert_int_eq(queue_tenant_get(t, "nope", &g), -ENOENT);
	ck_assert_ptr_null(g);
	ck_assert_int_eq(queue_tenant_get(t, "Bad Id", &g), -EINVAL);
	ck_assert_int_eq(queue_tenant_walk(t, tt_tenant_cb, &b), 0);
	ck_assert_str_eq(buf_cstr(&b),
	    "city<-;phong-1<so-noi-vu;quan-ba-dinh<city;so-noi-vu<city;");

	/* within: itself, its ancestors, never a sibling or a descendant. */
	ck_assert_int_eq(queue_tenant_within(t, "phong-1", "phong-1", &within), 0);
	ck_assert(within);
	ck_assert_int_eq(queue_tenant_within(t, "phong-1", "so-noi-vu", &within), 0);
	ck_assert(within);
	ck_assert_int_eq(queue_tenant_within(t, "phong-1", "city", &within), 0);
	ck_assert(within);
	ck_assert_int_eq(queue_tenant_within(t, "phong-1", "quan-ba-dinh", &within), 0);
	ck_assert(!within);
	ck_assert_int_eq(queue_tenant_within(t, "city", "so-noi-vu", &within), 0);
	ck_assert(!within);
	ck_assert_int_eq(queue_tenant_within(t, "nope", "city", &within), -ENOENT);
	ck_assert(!within);

	/* Nothing set anywhere: the builtin. */
	tt_effective(t, "phong-1", "max_message_size", "26214400", "default");
	/* Writes need a write transaction. */
	ck_assert_int_eq(queue_policy_set(t, "city", "max_recipients", "10"), -EINVAL);
	{
		struct queue_tenant x = { "x", "X", NULL, 0 };
		char why[128];

		ck_assert_int_eq(queue_tenant_put(t, &x, why, sizeof why), -EINVAL);
		ck_assert_int_eq(queue_tenant_delete(t, "city", why, sizeof why), -EINVAL);
	}
	queue_txn_abort(t);

	/* Policy: city sets two keys, so-noi-vu overrides one, phong-1 inherits. */
	t = tt_begin(&e, true);
	ck_assert_int_eq(queue_policy_set(t, "city", "max_message_size", "10M"), 0);
	ck_assert_int_eq(queue_policy_set(t, "city", "allow_external", "off"), 0);
	ck_assert_int_eq(queue_policy_set(t, "so-noi-vu", "max_message_size", "20M"), 0);
	ck_assert_int_eq(queue_policy_set(t, "phong-1", "messages_per_hour", "30"), 0);
	ck_assert_int_eq(queue_policy_set(t, "city", "no_such_key", "1"), -EINVAL);
	ck_assert_int_eq(queue_policy_set(t, "city", "max_recipients", "lots"), -EINVAL);
	ck_assert_int_eq(queue_policy_set(t, "nope", "max_recipients", "5"), -ENOENT);
	ck_assert_int_eq(queue_policy_set(t, "city", "max_recipients", NULL), -ENOENT);
	ck_assert_int_eq(queue_txn_commit(t), 0);

	t = tt_begin(&e, false);
	ck_assert_int_eq(queue_policy_get(t, "city", "max_message_size", &value), 0);
	ck_assert_str_eq(value, "10485760");   /* stored normalized */
	free(value);
	ck_assert_int_eq(queue_policy_get(t, "phong-1", "max_message_size", &value), -ENOENT);
	ck_assert_ptr_null(value);
	ck_assert_int_eq(queue_policy_get(t, "city", "bogus", &value), -EINVAL);
	tt_effective(t, "phong-1", "max_message_size", "20971520", "so-noi-vu");
	tt_effective(t, "so-noi-vu", "max_message_size", "20971520", "so-noi-vu");
	tt_effective(t, "quan-ba-dinh", "max_message_size", "10485760", "city");
	tt_effective(t, "city", "max_message_size", "10485760", "city");
	tt_effective(t, "phong-1", "allow_external", "no", "city");
	tt_effective(t, "phong-1", "messages_per_hour", "30", "phong-1");
	tt_effective(t, "so-noi-vu", "messages_per_hour", "0", "default");
	tt_effective(t, "phong-1", "require_tls_outbound", "no", "default");
	ck_assert_int_eq(queue_policy_effective(t, "phong-1", "bogus", &value, &source),
	    -EINVAL);
	ck_assert_int_eq(queue_policy_effective(t, "nope", "max_recipients", &value, &source),
	    -ENOENT);
	ck_assert_ptr_null(value);
	ck_assert_ptr_null(source);
	queue_txn_abort(t);

	/* Removing the override uncovers the ancestor's value. */
	t = tt_begin(&e, true);
	ck_assert_int_eq(queue_policy_set(t, "so-noi-vu", "max_message_size", NULL), 0);
	tt_effective(t, "phong-1", "max_message_size", "10485760", "city");
	ck_assert_int_eq(queue_txn_commit(t), 0);

	buf_free(&b);
	tt_teardown(&e);
}
END_TEST

START_TEST(test_tenant_cycles)
{
	struct tt_env e;
	struct queue_txn *t;
	struct queue_tenant rec = { "city", "City", NULL, 0 };
	char why[256], id[16], parent[16];

	tt_setup(&e);
	tt_tree(&e);
	t = tt_begin(&e, true);

	/* Its own parent. */
	rec.parent = "city";
	ck_assert_int_eq(queue_tenant_put(t, &rec, why, sizeof why), -ELOOP);
	ck_assert_str_eq(why, "tenant city cannot be its own parent");
	/* Below one of its descendants (two levels down). */
	rec.parent = "phong-1";
	ck_assert_int_eq(queue_tenant_put(t, &rec, why, sizeof why), -ELOOP);
	ck_assert_str_eq(why, "tenant phong-1 lies below city, so it cannot be its parent");
	/* A missing parent. */
	rec.id = "new";
	rec.parent = "ghost";
	ck_assert_int_eq(queue_tenant_put(t, &rec, why, sizeof why), -ENOENT);
	ck_assert_str_eq(why, "parent tenant ghost does not exist");
	/* Bad fields. */
	rec.parent = NULL;
	rec.name = "";
	ck_assert_int_eq(queue_tenant_put(t, &rec, why, sizeof why), -EINVAL);
	rec.name = "ok";
	rec.id = "New";
	ck_assert_int_eq(queue_tenant_put(t, &rec, why, sizeof why), -EINVAL);
	/* Moving within the tree is fine: phong-1 goes under quan-ba-dinh. */
	tt_tenant(t, "phong-1", "Ph\xc3\xb2ng 1", "quan-ba-dinh");

	/* A chain of TENANCY_DEPTH_MAX tenants is the deepest allowed. */
	tt_tenant(t, "d1", "D", NULL);
	for (int i = 2; i <= TENANCY_DEPTH_MAX; i++) {
		snprintf(id, sizeof id, "d%d", i);
		snprintf(parent, sizeof parent, "d%d", i - 1);
		tt_tenant(t, id, "D", parent);
	}
	snprintf(parent, sizeof parent, "d%d", TENANCY_DEPTH_MAX);
	rec.id = "too-deep";
	rec.parent = parent;
	ck_assert_int_eq(queue_tenant_put(t, &rec, why, sizeof why), -ELOOP);
	/* Moving a subtree of height 2 (city) under d15 would be 18 deep. */
	rec.id = "city";
	rec.parent = "d15";
	ck_assert_int_eq(queue_tenant_put(t, &rec, why, sizeof why), -ELOOP);
	ck_assert_msg(strstr(why, "subtree") != NULL, "%s", why);
	/* ... under d13 it is exactly 16. */
	rec.parent = "d13";
	ck_assert_int_eq(queue_tenant_put(t, &rec, why, sizeof why), 0);
	{
		bool within;

		ck_assert_int_eq(queue_tenant_within(t, "phong-1", "d1", &within), 0);
		ck_assert(within);
		tt_effective(t, "phong-1", "max_recipients", "100", "default");
	}
	ck_assert_int_eq(queue_txn_commit(t), 0);
	tt_teardown(&e);
}
END_TEST

START_TEST(test_tenant_delete)
{
	struct tt_env e;
	struct queue_txn *t;
	struct queue_tenant *g;
	char why[256], *value;

	tt_setup(&e);
	tt_tree(&e);
	t = tt_begin(&e, true);
	tt_domain(t, "noivu.hanoi.gov.vn", "so-noi-vu");
	tt_domain(t, "other.example", NULL);
	tt_operator(t, "lan", "phong-1", QUEUE_ROLE_POSTMASTER);
	ck_assert_int_eq(queue_policy_set(t, "phong-1", "max_recipients", "7"), 0);
	ck_assert_int_eq(queue_txn_commit(t), 0);

	t = tt_begin(&e, true);
	ck_assert_int_eq(queue_tenant_delete(t, "so-noi-vu", why, sizeof why), -ENOTEMPTY);
	ck_assert_str_eq(why, "tenant so-noi-vu still owns domain noivu.hanoi.gov.vn");
	ck_assert_int_eq(queue_domain_delete(t, "noivu.hanoi.gov.vn"), 0);
	ck_assert_int_eq(queue_tenant_delete(t, "so-noi-vu", why, sizeof why), -ENOTEMPTY);
	ck_assert_str_eq(why, "tenant so-noi-vu still has child tenant phong-1");
	ck_assert_int_eq(queue_tenant_delete(t, "phong-1", why, sizeof why), -ENOTEMPTY);
	ck_assert_str_eq(why, "tenant phong-1 is named by operator lan");
	ck_assert_int_eq(queue_tenant_delete(t, "ghost", why, sizeof why), -ENOENT);
	ck_assert_str_eq(why, "no tenant ghost");
	ck_assert_int_eq(queue_operator_delete(t, "lan"), 0);
	ck_assert_int_eq(queue_operator_delete(t, "lan"), -ENOENT);
	ck_assert_int_eq(queue_tenant_delete(t, "phong-1", why, sizeof why), 0);
	ck_assert_str_eq(why, "");
	ck_assert_int_eq(queue_tenant_delete(t, "so-noi-vu", why, sizeof why), 0);
	ck_assert_int_eq(queue_tenant_get(t, "phong-1", &g), -ENOENT);
	ck_assert_int_eq(queue_txn_commit(t), 0);

	/* The policy went with the tenant: a new phong-1 starts clean. */
	t = tt_begin(&e, true);
	tt_tenant(t, "phong-1", "Again", "city");
	ck_assert_int_eq(queue_policy_get(t, "phong-1", "max_recipients", &value), -ENOENT);
	tt_effective(t, "phong-1", "max_recipients", "100", "default");
	ck_assert_int_eq(queue_txn_commit(t), 0);
	tt_teardown(&e);
}
END_TEST

/* ---------------------------------------------------------- mailboxes */

START_TEST(test_mailbox_range)
{
	/* Inserted out of order, in neighbouring domains. */
	static const char *const addrs[] = {
		"zed@a.b", "x@a.bc", "amy@a.b", "y@a.b.c", "bob@a.b", "q@b.a.b", "c@a.bc",
		"_@a.b", "a@a.a",
	};
	struct tt_env e;
	struct queue_txn *t;
	struct queue_mailbox *m;
	uint64_t count;
	char why[256];
	struct buf b;

	tt_setup(&e);
	buf_init(&b);
	t = tt_begin(&e, true);
	tt_domain(t, "a.b", NULL);
	tt_domain(t, "a.bc", NULL);
	tt_domain(t, "a.b.c", NULL);
	tt_domain(t, "b.a.b", NULL);
	tt_domain(t, "a.a", NULL);
	for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++)
		ck_assert_int_eq(tt_mailbox(t, addrs[i], NULL, NULL, 0), 0);

	ck_assert_int_eq(tt_mailbox(t, "x@not.ours", NULL, why, sizeof why), -ENOENT);
	ck_assert_str_eq(why, "domain not.ours is not ours");
	ck_assert_int_eq(tt_mailbox(t, "x@A.B", NULL, why, sizeof why), -EINVAL);
	ck_assert_int_eq(tt_mailbox(t, "no-at-sign", NULL, why, sizeof why), -EINVAL);
	ck_assert_int_eq(tt_mailbox(t, "@a.b", NULL, why, sizeof why), -EINVAL);
	ck_assert_int_eq(tt_mailbox(t, "x@", NULL, why, sizeof why), -EINVAL);
	ck_assert_int_eq(tt_mailbox(t, "x\ny@a.b", NULL, why, sizeof why), -EINVAL);
	ck_assert_int_eq(queue_txn_commit(t), 0);

	t = tt_begin(&e, false);
	ck_assert_int_eq(queue_mailbox_walk_domain(t, "a.b", tt_mailbox_cb, &b), 0);
	ck_assert_str_eq(buf_cstr(&b), "_@a.b;amy@a.b;bob@a.b;zed@a.b;");
	buf_reset(&b);
	ck_assert_int_eq(queue_mailbox_walk_domain(t, "a.bc", tt_mailbox_cb, &b), 0);
	ck_assert_str_eq(buf_cstr(&b), "c@a.bc;x@a.bc;");
	buf_reset(&b);
	ck_assert_int_eq(queue_mailbox_walk_domain(t, "a", tt_mailbox_cb, &b), 0);
	ck_assert_str_eq(buf_cstr(&b), "");
	ck_assert_int_eq(queue_mailbox_walk_domain(t, "zzz", tt_mailbox_cb, &b), 0);
	ck_assert_str_eq(buf_cstr(&b), "");
	ck_assert_int_eq(queue_mailbox_walk_domain(t, "A.B", tt_mailbox_cb, &b), -EINVAL);
	ck_assert_int_eq(queue_mailbox_count_domain(t, "a.b", &count), 0);
	ck_assert_uint_eq(count, 4);
	ck_assert_int_eq(queue_mailbox_count_domain(t, "a.bc", &count), 0);
	ck_assert_uint_eq(count, 2);
	ck_assert_int_eq(queue_mailbox_count_domain(t, "a.b.c", &count), 0);
	ck_assert_uint_eq(count, 1);
	ck_assert_int_eq(queue_mailbox_count_domain(t, "nowhere.example", &count), 0);
	ck_assert_uint_eq(count, 0);
	buf_reset(&b);
	ck_assert_int_eq(queue_mailbox_walk(t, tt_mailbox_cb, &b), 0);
	ck_assert_str_eq(buf_cstr(&b),
	    "a@a.a;_@a.b;amy@a.b;bob@a.b;zed@a.b;y@a.b.c;c@a.bc;x@a.bc;q@b.a.b;");

	ck_assert_int_eq(queue_mailbox_get(t, "amy@a.b", &m), 0);
	ck_assert_str_eq(m->address, "amy@a.b");
	ck_assert_uint_eq(m->nalias_of, 0);
	ck_assert_int_eq(m->created, 7);
	queue_mailbox_free(m);
	ck_assert_int_eq(queue_mailbox_get(t, "amy@a.bc", &m), -ENOENT);
	ck_assert_ptr_null(m);
	ck_assert_int_eq(queue_mailbox_delete(t, "amy@a.b"), -EINVAL);   /* read txn */
	queue_txn_abort(t);

	t = tt_begin(&e, true);
	ck_assert_int_eq(queue_mailbox_delete(t, "amy@a.b"), 0);
	ck_assert_int_eq(queue_mailbox_delete(t, "amy@a.b"), -ENOENT);
	ck_assert_int_eq(queue_mailbox_count_domain(t, "a.b", &count), 0);
	ck_assert_uint_eq(count, 3);
	ck_assert_int_eq(queue_txn_commit(t), 0);

	buf_free(&b);
	tt_teardown(&e);
}
END_TEST

struct tt_expand_case {
	const char *label;
	const char *address;
	const char *want;     /* results joined by ';' */
};

static const struct tt_expand_case tt_expand_cases[] = {
	{ "plain mailbox", "ann@hn.example", "ann@hn.example;" },
	{ "unknown local address", "nobody@hn.example", "nobody@hn.example;" },
	{ "external", "x@gmail.com", "x@gmail.com;" },
	{ "multiple targets", "team@hn.example", "ann@hn.example;bob@hn.example;" },
	{ "nested, deduplicated", "all@hn.example",
		"ann@hn.example;bob@hn.example;cat@hn.example;ext@partner.example;" },
	{ "to external", "fwd@hn.example", "ext@partner.example;" },
	{ "two-alias loop", "loop1@hn.example", "loop1@hn.example;" },
	{ "self copy", "boss@hn.example", "boss@hn.example;ann@hn.example;" },
	{ "depth 8 is followed", "c0@hn.example", "end@hn.example;" },
	{ "depth 9 stops", "d0@hn.example", "d8@hn.example;" },
};

static int stop_cb(void *arg, const struct queue_mailbox *m)
{
	(void)m;
	++*(int *)arg;
	return 42;
}

START_TEST(test_alias_expand)
{
	static const char *const team[] = { "ann@hn.example", "bob@hn.example", NULL };
	static const char *const all[] = { "team@hn.example", "bob@hn.example",
		"sub@hn.example", "ann@hn.example", NULL };
	static const char *const sub[] = { "cat@hn.example", "team@hn.example",
		"fwd@hn.example", NULL };
	static const char *const fwd[] = { "ext@partner.example", NULL };
	static const char *const loop1[] = { "loop2@hn.example", NULL };
	static const char *const loop2[] = { "loop1@hn.example", NULL };
	static const char *const boss[] = { "boss@hn.example", "ann@hn.example", NULL };
	struct tt_env e;
	struct queue_txn *t;
	char why[256], addr[64], target[64];
	char **out;
	size_t n;
	int calls = 0;
	struct buf b;

	tt_setup(&e);
	buf_init(&b);
	t = tt_begin(&e, true);
	tt_domain(t, "hn.example", NULL);
	ck_assert_int_eq(tt_mailbox(t, "ann@hn.example", NULL, NULL, 0), 0);
	ck_assert_int_eq(tt_mailbox(t, "bob@hn.example", NULL, NULL, 0), 0);
	ck_assert_int_eq(tt_mailbox(t, "cat@hn.example", NULL, NULL, 0), 0);
	ck_assert_int_eq(tt_mailbox(t, "end@hn.example", NULL, NULL, 0), 0);
	ck_assert_int_eq(tt_mailbox(t, "team@hn.example", team, NULL, 0), 0);
	ck_assert_int_eq(tt_mailbox(t, "all@hn.example", all, NULL, 0), 0);
	ck_assert_int_eq(tt_mailbox(t, "sub@hn.example", sub, NULL, 0), 0);
	ck_assert_int_eq(tt_mailbox(t, "fwd@hn.example", fwd, NULL, 0), 0);
	ck_assert_int_eq(tt_mailbox(t, "loop1@hn.example", loop1, NULL, 0), 0);
	ck_assert_int_eq(tt_mailbox(t, "loop2@hn.example", loop2, NULL, 0), 0);
	ck_assert_int_eq(tt_mailbox(t, "boss@hn.example", boss, NULL, 0), 0);
	/* c0 -> c1 -> ... -> c7 -> end: 8 levels of aliases. */
	for (int i = 0; i < 8; i++) {
		const char *tg[2] = { target, NULL };

		snprintf(addr, sizeof addr, "c%d@hn.example", i);
		if (i == 7)
			snprintf(target, sizeof target, "end@hn.example");
		else
			snprintf(target, sizeof target, "c%d@hn.example", i + 1);
		ck_assert_int_eq(tt_mailbox(t, addr, tg, NULL, 0), 0);
	}
	/* d0 -> ... -> d8 -> end: the ninth level is not followed. */
	for (int i = 0; i < 9; i++) {
		const char *tg[2] = { target, NULL };

		snprintf(addr, sizeof addr, "d%d@hn.example", i);
		if (i == 8)
			snprintf(target, sizeof target, "end@hn.example");
		else
			snprintf(target, sizeof target, "d%d@hn.example", i + 1);
		ck_assert_int_eq(tt_mailbox(t, addr, tg, NULL, 0), 0);
	}
	{
		/* Targets are checked; the list is bounded. */
		static const char *const bad[] = { "ann@hn.example", "not an address", NULL };
		struct queue_mailbox m = { "big@hn.example", NULL,
			TENANCY_ALIAS_TARGETS_MAX + 1, 0 };

		ck_assert_int_eq(tt_mailbox(t, "bad@hn.example", bad, why, sizeof why), -EINVAL);
		ck_assert_msg(strstr(why, "alias target") != NULL, "%s", why);
		m.alias_of = xcalloc(m.nalias_of, sizeof *m.alias_of);
		for (size_t i = 0; i < m.nalias_of; i++)
			m.alias_of[i] = "ann@hn.example";
		ck_assert_int_eq(queue_mailbox_put(t, &m, why, sizeof why), -EINVAL);
		m.nalias_of = TENANCY_ALIAS_TARGETS_MAX;
		ck_assert_int_eq(queue_mailbox_put(t, &m, why, sizeof why), 0);
		free(m.alias_of);
	}
	ck_assert_int_eq(queue_txn_commit(t), 0);

	t = tt_begin(&e, false);
	for (size_t i = 0; i < sizeof tt_expand_cases / sizeof tt_expand_cases[0]; i++) {
		ck_assert_int_eq(queue_alias_expand(t, tt_expand_cases[i].address, &out, &n), 0);
		buf_reset(&b);
		for (size_t j = 0; j < n; j++) {
			buf_append_str(&b, out[j]);
			buf_append_char(&b, ';');
		}
		ck_assert_msg(strcmp(buf_cstr(&b), tt_expand_cases[i].want) == 0,
		    "expand case %s: %s", tt_expand_cases[i].label, buf_cstr(&b));
		queue_alias_list_free(out, n);
	}
	/* 1000 identical targets collapse into one. */
	ck_assert_int_eq(queue_alias_expand(t, "big@hn.example", &out, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(out[0], "ann@hn.example");
	queue_alias_list_free(out, n);
	ck_assert_int_eq(queue_alias_expand(t, NULL, &out, &n), -EINVAL);
	ck_assert_ptr_null(out);
	ck_assert_uint_eq(n, 0);
	queue_alias_list_free(NULL, 0);

	/* Alias records carry their targets; a walk stops on request. */
	{
		struct queue_mailbox *m;

		ck_assert_int_eq(queue_mailbox_get(t, "sub@hn.example", &m), 0);
		ck_assert_uint_eq(m->nalias_of, 3);
		ck_assert_str_eq(m->alias_of[0], "cat@hn.example");
		ck_assert_str_eq(m->alias_of[2], "fwd@hn.example");
		queue_mailbox_free(m);
	}
	ck_assert_int_eq(queue_mailbox_walk_domain(t, "hn.example", stop_cb, &calls), 42);
	ck_assert_int_eq(calls, 1);
	queue_txn_abort(t);
	buf_free(&b);
	tt_teardown(&e);
}
END_TEST

/* Many aliases of many targets each: dedupe must not go quadratic. */
START_TEST(test_alias_wide)
{
	struct tt_env e;
	struct queue_txn *t;
	struct queue_mailbox m = { NULL, NULL, 0, 0 };
	char **targets = xcalloc(TENANCY_ALIAS_TARGETS_MAX, sizeof *targets);
	const char *top[51];
	char **out;
	size_t n;

	tt_setup_size(&e, 256u << 20);
	t = tt_begin(&e, true);
	tt_domain(t, "hn.example", NULL);
	/* list0..list49, each of 1000 people, overlapping by half. */
	for (int l = 0; l < 50; l++) {
		char addr[64];

		snprintf(addr, sizeof addr, "list%d@hn.example", l);
		for (int i = 0; i < TENANCY_ALIAS_TARGETS_MAX; i++) {
			char p[64];

			snprintf(p, sizeof p, "p%d@hn.example", l * 500 + i);
			targets[i] = xstrdup(p);
		}
		m.address = addr;
		m.alias_of = targets;
		m.nalias_of = TENANCY_ALIAS_TARGETS_MAX;
		ck_assert_int_eq(queue_mailbox_put(t, &m, NULL, 0), 0);
		for (int i = 0; i < TENANCY_ALIAS_TARGETS_MAX; i++)
			free(targets[i]);
	}
	for (int l = 0; l < 50; l++) {
		char *a = xcalloc(1, 64);

		snprintf(a, 64, "list%d@hn.example", l);
		top[l] = a;
	}
	top[50] = NULL;
	ck_assert_int_eq(tt_mailbox(t, "everyone@hn.example", top, NULL, 0), 0);
	ck_assert_int_eq(queue_alias_expand(t, "everyone@hn.example", &out, &n), 0);
	ck_assert_uint_eq(n, 49 * 500 + 1000);
	ck_assert_str_eq(out[0], "p0@hn.example");
	queue_alias_list_free(out, n);
	for (int l = 0; l < 50; l++)
		free((char *)top[l]);
	free(targets);
	queue_txn_abort(t);
	tt_teardown(&e);
}
END_TEST

/* -------------------------------------------------------------- users */

START_TEST(test_users)
{
	static const char *const sales[] = { "ann@hn.example", "bob@hn.example", NULL };
	static const char *const outer[] = { "sales@hn.example", NULL };
	static const struct {
		const char *label;
		const char *user;
		const char *sender;
		bool ok;
	} cases[] = {
		{ "own address", "ann@hn.example", "ann@hn.example", true },
		{ "alias naming the user", "ann@hn.example", "sales@hn.example", true },
		{ "alias naming another user", "cat@hn.example", "sales@hn.example", false },
		{ "someone else's mailbox", "ann@hn.example", "bob@hn.example", false },
		{ "alias of an alias", "ann@hn.example", "outer@hn.example", false },
		{ "external sender", "ann@hn.example", "ann@gmail.com", false },
		{ "unknown local", "ann@hn.example", "ghost@hn.example", false },
		{ "garbage sender", "ann@hn.example", "not an address", false },
	};
	struct tt_env e;
	struct queue_txn *t;
	struct queue_user u = { "ann@hn.example", "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA",
		false, true, 5, 123456, 99 };
	struct queue_user *g;
	char why[256], *tenant;
	struct buf b;
	bool ok;

	tt_setup(&e);
	buf_init(&b);
	t = tt_begin(&e, true);
	tt_tenant(t, "city", "City", NULL);
	tt_domain(t, "hn.example", "city");
	tt_domain(t, "orphan.example", NULL);
	ck_assert_int_eq(tt_mailbox(t, "ann@hn.example", NULL, NULL, 0), 0);
	ck_assert_int_eq(tt_mailbox(t, "bob@hn.example", NULL, NULL, 0), 0);
	ck_assert_int_eq(tt_mailbox(t, "sales@hn.example", sales, NULL, 0), 0);
	ck_assert_int_eq(tt_mailbox(t, "outer@hn.example", outer, NULL, 0), 0);
	ck_assert_int_eq(queue_user_put(t, &u, why, sizeof why), 0);
	u.address = "bob@hn.example";
	u.locked = true;
	u.locked_out = false;
	ck_assert_int_eq(queue_user_put(t, &u, NULL, 0), 0);
	u.address = "eve@gmail.com";
	ck_assert_int_eq(queue_user_put(t, &u, why, sizeof why), -ENOENT);
	ck_assert_str_eq(why, "domain gmail.com is not ours");
	u.address = "cat@hn.example";
	u.hash = NULL;
	ck_assert_int_eq(queue_user_put(t, &u, why, sizeof why), -EINVAL);
	ck_assert_int_eq(queue_txn_commit(t), 0);

	t = tt_begin(&e, false);
	ck_assert_int_eq(queue_user_get(t, "ann@hn.example", &g), 0);
	ck_assert_str_eq(g->address, "ann@hn.example");
	ck_assert_str_eq(g->hash, "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA");
	ck_assert(!g->locked);
	ck_assert(g->locked_out);
	ck_assert_uint_eq(g->failures, 5);
	ck_assert_int_eq(g->last_failure, 123456);
	ck_assert_int_eq(g->created, 99);
	queue_user_free(g);
	ck_assert_int_eq(queue_user_get(t, "bob@hn.example", &g), 0);
	ck_assert(g->locked);
	ck_assert(!g->locked_out);
	queue_user_free(g);
	ck_assert_int_eq(queue_user_get(t, "cat@hn.example", &g), -ENOENT);
	ck_assert_ptr_null(g);
	ck_assert_int_eq(queue_user_walk(t, tt_user_cb, &b), 0);
	ck_assert_str_eq(buf_cstr(&b), "ann@hn.example;bob@hn.example;");

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		ck_assert_int_eq(queue_user_may_send_as(t, cases[i].user, cases[i].sender, &ok), 0);
		ck_assert_msg(ok == cases[i].ok, "send-as case %s", cases[i].label);
	}
	ck_assert_int_eq(queue_user_may_send_as(t, NULL, "a@b.c", &ok), -EINVAL);

	ck_assert_int_eq(queue_tenant_of_address(t, "ann@hn.example", &tenant), 0);
	ck_assert_str_eq(tenant, "city");
	free(tenant);
	ck_assert_int_eq(queue_tenant_of_address(t, "x@orphan.example", &tenant), -ENOENT);
	ck_assert_ptr_null(tenant);
	ck_assert_int_eq(queue_tenant_of_address(t, "x@gmail.com", &tenant), -ENOENT);
	ck_assert_int_eq(queue_tenant_of_address(t, "nope", &tenant), -EINVAL);
	queue_txn_abort(t);

	t = tt_begin(&e, true);
	ck_assert_int_eq(queue_user_delete(t, "ann@hn.example"), 0);
	ck_assert_int_eq(queue_user_delete(t, "ann@hn.example"), -ENOENT);
	ck_assert_int_eq(queue_user_get(t, "ann@hn.example", &g), -ENOENT);
	ck_assert_int_eq(queue_txn_commit(t), 0);
	buf_free(&b);
	tt_teardown(&e);
}
END_TEST

START_TEST(test_operators)
{
	struct tt_env e;
	struct queue_txn *t;
	struct queue_operator o = { "lan", "ghost", QUEUE_ROLE_AUDITOR, 1 };
	struct queue_operator *g;
	char why[256];
	struct buf b;

	tt_setup(&e);
	buf_init(&b);
	t = tt_begin(&e, true);
	tt_tenant(t, "city", "City", NULL);
	tt_tenant(t, "ward", "Ward", "city");
	ck_assert_int_eq(queue_operator_put(t, &o, why, sizeof why), -ENOENT);
	ck_assert_str_eq(why, "tenant ghost does not exist");
	o.unix_user = "Lan";
	o.tenant = "city";
	ck_assert_int_eq(queue_operator_put(t, &o, why, sizeof why), -EINVAL);
	o.unix_user = "lan";
	o.role = (enum queue_operator_role)7;
	ck_assert_int_eq(queue_operator_put(t, &o, why, sizeof why), -EINVAL);
	tt_operator(t, "lan", "ward", QUEUE_ROLE_AUDITOR);
	tt_operator(t, "_pm", "city", QUEUE_ROLE_POSTMASTER);
	/* Replace: lan becomes the ward's postmaster. */
	tt_operator(t, "lan", "ward", QUEUE_ROLE_POSTMASTER);
	ck_assert_int_eq(queue_txn_commit(t), 0);

	t = tt_begin(&e, false);
	ck_assert_int_eq(queue_operator_get(t, "lan", &g), 0);
	ck_assert_str_eq(g->unix_user, "lan");
	ck_assert_str_eq(g->tenant, "ward");
	ck_assert_int_eq(g->role, QUEUE_ROLE_POSTMASTER);
	ck_assert_int_eq(g->created, 9);
	queue_operator_free(g);
	ck_assert_int_eq(queue_operator_get(t, "hoa", &g), -ENOENT);
	ck_assert_int_eq(queue_operator_get(t, "bad user", &g), -EINVAL);
	ck_assert_int_eq(queue_operator_walk(t, tt_operator_cb, &b), 0);
	ck_assert_str_eq(buf_cstr(&b), "_pm=city/postmaster;lan=ward/postmaster;");
	ck_assert_int_eq(queue_operator_delete(t, "lan"), -EINVAL);   /* read txn */
	queue_txn_abort(t);
	queue_operator_free(NULL);
	queue_tenant_free(NULL);
	queue_mailbox_free(NULL);
	queue_user_free(NULL);
	buf_free(&b);
	tt_teardown(&e);
}
END_TEST

/* ------------------------------------------------------------- domains */

/* Writes raw bytes under key in db, with plain LMDB. */
static void tt_raw_put(const char *dir, const char *db, const char *key, const void *val,
    size_t len)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { strlen(key), (void *)key }, v = { len, (void *)val };

	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 16), 0);
	ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, db, MDB_CREATE, &dbi), 0);
	ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* A domain record as version 1 wrote it: no accept_all byte. */
static size_t tt_domain_v1(uint8_t *p, uint8_t version, const char *name, bool tls)
{
	size_t n = 0, len = strlen(name);

	p[n++] = version;
	p[n++] = 0; p[n++] = 0; p[n++] = 0; p[n++] = (uint8_t)len;   /* str name */
	memcpy(p + n, name, len);
	n += len;
	memset(p + n, 0xff, 4);                                       /* str tenant: NULL */
	n += 4;
	p[n++] = 0; p[n++] = 0; p[n++] = 0; p[n++] = 2;              /* str route */
	p[n++] = 'm';
	p[n++] = 'x';
	p[n++] = tls ? 1 : 0;                                         /* require_tls */
	memset(p + n, 0, 7);                                          /* created = 300 */
	n += 6;
	p[n++] = 1;
	p[n++] = 44;
	return n;
}

START_TEST(test_domain_versions)
{
	struct tt_env e;
	struct queue_txn *t;
	struct queue_domain *g;
	struct queue_domain d = { .name = "all.example", .route = "smtp:10.0.0.1:25",
		.accept_all = true, .created = 1 };
	uint8_t rec[128];
	size_t n;

	tt_setup(&e);
	queue_store_close(e.store);
	e.store = NULL;
	n = tt_domain_v1(rec, 1, "old.example", true);
	tt_raw_put(e.dir, QUEUE_DB_DOMAINS, "old.example", rec, n);
	n = tt_domain_v1(rec, 3, "v3.example", true);
	tt_raw_put(e.dir, QUEUE_DB_DOMAINS, "v3.example", rec, n);
	/* Version 2 must carry the flag: a v1 body labelled 2 is short. */
	n = tt_domain_v1(rec, 2, "short.example", true);
	tt_raw_put(e.dir, QUEUE_DB_DOMAINS, "short.example", rec, n);
	rec[n] = 2;   /* accept_all may only be 0 or 1 */
	tt_raw_put(e.dir, QUEUE_DB_DOMAINS, "flag.example", rec, n + 1);
	n = tt_domain_v1(rec, 1, "trail.example", false);
	rec[n] = 0;   /* a version 1 record has nothing after created */
	tt_raw_put(e.dir, QUEUE_DB_DOMAINS, "trail.example", rec, n + 1);
	tt_reopen(&e, false);

	t = tt_begin(&e, true);
	ck_assert_int_eq(queue_domain_get(t, "old.example", &g), 0);
	ck_assert_str_eq(g->name, "old.example");
	ck_assert_ptr_null(g->tenant);
	ck_assert_str_eq(g->route, "mx");
	ck_assert(g->require_tls);
	ck_assert(!g->accept_all);
	ck_assert_int_eq(g->created, 300);
	queue_domain_free(g);
	ck_assert_int_eq(queue_domain_get(t, "v3.example", &g), -EBADMSG);
	ck_assert_ptr_null(g);
	ck_assert_int_eq(queue_domain_get(t, "short.example", &g), -EBADMSG);
	ck_assert_int_eq(queue_domain_get(t, "flag.example", &g), -EBADMSG);
	ck_assert_int_eq(queue_domain_get(t, "trail.example", &g), -EBADMSG);

	/* Version 2 round trip, both ways of the flag. */
	ck_assert_int_eq(queue_domain_put(t, &d), 0);
	ck_assert_int_eq(queue_domain_get(t, "all.example", &g), 0);
	ck_assert(g->accept_all);
	ck_assert(!g->require_tls);
	queue_domain_free(g);
	/* Rewriting a v1 record makes it v2 with the flag. */
	ck_assert_int_eq(queue_domain_get(t, "old.example", &g), 0);
	g->accept_all = true;
	ck_assert_int_eq(queue_domain_put(t, g), 0);
	queue_domain_free(g);
	ck_assert_int_eq(queue_domain_get(t, "old.example", &g), 0);
	ck_assert(g->accept_all);
	ck_assert(g->require_tls);
	ck_assert_int_eq(g->created, 300);
	queue_domain_free(g);
	d.accept_all = false;
	ck_assert_int_eq(queue_domain_put(t, &d), 0);
	ck_assert_int_eq(queue_domain_get(t, "all.example", &g), 0);
	ck_assert(!g->accept_all);
	queue_domain_free(g);
	ck_assert_int_eq(queue_txn_commit(t), 0);
	tt_teardown(&e);
}
END_TEST

/* ----------------------------------------------------------- old store */

/* A store as the version before tenancy made it: six databases. */
static void tt_make_old_store(const char *dir)
{
	static const char *const dbs[] = { QUEUE_DB_META, QUEUE_DB_MESSAGES, QUEUE_DB_BODIES,
		QUEUE_DB_SCHEDULE, QUEUE_DB_DOMAINS, QUEUE_DB_AUDIT };
	uint8_t ver[4] = { 0, 0, 0, 1 }, rec[128];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, v;
	size_t n;

	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 6), 0);
	ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++)
		ck_assert_int_eq(mdb_dbi_open(txn, dbs[i], MDB_CREATE, &dbi), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, QUEUE_DB_META, 0, &dbi), 0);
	k.mv_size = strlen(QUEUE_META_SCHEMA_VERSION);
	k.mv_data = (void *)QUEUE_META_SCHEMA_VERSION;
	v.mv_size = sizeof ver;
	v.mv_data = ver;
	ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, QUEUE_DB_DOMAINS, 0, &dbi), 0);
	n = tt_domain_v1(rec, 1, "old.example", false);
	k.mv_size = strlen("old.example");
	k.mv_data = (void *)"old.example";
	v.mv_size = n;
	v.mv_data = rec;
	ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static int tt_fail_tenant_cb(void *arg, const struct queue_tenant *t)
{
	(void)arg;
	(void)t;
	return -1;
}

static int tt_fail_mailbox_cb(void *arg, const struct queue_mailbox *m)
{
	(void)arg;
	(void)m;
	return -1;
}

START_TEST(test_old_store)
{
	struct tt_env e;
	struct queue_txn *t;
	struct queue_tenant *g;
	struct queue_mailbox *m;
	struct queue_user *u;
	struct queue_operator *o;
	struct queue_domain *d;
	char *value, *source, **out;
	uint64_t count;
	size_t n;
	bool ok;

	tt_mkdir(&e);
	tt_make_old_store(e.dir);

	/* Read-only: opens, and the missing tables read as empty. */
	ck_assert_int_eq(queue_store_open(e.dir, 0, true, &e.store), 0);
	t = tt_begin(&e, false);
	ck_assert_int_eq(queue_domain_get(t, "old.example", &d), 0);
	ck_assert(!d->accept_all);
	queue_domain_free(d);
	ck_assert_int_eq(queue_tenant_get(t, "city", &g), -ENOENT);
	ck_assert_int_eq(queue_tenant_walk(t, tt_fail_tenant_cb, NULL), 0);
	ck_assert_int_eq(queue_mailbox_get(t, "a@old.example", &m), -ENOENT);
	ck_assert_int_eq(queue_mailbox_walk(t, tt_fail_mailbox_cb, NULL), 0);
	ck_assert_int_eq(queue_mailbox_walk_domain(t, "old.example", tt_fail_mailbox_cb, NULL),
	    0);
	ck_assert_int_eq(queue_mailbox_count_domain(t, "old.example", &count), 0);
	ck_assert_uint_eq(count, 0);
	ck_assert_int_eq(queue_user_get(t, "a@old.example", &u), -ENOENT);
	ck_assert_int_eq(queue_operator_get(t, "lan", &o), -ENOENT);
	ck_assert_int_eq(queue_policy_get(t, "city", "max_recipients", &value), -ENOENT);
	ck_assert_int_eq(queue_policy_effective(t, "city", "max_recipients", &value, &source),
	    -ENOENT);
	ck_assert_int_eq(queue_alias_expand(t, "a@old.example", &out, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(out[0], "a@old.example");
	queue_alias_list_free(out, n);
	ck_assert_int_eq(queue_user_may_send_as(t, "a@old.example", "b@old.example", &ok), 0);
	ck_assert(!ok);
	queue_txn_abort(t);

	/* Read-write: the tables are created and take records. */
	tt_reopen(&e, false);
	t = tt_begin(&e, true);
	tt_tenant(t, "city", "City", NULL);
	ck_assert_int_eq(tt_mailbox(t, "a@old.example", NULL, NULL, 0), 0);
	ck_assert_int_eq(queue_txn_commit(t), 0);
	tt_reopen(&e, true);
	t = tt_begin(&e, false);
	ck_assert_int_eq(queue_tenant_get(t, "city", &g), 0);
	queue_tenant_free(g);
	ck_assert_int_eq(queue_mailbox_count_domain(t, "old.example", &count), 0);
	ck_assert_uint_eq(count, 1);
	queue_txn_abort(t);
	tt_teardown(&e);
}
END_TEST

START_TEST(test_reopen)
{
	static const char *const list[] = { "ann@hn.example", "x@partner.example", NULL };
	struct tt_env e;
	struct queue_txn *t;
	struct queue_tenant *g;
	struct queue_mailbox *m;
	struct queue_user *u;
	struct queue_operator *o;
	struct queue_user ur = { "ann@hn.example", "$h$", false, false, 0, 0, 4 };
	char why[128];

	tt_setup(&e);
	tt_tree(&e);
	t = tt_begin(&e, true);
	tt_domain(t, "hn.example", "phong-1");
	ck_assert_int_eq(tt_mailbox(t, "ann@hn.example", NULL, NULL, 0), 0);
	ck_assert_int_eq(tt_mailbox(t, "list@hn.example", list, NULL, 0), 0);
	ck_assert_int_eq(queue_user_put(t, &ur, why, sizeof why), 0);
	tt_operator(t, "lan", "so-noi-vu", QUEUE_ROLE_AUDITOR);
	ck_assert_int_eq(queue_policy_set(t, "city", "require_tls_outbound", "yes"), 0);
	ck_assert_int_eq(queue_txn_commit(t), 0);
	tt_reopen(&e, false);
	tt_reopen(&e, true);

	t = tt_begin(&e, false);
	ck_assert_int_eq(queue_tenant_get(t, "phong-1", &g), 0);
	ck_assert_str_eq(g->parent, "so-noi-vu");
	queue_tenant_free(g);
	ck_assert_int_eq(queue_mailbox_get(t, "list@hn.example", &m), 0);
	ck_assert_uint_eq(m->nalias_of, 2);
	ck_assert_str_eq(m->alias_of[1], "x@partner.example");
	queue_mailbox_free(m);
	ck_assert_int_eq(queue_user_get(t, "ann@hn.example", &u), 0);
	ck_assert_str_eq(u->hash, "$h$");
	queue_user_free(u);
	ck_assert_int_eq(queue_operator_get(t, "lan", &o), 0);
	ck_assert_int_eq(o->role, QUEUE_ROLE_AUDITOR);
	queue_operator_free(o);
	tt_effective(t, "phong-1", "require_tls_outbound", "yes", "city");
	queue_txn_abort(t);
	tt_teardown(&e);
}
END_TEST

/* -------------------------------------------------------------- scale */

#define TT_MANY 100000

struct tt_many {
	unsigned next;
	bool ordered;
};

static int tt_many_cb(void *arg, const struct queue_mailbox *m)
{
	struct tt_many *w = arg;
	char want[64];

	snprintf(want, sizeof want, "u%06u@big.example", w->next);
	if (strcmp(m->address, want) != 0)
		w->ordered = false;
	w->next++;
	return 0;
}

START_TEST(test_many_mailboxes)
{
	struct tt_env e;
	struct queue_txn *t;
	struct tt_many w = { 0, true };
	struct timespec t0, t1;
	uint64_t count;
	char addr[64];
	double secs;

	tt_setup_size(&e, 512u << 20);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	t = tt_begin(&e, true);
	tt_domain(t, "big.example", NULL);
	tt_domain(t, "big.exampl", NULL);
	tt_domain(t, "big.example2", NULL);
	ck_assert_int_eq(tt_mailbox(t, "zz@big.exampl", NULL, NULL, 0), 0);
	ck_assert_int_eq(tt_mailbox(t, "aa@big.example2", NULL, NULL, 0), 0);
	/* Inserted in a scrambled order (i * 7919 mod 10^5 is a permutation). */
	for (unsigned i = 0; i < TT_MANY; i++) {
		struct queue_mailbox m = { addr, NULL, 0, 1 };

		snprintf(addr, sizeof addr, "u%06u@big.example", (unsigned)((i * 7919u) % TT_MANY));
		ck_assert_int_eq(queue_mailbox_put(t, &m, NULL, 0), 0);
	}
	ck_assert_int_eq(queue_txn_commit(t), 0);

	t = tt_begin(&e, false);
	ck_assert_int_eq(queue_mailbox_count_domain(t, "big.example", &count), 0);
	ck_assert_uint_eq(count, TT_MANY);
	ck_assert_int_eq(queue_mailbox_walk_domain(t, "big.example", tt_many_cb, &w), 0);
	ck_assert_uint_eq(w.next, TT_MANY);
	ck_assert(w.ordered);
	ck_assert_int_eq(queue_mailbox_count_domain(t, "big.exampl", &count), 0);
	ck_assert_uint_eq(count, 1);
	ck_assert_int_eq(queue_mailbox_count_domain(t, "big.example2", &count), 0);
	ck_assert_uint_eq(count, 1);
	queue_txn_abort(t);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	if (getenv("TT_TIMING") != NULL)
		fprintf(stderr, "100000 mailboxes: put + count + walk in %.2f s\n", secs);
	tt_teardown(&e);
}
END_TEST

/* ---------------------------------------------------------------- main */

static Suite *tt_suite(void)
{
	Suite *s = suite_create("tenancy");
	TCase *tc = tcase_create("tables");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_syntax);
	tcase_add_test(tc, test_policy_normalize);
	tcase_add_test(tc, test_tenant_tree);
	tcase_add_test(tc, test_tenant_cycles);
	tcase_add_test(tc, test_tenant_delete);
	tcase_add_test(tc, test_mailbox_range);
	tcase_add_test(tc, test_alias_expand);
	tcase_add_test(tc, test_alias_wide);
	tcase_add_test(tc, test_users);
	tcase_add_test(tc, test_operators);
	tcase_add_test(tc, test_domain_versions);
	tcase_add_test(tc, test_old_store);
	tcase_add_test(tc, test_reopen);
	tcase_add_test(tc, test_many_mailboxes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tt_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
