"""
Documents for the content tests and the content benchmark, made at run
time (nothing binary is committed): a minimal DOCX (WordprocessingML in a
zip), XLSX (SpreadsheetML) and PPTX (PresentationML), and a one-page PDF
whose text any extractor reads back exactly.
"""
import io
import zipfile
from xml.sax.saxutils import escape

OPC_TYPES = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.'
             'openxmlformats.org/package/2006/content-types"><Default Extension="xml" '
             'ContentType="application/xml"/><Override PartName="/%s" '
             'ContentType="application/vnd.openxmlformats-officedocument.%s.main+xml"/>'
             '</Types>')
XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'


def opc(main, main_type, parts):
    """A zip package: [Content_Types].xml naming the main part, then parts."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", OPC_TYPES % (main, main_type))
        for name, text in parts:
            z.writestr(name, text)
    return buf.getvalue()


def xlsx(cells, header=None):
    """One worksheet: each cell a shared string, one per row; header is
    the page header's centre section (Excel's &C code)."""
    ns = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rows = "".join('<row r="%d"><c r="A%d" t="s"><v>%d</v></c></row>' % (i + 1, i + 1, i)
                   for i in range(len(cells)))
    hf = ("<headerFooter><oddHeader>&amp;C&amp;\"Times New Roman,Bold\"%s</oddHeader>"
          "</headerFooter>" % escape(header)) if header else ""
    sheet = ('%s<worksheet xmlns="%s"><sheetData>%s</sheetData>%s</worksheet>'
             % (XML_DECL, ns, rows, hf))
    sst = ('%s<sst xmlns="%s">%s</sst>'
           % (XML_DECL, ns, "".join("<si><t>%s</t></si>" % escape(c) for c in cells)))
    book = ('%s<workbook xmlns="%s"><sheets><sheet name="Trang 1" sheetId="1"/></sheets>'
            '</workbook>' % (XML_DECL, ns))
    return opc("xl/workbook.xml", "spreadsheetml.sheet",
               [("xl/workbook.xml", book), ("xl/worksheets/sheet1.xml", sheet),
                ("xl/sharedStrings.xml", sst)])


def pptx(slides):
    """One slide per list of paragraphs."""
    ns = ('xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
          'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"')
    parts = [("ppt/presentation.xml", "%s<p:presentation %s/>" % (XML_DECL, ns))]
    for i, paragraphs in enumerate(slides):
        body = "".join("<a:p><a:r><a:t>%s</a:t></a:r></a:p>" % escape(p) for p in paragraphs)
        parts.append(("ppt/slides/slide%d.xml" % (i + 1),
                      "%s<p:sld %s><p:cSld><p:spTree><p:sp><p:txBody><a:bodyPr/>%s"
                      "</p:txBody></p:sp></p:spTree></p:cSld></p:sld>" % (XML_DECL, ns, body)))
    return opc("ppt/presentation.xml", "presentationml.presentation", parts)


def docx(paragraphs, padding=0):
    """A minimal WordprocessingML document with these paragraphs. padding:
    that many extra XML parts stored before [Content_Types].xml (OPC does
    not order the parts, and Word opens such a package), which libmagic
    then calls application/zip."""
    ns = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = "".join("<w:p><w:r><w:t>%s</w:t></w:r></w:p>" % p for p in paragraphs)
    doc = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
           '<w:document xmlns:w="%s"><w:body>%s</w:body></w:document>' % (ns, body))
    types = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.'
             'openxmlformats.org/package/2006/content-types"><Default Extension="xml" '
             'ContentType="application/xml"/><Override PartName="/word/document.xml" '
             'ContentType="application/vnd.openxmlformats-officedocument.'
             'wordprocessingml.document.main+xml"/></Types>')
    rels = ('<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
            'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            'officeDocument" Target="word/document.xml"/></Relationships>')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for i in range(padding):
            z.writestr("customXml/item%d.xml" % (i + 1), "<item>%s</item>" % ("x" * 100))
        z.writestr("[Content_Types].xml", types)
        z.writestr("_rels/.rels", rels)
        z.writestr("word/document.xml", doc)
    return buf.getvalue()


def pdf(lines, per_page=45, comment=b""):
    """A PDF whose text is lines (any Unicode in the BMP), per_page lines
    to an A4 page, as a report is laid out: a Type0 font with Identity-H
    codes equal to the code points and a ToUnicode map saying so, which is
    how a text extractor reads it. comment, if any, is put right after the
    header line (a benchmark rewrites it to make every copy different)."""
    used = sorted({ord(c) for line in lines for c in line})
    cmap = ("/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
            "/CMapName /Adobe-Identity-UCS def /CMapType 2 def\n"
            "1 begincodespacerange <0000> <FFFF> endcodespacerange\n"
            "%d beginbfchar\n%s\nendbfchar\nendcmap\n"
            "CMapName currentdict /CMap defineresource pop end end\n"
            % (len(used), "\n".join("<%04X> <%04X>" % (u, u) for u in used)))
    pages = [lines[i:i + per_page] for i in range(0, len(lines), per_page)] or [[]]
    # Objects: 1 catalog, 2 pages, 3 font, 4 CID font, 5 ToUnicode, 6 descriptor,
    # then a page and its content stream for each page.
    first = 7
    kids = " ".join("%d 0 R" % (first + 2 * k) for k in range(len(pages)))
    objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)),
        "<< /Type /Font /Subtype /Type0 /BaseFont /ArialUnicode /Encoding /Identity-H "
        "/DescendantFonts [4 0 R] /ToUnicode 5 0 R >>",
        "<< /Type /Font /Subtype /CIDFontType2 /BaseFont /ArialUnicode "
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
        "/FontDescriptor 6 0 R /DW 600 >>",
        "<< /Length %d >>\nstream\n%sendstream" % (len(cmap), cmap),
        "<< /Type /FontDescriptor /FontName /ArialUnicode /Flags 32 "
        "/FontBBox [0 -200 1000 900] /ItalicAngle 0 /Ascent 900 /Descent -200 "
        "/CapHeight 700 /StemV 80 >>",
    ]
    for k, page in enumerate(pages):
        content = "".join("BT /F1 12 Tf 56 %d Td <%s> Tj ET\n"
                          % (790 - 17 * i, "".join("%04X" % ord(c) for c in line))
                          for i, line in enumerate(page))
        objs.append("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                    "/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
                    % (first + 2 * k + 1))
        objs.append("<< /Length %d >>\nstream\n%sendstream" % (len(content), content))
    out = b"%PDF-1.4\n" + comment
    offsets = []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += ("%d 0 obj\n%s\nendobj\n" % (i, o)).encode("latin-1")
    xref = len(out)
    out += ("xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)).encode()
    for off in offsets:
        out += ("%010d 00000 n \n" % off).encode()
    out += ("trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(objs) + 1, xref)).encode()
    return out
