/*
 * test_holes: the smaller holes of issue 9 that a unit can show.
 * - common/log.c: a text log line splits into exactly the fields its
 *   caller gave, whatever bytes a value holds (a recipient such as
 *   "x, status=sent"@d cannot plant a status= field; CR, LF and other
 *   controls cannot start a line).
 *
 * OWNERSHIP: none. THREADS: Check forks one process per test.
 * ERRORS: assertion failures.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"

/* ----------------------------------------------------------------- log */

/*
 * Runs log_event with stderr pointed at a temporary file and returns the
 * line written (without its newline) in out.
 */
static void th_capture_event(const char *to, const char *status, char *out, size_t cap)
{
	FILE *f = tmpfile();
	int saved;
	size_t n;

	ck_assert_ptr_nonnull(f);
	saved = dup(STDERR_FILENO);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_ge(dup2(fileno(f), STDERR_FILENO), 0);
	log_open("test", true, LOG_FORMAT_TEXT);
	log_event(LOG_LVL_INFO, "0123456789ABCDEF", "to", to, "relay", "local",
	    "status", status, NULL);
	ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
	close(saved);
	rewind(f);
	n = fread(out, 1, cap - 1, f);
	fclose(f);
	out[n] = '\0';
	/* Exactly one line: nothing a value held may break it. */
	ck_assert_ptr_nonnull(strchr(out, '\n'));
	ck_assert_ptr_eq(strchr(out, '\n'), out + n - 1);
	out[n - 1] = '\0';
}

/* Replaces each \xNN in s by its byte, in place (a reader's decoding). */
static void th_unescape(char *s)
{
	char *w = s;

	while (*s) {
		unsigned v;

		if (s[0] == '\\' && s[1] == 'x' && sscanf(s + 2, "%2x", &v) == 1) {
			*w++ = (char)v;
			s += 4;
		} else {
			*w++ = *s++;
		}
	}
	*w = '\0';
}

/*
 * Splits the fields after "ID: " at ", " and each at its first '=';
 * checks the keys are exactly to, relay, status and returns the decoded
 * values of to and status.
 */
static void th_parse(char *line, char *to, char *status, size_t cap)
{
	const char *keys[] = { "to", "relay", "status" };
	char *p = strstr(line, "0123456789ABCDEF: "), *field, *save = NULL;
	size_t i = 0;

	ck_assert_ptr_nonnull(p);
	p += strlen("0123456789ABCDEF: ");
	for (field = strtok_r(p, ",", &save); field != NULL;
	    field = strtok_r(NULL, ",", &save), i++) {
		char *eq;

		if (i > 0) {
			ck_assert_int_eq(field[0], ' ');
			field++;
		}
		ck_assert_uint_lt(i, 3);
		eq = strchr(field, '=');
		ck_assert_ptr_nonnull(eq);
		*eq = '\0';
		ck_assert_str_eq(field, keys[i]);
		/* A value never holds an unescaped '=' either. */
		ck_assert_ptr_null(strchr(eq + 1, '='));
		th_unescape(eq + 1);
		if (i == 0)
			snprintf(to, cap, "%s", eq + 1);
		if (i == 2)
			snprintf(status, cap, "%s", eq + 1);
	}
	ck_assert_uint_eq(i, 3);
}

START_TEST(test_log_field_injection)
{
	static const struct {
		const char *to, *status;
	} cases[] = {
		{ "<\"x, status=sent\"@ours.test>", "deferred (451 4.3.0 try again)" },
		{ "<\"a\\\\b=c\"@ours.test>", "bounced (550 5.1.1 x=y, z)" },
		{ "<\"x\r\n0123456789ABCDEF: to=<y>, status=sent\"@d>", "deferred" },
		{ "<\"\x01\x7f\t\"@d>", "sent (250 2.0.0 Ok)" },
	};
	char line[2048], to[512], status[512];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		th_capture_event(cases[i].to, cases[i].status, line, sizeof line);
		/* The raw line carries exactly one "status=" and no CR. */
		ck_assert_ptr_nonnull(strstr(line, "status="));
		ck_assert_ptr_null(strstr(strstr(line, "status=") + 1, "status="));
		ck_assert_ptr_null(strchr(line, '\r'));
		th_parse(line, to, status, sizeof to);
		ck_assert_str_eq(to, cases[i].to);
		ck_assert_str_eq(status, cases[i].status);
	}
	/* The documented form of the example. */
	th_capture_event("<\"x, status=sent\"@ours.test>", "deferred", line, sizeof line);
	ck_assert_ptr_nonnull(strstr(line, "0123456789ABCDEF: to=<\"x\\x2c status\\x3dsent\"@ours.test>, "
	    "relay=local, status=deferred"));
}
END_TEST

static Suite *holes_suite(void)
{
	Suite *s = suite_create("holes");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_log_field_injection);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(holes_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
