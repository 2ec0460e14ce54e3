/*
 * test_maildir: unit tests of Maildir delivery (relay/maildir.c) with a
 * real store in a fresh mkdtemp directory and a real libuv loop: the
 * exact file content (Return-Path, Delivered-To, CRLF -> LF across chunk
 * boundaries, table-driven), one file per mailbox for several
 * recipients, the folder layout and modes, unsafe addresses refused
 * (table-driven) without anything created outside the root, a symbolic
 * link planted in the root not followed, a read-only root and a missing
 * body chunk as temporary failures that leave no file behind, a missing
 * root created, and argument checks; with maildir_root set, folders
 * created beneath it, and every escape (outside, "..", a link as DIR or
 * on the way) a temporary failure with nothing written outside (under
 * valgrind, which has no openat2, the same cases take the O_NOFOLLOW
 * fallback).
 *
 * Every test closes its loop and asserts uv_loop_close() == 0.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <check.h>
#include <uv.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "relay/maildir.h"

/* ------------------------------------------------------------ helpers */

struct tm_env {
	char base[64];
	char root[128];               /* base/mail: the maildir:DIR */
	char storedir[128];
	struct queue_store *store;
	struct queue_msg msg;
	uv_loop_t loop;
	int ndone;
};

static int tm_rm_entry(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void tm_setup(struct tm_env *e)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->base, sizeof(e->base), "/tmp/test-maildir-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(e->base));
	/* Others may traverse it: the read-only case runs as nobody. */
	ck_assert_int_eq(chmod(e->base, 0755), 0);
	snprintf(e->root, sizeof(e->root), "%s/mail", e->base);
	snprintf(e->storedir, sizeof(e->storedir), "%s/store", e->base);
	ck_assert_int_eq(mkdir(e->root, 0700), 0);
	ck_assert_int_eq(queue_store_open(e->storedir, 0, false, &e->store), 0);
	e->msg.id = queue_next_id(e->store);
	e->msg.sender = "a@example.org";
	ck_assert_int_eq(uv_loop_init(&e->loop), 0);
}

static void tm_teardown(struct tm_env *e)
{
	ck_assert_int_eq(uv_loop_close(&e->loop), 0);
	queue_store_close(e->store);
	nftw(e->base, tm_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Stores the body chunks and sets nchunks. */
static void tm_body(struct tm_env *e, const char *const *chunks, size_t n)
{
	struct queue_txn *t;
	size_t i;

	ck_assert_int_eq(queue_txn_begin(e->store, true, &t), 0);
	for (i = 0; i < n; i++)
		ck_assert_int_eq(queue_body_put(t, e->msg.id, (uint32_t)i, chunks[i],
		    strlen(chunks[i])), 0);
	ck_assert_int_eq(queue_txn_commit(t), 0);
	e->msg.nchunks = (uint32_t)n;
}

static void tm_done(void *arg)
{
	struct tm_env *e = arg;

	e->ndone++;
}

/* Delivers and runs the loop until the completion; asserts it ran once. */
static void tm_deliver(struct tm_env *e, const char *dir, const char *const *rcpts,
    size_t n, struct maildir_result *res)
{
	e->ndone = 0;
	ck_assert_int_eq(maildir_deliver(&e->loop, e->store, dir, &e->msg, rcpts, n, res,
	    tm_done, e), 0);
	/* Never from inside the call. */
	ck_assert_int_eq(e->ndone, 0);
	ck_assert_int_eq(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(e->ndone, 1);
}

/* Names in path other than . and ..; returns how many, first in *first. */
static size_t tm_list(const char *path, char *first, size_t firstlen)
{
	DIR *d = opendir(path);
	struct dirent *de;
	size_t n = 0;

	ck_assert_msg(d != NULL, "opendir %s: %s", path, strerror(errno));
	if (first != NULL)
		first[0] = '\0';
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n++ == 0 && first != NULL)
			snprintf(first, firstlen, "%s", de->d_name);
	}
	closedir(d);
	return n;
}

/* The single file in ROOT/mailbox/new; its content into out. */
static void tm_read_new(struct tm_env *e, const char *mailbox, struct buf *out,
    char *name, size_t namelen)
{
	char path[512], file[1024], data[4096];
	ssize_t r;
	int fd;

	snprintf(path, sizeof(path), "%s/%s/new", e->root, mailbox);
	ck_assert_uint_eq(tm_list(path, name, namelen), 1);
	snprintf(file, sizeof(file), "%s/%s", path, name);
	fd = open(file, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	while ((r = read(fd, data, sizeof(data))) > 0)
		buf_append(out, data, (size_t)r);
	ck_assert_int_eq(r, 0);
	close(fd);
}

static mode_t tm_mode(const char *path)
{
	struct stat st;

	ck_assert_int_eq(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

/* ------------------------------------------------------------ content */

static const struct tm_conv_case {
	const char *label;
	const char *chunks[4];
	const char *body;             /* expected after the two headers */
} tm_conv_cases[] = {
	{ "CRLF split across chunks", { "Subject: hi\r\nFrom: a@example.org\r",
	    "\n\r\nline one\r\n", "last\r\n" },
	    "Subject: hi\nFrom: a@example.org\n\nline one\nlast\n" },
	{ "bare CR kept", { "S: x\r\n\r\nbare\rcr\r\n" }, "S: x\n\nbare\rcr\n" },
	{ "bare LF kept", { "S: x\r\n\r\na\nb\r\n" }, "S: x\n\na\nb\n" },
	{ "CR CR LF", { "S: x\r\n\r\na\r\r\n" }, "S: x\n\na\r\n" },
	{ "CR at the very end kept", { "S: x\r\n\r\nb\r" }, "S: x\n\nb\r" },
	{ "CR ending a chunk, no LF after", { "S: x\r\n\r\nb\r", "c\r\n" },
	    "S: x\n\nb\rc\n" },
	{ "no final line end", { "S: x\r\n\r\nend" }, "S: x\n\nend" },
	{ "dot lines as stored", { "S: x\r\n\r\n.\r\n..x\r\n" }, "S: x\n\n.\n..x\n" },
};

START_TEST(test_content)
{
	const struct tm_conv_case *tc = &tm_conv_cases[_i];
	const char *rcpts[] = { "Bob@Example.NET" };
	struct maildir_result res[1];
	char name[256], qid[QUEUE_ID_TEXT_LEN + 1], want_name[64], path[512];
	struct tm_env e;
	struct buf got, want;
	size_t n = 0;

	while (n < 4 && tc->chunks[n] != NULL)
		n++;
	tm_setup(&e);
	tm_body(&e, tc->chunks, n);
	tm_deliver(&e, e.root, rcpts, 1, res);
	ck_assert_msg(res[0].outcome == MAILDIR_OK, "%s: %s", tc->label, res[0].text);
	ck_assert_str_eq(res[0].dsn, "2.0.0");
	ck_assert_int_eq(res[0].err, 0);

	/* The folder is the lowercased address; the text names the file. */
	buf_init(&got);
	tm_read_new(&e, "bob@example.net", &got, name, sizeof(name));
	buf_init(&want);
	buf_printf(&want, "Return-Path: <a@example.org>\nDelivered-To: Bob@Example.NET\n%s",
	    tc->body);
	ck_assert_msg(got.len == want.len && memcmp(got.data, want.data, got.len) == 0,
	    "%s: got [%s] want [%s]", tc->label, buf_cstr(&got), buf_cstr(&want));
	snprintf(path, sizeof(path), "delivered to maildir bob@example.net/new/%s", name);
	ck_assert_str_eq(res[0].text, path);

	/* SECONDS.MusecPpidQn_QUEUEID.HOST: unique, with the queue id. */
	queue_id_format(e.msg.id, qid);
	snprintf(want_name, sizeof(want_name), "_%s.", qid);
	ck_assert_msg(strstr(name, want_name) != NULL, "%s: name %s", tc->label, name);
	ck_assert_ptr_nonnull(strstr(name, ".M"));
	ck_assert_ptr_null(strchr(name, ':'));

	/* Layout: tmp/ left empty, cur/ made; 0700 folders, a 0600 file. */
	snprintf(path, sizeof(path), "%s/bob@example.net/tmp", e.root);
	ck_assert_uint_eq(tm_list(path, NULL, 0), 0);
	ck_assert_uint_eq(tm_mode(path), 0700);
	snprintf(path, sizeof(path), "%s/bob@example.net/cur", e.root);
	ck_assert_uint_eq(tm_mode(path), 0700);
	snprintf(path, sizeof(path), "%s/bob@example.net", e.root);
	ck_assert_uint_eq(tm_mode(path), 0700);
	snprintf(path, sizeof(path), "%s/bob@example.net/new/%s", e.root, name);
	ck_assert_uint_eq(tm_mode(path), 0600);

	buf_free(&got);
	buf_free(&want);
	tm_teardown(&e);
}
END_TEST

/* Several recipients: one file per mailbox, each with its Delivered-To. */
START_TEST(test_multiple_recipients)
{
	static const char *const chunks[] = { "Subject: all\r\n\r\nhello\r\n" };
	const char *rcpts[] = { "one@example.net", "Two@Example.NET", "three@other.test" };
	static const char *const boxes[] = { "one@example.net", "two@example.net",
	    "three@other.test" };
	struct maildir_result res[3];
	struct tm_env e;
	char name[256];
	size_t i;

	tm_setup(&e);
	tm_body(&e, chunks, 1);
	tm_deliver(&e, e.root, rcpts, 3, res);
	ck_assert_uint_eq(tm_list(e.root, NULL, 0), 3);
	for (i = 0; i < 3; i++) {
		struct buf got, want;

		ck_assert_msg(res[i].outcome == MAILDIR_OK, "%s: %s", rcpts[i], res[i].text);
		buf_init(&got);
		buf_init(&want);
		tm_read_new(&e, boxes[i], &got, name, sizeof(name));
		buf_printf(&want, "Return-Path: <a@example.org>\nDelivered-To: %s\n"
		    "Subject: all\n\nhello\n", rcpts[i]);
		ck_assert_str_eq(buf_cstr(&got), buf_cstr(&want));
		buf_free(&got);
		buf_free(&want);
	}

	/* A second delivery to the same mailbox is a second, distinct file. */
	tm_deliver(&e, e.root, rcpts, 1, res);
	ck_assert_int_eq(res[0].outcome, MAILDIR_OK);
	{
		char path[512];

		snprintf(path, sizeof(path), "%s/one@example.net/new", e.root);
		ck_assert_uint_eq(tm_list(path, NULL, 0), 2);
	}
	tm_teardown(&e);
}
END_TEST

/* The null sender is Return-Path: <>. */
START_TEST(test_null_sender)
{
	static const char *const chunks[] = { "S: x\r\n\r\nb\r\n" };
	const char *rcpts[] = { "bob@example.net" };
	struct maildir_result res[1];
	struct tm_env e;
	struct buf got;
	char name[256];

	tm_setup(&e);
	e.msg.sender = "";
	tm_body(&e, chunks, 1);
	tm_deliver(&e, e.root, rcpts, 1, res);
	ck_assert_int_eq(res[0].outcome, MAILDIR_OK);
	buf_init(&got);
	tm_read_new(&e, "bob@example.net", &got, name, sizeof(name));
	ck_assert_str_eq(buf_cstr(&got),
	    "Return-Path: <>\nDelivered-To: bob@example.net\nS: x\n\nb\n");
	buf_free(&got);
	tm_teardown(&e);
}
END_TEST

/* ------------------------------------------------------------- unsafe */

static const struct tm_name_case {
	const char *label;
	const char *addr;
	bool safe;
} tm_name_cases[] = {
	{ "parent directory", "../x", false },
	{ "dot dot alone", "..", false },
	{ "dot alone", ".", false },
	{ "slash", "a/b", false },
	{ "absolute path", "/etc/x@example.net", false },
	{ "leading dot (hidden, Maildir++ folder)", ".hidden", false },
	{ "control byte", "a\x01" "b@example.net", false },
	{ "newline (header injection)", "a\nX-Evil: 1@example.net", false },
	{ "carriage return", "a\rb@example.net", false },
	{ "DEL", "a\x7f@example.net", false },
	{ "backslash", "a\\b@example.net", false },
	{ "empty", "", false },
	{ "plain address", "bob@example.net", true },
	{ "dots inside", "a..b@example.net", true },
	{ "UTF-8", "\xc3\xbc" "ser@example.net", true },
	{ "plus and quotes", "\"a+b\"@example.net", true },
	{ "no domain (postmaster)", "postmaster", true },
};

START_TEST(test_unsafe_names)
{
	const struct tm_name_case *tc = &tm_name_cases[_i];
	const char *rcpts[2];
	struct maildir_result res[2];
	static const char *const chunks[] = { "S: x\r\n\r\nb\r\n" };
	struct tm_env e;
	char path[512];

	ck_assert_msg(maildir_is_safe_name(tc->addr) == tc->safe, "%s", tc->label);
	tm_setup(&e);
	tm_body(&e, chunks, 1);
	rcpts[0] = tc->addr;
	rcpts[1] = "ok@example.net";
	tm_deliver(&e, e.root, rcpts, 2, res);
	/* The other recipient of the same message is delivered regardless. */
	ck_assert_int_eq(res[1].outcome, MAILDIR_OK);
	if (tc->safe) {
		ck_assert_msg(res[0].outcome == MAILDIR_OK, "%s: %s", tc->label, res[0].text);
		ck_assert_uint_eq(tm_list(e.root, NULL, 0), 2);
	} else {
		ck_assert_msg(res[0].outcome == MAILDIR_PERM, "%s: %s", tc->label,
		    maildir_outcome_name(res[0].outcome));
		ck_assert_str_eq(res[0].dsn, "5.1.3");
		ck_assert_ptr_nonnull(strstr(res[0].text, "cannot be used as a maildir folder"));
		/* No control byte reaches the text (it goes to logs and DSNs). */
		for (const char *p = res[0].text; *p != '\0'; p++)
			ck_assert((unsigned char)*p >= 0x20 && *p != 0x7f);
		/* Nothing but the good mailbox in the root, nothing beside it. */
		ck_assert_uint_eq(tm_list(e.root, NULL, 0), 1);
		ck_assert_uint_eq(tm_list(e.base, NULL, 0), 2);
	}
	snprintf(path, sizeof(path), "%s/x", e.base);
	ck_assert_int_eq(access(path, F_OK), -1);
	tm_teardown(&e);
}
END_TEST

/* Over-long names (beyond NAME_MAX) cannot be one path component. */
START_TEST(test_long_name)
{
	char addr[300];

	memset(addr, 'a', sizeof(addr) - 1);
	addr[sizeof(addr) - 1] = '\0';
	ck_assert(!maildir_is_safe_name(addr));
	addr[256] = '\0';     /* NAME_MAX + 1 bytes */
	ck_assert(!maildir_is_safe_name(addr));
	addr[255] = '\0';     /* NAME_MAX bytes: the longest file name */
	ck_assert(maildir_is_safe_name(addr));
	ck_assert(!maildir_is_safe_name(NULL));
}
END_TEST

/* A symbolic link planted in the root is not followed out of it. */
START_TEST(test_symlink_not_followed)
{
	static const char *const chunks[] = { "S: x\r\n\r\nb\r\n" };
	const char *rcpts[] = { "evil@example.net" };
	struct maildir_result res[1];
	char outside[256], link[256];
	struct tm_env e;

	tm_setup(&e);
	tm_body(&e, chunks, 1);
	snprintf(outside, sizeof(outside), "%s/outside", e.base);
	ck_assert_int_eq(mkdir(outside, 0700), 0);
	snprintf(link, sizeof(link), "%s/evil@example.net", e.root);
	ck_assert_int_eq(symlink(outside, link), 0);
	tm_deliver(&e, e.root, rcpts, 1, res);
	ck_assert_int_eq(res[0].outcome, MAILDIR_TEMP);
	ck_assert_str_eq(res[0].dsn, "4.3.0");
	ck_assert_uint_eq(tm_list(outside, NULL, 0), 0);
	tm_teardown(&e);
}
END_TEST

/* ------------------------------------------------------- maildir_root */

/* Beneath maildir_root: DIR and its missing folders are created. */
START_TEST(test_root_beneath)
{
	static const char *const chunks[] = { "S: x\r\n\r\nb\r\n" };
	const char *rcpts[] = { "a@ward.example" };
	struct maildir_result res[1];
	char dir[256], box[512];
	struct tm_env e;

	tm_setup(&e);
	tm_body(&e, chunks, 1);
	maildir_set_root(e.base);
	tm_deliver(&e, e.root, rcpts, 1, res);
	ck_assert_int_eq(res[0].outcome, MAILDIR_OK);
	snprintf(dir, sizeof(dir), "%s/ward/deep", e.root);
	tm_deliver(&e, dir, rcpts, 1, res);
	ck_assert_int_eq(res[0].outcome, MAILDIR_OK);
	snprintf(box, sizeof(box), "%s/a@ward.example/new", dir);
	ck_assert_uint_eq(tm_list(box, NULL, 0), 1);
	/* A route of root's may name the root itself (with a final slash too). */
	maildir_set_root(e.root);
	tm_deliver(&e, e.root, rcpts, 1, res);
	ck_assert_int_eq(res[0].outcome, MAILDIR_OK);
	snprintf(dir, sizeof(dir), "%s/", e.root);
	tm_deliver(&e, dir, rcpts, 1, res);
	ck_assert_int_eq(res[0].outcome, MAILDIR_OK);
	snprintf(box, sizeof(box), "%s/a@ward.example/new", e.root);
	ck_assert_uint_eq(tm_list(box, NULL, 0), 3);
	maildir_set_root(NULL);
	tm_teardown(&e);
}
END_TEST

/*
 * Outside maildir_root, a ".." on the way, a link planted as DIR or as a
 * folder on the way to it: temporary, and nothing written outside.
 */
static const char *const tm_escape_cases[] = {
	"/outside",          /* not below the root at all */
	"/mail/../outside",  /* lexically escaping */
	"/mail/link",        /* DIR is a link to outside */
	"/mail/link/sub",    /* a link on the way */
	"/mail/real/link2",  /* a link deeper down */
};

START_TEST(test_root_escape)
{
	static const char *const chunks[] = { "S: x\r\n\r\nb\r\n" };
	const char *rcpts[] = { "a@ward.example" };
	struct maildir_result res[1];
	char outside[256], link[256], dir[256];
	struct tm_env e;

	tm_setup(&e);
	tm_body(&e, chunks, 1);
	snprintf(outside, sizeof(outside), "%s/outside", e.base);
	ck_assert_int_eq(mkdir(outside, 0700), 0);
	snprintf(link, sizeof(link), "%s/link", e.root);
	ck_assert_int_eq(symlink(outside, link), 0);
	snprintf(dir, sizeof(dir), "%s/real", e.root);
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	snprintf(link, sizeof(link), "%s/real/link2", e.root);
	ck_assert_int_eq(symlink(outside, link), 0);
	maildir_set_root(e.root);
	snprintf(dir, sizeof(dir), "%s%s", e.base, tm_escape_cases[_i]);
	tm_deliver(&e, dir, rcpts, 1, res);
	ck_assert_msg(res[0].outcome == MAILDIR_TEMP, "%s: %s", dir,
	    maildir_outcome_name(res[0].outcome));
	ck_assert_str_eq(res[0].dsn, "4.3.0");
	ck_assert_msg(strstr(res[0].text, "maildir_root") != NULL, "%s", res[0].text);
	ck_assert_uint_eq(tm_list(outside, NULL, 0), 0);
	maildir_set_root(NULL);
	tm_teardown(&e);
}
END_TEST

/* ---------------------------------------------------------- temporary */

/*
 * A root we cannot write to: temporary, with the errno text. As root
 * (CAP_DAC_OVERRIDE ignores modes) the delivery runs with the effective
 * uid of nobody; glibc applies seteuid to every thread, the threadpool's
 * included.
 */
START_TEST(test_readonly_root)
{
	static const char *const chunks[] = { "S: x\r\n\r\nb\r\n" };
	const char *rcpts[] = { "bob@example.net", "carol@example.net" };
	struct maildir_result res[2];
	struct tm_env e;
	bool was_root = geteuid() == 0;
	size_t i;

	tm_setup(&e);
	tm_body(&e, chunks, 1);
	ck_assert_int_eq(chmod(e.root, 0555), 0);
	if (was_root)
		ck_assert_int_eq(seteuid(65534), 0);
	tm_deliver(&e, e.root, rcpts, 2, res);
	if (was_root)
		ck_assert_int_eq(seteuid(0), 0);
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(res[i].outcome, MAILDIR_TEMP);
		ck_assert_str_eq(res[i].dsn, "4.3.0");
		ck_assert_int_eq(res[i].err, -EACCES);
		ck_assert_msg(strstr(res[i].text, strerror(EACCES)) != NULL, "%s", res[i].text);
		ck_assert_ptr_nonnull(strstr(res[i].text, e.root));
	}
	ck_assert_int_eq(chmod(e.root, 0700), 0);
	ck_assert_uint_eq(tm_list(e.root, NULL, 0), 0);
	tm_teardown(&e);
}
END_TEST

/* A body chunk gone (message deleted meanwhile): temporary, no file left. */
START_TEST(test_missing_chunk)
{
	static const char *const chunks[] = { "S: x\r\n\r\n", "b\r\n" };
	const char *rcpts[] = { "bob@example.net" };
	struct maildir_result res[1];
	struct tm_env e;
	char path[512];

	tm_setup(&e);
	tm_body(&e, chunks, 2);
	e.msg.nchunks = 3;
	tm_deliver(&e, e.root, rcpts, 1, res);
	ck_assert_int_eq(res[0].outcome, MAILDIR_TEMP);
	ck_assert_str_eq(res[0].dsn, "4.3.0");
	ck_assert_int_eq(res[0].err, -ENOENT);
	ck_assert_ptr_nonnull(strstr(res[0].text, "cannot read the message from the queue"));
	snprintf(path, sizeof(path), "%s/bob@example.net/tmp", e.root);
	ck_assert_uint_eq(tm_list(path, NULL, 0), 0);
	snprintf(path, sizeof(path), "%s/bob@example.net/new", e.root);
	ck_assert_uint_eq(tm_list(path, NULL, 0), 0);
	tm_teardown(&e);
}
END_TEST

/* A mailbox name taken by a plain file: temporary (an admin must look). */
START_TEST(test_mailbox_is_file)
{
	static const char *const chunks[] = { "S: x\r\n\r\nb\r\n" };
	const char *rcpts[] = { "bob@example.net" };
	struct maildir_result res[1];
	struct tm_env e;
	char path[512];
	int fd;

	tm_setup(&e);
	tm_body(&e, chunks, 1);
	snprintf(path, sizeof(path), "%s/bob@example.net", e.root);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	tm_deliver(&e, e.root, rcpts, 1, res);
	ck_assert_int_eq(res[0].outcome, MAILDIR_TEMP);
	ck_assert_int_eq(res[0].err, -ENOTDIR);
	tm_teardown(&e);
}
END_TEST

/* ------------------------------------------------------------- misc */

/* An absent root is created (one level), 0700. */
START_TEST(test_root_created)
{
	static const char *const chunks[] = { "S: x\r\n\r\nb\r\n" };
	const char *rcpts[] = { "bob@example.net" };
	struct maildir_result res[1];
	struct tm_env e;
	char root[256];

	tm_setup(&e);
	tm_body(&e, chunks, 1);
	snprintf(root, sizeof(root), "%s/fresh", e.base);
	tm_deliver(&e, root, rcpts, 1, res);
	ck_assert_msg(res[0].outcome == MAILDIR_OK, "%s", res[0].text);
	ck_assert_uint_eq(tm_mode(root), 0700);
	ck_assert_uint_eq(tm_list(root, NULL, 0), 1);
	tm_teardown(&e);
}
END_TEST

START_TEST(test_bad_arguments)
{
	const char *rcpts[] = { "bob@example.net" };
	struct maildir_result res[1];
	struct tm_env e;

	tm_setup(&e);
	e.ndone = 0;
	ck_assert_int_eq(maildir_deliver(&e.loop, e.store, "relative/dir", &e.msg, rcpts, 1,
	    res, tm_done, &e), -EINVAL);
	ck_assert_int_eq(maildir_deliver(&e.loop, e.store, e.root, &e.msg, rcpts, 0,
	    res, tm_done, &e), -EINVAL);
	ck_assert_int_eq(maildir_deliver(&e.loop, e.store, e.root, NULL, rcpts, 1,
	    res, tm_done, &e), -EINVAL);
	ck_assert_int_eq(uv_run(&e.loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(e.ndone, 0);
	ck_assert_str_eq(maildir_outcome_name(MAILDIR_PERM), "permanent");
	tm_teardown(&e);
}
END_TEST

/* ---------------------------------------------------------------- main */

static Suite *tm_suite(void)
{
	Suite *s = suite_create("maildir");
	TCase *tc = tcase_create("deliver");

	tcase_set_timeout(tc, 10);
	tcase_add_loop_test(tc, test_content, 0,
	    (int)(sizeof(tm_conv_cases) / sizeof(tm_conv_cases[0])));
	tcase_add_test(tc, test_multiple_recipients);
	tcase_add_test(tc, test_null_sender);
	tcase_add_loop_test(tc, test_unsafe_names, 0,
	    (int)(sizeof(tm_name_cases) / sizeof(tm_name_cases[0])));
	tcase_add_test(tc, test_long_name);
	tcase_add_test(tc, test_symlink_not_followed);
	tcase_add_test(tc, test_readonly_root);
	tcase_add_test(tc, test_missing_chunk);
	tcase_add_test(tc, test_mailbox_is_file);
	tcase_add_test(tc, test_root_created);
	tcase_add_test(tc, test_bad_arguments);
	tcase_add_test(tc, test_root_beneath);
	tcase_add_loop_test(tc, test_root_escape, 0,
	    (int)(sizeof(tm_escape_cases) / sizeof(tm_escape_cases[0])));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tm_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
