/*
 * ctlproto: the line format of the control socket (format in ctlproto.h).
 * Both ends link this one file, so the daemon's replies and the CLI's
 * reading of them cannot drift apart; the transport (libuv on the daemon
 * side, blocking sockets in the CLI) stays with each end.
 *
 * Entry points: ctlproto_code_is_valid, ctlproto_request_format,
 * ctlproto_request_parse, ctlproto_reply_format, ctlproto_reply_parse,
 * ctlproto_exec_encode/decode/head/free, ctlproto_exec_words,
 * ctlproto_exec_is_import, and the refusal gate ctlproto_gate_* (pure
 * bookkeeping of how a non-operator's refusals are answered and recorded;
 * the daemon does the I/O).
 * OWNERSHIP: every argument is borrowed; the parse functions return
 * pointers into the caller's line.
 * THREADS: any; no state but the caller's struct ctlproto_gate (one
 * thread at a time).
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

/*
 * The argument part of a payload of len bytes: *argv (fresh) and *used,
 * the bytes it took. -EAGAIN when len ends inside it (more may come),
 * -EBADMSG when it cannot be one.
 */
static int ctlproto_exec_args(const unsigned char *p, size_t len, int *argc, char ***argv,
    size_t *used)
{
	size_t left = len;
	uint32_t n, slen;
	char **v;
	int made = 0, rc = -EAGAIN;

	if (ctlproto_get_u32(&p, &left, &n) != 0)
		return -EAGAIN;
	if (n == 0 || n > CTLPROTO_EXEC_ARGS_MAX)
		return -EBADMSG;
	v = xcalloc(n + 1, sizeof *v);
	for (; made < (int)n; made++) {
		if (ctlproto_get_u32(&p, &left, &slen) != 0)
			goto fail;
		/* No argument may be longer than an ordinary request. */
		if (slen > CTLPROTO_REQUEST_MAX) {
			rc = -EBADMSG;
			goto fail;
		}
		if (slen > left)
			goto fail;
		if (memchr(p, '\0', slen) != NULL) {
			rc = -EBADMSG;
			goto fail;
		}
		v[made] = xstrndup((const char *)p, slen);
		p += slen;
		left -= slen;
	}
	*argc = (int)n;
	*argv = v;
	*used = len - left;
	return 0;
fail:
	ctlproto_exec_free(made, v);
	return rc;
}

int ctlproto_exec_head(const void *data, size_t len, int *argc, char ***argv)
{
	size_t used;

	return ctlproto_exec_args(data, len, argc, argv, &used);
}

int ctlproto_exec_decode(const void *data, size_t len, int *argc, char ***argv,
    const void **in, size_t *inlen)
{
	const unsigned char *p = data;
	size_t left, used;
	uint32_t slen;
	char **v;
	int n;

	if (ctlproto_exec_args(p, len, &n, &v, &used) != 0)
		return -EBADMSG;
	p += used;
	left = len - used;
	if (ctlproto_get_u32(&p, &left, &slen) != 0 || slen != left) {
		ctlproto_exec_free(n, v);
		return -EBADMSG;
	}
	*argc = n;
	*argv = v;
	*in = p;
	*inlen = slen;
	return 0;
}

/* The global options of govrelayctl's engine, which may stand anywhere. */
static bool ctlproto_is_global_opt(const char *a)
{
	return strcmp(a, "--json") == 0 || strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

size_t ctlproto_exec_words(int argc, char *const *argv, const char **w, size_t max)
{
	size_t n = 0;

	for (int i = 0; i < argc && n < max; i++)
		if (!ctlproto_is_global_opt(argv[i]))
			w[n++] = argv[i];
	return n;
}

bool ctlproto_exec_is_import(int argc, char *const *argv)
{
	const char *w[2];

	return ctlproto_exec_words(argc, argv, w, 2) == 2 && strcmp(w[0], "mailbox") == 0 &&
	    strcmp(w[1], "import") == 0;
}

/* ------------------------------------------------------------- gate */

void ctlproto_gate_init(struct ctlproto_gate *g, int64_t window_ms, uint32_t record_max,
    uint32_t reply_max, uint32_t global_max)
{
	memset(g, 0, sizeof *g);
	g->window_ms = window_ms > 0 ? window_ms : 1;
	g->record_max = record_max;
	g->reply_max = reply_max;
	g->global_max = global_max > 0 ? global_max : 1;
}

/* The durable-record budget of the current window, rolled at now. */
static void ctlproto_gate_roll(struct ctlproto_gate *g, int64_t now)
{
	if (now - g->global_start >= g->window_ms || now < g->global_start) {
		g->global_start = now;
		g->global_used = 0;
	}
}

static bool ctlproto_gate_slot_ended(const struct ctlproto_gate *g,
    const struct ctlproto_gate_slot *sl, int64_t now)
{
	return now - sl->start >= g->window_ms || now < sl->start;
}

/* A slot for uid: its own, a free one, or the oldest (its count kept aside). */
static struct ctlproto_gate_slot *ctlproto_gate_slot(struct ctlproto_gate *g, uint32_t uid)
{
	struct ctlproto_gate_slot *free_sl = NULL, *old = NULL;

	for (size_t i = 0; i < CTLPROTO_GATE_SLOTS; i++) {
		struct ctlproto_gate_slot *sl = &g->slot[i];

		if (sl->used && sl->uid == uid)
			return sl;
		if (!sl->used && free_sl == NULL)
			free_sl = sl;
		if (sl->used && (old == NULL || sl->start < old->start))
			old = sl;
	}
	if (free_sl != NULL)
		return free_sl;
	/* Every slot busy: the oldest one's count is reported for all uids. */
	if (old->pending > 0) {
		if (g->overflow == 0 || old->since < g->overflow_since)
			g->overflow_since = old->since;
		g->overflow += old->pending;
	}
	old->used = false;
	return old;
}

enum ctlproto_gate_action ctlproto_gate_refuse(struct ctlproto_gate *g, uint32_t uid,
    int64_t now)
{
	struct ctlproto_gate_slot *sl = ctlproto_gate_slot(g, uid);

	ctlproto_gate_roll(g, now);
	/* A window that ended with nothing left to report starts afresh. */
	if (!sl->used || (ctlproto_gate_slot_ended(g, sl, now) && sl->pending == 0)) {
		memset(sl, 0, sizeof *sl);
		sl->used = true;
		sl->uid = uid;
		sl->start = now;
	}
	sl->seen++;
	if (sl->recorded < g->record_max && g->global_used < g->global_max &&
	    !ctlproto_gate_slot_ended(g, sl, now)) {
		sl->recorded++;
		g->global_used++;
		return CTLPROTO_GATE_RECORD;
	}
	if (sl->pending++ == 0)
		sl->since = now;
	return sl->seen <= g->reply_max ? CTLPROTO_GATE_COUNT : CTLPROTO_GATE_DROP;
}

bool ctlproto_gate_due(struct ctlproto_gate *g, int64_t now, struct ctlproto_gate_flush *out)
{
	ctlproto_gate_roll(g, now);
	if (g->global_used >= g->global_max)
		return false;
	for (size_t i = 0; i < CTLPROTO_GATE_SLOTS; i++) {
		struct ctlproto_gate_slot *sl = &g->slot[i];

		if (!sl->used || sl->pending == 0 || !ctlproto_gate_slot_ended(g, sl, now))
			continue;
		out->uid = sl->uid;
		out->any_uid = false;
		out->count = sl->pending;
		out->since = sl->since;
		/* The slot is spent: the uid's next refusal opens a new window. */
		sl->used = false;
		g->global_used++;
		return true;
	}
	if (g->overflow > 0) {
		out->uid = 0;
		out->any_uid = true;
		out->count = g->overflow;
		out->since = g->overflow_since;
		g->overflow = 0;
		g->global_used++;
		return true;
	}
	return false;
}

int64_t ctlproto_gate_next_due(const struct ctlproto_gate *g)
{
	int64_t due = -1;

	for (size_t i = 0; i < CTLPROTO_GATE_SLOTS; i++) {
		const struct ctlproto_gate_slot *sl = &g->slot[i];

		if (sl->used && sl->pending > 0 && (due < 0 || sl->start + g->window_ms < due))
			due = sl->start + g->window_ms;
	}
	if (g->overflow > 0 && (due < 0 || g->global_start < due))
		due = g->global_start;
	/* Nothing more may be written before the budget's window rolls. */
	if (due >= 0 && g->global_used >= g->global_max && due < g->global_start + g->window_ms)
		due = g->global_start + g->window_ms;
	return due;
}
