#ifndef GOVRELAY_POLICY_CLAMD_H
#define GOVRELAY_POLICY_CLAMD_H
/*
 * clamd: an asynchronous client of clamd's INSTREAM command on the libuv
 * loop (clamd(8); DEPENDENCIES.md section 8). A scan is made when a
 * message starts, fed the message piece by piece as the client sends it
 * (the connection opens with the first piece and every piece is written
 * at once), finished when the message has ended, and answers once: clean,
 * found NAME, or error WHY. It never blocks the loop and never waits
 * without a deadline: every wait on clamd (the connect, a write it does
 * not take, its answer) is bounded by the scan's timeout.
 *
 * Life of a scan: clamd_scan_new, clamd_scan_write any number of times,
 * clamd_scan_finish once (the answer comes then or later), and
 * clamd_scan_close once, in any state: after close the answer never runs,
 * and the memory goes when libuv has closed the handles.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/cfg.h"

enum clamd_status {
	CLAMD_CLEAN,    /* "stream: OK" */
	CLAMD_FOUND,    /* "stream: NAME FOUND": text is NAME */
	CLAMD_ERROR,    /* no verdict: text says why (clamd's words or ours) */
};
const char *clamd_status_name(enum clamd_status status);

struct clamd_result {
	enum clamd_status status;
	/* FOUND: the signature name; ERROR: why, printable ASCII, bounded. */
	char text[200];
};

/* Where clamd listens: struct cfg_endpoint (common/cfg.h). */
struct clamd_target {
	struct cfg_endpoint ep;
	char text[128];         /* as configured, for log lines */
};

/*
 * Parses a `clamd` value as a loaded configuration holds it: "unix:PATH"
 * (absolute) or "tcp:ADDRESS:PORT" (numeric; no DNS). 0, or -EINVAL with
 * err saying why.
 */
int clamd_target_parse(const char *spec, struct clamd_target *t, char *err, size_t errlen);

/*
 * Parses clamd's reply to INSTREAM, its terminating NUL (or newline)
 * excluded: len bytes at reply. Always fills r: a reply that is not one
 * of the three forms is an ERROR that quotes it.
 */
void clamd_reply_parse(const char *reply, size_t len, struct clamd_result *r);

/* The answer of a scan; r is borrowed for the call. Loop thread. */
typedef void clamd_done_cb(void *arg, const struct clamd_result *r);

struct clamd_scan;

/*
 * A scan to target (copied) whose every wait on clamd is bounded by
 * timeout_ms. Nothing is connected yet. Loop thread.
 */
struct clamd_scan *clamd_scan_new(uv_loop_t *loop, const struct clamd_target *target,
    uint64_t timeout_ms);
/*
 * The next len bytes of the message (copied: data is borrowed). The
 * first call opens the connection. Ignored once the scan has its answer
 * (clamd refused or failed early) or after finish. Loop thread.
 */
void clamd_scan_write(struct clamd_scan *sc, const char *data, size_t len);
/*
 * The message has ended: the end of the stream is sent and done(arg, r)
 * runs exactly once, maybe before this returns (the scan failed early),
 * unless the scan is closed first. Call it once. Loop thread.
 */
void clamd_scan_finish(struct clamd_scan *sc, clamd_done_cb *done, void *arg);
/*
 * Ends the scan in any state (a connect, writes or the answer in flight):
 * done never runs after this, and the memory is freed once libuv has
 * closed the handles. NULL is fine. Loop thread.
 */
void clamd_scan_close(struct clamd_scan *sc);

#endif
