"""
e2e: the audit trail through govrelayctl (govrelayctl(8) "Audit trail").
After real traffic (smtplib to the mx listener, delivered to smtp-sink,
one recipient refused) and administrator changes:

- `audit verify` exits 0 and counts every record (text and --json);
- `audit search` with --event, --sender, --recipient, --queue-id,
  --tenant, --since (relative, ISO with milliseconds, @unix seconds) and
  --until; every --json line parses and the filters hold; bad filters
  exit 65;
- `audit export --format jsonl` equals `search --json`; `--format csv` is
  RFC 4180 with CRLF, parsed with Python's csv module;
- tampering: with govrelayd stopped, one byte of a middle record's line
  is changed in LMDB itself (python3-lmdb); `audit verify` exits 65 and
  names that record.
"""
import csv
import io
import json
import os
import re
import smtplib
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RelayTestCase, Sink, smtplib_queued_id  # noqa: E402

EX_DATAERR = 65
HEX64 = re.compile(r"^[0-9a-f]{64}$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def as_list(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


class AuditCase(RelayTestCase):
    with_sink = False
    dead_domain = None
    start_relay = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.sink = Sink(cls.workdir).start()
            ctl = cls.relay.ctl_ok
            ctl("tenant", "add", "city", "--name", "City")
            ctl("tenant", "add", "dept", "--name", "Dept", "--parent", "city")
            ctl("tenant", "add", "other", "--name", "Other", "--parent", "city")
            ctl("domain", "add", "dept.test", "--tenant", "dept", "--route", cls.sink.route)
            ctl("domain", "add", "other.test", "--tenant", "other", "--route", cls.sink.route)
            ctl("mailbox", "add", "anna@dept.test")
            ctl("mailbox", "add", "binh@dept.test")
            ctl("mailbox", "add", "chi@other.test")
            cls.relay.start()
            cls.traffic()
        except BaseException:
            cls._cleanup_class()
            raise

    @classmethod
    def send(cls, sender, rcpts, marker, bad_rcpt=None):
        c = smtplib.SMTP("127.0.0.1", cls.relay.ports["mx"], local_hostname="client.test",
                         timeout=15)
        try:
            c.ehlo()
            code, msg = c.mail(sender)
            assert code == 250, (code, msg)
            if bad_rcpt:
                code, msg = c.rcpt(bad_rcpt)
                assert code == 550, (code, msg)
            for r in rcpts:
                code, msg = c.rcpt(r)
                assert code == 250, (code, msg)
            resp = c.data(("From: <%s>\r\nSubject: %s\r\n\r\n%s body\r\n"
                           % (sender, marker, marker)).encode())
            qid = smtplib_queued_id(resp)
            c.quit()
        finally:
            c.close()
        cls.sink.find((marker + " body").encode())
        cls.relay.wait_gone(qid)
        for r in rcpts:
            cls.relay.wait_log(r"%s: to=<%s>.*status=sent" % (qid, re.escape(r)))
        return qid

    @classmethod
    def traffic(cls):
        cls.qid1 = cls.send("sender-one@example.org", ["anna@dept.test"], "audit-one",
                            bad_rcpt="nobody@dept.test")
        cls.relay.ctl_ok("policy", "set", "dept", "max_recipients", "20")
        cls.relay.ctl_ok("mailbox", "add", "dung@dept.test")
        cls.qid2 = cls.send("sender-two@example.org", ["binh@dept.test", "chi@other.test"],
                            "audit-two")
        cls.relay.ctl_ok("policy", "set", "other", "messages_per_hour", "100")

    def search(self, *filters):
        r = self.relay.ctl("audit", "search", *(filters + ("--json",)))
        self.assertEqual(r.returncode, 0, "audit search %s: %s" % (" ".join(filters), r.stderr))
        out = []
        for line in r.stdout.splitlines():
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError as e:
                self.fail("audit search --json line is not JSON (%s): %r" % (e, line))
        return out


class AuditSearchTest(AuditCase):

    def test_verify_clean_store(self):
        everything = self.search()
        n = len(everything)
        self.assertGreater(n, 10)
        self.assertEqual([int(x["seq"]) for x in everything], list(range(1, n + 1)))
        r = self.relay.ctl("audit", "verify")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        m = re.search(r"audit chain intact: (\d+) records", r.stdout)
        self.assertTrue(m, r.stdout)
        self.assertGreaterEqual(int(m.group(1)), n)
        r = self.relay.ctl_ok("audit", "verify", "--json")
        doc = json.loads(r.stdout)
        self.assertIs(doc["intact"], True, doc)
        self.assertGreaterEqual(doc["records"], n)
        # each record's prev is the hash of the one before
        for a, b in zip(everything, everything[1:]):
            self.assertEqual(b["prev"], a["hash"], (a["seq"], b["seq"]))
        self.assertEqual(everything[0]["prev"], "0" * 64)

    def test_json_shape(self):
        for rec in self.search():
            with self.subTest(seq=rec.get("seq")):
                for k in ("seq", "time", "qid", "event", "hash", "prev"):
                    self.assertIn(k, rec)
                self.assertRegex(rec["time"], ISO_MS)
                self.assertRegex(rec["hash"], HEX64)
                self.assertRegex(rec["prev"], HEX64)
        # text form: TIME seq=N event=E qid=Q facts
        lines = self.relay.ctl_ok("audit", "search").stdout.splitlines()
        self.assertTrue(lines)
        for l in lines:
            self.assertRegex(l, r"^\d{4}-\d\d-\d\dT\S+Z seq=\d+ event=[a-z0-9_.-]+ qid=\S* ?")

    def test_filter_event(self):
        admin = self.search("--event", "admin")
        self.assertTrue(admin)
        self.assertTrue(all(x["event"] == "admin" for x in admin))
        actions = [x.get("action") for x in admin]
        for a in ("tenant.add", "domain.add", "mailbox.add", "policy.set"):
            self.assertIn(a, actions)
        self.assertTrue(all(x.get("by") and x.get("via") for x in admin), admin)
        rec = [x for x in admin if x.get("action") == "policy.set" and x.get("object") == "dept"]
        self.assertEqual(len(rec), 1, rec)
        self.assertEqual((rec[0]["key"], rec[0]["value"]), ("max_recipients", "20"))
        delivered = self.search("--event", "delivered")
        self.assertEqual(sorted(t for x in delivered for t in as_list(x.get("to"))),
                         ["anna@dept.test", "binh@dept.test", "chi@other.test"])
        self.assertEqual(self.search("--event", "no-such-event"), [])
        everything = self.search()
        self.assertEqual(len(everything),
                         sum(len(self.search("--event", e))
                             for e in sorted({x["event"] for x in everything})))

    def test_filter_queue_id(self):
        recs = self.search("--queue-id", self.qid2)
        self.assertTrue(recs)
        self.assertTrue(all(x["qid"] == self.qid2 for x in recs), recs)
        events = [x["event"] for x in recs]
        self.assertIn("received", events)
        self.assertEqual(events.count("delivered"), 2, events)
        received = [x for x in recs if x["event"] == "received"][0]
        self.assertEqual(sorted(as_list(received["to"])), ["binh@dept.test", "chi@other.test"])
        self.assertEqual(received["from"], "sender-two@example.org")
        # either case, as the ids are hexadecimal
        self.assertEqual(len(self.search("--queue-id", self.qid2.lower())), len(recs))
        self.assertEqual(self.search("--queue-id", "0123456789ABCDEF"), [])

    def test_filter_sender(self):
        recs = self.search("--sender", "sender-one@example.org")
        self.assertTrue(recs)
        self.assertEqual({x["qid"] for x in recs}, {self.qid1})
        events = [x["event"] for x in recs]
        self.assertIn("received", events)
        self.assertIn("delivered", events)
        self.assertIn("rejected", events)      # RCPT nobody@dept.test in that transaction
        self.assertEqual({x["qid"] for x in self.search("--sender", "sender-two@example.org")},
                         {self.qid2})
        self.assertEqual(self.search("--sender", "nobody-sent@example.org"), [])

    def test_filter_recipient(self):
        recs = self.search("--recipient", "chi@other.test")
        self.assertTrue(recs)
        self.assertEqual({x["qid"] for x in recs}, {self.qid2})
        delivered = [x for x in recs if x["event"] == "delivered"]
        self.assertEqual([as_list(x["to"]) for x in delivered], [["chi@other.test"]])
        self.assertEqual({x["qid"] for x in self.search("--recipient", "anna@dept.test")},
                         {self.qid1})
        rej = self.search("--recipient", "nobody@dept.test")
        self.assertTrue(rej)
        self.assertTrue(all(x["event"] == "rejected" for x in rej), rej)
        self.assertEqual(self.search("--recipient", "never@dept.test"), [])

    def test_filter_tenant(self):
        recs = self.search("--tenant", "other")
        self.assertTrue(recs)
        # a record names the tenant itself, or (message records without a
        # tenant fact) belongs to a message whose `received` record does
        received = {x["qid"]: str(x.get("tenant")).split(",")
                    for x in self.search("--event", "received")}
        self.assertLessEqual({"dept", "other"}, set(received.get(self.qid2, [])), received)
        for x in recs:
            if "tenant" in x:
                self.assertIn("other", str(x["tenant"]).split(","), x)
            else:
                self.assertIn("other", received.get(x["qid"], []), x)
        self.assertEqual({x["qid"] for x in recs if x["qid"]}, {self.qid2})
        self.assertEqual(sorted(as_list(x["to"])[0] for x in recs if x["event"] == "delivered"),
                         ["binh@dept.test", "chi@other.test"])
        actions = {x.get("action") for x in recs}
        self.assertIn("policy.set", actions)
        self.assertIn("domain.add", actions)
        self.assertFalse([x for x in recs if x.get("object") == "dept.test"], recs)
        dept = self.search("--tenant", "dept")
        self.assertTrue(any(x.get("object") == "dung@dept.test" for x in dept), dept)
        # combined filters must all hold
        both = self.search("--tenant", "dept", "--event", "admin")
        self.assertTrue(both)
        self.assertTrue(all(x["event"] == "admin" for x in both))
        self.assertEqual(self.search("--tenant", "no-such-tenant"), [])

    def test_since_until(self):
        everything = self.search()
        self.assertEqual(len(self.search("--since", "-1h")), len(everything))
        self.assertEqual(self.search("--until", "-1h"), [])
        self.assertEqual(len(self.search("--since", "2000-01-01")), len(everything))
        self.assertEqual(len(self.search("--until", "@%d" % (int(time.time()) + 3600))),
                         len(everything))
        self.assertEqual(self.search("--since", "@%d" % (int(time.time()) + 3600)), [])
        # split at a record's own time: [since, ...) and (..., until) partition
        mid = everything[len(everything) // 2]
        t = mid["time"]
        after = self.search("--since", t)
        before = self.search("--until", t)
        self.assertIn(mid["seq"], [x["seq"] for x in after])
        self.assertNotIn(mid["seq"], [x["seq"] for x in before])
        self.assertEqual(sorted([x["seq"] for x in after] + [x["seq"] for x in before]),
                         [x["seq"] for x in everything])
        self.assertTrue(all(x["time"] >= t for x in after))
        self.assertTrue(all(x["time"] < t for x in before))
        window = self.search("--since", t, "--until", "now")
        self.assertEqual([x["seq"] for x in window], [x["seq"] for x in after])
        # the same instant in another zone
        hh = int(t[11:13])
        shifted = "%s%02d%s+01:00" % (t[:11], (hh + 1) % 24, t[13:-1])
        if hh != 23:
            self.assertEqual(len(self.search("--since", shifted)), len(after))
        # bad times are refused
        for bad in ("yesterday", "-2x", "2026-13-01", "@abc"):
            with self.subTest(bad=bad):
                r = self.relay.ctl("audit", "search", "--since", bad)
                self.assertEqual(r.returncode, EX_DATAERR, r.stdout + r.stderr)

    def test_export_jsonl(self):
        r = self.relay.ctl_ok("audit", "export", "--format", "jsonl")
        lines = [l for l in r.stdout.splitlines() if l.strip()]
        recs = [json.loads(l) for l in lines]
        self.assertEqual(recs, self.search())
        # filters apply to export as to search
        r = self.relay.ctl_ok("audit", "export", "--format", "jsonl", "--queue-id", self.qid1)
        self.assertEqual([json.loads(l) for l in r.stdout.splitlines() if l.strip()],
                         self.search("--queue-id", self.qid1))

    def test_export_csv(self):
        r = subprocess.run([harness.GOVRELAYCTL, "-c", self.relay.conf, "audit", "export",
                            "--format", "csv"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        raw = r.stdout.decode("utf-8")
        self.assertTrue(raw.endswith("\r\n"), "CSV rows must end with CRLF")
        self.assertNotRegex(raw, r"(?<!\r)\n(?=.)", "a bare LF between CSV rows")
        rows = list(csv.reader(io.StringIO(raw, newline="")))
        self.assertEqual(rows[0][:6], ["seq", "time", "qid", "event", "hash", "prev"])
        body = rows[1:]
        everything = self.search()
        self.assertEqual(len(body), len(everything))
        for row, rec in zip(body, everything):
            with self.subTest(seq=rec["seq"]):
                self.assertEqual(len(row), len(rows[0]), row)
                self.assertEqual(int(row[0]), int(rec["seq"]))
                self.assertEqual(row[1:6], [rec["time"], rec["qid"], rec["event"],
                                            rec["hash"], rec["prev"]])
                facts = " ".join(row[6:])
                if rec["event"] == "admin":
                    self.assertIn("action=%s" % rec["action"], facts)
        # filters apply
        r = self.relay.ctl_ok("audit", "export", "--format", "csv", "--event", "delivered")
        rows = list(csv.reader(io.StringIO(r.stdout, newline="")))
        self.assertEqual(len(rows) - 1, len(self.search("--event", "delivered")))
        self.assertTrue(all(row[3] == "delivered" for row in rows[1:]))
        r = self.relay.ctl("audit", "export", "--format", "xml")
        self.assertIn(r.returncode, (64, 65), r.stderr)


# ------------------------------------------------------------ tampering

FLIP = r"""
import lmdb, sys
data_dir, want = sys.argv[1], int(sys.argv[2])
env = lmdb.open(data_dir, max_dbs=16, subdir=True, lock=True)
db = env.open_db(b"audit", create=False)
with env.begin(write=True, db=db) as txn:
    # the record whose line starts with seq=WANT (whatever the key encoding)
    hits = [(k, v) for k, v in txn.cursor() if v[64:].startswith(b"seq=%d " % want)]
    assert len(hits) == 1, "record %d found %d times" % (want, len(hits))
    key, val = hits[0][0], bytearray(hits[0][1])
    line = bytes(val[64:])
    # a letter in the second half of the line, case flipped: still ASCII
    pos = None
    for i in range(64 + len(line) // 2, len(val)):
        if 0x61 <= val[i] <= 0x7a:
            pos = i
            break
    assert pos is not None, line
    val[pos] ^= 0x20
    txn.put(key, bytes(val))
    print(line.decode(), "->", bytes(val[64:]).decode())
env.close()
"""


def lmdb_python():
    """An interpreter with the lmdb module (Debian python3-lmdb), or None."""
    for py in (sys.executable, "/usr/bin/python3"):
        if py and os.access(py, os.X_OK):
            r = subprocess.run([py, "-c", "import lmdb"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=30)
            if r.returncode == 0:
                return py
    return None


class AuditTamperTest(AuditCase):

    def test_flipped_byte_is_found(self):
        py = lmdb_python()
        if py is None:
            self.skipTest("python3 lmdb module (Debian python3-lmdb) is not installed")
        r = self.relay.ctl("audit", "verify")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        n = len(self.search())
        self.assertGreater(n, 4)
        target = n // 2
        self.relay.stop()
        r = subprocess.run([py, "-c", FLIP, self.relay.data_dir, str(target)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)

        r = self.relay.ctl("audit", "verify")
        self.assertEqual(r.returncode, EX_DATAERR, r.stdout + r.stderr)
        out = r.stdout + r.stderr
        self.assertRegex(out, r"audit chain broken at record %d: " % target)
        self.assertRegex(out, r"\(expected [0-9a-f]{64}, found [0-9a-f]{64}\)")
        r = self.relay.ctl("audit", "verify", "--json")
        self.assertEqual(r.returncode, EX_DATAERR, r.stdout + r.stderr)
        doc = json.loads(r.stdout)
        self.assertIs(doc["intact"], False, doc)
        self.assertEqual(int(doc["seq"]), target, doc)
        self.assertTrue(doc.get("what"), doc)
        self.assertNotEqual(doc.get("expected"), doc.get("found"), doc)


if __name__ == "__main__":
    harness.main()
