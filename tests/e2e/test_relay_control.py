"""
e2e: relay control. trusted_networks = 127.0.0.1/32; untrusted clients
connect from 127.0.0.2. Untrusted to a foreign domain: 554 5.7.1; to our
domain: accepted and delivered; trusted to a foreign domain: accepted and
queued (deferred: no route leaves loopback) when the sender is in one of
our domains or null, 554 5.7.1 otherwise. A domain added without
--accept-all takes only its mailboxes (550 5.1.1). Every classic
open-relay address form from an untrusted client is refused.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RelayTestCase, queued_id, wait_for  # noqa: E402

UNTRUSTED = "127.0.0.2"

# (form, expected reply prefix)
OPEN_RELAY_FORMS = [
    ("user%other.invalid@ours.test", "554 5.7.1"),
    ('"user@other.invalid"@ours.test', "554 5.7.1"),
    ("@ours.test:user@other.invalid", "554 5.7.1"),
    ("@ours.test,@ours.test:user@other.invalid", "554 5.7.1"),
    ("user@other.invalid@ours.test", "501 5.1.3"),
    ("other.invalid!user@ours.test", "554 5.7.1"),
    ("USER%OTHER.INVALID@OURS.TEST", "554 5.7.1"),
    ('"user%other.invalid"@ours.test', "554 5.7.1"),
]


class RelayControlTest(RelayTestCase):
    relay_options = {"trusted_networks": "127.0.0.1/32", "max_bad_commands": 1000}

    def untrusted(self):
        c = self.raw(source=UNTRUSTED)
        c.ehlo("untrusted.test")
        return c

    def test_untrusted_foreign_denied(self):
        c = self.untrusted()
        c.expect("MAIL FROM:<a@example.test>", 250)
        self.assertEqual(c.cmd("RCPT TO:<u@other.invalid>").last,
                         "554 5.7.1 <u@other.invalid>: Relay access denied")
        self.assertReply(c.cmd("DATA"), 503, "503 5.5.1", "DATA with no accepted recipient")

    def test_untrusted_literal_denied(self):
        c = self.untrusted()
        c.expect("MAIL FROM:<a@example.test>", 250)
        r = c.cmd("RCPT TO:<u@[127.0.0.1]>")
        self.assertTrue(500 <= r.code < 600, "address literal relayed for an untrusted client: %r" % r.lines)

    def test_untrusted_ours_accepted_and_delivered(self):
        c = self.untrusted()
        c.expect("MAIL FROM:<ext@example.test>", 250)
        c.expect("RCPT TO:<Someone@OURS.TEST>", 250, "250 2.1.5")
        self.assertEqual(c.cmd("RCPT TO:<u@other.invalid>").code, 554)
        c.expect("DATA", 354)
        qid = queued_id(c.cmd("Subject: inbound\r\n\r\ninbound from untrusted\r\n."))
        m = self.sink.find(b"inbound from untrusted")
        self.assertEqual([r.lower() for r in m.rcpts], ["someone@ours.test"])
        self.relay.wait_log(r"%s: client=" % qid)

    def test_trusted_foreign_accepted_and_routed_by_mx(self):
        """A trusted agency server may relay to the Internet: the message is
        accepted and goes the mx route. .invalid never exists (RFC 6761,
        answered by the resolver itself), so it bounces with a DSN."""
        c = self.raw(source="127.0.0.1")
        c.ehlo()
        # The sender must be in one of our domains (ours.test, the sink's).
        c.expect("MAIL FROM:<out@ours.test>", 250)
        c.expect("RCPT TO:<far@other.invalid>", 250, "250 2.1.5")
        c.expect("DATA", 354)
        qid = queued_id(c.cmd("Subject: outbound\r\n\r\noutbound to a foreign domain\r\n."))
        self.relay.wait_log(r"%s: to=<far@other\.invalid>, relay=mx:other\.invalid, "
                            r".*dsn=5\.1\.2, status=bounced" % qid)
        self.relay.wait_log(r"%s: event=dsn, kind=failure" % qid)

    def test_trusted_relay_needs_our_sender(self):
        """A trusted server relaying out must use a sender address of one of
        our domains (554 5.7.1); bounces (the null sender) may go out; mail
        to our own domains is not affected."""
        c = self.raw(source="127.0.0.1")
        c.ehlo()
        for sender in ("out@example.test", "out@sub.ours.test"):
            with self.subTest(sender=sender):
                c.expect("MAIL FROM:<%s>" % sender, 250)
                self.assertEqual(
                    c.cmd("RCPT TO:<far@other.invalid>").last,
                    "554 5.7.1 <far@other.invalid>: Relay access denied: the sender <%s> "
                    "is not an address of the city's domains" % sender)
                c.expect("RCPT TO:<in@ours.test>", 250, "250 2.1.5")
                c.expect("RSET", 250)
        c.expect("MAIL FROM:<>", 250)
        c.expect("RCPT TO:<far@other.invalid>", 250, "250 2.1.5")
        c.expect("RSET", 250)
        c.expect("MAIL FROM:<Out@OURS.TEST>", 250)
        c.expect("RCPT TO:<far@other.invalid>", 250, "250 2.1.5")
        c.expect("RSET", 250)

    def test_mailboxes_only_without_accept_all(self):
        """A domain added without --accept-all takes mail only for its
        mailboxes and aliases, from any client."""
        self.relay.add_domain("strict.test", self.sink.route, accept_all=False)
        self.relay.ctl_ok("mailbox", "add", "known@strict.test")
        self.relay.ctl_ok("mailbox", "add", "team@strict.test", "--alias-of", "known@strict.test")
        for source in (UNTRUSTED, "127.0.0.1"):
            with self.subTest(source=source):
                c = self.raw(source=source)
                c.ehlo()
                c.expect("MAIL FROM:<mb@example.test>", 250)
                self.assertEqual(c.cmd("RCPT TO:<nobody@strict.test>").last,
                                 "550 5.1.1 <nobody@strict.test>: Recipient address "
                                 "rejected: no such user here")
                c.expect("RCPT TO:<Known@Strict.TEST>", 250, "250 2.1.5")
                c.expect("RCPT TO:<team@strict.test>", 250, "250 2.1.5")
                c.expect("QUIT", 221)
        c = self.untrusted()
        c.expect("MAIL FROM:<mb@example.test>", 250)
        self.assertEqual(c.cmd("RCPT TO:<nobody@strict.test>").code, 550)
        c.expect("RCPT TO:<known@strict.test>", 250)
        c.expect("DATA", 354)
        queued_id(c.cmd("Subject: mailbox\r\n\r\nto a known mailbox\r\n."))
        m = self.sink.find(b"to a known mailbox")
        self.assertEqual([r.lower() for r in m.rcpts], ["known@strict.test"])

    def test_open_relay_forms_refused(self):
        for form, expect in OPEN_RELAY_FORMS:
            with self.subTest(form=form):
                c = self.untrusted()
                c.expect("MAIL FROM:<probe@example.test>", 250)
                r = c.cmd("RCPT TO:<%s>" % form)
                self.assertTrue(r.last.startswith(expect),
                                "RCPT TO:<%s> from an untrusted client: expected %s, got %r"
                                % (form, expect, r.lines))
                self.assertReply(c.cmd("DATA"), 503, "503 5.5.1", "DATA after refused %s" % form)
                c.expect("QUIT", 221)
        self.assertEqual(self.sink.count(b"probe@example.test"), 0)

    def test_live_domain_table(self):
        c = self.untrusted()
        c.expect("MAIL FROM:<a@example.test>", 250)
        self.assertEqual(c.cmd("RCPT TO:<u@later.test>").code, 554)
        self.relay.add_domain("later.test", self.sink.route)
        self.addCleanup(lambda: self.relay.ctl("domain", "remove", "later.test"))

        def accepted():
            return c.cmd("RCPT TO:<u@later.test>").code == 250
        wait_for(accepted, 10, interval=0.2, what="RCPT accepted for a domain added while running")
        self.relay.ctl_ok("domain", "remove", "later.test")
        c.expect("RSET", 250)
        c.expect("MAIL FROM:<a@example.test>", 250)
        wait_for(lambda: c.cmd("RCPT TO:<v@later.test>").code == 554, 10, interval=0.2,
                 what="RCPT refused again after domain remove")


if __name__ == "__main__":
    harness.main()
