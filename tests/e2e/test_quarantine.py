"""
e2e: the quarantine and the `security` operator role (issue 11), with a
real unbound on loopback serving DMARC records (as in test_dmarc.py):
mail from an Internet client (127.0.0.2) whose From: domain publishes
p=quarantine is quarantined by a real path, the `dmarc` check. The tenants
are city (city.test) -> ward (ward.test), both delivered to one sink.
Real unprivileged Unix users run govrelayctl against the running daemon:
nobody is the ward's security operator, daemon its auditor, games its
postmaster. Covered:

- a quarantined message gets 250, is not delivered (a later message to
  the same recipient is) and is not in the delivery queue (`queue list`,
  `queue show` 66); `quarantine list` (text and --json) shows id, time,
  sender, recipients, rule and reason; `quarantine show` the verdict, the
  checks' notes and the header section; the `received` and `quarantined`
  audit records name the rule and reason;
- the ward's security operator sees only the ward's quarantine (a city
  message is absent from its list, `show` of it is refused 77), sees a
  message with a city and a ward recipient narrowed to the ward's
  recipient, and may not release or delete the city's message nor the
  mixed one (77, audited as action=denied by=nobody); it may release a
  ward message (delivered to the sink) and delete another (gone);
- the ward's auditor may list and show, not release or delete (77);
  the ward's postmaster has no access to the quarantine (77);
- root releases a city message (delivered at once: govrelayctl wakes the
  daemon's scheduler) and deletes another (gone, `show` 66);
- every action (show, release, delete) is an audit record naming the
  operator (by=, via=, qid=).

Skipped (saying why) where the Unix users cannot run govrelayctl here.
"""
import json
import os
import signal
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import RelayTestCase, parse_json_lines, queued_id  # noqa: E402
from test_tenancy import EX_NOINPUT, EX_NOPERM, run_as, usable_user  # noqa: E402

CLIENT = "127.0.0.2"


class QuarantineTest(RelayTestCase):
    relay_options = {"trusted_networks": "127.0.0.1/32"}
    start_relay = False

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
        txt = [("_dmarc.quarantine.org", "v=DMARC1; p=quarantine"),
               ("_dmarc.none.org", "v=DMARC1; p=none")]
        cls.unbound = harness.Unbound(cls.workdir, [], [], txt=txt).start()
        ctl = cls.relay.ctl_ok
        ctl("tenant", "add", "city", "--name", "City")
        ctl("tenant", "add", "ward", "--name", "Ward", "--parent", "city")
        ctl("domain", "add", "city.test", "--tenant", "city", "--route", cls.sink.route,
            "--accept-all")
        ctl("domain", "add", "ward.test", "--tenant", "ward", "--route", cls.sink.route,
            "--accept-all")
        cls.users = {}
        cls.skip_reason = None
        for name, role in (("nobody", "security"), ("daemon", "auditor"),
                           ("games", "postmaster")):
            pw, why = usable_user(name)
            if pw is None:
                cls.skip_reason = why
                continue
            ctl("operator", "add", name, "--tenant", "ward", "--role", role)
            cls.users[role] = pw
        for d in (cls.workdir, cls.relay.dir):
            os.chmod(d, 0o755)
        os.chmod(cls.relay.conf, 0o644)
        cls.relay.configure(dmarc="yes", dns_server="127.0.0.1:%d" % cls.unbound.port)
        cls.relay.start()

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "unbound", None) is not None:
            cls.unbound.stop()
        super().tearDownClass()

    # ------------------------------------------------------------ helpers

    def send(self, from_domain, rcpts, marker):
        """One message from the Internet client, From: a@FROM_DOMAIN; the reply."""
        data = ("From: Sender <a@%s>\r\nTo: <%s>\r\nSubject: %s\r\n"
                "Message-ID: <%s@client.example>\r\n\r\n%s body\r\n"
                % (from_domain, rcpts[0], marker, marker, marker)).encode()
        c = harness.RawSMTP(self.relay.ports["mx"], source=CLIENT)
        try:
            c.ehlo("client.example.org")
            return c.send_message("x@elsewhere.org", rcpts, data, ehlo=False)
        finally:
            c.close()

    def quarantine(self, rcpts, marker):
        """A message quarantined by the dmarc check; its queue id."""
        r = self.send("quarantine.org", rcpts, marker)
        self.assertEqual(r.code, 250, r.lines)
        return queued_id(r)

    def need(self, role):
        if role not in self.users:
            self.skipTest(self.skip_reason or "no user for role %s" % role)
        return self.users[role]

    def as_role(self, role, *args):
        return run_as(self.need(role), [harness.GOVRELAYCTL, "-c", self.relay.conf]
                      + list(args))

    def listed(self, role=None):
        """{id: object} of `quarantine list --json`, as root or as ROLE."""
        if role is None:
            r = self.relay.ctl_ok("quarantine", "list", "--json")
        else:
            r = self.as_role(role, "quarantine", "list", "--json")
            self.assertEqual(r.returncode, 0, r.stderr)
        return {x["id"]: x for x in parse_json_lines(r.stdout)}

    def records(self, *filters):
        r = self.relay.ctl_ok("audit", "search", *(filters + ("--json",)))
        return parse_json_lines(r.stdout)

    def assertRefused(self, r, user, *words):
        self.assertEqual(r.returncode, EX_NOPERM, "stdout: %s\nstderr: %s" % (r.stdout, r.stderr))
        self.assertIn("permission denied: %s" % user, r.stderr)
        for w in words:
            self.assertIn(w, r.stderr)

    def assertDenied(self, user, command, qid=None):
        recs = self.records("--event", "admin")
        hits = [x for x in recs if x.get("action") == "denied" and x.get("by") == user
                and x.get("command") == command and (qid is None or qid in json.dumps(x))]
        self.assertTrue(hits, recs[-5:])

    def assertAction(self, qid, action, by, via):
        recs = self.records("--queue-id", qid, "--event", "admin")
        hits = [x for x in recs if x.get("action") == action and x.get("by") == by
                and x.get("via") == via and x.get("rule") == "dmarc"]
        self.assertEqual(len(hits), 1, recs)

    # -------------------------------------------------------------- tests

    def test_quarantined_not_delivered_listed(self):
        rcpt = "clerk@ward.test"
        qid = self.quarantine([rcpt], "q-kept")
        # Out of the delivery queue altogether.
        self.assertNotIn(qid, self.relay.queue_ids())
        self.assertEqual(self.relay.ctl("queue", "show", qid).returncode, EX_NOINPUT)
        # Not delivered: a later message to the same recipient is, the
        # quarantined one is not (the scheduler had every chance).
        r = self.send("none.org", [rcpt], "q-after")
        self.assertEqual(r.code, 250, r.lines)
        self.sink.find(b"q-after body")
        self.assertEqual(self.sink.count(b"q-kept body"), 0)
        # Listed, with the verdict.
        q = self.listed()[qid]
        self.assertEqual(q["sender"], "x@elsewhere.org")
        self.assertEqual(q["recipients"], [rcpt])
        self.assertEqual(q["rule"], "dmarc")
        self.assertEqual(q["reason"], "DMARC policy of quarantine.org says quarantine")
        self.assertRegex(q["time"], r"^\d{4}-\d\d-\d\dT")
        text = self.relay.ctl_ok("quarantine", "list").stdout
        self.assertRegex(text, r"(?m)^ID +QUARANTINED +SENDER +RECIPIENTS +RULE +REASON$")
        self.assertRegex(text, r"(?m)^%s +\S+ +x@elsewhere\.org +clerk@ward\.test +dmarc +"
                         r"DMARC policy of quarantine\.org says quarantine$" % qid)
        # Shown: the verdict, the notes and the header section.
        shown = json.loads(self.relay.ctl_ok("quarantine", "show", qid, "--json").stdout)
        self.assertEqual(shown["rule"], "dmarc")
        self.assertIn("dmarc=fail", shown["notes"])
        self.assertIn("header_from=quarantine.org", shown["notes"])
        self.assertEqual(shown["tenants"], "ward")
        self.assertIn("Subject: q-kept\r\n", shown["header"])
        self.assertIn("Received: ", shown["header"])
        self.assertNotIn("q-kept body", shown["header"])
        text = self.relay.ctl_ok("quarantine", "show", qid).stdout
        self.assertIn("rule: dmarc", text)
        self.assertIn("note: dmarc=fail", text)
        self.assertRegex(text, r"(?m)^header:\n(  .*\n)*  Subject: q-kept\n")
        # Recorded: received, then quarantined with the rule and reason.
        recs = self.records("--queue-id", qid)
        self.assertEqual([x["event"] for x in recs if x["event"] != "admin"],
                         ["received", "quarantined"], recs)
        recs = [x for x in recs if x["event"] != "admin"]
        self.assertEqual(recs[1]["rule"], "dmarc")
        self.assertEqual(recs[1]["reason"], "DMARC policy of quarantine.org says quarantine")
        self.assertEqual(recs[1]["tenant"], "ward")
        self.assertEqual(self.relay.ctl("quarantine", "show", "0" * 16).returncode, EX_NOINPUT)
        # Who looked is recorded: each show, before the header is printed.
        shows = [x for x in self.records("--queue-id", qid, "--event", "admin")
                 if x.get("action") == "quarantine.show"]
        self.assertEqual(len(shows), 2, shows)
        self.assertTrue(all(x["via"] == "cli" and x["rule"] == "dmarc" for x in shows), shows)

    def test_security_sees_and_acts_on_its_subtree_only(self):
        self.need("security")
        ward = self.quarantine(["w1@ward.test"], "s-ward")
        ward2 = self.quarantine(["w2@ward.test"], "s-ward2")
        city = self.quarantine(["mayor@city.test"], "s-city")
        mixed = self.quarantine(["w3@ward.test", "deputy@city.test"], "s-mixed")
        seen = self.listed("security")
        self.assertIn(ward, seen)
        self.assertIn(ward2, seen)
        self.assertNotIn(city, seen)
        # Another agency's recipients are not shown to the ward.
        self.assertEqual(seen[mixed]["recipients"], ["w3@ward.test"])
        r = self.as_role("security", "quarantine", "show", city)
        self.assertRefused(r, "nobody", "tenant ward")
        for verb in ("release", "delete"):
            r = self.as_role("security", "quarantine", verb, city)
            self.assertRefused(r, "nobody", city)
            self.assertDenied("nobody", "quarantine " + verb, city)
            r = self.as_role("security", "quarantine", verb, mixed)
            self.assertRefused(r, "nobody", "outside tenant ward")
        # Nothing happened to them.
        self.assertIn(city, self.listed())
        self.assertIn(mixed, self.listed())
        # Its own: released (delivered) and deleted (gone).
        r = self.as_role("security", "quarantine", "release", ward)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.sink.find(b"s-ward body")
        self.assertAction(ward, "quarantine.release", "nobody", "daemon")
        r = self.as_role("security", "quarantine", "delete", ward2)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(ward2, self.listed())
        self.assertEqual(self.relay.ctl("quarantine", "show", ward2).returncode, EX_NOINPUT)
        self.assertAction(ward2, "quarantine.delete", "nobody", "daemon")
        # Released is released: not in the quarantine, not twice.
        r = self.as_role("security", "quarantine", "release", ward)
        self.assertEqual(r.returncode, EX_NOINPUT, r.stderr)
        # A security operator is no postmaster.
        r = self.as_role("security", "queue", "list")
        self.assertRefused(r, "nobody", "quarantined messages")

    def test_auditor_reads_only(self):
        self.need("auditor")
        ward = self.quarantine(["a1@ward.test"], "a-ward")
        city = self.quarantine(["a2@city.test"], "a-city")
        seen = self.listed("auditor")
        self.assertIn(ward, seen)
        self.assertNotIn(city, seen)
        # Who listed is recorded too, not only who showed.
        self.assertTrue([x for x in self.records("--event", "admin")
                         if x.get("action") == "quarantine.list" and x.get("by") == "daemon"
                         and x.get("via") == "daemon"])
        r = self.as_role("auditor", "quarantine", "show", ward, "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Subject: a-ward", json.loads(r.stdout)["header"])
        self.assertAction(ward, "quarantine.show", "daemon", "daemon")
        for verb in ("release", "delete"):
            r = self.as_role("auditor", "quarantine", verb, ward)
            self.assertRefused(r, "daemon", "only security operators")
            self.assertDenied("daemon", "quarantine " + verb)
        self.assertIn(ward, self.listed())
        self.assertEqual(self.sink.count(b"a-ward body"), 0)

    def test_postmaster_has_no_access(self):
        self.need("postmaster")
        ward = self.quarantine(["p1@ward.test"], "p-ward")
        for args in (("list",), ("show", ward), ("release", ward), ("delete", ward)):
            r = self.as_role("postmaster", "quarantine", *args)
            self.assertRefused(r, "games")
        self.assertIn(ward, self.listed())

    def test_root_releases_and_deletes(self):
        city = self.quarantine(["clerk@city.test"], "r-city")
        city2 = self.quarantine(["clerk2@city.test"], "r-city2")
        r = self.relay.ctl_ok("quarantine", "release", city)
        self.assertIn("released", r.stdout)
        msg = self.sink.find(b"r-city body")
        self.assertIn(b"Subject: r-city", msg.raw)
        self.relay.wait_gone(city)
        self.assertNotIn(city, self.listed())
        r = self.relay.ctl_ok("quarantine", "delete", city2, "--json")
        self.assertEqual(json.loads(r.stdout)["result"], "deleted")
        self.assertNotIn(city2, self.listed())
        self.assertEqual(self.relay.ctl("quarantine", "show", city2).returncode, EX_NOINPUT)
        self.assertEqual(self.relay.ctl("quarantine", "delete", city2).returncode, EX_NOINPUT)
        self.assertEqual(self.sink.count(b"r-city2 body"), 0)
        root = [x for x in self.records("--queue-id", city, "--event", "admin")]
        self.assertEqual(len(root), 1, root)
        self.assertEqual(root[0]["action"], "quarantine.release")
        self.assertEqual(root[0]["via"], "cli")
        self.assertAction(city2, "quarantine.delete", root[0]["by"], "cli")
        # Released mail is delivered and recorded as any other.
        recs = self.records("--queue-id", city)
        self.assertEqual([x["event"] for x in recs if x["event"] != "admin"],
                         ["received", "quarantined", "delivered"], recs)
        self.assertEqual(self.relay.ctl("quarantine", "release", "xyz").returncode, 65)

    def test_stats_count_the_quarantine(self):
        self.quarantine(["clerk@ward.test"], "s-count")
        stats = json.loads(self.relay.ctl_ok("stats", "--json").stdout)
        self.assertGreaterEqual(stats["quarantined_messages"], 1)
        self.assertEqual(stats["quarantined_messages"], len(self.listed()))
        self.assertIn("quarantined:", self.relay.ctl_ok("stats").stdout)
        # The quarantine is the security team's: a postmaster is told nothing of it.
        r = self.as_role("postmaster", "stats", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNone(json.loads(r.stdout)["quarantined_messages"])

    def reloads(self):
        with open(self.relay.logfile, "rb") as f:
            return f.read().count(b"reloaded configuration")

    def reload(self, **keys):
        n = self.reloads()
        self.relay.configure(**keys)
        self.relay.proc.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: self.reloads() > n, timeout=10, what="reload")

    def test_kept_past_its_lifetime_expires(self):
        qid = self.quarantine(["clerk@city.test"], "e-old")
        # A reload shortens quarantine_lifetime: the message goes, audited.
        self.reload(quarantine_lifetime="2s")
        try:
            harness.wait_for(lambda: qid not in self.listed(), timeout=30,
                             what="quarantined message expired")
        finally:
            # Back to the default (30 days) for the other tests, which
            # check that their messages stay.
            self.reload(quarantine_lifetime=None)
        self.assertAction(qid, "quarantine.expire", "govrelayd", "retention")
        self.assertEqual(self.relay.ctl("quarantine", "show", qid).returncode, EX_NOINPUT)
        self.assertEqual(self.sink.count(b"e-old body"), 0)
        recs = self.records("--queue-id", qid)
        self.assertEqual([x["event"] for x in recs], ["received", "quarantined", "admin"], recs)
        # Earlier tests' messages may go in the same look.
        with open(self.relay.logfile, "rb") as f:
            self.assertRegex(f.read(), rb"quarantine retention: deleted [0-9]+ messages? kept "
                             rb"2 s or longer")


if __name__ == "__main__":
    import unittest
    unittest.main()
