#ifndef GOVRELAY_ADMIN_INT_H
#define GOVRELAY_ADMIN_INT_H
/*
 * admin_int: what the files of admin/ share and nobody else may see
 * (STYLE.md section 2): the command context, the argument patterns, the
 * output helpers (text, tables, JSON), store access, argument checks,
 * the caller's scope and the audit helper. Never include this from
 * outside admin/.
 *
 * Every function here writes only through a->io (never stdout/stderr)
 * and keeps no static mutable state: the engine runs on a thread-pool
 * thread inside govrelayd as well as in govrelayctl's own process.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "admin/admin.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

#define ADMIN_SLOTS_MAX 12
#define ADMIN_WHY_MAX 256
#define ADMIN_LIST_FLUSH 65536 /* bytes buffered by streaming listings */
#define ADMIN_ADDR_COL 40      /* address column of streaming listings */
#define ADMIN_TIME_LEN 32
#define ADMIN_USER_MAX 64 /* unix login names, "uid:N" */

/* Row flags: what the dispatcher prepares before the handler runs. */
#define ADMIN_F_READ 0x1u  /* open the store read-only (a missing store is empty) */
#define ADMIN_F_WRITE 0x2u /* open the store read-write */
#define ADMIN_F_STDIN 0x4u /* reads io->in (a password, an import) */

/*
 * Who may run a row (STYLE.md section 12: authorization comes with the
 * table). Handlers of POSTMASTER and AUDITOR rows narrow further to the
 * caller's tenant subtree, object by object.
 */
enum admin_access {
	ADMIN_ACC_ANY,        /* help, config check: no identity needed */
	ADMIN_ACC_SUPER,      /* root or the store's owner only */
	ADMIN_ACC_POSTMASTER, /* super, or a postmaster within the subtree */
	ADMIN_ACC_AUDITOR,    /* super, or an auditor within the subtree */
	ADMIN_ACC_SECURITY,   /* super, or a security operator within the subtree */
	/* super, or a security operator or an auditor within the subtree (read only) */
	ADMIN_ACC_QUARANTINE_READ,
};

struct admin;

/* One placeholder of an argument pattern. */
enum admin_slot_kind {
	ADMIN_SLOT_POS,  /* <name> */
	ADMIN_SLOT_OPT,  /* --name <value> */
	ADMIN_SLOT_FLAG, /* --name */
};

struct admin_slot {
	enum admin_slot_kind kind;
	bool required;
	char name[32];  /* "domain" for <domain>, "--route" for options */
	char value[32]; /* the placeholder of an option: "<route>" */
};

struct admin_args {
	struct admin_slot slot[ADMIN_SLOTS_MAX];
	const char *val[ADMIN_SLOTS_MAX];
	int idx[ADMIN_SLOTS_MAX]; /* index in the argv given to the parser */
	bool set[ADMIN_SLOTS_MAX];
	size_t n;
};

typedef int admin_handler(struct admin *a, const struct admin_args *args);

struct admin_cmd {
	const char *noun;
	const char *verb;
	const char *pattern;
	unsigned flags;
	enum admin_access access;
	admin_handler *run;
	const char *help;
};

/* The caller's reach when not super: a tenant and everything below it. */
struct admin_scope {
	char **tenants; /* sorted ids of the subtree, the root included */
	size_t ntenants;
};

/* Domains and their tenants, loaded once per command when needed. */
struct admin_domain_ent {
	char *name;
	char *tenant; /* NULL for a domain without tenant */
	bool in_scope;
};

struct admin_domains {
	bool loaded;
	struct admin_domain_ent *v; /* sorted by name */
	size_t n;
};

/* Everything a handler gets. */
struct admin {
	const struct admin_io *io;
	const struct admin_cmd *cmd;
	bool json;
	struct queue_store *store; /* io->store, or ours (NULL: no store yet) */
	bool own_store;
	bool store_rw;
	char user[ADMIN_USER_MAX]; /* for audit records and messages */
	const char *via;           /* "cli" or "daemon" */
	bool super;
	bool is_operator;
	enum queue_operator_role role;
	char op_tenant[TENANCY_ID_MAX + 1];
	struct admin_scope scope;
	struct admin_domains domains;
	/* A refusal, audited by the dispatcher once the handler returned. */
	bool denied;
	char deny_tenant[256];
	char deny_reason[256];
};

/* --------------------------------------------------------- engine.c */

/* "govrelayctl: NOUN VERB: " (or "govrelayctl: ") on f. */
void admin__prefix(const struct admin *a, FILE *f);

/* "govrelayctl: NOUN VERB: ..." on io->err. */
void admin__err(const struct admin *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A usage error for a->cmd: the message, the usage line; EX_USAGE. */
int admin__usage(const struct admin *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* printf to io->out. */
void admin__out(const struct admin *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void admin__out_buf(const struct admin *a, const struct buf *b);

/* ----------------------------------------------------------- args.c */

/* Compiles a row's pattern into slots (a malformed pattern panics). */
void admin__pattern_compile(const char *pattern, struct admin_args *a);
/*
 * Fills args from argv; 0, or EX_USAGE (reported through a's row; a may
 * be NULL for a silent parse).
 */
int admin__args_parse(const struct admin *a, struct admin_args *args, int argc, char **argv);

/* The value of slot name ("domain", "--route"), or NULL when absent. */
const char *admin__arg(const struct admin_args *args, const char *name);

/* --------------------------------------------------------- output.c */

/* Terminal-safe text: control bytes and invalid UTF-8 become \xNN. */
void admin__text(struct buf *b, const char *s);
char *admin__text_dup(const char *s); /* NULL shows as "-" */
size_t admin__width(const char *s);
/* s padded with spaces to width columns (left aligned). */
void admin__pad(struct buf *b, const char *s, size_t width);

/*
 * One cell of an aligned row: s padded to width display columns (left or
 * right, align 'l' or 'r'), then two spaces unless it is the last.
 */
void admin__cell(struct buf *b, const char *s, size_t width, char align, bool last);

/* An aligned text table: cells are collected, then printed in one go. */
struct admin_table {
	size_t ncols;
	const char *const *head;
	const char *align; /* per column: 'l' or 'r' */
	char **cells;      /* nrows * ncols, owned */
	size_t nrows, cap;
};
void admin__table_row(struct admin_table *t, const char *const *cols);
void admin__table_print(const struct admin *a, const struct admin_table *t);
void admin__table_free(struct admin_table *t);

/* "key: value" for show; the value is made safe for a terminal. */
void admin__kv(const struct admin *a, const char *indent, const char *key, const char *value);

/* JSON (RFC 8259): one object per line, keys in order. */
void admin__json_str(struct buf *b, const char *s);
struct admin_json {
	struct buf b;
	bool first[8];
	int depth;
};
void admin__json_begin(struct admin_json *j);
void admin__json_end(const struct admin *a, struct admin_json *j); /* prints one line */
void admin__json_sep(struct admin_json *j, const char *key);
void admin__json_open(struct admin_json *j, const char *key, char c);
void admin__json_close(struct admin_json *j, char c);
void admin__json_kstr(struct admin_json *j, const char *key, const char *v);
void admin__json_kint(struct admin_json *j, const char *key, int64_t v);
void admin__json_kuint(struct admin_json *j, const char *key, uint64_t v);
void admin__json_kbool(struct admin_json *j, const char *key, bool v);
void admin__json_kraw(struct admin_json *j, const char *key, const char *raw);

/* A time as ISO 8601 text, or NULL (JSON null, text "-") when unset. */
const char *admin__time(int64_t ms, bool set, char out[ADMIN_TIME_LEN]);

/* ---------------------------------------------------------- store.c */

/* Exit code for a store error (-EACCES 77, -EAGAIN 75, else 69). */
int admin__store_exit(int rc);
/*
 * Exit code for an error of a tenancy call, reported with why (or
 * queue_strerror) after "what": -ENOENT 66, -EEXIST 73, -EINVAL,
 * -ENOTEMPTY, -ELOOP 65, else admin__store_exit.
 */
int admin__fail(const struct admin *a, int rc, const char *why, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Makes sure a->store is open (read-write when write). 0 or exit code. */
int admin__store_open(struct admin *a, bool write);
/* A read transaction on a->store. 0 or an exit code (reported). */
int admin__txn(struct admin *a, struct queue_txn **txn);
/*
 * One change: reads what it checks and writes what it changes (and its
 * audit record) in txn. Returns 0 to commit, or an exit code it has
 * reported (the change is then rolled back whole).
 */
typedef int admin_apply_fn(struct admin *a, struct queue_txn *txn, void *arg);
/*
 * Runs apply as one durable change: through io->writer when set (on the
 * writer thread, while this thread waits for the commit), else in a
 * write transaction of its own. 0 once durable; apply's exit code; or a
 * store exit code (reported: "cannot commit WHAT: ..."; 75 when the
 * daemon is stopping).
 */
int admin__write(struct admin *a, admin_apply_fn *apply, void *arg, const char *what);

/* Arguments: canonical forms, or EX_DATAERR naming the argument. */
int admin__domain_arg(const struct admin *a, const char *what, const char *in, char *out,
    size_t outlen);
int admin__addr_arg(const struct admin *a, const char *what, const char *in, char *out,
    size_t outlen);
int admin__tenant_arg(const struct admin *a, const char *what, const char *in);

/*
 * One admin audit record in txn: action=NOUN.VERB by= via= tenant=
 * object= and then extra (NULL values skipped). tenant and object may be
 * NULL (omitted).
 */
int admin__audit(const struct admin *a, struct queue_txn *txn, const char *tenant,
    const char *object, const struct queue_audit_field *extra, size_t nextra);

/*
 * The refusal's audit record (action=denied), written on its own after
 * the handler returned: the handler's change (if any) was not made, and
 * a refusal must leave a trace even though nothing changed.
 */
void admin__deny_record(struct admin *a);

/* ---------------------------------------------------------- scope.c */

/* Scope. Every predicate is true for super. */
bool admin__tenant_in_scope(const struct admin *a, const char *tenant);
/* Loads every domain with its tenant (once per command). 0 or exit code. */
int admin__domains_load(struct admin *a, struct queue_txn *txn);
/* The loaded entry of a canonical domain, or NULL. */
const struct admin_domain_ent *admin__domain_find(const struct admin *a, const char *domain);
/* Canonical domain of an address as stored in the queue ("" when none). */
void admin__addr_domain(const char *addr, char *out, size_t outlen);

/*
 * Refuses the command: prints "permission denied" naming the user, the
 * command and tenant, and has the dispatcher write the denial audit
 * record (action=denied) in its own transaction. Returns EX_NOPERM.
 */
int admin__deny(struct admin *a, const char *tenant, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* admin__deny unless tenant is in scope ("what" names the object). */
int admin__need_tenant(struct admin *a, const char *tenant, const char *what);
/* A refusal of the command as such (who the caller is), not of an object. */
int admin__deny_cmd(struct admin *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Loads the subtree of a->op_tenant into a->scope. 0 or a negative errno. */
int admin__scope_load(struct admin *a, struct queue_txn *txn);
/*
 * The tenant of an address's domain for a handler: 0 with *tenant (fresh
 * string or NULL), or an exit code (reported: 66 when the domain is not
 * ours, 77 when it is outside the caller's subtree).
 */
int admin__addr_tenant(struct admin *a, struct queue_txn *txn, const char *addr,
    char **tenant);
/* Whether tenant exists: 0, or 66 (reported, "what" names the argument). */
int admin__tenant_exists(struct admin *a, struct queue_txn *txn, const char *id,
    const char *what);
/* "a,b" of two tenant ids for the audit fact (b may be NULL). */
void admin__tenants2(char *out, size_t outlen, const char *x, const char *y);

/*
 * The rules of delegated administration (doc/THREAT-MODEL.md), pure but
 * for admin__domain_parent (a->domains loaded). Root and the daemon's
 * user are not bound by them: callers ask only when !a->super.
 */
/* path strictly below dir, lexically (no empty, "." or ".." component). */
bool admin__path_below(const char *dir, const char *path);
/* Whether route is one the configuration lets a delegated operator name: 0 or -EPERM + why. */
int admin__route_delegable(const struct config *cfg, const char *route, char *why,
    size_t whylen);
/* Whether domain is a proper subdomain of parent (canonical names). */
bool admin__domain_is_below(const char *domain, const char *parent);
/* The nearest of our domains strictly above domain, or NULL. */
const struct admin_domain_ent *admin__domain_parent(const struct admin *a, const char *domain);

/*
 * Number of audit records (the chain's seq numbers have no gaps, so the
 * newest record's seq), found by searching back over growing windows of
 * time instead of walking a chain of millions. audit.c.
 */
int admin__audit_count(struct queue_txn *txn, uint64_t *count);

/* strerror for any thread (GNU strerror_r into buf). */
const char *admin__strerror(int err, char *buf, size_t len);
#define ADMIN_ERRBUF 128
/* The same with a buffer that lives as long as the enclosing block. */
#define ADMIN_STRERROR(e) admin__strerror((e), (char[ADMIN_ERRBUF]){ 0 }, ADMIN_ERRBUF)

/* RFC 4180 field for CSV output. */
void admin__csv_field(struct buf *b, const char *s);

/* ------------------------------------------------ the nouns' files */

/*
 * --tenant/--domain of `mailbox list` and `user list`: checked, the
 * canonical domain in one; 0 or an exit code (reported). mailbox.c.
 */
int admin__list_filters(struct admin *a, const struct admin_args *args, char *one,
    size_t onelen);
/*
 * Whether the caller may see message m (super always; a postmaster when
 * a recipient's domain is in scope, or the sender authenticated as a
 * user of their subtree; never by the bare envelope sender; a->domains
 * loaded). queue.c.
 */
bool admin__msg_in_scope(const struct admin *a, const struct queue_msg *m,
    const char **tenant);
/* Whether every recipient of m is in scope (a change may touch it whole). queue.c. */
bool admin__msg_all_in_scope(const struct admin *a, const struct queue_msg *m);
/* Drops from m the recipients outside the caller's scope (what they are shown). queue.c. */
void admin__msg_narrow(const struct admin *a, struct queue_msg *m);
/* A queue id argument (queue, quarantine): 0, or EX_DATAERR reported. queue.c. */
int admin__queue_id_arg(struct admin *a, const char *arg, uint64_t *id);
int admin__config_check(struct admin *a, const struct admin_args *args);

int admin__tenant_add(struct admin *a, const struct admin_args *args);
int admin__tenant_list(struct admin *a, const struct admin_args *args);
int admin__tenant_show(struct admin *a, const struct admin_args *args);
int admin__tenant_remove(struct admin *a, const struct admin_args *args);
int admin__domain_add(struct admin *a, const struct admin_args *args);
int admin__domain_list(struct admin *a, const struct admin_args *args);
int admin__domain_show(struct admin *a, const struct admin_args *args);
int admin__domain_remove(struct admin *a, const struct admin_args *args);
int admin__mailbox_add(struct admin *a, const struct admin_args *args);
int admin__mailbox_remove(struct admin *a, const struct admin_args *args);
int admin__mailbox_list(struct admin *a, const struct admin_args *args);
int admin__mailbox_show(struct admin *a, const struct admin_args *args);
int admin__mailbox_import(struct admin *a, const struct admin_args *args);
int admin__user_add(struct admin *a, const struct admin_args *args);
int admin__user_passwd(struct admin *a, const struct admin_args *args);
int admin__user_lock(struct admin *a, const struct admin_args *args);
int admin__user_list(struct admin *a, const struct admin_args *args);
int admin__user_show(struct admin *a, const struct admin_args *args);
int admin__user_remove(struct admin *a, const struct admin_args *args);
int admin__operator_add(struct admin *a, const struct admin_args *args);
int admin__operator_list(struct admin *a, const struct admin_args *args);
int admin__operator_remove(struct admin *a, const struct admin_args *args);
int admin__dkim_keygen(struct admin *a, const struct admin_args *args);
int admin__dkim_dns(struct admin *a, const struct admin_args *args);
int admin__dkim_list(struct admin *a, const struct admin_args *args);
int admin__dkim_retire(struct admin *a, const struct admin_args *args);
int admin__policy_set(struct admin *a, const struct admin_args *args);
int admin__policy_show(struct admin *a, const struct admin_args *args);
int admin__policy_explain(struct admin *a, const struct admin_args *args); /* explain.c */
int admin__queue_list(struct admin *a, const struct admin_args *args);
int admin__queue_show(struct admin *a, const struct admin_args *args);
int admin__queue_change(struct admin *a, const struct admin_args *args);
int admin__stats(struct admin *a, const struct admin_args *args);
int admin__quarantine_list(struct admin *a, const struct admin_args *args);
int admin__quarantine_show(struct admin *a, const struct admin_args *args);
int admin__quarantine_change(struct admin *a, const struct admin_args *args);
int admin__audit_search(struct admin *a, const struct admin_args *args);
int admin__dmarc_report(struct admin *a, const struct admin_args *args);
int admin__audit_verify(struct admin *a, const struct admin_args *args);
int admin__audit_checkpoint(struct admin *a, const struct admin_args *args);
/*
 * `audit verify --checkpoints FILE [--key KEYFILE]` after the chain was
 * verified up to head_seq: checks FILE's signatures and judges the chain
 * against every checkpoint, adding to j (--json; NULL for text) or text.
 * 0, 65 for any finding, or another exit code (reported). audit_anchor.c.
 */
int admin__audit_anchor(struct admin *a, const char *file, const char *keyfile,
    uint64_t head_seq, struct admin_json *j, struct buf *text);

#endif
