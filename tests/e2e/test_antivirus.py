"""
e2e: antivirus through a real clamd (govrelay.conf(5) clamd,
clamd_timeout). clamd is Debian's, started here with a database made from
the EICAR test string by sigtool (harness.Clamd: an MD5 signature of the
whole file and a body signature of its bytes; nothing downloaded), and
govrelayd streams every message to it with INSTREAM:

- EICAR as the plain body, zipped in an attachment (python zipfile),
  base64-encoded as an attachment, behind a duplicate boundary parameter
  (parts under the second value, and under the first), after a garbled
  part, and sent with BDAT: each refused 554 5.7.1 with a reply that does
  not name the virus, nothing queued or delivered, the name in the log
  line (event=virus) and in the audit record (rule antivirus, virus=);
- the same with the MD5 signature alone (probe.hdb): found where clamd
  decodes the part itself (zip, base64, either boundary's parts as clamd
  reads them, after the garbled part); the plain body and the parts
  under the second boundary value are, with that signature alone, not
  found (it matches whole files only), which is why the database also
  has the body signature, as the official one does;
- mail from an authenticated user on the submission listener is scanned;
- a clean message is delivered, its audit record says antivirus=clean;
- a message over clamd's StreamMaxLength: 451 4.7.1 (clamd's "size limit
  exceeded" ERROR), nothing queued;
- clamd stopped: 451 4.7.1 and nothing queued; clamd started again: the
  same message is accepted and delivered;
- the same over clamd's TCP socket;
- a clamd that accepts and never answers (a real socket peer that reads
  and never replies) and one that never even reads: 451 4.7.1 within
  clamd_timeout, while another session's replies stay prompt.

Skipped, saying why, only when clamd or sigtool is not installed.
"""
import base64
import io
import smtplib
import os
import re
import socket
import sys
import threading
import time
import zipfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import EICAR, Clamd, Relay, RelayTestCase, RawSMTP, parse_json_lines  # noqa: E402

SENDER = "alice@sender.org"
RCPT = "bob@ours.test"
HEADERS = ("From: Alice <alice@sender.org>\r\n"
           "To: bob@ours.test\r\n"
           "Subject: %s\r\n"
           "Date: Sat, 05 Dec 2026 10:00:00 +0000\r\n"
           "Message-ID: <%s@sender.org>\r\n")


def b64_lines(data):
    """base64 in 76-character lines with CRLF (RFC 2045 6.8)."""
    text = base64.encodebytes(data).decode()
    return "".join(line + "\r\n" for line in text.splitlines()).encode()


def zipped_eicar():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("invoice.com", EICAR)
    return buf.getvalue()


def multipart(tag, params, boundary, parts, preamble=b""):
    """A multipart/mixed message whose Content-Type has params; parts are
    (header bytes, body bytes) separated by boundary."""
    head = (HEADERS % (tag, tag)).encode() + (
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; %s\r\n\r\n" % params).encode()
    body = preamble
    for h, b in parts:
        body += b"--" + boundary + b"\r\n" + h + b"\r\n" + b
    return head + body + b"--" + boundary + b"--\r\n"


TEXT_PART = (b"Content-Type: text/plain; charset=utf-8\r\n", b"Please find it attached.\r\n")
B64_EICAR = (b"Content-Type: application/octet-stream; name=\"report.com\"\r\n"
             b"Content-Transfer-Encoding: base64\r\n"
             b"Content-Disposition: attachment; filename=\"report.com\"\r\n",
             b64_lines(EICAR))


def infected_messages():
    """(label, tag, message bytes) of every way EICAR travels here."""
    out = []

    def add(label, build):
        tag = "virus-%s" % label
        out.append((label, tag, build(tag)))

    add("plain-body", lambda t: (HEADERS % (t, t)).encode() + b"\r\n" + EICAR + b"\r\n")
    add("zip-attachment", lambda t: multipart(t, 'boundary="z1"', b"z1", [
        TEXT_PART,
        (b"Content-Type: application/zip; name=\"invoices.zip\"\r\n"
         b"Content-Transfer-Encoding: base64\r\n"
         b"Content-Disposition: attachment; filename=\"invoices.zip\"\r\n",
         b64_lines(zipped_eicar()))]))
    add("base64-attachment", lambda t: multipart(t, 'boundary="b1"', b"b1",
                                                 [TEXT_PART, B64_EICAR]))
    # Two boundary parameters: a reader that takes the first sees no part
    # at all when the parts use the second; both ways must be scanned.
    add("duplicate-boundary-second", lambda t: multipart(
        t, 'boundary="first"; boundary="second"', b"second", [TEXT_PART, B64_EICAR]))
    add("duplicate-boundary-first", lambda t: multipart(
        t, 'boundary="first"; boundary="second"', b"first", [TEXT_PART, B64_EICAR]))
    # A part whose header and base64 are broken, then the virus.
    add("after-garbled-part", lambda t: multipart(t, 'boundary="g1"', b"g1", [
        (b"Content-Type: text/plain; charset=\"\r\n"
         b"Content-Transfer-Encoding: base64\r\n",
         b"!!! this is not base64 %%%\r\n====\r\n\x01\x02\r\n"),
        B64_EICAR]))
    return out


class SilentClamd:
    """A real unix-socket peer in place of clamd: it accepts, and then
    either reads everything and never answers (read=True) or never reads
    at all (read=False), so the kernel buffers fill and writes stall."""

    def __init__(self, directory, read=True):
        self.path = os.path.join(directory, "silent-%s.sock" % ("read" if read else "hold"))
        self.read = read
        self.received = 0
        self.conns = []
        self.stopping = False
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        harness.daemon_can_use(directory)
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @property
    def target(self):
        return "unix:%s" % self.path

    def serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            if self.read:
                threading.Thread(target=self.drain, args=(conn,), daemon=True).start()

    def drain(self, conn):
        conn.settimeout(0.2)
        while not self.stopping:
            try:
                data = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            self.received += len(data)

    def close(self):
        self.stopping = True
        self.thread.join(5)
        for c in self.conns:
            c.close()
        self.sock.close()
        os.unlink(self.path)


class AntivirusTest(RelayTestCase):
    sink_domain = "ours.test"
    clamd_timeout = "3s"

    @classmethod
    def setUpClass(cls):
        Clamd.require()
        super().setUpClass()
        try:
            # 1M: the size-limit case needs only a modest message.
            cls.clamd = Clamd(cls.workdir, stream_max="1M").start()
            cls.relay.stop()
            # clamd alone: the content check (MIME ambiguity, attachment
            # names such as eicar.com) would refuse several of these cases
            # first; test_content.py covers the two together.
            cls.relay.configure(clamd=cls.clamd.target, clamd_timeout=cls.clamd_timeout,
                                content_scan="no")
            cls.relay.start()
        except BaseException:
            if getattr(cls, "clamd", None) is not None:
                cls.clamd.stop()
            cls._cleanup_class()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.clamd.stop()
        super().tearDownClass()

    # -- helpers

    def send(self, msg, relay=None, timeout=30):
        c = RawSMTP((relay or self.relay).port, timeout=timeout)
        self.addCleanup(c.close)
        return c.send_message(SENDER, [RCPT], msg)

    def clean_message(self, tag, body=b"Nothing to worry about.\r\n"):
        return (HEADERS % (tag, tag)).encode() + b"\r\n" + body

    def audit(self, *filters):
        return parse_json_lines(self.relay.ctl_ok("audit", "search", *(filters + ("--json",)))
                                .stdout)

    def audit_of(self, event, tag):
        """The audit records of event whose notes or fields mention tag."""
        def find():
            return [r for r in self.audit("--event", event)
                    if tag in r.get("auth", "") or tag in str(r)]
        return harness.wait_for(find, 15, what="a %s audit record with %r" % (event, tag))

    def assertNothingQueued(self, tag, what):
        self.assertQueueEmpty(what)
        self.assertEqual(self.sink.count(tag.encode()), 0, what + ": delivered")

    # -- cases

    def test_clean_message_delivered(self):
        r = self.send(self.clean_message("clean-1"))
        self.assertReply(r, 250, "250 2.0.0", "clean message")
        qid = harness.queued_id(r)
        self.sink.find(b"clean-1")
        recs = harness.wait_for(
            lambda: [x for x in self.audit("--queue-id", qid)
                     if "antivirus=clean" in x.get("auth", "")],
            15, what="the received record of %s with antivirus=clean" % qid)
        self.assertTrue(recs)

    def test_infected_refused(self):
        found = re.compile(r"event=virus, check=antivirus, "
                           r"virus=Probe\.EICAR\.[A-Za-z0-9]+\.UNOFFICIAL")
        for label, tag, msg in infected_messages():
            with self.subTest(label):
                lines = len(found.findall(self.relay.log()))
                recs = len(self.antivirus_rejections())
                r = self.send(msg)
                self.assertReply(r, 554, "554 5.7.1", label)
                self.assertIn("virus", r.last, label)
                # The reply names no signature.
                for word in ("EICAR", "Probe", "UNOFFICIAL"):
                    self.assertNotIn(word, r.text, label)
                self.assertNothingQueued(tag, label)
                # One more log line and one more audit record, each naming it.
                harness.wait_for(lambda: len(found.findall(self.relay.log())) == lines + 1,
                                 10, what="the event=virus log line of " + label)
                rec = harness.wait_for(
                    lambda: self.antivirus_rejections()[recs:], 15,
                    what="the rejected audit record of " + label)
                self.assertEqual(len(rec), 1, rec)
                self.assertEqual(rec[0].get("stage"), "data")
                self.assertRegex(rec[0].get("auth", ""),
                                 r"antivirus=found; virus=Probe\.EICAR\.")

    def antivirus_rejections(self):
        return [x for x in self.audit("--event", "rejected") if x.get("rule") == "antivirus"]

    def test_infected_by_bdat(self):
        msg = infected_messages()[2][2]
        before = len(self.antivirus_rejections())
        c = RawSMTP(self.relay.port)
        self.addCleanup(c.close)
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("RCPT TO:<%s>" % RCPT, 250)
        half = len(msg) // 2
        c.send(b"BDAT %d\r\n" % half + msg[:half])
        self.assertReply(c.reply(), 250, None, "first BDAT chunk")
        c.send(b"BDAT %d LAST\r\n" % (len(msg) - half) + msg[half:])
        self.assertReply(c.reply(), 554, "554 5.7.1", "BDAT LAST")
        self.assertQueueEmpty("virus by BDAT")
        # The refusal is recorded too. The record is written after the reply,
        # so it is waited for here: a later test counting records must not
        # find this one arriving late.
        harness.wait_for(lambda: len(self.antivirus_rejections()) == before + 1, 15,
                         what="the rejected audit record of the BDAT message")

    def test_over_stream_max_length_tempfails(self):
        # 1.5 MB of clean text against StreamMaxLength 1M.
        line = b"This line is harmless filler for a large message body.\r\n"
        msg = self.clean_message("too-long", line * (1536 * 1024 // len(line)))
        r = self.send(msg)
        self.assertReply(r, 451, "451 4.7.1", "message over StreamMaxLength")
        self.assertNothingQueued("too-long", "over StreamMaxLength")
        self.relay.wait_log(r"event=virus_scan_failed, check=antivirus, "
                            r"reason=INSTREAM size limit exceeded")

    def test_clamd_stopped_then_started(self):
        msg = self.clean_message("while-down")
        self.clamd.stop()
        try:
            r = self.send(msg)
            self.assertReply(r, 451, "451 4.7.1", "clamd stopped")
            self.assertNothingQueued("while-down", "clamd stopped")
            self.relay.wait_log(r"event=virus_scan_failed, check=antivirus, "
                                r"reason=cannot connect to clamd at unix:")
            rec = self.audit_of("tempfailed", "antivirus=error")
            self.assertEqual(rec[-1].get("rule"), "antivirus")
        finally:
            self.clamd.start()
        r = self.send(msg)
        self.assertReply(r, 250, "250 2.0.0", "clamd started again")
        self.sink.find(b"while-down")

    def test_tcp_socket(self):
        relay = Relay(self.workdir, content_scan="no", name="relay-tcp", clamd=self.clamd.tcp_target,
                      clamd_timeout="5s")
        relay.add_domain(self.sink_domain, self.sink.route)
        relay.start()
        self.addCleanup(relay.stop)
        r = self.send(infected_messages()[1][2], relay=relay)
        self.assertReply(r, 554, "554 5.7.1", "zip over TCP")
        r = self.send(self.clean_message("over-tcp"), relay=relay)
        self.assertReply(r, 250, "250 2.0.0", "clean over TCP")
        self.sink.find(b"over-tcp")

    def test_submission_scanned(self):
        # Mail from our own users is scanned too (every listener role).
        relay = Relay(self.workdir, content_scan="no", name="relay-sub", tls=True,
                      listeners=("mx", "submission"), clamd=self.clamd.target,
                      auth_failure_delay="0s")
        relay.ctl_ok("tenant", "add", "agency", "--name", "Agency")
        relay.ctl_ok("domain", "add", "sub.test", "--tenant", "agency", "--route",
                     self.sink.route)
        relay.add_domain(self.sink_domain, self.sink.route, tenant="agency")
        relay.ctl_ok("user", "add", "alice@sub.test", input="Alice-Secret-1\n")
        relay.start()
        self.addCleanup(relay.stop)
        c = smtplib.SMTP("127.0.0.1", relay.ports["submission"], local_hostname="client.test",
                         timeout=15)
        self.addCleanup(c.close)
        c.starttls(context=harness.client_tls_context())
        c.login("alice@sub.test", "Alice-Secret-1")
        msg = multipart("sub-virus", 'boundary="s1"', b"s1", [TEXT_PART, B64_EICAR])
        msg = msg.replace(b"alice@sender.org", b"alice@sub.test")
        with self.assertRaises(smtplib.SMTPDataError) as cm:
            c.sendmail("alice@sub.test", [RCPT], msg)
        self.assertEqual(cm.exception.smtp_code, 554)
        self.assertTrue(cm.exception.smtp_error.startswith(b"5.7.1"), cm.exception.smtp_error)
        self.assertIn(b"virus", cm.exception.smtp_error)
        c.sendmail("alice@sub.test", [RCPT], self.clean_message("sub-clean").replace(
            b"alice@sender.org", b"alice@sub.test"))
        self.sink.find(b"sub-clean")
        self.assertEqual(relay.queue_ids(), [])

    def test_md5_signature_alone(self):
        # The MD5 signature matches only a whole decoded file: clamd finds
        # it only where it took the part apart itself (base64, zip).
        clamd = Clamd(self.workdir, name="clamd-md5", body_signature=False).start()
        self.addCleanup(clamd.stop)
        relay = Relay(self.workdir, content_scan="no", name="relay-md5", clamd=clamd.target)
        relay.add_domain(self.sink_domain, self.sink.route)
        relay.start()
        self.addCleanup(relay.stop)
        decoded = ("zip-attachment", "base64-attachment", "duplicate-boundary-first",
                   "after-garbled-part")
        for label, tag, msg in infected_messages():
            if label not in decoded:
                continue
            with self.subTest(label):
                r = self.send(msg, relay=relay)
                self.assertReply(r, 554, "554 5.7.1", label + " (MD5 signature alone)")
        relay.wait_log(r"virus=Probe\.EICAR\.MD5\.UNOFFICIAL")

    def silent_case(self, read, size):
        peer = SilentClamd(self.workdir, read=read)
        self.addCleanup(peer.close)
        relay = Relay(self.workdir, content_scan="no", name="relay-silent-%d" % int(read), clamd=peer.target,
                      clamd_timeout="2s")
        relay.add_domain(self.sink_domain, self.sink.route)
        relay.start()
        self.addCleanup(relay.stop)
        tag = "silent-%d" % int(read)
        body = (b"z" * 70 + b"\r\n") * (size // 72)
        msg = self.clean_message(tag, body)
        c = RawSMTP(relay.port, timeout=30)
        self.addCleanup(c.close)
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("RCPT TO:<%s>" % RCPT, 250)
        c.expect("DATA", 354)
        out = {}

        def finish():
            t0 = time.monotonic()
            out["reply"] = c.cmd(harness.dot_stuff(msg) + b".")
            out["elapsed"] = time.monotonic() - t0
        t = threading.Thread(target=finish)
        t.start()
        # Meanwhile another session is served at once.
        harness.wait_for(lambda: peer.conns, 10, what="govrelayd connecting to the peer")
        other = RawSMTP(relay.port, timeout=5)
        self.addCleanup(other.close)
        t0 = time.monotonic()
        other.ehlo()
        other.expect("NOOP", 250)
        self.assertLess(time.monotonic() - t0, 1.0, "another session waited")
        t.join(30)
        self.assertFalse(t.is_alive(), "no reply to the end of data")
        self.assertReply(out["reply"], 451, "451 4.7.1", "clamd that never answers")
        # clamd_timeout is 2s: the answer comes after it, and not long after.
        self.assertGreater(out["elapsed"], 1.5)
        self.assertLess(out["elapsed"], 10.0)
        self.assertEqual(relay.queue_ids(), [])
        sys.stderr.write("%s: 451 after %.2fs\n" % (tag, out["elapsed"]))
        relay.wait_log(r"event=virus_scan_failed, check=antivirus, reason=.*(no answer from "
                       r"clamd|took no data)")
        return peer

    def shutdown_case(self, clamd_timeout, grace_expected):
        """SIGTERM while the DATA stage waits on a clamd that never answers.
        Shutdown lets a session whose message is being decided finish (up
        to its 30 s grace): within clamd_timeout the client gets its 451;
        past the grace the daemon closes everything left. Either way it
        exits 0, nothing is queued and the client never gets 250."""
        peer = SilentClamd(self.workdir, read=True)
        self.addCleanup(peer.close)
        relay = Relay(self.workdir, content_scan="no", name="relay-term-%s" % clamd_timeout, clamd=peer.target,
                      clamd_timeout=clamd_timeout)
        relay.add_domain(self.sink_domain, self.sink.route)
        relay.start()
        self.addCleanup(relay.stop)
        c = RawSMTP(relay.port, timeout=60)
        self.addCleanup(c.close)
        c.ehlo()
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("RCPT TO:<%s>" % RCPT, 250)
        c.expect("DATA", 354)
        c.send(harness.dot_stuff(self.clean_message("at-shutdown")) + b".\r\n")
        harness.wait_for(lambda: peer.received > 0, 10, what="the message reaching the peer")
        t0 = time.monotonic()
        relay.stop(timeout=60)      # asserts exit status 0
        elapsed = time.monotonic() - t0
        if grace_expected:
            self.assertGreater(elapsed, 25, "the shutdown grace")
            self.assertIn("sessions still open after grace period", relay.log())
        else:
            self.assertLess(elapsed, 15)
        try:
            r = c.reply(timeout=5)
            self.assertNotEqual(r.code, 250, r)
            if not grace_expected:
                self.assertReply(r, 451, "451 4.7.1", "the answer before shutdown")
        except (harness.Closed, OSError):
            self.assertTrue(grace_expected, "no reply before the shutdown")
        relay.start()
        self.assertEqual(relay.queue_ids(), [])

    def test_shutdown_while_scanning(self):
        self.shutdown_case("3s", grace_expected=False)

    def test_shutdown_past_grace_while_scanning(self):
        # The scan outlives the grace: the daemon's teardown closes it.
        self.shutdown_case("60s", grace_expected=True)

    def test_clamd_never_answers(self):
        peer = self.silent_case(read=True, size=20000)
        self.assertGreater(peer.received, 20000)

    def test_clamd_never_reads(self):
        # More than the socket buffers hold: the writes themselves stall.
        self.silent_case(read=False, size=4 * 1024 * 1024)


if __name__ == "__main__":
    harness.main()
