#!/usr/bin/env python3
"""
End-to-end: least privilege (issue 9).

- Started as root, govrelayd drops to the user `govrelay` for good: every
  uid and gid in /proc/PID/status is that user's, no supplementary group
  is 0, the store and the control socket are its, and mail still flows.
- govrelayctl run by root before the daemon ever ran creates data_dir
  for that user, so the dropped daemon can open the store; a root-owned
  data_dir (an old installation) or a store file that is a symbolic link
  is refused by name, and root's govrelayctl, acting as data_dir's owner,
  cannot be made to write through such a link.
- `user = root` is a configuration error with FILE:LINE (as anyone);
  an unknown user too when the daemon is to start as root.
- The descriptor limit: the soft limit is raised to the hard one, and
  when that is too low for max_connections the daemon lowers it with a
  warning naming both numbers, and refuses sessions beyond it with 421.

Tests that need root skip when not root; the others run everywhere.
"""

import os
import pwd
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (EX_CONFIG, RawSMTP, Relay, RelayTestCase, proc_ids,  # noqa: E402
                     queued_id, wait_for)

EX_UNAVAILABLE = 69


def need_root():
    if os.geteuid() != 0:
        raise unittest.SkipTest("needs root: the daemon drops privileges only when started as root")


def run_daemon_once(relay, timeout=20):
    """Runs govrelayd -f on relay's config expecting it to refuse to
    start: (exit code, output)."""
    r = subprocess.run([harness.GOVRELAYD, "-f", "-c", relay.conf], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=timeout, cwd=relay.dir)
    return r.returncode, r.stdout


def line_of(path, prefix):
    with open(path) as f:
        for i, l in enumerate(f, 1):
            if l.startswith(prefix):
                return i
    raise AssertionError("no line starting %r in %s" % (prefix, path))


class DropTest(RelayTestCase):
    """The daemon started as root runs as govrelay."""

    @classmethod
    def setUpClass(cls):
        need_root()
        cls.pw = harness.ensure_daemon_user()
        super().setUpClass()

    def test_proc_status_ids_are_the_users(self):
        uids, gids, groups = proc_ids(self.relay.proc.pid)
        self.assertEqual(uids, [self.pw.pw_uid] * 4, "Uid line: real, effective, saved, fs")
        self.assertEqual(gids, [self.pw.pw_gid] * 4, "Gid line: real, effective, saved, fs")
        self.assertNotIn(0, uids)
        self.assertNotIn(0, gids)
        self.assertNotIn(0, groups, "a supplementary group is root's")
        self.relay.wait_log(r"dropped privileges to user govrelay \(uid %d, gid %d\)"
                            % (self.pw.pw_uid, self.pw.pw_gid))

    def test_store_and_socket_are_the_users(self):
        # Root's govrelayctl while the daemon runs: still nothing of root's.
        self.relay.ctl_ok("domain", "add", "while-running.test", "--route",
                          "smtp:127.0.0.1:%d" % self.relay.dead_port)
        names = sorted(os.listdir(self.relay.data_dir))
        for n in ("data.mdb", "lock.mdb", "control.sock"):
            self.assertIn(n, names)
        for n in names + ["."]:
            st = os.lstat(os.path.join(self.relay.data_dir, n))
            self.assertEqual((st.st_uid, st.st_gid), (self.pw.pw_uid, self.pw.pw_gid),
                             "%s belongs to %d:%d" % (n, st.st_uid, st.st_gid))

    def test_mail_flows_after_the_drop(self):
        with RawSMTP(self.relay.port) as c:
            r = c.send_message("s@example.test", ["rcpt@ours.test"],
                               b"Subject: dropped\r\n\r\nafter the drop\r\n")
        qid = queued_id(r)
        self.sink.find(b"after the drop")
        self.relay.wait_log(r"%s: to=<rcpt@ours\.test>.*status=sent" % qid)


class RootCtlTest(unittest.TestCase):
    """govrelayctl run by root, and data_dir's ownership at start."""

    def setUp(self):
        need_root()
        self.pw = harness.ensure_daemon_user()
        self.workdir = tempfile.mkdtemp(prefix="govrelay-e2e-RootCtlTest-")
        self.addCleanup(shutil.rmtree, self.workdir, True)
        self.relay = Relay(self.workdir)
        self.addCleanup(self._stop)

    def _stop(self):
        if self.relay.running():
            self.relay.stop()

    def owners(self):
        return {n: os.lstat(os.path.join(self.relay.data_dir, n)).st_uid
                for n in os.listdir(self.relay.data_dir)}

    def test_ctl_first_creates_data_dir_for_the_user(self):
        os.rmdir(self.relay.data_dir)
        self.relay.add_domain("first.test", "smtp:127.0.0.1:%d" % self.relay.dead_port)
        st = os.stat(self.relay.data_dir)
        self.assertEqual(st.st_uid, self.pw.pw_uid)
        # Searchable, not listable: operators reach the control socket in it.
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o711)
        self.assertEqual(set(self.owners().values()), {self.pw.pw_uid}, self.owners())
        self.relay.start()
        r = self.relay.ctl_ok("domain", "list")
        self.assertIn("first.test", r.stdout)
        self.operator_reaches_daemon()

    def operator_reaches_daemon(self):
        """A registered operator (nobody) runs a command through the
        socket in the daemon-made data_dir; nobody cannot list the folder."""
        from test_tenancy import run_as, usable_user
        pw, why = usable_user("nobody")
        if pw is None:
            self.skipTest(why)
        self.relay.ctl_ok("tenant", "add", "ward", "--name", "Ward")
        self.relay.ctl_ok("operator", "add", "nobody", "--tenant", "ward", "--role", "postmaster")
        for d in (self.workdir, self.relay.dir):
            os.chmod(d, 0o755)
        os.chmod(self.relay.conf, 0o644)
        r = run_as(pw, [harness.GOVRELAYCTL, "-c", self.relay.conf, "tenant", "list"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("ward", r.stdout)
        r = run_as(pw, ["ls", self.relay.data_dir])
        self.assertNotEqual(r.returncode, 0, "nobody listed data_dir: " + r.stdout)

    def test_root_owned_data_dir_is_refused(self):
        self.relay.add_domain("old.test", "smtp:127.0.0.1:%d" % self.relay.dead_port)
        # An installation from before the drop: everything root's.
        for n in os.listdir(self.relay.data_dir) + [""]:
            os.chown(os.path.join(self.relay.data_dir, n), 0, 0)
        rc, out = run_daemon_once(self.relay)
        self.assertEqual(rc, EX_UNAVAILABLE, out)
        self.assertIn("data_dir %s belongs to uid 0, not to user govrelay" % self.relay.data_dir,
                      out)
        self.assertIn("chown -R govrelay: %s" % self.relay.data_dir, out)
        self.assertNotIn("ready", out)

    def test_symlinked_store_file_is_refused_and_never_written(self):
        victim = os.path.join(self.workdir, "victim")
        with open(victim, "w") as f:
            f.write("root's file\n")
        os.chmod(victim, 0o644)
        os.symlink(victim, os.path.join(self.relay.data_dir, "lock.mdb"))
        rc, out = run_daemon_once(self.relay)
        self.assertEqual(rc, EX_UNAVAILABLE, out)
        self.assertIn("lock.mdb is a symbolic link", out)
        # Root's govrelayctl acts as data_dir's owner: it cannot write
        # through the link to a file of root's.
        r = self.relay.ctl("domain", "add", "x.test", "--route", "smtp:127.0.0.1:9")
        self.assertNotEqual(r.returncode, 0, r.stdout)
        with open(victim) as f:
            self.assertEqual(f.read(), "root's file\n")
        self.assertEqual(os.stat(victim).st_uid, 0)


class UserKeyTest(unittest.TestCase):
    """The `user` key: never root, FILE:LINE errors."""

    def setUp(self):
        self.workdir = tempfile.mkdtemp(prefix="govrelay-e2e-UserKeyTest-")
        self.addCleanup(shutil.rmtree, self.workdir, True)

    def check_refused(self, user, message):
        relay = Relay(self.workdir, user=user)
        line = line_of(relay.conf, "user = ")
        want = "%s:%d: user: %s" % (relay.conf, line, message)
        r = subprocess.run([harness.GOVRELAYD, "-t", "-c", relay.conf], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True, timeout=30)
        self.assertEqual(r.returncode, EX_CONFIG, r.stdout)
        self.assertIn(want, r.stdout)
        rc, out = run_daemon_once(relay)
        self.assertEqual(rc, EX_CONFIG, out)
        self.assertIn(want, out)
        self.assertNotIn("ready", out)
        r = relay.ctl("config", "check")
        self.assertEqual(r.returncode, EX_CONFIG, r.stdout + r.stderr)
        self.assertIn(want, r.stdout + r.stderr)

    def test_root_refused(self):
        self.check_refused("root", "'root' is uid 0; govrelayd never runs as root")

    def test_uid_zero_alias_refused(self):
        # Any name of uid 0 (here the numeric form).
        self.check_refused("0", "'0' is uid 0; govrelayd never runs as root")

    def test_unknown_user_refused_as_root(self):
        need_root()
        name = "no-such-govrelay-user"
        try:
            pwd.getpwnam(name)
            self.skipTest("a user %s exists here" % name)
        except KeyError:
            pass
        self.check_refused(name, "no user '%s' on this system" % name)


class NofileTest(RelayTestCase):
    """The descriptor limit and max_connections."""

    relay_options = {"max_connections": "10000", "delivery_concurrency": "100"}
    with_sink = False
    start_relay = False

    def tearDown(self):
        if self.relay.running():
            self.relay.stop()

    def test_low_limit_clamps_max_connections(self):
        self.relay.start(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                                               (200, 200)))
        m = self.relay.wait_log(r"max_connections 10000 needs more descriptors than the "
                                r"limit of (\d+) leaves .*; using max_connections (\d+)")
        limit, n = int(m.group(1)), int(m.group(2))
        if not os.environ.get("GOVRELAYD_WRAPPER"):
            self.assertEqual(limit, 200)
        self.assertLess(n, limit)
        self.assertGreater(n, 0)
        conns = []
        try:
            for _ in range(n):
                c = RawSMTP(self.relay.port)
                conns.append(c)
                self.assertEqual(c.greeting.code, 220, c.greeting.lines)
            extra = RawSMTP(self.relay.port)
            conns.append(extra)
            self.assertEqual(extra.greeting.code, 421, extra.greeting.lines)
            self.assertIn("too many connections", extra.greeting.last)
        finally:
            for c in conns:
                c.close()

    def test_soft_limit_raised_to_hard(self):
        if os.environ.get("GOVRELAYD_WRAPPER"):
            self.skipTest("a wrapper (valgrind) keeps descriptors of its own")
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        if hard == resource.RLIM_INFINITY or hard > 20000:
            hard = 20000
        if hard <= 100:
            self.skipTest("the hard descriptor limit here is %d" % hard)
        self.relay.start(preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE,
                                                               (100, hard)))

        def soft():
            with open("/proc/%d/limits" % self.relay.proc.pid) as f:
                for l in f:
                    if l.startswith("Max open files"):
                        return int(l.split()[3])
            return None
        self.assertEqual(wait_for(lambda: soft() == hard and soft(), 10,
                                  what="soft limit raised"), hard)


if __name__ == "__main__":
    harness.main()
