/*
 * test_smtp_client_text: the outbound client's body stuffing
 * (smtpc__stuff): dot-stuffing (RFC 5321 4.5.2) and every line ending
 * made CRLF, with state carried across chunk boundaries. Fixed cases,
 * then random bodies cut at random places compared with a byte-at-a-time
 * reference of the same rules.
 *
 * Entry points: main (one Check suite).
 * OWNERSHIP: each test owns its struct smtpc and buffers.
 * THREADS: one. ERRORS: assertion failures.
 */
#include "config.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "relay/smtp_client_int.h"

/* The whole body in chunks of at most step bytes (0: one chunk). */
static void test_stuff(const char *in, size_t len, size_t step, struct buf *out)
{
	struct smtpc c;
	size_t i = 0;

	memset(&c, 0, sizeof(c));
	c.body_bol = true;
	buf_init(out);
	if (step == 0)
		step = len > 0 ? len : 1;
	while (i < len) {
		size_t n = len - i < step ? len - i : step;

		smtpc__stuff(&c, in + i, n, out);
		i += n;
	}
	/* What the end of data adds for a pending CR (smtpc_body_end). */
	if (c.body_cr)
		buf_append(out, "\r\n", 2);
}

/* The rules one byte at a time: the reference for the random cases. */
static void test_reference(const char *in, size_t len, struct buf *out)
{
	bool bol = true, cr = false;
	size_t i;

	buf_init(out);
	for (i = 0; i < len; i++) {
		char ch = in[i];

		if (cr) {
			cr = false;
			buf_append(out, "\r\n", 2);
			bol = true;
			if (ch == '\n')
				continue;
		}
		if (ch == '\r') {
			cr = true;
			continue;
		}
		if (ch == '\n') {
			buf_append(out, "\r\n", 2);
			bol = true;
			continue;
		}
		if (bol && ch == '.')
			buf_append(out, ".", 1);
		buf_append(out, &ch, 1);
		bol = false;
	}
	if (cr)
		buf_append(out, "\r\n", 2);
}

/* Same bytes (memcmp may not be given the NULL of an empty buffer). */
static bool test_same(const struct buf *b, const char *want, size_t len)
{
	return b->len == len && (len == 0 || memcmp(b->data, want, len) == 0);
}

static void test_expect(const char *in, const char *want)
{
	size_t steps[] = { 0, 1, 2, 3, 7 };
	size_t k;

	for (k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		struct buf out;

		test_stuff(in, strlen(in), steps[k], &out);
		ck_assert_msg(test_same(&out, want, strlen(want)),
		    "step %zu: got \"%.*s\"", steps[k], (int)out.len, out.len ? out.data : "");
		buf_free(&out);
	}
}

START_TEST(test_fixed_cases)
{
	test_expect("", "");
	test_expect("plain\r\n", "plain\r\n");
	test_expect(".starts\r\n", "..starts\r\n");
	test_expect("a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n");
	test_expect("a\r\n..two\r\n", "a\r\n...two\r\n");
	test_expect("mid.dot.\r\n", "mid.dot.\r\n");
	/* Bare LF and bare CR become CRLF: no smuggled end of data. */
	test_expect("a\n.\nb", "a\r\n..\r\nb");
	test_expect("a\r.\rb", "a\r\n..\r\nb");
	test_expect("a\r\r\n.", "a\r\n\r\n..");
	test_expect("x\n\n.\n", "x\r\n\r\n..\r\n");
}
END_TEST

START_TEST(test_random_against_reference)
{
	static const char alphabet[] = { 'a', 'b', '.', '\r', '\n', ' ', '\0' };
	unsigned seed = 12345;
	int round;

	for (round = 0; round < 2000; round++) {
		size_t len = (size_t)(rand_r(&seed) % 300), i, step;
		char *in = malloc(len + 1);
		struct buf got, want;

		ck_assert_ptr_nonnull(in);
		for (i = 0; i < len; i++)
			in[i] = alphabet[rand_r(&seed) % sizeof(alphabet)];
		step = (size_t)(rand_r(&seed) % 40);
		test_stuff(in, len, step, &got);
		test_reference(in, len, &want);
		ck_assert_msg(test_same(&got, want.data, want.len),
		    "round %d (len %zu, step %zu) differs from the reference", round, len, step);
		buf_free(&got);
		buf_free(&want);
		free(in);
	}
}
END_TEST

int main(void)
{
	Suite *s = suite_create("smtp_client_text");
	TCase *tc = tcase_create("stuff");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_fixed_cases);
	tcase_add_test(tc, test_random_against_reference);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
