#ifndef GOVRELAY_ADMIN_CLI_PASSWORD_H
#define GOVRELAY_ADMIN_CLI_PASSWORD_H
/*
 * govrelayctl's password prompt (password.c). When in is a terminal:
 * prompts on err twice ("New password for ADDRESS: ") with echo off and
 * requires both to match; otherwise reads the first line of in, as the
 * engine does (admin_read_password_stream). The password is refused when
 * empty, longer than PASSWD_MAX bytes or holding a NUL byte. Returns 0
 * with out NUL-terminated and *len its length (outlen at least
 * PASSWD_MAX + 1), or 65 with an English reason in why.
 */
#include <stddef.h>
#include <stdio.h>

int govrelayctl_read_password(FILE *in, FILE *err, const char *address, char *out,
    size_t outlen, size_t *len, char *why, size_t whylen);

#endif
