/*
 * govrelayctl: the administration command line. The commands themselves
 * are the engine's (admin/admin.h, libadmin: the table, parsing,
 * authorization, the store, the output); this file only decides where
 * the engine runs, and prompts for passwords (password.c):
 *
 *   LOCAL   root, or the user owning data_dir (they may open the LMDB
 *           store anyway): the engine runs in this process, unscoped
 *           (io.super), and opens the store itself; root does so with
 *           the effective ids of data_dir's owner, so no file of the
 *           store becomes root's (common/datadir.c). LMDB serializes
 *           writers across processes and readers never wait, so this
 *           works whether or not the daemon runs. `help`, `--help` and
 *           `config check` always run here.
 *   REMOTE  anyone else (a delegated operator, operator add): the command
 *           goes to govrelayd over control_socket as one exec request
 *           (common/ctlproto.h); the daemon learns who we are from the
 *           socket's peer credentials, runs the engine scoped to the
 *           operator's tenant, and streams back our stdout, stderr and
 *           exit code. Standard input (a password, `mailbox import -`) is
 *           read here and sent along; `mailbox import FILE` reads FILE
 *           here, with the operator's own permissions, and sends it as
 *           standard input: the daemon never opens a path a peer names.
 *           `policy explain FILE` always goes this way, for root and
 *           data_dir's owner too (the daemon lets both exec): the checks
 *           run on the daemon's own policy engine, never in this process.
 *
 * Entry points: main() only.
 * OWNERSHIP: everything is freed before exit, so valgrind stays quiet.
 * THREADS: one.
 * ERRORS: exit codes from sysexits.h (INTERFACE.md); in remote mode the
 * code the daemon sent, 69 when the daemon cannot be reached (naming the
 * socket), 70 for a broken reply, 75 when it does not answer in time.
 */
#include "config.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include <sys/stat.h>

#include "admin/admin.h"
#include "admin-cli/password.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/ctlclient.h"
#include "common/ctlproto.h"
#include "common/datadir.h"
#include "common/log.h"
#include "common/passwd.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define GOVRELAYCTL_REMOTE_TIMEOUT_S 300
#define GOVRELAYCTL_USER_MAX 64

/* The login name of the real uid (who typed the command), or "uid:N". */
static void govrelayctl_whoami(char *out, size_t outlen)
{
	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t len = sz > 0 ? (size_t)sz : 16384;
	struct passwd pw, *res = NULL;
	char *buf = xmalloc(len);

	if (getpwuid_r(getuid(), &pw, buf, len, &res) == 0 && res != NULL &&
	    res->pw_name != NULL && res->pw_name[0] != '\0' &&
	    str_copy(out, res->pw_name, outlen) < outlen) {
		free(buf);
		return;
	}
	free(buf);
	snprintf(out, outlen, "uid:%lu", (unsigned long)getuid());
}

/*
 * Whether this process may act on the store itself: root, or the owner
 * of data_dir. A data_dir that does not exist yet holds nothing to
 * protect: whoever creates it owns it.
 */
static bool govrelayctl_is_local(const struct config *cfg)
{
	struct stat st;

	if (geteuid() == 0)
		return true;
	if (cfg->data_dir == NULL)
		return true;
	if (stat(cfg->data_dir, &st) < 0)
		return errno == ENOENT;
	return st.st_uid == geteuid();
}

static bool govrelayctl_is_global(const char *arg)
{
	return strcmp(arg, "--json") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/* The first n words of the command (noun, verb, first argument), or NULL. */
static void govrelayctl_words(int argc, char **argv, const char **w, int n)
{
	int k = 0;

	for (int i = 0; i < n; i++)
		w[i] = NULL;
	for (int i = 0; i < argc && k < n; i++) {
		if (govrelayctl_is_global(argv[i]))
			continue;
		if (k >= 2 && strncmp(argv[i], "--", 2) == 0)
			continue;
		w[k++] = argv[i];
	}
}

static bool govrelayctl_has(int argc, char **argv, const char *opt)
{
	size_t n = strlen(opt);

	for (int i = 0; i < argc; i++)
		if (strncmp(argv[i], opt, n) == 0 && (argv[i][n] == '\0' || argv[i][n] == '='))
			return true;
	return false;
}

/* ------------------------------------------------------------ remote */

/* Reads all of f into b, at most max bytes: 0, 1 when larger, -errno. */
static int govrelayctl_slurp(FILE *f, struct buf *b, size_t max)
{
	char chunk[65536];
	size_t n;

	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (b->len + n > max)
			return 1;
		buf_append(b, chunk, n);
	}
	return ferror(f) ? -EIO : 0;
}

static bool govrelayctl_parse_uint(const char *s, unsigned long max, unsigned long *v)
{
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	*v = strtoul(s, &end, 10);
	return errno == 0 && *end == '\0' && *v <= max;
}

/* Reads the daemon's frames until "exit CODE" or "error CODE TEXT". */
static int govrelayctl_frames(struct ctlclient *cc, const char *path)
{
	char line[CTLPROTO_LINE_MAX + 1];
	int rc, code = EX_SOFTWARE;

	for (;;) {
		unsigned long v;

		rc = ctlclient_line(cc, line, sizeof line);
		if (rc < 0)
			break;
		if (strncmp(line, "out ", 4) == 0 || strncmp(line, "err ", 4) == 0) {
			if (!govrelayctl_parse_uint(line + 4, CTLPROTO_FRAME_MAX, &v)) {
				rc = -EBADMSG;
				break;
			}
			rc = ctlclient_copy(cc, v, line[0] == 'o' ? stdout : stderr);
			if (rc < 0)
				break;
			continue;
		}
		if (strncmp(line, "exit ", 5) == 0) {
			if (!govrelayctl_parse_uint(line + 5, 255, &v)) {
				rc = -EBADMSG;
				break;
			}
			code = (int)v;
			rc = 0;
			break;
		}
		if (strncmp(line, "error ", 6) == 0) {
			int c;
			const char *text;
			char *shown;
			struct buf b;

			if (ctlproto_reply_parse(line, &c, &text) < 0 || c == 0) {
				rc = -EBADMSG;
				break;
			}
			buf_init(&b);
			buf_append_str(&b, text);
			shown = buf_cstr(&b);
			for (char *p = shown; *p != '\0'; p++)
				if ((unsigned char)*p < 0x20 || *p == 0x7f)
					*p = '?';
			fprintf(stderr, "govrelayctl: govrelayd refused the command: %s\n", shown);
			buf_free(&b);
			code = c;
			rc = 0;
			break;
		}
		rc = -EBADMSG;
		break;
	}
	if (rc == 0)
		return code;
	if (rc == -EAGAIN) {
		fprintf(stderr, "govrelayctl: no answer from govrelayd at %s within %d s; the command "
		    "may or may not have run\n", path, GOVRELAYCTL_REMOTE_TIMEOUT_S);
		return EX_TEMPFAIL;
	}
	if (rc == -EPIPE)
		fprintf(stderr, "govrelayctl: govrelayd at %s closed the connection before the "
		    "command finished\n", path);
	else
		fprintf(stderr, "govrelayctl: bad reply from govrelayd at %s: %s\n", path,
		    rc == -EBADMSG ? "malformed frame" : strerror(-rc));
	return EX_SOFTWARE;
}

/*
 * Connects to control_socket; NULL after a message (exit 69). why says
 * why the command needs the daemon.
 */
static struct ctlclient *govrelayctl_connect(const char *path, const char *why)
{
	struct ctlclient *cc;
	int rc = ctlclient_connect(path, GOVRELAYCTL_REMOTE_TIMEOUT_S, &cc);

	if (rc == -ENAMETOOLONG)
		fprintf(stderr, "govrelayctl: control_socket is not a usable unix socket path\n");
	else if (rc < 0)
		fprintf(stderr, "govrelayctl: cannot reach govrelayd at %s: %s (%s; is it "
		    "running?)\n", path, strerror(-rc), why);
	return rc < 0 ? NULL : cc;
}

/*
 * `user add|passwd` on a terminal: the password, prompted for on the
 * operator's own terminal (never the daemon's), into in with its LF.
 * 0, or an exit code (reported).
 */
static int govrelayctl_prompt(const char *const *w, struct buf *in)
{
	char pw[PASSWD_MAX + 2], why[160];
	size_t len;
	int rc;

	rc = govrelayctl_read_password(stdin, stderr, w[2] != NULL ? w[2] : "the user", pw,
	    sizeof pw, &len, why, sizeof why);
	if (rc != 0) {
		fprintf(stderr, "govrelayctl: %s %s: %s\n", w[0], w[1] != NULL ? w[1] : "", why);
		return rc;
	}
	buf_append(in, pw, len);
	buf_append_char(in, '\n');
	explicit_bzero(pw, sizeof pw);
	return 0;
}

/* Whether the command is `user ...` reading a password from a terminal. */
static bool govrelayctl_prompts(int argc, char **argv, const char *const *w)
{
	return admin_reads_stdin(argc, argv) && w[0] != NULL && strcmp(w[0], "user") == 0 &&
	    isatty(STDIN_FILENO);
}

/*
 * What a remote command sends as its standard input: the file it names
 * (v[file_at] becomes "-" and --label names the file), a password
 * prompted for, or our own standard input. 0 or an exit code (reported).
 */
static int govrelayctl_remote_input(const struct config *cfg, int argc, char **argv, char **v,
    int *n, struct buf *in)
{
	int file_at = admin_file_arg(argc, argv);
	const char *w[3];
	int r;

	govrelayctl_words(argc, argv, w, 3);
	if (file_at >= 0) {
		/* A message to explain is bounded as the relay bounds one (max_message_size). */
		bool message = strcmp(w[0], "policy") == 0;
		size_t max = CTLPROTO_EXEC_MAX - 65536;
		FILE *f = fopen(argv[file_at], "rb");

		if (message && cfg->max_message_size < max)
			max = (size_t)cfg->max_message_size;
		if (f == NULL) {
			fprintf(stderr, "govrelayctl: cannot open \"%s\": %s\n", argv[file_at],
			    strerror(errno));
			return EX_NOINPUT;
		}
		r = govrelayctl_slurp(f, in, max);
		fclose(f);
		if (r > 0 && message) {
			fprintf(stderr, "govrelayctl: \"%s\" is larger than max_message_size (%zu "
			    "bytes): the relay refuses it for its size alone (552 5.3.4)\n",
			    argv[file_at], max);
			return EX_DATAERR;
		}
		if (r != 0) {
			fprintf(stderr, "govrelayctl: cannot send \"%s\": %s\n", argv[file_at],
			    r > 0 ? "larger than 64 MiB; split it" : strerror(-r));
			return r > 0 ? EX_DATAERR : EX_IOERR;
		}
		/* The daemon reads it as stdin; error messages still name the file. */
		v[file_at] = "-";
		if (!message && !govrelayctl_has(argc, argv, "--label")) {
			v[(*n)++] = "--label";
			v[(*n)++] = argv[file_at];
		}
		return 0;
	}
	if (govrelayctl_prompts(argc, argv, w))
		return govrelayctl_prompt(w, in);
	if (!admin_reads_stdin(argc, argv))
		return 0;
	r = govrelayctl_slurp(stdin, in, CTLPROTO_EXEC_MAX - 65536);
	if (r != 0) {
		fprintf(stderr, "govrelayctl: cannot send standard input: %s\n",
		    r > 0 ? "larger than 64 MiB" : strerror(-r));
		return r > 0 ? EX_DATAERR : EX_IOERR;
	}
	return 0;
}

/* Sends one exec request and relays the daemon's answer: an exit code. */
static int govrelayctl_exec(const struct config *cfg, const struct buf *req, const char *why)
{
	struct ctlclient *cc;
	struct buf head;
	int rc;

	if ((cc = govrelayctl_connect(cfg->control_socket, why)) == NULL)
		return EX_UNAVAILABLE;
	buf_init(&head);
	buf_printf(&head, "exec %zu\n", req->len);
	rc = ctlclient_send(cc, head.data, head.len);
	if (rc == 0)
		rc = ctlclient_send(cc, req->data, req->len);
	buf_free(&head);
	/* A daemon that refuses at once closes before reading: read its answer anyway. */
	if (rc < 0 && rc != -EPIPE && rc != -ECONNRESET) {
		fprintf(stderr, "govrelayctl: cannot send to govrelayd at %s: %s\n",
		    cfg->control_socket, strerror(-rc));
		ctlclient_free(cc);
		return rc == -EAGAIN ? EX_TEMPFAIL : EX_UNAVAILABLE;
	}
	rc = govrelayctl_frames(cc, cfg->control_socket);
	ctlclient_free(cc);
	return rc;
}

/*
 * Remote mode: the command, with whatever it reads from standard input
 * (or the file it names), to the daemon; then its output as it comes.
 */
static int govrelayctl_remote(const struct config *cfg, int argc, char **argv, bool explain)
{
	char **v = xcalloc((size_t)argc + 3, sizeof *v);
	struct buf in, req;
	int n = argc, rc;

	buf_init(&in);
	buf_init(&req);
	for (int i = 0; i < argc; i++)
		v[i] = argv[i];
	rc = govrelayctl_remote_input(cfg, argc, argv, v, &n, &in);
	if (rc == 0 && n > CTLPROTO_EXEC_ARGS_MAX) {
		fprintf(stderr, "govrelayctl: too many arguments (at most %d)\n",
		    CTLPROTO_EXEC_ARGS_MAX);
		rc = EX_USAGE;
	}
	if (rc == 0) {
		ctlproto_exec_encode(&req, n, v, in.data, in.len);
		if (req.len > CTLPROTO_EXEC_MAX) {
			fprintf(stderr, "govrelayctl: the command and its input exceed 64 MiB\n");
			rc = EX_DATAERR;
		}
	}
	if (rc == 0)
		rc = govrelayctl_exec(cfg, &req, explain ? "policy explain runs the checks inside "
		    "the daemon, on its own policy engine" : "operators' commands run inside the "
		    "daemon");
	if (in.data != NULL)
		explicit_bzero(in.data, in.cap);
	if (req.data != NULL)
		explicit_bzero(req.data, req.cap);
	buf_free(&in);
	buf_free(&req);
	free(v);
	return rc;
}

/*
 * Root acting on the store itself takes the effective identity of
 * data_dir's owner first (common/datadir.c says why: files LMDB creates
 * must be the daemon user's, and root must not open paths in a folder
 * that user controls). A data_dir that does not exist yet is created for
 * the configured `user` when there is one. 0 or an exit code (reported).
 */
static int govrelayctl_become_owner(const struct config *cfg, struct datadir_saved *saved)
{
	struct datadir_user u;
	char err[1024];
	int rc;

	memset(saved, 0, sizeof *saved);
	if (geteuid() != 0 || cfg == NULL || cfg->data_dir == NULL)
		return 0;
	if (cfg->user != NULL && datadir_lookup_user(cfg->user, &u) == 0 && u.uid != 0) {
		rc = datadir_create_for(cfg->data_dir, &u, err, sizeof err);
		/* A missing parent folder: the engine says so as it always did. */
		if (rc < 0 && rc != -ENOENT) {
			fprintf(stderr, "govrelayctl: %s\n", err);
			return EX_CANTCREAT;
		}
	}
	if (datadir_become_owner(cfg->data_dir, saved, err, sizeof err) < 0) {
		fprintf(stderr, "govrelayctl: %s\n", err);
		return EX_OSERR;
	}
	return 0;
}

/*
 * `mailbox import FILE` run by root as data_dir's owner: FILE is opened
 * here with root's rights first, and handed to the engine as its stdin
 * (as the remote mode does), so a root-only file stays readable.
 * *in is NULL when the command names no file. 0 or an exit code.
 */
static int govrelayctl_open_file_arg(int argc, char **argv, char **v, int *n, FILE **in)
{
	int file_at = admin_file_arg(argc, argv);

	*in = NULL;
	if (file_at < 0 || strcmp(argv[file_at], "-") == 0)
		return 0;
	*in = fopen(argv[file_at], "rb");
	if (*in == NULL) {
		fprintf(stderr, "govrelayctl: cannot open \"%s\": %s\n", argv[file_at],
		    strerror(errno));
		return EX_NOINPUT;
	}
	v[file_at] = "-";
	if (!govrelayctl_has(argc, argv, "--label")) {
		v[(*n)++] = "--label";
		v[(*n)++] = argv[file_at];
	}
	return 0;
}

/* The engine, as data_dir's owner when root (see govrelayctl_become_owner). */
static int govrelayctl_run_engine(struct admin_io *io, int argc, char **argv)
{
	struct datadir_saved saved;
	char **v = xcalloc((size_t)argc + 3, sizeof *v);
	FILE *file = NULL, *old_in = io->in;
	int n = argc, rc;

	for (int i = 0; i < argc; i++)
		v[i] = argv[i];
	rc = geteuid() == 0 && io->cfg != NULL ?
	    govrelayctl_open_file_arg(argc, argv, v, &n, &file) : 0;
	if (rc == 0)
		rc = govrelayctl_become_owner(io->cfg, &saved);
	if (rc == 0) {
		if (file != NULL)
			io->in = file;
		rc = admin_run(io, n, v);
		datadir_restore(&saved);
	}
	io->in = old_in;
	if (file != NULL)
		fclose(file);
	free(v);
	return rc;
}

/*
 * Local mode: the engine in this process. A password is prompted for
 * here (the engine reads only streams) and handed over as its stdin.
 */
static int govrelayctl_local(struct admin_io *io, int argc, char **argv)
{
	const char *w[3];
	struct buf pw;
	FILE *in = NULL;
	int rc;

	govrelayctl_words(argc, argv, w, 3);
	io->super = true;
	if (!govrelayctl_prompts(argc, argv, w))
		return govrelayctl_run_engine(io, argc, argv);
	buf_init(&pw);
	if ((rc = govrelayctl_prompt(w, &pw)) == 0) {
		in = fmemopen(pw.data, pw.len, "r");
		if (in == NULL) {
			fprintf(stderr, "govrelayctl: cannot read the password: %s\n",
			    strerror(errno));
			rc = EX_OSERR;
		}
	}
	if (rc == 0) {
		io->in = in;
		rc = govrelayctl_run_engine(io, argc, argv);
		fclose(in);
	}
	if (pw.data != NULL)
		explicit_bzero(pw.data, pw.cap);
	buf_free(&pw);
	return rc;
}

/* -------------------------------------------------------------- main */

static int govrelayctl_usage(const char *msg, const char *arg)
{
	fprintf(stderr, "govrelayctl: %s%s%s%s\n", msg, arg ? " '" : "", arg ? arg : "",
	    arg ? "'" : "");
	fputs("usage: govrelayctl -c FILE NOUN VERB [ARGS] [--json]; "
	    "'govrelayctl help' lists the commands\n", stderr);
	return EX_USAGE;
}

int main(int argc, char **argv)
{
	struct admin_io io;
	struct config *cfg = NULL;
	const char *config_file = NULL, *w[2];
	char **rest, user[GOVRELAYCTL_USER_MAX];
	int nrest = 0, rc;
	bool help = false, local_only, daemon_only;

	log_open("govrelayctl", true, LOG_FORMAT_TEXT);
	/*
	 * -c FILE anywhere (no verb has an option of that name); --json and
	 * --help stay in the command for the engine; other single-dash
	 * options before NOUN are errors.
	 */
	rest = xcalloc((size_t)argc + 1, sizeof *rest);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0) {
			if (i + 1 == argc) {
				free(rest);
				return govrelayctl_usage("-c needs a FILE", NULL);
			}
			config_file = argv[++i];
			continue;
		}
		if (strcmp(argv[i], "--help") == 0 || (nrest == 0 && strcmp(argv[i], "-h") == 0))
			help = true;
		else if (nrest == 0 && argv[i][0] == '-' && strcmp(argv[i], "--json") != 0) {
			rc = govrelayctl_usage("unknown option", argv[i]);
			free(rest);
			return rc;
		}
		rest[nrest++] = argv[i];
	}
	govrelayctl_words(nrest, rest, w, 2);
	local_only = help || w[0] == NULL || strcmp(w[0], "help") == 0 ||
	    (strcmp(w[0], "config") == 0 && w[1] != NULL && strcmp(w[1], "check") == 0);
	/* The checks run on the daemon's own engine: never here, even for root. */
	daemon_only = !local_only && strcmp(w[0], "policy") == 0 && w[1] != NULL &&
	    strcmp(w[1], "explain") == 0;

	memset(&io, 0, sizeof io);
	io.out = stdout;
	io.err = stderr;
	io.in = stdin;
	io.config_file = config_file;
	io.uid = getuid();
	govrelayctl_whoami(user, sizeof user);
	io.user = user;
	if (!local_only) {
		struct buf errors;

		if (config_file == NULL) {
			free(rest);
			return govrelayctl_usage("-c FILE is required", NULL);
		}
		buf_init(&errors);
		/* `config check` does the full check (the key's readability too). */
		rc = cfg_load_flags(config_file, CFG_LOAD_NO_FILE_CHECKS, &cfg, &errors);
		if (rc != 0) {
			if (errors.len == 0)
				buf_printf(&errors, "%s: cannot load: %s\n", config_file, strerror(-rc));
			fwrite(errors.data, 1, errors.len, stderr);
			buf_free(&errors);
			free(rest);
			return EX_CONFIG;
		}
		buf_free(&errors);
		io.cfg = cfg;
	}
	if (local_only || (!daemon_only && govrelayctl_is_local(cfg))) {
		rc = govrelayctl_local(&io, nrest, rest);
	} else {
		rc = govrelayctl_remote(cfg, nrest, rest, daemon_only);
	}
	cfg_unref(cfg);
	free(rest);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "govrelayctl: cannot write the output: %s\n", strerror(errno));
		if (rc == EX_OK)
			rc = EX_IOERR;
	}
	return rc;
}
