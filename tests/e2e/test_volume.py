"""
e2e: bodies that span several queue chunks, many clients at once (group
commit), JSON logs, and SIGHUP reload. The relay is the real govrelayd,
the next hop Postfix's smtp-sink.
"""
import hashlib
import json
import os
import re
import signal
import smtplib
import sys
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RelayTestCase, queued_id, smtplib_queued_id, wait_for  # noqa: E402

CHUNK = 256 * 1024


def body_of(tag, size):
    """A text body of about size bytes with 76-octet lines, some dotted."""
    lines = ["Subject: %s" % tag, "", tag]
    n = 0
    i = 0
    while n < size:
        line = ("%s line %07d " % (tag, i)).ljust(76, "x")
        if i % 97 == 0:
            line = "." + line[1:]          # exercises dot-stuffing both ways
        lines.append(line)
        n += len(line) + 2
        i += 1
    return "\r\n".join(lines) + "\r\n"


class VolumeTest(RelayTestCase):
    relay_options = {"max_message_size": 8 * 1024 * 1024}

    def send(self, frm, rcpts, data):
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as s:
            s.ehlo("client.test")
            code, resp = s.mail(frm)
            self.assertEqual(code, 250)
            for r in rcpts:
                self.assertEqual(s.rcpt(r)[0], 250)
            code, resp = s.data(data.encode())
            self.assertEqual(code, 250, resp)
            return smtplib_queued_id((code, resp))

    def delivered_body(self, qid, tag):
        # smtp-sink writes its dump as the data arrives: read it only once
        # the relay has the final reply, so the file is complete.
        self.relay.wait_log(r"%s: to=<[^>]*>, .*status=sent" % qid, timeout=30)
        return self.sink.find(tag.encode(), timeout=30)

    def test_large_message_spans_chunks(self):
        """A 1.5 MB body crosses several 256 KiB chunks and arrives intact."""
        tag = "spans-chunks-%d" % os.getpid()
        data = body_of(tag, 1536 * 1024)
        self.assertGreater(len(data), 5 * CHUNK)
        qid = self.send("big@example.test", ["big@ours.test"], data)
        m = self.delivered_body(qid, tag)
        expected = data.replace("\r\n", "\n").encode()
        self.assertEqual(hashlib.sha256(m.without_received()).hexdigest(),
                         hashlib.sha256(expected).hexdigest(),
                         "body of %s changed on the way" % qid)
        self.relay.wait_gone(qid)

    def test_large_message_bdat(self):
        """The same through BDAT chunks that do not align with queue chunks."""
        tag = "bdat-large-%d" % os.getpid()
        data = body_of(tag, 700 * 1024).encode()
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<bdat@example.test>", 250)
        c.expect("RCPT TO:<bdat@ours.test>", 250)
        step = 100003
        for off in range(0, len(data), step):
            piece = data[off:off + step]
            last = off + step >= len(data)
            c.send(b"BDAT %d%s\r\n" % (len(piece), b" LAST" if last else b"") + piece)
            r = c.reply()
            if not last:
                self.assertReply(r, 250, "250 2.0.0")
        qid = queued_id(r)
        m = self.delivered_body(qid, tag)
        self.assertEqual(m.without_received(), data.replace(b"\r\n", b"\n"),
                         "BDAT body changed on the way")
        self.relay.wait_gone(qid)

    def test_concurrent_clients(self):
        """Twenty clients at once, five messages each: every 250 is delivered
        once, and the queue ids are unique."""
        tag = "conc-%d" % os.getpid()
        ids = []
        errors = []
        lock = threading.Lock()

        def client(n):
            try:
                with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=30) as s:
                    for k in range(5):
                        refused = s.sendmail("c%d@example.test" % n, ["c@ours.test"],
                                             "Subject: %s %d %d\r\n\r\n%s-%d-%d\r\n"
                                             % (tag, n, k, tag, n, k))
                        if refused:
                            raise AssertionError("refused: %r" % refused)
                        with lock:
                            ids.append("%d-%d" % (n, k))
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(repr(e))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(ids), 100)
        wait_for(lambda: self.sink.count(tag.encode()) >= 100, 60,
                 what="100 concurrent messages at the sink")
        for n in range(20):
            for k in range(5):
                self.assertEqual(self.sink.count(("%s-%d-%d\n" % (tag, n, k)).encode()), 1,
                                 "message %d-%d not delivered exactly once" % (n, k))
        qids = re.findall(r"\b([0-9A-F]{16}): from=<c\d+@example\.test>.*status=queued",
                          self.relay.log())
        self.assertEqual(len(qids), 100)
        self.assertEqual(len(qids), len(set(qids)), "duplicate queue ids")
        self.relay.wait_queue_empty(30)


class JsonLogTest(RelayTestCase):
    relay_options = {"log_format": "json"}

    def test_every_line_is_json_with_id(self):
        with smtplib.SMTP("127.0.0.1", self.relay.port, timeout=10) as s:
            s.sendmail("j@example.test", ["j@ours.test"], "Subject: json\r\n\r\njson log\r\n")
        self.sink.find(b"json log")
        rec = wait_for(lambda: [json.loads(l) for l in self.relay.log().splitlines()
                                if l.startswith("{") and '"status":"sent' in l], 15,
                       what="a JSON delivery line")[0]
        self.assertRegex(rec["id"], r"^[0-9A-F]{16}$")
        self.assertEqual(rec["to"], "<j@ours.test>")
        for line in self.relay.log().splitlines():
            if line.startswith("-----"):
                continue                    # the harness's own marker
            obj = json.loads(line)
            self.assertIn("time", obj)
            self.assertIn("level", obj)


class ReloadTest(RelayTestCase):
    relay_options = {"max_recipients": 5}

    def test_sighup_applies_to_new_sessions_only(self):
        old = self.raw()
        old.ehlo()
        self.relay.configure(max_recipients=2)
        self.relay.proc.send_signal(signal.SIGHUP)
        self.relay.wait_log(r"reloaded configuration")
        new = self.raw()
        new.ehlo()
        new.expect("MAIL FROM:<r@example.test>", 250)
        new.expect("RCPT TO:<a@ours.test>", 250)
        new.expect("RCPT TO:<b@ours.test>", 250)
        self.assertReply(new.cmd("RCPT TO:<c@ours.test>"), 452, "452 4.5.3")
        # The session that was open keeps the snapshot it started with.
        old.expect("MAIL FROM:<r@example.test>", 250)
        for r in "abc":
            old.expect("RCPT TO:<%s@ours.test>" % r, 250)

    def test_bad_reload_keeps_running_config(self):
        with open(self.relay.conf, "a") as f:
            f.write("no_such_key = 1\n")
        self.relay.proc.send_signal(signal.SIGHUP)
        self.relay.wait_log(r"reload of .* failed; keeping the running configuration")
        c = self.raw()
        c.ehlo()
        c.expect("NOOP", 250)
        self.relay.write_config()


class StoreFullTest(RelayTestCase):
    """A full store is a temporary failure (452 4.3.1), never a lost or
    half-queued message, and the relay goes on working."""
    relay_options = {"queue_max_size": 1048576, "max_message_size": 8 * 1024 * 1024}

    def test_full_store_is_452_and_recovers(self):
        tag = "full-%d" % os.getpid()
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<full@example.test>", 250)
        c.expect("RCPT TO:<full@ours.test>", 250)
        c.expect("DATA", 354)
        data = body_of(tag, 3 * 1024 * 1024).encode()
        c.send(data + b".\r\n")
        self.assertReply(c.reply(timeout=30), 452, "452 4.3.1")
        self.assertQueueEmpty("after a refused message")
        # The chunks of the refused message are released: small mail fits.
        c.expect("MAIL FROM:<small@example.test>", 250)
        c.expect("RCPT TO:<full@ours.test>", 250)
        c.expect("DATA", 354)
        qid = queued_id(c.cmd("Subject: %s-small\r\n\r\nfits\r\n." % tag))
        self.relay.wait_log(r"%s: to=<full@ours\.test>.*status=sent" % qid)
        self.assertEqual(self.sink.count(("%s line" % tag).encode()), 0)


if __name__ == "__main__":
    harness.main()
