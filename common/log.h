#ifndef GOVRELAY_LOG_H
#define GOVRELAY_LOG_H
/*
 * log: the operational log (not the audit trail, which lives in queue/).
 * One line per event. Text: "ID: key=value, key=value" (Postfix-like);
 * JSON: one object per line with the same keys. Values are escaped so no
 * peer-supplied byte can forge a line break or a key: in text, ',', '=',
 * '\\' and control bytes inside a value are written \xNN, so a line
 * splits at ", " and a field at its first '='.
 */
#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERR };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* to_stderr=false logs to syslog (facility mail) under ident. */
void log_open(const char *ident, bool to_stderr, enum log_format format);
void log_set_format(enum log_format format);
void log_set_debug(bool on);
bool log_is_debug(void);
const char *log_level_name(enum log_level level);

/* Free text. id (queue or session id) may be NULL. */
void log_msg(enum log_level level, const char *id, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level level, const char *id, const char *fmt, va_list ap);

/*
 * Structured event: alternating const char *key, const char *value,
 * ended by a NULL key. A NULL value is skipped.
 *   log_event(LOG_LVL_INFO, qid, "from", "<a@b>", "size", "123", NULL);
 */
void log_event(enum log_level level, const char *id, ...)
	__attribute__((sentinel));

#define log_debug(id, ...) \
	do { if (log_is_debug()) log_msg(LOG_LVL_DEBUG, id, __VA_ARGS__); } while (0)
#define log_info(id, ...) log_msg(LOG_LVL_INFO, id, __VA_ARGS__)
#define log_warn(id, ...) log_msg(LOG_LVL_WARN, id, __VA_ARGS__)
#define log_err(id, ...) log_msg(LOG_LVL_ERR, id, __VA_ARGS__)

/* An environment we cannot run in: log and exit(code) (sysexits.h). */
void fatal(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));
/* A broken invariant: log and abort with a core dump. Never for peer input. */
void panic(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

#endif
