/*
 * stage_content: what a message shows its reader, checked before the 250
 * (issue 11): its MIME structure and its state-secret markings. The body
 * hook feeds the MIME walker (policy/mime.h) as DATA streams in; each
 * part's header fields (Subject:, SIO-Label:), file name and text (in
 * UTF-8, HTML reduced to its text) go to the classification finder
 * (policy/classify.h) at once, in fixed memory. Attached documents (DOCX,
 * ODT, PDF, recognised by their first bytes) are kept and read on the
 * thread pool at end of data (policy/doctext.h), since a document's text
 * needs the whole file. The DATA run decides:
 *   - a MIME limit crossed or a structure two readers would read
 *     differently: 554 5.6.0, saying which;
 *   - a marking at or above classified_min_level of an agency the
 *     message concerns (the sender's and every recipient's; the strictest
 *     wins): 550 5.7.1 in Vietnamese then English, and a "classified"
 *     audit record with the level and where it was found, or the
 *     quarantine when every such agency says classified_action=quarantine.
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

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "policy/check.h"
#include "policy/attach.h"
#include "policy/classify.h"
#include "policy/content_attach.h"
#include "policy/content_cache.h"
#include "policy/dlp.h"
#include "policy/doctext.h"
#include "policy/html_text.h"
#include "policy/mime.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

policy_check_new_fn stage_content_new;
policy_check_free_fn stage_content_free;
policy_check_run_fn stage_content_run;
policy_check_tx_new_fn stage_content_tx_new;
policy_check_body_fn stage_content_body;
policy_check_tx_free_fn stage_content_tx_free;

/*
 * The head kept of every attachment: its type by content (libmagic) and
 * whether it is an archive or a document to keep whole.
 */
#define SC_SNIFF_MAX 4096
/* Time for all the documents of one message; the row's timeout is larger. */
#define SC_DOCS_MS 20000
#define SC_FOUND_IN_MAX 200
/* Distinct DLP rule sets one message is scanned with (its agencies'). */
#define SC_DLP_SETS_MAX 8

/*
 * An attachment (a leaf part that is not text): its head, or all of it
 * when it is an archive or a document (the attachment rules list an
 * archive; a document's text is read for stamps and DLP).
 */
struct sc_doc {
	char *name;                /* the part's file name, or "part N" */
	struct buf data;
	bool whole;
	enum classify_level level; /* what its text says (the pool's result) */
	int status;                /* doctext_extract's */
	enum doctext_kind kind;
	struct content_attach_result attach; /* the attachment rules' (the pool's) */
	char found[SC_FOUND_IN_MAX];   /* the document inside an archive that is stamped */
};

struct sc_tx {
	unsigned refs;
	const struct stage_content *st;
	bool detached;             /* the transaction is gone */
	struct policy_tx *tx;
	struct policy *p;
	struct mime_walker *walker;
	int mime_err;
	/* The strongest marking so far and where. */
	enum classify_level level;
	enum classify_where where;
	char found_in[SC_FOUND_IN_MAX];
	/* The leaf part being read. */
	struct mime_text *conv;
	struct classify_text *ct;
	bool html;
	struct html_text hs;
	bool sniffing;             /* a non-text part: a document? */
	struct sc_doc *doc;        /* being kept */
	char sniff[SC_SNIFF_MAX];
	size_t nsniff;
	const char *part_name;     /* borrowed from the walker for the part */
	unsigned part_index;
	struct sc_doc *docs;
	size_t ndocs;
	/* Agencies the recipients belong to (RCPT stage). */
	char **tenants;
	size_t ntenants;
	char *sender_tenant;       /* the sender's agency (first RCPT), or NULL */
	bool sender_known;
	/*
	 * One DLP scan per distinct rule set of the agencies concerned,
	 * made at the first piece of the message (the recipients are known).
	 */
	bool dlp_ready;
	struct dlp_ruleset *rulesets[SC_DLP_SETS_MAX];
	struct dlp_scan *scans[SC_DLP_SETS_MAX];
	size_t nscans;
	char dlp_error[200];       /* a rule set that could not be read: tempfail */
	/* The most dangerous file name of any part (text parts included). */
	enum attach_category name_category;
	char name_found[SC_FOUND_IN_MAX];
	/*
	 * blocked_extensions of the agencies concerned and of each of their
	 * ancestors (",iso,lnk,"), read at the first piece like the DLP
	 * rules, and the first part whose file name has one.
	 */
	bool exts_ready, exts_error;
	struct buf exts;
	char ext_found[SC_FOUND_IN_MAX];
	char ext_found_ext[24];
	/* The agencies' attachment rules (DATA stage, before the pool reads them). */
	struct content_attach_rules rules;
	enum content_attach_outcome attach_outcome;   /* the worst attachment's */
	char attach_why[256];
	/*
	 * The DATA run waiting for the documents, and what it needs of the
	 * request: copied, since a row that times out lets the session end
	 * before the documents are read.
	 */
	struct policy_call *call;
	char *auth_user;
	char *sender;
	bool client_trusted;
	char session_id[64];
	uv_work_t work;
};

/* The row's state: whether the check is on (content_scan), our name. */
struct stage_content {
	bool enabled;
	char hostname[256];
	struct queue_store *store;     /* for the DLP rules (first body piece) */
	struct dlp_cache *dlp;         /* compiled rule sets by agency; loop thread */
	struct content_cache *cache;   /* attachment verdicts by digest; any thread */
};

static const char sc_rule_mime[] = "mime";
static const char sc_rule_classified[] = "classified";
static const char sc_rule_dlp[] = "dlp";
static const char sc_rule_attachment[] = "attachment";

static void sc_free(struct sc_tx *t)
{
	mime_free(t->walker);
	mime_text_free(t->conv);
	classify_text_free(t->ct);
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
 * The head of an attachment: once SC_SNIFF_MAX bytes are in (or the part
 * ends), it is kept, and so is the rest when it is an archive or a
 * document. Memory: a head per part (bounded by the part count), and the
 * archives and documents, bounded by the message size.
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
	whole = content_attach_wants_whole(t->sniff, t->nsniff);
	sc_doc_keep(t, whole);
	if (whole)
		buf_append(&t->doc->data, data + take, len - take);
	else
		t->doc = NULL;
}

/* ------------------------------------------------------ MIME events */

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
	} else if (strcasecmp(name, "SIO-Label") == 0) {
		sc_found(t, classify_sio_label(value, len), CLASSIFY_IN_SIO_LABEL,
		    part->index == 0 ? "SIO-Label" : in);
	}
}

static void sc_mime_begin(void *arg, const struct mime_part *part)
{
	struct sc_tx *t = arg;

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
	if (strncmp(part->type, "text/", 5) == 0) {
		t->conv = mime_text_new(part->charset);
		t->ct = classify_text_new();
		t->html = strcmp(part->type, "text/html") == 0;
		memset(&t->hs, 0, sizeof t->hs);
	} else {
		t->sniffing = true;
		t->nsniff = 0;
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
	} else if (t->doc != NULL) {
		buf_append(&t->doc->data, data, len);
	} else if (t->sniffing) {
		sc_sniff(t, data, len);
	}
}

static void sc_mime_end(void *arg, const struct mime_part *part)
{
	struct sc_tx *t = arg;
	char in[32];

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
	} else if (t->sniffing && t->nsniff > 0) {
		/* An attachment shorter than the head: all of it is the head. */
		sc_doc_keep(t, content_attach_wants_whole(t->sniff, t->nsniff));
	}
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
		sc_mime_end };
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

/* One tenant's DLP rule set joins the message's scans (each set once). */
static void sc_dlp_add(struct sc_tx *t, struct queue_txn *txn, const char *tenant)
{
	struct dlp_ruleset *rs = NULL;
	char why[128];
	int rc = dlp_cache_get(t->st->dlp, txn, tenant, &rs, why, sizeof why);

	if (rc < 0) {
		if (t->dlp_error[0] == '\0')
			snprintf(t->dlp_error, sizeof t->dlp_error, "%s: %s", tenant, why);
		return;
	}
	for (size_t i = 0; i < t->nscans; i++) {
		if (t->rulesets[i] == rs) {
			dlp_ruleset_free(rs);
			return;
		}
	}
	if (dlp_ruleset_count(rs) == 0 || t->nscans == SC_DLP_SETS_MAX) {
		if (dlp_ruleset_count(rs) > 0 && t->dlp_error[0] == '\0')
			snprintf(t->dlp_error, sizeof t->dlp_error,
			    "more than %d agencies with DLP rules", SC_DLP_SETS_MAX);
		dlp_ruleset_free(rs);
		return;
	}
	t->rulesets[t->nscans] = rs;
	t->scans[t->nscans++] = dlp_scan_new(rs);
}

static char *sc_strdup(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

/*
 * fn(arg, txn, tenant) for every agency the message concerns and every
 * ancestor of each (a policy that holds down the tree: security
 * contacts, blocked extensions). Returns -EIO when a tenant could not be
 * read (the walk goes on with the others).
 */
static int sc_each_agency_up(const struct sc_tx *t, struct queue_txn *txn,
    void (*fn)(void *arg, struct queue_txn *txn, const char *tenant), void *arg)
{
	int ret = 0;

	for (size_t i = 0; i <= t->ntenants; i++) {
		char *tenant = sc_strdup(i < t->ntenants ? t->tenants[i] : t->sender_tenant);

		/* TENANCY_DEPTH_MAX bounds a chain; 16 is beyond any the store keeps. */
		for (unsigned depth = 0; tenant != NULL && depth < 16; depth++) {
			struct queue_tenant *rec = NULL;
			int rc;

			fn(arg, txn, tenant);
			rc = queue_tenant_get(txn, tenant, &rec);
			free(tenant);
			tenant = NULL;
			if (rc == 0)
				tenant = sc_strdup(rec->parent);
			else if (rc != -ENOENT)
				ret = -EIO;
			queue_tenant_free(rec);
		}
		free(tenant);
	}
	return ret;
}

/* One tenant's own blocked_extensions ("iso,lnk") joins the message's list. */
static void sc_exts_add(struct sc_tx *t, const char *value)
{
	const char *p = value;

	if (strcmp(value, "none") == 0)
		return;
	while (*p != '\0') {
		size_t n = strcspn(p, ",");
		char item[40];

		if (n > 0 && n + 3 <= sizeof item) {
			item[0] = ',';
			memcpy(item + 1, p, n);
			item[n + 1] = ',';
			item[n + 2] = '\0';
			if (strstr(buf_cstr(&t->exts), item) == NULL) {
				if (t->exts.len > 0)
					t->exts.len--;   /* the two commas meet */
				buf_append_str(&t->exts, item);
			}
		}
		p += n;
		if (*p == ',')
			p++;
	}
}

/* One agency's own blocked_extensions, for sc_each_agency_up. */
static void sc_exts_of(void *arg, struct queue_txn *txn, const char *tenant)
{
	struct sc_tx *t = arg;
	char *value = NULL;
	int rc = queue_policy_get(txn, tenant, "blocked_extensions", &value);

	if (rc == 0)
		sc_exts_add(t, value);
	else if (rc != -ENOENT)
		t->exts_error = true;
	free(value);
}

/*
 * At the first piece of the message (RCPT has named every agency it
 * concerns), in one read of the store: a DLP scan per distinct rule set
 * of those agencies, and the blocked_extensions of each and of every
 * ancestor (so each part's file name is checked as it comes; a list only
 * ever grows down the tree).
 */
static void sc_start(struct sc_tx *t)
{
	struct queue_txn *txn = NULL;

	t->dlp_ready = true;
	t->exts_ready = true;
	buf_init(&t->exts);
	if (queue_txn_begin(policy_tx_store(t->tx), false, &txn) < 0) {
		str_copy(t->dlp_error, "the store cannot be read", sizeof t->dlp_error);
		t->exts_error = true;
		return;
	}
	for (size_t i = 0; i < t->ntenants; i++)
		sc_dlp_add(t, txn, t->tenants[i]);
	if (t->sender_tenant != NULL)
		sc_dlp_add(t, txn, t->sender_tenant);
	if (sc_each_agency_up(t, txn, sc_exts_of, t) < 0)
		t->exts_error = true;
	queue_txn_abort(txn);
}

void stage_content_body(void *txstate, const char *data, size_t len)
{
	struct sc_tx *t = txstate;

	if (!t->dlp_ready)
		sc_start(t);
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

/* -------------------------------------------------------- decisions */

/* The recipient's agency, once per agency (the DATA stage reads their policy). */
static void sc_rcpt(struct policy_call *call, const struct policy_request *req,
    struct sc_tx *t)
{
	struct queue_txn *txn = NULL;
	char *tenant = NULL;

	if (queue_txn_begin(policy_call_store(call), false, &txn) < 0)
		return;
	if (!t->sender_known) {
		/* The sender's agency: its user, or a trusted agency server's sender. */
		t->sender_known = true;
		if (req->auth_user != NULL)
			(void)queue_tenant_of_address(txn, req->auth_user, &t->sender_tenant);
		else if (req->client_trusted && req->sender != NULL && req->sender[0] != '\0')
			(void)queue_tenant_of_address(txn, req->sender, &t->sender_tenant);
	}
	if (req->rcpt_domain != NULL && req->rcpt_domain[0] != '\0' &&
	    queue_tenant_of_domain(txn, req->rcpt_domain, &tenant) == 0 && tenant != NULL) {
		for (size_t i = 0; i < t->ntenants; i++) {
			if (strcmp(t->tenants[i], tenant) == 0) {
				free(tenant);
				tenant = NULL;
				break;
			}
		}
		if (tenant != NULL) {
			t->tenants = xreallocarray(t->tenants, t->ntenants + 1, sizeof *t->tenants);
			t->tenants[t->ntenants++] = tenant;
		}
	}
	queue_txn_abort(txn);
}

/*
 * The strictest classified_action and classified_min_level of the
 * agencies the message concerns: the sender's (its user, or a trusted
 * server's sender domain) and the recipients'. None of ours: the root's
 * (builtin) values.
 */
static int sc_policy(struct policy_call *call, struct sc_tx *t, bool *quarantine,
    enum classify_level *min_level)
{
	struct queue_txn *txn = NULL;
	char word[TENANCY_POLICY_VALUE_MAX + 1];
	enum classify_level lv;
	bool any_reject = false;
	size_t n = 0;
	int rc;

	*quarantine = false;
	*min_level = CLASSIFY_TUYET_MAT;
	rc = queue_txn_begin(policy_call_store(call), false, &txn);
	if (rc < 0)
		return rc;
	if (!t->sender_known) {
		t->sender_known = true;
		if (t->auth_user != NULL)
			(void)queue_tenant_of_address(txn, t->auth_user, &t->sender_tenant);
		else if (t->client_trusted && t->sender != NULL && t->sender[0] != '\0')
			(void)queue_tenant_of_address(txn, t->sender, &t->sender_tenant);
	}
	for (size_t i = 0; rc == 0 && i <= t->ntenants; i++) {
		const char *tenant = i < t->ntenants ? t->tenants[i] : t->sender_tenant;

		if (i == t->ntenants && (tenant == NULL && n > 0))
			break;
		n++;
		rc = queue_policy_word(txn, tenant, "classified_action", word, sizeof word, NULL,
		    0);
		if (rc == 0 && strcmp(word, "quarantine") != 0)
			any_reject = true;
		if (rc == 0)
			rc = queue_policy_word(txn, tenant, "classified_min_level", word,
			    sizeof word, NULL, 0);
		if (rc == 0 && classify_level_parse(word, &lv) && lv < *min_level)
			*min_level = lv;
	}
	queue_txn_abort(txn);
	*quarantine = !any_reject;
	return rc;
}

/*
 * The strictest blocked_attachments and encrypted_archive_action of the
 * agencies the message concerns (builtin values when none is ours).
 */
static int sc_attach_rules(struct policy_call *call, struct sc_tx *t)
{
	static const char *const block_words[] = { "executables-and-scripts", "executables",
		"none" };
	static const char *const enc_words[] = { "reject", "quarantine", "accept" };
	struct queue_txn *txn = NULL;
	char word[TENANCY_POLICY_VALUE_MAX + 1];
	unsigned block = 2, enc = 2;
	int rc = queue_txn_begin(policy_call_store(call), false, &txn);

	for (size_t i = 0; rc == 0 && i <= t->ntenants; i++) {
		const char *tenant = i < t->ntenants ? t->tenants[i] : t->sender_tenant;

		if (i == t->ntenants && tenant == NULL && t->ntenants > 0)
			break;
		rc = queue_policy_word(txn, tenant, "blocked_attachments", word, sizeof word, NULL,
		    0);
		for (unsigned k = 0; rc == 0 && k < 3; k++)
			if (strcmp(word, block_words[k]) == 0 && k < block)
				block = k;
		if (rc == 0)
			rc = queue_policy_word(txn, tenant, "encrypted_archive_action", word,
			    sizeof word, NULL, 0);
		for (unsigned k = 0; rc == 0 && k < 3; k++)
			if (strcmp(word, enc_words[k]) == 0 && k < enc)
				enc = k;
	}
	queue_txn_abort(txn);
	t->rules.block = (enum content_block)block;
	t->rules.encrypted = (enum content_encrypted)enc;
	t->rules.extensions = t->exts_ready ? buf_cstr(&t->exts) : NULL;
	if (rc == 0 && t->exts_error)
		rc = -EIO;
	return rc;
}

/* A file name that is an executable or a script by itself (text parts too). */
static void sc_name_rule(struct sc_tx *t)
{
	if (t->ext_found[0] != '\0' && t->attach_outcome < CONTENT_ATTACH_REJECT) {
		t->attach_outcome = CONTENT_ATTACH_REJECT;
		snprintf(t->attach_why, sizeof t->attach_why, "a .%s file (%s)", t->ext_found_ext,
		    t->ext_found);
	}
	if ((t->name_category == ATTACH_EXECUTABLE && t->rules.block != CONTENT_BLOCK_NONE) ||
	    (t->name_category == ATTACH_SCRIPT && t->rules.block == CONTENT_BLOCK_EXEC_SCRIPTS)) {
		if (t->attach_outcome < CONTENT_ATTACH_REJECT) {
			t->attach_outcome = CONTENT_ATTACH_REJECT;
			snprintf(t->attach_why, sizeof t->attach_why, "a file named %s",
			    t->name_found);
		}
	}
}

static void sc_attach_verdict(struct sc_tx *t, struct verdict *v)
{
	if (t->attach_outcome == CONTENT_ATTACH_PASS)
		return;
	if (!t->detached)
		policy_tx_note(t->tx, "attachment", "%s", t->attach_why);
	if (t->attach_outcome == CONTENT_ATTACH_REJECT)
		policy_verdict_set(v, VERDICT_REJECT, 550, "5.7.1",
		    "Thu bi tu choi: tep dinh kem khong duoc phep (%s).\n"
		    "Message refused: it carries %s, which official mail may not carry.",
		    t->attach_why, t->attach_why);
	else
		policy_verdict_set(v, VERDICT_QUARANTINE, 0, "",
		    "carries %s: kept for the security team", t->attach_why);
	v->rule = sc_rule_attachment;
}

/* A level's name in the reply: plain ASCII, as SMTP replies are (RFC 5321 4.2). */
static const char *sc_level_ascii(enum classify_level level)
{
	switch (level) {
	case CLASSIFY_MAT: return "MAT";
	case CLASSIFY_TOI_MAT: return "TOI MAT";
	case CLASSIFY_TUYET_MAT: return "TUYET MAT";
	case CLASSIFY_NONE: break;
	}
	return "";
}

/* Most security contacts one notice goes to (the agencies and their ancestors). */
#define SC_CONTACTS_MAX 32

/*
 * The security contacts of the agencies the message concerns and of
 * each of their ancestors (the ward's team and the city's alike); each
 * once. A store error leaves the list as far as it got: the refusal
 * stands whatever the notices.
 */
struct sc_contact_list {
	char **out;
	size_t n;
};

static void sc_contact_of(void *arg, struct queue_txn *txn, const char *tenant)
{
	struct sc_contact_list *l = arg;
	char *value = NULL;
	bool seen = false;

	if (queue_policy_get(txn, tenant, "security_contact", &value) == 0 &&
	    strcmp(value, "none") != 0) {
		for (size_t k = 0; k < l->n && !seen; k++)
			seen = strcmp(l->out[k], value) == 0;
		if (!seen && l->n < SC_CONTACTS_MAX) {
			l->out[l->n++] = value;
			value = NULL;
		}
	}
	free(value);
}

static size_t sc_contacts(struct policy_call *call, const struct sc_tx *t,
    char *out[SC_CONTACTS_MAX])
{
	struct sc_contact_list l = { out, 0 };
	struct queue_txn *txn = NULL;

	if (queue_txn_begin(policy_call_store(call), false, &txn) < 0)
		return 0;
	(void)sc_each_agency_up(t, txn, sc_contact_of, &l);
	queue_txn_abort(txn);
	return l.n;
}

/* "=?UTF-8?B?...?=" of a short UTF-8 text (RFC 2047), for the notice's Subject. */
static void sc_encoded_word(struct buf *b, const char *utf8)
{
	unsigned char enc[128];
	size_t len = strlen(utf8);
	int n;

	if (len > 90)
		len = 90;   /* 4 * ceil(90 / 3) = 120 characters fit enc */
	n = EVP_EncodeBlock(enc, (const unsigned char *)utf8, (int)len);
	buf_printf(b, "=?UTF-8?B?%.*s?=", n, (const char *)enc);
}

/*
 * The notice to one security contact: who sent what to whom, the level
 * and where it was found; never the message itself (it is the secret).
 */
static void sc_notice(struct sc_tx *t, const char *to, const char *qid, bool quarantine)
{
	struct buf m;
	char date[64], when[64], rnd[9] = "";
	const char *label = classify_level_label(t->level);
	unsigned char r[4];

	buf_init(&m);
	time_format_rfc5322(time_now_ms(), date, sizeof date);
	time_format_iso(time_now_ms(), when, sizeof when);
	if (RAND_bytes(r, sizeof r) == 1)
		snprintf(rnd, sizeof rnd, "%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
	buf_printf(&m, "From: \"govrelay\" <MAILER-DAEMON@%s>\r\nTo: <%s>\r\nSubject: ",
	    t->st->hostname, to);
	sc_encoded_word(&m, quarantine ? "Thư bị giữ lại: đánh dấu mật" :
	    "Thư bị từ chối: đánh dấu mật");
	buf_printf(&m, " [%s] (%s)\r\n", classify_level_name(t->level),
	    quarantine ? "classified message quarantined" : "classified message refused");
	buf_printf(&m, "Date: %s\r\nMessage-ID: <%s.%s.notice@%s>\r\n"
	    "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
	    date, qid, rnd, t->st->hostname);
	buf_printf(&m, "Cổng thư điện tử công vụ đã %s một thư được đánh dấu độ mật "
	    "\"%s\" (bí mật nhà nước).\r\n\r\n", quarantine ? "giữ lại (cách ly)" : "từ chối",
	    label);
	buf_printf(&m, "The official mail gateway %s a message marked as a state secret "
	    "(%s).\r\n\r\n", quarantine ? "quarantined" : "refused", classify_level_name(t->level));
	buf_printf(&m, "Thời gian / Time: %s\r\nMã / Queue id: %s\r\n"
	    "Người gửi / Sender: <%s>\r\n", when, qid, t->sender != NULL ? t->sender : "");
	if (t->auth_user != NULL)
		buf_printf(&m, "Tài khoản / User: %s\r\n", t->auth_user);
	buf_printf(&m, "Độ mật / Level: %s (%s)\r\nVị trí / Found in: %s: %s\r\n", label,
	    classify_level_name(t->level), classify_where_name(t->where), t->found_in);
	buf_printf(&m, "\r\nNội dung thư không kèm theo đây. The message itself is not "
	    "attached; see govrelayctl audit search --queue-id %s%s.\r\n", qid,
	    quarantine ? " and govrelayctl quarantine show" : "");
	policy_tx_add_notice(t->tx, to, m.data, m.len);
	buf_free(&m);
}

static void sc_classified(struct sc_tx *t, bool quarantine, struct verdict *v)
{
	const char *lv = sc_level_ascii(t->level);

	if (!t->detached) {
		policy_tx_note(t->tx, "classified", "%s", classify_level_name(t->level));
		policy_tx_note(t->tx, "classified_where", "%s", classify_where_name(t->where));
		policy_tx_note(t->tx, "classified_in", "%s", t->found_in);
	}
	if (quarantine) {
		policy_verdict_set(v, VERDICT_QUARANTINE, 0, "", "marked as a state secret (%s): "
		    "kept for the security team", classify_level_name(t->level));
	} else {
		/*
		 * Vietnamese first, then English (INTERFACE.md). Vietnamese is
		 * written without diacritics: a reply line is ASCII.
		 */
		policy_verdict_set(v, VERDICT_REJECT, 550, "5.7.1",
		    "Thu bi tu choi: thu duoc danh dau do mat %s (bi mat nha nuoc).\n"
		    "Tai lieu bi mat nha nuoc khong duoc gui qua thu dien tu cong vu; hay "
		    "chuyen qua he thong co yeu hoac van thu mat theo quy dinh.\n"
		    "Message refused: it is marked as a state secret (%s).\n"
		    "State secrets may not travel by official e-mail; send it through the "
		    "cipher (co yeu) network or the classified-document clerk, as the law "
		    "requires.", lv, lv);
		v->event = "classified";
	}
	v->rule = sc_rule_classified;
}

/*
 * The DLP rules that fired, over every scan: the strongest action, and
 * the names with their counts ("iban (3), cccd (1)"). A search that
 * crossed PCRE2's limits counts as its rule firing: a text built to
 * exhaust the matcher must not pass unread.
 */
static enum dlp_action sc_dlp_result(struct sc_tx *t, struct buf *names)
{
	enum dlp_action strongest = DLP_ACTION_NONE;

	for (size_t i = 0; i < t->nscans; i++) {
		struct dlp_result r;
		int rc = dlp_scan_result(t->scans[i], &r);

		if (rc == DLP_E_LIMIT) {
			strongest = DLP_ACTION_REJECT;
			buf_printf(names, "%s%s (too costly to search)", names->len > 0 ? ", " : "",
			    r.limit_rule);
		}
		for (size_t k = 0; k < r.nhits; k++) {
			if (r.hits[k].action > strongest)
				strongest = r.hits[k].action;
			buf_printf(names, "%s%s (%u)", names->len > 0 ? ", " : "", r.hits[k].name,
			    r.hits[k].count);
		}
	}
	return strongest;
}

static void sc_dlp_verdict(struct sc_tx *t, struct verdict *v)
{
	struct buf b;
	char names[300], field[400];
	enum dlp_action act;

	buf_init(&b);
	act = sc_dlp_result(t, &b);
	/* At most 400 rules: the reply and the field say the first ones. */
	str_copyn(names, b.len > 0 ? b.data : "", b.len, sizeof names);
	buf_free(&b);
	if (act == DLP_ACTION_NONE)
		return;
	if (!t->detached)
		policy_tx_note(t->tx, "dlp", "%s: %s", dlp_action_name(act), names);
	if (act == DLP_ACTION_REJECT) {
		policy_verdict_set(v, VERDICT_REJECT, 550, "5.7.1",
		    "Thu bi tu choi theo quy tac bao ve du lieu cua co quan: %s.\n"
		    "Message refused by your agency's data-protection rules: %s.", names, names);
	} else if (act == DLP_ACTION_QUARANTINE) {
		policy_verdict_set(v, VERDICT_QUARANTINE, 0, "",
		    "matches the data-protection rules %s: kept for the security team", names);
	} else if (!t->detached) {
		/* tag: delivered, and says so to the receiving agency's filters. */
		snprintf(field, sizeof field, "X-Govrelay-DLP: %s", names);
		policy_tx_add_header(t->tx, field);
	}
	v->rule = sc_rule_dlp;
}

static void sc_decide(struct sc_tx *t, struct policy_call *call)
{
	struct verdict v;
	enum classify_level min_level;
	bool quarantine;
	int rc;

	policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "content checked");
	if (t->mime_err != 0) {
		policy_verdict_set(&v, VERDICT_REJECT, 554, "5.6.0", "Message refused: %s",
		    mime_error_text(t->mime_err));
		v.rule = sc_rule_mime;
	} else if (t->level != CLASSIFY_NONE) {
		rc = sc_policy(call, t, &quarantine, &min_level);
		if (rc < 0) {
			log_warn(t->session_id, "content: cannot read the classified policy: %s",
			    queue_strerror(rc));
			policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0",
			    "Temporary policy failure, try again later");
			v.rule = sc_rule_classified;
		} else if (t->level >= min_level) {
			sc_classified(t, quarantine, &v);
			if (!t->detached) {
				char *contacts[SC_CONTACTS_MAX];
				size_t n = sc_contacts(call, t, contacts);

				for (size_t i = 0; i < n; i++) {
					sc_notice(t, contacts[i], t->session_id, quarantine);
					free(contacts[i]);
				}
			}
		} else if (!t->detached) {
			/* Below the agencies' level: noted, so the security team can still see it. */
			policy_tx_note(t->tx, "marking", "%s", classify_level_name(t->level));
		}
	}
	if (v.kind == VERDICT_CONTINUE) {
		sc_name_rule(t);
		sc_attach_verdict(t, &v);
	}
	if (v.kind == VERDICT_CONTINUE && t->dlp_error[0] != '\0') {
		log_warn(t->session_id, "content: DLP rules unreadable: %s", t->dlp_error);
		policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0",
		    "Temporary policy failure, try again later");
		v.rule = sc_rule_dlp;
	} else if (v.kind == VERDICT_CONTINUE) {
		sc_dlp_verdict(t, &v);
	}
	policy_call_complete(call, &v);
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
	sc_decide(t, call);
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
		sc_rcpt(call, req, t);
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
	if ((rc = sc_attach_rules(call, t)) < 0) {
		log_warn(req->session_id, "content: cannot read the attachment policy: %s",
		    queue_strerror(rc));
		policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0",
		    "Temporary policy failure, try again later");
		policy_call_complete(call, &v);
		return;
	}
	/* A marking found already, or nothing to read: decide now, on the loop. */
	if (t->mime_err != 0 || t->level == CLASSIFY_TUYET_MAT || t->ndocs == 0) {
		sc_decide(t, call);
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
