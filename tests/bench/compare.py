"""
compare.py: this tree against a baseline build in the same run, for bench.py.

With BENCH_BASELINE each throughput case runs the two govrelay builds twice
each in ABBA order and the latency run likewise; this module pools those
runs into one result per build (combine_runs, latency_pool) and judges the
no-regression target (baseline_target). fmt_rate formats every rate of the
report.
"""
from latency import lat_pct

BASELINE = "govrelay (baseline)"    # the baseline's name in results and report
# No regression: this tree's rate at 5 KB, 20 sessions is at least this
# share of the baseline's, measured in the same run (ABBA order).
BASELINE_MIN_RATIO = 0.95


def combine_runs(runs):
    """Several runs of one relay in one case as one result: the rates over
    the summed times, the CPU over the summed messages, each run's rate
    in tries."""
    out = dict(runs[0])
    out["runs"] = len(runs)
    out["tries"] = [r["rate"] for r in runs]
    out["accept_rate"] = sum(r["count"] for r in runs) / sum(r["accept_s"] for r in runs)
    for k in ("extra_at_sink", "left_in_queue"):
        out[k] = sum(r.get(k, 0) for r in runs)
    bad = [r for r in runs if r["rate"] is None]
    if bad:
        out.update(rate=None, delivered=bad[0]["delivered"], count=bad[0]["count"])
    else:
        out["total_s"] = sum(r["total_s"] for r in runs)
        out["rate"] = sum(r["count"] for r in runs) / out["total_s"]
        n = sum(r["count"] for r in runs)
        if all("machine_s" in r for r in runs):
            out["machine_us"] = 1e6 * sum(r["machine_s"] for r in runs) / n
        names = set.intersection(*(set(r.get("watch_s", {})) for r in runs))
        out["watch_us"] = {k: 1e6 * sum(r["watch_s"][k] for r in runs) / n for k in names}
    m = runs[0].get("cpu_method")
    if m and all(r.get("cpu_method") == m for r in runs):
        out["cpu_s"] = {k: sum(r["cpu_s"][k] for r in runs) for k in runs[0]["cpu_s"]
                        if all(k in r["cpu_s"] for r in runs)}
        n = sum(r["delivered"] for r in runs)
        out["cpu_us"] = 1e6 * out["cpu_s"][m] / n if n else None
    else:
        out.pop("cpu_method", None)
        out["cpu_us"] = None
    return out


def fmt_rate(v):
    return "—" if v is None else ("%.0f" % v if v >= 10 else "%.1f" % v)


def latency_pool(runs):
    """Several latency.py runs of one build as one result."""
    v = []
    for r in runs:
        with open(r["samples_file"]) as f:
            v.extend(float(x) for x in f if x.strip())
    v.sort()
    pct = lambda p: None if not v else round(lat_pct(v, p), 2)  # noqa: E731
    return {"sent": sum(r["sent"] for r in runs), "ok": len(v),
            "errors": sum(r["errors"] for r in runs),
            "first_error": next((r["first_error"] for r in runs if r["first_error"]), None),
            "target_rate": runs[0]["target_rate"],
            "rate": round(sum(r["rate"] or 0 for r in runs) / len(runs), 1),
            "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99),
            "max_ms": round(v[-1], 2) if v else None,
            "run_p99_ms": [r["p99_ms"] for r in runs]}


def baseline_target(case, g, b):
    """The no-regression row (target, measured, met) from the pooled
    results g (this tree) and b (the baseline) of one case; met is None
    when the run was too noisy to tell."""
    # The noise: how far apart one build's two runs in this case are
    # (the larger of the two builds, over their pooled rate). When it
    # is wider than the margin the run cannot tell a regression of
    # that size from noise: inconclusive, run again on a quiet machine.
    spread = max((max(r["tries"]) - min(r["tries"])) / r["rate"] for r in (g, b))
    ratio = g["rate"] / b["rate"]
    margin = 1 - BASELINE_MIN_RATIO
    return ("%s: no regression against the baseline: govrelay / baseline ≥ %.2f, "
            "the two builds run ABBA in the same run; judged only when each build's "
            "two runs are within %.0f%% of each other, else inconclusive"
            % (case, BASELINE_MIN_RATIO, 100 * margin),
            "%.2f× (runs: this tree %s, baseline %s msg/s; spread within a build "
            "up to %.0f%%)" % (ratio, ", ".join(fmt_rate(t) for t in g["tries"]),
                              ", ".join(fmt_rate(t) for t in b["tries"]), 100 * spread),
            None if spread > margin else ratio >= BASELINE_MIN_RATIO)
