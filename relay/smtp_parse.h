#ifndef GOVRELAY_SMTP_PARSE_H
#define GOVRELAY_SMTP_PARSE_H
/*
 * smtp_parse: pure parsing of SMTP commands, paths and ESMTP parameters
 * (RFC 5321, 1869, 6152, 3030, 3461, 6531). No I/O, no allocation, no
 * state: every result is written into caller storage, every length is
 * bounded by the RFC limits below. Errors come back as the reply the
 * session should send, so the session never invents codes for syntax.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "queue/queue.h"

/* RFC 5321 section 4.5.3.1 limits. */
#define SMTP_LOCAL_MAX 64
#define SMTP_DOMAIN_MAX 255
#define SMTP_PATH_MAX 256
#define SMTP_CMDLINE_MAX 512   /* including CRLF */
#define SMTP_TEXTLINE_MAX 1000 /* including CRLF */
#define SMTP_ENVID_MAX 100     /* RFC 3461 section 4.4 */
#define SMTP_ORCPT_MAX 500     /* RFC 3461 section 4.2 */

enum smtp_cmd {
	SMTP_CMD_UNKNOWN,
	SMTP_CMD_HELO,
	SMTP_CMD_EHLO,
	SMTP_CMD_MAIL,
	SMTP_CMD_RCPT,
	SMTP_CMD_DATA,
	SMTP_CMD_BDAT,
	SMTP_CMD_RSET,
	SMTP_CMD_NOOP,
	SMTP_CMD_QUIT,
	SMTP_CMD_HELP,
	SMTP_CMD_VRFY,
	SMTP_CMD_EXPN,
	SMTP_CMD_STARTTLS,
	SMTP_CMD_AUTH,
};
const char *smtp_cmd_name(enum smtp_cmd cmd);

/* A reply to send when parsing fails: "501 5.5.4 text". */
struct smtp_parse_error {
	int code;
	const char *enh;
	char text[160];
};

/*
 * Splits a command line (CRLF already removed; len bytes, may contain NUL
 * which is an error) into verb and argument. For "MAIL FROM:" and
 * "RCPT TO:" the keyword is consumed and *arg points just after the colon
 * (spaces before '<' are tolerated, as many clients send them). Verbs are
 * case-insensitive. Returns 0, or -1 with err filled (500 5.5.2 for an
 * unknown verb or NUL byte, 501 5.5.4 for a malformed keyword).
 */
int smtp_parse_command(const char *line, size_t len, enum smtp_cmd *cmd,
    const char **arg, struct smtp_parse_error *err);

struct smtp_path {
	char addr[SMTP_PATH_MAX + 1];      /* "local@domain"; "" for <> */
	char local[SMTP_LOCAL_MAX + 3];     /* as written, quotes kept */
	char domain[SMTP_DOMAIN_MAX + 1];  /* lowercased ASCII; UTF-8 kept as is */
	bool is_null;                      /* <> */
	bool had_source_route;             /* "@a,@b:" was present and dropped */
	bool is_quoted;                    /* quoted-string local part */
	bool has_routing_chars;            /* '%' or '!' in local, or '@' inside quotes */
	bool is_address_literal;           /* domain is [IPv4] or [IPv6:...] */
	bool is_utf8;                      /* non-ASCII bytes present (needs SMTPUTF8) */
};

/*
 * Parses "<path>" at s (leading spaces skipped). A source route is removed
 * (RFC 5321 section 4.1.1.3 says to ignore it). allow_null permits "<>";
 * allow_postmaster permits "<Postmaster>" without a domain (RCPT only).
 * Non-ASCII is accepted only when smtputf8 is true and must be valid UTF-8.
 * *rest points after '>'. Returns 0, or -1 with err (501 5.1.7 for a bad
 * sender, 501 5.1.3 for a bad recipient: is_rcpt selects).
 */
int smtp_parse_path(const char *s, bool is_rcpt, bool allow_null, bool smtputf8,
    struct smtp_path *out, const char **rest, struct smtp_parse_error *err);

struct smtp_mail_params {
	bool has_size;
	uint64_t size;
	enum queue_body_type body;
	bool smtputf8;
	enum queue_ret ret;
	bool has_envid;
	char envid[SMTP_ENVID_MAX + 1]; /* xtext-decoded */
};

struct smtp_rcpt_params {
	unsigned notify;                 /* QUEUE_NOTIFY_* bits, 0 if absent */
	bool has_orcpt;
	char orcpt[SMTP_ORCPT_MAX + 1];  /* "rfc822;addr", xtext-decoded */
};

/*
 * Parse the parameters after the path (s as left by smtp_parse_path).
 * Keywords are case-insensitive; a repeated keyword, an unknown keyword
 * (555 5.5.4), or a malformed value (501 5.5.4) is an error. Values are
 * checked against RFC limits (ENVID and ORCPT lengths, NOTIFY=NEVER alone).
 */
int smtp_parse_mail_params(const char *s, struct smtp_mail_params *out,
    struct smtp_parse_error *err);
int smtp_parse_rcpt_params(const char *s, struct smtp_rcpt_params *out,
    struct smtp_parse_error *err);

/* "BDAT <chunk-size> [LAST]" argument: 0 or -1 with err (501 5.5.4). */
int smtp_parse_bdat(const char *arg, uint64_t *size, bool *last,
    struct smtp_parse_error *err);

/*
 * HELO/EHLO argument: a domain or an address literal (RFC 5321 4.1.1.1).
 * Copies the name (bounded) into out. Returns 0 or -1 with err (501 5.5.4).
 */
int smtp_parse_helo(const char *arg, char *out, size_t outlen,
    struct smtp_parse_error *err);

/* RFC 3461 section 4 xtext: decode into out (NUL-terminated); -1 if bad. */
int smtp_parse_xtext_decode(const char *in, size_t inlen, char *out, size_t outlen);
/* Encode for use in an outbound ENVID/ORCPT parameter; -1 if out too small. */
int smtp_parse_xtext_encode(const char *in, char *out, size_t outlen);

#endif
