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
