/*
 * store_lmdb.c - the FAT store on an embedded LMDB environment (one server).
 *
 * One unnamed database in <data>/data.mdb.  Commits are durable (no NOSYNC
 * flags); write transactions are serial inside LMDB, so nothing here ever
 * conflicts and commit never asks for a rerun.  LMDB limits keys to
 * mdb_env_get_maxkeysize() bytes (511 in Debian's build): max_key says so
 * and the FAT logic bounds its keys accordingly.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "common.h"
#include "store.h"

struct lmdb_store {
	struct fat_store base;
	MDB_env *env;
	MDB_dbi dbi;
};

struct lmdb_txn {
	struct fat_txn base;
	MDB_txn *txn;
};

static int lmdb_err(int rc, const char *what)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_MAP_FULL:
		log_err("store: %s: LMDB map full", what);
		return -ENOSPC;
	case MDB_BAD_VALSIZE:
		return -EINVAL;
	default:
		log_err("store: %s: %s", what, mdb_strerror(rc));
		return rc > 0 ? -rc : -EIO;
	}
}

static struct lmdb_store *S(struct fat_store *s)
{
	return (struct lmdb_store *)s;
}
static struct lmdb_txn *T(struct fat_txn *t)
{
	return (struct lmdb_txn *)t;
}

static int lmdb_begin(struct fat_store *s, bool rdonly, struct fat_txn **out)
{
	struct lmdb_txn *t = calloc(1, sizeof(*t));
	int rc;

	if (!t)
		return -ENOMEM;
	rc = mdb_txn_begin(S(s)->env, NULL, rdonly ? MDB_RDONLY : 0, &t->txn);
	if (rc != MDB_SUCCESS) {
		free(t);
		return lmdb_err(rc, "txn begin");
	}
	t->base.store = s;
	t->base.rdonly = rdonly;
	*out = &t->base;
	return 0;
}

static int lmdb_get(struct fat_txn *t, const void *key, size_t klen, const void **val,
		    size_t *vlen)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key}, v;
	int rc = mdb_get(T(t)->txn, S(t->store)->dbi, &k, &v);

	if (rc != MDB_SUCCESS)
		return lmdb_err(rc, "get");
	*val = v.mv_data;
	*vlen = v.mv_size;
	return 0;
}

static int lmdb_put(struct fat_txn *t, const void *key, size_t klen, const void *val,
		    size_t vlen)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
	MDB_val v = {.mv_size = vlen, .mv_data = (void *)val};

	return lmdb_err(mdb_put(T(t)->txn, S(t->store)->dbi, &k, &v, 0), "put");
}

static int lmdb_del(struct fat_txn *t, const void *key, size_t klen)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key};

	return lmdb_err(mdb_del(T(t)->txn, S(t->store)->dbi, &k, NULL), "del");
}

static bool has_prefix(const MDB_val *k, const void *prefix, size_t plen)
{
	return k->mv_size >= plen && memcmp(k->mv_data, prefix, plen) == 0;
}

/* k sorts before every key that starts with prefix */
static bool before_prefix(const MDB_val *k, const void *prefix, size_t plen)
{
	int c = memcmp(k->mv_data, prefix, MIN(k->mv_size, plen));

	return c < 0 || (c == 0 && k->mv_size < plen);
}

static int lmdb_scan(struct fat_txn *t, const void *prefix, size_t plen, const void *after,
		     size_t alen, size_t limit, fat_scan_fn fn, void *arg, bool *more)
{
	MDB_cursor *cur;
	MDB_val k, v;
	size_t n = 0;
	int rc, op;

	rc = mdb_cursor_open(T(t)->txn, S(t->store)->dbi, &cur);
	if (rc != MDB_SUCCESS)
		return lmdb_err(rc, "cursor open");
	if (after && alen > 0) {
		k.mv_data = (void *)after;
		k.mv_size = alen;
	} else {
		k.mv_data = (void *)prefix;
		k.mv_size = plen;
	}
	if (k.mv_size == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	else
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	/* exclusive start: skip `after` itself */
	if (rc == MDB_SUCCESS && after && alen > 0 && k.mv_size == alen &&
	    memcmp(k.mv_data, after, alen) == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	/* an `after` sorting before the prefix: move up to the prefix */
	if (rc == MDB_SUCCESS && plen > 0 && !has_prefix(&k, prefix, plen) &&
	    before_prefix(&k, prefix, plen)) {
		k.mv_data = (void *)prefix;
		k.mv_size = plen;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	}
	op = MDB_NEXT;
	while (rc == MDB_SUCCESS && has_prefix(&k, prefix, plen)) {
		int r;

		if (limit > 0 && n == limit) {
			*more = true;
			break;
		}
		r = fn(k.mv_data, k.mv_size, v.mv_data, v.mv_size, arg);
		if (r < 0) {
			mdb_cursor_close(cur);
			return r;
		}
		if (r > 0) {
			rc = MDB_NOTFOUND;
			break;
		}
		n++;
		rc = mdb_cursor_get(cur, &k, &v, op);
	}
	mdb_cursor_close(cur);
	if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
		return lmdb_err(rc, "scan");
	return 0;
}

static int lmdb_commit(struct fat_txn *t)
{
	int rc = mdb_txn_commit(T(t)->txn);

	free(t);
	return lmdb_err(rc, "commit");
}

static void lmdb_abort(struct fat_txn *t)
{
	mdb_txn_abort(T(t)->txn);
	free(t);
}

static void lmdb_close(struct fat_store *s)
{
	mdb_env_close(S(s)->env);
	free(s);
}

static const struct fat_store_ops lmdb_ops = {
    .name = "lmdb",
    .begin = lmdb_begin,
    .get = lmdb_get,
    .put = lmdb_put,
    .del = lmdb_del,
    .scan = lmdb_scan,
    .commit = lmdb_commit,
    .abort = lmdb_abort,
    .close = lmdb_close,
};

int fat_store_open_lmdb(const char *dir, uint64_t map_size, struct fat_store **out)
{
	struct lmdb_store *s;
	MDB_txn *txn = NULL;
	int rc;

	*out = NULL;
	rc = mkdir_p(dir, 0700);
	if (rc < 0) {
		log_err("store: cannot create %s: %s", dir, strerror(-rc));
		return rc;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	rc = mdb_env_create(&s->env);
	if (rc != MDB_SUCCESS) {
		free(s);
		return lmdb_err(rc, "env create");
	}
	rc = mdb_env_set_mapsize(s->env, (size_t)map_size);
	if (rc == MDB_SUCCESS)
		rc = mdb_env_set_maxreaders(s->env, 126);
	if (rc == MDB_SUCCESS)
		rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600);
	if (rc == MDB_SUCCESS)
		rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc == MDB_SUCCESS)
		rc = mdb_dbi_open(txn, NULL, 0, &s->dbi);
	if (rc == MDB_SUCCESS) {
		rc = mdb_txn_commit(txn);
		txn = NULL;
	}
	if (rc != MDB_SUCCESS) {
		log_err("store: cannot open LMDB in %s: %s", dir, mdb_strerror(rc));
		if (txn)
			mdb_txn_abort(txn);
		mdb_env_close(s->env);
		free(s);
		return rc > 0 ? -rc : -EIO;
	}
	s->base.ops = &lmdb_ops;
	s->base.max_key = (size_t)mdb_env_get_maxkeysize(s->env);
	s->base.max_val = 64u << 20;
	*out = &s->base;
	return 0;
}
