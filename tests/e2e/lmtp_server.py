#!/usr/bin/python3
"""
lmtp_server: a small LMTP server (RFC 2033) for the end-to-end tests, built
on aiosmtpd's LMTP class (Debian python3-aiosmtpd; run it with the system
/usr/bin/python3 when another python3 comes first in PATH). It listens on
127.0.0.1/::1 TCP or on a unix socket and stores every message once per
recipient.

    lmtp_server.py --dir OUT (--listen 127.0.0.1:PORT | --unix PATH)
                   [--reject-after-data ADDR]... [--defer-after-data ADDR]...
                   [--reject-rcpt ADDR]... [--reject-mail ADDR]...
                   [--no-pipelining] [--tls-cert PEM --tls-key PEM]
                   [--hostname NAME]

Replies after the final dot: one per accepted recipient, in RCPT order:
`250 2.0.0 <ADDR> delivered`, `550 5.1.1 <ADDR> mailbox unavailable` for an
address given with --reject-after-data, `452 4.2.2 <ADDR> mailbox full` for
--defer-after-data. --reject-rcpt answers RCPT with 550 5.1.1, --reject-mail
answers MAIL FROM with 550 5.7.1 (use "" for the null sender). Addresses
are compared case-insensitively. LHLO announces PIPELINING unless
--no-pipelining (aiosmtpd reads pipelined commands in order anyway), and
STARTTLS when --tls-cert and --tls-key are given.

Output in OUT:
- OUT/mail/<recipient>/<n>.eml: the message as received (CRLF, dot-unstuffed)
  for each recipient that got a 250; <recipient> is the address lowercased
  with anything but [a-z0-9@._+-] as %XX and no leading dot.
- OUT/deliveries.jsonl: one JSON object per recipient answered after DATA:
  conn (connection number, from 1), mail_from, rcpt, code, file (or null).
- OUT/transcript.log: every read from every connection, as
  `conn=N <python repr of the bytes>`, so tests can check pipelining (MAIL,
  the RCPTs and DATA in one read), RSET and connection reuse.

Prints `ready` on stdout once listening; exits 0 on SIGTERM or SIGINT.
"""

import argparse
import asyncio
import ipaddress
import json
import os
import re
import signal
import ssl
import sys

try:
    from aiosmtpd.lmtp import LMTP
except ImportError:  # pragma: no cover - depends on the machine
    sys.stderr.write("lmtp_server: aiosmtpd is not installed for %s\n" % sys.executable)
    sys.exit(77)


def mailbox_name(addr):
    out = []
    for ch in addr.lower():
        if re.match(r"[a-z0-9@._+-]", ch):
            out.append(ch)
        else:
            out.extend("%%%02X" % b for b in ch.encode("utf-8"))
    name = "".join(out).lstrip(".")
    return name or "empty"


class Handler:
    def __init__(self, args):
        self.dir = os.path.abspath(args.dir)
        self.reject = {a.lower() for a in args.reject_after_data}
        self.defer = {a.lower() for a in args.defer_after_data}
        self.reject_rcpt = {a.lower() for a in args.reject_rcpt}
        self.reject_mail = {a.lower() for a in args.reject_mail}
        self.pipelining = not args.no_pipelining
        self.seq = 0
        os.makedirs(os.path.join(self.dir, "mail"), exist_ok=True)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd's LMTP.smtp_LHLO goes through smtp_EHLO and this hook.
        session.host_name = hostname
        if self.pipelining:
            responses.insert(1, "250-PIPELINING")
        responses.insert(1, "250-ENHANCEDSTATUSCODES")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if address.lower() in self.reject_mail:
            return "550 5.7.1 <%s> sender refused" % address
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject_rcpt:
            return "550 5.1.1 <%s> no such user here" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        replies = []
        with open(os.path.join(self.dir, "deliveries.jsonl"), "a") as log:
            for rcpt in envelope.rcpt_tos:
                key = rcpt.lower()
                path = None
                if key in self.reject:
                    code, reply = 550, "550 5.1.1 <%s> mailbox unavailable" % rcpt
                elif key in self.defer:
                    code, reply = 452, "452 4.2.2 <%s> mailbox full" % rcpt
                else:
                    self.seq += 1
                    folder = os.path.join(self.dir, "mail", mailbox_name(rcpt))
                    os.makedirs(folder, exist_ok=True)
                    path = os.path.join(folder, "%d.eml" % self.seq)
                    with open(path, "wb") as f:
                        f.write(envelope.original_content)
                    code, reply = 250, "250 2.0.0 <%s> delivered" % rcpt
                replies.append(reply)
                log.write(json.dumps({"conn": server.conn_no,
                                      "mail_from": envelope.mail_from,
                                      "rcpt": rcpt, "code": code,
                                      "file": path}) + "\n")
        # RFC 2033 4.2: one reply per accepted recipient; push() adds the last CRLF.
        return "\r\n".join(replies)


class TracingLMTP(LMTP):
    """aiosmtpd's LMTP that records every read in transcript.log."""
    conns = 0

    def connection_made(self, transport):
        # aiosmtpd calls this again after STARTTLS: same connection number.
        if not hasattr(self, "conn_no"):
            TracingLMTP.conns += 1
            self.conn_no = TracingLMTP.conns
        super().connection_made(transport)

    def data_received(self, data):
        with open(os.path.join(self.event_handler.dir, "transcript.log"), "a") as f:
            f.write("conn=%d %r\n" % (self.conn_no, data))
        super().data_received(data)


def parse_listen(text):
    host, _, port = text.rpartition(":")
    host = host.strip("[]")
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit("lmtp_server: only loopback addresses may be used")
    return host, int(port)


async def serve(args):
    loop = asyncio.get_running_loop()
    handler = Handler(args)

    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)

    def factory():
        return TracingLMTP(handler, hostname=args.hostname, enable_SMTPUTF8=True,
                           tls_context=tls, loop=loop)

    if args.unix:
        if os.path.exists(args.unix):
            os.unlink(args.unix)
        server = await loop.create_unix_server(factory, args.unix)
    else:
        host, port = parse_listen(args.listen)
        server = await loop.create_server(factory, host, port)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main():
    p = argparse.ArgumentParser(description="LMTP server for govrelay tests")
    p.add_argument("--dir", required=True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--listen", help="127.0.0.1:PORT or [::1]:PORT")
    g.add_argument("--unix", help="unix socket path")
    p.add_argument("--reject-after-data", action="append", default=[])
    p.add_argument("--defer-after-data", action="append", default=[])
    p.add_argument("--reject-rcpt", action="append", default=[])
    p.add_argument("--reject-mail", action="append", default=[])
    p.add_argument("--no-pipelining", action="store_true")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--hostname", default="lmtp.test")
    args = p.parse_args()
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
