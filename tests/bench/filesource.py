#!/usr/bin/env python3
"""
filesource.py: smtp-source for a given message. smtp-source makes up its
own message, and the sender-authentication rows need one that carries a
real DKIM signature, so this client sends the bytes of --file (CRLF line
ends, dot-stuffed here) --count times over --sessions concurrent
sessions, MAIL/RCPT/DATA pipelined when the server offers PIPELINING
(RFC 2920), sessions reused. Several --procs share the count, so one
Python process is not the ceiling (bench.py measures this client straight
into smtp-sink to show it).

--vary OFFSET makes every message different where it does not matter to
its reader: the 64 base64 characters at OFFSET of the file (a PDF comment
line of the attachment, tests/bench/contentbench.py) are replaced by the
base64 of "%", 46 characters unique to the message and a line end, so a check that
keeps results by content sees a new document each time.

Prints one JSON object: sent, ok, errors (with the first few replies that
were not 250), seconds. Loopback only; every read has a timeout.
"""
import argparse
import asyncio
import base64
import json
import multiprocessing
import sys
import time

REPLY_TIMEOUT = 60.0


async def fs_reply(reader):
    """One (multi-line) reply: (code, last line)."""
    while True:
        line = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT)
        if not line:
            raise ConnectionError("server closed the connection")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), line.rstrip(b"\r\n")


def fs_stuff(data):
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    lines = data.split(b"\r\n")
    return b"\r\n".join((b"." + l) if l.startswith(b".") else l for l in lines) + b".\r\n"


def fs_varied(body, offset, tag):
    """body with the 64 base64 characters at offset (of the unstuffed file;
    base64 never starts with a dot, so stuffing moved nothing before it when
    the line is not dot-stuffed) replaced by a comment unique to tag."""
    comment = ("%%%-46s" % tag)[:47].encode().replace(b" ", b"-") + b"\n"
    return body[:offset] + base64.b64encode(comment) + body[offset + 64:]


async def fs_session(args, body, quota, stats):
    reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
    try:
        code, _ = await fs_reply(reader)
        if code != 220:
            raise ConnectionError("greeting %d" % code)
        writer.write(b"EHLO %s\r\n" % args.helo.encode())
        pipelining = False
        while True:
            line = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT)
            if line[4:].upper().startswith(b"PIPELINING"):
                pipelining = True
            if len(line) < 4 or line[3:4] != b"-":
                break
        env = b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (args.sender.encode(),
                                                               args.rcpt.encode())
        while quota[0] > 0:
            quota[0] -= 1
            stats["sent"] += 1
            if pipelining:
                writer.write(env)
                codes = [(await fs_reply(reader)) for _ in range(3)]
            else:
                codes = []
                for cmd in env.split(b"\r\n")[:3]:
                    writer.write(cmd + b"\r\n")
                    codes.append(await fs_reply(reader))
            if [c for c, _ in codes] != [250, 250, 354]:
                stats["errors"] += 1
                if len(stats["samples"]) < 5:
                    stats["samples"].append([t.decode(errors="replace") for _, t in codes])
                writer.write(b"RSET\r\n")
                await fs_reply(reader)
                continue
            if args.vary is not None:
                stats["seq"] += 1
                writer.write(fs_varied(body, args.vary, "%d-%d-%d" % (args.proc_index,
                                                                     id(writer), stats["seq"])))
            else:
                writer.write(body)
            code, text = await fs_reply(reader)
            if code == 250:
                stats["ok"] += 1
            else:
                stats["errors"] += 1
                if len(stats["samples"]) < 5:
                    stats["samples"].append(text.decode(errors="replace"))
        writer.write(b"QUIT\r\n")
        try:
            await fs_reply(reader)
        except (ConnectionError, asyncio.TimeoutError):
            pass
    finally:
        writer.close()


async def fs_run(args, body, count):
    stats = {"sent": 0, "ok": 0, "errors": 0, "samples": [], "seq": 0}
    quota = [count]
    await asyncio.gather(*(fs_session(args, body, quota, stats)
                           for _ in range(args.sessions)))
    return stats


def fs_worker(args, body, count, out, index=0):
    args.proc_index = index
    try:
        out.put(asyncio.run(fs_run(args, body, count)))
    except Exception as e:  # noqa: BLE001 - reported, never hangs the parent
        out.put({"sent": 0, "ok": 0, "errors": count, "samples": [repr(e)]})


def main():
    ap = argparse.ArgumentParser(description="send a message file, many times, fast")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--sender", required=True)
    ap.add_argument("--rcpt", required=True)
    ap.add_argument("--helo", default="client.test")
    ap.add_argument("--vary", type=int, default=None,
                    help="offset of 64 base64 characters to make unique per message")
    args = ap.parse_args()
    with open(args.file, "rb") as f:
        body = fs_stuff(f.read())
    procs = max(1, min(args.procs, args.sessions))
    args.sessions = max(1, args.sessions // procs)
    q = multiprocessing.Queue()
    share = [args.count // procs + (1 if i < args.count % procs else 0) for i in range(procs)]
    t0 = time.monotonic()
    workers = [multiprocessing.Process(target=fs_worker, args=(args, body, n, q, i))
               for i, n in enumerate(share)]
    for w in workers:
        w.start()
    total = {"sent": 0, "ok": 0, "errors": 0, "samples": []}
    for _ in workers:
        s = q.get(timeout=600)
        for k in ("sent", "ok", "errors"):
            total[k] += s[k]
        total["samples"] += s["samples"]
    for w in workers:
        w.join(30)
    total["seconds"] = time.monotonic() - t0
    print(json.dumps(total))
    return 0 if total["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
