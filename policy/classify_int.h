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
#endif
