#ifndef GOVRELAY_XMALLOC_H
#define GOVRELAY_XMALLOC_H
/*
 * Allocation that cannot fail: out of memory logs once and aborts, because
 * the queue is durable and the supervisor restarts us (STYLE.md section 5).
 * Sizes that come from the network must be checked before they get here.
 */
#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
/* xreallocarray: checks nmemb * size for overflow before growing. */
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
void *xmemdup(const void *p, size_t n);

#endif
