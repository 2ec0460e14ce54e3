#!/usr/bin/env python3
"""End-to-end: the bound on recipients after alias expansion is enforced
when the RCPT is accepted, not at end of data (where a 451 made senders
retry for ever).

- an alias that alone expands past 10,000 recipients: RCPT gets a
  permanent 550 5.5.3 at once, with a `rejected` audit record naming the
  rule (alias_limit) and the recipient;
- two aliases that fit one by one but not together: the second RCPT gets
  452 4.5.3 (RFC 5321 section 4.5.3.1.10: the client delivers to the
  first and retries the second in a new transaction), an address already
  in the expansion is still accepted, and the second alone is accepted in
  a fresh transaction;
- an alias that grows past the bound between RCPT and end of data (an
  operator adds lists meanwhile): the commit refuses the message with a
  permanent 554 5.5.3, never a 451, and nothing is queued;
- the session goes on after each refusal.

The aliases come from one `govrelayctl mailbox import` of 11,000 members
in eleven lists of 1,000 (the most targets one alias may have).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RelayTestCase, Sink, parse_json_lines  # noqa: E402

LISTS = 11
MEMBERS = 1000


def untrusted(relay):
    c = harness.RawSMTP(relay.ports["mx"], source="127.0.0.2")
    c.ehlo()
    return c


class AliasBoundTest(RelayTestCase):
    with_sink = False
    dead_domain = None
    start_relay = False
    relay_options = {"trusted_networks": "127.0.0.1/32"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.sink = Sink(cls.workdir).start()
            ctl = cls.relay.ctl_ok
            ctl("tenant", "add", "city", "--name", "City")
            ctl("domain", "add", "big.test", "--tenant", "city", "--route", cls.sink.route)
            path = os.path.join(cls.workdir, "lists.csv")
            with open(path, "w") as f:
                f.write("address,alias-of\n")
                for lst in range(LISTS):
                    for i in range(MEMBERS):
                        f.write("list%d@big.test,p%d@big.test\n" % (lst, lst * MEMBERS + i))
                # everyone: all eleven lists, 11,000 people
                for lst in range(LISTS):
                    f.write("everyone@big.test,list%d@big.test\n" % lst)
                # first and second: 6,000 each, 11,000 together
                for lst in range(0, 6):
                    f.write("first@big.test,list%d@big.test\n" % lst)
                for lst in range(5, LISTS):
                    f.write("second@big.test,list%d@big.test\n" % lst)
                # grow: 6,000, and grows past the bound during a transaction
                for lst in range(0, 6):
                    f.write("grow@big.test,list%d@big.test\n" % lst)
            ctl("mailbox", "import", path)
            cls.relay.start()
        except BaseException:
            cls._cleanup_class()
            raise

    def audit(self, *filters):
        r = self.relay.ctl_ok("audit", "search", *(filters + ("--json",)))
        return parse_json_lines(r.stdout)

    def rejected(self, match):
        """The `rejected` records of rule alias_limit that match, once
        there is at least one."""
        return harness.wait_for(
            lambda: [x for x in self.audit("--event", "rejected")
                     if x.get("rule") == "alias_limit" and match(x)],
            what="a rejected audit record of rule alias_limit")

    def test_alias_alone_over_bound_is_permanent_at_rcpt(self):
        c = untrusted(self.relay)
        self.addCleanup(c.close)
        c.expect("MAIL FROM:<sender@example.org>", 250)
        r = c.cmd("RCPT TO:<everyone@big.test>")
        self.assertReply(r, 550, "550 5.5.3", "alias of 11,000 at RCPT")
        self.assertIn("alias expansion", r.last)
        # the session goes on: another recipient is fine
        c.expect("RCPT TO:<list0@big.test>", 250)
        c.expect("RSET", 250)
        # the refusal's record is written after the reply: wait for it
        recs = self.rejected(lambda x: x.get("to") == "everyone@big.test")
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0].get("stage"), "rcpt")
        self.assertTrue(recs[0].get("code", "").startswith("550 5.5.3"), recs[0])

    def test_alias_grown_after_rcpt_is_permanent_at_commit(self):
        c = untrusted(self.relay)
        self.addCleanup(c.close)
        c.expect("MAIL FROM:<sender@example.org>", 250)
        c.expect("RCPT TO:<grow@big.test>", 250)
        for lst in range(6, LISTS):
            self.relay.ctl_ok("mailbox", "add", "grow@big.test",
                              "--alias-of", "list%d@big.test" % lst)
        c.expect("DATA", 354)
        r = c.cmd(b"Subject: grown\r\n\r\ngrown-alias-body\r\n.")
        self.assertReply(r, 554, "554 5.5.3", "alias grown past the bound before DATA")
        self.assertEqual(self.relay.queue_ids(), [])
        recs = self.rejected(lambda x: x.get("stage") == "data")
        self.assertEqual(len(recs), 1, recs)
        # the session goes on
        c.expect("MAIL FROM:<sender@example.org>", 250)
        c.expect("RSET", 250)

    def test_second_alias_over_bound_is_452(self):
        c = untrusted(self.relay)
        self.addCleanup(c.close)
        c.expect("MAIL FROM:<sender@example.org>", 250)
        c.expect("RCPT TO:<first@big.test>", 250)
        self.assertReply(c.cmd("RCPT TO:<second@big.test>"), 452, "452 4.5.3",
                         "6,000 + 5,000 new after 6,000")
        # people already in the expansion cost nothing
        c.expect("RCPT TO:<list5@big.test>", 250)
        c.expect("RCPT TO:<list0@big.test>", 250)
        c.expect("RSET", 250)
        # in a new transaction the second list fits
        c.expect("MAIL FROM:<sender@example.org>", 250)
        c.expect("RCPT TO:<second@big.test>", 250)
        c.expect("RSET", 250)
        c.expect("QUIT", 221)


if __name__ == "__main__":
    harness.main()
