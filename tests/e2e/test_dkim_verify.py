"""
e2e: DKIM verification of inbound mail (govrelay.conf(5) dkim_verify),
against an independent signer: every message here is signed by dkimpy
(python3-dkim; ed25519 keys from PyNaCl, RSA keys from openssl genpkey),
its keys published as TXT records in a real unbound on loopback (RSA p=
split into 255-byte strings), and govrelayd verifies it while it relays.

- ed25519-sha256 and rsa-sha256, each with relaxed/relaxed and
  simple/simple canonicalization: dkim=pass;
- one changed body byte, a changed signed header: fail;
- a key that does not exist: permerror; a zone that refuses: temperror;
- l= shorter than the body (text appended after signing): not a pass
  (policy, "l= does not cover the body");
- two signatures, one good and one bad: both reported;
- the same through BDAT in 7-byte chunks;
- results read from the Authentication-Results field of the delivered
  message (parsed with python3-authres) and from the audit record
  (govrelayctl audit search --json: the "auth" notes, one "dkim" per
  signature);
- nothing blocks the event loop: a key lookup that never answers (a DNS
  server that drops every query) and a 20 MB signed message being
  verified leave another session's replies well under a second.
"""
import base64
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RelayTestCase, RawSMTP, queued_id, wait_for  # noqa: E402

harness.use_debian_python_packages()
try:
    import authres  # noqa: E402
    import dkim  # noqa: E402
    import nacl.signing  # noqa: E402
    HAVE_MODULES = True
except ImportError:  # pragma: no cover - reported as a skip
    HAVE_MODULES = False

DOMAIN = b"sender.org"
HEADERS = (b"From: Alice <alice@sender.org>\r\n"
           b"To: bob@ours.test\r\n"
           b"Subject: %s\r\n"
           b"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\n"
           b"Message-ID: <%s@sender.org>\r\n")
BODY = (b"Dear Bob,\r\n\r\nthe  water bill   is attached.\t \r\n"
        b"Alice\r\n\r\n")


def make_keys(workdir):
    """(ed25519 private for dkimpy, its TXT), (RSA PEM, its TXT)."""
    sk = nacl.signing.SigningKey.generate()
    ed_priv = base64.b64encode(bytes(sk))
    ed_txt = "v=DKIM1; k=ed25519; p=%s" % base64.b64encode(bytes(sk.verify_key)).decode()
    pem = os.path.join(workdir, "rsa.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", pem], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    der = subprocess.run(["openssl", "pkey", "-in", pem, "-pubout", "-outform", "DER"],
                         check=True, stdout=subprocess.PIPE).stdout
    with open(pem, "rb") as f:
        rsa_priv = f.read()
    rsa_txt = "v=DKIM1; k=rsa; p=%s" % base64.b64encode(der).decode()
    return (ed_priv, ed_txt), (rsa_priv, rsa_txt)


class BlackholeDNS:
    """A UDP port that reads every query and never answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = 0
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                self.sock.recvfrom(4096)
                self.queries += 1
            except socket.timeout:
                continue
            except OSError:
                return

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.sock.close()


@unittest.skipUnless(HAVE_MODULES, "python3-dkim, python3-nacl or python3-authres missing")
class DkimVerifyTest(RelayTestCase):
    sink_domain = "ours.test"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            (cls.ed_priv, ed_txt), (cls.rsa_priv, rsa_txt) = make_keys(cls.workdir)
            cls.unbound = harness.Unbound(
                cls.workdir, [], [("refusing.org.", "refuse")],
                txt=[("ed._domainkey.sender.org", ed_txt),
                     ("rsa._domainkey.sender.org", rsa_txt)]).start()
            cls.relay.stop()
            cls.relay.configure(dns_server="127.0.0.1:%d" % cls.unbound.port,
                                dkim_verify="yes")
            cls.relay.start()
        except BaseException:
            cls._cleanup_class()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.unbound.stop()
        super().tearDownClass()

    # -- helpers

    n = 0

    def message(self, tag, body=BODY):
        DkimVerifyTest.n += 1
        return HEADERS % (tag.encode(), b"%d" % DkimVerifyTest.n) + b"\r\n" + body

    def sign(self, msg, alg="ed25519", canon=b"relaxed", selector=None, domain=DOMAIN,
             length=False):
        key = self.ed_priv if alg == "ed25519" else self.rsa_priv
        sel = selector or (b"ed" if alg == "ed25519" else b"rsa")
        return dkim.sign(msg, sel, domain, key, canonicalize=(canon, canon),
                         signature_algorithm=b"ed25519-sha256" if alg == "ed25519"
                         else b"rsa-sha256", length=length)

    def send(self, data, port=None):
        c = self.raw(port)
        r = c.send_message("alice@sender.org", ["bob@ours.test"], data)
        return queued_id(r)

    def delivered(self, tag):
        """The delivered message's DKIM results, parsed from our A-R field."""
        m = self.sink.find(("Subject: %s" % tag).encode())
        self.assertIsNotNone(m, "message %s not delivered" % tag)
        fields = m.headers("Authentication-Results")
        ours = [f for f in fields if f.lower().startswith(harness.HOSTNAME.encode())]
        self.assertEqual(len(ours), 1, "want one A-R field of ours: %r" % fields)
        h = authres.AuthenticationResultsHeader.parse(
            "Authentication-Results: " + ours[0].decode())
        out = []
        for r in h.results:
            if r.method != "dkim":
                continue
            props = {p.name: p.value for p in r.properties if p.type == "header"}
            out.append((r.result, props.get("d"), props.get("s"), props.get("a")))
        return out, ours[0].decode()

    def audit_notes(self, qid):
        """The "auth" notes of the message's received record."""
        def received():
            recs = [r for r in self.search_audit(qid) if r.get("event") == "received"]
            return recs[0] if recs else None
        rec = wait_for(received, 10, what="received record of %s" % qid)
        return rec.get("auth", "")

    def search_audit(self, qid):
        import json
        r = self.relay.ctl("audit", "search", "--queue-id", qid, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]

    def check(self, data, tag, want):
        """Sends data; want: [(result, d, s, a)] in signature order."""
        qid = self.send(data)
        got, field = self.delivered(tag)
        self.assertEqual(got, want, "A-R field: %s" % field)
        notes = self.audit_notes(qid)
        for result, d, s, a in want:
            self.assertIn("dkim=d=%s s=%s a=%s %s" % (d, s, a, result), notes)
        return field, notes

    # -- cases

    def test_pass_every_algorithm_and_canonicalization(self):
        for alg in ("ed25519", "rsa"):
            for canon in (b"relaxed", b"simple"):
                with self.subTest(alg=alg, canon=canon):
                    tag = "pass-%s-%s" % (alg, canon.decode())
                    msg = self.message(tag)
                    sel = "ed" if alg == "ed25519" else "rsa"
                    self.check(self.sign(msg, alg, canon) + msg, tag,
                               [("pass", "sender.org", sel, "%s-sha256" % alg)])

    def test_changed_body_byte_fails(self):
        for alg in ("ed25519", "rsa"):
            with self.subTest(alg=alg):
                tag = "bodybyte-%s" % alg
                msg = self.message(tag)
                signed = self.sign(msg, alg) + msg
                signed = signed.replace(b"water bill", b"water bilL")
                sel = "ed" if alg == "ed25519" else "rsa"
                _, notes = self.check(signed, tag,
                                      [("fail", "sender.org", sel, "%s-sha256" % alg)])
                self.assertIn("body hash did not verify", notes)

    def test_changed_signed_header_fails(self):
        tag = "header-changed"
        msg = self.message(tag)
        signed = (self.sign(msg, "rsa", b"simple") + msg).replace(
            b"From: Alice <alice@", b"From: Alicf <alice@")
        self.check(signed, tag, [("fail", "sender.org", "rsa", "rsa-sha256")])

    def test_missing_key_is_permerror(self):
        tag = "no-key"
        msg = self.message(tag)
        _, notes = self.check(self.sign(msg, selector=b"gone") + msg, tag,
                              [("permerror", "sender.org", "gone", "ed25519-sha256")])
        self.assertIn("no key for signature", notes)

    def test_dns_failure_is_temperror(self):
        tag = "dns-refused"
        msg = self.message(tag)
        self.check(self.sign(msg, domain=b"refusing.org") + msg, tag,
                   [("temperror", "refusing.org", "ed", "ed25519-sha256")])

    def test_short_length_tag_is_not_a_pass(self):
        tag = "short-l"
        msg = self.message(tag)
        signed = self.sign(msg, "rsa", length=True) + msg
        self.assertIn(b"l=", signed.split(b"\r\n\r\n")[0].replace(b"\r\n ", b""))
        # The whole body signed with l=: a pass.
        self.check(signed, tag, [("pass", "sender.org", "rsa", "rsa-sha256")])
        tag = "short-l-appended"
        msg = self.message(tag)
        signed = self.sign(msg, "ed25519", length=True) + msg + b"P.S. pay to account 666\r\n"
        _, notes = self.check(signed, tag,
                              [("policy", "sender.org", "ed", "ed25519-sha256")])
        self.assertIn("l= does not cover the body", notes)

    def test_two_signatures_one_good_one_bad(self):
        tag = "two-sigs"
        msg = self.message(tag)
        good = self.sign(msg, "ed25519")
        bad = self.sign(self.message(tag, b"another body\r\n"), "rsa", b"simple")
        self.check(bad + good + msg, tag,
                   [("fail", "sender.org", "rsa", "rsa-sha256"),
                    ("pass", "sender.org", "ed", "ed25519-sha256")])

    def test_pass_through_bdat_pieces(self):
        """BDAT (RFC 3030) in 7-byte chunks: the check sees the same message."""
        tag = "bdat-pieces"
        msg = self.message(tag)
        signed = self.sign(msg, "rsa", b"simple") + msg
        c = self.raw()
        c.ehlo()
        c.expect("MAIL FROM:<alice@sender.org>", 250)
        c.expect("RCPT TO:<bob@ours.test>", 250)
        chunks = [signed[i:i + 7] for i in range(0, len(signed), 7)]
        for chunk in chunks[:-1]:
            c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
            self.assertReply(c.reply(), 250)
        c.send(b"BDAT %d LAST\r\n" % len(chunks[-1]) + chunks[-1])
        qid = queued_id(c.reply())
        got, field = self.delivered(tag)
        self.assertEqual(got, [("pass", "sender.org", "rsa", "rsa-sha256")], field)
        self.assertIn("dkim=d=sender.org s=rsa a=rsa-sha256 pass", self.audit_notes(qid))

    # -- the loop is never blocked

    def reply_times(self, port, stop, out, started):
        """Another session: EHLO, then NOOPs until stop is set; the slowest
        reply time in out."""
        c = RawSMTP(port, timeout=10)
        try:
            c.ehlo()
            started.set()
            worst = 0.0
            n = 0
            # junk_command_limit (100) counts NOOPs: at most 90, a few ms apart.
            while (not stop.is_set() or n < 5) and n < 90:
                t0 = time.monotonic()
                c.expect("NOOP", 250)
                worst = max(worst, time.monotonic() - t0)
                n += 1
                time.sleep(0.005 if n < 60 else 0.1)
            out.append((worst, n))
        finally:
            c.close()

    def test_large_message_does_not_delay_others(self):
        tag = "large"
        line = b"0123456789 the quick  brown fox\t jumps over the lazy dog 0123456789\r\n"
        body = line * (20 * 1024 * 1024 // len(line))
        msg = self.message(tag, body)
        signed = self.sign(msg, "rsa", b"relaxed") + msg
        stop = threading.Event()
        started = threading.Event()
        out = []
        other = threading.Thread(target=self.reply_times,
                                 args=(self.relay.port, stop, out, started))
        other.start()
        started.wait(10)
        try:
            c = self.raw(timeout=120)
            t0 = time.monotonic()
            qid = queued_id(c.send_message("alice@sender.org", ["bob@ours.test"], signed))
            took = time.monotonic() - t0
        finally:
            stop.set()
            other.join(30)
        self.assertTrue(out, "the other session did not finish")
        worst, n = out[0]
        sys.stderr.write("20 MB signed message: %.2f s end to end; another session's "
                         "slowest NOOP reply %.3f s (%d NOOPs)\n" % (took, worst, n))
        self.assertLess(worst, 1.0, "another session waited %.3f s for a NOOP reply while "
                        "a 20 MB message was verified (%d NOOPs, %.1f s)" % (worst, n, took))
        notes = self.audit_notes(qid)
        self.assertIn("dkim=d=sender.org s=rsa a=rsa-sha256 pass", notes)


@unittest.skipUnless(HAVE_MODULES, "python3-dkim, python3-nacl or python3-authres missing")
class DkimKeyNeverAnswersTest(RelayTestCase):
    """dns_server drops every query: the key lookup never answers."""

    sink_domain = "ours.test"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            (cls.ed_priv, _), _ = make_keys(cls.workdir)
            cls.dns = BlackholeDNS()
            cls.relay.stop()
            cls.relay.configure(dns_server="127.0.0.1:%d" % cls.dns.port, dkim_verify="yes")
            cls.relay.start()
        except BaseException:
            cls._cleanup_class()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.dns.close()
        super().tearDownClass()

    def test_other_sessions_answered_meanwhile(self):
        msg = (HEADERS % (b"stuck", b"stuck")) + b"\r\n" + BODY
        signed = dkim.sign(msg, b"ed", DOMAIN, self.ed_priv,
                           signature_algorithm=b"ed25519-sha256") + msg
        stuck = self.raw(timeout=60)
        stuck.ehlo()
        stuck.expect("MAIL FROM:<alice@sender.org>", 250)
        stuck.expect("RCPT TO:<bob@ours.test>", 250)
        stuck.expect("DATA", 354)
        stuck.send(harness.dot_stuff(signed) + b".\r\n")
        wait_for(lambda: self.dns.queries > 0, 10, what="the key query reaching DNS")
        # The stuck session waits for its key; another one is served at once.
        other = self.raw()
        other.ehlo()
        worst = 0.0
        for _ in range(8):
            t0 = time.monotonic()
            other.expect("NOOP", 250)
            worst = max(worst, time.monotonic() - t0)
            time.sleep(0.25)
        t0 = time.monotonic()
        qid = queued_id(other.send_message("carol@sender.org", ["bob@ours.test"],
                                           b"Subject: unsigned\r\n\r\nhello\r\n", ehlo=False))
        worst = max(worst, time.monotonic() - t0)
        sys.stderr.write("key that never answers: another session's slowest reply "
                         "%.3f s\n" % worst)
        self.assertLess(worst, 1.0, "another session waited %.3f s while a key lookup hung"
                        % worst)
        self.assertTrue(qid)
        # The stuck one is answered once the check stops waiting for its key
        # (8 s): accepted, the signature a temperror.
        r = stuck.reply(timeout=30)
        stuck_qid = queued_id(r)
        m = self.sink.find(b"Subject: stuck")
        ar = [f for f in m.headers("Authentication-Results")
              if f.startswith(harness.HOSTNAME.encode())]
        self.assertEqual(len(ar), 1, ar)
        self.assertIn(b"dkim=temperror", ar[0])
        r = self.relay.ctl("audit", "search", "--queue-id", stuck_qid, "--json")
        self.assertIn("key lookup did not finish", r.stdout)

if __name__ == "__main__":
    harness.main()
