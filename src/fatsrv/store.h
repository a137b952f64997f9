/*
 * store.h - the FAT store: a transactional, ordered key-value store behind
 * one small interface, so that the FAT logic (vendors.c, volumes.c, leases.c,
 * commit.c, gc.c) never knows which backend keeps its records.
 *
 * Backends:
 *  - LMDB (store_lmdb.c): one environment in the daemon's data directory.
 *    Write transactions are serial and every commit is durable (fsynced), so
 *    a transaction never conflicts and commit never returns -EAGAIN.
 *  - etcd (the cluster issue): a transaction records the mod_revision of
 *    every key it reads (and the range of every scan), buffers its puts and
 *    deletes, and commits them as one etcd txn guarded by compare-and-swap on
 *    what it read.  When another FAT server changed any of it, commit returns
 *    -EAGAIN and fat_store_run() runs the whole operation again on fresh
 *    data.  That is why FAT logic must read through the transaction (never
 *    cache records across transactions) and why the callback given to
 *    fat_store_run() must be re-runnable.
 *
 * A transaction sees its own writes (gets and scans after a put or del in
 * the same transaction reflect it); the etcd backend must overlay its
 * buffered writes on what it reads.
 *
 * Keys and values are byte strings; keys sort bytewise (memcmp, shorter
 * first on a tie).  Every function returns 0 or a negative errno:
 * -ENOENT (no such key), -ENOSPC (store full), -EINVAL (key or value too
 * long for the backend), -EROFS (write in a read-only transaction),
 * -EAGAIN (commit conflict: run again), -EIO (anything else, logged).
 */
#ifndef PSTORE_FATSRV_STORE_H
#define PSTORE_FATSRV_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fat_store;
struct fat_txn;

/* Called for each key of a scan.  key/val are valid during the call only.
 * Return 0 to go on, > 0 to stop (scan returns 0), < 0 to fail the scan
 * (scan returns that value).  The callback must not write to the txn. */
typedef int (*fat_scan_fn)(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
			   void *arg);

/* A backend: the vtable each one fills.  See the functions below. */
struct fat_store_ops {
	const char *name;
	int (*begin)(struct fat_store *s, bool rdonly, struct fat_txn **out);
	int (*get)(struct fat_txn *t, const void *key, size_t klen, const void **val,
		   size_t *vlen);
	int (*put)(struct fat_txn *t, const void *key, size_t klen, const void *val,
		   size_t vlen);
	int (*del)(struct fat_txn *t, const void *key, size_t klen);
	int (*scan)(struct fat_txn *t, const void *prefix, size_t plen, const void *after,
		    size_t alen, size_t limit, fat_scan_fn fn, void *arg, bool *more);
	int (*commit)(struct fat_txn *t);
	void (*abort)(struct fat_txn *t);
	void (*close)(struct fat_store *s);
};

/* Every backend's store and txn structs start with these. */
struct fat_store {
	const struct fat_store_ops *ops;
	size_t max_key; /* longest key the backend takes */
	size_t max_val; /* longest value */
};

struct fat_txn {
	struct fat_store *store;
	bool rdonly;
};

/* ---- backends ---- */

/* Opens (creating dir and files if needed) an LMDB environment in dir with a
 * map of map_size bytes (virtual; the file grows as needed). */
int fat_store_open_lmdb(const char *dir, uint64_t map_size, struct fat_store **out);

/* ---- operations (store.c dispatches to the backend) ---- */

void fat_store_close(struct fat_store *s);

/* Starts a transaction.  Only one read-write transaction may be open at a
 * time per store (the daemon runs every FAT change on its loop thread). */
int fat_txn_begin(struct fat_store *s, bool rdonly, struct fat_txn **out);

/* Looks key up.  *val points into the backend's memory and stays valid until
 * the next put/del in this txn or its end: decode it at once. */
int fat_txn_get(struct fat_txn *t, const void *key, size_t klen, const void **val,
		size_t *vlen);
/* Inserts or replaces. */
int fat_txn_put(struct fat_txn *t, const void *key, size_t klen, const void *val, size_t vlen);
/* Removes key; -ENOENT if it was absent. */
int fat_txn_del(struct fat_txn *t, const void *key, size_t klen);
/* Calls fn, in key order, for at most limit keys (0 = no limit) that start
 * with prefix and sort after `after` (exclusive; NULL/0 = from the start of
 * the prefix; `after` is a full key, prefix included).  *more (may be NULL)
 * tells whether keys with the prefix remain after the last one given (false
 * when fn stopped the scan). */
int fat_txn_scan(struct fat_txn *t, const void *prefix, size_t plen, const void *after,
		 size_t alen, size_t limit, fat_scan_fn fn, void *arg, bool *more);
/* Makes the changes durable and ends the txn (also on failure). */
int fat_txn_commit(struct fat_txn *t);
/* Drops the changes and ends the txn.  NULL is fine. */
void fat_txn_abort(struct fat_txn *t);

/* Runs fn(txn, arg) in a transaction and commits it when fn returns 0
 * (read-only transactions are just ended).  A -EAGAIN from fn or from commit
 * runs fn again on a fresh transaction, up to a bound; any other error aborts
 * and is returned.  fn must therefore reset whatever it wrote to arg. */
typedef int (*fat_txn_fn)(struct fat_txn *t, void *arg);
int fat_store_run(struct fat_store *s, bool rdonly, fat_txn_fn fn, void *arg);

#endif
