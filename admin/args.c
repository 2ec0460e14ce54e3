/*
 * admin/args: argument patterns and the canonical forms of arguments.
 * A row's pattern ("<domain> --route <route> [--tenant <id>]") compiles
 * into slots; the parser fills them from argv and reports usage errors
 * through the row (engine.c); admin__domain_arg, admin__addr_arg and
 * admin__tenant_arg turn an argument into its canonical form or exit 65
 * naming the argument.
 *
 * Entry points: admin__pattern_compile, admin__args_parse, admin__arg,
 * admin__domain_arg, admin__addr_arg, admin__tenant_arg (admin_int.h).
 * OWNERSHIP: slot values point into the caller's argv.
 * THREADS: any. ERRORS: EX_USAGE, EX_DATAERR (reported on io->err).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

/* ------------------------------------------------- argument patterns */

/*
 * Compiles a pattern into slots. The table is ours, so a malformed
 * pattern is a programming error and panics (every row is compiled by
 * `govrelayctl help` too, so it cannot hide).
 */
void admin__pattern_compile(const char *pattern, struct admin_args *a)
{
	char copy[320], *save = NULL, *tok;

	memset(a, 0, sizeof *a);
	for (size_t i = 0; i < ADMIN_SLOTS_MAX; i++)
		a->idx[i] = -1;
	if (str_copy(copy, pattern, sizeof copy) >= sizeof copy)
		panic("govrelayctl: pattern too long: %s", pattern);
	for (tok = strtok_r(copy, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
		struct admin_slot *s;
		bool opt = tok[0] == '[';
		size_t len;

		if (a->n == ADMIN_SLOTS_MAX)
			panic("govrelayctl: too many slots: %s", pattern);
		s = &a->slot[a->n];
		s->required = !opt;
		if (opt)
			tok++;
		len = strlen(tok);
		if (tok[0] == '<') {
			if (len < 3 || tok[len - (opt ? 2 : 1)] != '>')
				panic("govrelayctl: bad pattern: %s", pattern);
			s->kind = ADMIN_SLOT_POS;
			str_copyn(s->name, tok + 1, len - (opt ? 3 : 2), sizeof s->name);
		} else if (strncmp(tok, "--", 2) == 0) {
			if (opt && tok[len - 1] == ']') {
				s->kind = ADMIN_SLOT_FLAG;
				str_copyn(s->name, tok, len - 1, sizeof s->name);
			} else {
				char *v = strtok_r(NULL, " ", &save);
				size_t vl;

				if (v == NULL || v[0] != '<')
					panic("govrelayctl: bad pattern: %s", pattern);
				vl = strlen(v);
				if (opt && v[vl - 1] == ']')
					vl--;
				s->kind = ADMIN_SLOT_OPT;
				str_copy(s->name, tok, sizeof s->name);
				str_copyn(s->value, v, vl, sizeof s->value);
			}
		} else {
			panic("govrelayctl: bad pattern: %s", pattern);
		}
		a->n++;
	}
}

static int admin_slot_find(const struct admin_args *a, const char *name, size_t len)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->slot[i].kind != ADMIN_SLOT_POS && strlen(a->slot[i].name) == len &&
		    strncmp(a->slot[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

/*
 * Matches argv (after NOUN VERB) against the compiled pattern. Options
 * may come in any order and as "--opt value" or "--opt=value"; --json
 * and --help are global and have been removed before. Returns 0 or
 * EX_USAGE (reported unless a is NULL).
 */
int admin__args_parse(const struct admin *a, struct admin_args *args, int argc,
    char **argv)
{
	size_t next_pos = 0;

#define ADMIN_USAGE(...) (a != NULL ? admin__usage(a, __VA_ARGS__) : EX_USAGE)
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];

		if (strncmp(arg, "--", 2) == 0 && arg[2] != '\0') {
			const char *eq = strchr(arg, '=');
			size_t nl = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
			int s = admin_slot_find(args, arg, nl);

			if (s < 0)
				return ADMIN_USAGE("unknown option '%.*s'", (int)nl, arg);
			if (args->set[s])
				return ADMIN_USAGE("%s given twice", args->slot[s].name);
			if (args->slot[s].kind == ADMIN_SLOT_FLAG) {
				if (eq != NULL)
					return ADMIN_USAGE("%s takes no value", args->slot[s].name);
				args->val[s] = "";
				args->idx[s] = i;
			} else if (eq != NULL) {
				args->val[s] = eq + 1;
				args->idx[s] = i;
			} else if (i + 1 < argc) {
				args->val[s] = argv[++i];
				args->idx[s] = i;
			} else {
				return ADMIN_USAGE("%s needs a value %s", args->slot[s].name,
				    args->slot[s].value);
			}
			args->set[s] = true;
			continue;
		}
		/*
		 * No verb has single-dash options, so "-x" is a value: a bad
		 * domain like "-a.example" is then refused as a domain (65),
		 * not as an unknown option, and "-" names standard input.
		 */
		while (next_pos < args->n && args->slot[next_pos].kind != ADMIN_SLOT_POS)
			next_pos++;
		if (next_pos == args->n)
			return ADMIN_USAGE("unexpected argument '%s'", arg);
		args->val[next_pos] = arg;
		args->idx[next_pos] = i;
		args->set[next_pos] = true;
		next_pos++;
	}
	for (size_t i = 0; i < args->n; i++) {
		if (!args->slot[i].required || args->set[i])
			continue;
		if (args->slot[i].kind == ADMIN_SLOT_POS)
			return ADMIN_USAGE("missing <%s>", args->slot[i].name);
		return ADMIN_USAGE("missing %s %s", args->slot[i].name, args->slot[i].value);
	}
#undef ADMIN_USAGE
	return 0;
}

const char *admin__arg(const struct admin_args *args, const char *name)
{
	for (size_t i = 0; i < args->n; i++)
		if (strcmp(args->slot[i].name, name) == 0)
			return args->set[i] ? args->val[i] : NULL;
	panic("govrelayctl: no slot %s", name);
}


/* -------------------------------------------------------- arguments */

/* One canonical form (common/addr.h) of in, or an error naming the argument. */
static int admin_canon_arg(const struct admin *a, const char *what, const char *in,
    char *out, size_t outlen,
    int (*canon)(const char *, char *, size_t, const char **), const char *fallback)
{
	const char *why = "";
	char *shown;

	if (canon(in, out, outlen, &why) == 0)
		return 0;
	shown = admin__text_dup(in);
	admin__err(a, "%s \"%s\": %s", what, shown, why != NULL ? why : fallback);
	free(shown);
	return EX_DATAERR;
}

int admin__domain_arg(const struct admin *a, const char *what, const char *in, char *out,
    size_t outlen)
{
	return admin_canon_arg(a, what, in, out, outlen, addr_domain_canon, "not a domain");
}

int admin__addr_arg(const struct admin *a, const char *what, const char *in, char *out,
    size_t outlen)
{
	return admin_canon_arg(a, what, in, out, outlen, addr_canon, "not an address");
}

int admin__tenant_arg(const struct admin *a, const char *what, const char *in)
{
	char why[160];
	char *shown;

	why[0] = '\0';
	if (tenancy_id_check(in, why, sizeof why) == 0)
		return 0;
	shown = admin__text_dup(in);
	admin__err(a, "%s \"%s\": %s", what, shown,
	    why[0] ? why : "use 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit");
	free(shown);
	return EX_DATAERR;
}

