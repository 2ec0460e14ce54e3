#ifndef GOVRELAY_POLICY_MIME_H
#define GOVRELAY_POLICY_MIME_H
/*
 * mime: the streaming MIME walker (RFC 2045-2049) the content checks read
 * a message through. It is fed the message exactly as policy_tx_body sees
 * it (after dot-unstuffing, header section first, pieces of any size) and
 * calls back, in order, for each part: its header fields, its begin (type,
 * charset, file name decoded to UTF-8), its content with the transfer
 * encoding undone (base64, quoted-printable; still in the part's own
 * charset) and its end. Memory is bounded whatever the message: nesting
 * depth, part count and each part's header size are limited, and crossing
 * a limit is an error the caller turns into a refusal.
 *
 * Malformed MIME never crashes and never hides content: a missing closing
 * boundary ends the part at the end of the message (as mail clients read
 * it); bad base64 characters are skipped as decoders do; what cannot be
 * read one unambiguous way (two boundary= parameters, two Content-Type or
 * Content-Transfer-Encoding fields that disagree) is MIME_E_AMBIGUOUS.
 * message/rfc822 parts are walked into (their header fields reported with
 * the nested part's index), also when they come in base64 or
 * quoted-printable, which RFC 2046 5.2.1 forbids but clients send and read
 * (the decoded message is walked; the part itself gets no data calls). A part whose declared type is multipart but
 * has no usable boundary is read as text/plain (RFC 2046 5.1.1 makes the
 * boundary mandatory; clients show such a body as text).
 *
 * OWNERSHIP: everything handed to a callback is borrowed for the call.
 * THREADS: a walker is used by one thread at a time; no global state.
 * ERRORS: mime_feed and mime_finish return 0 or a negative MIME_E_* code;
 *   after an error the walker ignores further input and keeps the error.
 */
#include <stdbool.h>
#include <stddef.h>

enum mime_error {
	MIME_OK = 0,
	MIME_E_DEPTH = -1,      /* nested deeper than max_depth */
	MIME_E_PARTS = -2,      /* more than max_parts parts */
	MIME_E_HEADER = -3,     /* one part's header section over max_header_bytes */
	MIME_E_AMBIGUOUS = -4,  /* a structure two readers would read differently */
};
/* The error in words a sender understands ("the message nests parts too deeply"). */
const char *mime_error_text(int err);

struct mime_limits {
	unsigned max_depth;        /* multipart / message nesting; 0: 32 */
	unsigned max_parts;        /* parts in the whole message; 0: 1000 */
	size_t max_header_bytes;   /* one part's header section; 0: 256 KiB */
};

enum mime_encoding { MIME_ENC_7BIT, MIME_ENC_8BIT, MIME_ENC_BINARY, MIME_ENC_BASE64,
	MIME_ENC_QP, MIME_ENC_UNKNOWN /* passed through as is */ };

struct mime_part {
	unsigned index;            /* 0: the message itself, then in order of appearance */
	unsigned depth;            /* 0: the message itself */
	unsigned parent;           /* index of the enclosing part (0 for the message) */
	const char *type;          /* lowercased "type/subtype"; "text/plain" when absent */
	const char *charset;       /* lowercased charset parameter, or "" */
	const char *filename;      /* UTF-8 (RFC 2231/2047 decoded), from Content-Disposition
	                              filename= or Content-Type name=; NULL when none */
	const char *disposition;   /* lowercased "attachment", "inline" or "" */
	enum mime_encoding encoding;
	bool multipart;            /* a container: no content callbacks of its own */
	bool message;              /* message/rfc822 (or global): its body is a nested message */
};

struct mime_callbacks {
	/*
	 * One header field of part (the message's own, or a part's, or a
	 * nested message's): name as written, value unfolded (CRLF WSP
	 * joined, leading WSP dropped), not decoded. May be NULL.
	 * part->type etc. are not known yet at this point (only index,
	 * depth, parent).
	 */
	void (*header)(void *arg, const struct mime_part *part, const char *name,
	    const char *value, size_t value_len);
	/* The part's header section is complete. */
	void (*begin)(void *arg, const struct mime_part *part);
	/*
	 * Content of a leaf part, transfer encoding undone, in pieces of any
	 * size (the part's own charset: see mime_text_* below).
	 */
	void (*data)(void *arg, const struct mime_part *part, const char *data, size_t len);
	/* The part ended (each begin has exactly one end, also at mime_finish). */
	void (*end)(void *arg, const struct mime_part *part);
	/*
	 * Text of a multipart outside its parts: the preamble before its
	 * first delimiter and the epilogue after its close delimiter, as
	 * written (no transfer encoding applies), line ends included, in
	 * pieces of any size. No reader is meant to show it (RFC 2046
	 * 5.1.1), but it travels with the message: what reads all that
	 * leaves (DLP) reads it too. May be NULL (as may every member).
	 */
	void (*outside)(void *arg, const struct mime_part *part, const char *data, size_t len);
};

struct mime_walker;

/* limits may be NULL (the defaults); cb is copied. */
struct mime_walker *mime_new(const struct mime_limits *limits, const struct mime_callbacks *cb,
    void *arg);
void mime_free(struct mime_walker *w);
int mime_feed(struct mime_walker *w, const char *data, size_t len);
/* The message ended: open parts end (innermost first). */
int mime_finish(struct mime_walker *w);
/* Parts seen so far. */
unsigned mime_part_count(const struct mime_walker *w);

/*
 * RFC 2047 encoded words in a header value (and RFC 2231 continuations
 * and charset'lang'value in a parameter, through mime_param) to UTF-8:
 * writes at most outlen - 1 bytes and a NUL; returns the length written.
 * An unknown charset or bad encoding leaves the word as it was written.
 */
size_t mime_decode_words(const char *value, size_t len, char *out, size_t outlen);
/*
 * The text a reader shows of an address-list field (From, To, Cc, ...)
 * besides the addresses: each display name, group name and comment,
 * quoted strings unquoted, RFC 2047 decoded, goes to fn as one piece of
 * UTF-8 (at most MIME_ADDRESS_TEXT_MAX bytes of the value each; more is
 * cut). Addresses are left out: in angle brackets, and, in a piece
 * without them, each word holding an '@' outside quotes.
 */
#define MIME_ADDRESS_TEXT_MAX 2048
void mime_address_text(const char *value, size_t len,
    void (*fn)(void *arg, const char *utf8, size_t len), void *arg);
/*
 * The parameter name (case-insensitive) of a structured field value
 * (Content-Type, Content-Disposition), RFC 2231 decoded to UTF-8 (and
 * RFC 2047, which some clients wrongly use in quoted names). 1 found and
 * written, 0 absent, MIME_E_AMBIGUOUS when the parameter is given twice.
 */
int mime_param(const char *value, size_t len, const char *name, char *out, size_t outlen);

/*
 * A streaming charset converter to UTF-8 (iconv), for text parts: charset
 * as in mime_part.charset ("" and unknown charsets are read as UTF-8 when
 * valid, else Windows-1258, the Vietnamese legacy charset). Bytes that
 * do not convert become U+FFFD; nothing is dropped silently.
 */
struct mime_text;
struct mime_text *mime_text_new(const char *charset);
void mime_text_free(struct mime_text *t);
/* Converts in; out(arg, utf8, len) receives the UTF-8, in pieces. */
void mime_text_feed(struct mime_text *t, const char *in, size_t len,
    void (*out)(void *arg, const char *utf8, size_t len), void *arg);
void mime_text_finish(struct mime_text *t,
    void (*out)(void *arg, const char *utf8, size_t len), void *arg);

#endif
