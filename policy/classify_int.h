#ifndef GOVRELAY_POLICY_CLASSIFY_INT_H
#define GOVRELAY_POLICY_CLASSIFY_INT_H
/* Shared by the files of the classify module only (policy/classify*.c). */
#include <stdbool.h>
#include <stddef.h>

/*
 * Whether utf8 could hold a level word at all: every spelling of one
 * (mật, mat, tốimật, tuyệtmật, in any case, composed or not) reads m, a,
 * t in a row once reduced to base letters, so a line where they never
 * follow each other is no marking and needs no normalization
 * (classify_quick.c). May answer true wrongly, never false wrongly.
 */
bool classify__may_mark(const char *utf8, size_t len);

#include "policy/classify.h"

enum classify_level classify__max(enum classify_level a, enum classify_level b);
/* The length of s[0..len) cut to at most max bytes at a character start. */
size_t classify__cut(const char *s, size_t len, size_t max);
/* The stamp rule (classify.c) over one line; strict: the bare single
 * "mat" counts only in capitals. */
enum classify_level classify__stamp_str(const char *s, size_t len, bool strict);
#endif
