/*
 * stage_dkim_verify: DKIM verification of inbound mail (RFC 6376; RFC 8463
 * ed25519-sha256 and rsa-sha256 alike), the "dkim_verify" row of
 * policy/checks.c, with libopendkim doing the canonicalization and the
 * cryptography. It runs on mx listeners for every client, trusted agency
 * servers included: a signature is a claim about the message, not about
 * the connection, and DMARC needs the result whoever handed the message
 * over.
 *
 * Per message: tx_new makes the state; the body hook assembles the header
 * section (at most 256 KiB: past that the message is not verified and the
 * audit record says why), and at its end creates the libopendkim handle,
 * feeds it every field, ends the header and starts one asynchronous TXT
 * lookup of SELECTOR._domainkey.DOMAIN per distinct key through the
 * daemon's resolver (policy_resolve, on the loop). Body pieces are then
 * hashed as they arrive, by policy/dkim_canon.c (or by dkim_body when a
 * signature has l=): cheap and incremental. At DATA the check waits for
 * the lookups (their callbacks count down), then runs dkim_eom, whose
 * final callback (dkim_verify_pubkey.c) checks each signature with a key
 * parsed once per record and cached. That work does not grow with the
 * message; it runs on the loop when it is known to be small, otherwise
 * on the libuv thread pool (stage_dkimv_inline_ok). libopendkim's key
 * lookup callback is answered from the lookups' results and its own
 * resolver is never used (the callback always answers; the query method
 * is a file, /dev/null, so a fall-through finds no key).
 *
 * The results (d=, s=, algorithm, result, header.b prefix, why) go into
 * policy_tx_authres(tx)->dkim[] for DMARC and our Authentication-Results
 * field, and one audit note "dkim" per signature. The verdict is always
 * CONTINUE: DMARC decides what the results mean; trouble of our own is a
 * note, not a refusal.
 *
 * Entry points: stage_dkim_verify_new/free (the DKIM_LIB), _tx_new,
 * _body, _tx_free (per message), _run (DATA).
 * OWNERSHIP: the row state is reference counted by the engine and every
 * message state, so a reload or shutdown that frees the row while dkim_eom
 * still runs on the thread pool leaves the library alive until it ends.
 * A message state is reference counted by its transaction, its key
 * lookups in flight and its thread-pool job: the engine may time the check
 * out and the session free the transaction while those are in flight;
 * tx_free then detaches the state (nothing touches the transaction again)
 * and the last reference frees it.
 * THREADS: loop thread, except dkim_eom and the key callback, which run on
 * the thread pool while the loop leaves the message state alone (phase
 * EOM). The DKIM_LIB is shared by threads, as libopendkim allows.
 * ERRORS: none reach the client: DNS trouble is temperror for that
 * signature, a missing key permerror, a library failure a note.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/dkim_verify_int.h"

policy_check_new_fn stage_dkim_verify_new;
policy_check_free_fn stage_dkim_verify_free;
policy_check_run_fn stage_dkim_verify_run;
policy_check_tx_new_fn stage_dkim_verify_tx_new;
policy_check_body_fn stage_dkim_verify_body;
policy_check_tx_free_fn stage_dkim_verify_tx_free;

#define STAGE_DKIMV_HEADER_MAX (256u * 1024u)
/*
 * How long the DATA stage waits for key lookups still out (they started
 * at the end of the header section, so most are back by then): the
 * client is waiting for its reply, and a key that slow is a temperror,
 * not a reason to hold the session (or a shutdown) for the whole DNS
 * timeout.
 */
#define STAGE_DKIMV_KEY_WAIT_MS 8000

static void stage_dkimv_lib_unref(struct stage_dkimv_lib *sl)
{
	if (--sl->refs > 0)
		return;
	if (sl->lib != NULL)
		dkim_close(sl->lib);
	stage_dkimv__keycache_free(sl->keys);
	free(sl);
}

/* The library set up so that it never resolves anything itself. */
static int stage_dkimv_lib_setup(struct stage_dkimv_lib *sl, char *err, size_t errlen)
{
	unsigned int flags = DKIM_LIBFLAGS_DELAYSIGPROC | DKIM_LIBFLAGS_BADSIGHANDLES;
	int qm = DKIM_QUERY_FILE;
	static const char nokeys[] = "/dev/null";

	sl->keys = stage_dkimv__keycache_new();
	sl->lib = dkim_init(NULL, NULL);
	if (sl->lib == NULL) {
		snprintf(err, errlen, "dkim_verify: libopendkim would not start");
		return -ENOMEM;
	}
	/*
	 * DELAYSIGPROC: without it dkim_eoh fetches keys and checks the
	 * header hash at once, on the loop, before our lookups ran.
	 * BADSIGHANDLES: a malformed DKIM-Signature field is still listed,
	 * so it is reported (permerror) rather than silently dropped.
	 */
	if (dkim_options(sl->lib, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags,
	    sizeof flags) != DKIM_STAT_OK ||
	    dkim_options(sl->lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYMETHOD, &qm,
	    sizeof qm) != DKIM_STAT_OK ||
	    dkim_options(sl->lib, DKIM_OP_SETOPT, DKIM_OPTS_QUERYINFO, (void *)nokeys,
	    strlen(nokeys)) != DKIM_STAT_OK ||
	    dkim_set_key_lookup(sl->lib, stage_dkimv__key_lookup) != DKIM_STAT_OK ||
	    dkim_set_final(sl->lib, stage_dkimv__final) != DKIM_STAT_OK) {
		snprintf(err, errlen, "dkim_verify: libopendkim refused its options");
		return -EINVAL;
	}
	return 0;
}

int stage_dkim_verify_new(const struct config *cfg, void **state, char *err, size_t errlen)
{
	struct stage_dkimv_lib *sl = xcalloc(1, sizeof *sl);
	int rc;

	sl->refs = 1;
	sl->enabled = cfg == NULL || cfg->dkim_verify;
	if (sl->enabled && (rc = stage_dkimv_lib_setup(sl, err, errlen)) < 0) {
		stage_dkimv_lib_unref(sl);
		return rc;
	}
	*state = sl;
	return 0;
}

void stage_dkim_verify_free(void *state)
{
	if (state != NULL)
		stage_dkimv_lib_unref(state);
}

void *stage_dkim_verify_tx_new(void *state, struct policy_tx *tx)
{
	struct stage_dkimv_lib *sl = state;
	struct stage_dkimv_tx *t;

	if (sl == NULL || !sl->enabled)
		return NULL;
	t = xcalloc(1, sizeof *t);
	t->sl = sl;
	sl->refs++;
	t->tx = tx;
	t->p = policy_tx_policy(tx);
	t->refs = 1;
	t->phase = STAGE_DKIMV_PH_HEADER;
	t->len_relaxed.relaxed = true;
	return t;
}

static void stage_dkimv_free(struct stage_dkimv_tx *t)
{
	dkim_body_canon_free(&t->body_simple);
	dkim_body_canon_free(&t->body_relaxed);
	if (t->dkim != NULL)
		dkim_free(t->dkim);
	free(t->hdr);
	stage_dkimv_lib_unref(t->sl);
	free(t);
}

void stage_dkimv__unref(struct stage_dkimv_tx *t)
{
	if (--t->refs == 0)
		stage_dkimv_free(t);
}

void stage_dkim_verify_tx_free(void *txstate)
{
	struct stage_dkimv_tx *t = txstate;

	t->detached = true;
	t->tx = NULL;
	stage_dkimv__unref(t);
}

/* Verification ends early: say why once the DATA stage reports. */
static void stage_dkimv_stop(struct stage_dkimv_tx *t, const char *why)
{
	str_copy(t->stop_reason, why, sizeof t->stop_reason);
	t->phase = STAGE_DKIMV_PH_DONE;
	free(t->hdr);
	t->hdr = NULL;
	t->hlen = t->hcap = 0;
}

/* Is the field at f (len bytes) a DKIM-Signature field? (RFC 5322 2.2 names) */
static bool stage_dkimv_is_sigfield(const char *f, size_t len)
{
	static const char name[] = "DKIM-Signature";
	size_t n = sizeof name - 1, i;

	if (len <= n || strncasecmp(f, name, n) != 0)
		return false;
	for (i = n; i < len && (f[i] == ' ' || f[i] == '\t'); i++)
		continue;
	return i < len && f[i] == ':';
}

/*
 * Calls fn for every field of the header section h (hlen bytes, the blank
 * line excluded): "Name: value" with its folding kept and no final line
 * end, as dkim_header wants. A line that starts with WSP continues the
 * field before it (RFC 5322 2.2.3).
 */
static void stage_dkimv_fields(struct stage_dkimv_tx *t, const char *h, size_t hlen,
    void (*fn)(struct stage_dkimv_tx *, const char *, size_t))
{
	size_t start = 0, pos = 0;

	while (pos < hlen) {
		const char *nl = memchr(h + pos, '\n', hlen - pos);
		size_t next = nl != NULL ? (size_t)(nl - h) + 1 : hlen;

		if (next < hlen && (h[next] == ' ' || h[next] == '\t')) {
			pos = next;
			continue;
		}
		/* The field is [start, next) less its final CRLF or LF. */
		{
			size_t end = next;

			if (end > start && h[end - 1] == '\n')
				end--;
			if (end > start && h[end - 1] == '\r')
				end--;
			if (end > start)
				fn(t, h + start, end - start);
		}
		start = pos = next;
	}
}

static void stage_dkimv_count_sig(struct stage_dkimv_tx *t, const char *f, size_t len)
{
	if (stage_dkimv_is_sigfield(f, len))
		t->nsigfields++;
}

static void stage_dkimv_feed_field(struct stage_dkimv_tx *t, const char *f, size_t len)
{
	/* A field libopendkim finds malformed is left out of its view only. */
	(void)dkim_header(t->dkim, (unsigned char *)f, len);
}

/*
 * The header section is complete (hlen bytes, blank line excluded): no
 * signature, nothing to do; else the handle, the fields, the end of the
 * header and the key lookups.
 */
/* Our body hashes, one per body canonicalization the signatures use. */
static void stage_dkimv_own_bh(struct stage_dkimv_tx *t)
{
	if (t->want_len)
		return;
	for (int i = 0; i < t->nsigs && i < STAGE_DKIMV_MAX_SIGS; i++) {
		dkim_canon_t hc = DKIM_CANON_SIMPLE, bc = DKIM_CANON_SIMPLE;

		if (dkim_sig_getcanons(t->sigs[i], &hc, &bc) != DKIM_STAT_OK)
			continue;
		if (bc == DKIM_CANON_RELAXED)
			t->want_relaxed = true;
		else
			t->want_simple = true;
	}
	if ((t->want_simple && dkim_body_canon_init(&t->body_simple, false) < 0) ||
	    (t->want_relaxed && dkim_body_canon_init(&t->body_relaxed, true) < 0))
		return;   /* OpenSSL failed: libopendkim hashes, as with l= */
	t->own_bh = true;
}

static void stage_dkimv_eoh(struct stage_dkimv_tx *t, size_t hlen)
{
	DKIM_STAT st;

	stage_dkimv_fields(t, t->hdr, hlen, stage_dkimv_count_sig);
	if (t->nsigfields == 0) {
		stage_dkimv_stop(t, "");
		return;
	}
	t->dkim = dkim_verify(t->sl->lib, (const unsigned char *)"govrelay", NULL, &st);
	if (t->dkim == NULL) {
		stage_dkimv_stop(t, "internal error: libopendkim would not verify");
		return;
	}
	dkim_set_user_context(t->dkim, t);
	stage_dkimv_fields(t, t->hdr, hlen, stage_dkimv_feed_field);
	st = dkim_eoh(t->dkim);
	if (dkim_getsiglist(t->dkim, &t->sigs, &t->nsigs) != DKIM_STAT_OK ||
	    t->nsigs <= 0) {
		char why[120];
		const char *e = dkim_geterror(t->dkim);

		snprintf(why, sizeof why, "header section not verifiable: %s",
		    e != NULL && e[0] != '\0' ? e : dkim_getresultstr(st));
		stage_dkimv_stop(t, why);
		return;
	}
	t->phase = STAGE_DKIMV_PH_BODY;
	stage_dkimv__keys_start(t);
	stage_dkimv_own_bh(t);
}

/* Where the header section ends in hdr (after its blank line), or 0. */
static size_t stage_dkimv_find_eoh(const struct stage_dkimv_tx *t, size_t from)
{
	const char *h = t->hdr;

	/* A message that starts with its blank line has no header fields. */
	if (from == 0 && t->hlen >= 1 && h[0] == '\n')
		return 1;
	if (from == 0 && t->hlen >= 2 && h[0] == '\r' && h[1] == '\n')
		return 2;
	for (size_t i = from; i < t->hlen; i++) {
		if (h[i] != '\n')
			continue;
		if (i + 1 < t->hlen && h[i + 1] == '\n')
			return i + 2;
		if (i + 2 < t->hlen && h[i + 1] == '\r' && h[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static void stage_dkimv_body_piece(struct stage_dkimv_tx *t, const char *data, size_t len)
{
	if (len == 0)
		return;
	if (t->own_bh) {
		if (t->want_simple)
			dkim_body_canon_feed(&t->body_simple, data, len);
		if (t->want_relaxed)
			dkim_body_canon_feed(&t->body_relaxed, data, len);
		return;
	}
	if (t->want_len) {
		stage_dkimv__bodylen_feed(&t->len_simple, data, len);
		stage_dkimv__bodylen_feed(&t->len_relaxed, data, len);
	}
	(void)dkim_body(t->dkim, (unsigned char *)data, len);
}

/* Header bytes: kept (bounded) until the blank line, then the rest is body. */
static void stage_dkimv_header_piece(struct stage_dkimv_tx *t, const char *data, size_t len)
{
	size_t take = len, from = t->hlen > 2 ? t->hlen - 2 : 0, end, hdrlen;

	if (take > STAGE_DKIMV_HEADER_MAX + 3 - t->hlen)
		take = STAGE_DKIMV_HEADER_MAX + 3 - t->hlen;
	if (t->hlen + take > t->hcap) {
		size_t cap = t->hcap ? t->hcap : 4096;

		while (cap < t->hlen + take)
			cap *= 2;
		t->hdr = xrealloc(t->hdr, cap);
		t->hcap = cap;
	}
	memcpy(t->hdr + t->hlen, data, take);
	t->hlen += take;
	end = stage_dkimv_find_eoh(t, from);
	if (end == 0) {
		if (t->hlen > STAGE_DKIMV_HEADER_MAX)
			stage_dkimv_stop(t, "header section over 256 KiB: not verified");
		return;
	}
	/* The header fields without the blank line; what follows is body. */
	hdrlen = end - (end >= 2 && t->hdr[end - 2] == '\r' ? 2 : 1);
	if (hdrlen > STAGE_DKIMV_HEADER_MAX) {
		stage_dkimv_stop(t, "header section over 256 KiB: not verified");
		return;
	}
	{
		size_t rest_in_buf = t->hlen - end;

		stage_dkimv_eoh(t, hdrlen);
		if (t->phase != STAGE_DKIMV_PH_BODY)
			return;
		stage_dkimv_body_piece(t, t->hdr + end, rest_in_buf);
		stage_dkimv_body_piece(t, data + take, len - take);
		free(t->hdr);
		t->hdr = NULL;
		t->hlen = t->hcap = 0;
	}
}

void stage_dkim_verify_body(void *txstate, const char *data, size_t len)
{
	struct stage_dkimv_tx *t = txstate;

	switch (t->phase) {
	case STAGE_DKIMV_PH_HEADER:
		stage_dkimv_header_piece(t, data, len);
		break;
	case STAGE_DKIMV_PH_BODY:
		stage_dkimv_body_piece(t, data, len);
		break;
	case STAGE_DKIMV_PH_EOM:
	case STAGE_DKIMV_PH_DONE:
		break;
	}
}

/* Thread pool: the body hashes close and every signature is checked. */
static void stage_dkimv_work(uv_work_t *w)
{
	struct stage_dkimv_tx *t = w->data;

	t->eom_status = dkim_eom(t->dkim, NULL);
	t->eom_ran = true;
}

static void stage_dkimv_complete(struct stage_dkimv_tx *t)
{
	struct policy_call *call = t->call;
	struct verdict v;

	t->call = NULL;
	if (!t->detached)
		stage_dkimv__report(t);
	policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "dkim verified");
	policy_call_complete(call, &v);
}

static void stage_dkimv_after_work(uv_work_t *w, int status)
{
	struct stage_dkimv_tx *t = w->data;

	(void)status;   /* never cancelled: uv_cancel is not used */
	t->phase = STAGE_DKIMV_PH_DONE;
	stage_dkimv_complete(t);
	stage_dkimv__unref(t);
}

static void stage_dkimv_timer_closed(uv_handle_t *h)
{
	stage_dkimv__unref(h->data);
}

/* The DATA stage has waited long enough: the keys still out are temperror. */
static void stage_dkimv_key_wait_cb(uv_timer_t *timer)
{
	struct stage_dkimv_tx *t = timer->data;

	t->gave_up = true;
	stage_dkimv__keys_done(t);
}

/* The DATA stage waits for keys, at most STAGE_DKIMV_KEY_WAIT_MS. */
static void stage_dkimv_key_wait(struct stage_dkimv_tx *t)
{
	uv_timer_init(policy_loop(t->p), &t->timer);
	t->timer.data = t;
	t->timer_on = true;
	t->refs++;   /* dropped when the timer handle has closed */
	uv_timer_start(&t->timer, stage_dkimv_key_wait_cb, STAGE_DKIMV_KEY_WAIT_MS, 0);
}

/*
 * May dkim_eom run here, on the loop? Its work does not grow with the
 * message (the body was hashed as it came): it is one public-key check
 * per signature. When at most two signatures need one and their keys are
 * parsed already and cheap (tens of µs each, as the signer's inline
 * Ed25519), the hand-off to a pool thread and back costs more than the
 * work itself; a key seen for the first time (its parse is the costly
 * part), an 8192-bit RSA key or more signatures go to the pool.
 */
static bool stage_dkimv_inline_ok(const struct stage_dkimv_tx *t)
{
	int checks = 0;

	for (int i = 0; i < t->nsigs && i < STAGE_DKIMV_MAX_SIGS; i++) {
		const struct stage_dkimv_sig *s = &t->sig[i];

		if (s->preset != AUTHRES_NOT_RUN || s->key < 0)
			continue;
		if (++checks > 2 || t->keys[s->key].state != STAGE_DKIMV_KEY_OK ||
		    !stage_dkimv__keycache_cheap(t->sl->keys, t->keys[s->key].txt))
			return false;
	}
	return true;
}

/*
 * Every key is known or given up on, and the DATA stage waits: dkim_eom
 * runs, on the loop when that is cheap, else on the thread pool. Called
 * from each lookup's callback, the wait timer and the DATA stage itself;
 * acts once.
 */
void stage_dkimv__keys_done(struct stage_dkimv_tx *t)
{
	int rc;

	if (t->call == NULL || (t->pending > 0 && !t->gave_up) ||
	    t->phase != STAGE_DKIMV_PH_BODY)
		return;
	if (t->timer_on) {
		t->timer_on = false;
		uv_close((uv_handle_t *)&t->timer, stage_dkimv_timer_closed);
	}
	if (t->detached) {
		/* Nobody will read the results: answer the engine, skip the work. */
		t->phase = STAGE_DKIMV_PH_DONE;
		stage_dkimv_complete(t);
		return;
	}
	stage_dkimv__keys_preset(t);
	if (stage_dkimv_inline_ok(t)) {
		t->eom_on_loop = true;
		t->eom_status = dkim_eom(t->dkim, NULL);
		t->eom_ran = true;
		t->phase = STAGE_DKIMV_PH_DONE;
		stage_dkimv_complete(t);
		return;
	}
	t->phase = STAGE_DKIMV_PH_EOM;
	t->work.data = t;
	t->refs++;
	rc = uv_queue_work(policy_loop(t->p), &t->work, stage_dkimv_work, stage_dkimv_after_work);
	if (rc < 0) {
		t->refs--;
		t->phase = STAGE_DKIMV_PH_DONE;
		snprintf(t->stop_reason, sizeof t->stop_reason,
		    "internal error: no worker for dkim_eom: %s", uv_strerror(rc));
		stage_dkimv_complete(t);
	}
}

void stage_dkim_verify_run(struct policy_call *call, const struct policy_request *req,
    void *state)
{
	struct stage_dkimv_tx *t = policy_call_tx_state(call);
	struct verdict v;

	(void)req;
	(void)state;
	if (t != NULL && t->phase == STAGE_DKIMV_PH_HEADER) {
		/* The message ended inside its header section: all header, no body. */
		if (t->hlen > STAGE_DKIMV_HEADER_MAX) {
			stage_dkimv_stop(t, "header section over 256 KiB: not verified");
		} else if (t->hlen > 0) {
			size_t h = t->hlen;

			if (h >= 1 && t->hdr[h - 1] == '\n')
				h--;
			if (h >= 1 && t->hdr[h - 1] == '\r')
				h--;
			stage_dkimv_eoh(t, h);
		} else {
			stage_dkimv_stop(t, "");
		}
	}
	if (t == NULL || t->phase != STAGE_DKIMV_PH_BODY || t->call != NULL) {
		if (t != NULL && !t->detached)
			stage_dkimv__report(t);
		policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "dkim verified");
		policy_call_complete(call, &v);
		return;
	}
	t->call = call;
	if (t->pending > 0)
		stage_dkimv_key_wait(t);
	stage_dkimv__keys_done(t);
}
