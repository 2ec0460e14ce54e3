/*
 * test_smtp_parse: table-driven tests of relay/smtp_parse.c.
 *
 * Every table row carries a label that names what it checks; failures
 * print the label. Covered: command verbs and their arguments, every
 * path form (dot-string, quoted, literals, null, Postmaster, source
 * routes, each classic open-relay form), RFC length limits exactly at and
 * one over the limit, UTF-8 with and without SMTPUTF8, MAIL and RCPT
 * parameters, xtext round trips, BDAT and HELO.
 *
 * OWNERSHIP: none. THREADS: Check forks one process per test.
 * ERRORS: assertion failures.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/smtp_parse.h"

/* n copies of c, NUL-terminated, into out (room for n + 1). */
static void test_fill(char *out, char c, size_t n)
{
	memset(out, c, n);
	out[n] = '\0';
}

/* ------------------------------------------------------------ commands */

static const struct cmd_case {
	const char *label;
	const char *line;
	size_t len;          /* 0: strlen(line) */
	int rc;
	enum smtp_cmd cmd;
	const char *arg;     /* expected *arg when rc == 0 */
	int code;            /* expected reply when rc != 0 */
	const char *enh;
	const char *text;    /* substring of the reply text, or NULL */
} cmd_cases[] = {
	{ "HELO", "HELO example.org", 0, 0, SMTP_CMD_HELO, "example.org", 0, NULL, NULL },
	{ "helo lowercase", "helo example.org", 0, 0, SMTP_CMD_HELO, "example.org", 0, NULL, NULL },
	{ "EhLo mixed case", "EhLo x.example", 0, 0, SMTP_CMD_EHLO, "x.example", 0, NULL, NULL },
	{ "EHLO extra spaces", "EHLO   x.example", 0, 0, SMTP_CMD_EHLO, "x.example", 0, NULL, NULL },
	{ "MAIL FROM", "MAIL FROM:<a@b.example>", 0, 0, SMTP_CMD_MAIL, "<a@b.example>", 0, NULL, NULL },
	{ "mail from lowercase", "mail from:<a@b.example>", 0, 0, SMTP_CMD_MAIL, "<a@b.example>", 0, NULL, NULL },
	{ "MAIL From mixed", "MAIL From:<>", 0, 0, SMTP_CMD_MAIL, "<>", 0, NULL, NULL },
	{ "MAIL FROM: space before <", "MAIL FROM: <a@b.example>", 0, 0, SMTP_CMD_MAIL, " <a@b.example>", 0, NULL, NULL },
	{ "MAIL two spaces before FROM", "MAIL  FROM:<a@b.example>", 0, 0, SMTP_CMD_MAIL, "<a@b.example>", 0, NULL, NULL },
	{ "MAIL with params", "MAIL FROM:<a@b.example> SIZE=10", 0, 0, SMTP_CMD_MAIL, "<a@b.example> SIZE=10", 0, NULL, NULL },
	{ "RCPT TO", "RCPT TO:<a@b.example>", 0, 0, SMTP_CMD_RCPT, "<a@b.example>", 0, NULL, NULL },
	{ "rcpt to: spaces, params", "rcpt to:  <a@b.example> NOTIFY=NEVER", 0, 0, SMTP_CMD_RCPT, "  <a@b.example> NOTIFY=NEVER", 0, NULL, NULL },
	{ "DATA", "DATA", 0, 0, SMTP_CMD_DATA, "", 0, NULL, NULL },
	{ "data lowercase", "data", 0, 0, SMTP_CMD_DATA, "", 0, NULL, NULL },
	{ "DATA trailing space", "DATA  ", 0, 0, SMTP_CMD_DATA, "", 0, NULL, NULL },
	{ "RSET", "RSET", 0, 0, SMTP_CMD_RSET, "", 0, NULL, NULL },
	{ "QUIT", "quit", 0, 0, SMTP_CMD_QUIT, "", 0, NULL, NULL },
	{ "STARTTLS", "StartTLS", 0, 0, SMTP_CMD_STARTTLS, "", 0, NULL, NULL },
	{ "NOOP bare", "NOOP", 0, 0, SMTP_CMD_NOOP, "", 0, NULL, NULL },
	{ "NOOP with string", "NOOP hello there", 0, 0, SMTP_CMD_NOOP, "hello there", 0, NULL, NULL },
	{ "HELP bare", "HELP", 0, 0, SMTP_CMD_HELP, "", 0, NULL, NULL },
	{ "HELP topic", "help MAIL", 0, 0, SMTP_CMD_HELP, "MAIL", 0, NULL, NULL },
	{ "VRFY user", "VRFY postmaster", 0, 0, SMTP_CMD_VRFY, "postmaster", 0, NULL, NULL },
	{ "EXPN list", "EXPN staff", 0, 0, SMTP_CMD_EXPN, "staff", 0, NULL, NULL },
	{ "BDAT", "BDAT 100 LAST", 0, 0, SMTP_CMD_BDAT, "100 LAST", 0, NULL, NULL },
	{ "AUTH", "AUTH PLAIN dGVzdA==", 0, 0, SMTP_CMD_AUTH, "PLAIN dGVzdA==", 0, NULL, NULL },

	{ "DATA with argument", "DATA now", 0, -1, SMTP_CMD_DATA, NULL, 501, "5.5.4", "DATA takes no argument" },
	{ "RSET with argument", "RSET x", 0, -1, SMTP_CMD_RSET, NULL, 501, "5.5.4", "RSET takes no argument" },
	{ "QUIT with argument", "QUIT bye", 0, -1, SMTP_CMD_QUIT, NULL, 501, "5.5.4", NULL },
	{ "STARTTLS with argument", "STARTTLS x", 0, -1, SMTP_CMD_STARTTLS, NULL, 501, "5.5.4", NULL },
	{ "EHLO empty", "EHLO", 0, -1, SMTP_CMD_EHLO, NULL, 501, "5.5.4", "Error: EHLO requires a domain name" },
	{ "EHLO only spaces", "EHLO   ", 0, -1, SMTP_CMD_EHLO, NULL, 501, "5.5.4", "Error: EHLO requires a domain name" },
	{ "HELO empty", "HELO", 0, -1, SMTP_CMD_HELO, NULL, 501, "5.5.4", "Error: HELO requires a domain name" },
	{ "VRFY empty", "VRFY", 0, -1, SMTP_CMD_VRFY, NULL, 501, "5.5.4", "VRFY" },
	{ "EXPN empty", "EXPN ", 0, -1, SMTP_CMD_EXPN, NULL, 501, "5.5.4", NULL },
	{ "BDAT empty", "BDAT", 0, -1, SMTP_CMD_BDAT, NULL, 501, "5.5.4", "BDAT" },
	{ "AUTH empty", "AUTH", 0, -1, SMTP_CMD_AUTH, NULL, 501, "5.5.4", NULL },
	{ "MAIL without FROM", "MAIL", 0, -1, SMTP_CMD_MAIL, NULL, 501, "5.5.4", "MAIL FROM:<address>" },
	{ "MAIL TO:", "MAIL TO:<a@b.example>", 0, -1, SMTP_CMD_MAIL, NULL, 501, "5.5.4", NULL },
	{ "MAIL FROM without colon", "MAIL FROM <a@b.example>", 0, -1, SMTP_CMD_MAIL, NULL, 501, "5.5.4", NULL },
	{ "MAIL FROM space colon", "MAIL FROM :<a@b.example>", 0, -1, SMTP_CMD_MAIL, NULL, 501, "5.5.4", NULL },
	{ "MAIL path only", "MAIL <a@b.example>", 0, -1, SMTP_CMD_MAIL, NULL, 501, "5.5.4", NULL },
	{ "RCPT FROM:", "RCPT FROM:<a@b.example>", 0, -1, SMTP_CMD_RCPT, NULL, 501, "5.5.4", "RCPT TO:<address>" },
	{ "RCPT TO without colon", "RCPT TO", 0, -1, SMTP_CMD_RCPT, NULL, 501, "5.5.4", NULL },
	{ "unknown verb", "FOO bar", 0, -1, SMTP_CMD_UNKNOWN, NULL, 500, "5.5.2", "Error: command not recognized" },
	{ "empty line", "", 0, -1, SMTP_CMD_UNKNOWN, NULL, 500, "5.5.2", "not recognized" },
	{ "verb glued to keyword", "MAILFROM:<a@b.example>", 0, -1, SMTP_CMD_UNKNOWN, NULL, 500, "5.5.2", NULL },
	{ "leading space", " MAIL FROM:<a@b.example>", 0, -1, SMTP_CMD_UNKNOWN, NULL, 500, "5.5.2", NULL },
	{ "tab after verb", "DATA\tx", 0, -1, SMTP_CMD_UNKNOWN, NULL, 500, "5.5.2", NULL },
	{ "verb prefix", "DAT", 0, -1, SMTP_CMD_UNKNOWN, NULL, 500, "5.5.2", NULL },
	{ "verb too long", "DATAX", 0, -1, SMTP_CMD_UNKNOWN, NULL, 500, "5.5.2", NULL },
	{ "NUL inside verb", "DA\0TA", 5, -1, SMTP_CMD_UNKNOWN, NULL, 500, "5.5.2", "NUL" },
	{ "NUL inside address", "MAIL FROM:<a\0@b.example>", 24, -1, SMTP_CMD_UNKNOWN, NULL, 500, "5.5.2", "NUL" },
	{ "NUL at end", "NOOP\0", 5, -1, SMTP_CMD_UNKNOWN, NULL, 500, "5.5.2", "NUL" },
};

START_TEST(test_command)
{
	const struct cmd_case *c = &cmd_cases[_i];
	struct smtp_parse_error err;
	enum smtp_cmd cmd;
	const char *arg = NULL;
	size_t len = c->len ? c->len : strlen(c->line);
	int rc;

	memset(&err, 0, sizeof err);
	rc = smtp_parse_command(c->line, len, &cmd, &arg, &err);
	ck_assert_msg(rc == c->rc, "%s: rc %d, want %d (%d %s)", c->label, rc, c->rc,
	    err.code, err.text);
	if (c->rc == 0) {
		ck_assert_msg(cmd == c->cmd, "%s: cmd %s", c->label, smtp_cmd_name(cmd));
		ck_assert_msg(strcmp(arg, c->arg) == 0, "%s: arg '%s', want '%s'", c->label,
		    arg, c->arg);
	} else {
		if (c->cmd != SMTP_CMD_UNKNOWN)
			ck_assert_msg(cmd == c->cmd, "%s: cmd %s", c->label, smtp_cmd_name(cmd));
		ck_assert_msg(err.code == c->code && strcmp(err.enh, c->enh) == 0,
		    "%s: got %d %s, want %d %s", c->label, err.code, err.enh, c->code, c->enh);
		ck_assert_msg(c->text == NULL || strstr(err.text, c->text) != NULL,
		    "%s: text '%s' lacks '%s'", c->label, err.text, c->text);
	}
}
END_TEST

START_TEST(test_command_line_length)
{
	char line[SMTP_CMDLINE_MAX + 8];
	struct smtp_parse_error err;
	enum smtp_cmd cmd;
	const char *arg;

	/* 510 octets plus CRLF is the RFC 5321 4.5.3.1.4 limit. */
	test_fill(line, 'x', SMTP_CMDLINE_MAX - 2);
	memcpy(line, "NOOP ", 5);
	ck_assert_int_eq(smtp_parse_command(line, strlen(line), &cmd, &arg, &err), 0);
	ck_assert_int_eq(cmd, SMTP_CMD_NOOP);
	test_fill(line, 'x', SMTP_CMDLINE_MAX - 1);
	memcpy(line, "NOOP ", 5);
	ck_assert_int_eq(smtp_parse_command(line, strlen(line), &cmd, &arg, &err), -1);
	ck_assert_int_eq(err.code, 500);
	ck_assert_str_eq(err.enh, "5.5.2");
	ck_assert_str_eq(err.text, "Error: line too long");
}
END_TEST

START_TEST(test_cmd_name)
{
	ck_assert_str_eq(smtp_cmd_name(SMTP_CMD_HELO), "HELO");
	ck_assert_str_eq(smtp_cmd_name(SMTP_CMD_MAIL), "MAIL");
	ck_assert_str_eq(smtp_cmd_name(SMTP_CMD_STARTTLS), "STARTTLS");
	ck_assert_str_eq(smtp_cmd_name(SMTP_CMD_AUTH), "AUTH");
	ck_assert_str_eq(smtp_cmd_name(SMTP_CMD_UNKNOWN), "UNKNOWN");
}
END_TEST

/* --------------------------------------------------------------- paths */

/* Mode bits. */
#define M_RCPT 0x1u
#define M_NULL 0x2u
#define M_UTF8 0x4u

/* Expected flags. */
#define F_NULL 0x01u
#define F_ROUTE 0x02u
#define F_QUOTED 0x04u
#define F_ROUTING 0x08u
#define F_LITERAL 0x10u
#define F_UTF8 0x20u

static const struct path_case {
	const char *label;
	const char *in;
	unsigned mode;
	int rc;
	const char *addr;   /* rc == 0 */
	const char *local;
	const char *domain;
	unsigned flags;
	const char *rest;
	int code;           /* rc != 0 */
	const char *enh;
	const char *text;
} path_cases[] = {
	/* Ordinary forms. */
	{ "simple", "<user@example.org>", 0, 0, "user@example.org", "user", "example.org", 0, "", 0, NULL, NULL },
	{ "domain lowercased, local kept", "<User@Example.ORG>", 0, 0, "User@example.org", "User", "example.org", 0, "", 0, NULL, NULL },
	{ "leading spaces skipped", "   <a@b.example>", 0, 0, "a@b.example", "a", "b.example", 0, "", 0, NULL, NULL },
	{ "dotted local, subdomain", "<first.last@mail.sub.example.org>", 0, 0, "first.last@mail.sub.example.org", "first.last", "mail.sub.example.org", 0, "", 0, NULL, NULL },
	{ "all atext specials", "<a#$&'*+-/=?^_`{|}~b@x.example>", 0, 0, "a#$&'*+-/=?^_`{|}~b@x.example", "a#$&'*+-/=?^_`{|}~b", "x.example", 0, "", 0, NULL, NULL },
	{ "single-label domain", "<root@localhost>", 0, 0, "root@localhost", "root", "localhost", 0, "", 0, NULL, NULL },
	{ "hyphen inside label", "<a@mail-gw.example>", 0, 0, "a@mail-gw.example", "a", "mail-gw.example", 0, "", 0, NULL, NULL },
	{ "digit labels", "<a@123.example>", 0, 0, "a@123.example", "a", "123.example", 0, "", 0, NULL, NULL },
	{ "A-label", "<a@xn--bcher-kva.example>", 0, 0, "a@xn--bcher-kva.example", "a", "xn--bcher-kva.example", 0, "", 0, NULL, NULL },
	{ "quoted with space", "<\"john smith\"@example.org>", 0, 0, "\"john smith\"@example.org", "\"john smith\"", "example.org", F_QUOTED, "", 0, NULL, NULL },
	{ "quoted pair", "<\"a\\\"b\"@x.example>", 0, 0, "\"a\\\"b\"@x.example", "\"a\\\"b\"", "x.example", F_QUOTED, "", 0, NULL, NULL },
	{ "empty quoted string", "<\"\"@x.example>", 0, 0, "\"\"@x.example", "\"\"", "x.example", F_QUOTED, "", 0, NULL, NULL },
	{ "quoted with > inside", "<\"a>b\"@x.example>", 0, 0, "\"a>b\"@x.example", "\"a>b\"", "x.example", F_QUOTED, "", 0, NULL, NULL },
	{ "IPv4 literal", "<user@[192.0.2.1]>", 0, 0, "user@[192.0.2.1]", "user", "[192.0.2.1]", F_LITERAL, "", 0, NULL, NULL },
	{ "IPv6 literal", "<user@[IPv6:2001:db8::1]>", 0, 0, "user@[IPv6:2001:db8::1]", "user", "[IPv6:2001:db8::1]", F_LITERAL, "", 0, NULL, NULL },
	{ "IPv6 literal normalized", "<user@[ipv6:2001:DB8::1]>", 0, 0, "user@[IPv6:2001:db8::1]", "user", "[IPv6:2001:db8::1]", F_LITERAL, "", 0, NULL, NULL },
	{ "IPv6 literal v4-mapped", "<u@[IPv6:::ffff:192.0.2.1]>", 0, 0, "u@[IPv6:::ffff:192.0.2.1]", "u", "[IPv6:::ffff:192.0.2.1]", F_LITERAL, "", 0, NULL, NULL },
	{ "params left in rest", "<a@b.example> SIZE=100 BODY=8BITMIME", 0, 0, "a@b.example", "a", "b.example", 0, " SIZE=100 BODY=8BITMIME", 0, NULL, NULL },
	{ "trailing space in rest", "<a@b.example> ", 0, 0, "a@b.example", "a", "b.example", 0, " ", 0, NULL, NULL },

	/* Null path and Postmaster. */
	{ "null sender allowed", "<>", M_NULL, 0, "", "", "", F_NULL, "", 0, NULL, NULL },
	{ "null with params", "<> SIZE=1", M_NULL, 0, "", "", "", F_NULL, " SIZE=1", 0, NULL, NULL },
	{ "null recipient refused", "<>", M_RCPT, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.3", "null address" },
	{ "null sender when not allowed", "<>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "null address" },
	{ "null then garbage", "<>x", M_NULL, -1, NULL, NULL, NULL, 0, NULL, 501, "5.5.4", "space" },
	{ "Postmaster recipient", "<Postmaster>", M_RCPT, 0, "Postmaster", "Postmaster", "", 0, "", 0, NULL, NULL },
	{ "postmaster lowercase", "<postmaster>", M_RCPT, 0, "Postmaster", "Postmaster", "", 0, "", 0, NULL, NULL },
	{ "POSTMASTER uppercase", "<POSTMASTER> NOTIFY=NEVER", M_RCPT, 0, "Postmaster", "Postmaster", "", 0, " NOTIFY=NEVER", 0, NULL, NULL },
	{ "Postmaster as sender refused", "<Postmaster>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "missing @domain" },
	{ "postmaster@domain is ordinary", "<postmaster@Example.org>", M_RCPT, 0, "postmaster@example.org", "postmaster", "example.org", 0, "", 0, NULL, NULL },
	{ "postmasterx is no Postmaster", "<postmasterx>", M_RCPT, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.3", "missing @domain" },

	/* Classic open-relay forms: valid syntax, flagged for policy. */
	{ "relay: percent hack", "<user%other.example@us.example>", M_RCPT, 0, "user%other.example@us.example", "user%other.example", "us.example", F_ROUTING, "", 0, NULL, NULL },
	{ "relay: quoted @", "<\"user@other.example\"@us.example>", M_RCPT, 0, "\"user@other.example\"@us.example", "\"user@other.example\"", "us.example", F_QUOTED | F_ROUTING, "", 0, NULL, NULL },
	{ "relay: quoted-pair @", "<\"user\\@other.example\"@us.example>", M_RCPT, 0, "\"user\\@other.example\"@us.example", "\"user\\@other.example\"", "us.example", F_QUOTED | F_ROUTING, "", 0, NULL, NULL },
	{ "relay: quoted percent", "<\"user%other\"@us.example>", M_RCPT, 0, "\"user%other\"@us.example", "\"user%other\"", "us.example", F_QUOTED | F_ROUTING, "", 0, NULL, NULL },
	{ "relay: source route stripped", "<@us.example:user@other.example>", M_RCPT, 0, "user@other.example", "user", "other.example", F_ROUTE, "", 0, NULL, NULL },
	{ "relay: two-hop source route", "<@a.example,@b.example:user@other.example>", M_RCPT, 0, "user@other.example", "user", "other.example", F_ROUTE, "", 0, NULL, NULL },
	{ "relay: bang path", "<other.example!user@us.example>", M_RCPT, 0, "other.example!user@us.example", "other.example!user", "us.example", F_ROUTING, "", 0, NULL, NULL },
	{ "relay: double @", "<user@other.example@us.example>", M_RCPT, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.3", "more than one @" },
	{ "relay: double @ as sender", "<user@other.example@us.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "more than one @" },
	{ "relay: bang path without domain", "<other.example!user>", M_RCPT, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.3", "missing @domain" },
	{ "relay: plain local part", "<user@us.example>", M_RCPT, 0, "user@us.example", "user", "us.example", 0, "", 0, NULL, NULL },

	/* Malformed. */
	{ "no brackets", "user@example.org", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "enclosed in <>" },
	{ "empty input", "", M_RCPT, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.3", "enclosed in <>" },
	{ "only <", "<", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "ends early" },
	{ "missing >", "<a@b.example", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "missing >" },
	{ "space after <", "< a@b.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "spaces" },
	{ "space before @", "<a @b.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "spaces" },
	{ "space after @", "<a@ b.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "domain" },
	{ "space before >", "<a@b.example >", M_RCPT, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.3", "spaces" },
	{ "tab inside", "<a\t@b.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "spaces" },
	{ "control char in local", "<a\x01@b.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "control" },
	{ "control char in domain", "<a@b.exa\x7fmple>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "control" },
	{ "CR in quotes", "<\"a\rb\"@b.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "control" },
	{ "unterminated quote", "<\"abc@b.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "unterminated" },
	{ "bad quoted pair", "<\"a\\\x01\"@b.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "quoted pair" },
	{ "quoted then text", "<\"a\"b@x.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", NULL },
	{ "empty local part", "<@b.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "source route" },
	{ "leading dot in local", "<.a@b.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "dots" },
	{ "trailing dot in local", "<a.@b.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "dot" },
	{ "double dot in local", "<a..b@c.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "dots" },
	{ "< inside", "<a<b@c.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", NULL },
	{ "empty domain", "<a@>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "missing domain" },
	{ "empty label", "<a@b..example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "empty domain label" },
	{ "leading dot in domain", "<a@.b.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "starts with a dot" },
	{ "trailing dot in domain", "<a@b.example.>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "ends with a dot" },
	{ "leading hyphen in label", "<a@-b.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "hyphen" },
	{ "trailing hyphen in label", "<a@b-.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "hyphen" },
	{ "trailing hyphen last label", "<a@b.example->", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "hyphen" },
	{ "underscore in path domain", "<a@b_c.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", NULL },
	{ "garbage after >", "<a@b.example>x", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.5.4", "space" },
	{ "params glued to >", "<a@b.example>SIZE=1", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.5.4", NULL },
	{ "double >", "<a@b.example>>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.5.4", NULL },
	{ "route without colon", "<@a.example>", M_RCPT, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.3", "source route" },
	{ "route with empty mailbox", "<@a.example:>", M_RCPT, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.3", NULL },
	{ "route with empty domain", "<@:a@b.example>", M_RCPT, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.3", "missing domain" },
	{ "route with semicolon", "<@a.example;u@b.example>", M_RCPT, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.3", "source route" },
	{ "route comma then nothing", "<@a.example,:u@b.example>", M_RCPT, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.3", "source route" },
	{ "IPv4 literal short", "<a@[1.2.3]>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "IPv4" },
	{ "IPv4 literal octet 256", "<a@[1.2.3.256]>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "IPv4" },
	{ "IPv4 literal leading zero", "<a@[01.2.3.4]>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "IPv4" },
	{ "IPv4 literal unclosed", "<a@[1.2.3.4>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "literal" },
	{ "IPv6 literal bad", "<a@[IPv6:1::2::3]>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "IPv6" },
	{ "IPv6 literal without tag", "<a@[2001:db8::1]>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "unsupported" },
	{ "general literal", "<a@[tag:content]>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "unsupported" },
	{ "literal then text", "<a@[1.2.3.4]x>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", NULL },
	{ "echo is sanitized", "<a\n@b.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "<a?@b.example>" },

	/* UTF-8 (RFC 6531). */
	{ "utf8 local and domain", "<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>", M_UTF8, 0,
	  "\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", "\xe7\x94\xa8\xe6\x88\xb7", "\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a", F_UTF8, "", 0, NULL, NULL },
	{ "utf8 without SMTPUTF8", "<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a>", 0, -1, NULL, NULL, NULL, 0, NULL, 553, "5.6.7", "Error: non-ASCII address needs SMTPUTF8" },
	{ "utf8 local only, rcpt", "<\xc3\xbc@x.example>", M_RCPT | M_UTF8, 0, "\xc3\xbc@x.example", "\xc3\xbc", "x.example", F_UTF8, "", 0, NULL, NULL },
	{ "utf8 local without SMTPUTF8", "<\xc3\xbc@x.example>", M_RCPT, -1, NULL, NULL, NULL, 0, NULL, 553, "5.6.7", "SMTPUTF8" },
	{ "utf8 domain without SMTPUTF8", "<a@b\xc3\xbc" "cher.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 553, "5.6.7", "SMTPUTF8" },
	{ "utf8 domain lowercases ASCII only", "<a@B\xc3\x9c" "CHER.example>", M_UTF8, 0, "a@b\xc3\x9c" "cher.example", "a", "b\xc3\x9c" "cher.example", F_UTF8, "", 0, NULL, NULL },
	{ "utf8 quoted", "<\"\xc3\xbc x\"@x.example>", M_UTF8, 0, "\"\xc3\xbc x\"@x.example", "\"\xc3\xbc x\"", "x.example", F_UTF8 | F_QUOTED, "", 0, NULL, NULL },
	{ "utf8 quoted without SMTPUTF8", "<\"\xc3\xbc\"@x.example>", 0, -1, NULL, NULL, NULL, 0, NULL, 553, "5.6.7", NULL },
	{ "utf8 in source route without SMTPUTF8", "<@\xc3\xbc.example:a@b.example>", M_RCPT, -1, NULL, NULL, NULL, 0, NULL, 553, "5.6.7", NULL },
	{ "utf8 4-byte", "<\xf0\x9f\x98\x80@x.example>", M_UTF8, 0, "\xf0\x9f\x98\x80@x.example", "\xf0\x9f\x98\x80", "x.example", F_UTF8, "", 0, NULL, NULL },
	{ "utf8 overlong 2-byte", "<\xc0\xaf@x.example>", M_UTF8, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "UTF-8" },
	{ "utf8 overlong C1", "<\xc1\xbf@x.example>", M_UTF8, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "UTF-8" },
	{ "utf8 overlong 3-byte", "<\xe0\x80\xaf@x.example>", M_UTF8, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "UTF-8" },
	{ "utf8 overlong 4-byte", "<\xf0\x80\x80\xaf@x.example>", M_UTF8, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "UTF-8" },
	{ "utf8 surrogate", "<\xed\xa0\x80@x.example>", M_UTF8, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "UTF-8" },
	{ "utf8 above U+10FFFF", "<\xf4\x90\x80\x80@x.example>", M_UTF8, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "UTF-8" },
	{ "utf8 F5 lead byte", "<\xf5\x80\x80\x80@x.example>", M_UTF8, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "UTF-8" },
	{ "utf8 lone continuation", "<\x80@x.example>", M_UTF8 | M_RCPT, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.3", "UTF-8" },
	{ "utf8 truncated", "<\xc3@x.example>", M_UTF8, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "UTF-8" },
	{ "utf8 truncated at end", "<a@x.\xe4\xbe>", M_UTF8, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "UTF-8" },
	{ "utf8 bad in domain", "<a@\xff.example>", M_UTF8, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "UTF-8" },
	{ "utf8 bad in quotes", "<\"\xc3\x28\"@x.example>", M_UTF8, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "UTF-8" },
	{ "utf8 in literal refused", "<a@[\xc3\xbc]>", M_UTF8, -1, NULL, NULL, NULL, 0, NULL, 501, "5.1.7", "literal" },
};

static void test_check_path(const char *label, const struct smtp_path *p, const char *addr,
    const char *local, const char *domain, unsigned flags)
{
	ck_assert_msg(strcmp(p->addr, addr) == 0, "%s: addr '%s' want '%s'", label, p->addr, addr);
	ck_assert_msg(strcmp(p->local, local) == 0, "%s: local '%s' want '%s'", label, p->local, local);
	ck_assert_msg(strcmp(p->domain, domain) == 0, "%s: domain '%s' want '%s'", label,
	    p->domain, domain);
	ck_assert_msg(p->is_null == !!(flags & F_NULL), "%s: is_null", label);
	ck_assert_msg(p->had_source_route == !!(flags & F_ROUTE), "%s: had_source_route", label);
	ck_assert_msg(p->is_quoted == !!(flags & F_QUOTED), "%s: is_quoted", label);
	ck_assert_msg(p->has_routing_chars == !!(flags & F_ROUTING), "%s: has_routing_chars", label);
	ck_assert_msg(p->is_address_literal == !!(flags & F_LITERAL), "%s: is_address_literal", label);
	ck_assert_msg(p->is_utf8 == !!(flags & F_UTF8), "%s: is_utf8", label);
}

START_TEST(test_path)
{
	const struct path_case *c = &path_cases[_i];
	struct smtp_parse_error err;
	struct smtp_path p;
	const char *rest = NULL;
	int rc;

	memset(&err, 0, sizeof err);
	rc = smtp_parse_path(c->in, c->mode & M_RCPT, c->mode & M_NULL, c->mode & M_UTF8, &p,
	    &rest, &err);
	ck_assert_msg(rc == c->rc, "%s: rc %d want %d (%d %s %s)", c->label, rc, c->rc,
	    err.code, err.enh ? err.enh : "", err.text);
	if (rc == 0) {
		test_check_path(c->label, &p, c->addr, c->local, c->domain, c->flags);
		ck_assert_msg(strcmp(rest, c->rest) == 0, "%s: rest '%s' want '%s'", c->label,
		    rest, c->rest);
	} else {
		ck_assert_msg(err.code == c->code && strcmp(err.enh, c->enh) == 0,
		    "%s: got %d %s (%s), want %d %s", c->label, err.code, err.enh, err.text,
		    c->code, c->enh);
		ck_assert_msg(c->text == NULL || strstr(err.text, c->text) != NULL,
		    "%s: text '%s' lacks '%s'", c->label, err.text, c->text);
		ck_assert_msg(strchr(err.text, '\n') == NULL && strchr(err.text, '\r') == NULL,
		    "%s: line break in reply text", c->label);
	}
}
END_TEST

/*
 * Limits of RFC 5321 4.5.3.1: each exactly at the limit (accepted) and
 * one octet over (refused). Built at run time, one labelled row each.
 */
enum limit_kind { LIM_LOCAL, LIM_QUOTED_LOCAL, LIM_LABEL, LIM_PATH, LIM_DOMAIN, LIM_ROUTE_PATH };

static const struct limit_case {
	const char *label;
	enum limit_kind kind;
	size_t n;
	int rc;
	const char *text;
} limit_cases[] = {
	{ "local part 64", LIM_LOCAL, 64, 0, NULL },
	{ "local part 65", LIM_LOCAL, 65, -1, "local part longer than 64 octets" },
	{ "quoted local part 64", LIM_QUOTED_LOCAL, 64, 0, NULL },
	{ "quoted local part 65", LIM_QUOTED_LOCAL, 65, -1, "local part longer than 64 octets" },
	{ "label 63", LIM_LABEL, 63, 0, NULL },
	{ "label 64", LIM_LABEL, 64, -1, "label longer than 63 octets" },
	{ "path 256", LIM_PATH, 256, 0, NULL },
	{ "path 257", LIM_PATH, 257, -1, "address longer than 256 octets" },
	{ "domain 255 (path too long)", LIM_DOMAIN, 255, -1, "address longer than 256 octets" },
	{ "domain 256", LIM_DOMAIN, 256, -1, "domain longer than 255 octets" },
	{ "path 256 with source route", LIM_ROUTE_PATH, 256, 0, NULL },
	{ "path 257 with source route", LIM_ROUTE_PATH, 257, -1, "address longer than 256 octets" },
};

/* A dotted domain of exactly n octets: 9-octet labels and a 1..10 tail. */
static void test_make_domain(char *out, size_t n)
{
	size_t o = 0;

	while (n - o > 10) {
		memset(out + o, 'd', 9);
		out[o + 9] = '.';
		o += 10;
	}
	memset(out + o, 'e', n - o);
	out[n] = '\0';
}

START_TEST(test_path_limits)
{
	const struct limit_case *c = &limit_cases[_i];
	char in[1024], local[128], dom[512];
	struct smtp_parse_error err;
	struct smtp_path p;
	const char *rest;
	int rc;

	switch (c->kind) {
	case LIM_LOCAL:
		test_fill(local, 'l', c->n);
		snprintf(in, sizeof in, "<%s@x.example>", local);
		break;
	case LIM_QUOTED_LOCAL:
		test_fill(local, 'q', c->n);
		snprintf(in, sizeof in, "<\"%s\"@x.example>", local);
		break;
	case LIM_LABEL:
		test_fill(dom, 'a', c->n);
		snprintf(in, sizeof in, "<u@%s.example>", dom);
		break;
	case LIM_PATH:
		/* "<" + "u@" + domain + ">" = n */
		test_make_domain(dom, c->n - 4);
		snprintf(in, sizeof in, "<u@%s>", dom);
		break;
	case LIM_DOMAIN:
		test_make_domain(dom, c->n);
		snprintf(in, sizeof in, "<u@%s>", dom);
		break;
	case LIM_ROUTE_PATH:
		/* "<@r.example:" (12) + "u@" + domain + ">" = n */
		test_make_domain(dom, c->n - 15);
		snprintf(in, sizeof in, "<@r.example:u@%s>", dom);
		break;
	}
	ck_assert_msg(c->kind == LIM_LOCAL || c->kind == LIM_QUOTED_LOCAL ||
	    c->kind == LIM_LABEL || c->kind == LIM_DOMAIN || strlen(in) == c->n,
	    "%s: built %zu octets", c->label, strlen(in));
	memset(&err, 0, sizeof err);
	rc = smtp_parse_path(in, true, false, false, &p, &rest, &err);
	ck_assert_msg(rc == c->rc, "%s: rc %d (%s)", c->label, rc, err.text);
	if (rc == 0) {
		ck_assert_msg(strlen(p.addr) <= SMTP_PATH_MAX, "%s: addr too long", c->label);
		ck_assert_msg(*rest == '\0', "%s: rest", c->label);
	} else {
		ck_assert_msg(err.code == 501 && strcmp(err.enh, "5.1.3") == 0, "%s: %d %s",
		    c->label, err.code, err.enh);
		ck_assert_msg(strstr(err.text, c->text) != NULL, "%s: text '%s'", c->label,
		    err.text);
		ck_assert_msg(strlen(err.text) < sizeof err.text - 1 || strstr(err.text, "..."),
		    "%s: text not bounded", c->label);
	}
}
END_TEST

/* ----------------------------------------------------- MAIL parameters */

static const struct mail_case {
	const char *label;
	const char *in;
	int rc;
	bool has_size;
	uint64_t size;
	enum queue_body_type body;
	bool smtputf8;
	enum queue_ret ret;
	const char *envid; /* NULL: none */
	int code;
	const char *text;
} mail_cases[] = {
	{ "no parameters", "", 0, false, 0, QUEUE_BODY_UNSET, false, QUEUE_RET_UNSET, NULL, 0, NULL },
	{ "only spaces", "   ", 0, false, 0, QUEUE_BODY_UNSET, false, QUEUE_RET_UNSET, NULL, 0, NULL },
	{ "SIZE", " SIZE=1000", 0, true, 1000, QUEUE_BODY_UNSET, false, QUEUE_RET_UNSET, NULL, 0, NULL },
	{ "SIZE zero", "SIZE=0", 0, true, 0, QUEUE_BODY_UNSET, false, QUEUE_RET_UNSET, NULL, 0, NULL },
	{ "size lowercase keyword", "size=42", 0, true, 42, QUEUE_BODY_UNSET, false, QUEUE_RET_UNSET, NULL, 0, NULL },
	{ "SIZE max uint64", "SIZE=18446744073709551615", 0, true, UINT64_MAX, QUEUE_BODY_UNSET, false, QUEUE_RET_UNSET, NULL, 0, NULL },
	{ "SIZE overflow", "SIZE=18446744073709551616", -1, false, 0, 0, false, 0, NULL, 501, "SIZE" },
	{ "SIZE 21 digits", "SIZE=000000000000000000001", -1, false, 0, 0, false, 0, NULL, 501, "SIZE" },
	{ "SIZE not digits", "SIZE=12a", -1, false, 0, 0, false, 0, NULL, 501, "SIZE" },
	{ "SIZE negative", "SIZE=-1", -1, false, 0, 0, false, 0, NULL, 501, "SIZE" },
	{ "SIZE empty value", "SIZE=", -1, false, 0, 0, false, 0, NULL, 501, "SIZE" },
	{ "SIZE without value", "SIZE", -1, false, 0, 0, false, 0, NULL, 501, "SIZE requires a value" },
	{ "BODY=8BITMIME", "BODY=8BITMIME", 0, false, 0, QUEUE_BODY_8BITMIME, false, QUEUE_RET_UNSET, NULL, 0, NULL },
	{ "BODY=7bit lowercase", "body=7bit", 0, false, 0, QUEUE_BODY_7BIT, false, QUEUE_RET_UNSET, NULL, 0, NULL },
	{ "BODY=BINARYMIME", "BODY=BINARYMIME", 0, false, 0, QUEUE_BODY_BINARYMIME, false, QUEUE_RET_UNSET, NULL, 0, NULL },
	{ "BODY unknown", "BODY=8BIT", -1, false, 0, 0, false, 0, NULL, 501, "BODY" },
	{ "SMTPUTF8", "SMTPUTF8", 0, false, 0, QUEUE_BODY_UNSET, true, QUEUE_RET_UNSET, NULL, 0, NULL },
	{ "smtputf8 lowercase", "smtputf8", 0, false, 0, QUEUE_BODY_UNSET, true, QUEUE_RET_UNSET, NULL, 0, NULL },
	{ "SMTPUTF8 with value", "SMTPUTF8=yes", -1, false, 0, 0, false, 0, NULL, 501, "SMTPUTF8 takes no value" },
	{ "RET=FULL", "RET=FULL", 0, false, 0, QUEUE_BODY_UNSET, false, QUEUE_RET_FULL, NULL, 0, NULL },
	{ "RET=hdrs", "RET=hdrs", 0, false, 0, QUEUE_BODY_UNSET, false, QUEUE_RET_HDRS, NULL, 0, NULL },
	{ "RET unknown", "RET=NONE", -1, false, 0, 0, false, 0, NULL, 501, "RET" },
	{ "ENVID plain", "ENVID=QQ314159", 0, false, 0, QUEUE_BODY_UNSET, false, QUEUE_RET_UNSET, "QQ314159", 0, NULL },
	{ "ENVID xtext", "ENVID=abc+2Bdef+3D", 0, false, 0, QUEUE_BODY_UNSET, false, QUEUE_RET_UNSET, "abc+def=", 0, NULL },
	{ "ENVID encoded space", "ENVID=a+20b", 0, false, 0, QUEUE_BODY_UNSET, false, QUEUE_RET_UNSET, "a b", 0, NULL },
	{ "ENVID encoded LF", "ENVID=a+0Ab", -1, false, 0, 0, false, 0, NULL, 501, "ENVID" },
	{ "ENVID lowercase hex", "ENVID=a+2bb", -1, false, 0, 0, false, 0, NULL, 501, "ENVID" },
	{ "ENVID short escape", "ENVID=a+2", -1, false, 0, 0, false, 0, NULL, 501, "ENVID" },
	{ "ENVID with =", "ENVID=a=b", -1, false, 0, 0, false, 0, NULL, 501, NULL },
	{ "AUTH null", "AUTH=<>", 0, false, 0, QUEUE_BODY_UNSET, false, QUEUE_RET_UNSET, NULL, 0, NULL },
	{ "AUTH mailbox", "AUTH=user+40example.org", 0, false, 0, QUEUE_BODY_UNSET, false, QUEUE_RET_UNSET, NULL, 0, NULL },
	{ "AUTH bad xtext", "AUTH=a+zz", -1, false, 0, 0, false, 0, NULL, 501, "AUTH" },
	{ "all together", "BODY=8BITMIME RET=FULL ENVID=QQ314159 SMTPUTF8 SIZE=5", 0, true, 5, QUEUE_BODY_8BITMIME, true, QUEUE_RET_FULL, "QQ314159", 0, NULL },
	{ "many spaces", "  SIZE=10    BODY=7BIT   SMTPUTF8  ", 0, true, 10, QUEUE_BODY_7BIT, true, QUEUE_RET_UNSET, NULL, 0, NULL },
	{ "repeated SIZE", "SIZE=10 SIZE=20", -1, false, 0, 0, false, 0, NULL, 501, "duplicate parameter SIZE" },
	{ "repeated, other case", "SIZE=10 size=20", -1, false, 0, 0, false, 0, NULL, 501, "duplicate" },
	{ "repeated SMTPUTF8", "SMTPUTF8 SMTPUTF8", -1, false, 0, 0, false, 0, NULL, 501, "duplicate" },
	{ "unknown keyword", "FOO=bar", -1, false, 0, 0, false, 0, NULL, 555, "Error: unsupported parameter FOO" },
	{ "unknown keyword no value", "X-FOO", -1, false, 0, 0, false, 0, NULL, 555, "unsupported parameter X-FOO" },
	{ "unknown before bad", "FOO=bar SIZE=x", -1, false, 0, 0, false, 0, NULL, 555, "FOO" },
	{ "RCPT keyword in MAIL", "NOTIFY=NEVER", -1, false, 0, 0, false, 0, NULL, 555, "NOTIFY" },
	{ "= in value", "SIZE=1=2", -1, false, 0, 0, false, 0, NULL, 501, NULL },
	{ "no keyword", "=1", -1, false, 0, 0, false, 0, NULL, 501, "bad parameter syntax" },
	{ "keyword starts with -", "-X=1", -1, false, 0, 0, false, 0, NULL, 501, "bad parameter syntax" },
	{ "bad keyword char", "SI_ZE=1", -1, false, 0, 0, false, 0, NULL, 501, "bad parameter syntax" },
	{ "control char in value", "SIZE=1\x01", -1, false, 0, 0, false, 0, NULL, 501, NULL },
	{ "tab separator", "SIZE=10\tBODY=7BIT", -1, false, 0, 0, false, 0, NULL, 501, NULL },
};

START_TEST(test_mail_params)
{
	const struct mail_case *c = &mail_cases[_i];
	struct smtp_parse_error err;
	struct smtp_mail_params mp;
	int rc;

	memset(&err, 0, sizeof err);
	rc = smtp_parse_mail_params(c->in, &mp, &err);
	ck_assert_msg(rc == c->rc, "%s: rc %d (%d %s)", c->label, rc, err.code, err.text);
	if (rc == 0) {
		ck_assert_msg(mp.has_size == c->has_size && mp.size == c->size, "%s: size", c->label);
		ck_assert_msg(mp.body == c->body, "%s: body %d", c->label, (int)mp.body);
		ck_assert_msg(mp.smtputf8 == c->smtputf8, "%s: smtputf8", c->label);
		ck_assert_msg(mp.ret == c->ret, "%s: ret", c->label);
		ck_assert_msg(mp.has_envid == (c->envid != NULL), "%s: has_envid", c->label);
		if (c->envid != NULL)
			ck_assert_msg(strcmp(mp.envid, c->envid) == 0, "%s: envid '%s'", c->label,
			    mp.envid);
	} else {
		ck_assert_msg(err.code == c->code && strcmp(err.enh, "5.5.4") == 0,
		    "%s: %d %s", c->label, err.code, err.enh);
		ck_assert_msg(c->text == NULL || strstr(err.text, c->text) != NULL,
		    "%s: text '%s' lacks '%s'", c->label, err.text, c->text);
	}
}
END_TEST

START_TEST(test_envid_limit)
{
	char in[400], v[301];
	struct smtp_parse_error err;
	struct smtp_mail_params mp;

	/* RFC 3461 4.4: at most 100 characters (after decoding). */
	test_fill(v, 'e', 100);
	snprintf(in, sizeof in, "ENVID=%s", v);
	ck_assert_int_eq(smtp_parse_mail_params(in, &mp, &err), 0);
	ck_assert_uint_eq(strlen(mp.envid), 100);
	test_fill(v, 'e', 101);
	snprintf(in, sizeof in, "ENVID=%s", v);
	ck_assert_int_eq(smtp_parse_mail_params(in, &mp, &err), -1);
	ck_assert_int_eq(err.code, 501);
	/* 100 decoded characters written as 300 octets of xtext are fine. */
	for (int i = 0; i < 100; i++)
		memcpy(v + 3 * i, "+2B", 3);
	v[300] = '\0';
	snprintf(in, sizeof in, "ENVID=%s", v);
	ck_assert_int_eq(smtp_parse_mail_params(in, &mp, &err), 0);
	ck_assert_uint_eq(strlen(mp.envid), 100);
	ck_assert_int_eq(mp.envid[99], '+');
}
END_TEST

/* ----------------------------------------------------- RCPT parameters */

static const struct rcpt_case {
	const char *label;
	const char *in;
	int rc;
	unsigned notify;
	const char *orcpt; /* NULL: none */
	int code;
	const char *text;
} rcpt_cases[] = {
	{ "no parameters", "", 0, 0, NULL, 0, NULL },
	{ "NOTIFY=NEVER", "NOTIFY=NEVER", 0, QUEUE_NOTIFY_NEVER, NULL, 0, NULL },
	{ "NOTIFY list", " NOTIFY=SUCCESS,FAILURE", 0, QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE, NULL, 0, NULL },
	{ "NOTIFY all lowercase", "notify=success,failure,delay", 0, QUEUE_NOTIFY_SUCCESS | QUEUE_NOTIFY_FAILURE | QUEUE_NOTIFY_DELAY, NULL, 0, NULL },
	{ "NOTIFY DELAY", "NOTIFY=DELAY", 0, QUEUE_NOTIFY_DELAY, NULL, 0, NULL },
	{ "NOTIFY NEVER not alone", "NOTIFY=NEVER,SUCCESS", -1, 0, NULL, 501, "NOTIFY" },
	{ "NOTIFY NEVER after others", "NOTIFY=DELAY,NEVER", -1, 0, NULL, 501, "NOTIFY" },
	{ "NOTIFY repeated word", "NOTIFY=SUCCESS,SUCCESS", -1, 0, NULL, 501, "NOTIFY" },
	{ "NOTIFY empty", "NOTIFY=", -1, 0, NULL, 501, "NOTIFY" },
	{ "NOTIFY trailing comma", "NOTIFY=SUCCESS,", -1, 0, NULL, 501, "NOTIFY" },
	{ "NOTIFY leading comma", "NOTIFY=,SUCCESS", -1, 0, NULL, 501, "NOTIFY" },
	{ "NOTIFY unknown word", "NOTIFY=ALWAYS", -1, 0, NULL, 501, "NOTIFY" },
	{ "NOTIFY without value", "NOTIFY", -1, 0, NULL, 501, "NOTIFY requires a value" },
	{ "ORCPT", "ORCPT=rfc822;user+40example.org", 0, 0, "rfc822;user@example.org", 0, NULL },
	{ "ORCPT xtext plus", "ORCPT=rfc822;a+2Bb@example.org", 0, 0, "rfc822;a+b@example.org", 0, NULL },
	{ "ORCPT other type", "ORCPT=utf-8;a@example.org", 0, 0, "utf-8;a@example.org", 0, NULL },
	{ "ORCPT no semicolon", "ORCPT=rfc822", -1, 0, NULL, 501, "ORCPT" },
	{ "ORCPT empty type", "ORCPT=;a@b.example", -1, 0, NULL, 501, "ORCPT" },
	{ "ORCPT empty address", "ORCPT=rfc822;", -1, 0, NULL, 501, "ORCPT" },
	{ "ORCPT encoded CR", "ORCPT=rfc822;a+0Db", -1, 0, NULL, 501, "ORCPT" },
	{ "ORCPT bad type char", "ORCPT=rfc(822);a", -1, 0, NULL, 501, "ORCPT" },
	{ "both", "NOTIFY=FAILURE ORCPT=rfc822;a@b.example", 0, QUEUE_NOTIFY_FAILURE, "rfc822;a@b.example", 0, NULL },
	{ "repeated NOTIFY", "NOTIFY=NEVER NOTIFY=NEVER", -1, 0, NULL, 501, "duplicate parameter NOTIFY" },
	{ "repeated ORCPT", "ORCPT=rfc822;a ORCPT=rfc822;b", -1, 0, NULL, 501, "duplicate" },
	{ "MAIL keyword in RCPT", "SIZE=10", -1, 0, NULL, 555, "unsupported parameter SIZE" },
	{ "unknown", "XFORWARD=1", -1, 0, NULL, 555, "unsupported parameter XFORWARD" },
};

START_TEST(test_rcpt_params)
{
	const struct rcpt_case *c = &rcpt_cases[_i];
	struct smtp_parse_error err;
	struct smtp_rcpt_params rp;
	int rc;

	memset(&err, 0, sizeof err);
	rc = smtp_parse_rcpt_params(c->in, &rp, &err);
	ck_assert_msg(rc == c->rc, "%s: rc %d (%d %s)", c->label, rc, err.code, err.text);
	if (rc == 0) {
		ck_assert_msg(rp.notify == c->notify, "%s: notify %#x", c->label, rp.notify);
		ck_assert_msg(rp.has_orcpt == (c->orcpt != NULL), "%s: has_orcpt", c->label);
		if (c->orcpt != NULL)
			ck_assert_msg(strcmp(rp.orcpt, c->orcpt) == 0, "%s: orcpt '%s'", c->label,
			    rp.orcpt);
	} else {
		ck_assert_msg(err.code == c->code && strcmp(err.enh, "5.5.4") == 0,
		    "%s: %d %s", c->label, err.code, err.enh);
		ck_assert_msg(c->text == NULL || strstr(err.text, c->text) != NULL,
		    "%s: text '%s' lacks '%s'", c->label, err.text, c->text);
	}
}
END_TEST

START_TEST(test_orcpt_limit)
{
	char in[1200], v[600];
	struct smtp_parse_error err;
	struct smtp_rcpt_params rp;

	/* "rfc822;" (7) + 493 = 500 stored octets: the most that fits. */
	test_fill(v, 'o', 493);
	snprintf(in, sizeof in, "ORCPT=rfc822;%s", v);
	ck_assert_int_eq(smtp_parse_rcpt_params(in, &rp, &err), 0);
	ck_assert_uint_eq(strlen(rp.orcpt), SMTP_ORCPT_MAX);
	test_fill(v, 'o', 494);
	snprintf(in, sizeof in, "ORCPT=rfc822;%s", v);
	ck_assert_int_eq(smtp_parse_rcpt_params(in, &rp, &err), -1);
	ck_assert_int_eq(err.code, 501);
	ck_assert_int_eq(rp.has_orcpt, 0);
}
END_TEST

/* --------------------------------------------------------------- xtext */

static const struct xdec_case {
	const char *label;
	const char *in;
	int rc;
	const char *out;
} xdec_cases[] = {
	{ "plain", "abc", 0, "abc" },
	{ "empty", "", 0, "" },
	{ "plus", "a+2Bb", 0, "a+b" },
	{ "equals", "+3D", 0, "=" },
	{ "letter encoded needlessly", "+41", 0, "A" },
	{ "high byte", "+C3+A9", 0, "\xc3\xa9" },
	{ "all printable edges", "!~", 0, "!~" },
	{ "lowercase hex", "a+2bb", -1, NULL },
	{ "non-hex", "+G1", -1, NULL },
	{ "escape at end", "a+", -1, NULL },
	{ "short escape", "a+2", -1, NULL },
	{ "literal =", "a=b", -1, NULL },
	{ "literal space", "a b", -1, NULL },
	{ "literal DEL", "a\x7f", -1, NULL },
	{ "literal high byte", "\xc3\xa9", -1, NULL },
	{ "encoded NUL", "a+00b", -1, NULL },
};

START_TEST(test_xtext_decode)
{
	const struct xdec_case *c = &xdec_cases[_i];
	char out[64];
	int rc;

	rc = smtp_parse_xtext_decode(c->in, strlen(c->in), out, sizeof out);
	ck_assert_msg(rc == c->rc, "%s: rc %d", c->label, rc);
	if (rc == 0)
		ck_assert_msg(strcmp(out, c->out) == 0, "%s: '%s'", c->label, out);
}
END_TEST

START_TEST(test_xtext_bounds)
{
	char out[8];

	/* inlen bounds the input, not the NUL. */
	ck_assert_int_eq(smtp_parse_xtext_decode("abcXYZ", 3, out, sizeof out), 0);
	ck_assert_str_eq(out, "abc");
	ck_assert_int_eq(smtp_parse_xtext_decode("a+2", 3, out, sizeof out), -1);
	/* Output room: "abcd" needs 5 bytes. */
	ck_assert_int_eq(smtp_parse_xtext_decode("abcd", 4, out, 5), 0);
	ck_assert_int_eq(smtp_parse_xtext_decode("abcd", 4, out, 4), -1);
	ck_assert_int_eq(smtp_parse_xtext_decode("", 0, out, 0), -1);
	/* Encoding: "a+" needs "a+2B" plus NUL. */
	ck_assert_int_eq(smtp_parse_xtext_encode("a+", out, 5), 0);
	ck_assert_str_eq(out, "a+2B");
	ck_assert_int_eq(smtp_parse_xtext_encode("a+", out, 4), -1);
	ck_assert_int_eq(smtp_parse_xtext_encode("", out, 1), 0);
	ck_assert_str_eq(out, "");
}
END_TEST

static const struct xenc_case {
	const char *label;
	const char *in;
	const char *out;
} xenc_cases[] = {
	{ "plain", "user@example.org", "user@example.org" },
	{ "plus and equals", "a+b=c", "a+2Bb+3Dc" },
	{ "space", "a b", "a+20b" },
	{ "control", "a\r\nb", "a+0D+0Ab" },
	{ "UTF-8", "\xc3\xa9", "+C3+A9" },
	{ "DEL", "\x7f", "+7F" },
	{ "specials kept", "!\"#<>~", "!\"#<>~" },
};

START_TEST(test_xtext_roundtrip)
{
	const struct xenc_case *c = &xenc_cases[_i];
	char enc[128], dec[64];

	ck_assert_int_eq(smtp_parse_xtext_encode(c->in, enc, sizeof enc), 0);
	ck_assert_msg(strcmp(enc, c->out) == 0, "%s: encoded '%s'", c->label, enc);
	ck_assert_int_eq(smtp_parse_xtext_decode(enc, strlen(enc), dec, sizeof dec), 0);
	ck_assert_msg(strcmp(dec, c->in) == 0, "%s: round trip '%s'", c->label, dec);
}
END_TEST

START_TEST(test_xtext_all_bytes)
{
	char in[256], enc[800], dec[256];
	int i;

	for (i = 1; i < 256; i++)
		in[i - 1] = (char)i;
	in[255] = '\0';
	ck_assert_int_eq(smtp_parse_xtext_encode(in, enc, sizeof enc), 0);
	for (i = 0; enc[i] != '\0'; i++)
		ck_assert(enc[i] >= 33 && enc[i] <= 126 && enc[i] != '=');
	ck_assert_int_eq(smtp_parse_xtext_decode(enc, strlen(enc), dec, sizeof dec), 0);
	ck_assert_mem_eq(dec, in, 256);
}
END_TEST

/* ---------------------------------------------------------------- BDAT */

static const struct bdat_case {
	const char *label;
	const char *in;
	int rc;
	uint64_t size;
	bool last;
} bdat_cases[] = {
	{ "size", "100", 0, 100, false },
	{ "size LAST", "100 LAST", 0, 100, true },
	{ "last lowercase", "100 last", 0, 100, true },
	{ "zero LAST", "0 LAST", 0, 0, true },
	{ "extra spaces", " 7   LaSt  ", 0, 7, true },
	{ "max uint64", "18446744073709551615", 0, UINT64_MAX, false },
	{ "overflow", "18446744073709551616", -1, 0, false },
	{ "21 digits", "000000000000000000001", -1, 0, false },
	{ "empty", "", -1, 0, false },
	{ "LAST only", "LAST", -1, 0, false },
	{ "trailing word", "100 LAST x", -1, 0, false },
	{ "LASTX", "100 LASTX", -1, 0, false },
	{ "digits then letters", "100x", -1, 0, false },
	{ "negative", "-1", -1, 0, false },
	{ "plus sign", "+1", -1, 0, false },
	{ "two sizes", "1 2", -1, 0, false },
	{ "tab", "1\tLAST", -1, 0, false },
};

START_TEST(test_bdat)
{
	const struct bdat_case *c = &bdat_cases[_i];
	struct smtp_parse_error err;
	uint64_t size = 12345;
	bool last = true;
	int rc;

	memset(&err, 0, sizeof err);
	rc = smtp_parse_bdat(c->in, &size, &last, &err);
	ck_assert_msg(rc == c->rc, "%s: rc %d", c->label, rc);
	if (rc == 0) {
		ck_assert_msg(size == c->size, "%s: size", c->label);
		ck_assert_msg(last == c->last, "%s: last", c->label);
	} else {
		ck_assert_msg(err.code == 501 && strcmp(err.enh, "5.5.4") == 0, "%s: %d",
		    c->label, err.code);
		ck_assert_msg(strstr(err.text, "BDAT") != NULL, "%s: '%s'", c->label, err.text);
	}
}
END_TEST

/* ---------------------------------------------------------------- HELO */

static const struct helo_case {
	const char *label;
	const char *in;
	int rc;
	const char *out;
	const char *text;
} helo_cases[] = {
	{ "domain", "mail.example.org", 0, "mail.example.org", NULL },
	{ "case kept", "MAIL.Example.ORG", 0, "MAIL.Example.ORG", NULL },
	{ "single label", "localhost", 0, "localhost", NULL },
	{ "underscore", "my_host.example", 0, "my_host.example", NULL },
	{ "leading underscore", "_x.example", 0, "_x.example", NULL },
	{ "IPv4 literal", "[192.0.2.1]", 0, "[192.0.2.1]", NULL },
	{ "IPv6 literal", "[IPv6:::1]", 0, "[IPv6:::1]", NULL },
	{ "trailing spaces", "example.org  ", 0, "example.org", NULL },
	{ "leading spaces", "  example.org", 0, "example.org", NULL },
	{ "empty", "", -1, NULL, "requires a domain name" },
	{ "spaces only", "   ", -1, NULL, "requires a domain name" },
	{ "trailing dot", "example.org.", -1, NULL, "dot" },
	{ "leading hyphen", "-x.example", -1, NULL, "hyphen" },
	{ "empty label", "a..example", -1, NULL, "label" },
	{ "two words", "exa mple.org", -1, NULL, "only one name" },
	{ "control char", "ex\x01" "ample", -1, NULL, "control" },
	{ "non-ASCII", "h\xc3\xa9st.example", -1, NULL, "non-ASCII" },
	{ "at sign", "user@example.org", -1, NULL, "unexpected" },
	{ "bad literal", "[1.2.3]", -1, NULL, "IPv4" },
	{ "unclosed literal", "[1.2.3.4", -1, NULL, "literal" },
	{ "literal and more", "[1.2.3.4]x", -1, NULL, NULL },
};

START_TEST(test_helo)
{
	const struct helo_case *c = &helo_cases[_i];
	struct smtp_parse_error err;
	char out[SMTP_DOMAIN_MAX + 1];
	int rc;

	memset(&err, 0, sizeof err);
	rc = smtp_parse_helo(c->in, out, sizeof out, &err);
	ck_assert_msg(rc == c->rc, "%s: rc %d (%s)", c->label, rc, err.text);
	if (rc == 0) {
		ck_assert_msg(strcmp(out, c->out) == 0, "%s: '%s'", c->label, out);
	} else {
		ck_assert_msg(err.code == 501 && strcmp(err.enh, "5.5.4") == 0, "%s: %d",
		    c->label, err.code);
		ck_assert_msg(c->text == NULL || strstr(err.text, c->text) != NULL,
		    "%s: text '%s' lacks '%s'", c->label, err.text, c->text);
		ck_assert_msg(strchr(err.text, '\x01') == NULL, "%s: control echoed", c->label);
	}
}
END_TEST

START_TEST(test_helo_limits)
{
	char in[600], out[SMTP_DOMAIN_MAX + 1], small[8];
	struct smtp_parse_error err;

	test_fill(in, 'h', 63);
	ck_assert_int_eq(smtp_parse_helo(in, out, sizeof out, &err), 0);
	test_fill(in, 'h', 64);
	ck_assert_int_eq(smtp_parse_helo(in, out, sizeof out, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.text, "63"));
	test_make_domain(in, 255);
	ck_assert_int_eq(smtp_parse_helo(in, out, sizeof out, &err), 0);
	ck_assert_uint_eq(strlen(out), 255);
	test_make_domain(in, 256);
	ck_assert_int_eq(smtp_parse_helo(in, out, sizeof out, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.text, "255"));
	/* The caller's buffer is a bound too: never truncated silently. */
	ck_assert_int_eq(smtp_parse_helo("a.example", small, sizeof small, &err), -1);
	ck_assert_int_eq(smtp_parse_helo("a.examp", small, sizeof small, &err), 0);
	ck_assert_str_eq(small, "a.examp");
}
END_TEST

/* --------------------------------------------------- end to end: lines */

/* A whole MAIL line through command, path and parameter parsing. */
START_TEST(test_mail_line)
{
	static const char line[] = "mail FROM: <Sender@Example.ORG> size=1200 BODY=8BITMIME";
	struct smtp_parse_error err;
	struct smtp_mail_params mp;
	struct smtp_path p;
	enum smtp_cmd cmd;
	const char *arg, *rest;

	ck_assert_int_eq(smtp_parse_command(line, strlen(line), &cmd, &arg, &err), 0);
	ck_assert_int_eq(cmd, SMTP_CMD_MAIL);
	ck_assert_int_eq(smtp_parse_path(arg, false, true, false, &p, &rest, &err), 0);
	ck_assert_str_eq(p.addr, "Sender@example.org");
	ck_assert_int_eq(smtp_parse_mail_params(rest, &mp, &err), 0);
	ck_assert(mp.has_size && mp.size == 1200);
	ck_assert_int_eq(mp.body, QUEUE_BODY_8BITMIME);
}
END_TEST

static Suite *smtp_parse_suite(void)
{
	Suite *s = suite_create("smtp_parse");
	TCase *tc;

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
	tc = tcase_create("command");
	tcase_add_loop_test(tc, test_command, 0, N(cmd_cases));
	tcase_add_test(tc, test_command_line_length);
	tcase_add_test(tc, test_cmd_name);
	tcase_add_test(tc, test_mail_line);
	suite_add_tcase(s, tc);

	tc = tcase_create("path");
	tcase_add_loop_test(tc, test_path, 0, N(path_cases));
	tcase_add_loop_test(tc, test_path_limits, 0, N(limit_cases));
	suite_add_tcase(s, tc);

	tc = tcase_create("params");
	tcase_add_loop_test(tc, test_mail_params, 0, N(mail_cases));
	tcase_add_test(tc, test_envid_limit);
	tcase_add_loop_test(tc, test_rcpt_params, 0, N(rcpt_cases));
	tcase_add_test(tc, test_orcpt_limit);
	suite_add_tcase(s, tc);

	tc = tcase_create("xtext");
	tcase_add_loop_test(tc, test_xtext_decode, 0, N(xdec_cases));
	tcase_add_test(tc, test_xtext_bounds);
	tcase_add_loop_test(tc, test_xtext_roundtrip, 0, N(xenc_cases));
	tcase_add_test(tc, test_xtext_all_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("bdat_helo");
	tcase_add_loop_test(tc, test_bdat, 0, N(bdat_cases));
	tcase_add_loop_test(tc, test_helo, 0, N(helo_cases));
	tcase_add_test(tc, test_helo_limits);
	suite_add_tcase(s, tc);
#undef N
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(smtp_parse_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
