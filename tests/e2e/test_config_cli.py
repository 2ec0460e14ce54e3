"""
e2e: `govrelayd -t` on good and bad configurations (exit 0 / 78 with
FILE:LINE), govrelayctl domain add/list/show/remove with --json while
the daemon runs, govrelayctl exit codes (66 unknown object, 64 usage),
SIGTERM exits 0.
"""
import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (EX_CONFIG, EX_NOINPUT, EX_USAGE, GOVRELAYD, Relay,  # noqa: E402
                     RelayTestCase, parse_json_lines)


def check_config(path):
    return subprocess.run([GOVRELAYD, "-t", "-c", path], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=20)


class ConfigCheckTest(RelayTestCase):
    with_sink = False
    dead_domain = None
    start_relay = False

    def write(self, name, text):
        path = os.path.join(self.workdir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_good_config(self):
        r = check_config(self.relay.conf)
        self.assertEqual(r.returncode, 0, "govrelayd -t on the harness config: %s" % r.stderr)

    def test_good_config_with_everything(self):
        cert, key = harness.make_cert(self.workdir)
        data = os.path.join(self.workdir, "full-data")
        os.makedirs(data, exist_ok=True)
        path = self.write("full.conf", "\n".join([
            "# every key this issue uses",
            "hostname = relay.test",
            "data_dir = %s" % data,
            "",
            "listen = mx 127.0.0.1:%d" % harness.free_port(),
            "listen = submission 127.0.0.1:%d" % harness.free_port(),
            "listen = submissions 127.0.0.1:%d" % harness.free_port(),
            "tls_cert_file = %s" % cert,
            "tls_key_file = %s" % key,
            "trusted_networks = 127.0.0.0/8 ::1/128",
            "max_message_size = 10485760",
            "max_recipients = 50",
            "max_connections = 100",
            "max_connections_per_ip = 10",
            "command_timeout = 2m",
            "data_timeout = 500s",
            "greet_pause = 500ms",
            "max_bad_commands = 5",
            "minimal_backoff_time = 1s",
            "maximal_backoff_time = 1h",
            "time_scale = 10",
            "delivery_concurrency = 4",
            ""]))
        r = check_config(path)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_bad_config_reports_every_error(self):
        data = os.path.join(self.workdir, "bad-data")
        os.makedirs(data, exist_ok=True)
        path = self.write("bad.conf", "\n".join([
            "data_dir = %s" % data,                          # 1
            "listen = mx 127.0.0.1:%d" % harness.free_port(),  # 2
            "no_such_key = 1",                                # 3
            "# comment",                                      # 4
            "command_timeout = 5",                            # 5: no unit
            "max_recipients = -3",                            # 6
            "listen = bogus 127.0.0.1:25",                    # 7
            "greet_pause = 10s",                              # 8: fine
            ""]))
        r = check_config(path)
        self.assertEqual(r.returncode, EX_CONFIG, "exit status: %d\n%s" % (r.returncode, r.stderr))
        for line in (3, 5, 6, 7):
            self.assertIn("%s:%d:" % (path, line), r.stderr,
                          "no %s:%d: error in:\n%s" % (path, line, r.stderr))
        self.assertNotIn("%s:8:" % path, r.stderr)

    def test_bad_config_refuses_to_start(self):
        path = self.write("bad2.conf", "data_dir = %s\nlisten = mx 127.0.0.1:%d\nwhat = ever\n"
                          % (os.path.join(self.workdir, "bad2"), harness.free_port()))
        r = subprocess.run([GOVRELAYD, "-f", "-c", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True, timeout=20)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("%s:3:" % path, r.stderr)

    def test_clamd_checked(self):
        # Virus scanning exists (issue 11): a good clamd line passes -t and
        # config check; a bad one is refused with FILE:LINE, by both and at
        # start (mail must never pass unscanned behind a typo).
        data = os.path.join(self.workdir, "clamd-data")
        os.makedirs(data, exist_ok=True)
        base = "data_dir = %s\nlisten = mx 127.0.0.1:%d\n" % (data, harness.free_port())
        path = self.write("clamd.conf", base + "clamd = tcp:127.0.0.1:3310\n"
                          "clamd_timeout = 20s\n")
        r = check_config(path)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([harness.GOVRELAYCTL, "-c", path, "config", "check"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        for value, words in (("tcp:localhost:3310", "names are not resolved"),
                             ("127.0.0.1:3310", "expected unix:PATH or tcp:ADDRESS:PORT"),
                             ("unix:", "needs a socket path")):
            path = self.write("clamd-bad.conf", base + "clamd = %s\n" % value)
            r = check_config(path)
            self.assertEqual(r.returncode, EX_CONFIG, r.stderr)
            self.assertIn("%s:3: clamd:" % path, r.stderr)
            self.assertIn(words, r.stderr)
            r = subprocess.run([GOVRELAYD, "-f", "-c", path], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, universal_newlines=True, timeout=20)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("%s:3: clamd:" % path, r.stderr)
            r = subprocess.run([harness.GOVRELAYCTL, "-c", path, "config", "check"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               universal_newlines=True, timeout=20)
            self.assertEqual(r.returncode, EX_CONFIG, r.stdout + r.stderr)
            self.assertIn("%s:3: clamd:" % path, r.stdout + r.stderr)
        path = self.write("clamd-slow.conf", base + "clamd = unix:/run/clamav/clamd.ctl\n"
                          "clamd_timeout = 10m\n")
        r = check_config(path)
        self.assertEqual(r.returncode, EX_CONFIG, r.stderr)
        self.assertIn("%s:4: clamd_timeout:" % path, r.stderr)

    def test_missing_config_file(self):
        r = check_config(os.path.join(self.workdir, "does-not-exist.conf"))
        self.assertNotEqual(r.returncode, 0)


class CliTest(RelayTestCase):
    with_sink = False

    def test_sigterm_exits_zero(self):
        self.relay.stop()            # asserts exit 0
        self.relay.start()

    def test_domain_lifecycle_json(self):
        rel = self.relay
        self.assertTrue(rel.running())
        rel.ctl_ok("domain", "add", "Cli.Example.TEST", "--route", "smtp:127.0.0.1:2525")
        rows = parse_json_lines(rel.ctl_ok("domain", "list", "--json").stdout)
        names = [r.get("name") or r.get("domain") for r in rows]
        self.assertIn("cli.example.test", names, "domain list --json: %r" % rows)
        show = harness.json.loads(rel.ctl_ok("domain", "show", "CLI.example.test", "--json").stdout)
        self.assertEqual(show.get("route"), "smtp:127.0.0.1:2525", show)
        self.assertEqual(show.get("name") or show.get("domain"), "cli.example.test", show)
        self.assertIs(show.get("accept_all"), False, show)
        rel.ctl_ok("domain", "add", "all.example.test", "--route", "smtp:127.0.0.1:2525",
                   "--accept-all")
        show = harness.json.loads(rel.ctl_ok("domain", "show", "all.example.test", "--json").stdout)
        self.assertIs(show.get("accept_all"), True, show)
        rel.ctl_ok("domain", "remove", "all.example.test")
        text = rel.ctl_ok("domain", "list").stdout
        self.assertIn("cli.example.test", text)
        rel.ctl_ok("domain", "remove", "cli.example.test")
        r = rel.ctl("domain", "show", "cli.example.test", "--json")
        self.assertEqual(r.returncode, EX_NOINPUT, "show after remove: %d %s" % (r.returncode, r.stderr))
        rows = parse_json_lines(rel.ctl_ok("domain", "list", "--json").stdout)
        self.assertNotIn("cli.example.test", [r.get("name") or r.get("domain") for r in rows])

    def test_exit_codes(self):
        rel = self.relay
        cases = [
            (("domain", "show", "unknown.test"), EX_NOINPUT),
            (("domain", "remove", "unknown.test"), EX_NOINPUT),
            (("queue", "show", "0123456789ABCDEF"), EX_NOINPUT),
            (("domain",), EX_USAGE),
            (("domain", "add"), EX_USAGE),
            (("domain", "add", "x.test"), EX_USAGE),          # --route missing
            (("domain", "frobnicate"), EX_USAGE),
            (("nosuchnoun", "list"), EX_USAGE),
        ]
        for args, code in cases:
            with self.subTest(args=args):
                r = rel.ctl(*args)
                self.assertEqual(r.returncode, code, "govrelayctl %s: exit %d (stderr %r)"
                                 % (" ".join(args), r.returncode, r.stderr))
        r = rel.ctl("domain", "add", "bad-route.test", "--route", "carrier-pigeon:x")
        self.assertIn(r.returncode, (EX_USAGE, 65), "bad route: exit %d" % r.returncode)
        self.assertEqual(rel.ctl("domain", "show", "bad-route.test").returncode, EX_NOINPUT)
        r = rel.ctl("queue", "show", "not-an-id")
        self.assertIn(r.returncode, (EX_USAGE, 65), "malformed id: exit %d" % r.returncode)

    def test_queue_list_empty(self):
        r = self.relay.ctl_ok("queue", "list", "--json")
        self.assertEqual(parse_json_lines(r.stdout), [], r.stdout)
        self.relay.ctl_ok("queue", "list")

    def test_queue_show_while_running(self):
        c = self.raw()
        c.ehlo()
        qid = harness.queued_id(c.send_message("cli@example.test", ["cli@held.test"],
                                               b"Subject: cli\r\n\r\ncli body\r\n", ehlo=False))
        self.assertIn(qid, self.relay.queue_ids())
        show = self.relay.queue_show(qid)
        dump = harness.json.dumps(show)
        self.assertIn("cli@example.test", dump)
        self.assertIn("cli@held.test", dump)
        text = self.relay.ctl_ok("queue", "show", qid).stdout
        self.assertIn("cli@held.test", text)


if __name__ == "__main__":
    harness.main()
