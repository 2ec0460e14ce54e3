/*
 * mime_words: the header-value decoders of the MIME module
 * (policy/mime.h): RFC 2047 encoded words ("=?charset?B|Q?...?=") in
 * unstructured values and quoted names, and RFC 2231 parameters
 * (continuations name*0*=, charset'lang'%XX) of structured fields
 * (Content-Type, Content-Disposition, RFC 2045 section 5.1 and RFC 2183),
 * both to bounded UTF-8.
 *
 * Entry points: mime_decode_words, mime_address_text, mime_param.
 * OWNERSHIP: values are borrowed; output goes to the caller's buffer.
 * THREADS: any; no global state.
 * ERRORS: mime_param returns MIME_E_AMBIGUOUS when a parameter is given
 * twice in the same form (two readers would pick different ones);
 * otherwise nothing fails: what cannot be decoded is left as written
 * (RFC 2047 section 6.3), controls and invalid UTF-8 become U+FFFD.
 */
#include "config.h"

#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/mime.h"
#include "policy/mime_int.h"

#define MIME_SEGMENTS 64   /* RFC 2231 continuations kept: name*0 .. name*63 */
#define MIME_CS_MAX 48     /* charset name bytes kept */

static int mime_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 2047 section 4.1: "B" text to bytes; -1 on a character outside base64. */
static int mime_word_b(const char *s, size_t n, char *out, size_t *olen)
{
	unsigned acc = 0, bits = 0;

	*olen = 0;
	for (size_t i = 0; i < n; i++) {
		int v;

		if (s[i] == '=')
			break;
		if ((v = b64_value((unsigned char)s[i])) < 0)
			return -1;
		acc = (acc << 6 | (unsigned)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[(*olen)++] = (char)(acc >> bits & 0xff);
		}
	}
	return 0;
}

/* RFC 2047 section 4.2: "Q" text to bytes ("_" is a space); -1 on a bad =XX. */
static int mime_word_q(const char *s, size_t n, char *out, size_t *olen)
{
	*olen = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '_') {
			out[(*olen)++] = ' ';
		} else if (s[i] == '=') {
			int hi, lo;

			if (i + 2 >= n)
				return -1;
			hi = mime_hex((unsigned char)s[i + 1]);
			lo = mime_hex((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			out[(*olen)++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[(*olen)++] = s[i];
		}
	}
	return 0;
}

/* Whether iconv knows the charset (opened and closed once). */
static bool mime_cs_known(const char *cs)
{
	iconv_t cd;

	if (!mime__charset_ok(cs))
		return false;
	if ((cd = iconv_open("UTF-8", cs)) == (iconv_t)-1)
		return false;
	iconv_close(cd);
	return true;
}

/*
 * One encoded word at s (n bytes left): its charset (RFC 2231 section 5
 * "*lang" cut off), its decoded bytes into raw and its length in the
 * input; 0 when s does not start a decodable word.
 */
static size_t mime_word(const char *s, size_t n, char cs[MIME_CS_MAX], char *raw, size_t *rawlen)
{
	size_t i = 2, c0, e, t0;
	char enc;

	if (n < 8 || s[0] != '=' || s[1] != '?')
		return 0;
	for (c0 = i; i < n && s[i] != '?'; i++)
		if ((unsigned char)s[i] <= ' ' || (unsigned char)s[i] >= 0x7f || i - c0 >= MIME_CS_MAX)
			return 0;
	if (i >= n || i == c0 || i - c0 >= MIME_CS_MAX || i + 2 >= n || s[i + 2] != '?')
		return 0;
	memcpy(cs, s + c0, i - c0);
	cs[i - c0] = '\0';
	if (strchr(cs, '*') != NULL)
		*strchr(cs, '*') = '\0';
	enc = s[i + 1];
	t0 = i + 3;
	for (e = t0; e + 1 < n && !(s[e] == '?' && s[e + 1] == '='); e++)
		if ((unsigned char)s[e] <= ' ' || s[e] == '?')
			return 0;
	if (e + 1 >= n)
		return 0;
	if (enc == 'B' || enc == 'b') {
		if (mime_word_b(s + t0, e - t0, raw, rawlen) != 0)
			return 0;
	} else if (enc == 'Q' || enc == 'q') {
		if (mime_word_q(s + t0, e - t0, raw, rawlen) != 0)
			return 0;
	} else {
		return 0;
	}
	if (!mime_cs_known(cs))
		return 0;
	return e + 2;
}

/*
 * RFC 2047 section 6.2: white space between adjacent encoded words is
 * dropped. Adjacent words in one charset are joined before conversion,
 * since clients split a UTF-8 character across two B words.
 */
size_t mime_decode_words(const char *value, size_t len, char *out, size_t outlen)
{
	char *run = xmalloc(len + 1), *raw = xmalloc(len + 1);
	char runcs[MIME_CS_MAX] = "", cs[MIME_CS_MAX];
	size_t used = 0, nrun = 0, i = 0;
	bool inrun = false;

	if (outlen == 0) {
		free(run);
		free(raw);
		return 0;
	}
	out[0] = '\0';
	while (i < len) {
		size_t rawlen = 0, wl = mime_word(value + i, len - i, cs, raw, &rawlen), j;

		if (wl > 0) {
			if (inrun && strcasecmp(cs, runcs) != 0) {
				mime__to_utf8(runcs, run, nrun, out, outlen, &used);
				nrun = 0;
			}
			memcpy(runcs, cs, sizeof runcs);
			memcpy(run + nrun, raw, rawlen);
			nrun += rawlen;
			inrun = true;
			i += wl;
			continue;
		}
		/* Linear white space after a word: dropped if another word follows. */
		for (j = i; j < len && (value[j] == ' ' || value[j] == '\t' || value[j] == '\r' ||
		    value[j] == '\n'); j++)
			;
		if (inrun && j > i && j < len && mime_word(value + j, len - j, cs, raw, &rawlen) > 0) {
			i = j;
			continue;
		}
		if (inrun) {
			mime__to_utf8(runcs, run, nrun, out, outlen, &used);
			nrun = 0;
			inrun = false;
		}
		if (j == i)
			j = i + 1;
		/* Plain text up to the next possible word start. */
		while (j < len && !(value[j] == '=' && j + 1 < len && value[j + 1] == '?'))
			j++;
		mime__put(value + i, j - i, out, outlen, &used);
		i = j;
	}
	if (inrun)
		mime__to_utf8(runcs, run, nrun, out, outlen, &used);
	free(run);
	free(raw);
	return used < outlen ? used : strlen(out);
}

/* ----------------------------------------------------- address text */

struct mime_atext {
	char raw[MIME_ADDRESS_TEXT_MAX];
	size_t n;
	bool at;                /* the piece holds an '@' */
	void (*fn)(void *arg, const char *utf8, size_t len);
	void *arg;
};

static void mime_atext_put(struct mime_atext *a, char c, bool quoted)
{
	if (c == '\r' || c == '\n' || c == '\t')
		c = ' ';
	if (c == ' ' && (a->n == 0 || a->raw[a->n - 1] == ' '))
		return;
	if (c == '@' && !quoted)
		a->at = true;
	if (a->n < sizeof a->raw)
		a->raw[a->n++] = c;
}

/* The words of the piece that hold an '@' (addresses) go; the rest stays. */
static void mime_atext_drop_addresses(struct mime_atext *a)
{
	size_t from = 0, to = 0;

	while (from < a->n) {
		const char *sp = memchr(a->raw + from, ' ', a->n - from);
		size_t end = sp != NULL ? (size_t)(sp - a->raw) : a->n;

		if (memchr(a->raw + from, '@', end - from) == NULL) {
			if (to > 0)
				a->raw[to++] = ' ';
			memmove(a->raw + to, a->raw + from, end - from);
			to += end - from;
		}
		from = end + 1;
	}
	a->n = to;
}

/*
 * The piece so far goes to fn, or away (keep false), or without its
 * addresses (an '@' outside quotes and no angle brackets); either way a
 * new one starts.
 */
static void mime_atext_end(struct mime_atext *a, bool keep)
{
	char out[2 * MIME_ADDRESS_TEXT_MAX];
	size_t n;

	if (keep && a->at)
		mime_atext_drop_addresses(a);
	while (a->n > 0 && a->raw[a->n - 1] == ' ')
		a->n--;
	if (keep && a->n > 0) {
		/* What decodes to nothing (an empty encoded word) is no piece. */
		n = mime_decode_words(a->raw, a->n, out, sizeof out);
		if (n > 0)
			a->fn(a->arg, out, n);
	}
	a->n = 0;
	a->at = false;
}

/*
 * One pass over the value (RFC 5322 3.4): quoted strings and atoms make
 * the current piece; '<' shows it was a display name, and the address up
 * to '>' is skipped; ':' ends a group name; ',' and ';' end a mailbox,
 * whose piece without '<' is its addr-spec, or text a reader shows as
 * written around one ("So 0012... a@x.vn"): its words with an '@' go. A
 * comment is a piece of its own wherever it stands.
 */
void mime_address_text(const char *value, size_t len,
    void (*fn)(void *arg, const char *utf8, size_t len), void *arg)
{
	struct mime_atext a = { .fn = fn, .arg = arg };
	struct mime_atext comment = { .fn = fn, .arg = arg };
	size_t i = 0;

	while (i < len) {
		char c = value[i++];

		if (c == '"') {
			while (i < len && value[i] != '"') {
				if (value[i] == '\\' && i + 1 < len)
					i++;
				mime_atext_put(&a, value[i++], true);
			}
			i++;            /* the closing quote, if any */
		} else if (c == '(') {
			unsigned depth = 1;

			while (i < len && depth > 0) {
				c = value[i++];
				if (c == '\\' && i < len)
					c = value[i++];
				else if (c == '(')
					depth++;
				else if (c == ')' && --depth == 0)
					break;
				mime_atext_put(&comment, c, true);
			}
			mime_atext_end(&comment, true);
			mime_atext_put(&a, ' ', false);
		} else if (c == '<') {
			mime_atext_end(&a, true);
			while (i < len && value[i] != '>')
				i++;
			i++;
		} else if (c == ':') {
			mime_atext_end(&a, true);
		} else if (c == ',' || c == ';') {
			mime_atext_end(&a, true);
		} else {
			mime_atext_put(&a, c, false);
		}
	}
	mime_atext_end(&a, true);
}

/* ---------------------------------------------------------------- parameters */

struct mime_pscan {
	const char *s;
	size_t n, i;
};

/* Skips white space and RFC 822 comments (nested, with quoted pairs). */
static void mime_cfws(struct mime_pscan *p)
{
	unsigned depth = 0;

	while (p->i < p->n) {
		char c = p->s[p->i];

		if (depth == 0 && (c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
			p->i++;
		} else if (c == '(') {
			depth++;
			p->i++;
		} else if (depth > 0 && c == ')') {
			depth--;
			p->i++;
		} else if (depth > 0 && c == '\\') {
			p->i += p->i + 1 < p->n ? 2 : 1;
		} else if (depth > 0) {
			p->i++;
		} else {
			return;
		}
	}
}

/* RFC 2045 section 5.1 tspecials, with space and controls. */
static bool mime_is_tspecial(unsigned char c)
{
	return c <= ' ' || c == 0x7f || strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

/*
 * A parameter value at p: a quoted string (quoted pairs undone, into out)
 * or a token; a bare value that runs on past a token (filename=my file.pdf)
 * is taken up to the next ';' as clients do. Returns its length in out.
 */
static size_t mime_pvalue(struct mime_pscan *p, char *out, bool *runon)
{
	size_t o = 0;

	*runon = false;
	if (p->i < p->n && p->s[p->i] == '"') {
		for (p->i++; p->i < p->n && p->s[p->i] != '"'; p->i++) {
			if (p->s[p->i] == '\\' && p->i + 1 < p->n)
				p->i++;
			if (p->s[p->i] != '\r' && p->s[p->i] != '\n')
				out[o++] = p->s[p->i];
		}
		if (p->i < p->n)
			p->i++;
		return o;
	}
	while (p->i < p->n && !mime_is_tspecial((unsigned char)p->s[p->i]) && p->s[p->i] != ';')
		out[o++] = p->s[p->i++];
	{
		size_t save = p->i, k;

		mime_cfws(p);
		if (p->i >= p->n || p->s[p->i] == ';')
			return o;
		/* Runs on: take the raw text to ';', trailing white space trimmed. */
		*runon = true;
		p->i = save;
		for (k = p->i; k < p->n && p->s[k] != ';'; k++)
			;
		while (k > p->i && (p->s[k - 1] == ' ' || p->s[k - 1] == '\t'))
			k--;
		memcpy(out + o, p->s + p->i, k - p->i);
		o += k - p->i;
		p->i = k;
	}
	return o;
}

struct mime_seg {
	const char *v;   /* into the scan's value copy */
	size_t len;
	bool set, enc;
	bool runon;      /* a bare value with spaces: readers may cut it anywhere */
};

struct mime_pstate {
	char *vals;      /* every value, unquoted, back to back */
	size_t nvals;
	struct mime_seg plain, star, seg[MIME_SEGMENTS];
	bool ambiguous;
	bool runon;      /* the value being filed ran on */
};

static void mime_pstore(struct mime_pstate *st, struct mime_seg *s, const char *v, size_t len,
    bool enc)
{
	if (s->set) {
		st->ambiguous = true;
		return;
	}
	s->v = st->vals + st->nvals;
	memcpy(st->vals + st->nvals, v, len);
	st->nvals += len;
	s->len = len;
	s->set = true;
	s->enc = enc;
	s->runon = st->runon;
}

/*
 * Files one attribute=value under the parameter asked for, by its RFC 2231
 * section 3-4 form: name, name*, name*N or name*N*.
 */
static void mime_pfile(struct mime_pstate *st, const char *attr, size_t alen, const char *name,
    const char *v, size_t vlen)
{
	size_t nl = strlen(name), rl, d = 1;
	const char *rest;
	unsigned num = 0;

	if (alen < nl || strncasecmp(attr, name, nl) != 0)
		return;
	rest = attr + nl;
	rl = alen - nl;
	if (rl == 0) {
		mime_pstore(st, &st->plain, v, vlen, false);
		return;
	}
	if (rest[0] != '*')
		return;
	if (rl == 1) {
		mime_pstore(st, &st->star, v, vlen, true);
		return;
	}
	while (d < rl && rest[d] >= '0' && rest[d] <= '9' && d < 4)
		num = num * 10 + (unsigned)(rest[d++] - '0');
	if (d == 1 || (d < rl && !(d + 1 == rl && rest[d] == '*')) || (rest[1] == '0' && d > 2))
		return;
	if (num < MIME_SEGMENTS)
		mime_pstore(st, &st->seg[num], v, vlen, d < rl);
}

/* RFC 2231 section 4: %XX undone (a bad one kept as written). */
static size_t mime_pct(const char *v, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int hi, lo;

		if (v[i] == '%' && i + 2 < len &&
		    (hi = mime_hex((unsigned char)v[i + 1])) >= 0 &&
		    (lo = mime_hex((unsigned char)v[i + 2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = v[i];
		}
	}
	return o;
}

/*
 * Joins the extended value (name* or name*0.. up to the first gap) into
 * bytes, the charset taken from the first segment's charset'lang' prefix,
 * and converts them to UTF-8.
 */
static int mime_pjoin(struct mime_pstate *st, char *out, size_t outlen, bool raw)
{
	struct mime_seg *first = st->star.set ? &st->star : &st->seg[0];
	unsigned nseg = st->star.set ? 1 : MIME_SEGMENTS;
	char cs[MIME_CS_MAX] = "", *bytes = xmalloc(st->nvals + 1);
	size_t nb = 0, used = 0;

	for (unsigned k = 0; k < nseg; k++) {
		struct mime_seg *s = k == 0 ? first : &st->seg[k];
		const char *v = s->v;
		size_t len = s->len;

		if (!s->set)
			break;
		if (k == 0 && s->enc) {
			const char *q1 = memchr(v, '\'', len), *q2;

			if (q1 != NULL && (q2 = memchr(q1 + 1, '\'', len - (size_t)(q1 + 1 - v))) != NULL) {
				size_t cl = (size_t)(q1 - v) < sizeof cs ? (size_t)(q1 - v) : 0;

				memcpy(cs, v, cl);
				cs[cl] = '\0';
				len -= (size_t)(q2 + 1 - v);
				v = q2 + 1;
			}
		}
		if (s->enc) {
			nb += mime_pct(v, len, bytes + nb);
		} else {
			memcpy(bytes + nb, v, len);
			nb += len;
		}
	}
	if (outlen > 0 && raw) {
		used = nb < outlen - 1 ? nb : outlen - 1;
		memcpy(out, bytes, used);
		out[used] = '\0';
	} else if (outlen > 0) {
		out[0] = '\0';
		mime__to_utf8(cs, bytes, nb, out, outlen, &used);
	}
	free(bytes);
	return 1;
}

int mime__param(const char *value, size_t len, const char *name, char *out, size_t outlen,
    bool raw)
{
	struct mime_pscan p = { value, len, 0 };
	struct mime_pstate st;
	char *v = xmalloc(len + 1);
	int rc = 0;

	memset(&st, 0, sizeof st);
	st.vals = xmalloc(len + 1);
	if (outlen > 0)
		out[0] = '\0';
	/* The field's own value (type/subtype, disposition) ends at the first ';'. */
	while (p.i < p.n && p.s[p.i] != ';') {
		if (p.s[p.i] == '"') {
			(void)mime_pvalue(&p, v, &st.runon);
		} else if (p.s[p.i] == '(') {
			mime_cfws(&p);
		} else {
			p.i++;
		}
	}
	while (p.i < p.n) {
		size_t a0, a1, vl;

		p.i++;   /* the ';' */
		mime_cfws(&p);
		for (a0 = p.i; p.i < p.n && !mime_is_tspecial((unsigned char)p.s[p.i]); p.i++)
			;
		a1 = p.i;
		mime_cfws(&p);
		if (a1 == a0 || p.i >= p.n || p.s[p.i] != '=') {
			while (p.i < p.n && p.s[p.i] != ';')
				p.i++;
			continue;
		}
		p.i++;
		mime_cfws(&p);
		vl = mime_pvalue(&p, v, &st.runon);
		mime_pfile(&st, p.s + a0, a1 - a0, name, v, vl);
		mime_cfws(&p);
		while (p.i < p.n && p.s[p.i] != ';')
			p.i++;
	}
	if (st.ambiguous || (st.star.set && st.seg[0].set) ||
	    (raw && st.plain.set && st.plain.runon && !st.star.set && !st.seg[0].set)) {
		/* A bare boundary with spaces in it: where it ends is a guess. */
		rc = MIME_E_AMBIGUOUS;
	} else if (st.star.set || st.seg[0].set) {
		/* RFC 2231 form first: clients send name= as well for old readers. */
		rc = mime_pjoin(&st, out, outlen, raw);
	} else if (st.plain.set && raw) {
		size_t n = st.plain.len < outlen - 1 ? st.plain.len : outlen - 1;

		if (outlen > 0) {
			memcpy(out, st.plain.v, n);
			out[n] = '\0';
		}
		rc = 1;
	} else if (st.plain.set && !mime__utf8_valid(st.plain.v, st.plain.len)) {
		/* Raw 8-bit, not UTF-8 (RFC 6532 would be): an old client's charset. */
		size_t used = 0;

		if (outlen > 0)
			mime__to_utf8("", st.plain.v, st.plain.len, out, outlen, &used);
		rc = 1;
	} else if (st.plain.set) {
		/* Some clients put RFC 2047 words inside the quotes (RFC 2047 section 5 forbids it). */
		mime_decode_words(st.plain.v, st.plain.len, out, outlen);
		rc = 1;
	}
	free(st.vals);
	free(v);
	return rc;
}

int mime_param(const char *value, size_t len, const char *name, char *out, size_t outlen)
{
	return mime__param(value, len, name, out, outlen, false);
}
