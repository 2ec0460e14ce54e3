/*
 * govrelayctl: the administration command line. It reads the same
 * configuration file as govrelayd, opens the LMDB store in its data_dir
 * directly (LMDB serializes writers across processes and readers never
 * wait, so it works whether or not the daemon runs) and runs one
 * NOUN VERB command.
 *
 * The queue changes (hold, release, delete, retry, flush) go to the
 * running daemon over control_socket so they take effect at once; when
 * no daemon answers there, the CLI applies the same change to the store
 * itself (see "queue changes" below).
 *
 * Every command is one row of govrelayctl_cmds[]: noun, verb, an argument
 * pattern ("<domain> --route <route> [--tenant <id>] [--require-tls]"),
 * flags, handler and help line. The argument parser, `govrelayctl help`
 * and every usage error are generated from that table (STYLE.md section
 * 12, OpenSMTPD smtpctl's pattern table), so a new verb is one row and
 * one handler.
 *
 * Entry points: main() only.
 * OWNERSHIP: everything is freed before exit, so valgrind stays quiet.
 * Read transactions copy what they need and end before anything is
 * printed: a slow terminal never holds an LMDB snapshot open.
 * THREADS: one.
 * ERRORS: exit codes from sysexits.h (INTERFACE.md): 0 ok, 64 usage,
 * 65 bad argument value, 66 no such domain or message, 69 store
 * unavailable, 70 internal error, 73 the domain already exists, 74 output
 * failed, 75 store locked or daemon busy (try again), 77 permission
 * denied, 78 configuration error. A queue change answered by the daemon
 * exits with the code the daemon sent. Messages go to stderr and name
 * the command and the argument at fault.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/ctlproto.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/queue_admin.h"

#define GOVRELAYCTL_DOMAIN_MAX 253 /* RFC 1035 2.3.4 in text form, no final dot */
#define GOVRELAYCTL_TENANT_MAX 64
#define GOVRELAYCTL_SLOTS_MAX 8
#define GOVRELAYCTL_TIME_LEN 32

/* Row flags: what main() prepares before the handler runs. */
#define GOVRELAYCTL_F_CONFIG 0x1u /* load the configuration */
#define GOVRELAYCTL_F_READ 0x2u   /* open the store read-only */
#define GOVRELAYCTL_F_WRITE 0x4u  /* open the store read-write */

struct govrelayctl;

/* One placeholder of an argument pattern. */
enum govrelayctl_slot_kind {
	GOVRELAYCTL_SLOT_POS,  /* <name> */
	GOVRELAYCTL_SLOT_OPT,  /* --name <value> */
	GOVRELAYCTL_SLOT_FLAG, /* --name */
};

struct govrelayctl_slot {
	enum govrelayctl_slot_kind kind;
	bool required;
	char name[32];  /* "domain" for <domain>, "--route" for options */
	char value[32]; /* the placeholder of an option: "<route>" */
};

struct govrelayctl_args {
	struct govrelayctl_slot slot[GOVRELAYCTL_SLOTS_MAX];
	const char *val[GOVRELAYCTL_SLOTS_MAX];
	bool set[GOVRELAYCTL_SLOTS_MAX];
	size_t n;
};

typedef int govrelayctl_handler(struct govrelayctl *g, const struct govrelayctl_args *a);

struct govrelayctl_cmd {
	const char *noun;
	const char *verb;
	const char *pattern;
	unsigned flags;
	govrelayctl_handler *run;
	const char *help;
};

/* What a handler gets: the parsed command line, config and store. */
struct govrelayctl {
	const char *config_file;
	const struct govrelayctl_cmd *cmd;
	bool json;
	struct config *cfg;
	struct queue_store *store; /* NULL when no store exists yet (reads) */
};

static int govrelayctl_domain_add(struct govrelayctl *g, const struct govrelayctl_args *a);
static int govrelayctl_domain_list(struct govrelayctl *g, const struct govrelayctl_args *a);
static int govrelayctl_domain_show(struct govrelayctl *g, const struct govrelayctl_args *a);
static int govrelayctl_domain_remove(struct govrelayctl *g, const struct govrelayctl_args *a);
static int govrelayctl_queue_list(struct govrelayctl *g, const struct govrelayctl_args *a);
static int govrelayctl_queue_show(struct govrelayctl *g, const struct govrelayctl_args *a);
static int govrelayctl_queue_change(struct govrelayctl *g, const struct govrelayctl_args *a);
static int govrelayctl_config_check(struct govrelayctl *g, const struct govrelayctl_args *a);

#define GOVRELAYCTL_CFG_READ (GOVRELAYCTL_F_CONFIG | GOVRELAYCTL_F_READ)
#define GOVRELAYCTL_CFG_WRITE (GOVRELAYCTL_F_CONFIG | GOVRELAYCTL_F_WRITE)

static const struct govrelayctl_cmd govrelayctl_cmds[] = {
	{ "domain", "add", "<domain> --route <route> [--tenant <id>] [--require-tls]",
	  GOVRELAYCTL_CFG_WRITE, govrelayctl_domain_add,
	  "Accept mail for DOMAIN and deliver it over ROUTE (smtp:HOST:PORT, "
	  "lmtp:HOST:PORT, lmtp:unix:PATH, maildir:DIR or mx)." },
	{ "domain", "list", "[--tenant <id>]", GOVRELAYCTL_CFG_READ, govrelayctl_domain_list,
	  "List the domains, optionally only those of one tenant." },
	{ "domain", "show", "<domain>", GOVRELAYCTL_CFG_READ, govrelayctl_domain_show,
	  "Show one domain." },
	{ "domain", "remove", "<domain>", GOVRELAYCTL_CFG_WRITE, govrelayctl_domain_remove,
	  "Stop accepting mail for DOMAIN." },
	{ "queue", "list", "", GOVRELAYCTL_CFG_READ, govrelayctl_queue_list,
	  "List the queued messages and, under each, its recipients' state, attempts, "
	  "next attempt and last error." },
	{ "queue", "show", "<id>", GOVRELAYCTL_CFG_READ, govrelayctl_queue_show,
	  "Show one queued message and each recipient's state." },
	/* The store is opened by the handler, and only when no daemon answers. */
	{ "queue", "hold", "<id>", GOVRELAYCTL_F_CONFIG, govrelayctl_queue_change,
	  "Keep message ID in the queue without delivery attempts until released." },
	{ "queue", "release", "<id>", GOVRELAYCTL_F_CONFIG, govrelayctl_queue_change,
	  "Release a held message; its pending recipients are attempted now." },
	{ "queue", "delete", "<id>", GOVRELAYCTL_F_CONFIG, govrelayctl_queue_change,
	  "Remove message ID from the queue without delivery or bounce." },
	{ "queue", "retry", "<id>", GOVRELAYCTL_F_CONFIG, govrelayctl_queue_change,
	  "Attempt message ID's pending recipients now, whatever their backoff." },
	{ "queue", "flush", "", GOVRELAYCTL_F_CONFIG, govrelayctl_queue_change,
	  "Attempt every message that is not held now." },
	{ "config", "check", "", 0, govrelayctl_config_check,
	  "Check the configuration file: FILE:LINE: message per error." },
};

#define GOVRELAYCTL_NCMDS (sizeof govrelayctl_cmds / sizeof govrelayctl_cmds[0])

/* --------------------------------------------------------- messages */

static void govrelayctl_err(const struct govrelayctl *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* "govrelayctl: domain add: ..." on stderr. */
static void govrelayctl_err(const struct govrelayctl *g, const char *fmt, ...)
{
	va_list ap;

	if (g != NULL && g->cmd != NULL)
		fprintf(stderr, "govrelayctl: %s %s: ", g->cmd->noun, g->cmd->verb);
	else
		fputs("govrelayctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void govrelayctl_usage_line(FILE *f, const struct govrelayctl_cmd *c)
{
	fprintf(f, "govrelayctl -c FILE %s %s%s%s [--json]\n", c->noun, c->verb,
	    c->pattern[0] != '\0' ? " " : "", c->pattern);
}

static void govrelayctl_help(FILE *f)
{
	fputs("usage: govrelayctl -c FILE NOUN VERB [ARGS] [--json]\n"
	    "       govrelayctl help\n\ncommands:\n", f);
	for (size_t i = 0; i < GOVRELAYCTL_NCMDS; i++) {
		const struct govrelayctl_cmd *c = &govrelayctl_cmds[i];

		fprintf(f, "  %s %s%s%s\n      %s\n", c->noun, c->verb,
		    c->pattern[0] != '\0' ? " " : "", c->pattern, c->help);
	}
	fputs("\n--json prints one JSON object per line for lists and one object"
	    " for show.\n", f);
}

/* A usage error for the command g->cmd (or in general): exit 64. */
static int govrelayctl_usage(const struct govrelayctl *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int govrelayctl_usage(const struct govrelayctl *g, const char *fmt, ...)
{
	va_list ap;

	if (g != NULL && g->cmd != NULL)
		fprintf(stderr, "govrelayctl: %s %s: ", g->cmd->noun, g->cmd->verb);
	else
		fputs("govrelayctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (g != NULL && g->cmd != NULL) {
		fputs("usage: ", stderr);
		govrelayctl_usage_line(stderr, g->cmd);
	} else {
		fputs("usage: govrelayctl -c FILE NOUN VERB [ARGS] [--json]; "
		    "'govrelayctl help' lists the commands\n", stderr);
	}
	return EX_USAGE;
}

/*
 * Exit code for a store error: permission and lock problems have their
 * own codes so an operator knows whether to sudo or to retry.
 */
static int govrelayctl_store_exit(int rc)
{
	switch (rc) {
	case -EACCES:
		return EX_NOPERM;
	case -EAGAIN:
		return EX_TEMPFAIL;
	default:
		return EX_UNAVAILABLE;
	}
}

/* ------------------------------------------------- argument patterns */

/*
 * Compiles a pattern into slots. The table is ours, so a malformed
 * pattern is a programming error and aborts (every row is compiled by
 * `govrelayctl help` too, so it cannot hide).
 */
static void govrelayctl_pattern_compile(const char *pattern, struct govrelayctl_args *a)
{
	char copy[160], *save = NULL, *tok;

	memset(a, 0, sizeof *a);
	if (str_copy(copy, pattern, sizeof copy) >= sizeof copy)
		panic("govrelayctl: pattern too long: %s", pattern);
	for (tok = strtok_r(copy, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
		struct govrelayctl_slot *s;
		bool opt = tok[0] == '[';
		size_t len;

		if (a->n == GOVRELAYCTL_SLOTS_MAX)
			panic("govrelayctl: too many slots: %s", pattern);
		s = &a->slot[a->n];
		s->required = !opt;
		if (opt)
			tok++;
		len = strlen(tok);
		if (tok[0] == '<') {
			if (len < 3 || tok[len - (opt ? 2 : 1)] != '>')
				panic("govrelayctl: bad pattern: %s", pattern);
			s->kind = GOVRELAYCTL_SLOT_POS;
			str_copyn(s->name, tok + 1, len - (opt ? 3 : 2), sizeof s->name);
		} else if (strncmp(tok, "--", 2) == 0) {
			if (opt && tok[len - 1] == ']') {
				s->kind = GOVRELAYCTL_SLOT_FLAG;
				str_copyn(s->name, tok, len - 1, sizeof s->name);
			} else {
				char *v = strtok_r(NULL, " ", &save);
				size_t vl;

				if (v == NULL || v[0] != '<')
					panic("govrelayctl: bad pattern: %s", pattern);
				vl = strlen(v);
				if (opt && v[vl - 1] == ']')
					vl--;
				s->kind = GOVRELAYCTL_SLOT_OPT;
				str_copy(s->name, tok, sizeof s->name);
				str_copyn(s->value, v, vl, sizeof s->value);
			}
		} else {
			panic("govrelayctl: bad pattern: %s", pattern);
		}
		a->n++;
	}
}

static int govrelayctl_slot_find(const struct govrelayctl_args *a, const char *name, size_t len)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->slot[i].kind != GOVRELAYCTL_SLOT_POS &&
		    strlen(a->slot[i].name) == len && strncmp(a->slot[i].name, name, len) == 0)
			return (int)i;
	return -1;
}

/*
 * Matches argv (after NOUN VERB) against the compiled pattern. Options
 * may come in any order and as "--opt value" or "--opt=value"; --json is
 * global and has been removed before. Returns 0 or EX_USAGE (reported).
 */
static int govrelayctl_args_parse(const struct govrelayctl *g, struct govrelayctl_args *a,
    int argc, char **argv)
{
	size_t next_pos = 0;

	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];

		if (strncmp(arg, "--", 2) == 0 && arg[2] != '\0') {
			const char *eq = strchr(arg, '=');
			size_t nl = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
			int s = govrelayctl_slot_find(a, arg, nl);

			if (s < 0)
				return govrelayctl_usage(g, "unknown option '%.*s'", (int)nl, arg);
			if (a->set[s])
				return govrelayctl_usage(g, "%s given twice", a->slot[s].name);
			if (a->slot[s].kind == GOVRELAYCTL_SLOT_FLAG) {
				if (eq != NULL)
					return govrelayctl_usage(g, "%s takes no value",
					    a->slot[s].name);
				a->val[s] = "";
			} else if (eq != NULL) {
				a->val[s] = eq + 1;
			} else if (i + 1 < argc) {
				a->val[s] = argv[++i];
			} else {
				return govrelayctl_usage(g, "%s needs a value %s", a->slot[s].name,
				    a->slot[s].value);
			}
			a->set[s] = true;
			continue;
		}
		/*
		 * No verb has single-dash options, so "-x" is a value: a bad
		 * domain like "-a.example" is then refused as a domain (65),
		 * not as an unknown option.
		 */
		while (next_pos < a->n && a->slot[next_pos].kind != GOVRELAYCTL_SLOT_POS)
			next_pos++;
		if (next_pos == a->n)
			return govrelayctl_usage(g, "unexpected argument '%s'", arg);
		a->val[next_pos] = arg;
		a->set[next_pos] = true;
		next_pos++;
	}
	for (size_t i = 0; i < a->n; i++) {
		if (!a->slot[i].required || a->set[i])
			continue;
		if (a->slot[i].kind == GOVRELAYCTL_SLOT_POS)
			return govrelayctl_usage(g, "missing <%s>", a->slot[i].name);
		return govrelayctl_usage(g, "missing %s %s", a->slot[i].name, a->slot[i].value);
	}
	return 0;
}

/* The value of slot name ("domain", "--route"), or NULL when absent. */
static const char *govrelayctl_arg(const struct govrelayctl_args *a, const char *name)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->slot[i].name, name) == 0)
			return a->set[i] ? a->val[i] : NULL;
	panic("govrelayctl: no slot %s", name);
}

/* ------------------------------------------------------------ output */

/*
 * Text for a terminal: C0 and C1 control characters, DEL and invalid
 * UTF-8 become \xNN, so a sender address or a remote reply can never
 * move the cursor or forge a line (U+009B is CSI on some terminals).
 * Other UTF-8 is kept.
 */
static void govrelayctl_text(struct buf *b, const char *s)
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

static char *govrelayctl_text_dup(const char *s)
{
	struct buf b;

	buf_init(&b);
	govrelayctl_text(&b, s != NULL ? s : "-");
	buf_cstr(&b);
	return buf_steal(&b, NULL);
}

/* Display width: one column per UTF-8 character (wide CJK aside). */
static size_t govrelayctl_width(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

/* An aligned text table: cells are collected, then printed in one go. */
struct govrelayctl_table {
	size_t ncols;
	const char *const *head;
	const char *align; /* per column: 'l' or 'r' */
	char **cells;      /* nrows * ncols, owned */
	size_t nrows, cap;
};

static void govrelayctl_table_row(struct govrelayctl_table *t, const char *const *cols)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->cells = xreallocarray(t->cells, t->cap, t->ncols * sizeof *t->cells);
	}
	for (size_t c = 0; c < t->ncols; c++)
		t->cells[t->nrows * t->ncols + c] = govrelayctl_text_dup(cols[c]);
	t->nrows++;
}

static void govrelayctl_table_cell(const char *s, size_t width, char align, bool last)
{
	size_t pad = width - govrelayctl_width(s);

	if (align == 'r')
		printf("%*s", (int)pad, "");
	fputs(s, stdout);
	if (!last && align != 'r')
		printf("%*s", (int)pad, "");
	if (!last)
		fputs("  ", stdout);
}

static void govrelayctl_table_print(struct govrelayctl_table *t)
{
	size_t *w = xcalloc(t->ncols, sizeof *w);

	for (size_t c = 0; c < t->ncols; c++) {
		w[c] = govrelayctl_width(t->head[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t cw = govrelayctl_width(t->cells[r * t->ncols + c]);

			if (cw > w[c])
				w[c] = cw;
		}
	}
	for (size_t c = 0; c < t->ncols; c++)
		govrelayctl_table_cell(t->head[c], w[c], t->align[c], c + 1 == t->ncols);
	fputc('\n', stdout);
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++)
			govrelayctl_table_cell(t->cells[r * t->ncols + c], w[c], t->align[c],
			    c + 1 == t->ncols);
		fputc('\n', stdout);
	}
	free(w);
}

static void govrelayctl_table_free(struct govrelayctl_table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
}

/* "key: value" for show; the value is made safe for a terminal. */
static void govrelayctl_kv(const char *indent, const char *key, const char *value)
{
	char *v = govrelayctl_text_dup(value);

	printf("%s%s: %s\n", indent, key, v);
	free(v);
}

/*
 * A JSON string (RFC 8259 section 7): '"', '\\' and every byte below 0x20
 * and DEL are escaped; valid UTF-8 passes through; a byte that is not
 * part of valid UTF-8 becomes U+FFFD, so the output is always valid JSON
 * whatever is stored.
 */
static void govrelayctl_json_str(struct buf *b, const char *s)
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

/* A tiny JSON object writer: keys in order, nesting tracked for commas. */
struct govrelayctl_json {
	struct buf b;
	bool first[8];
	int depth;
};

static void govrelayctl_json_sep(struct govrelayctl_json *j, const char *key)
{
	if (!j->first[j->depth])
		buf_append_char(&j->b, ',');
	j->first[j->depth] = false;
	if (key != NULL) {
		govrelayctl_json_str(&j->b, key);
		buf_append_char(&j->b, ':');
	}
}

static void govrelayctl_json_open(struct govrelayctl_json *j, const char *key, char c)
{
	if (j->depth >= 0)
		govrelayctl_json_sep(j, key);
	buf_append_char(&j->b, c);
	j->depth++;
	if (j->depth >= (int)(sizeof j->first / sizeof j->first[0]))
		panic("govrelayctl: JSON nested too deep");
	j->first[j->depth] = true;
}

static void govrelayctl_json_close(struct govrelayctl_json *j, char c)
{
	buf_append_char(&j->b, c);
	j->depth--;
}

static void govrelayctl_json_begin(struct govrelayctl_json *j)
{
	buf_init(&j->b);
	j->depth = -1;
	govrelayctl_json_open(j, NULL, '{');
}

/* Prints the finished object as one line. */
static void govrelayctl_json_end(struct govrelayctl_json *j)
{
	govrelayctl_json_close(j, '}');
	buf_append_char(&j->b, '\n');
	fwrite(j->b.data, 1, j->b.len, stdout);
	buf_free(&j->b);
}

static void govrelayctl_json_kstr(struct govrelayctl_json *j, const char *key, const char *v)
{
	govrelayctl_json_sep(j, key);
	govrelayctl_json_str(&j->b, v);
}

static void govrelayctl_json_kint(struct govrelayctl_json *j, const char *key, int64_t v)
{
	govrelayctl_json_sep(j, key);
	buf_printf(&j->b, "%" PRId64, v);
}

static void govrelayctl_json_kuint(struct govrelayctl_json *j, const char *key, uint64_t v)
{
	govrelayctl_json_sep(j, key);
	buf_printf(&j->b, "%" PRIu64, v);
}

static void govrelayctl_json_kbool(struct govrelayctl_json *j, const char *key, bool v)
{
	govrelayctl_json_sep(j, key);
	buf_append_str(&j->b, v ? "true" : "false");
}

/* A time as ISO 8601 text, or NULL (JSON null, text "-") when unset. */
static const char *govrelayctl_time(int64_t ms, bool set, char out[GOVRELAYCTL_TIME_LEN])
{
	if (!set)
		return NULL;
	time_format_iso(ms, out, GOVRELAYCTL_TIME_LEN);
	return out;
}

/* ------------------------------------------------------------- store */

/*
 * Opens the store of the configuration's data_dir. A read of a store
 * that does not exist yet (no daemon has run, no domain was added) is
 * not an error for lists, which then print nothing: g->store stays NULL.
 */
static int govrelayctl_store_open(struct govrelayctl *g, bool write)
{
	int rc = queue_store_open(g->cfg->data_dir, 0, !write, &g->store);

	if (rc == -ENOENT && !write) {
		g->store = NULL;
		return 0;
	}
	if (rc < 0) {
		govrelayctl_err(g, "cannot open the store in %s: %s", g->cfg->data_dir,
		    rc == -ENOENT ? "no such directory" : queue_strerror(rc));
		return govrelayctl_store_exit(rc);
	}
	return 0;
}

static int govrelayctl_read_begin(struct govrelayctl *g, struct queue_txn **txn)
{
	int rc = queue_txn_begin(g->store, false, txn);

	if (rc < 0) {
		govrelayctl_err(g, "cannot read the store: %s", queue_strerror(rc));
		return govrelayctl_store_exit(rc);
	}
	return 0;
}

/* --------------------------------------------------------- validation */

/*
 * A domain for the domain table: LDH labels of 1 to 63 octets, no
 * leading or trailing hyphen, at most 253 octets without the final dot
 * (which is stripped), not all-numeric in the last label (a mistyped IP
 * address), lowercased. Internationalized names go in as A-labels.
 */
static int govrelayctl_domain_norm(const char *in, char *out, size_t outlen, const char **why)
{
	size_t len = strlen(in), label = 0;
	bool numeric = true;

	if (len > 0 && in[len - 1] == '.')
		len--;
	if (len == 0) {
		*why = "empty name";
		return -1;
	}
	if (len > GOVRELAYCTL_DOMAIN_MAX || len >= outlen) {
		*why = "longer than 253 characters";
		return -1;
	}
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)in[i] : '.';

		if (c == '.') {
			if (label == 0) {
				*why = "empty label";
				return -1;
			}
			if (in[i - 1] == '-' || in[i - label] == '-') {
				*why = "a label starts or ends with '-'";
				return -1;
			}
			if (i < len) {
				label = 0;
				numeric = true;
			}
			continue;
		}
		if (c >= 0x80) {
			*why = "non-ASCII: use the A-label (xn--...) form";
			return -1;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-')) {
			*why = "only letters, digits, '-' and '.' are allowed";
			return -1;
		}
		if (!(c >= '0' && c <= '9'))
			numeric = false;
		if (++label > 63) {
			*why = "a label is longer than 63 characters";
			return -1;
		}
	}
	if (numeric) {
		*why = "the last label is numeric (an IP address is no domain)";
		return -1;
	}
	str_copyn(out, in, len, outlen);
	str_lower(out);
	return 0;
}

/* Tenant ids: 1 to 64 of letters, digits, '.', '_' and '-'. */
static bool govrelayctl_tenant_is_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > GOVRELAYCTL_TENANT_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* The operator, for the audit record: the unix user running us. */
static void govrelayctl_whoami(char *out, size_t outlen)
{
	struct passwd *pw = getpwuid(getuid());

	if (pw != NULL && pw->pw_name != NULL)
		str_copy(out, pw->pw_name, outlen);
	else
		snprintf(out, outlen, "uid:%lu", (unsigned long)getuid());
}

/* A domain argument, normalized, or EX_DATAERR (reported). */
static int govrelayctl_domain_arg(const struct govrelayctl *g, const char *arg, char *out,
    size_t outlen)
{
	const char *why = "";
	char *shown;

	if (govrelayctl_domain_norm(arg, out, outlen, &why) == 0)
		return 0;
	shown = govrelayctl_text_dup(arg);
	govrelayctl_err(g, "bad domain '%s': %s", shown, why);
	free(shown);
	return EX_DATAERR;
}

/* ----------------------------------------------------------- domains */

static void govrelayctl_domain_json(const struct queue_domain *d)
{
	struct govrelayctl_json j;
	char t[GOVRELAYCTL_TIME_LEN];

	govrelayctl_json_begin(&j);
	govrelayctl_json_kstr(&j, "domain", d->name);
	govrelayctl_json_kstr(&j, "tenant", d->tenant);
	govrelayctl_json_kstr(&j, "route", d->route);
	govrelayctl_json_kbool(&j, "require_tls", d->require_tls);
	govrelayctl_json_kstr(&j, "created", govrelayctl_time(d->created, true, t));
	govrelayctl_json_end(&j);
}

/*
 * The write and its audit record commit in one transaction, so the
 * audit chain can never miss an administrator's change (ARCHITECTURE.md,
 * "Account").
 */
static int govrelayctl_domain_write(struct govrelayctl *g, const char *action,
    const struct queue_domain *d, bool add)
{
	struct queue_audit_field f[6];
	struct queue_domain *old = NULL;
	struct queue_txn *txn = NULL;
	char by[64];
	size_t nf = 0;
	int rc;

	govrelayctl_whoami(by, sizeof by);
	rc = queue_txn_begin(g->store, true, &txn);
	if (rc < 0) {
		govrelayctl_err(g, "cannot write the store: %s", queue_strerror(rc));
		return govrelayctl_store_exit(rc);
	}
	rc = queue_domain_get(txn, d->name, &old);
	if (add && rc == 0) {
		queue_txn_abort(txn);
		govrelayctl_err(g, "domain %s already exists (route %s)", d->name, old->route);
		queue_domain_free(old);
		return EX_CANTCREAT;
	}
	if (!add && rc == -ENOENT) {
		queue_txn_abort(txn);
		govrelayctl_err(g, "no such domain '%s'", d->name);
		return EX_NOINPUT;
	}
	if (rc < 0 && rc != -ENOENT)
		goto fail;
	if (add)
		rc = queue_domain_put(txn, d);
	else
		rc = queue_domain_delete(txn, d->name);
	if (rc < 0)
		goto fail;
	f[nf++] = (struct queue_audit_field){ "action", action };
	f[nf++] = (struct queue_audit_field){ "domain", d->name };
	f[nf++] = (struct queue_audit_field){ "route", add ? d->route : old->route };
	if (add && d->tenant != NULL)
		f[nf++] = (struct queue_audit_field){ "tenant", d->tenant };
	if (add)
		f[nf++] = (struct queue_audit_field){ "require_tls", d->require_tls ? "yes" : "no" };
	f[nf++] = (struct queue_audit_field){ "by", by };
	rc = queue_audit_append(txn, time_now_ms(), "", "admin", f, nf);
	if (rc < 0)
		goto fail;
	rc = queue_txn_commit(txn);
	txn = NULL;
	if (rc < 0)
		goto fail;
	queue_domain_free(old);
	return EX_OK;
fail:
	queue_txn_abort(txn);
	queue_domain_free(old);
	govrelayctl_err(g, "cannot %s domain %s: %s", add ? "add" : "remove", d->name,
	    queue_strerror(rc));
	/* Our arguments were checked, so a refusal here is our bug. */
	return rc == -EINVAL ? EX_SOFTWARE : govrelayctl_store_exit(rc);
}

static int govrelayctl_domain_add(struct govrelayctl *g, const struct govrelayctl_args *a)
{
	const char *route = govrelayctl_arg(a, "--route");
	const char *tenant = govrelayctl_arg(a, "--tenant");
	struct queue_domain d;
	char name[GOVRELAYCTL_DOMAIN_MAX + 1], why[160];
	int rc;

	if ((rc = govrelayctl_domain_arg(g, govrelayctl_arg(a, "domain"), name, sizeof name)) != 0)
		return rc;
	why[0] = '\0';
	if (queue_route_check(route, why, sizeof why) < 0) {
		char *shown = govrelayctl_text_dup(route);

		govrelayctl_err(g, "bad --route '%s': %s", shown, why);
		free(shown);
		return EX_DATAERR;
	}
	if (tenant != NULL && !govrelayctl_tenant_is_valid(tenant)) {
		char *shown = govrelayctl_text_dup(tenant);

		govrelayctl_err(g, "bad --tenant '%s': use 1 to 64 letters, digits, '.', '_' or '-'",
		    shown);
		free(shown);
		return EX_DATAERR;
	}
	d.name = name;
	d.tenant = (char *)tenant;
	d.route = (char *)route;
	d.require_tls = govrelayctl_arg(a, "--require-tls") != NULL;
	d.created = time_now_ms();
	rc = govrelayctl_domain_write(g, "domain.add", &d, true);
	if (rc == EX_OK && g->json)
		govrelayctl_domain_json(&d);
	else if (rc == EX_OK)
		printf("domain %s added, route %s\n", name, route);
	return rc;
}

static int govrelayctl_domain_remove(struct govrelayctl *g, const struct govrelayctl_args *a)
{
	struct queue_domain d;
	char name[GOVRELAYCTL_DOMAIN_MAX + 1];
	int rc;

	if ((rc = govrelayctl_domain_arg(g, govrelayctl_arg(a, "domain"), name, sizeof name)) != 0)
		return rc;
	memset(&d, 0, sizeof d);
	d.name = name;
	rc = govrelayctl_domain_write(g, "domain.remove", &d, false);
	if (rc == EX_OK && g->json) {
		struct govrelayctl_json j;

		govrelayctl_json_begin(&j);
		govrelayctl_json_kstr(&j, "domain", name);
		govrelayctl_json_kbool(&j, "removed", true);
		govrelayctl_json_end(&j);
	} else if (rc == EX_OK) {
		printf("domain %s removed\n", name);
	}
	return rc;
}

struct govrelayctl_domains {
	const char *tenant; /* filter, or NULL */
	struct queue_domain *v;
	size_t n, cap;
};

static int govrelayctl_domain_collect(void *arg, const struct queue_domain *d)
{
	struct govrelayctl_domains *l = arg;
	struct queue_domain *c;

	if (l->tenant != NULL && (d->tenant == NULL || strcmp(d->tenant, l->tenant) != 0))
		return 0;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
	}
	c = &l->v[l->n++];
	c->name = xstrdup(d->name);
	c->tenant = d->tenant != NULL ? xstrdup(d->tenant) : NULL;
	c->route = xstrdup(d->route != NULL ? d->route : "");
	c->require_tls = d->require_tls;
	c->created = d->created;
	return 0;
}

static int govrelayctl_domain_list(struct govrelayctl *g, const struct govrelayctl_args *a)
{
	static const char *const head[] = { "DOMAIN", "TENANT", "ROUTE", "TLS", "CREATED" };
	struct govrelayctl_domains l = { govrelayctl_arg(a, "--tenant"), NULL, 0, 0 };
	struct govrelayctl_table t = { 5, head, "lllll", NULL, 0, 0 };
	struct queue_txn *txn;
	int rc = 0;

	if (g->store != NULL) {
		if ((rc = govrelayctl_read_begin(g, &txn)) != 0)
			return rc;
		rc = queue_domain_walk(txn, govrelayctl_domain_collect, &l);
		queue_txn_abort(txn);
		if (rc < 0) {
			govrelayctl_err(g, "cannot read the domains: %s", queue_strerror(rc));
			rc = govrelayctl_store_exit(rc);
			goto out;
		}
	}
	for (size_t i = 0; i < l.n; i++) {
		const struct queue_domain *d = &l.v[i];
		char tm[GOVRELAYCTL_TIME_LEN];
		const char *row[5];

		if (g->json) {
			govrelayctl_domain_json(d);
			continue;
		}
		row[0] = d->name;
		row[1] = d->tenant != NULL ? d->tenant : "-";
		row[2] = d->route;
		row[3] = d->require_tls ? "required" : "optional";
		row[4] = govrelayctl_time(d->created, true, tm);
		govrelayctl_table_row(&t, row);
	}
	if (!g->json)
		govrelayctl_table_print(&t);
out:
	govrelayctl_table_free(&t);
	for (size_t i = 0; i < l.n; i++) {
		free(l.v[i].name);
		free(l.v[i].tenant);
		free(l.v[i].route);
	}
	free(l.v);
	return rc;
}

static int govrelayctl_domain_show(struct govrelayctl *g, const struct govrelayctl_args *a)
{
	struct queue_domain *d = NULL;
	struct queue_txn *txn;
	char name[GOVRELAYCTL_DOMAIN_MAX + 1], tm[GOVRELAYCTL_TIME_LEN];
	int rc;

	if ((rc = govrelayctl_domain_arg(g, govrelayctl_arg(a, "domain"), name, sizeof name)) != 0)
		return rc;
	rc = -ENOENT;
	if (g->store != NULL) {
		if ((rc = govrelayctl_read_begin(g, &txn)) != 0)
			return rc;
		rc = queue_domain_get(txn, name, &d);
		queue_txn_abort(txn);
	}
	if (rc == -ENOENT) {
		govrelayctl_err(g, "no such domain '%s'", name);
		return EX_NOINPUT;
	}
	if (rc < 0) {
		govrelayctl_err(g, "cannot read domain %s: %s", name, queue_strerror(rc));
		return govrelayctl_store_exit(rc);
	}
	if (g->json) {
		govrelayctl_domain_json(d);
	} else {
		govrelayctl_kv("", "domain", d->name);
		govrelayctl_kv("", "tenant", d->tenant);
		govrelayctl_kv("", "route", d->route);
		govrelayctl_kv("", "require_tls", d->require_tls ? "yes" : "no");
		govrelayctl_kv("", "created", govrelayctl_time(d->created, true, tm));
	}
	queue_domain_free(d);
	return EX_OK;
}

/* ------------------------------------------------------------- queue */

/* `queue list` copies every message out of the read txn before printing. */
struct govrelayctl_qlist {
	struct queue_msg **v;
	size_t n, cap;
};

/* A deep copy through the store's own encoding: nothing can be missed. */
static int govrelayctl_queue_collect(void *arg, const struct queue_msg *m)
{
	struct govrelayctl_qlist *l = arg;
	struct buf b;
	int rc;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
	}
	buf_init(&b);
	queue_msg_encode(m, &b);
	rc = queue_msg_decode(b.data, b.len, &l->v[l->n]);
	buf_free(&b);
	if (rc < 0)
		return rc;
	l->n++;
	return 0;
}

static void govrelayctl_queue_list_json(const struct queue_msg *m)
{
	struct govrelayctl_json j;
	char id[QUEUE_ID_TEXT_LEN + 1], t[GOVRELAYCTL_TIME_LEN];
	size_t n[3] = { 0, 0, 0 };
	int64_t next = queue_msg_next_attempt(m);

	for (size_t i = 0; i < m->nrcpts; i++)
		if ((unsigned)m->rcpts[i].state < 3)
			n[m->rcpts[i].state]++;
	queue_id_format(m->id, id);
	govrelayctl_json_begin(&j);
	govrelayctl_json_kstr(&j, "id", id);
	govrelayctl_json_kstr(&j, "arrival", govrelayctl_time(m->arrival, true, t));
	govrelayctl_json_kuint(&j, "size", m->size);
	govrelayctl_json_kstr(&j, "sender", m->sender != NULL ? m->sender : "");
	govrelayctl_json_kbool(&j, "held", m->held);
	govrelayctl_json_kstr(&j, "next_attempt", govrelayctl_time(next, next >= 0, t));
	govrelayctl_json_kuint(&j, "pending", n[QUEUE_RCPT_PENDING]);
	govrelayctl_json_kuint(&j, "delivered", n[QUEUE_RCPT_DELIVERED]);
	govrelayctl_json_kuint(&j, "failed", n[QUEUE_RCPT_FAILED]);
	govrelayctl_json_open(&j, "recipients", '[');
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];

		govrelayctl_json_open(&j, NULL, '{');
		govrelayctl_json_kstr(&j, "address", r->addr);
		govrelayctl_json_kstr(&j, "state", queue_rcpt_state_name(r->state));
		govrelayctl_json_kuint(&j, "attempts", r->attempts);
		govrelayctl_json_kstr(&j, "next_attempt", govrelayctl_time(r->next_attempt,
		    r->state == QUEUE_RCPT_PENDING, t));
		if (r->last_code != 0)
			govrelayctl_json_kint(&j, "last_code", r->last_code);
		else
			govrelayctl_json_kstr(&j, "last_code", NULL);
		govrelayctl_json_kstr(&j, "last_reply", r->last_reply);
		govrelayctl_json_close(&j, '}');
	}
	govrelayctl_json_close(&j, ']');
	govrelayctl_json_end(&j);
}

/*
 * Text: one line per message (id, arrival, size, sender, held or
 * queued), then one indented line per recipient (address, state,
 * attempts, next attempt, last error). Columns are aligned over the
 * whole listing; every stored string is made safe for a terminal.
 */
static void govrelayctl_queue_list_text(struct queue_msg *const *v, size_t n)
{
	static const char *const head[] = { "ID", "ARRIVAL", "SIZE", "SENDER", "STATE" };
	size_t w[5], wr = 0;

	if (n == 0) {
		puts("queue is empty");
		return;
	}
	for (size_t c = 0; c < 5; c++)
		w[c] = govrelayctl_width(head[c]);
	w[0] = w[0] < QUEUE_ID_TEXT_LEN ? QUEUE_ID_TEXT_LEN : w[0];
	w[1] = w[1] < 24 ? 24 : w[1];
	w[4] = w[4] < 6 ? 6 : w[4];
	for (size_t i = 0; i < n; i++) {
		char size[24], *sender = govrelayctl_text_dup(v[i]->sender != NULL &&
		    v[i]->sender[0] != '\0' ? v[i]->sender : "<>");

		snprintf(size, sizeof size, "%" PRIu64, v[i]->size);
		if (govrelayctl_width(size) > w[2])
			w[2] = govrelayctl_width(size);
		if (govrelayctl_width(sender) > w[3])
			w[3] = govrelayctl_width(sender);
		free(sender);
		for (size_t k = 0; k < v[i]->nrcpts; k++) {
			char *addr = govrelayctl_text_dup(v[i]->rcpts[k].addr);

			if (govrelayctl_width(addr) > wr)
				wr = govrelayctl_width(addr);
			free(addr);
		}
	}
	for (size_t c = 0; c < 5; c++)
		govrelayctl_table_cell(head[c], w[c], c == 2 ? 'r' : 'l', c == 4);
	fputc('\n', stdout);
	for (size_t i = 0; i < n; i++) {
		const struct queue_msg *m = v[i];
		char id[QUEUE_ID_TEXT_LEN + 1], arr[GOVRELAYCTL_TIME_LEN], size[24];
		char *sender = govrelayctl_text_dup(m->sender != NULL && m->sender[0] != '\0' ?
		    m->sender : "<>");

		queue_id_format(m->id, id);
		govrelayctl_time(m->arrival, true, arr);
		snprintf(size, sizeof size, "%" PRIu64, m->size);
		govrelayctl_table_cell(id, w[0], 'l', false);
		govrelayctl_table_cell(arr, w[1], 'l', false);
		govrelayctl_table_cell(size, w[2], 'r', false);
		govrelayctl_table_cell(sender, w[3], 'l', false);
		govrelayctl_table_cell(m->held ? "held" : "queued", w[4], 'l', true);
		fputc('\n', stdout);
		free(sender);
		for (size_t k = 0; k < m->nrcpts; k++) {
			const struct queue_rcpt *r = &m->rcpts[k];
			char nxt[GOVRELAYCTL_TIME_LEN], *addr = govrelayctl_text_dup(r->addr);
			const char *next = govrelayctl_time(r->next_attempt,
			    r->state == QUEUE_RCPT_PENDING, nxt);

			fputs("    ", stdout);
			govrelayctl_table_cell(addr, wr, 'l', false);
			govrelayctl_table_cell(queue_rcpt_state_name(r->state), 9, 'l', false);
			printf("attempts %-3" PRIu32 "  next %-24s", r->attempts,
			    next != NULL ? next : "-");
			if (r->state != QUEUE_RCPT_DELIVERED) {
				char *last = govrelayctl_text_dup(r->last_reply);

				printf("  last error: %s", last);
				free(last);
			}
			fputc('\n', stdout);
			free(addr);
		}
	}
}

static int govrelayctl_queue_list(struct govrelayctl *g, const struct govrelayctl_args *a)
{
	struct govrelayctl_qlist l = { NULL, 0, 0 };
	struct queue_txn *txn;
	int rc = 0;

	(void)a;
	if (g->store != NULL) {
		if ((rc = govrelayctl_read_begin(g, &txn)) != 0)
			return rc;
		rc = queue_msg_walk(txn, govrelayctl_queue_collect, &l);
		queue_txn_abort(txn);
		if (rc < 0) {
			govrelayctl_err(g, "cannot read the queue: %s", queue_strerror(rc));
			rc = govrelayctl_store_exit(rc);
			goto out;
		}
	}
	if (g->json) {
		for (size_t i = 0; i < l.n; i++)
			govrelayctl_queue_list_json(l.v[i]);
	} else {
		govrelayctl_queue_list_text(l.v, l.n);
	}
out:
	for (size_t i = 0; i < l.n; i++)
		queue_msg_free(l.v[i]);
	free(l.v);
	return rc;
}

static const char *govrelayctl_ret_name(enum queue_ret r)
{
	switch (r) {
	case QUEUE_RET_FULL: return "full";
	case QUEUE_RET_HDRS: return "hdrs";
	default: return NULL;
	}
}

static const char *govrelayctl_body_name(enum queue_body_type b)
{
	switch (b) {
	case QUEUE_BODY_7BIT: return "7bit";
	case QUEUE_BODY_8BITMIME: return "8bitmime";
	case QUEUE_BODY_BINARYMIME: return "binarymime";
	default: return NULL;
	}
}

/* RFC 3461 NOTIFY as text: "never", "success,failure,delay", or NULL. */
static const char *govrelayctl_notify_text(unsigned notify, char *out, size_t outlen)
{
	static const struct {
		unsigned bit;
		const char *name;
	} bits[] = {
		{ QUEUE_NOTIFY_NEVER, "never" },
		{ QUEUE_NOTIFY_SUCCESS, "success" },
		{ QUEUE_NOTIFY_FAILURE, "failure" },
		{ QUEUE_NOTIFY_DELAY, "delay" },
	};
	size_t o = 0;

	out[0] = '\0';
	if (notify == 0)
		return NULL;
	for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) {
		if (!(notify & bits[i].bit))
			continue;
		o += (size_t)snprintf(out + o, outlen - o, "%s%s", o ? "," : "", bits[i].name);
		if (o >= outlen)
			break;
	}
	return out;
}

static void govrelayctl_msg_json(const struct queue_msg *m)
{
	struct govrelayctl_json j;
	char id[QUEUE_ID_TEXT_LEN + 1], t1[GOVRELAYCTL_TIME_LEN], nt[48];
	int64_t next = queue_msg_next_attempt(m);

	queue_id_format(m->id, id);
	govrelayctl_json_begin(&j);
	govrelayctl_json_kstr(&j, "id", id);
	govrelayctl_json_kstr(&j, "arrival", govrelayctl_time(m->arrival, true, t1));
	govrelayctl_json_kstr(&j, "sender", m->sender);
	govrelayctl_json_kstr(&j, "envid", m->envid);
	govrelayctl_json_kstr(&j, "ret", govrelayctl_ret_name(m->ret));
	govrelayctl_json_kstr(&j, "body", govrelayctl_body_name(m->body_type));
	govrelayctl_json_kbool(&j, "smtputf8", m->smtputf8);
	govrelayctl_json_kbool(&j, "held", m->held);
	govrelayctl_json_kuint(&j, "declared_size", m->declared_size);
	govrelayctl_json_kuint(&j, "size", m->size);
	govrelayctl_json_kuint(&j, "chunks", m->nchunks);
	govrelayctl_json_kstr(&j, "client_addr", m->client_addr);
	govrelayctl_json_kstr(&j, "helo", m->helo);
	govrelayctl_json_kstr(&j, "listener", m->listener);
	govrelayctl_json_kstr(&j, "tls", m->tls);
	govrelayctl_json_kstr(&j, "auth_user", m->auth_user);
	govrelayctl_json_kstr(&j, "next_attempt", govrelayctl_time(next, next >= 0, t1));
	govrelayctl_json_open(&j, "recipients", '[');
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		bool pending = r->state == QUEUE_RCPT_PENDING;

		govrelayctl_json_open(&j, NULL, '{');
		govrelayctl_json_kstr(&j, "address", r->addr);
		govrelayctl_json_kstr(&j, "orcpt", r->orcpt);
		govrelayctl_json_kstr(&j, "notify", govrelayctl_notify_text(r->notify, nt, sizeof nt));
		govrelayctl_json_kstr(&j, "state", queue_rcpt_state_name(r->state));
		govrelayctl_json_kuint(&j, "attempts", r->attempts);
		govrelayctl_json_kstr(&j, "next_attempt",
		    govrelayctl_time(r->next_attempt, pending, t1));
		govrelayctl_json_kstr(&j, "done_at", govrelayctl_time(r->done_at, r->done_at != 0, t1));
		if (r->last_code != 0)
			govrelayctl_json_kint(&j, "last_code", r->last_code);
		else
			govrelayctl_json_kstr(&j, "last_code", NULL);
		govrelayctl_json_kstr(&j, "last_reply", r->last_reply);
		govrelayctl_json_close(&j, '}');
	}
	govrelayctl_json_close(&j, ']');
	govrelayctl_json_end(&j);
}

static void govrelayctl_msg_text(const struct queue_msg *m)
{
	char id[QUEUE_ID_TEXT_LEN + 1], t[GOVRELAYCTL_TIME_LEN], n[48];
	int64_t next = queue_msg_next_attempt(m);

	queue_id_format(m->id, id);
	govrelayctl_kv("", "id", id);
	govrelayctl_kv("", "arrival", govrelayctl_time(m->arrival, true, t));
	govrelayctl_kv("", "sender", m->sender != NULL && m->sender[0] ? m->sender : "<>");
	govrelayctl_kv("", "envid", m->envid);
	govrelayctl_kv("", "ret", govrelayctl_ret_name(m->ret));
	govrelayctl_kv("", "body", govrelayctl_body_name(m->body_type));
	govrelayctl_kv("", "smtputf8", m->smtputf8 ? "yes" : "no");
	govrelayctl_kv("", "held", m->held ? "yes" : "no");
	snprintf(n, sizeof n, "%" PRIu64, m->declared_size);
	govrelayctl_kv("", "declared_size", m->declared_size ? n : NULL);
	snprintf(n, sizeof n, "%" PRIu64, m->size);
	govrelayctl_kv("", "size", n);
	snprintf(n, sizeof n, "%" PRIu32, m->nchunks);
	govrelayctl_kv("", "chunks", n);
	govrelayctl_kv("", "client_addr", m->client_addr);
	govrelayctl_kv("", "helo", m->helo);
	govrelayctl_kv("", "listener", m->listener);
	govrelayctl_kv("", "tls", m->tls);
	govrelayctl_kv("", "auth_user", m->auth_user);
	govrelayctl_kv("", "next_attempt", govrelayctl_time(next, next >= 0, t));
	snprintf(n, sizeof n, "%zu", m->nrcpts);
	govrelayctl_kv("", "recipients", n);
	for (size_t i = 0; i < m->nrcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		bool pending = r->state == QUEUE_RCPT_PENDING;

		govrelayctl_kv("", "recipient", r->addr);
		govrelayctl_kv("  ", "state", queue_rcpt_state_name(r->state));
		govrelayctl_kv("  ", "orcpt", r->orcpt);
		govrelayctl_kv("  ", "notify", govrelayctl_notify_text(r->notify, n, sizeof n));
		snprintf(n, sizeof n, "%" PRIu32, r->attempts);
		govrelayctl_kv("  ", "attempts", n);
		govrelayctl_kv("  ", "next_attempt", govrelayctl_time(r->next_attempt, pending, t));
		govrelayctl_kv("  ", "done_at", govrelayctl_time(r->done_at, r->done_at != 0, t));
		snprintf(n, sizeof n, "%d", r->last_code);
		govrelayctl_kv("  ", "last_code", r->last_code != 0 ? n : NULL);
		govrelayctl_kv("  ", "last_reply", r->last_reply);
	}
}

static int govrelayctl_queue_show(struct govrelayctl *g, const struct govrelayctl_args *a)
{
	const char *arg = govrelayctl_arg(a, "id");
	struct queue_msg *m = NULL;
	struct queue_txn *txn;
	uint64_t id;
	int rc;

	if (queue_id_parse(arg, &id) < 0) {
		char *shown = govrelayctl_text_dup(arg);

		govrelayctl_err(g, "bad queue id '%s': expected %d hex digits", shown,
		    QUEUE_ID_TEXT_LEN);
		free(shown);
		return EX_DATAERR;
	}
	rc = -ENOENT;
	if (g->store != NULL) {
		if ((rc = govrelayctl_read_begin(g, &txn)) != 0)
			return rc;
		rc = queue_msg_get(txn, id, &m);
		queue_txn_abort(txn);
	}
	if (rc == -ENOENT) {
		char text[QUEUE_ID_TEXT_LEN + 1];

		queue_id_format(id, text);
		govrelayctl_err(g, "no such message %s", text);
		return EX_NOINPUT;
	}
	if (rc < 0) {
		govrelayctl_err(g, "cannot read message %s: %s", arg, queue_strerror(rc));
		return govrelayctl_store_exit(rc);
	}
	if (g->json)
		govrelayctl_msg_json(m);
	else
		govrelayctl_msg_text(m);
	queue_msg_free(m);
	return EX_OK;
}

/* ----------------------------------------------------- queue changes */

/*
 * hold, release, delete, retry and flush go to the running daemon over
 * control_socket, so they take effect at once (the daemon applies them
 * through its writer and kicks its scheduler). The line format is
 * common/ctlproto.h's. When no daemon answers (no socket file, or a
 * stale one left by a crash: ENOENT, ECONNREFUSED) the CLI applies the
 * very same change to the store itself through queue_admin, which the
 * daemon uses too, so the audit record is the same but for via=store
 * instead of via=daemon; the postmaster can act while the daemon is
 * down, and a daemon started later simply finds the store so. Any other
 * failure to connect is reported, never worked around: a permission
 * problem must not open a second way in.
 */
#define GOVRELAYCTL_CTL_TIMEOUT_S 60

/* One queue change: what to do, and what came of it. */
struct govrelayctl_qchange {
	enum queue_admin_verb verb;
	uint64_t id;
	char qid[QUEUE_ID_TEXT_LEN + 1]; /* "" for flush */
	char by[64];
	int code;                        /* 0 or a sysexits code */
	char text[CTLPROTO_LINE_MAX];
};

/* The daemon is down: the change in one write transaction of our own. */
static int govrelayctl_qchange_store(struct govrelayctl *g, struct govrelayctl_qchange *q)
{
	struct queue_admin_result res;
	struct queue_txn *txn;
	int rc;

	if ((rc = govrelayctl_store_open(g, true)) != 0)
		return rc;
	govrelayctl_whoami(q->by, sizeof q->by);
	rc = queue_txn_begin(g->store, true, &txn);
	if (rc < 0) {
		govrelayctl_err(g, "cannot write the store: %s", queue_strerror(rc));
		return govrelayctl_store_exit(rc);
	}
	rc = queue_admin_apply(txn, q->verb, q->id, time_now_ms(), q->by, "store", &res);
	if (rc < 0) {
		queue_txn_abort(txn);
	} else {
		rc = queue_txn_commit(txn);
	}
	if (rc < 0) {
		govrelayctl_err(g, "cannot update the queue: %s", queue_strerror(rc));
		return govrelayctl_store_exit(rc);
	}
	q->code = res.code;
	str_copy(q->text, res.text, sizeof q->text);
	return 0;
}

/*
 * Connects to the daemon: 0 with *fd, 1 when no daemon answers (the
 * store path applies), or an exit code (reported).
 */
static int govrelayctl_ctl_connect(struct govrelayctl *g, int *fd)
{
	const char *path = g->cfg->control_socket;
	struct timeval tv = { GOVRELAYCTL_CTL_TIMEOUT_S, 0 };
	struct sockaddr_un sa;
	int s, e;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (path == NULL || str_copy(sa.sun_path, path, sizeof sa.sun_path) >= sizeof sa.sun_path) {
		govrelayctl_err(g, "control_socket is not a usable unix socket path");
		return EX_CONFIG;
	}
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		govrelayctl_err(g, "socket: %s", strerror(errno));
		return EX_SOFTWARE;
	}
	/* Before connect: a daemon with a full backlog makes connect wait. */
	if (setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) {
		govrelayctl_err(g, "setsockopt: %s", strerror(errno));
		close(s);
		return EX_SOFTWARE;
	}
	if (connect(s, (const struct sockaddr *)&sa, sizeof sa) < 0) {
		e = errno;
		close(s);
		if (e == ENOENT || e == ECONNREFUSED)
			return 1;
		govrelayctl_err(g, "cannot reach the daemon at %s: %s", path, strerror(e));
		if (e == EACCES || e == EPERM)
			return EX_NOPERM;
		return e == EAGAIN || e == ETIMEDOUT ? EX_TEMPFAIL : EX_UNAVAILABLE;
	}
	*fd = s;
	return 0;
}

/* Sends one request and reads the one reply line into q (code, text). */
static int govrelayctl_ctl_ask(struct govrelayctl *g, int fd, struct govrelayctl_qchange *q)
{
	char req[64], line[CTLPROTO_LINE_MAX + 1], *nl;
	size_t len = 0, sent = 0, rl;
	const char *text;
	int rc;

	/* A verb and a queue id always fit. */
	rc = ctlproto_request_format(req, sizeof req, queue_admin_verb_name(q->verb), q->qid);
	if (rc < 0)
		panic("govrelayctl: request does not fit: %s", queue_admin_verb_name(q->verb));
	rl = (size_t)rc;
	while (sent < rl) {
		ssize_t n = send(fd, req + sent, rl - sent, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		/*
		 * The daemon may answer at accept (busy, permission denied)
		 * and close before reading: its reply is still there to read.
		 */
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			break;
		if (n < 0) {
			govrelayctl_err(g, "cannot send to the daemon: %s", strerror(errno));
			return EX_UNAVAILABLE;
		}
		sent += (size_t)n;
	}
	while (len < sizeof line - 1 && memchr(line, '\n', len) == NULL) {
		ssize_t n = recv(fd, line + len, sizeof line - 1 - len, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ECONNRESET && len > 0)
			break; /* after the reply: the daemon closed with our request unread */
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			govrelayctl_err(g, "no reply from the daemon within %d s; the change may "
			    "or may not have been made ('queue show' tells)",
			    GOVRELAYCTL_CTL_TIMEOUT_S);
			return EX_TEMPFAIL;
		}
		if (n < 0) {
			govrelayctl_err(g, "cannot read the daemon's reply: %s", strerror(errno));
			return EX_UNAVAILABLE;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	line[len] = '\0';
	nl = memchr(line, '\n', len);
	if (nl == NULL) {
		govrelayctl_err(g, "the daemon closed the connection without a complete reply");
		return EX_SOFTWARE;
	}
	*nl = '\0';
	/* Only the codes of the protocol; anything else is an internal error. */
	if (ctlproto_reply_parse(line, &q->code, &text) == 0) {
		str_copy(q->text, text, sizeof q->text);
		return 0;
	}
	{
		char *shown = govrelayctl_text_dup(line);

		govrelayctl_err(g, "malformed reply from the daemon: '%s'", shown);
		free(shown);
	}
	return EX_SOFTWARE;
}

static int govrelayctl_queue_change(struct govrelayctl *g, const struct govrelayctl_args *a)
{
	struct govrelayctl_qchange q;
	const char *path, *path_err;
	char *text;
	bool by_daemon;
	int fd = -1, rc;

	memset(&q, 0, sizeof q);
	if (queue_admin_verb_parse(g->cmd->verb, &q.verb) < 0)
		panic("govrelayctl: no queue change named %s", g->cmd->verb);
	if (queue_admin_verb_has_id(q.verb)) {
		const char *arg = govrelayctl_arg(a, "id");

		if (queue_id_parse(arg, &q.id) < 0) {
			char *shown = govrelayctl_text_dup(arg);

			govrelayctl_err(g, "bad queue id '%s': expected %d hex digits", shown,
			    QUEUE_ID_TEXT_LEN);
			free(shown);
			return EX_DATAERR;
		}
		queue_id_format(q.id, q.qid);
	}
	rc = govrelayctl_ctl_connect(g, &fd);
	by_daemon = rc == 0;
	if (rc == 0) {
		rc = govrelayctl_ctl_ask(g, fd, &q);
		close(fd);
		path = "done by the running daemon";
		path_err = "reported by the running daemon";
	} else if (rc == 1) {
		rc = govrelayctl_qchange_store(g, &q);
		path = "daemon not running: applied to the store";
		path_err = "daemon not running: checked the store";
	} else {
		return rc;
	}
	if (rc != 0)
		return rc;
	text = govrelayctl_text_dup(q.text);
	if (q.code != 0) {
		govrelayctl_err(g, "%s (%s)", text, path_err);
	} else if (g->json) {
		struct govrelayctl_json j;

		govrelayctl_json_begin(&j);
		govrelayctl_json_kstr(&j, "action", queue_admin_verb_action(q.verb));
		govrelayctl_json_kstr(&j, "id", q.qid[0] != '\0' ? q.qid : NULL);
		govrelayctl_json_kstr(&j, "result", q.text);
		govrelayctl_json_kstr(&j, "applied_by", by_daemon ? "daemon" : "store");
		govrelayctl_json_end(&j);
	} else {
		printf("%s (%s)\n", text, path);
	}
	free(text);
	return q.code;
}

/* ------------------------------------------------------------ config */

/* Loads the configuration; on failure prints every error and gives 78. */
static int govrelayctl_config_load(struct govrelayctl *g, struct buf *errors)
{
	int rc = cfg_load(g->config_file, &g->cfg, errors);

	if (rc == 0)
		return 0;
	if (errors->len == 0)
		buf_printf(errors, "%s: cannot load: %s\n", g->config_file, strerror(-rc));
	return EX_CONFIG;
}

static int govrelayctl_config_check(struct govrelayctl *g, const struct govrelayctl_args *a)
{
	struct buf errors;
	int rc;

	(void)a;
	buf_init(&errors);
	rc = govrelayctl_config_load(g, &errors);
	if (rc != 0 && errors.len > 0)
		fwrite(errors.data, 1, errors.len, stderr);
	if (g->json) {
		struct govrelayctl_json j;
		char *p, *nl;

		govrelayctl_json_begin(&j);
		govrelayctl_json_kstr(&j, "config", g->config_file);
		govrelayctl_json_kbool(&j, "ok", rc == 0);
		govrelayctl_json_open(&j, "errors", '[');
		for (p = buf_cstr(&errors); *p != '\0'; p = nl) {
			nl = strchr(p, '\n');
			if (nl != NULL)
				*nl++ = '\0';
			else
				nl = p + strlen(p);
			govrelayctl_json_sep(&j, NULL);
			govrelayctl_json_str(&j.b, p);
		}
		govrelayctl_json_close(&j, ']');
		govrelayctl_json_end(&j);
	}
	if (rc == 0 && !g->json)
		printf("config ok: %s\n", g->config_file);
	buf_free(&errors);
	return rc;
}

/* -------------------------------------------------------------- main */

static const struct govrelayctl_cmd *govrelayctl_find(const char *noun, const char *verb,
    bool *noun_known)
{
	*noun_known = false;
	for (size_t i = 0; i < GOVRELAYCTL_NCMDS; i++) {
		if (strcmp(govrelayctl_cmds[i].noun, noun) != 0)
			continue;
		*noun_known = true;
		if (verb != NULL && strcmp(govrelayctl_cmds[i].verb, verb) == 0)
			return &govrelayctl_cmds[i];
	}
	return NULL;
}

/* "domain" without a known verb: say which verbs there are. */
static int govrelayctl_noun_usage(const char *noun, const char *verb)
{
	if (verb == NULL)
		fprintf(stderr, "govrelayctl: %s: missing verb\n", noun);
	else
		fprintf(stderr, "govrelayctl: %s: unknown verb '%s'\n", noun, verb);
	fputs("usage:\n", stderr);
	for (size_t i = 0; i < GOVRELAYCTL_NCMDS; i++) {
		if (strcmp(govrelayctl_cmds[i].noun, noun) != 0)
			continue;
		fputs("  ", stderr);
		govrelayctl_usage_line(stderr, &govrelayctl_cmds[i]);
	}
	return EX_USAGE;
}

static int govrelayctl_run(struct govrelayctl *g, int argc, char **argv)
{
	struct govrelayctl_args a;
	struct buf errors;
	int rc;

	govrelayctl_pattern_compile(g->cmd->pattern, &a);
	if ((rc = govrelayctl_args_parse(g, &a, argc, argv)) != 0)
		return rc;
	if (g->config_file == NULL)
		return govrelayctl_usage(g, "-c FILE is required");
	if (g->cmd->flags & GOVRELAYCTL_F_CONFIG) {
		buf_init(&errors);
		rc = govrelayctl_config_load(g, &errors);
		if (errors.len > 0)
			fwrite(errors.data, 1, errors.len, stderr);
		buf_free(&errors);
		if (rc != 0)
			return rc;
	}
	if (g->cmd->flags & (GOVRELAYCTL_F_READ | GOVRELAYCTL_F_WRITE)) {
		rc = govrelayctl_store_open(g, (g->cmd->flags & GOVRELAYCTL_F_WRITE) != 0);
		if (rc != 0)
			return rc;
	}
	return g->cmd->run(g, &a);
}

int main(int argc, char **argv)
{
	struct govrelayctl g;
	char **rest;
	int i, nrest = 0, rc;
	bool noun_known;

	memset(&g, 0, sizeof g);
	log_open("govrelayctl", true, LOG_FORMAT_TEXT);

	/*
	 * Global options: -c FILE and --json anywhere (no verb uses either
	 * name, so they are taken out here and patterns need not list
	 * them); -h before NOUN.
	 */
	rest = xcalloc((size_t)argc + 1, sizeof *rest);
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			g.json = true;
		} else if (strcmp(argv[i], "-c") == 0) {
			if (i + 1 == argc) {
				free(rest);
				return govrelayctl_usage(NULL, "-c needs a FILE");
			}
			g.config_file = argv[++i];
		} else if (nrest == 0 && (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0)) {
			rest[nrest++] = "help";
		} else if (nrest == 0 && argv[i][0] == '-') {
			rc = govrelayctl_usage(NULL, "unknown option '%s'", argv[i]);
			free(rest);
			return rc;
		} else {
			rest[nrest++] = argv[i];
		}
	}
	if (nrest == 0) {
		free(rest);
		return govrelayctl_usage(NULL, "missing command");
	}
	if (strcmp(rest[0], "help") == 0) {
		/* Compiling every pattern here keeps a broken row from hiding. */
		for (size_t c = 0; c < GOVRELAYCTL_NCMDS; c++) {
			struct govrelayctl_args a;

			govrelayctl_pattern_compile(govrelayctl_cmds[c].pattern, &a);
		}
		govrelayctl_help(stdout);
		free(rest);
		return EX_OK;
	}
	g.cmd = govrelayctl_find(rest[0], nrest > 1 ? rest[1] : NULL, &noun_known);
	if (g.cmd == NULL) {
		if (noun_known)
			rc = govrelayctl_noun_usage(rest[0], nrest > 1 ? rest[1] : NULL);
		else
			rc = govrelayctl_usage(NULL, "unknown command '%s'", rest[0]);
		free(rest);
		return rc;
	}
	rc = govrelayctl_run(&g, nrest - 2, rest + 2);
	queue_store_close(g.store);
	cfg_unref(g.cfg);
	free(rest);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "govrelayctl: cannot write the output: %s\n", strerror(errno));
		if (rc == EX_OK)
			rc = EX_IOERR;
	}
	return rc;
}
