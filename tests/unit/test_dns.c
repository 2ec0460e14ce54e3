/*
 * test_dns: the resolver against a real unbound on 127.0.0.1 (a free
 * port, a config in a temporary folder, `local-zone: "." static` so that
 * nothing ever leaves the machine). The records under example. (not
 * test.: libunbound answers that RFC 6761 name itself):
 *
 *   mx.example        MX 5 a, 10 b1/b2/b3 (a tie), 20 c
 *   dual.example      A 192.0.2.1, AAAA 2001:db8::1
 *   v4.example        A 192.0.2.2 only
 *   nomx.example      A 192.0.2.3, no MX (RFC 5321 5.1 implicit MX)
 *   nullmx.example    MX 0 . (RFC 7505)
 *   txt.example       TXT of two strings, 200 + 100 bytes
 *   _25._tcp.mx.example TLSA 3 1 1 <32 bytes>
 *   PTR of 10.0.0.1 and fd00::1: dual.example (private ranges: the
 *                  resolver must ask the server, not answer them itself)
 *   ttl1.example      A with a TTL of one second
 *   e1..e3.example    A, for cache eviction
 *   nx.example        absent (NXDOMAIN; the SOA minimum is 60 s)
 *   refused.example.  a zone unbound refuses: DNS_TEMPFAIL
 *
 * When ldns-keygen and ldns-signzone (ldnsutils) are installed, the
 * server also serves signed.example. as a DNSSEC-signed auth-zone, with
 * half.signed.example's AAAA tampered with after signing, and a DNSSEC test
 * case checks secure answers, bogus ones under a wrong anchor, and a
 * bogus AAAA next to a good A.
 *
 * A missing /usr/sbin/unbound fails every test with a message: it is
 * installed by scripts/install-deps.sh --test.
 *
 * Entry points: main (one Check suite).
 * OWNERSHIP: the unchecked fixture owns the shared server and its folder;
 * a test that starts its own server kills it before it ends (and the
 * kernel kills it if the test dies: PR_SET_PDEATHSIG).
 * THREADS: the test's loop thread (libunbound adds its own).
 * ERRORS: assertion failures.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <uv.h>

#include "common/cfg.h"
#include "relay/dns.h"

#define TEST_DNS_UNBOUND "/usr/sbin/unbound"
#define TEST_DNS_TLSA_HEX \
	"0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"

struct test_dns_srv {
	pid_t pid;
	uint16_t port;
	char dir[64];
	bool dnssec;          /* serves signed.example. */
	char ds[512];         /* the KSK's DS record, when dnssec */
	char wrong_ds[512];   /* the same with one digest digit changed */
};

static struct test_dns_srv test_dns_shared;
static char test_dns_setup_error[1024];
static bool test_dns_have_ldns;

/* ------------------------------------------------------ the server */

static bool test_dns_is_exe(const char *path)
{
	return access(path, X_OK) == 0;
}

/* A port free for both UDP and TCP on 127.0.0.1 (0 when none found). */
static uint16_t test_dns_free_port(void)
{
	int tries;

	for (tries = 0; tries < 50; tries++) {
		struct sockaddr_in sa;
		socklen_t len = sizeof(sa);
		int u = socket(AF_INET, SOCK_DGRAM, 0);
		int t = socket(AF_INET, SOCK_STREAM, 0);
		uint16_t port = 0;

		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (u >= 0 && t >= 0 &&
		    bind(u, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		    getsockname(u, (struct sockaddr *)&sa, &len) == 0 &&
		    bind(t, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			port = ntohs(sa.sin_port);
		if (u >= 0)
			close(u);
		if (t >= 0)
			close(t);
		if (port != 0)
			return port;
	}
	return 0;
}

/*
 * One UDP query for ready.example/A; true when unbound answers it. Waits at
 * most 100 ms for the reply.
 */
static bool test_dns_probe(uint16_t port)
{
	static const unsigned char q[] = {
		0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		5, 'r', 'e', 'a', 'd', 'y', 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0,
		0, 1, 0, 1,
	};
	unsigned char r[512];
	struct sockaddr_in sa;
	struct pollfd pfd;
	bool ok = false;
	ssize_t n;
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	if (s < 0)
		return false;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons(port);
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    send(s, q, sizeof(q), 0) == (ssize_t)sizeof(q)) {
		pfd.fd = s;
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 100) == 1 && (n = recv(s, r, sizeof(r), 0)) >= 12)
			ok = r[0] == 0x42 && r[1] == 0x42 && (r[3] & 0xf) == 0 &&
			    (r[6] << 8 | r[7]) >= 1;
	}
	close(s);
	return ok;
}

static uint64_t test_dns_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The last lines of the server's log, for failure messages. */
static void test_dns_log_tail(const struct test_dns_srv *s, char *out, size_t len)
{
	char path[128];
	FILE *f;
	size_t n;
	long size;

	out[0] = '\0';
	snprintf(path, sizeof(path), "%s/unbound.log", s->dir);
	if ((f = fopen(path, "r")) == NULL)
		return;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	if (size > (long)len - 1)
		fseek(f, size - (long)len + 1, SEEK_SET);
	else
		fseek(f, 0, SEEK_SET);
	n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	fclose(f);
}

/*
 * Makes signed.example.zone.signed in s->dir and fills s->ds and
 * s->wrong_ds. 0, or -1 with a message in err.
 */
static int test_dns_sign_zone(struct test_dns_srv *s, char *err, size_t errlen)
{
	char cmd[1024], path[128];
	size_t len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/signed.example.zone", s->dir);
	if ((f = fopen(path, "w")) == NULL) {
		snprintf(err, errlen, "cannot write %s", path);
		return -1;
	}
	fputs("$ORIGIN signed.example.\n$TTL 300\n"
	    "@ IN SOA ns.signed.example. host.signed.example. 1 3600 600 86400 60\n"
	    "@ IN NS ns.signed.example.\n"
	    "@ IN MX 10 mx.signed.example.\n"
	    "ns IN A 127.0.0.1\n"
	    "mx IN A 192.0.2.25\n"
	    "half IN A 192.0.2.53\n"
	    "half IN AAAA 2001:db8::53\n"
	    "_25._tcp.mx IN TLSA 3 1 1 " TEST_DNS_TLSA_HEX "\n", f);
	fclose(f);
	/*
	 * A KSK and a ZSK, the zone signed with NSEC, then half's AAAA
	 * changed after signing so that its RRSIG no longer matches.
	 */
	snprintf(cmd, sizeof(cmd),
	    "cd '%s' && K=$(ldns-keygen -a ECDSAP256SHA256 -k signed.example) && "
	    "Z=$(ldns-keygen -a ECDSAP256SHA256 signed.example) && "
	    "ldns-signzone signed.example.zone $K $Z && "
	    "grep -q '2001:db8::53' signed.example.zone.signed && "
	    "sed -i 's/2001:db8::53/2001:db8::54/' signed.example.zone.signed && "
	    "cp $K.ds ksk.ds >/dev/null 2>&1", s->dir);
	if (system(cmd) != 0) {
		snprintf(err, errlen, "signing the test zone in %s failed", s->dir);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/ksk.ds", s->dir);
	if ((f = fopen(path, "r")) == NULL || fgets(s->ds, sizeof(s->ds), f) == NULL) {
		if (f)
			fclose(f);
		snprintf(err, errlen, "cannot read %s", path);
		return -1;
	}
	fclose(f);
	len = strcspn(s->ds, "\r\n");
	s->ds[len] = '\0';
	if (len < 10) {
		snprintf(err, errlen, "short DS record: %s", s->ds);
		return -1;
	}
	memcpy(s->wrong_ds, s->ds, len + 1);
	/* The digest's last hex digit, changed: the anchor matches no key. */
	s->wrong_ds[len - 1] = s->ds[len - 1] == '0' ? '1' : '0';
	return 0;
}

static int test_dns_write_conf(const struct test_dns_srv *s, char *err, size_t errlen)
{
	char path[128], a[201], b[101];
	FILE *f;

	snprintf(path, sizeof(path), "%s/unbound.conf", s->dir);
	if ((f = fopen(path, "w")) == NULL) {
		snprintf(err, errlen, "cannot write %s", path);
		return -1;
	}
	memset(a, 'a', 200);
	a[200] = '\0';
	memset(b, 'b', 100);
	b[100] = '\0';
	fprintf(f,
	    "server:\n"
	    "  interface: 127.0.0.1\n"
	    "  port: %u\n"
	    "  do-daemonize: no\n"
	    "  username: \"\"\n"
	    "  chroot: \"\"\n"
	    "  directory: \"%s\"\n"
	    "  pidfile: \"\"\n"
	    "  use-syslog: no\n"
	    "  logfile: \"\"\n"
	    "  verbosity: 1\n"
	    "  do-ip6: no\n"
	    "  access-control: 127.0.0.0/8 allow\n"
	    "  module-config: \"iterator\"\n"
	    "  local-zone: \".\" static\n"
	    "  local-zone: \"example.\" static\n"
	    "  local-data: \"example. 3600 IN SOA ns.example. host.example. 1 3600 600 86400 60\"\n"
	    "  local-data: \"ready.example. 60 IN A 127.0.0.99\"\n"
	    "  local-data: \"mx.example. 300 IN MX 20 c.mx.example.\"\n"
	    "  local-data: \"mx.example. 300 IN MX 10 b1.mx.example.\"\n"
	    "  local-data: \"mx.example. 300 IN MX 10 b2.mx.example.\"\n"
	    "  local-data: \"mx.example. 300 IN MX 10 b3.mx.example.\"\n"
	    "  local-data: \"mx.example. 300 IN MX 5 a.mx.example.\"\n"
	    "  local-data: \"dual.example. 300 IN A 192.0.2.1\"\n"
	    "  local-data: \"dual.example. 300 IN AAAA 2001:db8::1\"\n"
	    "  local-data: \"v4.example. 300 IN A 192.0.2.2\"\n"
	    "  local-data: \"nomx.example. 300 IN A 192.0.2.3\"\n"
	    "  local-data: \"nullmx.example. 300 IN MX 0 .\"\n"
	    "  local-data: 'txt.example. 300 IN TXT \"%s\" \"%s\"'\n"
	    "  local-data: \"_25._tcp.mx.example. 300 IN TLSA 3 1 1 %s\"\n"
	    "  local-data: \"1.0.0.10.in-addr.arpa. 300 IN PTR dual.example.\"\n"
	    "  local-data: \"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa. 300 IN PTR Dual.Example.\"\n"
	    "  local-data: \"ttl1.example. 1 IN A 192.0.2.9\"\n"
	    "  local-data: \"e1.example. 300 IN A 192.0.2.11\"\n"
	    "  local-data: \"e2.example. 300 IN A 192.0.2.12\"\n"
	    "  local-data: \"e3.example. 300 IN A 192.0.2.13\"\n"
	    "  local-zone: \"refused.example.\" refuse\n",
	    s->port, s->dir, a, b, TEST_DNS_TLSA_HEX);
	if (s->dnssec)
		fprintf(f,
		    "  local-zone: \"signed.example.\" transparent\n"
		    "auth-zone:\n"
		    "  name: \"signed.example.\"\n"
		    "  zonefile: \"%s/signed.example.zone.signed\"\n"
		    "  for-downstream: yes\n"
		    "  for-upstream: no\n"
		    "  fallback-enabled: no\n", s->dir);
	fprintf(f, "remote-control:\n  control-enable: no\n");
	if (fclose(f) != 0) {
		snprintf(err, errlen, "cannot write %s", path);
		return -1;
	}
	return 0;
}

/*
 * Starts unbound for s (s->dir exists; s->dnssec set) and waits until
 * it answers, polling with a deadline. 0, or -1 with a message in err.
 */
static int test_dns_srv_start(struct test_dns_srv *s, char *err, size_t errlen)
{
	char conf[128], logpath[128], tail[600];
	uint64_t deadline;
	int attempt, status;

	if (!test_dns_is_exe(TEST_DNS_UNBOUND)) {
		snprintf(err, errlen, "%s is missing: install the unbound package "
		    "(scripts/install-deps.sh --test)", TEST_DNS_UNBOUND);
		return -1;
	}
	snprintf(conf, sizeof(conf), "%s/unbound.conf", s->dir);
	snprintf(logpath, sizeof(logpath), "%s/unbound.log", s->dir);
	/* Another process may take the port between probe and bind: retry. */
	for (attempt = 0; attempt < 5; attempt++) {
		if ((s->port = test_dns_free_port()) == 0) {
			snprintf(err, errlen, "no free port on 127.0.0.1");
			return -1;
		}
		if (test_dns_write_conf(s, err, errlen) < 0)
			return -1;
		s->pid = fork();
		if (s->pid < 0) {
			snprintf(err, errlen, "fork: %s", strerror(errno));
			return -1;
		}
		if (s->pid == 0) {
			int fd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);

			/* Dies with the test process, whatever happens to it. */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
			execl(TEST_DNS_UNBOUND, "unbound", "-d", "-c", conf, (char *)NULL);
			_exit(127);
		}
		deadline = test_dns_now_ms() + 10000;
		while (test_dns_now_ms() < deadline) {
			if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
				s->pid = 0;
				break;
			}
			if (test_dns_probe(s->port))
				return 0;
			/* A refused probe returns at once: pace the retries. */
			poll(NULL, 0, 20);
		}
		if (s->pid > 0) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &status, 0);
			s->pid = 0;
		}
	}
	test_dns_log_tail(s, tail, sizeof(tail));
	snprintf(err, errlen, "unbound did not answer on 127.0.0.1: %s", tail);
	return -1;
}

static void test_dns_srv_stop(struct test_dns_srv *s)
{
	int status;

	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, &status, 0);
	}
	s->pid = 0;
}

static void test_dns_rmdir(const char *dir)
{
	char cmd[160];

	if (dir[0] == '\0')
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_dns: could not remove %s\n", dir);
}

static int test_dns_srv_new(struct test_dns_srv *s, bool dnssec, char *err,
    size_t errlen)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "/tmp/test_dns.XXXXXX");
	if (mkdtemp(s->dir) == NULL) {
		snprintf(err, errlen, "mkdtemp: %s", strerror(errno));
		s->dir[0] = '\0';
		return -1;
	}
	s->dnssec = dnssec;
	if (dnssec && test_dns_sign_zone(s, err, errlen) < 0)
		return -1;
	return test_dns_srv_start(s, err, errlen);
}

static void test_dns_shared_up(void)
{
	test_dns_setup_error[0] = '\0';
	if (test_dns_srv_new(&test_dns_shared, test_dns_have_ldns,
	    test_dns_setup_error, sizeof(test_dns_setup_error)) < 0 &&
	    test_dns_setup_error[0] == '\0')
		snprintf(test_dns_setup_error, sizeof(test_dns_setup_error),
		    "the test DNS server did not start");
}

static void test_dns_shared_down(void)
{
	test_dns_srv_stop(&test_dns_shared);
	test_dns_rmdir(test_dns_shared.dir);
}

/* ------------------------------------------------------------ harness */

/* One callback's result, copied (the original dies with the callback). */
struct test_dns_got {
	int calls;
	enum dns_status status;
	bool secure, bogus, null_mx;
	uint32_t ttl;
	size_t n;
	char text[2048];  /* the records, formatted, each ended by ';' */
	char error[512];
	char why[512];
	size_t txt_len;   /* TXT: the first record's length */
	int *counter;     /* shared count of callbacks, or NULL */
	int order;        /* *counter after this callback */
	/* Done from the callback, after recording. */
	struct dns_query *cancel;
	struct dns *close;
	int *closed;
};

struct test_dns_env {
	uv_loop_t loop;
	uv_timer_t guard;
	bool expired;
	struct dns *d;
	int closed;
	int count;
};

static void test_dns_on_closed(void *arg)
{
	(*(int *)arg)++;
}

static void test_dns_append(struct test_dns_got *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void test_dns_append(struct test_dns_got *g, const char *fmt, ...)
{
	size_t len = strlen(g->text);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(g->text + len, sizeof(g->text) - len, fmt, ap);
	va_end(ap);
}

static void test_dns_cb(void *arg, const struct dns_result *res)
{
	struct test_dns_got *g = arg;
	char ip[INET6_ADDRSTRLEN];
	size_t i, j;

	g->calls++;
	if (g->counter)
		g->order = ++*g->counter;
	g->status = res->status;
	g->secure = res->secure;
	g->bogus = res->bogus;
	g->null_mx = res->null_mx;
	g->ttl = res->ttl;
	g->n = res->n;
	g->text[0] = '\0';
	ck_assert_ptr_nonnull(res->error);
	ck_assert_ptr_nonnull(res->why_bogus);
	snprintf(g->error, sizeof(g->error), "%s", res->error);
	snprintf(g->why, sizeof(g->why), "%s", res->why_bogus);
	if (res->status != DNS_OK)
		ck_assert_uint_eq(res->n, 0);
	for (i = 0; i < res->n; i++) {
		if (res->mx) {
			test_dns_append(g, "%u %s;", res->mx[i].pref, res->mx[i].host);
		} else if (res->addr) {
			const struct sockaddr_storage *ss = &res->addr[i];

			if (ss->ss_family == AF_INET) {
				const struct sockaddr_in *sin = (const void *)ss;

				ck_assert_uint_eq(sin->sin_port, 0);
				inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
			} else {
				const struct sockaddr_in6 *sin6 = (const void *)ss;

				ck_assert_uint_eq(ss->ss_family, AF_INET6);
				ck_assert_uint_eq(sin6->sin6_port, 0);
				inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
			}
			test_dns_append(g, "%s;", ip);
		} else if (res->txt) {
			if (i == 0)
				g->txt_len = res->txt[0].len;
			ck_assert_uint_eq(res->txt[i].data[res->txt[i].len], '\0');
			test_dns_append(g, "%s;", res->txt[i].data);
		} else if (res->tlsa) {
			test_dns_append(g, "%u %u %u ", res->tlsa[i].usage,
			    res->tlsa[i].selector, res->tlsa[i].mtype);
			for (j = 0; j < res->tlsa[i].len; j++)
				test_dns_append(g, "%02x", res->tlsa[i].data[j]);
			test_dns_append(g, ";");
		} else {
			ck_assert_ptr_nonnull(res->ptr);
			test_dns_append(g, "%s;", res->ptr[i].host);
		}
	}
	if (g->cancel)
		dns_cancel(g->cancel);
	if (g->close)
		dns_close(g->close, test_dns_on_closed, g->closed);
}

static void test_dns_on_guard(uv_timer_t *t)
{
	struct test_dns_env *e = t->data;

	e->expired = true;
}

/* The shared server must be up: fails the test with the reason if not. */
static uint16_t test_dns_need_server(void)
{
	ck_assert_msg(test_dns_setup_error[0] == '\0', "%s", test_dns_setup_error);
	ck_assert_uint_ne(test_dns_shared.port, 0);
	return test_dns_shared.port;
}

static struct dns *test_dns_new(uv_loop_t *loop, uint16_t port)
{
	struct cfg_hostport hp;
	char err[256] = "";
	struct dns *d;

	memset(&hp, 0, sizeof(hp));
	hp.set = true;
	snprintf(hp.host, sizeof(hp.host), "127.0.0.1");
	hp.port = port;
	d = dns_new(loop, &hp, err, sizeof(err));
	ck_assert_msg(d != NULL, "dns_new: %s", err);
	return d;
}

static void test_dns_env_init(struct test_dns_env *e, uint16_t port)
{
	memset(e, 0, sizeof(*e));
	ck_assert_int_eq(uv_loop_init(&e->loop), 0);
	ck_assert_int_eq(uv_timer_init(&e->loop, &e->guard), 0);
	e->guard.data = e;
	e->d = test_dns_new(&e->loop, port);
}

/* Runs the loop until *count reaches want; fails after 10 s. */
static void test_dns_wait(struct test_dns_env *e, const int *count, int want)
{
	e->expired = false;
	uv_timer_start(&e->guard, test_dns_on_guard, 10000, 0);
	while (*count < want && !e->expired)
		uv_run(&e->loop, UV_RUN_ONCE);
	uv_timer_stop(&e->guard);
	ck_assert_msg(*count >= want, "timed out waiting for DNS answers (%d of %d)",
	    *count, want);
}

/* Runs the loop until no lookup is in flight; fails after 10 s. */
static void test_dns_wait_inflight(struct test_dns_env *e)
{
	struct dns_stats st;

	e->expired = false;
	uv_timer_start(&e->guard, test_dns_on_guard, 10000, 0);
	for (;;) {
		dns_get_stats(e->d, &st);
		if (st.inflight == 0 || e->expired)
			break;
		uv_run(&e->loop, UV_RUN_ONCE);
	}
	uv_timer_stop(&e->guard);
	ck_assert_msg(st.inflight == 0, "lookups still in flight after 10 s");
}

/* Runs the loop for ms milliseconds (lets a TTL run out). */
static void test_dns_pass(struct test_dns_env *e, uint64_t ms)
{
	e->expired = false;
	uv_timer_start(&e->guard, test_dns_on_guard, ms, 0);
	while (!e->expired)
		uv_run(&e->loop, UV_RUN_ONCE);
}

/* Closes the resolver (unless already closing) and the loop. */
static void test_dns_env_done(struct test_dns_env *e, bool close_dns)
{
	if (close_dns)
		dns_close(e->d, test_dns_on_closed, &e->closed);
	uv_close((uv_handle_t *)&e->guard, NULL);
	ck_assert_int_eq(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(e->closed, 1);
	ck_assert_int_eq(uv_loop_close(&e->loop), 0);
}

/* One query of each kind, run to its answer. kind: m a t l p (ptr: name
 * is an address). */
static void test_dns_ask(struct test_dns_env *e, char kind, const char *name,
    struct test_dns_got *g)
{
	struct sockaddr_storage ss;
	int rc = -1;

	memset(g, 0, sizeof(*g));
	switch (kind) {
	case 'm': rc = dns_query_mx(e->d, name, test_dns_cb, g, NULL); break;
	case 'a': rc = dns_query_addr(e->d, name, test_dns_cb, g, NULL); break;
	case 't': rc = dns_query_txt(e->d, name, test_dns_cb, g, NULL); break;
	case 'l': rc = dns_query_tlsa(e->d, name, test_dns_cb, g, NULL); break;
	case 'p':
		memset(&ss, 0, sizeof(ss));
		if (strchr(name, ':')) {
			ss.ss_family = AF_INET6;
			ck_assert_int_eq(inet_pton(AF_INET6, name,
			    &((struct sockaddr_in6 *)&ss)->sin6_addr), 1);
		} else {
			ss.ss_family = AF_INET;
			ck_assert_int_eq(inet_pton(AF_INET, name,
			    &((struct sockaddr_in *)&ss)->sin_addr), 1);
		}
		rc = dns_query_ptr(e->d, (struct sockaddr *)&ss, test_dns_cb, g, NULL);
		break;
	}
	ck_assert_int_eq(rc, 0);
	/* Never a callback from inside the call, even from the cache. */
	ck_assert_int_eq(g->calls, 0);
	test_dns_wait(e, &g->calls, 1);
	ck_assert_int_eq(g->calls, 1);
}

/* -------------------------------------------------------------- tests */

static const struct test_dns_lookup {
	const char *label;
	char kind;
	const char *name;
	enum dns_status status;
	const char *text;   /* exact records, or NULL: not compared */
	uint32_t ttl_max;   /* answer TTL in [ttl_max - 5, ttl_max] */
} test_dns_lookups[] = {
	{ "A and AAAA", 'a', "dual.example", DNS_OK, "192.0.2.1;2001:db8::1;", 300 },
	/* The AAAA NODATA (SOA minimum 60) bounds the joined answer's TTL. */
	{ "A only", 'a', "v4.example", DNS_OK, "192.0.2.2;", 60 },
	{ "mixed case, final dot", 'a', "V4.Example.", DNS_OK, "192.0.2.2;", 60 },
	{ "address of an absent name", 'a', "nx.example", DNS_NXDOMAIN, "", 60 },
	{ "no address, name exists", 'a', "txt.example", DNS_NODATA, "", 60 },
	{ "no MX but an A (implicit MX)", 'm', "nomx.example", DNS_NODATA, "", 60 },
	{ "and that A", 'a', "nomx.example", DNS_OK, "192.0.2.3;", 60 },
	{ "MX of an absent name", 'm', "nx.example", DNS_NXDOMAIN, "", 60 },
	{ "null MX", 'm', "nullmx.example", DNS_OK, "", 300 },
	{ "TLSA", 'l', "_25._tcp.mx.example", DNS_OK,
	  "3 1 1 " TEST_DNS_TLSA_HEX ";", 300 },
	{ "PTR IPv4", 'p', "10.0.0.1", DNS_OK, "dual.example;", 300 },
	{ "PTR IPv4-mapped", 'p', "::ffff:10.0.0.1", DNS_OK, "dual.example;", 300 },
	{ "PTR IPv6, lowercased", 'p', "fd00::1", DNS_OK, "dual.example;", 300 },
	{ "PTR absent", 'p', "10.0.0.200", DNS_NXDOMAIN, "", 0 },
	{ "refused zone", 'm', "x.refused.example", DNS_TEMPFAIL, "", 0 },
	{ "refused zone, address", 'a', "x.refused.example", DNS_TEMPFAIL, "", 0 },
};

START_TEST(test_dns_lookup_kinds)
{
	const struct test_dns_lookup *t = &test_dns_lookups[_i];
	struct test_dns_env e;
	struct test_dns_got g;

	test_dns_env_init(&e, test_dns_need_server());
	test_dns_ask(&e, t->kind, t->name, &g);
	ck_assert_msg(g.status == t->status, "%s: status %s, want %s (%s)", t->label,
	    dns_status_name(g.status), dns_status_name(t->status), g.error);
	if (t->text)
		ck_assert_msg(strcmp(g.text, t->text) == 0, "%s: got \"%s\", want \"%s\"",
		    t->label, g.text, t->text);
	ck_assert_msg(!g.secure && !g.bogus, "%s: no anchor, so insecure", t->label);
	if (t->status == DNS_TEMPFAIL) {
		ck_assert_msg(g.error[0] != '\0', "%s: TEMPFAIL needs a reason", t->label);
		ck_assert_uint_eq(g.ttl, 0);
	} else {
		ck_assert_msg(g.error[0] == '\0', "%s: error \"%s\"", t->label, g.error);
		if (t->ttl_max)
			ck_assert_msg(g.ttl <= t->ttl_max && g.ttl + 5 >= t->ttl_max,
			    "%s: ttl %u, want about %u", t->label, g.ttl, t->ttl_max);
	}
	ck_assert_msg(g.null_mx == (strcmp(t->name, "nullmx.example") == 0),
	    "%s: null_mx %d", t->label, g.null_mx);
	test_dns_env_done(&e, true);
}
END_TEST

/* MX order: by preference; the tie at 10 comes in every order over time. */
START_TEST(test_dns_mx_order)
{
	struct test_dns_env e;
	struct test_dns_got g;
	char first[2048];
	bool differs = false;
	int i;

	test_dns_env_init(&e, test_dns_need_server());
	for (i = 0; i < 40; i++) {
		test_dns_ask(&e, 'm', "mx.example", &g);
		ck_assert_int_eq(g.status, DNS_OK);
		ck_assert_uint_eq(g.n, 5);
		ck_assert_msg(strncmp(g.text, "5 a.mx.example;10 b", 19) == 0, "%s", g.text);
		ck_assert_msg(strstr(g.text, "10 b1.mx.example;") && strstr(g.text, "10 b2.mx.example;") &&
		    strstr(g.text, "10 b3.mx.example;"), "%s", g.text);
		ck_assert_msg(strlen(g.text) > 16 &&
		    strcmp(g.text + strlen(g.text) - 16, "20 c.mx.example;") == 0, "%s", g.text);
		if (i == 0)
			snprintf(first, sizeof(first), "%s", g.text);
		else if (strcmp(first, g.text) != 0)
			differs = true;
	}
	/* 39 answers in the same order out of 6 would be a broken shuffle. */
	ck_assert_msg(differs, "equal preferences always in the order %s", first);
	test_dns_env_done(&e, true);
}
END_TEST

START_TEST(test_dns_txt_long)
{
	struct test_dns_env e;
	struct test_dns_got g;
	char want[310];

	test_dns_env_init(&e, test_dns_need_server());
	test_dns_ask(&e, 't', "txt.example", &g);
	ck_assert_int_eq(g.status, DNS_OK);
	ck_assert_uint_eq(g.n, 1);
	/* Two character-strings, joined with nothing between (RFC 7208 3.3). */
	ck_assert_uint_eq(g.txt_len, 300);
	memset(want, 'a', 200);
	memset(want + 200, 'b', 100);
	want[300] = ';';
	want[301] = '\0';
	ck_assert_str_eq(g.text, want);
	test_dns_ask(&e, 't', "nx.example", &g);
	ck_assert_int_eq(g.status, DNS_NXDOMAIN);
	test_dns_env_done(&e, true);
}
END_TEST

static const struct {
	const char *label;
	const char *name;
	bool valid;
} test_dns_names[] = {
	{ "plain", "example.org", true },
	{ "final dot", "example.org.", true },
	{ "service labels", "_25._tcp.mx.example.org", true },
	{ "one label", "localhost", true },
	{ "empty", "", false },
	{ "only a dot", ".", false },
	{ "empty label", "a..b", false },
	{ "leading dot", ".a.b", false },
	{ "two final dots", "a.b..", false },
	{ "space", "a b.org", false },
	{ "backslash escape", "a\\.b.org", false },
	{ "UTF-8 (U-label)", "\xc3\xa9t\xc3\xa9.fr", false },
	{ "label of 64", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org", false },
	{ "label of 63", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.org", true },
};

START_TEST(test_dns_bad_names)
{
	struct test_dns_env e;
	struct test_dns_got g;
	struct dns_query *q = (struct dns_query *)&g;
	struct sockaddr sa;
	char n253[254], n254[256];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(test_dns_names) / sizeof(test_dns_names[0]); i++)
		ck_assert_msg(dns_name_is_valid(test_dns_names[i].name) ==
		    test_dns_names[i].valid, "%s", test_dns_names[i].label);
	/* 253 characters: labels of 63, 63, 63, 59 and 1. */
	memset(n253, 'a', 253);
	n253[63] = n253[127] = n253[191] = n253[251] = '.';
	n253[253] = '\0';
	ck_assert(dns_name_is_valid(n253));
	memcpy(n254, n253, 253);
	n254[253] = '.';
	n254[254] = '\0';
	ck_assert(dns_name_is_valid(n254)); /* the final dot does not count */
	n254[253] = 'a';
	ck_assert(!dns_name_is_valid(n254));

	/* Refused before any lookup: no callback, no handle. */
	test_dns_env_init(&e, test_dns_need_server());
	memset(&g, 0, sizeof(g));
	rc = dns_query_mx(e.d, "a..b", test_dns_cb, &g, &q);
	ck_assert_int_eq(rc, -EINVAL);
	ck_assert_ptr_null(q);
	ck_assert_int_eq(dns_query_addr(e.d, n254, test_dns_cb, &g, NULL), -EINVAL);
	ck_assert_int_eq(dns_query_txt(e.d, "a b", test_dns_cb, &g, NULL), -EINVAL);
	ck_assert_int_eq(dns_query_tlsa(e.d, "", test_dns_cb, &g, NULL), -EINVAL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	ck_assert_int_eq(dns_query_ptr(e.d, &sa, test_dns_cb, &g, NULL), -EINVAL);
	ck_assert_int_eq(dns_query_mx(e.d, "ok.example", NULL, &g, NULL), -EINVAL);
	test_dns_env_done(&e, true);
	ck_assert_int_eq(g.calls, 0);
}
END_TEST

/*
 * The cache: answers (positive and negative) served without asking
 * libunbound again, even once the server is gone; TEMPFAIL never kept;
 * TTL honoured; the oldest evicted beyond the bound.
 */
START_TEST(test_dns_cache)
{
	struct test_dns_srv srv;
	struct test_dns_env e;
	struct test_dns_got g;
	struct dns_stats st;
	char err[1024];

	ck_assert_msg(test_dns_srv_new(&srv, false, err, sizeof(err)) == 0, "%s", err);
	test_dns_env_init(&e, srv.port);
	test_dns_ask(&e, 'm', "mx.example", &g);
	ck_assert_int_eq(g.status, DNS_OK);
	test_dns_ask(&e, 'a', "nx.example", &g);
	ck_assert_int_eq(g.status, DNS_NXDOMAIN);
	test_dns_ask(&e, 'm', "x.refused.example", &g);
	ck_assert_int_eq(g.status, DNS_TEMPFAIL);
	dns_get_stats(e.d, &st);
	ck_assert_uint_eq(st.upstream, 4); /* MX, A, AAAA, MX */
	ck_assert_uint_eq(st.hits, 0);
	ck_assert_uint_eq(st.cached, 3);   /* not the TEMPFAIL */

	test_dns_srv_stop(&srv);
	dns_set_timeout(e.d, 300);
	test_dns_ask(&e, 'm', "MX.example.", &g);
	ck_assert_int_eq(g.status, DNS_OK);
	ck_assert_uint_eq(g.n, 5);
	ck_assert_msg(g.ttl <= 300 && g.ttl >= 295, "ttl %u", g.ttl);
	test_dns_ask(&e, 'a', "nx.example", &g);
	ck_assert_int_eq(g.status, DNS_NXDOMAIN);
	dns_get_stats(e.d, &st);
	ck_assert_uint_eq(st.upstream, 4);
	ck_assert_uint_eq(st.hits, 3);
	/* The TEMPFAIL was not cached: asked again (and failed again, the
	 * server being gone). */
	test_dns_ask(&e, 'm', "x.refused.example", &g);
	ck_assert_int_eq(g.status, DNS_TEMPFAIL);
	ck_assert_msg(g.error[0] != '\0', "TEMPFAIL needs a reason");
	dns_get_stats(e.d, &st);
	ck_assert_uint_eq(st.upstream, 5);
	ck_assert_uint_eq(st.inflight, 0);

	/* Shrinking the bound evicts the oldest (the MX) at once. */
	dns_set_cache_max(e.d, 2);
	dns_get_stats(e.d, &st);
	ck_assert_uint_eq(st.cached, 2);
	test_dns_ask(&e, 'a', "nx.example", &g);
	ck_assert_int_eq(g.status, DNS_NXDOMAIN);
	dns_get_stats(e.d, &st);
	ck_assert_uint_eq(st.upstream, 5);
	ck_assert_uint_eq(st.hits, 5);
	/* Asked again (libunbound's own cache may still know it). */
	test_dns_ask(&e, 'm', "mx.example", &g);
	dns_get_stats(e.d, &st);
	ck_assert_uint_eq(st.upstream, 6);
	ck_assert_uint_eq(st.hits, 5);
	test_dns_env_done(&e, true);
	test_dns_rmdir(srv.dir);
}
END_TEST

START_TEST(test_dns_cache_ttl_and_bound)
{
	struct test_dns_env e;
	struct test_dns_got g;
	struct dns_stats st0, st;

	test_dns_env_init(&e, test_dns_need_server());
	/* ttl1.example: A with a TTL of 1 s; its AAAA NODATA is kept 60 s. */
	test_dns_ask(&e, 'a', "ttl1.example", &g);
	ck_assert_int_eq(g.status, DNS_OK);
	ck_assert_uint_le(g.ttl, 1);
	dns_get_stats(e.d, &st0);
	ck_assert_uint_eq(st0.upstream, 2);
	test_dns_pass(&e, 1100);
	test_dns_ask(&e, 'a', "ttl1.example", &g);
	ck_assert_int_eq(g.status, DNS_OK);
	ck_assert_str_eq(g.text, "192.0.2.9;");
	dns_get_stats(e.d, &st);
	ck_assert_uint_eq(st.upstream, st0.upstream + 1); /* the A expired */
	ck_assert_uint_eq(st.hits, st0.hits + 1);         /* the AAAA did not */

	/* A bound of 2: three names, the first one is evicted. */
	dns_set_cache_max(e.d, 2);
	test_dns_ask(&e, 'm', "e1.example", &g);
	test_dns_ask(&e, 'm', "e2.example", &g);
	test_dns_ask(&e, 'm', "e3.example", &g);
	ck_assert_int_eq(g.status, DNS_NODATA);
	dns_get_stats(e.d, &st0);
	ck_assert_uint_eq(st0.cached, 2);
	test_dns_ask(&e, 'm', "e3.example", &g);
	test_dns_ask(&e, 'm', "e2.example", &g);
	test_dns_ask(&e, 'm', "e1.example", &g);
	ck_assert_int_eq(g.status, DNS_NODATA);
	dns_get_stats(e.d, &st);
	ck_assert_uint_eq(st.hits, st0.hits + 2);
	ck_assert_uint_eq(st.upstream, st0.upstream + 1);
	/* A cache of 0 keeps nothing. */
	dns_set_cache_max(e.d, 0);
	dns_get_stats(e.d, &st);
	ck_assert_uint_eq(st.cached, 0);
	test_dns_ask(&e, 'm', "e1.example", &g);
	dns_get_stats(e.d, &st);
	ck_assert_uint_eq(st.cached, 0);
	test_dns_env_done(&e, true);
}
END_TEST

/* Identical lookups in flight share one upstream query. */
START_TEST(test_dns_coalesce)
{
	struct test_dns_env e;
	struct test_dns_got g[7];
	struct dns_stats st;
	int i;

	test_dns_env_init(&e, test_dns_need_server());
	memset(g, 0, sizeof(g));
	for (i = 0; i < 5; i++) {
		g[i].counter = &e.count;
		ck_assert_int_eq(dns_query_mx(e.d, i % 2 ? "MX.EXAMPLE" : "mx.example.",
		    test_dns_cb, &g[i], NULL), 0);
	}
	for (i = 5; i < 7; i++) {
		g[i].counter = &e.count;
		ck_assert_int_eq(dns_query_addr(e.d, "dual.example", test_dns_cb, &g[i],
		    NULL), 0);
	}
	dns_get_stats(e.d, &st);
	ck_assert_uint_eq(st.upstream, 3);   /* MX, A, AAAA */
	ck_assert_uint_eq(st.coalesced, 6);  /* 4 MX + the second A and AAAA */
	ck_assert_uint_eq(st.inflight, 3);
	ck_assert_int_eq(e.count, 0);
	test_dns_wait(&e, &e.count, 7);
	for (i = 0; i < 7; i++) {
		ck_assert_int_eq(g[i].calls, 1);
		ck_assert_int_eq(g[i].status, DNS_OK);
		ck_assert_uint_eq(g[i].n, i < 5 ? 5 : 2);
		/* Waiters are answered in the order they asked. */
		if (i > 0 && i < 5)
			ck_assert_int_gt(g[i].order, g[i - 1].order);
	}
	dns_get_stats(e.d, &st);
	ck_assert_uint_eq(st.upstream, 3);
	ck_assert_uint_eq(st.inflight, 0);
	test_dns_env_done(&e, true);
}
END_TEST

/* Cancelled queries never call back; the others are not disturbed. */
START_TEST(test_dns_cancel)
{
	struct test_dns_env e;
	struct test_dns_got g[8];
	struct dns_query *q[8];
	struct dns_stats st;
	int i;

	test_dns_env_init(&e, test_dns_need_server());
	memset(g, 0, sizeof(g));
	for (i = 0; i < 8; i++)
		g[i].counter = &e.count;
	/* Three lookups, the middle one cancelled while in flight. */
	ck_assert_int_eq(dns_query_mx(e.d, "mx.example", test_dns_cb, &g[0], &q[0]), 0);
	ck_assert_int_eq(dns_query_addr(e.d, "dual.example", test_dns_cb, &g[1], &q[1]), 0);
	ck_assert_int_eq(dns_query_txt(e.d, "txt.example", test_dns_cb, &g[2], &q[2]), 0);
	/* Two waiting on the same lookup, the first cancelled. */
	ck_assert_int_eq(dns_query_addr(e.d, "v4.example", test_dns_cb, &g[3], &q[3]), 0);
	ck_assert_int_eq(dns_query_addr(e.d, "v4.example", test_dns_cb, &g[4], &q[4]), 0);
	dns_cancel(q[1]);
	dns_cancel(q[3]);
	test_dns_wait(&e, &e.count, 3);
	ck_assert_int_eq(g[0].calls, 1);
	ck_assert_int_eq(g[1].calls, 0);
	ck_assert_int_eq(g[2].calls, 1);
	ck_assert_int_eq(g[3].calls, 0);
	ck_assert_int_eq(g[4].calls, 1);
	ck_assert_str_eq(g[4].text, "192.0.2.2;");

	/* The cancelled lookup still runs and fills the cache. */
	test_dns_wait_inflight(&e);
	dns_get_stats(e.d, &st);
	ck_assert_uint_eq(st.cached, 6); /* MX, TXT, A and AAAA of two hosts */

	/* From the cache: cancelled before the loop runs. */
	e.count = 0;
	memset(g, 0, sizeof(g));
	for (i = 0; i < 8; i++)
		g[i].counter = &e.count;
	ck_assert_int_eq(dns_query_mx(e.d, "mx.example", test_dns_cb, &g[0], &q[0]), 0);
	ck_assert_int_eq(dns_query_addr(e.d, "dual.example", test_dns_cb, &g[1], &q[1]), 0);
	ck_assert_int_eq(dns_query_txt(e.d, "txt.example", test_dns_cb, &g[2], &q[2]), 0);
	dns_cancel(q[0]);
	/* g[1]'s callback cancels q[2], which is ready too. */
	g[1].cancel = q[2];
	/* A query started and cancelled that was waiting for nothing. */
	ck_assert_int_eq(dns_query_mx(e.d, "e1.example", test_dns_cb, &g[3], &q[3]), 0);
	ck_assert_int_eq(dns_query_mx(e.d, "e2.example", test_dns_cb, &g[4], &q[4]), 0);
	dns_cancel(q[3]);
	test_dns_wait(&e, &e.count, 2);
	test_dns_pass(&e, 50);
	ck_assert_int_eq(g[0].calls, 0);
	ck_assert_int_eq(g[1].calls, 1);
	ck_assert_int_eq(g[2].calls, 0);
	ck_assert_int_eq(g[3].calls, 0);
	ck_assert_int_eq(g[4].calls, 1);
	ck_assert_int_eq(e.count, 2);
	test_dns_env_done(&e, true);
}
END_TEST

/* Closing with queries pending: none calls back; everything is freed. */
START_TEST(test_dns_close_pending)
{
	struct test_dns_env e;
	struct test_dns_got g[4];
	int i;

	test_dns_env_init(&e, test_dns_need_server());
	memset(g, 0, sizeof(g));
	ck_assert_int_eq(dns_query_mx(e.d, "mx.example", test_dns_cb, &g[0], NULL), 0);
	test_dns_wait(&e, &g[0].calls, 1);
	/* One from the cache (ready), three in flight. */
	memset(g, 0, sizeof(g));
	ck_assert_int_eq(dns_query_mx(e.d, "mx.example", test_dns_cb, &g[0], NULL), 0);
	ck_assert_int_eq(dns_query_addr(e.d, "dual.example", test_dns_cb, &g[1], NULL), 0);
	ck_assert_int_eq(dns_query_txt(e.d, "txt.example", test_dns_cb, &g[2], NULL), 0);
	ck_assert_int_eq(dns_query_tlsa(e.d, "_25._tcp.mx.example", test_dns_cb, &g[3],
	    NULL), 0);
	test_dns_env_done(&e, true);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(g[i].calls, 0);
}
END_TEST

/* Closing from a callback while other answers wait to be delivered. */
START_TEST(test_dns_close_from_callback)
{
	struct test_dns_env e;
	struct test_dns_got g[3];

	test_dns_env_init(&e, test_dns_need_server());
	memset(g, 0, sizeof(g));
	ck_assert_int_eq(dns_query_mx(e.d, "mx.example", test_dns_cb, &g[0], NULL), 0);
	test_dns_wait(&e, &g[0].calls, 1);
	memset(g, 0, sizeof(g));
	g[0].close = e.d;
	g[0].closed = &e.closed;
	ck_assert_int_eq(dns_query_mx(e.d, "mx.example", test_dns_cb, &g[0], NULL), 0);
	ck_assert_int_eq(dns_query_mx(e.d, "mx.example", test_dns_cb, &g[1], NULL), 0);
	ck_assert_int_eq(dns_query_addr(e.d, "dual.example", test_dns_cb, &g[2], NULL), 0);
	test_dns_wait(&e, &g[0].calls, 1);
	test_dns_env_done(&e, false);
	ck_assert_int_eq(g[0].calls, 1);
	ck_assert_int_eq(g[1].calls, 0);
	ck_assert_int_eq(g[2].calls, 0);
}
END_TEST

/* A server that never answers: the lookup times out into TEMPFAIL. */
START_TEST(test_dns_timeout)
{
	struct test_dns_env e;
	struct test_dns_got g;
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	struct dns_stats st;
	uint64_t t0;
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	ck_assert_int_ge(s, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sa, &len), 0);
	test_dns_env_init(&e, ntohs(sa.sin_port));
	dns_set_timeout(e.d, 300);
	t0 = test_dns_now_ms();
	test_dns_ask(&e, 'a', "dual.example", &g);
	ck_assert_int_eq(g.status, DNS_TEMPFAIL);
	ck_assert_msg(strstr(g.error, "timed out") != NULL, "%s", g.error);
	ck_assert_uint_ge(test_dns_now_ms() - t0, 250);
	dns_get_stats(e.d, &st);
	ck_assert_uint_eq(st.timeouts, 2);
	ck_assert_uint_eq(st.cached, 0);
	test_dns_env_done(&e, true);
	close(s);
}
END_TEST

START_TEST(test_dns_new_errors)
{
	struct cfg_hostport hp;
	struct test_dns_env e;
	struct test_dns_got g;
	char err[256] = "";
	uv_loop_t loop;
	struct dns *d;
	int closed = 0;

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	memset(&hp, 0, sizeof(hp));
	hp.set = true;
	snprintf(hp.host, sizeof(hp.host), "not-an-address");
	hp.port = 53;
	ck_assert_ptr_null(dns_new(&loop, &hp, err, sizeof(err)));
	ck_assert_msg(strstr(err, "not-an-address") != NULL, "%s", err);
	/* Without dns_server: the system's resolv.conf (no query is sent);
	 * a machine without one gets an error that names it. */
	d = dns_new(&loop, NULL, err, sizeof(err));
	if (d == NULL) {
		ck_assert_msg(strstr(err, "resolv.conf") != NULL, "%s", err);
		d = test_dns_new(&loop, 53);
	}
	ck_assert_int_eq(dns_add_trust_anchor(d, "this is not a record"), -EINVAL);
	ck_assert_int_eq(dns_add_trust_anchor(d, "example. IN DS 1 13"), -EINVAL);
	ck_assert_int_eq(dns_add_trust_anchor(d, "b@d. IN DS 1 13 2 00"), -EINVAL);
	ck_assert_int_eq(dns_add_trust_anchor(d, "example. IN DS 1 13 2 00"), 0);
	dns_close(d, test_dns_on_closed, &closed);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(closed, 1);
	ck_assert_int_eq(uv_loop_close(&loop), 0);

	/* Anchors only before the first lookup. */
	test_dns_env_init(&e, test_dns_need_server());
	test_dns_ask(&e, 'a', "v4.example", &g);
	ck_assert_int_eq(dns_add_trust_anchor(e.d,
	    "example. IN DS 1 13 2 0000000000000000000000000000000000000000000000000000000000000000"),
	    -EBUSY);
	ck_assert_str_eq(dns_status_name(DNS_NXDOMAIN), "nxdomain");
	test_dns_env_done(&e, true);
}
END_TEST

/* DNSSEC: validated answers are secure; a wrong anchor makes them bogus. */
START_TEST(test_dns_dnssec)
{
	struct test_dns_env e;
	struct test_dns_got g;

	test_dns_need_server();
	ck_assert(test_dns_shared.dnssec);

	test_dns_env_init(&e, test_dns_shared.port);
	ck_assert_int_eq(dns_add_trust_anchor(e.d, test_dns_shared.ds), 0);
	test_dns_ask(&e, 'm', "signed.example", &g);
	ck_assert_msg(g.status == DNS_OK, "%s %s", g.error, g.why);
	ck_assert_str_eq(g.text, "10 mx.signed.example;");
	ck_assert(g.secure);
	test_dns_ask(&e, 'l', "_25._tcp.mx.signed.example", &g);
	ck_assert_int_eq(g.status, DNS_OK);
	ck_assert_str_eq(g.text, "3 1 1 " TEST_DNS_TLSA_HEX ";");
	ck_assert(g.secure);
	test_dns_ask(&e, 'a', "mx.signed.example", &g);
	ck_assert_int_eq(g.status, DNS_OK);
	ck_assert_str_eq(g.text, "192.0.2.25;");
	ck_assert(g.secure); /* the AAAA NODATA is proven too */
	test_dns_ask(&e, 'm', "nx.signed.example", &g);
	ck_assert_int_eq(g.status, DNS_NXDOMAIN);
	ck_assert(g.secure);
	/* half's AAAA was altered after signing: bogus, so TEMPFAIL... */
	test_dns_ask(&e, 'a', "half.signed.example", &g);
	/* ...but its A is good: the address lookup answers with that. */
	ck_assert_int_eq(g.status, DNS_OK);
	ck_assert_str_eq(g.text, "192.0.2.53;");
	ck_assert(g.secure && !g.bogus);
	/* Outside the anchor: insecure, not bogus. */
	test_dns_ask(&e, 'a', "dual.example", &g);
	ck_assert_int_eq(g.status, DNS_OK);
	ck_assert(!g.secure && !g.bogus);
	test_dns_env_done(&e, true);

	test_dns_env_init(&e, test_dns_shared.port);
	ck_assert_int_eq(dns_add_trust_anchor(e.d, test_dns_shared.wrong_ds), 0);
	test_dns_ask(&e, 'm', "signed.example", &g);
	ck_assert_int_eq(g.status, DNS_TEMPFAIL);
	ck_assert(g.bogus && !g.secure);
	ck_assert_uint_eq(g.n, 0);
	ck_assert_msg(g.why[0] != '\0', "why_bogus is empty");
	ck_assert_msg(strstr(g.error, "DNSSEC") != NULL, "%s", g.error);
	test_dns_ask(&e, 'a', "mx.signed.example", &g);
	ck_assert_int_eq(g.status, DNS_TEMPFAIL);
	ck_assert(g.bogus);
	test_dns_env_done(&e, true);
}
END_TEST

static Suite *test_dns_suite(void)
{
	Suite *s = suite_create("dns");
	TCase *tc = tcase_create("resolver");

	tcase_set_timeout(tc, 30);
	tcase_add_unchecked_fixture(tc, test_dns_shared_up, test_dns_shared_down);
	tcase_add_loop_test(tc, test_dns_lookup_kinds, 0,
	    sizeof(test_dns_lookups) / sizeof(test_dns_lookups[0]));
	tcase_add_test(tc, test_dns_mx_order);
	tcase_add_test(tc, test_dns_txt_long);
	tcase_add_test(tc, test_dns_bad_names);
	tcase_add_test(tc, test_dns_cache);
	tcase_add_test(tc, test_dns_cache_ttl_and_bound);
	tcase_add_test(tc, test_dns_coalesce);
	tcase_add_test(tc, test_dns_cancel);
	tcase_add_test(tc, test_dns_close_pending);
	tcase_add_test(tc, test_dns_close_from_callback);
	tcase_add_test(tc, test_dns_timeout);
	tcase_add_test(tc, test_dns_new_errors);
	if (test_dns_have_ldns)
		tcase_add_test(tc, test_dns_dnssec);
	else
		fprintf(stderr, "test_dns: ldns-keygen/ldns-signzone not found "
		    "(package ldnsutils): the DNSSEC test is left out\n");
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failures;

	test_dns_have_ldns = test_dns_is_exe("/usr/bin/ldns-keygen") &&
	    test_dns_is_exe("/usr/bin/ldns-signzone");
	sr = srunner_create(test_dns_suite());
	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures ? 1 : 0;
}
