"""
e2e: the audit chain anchored by signed checkpoints (govrelay.conf(5)
"AUDIT CHECKPOINTS", govrelayctl(8) "audit verify --checkpoints").

An Ed25519 key made with `openssl genpkey -algorithm ed25519`; govrelayd
runs with audit_signing_key, audit_checkpoint_file and a small
audit_checkpoint_records; real mail goes through it to smtp-sink. Checked:

- the daemon writes checkpoints on its own (every N records) to the file
  and to its log; `audit checkpoint` writes one through the running daemon
  and, with the daemon stopped, directly; every line verifies;
- `audit verify --checkpoints FILE` passes on the untouched store and
  prints the head it verified (seq and hash, equal to the newest record);
- then, with the daemon stopped, the store is changed through LMDB itself
  (tests/e2e/audit_tamper, liblmdb), each time consistently so that plain
  `audit verify` still says "intact" (what the chain alone cannot see):
  the last three records deleted, the whole chain rewritten with every
  hash recomputed, the store emptied. `audit verify --checkpoints` exits
  65 each time and names what it found (truncated, rewritten, emptied);
  govrelayd started on the cut store logs that it does not match;
- an ordinary local user cannot make the daemon write a checkpoint (77);
- a checkpoint line changed by hand is named as forged; `--key` takes the
  public key (`openssl pkey -pubout`); another key's file is refused;
- govrelayd refuses to start (78, FILE:LINE) with a key readable by
  others, a missing key, an RSA key, or a key without a checkpoint file.
"""
import json
import os
import re
import shutil
import smtplib
import stat
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import GOVRELAYCTL, GOVRELAYD, RelayTestCase, smtplib_queued_id, wait_for  # noqa: E402
from test_tenancy import run_as, usable_user  # noqa: E402

EX_DATAERR = 65
EX_CONFIG = 78
HEX64 = r"[0-9a-f]{64}"
LINE_RE = re.compile(r"govrelay-audit-checkpoint v1 seq=(\d+) hash=(%s) time=\S+ key=(%s) "
                     r"sig=[0-9a-f]{128}" % (HEX64, HEX64))
TAMPER = os.path.join(os.path.dirname(GOVRELAYCTL), "tests", "e2e", "audit_tamper")


def genkey(path, algorithm="ed25519"):
    subprocess.run(["openssl", "genpkey", "-algorithm", algorithm, "-out", path],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    os.chmod(path, 0o600)
    # As installed: the key is the daemon user's alone (no-op when not root).
    harness.give_to_daemon(path)
    return path


class CheckpointCase(RelayTestCase):
    start_relay = False
    dead_domain = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            harness.require_tools("openssl")
            cls.key = genkey(os.path.join(cls.workdir, "audit-key.pem"))
            cls.ckfile = os.path.join(cls.workdir, "checkpoints.log")
            # The checkpoint file is the daemon user's too (govrelayctl run
            # by root appends to it as the store's owner).
            open(cls.ckfile, "a").close()
            harness.give_to_daemon(cls.ckfile)
            cls.relay.configure(audit_signing_key=cls.key, audit_checkpoint_file=cls.ckfile,
                                audit_checkpoint_records=3, audit_checkpoint_interval="1h")
            cls.relay.start()
            cls.traffic()
            cls.relay.stop()
            # With the daemon stopped, `audit checkpoint` signs here: the
            # last checkpoint is now exactly the head.
            cls.direct = cls.relay.ctl_ok("audit", "checkpoint").stdout
            # Later tests restart the daemon and add lines: judge these.
            cls.setup_lines = cls.lines()
            cls.backup = os.path.join(cls.workdir, "data-backup")
            shutil.copytree(cls.relay.data_dir, cls.backup,
                            ignore=shutil.ignore_patterns("*.sock"))
        except BaseException:
            cls._cleanup_class()
            raise

    @classmethod
    def send(cls, marker):
        c = smtplib.SMTP("127.0.0.1", cls.relay.ports["mx"], local_hostname="client.test",
                         timeout=15)
        try:
            c.ehlo()
            c.mail("sender@example.org")
            c.rcpt("anna@%s" % cls.sink_domain)
            qid = smtplib_queued_id(c.data(("Subject: %s\r\n\r\n%s body\r\n"
                                            % (marker, marker)).encode()))
            c.quit()
        finally:
            c.close()
        cls.sink.find((marker + " body").encode())
        cls.relay.wait_gone(qid)

    @classmethod
    def traffic(cls):
        # The first checkpoint comes at the first tick (none written yet);
        # the next once 3 more records were added (the interval is 1h).
        cls.send("ckpt-0")
        wait_for(lambda: cls.seqs(), 15, what="a checkpoint written by the daemon")
        first = max(cls.seqs())
        cls.send("ckpt-1")
        cls.send("ckpt-2")
        wait_for(lambda: max(cls.seqs()) >= first + 3, 15,
                 what="a checkpoint 3 records after the first")
        cls.before_demand = len(cls.lines())
        cls.demand = cls.relay.ctl_ok("audit", "checkpoint").stdout
        cls.daemon_log = cls.relay.log()

    @classmethod
    def lines(cls, path=None):
        try:
            with open(path or cls.ckfile) as f:
                return [l.rstrip("\n") for l in f if l.strip()]
        except FileNotFoundError:
            return []

    @classmethod
    def seqs(cls):
        return [int(m.group(1)) for m in map(LINE_RE.match, cls.lines()) if m]

    # -- helpers

    def restore(self):
        """The store as it was after the traffic (each test tampers anew),
        owned as before (the daemon's user's when it dropped root)."""
        st = os.stat(self.relay.data_dir)
        shutil.rmtree(self.relay.data_dir)
        shutil.copytree(self.backup, self.relay.data_dir)
        for top, dirs, files in os.walk(self.relay.data_dir):
            for name in [top] + [os.path.join(top, f) for f in files]:
                os.chown(name, st.st_uid, st.st_gid, follow_symlinks=False)

    def tamper(self, *args):
        if not os.access(TAMPER, os.X_OK):
            self.fail("tamper tool not built at %s (make check builds it)" % TAMPER)
        r = subprocess.run([TAMPER, self.relay.data_dir] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def head(self, out):
        m = re.search(r"^head: seq=(\d+) hash=(%s)$" % HEX64, out, re.M)
        self.assertTrue(m, "no head line in: %s" % out)
        return int(m.group(1)), m.group(2)

    def verify_anchored(self, *extra):
        return self.relay.ctl("audit", "verify", "--checkpoints", self.ckfile, *extra)

    def newest_record(self):
        recs = harness.parse_json_lines(self.relay.ctl_ok("audit", "search", "--json").stdout)
        return recs[-1] if recs else None


class CheckpointTest(CheckpointCase):

    def test_daemon_writes_checkpoints(self):
        lines = self.setup_lines
        self.assertGreaterEqual(self.before_demand, 1)
        for l in lines:
            self.assertRegex(l, "^" + LINE_RE.pattern + "$")
        # the daemon's lines are in its log too (syslog's copy)
        first = lines[0]
        self.assertIn("audit checkpoint: " + first, self.daemon_log)
        seqs = [int(LINE_RE.match(l).group(1)) for l in lines]
        self.assertEqual(seqs, sorted(seqs), "checkpoints go forward")
        # the daemon wrote at least two on its own, 3 or more records apart
        own = seqs[:self.before_demand]
        self.assertGreaterEqual(len(set(own)), 2, own)
        self.assertGreaterEqual(own[-1] - own[0], 3, own)
        # and never twice for the same head on its own
        self.assertEqual(len(own), len(set(own)), own)
        self.assertEqual(len({LINE_RE.match(l).group(3) for l in lines}), 1, "one key")

    def test_checkpoint_on_demand(self):
        # through the running daemon, then directly with the daemon stopped
        self.assertIn("by the running daemon", self.demand)
        self.assertIn("daemon not running: signed here", self.direct)
        lines = self.setup_lines
        self.assertGreaterEqual(len(lines), self.before_demand + 2, lines)
        for out in (self.demand, self.direct):
            m = LINE_RE.search(out)
            self.assertTrue(m, out)
            self.assertIn(m.group(0), lines)
        self.assertEqual(LINE_RE.search(self.direct).group(0), lines[-1])
        self.restore()
        r = self.relay.ctl_ok("audit", "checkpoint", "--json")
        doc = json.loads(r.stdout)
        self.assertEqual(doc["line"], self.lines()[-1])
        self.assertEqual(doc["written_by"], "store")

    def test_untouched_store_passes(self):
        self.restore()
        r = self.verify_anchored()
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("audit chain intact", out)
        self.assertIn("the chain holds every checkpoint", out)
        seq, h = self.head(r.stdout)
        newest = self.newest_record()
        self.assertEqual((seq, h), (int(newest["seq"]), newest["hash"]))
        # plain verify prints the head too
        r = self.relay.ctl_ok("audit", "verify")
        self.assertEqual(self.head(r.stdout), (seq, h))
        r = self.verify_anchored("--json")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        doc = json.loads(r.stdout)
        self.assertIs(doc["anchored"], True, doc)
        self.assertEqual((doc["head_seq"], doc["head_hash"]), (seq, h))
        self.assertEqual(doc["problems"], [])
        self.assertGreaterEqual(doc["checkpoints"], 3)

    def assertPlainVerifyIntact(self):
        """What the chain alone says after a consistent change: intact."""
        r = self.relay.ctl("audit", "verify")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return self.head(r.stdout)

    def assertAnchorFails(self, kind, pattern):
        r = self.verify_anchored()
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, EX_DATAERR, out)
        self.assertRegex(out, r"(?m)^%s: %s" % (kind, pattern))
        self.assertIn("does not hold its signed checkpoints", r.stderr)
        head = self.head(r.stdout)
        r = self.verify_anchored("--json")
        self.assertEqual(r.returncode, EX_DATAERR, r.stdout + r.stderr)
        doc = json.loads(r.stdout)
        self.assertIs(doc["anchored"], False, doc)
        self.assertIn(kind, [p["kind"] for p in doc["problems"]], doc)
        return head, out

    def test_cut_tail_is_found(self):
        self.restore()
        n = int(self.newest_record()["seq"])
        self.tamper("cut", "3")
        seq, _ = self.assertPlainVerifyIntact()
        self.assertEqual(seq, n - 3)
        head, out = self.assertAnchorFails(
            "truncated", r"the chain ends at record %d, but the checkpoint on line \d+ names "
            r"record %d: at least 3 records were cut from the end" % (n - 3, n))
        self.assertEqual(head[0], n - 3)
        # the daemon says so at start-up, in its log (syslog)
        self.relay.start()
        try:
            self.relay.wait_log(r"audit chain does not match the last checkpoint in \S+: "
                                r"truncated: the previous checkpoint names record %d but the "
                                r"chain's head is record %d" % (n, n - 3))
        finally:
            self.relay.stop()

    def test_rewritten_chain_is_found(self):
        self.restore()
        old = self.newest_record()
        self.tamper("rewrite")
        seq, h = self.assertPlainVerifyIntact()
        self.assertEqual(seq, int(old["seq"]))
        self.assertNotEqual(h, old["hash"])
        self.assertAnchorFails("rewritten", r"record \d+ has hash %s, but the checkpoint on "
                               r"line \d+ names %s: the chain was rewritten" % (HEX64, HEX64))

    def test_emptied_store_is_found(self):
        self.restore()
        self.tamper("empty")
        r = self.relay.ctl("audit", "verify")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("audit chain intact: 0 records", r.stdout)
        self.assertEqual(self.head(r.stdout), (0, "0" * 64))
        self.assertAnchorFails("emptied", r"the audit chain is empty, but the checkpoint on "
                               r"line \d+ names record \d+: the store was emptied")

    def test_forged_line_and_keys(self):
        self.restore()
        lines = self.lines()
        forged = os.path.join(self.workdir, "forged.log")
        m = LINE_RE.match(lines[0])
        bad = lines[0].replace("seq=%s " % m.group(1), "seq=%d " % (int(m.group(1)) + 1), 1)
        with open(forged, "w") as f:
            f.write("\n".join([bad] + lines[1:]) + "\n")
        r = self.relay.ctl("audit", "verify", "--checkpoints", forged)
        self.assertEqual(r.returncode, EX_DATAERR, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"(?m)^forged: line 1 has a signature that does not verify")
        # --key with the public key alone
        pub = os.path.join(self.workdir, "audit-pub.pem")
        subprocess.run(["openssl", "pkey", "-in", self.key, "-pubout", "-out", pub], check=True,
                       timeout=60)
        r = self.verify_anchored("--key", pub)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # another key: every line is named as signed by another key
        other = genkey(os.path.join(self.workdir, "other.pem"))
        r = self.verify_anchored("--key", other)
        self.assertEqual(r.returncode, EX_DATAERR, r.stdout + r.stderr)
        self.assertRegex(r.stdout, r"(?m)^other-key: line 1 is signed by key")
        # a missing checkpoint file
        r = self.relay.ctl("audit", "verify", "--checkpoints", forged + ".missing")
        self.assertEqual(r.returncode, 66, r.stdout + r.stderr)


    def test_local_user_cannot_checkpoint(self):
        """An ordinary local user (nobody) asks the running daemon for a
        checkpoint: refused (77) before anything is signed."""
        pw, why = usable_user("nobody")
        if pw is None:
            self.skipTest(why)
        self.restore()
        for d in (self.workdir, self.relay.dir):
            os.chmod(d, 0o755)
        os.chmod(self.relay.conf, 0o644)
        # The file's last checkpoint is the head: the daemon has nothing due.
        self.relay.ctl_ok("audit", "checkpoint")
        before = self.lines()
        self.relay.start()
        try:
            r = run_as(pw, [GOVRELAYCTL, "-c", self.relay.conf, "audit", "checkpoint"])
        finally:
            self.relay.stop()
        self.assertEqual(r.returncode, 77, r.stdout + r.stderr)
        self.assertEqual(self.lines(), before)


class KeyRefusalTest(RelayTestCase):
    """govrelayd -t and start-up refuse a key that cannot anchor anything."""
    start_relay = False
    with_sink = False
    dead_domain = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            harness.require_tools("openssl")
            cls.key = genkey(os.path.join(cls.workdir, "audit-key.pem"))
        except BaseException:
            cls._cleanup_class()
            raise

    def setUp(self):
        self.conf = os.path.join(self.workdir, "refuse.conf")

    def check(self, key, ckfile="checkpoints.log"):
        lines = ["data_dir = %s" % self.relay.data_dir, "hostname = relay.test",
                 "listen = mx 127.0.0.1:%d" % harness.free_port()]
        if key is not None:
            lines.append("audit_signing_key = %s" % key)
        if ckfile is not None:
            lines.append("audit_checkpoint_file = %s" % os.path.join(self.workdir, ckfile))
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        return subprocess.run([GOVRELAYD, "-t", "-c", self.conf], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=60)

    def test_refusals(self):
        r = self.check(self.key)
        self.assertEqual(r.returncode, 0, r.stderr)
        loose = os.path.join(self.workdir, "loose.pem")
        shutil.copy(self.key, loose)
        os.chmod(loose, 0o640)
        rsa = genkey(os.path.join(self.workdir, "rsa.pem"), "rsa")
        cases = [
            (loose, "checkpoints.log", r"refuse\.conf:4: audit_signing_key: .*accessible by "
             r"group or others \(mode 0640\)"),
            (os.path.join(self.workdir, "nokey.pem"), "checkpoints.log",
             r"refuse\.conf:4: audit_signing_key: cannot read .*nokey\.pem"),
            (rsa, "checkpoints.log", r"refuse\.conf:4: audit_signing_key: .*RSA key, not an "
             r"Ed25519 key"),
            (self.key, None, r"refuse\.conf:4: audit_signing_key is set but "
             r"audit_checkpoint_file is not"),
        ]
        for key, ck, pattern in cases:
            with self.subTest(pattern=pattern):
                r = self.check(key, ck)
                self.assertEqual(r.returncode, EX_CONFIG, r.stdout + r.stderr)
                self.assertRegex(r.stderr, pattern)
        self.assertEqual(stat.S_IMODE(os.stat(self.key).st_mode), 0o600)


if __name__ == "__main__":
    harness.main()
