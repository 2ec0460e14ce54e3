/*
 * checks: the check table, the only file that names every check. Each
 * row says where a check runs (stages, listener roles), its flags and
 * timeout, and the functions of its file (policy/stage_<name>.c) that
 * build, run, tell and free it (policy/check.h says what each must do).
 * Rows run in table order at each stage: the cheap, decisive relay
 * question before the tenancy lookups.
 *
 * Adding a check (SPF, say): write policy/stage_spf.c with functions of
 * the typedef'd signatures of policy/check.h, declare them below in its
 * own block and add its row. Nothing else changes: not the engine, not
 * the session.
 *
 * Entry points: policy_checks, policy_nchecks (read by policy_new).
 * OWNERSHIP: static, read-only data.
 * THREADS: any (constant).
 * ERRORS: none here; constructors report theirs through policy_new.
 */
#include "config.h"

#include "policy/check.h"

/* stage_relay.c: may this client send to this recipient through us? */
policy_check_run_fn stage_relay_run;

/* stage_tenant.c: the agency rules (mailboxes, sender ownership, limits). */
policy_check_new_fn stage_tenant_new;
policy_check_free_fn stage_tenant_free;
policy_check_run_fn stage_tenant_run;
policy_check_queued_fn stage_tenant_queued;

/* stage_headers.c: one From:, at most one Sender:, Subject:, ... (RFC 5322 3.6). */
policy_check_run_fn stage_headers_run;

/* stage_content.c: MIME limits, state-secret markings and DLP rules (every role). */
policy_check_new_fn stage_content_new;
policy_check_free_fn stage_content_free;
policy_check_run_fn stage_content_run;
policy_check_tx_new_fn stage_content_tx_new;
policy_check_body_fn stage_content_body;
policy_check_tx_free_fn stage_content_tx_free;

/* stage_dmarc.c: the From: domain's DMARC policy over SPF and DKIM (mx only). */
policy_check_new_fn stage_dmarc_new;
policy_check_free_fn stage_dmarc_free;
policy_check_run_fn stage_dmarc_run;
policy_check_tx_new_fn stage_dmarc_tx_new;
policy_check_tx_free_fn stage_dmarc_tx_free;

/* stage_spf.c: SPF at MAIL (off the loop), the agency's spf_fail_action at RCPT. */
policy_check_new_fn stage_spf_new;
policy_check_free_fn stage_spf_free;
policy_check_run_fn stage_spf_run;
policy_check_tx_new_fn stage_spf_tx_new;
policy_check_tx_free_fn stage_spf_tx_free;
/* stage_antivirus.c: every message through clamd when `clamd` is set (issue 11). */
policy_check_new_fn stage_antivirus_new;
policy_check_free_fn stage_antivirus_free;
policy_check_run_fn stage_antivirus_run;
policy_check_tx_new_fn stage_antivirus_tx_new;
policy_check_body_fn stage_antivirus_body;
policy_check_tx_free_fn stage_antivirus_tx_free;

/* stage_dkim_sign.c: DKIM signatures on the mail we send (the last row). */
policy_check_new_fn stage_dkim_sign_new;
policy_check_free_fn stage_dkim_sign_free;
policy_check_run_fn stage_dkim_sign_run;
policy_check_tx_new_fn stage_dkim_sign_tx_new;
policy_check_body_fn stage_dkim_sign_body;
policy_check_tx_free_fn stage_dkim_sign_tx_free;

/* stage_dkim_verify.c: DKIM signatures of inbound mail (results for DMARC). */
policy_check_new_fn stage_dkim_verify_new;
policy_check_free_fn stage_dkim_verify_free;
policy_check_run_fn stage_dkim_verify_run;
policy_check_tx_new_fn stage_dkim_verify_tx_new;
policy_check_body_fn stage_dkim_verify_body;
policy_check_tx_free_fn stage_dkim_verify_tx_free;

const struct policy_check policy_checks[] = {
	{ .name = "relay", .stages = POLICY_AT(POLICY_STAGE_RCPT), .roles = POLICY_ROLES_ALL,
	  .run = stage_relay_run },
	{ .name = "tenant", .stages = POLICY_AT(POLICY_STAGE_MAIL) |
	  POLICY_AT(POLICY_STAGE_RCPT) | POLICY_AT(POLICY_STAGE_DATA),
	  .roles = POLICY_ROLES_ALL, .create = stage_tenant_new, .destroy = stage_tenant_free,
	  .run = stage_tenant_run, .queued = stage_tenant_queued },
	{ .name = "headers", .stages = POLICY_AT(POLICY_STAGE_DATA), .roles = POLICY_ROLES_ALL,
	  .run = stage_headers_run },
	/*
	 * Before the sender-authentication rows: a message marked as a state
	 * secret is a "classified" record whatever else is wrong with it.
	 * Its documents are read on the thread pool within 20 s.
	 */
	{ .name = "content", .stages = POLICY_AT(POLICY_STAGE_RCPT) | POLICY_AT(POLICY_STAGE_DATA),
	  .roles = POLICY_ROLES_ALL, .timeout_ms = 30000, .create = stage_content_new,
	  .destroy = stage_content_free, .run = stage_content_run,
	  .tx_new = stage_content_tx_new, .body = stage_content_body,
	  .tx_free = stage_content_tx_free },
	/* The row's timeout exceeds the evaluation's own deadline (12 s). */
	{ .name = "spf", .stages = POLICY_AT(POLICY_STAGE_MAIL) | POLICY_AT(POLICY_STAGE_RCPT),
	  .roles = POLICY_ROLE(CFG_ROLE_MX), .timeout_ms = 20000, .create = stage_spf_new,
	  .destroy = stage_spf_free, .run = stage_spf_run, .tx_new = stage_spf_tx_new,
	  .tx_free = stage_spf_tx_free },
	{ .name = "dkim_verify", .stages = POLICY_AT(POLICY_STAGE_DATA),
	  .roles = POLICY_ROLE(CFG_ROLE_MX), .create = stage_dkim_verify_new,
	  .destroy = stage_dkim_verify_free, .run = stage_dkim_verify_run,
	  .tx_new = stage_dkim_verify_tx_new, .body = stage_dkim_verify_body,
	  .tx_free = stage_dkim_verify_tx_free },
	{ .name = "dmarc", .stages = POLICY_AT(POLICY_STAGE_DATA),
	  .roles = POLICY_ROLE(CFG_ROLE_MX), .create = stage_dmarc_new,
	  .destroy = stage_dmarc_free, .run = stage_dmarc_run, .tx_new = stage_dmarc_tx_new,
	  .tx_free = stage_dmarc_tx_free },
	/*
	 * Every role: mail from our users can carry a virus too. The row's
	 * timeout exceeds clamd_timeout's maximum (5 min), so clamd's own
	 * deadline (451 4.7.1, with its reason) always comes first.
	 */
	{ .name = "antivirus", .stages = POLICY_AT(POLICY_STAGE_DATA),
	  .roles = POLICY_ROLES_ALL, .timeout_ms = 310000, .create = stage_antivirus_new,
	  .destroy = stage_antivirus_free, .run = stage_antivirus_run,
	  .tx_new = stage_antivirus_tx_new, .body = stage_antivirus_body,
	  .tx_free = stage_antivirus_tx_free },
	/* Last: it signs only what every row before it let through. */
	{ .name = "dkim_sign", .stages = POLICY_AT(POLICY_STAGE_MAIL) |
	  POLICY_AT(POLICY_STAGE_DATA), .roles = POLICY_ROLES_ALL,
	  .create = stage_dkim_sign_new, .destroy = stage_dkim_sign_free,
	  .run = stage_dkim_sign_run, .tx_new = stage_dkim_sign_tx_new,
	  .body = stage_dkim_sign_body, .tx_free = stage_dkim_sign_tx_free },
};

const size_t policy_nchecks = sizeof policy_checks / sizeof policy_checks[0];
