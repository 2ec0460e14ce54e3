/*
 * admin/engine: the command engine of govrelayctl and of the daemon's
 * control socket. One command is one row of admin_cmds[]: noun, verb, an
 * argument pattern ("<domain> --route <route> [--tenant <id>]
 * [--require-tls]"), flags, who may run it, handler and help line. The
 * argument parser (args.c), `govrelayctl help`, `govrelayctl NOUN --help`
 * and every usage error come from that table (STYLE.md section 12,
 * OpenSMTPD smtpctl's pattern table), so a new verb is one row and one
 * handler. The handlers live one file per noun: tenant.c, domain.c,
 * mailbox.c, import.c (mailbox import), user.c, operator.c, dkim.c, policy.c,
 * explain.c (policy explain), queue.c, quarantine.c, stats.c, audit.c, config.c, dmarc.c
 * (dmarc report).
 *
 * Authorization (STYLE.md section 12, `cmd_install_priv`): the row says
 * who may run it at all (super only, postmasters, auditors, security
 * operators); for a caller who is not super, the dispatcher looks the
 * caller up in the operators table and loads the tenant subtree they
 * answer for (scope.c), and the
 * handler checks every object it touches against that subtree before it
 * changes anything. A refusal exits 77 and leaves an audit record (event
 * admin, action=denied) in a write of its own (store.c).
 *
 * Entry points: admin_run, admin_reads_stdin, admin_file_arg,
 * admin_command_name (admin.h).
 * OWNERSHIP: everything a command allocates is freed before admin_run
 * returns; io and its members are borrowed. Read transactions that feed an
 * aligned table copy what they need and end before printing, so a slow
 * terminal never holds an LMDB snapshot; listings that may be huge
 * (mailboxes of a domain, audit search) print as they walk, by design.
 * THREADS: any thread, several at once: no static mutable state, only
 * reentrant libc calls (getpwnam_r, gmtime_r, strtok_r), no exit(), no
 * signal handlers. Writes go through io->writer when it is set (store.c).
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
#include <unistd.h>

#include "admin/admin_int.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/passwd.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

#include "queue/tenancy.h"

int admin__config_check(struct admin *a, const struct admin_args *args);

#define R ADMIN_F_READ
#define W ADMIN_F_WRITE
#define ANY ADMIN_ACC_ANY
#define SUPER ADMIN_ACC_SUPER
#define PM ADMIN_ACC_POSTMASTER
#define AUD ADMIN_ACC_AUDITOR
#define SEC ADMIN_ACC_SECURITY
#define QREAD ADMIN_ACC_QUARANTINE_READ
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
	  "Import FILE.csv (rows address[,alias-of]; - reads standard input): every row "
	  "is checked first, and any bad row imports nothing; then rows are written in "
	  "batches of about 1,000, each its own transaction and audit record. If it "
	  "stops half-way, the batches written stay; importing the file again finishes "
	  "the job. --label names the file in error messages." },
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
	{ "dkim", "keygen", "<domain> --selector <selector> [--algorithm <algorithm>]", W, PM,
	  admin__dkim_keygen,
	  "Make a DKIM key pair for DOMAIN (one of ours) under SELECTOR: ed25519 or rsa "
	  "(2048 bits, the default). The private key goes to DATA_DIR/dkim/DOMAIN/SELECTOR.pem, "
	  "readable by the daemon's user only, and is never shown; the DNS record to publish "
	  "is printed. While an older active key of the algorithm exists, the new one waits." },
	{ "dkim", "dns", "<domain>", R, PM, admin__dkim_dns,
	  "Print the DNS TXT records to publish for DOMAIN's active and retiring keys." },
	{ "dkim", "list", "[--domain <domain>]", R, PM, admin__dkim_list,
	  "List the DKIM keys: domain, selector, algorithm, state (active, retiring, retired), "
	  "whether it signs now, created." },
	{ "dkim", "retire", "<domain> <selector>", W, PM, admin__dkim_retire,
	  "Retire a key: it stops signing once a newer active key of its algorithm exists "
	  "(until then it is retiring and still signs, so rotation leaves no gap)." },
	{ "policy", "set", "<tenant> <key> <value>", W, PM, admin__policy_set,
	  "Set a policy key for a tenant (inherited by its subtree unless overridden)." },
	{ "policy", "unset", "<tenant> <key>", W, PM, admin__policy_set,
	  "Remove a tenant's own setting of a policy key (it inherits again)." },
	{ "policy", "show", "<tenant>", R, PM, admin__policy_show,
	  "Show every policy key's effective value for a tenant and where it comes from." },
	{ "policy", "explain", "<file> --from <address> --to <address> [--tenant <id>]", R, PM,
	  admin__policy_explain,
	  "Run every check of the running govrelayd on message FILE (- reads standard "
	  "input) as if it came from --from to each --to (a comma-separated list), without "
	  "queueing it, and print each rule's verdict and why. Mail from a user of ours is "
	  "checked as that user's submission, other mail as arriving from outside. A "
	  "postmaster explains for their own tenants only (--tenant, else the tenant of "
	  "--from's domain, else of the first --to's)." },
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
	{ "quarantine", "list", "", W, QREAD, admin__quarantine_list,
	  "List the quarantined messages (kept out of delivery by a policy verdict): id, "
	  "time, sender, recipients, rule and reason. Operators see the messages with a "
	  "recipient in their subtree or sent by one of its users (authenticated). Who "
	  "listed is recorded." },
	{ "quarantine", "show", "<id>", W, QREAD, admin__quarantine_show,
	  "Show a quarantined message: its envelope, the verdict (rule, reason), the "
	  "checks' notes and the message's header section (who looked is recorded)." },
	{ "quarantine", "release", "<id>", W, SEC, admin__quarantine_change,
	  "Deliver a quarantined message as if it had passed: it joins the delivery queue, "
	  "every recipient due now. A security operator may release only a message all of "
	  "whose recipients are in their subtree (or sent by one of its users)." },
	{ "quarantine", "delete", "<id>", W, SEC, admin__quarantine_change,
	  "Delete a quarantined message and its body, without delivery or bounce (the "
	  "same scope rule as release)." },
	{ "audit", "search", ADMIN_AUDIT_FILTERS, R, AUD, admin__audit_search,
	  "Print the audit records that match every filter given, oldest first. T is "
	  "ISO 8601 (2026-11-23T10:00Z), relative (-2h, -7d), now or @UNIXSECONDS." },
	{ "audit", "export", "--format <format> " ADMIN_AUDIT_FILTERS, R, AUD, admin__audit_search,
	  "Export matching audit records as jsonl or csv (RFC 4180)." },
	{ "audit", "verify", "[--checkpoints <file>] [--key <file>]", R, AUD, admin__audit_verify,
	  "Recompute the audit hash chain and print the head it verified; exit 65 naming the "
	  "first broken record. --checkpoints FILE also checks every signed checkpoint in FILE "
	  "(with --key, a PEM public key, or the public half of audit_signing_key) and that "
	  "the chain still holds each one: a cut tail, a rewritten chain or an emptied store "
	  "exits 65 naming what was found." },
	/* The store is opened by the handler, and only when no daemon answers. */
	{ "audit", "checkpoint", "", 0, SUPER, admin__audit_checkpoint,
	  "Sign and write an audit checkpoint of the chain's head now (through the running "
	  "daemon, else with audit_signing_key directly)." },
	{ "dmarc", "report", "--since <time> [--until <time>] [--domain <domain>]", R, PM,
	  admin__dmarc_report,
	  "Print, per From: domain and source address, the messages DMARC checked: count, "
	  "SPF and DKIM result, domain and alignment, DMARC result, published policy and "
	  "disposition (from the audit records). T as for audit search, or 24h for the "
	  "last 24 hours. A postmaster sees their own domains only." },
	{ "stats", "", "", R, PM, admin__stats,
	  "Count tenants, domains, mailboxes, aliases, users, operators, queued messages "
	  "and audit records." },
	{ "config", "check", "", 0, ANY, admin__config_check,
	  "Check the configuration file: FILE:LINE: message per error." },
};

#undef R
#undef W
#undef ANY
#undef SUPER
#undef PM
#undef AUD
#undef SEC
#undef QREAD

#define ADMIN_NCMDS (sizeof admin_cmds / sizeof admin_cmds[0])

/* --------------------------------------------------------- messages */

void admin__prefix(const struct admin *a, FILE *f)
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

	admin__prefix(a, a->io->err);
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

	admin__prefix(a, f);
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
	case ADMIN_ACC_SECURITY:
		return "Who: root, the store's owner, security operators (within their tenant).";
	case ADMIN_ACC_QUARANTINE_READ:
		return "Who: root, the store's owner, security operators and auditors (within "
		    "their tenant).";
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
	admin__pattern_compile(c->pattern, args);
	if (admin__args_parse(NULL, args, n, rest) != 0)
		return NULL;
	return c;
}

/* The commands whose <file> is read by the caller and sent as stdin when remote. */
static bool admin_takes_file(const struct admin_cmd *c)
{
	return (strcmp(c->noun, "mailbox") == 0 && strcmp(c->verb, "import") == 0) ||
	    (strcmp(c->noun, "policy") == 0 && strcmp(c->verb, "explain") == 0);
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
	if (c != NULL && admin_takes_file(c)) {
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

	if (c != NULL && admin_takes_file(c)) {
		for (size_t i = 0; i < args.n; i++)
			if (strcmp(args.slot[i].name, "file") == 0 && args.set[i] &&
			    strcmp(args.val[i], "-") != 0)
				at = map[args.idx[i]];
	}
	free(map);
	free(rest);
	return at;
}

void admin_command_name(int argc, char *const *argv, char *out, size_t outlen)
{
	const char *w[2] = { NULL, NULL };
	const struct admin_cmd *c;
	struct buf b;
	size_t n = 0;
	bool known;

	if (outlen == 0)
		return;
	for (int i = 0; i < argc && n < 2; i++)
		if (strcmp(argv[i], "--json") != 0 && strcmp(argv[i], "--help") != 0 &&
		    strcmp(argv[i], "-h") != 0)
			w[n++] = argv[i];
	buf_init(&b);
	c = n > 0 ? admin_find(w[0], w[1], &known) : NULL;
	if (c != NULL)
		buf_printf(&b, "%s%s%s", c->noun, c->verb[0] ? " " : "", c->verb);
	else
		buf_printf(&b, "%s%s%s", n > 0 ? w[0] : "-", n > 1 ? " " : "", n > 1 ? w[1] : "");
	/* Words a peer chose: nothing but printable ASCII reaches a record or a log. */
	for (size_t i = 0; i < b.len; i++)
		if ((unsigned char)b.data[i] < 0x20 || (unsigned char)b.data[i] >= 0x7f)
			b.data[i] = '?';
	str_copy(out, buf_cstr(&b), outlen);
	buf_free(&b);
}

/* What the row's access says of the operator's role: 0 or a refusal (77). */
static int admin_role_allows(struct admin *a)
{
	switch (a->cmd->access) {
	case ADMIN_ACC_SUPER:
		return admin__deny_cmd(a, "only root or the store's owner may run it");
	case ADMIN_ACC_POSTMASTER:
		if (a->role == QUEUE_ROLE_SECURITY)
			return admin__deny_cmd(a, "a security operator may only list, show, release "
			    "and delete quarantined messages");
		if (a->role != QUEUE_ROLE_POSTMASTER)
			return admin__deny_cmd(a, "an %s may only search, export and verify the "
			    "audit trail", queue_role_name(a->role));
		break;
	case ADMIN_ACC_AUDITOR:
		if (a->role != QUEUE_ROLE_AUDITOR)
			return admin__deny_cmd(a, "the audit trail is for auditors");
		break;
	case ADMIN_ACC_SECURITY:
		if (a->role != QUEUE_ROLE_SECURITY)
			return admin__deny_cmd(a, "only security operators may release or delete "
			    "quarantined messages%s", a->role == QUEUE_ROLE_AUDITOR ?
			    " (an auditor may list and show them)" : "");
		break;
	case ADMIN_ACC_QUARANTINE_READ:
		if (a->role != QUEUE_ROLE_SECURITY && a->role != QUEUE_ROLE_AUDITOR)
			return admin__deny_cmd(a, "the quarantine is for security operators and "
			    "auditors");
		break;
	default:
		break;
	}
	return 0;
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
		return admin__deny_cmd(a, "only root, the store's owner and operators (see "
		    "'operator add') may run it");
	if ((rc = admin__txn(a, &txn)) != 0)
		return rc;
	rc = queue_operator_get(txn, a->user, &op);
	if (rc == 0) {
		a->is_operator = true;
		a->role = op->role;
		str_copy(a->op_tenant, op->tenant, sizeof a->op_tenant);
		queue_operator_free(op);
		rc = admin__scope_load(a, txn);
	}
	queue_txn_abort(txn);
	if (rc == -ENOENT)
		return admin__deny_cmd(a, "only root, the store's owner and operators (see "
		    "'operator add') may run it");
	if (rc < 0) {
		admin__err(a, "cannot read the operators: %s", queue_strerror(rc));
		return admin__store_exit(rc);
	}
	return admin_role_allows(a);
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
			admin__pattern_compile(admin_cmds[i].pattern, &args);
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
	admin__pattern_compile(c->pattern, &args);
	if ((rc = admin__args_parse(a, &args, n - skip, v + skip)) != 0)
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
		admin__deny_record(&a);
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
