/*
 * fuzz_rfc5322: libFuzzer target for the RFC 5322 header scanner and the
 * address-list parser (common/rfc5322.c). The input is a message: it is cut
 * into lines at LF (a CR before the LF is dropped, as the DATA reader
 * does) and every line goes through the scanner; the From: body it keeps
 * and, separately, the whole input go through the address-list parser.
 * Every address the parser returns must already be canonical (common/addr.h
 * gives it back unchanged), since policy compares those bytes.
 *
 * Entry points: LLVMFuzzerTestOneInput.
 * OWNERSHIP: one exact-size heap copy of the input and the scanner state
 * (too large for the stack of a sanitized build) per run, freed before
 * returning; the parser's lists are freed with rfc5322_free_list.
 * THREADS: libFuzzer's one thread.
 * ERRORS: a violated invariant aborts, which libFuzzer reports as a crash.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/rfc5322.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_list(const char *value, size_t len)
{
	char **list = NULL, canon[ADDR_MAX + 1];
	const char *why = NULL;
	size_t n = 7;

	if (rfc5322_parse_address_list(value, len, &list, &n, &why) != 0) {
		if (list != NULL || n != 0 || why == NULL)
			abort();
		return;
	}
	if ((n == 0) != (list == NULL))
		abort();
	for (size_t i = 0; i < n; i++)
		if (fuzz_has_ctl(list[i]) || addr_canon(list[i], canon, sizeof canon, &why) != 0 ||
		    strcmp(canon, list[i]) != 0)
			abort();
	rfc5322_free_list(list, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rfc5322_scan *sc;
	char *msg;
	size_t start = 0;

	if (size > 64 * 1024)
		return 0;
	msg = malloc(size + 1);
	sc = malloc(sizeof *sc);
	if (msg == NULL || sc == NULL) {
		free(msg);
		free(sc);
		return 0;
	}
	memcpy(msg, data, size);
	msg[size] = '\0';
	rfc5322_scan_init(sc);
	while (start < size) {
		const char *nl = memchr(msg + start, '\n', size - start);
		size_t end = nl != NULL ? (size_t)(nl - msg) : size, len = end - start;

		if (len > 0 && msg[start + len - 1] == '\r')
			len--;
		rfc5322_scan_line(sc, msg + start, len);
		start = end + 1;
	}
	if (sc->from_len > RFC5322_FROM_MAX || sc->from[sc->from_len] != '\0')
		abort();
	if (sc->from_count > 0)
		fuzz_list(sc->from, sc->from_len);
	fuzz_list(msg, size);
	free(sc);
	free(msg);
	return 0;
}
