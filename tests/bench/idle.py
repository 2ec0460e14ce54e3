#!/usr/bin/env python3
"""
idle.py: holds many idle SMTP sessions open against one server.

Opens --count TCP connections to 127.0.0.1:PORT in batches, reads each
greeting, sends EHLO and reads its reply, then leaves every session idle.
Prints "ready N" (N sessions established) on stdout and waits until its
stdin is closed (or --hold seconds pass); then prints "closed_by_server K"
(sessions the server dropped while they were held) and closes them all.

Loopback only; every wait has a deadline. Used by tests/bench/bench.py.
"""
import argparse
import selectors
import socket
import struct
import sys
import time


def idle_open(port, count, batch, deadline):
    """Returns the list of sockets whose EHLO got a final 250 reply."""
    sel = selectors.DefaultSelector()
    done = []
    failed = 0
    left = count
    while left > 0 and time.monotonic() < deadline:
        n = min(batch, left)
        left -= n
        state = {}
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            except OSError:
                s.close()
                failed += 1
                continue
            state[s] = [b"", "greeting"]
            sel.register(s, selectors.EVENT_READ)
        batch_deadline = min(deadline, time.monotonic() + 30.0)
        while state and time.monotonic() < batch_deadline:
            for key, _ in sel.select(timeout=0.5):
                s = key.fileobj
                try:
                    data = s.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(s)
                    s.close()
                    del state[s]
                    failed += 1
                    continue
                st = state[s]
                st[0] += data
                # a complete final reply line: "NNN " at a line start
                lines = st[0].split(b"\r\n")
                if not any(len(l) >= 4 and l[3:4] == b" " for l in lines[:-1]):
                    continue
                if st[1] == "greeting":
                    st[0] = b""
                    st[1] = "ehlo"
                    s.sendall(b"EHLO idle.test\r\n")
                else:
                    sel.unregister(s)
                    del state[s]
                    done.append(s)
        for s in list(state):
            sel.unregister(s)
            s.close()
            failed += 1
    sel.close()
    return done, failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--hold", type=float, default=600.0, help="longest hold, seconds")
    ap.add_argument("--open-timeout", type=float, default=120.0)
    a = ap.parse_args()
    socks, failed = idle_open(a.port, a.count, a.batch, time.monotonic() + a.open_timeout)
    print("ready %d failed %d" % (len(socks), failed), flush=True)
    # Hold until stdin closes: the caller measures meanwhile.
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin, selectors.EVENT_READ)
    deadline = time.monotonic() + a.hold
    while time.monotonic() < deadline:
        if sel.select(timeout=1.0):
            if not sys.stdin.readline():
                break
    sel.close()
    closed = 0
    for s in socks:
        try:
            # EOF or any unsolicited reply (a 421) means the server let go.
            s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        # Reset rather than FIN: 10,000 client ports left in TIME-WAIT
        # would block listeners on those ports for a minute.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    print("closed_by_server %d" % closed, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
