#ifndef GOVRELAY_DELIVERY_INT_H
#define GOVRELAY_DELIVERY_INT_H
/*
 * delivery_int: what the two files of the scheduler share, and nobody
 * else may see (STYLE.md section 2): delivery.c (jobs, the schedule, the
 * record of results) and delivery_hop.c (routes, next-hop lookups and the
 * sessions shared per next hop). Never include this from outside relay/
 * delivery*.c.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <uv.h>

#include "common/cfg.h"
#include "queue/delivery.h"
#include "queue/queue.h"
#include "queue/queue_writer.h"
#include "relay/dns.h"
#include "relay/maildir.h"
#include "relay/smtp_client.h"
#include "relay/tlsio.h"

#define DLV_SKIP_MAX 64
/* Next-hop search: MX hosts, addresses per host, and sessions per group. */
#define DLV_MX_MAX 8
#define DLV_ADDR_MAX 8
#define DLV_TRIES_MAX 10

#define DLV_TEXT_NO_ROUTE "4.3.0 no route for domain"
#define DLV_TEXT_UNSUPPORTED "4.4.0 the route of the domain cannot be used"

/* How a group of recipients leaves the relay. */
enum dlv_hop {
	DLV_HOP_NONE,     /* decided locally (no route, bad route) */
	DLV_HOP_SMTP,     /* smtp:HOST:PORT */
	DLV_HOP_LMTP,     /* lmtp:HOST:PORT or lmtp:unix:PATH */
	DLV_HOP_MAILDIR,  /* maildir:DIR */
	DLV_HOP_MX,       /* mx: the domain's MX hosts, port smtp_port */
};

/* One recipient of a job, in the job's (grouped) order. */
struct dlv_rcpt {
	size_t idx;                  /* index in the message snapshot */
	char *domain;                /* lowercased domain part; NULL when none */
	bool smtp;                   /* has a next hop (hop != DLV_HOP_NONE) */
	enum dlv_hop hop;
	bool host_is_name;           /* host needs an address lookup */
	char host[256];              /* address, host name, or (MX) the domain */
	char path[256];              /* unix socket or maildir folder */
	uint16_t port;
	bool require_tls;
	char relay[SMTPC_RELAY_MAX]; /* for the log and the audit record */
};

/* Consecutive recipients of a job that share one next hop. */
struct dlv_group {
	size_t start, n;
	enum dlv_hop hop;
	struct smtpc_request req;
	/* DLV_HOP_MAILDIR */
	const char **addrs;
	struct maildir_result *mres;
	/* Next hops found in DNS (MX, or a route's host name). */
	char (*hosts)[DNS_NAME_MAX + 1];
	size_t nhosts, host_next;
	struct sockaddr_storage addrs_found[DLV_ADDR_MAX];
	size_t naddrs, addr_next;
	unsigned tries;
	char addr_text[INET6_ADDRSTRLEN];
	char last_error[SMTPC_TEXT_MAX];
};

struct dlv_job {
	struct dlv *d;
	struct dlv_job *prev, *next;
	struct config *cfg;
	struct queue_msg *msg;       /* snapshot from when the job started */
	char qid[QUEUE_ID_TEXT_LEN + 1];
	size_t n;
	struct dlv_rcpt *r;          /* n */
	struct smtpc_rcpt *sr;       /* n, parallel to r */
	struct dlv_group *groups;
	size_t ngroups, group_next;
	struct smtpc *session;       /* the running session, or NULL */
	int64_t finished_at;         /* unix ms: "now" for the record */
	/*
	 * What queue_delivery_apply records (built by dlv_job_finish on the
	 * loop; read, and out/rec written, on the writer thread; read by
	 * dlv_done on the loop again). Report ids are loop-allocated.
	 */
	struct queue_delivery_attempt *att;   /* n */
	struct queue_delivery_record *rec;    /* n */
	struct queue_delivery_result req;
	struct queue_delivery_outcome out;
	bool maildir_busy;           /* a maildir delivery is running */
	struct dns_query *dns_q;     /* a next-hop lookup in flight */
};

/* A group waiting for a session to its next hop. */
struct dlv_wait {
	struct dlv_wait *next;
	struct dlv_job *j;
	struct dlv_group *g;
};

/*
 * One next hop known without DNS (an address and port, a unix socket):
 * how many sessions are open to it, and the groups waiting for one. A
 * session that finishes a message takes the next waiting group over the
 * same connection (RSET between when needed), so a busy destination gets
 * at most destination_concurrency connections, kept in use; with nothing
 * waiting it stays open idle (connection_cache_time) for the next group.
 */
struct dlv_hopq {
	struct dlv_hopq *next;
	enum dlv_hop hop;
	char host[256];
	char path[256];
	uint16_t port;
	bool require_tls;
	unsigned sessions;           /* open, idle ones included */
	struct dlv_wait *head, *tail;
	struct dlv_conn *idle;       /* sessions waiting idle (connection cache) */
};

/* One session to a dlv_hopq and the group it is working for now. */
struct dlv_conn {
	struct dlv *d;
	struct dlv_hopq *hq;
	struct dlv_job *j;           /* NULL once the session has no more work */
	struct dlv_group *g;
	struct smtpc *c;
	uint32_t idle_ms;          /* the session's idle_ms (connection_cache_time) */
	bool idle;                   /* on hq->idle: resumable until done runs */
	struct dlv_conn *idle_prev, *idle_next;
};

struct dlv_skip {
	uint64_t id;
	uint64_t until;              /* monotonic ms */
};

struct dlv {
	uv_loop_t *loop;
	struct dns *dns;             /* borrowed; NULL: no lookups possible */
	struct config *cfg;
	struct queue_store *store;
	struct queue_writer *writer;
	struct tlsio_ctx *client_tls;
	uv_timer_t timer;
	struct dlv_job *jobs;        /* in flight: session or writer op owed */
	size_t njobs;
	struct dlv_hopq *hops;       /* next hops with sessions or waiting groups */
	size_t nsessions;            /* shared sessions open (stop waits for 0) */
	uint64_t *ids;               /* scratch for queue_schedule_due */
	size_t ids_cap;
	struct dlv_skip skip[DLV_SKIP_MAX];
	bool stopping;
	bool closing;
	void (*stop_cb)(void *arg);
	void *stop_arg;
};

/* ------------------------------------------------ delivery.c, for the hops */

/* Starts the next group's session, or records the job when none is left. */
void dlv__job_next(struct dlv_job *j);
/* Stopping: closes the timer once no job and no session is left. */
void dlv__maybe_stopped(struct dlv *d);
/* Formats log and reply texts, where cutting a long one short is fine. */
void dlv__textf(char *dst, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------- delivery_hop.c, for the jobs */

/* The lowercased domain of an address, without a final dot; NULL if none. */
char *dlv__domain_of(const char *addr);
/* qsort order over struct dlv_rcpt *: local verdicts first, then by next hop. */
int dlv__cmp_route(const void *a, const void *b);
bool dlv__same_hop(const struct dlv_rcpt *x, const struct dlv_rcpt *y);
/* Each recipient's route, one domain lookup per distinct domain, in txn. */
void dlv__resolve_routes(struct dlv_job *j, struct queue_txn *txn, struct dlv_rcpt **by);
/* Starts group g over a next hop found in DNS / known without DNS. 0 or -errno. */
int dlv__group_resolve(struct dlv_job *j, struct dlv_group *g);
int dlv__group_direct(struct dlv_job *j, struct dlv_group *g);
/* Stopping: the groups still waiting for a session are given up, idle sessions closed. */
void dlv__hops_drain(struct dlv *d);

#endif
