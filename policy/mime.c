/*
 * mime: the streaming MIME walker (policy/mime.h, RFC 2045-2049). The
 * message comes in pieces of any size; the walker cuts it into lines
 * (kept in one bounded buffer: a longer line goes on in pieces and is
 * content, never an error), reads each part's header section (fields
 * unfolded and reported, Content-Type, Content-Transfer-Encoding and
 * Content-Disposition parsed), recognizes the boundaries of every open
 * multipart (RFC 2046 section 5.1.1) and hands leaf content on with the
 * transfer encoding undone, and a multipart's preamble and epilogue as
 * written.
 *
 * The open parts are a stack of frames, one per nesting level, never a
 * recursion: a multipart holds its boundary, a message/rfc822 part holds
 * the nested message above it, the top frame is the part being read. A
 * delimiter line of any open multipart closes every part above it
 * (innermost first), so a missing inner closing delimiter cannot swallow
 * the outer structure, and the end of the message closes what is left.
 * Memory is the line buffer, one header field (at most max_header_bytes)
 * and max_depth + 1 frames, whatever the input; a message/rfc822 part in
 * base64 or quoted-printable gets a nested walker for its decoded content
 * (mime_inner_open), one nesting level of the same budget, so at most
 * max_depth walkers are open.
 *
 * Entry points: mime_new, mime_free, mime_feed, mime_finish,
 * mime_part_count, mime_error_text (mime_words.c: mime_decode_words,
 * mime_param; mime_text.c: mime_text_*).
 * OWNERSHIP: the caller owns the walker; everything handed to a callback
 * is borrowed for the call (mime.h).
 * THREADS: one thread at a time per walker; no global state.
 * ERRORS: mime_feed and mime_finish return 0 or a MIME_E_* code; the
 * first error sticks and later input is ignored. Besides the limits and
 * the ambiguities mime.h names, MIME_E_AMBIGUOUS is also a multipart
 * whose boundary never comes while its preamble has text (all of its
 * content would go unread), a bare boundary with white space in it, and
 * a delimiter line padded past the line buffer. Parts that had their
 * begin still get their end at mime_finish, so callers can free what
 * they keep per part.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/xmalloc.h"
#include "policy/mime.h"
#include "policy/mime_int.h"

#define MIME_LINE_MAX 4096       /* a longer line is read in pieces */
#define MIME_BOUNDARY_MAX 200    /* RFC 2046 says 70; longer ones are seen */
#define MIME_TYPE_MAX 128
#define MIME_CHARSET_MAX 48
#define MIME_NAME_MAX 1024       /* a decoded file name, UTF-8 */
#define MIME_OUT_MAX 4096        /* decoded content gathered per data call */

enum mime_kind { MIME_K_LEAF, MIME_K_MULTI, MIME_K_MESSAGE };

struct mime_frame {
	struct mime_part part;
	enum mime_kind kind;
	bool begun;              /* begin was called: end is owed */
	bool digest;             /* multipart/digest: children default to message/rfc822 */
	bool encoded_message;    /* message/rfc822 in base64 or QP: walked by w->inner */
	bool seen_ct, seen_cte, seen_cd, has_cd_name, has_ct_name;
	bool seen_delim;         /* a delimiter line of this multipart came */
	bool preamble_text;      /* ...and before it, a line that is not blank */
	char type[MIME_TYPE_MAX];
	char charset[MIME_CHARSET_MAX];
	char disposition[16];
	char boundary[MIME_BOUNDARY_MAX + 1];
	size_t blen;             /* 0: no usable boundary */
	char cd_name[MIME_NAME_MAX];
	char ct_name[MIME_NAME_MAX];
};

struct mime_walker {
	struct mime_limits lim;
	struct mime_callbacks cb;
	void *arg;
	int err;
	bool finished;
	struct mime_frame **frames;  /* each allocated once, reused: pointers stay put */
	unsigned nframes, nalloc, capframes;
	unsigned nparts;
	bool in_headers;             /* the top frame is reading its header section */
	/* The line being assembled. */
	char line[MIME_LINE_MAX];
	size_t nline;
	bool line_over;              /* pieces of this line went out already */
	bool cand;                   /* ...and so far it reads as a padded boundary */
	/* The header field being unfolded, and the header section's size. */
	char *field;
	size_t nfield, capfield, hbytes;
	bool field_open;
	/* Leaf content: the line end held back (it may belong to a boundary). */
	char eol[2];
	size_t neol;
	/* Transfer decoding of the current leaf. */
	enum mime_encoding enc;
	unsigned b64acc, b64n;
	int qps;                     /* 0 text, 1 "=", 2 "=X", 3 "=\r", 4 "=" WSP */
	char qpx;
	/*
	 * White space not yet known to be trailing (state 0) or after "=" (4):
	 * the first bytes as written, the rest counted (shown as spaces when
	 * it is content), so a run of any length is deleted when trailing.
	 */
	char qpws[64];
	size_t nqpws, qpws_more;
	char out[MIME_OUT_MAX];
	size_t nout;
	/*
	 * RFC 2046 section 5.2.1 forbids encoding a message/rfc822 part, yet
	 * clients send forwarded mail so and readers decode it: the decoded
	 * content of such a part (the top frame, a leaf) is walked by a
	 * nested walker whose parts are reported as ours, numbered on from
	 * inner_base, at depth inner_depth + their own, the part's children.
	 */
	struct mime_walker *inner;
	unsigned inner_base, inner_depth, inner_parent;
};

const char *mime_error_text(int err)
{
	switch (err) {
	case MIME_OK:
		return "no error";
	case MIME_E_DEPTH:
		return "the message nests parts too deeply";
	case MIME_E_PARTS:
		return "the message has too many parts";
	case MIME_E_HEADER:
		return "a part of the message has too large a header";
	case MIME_E_AMBIGUOUS:
		return "the message's MIME structure can be read more than one way";
	default:
		return "the message's MIME structure cannot be read";
	}
}

static struct mime_frame *mime_top(struct mime_walker *w)
{
	return w->frames[w->nframes - 1];
}

static void mime_out_flush(struct mime_walker *w);

/* The first error sticks; content decoded before it still goes out, so
 * what callers saw does not depend on how the input was cut. That
 * content may hold a nested walker's error, which then came first. */
static void mime_fail(struct mime_walker *w, int err)
{
	if (w->err != 0)
		return;
	if (w->nout > 0)
		mime_out_flush(w);
	if (w->err == 0)
		w->err = err;
}

/* ---------------------------------------------------------------- content */

static void mime_out_flush(struct mime_walker *w)
{
	/*
	 * After an error nothing more goes out: how much a piece still
	 * decoded past it depends on where the input was cut.
	 */
	if (w->err != 0) {
		w->nout = 0;
		return;
	}
	if (w->nout > 0 && w->inner != NULL) {
		int err = mime_feed(w->inner, w->out, w->nout);

		if (err != 0 && w->err == 0)
			w->err = err;
	} else if (w->nout > 0 && w->cb.data != NULL) {
		w->cb.data(w->arg, &mime_top(w)->part, w->out, w->nout);
	}
	w->nout = 0;
}

static void mime_out(struct mime_walker *w, const char *s, size_t n)
{
	while (n > 0) {
		size_t room = sizeof w->out - w->nout, k = n < room ? n : room;

		memcpy(w->out + w->nout, s, k);
		w->nout += k;
		s += k;
		n -= k;
		if (w->nout == sizeof w->out)
			mime_out_flush(w);
	}
}

static void mime_out_byte(struct mime_walker *w, char c)
{
	mime_out(w, &c, 1);
}

static int mime_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The base64 alphabet's values (RFC 4648 table 1); -1 for anything else. */
static const signed char mime_b64_table[256] = {
	['A'] = 0, ['B'] = 1, ['C'] = 2, ['D'] = 3, ['E'] = 4, ['F'] = 5, ['G'] = 6,
	['H'] = 7, ['I'] = 8, ['J'] = 9, ['K'] = 10, ['L'] = 11, ['M'] = 12, ['N'] = 13,
	['O'] = 14, ['P'] = 15, ['Q'] = 16, ['R'] = 17, ['S'] = 18, ['T'] = 19, ['U'] = 20,
	['V'] = 21, ['W'] = 22, ['X'] = 23, ['Y'] = 24, ['Z'] = 25, ['a'] = 26, ['b'] = 27,
	['c'] = 28, ['d'] = 29, ['e'] = 30, ['f'] = 31, ['g'] = 32, ['h'] = 33, ['i'] = 34,
	['j'] = 35, ['k'] = 36, ['l'] = 37, ['m'] = 38, ['n'] = 39, ['o'] = 40, ['p'] = 41,
	['q'] = 42, ['r'] = 43, ['s'] = 44, ['t'] = 45, ['u'] = 46, ['v'] = 47, ['w'] = 48,
	['x'] = 49, ['y'] = 50, ['z'] = 51, ['0'] = 52, ['1'] = 53, ['2'] = 54, ['3'] = 55,
	['4'] = 56, ['5'] = 57, ['6'] = 58, ['7'] = 59, ['8'] = 60, ['9'] = 61, ['+'] = 62,
	['/'] = 63,
};

static int mime_b64val(char c)
{
	unsigned char u = (unsigned char)c;

	/* The table's zero entries are 'A' only; everything else unset is not base64. */
	return mime_b64_table[u] != 0 || u == 'A' ? mime_b64_table[u] : -1;
}

/* The bytes of a quantum cut short by padding or by the end (1 sextet: none). */
static void mime_b64_tail(struct mime_walker *w)
{
	if (w->b64n == 2) {
		mime_out_byte(w, (char)(w->b64acc >> 4 & 0xff));
	} else if (w->b64n == 3) {
		mime_out_byte(w, (char)(w->b64acc >> 10 & 0xff));
		mime_out_byte(w, (char)(w->b64acc >> 2 & 0xff));
	}
	w->b64n = 0;
	w->b64acc = 0;
}

/*
 * RFC 2045 section 6.8: characters outside the alphabet are ignored (as
 * decoders do); "=" ends a quantum, and decoding goes on after it, so
 * base64 glued after padding is not hidden either.
 */
static void mime_b64(struct mime_walker *w, const char *s, size_t n)
{
	size_t i = 0;

	/*
	 * The common case, whole quanta of four alphabet characters, decoded
	 * straight into the output buffer (a line of a base64 body is 76 of
	 * them); anything else goes through the general loop below.
	 */
	while (w->b64n == 0 && n - i >= 4 && sizeof w->out - w->nout >= 3) {
		int a = mime_b64val(s[i]), b = mime_b64val(s[i + 1]), c = mime_b64val(s[i + 2]),
		    d = mime_b64val(s[i + 3]);

		if ((a | b | c | d) < 0)
			break;
		w->out[w->nout++] = (char)(a << 2 | b >> 4);
		w->out[w->nout++] = (char)((b & 0xf) << 4 | c >> 2);
		w->out[w->nout++] = (char)((c & 0x3) << 6 | d);
		i += 4;
		if (w->nout == sizeof w->out)
			mime_out_flush(w);
	}
	for (; i < n; i++) {
		int v = mime_b64val(s[i]);

		if (v < 0) {
			if (s[i] == '=')
				mime_b64_tail(w);
			else if (s[i] != '\r' && s[i] != '\n' && s[i] != ' ' && s[i] != '\t' &&
			    mime_top(w)->encoded_message) {
				mime_fail(w, MIME_E_AMBIGUOUS);   /* text a raw reader shows */
				return;
			}
			continue;
		}
		w->b64acc = (w->b64acc << 6 | (unsigned)v) & 0xffffff;
		if (++w->b64n == 4) {
			char b[3] = { (char)(w->b64acc >> 16), (char)(w->b64acc >> 8 & 0xff),
				(char)(w->b64acc & 0xff) };

			mime_out(w, b, 3);
			w->b64n = 0;
			w->b64acc = 0;
		}
	}
}

static bool mime_qp_wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* White space held by the QP decoder turned out to be content. */
static void mime_qp_ws_out(struct mime_walker *w)
{
	static const char spaces[] = "                                ";

	mime_out(w, w->qpws, w->nqpws);
	while (w->qpws_more > 0) {
		size_t k = w->qpws_more < sizeof spaces - 1 ? w->qpws_more : sizeof spaces - 1;

		mime_out(w, spaces, k);
		w->qpws_more -= k;
	}
	w->nqpws = 0;
}

static void mime_qp_ws_hold(struct mime_walker *w, char c)
{
	if (w->nqpws < sizeof w->qpws)
		w->qpws[w->nqpws++] = c;
	else
		w->qpws_more++;
}

/* Held white space was trailing: deleted. */
static void mime_qp_ws_drop(struct mime_walker *w)
{
	w->nqpws = 0;
	w->qpws_more = 0;
}

/*
 * RFC 2045 section 6.7: "=XX" is a byte, "=" at the end of a line is a
 * soft line break; an "=" not followed by two hex digits is kept as
 * written (rule (1) leaves it to the reader; showing it hides nothing).
 * White space at the end of a line was added in transport and is
 * deleted (rule (3)), so "=" followed by white space and the line end is
 * a soft line break too, as readers take it: "TỐI M= " CRLF "ẬT" is one
 * word to them and must be one word to the checks. White space is held
 * until what follows it is known, however long the run (a hundred spaces
 * before the line end hide nothing either).
 */
static void mime_qp(struct mime_walker *w, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int hi, lo;

		switch (w->qps) {
		case 0:
			if (mime_qp_wsp(c)) {
				mime_qp_ws_hold(w, c);
				continue;
			}
			if (c == '\r' || c == '\n')
				mime_qp_ws_drop(w);      /* trailing: deleted */
			else if (w->nqpws > 0)
				mime_qp_ws_out(w);
			if (c == '=')
				w->qps = 1;
			else
				mime_out_byte(w, c);
			continue;
		case 1:
			if (c == '\n') {
				w->qps = 0;
			} else if (c == '\r') {
				w->qps = 3;
			} else if (mime_qp_wsp(c)) {
				mime_qp_ws_hold(w, c);
				w->qps = 4;
			} else if (mime_hexval(c) >= 0) {
				w->qpx = c;
				w->qps = 2;
			} else {
				mime_out_byte(w, '=');
				w->qps = 0;
				i--;
			}
			continue;
		case 2:
			hi = mime_hexval(w->qpx);
			lo = mime_hexval(c);
			w->qps = 0;
			if (lo >= 0) {
				mime_out_byte(w, (char)(hi << 4 | lo));
			} else {
				mime_out_byte(w, '=');
				mime_out_byte(w, w->qpx);
				i--;
			}
			continue;
		case 4:
			if (mime_qp_wsp(c)) {
				mime_qp_ws_hold(w, c);
				continue;
			}
			if (c == '\r' || c == '\n') {
				/* A soft line break with transport padding. */
				mime_qp_ws_drop(w);
				w->qps = c == '\r' ? 3 : 0;
				continue;
			}
			mime_out_byte(w, '=');
			mime_qp_ws_out(w);
			w->qps = 0;
			i--;
			continue;
		default:
			w->qps = 0;
			if (c != '\n') {
				mime_out(w, "=\r", 2);
				i--;
			}
			continue;
		}
	}
}

static void mime_decode(struct mime_walker *w, const char *s, size_t n)
{
	if (w->enc == MIME_ENC_BASE64)
		mime_b64(w, s, n);
	else if (w->enc == MIME_ENC_QP)
		mime_qp(w, s, n);
	else
		mime_out(w, s, n);
}

/* The leaf ends: what the decoders hold goes out. */
static void mime_decode_end(struct mime_walker *w)
{
	if (w->enc == MIME_ENC_BASE64)
		mime_b64_tail(w);
	else if (w->enc == MIME_ENC_QP && w->qps == 2)
		mime_out(w, (char[2]){ '=', w->qpx }, 2);
	/* White space last in the part is trailing; after "=" it ends a soft break. */
	mime_qp_ws_drop(w);
	/* A lone "=" (or "=\r") last is a soft break whose line end the
	 * boundary took: nothing to write. */
	w->qps = 0;
}

/* One line (or piece of a long line) of leaf content. */
static void mime_leaf(struct mime_walker *w, const char *s, size_t n, bool last,
    const char *eol, size_t neol)
{
	if (w->neol > 0) {
		mime_decode(w, w->eol, w->neol);
		w->neol = 0;
	}
	mime_decode(w, s, n);
	/* RFC 2046 section 5.1.1: the CRLF before a delimiter is part of it. */
	if (last) {
		memcpy(w->eol, eol, neol);
		w->neol = neol;
	}
}

/* ---------------------------------------------------------------- nested walkers */

static struct mime_walker *mime_new_exact(const struct mime_limits *lim,
    const struct mime_callbacks *cb, void *arg);

/* A part of w's nested walker as w reports it. */
static struct mime_part mime_inner_part(const struct mime_walker *w, const struct mime_part *p)
{
	struct mime_part q = *p;

	q.index = w->inner_base + p->index;
	q.depth = w->inner_depth + p->depth;
	q.parent = p->depth == 0 ? w->inner_parent : w->inner_base + p->parent;
	return q;
}

static void mime_inner_header(void *arg, const struct mime_part *p, const char *name,
    const char *value, size_t value_len)
{
	struct mime_walker *w = arg;
	struct mime_part q = mime_inner_part(w, p);

	if (w->cb.header != NULL)
		w->cb.header(w->arg, &q, name, value, value_len);
}

static void mime_inner_begin(void *arg, const struct mime_part *p)
{
	struct mime_walker *w = arg;
	struct mime_part q = mime_inner_part(w, p);

	if (w->cb.begin != NULL)
		w->cb.begin(w->arg, &q);
}

static void mime_inner_data(void *arg, const struct mime_part *p, const char *data, size_t len)
{
	struct mime_walker *w = arg;
	struct mime_part q = mime_inner_part(w, p);

	if (w->cb.data != NULL)
		w->cb.data(w->arg, &q, data, len);
}

static void mime_inner_end(void *arg, const struct mime_part *p)
{
	struct mime_walker *w = arg;
	struct mime_part q = mime_inner_part(w, p);

	if (w->cb.end != NULL)
		w->cb.end(w->arg, &q);
}

static void mime_inner_outside(void *arg, const struct mime_part *p, const char *data,
    size_t len)
{
	struct mime_walker *w = arg;
	struct mime_part q = mime_inner_part(w, p);

	if (w->cb.outside != NULL)
		w->cb.outside(w->arg, &q, data, len);
}

/*
 * The encoded message part f (the top frame, just begun) gets a nested
 * walker for its decoded content, within what is left of our limits:
 * its message is one level below f, and its parts count against ours.
 */
static void mime_inner_open(struct mime_walker *w, const struct mime_frame *f)
{
	static const struct mime_callbacks inner_cb = { mime_inner_header, mime_inner_begin,
		mime_inner_data, mime_inner_end, mime_inner_outside };
	struct mime_limits lim = w->lim;

	if (f->part.depth + 1 > w->lim.max_depth) {
		mime_fail(w, MIME_E_DEPTH);
		return;
	}
	if (w->nparts >= w->lim.max_parts) {
		mime_fail(w, MIME_E_PARTS);
		return;
	}
	lim.max_depth = w->lim.max_depth - (f->part.depth + 1);
	lim.max_parts = w->lim.max_parts - w->nparts;
	w->inner_base = w->nparts;
	w->inner_depth = f->part.depth + 1;
	w->inner_parent = f->part.index;
	w->inner = mime_new_exact(&lim, &inner_cb, w);
}

/*
 * The encoded message part ends: so does its nested message (without
 * more content when we failed), and its parts are counted as ours.
 */
static void mime_inner_close(struct mime_walker *w)
{
	struct mime_walker *in = w->inner;
	int err;

	if (w->err != 0 && in->err == 0)
		in->err = w->err;
	err = mime_finish(in);
	if (err != 0 && w->err == 0)
		w->err = err;
	w->nparts += mime_part_count(in);
	w->inner = NULL;
	mime_free(in);
}

/* ---------------------------------------------------------------- frames */

static void mime_part_reset(struct mime_frame *f)
{
	f->part.type = f->type;
	f->part.charset = f->charset;
	f->part.disposition = f->disposition;
	f->part.filename = NULL;
}

/* A new part above the top one (or the message itself), reading its header. */
static bool mime_push(struct mime_walker *w)
{
	unsigned depth = w->nframes;
	struct mime_frame *f;

	if (w->nparts >= w->lim.max_parts) {
		mime_fail(w, MIME_E_PARTS);
		return false;
	}
	if (depth > w->lim.max_depth) {
		mime_fail(w, MIME_E_DEPTH);
		return false;
	}
	if (w->nframes == w->capframes) {
		w->capframes = w->capframes ? w->capframes * 2 : 8;
		w->frames = xreallocarray(w->frames, w->capframes, sizeof *w->frames);
	}
	if (w->nframes == w->nalloc)
		w->frames[w->nalloc++] = xmalloc(sizeof **w->frames);
	f = w->frames[w->nframes];
	memset(f, 0, sizeof *f);
	mime_part_reset(f);
	f->part.index = w->nparts++;
	f->part.depth = depth;
	f->part.parent = depth > 0 ? mime_top(w)->part.index : 0;
	w->nframes++;
	w->in_headers = true;
	w->hbytes = 0;
	w->nfield = 0;
	w->field_open = false;
	return true;
}

static void mime_hdr_end(struct mime_walker *w, bool may_open);

/* The top part ends; at the end of the message its held line end is content. */
static void mime_pop(struct mime_walker *w, bool at_eof)
{
	struct mime_frame *f = mime_top(w);

	if (w->in_headers && w->err == 0)
		mime_hdr_end(w, false);
	/*
	 * A multipart whose boundary never came has all its content in the
	 * preamble, which no reader is meant to show (RFC 2046 section
	 * 5.1.1) but some do: its text would pass unscanned, so refused.
	 */
	if (f->kind == MIME_K_MULTI && f->begun && !f->seen_delim && f->preamble_text)
		mime_fail(w, MIME_E_AMBIGUOUS);
	if (f->kind == MIME_K_LEAF && f->begun && w->err == 0) {
		if (at_eof && w->neol > 0)
			mime_decode(w, w->eol, w->neol);
		mime_decode_end(w);
		mime_out_flush(w);
	}
	w->neol = 0;
	w->nout = 0;
	w->in_headers = false;
	if (w->inner != NULL)
		mime_inner_close(w);
	if (f->begun && w->cb.end != NULL)
		w->cb.end(w->arg, &f->part);
	w->nframes--;
}

/* ---------------------------------------------------------------- header fields */

static void mime_lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

static size_t mime_skip_cfws(const char *s, size_t n, size_t i)
{
	unsigned depth = 0;

	for (; i < n; i++) {
		if (s[i] == '(')
			depth++;
		else if (depth > 0 && s[i] == ')')
			depth--;
		else if (depth > 0 && s[i] == '\\')
			i++;
		else if (depth == 0 && s[i] != ' ' && s[i] != '\t')
			break;
	}
	return i;
}

/* An RFC 2045 token at s[*i]: copied lowercased to out (cap), its length; 0 if none or too long. */
static size_t mime_token(const char *s, size_t n, size_t *i, char *out, size_t cap)
{
	size_t k = 0;

	*i = mime_skip_cfws(s, n, *i);
	while (*i < n) {
		unsigned char c = (unsigned char)s[*i];

		if (c <= ' ' || c >= 0x7f || strchr("()<>@,;:\\\"/[]?=", c) != NULL)
			break;
		if (k + 1 >= cap)
			return 0;
		out[k++] = (char)c;
		(*i)++;
	}
	out[k] = '\0';
	mime_lower(out);
	*i = mime_skip_cfws(s, n, *i);
	return k;
}

/* RFC 2045 section 5.1 Content-Type: type "/" subtype *(";" parameter). */
static void mime_hdr_ct(struct mime_walker *w, struct mime_frame *f, const char *v, size_t n)
{
	char type[MIME_TYPE_MAX], sub[MIME_TYPE_MAX], full[MIME_TYPE_MAX];
	char bnd[MIME_BOUNDARY_MAX + 2], cs[MIME_CHARSET_MAX], name[MIME_NAME_MAX];
	size_t i = 0, bl = 0;
	int rb, rc, rn;

	full[0] = '\0';
	if (mime_token(v, n, &i, type, sizeof type) > 0 && i < n && v[i] == '/') {
		i++;
		if (mime_token(v, n, &i, sub, sizeof sub) > 0 &&
		    strlen(type) + 1 + strlen(sub) < sizeof full) {
			memcpy(full, type, strlen(type));
			full[strlen(type)] = '/';
			memcpy(full + strlen(type) + 1, sub, strlen(sub) + 1);
		}
	}
	rb = mime__param(v, n, "boundary", bnd, sizeof bnd, true);
	rc = mime__param(v, n, "charset", cs, sizeof cs, true);
	rn = mime_param(v, n, "name", name, sizeof name);
	if (rb < 0 || rn < 0) {
		/* Two boundary= (or name=): two readers would split it two ways. */
		mime_fail(w, MIME_E_AMBIGUOUS);
		return;
	}
	if (rb == 1 && (bl = strlen(bnd)) > MIME_BOUNDARY_MAX)
		bl = 0;
	if (rc != 1 || !mime__charset_ok(cs))
		cs[0] = '\0';
	mime_lower(cs);
	if (f->seen_ct) {
		/* RFC 2045 allows one Content-Type; two that differ are ambiguous. */
		if (strcmp(full, f->type) != 0 || bl != f->blen ||
		    memcmp(bnd, f->boundary, bl) != 0 || strcmp(cs, f->charset) != 0)
			mime_fail(w, MIME_E_AMBIGUOUS);
		return;
	}
	f->seen_ct = true;
	memcpy(f->type, full, sizeof full);
	memcpy(f->boundary, bnd, bl);
	f->boundary[bl] = '\0';
	f->blen = bl;
	memcpy(f->charset, cs, sizeof cs);
	if (rn == 1) {
		f->has_ct_name = true;
		memcpy(f->ct_name, name, sizeof name);
	}
}

static enum mime_encoding mime_enc_of(const char *tok)
{
	static const struct {
		const char *name;
		enum mime_encoding enc;
	} encs[] = {
		{ "7bit", MIME_ENC_7BIT }, { "8bit", MIME_ENC_8BIT }, { "binary", MIME_ENC_BINARY },
		{ "base64", MIME_ENC_BASE64 }, { "quoted-printable", MIME_ENC_QP },
	};

	for (size_t k = 0; k < sizeof encs / sizeof encs[0]; k++)
		if (strcmp(tok, encs[k].name) == 0)
			return encs[k].enc;
	return MIME_ENC_UNKNOWN;
}

/* RFC 2045 section 6.1 Content-Transfer-Encoding. */
static void mime_hdr_cte(struct mime_walker *w, struct mime_frame *f, const char *v, size_t n)
{
	char tok[32];
	size_t i = 0;
	enum mime_encoding e = MIME_ENC_UNKNOWN;

	if (mime_token(v, n, &i, tok, sizeof tok) > 0)
		e = mime_enc_of(tok);
	if (f->seen_cte && e != f->part.encoding)
		mime_fail(w, MIME_E_AMBIGUOUS);
	f->seen_cte = true;
	f->part.encoding = e;
}

/* RFC 2183 Content-Disposition: disposition-type *(";" parameter). */
static void mime_hdr_cd(struct mime_walker *w, struct mime_frame *f, const char *v, size_t n)
{
	char tok[32], name[MIME_NAME_MAX];
	size_t i = 0;
	int rn = mime_param(v, n, "filename", name, sizeof name);

	if (rn < 0) {
		mime_fail(w, MIME_E_AMBIGUOUS);
		return;
	}
	if (f->seen_cd) {
		/* A second field naming another file: which one is the file's? */
		if (rn == 1 && (!f->has_cd_name || strcmp(name, f->cd_name) != 0))
			mime_fail(w, MIME_E_AMBIGUOUS);
		return;
	}
	f->seen_cd = true;
	if (mime_token(v, n, &i, tok, sizeof tok) > 0 &&
	    (strcmp(tok, "attachment") == 0 || strcmp(tok, "inline") == 0))
		memcpy(f->disposition, tok, strlen(tok) + 1);
	if (rn == 1) {
		f->has_cd_name = true;
		memcpy(f->cd_name, name, sizeof name);
	}
}

/* The field being unfolded is complete: reported, and parsed if it is ours. */
static void mime_field_end(struct mime_walker *w)
{
	struct mime_frame *f = mime_top(w);
	char *s = w->field, *colon, *v;
	size_t nl, vl;

	if (!w->field_open)
		return;
	w->field_open = false;
	s[w->nfield] = '\0';
	colon = memchr(s, ':', w->nfield);
	nl = (size_t)(colon - s);
	v = colon + 1;
	vl = w->nfield - nl - 1;
	while (vl > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vl--;
	}
	while (nl > 0 && (s[nl - 1] == ' ' || s[nl - 1] == '\t'))
		nl--;
	s[nl] = '\0';
	if (w->cb.header != NULL)
		w->cb.header(w->arg, &f->part, s, v, vl);
	if (strcasecmp(s, "Content-Type") == 0)
		mime_hdr_ct(w, f, v, vl);
	else if (strcasecmp(s, "Content-Transfer-Encoding") == 0)
		mime_hdr_cte(w, f, v, vl);
	else if (strcasecmp(s, "Content-Disposition") == 0)
		mime_hdr_cd(w, f, v, vl);
}

static void mime_field_add(struct mime_walker *w, const char *s, size_t n)
{
	if (w->nfield + n + 1 > w->capfield) {
		size_t cap = w->capfield ? w->capfield : 1024;

		while (cap < w->nfield + n + 1)
			cap *= 2;
		w->field = xrealloc(w->field, cap);
		w->capfield = cap;
	}
	memcpy(w->field + w->nfield, s, n);
	w->nfield += n;
}

/* Whether s starts an RFC 5322 field: ftext name, optional WSP, ":". */
static bool mime_is_field(const char *s, size_t n)
{
	size_t i = 0;

	while (i < n && (unsigned char)s[i] > ' ' && (unsigned char)s[i] < 0x7f && s[i] != ':')
		i++;
	if (i == 0)
		return false;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i < n && s[i] == ':';
}

/*
 * The top part's header section ended: its type decided, begin called,
 * and what its body is set up (a nested message's frame opened when
 * may_open).
 */
static void mime_hdr_end(struct mime_walker *w, bool may_open)
{
	struct mime_frame *f = mime_top(w);
	struct mime_frame *parent = w->nframes > 1 ? w->frames[w->nframes - 2] : NULL;
	bool encoded;

	mime_field_end(w);
	w->in_headers = false;
	if (w->err != 0)
		return;
	if (f->type[0] == '\0') {
		/* RFC 2045 section 5.2 default; RFC 2046 section 5.1.5 in a digest. */
		memcpy(f->type, parent != NULL && parent->digest ? "message/rfc822" : "text/plain",
		    parent != NULL && parent->digest ? 15 : 11);
	}
	if (!f->seen_cte)
		f->part.encoding = MIME_ENC_7BIT;
	/*
	 * RFC 2045 section 6.4 forbids encoding a container. A multipart so
	 * encoded is read as parts by a reader that ignores the encoding and
	 * as other parts by one that decodes first: refused. A message so
	 * encoded is sent by real clients: its decoded content is walked
	 * (mime_inner_open), and base64 with anything but its alphabet in it
	 * is refused (mime_b64), so the raw text shows nothing unread.
	 */
	encoded = f->part.encoding == MIME_ENC_BASE64 || f->part.encoding == MIME_ENC_QP;
	if (strncmp(f->type, "multipart/", 10) == 0 && f->blen > 0 && encoded) {
		mime_fail(w, MIME_E_AMBIGUOUS);
		return;
	}
	f->kind = MIME_K_LEAF;
	if (strncmp(f->type, "multipart/", 10) == 0 && f->blen > 0) {
		f->kind = MIME_K_MULTI;
		f->digest = strcmp(f->type, "multipart/digest") == 0;
	} else if (strcmp(f->type, "message/rfc822") == 0 ||
	    strcmp(f->type, "message/global") == 0) {
		if (encoded)
			f->encoded_message = true;
		else
			f->kind = MIME_K_MESSAGE;
	} else if (strncmp(f->type, "multipart/", 10) == 0 && f->blen == 0) {
		/* RFC 2046 section 5.1.1: no boundary, no multipart; shown as text. */
		memcpy(f->type, "text/plain", 11);
	}
	f->part.multipart = f->kind == MIME_K_MULTI;
	f->part.message = f->kind == MIME_K_MESSAGE || f->encoded_message;
	f->part.filename = f->has_cd_name ? f->cd_name : f->has_ct_name ? f->ct_name : NULL;
	f->begun = true;
	if (w->cb.begin != NULL)
		w->cb.begin(w->arg, &f->part);
	w->enc = f->part.encoding;
	w->b64n = w->b64acc = 0;
	w->qps = 0;
	mime_qp_ws_drop(w);
	w->neol = 0;
	w->nout = 0;
	if (f->kind == MIME_K_MESSAGE && may_open)
		(void)mime_push(w);
	else if (f->encoded_message)
		mime_inner_open(w, f);
}

/* ---------------------------------------------------------------- boundaries */

static bool mime_all_wsp(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/*
 * RFC 2046 section 5.1.1: "--" boundary, "--" for the close delimiter,
 * then transport padding (white space) only. Every open multipart is
 * tried, innermost first. Returns the frame index, or -1; *after is
 * where the padding starts (for a line still being read).
 */
static int mime_match(struct mime_walker *w, const char *s, size_t n, bool *close, size_t *after)
{
	if (n < 3 || s[0] != '-' || s[1] != '-')
		return -1;
	for (unsigned k = w->nframes; k-- > 0; ) {
		struct mime_frame *f = w->frames[k];
		size_t i = 2 + f->blen;

		if (f->kind != MIME_K_MULTI || !f->begun || n < i ||
		    memcmp(s + 2, f->boundary, f->blen) != 0)
			continue;
		*close = n >= i + 2 && s[i] == '-' && s[i + 1] == '-';
		if (*close)
			i += 2;
		*after = i;
		if (mime_all_wsp(s + i, n - i))
			return (int)k;
	}
	return -1;
}

static void mime_boundary(struct mime_walker *w, unsigned k, bool close)
{
	if (w->in_headers)
		mime_hdr_end(w, false);
	w->frames[k]->seen_delim = true;
	while (w->err == 0 && w->nframes - 1 > k)
		mime_pop(w, false);
	if (w->err != 0 || close)
		return;
	/* A delimiter after the close delimiter opens a part again: readers
	 * that show it must not show content we skipped as epilogue. */
	(void)mime_push(w);
}

/* ---------------------------------------------------------------- lines */

static void mime_hdr_piece(struct mime_walker *w, const char *s, size_t n, bool first, bool last,
    const char *eol, size_t neol);

static void mime_body_piece(struct mime_walker *w, const char *s, size_t n, bool first, bool last,
    const char *eol, size_t neol)
{
	struct mime_frame *f = mime_top(w);

	(void)first;
	/* Only leaves have content; a preamble and an epilogue are not shown
	 * (RFC 2046 section 5.1.1), nor is a message part that could not open,
	 * but they are handed on as text outside the parts. */
	if (f->kind == MIME_K_LEAF) {
		mime_leaf(w, s, n, last, eol, neol);
		return;
	}
	if (f->kind != MIME_K_MULTI)
		return;
	if (!f->seen_delim && !mime_all_wsp(s, n))
		f->preamble_text = true;
	if (w->cb.outside != NULL) {
		if (n > 0)
			w->cb.outside(w->arg, &f->part, s, n);
		if (last && neol > 0)
			w->cb.outside(w->arg, &f->part, eol, neol);
	}
}

static void mime_hdr_piece(struct mime_walker *w, const char *s, size_t n, bool first, bool last,
    const char *eol, size_t neol)
{
	w->hbytes += n + neol;
	if (w->hbytes > w->lim.max_header_bytes) {
		mime_fail(w, MIME_E_HEADER);
		return;
	}
	if (!first) {
		if (w->field_open)
			mime_field_add(w, s, n);
		return;
	}
	if (last && n == 0) {
		/* RFC 5322 section 2.1: the empty line ends the header section. */
		mime_hdr_end(w, true);
		return;
	}
	if (s[0] == ' ' || s[0] == '\t') {
		/* RFC 5322 section 2.2.3: unfolding drops the CRLF, keeps the WSP. */
		if (w->field_open)
			mime_field_add(w, s, n);
		return;
	}
	mime_field_end(w);
	if (w->err != 0)
		return;
	if (!mime_is_field(s, n)) {
		/* Not a field: the header section ended without its empty line,
		 * and this line is the first of the body (as clients read it). */
		mime_hdr_end(w, true);
		if (w->err == 0 && !w->in_headers)
			mime_body_piece(w, s, n, first, last, eol, neol);
		else if (w->err == 0)
			mime_hdr_piece(w, s, n, first, last, eol, neol);
		return;
	}
	w->field_open = true;
	w->nfield = 0;
	mime_field_add(w, s, n);
}

/* One line, or one piece of a line longer than the buffer. */
static void mime_piece(struct mime_walker *w, const char *s, size_t n, bool last,
    const char *eol, size_t neol)
{
	bool first = !w->line_over, close = false;
	size_t after = 0;
	int k;

	if (!last) {
		/* A delimiter padded past the buffer cannot be told from content
		 * once its first piece is out: refused if the line ends so. */
		if (first)
			w->cand = mime_match(w, s, n, &close, &after) >= 0;
		else
			w->cand = w->cand && mime_all_wsp(s, n);
	} else if (!first && w->cand && mime_all_wsp(s, n)) {
		mime_fail(w, MIME_E_AMBIGUOUS);
		return;
	}
	if (first && last && (k = mime_match(w, s, n, &close, &after)) >= 0) {
		mime_boundary(w, (unsigned)k, close);
		return;
	}
	if (w->in_headers)
		mime_hdr_piece(w, s, n, first, last, eol, neol);
	else
		mime_body_piece(w, s, n, first, last, eol, neol);
}

static void mime_line_end(struct mime_walker *w, bool at_eof)
{
	size_t n = w->nline;

	if (at_eof) {
		mime_piece(w, w->line, n, true, "", 0);
	} else if (n > 0 && w->line[n - 1] == '\r') {
		mime_piece(w, w->line, n - 1, true, "\r\n", 2);
	} else {
		mime_piece(w, w->line, n, true, "\n", 1);
	}
	w->nline = 0;
	w->line_over = false;
	w->cand = false;
}

int mime_feed(struct mime_walker *w, const char *data, size_t len)
{
	while (w->err == 0 && !w->finished && len > 0) {
		const char *nl = memchr(data, '\n', len);
		size_t seg = nl != NULL ? (size_t)(nl - data) : len;

		while (seg > 0 && w->err == 0) {
			size_t take;

			if (w->nline == sizeof w->line) {
				mime_piece(w, w->line, w->nline, false, "", 0);
				w->line_over = true;
				w->nline = 0;
			}
			take = seg < sizeof w->line - w->nline ? seg : sizeof w->line - w->nline;
			memcpy(w->line + w->nline, data, take);
			w->nline += take;
			data += take;
			len -= take;
			seg -= take;
		}
		if (nl == NULL || w->err != 0)
			break;
		data++;
		len--;
		mime_line_end(w, false);
	}
	if (w->err == 0 && w->nframes > 0 && !w->in_headers)
		mime_out_flush(w);
	return w->err;
}

int mime_finish(struct mime_walker *w)
{
	if (w->finished)
		return w->err;
	if (w->err == 0 && (w->nline > 0 || w->line_over))
		mime_line_end(w, true);
	/* Innermost first; after an error, ends without more content. */
	while (w->nframes > 0)
		mime_pop(w, true);
	w->finished = true;
	return w->err;
}

/* A walker with exactly these limits (0 is a limit here, not "the default"). */
static struct mime_walker *mime_new_exact(const struct mime_limits *lim,
    const struct mime_callbacks *cb, void *arg)
{
	struct mime_walker *w = xcalloc(1, sizeof *w);

	w->lim = *lim;
	if (cb != NULL)
		w->cb = *cb;
	w->arg = arg;
	(void)mime_push(w);
	return w;
}

struct mime_walker *mime_new(const struct mime_limits *limits, const struct mime_callbacks *cb,
    void *arg)
{
	struct mime_limits lim = { 0 };

	if (limits != NULL)
		lim = *limits;
	if (lim.max_depth == 0)
		lim.max_depth = 32;
	if (lim.max_parts == 0)
		lim.max_parts = 1000;
	if (lim.max_header_bytes == 0)
		lim.max_header_bytes = 256 * 1024;
	return mime_new_exact(&lim, cb, arg);
}

void mime_free(struct mime_walker *w)
{
	if (w == NULL)
		return;
	mime_free(w->inner);
	for (unsigned i = 0; i < w->nalloc; i++)
		free(w->frames[i]);
	free(w->frames);
	free(w->field);
	free(w);
}

unsigned mime_part_count(const struct mime_walker *w)
{
	return w->nparts;
}
