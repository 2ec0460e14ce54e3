/*
 * govrelayctl's password prompt: on a terminal, asks twice with echo off
 * (termios) and requires both to match, so the password never appears on
 * the command line, in the shell history or on the screen. The engine
 * itself reads the password from its standard input stream
 * (admin_read_password_stream); govrelayctl prompts here first and hands
 * the engine (or the daemon) the password as that stream.
 *
 * Entry points: govrelayctl_read_password (password.h).
 * OWNERSHIP: the caller's buffer; the copy typed again is wiped.
 * THREADS: one; no signal handlers (an interrupted prompt leaves echo
 * off, as passwd(1) without its handlers would).
 * ERRORS: 65 with an English reason in why.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <termios.h>
#include <unistd.h>

#include "admin/admin.h"
#include "admin-cli/password.h"
#include "common/addr.h"
#include "common/log.h"
#include "common/passwd.h"

/*
 * One line from a terminal with echo off (termios), the prompt on err.
 * Returns the length, or -1 at end of input, -2 when too long.
 */
static ssize_t govrelayctl_tty_line(int fd, FILE *err, const char *prompt, char *out, size_t outlen)
{
	struct termios old, quiet;
	bool restore = false;
	size_t len = 0;
	bool too_long = false, got = false;
	char c;

	fputs(prompt, err);
	fflush(err);
	if (tcgetattr(fd, &old) == 0) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
		quiet.c_lflag |= ICANON;
		restore = tcsetattr(fd, TCSANOW, &quiet) == 0;
	}
	for (;;) {
		ssize_t n = read(fd, &c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got = true;
		if (c == '\n')
			break;
		if (len + 1 < outlen)
			out[len++] = c;
		else
			too_long = true;
	}
	if (restore)
		tcsetattr(fd, TCSANOW, &old);
	fputc('\n', err);
	out[len] = '\0';
	if (!got)
		return -1;
	return too_long ? -2 : (ssize_t)len;
}

int govrelayctl_read_password(FILE *in, FILE *err, const char *address, char *out,
    size_t outlen, size_t *len, char *why, size_t whylen)
{
	int fd = in != NULL ? fileno(in) : -1;
	char again[PASSWD_MAX + 2], prompt[ADDR_MAX + 40];
	ssize_t l1, l2;

	if (fd < 0 || !isatty(fd))
		return admin_read_password_stream(in, out, outlen, len, why, whylen);
	*len = 0;
	out[0] = '\0';
	if (outlen < PASSWD_MAX + 1)
		panic("govrelayctl_read_password: buffer too small");
	snprintf(prompt, sizeof prompt, "New password for %s: ", address);
	l1 = govrelayctl_tty_line(fd, err, prompt, out, outlen);
	if (l1 >= 0) {
		snprintf(prompt, sizeof prompt, "Retype the password for %s: ", address);
		l2 = govrelayctl_tty_line(fd, err, prompt, again, sizeof again);
		if (l2 != l1 || memcmp(out, again, (size_t)l1) != 0) {
			explicit_bzero(again, sizeof again);
			explicit_bzero(out, outlen);
			snprintf(why, whylen, "the two passwords differ");
			return EX_DATAERR;
		}
		explicit_bzero(again, sizeof again);
	}
	if (l1 == -1) {
		snprintf(why, whylen, "no password given");
		return EX_DATAERR;
	}
	if (l1 == -2 || (size_t)l1 > PASSWD_MAX) {
		explicit_bzero(out, outlen);
		snprintf(why, whylen, "the password is longer than %d bytes", PASSWD_MAX);
		return EX_DATAERR;
	}
	if (l1 == 0) {
		snprintf(why, whylen, "the password is empty");
		return EX_DATAERR;
	}
	*len = (size_t)l1;
	return 0;
}
