"""
e2e: `govrelayctl policy explain FILE --from A --to B[,C] [--tenant T]`
against the running daemon: every check of its table runs on the message,
on the daemon's own policy engine, nothing is queued, and each rule's
verdict is printed with its reason. Covered:

- a user of ours (clerk@ward.test, so the submission as that user) to a
  domain outside the city while the city forbids external mail: the
  tenant rule refuses the recipient (550 5.7.1), named in the line;
- a message with two From: fields from outside: the headers rule refuses
  it at DATA (550 5.6.0);
- a clean message from outside to the ward: every rule continues or
  accepts, every stage's reply accepts; nothing is queued and no audit
  record is written (a read-only command);
- --json: one object per line per rule with stage, rule, verdict, code,
  enh, text;
- a delegated postmaster (nobody, postmaster of the ward, through
  runuser-like uid switching): explaining mail to the ward works; to the
  city, with --tenant city, or from a user of the city (whatever
  --tenant says), is refused (77, audited);
- the file missing: 66 naming it; the daemon down: 69 saying the command
  needs it.
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import parse_json_lines  # noqa: E402
from test_tenancy import (EX_NOINPUT, EX_NOPERM, TenancyCase, audit_records,  # noqa: E402
                          last_seq, run_as, usable_user)

EX_UNAVAILABLE = 69

CLEAN = ("From: Someone <someone@example.org>\n"
         "To: <a@ward.test>\n"
         "Subject: hello\n"
         "Date: Sat, 05 Dec 2026 04:00:00 +0000\n"
         "Message-ID: <clean@example.org>\n"
         "\n"
         "Just a plain note.\n")

TWO_FROM = ("From: <someone@example.org>\n"
            "From: <mayor@mayor.test>\n"
            "To: <x@mayor.test>\n"
            "Subject: which one?\n"
            "\n"
            "Two authors.\n")

# A civil servant's report, stamped as a state secret in its first lines.
CLASSIFIED = ("From: Clerk <clerk@ward.test>\n"
              "To: <mayor@mayor.test>\n"
              "Subject: Bao cao\n"
              "Content-Type: text/plain; charset=utf-8\n"
              "\n"
              "UBND PHƯỜNG\n"
              "TỐI MẬT\n"
              "Kính gửi: Chủ tịch\n")

FROM_CLERK = ("From: Clerk <clerk@ward.test>\n"
              "To: <friend@example.org>\n"
              "Subject: outside\n"
              "\n"
              "To a friend outside the city.\n")


def rule_rows(rows, stage):
    return [r for r in rows if r["stage"] == stage and r["rule"] != "(reply)"]


def reply_rows(rows, stage):
    return [r for r in rows if r["stage"] == stage and r["rule"] == "(reply)"]


class ExplainTest(TenancyCase):
    """city (mayor.test, no external mail) -> ward (ward.test); clerk is
    a user of the ward; nobody is the ward's postmaster."""

    @classmethod
    def prepare(cls):
        cls.pw, cls.skip_reason = usable_user("nobody")
        dead = "smtp:127.0.0.1:%d" % cls.relay.dead_port
        ctl = cls.ctl
        ctl("tenant", "add", "city", "--name", "City")
        ctl("tenant", "add", "ward", "--name", "Ward", "--parent", "city")
        ctl("domain", "add", "mayor.test", "--tenant", "city", "--route", dead, "--accept-all")
        ctl("domain", "add", "ward.test", "--tenant", "ward", "--route", dead, "--accept-all")
        ctl("policy", "set", "city", "allow_external", "no")
        ctl("user", "add", "clerk@ward.test", input="Clerk-pw-1\n")
        ctl("user", "add", "mayor@mayor.test", input="Mayor-pw-1\n")
        ctl("operator", "add", "nobody", "--tenant", "ward", "--role", "postmaster")
        cls.files = {}
        for name, text in (("clean", CLEAN), ("two_from", TWO_FROM), ("clerk", FROM_CLERK),
                           ("classified", CLASSIFIED)):
            path = os.path.join(cls.workdir, name + ".eml")
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            os.chmod(path, 0o644)
            cls.files[name] = path
        for d in (cls.workdir, cls.relay.dir):
            os.chmod(d, 0o755)
        os.chmod(cls.relay.conf, 0o644)

    def explain(self, name, mail_from, to, *extra):
        return self.relay.ctl("policy", "explain", self.files[name], "--from", mail_from,
                              "--to", to, *extra)

    def explain_json(self, name, mail_from, to, *extra):
        r = self.explain(name, mail_from, to, "--json", *extra)
        self.assertEqual(r.returncode, 0, "stdout: %s\nstderr: %s" % (r.stdout, r.stderr))
        rows = parse_json_lines(r.stdout)
        for row in rows:
            for key in ("stage", "rule", "verdict", "code", "enh", "text"):
                self.assertIn(key, row, row)
        return rows

    def test_user_to_outside_refused_by_tenant(self):
        rows = self.explain_json("clerk", "clerk@ward.test", "friend@example.org")
        refused = [r for r in rule_rows(rows, "rcpt") if r["verdict"] == "reject"]
        self.assertEqual(len(refused), 1, rows)
        self.assertEqual(refused[0]["rule"], "tenant/allow-external")
        self.assertEqual(refused[0]["code"], 550)
        self.assertEqual(refused[0]["enh"], "5.7.1")
        self.assertIn("outside the city", refused[0]["text"])
        self.assertEqual(refused[0]["rcpt"], "friend@example.org")
        reply = reply_rows(rows, "rcpt")
        self.assertEqual([(r["verdict"], r["code"]) for r in reply], [("reject", 550)])
        # The submission as the clerk: MAIL passes their own address.
        self.assertEqual([r["verdict"] for r in reply_rows(rows, "mail")], ["continue"])
        # The text form names the rule and the code on one line.
        t = self.explain("clerk", "clerk@ward.test", "friend@example.org")
        self.assertEqual(t.returncode, 0, t.stderr)
        self.assertIn("submitted by our user", t.stdout)
        line = [l for l in t.stdout.splitlines() if "tenant/allow-external" in l]
        self.assertEqual(len(line), 1, t.stdout)
        self.assertIn("550", line[0])
        self.assertIn("5.7.1", line[0])
        self.assertIn("reject", line[0])

    def test_two_from_fields_refused_by_headers(self):
        rows = self.explain_json("two_from", "someone@example.org", "x@mayor.test")
        data = rule_rows(rows, "data")
        headers = [r for r in data if r["rule"].split("/")[0] == "headers"]
        self.assertEqual(len(headers), 1, rows)
        self.assertEqual(headers[0]["verdict"], "reject")
        self.assertEqual(headers[0]["code"], 550)
        self.assertEqual(headers[0]["enh"], "5.6.0")
        # Every rule of the stage ran: the tenant row before it and the
        # signer after it are reported too.
        names = [r["rule"].split("/")[0] for r in data]
        self.assertIn("tenant", names)
        self.assertIn("dkim_sign", names)
        self.assertLess(names.index("tenant"), names.index("headers"))
        self.assertEqual([(r["verdict"], r["code"]) for r in reply_rows(rows, "data")],
                         [("reject", 550)])

    def test_classified_says_where(self):
        # "Why was my mail refused?": the content rule, its code, and the
        # level and where it was found among the notes.
        rows = self.explain_json("classified", "clerk@ward.test", "mayor@mayor.test")
        content = [r for r in rule_rows(rows, "data") if r["rule"] == "content/classified"]
        self.assertEqual(len(content), 1, rows)
        self.assertEqual((content[0]["verdict"], content[0]["code"], content[0]["enh"]),
                         ("reject", 550, "5.7.1"))
        self.assertIn("TOI MAT", content[0]["text"])
        notes = " ".join(r["text"] for r in rows if r["stage"] == "note")
        self.assertIn("classified=toi-mat", notes)
        self.assertIn("classified_where=text", notes)
        # Explained, not refused: no classified record, no notice queued.
        self.assertEqual(self.relay.queue_ids(), [])

    def test_clean_message_every_rule_passes(self):
        before = last_seq(self.relay)
        rows = self.explain_json("clean", "someone@example.org", "a@ward.test,b@ward.test")
        for stage in ("mail", "rcpt", "data"):
            self.assertTrue(rule_rows(rows, stage), "no %s rules in %s" % (stage, rows))
        for r in rows:
            if r["stage"] in ("note", "header"):
                continue
            self.assertIn(r["verdict"], ("continue", "accept"), r)
            self.assertEqual(r["code"], 0, r)
        # One reply per recipient, in order.
        self.assertEqual([r["rcpt"] for r in reply_rows(rows, "rcpt")],
                         ["a@ward.test", "b@ward.test"])
        # Nothing queued, nothing recorded (explain is read-only).
        self.assertEqual(self.relay.queue_ids(), [])
        self.assertEqual(last_seq(self.relay), before)

    def test_missing_file(self):
        missing = os.path.join(self.workdir, "no-such.eml")
        r = self.relay.ctl("policy", "explain", missing, "--from", "a@example.org",
                           "--to", "a@ward.test")
        self.assertEqual(r.returncode, EX_NOINPUT, r.stderr)
        self.assertIn(missing, r.stderr)

    def test_bad_address(self):
        r = self.explain("clean", "not an address", "a@ward.test")
        self.assertEqual(r.returncode, 65, r.stderr)
        self.assertIn("--from", r.stderr)

    # ------------------------------------------------------- delegation

    def as_ward(self, *args):
        return run_as(self.pw, [harness.GOVRELAYCTL, "-c", self.relay.conf] + list(args))

    def test_postmaster_own_ward(self):
        if self.pw is None:
            self.skipTest(self.skip_reason)
        r = self.as_ward("policy", "explain", self.files["clean"], "--from",
                         "someone@example.org", "--to", "a@ward.test", "--json")
        self.assertEqual(r.returncode, 0, "stdout: %s\nstderr: %s" % (r.stdout, r.stderr))
        rows = parse_json_lines(r.stdout)
        self.assertTrue(rule_rows(rows, "data"), rows)

    def test_postmaster_not_for_the_city(self):
        if self.pw is None:
            self.skipTest(self.skip_reason)
        before = last_seq(self.relay)
        cases = (["--from", "someone@example.org", "--to", "x@mayor.test"],
                 ["--from", "someone@example.org", "--to", "a@ward.test", "--tenant", "city"],
                 # As the city's user, whatever --tenant says.
                 ["--from", "mayor@mayor.test", "--to", "a@ward.test", "--tenant", "ward"])
        for extra in cases:
            r = self.as_ward("policy", "explain", self.files["clean"], *extra)
            self.assertEqual(r.returncode, EX_NOPERM, "%s\nstdout: %s\nstderr: %s"
                             % (extra, r.stdout, r.stderr))
            self.assertIn("permission denied: nobody", r.stderr)
            self.assertIn("city", r.stderr)
            self.assertEqual(r.stdout, "")
        denied = [x for x in audit_records(self.relay, "--event", "admin")
                  if int(x["seq"]) > before]
        self.assertEqual(len(denied), 3, denied)
        for rec in denied:
            self.assertIn("denied", str(rec))
            self.assertIn("policy explain", str(rec))


class ExplainDaemonDownTest(TenancyCase):
    """Without govrelayd there is no policy engine to ask: 69."""
    run_daemon = False

    @classmethod
    def prepare(cls):
        cls.path = os.path.join(cls.workdir, "m.eml")
        with open(cls.path, "w") as f:
            f.write(CLEAN)

    def test_daemon_down(self):
        r = self.relay.ctl("policy", "explain", self.path, "--from", "a@example.org",
                           "--to", "b@example.org")
        self.assertEqual(r.returncode, EX_UNAVAILABLE, r.stderr)
        self.assertIn("cannot reach govrelayd", r.stderr)
        self.assertIn("policy explain runs the checks inside the daemon", r.stderr)
        self.assertEqual(r.stdout, "")


if __name__ == "__main__":
    harness.main()
