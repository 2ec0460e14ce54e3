/*
 * cfg: reads govrelay.conf into an immutable snapshot, validating every
 * value against the parameter table in common/cfg_table.h.
 *
 * The table is the only list of parameters (STYLE.md section 9): this file
 * turns it into a row array (name, type, default, bounds, field offset) and
 * dispatches on the type, so a new parameter needs one table line and no
 * code here unless it brings a new type. Defaults go through the very same
 * parsers as file values, so a bad default in the table is caught too.
 * The checks that look at the whole snapshot are cfg_check.c's.
 *
 * Entry points: cfg_load (parse and validate a file), cfg_ref/cfg_unref
 * (snapshot lifetime), cfg_params (the table, for checkers and docs),
 * cfg_parse_size/duration/cidr (shared with the CLI), cfg_cidr_list_has,
 * cfg_role_name.
 * OWNERSHIP: a snapshot owns every string and array in it; the last
 * cfg_unref frees them all. Arguments are borrowed.
 * THREADS: cfg_load may run on any thread (it only reads the file and
 * calls gethostname). A snapshot is immutable after loading, so any thread
 * may read it, but refs is a plain counter: cfg_ref/cfg_unref belong to
 * the loop thread only.
 * ERRORS: cfg_load returns -EINVAL after appending one "FILE:LINE: message"
 * line per problem (it collects all of them rather than stopping at the
 * first, so an operator fixes a file in one round), or a negative errno
 * when the file cannot be read. It never logs and never resolves names:
 * every address is numeric, because the daemon must not do DNS here.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/cfg_int.h"
#include "common/util.h"
#include "common/xmalloc.h"

static const char cfg_not_number[] = "is not a number";
static const char cfg_not_size[] = "is not a size (bytes, or a number with k, m or g)";
static const char cfg_not_duration[] = "is not a duration (a number and a unit: s, m, h, d)";

const struct cfg_row cfg__rows[CFG_I_COUNT] = {
#define CFG_ROW(name, type, def, min, max, reload, doc) \
	{ #name, CFG_T_##type, def, min, max, offsetof(struct config, name) },
	CFG_PARAMS(CFG_ROW)
#undef CFG_ROW
};

static const struct cfg_param_info cfg_infos[CFG_I_COUNT] = {
#define CFG_INFO(name, type, def, min, max, reload, doc) \
	{ #name, #type, def, min, max, reload, doc },
	CFG_PARAMS(CFG_INFO)
#undef CFG_INFO
};


static void cfg_free(struct config *cfg);

const struct cfg_param_info *cfg_params(size_t *count)
{
	if (count != NULL)
		*count = CFG_I_COUNT;
	return cfg_infos;
}

const char *cfg_role_name(enum cfg_role role)
{
	switch (role) {
	case CFG_ROLE_MX: return "mx";
	case CFG_ROLE_SUBMISSION: return "submission";
	case CFG_ROLE_SUBMISSIONS: return "submissions";
	}
	return "unknown";
}

void cfg__err(struct cfg_ctx *ctx, unsigned line, const char *fmt, ...)
{
	va_list ap;

	if (line > 0)
		buf_printf(ctx->errors, "%s:%u: ", ctx->file, line);
	else
		buf_printf(ctx->errors, "%s: ", ctx->file);
	va_start(ap, fmt);
	buf_vprintf(ctx->errors, fmt, ap);
	va_end(ap);
	buf_append_char(ctx->errors, '\n');
	ctx->nerrors++;
}

static bool cfg_is_space(char c)
{
	return c == ' ' || c == '\t';
}

static bool cfg_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Reads decimal digits at s into *v, leaving *end after them. Returns NULL
 * or why the text is not a number. Overflow is checked before each step,
 * so "99999999999999999999" is "too large" rather than a wrapped value.
 */
static const char *cfg_uint_parse(const char *s, const char **end, uint64_t *v)
{
	uint64_t n = 0;

	if (!cfg_is_digit(*s))
		return cfg_not_number;
	for (; cfg_is_digit(*s); s++) {
		unsigned d = (unsigned)(*s - '0');

		if (n > (UINT64_MAX - d) / 10)
			return "is too large";
		n = n * 10 + d;
	}
	*end = s;
	*v = n;
	return NULL;
}

static const char *cfg_size_why(const char *s, uint64_t *bytes)
{
	const char *end, *why;
	unsigned shift = 0;
	uint64_t v;

	why = cfg_uint_parse(s, &end, &v);
	if (why != NULL)
		return why == cfg_not_number ? cfg_not_size : why;
	switch (*end) {
	case '\0': break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: return cfg_not_size;
	}
	if (*end != '\0')
		return cfg_not_size;
	if (shift > 0 && v > (UINT64_MAX >> shift))
		return "is too large";
	*bytes = v << shift;
	return NULL;
}

int cfg_parse_size(const char *s, uint64_t *bytes)
{
	return cfg_size_why(s, bytes) == NULL ? 0 : -EINVAL;
}

static const char *cfg_duration_why(const char *s, uint64_t *ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 },
		{ "h", 3600000 }, { "d", 86400000 },
	};
	const char *end, *why;
	uint64_t v;
	size_t i;

	why = cfg_uint_parse(s, &end, &v);
	if (why != NULL)
		return why == cfg_not_number ? cfg_not_duration : why;
	/* A bare number is ambiguous (Postfix reads seconds, others ms), so refuse it. */
	if (*end == '\0')
		return "needs a unit (s, m, h, d)";
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].unit) != 0)
			continue;
		if (v > UINT64_MAX / units[i].ms)
			return "is too large";
		*ms = v * units[i].ms;
		return NULL;
	}
	return "has an unknown unit (use ms, s, m, h or d)";
}

int cfg_parse_duration(const char *s, uint64_t *ms)
{
	return cfg_duration_why(s, ms) == NULL ? 0 : -EINVAL;
}

/* Writes ms in the largest unit that divides it exactly, for messages. */
void cfg__fmt_duration(uint64_t ms, char *out, size_t outlen)
{
	if (ms == 0)
		snprintf(out, outlen, "0s");
	else if (ms % 86400000 == 0)
		snprintf(out, outlen, "%llud", (unsigned long long)(ms / 86400000));
	else if (ms % 3600000 == 0)
		snprintf(out, outlen, "%lluh", (unsigned long long)(ms / 3600000));
	else if (ms % 60000 == 0)
		snprintf(out, outlen, "%llum", (unsigned long long)(ms / 60000));
	else if (ms % 1000 == 0)
		snprintf(out, outlen, "%llus", (unsigned long long)(ms / 1000));
	else
		snprintf(out, outlen, "%llums", (unsigned long long)ms);
}

static const char *cfg_cidr_why(const char *s, struct cfg_cidr *out)
{
	char tmp[INET6_ADDRSTRLEN + 8];
	struct cfg_cidr c;
	unsigned bits, i;
	char *slash;

	if (str_copy(tmp, s, sizeof(tmp)) >= sizeof(tmp))
		return "is not an IPv4 or IPv6 address or CIDR";
	memset(&c, 0, sizeof(c));
	slash = strchr(tmp, '/');
	if (slash != NULL)
		*slash = '\0';
	if (strchr(tmp, ':') != NULL) {
		c.family = AF_INET6;
		bits = 128;
	} else {
		c.family = AF_INET;
		bits = 32;
	}
	if (inet_pton(c.family, tmp, c.addr) != 1)
		return "is not an IPv4 or IPv6 address or CIDR";
	c.prefix = bits;
	if (slash != NULL) {
		const char *p = slash + 1, *end;
		uint64_t v;

		/* At most three digits: "/0000000032" is a typo, not a prefix. */
		if (cfg_uint_parse(p, &end, &v) != NULL || *end != '\0' ||
		    end - p > 3 || v > bits)
			return c.family == AF_INET ? "has a bad prefix length (0..32)" :
						     "has a bad prefix length (0..128)";
		c.prefix = (unsigned)v;
	}
	/* Clear host bits so matching can compare whole bytes. */
	for (i = 0; i < bits / 8; i++) {
		unsigned keep = c.prefix > i * 8 ? c.prefix - i * 8 : 0;

		if (keep >= 8)
			continue;
		c.addr[i] &= (uint8_t)(0xff00u >> keep);
	}
	*out = c;
	return NULL;
}

int cfg_parse_cidr(const char *s, struct cfg_cidr *out)
{
	return cfg_cidr_why(s, out) == NULL ? 0 : -EINVAL;
}

static bool cfg_prefix_match(const uint8_t *net, const uint8_t *addr, unsigned prefix)
{
	unsigned whole = prefix / 8, rest = prefix % 8;

	if (memcmp(net, addr, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((net[whole] ^ addr[whole]) & (uint8_t)(0xff00u >> rest)) == 0;
}

bool cfg_cidr_list_has(const struct cfg_cidr_list *list, const struct sockaddr *addr)
{
	uint8_t v4[4], v6[16];
	bool have4 = false, have6 = false;
	size_t i;

	if (list == NULL || addr == NULL)
		return false;
	if (addr->sa_family == AF_INET) {
		struct sockaddr_in sin;

		memcpy(&sin, addr, sizeof(sin));
		memcpy(v4, &sin.sin_addr, 4);
		have4 = true;
	} else if (addr->sa_family == AF_INET6) {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, addr, sizeof(sin6));
		memcpy(v6, &sin6.sin6_addr, 16);
		have6 = true;
		/*
		 * A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d;
		 * they must match the IPv4 entries operators write.
		 */
		if (IN6_IS_ADDR_V4MAPPED(&sin6.sin6_addr)) {
			memcpy(v4, v6 + 12, 4);
			have4 = true;
		}
	} else {
		return false;
	}
	for (i = 0; i < list->n; i++) {
		const struct cfg_cidr *c = &list->v[i];

		if (c->family == AF_INET && have4 && cfg_prefix_match(c->addr, v4, c->prefix))
			return true;
		if (c->family == AF_INET6 && have6 && cfg_prefix_match(c->addr, v6, c->prefix))
			return true;
	}
	return false;
}

static const char *cfg_port_why(const char *s, uint16_t *port)
{
	const char *end;
	uint64_t v;

	if (cfg_uint_parse(s, &end, &v) != NULL || *end != '\0' || v < 1 || v > 65535)
		return "needs a port number 1..65535";
	*port = (uint16_t)v;
	return NULL;
}

/*
 * "ADDRESS:PORT" or "[IPv6]:PORT", numeric only; with allow_star, "*" is
 * 0.0.0.0. Fills ss (address and port) and host (canonical, no brackets).
 */
static const char *cfg_hostport_why(const char *s, bool allow_star,
				    struct sockaddr_storage *ss, char *host,
				    size_t hostlen, uint16_t *port)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *colon, *why;
	size_t alen;
	int family;
	uint8_t bytes[16];

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL)
			return "has '[' without ']'";
		alen = (size_t)(close - s - 1);
		if (alen >= sizeof(addr))
			return "is not a numeric IPv6 address in brackets";
		memcpy(addr, s + 1, alen);
		addr[alen] = '\0';
		if (close[1] != ':')
			return "needs ADDRESS:PORT";
		colon = close + 1;
		family = AF_INET6;
		if (inet_pton(AF_INET6, addr, bytes) != 1)
			return "is not a numeric IPv6 address in brackets";
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return "needs ADDRESS:PORT";
		alen = (size_t)(colon - s);
		if (memchr(s, ':', alen) != NULL)
			return "needs brackets around an IPv6 address, as [ADDRESS]:PORT";
		if (alen >= sizeof(addr))
			return "is not a numeric IPv4 address (names are not resolved)";
		memcpy(addr, s, alen);
		addr[alen] = '\0';
		family = AF_INET;
		if (allow_star && strcmp(addr, "*") == 0)
			str_copy(addr, "0.0.0.0", sizeof(addr));
		if (inet_pton(AF_INET, addr, bytes) != 1)
			return "is not a numeric IPv4 address (names are not resolved)";
	}
	why = cfg_port_why(colon + 1, port);
	if (why != NULL)
		return why;
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET) {
		struct sockaddr_in sin;

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(*port);
		memcpy(&sin.sin_addr, bytes, 4);
		memcpy(ss, &sin, sizeof(sin));
	} else {
		struct sockaddr_in6 sin6;

		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons(*port);
		memcpy(&sin6.sin6_addr, bytes, 16);
		memcpy(ss, &sin6, sizeof(sin6));
	}
	if (inet_ntop(family, bytes, host, (socklen_t)hostlen) == NULL)
		return "is not a numeric address";
	return NULL;
}

/* Relative paths are relative to the configuration file's folder (INTERFACE.md). */
static char *cfg_path_abs(struct cfg_ctx *ctx, const char *value)
{
	struct buf b;

	if (value[0] == '/')
		return xstrdup(value);
	buf_init(&b);
	buf_printf(&b, "%s/%s", strcmp(ctx->cfg->dir, "/") == 0 ? "" : ctx->cfg->dir, value);
	buf_cstr(&b);
	return buf_steal(&b, NULL);
}

static void cfg_set_listen(struct cfg_ctx *ctx, const struct cfg_row *row,
			   struct cfg_listen_list *list, const char *value, unsigned line)
{
	static const char *const roles[] = { "mx", "submission", "submissions" };
	struct cfg_listen l;
	const char *p = value, *why;
	uint16_t port;
	char host[64];
	size_t rlen, i;

	while (*p != '\0' && !cfg_is_space(*p))
		p++;
	rlen = (size_t)(p - value);
	while (cfg_is_space(*p))
		p++;
	if (*p == '\0' || strpbrk(p, " \t") != NULL) {
		cfg__err(ctx, line, "%s: expected ROLE ADDRESS:PORT, got '%.*s'",
			row->name, CFG_QUOTE_MAX, value);
		return;
	}
	memset(&l, 0, sizeof(l));
	for (i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		if (rlen == strlen(roles[i]) && memcmp(value, roles[i], rlen) == 0)
			break;
	if (i == sizeof(roles) / sizeof(roles[0])) {
		cfg__err(ctx, line, "%s: unknown role '%.*s' (use mx, submission or submissions)",
			row->name, (int)(rlen < CFG_QUOTE_MAX ? rlen : CFG_QUOTE_MAX), value);
		return;
	}
	l.role = (enum cfg_role)i;
	why = cfg_hostport_why(p, true, &l.addr, host, sizeof(host), &port);
	if (why != NULL) {
		cfg__err(ctx, line, "%s: '%.*s' %s", row->name, CFG_QUOTE_MAX, p, why);
		return;
	}
	if (str_copy(l.text, p, sizeof(l.text)) >= sizeof(l.text)) {
		cfg__err(ctx, line, "%s: address '%.*s' is too long", row->name, CFG_QUOTE_MAX, p);
		return;
	}
	if (list->n >= CFG_LISTEN_MAX) {
		cfg__err(ctx, line, "%s: too many listen lines (at most %d)", row->name,
			CFG_LISTEN_MAX);
		return;
	}
	l.line = line;
	list->v = xreallocarray(list->v, list->n + 1, sizeof(*list->v));
	list->v[list->n++] = l;
}

static void cfg_set_cidrs(struct cfg_ctx *ctx, const struct cfg_row *row,
			  struct cfg_cidr_list *list, const char *value, unsigned line)
{
	const char *p = value;
	bool bad = false;

	free(list->v);
	list->v = NULL;
	list->n = 0;
	while (*p != '\0') {
		char tok[INET6_ADDRSTRLEN + 8];
		struct cfg_cidr c;
		const char *why;
		size_t len;

		if (cfg_is_space(*p) || *p == ',') {
			p++;
			continue;
		}
		len = strcspn(p, " \t,");
		if (str_copyn(tok, p, len, sizeof(tok)) >= sizeof(tok))
			why = "is not an IPv4 or IPv6 address or CIDR";
		else
			why = cfg_cidr_why(tok, &c);
		if (why != NULL) {
			cfg__err(ctx, line, "%s: '%.*s' %s", row->name,
				(int)(len < CFG_QUOTE_MAX ? len : CFG_QUOTE_MAX), p, why);
			bad = true;
		} else {
			list->v = xreallocarray(list->v, list->n + 1, sizeof(*list->v));
			list->v[list->n++] = c;
		}
		p += len;
	}
	if (bad) {
		free(list->v);
		list->v = NULL;
		list->n = 0;
	} else if (list->n == 0) {
		cfg__err(ctx, line, "%s: needs at least one address or CIDR", row->name);
	}
}

int cfg_parse_endpoint(const char *s, struct cfg_endpoint *out, const char **why)
{
	char host[64];
	uint16_t port;

	memset(out, 0, sizeof(*out));
	*why = NULL;
	if (strncmp(s, "unix:", 5) == 0) {
		const char *path = s + 5;

		if (path[0] == '\0')
			*why = "unix: needs a socket path";
		else if (path[0] != '/')
			*why = "unix: needs an absolute socket path";
		else if (strlen(path) > CFG_SUN_PATH_MAX)
			*why = "unix: socket path is too long for a unix socket";
		if (*why != NULL)
			return -EINVAL;
		out->is_unix = true;
		str_copy(out->path, path, sizeof(out->path));
		return 0;
	}
	if (strncmp(s, "tcp:", 4) == 0) {
		*why = cfg_hostport_why(s + 4, false, &out->addr, host, sizeof(host), &port);
		return *why != NULL ? -EINVAL : 0;
	}
	*why = "expected unix:PATH or tcp:ADDRESS:PORT";
	return -EINVAL;
}

static void cfg_set_endpoint(struct cfg_ctx *ctx, const struct cfg_row *row,
			     char **field, const char *value, unsigned line)
{
	struct cfg_endpoint ep;
	const char *why;

	if (strncmp(value, "unix:", 5) == 0) {
		char *path;

		if (value[5] == '\0') {
			cfg__err(ctx, line, "%s: unix: needs a socket path", row->name);
			return;
		}
		path = cfg_path_abs(ctx, value + 5);
		if (strlen(path) > CFG_SUN_PATH_MAX) {
			cfg__err(ctx, line, "%s: socket path '%.*s...' is longer than %zu bytes",
				row->name, CFG_QUOTE_MAX, path, CFG_SUN_PATH_MAX);
			free(path);
			return;
		}
		free(*field);
		*field = xmalloc(strlen(path) + 6);
		snprintf(*field, strlen(path) + 6, "unix:%s", path);
		free(path);
		return;
	}
	if (strncmp(value, "tcp:", 4) == 0) {
		/* The one parser of what a snapshot holds (cfg_parse_endpoint). */
		if (cfg_parse_endpoint(value, &ep, &why) < 0) {
			cfg__err(ctx, line, "%s: '%.*s' %s", row->name, CFG_QUOTE_MAX,
				value + 4, why);
			return;
		}
		free(*field);
		*field = xstrdup(value);
		return;
	}
	cfg__err(ctx, line, "%s: expected unix:PATH or tcp:ADDRESS:PORT, got '%.*s'",
		row->name, CFG_QUOTE_MAX, value);
}

/* Bounds from the table, with the allowed range named in the message. */
static bool cfg_in_range(struct cfg_ctx *ctx, const struct cfg_row *row,
			 uint64_t v, const char *value, unsigned line)
{
	char lo[32], hi[32];

	if (row->max == 0 || (v >= row->min && v <= row->max))
		return true;
	if (row->type == CFG_T_DURATION) {
		cfg__fmt_duration(row->min, lo, sizeof(lo));
		cfg__fmt_duration(row->max, hi, sizeof(hi));
	} else {
		snprintf(lo, sizeof(lo), "%llu", (unsigned long long)row->min);
		snprintf(hi, sizeof(hi), "%llu", (unsigned long long)row->max);
	}
	cfg__err(ctx, line, "%s: %.*s is out of range (allowed: %s..%s%s)", row->name,
		CFG_QUOTE_MAX, value, lo, hi, row->type == CFG_T_SIZE ? " bytes" : "");
	return false;
}

/* Parses value for row into the snapshot; reports problems at line. */
/* A switch: yes/no, true/false, on/off, 1/0 (any case). 0 or -EINVAL. */
static int cfg_bool_parse(const char *value, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (str_ieq(value, yes[i])) {
			*out = true;
			return 0;
		}
		if (str_ieq(value, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static void cfg_set(struct cfg_ctx *ctx, size_t idx, const char *value, unsigned line)
{
	const struct cfg_row *row = &cfg__rows[idx];
	void *field = (char *)ctx->cfg + row->off;
	const char *why = NULL, *end;
	uint64_t v = 0;

	if (value[0] == '\0') {
		cfg__err(ctx, line, "%s: needs a value", row->name);
		return;
	}
	switch (row->type) {
	case CFG_T_STRING: {
		const char *p;

		/* One word: the only string today is a host name for the greeting. */
		for (p = value; *p != '\0'; p++)
			if ((unsigned char)*p <= ' ' || *p == 0x7f)
				break;
		if (*p != '\0' || p - value > 255) {
			cfg__err(ctx, line, "%s: '%.*s' must be one word of at most 255 bytes",
				row->name, CFG_QUOTE_MAX, value);
			return;
		}
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return;
	}
	case CFG_T_PATH: {
		char *path = cfg_path_abs(ctx, value);

		if (strlen(path) >= PATH_MAX) {
			cfg__err(ctx, line, "%s: path is longer than %d bytes", row->name,
				PATH_MAX - 1);
			free(path);
			return;
		}
		free(*(char **)field);
		*(char **)field = path;
		return;
	}
	case CFG_T_SIZE:
		why = cfg_size_why(value, &v);
		break;
	case CFG_T_COUNT:
	case CFG_T_PORT:
		why = cfg_uint_parse(value, &end, &v);
		if (why == NULL && *end != '\0')
			why = "is not a number";
		break;
	case CFG_T_DURATION:
		why = cfg_duration_why(value, &v);
		break;
	case CFG_T_LOGFORMAT:
		if (strcmp(value, "text") == 0)
			*(enum log_format *)field = LOG_FORMAT_TEXT;
		else if (strcmp(value, "json") == 0)
			*(enum log_format *)field = LOG_FORMAT_JSON;
		else
			cfg__err(ctx, line, "%s: '%.*s' is not text or json", row->name,
				CFG_QUOTE_MAX, value);
		return;
	case CFG_T_CIDRS:
		cfg_set_cidrs(ctx, row, field, value, line);
		return;
	case CFG_T_LISTEN:
		cfg_set_listen(ctx, row, field, value, line);
		return;
	case CFG_T_HOSTPORT: {
		struct cfg_hostport *hp = field;
		struct sockaddr_storage ss;

		why = cfg_hostport_why(value, false, &ss, hp->host, sizeof(hp->host), &hp->port);
		if (why != NULL) {
			memset(hp, 0, sizeof(*hp));
			cfg__err(ctx, line, "%s: '%.*s' %s", row->name, CFG_QUOTE_MAX, value, why);
			return;
		}
		hp->set = true;
		return;
	}
	case CFG_T_ENDPOINT:
		cfg_set_endpoint(ctx, row, field, value, line);
		return;
	case CFG_T_BOOL:
		if (cfg_bool_parse(value, (bool *)field) < 0)
			cfg__err(ctx, line, "%s: '%.*s' is not yes or no", row->name,
				CFG_QUOTE_MAX, value);
		return;
	}
	if (why != NULL) {
		cfg__err(ctx, line, "%s: '%.*s' %s", row->name, CFG_QUOTE_MAX, value, why);
		return;
	}
	if (!cfg_in_range(ctx, row, v, value, line))
		return;
	*(uint64_t *)field = v;
}

static size_t cfg_lookup(const char *key)
{
	size_t i;

	for (i = 0; i < CFG_I_COUNT; i++)
		if (strcmp(cfg__rows[i].name, key) == 0)
			return i;
	return CFG_I_COUNT;
}

/* One "key = value" line, already known not to be blank or a comment. */
static void cfg_line(struct cfg_ctx *ctx, char *s, unsigned line)
{
	char *eq, *key, *value, *end;
	size_t idx;

	eq = strchr(s, '=');
	if (eq == NULL) {
		cfg__err(ctx, line, "expected 'key = value', got '%.*s'", CFG_QUOTE_MAX, s);
		return;
	}
	*eq = '\0';
	key = s;
	end = eq;
	while (end > key && cfg_is_space(end[-1]))
		*--end = '\0';
	value = eq + 1;
	while (cfg_is_space(*value))
		value++;
	if (key[0] == '\0') {
		cfg__err(ctx, line, "expected 'key = value', the key is missing");
		return;
	}
	idx = cfg_lookup(key);
	if (idx == CFG_I_COUNT) {
		cfg__err(ctx, line, "unknown parameter '%.*s'", CFG_QUOTE_MAX, key);
		return;
	}
	if (ctx->line[idx] != 0 && idx != CFG_I_listen) {
		cfg__err(ctx, line, "%s is given twice (lines %u and %u)", key,
			ctx->line[idx], line);
		return;
	}
	if (ctx->line[idx] == 0)
		ctx->line[idx] = line;
	cfg_set(ctx, idx, value, line);
}

/*
 * Strips comments and surrounding blanks in place. A '#' starts a comment
 * at the start of the line or after a blank, so values such as "a#b" stay
 * whole. Returns the remaining text (possibly empty).
 */
static char *cfg_strip(char *s)
{
	char *p, *end;

	while (cfg_is_space(*s))
		s++;
	if (*s == '#')
		*s = '\0';
	for (p = s; *p != '\0'; p++) {
		if (*p == '#' && p > s && cfg_is_space(p[-1])) {
			*p = '\0';
			break;
		}
	}
	end = s + strlen(s);
	while (end > s && (cfg_is_space(end[-1]) || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

/*
 * Reads one line into line[CFG_LINE_MAX + 1] without ever holding more
 * than that: a longer line is consumed and flagged, not allocated.
 * Returns 1 for a line, 0 at end of file, or a negative errno.
 */
static int cfg_read_line(FILE *f, char *line, bool *too_long, bool *has_nul)
{
	size_t len = 0;
	int c;

	*too_long = false;
	*has_nul = false;
	while ((c = getc(f)) != EOF) {
		if (c == '\n')
			break;
		if (c == '\0')
			*has_nul = true;
		if (len < CFG_LINE_MAX)
			line[len++] = (char)c;
		else
			*too_long = true;
	}
	line[len] = '\0';
	if (ferror(f))
		return errno ? -errno : -EIO;
	if (c == EOF && len == 0 && !*too_long)
		return 0;
	return 1;
}

/* Sets file and dir: absolute, without resolving symlinks. */
static int cfg_set_names(struct cfg_ctx *ctx, const char *file)
{
	struct config *cfg = ctx->cfg;
	char cwd[PATH_MAX];
	char *slash;
	struct buf b;

	if (file[0] == '/') {
		cfg->file = xstrdup(file);
	} else {
		if (getcwd(cwd, sizeof(cwd)) == NULL)
			return -errno;
		buf_init(&b);
		buf_printf(&b, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, file);
		buf_cstr(&b);
		cfg->file = buf_steal(&b, NULL);
	}
	slash = strrchr(cfg->file, '/');
	if (slash == cfg->file)
		cfg->dir = xstrdup("/");
	else
		cfg->dir = xstrndup(cfg->file, (size_t)(slash - cfg->file));
	return 0;
}

static int cfg_read_file(struct cfg_ctx *ctx, FILE *f)
{
	char *line = xmalloc(CFG_LINE_MAX + 1);
	bool too_long, has_nul;
	unsigned lineno = 0;
	int rc;

	for (;;) {
		char *s;

		errno = 0;
		rc = cfg_read_line(f, line, &too_long, &has_nul);
		if (rc <= 0)
			break;
		lineno++;
		if (too_long) {
			cfg__err(ctx, lineno, "line is longer than %d bytes", CFG_LINE_MAX);
			continue;
		}
		if (has_nul) {
			cfg__err(ctx, lineno, "line contains a NUL byte");
			continue;
		}
		s = cfg_strip(line);
		if (*s != '\0')
			cfg_line(ctx, s, lineno);
	}
	free(line);
	return rc;
}

int cfg_load(const char *file, struct config **out, struct buf *errors)
{
	return cfg_load_flags(file, 0, out, errors);
}

int cfg_load_flags(const char *file, unsigned flags, struct config **out,
    struct buf *errors)
{
	struct cfg_ctx ctx;
	struct buf scratch;
	struct stat st;
	FILE *f;
	size_t i;
	int rc;

	*out = NULL;
	buf_init(&scratch);
	memset(&ctx, 0, sizeof(ctx));
	ctx.file = file;
	ctx.flags = flags;
	ctx.errors = errors != NULL ? errors : &scratch;

	f = fopen(file, "re");
	if (f == NULL) {
		rc = -errno;
		goto fail_read;
	}
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		rc = -EISDIR;
		goto fail_read;
	}
	ctx.cfg = xcalloc(1, sizeof(*ctx.cfg));
	ctx.cfg->refs = 1;
	rc = cfg_set_names(&ctx, file);
	if (rc < 0)
		goto fail_read;

	rc = cfg_read_file(&ctx, f);
	if (rc < 0)
		goto fail_read;
	fclose(f);
	f = NULL;

	/* Defaults pass through the same parsers, so the table is checked too. */
	for (i = 0; i < CFG_I_COUNT; i++)
		if (ctx.line[i] == 0 && cfg__rows[i].def[0] != '\0')
			cfg_set(&ctx, i, cfg__rows[i].def, 0);
	cfg__check(&ctx);

	if (ctx.nerrors > 0) {
		cfg_free(ctx.cfg);
		buf_free(&scratch);
		return -EINVAL;
	}
	buf_free(&scratch);
	*out = ctx.cfg;
	return 0;

fail_read:
	buf_printf(ctx.errors, "%s: cannot read: %s\n", file, strerror(-rc));
	if (f != NULL)
		fclose(f);
	cfg_free(ctx.cfg);
	buf_free(&scratch);
	return rc;
}

struct config *cfg_ref(struct config *cfg)
{
	cfg->refs++;
	return cfg;
}

void cfg_unref(struct config *cfg)
{
	if (cfg == NULL)
		return;
	if (--cfg->refs > 0)
		return;
	cfg_free(cfg);
}

static void cfg_free(struct config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < CFG_I_COUNT; i++) {
		void *field = (char *)cfg + cfg__rows[i].off;

		switch (cfg__rows[i].type) {
		case CFG_T_STRING:
		case CFG_T_PATH:
		case CFG_T_ENDPOINT:
			free(*(char **)field);
			break;
		case CFG_T_CIDRS:
			free(((struct cfg_cidr_list *)field)->v);
			break;
		case CFG_T_LISTEN:
			free(((struct cfg_listen_list *)field)->v);
			break;
		default:
			break;
		}
	}
	free(cfg->file);
	free(cfg->dir);
	free(cfg);
}
