"""
e2e: the queue and delivery. Restart durability (messages accepted while
the next hop is down, daemon killed with SIGKILL, restarted: every message
delivered exactly as accepted); deferral on 4xx with the last reply in
`queue show`, then delivery once the next hop recovers; 5xx fails the
recipient and removes the message; SIGTERM mid-session; log lines carry
the queue id first.
"""
import os
import re
import smtplib
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HOSTNAME, RelayTestCase, Sink, queued_id, wait_for  # noqa: E402

FAST_RETRY = {"minimal_backoff_time": "1s", "maximal_backoff_time": "2s"}
LOG_PREFIX = r"^\S+ \S+\[\d+\]: (?:(?:warning|error): )?"


def smtplib_send(port, sender, rcpts, msg, **kw):
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=10) as c:
        c.ehlo()
        c.mail(sender, kw.get("mail_options", []))
        for r in rcpts:
            code, text = c.rcpt(r)
            if code != 250:
                raise AssertionError("RCPT %s: %d %s" % (r, code, text))
        code, text = c.data(msg)
        if code != 250:
            raise AssertionError("DATA: %d %s" % (code, text))
        return queued_id("250 " + text.decode())


class RestartDurabilityTest(RelayTestCase):
    relay_options = dict(FAST_RETRY)
    with_sink = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.down_sink = Sink(cls.workdir, name="late-sink")        # not started yet
        cls.relay.add_domain("dur.test", cls.down_sink.route)

    @classmethod
    def tearDownClass(cls):
        cls.down_sink.stop()
        super().tearDownClass()

    def test_sigkill_then_restart_delivers_everything(self):
        msgs = []
        for i in range(6):
            body = (b"Subject: durable %d\r\nMessage-ID: <durable-%d@client.test>\r\n\r\n"
                    b"durable marker %d\r\n" % (i, i, i))
            if i == 1:
                body += b".starts with a dot\r\n..two dots\r\n.\r\n"
            if i == 2:
                body += b"W" * 998 + b"\r\n"
            if i == 3:
                body += "tám bit: Thành phố\r\n".encode("utf-8")
            if i == 4:
                body += (b"filler line for a bigger message\r\n") * 3000      # ~100 KB
            rcpts = ["d%d@dur.test" % i] + (["e%d@dur.test" % i] if i % 2 else [])
            opts = ["BODY=8BITMIME"] if i == 3 else []
            qid = smtplib_send(self.relay.port, "sender%d@example.test" % i, rcpts, body,
                               mail_options=opts)
            msgs.append((qid, "sender%d@example.test" % i, rcpts, body))
        # every one is queued, and delivery to the dead next hop was tried
        ids = set(self.relay.queue_ids())
        for qid, _, _, _ in msgs:
            self.assertIn(qid, ids)
        self.relay.wait_log(r"%s: to=<d0@dur\.test>.*status=deferred" % msgs[0][0], timeout=15)

        # a half-sent message at the moment of the kill
        half = self.raw()
        half.ehlo()
        half.expect("MAIL FROM:<half@example.test>", 250)
        half.expect("RCPT TO:<half@dur.test>", 250)
        half.expect("DATA", 354)
        half.send(b"Subject: half\r\n\r\nhalf a message, never ended\r\n")

        self.relay.kill9()
        half.close()
        self.down_sink.start()
        self.relay.start()

        for qid, sender, rcpts, body in msgs:
            marker = body.split(b"\r\n\r\n", 1)[1].split(b"\r\n", 1)[0]
            # smtp-sink writes its dump while data arrives: compare only
            # after the relay has its final reply, when the file is whole.
            for r in rcpts:
                self.relay.wait_log(r"%s: to=<%s>.*status=sent" % (qid, re.escape(r)), 30)
            got = wait_for(lambda: [m for m in self.down_sink.messages() if marker in m.raw],
                           30, what="%s (%s) at the sink after restart" % (qid, marker))
            for m in got:
                self.assertEqual(m.without_received(), body.replace(b"\r\n", b"\n"),
                                 "%s delivered differently from what was accepted" % qid)
                self.assertEqual(m.mail_from, sender)
                self.assertEqual(len(m.headers("received")), 1)
            delivered = sorted(sum((m.rcpts for m in got), []))
            self.assertTrue(set(rcpts) <= set(delivered),
                            "%s: recipients %s, delivered to %s" % (qid, rcpts, delivered))
        self.relay.wait_queue_empty(20)
        self.assertEqual(self.down_sink.count(b"half a message"), 0, "a half message was delivered")
        self.assertNotRegex(self.relay.log(), r"from=<half@example\.test>")


class DeferralTest(RelayTestCase):
    relay_options = dict(FAST_RETRY)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.soft = Sink(cls.workdir, name="soft-sink", soft="RCPT",
                        soft_reply="451 4.3.0 sink says try later").start()
        cls.hard = Sink(cls.workdir, name="hard-sink", hard="RCPT",
                        hard_reply="550 5.1.1 sink says no such user").start()
        cls.relay.add_domain("soft.test", cls.soft.route)
        cls.relay.add_domain("hard.test", cls.hard.route)

    @classmethod
    def tearDownClass(cls):
        cls.soft.stop()
        cls.hard.stop()
        super().tearDownClass()

    def test_4xx_defers_then_delivers(self):
        qid = smtplib_send(self.relay.port, "defer@example.test", ["later@soft.test"],
                           b"Subject: deferred\r\n\r\ndeferred body\r\n")
        self.relay.wait_log(r"%s: to=<later@soft\.test>.*dsn=4\.3\.0, status=deferred" % qid, 15)
        show = self.relay.queue_show(qid)
        dump = harness.json.dumps(show)
        replies = " ".join(str(v) for v in harness.find_key(show, "last_reply"))
        self.assertIn("sink says try later", replies, "last reply not in queue show: %s" % dump)
        states = [str(s).lower() for s in harness.find_key(show, "state")]
        self.assertEqual(states, ["pending"], dump)
        self.assertEqual(self.soft.count(b"deferred body"), 0)
        # the next hop recovers
        self.soft.stop()
        self.soft.start(soft="")
        m = self.soft.find(b"deferred body", timeout=20)
        self.assertEqual(m.rcpts, ["later@soft.test"])
        self.relay.wait_log(r"%s: to=<later@soft\.test>.*status=sent" % qid)
        wait_for(lambda: qid not in self.relay.queue_ids(), 15, what="%s leaves the queue" % qid)
        self.soft.stop()
        self.soft.start(soft="RCPT")

    def test_5xx_fails_recipient(self):
        qid = smtplib_send(self.relay.port, "", ["nobody@hard.test", "fine@ours.test"],
                           b"Subject: half fails\r\n\r\nhalf fails body\r\n")
        self.relay.wait_log(r"%s: to=<nobody@hard\.test>.*dsn=5\.1\.1, status=bounced" % qid, 15)
        self.relay.wait_log(r"%s: to=<fine@ours\.test>.*status=sent" % qid, 15)
        m = self.sink.find(b"half fails body")
        self.assertEqual(m.rcpts, ["fine@ours.test"])
        self.assertEqual(self.hard.count(b"half fails body"), 0)
        wait_for(lambda: qid not in self.relay.queue_ids(), 15,
                 what="%s removed from the queue (null sender: no bounce)" % qid)

    def test_log_lines_start_with_queue_id(self):
        qid = smtplib_send(self.relay.port, "logged@example.test", ["logged@ours.test"],
                           b"Subject: logged\r\n\r\nlogged body\r\n")
        self.relay.wait_log(r"%s: to=<logged@ours\.test>.*status=sent" % qid)
        lines = self.relay.log_lines(qid)
        keyed = [l for l in lines if re.search(r"\b(client|from|to)=", l)]
        self.assertTrue(any("from=<logged@example.test>" in l for l in keyed), lines)
        for l in keyed:
            self.assertRegex(l, LOG_PREFIX + qid + ": ", "queue id is not first in: %r" % l)
        sent = [l for l in keyed if "status=sent" in l][0]
        for key in ("to=<logged@ours.test>", "relay=", "delay=", "dsn=2.", "status=sent ("):
            self.assertIn(key, sent)
        recv = [l for l in keyed if "from=<" in l][0]
        self.assertRegex(recv, r"from=<logged@example\.test>, size=\d+, nrcpt=1")


class ShutdownTest(RelayTestCase):
    with_sink = False

    def test_sigterm_mid_session(self):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<term@example.test>", 250)
        c.expect("RCPT TO:<term@held.test>", 250)
        c.expect("DATA", 354)
        c.send(b"Subject: cut\r\n\r\ncut by sigterm\r\n")
        idle = self.raw()
        self.relay.stop()                    # asserts exit status 0
        r = c.reply()
        self.assertEqual(r.last, "421 4.3.2 %s Service shutting down" % HOSTNAME)
        self.assertTrue(c.wait_closed(3))
        self.assertEqual(idle.reply().last, "421 4.3.2 %s Service shutting down" % HOSTNAME)
        self.relay.start()
        self.assertQueueEmpty("half message after SIGTERM")
        self.assertNotRegex(self.relay.log(), r"from=<term@example\.test>")


if __name__ == "__main__":
    harness.main()
