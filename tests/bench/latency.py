#!/usr/bin/env python3
"""
latency.py: end-of-DATA -> 250 latency of an SMTP server at a fixed rate.

--conns sessions share an open-loop schedule of --rate messages per second
for --duration seconds (message i is due at start + i / rate; a session
that falls behind sends at once). Each transaction sends MAIL, RCPT and
DATA (pipelined when the server offers PIPELINING), then the body and the
final "."; the clock runs from just before the write of the last body
chunk with the "." to the moment the reply line is read. Sessions are
reused (no RSET needed after a 250).

Prints one JSON object: sent, ok, errors, rate (achieved), p50_ms, p90_ms,
p99_ms, max_ms. With --samples FILE it also writes every sample (ms, one a
line) to FILE, so that a caller can pool several runs (bench.py does, to
run two builds in ABBA order). --dump FILE writes every sample as a JSON
list of [start, seconds] pairs, start on time.monotonic()'s clock
(CLOCK_MONOTONIC, the same in every process), so a caller can pick the
samples of a window. Loopback only; every wait has a timeout.
"""
import argparse
import asyncio
import json
import math
import sys
import time

REPLY_TIMEOUT = 30.0


async def lat_reply(reader):
    """Reads one (multi-line) reply; returns (code, last line)."""
    while True:
        line = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT)
        if not line:
            raise ConnectionError("server closed the connection")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), line.rstrip(b"\r\n")


def lat_body(size, tag):
    lines = [b"Subject: latency probe %s" % tag, b"From: <lat@client.test>",
             b"To: <lat@bench.test>", b""]
    n = 0
    i = 0
    while n < size:
        line = (b"latency %s line %05d " % (tag, i)).ljust(76, b"z")
        lines.append(line)
        n += len(line) + 2
        i += 1
    return b"\r\n".join(lines) + b"\r\n"


async def lat_session(port, idx, nconns, t0, rate, total, size, rcpt, samples, errors):
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port), REPLY_TIMEOUT)
    try:
        code, _ = await lat_reply(reader)
        if code != 220:
            raise ConnectionError("greeting %d" % code)
        writer.write(b"EHLO latency.test\r\n")
        ehlo = []
        while True:
            line = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT)
            if not line:
                raise ConnectionError("closed after EHLO")
            ehlo.append(line)
            if line[3:4] != b"-":
                break
        pipelining = any(b"PIPELINING" in l.upper() for l in ehlo)
        for i in range(idx, total, nconns):
            due = t0 + i / rate
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            body = lat_body(size, b"%d" % i)
            cmds = [b"MAIL FROM:<lat%d@client.test>\r\n" % i,
                    b"RCPT TO:<%s>\r\n" % rcpt.encode(), b"DATA\r\n"]
            if pipelining:
                writer.write(b"".join(cmds))
                codes = [(await lat_reply(reader))[0] for _ in cmds]
            else:
                codes = []
                for c in cmds:
                    writer.write(c)
                    codes.append((await lat_reply(reader))[0])
            if codes != [250, 250, 354]:
                errors.append("envelope %r" % codes)
                writer.write(b"RSET\r\n")
                await lat_reply(reader)
                continue
            start = time.monotonic()
            writer.write(body + b".\r\n")
            code, text = await lat_reply(reader)
            end = time.monotonic()
            if code == 250:
                samples.append((start, end - start))
            else:
                errors.append(text.decode(errors="replace"))
        writer.write(b"QUIT\r\n")
        try:
            await asyncio.wait_for(lat_reply(reader), 5.0)
        except (asyncio.TimeoutError, ConnectionError):
            pass
    finally:
        writer.close()


def lat_pct(sorted_vals, p):
    if not sorted_vals:
        return None
    # nearest rank
    k = min(len(sorted_vals) - 1, max(0, math.ceil(p / 100.0 * len(sorted_vals)) - 1))
    return sorted_vals[k]


async def lat_main(a):
    total = max(1, int(a.rate * a.duration))
    samples = []
    errors = []
    t0 = time.monotonic() + 0.2
    tasks = [lat_session(a.port, k, a.conns, t0, a.rate, total, a.size, a.rcpt,
                         samples, errors) for k in range(a.conns)]
    res = await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - t0
    for r in res:
        if isinstance(r, BaseException):
            errors.append("session: %r" % (r,))
    if a.dump:
        with open(a.dump, "w") as f:
            json.dump(samples, f)
    v = sorted(x[1] for x in samples)
    if a.samples:
        with open(a.samples, "w") as f:
            f.write("".join("%.4f\n" % (x * 1000.0) for x in v))
    ms = lambda x: None if x is None else round(x * 1000.0, 2)  # noqa: E731
    return {"sent": total, "ok": len(v), "errors": len(errors),
            "first_error": errors[0] if errors else None,
            "target_rate": a.rate, "rate": round(len(v) / elapsed, 1) if elapsed > 0 else None,
            "p50_ms": ms(lat_pct(v, 50)), "p90_ms": ms(lat_pct(v, 90)),
            "p99_ms": ms(lat_pct(v, 99)), "max_ms": ms(v[-1] if v else None)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True, help="messages per second")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--size", type=int, default=5120)
    ap.add_argument("--rcpt", default="lat@bench.test")
    ap.add_argument("--samples", default="", help="write every sample (ms) to this file")
    ap.add_argument("--dump", default="", help="write [start, seconds] samples to this file")
    a = ap.parse_args()
    print(json.dumps(asyncio.run(lat_main(a))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
