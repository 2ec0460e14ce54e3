/*
 * admin/audit_anchor: the audit chain against its signed checkpoints
 * (queue/audit_checkpoint.h, common/checkpoint.h for the line format):
 * `audit verify --checkpoints FILE [--key FILE]` and `audit checkpoint`.
 *
 * verify --checkpoints checks every line of FILE: it must be a checkpoint
 * signed by the key (--key: a PEM public key from `openssl pkey -pubout`,
 * or a private key; without --key the public half of the configured
 * audit_signing_key), then it must hold for the chain: the chain holds
 * the checkpoint's record with the checkpoint's hash. A chain that is
 * empty while a checkpoint is not was emptied; one that ends before a
 * checkpoint's record lost its tail; one whose record at a checkpoint
 * has another hash was rewritten (even if every hash in it was
 * recomputed, which the chain alone cannot show). Each finding is named
 * with the line and record it concerns; any finding exits 65.
 *
 * `audit checkpoint` writes one checkpoint now: inside the running
 * daemon (over control_socket as an exec request, so the daemon's signer
 * and file keep their order), or, when no daemon answers, directly with
 * the configured key, like the queue verbs (admin/queue.c).
 *
 * Entry points: admin__audit_anchor (called by admin__audit_verify in
 * audit.c), admin__audit_checkpoint (admin_int.h).
 * OWNERSHIP: everything allocated is freed before returning.
 * THREADS: any (engine.c). ERRORS: sysexits.h codes: 64 usage, 65 a
 * finding, 66 no checkpoint file, 69 daemon or store unavailable, 78 no
 * key configured.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "admin/admin_int.h"
#include "common/buf.h"
#include "common/checkpoint.h"
#include "common/ctlclient.h"
#include "common/ctlproto.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/audit_checkpoint.h"
#include "queue/audit_query.h"

#define ADMIN_ANCHOR_LINE_MAX 8192 /* a syslog line with a checkpoint in it */
#define ADMIN_ANCHOR_SHOWN 5       /* bad lines named one by one */
#define ADMIN_ANCHOR_TIMEOUT_S 60

/* One checkpoint read from the file, with its line number. */
struct admin_anchor_ent {
	struct ckpt c;
	unsigned line;
};

/* What reading the file found. */
struct admin_anchor {
	struct admin_anchor_ent *v;
	size_t n, cap;
	unsigned bad;       /* lines that are no good checkpoint */
	struct buf problems; /* text lines, for people */
	struct admin_json *j; /* --json: the "problems" array is open in it */
};

static void admin_anchor_problem(struct admin_anchor *an, const char *kind, unsigned line,
    uint64_t seq, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void admin_anchor_problem(struct admin_anchor *an, const char *kind, unsigned line,
    uint64_t seq, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	buf_printf(&an->problems, "%s: %s\n", kind, what);
	if (an->j != NULL) {
		admin__json_open(an->j, NULL, '{');
		admin__json_kstr(an->j, "kind", kind);
		if (line > 0)
			admin__json_kuint(an->j, "line", line);
		admin__json_kuint(an->j, "seq", seq);
		admin__json_kstr(an->j, "what", what);
		admin__json_close(an->j, '}');
	}
}

/* A line that is not a good checkpoint: the first few are named. */
static void admin_anchor_bad(struct admin_anchor *an, const char *kind, unsigned line,
    const char *what)
{
	if (an->bad++ < ADMIN_ANCHOR_SHOWN)
		admin_anchor_problem(an, kind, line, 0, "line %u %s", line, what);
}

static void admin_anchor_line(struct admin_anchor *an, const struct ckpt_key *key,
    const char *text, size_t len, unsigned line)
{
	struct ckpt c;
	int rc;

	if (len == 0)
		return;
	rc = ckpt_parse(text, len, &c);
	if (rc == -ENOENT) {
		admin_anchor_bad(an, "bad-line", line, "is not a checkpoint");
		return;
	}
	if (rc < 0) {
		admin_anchor_bad(an, "bad-line", line, "is a damaged checkpoint (it does not parse)");
		return;
	}
	rc = ckpt_verify(key, text, &c);
	if (rc == -EKEYREJECTED) {
		char what[200];

		snprintf(what, sizeof what, "is signed by key %.16s..., not by key %.16s...",
		    c.key_id, ckpt_key_id(key));
		admin_anchor_bad(an, "other-key", line, what);
		return;
	}
	if (rc < 0) {
		admin_anchor_bad(an, "forged", line, "has a signature that does not verify: it was "
		    "changed or not written by the key's holder");
		return;
	}
	if (an->n == an->cap) {
		an->cap = an->cap ? 2 * an->cap : 64;
		an->v = xreallocarray(an->v, an->cap, sizeof *an->v);
	}
	an->v[an->n].c = c;
	an->v[an->n].line = line;
	an->n++;
}

/* Reads and checks every line of file: 0, or an exit code (reported). */
static int admin_anchor_read(struct admin *a, struct admin_anchor *an, const char *file,
    const struct ckpt_key *key)
{
	char *text = xmalloc(ADMIN_ANCHOR_LINE_MAX);
	unsigned line = 0;
	FILE *f = fopen(file, "r");

	if (f == NULL) {
		admin__err(a, "cannot read the checkpoints %s: %s", file, ADMIN_STRERROR(errno));
		free(text);
		return errno == ENOENT ? EX_NOINPUT : EX_IOERR;
	}
	while (fgets(text, ADMIN_ANCHOR_LINE_MAX, f) != NULL) {
		size_t len = strlen(text);

		line++;
		if (len > 0 && text[len - 1] != '\n' && !feof(f)) {
			int ch;

			/* Longer than any checkpoint could make it: skip the rest. */
			while ((ch = fgetc(f)) != EOF && ch != '\n')
				;
			admin_anchor_bad(an, "bad-line", line, "is too long to be a checkpoint");
			continue;
		}
		while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
			text[--len] = '\0';
		admin_anchor_line(an, key, text, len, line);
	}
	fclose(f);
	free(text);
	return 0;
}

/* Judges every checkpoint against the chain; the worst of each kind is named. */
static int admin_anchor_judge(struct admin *a, struct admin_anchor *an, uint64_t head_seq)
{
	const struct admin_anchor_ent *pick[4] = { NULL, NULL, NULL, NULL };
	uint8_t found[4][CKPT_HASH_LEN];
	size_t count[4] = { 0, 0, 0, 0 };
	struct queue_txn *txn = NULL;
	int rc = 0;

	if (a->store != NULL && (rc = admin__txn(a, &txn)) != 0)
		return rc;
	for (size_t i = 0; i < an->n; i++) {
		const struct admin_anchor_ent *e = &an->v[i];
		enum audit_ckpt_verdict v = AUDIT_CKPT_OK;
		uint8_t h[CKPT_HASH_LEN];

		if (txn != NULL) {
			rc = audit_ckpt_judge(txn, head_seq, &e->c, &v, h);
		} else if (e->c.seq > 0) {
			v = AUDIT_CKPT_EMPTIED; /* no store at all */
		}
		if (rc < 0)
			break;
		count[v]++;
		/* The newest checkpoint past the end says most; the first rewrite, where it starts. */
		if (v != AUDIT_CKPT_OK && (pick[v] == NULL || (v != AUDIT_CKPT_REWRITTEN &&
		    e->c.seq > pick[v]->c.seq))) {
			pick[v] = e;
			memcpy(found[v], h, sizeof h);
		}
	}
	if (txn != NULL)
		queue_txn_abort(txn);
	if (rc < 0) {
		admin__err(a, "cannot read the audit chain: %s", queue_strerror(rc));
		return rc == -EBADMSG ? EX_DATAERR : admin__store_exit(rc);
	}
	if (pick[AUDIT_CKPT_EMPTIED] != NULL)
		admin_anchor_problem(an, "emptied", pick[AUDIT_CKPT_EMPTIED]->line,
		    pick[AUDIT_CKPT_EMPTIED]->c.seq, "the audit chain is empty, but the checkpoint "
		    "on line %u names record %" PRIu64 ": the store was emptied (%zu checkpoints "
		    "fail)", pick[AUDIT_CKPT_EMPTIED]->line, pick[AUDIT_CKPT_EMPTIED]->c.seq,
		    count[AUDIT_CKPT_EMPTIED]);
	if (pick[AUDIT_CKPT_TRUNCATED] != NULL)
		admin_anchor_problem(an, "truncated", pick[AUDIT_CKPT_TRUNCATED]->line,
		    pick[AUDIT_CKPT_TRUNCATED]->c.seq, "the chain ends at record %" PRIu64 ", but "
		    "the checkpoint on line %u names record %" PRIu64 ": at least %" PRIu64
		    " records were cut from the end (%zu checkpoints fail)", head_seq,
		    pick[AUDIT_CKPT_TRUNCATED]->line, pick[AUDIT_CKPT_TRUNCATED]->c.seq,
		    pick[AUDIT_CKPT_TRUNCATED]->c.seq - head_seq, count[AUDIT_CKPT_TRUNCATED]);
	if (pick[AUDIT_CKPT_REWRITTEN] != NULL) {
		char exp[CKPT_HEX_HASH], got[CKPT_HEX_HASH];

		hex_encode(pick[AUDIT_CKPT_REWRITTEN]->c.hash, CKPT_HASH_LEN, exp);
		hex_encode(found[AUDIT_CKPT_REWRITTEN], CKPT_HASH_LEN, got);
		admin_anchor_problem(an, "rewritten", pick[AUDIT_CKPT_REWRITTEN]->line,
		    pick[AUDIT_CKPT_REWRITTEN]->c.seq, "record %" PRIu64 " has hash %s, but the "
		    "checkpoint on line %u names %s: the chain was rewritten up to there (%zu "
		    "checkpoints fail)", pick[AUDIT_CKPT_REWRITTEN]->c.seq, got,
		    pick[AUDIT_CKPT_REWRITTEN]->line, exp, count[AUDIT_CKPT_REWRITTEN]);
	}
	return 0;
}

/* The key to verify with: --key, else the configured signing key's public half. */
static int admin_anchor_key(struct admin *a, const char *keyfile, struct ckpt_key **key)
{
	const char *path = keyfile != NULL ? keyfile : a->io->cfg->audit_signing_key;
	char why[512];
	int rc;

	if (path == NULL) {
		admin__err(a, "no key to verify with: give --key PUBLIC.pem (openssl pkey -in KEY "
		    "-pubout) or set audit_signing_key in %s", a->io->config_file ?
		    a->io->config_file : "the configuration");
		return EX_USAGE;
	}
	if ((rc = ckpt_key_load_public(path, key, why, sizeof why)) < 0) {
		admin__err(a, "%s%s", keyfile != NULL ? "--key: " : "audit_signing_key: ", why);
		return rc == -ENOENT ? EX_NOINPUT : EX_DATAERR;
	}
	return 0;
}

int admin__audit_anchor(struct admin *a, const char *file, const char *keyfile,
    uint64_t head_seq, struct admin_json *j, struct buf *text)
{
	struct admin_anchor an;
	struct ckpt_key *key = NULL;
	int rc;

	if (a->io->remote) {
		admin__err(a, "--checkpoints reads files named on the command line: run it as root "
		    "or as the owner of data_dir");
		return EX_USAGE;
	}
	if ((rc = admin_anchor_key(a, keyfile, &key)) != 0)
		return rc;
	memset(&an, 0, sizeof an);
	buf_init(&an.problems);
	an.j = j;
	if (j != NULL) {
		admin__json_kstr(j, "checkpoint_file", file);
		admin__json_kstr(j, "key", ckpt_key_id(key));
		admin__json_open(j, "problems", '[');
	}
	rc = admin_anchor_read(a, &an, file, key);
	if (rc == 0 && an.bad > ADMIN_ANCHOR_SHOWN)
		admin_anchor_problem(&an, "bad-line", 0, 0, "%u lines in all are no good "
		    "checkpoint", an.bad);
	if (rc == 0 && an.n == 0 && an.bad == 0)
		admin_anchor_problem(&an, "no-checkpoint", 0, 0, "%s holds no checkpoint: "
		    "nothing anchors the chain", file);
	if (rc == 0)
		rc = admin_anchor_judge(a, &an, head_seq);
	if (j != NULL) {
		admin__json_close(j, ']');
		admin__json_kuint(j, "checkpoints", an.n);
		admin__json_kbool(j, "anchored", rc == 0 && an.problems.len == 0);
	}
	if (rc == 0 && an.problems.len > 0)
		rc = EX_DATAERR;
	if ((rc == 0 || rc == EX_DATAERR) && j == NULL) {
		buf_printf(text, "checkpoints: %zu in %s, key %s\n", an.n, file, ckpt_key_id(key));
		if (an.n > 0) {
			const struct ckpt *last = &an.v[an.n - 1].c;
			char tm[ADMIN_TIME_LEN];

			time_format_iso(last->time_ms, tm, sizeof tm);
			buf_printf(text, "newest checkpoint: line %u, seq=%" PRIu64 " at %s\n",
			    an.v[an.n - 1].line, last->seq, tm);
		}
		if (an.problems.len == 0)
			buf_append_str(text, "the chain holds every checkpoint\n");
		else
			buf_append(text, an.problems.data, an.problems.len);
	}
	buf_free(&an.problems);
	free(an.v);
	ckpt_key_free(key);
	return rc;
}

/* -------------------------------------------------------- checkpoint */

static void admin_ckpt_print(struct admin *a, const struct audit_ckpt_res *res,
    const char *file, bool by_daemon)
{
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kuint(&j, "seq", res->seq);
		admin__json_kstr(&j, "hash", res->hash_hex);
		admin__json_kstr(&j, "file", file);
		admin__json_kstr(&j, "line", res->line);
		admin__json_kstr(&j, "written_by", by_daemon ? "daemon" : "store");
		admin__json_end(a, &j);
		return;
	}
	admin__out(a, "audit checkpoint written to %s (%s): seq=%" PRIu64 " hash=%s\n%s\n", file,
	    by_daemon ? "by the running daemon" : "daemon not running: signed here",
	    res->seq, res->hash_hex, res->line);
}

/* One checkpoint with signer c: 0 or an exit code (reported). */
static int admin_ckpt_write(struct admin *a, struct audit_ckpt *c, bool by_daemon)
{
	struct audit_ckpt_res res;
	char why[512];
	int rc;

	if ((rc = admin__store_open(a, false)) != 0)
		return rc;
	if (a->store == NULL) {
		admin__err(a, "there is no store in %s yet: nothing to anchor", a->io->cfg->data_dir);
		return EX_UNAVAILABLE;
	}
	if ((rc = audit_ckpt_write(c, a->store, true, &res, why, sizeof why)) < 0) {
		admin__err(a, "%s", why);
		return rc == -EACCES || rc == -EPERM ? EX_NOPERM : EX_IOERR;
	}
	if (res.mismatch)
		admin__err(a, "warning: the chain does not match the previous checkpoint: %s",
		    res.mismatch_what);
	admin_ckpt_print(a, &res, audit_ckpt_file(c), by_daemon);
	return EX_OK;
}

/* Without a daemon: the configured key and file, in this process. */
static int admin_ckpt_direct(struct admin *a)
{
	const struct config *cfg = a->io->cfg;
	struct audit_ckpt *c;
	struct ckpt_key *key;
	char why[512];
	int rc;

	if (cfg->audit_signing_key == NULL || cfg->audit_checkpoint_file == NULL) {
		admin__err(a, "no audit_signing_key and audit_checkpoint_file in %s: checkpoints are "
		    "off", a->io->config_file ? a->io->config_file : "the configuration");
		return EX_CONFIG;
	}
	if ((rc = ckpt_key_load_private(cfg->audit_signing_key, &key, why, sizeof why)) < 0) {
		admin__err(a, "audit_signing_key: %s", why);
		return EX_CONFIG;
	}
	if ((rc = audit_ckpt_new(key, cfg->audit_checkpoint_file, &c, why, sizeof why)) < 0) {
		admin__err(a, "%s", why);
		return EX_CANTCREAT;
	}
	rc = admin_ckpt_write(a, c, false);
	audit_ckpt_free(c);
	return rc;
}

/* Relays the daemon's exec frames to our streams: an exit code. */
static int admin_ckpt_frames(struct admin *a, struct ctlclient *cc)
{
	char line[CTLPROTO_LINE_MAX + 1];
	int rc;

	for (;;) {
		char *end;
		unsigned long v;

		if ((rc = ctlclient_line(cc, line, sizeof line)) < 0)
			break;
		if (strncmp(line, "out ", 4) == 0 || strncmp(line, "err ", 4) == 0) {
			v = strtoul(line + 4, &end, 10);
			if (*end != '\0' || v > CTLPROTO_FRAME_MAX) {
				rc = -EBADMSG;
				break;
			}
			if ((rc = ctlclient_copy(cc, v, line[0] == 'o' ? a->io->out : a->io->err)) < 0)
				break;
			continue;
		}
		if (strncmp(line, "exit ", 5) == 0) {
			v = strtoul(line + 5, &end, 10);
			return *end == '\0' && v <= 255 ? (int)v : EX_SOFTWARE;
		}
		if (strncmp(line, "error ", 6) == 0) {
			const char *text;
			int code;

			if (ctlproto_reply_parse(line, &code, &text) < 0 || code == 0)
				return EX_SOFTWARE;
			admin__err(a, "govrelayd refused the command: %s", text);
			return code;
		}
		rc = -EBADMSG;
		break;
	}
	admin__err(a, "bad or no reply from govrelayd: %s; the checkpoint may or may not "
	    "have been written", rc == -EBADMSG ? "malformed frame" : ADMIN_STRERROR(-rc));
	return rc == -EAGAIN ? EX_TEMPFAIL : EX_SOFTWARE;
}

/*
 * Asks the running daemon to write it: an exit code, or -1 when no
 * daemon answers at control_socket (then we write it ourselves).
 */
static int admin_ckpt_via_daemon(struct admin *a)
{
	char *argv[3] = { "audit", "checkpoint", "--json" };
	struct ctlclient *cc;
	struct buf req, head;
	int rc = ctlclient_connect(a->io->cfg->control_socket, ADMIN_ANCHOR_TIMEOUT_S, &cc);

	if (rc == -ENOENT || rc == -ECONNREFUSED)
		return -1;
	if (rc < 0) {
		admin__err(a, "cannot reach the daemon at %s: %s", a->io->cfg->control_socket,
		    ADMIN_STRERROR(-rc));
		return rc == -EACCES || rc == -EPERM ? EX_NOPERM : EX_UNAVAILABLE;
	}
	buf_init(&req);
	buf_init(&head);
	ctlproto_exec_encode(&req, a->json ? 3 : 2, argv, NULL, 0);
	buf_printf(&head, "exec %zu\n", req.len);
	rc = ctlclient_send(cc, head.data, head.len);
	if (rc == 0)
		rc = ctlclient_send(cc, req.data, req.len);
	buf_free(&head);
	buf_free(&req);
	/* A daemon that refuses at once closes before reading: its answer is still there. */
	if (rc < 0 && rc != -EPIPE && rc != -ECONNRESET) {
		admin__err(a, "cannot send to the daemon: %s", ADMIN_STRERROR(-rc));
		ctlclient_free(cc);
		return EX_UNAVAILABLE;
	}
	rc = admin_ckpt_frames(a, cc);
	ctlclient_free(cc);
	return rc;
}

int admin__audit_checkpoint(struct admin *a, const struct admin_args *args)
{
	struct audit_ckpt *c;
	int rc;

	(void)args;
	if (a->io->remote) {
		/* We are the daemon: its signer keeps the file's order. */
		if ((c = audit_ckpt_daemon()) == NULL) {
			admin__err(a, "the running daemon has no audit_signing_key: checkpoints are off");
			return EX_CONFIG;
		}
		return admin_ckpt_write(a, c, true);
	}
	if ((rc = admin_ckpt_via_daemon(a)) >= 0)
		return rc;
	return admin_ckpt_direct(a);
}
