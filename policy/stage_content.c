/*
 * stage_content: what a message shows its reader, checked before the 250
 * (issue 11): its MIME structure and its state-secret markings. The body
 * hook feeds the MIME walker (policy/mime.h) as DATA streams in; each
 * part's header fields (Subject:, SIO-Label:; for DLP also the text of
 * the address fields, Comments:, Keywords:), file name and text (in
 * UTF-8, HTML reduced to its text) go to the classification finder
 * (policy/classify.h) at once, in fixed memory; so does the text outside
 * the parts (preamble, epilogue), which leaves with the message.
 * Attached documents (policy/doctext.h's kinds, recognised by content)
 * are kept and read on the thread pool at end of data (policy/doctext.h),
 * since a document's text needs the whole file. The DATA run decides:
 *   - a MIME limit crossed or a structure two readers would read
 *     differently: 554 5.6.0, saying which;
 *   - a marking at or above classified_min_level of an agency the
 *     message concerns (the sender's and every recipient's; the strictest
 *     wins): 550 5.7.1 in Vietnamese then English, and a "classified"
 *     audit record with the level and where it was found, or the
 *     quarantine when every such agency says classified_action=quarantine.
 *
 * What the agencies say is read by policy/stage_content_agency.c, the
 * verdict and its words are policy/stage_content_verdict.c's.
 *
 * Entry points (policy/checks.c): stage_content_run (RCPT: which agencies;
 * DATA: the verdict), stage_content_tx_new, _body, _tx_free.
 * OWNERSHIP: the per-message state is reference counted: the transaction
 * holds one reference, a document read in flight another, so the state
 * outlives whichever ends first; tx_free detaches it from the transaction.
 * THREADS: everything on the loop thread but sc_docs_work, which reads
 * only the documents (the loop does not touch them meanwhile).
 * ERRORS: a store read that fails is a tempfail (451 4.3.0); a document
 * that cannot be read is not a verdict (its kind is noted), since its
 * reader would not see a stamp in it either.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/content_cache.h"
#include "policy/stage_content_int.h"
#include "queue/queue.h"

policy_check_new_fn stage_content_new;
policy_check_free_fn stage_content_free;
policy_check_run_fn stage_content_run;
policy_check_tx_new_fn stage_content_tx_new;
policy_check_body_fn stage_content_body;
policy_check_tx_free_fn stage_content_tx_free;


static void sc_free(struct sc_tx *t)
{
	mime_free(t->walker);
	mime_text_free(t->conv);
	classify_text_free(t->ct);
	mime_text_free(t->outside_conv);
	classify_text_free(t->outside_ct);
	for (size_t i = 0; i < t->ndocs; i++) {
		free(t->docs[i].name);
		buf_free(&t->docs[i].data);
	}
	free(t->docs);
	for (size_t i = 0; i < t->ntenants; i++)
		free(t->tenants[i]);
	free(t->tenants);
	free(t->sender_tenant);
	buf_free(&t->exts);
	for (size_t i = 0; i < t->nscans; i++) {
		dlp_scan_free(t->scans[i]);
		dlp_ruleset_free(t->rulesets[i]);
	}
	free(t->auth_user);
	free(t->sender);
	free(t);
}

static void sc_unref(struct sc_tx *t)
{
	if (--t->refs == 0)
		sc_free(t);
}

/* A marking found: the highest level wins, the first place it was seen names it. */
static void sc_found(struct sc_tx *t, enum classify_level level, enum classify_where where,
    const char *in)
{
	if (level <= t->level)
		return;
	t->level = level;
	t->where = where;
	str_copy(t->found_in, in != NULL ? in : "", sizeof t->found_in);
}

/* ------------------------------------------------------------- text */

/*
 * Text a reader sees, in UTF-8: the stamp finder reads its first lines,
 * the DLP rules all of it.
 */
static void sc_emit(struct sc_tx *t, const char *utf8, size_t len)
{
	if (!classify_text_is_done(t->ct))
		classify_text_feed(t->ct, utf8, len);
	for (size_t i = 0; i < t->nscans; i++)
		dlp_scan_text(t->scans[i], utf8, len);
}

static void sc_emit_cb(void *arg, const char *utf8, size_t len)
{
	sc_emit(arg, utf8, len);
}

/* The part's text, in UTF-8, from the charset converter. */
static void sc_text_out(void *arg, const char *utf8, size_t len)
{
	struct sc_tx *t = arg;

	if (t->html)
		html_text_feed(&t->hs, utf8, len, sc_emit_cb, t);
	else
		sc_emit(t, utf8, len);
}

/*
 * Text outside the parts, in UTF-8: no reader is meant to show it, but
 * a reader that does not know MIME shows all, and it leaves with the
 * message: a stamp in it counts, and the DLP rules read it.
 */
static void sc_outside_out(void *arg, const char *utf8, size_t len)
{
	struct sc_tx *t = arg;

	if (!classify_text_is_done(t->outside_ct))
		classify_text_feed(t->outside_ct, utf8, len);
	for (size_t i = 0; i < t->nscans; i++)
		dlp_scan_text(t->scans[i], utf8, len);
}

static void sc_outside_close(struct sc_tx *t)
{
	char in[64];

	if (t->outside_ct == NULL)
		return;
	mime_text_finish(t->outside_conv, sc_outside_out, t);
	for (size_t i = 0; i < t->nscans; i++)
		dlp_scan_text_end(t->scans[i]);
	snprintf(in, sizeof in, "part %u, outside its parts", t->outside_part);
	sc_found(t, classify_text_level(t->outside_ct), CLASSIFY_IN_TEXT, in);
	classify_text_free(t->outside_ct);
	mime_text_free(t->outside_conv);
	t->outside_ct = NULL;
	t->outside_conv = NULL;
}

static void sc_mime_outside(void *arg, const struct mime_part *part, const char *data,
    size_t len)
{
	struct sc_tx *t = arg;

	if (t->outside_ct != NULL && t->outside_part != part->index)
		sc_outside_close(t);
	if (t->outside_ct == NULL) {
		t->outside_conv = mime_text_new(part->charset);
		t->outside_ct = classify_text_new();
		t->outside_part = part->index;
	}
	if (!classify_text_is_done(t->outside_ct) || t->nscans > 0)
		mime_text_feed(t->outside_conv, data, len, sc_outside_out, t);
}

/* -------------------------------------------------------- documents */

static void sc_doc_keep(struct sc_tx *t, bool whole)
{
	char name[64];

	t->docs = xreallocarray(t->docs, t->ndocs + 1, sizeof *t->docs);
	t->doc = &t->docs[t->ndocs++];
	memset(t->doc, 0, sizeof *t->doc);
	buf_init(&t->doc->data);
	if (t->part_name != NULL) {
		t->doc->name = xstrdup(t->part_name);
	} else {
		snprintf(name, sizeof name, "part %u", t->part_index);
		t->doc->name = xstrdup(name);
	}
	t->doc->whole = whole;
	buf_append(&t->doc->data, t->sniff, t->nsniff);
}

/*
 * A part declared text whose content is a document or an archive: a
 * reader saves it under its name (bao-cao.docx) and opens it as one, so
 * it is read as one. Text never holds the control bytes of a binary
 * header; a PDF may be all ASCII, but then starts with its signature.
 */
static bool sc_text_is_file(const char *head, size_t len)
{
	if (!content_attach_wants_whole(head, len))
		return false;
	if (len >= 5 && memcmp(head, "%PDF-", 5) == 0)
		return true;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)head[i] < 0x09)
			return true;
	return false;
}

/* Whether the head read is kept as an attachment, and whole. */
static bool sc_sniff_keep(const struct sc_tx *t, bool *whole)
{
	*whole = content_attach_wants_whole(t->sniff, t->nsniff);
	return !t->sniff_text || sc_text_is_file(t->sniff, t->nsniff);
}

/*
 * The head of an attachment (or of a text part): once SC_SNIFF_MAX bytes
 * are in (or the part ends), it is kept, and so is the rest when it is
 * an archive or a document; a text part's only when it is one. Memory: a
 * head per part (bounded by the part count), and the archives and
 * documents, bounded by the message size.
 */
static void sc_sniff(struct sc_tx *t, const char *data, size_t len)
{
	size_t take = len < SC_SNIFF_MAX - t->nsniff ? len : SC_SNIFF_MAX - t->nsniff;
	bool whole;

	memcpy(t->sniff + t->nsniff, data, take);
	t->nsniff += take;
	if (t->nsniff < SC_SNIFF_MAX)
		return;
	t->sniffing = false;
	if (!sc_sniff_keep(t, &whole))
		return;
	sc_doc_keep(t, whole);
	if (whole)
		buf_append(&t->doc->data, data + take, len - take);
	else
		t->doc = NULL;
}

/* ------------------------------------------------------ MIME events */

/* One piece of a header field's text to every DLP scan, as a name is. */
static void sc_dlp_piece(void *arg, const char *utf8, size_t len)
{
	struct sc_tx *t = arg;

	for (size_t i = 0; i < t->nscans; i++)
		dlp_scan_name(t->scans[i], utf8, len);
}

/*
 * Header fields whose text the sender writes and readers show, besides
 * the Subject: DLP reads them. Trace, identifier and authentication
 * fields (Received, Message-ID, DKIM-Signature, ...) are machine-made and
 * full of numbers, so they are not read.
 */
static bool sc_is_address_field(const char *name)
{
	static const char *const names[] = { "From", "Sender", "Reply-To", "To", "Cc",
		"Bcc", "Resent-From", "Resent-Sender", "Resent-To", "Resent-Cc" };

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcasecmp(name, names[i]) == 0)
			return true;
	return false;
}

static bool sc_is_text_field(const char *name)
{
	return strcasecmp(name, "Comments") == 0 || strcasecmp(name, "Keywords") == 0 ||
	    strcasecmp(name, "Content-Description") == 0;
}

static void sc_mime_header(void *arg, const struct mime_part *part, const char *name,
    const char *value, size_t len)
{
	struct sc_tx *t = arg;
	char decoded[1024], in[32];
	size_t n;

	snprintf(in, sizeof in, "part %u", part->index);
	if (strcasecmp(name, "Subject") == 0) {
		n = mime_decode_words(value, len, decoded, sizeof decoded);
		sc_found(t, classify_subject(decoded, n), CLASSIFY_IN_SUBJECT,
		    part->index == 0 ? "Subject" : in);
		/* Every reader shows the Subject (a forwarded message's too): DLP reads it. */
		for (size_t i = 0; i < t->nscans; i++)
			dlp_scan_name(t->scans[i], decoded, n);
	} else if (strcasecmp(name, "SIO-Label") == 0) {
		sc_found(t, classify_sio_label(value, len), CLASSIFY_IN_SIO_LABEL,
		    part->index == 0 ? "SIO-Label" : in);
	} else if (t->nscans > 0 && sc_is_address_field(name)) {
		mime_address_text(value, len, sc_dlp_piece, t);
	} else if (t->nscans > 0 && sc_is_text_field(name)) {
		n = mime_decode_words(value, len, decoded, sizeof decoded);
		sc_dlp_piece(t, decoded, n);
	}
}

static void sc_mime_begin(void *arg, const struct mime_part *part)
{
	struct sc_tx *t = arg;

	sc_outside_close(t);
	if (part->filename != NULL) {
		enum attach_category cat = attach_category_of_name(part->filename);

		/* A text part's name counts too: Windows runs "x.bat" by its name. */
		if (cat > t->name_category) {
			t->name_category = cat;
			str_copy(t->name_found, part->filename, sizeof t->name_found);
		}
		sc_found(t, classify_filename(part->filename, strlen(part->filename)),
		    CLASSIFY_IN_FILENAME, part->filename);
		if (t->ext_found[0] == '\0' && content_attach_ext_blocked(buf_cstr(&t->exts),
		    part->filename, t->ext_found_ext, sizeof t->ext_found_ext))
			str_copy(t->ext_found, part->filename, sizeof t->ext_found);
		for (size_t i = 0; i < t->nscans; i++)
			dlp_scan_name(t->scans[i], part->filename, strlen(part->filename));
	}
	if (part->multipart || part->message)
		return;
	t->part_name = part->filename;
	t->part_index = part->index;
	t->sniffing = true;
	t->nsniff = 0;
	t->sniff_text = strncmp(part->type, "text/", 5) == 0;
	if (t->sniff_text) {
		t->conv = mime_text_new(part->charset);
		t->ct = classify_text_new();
		t->html = strcmp(part->type, "text/html") == 0;
		memset(&t->hs, 0, sizeof t->hs);
	}
}

static void sc_mime_data(void *arg, const struct mime_part *part, const char *data, size_t len)
{
	struct sc_tx *t = arg;

	(void)part;
	if (t->ct != NULL) {
		/*
		 * Past the lines where a stamp is typed, only DLP rules still
		 * read the text: without any, it is not even converted.
		 */
		if (!classify_text_is_done(t->ct) || t->nscans > 0)
			mime_text_feed(t->conv, data, len, sc_text_out, t);
	}
	if (t->doc != NULL)
		buf_append(&t->doc->data, data, len);
	else if (t->sniffing)
		sc_sniff(t, data, len);
}

static void sc_mime_end(void *arg, const struct mime_part *part)
{
	struct sc_tx *t = arg;
	char in[32];
	bool whole;

	sc_outside_close(t);
	if (t->ct != NULL) {
		mime_text_finish(t->conv, sc_text_out, t);
		for (size_t i = 0; i < t->nscans; i++)
			dlp_scan_text_end(t->scans[i]);
		snprintf(in, sizeof in, "part %u", part->index);
		sc_found(t, classify_text_level(t->ct), CLASSIFY_IN_TEXT,
		    part->filename != NULL ? part->filename : in);
		classify_text_free(t->ct);
		mime_text_free(t->conv);
		t->ct = NULL;
		t->conv = NULL;
	}
	/* An attachment shorter than the head: all of it is the head. */
	if (t->sniffing && t->nsniff > 0 && sc_sniff_keep(t, &whole))
		sc_doc_keep(t, whole);
	t->sniffing = false;
	t->doc = NULL;
	t->part_name = NULL;
}

/* ------------------------------------------------------ transaction */

int stage_content_new(const struct config *cfg, void **state, char *err, size_t errlen)
{
	struct stage_content *st = xcalloc(1, sizeof *st);

	(void)err;
	(void)errlen;
	st->enabled = cfg == NULL || cfg->content_scan;
	str_copy(st->hostname, cfg != NULL && cfg->hostname != NULL && cfg->hostname[0] != '\0' ?
	    cfg->hostname : "localhost", sizeof st->hostname);
	if (!st->enabled)
		log_warn(NULL, "content_scan = no: state-secret markings and MIME limits are "
		    "not enforced");
	st->dlp = dlp_cache_new();
	st->cache = content_cache_new();
	*state = st;
	return 0;
}

void stage_content_free(void *state)
{
	struct stage_content *st = state;

	if (st == NULL)
		return;
	dlp_cache_free(st->dlp);
	content_cache_free(st->cache);
	free(st);
}

void *stage_content_tx_new(void *state, struct policy_tx *tx)
{
	static const struct mime_callbacks cb = { sc_mime_header, sc_mime_begin, sc_mime_data,
		sc_mime_end, sc_mime_outside };
	const struct stage_content *st = state;
	struct sc_tx *t;

	if (st != NULL && !st->enabled)
		return NULL;
	t = xcalloc(1, sizeof *t);
	t->refs = 1;
	t->st = st;
	t->tx = tx;
	t->p = policy_tx_policy(tx);
	t->walker = mime_new(NULL, &cb, t);
	return t;
}

void stage_content_body(void *txstate, const char *data, size_t len)
{
	struct sc_tx *t = txstate;

	if (!t->dlp_ready)
		stage_content__agencies_read(t);
	if (t->mime_err == 0)
		t->mime_err = mime_feed(t->walker, data, len);
}

void stage_content_tx_free(void *txstate)
{
	struct sc_tx *t = txstate;

	t->detached = true;
	t->tx = NULL;
	sc_unref(t);
}

/* A document's text, on the pool: its first lines for a stamp, all of it for DLP. */
struct sc_doc_reader {
	struct classify_text *ct;
	struct sc_tx *t;
	/*
	 * Set once the stamp lines are past and no DLP rule reads the rest:
	 * doctext stops at the next page (most of a long PDF is never laid out).
	 */
	bool enough;
};

static void sc_doc_text(void *arg, const char *utf8, size_t len)
{
	struct sc_doc_reader *r = arg;

	if (!classify_text_is_done(r->ct))
		classify_text_feed(r->ct, utf8, len);
	for (size_t i = 0; i < r->t->nscans; i++)
		dlp_scan_text(r->t->scans[i], utf8, len);
	r->enough = r->t->nscans == 0 && classify_text_is_done(r->ct);
}

/* On the thread pool: each kept document's text, its first lines for a stamp. */
/*
 * One document's text (attached, or inside an archive): its level, and
 * every DLP scan reads it. status and kind as doctext says (kind NONE:
 * not a document whose text we read).
 */
static enum classify_level sc_read_doc(struct sc_tx *t, const char *data, size_t len,
    uint64_t deadline, int *status, enum doctext_kind *kind)
{
	struct doctext_limits lim = { 0, 0, 0, NULL };
	struct classify_text *ct;
	struct sc_doc_reader r;
	enum classify_level level;
	uint64_t now = time_mono_ms();

	*status = DOCTEXT_OK;
	*kind = doctext_kind_of(data, len);
	if (*kind == DOCTEXT_NONE)
		return CLASSIFY_NONE;
	if (now >= deadline) {
		*status = DOCTEXT_E_LIMIT;
		return CLASSIFY_NONE;
	}
	lim.timeout_ms = (unsigned)(deadline - now);
	lim.enough = &r.enough;
	ct = classify_text_new();
	r.ct = ct;
	r.t = t;
	r.enough = false;
	*status = doctext_extract(*kind, data, len, &lim, sc_doc_text, &r);
	for (size_t k = 0; k < t->nscans; k++)
		dlp_scan_text_end(t->scans[k]);
	level = classify_text_level(ct);
	classify_text_free(ct);
	return level;
}

/* A document found inside an archive attachment (content_attach's callback). */
struct sc_inner {
	struct sc_tx *t;
	struct sc_doc *d;
	uint64_t deadline;
};

static void sc_inner_doc(void *arg, const char *path, const char *data, size_t len)
{
	struct sc_inner *in = arg;
	int status;
	enum doctext_kind kind;
	enum classify_level level = sc_read_doc(in->t, data, len, in->deadline, &status, &kind);

	(void)status;
	(void)kind;
	if (level > in->d->level) {
		in->d->level = level;
		str_copy(in->d->found, path, sizeof in->d->found);  /* where the stamp is */
	}
}

/*
 * On the thread pool: each attachment against the attachment rules, and
 * each document's text (attached or inside an archive) for a stamp and
 * for the DLP rules.
 */
static void sc_docs_work(uv_work_t *w)
{
	struct sc_tx *t = w->data;
	uint64_t deadline = time_mono_ms() + SC_DOCS_MS;

	for (size_t i = 0; i < t->ndocs; i++) {
		struct sc_doc *d = &t->docs[i];
		struct sc_inner in = { t, d, deadline };
		struct content_cache_entry e;
		unsigned char key[32];
		/* With DLP rules the text itself is needed: no shortcut. */
		bool cacheable = t->nscans == 0;

		if (cacheable) {
			content_cache_key(d->name, d->data.data, d->data.len, d->whole, &t->rules, key);
			if (content_cache_get(t->st->cache, key, &e)) {
				d->level = e.level;
				str_copy(d->found, e.found, sizeof d->found);
				d->status = e.status;
				d->kind = e.kind;
				d->attach = e.attach;
				continue;
			}
		}
		content_attach_check(d->name, d->data.data, d->data.len, d->whole, &t->rules,
		    sc_inner_doc, &in, &d->attach);
		if (d->whole) {
			enum classify_level level = sc_read_doc(t, d->data.data, d->data.len,
			    deadline, &d->status, &d->kind);

			if (level > d->level)
				d->level = level;
		}
		/* A time limit says nothing about the document: not kept. */
		if (cacheable && d->status != DOCTEXT_E_LIMIT && !d->attach.timed_out) {
			memset(&e, 0, sizeof e);
			e.level = d->level;
			str_copy(e.found, d->found, sizeof e.found);
			e.status = d->status;
			e.kind = d->kind;
			e.attach = d->attach;
			content_cache_put(t->st->cache, key, &e);
		}
	}
}

static void sc_docs_done(uv_work_t *w, int status)
{
	struct sc_tx *t = w->data;
	struct policy_call *call = t->call;

	(void)status;   /* never cancelled */
	t->call = NULL;
	for (size_t i = 0; i < t->ndocs; i++) {
		struct sc_doc *d = &t->docs[i];

		sc_found(t, d->level, CLASSIFY_IN_DOCUMENT, d->found[0] != '\0' ? d->found : d->name);
		if (d->attach.outcome > t->attach_outcome) {
			t->attach_outcome = d->attach.outcome;
			str_copy(t->attach_why, d->attach.why, sizeof t->attach_why);
		}
		if (d->kind != DOCTEXT_NONE && d->status != DOCTEXT_OK && !t->detached)
			policy_tx_note(t->tx, "document_unread", "%s (%s)", d->name,
			    d->status == DOCTEXT_E_ENCRYPTED ? "encrypted" :
			    d->status == DOCTEXT_E_LIMIT ? "over a limit" : "not readable");
	}
	stage_content__decide(t, call);
	sc_unref(t);
}

void stage_content_run(struct policy_call *call, const struct policy_request *req,
    void *state)
{
	struct sc_tx *t = policy_call_tx_state(call);
	struct verdict v;
	int rc;

	(void)state;
	policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "content checked");
	if (t == NULL) {
		policy_call_complete(call, &v);
		return;
	}
	if (req->stage == POLICY_STAGE_RCPT) {
		stage_content__rcpt(call, req, t);
		policy_call_complete(call, &v);
		return;
	}
	if (t->mime_err == 0)
		t->mime_err = mime_finish(t->walker);
	t->auth_user = req->auth_user != NULL ? xstrdup(req->auth_user) : NULL;
	t->sender = req->sender != NULL ? xstrdup(req->sender) : NULL;
	t->client_trusted = req->client_trusted;
	str_copy(t->session_id, req->session_id != NULL ? req->session_id : "",
	    sizeof t->session_id);
	if ((rc = stage_content__attach_rules(call, t)) < 0) {
		log_warn(req->session_id, "content: cannot read the attachment policy: %s",
		    queue_strerror(rc));
		policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0",
		    "Temporary policy failure, try again later");
		policy_call_complete(call, &v);
		return;
	}
	/* A marking found already, or nothing to read: decide now, on the loop. */
	if (t->mime_err != 0 || t->level == CLASSIFY_TUYET_MAT || t->ndocs == 0) {
		stage_content__decide(t, call);
		return;
	}
	t->call = call;
	t->work.data = t;
	t->refs++;
	rc = uv_queue_work(policy_call_loop(call), &t->work, sc_docs_work, sc_docs_done);
	if (rc < 0) {
		t->refs--;
		t->call = NULL;
		log_warn(req->session_id, "content: no worker for the documents: %s",
		    uv_strerror(rc));
		policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0",
		    "Temporary failure reading the attachments, try again later");
		policy_call_complete(call, &v);
	}
}

