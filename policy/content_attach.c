/*
 * content_attach: the attachment rules (policy/content_attach.h says
 * what). An attachment's category is the more dangerous of what its
 * content is (libmagic and executable signatures) and what its name says
 * (a ".pdf" that is a PE file is an executable; so is an ".exe" that is
 * text, since Windows runs it by its name): a part that claims one type
 * and is another is judged by both. Executables, and scripts unless the
 * agencies allow them, are refused wherever they are, inside archives
 * too. An archive that cannot be listed within the bounds (entries,
 * bytes inflated, inflation ratio, nesting, time: a bomb, or a damaged
 * file whose content no scanner sees) is refused; an encrypted one hides
 * its content from every check, so encrypted_archive_action decides.
 *
 * Entry points: content_attach_check, content_attach_wants_whole.
 * OWNERSHIP: nothing is kept. THREADS: the thread pool (any thread).
 * ERRORS: none: every outcome is a result.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "policy/attach.h"
#include "policy/content_attach.h"

/* Bounds of one archive listing (policy/attach.h gives the defaults). */
#define CA_MAX_ENTRIES 10000
#define CA_MAX_INFLATED (256u << 20)
#define CA_TIMEOUT_MS 10000

struct ca_walk {
	const char *archive;            /* the attachment's name, for paths */
	const struct content_attach_rules *rules;
	content_attach_doc_fn *doc;
	void *arg;
	struct content_attach_result *res;
};

/* A finding: the more serious outcome wins, the first reason of it stays. */
/* "WHAT (NAME WHERE)": what was found, in which file and where that is. */
static void ca_find(struct content_attach_result *res, enum content_attach_outcome o,
    const char *what, const char *name, const char *where)
{
	if (o <= res->outcome)
		return;
	res->outcome = o;
	snprintf(res->why, sizeof res->why, "%s (%s%s)", what, name, where != NULL ? where : "");
}

bool content_attach_ext_blocked(const char *extensions, const char *name, char *ext,
    size_t extlen)
{
	char want[40];
	size_t end, dot, n;

	if (extensions == NULL || extensions[0] == '\0' || name == NULL)
		return false;
	end = strlen(name);
	while (end > 0 && (name[end - 1] == '.' || name[end - 1] == ' '))
		end--;
	for (dot = end; dot > 0 && name[dot - 1] != '.' && name[dot - 1] != '/' &&
	    name[dot - 1] != '\\'; dot--)
		;
	if (dot == 0 || name[dot - 1] != '.' || end == dot)
		return false;
	n = end - dot;
	if (n + 3 > sizeof want)
		return false;
	want[0] = ',';
	str_copyn(want + 1, name + dot, n, sizeof want - 1);
	str_lower(want + 1);   /* the list is kept in lower case */
	want[1 + n] = ',';
	want[2 + n] = '\0';
	if (strstr(extensions, want) == NULL)
		return false;
	if (ext != NULL && extlen > 0) {
		want[1 + n] = '\0';
		str_copy(ext, want + 1, extlen);
	}
	return true;
}

/* What the category of one file (attached, or inside an archive) means. */
static void ca_category(struct content_attach_result *res, const struct content_attach_rules *r,
    enum attach_category cat, const char *name, const char *where)
{
	char ext[24], what[48];

	if (cat == ATTACH_EXECUTABLE && r->block != CONTENT_BLOCK_NONE) {
		ca_find(res, CONTENT_ATTACH_REJECT, "an executable file", name, where);
	} else if (cat == ATTACH_SCRIPT && r->block == CONTENT_BLOCK_EXEC_SCRIPTS) {
		ca_find(res, CONTENT_ATTACH_REJECT, "a script file", name, where);
	} else if (content_attach_ext_blocked(r->extensions, name, ext, sizeof ext)) {
		snprintf(what, sizeof what, "a .%s file", ext);
		ca_find(res, CONTENT_ATTACH_REJECT, what, name, where);
	}
}

static void ca_encrypted(struct content_attach_result *res, const struct content_attach_rules *r,
    const char *name)
{
	if (r->encrypted == CONTENT_ENC_REJECT)
		ca_find(res, CONTENT_ATTACH_REJECT, "an encrypted archive", name, NULL);
	else if (r->encrypted == CONTENT_ENC_QUARANTINE)
		ca_find(res, CONTENT_ATTACH_QUARANTINE, "an encrypted archive", name, NULL);
}

static int ca_entry(void *arg, const struct attach_entry *e)
{
	struct ca_walk *w = arg;
	char path[512], where[560];

	snprintf(path, sizeof path, "%s/%s", w->archive, e->name != NULL ? e->name : "");
	snprintf(where, sizeof where, " inside %s", w->archive);
	ca_category(w->res, w->rules, e->category, e->name != NULL ? e->name : "?", where);
	if (e->encrypted)
		ca_encrypted(w->res, w->rules, path);
	/*
	 * Whatever it is called (an archive may be a DOCX libmagic calls a
	 * zip): what is a document is for doctext_kind_of to say.
	 */
	if (e->data != NULL && w->doc != NULL)
		w->doc(w->arg, path, e->data, e->data_len);
	return 0;
}

void content_attach_check(const char *name, const char *data, size_t len, bool whole,
    const struct content_attach_rules *rules, content_attach_doc_fn *doc, void *arg,
    struct content_attach_result *res)
{
	struct attach_limits lim = { .max_entries = CA_MAX_ENTRIES,
		.max_inflated = CA_MAX_INFLATED, .timeout_ms = CA_TIMEOUT_MS };
	struct attach_summary sum;
	struct ca_walk w = { name != NULL ? name : "attachment", rules, doc, arg, res };
	char mime[128];
	enum attach_category cat;
	int rc;

	res->outcome = CONTENT_ATTACH_PASS;
	res->why[0] = '\0';
	res->timed_out = false;
	attach_type_of(data, len, mime, sizeof mime);
	cat = attach_classify(mime, data, len, name);
	ca_category(res, rules, cat, w.archive, "");
	if (!whole || (cat != ATTACH_ARCHIVE && !attach_listable(mime, data, len)))
		return;
	rc = attach_list(data, len, &lim, ca_entry, &w, &sum);
	res->timed_out = rc == ATTACH_E_TIMEOUT;
	if (sum.encrypted)
		ca_encrypted(res, rules, w.archive);
	if (rc == ATTACH_E_FORMAT && sum.encrypted)
		return;   /* names encrypted (7z -mhe): encrypted_archive_action decided */
	if (rc < 0) {
		char where[64];

		snprintf(where, sizeof where, ": %s", attach_status_name(rc));
		ca_find(res, CONTENT_ATTACH_REJECT, "an archive that cannot be inspected", w.archive,
		    where);
	}
}

bool content_attach_wants_whole(const char *head, size_t len)
{
	return attach_head_is_archive(head, len) || attach_head_is_pdf(head, len);
}
