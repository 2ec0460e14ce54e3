"""
cputime.py: user + system CPU seconds a relay consumes, for bench.py.

A relay is measured one of two ways, the first that works:

  cgroup  The relay is started inside a cgroup of its own, made under
          bench.py's own cgroup in a hierarchy that accounts CPU time
          (cgroup v1 with the cpuacct controller: cpuacct.usage, in ns;
          else cgroup v2: cpu.stat usage_usec, which exists whether or not
          the cpu controller is enabled). Every process the relay forks
          stays in it, so this counts Postfix's master and all its
          children, including those that come and go within a case, and
          every thread of govrelayd, including ended ones. Exact to the
          scheduler's accounting; needs root and a writable cgroup mount.
  proc    /proc/PID/stat of the relay's process: utime + stime + cutime +
          cstime (cutime/cstime: children it has reaped), and for Postfix
          the same four summed over every live process whose parent chain
          leads to the master (the master reaps its children, so their
          CPU moves into its cutime/cstime when they exit). In clock ticks
          (SC_CLK_TCK, usually 100 per second), truncated per process, so
          each process read may be off by up to two ticks between two
          samples; a process that exits between the walk and the read of
          the master's own line can be counted twice or not at all.

BENCH_NO_CGROUP=1 in the environment forces the /proc way, to compare.
cpu_sample(), cpu_result() and cpu_how() are what bench.py calls per run;
machine_busy_seconds() is the whole machine's, for the content rows'
account of where the cores went;
cpu_report_text() says in the report how each relay was measured.
Each cgroup made is listed in TMP/cgroups (one path a line) so that
tests/bench/run.sh can remove it whatever happens; Cgroup.remove() does it
here. Nothing else in the system is touched.
"""
import os
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
CG_PREFIX = "govrelay-bench-"


def cpu_unescape(path):
    """mountinfo escapes blanks and backslashes as \\ooo."""
    out = []
    i = 0
    while i < len(path):
        if path[i] == "\\" and i + 3 < len(path) and path[i + 1:i + 4].isdigit():
            out.append(chr(int(path[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(path[i])
            i += 1
    return "".join(out)


def cpu_hierarchy():
    """("v1", mount) for a cgroup v1 hierarchy with cpuacct, else ("v2",
    mount) for cgroup v2, else None."""
    v1 = v2 = None
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                pre, _, post = line.partition(" - ")
                fields, tail = pre.split(), post.split()
                if len(fields) < 5 or len(tail) < 3:
                    continue
                mnt = cpu_unescape(fields[4])
                if tail[0] == "cgroup" and "cpuacct" in tail[2].split(","):
                    v1 = v1 or mnt
                elif tail[0] == "cgroup2":
                    v2 = v2 or mnt
    except OSError:
        return None
    if v1:
        return ("v1", v1)
    if v2:
        return ("v2", v2)
    return None


def cpu_own_cgroup(kind, pid="self"):
    """The cgroup path of a process in that hierarchy, e.g. "/" or
    "/user.slice/x.scope"; None if the process is gone."""
    try:
        with open("/proc/%s/cgroup" % pid) as f:
            for line in f:
                hid, ctrls, path = line.rstrip("\n").split(":", 2)
                if kind == "v1" and "cpuacct" in ctrls.split(","):
                    return path
                if kind == "v2" and hid == "0" and ctrls == "":
                    return path
    except (OSError, ValueError):
        return None
    return None


class Cgroup:
    """A cgroup of its own for one relay. make() returns None when none
    can be made (no CPU-accounting hierarchy, not root, read-only)."""

    def __init__(self, kind, mount, rel):
        self.kind = kind
        self.rel = rel                           # path inside the hierarchy
        self.path = os.path.join(mount, rel.lstrip("/"))

    @classmethod
    def make(cls, tmp, tag):
        if os.environ.get("BENCH_NO_CGROUP") == "1":
            return None                          # run.sh: force the /proc method
        h = cpu_hierarchy()
        if h is None:
            return None
        own = cpu_own_cgroup(h[0])
        if own is None:
            return None
        rel = os.path.join(own, "%s%d-%s" % (CG_PREFIX, os.getpid(), tag))
        cg = cls(h[0], h[1], rel)
        try:
            os.mkdir(cg.path)
        except OSError:
            return None
        with open(os.path.join(tmp, "cgroups"), "a") as f:
            f.write(cg.path + "\n")
        if cg.seconds() is None:
            cg.remove(1.0)
            return None
        return cg

    def join(self):
        """A preexec_fn: the child moves itself in before it execs, so
        everything it forks is counted. A refusal (cgroup v2 may say
        EBUSY) is ignored here: the caller checks holds() and falls back
        to /proc."""
        try:
            with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        except OSError:
            pass

    def holds(self, pid):
        return cpu_own_cgroup(self.kind, pid) == self.rel

    def seconds(self):
        try:
            if self.kind == "v1":
                with open(os.path.join(self.path, "cpuacct.usage")) as f:
                    return int(f.read()) / 1e9
            with open(os.path.join(self.path, "cpu.stat")) as f:
                for line in f:
                    k, v = line.split()
                    if k == "usage_usec":
                        return int(v) / 1e6
        except (OSError, ValueError):
            return None
        return None

    def remove(self, timeout=10.0):
        """rmdir once its processes have gone (polled, with a deadline)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.rmdir(self.path)
                return True
            except FileNotFoundError:
                return True
            except OSError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.1)


def cpu_proc_stat(pid):
    """(ppid, utime + stime, cutime + cstime) in ticks, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])
    except (OSError, IndexError, ValueError):
        return None


def machine_busy_seconds():
    """CPU seconds every core has spent busy since boot, from /proc/stat's
    cpu line: user, nice, system, irq and softirq (guest time is inside
    user); idle, iowait and steal (time the host gave to others) are not
    work done here. None where /proc/stat cannot be read."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        if fields[0] != "cpu":
            return None
        user, nice, system, _idle, _iowait, irq, softirq = (int(v) for v in fields[1:8])
    except (OSError, IndexError, ValueError):
        return None
    return (user + nice + system + irq + softirq) / float(CLK_TCK)


def cpu_proc_seconds(pid):
    """One process: its own CPU and its reaped children's, in seconds."""
    s = cpu_proc_stat(pid)
    return None if s is None else (s[1] + s[2]) / float(CLK_TCK)


def cpu_tree_seconds(root):
    """root and every live process whose parent chain leads to it: own
    plus reaped children's CPU, in seconds. The descendants are read
    first, the root last (see the module comment for the race)."""
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = cpu_proc_stat(int(name))
            if s is not None:
                stats[int(name)] = s
    kids = {}
    for pid, s in stats.items():
        kids.setdefault(s[0], []).append(pid)
    total = 0
    todo = list(kids.get(root, []))
    while todo:
        pid = todo.pop()
        total += stats[pid][1] + stats[pid][2]
        todo.extend(kids.get(pid, []))
    s = cpu_proc_stat(root)
    if s is None:
        return None
    return (total + s[1] + s[2]) / float(CLK_TCK)


def fmt_cpu(us):
    """CPU per message for the report: always in µs, so cells compare."""
    if us is None:
        return "—"
    return "%.0f µs" % us if us >= 10 else "%.1f µs" % us


def cpu_sample(target):
    """The relay's CPU seconds so far, by method ({} for no relay)."""
    f = getattr(target, "cpu_sample", None)
    return f() if f else {}


def cpu_how(target):
    """How a relay's CPU time is read: "cgroup-v1", "cgroup-v2" or "proc"."""
    return "cgroup-" + target.cg.kind if target.cg is not None else "proc"


def cpu_result(res, before, after):
    """CPU of one run: cpu_s (seconds by method), cpu_method (the first
    method both samples have), cpu_us (its µs per delivered message).
    The window runs from just before smtp-source starts until the relay's
    queue is empty again, so work done after the 250 is counted."""
    res["cpu_s"] = {k: after[k] - before[k] for k in before
                    if before[k] is not None and after.get(k) is not None}
    for k in res["cpu_s"]:
        res["cpu_method"] = k
        res["cpu_us"] = (1e6 * res["cpu_s"][k] / res["delivered"]
                         if res["delivered"] else None)
        break


def cpu_report_text(info, results):
    """How the CPU column was measured, per relay, and the cross-check."""
    how = info.get("cpu", {})
    words = {
        "cgroup-v1": "a cgroup of its own (cgroup v1, cpuacct.usage, ns)",
        "cgroup-v2": "a cgroup of its own (cgroup v2, cpu.stat usage_usec)",
        "proc": "/proc/PID/stat, utime + stime + cutime + cstime in clock ticks "
                "(%d per second), truncated per process" % CLK_TCK,
    }
    parts = []
    for name in how:
        if name != "Postfix":                    # govrelay, its baseline
            parts.append("%s: %s%s" % (name, words.get(how[name], how[name]),
                                       ", all its threads, ended ones too" if how[name] != "proc"
                                       else ""))
    if "Postfix" in how:
        if how["Postfix"] == "proc":
            parts.append("Postfix: no cgroup could be made, so the sum of utime + stime + "
                         "cutime + cstime over the master and every live process whose parent "
                         "chain leads to it, read from /proc (clock ticks, truncated per process; "
                         "a child that exits between the walk and the read of the master can be "
                         "counted twice or missed)")
        else:
            parts.append("Postfix: %s into which `postfix start` was launched, so it holds "
                         "the master and every process it forks (smtpd, cleanup, qmgr, "
                         "trivial-rewrite, smtp, anvil, ...), those that exit during the case "
                         "too" % words.get(how["Postfix"], how["Postfix"]))
    ratios = {}
    for r in results:
        c = r.get("cpu_s", {})
        if r.get("cpu_method", "proc") != "proc" and c.get("proc") is not None and c.get(
                r["cpu_method"]):
            ratios.setdefault(r["target"], []).append(c["proc"] / c[r["cpu_method"]])
    check = ""
    if ratios:
        check = (" Cross-check: the /proc reading (utime + stime + cutime + cstime, of the "
                 "process or summed over Postfix's process tree), taken at the same moments "
                 "and kept in results.json, came to between these shares of the cgroup's "
                 "over the cases: %s. /proc counts whole clock ticks, truncated per process "
                 "and field, so it undercounts, the more so the more processes a case starts."
                 % "; ".join("%s %.0f–%.0f%%" % (k, 100 * min(v), 100 * max(v))
                             for k, v in ratios.items()))
    return ("CPU per message: the relay's user + system CPU seconds from just before "
            "smtp-source starts until the relay's queue is empty again, divided by the "
            "messages delivered; smtp-source and smtp-sink are not counted. Measured with "
            + "; ".join(parts) + "." + check)
