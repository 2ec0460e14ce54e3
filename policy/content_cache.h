#ifndef GOVRELAY_POLICY_CONTENT_CACHE_H
#define GOVRELAY_POLICY_CONTENT_CACHE_H
/*
 * content_cache: what the content check found in an attachment, kept by
 * the SHA-256 of its name and bytes, so that the same document sent again (a
 * circular a department sends to every ward, one message each) is not
 * laid out and typed again: its stamp level, where in it, what doctext
 * and the attachment rules said. Only for a check that needs no more than
 * that: a message with DLP rules to apply reads the text itself.
 *
 * An entry also names the attachment rules it was decided under (they
 * change with the agencies concerned); a different set is a miss.
 * 1024 slots, direct-mapped by the digest, one mutex: the newest entry
 * of a slot wins.
 *
 * OWNERSHIP: the cache copies what it is given and what it returns.
 * THREADS: any thread (the thread pool), concurrently.
 */
#include <stdbool.h>
#include <stddef.h>

#include "policy/classify.h"
#include "policy/content_attach.h"
#include "policy/doctext.h"

#define CONTENT_CACHE_FOUND_MAX 200

struct content_cache_entry {
	enum classify_level level;
	char found[CONTENT_CACHE_FOUND_MAX];    /* a document inside that is stamped, or "" */
	int status;                             /* doctext_extract's */
	enum doctext_kind kind;
	struct content_attach_result attach;
};

struct content_cache;
struct content_cache *content_cache_new(void);
void content_cache_free(struct content_cache *c);
/*
 * The digest of an attachment's name (may be NULL) and bytes, with the
 * rules and how much was kept. The name is in it because the verdict's
 * words name the file (and the rules read names): a verdict is never
 * shown for a file of another name, nor to another sender.
 */
void content_cache_key(const char *name, const char *data, size_t len, bool whole,
    const struct content_attach_rules *rules, unsigned char key[32]);
bool content_cache_get(struct content_cache *c, const unsigned char key[32],
    struct content_cache_entry *out);
void content_cache_put(struct content_cache *c, const unsigned char key[32],
    const struct content_cache_entry *e);
#endif
