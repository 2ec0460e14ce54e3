#ifndef GOVRELAY_POLICY_HTML_TEXT_H
#define GOVRELAY_POLICY_HTML_TEXT_H
/*
 * html_text: the text of a text/html part as a reader sees it, line by
 * line (policy/html_text.c says how). Feed UTF-8 in pieces of any size.
 */
#include <stddef.h>

enum html_text_state { HTML_TEXT_TEXT, HTML_TEXT_TAG, HTML_TEXT_ENTITY };

/* Zero it to start a part. */
struct html_text {
	enum html_text_state state;
	char tag[16];              /* the tag's first characters: <br>, </p> end lines */
	size_t ntag;
	char entity[12];
	size_t nentity;
};

typedef void html_text_emit_fn(void *arg, const char *utf8, size_t len);
void html_text_feed(struct html_text *h, const char *s, size_t len, html_text_emit_fn *emit,
    void *arg);
#endif
