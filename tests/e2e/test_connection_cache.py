"""
e2e: the outbound connection cache (connection_cache_time). Messages to
one next hop that arrive one after another travel over one connection
to Postfix's smtp-sink (its -c counters say how many sessions it saw and
how many ended with QUIT); the idle connection ends with QUIT once the
cache time has passed; with 0s every message has its own session; a
next hop that drops the idle connection costs nothing (the next message
opens a new one); stopping the daemon does not wait for idle
connections.
"""
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import RawSMTP, RelayTestCase, Sink, queued_id, wait_for  # noqa: E402


def sink_counters(sink):
    """smtp-sink -c: the last 'sess=N quit=Q mesg=M' it printed."""
    with open(os.path.join(sink.dir, "smtp-sink.log"), "rb") as f:
        text = f.read().decode(errors="replace")
    found = re.findall(r"sess=(\d+) quit=(\d+) mesg=(\d+)", text)
    if not found:
        return (0, 0, 0)
    return tuple(int(x) for x in found[-1])


def send_one(relay, i, domain):
    """Queues one message; returns its queue id."""
    with RawSMTP(relay.port) as c:
        reply = c.send_message("sender@client.test", ["user%d@%s" % (i, domain)],
                               b"Subject: cache %d\r\n\r\ncache body %d\r\n" % (i, i))
        c.cmd("QUIT")
    return queued_id(reply)


class CacheTestBase(RelayTestCase):
    with_sink = False
    domain = "cache.test"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.csink = Sink(cls.workdir, name="csink", extra=["-c"]).start()
        cls.relay.add_domain(cls.domain, cls.csink.route)

    @classmethod
    def tearDownClass(cls):
        cls.csink.stop()
        super().tearDownClass()

    def base(self):
        # The harness's readiness probe opened one session (QUIT) already.
        return sink_counters(self.csink)

    def send_in_turn(self, n, start=0):
        """n messages, each sent once the one before has arrived."""
        s0, _, m0 = sink_counters(self.csink)
        for i in range(start, start + n):
            send_one(self.relay, i, self.domain)
            wait_for(lambda: sink_counters(self.csink)[2] >= m0 + (i - start) + 1, 15,
                     what="message %d at the sink" % i)
        self.relay.wait_queue_empty()


class CacheOnTest(CacheTestBase):
    relay_options = {"connection_cache_time": "3s"}

    def test_01_one_connection_then_quit(self):
        # smtp-sink counts a session (sess) when it ends; quit when it
        # ended with QUIT.
        s0, q0, m0 = self.base()
        self.send_in_turn(6)
        # The idle connection ends politely (QUIT) after the cache time.
        wait_for(lambda: sink_counters(self.csink)[0] > s0, 15,
                 what="the idle connection's end")
        s1, q1, m1 = sink_counters(self.csink)
        self.assertEqual(m1 - m0, 6)
        # Each message came within the cache time of the one before.
        self.assertEqual(s1 - s0, 1, "sessions for 6 messages in turn")
        self.assertEqual(q1 - q0, 1, "the session ended with QUIT")

    def test_02_next_hop_drops_idle_connection(self):
        self.send_in_turn(1, start=100)
        s1, q1, m1 = sink_counters(self.csink)
        # The sink goes away while our connection is idle, and comes back.
        self.csink.stop()
        self.csink.start()
        qid = send_one(self.relay, 101, self.domain)
        wait_for(lambda: self.csink.count(b"cache body 101") == 1, 15,
                 what="the message after the dropped connection")
        self.relay.wait_queue_empty()
        lines = "\n".join(self.relay.log_lines(qid))
        self.assertIn("status=sent", lines)
        # Sent at the first attempt: the dead idle connection was not used.
        self.assertNotIn("status=deferred", lines)

    def test_03_stop_does_not_wait_for_idle(self):
        self.relay.stop()
        self.relay.configure(connection_cache_time="300s")
        self.relay.start()
        s0, q0, _ = sink_counters(self.csink)
        self.send_in_turn(1, start=200)
        self.assertEqual(sink_counters(self.csink)[0], s0, "the connection stays open")
        began = time.monotonic()
        self.relay.stop()
        # Far below the 300 s cache time: stopping closed it.
        self.assertLess(time.monotonic() - began, 30)
        wait_for(lambda: sink_counters(self.csink)[0] == s0 + 1, 10,
                 what="the idle connection closed by the stop")
        self.relay.configure(connection_cache_time="3s")
        self.relay.start()


class CacheOffTest(CacheTestBase):
    relay_options = {"connection_cache_time": "0s"}

    def test_one_session_per_message(self):
        s0, q0, m0 = self.base()
        self.send_in_turn(4)
        wait_for(lambda: sink_counters(self.csink)[0] - s0 == 4, 15,
                 what="four sessions ended")
        s1, q1, m1 = sink_counters(self.csink)
        self.assertEqual((s1 - s0, q1 - q0, m1 - m0), (4, 4, 4))


if __name__ == "__main__":
    import unittest
    unittest.main()
