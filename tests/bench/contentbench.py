"""
contentbench.py: the content-scanning row of make bench (issue 11).

One pair of govrelayd side by side in one run, ABBA order, the same client
(filesource.py, 20 sessions) and the same message: 50 KB from a trusted
agency server for a domain of ours, a short text part and a PDF
attachment (made at run time by tests/e2e/docfixtures.py, its text an
ordinary report: nothing is refused, so every message is scanned whole
and delivered). The plain relay (content_scan = no, no clamd) against the
same relay with every content check on: the MIME walker, the
classification finder over the text part, the file name and the PDF's
text (poppler, on the thread pool), and antivirus (a real clamd on a unix
socket, its database made from the EICAR test string with sigtool;
nothing downloaded). The with-checks rate must be at least 60% of the
plain relay's.

Entry point: content_phase(ctx), ctx as for authbench.auth_phase.
"""
import base64
import os
import shutil
import socket
import subprocess
import sys

import authbench

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
import docfixtures  # noqa: E402

CLAMD = "/usr/sbin/clamd"
SIGTOOL = "/usr/bin/sigtool"
CITY_DOMAIN = "city-bench.vn"
RCPT = "rcpt@" + CITY_DOMAIN
SIZE = 50 * 1024
SESSIONS = 20
COUNT = 4000
TARGET_RATIO = 0.60
EICAR = (b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*")


# The PDF starts with two comment lines: the first pads the second to
# byte 57, where a base64 line of the attachment starts, so filesource.py
# --vary can rewrite the second (48 bytes, 64 base64 characters) in every
# message: a different document each time, laid out alike.
PDF_PAD = b"%" + b"-" * 46 + b"\n"
PDF_VARY = b"%" + b"v" * 46 + b"\n"


def content_message(path):
    """About 50 KB: a text part and a PDF report attachment, base64.
    Returns the offset of the base64 of the PDF's rewritable comment."""
    lines = ["SỞ NỘI VỤ THÀNH PHỐ", "BÁO CÁO TỔNG KẾT CÔNG TÁC NĂM 2026"]
    n = 0
    while True:
        doc = docfixtures.pdf(lines, comment=PDF_PAD + PDF_VARY)
        if len(doc) * 4 // 3 > SIZE - 3000:
            break
        n += 1
        lines.append("Mục %d: tình hình thực hiện nhiệm vụ, số liệu và đánh giá kết quả." % n)
    assert doc.index(PDF_VARY) == 57
    att = base64.encodebytes(doc).replace(b"\n", b"\r\n")
    head = ("From: Van thu <vanthu@%s>\r\nTo: <%s>\r\nSubject: Bao cao tong ket\r\n"
            "Date: Fri, 04 Dec 2026 10:00:00 +0700\r\nMessage-ID: <bench.content@%s>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n"
            % (CITY_DOMAIN, RCPT, CITY_DOMAIN)).encode()
    text = ("--b1\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            "Kính gửi các phòng ban,\r\nSở gửi kèm báo cáo tổng kết năm.\r\n\r\n").encode()
    part = (b"--b1\r\nContent-Type: application/pdf; name=\"bao-cao.pdf\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=\"bao-cao.pdf\"\r\n\r\n")
    with open(path, "wb") as f:
        f.write(head + text + part + att + b"--b1--\r\n")
    offset = len(head + text + part) + 76 + 2   # the second base64 line
    assert base64.b64decode(att[76 + 2:76 + 2 + 64]) == PDF_VARY[:48]
    return offset


class BenchClamd:
    """clamd on a unix socket in tmp, with a database of one signature."""

    def __init__(self, ctx, tmp):
        self.dir = os.path.join(tmp, "clamd")
        db = os.path.join(self.dir, "db")
        os.makedirs(db, exist_ok=True)
        os.chmod(self.dir, 0o755)
        eicar = os.path.join(self.dir, "eicar.com")
        with open(eicar, "wb") as f:
            f.write(EICAR)
        sig = subprocess.run([SIGTOOL, "--md5", eicar], check=True, stdout=subprocess.PIPE,
                             cwd=self.dir).stdout.decode().strip()
        with open(os.path.join(db, "bench.hdb"), "w") as f:
            f.write(sig.rsplit(":", 1)[0] + ":Bench.EICAR\n")
        self.socket = os.path.join(self.dir, "clamd.sock")
        conf = os.path.join(self.dir, "clamd.conf")
        with open(conf, "w") as f:
            f.write("Foreground yes\nDatabaseDirectory %s\nLocalSocket %s\n"
                    "LocalSocketMode 666\nLogFile %s\nStreamMaxLength 64M\n"
                    "MaxFileSize 64M\nMaxScanSize 256M\nMaxThreads 4\nBytecode no\n"
                    % (db, self.socket, os.path.join(self.dir, "clamd.log")))
        argv = [CLAMD, "-c", conf]
        ctx.bench_cmd(argv)
        self.log = open(os.path.join(self.dir, "clamd.out"), "ab")
        self.proc = ctx.procs.spawn(argv, stdout=self.log, stderr=self.log)
        ctx.wait_until(self.answers, 60, what="clamd answering PING")

    def answers(self):
        if self.proc.poll() is not None:
            raise RuntimeError("clamd exited %d" % self.proc.returncode)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect(self.socket)
            s.sendall(b"zPING\0")
            return s.recv(16).startswith(b"PONG")
        except OSError:
            return False
        finally:
            s.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


def content_phase(ctx):
    """Returns (results, report lines)."""
    tmp = os.path.join(ctx.args.tmp, "content")
    os.makedirs(tmp, exist_ok=True)
    os.chmod(tmp, 0o755)
    if not (shutil.which(CLAMD) and shutil.which(SIGTOOL)):
        return [], ["## Content scanning (issue 11)", "",
                    "Not run: clamd or sigtool is missing (scripts/install-deps.sh --test).", ""]
    ctx.count = max(SESSIONS, COUNT // ctx.args.quick)
    msg = os.path.join(tmp, "content.eml")
    vary = content_message(msg)
    size = os.path.getsize(msg)
    dns = authbench.BenchUnbound(ctx, tmp, [])
    clamd = None
    relays = []
    results = []
    L = []
    try:
        clamd = BenchClamd(ctx, tmp)

        def relay(tag, name, extra):
            conf = authbench.AUTH_CONF.format(dns=dns.port, extra=extra)
            g = ctx.Govrelay(ctx.procs, tmp, ctx.args.govrelayd, ctx.args.govrelayctl,
                             ctx.sink.port, tag=tag, name=name, conf=conf)
            relays.append(g)
            return g
        common = ("trusted_networks = 127.0.0.0/8\nspf = off\ndkim_verify = off\n"
                  "dmarc = off\ndkim_sign = off\nmax_message_size = 10M\n")
        plain = relay("content-plain", "plain relay", common + "content_scan = no\n")
        scan = relay("content-scan", "content checks, no antivirus",
                     common + "content_scan = yes\n")
        full = relay("content-all", "every content check + clamd",
                     common + "content_scan = yes\nclamd = unix:%s\n" % clamd.socket)
        for g in relays:
            g.ctl_ok("domain", "add", CITY_DOMAIN, "--route",
                     "smtp:127.0.0.1:%d" % ctx.sink.port, "--accept-all")
            g.start()

        def argv_of(varied):
            def argv(target):
                a = [authbench.SYS_PYTHON, authbench.FILESOURCE, "--port", str(target.port),
                     "--file", msg, "--count", str(ctx.count), "--sessions", str(SESSIONS),
                     "--sender", "vanthu@" + CITY_DOMAIN, "--rcpt", RCPT]
                return a + ["--vary", str(vary)] if varied else a
            return argv
        for g in relays:
            ctx.run_case(ctx.procs, ctx.args.tmp, ctx.sink, g, size, SESSIONS,
                         max(20, 100 // ctx.args.quick), "warm-up", argv=argv_of(False)(g))
        rows = []
        watch = {"clamd": clamd.proc.pid}
        for label, checked, varied in (
                ("content checks, no antivirus; the same PDF each time", scan, False),
                ("content checks, no antivirus; a different PDF each time", scan, True),
                ("every content check + clamd; the same PDF each time", full, False),
                ("every content check + clamd; a different PDF each time", full, True)):
            pair = authbench.auth_pair(ctx, "content: " + label, plain, checked,
                                       argv_of(varied), results, watch=watch)
            rows.append((label, pair, checked is full))
        ran = authbench.auth_audit_says(full, ["received"])
        L += content_report(rows, ran, size)
    finally:
        for g in relays:
            g.stop()
        if clamd is not None:
            clamd.stop()
        dns.stop()
    return results, L


def content_report(rows, ran, size):
    cpu = lambda r: ("%.0f µs" % r["cpu_us"]) if r.get("cpu_us") else "—"  # noqa: E731
    rate = lambda r: ("%.0f" % r["rate"]) if r.get("rate") else "—"  # noqa: E731
    L = ["## Content scanning (issue 11): the content checks on, against the plain relay", "",
         "Client: tests/bench/filesource.py, 20 sessions, a %d-byte message (a text "
         "part and a 37 KB, 14-page PDF report attachment, base64) from a trusted agency "
         "server for a domain of ours; nothing in it is refused, so every message is "
         "scanned whole and delivered. Plain: content_scan = no, no clamd. The content "
         "checks: the MIME walker, the classification finder (Subject, text, file name, the "
         "PDF's first page through poppler on the thread pool), the attachment rules "
         "(libmagic). Antivirus: clamd INSTREAM over a unix socket. *The same PDF each "
         "time* is a circular sent to many agencies: the attachment's verdict is kept by "
         "its name and SHA-256 (policy/content_cache.c) and clamd keeps its own; *a different PDF "
         "each time* rewrites a comment line inside the PDF in every message "
         "(filesource.py --vary), so no verdict is reused. ABBA order, rate = messages of "
         "both runs over the summed times; CPU per message from the relay's cgroup (clamd "
         "is another process: its CPU is not in the relay's column, but it shares the two "
         "cores)." % size, "",
         "| case | plain relay msg/s | CPU / msg | with the checks msg/s | CPU / msg | "
         "with / plain | target ≥ 60% | checks ran |",
         "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for label, (a, b), _ in rows:
        ratio = b["rate"] / a["rate"] if a.get("rate") and b.get("rate") else None
        L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, rate(a), cpu(a), rate(b), cpu(b),
            "%.0f%%" % (100 * ratio) if ratio else "—",
            "—" if ratio is None else ("yes" if ratio >= TARGET_RATIO else "**no**"),
            "yes" if ran[0] else "**no**: " + ran[1][:200]))
    L.append("")
    return L + content_ceiling(rows)


def content_ceiling(rows, ncpu=None):
    """Where the cores went in each pair, and the rate clamd's own cost
    allows: the plain run's whole-machine CPU per message (client, relay,
    sink, kernel) plus clamd's CPU per scan, on ncpu cores. It is an upper
    bound for any relay, ours at no cost included, since the client, the
    sink and clamd do the same work whatever the relay does."""
    ncpu = ncpu or os.cpu_count()
    us = lambda v: "—" if v is None else "%.0f µs" % v  # noqa: E731
    L = ["The whole machine's busy CPU per message while each run's messages went "
         "through (/proc/stat: user, nice, system, irq, softirq of every core; the "
         "client, the relay, smtp-sink, clamd and the kernel together) and clamd's own "
         "(/proc/PID/stat). *Ceiling*: the highest rate %d cores allow if the relay's "
         "content checks cost nothing and only clamd's scan is added to the plain run, "
         "%d CPU-seconds a second ÷ (the plain run's machine CPU per message + clamd's "
         "CPU per message), as a share of the plain rate. Below 60%%, no relay can meet "
         "the target on this machine with this clamd." % (ncpu, ncpu), "",
         "| case | machine CPU / msg, plain | machine CPU / msg, with the checks | "
         "clamd CPU / msg | ceiling msg/s | ceiling / plain |",
         "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for label, (a, b), scanned in rows:
        clamd = b.get("watch_us", {}).get("clamd") if scanned else None
        cap = None
        if clamd is not None and a.get("machine_us") and a.get("rate"):
            cap = ncpu * 1e6 / (a["machine_us"] + clamd)
        L.append("| %s | %s | %s | %s | %s | %s |" % (
            label, us(a.get("machine_us")), us(b.get("machine_us")), us(clamd),
            "—" if cap is None else "%.0f" % cap,
            "—" if cap is None else "%.0f%%" % (100 * min(cap, a["rate"]) / a["rate"])))
    L.append("")
    return L
