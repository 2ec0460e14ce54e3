/*
 * privilege: govrelayd runs with as little as it can.
 *
 * Started as root (the service manager's way), govrelayd binds its
 * listeners and reads its configuration and TLS key as root, then drops
 * for good to the unprivileged `user` (default govrelay): supplementary
 * groups (initgroups: the user's own, e.g. ssl-cert to read a key again on
 * SIGHUP), gid, then uid, each call checked, and then checks that the
 * drop cannot be undone (setuid(0) and setgid(0) must fail) and that no
 * id left is 0. Everything after that (the store, the writer thread, the
 * control socket, deliveries) runs as the user, so a route or a bug can
 * reach only what the user can. data_dir must be the user's
 * (common/datadir.c: created for it when missing, refused otherwise).
 * Started as an ordinary user (a developer running the tests), there is
 * nothing to drop and the daemon runs as that user.
 *
 * The descriptor limit: every session is one descriptor; the soft
 * RLIMIT_NOFILE is raised to the hard limit at start, and when that still
 * cannot hold max_connections besides what the daemon needs anyway,
 * max_connections is lowered with a warning rather than failing accept()
 * at the worst moment.
 *
 * Entry points: priv_raise_nofile, priv_clamp_connections, priv_drop.
 * OWNERSHIP: nothing is kept.
 * THREADS: the loop thread, before any other thread exists (ids are per
 * process, but a drop must not race a thread opening files).
 * ERRORS: fatal(EX_CONFIG) for a user that cannot be used,
 * fatal(EX_OSERR) when a drop step fails, fatal(EX_UNAVAILABLE) for
 * data_dir.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <unistd.h>

#include "common/datadir.h"
#include "common/log.h"
#include "relay/privilege.h"

/*
 * Descriptors the daemon needs besides its sessions: standard streams,
 * syslog, the store (data.mdb, lock.mdb), the loop's own (epoll, signal
 * pipe, async eventfds), the resolver, the control socket and a few of
 * its clients, a maildir file being written. Listeners and deliveries
 * (one socket each) are added per configuration.
 */
#define PRIV_FD_MARGIN 64

uint64_t priv_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max;

		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn(NULL, "cannot raise the descriptor limit to %llu: %s",
			    (unsigned long long)want, strerror(errno));
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
}

void priv_clamp_connections(struct config *cfg, uint64_t nofile)
{
	uint64_t margin = PRIV_FD_MARGIN + cfg->listen.n + cfg->delivery_concurrency;
	uint64_t room = nofile > margin ? nofile - margin : 1;

	if ((uint64_t)cfg->max_connections <= room)
		return;
	log_warn(NULL, "max_connections %llu needs more descriptors than the limit of %llu "
	    "leaves (%llu kept for the store, %zu listeners and %llu deliveries); using "
	    "max_connections %llu (raise LimitNOFILE / the hard RLIMIT_NOFILE)",
	    (unsigned long long)cfg->max_connections, (unsigned long long)nofile,
	    (unsigned long long)PRIV_FD_MARGIN, cfg->listen.n,
	    (unsigned long long)cfg->delivery_concurrency, (unsigned long long)room);
	cfg->max_connections = room;
}

/* data_dir: created for the user when missing, else it must be the user's. */
static void priv_data_dir(const struct config *cfg, const struct datadir_user *u)
{
	char err[1024];

	if (datadir_create_for(cfg->data_dir, u, err, sizeof err) < 0 ||
	    datadir_check_owner(cfg->data_dir, u, err, sizeof err) < 0)
		fatal(EX_UNAVAILABLE, "%s", err);
}

/* After the drop: nothing may be 0 any more, and 0 must be out of reach. */
static void priv_verify(const struct datadir_user *u)
{
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid, groups[256];
	int n;

	if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
		fatal(EX_OSERR, "cannot read our own ids: %s", strerror(errno));
	if (ruid != u->uid || euid != u->uid || suid != u->uid || rgid != u->gid ||
	    egid != u->gid || sgid != u->gid)
		fatal(EX_OSERR, "privilege drop to %s incomplete: uid %lu/%lu/%lu gid %lu/%lu/%lu",
		    u->name, (unsigned long)ruid, (unsigned long)euid, (unsigned long)suid,
		    (unsigned long)rgid, (unsigned long)egid, (unsigned long)sgid);
	n = getgroups((int)(sizeof groups / sizeof groups[0]), groups);
	for (int i = 0; i < n; i++)
		if (groups[i] == 0)
			fatal(EX_OSERR, "user %s is in group 0 (root); refusing to run with it",
			    u->name);
	if (setuid(0) != -1 || seteuid(0) != -1)
		fatal(EX_OSERR, "privilege drop to %s can be undone (setuid(0) succeeded); "
		    "refusing to run", u->name);
	if (setgid(0) != -1)
		fatal(EX_OSERR, "privilege drop to %s can be undone (setgid(0) succeeded); "
		    "refusing to run", u->name);
	if (getuid() == 0 || geteuid() == 0)
		fatal(EX_OSERR, "still running as root after the privilege drop; refusing to run");
}

#if defined(__SANITIZE_ADDRESS__)
#define PRIV_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PRIV_UNDER_ASAN 1
#endif
#endif

/*
 * The kernel makes a process that changed its uid non-dumpable: no core
 * file, and no ptrace by the new user, who must not read the TLS key the
 * process read as root. LeakSanitizer's exit check needs ptrace on its
 * own process, so an ASan build (tests only, never installed) turns that
 * back on; a normal build never does.
 */
static void priv_after_drop_for_sanitizers(void)
{
#ifdef PRIV_UNDER_ASAN
	(void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
#endif
}

void priv_drop(const struct config *cfg)
{
	struct datadir_user u;

	if (getuid() != 0 && geteuid() != 0) {
		log_debug(NULL, "running as uid %lu: no privilege to drop",
		    (unsigned long)getuid());
		return;
	}
	if (cfg->user == NULL || datadir_lookup_user(cfg->user, &u) < 0)
		fatal(EX_CONFIG, "%s: user: no user '%s' on this system (create it: useradd "
		    "--system --no-create-home --shell /usr/sbin/nologin %s)", cfg->file,
		    cfg->user ? cfg->user : "", cfg->user ? cfg->user : "govrelay");
	if (u.uid == 0 || u.gid == 0)
		fatal(EX_CONFIG, "%s: user: '%s' has uid or gid 0; govrelayd never runs as root",
		    cfg->file, u.name);
	priv_data_dir(cfg, &u);
	/* Groups, then gid, then uid: after setuid the other two are out of reach. */
	if (initgroups(u.name, u.gid) < 0)
		fatal(EX_OSERR, "initgroups(%s): %s", u.name, strerror(errno));
	if (setgid(u.gid) < 0)
		fatal(EX_OSERR, "setgid(%lu): %s", (unsigned long)u.gid, strerror(errno));
	if (setuid(u.uid) < 0)
		fatal(EX_OSERR, "setuid(%lu): %s", (unsigned long)u.uid, strerror(errno));
	priv_verify(&u);
	priv_after_drop_for_sanitizers();
	log_info(NULL, "dropped privileges to user %s (uid %lu, gid %lu)", u.name,
	    (unsigned long)u.uid, (unsigned long)u.gid);
}
