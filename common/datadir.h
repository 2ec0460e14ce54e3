#ifndef GOVRELAY_DATADIR_H
#define GOVRELAY_DATADIR_H
/*
 * Who owns data_dir, for the two programs that may start as root:
 * govrelayd (which drops to the configured user for good) and
 * govrelayctl (which, run by root, opens the store as data_dir's owner).
 */
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The configured user, looked up: 0, or -ENOENT when there is no such user. */
struct datadir_user {
	char name[64];
	uid_t uid;
	gid_t gid;
};
int datadir_lookup_user(const char *name, struct datadir_user *out);

/*
 * As root: creates data_dir (0700) when it does not exist yet and gives it
 * to user, never following a symbolic link (the new folder is opened with
 * O_NOFOLLOW and changed through that descriptor). An existing data_dir is
 * left as it is. 0 or -errno, with a message in err.
 */
int datadir_create_for(const char *dir, const struct datadir_user *user, char *err,
    size_t errlen);

/*
 * Checks that data_dir and the store files already in it (data.mdb,
 * lock.mdb) belong to user and are not symbolic links: 0, or -EPERM with
 * a message naming the file and the chown that fixes it.
 */
int datadir_check_owner(const char *dir, const struct datadir_user *user, char *err,
    size_t errlen);

/*
 * govrelayctl run by root: the effective identity of data_dir's owner
 * (uid, its primary group, no supplementary groups) until
 * datadir_restore. Nothing changes when we are not root or data_dir is
 * root's own (an old installation, a copied store under analysis).
 */
struct datadir_saved {
	bool switched;
	uid_t euid;
	gid_t egid;
	int ngroups;
	gid_t groups[64];
};
int datadir_become_owner(const char *dir, struct datadir_saved *saved, char *err,
    size_t errlen);
void datadir_restore(struct datadir_saved *saved);

#endif
