"""
e2e: outbound TLS, required vs opportunistic (issue 9).

Three next hops, each a real govrelayd with STARTTLS on loopback, in front
of smtp-sink:
- "good": a certificate from a test CA naming IP 127.0.0.1 (and
  mx.good.test);
- "rogue": a certificate from another CA nobody trusts, naming 127.0.0.1;
- "wrongname": from the test CA, but naming only other.test.
The relay under test trusts the test CA (tls_ca_file). Routes are IP
literals, so the name checked is the IP address (against IP SANs).

- required TLS to "good": delivered, logged as a verified connection;
- required TLS to "rogue" or "wrongname": deferred with 4.7.5 and a reason
  that says the certificate did not verify; nothing reaches the sink;
- opportunistic TLS to "rogue": delivered (unchanged: no verification).
"""
import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Relay, RelayTestCase, queued_id  # noqa: E402


def openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), r.stdout.decode(errors="replace")))


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-days", "2", "-subj", "/CN=%s" % name, "-keyout", "%s.key" % name,
            "-out", "%s.pem" % name,
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    return os.path.join(d, "%s.pem" % name)


def make_leaf(d, name, ca, san):
    with open(os.path.join(d, "%s.ext" % name), "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                "extendedKeyUsage=serverAuth\n" % san)
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-subj", "/CN=%s" % name, "-keyout", "%s.key" % name, "-out", "%s.csr" % name,
            cwd=d)
    openssl("x509", "-req", "-in", "%s.csr" % name, "-CA", "%s.pem" % ca,
            "-CAkey", "%s.key" % ca, "-CAcreateserial", "-days", "2",
            "-extfile", "%s.ext" % name, "-out", "%s.pem" % name, cwd=d)
    return os.path.join(d, "%s.pem" % name), os.path.join(d, "%s.key" % name)


class TlsVerifyTest(RelayTestCase):
    start_relay = False
    hops = {}

    @classmethod
    def setUpClass(cls):
        harness.require_tools("openssl")
        super().setUpClass()
        cls.hops = {}
        try:
            d = os.path.join(cls.workdir, "pki")
            os.makedirs(d)
            ca = make_ca(d, "testca")
            make_ca(d, "rogueca")
            leaves = {
                "good": make_leaf(d, "good", "testca", "IP:127.0.0.1,DNS:mx.good.test"),
                "rogue": make_leaf(d, "rogue", "rogueca", "IP:127.0.0.1,DNS:mx.good.test"),
                "wrongname": make_leaf(d, "wrongname", "testca", "DNS:other.test"),
            }
            for name, (cert, key) in leaves.items():
                hop = Relay(cls.workdir, name="hop-" + name, tls_cert_file=cert,
                            tls_key_file=key)
                for dom in ("good.test", "rogue.test", "wrongname.test", "opp.test"):
                    hop.add_domain(dom, cls.sink.route)
                hop.start()
                cls.hops[name] = hop
            cls.relay.configure(tls_ca_file=ca)
            for dom, hop, required in (("good.test", "good", True),
                                       ("rogue.test", "rogue", True),
                                       ("wrongname.test", "wrongname", True),
                                       ("opp.test", "rogue", False)):
                args = ["domain", "add", dom, "--route",
                        "smtp:127.0.0.1:%d" % cls.hops[hop].port, "--accept-all"]
                if required:
                    args.append("--require-tls")
                cls.relay.ctl_ok(*args)
            cls.relay.start()
        except BaseException:
            cls._stop_hops()
            cls._cleanup_class()
            raise

    @classmethod
    def _stop_hops(cls):
        for hop in cls.hops.values():
            if hop.running():
                hop.kill9()

    @classmethod
    def tearDownClass(cls):
        try:
            for hop in cls.hops.values():
                if hop.running():
                    hop.stop()
        finally:
            cls._stop_hops()
            super().tearDownClass()

    def send(self, rcpt, body):
        c = self.raw()
        r = c.send_message("tv@example.test", [rcpt],
                           b"Subject: tv\r\n\r\n" + body + b"\r\n")
        self.assertReply(r, 250)
        return queued_id(r.last)

    def test_required_trusted_delivered(self):
        qid = self.send("a@good.test", b"verified hop")
        self.sink.find(b"verified hop")
        self.relay.wait_log(r"%s: to=<a@good\.test>.*status=sent" % qid)
        self.relay.wait_log(r"%s: Verified TLS connection established" % qid)

    def test_required_untrusted_deferred(self):
        qid = self.send("a@rogue.test", b"rogue hop required")
        self.relay.wait_log(r"%s: to=<a@rogue\.test>.*dsn=4\.7\.5, status=deferred "
                            r".*did not verify" % qid, timeout=15)
        self.assertEqual(self.sink.count(b"rogue hop required"), 0)
        self.assertIn(qid, self.relay.queue_ids())

    def test_required_wrong_name_deferred(self):
        qid = self.send("a@wrongname.test", b"wrong name required")
        self.relay.wait_log(r"%s: to=<a@wrongname\.test>.*dsn=4\.7\.5, status=deferred "
                            r".*did not verify" % qid, timeout=15)
        self.assertEqual(self.sink.count(b"wrong name required"), 0)

    def test_opportunistic_untrusted_delivered(self):
        qid = self.send("a@opp.test", b"opportunistic rogue")
        self.sink.find(b"opportunistic rogue")
        self.relay.wait_log(r"%s: to=<a@opp\.test>.*status=sent" % qid)
        self.relay.wait_log(r"%s: Untrusted TLS connection established" % qid)


if __name__ == "__main__":
    harness.main()
