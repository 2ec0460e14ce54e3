"""
e2e: the content check (issue 11) through the real govrelayd: state-secret
markings (Mật, Tối mật, Tuyệt mật) refused before the 250 wherever a
reader would see them, ordinary prose that contains "mật" delivered, and
the MIME structure limits. Covered:

- a marking at the start of the Subject (UTF-8 bytes, RFC 2047 encoded,
  without diacritics), in an RFC 7444 SIO-Label, as a stamp line of a
  UTF-8 quoted-printable body, of a Windows-1258 body, of a base64 HTML
  body, of HTML written in character references, in the Subject of a
  forwarded message/rfc822, in an RFC 2231 file name, in the text of a
  DOCX and of a PDF attachment and of a DOCX inside a zip, in an XLSX's
  page header and on a PPTX's first slide: 550 5.7.1,
  Vietnamese lines first then English, nothing delivered;
- attachments: executables by content (a PE named .pdf) and by name (.bat,
  .py sent as text), inside archives and nested archives, an encrypted
  archive, a zip bomb: 550 5.7.1; the agency's blocked_attachments and
  encrypted_archive_action loosening them; an ordinary zip delivered;
- with clamd: EICAR plain, 500 levels deep, behind a duplicate boundary,
  after a garbled part and zipped are refused (by one check or the other)
  and never delivered;
- the `classified` audit record: level, where it was found, sender and
  every recipient;
- "mật khẩu", "bí mật kinh doanh", "mật ong", "mật độ", "thân mật" in a
  Subject and a body: delivered;
- classified_min_level of the recipient's agency: Mật below toi-mat is
  delivered (and noted), Tối mật is not;
- DLP rules of the recipient's agency: a citizen ID (builtin cccd)
  refused naming the rule, the same text to another agency delivered, a
  pattern rule with a threshold tagging (X-Govrelay-DLP) a decomposed
  Vietnamese base64 text, a quarantine rule keeping the message;
- 500 nested multiparts and a duplicate boundary parameter: 554 5.6.0.
"""
import base64
import io
import json
import os
import sys
import unicodedata
import zipfile

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from docfixtures import docx, pdf, pptx, xlsx  # noqa: E402
from harness import RelayTestCase, parse_json_lines, queued_id  # noqa: E402

CITY = "city.org"
WARD = "ward.org"
SENDER = "vanthu@" + CITY


# ------------------------------------------------------------- messages

def cp1258(text):
    """text in Windows-1258, as Vietnamese Windows wrote it: a base letter
    (which may carry a circumflex, breve or horn) and a combining tone
    mark when no single byte holds the whole letter."""
    out = b""
    tones = "\u0300\u0301\u0303\u0309\u0323"
    for ch in unicodedata.normalize("NFC", text):
        try:
            out += ch.encode("cp1258")
            continue
        except UnicodeEncodeError:
            pass
        d = unicodedata.normalize("NFD", ch)
        base = unicodedata.normalize("NFC", "".join(c for c in d if c not in tones))
        tone = "".join(c for c in d if c in tones)
        out += base.encode("cp1258") + tone.encode("cp1258")
    return out


def message(subject=b"Bao cao", body=b"Kinh gui anh chi.\r\n", headers=b"",
            to="nhan@" + CITY, sender=SENDER):
    if isinstance(subject, str):
        subject = subject.encode()
    return (b"From: Van thu <" + sender.encode() + b">\r\nTo: <" + to.encode() +
            b">\r\nSubject: " + subject + b"\r\nMessage-ID: <m" +
            os.urandom(6).hex().encode() + b"@city.org>\r\nMIME-Version: 1.0\r\n" +
            headers + b"\r\n" + body)


def multipart(parts, boundary="b0undary"):
    """(headers, body) of a multipart/mixed over parts = [(headers, body)]."""
    b = boundary.encode()
    out = b"This is a multi-part message.\r\n"
    for h, body in parts:
        out += b"--" + b + b"\r\n" + h + b"\r\n" + body + b"\r\n"
    out += b"--" + b + b"--\r\n"
    return (b"Content-Type: multipart/mixed; boundary=\"" + b + b"\"\r\n", out)


def attachment(name_header, content_type, data):
    h = (b"Content-Type: " + content_type + b"\r\nContent-Transfer-Encoding: base64\r\n"
         b"Content-Disposition: attachment; " + name_header + b"\r\n")
    return (h, base64.encodebytes(data).replace(b"\n", b"\r\n"))


def zip_of(entries, encrypted=False, padding=0):
    """A zip of (name, bytes); encrypted marks every entry as encrypted
    (the general-purpose flag bit 0 in the local and central headers), which
    is what a reader sees of a password-protected archive. padding: that
    many small XML entries first, which make libmagic take the zip for an
    Office file it cannot name ("application/octet-stream")."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(padding):
            z.writestr("customXml/item%d.xml" % (i + 1), "<item>%s</item>" % ("x" * 100))
        for name, data in entries:
            z.writestr(name, data)
    raw = bytearray(buf.getvalue())
    if encrypted:
        for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            at = raw.find(sig)
            while at >= 0:
                raw[at + off] |= 1
                at = raw.find(sig, at + 4)
    return bytes(raw)


def zero_bomb(size):
    """A zip holding size bytes of zeros (about a thousand to one)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("zeros.bin", "w") as f:
            chunk = bytes(1 << 20)
            for _ in range(size >> 20):
                f.write(chunk)
    return buf.getvalue()


# A minimal PE file: "MZ", e_lfanew at 0x3c pointing at "PE\0\0".
PE = b"MZ" + bytes(58) + (64).to_bytes(4, "little") + b"PE\x00\x00" + bytes(200)

LETTERHEAD = ("ỦY BAN NHÂN DÂN THÀNH PHỐ\r\nSỞ NỘI VỤ\r\n\r\n"
              "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM\r\nĐộc lập - Tự do - Hạnh phúc\r\n\r\n")


class ContentTest(RelayTestCase):
    relay_options = {"trusted_networks": "127.0.0.1/32"}
    with_sink = True
    sink_domain = "unused.example"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            r = cls.relay
            r.ctl_ok("tenant", "add", "city", "--name", "City")
            r.ctl_ok("tenant", "add", "ward", "--name", "Ward 1", "--parent", "city")
            r.add_domain(CITY, cls.sink.route, tenant="city")
            r.add_domain(WARD, cls.sink.route, tenant="ward")
        except BaseException:
            cls._cleanup_class()
            raise

    # ----------------------------------------------------------- helpers

    def send(self, data, rcpts=("nhan@" + CITY,), sender=SENDER):
        c = harness.RawSMTP(self.relay.ports["mx"])
        try:
            return c.send_message(sender, list(rcpts), data)
        finally:
            c.close()

    def assertClassified(self, data, level_ascii, rcpts=("nhan@" + CITY,), sender=SENDER):
        reply = self.send(data, rcpts, sender)
        self.assertEqual(reply.code, 550, reply.lines)
        text = "\n".join(reply.lines)
        self.assertTrue(all("5.7.1" in line for line in reply.lines), reply.lines)
        self.assertGreaterEqual(len(reply.lines), 4, reply.lines)
        # Vietnamese first, then English, each naming the level.
        self.assertIn("Thu bi tu choi", reply.lines[0])
        self.assertIn("do mat %s" % level_ascii, reply.lines[0])
        self.assertIn("state secret (%s)" % level_ascii, text)
        self.assertLess(text.index("Thu bi tu choi"), text.index("Message refused"))
        return reply

    def assertDelivered(self, data, marker, rcpts=("nhan@" + CITY,), sender=SENDER):
        reply = self.send(data, rcpts, sender)
        self.assertEqual(reply.code, 250, reply.lines)
        queued_id(reply)
        self.assertTrue(self.sink.find(marker.encode()), "not delivered: %s" % marker)

    def audit(self, *filters):
        r = self.relay.ctl_ok("audit", "search", *(filters + ("--json",)))
        return parse_json_lines(r.stdout)

    # ------------------------------------------------------------- tests

    def test_subject_markings_refused(self):
        cases = [
            ("[MẬT] Kế hoạch công tác quý IV", "MAT"),
            ("TỐI MẬT - Báo cáo tình hình", "TOI MAT"),
            ("=?UTF-8?B?%s?=" % base64.b64encode("Tuyệt mật: phương án".encode()).decode(),
             "TUYET MAT"),
            ("TUYET MAT: phuong an bao ve", "TUYET MAT"),
            ("Re: [Mật] Lịch họp", "MAT"),
        ]
        for subject, level in cases:
            with self.subTest(subject=subject):
                self.assertClassified(message(subject), level)
        self.assertEqual(self.sink.count(b"Kinh gui anh chi"), 0)

    def test_sio_label_refused(self):
        self.assertClassified(message(headers='SIO-Label: marking="TỐI MẬT"; '
                                      'type=":ess"\r\n'.encode()), "TOI MAT")

    def test_stamp_in_bodies_refused(self):
        qp_body = (LETTERHEAD + "MẬT\r\n\r\nKính gửi: Các phòng ban\r\n").encode()
        qp = b"".join(b"=%02X" % c if c > 126 or c == 61 else bytes([c]) for c in qp_body)
        self.assertClassified(message(
            body=qp, headers=b"Content-Type: text/plain; charset=utf-8\r\n"
                             b"Content-Transfer-Encoding: quoted-printable\r\n"), "MAT")
        # A stamp cut by a soft line break whose "=" transport padded with
        # white space: readers join it again (RFC 2045 6.7 rule 3).
        cut = (LETTERHEAD + "TỐI MẬT\r\n\r\nKính gửi: Các phòng ban\r\n").encode()
        cut = b"".join(b"=%02X" % c if c > 126 or c == 61 else bytes([c]) for c in cut)
        self.assertIn(b"M=E1=BA=ACT", cut)
        cut = cut.replace(b"M=E1=BA=ACT", b"M= \t\r\n=E1=BA=ACT", 1)
        self.assertClassified(message(
            body=cut, headers=b"Content-Type: text/plain; charset=utf-8\r\n"
                              b"Content-Transfer-Encoding: quoted-printable\r\n"), "TOI MAT")
        # The same with more padding than the decoder holds as written.
        self.assertClassified(message(
            body=cut.replace(b"M= \t\r\n", b"M=" + b" " * 300 + b"\r\n", 1),
            headers=b"Content-Type: text/plain; charset=utf-8\r\n"
                    b"Content-Transfer-Encoding: quoted-printable\r\n"), "TOI MAT")
        legacy = cp1258(LETTERHEAD + "TỐI MẬT\r\n\r\nKính gửi: Giám đốc Sở\r\n")
        self.assertClassified(message(
            body=legacy, headers=b"Content-Type: text/plain; charset=windows-1258\r\n"
                                 b"Content-Transfer-Encoding: 8bit\r\n"), "TOI MAT")
        html = ("<html><body><p>SỞ NỘI VỤ</p><p><b>TUYỆT&nbsp;MẬT</b></p>"
                "<p>Nội dung</p></body></html>").encode()
        self.assertClassified(message(
            body=base64.encodebytes(html).replace(b"\n", b"\r\n"),
            headers=b"Content-Type: text/html; charset=utf-8\r\n"
                    b"Content-Transfer-Encoding: base64\r\n"), "TUYET MAT")

    def test_forwarded_and_entity_markings_refused(self):
        # A classified message forwarded as an attachment (message/rfc822).
        inner = ("From: <a@so-noi-vu.org>\r\nSubject: [TỐI MẬT] Kế hoạch\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n\r\nNội dung.\r\n").encode()
        h, body = multipart([
            (b"Content-Type: text/plain; charset=utf-8\r\n", b"Chuyen tiep thu.\r\n"),
            (b"Content-Type: message/rfc822\r\n", inner)])
        self.assertClassified(message("Fwd: thu", body, h), "TOI MAT")
        # The same forwarded message in base64 or quoted-printable, which RFC
        # 2046 5.2.1 forbids but mail clients send and read.
        for cte, encoded in ((b"base64", base64.encodebytes(inner).replace(b"\n", b"\r\n")),
                             (b"quoted-printable", b"".join(
                                 b"=%02X" % c if c > 126 or c == 61 else bytes([c])
                                 for c in inner))):
            with self.subTest(encoding=cte):
                h, body = multipart([
                    (b"Content-Type: text/plain; charset=utf-8\r\n", b"Chuyen tiep thu.\r\n"),
                    (b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: " + cte +
                     b"\r\n", encoded)])
                self.assertClassified(message("Fwd: thu", body, h), "TOI MAT")
        # A stamp in a preamble: a reader that does not know MIME shows it.
        h, body = multipart([(b"Content-Type: text/plain; charset=utf-8\r\n", b"x\r\n")])
        body = body.replace(b"This is a multi-part message.\r\n",
                            (LETTERHEAD + "TUYỆT MẬT\r\n").encode())
        self.assertClassified(message("Bao cao", body, h), "TUYET MAT")
        # A stamp written with HTML character references only.
        html = b"<p>S&#7902; N&#7896;I V&#7908;</p><div>T&#7888;I M&#7852;T</div><p>x</p>"
        self.assertClassified(message(body=html, headers=b"Content-Type: text/html; "
                                      b"charset=us-ascii\r\n"), "TOI MAT")

    def test_encoded_containers_refused(self):
        # A multipart with a transfer encoding (RFC 2045 6.4 forbids it): a
        # reader that ignores the encoding shows the stamped part, one that
        # decodes first shows other parts. Either way it is refused, never
        # passed unread.
        stamped = (LETTERHEAD + "TỐI MẬT\r\n\r\nKính gửi: Các phòng ban\r\n").encode()
        h, body = multipart([
            (b"Content-Type: text/plain; charset=utf-8\r\n", b"Thu thuong.\r\n"),
            (b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n",
             stamped)])
        for cte in (b"quoted-printable", b"base64"):
            for encoded in (False, True):
                with self.subTest(cte=cte, encoded=encoded):
                    data = body
                    if encoded and cte == b"base64":
                        data = base64.encodebytes(body).replace(b"\n", b"\r\n")
                    reply = self.send(message("Bao cao", data, h + b"Content-Transfer-Encoding: "
                                              + cte + b"\r\n"))
                    self.assertEqual(reply.code, 554, reply.lines)
                    self.assertIn("5.6.0", reply.lines[-1])
                    self.assertIn("can be read more than one way", reply.lines[-1])
        # A forwarded message in base64 whose text is not base64: a reader
        # that shows it raw sees a stamp the decoder would skip.
        raw = ("Subject: [TỐI MẬT] Kế hoạch\r\n\r\nNội dung.\r\n").encode()
        h, body = multipart([
            (b"Content-Type: text/plain; charset=utf-8\r\n", b"Chuyen tiep thu.\r\n"),
            (b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n", raw)])
        reply = self.send(message("Fwd: thu", body, h))
        self.assertEqual(reply.code, 554, reply.lines)
        self.assertIn("5.6.0", reply.lines[-1])
        # The same multipart declared 7bit is walked: the stamp is found.
        h, body = multipart([
            (b"Content-Type: text/plain; charset=utf-8\r\n", b"Thu thuong.\r\n"),
            (b"Content-Type: text/plain; charset=utf-8\r\n", stamped)])
        self.assertClassified(message("Bao cao", body, h + b"Content-Transfer-Encoding: 8bit\r\n"),
                              "TOI MAT")

    def test_file_name_refused(self):
        name = "[MẬT] kế hoạch.txt".encode()
        encoded = b"".join(b"%%%02X" % c if c > 126 or c in b" []%" else bytes([c])
                           for c in name)
        h, body = multipart([
            (b"Content-Type: text/plain; charset=utf-8\r\n", b"Xem tep dinh kem.\r\n"),
            attachment(b"filename*=UTF-8''" + encoded, b"text/plain", b"noi dung\r\n"),
        ])
        self.assertClassified(message(headers=h, body=body), "MAT")

    def test_docx_refused(self):
        doc = docx(["SỞ TÀI CHÍNH", "TỐI MẬT", "Kế hoạch ngân sách năm 2027"])
        h, body = multipart([
            (b"Content-Type: text/plain; charset=utf-8\r\n", b"Gui anh ke hoach.\r\n"),
            attachment(b'filename="ke-hoach.docx"', b"application/vnd.openxmlformats-"
                       b"officedocument.wordprocessingml.document", doc),
        ])
        self.assertClassified(message(headers=h, body=body), "TOI MAT")
        # Again: the verdict now comes from the cache of attachments by digest.
        self.assertClassified(message(headers=h, body=body), "TOI MAT")

    def test_spreadsheet_and_slides_refused(self):
        # A workbook stamped in its page header (where a spreadsheet's
        # stamp is printed) and a presentation stamped on its first slide.
        sheet = xlsx(["Bảng tổng hợp", "Đơn vị", "Số tiền"], header="TỐI MẬT")
        slides = pptx([["TUYỆT MẬT", "Phương án bảo vệ"], ["Nội dung"]])
        for name, ctype, data, level in (
                (b"tong-hop.xlsx", b"application/vnd.openxmlformats-officedocument."
                 b"spreadsheetml.sheet", sheet, "TOI MAT"),
                (b"phuong-an.pptx", b"application/vnd.openxmlformats-officedocument."
                 b"presentationml.presentation", slides, "TUYET MAT")):
            with self.subTest(name=name):
                h, body = multipart([
                    (b"Content-Type: text/plain; charset=utf-8\r\n", b"Gui anh.\r\n"),
                    attachment(b'filename="' + name + b'"', ctype, data)])
                self.assertClassified(message(headers=h, body=body), level)
        # Ordinary ones pass, "mật khẩu" in a cell included.
        for name, data in ((b"cham-cong.xlsx", xlsx(["Bảng chấm công", "mật khẩu wifi"],
                                                     header="Phòng Hành chính")),
                           (b"lich-hop.pptx", pptx([["Lịch họp tuần", "Thứ Hai"]]))):
            with self.subTest(name=name):
                self.assertDelivered(self.attach(name, data), name.decode())

    def test_documents_declared_text_refused(self):
        # A stamped document or an archive sent as text/plain: the reader
        # saves it under its name and opens it as what it is.
        for name, ctype, data, level in (
                (b"bao-cao.docx", b"text/plain; charset=utf-8",
                 docx(["SỞ TÀI CHÍNH", "TỐI MẬT", "Dự toán"]), "TOI MAT"),
                (b"phuong-an.pdf", b"text/plain",
                 pdf(["SỞ XÂY DỰNG", "MẬT", "Phương án"]), "MAT")):
            with self.subTest(name=name):
                h, body = multipart([
                    (b"Content-Type: text/plain; charset=utf-8\r\n", b"Gui anh.\r\n"),
                    attachment(b'filename="' + name + b'"', ctype, data)])
                self.assertClassified(message(headers=h, body=body), level)
        h, body = multipart([
            (b"Content-Type: text/plain; charset=utf-8\r\n", b"Gui anh.\r\n"),
            attachment(b'filename="tai-lieu.txt"', b"text/plain",
                       zip_of([("cai-dat.exe", PE)]))])
        reply = self.send(message(headers=h, body=body))
        self.assertEqual(reply.code, 550, reply.lines)
        self.assertIn("cai-dat.exe", "\n".join(reply.lines))
        # Text that starts like an archive's signature is still text.
        self.assertDelivered(message(body=b"BZh, MSCF va ustar la ten dinh dang.\r\n"
                                     b"text-sig-marker\r\n",
                                     headers=b"Content-Type: text/plain; charset=utf-8\r\n"),
                             "text-sig-marker")

    def test_pdf_refused(self):
        doc = pdf(["SỞ XÂY DỰNG", "TỐI MẬT", "Phương án quy hoạch"])
        h, body = multipart([
            (b"Content-Type: text/plain; charset=utf-8\r\n", b"Gui anh phuong an.\r\n"),
            attachment(b'filename="phuong-an.pdf"', b"application/pdf", doc),
        ])
        self.assertClassified(message(headers=h, body=body), "TOI MAT")

    def test_prose_with_mat_delivered(self):
        body = ("Kính gửi anh,\r\nMật khẩu mới của hệ thống sẽ được gửi riêng.\r\n"
                "Đây là bí mật kinh doanh của đối tác, xin giữ kín.\r\n"
                "Mật ong rừng và mật độ dân số là hai chủ đề khác nhau.\r\n"
                "Thân mật,\r\nprose-marker-1\r\n").encode()
        self.assertDelivered(message(
            "Đổi mật khẩu hộp thư", body,
            b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n"), "prose-marker-1")

    def test_classified_audit_record(self):
        rcpts = ("a@" + CITY, "b@" + WARD)
        self.assertClassified(message("[TỐI MẬT] audit-marker"), "TOI MAT", rcpts)
        # The record is written by the writer thread after the reply: poll.
        harness.wait_for(lambda: any("audit-marker" in json.dumps(r, ensure_ascii=False) or
                                     "b@" + WARD in json.dumps(r)
                                     for r in self.audit("--event", "classified",
                                                         "--sender", SENDER)),
                         timeout=10, what="the classified audit record")
        recs = [r for r in self.audit("--event", "classified", "--sender", SENDER)
                if "b@" + WARD in json.dumps(r)]
        rec = recs[-1]
        flat = json.dumps(rec, ensure_ascii=False)
        for want in ("classified=toi-mat", "classified_where=subject", "a@" + CITY,
                     "b@" + WARD):
            self.assertIn(want, flat)

    def test_notice_to_security_contacts(self):
        r = self.relay
        r.ctl_ok("policy", "set", "city", "security_contact", "baomat@" + CITY)
        r.ctl_ok("policy", "set", "ward", "security_contact", "antoan@" + WARD)
        def notices(contact):
            return [m for m in self.sink.messages()
                    if contact in m.rcpts and b"classified message refused" in m.raw]
        contacts = ("baomat@" + CITY, "antoan@" + WARD)
        # Earlier tests' notices may still be on their way: only a new one counts.
        before = {c: {m.path for m in notices(c)} for c in contacts}
        try:
            secret = "noi-dung-mat-%s" % os.urandom(4).hex()
            self.assertClassified(message("[TUYỆT MẬT] notice-case", secret.encode() + b"\r\n",
                                          to="x@" + WARD), "TUYET MAT",
                                  rcpts=("x@" + WARD,))
            for contact in contacts:
                with self.subTest(contact=contact):
                    def fresh():
                        return [m for m in notices(contact)
                                if m.path not in before[contact] and b"tuyet-mat" in m.raw]
                    harness.wait_for(fresh, timeout=15, what="a notice to %s" % contact)
                    m = fresh()[-1]
                    self.assertEqual(m.mail_from, "", "notices use the null sender")
                    self.assertIn(SENDER.encode(), m.raw)
                    self.assertIn(b"subject", m.raw)
                    # The notice never carries the secret itself.
                    self.assertNotIn(secret.encode(), m.raw)
        finally:
            r.ctl_ok("policy", "unset", "city", "security_contact")
            r.ctl_ok("policy", "unset", "ward", "security_contact")

    def test_classified_quarantine_action(self):
        r = self.relay
        ward_sender = "vanthu@" + WARD
        r.ctl_ok("policy", "set", "ward", "classified_action", "quarantine")
        r.ctl_ok("policy", "set", "ward", "security_contact", "antoan@" + WARD)
        try:
            reply = self.send(message("[TỐI MẬT] quarantine-case", b"q-body\r\n",
                                      to="x@" + WARD, sender=ward_sender),
                              ("x@" + WARD,), ward_sender)
            self.assertEqual(reply.code, 250, reply.lines)
            qid = queued_id(reply)
            listing = r.ctl_ok("quarantine", "list").stdout
            self.assertIn(qid, listing)
            self.assertIn("classified", listing)
            shown = r.ctl_ok("quarantine", "show", qid).stdout
            self.assertIn("classified=toi-mat", shown)
            # Kept, not delivered; the security team is told it was kept.
            harness.wait_for(lambda: any(b"classified message quarantined" in m.raw
                                         for m in self.sink.messages()),
                             timeout=15, what="the quarantine notice")
            self.assertEqual(self.sink.count(b"q-body"), 0)
            # The city is stricter: the same message to the city is refused.
            self.assertClassified(message("[TỐI MẬT] to the city", sender=ward_sender),
                                  "TOI MAT", sender=ward_sender)
        finally:
            r.ctl_ok("policy", "unset", "ward", "classified_action")
            r.ctl_ok("policy", "unset", "ward", "security_contact")

    def test_min_level_of_the_agency(self):
        self.relay.ctl_ok("policy", "set", "ward", "classified_min_level", "toi-mat")
        ward_sender = "vanthu@" + WARD
        try:
            # Within the ward (its server, its recipient): the ward's level.
            self.assertDelivered(message("[MẬT] below the level", b"level-marker-1\r\n",
                                         to="x@" + WARD, sender=ward_sender),
                                 "level-marker-1", rcpts=("x@" + WARD,), sender=ward_sender)
            self.assertClassified(message("[TỐI MẬT] at the level", to="x@" + WARD,
                                          sender=ward_sender),
                                  "TOI MAT", rcpts=("x@" + WARD,), sender=ward_sender)
            # A message that also concerns the city keeps the city's (stricter) level.
            self.assertClassified(message("[MẬT] ward to city", sender=ward_sender), "MAT",
                                  sender=ward_sender)
            self.assertClassified(message("[MẬT] city to ward", to="x@" + WARD), "MAT",
                                  rcpts=("x@" + WARD,))
        finally:
            self.relay.ctl_ok("policy", "unset", "ward", "classified_min_level")

    def test_dlp_rules(self):
        r = self.relay
        r.ctl_ok("policy", "set", "ward", "dlp_rule.cccd", "action=reject builtin=cccd")
        r.ctl_ok("policy", "set", "ward", "dlp_rule.hopdong",
                 "action=tag threshold=2 pattern=(?i)hợp đồng số \\d+")
        r.ctl_ok("policy", "set", "ward", "dlp_rule.luong",
                 "action=quarantine pattern=(?i)bảng lương")
        try:
            ward = ("x@" + WARD,)
            body = ("Số CCCD của ông A: 001203004567.\r\n").encode()
            reply = self.send(message("Ho so", body, b"Content-Type: text/plain; "
                                      b"charset=utf-8\r\n", to=ward[0]), ward)
            self.assertEqual(reply.code, 550, reply.lines)
            self.assertIn("5.7.1", reply.last)
            self.assertIn("cccd (1)", "\n".join(reply.lines))
            # Outside the parts (the epilogue), which leaves with the message.
            h, b = multipart([(b"Content-Type: text/plain; charset=utf-8\r\n", b"Xem.\r\n")])
            reply = self.send(message("Ho so", b + b"So: 001203004567\r\n", h, to=ward[0]),
                              ward)
            self.assertEqual(reply.code, 550, reply.lines)
            self.assertIn("cccd (1)", "\n".join(reply.lines))
            # In the Subject alone (RFC 2047), which every reader shows.
            subject = "=?UTF-8?B?%s?=" % base64.b64encode(
                "Gửi CCCD 001203004567".encode()).decode()
            reply = self.send(message(subject, b"Xem tieu de.\r\n", to=ward[0]), ward)
            self.assertEqual(reply.code, 550, reply.lines)
            self.assertIn("cccd (1)", "\n".join(reply.lines))
            # In a display name of Cc: (RFC 2047), and in a Comments: field.
            name = "=?UTF-8?B?%s?=" % base64.b64encode(
                "Ông A CCCD 001203004567".encode()).decode()
            for extra in (("Cc: %s <y@%s>\r\n" % (name, WARD)).encode(),
                          b"Comments: so 001203004567\r\n"):
                reply = self.send(message("Ho so", b"Xem.\r\n", extra, to=ward[0]), ward)
                self.assertEqual(reply.code, 550, (extra, reply.lines))
                self.assertIn("cccd (1)", "\n".join(reply.lines))
            # The addresses and machine-made fields are not text: delivered.
            self.assertDelivered(message("Ho so", b"dlp-addr-marker\r\n",
                                         b"Cc: 001203004567@" + WARD.encode() + b"\r\n"
                                         b"References: <001203004567@city.org>\r\n",
                                         to=ward[0]), "dlp-addr-marker", rcpts=ward)
            # The same number to the city, which has no such rule: delivered.
            self.assertDelivered(message("Ho so", body + b"dlp-city-marker\r\n",
                                         b"Content-Type: text/plain; charset=utf-8\r\n"),
                                 "dlp-city-marker")
            # Two contract numbers, decomposed Vietnamese, in a base64 part: tagged.
            text = unicodedata.normalize(
                "NFD", "Hợp đồng số 12 và hợp đồng số 13.\r\ndlp-tag-marker\r\n").encode()
            h, b = multipart([(b"Content-Type: text/plain; charset=utf-8\r\n"
                               b"Content-Transfer-Encoding: base64\r\n",
                               base64.encodebytes(text).replace(b"\n", b"\r\n"))])
            self.assertDelivered(message("Hop dong dlp-tag-marker", b, h, to=ward[0]),
                                 "dlp-tag-marker", rcpts=ward)
            got = [m for m in self.sink.messages() if b"dlp-tag-marker" in m.raw][-1]
            self.assertIn(b"hopdong (2)", b"".join(got.headers("X-Govrelay-DLP")))
            # A payroll: kept in the quarantine, not delivered.
            reply = self.send(message("Bang luong", "Bảng lương tháng 11 dlp-q-marker\r\n"
                                      .encode(), b"Content-Type: text/plain; "
                                      b"charset=utf-8\r\n", to=ward[0]), ward)
            self.assertEqual(reply.code, 250, reply.lines)
            listing = r.ctl_ok("quarantine", "list", "--json").stdout
            self.assertIn("luong", listing)
            self.assertEqual(self.sink.count(b"dlp-q-marker"), 0)
        finally:
            for k in ("dlp_rule.cccd", "dlp_rule.hopdong", "dlp_rule.luong"):
                r.ctl_ok("policy", "unset", "ward", k)

    def attach(self, name, data, ctype=b"application/octet-stream"):
        h, body = multipart([
            (b"Content-Type: text/plain; charset=utf-8\r\n", b"Xem tep dinh kem.\r\n"),
            attachment(b'filename="' + name + b'"', ctype, data)])
        return message(headers=h, body=body)

    def assertAttachmentRefused(self, data, words):
        reply = self.send(data)
        self.assertEqual(reply.code, 550, reply.lines)
        text = "\n".join(reply.lines)
        self.assertIn("5.7.1", reply.last)
        self.assertIn("tep dinh kem", reply.lines[0])
        for w in words:
            self.assertIn(w, text)

    def test_attachment_rules(self):
        elf = open("/bin/true", "rb").read()
        # By content whatever the name and declared type, by name whatever the content.
        self.assertAttachmentRefused(self.attach(b"bao-cao.pdf", PE, b"application/pdf"),
                                     ["an executable file", "bao-cao.pdf"])
        self.assertAttachmentRefused(self.attach(b"chay.bat", b"@echo off\r\n",
                                                 b"text/plain"), ["chay.bat"])
        self.assertAttachmentRefused(self.attach(b"tinh-luong.py", b"print('x')\n",
                                                 b"text/plain"), ["tinh-luong.py"])
        self.assertAttachmentRefused(self.attach(b"anh.zip", zip_of([("anh/true", elf)])),
                                     ["an executable file", "inside anh.zip"])
        # An executable in a forwarded message sent base64-encoded.
        h, body = multipart([(b"Content-Type: application/x-msdownload; name=setup.exe\r\n"
                              b"Content-Transfer-Encoding: base64\r\n",
                              base64.encodebytes(PE).replace(b"\n", b"\r\n"))],
                            boundary="inner1")
        fwd = b"Subject: fwd\r\n" + h + b"\r\n" + body
        self.assertAttachmentRefused(self.attach(b"fwd.eml", fwd, b"message/rfc822"),
                                     ["setup.exe"])
        # Nested: a zip in a zip still shows what is inside.
        inner = zip_of([("setup.exe", PE)])
        self.assertAttachmentRefused(self.attach(b"tai-lieu.zip",
                                                 zip_of([("inner.zip", inner)])),
                                     ["setup.exe"])
        # An archive libmagic does not know as one is listed all the same,
        # by its signature: sent as it is, inside another, named as a photo.
        padded = zip_of([("setup.exe", PE)], padding=30)
        for name, data in ((b"tai-lieu.dat", padded),
                           (b"tai-lieu.zip", zip_of([("inner.zip", padded)])),
                           (b"tai-lieu-2.zip", zip_of([("anh.jpg", padded)]))):
            with self.subTest(name=name):
                self.assertAttachmentRefused(self.attach(name, data), ["setup.exe"])
        self.assertAttachmentRefused(self.attach(b"mat-khau.zip", zip_of(
            [("bao-cao.txt", b"noi dung")], encrypted=True)), ["an encrypted archive"])
        self.assertAttachmentRefused(self.attach(b"bomb.zip", zero_bomb(24 << 20)),
                                     ["cannot be inspected"])
        # A stamped DOCX inside a zip is a classified message.
        doc = docx(["UBND PHƯỜNG", "TUYỆT MẬT", "Phương án"])
        self.assertClassified(self.attach(b"ho-so.zip", zip_of([("ho-so/ke-hoach.docx", doc)])),
                              "TUYET MAT")
        # Laid out so that libmagic no longer knows it (parts before
        # [Content_Types].xml), or named like a photo: inside an archive
        # too, a document is one by what its content is.
        padded = docx(["UBND PHƯỜNG", "TUYỆT MẬT", "Phương án"], padding=30)
        for name in ("ke-hoach.docx", "anh-chup.jpg"):
            with self.subTest(name=name):
                self.assertClassified(self.attach(b"ho-so-2.zip", zip_of([(name, padded)])),
                                      "TUYET MAT")
        # What the agency allows: encrypted archives quarantined, scripts accepted.
        r = self.relay
        r.ctl_ok("policy", "set", "city", "encrypted_archive_action", "quarantine")
        r.ctl_ok("policy", "set", "city", "blocked_attachments", "executables")
        try:
            reply = self.send(self.attach(b"mat-khau-2.zip", zip_of(
                [("a.txt", b"x")], encrypted=True)))
            self.assertEqual(reply.code, 250, reply.lines)
            self.assertIn("mat-khau-2.zip", r.ctl_ok("quarantine", "list").stdout)
            self.assertDelivered(self.attach(b"tinh-luong.py", b"print('attach-py')\n",
                                             b"text/plain"), "tinh-luong.py")
            self.assertAttachmentRefused(self.attach(b"x.exe", PE), ["x.exe"])
        finally:
            r.ctl_ok("policy", "unset", "city", "encrypted_archive_action")
            r.ctl_ok("policy", "unset", "city", "blocked_attachments")
        # An ordinary archive of documents passes.
        self.assertDelivered(self.attach(b"van-ban-ok.zip", zip_of(
            [("a.docx", docx(["Thông báo lịch họp"])), ("b.pdf", pdf(["Lịch họp"]))])),
            "van-ban-ok.zip")

    def test_blocked_extensions(self):
        r = self.relay
        ward_rcpt = ("nhan@" + WARD,)
        r.ctl_ok("policy", "set", "ward", "blocked_extensions", ".ISO, img")
        r.ctl_ok("policy", "set", "city", "blocked_extensions", "docm")
        try:
            # The ward's own list, whatever the content, also on a text part and in a zip.
            for name, data, ctype in ((b"Dia.ISO", b"CD001 data", b"application/octet-stream"),
                                      (b"anh.img.", b"raw", b"application/octet-stream"),
                                      (b"ghi-chu.img", b"text\r\n", b"text/plain")):
                with self.subTest(name=name):
                    reply = self.send(self.attach(name, data, ctype), ward_rcpt)
                    self.assertEqual(reply.code, 550, reply.lines)
                    self.assertIn(name.decode().rstrip("."), "\n".join(reply.lines))
            reply = self.send(self.attach(b"goi.zip", zip_of([("dia/cai-dat.iso", b"CD001")])),
                              ward_rcpt)
            self.assertEqual(reply.code, 550, reply.lines)
            self.assertIn("a .iso file (dia/cai-dat.iso inside goi.zip)",
                          "\n".join(reply.lines))
            # The city's list holds for the ward too; the ward cannot take it off.
            reply = self.send(self.attach(b"mau-bieu.docm", b"macro"), ward_rcpt)
            self.assertEqual(reply.code, 550, reply.lines)
            self.assertIn("a .docm file (mau-bieu.docm)", "\n".join(reply.lines))
            # The ward's list is the ward's: the city's own mail carries .iso files.
            self.assertDelivered(self.attach(b"dia-city.iso", b"CD001 city"), "dia-city.iso")
            # A message to both agencies gets both lists.
            reply = self.send(self.attach(b"dia-2.iso", b"CD001"), ("nhan@" + CITY,) + ward_rcpt)
            self.assertEqual(reply.code, 550, reply.lines)
            # An operator is told the normal form, and the list that applies:
            # the ward's and the city's, each source named.
            shown = r.ctl_ok("policy", "show", "ward").stdout
            self.assertRegex(shown, r"blocked_extensions\s+docm,img,iso\s+ward,city")
            # bad values are refused.
            bad = r.ctl("policy", "set", "ward", "blocked_extensions", "../iso")
            self.assertNotEqual(bad.returncode, 0)
            self.assertIn("blocked_extensions", bad.stderr)
        finally:
            r.ctl_ok("policy", "unset", "ward", "blocked_extensions")
            r.ctl_ok("policy", "unset", "city", "blocked_extensions")
        self.assertDelivered(self.attach(b"dia-sau.iso", b"CD001 later"), "dia-sau.iso",
                             ward_rcpt)

    def test_mime_structure_limits(self):
        depth = 500
        head = b"Content-Type: multipart/mixed; boundary=\"d0\"\r\n"
        body = b""
        for i in range(1, depth):
            body += b"--d%d\r\nContent-Type: multipart/mixed; boundary=\"d%d\"\r\n\r\n" % (
                i - 1, i)
        body += b"--d%d\r\nContent-Type: text/plain\r\n\r\ndeep\r\n" % (depth - 1)
        for i in reversed(range(depth)):
            body += b"--d%d--\r\n" % i
        reply = self.send(message(headers=head, body=body))
        self.assertEqual(reply.code, 554, reply.lines)
        self.assertIn("5.6.0", reply.last)
        dup = (b"Content-Type: multipart/mixed; boundary=\"one\"; boundary=\"two\"\r\n")
        body = (b"--one\r\nContent-Type: text/plain\r\n\r\nA\r\n--two\r\n"
                b"Content-Type: text/plain\r\n\r\nB\r\n--one--\r\n--two--\r\n")
        reply = self.send(message(headers=dup, body=body))
        self.assertEqual(reply.code, 554, reply.lines)
        self.assertIn("5.6.0", reply.last)


class ContentAndAntivirusTest(RelayTestCase):
    """The content check and clamd together, as deployed: the EICAR test
    file where a lenient reader would still find it is refused by one or
    the other, and never delivered."""
    relay_options = {"trusted_networks": "127.0.0.1/32"}

    @classmethod
    def setUpClass(cls):
        harness.Clamd.require()
        super().setUpClass()
        try:
            cls.relay.add_domain(CITY, cls.sink.route)
            cls.clamd = harness.Clamd(cls.workdir).start()
            cls.relay.stop()
            cls.relay.configure(clamd=cls.clamd.target)
            cls.relay.start()
        except BaseException:
            if getattr(cls, "clamd", None) is not None:
                cls.clamd.stop()
            cls._cleanup_class()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.clamd.stop()
        super().tearDownClass()

    def test_eicar_never_delivered(self):
        eicar = base64.encodebytes(harness.EICAR).replace(b"\n", b"\r\n")
        part = (b"Content-Type: application/octet-stream\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\n" + eicar)
        deep_head = b"Content-Type: multipart/mixed; boundary=\"d0\"\r\n"
        deep = b""
        for i in range(1, 500):
            deep += (b"--d%d\r\nContent-Type: multipart/mixed; boundary=\"d%d\"\r\n\r\n"
                     % (i - 1, i))
        deep += b"--d499\r\n" + part + b"\r\n"
        for i in reversed(range(500)):
            deep += b"--d%d--\r\n" % i
        dup_head = b"Content-Type: multipart/mixed; boundary=\"one\"; boundary=\"two\"\r\n"
        dup = (b"--one\r\nContent-Type: text/plain\r\n\r\nhello\r\n--two\r\n" + part +
               b"\r\n--two--\r\n--one--\r\n")
        garbled = (b"--g\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64"
                   b"\r\n\r\n!!!not base64 at all\xff\xfe\r\n--g\r\n" + part + b"\r\n--g--\r\n")
        garbled_head = b"Content-Type: multipart/mixed; boundary=\"g\"\r\n"
        zipped = zip_of([("eicar.txt", harness.EICAR)])
        cases = [("plain", b"", harness.EICAR + b"\r\n"),
                 ("500 levels deep", deep_head, deep),
                 ("duplicate boundary", dup_head, dup),
                 ("after a garbled part", garbled_head, garbled)]
        h, b = multipart([attachment(b'filename="tai-lieu.zip"', b"application/zip", zipped)])
        cases.append(("zipped", h, b))
        for label, head, body in cases:
            with self.subTest(label):
                marker = "eicar-%s" % label.replace(" ", "-")
                c = harness.RawSMTP(self.relay.ports["mx"])
                try:
                    reply = c.send_message(SENDER, ["nhan@" + CITY],
                                           message(marker, body, head))
                finally:
                    c.close()
                self.assertIn(reply.code, (451, 550, 554), reply.lines)
        self.relay.wait_queue_empty()
        self.assertEqual([m for m in self.sink.messages() if b"eicar-" in m.raw], [])


if __name__ == "__main__":
    import unittest
    unittest.main()
