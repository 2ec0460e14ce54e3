/*
 * fuzz_addr: libFuzzer target for the address and domain canonicaliser
 * (common/addr.c). Beyond "no crash", it holds the functions to what
 * their callers rely on: a canonical form is a fixed point (canonicalising
 * it again gives the same bytes, or the store and the session would
 * compare different strings), it fits the documented bounds, and the
 * in-place call (in == out) gives the same result as a separate buffer.
 *
 * Entry points: LLVMFuzzerTestOneInput.
 * OWNERSHIP: one exact-size heap copy of the input per run, freed before
 * returning.
 * THREADS: libFuzzer's one thread.
 * ERRORS: a violated invariant aborts, which libFuzzer reports as a crash.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* fn(s) once into a fresh buffer, again on its own output, and in place. */
static void fuzz_canon(int (*fn)(const char *, char *, size_t, const char **),
    const char *s, size_t bound)
{
	char out[ADDR_MAX + 1], again[ADDR_MAX + 1], inplace[ADDR_MAX + 1];
	const char *why = NULL;
	size_t len = strlen(s);

	if (fn(s, out, sizeof out, &why) != 0) {
		if (why == NULL)
			abort();
		if (len < sizeof inplace) {
			memcpy(inplace, s, len + 1);
			if (fn(inplace, inplace, sizeof inplace, &why) == 0)
				abort();
		}
		return;
	}
	if (strlen(out) > bound || fuzz_has_ctl(out) || !fuzz_utf8_valid(out, strlen(out)))
		abort();
	if (fn(out, again, sizeof again, &why) != 0 || strcmp(out, again) != 0)
		abort();
	if (len < sizeof inplace) {
		memcpy(inplace, s, len + 1);
		if (fn(inplace, inplace, sizeof inplace, &why) != 0 || strcmp(inplace, out) != 0)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size > 4096)
		return 0;
	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	fuzz_canon(addr_domain_canon, s, ADDR_DOMAIN_MAX);
	fuzz_canon(addr_canon, s, ADDR_MAX);
	(void)addr_domain_of(s);
	free(s);
	return 0;
}
