/*
 * test_mime: the streaming MIME walker (policy/mime.c), its header-value
 * decoders (policy/mime_words.c: RFC 2047 words, RFC 2231 parameters) and
 * its charset converter (policy/mime_text.c). Each walker case is a real
 * message with the events it must give, written as one line: "<N type
 * ...>" for a begin, the decoded content escaped, "</N>" for an end; the
 * same message is also fed one byte at a time and cut in two at every
 * byte position, and must give the very same events.
 *
 * OWNERSHIP: none. THREADS: Check forks one process per test.
 * ERRORS: assertion failures.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "policy/mime.h"

#define N_CASES(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---------------------------------------------------------------- event log */

struct tlog {
	char *s;
	size_t n, cap;
	char *hdr;              /* header events, apart */
	size_t hn, hcap;
	int open;               /* begins minus ends */
	unsigned max_depth;
	bool bad;               /* an event out of order */
	char *out;              /* text outside the parts: "{INDEX}text" per stretch */
	size_t on, ocap;
	long out_part;          /* the stretch being logged, -1 after any other event */
};

static void tput(char **s, size_t *n, size_t *cap, const char *p, size_t len)
{
	if (*n + len + 1 > *cap) {
		*cap = (*n + len + 1) * 2;
		*s = xrealloc(*s, *cap);
	}
	memcpy(*s + *n, p, len);
	*n += len;
	(*s)[*n] = '\0';
}

static void tesc(char **s, size_t *n, size_t *cap, const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		char b[8];

		if (c == '\r')
			tput(s, n, cap, "\\r", 2);
		else if (c == '\n')
			tput(s, n, cap, "\\n", 2);
		else if (c < 0x20 || c == 0x7f)
			tput(s, n, cap, b, (size_t)snprintf(b, sizeof b, "\\x%02x", c));
		else
			tput(s, n, cap, (const char *)p + i, 1);
	}
}

static void t_header(void *arg, const struct mime_part *p, const char *name, const char *value,
    size_t len)
{
	struct tlog *l = arg;
	char b[64];

	tput(&l->hdr, &l->hn, &l->hcap, b, (size_t)snprintf(b, sizeof b, "%u:", p->index));
	tput(&l->hdr, &l->hn, &l->hcap, name, strlen(name));
	tput(&l->hdr, &l->hn, &l->hcap, "=", 1);
	tesc(&l->hdr, &l->hn, &l->hcap, value, len);
	tput(&l->hdr, &l->hn, &l->hcap, ";", 1);
}

static void t_begin(void *arg, const struct mime_part *p)
{
	struct tlog *l = arg;
	char b[2048];
	int k = snprintf(b, sizeof b, "<%u %s", p->index, p->type);

	if (p->charset[0] != '\0')
		k += snprintf(b + k, sizeof b - (size_t)k, " cs=%s", p->charset);
	if (p->filename != NULL)
		k += snprintf(b + k, sizeof b - (size_t)k, " fn=%s", p->filename);
	if (p->disposition[0] != '\0')
		k += snprintf(b + k, sizeof b - (size_t)k, " %s", p->disposition);
	if (p->depth > 0)
		k += snprintf(b + k, sizeof b - (size_t)k, " d%u p%u", p->depth, p->parent);
	tput(&l->s, &l->n, &l->cap, b, (size_t)k);
	tput(&l->s, &l->n, &l->cap, ">", 1);
	l->out_part = -1;
	l->open++;
	if (p->depth > l->max_depth)
		l->max_depth = p->depth;
}

static void t_data(void *arg, const struct mime_part *p, const char *d, size_t len)
{
	struct tlog *l = arg;

	if (p->multipart || l->open == 0)
		l->bad = true;
	tesc(&l->s, &l->n, &l->cap, d, len);
}

static void t_end(void *arg, const struct mime_part *p)
{
	struct tlog *l = arg;
	char b[32];

	l->open--;
	l->out_part = -1;
	if (l->open < 0)
		l->bad = true;
	tput(&l->s, &l->n, &l->cap, b, (size_t)snprintf(b, sizeof b, "</%u>", p->index));
}

/* Logged apart, a marker per stretch, so however the input is cut the log is the same. */
static void t_outside(void *arg, const struct mime_part *p, const char *d, size_t len)
{
	struct tlog *l = arg;
	char b[32];

	if (!p->multipart || l->open == 0 || len == 0)
		l->bad = true;
	if (l->out_part != (long)p->index)
		tput(&l->out, &l->on, &l->ocap, b, (size_t)snprintf(b, sizeof b, "{%u}", p->index));
	l->out_part = p->index;
	tesc(&l->out, &l->on, &l->ocap, d, len);
}

static const struct mime_callbacks t_cb = { t_header, t_begin, t_data, t_end, t_outside };

/*
 * Walks msg in pieces: step 0 all at once, step > 0 that many bytes at a
 * time, or (cut > 0) two pieces cut at byte cut. Returns mime_finish's code.
 */
static int twalk(const char *msg, size_t len, const struct mime_limits *lim, size_t step,
    size_t cut, struct tlog *l)
{
	struct mime_walker *w;
	int rc;

	memset(l, 0, sizeof *l);
	tput(&l->s, &l->n, &l->cap, "", 0);
	tput(&l->hdr, &l->hn, &l->hcap, "", 0);
	tput(&l->out, &l->on, &l->ocap, "", 0);
	l->out_part = -1;
	w = mime_new(lim, &t_cb, l);
	if (cut > 0) {
		mime_feed(w, msg, cut);
		mime_feed(w, msg + cut, len - cut);
	} else if (step == 0) {
		mime_feed(w, msg, len);
	} else {
		for (size_t i = 0; i < len; i += step)
			mime_feed(w, msg + i, len - i < step ? len - i : step);
	}
	rc = mime_finish(w);
	ck_assert_int_eq(mime_finish(w), rc);
	mime_free(w);
	ck_assert_msg(l->open == 0 && !l->bad, "begins and ends pair up");
	return rc;
}

static void tlog_free(struct tlog *l)
{
	free(l->s);
	free(l->hdr);
	free(l->out);
}

/* ---------------------------------------------------------------- walker cases */

#define NESTED \
	"From: a@city.vn\r\n" \
	"MIME-Version: 1.0\r\n" \
	"Content-Type: multipart/mixed;\r\n boundary=\"outer\"\r\n" \
	"\r\n" \
	"This is a multi-part message in MIME format.\r\n" \
	"--outer\r\n" \
	"Content-Type: text/plain; charset=UTF-8\r\n" \
	"Content-Transfer-Encoding: quoted-printable\r\n" \
	"\r\n" \
	"K=C3=ADnh g=E1=BB=ADi, soft=\r\nbreak =ZZ bad\r\n" \
	"--outer\r\n" \
	"Content-Type: message/rfc822\r\n" \
	"Content-Disposition: attachment; filename=\"fwd.eml\"\r\n" \
	"\r\n" \
	"Subject: =?UTF-8?B?VOG7kWkgbeG6rXQ=?=\r\n" \
	"Content-Type: multipart/alternative; boundary=inner\r\n" \
	"\r\n" \
	"--inner\r\n" \
	"Content-Type: text/plain\r\n" \
	"\r\n" \
	"inner text\r\n" \
	"--inner--\r\n" \
	"\r\n" \
	"--outer\r\n" \
	"Content-Type: application/pdf; name=\"a.pdf\"\r\n" \
	"Content-Disposition: attachment;\r\n" \
	"\tfilename*=UTF-8''T%E1%BB%90I%20M%E1%BA%ACT.pdf\r\n" \
	"Content-Transfer-Encoding: base64\r\n" \
	"\r\n" \
	"SGVsbG8g\r\nUERG\r\n" \
	"--outer--\r\n" \
	"epilogue\r\n"

static const struct {
	const char *label;
	const char *msg;
	struct mime_limits lim;
	int rc;
	const char *events;
	const char *headers;      /* NULL: not checked */
} walk_cases[] = {
	{ "plain message, no MIME",
	  "Subject: hi\r\n\r\nhello\r\nworld\r\n", { 0, 0, 0 }, 0,
	  "<0 text/plain>hello\\r\\nworld\\r\\n</0>", "0:Subject=hi;" },
	{ "multipart/mixed with a nested message/rfc822", NESTED, { 0, 0, 0 }, 0,
	  "<0 multipart/mixed>"
	  "<1 text/plain cs=utf-8 d1 p0>K\xc3\xadnh g\xe1\xbb\xadi, softbreak =ZZ bad</1>"
	  "<2 message/rfc822 fn=fwd.eml attachment d1 p0>"
	  "<3 multipart/alternative d2 p2><4 text/plain d3 p3>inner text</4></3></2>"
	  "<5 application/pdf fn=T\xe1\xbb\x90I M\xe1\xba\xacT.pdf attachment d1 p0>Hello PDF</5>"
	  "</0>",
	  "0:From=a@city.vn;0:MIME-Version=1.0;0:Content-Type=multipart/mixed; boundary=\"outer\";"
	  "1:Content-Type=text/plain; charset=UTF-8;1:Content-Transfer-Encoding=quoted-printable;"
	  "2:Content-Type=message/rfc822;2:Content-Disposition=attachment; filename=\"fwd.eml\";"
	  "3:Subject==?UTF-8?B?VOG7kWkgbeG6rXQ=?=;"
	  "3:Content-Type=multipart/alternative; boundary=inner;"
	  "4:Content-Type=text/plain;"
	  "5:Content-Type=application/pdf; name=\"a.pdf\";"
	  "5:Content-Disposition=attachment;\\x09filename*=UTF-8''T%E1%BB%90I%20M%E1%BA%ACT.pdf;"
	  "5:Content-Transfer-Encoding=base64;" },
	{ "missing closing boundary: the part ends with the message",
	  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nfirst\r\n--b\r\n"
	  "Content-Type: text/html\r\n\r\n<p>last</p>\r\n", { 0, 0, 0 }, 0,
	  "<0 multipart/mixed><1 text/plain d1 p0>first</1>"
	  "<2 text/html d1 p0><p>last</p>\\r\\n</2></0>", NULL },
	{ "garbage before the first boundary is preamble",
	  "Content-Type: multipart/mixed; boundary=\"=_b\"\r\n\r\n"
	  "--=_bX not a delimiter\r\n-- =_b\r\ngarbage\x01\xff\r\n--=_b \t\r\n"
	  "Content-Type: text/plain\r\n\r\nbody\r\n--=_b--  \r\n", { 0, 0, 0 }, 0,
	  "<0 multipart/mixed><1 text/plain d1 p0>body</1></0>", NULL },
	{ "bad base64: foreign characters skipped, padding missing",
	  "Content-Type: text/plain\r\nContent-Transfer-Encoding: BASE64\r\n\r\n"
	  "SGVs!!bG8g*d2\r\n9yb\r\nGQ\r\n", { 0, 0, 0 }, 0,
	  "<0 text/plain>Hello world</0>", NULL },
	{ "base64 glued after padding still decoded",
	  "Content-Transfer-Encoding: base64\r\n\r\nSGk=SGk=\r\n", { 0, 0, 0 }, 0,
	  "<0 text/plain>HiHi</0>", NULL },
	{ "inner boundary missing: the outer delimiter closes the inner parts",
	  "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
	  "Content-Type: multipart/related; boundary=i\r\n\r\n--i\r\n\r\ninner\r\n"
	  "--o\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBO\r\n--o--\r\n",
	  { 0, 0, 0 }, 0,
	  "<0 multipart/mixed><1 multipart/related d1 p0><2 text/plain d2 p1>inner</2></1>"
	  "<3 image/png d1 p0>\x89PN</3></0>", NULL },
	{ "an outer delimiter in a nested message's header section",
	  "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
	  "Content-Type: message/rfc822\r\n\r\nSubject: cut\r\n--o\r\n\r\nnext\r\n--o--\r\n",
	  { 0, 0, 0 }, 0,
	  "<0 multipart/mixed><1 message/rfc822 d1 p0><2 text/plain d2 p1></2></1>"
	  "<3 text/plain d1 p0>next</3></0>", "0:Content-Type=multipart/mixed; boundary=o;"
	  "1:Content-Type=message/rfc822;2:Subject=cut;" },
	{ "multipart without a boundary is read as text",
	  "Content-Type: multipart/mixed\r\n\r\n--x\r\nhidden?\r\n", { 0, 0, 0 }, 0,
	  "<0 text/plain>--x\\r\\nhidden?\\r\\n</0>", NULL },
	/* RFC 2045 6.4: a reader that decodes it and one that does not see other parts. */
	{ "a base64-encoded multipart is refused",
	  "Content-Type: multipart/mixed; boundary=b\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	  "LS1iDQoNCmhp\r\n", { 0, 0, 0 }, MIME_E_AMBIGUOUS, "", NULL },
	{ "a quoted-printable multipart is refused, nested too",
	  "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n\r\nhi\r\n--o\r\n"
	  "Content-Type: multipart/alternative; boundary=b\r\n"
	  "Content-Transfer-Encoding: Quoted-Printable\r\n\r\n--b\r\n\r\nT=E1=BB=90I\r\n--b--\r\n"
	  "--o--\r\n", { 0, 0, 0 }, MIME_E_AMBIGUOUS,
	  "<0 multipart/mixed><1 text/plain d1 p0>hi</1></0>", NULL },
	{ "a 7bit multipart is walked",
	  "Content-Type: multipart/mixed; boundary=b\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
	  "--b\r\n\r\nhi\r\n--b--\r\n", { 0, 0, 0 }, 0,
	  "<0 multipart/mixed><1 text/plain d1 p0>hi</1></0>", NULL },
	/* Text a reader that ignores the encoding shows, the decoder would skip. */
	{ "a base64 message/rfc822 with text besides its alphabet is refused",
	  "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	  "U3ViamVjdDogaGkNCg0KeA==\r\nSubject: [TOI MAT]\r\n", { 0, 0, 0 }, MIME_E_AMBIGUOUS,
	  "<0 message/rfc822><1 text/plain d1 p0></1></0>", NULL },
	{ "a header section without its empty line",
	  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n"
	  "no colon here\r\n--b--\r\n", { 0, 0, 0 }, 0,
	  "<0 multipart/mixed><1 text/plain d1 p0>no colon here</1></0>", NULL },
	{ "LF-only lines and a last line without one",
	  "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/csv\n\na;b\nc;d\n--b--\n"
	  "epi", { 0, 0, 0 }, 0,
	  "<0 multipart/mixed><1 text/csv d1 p0>a;b\\nc;d</1></0>", NULL },
	{ "a delimiter after the close delimiter opens a part again",
	  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b--\r\n--b\r\n\r\nlate\r\n", { 0, 0, 0 },
	  0, "<0 multipart/mixed><1 text/plain d1 p0>late\\r\\n</1></0>", NULL },
	{ "multipart/digest children default to message/rfc822",
	  "Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: one\r\n\r\nbody\r\n"
	  "--d--\r\n", { 0, 0, 0 }, 0,
	  "<0 multipart/digest><1 message/rfc822 d1 p0><2 text/plain d2 p1>body</2></1></0>",
	  "0:Content-Type=multipart/digest; boundary=d;2:Subject=one;" },
	{ "RFC 2047 file name in Content-Type name= only",
	  "Content-Type: application/octet-stream;\r\n name=\"=?windows-1258?Q?T=F4=ECi_m=E2=F2t.doc?=\""
	  "\r\nContent-Disposition: ATTACHMENT\r\n\r\nx", { 0, 0, 0 }, 0,
	  "<0 application/octet-stream fn=T\xe1\xbb\x91i m\xe1\xba\xadt.doc attachment>x</0>", NULL },
	{ "identical duplicate Content-Type fields are fine",
	  "Content-Type: text/plain; charset=utf-8\r\ncontent-type: TEXT/Plain; charset=\"UTF-8\"\r\n\r\nx",
	  { 0, 0, 0 }, 0, "<0 text/plain cs=utf-8>x</0>", NULL },
	{ "duplicate boundary parameter",
	  "Content-Type: multipart/mixed; boundary=a; boundary=b\r\n\r\n--a\r\n\r\nx\r\n--b\r\n\r\ny\r\n",
	  { 0, 0, 0 }, MIME_E_AMBIGUOUS, "", NULL },
	{ "two Content-Type fields that disagree",
	  "Content-Type: text/plain\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n",
	  { 0, 0, 0 }, MIME_E_AMBIGUOUS, "", NULL },
	{ "two Content-Transfer-Encoding fields that disagree (in a part)",
	  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n"
	  "Content-Transfer-Encoding: 7bit\r\n\r\nRUlDQVI=\r\n--b--\r\n", { 0, 0, 0 }, MIME_E_AMBIGUOUS,
	  "<0 multipart/mixed></0>", NULL },
	{ "a multipart whose boundary never comes",
	  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--B\r\n\r\nhidden text\r\n", { 0, 0, 0 },
	  MIME_E_AMBIGUOUS, "<0 multipart/mixed></0>", NULL },
	{ "an inner multipart whose boundary never comes",
	  "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
	  "Content-Type: multipart/alternative; boundary=i\r\n\r\nhidden\r\n--o--\r\n", { 0, 0, 0 },
	  MIME_E_AMBIGUOUS, "<0 multipart/mixed><1 multipart/alternative d1 p0></1></0>", NULL },
	{ "an empty multipart, only blank lines, is fine",
	  "Content-Type: multipart/mixed; boundary=b\r\n\r\n\r\n \r\n", { 0, 0, 0 }, 0,
	  "<0 multipart/mixed></0>", NULL },
	{ "a bare boundary with a space in it",
	  "Content-Type: multipart/mixed; boundary=a b\r\n\r\n--a\r\n\r\nx\r\n--a b--\r\n", { 0, 0, 0 },
	  MIME_E_AMBIGUOUS, "", NULL },
	{ "two filename= parameters that disagree",
	  "Content-Disposition: attachment; filename=a.txt; filename=a.exe\r\n\r\nx\r\n", { 0, 0, 0 },
	  MIME_E_AMBIGUOUS, "", NULL },
	{ "part count limit",
	  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n1\r\n--b\r\n\r\n2\r\n--b\r\n\r\n3\r\n"
	  "--b\r\n\r\n4\r\n--b--\r\n", { 0, 4, 0 }, MIME_E_PARTS,
	  "<0 multipart/mixed><1 text/plain d1 p0>1</1><2 text/plain d1 p0>2</2>"
	  "<3 text/plain d1 p0>3</3></0>", NULL },
	{ "header size limit",
	  "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nX-Long: 0123456789012345678901234567\r\n"
	  " 0123456789\r\n\r\nx\r\n--b--\r\n", { 0, 0, 48 }, MIME_E_HEADER,
	  "<0 multipart/mixed></0>", NULL },
	{ "quoted-printable: trailing white space deleted, \"=\" + padding is a soft break",
	  "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	  "T=E1=BB=90I M= \t\r\n=E1=BA=ACT  \r\n"
	  "a = b\t\r\nc=  d\r\nlast \t", { 0, 0, 0 }, 0,
	  "<0 text/plain>T\xe1\xbb\x90I M\xe1\xba\xacT\\r\\na = b\\r\\nc=  d\\r\\nlast</0>",
	  NULL },
	/* 100 spaces: past the bytes held as written, deleted all the same. */
	{ "quoted-printable: a long run of padding after \"=\" or last on a line",
	  "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
	  "T=E1=BB=90I M=                                                                                                    \r\n=E1=BA=ACT                                                                                                    \t\r\n"
	  "a                                                                                                    b\r\n", { 0, 0, 0 }, 0,
	  "<0 text/plain>T\xe1\xbb\x90I M\xe1\xba\xacT\\r\\na                                                                                                    b\\r\\n</0>", NULL },
	{ "a base64-encoded message/rfc822 is walked as if it were not encoded",
	  "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
	  "--o\r\nContent-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n"
	  "Content-Disposition: attachment; filename=fwd.eml\r\n\r\n"
	  "U3ViamVjdDogPT9VVEYtOD9CP1cwM2h1cXhVWFNCaTRicWpiaUJuYUdrPT89DQpDb250ZW50LVR5\r\n"
	  "cGU6IG11bHRpcGFydC9taXhlZDsgYm91bmRhcnk9bg0KDQotLW4NCkNvbnRlbnQtVHlwZTogYXBw\r\n"
	  "bGljYXRpb24veC1tc2Rvd25sb2FkOyBuYW1lPSJhLmV4ZSINCg0KTVoNCi0tbi0tDQo=\r\n"
	  "--o\r\n\r\nafter\r\n--o--\r\n", { 0, 0, 0 }, 0,
	  "<0 multipart/mixed><1 text/plain d1 p0>hi</1>"
	  "<2 message/rfc822 fn=fwd.eml attachment d1 p0><3 multipart/mixed d2 p2>"
	  "<4 application/x-msdownload fn=a.exe d3 p3>MZ</4></3></2>"
	  "<5 text/plain d1 p0>after</5></0>",
	  "0:Content-Type=multipart/mixed; boundary=o;1:Content-Type=text/plain;"
	  "2:Content-Type=message/rfc822;2:Content-Transfer-Encoding=base64;"
	  "2:Content-Disposition=attachment; filename=fwd.eml;"
	  "3:Subject==?UTF-8?B?W03huqxUXSBi4bqjbiBnaGk=?=;3:Content-Type=multipart/mixed; boundary=n;"
	  "4:Content-Type=application/x-msdownload; name=\"a.exe\";" },
	{ "a quoted-printable message/rfc822 is walked too",
	  "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
	  "Subject: T=E1=BB=90I M=E1=BA=ACT\r\n\r\nx=\r\ny\r\n", { 0, 0, 0 }, 0,
	  "<0 message/rfc822><1 text/plain d1 p0>xy\\r\\n</1></0>",
	  "0:Content-Type=message/rfc822;0:Content-Transfer-Encoding=quoted-printable;"
	  "1:Subject=T\xe1\xbb\x90I M\xe1\xba\xacT;" },
	{ "depth limit through encoded message/rfc822 parts",
	  "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	  "Q29udGVudC1UeXBlOiBtZXNzYWdlL3JmYzgyMg0KQ29udGVudC1UcmFuc2Zlci1FbmNvZGluZzog\r\n"
	  "YmFzZTY0DQoNClEyOXVkR1Z1ZEMxVWVYQmxPaUJ0WlhOellXZGxMM0ptWXpneU1nMEtEUXBUZFdK\r\n"
	  "cVpXTjBPaUJrWldWd0RRb05DbmdOQ2c9PQ0K\r\n", { 2, 0, 0 }, MIME_E_DEPTH,
	  "<0 message/rfc822><1 message/rfc822 d1 p0><2 message/rfc822 d2 p1></2></1></0>", NULL },
	{ "the parts of an encoded message count against the limit",
	  "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
	  "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
	  "U3ViamVjdDogPT9VVEYtOD9CP1cwM2h1cXhVWFNCaTRicWpiaUJuYUdrPT89DQpDb250ZW50LVR5\r\n"
	  "cGU6IG11bHRpcGFydC9taXhlZDsgYm91bmRhcnk9bg0KDQotLW4NCkNvbnRlbnQtVHlwZTogYXBw\r\n"
	  "bGljYXRpb24veC1tc2Rvd25sb2FkOyBuYW1lPSJhLmV4ZSINCg0KTVoNCi0tbi0tDQo=\r\n"
	  "--o\r\n\r\nafter\r\n--o--\r\n", { 0, 3, 0 }, MIME_E_PARTS,
	  "<0 multipart/mixed><1 message/rfc822 d1 p0><2 multipart/mixed d2 p1></2></1></0>", NULL },
	{ "depth limit through message/rfc822",
	  "Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\n"
	  "Content-Type: message/rfc822\r\n\r\nSubject: deep\r\n\r\nx\r\n", { 2, 0, 0 }, MIME_E_DEPTH,
	  "<0 message/rfc822><1 message/rfc822 d1 p0><2 message/rfc822 d2 p1></2></1></0>", NULL },
};

static void tcheck_same(const char *label, const char *msg, size_t len,
    const struct mime_limits *lim, const struct tlog *ref, int rc)
{
	struct tlog l;

	ck_assert_msg(twalk(msg, len, lim, 1, 0, &l) == rc, "%s: one byte at a time: rc", label);
	ck_assert_msg(strcmp(l.s, ref->s) == 0 && strcmp(l.hdr, ref->hdr) == 0 &&
	    strcmp(l.out, ref->out) == 0, "%s: one byte at a time: %s", label, l.s);
	tlog_free(&l);
	for (size_t cut = 1; cut < len; cut++) {
		ck_assert_msg(twalk(msg, len, lim, 0, cut, &l) == rc, "%s: cut at %zu: rc", label, cut);
		ck_assert_msg(strcmp(l.s, ref->s) == 0 && strcmp(l.hdr, ref->hdr) == 0 &&
		    strcmp(l.out, ref->out) == 0, "%s: cut at %zu: %s", label, cut, l.s);
		tlog_free(&l);
	}
}

START_TEST(test_walk)
{
	const char *msg = walk_cases[_i].msg, *label = walk_cases[_i].label;
	struct tlog l;
	int rc = twalk(msg, strlen(msg), &walk_cases[_i].lim, 0, 0, &l);

	ck_assert_msg(rc == walk_cases[_i].rc, "%s: rc %d", label, rc);
	ck_assert_msg(strcmp(l.s, walk_cases[_i].events) == 0, "%s: events %s", label, l.s);
	if (walk_cases[_i].headers != NULL)
		ck_assert_msg(strcmp(l.hdr, walk_cases[_i].headers) == 0, "%s: headers %s", label,
		    l.hdr);
	tcheck_same(label, msg, strlen(msg), &walk_cases[_i].lim, &l, rc);
	tlog_free(&l);
}
END_TEST

/* A multipart's preamble and epilogue, nested ones and an encoded message's too. */
START_TEST(test_outside)
{
	static const struct {
		const char *msg, *out;
	} cases[] = {
		{ "Content-Type: multipart/mixed; boundary=b\r\n\r\npre 1\r\npre 2\r\n--b\r\n\r\n"
		  "in\r\n--b--\r\nepi\r\n", "{0}pre 1\\r\\npre 2\\r\\n{0}epi\\r\\n" },
		{ "Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
		  "Content-Type: multipart/alternative; boundary=i\r\n\r\ninner pre\r\n--i\r\n\r\n"
		  "x\r\n--i--\r\ninner epi\r\n--o--\r\n",
		  "{1}inner pre\\r\\n{1}inner epi\\r\\n" },
		{ "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
		  "Q29udGVudC1UeXBlOiBtdWx0aXBhcnQvbWl4ZWQ7IGJvdW5kYXJ5PWINCg0KaGlkZGVuDQotLWIN"
		  "Cg0KeA0KLS1iLS0NCg==\r\n", "{1}hidden\\r\\n" },
		{ "Content-Type: text/plain\r\n\r\nno multipart\r\n", "" },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct tlog l;
		int rc = twalk(cases[i].msg, strlen(cases[i].msg), NULL, 0, 0, &l);

		ck_assert_int_eq(rc, 0);
		ck_assert_msg(strcmp(l.out, cases[i].out) == 0, "case %zu: outside %s", i, l.out);
		tcheck_same("outside", cases[i].msg, strlen(cases[i].msg), NULL, &l, rc);
		tlog_free(&l);
	}
}
END_TEST

/* 500 levels of multipart: MIME_E_DEPTH at the limit, memory bounded. */
START_TEST(test_deep)
{
	struct mime_limits lim = { 0, 0, 0 };
	size_t cap = 500 * 80 + 64, n = 0;
	char *msg = xmalloc(cap);
	struct tlog l;

	for (int i = 0; i < 500; i++)
		n += (size_t)snprintf(msg + n, cap - n,
		    "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i);
	n += (size_t)snprintf(msg + n, cap - n, "\r\nEICAR\r\n");
	ck_assert_int_eq(twalk(msg, n, &lim, 0, 0, &l), MIME_E_DEPTH);
	ck_assert_uint_eq(l.max_depth, 32);
	ck_assert(strstr(l.s, "EICAR") == NULL);
	tlog_free(&l);
	lim.max_depth = 600;
	lim.max_parts = 100000;
	ck_assert_int_eq(twalk(msg, n, &lim, 0, 0, &l), 0);
	ck_assert_uint_eq(l.max_depth, 500);
	ck_assert(strstr(l.s, "<500 text/plain d500 p499>EICAR\\r\\n</500>") != NULL);
	tlog_free(&l);
	free(msg);
}
END_TEST

/* A line longer than the line buffer is content, whole and in order. */
START_TEST(test_long_line)
{
	size_t n = 0, body = 10000;
	char *msg = xmalloc(body + 256);
	struct tlog l;

	n += (size_t)snprintf(msg, 256, "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n");
	for (size_t i = 0; i < body; i++)
		msg[n++] = (char)('a' + i % 26);
	memcpy(msg + n, "\r\n--b--\r\n", 9);
	n += 9;
	ck_assert_int_eq(twalk(msg, n, NULL, 0, 0, &l), 0);
	ck_assert_uint_eq(strlen(l.s), strlen("<0 multipart/mixed><1 text/plain d1 p0></1></0>") + body);
	ck_assert(memcmp(strstr(l.s, "p0>") + 3, "abcdefghij", 10) == 0);
	tlog_free(&l);
	ck_assert_int_eq(twalk(msg, n, NULL, 7, 0, &l), 0);
	tlog_free(&l);
	/* A delimiter padded past the buffer: refused, not guessed. */
	n = (size_t)snprintf(msg, 256, "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b");
	memset(msg + n, ' ', 6000);
	n += 6000;
	memcpy(msg + n, "\r\n\r\ny\r\n", 7);
	ck_assert_int_eq(twalk(msg, n + 7, NULL, 0, 0, &l), MIME_E_AMBIGUOUS);
	tlog_free(&l);
	free(msg);
}
END_TEST

/* After an error, nothing more comes out, and the error stays. */
START_TEST(test_error_sticks)
{
	static const char bad[] = "Content-Type: text/plain; name=a; name=b\r\n\r\nsecret\r\n";
	struct tlog l;
	struct mime_walker *w;

	memset(&l, 0, sizeof l);
	tput(&l.s, &l.n, &l.cap, "", 0);
	tput(&l.hdr, &l.hn, &l.hcap, "", 0);
	w = mime_new(NULL, &t_cb, &l);
	ck_assert_int_eq(mime_feed(w, bad, sizeof bad - 1), MIME_E_AMBIGUOUS);
	ck_assert_int_eq(mime_feed(w, "more\r\n", 6), MIME_E_AMBIGUOUS);
	ck_assert_int_eq(mime_finish(w), MIME_E_AMBIGUOUS);
	ck_assert_uint_eq(mime_part_count(w), 1);
	ck_assert_str_eq(l.s, "");
	mime_free(w);
	tlog_free(&l);
	ck_assert_str_eq(mime_error_text(MIME_E_DEPTH), "the message nests parts too deeply");
}
END_TEST

/* What a content check does: the walker's leaves through mime_text, to UTF-8. */
struct tconv {
	struct mime_text *t;
	char out[1024];
	size_t n;
};

static void tconv_out(void *arg, const char *utf8, size_t len)
{
	struct tconv *c = arg;

	ck_assert_uint_lt(c->n + len, sizeof c->out);
	memcpy(c->out + c->n, utf8, len);
	c->n += len;
	c->out[c->n] = '\0';
}

static void tconv_begin(void *arg, const struct mime_part *p)
{
	struct tconv *c = arg;
	char b[64];

	if (!p->multipart && !p->message)
		c->t = mime_text_new(p->charset);
	tconv_out(c, b, (size_t)snprintf(b, sizeof b, "[%u]", p->index));
}

static void tconv_data(void *arg, const struct mime_part *p, const char *d, size_t len)
{
	struct tconv *c = arg;

	(void)p;
	mime_text_feed(c->t, d, len, tconv_out, c);
}

static void tconv_end(void *arg, const struct mime_part *p)
{
	struct tconv *c = arg;

	(void)p;
	if (c->t != NULL) {
		mime_text_finish(c->t, tconv_out, c);
		mime_text_free(c->t);
		c->t = NULL;
	}
}

START_TEST(test_walk_text)
{
	static const char msg[] =
		"Subject: =?windows-1258?Q?B=E1o_c=E1o?=\r\n"
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n"
		"--b\r\nContent-Type: text/plain; charset=windows-1258\r\n"
		"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
		"T=D4=ECI M=C2=F2T\r\nK=EDnh g=FD=D2i anh chi=F2\r\n"
		"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
		"VOG7kEkgTeG6rFQNCkvDrW5oIGfhu61p\r\n"
		"--b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
		"M\xc2\xf2T\r\n--b--\r\n";
	static const struct mime_callbacks cb = { NULL, tconv_begin, tconv_data, tconv_end, NULL };

	for (size_t step = 1; step <= sizeof msg; step += 13) {
		struct tconv c;
		struct mime_walker *w;

		memset(&c, 0, sizeof c);
		w = mime_new(NULL, &cb, &c);
		for (size_t i = 0; i < sizeof msg - 1; i += step)
			ck_assert_int_eq(mime_feed(w, msg + i, sizeof msg - 1 - i < step ?
			    sizeof msg - 1 - i : step), 0);
		ck_assert_int_eq(mime_finish(w), 0);
		mime_free(w);
		ck_assert_msg(strcmp(c.out, "[0][1]T\xe1\xbb\x90I M\xe1\xba\xacT\r\n"
		    "K\xc3\xadnh g\xe1\xbb\xadi anh ch\xe1\xbb\x8b"
		    "[2]T\xe1\xbb\x90I M\xe1\xba\xacT\r\nK\xc3\xadnh g\xe1\xbb\xadi"
		    "[3]M\xe1\xba\xacT") == 0, "step %zu: %s", step, c.out);
	}
}
END_TEST

/* ---------------------------------------------------------------- RFC 2047 */

static const struct {
	const char *label, *in, *out;
} word_cases[] = {
	{ "B, UTF-8", "=?UTF-8?B?VOG7kWkgbeG6rXQ=?=", "T\xe1\xbb\x91i m\xe1\xba\xadt" },
	{ "Q, UTF-8, lower case", "=?utf-8?q?T=E1=BB=91i_m=E1=BA=ADt?=",
	  "T\xe1\xbb\x91i m\xe1\xba\xadt" },
	{ "Q, Windows-1258 with combining tone marks", "=?windows-1258?Q?T=F4=ECi_m=E2=F2t?=",
	  "T\xe1\xbb\x91i m\xe1\xba\xadt" },
	{ "B, CP1258 upper case", "=?CP1258?B?TcLyVA==?=", "M\xe1\xba\xacT" },
	{ "text around a word", "[=?UTF-8?B?TeG6rFQ=?=] b\xc3\xa1o c\xc3\xa1o",
	  "[M\xe1\xba\xacT] b\xc3\xa1o c\xc3\xa1o" },
	{ "white space between words dropped", "=?UTF-8?Q?T=E1=BB=90I?= \r\n =?UTF-8?Q?_M=E1=BA=ACT?=",
	  "T\xe1\xbb\x90I M\xe1\xba\xacT" },
	{ "a character split across two B words", "=?UTF-8?B?TeG6?= =?UTF-8?B?rFQ=?=",
	  "M\xe1\xba\xacT" },
	{ "language suffix (RFC 2231 section 5)", "=?UTF-8*vi?Q?M=E1=BA=ADt?=", "M\xe1\xba\xadt" },
	{ "unknown charset left as written", "=?x-nonesuch?Q?abc?= d", "=?x-nonesuch?Q?abc?= d" },
	{ "bad base64 left as written", "=?UTF-8?B?T!!=?=", "=?UTF-8?B?T!!=?=" },
	{ "bad Q hex left as written", "=?UTF-8?Q?a=G1?=", "=?UTF-8?Q?a=G1?=" },
	{ "not a word", "a =? b ?= c", "a =? b ?= c" },
	{ "space kept before plain text", "=?UTF-8?Q?a?= b", "a b" },
	{ "invalid UTF-8 in a UTF-8 word", "=?UTF-8?Q?a=FFb?=", "a\xef\xbf\xbd" "b" },
	{ "controls decoded are U+FFFD", "=?UTF-8?Q?a=0D=0Ab?=", "a\xef\xbf\xbd\xef\xbf\xbd" "b" },
};

START_TEST(test_words)
{
	char out[256];
	const char *in = word_cases[_i].in;
	size_t n = mime_decode_words(in, strlen(in), out, sizeof out);

	ck_assert_msg(strcmp(out, word_cases[_i].out) == 0, "%s: %s", word_cases[_i].label, out);
	ck_assert_uint_eq(n, strlen(out));
}
END_TEST

START_TEST(test_words_bounded)
{
	char out[6];
	const char *in = "=?UTF-8?B?VOG7kWkgbeG6rXQ=?=";

	/* "T" + "ố" (3 bytes) fits 5; the next "i" does not... then 1 more. */
	ck_assert_uint_eq(mime_decode_words(in, strlen(in), out, sizeof out), 5);
	ck_assert_str_eq(out, "T\xe1\xbb\x91i");
	ck_assert_uint_eq(mime_decode_words(in, strlen(in), out, 3), 1);
	ck_assert_str_eq(out, "T");
	ck_assert_uint_eq(mime_decode_words(in, strlen(in), out, 0), 0);
}
END_TEST

/* -------------------------------------------------- address-list text */

static const struct {
	const char *label, *value, *out;   /* out: the pieces joined by '|' */
} atext_cases[] = {
	{ "display name and address", "Nguyen Van A <a@x.vn>", "Nguyen Van A" },
	{ "quoted name with a comma", "\"Tran, B\" <b@x.vn>, c@x.vn", "Tran, B" },
	{ "bare addresses only", "a@x.vn, b@y.vn", "" },
	{ "encoded name", "=?UTF-8?B?TmfGsOG7nWkgQQ==?= <a@x.vn>", "Ng\xc6\xb0\xe1\xbb\x9di A" },
	{ "comment after an address", "a@x.vn (CCCD 001203004567)", "CCCD 001203004567" },
	{ "nested comment and escapes", "a@x.vn (x (y) \\) z)", "x (y) ) z" },
	{ "group name and members", "Phong A: a@x.vn, \"B\" <b@x.vn>;", "Phong A|B" },
	{ "empty group", "undisclosed-recipients:;", "undisclosed-recipients" },
	{ "name without an address is shown", "So 001203004567, a@x.vn", "So 001203004567" },
	{ "words around a bare address", "So 001203004567 a@x.vn, b@x.vn (B)", "So 001203004567|B" },
	{ "folding inside a name", "\"Le\r\n\tVan C\" <c@x.vn>", "Le Van C" },
	{ "escaped quote in a name", "\"D \\\"E\\\"\" <d@x.vn>", "D \"E\"" },
	{ "unclosed angle", "F <f@x.vn", "F" },
	{ "unclosed quote", "\"G <g@x.vn>", "G <g@x.vn>" },
	{ "a name that decodes to nothing is no piece", "=?UTF-8?B?" "?= <a@x.vn>", "" },
};

static void atext_join(void *arg, const char *utf8, size_t len)
{
	char *out = arg;
	size_t n = strlen(out);

	ck_assert_uint_gt(len, 0);
	if (n > 0 && n + 1 < 256)
		out[n++] = '|';
	snprintf(out + n, 256 - n, "%.*s", (int)len, utf8);
}

START_TEST(test_address_text)
{
	char out[256] = "";
	const char *v = atext_cases[_i].value;

	mime_address_text(v, strlen(v), atext_join, out);
	ck_assert_msg(strcmp(out, atext_cases[_i].out) == 0, "%s: [%s]", atext_cases[_i].label,
	    out);
}
END_TEST

static void atext_lengths(void *arg, const char *utf8, size_t len)
{
	size_t *got = arg;

	ck_assert_uint_lt(got[0], 4);
	got[1 + got[0]++] = len;
	if (len == 1)
		ck_assert_int_eq(utf8[0], 'H');
}

START_TEST(test_address_text_bounded)
{
	char value[3 * MIME_ADDRESS_TEXT_MAX];
	size_t got[5] = { 0 };

	/* A name longer than a piece is cut, not overrun; the next one is whole. */
	memset(value, 'n', 2 * MIME_ADDRESS_TEXT_MAX);
	snprintf(value + 2 * MIME_ADDRESS_TEXT_MAX, sizeof value - 2 * MIME_ADDRESS_TEXT_MAX,
	    " <a@x.vn>, H <h@x.vn>");
	mime_address_text(value, strlen(value), atext_lengths, got);
	ck_assert_uint_eq(got[0], 2);
	ck_assert_uint_eq(got[1], MIME_ADDRESS_TEXT_MAX);
	ck_assert_uint_eq(got[2], 1);
}
END_TEST

/* ---------------------------------------------------------------- RFC 2231 */

static const struct {
	const char *label, *value, *name;
	int rc;
	const char *out;
} param_cases[] = {
	{ "quoted", "attachment; filename=\"a b.pdf\"", "filename", 1, "a b.pdf" },
	{ "token, name case", "attachment; FileName=a.pdf", "filename", 1, "a.pdf" },
	{ "comments and spaces", "attachment (x); (y) filename = \"q\\\"d.txt\" (z)", "filename", 1,
	  "q\"d.txt" },
	{ "unquoted run-on value", "attachment; filename=my file.pdf; size=3", "filename", 1,
	  "my file.pdf" },
	{ "percent-encoded UTF-8", "attachment; filename*=UTF-8''T%E1%BB%91i%20m%E1%BA%ADt.docx",
	  "filename", 1, "T\xe1\xbb\x91i m\xe1\xba\xadt.docx" },
	{ "continuations, encoded and not", "attachment; filename*0*=utf-8'vi'T%E1%BB%90I;\r\n "
	  "filename*1*=%20M%E1%BA%ACT; filename*2=\" - b.pdf\"", "filename", 1,
	  "T\xe1\xbb\x90I M\xe1\xba\xacT - b.pdf" },
	{ "continuations out of order", "a; name*1=\"def\"; name*0=\"abc\"", "name", 1, "abcdef" },
	{ "gap ends the value", "a; name*0=abc; name*2=ghi", "name", 1, "abc" },
	{ "Windows-1258 charset", "a; filename*=windows-1258''M%E2%F2t.txt", "filename", 1,
	  "M\xe1\xba\xadt.txt" },
	{ "extended form wins over the plain one", "a; filename=\"x.pdf\"; filename*=UTF-8''y.pdf",
	  "filename", 1, "y.pdf" },
	{ "RFC 2047 inside quotes", "a; filename=\"=?UTF-8?B?TeG6rFQucGRm?=\"", "filename", 1,
	  "M\xe1\xba\xacT.pdf" },
	{ "raw 8-bit Windows-1258 name", "a; filename=\"M\xe2\xf2t.txt\"", "filename", 1,
	  "M\xe1\xba\xadt.txt" },
	{ "NUL smuggled in is U+FFFD", "a; filename*=UTF-8''a.txt%00.exe", "filename", 1,
	  "a.txt\xef\xbf\xbd.exe" },
	{ "absent", "attachment; size=3", "filename", 0, "" },
	{ "prefix of another name", "attachment; filenamex=a", "filename", 0, "" },
	{ "in the type, not a parameter", "text/plain (name=x); charset=a", "name", 0, "" },
	{ "given twice", "a; filename=a.txt; filename=b.exe", "filename", MIME_E_AMBIGUOUS, "" },
	{ "extended twice", "a; name*=''a; name*=''b", "name", MIME_E_AMBIGUOUS, "" },
	{ "a segment twice", "a; name*0=a; name*0=b", "name", MIME_E_AMBIGUOUS, "" },
	{ "star and segments", "a; name*=''a; name*0=b", "name", MIME_E_AMBIGUOUS, "" },
};

START_TEST(test_param)
{
	char out[256];
	const char *v = param_cases[_i].value;
	int rc = mime_param(v, strlen(v), param_cases[_i].name, out, sizeof out);

	ck_assert_msg(rc == param_cases[_i].rc, "%s: rc %d", param_cases[_i].label, rc);
	if (rc >= 0)
		ck_assert_msg(strcmp(out, param_cases[_i].out) == 0, "%s: %s", param_cases[_i].label,
		    out);
}
END_TEST

/* ---------------------------------------------------------------- mime_text */

struct tbuf {
	char s[4096];
	size_t n;
};

static void t_out(void *arg, const char *utf8, size_t len)
{
	struct tbuf *b = arg;

	ck_assert_uint_le(b->n + len, sizeof b->s - 1);
	memcpy(b->s + b->n, utf8, len);
	b->n += len;
	b->s[b->n] = '\0';
}

static const struct {
	const char *label, *charset, *in, *out;
} text_cases[] = {
	{ "UTF-8 Vietnamese", "utf-8", "T\xe1\xbb\x94I M\xe1\xba\xacT\r\nK\xc3\xadnh g\xe1\xbb\xadi",
	  "T\xe1\xbb\x94I M\xe1\xba\xacT\r\nK\xc3\xadnh g\xe1\xbb\xadi" },
	{ "Windows-1258 Vietnamese, tone marks composed", "windows-1258",
	  "T\xd4\xecI M\xc2\xf2T\r\nK\xednh g\xfd\xd2i",
	  "T\xe1\xbb\x90I M\xe1\xba\xacT\r\nK\xc3\xadnh g\xe1\xbb\xadi" },
	{ "CP1258 letter held to the end is flushed", "cp1258", "ma", "ma" },
	{ "CP1258 undefined byte after a held letter", "cp1258", "a\x81" "b", "a\xef\xbf\xbd" "b" },
	{ "no charset, valid UTF-8", "", "M\xe1\xba\xadt", "M\xe1\xba\xadt" },
	{ "no charset, not UTF-8: Windows-1258", "", "M\xe2\xf2t", "M\xe1\xba\xadt" },
	{ "unknown charset, not UTF-8", "x-unknown", "ok M\xe2\xf2t", "ok M\xe1\xba\xadt" },
	{ "us-ascii label on UTF-8", "us-ascii", "M\xe1\xba\xadt", "M\xe1\xba\xadt" },
	{ "no charset, incomplete UTF-8 at the end", "", "ab\xe1\xba", "ab\xc3\xa1\xc2\xba" },
	{ "UTF-8 label, invalid bytes", "utf-8", "a\xff\xc3(b", "a\xef\xbf\xbd\xef\xbf\xbd(b" },
	{ "UTF-8 label, truncated at the end", "utf-8", "a\xe1\xba", "a\xef\xbf\xbd\xef\xbf\xbd" },
	{ "UTF-8 label, above U+10FFFF", "utf-8", "a\xf4\x90\x80\x80" "b",
	  "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "b" },
	{ "ISO-8859-1", "iso-8859-1", "caf\xe9", "caf\xc3\xa9" },
	{ "charset with a slash is unknown", "utf-8//ignore", "caf\xe9", "caf\xc3\xa9" },
};

START_TEST(test_text)
{
	const char *in = text_cases[_i].in, *label = text_cases[_i].label;
	size_t len = strlen(in);

	/* Whole, one byte at a time, and cut in two at every position. */
	for (size_t cut = 0; cut <= len + 1; cut++) {
		struct mime_text *t = mime_text_new(text_cases[_i].charset);
		struct tbuf b = { "", 0 };

		if (cut == len + 1) {
			for (size_t i = 0; i < len; i++)
				mime_text_feed(t, in + i, 1, t_out, &b);
		} else {
			mime_text_feed(t, in, cut, t_out, &b);
			mime_text_feed(t, in + cut, len - cut, t_out, &b);
		}
		mime_text_finish(t, t_out, &b);
		mime_text_free(t);
		ck_assert_msg(strcmp(b.s, text_cases[_i].out) == 0, "%s (cut %zu): %s", label, cut, b.s);
	}
}
END_TEST

static Suite *mime_suite(void)
{
	Suite *s = suite_create("mime");
	TCase *tc = tcase_create("all");

	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_walk, 0, N_CASES(walk_cases));
	tcase_add_test(tc, test_outside);
	tcase_add_test(tc, test_deep);
	tcase_add_test(tc, test_long_line);
	tcase_add_test(tc, test_error_sticks);
	tcase_add_test(tc, test_walk_text);
	tcase_add_loop_test(tc, test_words, 0, N_CASES(word_cases));
	tcase_add_test(tc, test_words_bounded);
	tcase_add_loop_test(tc, test_address_text, 0, N_CASES(atext_cases));
	tcase_add_test(tc, test_address_text_bounded);
	tcase_add_loop_test(tc, test_param, 0, N_CASES(param_cases));
	tcase_add_loop_test(tc, test_text, 0, N_CASES(text_cases));
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(mime_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
