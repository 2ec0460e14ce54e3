"""
e2e: DMARC (RFC 7489) and the header rules, with a real unbound on
loopback serving the SPF, DKIM and DMARC records (names under .org: every
query stays in that unbound, `local-zone: "." static`), mail from an
Internet client (127.0.0.2, outside trusted_networks = 127.0.0.1/32) on
the mx listener, `spf`, `dkim_verify` and `dmarc` on. Covered:

- p=reject: refused 550 5.7.1; p=quarantine: accepted (250), kept in the
  quarantine (not in the delivery queue) with rule dmarc and the reason
  "DMARC policy of DOMAIN says quarantine", delivered once `quarantine
  release` lets it go; p=none: delivered, dmarc=fail noted;
- pct=0 with p=quarantine: the policy is not applied (delivered);
- relaxed vs strict alignment: an SPF pass for mail.DOMAIN passes DMARC
  for From: DOMAIN under aspf=r and fails it under aspf=s (refused);
- a message signed by dkimpy (d= the From: domain, key published in the
  same unbound) passes under p=reject although SPF is not aligned;
- a spoofed city From: (one of our domains, which publishes no DMARC
  record) from outside is refused 550 5.7.1;
- the double-From trick and a duplicate Subject: refused 550 5.6.0,
  naming the field;
- our Authentication-Results field parses with python3-authres (generic
  parser) and carries the DMARC result and header.from;
- `govrelayctl dmarc report` shows the messages sent (per From: domain
  and source, with results and disposition), --domain filters, --json,
  and a delegated postmaster sees only their own domains' rows.

The SPF and DKIM checks come from other parts of issue 10: the cases
that need an SPF or a DKIM pass are skipped (saying so) on a build that
does not know the `spf` or `dkim_verify` key.
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RelayTestCase, parse_json_lines, queued_id  # noqa: E402

harness.use_debian_python_packages()

CLIENT = "127.0.0.2"
CITY = "hanoi-city.org"        # one of our domains; publishes no DMARC record
RCPT = "inbox@ours.test"       # the sink's domain


def make_dkim_key(directory):
    """An RSA 2048 key: (PEM private key bytes, base64 DER public key)."""
    key = os.path.join(directory, "dkim.key")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", key], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                         check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    with open(key, "rb") as f:
        return f.read(), base64.b64encode(der).decode()


def key_known(name):
    """Whether this build's configuration knows key (govrelayctl config check)."""
    d = tempfile.mkdtemp(prefix="govrelay-dmarc-probe-")
    conf = os.path.join(d, "govrelay.conf")
    with open(conf, "w") as f:
        f.write("data_dir = %s\nlisten = mx 127.0.0.1:%d\n%s = yes\n"
                % (d, harness.free_port(), name))
    r = subprocess.run([harness.GOVRELAYCTL, "-c", conf, "config", "check"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=30)
    subprocess.run(["rm", "-rf", d])
    return r.returncode == 0


class DmarcTest(RelayTestCase):
    relay_options = {"trusted_networks": "127.0.0.1/32"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls._prepare()
        except BaseException:
            cls._cleanup_class()
            raise

    @classmethod
    def _prepare(cls):
        cls.has_spf = key_known("spf")
        cls.has_dkim = key_known("dkim_verify")
        cls.dkim_key, pub = make_dkim_key(cls.workdir)
        spf_ok = "v=spf1 ip4:%s -all" % CLIENT
        txt = [
            # Envelope domains: SPF passes for the client, none of them aligned
            # with the From: domains below unless named so.
            ("elsewhere.org", spf_ok),
            ("mail.relaxed.org", spf_ok),
            ("mail.strict.org", spf_ok),
            ("_dmarc.reject.org", "v=DMARC1; p=reject"),
            ("_dmarc.quarantine.org", "v=DMARC1; p=quarantine"),
            ("_dmarc.none.org", "v=DMARC1; p=none"),
            ("_dmarc.pct0.org", "v=DMARC1; p=quarantine; pct=0"),
            ("_dmarc.relaxed.org", "v=DMARC1; p=reject; aspf=r"),
            ("_dmarc.strict.org", "v=DMARC1; p=reject; aspf=s"),
            ("_dmarc.signed.org", "v=DMARC1; p=reject; adkim=r; aspf=s"),
            ("sel._domainkey.signed.org", "v=DKIM1; k=rsa; p=" + pub),
        ]
        cls.unbound = harness.Unbound(cls.workdir, [], [], txt=txt).start()
        cls.relay.add_domain(CITY, cls.sink.route)
        cls.relay.stop()
        keys = {"dmarc": "yes", "dns_server": "127.0.0.1:%d" % cls.unbound.port}
        if cls.has_spf:
            keys["spf"] = "yes"
        if cls.has_dkim:
            keys["dkim_verify"] = "yes"
        cls.relay.configure(**keys)
        cls.relay.start()

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "unbound", None) is not None:
            cls.unbound.stop()
        super().tearDownClass()

    def need_spf(self):
        if not self.has_spf:
            self.skipTest("this build has no spf key (SPF check not merged yet)")

    def need_dkim(self):
        if not self.has_dkim:
            self.skipTest("this build has no dkim_verify key (DKIM verify not merged yet)")

    # ------------------------------------------------------------ helpers

    def message(self, from_addr, marker, extra=b""):
        return (("From: Sender <%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
                 "Message-ID: <%s@client.example>\r\n" % (from_addr, RCPT, marker, marker))
                .encode() + extra + ("\r\n%s body\r\n" % marker).encode())

    def send(self, mail_from, data):
        """One message from the Internet client; the final reply."""
        c = harness.RawSMTP(self.relay.ports["mx"], source=CLIENT)
        try:
            c.ehlo("client.example.org")
            return c.send_message(mail_from, [RCPT], data, ehlo=False)
        finally:
            c.close()

    def assertCode(self, reply, code, enh=None, words=()):
        self.assertEqual(reply.code, code, reply.lines)
        text = " ".join(reply.lines)
        if enh is not None:
            self.assertIn(enh, text)
        for w in words:
            self.assertIn(w, text)

    def authres(self, msg):
        """Our Authentication-Results field, parsed by python3-authres."""
        import authres
        ours = []
        for v in msg.headers("Authentication-Results"):
            h = authres.AuthenticationResultsHeader.parse(
                "Authentication-Results: " + v.decode())
            if h.authserv_id.lower() == harness.HOSTNAME.lower():
                ours.append(h)
        self.assertEqual(len(ours), 1, msg.header_block)
        return {r.method: r for r in ours[0].results}

    def prop(self, result, ptype, name):
        for p in result.properties:
            if p.type == ptype and p.name == name:
                return p.value
        return None

    # ------------------------------------------------------------ policies

    def test_reject_policy_refused(self):
        r = self.send("x@elsewhere.org", self.message("a@reject.org", "reject-1"))
        self.assertCode(r, 550, "5.7.1", ["DMARC policy of reject.org"])
        self.assertEqual(self.sink.count(b"reject-1 body"), 0)

    def test_quarantine_kept_then_released(self):
        # Issue 11 moved DMARC quarantine verdicts from a held queue entry
        # to the quarantine: the same facts, asserted where they now live.
        r = self.send("x@elsewhere.org", self.message("a@quarantine.org", "quar-1"))
        self.assertCode(r, 250)
        qid = queued_id(r)
        shown = json.loads(self.relay.ctl_ok("quarantine", "show", qid, "--json").stdout)
        self.assertEqual(shown["rule"], "dmarc", shown)
        self.assertIn("DMARC policy of quarantine.org says quarantine", shown["reason"])
        # Out of the delivery queue altogether.
        self.assertEqual(self.relay.ctl("queue", "show", qid).returncode, 66)
        self.assertNotIn(qid, self.relay.queue_ids())
        # Kept: not delivered, however long we look (the sink is up).
        time.sleep(1.0)
        self.assertEqual(self.sink.count(b"quar-1 body"), 0)
        self.relay.ctl_ok("quarantine", "release", qid)
        msg = self.sink.find(b"quar-1 body")
        dm = self.authres(msg)["dmarc"]
        self.assertEqual(dm.result, "fail")
        self.assertEqual(self.prop(dm, "header", "from"), "quarantine.org")

    def test_none_policy_delivered(self):
        r = self.send("x@elsewhere.org", self.message("a@none.org", "none-1"))
        self.assertCode(r, 250)
        msg = self.sink.find(b"none-1 body")
        dm = self.authres(msg)["dmarc"]
        self.assertEqual(dm.result, "fail")
        self.assertEqual(self.prop(dm, "header", "from"), "none.org")

    def test_pct0_not_applied(self):
        r = self.send("x@elsewhere.org", self.message("a@pct0.org", "pct0-1"))
        self.assertCode(r, 250)
        qid = queued_id(r)
        self.sink.find(b"pct0-1 body")
        self.relay.wait_gone(qid)

    # ----------------------------------------------------------- alignment

    def test_relaxed_alignment_passes(self):
        self.need_spf()
        r = self.send("x@mail.relaxed.org", self.message("a@relaxed.org", "relaxed-1"))
        self.assertCode(r, 250)
        res = self.authres(self.sink.find(b"relaxed-1 body"))
        self.assertEqual(res["spf"].result, "pass")
        self.assertEqual(res["dmarc"].result, "pass")
        self.assertEqual(self.prop(res["dmarc"], "header", "from"), "relaxed.org")

    def test_strict_alignment_fails(self):
        self.need_spf()
        r = self.send("x@mail.strict.org", self.message("a@strict.org", "strict-1"))
        self.assertCode(r, 550, "5.7.1", ["DMARC policy of strict.org"])

    def test_dkim_aligned_passes(self):
        self.need_dkim()
        import dkim
        data = self.message("a@signed.org", "dkim-1")
        sig = dkim.sign(data, b"sel", b"signed.org", self.dkim_key,
                        canonicalize=(b"relaxed", b"relaxed"),
                        include_headers=[b"From", b"To", b"Subject", b"Message-ID"])
        r = self.send("x@elsewhere.org", sig + data)
        self.assertCode(r, 250)
        res = self.authres(self.sink.find(b"dkim-1 body"))
        self.assertEqual(res["dkim"].result, "pass")
        self.assertEqual(res["dmarc"].result, "pass")

    def test_dkim_changed_body_refused(self):
        self.need_dkim()
        import dkim
        data = self.message("a@signed.org", "dkim-2")
        sig = dkim.sign(data, b"sel", b"signed.org", self.dkim_key,
                        include_headers=[b"From", b"To", b"Subject"])
        r = self.send("x@elsewhere.org", sig + data.replace(b"dkim-2 body", b"dkim-2 bodY"))
        self.assertCode(r, 550, "5.7.1", ["DMARC policy of signed.org"])

    # ----------------------------------------------------- our own domains

    def test_spoofed_city_from_refused(self):
        r = self.send("x@elsewhere.org", self.message("mayor@" + CITY, "spoof-1"))
        self.assertCode(r, 550, "5.7.1", [CITY])
        r = self.send("x@elsewhere.org", self.message("mayor@news." + CITY, "spoof-2"))
        self.assertCode(r, 550, "5.7.1")
        self.assertEqual(self.sink.count(b"spoof-1 body"), 0)

    # -------------------------------------------------------- header rules

    def test_double_from_refused(self):
        data = self.message("a@none.org", "double-1", b"From: Mayor <mayor@%s>\r\n"
                            % CITY.encode())
        r = self.send("x@elsewhere.org", data)
        self.assertCode(r, 550, "5.6.0", ["2 From: header fields"])

    def test_duplicate_subject_refused(self):
        r = self.send("x@elsewhere.org",
                      self.message("a@none.org", "dupsubj-1", b"Subject: again\r\n"))
        self.assertCode(r, 550, "5.6.0", ["2 Subject: header fields"])

    def test_duplicate_header_refused_from_trusted_too(self):
        c = harness.RawSMTP(self.relay.ports["mx"])
        try:
            c.ehlo()
            r = c.send_message("s@ours.test", [RCPT],
                               self.message("s@ours.test", "dupto-1", b"To: <b@ours.test>\r\n"),
                               ehlo=False)
        finally:
            c.close()
        self.assertCode(r, 550, "5.6.0", ["2 To: header fields"])

    def test_no_from_refused_from_outside(self):
        r = self.send("x@elsewhere.org", b"Subject: nofrom\r\n\r\nnofrom body\r\n")
        self.assertCode(r, 550, "5.6.0", ["no From:"])

    # -------------------------------------------------------------- report

    def report(self, *args):
        r = self.relay.ctl_ok("dmarc", "report", "--since", "1h", *args)
        return r.stdout

    def test_report_shows_messages(self):
        self.assertCode(self.send("x@elsewhere.org", self.message("b@reject.org", "rep-1")),
                        550)
        self.assertCode(self.send("x@elsewhere.org", self.message("b@reject.org", "rep-2")),
                        550)
        self.assertCode(self.send("x@elsewhere.org", self.message("b@none.org", "rep-3")),
                        250)
        # Refusals reach the audit chain through the writer, just after the reply.
        def counted():
            rows = parse_json_lines(self.report("--json"))
            rej = [x for x in rows if x["header_from"] == "reject.org"]
            non = [x for x in rows if x["header_from"] == "none.org"]
            return rows if sum(x["count"] for x in rej) >= 2 and non else None
        rows = harness.wait_for(counted, 15, what="the report to count the messages sent")
        rej = [x for x in rows if x["header_from"] == "reject.org"]
        self.assertEqual(rej[0]["source"], CLIENT)
        self.assertGreaterEqual(sum(x["count"] for x in rej), 2)
        self.assertTrue(all(x["dmarc"] == "fail" and x["disposition"] == "reject"
                            and x["policy"] == "reject" and x["spf_aligned"] is False
                            for x in rej), rej)
        if self.has_spf:
            self.assertTrue(all(x["spf"] == "pass" and x["spf_domain"] == "elsewhere.org"
                                for x in rej), rej)
        non = [x for x in rows if x["header_from"] == "none.org"]
        self.assertTrue(non and all(x["disposition"] == "none" for x in non), rows)
        only = parse_json_lines(self.report("--domain", "none.org", "--json"))
        self.assertTrue(only)
        self.assertEqual({x["header_from"] for x in only}, {"none.org"})
        text = self.report()
        self.assertIn("FROM DOMAIN", text)
        self.assertRegex(text, r"(?m)^reject\.org +%s +\d+ " % CLIENT.replace(".", r"\."))
        # A time the CLI cannot read: 65.
        r = self.relay.ctl("dmarc", "report", "--since", "yesterday-ish")
        self.assertEqual(r.returncode, 65, r.stderr)

    def test_report_scope_of_delegated_postmaster(self):
        from test_tenancy import run_as, usable_user
        pw, why = usable_user("nobody")
        if pw is None:
            self.skipTest(why)
        self.relay.ctl_ok("tenant", "add", "city", "--name", "City")
        self.relay.ctl_ok("domain", "add", "hue-city.org", "--tenant", "city", "--route",
                          self.sink.route, "--accept-all")
        self.relay.ctl_ok("operator", "add", "nobody", "--tenant", "city", "--role",
                          "postmaster")
        for d in (self.workdir, self.relay.dir):
            os.chmod(d, 0o755)
        os.chmod(self.relay.conf, 0o644)
        self.assertCode(self.send("x@elsewhere.org", self.message("m@hue-city.org", "scope-1")),
                        550, "5.7.1")
        self.assertCode(self.send("x@elsewhere.org", self.message("m@reject.org", "scope-2")),
                        550, "5.7.1")

        def as_postmaster():
            r = run_as(pw, [harness.GOVRELAYCTL, "-c", self.relay.conf, "dmarc", "report",
                            "--since", "1h", "--json"])
            self.assertEqual(r.returncode, 0, r.stderr)
            return parse_json_lines(r.stdout) or None
        # The refusal reaches the audit chain through the writer, just after the reply.
        rows = harness.wait_for(as_postmaster, 15, what="the postmaster's report row")
        self.assertEqual({x["header_from"] for x in rows}, {"hue-city.org"}, rows)
        r = run_as(pw, [harness.GOVRELAYCTL, "-c", self.relay.conf, "dmarc", "report",
                        "--since", "1h", "--domain", "reject.org"])
        self.assertEqual(r.returncode, 77, r.stdout + r.stderr)
        self.assertIn("permission denied", r.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
