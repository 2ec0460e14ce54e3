/*
 * test_config: the configuration parser against real files in a temporary
 * folder: every type's good and bad values, error collection with
 * FILE:LINE, cross-key checks, CIDR matching, and the table's documentation
 * (every row has a doc string and appears in doc/govrelay.conf.5, found
 * through GOVRELAY_SRCDIR).
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/cfg.h"

/* Lines 1 and 2 of most test files; the line under test is line 3. */
#define BASE "data_dir = /var/lib/govrelay\nlisten = mx 127.0.0.1:2525\n"

static char tmpdir[64];
static char conf_path[128];
static struct buf errs;
static struct config *cfg;

static int test_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void test_setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/govrelay-cfg-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(conf_path, sizeof(conf_path), "%s/govrelay.conf", tmpdir);
	buf_init(&errs);
	cfg = NULL;
}

static void test_teardown(void)
{
	cfg_unref(cfg);
	cfg = NULL;
	buf_free(&errs);
	nftw(tmpdir, test_rm, 8, FTW_DEPTH | FTW_PHYS);
}

/* Writes len bytes to tmpdir/rel, creating one level of folder if needed. */
static void test_write(const char *rel, const char *data, size_t len)
{
	char path[256];
	FILE *f;
	char *slash;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, rel);
	slash = strrchr(path, '/');
	if (slash > path + strlen(tmpdir)) {
		*slash = '\0';
		mkdir(path, 0700);
		*slash = '/';
	}
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(data, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

static int test_load(const char *text)
{
	test_write("govrelay.conf", text, strlen(text));
	cfg_unref(cfg);
	cfg = NULL;
	buf_reset(&errs);
	return cfg_load(conf_path, &cfg, &errs);
}

static const char *test_errs(void)
{
	return errs.len ? buf_cstr(&errs) : "";
}

/* True when one error line starts with "FILE:LINE: " (or "FILE: ") and contains what. */
static bool test_has_error(unsigned line, const char *what)
{
	char prefix[192];
	const char *p = test_errs();

	if (line > 0)
		snprintf(prefix, sizeof(prefix), "%s:%u: ", conf_path, line);
	else
		snprintf(prefix, sizeof(prefix), "%s: ", conf_path);
	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		char one[1024];

		snprintf(one, sizeof(one), "%.*s", (int)len, p);
		if (strncmp(one, prefix, strlen(prefix)) == 0 && strstr(one, what) != NULL)
			return true;
		p += len + (nl ? 1 : 0);
	}
	return false;
}

static size_t test_error_count(void)
{
	const char *p;
	size_t n = 0;

	for (p = test_errs(); *p != '\0'; p++)
		if (*p == '\n')
			n++;
	return n;
}

#define ASSERT_LOADED(rc) \
	ck_assert_msg((rc) == 0 && cfg != NULL, "load failed (%d): %s", (rc), test_errs())

/* ------------------------------------------------------------------ */

START_TEST(test_full_file)
{
	char text[4096], want[256];
	int rc;

	test_write("tls/cert.pem", "cert\n", 5);
	test_write("tls/key.pem", "key\n", 4);
	snprintf(text, sizeof(text),
		 "# every key, with comments and odd spacing\n"
		 "hostname = mx.gov.example\n"
		 "data_dir=%s/spool\n"
		 "listen = mx 0.0.0.0:25\n"
		 "listen\t=\tsubmission [::1]:587   # local only\n"
		 "listen = submissions *:465\n"
		 "tls_cert_file = %s/tls/cert.pem\n"
		 "tls_key_file = tls/key.pem\n"
		 "trusted_networks = 10.0.0.0/8, 192.168.1.7 2001:db8::/32\n"
		 "max_message_size = 50m\n"
		 "max_recipients = 500\n"
		 "max_connections = 2000\n"
		 "max_connections_per_ip = 20\n"
		 "dns_server = 127.0.0.1:5353\n"
		 "smtp_port = 2525\n"
		 "clamd = tcp:127.0.0.1:3310\n"
		 "control_socket = /run/govrelay/ctl.sock\n"
		 "log_format = json\n"
		 "minimal_backoff_time = 1m\n"
		 "maximal_backoff_time = 2h\n"
		 "max_queue_lifetime = 3d\n"
		 "delay_warning_time = 0s\n"
		 "command_timeout = 2m\n"
		 "data_timeout = 90s\n"
		 "greet_pause = 500ms\n"
		 "max_bad_commands = 5\n"
		 "queue_max_size = 2G\n"
		 "delivery_concurrency = 7\n"
		 "destination_concurrency = 3\n"
		 "time_scale = 60\n",
		 tmpdir, tmpdir);
	rc = test_load(text);
	ASSERT_LOADED(rc);
	ck_assert_int_eq(cfg->refs, 1);
	ck_assert_str_eq(cfg->file, conf_path);
	ck_assert_str_eq(cfg->dir, tmpdir);
	ck_assert_str_eq(cfg->hostname, "mx.gov.example");
	snprintf(want, sizeof(want), "%s/spool", tmpdir);
	ck_assert_str_eq(cfg->data_dir, want);
	ck_assert_uint_eq(cfg->listen.n, 3);
	ck_assert_int_eq(cfg->listen.v[0].role, CFG_ROLE_MX);
	ck_assert_int_eq(cfg->listen.v[1].role, CFG_ROLE_SUBMISSION);
	ck_assert_int_eq(cfg->listen.v[2].role, CFG_ROLE_SUBMISSIONS);
	ck_assert_str_eq(cfg->listen.v[1].text, "[::1]:587");
	ck_assert_uint_eq(cfg->listen.v[1].line, 5);
	snprintf(want, sizeof(want), "%s/tls/cert.pem", tmpdir);
	ck_assert_str_eq(cfg->tls_cert_file, want);
	snprintf(want, sizeof(want), "%s/tls/key.pem", tmpdir);
	ck_assert_str_eq(cfg->tls_key_file, want);
	ck_assert_uint_eq(cfg->trusted_networks.n, 3);
	ck_assert_uint_eq(cfg->trusted_networks.v[1].prefix, 32);
	ck_assert_uint_eq(cfg->max_message_size, 50ULL << 20);
	ck_assert_uint_eq(cfg->max_recipients, 500);
	ck_assert_uint_eq(cfg->max_connections, 2000);
	ck_assert_uint_eq(cfg->max_connections_per_ip, 20);
	ck_assert(cfg->dns_server.set);
	ck_assert_str_eq(cfg->dns_server.host, "127.0.0.1");
	ck_assert_uint_eq(cfg->dns_server.port, 5353);
	ck_assert_uint_eq(cfg->smtp_port, 2525);
	ck_assert_str_eq(cfg->clamd, "tcp:127.0.0.1:3310");
	ck_assert_str_eq(cfg->control_socket, "/run/govrelay/ctl.sock");
	ck_assert_int_eq(cfg->log_format, LOG_FORMAT_JSON);
	ck_assert_uint_eq(cfg->minimal_backoff_time, 60000);
	ck_assert_uint_eq(cfg->maximal_backoff_time, 7200000);
	ck_assert_uint_eq(cfg->max_queue_lifetime, 3ULL * 86400000);
	ck_assert_uint_eq(cfg->delay_warning_time, 0);
	ck_assert_uint_eq(cfg->command_timeout, 120000);
	ck_assert_uint_eq(cfg->data_timeout, 90000);
	ck_assert_uint_eq(cfg->greet_pause, 500);
	ck_assert_uint_eq(cfg->max_bad_commands, 5);
	ck_assert_uint_eq(cfg->queue_max_size, 2ULL << 30);
	ck_assert_uint_eq(cfg->delivery_concurrency, 7);
	ck_assert_uint_eq(cfg->destination_concurrency, 3);
	ck_assert_uint_eq(cfg->time_scale, 60);
	ck_assert_uint_eq(errs.len, 0);
}
END_TEST

START_TEST(test_defaults)
{
	char host[256];
	int rc;

	rc = test_load(BASE);
	ASSERT_LOADED(rc);
	ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	ck_assert_str_eq(cfg->hostname, host);
	ck_assert_str_eq(cfg->data_dir, "/var/lib/govrelay");
	ck_assert_str_eq(cfg->control_socket, "/var/lib/govrelay/control.sock");
	ck_assert_ptr_null(cfg->tls_cert_file);
	ck_assert_ptr_null(cfg->tls_key_file);
	ck_assert_ptr_null(cfg->clamd);
	ck_assert(!cfg->dns_server.set);
	ck_assert_uint_eq(cfg->trusted_networks.n, 2);
	ck_assert_int_eq(cfg->trusted_networks.v[0].family, AF_INET);
	ck_assert_uint_eq(cfg->trusted_networks.v[0].prefix, 8);
	ck_assert_int_eq(cfg->trusted_networks.v[1].family, AF_INET6);
	ck_assert_uint_eq(cfg->trusted_networks.v[1].prefix, 128);
	ck_assert_uint_eq(cfg->max_message_size, 26214400);
	ck_assert_uint_eq(cfg->max_recipients, 100);
	ck_assert_uint_eq(cfg->max_connections, 10000);
	ck_assert_uint_eq(cfg->max_connections_per_ip, 50);
	ck_assert_uint_eq(cfg->smtp_port, 25);
	ck_assert_int_eq(cfg->log_format, LOG_FORMAT_TEXT);
	ck_assert_uint_eq(cfg->minimal_backoff_time, 300000);
	ck_assert_uint_eq(cfg->maximal_backoff_time, 4000000);
	ck_assert_uint_eq(cfg->max_queue_lifetime, 5ULL * 86400000);
	ck_assert_uint_eq(cfg->delay_warning_time, 4ULL * 3600000);
	ck_assert_uint_eq(cfg->command_timeout, 300000);
	ck_assert_uint_eq(cfg->data_timeout, 300000);
	ck_assert_uint_eq(cfg->greet_pause, 1000);
	ck_assert_uint_eq(cfg->max_bad_commands, 10);
	ck_assert_uint_eq(cfg->queue_max_size, 17179869184ULL);
	ck_assert_uint_eq(cfg->delivery_concurrency, 100);
	ck_assert_uint_eq(cfg->destination_concurrency, 20);
	ck_assert_uint_eq(cfg->time_scale, 1);
}
END_TEST

/* One bad line 3 after BASE; the error must name FILE:3 and say why. */
static const struct {
	const char *label;
	const char *line;
	const char *want;
} bad_values[] = {
	{ "no equals sign", "hostname mx.example", "expected 'key = value'" },
	{ "missing key", "= 5", "the key is missing" },
	{ "empty value", "tls_cert_file =", "tls_cert_file: needs a value" },
	{ "string with space", "hostname = two words", "one word" },
	{ "bad host name", "hostname = -bad.example", "not a valid host name" },
	{ "bad authserv-id", "authserv_id = a;b", "must be a host name (RFC 8601" },
	{ "hash glued to value is kept", "hostname = mx#1", "'mx#1' is not a valid host name" },
	{ "size letters", "max_message_size = 10x", "is not a size" },
	{ "size negative", "max_message_size = -1", "is not a size" },
	{ "size below min", "max_message_size = 100", "out of range (allowed: 1024..4294967295 bytes)" },
	{ "size above max", "max_message_size = 5g", "out of range" },
	{ "size overflow", "max_message_size = 99999999999999999999", "is too large" },
	{ "size suffix overflow", "queue_max_size = 17179869184g", "is too large" },
	{ "count letters", "max_recipients = abc", "is not a number" },
	{ "count trailing junk", "max_recipients = 12abc", "is not a number" },
	{ "count below min", "max_recipients = 0", "out of range (allowed: 1..100000)" },
	{ "count above max", "max_bad_commands = 1001", "out of range (allowed: 1..1000)" },
	{ "duration bare number", "command_timeout = 300", "needs a unit (s, m, h, d)" },
	{ "duration unknown unit", "command_timeout = 5y", "unknown unit" },
	{ "duration no number", "command_timeout = s", "is not a duration" },
	{ "duration above max", "command_timeout = 2h", "out of range (allowed: 1s..1h)" },
	{ "duration below min", "minimal_backoff_time = 10ms", "out of range (allowed: 1s..365d)" },
	{ "duration overflow", "max_queue_lifetime = 999999999999999999d", "is too large" },
	{ "port zero", "smtp_port = 0", "out of range (allowed: 1..65535)" },
	{ "port too big", "smtp_port = 65536", "out of range (allowed: 1..65535)" },
	{ "port junk", "smtp_port = 25x", "is not a number" },
	{ "log format", "log_format = xml", "'xml' is not text or json" },
	{ "dmarc not a bool", "dmarc = maybe", "dmarc: 'maybe' is not yes or no" },
	{ "cidr prefix v4", "trusted_networks = 10.0.0.0/33", "bad prefix length (0..32)" },
	{ "cidr prefix v6", "trusted_networks = ::1/129", "bad prefix length (0..128)" },
	{ "cidr empty prefix", "trusted_networks = 10.0.0.0/", "bad prefix length" },
	{ "cidr name", "trusted_networks = 10.0.0.0/8 banana", "'banana' is not an IPv4 or IPv6" },
	{ "cidr empty list", "trusted_networks = , ,", "needs at least one address" },
	{ "listen unknown role", "listen = pop3 127.0.0.1:110", "unknown role 'pop3'" },
	{ "listen name", "listen = mx localhost:25", "names are not resolved" },
	{ "listen no port", "listen = mx 127.0.0.1", "needs ADDRESS:PORT" },
	{ "listen v6 without brackets", "listen = mx ::1:25", "needs brackets" },
	{ "listen port zero", "listen = mx 127.0.0.1:0", "port number 1..65535" },
	{ "listen bad v6", "listen = mx [::g]:25", "not a numeric IPv6" },
	{ "listen role only", "listen = mx", "expected ROLE ADDRESS:PORT" },
	{ "listen extra word", "listen = mx 127.0.0.2:25 extra", "expected ROLE ADDRESS:PORT" },
	{ "hostport no port", "dns_server = 127.0.0.1", "needs ADDRESS:PORT" },
	{ "hostport name", "dns_server = resolver.example:53", "names are not resolved" },
	{ "hostport star", "dns_server = *:53", "names are not resolved" },
	{ "hostport v6 no port", "dns_server = [::1]", "needs ADDRESS:PORT" },
	{ "hostport unclosed", "dns_server = [::1:53", "without ']'" },
	{ "endpoint no scheme", "clamd = 127.0.0.1:3310", "expected unix:PATH or tcp:ADDRESS:PORT" },
	{ "endpoint tcp name", "clamd = tcp:localhost:3310", "names are not resolved" },
	{ "endpoint unix empty", "clamd = unix:", "needs a socket path" },
	{ "endpoint tcp no port", "clamd = tcp:127.0.0.1", "needs ADDRESS:PORT" },
	{ "endpoint tcp v6 bare", "clamd = tcp:::1:3310", "needs brackets" },
	{ "clamd_timeout zero", "clamd_timeout = 0s", "clamd_timeout" },
	{ "clamd_timeout over 5m", "clamd_timeout = 6m", "clamd_timeout" },
	{ "endpoint unix too long",
	  "clamd = unix:/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock",
	  "longer than 107 bytes" },
	{ "unknown key", "bogus_key = 1", "unknown parameter 'bogus_key'" },
	{ "key case matters", "Hostname = mx.example", "unknown parameter 'Hostname'" },
	/* user: never root, by name or uid (issue 9). */
	{ "user root", "user = root", "user: 'root' is uid 0; govrelayd never runs as root" },
	{ "user uid 0", "user = 0", "user: '0' is uid 0" },
	/* dkim_sign: the first BOOL key (issue 10). */
	{ "bool word", "dkim_sign = maybe", "dkim_sign: 'maybe' is not yes or no" },
};

START_TEST(test_bad_value)
{
	char text[1024];
	int rc;

	snprintf(text, sizeof(text), BASE "%s\n", bad_values[_i].line);
	rc = test_load(text);
	ck_assert_msg(rc == -EINVAL, "%s: rc %d", bad_values[_i].label, rc);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(test_has_error(3, bad_values[_i].want), "%s: want line 3 '%s', got: %s",
		      bad_values[_i].label, bad_values[_i].want, test_errs());
	ck_assert_msg(test_error_count() == 1, "%s: one error expected, got: %s",
		      bad_values[_i].label, test_errs());
}
END_TEST

START_TEST(test_multiple_errors)
{
	int rc;

	rc = test_load("max_recipients = lots\n"
		       "# a comment\n"
		       "\n"
		       "smtp_port = 0\n"
		       "nonsense = 1\n"
		       "log_format = yaml\n"
		       "listen = mx 127.0.0.1:25\n"
		       "data_dir = /srv/govrelay\n");
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert(test_has_error(1, "max_recipients"));
	ck_assert(test_has_error(4, "smtp_port"));
	ck_assert(test_has_error(5, "unknown parameter 'nonsense'"));
	ck_assert(test_has_error(6, "log_format"));
	ck_assert_msg(test_error_count() == 4, "%s", test_errs());
}
END_TEST

START_TEST(test_duplicate_key)
{
	int rc;

	rc = test_load(BASE "max_recipients = 5\nsmtp_port = 26\nmax_recipients = 6\n");
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(test_has_error(5, "max_recipients is given twice (lines 3 and 5)"), "%s",
		      test_errs());
	ck_assert_uint_eq(test_error_count(), 1);
}
END_TEST

/*
 * clamd is built (issue 11): a configuration that is to run may set it,
 * with clamd_timeout (default 30s).
 */
START_TEST(test_clamd_accepted_to_run)
{
	static const char text[] = BASE "clamd = tcp:127.0.0.1:3310\nclamd_timeout = 10s\n";
	int rc;

	test_write("govrelay.conf", text, strlen(text));
	rc = cfg_load_flags(conf_path, CFG_LOAD_TO_RUN, &cfg, &errs);
	ASSERT_LOADED(rc);
	ck_assert_str_eq(cfg->clamd, "tcp:127.0.0.1:3310");
	ck_assert_uint_eq(cfg->clamd_timeout, 10000);
	cfg_unref(cfg);
	cfg = NULL;
	rc = test_load(BASE);
	ASSERT_LOADED(rc);
	ck_assert_ptr_null(cfg->clamd);
	ck_assert_uint_eq(cfg->clamd_timeout, 30000);
}
END_TEST

START_TEST(test_comments_and_line_endings)
{
	int rc;

	rc = test_load("   # indented comment\r\n"
		       "data_dir = /var/lib/govrelay\r\n"
		       "listen = mx 127.0.0.1:2525\t# trailing comment\r\n"
		       "clamd = unix:/run/clamd#1.sock\n"
		       "\t\n"
		       "max_recipients = 7 # seven\n"
		       "hostname = mx.example.org");
	ASSERT_LOADED(rc);
	ck_assert_str_eq(cfg->clamd, "unix:/run/clamd#1.sock");
	ck_assert_uint_eq(cfg->max_recipients, 7);
	ck_assert_str_eq(cfg->hostname, "mx.example.org");
	ck_assert_uint_eq(cfg->listen.v[0].line, 3);
}
END_TEST

START_TEST(test_long_line_and_nul)
{
	struct buf text;
	size_t i;
	int rc;

	buf_init(&text);
	buf_append_str(&text, BASE "hostname = ");
	for (i = 0; i < 5000; i++)
		buf_append_char(&text, 'a');
	buf_append_str(&text, "\nmax_recipients = 0\nsmtp");
	buf_append_char(&text, '\0');
	buf_append_str(&text, "_port = 25\n");
	test_write("govrelay.conf", text.data, text.len);
	buf_free(&text);
	rc = cfg_load(conf_path, &cfg, &errs);
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(test_has_error(3, "line is longer than 4096 bytes"), "%s", test_errs());
	ck_assert_msg(test_has_error(4, "max_recipients"), "%s", test_errs());
	ck_assert_msg(test_has_error(5, "NUL byte"), "%s", test_errs());
	ck_assert_uint_eq(test_error_count(), 3);
}
END_TEST

START_TEST(test_relative_paths)
{
	char want[256], cwd[512];
	int rc;

	test_write("certs/cert.pem", "c", 1);
	test_write("certs/key.pem", "k", 1);
	rc = test_load("data_dir = spool\n"
		       "listen = submissions 127.0.0.1:4650\n"
		       "tls_cert_file = certs/cert.pem\n"
		       "tls_key_file = ./certs/key.pem\n"
		       "clamd = unix:run/clamd.sock\n");
	ASSERT_LOADED(rc);
	snprintf(want, sizeof(want), "%s/spool", tmpdir);
	ck_assert_str_eq(cfg->data_dir, want);
	snprintf(want, sizeof(want), "%s/spool/control.sock", tmpdir);
	ck_assert_str_eq(cfg->control_socket, want);
	snprintf(want, sizeof(want), "%s/certs/cert.pem", tmpdir);
	ck_assert_str_eq(cfg->tls_cert_file, want);
	snprintf(want, sizeof(want), "%s/./certs/key.pem", tmpdir);
	ck_assert_str_eq(cfg->tls_key_file, want);
	snprintf(want, sizeof(want), "unix:%s/run/clamd.sock", tmpdir);
	ck_assert_str_eq(cfg->clamd, want);

	/* A relative file name is made absolute against the working folder. */
	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	ck_assert_int_eq(chdir(tmpdir), 0);
	cfg_unref(cfg);
	cfg = NULL;
	rc = cfg_load("govrelay.conf", &cfg, &errs);
	ck_assert_int_eq(chdir(cwd), 0);
	ASSERT_LOADED(rc);
	ck_assert_str_eq(cfg->file, conf_path);
	ck_assert_str_eq(cfg->dir, tmpdir);
	snprintf(want, sizeof(want), "%s/spool", tmpdir);
	ck_assert_str_eq(cfg->data_dir, want);
}
END_TEST

START_TEST(test_listen_accumulates)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	char text[512];
	int rc;

	test_write("c.pem", "c", 1);
	test_write("k.pem", "k", 1);
	snprintf(text, sizeof(text),
		 "listen = mx *:2525\n"
		 "data_dir = /d\n"
		 "listen = submission 127.0.0.1:5870\n"
		 "tls_cert_file = c.pem\n"
		 "tls_key_file = k.pem\n"
		 "listen = submissions [::1]:4650\n"
		 "listen = mx 127.0.0.1:2526\n");
	rc = test_load(text);
	ASSERT_LOADED(rc);
	ck_assert_uint_eq(cfg->listen.n, 4);
	ck_assert_int_eq(cfg->listen.v[0].role, CFG_ROLE_MX);
	ck_assert_uint_eq(cfg->listen.v[0].line, 1);
	ck_assert_str_eq(cfg->listen.v[0].text, "*:2525");
	memcpy(&sin, &cfg->listen.v[0].addr, sizeof(sin));
	ck_assert_int_eq(sin.sin_family, AF_INET);
	ck_assert_uint_eq(ntohl(sin.sin_addr.s_addr), INADDR_ANY);
	ck_assert_uint_eq(ntohs(sin.sin_port), 2525);
	ck_assert_int_eq(cfg->listen.v[1].role, CFG_ROLE_SUBMISSION);
	ck_assert_uint_eq(cfg->listen.v[1].line, 3);
	memcpy(&sin, &cfg->listen.v[1].addr, sizeof(sin));
	ck_assert_uint_eq(ntohl(sin.sin_addr.s_addr), INADDR_LOOPBACK);
	ck_assert_int_eq(cfg->listen.v[2].role, CFG_ROLE_SUBMISSIONS);
	memcpy(&sin6, &cfg->listen.v[2].addr, sizeof(sin6));
	ck_assert_int_eq(sin6.sin6_family, AF_INET6);
	ck_assert(IN6_IS_ADDR_LOOPBACK(&sin6.sin6_addr));
	ck_assert_uint_eq(ntohs(sin6.sin6_port), 4650);
	ck_assert_uint_eq(cfg->listen.v[3].line, 7);
}
END_TEST

START_TEST(test_listen_conflicts)
{
	int rc;

	rc = test_load("data_dir = /d\n"
		       "listen = mx 127.0.0.1:2525\n"
		       "listen = mx 127.0.0.1:2525\n"
		       "listen = mx 0.0.0.0:2526\n"
		       "listen = mx 127.0.0.1:2526\n"
		       "listen = mx [::1]:2525\n"
		       "listen = mx 127.0.0.2:2527\n"
		       "listen = mx 127.0.0.3:2527\n");
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(test_has_error(3, "127.0.0.1:2525 is already used on line 2"), "%s",
		      test_errs());
	ck_assert_msg(test_has_error(5, "overlaps 0.0.0.0:2526 on line 4"), "%s", test_errs());
	/* Different families or different addresses on one port are fine. */
	ck_assert_msg(test_error_count() == 2, "%s", test_errs());
}
END_TEST

START_TEST(test_no_listen)
{
	int rc = test_load("data_dir = /d\n");

	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(test_has_error(0, "at least one listen line is required"), "%s",
		      test_errs());
}
END_TEST

START_TEST(test_missing_data_dir)
{
	int rc = test_load("listen = mx 127.0.0.1:2525\n");
	char want[192];

	ck_assert_int_eq(rc, -EINVAL);
	snprintf(want, sizeof(want), "%s: data_dir is required\n", conf_path);
	ck_assert_str_eq(test_errs(), want);
}
END_TEST

START_TEST(test_submission_needs_tls)
{
	int rc;

	rc = test_load("data_dir = /d\n"
		       "listen = mx 127.0.0.1:2525\n"
		       "listen = submission 127.0.0.1:5870\n"
		       "listen = submissions 127.0.0.1:4650\n");
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert(test_has_error(3, "submission listener needs tls_cert_file and tls_key_file"));
	ck_assert(test_has_error(4, "submissions listener needs tls_cert_file and tls_key_file"));
	ck_assert_uint_eq(test_error_count(), 2);
}
END_TEST

START_TEST(test_tls_files)
{
	int rc;

	test_write("c.pem", "c", 1);
	/* Cert without key: both the pairing and the submission listener complain. */
	rc = test_load(BASE "tls_cert_file = c.pem\nlisten = submissions 127.0.0.1:4650\n");
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(test_has_error(3, "tls_key_file is not"), "%s", test_errs());
	ck_assert_msg(test_has_error(4, "needs tls_cert_file and tls_key_file"), "%s", test_errs());

	rc = test_load(BASE "tls_key_file = c.pem\n");
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(test_has_error(3, "tls_cert_file is not"), "%s", test_errs());

	/* A named file that does not exist is an error at its line. */
	rc = test_load(BASE "tls_cert_file = c.pem\ntls_key_file = missing.pem\n");
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(test_has_error(4, "tls_key_file: cannot read"), "%s", test_errs());
	ck_assert_msg(test_has_error(4, "No such file"), "%s", test_errs());
	ck_assert_uint_eq(test_error_count(), 1);

	/* A folder is not a certificate. */
	rc = test_load(BASE "tls_cert_file = c.pem\ntls_key_file = .\n");
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(test_has_error(4, "not a regular file"), "%s", test_errs());
}
END_TEST

/* Audit checkpoints: defaults, bounds, both keys or neither, the key's checks. */
START_TEST(test_audit_checkpoint_keys)
{
	char key[192];
	int rc;

	rc = test_load(BASE);
	ASSERT_LOADED(rc);
	ck_assert_ptr_null(cfg->audit_signing_key);
	ck_assert_ptr_null(cfg->audit_checkpoint_file);
	ck_assert_uint_eq(cfg->audit_checkpoint_records, 1000);
	ck_assert_uint_eq(cfg->audit_checkpoint_interval, 300000);
	rc = test_load(BASE "audit_checkpoint_records = 0\naudit_checkpoint_interval = 0s\n");
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(test_has_error(3, "audit_checkpoint_records"), "%s", test_errs());
	ck_assert_msg(test_has_error(4, "audit_checkpoint_interval"), "%s", test_errs());

	test_write("k.pem", "not a key\n", 10);
	snprintf(key, sizeof(key), "%s/k.pem", tmpdir);
	ck_assert_int_eq(chmod(key, 0600), 0);
	rc = test_load(BASE "audit_signing_key = k.pem\n");
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(test_has_error(3, "audit_signing_key is set but audit_checkpoint_file is "
	    "not"), "%s", test_errs());
	ck_assert_msg(test_has_error(3, "is not a PEM private key"), "%s", test_errs());
	rc = test_load(BASE "audit_checkpoint_file = cp.log\n");
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(test_has_error(3, "audit_checkpoint_file is set but audit_signing_key is "
	    "not"), "%s", test_errs());
	rc = test_load(BASE "audit_checkpoint_file = cp.log\naudit_signing_key = none.pem\n");
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(test_has_error(4, "audit_signing_key: cannot read"), "%s", test_errs());
	/* Readable by others: refused before it is even parsed. */
	ck_assert_int_eq(chmod(key, 0644), 0);
	rc = test_load(BASE "audit_checkpoint_file = cp.log\naudit_signing_key = k.pem\n");
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(test_has_error(4, "accessible by group or others (mode 0644)"), "%s",
	    test_errs());
	/* govrelayctl run by an operator does not read the key. */
	cfg_unref(cfg);
	cfg = NULL;
	buf_reset(&errs);
	rc = cfg_load_flags(conf_path, CFG_LOAD_NO_FILE_CHECKS, &cfg, &errs);
	ASSERT_LOADED(rc);
}
END_TEST

START_TEST(test_backoff_order)
{
	int rc;

	rc = test_load(BASE "minimal_backoff_time = 2h\nmaximal_backoff_time = 1h\n");
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(test_has_error(3, "minimal_backoff_time (2h) is greater than "
					"maximal_backoff_time (1h)"), "%s", test_errs());
	/* Against the default maximum (4000s), reported at the line that is set. */
	rc = test_load(BASE "\nminimal_backoff_time = 5000s\n");
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_msg(test_has_error(4, "is greater than maximal_backoff_time"), "%s",
		      test_errs());
	rc = test_load(BASE "minimal_backoff_time = 1h\nmaximal_backoff_time = 1h\n");
	ASSERT_LOADED(rc);
}
END_TEST

START_TEST(test_unreadable_file)
{
	char path[192], want[256];
	int rc;

	snprintf(path, sizeof(path), "%s/absent.conf", tmpdir);
	rc = cfg_load(path, &cfg, &errs);
	ck_assert_int_eq(rc, -ENOENT);
	ck_assert_ptr_null(cfg);
	snprintf(want, sizeof(want), "%s: cannot read: %s\n", path, strerror(ENOENT));
	ck_assert_str_eq(test_errs(), want);

	buf_reset(&errs);
	rc = cfg_load(tmpdir, &cfg, &errs);
	ck_assert_int_eq(rc, -EISDIR);
	ck_assert_ptr_null(cfg);
	ck_assert_ptr_nonnull(strstr(test_errs(), "cannot read"));
}
END_TEST

START_TEST(test_refcount)
{
	struct config *again;
	int rc = test_load(BASE);

	ASSERT_LOADED(rc);
	again = cfg_ref(cfg);
	ck_assert_ptr_eq(again, cfg);
	ck_assert_int_eq(cfg->refs, 2);
	cfg_unref(again);
	ck_assert_int_eq(cfg->refs, 1);
	ck_assert_str_eq(cfg->data_dir, "/var/lib/govrelay");
	cfg_unref(NULL);
	/* teardown drops the last reference; valgrind checks nothing leaks. */
}
END_TEST

static const struct {
	const char *label;
	const char *in;
	int rc;
	uint64_t ms;
} durations[] = {
	{ "milliseconds", "250ms", 0, 250 },
	{ "seconds", "300s", 0, 300000 },
	{ "minutes", "5m", 0, 300000 },
	{ "hours", "4h", 0, 14400000 },
	{ "days", "5d", 0, 432000000 },
	{ "zero with unit", "0s", 0, 0 },
	{ "largest", "18446744073709551615ms", 0, UINT64_MAX },
	{ "bare number", "300", -EINVAL, 0 },
	{ "bare zero", "0", -EINVAL, 0 },
	{ "empty", "", -EINVAL, 0 },
	{ "unit only", "s", -EINVAL, 0 },
	{ "space before unit", "5 s", -EINVAL, 0 },
	{ "upper-case unit", "5S", -EINVAL, 0 },
	{ "two units", "5m30s", -EINVAL, 0 },
	{ "negative", "-5s", -EINVAL, 0 },
	{ "fraction", "1.5h", -EINVAL, 0 },
	{ "digit overflow", "18446744073709551616ms", -EINVAL, 0 },
	{ "unit overflow", "213503982335d", -EINVAL, 0 },
	{ "just below unit overflow", "213503982334d", 0, 213503982334ULL * 86400000 },
};

START_TEST(test_duration_table)
{
	uint64_t ms = 12345;
	int rc = cfg_parse_duration(durations[_i].in, &ms);

	ck_assert_msg(rc == durations[_i].rc, "%s: rc %d", durations[_i].label, rc);
	if (rc == 0)
		ck_assert_msg(ms == durations[_i].ms, "%s: got %llu", durations[_i].label,
			      (unsigned long long)ms);
	else
		ck_assert_msg(ms == 12345, "%s: output changed on error", durations[_i].label);
}
END_TEST

static const struct {
	const char *label;
	const char *in;
	int rc;
	uint64_t bytes;
} sizes[] = {
	{ "zero", "0", 0, 0 },
	{ "plain bytes", "26214400", 0, 26214400 },
	{ "k", "1k", 0, 1024 },
	{ "K", "1K", 0, 1024 },
	{ "m", "2m", 0, 2097152 },
	{ "M", "25M", 0, 26214400 },
	{ "g", "3g", 0, 3221225472ULL },
	{ "G", "16G", 0, 17179869184ULL },
	{ "largest plain", "18446744073709551615", 0, UINT64_MAX },
	{ "largest G", "17179869183G", 0, 17179869183ULL << 30 },
	{ "digit overflow", "18446744073709551616", -EINVAL, 0 },
	{ "suffix overflow", "17179869184G", -EINVAL, 0 },
	{ "empty", "", -EINVAL, 0 },
	{ "suffix only", "k", -EINVAL, 0 },
	{ "two-letter suffix", "1kb", -EINVAL, 0 },
	{ "terabytes not accepted", "1t", -EINVAL, 0 },
	{ "negative", "-1", -EINVAL, 0 },
	{ "space", "1 k", -EINVAL, 0 },
	{ "fraction", "1.5m", -EINVAL, 0 },
};

START_TEST(test_size_table)
{
	uint64_t bytes = 777;
	int rc = cfg_parse_size(sizes[_i].in, &bytes);

	ck_assert_msg(rc == sizes[_i].rc, "%s: rc %d", sizes[_i].label, rc);
	if (rc == 0)
		ck_assert_msg(bytes == sizes[_i].bytes, "%s: got %llu", sizes[_i].label,
			      (unsigned long long)bytes);
	else
		ck_assert_msg(bytes == 777, "%s: output changed on error", sizes[_i].label);
}
END_TEST

START_TEST(test_cidr_parse)
{
	struct cfg_cidr c;
	static const uint8_t net10[4] = { 10, 0, 0, 0 };
	static const uint8_t v6net[16] = { 0x20, 0x01, 0x0d, 0xb8, 0x12, 0x30 };

	ck_assert_int_eq(cfg_parse_cidr("10.1.2.3/8", &c), 0);
	ck_assert_int_eq(c.family, AF_INET);
	ck_assert_uint_eq(c.prefix, 8);
	ck_assert_mem_eq(c.addr, net10, 4);
	ck_assert_int_eq(cfg_parse_cidr("2001:db8:1234::1/44", &c), 0);
	ck_assert_int_eq(c.family, AF_INET6);
	ck_assert_uint_eq(c.prefix, 44);
	ck_assert_mem_eq(c.addr, v6net, 16);
	ck_assert_int_eq(cfg_parse_cidr("192.0.2.1", &c), 0);
	ck_assert_uint_eq(c.prefix, 32);
	ck_assert_int_eq(cfg_parse_cidr("::1", &c), 0);
	ck_assert_uint_eq(c.prefix, 128);
	ck_assert_int_eq(cfg_parse_cidr("0.0.0.0/0", &c), 0);
	ck_assert_uint_eq(c.prefix, 0);
	ck_assert_int_eq(cfg_parse_cidr("10.0.0.0/33", &c), -EINVAL);
	ck_assert_int_eq(cfg_parse_cidr("10.0.0.0/-1", &c), -EINVAL);
	ck_assert_int_eq(cfg_parse_cidr("10.0.0.0/0008", &c), -EINVAL);
	ck_assert_int_eq(cfg_parse_cidr("10.0.0/8", &c), -EINVAL);
	ck_assert_int_eq(cfg_parse_cidr("example.org", &c), -EINVAL);
	ck_assert_int_eq(cfg_parse_cidr("", &c), -EINVAL);
	ck_assert_int_eq(cfg_parse_cidr("::1/", &c), -EINVAL);
}
END_TEST

static struct sockaddr_storage test_addr(const char *text)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 sin6;

		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, text, &sin6.sin6_addr), 1);
		memcpy(&ss, &sin6, sizeof(sin6));
	} else {
		struct sockaddr_in sin;

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, text, &sin.sin_addr), 1);
		memcpy(&ss, &sin, sizeof(sin));
	}
	return ss;
}

static const struct {
	const char *label;
	const char *addr;
	bool in;
} cidr_matches[] = {
	{ "v4 inside /8", "10.200.3.4", true },
	{ "v4 outside /8", "11.0.0.1", false },
	{ "v4 inside /24", "192.168.1.255", true },
	{ "v4 next /24", "192.168.2.1", false },
	{ "v4 /30 edge in", "172.16.0.7", true },
	{ "v4 /30 edge out", "172.16.0.8", false },
	{ "v6 inside /32", "2001:db8:ffff::1", true },
	{ "v6 outside /32", "2001:db9::1", false },
	{ "v6 host", "::1", true },
	{ "v6 near host", "::2", false },
	{ "mapped v4 inside", "::ffff:10.1.2.3", true },
	{ "mapped v4 outside", "::ffff:11.1.2.3", false },
	{ "mapped v4 /24", "::ffff:192.168.1.9", true },
	{ "v4-compatible is not mapped", "::10.1.2.3", false },
};

START_TEST(test_cidr_match)
{
	struct sockaddr_storage ss;
	int rc;

	rc = test_load(BASE "trusted_networks = 10.0.0.0/8,192.168.1.0/24 172.16.0.5/30\t"
			    "2001:db8::/32 ::1\n");
	ASSERT_LOADED(rc);
	ck_assert_uint_eq(cfg->trusted_networks.n, 5);
	ss = test_addr(cidr_matches[_i].addr);
	ck_assert_msg(cfg_cidr_list_has(&cfg->trusted_networks, (struct sockaddr *)&ss) ==
			      cidr_matches[_i].in,
		      "%s: %s", cidr_matches[_i].label, cidr_matches[_i].addr);
}
END_TEST

START_TEST(test_cidr_match_edges)
{
	struct cfg_cidr all4, all6;
	struct cfg_cidr_list list = { &all4, 1 };
	struct sockaddr_storage ss;
	struct sockaddr unknown;

	ck_assert_int_eq(cfg_parse_cidr("0.0.0.0/0", &all4), 0);
	ck_assert_int_eq(cfg_parse_cidr("::/0", &all6), 0);
	ss = test_addr("203.0.113.9");
	ck_assert(cfg_cidr_list_has(&list, (struct sockaddr *)&ss));
	ss = test_addr("::ffff:203.0.113.9");
	ck_assert(cfg_cidr_list_has(&list, (struct sockaddr *)&ss));
	/* An IPv4 entry never matches a plain IPv6 client. */
	ss = test_addr("2001:db8::9");
	ck_assert(!cfg_cidr_list_has(&list, (struct sockaddr *)&ss));
	list.v = &all6;
	ck_assert(cfg_cidr_list_has(&list, (struct sockaddr *)&ss));
	ss = test_addr("203.0.113.9");
	ck_assert(!cfg_cidr_list_has(&list, (struct sockaddr *)&ss));
	list.n = 0;
	ck_assert(!cfg_cidr_list_has(&list, (struct sockaddr *)&ss));
	memset(&unknown, 0, sizeof(unknown));
	unknown.sa_family = AF_UNIX;
	list.n = 1;
	ck_assert(!cfg_cidr_list_has(&list, &unknown));
	ck_assert(!cfg_cidr_list_has(NULL, (struct sockaddr *)&ss));
}
END_TEST

START_TEST(test_role_names)
{
	ck_assert_str_eq(cfg_role_name(CFG_ROLE_MX), "mx");
	ck_assert_str_eq(cfg_role_name(CFG_ROLE_SUBMISSION), "submission");
	ck_assert_str_eq(cfg_role_name(CFG_ROLE_SUBMISSIONS), "submissions");
}
END_TEST

/* dkim_sign: on by default; yes/no, on/off, true/false. */
START_TEST(test_dkim_sign_bool)
{
	static const struct { const char *v; bool want; } cases[] = {
		{ "yes", true }, { "no", false }, { "on", true }, { "off", false },
		{ "true", true }, { "false", false },
	};
	char text[1024];
	int rc;

	rc = test_load(BASE);
	ASSERT_LOADED(rc);
	ck_assert(cfg->dkim_sign);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(text, sizeof(text), BASE "dkim_sign = %s\n", cases[i].v);
		rc = test_load(text);
		ASSERT_LOADED(rc);
		ck_assert_msg(cfg->dkim_sign == cases[i].want, "dkim_sign = %s", cases[i].v);
	}
}
END_TEST

START_TEST(test_params_documented)
{
	static const char *const types[] = { "STRING", "PATH", "SIZE", "COUNT", "DURATION",
		"PORT", "LOGFORMAT", "CIDRS", "LISTEN", "HOSTPORT", "ENDPOINT", "BOOL" };
	const struct cfg_param_info *p;
	size_t n, i, j;

	p = cfg_params(&n);
	ck_assert_uint_ge(n, 17); /* INTERFACE.md's keys at least */
	for (i = 0; i < n; i++) {
		bool known = false;

		ck_assert_msg(p[i].name != NULL && p[i].name[0] != '\0', "row %zu has no name", i);
		ck_assert_msg(p[i].doc != NULL && strlen(p[i].doc) > 10, "%s has no doc string",
			      p[i].name);
		for (j = 0; j < sizeof(types) / sizeof(types[0]); j++)
			known = known || strcmp(p[i].type, types[j]) == 0;
		ck_assert_msg(known, "%s has unknown type %s", p[i].name, p[i].type);
		ck_assert_msg(p[i].min <= p[i].max, "%s: min > max", p[i].name);
		for (j = 0; j < i; j++)
			ck_assert_msg(strcmp(p[i].name, p[j].name) != 0, "%s twice", p[i].name);
	}
	ck_assert_str_eq(p[0].name, "hostname");
}
END_TEST

START_TEST(test_man_page_lists_every_param)
{
	const struct cfg_param_info *p;
	const char *srcdir = getenv("GOVRELAY_SRCDIR");
	char path[512], chunk[4096], needle[128];
	struct buf page;
	size_t n, i, got;
	FILE *f;

	if (srcdir == NULL || srcdir[0] == '\0') {
		fprintf(stderr, "test_config: GOVRELAY_SRCDIR not set; "
				"skipping the doc/govrelay.conf.5 check\n");
		return;
	}
	snprintf(path, sizeof(path), "%s/doc/govrelay.conf.5", srcdir);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s", path);
	buf_init(&page);
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&page, chunk, got);
	fclose(f);
	buf_cstr(&page);
	ck_assert_ptr_nonnull(strstr(page.data, ".TH "));
	p = cfg_params(&n);
	for (i = 0; i < n; i++) {
		/* Each parameter has its own bold tag line in the PARAMETERS list. */
		snprintf(needle, sizeof(needle), "\n.B %s\n", p[i].name);
		ck_assert_msg(strstr(page.data, needle) != NULL,
			      "%s is not documented in %s", p[i].name, path);
	}
	buf_free(&page);
}
END_TEST

/* dmarc: a bool key, on by default; yes/no, on/off, true/false in any case. */
START_TEST(test_dmarc_key)
{
	int rc;

	rc = test_load(BASE);
	ASSERT_LOADED(rc);
	ck_assert(cfg->dmarc);
	cfg_unref(cfg);
	cfg = NULL;
	rc = test_load(BASE "dmarc = off\n");
	ASSERT_LOADED(rc);
	ck_assert(!cfg->dmarc);
	cfg_unref(cfg);
	cfg = NULL;
	rc = test_load(BASE "dmarc = True\n");
	ASSERT_LOADED(rc);
	ck_assert(cfg->dmarc);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("load");
	TCase *tp = tcase_create("parsers");

	tcase_add_checked_fixture(tc, test_setup, test_teardown);
	tcase_add_test(tc, test_full_file);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_dmarc_key);
	tcase_add_loop_test(tc, test_bad_value, 0, sizeof(bad_values) / sizeof(bad_values[0]));
	tcase_add_test(tc, test_multiple_errors);
	tcase_add_test(tc, test_duplicate_key);
	tcase_add_test(tc, test_clamd_accepted_to_run);
	tcase_add_test(tc, test_comments_and_line_endings);
	tcase_add_test(tc, test_long_line_and_nul);
	tcase_add_test(tc, test_relative_paths);
	tcase_add_test(tc, test_listen_accumulates);
	tcase_add_test(tc, test_listen_conflicts);
	tcase_add_test(tc, test_no_listen);
	tcase_add_test(tc, test_missing_data_dir);
	tcase_add_test(tc, test_submission_needs_tls);
	tcase_add_test(tc, test_tls_files);
	tcase_add_test(tc, test_backoff_order);
	tcase_add_test(tc, test_audit_checkpoint_keys);
	tcase_add_test(tc, test_unreadable_file);
	tcase_add_test(tc, test_refcount);
	tcase_add_test(tc, test_dkim_sign_bool);
	tcase_add_loop_test(tc, test_cidr_match, 0, sizeof(cidr_matches) / sizeof(cidr_matches[0]));
	suite_add_tcase(s, tc);

	tcase_add_loop_test(tp, test_duration_table, 0, sizeof(durations) / sizeof(durations[0]));
	tcase_add_loop_test(tp, test_size_table, 0, sizeof(sizes) / sizeof(sizes[0]));
	tcase_add_test(tp, test_cidr_parse);
	tcase_add_test(tp, test_cidr_match_edges);
	tcase_add_test(tp, test_role_names);
	tcase_add_test(tp, test_params_documented);
	tcase_add_test(tp, test_man_page_lists_every_param);
	suite_add_tcase(s, tp);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
