#ifndef GOVRELAY_CFG_INT_H
#define GOVRELAY_CFG_INT_H
/*
 * cfg_int.h: what the two files of the configuration reader share
 * (cfg.c: the table, the file and each value; cfg_check.c: the checks
 * that look at the whole snapshot once every value is parsed). Never
 * included from outside common/cfg*.c.
 */
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>

#include "common/buf.h"
#include "common/cfg.h"

/* Longest line accepted, newline excluded. */
#define CFG_LINE_MAX 4096
/* A sanity bound: more listeners than this is a typo generator, not a setup. */
#define CFG_LISTEN_MAX 256
/* Longest value quoted back in a message, so one bad line cannot flood. */
#define CFG_QUOTE_MAX 64
/* Room for a unix socket path, NUL excluded. */
#define CFG_SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

enum cfg_type {
	CFG_T_STRING,
	CFG_T_PATH,
	CFG_T_SIZE,
	CFG_T_COUNT,
	CFG_T_DURATION,
	CFG_T_PORT,
	CFG_T_LOGFORMAT,
	CFG_T_CIDRS,
	CFG_T_LISTEN,
	CFG_T_HOSTPORT,
	CFG_T_ENDPOINT,
	CFG_T_BOOL,
};

/* One index per parameter, so the checks can name rows directly. */
enum cfg_index {
#define CFG_IDX(name, type, def, min, max, reload, doc) CFG_I_##name,
	CFG_PARAMS(CFG_IDX)
#undef CFG_IDX
	CFG_I_COUNT
};

struct cfg_row {
	const char *name;
	enum cfg_type type;
	const char *def;
	uint64_t min, max;
	size_t off;
};

/* State of one cfg_load call. */
struct cfg_ctx {
	const char *file;          /* as the caller wrote it, for messages */
	struct config *cfg;
	struct buf *errors;
	unsigned nerrors;
	unsigned flags;             /* CFG_LOAD_* */
	unsigned line[CFG_I_COUNT]; /* where each key was set; 0 = not in file */
};

/* The table as rows (name, type, default, bounds, field offset). */
extern const struct cfg_row cfg__rows[CFG_I_COUNT];

/* "FILE:LINE: message\n", or "FILE: message\n" for file-wide problems. */
void cfg__err(struct cfg_ctx *ctx, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* A duration as the file would write it ("90s", "5m"). */
void cfg__fmt_duration(uint64_t ms, char *out, size_t outlen);
/* Checks that involve more than one key, after every value is parsed. */
void cfg__check(struct cfg_ctx *ctx);

#endif
