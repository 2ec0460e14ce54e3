#ifndef GOVRELAY_POLICY_CONTENT_ATTACH_H
#define GOVRELAY_POLICY_CONTENT_ATTACH_H
/*
 * content_attach: the attachment rules of the content check (issue 11),
 * over what policy/attach.h tells of an attachment: its type by content
 * and by name, and for an archive every entry inside (nested archives
 * included), bounded against bombs. What is blocked is decided by the
 * agencies' policy (blocked_attachments, encrypted_archive_action); a
 * document found inside an archive is handed back so its text is read
 * like an attached one's (classification stamps, DLP).
 *
 * OWNERSHIP: arguments are borrowed; what doc() is handed is borrowed
 * for the call.
 * THREADS: the thread pool (libmagic, libarchive); no shared state.
 */
#include <stdbool.h>
#include <stddef.h>

/* tenant policy blocked_attachments, tightest first. */
enum content_block { CONTENT_BLOCK_EXEC_SCRIPTS, CONTENT_BLOCK_EXEC, CONTENT_BLOCK_NONE };
/* tenant policy encrypted_archive_action, tightest first. */
enum content_encrypted { CONTENT_ENC_REJECT, CONTENT_ENC_QUARANTINE, CONTENT_ENC_ACCEPT };

struct content_attach_rules {
	enum content_block block;
	enum content_encrypted encrypted;
	/*
	 * blocked_extensions of the agencies concerned, lowercased, each
	 * between commas (",iso,lnk,"); NULL or "" for none.
	 */
	const char *extensions;
};

enum content_attach_outcome { CONTENT_ATTACH_PASS, CONTENT_ATTACH_QUARANTINE,
	CONTENT_ATTACH_REJECT };

struct content_attach_result {
	enum content_attach_outcome outcome;
	/* For the reply and the audit note: what was found, in words. */
	char why[256];
	bool timed_out;   /* the listing ran out of time: says nothing of the file */
};

/* A document inside an archive: path is "archive.zip/dir/file.docx". */
typedef void content_attach_doc_fn(void *arg, const char *path, const char *data,
    size_t len);

/*
 * Checks one attachment: name (may be NULL), data its first bytes or
 * (whole) all of it; an archive is listed only when whole. The most
 * serious finding wins (reject over quarantine). res is always filled.
 */
void content_attach_check(const char *name, const char *data, size_t len, bool whole,
    const struct content_attach_rules *rules, content_attach_doc_fn *doc, void *arg,
    struct content_attach_result *res);

/*
 * Is the extension of file name on the list (as in content_attach_rules)?
 * It is the text after the last "." once trailing dots and spaces are
 * gone, since Windows drops them ("x.iso." opens as x.iso); ASCII case
 * is ignored. On a match the extension is copied to ext (extlen bytes).
 */
bool content_attach_ext_blocked(const char *extensions, const char *name, char *ext,
    size_t extlen);

/* Is what a part begins with an archive or a document, to be kept whole? */
bool content_attach_wants_whole(const char *head, size_t len);
#endif
