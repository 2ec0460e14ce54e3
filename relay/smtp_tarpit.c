/*
 * smtp_tarpit: recipient probing made slow and short (issue 9).
 *
 * Asking RCPT about address after address is how a stranger learns who
 * works at the city ("no such user" against 250). Each 5xx refusal of a
 * recipient therefore counts as a session error (max_bad_commands: past
 * it, 421 4.7.0 and the end), and past rcpt_error_soft_limit refusals
 * each further refusal is answered only after rcpt_error_delay, doubled
 * per refusal up to rcpt_error_delay_max (Postfix's smtpd_soft_error_limit
 * and smtpd_error_sleep_time, but growing). The wait is a libuv timer:
 * the loop goes on serving everyone else. The log line and the audit
 * record of the refusal are written at once; only the reply waits.
 *
 * Clients in trusted_networks are exempt: an agency's mail server
 * relaying a list that holds stale addresses is not probing. A 4xx
 * refusal (a full store, too many recipients for now) is not the
 * client's fault and counts nothing.
 *
 * Entry points (smtp_session_int.h): smtp__rcpt_refused,
 * smtp__rcpt_refusal_delay, smtp__tarpit_cancel.
 * OWNERSHIP: a held reply owns its timer and a copy of the verdict, and
 * holds a session reference until the timer has fired or the session
 * has ended (smtp__tarpit_cancel, so a shutdown never waits for it).
 * THREADS: loop thread only.
 * ERRORS: none; a session that ended while its reply waited gets none.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "relay/smtp_session_int.h"

struct smtp_tarpit {
	uv_timer_t timer;
	struct smtp_session *s;
	struct verdict v;
};

uint64_t smtp__rcpt_refusal_delay(const struct config *cfg, unsigned n)
{
	uint64_t d = cfg->rcpt_error_delay, max = cfg->rcpt_error_delay_max;

	if (n <= cfg->rcpt_error_soft_limit)
		return 0;
	for (uint64_t i = cfg->rcpt_error_soft_limit + 1; i < n && d < max; i++)
		d *= 2;
	return d < max ? d : max;
}

static void smtp_tarpit_closed(uv_handle_t *h)
{
	free(h->data);
}

static void smtp_tarpit_over(uv_timer_t *timer)
{
	struct smtp_tarpit *t = timer->data;
	struct smtp_session *s = t->s;

	s->tarpit = NULL;
	s->busy = false;
	/* A shutdown or a timeout may have said goodbye meanwhile: then nothing more. */
	if (!s->closing && s->state != SMTP_ST_QUIT && !s->shutdown_sent) {
		smtp__reply(s, t->v.code, t->v.enh, "%s", t->v.text);
		smtp__count_error(s);
		smtp__resume(s);
	}
	uv_close((uv_handle_t *)&t->timer, smtp_tarpit_closed);
	smtp__unref(s);
}

void smtp__tarpit_cancel(struct smtp_session *s)
{
	struct smtp_tarpit *t = s->tarpit;

	if (t == NULL)
		return;
	s->tarpit = NULL;
	uv_timer_stop(&t->timer);
	uv_close((uv_handle_t *)&t->timer, smtp_tarpit_closed);
	/* The session is ending: its own references keep it until then. */
	smtp__unref(s);
}

bool smtp__rcpt_refused(struct smtp_session *s, const struct verdict *v)
{
	const char *rcpt = s->pending_path.addr;
	struct smtp_tarpit *t;
	uint64_t delay;
	char ms[24];

	if (v->kind != VERDICT_REJECT || s->trusted) {
		smtp__policy_refused(s, "rcpt", v, rcpt);
		return false;
	}
	delay = smtp__rcpt_refusal_delay(s->cfg, ++s->rcpt_refusals);
	if (delay == 0) {
		smtp__policy_refused(s, "rcpt", v, rcpt);
		smtp__count_error(s);
		return false;
	}
	smtp__policy_record(s, "rcpt", v, rcpt);
	snprintf(ms, sizeof ms, "%llu", (unsigned long long)delay);
	log_event(LOG_LVL_INFO, s->id, "event", "rcpt_tarpit", "client", s->peer_addr,
	    "delay_ms", ms, NULL);
	t = xcalloc(1, sizeof *t);
	t->s = s;
	t->v = *v;
	uv_timer_init(s->srv->loop, &t->timer);
	t->timer.data = t;
	s->tarpit = t;
	s->busy = true;
	smtp__ref(s);
	uv_timer_start(&t->timer, smtp_tarpit_over, delay, 0);
	return true;
}
