#ifndef GOVRELAY_QUEUE_SCHEMA_H
#define GOVRELAY_QUEUE_SCHEMA_H
/*
 * schema: the layout of every named database in the queue's LMDB
 * environment. This file is the reference for anyone reading the store
 * with mdb_dump or writing a migration; change it together with the code
 * and bump QUEUE_SCHEMA_VERSION when a layout changes incompatibly.
 *
 * Integers in keys are big-endian and the databases use LMDB's default
 * byte-wise key order (no MDB_INTEGERKEY), so a cursor walks ids, times
 * and sequence numbers in numeric order and `mdb_dump` output is portable
 * between hosts. Integers inside values are big-endian too.
 *
 * Value encodings shared by several databases:
 *   u8/u32/u64   big-endian unsigned; i32/i64 are the same bits as
 *                u32/u64 (two's complement).
 *   str          u32 length, then that many bytes (no NUL, no terminator).
 *                The length QUEUE_STR_NULL (0xFFFFFFFF) with no bytes
 *                encodes a NULL pointer. A decoder rejects NUL bytes
 *                inside a string, a length running past the value, and
 *                trailing bytes after the last field: all -EBADMSG.
 *
 * ------------------------------------------------------------------------
 * meta        key: ASCII string (no NUL)          value: per key
 *   "schema_version"  u32: QUEUE_SCHEMA_VERSION. Written on the first
 *                     open; an open with any other value is refused.
 *   "last_id"         u64: the greatest queue id stored so far (message or
 *                     body chunk), so ids never repeat across restarts.
 *   "audit_head"      u64 seq + 32-byte SHA-256: the newest audit record.
 *                     Absent while the chain is empty.
 *
 * messages    key: id (u64, 8 bytes)               value: encoded queue_msg
 *   u8   version (QUEUE_MSG_ENC_VERSION)
 *   u64  id                    i64 arrival (unix ms)
 *   str  sender                str envid
 *   u8   ret                   u8  body_type
 *   u8   flags (bit 0 smtputf8, bit 1 held, bit 2 delay_warned, bit 3 require_tls
 *        (outbound TLS required by the sender's agency); other
 *        bits must be 0)
 *   u64  declared_size         u64 size            u32 nchunks
 *   str  client_addr           str helo            str listener
 *   str  tls                   str auth_user
 *   u32  nrcpts, then per recipient:
 *     str addr     str orcpt     u32 notify (only QUEUE_NOTIFY_* bits)
 *     u8 state     u32 attempts  i64 next_attempt  i64 done_at
 *     i32 last_code              str last_reply
 *   [str hold_reason]  only in records written when a policy check held
 *        the message in the queue (DMARC quarantine before the
 *        `quarantine` database): optional at the end, so they still decode
 *   The id inside the value must equal the key.
 *
 * bodies      key: id (u64) + seq (u32), 12 bytes   value: chunk bytes
 *   At most QUEUE_CHUNK_MAX bytes per chunk. Chunk 0 is the head (our
 *   Received: line and the policy's header fields), written with the
 *   message record itself; the body as received starts at chunk 1.
 *   (Messages queued before that layout have no separate head: their
 *   Received: line begins chunk 0. Readers need not care: the message is
 *   the chunks in order.) Chunks are written under
 *   fresh keys and never overwritten. Chunks whose id has no record in
 *   `messages` belong to a message that never committed (orphans).
 *
 * schedule    key: time (u64 unix ms) + id (u64), 16 bytes   value: empty
 *   One entry per message that has a pending recipient and is not held,
 *   at queue_msg_next_attempt() (negative times are stored as 0).
 *
 * domains     key: lowercase domain name, no trailing dot
 *             value: encoded queue_domain
 *   u8   version (QUEUE_DOMAIN_ENC_VERSION)
 *   str  name     str tenant     str route
 *   u8   require_tls (0 or 1)    i64 created (unix ms)
 *   u8   accept_all (0 or 1)     (version 2 only)
 *   Version 1 records (written before tenancy) end after created and
 *   decode with accept_all false; they are rewritten as version 2 the next
 *   time the domain is put.
 *
 * audit       key: seq (u64), 1, 2, 3 ... with no gaps
 *             value: prev hash (32 bytes) + hash (32 bytes) + line
 *   line is the canonical record text, ASCII with no control bytes:
 *     seq=N time=YYYY-MM-DDTHH:MM:SS.mmmZ qid=Q event=E key=value ...
 *   Values escape space, '=', '\\', control and non-ASCII bytes as \xNN;
 *   keys are [a-z0-9_.-]+. hash = SHA-256(prev || line); the first
 *   record's prev is 32 zero bytes.
 *
 * The tenancy databases below (queue/tenancy.h) were added without a
 * schema version change: a read-write open creates whichever of them is
 * missing, and a read-only open of a store written before they existed
 * reads them as empty. Their string keys and values never hold a NUL
 * byte, so the NUL that joins the two parts of a composite key sorts
 * before every byte of the second part and a cursor range on
 * "PART1" + 0x00 covers exactly the records of PART1 ("a.b" + 0x00 is not
 * a prefix of any "a.bc" key).
 *
 * tenants     key: tenant id, [a-z0-9][a-z0-9._-]{0,63}
 *             value: encoded queue_tenant
 *   u8   version (QUEUE_TENANT_ENC_VERSION)
 *   str  id (must equal the key)     str name (UTF-8, 1..200 bytes)
 *   str  parent (NULL for a root)    i64 created (unix ms)
 *   Parents form a forest at most TENANCY_DEPTH_MAX tenants deep.
 *
 * mailboxes   key: DOMAIN + 0x00 + LOCALPART of the canonical address
 *             LOCALPART@DOMAIN (split at the last '@'), so one domain's
 *             mailboxes are one cursor range, in local-part order
 *             value: encoded queue_mailbox
 *   u8   version (QUEUE_MAILBOX_ENC_VERSION)
 *   str  address (must equal LOCALPART@DOMAIN of the key)
 *   i64  created (unix ms)
 *   u32  nalias_of (0 for a plain mailbox, at most
 *        TENANCY_ALIAS_TARGETS_MAX), then that many
 *   str  target address (canonical; may be external)
 *
 * users       key: canonical address        value: encoded queue_user
 *   u8   version (QUEUE_USER_ENC_VERSION)
 *   str  address (must equal the key)      str hash (common/passwd.h text)
 *   u8   flags (bit 0 locked, bit 1 locked_out; other bits must be 0)
 *   u32  failures    i64 last_failure (unix ms, 0)    i64 created
 *
 * policies    key: TENANT + 0x00 + KEY (a name of tenancy_policy_keys[],
 *             or "dlp_rule." + a rule name: a DLP rule, queue/tenancy.h)
 *             value: the normalized value text (tenancy_policy_normalize),
 *             raw bytes with no length prefix, no NUL and no version
 *             byte, at most TENANCY_POLICY_VALUE_MAX bytes
 *             (TENANCY_DLP_VALUE_MAX for a DLP rule: "action=A
 *             threshold=N pattern=P" or "... builtin=B"; never with an
 *             exemption marker, rules being additive)
 *   Only a tenant's own settings are stored; inheritance is computed on
 *   read. Deleting a tenant deletes its range.
 *             key: TENANT + 0x00 + KEY + 0x00 + "exempt", value "1": the
 *             setting was made looser than the ancestors' ceiling by
 *             root or the store's owner, and evaluation honours it
 *             (queue/tenancy_policy.c); absent for other settings.
 *
 * operators   key: unix user name, [a-z_][a-z0-9_.-]{0,31}
 *             value: encoded queue_operator
 *   u8   version (QUEUE_OPERATOR_ENC_VERSION)
 *   str  unix_user (must equal the key)    str tenant
 *   u8   role (enum queue_operator_role: 0 postmaster, 1 auditor,
 *        2 security)
 *   i64  created (unix ms)
 *
 * dkim_keys   key: DOMAIN + 0x00 + SELECTOR (queue/dkim.h; added like the
 *             tenancy databases, without a schema version change)
 *             value: encoded queue_dkim_key
 *   u8   version (QUEUE_DKIM_ENC_VERSION)
 *   str  domain (must equal DOMAIN)   str selector (must equal SELECTOR)
 *   u8   algorithm (enum queue_dkim_alg: 0 rsa (2048-bit rsa-sha256),
 *        1 ed25519 (ed25519-sha256, RFC 8463))
 *   u8   state (enum queue_dkim_state: 0 active, 1 retiring, 2 retired)
 *   i64  created (unix ms)             i64 changed (unix ms, last state change)
 *   str  public: the p= value of the DNS record, base64 (ed25519: the raw
 *        32-byte key; rsa: the SubjectPublicKeyInfo DER)
 *   The private key is not in the store: it is the file
 *   DATA_DIR/dkim/DOMAIN/SELECTOR.pem (PKCS#8 PEM, mode 0600, in folders
 *   of mode 0700, owned by the daemon's user), so an LMDB dump or a
 *   backup of data.mdb never holds it.
 *
 * quarantine  key: id (u64, 8 bytes)              value: encoded
 *             queue_quarantine (queue/quarantine.h; added like the
 *             tenancy databases, without a schema version change: a
 *             read-only open of an older store reads it as empty)
 *   u8   version (QUEUE_QUARANTINE_ENC_VERSION)
 *   u64  id (must equal the key)     i64 time (unix ms, quarantined at)
 *   str  rule (the check that decided)     str reason (the verdict's text)
 *   str  notes (the checks' notes, policy_tx_notes; NULL when none)
 *   str  tenants ("a,b": the agencies concerned at receive; NULL)
 *   u32  length, then that many bytes: the envelope, encoded exactly as
 *        a `messages` value (its id equal to the key, no schedule)
 *   A quarantined message has no record in `messages` and no entry in
 *   `schedule`: neither the scheduler nor `queue list` ever sees it.
 *   Its body chunks stay in `bodies` under its id (so they are not
 *   orphans: orphan collection looks in both databases). Release moves
 *   the envelope to `messages` with its schedule entry and deletes this
 *   record, in one transaction; delete removes the record and the chunks.
 * ------------------------------------------------------------------------
 */

#define QUEUE_SCHEMA_VERSION 1u

/* Named databases; QUEUE_DB_COUNT is what mdb_env_set_maxdbs gets. */
#define QUEUE_DB_META "meta"
#define QUEUE_DB_MESSAGES "messages"
#define QUEUE_DB_BODIES "bodies"
#define QUEUE_DB_SCHEDULE "schedule"
#define QUEUE_DB_DOMAINS "domains"
#define QUEUE_DB_AUDIT "audit"
#define QUEUE_DB_TENANTS "tenants"
#define QUEUE_DB_MAILBOXES "mailboxes"
#define QUEUE_DB_USERS "users"
#define QUEUE_DB_POLICIES "policies"
#define QUEUE_DB_OPERATORS "operators"
#define QUEUE_DB_DKIM "dkim_keys"
#define QUEUE_DB_QUARANTINE "quarantine"
#define QUEUE_DB_COUNT 13

/* Keys of the meta database. */
#define QUEUE_META_SCHEMA_VERSION "schema_version"
#define QUEUE_META_LAST_ID "last_id"
#define QUEUE_META_AUDIT_HEAD "audit_head"

/* Encoding versions inside values (independent of the schema version). */
#define QUEUE_MSG_ENC_VERSION 1u
#define QUEUE_DOMAIN_ENC_VERSION 2u   /* 2 appends accept_all; 1 still decodes */
#define QUEUE_TENANT_ENC_VERSION 1u
#define QUEUE_MAILBOX_ENC_VERSION 1u
#define QUEUE_USER_ENC_VERSION 1u
#define QUEUE_OPERATOR_ENC_VERSION 1u
#define QUEUE_DKIM_ENC_VERSION 1u
#define QUEUE_QUARANTINE_ENC_VERSION 1u

#define QUEUE_STR_NULL 0xFFFFFFFFu

/* Key sizes. */
#define QUEUE_KEY_ID_LEN 8
#define QUEUE_KEY_BODY_LEN 12
#define QUEUE_KEY_SCHED_LEN 16
#define QUEUE_KEY_AUDIT_LEN 8
#define QUEUE_AUDIT_HASH_LEN 32
#define QUEUE_AUDIT_HEAD_LEN (8 + QUEUE_AUDIT_HASH_LEN)

#endif
