/*
 * queue_admin: the queue changes an operator makes (hold, release,
 * delete, retry, flush), each with its audit record in the same write
 * transaction, so a change and its record are durable together or not
 * at all. The semantics are in queue_admin.h. govrelayd's control socket
 * and govrelayctl's store path both apply changes through here; only the
 * via= audit field tells them apart.
 *
 * Entry points: queue_admin_apply, queue_admin_flush, and the verb
 * vocabulary (queue_admin_verb_name, _action, _has_id, _parse).
 * OWNERSHIP: every argument is borrowed; results are copied into the
 * caller's struct queue_admin_result.
 * THREADS: the thread that owns the transaction (the daemon's writer
 * thread, or govrelayctl's only thread).
 * ERRORS: the queue's negative errno codes (-EIO, -ENOSPC, -EBADMSG);
 * a refusal the operator should hear about (no such message) is a
 * result, not an error.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "queue/audit_event.h"
#include "queue/queue.h"
#include "queue/queue_admin.h"

static const struct queue_admin_verb_def {
	const char *name;
	const char *action; /* the audit and log value */
	bool has_id;
} queue_admin_verbs[] = {
	[QUEUE_ADMIN_HOLD] = { "hold", "queue.hold", true },
	[QUEUE_ADMIN_RELEASE] = { "release", "queue.release", true },
	[QUEUE_ADMIN_DELETE] = { "delete", "queue.delete", true },
	[QUEUE_ADMIN_RETRY] = { "retry", "queue.retry", true },
	[QUEUE_ADMIN_FLUSH] = { "flush", "queue.flush", false },
};

#define QUEUE_ADMIN_NVERBS (sizeof queue_admin_verbs / sizeof queue_admin_verbs[0])

/* The verb's row; an out-of-range verb is a caller's bug. */
static const struct queue_admin_verb_def *queue_admin_verb_def(enum queue_admin_verb verb)
{
	if ((size_t)verb >= QUEUE_ADMIN_NVERBS)
		panic("queue_admin: verb %d out of range", (int)verb);
	return &queue_admin_verbs[verb];
}

const char *queue_admin_verb_name(enum queue_admin_verb verb)
{
	return queue_admin_verb_def(verb)->name;
}

const char *queue_admin_verb_action(enum queue_admin_verb verb)
{
	return queue_admin_verb_def(verb)->action;
}

bool queue_admin_verb_has_id(enum queue_admin_verb verb)
{
	return queue_admin_verb_def(verb)->has_id;
}

int queue_admin_verb_parse(const char *name, enum queue_admin_verb *out)
{
	for (size_t i = 0; i < QUEUE_ADMIN_NVERBS; i++) {
		if (strcmp(name, queue_admin_verbs[i].name) == 0) {
			*out = (enum queue_admin_verb)i;
			return 0;
		}
	}
	return -ENOENT;
}

static void queue_admin_result_init(struct queue_admin_result *out)
{
	out->code = 0;
	out->changed = false;
	out->text[0] = '\0';
}

/* Makes every pending recipient due at now. */
static void queue_admin_due_now(struct queue_msg *m, int64_t now)
{
	for (size_t i = 0; i < m->nrcpts; i++) {
		struct queue_rcpt *r = &m->rcpts[i];

		if (r->state == QUEUE_RCPT_PENDING && r->next_attempt > now)
			r->next_attempt = now;
	}
}

static size_t queue_admin_pending(const struct queue_msg *m)
{
	size_t pending = 0;

	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state == QUEUE_RCPT_PENDING)
			pending++;
	return pending;
}

int queue_admin_apply(struct queue_txn *txn, enum queue_admin_verb verb, uint64_t id,
    int64_t now, const char *by, const char *via, struct queue_admin_result *out)
{
	struct queue_audit_field f[5];
	char qid[QUEUE_ID_TEXT_LEN + 1], npend[24];
	struct queue_msg *m;
	size_t nf = 0, pending;
	int rc;

	if (verb == QUEUE_ADMIN_FLUSH)
		return queue_admin_flush(txn, now, by, via, out);
	(void)queue_admin_verb_def(verb); /* range check */
	queue_admin_result_init(out);
	queue_id_format(id, qid);
	rc = queue_msg_get(txn, id, &m);
	if (rc == -ENOENT) {
		out->code = EX_NOINPUT;
		snprintf(out->text, sizeof out->text, "no such message %s", qid);
		return 0;
	}
	if (rc < 0)
		return rc;
	pending = queue_admin_pending(m);
	switch (verb) {
	case QUEUE_ADMIN_HOLD:
		if (m->held) {
			snprintf(out->text, sizeof out->text, "%s is already held", qid);
			goto out;
		}
		m->held = true;
		snprintf(out->text, sizeof out->text, "%s held", qid);
		break;
	case QUEUE_ADMIN_RELEASE:
		if (!m->held) {
			snprintf(out->text, sizeof out->text, "%s is not held", qid);
			goto out;
		}
		m->held = false;
		/* Released by a person: the check's reason no longer holds it. */
		free(m->hold_reason);
		m->hold_reason = NULL;
		queue_admin_due_now(m, now);
		snprintf(out->text, sizeof out->text,
		    "%s released; %zu pending recipients due now", qid, pending);
		break;
	case QUEUE_ADMIN_RETRY:
		if (pending == 0) {
			snprintf(out->text, sizeof out->text, "%s has no pending recipients", qid);
			goto out;
		}
		if (m->held) {
			snprintf(out->text, sizeof out->text,
			    "%s is held; release it to have it delivered", qid);
			goto out;
		}
		queue_admin_due_now(m, now);
		snprintf(out->text, sizeof out->text, "%s: %zu pending recipients due now",
		    qid, pending);
		break;
	case QUEUE_ADMIN_DELETE:
		snprintf(out->text, sizeof out->text, "%s deleted", qid);
		break;
	case QUEUE_ADMIN_FLUSH:
		break; /* handled above */
	}
	snprintf(npend, sizeof npend, "%zu", pending);
	f[nf++] = (struct queue_audit_field){ "pending", npend };
	if (verb == QUEUE_ADMIN_DELETE) {
		f[nf++] = (struct queue_audit_field){ "sender",
			m->sender != NULL && m->sender[0] != '\0' ? m->sender : "<>" };
		rc = queue_msg_delete(txn, m->id);
	} else {
		/* queue_msg_put keeps the schedule entry in step with held/next. */
		rc = queue_msg_put(txn, m);
	}
	if (rc == 0)
		rc = queue_audit_admin(txn, now, qid, queue_admin_verbs[verb].action, by, via,
		    f, nf);
	/* Only a change that will be committed counts; else the txn aborts. */
	out->changed = rc == 0;
out:
	queue_msg_free(m);
	return rc;
}

struct queue_admin_flush_ids {
	int64_t now;
	uint64_t *ids;
	size_t n, cap;
	size_t held;
};

static int queue_admin_flush_collect(void *arg, const struct queue_msg *m)
{
	struct queue_admin_flush_ids *fl = arg;
	bool later = false;

	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state == QUEUE_RCPT_PENDING && m->rcpts[i].next_attempt > fl->now)
			later = true;
	if (!later)
		return 0; /* nothing pends, or it is due already */
	if (m->held) {
		fl->held++;
		return 0;
	}
	if (fl->n == fl->cap) {
		fl->cap = fl->cap ? fl->cap * 2 : 64;
		fl->ids = xreallocarray(fl->ids, fl->cap, sizeof *fl->ids);
	}
	fl->ids[fl->n++] = m->id;
	return 0;
}

/*
 * The ids are collected first and changed after, so no cursor walks a
 * database that is being written.
 */
int queue_admin_flush(struct queue_txn *txn, int64_t now, const char *by, const char *via,
    struct queue_admin_result *out)
{
	struct queue_admin_flush_ids fl = { now, NULL, 0, 0, 0 };
	struct queue_audit_field f[5];
	char nmsg[24], nheld[24];
	int rc;

	queue_admin_result_init(out);
	rc = queue_msg_walk(txn, queue_admin_flush_collect, &fl);
	for (size_t i = 0; rc == 0 && i < fl.n; i++) {
		struct queue_msg *m;

		rc = queue_msg_get(txn, fl.ids[i], &m);
		if (rc < 0)
			break;
		queue_admin_due_now(m, now);
		rc = queue_msg_put(txn, m);
		queue_msg_free(m);
	}
	free(fl.ids);
	if (rc < 0)
		return rc;
	snprintf(out->text, sizeof out->text, "%zu messages due now (%zu held left alone)",
	    fl.n, fl.held);
	if (fl.n == 0)
		return 0;
	snprintf(nmsg, sizeof nmsg, "%zu", fl.n);
	snprintf(nheld, sizeof nheld, "%zu", fl.held);
	f[0] = (struct queue_audit_field){ "messages", nmsg };
	f[1] = (struct queue_audit_field){ "held", nheld };
	rc = queue_audit_admin(txn, now, NULL, queue_admin_verbs[QUEUE_ADMIN_FLUSH].action,
	    by, via, f, 2);
	out->changed = rc == 0;
	return rc;
}
