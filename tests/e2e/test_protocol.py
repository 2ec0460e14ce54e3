"""
e2e: the SMTP dialogue of an mx listener (trusted client, no TLS):
EHLO keywords, the happy path to smtp-sink with smtplib and swaks, BDAT,
RSET/NOOP/HELP/VRFY/EXPN/QUIT, bad sequences, DSN parameters in the queue,
SIZE, 8BITMIME, SMTPUTF8, pipelining, dot-unstuffing.
"""
import os
import re
import smtplib
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HOSTNAME, RelayTestCase, queued_id, wait_for  # noqa: E402

MAX_SIZE = 200000


class ProtocolTest(RelayTestCase):
    relay_options = {"max_message_size": MAX_SIZE}

    def smtp(self):
        c = smtplib.SMTP("127.0.0.1", self.relay.port, local_hostname="client.test", timeout=10)
        self.addCleanup(lambda: c.close())
        return c

    def deliver_check(self, qid, rcpt, needle):
        """Waits for the message at the sink and for the relay's sent log."""
        msg = self.sink.find(needle)
        self.relay.wait_log(r"%s: to=<%s>.*status=sent" % (qid, re.escape(rcpt)))
        return msg

    # ------------------------------------------------------------ greeting

    def test_greeting_and_ehlo_keywords(self):
        c = self.raw()
        self.assertEqual(c.greeting.lines, ["220 %s ESMTP govrelay" % HOSTNAME])
        r = c.cmd("EHLO client.test")
        self.assertReply(r, 250)
        self.assertEqual(r.lines[0], "250-" + HOSTNAME, "first EHLO line names the host")
        kw = [l[4:] for l in r.lines[1:]]
        for k in ("PIPELINING", "SIZE %d" % MAX_SIZE, "8BITMIME", "SMTPUTF8",
                  "ENHANCEDSTATUSCODES", "CHUNKING", "DSN"):
            self.assertIn(k, kw, "EHLO keyword %r missing in %r" % (k, r.lines))
        self.assertNotIn("STARTTLS", kw, "STARTTLS offered without a certificate")
        for l in r.lines[:-1]:
            self.assertTrue(l.startswith("250-"), r.lines)
        self.assertTrue(r.lines[-1].startswith("250 "), r.lines)
        for raw in c.raw_lines:
            self.assertTrue(raw.endswith(b"\r\n"), "reply line without CRLF: %r" % raw)

    def test_helo(self):
        c = self.raw()
        self.assertEqual(c.cmd("HELO client.test").lines, ["250 " + HOSTNAME])
        self.assertReply(c.cmd("MAIL FROM:<a@x.test>"), 250, "250 2.1.0")

    def test_starttls_not_available_without_cert(self):
        c = self.raw()
        c.ehlo()
        self.assertReply(c.cmd("STARTTLS"), 502, "502 5.5.1")

    # ------------------------------------------------------------ happy path

    def test_smtplib_delivery_to_sink(self):
        body = b"Subject: happy path\r\nMessage-ID: <happy@client.test>\r\n\r\nhello happy path\r\n"
        c = self.smtp()
        c.ehlo()
        c.mail("sender@example.test")
        self.assertEqual(c.rcpt("user@ours.test")[0], 250)
        code, msg = c.data(body)
        self.assertEqual(code, 250)
        qid = queued_id("250 " + msg.decode())
        c.quit()
        m = self.deliver_check(qid, "user@ours.test", b"hello happy path")
        self.assertEqual(m.mail_from, "sender@example.test", m.mail_args)
        self.assertEqual(m.rcpts, ["user@ours.test"])
        self.assertEqual(m.body, b"hello happy path\n")
        rec = m.headers("received")
        self.assertEqual(len(rec), 1, "expected exactly one Received header, got %r" % rec)
        self.assertIn(HOSTNAME.encode(), rec[0])
        self.assertTrue(m.header_block.lower().startswith(b"received:"),
                        "Received must be prepended: %r" % m.header_block[:200])
        self.assertEqual(m.without_received(), body.replace(b"\r\n", b"\n"))
        self.relay.wait_log(r"%s: from=<sender@example\.test>, size=\d+, nrcpt=1" % qid)
        self.relay.wait_gone(qid)

    def test_two_recipients_one_message(self):
        c = self.smtp()
        refused = c.sendmail("s@example.test", ["r1@ours.test", "r2@ours.test"],
                             b"Subject: two\r\n\r\ntwo recipients body\r\n")
        self.assertEqual(refused, {})
        wait_for(lambda: sorted(sum((m.rcpts for m in self.sink.messages()
                                     if b"two recipients body" in m.raw), []))
                 == ["r1@ours.test", "r2@ours.test"], 15, what="both recipients at sink")

    def test_dot_unstuffing_exactly_once(self):
        body = (b"Subject: dots\r\n\r\ndot test start\r\n.x\r\n..y\r\n.\r\n..\r\n"
                b" .z\r\nend\r\n")
        c = self.smtp()
        c.sendmail("s@example.test", ["dots@ours.test"], body)   # smtplib stuffs
        m = self.sink.find(b"dot test start")
        self.assertEqual(m.body.split(b"\n"),
                         [b"dot test start", b".x", b"..y", b".", b"..", b" .z", b"end", b""],
                         "body after relay unstuff + restuff: %r" % m.body)

    def test_8bitmime_body(self):
        body = "Subject: 8bit\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" \
               "eightbit Xin chào thành phố\r\n"
        c = self.smtp()
        c.ehlo()
        self.assertTrue(c.has_extn("8bitmime"))
        c.sendmail("s@example.test", ["eight@ours.test"], body.encode("utf-8"),
                   mail_options=["BODY=8BITMIME"])
        m = self.sink.find(b"eightbit")
        self.assertIn("Xin chào thành phố".encode("utf-8"), m.body)

    def test_swaks_plain(self):
        harness.require_tools("swaks")
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.relay.port),
                            "--to", "swaks@ours.test", "--from", "s@example.test",
                            "--helo", "client.test", "--header", "Subject: swaks plain",
                            "--body", "swaks plain body"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30,
                           universal_newlines=True)
        self.assertEqual(r.returncode, 0, r.stdout)
        m = re.search(r"<-  250 2\.0\.0 Ok: queued as ([0-9A-F]{16})", r.stdout)
        self.assertTrue(m, r.stdout)
        msg = self.sink.find(b"swaks plain body")
        self.assertEqual(msg.rcpts, ["swaks@ours.test"])

    # ------------------------------------------------------------ BDAT

    def test_bdat_chunks(self):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<bdat@example.test>", 250)
        c.expect("RCPT TO:<bdat@ours.test>", 250)
        part1 = b"Subject: bdat\r\n\r\nfirst chunk "
        part2 = b"second chunk\r\n.\r\nMAIL FROM:<not-a-command@x.test>\r\nlast line\r\n"
        c.send(b"BDAT %d\r\n" % len(part1) + part1)
        r = c.reply()
        self.assertEqual(r.lines, ["250 2.0.0 %d octets received" % len(part1)])
        c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
        qid = queued_id(c.reply())
        self.assertReply(c.cmd("NOOP"), 250, "250 2.0.0")
        m = self.sink.find(b"first chunk second chunk")
        self.assertEqual(m.body, b"first chunk second chunk\n.\nMAIL FROM:<not-a-command@x.test>\nlast line\n",
                         "BDAT content must arrive verbatim (a '.' line is data)")
        self.relay.wait_log(r"%s: to=<bdat@ours\.test>.*status=sent" % qid)

    def test_bdat_pipelined_and_zero_last(self):
        c = self.raw()
        c.ehlo()
        chunk = b"Subject: bdat2\r\n\r\npipelined bdat body\r\n"
        c.send(b"MAIL FROM:<b2@example.test>\r\nRCPT TO:<b2@ours.test>\r\nBDAT %d\r\n" % len(chunk)
               + chunk + b"BDAT 0 LAST\r\n")
        r = c.replies(4)
        self.assertEqual([x.code for x in r], [250, 250, 250, 250], r)
        self.assertEqual(r[2].last, "250 2.0.0 %d octets received" % len(chunk))
        queued_id(r[3])
        self.sink.find(b"pipelined bdat body")

    def test_bdat_sequence_errors(self):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<b3@example.test>", 250)
        c.send(b"BDAT 5\r\nhello")
        self.assertReply(c.reply(), 503, "503 5.5.1", "BDAT before RCPT")
        c.expect("RSET", 250)
        c.expect("MAIL FROM:<b3@example.test>", 250)
        c.expect("RCPT TO:<b3@ours.test>", 250)
        c.send(b"BDAT 5\r\nhello")
        self.assertReply(c.reply(), 250, "250 2.0.0 5 octets received")
        self.assertReply(c.cmd("DATA"), 503, "503 5.5.1", "DATA after BDAT")
        c.expect("RSET", 250, "250 2.0.0")
        self.assertReply(c.cmd("NOOP"), 250)

    # ------------------------------------------------------------ simple verbs

    def test_simple_verbs(self):
        c = self.raw()
        c.ehlo()
        self.assertEqual(c.cmd("NOOP").last, "250 2.0.0 Ok")
        self.assertEqual(c.cmd("RSET").last, "250 2.0.0 Ok")
        r = c.cmd("HELP")
        self.assertEqual(r.code, 214, r.lines)
        self.assertTrue(r.last.startswith("214 2.0.0"), r.lines)
        self.assertEqual(c.cmd("VRFY postmaster").last,
                         "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery")
        self.assertEqual(c.cmd("EXPN staff").last, "502 5.5.1 Error: EXPN not available")
        self.assertEqual(c.cmd("FROBNICATE").last, "500 5.5.2 Error: command not recognized")
        self.assertEqual(c.cmd("QUIT").last, "221 2.0.0 Bye")
        self.assertTrue(c.wait_closed(3), "connection not closed after QUIT")

    def test_rset_clears_transaction(self):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<r@example.test>", 250)
        c.expect("RCPT TO:<r@ours.test>", 250)
        c.expect("RSET", 250)
        self.assertReply(c.cmd("DATA"), 503, "503 5.5.1", "DATA after RSET")
        self.assertReply(c.cmd("RCPT TO:<r@ours.test>"), 503, "503 5.5.1", "RCPT after RSET")
        self.assertReply(c.cmd("MAIL FROM:<r@example.test>"), 250, "250 2.1.0")

    def test_bad_sequences(self):
        c = self.raw()
        self.assertReply(c.cmd("MAIL FROM:<a@example.test>"), 503, "503 5.5.1", "MAIL before EHLO")
        c.ehlo()
        self.assertReply(c.cmd("RCPT TO:<a@ours.test>"), 503, "503 5.5.1", "RCPT before MAIL")
        self.assertReply(c.cmd("DATA"), 503, "503 5.5.1", "DATA before MAIL")
        c.expect("MAIL FROM:<a@example.test>", 250)
        self.assertReply(c.cmd("DATA"), 503, "503 5.5.1", "DATA before RCPT")
        self.assertReply(c.cmd("MAIL FROM:<a@example.test>"), 503, "503 5.5.1", "nested MAIL")

    def test_syntax_errors(self):
        c = self.raw()
        c.ehlo()
        self.assertReply(c.cmd("MAIL FROM:<not an address>"), 501, "501 5.1.7", "bad sender")
        c.expect("MAIL FROM:<>", 250, "250 2.1.0")
        self.assertReply(c.cmd("RCPT TO:<no-domain>"), 501, "501 5.1.3", "bad recipient")
        self.assertReply(c.cmd("RCPT TO:<a@ours.test> FOO=BAR"), 555, "555 5.5.4", "unknown RCPT param")
        c.expect("RSET", 250)
        self.assertReply(c.cmd("MAIL FROM:<a@example.test> FOO=BAR"), 555, "555 5.5.4", "unknown MAIL param")
        r = c.cmd("MAIL")
        self.assertEqual(r.code, 501, r.lines)
        self.assertTrue(r.last.startswith("501 5.5.4"), r.lines)

    # ------------------------------------------------------------ parameters

    def test_size_parameter(self):
        c = self.raw()
        c.ehlo()
        self.assertReply(c.cmd("MAIL FROM:<s@example.test> SIZE=%d" % (MAX_SIZE // 2)), 250, "250 2.1.0")
        c.expect("RSET", 250)
        self.assertReply(c.cmd("MAIL FROM:<s@example.test> SIZE=%d" % (MAX_SIZE + 1)), 552,
                         "552 5.3.4 Error: message file too big")
        self.assertReply(c.cmd("MAIL FROM:<s@example.test> SIZE=%d BODY=8BITMIME" % MAX_SIZE),
                         250, "250 2.1.0")

    def test_smtputf8(self):
        c = self.raw()
        c.ehlo()
        self.assertReply(c.cmd("MAIL FROM:<người@example.test>"), 553, "553 5.6.7",
                         "UTF-8 sender without SMTPUTF8")
        c.expect("MAIL FROM:<ascii@example.test>", 250)
        self.assertReply(c.cmd("RCPT TO:<thư@held.test>"), 553, "553 5.6.7",
                         "UTF-8 recipient without SMTPUTF8")
        c.expect("RSET", 250)
        self.assertReply(c.cmd("MAIL FROM:<người@example.test> SMTPUTF8 BODY=8BITMIME"), 250, "250 2.1.0")
        self.assertReply(c.cmd("RCPT TO:<thư@held.test>"), 250, "250 2.1.5")
        c.expect("DATA", 354)
        qid = queued_id(c.cmd("Subject: utf8\r\n\r\nthư gửi\r\n.".encode("utf-8")))
        show = self.relay.queue_show(qid)
        txt = harness.json.dumps(show, ensure_ascii=False)
        self.assertIn("người@example.test", txt, show)
        self.assertIn("thư@held.test", txt, show)

    def test_dsn_parameters_in_queue(self):
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<dsn@example.test> RET=HDRS ENVID=QQ+2Bid-77", 250, "250 2.1.0")
        c.expect("RCPT TO:<held1@held.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;held1@held.test",
                 250, "250 2.1.5")
        c.expect("RCPT TO:<held2@held.test> NOTIFY=NEVER", 250, "250 2.1.5")
        c.expect("DATA", 354)
        qid = queued_id(c.cmd("Subject: dsn\r\n\r\nheld for dsn\r\n."))
        self.assertIn(qid, self.relay.queue_ids())
        show = self.relay.queue_show(qid)
        dump = harness.json.dumps(show)
        self.assertIn("QQ+id-77", [v for v in harness.find_key(show, "envid")],
                      "ENVID (xtext-decoded) not in queue show: %s" % dump)
        ret = [str(v).lower() for v in harness.find_key(show, "ret")]
        self.assertTrue(any("hdrs" in v for v in ret), "RET=HDRS not in queue show: %s" % dump)
        orcpt = [str(v) for v in harness.find_key(show, "orcpt")]
        self.assertTrue(any("held1@held.test" in v and v.lower().startswith("rfc822;") for v in orcpt),
                        "ORCPT not in queue show: %s" % dump)
        notify = " ".join(str(v).lower() for v in harness.find_key(show, "notify"))
        for word in ("success", "failure", "never"):
            self.assertIn(word, notify, "NOTIFY %s not in queue show: %s" % (word, dump))

    def test_bad_dsn_parameters(self):
        c = self.raw()
        c.ehlo()
        self.assertEqual(c.cmd("MAIL FROM:<d@example.test> RET=SOMETIMES").code, 501)
        c.expect("MAIL FROM:<d@example.test>", 250)
        self.assertEqual(c.cmd("RCPT TO:<d@held.test> NOTIFY=NEVER,SUCCESS").code, 501)

    # ------------------------------------------------------------ pipelining

    def test_pipelining_replies_in_order(self):
        c = self.raw()
        c.send(b"EHLO client.test\r\nMAIL FROM:<p@example.test>\r\nRCPT TO:<p1@ours.test>\r\n"
               b"RCPT TO:<>\r\nRCPT TO:<p2@ours.test>\r\nNOOP\r\nDATA\r\n")
        r = c.replies(7)
        got = [x.last[:9] for x in r[1:]]
        self.assertEqual(r[0].code, 250, r[0].lines)
        self.assertEqual(got, ["250 2.1.0", "250 2.1.5", "501 5.1.3", "250 2.1.5", "250 2.0.0",
                               "354 End d"], [x.lines for x in r])
        self.assertEqual(r[0].lines[0], "250-" + HOSTNAME)
        c.send(b"Subject: pipelined\r\n\r\npipelined body\r\n.\r\nNOOP\r\nQUIT\r\n")
        r = c.replies(3)
        queued_id(r[0])
        self.assertEqual(r[1].last, "250 2.0.0 Ok")
        self.assertEqual(r[2].last, "221 2.0.0 Bye")
        self.assertTrue(c.wait_closed(3))
        m = self.sink.find(b"pipelined body")
        self.assertEqual(sorted(m.rcpts), ["p1@ours.test", "p2@ours.test"])

    def test_commands_after_quit_ignored(self):
        c = self.raw()
        c.ehlo()
        c.send(b"QUIT\r\nMAIL FROM:<after-quit@example.test>\r\nRCPT TO:<aq@ours.test>\r\n"
               b"DATA\r\nSubject: x\r\n\r\nafter quit\r\n.\r\n")
        self.assertEqual(c.reply().last, "221 2.0.0 Bye")
        self.assertTrue(c.wait_closed(3), "not closed after QUIT")
        self.assertEqual(c.leftover, b"", "replies after QUIT: %r" % c.leftover)
        self.assertNotIn("after-quit@example.test", self.relay.log())


if __name__ == "__main__":
    harness.main()
