#ifndef GOVRELAY_MAILDIR_H
#define GOVRELAY_MAILDIR_H
/*
 * maildir (maildir_): local delivery of one message to Maildir folders,
 * for the route "maildir:DIR". Each recipient has its own folder,
 * DIR/<address lowercased>/{tmp,new,cur} (created 0700 as needed); the
 * message gets "Return-Path: <sender>" and "Delivered-To: address"
 * prepended, its CRLF line ends become LF, and it is written to tmp/,
 * fsynced, linked into new/ and new/ is fsynced before the recipient
 * counts as delivered. All file I/O runs on the libuv threadpool.
 *
 * Folder names: the address, ASCII-lowercased, used as one path
 * component. An address that is empty, longer than NAME_MAX, starts with
 * '.', or contains '/', '\\', a control byte (< 0x20) or DEL is refused
 * with a permanent failure (5.1.3): it could escape DIR, hide from a
 * listing, or be read as a Maildir++ subfolder. UTF-8 is kept as is.
 */
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "queue/queue.h"

#define MAILDIR_TEXT_MAX 512

enum maildir_outcome {
	MAILDIR_NONE,   /* not attempted (only before the completion) */
	MAILDIR_OK,     /* in new/, durable */
	MAILDIR_TEMP,   /* I/O trouble (errno text) or a store read failure */
	MAILDIR_PERM,   /* an address that cannot map to a folder safely */
};
const char *maildir_outcome_name(enum maildir_outcome o);

struct maildir_result {
	enum maildir_outcome outcome;
	int err;                      /* negative errno of a failure; 0 */
	char dsn[16];                 /* "2.0.0", "4.3.0", "4.2.2", "5.1.3" */
	/* "delivered to maildir MAILBOX/new/NAME", or what went wrong. */
	char text[MAILDIR_TEXT_MAX];
};

/* Loop thread, after all results are written. */
typedef void maildir_done_fn(void *arg);

/*
 * The configured maildir_root (NULL or "": none): deliveries submitted
 * from now on open their DIR beneath it without following symbolic
 * links (maildir.c). Call at start-up and on every reload. Loop thread.
 */
void maildir_set_root(const char *root);

/* True when addr maps to a folder name (see above). Any thread. */
bool maildir_is_safe_name(const char *addr);

/*
 * Delivers msg (its body read chunk by chunk from store in short read
 * transactions on a threadpool thread) to the folder of each of the n
 * recipients under dir, an absolute path (created, one level, when
 * absent). Per recipient: results[i]. Errors such as ENOSPC, EIO, EACCES
 * or a missing body chunk are temporary (4.3.0; EDQUOT 4.2.2); an unsafe
 * address is permanent (5.1.3).
 *
 * OWNERSHIP: dir, msg and rcpts are copied before this returns (msg:
 * id, sender, nchunks); store must stay open and results (n entries)
 * valid and untouched until done has run. Returns 0, after which done
 * runs exactly once on the loop thread (never from inside this call),
 * or -EINVAL (n == 0, dir not absolute, NULL arguments), after which it
 * never runs. Loop thread.
 */
int maildir_deliver(uv_loop_t *loop, struct queue_store *store, const char *dir,
    const struct queue_msg *msg, const char *const *rcpts, size_t n,
    struct maildir_result *results, maildir_done_fn *done, void *arg);

#endif
