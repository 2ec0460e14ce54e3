"""
golden: SMTP dialogue tests in the manner of Postfix's smtpd_check .in/.ref.

Each tests/golden/NAME.in holds the set-up a case needs (configuration
overrides, listeners, govrelayctl commands run before the daemon starts)
and an SMTP dialogue; tests/golden/NAME.ref holds the transcript the real
govrelayd gave, with the few non-deterministic tokens masked (see
tests/golden/README.md for the file format and the masking rule). This
runner starts a fresh govrelayd on loopback per case (through harness.py,
so GOVRELAYD_WRAPPER, e.g. valgrind, applies), plays the dialogue, and
diffs the transcript against the .ref: one unittest per .in file.

    python3 tests/e2e/test_golden.py                  # run every case
    python3 tests/e2e/test_golden.py GoldenTest.test_relay_unknown_domain
    python3 tests/e2e/test_golden.py --update [NAME...]   # rewrite .ref files

--update writes what the daemon answered now: review the diff (git diff
tests/golden) before committing it. A new case is one .in file and the
.ref made this way.
"""
import difflib
import os
import re
import shlex
import shutil
import socket
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Closed, RawSMTP, Relay, client_tls_context  # noqa: E402

GOLDEN_DIR = os.path.join(os.environ.get("GOVRELAY_SRCDIR") or
                          os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."),
                          "tests", "golden")

# A slow wrapper (valgrind) needs longer deadlines; nothing waits on them
# when the daemon answers.
SLOW = bool(os.environ.get("GOVRELAYD_WRAPPER"))
REPLY_TIMEOUT = 30.0 if SLOW else 10.0
CLOSE_TIMEOUT = 30.0 if SLOW else 10.0

# The masking rule (README.md): queue ids are random, the rest is fixed by
# the harness (hostname relay.test, 127.0.0.x addresses from the .in).
MASKS = [
    (re.compile(r"\b[0-9A-F]{16}\b"), "<QID>"),
]


def mask(text):
    for rx, repl in MASKS:
        text = rx.sub(repl, text)
    return text


class CaseError(Exception):
    """The .in file is malformed or its set-up failed (not a diff)."""


class Case:
    """One parsed .in file: set-up directives and dialogue steps."""

    def __init__(self, path):
        self.path = path
        self.name = os.path.splitext(os.path.basename(path))[0]
        self.config = {}
        self.listeners = ["mx"]
        self.tls = False
        self.ctl = []            # (args, stdin or None, lineno)
        self.steps = []          # (verb, arg, lineno)
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                self._parse(line.rstrip("\n"), lineno)
        if not any(s[0] == "connect" for s in self.steps):
            raise CaseError("%s: no connect line" % path)

    def _parse(self, line, lineno):
        where = "%s:%d" % (self.path, lineno)
        if line[:4] in (">>> ", ">>- ", ">>. ") or line in (">>>", ">>-", ">>."):
            self._need_connection(where)
            self.steps.append((line[:3], line[4:], lineno))
            return
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            return
        word, _, rest = stripped.partition(" ")
        rest = rest.strip()
        if word == "config":
            key, eq, value = rest.partition("=")
            if not eq or not key.strip():
                raise CaseError("%s: config KEY = VALUE" % where)
            self.config[key.strip()] = value.strip()
        elif word == "listen":
            self.listeners = rest.split()
        elif word == "tls" and not rest:
            self.tls = True
        elif word == "ctl":
            args, sep, stdin = rest.partition(" <<< ")
            self.ctl.append((shlex.split(args), stdin + "\n" if sep else None, lineno))
        elif word == "connect":
            m = re.fullmatch(r"(\S+)(?:\s+from\s+(127\.\d+\.\d+\.\d+))?", rest)
            if not m:
                raise CaseError("%s: connect ROLE [from 127.x.y.z]" % where)
            self.steps.append(("connect", (m.group(1), m.group(2)), lineno))
        elif word in ("starttls", "expect-close") and not rest:
            self._need_connection(where)
            self.steps.append((word, None, lineno))
        else:
            raise CaseError("%s: unknown line %r" % (where, line))

    def _need_connection(self, where):
        if not any(s[0] == "connect" for s in self.steps):
            raise CaseError("%s: dialogue before the first connect line" % where)


class Player:
    """Runs one Case against a fresh govrelayd; collects the transcript."""

    def __init__(self, case, workdir):
        self.case = case
        self.workdir = workdir
        self.out = []
        self.conn = None
        self.relay = None
        self.pending = []        # (kind, text) queued by >>- and >>.

    def subst(self, text):
        return text.replace("{dead}", "smtp:127.0.0.1:%d" % self.relay.dead_port)

    def setup(self):
        c = self.case
        for role in c.listeners:
            if role in ("submission", "submissions") and not c.tls:
                raise CaseError("%s: listener %s needs the tls line" % (c.path, role))
        self.relay = Relay(self.workdir, listeners=tuple(c.listeners), tls=c.tls, **c.config)
        for args, stdin, lineno in c.ctl:
            r = self.relay.ctl(*[self.subst(a) for a in args], input=stdin)
            if r.returncode != 0:
                raise CaseError("%s:%d: govrelayctl %s exited %d: %s%s"
                                % (c.path, lineno, " ".join(args), r.returncode,
                                   r.stdout, r.stderr))
        self.relay.start(timeout=60.0 if SLOW else 15.0)

    def emit(self, prefix, text):
        self.out.append(mask("%s %s" % (prefix, text)).rstrip())

    def read_replies(self, n):
        for _ in range(n):
            try:
                start = len(self.conn.raw_lines)
                r = self.conn.reply(REPLY_TIMEOUT)
            except Closed:
                self.emit("---", "closed by the server")
                return False
            except socket.timeout:
                self.emit("---", "no reply within the deadline")
                return False
            for raw, line in zip(self.conn.raw_lines[start:], r.lines):
                # A reply line must end in CRLF (RFC 5321 section 4.1.1).
                self.emit("<<<", line if raw.endswith(b"\r\n") else line + " [no CRLF]")
        return True

    def do_connect(self, arg):
        role, source = arg
        if role not in self.relay.ports:
            raise CaseError("%s: no %s listener (add it to the listen line)"
                            % (self.case.path, role))
        if self.conn is not None:
            self.conn.close()
        self.emit("===", "connect %s%s" % (role, " from " + source if source else ""))
        implicit = client_tls_context() if role == "submissions" else None
        self.conn = RawSMTP(self.relay.ports[role], source=source, timeout=REPLY_TIMEOUT,
                            implicit_tls=implicit, read_greeting=False)
        self.read_replies(1)

    def do_send(self, verb, text):
        self.pending.append((verb, text))
        if verb == ">>>":
            self.flush()

    def flush(self):
        """Sends the queued lines in one write, then reads one reply per
        command among them (>>> and >>-; >>. lines are data)."""
        wire = b""
        nreplies = 0
        for kind, line in self.pending:
            self.emit(">>>" if kind in (">>>", ">>-") else ">>.", line)
            wire += line.encode("utf-8") + b"\r\n"
            nreplies += kind != ">>."
        self.pending = []
        try:
            self.conn.send(wire)
        except OSError:
            self.emit("---", "closed by the server")
            return
        self.read_replies(nreplies)

    def do_starttls(self):
        if self.pending:
            raise CaseError("%s: starttls after queued lines (send them with >>>)"
                            % self.case.path)
        self.emit(">>>", "STARTTLS")
        self.conn.send(b"STARTTLS\r\n")
        start = len(self.out)
        if self.read_replies(1) and self.out[start].startswith("<<< 220"):
            self.conn.starttls()
            self.emit("---", "TLS")

    def do_expect_close(self):
        if self.pending:
            self.flush()
        closed = self.conn.wait_closed(CLOSE_TIMEOUT)
        extra = self.conn.leftover if closed else b""
        if extra:
            for line in extra.decode("utf-8", errors="replace").splitlines():
                self.emit("<<<", line)
        self.emit("---", "closed by the server" if closed else "still open")

    def play(self):
        self.setup()
        try:
            for verb, arg, _ in self.case.steps:
                if verb == "connect":
                    self.do_connect(arg)
                elif verb in (">>>", ">>-", ">>."):
                    self.do_send(verb, arg)
                elif verb == "starttls":
                    self.do_starttls()
                elif verb == "expect-close":
                    self.do_expect_close()
            if self.pending:
                raise CaseError("%s: >>- or >>. lines at the end are never sent"
                                % self.case.path)
        finally:
            if self.conn is not None:
                self.conn.close()
        self.relay.stop()       # exit 0 after SIGTERM, and valgrind clean
        return "\n".join(self.out) + "\n"


def run_case(path):
    """(transcript, relay log tail) of the case in path."""
    case = Case(path)
    workdir = tempfile.mkdtemp(prefix="govrelay-golden-%s-" % case.name)
    player = Player(case, workdir)
    try:
        return player.play()
    except BaseException:
        if player.relay is not None:
            sys.stderr.write("--- %s: govrelayd log tail\n%s\n"
                             % (case.name, player.relay.log_tail(30)))
            if player.relay.running():
                player.relay.kill9()
        raise
    finally:
        if os.environ.get("KEEP_E2E") == "1":
            sys.stderr.write("KEEP_E2E: %s kept\n" % workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def case_paths(names=()):
    paths = sorted(os.path.join(GOLDEN_DIR, f) for f in os.listdir(GOLDEN_DIR)
                   if f.endswith(".in"))
    if names:
        wanted = set(names)
        paths = [p for p in paths if os.path.splitext(os.path.basename(p))[0] in wanted]
        missing = wanted - {os.path.splitext(os.path.basename(p))[0] for p in paths}
        if missing:
            raise SystemExit("no such case: %s" % ", ".join(sorted(missing)))
    return paths


class GoldenTest(unittest.TestCase):
    """One test per tests/golden/*.in (made below)."""


def _make_test(path):
    def test(self):
        ref_path = os.path.splitext(path)[0] + ".ref"
        if not os.path.exists(ref_path):
            self.fail("%s has no .ref: run test_golden.py --update %s and review it"
                      % (path, os.path.splitext(os.path.basename(path))[0]))
        with open(ref_path, encoding="utf-8") as f:
            want = f.read()
        got = run_case(path)
        if got != want:
            diff = "".join(difflib.unified_diff(
                want.splitlines(True), got.splitlines(True),
                os.path.basename(ref_path), "govrelayd now"))
            self.fail("transcript differs from %s:\n%s" % (ref_path, diff))
    return test


for _p in case_paths():
    _n = os.path.splitext(os.path.basename(_p))[0]
    setattr(GoldenTest, "test_" + re.sub(r"\W", "_", _n), _make_test(_p))


def update(names):
    for path in case_paths(names):
        ref_path = os.path.splitext(path)[0] + ".ref"
        got = run_case(path)
        old = None
        if os.path.exists(ref_path):
            with open(ref_path, encoding="utf-8") as f:
                old = f.read()
        with open(ref_path, "w", encoding="utf-8") as f:
            f.write(got)
        print("%-32s %s" % (os.path.basename(ref_path),
                            "new" if old is None else "unchanged" if old == got else "CHANGED"))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--update":
        update(sys.argv[2:])
        sys.exit(0)
    harness.main()
