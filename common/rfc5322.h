#ifndef GOVRELAY_RFC5322_H
#define GOVRELAY_RFC5322_H
/*
 * rfc5322: just enough of RFC 5322 to check who a message claims to be
 * from: an incremental scanner of the header section that keeps the From:
 * fields (unfolded), counts the originator and destination fields that
 * RFC 5322 section 3.6 allows at most once, and a parser of an
 * address-list field body.
 */
#include <stdbool.h>
#include <stddef.h>

/* The header section we keep for checks; a longer one is reported. */
#define RFC5322_HEADER_MAX (256 * 1024)
#define RFC5322_FROM_MAX 8192   /* one From: field, unfolded */

/*
 * The fields RFC 5322 section 3.6 allows at most once (From: exactly
 * once) that the header rules count: a second one of these is how a
 * message shows a reader one thing while a check looks at another.
 */
enum rfc5322_field {
	RFC5322_F_FROM,
	RFC5322_F_SENDER,
	RFC5322_F_SUBJECT,
	RFC5322_F_DATE,
	RFC5322_F_MESSAGE_ID,
	RFC5322_F_TO,
	RFC5322_F_CC,
	RFC5322_F_COUNT
};
/* The field's name as written in messages ("Message-ID"). */
const char *rfc5322_field_name(enum rfc5322_field f);

struct rfc5322_scan {
	bool done;            /* the empty line ending the header section was seen */
	bool too_large;       /* header section longer than RFC5322_HEADER_MAX */
	bool malformed;       /* a line that is neither a field nor a continuation */
	unsigned from_count;  /* From: fields seen (== counts[RFC5322_F_FROM]) */
	unsigned counts[RFC5322_F_COUNT]; /* fields of each kind seen */
	char from[RFC5322_FROM_MAX + 1]; /* body of the first From:, unfolded */
	size_t from_len;
	bool from_truncated;
	/* private */
	size_t seen;
	bool in_from;
};

void rfc5322_scan_init(struct rfc5322_scan *sc);
/*
 * Feeds one line of the message (already dot-unstuffed, without its CRLF
 * or LF). Lines after the end of the header section are ignored, so a
 * caller may feed every line. Field names compare case-insensitively, and
 * "From :" (WSP before the colon, RFC 5322 4.5) counts as a From: field
 * too; the same holds for the fields of enum rfc5322_field, which are
 * counted in counts[]. Each line counts len + 2 octets towards RFC5322_HEADER_MAX; once
 * too_large is set, fields are still counted until the header ends.
 */
void rfc5322_scan_line(struct rfc5322_scan *sc, const char *line, size_t len);

/*
 * Parses an address-list (RFC 5322 section 3.4: mailboxes with display
 * names, angle addresses, comments, quoted strings, groups, folding
 * already removed). Each mailbox's addr-spec goes to out[i] as a fresh
 * string (free each, then the array) in canonical form (common/addr.h).
 * An empty group ("undisclosed-recipients:;") adds nothing, so 0 with
 * *n == 0 (and *out NULL) is possible. Refused: routes in angle brackets,
 * address literals, empty list elements, nested groups, CFWS inside a
 * dot-atom, CR/LF and other control characters, bad UTF-8.
 * 0, or -EINVAL with *why a static English reason (*out NULL, *n 0).
 */
int rfc5322_parse_address_list(const char *value, size_t len, char ***out,
    size_t *n, const char **why);
void rfc5322_free_list(char **list, size_t n);

#endif
