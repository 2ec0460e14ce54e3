"""
e2e: the Authentication-Results boundary (RFC 8601 section 5). A field
that arrives with a message and claims our authserv-id is removed before
the message is queued, whatever its case, folding or comments, through
DATA and through BDAT chunks that cut it anywhere; fields of other
authserv-ids and every other header stay byte for byte; the message
delivered is otherwise exactly what the client sent, under our Received:.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RelayTestCase, queued_id  # noqa: E402

AUTHSERV = "gw.city-test.vn"

FORGED = [
    b"Authentication-Results: gw.city-test.vn; spf=pass smtp.mailfrom=boss@ours.test",
    b"authentication-results: GW.City-Test.VN;\r\n\tdkim=pass header.d=ours.test",
    b"Authentication-Results:\r\n gw.city-test.vn 1; dmarc=pass header.from=ours.test",
    b"Authentication-Results: (looks official) \"gw.city-test.vn\"; dmarc=pass",
]
KEPT = [
    b"Authentication-Results: mx.other-test.org; spf=fail smtp.mailfrom=x@y.org",
    b"ARC-Authentication-Results: i=1; gw.city-test.vn; dmarc=pass",
]


def message(tag):
    head = [b"From: <a@sender-test.org>", b"To: <u@ours.test>",
            b"Subject: " + tag] + FORGED[:2] + KEPT[:1] + FORGED[2:] + KEPT[1:] + [
            b"Message-ID: <" + tag + b"@sender-test.org>"]
    return b"\r\n".join(head) + b"\r\n\r\nbody line 1\r\nAuthentication-Results: " \
        b"gw.city-test.vn; in the body it is text\r\n"


class AuthResTest(RelayTestCase):
    relay_options = {"authserv_id": AUTHSERV}

    def check_delivered(self, tag):
        m = self.sink.find(b"Subject: " + tag)
        got = m.without_received()
        self.assertEqual(m.headers("authentication-results"),
                         [b"mx.other-test.org; spf=fail smtp.mailfrom=x@y.org"],
                         "only the other authserv-id's field is left")
        self.assertEqual(m.headers("arc-authentication-results"),
                         [b"i=1; gw.city-test.vn; dmarc=pass"])
        # Everything else, the body included, is exactly what was sent.
        want = message(tag).replace(b"\r\n", b"\n")
        for f in FORGED:
            want = want.replace(f.replace(b"\r\n", b"\n") + b"\n", b"")
        self.assertEqual(got, want)
        self.assertIn(b"Authentication-Results: gw.city-test.vn; in the body", m.body)

    def test_data(self):
        c = self.raw()
        r = c.send_message("a@sender-test.org", ["u@ours.test"], message(b"ar-data"))
        self.assertIsNotNone(queued_id(r), r.lines)
        self.check_delivered(b"ar-data")
        self.relay.wait_log(r"header_removed.*Authentication-Results")

    def test_bdat_cut_everywhere(self):
        """BDAT chunks of 7 bytes: every field arrives cut into pieces."""
        data = message(b"ar-bdat")
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<a@sender-test.org>", 250)
        c.expect("RCPT TO:<u@ours.test>", 250)
        step = 7
        for i in range(0, len(data), step):
            piece = data[i:i + step]
            last = i + step >= len(data)
            c.send(b"BDAT %d%s\r\n" % (len(piece), b" LAST" if last else b"") + piece)
            r = c.reply()
            if not last:
                self.assertEqual(r.code, 250, r.lines)
        self.assertIsNotNone(queued_id(r), r.lines)
        self.check_delivered(b"ar-bdat")

    def test_header_only_message(self):
        """A message that ends inside its header section: the held field is
        settled at the end all the same."""
        data = b"Subject: ar-nobody\r\n" + FORGED[0] + b"\r\n"
        c = self.raw()
        r = c.send_message("a@sender-test.org", ["u@ours.test"], data)
        self.assertIsNotNone(queued_id(r), r.lines)
        m = self.sink.find(b"Subject: ar-nobody")
        self.assertEqual(m.headers("authentication-results"), [])


if __name__ == "__main__":
    harness.main()
