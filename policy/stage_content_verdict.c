/*
 * stage_content_verdict: the content check's verdict at end of data
 * (policy/stage_content.c has read the message and its documents by
 * then), in this order: a MIME structure refused; a state-secret
 * marking at or above the level of the agencies concerned (refused, or
 * quarantined when every such agency says so, and a notice to each
 * security contact); an attachment the rules refuse or hold; the DLP
 * rules that fired. The replies say it in Vietnamese, then in English.
 *
 * Entry point: stage_content__decide (policy/stage_content_int.h).
 * THREADS: loop thread.
 * ERRORS: a policy that cannot be read is a tempfail (451 4.3.0): no
 * marked message goes out because the store was busy.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "policy/stage_content_int.h"
#include "queue/queue.h"

static const char sc_rule_mime[] = "mime";
static const char sc_rule_classified[] = "classified";
static const char sc_rule_dlp[] = "dlp";
static const char sc_rule_attachment[] = "attachment";

/* A file name that is an executable or a script by itself (text parts too). */
static void sc_name_rule(struct sc_tx *t)
{
	if (t->ext_found[0] != '\0' && t->attach_outcome < CONTENT_ATTACH_REJECT) {
		t->attach_outcome = CONTENT_ATTACH_REJECT;
		snprintf(t->attach_why, sizeof t->attach_why, "a .%s file (%s)", t->ext_found_ext,
		    t->ext_found);
	}
	if ((t->name_category == ATTACH_EXECUTABLE && t->rules.block != CONTENT_BLOCK_NONE) ||
	    (t->name_category == ATTACH_SCRIPT && t->rules.block == CONTENT_BLOCK_EXEC_SCRIPTS)) {
		if (t->attach_outcome < CONTENT_ATTACH_REJECT) {
			t->attach_outcome = CONTENT_ATTACH_REJECT;
			snprintf(t->attach_why, sizeof t->attach_why, "a file named %s",
			    t->name_found);
		}
	}
}

static void sc_attach_verdict(struct sc_tx *t, struct verdict *v)
{
	if (t->attach_outcome == CONTENT_ATTACH_PASS)
		return;
	if (!t->detached)
		policy_tx_note(t->tx, "attachment", "%s", t->attach_why);
	if (t->attach_outcome == CONTENT_ATTACH_REJECT)
		policy_verdict_set(v, VERDICT_REJECT, 550, "5.7.1",
		    "Thu bi tu choi: tep dinh kem khong duoc phep (%s).\n"
		    "Message refused: it carries %s, which official mail may not carry.",
		    t->attach_why, t->attach_why);
	else
		policy_verdict_set(v, VERDICT_QUARANTINE, 0, "",
		    "carries %s: kept for the security team", t->attach_why);
	v->rule = sc_rule_attachment;
}

/* A level's name in the reply: plain ASCII, as SMTP replies are (RFC 5321 4.2). */
static const char *sc_level_ascii(enum classify_level level)
{
	switch (level) {
	case CLASSIFY_MAT: return "MAT";
	case CLASSIFY_TOI_MAT: return "TOI MAT";
	case CLASSIFY_TUYET_MAT: return "TUYET MAT";
	case CLASSIFY_NONE: break;
	}
	return "";
}

/* Most security contacts one notice goes to (the agencies and their ancestors). */
#define SC_CONTACTS_MAX 32
static void sc_encoded_word(struct buf *b, const char *utf8)
{
	unsigned char enc[128];
	size_t len = strlen(utf8);
	int n;

	if (len > 90)
		len = 90;   /* 4 * ceil(90 / 3) = 120 characters fit enc */
	n = EVP_EncodeBlock(enc, (const unsigned char *)utf8, (int)len);
	buf_printf(b, "=?UTF-8?B?%.*s?=", n, (const char *)enc);
}

/*
 * The notice to one security contact: who sent what to whom, the level
 * and where it was found; never the message itself (it is the secret).
 */
static void sc_notice(struct sc_tx *t, const char *to, const char *qid, bool quarantine)
{
	struct buf m;
	char date[64], when[64], rnd[9] = "";
	const char *label = classify_level_label(t->level);
	unsigned char r[4];

	buf_init(&m);
	time_format_rfc5322(time_now_ms(), date, sizeof date);
	time_format_iso(time_now_ms(), when, sizeof when);
	if (RAND_bytes(r, sizeof r) == 1)
		snprintf(rnd, sizeof rnd, "%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
	buf_printf(&m, "From: \"govrelay\" <MAILER-DAEMON@%s>\r\nTo: <%s>\r\nSubject: ",
	    t->st->hostname, to);
	sc_encoded_word(&m, quarantine ? "Thư bị giữ lại: đánh dấu mật" :
	    "Thư bị từ chối: đánh dấu mật");
	buf_printf(&m, " [%s] (%s)\r\n", classify_level_name(t->level),
	    quarantine ? "classified message quarantined" : "classified message refused");
	buf_printf(&m, "Date: %s\r\nMessage-ID: <%s.%s.notice@%s>\r\n"
	    "Auto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
	    date, qid, rnd, t->st->hostname);
	buf_printf(&m, "Cổng thư điện tử công vụ đã %s một thư được đánh dấu độ mật "
	    "\"%s\" (bí mật nhà nước).\r\n\r\n", quarantine ? "giữ lại (cách ly)" : "từ chối",
	    label);
	buf_printf(&m, "The official mail gateway %s a message marked as a state secret "
	    "(%s).\r\n\r\n", quarantine ? "quarantined" : "refused", classify_level_name(t->level));
	buf_printf(&m, "Thời gian / Time: %s\r\nMã / Queue id: %s\r\n"
	    "Người gửi / Sender: <%s>\r\n", when, qid, t->sender != NULL ? t->sender : "");
	if (t->auth_user != NULL)
		buf_printf(&m, "Tài khoản / User: %s\r\n", t->auth_user);
	buf_printf(&m, "Độ mật / Level: %s (%s)\r\nVị trí / Found in: %s: %s\r\n", label,
	    classify_level_name(t->level), classify_where_name(t->where), t->found_in);
	buf_printf(&m, "\r\nNội dung thư không kèm theo đây. The message itself is not "
	    "attached; see govrelayctl audit search --queue-id %s%s.\r\n", qid,
	    quarantine ? " and govrelayctl quarantine show" : "");
	policy_tx_add_notice(t->tx, to, m.data, m.len);
	buf_free(&m);
}

static void sc_classified(struct sc_tx *t, bool quarantine, struct verdict *v)
{
	const char *lv = sc_level_ascii(t->level);

	if (!t->detached) {
		policy_tx_note(t->tx, "classified", "%s", classify_level_name(t->level));
		policy_tx_note(t->tx, "classified_where", "%s", classify_where_name(t->where));
		policy_tx_note(t->tx, "classified_in", "%s", t->found_in);
	}
	if (quarantine) {
		policy_verdict_set(v, VERDICT_QUARANTINE, 0, "", "marked as a state secret (%s): "
		    "kept for the security team", classify_level_name(t->level));
	} else {
		/*
		 * Vietnamese first, then English (INTERFACE.md). Vietnamese is
		 * written without diacritics: a reply line is ASCII.
		 */
		policy_verdict_set(v, VERDICT_REJECT, 550, "5.7.1",
		    "Thu bi tu choi: thu duoc danh dau do mat %s (bi mat nha nuoc).\n"
		    "Tai lieu bi mat nha nuoc khong duoc gui qua thu dien tu cong vu; hay "
		    "chuyen qua he thong co yeu hoac van thu mat theo quy dinh.\n"
		    "Message refused: it is marked as a state secret (%s).\n"
		    "State secrets may not travel by official e-mail; send it through the "
		    "cipher (co yeu) network or the classified-document clerk, as the law "
		    "requires.", lv, lv);
		v->event = "classified";
	}
	v->rule = sc_rule_classified;
}

/*
 * The DLP rules that fired, over every scan: the strongest action, and
 * the names with their counts ("iban (3), cccd (1)"). A search that
 * crossed PCRE2's limits counts as its rule firing: a text built to
 * exhaust the matcher must not pass unread.
 */
static enum dlp_action sc_dlp_result(struct sc_tx *t, struct buf *names)
{
	enum dlp_action strongest = DLP_ACTION_NONE;

	for (size_t i = 0; i < t->nscans; i++) {
		struct dlp_result r;
		int rc = dlp_scan_result(t->scans[i], &r);

		if (rc == DLP_E_LIMIT) {
			strongest = DLP_ACTION_REJECT;
			buf_printf(names, "%s%s (too costly to search)", names->len > 0 ? ", " : "",
			    r.limit_rule);
		}
		for (size_t k = 0; k < r.nhits; k++) {
			if (r.hits[k].action > strongest)
				strongest = r.hits[k].action;
			buf_printf(names, "%s%s (%u)", names->len > 0 ? ", " : "", r.hits[k].name,
			    r.hits[k].count);
		}
	}
	return strongest;
}

static void sc_dlp_verdict(struct sc_tx *t, struct verdict *v)
{
	struct buf b;
	char names[300], field[400];
	enum dlp_action act;

	buf_init(&b);
	act = sc_dlp_result(t, &b);
	/* At most 400 rules: the reply and the field say the first ones. */
	str_copyn(names, b.len > 0 ? b.data : "", b.len, sizeof names);
	buf_free(&b);
	if (act == DLP_ACTION_NONE)
		return;
	if (!t->detached)
		policy_tx_note(t->tx, "dlp", "%s: %s", dlp_action_name(act), names);
	if (act == DLP_ACTION_REJECT) {
		policy_verdict_set(v, VERDICT_REJECT, 550, "5.7.1",
		    "Thu bi tu choi theo quy tac bao ve du lieu cua co quan: %s.\n"
		    "Message refused by your agency's data-protection rules: %s.", names, names);
	} else if (act == DLP_ACTION_QUARANTINE) {
		policy_verdict_set(v, VERDICT_QUARANTINE, 0, "",
		    "matches the data-protection rules %s: kept for the security team", names);
	} else if (!t->detached) {
		/* tag: delivered, and says so to the receiving agency's filters. */
		snprintf(field, sizeof field, "X-Govrelay-DLP: %s", names);
		policy_tx_add_header(t->tx, field);
	}
	v->rule = sc_rule_dlp;
}

void stage_content__decide(struct sc_tx *t, struct policy_call *call)
{
	struct verdict v;
	enum classify_level min_level;
	bool quarantine;
	int rc;

	policy_verdict_set(&v, VERDICT_CONTINUE, 0, "", "content checked");
	if (t->mime_err != 0) {
		policy_verdict_set(&v, VERDICT_REJECT, 554, "5.6.0", "Message refused: %s",
		    mime_error_text(t->mime_err));
		v.rule = sc_rule_mime;
	} else if (t->level != CLASSIFY_NONE) {
		rc = stage_content__classified_policy(call, t, &quarantine, &min_level);
		if (rc < 0) {
			log_warn(t->session_id, "content: cannot read the classified policy: %s",
			    queue_strerror(rc));
			policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0",
			    "Temporary policy failure, try again later");
			v.rule = sc_rule_classified;
		} else if (t->level >= min_level) {
			sc_classified(t, quarantine, &v);
			if (!t->detached) {
				char *contacts[SC_CONTACTS_MAX];
				size_t n = stage_content__contacts(call, t, contacts);

				for (size_t i = 0; i < n; i++) {
					sc_notice(t, contacts[i], t->session_id, quarantine);
					free(contacts[i]);
				}
			}
		} else if (!t->detached) {
			/* Below the agencies' level: noted, so the security team can still see it. */
			policy_tx_note(t->tx, "marking", "%s", classify_level_name(t->level));
		}
	}
	if (v.kind == VERDICT_CONTINUE) {
		sc_name_rule(t);
		sc_attach_verdict(t, &v);
	}
	if (v.kind == VERDICT_CONTINUE && t->dlp_error[0] != '\0') {
		log_warn(t->session_id, "content: DLP rules unreadable: %s", t->dlp_error);
		policy_verdict_set(&v, VERDICT_TEMPFAIL, 451, "4.3.0",
		    "Temporary policy failure, try again later");
		v.rule = sc_rule_dlp;
	} else if (v.kind == VERDICT_CONTINUE) {
		sc_dlp_verdict(t, &v);
	}
	policy_call_complete(call, &v);
}

