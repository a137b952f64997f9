/*
 * fs.h - pstorefs, the FUSE client of one pstore volume: structs and
 * prototypes shared by its files, grouped by file.
 *
 *  main.c     options, config, daemonizing, the mount and the FUSE loop
 *  ops_ns.c   namespace handlers (lookup, mkdir, rename, readdir, setattr...)
 *  ops_file.c file handlers (create, open, read, write, release, fsync...)
 *  meta.c     the local LMDB store: inodes, dirents, chunk records, dirty
 *             marks, pending frees (the journal of what the FAT lacks)
 *  cache.c    cache files, slabs of small files, the table of in-use inodes
 *  flush.c    the flusher thread: uploads, final-FAT commits, barriers
 *  mirror.c   the one encoding of the FAT metadata mirror, and rebuild
 *  control.c  the mount's control socket (locate, sync, status)
 *  journal.c  the journal of a commit in doubt (crash safety)
 *  evict.c    the cache size cap: eviction of clean chunks
 *  lease.c    the volume writer lease of a read-write mount
 *  refresh.c  read-only mounts following the FAT; the state dir lock
 *  fsck.c     the check behind `pstore fsck`
 *  readahead.c background fetches of the small files after a cold read
 *
 * The network side (FAT calls, uploads, fetches) is src/alloc; this module
 * knows nothing of vendors beyond the ids in a chunk ref.
 */
#ifndef PSTORE_FS_H
#define PSTORE_FS_H

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <lmdb.h>

#include "alloc.h"

#define FS_ROOT_INO 1
#define FS_NAME_MAX 255
#define FS_SYMLINK_MAX 4095
#define FS_KEY_MAX (1 + 8 + FS_NAME_MAX) /* the longest mirror key (dirent) */

/* ---- configuration (main.c) ---- */

struct fs_config {
	char *config_file;
	char *volume;
	char *state_dir;
	char *cache_dir;
	char *log_file;
	char *fat; /* comma-separated */
	char *tls_ca, *tls_cert, *tls_key;
	char *tls_crl;	       /* [tls] crl: revoked certificates (NULL = none) */
	char *passphrase_file; /* the volume key's secret (docs/encryption.md) */
	char *key_file;
	uint32_t lease_ms;
	int zstd_level;
	unsigned upload_threads;
	unsigned pieces;
	int log_level;
	uint64_t batch_bytes;	     /* upload bytes per commit */
	unsigned batch_inodes;	     /* inodes with data per commit */
	unsigned sync_timeout_ms;    /* longest fsync/sync wait */
	bool writeback;		     /* ask for the kernel's writeback cache */
	uint64_t cache_max;	     /* bytes of chunk data the cache keeps (evict.c) */
	uint64_t dirty_max;	     /* bytes not yet uploaded before writers wait */
	uint32_t writer_lease_ms;    /* the volume writer lease (lease.c) */
	unsigned refresh_ms;	     /* read-only mounts: FAT mirror poll (refresh.c) */
	unsigned writeback_delay_ms; /* longest write-behind of new data (flush.c) */
	bool readonly;		     /* -o ro: a read-only view of the committed FAT */
};

/* ---- records (mirror.c encodes them; meta.c stores them) ---- */

struct fs_time {
	int64_t sec;
	uint32_t nsec;
};

struct fs_inode {
	uint64_t ino;
	uint32_t mode; /* type and permission bits */
	uint32_t uid, gid;
	uint32_t nlink;
	uint32_t rdev;
	uint64_t size;
	uint64_t parent; /* directories: the directory holding it */
	struct fs_time atime, mtime, ctime;
	uint16_t target_len; /* symlinks */
	char target[FS_SYMLINK_MAX + 1];
};

struct fs_dirent_val {
	uint64_t ino;
	uint32_t type; /* S_IFMT bits of the child */
};

/* A chunk of a file as the local store knows it. */
enum {
	FS_CHUNK_REF = 1u << 0,	    /* ref is a committed chunk */
	FS_CHUNK_PRESENT = 1u << 1, /* the cache file holds this chunk's data */
};
struct fs_chunk {
	uint32_t flags;
	struct alloc_chunk_ref ref;
};

/* ---- mirror.c: keys and values of the FAT's metadata mirror ---- */

enum { FS_KEY_INODE = 'i', FS_KEY_DIRENT = 'd', FS_KEY_CHUNK = 'c', FS_KEY_XATTR = 'x' };
#define FS_XATTR_NAME_MAX 255	/* XATTR_NAME_MAX */
#define FS_XATTR_SIZE_MAX 65536 /* XATTR_SIZE_MAX */

size_t mirror_key_inode(uint8_t *key, uint64_t ino);
size_t mirror_key_dirent(uint8_t *key, uint64_t parent, const char *name, size_t nlen);
size_t mirror_key_chunk(uint8_t *key, uint64_t ino, uint64_t idx);
size_t mirror_key_xattr(uint8_t *key, uint64_t ino, const char *name, size_t nlen);
/* Parses a key; returns its kind or -EINVAL.  name points into key. */
int mirror_key_parse(const uint8_t *key, size_t klen, uint64_t *a, uint64_t *b,
		     const char **name, size_t *nlen);

#define MIRROR_INODE_MAX (80 + FS_SYMLINK_MAX)
#define MIRROR_DIRENT_LEN 13
#define MIRROR_CHUNK_MAX (1 + CHUNK_ID_LEN + 8 + 4 + 1 + 4 * CHUNK_MAX_CHAIN + CHUNK_DIGEST_LEN)
size_t mirror_inode_encode(const struct fs_inode *in, uint8_t *out);
int mirror_inode_decode(const uint8_t *buf, size_t len, uint64_t ino, struct fs_inode *out);
size_t mirror_dirent_encode(const struct fs_dirent_val *d, uint8_t *out);
int mirror_dirent_decode(const uint8_t *buf, size_t len, struct fs_dirent_val *out);
size_t mirror_chunk_encode(const struct alloc_chunk_ref *r, uint8_t *out);
int mirror_chunk_decode(const uint8_t *buf, size_t len, struct alloc_chunk_ref *out);
/* xattr value: version byte + the value (out holds len + 1 bytes). */
size_t mirror_xattr_encode(const void *val, size_t len, uint8_t *out);
int mirror_xattr_decode(const uint8_t *buf, size_t len, const uint8_t **val, size_t *vlen);

/* ---- meta.c: the local store ---- */

struct fs_meta;
struct fs_txn {
	struct fs_meta *m;
	MDB_txn *txn;
	bool write;
};

/* A dirty mark: changes not yet in the FAT.  first_seq is the oldest change
 * the FAT lacks, last_seq the newest; uploading is set on a data mark while
 * the flusher uploads that chunk. */
struct fs_mark {
	uint64_t first_seq;
	uint64_t last_seq;
	uint64_t uploading;
};

int meta_open(const char *dir, struct fs_meta **out);
void meta_close(struct fs_meta *m);
/* true when the store has no root inode yet (fresh state dir). */
bool meta_is_empty(struct fs_meta *m);
uint64_t meta_seq_next(struct fs_meta *m);
/* true when commits are not synced (MDB_NOSYNC): a crash of the machine
 * drops the whole store at the next open, so nothing local needs a sync. */
bool meta_nosync(const struct fs_meta *m);

int meta_begin(struct fs_meta *m, bool write, struct fs_txn *t);
int meta_commit(struct fs_txn *t);
void meta_abort(struct fs_txn *t);

/* Settings kept in the store ("volume_id", "chunk_size", "next_ino"). */
int meta_get_u64(struct fs_txn *t, const char *name, uint64_t *v);
int meta_put_u64(struct fs_txn *t, const char *name, uint64_t v);
int meta_get_blob(struct fs_txn *t, const char *name, void *buf, size_t len);
int meta_put_blob(struct fs_txn *t, const char *name, const void *buf, size_t len);
int meta_alloc_ino(struct fs_txn *t, uint64_t *ino);

/* Inodes and dirents; the _put and _del calls also mark the mirror key dirty
 * (mark = false only for rebuild). */
int meta_inode_get(struct fs_txn *t, uint64_t ino, struct fs_inode *in);
int meta_inode_put(struct fs_txn *t, const struct fs_inode *in, bool mark);
int meta_dirent_get(struct fs_txn *t, uint64_t parent, const char *name,
		    struct fs_dirent_val *d);
int meta_dirent_put(struct fs_txn *t, uint64_t parent, const char *name,
		    const struct fs_dirent_val *d, bool mark);
int meta_dirent_del(struct fs_txn *t, uint64_t parent, const char *name);
/* 0 if the directory has no entry, -ENOTEMPTY otherwise. */
int meta_dir_empty(struct fs_txn *t, uint64_t dir);
typedef int (*meta_dirent_cb)(const char *name, size_t nlen, const struct fs_dirent_val *d,
			      void *arg);
int meta_dir_list(struct fs_txn *t, uint64_t dir, meta_dirent_cb cb, void *arg);

/* Extended attributes ('x' keys, mirrored like inodes).  get: -ENODATA if
 * absent; with buf and cap > 0, -ERANGE if cap is too small; *len is the
 * value's size.  del: -ENODATA if absent.  Purging an inode drops them. */
int meta_xattr_get(struct fs_txn *t, uint64_t ino, const char *name, void *buf, size_t cap,
		   size_t *len);
int meta_xattr_put(struct fs_txn *t, uint64_t ino, const char *name, const void *val,
		   size_t len, bool mark);
int meta_xattr_del(struct fs_txn *t, uint64_t ino, const char *name);
typedef int (*meta_xattr_cb)(const char *name, size_t nlen, size_t vlen, void *arg);
int meta_xattr_list(struct fs_txn *t, uint64_t ino, meta_xattr_cb cb, void *arg);
/* The stored (mirror-encoded) value of a namespace key, malloc'd. */
int meta_ns_raw(struct fs_txn *t, const uint8_t *key, size_t klen, uint8_t **val, size_t *vlen);

/* Chunk records (local flags + committed ref). */
int meta_chunk_get(struct fs_txn *t, uint64_t ino, uint64_t idx, struct fs_chunk *c);
/* mark_mirror: the committed ref changed, so the mirror key must follow. */
int meta_chunk_put(struct fs_txn *t, uint64_t ino, uint64_t idx, const struct fs_chunk *c,
		   bool mark_mirror);
/* Marks chunk data dirty (to be uploaded). */
int meta_chunk_dirty(struct fs_txn *t, uint64_t ino, uint64_t idx);
/* Drops every chunk with index >= from: committed refs go to the pending
 * frees, mirror keys are marked, data marks removed. */
int meta_chunks_drop(struct fs_txn *t, uint64_t ino, uint64_t from);
/* Drops chunk idx alone (a punched hole; meta_chunk_drop): its committed
 * ref goes to the pending frees, its data mark goes. */
int meta_chunk_drop(struct fs_txn *t, uint64_t ino, uint64_t idx);
/* Removes an inode and its chunks (nlink reached 0 and no one has it open). */
int meta_inode_purge(struct fs_txn *t, uint64_t ino);

/* Dirty marks.  db: FS_MARK_MIRROR (mirror keys), FS_MARK_DATA ('c' keys of
 * chunks to upload), FS_MARK_FREED (chunk ids to free). */
enum { FS_MARK_MIRROR, FS_MARK_DATA, FS_MARK_FREED, FS_MARK_N };
int meta_mark(struct fs_txn *t, int db, const uint8_t *key, size_t klen);
int meta_mark_get(struct fs_txn *t, int db, const uint8_t *key, size_t klen,
		  struct fs_mark *mk);
int meta_mark_set(struct fs_txn *t, int db, const uint8_t *key, size_t klen,
		  const struct fs_mark *mk);
int meta_mark_del(struct fs_txn *t, int db, const uint8_t *key, size_t klen);
/* Iterates the marks of db in key order from start (NULL: the beginning);
 * cb returns 0 to go on, 1 to stop, or -errno. */
typedef int (*meta_mark_cb)(const uint8_t *key, size_t klen, const struct fs_mark *mk,
			    void *arg);
int meta_mark_iter(struct fs_txn *t, int db, meta_mark_cb cb, void *arg);
/* Smallest first_seq over every mark (UINT64_MAX if none). */
int meta_marks_min_seq(struct fs_txn *t, uint64_t *min_seq, uint64_t *count);
/* After a restart: uploads in progress are dirty again; orphans (nlink 0)
 * purged, their inode numbers returned (malloc'd) for the cache files. */
int meta_recover(struct fs_meta *m, uint64_t **orphans, size_t *n_orphans);
/* Drops dirents whose inode or parent is missing (after a rebuild). */
int meta_dirents_check(struct fs_txn *t, uint64_t *dropped);
/* Iterates inodes (rebuild checks and recovery). */
typedef int (*meta_inode_cb)(const struct fs_inode *in, void *arg);
int meta_inode_iter(struct fs_txn *t, meta_inode_cb cb, void *arg);
/* Whole-store walks and upkeep (evict.c, fsck.c, refresh.c, flush.c). */
typedef int (*meta_chunk_cb)(uint64_t ino, uint64_t idx, const struct fs_chunk *c, void *arg);
int meta_chunk_iter(struct fs_txn *t, meta_chunk_cb cb, void *arg);
typedef int (*meta_raw_cb)(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
			   void *arg);
/* Every namespace key ('d', 'i', 'x') with its stored value, in key order. */
int meta_ns_iter(struct fs_txn *t, meta_raw_cb cb, void *arg);
int meta_mark_count(struct fs_txn *t, int db, uint64_t *n);
/* Empties namespace, chunks and marks (a read-only mount's refresh). */
int meta_clear_all(struct fs_txn *t);
int meta_clear_marks(struct fs_txn *t);
int meta_del_setting(struct fs_txn *t, const char *name);
/* A setting of any length, malloc'd into *buf. */
int meta_get_var(struct fs_txn *t, const char *name, void **buf, size_t *len);

/* ---- cache.c: cache files and in-use inodes ---- */

/* An inode in use: opened, or being read/written/truncated.  lock
 * serializes data changes of the inode (fetch into the cache, write,
 * truncate); it is always taken before an LMDB write transaction. */
struct fs_node {
	uint64_t ino;
	pthread_mutex_t lock;
	int fd;		      /* cache file or slab, -1 until needed; lock */
	bool slab;	      /* fd is a shared slab (never closed here); lock */
	uint64_t base;	      /* where byte 0 of the file is in fd; lock */
	unsigned refs;	      /* node table lock */
	unsigned opens;	      /* node table lock */
	unsigned writers;     /* node table lock */
	bool written;	      /* written since open; lock */
	struct fs_node *next; /* node table lock */
};

struct fs_cache;
int cache_open(const char *dir, struct fs_cache **out);
void cache_close(struct fs_cache *c);
/* Removes every cache file (a rebuilt state must not trust old data). */
int cache_wipe(struct fs_cache *c);
void cache_path(const struct fs_cache *c, uint64_t ino, char *buf, size_t len);
int cache_unlink(struct fs_cache *c, uint64_t ino);
/* The same for inodes ino..ino+n-1, all in one slab (one punch). */
int cache_unlink_run(struct fs_cache *c, uint64_t ino, uint64_t n);
/* Removes the cache data (slab slot, cache file) of every inode the store no
 * longer has: what a crash left of reap_queue; *n counts what went. */
int cache_reclaim(struct fs_cache *c, uint64_t *n);

struct fs_node *node_get(uint64_t ino);
void node_put(struct fs_node *n);
/* Opened/released counts (for orphans and for the flusher's policy). */
void node_open(struct fs_node *n, bool writer);
void node_release(struct fs_node *n, bool writer, unsigned *opens_left);
bool node_is_open(uint64_t ino);
bool node_has_writer(uint64_t ino);
/* Files up to CACHE_SLOT bytes keep their data in a slot of a shared slab
 * file (1 << CACHE_SLAB_SHIFT slots each); bigger ones in a file of their
 * own.  Every node_* call below wants n locked. */
#define CACHE_SLOT (UINT64_C(64) << 10)
#define CACHE_SLAB_SHIFT 16
#define CACHE_SLAB_MASK ((UINT64_C(1) << CACHE_SLAB_SHIFT) - 1)
/* Opens (once) where the node's data lives for a file of size bytes,
 * creating it if missing; returns the fd (>= 0) or -errno.  Data is read
 * and written with node_pread/node_pwrite only (a slot is at an offset). */
int node_fd(struct fs_node *n, uint64_t size);
/* Like node_fd but never creates nor resizes anything: -ENOENT when the
 * data is gone (the flusher). */
int node_locate(struct fs_node *n);
/* Makes room for size bytes (a file outgrowing its slot moves out). */
int node_room(struct fs_node *n, uint64_t size);
/* pread_full/pwrite_full at file offsets (node_pwrite makes room first). */
int node_pread(struct fs_node *n, void *buf, size_t len, uint64_t off);
int node_pwrite(struct fs_node *n, const void *buf, size_t len, uint64_t off);
/* A hole over [off, off + len) of the file's data. */
int node_punch(struct fs_node *n, uint64_t off, uint64_t len);
/* The cache data's new size (ftruncate; a slot is emptied beyond it). */
int node_resize(struct fs_node *n, uint64_t size);
int node_datasync(struct fs_node *n);

/* ---- flush.c ---- */

int flush_start(void);
void flush_stop(void);
/* A change to commit (a written file was closed, metadata changed): noted
 * for the flusher's write-behind (flush.c); does not block. */
void flush_kick(void);
/* Durability barrier: returns when every change made before the call is
 * committed to the FAT, -EIO if a flush round failed meanwhile, -ETIMEDOUT
 * after timeout_ms. */
int flush_barrier(unsigned timeout_ms);
/* Status for the control socket. */
struct flush_status {
	uint64_t rounds, commits, failures, bytes_uploaded, chunks_uploaded;
	uint64_t pending_marks;
	int last_error;
};
void flush_get_status(struct flush_status *st);

/* Writers call this before writing: blocks (bounded by sync_timeout_ms,
 * then -EIO) while the data not yet uploaded exceeds dirty_max. */
int flush_dirty_wait(void);
/* A write of `bytes` touched chunks first..last of ino (dirty accounting,
 * and which chunk a file open for writing is still filling). */
void flush_note_write(uint64_t ino, uint64_t first, uint64_t last, uint64_t bytes);

/* ---- journal.c: a commit in doubt ---- */
/* A chunk of a flush round once uploaded: what the commit records. */
struct journal_ent {
	uint64_t ino, idx;
	uint64_t last_seq; /* of its data mark when picked */
	uint32_t had_ref, lost;
	uint8_t old_id[CHUNK_ID_LEN];
	struct alloc_chunk_ref ref; /* the new chunk */
};
/* Saves the entries (those not lost) before the commit is sent. */
int journal_save(const struct journal_ent *ents, size_t n);
/* Records the outcome for one chunk in t (ok: the commit was applied). */
int journal_finish_one(struct fs_txn *t, const struct journal_ent *e, bool ok);
/* Settles a journaled commit left in doubt (crash, lost reply): asks the FAT
 * whether it was applied.  Called before every flush round. */
int journal_recover(void);

/* ---- evict.c: cache size cap ---- */
int evict_start(void);
void evict_stop(void);
/* Chunk idx of ino was used (LRU order); fetched: it just came into the cache. */
void evict_touch(uint64_t ino, uint64_t idx, uint64_t fetched_bytes);
/* Evicts every clean chunk (all = true) or down to the cap; counts what went. */
int evict_run(bool all, uint64_t *chunks, uint64_t *bytes);
/* Cached chunk bytes as of the last pass. */
uint64_t evict_cached_bytes(void);
/* The cache data of a purged inode goes in the background (the reaper
 * thread, started and stopped with eviction); cache_unlink at once when
 * the reaper is not running or its queue is full. */
void reap_queue(uint64_t ino);
/* true if ino was purged lately (a false answer tells nothing) */
bool reap_gone(uint64_t ino);

/* ---- readahead.c: cold reads of small files ---- */
int ra_start(void);
void ra_stop(void);
/* A read at offset 0 of a small file (ra_small): fetched tells whether it
 * had to fetch from the vendors; the next files by inode number are then
 * fetched in the background. */
void ra_note_read(uint64_t ino, bool fetched);
/* A file readahead would fetch: one chunk, at most 256 KiB. */
bool ra_small(uint64_t size);
/* Sequential readahead of a multi-chunk file: a read reached chunk idx;
 * the chunks after it, up to last, are fetched in the background. */
void ra_note_chunks(uint64_t ino, uint64_t idx, uint64_t last, bool stream);
/* Waits (bounded) while the readahead fetches one of chunks first..last. */
void ra_wait_chunks(uint64_t ino, uint64_t first, uint64_t last);
/* Verified chunks the readahead holds in memory, by chunk id (a committed
 * chunk never changes).  ra_slot_find takes a reference (or NULL),
 * ra_slot_put drops it; ra_slot_read copies bytes (zeros past the chunk's
 * raw length), ra_slot_data points at them (NULL if they pass it). */
struct ra_slot;
struct ra_slot *ra_slot_find(const uint8_t id[CHUNK_ID_LEN]);
void ra_slot_read(const struct ra_slot *s, void *out, uint64_t off, size_t len);
const uint8_t *ra_slot_data(const struct ra_slot *s, uint64_t off, size_t len);
void ra_slot_put(struct ra_slot *s);
/* A slot for chunk id: the one holding it (*fresh false), or a free one to
 * fetch into (*fresh true; ra_slot_buf, then ra_slot_filled), or NULL. */
struct ra_slot *ra_slot_claim(const uint8_t id[CHUNK_ID_LEN], uint64_t raw_len, bool *fresh);
uint8_t *ra_slot_buf(struct ra_slot *s);
void ra_slot_filled(struct ra_slot *s, bool ok);
/* At most RA_INSTALLS stream installs into the cache file at a time. */
bool ra_install_begin(void);
void ra_install_end(void);
/* The prefetch of chunk idx of ino has its data: readers stop waiting. */
void ra_chunk_fetched(uint64_t ino, uint64_t idx);
/* Forgets every held chunk (pstore cache drop: a cold read is cold). */
void ra_slots_drop(void);
/* The FUSE handshake was answered (op_init): the mount's kernel readahead
 * window can be set. */
void ra_note_init(void);

/* ---- lease.c: the volume writer lease ---- */
/* Takes the writer lease (read-write mounts) and keeps renewing it. */
int lease_start(void);
/* Stops renewing and gives the lease back (after the last commit). */
void lease_stop(void);

/* ---- refresh.c: read-only mounts ---- */
/* Read-only mounts: forget the local state so that it is rebuilt from the
 * FAT; read-write mounts of a state dir a read-only mount used: the same. */
int refresh_prepare_state(void);
int refresh_start(void);
void refresh_stop(void);

/* ---- fsck.c ---- */
struct json_object;
/* Checks the FAT mirror, the FAT chunk table and the local state; fills a
 * JSON reply (ok, errors[], warnings[], counts). */
struct json_object *fsck_run(bool sync_first);

/* ---- repair.c ---- */
/* Remembers a chunk just committed (for repair_dead_vendors). */
void repair_note(uint64_t ino, uint64_t idx, const struct alloc_chunk_ref *ref);
/* Marks dirty again the recently committed chunks that have a vendor the FAT
 * reports dead, so that the flusher stores them on live vendors. */
int repair_dead_vendors(void);

/* ---- mirror.c: rebuild ---- */
int mirror_rebuild(void);

/* ---- mirror.c: an in-memory list of mirror (key, value) pairs ----
 * Owned copies, for comparing the FAT mirror with the local state (fsck.c,
 * refresh.c).  A zeroed struct mirror_kvs is an empty list. */
struct mirror_kv {
	uint8_t *key, *val;
	size_t klen, vlen;
};
struct mirror_kvs {
	struct mirror_kv *v;
	size_t n, cap;
};
int mirror_kvs_add(struct mirror_kvs *s, const uint8_t *key, size_t klen, const uint8_t *val,
		   size_t vlen);
/* A meta_raw_cb / alloc_meta_cb: arg is the struct mirror_kvs to add to. */
int mirror_kvs_add_cb(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
		      void *arg);
/* Sorts by key (memcmp order, shorter first); mirror_kvs_find needs it. */
void mirror_kvs_sort(struct mirror_kvs *s);
const struct mirror_kv *mirror_kvs_find(const struct mirror_kvs *s, const uint8_t *key,
					size_t klen);
/* Frees the entries and leaves s empty. */
void mirror_kvs_free(struct mirror_kvs *s);

/* ---- control.c ---- */
int control_start(const char *mountpoint);
void control_stop(void);

/* ---- ops_*.c ---- */
struct fuse_lowlevel_ops;
void ops_fill(struct fuse_lowlevel_ops *ops);
/* Reads (fetching absent chunks) and writes through the cache (ops_file.c);
 * shared with truncate in ops_ns.c. */
int fs_truncate(uint64_t ino, uint64_t size);
int fs_fetch_chunk(struct fs_node *n, const struct fs_inode *in, uint64_t idx);
/* The local inode record of ino, in a read transaction of its own. */
int fs_get_inode(uint64_t ino, struct fs_inode *in);
/* Fetches chunk idx of ino without the node lock held during the transfer
 * (sequential readahead); 0 also when there was nothing to fetch. */
int fs_prefetch_chunk(uint64_t ino, uint64_t idx, bool stream);
void fs_time_now(struct fs_time *t);

/* ---- global state (main.c) ---- */
struct fs_state {
	struct fs_config cfg;
	struct fs_meta *meta;
	struct fs_cache *cache;
	struct alloc_ctx *alloc;
	struct alloc_volume vol;
	uint32_t chunk_size;
	char mountpoint[4096];
	void *se; /* the fuse_session (refresh.c invalidates kernel caches) */
};
extern struct fs_state fs;

#endif
