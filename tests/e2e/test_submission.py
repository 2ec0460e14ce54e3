"""
e2e: authenticated submission (RFC 6409, RFC 4954) on the `submission`
(STARTTLS) and `submissions` (implicit TLS) listeners, with users made by
`govrelayctl user add` (password on standard input). Covered:

- AUTH PLAIN and AUTH LOGIN (with and without an initial response) over
  STARTTLS with smtplib: 235; AUTH on submissions; swaks --auth over --tls;
- no AUTH before TLS: EHLO in plaintext does not offer it, AUTH is 538
  5.7.11 (or 530); MAIL without AUTH is 530 5.7.0;
- a wrong password is 535 5.7.8; after auth_max_failures failures the
  user is locked out (even the right password fails, `user show --json`
  says locked_out), `user unlock` lifts it at once without a reload;
  `user lock` refuses a correct password too; passwords never reach the
  log or the audit trail;
- MAIL FROM another user's address is 553 5.7.1, an alias the user owns
  is accepted; a From: header that is not the envelope sender is 550
  5.7.1 at the end of data; a matching one is queued and delivered to
  smtp-sink;
- policy messages_per_hour 2 on the user's agency: the third MAIL is
  450 4.7.1; allow_external no: RCPT outside the city's domains is 550
  5.7.1 (and yes lets it through).
"""
import base64
import json
import os
import re
import smtplib
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (RelayTestCase, Sink, client_tls_context, parse_json_lines,  # noqa: E402
                     smtplib_queued_id)

PASSWORDS = {
    "alice@sub.test": "Alice-Secret-1",
    "bob@sub.test": "Bob-Secret-2",
    "login@sub.test": "Login-Secret-3",
    "wrong@sub.test": "Wrong-Secret-4",
    "lockout@sub.test": "Lockout-Secret-5",
    "locked@sub.test": "Locked-Secret-6",
    "swaks@sub.test": "Swaks-Secret-7",
    "implicit@sub.test": "Implicit-Secret-8",
    "rate@lim.test": "Rate-Secret-9",
    "local@inside.test": "Inside-Secret-10",
}
MAX_FAILURES = 3


def b64(s):
    return base64.b64encode(s.encode()).decode()


class AuthFailed(Exception):
    def __init__(self, code, msg):
        super().__init__("%d %s" % (code, msg))
        self.code = code
        self.msg = msg.decode(errors="replace") if isinstance(msg, bytes) else msg


class SubmissionTest(RelayTestCase):
    relay_options = {
        "tls": True,
        "listeners": ("mx", "submission", "submissions"),
        "auth_failure_delay": "0s",
        "auth_max_failures": str(MAX_FAILURES),
        # many failures from 127.0.0.1 across the tests: keep the per-address
        # throttle out of the way of the per-user lock-out under test
        "auth_ip_max_failures": "1000",
    }
    with_sink = False
    dead_domain = None
    start_relay = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.sink = Sink(cls.workdir).start()
            route = cls.sink.route
            ctl = cls.relay.ctl_ok
            ctl("tenant", "add", "city", "--name", "City")
            ctl("tenant", "add", "agency", "--name", "Agency", "--parent", "city")
            ctl("tenant", "add", "limited", "--name", "Limited", "--parent", "city")
            ctl("tenant", "add", "inside", "--name", "Inside", "--parent", "city")
            ctl("domain", "add", "sub.test", "--tenant", "agency", "--route", route)
            ctl("domain", "add", "dest.test", "--tenant", "city", "--route", route)
            ctl("domain", "add", "lim.test", "--tenant", "limited", "--route", route)
            ctl("domain", "add", "inside.test", "--tenant", "inside", "--route", route)
            ctl("mailbox", "add", "rcpt@dest.test")
            ctl("mailbox", "add", "rcpt2@dest.test")
            for user, pw in PASSWORDS.items():
                ctl("user", "add", user, input=pw + "\n")
            # alice owns an alias; bob's alias is not hers
            ctl("mailbox", "add", "office@sub.test", "--alias-of", "alice@sub.test")
            ctl("mailbox", "add", "office@sub.test", "--alias-of", "rcpt@dest.test")
            ctl("mailbox", "add", "bobs-desk@sub.test", "--alias-of", "bob@sub.test")
            ctl("policy", "set", "limited", "messages_per_hour", "2")
            ctl("policy", "set", "inside", "allow_external", "no")
            cls.relay.start()
        except BaseException:
            cls._cleanup_class()
            raise

    # ------------------------------------------------------------ helpers

    @property
    def sub_port(self):
        return self.relay.ports["submission"]

    def smtp(self, starttls=True):
        c = smtplib.SMTP("127.0.0.1", self.sub_port, local_hostname="client.test", timeout=15)
        self.addCleanup(self._close, c)
        c.ehlo()
        if starttls:
            code, msg = c.starttls(context=client_tls_context())
            self.assertEqual(code, 220, msg)
            c.ehlo()
        return c

    def smtps(self):
        c = smtplib.SMTP_SSL("127.0.0.1", self.relay.ports["submissions"],
                             local_hostname="client.test", timeout=15,
                             context=client_tls_context())
        self.addCleanup(self._close, c)
        c.ehlo()
        return c

    @staticmethod
    def _close(c):
        try:
            c.close()
        except OSError:
            pass

    def auth(self, c, user, password=None, mech="PLAIN", initial=True):
        """AUTH; returns (code, text) of the final reply, raises AuthFailed."""
        c.user = user
        c.password = PASSWORDS[user] if password is None else password
        obj = {"PLAIN": c.auth_plain, "LOGIN": c.auth_login}[mech]
        try:
            code, msg = c.auth(mech, obj, initial_response_ok=initial)
        except smtplib.SMTPAuthenticationError as e:
            raise AuthFailed(e.smtp_code, e.smtp_error)
        return code, msg.decode(errors="replace")

    def login(self, user, port="submission"):
        c = self.smtp() if port == "submission" else self.smtps()
        code, msg = self.auth(c, user)
        self.assertEqual(code, 235, msg)
        return c

    def auth_code(self, user, password):
        """A fresh session, one AUTH PLAIN: (code, text)."""
        c = self.smtp()
        try:
            return self.auth(c, user, password)
        except AuthFailed as e:
            return e.code, e.msg

    def user_show(self, user):
        r = self.relay.ctl_ok("user", "show", user, "--json")
        return json.loads(r.stdout)

    def message(self, from_hdr, marker):
        return ("From: %s\r\nTo: <rcpt@dest.test>\r\nSubject: %s\r\n\r\n%s body\r\n"
                % (from_hdr, marker, marker)).encode()

    def send_ok(self, c, sender, rcpts, data):
        code, msg = c.mail(sender)
        self.assertEqual(code, 250, msg)
        for r in rcpts:
            code, msg = c.rcpt(r)
            self.assertEqual(code, 250, msg)
        code, msg = c.data(data)
        self.assertEqual(code, 250, msg)
        return smtplib_queued_id((code, msg))

    # ------------------------------------------------------------ AUTH

    def test_auth_plain_over_starttls(self):
        c = self.smtp()
        self.assertTrue(c.has_extn("auth"), "AUTH not offered inside TLS")
        mechs = c.esmtp_features["auth"].upper().split()
        self.assertIn("PLAIN", mechs)
        self.assertIn("LOGIN", mechs)
        code, msg = self.auth(c, "alice@sub.test")
        self.assertEqual(code, 235)
        self.assertTrue(msg.startswith("2.7.0"), msg)
        # AUTH again in the same session is a bad sequence
        code, msg = c.docmd("AUTH", "PLAIN " + b64("\0alice@sub.test\0x"))
        self.assertEqual(code, 503, msg)
        qid = self.send_ok(c, "alice@sub.test", ["rcpt@dest.test"],
                           self.message("Alice <alice@sub.test>", "plain-auth"))
        m = self.sink.find(b"plain-auth body")
        self.assertEqual(m.mail_from, "alice@sub.test")
        self.assertEqual(m.rcpts, ["rcpt@dest.test"])
        self.relay.wait_log(r"%s: to=<rcpt@dest\.test>.*status=sent" % qid)

    def test_auth_login_over_starttls(self):
        for initial in (True, False):
            with self.subTest(initial_response=initial):
                c = self.smtp()
                code, msg = self.auth(c, "login@sub.test", mech="LOGIN", initial=initial)
                self.assertEqual(code, 235, msg)
                code, msg = c.mail("login@sub.test")
                self.assertEqual(code, 250, msg)

    def test_auth_login_user_any_case(self):
        """The user name is an address: its domain and ASCII local part are
        matched without regard to case (govrelayctl(8), stored lowercase)."""
        c = self.smtp()
        code, msg = self.auth(c, "alice@sub.test", mech="PLAIN")
        self.assertEqual(code, 235, msg)
        c2 = self.smtp()
        c2.user, c2.password = "Alice@SUB.test", PASSWORDS["alice@sub.test"]
        code, msg = c2.auth("PLAIN", c2.auth_plain)
        self.assertEqual(code, 235, msg)

    def test_auth_on_submissions(self):
        c = self.smtps()
        self.assertTrue(c.has_extn("auth"), "AUTH not offered on submissions")
        code, msg = self.auth(c, "implicit@sub.test")
        self.assertEqual(code, 235, msg)
        qid = self.send_ok(c, "implicit@sub.test", ["rcpt@dest.test"],
                           self.message("implicit@sub.test", "implicit-tls"))
        self.assertEqual(self.sink.find(b"implicit-tls body").rcpts, ["rcpt@dest.test"])
        self.relay.wait_gone(qid)

    def test_no_auth_before_tls(self):
        c = self.raw(self.sub_port)
        r = c.ehlo()
        self.assertFalse(any(re.match(r"250[- ]AUTH\b", l) for l in r.lines),
                         "AUTH offered before STARTTLS: %r" % r.lines)
        r = c.cmd("AUTH PLAIN " + b64("\0alice@sub.test\0" + PASSWORDS["alice@sub.test"]))
        self.assertTrue((r.code == 538 and r.last.startswith("538 5.7.11")) or
                        (r.code == 530 and r.last.startswith("530 5.7.0")),
                        "AUTH in plaintext: %r" % r.lines)
        r = c.cmd("AUTH LOGIN")
        self.assertIn(r.code, (530, 538), r.lines)
        # and the plaintext session is no more authenticated than before
        self.assertReply(c.cmd("MAIL FROM:<alice@sub.test>"), 530, "530 5.7.0")
        c.expect("STARTTLS", 220)
        c.starttls()
        r = c.ehlo()
        self.assertTrue(any(re.match(r"250[- ]AUTH\b.*PLAIN", l) for l in r.lines),
                        "AUTH not offered after STARTTLS: %r" % r.lines)
        self.assertNotIn(PASSWORDS["alice@sub.test"], self.relay.log(), "a password in the log")

    def test_mail_without_auth(self):
        c = self.smtp()
        code, msg = c.mail("alice@sub.test")
        self.assertEqual(code, 530, msg)
        self.assertTrue(msg.startswith(b"5.7.0"), msg)
        c = self.smtps()
        code, msg = c.mail("alice@sub.test")
        self.assertEqual(code, 530, msg)
        self.assertTrue(msg.startswith(b"5.7.0"), msg)

    def test_wrong_password(self):
        code, msg = self.auth_code("wrong@sub.test", "not-the-password")
        self.assertEqual(code, 535, msg)
        self.assertTrue(msg.startswith("5.7.8"), msg)
        u = self.user_show("wrong@sub.test")
        self.assertEqual(u["failures"], 1, u)
        self.assertIs(u["locked_out"], False, u)
        # unknown users get the same answer
        code, msg = self.auth_code("ghost@sub.test", "whatever")
        self.assertEqual(code, 535, msg)
        self.assertTrue(msg.startswith("5.7.8"), msg)
        # the right one works; the count of consecutive failures restarts
        code, msg = self.auth_code("wrong@sub.test", PASSWORDS["wrong@sub.test"])
        self.assertEqual(code, 235, msg)
        self.assertEqual(self.user_show("wrong@sub.test")["failures"], 0)

    def test_lockout_then_unlock(self):
        user = "lockout@sub.test"
        for i in range(MAX_FAILURES):
            code, msg = self.auth_code(user, "bad-guess-%d" % i)
            self.assertEqual(code, 535, "attempt %d: %s" % (i + 1, msg))
        # locked out: the right password fails too
        code, msg = self.auth_code(user, PASSWORDS[user])
        self.assertEqual(code, 535, msg)
        self.assertTrue(msg.startswith("5.7.8"), msg)
        u = self.user_show(user)
        self.assertIs(u["locked_out"], True, u)
        self.assertEqual(u["state"], "locked-out", u)
        self.assertGreaterEqual(u["failures"], MAX_FAILURES, u)
        listed = self.relay.ctl_ok("user", "list").stdout
        self.assertRegex(listed, r"(?m)^%s +locked-out +\d+" % re.escape(user))

        r = self.relay.ctl_ok("user", "unlock", user)
        self.assertIn(user, r.stdout)
        # at once, in the running daemon, no reload
        code, msg = self.auth_code(user, PASSWORDS[user])
        self.assertEqual(code, 235, msg)
        u = self.user_show(user)
        self.assertIs(u["locked_out"], False, u)
        self.assertEqual(u["state"], "active", u)
        self.assertEqual(u["failures"], 0, u)

        # every attempt is an `auth` audit record, never with the password
        recs = parse_json_lines(self.relay.ctl_ok("audit", "search", "--event", "auth",
                                                  "--json").stdout)
        mine = [r for r in recs if user in json.dumps(r)]
        self.assertGreaterEqual(len(mine), MAX_FAILURES + 2, recs)
        export = self.relay.ctl_ok("audit", "export", "--format", "jsonl").stdout
        for pw in list(PASSWORDS.values()) + ["bad-guess-0", "not-the-password"]:
            self.assertNotIn(pw, export, "a password in the audit trail")
            self.assertNotIn(pw, self.relay.log(), "a password in the log")

    def test_locked_user_refused(self):
        user = "locked@sub.test"
        self.relay.ctl_ok("user", "lock", user)
        code, msg = self.auth_code(user, PASSWORDS[user])
        self.assertEqual(code, 535, msg)
        self.assertTrue(msg.startswith("5.7.8"), msg)
        self.assertEqual(self.user_show(user)["state"], "locked")
        self.relay.ctl_ok("user", "unlock", user)
        code, msg = self.auth_code(user, PASSWORDS[user])
        self.assertEqual(code, 235, msg)

    def test_swaks_auth_over_tls(self):
        harness.require_tools("swaks")
        sup = subprocess.run(["swaks", "--support"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True, timeout=20)
        if "TLS supported" not in sup.stdout:
            self.skipTest("swaks has no TLS support (Perl module Net::SSLeay, Debian "
                          "libnet-ssleay-perl, is not installed)")
        user = "swaks@sub.test"
        for mech in ("PLAIN", "LOGIN"):
            with self.subTest(mech=mech):
                marker = "swaks-auth-%s" % mech.lower()
                r = subprocess.run(
                    ["swaks", "--server", "127.0.0.1", "--port", str(self.sub_port),
                     "--tls", "--auth", mech, "--auth-user", user,
                     "--auth-password", PASSWORDS[user], "--from", user,
                     "--to", "rcpt@dest.test", "--helo", "client.test",
                     "--header", "From: <%s>" % user, "--header", "Subject: " + marker,
                     "--body", marker + " body"],
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                    universal_newlines=True)
                self.assertEqual(r.returncode, 0, r.stdout)
                self.assertRegex(r.stdout, r"=== TLS started with cipher TLSv1\.[23]")
                self.assertRegex(r.stdout, r"<~  235 2\.7\.0")
                m = re.search(r"<~  250 2\.0\.0 Ok: queued as ([0-9A-F]{16})", r.stdout)
                self.assertTrue(m, r.stdout)
                got = self.sink.find((marker + " body").encode())
                self.assertEqual(got.mail_from, user)
                self.assertEqual(got.rcpts, ["rcpt@dest.test"])
        # and a wrong password through swaks
        r = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(self.sub_port), "--tls",
             "--auth", "PLAIN", "--auth-user", user, "--auth-password", "nope",
             "--from", user, "--to", "rcpt@dest.test", "--helo", "client.test"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
            universal_newlines=True)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        self.assertRegex(r.stdout, r"(?m)^<~?\*+ +535 5\.7\.8 ")
        self.assertEqual(self.relay.ctl_ok("user", "unlock", user).returncode, 0)

    # ------------------------------------------------------------ senders

    def test_mail_from_someone_else(self):
        c = self.login("alice@sub.test")
        for other in ("bob@sub.test", "bobs-desk@sub.test", "rcpt@dest.test",
                      "boss@example.org"):
            with self.subTest(sender=other):
                code, msg = c.mail(other)
                self.assertEqual(code, 553, msg)
                self.assertTrue(msg.startswith(b"5.7.1"), msg)
                c.rset()
        code, msg = c.mail("")
        self.assertEqual(code, 553, "the null sender from a user: %r" % msg)

    def test_mail_from_owned_alias(self):
        c = self.login("alice@sub.test")
        qid = self.send_ok(c, "office@sub.test", ["rcpt@dest.test"],
                           self.message("Office <office@sub.test>", "from-alias"))
        m = self.sink.find(b"from-alias body")
        self.assertEqual(m.mail_from, "office@sub.test")
        self.relay.wait_gone(qid)

    def test_from_header_mismatch(self):
        c = self.login("alice@sub.test")
        code, msg = c.mail("alice@sub.test")
        self.assertEqual(code, 250, msg)
        code, msg = c.rcpt("rcpt@dest.test")
        self.assertEqual(code, 250, msg)
        code, msg = c.data(self.message("Bob <bob@sub.test>", "from-mismatch"))
        self.assertEqual(code, 550, msg)
        self.assertTrue(msg.startswith(b"5.7.1"), msg)
        # the session goes on; a From: naming the sender is accepted
        qid = self.send_ok(c, "alice@sub.test", ["rcpt@dest.test", "rcpt2@dest.test"],
                           self.message('"Alice A." <ALICE@sub.test>', "from-matches"))
        m = self.sink.find(b"from-matches body")
        self.assertEqual(m.mail_from, "alice@sub.test")
        self.assertEqual(sorted(r for x in self.sink.messages() if b"from-matches" in x.raw
                                for r in x.rcpts), ["rcpt2@dest.test", "rcpt@dest.test"])
        self.relay.wait_gone(qid)
        self.assertEqual(self.sink.count(b"from-mismatch body"), 0)
        self.assertRegex(self.relay.log(), r"rule=from-header")

    def test_from_header_two_addresses(self):
        c = self.login("alice@sub.test")
        c.mail("alice@sub.test")
        c.rcpt("rcpt@dest.test")
        code, msg = c.data(self.message("alice@sub.test, bob@sub.test", "two-authors"))
        self.assertEqual(code, 550, msg)
        self.assertTrue(msg.startswith(b"5.7.1"), msg)

    # ------------------------------------------------------------ policy

    def test_messages_per_hour(self):
        user = "rate@lim.test"
        c = self.login(user)
        for i in range(2):
            self.send_ok(c, user, ["rcpt@dest.test"], self.message(user, "rate-%d" % i))
        code, msg = c.mail(user)
        self.assertEqual(code, 450, msg)
        self.assertTrue(msg.startswith(b"4.7.1"), msg)
        # a new session does not reset it
        c2 = self.login(user)
        code, msg = c2.mail(user)
        self.assertEqual(code, 450, msg)
        # another agency's user is not affected
        c3 = self.login("bob@sub.test")
        code, msg = c3.mail("bob@sub.test")
        self.assertEqual(code, 250, msg)

    def test_allow_external_no(self):
        user = "local@inside.test"
        c = self.login(user)
        code, msg = c.mail(user)
        self.assertEqual(code, 250, msg)
        code, msg = c.rcpt("someone@external.example")
        self.assertEqual(code, 550, msg)
        self.assertTrue(msg.startswith(b"5.7.1"), msg)
        code, msg = c.rcpt("rcpt@dest.test")       # inside the city: fine
        self.assertEqual(code, 250, msg)
        c.rset()
        # an agency with the default (yes) may send out
        c2 = self.login("bob@sub.test")
        c2.mail("bob@sub.test")
        code, msg = c2.rcpt("someone@external.example")
        self.assertEqual(code, 250, msg)
        c2.rset()


if __name__ == "__main__":
    harness.main()
