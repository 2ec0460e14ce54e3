"""
e2e: DKIM keys (`govrelayctl dkim keygen|dns|list|retire`) and the signing
of the mail we send (the dkim_sign check), proven against two independent
verifiers:

- dkimpy (python3-dkim), reading the public keys from a real unbound on
  loopback that serves exactly the records `dkim dns` printed;
- opendkim-testmsg (opendkim-tools), which only does real DNS through
  /etc/resolv.conf: it runs in a network and mount namespace of its own
  (unshare -mn) with an unbound on that namespace's 127.0.0.1:53 and a
  resolv.conf bind-mounted over the system's, so nothing leaves loopback.

Covered: an ed25519-sha256 and an rsa-sha256 signature on one message
(relaxed/relaxed, From and Subject oversigned) both verify in both, on
mail from a trusted agency server over mx and on mail a user submits
over submission (STARTTLS) and submissions; one
changed body byte fails in both; rotation (keygen s2 waits while s1 is
active, retire s1 hands over to s2; retire without a successor keeps s1
signing, the next keygen retires it); `dkim dns` splits an RSA record into
strings of at most 255 bytes; key files are 0600 in 0700 folders, owned
by the daemon's user, and the private key appears in no output, log or
audit record; mail from an untrusted mx client is not signed; a
delegated postmaster (a real unprivileged user, over the control socket)
manages the keys of their own domains only, and every change is audited
with the operator's name.
"""
import base64
import os
import re
import shutil
import smtplib
import stat
import subprocess
import sys
import textwrap
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RelayTestCase, Sink, parse_json_lines  # noqa: E402
from test_tenancy import EX_NOPERM, run_as, usable_user  # noqa: E402

harness.use_debian_python_packages()
try:
    import dkim  # noqa: E402
    import dns.resolver  # noqa: E402
except ImportError:  # pragma: no cover - install-deps.sh --test installs them
    dkim = None

OPENDKIM_TESTMSG = "/usr/sbin/opendkim-testmsg"


def dns_records(text):
    """`dkim dns` output -> [(name without the final dot, joined text)],
    checking the zone-file syntax and the 255-byte string limit."""
    out = []
    for line in text.splitlines():
        m = re.match(r'^(\S+)\. IN TXT((?: "[^"]*")+)$', line)
        if m is None:
            raise AssertionError("not a TXT record line: %r" % line)
        parts = re.findall(r'"([^"]*)"', m.group(2))
        for p in parts:
            if len(p.encode()) > 255:
                raise AssertionError("string of %d bytes in %r" % (len(p), line))
        out.append((m.group(1), "".join(parts)))
    return out


def sig_fields(msg):
    """The DKIM-Signature fields of a CRLF message, unfolded, as tag dicts."""
    head = msg.split(b"\r\n\r\n", 1)[0]
    fields, cur = [], None
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and cur is not None:
            cur += line
            continue
        if cur is not None:
            fields.append(cur)
        cur = line
    if cur is not None:
        fields.append(cur)
    out = []
    for f in fields:
        if f.lower().startswith(b"dkim-signature:"):
            v = re.sub(rb"\s+", b"", f.split(b":", 1)[1]).decode()
            out.append(dict(t.split("=", 1) for t in v.split(";") if t))
    return out


def only_signature(msg, selector):
    """msg with every DKIM-Signature field but the one of selector removed."""
    head, body = msg.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    out, i = [], 0
    while i < len(lines):
        j = i + 1
        while j < len(lines) and lines[j][:1] in (b" ", b"\t"):
            j += 1
        block = lines[i:j]
        joined = re.sub(rb"\s+", b"", b"".join(block))
        if not (joined.lower().startswith(b"dkim-signature:") and
                (b";s=%s;" % selector.encode()) not in joined + b";"):
            out += block
        i = j
    return b"\r\n".join(out) + b"\r\n\r\n" + body


def dkimpy_verify(msg, unbound):
    """dkimpy over every signature, keys from unbound: [bool]."""
    res = dns.resolver.Resolver(configure=False)
    res.nameservers = ["127.0.0.1"]
    res.port = unbound.port

    def dnsfunc(name, timeout=5):
        if isinstance(name, bytes):
            name = name.decode()
        try:
            ans = res.resolve(name, "TXT", lifetime=timeout)
        except Exception:
            return None
        return b"".join(b"".join(r.strings) for r in ans)
    out = []
    for i in range(len(sig_fields(msg))):
        try:
            out.append(dkim.DKIM(msg).verify(idx=i, dnsfunc=dnsfunc))
        except dkim.ValidationError:
            # dkimpy raises for a body hash mismatch instead of saying False
            out.append(False)
    return out


class DkimSignTest(RelayTestCase):
    relay_options = {"trusted_networks": "127.0.0.1/32"}
    with_sink = False
    dead_domain = None
    start_relay = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.sink = Sink(cls.workdir).start()
            ctl = cls.relay.ctl_ok
            ctl("tenant", "add", "city", "--name", "City")
            ctl("tenant", "add", "agency", "--name", "Agency", "--parent", "city")
            ctl("tenant", "add", "other", "--name", "Other", "--parent", "city")
            for d, t in (("dest.org", "city"), ("sign.org", "agency"), ("rot.org", "agency"),
                         ("keep.org", "agency"), ("none.org", "agency"),
                         ("other.org", "other"), ("deleg.org", "agency")):
                ctl("domain", "add", d, "--tenant", t, "--route", cls.sink.route,
                    "--accept-all")
            ctl("dkim", "keygen", "sign.org", "--selector", "ed1", "--algorithm", "ed25519")
            ctl("dkim", "keygen", "sign.org", "--selector", "rsa1", "--algorithm", "rsa")
            cls.relay.start()
        except BaseException:
            cls._cleanup_class()
            raise

    def setUp(self):
        if dkim is None:
            self.skipTest("python3-dkim / python3-dnspython missing")

    # ------------------------------------------------------------ helpers

    def ctl(self, *args, **kw):
        return self.relay.ctl_ok(*args, **kw)

    def send(self, from_domain, marker, body=None, source=None, port=None):
        """One message From: clerk@from_domain to rcpt@dest.org over mx
        (from 127.0.0.1, a trusted agency server, unless source says);
        the delivered message with CRLF line ends."""
        body = body or ("Body line one of %s.\r\n\r\n  indented line   \r\n"
                        "last line\r\n" % marker)
        msg = ("From: Clerk <clerk@%s>\r\nTo: rcpt@dest.org\r\nSubject: %s\r\n"
               "Date: Fri, 04 Dec 2026 10:00:00 +0700\r\nMessage-ID: <%s@%s>\r\n"
               "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
               "X-Unsigned: folded\r\n  continuation\r\n\r\n%s"
               % (from_domain, marker, marker, from_domain, body))
        c = harness.RawSMTP(port or self.relay.ports["mx"], source=source)
        try:
            c.ehlo()
            c.expect("MAIL FROM:<clerk@%s>" % from_domain, 250)
            c.expect("RCPT TO:<rcpt@dest.org>", 250)
            c.expect("DATA", 354)
            c.send(harness.dot_stuff(msg.encode()))
            reply = c.cmd(b".")
            self.assertEqual(reply.code, 250, reply)
        finally:
            c.close()
        got = self.sink.find(marker.encode())
        return got.message.replace(b"\n", b"\r\n")

    def records(self, domain):
        return dns_records(self.ctl("dkim", "dns", domain).stdout)

    def unbound(self, recs):
        u = harness.Unbound(self.workdir, [], txt=recs).start()
        self.addCleanup(u.stop)
        return u

    def dkimpy_verify(self, msg, unbound):
        return dkimpy_verify(msg, unbound)

    def opendkim_verify(self, msg, recs):
        """opendkim-testmsg on msg, with recs served by an unbound on
        127.0.0.1:53 of a private network namespace: (rc, stderr)."""
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            self.skipTest("opendkim-testmsg needs root and unshare for a private resolver")
        if not os.access(OPENDKIM_TESTMSG, os.X_OK):
            self.skipTest("opendkim-tools missing")
        d = os.path.join(self.workdir, "odk%d" % time.monotonic_ns())
        os.makedirs(d)
        u = harness.Unbound(d, [], txt=recs)   # config only; started below
        with open(u.conf) as f:
            conf = f.read().replace("port: %d" % u.port, "port: 53")
        with open(u.conf, "w") as f:
            f.write(conf)
        with open(os.path.join(d, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\noptions attempts:2 timeout:2\n")
        with open(os.path.join(d, "msg.eml"), "wb") as f:
            f.write(msg)
        script = textwrap.dedent("""\
            set -e
            ip link set lo up
            mount --bind "$D/resolv.conf" /etc/resolv.conf
            %s -d -c "$D/unbound/unbound.conf" >"$D/unbound.log" 2>&1 &
            U=$!
            n=0
            until python3 -c "$PROBE" 53 2>/dev/null; do
                n=$((n+1)); [ $n -lt 200 ] || { echo "unbound not up" >&2; exit 99; }
                sleep 0.05
            done
            set +e
            %s <"$D/msg.eml"
            rc=$?
            kill $U
            exit $rc
            """) % (harness.UNBOUND, OPENDKIM_TESTMSG)
        env = dict(os.environ, D=d, PROBE=harness._DNS_PROBE)
        r = subprocess.run(["unshare", "-mn", "sh", "-c", script], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        if b"cannot change root filesystem propagation" in r.stderr:
            # In a chroot (/ is not a mount point) unshare cannot make the
            # new mount namespace private, and a bind mount made without
            # that could show in the host's namespace: no private resolver,
            # so opendkim-testmsg is not run (dkimpy still is).
            self.skipTest("opendkim-testmsg needs a private mount namespace, which "
                          "unshare cannot make here (/ is not a mount point)")
        if r.returncode == 99:
            raise AssertionError("unbound did not start in the namespace: %s"
                                 % open(os.path.join(d, "unbound.log")).read())
        return r.returncode, (r.stdout + r.stderr).decode(errors="replace")

    # -------------------------------------------------------------- tests

    def test_both_signatures_verify_in_dkimpy_and_opendkim(self):
        recs = self.records("sign.org")
        self.assertEqual(sorted(n for n, _ in recs),
                         ["ed1._domainkey.sign.org", "rsa1._domainkey.sign.org"])
        msg = self.send("sign.org", "both-algs-1")
        sigs = sig_fields(msg)
        self.assertEqual(sorted(s["a"] for s in sigs), ["ed25519-sha256", "rsa-sha256"])
        for s in sigs:
            self.assertEqual(s["d"], "sign.org")
            self.assertEqual(s["c"], "relaxed/relaxed")
            h = s["h"].lower().split(":")
            # oversigned: one more From and Subject than the message has
            self.assertEqual(h.count("from"), 2, s["h"])
            self.assertEqual(h.count("subject"), 2, s["h"])
            for name in ("to", "date", "message-id", "mime-version", "content-type"):
                self.assertIn(name, h)
            self.assertNotIn("x-unsigned", h)
            self.assertNotIn("received", h)
        self.assertEqual(self.dkimpy_verify(msg, self.unbound(recs)), [True, True])
        for sel in ("ed1", "rsa1"):
            one = only_signature(msg, sel)
            self.assertEqual(len(sig_fields(one)), 1)
            rc, out = self.opendkim_verify(one, recs)
            self.assertEqual(rc, 0, "opendkim-testmsg on the %s signature: %s" % (sel, out))

    def test_changed_body_byte_fails_in_both(self):
        recs = self.records("sign.org")
        msg = self.send("sign.org", "tamper-body-2")
        i = msg.index(b"Body line one")
        bad = msg[:i] + b"X" + msg[i + 1:]
        self.assertEqual(self.dkimpy_verify(bad, self.unbound(recs)), [False, False])
        for sel in ("ed1", "rsa1"):
            rc, out = self.opendkim_verify(only_signature(bad, sel), recs)
            self.assertNotEqual(rc, 0, "opendkim-testmsg accepted a changed body (%s)" % sel)
            self.assertIn("bad signature", out.lower(), out)
        # the unchanged message still passes: the failure is the byte
        rc, out = self.opendkim_verify(only_signature(msg, "ed1"), recs)
        self.assertEqual(rc, 0, out)

    def test_rotation_never_leaves_a_gap(self):
        self.ctl("dkim", "keygen", "rot.org", "--selector", "s1", "--algorithm", "ed25519")
        self.assertEqual([s["s"] for s in sig_fields(self.send("rot.org", "rot-a"))], ["s1"])
        # a newer key waits (its DNS record is not published yet)
        self.ctl("dkim", "keygen", "rot.org", "--selector", "s2", "--algorithm", "ed25519")
        self.assertEqual([s["s"] for s in sig_fields(self.send("rot.org", "rot-b"))], ["s1"])
        lst = {k["selector"]: k for k in parse_json_lines(
            self.ctl("dkim", "list", "--domain", "rot.org", "--json").stdout)}
        self.assertEqual((lst["s1"]["state"], lst["s1"]["signing"]), ("active", True))
        self.assertEqual((lst["s2"]["state"], lst["s2"]["signing"]), ("active", False))
        r = self.ctl("dkim", "retire", "rot.org", "s1")
        self.assertIn("retired", r.stdout)
        msg = self.send("rot.org", "rot-c")
        self.assertEqual([s["s"] for s in sig_fields(msg)], ["s2"])
        recs = self.records("rot.org")
        self.assertEqual([n for n, _ in recs], ["s2._domainkey.rot.org"])
        self.assertEqual(self.dkimpy_verify(msg, self.unbound(recs)), [True])

    def test_retire_without_successor_keeps_signing(self):
        self.ctl("dkim", "keygen", "keep.org", "--selector", "old", "--algorithm", "rsa")
        r = self.ctl("dkim", "retire", "keep.org", "old")
        self.assertIn("retiring", r.stdout)
        lst = parse_json_lines(self.ctl("dkim", "list", "--domain", "keep.org",
                                        "--json").stdout)
        self.assertEqual([(k["state"], k["signing"]) for k in lst], [("retiring", True)])
        msg = self.send("keep.org", "keep-a")
        self.assertEqual([(s["s"], s["a"]) for s in sig_fields(msg)], [("old", "rsa-sha256")])
        self.assertEqual(self.dkimpy_verify(msg, self.unbound(self.records("keep.org"))),
                         [True])
        # the successor ends the retirement: old is retired, new signs
        r = self.ctl("dkim", "keygen", "keep.org", "--selector", "new", "--algorithm", "rsa")
        self.assertIn("retired old", r.stdout)
        self.assertEqual([s["s"] for s in sig_fields(self.send("keep.org", "keep-b"))],
                         ["new"])

    def test_domain_removed_retires_its_keys(self):
        # added again later (by another agency, perhaps), the domain must not
        # sign with the keys made for its former owner
        self.ctl("domain", "add", "gone.org", "--tenant", "agency", "--route",
                 self.sink.route, "--accept-all")
        self.ctl("dkim", "keygen", "gone.org", "--selector", "g1", "--algorithm", "ed25519")
        self.assertEqual([s["s"] for s in sig_fields(self.send("gone.org", "gone-a"))], ["g1"])
        self.ctl("domain", "remove", "gone.org")
        lst = [k for k in parse_json_lines(self.ctl("dkim", "list", "--json").stdout)
               if k["domain"] == "gone.org"]
        self.assertEqual([(k["selector"], k["state"], k["signing"]) for k in lst],
                         [("g1", "retired", False)])
        recs = parse_json_lines(self.ctl("audit", "search", "--event", "admin",
                                         "--json").stdout)
        rm = [r for r in recs if r.get("action") == "domain.remove"
              and r.get("object") == "gone.org"]
        self.assertEqual([r.get("dkim_retired") for r in rm], ["g1"], rm)
        self.ctl("domain", "add", "gone.org", "--tenant", "other", "--route",
                 self.sink.route, "--accept-all")
        self.assertEqual(sig_fields(self.send("gone.org", "gone-b")), [])

    def test_dns_records_and_key_files(self):
        recs = self.records("sign.org")
        by = dict(recs)
        ed = by["ed1._domainkey.sign.org"]
        self.assertTrue(ed.startswith("v=DKIM1; k=ed25519; p="), ed)
        self.assertEqual(len(base64.b64decode(ed.split("p=")[1])), 32)  # raw key, RFC 8463
        rsa = by["rsa1._domainkey.sign.org"]
        self.assertTrue(rsa.startswith("v=DKIM1; k=rsa; p="), rsa)
        line = [l for l in self.ctl("dkim", "dns", "sign.org").stdout.splitlines()
                if l.startswith("rsa1.")][0]
        self.assertGreaterEqual(line.count('" "'), 1, "an RSA-2048 record needs two strings")
        daemon_uid = os.stat(self.relay.data_dir).st_uid
        top = os.path.join(self.relay.data_dir, "dkim")
        for path in (top, os.path.join(top, "sign.org")):
            st = os.lstat(path)
            self.assertTrue(stat.S_ISDIR(st.st_mode))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o700, path)
            self.assertEqual(st.st_uid, daemon_uid, path)
        pems = {}
        for sel in ("ed1", "rsa1"):
            path = os.path.join(top, "sign.org", sel + ".pem")
            st = os.lstat(path)
            self.assertTrue(stat.S_ISREG(st.st_mode))
            self.assertEqual(stat.S_IMODE(st.st_mode), 0o600, path)
            self.assertEqual(st.st_uid, daemon_uid, path)
            with open(path) as f:
                pems[sel] = f.read()
            self.assertIn("-----BEGIN PRIVATE KEY-----", pems[sel])
        self.assertEqual([f for f in os.listdir(os.path.join(top, "sign.org"))
                          if f.endswith(".tmp")], [])
        # the private key is in no output, log or audit record
        seen = (self.ctl("dkim", "list").stdout + self.ctl("dkim", "dns", "sign.org").stdout +
                self.ctl("audit", "search").stdout + self.relay.log())
        for pem in pems.values():
            body = "".join(pem.strip().splitlines()[1:-1])
            self.assertNotIn(body[:40], seen)
            self.assertNotIn("PRIVATE KEY", seen)

    def test_keygen_refusals(self):
        r = self.relay.ctl("dkim", "keygen", "nowhere.org", "--selector", "a")
        self.assertEqual(r.returncode, 66, r.stderr)
        r = self.relay.ctl("dkim", "keygen", "sign.org", "--selector", "ed1")
        self.assertEqual(r.returncode, 73, r.stderr)
        for bad in ("../x", "a.b", "UP", "-a", "a" * 64, ""):
            r = self.relay.ctl("dkim", "keygen", "none.org", "--selector", bad)
            self.assertEqual(r.returncode, 65, (bad, r.stderr))
        r = self.relay.ctl("dkim", "keygen", "none.org", "--selector", "a", "--algorithm", "dsa")
        self.assertEqual(r.returncode, 65, r.stderr)
        r = self.relay.ctl("dkim", "dns", "none.org")
        self.assertEqual(r.returncode, 66, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.relay.data_dir, "dkim", "none.org",
                                                     "a.pem")))

    def test_domain_without_keys_and_untrusted_client_unsigned(self):
        self.assertEqual(sig_fields(self.send("none.org", "nokeys-1")), [])
        # 127.0.0.2 is outside trusted_networks: mail from the Internet is
        # never signed with our keys, whatever its From: says
        msg = self.send("sign.org", "untrusted-1", source="127.0.0.2")
        self.assertEqual(sig_fields(msg), [])

    def test_every_change_is_audited(self):
        self.ctl("dkim", "keygen", "other.org", "--selector", "aud", "--algorithm", "ed25519")
        self.ctl("dkim", "retire", "other.org", "aud")
        recs = parse_json_lines(self.ctl("audit", "search", "--event", "admin",
                                         "--json").stdout)
        acts = [(r.get("action"), r.get("object"), r.get("selector")) for r in recs]
        self.assertIn(("dkim.keygen", "other.org", "aud"), acts)
        self.assertIn(("dkim.retire", "other.org", "aud"), acts)
        for r in recs:
            if r.get("action", "").startswith("dkim."):
                self.assertTrue(r.get("by"), r)


class DkimSubmissionTest(RelayTestCase):
    """A user submits over submission (STARTTLS + AUTH) and submissions
    (implicit TLS): both leave signed with their domain's keys."""
    relay_options = {"tls": True, "listeners": ("mx", "submission", "submissions"),
                     "auth_failure_delay": "0s"}
    with_sink = False
    dead_domain = None
    start_relay = False
    password = "Clerk-Secret-1"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.sink = Sink(cls.workdir).start()
            ctl = cls.relay.ctl_ok
            ctl("tenant", "add", "city", "--name", "City")
            ctl("domain", "add", "sub.org", "--tenant", "city", "--route", cls.sink.route)
            ctl("domain", "add", "dest.org", "--tenant", "city", "--route", cls.sink.route,
                "--accept-all")
            ctl("user", "add", "clerk@sub.org", input=cls.password + "\n")
            ctl("dkim", "keygen", "sub.org", "--selector", "ed", "--algorithm", "ed25519")
            ctl("dkim", "keygen", "sub.org", "--selector", "rs", "--algorithm", "rsa")
            cls.relay.start()
        except BaseException:
            cls._cleanup_class()
            raise

    def setUp(self):
        if dkim is None:
            self.skipTest("python3-dkim / python3-dnspython missing")

    def submit(self, implicit, marker):
        if implicit:
            c = smtplib.SMTP_SSL("127.0.0.1", self.relay.ports["submissions"],
                                 local_hostname="client.test", timeout=15,
                                 context=harness.client_tls_context())
        else:
            c = smtplib.SMTP("127.0.0.1", self.relay.ports["submission"],
                             local_hostname="client.test", timeout=15)
            c.ehlo()
            c.starttls(context=harness.client_tls_context())
        try:
            c.ehlo()
            c.login("clerk@sub.org", self.password)
            msg = ("From: Clerk <clerk@sub.org>\r\nTo: rcpt@dest.org\r\nSubject: %s\r\n"
                   "Message-ID: <%s@sub.org>\r\n\r\n%s body\r\n" % (marker, marker, marker))
            c.sendmail("clerk@sub.org", ["rcpt@dest.org"], msg.encode())
        finally:
            c.quit()
        return self.sink.find(marker.encode()).message.replace(b"\n", b"\r\n")

    def test_submitted_mail_is_signed(self):
        recs = dns_records(self.relay.ctl_ok("dkim", "dns", "sub.org").stdout)
        u = harness.Unbound(self.workdir, [], txt=recs).start()
        self.addCleanup(u.stop)
        for implicit, marker in ((False, "submission-1"), (True, "submissions-1")):
            msg = self.submit(implicit, marker)
            self.assertEqual(sorted(s["s"] for s in sig_fields(msg)), ["ed", "rs"], marker)
            self.assertEqual(dkimpy_verify(msg, u), [True, True], marker)


class DkimDelegationTest(RelayTestCase):
    """nobody is the postmaster of tenant agency (deleg.org); other.org
    belongs to tenant other. Their commands run inside the daemon."""
    relay_options = {"trusted_networks": "127.0.0.1/32"}
    with_sink = False
    dead_domain = None
    start_relay = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.pw, cls.skip_reason = usable_user("nobody")
            ctl = cls.relay.ctl_ok
            dead = "smtp:127.0.0.1:%d" % cls.relay.dead_port
            ctl("tenant", "add", "city", "--name", "City")
            ctl("tenant", "add", "agency", "--name", "Agency", "--parent", "city")
            ctl("tenant", "add", "other", "--name", "Other", "--parent", "city")
            ctl("domain", "add", "deleg.org", "--tenant", "agency", "--route", dead)
            ctl("domain", "add", "other.org", "--tenant", "other", "--route", dead)
            ctl("dkim", "keygen", "other.org", "--selector", "theirs", "--algorithm", "ed25519")
            ctl("operator", "add", "nobody", "--tenant", "agency", "--role", "postmaster")
            for d in (cls.workdir, cls.relay.dir):
                os.chmod(d, 0o755)
            os.chmod(cls.relay.conf, 0o644)
            cls.relay.start()
        except BaseException:
            cls._cleanup_class()
            raise

    def setUp(self):
        if self.pw is None:
            self.skipTest(self.skip_reason)

    def as_op(self, *args):
        return run_as(self.pw, [harness.GOVRELAYCTL, "-c", self.relay.conf] + list(args))

    def test_own_domain_only(self):
        r = self.as_op("dkim", "keygen", "deleg.org", "--selector", "mine", "--algorithm",
                       "ed25519")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("mine._domainkey.deleg.org. IN TXT", r.stdout)
        self.assertNotIn("PRIVATE", r.stdout + r.stderr)
        path = os.path.join(self.relay.data_dir, "dkim", "deleg.org", "mine.pem")
        st = os.lstat(path)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_uid, os.stat(self.relay.data_dir).st_uid)
        self.assertNotEqual(st.st_uid, self.pw.pw_uid)
        # the operator cannot read the private key they made
        r = run_as(self.pw, ["cat", path])
        self.assertNotEqual(r.returncode, 0)
        # another tenant's domain: refused, and nothing was made
        for args in (("dkim", "keygen", "other.org", "--selector", "x"),
                     ("dkim", "retire", "other.org", "theirs"),
                     ("dkim", "dns", "other.org"),
                     ("dkim", "list", "--domain", "other.org")):
            r = self.as_op(*args)
            self.assertEqual(r.returncode, EX_NOPERM, (args, r.stdout, r.stderr))
            self.assertIn("permission denied: nobody", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.relay.data_dir, "dkim", "other.org",
                                                     "x.pem")))
        lst = parse_json_lines(self.as_op("dkim", "list", "--json").stdout)
        self.assertEqual([(k["domain"], k["selector"]) for k in lst], [("deleg.org", "mine")])
        theirs = parse_json_lines(self.relay.ctl_ok("dkim", "list", "--domain", "other.org",
                                                    "--json").stdout)
        self.assertEqual([k["state"] for k in theirs], ["active"])
        recs = parse_json_lines(self.relay.ctl_ok("audit", "search", "--event", "admin",
                                                  "--json").stdout)
        self.assertTrue(any(r.get("action") == "dkim.keygen" and r.get("by") == "nobody" and
                            r.get("object") == "deleg.org" for r in recs), recs)
        self.assertTrue(any(r.get("action") == "denied" and r.get("by") == "nobody" and
                            "dkim" in r.get("command", "") for r in recs), recs)


if __name__ == "__main__":
    unittest.main()
