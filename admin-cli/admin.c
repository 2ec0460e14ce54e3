/*
 * admin: the command engine of govrelayctl. One command is one row of
 * admin_cmds[]: noun, verb, an argument pattern ("<domain> --route
 * <route> [--tenant <id>] [--require-tls]"), flags, who may run it,
 * handler and help line. The argument parser, `govrelayctl help`,
 * `govrelayctl NOUN --help` and every usage error come from that table
 * (STYLE.md section 12, OpenSMTPD smtpctl's pattern table), so a new verb
 * is one row and one handler. The handlers live in cmd_tenancy.c
 * (tenants, domains, mailboxes, users, operators, policy), cmd_queue.c
 * (queue, stats) and cmd_audit.c (audit search, export, verify).
 *
 * Authorization (STYLE.md section 12, `cmd_install_priv`): the row says
 * who may run it at all (super only, postmasters, auditors); for a
 * caller who is not super, the dispatcher looks the caller up in the
 * operators table and loads the tenant subtree they answer for, and the
 * handler checks every object it touches against that subtree before it
 * changes anything. A refusal exits 77 and leaves an audit record
 * (event admin, action=denied) in a write transaction of its own.
 *
 * Entry points: admin_run, admin_reads_stdin, admin_file_arg,
 * admin_read_password; the admin__ helpers of admin_int.h.
 * OWNERSHIP: everything a command allocates is freed before admin_run
 * returns; io and its members are borrowed. Read transactions that feed
 * an aligned table copy what they need and end before printing, so a slow
 * terminal never holds an LMDB snapshot; listings that may be huge
 * (mailboxes of a domain, audit search) print as they walk, by design.
 * THREADS: any thread, several at once: no static mutable state, only
 * reentrant libc calls (getpwnam_r, gmtime_r, strtok_r), no exit(), no
 * signal handlers. A write transaction is begun and ended on the calling
 * thread.
 * ERRORS: admin_run returns a sysexits.h code (INTERFACE.md): 0 ok, 64
 * usage, 65 bad argument value, 66 no such object, 69 store unavailable,
 * 70 internal error, 73 already exists, 74 output failed, 75 try again,
 * 77 permission denied, 78 configuration error. Messages go to io->err
 * and name the command and the argument at fault.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <termios.h>
#include <unistd.h>

#include "admin-cli/admin.h"
#include "admin-cli/admin_int.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/passwd.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

static int admin_config_check(struct admin *a, const struct admin_args *args);

#define R ADMIN_F_READ
#define W ADMIN_F_WRITE
#define ANY ADMIN_ACC_ANY
#define SUPER ADMIN_ACC_SUPER
#define PM ADMIN_ACC_POSTMASTER
#define AUD ADMIN_ACC_AUDITOR
#define ADMIN_AUDIT_FILTERS "[--since <time>] [--until <time>] [--sender <address>] " \
	"[--recipient <address>] [--tenant <id>] [--event <event>] [--queue-id <id>]"

static const struct admin_cmd admin_cmds[] = {
	{ "tenant", "add", "<id> --name <name> [--parent <id>]", W, PM, admin__tenant_add,
	  "Add a tenant (an agency) named NAME, below --parent (a postmaster: inside "
	  "their own tenant; without --parent: a new root, for root or the store's owner)." },
	{ "tenant", "list", "", R, PM, admin__tenant_list,
	  "List the tenants as a tree (indented by depth)." },
	{ "tenant", "show", "<id>", R, PM, admin__tenant_show,
	  "Show a tenant: name, parent chain, children, domains and operators." },
	{ "tenant", "remove", "<id>", W, PM, admin__tenant_remove,
	  "Remove a tenant that owns no domain, no child tenant and no operator." },
	{ "domain", "add",
	  "<domain> --route <route> [--tenant <id>] [--require-tls] [--accept-all]", W, PM,
	  admin__domain_add,
	  "Accept mail for DOMAIN and deliver it over ROUTE (smtp:HOST:PORT, lmtp:HOST:PORT, "
	  "lmtp:unix:PATH, maildir:DIR or mx); --accept-all accepts any local part, not "
	  "only the listed mailboxes. --tenant is required for postmasters." },
	{ "domain", "list", "[--tenant <id>]", R, PM, admin__domain_list,
	  "List the domains, optionally only those of one tenant." },
	{ "domain", "show", "<domain>", R, PM, admin__domain_show,
	  "Show one domain (with its Unicode form and its mailbox count)." },
	{ "domain", "remove", "<domain>", W, PM, admin__domain_remove,
	  "Stop accepting mail for DOMAIN (refused while it has mailboxes or users)." },
	{ "mailbox", "add", "<address> [--alias-of <target>]", W, PM, admin__mailbox_add,
	  "Add a mailbox, or with --alias-of an alias (adding to an existing alias "
	  "appends the target)." },
	{ "mailbox", "remove", "<address>", W, PM, admin__mailbox_remove,
	  "Remove a mailbox or an alias." },
	{ "mailbox", "list", "[--tenant <id>] [--domain <domain>]", R, PM, admin__mailbox_list,
	  "List mailboxes and aliases (all in reach, one tenant's or one domain's)." },
	{ "mailbox", "show", "<address>", R, PM, admin__mailbox_show,
	  "Show a mailbox or an alias with its targets." },
	{ "mailbox", "import", "<file> [--label <name>]", W, PM, admin__mailbox_import,
	  "Import FILE.csv (rows address[,alias-of]; - reads standard input) in one "
	  "transaction: every row is checked first, and any bad row imports nothing. "
	  "--label names the file in error messages." },
	{ "user", "add", "<address>", W | ADMIN_F_STDIN, PM, admin__user_add,
	  "Add a user who may submit mail as ADDRESS (and its mailbox when absent); "
	  "the password is read from standard input, never from the command line." },
	{ "user", "passwd", "<address>", W | ADMIN_F_STDIN, PM, admin__user_passwd,
	  "Set a user's password (read from standard input)." },
	{ "user", "lock", "<address>", W, PM, admin__user_lock,
	  "Lock a user: no AUTH until unlocked." },
	{ "user", "unlock", "<address>", W, PM, admin__user_lock,
	  "Unlock a user and clear their failed-AUTH count and lock-out." },
	{ "user", "list", "[--tenant <id>] [--domain <domain>]", R, PM, admin__user_list,
	  "List users: address, state (active, locked, locked-out), failures." },
	{ "user", "show", "<address>", R, PM, admin__user_show, "Show one user." },
	{ "user", "remove", "<address>", W, PM, admin__user_remove,
	  "Remove a user (their mailbox stays)." },
	{ "operator", "add", "<user> --tenant <id> --role <role>", W, SUPER, admin__operator_add,
	  "Let unix user USER administer tenant ID and its subtree as postmaster or "
	  "auditor." },
	{ "operator", "list", "", R, SUPER, admin__operator_list, "List the operators." },
	{ "operator", "remove", "<user>", W, SUPER, admin__operator_remove,
	  "Remove an operator." },
	{ "policy", "set", "<tenant> <key> <value>", W, PM, admin__policy_set,
	  "Set a policy key for a tenant (inherited by its subtree unless overridden)." },
	{ "policy", "unset", "<tenant> <key>", W, PM, admin__policy_set,
	  "Remove a tenant's own setting of a policy key (it inherits again)." },
	{ "policy", "show", "<tenant>", R, PM, admin__policy_show,
	  "Show every policy key's effective value for a tenant and where it comes from." },
	{ "queue", "list", "", R, PM, admin__queue_list,
	  "List the queued messages and, under each, its recipients' state, attempts, "
	  "next attempt and last error." },
	{ "queue", "show", "<id>", R, PM, admin__queue_show,
	  "Show one queued message and each recipient's state." },
	/* The store is opened by the handler, and only when no daemon answers. */
	{ "queue", "hold", "<id>", 0, PM, admin__queue_change,
	  "Keep message ID in the queue without delivery attempts until released." },
	{ "queue", "release", "<id>", 0, PM, admin__queue_change,
	  "Release a held message; its pending recipients are attempted now." },
	{ "queue", "delete", "<id>", 0, PM, admin__queue_change,
	  "Remove message ID from the queue without delivery or bounce." },
	{ "queue", "retry", "<id>", 0, PM, admin__queue_change,
	  "Attempt message ID's pending recipients now, whatever their backoff." },
	{ "queue", "flush", "", 0, PM, admin__queue_change,
	  "Attempt every message that is not held now." },
	{ "audit", "search", ADMIN_AUDIT_FILTERS, R, AUD, admin__audit_search,
	  "Print the audit records that match every filter given, oldest first. T is "
	  "ISO 8601 (2026-11-23T10:00Z), relative (-2h, -7d), now or @UNIXSECONDS." },
	{ "audit", "export", "--format <format> " ADMIN_AUDIT_FILTERS, R, AUD, admin__audit_search,
	  "Export matching audit records as jsonl or csv (RFC 4180)." },
	{ "audit", "verify", "", R, AUD, admin__audit_verify,
	  "Recompute the audit hash chain; exit 65 naming the first broken record." },
	{ "stats", "", "", R, PM, admin__stats,
	  "Count tenants, domains, mailboxes, aliases, users, operators, queued messages "
	  "and audit records." },
	{ "config", "check", "", 0, ANY, admin_config_check,
	  "Check the configuration file: FILE:LINE: message per error." },
};

#undef R
#undef W
#undef ANY
#undef SUPER
#undef PM
#undef AUD

#define ADMIN_NCMDS (sizeof admin_cmds / sizeof admin_cmds[0])

/* --------------------------------------------------------- messages */

static void admin_prefix(const struct admin *a, FILE *f)
{
	if (a != NULL && a->cmd != NULL)
		fprintf(f, "govrelayctl: %s%s%s: ", a->cmd->noun, a->cmd->verb[0] ? " " : "",
		    a->cmd->verb);
	else
		fputs("govrelayctl: ", f);
}

void admin__err(const struct admin *a, const char *fmt, ...)
{
	va_list ap;

	admin_prefix(a, a->io->err);
	va_start(ap, fmt);
	vfprintf(a->io->err, fmt, ap);
	va_end(ap);
	fputc('\n', a->io->err);
}

void admin__out(const struct admin *a, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(a->io->out, fmt, ap);
	va_end(ap);
}

void admin__out_buf(const struct admin *a, const struct buf *b)
{
	if (b->len > 0)
		fwrite(b->data, 1, b->len, a->io->out);
}

static void admin_usage_line(FILE *f, const struct admin_cmd *c)
{
	fprintf(f, "govrelayctl -c FILE %s%s%s%s%s [--json]\n", c->noun, c->verb[0] ? " " : "",
	    c->verb, c->pattern[0] != '\0' ? " " : "", c->pattern);
}

int admin__usage(const struct admin *a, const char *fmt, ...)
{
	FILE *f = a->io->err;
	va_list ap;

	admin_prefix(a, f);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	if (a->cmd != NULL) {
		fputs("usage: ", f);
		admin_usage_line(f, a->cmd);
	} else {
		fputs("usage: govrelayctl -c FILE NOUN VERB [ARGS] [--json]; "
		    "'govrelayctl help' lists the commands\n", f);
	}
	return EX_USAGE;
}

static const char *admin_access_note(enum admin_access acc)
{
	switch (acc) {
	case ADMIN_ACC_SUPER:
		return "Who: root or the store's owner.";
	case ADMIN_ACC_AUDITOR:
		return "Who: root, the store's owner, auditors (within their tenant).";
	case ADMIN_ACC_POSTMASTER:
		return "Who: root, the store's owner, postmasters (within their tenant).";
	default:
		return "Who: anyone.";
	}
}

static void admin_help_row(FILE *f, const struct admin_cmd *c)
{
	fprintf(f, "  %s%s%s%s%s\n      %s\n      %s\n", c->noun, c->verb[0] ? " " : "",
	    c->verb, c->pattern[0] != '\0' ? " " : "", c->pattern, c->help,
	    admin_access_note(c->access));
}

/* Every row, or one noun's (noun != NULL), or one row (verb != NULL). */
static void admin_help(FILE *f, const char *noun, const char *verb)
{
	if (noun == NULL) {
		fputs("usage: govrelayctl -c FILE NOUN VERB [ARGS] [--json]\n"
		    "       govrelayctl help [NOUN [VERB]]\n"
		    "       govrelayctl NOUN [VERB] --help\n\ncommands:\n", f);
	}
	for (size_t i = 0; i < ADMIN_NCMDS; i++) {
		const struct admin_cmd *c = &admin_cmds[i];

		if (noun != NULL && strcmp(c->noun, noun) != 0)
			continue;
		if (verb != NULL && strcmp(c->verb, verb) != 0)
			continue;
		if (verb != NULL) {
			fputs("usage: ", f);
			admin_usage_line(f, c);
			fprintf(f, "\n%s\n%s\n", c->help, admin_access_note(c->access));
			continue;
		}
		admin_help_row(f, c);
	}
	if (noun == NULL)
		fputs("\n--json prints one JSON object per line for lists and searches, and one"
		    " object for show and stats.\n"
		    "root and the owner of data_dir act on the store directly; operators"
		    " (see 'operator add') act through govrelayd within their tenant.\n", f);
}

/* ------------------------------------------------- argument patterns */

/*
 * Compiles a pattern into slots. The table is ours, so a malformed
 * pattern is a programming error and panics (every row is compiled by
 * `govrelayctl help` too, so it cannot hide).
 */
static void admin_pattern_compile(const char *pattern, struct admin_args *a)
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
static int admin_args_parse(const struct admin *a, struct admin_args *args, int argc,
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

static const struct admin_cmd *admin_find(const char *noun, const char *verb, bool *noun_known)
{
	*noun_known = false;
	for (size_t i = 0; i < ADMIN_NCMDS; i++) {
		if (strcmp(admin_cmds[i].noun, noun) != 0)
			continue;
		*noun_known = true;
		/* A noun without verbs ("stats") is its own command. */
		if (admin_cmds[i].verb[0] == '\0')
			return &admin_cmds[i];
		if (verb != NULL && strcmp(admin_cmds[i].verb, verb) == 0)
			return &admin_cmds[i];
	}
	return NULL;
}

/*
 * The command of argv (noun first; --json and --help anywhere) and its
 * parsed arguments, without a word of output: for admin_reads_stdin and
 * admin_file_arg. map[k] is the argv index of the k-th argument after
 * NOUN VERB. NULL when argv is no valid command.
 */
static const struct admin_cmd *admin_locate(int argc, char **argv, struct admin_args *args,
    int *map, char **rest)
{
	const struct admin_cmd *c;
	int n = 0, words = 0, skip;
	bool known;
	char *w[2] = { NULL, NULL };

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0)
			continue;
		if (words < 2)
			w[words] = argv[i];
		words++;
	}
	if (words == 0)
		return NULL;
	c = admin_find(w[0], w[1], &known);
	if (c == NULL)
		return NULL;
	skip = c->verb[0] != '\0' ? 2 : 1;
	for (int i = 0, seen = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0)
			continue;
		if (seen++ < skip)
			continue;
		map[n] = i;
		rest[n++] = argv[i];
	}
	admin_pattern_compile(c->pattern, args);
	if (admin_args_parse(NULL, args, n, rest) != 0)
		return NULL;
	return c;
}

bool admin_reads_stdin(int argc, char **argv)
{
	struct admin_args args;
	int *map = xcalloc((size_t)argc + 1, sizeof *map);
	char **rest = xcalloc((size_t)argc + 1, sizeof *rest);
	const struct admin_cmd *c = admin_locate(argc, argv, &args, map, rest);
	bool reads = false;

	if (c != NULL && (c->flags & ADMIN_F_STDIN))
		reads = true;
	if (c != NULL && strcmp(c->noun, "mailbox") == 0 && strcmp(c->verb, "import") == 0) {
		const char *file = admin__arg(&args, "file");

		reads = file != NULL && strcmp(file, "-") == 0;
	}
	free(map);
	free(rest);
	return reads;
}

int admin_file_arg(int argc, char **argv)
{
	struct admin_args args;
	int *map = xcalloc((size_t)argc + 1, sizeof *map);
	char **rest = xcalloc((size_t)argc + 1, sizeof *rest);
	const struct admin_cmd *c = admin_locate(argc, argv, &args, map, rest);
	int at = -1;

	if (c != NULL && strcmp(c->noun, "mailbox") == 0 && strcmp(c->verb, "import") == 0) {
		for (size_t i = 0; i < args.n; i++)
			if (strcmp(args.slot[i].name, "file") == 0 && args.set[i] &&
			    strcmp(args.val[i], "-") != 0)
				at = map[args.idx[i]];
	}
	free(map);
	free(rest);
	return at;
}

/* ------------------------------------------------------------ output */

/*
 * Text for a terminal: C0 and C1 control characters, DEL and invalid
 * UTF-8 become \xNN, so a stored name or a remote reply can never move
 * the cursor or forge a line (U+009B is CSI on some terminals). Other
 * UTF-8 is kept.
 */
void admin__text(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		size_t n = *p >= 0x80 ? str_utf8_seq_len(p) : 1;

		if (n == 0 || *p < 0x20 || *p == 0x7f || (*p == 0xc2 && p[1] < 0xa0)) {
			buf_printf(b, "\\x%02X", *p);
			p++;
			continue;
		}
		buf_append(b, p, n);
		p += n;
	}
}

char *admin__text_dup(const char *s)
{
	struct buf b;

	buf_init(&b);
	admin__text(&b, s != NULL ? s : "-");
	buf_cstr(&b);
	return buf_steal(&b, NULL);
}

/* Display width: one column per UTF-8 character (wide CJK aside). */
size_t admin__width(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

void admin__pad(struct buf *b, const char *s, size_t width)
{
	size_t w;
	char *t = admin__text_dup(s);

	w = admin__width(t);
	buf_append_str(b, t);
	for (; w < width; w++)
		buf_append_char(b, ' ');
	free(t);
}

void admin__table_row(struct admin_table *t, const char *const *cols)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = xreallocarray(t->cells, t->cap, t->ncols * sizeof *t->cells);
	}
	for (size_t c = 0; c < t->ncols; c++)
		t->cells[t->nrows * t->ncols + c] = admin__text_dup(cols[c]);
	t->nrows++;
}

void admin__cell(struct buf *b, const char *s, size_t width, char align, bool last)
{
	size_t w = admin__width(s), pad = width > w ? width - w : 0;

	if (align == 'r')
		for (size_t i = 0; i < pad; i++)
			buf_append_char(b, ' ');
	buf_append_str(b, s);
	if (!last && align != 'r')
		for (size_t i = 0; i < pad; i++)
			buf_append_char(b, ' ');
	if (!last)
		buf_append_str(b, "  ");
}

void admin__table_print(const struct admin *a, const struct admin_table *t)
{
	size_t *w = xcalloc(t->ncols, sizeof *w);
	struct buf b;

	buf_init(&b);
	for (size_t c = 0; c < t->ncols; c++) {
		w[c] = admin__width(t->head[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t cw = admin__width(t->cells[r * t->ncols + c]);

			if (cw > w[c])
				w[c] = cw;
		}
	}
	for (size_t c = 0; c < t->ncols; c++)
		admin__cell(&b, t->head[c], w[c], t->align[c], c + 1 == t->ncols);
	buf_append_char(&b, '\n');
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++)
			admin__cell(&b, t->cells[r * t->ncols + c], w[c], t->align[c],
			    c + 1 == t->ncols);
		buf_append_char(&b, '\n');
		if (b.len > 65536) {
			admin__out_buf(a, &b);
			buf_reset(&b);
		}
	}
	admin__out_buf(a, &b);
	buf_free(&b);
	free(w);
}

void admin__table_free(struct admin_table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

void admin__kv(const struct admin *a, const char *indent, const char *key, const char *value)
{
	char *v = admin__text_dup(value);

	fprintf(a->io->out, "%s%s: %s\n", indent, key, v);
	free(v);
}

/*
 * A JSON string (RFC 8259 section 7): '"', '\\' and every byte below 0x20
 * and DEL are escaped; valid UTF-8 passes through; a byte that is not
 * part of valid UTF-8 becomes U+FFFD, so the output is always valid JSON
 * whatever is stored.
 */
void admin__json_str(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (s == NULL) {
		buf_append_str(b, "null");
		return;
	}
	buf_append_char(b, '"');
	while (*p != '\0') {
		unsigned char c = *p;

		if (c == '"' || c == '\\') {
			buf_append_char(b, '\\');
			buf_append_char(b, (char)c);
		} else if (c == '\n') {
			buf_append_str(b, "\\n");
		} else if (c == '\r') {
			buf_append_str(b, "\\r");
		} else if (c == '\t') {
			buf_append_str(b, "\\t");
		} else if (c < 0x20 || c == 0x7f) {
			buf_printf(b, "\\u%04x", c);
		} else if (c >= 0x80) {
			size_t n = str_utf8_seq_len(p);

			if (n == 0) {
				buf_append_str(b, "\\ufffd");
			} else {
				buf_append(b, p, n);
				p += n;
				continue;
			}
		} else {
			buf_append_char(b, (char)c);
		}
		p++;
	}
	buf_append_char(b, '"');
}

void admin__json_sep(struct admin_json *j, const char *key)
{
	if (!j->first[j->depth])
		buf_append_char(&j->b, ',');
	j->first[j->depth] = false;
	if (key != NULL) {
		admin__json_str(&j->b, key);
		buf_append_char(&j->b, ':');
	}
}

void admin__json_open(struct admin_json *j, const char *key, char c)
{
	if (j->depth >= 0)
		admin__json_sep(j, key);
	buf_append_char(&j->b, c);
	j->depth++;
	if (j->depth >= (int)(sizeof j->first / sizeof j->first[0]))
		panic("govrelayctl: JSON nested too deep");
	j->first[j->depth] = true;
}

void admin__json_close(struct admin_json *j, char c)
{
	buf_append_char(&j->b, c);
	j->depth--;
}

void admin__json_begin(struct admin_json *j)
{
	buf_init(&j->b);
	j->depth = -1;
	admin__json_open(j, NULL, '{');
}

void admin__json_end(const struct admin *a, struct admin_json *j)
{
	admin__json_close(j, '}');
	buf_append_char(&j->b, '\n');
	admin__out_buf(a, &j->b);
	buf_free(&j->b);
}

void admin__json_kstr(struct admin_json *j, const char *key, const char *v)
{
	admin__json_sep(j, key);
	admin__json_str(&j->b, v);
}

void admin__json_kint(struct admin_json *j, const char *key, int64_t v)
{
	admin__json_sep(j, key);
	buf_printf(&j->b, "%" PRId64, v);
}

void admin__json_kuint(struct admin_json *j, const char *key, uint64_t v)
{
	admin__json_sep(j, key);
	buf_printf(&j->b, "%" PRIu64, v);
}

void admin__json_kbool(struct admin_json *j, const char *key, bool v)
{
	admin__json_sep(j, key);
	buf_append_str(&j->b, v ? "true" : "false");
}

void admin__json_kraw(struct admin_json *j, const char *key, const char *raw)
{
	admin__json_sep(j, key);
	buf_append_str(&j->b, raw);
}

const char *admin__time(int64_t ms, bool set, char out[ADMIN_TIME_LEN])
{
	if (!set)
		return NULL;
	time_format_iso(ms, out, ADMIN_TIME_LEN);
	return out;
}

const char *admin__strerror(int err, char *buf, size_t len)
{
	return strerror_r(err, buf, len);
}

/* RFC 4180 section 2: quote a field holding a comma, a quote or a line break. */
void admin__csv_field(struct buf *b, const char *s)
{
	if (s == NULL)
		s = "";
	if (strpbrk(s, ",\"\r\n") == NULL) {
		buf_append_str(b, s);
		return;
	}
	buf_append_char(b, '"');
	for (; *s != '\0'; s++) {
		if (*s == '"')
			buf_append_char(b, '"');
		buf_append_char(b, *s);
	}
	buf_append_char(b, '"');
}

/* ------------------------------------------------------------- store */

int admin__store_exit(int rc)
{
	switch (rc) {
	case -EACCES:
	case -EPERM:
		return EX_NOPERM;
	case -EAGAIN:
	case -EBUSY:
		return EX_TEMPFAIL;
	default:
		return EX_UNAVAILABLE;
	}
}

int admin__fail(const struct admin *a, int rc, const char *why, const char *fmt, ...)
{
	FILE *f = a->io->err;
	va_list ap;

	admin_prefix(a, f);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fprintf(f, ": %s\n", why != NULL && why[0] != '\0' ? why : queue_strerror(rc));
	switch (rc) {
	case -ENOENT:
		return EX_NOINPUT;
	case -EEXIST:
		return EX_CANTCREAT;
	case -EINVAL:
	case -ENOTEMPTY:
	case -ELOOP:
		return EX_DATAERR;
	default:
		return admin__store_exit(rc);
	}
}

/*
 * Opens the store of the configuration's data_dir unless the daemon
 * gave us its own. A read of a store that does not exist yet (no daemon
 * has run, nothing was added) is not an error: lists print nothing and
 * a->store stays NULL.
 */
int admin__store_open(struct admin *a, bool write)
{
	int rc;

	if (a->io->store != NULL) {
		a->store = a->io->store;
		a->store_rw = true;
		return 0;
	}
	if (a->store != NULL && (a->store_rw || !write))
		return 0;
	if (a->store != NULL) {
		/* One environment per process: close the read-only one first. */
		queue_store_close(a->store);
		a->store = NULL;
	}
	if (a->io->cfg == NULL || a->io->cfg->data_dir == NULL) {
		admin__err(a, "no configuration with a data_dir");
		return EX_CONFIG;
	}
	/*
	 * A write open sizes the map as the daemon does (queue_max_size), so a
	 * store this command creates is not stuck at LMDB's 10 MiB default.
	 */
	rc = queue_store_open(a->io->cfg->data_dir, write ? a->io->cfg->queue_max_size : 0, !write,
	    &a->store);
	if (rc == -ENOENT && !write) {
		a->store = NULL;
		return 0;
	}
	if (rc < 0) {
		a->store = NULL;
		admin__err(a, "cannot open the store in %s: %s", a->io->cfg->data_dir,
		    rc == -ENOENT ? "no such directory" : queue_strerror(rc));
		return admin__store_exit(rc);
	}
	a->own_store = true;
	a->store_rw = write;
	return 0;
}

int admin__txn(struct admin *a, bool write, struct queue_txn **txn)
{
	int rc;

	*txn = NULL;
	if (a->store == NULL || (write && !a->store_rw)) {
		if ((rc = admin__store_open(a, write)) != 0)
			return rc;
	}
	if (a->store == NULL) {
		admin__err(a, "no store in %s yet", a->io->cfg->data_dir);
		return EX_UNAVAILABLE;
	}
	rc = queue_txn_begin(a->store, write, txn);
	if (rc < 0) {
		*txn = NULL;
		admin__err(a, "cannot %s the store: %s", write ? "write" : "read",
		    queue_strerror(rc));
		return admin__store_exit(rc);
	}
	return 0;
}

int admin__commit(struct admin *a, struct queue_txn *txn, const char *what)
{
	int rc = queue_txn_commit(txn);

	if (rc < 0) {
		admin__err(a, "cannot commit %s: %s", what, queue_strerror(rc));
		return admin__store_exit(rc);
	}
	return 0;
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

/* ------------------------------------------------------------ audit */

int admin__audit(const struct admin *a, struct queue_txn *txn, const char *tenant,
    const char *object, const struct queue_audit_field *extra, size_t nextra)
{
	struct queue_audit_field *f = xcalloc(nextra + 5, sizeof *f);
	char action[64];
	size_t nf = 0;
	int rc;

	snprintf(action, sizeof action, "%s%s%s", a->cmd->noun, a->cmd->verb[0] ? "." : "",
	    a->cmd->verb);
	f[nf++] = (struct queue_audit_field){ "action", action };
	f[nf++] = (struct queue_audit_field){ "by", a->user };
	f[nf++] = (struct queue_audit_field){ "via", a->via };
	if (tenant != NULL && tenant[0] != '\0')
		f[nf++] = (struct queue_audit_field){ "tenant", tenant };
	if (object != NULL)
		f[nf++] = (struct queue_audit_field){ "object", object };
	for (size_t i = 0; i < nextra; i++)
		if (extra[i].value != NULL)
			f[nf++] = extra[i];
	rc = queue_audit_append(txn, time_now_ms(), "", "admin", f, nf);
	free(f);
	return rc;
}

/* ------------------------------------------------------------ scope */

static int admin_strcmp_p(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

bool admin__tenant_in_scope(const struct admin *a, const char *tenant)
{
	if (a->super)
		return true;
	if (tenant == NULL || a->scope.ntenants == 0)
		return false;
	return bsearch(&tenant, a->scope.tenants, a->scope.ntenants, sizeof *a->scope.tenants,
	    admin_strcmp_p) != NULL;
}

struct admin_tenant_pairs {
	char **id;
	char **parent;
	size_t n, cap;
};

static int admin_tenant_pair(void *arg, const struct queue_tenant *t)
{
	struct admin_tenant_pairs *p = arg;

	if (p->n == p->cap) {
		p->cap = p->cap ? p->cap * 2 : 64;
		p->id = xreallocarray(p->id, p->cap, sizeof *p->id);
		p->parent = xreallocarray(p->parent, p->cap, sizeof *p->parent);
	}
	p->id[p->n] = xstrdup(t->id);
	p->parent[p->n] = t->parent != NULL ? xstrdup(t->parent) : NULL;
	p->n++;
	return 0;
}

/*
 * The subtree of a->op_tenant, computed from one walk of the (small:
 * about 600 agencies) tenant table: a tenant is inside when following
 * its parents reaches op_tenant within TENANCY_DEPTH_MAX steps.
 */
static int admin_scope_load(struct admin *a, struct queue_txn *txn)
{
	struct admin_tenant_pairs p = { NULL, NULL, 0, 0 };
	int rc = queue_tenant_walk(txn, admin_tenant_pair, &p);

	if (rc < 0)
		goto out;
	for (size_t i = 0; i < p.n; i++) {
		const char *cur = p.id[i];
		bool inside = false;

		for (int depth = 0; cur != NULL && depth <= TENANCY_DEPTH_MAX; depth++) {
			size_t k;

			if (strcmp(cur, a->op_tenant) == 0) {
				inside = true;
				break;
			}
			for (k = 0; k < p.n && strcmp(p.id[k], cur) != 0; k++)
				;
			cur = k < p.n ? p.parent[k] : NULL;
		}
		if (!inside)
			continue;
		a->scope.tenants = xreallocarray(a->scope.tenants, a->scope.ntenants + 1,
		    sizeof *a->scope.tenants);
		a->scope.tenants[a->scope.ntenants++] = xstrdup(p.id[i]);
	}
	if (a->scope.ntenants > 0)
		qsort(a->scope.tenants, a->scope.ntenants, sizeof *a->scope.tenants,
		    admin_strcmp_p);
out:
	for (size_t i = 0; i < p.n; i++) {
		free(p.id[i]);
		free(p.parent[i]);
	}
	free(p.id);
	free(p.parent);
	return rc;
}

static int admin_domain_ent_cmp(const void *x, const void *y)
{
	return strcmp(((const struct admin_domain_ent *)x)->name,
	    ((const struct admin_domain_ent *)y)->name);
}

struct admin_domains_ctx {
	struct admin *a;
	size_t cap;
};

static int admin_domains_collect(void *arg, const struct queue_domain *d)
{
	struct admin_domains_ctx *c = arg;
	struct admin_domains *l = &c->a->domains;
	struct admin_domain_ent *e;

	if (l->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		l->v = xreallocarray(l->v, c->cap, sizeof *l->v);
	}
	e = &l->v[l->n++];
	e->name = xstrdup(d->name);
	e->tenant = d->tenant != NULL ? xstrdup(d->tenant) : NULL;
	e->in_scope = admin__tenant_in_scope(c->a, d->tenant);
	return 0;
}

int admin__domains_load(struct admin *a, struct queue_txn *txn)
{
	struct admin_domains_ctx c = { a, 0 };
	int rc;

	if (a->domains.loaded)
		return 0;
	rc = queue_domain_walk(txn, admin_domains_collect, &c);
	if (rc < 0) {
		admin__err(a, "cannot read the domains: %s", queue_strerror(rc));
		return admin__store_exit(rc);
	}
	if (a->domains.n > 1)
		qsort(a->domains.v, a->domains.n, sizeof *a->domains.v, admin_domain_ent_cmp);
	a->domains.loaded = true;
	return 0;
}

const struct admin_domain_ent *admin__domain_find(const struct admin *a, const char *domain)
{
	struct admin_domain_ent key = { (char *)domain, NULL, false };

	if (a->domains.n == 0)
		return NULL;
	return bsearch(&key, a->domains.v, a->domains.n, sizeof *a->domains.v,
	    admin_domain_ent_cmp);
}

void admin__addr_domain(const char *addr, char *out, size_t outlen)
{
	const char *at = addr != NULL ? strrchr(addr, '@') : NULL;
	const char *why;

	out[0] = '\0';
	if (at == NULL || at[1] == '\0')
		return;
	if (addr_domain_canon(at + 1, out, outlen, &why) < 0) {
		str_copy(out, at + 1, outlen);
		str_lower(out);
	}
}

/*
 * The refusal: the message on err, the facts for the record. show says
 * whether the tenant was what the caller asked about (printed "on
 * tenant X") or only the caller's own (recorded, so that auditors of
 * that tenant see the attempt, but not printed).
 */
static int admin_deny_v(struct admin *a, const char *tenant, bool show, const char *fmt,
    va_list ap)
{
	FILE *f = a->io->err;
	char reason[256], *u, *r;

	vsnprintf(reason, sizeof reason, fmt, ap);
	u = admin__text_dup(a->user);
	r = admin__text_dup(reason);
	admin_prefix(a, f);
	fprintf(f, "permission denied: %s", u);
	if (a->is_operator)
		fprintf(f, " (%s of tenant %s)", queue_role_name(a->role), a->op_tenant);
	else
		fputs(" (not an operator)", f);
	fprintf(f, " may not run '%s%s%s'", a->cmd->noun, a->cmd->verb[0] ? " " : "",
	    a->cmd->verb);
	if (show && tenant != NULL && tenant[0] != '\0') {
		char *t = admin__text_dup(tenant);

		fprintf(f, " on tenant %s", t);
		free(t);
	}
	fprintf(f, ": %s\n", r);
	free(u);
	free(r);
	if (!a->denied) {
		a->denied = true;
		str_copy(a->deny_tenant, tenant != NULL ? tenant : "", sizeof a->deny_tenant);
		str_copy(a->deny_reason, reason, sizeof a->deny_reason);
	}
	return EX_NOPERM;
}

int admin__deny(struct admin *a, const char *tenant, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = admin_deny_v(a, tenant, true, fmt, ap);
	va_end(ap);
	return rc;
}

/* A refusal of the command as such (who the caller is), not of an object. */
static int admin_deny_cmd(struct admin *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int admin_deny_cmd(struct admin *a, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = admin_deny_v(a, a->is_operator ? a->op_tenant : NULL, false, fmt, ap);
	va_end(ap);
	return rc;
}

int admin__need_tenant(struct admin *a, const char *tenant, const char *what)
{
	if (admin__tenant_in_scope(a, tenant))
		return 0;
	if (tenant == NULL)
		return admin__deny(a, NULL, "%s belongs to no tenant", what);
	/* An argument that names the tenant itself ("--tenant", "tenant"). */
	if (strncmp(what, "--", 2) == 0 || strcmp(what, "tenant") == 0)
		return admin__deny(a, tenant, "tenant %s is outside tenant %s and its subtree",
		    tenant, a->op_tenant);
	return admin__deny(a, tenant, "%s belongs to tenant %s, outside tenant %s", what, tenant,
	    a->op_tenant);
}

/*
 * The refusal's audit record, in a write transaction of its own: the
 * handler's transaction (if any) was aborted, and a refusal must leave
 * a trace even though nothing changed.
 */
static void admin_deny_record(struct admin *a)
{
	struct queue_audit_field f[6];
	struct queue_txn *txn;
	char command[64];
	size_t nf = 0;
	int rc;

	snprintf(command, sizeof command, "%s%s%s", a->cmd->noun, a->cmd->verb[0] ? " " : "",
	    a->cmd->verb);
	if (admin__store_open(a, true) != 0 || a->store == NULL)
		return;
	rc = queue_txn_begin(a->store, true, &txn);
	if (rc < 0) {
		admin__err(a, "cannot record the refusal in the audit chain: %s",
		    queue_strerror(rc));
		return;
	}
	f[nf++] = (struct queue_audit_field){ "action", "denied" };
	f[nf++] = (struct queue_audit_field){ "by", a->user };
	f[nf++] = (struct queue_audit_field){ "via", a->via };
	f[nf++] = (struct queue_audit_field){ "command", command };
	if (a->deny_tenant[0] != '\0')
		f[nf++] = (struct queue_audit_field){ "tenant", a->deny_tenant };
	f[nf++] = (struct queue_audit_field){ "reason", a->deny_reason };
	rc = queue_audit_append(txn, time_now_ms(), "", "admin", f, nf);
	if (rc < 0) {
		queue_txn_abort(txn);
	} else {
		rc = queue_txn_commit(txn);
	}
	if (rc < 0)
		admin__err(a, "cannot record the refusal in the audit chain: %s",
		    queue_strerror(rc));
}

/*
 * Who runs the command: super (root or the store's owner, or whoever
 * the daemon says is), else the operator named io->user. Then whether
 * the row lets them run it at all.
 */
static int admin_identity(struct admin *a)
{
	struct queue_operator *op = NULL;
	struct queue_txn *txn;
	int rc;

	if (a->io->super) {
		a->super = true;
		return 0;
	}
	if (a->cmd->access == ADMIN_ACC_ANY)
		return 0;
	if ((rc = admin__store_open(a, false)) != 0)
		return rc;
	if (a->store == NULL)
		return admin_deny_cmd(a, "only root, the store's owner and operators (see "
		    "'operator add') may run it");
	if ((rc = admin__txn(a, false, &txn)) != 0)
		return rc;
	rc = queue_operator_get(txn, a->user, &op);
	if (rc == 0) {
		a->is_operator = true;
		a->role = op->role;
		str_copy(a->op_tenant, op->tenant, sizeof a->op_tenant);
		queue_operator_free(op);
		rc = admin_scope_load(a, txn);
	}
	queue_txn_abort(txn);
	if (rc == -ENOENT)
		return admin_deny_cmd(a, "only root, the store's owner and operators (see "
		    "'operator add') may run it");
	if (rc < 0) {
		admin__err(a, "cannot read the operators: %s", queue_strerror(rc));
		return admin__store_exit(rc);
	}
	switch (a->cmd->access) {
	case ADMIN_ACC_SUPER:
		return admin_deny_cmd(a, "only root or the store's owner may run it");
	case ADMIN_ACC_POSTMASTER:
		if (a->role != QUEUE_ROLE_POSTMASTER)
			return admin_deny_cmd(a, "an %s may only search, export and verify the "
			    "audit trail", queue_role_name(a->role));
		break;
	case ADMIN_ACC_AUDITOR:
		if (a->role != QUEUE_ROLE_AUDITOR)
			return admin_deny_cmd(a, "the audit trail is for auditors");
		break;
	default:
		break;
	}
	return 0;
}

/* ------------------------------------------------------------ config */

static int admin_config_check(struct admin *a, const struct admin_args *args)
{
	struct config *cfg = NULL;
	struct buf errors;
	int rc;

	(void)args;
	if (a->io->config_file == NULL)
		return admin__usage(a, "-c FILE is required");
	buf_init(&errors);
	rc = cfg_load(a->io->config_file, &cfg, &errors);
	if (rc != 0) {
		if (errors.len == 0) {
			char eb[ADMIN_ERRBUF];

			buf_printf(&errors, "%s: cannot load: %s\n", a->io->config_file,
			    admin__strerror(-rc, eb, sizeof eb));
		}
		rc = EX_CONFIG;
		fwrite(errors.data, 1, errors.len, a->io->err);
	}
	cfg_unref(cfg);
	if (a->json) {
		struct admin_json j;
		char *p, *nl;

		admin__json_begin(&j);
		admin__json_kstr(&j, "config", a->io->config_file);
		admin__json_kbool(&j, "ok", rc == 0);
		admin__json_open(&j, "errors", '[');
		for (p = buf_cstr(&errors); *p != '\0'; p = nl) {
			nl = strchr(p, '\n');
			if (nl != NULL)
				*nl++ = '\0';
			else
				nl = p + strlen(p);
			admin__json_sep(&j, NULL);
			admin__json_str(&j.b, p);
		}
		admin__json_close(&j, ']');
		admin__json_end(a, &j);
	}
	if (rc == 0 && !a->json)
		admin__out(a, "config ok: %s\n", a->io->config_file);
	buf_free(&errors);
	return rc;
}

/* ---------------------------------------------------------- password */

/*
 * One line from a terminal with echo off (termios), the prompt on err.
 * Returns the length, or -1 at end of input, -2 when too long.
 */
static ssize_t admin_tty_line(int fd, FILE *err, const char *prompt, char *out, size_t outlen)
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

int admin_read_password(FILE *in, FILE *err, const char *address, char *out, size_t outlen,
    size_t *len, char *why, size_t whylen)
{
	int fd = in != NULL ? fileno(in) : -1;
	size_t n = 0;
	bool nul = false, too_long = false, got = false;

	*len = 0;
	out[0] = '\0';
	if (outlen < PASSWD_MAX + 1)
		panic("admin_read_password: buffer too small");
	if (in == NULL) {
		snprintf(why, whylen, "no password on standard input");
		return EX_DATAERR;
	}
	if (fd >= 0 && isatty(fd)) {
		char again[PASSWD_MAX + 2], prompt[ADDR_MAX + 40];
		ssize_t l1, l2;

		snprintf(prompt, sizeof prompt, "New password for %s: ", address);
		l1 = admin_tty_line(fd, err, prompt, out, outlen);
		if (l1 >= 0) {
			snprintf(prompt, sizeof prompt, "Retype the password for %s: ", address);
			l2 = admin_tty_line(fd, err, prompt, again, sizeof again);
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
		n = (size_t)l1;
	} else {
		int c;

		while ((c = getc(in)) != EOF) {
			got = true;
			if (c == '\n')
				break;
			if (c == '\0')
				nul = true;
			if (n < PASSWD_MAX + 1 && n + 1 < outlen)
				out[n++] = (char)c;
			else
				too_long = true;
		}
		if (!got) {
			snprintf(why, whylen, "no password on standard input");
			return EX_DATAERR;
		}
	}
	if (n > 0 && out[n - 1] == '\r')
		n--;
	out[n] = '\0';
	if (too_long || n > PASSWD_MAX) {
		explicit_bzero(out, outlen);
		snprintf(why, whylen, "the password is longer than %d bytes", PASSWD_MAX);
		return EX_DATAERR;
	}
	if (nul) {
		explicit_bzero(out, outlen);
		snprintf(why, whylen, "the password holds a NUL byte");
		return EX_DATAERR;
	}
	if (n == 0) {
		snprintf(why, whylen, "the password is empty");
		return EX_DATAERR;
	}
	*len = n;
	return 0;
}

/* -------------------------------------------------------------- run */

/* "domain" without a known verb: say which verbs there are. */
static int admin_noun_usage(const struct admin *a, const char *noun, const char *verb)
{
	FILE *f = a->io->err;

	if (verb == NULL)
		fprintf(f, "govrelayctl: %s: missing verb\n", noun);
	else
		fprintf(f, "govrelayctl: %s: unknown verb '%s'\n", noun, verb);
	fputs("usage:\n", f);
	for (size_t i = 0; i < ADMIN_NCMDS; i++) {
		if (strcmp(admin_cmds[i].noun, noun) != 0)
			continue;
		fputs("  ", f);
		admin_usage_line(f, &admin_cmds[i]);
	}
	return EX_USAGE;
}

static void admin_cleanup(struct admin *a)
{
	if (a->own_store)
		queue_store_close(a->store);
	a->store = NULL;
	for (size_t i = 0; i < a->scope.ntenants; i++)
		free(a->scope.tenants[i]);
	free(a->scope.tenants);
	for (size_t i = 0; i < a->domains.n; i++) {
		free(a->domains.v[i].name);
		free(a->domains.v[i].tenant);
	}
	free(a->domains.v);
}

static int admin_dispatch(struct admin *a, int n, char **v, bool help)
{
	const struct admin_cmd *c;
	struct admin_args args;
	bool noun_known;
	int rc, skip;

	if (n == 0) {
		if (help) {
			admin_help(a->io->out, NULL, NULL);
			return EX_OK;
		}
		return admin__usage(a, "missing command");
	}
	if (strcmp(v[0], "help") == 0) {
		/* Compiling every pattern here keeps a broken row from hiding. */
		for (size_t i = 0; i < ADMIN_NCMDS; i++)
			admin_pattern_compile(admin_cmds[i].pattern, &args);
		if (n > 1) {
			c = admin_find(v[1], n > 2 ? v[2] : NULL, &noun_known);
			if (!noun_known)
				return admin__usage(a, "unknown command '%s'", v[1]);
			admin_help(a->io->out, v[1], c != NULL && n > 2 ? c->verb : NULL);
			return EX_OK;
		}
		admin_help(a->io->out, NULL, NULL);
		return EX_OK;
	}
	c = admin_find(v[0], n > 1 ? v[1] : NULL, &noun_known);
	if (help) {
		if (c != NULL && (c->verb[0] == '\0' || n > 1)) {
			admin_help(a->io->out, c->noun, c->verb);
			return EX_OK;
		}
		if (noun_known) {
			admin_help(a->io->out, v[0], NULL);
			return EX_OK;
		}
		return admin__usage(a, "unknown command '%s'", v[0]);
	}
	if (c == NULL) {
		if (noun_known)
			return admin_noun_usage(a, v[0], n > 1 ? v[1] : NULL);
		return admin__usage(a, "unknown command '%s'", v[0]);
	}
	a->cmd = c;
	skip = c->verb[0] != '\0' ? 2 : 1;
	admin_pattern_compile(c->pattern, &args);
	if ((rc = admin_args_parse(a, &args, n - skip, v + skip)) != 0)
		return rc;
	if (c->access != ADMIN_ACC_ANY && a->io->cfg == NULL) {
		admin__err(a, "no configuration loaded");
		return EX_CONFIG;
	}
	if (c->flags & (ADMIN_F_READ | ADMIN_F_WRITE)) {
		rc = admin__store_open(a, (c->flags & ADMIN_F_WRITE) != 0);
		if (rc != 0)
			return rc;
	}
	if ((rc = admin_identity(a)) != 0)
		return rc;
	return c->run(a, &args);
}

int admin_run(const struct admin_io *io, int argc, char **argv)
{
	struct admin a;
	char **v;
	int n = 0, rc;
	bool help = false;

	memset(&a, 0, sizeof a);
	a.io = io;
	a.via = io->remote ? "daemon" : "cli";
	if (io->user != NULL && io->user[0] != '\0')
		str_copy(a.user, io->user, sizeof a.user);
	else
		snprintf(a.user, sizeof a.user, "uid:%lu", (unsigned long)io->uid);
	/* --json and --help are global: taken out here, patterns need not list them. */
	v = xcalloc((size_t)argc + 1, sizeof *v);
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			a.json = true;
		else if (strcmp(argv[i], "--help") == 0 || (n == 0 && strcmp(argv[i], "-h") == 0))
			help = true;
		else
			v[n++] = argv[i];
	}
	rc = admin_dispatch(&a, n, v, help);
	if (a.denied)
		admin_deny_record(&a);
	admin_cleanup(&a);
	free(v);
	if (fflush(io->out) != 0 || ferror(io->out)) {
		char eb[ADMIN_ERRBUF];

		fprintf(io->err, "govrelayctl: cannot write the output: %s\n",
		    admin__strerror(errno, eb, sizeof eb));
		if (rc == EX_OK)
			rc = EX_IOERR;
	}
	return rc;
}
