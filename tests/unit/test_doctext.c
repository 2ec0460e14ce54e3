/*
 * test_doctext: the text of DOCX, XLSX, PPTX, ODT, ODS, ODP and PDF
 * documents (policy/doctext.c), on documents built here at test time: the
 * zip packages written to memory with libarchive's zip writer, a PDF drawn with cairo's PDF
 * surface in DejaVu Sans (a font with the Vietnamese glyphs, from
 * fonts-dejavu-core), each stamped "TỐI MẬT" in the body or the page
 * header. Also the limits (text, inflated bytes, time), encrypted
 * documents, hostile XML (a DOCTYPE with an external entity) and garbage.
 *
 * OWNERSHIP: none. THREADS: Check forks one process per test; one test
 * runs extractions on several threads at once.
 * ERRORS: assertion failures.
 */
#include "config.h"

#include <cairo-pdf.h>
#include <cairo.h>
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/xmalloc.h"
#include "policy/doctext.h"
#include "tests/unit/fixture_zip.h"

#define N_CASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

#define W_NS "xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\""
#define XML_DECL "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n"
#define ODF_NS "xmlns:office=\"urn:oasis:names:tc:opendocument:xmlns:office:1.0\" " \
	"xmlns:style=\"urn:oasis:names:tc:opendocument:xmlns:style:1.0\" " \
	"xmlns:text=\"urn:oasis:names:tc:opendocument:xmlns:text:1.0\""

static const char ct_xml[] = XML_DECL
	"<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">"
	"<Default Extension=\"xml\" ContentType=\"application/xml\"/>"
	"<Override PartName=\"/word/document.xml\" ContentType=\"application/"
	"vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/></Types>";
static const char rels_xml[] = XML_DECL
	"<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
	"<Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/"
	"2006/relationships/officeDocument\" Target=\"word/document.xml\"/></Relationships>";

static const char body_stamp[] = XML_DECL "<w:document " W_NS "><w:body>"
	"<w:p><w:r><w:t>TỐI MẬT</w:t></w:r></w:p>"
	"<w:p><w:r><w:t xml:space=\"preserve\">Kính gửi: </w:t></w:r><w:r><w:tab/>"
	"<w:t>Sở Nội vụ</w:t></w:r></w:p><w:p/>"
	"<w:p><w:r><w:instrText>PAGE</w:instrText><w:t>Trang</w:t><w:br/><w:t>2</w:t></w:r></w:p>"
	"</w:body></w:document>";
/* Another prefix for the same namespace: matched by URI, not by prefix. */
static const char body_plain[] = XML_DECL "<x:document xmlns:x=\"http://schemas."
	"openxmlformats.org/wordprocessingml/2006/main\"><x:body><x:p><x:r><x:t>Báo cáo "
	"tình hình</x:t></x:r></x:p></x:body></x:document>";
static const char header_stamp[] = XML_DECL "<w:hdr " W_NS "><w:p><w:r><w:t>TỐI</w:t>"
	"</w:r><w:r><w:t xml:space=\"preserve\"> MẬT</w:t></w:r></w:p></w:hdr>";
static const char footnote[] = XML_DECL "<w:footnotes " W_NS "><w:footnote><w:p><w:r>"
	"<w:t>Ghi chú</w:t></w:r></w:p></w:footnote></w:footnotes>";
static const char body_xxe[] = XML_DECL "<!DOCTYPE w:document [<!ENTITY x SYSTEM "
	"\"file:///etc/passwd\">]><w:document " W_NS "><w:body><w:p><w:r><w:t>&x;</w:t>"
	"</w:r></w:p></w:body></w:document>";
static const char body_broken[] = XML_DECL "<w:document " W_NS "><w:body><w:p><w:r>"
	"<w:t>TỐI MẬT</w:r></w:body>";

static const char odt_content[] = XML_DECL "<office:document-content " ODF_NS ">"
	"<office:body><office:text><text:h text:outline-level=\"1\">TỐI MẬT</text:h>"
	"<text:p>Số:<text:s/>12/BC-<text:span>UBND</text:span></text:p>"
	"</office:text></office:body></office:document-content>";
static const char odt_styles[] = XML_DECL "<office:document-styles " ODF_NS ">"
	"<office:master-styles><style:master-page style:name=\"Standard\"><style:header>"
	"<text:p>MẬT</text:p></style:header></style:master-page></office:master-styles>"
	"</office:document-styles>";

static char *docx_of(const char *document, const char *header, const char *opts,
    const char *pass, size_t *len)
{
	struct fx_file f[] = {
		{ .name = "[Content_Types].xml", .data = ct_xml },
		{ .name = "_rels/.rels", .data = rels_xml },
		{ .name = "word/document.xml", .data = document },
		{ .name = "word/footnotes.xml", .data = footnote },
		{ .name = "word/header1.xml", .data = header != NULL ? header : "" },
	};

	return fx_archive(FX_ZIP, f, header != NULL ? 5 : 4, opts, pass, len);
}

static char *mk_docx_body(size_t *len) { return docx_of(body_stamp, NULL, NULL, NULL, len); }
static char *mk_docx_header(size_t *len) { return docx_of(body_plain, header_stamp, NULL, NULL, len); }
static char *mk_docx_xxe(size_t *len) { return docx_of(body_xxe, NULL, NULL, NULL, len); }
static char *mk_docx_broken(size_t *len) { return docx_of(body_broken, NULL, NULL, NULL, len); }

static char *mk_docx_encrypted(size_t *len)
{
	return docx_of(body_stamp, NULL, "zip:encryption=zipcrypt", "mật khẩu", len);
}

/* The main part named otherwise: a DOCX by its [Content_Types].xml. */
static char *mk_docx_ct_only(size_t *len)
{
	struct fx_file f[] = {
		{ .name = "[Content_Types].xml", .data = ct_xml },
		{ .name = "word/main.xml", .data = body_plain },
	};

	return fx_archive(FX_ZIP, f, 2, NULL, NULL, len);
}

/*
 * Parts found by their root element: a damaged part that is not one we
 * read is left alone, a styles part with w:t-like content is not text,
 * and the footer comes after the body.
 */
static char *mk_docx_odd_parts(size_t *len)
{
	struct fx_file f[] = {
		{ .name = "[Content_Types].xml", .data = ct_xml },
		{ .name = "customXml/item1.xml", .data = "<<< not XML at all" },
		{ .name = "word/styles.xml", .data = XML_DECL "<w:styles " W_NS "><w:style>"
		  "<w:name w:val=\"x\"/><w:t>không phải văn bản</w:t></w:style></w:styles>" },
		{ .name = "word/footer2.xml", .data = XML_DECL "<w:ftr " W_NS "><w:p><w:r>"
		  "<w:t>Trang 1</w:t></w:r></w:p></w:ftr>" },
		{ .name = "word/body.xml", .data = body_plain },
		{ .name = "word/media/image1.png", .data = "\x89PNG" },
	};

	return fx_archive(FX_ZIP, f, 6, NULL, NULL, len);
}

/* A paragraph repeated into an 8 MiB part that deflates to a few KiB. */
#define BOMB_PARA "<w:p><w:r><w:t>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa</w:t></w:r></w:p>"
static char *mk_docx_bomb(size_t *len)
{
	static const char pre[] = XML_DECL "<w:document " W_NS "><w:body>";
	static const char post[] = "</w:body></w:document>";
	size_t plen = sizeof BOMB_PARA - 1, reps = ((size_t)8 << 20) / plen, i;
	struct buf doc;
	char *out;

	buf_init(&doc);
	buf_append(&doc, pre, sizeof pre - 1);
	for (i = 0; i < reps; i++)
		buf_append(&doc, BOMB_PARA, plen);
	buf_append(&doc, post, sizeof post - 1);
	{
		struct fx_file f[] = {
			{ .name = "[Content_Types].xml", .data = ct_xml },
			{ .name = "word/document.xml", .data = doc.data, .len = doc.len },
		};

		out = fx_archive(FX_ZIP, f, 2, NULL, NULL, len);
	}
	buf_free(&doc);
	return out;
}

/* ODF 1.2 part 3 §3.3: "mimetype" first and stored. */
static char *mk_odt(size_t *len)
{
	struct fx_file f[] = {
		{ .name = "mimetype", .data = "application/vnd.oasis.opendocument.text",
		  .store = 1 },
		{ .name = "content.xml", .data = odt_content, .store = -1 },
		{ .name = "styles.xml", .data = odt_styles },
		{ .name = "META-INF/manifest.xml", .data = XML_DECL "<manifest/>" },
	};

	return fx_archive(FX_ZIP, f, 4, NULL, NULL, len);
}

/* ------------------------------------------------ spreadsheets, slides */

#define S_NS "xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\""
#define P_NS "xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\" " \
	"xmlns:p=\"http://schemas.openxmlformats.org/presentationml/2006/main\""
#define CT_HEAD XML_DECL "<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/" \
	"content-types\"><Default Extension=\"xml\" ContentType=\"application/xml\"/>"
#define CT_MAIN(part, type) "<Override PartName=\"" part "\" ContentType=\"application/" \
	"vnd.openxmlformats-officedocument." type ".main+xml\"/>"

static const char xlsx_ct[] = CT_HEAD CT_MAIN("/xl/workbook.xml", "spreadsheetml.sheet")
	"</Types>";
/*
 * A workbook that embeds a document lists the document's type too, and
 * first: the main part's type decides.
 */
static const char xlsx_ct_embedding[] = CT_HEAD "<Default Extension=\"docx\" "
	"ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml."
	"document\"/>" CT_MAIN("/xl/book.xml", "spreadsheetml.sheet") "</Types>";
static const char xlsx_workbook[] = XML_DECL "<workbook " S_NS "><sheets><sheet "
	"name=\"Trang 1\" sheetId=\"1\"/></sheets></workbook>";
/*
 * The stamp in the page header, between formatting codes; an inline
 * string and a formula's cached value (not typed text) in the cells; a
 * footer with a literal ampersand.
 */
static const char xlsx_sheet[] = XML_DECL "<worksheet " S_NS "><sheetData><row r=\"1\">"
	"<c r=\"A1\" t=\"s\"><v>0</v></c></row><row r=\"2\"><c r=\"A2\" t=\"inlineStr\">"
	"<is><t>Ô nhập trực tiếp</t></is></c><c r=\"B2\"><f>1+1</f><v>2</v></c></row>"
	"</sheetData><headerFooter><oddHeader>&amp;C&amp;\"Times New Roman,Bold\"&amp;14TỐI "
	"MẬT&amp;RTrang &amp;P/&amp;N</oddHeader><oddFooter>&amp;L&amp;K00FF00Lưu hành nội bộ "
	"&amp;&amp; có kiểm soát&amp;</oddFooter></headerFooter></worksheet>";
static const char xlsx_sst[] = XML_DECL "<sst " S_NS " count=\"2\" uniqueCount=\"2\">"
	"<si><t>Báo cáo</t></si><si><r><t xml:space=\"preserve\">Số liệu </t></r><r><rPr><b/>"
	"</rPr><t>quý IV</t></r><rPh sb=\"0\" eb=\"1\"><t>ふりがな</t></rPh></si></sst>";
static const char xlsx_comments[] = XML_DECL "<comments " S_NS "><authors><author>A"
	"</author></authors><commentList><comment ref=\"A1\" authorId=\"0\"><text><r>"
	"<t>Ghi chú ô A1</t></r></text></comment></commentList></comments>";

static char *mk_xlsx(size_t *len)
{
	struct fx_file f[] = {
		{ .name = "[Content_Types].xml", .data = xlsx_ct },
		{ .name = "xl/workbook.xml", .data = xlsx_workbook },
		{ .name = "xl/worksheets/sheet1.xml", .data = xlsx_sheet },
		{ .name = "xl/sharedStrings.xml", .data = xlsx_sst },
		{ .name = "xl/comments1.xml", .data = xlsx_comments },
	};

	return fx_archive(FX_ZIP, f, 5, NULL, NULL, len);
}

/* Numbers only: no shared strings at all, still a workbook that reads. */
static char *mk_xlsx_numbers(size_t *len)
{
	struct fx_file f[] = {
		{ .name = "[Content_Types].xml", .data = xlsx_ct_embedding },
		{ .name = "xl/book.xml", .data = xlsx_workbook },
		{ .name = "xl/embeddings/a.docx", .data = "PK" },
		{ .name = "xl/worksheets/sheet1.xml", .data = XML_DECL "<worksheet " S_NS
		  "><sheetData><row r=\"1\"><c r=\"A1\"><v>42</v></c></row></sheetData>"
		  "</worksheet>" },
	};

	return fx_archive(FX_ZIP, f, 4, NULL, NULL, len);
}

static const char pptx_ct[] = CT_HEAD CT_MAIN("/ppt/presentation.xml",
	"presentationml.presentation") "</Types>";
/* A tab stop (a:tab in a:tabLst) is no text; a:br is a line break. */
static const char pptx_slide[] = XML_DECL "<p:sld " P_NS "><p:cSld><p:spTree><p:sp>"
	"<p:txBody><a:bodyPr/><a:p><a:pPr><a:tabLst><a:tab pos=\"914400\"/></a:tabLst>"
	"</a:pPr><a:r><a:t>TỐI MẬT</a:t></a:r></a:p><a:p><a:r><a:t>Kế hoạch</a:t></a:r>"
	"<a:br/><a:r><a:t>năm 2027</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld>"
	"</p:sld>";

static char *mk_pptx(size_t *len)
{
	struct fx_file f[] = {
		{ .name = "[Content_Types].xml", .data = pptx_ct },
		{ .name = "ppt/presentation.xml", .data = XML_DECL "<p:presentation " P_NS
		  "/>" },
		{ .name = "ppt/slideMasters/slideMaster1.xml", .data = XML_DECL "<p:sldMaster "
		  P_NS "><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>Click to edit "
		  "Master title style</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld>"
		  "</p:sldMaster>" },
		{ .name = "ppt/notesSlides/notesSlide1.xml", .data = XML_DECL "<p:notes " P_NS
		  "><p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>Ghi chú người trình bày"
		  "</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:notes>" },
		{ .name = "ppt/slides/slide1.xml", .data = pptx_slide },
	};

	return fx_archive(FX_ZIP, f, 5, NULL, NULL, len);
}

#define ODF_MORE "xmlns:table=\"urn:oasis:names:tc:opendocument:xmlns:table:1.0\" " \
	"xmlns:draw=\"urn:oasis:names:tc:opendocument:xmlns:drawing:1.0\""

static char *odf_of(const char *mime, const char *content, size_t *len)
{
	struct fx_file f[] = {
		{ .name = "mimetype", .data = mime, .store = 1 },
		{ .name = "content.xml", .data = content },
	};

	return fx_archive(FX_ZIP, f, 2, NULL, NULL, len);
}

static char *mk_ods(size_t *len)
{
	return odf_of("application/vnd.oasis.opendocument.spreadsheet", XML_DECL
	    "<office:document-content " ODF_NS " " ODF_MORE "><office:body><office:spreadsheet>"
	    "<table:table><table:table-row><table:table-cell><text:p>MẬT</text:p>"
	    "</table:table-cell><table:table-cell><text:p>Bảng lương</text:p>"
	    "</table:table-cell></table:table-row></table:table></office:spreadsheet>"
	    "</office:body></office:document-content>", len);
}

static char *mk_odp(size_t *len)
{
	return odf_of("application/vnd.oasis.opendocument.presentation", XML_DECL
	    "<office:document-content " ODF_NS " " ODF_MORE "><office:body><office:presentation>"
	    "<draw:page><draw:frame><draw:text-box><text:p>TUYỆT MẬT</text:p>"
	    "</draw:text-box></draw:frame></draw:page></office:presentation></office:body>"
	    "</office:document-content>", len);
}

/* An ODF type this module does not read (a drawing). */
static char *mk_odg(size_t *len)
{
	return odf_of("application/vnd.oasis.opendocument.graphics", XML_DECL
	    "<office:document-content " ODF_NS "/>", len);
}

static char *mk_plain_zip(size_t *len)
{
	struct fx_file f[] = { { .name = "word/readme.txt", .data = "TỐI MẬT" } };

	return fx_archive(FX_ZIP, f, 1, NULL, NULL, len);
}

/*
 * cairo 1.16's toy font API, through fontconfig, loses a few blocks the
 * first times it looks a face up (a duplicated pattern, parts of the
 * parsed configuration: "definitely lost" to LSan and valgrind, inside
 * libfontconfig): not ours to fix, and only this fixture uses it. LSan is
 * told to look away while the page is drawn; valgrind has its
 * suppression in tests/valgrind.supp.
 */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define FONT_LEAK_BEGIN() __lsan_disable()
#define FONT_LEAK_END() __lsan_enable()
#else
#define FONT_LEAK_BEGIN() ((void)0)
#define FONT_LEAK_END() ((void)0)
#endif

static cairo_status_t pdf_write(void *closure, const unsigned char *data, unsigned int len)
{
	buf_append(closure, data, len);
	return CAIRO_STATUS_SUCCESS;
}

/* Two pages drawn in DejaVu Sans: the stamp and a line on the first. */
static char *mk_pdf(size_t *len)
{
	struct buf out;
	cairo_surface_t *s;
	cairo_t *cr;

	buf_init(&out);
	s = cairo_pdf_surface_create_for_stream(pdf_write, &out, 595, 842);
	FONT_LEAK_BEGIN();
	cr = cairo_create(s);
	cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
	    CAIRO_FONT_WEIGHT_BOLD);
	cairo_set_font_size(cr, 24);
	cairo_move_to(cr, 72, 72);
	cairo_show_text(cr, "TỐI MẬT");
	cairo_set_font_size(cr, 12);
	cairo_move_to(cr, 72, 120);
	cairo_show_text(cr, "Báo cáo số 12");
	cairo_show_page(cr);
	cairo_move_to(cr, 72, 72);
	cairo_show_text(cr, "Trang hai");
	cairo_show_page(cr);
	cairo_destroy(cr);
	cairo_surface_finish(s);
	FONT_LEAK_END();
	ck_assert_int_eq(cairo_surface_status(s), CAIRO_STATUS_SUCCESS);
	cairo_surface_destroy(s);
	return buf_steal(&out, len);
}

/*
 * A PDF with the standard security handler (ISO 32000-1 §7.6.3) whose
 * user password is not empty: the /U entry matches no password we try.
 */
static char *mk_pdf_encrypted(size_t *len)
{
	static const char pdf[] = "%PDF-1.4\n"
		"1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
		"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
		"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >> endobj\n"
		"4 0 obj << /Filter /Standard /V 1 /R 2 /P -4\n"
		"/O <1111111111111111111111111111111111111111111111111111111111111111>\n"
		"/U <2222222222222222222222222222222222222222222222222222222222222222> >> endobj\n"
		"trailer << /Root 1 0 R /Encrypt 4 0 R /Size 5\n"
		"/ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>] >>\n"
		"%%EOF\n";

	*len = sizeof pdf - 1;
	return xmemdup(pdf, sizeof pdf - 1);
}

static char *mk_pdf_garbage(size_t *len)
{
	char *g = xmalloc(4096);
	size_t i;

	memcpy(g, "%PDF-1.4\n", 9);
	for (i = 9; i < 4096; i++)
		g[i] = (char)(i * 7919 % 251);
	*len = 4096;
	return g;
}

static char *mk_garbage(size_t *len)
{
	char *g = xmalloc(2048);
	size_t i;

	memcpy(g, "PK\003\004", 4);
	for (i = 4; i < 2048; i++)
		g[i] = (char)(i * 31 % 253);
	*len = 2048;
	return g;
}

/* A DOCX cut in half: its central directory is gone. */
static char *mk_docx_truncated(size_t *len)
{
	char *d = docx_of(body_stamp, NULL, NULL, NULL, len);

	*len /= 2;
	return d;
}

/* --------------------------------------------------------------- kind */

static const struct {
	const char *label;
	char *(*make)(size_t *len);
	enum doctext_kind kind;
} kind_cases[] = {
	{ "docx by word/document.xml", mk_docx_body, DOCTEXT_DOCX },
	{ "docx by [Content_Types].xml", mk_docx_ct_only, DOCTEXT_DOCX },
	{ "encrypted docx still a docx", mk_docx_encrypted, DOCTEXT_DOCX },
	{ "odt by its mimetype entry", mk_odt, DOCTEXT_ODT },
	{ "xlsx by xl/workbook.xml", mk_xlsx, DOCTEXT_XLSX },
	{ "xlsx by its main part's type, an embedded docx's listed first", mk_xlsx_numbers,
	  DOCTEXT_XLSX },
	{ "pptx by ppt/presentation.xml", mk_pptx, DOCTEXT_PPTX },
	{ "ods by its mimetype entry", mk_ods, DOCTEXT_ODS },
	{ "odp by its mimetype entry", mk_odp, DOCTEXT_ODP },
	{ "odg: an ODF kind not read", mk_odg, DOCTEXT_NONE },
	{ "pdf drawn by cairo", mk_pdf, DOCTEXT_PDF },
	{ "pdf header only", mk_pdf_garbage, DOCTEXT_PDF },
	{ "a zip of text", mk_plain_zip, DOCTEXT_NONE },
	{ "garbage after a zip signature", mk_garbage, DOCTEXT_NONE },
};

START_TEST(test_kind)
{
	size_t len;
	char *d = kind_cases[_i].make(&len);

	ck_assert_msg(doctext_kind_of(d, len) == kind_cases[_i].kind, "%s: %s",
	    kind_cases[_i].label, doctext_kind_name(doctext_kind_of(d, len)));
	free(d);
}
END_TEST

START_TEST(test_kind_edges)
{
	char pdf_late[1100];

	ck_assert_int_eq(doctext_kind_of(NULL, 0), DOCTEXT_NONE);
	ck_assert_int_eq(doctext_kind_of("", 0), DOCTEXT_NONE);
	ck_assert_int_eq(doctext_kind_of("%PDF", 4), DOCTEXT_NONE);
	ck_assert_int_eq(doctext_kind_of("PK\003\004", 4), DOCTEXT_NONE);
	memset(pdf_late, ' ', sizeof pdf_late);
	memcpy(pdf_late + 1000, "%PDF-1.7", 8);
	ck_assert_int_eq(doctext_kind_of(pdf_late, sizeof pdf_late), DOCTEXT_PDF);
	memset(pdf_late, ' ', sizeof pdf_late);
	memcpy(pdf_late + 1050, "%PDF-1.7", 8);
	ck_assert_int_eq(doctext_kind_of(pdf_late, sizeof pdf_late), DOCTEXT_NONE);
	ck_assert_str_eq(doctext_kind_name(DOCTEXT_DOCX), "docx");
	ck_assert_str_eq(doctext_kind_name(DOCTEXT_ODT), "odt");
	ck_assert_str_eq(doctext_kind_name(DOCTEXT_PDF), "pdf");
	ck_assert_str_eq(doctext_kind_name(DOCTEXT_XLSX), "xlsx");
	ck_assert_str_eq(doctext_kind_name(DOCTEXT_PPTX), "pptx");
	ck_assert_str_eq(doctext_kind_name(DOCTEXT_ODS), "ods");
	ck_assert_str_eq(doctext_kind_name(DOCTEXT_ODP), "odp");
	ck_assert_str_eq(doctext_kind_name(DOCTEXT_NONE), "none");
}
END_TEST

/* --------------------------------------------------------------- text */

static void collect(void *arg, const char *utf8, size_t len)
{
	ck_assert_uint_gt(len, 0);
	buf_append(arg, utf8, len);
}

enum match { EXACT, CONTAINS, EMPTY, ANY };

static const struct {
	const char *label;
	char *(*make)(size_t *len);
	enum doctext_kind kind;
	struct doctext_limits lim;
	int status;
	enum match match;
	const char *text;
} text_cases[] = {
	{ "docx body stamp: w:t, w:tab, w:br, empty w:p, no instrText", mk_docx_body,
	  DOCTEXT_DOCX, { 0 }, DOCTEXT_OK, EXACT,
	  "TỐI MẬT\nKính gửi:  Sở Nội vụ\n\nTrang\n2\nGhi chú\n" },
	{ "docx header stamp read before the body", mk_docx_header, DOCTEXT_DOCX, { 0 },
	  DOCTEXT_OK, EXACT, "TỐI MẬT\nBáo cáo tình hình\nGhi chú\n" },
	{ "odt: page header in styles.xml, then text:h, text:s, text:span", mk_odt,
	  DOCTEXT_ODT, { 0 }, DOCTEXT_OK, EXACT, "MẬT\nTỐI MẬT\nSố: 12/BC-UBND\n" },
	{ "xlsx: page headers first (codes dropped, sections as lines), shared strings "
	  "(no rPh), inline strings (no formula values), footers, comments", mk_xlsx,
	  DOCTEXT_XLSX, { 0 }, DOCTEXT_OK, EXACT,
	  "\nTỐI MẬT\nTrang /\nBáo cáo\nSố liệu quý IV\nÔ nhập trực tiếp\n"
	  "\nLưu hành nội bộ & có kiểm soát\nGhi chú ô A1\n" },
	{ "xlsx of numbers only: no text, read", mk_xlsx_numbers, DOCTEXT_XLSX, { 0 },
	  DOCTEXT_OK, EMPTY, NULL },
	{ "pptx: slides (a:t, a:br; tab stops no text), then notes; no master", mk_pptx,
	  DOCTEXT_PPTX, { 0 }, DOCTEXT_OK, EXACT,
	  "TỐI MẬT\nKế hoạch\nnăm 2027\nGhi chú người trình bày\n" },
	{ "ods: cells' text:p", mk_ods, DOCTEXT_ODS, { 0 }, DOCTEXT_OK, EXACT,
	  "MẬT\nBảng lương\n" },
	{ "odp: a frame's text:p", mk_odp, DOCTEXT_ODP, { 0 }, DOCTEXT_OK, EXACT, "TUYỆT MẬT\n" },
	{ "a docx as xlsx: no worksheet", mk_docx_body, DOCTEXT_XLSX, { 0 }, DOCTEXT_E_FORMAT,
	  EMPTY, NULL },
	{ "an xlsx as pptx: no slide", mk_xlsx, DOCTEXT_PPTX, { 0 }, DOCTEXT_E_FORMAT, EMPTY,
	  NULL },
	{ "an xlsx as docx: no w:document", mk_xlsx, DOCTEXT_DOCX, { 0 }, DOCTEXT_E_FORMAT,
	  EMPTY, NULL },
	{ "pdf drawn by cairo in DejaVu Sans", mk_pdf, DOCTEXT_PDF, { 0 }, DOCTEXT_OK,
	  CONTAINS, "TỐI MẬT" },
	{ "pdf second page", mk_pdf, DOCTEXT_PDF, { 0 }, DOCTEXT_OK, CONTAINS, "Trang hai" },
	{ "main part named otherwise, found by [Content_Types].xml", mk_docx_ct_only,
	  DOCTEXT_DOCX, { 0 }, DOCTEXT_OK, EXACT, "Báo cáo tình hình\n" },
	{ "parts by root element: body, then footer; others left alone", mk_docx_odd_parts,
	  DOCTEXT_DOCX, { 0 }, DOCTEXT_OK, EXACT, "Báo cáo tình hình\nTrang 1\n" },
	{ "text limit cuts before a 3-byte character", mk_docx_body, DOCTEXT_DOCX,
	  { .max_text = 3 }, DOCTEXT_E_LIMIT, EXACT, "T" },
	{ "text limit on a character boundary", mk_docx_body, DOCTEXT_DOCX,
	  { .max_text = 4 }, DOCTEXT_E_LIMIT, EXACT, "TỐ" },
	{ "pdf text limit", mk_pdf, DOCTEXT_PDF, { .max_text = 5 }, DOCTEXT_E_LIMIT,
	  EXACT, "TỐI" },
	{ "8 MiB part over a 1 MiB inflate limit", mk_docx_bomb, DOCTEXT_DOCX,
	  { .max_inflated = (size_t)1 << 20, .max_text = (size_t)64 << 20 },
	  DOCTEXT_E_LIMIT, CONTAINS, "aaaa\naaaa" },
	{ "8 MiB part in 1 ms", mk_docx_bomb, DOCTEXT_DOCX,
	  { .timeout_ms = 1, .max_text = (size_t)64 << 20 }, DOCTEXT_E_LIMIT, ANY, NULL },
	{ "8 MiB part read whole under the default limits", mk_docx_bomb, DOCTEXT_DOCX,
	  { .max_text = (size_t)64 << 20, .timeout_ms = 60000 }, DOCTEXT_OK, CONTAINS,
	  "aaaa\naaaa" },
	{ "zipcrypt-encrypted docx", mk_docx_encrypted, DOCTEXT_DOCX, { 0 },
	  DOCTEXT_E_ENCRYPTED, EMPTY, NULL },
	{ "pdf with a user password", mk_pdf_encrypted, DOCTEXT_PDF, { 0 },
	  DOCTEXT_E_ENCRYPTED, EMPTY, NULL },
	{ "DOCTYPE with an external entity refused", mk_docx_xxe, DOCTEXT_DOCX, { 0 },
	  DOCTEXT_E_FORMAT, EMPTY, NULL },
	{ "unclosed elements", mk_docx_broken, DOCTEXT_DOCX, { 0 }, DOCTEXT_E_FORMAT,
	  ANY, NULL },
	{ "truncated docx", mk_docx_truncated, DOCTEXT_DOCX, { 0 }, DOCTEXT_E_FORMAT,
	  EMPTY, NULL },
	{ "garbage as docx", mk_garbage, DOCTEXT_DOCX, { 0 }, DOCTEXT_E_FORMAT, EMPTY, NULL },
	{ "garbage as odt", mk_garbage, DOCTEXT_ODT, { 0 }, DOCTEXT_E_FORMAT, EMPTY, NULL },
	{ "garbage as pdf", mk_pdf_garbage, DOCTEXT_PDF, { 0 }, DOCTEXT_E_FORMAT, EMPTY, NULL },
	{ "a docx as pdf", mk_docx_body, DOCTEXT_PDF, { 0 }, DOCTEXT_E_FORMAT, EMPTY, NULL },
	{ "a zip of text as docx: no body", mk_plain_zip, DOCTEXT_DOCX, { 0 },
	  DOCTEXT_E_FORMAT, EMPTY, NULL },
	{ "a docx as odt: no content.xml", mk_docx_body, DOCTEXT_ODT, { 0 },
	  DOCTEXT_E_FORMAT, EMPTY, NULL },
	{ "an odt as docx: no w:document", mk_odt, DOCTEXT_DOCX, { 0 },
	  DOCTEXT_E_FORMAT, EMPTY, NULL },
	{ "kind none", mk_docx_body, DOCTEXT_NONE, { 0 }, DOCTEXT_E_FORMAT, EMPTY, NULL },
};

START_TEST(test_text)
{
	size_t len;
	char *d = text_cases[_i].make(&len);
	struct buf out;
	int st;

	buf_init(&out);
	st = doctext_extract(text_cases[_i].kind, d, len, &text_cases[_i].lim, collect, &out);
	ck_assert_msg(st == text_cases[_i].status, "%s: status %d", text_cases[_i].label, st);
	switch (text_cases[_i].match) {
	case EXACT:
		ck_assert_msg(out.len == strlen(text_cases[_i].text) &&
		    memcmp(out.data, text_cases[_i].text, out.len) == 0, "%s: got \"%.*s\"",
		    text_cases[_i].label, (int)(out.len < 200 ? out.len : 200), out.data);
		break;
	case CONTAINS:
		ck_assert_msg(out.len > 0 && memmem(out.data, out.len, text_cases[_i].text,
		    strlen(text_cases[_i].text)) != NULL, "%s: got \"%.*s\"",
		    text_cases[_i].label, (int)(out.len < 200 ? out.len : 200), out.data);
		break;
	case EMPTY:
		ck_assert_msg(out.len == 0, "%s: got \"%.*s\"", text_cases[_i].label,
		    (int)(out.len < 200 ? out.len : 200), out.data);
		break;
	case ANY:
		break;
	}
	if (text_cases[_i].lim.max_text != 0)
		ck_assert_uint_le(out.len, text_cases[_i].lim.max_text);
	buf_free(&out);
	free(d);
}
END_TEST

/* The inflate limit counts bytes actually read: 1 MiB, not more. */
START_TEST(test_inflate_bound)
{
	struct doctext_limits lim = { .max_inflated = (size_t)1 << 20,
	    .max_text = (size_t)64 << 20 };
	struct buf out;
	size_t len;
	char *d = mk_docx_bomb(&len);

	buf_init(&out);
	ck_assert_int_eq(doctext_extract(DOCTEXT_DOCX, d, len, &lim, collect, &out),
	    DOCTEXT_E_LIMIT);
	ck_assert_uint_le(out.len, (size_t)1 << 20);
	ck_assert_uint_gt(out.len, (size_t)100 << 10);
	buf_free(&out);
	free(d);
}
END_TEST

/*
 * Page header codes as a hostile workbook might write them: cut short,
 * followed by non-ASCII, or too long. What comes out is whole UTF-8.
 */
static const struct {
	const char *label;
	const char *header;     /* XML-escaped, as in the part */
	const char *text;
} hf_cases[] = {
	{ "unterminated font name", "&amp;C&amp;\"Arial", "\n\n" },
	{ "ampersand at the end", "Mật&amp;", "Mật\n" },
	{ "colour cut by a non-ASCII character", "&amp;KTỐI", "ỐI\n" },
	{ "ampersand before a non-ASCII character", "&amp;Ố", "Ố\n" },
	{ "font size at the end", "&amp;12", "\n" },
	{ "toggles around the stamp", "&amp;B&amp;UTỐI MẬT&amp;U&amp;B", "TỐI MẬT\n" },
	{ "the three sections", "&amp;LA&amp;CB&amp;RC", "\nA\nB\nC\n" },
};

static char *xlsx_with_header(const char *header, size_t *len)
{
	struct buf sheet;
	char *out;

	buf_init(&sheet);
	buf_printf(&sheet, "%s<worksheet %s><sheetData/><headerFooter><firstHeader>%s"
	    "</firstHeader></headerFooter></worksheet>", XML_DECL, S_NS, header);
	{
		struct fx_file f[] = {
			{ .name = "[Content_Types].xml", .data = xlsx_ct },
			{ .name = "xl/worksheets/sheet1.xml", .data = buf_cstr(&sheet) },
		};

		out = fx_archive(FX_ZIP, f, 2, NULL, NULL, len);
	}
	buf_free(&sheet);
	return out;
}

START_TEST(test_xlsx_header_codes)
{
	size_t len;
	char *d = xlsx_with_header(hf_cases[_i].header, &len);
	struct buf out;

	buf_init(&out);
	ck_assert_int_eq(doctext_extract(DOCTEXT_XLSX, d, len, NULL, collect, &out), DOCTEXT_OK);
	ck_assert_msg(out.len == strlen(hf_cases[_i].text) &&
	    memcmp(out.data, hf_cases[_i].text, out.len) == 0, "%s: got \"%.*s\"",
	    hf_cases[_i].label, (int)out.len, out.data);
	buf_free(&out);
	free(d);
}
END_TEST

/* A header past the 1 KiB kept is cut on a character boundary. */
START_TEST(test_xlsx_header_long)
{
	struct buf hdr, out, want;
	size_t len, i;
	char *d;

	buf_init(&hdr);
	buf_init(&out);
	buf_init(&want);
	for (i = 0; i < 700; i++)
		buf_append_str(&hdr, "Ố");
	d = xlsx_with_header(buf_cstr(&hdr), &len);
	ck_assert_int_eq(doctext_extract(DOCTEXT_XLSX, d, len, NULL, collect, &out), DOCTEXT_OK);
	for (i = 0; i < 1024 / 3; i++)
		buf_append_str(&want, "Ố");
	buf_append_str(&want, "\n");
	ck_assert_uint_eq(out.len, want.len);
	ck_assert_int_eq(memcmp(out.data, want.data, out.len), 0);
	buf_free(&hdr);
	buf_free(&out);
	buf_free(&want);
	free(d);
}
END_TEST

/* Each call is independent: several threads extract at once. */
struct job {
	const char *doc;
	size_t len;
	enum doctext_kind kind;
	int ok;
};

static void *run_job(void *arg)
{
	struct job *j = arg;
	int i;

	for (i = 0; i < 20; i++) {
		struct buf out;

		buf_init(&out);
		if (doctext_extract(j->kind, j->doc, j->len, NULL, collect, &out) == DOCTEXT_OK &&
		    memmem(out.data, out.len, "TỐI MẬT", strlen("TỐI MẬT")) != NULL)
			j->ok++;
		buf_free(&out);
	}
	return NULL;
}

START_TEST(test_threads)
{
	struct job jobs[4];
	pthread_t th[4];
	char *docs[4];
	int i;

	docs[0] = mk_pdf(&jobs[0].len);
	docs[1] = mk_docx_body(&jobs[1].len);
	docs[2] = mk_odt(&jobs[2].len);
	docs[3] = mk_pdf(&jobs[3].len);
	for (i = 0; i < 4; i++) {
		jobs[i].doc = docs[i];
		jobs[i].kind = doctext_kind_of(docs[i], jobs[i].len);
		jobs[i].ok = 0;
		ck_assert_int_eq(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_msg(jobs[i].ok == 20, "thread %d: %d of 20", i, jobs[i].ok);
		free(docs[i]);
	}
}
END_TEST

static Suite *doctext_suite(void)
{
	Suite *s = suite_create("doctext");
	TCase *tc = tcase_create("all");

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_kind, 0, N_CASES(kind_cases));
	tcase_add_test(tc, test_kind_edges);
	tcase_add_loop_test(tc, test_text, 0, N_CASES(text_cases));
	tcase_add_test(tc, test_inflate_bound);
	tcase_add_loop_test(tc, test_xlsx_header_codes, 0, N_CASES(hf_cases));
	tcase_add_test(tc, test_xlsx_header_long);
	tcase_add_test(tc, test_threads);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(doctext_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
