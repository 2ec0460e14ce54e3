#ifndef GOVRELAY_POLICY_DOCTEXT_H
#define GOVRELAY_POLICY_DOCTEXT_H
/*
 * doctext: the text of an attached document, for the checks that read
 * what a reader sees (classification stamps, DLP). Office Open XML
 * (DOCX, XLSX, PPTX) and OpenDocument (ODT, ODS, ODP) are zip archives of
 * XML (libarchive reads the archive from memory, libxml2's
 * reader streams the XML: nothing is written to disk); PDF through
 * poppler-glib from memory. Bounded: the document's size, the text
 * produced, the bytes inflated (zip bombs) and the wall time each have a
 * limit, and crossing one is a result the caller decides about, never a
 * crash or a hang.
 *
 * OWNERSHIP: data is borrowed; out's text is borrowed for the call.
 * THREADS: the thread pool (CPU-heavy); no shared state between calls.
 */
#include <stdbool.h>
#include <stddef.h>

enum doctext_kind {
	DOCTEXT_NONE, DOCTEXT_DOCX, DOCTEXT_ODT, DOCTEXT_PDF,
	DOCTEXT_XLSX, DOCTEXT_PPTX, DOCTEXT_ODS, DOCTEXT_ODP,
};
const char *doctext_kind_name(enum doctext_kind kind);
/* What data is, by its content (not its name): NONE for anything else. */
enum doctext_kind doctext_kind_of(const char *data, size_t len);

struct doctext_limits {
	size_t max_text;          /* UTF-8 bytes of text produced; 0: 1 MiB */
	size_t max_inflated;      /* bytes decompressed from the archive; 0: 64 MiB */
	unsigned timeout_ms;      /* wall time; 0: 5000 */
	/*
	 * NULL, or a flag the caller's out sets once it has read all it
	 * needs (a stamp is looked for in the first lines): reading stops at
	 * the next page, entry or few XML nodes, and the result is DOCTEXT_OK.
	 */
	const bool *enough;
};

enum doctext_status {
	DOCTEXT_OK = 0,
	DOCTEXT_E_FORMAT = -1,    /* not a readable document of that kind */
	DOCTEXT_E_LIMIT = -2,     /* a limit was crossed (the text so far was delivered) */
	DOCTEXT_E_ENCRYPTED = -3, /* password-protected: its text cannot be read */
};

/*
 * Delivers the document's text, in reading order, through out in UTF-8
 * pieces (paragraph breaks as "\n"). Returns a doctext_status.
 */
int doctext_extract(enum doctext_kind kind, const char *data, size_t len,
    const struct doctext_limits *limits,
    void (*out)(void *arg, const char *utf8, size_t len), void *arg);
#endif
