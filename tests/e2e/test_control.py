"""
e2e: the control socket and the live queue verbs (INTERFACE.md
"Administration"): `govrelayctl queue hold|release|delete|retry ID` and
`queue flush` on a running daemon take effect at once; with the daemon
down the CLI applies them to the store itself. Covered: hold keeps a
message from being attempted (even with its next hop back up) and release
delivers it; delete removes it for good with an audit record; retry and
flush attempt at once despite a one-hour backoff; `queue list` shows the
held flag and per-recipient state; the socket is a 0666 socket owned by
the daemon's user (delegated operators are ordinary users; every request
is authorized from the peer's SO_PEERCRED uid); bad and unknown ids exit
65/66; the raw protocol (unknown verbs, long and non-ASCII requests, idle
clients, the connection bound, a peer uid that is neither root nor the
daemon's asking for a queue verb: 77 permission denied); the store path
with the daemon stopped (socket removed) and killed (stale socket, then
replaced at the next start); a second daemon refuses a live socket.
"""
import os
import re
import socket
import stat
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Relay, RelayTestCase, Sink, queued_id, require_tools, wait_for  # noqa: E402

EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_TEMPFAIL = 75
EX_NOPERM = 77
BY_DAEMON = "done by the running daemon"
BY_STORE = "daemon not running: applied to the store"

FAST_RETRY = {"minimal_backoff_time": "1s", "maximal_backoff_time": "2s"}
SLOW_RETRY = {"minimal_backoff_time": "1h", "maximal_backoff_time": "2h"}


def send(relay, sender, rcpt, marker):
    c = harness.RawSMTP(relay.port)
    try:
        r = c.send_message(sender, [rcpt], b"Subject: %s\r\n\r\n%s body\r\n"
                           % (marker.encode(), marker.encode()))
        return queued_id(r)
    finally:
        c.close()


def attempts(relay, qid, rcpt):
    """Delivery attempts the log shows for qid/rcpt (any outcome)."""
    rx = re.compile(r"%s: to=<%s>, .*status=" % (qid, re.escape(rcpt)))
    return len([l for l in relay.log().splitlines() if rx.search(l)])


def wait_attempts(relay, qid, rcpt, n, timeout=10.0):
    wait_for(lambda: attempts(relay, qid, rcpt) >= n, timeout,
             what="%d delivery attempts of %s to %s" % (n, qid, rcpt))


def audit_lines(relay):
    """The audit chain's canonical lines, read with mdb_dump (lmdb-utils)."""
    require_tools("mdb_dump")
    r = subprocess.run(["mdb_dump", "-p", "-s", "audit", relay.data_dir],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                       universal_newlines=True, errors="replace")
    if r.returncode != 0:
        raise AssertionError("mdb_dump failed: %s" % r.stderr)
    return re.findall(r"seq=\d+ time=\S+ qid=\S* event=[^\n]*", r.stdout)


def control_path(relay):
    return os.path.join(relay.data_dir, "control.sock")


def ask(path, data, timeout=10.0):
    """One raw request on the control socket; returns everything read."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass    # answered and closed before reading (busy, refused): read it
        out = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                # Linux reports a reset after the reply when the daemon
                # closed with part of an oversized request unread.
                chunk = b""
            if not chunk:
                return out.decode(errors="replace")
            out += chunk
    finally:
        s.close()


class HoldReleaseDeleteTest(RelayTestCase):
    """Fast retries, so a message that is not held would be attempted
    every one to two seconds."""
    relay_options = dict(FAST_RETRY)
    with_sink = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Both next hops are down (closed ports) until a test starts them.
        cls.late = Sink(cls.workdir, name="late-sink")
        cls.never = Sink(cls.workdir, name="never-sink")
        cls.relay.add_domain("late.test", cls.late.route)
        cls.relay.add_domain("never.test", cls.never.route)

    @classmethod
    def tearDownClass(cls):
        cls.late.stop()
        cls.never.stop()
        super().tearDownClass()

    def test_hold_then_release(self):
        rcpt = "held@late.test"
        qid = send(self.relay, "hold@example.test", rcpt, "hold-release")
        wait_attempts(self.relay, qid, rcpt, 1)

        r = self.relay.ctl_ok("queue", "hold", qid)
        self.assertIn(BY_DAEMON, r.stdout)
        self.assertIn("held", r.stdout)
        r = self.relay.ctl_ok("queue", "hold", qid)
        self.assertIn("already held", r.stdout)
        listed = [m for m in self.relay.queue_list() if m["id"] == qid][0]
        self.assertIs(listed["held"], True, listed)
        self.assertEqual(listed["recipients"][0]["address"], rcpt)
        self.assertEqual(listed["recipients"][0]["state"], "pending")
        self.assertTrue(listed["recipients"][0]["last_reply"], listed)
        text = self.relay.ctl_ok("queue", "list").stdout
        self.assertRegex(text, r"(?m)^%s .* held$" % qid)
        self.assertRegex(text, r"(?m)^    %s +pending +attempts \d+ +next \S+ +last error: "
                         % re.escape(rcpt))

        # An attempt that had started before the hold may still finish;
        # after that, nothing, although the next hop is back and a message
        # that is not held would be retried every 1-2 s.
        time.sleep(1.0)
        self.late.start()
        before = attempts(self.relay, qid, rcpt)
        time.sleep(3.5)
        self.assertEqual(attempts(self.relay, qid, rcpt), before,
                         "a held message was attempted:\n%s"
                         % "\n".join(self.relay.log_lines(qid)))
        self.assertEqual(self.late.count(b"hold-release body"), 0)
        self.assertIn(qid, self.relay.queue_ids())

        r = self.relay.ctl_ok("queue", "release", qid)
        self.assertIn("released", r.stdout)
        self.assertIn(BY_DAEMON, r.stdout)
        self.relay.wait_log(r"%s: to=<%s>.*status=sent" % (qid, re.escape(rcpt)), 10)
        self.late.find(b"hold-release body")
        self.relay.wait_gone(qid)
        r = self.relay.ctl("queue", "release", qid)
        self.assertEqual(r.returncode, EX_NOINPUT, r.stderr)
        actions = [l for l in audit_lines(self.relay) if "qid=%s " % qid in l]
        self.assertTrue(any("action=queue.hold" in l and "via=daemon" in l and "by=uid:" in l
                            for l in actions), actions)
        self.assertTrue(any("action=queue.release" in l for l in actions), actions)

    def test_delete_is_final(self):
        rcpt = "gone@never.test"
        qid = send(self.relay, "delete@example.test", rcpt, "deleted-message")
        wait_attempts(self.relay, qid, rcpt, 1)
        r = self.relay.ctl_ok("queue", "delete", qid)
        self.assertIn("deleted", r.stdout)
        self.assertIn(BY_DAEMON, r.stdout)
        self.assertNotIn(qid, self.relay.queue_ids())
        r = self.relay.ctl("queue", "show", qid)
        self.assertEqual(r.returncode, EX_NOINPUT, r.stdout + r.stderr)
        r = self.relay.ctl("queue", "delete", qid)
        self.assertEqual(r.returncode, EX_NOINPUT, r.stdout + r.stderr)
        self.assertIn("no such message %s" % qid, r.stderr)
        recs = [l for l in audit_lines(self.relay)
                if "qid=%s event=admin" % qid in l and "action=queue.delete" in l]
        self.assertEqual(len(recs), 1, recs)
        self.assertRegex(recs[0], r"by=uid:\d+ via=daemon pending=1 sender=delete@example\.test")
        # The next hop comes back: nothing is delivered, nothing resurrects.
        self.never.start()
        self.relay.wait_log(r"%s: action=queue\.delete" % qid)
        time.sleep(3.0)
        self.assertEqual(self.never.count(b"deleted-message body"), 0)
        self.assertNotRegex(self.relay.log(), r"%s: to=<%s>.*status=sent" % (qid, re.escape(rcpt)))
        self.assertNotIn(qid, self.relay.queue_ids())


class ControlVerbsTest(RelayTestCase):
    """A one-hour backoff: any second attempt within seconds is the
    verb's doing. held.test routes to a closed port."""
    relay_options = dict(SLOW_RETRY)
    with_sink = False

    def test_retry_attempts_now(self):
        rcpt = "retry@held.test"
        qid = send(self.relay, "retry@example.test", rcpt, "retry")
        wait_attempts(self.relay, qid, rcpt, 1)
        self.assertEqual(self.relay.queue_show(qid)["recipients"][0]["attempts"], 1)
        r = self.relay.ctl_ok("queue", "retry", qid)
        self.assertIn(BY_DAEMON, r.stdout)
        wait_attempts(self.relay, qid, rcpt, 2, timeout=10)
        wait_for(lambda: self.relay.queue_show(qid)["recipients"][0]["attempts"] == 2, 10,
                 what="attempts=2 in queue show")
        # held: retry changes nothing and says why
        self.relay.ctl_ok("queue", "hold", qid)
        r = self.relay.ctl_ok("queue", "retry", qid)
        self.assertIn("is held", r.stdout)
        time.sleep(1.0)
        self.assertEqual(attempts(self.relay, qid, rcpt), 2)
        self.relay.ctl_ok("queue", "delete", qid)

    def test_flush_attempts_everything(self):
        qids = [(send(self.relay, "flush@example.test", "f%d@held.test" % i, "flush%d" % i),
                 "f%d@held.test" % i) for i in range(3)]
        for qid, rcpt in qids:
            wait_attempts(self.relay, qid, rcpt, 1)
        # one of them held: flush leaves it alone
        held_qid, held_rcpt = qids[2]
        self.relay.ctl_ok("queue", "hold", held_qid)
        r = self.relay.ctl_ok("queue", "flush")
        self.assertIn(BY_DAEMON, r.stdout)
        self.assertRegex(r.stdout, r"\b[2-9]\d* messages due now \([1-9]\d* held left alone\)")
        for qid, rcpt in qids[:2]:
            wait_attempts(self.relay, qid, rcpt, 2, timeout=10)
        time.sleep(1.0)
        self.assertEqual(attempts(self.relay, held_qid, held_rcpt), 1)
        recs = [l for l in audit_lines(self.relay) if "action=queue.flush" in l]
        self.assertTrue(recs, "no flush audit record")
        self.assertRegex(recs[-1], r"qid= event=admin action=queue\.flush by=uid:\d+ "
                         r"via=daemon messages=\d+ held=\d+")
        for qid, _ in qids:
            self.relay.ctl_ok("queue", "delete", qid)

    def test_socket_mode_and_owner(self):
        path = control_path(self.relay)
        st = os.lstat(path)
        self.assertTrue(stat.S_ISSOCK(st.st_mode), "%s is not a socket" % path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o666, oct(st.st_mode))
        # The daemon's own uid: the test's, or govrelay's after a drop from root.
        self.assertEqual(st.st_uid, self.relay.daemon_uid())

    def test_bad_and_unknown_ids(self):
        for verb in ("hold", "release", "delete", "retry"):
            with self.subTest(verb=verb):
                r = self.relay.ctl("queue", verb, "not-a-queue-id")
                self.assertEqual(r.returncode, EX_DATAERR, r.stderr)
                self.assertIn("bad queue id", r.stderr)
                r = self.relay.ctl("queue", verb, "0123456789ABCDEF")
                self.assertEqual(r.returncode, EX_NOINPUT, r.stderr)
                self.assertIn("no such message 0123456789ABCDEF", r.stderr)
                self.assertIn("running daemon", r.stderr)
                r = self.relay.ctl("queue", verb)
                self.assertEqual(r.returncode, EX_USAGE, r.stderr)
        r = self.relay.ctl("queue", "flush", "0123456789ABCDEF")
        self.assertEqual(r.returncode, EX_USAGE, r.stderr)

    def test_raw_protocol(self):
        path = control_path(self.relay)
        cases = [
            (b"frob\n", r"^error 64 unknown verb"),
            (b"hold\n", r"^error 64 hold needs a queue id"),
            (b"hold xyz\n", r"^error 65 bad queue id"),
            (b"flush now\n", r"^error 64 flush takes no argument"),
            (b"delete 0123456789ABCDEF\n", r"^error 66 no such message 0123456789ABCDEF"),
            (b"hold \xc3\xa9\n", r"^error 64 request must be printable ASCII"),
            (b"A" * 5000, r"^error 64 request longer than 1024 bytes"),
            (b"flush\r\n", r"^ok \d+ messages due now"),
        ]
        for req, want in cases:
            with self.subTest(req=req[:30]):
                got = ask(path, req)
                self.assertRegex(got, want)
                self.assertTrue(got.endswith("\n") and got.count("\n") == 1, repr(got))

    def test_idle_client_and_connection_bound(self):
        path = control_path(self.relay)
        idle = []
        try:
            for _ in range(16):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                idle.append(s)
            # the 17th is answered "busy" at once
            got = ask(path, b"flush\n", timeout=3)
            self.assertRegex(got, r"^error 75 busy")
            r = self.relay.ctl("queue", "flush")
            self.assertEqual(r.returncode, EX_TEMPFAIL, r.stdout + r.stderr)
            self.assertIn("busy", r.stderr)
            # an idle client is told off and closed after 5 s
            s = idle[0]
            s.settimeout(10)
            t0 = time.monotonic()
            got = b""
            while True:
                chunk = s.recv(512)
                if not chunk:
                    break
                got += chunk
            self.assertRegex(got.decode(), r"^error 75 timeout")
            self.assertGreater(time.monotonic() - t0, 3.0)
        finally:
            for s in idle:
                s.close()
        wait_for(lambda: ask(path, b"flush\n").startswith("ok "), 10,
                 what="control socket serving again")

    def test_peer_uid_is_checked(self):
        """Anyone may connect (operators are ordinary users); the daemon
        checks SO_PEERCRED itself: the queue verbs are for root and the
        daemon's own uid only. The folders above the socket are opened up
        here so that uid 65534 can reach it."""
        if os.geteuid() != 0:
            self.skipTest("needs root to connect as another user")
        # The system interpreter: one under /root is out of nobody's reach.
        python = "/usr/bin/python3"
        if not os.access(python, os.X_OK):
            self.skipTest("needs %s" % python)
        # Some roots keep other users out entirely (a chroot under a 0700
        # folder): then this check cannot be made from here.
        try:
            probe = subprocess.run([python, "-c", "pass"], user=65534, group=65534,
                                   extra_groups=[], cwd="/", timeout=30,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except PermissionError:
            probe = None
        if probe is None or probe.returncode != 0:
            self.skipTest("uid 65534 cannot run %s on this machine" % python)
        path = control_path(self.relay)
        dirs = [self.workdir, self.relay.dir, self.relay.data_dir]
        modes = [stat.S_IMODE(os.stat(d).st_mode) for d in dirs]
        try:
            for d in dirs:
                os.chmod(d, 0o755)
            # The daemon answers at accept, so the send may meet a closed socket.
            code = ("import socket\ns = socket.socket(socket.AF_UNIX)\ns.settimeout(10)\n"
                    "s.connect(%r)\ntry:\n    s.sendall(b'flush\\n')\n"
                    "except OSError:\n    pass\nprint(s.recv(512).decode())\n" % path)
            r = subprocess.run([python, "-c", code], user=65534, group=65534,
                               extra_groups=[], cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stdout, r"^error 77 permission denied")
        finally:
            for d, m in zip(dirs, modes):
                os.chmod(d, m)
        self.relay.wait_log(r"control: refused flush from uid 65534")

    def test_daemon_down_applies_to_store(self):
        rcpt = "down@held.test"
        path = control_path(self.relay)
        qid = send(self.relay, "down@example.test", rcpt, "daemon-down")
        wait_attempts(self.relay, qid, rcpt, 1)
        try:
            # Stopped cleanly: the socket is gone (ENOENT).
            self.relay.stop()
            self.assertFalse(os.path.exists(path), "socket left after SIGTERM")
            r = self.relay.ctl_ok("queue", "hold", qid)
            self.assertIn(BY_STORE, r.stdout)
            self.assertIs(self.relay.queue_show(qid)["held"], True)
            r = self.relay.ctl("queue", "hold", "0123456789ABCDEF")
            self.assertEqual(r.returncode, EX_NOINPUT, r.stderr)
            self.assertIn("daemon not running", r.stderr)
            recs = [l for l in audit_lines(self.relay) if "qid=%s event=admin" % qid in l]
            self.assertTrue(any("action=queue.hold" in l and "via=store" in l for l in recs),
                            recs)

            # The daemon honours what the store says.
            self.relay.start()
            before = attempts(self.relay, qid, rcpt)
            r = self.relay.ctl_ok("queue", "release", qid)
            self.assertIn(BY_DAEMON, r.stdout)
            wait_attempts(self.relay, qid, rcpt, before + 1)

            # Killed: a stale socket nobody answers on (ECONNREFUSED).
            self.relay.kill9()
            self.assertTrue(stat.S_ISSOCK(os.lstat(path).st_mode))
            r = self.relay.ctl_ok("queue", "hold", qid)
            self.assertIn(BY_STORE, r.stdout)
            r = self.relay.ctl_ok("queue", "flush", "--json")
            doc = harness.json.loads(r.stdout)
            self.assertEqual(doc["applied_by"], "store")
            self.relay.start()
            self.relay.wait_log(r"control: removed the stale socket")
            st = os.lstat(path)
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o666)
            r = self.relay.ctl_ok("queue", "delete", qid)
            self.assertIn(BY_DAEMON, r.stdout)
        finally:
            if not self.relay.running():
                self.relay.start()

    def test_second_daemon_refuses_live_socket(self):
        path = control_path(self.relay)
        other = Relay(self.workdir, name="second", control_socket=path, **SLOW_RETRY)
        try:
            with self.assertRaises(AssertionError):
                other.start(timeout=10)
        finally:
            if other.running():
                other.kill9()
        self.assertRegex(other.log(), r"control_socket .* is in use")
        self.assertTrue(stat.S_ISSOCK(os.lstat(path).st_mode))
        self.assertRegex(ask(path, b"flush\n"), r"^ok ")


if __name__ == "__main__":
    harness.main()
