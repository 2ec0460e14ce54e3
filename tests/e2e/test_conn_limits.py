"""
e2e: what the connection layer (relay/conn.c) bounds on the mx listener:
output backpressure (a client that pipelines megabytes of HELP/NOOP and
never reads cannot grow govrelayd's memory), junk_command_limit, the
command deadline counted from a line's first byte (a client trickling one
byte every 2 s is closed), and max_session_time.
"""
import os
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import HOSTNAME, RelayTestCase, queued_id, wait_for  # noqa: E402

FLOOD_BYTES = 12 * 1024 * 1024
RSS_GROWTH_MAX_KB = 16 * 1024

# VmRSS is the daemon's memory only when nothing else lives in its process.
# AddressSanitizer keeps freed memory in a quarantine (256 MB by default)
# that RSS counts: turn it off for these daemons, so RSS shows what the
# daemon holds (harmless for a build without ASan). Under a wrapper such as
# valgrind the process is the tool's, with its own freed-block queue and
# code cache: the RSS bound is then reported, not asserted.
os.environ["ASAN_OPTIONS"] = ":".join(filter(None, [
    os.environ.get("ASAN_OPTIONS", ""), "quarantine_size_mb=0",
    "thread_local_quarantine_size_kb=0"]))
RSS_IS_THE_DAEMONS = not os.environ.get("GOVRELAYD_WRAPPER", "").strip()


def vm_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


class Flooder:
    """Sends FLOOD_BYTES of pipelined HELP/NOOP on a thread, never reading;
    counts what the kernel took, stops at the first error."""

    def __init__(self, sock):
        self.sock = sock
        self.sent = 0
        self.error = None
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        block = memoryview(b"HELP\r\nNOOP\r\n" * 4096)      # 48 KiB, divides 12 MiB
        try:
            while self.sent < FLOOD_BYTES:
                off = self.sent % len(block)
                self.sent += self.sock.send(block[off:])
        except OSError as e:
            self.error = e

    def stalled(self, quiet=1.0):
        """True when nothing was sent for `quiet` seconds (or it ended)."""
        before = self.sent
        self.thread.join(quiet)
        return not self.thread.is_alive() or self.sent == before


class FloodJunkLimitTest(RelayTestCase):
    """Default junk_command_limit: the flood is cut after 100 commands."""
    with_sink = False

    def test_flood_closed_by_junk_limit(self):
        pid = self.relay.proc.pid
        before = vm_rss_kb(pid)
        c = self.raw()
        c.sock.settimeout(None)
        f = Flooder(c.sock)
        f.thread.join(30)
        self.assertFalse(f.thread.is_alive(), "the flood never ended")
        self.relay.wait_log(r"event=too_many_junk_commands")
        grown = vm_rss_kb(pid) - before
        sys.stderr.write("%s: govrelayd RSS %d kB -> +%d kB, %d bytes sent\n"
                         % (self.id(), before, grown, f.sent))
        if RSS_IS_THE_DAEMONS:
            self.assertLess(grown, RSS_GROWTH_MAX_KB, "RSS grew by %d kB" % grown)
        self.assertLess(f.sent, FLOOD_BYTES, "the session must be closed before 12 MB")
        c.close()
        # Replies: the 421 of the limit, read by a client that does read.
        d = self.raw()
        d.ehlo()
        final = None
        for i in range(200):
            r = d.cmd("NOOP")
            if r.code != 250:
                final = r
                break
        self.assertIsNotNone(final)
        self.assertEqual(final.last, "421 4.7.0 %s Error: too many junk commands" % HOSTNAME)
        self.assertEqual(i, 99, "EHLO and 99 NOOPs are allowed, the 100th junk is not")
        self.assertTrue(d.wait_closed(3))


class FloodBackpressureTest(RelayTestCase):
    """A limit too high to matter: only backpressure bounds the memory."""
    relay_options = {"junk_command_limit": 1000000000}
    with_sink = False

    def test_flood_without_reading_is_bounded_then_resumes(self):
        pid = self.relay.proc.pid
        before = vm_rss_kb(pid)
        c = self.raw()
        c.sock.settimeout(None)
        f = Flooder(c.sock)
        wait_for(lambda: f.stalled(1.0), 30, what="the flood stalls (server stopped reading)")
        self.assertTrue(f.thread.is_alive(), "server must stop reading: the flood ended")
        self.assertLess(f.sent, FLOOD_BYTES)
        grown = vm_rss_kb(pid) - before
        sys.stderr.write("%s: govrelayd RSS %d kB -> +%d kB, %d bytes sent\n"
                         % (self.id(), before, grown, f.sent))
        if RSS_IS_THE_DAEMONS:
            self.assertLess(grown, RSS_GROWTH_MAX_KB, "RSS grew by %d kB" % grown)
        # The client reads now: the server resumes, answers every command
        # in order and the rest of the flood goes in.
        d = self.raw()
        one_pair = len(("\r\n".join(d.cmd("HELP").lines + d.cmd("NOOP").lines) +
                        "\r\n").encode())
        d.close()
        expected = (FLOOD_BYTES // 12) * one_pair
        c.sock.settimeout(10)
        received = 0
        tail = b""
        while received < expected:
            chunk = c.sock.recv(1 << 20)
            if not chunk:
                break
            received += len(chunk)
            tail = (tail + chunk)[-256:]
        f.thread.join(10)
        self.assertIsNone(f.error)
        self.assertEqual(f.sent, FLOOD_BYTES, "the whole flood was taken after draining")
        self.assertEqual(received, expected, "every command was answered")
        self.assertTrue(tail.endswith(b"250 2.0.0 Ok\r\n"), tail)
        grown = vm_rss_kb(pid) - before
        sys.stderr.write("%s: govrelayd RSS %d kB -> +%d kB, %d bytes sent\n"
                         % (self.id(), before, grown, f.sent))
        if RSS_IS_THE_DAEMONS:
            self.assertLess(grown, RSS_GROWTH_MAX_KB, "RSS grew by %d kB" % grown)
        c.close()


class JunkResetTest(RelayTestCase):
    relay_options = {"junk_command_limit": 5}

    def test_queued_message_resets_junk_count(self):
        c = self.raw()
        c.ehlo()                                     # 1
        for i in range(3):                           # 2..4
            self.assertReply(c.cmd("NOOP"), 250)
        queued_id(c.send_message("junk@example.test", ["junk@ours.test"],
                                 b"Subject: junk\r\n\r\nreset\r\n", ehlo=False))
        for i in range(5):
            self.assertReply(c.cmd("RSET" if i % 2 else "VRFY x"), 250 if i % 2 else 252)
        r = c.cmd("HELP")
        self.assertEqual(r.last, "421 4.7.0 %s Error: too many junk commands" % HOSTNAME)
        self.assertTrue(c.wait_closed(3))


class TrickleTest(RelayTestCase):
    relay_options = {"command_timeout": "5s"}
    with_sink = False

    def test_one_byte_every_2s_closed_at_command_deadline(self):
        c = self.raw()
        c.ehlo()
        t0 = time.monotonic()
        final = None
        for b in b"MAIL FROM:<trickle@example.test>\r\n":
            try:
                c.send(bytes([b]))
                final = c.reply(timeout=2)
                break
            except socket.timeout:
                continue
            except (harness.Closed, OSError):
                break
        elapsed = time.monotonic() - t0
        self.assertIsNotNone(final, "no reply while trickling")
        self.assertEqual(final.last, "421 4.4.2 %s Error: timeout exceeded" % HOSTNAME)
        self.assertGreater(elapsed, 4.5, "deadline fired too early")
        self.assertLess(elapsed, 8, "deadline must count from the first byte")
        self.assertTrue(c.wait_closed(3))


class SessionTimeTest(RelayTestCase):
    relay_options = {"max_session_time": "3s", "command_timeout": "10s"}
    with_sink = False

    def test_busy_session_ends_at_max_session_time(self):
        c = self.raw()
        t0 = time.monotonic()
        c.ehlo()
        final = None
        while time.monotonic() - t0 < 10:
            r = c.cmd("MAIL FROM:<long@example.test>")
            if r.code == 421:
                final = r
                break
            self.assertReply(r, 250)
            self.assertReply(c.cmd("RSET"), 250)
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        self.assertIsNotNone(final, "session never ended")
        self.assertEqual(final.last,
                         "421 4.4.2 %s Error: session time limit exceeded" % HOSTNAME)
        self.assertGreater(elapsed, 2.5)
        self.assertLess(elapsed, 6)
        self.assertTrue(c.wait_closed(3))


class ControlExecOutputTest(RelayTestCase):
    """An exec whose output is far over the control connection's write
    backlog, read by a client that waits first: the command waits for it
    (no output lost, nothing written around the conn's queue)."""
    with_sink = False

    def test_large_exec_output_to_a_slow_reader(self):
        self.relay.add_domain("big.test", "smtp:127.0.0.1:1", accept_all=False)
        csv = os.path.join(self.workdir, "big.csv")
        with open(csv, "w") as f:
            for i in range(4000):
                f.write("mailbox-number-%05d@big.test\n" % i)
        self.relay.ctl_ok("mailbox", "import", csv)
        local = self.relay.ctl_ok("mailbox", "list", "--domain", "big.test").stdout.encode()
        self.assertGreater(len(local), 2 * 64 * 1024)
        argv = [b"mailbox", b"list", b"--domain", b"big.test"]
        payload = struct.pack(">I", len(argv))
        for a in argv:
            payload += struct.pack(">I", len(a)) + a
        payload += struct.pack(">I", 0)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(os.path.join(self.relay.data_dir, "control.sock"))
        sock.sendall(b"exec %d\n" % len(payload) + payload)
        # A slow reader (not a readiness wait): the command runs into the
        # backlog bound and must wait for us rather than lose output.
        time.sleep(1.5)
        sock.settimeout(15)
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        sock.close()
        out = b""
        while data:
            head, _, rest = data.partition(b"\n")
            kind, _, n = head.partition(b" ")
            if kind == b"exit":
                self.assertEqual(n, b"0", head)
                self.assertEqual(rest, b"")
                break
            self.assertIn(kind, (b"out", b"err"), head)
            n = int(n)
            if kind == b"out":
                out += rest[:n]
            data = rest[n:]
        else:
            self.fail("no exit line")
        self.assertEqual(out, local)


if __name__ == "__main__":
    harness.main()
