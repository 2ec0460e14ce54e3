/*
 * dkim_canon: DKIM body canonicalization into SHA-256 (see dkim_canon.h).
 *
 * Runs of ordinary content go to the hash at once; only line ends and
 * whitespace are looked at byte by byte. Empty lines are counted, not
 * written, until content follows them, so the empty lines at the end of
 * the body vanish as both canonicalizations require.
 *
 * Entry points: dkim_sha256, dkim_body_canon_init/_feed/_final/_free.
 * OWNERSHIP: the state owns its digest context.
 * THREADS: any; one state is used by one thread at a time.
 * ERRORS: an OpenSSL failure sets failed; final then returns -1.
 */
#include "config.h"

#include <pthread.h>
#include <string.h>

#include "policy/dkim_canon.h"

static EVP_MD *dkim_md;

static void dkim_sha256_fetch(void)
{
	dkim_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

const EVP_MD *dkim_sha256(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	(void)pthread_once(&once, dkim_sha256_fetch);
	return dkim_md != NULL ? dkim_md : EVP_sha256();
}

static bool dkim_is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

int dkim_body_canon_init(struct dkim_body_canon *b, bool relaxed)
{
	memset(b, 0, sizeof *b);
	b->relaxed = relaxed;
	b->md = EVP_MD_CTX_new();
	if (b->md == NULL || EVP_DigestInit_ex(b->md, dkim_sha256(), NULL) != 1)
		b->failed = true;
	return b->failed ? -1 : 0;
}

void dkim_body_canon_free(struct dkim_body_canon *b)
{
	EVP_MD_CTX_free(b->md);
	b->md = NULL;
}

static void dkim_flush(struct dkim_body_canon *b)
{
	if (b->n > 0 && !b->failed && EVP_DigestUpdate(b->md, b->out, b->n) != 1)
		b->failed = true;
	b->n = 0;
}

static void dkim_put(struct dkim_body_canon *b, const char *p, size_t n)
{
	if (n >= 256) {
		/* A long run goes to the hash as it is, not through the buffer. */
		dkim_flush(b);
		if (!b->failed && EVP_DigestUpdate(b->md, p, n) != 1)
			b->failed = true;
		return;
	}
	while (n > 0) {
		size_t room = sizeof b->out - b->n;
		size_t k = n < room ? n : room;

		if (room == 0) {
			dkim_flush(b);
			continue;
		}
		memcpy(b->out + b->n, p, k);
		b->n += k;
		p += k;
		n -= k;
	}
}

/* Content from p (n bytes): the line ends and the WSP run before it first. */
static void dkim_content(struct dkim_body_canon *b, const char *p, size_t n)
{
	for (; b->crlf > 0; b->crlf--)
		dkim_put(b, "\r\n", 2);
	if (b->wsp)
		dkim_put(b, " ", 1);
	b->wsp = false;
	b->any = true;
	dkim_put(b, p, n);
}

/*
 * How far from i the content run goes: up to a CR, and in relaxed mode
 * up to a tab or a space that is not a single space between words
 * (relaxed keeps those as they are).
 */
static size_t dkim_run_end(const struct dkim_body_canon *b, const char *data, size_t len,
    size_t i)
{
	size_t j = i + 1;

	if (!b->relaxed) {
		const char *cr = memchr(data + j, '\r', len - j);

		return cr != NULL ? (size_t)(cr - data) : len;
	}
	while (j < len && data[j] != '\r' && data[j] != '\t') {
		if (data[j] == ' ' && (j + 1 >= len || dkim_is_wsp(data[j + 1]) ||
		    data[j + 1] == '\r'))
			break;
		j++;
	}
	return j;
}

/*
 * Simple (3.4.3): the body as it is, but empty lines at the end go.
 * Relaxed (3.4.4): also WSP at the end of a line goes and other WSP runs
 * become one SP. Either way a line is ended by CRLF; a bare CR is content.
 */
void dkim_body_canon_feed(struct dkim_body_canon *b, const char *data, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = data[i];

		if (!b->cr && c != '\r' && !(b->relaxed && dkim_is_wsp(c))) {
			size_t j = dkim_run_end(b, data, len, i);

			dkim_content(b, data + i, j - i);
			i = j - 1;
			continue;
		}
		if (b->cr) {
			b->cr = false;
			if (c == '\n') {
				b->wsp = false;
				b->crlf++;
				continue;
			}
			dkim_content(b, "\r", 1);   /* a bare CR is content */
		}
		if (c == '\r')
			b->cr = true;
		else if (b->relaxed && dkim_is_wsp(c))
			b->wsp = true;
		else
			dkim_content(b, &c, 1);
	}
}

int dkim_body_canon_final(struct dkim_body_canon *b, unsigned char *hash, unsigned *hlen)
{
	if (b->cr) {
		b->cr = false;
		dkim_content(b, "\r", 1);
	}
	/*
	 * A body with content ends with exactly one CRLF; an empty body is
	 * empty in relaxed and one CRLF in simple (RFC 6376 3.4.3, 3.4.4).
	 */
	if (b->any || !b->relaxed)
		dkim_put(b, "\r\n", 2);
	dkim_flush(b);
	*hlen = 0;
	if (b->failed || EVP_DigestFinal_ex(b->md, hash, hlen) != 1)
		return -1;
	return 0;
}
