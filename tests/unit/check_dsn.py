#!/usr/bin/env python3
"""check_dsn: validates one DSN built by relay/dsn.c against expectations.

Usage: check_dsn.py DSN_FILE EXPECT_JSON_FILE [DSN_FILE EXPECT_JSON_FILE ...]
       check_dsn.py DIR      (every DIR/NAME.eml with its DIR/NAME.json)

Run by tests/unit/test_dsn.c once for all the reports it builds (Python
starts slowly; one run keeps the test fast). Each report is parsed with
Python's email package (policy.default) and, independently, split by hand,
so a defect in either parser cannot hide one in ours. Exits 0 when every
check passes; otherwise prints what failed, per report label, and exits 1.

Expectations (JSON object):
  label, subject, to, host, kind ("failure"|"delay"|"success"), utf8 (bool),
  part3 (content type or null for a two-part report), envid (or null),
  part3_has / part3_lacks (strings in the returned original),
  text_has (strings in the human-readable part),
  rcpts: [{final, orcpt|null, action, status, remote|null,
           diag|null, diag_mode ("exact"|"squashed"|"truncated"),
           diag_in_text (bool), last (bool), retry (bool)}]
"""
import email
import email.policy
import json
import os
import re
import sys

TOP_FIELDS = {"from", "to", "subject", "date", "message-id", "mime-version",
              "auto-submitted", "content-type", "content-transfer-encoding"}
MSG_FIELDS = {"reporting-mta", "x-govrelay-queue-id", "original-envelope-id",
              "arrival-date"}
RCPT_FIELDS = {"original-recipient", "final-recipient", "action", "status",
               "remote-mta", "diagnostic-code", "last-attempt-date",
               "will-retry-until"}

KIND_TEXT = {
    "failure": ["không thể chuyển tới", "could not be delivered",
                "Bạn nên làm gì", "What you should do"],
    "delay": ["chưa chuyển được", "has not yet been delivered",
              "đừng gửi lại thư", "do not send the message"],
    "success": ["đã được chuyển tới", "was delivered"],
}

failures = []
current = [""]


def check(cond, what):
    if not cond:
        failures.append("%s: %s" % (current[0], what))
    return cond


def squash(s):
    return re.sub(r"\s+", "", s)


def unfold_blocks(text):
    """RFC 3464 blocks: lists of (name, unfolded value), split by empty lines."""
    blocks, cur, last = [], [], None
    for line in text.split("\r\n"):
        if line == "":
            if cur:
                blocks.append(cur)
            cur, last = [], None
            continue
        if line[0] in " \t":
            check(last is not None, "continuation line without a field")
            if last is not None:
                cur[-1] = (cur[-1][0], cur[-1][1] + line)
            continue
        name, sep, value = line.partition(":")
        check(sep == ":", "status line without a colon: %r" % line)
        cur.append((name.strip(), value.strip()))
        last = name
    if cur:
        blocks.append(cur)
    return blocks


def raw_parts(raw, boundary):
    """Parts of the top-level multipart, split by hand: (headers, body) bytes."""
    delim = b"\r\n--" + boundary.encode()
    pieces = raw.split(delim)
    parts = []
    for piece in pieces[1:]:
        if piece.startswith(b"--"):
            check(piece == b"--\r\n", "text after the close delimiter")
            break
        check(piece.startswith(b"\r\n"), "delimiter line not followed by CRLF")
        head, sep, body = piece[2:].partition(b"\r\n\r\n")
        check(sep != b"", "part without an empty line after its header")
        parts.append((head, body))
    return parts


def utf8_header(s, utf8):
    """email decodes 8-bit header bytes with surrogateescape; undo that."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8") if utf8 else s


def check_one(raw, exp):
    current[0] = exp.get("label", "?")

    # Line ends and lengths: CRLF only, no line over 998 octets.
    check(raw.endswith(b"\r\n"), "does not end in CRLF")
    lines = raw.split(b"\r\n")
    for i, line in enumerate(lines):
        check(b"\r" not in line and b"\n" not in line,
              "bare CR or LF in line %d" % i)
        check(len(line) <= 998, "line %d is %d octets" % (i, len(line)))
        check(b"\0" not in line, "NUL in line %d" % i)

    msg = email.message_from_bytes(raw, policy=email.policy.default)
    check(not msg.defects, "message defects: %r" % msg.defects)

    names = {k.lower() for k in msg.keys()}
    check(names <= TOP_FIELDS, "unexpected header fields: %r" % (names - TOP_FIELDS))
    for k in ("from", "to", "subject", "date", "message-id", "mime-version",
              "auto-submitted", "content-type"):
        check(k in names, "missing header field %s" % k)
        check(len(msg.get_all(k, [])) <= 1, "repeated header field %s" % k)
    check(str(msg["subject"]) == exp["subject"],
          "subject %r != %r" % (str(msg["subject"]), exp["subject"]))
    to = utf8_header(msg["to"].addresses[0].addr_spec, exp["utf8"])
    check(to == exp["to"], "to %r != %r" % (to, exp["to"]))
    check(msg["from"].addresses[0].addr_spec == "MAILER-DAEMON@" + exp["host"],
          "from %r" % str(msg["from"]))
    check(msg["from"].addresses[0].display_name == "Mail Delivery System",
          "from display name %r" % msg["from"].addresses[0].display_name)
    check(str(msg["auto-submitted"]) == "auto-replied", "auto-submitted")
    check(str(msg["mime-version"]) == "1.0", "mime-version")
    check(str(msg["message-id"]).endswith("@" + exp["host"] + ">"), "message-id")

    ds_type = "global-delivery-status" if exp["utf8"] else "delivery-status"
    check(msg.get_content_type() == "multipart/report", "top content type %s"
          % msg.get_content_type())
    check(msg.get_param("report-type") == ds_type,
          "report-type %r" % msg.get_param("report-type"))
    boundary = msg.get_boundary()
    check(boundary is not None, "no boundary")
    nparts = 3 if exp["part3"] else 2
    # The boundary shows up in the parameter and the delimiters only.
    check(raw.count(boundary.encode()) == nparts + 2,
          "boundary occurs %d times" % raw.count(boundary.encode()))

    parts = msg.get_payload()
    check(isinstance(parts, list) and len(parts) == nparts,
          "%d parts, want %d" % (len(parts), nparts))
    if len(parts) != nparts:
        return

    # Part 1: the text for people.
    p1 = parts[0]
    check(p1.get_content_type() == "text/plain", "part 1 type")
    check(p1.get_content_charset() == "utf-8", "part 1 charset")
    text = p1.get_content()
    # The text is wrapped: compare without whitespace.
    for s in KIND_TEXT[exp["kind"]] + ["Tiếng Việt", "English", exp["host"]] + \
            exp.get("text_has", []):
        check(squash(s) in squash(text), "text lacks %r" % s)
    for line in text.splitlines():
        check(len(line) <= 80, "text line of %d characters" % len(line))
    for r in exp["rcpts"]:
        addr = r["final"].split(";", 1)[1].strip()
        check("<" + addr + ">" in text, "text lacks recipient %r" % addr)
        if r["diag"] and r["diag_mode"] == "exact" and r["diag_in_text"]:
            reply = r["diag"].split(";", 1)[1].strip()
            check(squash(reply) in squash(text), "text lacks reply %r" % reply[:40])

    # Part 2: the delivery status, by hand and (non-global) by email.
    rp = raw_parts(raw, boundary)
    check(len(rp) == nparts, "hand split found %d parts" % len(rp))
    head2 = rp[1][0].decode("utf-8")
    check("Content-Type: message/" + ds_type in head2, "part 2 type: %r" % head2)
    body2 = rp[1][1].decode("utf-8" if exp["utf8"] else "ascii")
    blocks = unfold_blocks(body2)
    check(len(blocks) == 1 + len(exp["rcpts"]),
          "%d status blocks, want %d" % (len(blocks), 1 + len(exp["rcpts"])))
    if len(blocks) != 1 + len(exp["rcpts"]):
        return
    pm = dict((k.lower(), v) for k, v in blocks[0])
    check(set(pm) <= MSG_FIELDS, "per-message fields %r" % set(pm))
    check(pm.get("reporting-mta") == "dns; " + exp["host"], "reporting-mta")
    check("arrival-date" in pm, "no arrival-date")
    check(pm.get("original-envelope-id") == exp["envid"],
          "envid %r != %r" % (pm.get("original-envelope-id"), exp["envid"]))

    if not exp["utf8"]:
        ds = parts[1]
        check(ds.get_content_type() == "message/delivery-status", "email: part 2 type")
        pblocks = ds.get_payload()
        check(len(pblocks) == len(blocks), "email: %d blocks" % len(pblocks))
        for b in pblocks:
            check(not b.defects, "email: block defects %r" % b.defects)
        if len(pblocks) == len(blocks):
            check(str(pblocks[0]["Reporting-MTA"]) == "dns; " + exp["host"],
                  "email: reporting-mta")

    for i, r in enumerate(exp["rcpts"]):
        blk = blocks[1 + i]
        f = {}
        for k, v in blk:
            check(k.lower() not in f, "rcpt %d: repeated %s" % (i, k))
            f[k.lower()] = v
        check(set(f) <= RCPT_FIELDS, "rcpt %d: fields %r" % (i, set(f) - RCPT_FIELDS))
        check(f.get("final-recipient") == r["final"],
              "rcpt %d: final %r != %r" % (i, f.get("final-recipient"), r["final"]))
        check(f.get("original-recipient") == r["orcpt"],
              "rcpt %d: orcpt %r != %r" % (i, f.get("original-recipient"), r["orcpt"]))
        check(f.get("action") == r["action"], "rcpt %d: action %r" % (i, f.get("action")))
        check(f.get("status") == r["status"], "rcpt %d: status %r" % (i, f.get("status")))
        check(f.get("remote-mta") == r["remote"],
              "rcpt %d: remote %r != %r" % (i, f.get("remote-mta"), r["remote"]))
        check(("last-attempt-date" in f) == r["last"], "rcpt %d: last-attempt" % i)
        check(("will-retry-until" in f) == r["retry"], "rcpt %d: retry-until" % i)
        got = f.get("diagnostic-code")
        want = r["diag"]
        if want is None or got is None:
            check(got == want, "rcpt %d: diag %r != %r" % (i, got, want))
        elif r["diag_mode"] == "exact":
            check(got == want, "rcpt %d: diag %r != %r" % (i, got, want))
        elif r["diag_mode"] == "squashed":
            check(squash(got) == squash(want), "rcpt %d: diag (squashed)" % i)
        else:
            check(got.endswith("...") and want.startswith(got[:-3])
                  and len(got) < len(want), "rcpt %d: truncated diag" % i)
        if not exp["utf8"] and len(pblocks) == len(blocks):
            pb = pblocks[1 + i]
            check(str(pb["Final-Recipient"]) == r["final"], "email: rcpt %d final" % i)
            check(str(pb["Action"]) == r["action"], "email: rcpt %d action" % i)
            check(str(pb["Status"]) == r["status"], "email: rcpt %d status" % i)
            check(pb["Bcc"] is None, "email: rcpt %d has a Bcc field" % i)

    # Part 3: the original's headers or the whole original.
    if nparts == 3:
        p3 = parts[2]
        check(p3.get_content_type() == exp["part3"],
              "part 3 type %r != %r" % (p3.get_content_type(), exp["part3"]))
        orig = rp[2][1]
        check(orig.startswith(b"Received: "), "part 3 does not start with Received")
        for s in exp.get("part3_has", []):
            check(s.encode() in orig, "part 3 lacks %r" % s)
        for s in exp.get("part3_lacks", []):
            check(s.encode() not in orig, "part 3 has %r" % s)
        if exp["part3"] == "message/rfc822":
            inner = p3.get_payload()[0]
            check(inner["Subject"] is not None, "returned message has no Subject")
        if exp["part3"] == "text/rfc822-headers":
            check(b"\r\n\r\n" not in orig[:-2], "headers part has an empty line")
            check(len(orig) <= 64 * 1024 + 16, "headers part is %d octets" % len(orig))


def main():
    args = sys.argv[1:]
    if len(args) == 1 and os.path.isdir(args[0]):
        d = args[0]
        names = sorted(n[:-4] for n in os.listdir(d) if n.endswith(".eml"))
        args = []
        for n in names:
            args += [os.path.join(d, n + ".eml"), os.path.join(d, n + ".json")]
    if not args or len(args) % 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    for i in range(0, len(args), 2):
        with open(args[i], "rb") as f:
            raw = f.read()
        with open(args[i + 1], encoding="utf-8") as f:
            exp = json.load(f)
        check_one(raw, exp)
    print("check_dsn: %d reports checked" % (len(args) // 2), file=sys.stderr)


if __name__ == "__main__":
    main()
    if failures:
        for f in failures:
            print("check_dsn: " + f, file=sys.stderr)
        sys.exit(1)
    sys.exit(0)
