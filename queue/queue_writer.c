/*
 * queue_writer: the daemon's only LMDB writer, a thread that applies
 * queued operations in batches and makes each batch durable with one
 * commit (group commit, ARCHITECTURE.md step 5; DEPENDENCIES.md 6 has
 * the numbers: one fsync per batch instead of one per message).
 *
 * Entry points: queue_writer_start, queue_writer_submit,
 * queue_writer_run_sync, queue_writer_pending, queue_writer_ref,
 * queue_writer_unref, queue_writer_stop.
 *
 * queue_writer_run_sync is for threads that may block (the thread pool
 * running a delegated admin command): its op joins the same FIFO and the
 * same batches as the loop's, so the daemon keeps one LMDB writer, and
 * the calling thread sleeps on a condition variable until the batch
 * holding its op is durable. The writer thread completes such ops itself.
 * OWNERSHIP: the writer owns its op records (a run_sync op is its
 * caller's, on its stack); the caller's arg is borrowed until its done
 * callback has run (run_sync: until it returns). The writer is freed in
 * the close callback of its async handle, after queue_writer_stop, or
 * at the last queue_writer_unref if references remain then.
 * THREADS: start, submit, pending, ref, unref and stop on the loop
 * thread; run_sync on any other thread but the writer's; done
 * callbacks run on the loop thread; apply functions run on the writer
 * thread (or, for operations submitted from done callbacks during stop,
 * on the loop thread after the writer thread has been joined).
 * ERRORS: an op's status is its apply's return value, or the error of the
 * batch's begin or commit (-ENOSPC when the map is full, -EIO).
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/queue_writer.h"

/*
 * Upper bound on one batch: beyond this a batch only delays the first
 * op's reply while the fsync is already amortized (a few ms of work).
 */
#define QUEUE_WRITER_BATCH_MAX 1024

struct queue_writer_op {
	struct queue_writer_op *next;
	queue_apply_fn *apply;
	queue_done_fn *done;
	void *arg;
	int status;
	/*
	 * A queue_writer_run_sync op: lives on the waiting thread's stack,
	 * completed by the writer thread itself (finished, under lock, then
	 * a broadcast of synced), never by the loop thread.
	 */
	bool sync;
	bool finished;
};

/* A singly linked FIFO with a tail pointer for O(1) append. */
struct queue_writer_list {
	struct queue_writer_op *head;
	struct queue_writer_op **tail;
};

struct queue_writer {
	uv_loop_t *loop;
	struct queue_store *store;
	uv_async_t async;
	uv_thread_t thread;
	uv_mutex_t lock;
	uv_cond_t wake;           /* todo became non-empty, or stopping */
	uv_cond_t synced;         /* a run_sync op finished */
	uv_thread_t loop_thread;  /* run_sync refuses to block it */
	/* Under lock: */
	struct queue_writer_list todo;
	struct queue_writer_list done;
	bool stopping;
	/* Loop thread only: */
	size_t pending;
	bool thread_running;
	bool closed;
	bool handle_closed;       /* the async handle's close callback ran */
	unsigned refs;            /* queue_writer_ref holders: delay the free */
};

static void queue_writer_list_init(struct queue_writer_list *l)
{
	l->head = NULL;
	l->tail = &l->head;
}

static void queue_writer_list_push(struct queue_writer_list *l, struct queue_writer_op *op)
{
	op->next = NULL;
	*l->tail = op;
	l->tail = &op->next;
}

/* Moves all of src to the end of dst. */
static void queue_writer_list_splice(struct queue_writer_list *dst,
    struct queue_writer_list *src)
{
	if (src->head == NULL)
		return;
	*dst->tail = src->head;
	dst->tail = src->tail;
	queue_writer_list_init(src);
}

/* Detaches up to max ops from the front of src into out. */
static void queue_writer_list_take(struct queue_writer_list *src, size_t max,
    struct queue_writer_list *out)
{
	struct queue_writer_op *op;

	queue_writer_list_init(out);
	while (max-- > 0 && (op = src->head) != NULL) {
		src->head = op->next;
		if (src->head == NULL)
			src->tail = &src->head;
		queue_writer_list_push(out, op);
	}
}

/*
 * The next batch of src: up to max ops, but a run_sync op always makes
 * a batch of its own. Such ops come from long admin work (a batch of an
 * import): alone, they never delay the commit of the small ops queued
 * around them (a 250 waits for at most the one sync op being applied).
 */
static void queue_writer_take_batch(struct queue_writer_list *src, size_t max,
    struct queue_writer_list *out)
{
	size_t n = 0;

	for (struct queue_writer_op *op = src->head; op != NULL && n < max; op = op->next) {
		if (op->sync) {
			if (n == 0)
				n = 1;
			break;
		}
		n++;
	}
	queue_writer_list_take(src, n, out);
}

/*
 * Applies one batch in one write transaction, each op inside its own
 * child transaction so a failing op is rolled back alone, then commits
 * once. Statuses are written into the ops.
 */
static void queue_writer_apply_batch(struct queue_store *store,
    struct queue_writer_list *batch)
{
	struct queue_txn *parent, *child;
	struct queue_writer_op *op;
	int rc;

	rc = queue_txn_begin(store, true, &parent);
	if (rc < 0) {
		for (op = batch->head; op != NULL; op = op->next)
			op->status = rc;
		return;
	}
	for (op = batch->head; op != NULL; op = op->next) {
		rc = queue__txn_begin_child(parent, &child);
		if (rc < 0) {
			op->status = rc;
			continue;
		}
		rc = op->apply(child, op->arg);
		if (rc < 0) {
			queue_txn_abort(child);
		} else {
			/* Only a negative errno is a failure; 0 and up succeed. */
			rc = queue_txn_commit(child);
		}
		op->status = rc;
	}
	rc = queue_txn_commit(parent);
	if (rc < 0) {
		/*
		 * Nothing of the batch is durable. Ops that failed on their
		 * own keep their more precise error; the others get the
		 * commit's (-ENOSPC when the map filled up at commit).
		 */
		for (op = batch->head; op != NULL; op = op->next)
			if (op->status >= 0)
				op->status = rc;
	} else {
		for (op = batch->head; op != NULL; op = op->next)
			if (op->status > 0)
				op->status = 0;
	}
}

/*
 * Completes the run_sync ops of an applied batch: they leave the batch
 * (their waiters own them) and their waiters wake. Under w->lock.
 */
static void queue_writer_finish_sync(struct queue_writer *w, struct queue_writer_list *batch)
{
	struct queue_writer_list rest;
	struct queue_writer_op *op, *next;
	bool any = false;

	queue_writer_list_init(&rest);
	for (op = batch->head; op != NULL; op = next) {
		next = op->next;
		if (op->sync) {
			op->finished = true;
			any = true;
		} else {
			queue_writer_list_push(&rest, op);
		}
	}
	*batch = rest;
	if (batch->head == NULL)
		batch->tail = &batch->head;
	if (any)
		uv_cond_broadcast(&w->synced);
}

static void queue_writer_thread(void *arg)
{
	struct queue_writer *w = arg;
	struct queue_writer_list batch;

	uv_mutex_lock(&w->lock);
	for (;;) {
		while (w->todo.head == NULL && !w->stopping)
			uv_cond_wait(&w->wake, &w->lock);
		/* Stop only once everything submitted has been applied. */
		if (w->todo.head == NULL)
			break;
		queue_writer_take_batch(&w->todo, QUEUE_WRITER_BATCH_MAX, &batch);
		uv_mutex_unlock(&w->lock);

		queue_writer_apply_batch(w->store, &batch);

		uv_mutex_lock(&w->lock);
		queue_writer_finish_sync(w, &batch);
		if (batch.head != NULL) {
			queue_writer_list_splice(&w->done, &batch);
			uv_async_send(&w->async);
		}
	}
	uv_mutex_unlock(&w->lock);
}

/*
 * Runs the done callbacks of every completed op, in submission order.
 * Ops are taken one at a time, so a callback that calls
 * queue_writer_stop (which runs the rest) cannot reorder completions.
 */
static void queue_writer_run_done(struct queue_writer *w)
{
	struct queue_writer_list one;

	for (;;) {
		uv_mutex_lock(&w->lock);
		queue_writer_list_take(&w->done, 1, &one);
		uv_mutex_unlock(&w->lock);
		if (one.head == NULL)
			break;
		w->pending--;
		if (one.head->done != NULL)
			one.head->done(one.head->arg, one.head->status);
		free(one.head);
	}
}

static void queue_writer_async_cb(uv_async_t *handle)
{
	queue_writer_run_done(handle->data);
}

static void queue_writer_free(struct queue_writer *w)
{
	uv_cond_destroy(&w->synced);
	uv_cond_destroy(&w->wake);
	uv_mutex_destroy(&w->lock);
	free(w);
}

static void queue_writer_close_cb(uv_handle_t *handle)
{
	struct queue_writer *w = handle->data;

	w->handle_closed = true;
	if (w->refs == 0)
		queue_writer_free(w);
}

int queue_writer_start(uv_loop_t *loop, struct queue_store *store,
    struct queue_writer **out)
{
	struct queue_writer *w;
	int rc;

	*out = NULL;
	if (store->readonly)
		return -EROFS;
	w = xcalloc(1, sizeof *w);
	w->loop = loop;
	w->store = store;
	queue_writer_list_init(&w->todo);
	queue_writer_list_init(&w->done);
	if ((rc = uv_mutex_init(&w->lock)) < 0)
		goto fail_mutex;
	if ((rc = uv_cond_init(&w->wake)) < 0)
		goto fail_cond;
	if ((rc = uv_cond_init(&w->synced)) < 0)
		goto fail_synced;
	w->loop_thread = uv_thread_self();
	if ((rc = uv_async_init(loop, &w->async, queue_writer_async_cb)) < 0)
		goto fail_async;
	w->async.data = w;
	if ((rc = uv_thread_create(&w->thread, queue_writer_thread, w)) < 0) {
		/* The handle exists now: it can only go through uv_close. */
		uv_close((uv_handle_t *)&w->async, queue_writer_close_cb);
		return rc;
	}
	w->thread_running = true;
	*out = w;
	return 0;

fail_async:
	uv_cond_destroy(&w->synced);
fail_synced:
	uv_cond_destroy(&w->wake);
fail_cond:
	uv_mutex_destroy(&w->lock);
fail_mutex:
	free(w);
	return rc;
}

void queue_writer_submit(struct queue_writer *w, queue_apply_fn *apply,
    queue_done_fn *done, void *arg)
{
	struct queue_writer_op *op;

	if (w->closed)
		panic("queue_writer_submit after queue_writer_stop finished");
	op = xcalloc(1, sizeof *op);
	op->apply = apply;
	op->done = done;
	op->arg = arg;
	w->pending++;
	uv_mutex_lock(&w->lock);
	queue_writer_list_push(&w->todo, op);
	uv_cond_signal(&w->wake);
	uv_mutex_unlock(&w->lock);
}

size_t queue_writer_pending(const struct queue_writer *w)
{
	return w->pending;
}

int queue_writer_run_sync(struct queue_writer *w, queue_apply_fn *apply, void *arg)
{
	struct queue_writer_op op;
	uv_thread_t self = uv_thread_self();

	/* The loop thread would wait for a commit whose completion it runs. */
	if (uv_thread_equal(&self, &w->loop_thread))
		panic("queue_writer_run_sync called on the loop thread");
	memset(&op, 0, sizeof op);
	op.apply = apply;
	op.arg = arg;
	op.sync = true;
	uv_mutex_lock(&w->lock);
	if (w->stopping) {
		uv_mutex_unlock(&w->lock);
		return -ESHUTDOWN;
	}
	/* Only while it runs: a joined thread's id may be reused by another. */
	if (uv_thread_equal(&self, &w->thread))
		panic("queue_writer_run_sync called on the writer thread");
	queue_writer_list_push(&w->todo, &op);
	uv_cond_signal(&w->wake);
	while (!op.finished)
		uv_cond_wait(&w->synced, &w->lock);
	uv_mutex_unlock(&w->lock);
	return op.status;
}

void queue_writer_ref(struct queue_writer *w)
{
	w->refs++;
}

void queue_writer_unref(struct queue_writer *w)
{
	if (w->refs == 0)
		panic("queue_writer_unref without a reference");
	if (--w->refs == 0 && w->handle_closed)
		queue_writer_free(w);
}

void queue_writer_stop(struct queue_writer *w)
{
	struct queue_writer_list batch;

	if (w->thread_running) {
		uv_mutex_lock(&w->lock);
		w->stopping = true;
		uv_cond_signal(&w->wake);
		uv_mutex_unlock(&w->lock);
		/* The thread drains todo before it sees stopping. */
		uv_thread_join(&w->thread);
		w->thread_running = false;
	}
	queue_writer_run_done(w);
	/*
	 * A done callback may have submitted more work (a DSN for a bounce,
	 * an audit record). With the thread gone, this thread is the only
	 * writer left, so it applies the rest itself until nothing is left.
	 */
	for (;;) {
		uv_mutex_lock(&w->lock);
		queue_writer_list_take(&w->todo, QUEUE_WRITER_BATCH_MAX, &batch);
		uv_mutex_unlock(&w->lock);
		if (batch.head == NULL)
			break;
		queue_writer_apply_batch(w->store, &batch);
		uv_mutex_lock(&w->lock);
		queue_writer_finish_sync(w, &batch);
		queue_writer_list_splice(&w->done, &batch);
		uv_mutex_unlock(&w->lock);
		queue_writer_run_done(w);
	}
	w->closed = true;
	uv_close((uv_handle_t *)&w->async, queue_writer_close_cb);
}
