/*
 * store: the LMDB environment behind the queue, its transactions, queue
 * ids and the small encoding helpers the other files of queue/ share.
 *
 * Entry points: queue_store_open/close, queue_strerror, queue_next_id,
 * queue_txn_begin/commit/abort; internal (queue_int.h): queue__lmdb_err,
 * queue__txn_begin_child, queue__note_id, queue__be*, queue__enc_*,
 * queue__dec_*.
 * OWNERSHIP: queue_store_open returns a store the caller frees with
 * queue_store_close, after every transaction on it has ended. A txn is
 * freed by commit or abort, whatever they return.
 * A read-write open creates every named database that is missing (the
 * tenancy ones are newer than schema version 1, schema.h); a read-only
 * open of a store that predates them marks them absent (queue_int.h).
 * THREADS: open/close and queue_next_id on one thread (the loop). Read
 * transactions may begin on any thread and end on another (MDB_NOTLS); a
 * write transaction begins and ends on one thread, and in the daemon that
 * thread is the queue writer's.
 * ERRORS: negative errno: -ENOENT, -ENOSPC, -EBADMSG, -EIO, -EINVAL (see
 * queue.h). A refused schema version is -EINVAL, and queue_strerror on
 * the same thread then names both versions.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "queue/queue.h"
#include "queue/queue_int.h"
#include "queue/schema.h"

/*
 * How often begin retries after MDB_MAP_RESIZED. One retry adopts the new
 * size; a second covers another process growing the map again meanwhile.
 */
#define QUEUE_RESIZE_RETRIES 3

/*
 * The reason the last queue_store_open on this thread failed, when a bare
 * errno cannot say it (the schema version). queue_strerror returns it for
 * that error code until the next open on the thread: the CLI and the
 * daemon report an open failure right after it happens.
 */
static _Thread_local int queue_open_err;
static _Thread_local char queue_open_why[96];

/* ------------------------------------------------------------ encoding */

void queue__be64_put(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

uint64_t queue__be64_get(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

void queue__be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

uint32_t queue__be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void queue__enc_u8(struct buf *b, uint8_t v)
{
	buf_append(b, &v, 1);
}

void queue__enc_u32(struct buf *b, uint32_t v)
{
	uint8_t tmp[4];

	queue__be32_put(tmp, v);
	buf_append(b, tmp, sizeof tmp);
}

void queue__enc_u64(struct buf *b, uint64_t v)
{
	uint8_t tmp[8];

	queue__be64_put(tmp, v);
	buf_append(b, tmp, sizeof tmp);
}

void queue__enc_str(struct buf *b, const char *s)
{
	size_t len;

	if (s == NULL) {
		queue__enc_u32(b, QUEUE_STR_NULL);
		return;
	}
	len = strlen(s);
	/*
	 * Our strings are addresses, names and reply lines, far below 4 GiB;
	 * one that is not is a caller bug, and truncating it would corrupt
	 * the record silently.
	 */
	if (len >= QUEUE_STR_NULL)
		panic("queue: string of %zu bytes cannot be encoded", len);
	queue__enc_u32(b, (uint32_t)len);
	buf_append(b, s, len);
}

int queue__dec_u8(struct queue_dec *d, uint8_t *v)
{
	if (d->left < 1)
		return -EBADMSG;
	*v = d->p[0];
	d->p++;
	d->left--;
	return 0;
}

int queue__dec_u32(struct queue_dec *d, uint32_t *v)
{
	if (d->left < 4)
		return -EBADMSG;
	*v = queue__be32_get(d->p);
	d->p += 4;
	d->left -= 4;
	return 0;
}

int queue__dec_u64(struct queue_dec *d, uint64_t *v)
{
	if (d->left < 8)
		return -EBADMSG;
	*v = queue__be64_get(d->p);
	d->p += 8;
	d->left -= 8;
	return 0;
}

int queue__dec_str(struct queue_dec *d, char **s)
{
	uint32_t len;
	int rc;

	*s = NULL;
	if ((rc = queue__dec_u32(d, &len)) < 0)
		return rc;
	if (len == QUEUE_STR_NULL)
		return 0;
	/* The length is checked against what is left before allocating. */
	if (len > d->left)
		return -EBADMSG;
	if (memchr(d->p, '\0', len) != NULL)
		return -EBADMSG;
	*s = xstrndup((const char *)d->p, len);
	d->p += len;
	d->left -= len;
	return 0;
}

/* -------------------------------------------------------------- errors */

int queue__lmdb_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
	case ENOSPC:
		return -ENOSPC;
	case MDB_KEYEXIST:
		return -EEXIST;
	default:
		return -EIO;
	}
}

/*
 * mdb_env_open reports file-level trouble as a plain errno; keep the ones
 * an operator can act on (missing dir, permissions, read-only file
 * system, another process holding the lock) instead of folding them
 * into -EIO.
 */
static int queue_store_open_err(int rc)
{
	switch (rc) {
	case ENOENT:
	case EACCES:
	case EROFS:
	case EAGAIN:
		return -rc;
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		return -EBADMSG;
	default:
		return queue__lmdb_err(rc);
	}
}

const char *queue_strerror(int err)
{
	if (err != 0 && err == queue_open_err && queue_open_why[0] != '\0')
		return queue_open_why;
	switch (err) {
	case 0: return "success";
	case -ENOENT: return "no such record";
	case -ENOSPC: return "the store is full";
	case -EBADMSG: return "a stored record does not decode";
	case -EIO: return "store input/output error";
	case -EINVAL: return "invalid argument";
	case -EEXIST: return "record already exists";
	case -EACCES: return "permission denied";
	case -EROFS: return "store is read-only";
	case -EAGAIN: return "store is locked by another process";
	case -ECANCELED: return "operation canceled";
	default: return "unknown store error";
	}
}

/* -------------------------------------------------------- transactions */

static int queue_store_begin_raw(struct queue_store *s, MDB_txn *parent,
    unsigned flags, MDB_txn **out)
{
	int rc;

	for (int tries = 0;; tries++) {
		rc = mdb_txn_begin(s->env, parent, flags, out);
		if (rc != MDB_MAP_RESIZED || tries >= QUEUE_RESIZE_RETRIES)
			break;
		/*
		 * Another process grew the map past ours. Passing 0 adopts
		 * the size recorded in the file; LMDB refuses it (EINVAL)
		 * while this process has a write txn open, and then the
		 * caller gets -EIO and retries later.
		 */
		if (mdb_env_set_mapsize(s->env, 0) != MDB_SUCCESS)
			break;
	}
	return rc;
}

int queue_txn_begin(struct queue_store *store, bool write, struct queue_txn **out)
{
	struct queue_txn *t;
	MDB_txn *mt;
	int rc;

	*out = NULL;
	if (write && store->readonly)
		return -EROFS;
	rc = queue_store_begin_raw(store, NULL, write ? 0 : MDB_RDONLY, &mt);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	t = xcalloc(1, sizeof *t);
	t->store = store;
	t->txn = mt;
	t->write = write;
	*out = t;
	return 0;
}

int queue__txn_begin_child(struct queue_txn *parent, struct queue_txn **out)
{
	struct queue_txn *t;
	MDB_txn *mt;
	int rc;

	*out = NULL;
	if (!parent->write)
		return -EINVAL;
	rc = mdb_txn_begin(parent->store->env, parent->txn, 0, &mt);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	t = xcalloc(1, sizeof *t);
	t->store = parent->store;
	t->txn = mt;
	t->write = true;
	*out = t;
	return 0;
}

int queue_txn_commit(struct queue_txn *txn)
{
	int rc = mdb_txn_commit(txn->txn);

	free(txn);
	return queue__lmdb_err(rc);
}

void queue_txn_abort(struct queue_txn *txn)
{
	if (txn == NULL)
		return;
	mdb_txn_abort(txn->txn);
	free(txn);
}

int queue__need_write(const struct queue_txn *txn)
{
	return txn->write ? 0 : -EINVAL;
}

/* ---------------------------------------------------------------- ids */

int queue__note_id(struct queue_txn *txn, uint64_t id)
{
	MDB_val k = { sizeof QUEUE_META_LAST_ID - 1, (void *)QUEUE_META_LAST_ID };
	MDB_val v;
	uint8_t tmp[8];
	int rc;

	rc = mdb_get(txn->txn, txn->store->db_meta, &k, &v);
	if (rc == MDB_SUCCESS && v.mv_size == 8 &&
	    queue__be64_get(v.mv_data) >= id)
		return 0;
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return queue__lmdb_err(rc);
	queue__be64_put(tmp, id);
	v.mv_size = sizeof tmp;
	v.mv_data = tmp;
	return queue__lmdb_err(mdb_put(txn->txn, txn->store->db_meta, &k, &v, 0));
}

uint64_t queue_next_id(struct queue_store *store)
{
	struct timespec ts;
	uint64_t now_us, id;

	clock_gettime(CLOCK_REALTIME, &ts);
	now_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	/*
	 * Strictly increasing even when the clock steps back or two ids are
	 * asked for within one microsecond.
	 */
	id = now_us > store->last_id ? now_us : store->last_id + 1;
	store->last_id = id;
	return id;
}

/* ---------------------------------------------------------------- open */

static int queue_store_open_dbs(struct queue_store *s, MDB_txn *t)
{
	/*
	 * absent: 0 for the databases every schema-1 store has; for the
	 * tenancy ones (added later without a schema bump, schema.h) the
	 * QUEUE_ABSENT_* bit a read-only open sets when the store predates
	 * them, so that `govrelayctl` listings still work on such a store.
	 */
	static const struct {
		const char *name;
		size_t off;
		unsigned absent;
	} dbs[] = {
		{ QUEUE_DB_META, offsetof(struct queue_store, db_meta), 0 },
		{ QUEUE_DB_MESSAGES, offsetof(struct queue_store, db_messages), 0 },
		{ QUEUE_DB_BODIES, offsetof(struct queue_store, db_bodies), 0 },
		{ QUEUE_DB_SCHEDULE, offsetof(struct queue_store, db_schedule), 0 },
		{ QUEUE_DB_DOMAINS, offsetof(struct queue_store, db_domains), 0 },
		{ QUEUE_DB_AUDIT, offsetof(struct queue_store, db_audit), 0 },
		{ QUEUE_DB_TENANTS, offsetof(struct queue_store, db_tenants),
			QUEUE_ABSENT_TENANTS },
		{ QUEUE_DB_MAILBOXES, offsetof(struct queue_store, db_mailboxes),
			QUEUE_ABSENT_MAILBOXES },
		{ QUEUE_DB_USERS, offsetof(struct queue_store, db_users),
			QUEUE_ABSENT_USERS },
		{ QUEUE_DB_POLICIES, offsetof(struct queue_store, db_policies),
			QUEUE_ABSENT_POLICIES },
		{ QUEUE_DB_OPERATORS, offsetof(struct queue_store, db_operators),
			QUEUE_ABSENT_OPERATORS },
		{ QUEUE_DB_DKIM, offsetof(struct queue_store, db_dkim), QUEUE_ABSENT_DKIM },
		{ QUEUE_DB_QUARANTINE, offsetof(struct queue_store, db_quarantine),
			QUEUE_ABSENT_QUARANTINE },
	};
	_Static_assert(sizeof dbs / sizeof dbs[0] == QUEUE_DB_COUNT,
	    "QUEUE_DB_COUNT must match the databases opened");
	unsigned flags = s->readonly ? 0 : MDB_CREATE;
	int rc;

	s->absent = 0;
	for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++) {
		MDB_dbi *dbi = (MDB_dbi *)((char *)s + dbs[i].off);

		rc = mdb_dbi_open(t, dbs[i].name, flags, dbi);
		if (rc == MDB_NOTFOUND && s->readonly && dbs[i].absent != 0) {
			/*
			 * A read-only open cannot create it, and a store that
			 * never had it has no records in it: read as empty.
			 */
			s->absent |= dbs[i].absent;
			*dbi = 0;
			continue;
		}
		if (rc != MDB_SUCCESS)
			return queue__lmdb_err(rc);
	}
	return 0;
}

static int queue_store_check_version(struct queue_store *s, MDB_txn *t)
{
	MDB_val k = { sizeof QUEUE_META_SCHEMA_VERSION - 1,
		(void *)QUEUE_META_SCHEMA_VERSION };
	MDB_val v;
	uint8_t tmp[4];
	uint32_t ver;
	int rc;

	rc = mdb_get(t, s->db_meta, &k, &v);
	if (rc == MDB_NOTFOUND && !s->readonly) {
		/* First open: this process creates the store. */
		queue__be32_put(tmp, QUEUE_SCHEMA_VERSION);
		v.mv_size = sizeof tmp;
		v.mv_data = tmp;
		return queue__lmdb_err(mdb_put(t, s->db_meta, &k, &v, 0));
	}
	if (rc == MDB_NOTFOUND) {
		queue_open_err = -EBADMSG;
		snprintf(queue_open_why, sizeof queue_open_why,
		    "store has no schema version");
		return -EBADMSG;
	}
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	if (v.mv_size != 4) {
		queue_open_err = -EBADMSG;
		snprintf(queue_open_why, sizeof queue_open_why,
		    "store schema version does not decode");
		return -EBADMSG;
	}
	ver = queue__be32_get(v.mv_data);
	if (ver != QUEUE_SCHEMA_VERSION) {
		queue_open_err = -EINVAL;
		snprintf(queue_open_why, sizeof queue_open_why,
		    "store schema version %u, expected %u", ver,
		    QUEUE_SCHEMA_VERSION);
		return -EINVAL;
	}
	return 0;
}

/*
 * The greatest id the store has seen: meta last_id is written with every
 * message and chunk, and the last keys of messages and bodies cover a
 * store whose meta record was lost or predates it.
 */
static int queue_store_load_last_id(struct queue_store *s, MDB_txn *t)
{
	MDB_val k = { sizeof QUEUE_META_LAST_ID - 1, (void *)QUEUE_META_LAST_ID };
	MDB_val v;
	MDB_cursor *c;
	MDB_dbi dbs[2] = { s->db_messages, s->db_bodies };
	int rc;

	s->last_id = 0;
	rc = mdb_get(t, s->db_meta, &k, &v);
	if (rc == MDB_SUCCESS && v.mv_size == 8)
		s->last_id = queue__be64_get(v.mv_data);
	else if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return queue__lmdb_err(rc);
	for (size_t i = 0; i < 2; i++) {
		rc = mdb_cursor_open(t, dbs[i], &c);
		if (rc != MDB_SUCCESS)
			return queue__lmdb_err(rc);
		rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
		if (rc == MDB_SUCCESS && k.mv_size >= 8 &&
		    queue__be64_get(k.mv_data) > s->last_id)
			s->last_id = queue__be64_get(k.mv_data);
		mdb_cursor_close(c);
		if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
			return queue__lmdb_err(rc);
	}
	return 0;
}

static int queue_store_init(struct queue_store *s)
{
	MDB_txn *t;
	int rc;

	rc = queue_store_begin_raw(s, NULL, s->readonly ? MDB_RDONLY : 0, &t);
	if (rc != MDB_SUCCESS)
		return queue__lmdb_err(rc);
	if ((rc = queue_store_open_dbs(s, t)) < 0 ||
	    (rc = queue_store_check_version(s, t)) < 0 ||
	    (rc = queue_store_load_last_id(s, t)) < 0) {
		mdb_txn_abort(t);
		return rc;
	}
	/*
	 * Committed even when read-only: dbi handles opened in a txn that
	 * aborts are closed again, and we want them for the env's life.
	 */
	return queue__lmdb_err(mdb_txn_commit(t));
}

int queue_store_open(const char *dir, uint64_t map_size, bool readonly,
    struct queue_store **out)
{
	struct queue_store *s;
	unsigned flags;
	int rc, dead;

	*out = NULL;
	queue_open_err = 0;
	queue_open_why[0] = '\0';
	if (dir == NULL || dir[0] == '\0')
		return -EINVAL;
#if SIZE_MAX < UINT64_MAX
	if (map_size > SIZE_MAX)
		return -EINVAL;
#endif
	if (!readonly && mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;

	s = xcalloc(1, sizeof *s);
	s->readonly = readonly;
	rc = mdb_env_create(&s->env);
	if (rc != MDB_SUCCESS) {
		free(s);
		return queue__lmdb_err(rc);
	}
	rc = mdb_env_set_maxdbs(s->env, QUEUE_DB_COUNT);
	if (rc == MDB_SUCCESS && map_size > 0)
		rc = mdb_env_set_mapsize(s->env, (size_t)map_size);
	if (rc != MDB_SUCCESS) {
		rc = queue__lmdb_err(rc);
		goto fail;
	}
	/*
	 * MDB_NOTLS: read txns are not bound to the thread that began them,
	 * so the loop may hand a snapshot to a worker (DEPENDENCIES.md 6).
	 */
	flags = MDB_NOTLS | (readonly ? MDB_RDONLY : 0);
	rc = mdb_env_open(s->env, dir, flags, 0600);
	if (rc != MDB_SUCCESS) {
		rc = queue_store_open_err(rc);
		goto fail;
	}
	/* A process killed with a read txn open leaves its slot behind. */
	mdb_reader_check(s->env, &dead);
	if ((rc = queue_store_init(s)) < 0)
		goto fail;
	*out = s;
	return 0;

fail:
	mdb_env_close(s->env);
	free(s);
	return rc;
}

void queue_store_close(struct queue_store *store)
{
	if (store == NULL)
		return;
	mdb_env_close(store->env);
	free(store);
}
