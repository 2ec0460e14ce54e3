#ifndef GOVRELAY_ADMIN_H
#define GOVRELAY_ADMIN_H
/*
 * admin: the command engine of govrelayctl (NOUN VERB [ARGS] [--json]).
 * The CLI runs it in its own process when its user may open the store
 * (root, or the user owning data_dir); govrelayd runs it, on a thread-pool
 * thread, for a delegated operator who asks over the control socket, with
 * the identity taken from the socket's peer credentials (SO_PEERCRED).
 * Either way the same code parses, authorizes, changes the store in one
 * transaction with its audit record (in the daemon, through its writer
 * thread: io->writer), and prints.
 *
 * libadmin (admin/, one file per noun) depends on queue/ and common/,
 * and on one pure function of policy/: dlp_pattern_check, so that `policy
 * set` refuses a DLP pattern the matcher would not compile (one owner of
 * that rule). relay/ links it for the control socket, admin-cli/
 * (govrelayctl: main, the terminal, the password prompt) links it for the
 * CLI, and it includes neither (relay -> {policy, admin} -> queue ->
 * common).
 */
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "common/cfg.h"
#include "queue/queue.h"
#include "queue/queue_writer.h"

struct buf;

/*
 * `policy explain`: a message the daemon runs through its whole check
 * table, on its own policy engine, without queueing it (relay/explain.c;
 * admin/explain.c decides everything here and prints the answer).
 */
struct admin_explain_req {
	const char *sender;          /* canonical --from; "" for <> */
	const char *const *rcpts;    /* canonical --to addresses */
	size_t nrcpts;
	/*
	 * --from when it is a user of ours (the checks then see mail that
	 * user submitted), else NULL (mail arriving from outside).
	 */
	const char *auth_user;
	const char *message;         /* the whole message, as the file holds it */
	size_t len;
	const char *by;              /* who asks (login name), for the daemon's log */
};
/*
 * The answer's records, appended to the hook's out: ADMIN_EXPLAIN_FIELDS
 * fields each, every field NUL-terminated: stage, subject, rule,
 * verdict, code, enhanced code, text. Stage "mail", "rcpt" (subject: the
 * recipient) or "data": one record per rule in table order (rule the
 * row's name, or "ROW/SUBRULE" when the check names a finer rule;
 * verdict a verdict_kind_name or "not-run"), then one with rule
 * ADMIN_EXPLAIN_REPLY: what the client would have been told. Stage
 * "note": text one of the checks' notes ("key=value"); stage "header":
 * text a header field the checks would add. Other fields "" when they
 * do not apply; code "0" when there is none.
 */
#define ADMIN_EXPLAIN_FIELDS 7
#define ADMIN_EXPLAIN_REPLY "(reply)"

struct admin_io {
	FILE *out;                 /* results */
	FILE *err;                 /* error messages */
	FILE *in;                  /* passwords, and `mailbox import -` */
	const char *config_file;   /* for messages and `config check` */
	const struct config *cfg;  /* loaded configuration (borrowed) */
	struct queue_store *store; /* NULL: the engine opens cfg's data_dir itself */
	/*
	 * The daemon's writer (borrowed; the caller holds a queue_writer_ref
	 * while admin_run runs): every change then runs as one writer op,
	 * queue_writer_run_sync from this thread, so the daemon keeps its one
	 * LMDB writer. NULL (govrelayctl's own process): each change runs in a
	 * write transaction of the engine's own; LMDB serializes writers of
	 * different processes.
	 */
	struct queue_writer *writer;
	uid_t uid;                 /* who runs the command (kernel-verified) */
	const char *user;          /* that uid's login name, for audit records */
	bool super;                /* root or the store's owner: no tenant scope */
	bool remote;               /* run for a control-socket peer: never opens
	                              a path named on its command line */
	/*
	 * Called after a queue change was committed (the daemon kicks its
	 * scheduler; the CLI forwards nothing). NULL is fine.
	 */
	void (*queue_changed)(void *arg);
	void *queue_changed_arg;
	/*
	 * `policy explain`, run by the daemon on its policy engine: 0 with the
	 * records in out, or a negative errno: -EBUSY (another explain is
	 * running), -ETIMEDOUT (no answer in time), -ESHUTDOWN (the daemon is
	 * stopping). Called from admin_run's thread; it waits. NULL (the CLI's
	 * own process): the command needs the running daemon.
	 */
	int (*explain)(void *arg, const struct admin_explain_req *req, struct buf *out);
	void *explain_arg;
};

/*
 * Runs one command: argv[0] is the noun (argv has no program name and no
 * -c option). --json and --help may appear anywhere in argv (the engine
 * takes them out); "help [NOUN [VERB]]" prints usage. Returns a sysexits.h
 * code (INTERFACE.md). Everything is printed through io->out and io->err;
 * a refusal (77) is also recorded in the audit chain. When io->remote,
 * queue changes are applied through io->writer and then
 * io->queue_changed is called; otherwise they go to the daemon over
 * cfg->control_socket (or to the store when no daemon answers).
 */
int admin_run(const struct admin_io *io, int argc, char **argv);

/* Whether NOUN VERB reads stdin (so a remote caller forwards it). */
bool admin_reads_stdin(int argc, char **argv);
/*
 * For a remote run: the index in argv of an argument naming a local file
 * the caller must read and send as stdin, replacing it with "-"; -1 if
 * none (`mailbox import FILE.csv`, `policy explain FILE.eml`).
 */
int admin_file_arg(int argc, char **argv);
/*
 * The name of argv's command as audit records give it ("mailbox add",
 * "stats"), into out (NUL-terminated, printable ASCII only, cut to
 * fit); for words that name no command, the first two words, made
 * printable. THREADS: any.
 */
void admin_command_name(int argc, char *const *argv, char *out, size_t outlen);

/*
 * Reads a new password for `user add` and `user passwd` from in: its
 * first line without CR/LF (a terminal prompt is govrelayctl's job, in
 * admin-cli/password.c). The password is refused when empty, longer than
 * PASSWD_MAX bytes or holding a NUL byte. Returns 0 with out
 * NUL-terminated and *len its length (outlen must be at least
 * PASSWD_MAX + 1), or a sysexits.h code (65) with an English reason in
 * why. THREADS: any.
 */
int admin_read_password_stream(FILE *in, char *out, size_t outlen, size_t *len, char *why,
    size_t whylen);

#endif
