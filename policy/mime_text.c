/*
 * mime_text: the streaming charset converter of the MIME module
 * (policy/mime.h): a text part's bytes, in its declared charset, to UTF-8
 * through iconv, in pieces of any size, so the classification finder and
 * the DLP matcher read one encoding whatever the sender's client wrote.
 *
 * Charsets: any name glibc's iconv knows. "" (no charset parameter),
 * names iconv does not know and US-ASCII (which old Vietnamese clients
 * put on 8-bit text) are read as UTF-8 while the bytes are valid UTF-8;
 * from the first byte that is not, the rest is read as Windows-1258, the
 * Vietnamese legacy charset of those clients (glibc knows it as
 * "WINDOWS-1258" and "CP1258"; TCVN-5712 and VISCII are there too under
 * their own names). VNI, the other Vietnamese legacy encoding, is a font
 * encoding with no charset name and no iconv codec: it cannot be read
 * here and comes out as the Windows-1258 reading of its bytes.
 *
 * glibc's CP1258 converter composes a base letter with the combining
 * tone mark that follows it (A + U+0301 -> U+00C1), so it holds the last
 * letter back until it sees the next byte: the held letter is flushed
 * (iconv with a NULL input) at mime_text_finish and before every U+FFFD
 * this file writes, so nothing comes out of order or is lost.
 *
 * A byte that does not convert (EILSEQ) becomes U+FFFD and is skipped;
 * an incomplete sequence at the end of a piece waits for the next piece,
 * and at the end of the text becomes U+FFFD.
 *
 * Entry points: mime_text_new/free/feed/finish; mime__utf8_seq,
 * mime__charset_ok, mime__to_utf8, mime__put (mime_int.h).
 * OWNERSHIP: the caller owns a mime_text; the UTF-8 handed to out is
 * borrowed for the call.
 * THREADS: one thread at a time per converter; no global state (iconv
 * descriptors are per converter).
 * ERRORS: none: what does not convert is U+FFFD.
 */
#include "config.h"

#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/xmalloc.h"
#include "policy/mime.h"
#include "policy/mime_int.h"

#define MIME_TEXT_OUT 1024   /* UTF-8 gathered before one out call */
#define MIME_TEXT_PEND 16    /* longest incomplete sequence kept between pieces */

typedef void mime_text_out_fn(void *arg, const char *utf8, size_t len);

struct mime_text {
	iconv_t cd;               /* (iconv_t)-1 while reading UTF-8 ourselves */
	bool autodetect;          /* "" / unknown: UTF-8 until the first invalid byte */
	bool utf8;                /* declared UTF-8: read here, an invalid byte is U+FFFD */
	unsigned char pend[MIME_TEXT_PEND];
	size_t npend;
	char out[MIME_TEXT_OUT];
	size_t nout;
	mime_text_out_fn *outfn;  /* the current feed's callback */
	void *arg;
};

static const char mime_text_fffd[] = "\xef\xbf\xbd";

int mime__utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0], need, min, cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1; min = 0x80; cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2; min = 0x800; cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3; min = 0x10000; cp = c & 0x07;
	} else {
		return -1;
	}
	for (unsigned i = 1; i <= need; i++) {
		if (i >= n) {
			/* Incomplete: valid so far only if the prefix can still be a
			 * minimal, non-surrogate, in-range code point. */
			if (i == 2 && ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) ||
			    (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f)))
				return -1;
			return 0;
		}
		if ((p[i] & 0xc0) != 0x80)
			return -1;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return -1;
	return (int)need + 1;
}

bool mime__utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len; ) {
		int n = mime__utf8_seq(p + i, len - i);

		if (n <= 0)
			return false;
		i += (size_t)n;
	}
	return true;
}

bool mime__charset_ok(const char *cs)
{
	size_t n = strlen(cs);

	if (n == 0 || n > 40)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = cs[i];

		/* No '/', so "//TRANSLIT" and the like cannot be smuggled in. */
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    strchr(".:_+-()", c) != NULL))
			return false;
	}
	return true;
}

/* US-ASCII labels: 8-bit bytes under them are a mislabel, read as "". */
static bool mime_text_is_ascii(const char *cs)
{
	return strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0 ||
	    strcasecmp(cs, "ansi_x3.4-1968") == 0 || strcasecmp(cs, "us") == 0;
}

struct mime_text *mime_text_new(const char *charset)
{
	struct mime_text *t = xcalloc(1, sizeof *t);

	t->cd = (iconv_t)-1;
	/*
	 * Declared UTF-8 needs no converter, only a check: iconv's own pass
	 * over it and the check of what it wrote were a third of the content
	 * check's instructions on plain mail.
	 */
	t->utf8 = charset != NULL && (strcasecmp(charset, "utf-8") == 0 ||
	    strcasecmp(charset, "utf8") == 0);
	if (t->utf8)
		return t;
	if (charset != NULL && mime__charset_ok(charset) && !mime_text_is_ascii(charset))
		t->cd = iconv_open("UTF-8", charset);
	t->autodetect = t->cd == (iconv_t)-1;
	return t;
}

void mime_text_free(struct mime_text *t)
{
	if (t == NULL)
		return;
	if (t->cd != (iconv_t)-1)
		iconv_close(t->cd);
	free(t);
}

/*
 * Hands the gathered UTF-8 on. glibc's converters do not all write strict
 * UTF-8 (its UTF-8 decoder passes F4 90 80 80, above U+10FFFF, through),
 * so what they wrote is checked here: a byte outside a valid sequence is
 * U+FFFD, as the header promises.
 */
static void mime_text_flush(struct mime_text *t)
{
	const unsigned char *p = (const unsigned char *)t->out;
	size_t i = 0, start = 0;

	while (i < t->nout) {
		int n = mime__utf8_seq(p + i, t->nout - i);

		if (n > 0) {
			i += (size_t)n;
			continue;
		}
		if (i > start)
			t->outfn(t->arg, t->out + start, i - start);
		t->outfn(t->arg, mime_text_fffd, 3);
		start = ++i;
	}
	if (i > start)
		t->outfn(t->arg, t->out + start, i - start);
	t->nout = 0;
}

/* Whole sequences only: out never gets half a character in one call. */
static void mime_text_put(struct mime_text *t, const char *s, size_t len)
{
	if (t->nout + len > sizeof t->out)
		mime_text_flush(t);
	if (len > sizeof t->out) {
		t->outfn(t->arg, s, len);
		return;
	}
	memcpy(t->out + t->nout, s, len);
	t->nout += len;
}

/* Writes what the converter holds back (CP1258's last letter) to out. */
static void mime_text_drain(struct mime_text *t)
{
	for (;;) {
		char *op = t->out + t->nout;
		size_t ol = sizeof t->out - t->nout;
		size_t r = iconv(t->cd, NULL, NULL, &op, &ol);

		t->nout = (size_t)(op - t->out);
		if (r != (size_t)-1 || errno != E2BIG)
			return;
		mime_text_flush(t);
	}
}

static void mime_text_bad(struct mime_text *t)
{
	if (t->cd != (iconv_t)-1)
		mime_text_drain(t);
	mime_text_put(t, mime_text_fffd, 3);
}

/*
 * Converts *ip (*il bytes) through iconv; an invalid byte is U+FFFD and
 * skipped. Returns 0 when all input converted, EINVAL when what is left
 * is an incomplete sequence (at *ip).
 */
static int mime_text_conv(struct mime_text *t, char **ip, size_t *il)
{
	while (*il > 0) {
		char *op = t->out + t->nout;
		size_t ol = sizeof t->out - t->nout;
		size_t r = iconv(t->cd, ip, il, &op, &ol);
		int e = errno;

		t->nout = (size_t)(op - t->out);
		if (r != (size_t)-1)
			return 0;
		if (e == E2BIG) {
			mime_text_flush(t);
		} else if (e == EINVAL) {
			return EINVAL;
		} else {
			mime_text_bad(t);
			(*ip)++;
			(*il)--;
		}
	}
	return 0;
}

/* The autodetected text turned out not to be UTF-8: the rest is Windows-1258. */
static void mime_text_to_legacy(struct mime_text *t)
{
	t->cd = iconv_open("UTF-8", "WINDOWS-1258");
	if (t->cd == (iconv_t)-1)
		t->cd = iconv_open("UTF-8", "ISO-8859-1");
}

static void mime_text_iconv_feed(struct mime_text *t, const char *in, size_t len)
{
	char *ip;
	size_t il;

	/* Finish the incomplete sequence of the last piece a byte at a time. */
	while (t->npend > 0 && len > 0) {
		t->pend[t->npend++] = (unsigned char)*in++;
		len--;
		ip = (char *)t->pend;
		il = t->npend;
		if (mime_text_conv(t, &ip, &il) == EINVAL && il == sizeof t->pend) {
			mime_text_bad(t);
			ip++;
			il--;
		}
		memmove(t->pend, ip, il);
		t->npend = il;
	}
	if (len == 0)
		return;
	ip = (char *)in;
	il = len;
	while (mime_text_conv(t, &ip, &il) == EINVAL) {
		if (il < sizeof t->pend) {
			memcpy(t->pend, ip, il);
			t->npend = il;
			return;
		}
		mime_text_bad(t);
		ip++;
		il--;
	}
}

/* UTF-8 read by us: valid sequences pass, the first invalid one switches to iconv. */
static void mime_text_utf8_feed(struct mime_text *t, const char *in, size_t len)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0;

	while (t->npend > 0 && i < len) {
		int n;

		t->pend[t->npend++] = p[i++];
		n = mime__utf8_seq(t->pend, t->npend);
		if (n > 0) {
			mime_text_put(t, (const char *)t->pend, t->npend);
			t->npend = 0;
		} else if (n < 0) {
			mime_text_to_legacy(t);
			size_t k = t->npend;

			t->npend = 0;
			if (t->cd == (iconv_t)-1) {
				mime_text_put(t, mime_text_fffd, 3);
			} else {
				unsigned char tmp[MIME_TEXT_PEND];

				memcpy(tmp, t->pend, k);
				mime_text_iconv_feed(t, (const char *)tmp, k);
			}
			goto legacy;
		}
	}
	for (size_t start = i; i <= len; ) {
		int n = i < len ? mime__utf8_seq(p + i, len - i) : 1;

		if (i < len && n > 0) {
			i += (size_t)n;
			continue;
		}
		mime_text_put(t, (const char *)p + start, i - start);
		if (i == len)
			return;
		if (n == 0) {
			memcpy(t->pend, p + i, len - i);
			t->npend = len - i;
			return;
		}
		mime_text_to_legacy(t);
		goto legacy;
	}
	return;
legacy:
	if (t->cd == (iconv_t)-1) {
		for (; i < len; i++)
			if (p[i] < 0x80)
				mime_text_put(t, (const char *)p + i, 1);
			else
				mime_text_put(t, mime_text_fffd, 3);
		return;
	}
	mime_text_iconv_feed(t, in + i, len - i);
}

/*
 * Declared UTF-8: valid sequences pass as they are (in runs), an invalid
 * byte is U+FFFD and decoding goes on at the next byte, as iconv does for
 * every other charset; a sequence cut by the piece's end waits in pend.
 */
static void mime_text_utf8_strict(struct mime_text *t, const char *in, size_t len)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0, start;

	while (t->npend > 0 && i < len) {
		int n;

		t->pend[t->npend++] = p[i++];
		n = mime__utf8_seq(t->pend, t->npend);
		if (n > 0) {
			mime_text_put(t, (const char *)t->pend, t->npend);
			t->npend = 0;
		} else if (n < 0) {
			/*
			 * The held bytes were no sequence: each is U+FFFD, and the
			 * byte just added is read again as a start of its own.
			 */
			size_t k = t->npend - 1;

			t->npend = 0;
			for (size_t j = 0; j < k; j++)
				mime_text_put(t, mime_text_fffd, 3);
			i--;
		}
	}
	start = i;
	while (i < len) {
		int n = mime__utf8_seq(p + i, len - i);

		if (n > 0) {
			i += (size_t)n;
			continue;
		}
		mime_text_put(t, (const char *)p + start, i - start);
		if (n == 0) {
			memcpy(t->pend, p + i, len - i);
			t->npend = len - i;
			return;
		}
		mime_text_put(t, mime_text_fffd, 3);
		start = ++i;
	}
	mime_text_put(t, (const char *)p + start, i - start);
}

void mime_text_feed(struct mime_text *t, const char *in, size_t len,
    void (*out)(void *arg, const char *utf8, size_t len), void *arg)
{
	t->outfn = out;
	t->arg = arg;
	if (t->utf8) {
		mime_text_utf8_strict(t, in, len);
		mime_text_flush(t);
		return;
	}
	if (t->cd == (iconv_t)-1 && t->autodetect)
		mime_text_utf8_feed(t, in, len);
	else if (t->cd != (iconv_t)-1)
		mime_text_iconv_feed(t, in, len);
	mime_text_flush(t);
}

void mime_text_finish(struct mime_text *t,
    void (*out)(void *arg, const char *utf8, size_t len), void *arg)
{
	if (t->utf8) {
		t->outfn = out;
		t->arg = arg;
		/* A sequence the text ended inside of. */
		for (size_t k = 0; k < t->npend; k++)
			mime_text_put(t, mime_text_fffd, 3);
		t->npend = 0;
		mime_text_flush(t);
		return;
	}
	t->outfn = out;
	t->arg = arg;
	if (t->npend > 0 && t->cd == (iconv_t)-1) {
		/* An incomplete UTF-8 sequence at the end: the text is not UTF-8. */
		unsigned char tmp[MIME_TEXT_PEND];
		size_t k = t->npend;

		memcpy(tmp, t->pend, k);
		t->npend = 0;
		mime_text_to_legacy(t);
		if (t->cd == (iconv_t)-1)
			mime_text_put(t, mime_text_fffd, 3);
		else
			mime_text_iconv_feed(t, (const char *)tmp, k);
	}
	if (t->cd != (iconv_t)-1) {
		char *ip = (char *)t->pend;
		size_t il = t->npend;

		while (il > 0) {
			if (mime_text_conv(t, &ip, &il) == EINVAL) {
				mime_text_bad(t);
				ip++;
				il--;
			}
		}
		t->npend = 0;
		mime_text_drain(t);
		/* Back to the initial shift state, should the caller feed more. */
		iconv(t->cd, NULL, NULL, NULL, NULL);
	}
	mime_text_flush(t);
}

/*
 * The bytes of out that stay: at most cap - 1, never half a UTF-8
 * sequence; once something does not fit, *used is cap and later pieces
 * are dropped too (the text is cut, not shuffled).
 */
void mime__put(const char *s, size_t len, char *out, size_t cap, size_t *used)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	/* *used == cap: an earlier piece did not fit; nothing after it may. */
	if (cap == 0 || *used >= cap)
		return;
	while (i < len) {
		int n = mime__utf8_seq(p + i, len - i);
		const char *w = s + i;
		size_t wl;

		if (n <= 0) {
			/* Not UTF-8 (the caller's raw text): shown as U+FFFD. */
			w = mime_text_fffd;
			wl = 3;
			n = 1;
		} else if (n == 1 && p[i] == '\t') {
			/* Folding white space: a space, as unfolded text reads. */
			w = " ";
			wl = 1;
		} else if (n == 1 && (p[i] < 0x20 || p[i] == 0x7f)) {
			/* A control in a decoded name would forge a log field or a line. */
			w = mime_text_fffd;
			wl = 3;
		} else {
			wl = (size_t)n;
		}
		if (*used + wl > cap - 1) {
			out[*used] = '\0';
			*used = cap;
			return;
		}
		memcpy(out + *used, w, wl);
		*used += wl;
		i += (size_t)n;
	}
	out[*used] = '\0';
}

struct mime_text_sink {
	char *out;
	size_t cap, *used;
};

static void mime_text_sink(void *arg, const char *utf8, size_t len)
{
	struct mime_text_sink *s = arg;

	mime__put(utf8, len, s->out, s->cap, s->used);
}

void mime__to_utf8(const char *cs, const char *in, size_t len, char *out, size_t cap,
    size_t *used)
{
	struct mime_text *t = mime_text_new(cs);
	struct mime_text_sink s = { out, cap, used };

	mime_text_feed(t, in, len, mime_text_sink, &s);
	mime_text_finish(t, mime_text_sink, &s);
	mime_text_free(t);
}
