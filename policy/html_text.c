/*
 * html_text: text/html reduced to the text a reader sees, streaming, in
 * fixed memory, for the checks that read text (state-secret stamps, DLP):
 * tags are dropped, the tags that end a line where a browser shows one
 * (<br>, </p>, </div>, </tr>, headings ...) become "\n", and character
 * references (numeric ones and the few named ones a stamp may be typed
 * with) become their UTF-8 text, so "T&#7888;I M&#7852;T" reads as
 * "TỐI MẬT". No layout, scripts or styles: a reader-facing approximation
 * that errs towards showing text.
 *
 * Entry points: html_text_feed (the state is a struct html_text, zeroed to
 * start).
 * OWNERSHIP: s is borrowed; emit's text is borrowed for the call.
 * THREADS: one reducer per thread at a time; no global state.
 * ERRORS: none.
 */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/html_text.h"

/* An HTML entity's text: the few a stamp may be written with, and numbers. */
static void html_text_entity(struct html_text *h, html_text_emit_fn *emit, void *arg)
{
	char utf8[8];
	size_t n = 0;

	h->entity[h->nentity] = '\0';
	if (h->entity[0] == '#') {
		unsigned long cp = h->entity[1] == 'x' || h->entity[1] == 'X' ?
		    strtoul(h->entity + 2, NULL, 16) : strtoul(h->entity + 1, NULL, 10);

		if (cp > 0 && cp < 0x110000 && (cp < 0xD800 || cp > 0xDFFF)) {
			if (cp < 0x80) {
				utf8[n++] = (char)cp;
			} else if (cp < 0x800) {
				utf8[n++] = (char)(0xC0 | (cp >> 6));
				utf8[n++] = (char)(0x80 | (cp & 0x3F));
			} else if (cp < 0x10000) {
				utf8[n++] = (char)(0xE0 | (cp >> 12));
				utf8[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
				utf8[n++] = (char)(0x80 | (cp & 0x3F));
			} else {
				utf8[n++] = (char)(0xF0 | (cp >> 18));
				utf8[n++] = (char)(0x80 | ((cp >> 12) & 0x3F));
				utf8[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
				utf8[n++] = (char)(0x80 | (cp & 0x3F));
			}
		}
	} else if (strcmp(h->entity, "nbsp") == 0) {
		utf8[n++] = ' ';
	} else if (strcmp(h->entity, "amp") == 0) {
		utf8[n++] = '&';
	} else if (strcmp(h->entity, "lt") == 0) {
		utf8[n++] = '<';
	} else if (strcmp(h->entity, "gt") == 0) {
		utf8[n++] = '>';
	} else if (strcmp(h->entity, "quot") == 0) {
		utf8[n++] = '"';
	}
	if (n > 0)
		emit(arg, utf8, n);
}

/* Tags that end a line where a reader sees one (a stamp is a line of its own). */
static bool html_text_tag_breaks(const char *tag)
{
	static const char *const breaks[] = { "br", "/p", "p", "/div", "div", "/h", "h",
		"/tr", "tr", "/li", "li", "/td", "td", "/title", "hr", NULL };

	for (size_t i = 0; breaks[i] != NULL; i++) {
		size_t n = strlen(breaks[i]);

		if (strncasecmp(tag, breaks[i], n) == 0 &&
		    (tag[n] == '\0' || tag[n] == ' ' || tag[n] == '/' || tag[n] == '>' ||
		    (breaks[i][n - 1] == 'h' && tag[n] >= '1' && tag[n] <= '6')))
			return true;
	}
	return false;
}

void html_text_feed(struct html_text *h, const char *s, size_t len, html_text_emit_fn *emit,
    void *arg)
{
	size_t run = 0;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		switch (h->state) {
		case HTML_TEXT_TEXT:
			if (c != '<' && c != '&') {
				run++;
				continue;
			}
			if (run > 0)
				emit(arg, s + i - run, run);
			run = 0;
			h->state = c == '<' ? HTML_TEXT_TAG : HTML_TEXT_ENTITY;
			h->ntag = h->nentity = 0;
			break;
		case HTML_TEXT_TAG:
			if (c == '>') {
				h->tag[h->ntag] = '\0';
				if (html_text_tag_breaks(h->tag))
					emit(arg, "\n", 1);
				h->state = HTML_TEXT_TEXT;
			} else if (h->ntag < sizeof h->tag - 1) {
				h->tag[h->ntag++] = c;
			}
			break;
		case HTML_TEXT_ENTITY:
			if (c == ';' || h->nentity == sizeof h->entity - 1) {
				html_text_entity(h, emit, arg);
				h->state = HTML_TEXT_TEXT;
			} else {
				h->entity[h->nentity++] = c;
			}
			break;
		}
	}
	if (run > 0)
		emit(arg, s + len - run, run);
}
