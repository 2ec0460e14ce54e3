#ifndef GOVRELAY_POLICY_DKIM_VERIFY_INT_H
#define GOVRELAY_POLICY_DKIM_VERIFY_INT_H
/*
 * dkim_verify_int: what the two files of the DKIM verify check share
 * (policy/stage_dkim_verify.c: the row, the message as it streams in,
 * the DATA stage; policy/dkim_verify_keys.c: the key lookups, the key
 * cache libopendkim reads on the thread pool, the per-signature results).
 * Not for other modules.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <opendkim/dkim.h>
#include <uv.h>

#include "policy/authres.h"
#include "policy/check.h"
#include "policy/dkim_canon.h"

/* Signatures checked per message; the rest are counted, not looked up. */
#define STAGE_DKIMV_MAX_SIGS AUTHRES_MAX_SIGS
/* libopendkim's key buffer (BUFRSZ + 1 in dkim_get_key): longer is permerror. */
#define STAGE_DKIMV_KEY_TXT_MAX 1023
/* selector._domainkey.domain, RFC 1035 2.3.4 */
#define STAGE_DKIMV_NAME_MAX 253

struct stage_dkimv_keycache;

/* The row's state: one DKIM_LIB, shared by reference with every message. */
struct stage_dkimv_lib {
	DKIM_LIB *lib;
	struct stage_dkimv_keycache *keys;   /* parsed key records (dkim_verify_pubkey.c) */
	bool enabled;        /* dkim_verify = yes */
	unsigned refs;       /* the engine's + one per message state (loop thread) */
};

enum stage_dkimv_key_state {
	STAGE_DKIMV_KEY_PENDING,     /* lookup in flight */
	STAGE_DKIMV_KEY_OK,          /* txt holds the record */
	STAGE_DKIMV_KEY_NOTFOUND,    /* NXDOMAIN or no TXT: permerror, no key */
	STAGE_DKIMV_KEY_TEMPFAIL,    /* the resolver failed: temperror */
	STAGE_DKIMV_KEY_BAD,         /* unusable name or record: permerror, reason says */
};

struct stage_dkimv_tx;

/* One key record, looked up once per message however many signatures use it. */
struct stage_dkimv_key {
	struct stage_dkimv_tx *t;
	enum stage_dkimv_key_state state;
	char name[STAGE_DKIMV_NAME_MAX + 1];
	char txt[STAGE_DKIMV_KEY_TXT_MAX + 1];
	char reason[96];
};

/* The verdict on one signature before libopendkim ran (key trouble), or after. */
struct stage_dkimv_sig {
	int key;                       /* index in keys[], -1: none needed */
	enum authres_result preset;    /* AUTHRES_NOT_RUN: libopendkim decides */
	char reason[120];
};

enum stage_dkimv_phase {
	STAGE_DKIMV_PH_HEADER,   /* assembling the header section */
	STAGE_DKIMV_PH_BODY,     /* signatures found: body pieces go to dkim_body */
	STAGE_DKIMV_PH_EOM,      /* dkim_eom queued on the thread pool */
	STAGE_DKIMV_PH_DONE,     /* nothing more to verify (see stop_reason) */
};

/* The canonical body length per body canonicalization, for l= (RFC 6376 3.4.3-4). */
struct stage_dkimv_bodylen {
	uint64_t committed;  /* up to the last line with content */
	uint64_t blanks;     /* empty lines after it, not counted unless content follows */
	uint64_t line;       /* the current line so far */
	bool wsp;            /* relaxed: whitespace waits to be a single SP */
	bool cr;             /* a CR waits for its LF */
	bool relaxed;
};

/*
 * One message's state. refs: the transaction's (dropped by tx_free, which
 * also sets detached), one per key lookup in flight, one while dkim_eom
 * runs on the thread pool, one while the wait timer is open; freed at
 * zero. Loop thread, except that the thread pool owns dkim, keys[] (read
 * only) and eom_status while phase == STAGE_DKIMV_PH_EOM: a lookup that
 * answers after the wait gave up is dropped, not written.
 */
struct stage_dkimv_tx {
	struct stage_dkimv_lib *sl;
	struct policy_tx *tx;          /* NULL once detached */
	struct policy *p;
	unsigned refs;
	bool detached;
	enum stage_dkimv_phase phase;
	char *hdr;                     /* the header section so far */
	size_t hlen, hcap;
	size_t nsigfields;             /* DKIM-Signature fields seen */
	char stop_reason[120];         /* why not verified, when phase DONE early */
	DKIM *dkim;
	DKIM_SIGINFO **sigs;
	int nsigs;
	struct stage_dkimv_sig sig[STAGE_DKIMV_MAX_SIGS];
	struct stage_dkimv_key keys[STAGE_DKIMV_MAX_SIGS];
	size_t nkeys;
	size_t pending;                /* key lookups in flight */
	bool want_len;                 /* a signature has l= */
	struct stage_dkimv_bodylen len_simple, len_relaxed;
	/*
	 * No l= anywhere (nearly always): the body hashes are ours
	 * (policy/dkim_canon.c, several times faster than libopendkim's
	 * byte-by-byte canonicalization) and libopendkim gets no body. With
	 * an l= signature libopendkim hashes the body, l= and all.
	 */
	bool own_bh;
	bool want_simple, want_relaxed;
	struct dkim_body_canon body_simple, body_relaxed;
	struct policy_call *call;      /* the DATA run waiting for us */
	uv_timer_t timer;              /* bounds that wait (timer_on: open) */
	bool timer_on;
	bool gave_up;                  /* keys still out when it fired: temperror */
	uv_work_t work;
	DKIM_STAT eom_status;
	bool eom_ran;
	bool eom_on_loop;              /* dkim_eom runs inline, on the loop thread */
};

/* dkim_verify_keys.c */
void stage_dkimv__keys_start(struct stage_dkimv_tx *t);
void stage_dkimv__keys_preset(struct stage_dkimv_tx *t);
DKIM_CBSTAT stage_dkimv__key_lookup(DKIM *dkim, DKIM_SIGINFO *sig, unsigned char *buf,
    size_t buflen);
void stage_dkimv__report(struct stage_dkimv_tx *t);
bool stage_dkimv__short_l(const struct stage_dkimv_tx *t, DKIM_SIGINFO *sig);

/* dkim_verify_pubkey.c */
struct stage_dkimv_keycache *stage_dkimv__keycache_new(void);
void stage_dkimv__keycache_free(struct stage_dkimv_keycache *c);
bool stage_dkimv__keycache_cheap(struct stage_dkimv_keycache *c, const char *txt);
DKIM_CBSTAT stage_dkimv__final(DKIM *dkim, DKIM_SIGINFO **sigs, int nsigs);
void stage_dkimv__bodylen_feed(struct stage_dkimv_bodylen *bl, const char *data, size_t len);
uint64_t stage_dkimv__bodylen_total(const struct stage_dkimv_bodylen *bl);

/* stage_dkim_verify.c */
void stage_dkimv__keys_done(struct stage_dkimv_tx *t);
void stage_dkimv__unref(struct stage_dkimv_tx *t);

#endif
