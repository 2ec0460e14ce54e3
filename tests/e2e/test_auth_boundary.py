"""
e2e: AUTH and recipient probing as trust boundaries (issue 9), against the
real govrelayd on loopback. Covered:

- a lockout expires: after auth_max_failures wrong passwords the right one
  fails (535 5.7.8, `user show` says locked_out), attempts during the
  lockout do not prolong it, and once auth_lockout_time has passed the
  right password works again and the count is back to 0;
- one reply for an unknown user, an admin-locked user, a locked-out user,
  a wrong password and an authzid naming another user: the same code and
  text, byte for byte; and the same work: the medians of repeated
  attempts are within a generous factor of each other (scrypt dominates,
  so a skipped hash would show as a factor of ten or more). The audit
  trail still tells the security team which it was;
- a session is closed after auth_session_failures failed AUTH attempts:
  535, then 421 4.7.0 and the end of the connection;
- an authzid different from the authentication identity is 535 5.7.8,
  even with the right password; an authzid equal to it is accepted;
- RCPT probing from an untrusted client: refusals count as errors, the
  replies past rcpt_error_soft_limit come later and later (lower bounds
  only: a timer never fires early), the session ends with 421 4.7.0 at
  max_bad_commands; meanwhile another session is served at once (the
  wait is a timer, not a sleep); a trusted client is neither delayed nor
  cut off.
"""
import base64
import json
import os
import socket
import statistics
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Closed, RawSMTP, RelayTestCase, client_tls_context, parse_json_lines  # noqa: E402

LOCKOUT_S = 3
MAX_FAILURES = 3
SESSION_FAILURES = 3
SOFT_LIMIT = 2
DELAY_MS = 400
DELAY_MAX_MS = 1600
MAX_BAD = 5
UNTRUSTED = "127.0.0.2"
SAMPLES = 5

PASSWORDS = {
    "alice@sub.test": "Alice-Secret-1",
    "expiry@sub.test": "Expiry-Secret-2",
    "admlocked@sub.test": "Locked-Secret-3",
    "session@sub.test": "Session-Secret-4",
}
# one user per wrong-password sample, so none of them reaches the lockout
WRONG_USERS = ["wrong%d@sub.test" % i for i in range(SAMPLES)]
for _u in WRONG_USERS:
    PASSWORDS[_u] = "Wrong-Secret-" + _u

INVALID = "535 5.7.8 Authentication credentials invalid"


def b64(s):
    return base64.b64encode(s.encode()).decode()


def plain(authcid, password, authzid=""):
    return "AUTH PLAIN " + b64("%s\0%s\0%s" % (authzid, authcid, password))


class AuthBoundaryTest(RelayTestCase):
    relay_options = {
        "tls": True,
        "listeners": ("mx", "submissions"),
        "trusted_networks": "127.0.0.1/32",
        "auth_failure_delay": "0s",       # the work alone is what is timed
        "auth_max_failures": str(MAX_FAILURES),
        "auth_lockout_time": "%ds" % LOCKOUT_S,
        "auth_session_failures": str(SESSION_FAILURES),
        # many failures from 127.0.0.1: keep the per-address throttle away
        "auth_ip_max_failures": "1000",
        "rcpt_error_soft_limit": str(SOFT_LIMIT),
        "rcpt_error_delay": "%dms" % DELAY_MS,
        "rcpt_error_delay_max": "%dms" % DELAY_MAX_MS,
        "max_bad_commands": str(MAX_BAD),
    }
    with_sink = False
    dead_domain = None
    start_relay = False

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            ctl = cls.relay.ctl_ok
            ctl("tenant", "add", "city", "--name", "City")
            ctl("domain", "add", "sub.test", "--tenant", "city", "--route",
                "smtp:127.0.0.1:%d" % cls.relay.dead_port)
            ctl("domain", "add", "strict.test", "--tenant", "city", "--route",
                "smtp:127.0.0.1:%d" % cls.relay.dead_port)
            ctl("mailbox", "add", "known@strict.test")
            for user, pw in PASSWORDS.items():
                ctl("user", "add", user, input=pw + "\n")
            ctl("user", "lock", "admlocked@sub.test")
            cls.relay.start()
        except BaseException:
            cls._cleanup_class()
            raise

    # ------------------------------------------------------------ helpers

    def session(self):
        c = RawSMTP(self.relay.ports["submissions"], implicit_tls=client_tls_context(),
                    timeout=20.0)
        self.addCleanup(c.close)
        c.ehlo()
        return c

    def attempt(self, user, password, authzid=""):
        """One AUTH PLAIN in a fresh session: (reply line, seconds)."""
        c = self.session()
        t0 = time.monotonic()
        r = c.cmd(plain(user, password, authzid))
        dt = time.monotonic() - t0
        c.close()
        return r.last, dt

    def user_show(self, user):
        return json.loads(self.relay.ctl_ok("user", "show", user, "--json").stdout)

    def auth_records(self, user):
        recs = parse_json_lines(self.relay.ctl_ok("audit", "search", "--event", "auth",
                                                  "--json").stdout)
        return [r for r in recs if user in json.dumps(r)]

    def wait_records(self, user, n, deadline=10.0):
        end = time.monotonic() + deadline
        while True:
            recs = self.auth_records(user)
            if len(recs) >= n or time.monotonic() > end:
                return recs
            time.sleep(0.05)

    # ------------------------------------------------------------ AUTH

    def test_lockout_expires(self):
        user = "expiry@sub.test"
        for i in range(MAX_FAILURES):
            line, _ = self.attempt(user, "bad-guess-%d" % i)
            self.assertEqual(line, INVALID, "attempt %d" % (i + 1))
        locked_at = time.monotonic()
        u = self.user_show(user)
        self.assertIs(u["locked_out"], True, u)
        # locked out: the right password gets the very same reply
        line, _ = self.attempt(user, PASSWORDS[user])
        self.assertEqual(line, INVALID)
        # keep trying (each attempt during the lockout must not prolong it)
        # until the lockout is over; a deadline, not a fixed sleep
        deadline = locked_at + LOCKOUT_S + 15
        while True:
            line, _ = self.attempt(user, PASSWORDS[user])
            if line.startswith("235"):
                break
            self.assertEqual(line, INVALID)
            self.assertLess(time.monotonic(), deadline, "the lockout never expired")
            time.sleep(0.2)
        waited = time.monotonic() - locked_at
        self.assertGreaterEqual(waited, LOCKOUT_S - 0.5,
                                "unlocked after %.2fs, before auth_lockout_time" % waited)
        self.assertLess(waited, LOCKOUT_S + 10,
                        "attempts during the lockout prolonged it (%.2fs)" % waited)
        u = self.user_show(user)
        self.assertIs(u["locked_out"], False, u)
        self.assertEqual(u["failures"], 0, u)
        # a fresh count: one more wrong password does not lock again
        line, _ = self.attempt(user, "one-more-miss")
        self.assertEqual(line, INVALID)
        line, _ = self.attempt(user, PASSWORDS[user])
        self.assertTrue(line.startswith("235 2.7.0"), line)
        recs = self.wait_records(user, MAX_FAILURES + 4)
        results = [r.get("result") for r in recs]
        self.assertIn("locked", results, recs)
        self.assertIn("success", results, recs)

    def test_identical_replies_and_work(self):
        # a locked-out user too (three misses). auth_lockout_time is short:
        # its attempts use a wrong password, so one made after the lockout
        # ran out is a plain failure (and soon locks it again), never a 235
        lo = "session@sub.test"
        kinds = {"wrong": [], "unknown": [], "admin-locked": [], "locked-out": [],
                 "authzid": []}
        replies = {}
        for i in range(SAMPLES):
            for kind in kinds:
                if kind == "wrong":
                    line, dt = self.attempt(WRONG_USERS[i], "not-the-password")
                elif kind == "unknown":
                    line, dt = self.attempt("ghost%d@sub.test" % i, "whatever")
                elif kind == "admin-locked":
                    line, dt = self.attempt("admlocked@sub.test", PASSWORDS["admlocked@sub.test"])
                elif kind == "locked-out":
                    if i == 0:
                        for j in range(MAX_FAILURES):
                            self.attempt(lo, "miss-%d" % j)
                        self.assertIs(self.user_show(lo)["locked_out"], True)
                    line, dt = self.attempt(lo, "still-wrong")
                else:
                    line, dt = self.attempt("alice@sub.test", PASSWORDS["alice@sub.test"],
                                            authzid="boss@sub.test")
                kinds[kind].append(dt)
                replies.setdefault(kind, set()).add(line)
        for kind, lines in replies.items():
            self.assertEqual(lines, {INVALID}, "%s: %r" % (kind, lines))
        medians = {k: statistics.median(v) for k, v in kinds.items()}
        sys.stderr.write("\nAUTH failure medians (s): %s\n"
                         % ", ".join("%s %.3f" % kv for kv in sorted(medians.items())))
        lo_m, hi_m = min(medians.values()), max(medians.values())
        # scrypt at cost 15 takes tens of milliseconds; a path that skips
        # it answers in about one. A factor of 3 tolerates a loaded machine.
        self.assertLess(hi_m, 3 * lo_m + 0.02, "medians differ: %r" % medians)
        # the security team still learns the truth from the audit trail
        self.assertIn("unknown-user", [r.get("result") for r in self.wait_records("ghost0@", 1)])
        self.assertIn("locked", [r.get("result") for r in self.wait_records("admlocked@", 1)])
        self.assertIn("failure", [r.get("result") for r in self.wait_records(WRONG_USERS[0], 1)])
        log = self.relay.log()
        self.assertNotIn("not-the-password", log)
        self.assertNotIn(PASSWORDS["admlocked@sub.test"], log)

    def test_session_closed_after_failures(self):
        c = self.session()
        for i in range(SESSION_FAILURES - 1):
            self.assertEqual(c.cmd(plain("ghost@sub.test", "guess-%d" % i)).last, INVALID)
        self.assertEqual(c.cmd(plain("ghost@sub.test", "last-guess")).last, INVALID)
        r = c.reply()
        self.assertEqual(r.code, 421, r.lines)
        self.assertTrue(r.last.startswith("421 4.7.0"), r.lines)
        self.assertTrue(c.wait_closed(), "the session stayed open after the failures")
        self.relay.wait_log(r"event=too_many_auth_failures")
        # a new session may try again (and the right password works)
        line, _ = self.attempt("alice@sub.test", PASSWORDS["alice@sub.test"])
        self.assertTrue(line.startswith("235"), line)

    def test_authzid_refused(self):
        line, _ = self.attempt("alice@sub.test", PASSWORDS["alice@sub.test"],
                               authzid="expiry@sub.test")
        self.assertEqual(line, INVALID)
        recs = self.wait_records("authzid-refused", 1)
        self.assertTrue(recs, "no audit record for the refused authzid")
        # the same identity as authzid is fine, in any letter case of the domain
        line, _ = self.attempt("alice@sub.test", PASSWORDS["alice@sub.test"],
                               authzid="alice@SUB.test")
        self.assertTrue(line.startswith("235 2.7.0"), line)

    # ------------------------------------------------------------ RCPT

    def mx(self, source):
        c = RawSMTP(self.relay.ports["mx"], source=source, timeout=20.0)
        self.addCleanup(c.close)
        c.ehlo()
        c.expect("MAIL FROM:<probe@example.org>", 250)
        return c

    def test_rcpt_probing_slowed_and_cut_off(self):
        c = self.mx(UNTRUSTED)
        times = []
        last = None
        for i in range(MAX_BAD + 1):
            t0 = time.monotonic()
            r = c.cmd("RCPT TO:<nobody%d@strict.test>" % i)
            times.append(time.monotonic() - t0)
            self.assertEqual(r.code, 550, "refusal %d: %r" % (i + 1, r.lines))
            self.assertTrue(r.last.startswith("550 5.1.1"), r.lines)
            last = r
        sys.stderr.write("\nRCPT refusal reply times (s): %s\n"
                         % " ".join("%.3f" % t for t in times))
        # delays: none up to the soft limit, then DELAY, 2*DELAY, ... capped
        for n, dt in enumerate(times, start=1):
            if n <= SOFT_LIMIT:
                continue
            want = min(DELAY_MS * 2 ** (n - SOFT_LIMIT - 1), DELAY_MAX_MS) / 1000.0
            self.assertGreaterEqual(dt, want - 0.05,
                                    "refusal %d answered after %.3fs, want >= %.3fs (%r)"
                                    % (n, dt, want, times))
        self.assertGreater(times[-1], times[SOFT_LIMIT] + 0.2, "the delay does not grow: %r"
                           % times)
        # the hard limit: one error more than max_bad_commands ends it
        r = c.reply()
        self.assertEqual(r.code, 421, "after %r: %r" % (last.lines, r.lines))
        self.assertTrue(r.last.startswith("421 4.7.0"), r.lines)
        self.assertTrue(c.wait_closed(), "the probing session was not closed")
        # every refusal is in the audit trail at once, not after its delay
        self.relay.wait_log(r"event=rcpt_tarpit")

    def test_tarpit_does_not_block_others(self):
        c = self.mx(UNTRUSTED)
        for i in range(SOFT_LIMIT + 1):
            c.expect("RCPT TO:<nobody%d@strict.test>" % i, 550)
        # the next refusal waits 2*DELAY: meanwhile another client is served
        c.send("RCPT TO:<held-back@strict.test>\r\n")
        t0 = time.monotonic()
        other = RawSMTP(self.relay.ports["mx"], source=UNTRUSTED, timeout=10.0)
        self.addCleanup(other.close)
        other.ehlo()
        other.expect("NOOP", 250)
        served = time.monotonic() - t0
        r = c.reply()
        held = time.monotonic() - t0
        self.assertEqual(r.code, 550, r.lines)
        self.assertLess(served, held, "the other session waited for the tarpit "
                        "(served %.3fs, held %.3fs)" % (served, held))
        # a known recipient is still accepted in the same session
        c.expect("RCPT TO:<known@strict.test>", 250)

    def test_client_leaves_during_tarpit(self):
        """A client that hangs up while its reply is held back: the
        session ends at once (the held reply and its timer go with it)."""
        c = self.mx(UNTRUSTED)
        for i in range(SOFT_LIMIT + 1):
            c.expect("RCPT TO:<gone%d@strict.test>" % i, 550)
        c.send("RCPT TO:<gone-held@strict.test>\r\n")
        c.close()
        self.relay.wait_log(r"event=rcpt_tarpit")
        # the daemon goes on serving, and a new session is not held up
        other = self.mx(UNTRUSTED)
        other.expect("RCPT TO:<known@strict.test>", 250)

    def test_trusted_client_exempt(self):
        c = self.mx("127.0.0.1")
        t0 = time.monotonic()
        for i in range(MAX_BAD + 3):
            r = c.cmd("RCPT TO:<stale%d@strict.test>" % i)
            self.assertEqual(r.code, 550, r.lines)
        elapsed = time.monotonic() - t0
        c.expect("RCPT TO:<known@strict.test>", 250)
        c.expect("RSET", 250)
        self.assertLess(elapsed, DELAY_MS / 1000.0 * (MAX_BAD + 3),
                        "a trusted client was tarpitted (%.2fs)" % elapsed)


if __name__ == "__main__":
    harness.main()
