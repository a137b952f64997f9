/*
 * store.c - the backend-independent half of the FAT store: argument checks,
 * dispatch to the backend's vtable, and fat_store_run(), the retry loop an
 * optimistic backend (etcd) needs.  Backends live in store_<name>.c.
 */
#include <errno.h>
#include <stddef.h>

#include "common.h"
#include "store.h"

/* An etcd txn that keeps losing the race is retried this often, then the
 * operation fails with -EAGAIN (the client retries later). */
#define FAT_STORE_MAX_RUNS 16

void fat_store_close(struct fat_store *s)
{
	if (s)
		s->ops->close(s);
}

int fat_txn_begin(struct fat_store *s, bool rdonly, struct fat_txn **out)
{
	*out = NULL;
	return s->ops->begin(s, rdonly, out);
}

static int check_key(const struct fat_txn *t, size_t klen)
{
	if (klen == 0 || klen > t->store->max_key)
		return -EINVAL;
	return 0;
}

int fat_txn_get(struct fat_txn *t, const void *key, size_t klen, const void **val, size_t *vlen)
{
	int rc = check_key(t, klen);

	if (rc < 0)
		return rc == -EINVAL ? -ENOENT : rc; /* a key too long cannot exist */
	return t->store->ops->get(t, key, klen, val, vlen);
}

int fat_txn_put(struct fat_txn *t, const void *key, size_t klen, const void *val, size_t vlen)
{
	int rc = check_key(t, klen);

	if (rc < 0)
		return rc;
	if (t->rdonly)
		return -EROFS;
	if (vlen > t->store->max_val)
		return -EINVAL;
	return t->store->ops->put(t, key, klen, val, vlen);
}

int fat_txn_del(struct fat_txn *t, const void *key, size_t klen)
{
	int rc = check_key(t, klen);

	if (rc < 0)
		return rc == -EINVAL ? -ENOENT : rc;
	if (t->rdonly)
		return -EROFS;
	return t->store->ops->del(t, key, klen);
}

int fat_txn_scan(struct fat_txn *t, const void *prefix, size_t plen, const void *after,
		 size_t alen, size_t limit, fat_scan_fn fn, void *arg, bool *more)
{
	bool dummy;

	if (!more)
		more = &dummy;
	*more = false;
	if (plen > t->store->max_key || alen > t->store->max_key)
		return -EINVAL;
	return t->store->ops->scan(t, prefix, plen, after, alen, limit, fn, arg, more);
}

int fat_txn_commit(struct fat_txn *t)
{
	return t->store->ops->commit(t);
}

void fat_txn_abort(struct fat_txn *t)
{
	if (t)
		t->store->ops->abort(t);
}

int fat_store_run(struct fat_store *s, bool rdonly, fat_txn_fn fn, void *arg)
{
	int rc = -EAGAIN;

	for (int run = 0; run < FAT_STORE_MAX_RUNS && rc == -EAGAIN; run++) {
		struct fat_txn *t;

		rc = fat_txn_begin(s, rdonly, &t);
		if (rc < 0)
			return rc;
		rc = fn(t, arg);
		if (rc < 0) {
			fat_txn_abort(t);
			continue;
		}
		if (rdonly) {
			fat_txn_abort(t);
			return rc;
		}
		rc = fat_txn_commit(t);
	}
	if (rc == -EAGAIN)
		log_warn("store: transaction kept conflicting, giving up after %d runs",
			 FAT_STORE_MAX_RUNS);
	return rc;
}
