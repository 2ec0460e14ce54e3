/*
 * listener: listening sockets and connection admission.
 *
 * Entry points: listener_start (bind every `listen` line), listener_set_config
 * (adopt reloaded limits), listener_stop.
 * OWNERSHIP: the listener_set owns its uv_tcp_t handles and the per-address
 * counters; sessions are owned by smtp_session and report their end through
 * srv->on_closed, which decrements the counters here.
 * THREADS: loop thread only.
 * ERRORS: bind failures are returned with FILE:LINE context for main to
 * report; accept failures are logged and the connection is dropped.
 *
 * The per-address limit counts a client as common/ipgroup.h groups it:
 * an IPv4 address, an IPv6 /64 (IPv4-mapped IPv6 as the IPv4 address).
 * Clients in trusted_networks are exempt from the per-address limit (as
 * Postfix's smtpd_client_event_limit_exceptions = $mynetworks): an agency
 * mail server or a benchmark legitimately opens many sessions at once.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>

#include "common/ipgroup.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "relay/listener.h"

#define LISTENER_BUCKETS 4096

struct listener_count {
	struct listener_count *next;
	int family;
	uint8_t addr[16];
	size_t count;
};

struct listener {
	uv_tcp_t tcp;
	struct listener_set *set;
	enum cfg_role role;
};

struct listener_set {
	uv_loop_t *loop;
	struct config *cfg;
	struct smtp_server *srv;
	struct listener *v;
	size_t n;
	size_t open_handles;
	size_t total;
	struct listener_count *buckets[LISTENER_BUCKETS];
};

static size_t listener_hash(int family, const uint8_t key[16])
{
	/* FNV-1a: the table is per-process and the key is the peer address. */
	uint32_t h = 2166136261u ^ (uint32_t)family;

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % LISTENER_BUCKETS;
}

static struct listener_count **listener_find(struct listener_set *ls,
    const struct sockaddr_storage *ss, bool create)
{
	struct ipgroup grp;
	int family;
	const uint8_t *key = grp.bytes;
	struct listener_count **pp;

	/* Counted per client: an IPv4 address, an IPv6 /64 (common/ipgroup.h). */
	ipgroup_of_sockaddr((const struct sockaddr *)ss, &grp);
	family = grp.family;
	pp = &ls->buckets[listener_hash(family, key)];
	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->family == family && memcmp((*pp)->addr, key, 16) == 0)
			return pp;
	if (!create)
		return NULL;
	*pp = xcalloc(1, sizeof **pp);
	(*pp)->family = family;
	memcpy((*pp)->addr, key, 16);
	return pp;
}

static void listener_on_closed(void *arg, const struct sockaddr_storage *peer)
{
	struct listener_set *ls = arg;
	struct listener_count **pp = listener_find(ls, peer, false);

	if (ls->total > 0)
		ls->total--;
	if (pp == NULL)
		return;
	if (--(*pp)->count == 0) {
		struct listener_count *dead = *pp;

		*pp = dead->next;
		free(dead);
	}
}

static void listener_on_connection(uv_stream_t *server, int status)
{
	struct listener *l = server->data;
	struct listener_set *ls = l->set;
	struct smtp_session *s;
	const struct sockaddr_storage *peer;
	struct listener_count **pp;
	bool trusted;
	int rc;

	if (status < 0) {
		log_warn(NULL, "accept on %s listener: %s", cfg_role_name(l->role),
		    uv_strerror(status));
		return;
	}
	rc = smtp_session_accept(ls->srv, server, l->role, &s);
	if (rc < 0) {
		log_warn(NULL, "accept: %s", uv_strerror(rc));
		return;
	}
	peer = smtp_session_peer(s);
	pp = listener_find(ls, peer, true);
	(*pp)->count++;
	ls->total++;
	trusted = cfg_cidr_list_has(&ls->cfg->trusted_networks, (const struct sockaddr *)peer);
	/* Admission happens before any byte is read (issue 2: 421 4.7.0). */
	if (ls->total > ls->cfg->max_connections) {
		smtp_session_refuse(s, 421, "4.7.0", "Error: too many connections");
		return;
	}
	if (!trusted && (*pp)->count > ls->cfg->max_connections_per_ip) {
		smtp_session_refuse(s, 421, "4.7.0",
		    "Error: too many connections from your address");
		return;
	}
	smtp_session_start(s);
}

int listener_start(uv_loop_t *loop, struct config *cfg, struct smtp_server *srv,
    struct listener_set **out, char *err, size_t errlen)
{
	struct listener_set *ls = xcalloc(1, sizeof *ls);
	int rc = 0;

	ls->loop = loop;
	ls->cfg = cfg_ref(cfg);
	ls->srv = srv;
	srv->on_closed = listener_on_closed;
	srv->on_closed_arg = ls;
	ls->n = cfg->listen.n;
	ls->v = xcalloc(ls->n ? ls->n : 1, sizeof *ls->v);
	for (size_t i = 0; i < ls->n; i++) {
		const struct cfg_listen *cl = &cfg->listen.v[i];
		struct listener *l = &ls->v[i];

		l->set = ls;
		l->role = cl->role;
		uv_tcp_init(loop, &l->tcp);
		l->tcp.data = l;
		ls->open_handles++;
		rc = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&cl->addr, 0);
		if (rc == 0)
			rc = uv_listen((uv_stream_t *)&l->tcp, 1024, listener_on_connection);
		if (rc < 0) {
			snprintf(err, errlen, "%s:%u: cannot listen on %s: %s", cfg->file,
			    cl->line, cl->text, uv_strerror(rc));
			break;
		}
		log_info(NULL, "listening on %s (%s)", cl->text, cfg_role_name(cl->role));
	}
	*out = ls;
	return rc;
}

void listener_set_config(struct listener_set *ls, struct config *cfg)
{
	cfg_unref(ls->cfg);
	ls->cfg = cfg_ref(cfg);
}

static void listener_close_cb(uv_handle_t *h)
{
	struct listener *l = h->data;
	struct listener_set *ls = l->set;

	if (--ls->open_handles > 0)
		return;
	/* Sessions still open will report through on_closed: keep counting no more. */
	ls->srv->on_closed = NULL;
	for (size_t i = 0; i < LISTENER_BUCKETS; i++) {
		while (ls->buckets[i]) {
			struct listener_count *c = ls->buckets[i];

			ls->buckets[i] = c->next;
			free(c);
		}
	}
	cfg_unref(ls->cfg);
	free(ls->v);
	free(ls);
}

void listener_stop(struct listener_set *ls)
{
	if (ls->open_handles == 0) {
		ls->srv->on_closed = NULL;
		cfg_unref(ls->cfg);
		free(ls->v);
		free(ls);
		return;
	}
	for (size_t i = 0; i < ls->n; i++)
		if (!uv_is_closing((uv_handle_t *)&ls->v[i].tcp))
			uv_close((uv_handle_t *)&ls->v[i].tcp, listener_close_cb);
}
