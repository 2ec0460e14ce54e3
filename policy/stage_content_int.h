#ifndef GOVRELAY_POLICY_STAGE_CONTENT_INT_H
#define GOVRELAY_POLICY_STAGE_CONTENT_INT_H
/*
 * stage_content_int: what the three files of the content check share
 * (policy/stage_content.c: the row, the MIME events as DATA streams in,
 * the documents on the thread pool; policy/stage_content_agency.c: what
 * the agencies the message concerns say, read from the store;
 * policy/stage_content_verdict.c: the verdict at end of data, its reply
 * and the security contacts' notices). Not for other modules.
 */
#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "common/buf.h"
#include "policy/check.h"
#include "policy/classify.h"
#include "policy/attach.h"
#include "policy/content_attach.h"
#include "policy/dlp.h"
#include "policy/doctext.h"
#include "policy/html_text.h"
#include "policy/mime.h"

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
	/*
	 * Text outside the parts (a multipart's preamble or epilogue) being
	 * read, and the part it belongs to: one at a time, closed by the next
	 * part's begin or end.
	 */
	struct mime_text *outside_conv;
	struct classify_text *outside_ct;
	unsigned outside_part;
	bool html;
	struct html_text hs;
	bool sniffing;             /* the part's head is read: a document? */
	bool sniff_text;           /* ...of a text part: kept only if it is one */
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


/* Most security contacts one notice goes to (the agencies and their ancestors). */
#define SC_CONTACTS_MAX 32

/* stage_content_agency.c (loop thread) */
void stage_content__rcpt(struct policy_call *call, const struct policy_request *req,
    struct sc_tx *t);
void stage_content__agencies_read(struct sc_tx *t);
int stage_content__classified_policy(struct policy_call *call, struct sc_tx *t,
    bool *quarantine, enum classify_level *min_level);
int stage_content__attach_rules(struct policy_call *call, struct sc_tx *t);
size_t stage_content__contacts(struct policy_call *call, const struct sc_tx *t,
    char *out[SC_CONTACTS_MAX]);

/* stage_content_verdict.c (loop thread): completes call. */
void stage_content__decide(struct sc_tx *t, struct policy_call *call);

#endif
