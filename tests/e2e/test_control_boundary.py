"""
e2e: the control socket as a boundary (issue 9), against the running
daemon, with real unprivileged Unix users run through subprocess as
another uid (the way test_tenancy.py does it; skipped when not root).

- A non-operator ("daemon", uid 1) is cut off before any payload is
  read: a connection that sends nothing at all gets `error 77` at once
  (the decision is the peer's SO_PEERCRED uid alone); 200 connections
  that each try to send 4 MiB get their bytes refused (the kernel
  accepts no more than its socket buffers, far below the 4 MiB the old
  daemon read) and are closed promptly; the audit chain grows by a few
  records (the first refusals, one by one, naming the command), not 200;
  after a restart the rest is there as one coalesced record ("N refusals
  from uid 1 since T") and the numbers add up to 200. govrelayctl run by
  the non-operator still says "permission denied" and exits 77.
- An authorized operator ("nobody") is held to the payload bounds: an
  ordinary command of 200 KB is refused (`error 64`) after at most the
  ordinary bound was read, while `mailbox import` of a larger file
  works; a request trickling in byte by byte is cut at its one total
  deadline (not restarted by each read).
- A slow reader of `audit search` ("nobody" as the city's auditor) who
  reads 100 bytes and stalls does not pin the store: while it stalls,
  LMDB's reader table (mdb_stat -r) shows no read transaction of the
  daemon staying open, mail keeps flowing (every message 250), and the
  daemon closes the slow session at control_command_time. The same for
  a slow reader of `queue list` (root over the socket, 1,200 queued
  messages), whose pages, read at once, give every message once. And
  SIGTERM does not wait for a stalled reader: the daemon exits at once.
"""
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Sink, wait_for  # noqa: E402
from test_tenancy import TenancyCase, audit_records, last_seq, run_as, usable_user  # noqa: E402

EX_USAGE = 64
EX_NOPERM = 77
PYTHON = "/usr/bin/python3"
# control_command_time of the slow-reader class: long enough to sample the
# store a few times while the reader stalls (longer under valgrind).
COMMAND_TIME_S = 20 if os.environ.get("GOVRELAYD_WRAPPER") else 8


def exec_payload(argv, stdin=b""):
    """The exec payload of common/ctlproto.h: argc, (len, arg)..., len, stdin."""
    out = struct.pack(">I", len(argv))
    for a in argv:
        a = a.encode()
        out += struct.pack(">I", len(a)) + a
    return out + struct.pack(">I", len(stdin)) + stdin


def open_up(case):
    """mkdtemp folders are 0700: let other users reach the configuration
    file and the socket beside data_dir (the socket's own mode is the
    daemon's business)."""
    for d in (case.workdir, case.relay.dir, case.relay.data_dir):
        os.chmod(d, 0o755)
    os.chmod(case.relay.conf, 0o644)


def control_path(relay):
    return os.path.join(relay.data_dir, "control.sock")


def as_user(pw, code, timeout=120):
    """Runs a Python program as the unix user; its stdout decoded as JSON."""
    r = run_as(pw, [PYTHON, "-c", code], timeout=timeout)
    if r.returncode != 0:
        raise AssertionError("as %s: exit %d\n%s" % (pw.pw_name, r.returncode, r.stderr))
    return json.loads(r.stdout)


# Run as the non-operator: connects `n` times; each time sends `size`
# bytes (a request line announcing a big exec, then filler) without
# blocking for long, and reports how much the kernel took, what came back
# and how long the daemon took to close.
HAMMER = r"""
import json, socket, sys, time
path, n, size = %r, %d, %d
res = []
for i in range(n):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    t0 = time.monotonic()
    sent = 0
    data = b"exec 67108864\n" + b"x" * (size - 14) if size else b""
    err = None
    s.settimeout(0.5)
    while sent < len(data):
        try:
            k = s.send(data[sent:sent + 65536])
        except socket.timeout:
            err = "stalled"
            break
        except OSError as e:
            err = e.__class__.__name__
            break
        sent += k
    s.settimeout(10)
    got = b""
    try:
        while True:
            c = s.recv(4096)
            if not c:
                break
            got += c
    except OSError as e:
        err = err or e.__class__.__name__
    res.append({"sent": sent, "reply": got.decode(errors="replace"), "err": err,
                "secs": time.monotonic() - t0})
    s.close()
print(json.dumps(res))
"""


class NonOperatorTest(TenancyCase):
    """uid 1 ("daemon") is no operator; nobody is the postmaster of dept."""

    @classmethod
    def prepare(cls):
        cls.pw, cls.skip_reason = usable_user("daemon")
        if cls.pw is not None and not os.access(PYTHON, os.X_OK):
            cls.pw, cls.skip_reason = None, "needs %s" % PYTHON
        cls.ctl("tenant", "add", "city", "--name", "City")
        cls.ctl("tenant", "add", "dept", "--name", "Dept", "--parent", "city")
        cls.ctl("domain", "add", "dept.test", "--tenant", "dept",
                "--route", "smtp:127.0.0.1:%d" % cls.relay.dead_port)
        open_up(cls)

    def setUp(self):
        if self.pw is None:
            self.skipTest(self.skip_reason)

    def denied_since(self, since):
        return [x for x in audit_records(self.relay, "--event", "admin")
                if int(x["seq"]) > since and x.get("action") == "denied"]

    def test_cut_off_before_any_payload(self):
        path = control_path(self.relay)
        since = last_seq(self.relay)
        # Nothing sent at all: the answer comes from the uid alone.
        first = as_user(self.pw, HAMMER % (path, 1, 0))[0]
        self.assertRegex(first["reply"], r"^error 77 permission denied: daemon is not an "
                         r"operator", first)
        self.assertLess(first["secs"], 5.0, first)
        # 200 connections, each trying to push 4 MiB.
        t0 = time.monotonic()
        res = as_user(self.pw, HAMMER % (path, 199, 4 << 20), timeout=300)
        took = time.monotonic() - t0
        self.assertEqual(len(res), 199)
        for r in res:
            # The kernel's socket buffers at most: the daemon consumed nothing.
            self.assertLess(r["sent"], 1 << 20, r)
            self.assertLess(r["secs"], 5.0, r)
            if r["reply"]:
                self.assertRegex(r["reply"], r"^error 77 permission denied", r)
        self.assertLess(took, 120.0)
        # A few records of their own, each naming what was refused, not 200.
        denied = self.denied_since(since)
        self.assertGreaterEqual(len(denied), 1, denied)
        self.assertLessEqual(len(denied), 6, denied)
        for x in denied:
            self.assertEqual(x.get("by"), "daemon", x)
        self.assertEqual(denied[0].get("command"), "-", denied[0])  # it sent nothing
        self.assertTrue(any(x.get("command") == "exec" for x in denied[1:]), denied)
        self.relay.wait_log(r"control: refused - from uid 1 \(daemon\)")
        # The daemon serves its operators as before.
        self.relay.ctl_ok("tenant", "list")
        # The counts come out as one coalesced record (at the latest when
        # the daemon stops); together with the single ones: 200.
        self.relay.restart()
        denied = self.denied_since(since)
        coalesced = [x for x in denied if x.get("count")]
        self.assertEqual(len(coalesced), 1, denied)
        self.assertRegex(coalesced[0]["reason"], r"^\d+ refusals from uid 1 since \d{4}-")
        self.assertEqual(int(coalesced[0]["count"]) + len(denied) - 1, 200, denied)

    def test_govrelayctl_told_why(self):
        r = run_as(self.pw, [harness.GOVRELAYCTL, "-c", self.relay.conf, "domain", "list"])
        self.assertEqual(r.returncode, EX_NOPERM, r.stdout + r.stderr)
        self.assertIn("permission denied: daemon is not an operator", r.stderr)


# Run as an operator: one raw exec request whose payload is `size` bytes,
# sent all at once; the daemon's reply.
OVERSIZED = r"""
import json, socket, struct
path, size = %r, %d
argv = [b"domain", b"list"]
p = struct.pack(">I", len(argv))
for a in argv:
    p += struct.pack(">I", len(a)) + a
p += struct.pack(">I", size - len(p) - 4)
p += b"y" * (size - len(p))
s = socket.socket(socket.AF_UNIX)
s.settimeout(20)
s.connect(path)
err = None
try:
    s.sendall(b"exec %%d\n" %% len(p) + p)
except OSError as e:
    err = e.__class__.__name__
got = b""
try:
    while True:
        c = s.recv(4096)
        if not c:
            break
        got += c
except OSError as e:
    err = err or e.__class__.__name__
print(json.dumps({"reply": got.decode(errors="replace"), "err": err}))
"""

# Run as an operator: an exec request trickled one byte every 0.4 s.
TRICKLE = r"""
import json, socket, time
path = %r
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(path)
t0 = time.monotonic()
s.sendall(b"exec 100\n")
got = b""
s.setblocking(False)
while time.monotonic() - t0 < 25:
    try:
        s.send(b"z")
    except OSError:
        pass
    time.sleep(0.4)
    try:
        c = s.recv(4096)
        if not c:
            break
        got += c
    except BlockingIOError:
        pass
    except OSError:
        break
print(json.dumps({"reply": got.decode(errors="replace"), "secs": time.monotonic() - t0}))
"""


class OperatorBoundsTest(TenancyCase):
    """nobody is the postmaster of dept."""

    @classmethod
    def prepare(cls):
        cls.pw, cls.skip_reason = usable_user("nobody")
        if cls.pw is not None and not os.access(PYTHON, os.X_OK):
            cls.pw, cls.skip_reason = None, "needs %s" % PYTHON
        cls.ctl("tenant", "add", "city", "--name", "City")
        cls.ctl("tenant", "add", "dept", "--name", "Dept", "--parent", "city")
        cls.ctl("domain", "add", "dept.test", "--tenant", "dept",
                "--route", "smtp:127.0.0.1:%d" % cls.relay.dead_port)
        cls.ctl("operator", "add", "nobody", "--tenant", "dept", "--role", "postmaster")
        open_up(cls)

    def setUp(self):
        if self.pw is None:
            self.skipTest(self.skip_reason)

    def test_oversized_ordinary_payload_refused(self):
        r = as_user(self.pw, OVERSIZED % (control_path(self.relay), 200000))
        self.assertRegex(r["reply"], r"^error 64 a request of 200000 bytes is refused: "
                         r"commands send at most 65536 bytes", r)
        # Just under the bound: an ordinary command runs (its stdin is ignored).
        r = as_user(self.pw, OVERSIZED % (control_path(self.relay), 60000))
        self.assertIn("exit 0", r["reply"], r)
        self.assertIn("dept.test", r["reply"], r)

    def test_import_may_be_larger(self):
        rows = "".join("clerk%d@dept.test\n" % i for i in range(6000))
        self.assertGreater(len(rows), 65536)
        r = run_as(self.pw, [harness.GOVRELAYCTL, "-c", self.relay.conf, "mailbox", "import",
                             "-"], input=rows)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.relay.ctl_ok("mailbox", "show", "clerk5999@dept.test")

    def test_one_total_deadline_for_the_request(self):
        r = as_user(self.pw, TRICKLE % control_path(self.relay))
        # Reads keep arriving, yet the request is cut 5 s after accept.
        self.assertRegex(r["reply"], r"^error 75 timeout", r)
        self.assertLess(r["secs"], 8.0, r)


# Run as the auditor (or root): a listing over the socket; reads 100
# bytes, then stalls without reading until the daemon closes its end
# (POLLRDHUP), then drains what was buffered.
SLOW = r"""
import json, select, socket, struct, sys, time
path, argv = %r, %r
p = struct.pack(">I", len(argv))
for a in argv:
    p += struct.pack(">I", len(a)) + a
p += struct.pack(">I", 0)
s = socket.socket(socket.AF_UNIX)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.settimeout(30)
s.connect(path)
t0 = time.monotonic()
s.sendall(b"exec %%d\n" %% len(p) + p)
head = s.recv(100)
sys.stdout.write("stalled\n")
sys.stdout.flush()
po = select.poll()
po.register(s, select.POLLRDHUP)
closed = None
if po.poll(60000):
    closed = time.monotonic() - t0
got = head
while True:
    try:
        c = s.recv(65536)
    except OSError:
        break
    if not c:
        break
    got += c
print(json.dumps({"closed_after": closed, "bytes": len(got),
                  "exit": b"\nexit " in got}))
"""


def mdb_readers(data_dir, pid):
    """The txnids of the daemon's open read transactions (mdb_stat -r)."""
    out = subprocess.run(["mdb_stat", "-r", data_dir], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True,
                         timeout=30).stdout
    txns = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 3 and f[0] == str(pid) and f[2] != "-":
            txns.append(int(f[2]))
    return txns


class SlowReaderTest(TenancyCase):
    """nobody audits the city; mail.test (city) is delivered to a sink,
    held.test (city) waits in the queue (its next hop is down)."""

    relay_options = {"trusted_networks": "127.0.0.1/32",
                     "control_command_time": "%ds" % COMMAND_TIME_S}

    @classmethod
    def prepare(cls):
        cls.pw, cls.skip_reason = usable_user("nobody")
        if cls.pw is not None and not os.access(PYTHON, os.X_OK):
            cls.pw, cls.skip_reason = None, "needs %s" % PYTHON
        if cls.pw is not None and shutil.which("mdb_stat") is None:
            cls.pw, cls.skip_reason = None, "needs mdb_stat (lmdb-utils)"
        cls.sink = Sink(cls.workdir).start()
        cls.ctl("tenant", "add", "city", "--name", "City")
        cls.ctl("domain", "add", "mail.test", "--tenant", "city", "--accept-all",
                "--route", cls.sink.route)
        cls.ctl("domain", "add", "held.test", "--tenant", "city", "--accept-all",
                "--route", "smtp:127.0.0.1:%d" % cls.relay.dead_port)
        cls.ctl("operator", "add", "nobody", "--tenant", "city", "--role", "auditor")
        open_up(cls)

    def setUp(self):
        if self.pw is None:
            self.skipTest(self.skip_reason)

    def send_many(self, n, clients, body=b"x" * 70 + b"\r\n", results=None,
                  rcpt="box@mail.test"):
        """n messages over `clients` connections; the final codes."""
        results = [] if results is None else results

        def one(k):
            c = harness.RawSMTP(self.relay.port, timeout=60.0)
            try:
                c.ehlo()
                for i in range(k):
                    c.expect("MAIL FROM:<s@example.org>", 250)
                    c.expect("RCPT TO:<%s>" % rcpt, 250)
                    c.expect("DATA", 354)
                    c.send(harness.dot_stuff(b"Subject: churn\r\n\r\n" + body))
                    results.append(c.cmd(b".").code)
                c.cmd("QUIT")
            except Exception as e:  # noqa: BLE001 - counted as a failure
                results.append(repr(e))
            finally:
                c.close()
        threads = [threading.Thread(target=one, args=(n // clients,)) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return results

    def stall_and_churn(self, argv, user=None):
        """Runs a slow reader of argv (as user, or root) and, while it
        stalls, sends mail and samples LMDB's reader table. Returns the
        reader's report once the daemon has cut it off."""
        kw = {}
        if user is not None:
            kw = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        slow = subprocess.Popen([PYTHON, "-c", SLOW % (control_path(self.relay), argv)],
                                cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, **kw)
        self.addCleanup(slow.kill)
        t0 = time.monotonic()
        self.assertEqual(slow.stdout.readline(), "stalled\n")
        pid = self.relay.proc.pid
        # While it stalls: mail flows, and no read transaction of the
        # daemon stays open (one that did would show the same old txnid
        # in every sample while the writer's txnid moves on).
        samples, codes = [mdb_readers(self.relay.data_dir, pid)], []
        while len(samples) < 2 or time.monotonic() - t0 < COMMAND_TIME_S - 3:
            self.send_many(40, 4, body=(b"y" * 70 + b"\r\n") * 300, results=codes)
            samples.append(mdb_readers(self.relay.data_dir, pid))
        # The samples count only while the reader was still stalled.
        # (t0 is before the request was sent: the daemon's clock starts later.)
        self.assertLess(time.monotonic() - t0, COMMAND_TIME_S,
                        "too slow: the reader was cut off before the last sample")
        self.assertEqual(codes, [250] * len(codes), [c for c in codes if c != 250][:5])
        pinned = set(samples[0])
        for s in samples[1:]:
            pinned &= set(s)
        self.assertEqual(pinned, set(), "a read transaction stayed open: %r" % samples)
        # The session ends at control_command_time, its output cut.
        out, err = slow.communicate(timeout=60)
        r = json.loads(out.splitlines()[-1])
        self.assertIsNotNone(r["closed_after"], (r, err))
        self.assertGreater(r["closed_after"], COMMAND_TIME_S - 1, r)
        self.assertLess(r["closed_after"], COMMAND_TIME_S + 5, r)
        self.assertFalse(r["exit"], r)
        return r

    def test_slow_audit_reader_pins_nothing(self):
        # Enough of the city's records that the output outgrows every buffer.
        codes = self.send_many(1600, 8)
        self.assertEqual(codes, [250] * 1600, [c for c in codes if c != 250][:5])
        self.relay.wait_queue_empty(timeout=120)
        self.stall_and_churn([b"audit", b"search", b"--json"], user=self.pw)
        # And an auditor who reads gets the whole search.
        r = run_as(self.pw, [harness.GOVRELAYCTL, "-c", self.relay.conf, "audit", "search",
                             "--json"], timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreaterEqual(r.stdout.count("\n"), 1600)

    def test_slow_queue_reader_pins_nothing(self):
        # A long queue: messages for held.test wait (its next hop is down).
        codes = self.send_many(1200, 8, rcpt="box@held.test")
        self.assertEqual(codes, [250] * 1200, [c for c in codes if c != 250][:5])
        self.stall_and_churn([b"queue", b"list", b"--json"])
        # Read at once, every page is there: each message once, in id order.
        msgs = harness.parse_json_lines(self.relay.ctl_ok("queue", "list", "--json").stdout)
        ids = [m["id"] for m in msgs]
        self.assertEqual(ids, sorted(set(ids)))
        held = [m for m in msgs if m["recipients"][0]["address"] == "box@held.test"]
        self.assertEqual(len(held), 1200)
        text = self.relay.ctl_ok("queue", "list").stdout
        self.assertEqual(text.count("box@held.test"), 1200)

    def test_stop_while_a_reader_stalls(self):
        """SIGTERM does not wait for a stalled reader's control_command_time."""
        if last_seq(self.relay) < 1500:
            codes = self.send_many(1600, 8)
            self.assertEqual(codes, [250] * 1600, [c for c in codes if c != 250][:5])
        slow = subprocess.Popen([PYTHON, "-c", SLOW % (control_path(self.relay),
                                                       [b"audit", b"search", b"--json"])],
                                cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True)
        self.addCleanup(slow.kill)
        self.assertEqual(slow.stdout.readline(), "stalled\n")
        t0 = time.monotonic()
        self.relay.stop()          # asserts exit 0
        self.assertLess(time.monotonic() - t0, COMMAND_TIME_S - 2)
        out, err = slow.communicate(timeout=60)
        self.assertFalse(json.loads(out.splitlines()[-1])["exit"], out)
        self.relay.start()


if __name__ == "__main__":
    harness.main()
