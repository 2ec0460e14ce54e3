#ifndef GOVRELAY_BUF_H
#define GOVRELAY_BUF_H
/*
 * buf: a growable byte buffer. Growth goes through xrealloc, so callers
 * that take lengths from the network must bound them before appending.
 */
#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t cap;
};

void buf_init(struct buf *b);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_append_str(struct buf *b, const char *s);
void buf_append_char(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* Removes the first n bytes (n <= len). */
void buf_consume(struct buf *b, size_t n);
/* NUL-terminates without counting the NUL in len; returns data. */
char *buf_cstr(struct buf *b);
/* Hands the storage to the caller (free()) and leaves b empty. */
char *buf_steal(struct buf *b, size_t *len);

#endif
