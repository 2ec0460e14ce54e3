"""
e2e: every session limit of the mx listener: command line > 512 octets,
text line > 1000 octets, max_recipients, max_message_size (SIZE=, DATA,
BDAT), max_connections, max_connections_per_ip, command/data timeout,
max_bad_commands, pregreet (greet_pause).
"""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HOSTNAME, RawSMTP, RelayTestCase, queued_id, wait_for  # noqa: E402

MAX_SIZE = 4096


class SizeLimitsTest(RelayTestCase):
    relay_options = {"max_message_size": MAX_SIZE, "max_recipients": 3}

    def assertNotQueued(self, sender):
        self.assertNotRegex(self.relay.log(), r"from=<%s>" % sender,
                            "a rejected message from %s was queued" % sender)
        self.assertQueueEmpty("after a rejected message")

    def test_command_line_512_ok_513_too_long(self):
        c = self.raw()
        c.ehlo()
        line = "VRFY " + "x" * (512 - 5 - 2)          # 512 octets with CRLF
        self.assertEqual(len(line) + 2, 512)
        self.assertReply(c.cmd(line), 252, "252 2.5.0", "512-octet command line")
        line = "VRFY " + "x" * (513 - 5 - 2)
        self.assertEqual(c.cmd(line).last, "500 5.5.2 Error: line too long")
        self.assertReply(c.cmd("NOOP"), 250, "250 2.0.0", "session goes on after a long line")

    def test_huge_command_line_one_reply(self):
        c = self.raw()
        c.ehlo()
        c.send(b"MAIL FROM:<" + b"a" * 20000 + b"@example.test>\r\nNOOP\r\n")
        r = c.reply()
        self.assertEqual(r.last, "500 5.5.2 Error: line too long")
        self.assertReply(c.reply(), 250, "250 2.0.0",
                         "one reply per over-long line, then the next command")
        self.assertReply(c.cmd("MAIL FROM:<ok@example.test>"), 250, "250 2.1.0",
                         "the long MAIL must not have started a transaction")

    def test_text_line_1000_ok_1001_rejected(self):
        c = self.raw()
        c.ehlo()
        ok_line = b"L" * 998                          # 1000 octets with CRLF
        qid = queued_id(c.send_message("tl-ok@example.test", ["tl@ours.test"],
                                       b"Subject: ok line\r\n\r\n" + ok_line + b"\r\n", ehlo=False))
        m = self.sink.find(ok_line)
        self.assertIn(ok_line + b"\n", m.body, "998-char line must arrive unwrapped")
        self.relay.wait_log(r"%s: to=<tl@ours\.test>.*status=sent" % qid)
        self.relay.wait_queue_empty()
        c.expect("MAIL FROM:<tl-bad@example.test>", 250)
        c.expect("RCPT TO:<tl@ours.test>", 250)
        c.expect("DATA", 354)
        r = c.cmd(b"Subject: long line\r\n\r\n" + b"M" * 999 + b"\r\nafter\r\n.")
        self.assertEqual(r.last, "552 5.3.4 Error: text line too long (RFC 5321 limit is 1000 octets)")
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertNotQueued("tl-bad@example\\.test")

    def test_max_recipients(self):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<mr@example.test>", 250)
        for i in range(3):
            c.expect("RCPT TO:<mr%d@ours.test>" % i, 250, "250 2.1.5")
        self.assertEqual(c.cmd("RCPT TO:<mr3@ours.test>").last, "452 4.5.3 Error: too many recipients")
        self.assertEqual(c.cmd("RCPT TO:<mr4@ours.test>").code, 452)
        c.expect("DATA", 354)
        qid = queued_id(c.cmd("Subject: max rcpt\r\n\r\nmax recipients body\r\n."))
        wait_for(lambda: sorted(sum((m.rcpts for m in self.sink.messages()
                                     if b"max recipients body" in m.raw), []))
                 == ["mr0@ours.test", "mr1@ours.test", "mr2@ours.test"], 15,
                 what="exactly the 3 accepted recipients at the sink")
        self.relay.wait_log(r"%s: from=<mr@example\.test>, size=\d+, nrcpt=3" % qid)
        self.relay.wait_queue_empty()

    def test_size_param_over_limit(self):
        c = self.raw()
        ehlo = c.ehlo()
        self.assertIn("250-SIZE %d" % MAX_SIZE, ehlo.lines)
        self.assertEqual(c.cmd("MAIL FROM:<sz@example.test> SIZE=%d" % (MAX_SIZE + 1)).last,
                         "552 5.3.4 Error: message file too big")
        self.assertReply(c.cmd("RCPT TO:<sz@ours.test>"), 503, "503 5.5.1",
                         "no transaction after a refused MAIL")

    def test_data_over_limit(self):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<big-data@example.test>", 250)
        c.expect("RCPT TO:<big@ours.test>", 250)
        c.expect("DATA", 354)
        body = b"Subject: big\r\n\r\n" + (b"x" * 70 + b"\r\n") * 80     # ~5.8 KB
        self.assertEqual(c.cmd(body + b".").last, "552 5.3.4 Error: message file too big")
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertReply(c.cmd("MAIL FROM:<again@example.test>"), 250, "250 2.1.0",
                         "transaction was reset after the refused message")
        self.assertNotQueued("big-data@example\\.test")

    def test_data_over_limit_lying_size(self):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<liar@example.test> SIZE=100", 250)
        c.expect("RCPT TO:<big@ours.test>", 250)
        c.expect("DATA", 354)
        body = b"Subject: big\r\n\r\n" + (b"y" * 70 + b"\r\n") * 80
        self.assertEqual(c.cmd(body + b".").code, 552)
        self.assertNotQueued("liar@example\\.test")

    def test_bdat_over_limit(self):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<big-bdat@example.test>", 250)
        c.expect("RCPT TO:<big@ours.test>", 250)
        chunk = (b"z" * 70 + b"\r\n") * 40               # 2880 octets
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        self.assertReply(c.reply(), 250, "250 2.0.0 %d octets received" % len(chunk))
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        self.assertEqual(c.reply().last, "552 5.3.4 Error: message file too big")
        self.assertReply(c.cmd("NOOP"), 250, what="session in sync after refused BDAT")
        self.assertNotQueued("big-bdat@example\\.test")

    def test_small_message_accepted(self):
        c = self.raw()
        c.ehlo()
        body = b"Subject: small\r\n\r\n" + (b"s" * 70 + b"\r\n") * 30     # ~2.2 KB
        qid = queued_id(c.send_message("small@example.test", ["small@ours.test"], body, ehlo=False))
        self.sink.find(b"Subject: small")
        self.relay.wait_log(r"%s: to=<small@ours\.test>.*status=sent" % qid)
        self.relay.wait_queue_empty()


class ConnectionLimitsTest(RelayTestCase):
    # 127.0.0.1 is trusted: by design (listener.c, like Postfix's
    # smtpd_client_event_limit_exceptions) it is exempt from the per-address
    # limit, so the per-address limit is tested from untrusted 127.0.0.2.
    relay_options = {"max_connections": 3, "max_connections_per_ip": 2,
                     "trusted_networks": "127.0.0.1/32"}
    with_sink = False

    def refused(self, source):
        """Connects without sending anything; expects 421 then close."""
        c = self.raw(source=source, read_greeting=False)
        r = c.reply()
        # per-address refusals add " from your address" to the contract's text
        self.assertTrue(r.last.startswith("421 4.7.0 %s Error: too many connections" % HOSTNAME),
                        "connection from %s: %r" % (source, r.lines))
        self.assertTrue(c.wait_closed(3), "not closed after the 421")
        c.close()

    def accepted(self, source):
        c = self.raw(source=source)
        self.assertEqual(c.greeting.last, "220 %s ESMTP govrelay" % HOSTNAME,
                         "connection from %s" % source)
        return c

    def quit(self, c):
        c.expect("QUIT", 221)
        self.assertTrue(c.wait_closed(3))
        c.close()

    def wait_slot(self, source):
        def fresh():
            c = RawSMTP(self.relay.port, source=source)
            self.addCleanup(c.close)
            return c if c.greeting.code == 220 else None
        return wait_for(fresh, 10, interval=0.1, what="a free slot for %s" % source)

    def test_limits(self):
        b1 = self.accepted("127.0.0.2")
        b2 = self.accepted("127.0.0.2")
        self.refused("127.0.0.2")                    # per-ip (2) reached
        a1 = self.accepted("127.0.0.1")              # another address: 3 in all
        self.refused("127.0.0.3")                    # global (3) reached
        self.refused("127.0.0.1")                    # global applies to trusted too
        self.assertReply(b1.cmd("NOOP"), 250, what="existing sessions still work")
        self.quit(b1)
        self.quit(b2)
        a2 = self.wait_slot("127.0.0.1")
        a3 = self.accepted("127.0.0.1")              # trusted: no per-ip limit
        self.refused("127.0.0.3")
        for c in (a1, a2, a3):
            self.assertReply(c.cmd("NOOP"), 250)
        self.quit(a3)
        self.wait_slot("127.0.0.3")


class SessionLimitsTest(RelayTestCase):
    relay_options = {"command_timeout": "1s", "data_timeout": "1s", "max_bad_commands": 3}
    with_sink = False

    def test_command_timeout(self):
        c = self.raw()
        t0 = time.monotonic()
        r = c.reply(timeout=6)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.last, "421 4.4.2 %s Error: timeout exceeded" % HOSTNAME)
        self.assertGreater(elapsed, 0.7, "timeout fired too early")
        self.assertLess(elapsed, 4.5, "timeout fired too late")
        self.assertTrue(c.wait_closed(3))

    def test_command_timeout_mid_transaction(self):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<slow@example.test>", 250)
        c.expect("RCPT TO:<slow@held.test>", 250)
        r = c.reply(timeout=6)
        self.assertTrue(r.last.startswith("421 4.4.2"), r.lines)
        self.assertTrue(c.wait_closed(3))
        self.assertNotRegex(self.relay.log(), r"from=<slow@example\.test>")

    def test_data_timeout_nothing_queued(self):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<slowdata@example.test>", 250)
        c.expect("RCPT TO:<slow@held.test>", 250)
        c.expect("DATA", 354)
        c.send(b"Subject: half\r\n\r\nhalf a message\r\n")
        r = c.reply(timeout=6)
        self.assertTrue(r.last.startswith("421 4.4.2"), r.lines)
        self.assertTrue(c.wait_closed(3))
        self.assertNotRegex(self.relay.log(), r"from=<slowdata@example\.test>")
        self.assertQueueEmpty("after a data timeout")

    def test_too_many_bad_commands(self):
        c = self.raw()
        c.ehlo()
        errors = []
        final = None
        for i in range(6):
            try:
                r = c.cmd("BOGUS%d" % i)
            except harness.Closed:
                break
            if r.code == 421:
                final = r
                break
            errors.append(r.last)
        self.assertIsNotNone(final, "no 421 after %d bad commands: %r" % (len(errors), errors))
        self.assertEqual(final.last, "421 4.7.0 %s Error: too many errors" % HOSTNAME)
        self.assertIn(len(errors), (3, 4), "bad commands answered before the 421: %r" % errors)
        for e in errors:
            self.assertEqual(e, "500 5.5.2 Error: command not recognized")
        self.assertTrue(c.wait_closed(3))

    def test_good_commands_do_not_count(self):
        c = self.raw()
        c.ehlo()
        for i in range(2):
            self.assertEqual(c.cmd("BOGUS").code, 500)
        for i in range(5):
            self.assertReply(c.cmd("NOOP"), 250)
        self.assertReply(c.cmd("QUIT"), 221)


class PregreetTest(RelayTestCase):
    relay_options = {"greet_pause": "1s", "trusted_networks": "127.0.0.1/32"}
    with_sink = False

    def test_untrusted_talks_first(self):
        c = self.raw(source="127.0.0.2", read_greeting=False)
        c.send(b"EHLO early.test\r\n")
        r = c.reply(timeout=6)
        self.assertEqual(r.lines, ["554 5.5.0 %s Error: client talked before the greeting" % HOSTNAME],
                         "expected the pregreet refusal (and no 220 before it)")
        self.assertTrue(c.wait_closed(3), "not closed after the pregreet refusal")
        self.relay.wait_log(r"pregreet")

    def test_untrusted_waits(self):
        t0 = time.monotonic()
        c = self.raw(source="127.0.0.2", read_greeting=False)
        r = c.reply(timeout=6)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.last, "220 %s ESMTP govrelay" % HOSTNAME)
        self.assertGreater(elapsed, 0.8, "greet_pause not applied to an untrusted client")
        c.ehlo()

    def test_trusted_no_pause(self):
        t0 = time.monotonic()
        c = self.raw(source="127.0.0.1", read_greeting=False)
        c.send(b"EHLO trusted.test\r\n")
        r = c.reply(timeout=6)
        elapsed = time.monotonic() - t0
        self.assertEqual(r.code, 220, "trusted client must get the greeting at once: %r" % r.lines)
        self.assertLess(elapsed, 0.7, "greet_pause applied to a trusted client")
        self.assertReply(c.reply(), 250, what="EHLO sent with the greeting")


if __name__ == "__main__":
    harness.main()
