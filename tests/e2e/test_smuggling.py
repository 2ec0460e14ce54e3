"""
e2e: SMTP smuggling and line-ending abuse. Bare LF / bare CR in command
lines; in DATA, every non-CRLF end-of-data look-alike (<LF>.<LF>,
<CR>.<CR>, <CR><LF>.<LF>, <LF>.<CR><LF>, <CR><LF>.<CR>) followed by a
smuggled MAIL FROM transaction: the smuggled commands must never run, the
message is refused with 550 5.5.2 after the real <CR><LF>.<CR><LF>, and
nothing is queued or delivered.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RelayTestCase, queued_id  # noqa: E402

BARE = "500 5.5.2 Error: bare <LF> or <CR> received"
DATA_BARE = "550 5.5.2 Error: bare <LF> or <CR> in message text"

SEQUENCES = [
    ("LF.LF", b"\n.\n"),
    ("CR.CR", b"\r.\r"),
    ("CRLF.LF", b"\r\n.\n"),
    ("LF.CRLF", b"\n.\r\n"),
    ("CRLF.CR", b"\r\n.\r"),
]


class SmugglingTest(RelayTestCase):
    relay_options = {"max_bad_commands": 50}

    def assertNothingFrom(self, sender):
        self.assertNotIn("<%s>" % sender, self.relay.log(),
                         "%s appears in the log: a smuggled/refused transaction ran" % sender)

    def assertDataBare(self, r, what=""):
        # The daemon appends "(RFC 5321 section 2.3.8)" to the contract's text.
        self.assertTrue(r.last.startswith(DATA_BARE), "%s expected %r..., got %r"
                        % (what, DATA_BARE, r.lines))

    # ------------------------------------------------------------ commands

    def replies_until_noop(self, c):
        """Reads replies until the final NOOP's `250 2.0.0 Ok`. A bare LF
        may end a line (each such line refused) or be part of the line up
        to CRLF (one refusal): both are safe; executing any command whose
        line ends in a bare LF, or that follows a bare CR, is not."""
        got = []
        while True:
            r = c.reply()
            got.append(r.last)
            if r.last == "250 2.0.0 Ok":
                break
            self.assertLess(len(got), 10, got)
        self.assertIn(BARE, got[:-1], got)
        for l in got[:-1]:
            self.assertTrue(l == BARE or l.startswith("503 "),
                            "a command in a bare-LF/CR line was executed: %r" % got)
        return got

    def test_bare_lf_in_command(self):
        c = self.raw()
        c.ehlo()
        c.send(b"NOOP\nMAIL FROM:<lf-cmd@example.test>\nRCPT TO:<x@ours.test>\r\nNOOP\r\n")
        self.replies_until_noop(c)
        self.assertReply(c.cmd("DATA"), 503, "503 5.5.1",
                         "the MAIL ended by a bare LF must not have run")
        self.assertNothingFrom("lf-cmd@example.test")

    def test_bare_cr_in_command(self):
        c = self.raw()
        c.ehlo()
        c.send(b"NOOP\rMAIL FROM:<cr-cmd@example.test>\r\nNOOP\r\n")
        self.assertEqual(c.reply().last, BARE)
        self.assertEqual(c.reply().last, "250 2.0.0 Ok",
                         "exactly one reply for the line with the bare CR")
        self.assertReply(c.cmd("RCPT TO:<x@ours.test>"), 503, "503 5.5.1",
                         "the MAIL after the bare CR must not have run")

    def test_lf_terminated_commands(self):
        c = self.raw()
        c.ehlo()
        c.send(b"MAIL FROM:<lf-only@example.test>\nRCPT TO:<x@ours.test>\nNOOP\r\n")
        self.replies_until_noop(c)
        self.assertReply(c.cmd("DATA"), 503, "503 5.5.1", "no transaction may exist")

    def test_bare_lf_in_ehlo(self):
        c = self.raw()
        c.send(b"EHLO a.test\nMAIL FROM:<x@example.test>\r\n")
        self.assertEqual(c.reply().last, BARE)
        self.assertReply(c.cmd("MAIL FROM:<x@example.test>"), 503, "503 5.5.1",
                         "EHLO with a bare LF must not count as EHLO")

    # ------------------------------------------------------------ DATA

    def smuggle(self, name, seq):
        tag = name.replace(".", "-").lower()
        evil = "evil-%s@example.test" % tag
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<outer-%s@example.test>" % tag, 250)
        c.expect("RCPT TO:<outer@ours.test>", 250)
        c.expect("DATA", 354)
        payload = (b"Subject: smuggle " + name.encode() + b"\r\n\r\nouter body" + seq +
                   b"MAIL FROM:<" + evil.encode() + b">\r\n"
                   b"RCPT TO:<victim@ours.test>\r\n"
                   b"DATA\r\n"
                   b"Subject: smuggled\r\n\r\nsmuggled body " + name.encode() + b"\r\n"
                   b".\r\n")
        c.send(payload)
        r = c.reply()
        self.assertDataBare(r, "%s: the one reply after the real end of data" % name)
        self.assertReply(c.cmd("NOOP"), 250, "250 2.0.0",
                         "%s: a smuggled command was answered (replies out of step)" % name)
        self.assertReply(c.cmd("RCPT TO:<x@ours.test>"), 503, "503 5.5.1",
                         "%s: a transaction is open after the refused message" % name)
        c.expect("QUIT", 221)
        self.assertNothingFrom(evil)
        self.assertNothingFrom("outer-%s@example.test" % tag)
        self.assertQueueEmpty(name)
        self.assertEqual(self.sink.count(b"smuggled body"), 0,
                         "%s: the smuggled message reached the sink" % name)

    def test_data_smuggling(self):
        for name, seq in SEQUENCES:
            with self.subTest(sequence=name):
                self.smuggle(name, seq)

    def test_bare_lf_line_end_in_data(self):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<lf-data@example.test>", 250)
        c.expect("RCPT TO:<x@ours.test>", 250)
        c.expect("DATA", 354)
        c.send(b"Subject: lf\r\n\r\nline one\nline two\r\n.\r\n")
        self.assertDataBare(c.reply())
        self.assertNothingFrom("lf-data@example.test")

    def test_lf_dot_lf_does_not_end_data(self):
        """<LF>.<LF> alone must not end DATA: no reply until CRLF.CRLF."""
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<wait@example.test>", 250)
        c.expect("RCPT TO:<x@ours.test>", 250)
        c.expect("DATA", 354)
        c.send(b"Subject: w\r\n\r\nbody\n.\n")
        self.assertTrue(c.quiet_for(0.5), "the server answered before <CR><LF>.<CR><LF>")
        c.send(b"more\r\n.\r\n")
        self.assertDataBare(c.reply())

    def test_clean_message_after_refused_one(self):
        """The session is usable after a refused message; a clean message
        with dots and CRs inside words is delivered unchanged."""
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<dirty@example.test>", 250)
        c.expect("RCPT TO:<x@ours.test>", 250)
        c.expect("DATA", 354)
        c.send(b"Subject: dirty\r\n\r\na\rb\r\n.\r\n")
        self.assertDataBare(c.reply())
        body = b"Subject: clean after dirty\r\n\r\nclean after dirty\r\n..leading dots\r\n"
        qid = queued_id(c.send_message("clean@example.test", ["clean@ours.test"], body, ehlo=False))
        m = self.sink.find(b"clean after dirty")
        self.assertEqual(m.body, b"clean after dirty\n..leading dots\n")
        self.relay.wait_log(r"%s: to=<clean@ours\.test>.*status=sent" % qid)
        self.relay.wait_queue_empty()


if __name__ == "__main__":
    harness.main()
