"""
e2e: TLS. STARTTLS with smtplib, openssl s_client -starttls smtp and
swaks --tls; STARTTLS command injection (plaintext pipelined after
STARTTLS is discarded); a new EHLO is required after the handshake;
TLS 1.0/1.1 refused; the submission role requires STARTTLS; the
submissions role speaks TLS from the first byte.
"""
import os
import re
import smtplib
import ssl
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HOSTNAME, RelayTestCase, client_tls_context, queued_id  # noqa: E402


class TlsTest(RelayTestCase):
    relay_options = {"tls": True, "listeners": ("mx", "submission", "submissions")}

    @property
    def mx(self):
        return self.relay.ports["mx"]

    def tls_session(self, port=None):
        c = self.raw(port or self.mx)
        r = c.ehlo()
        self.assertIn("250-STARTTLS", r.lines + [r.last.replace("250 ", "250-")],
                      "STARTTLS not offered: %r" % r.lines)
        self.assertEqual(c.cmd("STARTTLS").last, "220 2.0.0 Ready to start TLS")
        c.starttls()
        return c

    # ------------------------------------------------------------ clients

    def test_smtplib_starttls_delivery(self):
        c = smtplib.SMTP("127.0.0.1", self.mx, local_hostname="client.test", timeout=10)
        self.addCleanup(c.close)
        c.ehlo()
        self.assertTrue(c.has_extn("starttls"))
        code, _ = c.starttls(context=client_tls_context())
        self.assertEqual(code, 220)
        c.ehlo()
        self.assertFalse(c.has_extn("starttls"), "STARTTLS offered again inside TLS")
        self.assertIn(c.sock.version(), ("TLSv1.2", "TLSv1.3"))
        c.mail("tls@example.test")
        self.assertEqual(c.rcpt("tls@ours.test")[0], 250)
        code, msg = c.data(b"Subject: over tls\r\n\r\nbody sent over starttls\r\n")
        self.assertEqual(code, 250, msg)
        qid = queued_id("250 " + msg.decode())
        c.quit()
        m = self.sink.find(b"body sent over starttls")
        self.assertEqual(m.rcpts, ["tls@ours.test"])
        self.relay.wait_log(r"%s: to=<tls@ours\.test>.*status=sent" % qid)

    def test_openssl_s_client(self):
        harness.require_tools("openssl")
        r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.mx,
                            "-starttls", "smtp", "-servername", HOSTNAME, "-brief", "-crlf",
                            "-ign_eof"],
                           input=b"EHLO client.test\nNOOP\nQUIT\n",
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        out = r.stdout.decode(errors="replace")
        self.assertRegex(out, r"Protocol version: TLSv1\.[23]", out)
        self.assertIn("250-" + HOSTNAME, out, "no EHLO reply inside TLS:\n" + out)
        self.assertIn("250 2.0.0 Ok", out, out)
        self.assertIn("221 2.0.0 Bye", out, out)

    def test_swaks_tls(self):
        harness.require_tools("swaks")
        sup = subprocess.run(["swaks", "--support"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True, timeout=20)
        if "TLS supported" not in sup.stdout:
            self.skipTest("swaks has no TLS support (Perl module Net::SSLeay, Debian "
                          "libnet-ssleay-perl, is not installed)")
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.mx),
                            "--to", "swaks-tls@ours.test", "--from", "s@example.test",
                            "--helo", "client.test", "--tls",
                            "--header", "Subject: swaks tls", "--body", "swaks tls body"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30,
                           universal_newlines=True)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertRegex(r.stdout, r"=== TLS started with cipher TLSv1\.[23]")
        self.assertRegex(r.stdout, r"<~  250 2\.0\.0 Ok: queued as [0-9A-F]{16}")
        m = self.sink.find(b"swaks tls body")
        self.assertEqual(m.rcpts, ["swaks-tls@ours.test"])

    # ------------------------------------------------------------ injection

    def test_starttls_injection(self):
        c = self.raw(self.mx)
        c.ehlo()
        c.send(b"STARTTLS\r\nMAIL FROM:<evil@example.test>\r\nRCPT TO:<evil@ours.test>\r\n")
        self.assertEqual(c.reply().last, "220 2.0.0 Ready to start TLS")
        c.starttls()
        r = c.cmd("EHLO client.test")
        self.assertEqual(r.lines[0], "250-" + HOSTNAME,
                         "first reply inside TLS must be the EHLO's, got %r "
                         "(the injected plaintext was executed)" % r.lines)
        self.assertEqual(r.code, 250)
        self.assertReply(c.cmd("RCPT TO:<x@ours.test>"), 503, "503 5.5.1",
                         "the injected MAIL must not have opened a transaction")
        c.expect("MAIL FROM:<good@example.test>", 250, "250 2.1.0")
        c.expect("RCPT TO:<good@ours.test>", 250, "250 2.1.5")
        c.expect("RSET", 250)
        self.assertNotRegex(self.relay.log(), r"from=<evil@example\.test>")

    def test_no_mail_without_new_ehlo(self):
        c = self.tls_session()
        self.assertReply(c.cmd("MAIL FROM:<a@example.test>"), 503, "503 5.5.1",
                         "MAIL after STARTTLS without a new EHLO")
        r = c.ehlo()
        self.assertNotIn("250-STARTTLS", r.lines)
        self.assertNotEqual(r.last, "250 STARTTLS")
        self.assertReply(c.cmd("STARTTLS"), 503, "503 5.5.1 Error: TLS already active")
        c.expect("MAIL FROM:<a@example.test>", 250)

    def test_helo_after_tls_also_works(self):
        c = self.tls_session()
        self.assertEqual(c.cmd("HELO client.test").lines, ["250 " + HOSTNAME])
        c.expect("MAIL FROM:<h@example.test>", 250)

    def test_tls_versions(self):
        for ver in ("TLSv1_2", "TLSv1_3"):
            with self.subTest(version=ver):
                v = getattr(ssl.TLSVersion, ver)
                c = self.raw(self.mx)
                c.ehlo()
                c.expect("STARTTLS", 220)
                s = c.starttls(client_tls_context(minimum=v, maximum=v))
                self.assertEqual(s.version(), ver.replace("_", "."))
                c.ehlo()

    def test_old_tls_refused(self):
        for ver in ("TLSv1", "TLSv1_1"):
            with self.subTest(version=ver):
                v = getattr(ssl.TLSVersion, ver)
                c = self.raw(self.mx)
                c.ehlo()
                c.expect("STARTTLS", 220)
                ctx = client_tls_context(minimum=v, maximum=v, legacy=True)
                with self.assertRaises((ssl.SSLError, OSError),
                                       msg="%s handshake succeeded" % ver):
                    c.starttls(ctx)
                    c.cmd("EHLO client.test")

    # ------------------------------------------------------------ roles

    def test_submission_requires_starttls(self):
        port = self.relay.ports["submission"]
        c = self.raw(port)
        self.assertEqual(c.greeting.last, "220 %s ESMTP govrelay" % HOSTNAME)
        r = c.ehlo()
        self.assertIn("250-STARTTLS", r.lines + [r.last.replace("250 ", "250-")])
        self.assertEqual(c.cmd("MAIL FROM:<sub@example.test>").last,
                         "530 5.7.0 Must issue a STARTTLS command first")
        c.expect("STARTTLS", 220)
        c.starttls()
        c.ehlo()
        self.assertEqual(c.cmd("MAIL FROM:<sub@example.test>").last,
                         "530 5.7.0 Authentication required")

    def test_submissions_implicit_tls(self):
        port = self.relay.ports["submissions"]
        c = self.raw(port, implicit_tls=client_tls_context())
        self.assertEqual(c.greeting.last, "220 %s ESMTP govrelay" % HOSTNAME)
        self.assertIn(c.sock.version(), ("TLSv1.2", "TLSv1.3"))
        r = c.ehlo()
        self.assertFalse(any("STARTTLS" in l for l in r.lines),
                         "STARTTLS offered on submissions: %r" % r.lines)
        self.assertEqual(c.cmd("MAIL FROM:<subs@example.test>").last,
                         "530 5.7.0 Authentication required")

    def test_submissions_starttls_when_tls_active(self):
        """Contract: STARTTLS while TLS is active is 503 5.5.1 Error: TLS
        already active; on submissions TLS is active from the first byte."""
        c = self.raw(self.relay.ports["submissions"], implicit_tls=client_tls_context())
        c.ehlo()
        self.assertReply(c.cmd("STARTTLS"), 503, "503 5.5.1 Error: TLS already active")
        self.assertReply(c.cmd("NOOP"), 250)

    def test_submissions_rejects_plaintext(self):
        port = self.relay.ports["submissions"]
        c = self.raw(port, read_greeting=False)
        c.send(b"EHLO plain.test\r\n")
        self.assertTrue(c.wait_closed(5), "submissions answered a plaintext client")
        self.assertFalse(re.search(rb"^250", c.leftover or b"", re.M),
                         "plaintext EHLO answered on submissions: %r" % c.leftover)


if __name__ == "__main__":
    harness.main()
