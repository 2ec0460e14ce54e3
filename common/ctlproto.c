/*
 * ctlproto: the line format of the control socket (format in ctlproto.h).
 * Both ends link this one file, so the daemon's replies and the CLI's
 * reading of them cannot drift apart; the transport (libuv on the daemon
 * side, blocking sockets in the CLI) stays with each end.
 *
 * Entry points: ctlproto_code_is_valid, ctlproto_request_format,
 * ctlproto_request_parse, ctlproto_reply_format, ctlproto_reply_parse,
 * ctlproto_exec_encode/decode/free.
 * OWNERSHIP: every argument is borrowed; the parse functions return
 * pointers into the caller's line.
 * THREADS: any; no state.
 * ERRORS: -ENAMETOOLONG (a request does not fit), -EINVAL (a request
 * that is not printable ASCII), -EBADMSG (a reply that is not one of
 * the two forms).
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "common/buf.h"
#include "common/ctlproto.h"
#include "common/xmalloc.h"

bool ctlproto_code_is_valid(int code)
{
	/* Anything else in a reply is treated as an internal error. */
	switch (code) {
	case EX_USAGE:
	case EX_DATAERR:
	case EX_NOINPUT:
	case EX_UNAVAILABLE:
	case EX_SOFTWARE:
	case EX_TEMPFAIL:
	case EX_NOPERM:
		return true;
	default:
		return false;
	}
}

int ctlproto_request_format(char *out, size_t outlen, const char *verb, const char *arg)
{
	bool has_arg = arg != NULL && arg[0] != '\0';
	int rc;

	rc = snprintf(out, outlen, "%s%s%s\n", verb, has_arg ? " " : "", has_arg ? arg : "");
	if (rc < 0 || (size_t)rc >= outlen || (size_t)rc > CTLPROTO_LINE_MAX)
		return -ENAMETOOLONG;
	return rc;
}

int ctlproto_request_parse(char *line, size_t len, const char **verb, const char **arg)
{
	char *sp;

	if (len > 0 && line[len - 1] == '\r')
		line[--len] = '\0';
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if (ch < 0x20 || ch >= 0x7f)
			return -EINVAL;
	}
	*arg = NULL;
	sp = strchr(line, ' ');
	if (sp != NULL) {
		*sp = '\0';
		*arg = sp + 1;
	}
	*verb = line;
	return 0;
}

size_t ctlproto_reply_format(char *out, size_t outlen, int code, const char *text)
{
	size_t n;
	int rc;

	if (code == 0)
		rc = snprintf(out, outlen, "ok %s\n", text);
	else
		rc = snprintf(out, outlen, "error %d %s\n", code, text);
	n = rc < 0 ? 0 : (size_t)rc;
	if (n >= outlen)
		n = outlen - 1;
	if (n == 0)
		return 0;
	/* The prefix has no CR or LF, so this cleans the text only. */
	for (size_t i = 0; i < n - 1; i++)
		if (out[i] == '\n' || out[i] == '\r')
			out[i] = ' ';
	/* A cut reply still ends its line. */
	out[n - 1] = '\n';
	return n;
}

int ctlproto_reply_parse(const char *line, int *code, const char **text)
{
	char *end;
	long v;

	if (strncmp(line, "ok ", 3) == 0) {
		*code = 0;
		*text = line + 3;
		return 0;
	}
	if (strncmp(line, "error ", 6) != 0)
		return -EBADMSG;
	errno = 0;
	v = strtol(line + 6, &end, 10);
	if (errno != 0 || *end != ' ' || v < 0 || v > 255 || !ctlproto_code_is_valid((int)v))
		return -EBADMSG;
	*code = (int)v;
	*text = end + 1;
	return 0;
}

/* ------------------------------------------------------------- exec */

static void ctlproto_put_u32(struct buf *out, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
		(unsigned char)(v >> 8), (unsigned char)v };

	buf_append(out, b, sizeof b);
}

void ctlproto_exec_encode(struct buf *out, int argc, char *const *argv,
    const void *in, size_t inlen)
{
	ctlproto_put_u32(out, (uint32_t)argc);
	for (int i = 0; i < argc; i++) {
		size_t n = strlen(argv[i]);

		ctlproto_put_u32(out, (uint32_t)n);
		buf_append(out, argv[i], n);
	}
	ctlproto_put_u32(out, (uint32_t)inlen);
	if (inlen > 0)
		buf_append(out, in, inlen);
}

static int ctlproto_get_u32(const unsigned char **p, size_t *left, uint32_t *v)
{
	if (*left < 4)
		return -EBADMSG;
	*v = (uint32_t)(*p)[0] << 24 | (uint32_t)(*p)[1] << 16 | (uint32_t)(*p)[2] << 8 |
	    (uint32_t)(*p)[3];
	*p += 4;
	*left -= 4;
	return 0;
}

void ctlproto_exec_free(int argc, char **argv)
{
	if (argv == NULL)
		return;
	for (int i = 0; i < argc; i++)
		free(argv[i]);
	free(argv);
}

int ctlproto_exec_decode(const void *data, size_t len, int *argc, char ***argv,
    const void **in, size_t *inlen)
{
	const unsigned char *p = data;
	size_t left = len;
	uint32_t n, slen;
	char **v;
	int made = 0;

	if (ctlproto_get_u32(&p, &left, &n) != 0 || n == 0 || n > CTLPROTO_EXEC_ARGS_MAX)
		return -EBADMSG;
	v = xcalloc(n + 1, sizeof *v);
	for (; made < (int)n; made++) {
		if (ctlproto_get_u32(&p, &left, &slen) != 0 || slen > left ||
		    memchr(p, '\0', slen) != NULL)
			goto bad;
		v[made] = xstrndup((const char *)p, slen);
		p += slen;
		left -= slen;
	}
	if (ctlproto_get_u32(&p, &left, &slen) != 0 || slen != left)
		goto bad;
	*argc = (int)n;
	*argv = v;
	*in = p;
	*inlen = slen;
	return 0;
bad:
	ctlproto_exec_free(made, v);
	return -EBADMSG;
}
