"""
e2e: delegated administration as a security boundary
(doc/THREAT-MODEL.md), tried as a real unprivileged Unix user (uid
65534, "nobody", registered as the postmaster of the ward) running
govrelayctl against the running daemon. Covered:

- domain takeover: `domain add gmail.com` refused (77, naming the
  domain and the rule), as is a subdomain of the city's domain; a
  subdomain of the ward's own domain is accepted;
- routes: smtp:/lmtp: to a host outside delegated_route_networks (the
  loopback included), to a host name, maildir: outside maildir_root or
  escaping it with "..", lmtp:unix: outside lmtp_socket_dir: refused
  (77, naming the key); a next hop inside the networks is accepted;
- routes at delivery time: a maildir route the ward may name, whose
  folder a symbolic link planted inside maildir_root sends elsewhere, and
  a root-made route from "before the key existed" outside maildir_root:
  the mail is deferred and not one file is created outside;
- policy as a ceiling: the city forbids external mail; the ward's
  postmaster setting allow_external yes is refused naming the city, the
  effective value stays the city's; tightening is allowed; a looser
  number is refused too;
- message scope: the mayor's mail with a forged MAIL FROM of the ward's
  domain is invisible to the ward (list, show) and untouchable (hold,
  delete, retry); mail to a ward recipient is visible; a message with a
  ward and a mayor recipient shows the ward's recipient only and cannot
  be deleted or held by the ward's postmaster;
- blocked_extensions: the city's list cannot be unset or set to none by
  the ward's postmaster, the ward's own "none" takes nothing from it
  (policy show says so), and a .docm to the ward is refused;
- a message from the ward's own user, authenticated on submission, to
  the mayor is the ward's: visible with its recipient, theirs to delete.
"""
import base64
import json
import os
import smtplib
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import parse_json_lines, queued_id  # noqa: E402
from test_tenancy import (EX_NOINPUT, EX_NOPERM, TenancyCase, ctl_json,  # noqa: E402
                          run_as, usable_user)


class DelegationBoundaryTest(TenancyCase):
    """city (mayor.test) -> ward (ward.test); nobody is the ward's
    postmaster. The city forbids external mail and caps recipients."""

    @classmethod
    def prepare(cls):
        cls.pw, cls.skip_reason = usable_user("nobody")
        cls.mailroot = os.path.join(cls.workdir, "maildirs")
        cls.outside = os.path.join(cls.workdir, "outside")
        cls.lmtpdir = os.path.join(cls.workdir, "lmtp")
        for d in (cls.mailroot, cls.outside, cls.lmtpdir):
            os.mkdir(d, 0o755)
        # The daemon may run as its own user (issue 9's privilege drop):
        # let it create folders beneath maildir_root whoever it is.
        os.chmod(cls.mailroot, 0o777)
        cls.relay.configure(delegated_route_networks="10.9.0.0/16",
                            maildir_root=cls.mailroot, lmtp_socket_dir=cls.lmtpdir)
        dead = "smtp:127.0.0.1:%d" % cls.relay.dead_port
        ctl = cls.ctl
        ctl("tenant", "add", "city", "--name", "City")
        ctl("tenant", "add", "ward", "--name", "Ward", "--parent", "city")
        ctl("domain", "add", "mayor.test", "--tenant", "city", "--route", dead, "--accept-all")
        ctl("domain", "add", "ward.test", "--tenant", "ward", "--route", dead, "--accept-all")
        # A root-made maildir route outside maildir_root, as if it had been
        # made before the key existed.
        cls.old_dir = os.path.join(cls.outside, "old")
        ctl("domain", "add", "old.ward.test", "--tenant", "ward", "--route",
            "maildir:" + cls.old_dir, "--accept-all")
        ctl("policy", "set", "city", "allow_external", "no")
        ctl("policy", "set", "city", "max_recipients", "20")
        ctl("operator", "add", "nobody", "--tenant", "ward", "--role", "postmaster")
        for d in (cls.workdir, cls.relay.dir):
            os.chmod(d, 0o755)
        os.chmod(cls.relay.conf, 0o644)

    def setUp(self):
        if self.pw is None:
            self.skipTest(self.skip_reason)

    def as_ward(self, *args):
        return run_as(self.pw, [harness.GOVRELAYCTL, "-c", self.relay.conf] + list(args))

    def assertRefused(self, r, *words):
        self.assertEqual(r.returncode, EX_NOPERM, "stdout: %s\nstderr: %s" % (r.stdout, r.stderr))
        self.assertIn("permission denied: nobody", r.stderr)
        for w in words:
            self.assertIn(w, r.stderr)

    def send(self, mail_from, rcpts, marker):
        """One message from an Internet client (127.0.0.2); its queue id."""
        c = harness.RawSMTP(self.relay.ports["mx"], source="127.0.0.2")
        try:
            c.ehlo()
            c.expect("MAIL FROM:<%s>" % mail_from, 250)
            for r in rcpts:
                c.expect("RCPT TO:<%s>" % r, 250)
            c.expect("DATA", 354)
            c.send(harness.dot_stuff(("Subject: %s\r\n\r\n%s\r\n" % (marker, marker)).encode()))
            reply = c.cmd(b".")
            self.assertReply(reply, 250)
            return queued_id(reply)
        finally:
            c.close()

    def files_outside(self):
        found = []
        for root, dirs, files in os.walk(self.outside):
            found += [os.path.join(root, x) for x in dirs + files]
        return found

    # ------------------------------------------------------------ domains

    def test_foreign_top_domain_refused(self):
        r = self.as_ward("domain", "add", "gmail.com", "--tenant", "ward", "--route", "mx",
                         "--accept-all")
        self.assertRefused(r, "domain add", "domain gmail.com", "only subdomains",
                           "root and the daemon's user")
        harness_rc = self.relay.ctl("domain", "show", "gmail.com")
        self.assertEqual(harness_rc.returncode, EX_NOINPUT, harness_rc.stderr)
        # under the city's domain: not the ward's to add
        r = self.as_ward("domain", "add", "x.mayor.test", "--tenant", "ward", "--route", "mx")
        self.assertRefused(r, "x.mayor.test", "mayor.test", "tenant city")
        self.assertEqual(self.relay.ctl("domain", "show", "x.mayor.test").returncode,
                         EX_NOINPUT)
        # the refusal is in the audit chain
        recs = ctl_json(self.relay, "audit", "search", "--event", "admin")
        self.assertTrue([x for x in recs if x.get("action") == "denied"
                         and x.get("command") == "domain add" and x.get("by") == "nobody"
                         and "gmail.com" in str(x.get("reason"))], recs[-5:])

    def test_subdomain_of_own_domain_accepted(self):
        r = self.as_ward("domain", "add", "lists.ward.test", "--tenant", "ward", "--route",
                         "mx")
        self.assertEqual(r.returncode, 0, r.stderr)
        d = ctl_json(self.relay, "domain", "show", "lists.ward.test")[0]
        self.assertEqual(d["tenant"], "ward")

    # ------------------------------------------------------------- routes

    def test_routes_outside_the_allowed_set_refused(self):
        cases = [
            ("smtp:127.0.0.1:2", "delegated_route_networks"),
            ("lmtp:127.0.0.1:24", "delegated_route_networks"),
            ("smtp:[::1]:25", "delegated_route_networks"),
            ("smtp:10.10.0.1:25", "delegated_route_networks"),
            ("smtp:localhost:25", "IP address"),
            ("maildir:/root/loot", "maildir_root"),
            ("maildir:%s/../outside/loot" % self.mailroot, "maildir_root"),
            ("maildir:" + self.mailroot, "maildir_root"),
            ("lmtp:unix:/run/some.sock", "lmtp_socket_dir"),
            ("lmtp:unix:%s/../control.sock" % self.lmtpdir, "lmtp_socket_dir"),
        ]
        for i, (route, word) in enumerate(cases):
            with self.subTest(route=route):
                name = "r%d.ward.test" % i
                r = self.as_ward("domain", "add", name, "--tenant", "ward", "--route", route)
                self.assertRefused(r, "--route", word)
                self.assertEqual(self.relay.ctl("domain", "show", name).returncode,
                                 EX_NOINPUT)
        # inside the allowed set: accepted (never contacted: no mail goes there)
        for name, route in (("ok1.ward.test", "smtp:10.9.1.1:25"),
                            ("ok2.ward.test", "maildir:%s/ward-ok" % self.mailroot),
                            ("ok3.ward.test", "lmtp:unix:%s/ward.sock" % self.lmtpdir)):
            with self.subTest(route=route):
                r = self.as_ward("domain", "add", name, "--tenant", "ward", "--route", route)
                self.assertEqual(r.returncode, 0, r.stderr)

    def test_symlink_escape_checked_at_delivery(self):
        # The ward names a folder inside maildir_root (allowed) ...
        folder = os.path.join(self.mailroot, "ward-box")
        r = self.as_ward("domain", "add", "box.ward.test", "--tenant", "ward", "--route",
                         "maildir:" + folder, "--accept-all")
        self.assertEqual(r.returncode, 0, r.stderr)
        # ... and a link planted there later points outside.
        os.symlink(self.outside, folder)
        qid = self.send("someone@example.org", ["clerk@box.ward.test"], "escape-by-link")
        qid2 = self.send("someone@example.org", ["clerk@old.ward.test"], "escape-old-route")

        def deferred(q):
            m = ctl_json(self.relay, "queue", "show", q)[0]
            return "maildir_root" in json.dumps(m)

        harness.wait_for(lambda: deferred(qid) and deferred(qid2), timeout=20,
                         what="both deliveries refused for maildir_root")
        self.assertEqual(self.files_outside(), [])
        self.assertFalse(os.path.exists(self.old_dir))
        self.relay.ctl_ok("queue", "delete", qid)
        self.relay.ctl_ok("queue", "delete", qid2)

    def test_maildir_inside_root_delivers(self):
        folder = os.path.join(self.mailroot, "ward-in")
        r = self.as_ward("domain", "add", "in.ward.test", "--tenant", "ward", "--route",
                         "maildir:" + folder, "--accept-all")
        self.assertEqual(r.returncode, 0, r.stderr)
        qid = self.send("someone@example.org", ["clerk@in.ward.test"], "inside-root")
        self.relay.wait_gone(qid, timeout=20)
        new = os.path.join(folder, "clerk@in.ward.test", "new")
        self.assertEqual(len(os.listdir(new)), 1)

    # ------------------------------------------------------------- policy

    def test_policy_loosening_refused(self):
        r = self.as_ward("policy", "set", "ward", "allow_external", "yes")
        self.assertRefused(r, "policy set", "allow_external", "tenant city", "ceiling")
        p = ctl_json(self.relay, "policy", "show", "ward")[0]["policy"]
        self.assertEqual(p["allow_external"], {"value": False, "source": "city"})
        r = self.as_ward("policy", "set", "ward", "max_recipients", "50")
        self.assertRefused(r, "max_recipients", "tenant city")
        # tightening is the ward's right
        r = self.as_ward("policy", "set", "ward", "max_recipients", "10")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.as_ward("policy", "set", "ward", "require_tls_outbound", "yes")
        self.assertEqual(r.returncode, 0, r.stderr)
        p = ctl_json(self.relay, "policy", "show", "ward")[0]["policy"]
        self.assertEqual(p["max_recipients"], {"value": 10, "source": "ward"})
        self.assertEqual(p["allow_external"], {"value": False, "source": "city"})

    def test_city_blocked_extensions_hold_for_the_ward(self):
        self.ctl("policy", "set", "city", "blocked_extensions", "docm")
        try:
            # The city's list is not the ward's to take off ...
            self.assertRefused(self.as_ward("policy", "unset", "city", "blocked_extensions"),
                               "city")
            self.assertRefused(self.as_ward("policy", "set", "city", "blocked_extensions",
                                            "none"), "city")
            # ... nor to shadow: the ward's own "none" adds nothing and takes nothing.
            r = self.as_ward("policy", "set", "ward", "blocked_extensions", "none")
            self.assertEqual(r.returncode, 0, r.stderr)
            r = self.as_ward("policy", "show", "ward", "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
            p = parse_json_lines(r.stdout)[0]["policy"]
            self.assertEqual(p["blocked_extensions"], {"value": "docm", "source": "city"})
            mail = ("Subject: mau bieu\r\nMIME-Version: 1.0\r\n"
                    "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
                    "--b\r\nContent-Type: text/plain\r\n\r\nxem tep\r\n"
                    "--b\r\nContent-Type: application/octet-stream\r\n"
                    "Content-Disposition: attachment; filename=\"mau-bieu.DOCM\"\r\n"
                    "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n--b--\r\n"
                    % base64.b64encode(b"macro").decode())
            c = harness.RawSMTP(self.relay.ports["mx"], source="127.0.0.2")
            try:
                c.ehlo()
                c.expect("MAIL FROM:<someone@example.net>", 250)
                c.expect("RCPT TO:<clerk@ward.test>", 250)
                c.expect("DATA", 354)
                c.send(harness.dot_stuff(mail.encode()))
                reply = c.cmd(b".")
            finally:
                c.close()
            self.assertReply(reply, 550)
            self.assertIn("a .docm file (mau-bieu.DOCM)", "\n".join(reply.lines))
        finally:
            self.ctl("policy", "unset", "ward", "blocked_extensions")
            self.ctl("policy", "unset", "city", "blocked_extensions")

    # ------------------------------------------------------------ messages

    def test_other_tenants_message_invisible_and_untouchable(self):
        # The mayor's mail, MAIL FROM forged to look like the ward's.
        mayor = self.send("clerk@ward.test", ["mayor@mayor.test"], "for-the-mayor")
        ours = self.send("someone@example.org", ["clerk@ward.test"], "for-the-ward")
        mixed = self.send("someone@example.org", ["mayor@mayor.test", "head@ward.test"],
                          "for-both")
        r = self.as_ward("queue", "list", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        listed = {m["id"]: m for m in parse_json_lines(r.stdout)}
        self.assertNotIn(mayor, listed)
        self.assertIn(ours, listed)
        self.assertIn(mixed, listed)
        self.assertNotIn("mayor@mayor.test", r.stdout)
        r = self.as_ward("queue", "show", mayor)
        self.assertRefused(r, "queue show")
        self.assertNotIn("mayor@mayor.test", r.stdout + r.stderr)
        r = self.as_ward("queue", "show", mixed, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("head@ward.test", r.stdout)
        self.assertNotIn("mayor@mayor.test", r.stdout)
        for verb in ("delete", "hold", "retry", "release"):
            for qid in (mayor, mixed):
                with self.subTest(verb=verb, qid=qid):
                    r = self.as_ward("queue", verb, qid)
                    self.assertRefused(r, "queue " + verb)
        # both still there, untouched, for root
        for qid in (mayor, mixed):
            m = ctl_json(self.relay, "queue", "show", qid)[0]
            self.assertFalse(m.get("held"), m)
            self.assertIn("mayor@mayor.test", json.dumps(m))
        # the ward's own message is the ward's to delete
        r = self.as_ward("queue", "delete", ours)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.relay.wait_gone(ours)
        for qid in (mayor, mixed):
            self.relay.ctl_ok("queue", "delete", qid)


class AuthenticatedSenderScopeTest(TenancyCase):
    """The sender counts only when authenticated: the ward's own user
    (AUTH on submission) writes to the mayor; that message is the ward's
    (visible with its recipient, theirs to delete), while the same
    MAIL FROM typed by an Internet client is not."""
    relay_options = {"tls": True, "listeners": ("mx", "submission"),
                     "trusted_networks": "127.0.0.1/32", "password_hash_cost": "10",
                     "auth_failure_delay": "0s"}

    @classmethod
    def prepare(cls):
        cls.pw, cls.skip_reason = usable_user("nobody")
        dead = "smtp:127.0.0.1:%d" % cls.relay.dead_port
        ctl = cls.ctl
        ctl("tenant", "add", "city", "--name", "City")
        ctl("tenant", "add", "ward", "--name", "Ward", "--parent", "city")
        ctl("domain", "add", "mayor.test", "--tenant", "city", "--route", dead, "--accept-all")
        ctl("domain", "add", "ward.test", "--tenant", "ward", "--route", dead, "--accept-all")
        ctl("user", "add", "clerk@ward.test", input="Clerk-pw-1\n")
        ctl("operator", "add", "nobody", "--tenant", "ward", "--role", "postmaster")
        for d in (cls.workdir, cls.relay.dir):
            os.chmod(d, 0o755)
        os.chmod(cls.relay.conf, 0o644)

    def setUp(self):
        if self.pw is None:
            self.skipTest(self.skip_reason)

    def as_ward(self, *args):
        return run_as(self.pw, [harness.GOVRELAYCTL, "-c", self.relay.conf] + list(args))

    def submit(self):
        c = smtplib.SMTP("127.0.0.1", self.relay.ports["submission"],
                         local_hostname="client.test", timeout=15)
        try:
            c.ehlo()
            code, msg = c.starttls(context=harness.client_tls_context())
            self.assertEqual(code, 220, msg)
            c.ehlo()
            code, msg = c.docmd("AUTH", "PLAIN " + base64.b64encode(
                b"\0clerk@ward.test\0Clerk-pw-1").decode())
            self.assertEqual(code, 235, msg)
            self.assertEqual(c.mail("clerk@ward.test")[0], 250)
            self.assertEqual(c.rcpt("mayor@mayor.test")[0], 250)
            return harness.smtplib_queued_id(
                c.data(b"From: clerk@ward.test\r\nTo: mayor@mayor.test\r\n"
                       b"Subject: from the ward\r\n\r\nhello mayor\r\n"))
        finally:
            c.close()

    def test_authenticated_sender_makes_it_theirs(self):
        qid = self.submit()
        m = ctl_json(self.relay, "queue", "show", qid)[0]
        self.assertEqual(m.get("auth_user"), "clerk@ward.test", m)
        r = self.as_ward("queue", "show", qid, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("mayor@mayor.test", r.stdout)
        r = self.as_ward("queue", "delete", qid)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.relay.wait_gone(qid)


if __name__ == "__main__":
    harness.main()
