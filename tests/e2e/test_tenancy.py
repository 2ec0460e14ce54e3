"""
e2e: tenancy through the real govrelayctl and the real govrelayd
(INTERFACE.md "Administration", govrelayctl(8)). Covered:

- a tenant tree (city -> two departments -> a ward) in `tenant list`
  (tree order, depth, indentation); policy set at the city, inherited
  below, overridden at a department and again at the ward, and
  `policy show --json` giving each key's effective value and its source
  (the tenant that set it, `default`, `config`); `policy unset`; unknown
  keys and bad values exit 65;
- `tenant remove` refused with 65 while the tenant has a child or a
  domain, allowed once both are gone;
- an IDN domain added in Unicode form is stored and shown as its A-label
  and found in any letter case, by the CLI and by RCPT on the mx listener;
- `mailbox import` of a CSV with bad rows: exit 65, every bad row
  reported as FILE:LINE, nothing imported; then a good CSV, and
  `mailbox list --domain` (text and --json);
- RCPT on the mx listener: an unknown mailbox of a domain without
  --accept-all is 550 5.1.1, a known one is accepted, an alias with several
  targets reaches smtp-sink as its targets, an --accept-all domain takes
  any local part; a mailbox added or removed while govrelayd runs counts
  at the next RCPT (no reload);
- delegated operators: a postmaster (uid 65534, "nobody") runs
  govrelayctl against the running daemon: allowed in their subtree,
  refused with 77 outside it, and each refusal is an `admin` audit record
  with action=denied; a user who is no operator gets 77 too.
"""
import json
import os
import pwd
import re
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RelayTestCase, Sink, parse_json_lines, queued_id  # noqa: E402

EX_DATAERR = 65
EX_NOINPUT = 66
EX_CANTCREAT = 73
EX_NOPERM = 77

IDN_UNICODE = "B\u00fccher.Example"         # as an operator types it
IDN_ALABEL = "xn--bcher-kva.example"


# ----------------------------------------------------------------- helpers

def ctl_json(relay, *args):
    """`govrelayctl ARGS --json`, decoded (a list of objects)."""
    r = relay.ctl_ok(*(args + ("--json",)))
    try:
        return parse_json_lines(r.stdout)
    except ValueError as e:
        raise AssertionError("govrelayctl %s --json is not JSON (%s): %r"
                             % (" ".join(args), e, r.stdout))


def ctl_rc(test, relay, want, *args, **kw):
    """Runs govrelayctl and asserts its exit status; returns the result."""
    r = relay.ctl(*args, **kw)
    test.assertEqual(r.returncode, want, "govrelayctl %s exited %d, expected %d\n"
                     "stdout: %s\nstderr: %s" % (" ".join(map(str, args)), r.returncode,
                                                 want, r.stdout, r.stderr))
    return r


def audit_records(relay, *filters):
    """`audit search FILTERS --json` as a list of objects."""
    return ctl_json(relay, "audit", "search", *filters)


def last_seq(relay):
    recs = audit_records(relay)
    return max((int(r["seq"]) for r in recs), default=0)


def untrusted(relay):
    """A raw SMTP session on the mx listener from 127.0.0.2 (an Internet
    client: trusted_networks is 127.0.0.1/32 in these classes)."""
    c = harness.RawSMTP(relay.ports["mx"], source="127.0.0.2")
    c.ehlo()
    return c


def rcpt_reply(relay, rcpt, mail_from="someone@example.org", smtputf8=False):
    """The reply to RCPT TO:<rcpt> in a fresh untrusted session."""
    c = untrusted(relay)
    try:
        c.expect("MAIL FROM:<%s>%s" % (mail_from, " SMTPUTF8" if smtputf8 else ""), 250)
        return c.cmd("RCPT TO:<%s>" % rcpt)
    finally:
        c.close()


class TenancyCase(RelayTestCase):
    """No harness-made domains: each class builds its own tenants and
    domains (with --tenant) before govrelayd starts."""
    with_sink = False
    dead_domain = None
    start_relay = False
    relay_options = {"trusted_networks": "127.0.0.1/32"}
    run_daemon = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.prepare()
            if cls.run_daemon:
                cls.relay.start()
        except BaseException:
            cls._cleanup_class()
            raise

    @classmethod
    def prepare(cls):
        pass

    @classmethod
    def ctl(cls, *args, **kw):
        return cls.relay.ctl_ok(*args, **kw)


# ------------------------------------------------------------ CLI, store

class TenantCliTest(TenancyCase):
    """Tenants, policy, IDN domains and imports through the CLI; the daemon
    runs too (the CLI shares the store with it)."""

    def test_tree_and_policy_inheritance(self):
        ctl = self.ctl
        ctl("tenant", "add", "hcm", "--name", "Th\u00e0nh ph\u1ed1 H\u1ed3 Ch\u00ed Minh")
        ctl("tenant", "add", "hcm-health", "--name", "S\u1edf Y t\u1ebf", "--parent", "hcm")
        ctl("tenant", "add", "hcm-finance", "--name", "S\u1edf T\u00e0i ch\u00ednh",
            "--parent", "hcm")
        ctl("tenant", "add", "hcm-finance-w1", "--name", "Ph\u01b0\u1eddng 1",
            "--parent", "hcm-finance")
        r = self.relay.ctl("tenant", "add", "hcm-x", "--name", "X", "--parent", "no-such")
        self.assertEqual(r.returncode, EX_NOINPUT, r.stderr)
        r = self.relay.ctl("tenant", "add", "hcm", "--name", "again")
        self.assertEqual(r.returncode, EX_CANTCREAT, r.stderr)

        # tree order: each tenant below its parent, children in ID order
        tree = [t for t in ctl_json(self.relay, "tenant", "list") if t["id"].startswith("hcm")]
        self.assertEqual([(t["id"], t["parent"], t["depth"]) for t in tree],
                         [("hcm", None, 0), ("hcm-finance", "hcm", 1),
                          ("hcm-finance-w1", "hcm-finance", 2), ("hcm-health", "hcm", 1)])
        self.assertEqual(tree[3]["name"], "S\u1edf Y t\u1ebf")
        text = self.relay.ctl_ok("tenant", "list").stdout
        self.assertRegex(text, r"(?m)^hcm +Th\u00e0nh ph\u1ed1 H\u1ed3 Ch\u00ed Minh ")
        self.assertRegex(text, r"(?m)^  hcm-finance +")
        self.assertRegex(text, r"(?m)^    hcm-finance-w1 +Ph\u01b0\u1eddng 1 ")
        self.assertRegex(text, r"(?m)^  hcm-health +")

        def policy(tenant):
            docs = ctl_json(self.relay, "policy", "show", tenant)
            self.assertEqual(len(docs), 1, docs)
            self.assertEqual(docs[0]["tenant"], tenant)
            return docs[0]["policy"]

        # Nothing set: built-in values, and the config's for the two keys
        # the configuration file also has.
        p = policy("hcm-finance-w1")
        self.assertEqual(set(p), {"max_message_size", "max_recipients", "messages_per_hour",
                                  "allow_external", "require_tls_outbound",
                                  "spf_fail_action", "classified_action",
                                  "classified_min_level", "blocked_attachments",
                                  "encrypted_archive_action", "blocked_extensions",
                                  "security_contact"}, p)
        self.assertEqual(p["messages_per_hour"], {"value": 0, "source": "default"})
        self.assertEqual(p["spf_fail_action"], {"value": "reject", "source": "default"})
        self.assertEqual(p["allow_external"], {"value": True, "source": "default"})
        self.assertEqual(p["max_recipients"]["source"], "config")
        self.assertEqual(p["max_message_size"]["source"], "config")

        ctl("policy", "set", "hcm", "max_recipients", "50")
        ctl("policy", "set", "hcm", "allow_external", "no")
        ctl("policy", "set", "hcm", "max_message_size", "10M")
        ctl("policy", "set", "hcm-finance", "max_recipients", "10")

        p = policy("hcm-finance-w1")    # the ward: from its department and the city
        self.assertEqual(p["max_recipients"], {"value": 10, "source": "hcm-finance"})
        self.assertEqual(p["allow_external"], {"value": False, "source": "hcm"})
        self.assertEqual(p["max_message_size"], {"value": 10485760, "source": "hcm"})
        self.assertEqual(p["messages_per_hour"], {"value": 0, "source": "default"})
        p = policy("hcm-health")        # the other department: the city's
        self.assertEqual(p["max_recipients"], {"value": 50, "source": "hcm"})
        self.assertEqual(p["allow_external"], {"value": False, "source": "hcm"})
        p = policy("hcm")
        self.assertEqual(p["max_recipients"], {"value": 50, "source": "hcm"})

        # an override at the lowest level wins there only
        ctl("policy", "set", "hcm-finance-w1", "max_recipients", "3")
        ctl("policy", "set", "hcm-finance-w1", "allow_external", "yes")
        p = policy("hcm-finance-w1")
        self.assertEqual(p["max_recipients"], {"value": 3, "source": "hcm-finance-w1"})
        self.assertEqual(p["allow_external"], {"value": True, "source": "hcm-finance-w1"})
        self.assertEqual(policy("hcm-finance")["max_recipients"],
                         {"value": 10, "source": "hcm-finance"})
        self.assertEqual(policy("hcm-health")["allow_external"],
                         {"value": False, "source": "hcm"})
        text = self.relay.ctl_ok("policy", "show", "hcm-finance-w1").stdout
        self.assertRegex(text, r"(?m)^max_recipients +3 +hcm-finance-w1$")
        self.assertRegex(text, r"(?m)^max_message_size +10485760 +hcm$")
        self.assertRegex(text, r"(?m)^messages_per_hour +0 +default$")

        # unset: inherits again
        ctl("policy", "unset", "hcm-finance-w1", "max_recipients")
        self.assertEqual(policy("hcm-finance-w1")["max_recipients"],
                         {"value": 10, "source": "hcm-finance"})

        # refusals
        r = ctl_rc(self, self.relay, EX_DATAERR, "policy", "set", "hcm", "no_such_key", "1")
        self.assertIn("messages_per_hour", r.stderr, "the message must list the known keys")
        ctl_rc(self, self.relay, EX_DATAERR, "policy", "set", "hcm", "max_recipients", "many")
        ctl_rc(self, self.relay, EX_DATAERR, "policy", "set", "hcm", "allow_external", "maybe")
        ctl_rc(self, self.relay, EX_NOINPUT, "policy", "show", "no-such-tenant")

        # every change is one admin audit record
        recs = [r for r in audit_records(self.relay, "--event", "admin")
                if r.get("action") == "policy.set" and r.get("key") == "max_recipients"]
        self.assertTrue(any(r.get("object") == "hcm-finance" and r.get("value") == "10"
                            for r in recs), recs)

    def test_tenant_remove_refused_while_in_use(self):
        ctl = self.ctl
        ctl("tenant", "add", "rm-city", "--name", "City")
        ctl("tenant", "add", "rm-dept", "--name", "Dept", "--parent", "rm-city")
        ctl("tenant", "add", "rm-ward", "--name", "Ward", "--parent", "rm-dept")
        ctl("domain", "add", "rm-ward.test", "--tenant", "rm-ward",
            "--route", "smtp:127.0.0.1:%d" % self.relay.dead_port)

        r = ctl_rc(self, self.relay, EX_DATAERR, "tenant", "remove", "rm-dept")
        self.assertIn("rm-ward", r.stderr, "the refusal must name the child")
        r = ctl_rc(self, self.relay, EX_DATAERR, "tenant", "remove", "rm-ward")
        self.assertIn("rm-ward.test", r.stderr, "the refusal must name the domain")
        # nothing was removed
        ids = [t["id"] for t in ctl_json(self.relay, "tenant", "list")]
        self.assertIn("rm-dept", ids)
        self.assertIn("rm-ward", ids)

        ctl("domain", "remove", "rm-ward.test")
        ctl("tenant", "remove", "rm-ward")
        ctl("tenant", "remove", "rm-dept")
        ctl("tenant", "remove", "rm-city")
        for t in ("rm-city", "rm-dept", "rm-ward"):
            ctl_rc(self, self.relay, EX_NOINPUT, "tenant", "show", t)

    def test_idn_domain_stored_as_alabel(self):
        self.ctl("tenant", "add", "idn", "--name", "IDN")
        r = self.ctl("domain", "add", IDN_UNICODE, "--tenant", "idn",
                     "--route", "smtp:127.0.0.1:%d" % self.relay.dead_port)
        self.assertIn(IDN_ALABEL, r.stdout)
        doms = [d for d in ctl_json(self.relay, "domain", "list") if d["tenant"] == "idn"]
        self.assertEqual([d["domain"] for d in doms], [IDN_ALABEL])
        self.assertEqual(doms[0]["unicode"], "b\u00fccher.example")
        self.assertRegex(self.relay.ctl_ok("domain", "list", "--tenant", "idn").stdout,
                         r"(?m)^%s +idn " % re.escape(IDN_ALABEL))
        # found by any spelling
        for name in (IDN_ALABEL, IDN_ALABEL.upper(), "B\u00dcCHER.EXAMPLE", "b\u00fccher.example"):
            with self.subTest(name=name):
                d = ctl_json(self.relay, "domain", "show", name)[0]
                self.assertEqual(d["domain"], IDN_ALABEL)
        # the same domain again in another spelling already exists
        ctl_rc(self, self.relay, EX_CANTCREAT, "domain", "add", "XN--BCHER-KVA.example",
               "--tenant", "idn", "--route", "smtp:127.0.0.1:%d" % self.relay.dead_port)
        # addresses: domain as A-label, ASCII local part lowercased
        self.ctl("mailbox", "add", "Info@B\u00dcCHER.example")
        got = [m["address"] for m in ctl_json(self.relay, "mailbox", "list", "--domain",
                                               "b\u00fccher.example")]
        self.assertEqual(got, ["info@" + IDN_ALABEL])
        ctl_rc(self, self.relay, EX_CANTCREAT, "mailbox", "add", "INFO@" + IDN_ALABEL)
        self.ctl("mailbox", "remove", "info@" + IDN_ALABEL)
        self.ctl("domain", "remove", "b\u00fccher.example")
        ctl_rc(self, self.relay, EX_NOINPUT, "domain", "show", IDN_ALABEL)

    def test_mailbox_import(self):
        self.ctl("tenant", "add", "imp", "--name", "Import")
        self.ctl("domain", "add", "imp.test", "--tenant", "imp",
                 "--route", "smtp:127.0.0.1:%d" % self.relay.dead_port)
        bad = os.path.join(self.workdir, "staff-bad.csv")
        rows = [
            "address,alias-of",                        # 1 header: skipped
            "good1@imp.test",                          # 2 (a mailbox, see 10)
            "not-an-address",                          # 3 bad address
            "someone@elsewhere.example",               # 4 not our domain
            "# a comment",                             # 5 skipped
            "",                                        # 6 skipped
            "list@imp.test,good1@imp.test",            # 7 fine
            "list@imp.test,not an address",            # 8 bad alias target
            'good2@imp.test,"outside@example.org"',    # 9 fine (quoted field)
            "good1@imp.test,good2@imp.test",           # 10 good1 both mailbox and alias
            '"good3@imp.test"',                        # 11 fine
        ]
        with open(bad, "w") as f:
            f.write("\r\n".join(rows) + "\r\n")
        r = ctl_rc(self, self.relay, EX_DATAERR, "mailbox", "import", bad)
        reported = sorted(int(m) for m in re.findall(r"(?m)^%s:(\d+): " % re.escape(bad),
                                                     r.stderr))
        for line in (3, 4, 8):
            self.assertIn(line, reported, "bad row %d not reported as %s:%d\n%s"
                          % (line, bad, line, r.stderr))
        self.assertTrue(2 in reported or 10 in reported,
                        "good1@imp.test as mailbox and alias not reported:\n" + r.stderr)
        for line in (1, 5, 6, 7, 9, 11):
            self.assertNotIn(line, reported, "good row %d reported as bad:\n%s"
                             % (line, r.stderr))
        self.assertIn("nothing imported", r.stderr)
        self.assertEqual(ctl_json(self.relay, "mailbox", "list", "--domain", "imp.test"), [])
        text = self.relay.ctl_ok("mailbox", "list", "--domain", "imp.test").stdout
        self.assertEqual([l for l in text.splitlines() if l.strip()][1:], [],
                         "rows listed after a refused import:\n" + text)

        good = os.path.join(self.workdir, "staff-good.csv")
        with open(good, "w") as f:
            f.write("address,alias-of\n"
                    "Good1@IMP.test\n"
                    "good2@imp.test\n"
                    '"good3@imp.test"\n'
                    "\n"
                    "list@imp.test,good1@imp.test\n"
                    "list@imp.test,ext@example.org\n"
                    'list@imp.test,"good2@imp.test"\n')
        r = self.ctl("mailbox", "import", good)
        self.assertIn("imported", r.stdout)
        listed = ctl_json(self.relay, "mailbox", "list", "--domain", "imp.test")
        self.assertEqual([(m["address"], m["type"]) for m in listed],
                         [("good1@imp.test", "mailbox"), ("good2@imp.test", "mailbox"),
                          ("good3@imp.test", "mailbox"), ("list@imp.test", "alias")])
        self.assertEqual(listed[0]["alias_of"], [])
        self.assertEqual(sorted(listed[3]["alias_of"]),
                         ["ext@example.org", "good1@imp.test", "good2@imp.test"])
        # text: a header, then address, type and targets, in address order
        lines = [l for l in self.relay.ctl_ok("mailbox", "list", "--domain", "imp.test")
                 .stdout.splitlines() if l.strip()]
        self.assertRegex(lines[0], r"^ADDRESS +TYPE +TARGETS")
        self.assertEqual([l.split()[:2] for l in lines[1:]],
                         [["good1@imp.test", "mailbox"], ["good2@imp.test", "mailbox"],
                          ["good3@imp.test", "mailbox"], ["list@imp.test", "alias"]])
        for t in ("good1@imp.test", "good2@imp.test", "ext@example.org"):
            self.assertIn(t, lines[4])
        # one audit record for the import
        recs = [x for x in audit_records(self.relay, "--event", "admin")
                if x.get("action") == "mailbox.import"]
        self.assertEqual(len(recs), 1, recs)
        # importing again changes nothing and is fine
        self.ctl("mailbox", "import", good)
        self.assertEqual(len(ctl_json(self.relay, "mailbox", "list", "--domain", "imp.test")), 4)


# ------------------------------------------------------------ SMTP, RCPT

class RecipientTest(TenancyCase):
    """govrelayd checks RCPT against the mailbox table as it is now."""

    @classmethod
    def prepare(cls):
        cls.sink = Sink(cls.workdir).start()
        route = cls.sink.route
        ctl = cls.ctl
        ctl("tenant", "add", "city", "--name", "City")
        ctl("tenant", "add", "dept", "--name", "Dept", "--parent", "city")
        ctl("domain", "add", "mail.test", "--tenant", "dept", "--route", route)
        ctl("domain", "add", "open.test", "--tenant", "dept", "--route", route, "--accept-all")
        ctl("domain", "add", IDN_UNICODE, "--tenant", "city", "--route", route)
        ctl("mailbox", "add", "known@mail.test")
        ctl("mailbox", "add", "k2@mail.test")
        ctl("mailbox", "add", "team@mail.test", "--alias-of", "known@mail.test")
        ctl("mailbox", "add", "team@mail.test", "--alias-of", "k2@mail.test")
        ctl("mailbox", "add", "Info@B\u00dcCHER.example")

    def test_unknown_recipient_refused(self):
        r = rcpt_reply(self.relay, "nobody-here@mail.test")
        self.assertReply(r, 550, "550 5.1.1")
        self.assertReply(rcpt_reply(self.relay, "known@mail.test"), 250)
        self.assertReply(rcpt_reply(self.relay, "KNOWN@Mail.Test"), 250)
        # the trusted agency servers are held to the same table
        c = harness.RawSMTP(self.relay.ports["mx"])
        self.addCleanup(c.close)
        c.ehlo()
        c.expect("MAIL FROM:<known@mail.test>", 250)
        self.assertReply(c.cmd("RCPT TO:<nobody-here@mail.test>"), 550, "550 5.1.1")
        self.relay.wait_log(r"rule=recipient-mailbox")

    def test_known_mailbox_delivered(self):
        c = untrusted(self.relay)
        self.addCleanup(c.close)
        c.expect("MAIL FROM:<sender@example.org>", 250)
        c.expect("RCPT TO:<known@mail.test>", 250)
        c.expect("DATA", 354)
        qid = queued_id(c.cmd(b"Subject: known\r\n\r\nknown-mailbox-body\r\n."))
        m = self.sink.find(b"known-mailbox-body")
        self.assertEqual(m.rcpts, ["known@mail.test"])
        self.relay.wait_log(r"%s: to=<known@mail\.test>.*status=sent" % qid)

    def test_alias_with_several_targets(self):
        c = untrusted(self.relay)
        self.addCleanup(c.close)
        c.expect("MAIL FROM:<sender@example.org>", 250)
        c.expect("RCPT TO:<team@mail.test>", 250)
        c.expect("DATA", 354)
        qid = queued_id(c.cmd(b"Subject: team\r\n\r\nalias-several-targets\r\n."))
        self.relay.wait_gone(qid)
        self.sink.find(b"alias-several-targets")
        got = sorted(r for m in self.sink.messages() if b"alias-several-targets" in m.raw
                     for r in m.rcpts)
        self.assertEqual(got, ["k2@mail.test", "known@mail.test"],
                         "the next hop must see the alias's targets, once each")

    def test_accept_all_domain(self):
        for local in ("anything", "x.y-z", "Random123"):
            with self.subTest(local=local):
                self.assertReply(rcpt_reply(self.relay, "%s@open.test" % local), 250)
        c = untrusted(self.relay)
        self.addCleanup(c.close)
        qid = queued_id(c.send_message("sender@example.org", ["whoever@open.test"],
                                       b"Subject: open\r\n\r\naccept-all-body\r\n", ehlo=False))
        self.assertEqual(self.sink.find(b"accept-all-body").rcpts, ["whoever@open.test"])
        self.relay.wait_gone(qid)

    def test_mailbox_added_while_running(self):
        addr = "newcomer@mail.test"
        c = untrusted(self.relay)
        self.addCleanup(c.close)
        c.expect("MAIL FROM:<sender@example.org>", 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % addr), 550, "550 5.1.1")
        self.ctl("mailbox", "add", addr)
        # the very next RCPT, in the same session, without a reload
        self.assertReply(c.cmd("RCPT TO:<%s>" % addr), 250, "250 2.1.5")
        c.expect("DATA", 354)
        qid = queued_id(c.cmd(b"Subject: new\r\n\r\nnewcomer-body\r\n."))
        self.assertEqual(self.sink.find(b"newcomer-body").rcpts, [addr])
        self.relay.wait_gone(qid)
        self.ctl("mailbox", "remove", addr)
        self.assertReply(rcpt_reply(self.relay, addr), 550, "550 5.1.1")

    def test_idn_recipient_any_case(self):
        self.assertReply(rcpt_reply(self.relay, "info@" + IDN_ALABEL), 250)
        self.assertReply(rcpt_reply(self.relay, "INFO@" + IDN_ALABEL.upper()), 250)
        self.assertReply(rcpt_reply(self.relay, "other@" + IDN_ALABEL), 550, "550 5.1.1")

    def test_idn_recipient_unicode_form(self):
        """RFC 6531: with SMTPUTF8 the domain may come as U-labels; it is
        the same domain as its A-label."""
        self.assertReply(rcpt_reply(self.relay, "Info@B\u00fccher.example", smtputf8=True), 250)
        self.assertReply(rcpt_reply(self.relay, "other@b\u00fccher.example", smtputf8=True),
                         550, "550 5.1.1")


# ------------------------------------------------------------- operators

def run_as(user, argv, input=None, timeout=60):
    """Runs argv as the unix user (uid, gid, no supplementary groups)."""
    return subprocess.run(argv, user=user.pw_uid, group=user.pw_gid, extra_groups=[],
                          cwd="/", input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)


def usable_user(name):
    """pwd entry of a user that can run govrelayctl here, or a skip
    reason. The same logic as test_control.py's peer-uid check: needs
    root, and some roots keep other users out entirely (a chroot under a
    0700 folder, a build folder under /root)."""
    if os.geteuid() != 0:
        return None, "needs root to run govrelayctl as another user"
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return None, "no user %s on this machine" % name
    try:
        probe = run_as(pw, [harness.GOVRELAYCTL, "help"], timeout=30)
    except PermissionError:
        probe = None
    if probe is None or probe.returncode != 0:
        return None, "uid %d (%s) cannot run %s on this machine" % (pw.pw_uid, name,
                                                                  harness.GOVRELAYCTL)
    return pw, None


class DelegationTest(TenancyCase):
    """nobody is the postmaster of dept-a (city -> dept-a -> ward,
    city -> dept-b). Delegated commands run inside the daemon."""

    @classmethod
    def prepare(cls):
        cls.pw, cls.skip_reason = usable_user("nobody")
        route = "smtp:127.0.0.1:%d" % cls.relay.dead_port
        ctl = cls.ctl
        ctl("tenant", "add", "city", "--name", "City")
        ctl("tenant", "add", "dept-a", "--name", "Dept A", "--parent", "city")
        ctl("tenant", "add", "dept-b", "--name", "Dept B", "--parent", "city")
        ctl("tenant", "add", "ward", "--name", "Ward", "--parent", "dept-a")
        ctl("domain", "add", "a.test", "--tenant", "dept-a", "--route", route)
        ctl("domain", "add", "ward.test", "--tenant", "ward", "--route", route)
        ctl("domain", "add", "b.test", "--tenant", "dept-b", "--route", route)
        ctl("domain", "add", "city.test", "--tenant", "city", "--route", route)
        ctl("operator", "add", "nobody", "--tenant", "dept-a", "--role", "postmaster")
        # mkdtemp makes the class folder 0700: let other users reach the
        # configuration file (and the default control_socket path beside
        # data_dir). The socket's own mode is the daemon's business.
        for d in (cls.workdir, cls.relay.dir):
            os.chmod(d, 0o755)
        os.chmod(cls.relay.conf, 0o644)

    def setUp(self):
        if self.pw is None:
            self.skipTest(self.skip_reason)

    def as_nobody(self, *args, input=None):
        return run_as(self.pw, [harness.GOVRELAYCTL, "-c", self.relay.conf] + list(args),
                      input=input)

    def test_config_readable_by_operator(self):
        r = run_as(self.pw, [harness.GOVRELAYCTL, "-c", self.relay.conf, "config", "check"])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_postmaster_allowed_in_subtree(self):
        r = self.as_nobody("mailbox", "add", "clerk@ward.test")
        self.assertEqual(r.returncode, 0, "stdout: %s\nstderr: %s" % (r.stdout, r.stderr))
        self.assertIn("clerk@ward.test", r.stdout)
        self.relay.ctl_ok("mailbox", "show", "clerk@ward.test")
        # the daemon sees it at once
        self.assertReply(rcpt_reply(self.relay, "clerk@ward.test"), 250)

        r = self.as_nobody("mailbox", "add", "head@a.test")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.as_nobody("policy", "set", "ward", "max_recipients", "7")
        self.assertEqual(r.returncode, 0, r.stderr)
        p = ctl_json(self.relay, "policy", "show", "ward")[0]["policy"]
        self.assertEqual(p["max_recipients"], {"value": 7, "source": "ward"})
        r = self.as_nobody("policy", "show", "ward", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["policy"]["max_recipients"]["value"], 7)
        r = self.as_nobody("tenant", "add", "ward-2", "--name", "Ward 2", "--parent", "dept-a")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.relay.ctl_ok("tenant", "show", "ward-2")
        # standard input travels with the command (the password)
        r = self.as_nobody("user", "add", "typist@ward.test", input="Pw-for-typist-1\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.relay.ctl_ok("user", "show", "typist@ward.test")
        # a file named by the operator is read by govrelayctl, as them
        csv_path = os.path.join(self.workdir, "ward.csv")
        with open(csv_path, "w") as f:
            f.write("a1@ward.test\na2@ward.test\n")
        os.chmod(csv_path, 0o644)
        r = self.as_nobody("mailbox", "import", csv_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.as_nobody("mailbox", "list", "--domain", "ward.test", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue({"clerk@ward.test", "a1@ward.test", "a2@ward.test"}
                        <= {m["address"] for m in parse_json_lines(r.stdout)}, r.stdout)
        # recorded as theirs, made by the daemon
        recs = [x for x in audit_records(self.relay, "--event", "admin")
                if x.get("action") == "mailbox.add" and x.get("object") == "clerk@ward.test"]
        self.assertEqual(len(recs), 1, recs)
        self.assertEqual(recs[0].get("by"), "nobody")
        self.assertEqual(recs[0].get("via"), "daemon")
        self.assertIn("ward", str(recs[0].get("tenant")).split(","), recs[0])

    def test_postmaster_refused_outside(self):
        since = last_seq(self.relay)
        cases = [
            (("mailbox", "add", "intruder@b.test"), "mailbox add", "dept-b"),
            (("mailbox", "add", "intruder@city.test"), "mailbox add", "city"),
            (("policy", "set", "dept-b", "max_recipients", "1"), "policy set", "dept-b"),
            (("policy", "set", "city", "allow_external", "no"), "policy set", "city"),
            (("domain", "add", "evil.test", "--tenant", "dept-b", "--route",
              "smtp:127.0.0.1:%d" % self.relay.dead_port), "domain add", "dept-b"),
            (("tenant", "add", "rogue", "--name", "Rogue"), "tenant add", None),
            (("tenant", "remove", "dept-a"), "tenant remove", "dept-a"),
            (("operator", "list"), "operator list", None),
        ]
        for args, command, tenant in cases:
            with self.subTest(args=args):
                r = self.as_nobody(*args)
                self.assertEqual(r.returncode, EX_NOPERM, "stdout: %s\nstderr: %s"
                                 % (r.stdout, r.stderr))
                self.assertIn("permission denied: nobody", r.stderr)
                self.assertIn(command, r.stderr)
        # nothing changed
        ctl_rc(self, self.relay, EX_NOINPUT, "mailbox", "show", "intruder@b.test")
        ctl_rc(self, self.relay, EX_NOINPUT, "mailbox", "show", "intruder@city.test")
        ctl_rc(self, self.relay, EX_NOINPUT, "domain", "show", "evil.test")
        ctl_rc(self, self.relay, EX_NOINPUT, "tenant", "show", "rogue")
        self.relay.ctl_ok("tenant", "show", "dept-a")
        p = ctl_json(self.relay, "policy", "show", "dept-b")[0]["policy"]
        self.assertNotEqual(p["max_recipients"]["source"], "dept-b")
        self.assertNotEqual(p["allow_external"]["source"], "city")
        # every refusal left an admin record
        denied = [x for x in audit_records(self.relay, "--event", "admin")
                  if int(x["seq"]) > since and x.get("action") == "denied"]
        for args, command, tenant in cases:
            with self.subTest(record=command, tenant=tenant):
                hits = [x for x in denied if x.get("command") == command
                        and x.get("by") == "nobody"
                        and (tenant is None or tenant in str(x.get("tenant")))]
                self.assertTrue(hits, "no action=denied record for %r on %s in %s"
                                % (command, tenant, json.dumps(denied, indent=1)))
                self.assertTrue(all(x.get("reason") for x in hits), hits)

    def test_non_operator_refused(self):
        pw, why = usable_user("daemon")
        if pw is None:
            self.skipTest(why)
        since = last_seq(self.relay)
        for args in (("mailbox", "list"), ("tenant", "list"),
                     ("mailbox", "add", "x@a.test")):
            with self.subTest(args=args):
                r = run_as(pw, [harness.GOVRELAYCTL, "-c", self.relay.conf] + list(args))
                self.assertEqual(r.returncode, EX_NOPERM, "stdout: %s\nstderr: %s"
                                 % (r.stdout, r.stderr))
                self.assertIn("permission denied: daemon", r.stderr)
                self.assertIn("not an operator", r.stderr)
        ctl_rc(self, self.relay, EX_NOINPUT, "mailbox", "show", "x@a.test")
        denied = [x for x in audit_records(self.relay, "--event", "admin")
                  if int(x["seq"]) > since and x.get("action") == "denied"
                  and x.get("by") == "daemon"]
        self.assertEqual(sorted(x.get("command") for x in denied),
                         ["mailbox add", "mailbox list", "tenant list"], denied)


if __name__ == "__main__":
    harness.main()
