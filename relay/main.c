/*
 * govrelayd: start-up, signals, reload, shutdown and the event loop.
 *
 * Entry points: main() only.
 * Start-up order matters: configuration and TLS key (read as root when
 * started as root), descriptor limit, listeners (bound as root: ports
 * below 1024), then the privilege drop to `user` (relay/privilege.c), and
 * only then, as that user: store (orphan chunks collected before anything
 * can write), queue writer, policy, control socket, scheduler, and only
 * then the "ready" line and sd_notify(READY=1) (systemd Type=notify).
 * Shutdown (SIGTERM/SIGINT) runs the same order backwards: stop accepting,
 * let sessions whose commit is in flight finish (the others get 421), stop
 * deliveries, drain the writer, exit 0. SIGHUP reloads the configuration
 * and certificates; sessions keep the snapshot they started with.
 * OWNERSHIP: main owns every top-level object in struct govrelayd.
 * THREADS: the loop thread, plus the queue writer's thread.
 * ERRORS: a configuration error exits 78 with FILE:LINE messages; an
 * environment we cannot run in (store, bind) exits 69 through fatal().
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <uv.h>

#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "policy/auth.h"
#include "policy/policy.h"
#include "queue/queue.h"
#include "queue/queue_writer.h"
#include "relay/checkpointer.h"
#include "relay/retention.h"
#include "relay/control.h"
#include "relay/delivery.h"
#include "relay/dns.h"
#include "relay/explain.h"
#include "relay/listener.h"
#include "relay/maildir.h"
#include "relay/policy_dns.h"
#include "relay/privilege.h"
#include "relay/smtp_session.h"
#include "relay/tlsio.h"

/* How long shutdown waits for sessions with a commit in flight. */
#define GOVRELAYD_SHUTDOWN_GRACE_MS 30000

struct govrelayd {
	uv_loop_t *loop;
	const char *config_file;
	struct config *cfg;
	struct queue_store *store;
	struct queue_writer *writer;
	struct tlsio_ctx *server_tls;
	struct tlsio_ctx *client_tls;
	struct policy *policy;
	struct auth_guard *auth;
	struct smtp_server srv;
	struct listener_set *listeners;
	struct ctl_server *ctl;
	struct explain *explain;   /* `policy explain` on d->policy */
	struct dlv *dlv;
	struct dns *dns;
	struct policy_dns *pdns;   /* the policy's view of dns */
	struct checkpointer *ckpt; /* NULL without audit_signing_key */
	struct retention *retention; /* quarantine_lifetime */
	uv_signal_t sigterm, sigint, sighup;
	uv_timer_t shutdown_timer;
	uint64_t shutdown_started;
	bool stopping;
};

/* `policy explain` from a control-socket thread (relay/explain.h). */
static int govrelayd_explain(void *arg, const struct admin_explain_req *req,
    uint64_t deadline_ns, struct buf *out)
{
	return explain_run(arg, req, deadline_ns, out);
}

/* The configuration in force for a control-socket command (a reference). */
static struct config *govrelayd_config_ref(void *arg)
{
	struct govrelayd *d = arg;

	return cfg_ref(d->cfg);
}

static void govrelayd_usage(void)
{
	fprintf(stderr, "usage: govrelayd -c FILE [-f] [-t] [-d]\n"
	    "  -c FILE  configuration file (required)\n"
	    "  -f       stay in the foreground and log to stderr\n"
	    "  -t       check the configuration and exit (0 valid, 78 invalid)\n"
	    "  -d       debug logging\n");
	exit(EX_USAGE);
}

/* Loads and checks cfg and its certificate; prints errors for -t and start-up. */
static struct config *govrelayd_load_config(const char *file, struct tlsio_ctx **tls_out)
{
	struct buf errors;
	struct config *cfg = NULL;
	int rc;

	buf_init(&errors);
	rc = cfg_load_flags(file, CFG_LOAD_TO_RUN, &cfg, &errors);
	if (rc < 0) {
		fputs(buf_cstr(&errors), stderr);
		if (errors.len == 0)
			fprintf(stderr, "%s: %s\n", file, strerror(-rc));
		buf_free(&errors);
		return NULL;
	}
	buf_free(&errors);
	if (cfg->tls_cert_file && cfg->tls_cert_file[0]) {
		char err[512];
		struct tlsio_ctx *tls = NULL;

		if (tlsio_ctx_new_server(cfg->tls_cert_file, cfg->tls_key_file, &tls, err,
		        sizeof err) < 0) {
			fprintf(stderr, "%s: tls_cert_file/tls_key_file: %s\n", cfg->file, err);
			cfg_unref(cfg);
			return NULL;
		}
		if (tls_out)
			*tls_out = tls;
		else
			tlsio_ctx_free(tls);
	}
	return cfg;
}

static void govrelayd_on_queued(void *arg)
{
	struct govrelayd *d = arg;

	if (d->dlv)
		dlv_kick(d->dlv);
}

static void govrelayd_close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void govrelayd_dlv_stopped(void *arg)
{
	struct govrelayd *d = arg;

	d->dlv = NULL;
	policy_dns_close(d->pdns);
	d->pdns = NULL;
	dns_close(d->dns, NULL, NULL);
	d->dns = NULL;
	/* Every session is gone and deliveries are stopped: drain and stop the writer. */
	queue_writer_stop(d->writer);
	d->writer = NULL;
	uv_close((uv_handle_t *)&d->sigterm, NULL);
	uv_close((uv_handle_t *)&d->sigint, NULL);
	uv_close((uv_handle_t *)&d->sighup, NULL);
	uv_close((uv_handle_t *)&d->shutdown_timer, NULL);
}

static void govrelayd_shutdown_poll(uv_timer_t *t)
{
	struct govrelayd *d = t->data;

	if (d->srv.nsessions > 0 &&
	    uv_now(d->loop) - d->shutdown_started < GOVRELAYD_SHUTDOWN_GRACE_MS)
		return;
	if (d->srv.nsessions > 0) {
		log_warn(NULL, "shutdown: %zu sessions still open after grace period",
		    d->srv.nsessions);
		/* Nothing of theirs may reach the writer once it stops: close them. */
		smtp_server_abort(&d->srv);
	}
	uv_timer_stop(t);
	dlv_stop(d->dlv, govrelayd_dlv_stopped, d);
}

static void govrelayd_stop(struct govrelayd *d, const char *why)
{
	if (d->stopping)
		return;
	d->stopping = true;
	log_info(NULL, "%s: stopping", why);
	listener_stop(d->listeners);
	d->listeners = NULL;
	ctl_stop(d->ctl);
	d->ctl = NULL;
	/* A control thread waiting for an explain wakes now, with an error. */
	explain_stop(d->explain);
	checkpointer_stop(d->ckpt);
	d->ckpt = NULL;
	retention_stop(d->retention);
	d->retention = NULL;
	smtp_server_shutdown(&d->srv);
	d->shutdown_started = uv_now(d->loop);
	/* Poll rather than count callbacks: sessions close on their own schedule. */
	uv_timer_start(&d->shutdown_timer, govrelayd_shutdown_poll, 0, 10);
}

static void govrelayd_reload(struct govrelayd *d)
{
	struct tlsio_ctx *tls = NULL;
	struct config *cfg = govrelayd_load_config(d->config_file, &tls);

	if (cfg != NULL)
		priv_clamp_connections(cfg, priv_raise_nofile());
	if (cfg == NULL) {
		log_err(NULL, "reload of %s failed; keeping the running configuration",
		    d->config_file);
		return;
	}
	if (strcmp(cfg->data_dir, d->cfg->data_dir) != 0)
		log_warn(NULL, "reload: data_dir change needs a restart (ignored)");
	if (cfg->listen.n != d->cfg->listen.n)
		log_warn(NULL, "reload: listener changes need a restart (ignored)");
	if (strcmp(cfg->user, d->cfg->user) != 0)
		log_warn(NULL, "reload: user change needs a restart (ignored)");
	log_set_format(cfg->log_format);
	cfg_unref(d->cfg);
	d->cfg = cfg;
	cfg_unref(d->srv.cfg);
	d->srv.cfg = cfg_ref(cfg);
	/* Contexts are reference counted: sessions in TLS keep the old one. */
	tlsio_ctx_free(d->server_tls);
	d->server_tls = tls;
	d->srv.tls = tls;
	if (d->listeners)
		listener_set_config(d->listeners, cfg);
	if (d->dlv)
		dlv_set_config(d->dlv, cfg);
	retention_set_lifetime(d->retention, cfg->quarantine_lifetime);
	maildir_set_root(cfg->maildir_root); /* doc/THREAT-MODEL.md */
	log_info(NULL, "reloaded configuration from %s", d->config_file);
}

static void govrelayd_signal_cb(uv_signal_t *h, int signum)
{
	struct govrelayd *d = h->data;

	if (signum == SIGHUP) {
		if (!d->stopping)
			govrelayd_reload(d);
		return;
	}
	govrelayd_stop(d, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void govrelayd_collect_orphans(struct govrelayd *d)
{
	struct queue_txn *txn;
	size_t n = 0;
	int rc;

	rc = queue_txn_begin(d->store, true, &txn);
	if (rc == 0)
		rc = queue_body_collect_orphans(txn, &n);
	if (rc == 0)
		rc = queue_txn_commit(txn);
	else
		queue_txn_abort(txn);
	if (rc < 0)
		fatal(EX_UNAVAILABLE, "cannot collect unfinished messages in %s: %s",
		    d->cfg->data_dir, queue_strerror(rc));
	if (n > 0)
		log_info(NULL, "removed the chunks of %zu messages that were never committed", n);
}

/* SIGTERM and SIGINT stop, SIGHUP reloads; the timer polls a shutdown. */
static void govrelayd_signals_start(struct govrelayd *d)
{
	uv_signal_init(d->loop, &d->sigterm);
	uv_signal_init(d->loop, &d->sigint);
	uv_signal_init(d->loop, &d->sighup);
	d->sigterm.data = d->sigint.data = d->sighup.data = d;
	uv_signal_start(&d->sigterm, govrelayd_signal_cb, SIGTERM);
	uv_signal_start(&d->sigint, govrelayd_signal_cb, SIGINT);
	uv_signal_start(&d->sighup, govrelayd_signal_cb, SIGHUP);
	uv_timer_init(d->loop, &d->shutdown_timer);
	d->shutdown_timer.data = d;
}

/* After the loop has returned: close what is left and free the rest. */
static void govrelayd_teardown(struct govrelayd *d)
{
	/* Anything still open here is a leak in a close path: close it anyway. */
	uv_walk(d->loop, govrelayd_close_walk, NULL);
	uv_run(d->loop, UV_RUN_DEFAULT);
	if (uv_loop_close(d->loop) != 0)
		log_warn(NULL, "event loop closed with handles still active");
	explain_free(d->explain);
	policy_free(d->policy);
	auth_guard_free(d->auth);
	tlsio_ctx_free(d->server_tls);
	tlsio_ctx_free(d->client_tls);
	cfg_unref(d->srv.cfg);
	queue_store_close(d->store);
	log_info(NULL, "stopped");
	cfg_unref(d->cfg);
}

int main(int argc, char **argv)
{
	struct govrelayd d;
	bool foreground = false, check_only = false, debug = false;
	char err[600];
	int opt, rc;

	memset(&d, 0, sizeof d);
	while ((opt = getopt(argc, argv, "c:ftdh")) != -1) {
		switch (opt) {
		case 'c': d.config_file = optarg; break;
		case 'f': foreground = true; break;
		case 't': check_only = true; break;
		case 'd': debug = true; break;
		default: govrelayd_usage();
		}
	}
	if (d.config_file == NULL || optind != argc)
		govrelayd_usage();

	d.cfg = govrelayd_load_config(d.config_file, &d.server_tls);
	if (d.cfg == NULL)
		return EX_CONFIG;
	if (check_only) {
		printf("%s: configuration ok\n", d.cfg->file);
		tlsio_ctx_free(d.server_tls);
		cfg_unref(d.cfg);
		return 0;
	}

	log_open("govrelayd", foreground, d.cfg->log_format);
	log_set_debug(debug);
	/* libuv does not ignore SIGPIPE; a peer closing mid-write must not kill us. */
	signal(SIGPIPE, SIG_IGN);

	d.loop = uv_default_loop();
	priv_clamp_connections(d.cfg, priv_raise_nofile());
	/* Sessions reach the store only once the loop runs, after the drop. */
	smtp_server_init(&d.srv, d.loop);
	rc = listener_start(d.loop, d.cfg, &d.srv, &d.listeners, err, sizeof err);
	if (rc < 0)
		fatal(EX_UNAVAILABLE, "%s", err);
	/* Signed audit checkpoints: the key and the file, while root may read them. */
	if (checkpointer_open(d.cfg, &d.ckpt, err, sizeof err) < 0)
		fatal(EX_CONFIG, "%s", err);
	priv_drop(d.cfg);

	rc = queue_store_open(d.cfg->data_dir, d.cfg->queue_max_size, false, &d.store);
	if (rc < 0)
		fatal(EX_UNAVAILABLE, "cannot open the store in %s: %s", d.cfg->data_dir,
		    queue_strerror(rc));
	govrelayd_collect_orphans(&d);
	rc = queue_writer_start(d.loop, d.store, &d.writer);
	if (rc < 0)
		fatal(EX_OSERR, "cannot start the queue writer: %s", strerror(-rc));
	if (tlsio_ctx_new_client_ca(d.cfg->tls_ca_file, &d.client_tls, err, sizeof err) < 0)
		fatal(EX_SOFTWARE, "outbound TLS: %s", err);
	checkpointer_start(d.ckpt, d.loop, d.store);

	if (policy_new(d.loop, d.cfg, d.store, &d.policy, err, sizeof err) < 0)
		fatal(EX_CONFIG, "policy: %s", err);
	d.srv.cfg = cfg_ref(d.cfg);
	d.srv.store = d.store;
	d.srv.writer = d.writer;
	d.srv.policy = d.policy;
	d.auth = auth_guard_new(d.loop, d.store, d.writer);
	d.srv.auth = d.auth;
	d.srv.tls = d.server_tls;
	d.srv.on_queued = govrelayd_on_queued;
	d.srv.on_queued_arg = &d;

	/* govrelayctl's live verbs; a change kicks the scheduler like a new message. */
	rc = ctl_start(d.loop, d.cfg->control_socket, d.writer, d.store, govrelayd_config_ref,
	    govrelayd_on_queued, &d, &d.ctl, err, sizeof err);
	if (rc < 0)
		fatal(EX_UNAVAILABLE, "%s", err);
	/* `policy explain`: the same engine, checks and resolver as the sessions'. */
	d.explain = explain_new(d.loop, d.policy);
	ctl_set_explain(d.ctl, govrelayd_explain, d.explain);
	/* The one resolver: dns_server, or resolv.conf's servers (never /etc/hosts). */
	d.dns = dns_new(d.loop, &d.cfg->dns_server, err, sizeof err);
	if (d.dns == NULL)
		fatal(EX_UNAVAILABLE, "DNS resolver: %s", err);
	d.pdns = policy_dns_install(d.policy, d.dns); /* SPF, DKIM keys, DMARC: one resolver */
	maildir_set_root(d.cfg->maildir_root); /* doc/THREAT-MODEL.md */
	rc = dlv_start(d.loop, d.cfg, d.store, d.writer, d.client_tls, d.dns, &d.dlv);
	if (rc < 0)
		fatal(EX_SOFTWARE, "cannot start the delivery scheduler: %s", strerror(-rc));
	d.retention = retention_start(d.loop, d.writer, d.cfg->quarantine_lifetime);

	govrelayd_signals_start(&d);

	log_info(NULL, "ready: %zu listeners, data_dir %s, hostname %s", d.cfg->listen.n,
	    d.cfg->data_dir, d.cfg->hostname);
	sd_notify(0, "READY=1");

	uv_run(d.loop, UV_RUN_DEFAULT);

	govrelayd_teardown(&d);
	return 0;
}
