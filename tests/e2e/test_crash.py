"""
e2e: crash safety under load. Several clients send a stream of messages
(each with a unique id in its sender and body) to govrelayd, routed to
smtp-sink, while the test kills the daemon with SIGKILL at random moments
(seeded RNG, seed printed; CRASH_SEED=N replays a run) and restarts it.

Every message ends in one of these classes, as the client saw it:
- acked: the end of data got `250 ... queued as ID`;
- uncertain: the final "." was (maybe) sent but no reply came back (the
  daemon died around the commit) — delivery is allowed, not required;
- strict: never accepted — the client died before sending ".", or the
  relay answered the "." with something other than 250.

Checked: while the daemon is down after each kill, the store (read by
`govrelayctl queue list`) holds no strict message; at the end, with the
daemon up and the sink up, the queue drains; every acked message is at
the sink at least once, byte for byte, with the acked queue id in its
Received header; no strict message ever reached the sink. The duplicate
rate (acked messages delivered more than once / acked) and the lost count
(must be 0) are printed.
"""
import os
import random
import re
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Closed, RawSMTP, RelayTestCase, dot_stuff, wait_for  # noqa: E402

CLIENTS = 4
KILLS = 6
TEST_BUDGET = 60.0            # seconds for the traffic-and-kill phase
PER_CLIENT_CAP = 3000         # messages per client, whatever the speed
MSGS_PER_SESSION = 8          # then QUIT and a new connection
ID_RE = re.compile(rb"crash-id ([0-9a-z-]+)")
RECEIVED_ID_RE = re.compile(rb"\(govrelay\) with E?SMTPS?A? id ([0-9A-F]{16})")


class Ledger:
    """What every client saw, under one lock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.acked = {}        # mid -> (qid, body)
        self.uncertain = {}    # mid -> body
        self.strict = {}       # mid -> reason
        self.errors = []       # unexpected client-side surprises

    def add(self, kind, mid, value):
        with self.lock:
            getattr(self, kind)[mid] = value


def crash_body(rng, mid):
    """A message whose size varies (a few hundred bytes to ~120 KB), with
    dot-leading lines, so kills land in every phase of DATA."""
    size = rng.choice((200, 200, 2000, 2000, 8000, 30000, 120000))
    lines = [b"Subject: crash %s" % mid.encode(),
             b"Message-ID: <%s@client.test>" % mid.encode(), b"",
             b"crash-id " + mid.encode()]
    n = 0
    i = 0
    while n < size:
        line = (b"%s %06d " % (mid.encode(), i)).ljust(rng.randint(20, 78), b"y")
        if i % 13 == 0:
            line = b"." + line
        lines.append(line)
        n += len(line) + 2
        i += 1
    return b"\r\n".join(lines) + b"\r\n"


def crash_client(port, cid, seed, stop, deadline, ledger):
    """One client: sessions of several transactions, reconnecting after
    every failure (the daemon is down part of the time)."""
    rng = random.Random(seed * 1000 + cid)
    seq = 0
    while not stop.is_set() and time.monotonic() < deadline and seq < PER_CLIENT_CAP:
        try:
            c = RawSMTP(port, timeout=10.0)
        except (OSError, Closed):
            time.sleep(0.05)
            continue
        try:
            if c.greeting.code != 220:
                raise Closed("greeting %r" % c.greeting.lines)
            if c.cmd("EHLO client%d.test" % cid).code != 250:
                raise Closed("EHLO refused")
            for _ in range(MSGS_PER_SESSION):
                if stop.is_set() or time.monotonic() >= deadline or seq >= PER_CLIENT_CAP:
                    break
                mid = "%d-c%d-%05d" % (seed, cid, seq)
                seq += 1
                body = crash_body(rng, mid)
                phase = "before"
                try:
                    r = c.cmd("MAIL FROM:<%s@example.test>" % mid)
                    if r.code != 250:
                        ledger.add("strict", mid, "MAIL %s" % r.last)
                        raise Closed("MAIL refused")
                    r = c.cmd("RCPT TO:<%s@ours.test>" % mid)
                    if r.code != 250:
                        ledger.add("strict", mid, "RCPT %s" % r.last)
                        raise Closed("RCPT refused")
                    r = c.cmd("DATA")
                    if r.code != 354:
                        ledger.add("strict", mid, "DATA %s" % r.last)
                        raise Closed("DATA refused")
                    c.send(dot_stuff(body))
                    # From here on the relay may have the whole message.
                    phase = "dot"
                    c.send(b".\r\n")
                    r = c.reply(timeout=15.0)
                except (OSError, Closed) as e:
                    if mid in ledger.strict:
                        raise
                    if phase == "dot":
                        ledger.add("uncertain", mid, body)
                    else:
                        ledger.add("strict", mid, "cut before the end of data (%s)" % e)
                    raise
                if r.code == 250:
                    m = harness.QUEUED_RE.match(r.last)
                    if not m:
                        ledger.add("uncertain", mid, body)
                        with ledger.lock:
                            ledger.errors.append("%s: odd 250 %r" % (mid, r.last))
                        continue
                    ledger.add("acked", mid, (m.group(1), body))
                else:
                    ledger.add("strict", mid, "end of data %s" % r.last)
            try:
                c.cmd("QUIT", timeout=2.0)
            except (OSError, Closed):
                pass
        except (OSError, Closed):
            time.sleep(0.02)
        finally:
            c.close()


class CrashSafetyTest(RelayTestCase):
    relay_options = {"minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
                     "max_message_size": 4 * 1024 * 1024}

    def queue_senders(self):
        """{qid: sender} of the store, read while the daemon is down."""
        out = {}
        for obj in self.relay.queue_list():
            if isinstance(obj, dict) and "id" in obj:
                out[obj["id"]] = obj.get("sender", "")
        return out

    def test_sigkill_under_load(self):
        seed = int(os.environ.get("CRASH_SEED") or (int(time.time()) % 100000))
        print("\ncrash test seed %d (CRASH_SEED=%d replays the kill schedule)"
              % (seed, seed), file=sys.stderr)
        rng = random.Random(seed)
        ledger = Ledger()
        stop = threading.Event()
        t0 = time.monotonic()
        deadline = t0 + TEST_BUDGET
        threads = [threading.Thread(target=crash_client, name="crash-client-%d" % i,
                                    args=(self.relay.port, i, seed, stop, deadline, ledger),
                                    daemon=True)
                   for i in range(CLIENTS)]
        for t in threads:
            t.start()
        snapshots = []
        kills = 0
        try:
            for k in range(KILLS):
                # leave room for the final drain inside the budget
                if time.monotonic() + 6.0 > deadline:
                    break
                time.sleep(rng.uniform(0.3, 4.0))
                self.relay.kill9()
                kills += 1
                with ledger.lock:
                    strict_now = dict(ledger.strict)
                # The daemon is down: the store is exactly what it committed.
                snapshots.append((k, self.queue_senders(), strict_now))
                time.sleep(rng.uniform(0.0, 0.5))
                self.relay.start()
            # a little traffic after the last restart, then stop the clients
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        finally:
            stop.set()
            for t in threads:
                t.join(20.0)
        self.assertFalse(any(t.is_alive() for t in threads), "a client thread is stuck")
        traffic = time.monotonic() - t0

        acked = dict(ledger.acked)
        uncertain = dict(ledger.uncertain)
        strict = dict(ledger.strict)
        self.assertGreaterEqual(kills, 4, "only %d kills fitted in the budget" % kills)
        self.assertGreater(len(acked), 20, "too little traffic to mean anything")
        self.assertEqual(ledger.errors, [])

        # 1. No store snapshot holds a message that was refused or cut
        # before its end of data (strict messages known at that moment).
        for k, senders, strict_then in snapshots:
            for qid, sender in senders.items():
                mid = sender.split("@", 1)[0]
                self.assertNotIn(mid, strict_then,
                                 "kill %d: %s (%s) is queued though it was never accepted: %s"
                                 % (k + 1, qid, sender, strict_then.get(mid)))
                if mid in acked:
                    self.assertEqual(acked[mid][0], qid, "kill %d: %s queued under another id" % (k + 1, mid))

        # 2. The queue drains with everything up.
        self.relay.wait_queue_empty(90)
        # once more after the drain: a strict message committed late would show here
        self.assertEqual(self.relay.queue_ids(), [])

        # 3. The sink: wait until no dump grows, then read them all.
        def stable():
            a = {p: os.path.getsize(p) for p in self.sink.files()}
            time.sleep(0.3)
            b = {p: os.path.getsize(p) for p in self.sink.files()}
            return a == b
        wait_for(stable, 30, interval=0.2, what="smtp-sink dumps to stop growing")
        copies = {}                # mid -> [SinkMessage]
        for m in self.sink.messages():
            found = ID_RE.search(m.raw)
            if found:
                copies.setdefault(found.group(1).decode(), []).append(m)

        lost = []
        dups = 0
        partial = 0
        for mid, (qid, body) in acked.items():
            want = body.replace(b"\r\n", b"\n")
            exact = [m for m in copies.get(mid, []) if m.without_received() == want]
            partial += len(copies.get(mid, [])) - len(exact)
            if not exact:
                lost.append("%s (%s): %d partial copies" % (mid, qid, len(copies.get(mid, []))))
                continue
            ids = set()
            for m in exact:
                r = RECEIVED_ID_RE.search(m.raw)
                ids.add(r.group(1).decode() if r else None)
            self.assertEqual(ids, {qid}, "%s acked as %s, delivered as %s" % (mid, qid, ids))
            if len(exact) > 1:
                dups += 1
        delivered_uncertain = sum(1 for mid in uncertain if mid in copies)
        strict_at_sink = sorted(mid for mid in strict if mid in copies)

        print("crash test: seed %d, %d kills in %.1fs, %d acked, %d uncertain "
              "(%d of them delivered), %d never accepted"
              % (seed, kills, traffic, len(acked), len(uncertain),
                 delivered_uncertain, len(strict)), file=sys.stderr)
        print("crash test: lost %d, duplicates %d (rate %.4f), partial copies at the sink %d"
              % (len(lost), dups, dups / len(acked), partial), file=sys.stderr)
        self.assertEqual(lost, [], "acknowledged messages lost (seed %d)" % seed)
        self.assertEqual(strict_at_sink, [],
                         "never-accepted messages were delivered (seed %d)" % seed)


if __name__ == "__main__":
    harness.main()
