/*
 * admin/store: the engine's access to the store, and the one place that
 * decides who writes. Reads open a read transaction on the calling
 * thread. Every change is an apply function (admin_apply_fn) handed to
 * admin__write: in the daemon (io->writer set) it runs on the queue
 * writer thread, inside that thread's group-committed batch, while the
 * calling pool thread waits for it to be durable (ARCHITECTURE.md: one
 * LMDB writer thread); in govrelayctl's own process it runs in a write
 * transaction of its own (LMDB serializes writers across processes). The
 * audit record of a change is written by the same apply, so it commits or
 * vanishes with the change.
 *
 * Entry points: admin__store_exit, admin__fail, admin__store_open,
 * admin__txn, admin__write, admin__audit, admin__deny_record (admin_int.h).
 * OWNERSHIP: a->store is io->store (borrowed) or opened here and closed
 * by admin_run's cleanup.
 * THREADS: the caller's, except the apply of admin__write, which may run
 * on the queue writer thread while the caller waits (so it may touch a and
 * io as if it were the caller). ERRORS: sysexits.h codes, reported.
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
#include "queue/audit_event.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

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

	admin__prefix(a, f);
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

/* Opens a->store (read-write when write) unless it is open enough. */
static int admin_store_ready(struct admin *a, bool write)
{
	int rc;

	if (a->store == NULL || (write && !a->store_rw)) {
		if ((rc = admin__store_open(a, write)) != 0)
			return rc;
	}
	if (a->store == NULL) {
		admin__err(a, "no store in %s yet", a->io->cfg->data_dir);
		return EX_UNAVAILABLE;
	}
	return 0;
}

static int admin_txn_begin(struct admin *a, bool write, struct queue_txn **txn)
{
	int rc;

	*txn = NULL;
	if ((rc = admin_store_ready(a, write)) != 0)
		return rc;
	rc = queue_txn_begin(a->store, write, txn);
	if (rc < 0) {
		*txn = NULL;
		admin__err(a, "cannot %s the store: %s", write ? "write" : "read",
		    queue_strerror(rc));
		return admin__store_exit(rc);
	}
	return 0;
}

int admin__txn(struct admin *a, struct queue_txn **txn)
{
	return admin_txn_begin(a, false, txn);
}

/* One admin__write on the writer thread: the apply and its exit code. */
struct admin_write_op {
	struct admin *a;
	admin_apply_fn *apply;
	void *arg;
	int exit; /* -1 until the apply ran */
};

/*
 * Writer thread, inside the batch's child transaction: a nonzero exit
 * code becomes a negative status so the writer rolls the child back.
 */
static int admin_write_apply(struct queue_txn *txn, void *arg)
{
	struct admin_write_op *op = arg;

	op->exit = op->apply(op->a, txn, op->arg);
	return op->exit == 0 ? 0 : -ECANCELED;
}

static int admin_write_writer(struct admin *a, admin_apply_fn *apply, void *arg,
    const char *what)
{
	struct admin_write_op op = { a, apply, arg, -1 };
	int rc = queue_writer_run_sync(a->io->writer, admin_write_apply, &op);

	if (op.exit > 0)
		return op.exit;
	if (rc == -ESHUTDOWN) {
		admin__err(a, "cannot commit %s: govrelayd is stopping; run the command again",
		    what);
		return EX_TEMPFAIL;
	}
	if (rc < 0) {
		admin__err(a, "cannot commit %s: %s", what, queue_strerror(rc));
		return admin__store_exit(rc);
	}
	return 0;
}

int admin__write(struct admin *a, admin_apply_fn *apply, void *arg, const char *what)
{
	struct queue_txn *txn;
	int rc;

	if (a->io->writer != NULL) {
		if ((rc = admin_store_ready(a, true)) != 0)
			return rc;
		return admin_write_writer(a, apply, arg, what);
	}
	if ((rc = admin_txn_begin(a, true, &txn)) != 0)
		return rc;
	if ((rc = apply(a, txn, arg)) != 0) {
		queue_txn_abort(txn);
		return rc;
	}
	rc = queue_txn_commit(txn);
	if (rc < 0) {
		admin__err(a, "cannot commit %s: %s", what, queue_strerror(rc));
		return admin__store_exit(rc);
	}
	return 0;
}

/* ------------------------------------------------------------ audit */

int admin__audit(const struct admin *a, struct queue_txn *txn, const char *tenant,
    const char *object, const struct queue_audit_field *extra, size_t nextra)
{
	struct queue_audit_field *f = xcalloc(nextra + 2, sizeof *f);
	char action[64];
	size_t nf = 0;
	int rc;

	snprintf(action, sizeof action, "%s%s%s", a->cmd->noun, a->cmd->verb[0] ? "." : "",
	    a->cmd->verb);
	f[nf++] = (struct queue_audit_field){ "tenant",
		tenant != NULL && tenant[0] != '\0' ? tenant : NULL };
	f[nf++] = (struct queue_audit_field){ "object", object };
	for (size_t i = 0; i < nextra; i++)
		f[nf++] = extra[i];
	rc = queue_audit_admin(txn, time_now_ms(), NULL, action, a->user, a->via, f, nf);
	free(f);
	return rc;
}

/*
 * The refusal's audit record (action=denied), an apply of its own: the
 * handler's transaction (if any) was aborted, and a refusal must leave
 * a trace even though nothing changed.
 */
static int admin_deny_apply(struct admin *a, struct queue_txn *txn, void *arg)
{
	char command[64];
	int rc;

	(void)arg;
	snprintf(command, sizeof command, "%s%s%s", a->cmd->noun, a->cmd->verb[0] ? " " : "",
	    a->cmd->verb);
	const struct queue_audit_field f[] = {
		{ "command", command },
		{ "tenant", a->deny_tenant[0] != '\0' ? a->deny_tenant : NULL },
		{ "reason", a->deny_reason },
	};
	rc = queue_audit_admin(txn, time_now_ms(), NULL, "denied", a->user, a->via, f, 3);
	if (rc < 0) {
		admin__err(a, "cannot record the refusal in the audit chain: %s",
		    queue_strerror(rc));
		return admin__store_exit(rc);
	}
	return 0;
}

void admin__deny_record(struct admin *a)
{
	if (admin__store_open(a, true) != 0 || a->store == NULL)
		return;
	(void)admin__write(a, admin_deny_apply, NULL, "the refusal's audit record");
}
