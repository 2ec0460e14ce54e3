/*
 * fuzz_mime: libFuzzer target for the streaming MIME walker
 * (policy/mime.c) and its decoders (policy/mime_words.c,
 * policy/mime_text.c). The first input byte picks the limits and how the
 * rest (the message) is cut into pieces; the message is walked twice,
 * whole and in those pieces, and both walks must give the same events
 * (a hash of every header, begin, content byte and end) and the same
 * result. Every header value also goes through mime_decode_words,
 * mime_address_text and mime_param, and every leaf's content through
 * mime_text with the part's charset.
 *
 * Invariants (abort on any): begins and ends nest, each begin has exactly
 * one end, at mime_finish too; no depth beyond max_depth and no more
 * parts than max_parts; content only for the open leaf; headers only for
 * a part not yet begun; nothing but ends after an error; part fields
 * well-formed (type lowercase "type/subtype", file name strict UTF-8
 * without controls); decoders write bounded, NUL-terminated, valid UTF-8.
 *
 * Entry points: LLVMFuzzerTestOneInput.
 * OWNERSHIP: one exact-size heap copy of the input and the walkers, freed
 * before returning.
 * THREADS: libFuzzer's one thread.
 * ERRORS: a violated invariant aborts, which libFuzzer reports as a crash.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/mime.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_STACK 64

struct fz {
	struct mime_limits lim;
	uint64_t hash;
	unsigned open[FZ_STACK];   /* indices of begun, not ended parts */
	unsigned nopen;
	unsigned begun;            /* index of the next part expected to begin, at most */
	bool failed;               /* the walker reported an error */
	struct mime_text *text;    /* the open leaf's converter */
};

static void fz_hash(struct fz *f, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		f->hash = (f->hash ^ b[i]) * 0x100000001b3ULL;
}

static void fz_utf8_out(void *arg, const char *utf8, size_t len)
{
	(void)arg;
	if (!fuzz_utf8_valid(utf8, len))
		abort();
}

static void fz_check_decoded(const char *out, size_t n, size_t cap)
{
	if (n >= cap || out[n] != '\0' || strlen(out) != n || !fuzz_utf8_valid(out, n) ||
	    fuzz_has_ctl(out))
		abort();
}

/* A piece of address text: bounded, valid UTF-8 without controls. */
static void fz_address_piece(void *arg, const char *utf8, size_t len)
{
	(void)arg;
	if (len == 0 || len >= 2 * MIME_ADDRESS_TEXT_MAX || utf8[len] != '\0' ||
	    !fuzz_utf8_valid(utf8, len) || fuzz_has_ctl(utf8))
		abort();
}

static void fz_header(void *arg, const struct mime_part *p, const char *name, const char *value,
    size_t len)
{
	struct fz *f = arg;
	char out[256];
	size_t n;
	int rc;

	if (f->failed || name[0] == '\0' || p->depth > f->lim.max_depth ||
	    (f->nopen > 0 && f->open[f->nopen - 1] == p->index))
		abort();
	fz_hash(f, "H", 1);
	fz_hash(f, &p->index, sizeof p->index);
	fz_hash(f, name, strlen(name));
	fz_hash(f, value, len);
	n = mime_decode_words(value, len, out, sizeof out);
	fz_check_decoded(out, n, sizeof out);
	mime_address_text(value, len, fz_address_piece, NULL);
	rc = mime_param(value, len, "name", out, sizeof out);
	if (rc < MIME_E_AMBIGUOUS || rc > 1 || (rc == 1 && (!fuzz_utf8_valid(out, strlen(out)) ||
	    fuzz_has_ctl(out))))
		abort();
}

static void fz_begin(void *arg, const struct mime_part *p)
{
	struct fz *f = arg;
	const char *slash = strchr(p->type, '/');

	if (f->failed || f->nopen >= FZ_STACK || p->depth > f->lim.max_depth ||
	    p->index >= f->lim.max_parts || p->depth != f->nopen ||
	    (f->nopen > 0 && p->parent != f->open[f->nopen - 1]) || slash == NULL ||
	    slash == p->type || slash[1] == '\0')
		abort();
	for (const char *c = p->type; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			abort();
	if (p->filename != NULL &&
	    (!fuzz_utf8_valid(p->filename, strlen(p->filename)) || fuzz_has_ctl(p->filename)))
		abort();
	if (p->multipart && p->message)
		abort();
	f->open[f->nopen++] = p->index;
	fz_hash(f, "B", 1);
	fz_hash(f, &p->index, sizeof p->index);
	fz_hash(f, p->type, strlen(p->type));
	fz_hash(f, p->charset, strlen(p->charset));
	if (p->filename != NULL)
		fz_hash(f, p->filename, strlen(p->filename));
	if (!p->multipart && !p->message && f->text == NULL)
		f->text = mime_text_new(p->charset);
}

static void fz_data(void *arg, const struct mime_part *p, const char *d, size_t len)
{
	struct fz *f = arg;

	if (f->failed || f->nopen == 0 || f->open[f->nopen - 1] != p->index || p->multipart ||
	    p->message || len == 0)
		abort();
	fz_hash(f, d, len);
	if (f->text != NULL)
		mime_text_feed(f->text, d, len, fz_utf8_out, NULL);
}

static void fz_end(void *arg, const struct mime_part *p)
{
	struct fz *f = arg;

	if (f->nopen == 0 || f->open[f->nopen - 1] != p->index)
		abort();
	f->nopen--;
	fz_hash(f, "E", 1);
	fz_hash(f, &p->index, sizeof p->index);
	if (!p->multipart && !p->message && f->text != NULL) {
		mime_text_finish(f->text, fz_utf8_out, NULL);
		mime_text_free(f->text);
		f->text = NULL;
	}
}

/* A multipart's preamble or epilogue: hashed like content (pieces may be cut anywhere). */
static void fz_outside(void *arg, const struct mime_part *p, const char *d, size_t len)
{
	struct fz *f = arg;

	if (f->failed || f->nopen == 0 || f->open[f->nopen - 1] != p->index || !p->multipart ||
	    len == 0)
		abort();
	fz_hash(f, d, len);
}

static const struct mime_callbacks fz_cb = { fz_header, fz_begin, fz_data, fz_end, fz_outside };

/* One walk in pieces of step bytes (0: whole); returns its result and hash. */
static int fz_walk(const char *msg, size_t len, const struct mime_limits *lim, size_t step,
    uint64_t *hash)
{
	struct fz f;
	struct mime_walker *w;
	int rc = 0;

	memset(&f, 0, sizeof f);
	f.lim = *lim;
	f.hash = 0xcbf29ce484222325ULL;
	w = mime_new(lim, &fz_cb, &f);
	for (size_t i = 0; i < len && rc == 0; ) {
		size_t n = step == 0 || len - i < step ? len - i : step;

		rc = mime_feed(w, msg + i, n);
		if (rc != 0)
			f.failed = true;
		i += n;
	}
	/* The end of the message can still fail (a last field completes there). */
	if (rc == 0)
		rc = mime_finish(w);
	else if (mime_finish(w) != rc)
		abort();
	if (mime_finish(w) != rc || mime_feed(w, "x\n", 2) != rc)
		abort();
	if (rc < MIME_E_AMBIGUOUS || rc > 0 || f.nopen != 0 ||
	    mime_part_count(w) > lim->max_parts)
		abort();
	mime_free(w);
	mime_text_free(f.text);
	*hash = f.hash ^ (uint64_t)(unsigned)rc;
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t steps[8] = { 1, 2, 3, 7, 64, 1000, 4095, 4097 };
	struct mime_limits lim;
	uint64_t h1, h2;
	char *msg;

	if (size < 1 || size > 256 * 1024)
		return 0;
	lim.max_depth = 1 + (data[0] & 7);
	lim.max_parts = 4 + (data[0] >> 3 & 3) * 20;
	lim.max_header_bytes = (data[0] & 0x20) ? 300 : 4096;
	msg = malloc(size);
	if (msg == NULL)
		return 0;
	memcpy(msg, data + 1, size - 1);
	msg[size - 1] = '\0';
	if (fz_walk(msg, size - 1, &lim, 0, &h1) != fz_walk(msg, size - 1, &lim,
	    steps[data[0] >> 5 & 7], &h2) || h1 != h2)
		abort();
	free(msg);
	return 0;
}
