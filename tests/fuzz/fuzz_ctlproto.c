/*
 * fuzz_ctlproto: libFuzzer target for the control protocol's decoding
 * (common/ctlproto.c): the request line as relay/control.c splits it, the
 * reply line as govrelayctl reads it, and the exec payload a delegated
 * operator sends. Invariants checked: a decoded exec payload encodes back
 * to exactly the input bytes (one encoding per request, so what the
 * daemon runs is what was sent), a formatted reply is one line that
 * parses back to its code, and a formatted request fits and ends in LF.
 *
 * Entry points: LLVMFuzzerTestOneInput.
 * OWNERSHIP: exact-size heap copies and decoded argv per run, freed
 * before returning.
 * THREADS: libFuzzer's one thread.
 * ERRORS: a violated invariant aborts, which libFuzzer reports as a crash.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/ctlproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Exec payload: decode, then the encoder must give the same bytes. */
static void fuzz_exec(const uint8_t *data, size_t size)
{
	char **argv = NULL;
	const void *in = NULL;
	size_t inlen = 0;
	int argc = 0;
	struct buf again;

	if (ctlproto_exec_decode(data, size, &argc, &argv, &in, &inlen) != 0)
		return;
	if (argc <= 0 || argc > CTLPROTO_EXEC_ARGS_MAX || argv[argc] != NULL)
		abort();
	buf_init(&again);
	ctlproto_exec_encode(&again, argc, argv, in, inlen);
	if (again.len != size || memcmp(again.data, data, size) != 0)
		abort();
	buf_free(&again);
	ctlproto_exec_free(argc, argv);
}

/* Request and reply lines: the text up to the first LF. */
static void fuzz_lines(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	size_t len = nl != NULL ? (size_t)(nl - data) : size;
	char *line = malloc(len + 1), out[CTLPROTO_LINE_MAX];
	const char *verb, *arg, *text;
	size_t n;
	int code, parsed;

	if (line == NULL)
		return;
	memcpy(line, data, len);
	line[len] = '\0';
	(void)ctlproto_reply_parse(line, &code, &text);
	/* As a reply text: one line, which parses back to its code. */
	code = len > 0 ? (unsigned char)line[0] % 80 : 0;
	if (code != 0 && !ctlproto_code_is_valid(code))
		code = 64;
	n = ctlproto_reply_format(out, sizeof out, code, line);
	if (n == 0 || n >= sizeof out || out[n - 1] != '\n' || memchr(out, '\n', n - 1) != NULL)
		abort();
	out[n - 1] = '\0';
	if (ctlproto_reply_parse(out, &parsed, &text) != 0 || parsed != code)
		abort();
	if (ctlproto_request_parse(line, len, &verb, &arg) == 0 && verb != NULL) {
		int m = ctlproto_request_format(out, sizeof out, verb, arg);

		if (m > 0 && (size_t)m < sizeof out && out[m - 1] != '\n')
			abort();
	}
	free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 1024 * 1024)
		return 0;
	fuzz_exec(data, size);
	fuzz_lines(data, size);
	return 0;
}
