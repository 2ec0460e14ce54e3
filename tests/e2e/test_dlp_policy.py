"""
e2e: DLP rules as tenant policy keys (issue 11, "DLP rules";
queue/tenancy.h), through govrelayctl against a running daemon:

- `policy set TENANT dlp_rule.NAME 'action=... threshold=... pattern=...'`
  stores the rule normalized; `builtin=cccd|card` turns a built-in
  matcher on; `policy show` (text and --json) lists the effective rules
  of a tenant, its ancestors' first, with the tenant that set each;
- values are validated when set, with an error naming the argument: a
  pattern that does not compile (the compiler's reason and offset), an
  unknown action, a threshold out of 1-1000, a missing pattern, an
  unknown builtin, a key name outside the family's grammar: 65, nothing
  stored;
- inheritance is additive: the ward's postmaster (uid 65534 "nobody",
  delegated over the control socket) may add rules for the ward, but
  removing the city's rule or shadowing it with a looser one of the same
  name is refused (77, naming the rule and the city) and leaves it in
  force; the refusal is in the audit chain; root's same-name attempt is
  refused too (65); the ward's own rule can be removed by its postmaster.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_tenancy import (EX_DATAERR, EX_NOINPUT, EX_NOPERM, TenancyCase,  # noqa: E402
                          ctl_json, ctl_rc, run_as, usable_user)

SECRET = "action=reject threshold=3 pattern=(?i)b\u00ed m\u1eadt nh\u00e0 n\u01b0\u1edbc"


class DlpPolicyTest(TenancyCase):
    """city -> ward; nobody is the ward's postmaster. The city has a
    pattern rule and the cccd builtin."""

    @classmethod
    def prepare(cls):
        cls.pw, cls.skip_reason = usable_user("nobody")
        ctl = cls.ctl
        ctl("tenant", "add", "city", "--name", "City")
        ctl("tenant", "add", "ward", "--name", "Ward", "--parent", "city")
        ctl("policy", "set", "city", "dlp_rule.secret",
            "threshold=3 ACTION=reject pattern=(?i)b\u00ed m\u1eadt nh\u00e0 n\u01b0\u1edbc")
        ctl("policy", "set", "city", "dlp_rule.ids", "action=quarantine builtin=cccd")
        ctl("operator", "add", "nobody", "--tenant", "ward", "--role", "postmaster")
        for d in (cls.workdir, cls.relay.dir):
            os.chmod(d, 0o755)
        os.chmod(cls.relay.conf, 0o644)

    def as_ward(self, *args):
        if self.pw is None:
            self.skipTest(self.skip_reason)
        return run_as(self.pw, [harness.GOVRELAYCTL, "-c", self.relay.conf] + list(args))

    def policy(self, tenant):
        return ctl_json(self.relay, "policy", "show", tenant)[0]["policy"]

    def assertRefused(self, r, *words):
        self.assertEqual(r.returncode, EX_NOPERM, "stdout: %s\nstderr: %s" % (r.stdout, r.stderr))
        self.assertIn("permission denied: nobody", r.stderr)
        for w in words:
            self.assertIn(w, r.stderr)

    # ---------------------------------------------------------- root

    def test_set_and_show(self):
        p = self.policy("ward")
        self.assertEqual(p["dlp_rule.secret"], {"value": SECRET, "source": "city"})
        self.assertEqual(p["dlp_rule.ids"],
                         {"value": "action=quarantine threshold=1 builtin=cccd",
                          "source": "city"})
        # the other keys are still there
        self.assertEqual(p["spf_fail_action"]["value"], "reject")
        text = self.relay.ctl_ok("policy", "show", "ward").stdout
        rows = [line.split() for line in text.splitlines()]
        self.assertIn(["dlp_rule.ids", "action=quarantine", "threshold=1", "builtin=cccd",
                       "city"], rows, text)
        self.assertIn("dlp_rule.secret", text)
        # the city's own view has them, ancestors' first order kept by name
        keys = [k for k in self.policy("city") if k.startswith("dlp_rule.")]
        self.assertEqual(keys, ["dlp_rule.ids", "dlp_rule.secret"])

    def test_bad_values_refused(self):
        cases = [
            ("dlp_rule.b1", "action=tag pattern=(abc",
             ["dlp_rule.b1", "pattern", "does not compile", "offset 4"]),
            ("dlp_rule.b2", "action=drop pattern=x", ["dlp_rule.b2", "action 'drop'"]),
            ("dlp_rule.b3", "action=tag threshold=0 pattern=x", ["threshold '0'", "1 to 1000"]),
            ("dlp_rule.b4", "action=tag threshold=1001 pattern=x", ["threshold '1001'"]),
            ("dlp_rule.b5", "action=tag threshold=2", ["pattern= or builtin= is missing"]),
            ("dlp_rule.b6", "action=tag builtin=iban", ["builtin 'iban'"]),
            ("dlp_rule.b7", "action=tag pattern=a*", ["matches empty text"]),
            ("dlp_rule.B8", "action=tag pattern=x", ["unknown policy key", "dlp_rule.NAME"]),
            ("dlp_rule.b9", "threshold=2 pattern=x", ["action= is missing"]),
        ]
        for key, value, words in cases:
            r = ctl_rc(self, self.relay, EX_DATAERR, "policy", "set", "ward", key, value)
            for w in words:
                self.assertIn(w, r.stderr, "%s %s" % (key, value))
        p = self.policy("ward")
        self.assertFalse([k for k in p if k.startswith("dlp_rule.b")], p)

    def test_root_cannot_shadow_ancestor_rule(self):
        r = ctl_rc(self, self.relay, EX_DATAERR, "policy", "set", "ward", "dlp_rule.secret",
                   "action=tag threshold=1000 pattern=x")
        self.assertIn("tenant city", r.stderr)
        self.assertEqual(self.policy("ward")["dlp_rule.secret"]["value"], SECRET)
        # unsetting at the ward is no removal of the city's rule either
        ctl_rc(self, self.relay, EX_NOINPUT, "policy", "unset", "ward", "dlp_rule.secret")
        self.assertEqual(self.policy("ward")["dlp_rule.secret"]["source"], "city")

    # ------------------------------------------------- delegated postmaster

    def test_ward_adds_rule_and_removes_its_own(self):
        r = self.as_ward("policy", "set", "ward", "dlp_rule.cards",
                         "action=quarantine threshold=2 builtin=card")
        self.assertEqual(r.returncode, 0, r.stderr)
        p = self.policy("ward")
        self.assertEqual(p["dlp_rule.cards"],
                         {"value": "action=quarantine threshold=2 builtin=card",
                          "source": "ward"})
        self.assertEqual(p["dlp_rule.secret"]["source"], "city")
        # the city does not see the ward's rule
        self.assertNotIn("dlp_rule.cards", self.policy("city"))
        # a bad pattern is refused to the postmaster as to root
        r = self.as_ward("policy", "set", "ward", "dlp_rule.x", "action=tag pattern=[z-a]")
        self.assertEqual(r.returncode, EX_DATAERR, r.stderr)
        self.assertIn("does not compile", r.stderr)
        r = self.as_ward("policy", "unset", "ward", "dlp_rule.cards")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("dlp_rule.cards", self.policy("ward"))

    def test_ward_cannot_remove_or_loosen_city_rule(self):
        r = self.as_ward("policy", "unset", "ward", "dlp_rule.secret")
        self.assertRefused(r, "policy unset", "dlp_rule.secret", "tenant city", "cannot remove")
        r = self.as_ward("policy", "set", "ward", "dlp_rule.secret",
                         "action=tag threshold=1000 pattern=nothing-matches-this")
        self.assertRefused(r, "policy set", "dlp_rule.secret", "tenant city")
        # the city's rule itself is out of the ward's reach
        r = self.as_ward("policy", "unset", "city", "dlp_rule.secret")
        self.assertEqual(r.returncode, EX_NOPERM, r.stderr)
        r = self.as_ward("policy", "set", "city", "dlp_rule.secret", "action=tag pattern=x")
        self.assertEqual(r.returncode, EX_NOPERM, r.stderr)
        # still in force, unchanged, for the ward and the city
        self.assertEqual(self.policy("ward")["dlp_rule.secret"],
                         {"value": SECRET, "source": "city"})
        self.assertEqual(self.policy("city")["dlp_rule.secret"]["value"], SECRET)
        recs = ctl_json(self.relay, "audit", "search", "--event", "admin")
        self.assertTrue([x for x in recs if x.get("action") == "denied"
                         and x.get("command") == "policy unset" and x.get("by") == "nobody"
                         and "dlp_rule.secret" in str(x.get("reason"))], recs[-5:])


if __name__ == "__main__":
    harness.main()
