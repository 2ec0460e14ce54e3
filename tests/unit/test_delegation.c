/*
 * test_delegation: unit tests of the pure rules of delegated
 * administration (doc/THREAT-MODEL.md): a path strictly below a folder
 * (table-driven, "..", ".", empty components, prefixes that are not
 * folders), a subdomain and the nearest domain of ours above a name, the
 * routes a delegated postmaster may name for a given configuration
 * (table-driven) and the three configuration keys (defaults, relative
 * paths, a FILE:LINE error), message scope (a forged MAIL FROM gives nothing, an
 * authenticated sender of the subtree does), which policy value is
 * tighter (table-driven, every key), and the policy ceiling in a real store: a looser value set by
 * the store's owner is an exemption honoured at evaluation, a value that
 * was not looser when set is clamped when an ancestor tightens later,
 * the ceiling names the ancestor, and `tenant remove` takes the marks
 * with the settings.
 *
 * Includes admin/admin_int.h (the admin engine's private header): the
 * rules are the engine's, and this is their test.
 */
#include "config.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "admin/admin_int.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

/* ------------------------------------------------------------- paths */

static const struct td_path_case {
	const char *dir, *path;
	bool below;
} td_path_cases[] = {
	{ "/srv/mail", "/srv/mail/ward", true },
	{ "/srv/mail", "/srv/mail/ward/deep/er", true },
	{ "/srv/mail/", "/srv/mail/ward", true },
	{ "/srv/mail", "/srv/mail/ward/", true },
	{ "/srv/mail", "/srv/mail", false },       /* the root itself: shared, no */
	{ "/srv/mail", "/srv/mail/", false },
	{ "/srv/mail", "/srv/mailx/ward", false }, /* a prefix, not a folder */
	{ "/srv/mail", "/srv/mail/../etc", false },
	{ "/srv/mail", "/srv/mail/ward/../../etc", false },
	{ "/srv/mail", "/srv/mail/./ward", false },
	{ "/srv/mail", "/srv/mail//ward", false },
	{ "/srv/mail", "/srv/mail/ward/..", false },
	{ "/srv/mail", "/root/x", false },
	{ "/srv/mail", "srv/mail/ward", false },
	{ "/srv/mail", "/srv/mail/..ward", true },  /* a name, not ".." */
	{ "/", "/anything", true },
	{ "/", "/", false },
};

START_TEST(test_path_below)
{
	const struct td_path_case *c = &td_path_cases[_i];

	ck_assert_msg(admin__path_below(c->dir, c->path) == c->below, "%s below %s: expected %d",
	    c->path, c->dir, c->below);
}
END_TEST

START_TEST(test_domain_below)
{
	ck_assert(admin__domain_is_below("a.ward.test", "ward.test"));
	ck_assert(admin__domain_is_below("x.a.ward.test", "ward.test"));
	ck_assert(!admin__domain_is_below("ward.test", "ward.test"));
	ck_assert(!admin__domain_is_below("evilward.test", "ward.test"));
	ck_assert(!admin__domain_is_below("gmail.com", "ward.test"));
	ck_assert(!admin__domain_is_below("test", "ward.test"));
	ck_assert(!admin__domain_is_below("a.ward.test", ""));
}
END_TEST

/* The nearest of our domains above a name, from a loaded list. */
START_TEST(test_domain_parent)
{
	struct admin_domain_ent v[] = {
		{ "b.ward.test", "city", false },
		{ "city.test", "city", false },
		{ "ward.test", "ward", true },
	};
	struct admin a;
	const struct admin_domain_ent *p;

	memset(&a, 0, sizeof a);
	a.domains.loaded = true;
	a.domains.v = v;
	a.domains.n = 3;
	ck_assert_ptr_null(admin__domain_parent(&a, "gmail.com"));
	ck_assert_ptr_null(admin__domain_parent(&a, "ward.test"));
	ck_assert_ptr_null(admin__domain_parent(&a, "test"));
	p = admin__domain_parent(&a, "a.ward.test");
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->name, "ward.test");
	ck_assert(p->in_scope);
	/* Nearest first: b.ward.test is the city's, whatever ward.test is. */
	p = admin__domain_parent(&a, "x.b.ward.test");
	ck_assert_ptr_nonnull(p);
	ck_assert_str_eq(p->name, "b.ward.test");
	ck_assert(!p->in_scope);
	ck_assert_ptr_null(admin__domain_parent(&a, "x.evilward.test"));
}
END_TEST

/* ---------------------------------------------------------- messages */

/*
 * Message scope: by recipients, and by the sender only when it
 * authenticated as a user of the subtree; a forged MAIL FROM of the
 * ward's domain gives nothing.
 */
START_TEST(test_msg_scope)
{
	struct admin_domain_ent v[] = {
		{ "mayor.test", "city", false },
		{ "ward.test", "ward", true },
	};
	struct queue_rcpt to_mayor[] = { { .addr = "mayor@mayor.test" } };
	struct queue_rcpt to_ward[] = { { .addr = "clerk@WARD.test" } };
	struct queue_rcpt to_both[] = { { .addr = "mayor@mayor.test" }, { .addr = "x@ward.test" } };
	struct queue_rcpt to_world[] = { { .addr = "friend@example.org" } };
	struct queue_msg m;
	struct admin a;
	const char *tenant = NULL;

	memset(&a, 0, sizeof a);
	a.domains.loaded = true;
	a.domains.v = v;
	a.domains.n = 2;
	memset(&m, 0, sizeof m);

	/* The forged sender: not the ward's; the refusal names the city. */
	m.sender = "clerk@ward.test";
	m.rcpts = to_mayor;
	m.nrcpts = 1;
	ck_assert(!admin__msg_in_scope(&a, &m, &tenant));
	ck_assert_str_eq(tenant, "city");
	/* Authenticated as someone else's user: still not. */
	m.auth_user = "mayor@mayor.test";
	ck_assert(!admin__msg_in_scope(&a, &m, NULL));
	/* Authenticated as the ward's user: theirs, whoever it goes to. */
	m.auth_user = "clerk@ward.test";
	ck_assert(admin__msg_in_scope(&a, &m, NULL));
	m.rcpts = to_world;
	ck_assert(admin__msg_in_scope(&a, &m, NULL));
	/* By a recipient (any letter case of the domain). */
	m.auth_user = NULL;
	m.sender = "";
	m.rcpts = to_world;
	ck_assert(!admin__msg_in_scope(&a, &m, NULL));
	m.rcpts = to_ward;
	ck_assert(admin__msg_in_scope(&a, &m, NULL));
	m.rcpts = to_both;
	m.nrcpts = 2;
	ck_assert(admin__msg_in_scope(&a, &m, NULL));
	/* Root and the daemon's user see everything. */
	a.super = true;
	m.rcpts = to_mayor;
	m.nrcpts = 1;
	ck_assert(admin__msg_in_scope(&a, &m, NULL));
}
END_TEST

/* ------------------------------------------------------------ routes */

static const struct td_route_case {
	const char *route;
	bool ok;
	const char *why; /* a word of the reason when refused */
} td_route_cases[] = {
	{ "mx", true, NULL },
	{ "smtp:10.1.2.3:25", true, NULL },
	{ "lmtp:10.1.200.1:24", true, NULL },
	{ "smtp:[fd00:1::5]:25", true, NULL },
	{ "smtp:127.0.0.1:2", false, "delegated_route_networks" },
	{ "smtp:10.2.0.1:25", false, "delegated_route_networks" },
	{ "smtp:[::1]:25", false, "delegated_route_networks" },
	{ "smtp:mail.example.org:25", false, "IP address" },
	{ "lmtp:localhost:24", false, "IP address" },
	{ "maildir:/srv/mail/ward", true, NULL },
	{ "maildir:/srv/mail/ward/../../root", false, "maildir_root" },
	{ "maildir:/root/secret", false, "maildir_root" },
	{ "maildir:/srv/mail", false, "maildir_root" },
	{ "lmtp:unix:/run/lmtp/ward.sock", true, NULL },
	{ "lmtp:unix:/run/dovecot/auth", false, "lmtp_socket_dir" },
	{ "lmtp:unix:/run/lmtp/../govrelay/control.sock", false, "lmtp_socket_dir" },
};

static void td_config(struct config *cfg, bool with_keys)
{
	memset(cfg, 0, sizeof *cfg);
	if (!with_keys)
		return;
	cfg->maildir_root = "/srv/mail";
	cfg->lmtp_socket_dir = "/run/lmtp";
	cfg->delegated_route_networks.v = xcalloc(2, sizeof *cfg->delegated_route_networks.v);
	ck_assert_int_eq(cfg_parse_cidr("10.1.0.0/16", &cfg->delegated_route_networks.v[0]), 0);
	ck_assert_int_eq(cfg_parse_cidr("fd00:1::/64", &cfg->delegated_route_networks.v[1]), 0);
	cfg->delegated_route_networks.n = 2;
}

START_TEST(test_route_delegable)
{
	const struct td_route_case *c = &td_route_cases[_i];
	struct config cfg;
	char why[256];
	int rc;

	td_config(&cfg, true);
	rc = admin__route_delegable(&cfg, c->route, why, sizeof why);
	ck_assert_msg((rc == 0) == c->ok, "%s: rc %d (%s)", c->route, rc, why);
	if (!c->ok) {
		ck_assert_int_eq(rc, -EPERM);
		ck_assert_msg(strstr(why, c->why) != NULL, "%s: '%s' lacks '%s'", c->route, why,
		    c->why);
	}
	free(cfg.delegated_route_networks.v);
}
END_TEST

/* Without the keys, a delegated postmaster has mx only. */
START_TEST(test_route_unset_keys)
{
	static const char *const refused[] = { "smtp:10.1.2.3:25", "lmtp:10.1.2.3:24",
		"maildir:/srv/mail/ward", "lmtp:unix:/run/lmtp/ward.sock" };
	struct config cfg;
	char why[256];

	td_config(&cfg, false);
	ck_assert_int_eq(admin__route_delegable(&cfg, "mx", why, sizeof why), 0);
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		ck_assert_int_eq(admin__route_delegable(&cfg, refused[i], why, sizeof why), -EPERM);
		ck_assert_msg(strstr(why, "not set") != NULL, "%s: %s", refused[i], why);
	}
}
END_TEST

/* ------------------------------------------------------------ config */

/* Writes text as dir/govrelay.conf and loads it: cfg_load's result. */
static int td_load(const char *dir, const char *text, struct config **cfg, struct buf *errs)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof path, "%s/govrelay.conf", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	buf_reset(errs);
	*cfg = NULL;
	return cfg_load(path, cfg, errs);
}

/* The three keys: defaults (unset), values, relative paths, FILE:LINE errors. */
START_TEST(test_config_keys)
{
	char dir[64], want[256];
	struct config *cfg;
	struct buf errs;

	snprintf(dir, sizeof dir, "/tmp/test-delegation-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	buf_init(&errs);
	ck_assert_int_eq(td_load(dir, "data_dir = /tmp/x\nlisten = mx 127.0.0.1:2525\n", &cfg,
	    &errs), 0);
	ck_assert_uint_eq(cfg->delegated_route_networks.n, 0);
	ck_assert_ptr_null(cfg->maildir_root);
	ck_assert_ptr_null(cfg->lmtp_socket_dir);
	cfg_unref(cfg);

	ck_assert_int_eq(td_load(dir, "data_dir = /tmp/x\nlisten = mx 127.0.0.1:2525\n"
	    "delegated_route_networks = 10.9.0.0/16, fd00:1::/64\nmaildir_root = mail\n"
	    "lmtp_socket_dir = /run/lmtp\n", &cfg, &errs), 0);
	ck_assert_uint_eq(cfg->delegated_route_networks.n, 2);
	snprintf(want, sizeof want, "%s/mail", dir);
	ck_assert_str_eq(cfg->maildir_root, want);
	ck_assert_str_eq(cfg->lmtp_socket_dir, "/run/lmtp");
	cfg_unref(cfg);

	ck_assert_int_eq(td_load(dir, "data_dir = /tmp/x\nlisten = mx 127.0.0.1:2525\n"
	    "delegated_route_networks = 10.9.0.0/33\n", &cfg, &errs), -EINVAL);
	ck_assert_ptr_null(cfg);
	snprintf(want, sizeof want, "%s/govrelay.conf:3: delegated_route_networks", dir);
	ck_assert_msg(strstr(buf_cstr(&errs), want) != NULL, "%s", buf_cstr(&errs));
	buf_free(&errs);
	snprintf(want, sizeof want, "%s/govrelay.conf", dir);
	unlink(want);
	rmdir(dir);
}
END_TEST

/* ------------------------------------------------------ policy order */

static const struct td_cmp_case {
	const char *key, *a, *b;
	int want; /* -1 a tighter, 0 same, 1 a looser */
} td_cmp_cases[] = {
	{ "max_message_size", "1048576", "10485760", -1 },
	{ "max_message_size", "10485760", "1048576", 1 },
	{ "max_message_size", "1048576", "1048576", 0 },
	{ "max_recipients", "5", "50", -1 },
	{ "max_recipients", "100", "99", 1 },
	{ "messages_per_hour", "10", "100", -1 },
	{ "messages_per_hour", "0", "100", 1 },     /* 0 is unlimited: loosest */
	{ "messages_per_hour", "100", "0", -1 },
	{ "messages_per_hour", "0", "0", 0 },
	{ "allow_external", "no", "yes", -1 },
	{ "allow_external", "yes", "no", 1 },
	{ "allow_external", "no", "no", 0 },
	{ "require_tls_outbound", "yes", "no", -1 },
	{ "require_tls_outbound", "no", "yes", 1 },
	{ "spf_fail_action", "reject", "tag", -1 },
	{ "spf_fail_action", "tag", "reject", 1 },
	{ "spf_fail_action", "tag", "tag", 0 },
	{ "classified_action", "reject", "quarantine", -1 },
	{ "classified_action", "quarantine", "reject", 1 },
	{ "classified_min_level", "mat", "toi-mat", -1 },   /* mat catches the most */
	{ "classified_min_level", "tuyet-mat", "toi-mat", 1 },
	{ "classified_min_level", "toi-mat", "toi-mat", 0 },
	/* Each tenant names its own contact; an ancestor's is not a ceiling. */
	{ "security_contact", "a@city.example", "b@ward.example", 0 },
	{ "security_contact", "none", "b@ward.example", 0 },
	{ "blocked_extensions", "iso", "lnk", 0 },   /* a ward adds to the city's list */
};

START_TEST(test_policy_compare)
{
	const struct td_cmp_case *c = &td_cmp_cases[_i];
	const struct tenancy_policy_key *k = tenancy_policy_key_find(c->key);

	ck_assert_ptr_nonnull(k);
	ck_assert_msg(tenancy_policy_compare(k, c->a, c->b) == c->want, "%s %s vs %s",
	    c->key, c->a, c->b);
}
END_TEST

/* Every key of the table has an order (no key is silently unordered). */
START_TEST(test_policy_every_key_ordered)
{
	for (const struct tenancy_policy_key *k = tenancy_policy_keys; k->name != NULL; k++) {
		char a[TENANCY_POLICY_VALUE_MAX + 1], b[TENANCY_POLICY_VALUE_MAX + 1], why[256];
		const char *lo = k->type == TENANCY_POLICY_BOOL ? "no" :
		    k->type == TENANCY_POLICY_WORD ? k->words[0] :
		    k->type == TENANCY_POLICY_ADDRESS ? "a@city.example" : "1";
		const char *hi = k->type == TENANCY_POLICY_BOOL ? "yes" :
		    k->type == TENANCY_POLICY_WORD ? k->words[1] :
		    k->type == TENANCY_POLICY_ADDRESS ? "b@city.example" : "2";

		ck_assert_int_eq(tenancy_policy_normalize(k, lo, a, sizeof a, why, sizeof why), 0);
		ck_assert_int_eq(tenancy_policy_normalize(k, hi, b, sizeof b, why, sizeof why), 0);
		/* One of the two is tighter: an ordered key answers -1 and 1. */
		ck_assert_msg(tenancy_policy_compare(k, a, b) == -tenancy_policy_compare(k, b, a),
		    "key %s has no order in tenancy_policy_orders", k->name);
	}
}
END_TEST

/* ------------------------------------------------------ policy store */

struct td_env {
	char dir[64];
	struct queue_store *store;
};

static int td_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void td_tenant(struct queue_txn *t, const char *id, const char *parent)
{
	struct queue_tenant rec = { (char *)id, (char *)id, (char *)parent, 1000 };
	char why[256];

	ck_assert_msg(queue_tenant_put(t, &rec, why, sizeof why) == 0, "%s: %s", id, why);
}

static void td_effective(struct queue_txn *t, const char *tenant, const char *key,
    const char *value, const char *source)
{
	char *v = NULL, *s = NULL;

	ck_assert_int_eq(queue_policy_effective(t, tenant, key, &v, &s), 0);
	ck_assert_msg(strcmp(v, value) == 0 && strcmp(s, source) == 0,
	    "%s %s: got %s from %s, expected %s from %s", tenant, key, v, s, value, source);
	free(v);
	free(s);
}

/* A fresh store with city -> dept -> ward, in a write transaction. */
static struct queue_txn *td_env_open(struct td_env *e)
{
	struct queue_txn *t;

	snprintf(e->dir, sizeof e->dir, "/tmp/test-delegation-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(e->dir));
	ck_assert_int_eq(queue_store_open(e->dir, 0, false, &e->store), 0);
	ck_assert_int_eq(queue_txn_begin(e->store, true, &t), 0);
	td_tenant(t, "city", NULL);
	td_tenant(t, "dept", "city");
	td_tenant(t, "ward", "dept");
	return t;
}

static void td_env_close(struct td_env *e, struct queue_txn *t)
{
	ck_assert_int_eq(queue_txn_commit(t), 0);
	queue_store_close(e->store);
	nftw(e->dir, td_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

START_TEST(test_policy_ceiling_store)
{
	struct td_env e;
	struct queue_txn *t;
	char *v = NULL, *s = NULL, why[128];

	t = td_env_open(&e);

	/* No ancestor sets it: no ceiling (the builtin is no decision). */
	ck_assert_int_eq(queue_policy_ceiling(t, "ward", "allow_external", &v, &s), -ENOENT);
	ck_assert_int_eq(queue_policy_ceiling(t, "city", "allow_external", &v, &s), -ENOENT);
	ck_assert_ptr_null(v);

	/* ward says yes while nothing above forbids it: not an exemption ... */
	ck_assert_int_eq(queue_policy_set(t, "ward", "allow_external", "yes"), 0);
	td_effective(t, "ward", "allow_external", "yes", "ward");
	/* ... so when the city forbids it later, the city's no wins at ward. */
	ck_assert_int_eq(queue_policy_set(t, "city", "allow_external", "no"), 0);
	td_effective(t, "ward", "allow_external", "no", "city");
	td_effective(t, "dept", "allow_external", "no", "city");
	ck_assert_int_eq(queue_policy_ceiling(t, "ward", "allow_external", &v, &s), 0);
	ck_assert_str_eq(v, "no");
	ck_assert_str_eq(s, "city");
	free(v);
	free(s);

	/* The store's owner sets yes again: looser than the ceiling, an exemption. */
	ck_assert_int_eq(queue_policy_set(t, "ward", "allow_external", "yes"), 0);
	td_effective(t, "ward", "allow_external", "yes", "ward");
	/* Unset takes the mark too: ward inherits the ceiling again. */
	ck_assert_int_eq(queue_policy_set(t, "ward", "allow_external", NULL), 0);
	td_effective(t, "ward", "allow_external", "no", "city");
	ck_assert_int_eq(queue_policy_set(t, "ward", "allow_external", "no"), 0);
	td_effective(t, "ward", "allow_external", "no", "ward");

	/* Numbers: the tighter of the chain wins; an exemption stops the walk. */
	ck_assert_int_eq(queue_policy_set(t, "ward", "max_recipients", "40"), 0);
	ck_assert_int_eq(queue_policy_set(t, "city", "max_recipients", "20"), 0);
	td_effective(t, "ward", "max_recipients", "20", "city");
	ck_assert_int_eq(queue_policy_set(t, "dept", "max_recipients", "30"), 0); /* exempt */
	td_effective(t, "dept", "max_recipients", "30", "dept");
	td_effective(t, "ward", "max_recipients", "30", "dept");
	ck_assert_int_eq(queue_policy_set(t, "ward", "max_recipients", "5"), 0);
	td_effective(t, "ward", "max_recipients", "5", "ward");

	/* messages_per_hour: 0 (unlimited) below a limit is looser. */
	ck_assert_int_eq(queue_policy_set(t, "dept", "messages_per_hour", "0"), 0);
	ck_assert_int_eq(queue_policy_set(t, "city", "messages_per_hour", "100"), 0);
	td_effective(t, "dept", "messages_per_hour", "100", "city");

	/* tenant remove takes the settings and their marks. */
	ck_assert_int_eq(queue_policy_set(t, "ward", "allow_external", "yes"), 0); /* exempt */
	td_effective(t, "ward", "allow_external", "yes", "ward");
	ck_assert_int_eq(queue_tenant_delete(t, "ward", why, sizeof why), 0);
	td_tenant(t, "ward", "dept");
	td_effective(t, "ward", "allow_external", "no", "city");
	td_env_close(&e, t);
}
END_TEST

/*
 * security_contact and blocked_extensions hold at every level at once:
 * what policy show says is what the content check applies, every
 * setting from the tenant up.
 */
START_TEST(test_policy_gathered_store)
{
	struct td_env e;
	struct queue_txn *t;

	t = td_env_open(&e);

	td_effective(t, "ward", "blocked_extensions", "none", "default");
	ck_assert_int_eq(queue_policy_set(t, "city", "blocked_extensions", "docm,iso"), 0);
	td_effective(t, "ward", "blocked_extensions", "docm,iso", "city");
	/* The ward's own list adds to the city's, sorted, each once. */
	ck_assert_int_eq(queue_policy_set(t, "ward", "blocked_extensions", "img,iso"), 0);
	td_effective(t, "ward", "blocked_extensions", "docm,img,iso", "ward,city");
	td_effective(t, "dept", "blocked_extensions", "docm,iso", "city");
	/* none at the ward takes nothing from the city. */
	ck_assert_int_eq(queue_policy_set(t, "ward", "blocked_extensions", "none"), 0);
	td_effective(t, "ward", "blocked_extensions", "docm,iso", "city");

	ck_assert_int_eq(queue_policy_set(t, "city", "security_contact", "soc@city.example"), 0);
	ck_assert_int_eq(queue_policy_set(t, "ward", "security_contact", "it@ward.example"), 0);
	ck_assert_int_eq(queue_policy_set(t, "dept", "security_contact", "soc@city.example"), 0);
	td_effective(t, "ward", "security_contact", "it@ward.example, soc@city.example",
	    "ward,dept,city");
	td_effective(t, "city", "security_contact", "soc@city.example", "city");
	td_env_close(&e, t);
}
END_TEST

/* ---------------------------------------------------------------- main */

static Suite *td_suite(void)
{
	Suite *s = suite_create("delegation");
	TCase *tc = tcase_create("rules");

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_path_below, 0,
	    (int)(sizeof td_path_cases / sizeof td_path_cases[0]));
	tcase_add_test(tc, test_domain_below);
	tcase_add_test(tc, test_domain_parent);
	tcase_add_test(tc, test_msg_scope);
	tcase_add_loop_test(tc, test_route_delegable, 0,
	    (int)(sizeof td_route_cases / sizeof td_route_cases[0]));
	tcase_add_test(tc, test_route_unset_keys);
	tcase_add_test(tc, test_config_keys);
	tcase_add_loop_test(tc, test_policy_compare, 0,
	    (int)(sizeof td_cmp_cases / sizeof td_cmp_cases[0]));
	tcase_add_test(tc, test_policy_every_key_ordered);
	tcase_add_test(tc, test_policy_ceiling_store);
	tcase_add_test(tc, test_policy_gathered_store);
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
