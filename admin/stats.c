/*
 * admin/stats: `stats`: counts of tenants, domains, mailboxes, aliases,
 * users, operators, queued messages, quarantined messages and audit
 * records, within the caller's scope.
 *
 * Entry points: admin__stats (admin_int.h).
 * OWNERSHIP: nothing outlives the call.
 * THREADS: see engine.c. ERRORS: sysexits.h codes (engine.c).
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "admin/admin_int.h"
#include "common/addr.h"
#include "common/buf.h"
#include "common/cfg.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "queue/quarantine.h"
#include "queue/queue.h"
#include "queue/tenancy.h"

/* ------------------------------------------------------------ stats */

struct admin_stats {
	struct admin *a;
	uint64_t tenants, domains, mailboxes, aliases, users, locked, locked_out, operators;
	uint64_t messages, held, pending;
	bool have_audit;
	uint64_t audit;
	uint64_t quarantined;
};

static int admin_stats_tenant(void *arg, const struct queue_tenant *t)
{
	struct admin_stats *s = arg;

	if (admin__tenant_in_scope(s->a, t->id))
		s->tenants++;
	return 0;
}

static int admin_stats_mailbox(void *arg, const struct queue_mailbox *m)
{
	struct admin_stats *s = arg;

	if (m->nalias_of > 0)
		s->aliases++;
	else
		s->mailboxes++;
	return 0;
}

static int admin_stats_user(void *arg, const struct queue_user *u)
{
	struct admin_stats *s = arg;
	const struct admin_domain_ent *e;

	if (!s->a->super) {
		e = admin__domain_find(s->a, addr_domain_of(u->address));
		if (e == NULL || !e->in_scope)
			return 0;
	}
	s->users++;
	if (u->locked)
		s->locked++;
	if (u->locked_out)
		s->locked_out++;
	return 0;
}

static int admin_stats_operator(void *arg, const struct queue_operator *o)
{
	struct admin_stats *s = arg;

	if (admin__tenant_in_scope(s->a, o->tenant))
		s->operators++;
	return 0;
}

static int admin_stats_msg(void *arg, const struct queue_msg *m)
{
	struct admin_stats *s = arg;

	if (!admin__msg_in_scope(s->a, m, NULL))
		return 0;
	s->messages++;
	if (m->held)
		s->held++;
	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state == QUEUE_RCPT_PENDING)
			s->pending++;
	return 0;
}

static int admin_stats_quarantined(void *arg, const struct queue_quarantine *q)
{
	(void)q;
	(*(uint64_t *)arg)++;
	return 0;
}

static int admin_stats_read(struct admin *a, struct queue_txn *txn, struct admin_stats *s)
{
	int rc;

	if ((rc = admin__domains_load(a, txn)) != 0)
		return rc;
	for (size_t i = 0; i < a->domains.n; i++)
		if (a->domains.v[i].in_scope)
			s->domains++;
	rc = queue_tenant_walk(txn, admin_stats_tenant, s);
	if (rc == 0 && a->super)
		rc = queue_mailbox_walk(txn, admin_stats_mailbox, s);
	for (size_t i = 0; rc == 0 && !a->super && i < a->domains.n; i++)
		if (a->domains.v[i].in_scope)
			rc = queue_mailbox_walk_domain(txn, a->domains.v[i].name,
			    admin_stats_mailbox, s);
	if (rc == 0)
		rc = queue_user_walk(txn, admin_stats_user, s);
	if (rc == 0)
		rc = queue_operator_walk(txn, admin_stats_operator, s);
	if (rc == 0)
		rc = queue_msg_walk(txn, admin_stats_msg, s);
	/* The audit chain and the quarantine are the security team's: super only. */
	if (rc == 0 && a->super) {
		rc = admin__audit_count(txn, &s->audit);
		s->have_audit = rc == 0;
	}
	if (rc == 0 && a->super)
		rc = queue_quarantine_walk(txn, 0, admin_stats_quarantined, &s->quarantined);
	if (rc < 0) {
		admin__err(a, "cannot read the store: %s", queue_strerror(rc));
		return admin__store_exit(rc);
	}
	return 0;
}

int admin__stats(struct admin *a, const struct admin_args *args)
{
	struct admin_stats s;
	struct queue_txn *txn;
	int rc;

	(void)args;
	memset(&s, 0, sizeof s);
	s.a = a;
	s.have_audit = a->super;
	if (a->store != NULL) {
		if ((rc = admin__txn(a, &txn)) != 0)
			return rc;
		rc = admin_stats_read(a, txn, &s);
		queue_txn_abort(txn);
		if (rc != 0)
			return rc;
	}
	if (a->json) {
		struct admin_json j;

		admin__json_begin(&j);
		admin__json_kstr(&j, "scope", a->super ? NULL : a->op_tenant);
		admin__json_kuint(&j, "tenants", s.tenants);
		admin__json_kuint(&j, "domains", s.domains);
		admin__json_kuint(&j, "mailboxes", s.mailboxes);
		admin__json_kuint(&j, "aliases", s.aliases);
		admin__json_kuint(&j, "users", s.users);
		admin__json_kuint(&j, "users_locked", s.locked);
		admin__json_kuint(&j, "users_locked_out", s.locked_out);
		admin__json_kuint(&j, "operators", s.operators);
		admin__json_kuint(&j, "queued_messages", s.messages);
		admin__json_kuint(&j, "queued_held", s.held);
		admin__json_kuint(&j, "queued_pending_recipients", s.pending);
		if (s.have_audit) {
			admin__json_kuint(&j, "quarantined_messages", s.quarantined);
			admin__json_kuint(&j, "audit_records", s.audit);
		} else {
			admin__json_kstr(&j, "quarantined_messages", NULL);
			admin__json_kstr(&j, "audit_records", NULL);
		}
		admin__json_end(a, &j);
	} else {
		admin__out(a, "scope:              %s\n", a->super ? "everything" : a->op_tenant);
		admin__out(a, "tenants:            %" PRIu64 "\n", s.tenants);
		admin__out(a, "domains:            %" PRIu64 "\n", s.domains);
		admin__out(a, "mailboxes:          %" PRIu64 "\n", s.mailboxes);
		admin__out(a, "aliases:            %" PRIu64 "\n", s.aliases);
		admin__out(a, "users:              %" PRIu64 " (%" PRIu64 " locked, %" PRIu64
		    " locked out)\n", s.users, s.locked, s.locked_out);
		admin__out(a, "operators:          %" PRIu64 "\n", s.operators);
		admin__out(a, "queued messages:    %" PRIu64 " (%" PRIu64 " held, %" PRIu64
		    " pending recipients)\n", s.messages, s.held, s.pending);
		if (s.have_audit) {
			admin__out(a, "quarantined:        %" PRIu64 "\n", s.quarantined);
			admin__out(a, "audit records:      %" PRIu64 "\n", s.audit);
		}
	}
	return EX_OK;
}

