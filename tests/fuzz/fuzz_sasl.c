/*
 * fuzz_sasl: libFuzzer target for the SASL decoder (common/sasl.c), fed as
 * smtp_auth.c feeds it: the input is the client's base64 line, decoded
 * into the session's buffer sizes and then parsed as a PLAIN message;
 * the raw input is also parsed as an already-decoded PLAIN message. The
 * decoder promises one accepted encoding per byte string (RFC 4648
 * section 3.5), so encoding what it decoded must give the input back.
 *
 * Entry points: LLVMFuzzerTestOneInput.
 * OWNERSHIP: exact-size heap copies per run, freed before returning.
 * THREADS: libFuzzer's one thread.
 * ERRORS: a violated invariant aborts, which libFuzzer reports as a crash.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/sasl.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_plain(const unsigned char *msg, size_t len)
{
	char user[SASL_FIELD_MAX + 1], pass[SASL_FIELD_MAX + 1];

	if (sasl_plain_parse(msg, len, user, pass) != 0)
		return;
	if (user[0] == '\0' || pass[0] == '\0' || strlen(user) > SASL_FIELD_MAX ||
	    strlen(pass) > SASL_FIELD_MAX || !fuzz_utf8_valid(user, strlen(user)) ||
	    !fuzz_utf8_valid(pass, strlen(pass)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char msg[3 * SASL_FIELD_MAX + 3];
	size_t n = 0;
	char *in, *enc;

	if (size > 8 * SASL_FIELD_MAX)
		return 0;
	in = malloc(size + 1);
	if (in == NULL)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	if (sasl_b64_decode(in, size, msg, sizeof msg, &n) == 0) {
		if (n > sizeof msg)
			abort();
		enc = malloc(4 * ((n + 2) / 3) + 1);
		if (enc == NULL)
			abort();
		sasl_b64_encode(msg, n, enc);
		/* "=" is the one second spelling of nothing (RFC 4954 section 4). */
		if (!(n == 0 && size == 1 && in[0] == '=') &&
		    (strlen(enc) != size || memcmp(enc, in, size) != 0))
			abort();
		free(enc);
		fuzz_plain(msg, n);
	}
	/* LOGIN's smaller field buffer: decoding must stop at its capacity. */
	if (sasl_b64_decode(in, size, msg, SASL_FIELD_MAX, &n) == 0 && n > SASL_FIELD_MAX)
		abort();
	free(in);
	fuzz_plain(data, size);
	return 0;
}
