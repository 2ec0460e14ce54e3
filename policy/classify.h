#ifndef GOVRELAY_POLICY_CLASSIFY_H
#define GOVRELAY_POLICY_CLASSIFY_H
/*
 * classify: finding a Vietnamese state-secret marking (Law on Protection
 * of State Secrets: Mật, Tối mật, Tuyệt mật) in what a message shows its
 * reader. Pure functions over UTF-8 text: the content check decodes the
 * message (policy/mime.h) and hands each piece here. Matching is on the
 * NFC, case-folded text (utf8proc), with and without diacritics, so
 * "MẬT", "Mật", "mat" typed without accents and decomposed forms match
 * alike; a marking is a level standing as a marking (a Subject prefix, a
 * stamp line, a label), never the word inside prose: "mật khẩu", "bí mật
 * kinh doanh", "mật ong", "mật độ", "thân mật" are not markings.
 *
 * OWNERSHIP: arguments are borrowed.
 * THREADS: any thread; no global state but utf8proc's constant tables.
 */
#include <stdbool.h>
#include <stddef.h>

/* Ordered: a higher level is more secret. */
enum classify_level { CLASSIFY_NONE, CLASSIFY_MAT, CLASSIFY_TOI_MAT, CLASSIFY_TUYET_MAT };
/* The tenant policy word: "mat", "toi-mat", "tuyet-mat" ("none"). */
const char *classify_level_name(enum classify_level level);
/* As written in Vietnamese: "Mật", "Tối mật", "Tuyệt mật" (""). */
const char *classify_level_label(enum classify_level level);
/* A tenant policy word to a level; false when it is not one. */
bool classify_level_parse(const char *word, enum classify_level *out);

/* Where a marking was found (the audit record's where=). */
enum classify_where { CLASSIFY_IN_SIO_LABEL, CLASSIFY_IN_SUBJECT, CLASSIFY_IN_TEXT,
	CLASSIFY_IN_FILENAME, CLASSIFY_IN_DOCUMENT };
const char *classify_where_name(enum classify_where where);

/* A decoded (RFC 2047 undone) Subject: a marking at its start ("[MẬT]", "MẬT:", "TỐI MẬT -"). */
enum classify_level classify_subject(const char *utf8, size_t len);
/* An RFC 7444 SIO-Label field value (raw): its marking= and label= name a level. */
enum classify_level classify_sio_label(const char *value, size_t len);
/* An attachment's file name (UTF-8): a level as a marking word in the name. */
enum classify_level classify_filename(const char *utf8, size_t len);
/* One line of text (no line end): a level standing alone, as a stamp is typed. */
enum classify_level classify_stamp_line(const char *utf8, size_t len);

/*
 * A stamp in the first lines of a text (a text part, a document's text),
 * fed in UTF-8 pieces of any size: only the first CLASSIFY_STAMP_LINES
 * non-empty lines are looked at (where a document stamp is typed), and
 * a line is cut at CLASSIFY_LINE_MAX bytes, so memory is fixed.
 */
#define CLASSIFY_STAMP_LINES 20
#define CLASSIFY_LINE_MAX 512
struct classify_text;
struct classify_text *classify_text_new(void);
void classify_text_free(struct classify_text *ct);
void classify_text_feed(struct classify_text *ct, const char *utf8, size_t len);
/* The highest level found so far (the last unterminated line counts too). */
enum classify_level classify_text_level(struct classify_text *ct);
/* True once no later input can change the result (the stamp lines are past). */
bool classify_text_is_done(const struct classify_text *ct);
#endif
