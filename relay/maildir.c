/*
 * maildir: local delivery of one message to Maildir folders (the route
 * "maildir:DIR"), following the delivery protocol of
 * https://cr.yp.to/proto/maildir.html: create a file with a unique name
 * in tmp/, write and fsync it, link it into new/, remove the tmp/ name.
 * We also fsync new/ (and any directory we created, and its parent) so a
 * crash after the completion cannot lose the entry: durability before
 * the recipient is reported delivered, as for the queue itself.
 *
 * The file holds "Return-Path: <sender>" and "Delivered-To: address"
 * (what Postfix's local(8) and Dovecot's LDA prepend), then the stored
 * message with every CRLF turned into LF: a Maildir holds UNIX line ends,
 * and MUAs and Dovecot expect them. A bare CR or bare LF is kept as it
 * is (the stored message is what the client sent).
 *
 * Folders: DIR/<address lowercased>. The mapping is one path component,
 * never a path: see maildir_is_safe_name for what is refused. Every
 * directory below DIR is opened relative to its parent's descriptor with
 * O_NOFOLLOW, so a symbolic link planted inside DIR is not followed out
 * of it. The unique name is SECONDS.MusecPpidQcounter_QUEUEID.HOST, with
 * '/' and ':' in the host name written as \057 and \072 (the spec).
 *
 * maildir_root (maildir_set_root): when configured, DIR itself must lie
 * beneath it and is opened with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS), or component by component with O_NOFOLLOW when
 * the kernel has no openat2; a DIR outside it or a link on the way is a
 * temporary failure and nothing is written.
 *
 * Entry points: maildir_deliver, maildir_is_safe_name,
 * maildir_outcome_name, maildir_set_root.
 *
 * OWNERSHIP: a job copies what it needs from the caller's arguments
 * (dir, recipients, and id, sender and nchunks of the message); the
 * results array is the caller's and is written only by the job until the
 * completion runs. The job frees itself after the completion.
 *
 * THREADS: maildir_deliver and the completion on the loop thread; all
 * file I/O and the body reads (short read transactions, fine on any
 * thread since the store is opened with MDB_NOTLS) in maildir_work on a
 * threadpool thread. The only shared state is the delivery counter, an
 * atomic.
 *
 * ERRORS: maildir_deliver returns -EINVAL for unusable arguments. Per
 * recipient: an unsafe address is permanent (5.1.3); every file system
 * or store error is temporary (4.3.0, EDQUOT 4.2.2), with the errno text
 * and the step that failed. Nothing is logged here; the caller logs the
 * outcome with its context.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <linux/openat2.h>

#include "common/buf.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "relay/maildir.h"

/* A host name in the unique name: 255 bytes, each escaped to 4 at worst. */
#define MAILDIR_HOST_MAX (255 * 4 + 1)

struct maildir_job {
	uv_work_t work;
	struct queue_store *store;
	char *dir;
	char *root; /* maildir_root when set, else NULL */
	uint64_t id;
	char qid[QUEUE_ID_TEXT_LEN + 1];
	char *sender;
	uint32_t nchunks;
	char **rcpts;
	size_t n;
	struct maildir_result *results;
	maildir_done_fn *done;
	void *arg;
	/* Worker scratch. */
	char host[MAILDIR_HOST_MAX];
	struct buf chunk;
	struct buf out;
};

/* Deliveries made by this process: the Q part of the unique name. */
static atomic_ulong maildir_counter;

const char *maildir_outcome_name(enum maildir_outcome o)
{
	switch (o) {
	case MAILDIR_NONE: return "none";
	case MAILDIR_OK: return "ok";
	case MAILDIR_TEMP: return "temporary";
	case MAILDIR_PERM: return "permanent";
	}
	return "unknown";
}

/*
 * One path component that stays inside DIR and is an ordinary, visible,
 * non-Maildir++ folder: not empty, at most NAME_MAX bytes, no leading
 * '.' (".", "..", hidden files and Maildir++ ".Sub" folders), no '/' (a
 * path), no '\\' (a path on other systems, and never needed in a
 * mailbox), no control byte (NUL cannot occur in a C string; CR, LF and
 * the rest would reach the headers and the logs) and no DEL.
 */
bool maildir_is_safe_name(const char *addr)
{
	size_t i;

	if (addr == NULL || addr[0] == '\0' || addr[0] == '.')
		return false;
	for (i = 0; addr[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)addr[i];

		if (i >= NAME_MAX || ch < 0x20 || ch == 0x7f || ch == '/' || ch == '\\')
			return false;
	}
	return true;
}

/* Appends src with control bytes and DEL made '?' (headers, texts). */
static void maildir_append_printable(struct buf *b, const char *src)
{
	for (; *src != '\0'; src++) {
		unsigned char ch = (unsigned char)*src;

		buf_append_char(b, ch < 0x20 || ch == 0x7f ? '?' : (char)ch);
	}
}

static void maildir_set(struct maildir_result *r, enum maildir_outcome o, int err,
    const char *dsn, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void maildir_set(struct maildir_result *r, enum maildir_outcome o, int err,
    const char *dsn, const char *fmt, ...)
{
	va_list ap;

	r->outcome = o;
	r->err = err;
	str_copy(r->dsn, dsn, sizeof(r->dsn));
	va_start(ap, fmt);
	vsnprintf(r->text, sizeof(r->text), fmt, ap);
	va_end(ap);
}

/* A file system failure: temporary, 4.2.2 when it is the user's quota. */
static void maildir_set_errno(struct maildir_result *r, int err, const char *what,
    const char *path)
{
	maildir_set(r, MAILDIR_TEMP, -err, err == EDQUOT ? "4.2.2" : "4.3.0",
	    "maildir delivery failed: cannot %s %s: %s", what, path, strerror(err));
}

/* The host name for unique names, with '/' and ':' escaped (the spec). */
static void maildir_hostname(char *out, size_t outlen)
{
	char h[256];
	size_t i, o = 0;

	if (gethostname(h, sizeof(h)) != 0 || h[0] == '\0')
		str_copy(h, "localhost", sizeof(h));
	h[sizeof(h) - 1] = '\0';
	for (i = 0; h[i] != '\0' && o + 5 < outlen; i++) {
		unsigned char ch = (unsigned char)h[i];

		if (ch == '/' || ch == ':' || ch < 0x20 || ch == 0x7f) {
			o += (size_t)snprintf(out + o, outlen - o, "\\%03o", ch);
			continue;
		}
		out[o++] = (char)ch;
	}
	out[o] = '\0';
}

/* Writes all of p, across short writes and signals. 0 or -errno. */
static int maildir_write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/*
 * Appends p with every CRLF made LF. *cr carries a CR that ended the
 * previous chunk: it is dropped if this chunk starts with LF, else kept.
 */
static void maildir_crlf_to_lf(bool *cr, const char *p, size_t len, struct buf *out)
{
	size_t i;
	char *o;

	buf_reserve(out, len + 1);
	o = out->data + out->len;
	for (i = 0; i < len; i++) {
		char ch = p[i];

		if (*cr) {
			*cr = false;
			if (ch != '\n')
				*o++ = '\r';
		}
		if (ch == '\r') {
			*cr = true;
			continue;
		}
		*o++ = ch;
	}
	out->len = (size_t)(o - out->data);
}

/*
 * Opens directory name under dirfd (creating it 0700 when absent, then
 * fsyncing dirfd so the new entry is durable). O_NOFOLLOW: a symbolic
 * link there is refused (ELOOP or ENOTDIR), never followed.
 */
static int maildir_subdir(int dirfd, const char *name, int *out)
{
	int fd;

	*out = -1;
	if (mkdirat(dirfd, name, 0700) == 0) {
		if (fsync(dirfd) != 0)
			return -errno;
	} else if (errno != EEXIST) {
		return -errno;
	}
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*out = fd;
	return 0;
}

/*
 * Opens DIR (the configured root; it may be a symbolic link, the
 * administrator chose it), creating its last component when absent and
 * fsyncing the parent.
 */
static int maildir_open_root(const char *dir, int *out)
{
	char parent[PATH_MAX];
	const char *slash;
	int fd, pfd;

	*out = -1;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		*out = fd;
		return 0;
	}
	if (errno != ENOENT)
		return -errno;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -errno;
	slash = strrchr(dir, '/');
	if (slash != NULL && str_copyn(parent, dir, slash == dir ? 1 : (size_t)(slash - dir),
	    sizeof(parent)) < sizeof(parent)) {
		pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd >= 0) {
			if (fsync(pfd) != 0) {
				int err = errno;

				close(pfd);
				return -err;
			}
			close(pfd);
		}
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*out = fd;
	return 0;
}

/* ------------------------------------------------------- maildir_root */

/*
 * maildir_root (doc/THREAT-MODEL.md): when set, every DIR is opened
 * beneath it without following a symbolic link, whoever made the route
 * and whenever: a route from before the key existed, or a link planted
 * in the tree later, cannot lead a delivery (run with the daemon's
 * rights) out of it. Loop thread only: jobs copy it at submission.
 */
static char *maildir_root_dir;

void maildir_set_root(const char *root)
{
	free(maildir_root_dir);
	maildir_root_dir = root != NULL && root[0] != '\0' ? xstrdup(root) : NULL;
}

/*
 * The part of dir below root, judged on the text (the admin engine's
 * rule, but for root itself: a route of root's may name the root, whose
 * mailbox folders are opened with O_NOFOLLOW like any): a pointer into
 * dir ("" for the root itself), or NULL when dir is not root or below it,
 * or has an empty, "." or ".." component.
 */
static const char *maildir_rel_below(const char *root, const char *dir)
{
	size_t rlen = strlen(root);
	const char *rel, *p;

	while (rlen > 1 && root[rlen - 1] == '/')
		rlen--;
	if (rlen == 1)
		rlen = 0;
	if (strncmp(dir, root, rlen) != 0 || (dir[rlen] != '/' && dir[rlen] != '\0'))
		return NULL;
	if (dir[rlen] == '\0' || dir[rlen + 1] == '\0')
		return rlen > 0 ? dir + strlen(dir) : NULL; /* root itself; "/" is no root */
	rel = p = dir + rlen + 1;
	while (*p != '\0') {
		size_t n = strcspn(p, "/");

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return NULL;
		p += n;
		if (*p == '/' && *++p == '\0')
			break;
	}
	return rel;
}

/* openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, or -ENOSYS. */
static int maildir_openat2_beneath(int dirfd, const char *rel)
{
#ifdef SYS_openat2
	struct open_how how;
	long fd;

	memset(&how, 0, sizeof(how));
	how.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS;
	fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	return fd >= 0 ? (int)fd : -errno;
#else
	(void)dirfd;
	(void)rel;
	return -ENOSYS;
#endif
}

/*
 * The fallback, and the way to create what is missing: one component at
 * a time, each made with mkdirat and opened with O_NOFOLLOW relative to
 * its parent's descriptor (maildir_subdir), so no link is ever followed.
 */
static int maildir_walk_beneath(int rootfd, const char *rel, int *out)
{
	char name[NAME_MAX + 1];
	int fd = rootfd, next, rc = 0;

	*out = -1;
	while (*rel != '\0') {
		size_t n = strcspn(rel, "/");

		if (n > NAME_MAX) {
			rc = -ENAMETOOLONG;
			break;
		}
		memcpy(name, rel, n);
		name[n] = '\0';
		rel += n;
		if (*rel == '/')
			rel++;
		rc = maildir_subdir(fd, name, &next);
		if (fd != rootfd)
			close(fd);
		if (rc < 0)
			return rc;
		fd = next;
	}
	if (rc < 0 || fd == rootfd) {
		if (fd != rootfd)
			close(fd);
		return rc < 0 ? rc : -EINVAL;
	}
	*out = fd;
	return 0;
}

/*
 * Opens dir beneath root (root itself may be a link: the administrator
 * chose it). -EXDEV when dir is not below root; -ELOOP (or -ENOTDIR)
 * when a symbolic link stands on the way; else -errno.
 */
static int maildir_open_beneath(const char *root, const char *dir, int *out)
{
	const char *rel = maildir_rel_below(root, dir);
	int rootfd, fd, rc;

	*out = -1;
	if (rel == NULL)
		return -EXDEV;
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return -errno;
	if (*rel == '\0') {
		*out = rootfd;
		return 0;
	}
	fd = maildir_openat2_beneath(rootfd, rel);
	if (fd >= 0) {
		*out = fd;
		rc = 0;
	} else if (fd == -ENOSYS || fd == -ENOENT || fd == -EPERM) {
		/* No openat2 (or a seccomp filter that says EPERM), or DIR to create. */
		rc = maildir_walk_beneath(rootfd, rel, out);
	} else {
		rc = fd;
	}
	close(rootfd);
	return rc;
}

/* Reads body chunk seq in its own short read transaction. */
static int maildir_chunk_read(struct maildir_job *j, uint32_t seq, struct buf *out)
{
	struct queue_txn *txn;
	int rc;

	rc = queue_txn_begin(j->store, false, &txn);
	if (rc < 0)
		return rc;
	rc = queue_body_get(txn, j->id, seq, out);
	queue_txn_abort(txn);
	return rc;
}

/*
 * Writes the headers and the converted body to fd. Returns 0, -errno
 * (a write failed) with *store_err 0, or a queue error in *store_err.
 */
static int maildir_write_message(struct maildir_job *j, int fd, const char *rcpt,
    int *store_err)
{
	bool cr = false;
	uint32_t seq;
	int rc;

	*store_err = 0;
	/*
	 * The envelope never holds control bytes (smtp_parse refuses them,
	 * and rcpt passed maildir_is_safe_name); make sure no header breaks.
	 */
	buf_reset(&j->out);
	buf_append_str(&j->out, "Return-Path: <");
	maildir_append_printable(&j->out, j->sender);
	buf_printf(&j->out, ">\nDelivered-To: %s\n", rcpt);
	for (seq = 0; seq < j->nchunks; seq++) {
		buf_reset(&j->chunk);
		rc = maildir_chunk_read(j, seq, &j->chunk);
		if (rc < 0) {
			*store_err = rc;
			return rc;
		}
		maildir_crlf_to_lf(&cr, j->chunk.data, j->chunk.len, &j->out);
		rc = maildir_write_all(fd, j->out.data, j->out.len);
		if (rc < 0)
			return rc;
		buf_reset(&j->out);
	}
	if (cr)
		buf_append_char(&j->out, '\r');
	return maildir_write_all(fd, j->out.data, j->out.len);
}

/* The open folders of one mailbox: the mailbox itself, tmp, new and cur. */
struct maildir_box {
	int mb, tmp, new, cur;
};

static void maildir_box_close(struct maildir_box *b)
{
	if (b->cur >= 0)
		close(b->cur);
	if (b->new >= 0)
		close(b->new);
	if (b->tmp >= 0)
		close(b->tmp);
	if (b->mb >= 0)
		close(b->mb);
}

/*
 * Opens (creating them if need be) the mailbox folder name under rootfd
 * and its tmp, new and cur. false with r set when one cannot be had; the
 * folders opened so far are in *b for maildir_box_close.
 */
static bool maildir_box_open(struct maildir_job *j, int rootfd, const char *name,
    struct maildir_box *b, struct maildir_result *r)
{
	char where[PATH_MAX];
	int rc;

	snprintf(where, sizeof(where), "%s/%s", j->dir, name);
	rc = maildir_subdir(rootfd, name, &b->mb);
	if (rc < 0) {
		maildir_set_errno(r, -rc, "open mailbox", where);
		return false;
	}
	if ((rc = maildir_subdir(b->mb, "tmp", &b->tmp)) < 0 ||
	    (rc = maildir_subdir(b->mb, "new", &b->new)) < 0 ||
	    (rc = maildir_subdir(b->mb, "cur", &b->cur)) < 0) {
		maildir_set_errno(r, -rc, "create the tmp, new and cur folders of", where);
		return false;
	}
	return true;
}

/* The file name of one delivery: time, pid, counter, queue id, host. */
static void maildir_unique_name(const struct maildir_job *j, char uniq[NAME_MAX + 1])
{
	struct timespec ts;
	unsigned long q;

	clock_gettime(CLOCK_REALTIME, &ts);
	q = atomic_fetch_add(&maildir_counter, 1) + 1;
	if ((size_t)snprintf(uniq, NAME_MAX + 1, "%lld.M%06ldP%ldQ%lu_%s.%s",
	    (long long)ts.tv_sec, ts.tv_nsec / 1000, (long)getpid(), q, j->qid,
	    j->host) >= NAME_MAX + 1) {
		/* A very long host name: the queue id and counter keep it unique. */
		snprintf(uniq, NAME_MAX + 1, "%lld.M%06ldP%ldQ%lu_%s.localhost",
		    (long long)ts.tv_sec, ts.tv_nsec / 1000, (long)getpid(), q, j->qid);
	}
}

/*
 * Writes the message for rcpt into tmp/uniq, fsyncs and closes it. false
 * with r set on any failure, and then the tmp file is gone again.
 */
static bool maildir_write_tmp(struct maildir_job *j, const struct maildir_box *b,
    const char *name, const char *uniq, const char *rcpt, struct maildir_result *r)
{
	char where[PATH_MAX];
	int fd, rc, store_err = 0;

	snprintf(where, sizeof(where), "%s/%s/tmp/%s", j->dir, name, uniq);
	fd = openat(b->tmp, uniq, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		maildir_set_errno(r, errno, "create", where);
		return false;
	}
	rc = maildir_write_message(j, fd, rcpt, &store_err);
	if (store_err < 0) {
		maildir_set(r, MAILDIR_TEMP, store_err, "4.3.0",
		    "maildir delivery failed: cannot read the message from the queue: %s",
		    queue_strerror(store_err));
		goto fail;
	}
	if (rc < 0) {
		maildir_set_errno(r, -rc, "write", where);
		goto fail;
	}
	if (fsync(fd) != 0) {
		maildir_set_errno(r, errno, "fsync", where);
		goto fail;
	}
	rc = close(fd) == 0 ? 0 : errno;
	fd = -1;
	if (rc != 0) {
		/* NFS and friends report deferred write errors at close. */
		maildir_set_errno(r, rc, "close", where);
		goto fail;
	}
	return true;
fail:
	if (fd >= 0)
		close(fd);
	(void)unlinkat(b->tmp, uniq, 0);
	return false;
}

/*
 * Moves tmp/uniq into new/ and fsyncs new/. false with r set when the
 * message is not durably in new/ (then it is in neither folder).
 */
static bool maildir_publish(struct maildir_job *j, const struct maildir_box *b,
    const char *name, const char *uniq, struct maildir_result *r)
{
	char where[PATH_MAX];

	/*
	 * link, not rename: link never replaces an existing new/ entry. A
	 * file system without hard links gets rename (what Dovecot does).
	 */
	if (linkat(b->tmp, uniq, b->new, uniq, 0) != 0) {
		int err = errno;

		if (err == EPERM || err == EOPNOTSUPP)
			err = renameat(b->tmp, uniq, b->new, uniq) == 0 ? 0 : errno;
		if (err != 0) {
			snprintf(where, sizeof(where), "%s/%s/new/%s", j->dir, name, uniq);
			maildir_set_errno(r, err, "move the message to", where);
			(void)unlinkat(b->tmp, uniq, 0);
			return false;
		}
	}
	(void)unlinkat(b->tmp, uniq, 0);
	if (fsync(b->new) != 0) {
		int err = errno;

		/* The file may or may not survive a crash: say not delivered. */
		snprintf(where, sizeof(where), "%s/%s/new", j->dir, name);
		maildir_set_errno(r, err, "fsync", where);
		(void)unlinkat(b->new, uniq, 0);
		return false;
	}
	return true;
}

/* One recipient: folder, tmp file, fsync, link into new/, fsync new/. */
static void maildir_deliver_one(struct maildir_job *j, int rootfd, size_t idx)
{
	struct maildir_result *r = &j->results[idx];
	const char *rcpt = j->rcpts[idx];
	char name[NAME_MAX + 1], uniq[NAME_MAX + 1];
	struct maildir_box b = { -1, -1, -1, -1 };

	str_copy(name, rcpt, sizeof(name));
	str_lower(name);
	if (maildir_box_open(j, rootfd, name, &b, r)) {
		maildir_unique_name(j, uniq);
		if (maildir_write_tmp(j, &b, name, uniq, rcpt, r) &&
		    maildir_publish(j, &b, name, uniq, r))
			maildir_set(r, MAILDIR_OK, 0, "2.0.0", "delivered to maildir %s/new/%s",
			    name, uniq);
	}
	maildir_box_close(&b);
}

/* Threadpool: every recipient in turn. */
static void maildir_work(uv_work_t *w)
{
	struct maildir_job *j = w->data;
	int rootfd = -1, rc;
	size_t i;

	maildir_hostname(j->host, sizeof(j->host));
	if (j->root != NULL)
		rc = maildir_open_beneath(j->root, j->dir, &rootfd);
	else
		rc = maildir_open_root(j->dir, &rootfd);
	for (i = 0; i < j->n; i++) {
		struct maildir_result *r = &j->results[i];

		if (!maildir_is_safe_name(j->rcpts[i])) {
			struct buf a;

			buf_init(&a);
			maildir_append_printable(&a, j->rcpts[i]);
			maildir_set(r, MAILDIR_PERM, -EINVAL, "5.1.3",
			    "cannot deliver to <%s>: the address cannot be used as a "
			    "maildir folder name", buf_cstr(&a));
			buf_free(&a);
		} else if (j->root != NULL && (rc == -EXDEV || rc == -ELOOP || rc == -ENOTDIR)) {
			/* Temporary: the mail waits while the route or the tree is fixed. */
			maildir_set(r, MAILDIR_TEMP, rc, "4.3.0", "maildir %s is not beneath "
			    "maildir_root %s, or a symbolic link stands on the way: refused",
			    j->dir, j->root);
		} else if (rc < 0) {
			maildir_set_errno(r, -rc, "open maildir root", j->dir);
		} else {
			maildir_deliver_one(j, rootfd, i);
		}
	}
	if (rootfd >= 0)
		close(rootfd);
}

static void maildir_job_free(struct maildir_job *j)
{
	size_t i;

	for (i = 0; i < j->n; i++)
		free(j->rcpts[i]);
	free(j->rcpts);
	free(j->dir);
	free(j->root);
	free(j->sender);
	buf_free(&j->chunk);
	buf_free(&j->out);
	free(j);
}

/* Loop thread: the results are complete (uv_queue_work orders memory). */
static void maildir_after_work(uv_work_t *w, int status)
{
	struct maildir_job *j = w->data;
	maildir_done_fn *done = j->done;
	void *arg = j->arg;
	size_t i;

	for (i = 0; i < j->n; i++)
		if (j->results[i].outcome == MAILDIR_NONE)
			maildir_set(&j->results[i], MAILDIR_TEMP, status < 0 ? status : -EIO,
			    "4.3.0", "maildir delivery was not attempted");
	maildir_job_free(j);
	done(arg);
}

int maildir_deliver(uv_loop_t *loop, struct queue_store *store, const char *dir,
    const struct queue_msg *msg, const char *const *rcpts, size_t n,
    struct maildir_result *results, maildir_done_fn *done, void *arg)
{
	struct maildir_job *j;
	size_t i;
	int rc;

	if (loop == NULL || store == NULL || dir == NULL || dir[0] != '/' || msg == NULL ||
	    rcpts == NULL || n == 0 || results == NULL || done == NULL)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (rcpts[i] == NULL)
			return -EINVAL;
	j = xcalloc(1, sizeof(*j));
	j->store = store;
	j->dir = xstrdup(dir);
	j->root = maildir_root_dir != NULL ? xstrdup(maildir_root_dir) : NULL;
	j->id = msg->id;
	queue_id_format(msg->id, j->qid);
	j->sender = xstrdup(msg->sender != NULL ? msg->sender : "");
	j->nchunks = msg->nchunks;
	j->n = n;
	j->rcpts = xcalloc(n, sizeof(*j->rcpts));
	for (i = 0; i < n; i++) {
		j->rcpts[i] = xstrdup(rcpts[i]);
		memset(&results[i], 0, sizeof(results[i]));
	}
	j->results = results;
	j->done = done;
	j->arg = arg;
	buf_init(&j->chunk);
	buf_init(&j->out);
	j->work.data = j;
	rc = uv_queue_work(loop, &j->work, maildir_work, maildir_after_work);
	if (rc < 0) {
		maildir_job_free(j);
		return rc;
	}
	return 0;
}
