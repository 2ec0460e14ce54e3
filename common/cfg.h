#ifndef GOVRELAY_CFG_H
#define GOVRELAY_CFG_H
/*
 * config: parse and validate govrelay.conf into an immutable snapshot.
 * A reload builds a new snapshot; sessions keep a reference to theirs.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "common/buf.h"
#include "common/cfg_table.h"
#include "common/log.h"

enum cfg_role { CFG_ROLE_MX, CFG_ROLE_SUBMISSION, CFG_ROLE_SUBMISSIONS };

struct cfg_listen {
	enum cfg_role role;
	struct sockaddr_storage addr; /* numeric address and port */
	char text[80];                /* "ADDRESS:PORT" as written */
	unsigned line;                /* for bind errors: FILE:LINE */
};

struct cfg_listen_list {
	struct cfg_listen *v;
	size_t n;
};

struct cfg_cidr {
	int family;        /* AF_INET or AF_INET6 */
	uint8_t addr[16];  /* network bytes, host bits cleared */
	unsigned prefix;
};

struct cfg_cidr_list {
	struct cfg_cidr *v;
	size_t n;
};

struct cfg_hostport {
	bool set;
	char host[64]; /* numeric IPv4 or IPv6 address, no brackets */
	uint16_t port;
};

/* An ENDPOINT value taken apart (cfg_parse_endpoint). */
struct cfg_endpoint {
	bool is_unix;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* unix: absolute */
	struct sockaddr_storage addr; /* tcp: numeric address and port */
};

/* C type of each table type. */
#define CFG_CTYPE_STRING char *
#define CFG_CTYPE_PATH char *      /* absolute after loading */
#define CFG_CTYPE_SIZE uint64_t    /* bytes */
#define CFG_CTYPE_COUNT uint64_t
#define CFG_CTYPE_DURATION uint64_t /* milliseconds */
#define CFG_CTYPE_PORT uint64_t
#define CFG_CTYPE_LOGFORMAT enum log_format
#define CFG_CTYPE_CIDRS struct cfg_cidr_list
#define CFG_CTYPE_LISTEN struct cfg_listen_list
#define CFG_CTYPE_HOSTPORT struct cfg_hostport
#define CFG_CTYPE_BOOL bool         /* yes/no, true/false, on/off, 1/0 */
#define CFG_CTYPE_ENDPOINT char *  /* "unix:/abs/path" or "tcp:ADDR:PORT", NULL if unset */
#define CFG_CTYPE_BOOL bool        /* yes/no, on/off, true/false */

struct config {
	char *file;  /* absolute path of the file read */
	char *dir;   /* its folder: relative paths resolve against it */
	int refs;    /* snapshot references: cfg_ref/cfg_unref (loop thread) */
#define CFG_FIELD(name, type, def, min, max, reload, doc) CFG_CTYPE_##type name;
	CFG_PARAMS(CFG_FIELD)
#undef CFG_FIELD
};

/* Describes one row of the table, for checkers and documentation. */
struct cfg_param_info {
	const char *name;
	const char *type;
	const char *def;
	uint64_t min, max;
	bool reloadable;
	const char *doc;
};

const struct cfg_param_info *cfg_params(size_t *count);

/*
 * Loads FILE. On success *out is a new snapshot with refs = 1 and every
 * default applied (hostname from gethostname(), control_socket under
 * data_dir). On failure returns -EINVAL and appends one line
 * "FILE:LINE: message\n" per error to errors (all errors, not the first),
 * or a negative errno when the file cannot be read (the message names the
 * file). Never logs.
 */
int cfg_load(const char *file, struct config **out, struct buf *errors);
/*
 * CFG_LOAD_NO_FILE_CHECKS: do not open the files the configuration names
 * (the TLS key): govrelayctl run by a delegated operator reads the file
 * only to find the control socket, and must not need the daemon's key.
 */
#define CFG_LOAD_NO_FILE_CHECKS 0x1u
/*
 * CFG_LOAD_TO_RUN: the configuration is about to run a daemon (govrelayd,
 * govrelayd -t, govrelayctl config check): also refuse keys whose feature
 * is not built yet, so that no key promises what the code does not do.
 * Without it cfg_load checks syntax and consistency only.
 */
#define CFG_LOAD_TO_RUN 0x2u
int cfg_load_flags(const char *file, unsigned flags, struct config **out,
    struct buf *errors);
struct config *cfg_ref(struct config *cfg);
void cfg_unref(struct config *cfg);

/* Parsers shared with the CLI and tests; 0 or -EINVAL. */
int cfg_parse_size(const char *s, uint64_t *bytes);
int cfg_parse_duration(const char *s, uint64_t *ms); /* "300s" "5m" "4h" "5d" "250ms" */
int cfg_parse_cidr(const char *s, struct cfg_cidr *out);
/*
 * An ENDPOINT value as a loaded snapshot holds it: "unix:/ABSOLUTE/PATH"
 * or "tcp:ADDRESS:PORT" (numeric IPv4, or [IPv6]; names are never
 * resolved). 0, or -EINVAL with *why saying what is wrong (static text).
 */
int cfg_parse_endpoint(const char *s, struct cfg_endpoint *out, const char **why);

/* True when addr (AF_INET or AF_INET6; v4-mapped v6 counts as v4) is in list. */
bool cfg_cidr_list_has(const struct cfg_cidr_list *list, const struct sockaddr *addr);
const char *cfg_role_name(enum cfg_role role);

#endif
