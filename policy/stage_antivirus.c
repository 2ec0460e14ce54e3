/*
 * stage_antivirus: the "antivirus" row of policy/checks.c. When the
 * `clamd` key is set, every message, on every listener (mail from our own
 * users can carry a virus as well as mail from outside), is streamed to
 * clamd as the client sent it (clamd decodes MIME and archives itself)
 * through policy/clamd.c, and the DATA stage waits for its answer:
 *
 *   found      REJECT 554 5.7.1; the reply says a virus was found and does
 *              not name it (the sender learns nothing about our signatures),
 *              the log line and the audit record (note virus=NAME) do;
 *   clean      CONTINUE;
 *   error      TEMPFAIL 451 4.7.1, the reason logged: clamd unreachable,
 *              closed, slower than clamd_timeout, or answering ERROR (a
 *              message over its StreamMaxLength included). The gateway
 *              fails closed: no message passes unscanned.
 *
 * The connection opens with the first body piece (tx_new only makes the
 * scan), so clamd reads the message while the client is still sending it
 * and the DATA stage waits only for the end of the stream and the scan.
 *
 * Entry points: stage_antivirus_new/free (the row), _tx_new, _body,
 * _tx_free (per message), _run (DATA).
 * OWNERSHIP: the row state holds the parsed target and timeout; each
 * message state copies them (it never points at the row, which a reload
 * may free first). A message state is owned by its transaction; when the
 * transaction ends while the DATA stage still waits (RSET after a
 * timeout, a disconnect, a shutdown), tx_free closes the scan at once and
 * answers the engine from a zero-delay timer (never from inside tx_free,
 * which the session calls while it tears the transaction down); the state
 * is freed when that timer has closed.
 * THREADS: loop thread only.
 * ERRORS: a configuration whose clamd value does not parse refuses to
 * build (policy_new); every scan failure is a TEMPFAIL with its reason
 * in the log.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/check.h"
#include "policy/clamd.h"

policy_check_new_fn stage_antivirus_new;
policy_check_free_fn stage_antivirus_free;
policy_check_run_fn stage_antivirus_run;
policy_check_tx_new_fn stage_antivirus_tx_new;
policy_check_body_fn stage_antivirus_body;
policy_check_tx_free_fn stage_antivirus_tx_free;

/*
 * The message reaches the body hook a line or a chunk at a time; it goes
 * to clamd in pieces of this size (one write, one INSTREAM chunk each),
 * not a write per line: 660 writes for a 50 KB message cost the relay
 * 0.8 ms of CPU, and clamd as much again to take them.
 */
#define STAGE_AV_BATCH (64u * 1024u)

/* Without a configuration (tools, tests): the key's default. */
#define STAGE_AV_DEFAULT_TIMEOUT_MS 30000

struct stage_av {
	bool enabled;
	struct clamd_target target;
	uint64_t timeout_ms;
};

struct stage_av_tx {
	struct policy_tx *tx;           /* NULL once detached */
	struct clamd_scan *scan;        /* NULL once closed */
	struct policy_call *call;       /* the DATA stage waiting, or NULL */
	uv_loop_t *loop;
	uv_timer_t defer;               /* answers a detached call */
	char session_id[64];
	struct buf batch;               /* body bytes not yet handed to clamd */
};

int stage_antivirus_new(const struct config *cfg, void **state, char *err, size_t errlen)
{
	struct stage_av *av = xcalloc(1, sizeof *av);

	av->timeout_ms = cfg != NULL ? cfg->clamd_timeout : STAGE_AV_DEFAULT_TIMEOUT_MS;
	if (cfg != NULL && cfg->clamd != NULL) {
		if (clamd_target_parse(cfg->clamd, &av->target, err, errlen) < 0) {
			free(av);
			return -EINVAL;
		}
		av->enabled = true;
	}
	*state = av;
	return 0;
}

void stage_antivirus_free(void *state)
{
	free(state);
}

void *stage_antivirus_tx_new(void *state, struct policy_tx *tx)
{
	struct stage_av *av = state;
	struct stage_av_tx *t;

	if (av == NULL || !av->enabled)
		return NULL;
	t = xcalloc(1, sizeof *t);
	t->tx = tx;
	t->loop = policy_loop(policy_tx_policy(tx));
	t->scan = clamd_scan_new(t->loop, &av->target, av->timeout_ms);
	buf_init(&t->batch);
	return t;
}

static void stage_av_flush(struct stage_av_tx *t)
{
	if (t->scan != NULL && t->batch.len > 0)
		clamd_scan_write(t->scan, t->batch.data, t->batch.len);
	buf_reset(&t->batch);
}

void stage_antivirus_body(void *txstate, const char *data, size_t len)
{
	struct stage_av_tx *t = txstate;

	if (t->scan == NULL)
		return;
	if (t->batch.len + len > STAGE_AV_BATCH)
		stage_av_flush(t);
	if (len >= STAGE_AV_BATCH)
		clamd_scan_write(t->scan, data, len);
	else
		buf_append(&t->batch, data, len);
}

static void stage_av_defer_closed(uv_handle_t *h)
{
	free(h->data);
}

/* The transaction is gone: the DATA stage still gets its one answer. */
static void stage_av_defer_cb(uv_timer_t *timer)
{
	struct stage_av_tx *t = timer->data;
	struct policy_call *call = t->call;
	struct verdict v;

	t->call = NULL;
	policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.7.1",
	    "Message not scanned for viruses (the transaction ended), try again later");
	policy_call_complete(call, &v);
	uv_close((uv_handle_t *)&t->defer, stage_av_defer_closed);
}

void stage_antivirus_tx_free(void *txstate)
{
	struct stage_av_tx *t = txstate;

	t->tx = NULL;
	clamd_scan_close(t->scan);
	t->scan = NULL;
	buf_free(&t->batch);
	if (t->call == NULL) {
		free(t);
		return;
	}
	/*
	 * Decisive, so the engine stops here and no later row reads the
	 * transaction that is being freed; from the loop, not from here.
	 */
	uv_timer_init(t->loop, &t->defer);
	t->defer.data = t;
	uv_timer_start(&t->defer, stage_av_defer_cb, 0, 0);
}

static void stage_av_done(void *arg, const struct clamd_result *r)
{
	struct stage_av_tx *t = arg;
	struct policy_call *call = t->call;
	struct verdict v;

	t->call = NULL;
	switch (r->status) {
	case CLAMD_CLEAN:
		policy_tx_note(t->tx, "antivirus", "clean");
		policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "no virus found");
		break;
	case CLAMD_FOUND:
		log_event(LOG_LVL_WARN, t->session_id, "event", "virus", "check", "antivirus",
		    "virus", r->text, NULL);
		policy_tx_note(t->tx, "antivirus", "found");
		policy_tx_note(t->tx, "virus", "%s", r->text);
		/* RFC 3463 5.7.1: refused by policy; the name stays with us. */
		policy_verdict_set(&v, VERDICT_REJECT, 554, "5.7.1",
		    "Message refused: a virus was found in it");
		break;
	case CLAMD_ERROR:
	default:
		log_event(LOG_LVL_WARN, t->session_id, "event", "virus_scan_failed", "check",
		    "antivirus", "reason", r->text, NULL);
		policy_tx_note(t->tx, "antivirus", "error");
		policy_tx_note(t->tx, "antivirus_error", "%s", r->text);
		/* Fail closed: a message that could not be scanned does not pass. */
		policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.7.1",
		    "Message not accepted now: the virus scanner is unavailable, try again later");
		break;
	}
	policy_call_complete(call, &v);
}

void stage_antivirus_run(struct policy_call *call, const struct policy_request *req,
    void *state)
{
	struct stage_av_tx *t = policy_call_tx_state(call);
	const struct stage_av *av = state;
	struct verdict v;

	if (av == NULL || !av->enabled) {
		policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "no virus scanner configured");
		policy_call_complete(call, &v);
		return;
	}
	if (t == NULL || t->scan == NULL || t->call != NULL) {
		/* Configured, but no message was streamed: it is not let through. */
		log_warn(req->session_id, "antivirus: no message state to scan at stage %s",
		    policy_stage_name(req->stage));
		policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.7.1",
		    "Message not accepted now: it could not be scanned for viruses, try again later");
		policy_call_complete(call, &v);
		return;
	}
	str_copy(t->session_id, req->session_id != NULL ? req->session_id : "",
	    sizeof t->session_id);
	t->call = call;
	stage_av_flush(t);
	/* May answer at once (clamd failed while the message came in). */
	clamd_scan_finish(t->scan, stage_av_done, t);
}
