"""
harness: shared pieces of the govrelay end-to-end tests.

Every test file starts the REAL govrelayd on loopback and talks to it with
real clients (smtplib, raw sockets, openssl s_client, swaks), with Postfix's
smtp-sink as the next hop. This module provides:

- free_port(), make_cert(), wait_for(): small helpers; every wait polls
  with a deadline, never a fixed sleep.
- Relay: writes a config, runs `govrelayd -f -c CONF`, captures its log,
  waits for `ready`, runs govrelayctl, stops / kills / restarts it.
- Sink: runs /usr/sbin/smtp-sink on a free port, dumps every message to a
  file, parses the dumps; can answer 4xx/5xx to chosen commands.
- RawSMTP: a socket client that sends exact bytes and reads replies
  (smuggling, bare LF/CR, pipelining, pregreet, long lines, STARTTLS
  injection).
- Clamd: a real clamd (Debian's clamav-daemon) with a signature database
  made here from the EICAR test string (nothing downloaded).
- RelayTestCase: unittest base class with one temp dir, relay and sink per
  class; main(): unittest runner mapped to automake exit codes
  (0 pass, 1 fail, 77 skip).

Only 127.0.0.0/8 addresses are ever used. Environment: GOVRELAYD and
GOVRELAYCTL (absolute paths of the binaries; default ./govrelayd and
./govrelayctl), GOVRELAYD_WRAPPER (a command line the daemon runs under,
e.g. valgrind), KEEP_E2E=1 keeps the temp dirs, E2E_VERBOSE=1 prints
the relay log of failing tests in full.
"""

import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import time
import unittest
import warnings

HOSTNAME = "relay.test"
SMTP_SINK = "/usr/sbin/smtp-sink"
QID_RE = re.compile(r"\b([0-9A-F]{16})\b")
QUEUED_RE = re.compile(r"^250 2\.0\.0 Ok: queued as ([0-9A-F]{16})$")
EX_USAGE = 64
EX_NOINPUT = 66
EX_CONFIG = 78


def _binary(env, name):
    path = os.environ.get(env)
    if not path:
        path = os.path.abspath(os.path.join(os.getcwd(), name))
    return path


GOVRELAYD = _binary("GOVRELAYD", "govrelayd")
GOVRELAYCTL = _binary("GOVRELAYCTL", "govrelayctl")

# The unprivileged user govrelayd drops to when started as root (the
# `user` key's default). Run as root (CI), every test's daemon drops to it,
# so its data_dir, key and the folders above them must be usable by it;
# run as anyone else the daemon stays that user and nothing changes.
DAEMON_USER = "govrelay"


def ensure_daemon_user():
    """As root: the pwd entry of DAEMON_USER, created as
    scripts/install-deps.sh does when missing. None when not root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(DAEMON_USER)
    except KeyError:
        pass
    nologin = "/usr/sbin/nologin" if os.path.exists("/usr/sbin/nologin") else "/bin/false"
    r = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--home-dir", "/nonexistent", "--shell", nologin, DAEMON_USER],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True, timeout=60)
    try:
        return pwd.getpwnam(DAEMON_USER)
    except KeyError:
        raise AssertionError("cannot create the system user %s for govrelayd: %s"
                             % (DAEMON_USER, r.stdout))


def daemon_can_use(path, pw=None):
    """As root: lets the daemon's user reach PATH (every folder above it
    gets search permission for others, never read or write) and owns
    nothing new. No-op when not root."""
    pw = pw or ensure_daemon_user()
    if pw is None:
        return
    d = os.path.abspath(path)
    while True:
        st = os.stat(d)
        if not st.st_mode & 0o001:
            os.chmod(d, stat.S_IMODE(st.st_mode) | 0o111)
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent


def give_to_daemon(path, mkdir=False):
    """As root: PATH (a folder made here when mkdir, or a unix socket a
    test server made) becomes the daemon user's, as an installation makes
    a maildir root or an LMTP socket reachable by govrelay. The folders
    above it get search permission. No-op when not root."""
    pw = ensure_daemon_user()
    if mkdir:
        os.makedirs(path, exist_ok=True)
    if pw is None:
        return
    daemon_can_use(os.path.dirname(os.path.abspath(path)), pw)
    os.chown(path, pw.pw_uid, pw.pw_gid, follow_symlinks=False)


def proc_ids(pid):
    """(uids, gids, groups) of a running process from /proc/PID/status:
    the real, effective, saved and filesystem ids, and the supplementary
    groups."""
    uids = gids = groups = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key == "Uid":
                uids = [int(x) for x in value.split()]
            elif key == "Gid":
                gids = [int(x) for x in value.split()]
            elif key == "Groups":
                groups = [int(x) for x in value.split()]
    return uids, gids, groups


# ------------------------------------------------------------------ helpers

def free_port(host="127.0.0.1"):
    """A TCP port nobody listens on right now (bind HOST:0, read, close)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


_DEAD_SOCKETS = []


def dead_port(host="127.0.0.1"):
    """A TCP port that refuses every connection for the life of this
    process: bound and never listening, so no other test running at the
    same time can take it and turn "undeliverable" into "delivered"."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    _DEAD_SOCKETS.append(s)
    return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Polls predicate() until it returns a true value (returned) or the
    deadline passes (AssertionError naming `what`)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_exc = None
        except (OSError, ValueError, AssertionError) as e:
            last_exc = e
        if time.monotonic() >= deadline:
            extra = " (last error: %r)" % (last_exc,) if last_exc else ""
            raise AssertionError("timed out after %.1fs waiting for %s%s"
                                 % (timeout, what, extra))
        time.sleep(interval)


def tool_path(name):
    """Absolute path of a tool, or None."""
    if os.path.isabs(name):
        return name if os.access(name, os.X_OK) else None
    return shutil.which(name)


def require_tools(*names):
    """Raises unittest.SkipTest when a tool is truly absent."""
    for n in names:
        if not tool_path(n):
            raise unittest.SkipTest("required tool %s is not installed" % n)


_cert_cache = {}


def make_cert(directory):
    """Self-signed P-256 certificate for relay.test: (cert, key) paths."""
    if directory in _cert_cache:
        return _cert_cache[directory]
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    r = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
         "-subj", "/CN=" + HOSTNAME, "-keyout", key, "-out", cert],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if r.returncode != 0:
        raise AssertionError("openssl req failed: %s" % r.stdout.decode(errors="replace"))
    pw = ensure_daemon_user()
    if pw is not None:
        # As an installation would: root:govrelay 0640, so that the
        # dropped daemon can read the key again on SIGHUP.
        os.chown(key, 0, pw.pw_gid)
        os.chmod(key, 0o640)
        daemon_can_use(directory, pw)
    _cert_cache[directory] = (cert, key)
    return cert, key


def client_tls_context(maximum=None, minimum=None, legacy=False):
    """A client context that does not verify (self-signed test cert).
    legacy=True lowers the security level so TLS 1.0/1.1 can be offered."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if legacy:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
    return ctx


def find_key(obj, name):
    """Every value stored under a key equal to name (case-insensitive),
    anywhere in a decoded JSON document."""
    out = []
    name = name.lower()
    if isinstance(obj, dict):
        for k, v in obj.items():
            if str(k).lower() == name:
                out.append(v)
            out.extend(find_key(v, name))
    elif isinstance(obj, list):
        for v in obj:
            out.extend(find_key(v, name))
    return out


def parse_json_lines(text):
    """A JSON document, or one object per line: always a list of objects
    (a top-level list is returned as is, a single object as [obj])."""
    text = text.strip()
    if not text:
        return []
    try:
        doc = json.loads(text)
        if isinstance(doc, list):
            return doc
        return [doc]
    except ValueError:
        pass
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -------------------------------------------------------------------- relay

# ---------------------------------------------------------------- DNS

def txt_record(name, text):
    """An unbound local-data line for a TXT record: text cut into quoted
    character-strings of at most 255 bytes (RFC 1035 3.3.14)."""
    raw = text.encode()
    parts = [raw[i:i + 255] for i in range(0, len(raw), 255)] or [b""]
    quoted = " ".join('"%s"' % p.decode().replace('"', '\\"') for p in parts)
    return "%s. 300 IN TXT %s" % (name.rstrip("."), quoted)


def use_debian_python_packages():
    """Makes Debian's python3-* modules (dkim, spf, authres, nacl) importable
    when the tests run under another python3 of the same version."""
    d = "/usr/lib/python3/dist-packages"
    if os.path.isdir(d) and d not in sys.path:
        sys.path.append(d)


UNBOUND = "/usr/sbin/unbound"
SYS_PYTHON = "/usr/bin/python3"


class Unbound:
    """unbound on 127.0.0.1:PORT answering only from local data."""

    def __init__(self, workdir, records, zones=(), txt=()):
        """records: unbound local-data lines; zones: (name, type) pairs
        for local-zone; txt: (name, text) pairs, split into 255-byte
        character-strings as DNS needs (a DKIM RSA key is longer)."""
        self.dir = os.path.join(workdir, "unbound")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        lines = ["server:",
                 "    interface: 127.0.0.1", "    port: %d" % self.port,
                 "    do-daemonize: no", '    username: ""', '    chroot: ""',
                 '    directory: "%s"' % self.dir, '    pidfile: ""',
                 "    use-syslog: no", '    logfile: ""', "    do-ip6: no",
                 "    access-control: 127.0.0.0/8 allow",
                 '    module-config: "iterator"',
                 '    local-zone: "." static']
        for z, kind in zones:
            lines.append('    local-zone: "%s" %s' % (z, kind))
        for r in records:
            lines.append("    local-data: '%s'" % r)
        for name, text in txt:
            lines.append("    local-data: '%s'" % txt_record(name, text))
        lines += ["remote-control:", "    control-enable: no"]
        self.conf = os.path.join(self.dir, "unbound.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.proc = None

    def start(self):
        require_tools(UNBOUND)
        self.log = open(os.path.join(self.dir, "unbound.log"), "ab")
        self.proc = subprocess.Popen([UNBOUND, "-d", "-c", self.conf],
                                     stdout=self.log, stderr=self.log)

        def answers():
            if self.proc.poll() is not None:
                raise RuntimeError("unbound exited %d" % self.proc.returncode)
            r = subprocess.run(["python3", "-c", _DNS_PROBE, str(self.port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=5)
            return r.returncode == 0
        wait_for(answers, 15, what="unbound answering on port %d" % self.port)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


# A one-shot UDP query for "." SOA: any answer means unbound is up.
_DNS_PROBE = r"""
import socket, sys
q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x06\x00\x01"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
s.sendto(q, ("127.0.0.1", int(sys.argv[1])))
sys.exit(0 if s.recv(512)[:2] == b"\x12\x34" else 1)
"""



# ------------------------------------------------------------------- clamd

CLAMD = "/usr/sbin/clamd"
SIGTOOL = "/usr/bin/sigtool"
# The EICAR anti-virus test file (eicar.org): harmless, 68 bytes, and
# detected by every scanner that knows it.
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")


class Clamd:
    """clamd from Debian (clamav-daemon) in the foreground on a unix socket
    (self.target, for govrelay.conf's `clamd`) and a loopback TCP port
    (self.tcp_target), with a database made here from the EICAR string by
    sigtool (package clamav), nothing downloaded (DEPENDENCIES.md 8):

      probe.hdb  the MD5 of the whole 68-byte file (sigtool --md5): found
                 when a decoded part or archive member IS the file;
      probe.ndb  the string itself as a body signature (sigtool
                 --hex-dump): found wherever the bytes occur, as the
                 official database's EICAR signature is.

    clamd.conf takes absolute paths only. The socket has mode 666 and the
    folders above it are made searchable, so govrelayd, dropped to its own
    user when the tests run as root, can connect; clamd 1.4 runs as root
    without a `User` line, and as the test's user otherwise.
    stream_max: clamd's StreamMaxLength (a longer stream is answered
    "INSTREAM size limit exceeded. ERROR"); body_signature=False leaves
    probe.ndb out (the MD5 signature alone)."""

    @staticmethod
    def require():
        """Raises unittest.SkipTest, saying which, when clamd or sigtool
        is not installed."""
        for tool, package in ((CLAMD, "clamav-daemon"), (SIGTOOL, "clamav")):
            if not tool_path(tool):
                raise unittest.SkipTest("%s is not installed (Debian package %s; "
                                        "scripts/install-deps.sh installs it)"
                                        % (tool, package))

    def __init__(self, workdir, name="clamd", stream_max="64M", body_signature=True):
        self.require()
        self.dir = os.path.abspath(os.path.join(workdir, name))
        self.db = os.path.join(self.dir, "db")
        os.makedirs(self.db, exist_ok=True)
        self.socket = os.path.join(self.dir, "clamd.sock")
        self.port = free_port()
        self.log = os.path.join(self.dir, "clamd.log")
        self.proc = None
        self.out = None
        eicar = os.path.join(self.dir, "eicar.com")
        with open(eicar, "wb") as f:
            f.write(EICAR)
        md5 = subprocess.run([SIGTOOL, "--md5", eicar], stdout=subprocess.PIPE,
                             check=True, timeout=60, universal_newlines=True).stdout
        # "HASH:SIZE:eicar.com" -> "HASH:SIZE:Probe.EICAR.MD5"
        hash_, size, _ = md5.strip().split(":", 2)
        with open(os.path.join(self.db, "probe.hdb"), "w") as f:
            f.write("%s:%s:Probe.EICAR.MD5\n" % (hash_, size))
        if body_signature:
            with open(eicar, "rb") as f:
                hexsig = subprocess.run([SIGTOOL, "--hex-dump"], stdin=f,
                                        stdout=subprocess.PIPE, check=True,
                                        timeout=60).stdout.decode().strip()
            with open(os.path.join(self.db, "probe.ndb"), "w") as f:
                # Name:TargetType(0 = any file):Offset(* = anywhere):HexSignature
                f.write("Probe.EICAR.Body:0:*:%s\n" % hexsig)
        self.conf = os.path.join(self.dir, "clamd.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join([
                "Foreground yes",
                "DatabaseDirectory %s" % self.db,
                "LocalSocket %s" % self.socket,
                "LocalSocketMode 666",
                "TCPSocket %d" % self.port,
                "TCPAddr 127.0.0.1",
                "PidFile %s" % os.path.join(self.dir, "clamd.pid"),
                "LogFile %s" % self.log,
                "LogTime yes",
                "StreamMaxLength %s" % stream_max,
                "MaxFileSize 64M",
                "MaxScanSize 256M",
                "MaxThreads 4",
                "Bytecode no",
                "SelfCheck 3600",
            ]) + "\n")
        daemon_can_use(self.dir)

    @property
    def target(self):
        return "unix:%s" % self.socket

    @property
    def tcp_target(self):
        return "tcp:127.0.0.1:%d" % self.port

    def ping(self):
        """True when clamd answers PING with PONG on its unix socket."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(self.socket)
            s.sendall(b"zPING\0")
            reply = b""
            while not reply.endswith(b"\0"):
                data = s.recv(64)
                if not data:
                    break
                reply += data
            return reply == b"PONG\0"
        finally:
            s.close()

    def start(self, timeout=60.0):
        self.out = open(os.path.join(self.dir, "clamd.out"), "ab")
        self.proc = subprocess.Popen([CLAMD, "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=self.out)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("clamd exited %d" % self.proc.returncode)
            return self.ping()
        try:
            wait_for(up, timeout, interval=0.1, what="clamd answering PING on %s" % self.socket)
        except (RuntimeError, AssertionError) as e:
            self.stop()
            raise AssertionError("clamd did not start: %s\n%s" % (e, self.log_tail()))
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self.out is not None:
            self.out.close()
            self.out = None

    def log_tail(self, n=30):
        text = ""
        for path in (self.log, os.path.join(self.dir, "clamd.out")):
            try:
                with open(path, "rb") as f:
                    text += f.read().decode("utf-8", errors="replace")
            except FileNotFoundError:
                pass
        return "\n".join(text.splitlines()[-n:])


class Relay:
    """One govrelayd process with its own config and data_dir.

    listeners: roles, e.g. ("mx",) or ("mx", "submission", "submissions");
    each gets a free 127.0.0.1 port (self.ports[role]).
    tls: configure tls_cert_file/tls_key_file (self-signed, relay.test).
    overrides: config keys; a value of None removes a default key.
    """

    def __init__(self, workdir, name="relay", listeners=("mx",), tls=False, **overrides):
        self.workdir = workdir
        self.name = name
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.conf = os.path.join(self.dir, "govrelay.conf")
        self.data_dir = os.path.join(self.dir, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        pw = ensure_daemon_user()
        if pw is not None:
            # Started as root the daemon drops to DAEMON_USER: data_dir is
            # that user's (govrelayctl run by root then acts as its owner).
            daemon_can_use(self.dir, pw)
            os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
        self.logfile = os.path.join(self.dir, "govrelayd.log")
        self.ports = {}
        self.listen_lines = []
        for role in listeners:
            port = free_port()
            self.ports.setdefault(role, port)
            self.listen_lines.append("%s 127.0.0.1:%d" % (role, port))
        # A port nobody listens on: DNS and mx deliveries must never leave
        # loopback, so both point at it (fails fast, stays local).
        self.dead_port = dead_port()
        self.settings = {
            "hostname": HOSTNAME,
            "data_dir": self.data_dir,
            "greet_pause": "0s",
            "dns_server": "127.0.0.1:%d" % self.dead_port,
            "smtp_port": str(self.dead_port),
            # With a dead resolver, sender authentication would answer
            # every outside message with a temporary failure: the tests
            # of those checks turn them on with an unbound of their own.
            "dmarc": "no",
            "spf": "no",
            # Sender authentication needs DNS, which is dead here on purpose:
            # the tests of each check turn it on with configure().
            "dkim_verify": "no",
        }
        if tls:
            cert, key = make_cert(workdir)
            self.settings["tls_cert_file"] = cert
            self.settings["tls_key_file"] = key
        self.configure(**overrides)
        self.proc = None
        self.log_fh = None
        self.starts = 0

    @property
    def port(self):
        """Port of the first listener."""
        return self.ports[self.listen_lines[0].split()[0]]

    def configure(self, **overrides):
        """Changes keys (None removes) and rewrites the file; takes effect
        at the next (re)start."""
        for k, v in overrides.items():
            if v is None:
                self.settings.pop(k, None)
            else:
                self.settings[k] = str(v)
        self.write_config()

    def write_config(self):
        lines = ["# written by tests/e2e/harness.py"]
        for k, v in self.settings.items():
            lines.append("%s = %s" % (k, v))
        for l in self.listen_lines:
            lines.append("listen = %s" % l)
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    # -- process

    def start(self, timeout=15.0, preexec_fn=None):
        """Runs the daemon and waits for `ready`; preexec_fn runs in the
        child before exec (e.g. to set a resource limit)."""
        if not os.access(GOVRELAYD, os.X_OK):
            raise AssertionError("govrelayd binary not found at %s (set GOVRELAYD)" % GOVRELAYD)
        self.log_fh = open(self.logfile, "ab")
        self.starts += 1
        self.log_fh.write(("----- harness: start #%d\n" % self.starts).encode())
        self.log_fh.flush()
        self.log_offset = os.path.getsize(self.logfile)
        # GOVRELAYD_WRAPPER runs the daemon under a tool, e.g. valgrind.
        wrapper = shlex.split(os.environ.get("GOVRELAYD_WRAPPER", ""))
        if wrapper:
            # Under valgrind the start reads the symbols of every library
            # (poppler, glib, libarchive ... since issue 11): seconds on a
            # busy 2-core machine before the first line.
            timeout = max(timeout, 60.0)
        self.proc = subprocess.Popen(wrapper + [GOVRELAYD, "-f", "-c", self.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.log_fh, stderr=self.log_fh,
                                     cwd=self.dir, preexec_fn=preexec_fn)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError("govrelayd exited with %d before ready" % self.proc.returncode)
            return re.search(r"\bready\b", self.log_since_start())

        try:
            wait_for(ready, timeout, what="govrelayd 'ready' line")
        except (RuntimeError, AssertionError) as e:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            raise AssertionError("%s\n--- govrelayd log:\n%s" % (e, self.log_tail()))
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def daemon_uid(self):
        """The effective uid the running daemon has now (after any drop)."""
        return proc_ids(self.proc.pid)[0][1]

    def stop(self, timeout=15.0, expect_rc=0):
        """SIGTERM, wait, check the exit status. Returns it."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._close_log()
            raise AssertionError("govrelayd did not exit within %.0fs of SIGTERM\n%s"
                                 % (timeout, self.log_tail()))
        self._close_log()
        self.proc = None
        if expect_rc is not None and rc != expect_rc:
            raise AssertionError("govrelayd exited %d after SIGTERM, expected %d\n%s"
                                 % (rc, expect_rc, self.log_tail()))
        return rc

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close_log()
        self.proc = None

    def restart(self, timeout=15.0):
        if self.running():
            self.stop()
        return self.start(timeout)

    def _close_log(self):
        if self.log_fh is not None:
            self.log_fh.close()
            self.log_fh = None

    # -- log

    def log(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_since_start(self):
        with open(self.logfile, "rb") as f:
            f.seek(getattr(self, "log_offset", 0))
            return f.read().decode("utf-8", errors="replace")

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def wait_log(self, pattern, timeout=10.0, flags=0):
        """Waits for a regex in the log; returns the match."""
        rx = re.compile(pattern, flags)
        try:
            return wait_for(lambda: rx.search(self.log()), timeout,
                            what="log line matching %r" % pattern)
        except AssertionError as e:
            raise AssertionError("%s\n--- govrelayd log tail:\n%s" % (e, self.log_tail()))

    def log_lines(self, qid):
        return [l for l in self.log().splitlines() if qid in l]

    # -- govrelayctl

    def ctl(self, *args, timeout=30.0, input=None):
        """Runs govrelayctl -c CONF ARGS; returns CompletedProcess (text)."""
        if not os.access(GOVRELAYCTL, os.X_OK):
            raise AssertionError("govrelayctl binary not found at %s (set GOVRELAYCTL)" % GOVRELAYCTL)
        return subprocess.run([GOVRELAYCTL, "-c", self.conf] + [str(a) for a in args],
                              input=input, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout,
                              universal_newlines=True)

    def ctl_ok(self, *args, **kw):
        r = self.ctl(*args, **kw)
        if r.returncode != 0:
            raise AssertionError("govrelayctl %s exited %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(map(str, args)), r.returncode, r.stdout, r.stderr))
        return r

    def add_domain(self, domain, route, accept_all=True, tenant=None):
        """`domain add DOMAIN --route ROUTE`. accept_all (the default)
        passes --accept-all: any local part is accepted, as the tests
        written before mailboxes existed expect; accept_all=False makes
        RCPT check the mailbox table (550 5.1.1 for unknown users)."""
        args = ["domain", "add", domain, "--route", route]
        if tenant is not None:
            args += ["--tenant", tenant]
        if accept_all:
            args.append("--accept-all")
        return self.ctl_ok(*args)

    def queue_list(self):
        """Decoded `queue list --json`: a list of objects."""
        r = self.ctl_ok("queue", "list", "--json")
        try:
            return parse_json_lines(r.stdout)
        except ValueError as e:
            raise AssertionError("queue list --json is not JSON (%s): %r" % (e, r.stdout))

    def queue_ids(self):
        ids = []
        for obj in self.queue_list():
            found = None
            for key in ("id", "queue_id", "qid"):
                v = obj.get(key) if isinstance(obj, dict) else None
                if isinstance(v, str) and QID_RE.fullmatch(v):
                    found = v
                    break
            if found is None:
                m = QID_RE.search(json.dumps(obj))
                found = m.group(1) if m else None
            if found:
                ids.append(found)
        return ids

    def queue_show(self, qid):
        r = self.ctl("queue", "show", qid, "--json")
        if r.returncode != 0:
            raise AssertionError("queue show %s --json exited %d: %s%s"
                                 % (qid, r.returncode, r.stdout, r.stderr))
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            raise AssertionError("queue show --json is not JSON (%s): %r" % (e, r.stdout))

    def wait_gone(self, qid, timeout=15.0):
        """Waits until qid has left the queue (delivered or failed)."""
        wait_for(lambda: qid not in self.queue_ids(), timeout,
                 what="%s to leave the queue" % qid)

    def wait_queue_empty(self, timeout=15.0):
        wait_for(lambda: not self.queue_ids(), timeout, what="empty queue")


# --------------------------------------------------------------------- sink

class SinkMessage:
    """One smtp-sink dump file, parsed."""

    def __init__(self, path, raw):
        self.path = path
        self.raw = raw
        self.client_addr = None
        self.helo = None
        self.mail_args = None
        self.rcpt_args = []
        lines = raw.split(b"\n")
        i = 0
        while i < len(lines):
            l = lines[i]
            if l.startswith(b"X-Client-Addr: "):
                self.client_addr = l[15:].decode()
            elif l.startswith(b"X-Helo-Args: "):
                self.helo = l[13:].decode(errors="replace")
            elif l.startswith(b"X-Mail-Args: "):
                self.mail_args = l[13:].decode(errors="replace")
            elif l.startswith(b"X-Rcpt-Args: "):
                self.rcpt_args.append(l[13:].decode(errors="replace"))
            elif l.startswith(b"Received: ") and i + 1 < len(lines) and b"(smtp-sink)" in lines[i + 1]:
                i += 1
                while i < len(lines) and lines[i][:1] in (b" ", b"\t"):
                    i += 1
                break
            elif l.startswith(b"X-"):
                pass
            i += 1
        msg = b"\n".join(lines[i:])
        # smtp-sink appends one empty line after the message.
        if msg.endswith(b"\n\n"):
            msg = msg[:-1]
        self.message = msg          # LF line ends, as smtp-sink writes it
        head, sep, body = msg.partition(b"\n\n")
        self.header_block = head + b"\n" if sep else msg
        self.body = body

    @property
    def mail_from(self):
        m = re.match(r"<([^>]*)>", self.mail_args or "")
        return m.group(1) if m else None

    @property
    def rcpts(self):
        out = []
        for a in self.rcpt_args:
            m = re.match(r"<([^>]*)>", a)
            out.append(m.group(1) if m else a)
        return out

    def headers(self, name):
        """Unfolded values of every header called name (bytes)."""
        out = []
        cur = None
        for l in self.header_block.split(b"\n"):
            if l[:1] in (b" ", b"\t") and cur is not None:
                cur[1] += b" " + l.strip()
                continue
            if cur is not None:
                out.append(cur)
            k, sep, v = l.partition(b":")
            cur = [k.strip().lower(), v.strip()] if sep else None
        if cur is not None:
            out.append(cur)
        return [v for k, v in out if k == name.lower().encode()]

    def without_received(self, name_contains=HOSTNAME.encode()):
        """The message with the relay's own Received header removed."""
        lines = self.message.split(b"\n")
        out = []
        i = 0
        dropped = False
        while i < len(lines):
            l = lines[i]
            if not dropped and l.lower().startswith(b"received:"):
                block = [l]
                j = i + 1
                while j < len(lines) and lines[j][:1] in (b" ", b"\t"):
                    block.append(lines[j])
                    j += 1
                if name_contains in b" ".join(block):
                    dropped = True
                    i = j
                    continue
            out.append(l)
            i += 1
        return b"\n".join(out)


class Sink:
    """Postfix smtp-sink on a free 127.0.0.1 port, dumping every message.

    soft: commands answered 4xx (smtp-sink -r), hard: 5xx (-f), with the
    reply texts soft_reply / hard_reply (-b / -B).
    """

    def __init__(self, workdir, name="sink", port=None, soft=None, hard=None,
                 soft_reply="451 4.3.0 sink says try later",
                 hard_reply="550 5.1.1 sink says no such user", extra=()):
        self.workdir = workdir
        self.name = name
        self.dir = os.path.join(workdir, name)
        self.dump_dir = os.path.join(self.dir, "dump")
        os.makedirs(self.dump_dir, exist_ok=True)
        self.port = port or free_port()
        self.soft = soft
        self.hard = hard
        self.soft_reply = soft_reply
        self.hard_reply = hard_reply
        self.extra = list(extra)
        self.proc = None
        self.log_fh = None

    @property
    def route(self):
        return "smtp:127.0.0.1:%d" % self.port

    def start(self, soft=None, hard=None, timeout=10.0):
        """Starts (again); soft/hard given here replace the constructor's
        (pass "" to clear)."""
        require_tools(SMTP_SINK)
        if soft is not None:
            self.soft = soft or None
        if hard is not None:
            self.hard = hard or None
        cmd = [SMTP_SINK]
        if os.geteuid() == 0:
            # smtp-sink refuses to keep root privileges; it needs -u and
            # the dump dir must stay writable for that user.
            cmd += ["-u", pwd.getpwuid(os.getuid()).pw_name]
        cmd += ["-h", "sink.test", "-d", os.path.join(self.dump_dir, "%Y%m%d%H%M%S."),
                "-t", "30"]
        if self.soft:
            cmd += ["-r", self.soft, "-b", self.soft_reply]
        if self.hard:
            cmd += ["-f", self.hard, "-B", self.hard_reply]
        cmd += self.extra
        cmd += ["127.0.0.1:%d" % self.port, "64"]
        self.log_fh = open(os.path.join(self.dir, "smtp-sink.log"), "ab")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self.log_fh, stderr=self.log_fh)

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError("smtp-sink exited %d" % self.proc.returncode)
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.settimeout(2)
                data = s.recv(512)
                s.sendall(b"QUIT\r\n")
                return data.startswith(b"220")

        try:
            wait_for(up, timeout, what="smtp-sink greeting on port %d" % self.port)
        except (RuntimeError, AssertionError) as e:
            self.stop()
            with open(os.path.join(self.dir, "smtp-sink.log"), "rb") as f:
                raise AssertionError("smtp-sink did not start: %s\n%s"
                                     % (e, f.read().decode(errors="replace")))
        return self

    def stop(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        if self.log_fh is not None:
            self.log_fh.close()
            self.log_fh = None

    def files(self):
        return sorted(os.path.join(self.dump_dir, f) for f in os.listdir(self.dump_dir))

    def messages(self):
        out = []
        for p in self.files():
            with open(p, "rb") as f:
                out.append(SinkMessage(p, f.read()))
        return out

    def clear(self):
        for p in self.files():
            os.unlink(p)

    def find(self, needle, timeout=15.0):
        """Waits for the single message containing needle (bytes).

        smtp-sink writes a dump while the data arrives, so a hit counts
        only once its file has stopped growing (two reads 0.1 s apart)."""
        seen = {}

        def got():
            hits = [m for m in self.messages() if needle in m.raw]
            stable = [m for m in hits if seen.get(m.path) == len(m.raw)]
            for m in hits:
                seen[m.path] = len(m.raw)
            return stable
        hits = wait_for(got, timeout, interval=0.1,
                        what="message containing %r at smtp-sink" % needle)
        return hits[0]

    def count(self, needle):
        return sum(1 for m in self.messages() if needle in m.raw)


# ---------------------------------------------------------------- raw SMTP

class Reply:
    def __init__(self, lines):
        self.lines = lines                      # text lines, CRLF removed
        self.code = int(lines[-1][:3])
        self.text = "\n".join(lines)

    @property
    def last(self):
        return self.lines[-1]

    def __repr__(self):
        return "Reply(%r)" % (self.lines,)


class Closed(Exception):
    """The server closed the connection."""


class RawSMTP:
    """Byte-exact SMTP client over a plain (or TLS) socket."""

    def __init__(self, port, host="127.0.0.1", source=None, timeout=5.0,
                 implicit_tls=None, read_greeting=True):
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        if implicit_tls is not None:
            self.sock = implicit_tls.wrap_socket(self.sock)
        self.buf = b""
        self.eof = False
        self.raw_lines = []      # every reply line as received, with its ending
        self.greeting = self.reply() if read_greeting else None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        except ssl.SSLError:
            chunk = b""
        if not chunk:
            self.eof = True
            raise Closed("connection closed by server")
        self.buf += chunk

    def readline(self, timeout=None):
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no complete reply line within %.1fs (have %r)"
                                     % (timeout, self.buf))
            self._fill(left)
        line, _, self.buf = self.buf.partition(b"\n")
        self.raw_lines.append(line + b"\n")
        return line.rstrip(b"\r").decode("utf-8", errors="replace")

    def reply(self, timeout=None):
        """Reads one (possibly multi-line) reply."""
        lines = []
        while True:
            l = self.readline(timeout)
            lines.append(l)
            if len(l) < 4 or l[3] != "-":
                return Reply(lines)

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def cmd(self, line, timeout=None):
        """Sends line + CRLF, returns the reply."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.reply(timeout)

    def expect(self, line, code, prefix=None):
        r = self.cmd(line)
        if r.code != code or (prefix is not None and not r.last.startswith(prefix)):
            raise AssertionError("%r: expected %d %s, got %r"
                                 % (line, code, prefix or "", r.lines))
        return r

    def ehlo(self, name="client.test"):
        return self.expect("EHLO " + name, 250)

    def wait_closed(self, timeout=5.0):
        """True when the server closes the connection (unread data is
        discarded and returned in self.leftover)."""
        deadline = time.monotonic() + timeout
        self.leftover = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                self._fill(left)
            except Closed:
                self.leftover = self.buf
                return True
            except socket.timeout:
                return False

    def quiet_for(self, seconds):
        """True when nothing arrives (and no close) for `seconds`."""
        if self.buf:
            return False
        try:
            self._fill(seconds)
        except socket.timeout:
            return True
        except Closed:
            return False
        return False

    def starttls(self, ctx=None):
        """Wraps the socket in TLS (after a 220 to STARTTLS)."""
        ctx = ctx or client_tls_context()
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock)
        return self.sock

    def send_message(self, mail_from, rcpts, data, ehlo=True):
        """A whole transaction with DATA; data is the unstuffed message
        (bytes, CRLF line ends). Returns the final reply."""
        if ehlo:
            self.ehlo()
        self.expect("MAIL FROM:<%s>" % mail_from, 250)
        for r in rcpts:
            self.expect("RCPT TO:<%s>" % r, 250)
        self.expect("DATA", 354)
        return self.cmd(dot_stuff(data) + b".")


def dot_stuff(data):
    """Dot-stuffs a CRLF message and ensures it ends with CRLF."""
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    lines = data.split(b"\r\n")
    return b"\r\n".join((b"." + l) if l.startswith(b".") else l for l in lines)


def queued_id(reply):
    """The queue id of a `250 2.0.0 Ok: queued as ID` reply (text or Reply)."""
    text = reply.last if isinstance(reply, Reply) else reply
    if isinstance(text, bytes):
        text = text.decode()
    m = QUEUED_RE.match(text.strip())
    if not m:
        raise AssertionError("not a queued reply: %r" % (text,))
    return m.group(1)


def smtplib_queued_id(resp):
    """Queue id from smtplib's (code, msg) for the end of data."""
    code, msg = resp
    text = "%d %s" % (code, msg.decode() if isinstance(msg, bytes) else msg)
    return queued_id(text)


# ----------------------------------------------------------------- unittest

class RelayTestCase(unittest.TestCase):
    """One temp dir, one relay (and one sink unless with_sink is False)
    per class. Subclasses set class attributes:

      relay_options: dict of keyword arguments for Relay
      with_sink: start a Sink and route `sink_domain` to it
      domains: extra {domain: route or "dead"} ("dead" = a closed port)
    """

    relay_options = {}
    with_sink = True
    sink_domain = "ours.test"
    dead_domain = "held.test"
    domains = {}
    start_relay = True

    @classmethod
    def setUpClass(cls):
        cls.workdir = tempfile.mkdtemp(prefix="govrelay-e2e-%s-" % cls.__name__)
        cls.sink = None
        cls.relay = None
        try:
            cls.relay = Relay(cls.workdir, **cls.relay_options)
            if cls.with_sink:
                cls.sink = Sink(cls.workdir).start()
                cls.relay.add_domain(cls.sink_domain, cls.sink.route)
            if cls.dead_domain:
                cls.relay.add_domain(cls.dead_domain,
                                     "smtp:127.0.0.1:%d" % cls.relay.dead_port)
            for d, route in cls.domains.items():
                cls.relay.add_domain(d, route)
            if cls.start_relay:
                cls.relay.start()
        except BaseException:
            cls._cleanup_class()
            raise

    @classmethod
    def _cleanup_class(cls):
        if cls.relay is not None and cls.relay.running():
            cls.relay.kill9()
        if cls.sink is not None:
            cls.sink.stop()
        if os.environ.get("KEEP_E2E") == "1":
            sys.stderr.write("KEEP_E2E: %s kept\n" % cls.workdir)
        else:
            shutil.rmtree(cls.workdir, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        err = None
        try:
            if cls.relay is not None and cls.relay.running():
                cls.relay.stop()      # asserts exit 0 after SIGTERM
        except AssertionError as e:
            err = e
        finally:
            cls._cleanup_class()
        if err:
            raise err

    # -- conveniences

    def raw(self, port=None, **kw):
        c = RawSMTP(port or self.relay.port, **kw)
        self.addCleanup(c.close)
        return c

    def assertReply(self, reply, code, prefix=None, what=""):
        if reply.code != code or (prefix is not None and not reply.last.startswith(prefix)):
            self.fail("%sexpected %d%s, got %r" % (what + ": " if what else "", code,
                                                   " " + prefix if prefix else "", reply.lines))

    def assertQueueEmpty(self, what=""):
        ids = self.relay.queue_ids()
        if ids:
            self.fail("%sexpected an empty queue, found %s" % (what + ": " if what else "", ids))


class _Result(unittest.TextTestResult):
    """Prints the relay log tail of a failing test's class."""

    def _dump(self, test):
        relay = getattr(type(test), "relay", None)
        if isinstance(relay, Relay):
            n = 1000 if os.environ.get("E2E_VERBOSE") == "1" else 25
            self.stream.write("\n--- %s: govrelayd log tail (%s)\n%s\n---\n"
                              % (test.id(), relay.logfile, relay.log_tail(n)))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._dump(test)

    def addError(self, test, err):
        super().addError(test, err)
        self._dump(test)


def main():
    """unittest.main mapped to automake's exit codes."""
    runner = unittest.TextTestRunner(verbosity=2, resultclass=_Result)
    prog = unittest.main(exit=False, testRunner=runner, module="__main__")
    res = prog.result
    if not res.wasSuccessful():
        sys.exit(1)
    if res.testsRun > 0 and len(res.skipped) == res.testsRun:
        sys.exit(77)
    if res.testsRun == 0 and res.skipped:
        sys.exit(77)
    sys.exit(0)
