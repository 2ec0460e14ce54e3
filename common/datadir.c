/*
 * datadir: data_dir belongs to the daemon's unprivileged user.
 *
 * govrelayd started as root drops to `user` (relay/privilege.c); from then
 * on it can open only what that user may. Files that root creates in
 * data_dir would be root's, and the dropped daemon could not open them.
 * Two programs may create the store as root:
 *
 * - govrelayd itself: before it drops it creates a missing data_dir and
 *   gives it to the user; it refuses to start when data_dir or the store
 *   files in it belong to anyone else, naming the chown that fixes it. It
 *   never changes the owner of something that exists already: data_dir
 *   is writable by the user, who could have planted a symbolic or hard
 *   link there to make root hand over a file of its choice.
 * - govrelayctl run by root with the daemon stopped: it takes the
 *   effective identity of data_dir's owner (seteuid, setegid, one group)
 *   before it runs the engine, so every file LMDB creates is the owner's,
 *   and LMDB never opens a path in a folder the user controls with root's
 *   rights (a lock.mdb symlinked to /etc/shadow would otherwise be
 *   truncated by root). Only the effective ids change, and they are
 *   restored afterwards: the real uid still says who typed the command.
 *
 * Entry points: datadir_lookup_user, datadir_create_for,
 * datadir_check_owner, datadir_become_owner, datadir_restore.
 * OWNERSHIP: nothing is allocated; callers own every buffer.
 * THREADS: process-wide effects (ids, groups): call before any thread.
 * ERRORS: -errno, with one line of explanation in the caller's err.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/datadir.h"
#include "common/util.h"

int datadir_lookup_user(const char *name, struct datadir_user *out)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	memset(out, 0, sizeof *out);
	if (name == NULL || getpwnam_r(name, &pw, buf, sizeof buf, &res) != 0 || res == NULL)
		return -ENOENT;
	if (str_copy(out->name, res->pw_name, sizeof out->name) >= sizeof out->name)
		return -ENAMETOOLONG;
	out->uid = res->pw_uid;
	out->gid = res->pw_gid;
	return 0;
}

int datadir_create_for(const char *dir, const struct datadir_user *user, char *err,
    size_t errlen)
{
	int fd, rc = 0;

	if (mkdir(dir, 0700) < 0) {
		if (errno == EEXIST)
			return 0;
		rc = -errno;
		snprintf(err, errlen, "data_dir %s: cannot create it: %s", dir, strerror(-rc));
		return rc;
	}
	/*
	 * Through a descriptor of the folder we just made, never by name.
	 * 0711, whatever the umask: operators reach the control socket in it
	 * by name (the socket's peer check is the gate), nobody else may
	 * list it, and the store files in it are 0600.
	 */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fchown(fd, user->uid, user->gid) < 0 || fchmod(fd, 0711) < 0) {
		rc = -errno;
		snprintf(err, errlen, "data_dir %s: cannot give it to user %s: %s", dir,
		    user->name, strerror(-rc));
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

/* One file: it must not be a link and must be the user's. */
static int datadir_check_one(int dirfd, const char *dir, const char *name,
    const struct datadir_user *user, char *err, size_t errlen)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (S_ISLNK(st.st_mode)) {
		snprintf(err, errlen, "data_dir %s: %s is a symbolic link; the store files must "
		    "be plain files", dir, name);
		return -EPERM;
	}
	if (st.st_uid != user->uid) {
		snprintf(err, errlen, "data_dir %s: %s belongs to uid %lu, not to user %s "
		    "(uid %lu); fix it with: chown -R %s: %s", dir, name,
		    (unsigned long)st.st_uid, user->name, (unsigned long)user->uid, user->name, dir);
		return -EPERM;
	}
	return 0;
}

int datadir_check_owner(const char *dir, const struct datadir_user *user, char *err,
    size_t errlen)
{
	static const char *const files[] = { "data.mdb", "lock.mdb" };
	struct stat st;
	int fd, rc = 0;

	/* The folder itself is named by root's configuration: a link is fine. */
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		snprintf(err, errlen, "data_dir %s: %s", dir, strerror(-rc));
		if (fd >= 0)
			close(fd);
		return rc;
	}
	if (st.st_uid != user->uid) {
		snprintf(err, errlen, "data_dir %s belongs to uid %lu, not to user %s (uid %lu); "
		    "fix it with: chown -R %s: %s", dir, (unsigned long)st.st_uid, user->name,
		    (unsigned long)user->uid, user->name, dir);
		rc = -EPERM;
	}
	for (size_t i = 0; rc == 0 && i < sizeof files / sizeof files[0]; i++)
		rc = datadir_check_one(fd, dir, files[i], user, err, errlen);
	close(fd);
	return rc;
}

int datadir_become_owner(const char *dir, struct datadir_saved *saved, char *err,
    size_t errlen)
{
	struct passwd pw, *res = NULL;
	char buf[4096];
	struct stat st;
	gid_t gid;

	memset(saved, 0, sizeof *saved);
	if (geteuid() != 0 || stat(dir, &st) < 0 || st.st_uid == 0)
		return 0;
	gid = st.st_gid;
	if (getpwuid_r(st.st_uid, &pw, buf, sizeof buf, &res) == 0 && res != NULL)
		gid = res->pw_gid;
	saved->euid = geteuid();
	saved->egid = getegid();
	saved->ngroups = getgroups((int)(sizeof saved->groups / sizeof saved->groups[0]),
	    saved->groups);
	if (saved->ngroups < 0)
		saved->ngroups = 0;
	/* Groups and gid first: once the euid is not 0 they cannot change. */
	if (setgroups(1, &gid) < 0 || setegid(gid) < 0 || seteuid(st.st_uid) < 0) {
		int rc = -errno;

		snprintf(err, errlen, "data_dir %s: cannot act as its owner (uid %lu): %s", dir,
		    (unsigned long)st.st_uid, strerror(-rc));
		saved->switched = true;
		datadir_restore(saved);
		return rc;
	}
	saved->switched = true;
	return 0;
}

void datadir_restore(struct datadir_saved *saved)
{
	if (!saved->switched)
		return;
	saved->switched = false;
	/* The euid first: only root may set the groups back. */
	if (seteuid(saved->euid) < 0 || setegid(saved->egid) < 0 ||
	    setgroups((size_t)saved->ngroups, saved->groups) < 0) {
		/* Better to stop than to go on with half of root's identity. */
		fprintf(stderr, "govrelay: cannot restore root's identity: %s\n", strerror(errno));
		_exit(70);
	}
}
