/*
 * fuzz_smtp_parse: libFuzzer target for the SMTP command-line parser
 * (relay/smtp_parse.c), fed the way the session feeds it: one command
 * line without its CRLF, then the argument through the parser its verb
 * selects (paths and ESMTP parameters, BDAT, HELO/EHLO), with and without
 * SMTPUTF8. xtext is also decoded and round-tripped through the encoder.
 *
 * Entry points: LLVMFuzzerTestOneInput.
 * OWNERSHIP: one heap copy of the input per run, freed before returning,
 * sized exactly so AddressSanitizer sees any read past its end.
 * THREADS: libFuzzer's one thread.
 * ERRORS: a violated invariant aborts, which libFuzzer reports as a crash.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/smtp_parse.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * What the session and policy rely on in an accepted path: bounded
 * fields, addr is exactly local@domain, no control characters (they would
 * forge log fields), non-ASCII only with SMTPUTF8 and then valid UTF-8.
 */
static void fuzz_path(const struct smtp_path *path, bool utf8)
{
	size_t llen = strlen(path->local), dlen = strlen(path->domain);

	if (strlen(path->addr) > SMTP_PATH_MAX || llen > SMTP_LOCAL_MAX + 2 ||
	    dlen > SMTP_DOMAIN_MAX)
		abort();
	if (fuzz_has_ctl(path->addr) || !fuzz_utf8_valid(path->addr, strlen(path->addr)))
		abort();
	if (!utf8 && path->is_utf8)
		abort();
	for (const char *c = path->addr; *c != '\0'; c++)
		if ((unsigned char)*c >= 0x80 && !path->is_utf8)
			abort();
	if (path->is_null) {
		if (path->addr[0] != '\0')
			abort();
	} else if (dlen > 0) {
		if (strncmp(path->addr, path->local, llen) != 0 || path->addr[llen] != '@' ||
		    strcmp(path->addr + llen + 1, path->domain) != 0)
			abort();
	}
}

/* The argument after the verb, parsed as the session would for cmd. */
static void fuzz_arg(enum smtp_cmd cmd, const char *arg, bool utf8)
{
	struct smtp_parse_error err;
	struct smtp_path path;
	struct smtp_mail_params mp;
	struct smtp_rcpt_params rp;
	const char *rest;
	char helo[SMTP_DOMAIN_MAX + 1];
	uint64_t size;
	bool last;

	switch (cmd) {
	case SMTP_CMD_MAIL:
	case SMTP_CMD_RCPT:
		if (smtp_parse_path(arg, cmd == SMTP_CMD_RCPT, cmd == SMTP_CMD_MAIL, utf8,
		        &path, &rest, &err) != 0)
			return;
		fuzz_path(&path, utf8);
		if (cmd == SMTP_CMD_MAIL) {
			if (smtp_parse_mail_params(rest, &mp, &err) == 0 &&
			    strlen(mp.envid) > SMTP_ENVID_MAX)
				abort();
		} else if (smtp_parse_rcpt_params(rest, &rp, &err) == 0 &&
		    strlen(rp.orcpt) > SMTP_ORCPT_MAX) {
			abort();
		}
		break;
	case SMTP_CMD_BDAT:
		(void)smtp_parse_bdat(arg, &size, &last, &err);
		break;
	case SMTP_CMD_HELO:
	case SMTP_CMD_EHLO:
		if (smtp_parse_helo(arg, helo, sizeof helo, &err) == 0 &&
		    strlen(helo) >= sizeof helo)
			abort();
		break;
	default:
		break;
	}
}

/* decode(encode(decode(x))) must give decode(x) back. */
static void fuzz_xtext(const char *s, size_t len)
{
	char dec[SMTP_ORCPT_MAX + 1], enc[3 * SMTP_ORCPT_MAX + 1], again[SMTP_ORCPT_MAX + 1];

	if (smtp_parse_xtext_decode(s, len, dec, sizeof dec) != 0)
		return;
	if (smtp_parse_xtext_encode(dec, enc, sizeof enc) != 0)
		return;
	if (smtp_parse_xtext_decode(enc, strlen(enc), again, sizeof again) != 0 ||
	    strcmp(dec, again) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_parse_error err;
	enum smtp_cmd cmd = SMTP_CMD_UNKNOWN;
	const char *arg = NULL;
	char *line;

	if (size > 4 * SMTP_TEXTLINE_MAX)
		return 0;
	line = malloc(size + 1);
	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	if (smtp_parse_command(line, size, &cmd, &arg, &err) == 0 && arg != NULL) {
		fuzz_arg(cmd, arg, false);
		fuzz_arg(cmd, arg, true);
	}
	(void)smtp_cmd_name(cmd);
	fuzz_xtext(line, size);
	free(line);
	return 0;
}
