/*
 * doctext: the text a reader sees in an attached document (a text
 * document, a spreadsheet, a presentation or a PDF), for the checks that
 * look for classification stamps and DLP patterns.
 *
 * Office Open XML (ECMA-376 / ISO/IEC 29500: DOCX, XLSX, PPTX) and OASIS
 * OpenDocument 1.2 (ODT, ODS, ODP) are zip archives of XML parts.
 * libarchive reads the zip from memory (archive_read_open_memory:
 * nothing touches the disk) and libxml2's xmlTextReader streams each part
 * straight out of the archive, so a part is never held whole. The parts
 * are read in the order a reader meets them on the page: the page headers
 * first (a stamp such as "TỐI MẬT" is usually typed there), then the
 * body (a spreadsheet's cells, a presentation's slides), then footnotes,
 * footers, comments and speaker notes. PDF goes through poppler-glib from
 * the same memory, page by page.
 *
 * Limits: max_inflated counts every byte pulled out of the archive
 * (parts opened only to see their root element too); the clock is read
 * between entries, between pages and every 64 XML nodes, so one page's
 * text extraction inside poppler is the longest step that cannot be cut.
 *
 * Entry points: doctext_kind_of(), doctext_extract(), doctext_kind_name().
 *
 * OWNERSHIP: data is borrowed for the call; the pieces handed to out are
 * valid only until out returns.
 * THREADS: any thread; every call has its own archive, XML reader and
 * PDF document. The only process-wide state is set once (pthread_once):
 * libxml2's parser initialization and a GLib log handler that drops
 * poppler's diagnostics about damaged files (see doctext_once()).
 * ERRORS: a doctext_status; a crossed limit stops the work where it is,
 * after the text read so far was delivered.
 */
#include "config.h"

#include "policy/doctext.h"

#include <archive.h>
#include <archive_entry.h>
#include <libxml/parser.h>
#include <libxml/xmlreader.h>
#include <poppler.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/xmalloc.h"

#define DOCTEXT_DEF_TEXT ((size_t)1 << 20)
#define DOCTEXT_DEF_INFLATED ((size_t)64 << 20)
#define DOCTEXT_DEF_TIMEOUT_MS 5000u
/* [Content_Types].xml is small; a bigger one is not worth reading. */
#define DOCTEXT_CT_MAX 65536
/* The clock is read once per this many XML nodes. */
#define DOCTEXT_CLOCK_EVERY 64

#define DOCTEXT_NS_W "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
#define DOCTEXT_NS_W_STRICT "http://purl.oclc.org/ooxml/wordprocessingml/main"
#define DOCTEXT_NS_S "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
#define DOCTEXT_NS_S_STRICT "http://purl.oclc.org/ooxml/spreadsheetml/main"
#define DOCTEXT_NS_P "http://schemas.openxmlformats.org/presentationml/2006/main"
#define DOCTEXT_NS_P_STRICT "http://purl.oclc.org/ooxml/presentationml/main"
#define DOCTEXT_NS_A "http://schemas.openxmlformats.org/drawingml/2006/main"
#define DOCTEXT_NS_A_STRICT "http://purl.oclc.org/ooxml/drawingml/main"
#define DOCTEXT_NS_TEXT "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
/* Excel keeps a page header or footer to 255 characters; more is cut. */
#define DOCTEXT_HF_MAX 1024

/* One extraction: the limits in force and how much of each is spent. */
struct doctext_run {
	size_t max_text, max_inflated;
	struct timespec deadline;
	const bool *enough;  /* the caller has read all it needs */
	void (*out)(void *arg, const char *utf8, size_t len);
	void *arg;
	size_t text;        /* bytes delivered */
	size_t inflated;    /* bytes read out of the archive */
	unsigned ticks;     /* nodes since the clock was last read */
	unsigned rooted;    /* parts read (their root element was wanted) */
	int status;         /* the first failure; DOCTEXT_OK until then */
	struct archive *ar; /* the archive the current part is read from */
};

static pthread_once_t doctext_once_ctl = PTHREAD_ONCE_INIT;

static void doctext_glib_quiet(const gchar *domain, GLogLevelFlags level,
    const gchar *msg, gpointer data)
{
	(void)domain; (void)level; (void)msg; (void)data;
}

/*
 * poppler-glib reports every syntax error of a damaged PDF through
 * g_log in the "Poppler" domain (at INFO level: silent unless
 * G_MESSAGES_DEBUG is set, but a hostile PDF can carry thousands, and a
 * damaged file is a result we return, not news for the daemon's log).
 * xmlInitParser() must run once before threads use libxml2.
 */
/*
 * poppler builds its global parameters (font tables, encodings) when a
 * document is opened and no other is alive, and tears them down with the
 * last one: opening PDFs one after another rebuilt them every time, half
 * of the cost of reading a 150 KB report's first page (1,167 against 530
 * microseconds). One empty document, opened once and never closed, keeps
 * them for the life of the process.
 */
static const char doctext_keepalive_pdf[] = "%PDF-1.4\n"
    "1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    "2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    "3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 10 10]>>endobj\n"
    "trailer<</Root 1 0 R>>\n%%EOF\n";
/*
 * volatile: written once and never read, the store would otherwise be
 * dropped by the compiler, and with it the only reference to the
 * document (valgrind then rightly calls it lost).
 */
static PopplerDocument *volatile doctext_keepalive;

static void doctext_once(void)
{
	GBytes *b;

	xmlInitParser();
	g_log_set_handler("Poppler", (GLogLevelFlags)(G_LOG_LEVEL_WARNING |
	    G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG),
	    doctext_glib_quiet, NULL);
	b = g_bytes_new_static(doctext_keepalive_pdf, sizeof doctext_keepalive_pdf - 1);
	doctext_keepalive = poppler_document_new_from_bytes(b, NULL, NULL);
	g_bytes_unref(b);
}

const char *doctext_kind_name(enum doctext_kind kind)
{
	switch (kind) {
	case DOCTEXT_DOCX: return "docx";
	case DOCTEXT_ODT: return "odt";
	case DOCTEXT_PDF: return "pdf";
	case DOCTEXT_XLSX: return "xlsx";
	case DOCTEXT_PPTX: return "pptx";
	case DOCTEXT_ODS: return "ods";
	case DOCTEXT_ODP: return "odp";
	case DOCTEXT_NONE: break;
	}
	return "none";
}

static bool doctext_set_status(struct doctext_run *r, int status)
{
	if (r->status == DOCTEXT_OK)
		r->status = status;
	return false;
}

static bool doctext_in_time(struct doctext_run *r)
{
	struct timespec now;

	if (r->status != DOCTEXT_OK || (r->enough != NULL && *r->enough))
		return false;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec > r->deadline.tv_sec || (now.tv_sec == r->deadline.tv_sec &&
	    now.tv_nsec >= r->deadline.tv_nsec))
		return doctext_set_status(r, DOCTEXT_E_LIMIT);
	return true;
}

/*
 * Delivers text, cut at max_text on a UTF-8 character boundary (never
 * half a character: the finders after us decode it).
 */
static void doctext_emit(struct doctext_run *r, const char *s, size_t len)
{
	size_t room;

	if (r->status != DOCTEXT_OK || len == 0)
		return;
	room = r->max_text - r->text;
	if (len > room) {
		len = room;
		while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--;
		doctext_set_status(r, DOCTEXT_E_LIMIT);
	}
	if (len == 0)
		return;
	r->out(r->arg, s, len);
	r->text += len;
}

/* ------------------------------------------------------------ kind */

static uint16_t doctext_le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

/*
 * ODF 1.2 part 3 §3.3: the first entry of the zip is "mimetype", stored
 * uncompressed and without an extra field, so the media type can be read
 * at a fixed place in the local file header (PKWARE APPNOTE §4.3.7). A
 * template's type ("...text-template") starts like its document's.
 */
static enum doctext_kind doctext_odf_kind(const unsigned char *p, size_t len)
{
	static const struct {
		const char *mime;
		enum doctext_kind kind;
	} types[] = {
		{ "application/vnd.oasis.opendocument.text", DOCTEXT_ODT },
		{ "application/vnd.oasis.opendocument.spreadsheet", DOCTEXT_ODS },
		{ "application/vnd.oasis.opendocument.presentation", DOCTEXT_ODP },
	};
	size_t nlen, xlen, at, i;

	if (len < 30)
		return DOCTEXT_NONE;
	nlen = doctext_le16(p + 26);
	xlen = doctext_le16(p + 28);
	if (nlen != 8 || memcmp(p + 30, "mimetype", 8) != 0 || doctext_le16(p + 8) != 0)
		return DOCTEXT_NONE;
	at = 30 + nlen + xlen;
	for (i = 0; i < sizeof types / sizeof types[0]; i++) {
		size_t mlen = strlen(types[i].mime);

		if (len >= at + mlen && memcmp(p + at, types[i].mime, mlen) == 0)
			return types[i].kind;
	}
	return DOCTEXT_NONE;
}

static struct archive *doctext_zip_open(const char *data, size_t len)
{
	struct archive *a = archive_read_new();

	archive_read_support_format_zip(a);
	if (archive_read_open_memory(a, data, len) != ARCHIVE_OK) {
		archive_read_free(a);
		return NULL;
	}
	return a;
}

/*
 * An OPC package (ECMA-376 part 2) is a document, a workbook or a
 * presentation by its main part: named word/document.xml, xl/workbook.xml
 * or ppt/presentation.xml by the applications, or announced under any
 * name in [Content_Types].xml with its main content type (the macro and
 * template variants too). Only a main part's type counts: a workbook with
 * a document embedded in it lists the document's type as well.
 */
static const struct doctext_opc {
	const char *entry;
	const char *types[7];
	enum doctext_kind kind;
} doctext_opc[] = {
	{ "word/document.xml", { "wordprocessingml.document.main+xml",
	  "wordprocessingml.template.main+xml", "ms-word.document.macroEnabled.main+xml",
	  "ms-word.template.macroEnabledTemplate.main+xml", NULL }, DOCTEXT_DOCX },
	{ "xl/workbook.xml", { "spreadsheetml.sheet.main+xml", "spreadsheetml.template.main+xml",
	  "ms-excel.sheet.macroEnabled.main+xml", "ms-excel.template.macroEnabled.main+xml",
	  NULL }, DOCTEXT_XLSX },
	{ "ppt/presentation.xml", { "presentationml.presentation.main+xml",
	  "presentationml.slideshow.main+xml", "presentationml.template.main+xml",
	  "ms-powerpoint.presentation.macroEnabled.main+xml",
	  "ms-powerpoint.slideshow.macroEnabled.main+xml",
	  "ms-powerpoint.template.macroEnabled.main+xml", NULL }, DOCTEXT_PPTX },
};
#define DOCTEXT_N_OPC (sizeof doctext_opc / sizeof doctext_opc[0])

/* Reads [Content_Types].xml (bounded) and looks for a main part's type. */
static enum doctext_kind doctext_ct_kind(struct archive *a)
{
	char *buf = xmalloc(DOCTEXT_CT_MAX);
	enum doctext_kind kind = DOCTEXT_NONE;
	size_t have = 0, i, t;
	la_ssize_t n;

	while (have < DOCTEXT_CT_MAX &&
	    (n = archive_read_data(a, buf + have, DOCTEXT_CT_MAX - have)) > 0)
		have += (size_t)n;
	for (i = 0; i < DOCTEXT_N_OPC && kind == DOCTEXT_NONE; i++)
		for (t = 0; doctext_opc[i].types[t] != NULL && kind == DOCTEXT_NONE; t++)
			if (memmem(buf, have, doctext_opc[i].types[t],
			    strlen(doctext_opc[i].types[t])) != NULL)
				kind = doctext_opc[i].kind;
	free(buf);
	return kind;
}

static enum doctext_kind doctext_opc_kind(const char *data, size_t len)
{
	struct archive *a = doctext_zip_open(data, len);
	struct archive_entry *e;
	enum doctext_kind kind = DOCTEXT_NONE;
	size_t i;
	int n = 0;

	if (a == NULL)
		return DOCTEXT_NONE;
	while (kind == DOCTEXT_NONE && n++ < 10000 &&
	    archive_read_next_header(a, &e) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e);

		if (name == NULL)
			continue;
		for (i = 0; i < DOCTEXT_N_OPC; i++)
			if (strcmp(name, doctext_opc[i].entry) == 0)
				kind = doctext_opc[i].kind;
		if (kind == DOCTEXT_NONE && strcmp(name, "[Content_Types].xml") == 0 &&
		    !archive_entry_is_encrypted(e))
			kind = doctext_ct_kind(a);
	}
	archive_read_free(a);
	return kind;
}

enum doctext_kind doctext_kind_of(const char *data, size_t len)
{
	const unsigned char *p = (const unsigned char *)data;
	enum doctext_kind kind;

	if (data == NULL)
		return DOCTEXT_NONE;
	/* ISO 32000-1 §7.5.2; readers accept the header within 1024 bytes. */
	if (memmem(data, len < 1024 ? len : 1024, "%PDF-", 5) != NULL)
		return DOCTEXT_PDF;
	if (len < 30 || memcmp(p, "PK\003\004", 4) != 0)
		return DOCTEXT_NONE;
	kind = doctext_odf_kind(p, len);
	if (kind != DOCTEXT_NONE)
		return kind;
	pthread_once(&doctext_once_ctl, doctext_once);
	return doctext_opc_kind(data, len);
}

/* ------------------------------------------------------------ XML */

/* libxml2 pulls the part's bytes through here, counted against the limit. */
static int doctext_xml_read(void *ctx, char *buf, int len)
{
	struct doctext_run *r = ctx;
	la_ssize_t n;

	if (r->status != DOCTEXT_OK || len <= 0)
		return -1;
	n = archive_read_data(r->ar, buf, (size_t)len);
	if (n < 0)
		return -1;
	if ((size_t)n > r->max_inflated - r->inflated) {
		doctext_set_status(r, DOCTEXT_E_LIMIT);
		return -1;
	}
	r->inflated += (size_t)n;
	return (int)n;
}

static int doctext_xml_close(void *ctx)
{
	(void)ctx;
	return 0;
}

/* The XML vocabulary a part's text is written in. */
enum doctext_markup {
	DOCTEXT_WML,    /* WordprocessingML (DOCX) */
	DOCTEXT_ODF,    /* OpenDocument text:* (ODT, ODS, ODP) */
	DOCTEXT_SML,    /* SpreadsheetML (XLSX) */
	DOCTEXT_PML,    /* PresentationML parts, their text in DrawingML (PPTX) */
};

/* The pieces of a worksheet a pass reads (SpreadsheetML only). */
#define DOCTEXT_HEAD 1u  /* page headers */
#define DOCTEXT_BODY 2u  /* cell text, shared strings, comments */
#define DOCTEXT_FOOT 4u  /* page footers */

static bool doctext_ns_eq(const xmlChar *ns, const char *a, const char *b)
{
	return strcmp((const char *)ns, a) == 0 || (b != NULL && strcmp((const char *)ns, b) == 0);
}

/* root: the namespace of a part's root element, else of its text elements. */
static bool doctext_ns_is(const xmlChar *ns, enum doctext_markup m, bool root)
{
	if (ns == NULL)
		return false;
	switch (m) {
	case DOCTEXT_WML: return doctext_ns_eq(ns, DOCTEXT_NS_W, DOCTEXT_NS_W_STRICT);
	case DOCTEXT_ODF: return doctext_ns_eq(ns, DOCTEXT_NS_TEXT, NULL);
	case DOCTEXT_SML: return doctext_ns_eq(ns, DOCTEXT_NS_S, DOCTEXT_NS_S_STRICT);
	case DOCTEXT_PML:
		return root ? doctext_ns_eq(ns, DOCTEXT_NS_P, DOCTEXT_NS_P_STRICT) :
		    doctext_ns_eq(ns, DOCTEXT_NS_A, DOCTEXT_NS_A_STRICT);
	}
	return false;
}

/* Which markup the part is in, and where in it the reader stands. */
struct doctext_xml {
	enum doctext_markup markup;
	unsigned what;            /* SML: DOCTEXT_HEAD | _BODY | _FOOT read by this pass */
	const char *const *roots; /* the root elements read; NULL: any */
	bool rooted;              /* the root element was met and is one of them */
	int in_text;              /* inside a text element (ODF: depth of text:p / text:h) */
	int phonetic;             /* SML: depth inside rPh, a reading guide not shown */
	bool in_hf, hf_full;      /* SML: inside a page header or footer read; cut */
	size_t hf_len;
	char hf[DOCTEXT_HF_MAX];  /* SML: the header or footer as typed, codes and all */
};

/* Is the root element one the pass reads (in the markup's namespace)? */
static bool doctext_root_wanted(const struct doctext_xml *x, xmlTextReaderPtr rd)
{
	const char *n = (const char *)xmlTextReaderConstLocalName(rd);
	const char *const *r;

	if (x->roots == NULL)
		return true;
	if (n == NULL || !doctext_ns_is(xmlTextReaderConstNamespaceUri(rd), x->markup, true))
		return false;
	for (r = x->roots; *r != NULL; r++)
		if (strcmp(n, *r) == 0)
			return true;
	return false;
}

static bool doctext_name_in(const char *n, const char *const *names)
{
	for (; *names != NULL; names++)
		if (strcmp(n, *names) == 0)
			return true;
	return false;
}

/*
 * WordprocessingML (ECMA-376 part 1 §17.3): text only in w:t, w:tab and
 * w:br/w:cr as white space, a paragraph (w:p) ends a line. DrawingML
 * (§21.1.2) is alike without w:tab and w:cr: a:t, a:br, a:p (its a:tab
 * elements are tab stops, not text).
 */
static void doctext_wml_element(struct doctext_run *r, struct doctext_xml *x,
    const char *n, bool start, bool empty)
{
	bool wml = x->markup == DOCTEXT_WML;

	if (strcmp(n, "t") == 0 && !empty)
		x->in_text = start;
	else if (strcmp(n, "p") == 0 && (!start || empty))
		doctext_emit(r, "\n", 1);
	else if (wml && start && strcmp(n, "tab") == 0)
		doctext_emit(r, " ", 1);
	else if (start && (strcmp(n, "br") == 0 || (wml && strcmp(n, "cr") == 0)))
		doctext_emit(r, "\n", 1);
}

/*
 * ODF (1.2 part 1 §5.1-5.6): text:p and text:h hold text, text:s /
 * text:tab / text:line-break are white space inside them. A spreadsheet
 * cell and a slide's frame hold text:p alike.
 */
static void doctext_odf_element(struct doctext_run *r, struct doctext_xml *x,
    const char *n, bool start, bool empty)
{
	if (strcmp(n, "p") == 0 || strcmp(n, "h") == 0) {
		if (start && !empty)
			x->in_text++;
		else if (!start && x->in_text > 0)
			x->in_text--;
		if (!start || empty)
			doctext_emit(r, "\n", 1);
	} else if (start && x->in_text > 0 && (strcmp(n, "s") == 0 || strcmp(n, "tab") == 0)) {
		doctext_emit(r, " ", 1);
	} else if (start && x->in_text > 0 && strcmp(n, "line-break") == 0) {
		doctext_emit(r, "\n", 1);
	}
}

/*
 * A page header or footer as typed (ECMA-376 part 1 §18.3.1.39): &L, &C
 * and &R start the left, centre and right sections, each a line here as
 * each stands apart on the page; && is an ampersand. Every other code
 * formats or inserts a field and is no typed text: &"font,style", &K and
 * six characters of colour, a font size in digits, or one letter (&P,
 * &N, &D, &T, &A, &F, &Z, &G, &B, &I, &U, &E, &S, &X, &Y, &O, &H). Only
 * ASCII is ever skipped, so the text left is whole UTF-8.
 */
static void doctext_sml_hf(struct doctext_run *r, const char *s, size_t len)
{
	size_t i = 0, from = 0, k;

	while (i < len) {
		if (s[i] != '&') {
			i++;
			continue;
		}
		doctext_emit(r, s + from, i - from);
		if (++i >= len) {
			from = i;
			break;
		}
		if (s[i] == '&') {
			doctext_emit(r, "&", 1);
			i++;
		} else if (s[i] == 'L' || s[i] == 'C' || s[i] == 'R') {
			doctext_emit(r, "\n", 1);
			i++;
		} else if (s[i] == '"') {
			for (i++; i < len && s[i] != '"'; i++)
				;
			if (i < len)
				i++;
		} else if (s[i] == 'K') {
			for (i++, k = 0; k < 6 && i < len && (unsigned char)s[i] < 0x80; k++)
				i++;
		} else if (s[i] >= '0' && s[i] <= '9') {
			while (i < len && s[i] >= '0' && s[i] <= '9')
				i++;
		} else if ((unsigned char)s[i] < 0x80) {
			i++;
		}
		from = i;
	}
	doctext_emit(r, s + from, len - from);
	doctext_emit(r, "\n", 1);
}

/* Header and footer text arrives in pieces; kept whole up to DOCTEXT_HF_MAX. */
static void doctext_hf_add(struct doctext_xml *x, const char *v, size_t len)
{
	size_t room = sizeof x->hf - x->hf_len;

	if (x->hf_full)
		return;
	if (len > room) {
		len = room;
		while (len > 0 && ((unsigned char)v[len] & 0xC0) == 0x80)
			len--;
		x->hf_full = true;
	}
	memcpy(x->hf + x->hf_len, v, len);
	x->hf_len += len;
}

/*
 * SpreadsheetML (ECMA-376 part 1 §18): text in t, within a shared string
 * (si, §18.4.8), an inline string (is, §18.3.1.53) or a comment
 * (§18.7.3), each a line; rPh is a phonetic reading guide, not shown.
 * Page headers and footers (§18.3.1.46) as doctext_sml_hf reads them.
 * A formula's cached value (v) is not read: it is a result, not text
 * anyone typed.
 */
static void doctext_sml_element(struct doctext_run *r, struct doctext_xml *x,
    const char *n, bool start, bool empty)
{
	static const char *const heads[] = { "oddHeader", "evenHeader", "firstHeader", NULL };
	static const char *const feet[] = { "oddFooter", "evenFooter", "firstFooter", NULL };
	static const char *const lines[] = { "si", "is", "comment", NULL };
	unsigned piece = doctext_name_in(n, heads) ? DOCTEXT_HEAD :
	    doctext_name_in(n, feet) ? DOCTEXT_FOOT : 0;

	if (piece != 0) {
		if (start && !empty && (x->what & piece)) {
			x->in_hf = true;
			x->hf_full = false;
			x->hf_len = 0;
		} else if (!start && x->in_hf) {
			x->in_hf = false;
			doctext_sml_hf(r, x->hf, x->hf_len);
		}
	} else if (strcmp(n, "rPh") == 0) {
		if (start && !empty)
			x->phonetic++;
		else if (!start && x->phonetic > 0)
			x->phonetic--;
	} else if (strcmp(n, "t") == 0 && !empty) {
		x->in_text = start && (x->what & DOCTEXT_BODY) && x->phonetic == 0;
	} else if (!start && (x->what & DOCTEXT_BODY) && doctext_name_in(n, lines)) {
		doctext_emit(r, "\n", 1);
	}
}

/* One element start or end in the markup's text namespace. */
static void doctext_xml_element(struct doctext_run *r, struct doctext_xml *x,
    xmlTextReaderPtr rd, bool start)
{
	const char *n = (const char *)xmlTextReaderConstLocalName(rd);
	bool empty = start && xmlTextReaderIsEmptyElement(rd) == 1;

	if (n == NULL || !doctext_ns_is(xmlTextReaderConstNamespaceUri(rd), x->markup, false))
		return;
	switch (x->markup) {
	case DOCTEXT_WML:
	case DOCTEXT_PML:
		doctext_wml_element(r, x, n, start, empty);
		break;
	case DOCTEXT_ODF:
		doctext_odf_element(r, x, n, start, empty);
		break;
	case DOCTEXT_SML:
		doctext_sml_element(r, x, n, start, empty);
		break;
	}
}

/*
 * Streams the current archive entry through libxml2's reader. No
 * network, no DTD loading, no entity substitution (no XML_PARSE_NOENT:
 * an entity reference stays a reference, so no XXE and no "billion
 * laughs"); a part with a DOCTYPE at all is refused, since neither
 * OOXML nor ODF has one. Errors are not printed (NOERROR/NOWARNING):
 * a damaged part is a result.
 */
static void doctext_xml_part(struct doctext_run *r, enum doctext_markup markup,
    unsigned what, const char *const *roots, const char *name)
{
	struct doctext_xml *x = xcalloc(1, sizeof *x);
	xmlTextReaderPtr rd;
	int ret, type;

	x->markup = markup;
	x->what = what;
	x->roots = roots;
	rd = xmlReaderForIO(doctext_xml_read, doctext_xml_close, r, name, NULL,
	    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
	if (rd == NULL) {
		doctext_set_status(r, DOCTEXT_E_FORMAT);
		free(x);
		return;
	}
	while ((ret = xmlTextReaderRead(rd)) == 1) {
		if (++r->ticks >= DOCTEXT_CLOCK_EVERY) {
			r->ticks = 0;
			if (!doctext_in_time(r))
				break;
		}
		if (r->status != DOCTEXT_OK)
			break;
		type = xmlTextReaderNodeType(rd);
		if (type == XML_READER_TYPE_DOCUMENT_TYPE) {
			doctext_set_status(r, DOCTEXT_E_FORMAT);
			break;
		} else if (type == XML_READER_TYPE_ELEMENT && !x->rooted) {
			/* Not a part this pass reads: leave it, damaged or not. */
			if (!doctext_root_wanted(x, rd))
				break;
			x->rooted = true;
			r->rooted++;
			doctext_xml_element(r, x, rd, true);
		} else if (type == XML_READER_TYPE_ELEMENT) {
			doctext_xml_element(r, x, rd, true);
		} else if (type == XML_READER_TYPE_END_ELEMENT) {
			doctext_xml_element(r, x, rd, false);
		} else if ((x->in_text > 0 || x->in_hf) && (type == XML_READER_TYPE_TEXT ||
		    type == XML_READER_TYPE_SIGNIFICANT_WHITESPACE ||
		    type == XML_READER_TYPE_CDATA)) {
			const char *v = (const char *)xmlTextReaderConstValue(rd);

			if (v == NULL)
				continue;
			if (x->in_hf)
				doctext_hf_add(x, v, strlen(v));
			else
				doctext_emit(r, v, strlen(v));
		}
	}
	if (ret < 0 && (x->rooted || r->status != DOCTEXT_OK))
		doctext_set_status(r, DOCTEXT_E_FORMAT);
	xmlFreeTextReader(rd);
	free(x);
}

/* ------------------------------------------------------------ zip */

/*
 * The parts read, in passes: a reader meets the page header (where the
 * stamp is usually typed) before the body. An OOXML part is known by its
 * root element, not by its name (the package's relationships name the
 * parts, and nothing obliges a writer to call the body
 * word/document.xml): every XML part is opened, and read on only when
 * its root is one the pass wants. DOCX: ECMA-376 part 1 §17.2.3
 * w:document, §17.10.1 w:hdr and w:ftr, §17.11 w:footnotes and
 * w:endnotes. XLSX: the worksheets' page headers (§18.3.1.99 worksheet),
 * the shared strings (§18.4.9 sst, in the order the cells first use
 * them), then the worksheets' inline strings, their footers and the
 * comments (§18.7.6). PPTX: the slides (§19.3.1.38 sld), in the order the
 * package stores them (the order PowerPoint and LibreOffice write), then
 * the speaker notes (§19.3.1.26); slide masters and layouts are not read,
 * their text being prompts such as "Click to edit". ODF fixes the names
 * (ODF 1.2 part 3 §3.1): styles.xml holds the master pages' headers and
 * footers, content.xml the body, whatever the kind of document.
 */
struct doctext_pass {
	const char *name;        /* the entry; NULL: every entry named *.xml */
	const char *roots[4];    /* root elements read; { NULL }: any */
	bool body;               /* no part read in this pass: not a document */
	unsigned what;           /* SML: the worksheet pieces read */
};
static const struct doctext_pass doctext_docx_passes[] = {
	{ NULL, { "hdr", NULL }, false, 0 },
	{ NULL, { "document", NULL }, true, 0 },
	{ NULL, { "footnotes", "endnotes", "ftr", NULL }, false, 0 },
};
static const struct doctext_pass doctext_xlsx_passes[] = {
	{ NULL, { "worksheet", NULL }, true, DOCTEXT_HEAD },
	{ NULL, { "sst", NULL }, false, DOCTEXT_BODY },
	{ NULL, { "worksheet", "comments", NULL }, false, DOCTEXT_BODY | DOCTEXT_FOOT },
};
static const struct doctext_pass doctext_pptx_passes[] = {
	{ NULL, { "sld", NULL }, true, 0 },
	{ NULL, { "notes", NULL }, false, 0 },
};
static const struct doctext_pass doctext_odf_passes[] = {
	{ "styles.xml", { NULL }, false, 0 },
	{ "content.xml", { NULL }, true, 0 },
};

static const struct doctext_format {
	enum doctext_kind kind;
	enum doctext_markup markup;
	const struct doctext_pass *passes;
	size_t npasses;
} doctext_formats[] = {
#define DOCTEXT_FORMAT(kind, markup, passes) \
	{ kind, markup, passes, sizeof passes / sizeof passes[0] }
	DOCTEXT_FORMAT(DOCTEXT_DOCX, DOCTEXT_WML, doctext_docx_passes),
	DOCTEXT_FORMAT(DOCTEXT_XLSX, DOCTEXT_SML, doctext_xlsx_passes),
	DOCTEXT_FORMAT(DOCTEXT_PPTX, DOCTEXT_PML, doctext_pptx_passes),
	DOCTEXT_FORMAT(DOCTEXT_ODT, DOCTEXT_ODF, doctext_odf_passes),
	DOCTEXT_FORMAT(DOCTEXT_ODS, DOCTEXT_ODF, doctext_odf_passes),
	DOCTEXT_FORMAT(DOCTEXT_ODP, DOCTEXT_ODF, doctext_odf_passes),
#undef DOCTEXT_FORMAT
};

static bool doctext_in_pass(const struct doctext_pass *pass, const char *name)
{
	size_t n = strlen(name);

	if (pass->name != NULL)
		return strcmp(pass->name, name) == 0;
	return n > 4 && strcasecmp(name + n - 4, ".xml") == 0;
}

/* One pass over the archive: the entries the pass names, in zip order. */
static void doctext_zip_pass(struct doctext_run *r, const char *data, size_t len,
    const struct doctext_pass *pass, enum doctext_markup markup)
{
	struct archive_entry *e;
	int ret;

	r->ar = doctext_zip_open(data, len);
	if (r->ar == NULL) {
		doctext_set_status(r, DOCTEXT_E_FORMAT);
		return;
	}
	while (doctext_in_time(r) && (ret = archive_read_next_header(r->ar, &e)) != ARCHIVE_EOF) {
		const char *name = archive_entry_pathname(e);

		if (ret != ARCHIVE_OK && ret != ARCHIVE_WARN) {
			doctext_set_status(r, DOCTEXT_E_FORMAT);
			break;
		}
		if (name == NULL || !doctext_in_pass(pass, name))
			continue;
		if (archive_entry_is_encrypted(e)) {
			doctext_set_status(r, DOCTEXT_E_ENCRYPTED);
			break;
		}
		doctext_xml_part(r, markup, pass->what,
		    pass->roots[0] != NULL ? pass->roots : NULL, name);
	}
	archive_read_free(r->ar);
	r->ar = NULL;
}

static void doctext_zip(struct doctext_run *r, const char *data, size_t len,
    const struct doctext_format *f)
{
	size_t i;

	for (i = 0; i < f->npasses && r->status == DOCTEXT_OK &&
	    (r->enough == NULL || !*r->enough); i++) {
		const struct doctext_pass *p = &f->passes[i];
		unsigned before = r->rooted;

		doctext_zip_pass(r, data, len, p, f->markup);
		/* No body, or one too damaged to reach its root element. */
		if (p->body && r->rooted == before && (r->enough == NULL || !*r->enough))
			doctext_set_status(r, DOCTEXT_E_FORMAT);
	}
}

/* ------------------------------------------------------------ PDF */

/*
 * poppler reads the document from our memory without a copy
 * (g_bytes_new_static: data outlives the call). A user password
 * (ISO 32000-1 §7.6.3) makes the text unreadable: ENCRYPTED. The clock
 * is read between pages; one page's text extraction is not interrupted.
 */
static void doctext_pdf(struct doctext_run *r, const char *data, size_t len)
{
	GBytes *bytes = g_bytes_new_static(data, len);
	GError *err = NULL;
	PopplerDocument *doc = poppler_document_new_from_bytes(bytes, NULL, &err);
	int i, npages;

	g_bytes_unref(bytes);
	if (doc == NULL) {
		doctext_set_status(r, err != NULL && err->domain == POPPLER_ERROR &&
		    err->code == POPPLER_ERROR_ENCRYPTED ? DOCTEXT_E_ENCRYPTED : DOCTEXT_E_FORMAT);
		if (err != NULL)
			g_error_free(err);
		return;
	}
	npages = poppler_document_get_n_pages(doc);
	for (i = 0; i < npages && doctext_in_time(r); i++) {
		PopplerPage *page = poppler_document_get_page(doc, i);
		char *text;

		if (page == NULL)
			continue;
		text = poppler_page_get_text(page);
		if (text != NULL) {
			doctext_emit(r, text, strlen(text));
			doctext_emit(r, "\n", 1);
			g_free(text);
		}
		g_object_unref(page);
	}
	g_object_unref(doc);
}

int doctext_extract(enum doctext_kind kind, const char *data, size_t len,
    const struct doctext_limits *limits,
    void (*out)(void *arg, const char *utf8, size_t len), void *arg)
{
	struct doctext_run r;
	unsigned ms;

	memset(&r, 0, sizeof r);
	r.max_text = limits != NULL && limits->max_text ? limits->max_text : DOCTEXT_DEF_TEXT;
	r.max_inflated = limits != NULL && limits->max_inflated ? limits->max_inflated :
	    DOCTEXT_DEF_INFLATED;
	ms = limits != NULL && limits->timeout_ms ? limits->timeout_ms : DOCTEXT_DEF_TIMEOUT_MS;
	clock_gettime(CLOCK_MONOTONIC, &r.deadline);
	r.deadline.tv_sec += ms / 1000;
	r.deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (r.deadline.tv_nsec >= 1000000000L) {
		r.deadline.tv_sec++;
		r.deadline.tv_nsec -= 1000000000L;
	}
	r.out = out;
	r.arg = arg;
	r.enough = limits != NULL ? limits->enough : NULL;
	if (data == NULL || out == NULL)
		return DOCTEXT_E_FORMAT;
	pthread_once(&doctext_once_ctl, doctext_once);
	if (kind == DOCTEXT_PDF) {
		doctext_pdf(&r, data, len);
		return r.status;
	}
	for (size_t i = 0; i < sizeof doctext_formats / sizeof doctext_formats[0]; i++)
		if (doctext_formats[i].kind == kind) {
			doctext_zip(&r, data, len, &doctext_formats[i]);
			return r.status;
		}
	return DOCTEXT_E_FORMAT;
}
