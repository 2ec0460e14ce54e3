/*
 * cfg_check: the checks of a configuration snapshot that need more than
 * one value, or the system: required keys, the host name, keys that go
 * in pairs, files that must be readable (and the audit key loadable),
 * listeners that cannot all bind, the postmaster address, the daemon's
 * user (never root), and keys refused until their feature exists.
 *
 * Entry point: cfg__check (cfg_int.h), from cfg_load_flags.
 * OWNERSHIP: fills defaults into the snapshot being loaded (hostname,
 * control_socket, the canonical postmaster_address); borrows the rest.
 * THREADS: whatever thread runs cfg_load (getpwnam_r, gethostname).
 * ERRORS: one "FILE:LINE: message" per problem through cfg__err.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/addr.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/cfg_int.h"
#include "common/checkpoint.h"
#include "common/util.h"
#include "common/xmalloc.h"

static bool cfg_hostname_ok(const char *name)
{
	size_t len = strlen(name), label = 0;
	const char *p;
	char prev = '.';

	if (len == 0 || len > 253)
		return false;
	for (p = name; *p != '\0'; p++) {
		char c = *p;

		if (c == '.') {
			if (label == 0 || prev == '-')
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			   (c >= '0' && c <= '9') || c == '-') {
			if (c == '-' && label == 0)
				return false;
			if (++label > 63)
				return false;
		} else {
			return false;
		}
		prev = c;
	}
	return label > 0 && prev != '-';
}

static void cfg_check_readable(struct cfg_ctx *ctx, size_t idx)
{
	const char *path = *(char **)((char *)ctx->cfg + cfg__rows[idx].off);
	struct stat st;
	int fd;

	if (path == NULL)
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		cfg__err(ctx, ctx->line[idx], "%s: cannot read %s: %s", cfg__rows[idx].name,
			path, strerror(errno));
		return;
	}
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode))
		cfg__err(ctx, ctx->line[idx], "%s: %s is not a regular file",
			cfg__rows[idx].name, path);
	close(fd);
}

static void cfg_check_audit_key(struct cfg_ctx *ctx)
{
	const struct config *cfg = ctx->cfg;
	bool key = cfg->audit_signing_key != NULL;
	char why[512];

	if (key != (cfg->audit_checkpoint_file != NULL))
		cfg__err(ctx, ctx->line[key ? CFG_I_audit_signing_key : CFG_I_audit_checkpoint_file],
		    "%s is set but %s is not; set both or neither", key ? "audit_signing_key" :
		    "audit_checkpoint_file", key ? "audit_checkpoint_file" : "audit_signing_key");
	if (key && !(ctx->flags & CFG_LOAD_NO_FILE_CHECKS) &&
	    ckpt_key_check(cfg->audit_signing_key, why, sizeof why) < 0)
		cfg__err(ctx, ctx->line[CFG_I_audit_signing_key], "audit_signing_key: %s", why);
}

static bool cfg_is_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		struct sockaddr_in sin;

		memcpy(&sin, ss, sizeof(sin));
		return sin.sin_addr.s_addr == htonl(INADDR_ANY);
	}
	if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 sin6;

		memcpy(&sin6, ss, sizeof(sin6));
		return IN6_IS_ADDR_UNSPECIFIED(&sin6.sin6_addr);
	}
	return false;
}

/*
 * Listeners on the same address and port cannot both bind. Linux also
 * refuses a specific address next to the wildcard of the same family on
 * the same port (even with SO_REUSEADDR), so that is reported here rather
 * than as a bind failure after startup.
 */
static void cfg_check_listeners(struct cfg_ctx *ctx)
{
	const struct cfg_listen_list *list = &ctx->cfg->listen;
	const struct config *cfg = ctx->cfg;
	size_t i, j;

	for (i = 0; i < list->n; i++) {
		const struct cfg_listen *l = &list->v[i];

		if (l->role != CFG_ROLE_MX &&
		    (cfg->tls_cert_file == NULL || cfg->tls_key_file == NULL))
			cfg__err(ctx, l->line,
				"listen: %s listener needs tls_cert_file and tls_key_file",
				cfg_role_name(l->role));
		for (j = 0; j < i; j++) {
			const struct cfg_listen *o = &list->v[j];
			struct sockaddr_in a4, b4;
			struct sockaddr_in6 a6, b6;
			bool same;

			if (l->addr.ss_family != o->addr.ss_family)
				continue;
			if (l->addr.ss_family == AF_INET) {
				memcpy(&a4, &l->addr, sizeof(a4));
				memcpy(&b4, &o->addr, sizeof(b4));
				if (a4.sin_port != b4.sin_port)
					continue;
				same = a4.sin_addr.s_addr == b4.sin_addr.s_addr;
			} else {
				memcpy(&a6, &l->addr, sizeof(a6));
				memcpy(&b6, &o->addr, sizeof(b6));
				if (a6.sin6_port != b6.sin6_port)
					continue;
				same = memcmp(&a6.sin6_addr, &b6.sin6_addr, 16) == 0;
			}
			if (same)
				cfg__err(ctx, l->line, "listen: %s is already used on line %u",
					l->text, o->line);
			else if (cfg_is_wildcard(&l->addr) || cfg_is_wildcard(&o->addr))
				cfg__err(ctx, l->line,
					"listen: %s overlaps %s on line %u (same port, wildcard address)",
					l->text, o->text, o->line);
			else
				continue;
			break;
		}
	}
}

/* postmaster_address (where <Postmaster> is rewritten to): an address, kept canonical. */
static void cfg_check_postmaster(struct cfg_ctx *ctx, char **v)
{
	char canon[ADDR_MAX + 1];
	const char *why = NULL;

	if (addr_canon(*v, canon, sizeof canon, &why) < 0)
		cfg__err(ctx, ctx->line[CFG_I_postmaster_address], "postmaster_address: '%.*s' "
			"is not an address (%s)", CFG_QUOTE_MAX, *v, why ? why : "bad syntax");
	free(*v);
	*v = xstrdup(canon); /* "" after an error: the load fails anyway */
}

/*
 * user: never root, whatever the name (a second uid-0 account such as
 * "toor" too). Whether the user exists matters only to a daemon that is
 * about to start as root and drop to it; a developer's checkout, where
 * tests run the daemon as themselves, has no such user and needs none,
 * and a root without the default user still passes `-t` (the start then
 * fails at the drop, naming the useradd that fixes it).
 */
static void cfg_check_user(struct cfg_ctx *ctx)
{
	const char *name = ctx->cfg->user;
	unsigned line = ctx->line[CFG_I_user];
	struct passwd pw, *res = NULL;
	char pwbuf[4096];
	int rc;

	if (name == NULL)
		return;
	if (strcmp(name, "root") == 0 || strcmp(name, "0") == 0) {
		cfg__err(ctx, line, "user: '%s' is uid 0; govrelayd never runs as root "
			"(name an unprivileged user such as govrelay)", name);
		return;
	}
	rc = getpwnam_r(name, &pw, pwbuf, sizeof(pwbuf), &res);
	if (rc == 0 && res != NULL && res->pw_uid == 0) {
		cfg__err(ctx, line, "user: '%.*s' is uid 0; govrelayd never runs as root "
			"(name an unprivileged user such as govrelay)", CFG_QUOTE_MAX, name);
		return;
	}
	/* Only a user named in the file: the default's absence is reported at the drop. */
	if ((ctx->flags & CFG_LOAD_TO_RUN) && geteuid() == 0 && line > 0 &&
	    (rc != 0 || res == NULL))
		cfg__err(ctx, line, "user: no user '%.*s' on this system (create it: "
			"useradd --system --no-create-home --shell /usr/sbin/nologin %.*s)",
			CFG_QUOTE_MAX, name, CFG_QUOTE_MAX, name);
}

void cfg__check(struct cfg_ctx *ctx)
{
	struct config *cfg = ctx->cfg;

	if (cfg->data_dir == NULL)
		cfg__err(ctx, 0, "data_dir is required");

	if (cfg->hostname == NULL) {
		char name[256];

		if (gethostname(name, sizeof(name)) != 0) {
			cfg__err(ctx, 0, "hostname is not set and gethostname() failed: %s",
				strerror(errno));
		} else {
			name[sizeof(name) - 1] = '\0';
			cfg->hostname = xstrdup(name);
		}
	}
	if (cfg->hostname != NULL && !cfg_hostname_ok(cfg->hostname))
		cfg__err(ctx, ctx->line[CFG_I_hostname],
			"hostname: '%.*s' is not a valid host name%s", CFG_QUOTE_MAX, cfg->hostname,
			ctx->line[CFG_I_hostname] ? "" : " (from gethostname(); set hostname)");

	/*
	 * RFC 8601 2.5: an authserv-id is a value (token); it must be one our
	 * readers and the removal of forged fields compare exactly.
	 */
	if (cfg->authserv_id != NULL && !cfg_hostname_ok(cfg->authserv_id))
		cfg__err(ctx, ctx->line[CFG_I_authserv_id],
			"authserv_id: '%.*s' must be a host name (RFC 8601 section 2.5)",
			CFG_QUOTE_MAX, cfg->authserv_id);
	else if (cfg->authserv_id == NULL && cfg->hostname != NULL &&
	    cfg_hostname_ok(cfg->hostname))
		cfg->authserv_id = xstrdup(cfg->hostname);

	if (cfg->control_socket == NULL && cfg->data_dir != NULL) {
		struct buf b;

		buf_init(&b);
		buf_printf(&b, "%s/control.sock", cfg->data_dir);
		buf_cstr(&b);
		cfg->control_socket = buf_steal(&b, NULL);
	}
	if (cfg->control_socket != NULL && strlen(cfg->control_socket) > CFG_SUN_PATH_MAX)
		cfg__err(ctx, ctx->line[CFG_I_control_socket],
			"control_socket: '%.*s...' is longer than a unix socket path may be (%zu bytes)",
			CFG_QUOTE_MAX, cfg->control_socket, CFG_SUN_PATH_MAX);

	if (cfg->tls_cert_file != NULL && cfg->tls_key_file == NULL)
		cfg__err(ctx, ctx->line[CFG_I_tls_cert_file],
			"tls_cert_file is set but tls_key_file is not; set both or neither");
	if (cfg->tls_key_file != NULL && cfg->tls_cert_file == NULL)
		cfg__err(ctx, ctx->line[CFG_I_tls_key_file],
			"tls_key_file is set but tls_cert_file is not; set both or neither");
	if (!(ctx->flags & CFG_LOAD_NO_FILE_CHECKS)) {
		cfg_check_readable(ctx, CFG_I_tls_cert_file);
		cfg_check_readable(ctx, CFG_I_tls_key_file);
		cfg_check_readable(ctx, CFG_I_tls_ca_file);
	}
	if (cfg->postmaster_address != NULL)
		cfg_check_postmaster(ctx, &cfg->postmaster_address);
	cfg_check_audit_key(ctx); /* both or neither, and a key that loads (checkpoint.c) */

	if (cfg->minimal_backoff_time > cfg->maximal_backoff_time) {
		char lo[32], hi[32];

		cfg__fmt_duration(cfg->minimal_backoff_time, lo, sizeof(lo));
		cfg__fmt_duration(cfg->maximal_backoff_time, hi, sizeof(hi));
		cfg__err(ctx, ctx->line[CFG_I_minimal_backoff_time] ?
				     ctx->line[CFG_I_minimal_backoff_time] :
				     ctx->line[CFG_I_maximal_backoff_time],
			"minimal_backoff_time (%s) is greater than maximal_backoff_time (%s)",
			lo, hi);
	}

	cfg_check_user(ctx);
	cfg_check_listeners(ctx);
	if (cfg->listen.n == 0 && ctx->line[CFG_I_listen] == 0)
		cfg__err(ctx, 0, "at least one listen line is required");
}
