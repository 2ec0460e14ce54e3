/*
 * log: operational logging to stderr or syslog, as text or JSON.
 *
 * Entry points: log_open, log_set_format, log_set_debug, log_msg,
 * log_event, fatal, panic.
 * OWNERSHIP: nothing retained; every argument is borrowed for the call.
 * THREADS: any thread. A line is built in memory and written with one
 * write(2) (stderr) or one syslog(3) call, so lines from the queue writer
 * thread and the loop never interleave inside a line.
 * ERRORS: logging never fails the caller; a failed write is dropped.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <sys/time.h>

#include "common/buf.h"
#include "common/log.h"

static const char *log_ident = "govrelay";
static bool log_to_stderr = true;
/* Ours, read once: glibc's getpid() is a system call, and every line names it. */
static long log_pid;
static enum log_format log_fmt = LOG_FORMAT_TEXT;
static bool log_debug_on;

void log_open(const char *ident, bool to_stderr, enum log_format format)
{
	log_ident = ident;
	log_to_stderr = to_stderr;
	log_pid = (long)getpid();
	log_fmt = format;
	if (!to_stderr)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_set_format(enum log_format format)
{
	log_fmt = format;
}

void log_set_debug(bool on)
{
	log_debug_on = on;
}

bool log_is_debug(void)
{
	return log_debug_on;
}

const char *log_level_name(enum log_level level)
{
	switch (level) {
	case LOG_LVL_DEBUG: return "debug";
	case LOG_LVL_INFO: return "info";
	case LOG_LVL_WARN: return "warning";
	case LOG_LVL_ERR: return "error";
	}
	return "unknown";
}

static int log_syslog_prio(enum log_level level)
{
	switch (level) {
	case LOG_LVL_DEBUG: return LOG_DEBUG;
	case LOG_LVL_INFO: return LOG_INFO;
	case LOG_LVL_WARN: return LOG_WARNING;
	case LOG_LVL_ERR: return LOG_ERR;
	}
	return LOG_INFO;
}

/* Text values: printable ASCII and UTF-8 pass; controls become \xNN. */
static void log_escape_text(struct buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f || c == '\\')
			buf_printf(b, "\\x%02x", c);
		else
			buf_append_char(b, (char)c);
	}
}

/*
 * Text field values: on top of log_escape_text, ',' and '=' become \x2c
 * and \x3d, so a line always splits into fields at ", " and each field
 * into key and value at its first '='. A peer's address such as
 * <"x, status=sent"@d> therefore stays one value and cannot plant a
 * field. Spaces stay: values like "sent (250 2.0.0 Ok)" need them, and a
 * space alone separates nothing. Reading a value back is replacing each
 * \xNN by its byte.
 */
static void log_escape_value(struct buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c == 0x7f || c == '\\' || c == ',' || c == '=')
			buf_printf(b, "\\x%02x", c);
		else
			buf_append_char(b, (char)c);
	}
}

static void log_escape_json(struct buf *b, const char *s)
{
	buf_append_char(b, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			buf_append_char(b, '\\');
			buf_append_char(b, (char)c);
		} else if (c < 0x20 || c == 0x7f) {
			buf_printf(b, "\\u%04x", c);
		} else {
			buf_append_char(b, (char)c);
		}
	}
	buf_append_char(b, '"');
}

static void log_prefix(struct buf *b, enum log_level level, const char *id)
{
	if (log_fmt == LOG_FORMAT_JSON) {
		struct timeval tv;
		struct tm tm;
		char ts[40];

		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
		buf_printf(b, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\"", ts,
		    (long)(tv.tv_usec / 1000), log_level_name(level));
		if (id) {
			buf_append_str(b, ",\"id\":");
			log_escape_json(b, id);
		}
		return;
	}
	if (log_to_stderr) {
		struct timeval tv;
		struct tm tm;
		char ts[40];

		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
		buf_printf(b, "%s.%03ldZ %s[%ld]: ", ts, (long)(tv.tv_usec / 1000),
		    log_ident, log_pid != 0 ? log_pid : (long)getpid());
	}
	if (level >= LOG_LVL_WARN)
		buf_printf(b, "%s: ", log_level_name(level));
	if (id) {
		log_escape_text(b, id);
		buf_append_str(b, ": ");
	}
}

static void log_emit(struct buf *b, enum log_level level)
{
	if (log_fmt == LOG_FORMAT_JSON)
		buf_append_char(b, '}');
	if (log_to_stderr) {
		ssize_t n;
		size_t off = 0;

		buf_append_char(b, '\n');
		while (off < b->len) {
			n = write(STDERR_FILENO, b->data + off, b->len - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			off += (size_t)n;
		}
	} else {
		syslog(log_syslog_prio(level), "%s", buf_cstr(b));
	}
}

void log_vmsg(enum log_level level, const char *id, const char *fmt, va_list ap)
{
	struct buf b, text;

	if (level == LOG_LVL_DEBUG && !log_debug_on)
		return;
	buf_init(&b);
	buf_init(&text);
	buf_vprintf(&text, fmt, ap);
	log_prefix(&b, level, id);
	if (log_fmt == LOG_FORMAT_JSON) {
		buf_append_str(&b, ",\"msg\":");
		log_escape_json(&b, buf_cstr(&text));
	} else {
		log_escape_text(&b, buf_cstr(&text));
	}
	log_emit(&b, level);
	buf_free(&text);
	buf_free(&b);
}

void log_msg(enum log_level level, const char *id, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, id, fmt, ap);
	va_end(ap);
}

void log_event(enum log_level level, const char *id, ...)
{
	struct buf b;
	va_list ap;
	const char *key, *val;
	bool first = true;

	if (level == LOG_LVL_DEBUG && !log_debug_on)
		return;
	buf_init(&b);
	log_prefix(&b, level, id);
	va_start(ap, id);
	while ((key = va_arg(ap, const char *)) != NULL) {
		val = va_arg(ap, const char *);
		if (val == NULL)
			continue;
		if (log_fmt == LOG_FORMAT_JSON) {
			buf_append_char(&b, ',');
			log_escape_json(&b, key);
			buf_append_char(&b, ':');
			log_escape_json(&b, val);
		} else {
			if (!first)
				buf_append_str(&b, ", ");
			buf_printf(&b, "%s=", key);
			log_escape_value(&b, val);
		}
		first = false;
	}
	va_end(ap);
	log_emit(&b, level);
	buf_free(&b);
}

void fatal(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERR, NULL, fmt, ap);
	va_end(ap);
	exit(code);
}

void panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_LVL_ERR, "panic", fmt, ap);
	va_end(ap);
	abort();
}
