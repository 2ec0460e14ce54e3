"""
e2e: the smaller holes of issue 9, against the running daemon.

- <Postmaster> (RFC 5321 section 4.5.1: no domain, any case) is accepted
  from an untrusted client and delivered to postmaster_address, or by
  default to postmaster@ the root tenant's first domain; ORCPT keeps
  "Postmaster".
- The log-injection attempt: a recipient "x, status=sent"@ours.test is
  logged escaped, and every text log line of the message splits into
  the fields the daemon wrote (one status= on the delivery line).
- Received: ... for <...> only for one recipient whose local part is a
  dot-atom; a quoted local part or two recipients: no for clause.
- max_inflight_memory: with the budget held by sessions in DATA, a new
  DATA (and a message's first BDAT) gets 452 4.3.1, and is taken again
  once they finish; six concurrent 3 MB messages through a 1 MiB budget
  all complete (backpressure, no deadlock).
"""
import os
import re
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RelayTestCase, queued_id  # noqa: E402


def log_fields(line, qid):
    """The (key, value) pairs of one text log line about qid, split the
    documented way: at ", " then at the first '='; values decoded."""
    rest = line.split("%s: " % qid, 1)[1]
    out = []
    for field in rest.split(", "):
        key, sep, value = field.partition("=")
        if not sep:
            raise AssertionError("field without '=' in %r" % line)
        value = re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), value)
        out.append((key, value))
    return out


class PostmasterTest(RelayTestCase):
    relay_options = {"trusted_networks": "127.0.0.1/32",
                     "postmaster_address": "pm@ours.test"}

    def send_untrusted(self, rcpt, body):
        c = self.raw(source="127.0.0.2")
        c.ehlo()
        c.expect("MAIL FROM:<someone@outside.example>", 250)
        c.expect("RCPT TO:<%s>" % rcpt, 250)
        c.expect("DATA", 354)
        r = c.cmd(harness.dot_stuff(b"Subject: hi\r\n\r\n" + body + b"\r\n") + b".")
        self.assertReply(r, 250)
        c.cmd("QUIT")
        return queued_id(r.last)

    def test_postmaster_delivered_from_anyone(self):
        for i, spelling in enumerate(("Postmaster", "POSTMASTER", "postMaster")):
            body = b"to the postmaster %d" % i
            qid = self.send_untrusted(spelling, body)
            m = self.sink.find(body)
            self.assertEqual(m.rcpts, ["pm@ours.test"], spelling)
            self.relay.wait_log(r"%s: to=<pm@ours\.test>.*status=sent" % qid)

    def test_postmaster_orcpt_kept(self):
        qid = self.send_untrusted("Postmaster", b"orcpt kept")
        m = self.sink.find(b"orcpt kept")
        self.assertTrue(any("ORCPT=rfc822;Postmaster" in a for a in m.rcpt_args),
                        m.rcpt_args)
        self.relay.wait_gone(qid)

    def test_other_bare_names_still_refused(self):
        c = self.raw(source="127.0.0.2")
        c.ehlo()
        c.expect("MAIL FROM:<someone@outside.example>", 250)
        r = c.cmd("RCPT TO:<abuse>")
        self.assertEqual(r.code // 100, 5, r.lines)

    def test_log_injection_escaped(self):
        rcpt = '"x, status=sent"@ours.test'
        c = self.raw()
        r = c.send_message("inj@example.test", [rcpt], b"Subject: inj\r\n\r\ninjection\r\n")
        qid = queued_id(r.last)
        self.sink.find(b"injection")
        self.relay.wait_log(r"%s: to=<.*status=sent" % qid)
        lines = [l for l in self.relay.log().splitlines() if "%s: " % qid in l]
        self.assertTrue(any('to=<"x\\x2c status\\x3dsent"@ours.test>' in l for l in lines),
                        lines)
        for l in lines:
            fields = log_fields(l, qid)
            keys = [k for k, _ in fields]
            self.assertEqual(len(keys), len(set(keys)), "a key twice in %r" % l)
            for k, _ in fields:
                self.assertRegex(k, r"^[a-z_]+$", "a forged key in %r" % l)
            d = dict(fields)
            if "to" in d:
                self.assertEqual(d["to"], "<%s>" % rcpt)
                self.assertTrue(d["status"].startswith("sent ("), l)


class ReceivedForTest(RelayTestCase):
    """Received: ... for <...> names a single plain recipient only."""

    def our_received(self, rcpts, body):
        c = self.raw()
        r = c.send_message("rf@example.test", rcpts,
                           b"Subject: rf\r\n\r\n" + body + b"\r\n")
        self.assertReply(r, 250)
        m = self.sink.find(body)
        mine = [h for h in m.headers("Received") if b"(govrelay)" in h]
        self.assertEqual(len(mine), 1, m.headers("Received"))
        return mine[0]

    def test_single_plain_recipient_named(self):
        h = self.our_received(["plain.name+tag@ours.test"], b"plain one")
        self.assertIn(b"for <plain.name+tag@ours.test>;", h)

    def test_quoted_local_part_not_named(self):
        h = self.our_received(['"x>; by evil"@ours.test'], b"quoted one")
        self.assertNotIn(b" for ", h)
        self.assertNotIn(b"evil", h)

    def test_two_recipients_not_named(self):
        h = self.our_received(["a@ours.test", "b@ours.test"], b"two of them")
        self.assertNotIn(b" for ", h)


class InflightMemoryTest(RelayTestCase):
    """max_inflight_memory = 1 MiB: message data held by all sessions."""
    relay_options = {"max_inflight_memory": "1048576"}

    def hold(self, n_bytes):
        """A session in DATA that has sent n_bytes of body and waits."""
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<hold@example.test>", 250)
        c.expect("RCPT TO:<hold@ours.test>", 250)
        c.expect("DATA", 354)
        line = b"x" * 998 + b"\r\n"
        c.send(b"Subject: held\r\n\r\n" + line * (n_bytes // len(line)))
        return c

    def probe_data(self):
        """A new transaction's DATA: its reply code (a 354 is completed)."""
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<probe@example.test>", 250)
        c.expect("RCPT TO:<probe@ours.test>", 250)
        r = c.cmd("DATA")
        if r.code == 354:
            self.assertReply(c.cmd(b"Subject: probe\r\n\r\nprobe\r\n."), 250)
        c.cmd("QUIT")
        return r

    def test_data_refused_452_while_budget_spent(self):
        # Four sessions hold just under one chunk each (not yet handed to
        # the writer): about 1,000,000 of the 1,048,576 bytes.
        holders = [self.hold(250000) for _ in range(4)]
        got = {}

        def refused():
            r = self.probe_data()
            got["r"] = r
            return r.code == 452
        harness.wait_for(refused, timeout=15, what="DATA refused with 452")
        self.assertTrue(got["r"].last.startswith("452 4.3.1"), got["r"].lines)
        # BDAT, a message's first chunk: 452 too, its octets read, and the
        # session goes on.
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<bdat@example.test>", 250)
        c.expect("RCPT TO:<bdat@ours.test>", 250)
        c.send(b"BDAT 10 LAST\r\n0123456789")
        self.assertReply(c.reply(), 452, "452 4.3.1")
        c.expect("NOOP", 250)
        c.expect("RSET", 250)
        self.relay.wait_log(r"event=inflight_memory_full")
        # The holders finish: their messages are queued, memory drains and
        # DATA is taken again.
        for h in holders:
            self.assertReply(h.cmd(b"\r\n."), 250, what="holder")
        harness.wait_for(lambda: self.probe_data().code == 354, timeout=15,
                         what="DATA taken again")

    def test_concurrent_large_messages_complete(self):
        # Six 3 MB messages at once through a 1 MiB budget: a DATA that
        # finds the budget spent gets 452 and is retried, as an MTA would;
        # the others stream under backpressure; never a deadlock, every
        # message queued and delivered.
        import threading
        import time
        results = {}
        refusals = []

        def send(i):
            try:
                c = harness.RawSMTP(self.relay.port, timeout=60)
                try:
                    body = (b"line %d " % i + b"y" * 990 + b"\r\n") * 3000
                    c.ehlo()
                    deadline = time.monotonic() + 60
                    while True:
                        c.expect("MAIL FROM:<big%d@example.test>" % i, 250)
                        c.expect("RCPT TO:<big%d@ours.test>" % i, 250)
                        r = c.cmd("DATA")
                        if r.code == 354:
                            break
                        if r.code != 452 or time.monotonic() > deadline:
                            raise AssertionError("DATA: %r" % r.lines)
                        refusals.append(r.last)
                        c.expect("RSET", 250)
                        time.sleep(0.05)  # a retry's pause, not a wait for a condition
                    results[i] = c.cmd(harness.dot_stuff(b"Subject: big %d\r\n\r\n" % i +
                                                         body) + b".")
                finally:
                    c.close()
            except Exception as e:  # reported below
                results[i] = e

        threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        for i in range(6):
            r = results.get(i)
            self.assertIsInstance(r, harness.Reply, "message %d: %r" % (i, r))
            self.assertReply(r, 250, what="message %d" % i)
        for i in range(6):
            self.sink.find(b"Subject: big %d" % i, timeout=60)
        for r in refusals:
            self.assertTrue(r.startswith("452 4.3.1"), r)
        sys.stderr.write("concurrent large messages: %d DATA refusals (452) retried\n"
                         % len(refusals))


class PostmasterDefaultTest(RelayTestCase):
    """No postmaster_address: postmaster@ the first domain of no tenant or a
    root tenant, in name order (aa.test before held.test)."""
    relay_options = {"trusted_networks": "127.0.0.1/32"}
    sink_domain = "aa.test"
    dead_domain = "held.test"

    def test_default_address(self):
        c = self.raw(source="127.0.0.2")
        r = c.send_message("someone@outside.example", ["Postmaster"],
                           b"Subject: d\r\n\r\ndefault postmaster\r\n")
        self.assertReply(r, 250)
        m = self.sink.find(b"default postmaster")
        self.assertEqual(m.rcpts, ["postmaster@aa.test"])


if __name__ == "__main__":
    harness.main()
