"""
e2e: every route kind with a real peer, and DSNs.

- lmtp:HOST:PORT and lmtp:unix:PATH to an LMTP server (aiosmtpd, from
  tests/e2e/lmtp_server.py) with per-recipient replies after DATA;
- maildir:DIR, checked on disk;
- mx through a real unbound on loopback serving test zones (`local-zone:
  "." static`, so no query ever leaves the machine; the zones are under
  "example." because resolvers answer RFC 6761's "test." themselves): MX
  preference with
  fallback to the next MX, implicit MX (A only), null MX, NXDOMAIN,
  a refused zone (temporary: deferred);
- failure and delay DSNs parsed with Python's email package; expiry with
  a scaled-down lifetime.
"""
import email
import email.policy
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (RelayTestCase, free_port, give_to_daemon, queued_id,  # noqa: E402
                     wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
UNBOUND = harness.UNBOUND
SYS_PYTHON = "/usr/bin/python3"
Unbound = harness.Unbound


def parse_dsn(raw):
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    parts = list(msg.iter_parts())
    assert len(parts) == 3, [p.get_content_type() for p in parts]
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    return msg, parts


def status_fields(part):
    """The delivery-status part as a list of {field: value} blocks."""
    payload = part.get_payload()
    blocks = []
    for b in payload if isinstance(payload, list) else [payload]:
        blocks.append({k.lower(): str(v) for k, v in b.items()})
    return blocks


class LmtpMaildirTest(RelayTestCase):
    dead_domain = None

    @classmethod
    def setUpClass(cls):
        if not os.access(SYS_PYTHON, os.X_OK):
            raise unittest.SkipTest("no %s" % SYS_PYTHON)
        super().setUpClass()
        cls.lmtp_dir = os.path.join(cls.workdir, "lmtp")
        cls.lmtp_port = free_port()
        cls.sock = os.path.join(cls.workdir, "lmtp.sock")
        cls.servers = [
            cls._lmtp(["--listen", "127.0.0.1:%d" % cls.lmtp_port,
                       "--reject-after-data", "nobody@lmtp.test"], cls.lmtp_dir),
            cls._lmtp(["--unix", cls.sock], os.path.join(cls.workdir, "lmtpu")),
        ]
        cls.maildir = os.path.join(cls.workdir, "maildir")
        # Run as root the daemon is govrelay: the socket and the maildir
        # root are made its own, as an installation would.
        give_to_daemon(cls.sock)
        give_to_daemon(cls.maildir, mkdir=True)
        cls.relay.add_domain("lmtp.test", "lmtp:127.0.0.1:%d" % cls.lmtp_port)
        cls.relay.add_domain("lmtpu.test", "lmtp:unix:%s" % cls.sock)
        cls.relay.add_domain("md.test", "maildir:%s" % cls.maildir)

    @classmethod
    def _lmtp(cls, args, out):
        p = subprocess.Popen([SYS_PYTHON, os.path.join(HERE, "lmtp_server.py"), "--dir", out]
                             + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        line = p.stdout.readline()
        if b"ready" not in line:
            p.kill()
            raise AssertionError("lmtp_server did not start: %r" % line)
        return p

    @classmethod
    def tearDownClass(cls):
        for p in getattr(cls, "servers", []):
            p.send_signal(signal.SIGTERM)
            p.wait(10)
        super().tearDownClass()

    def test_lmtp_per_recipient_replies(self):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<s@ours.test>", 250)
        c.expect("RCPT TO:<alice@lmtp.test>", 250)
        c.expect("RCPT TO:<nobody@lmtp.test>", 250)
        c.expect("DATA", 354)
        qid = queued_id(c.cmd("Subject: lmtp\r\n\r\nover lmtp\r\n."))
        self.relay.wait_log(r"%s: to=<alice@lmtp\.test>.*status=sent" % qid)
        self.relay.wait_log(r"%s: to=<nobody@lmtp\.test>.*dsn=5\.1\.1, status=bounced" % qid)
        files = glob.glob(os.path.join(self.lmtp_dir, "mail", "alice@lmtp.test", "*.eml"))
        self.assertEqual(len(files), 1)
        with open(files[0], "rb") as f:
            self.assertIn(b"over lmtp", f.read())
        # The failed recipient's DSN goes back to s@ours.test (the sink).
        m = self.sink.find(b"nobody@lmtp.test", timeout=20)
        msg, parts = parse_dsn(m.message.replace(b"\n", b"\r\n"))
        blocks = status_fields(parts[1])
        self.assertIn("rfc822; nobody@lmtp.test", [b.get("final-recipient") for b in blocks])
        self.assertIn("failed", [b.get("action") for b in blocks])
        self.assertEqual(m.mail_from, "")

    def test_lmtp_unix_socket(self):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<s@ours.test>", 250)
        c.expect("RCPT TO:<bob@lmtpu.test>", 250)
        c.expect("DATA", 354)
        qid = queued_id(c.cmd("Subject: unix\r\n\r\nover a unix socket\r\n."))
        self.relay.wait_log(r"%s: to=<bob@lmtpu\.test>, relay=unix:.*status=sent" % qid)

    def test_maildir_on_disk(self):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<s@ours.test>", 250)
        c.expect("RCPT TO:<Carol@md.test>", 250)
        c.expect("RCPT TO:<dave@md.test>", 250)
        c.expect("DATA", 354)
        qid = queued_id(c.cmd("Subject: md\r\n\r\ninto a maildir\r\n."))
        for who in ("carol@md.test", "dave@md.test"):
            self.relay.wait_log(r"%s: to=<%s>.*status=sent" % (qid, who.replace(".", r"\.")),
                                flags=__import__("re").I)
            new = glob.glob(os.path.join(self.maildir, who, "new", "*"))
            self.assertEqual(len(new), 1, "%s: %r" % (who, new))
            with open(new[0], "rb") as f:
                data = f.read()
            self.assertIn(b"into a maildir\n", data)
            self.assertNotIn(b"\r\n", data, "maildir files hold LF line ends")
            self.assertTrue(data.startswith(b"Return-Path: <s@ours.test>\n"), data[:80])


class MxTest(RelayTestCase):
    dead_domain = None

    @classmethod
    def setUpClass(cls):
        cls.workdir_pre = None
        super().setUpClass()
        # Every MX delivery goes to smtp_port; the sink listens there on
        # 127.0.0.1 only, so an MX host at 127.0.0.2 refuses the connection.
        cls.unbound = Unbound(cls.workdir, [
            "pref.example. 300 IN MX 10 mx1.pref.example.",
            "pref.example. 300 IN MX 20 mx2.pref.example.",
            "mx1.pref.example. 300 IN A 127.0.0.2",
            "mx2.pref.example. 300 IN A 127.0.0.1",
            "aonly.example. 300 IN A 127.0.0.1",
            "nullmx.example. 300 IN MX 0 .",
        ], [("pref.example.", "static"), ("aonly.example.", "static"),
            ("nullmx.example.", "static"), ("refused.example.", "refuse"),
            ("nx.example.", "static")]).start()
        cls.relay.stop()
        cls.relay.configure(dns_server="127.0.0.1:%d" % cls.unbound.port,
                            smtp_port=cls.sink.port, minimal_backoff_time="1h")
        cls.relay.start()

    @classmethod
    def tearDownClass(cls):
        cls.unbound.stop()
        super().tearDownClass()

    def send(self, rcpt, tag):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<s@ours.test>", 250)
        c.expect("RCPT TO:<%s>" % rcpt, 250)
        c.expect("DATA", 354)
        return queued_id(c.cmd("Subject: %s\r\n\r\n%s body\r\n." % (tag, tag)))

    def test_mx_preference_and_next_mx(self):
        qid = self.send("u@pref.example", "pref")
        self.relay.wait_log(r"%s: to=<u@pref\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, "
                            r".*status=sent" % (qid, self.sink.port), timeout=20)
        self.assertIsNotNone(self.sink.find(b"pref body"))

    def test_implicit_mx(self):
        qid = self.send("u@aonly.example", "aonly")
        self.relay.wait_log(r"%s: to=<u@aonly\.example>.*status=sent" % qid)

    def test_null_mx_bounces(self):
        qid = self.send("u@nullmx.example", "nullmx")
        self.relay.wait_log(r"%s: to=<u@nullmx\.example>.*dsn=5\.1\.10, status=bounced" % qid)
        m = self.sink.find(b"Final-Recipient: rfc822; u@nullmx.example", timeout=20)
        parse_dsn(m.message.replace(b"\n", b"\r\n"))

    def test_nxdomain_bounces(self):
        qid = self.send("u@nx.example", "nx")
        self.relay.wait_log(r"%s: to=<u@nx\.example>.*dsn=5\.1\.2, status=bounced" % qid)

    def test_refused_zone_defers(self):
        qid = self.send("u@refused.example", "refused")
        self.relay.wait_log(r"%s: to=<u@refused\.example>.*dsn=4\.4\.3, status=deferred" % qid)
        self.assertIn(qid, self.relay.queue_ids())


class DelayExpiryTest(RelayTestCase):
    """Delay warning then expiry, with the lifetime scaled down."""
    relay_options = {"minimal_backoff_time": "1s", "maximal_backoff_time": "1s",
                     "delay_warning_time": "2s", "max_queue_lifetime": "5s"}
    dead_domain = "held.test"

    def test_delay_warning_then_expiry(self):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<waiter@ours.test>", 250)
        c.expect("RCPT TO:<late@held.test> NOTIFY=DELAY,FAILURE ORCPT=rfc822;late@held.test", 250)
        c.expect("DATA", 354)
        qid = queued_id(c.cmd("Subject: slow\r\n\r\nthis will wait\r\n."))
        self.relay.wait_log(r"%s: event=dsn, kind=delay" % qid, timeout=20)
        self.relay.wait_log(r"%s: to=<late@held\.test>.*dsn=4\.4\.7, status=expired" % qid,
                            timeout=30)
        self.relay.wait_log(r"%s: event=dsn, kind=failure" % qid, timeout=10)

        def dsns():
            out = []
            for m in self.sink.messages():
                if b"late@held.test" in m.raw and m.mail_from == "":
                    out.append(parse_dsn(m.message.replace(b"\n", b"\r\n")))
            return out if len(out) >= 2 else None
        got = wait_for(dsns, 20, what="delay and failure DSNs at the sink")
        actions = sorted(status_fields(parts[1])[-1].get("action") for _, parts in got)
        self.assertEqual(actions, ["delayed", "failed"])
        for msg, parts in got:
            self.assertIn("/", str(msg["subject"]))          # bilingual subject
            blocks = status_fields(parts[1])
            self.assertEqual(blocks[-1].get("original-recipient"), "rfc822; late@held.test")
        self.relay.wait_gone(qid)


class ReuseTest(RelayTestCase):
    """destination_concurrency = 1: five due messages to one LMTP server
    travel over one connection, one after the other."""
    relay_options = {"destination_concurrency": 1, "minimal_backoff_time": "1h",
                     "maximal_backoff_time": "1h"}
    dead_domain = None

    def test_one_connection_for_five_messages(self):
        out = os.path.join(self.workdir, "lmtp-reuse")
        port = free_port()
        self.relay.ctl_ok("domain", "add", "reuse.test", "--route",
                          "lmtp:127.0.0.1:%d" % self.relay.dead_port, "--accept-all")
        qids = []
        c = self.raw()
        c.ehlo()
        for k in range(5):
            c.expect("MAIL FROM:<s@ours.test>", 250)
            c.expect("RCPT TO:<r%d@reuse.test>" % k, 250)
            c.expect("DATA", 354)
            qids.append(queued_id(c.cmd("Subject: reuse %d\r\n\r\nreuse %d\r\n." % (k, k))))
        for q in qids:
            self.relay.wait_log(r"%s: to=<r\d@reuse\.test>.*status=deferred" % q)
        p = LmtpMaildirTest._lmtp(["--listen", "127.0.0.1:%d" % port], out)
        try:
            self.relay.ctl_ok("domain", "remove", "reuse.test")
            self.relay.ctl_ok("domain", "add", "reuse.test", "--route", "lmtp:127.0.0.1:%d" % port,
                              "--accept-all")
            self.relay.ctl_ok("queue", "flush")
            for q in qids:
                self.relay.wait_log(r"%s: to=<r\d@reuse\.test>.*status=sent" % q, timeout=20)
            with open(os.path.join(out, "deliveries.jsonl")) as f:
                rows = [json.loads(l) for l in f if l.strip()]
            self.assertEqual(sorted(r["rcpt"] for r in rows),
                             ["r%d@reuse.test" % k for k in range(5)])
            self.assertEqual({r["conn"] for r in rows}, {1},
                             "five messages should share one connection: %r" % rows)
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(10)


import unittest  # noqa: E402  (used by SkipTest above)

if __name__ == "__main__":
    harness.main()
