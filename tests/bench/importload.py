"""
importload.py: the delegated-import phase of `make bench` (issue 8, "one
writer"), called by bench.py on a fresh govrelayd of its own.

Unix user `nobody` is made postmaster of a tenant that owns staff.test.
Then 20 sessions of latency.py send 5 KB messages at a fixed offered rate,
twice: once alone (the baseline), and once while nobody runs
`govrelayctl mailbox import` of a 100,000-row CSV against the running
daemon (which runs it on its thread pool and hands every batch of rows to
its one writer thread). The second run's samples are cut to the import's
window (end of DATA sent after the import started and before it ended).
Reported: p50/p99/max end of DATA -> 250 without and during the import,
the import's duration and how many transactions (audit records, one per
batch) it committed.

Everything on 127.0.0.1; every wait has a deadline.
"""
import json
import math
import os
import pwd
import subprocess
import sys
import time

ROWS = 100000
CONNS = 20
DOMAIN = "staff.test"


def il_pct(vals, p):
    if not vals:
        return None
    k = min(len(vals) - 1, max(0, math.ceil(p / 100.0 * len(vals)) - 1))
    return vals[k]


def il_stats(samples):
    v = sorted(s[1] for s in samples)
    ms = lambda x: None if x is None else round(x * 1000.0, 2)  # noqa: E731
    return {"n": len(v), "p50_ms": ms(il_pct(v, 50)), "p99_ms": ms(il_pct(v, 99)),
            "max_ms": ms(v[-1] if v else None)}


def il_csv(path):
    with open(path, "w") as f:
        f.write("address,alias-of\n")
        for i in range(ROWS):
            f.write("staff%06d@%s\n" % (i, DOMAIN))
    os.chmod(path, 0o644)


def il_latency(here, port, rate, duration, dump, rcpt, bench_cmd):
    argv = [sys.executable, os.path.join(here, "latency.py"), "--port", str(port),
            "--rate", "%.0f" % rate, "--duration", str(duration), "--conns", str(CONNS),
            "--size", "5120", "--rcpt", rcpt, "--dump", dump]
    bench_cmd(["python3", "tests/bench/latency.py"] + argv[2:])
    return argv


def il_load(dump):
    with open(dump) as f:
        return [tuple(x) for x in json.load(f)]


def run(gv, here, tmp, rate, rcpt, bench_cmd, log, quick=1):
    """gv: a started Govrelay of its own. Returns the phase's results."""
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        log("import: no user nobody; phase skipped")
        return None
    gv.ctl_ok("tenant", "add", "agency", "--name", "Agency")
    gv.ctl_ok("domain", "add", DOMAIN, "--tenant", "agency", "--route", "mx")
    gv.ctl_ok("operator", "add", "nobody", "--tenant", "agency", "--role", "postmaster")
    for d in (tmp, gv.dir):
        os.chmod(d, 0o755)
    os.chmod(gv.conf, 0o644)
    csv = os.path.join(tmp, "staff.csv")
    il_csv(csv)
    duration = 10.0 if quick == 1 else 4.0

    # baseline: the same load, no import
    dump0 = os.path.join(tmp, "import-baseline.json")
    argv = il_latency(here, gv.port, rate, duration / 2, dump0, rcpt, bench_cmd)
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=duration + 120)
    if r.returncode != 0:
        raise RuntimeError("latency.py failed: %s" % r.stderr)
    base = il_stats(il_load(dump0))
    base_errors = json.loads(r.stdout.strip().splitlines()[-1])["errors"]

    # the same load with the delegated import in the middle of it
    dump1 = os.path.join(tmp, "import-during.json")
    argv = il_latency(here, gv.port, rate, duration, dump1, rcpt, bench_cmd)
    lat = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True)
    try:
        time.sleep(1.0)              # the load is running
        imp_argv = [gv.ctl, "-c", gv.conf, "mailbox", "import", csv]
        bench_cmd(["runuser", "-u", "nobody", "--"] + imp_argv)
        t0 = time.monotonic()
        imp = subprocess.run(imp_argv, user=pw.pw_uid, group=pw.pw_gid, extra_groups=[],
                             cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, timeout=600)
        t1 = time.monotonic()
        out, err = lat.communicate(timeout=duration + 120)
    finally:
        if lat.poll() is None:
            lat.kill()
            lat.wait()
    if imp.returncode != 0:
        raise RuntimeError("import as nobody: exit %d: %s%s" % (imp.returncode, imp.stdout,
                                                                imp.stderr))
    if lat.returncode != 0:
        raise RuntimeError("latency.py failed: %s" % err)
    samples = il_load(dump1)
    inside = [s for s in samples if t0 <= s[0] <= t1]
    during = il_stats(inside)
    whole = il_stats(samples)
    recs = gv.ctl_ok("audit", "search", "--event", "admin", "--json")
    batches = sum(1 for l in recs.splitlines()
                  if l.strip() and json.loads(l).get("action") == "mailbox.import")
    res = {"rate": rate, "conns": CONNS, "rows": ROWS, "import_s": round(t1 - t0, 2),
           "batches": batches, "baseline": base, "during": during, "whole_run": whole,
           "errors": base_errors + json.loads(out.strip().splitlines()[-1])["errors"],
           "outlasted_load": t1 > samples[-1][0] if samples else True,
           "import_stdout": imp.stdout.strip()}
    log("import: %s" % json.dumps(res))
    return res


def report_rows(res):
    """Markdown table rows for bench.py's latency table."""
    if not res:
        return []
    b, d = res["baseline"], res["during"]
    return [
        "| end of DATA → 250, 5 KB, %.0f msg/s offered over %d sessions, no import (%d samples) "
        "| p50 %s ms, p99 %s ms, max %s ms |" % (res["rate"], res["conns"], b["n"], b["p50_ms"],
                                                b["p99_ms"], b["max_ms"]),
        "| the same while a delegated operator (nobody, through the control socket) runs "
        "`mailbox import` of %d rows: samples sent during the import (%d; the import took "
        "%.2f s and committed %d transactions)%s | p50 %s ms, p99 %s ms, max %s ms%s |"
        % (res["rows"], d["n"], res["import_s"], res["batches"],
           " (**the import outlasted the load**)" if res["outlasted_load"] else "",
           d["p50_ms"], d["p99_ms"], d["max_ms"],
           ", %d errors" % res["errors"] if res["errors"] else ""),
    ]


def report_target(res):
    """(target, measured, met) for the targets table."""
    if not res or res["during"]["p99_ms"] is None or res["baseline"]["p99_ms"] is None:
        return None
    extra = res["during"]["p99_ms"] - res["baseline"]["p99_ms"]
    return ("p99 end of DATA → 250 during a 100,000-row delegated import at most 100 ms "
            "above the p99 without it", "%+.1f ms (max %s ms)" % (extra, res["during"]["max_ms"]),
            extra <= 100.0 and not res["errors"])
