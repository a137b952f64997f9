/*
 * flush.c - the flusher: one thread that turns the local journal (dirty
 * marks in meta.c) into FAT commits.
 *
 * A round:
 *  1. one LMDB write transaction picks the work: chunks to upload (up to
 *     batch_bytes / batch_inodes; a file still open for writing gives only
 *     its full chunks unless a barrier waits), mirror keys to re-send and
 *     chunk ids to free; the chosen data marks are flagged "uploading";
 *  2. the chunks are read from the cache files and uploaded in one alloc
 *     session (alloc uploads them in parallel);
 *  3. one alloc_commit carries the final FAT of the session, the freed ids
 *     (including the committed chunks the uploads replace) and the mirror
 *     operations for every changed key;
 *  4. on success one LMDB transaction switches the chunk records to the new
 *     refs and clears every mark that did not change since step 1 (changes
 *     made meanwhile keep their marks and go with the next round).
 * A failed round changes nothing locally (uploaded chunks become garbage the
 * FAT collects) and is retried with exponential backoff; barriers waiting at
 * that time get EIO.
 *
 * When (write-behind, like the kernel's own writeback of dirty pages):
 *  - at once when an fsync/sync barrier waits, or writers wait under
 *    dirty_max (those rounds take everything, partial chunks included);
 *  - a chunk a sequential writer went past (complete, 4 MiB by default) is
 *    uploaded right away, on its own ("eager" round): big writes stream;
 *  - everything else (small files, partial chunks, namespace changes,
 *    freed chunks) waits until changes pause for QUIET_MS, or the oldest
 *    unflushed change is writeback_delay_ms old, or the data not yet
 *    uploaded passes half the dirty limit.
 * So a burst of small-file creation (untar, a checkout, a build) is not
 * slowed by its own uploads competing for CPU; its uploads run when the
 * burst pauses.  Nothing of the durability contract depends on this: what
 * fsync acknowledged is on the vendors and the FAT; what was not fsynced is
 * in the local cache and journal, which survive a crash of pstorefs.
 *
 * Only this thread commits, so rounds never overlap.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "fs.h"

#define MAX_MIRROR_OPS 8192
#define MAX_FREED 8192
#define MAX_UPLOAD_CHUNKS 4096
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define IDLE_MS 1000
#define QUIET_MS 1000 /* changes paused this long: upload what they left */
#define RECHECK_MIN_MS 10

static pthread_t flush_thread;
static bool flush_running;
static pthread_mutex_t flush_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t flush_cond;      /* wakes the flusher */
static pthread_cond_t flush_done_cond; /* a round ended */
static bool flush_stopping;	       /* flush_lock */
static bool flush_kicked;	       /* flush_lock */
static unsigned barrier_waiters;       /* flush_lock */
static uint64_t rounds_done;	       /* flush_lock */
static uint64_t last_failed_round;     /* flush_lock */
static struct flush_status status;     /* flush_lock */

/* Write-behind state (see the top comment).  Atomic: writers and namespace
 * handlers update them without flush_lock. */
static _Atomic uint64_t last_change_ms;	  /* newest change to commit */
static _Atomic uint64_t pending_since_ms; /* oldest change not yet picked (0: none) */
static _Atomic bool eager_ready;	  /* a sequential writer completed a chunk */

/* One chunk picked for upload. */
struct up {
	uint64_t ino, idx;
	uint64_t len;
	uint64_t last_seq; /* of its data mark at pick time */
	bool had_ref;
	struct alloc_chunk_ref old;
	bool lost; /* its cache data is gone */
	uint8_t *data;
};

/* One mirror key picked for re-sending. */
struct mop {
	uint8_t key[FS_KEY_MAX];
	size_t klen;
	uint8_t *val; /* NULL: delete */
	size_t vlen;
	uint64_t last_seq;
	bool covered_by_upload; /* a 'c' key whose new ref an upload provides */
};

struct round {
	bool urgent;
	bool eager;		  /* only chunks sequential writers completed */
	bool pressure;		  /* writers wait for dirty data to go down */
	struct journal_ent *ents; /* n_ups, filled after the uploads */
	bool ents_ready;
	struct up *ups;
	size_t n_ups, cap_ups;
	uint64_t up_bytes;
	unsigned up_inodes;
	uint64_t last_ino;
	struct fs_inode *in; /* scratch */
	bool in_valid;
	struct mop *mops;
	size_t n_mops;
	uint8_t (*freed)[CHUNK_ID_LEN];
	size_t n_freed;
	struct fs_txn *t;
	/* data marks to delete (inode gone, chunk beyond EOF) */
	uint8_t (*stale)[17];
	size_t n_stale, cap_stale;
	bool more; /* a limit cut the round short */
};

/* ---- dirty data accounting (writers wait above the limit) ---- */

/* Bytes of data not yet uploaded: recounted from the journal after every
 * round, plus what was written since (an overestimate for rewrites, which
 * the next recount corrects). */
static _Atomic uint64_t dirty_bytes;
static pthread_cond_t dirty_cond; /* flush_lock; dirty_bytes went down */
static unsigned dirty_waiters;	  /* flush_lock */

/* The furthest chunk each file open for writing was written at: a
 * sequential writer's chunks below it are complete.  A small direct-mapped table; a
 * collision only makes the flusher wait for the close of one file. */
#define LASTW_SLOTS 4096
static pthread_mutex_t lastw_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint64_t ino, idx;
} lastw[LASTW_SLOTS]; /* lastw_lock */

static uint64_t dirty_limit(void)
{
	uint64_t lim = fs.cfg.dirty_max ? fs.cfg.dirty_max : UINT64_MAX;

	/* dirty data cannot be evicted: keep room for clean chunks */
	if (fs.cfg.cache_max && fs.cfg.cache_max / 2 < lim)
		lim = fs.cfg.cache_max / 2;
	return MAX(lim, 2 * (uint64_t)fs.chunk_size);
}

/* Above this, uploads start without waiting for writes to pause. */
static uint64_t background_limit(void)
{
	return dirty_limit() / 2;
}

static void note_change(void)
{
	uint64_t now = now_ms(), zero = 0;

	atomic_store(&last_change_ms, now);
	atomic_compare_exchange_strong(&pending_since_ms, &zero, now);
}

static void flush_wake(void);

static bool last_written(uint64_t ino, uint64_t *idx)
{
	bool found;

	pthread_mutex_lock(&lastw_lock);
	found = lastw[ino % LASTW_SLOTS].ino == ino;
	*idx = lastw[ino % LASTW_SLOTS].idx;
	pthread_mutex_unlock(&lastw_lock);
	return found;
}

void flush_note_write(uint64_t ino, uint64_t first, uint64_t last, uint64_t bytes)
{
	bool completed;
	uint64_t before, prev;

	pthread_mutex_lock(&lastw_lock);
	/* The furthest chunk written: a write reaching past it from close by
	 * (the kernel's writeback and concurrent FUSE threads may reorder a
	 * sequential writer's requests a little) completes the chunks below.
	 * A random writer's far jumps do not count: its chunks would be dirtied
	 * again, and once it has touched the end of its file nothing does. */
	if (lastw[ino % LASTW_SLOTS].ino == ino) {
		prev = lastw[ino % LASTW_SLOTS].idx;
		completed = last > prev && first <= prev + 2;
		/* a writer starting over at the beginning (a rewrite) */
		lastw[ino % LASTW_SLOTS].idx =
		    first == 0 && last < prev ? last : MAX(prev, last);
	} else {
		completed = false;
		lastw[ino % LASTW_SLOTS].ino = ino;
		lastw[ino % LASTW_SLOTS].idx = last;
	}
	pthread_mutex_unlock(&lastw_lock);
	before = atomic_fetch_add(&dirty_bytes, bytes);
	note_change();
	/* wake the flusher only for what it must not wait for */
	if ((completed && !atomic_exchange(&eager_ready, true)) ||
	    (before < background_limit() && before + bytes >= background_limit()))
		flush_wake();
}

struct recount {
	struct fs_txn *t;
	struct fs_inode *in;
	uint64_t last_ino;
	bool in_valid;
	uint64_t bytes;
};

static int recount_cb(const uint8_t *key, size_t klen, const struct fs_mark *mk, void *arg)
{
	struct recount *rc = arg;
	uint64_t ino, idx, start;
	const char *nm;
	size_t nl;

	(void)mk;
	if (mirror_key_parse(key, klen, &ino, &idx, &nm, &nl) != FS_KEY_CHUNK)
		return 0;
	if (ino != rc->last_ino || !rc->in) {
		rc->last_ino = ino;
		rc->in_valid = meta_inode_get(rc->t, ino, rc->in) == 0;
	}
	if (!rc->in_valid)
		return 0;
	start = idx * fs.chunk_size;
	if (start < rc->in->size)
		rc->bytes += MIN((uint64_t)fs.chunk_size, rc->in->size - start);
	return 0;
}

/* Recounts dirty_bytes from the journal and wakes writers below the limit. */
static void dirty_recount(void)
{
	struct recount rc = {.last_ino = UINT64_MAX};
	struct fs_txn t;

	rc.in = malloc(sizeof(*rc.in));
	if (!rc.in)
		return;
	rc.t = &t;
	if (meta_begin(fs.meta, false, &t) == 0) {
		if (meta_mark_iter(&t, FS_MARK_DATA, recount_cb, &rc) == 0)
			atomic_store(&dirty_bytes, rc.bytes);
		meta_abort(&t);
	}
	free(rc.in);
	pthread_mutex_lock(&flush_lock);
	pthread_cond_broadcast(&dirty_cond);
	pthread_mutex_unlock(&flush_lock);
}

static int round_add_stale(struct round *r, const uint8_t *key)
{
	if (r->n_stale == r->cap_stale) {
		size_t cap = r->cap_stale ? 2 * r->cap_stale : 64;
		void *p = realloc(r->stale, cap * 17);

		if (!p)
			return -ENOMEM;
		r->stale = p;
		r->cap_stale = cap;
	}
	memcpy(r->stale[r->n_stale++], key, 17);
	return 0;
}

static int pick_data_cb(const uint8_t *key, size_t klen, const struct fs_mark *mk, void *arg)
{
	struct round *r = arg;
	uint64_t ino, idx, len, start;
	const char *nm;
	size_t nl;
	struct fs_chunk c;
	struct up *u;
	int rc;

	if (mirror_key_parse(key, klen, &ino, &idx, &nm, &nl) != FS_KEY_CHUNK)
		return round_add_stale(r, key);
	if (ino != r->last_ino) {
		r->last_ino = ino;
		rc = meta_inode_get(r->t, ino, r->in);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		r->in_valid = rc == 0;
	}
	if (!r->in_valid)
		return round_add_stale(r, key);
	start = idx * fs.chunk_size;
	if (start >= r->in->size)
		return round_add_stale(r, key);
	len = MIN((uint64_t)fs.chunk_size, r->in->size - start);
	if (!r->urgent && node_has_writer(ino)) {
		/* A file still being written: upload a chunk once, when complete
		 * (the writer went past it), not every round while it fills. */
		uint64_t cur;
		bool known = last_written(ino, &cur);

		/* one chunk of slack behind the furthest: the kernel's writeback
		 * may still be filling it (reordered requests) */
		if (!r->pressure && (len < fs.chunk_size || !known || idx + 1 >= cur))
			return 0;
		if (r->pressure && known && idx == cur)
			return 0; /* the chunk being filled, even under pressure */
	} else if (r->eager && !r->pressure) {
		return 0; /* waits for the writes to pause (write-behind) */
	}
	if (r->n_ups >= MAX_UPLOAD_CHUNKS ||
	    (r->n_ups && r->up_bytes + len > fs.cfg.batch_bytes)) {
		r->more = true;
		return 1;
	}
	if (r->n_ups == 0 || r->ups[r->n_ups - 1].ino != ino) {
		if (r->up_inodes >= fs.cfg.batch_inodes) {
			r->more = true;
			return 1;
		}
		r->up_inodes++;
	}
	if (r->n_ups == r->cap_ups) {
		size_t cap = r->cap_ups ? 2 * r->cap_ups : 64;
		struct up *p = realloc(r->ups, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		r->ups = p;
		r->cap_ups = cap;
	}
	u = &r->ups[r->n_ups];
	memset(u, 0, sizeof(*u));
	u->ino = ino;
	u->idx = idx;
	u->len = len;
	u->last_seq = mk->last_seq;
	rc = meta_chunk_get(r->t, ino, idx, &c);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	if (rc == 0 && (c.flags & FS_CHUNK_REF)) {
		u->had_ref = true;
		u->old = c.ref;
	}
	r->n_ups++;
	r->up_bytes += len;
	return 0;
}

/* The current value of a mirror key, from the local store. */
static int mirror_value(struct fs_txn *t, struct mop *op)
{
	uint64_t a, b;
	const char *name;
	size_t nlen;
	int kind = mirror_key_parse(op->key, op->klen, &a, &b, &name, &nlen), rc;

	op->val = NULL;
	op->vlen = 0;
	if (kind == FS_KEY_INODE) {
		struct fs_inode *in = malloc(sizeof(*in));

		if (!in)
			return -ENOMEM;
		rc = meta_inode_get(t, a, in);
		if (rc == 0) {
			op->val = malloc(MIRROR_INODE_MAX);
			if (op->val)
				op->vlen = mirror_inode_encode(in, op->val);
			else
				rc = -ENOMEM;
		}
		free(in);
	} else if (kind == FS_KEY_DIRENT) {
		char nm[FS_NAME_MAX + 1];
		struct fs_dirent_val d;

		memcpy(nm, name, nlen);
		nm[nlen] = '\0';
		rc = meta_dirent_get(t, a, nm, &d);
		if (rc == 0) {
			op->val = malloc(MIRROR_DIRENT_LEN);
			if (op->val)
				op->vlen = mirror_dirent_encode(&d, op->val);
			else
				rc = -ENOMEM;
		}
	} else if (kind == FS_KEY_CHUNK) {
		struct fs_chunk c;

		rc = meta_chunk_get(t, a, b, &c);
		if (rc == 0 && !(c.flags & FS_CHUNK_REF))
			rc = -ENOENT;
		if (rc == 0) {
			op->val = malloc(MIRROR_CHUNK_MAX);
			if (op->val)
				op->vlen = mirror_chunk_encode(&c.ref, op->val);
			else
				rc = -ENOMEM;
		}
	} else if (kind == FS_KEY_XATTR) {
		rc = meta_ns_raw(t, op->key, op->klen, &op->val, &op->vlen);
	} else {
		return -EINVAL;
	}
	return rc == -ENOENT ? 0 : rc;
}

/* An eager round mirrors only the 'c' keys of the chunks it uploads. */
static bool eager_key(const struct round *r, const uint8_t *key, size_t klen)
{
	uint64_t ino, idx;
	const char *nm;
	size_t nl;

	if (mirror_key_parse(key, klen, &ino, &idx, &nm, &nl) != FS_KEY_CHUNK)
		return false;
	for (size_t i = 0; i < r->n_ups; i++)
		if (r->ups[i].ino == ino && r->ups[i].idx == idx)
			return true;
	return false;
}

static int pick_mirror_cb(const uint8_t *key, size_t klen, const struct fs_mark *mk, void *arg)
{
	struct round *r = arg;
	struct mop *op;
	int rc;

	if (r->n_mops >= MAX_MIRROR_OPS) {
		r->more = true;
		return 1;
	}
	if (klen > FS_KEY_MAX)
		return 0;
	if (r->eager && !eager_key(r, key, klen))
		return 0;
	op = &r->mops[r->n_mops];
	memset(op, 0, sizeof(*op));
	memcpy(op->key, key, klen);
	op->klen = klen;
	op->last_seq = mk->last_seq;
	rc = mirror_value(r->t, op);
	if (rc == -EINVAL) {
		log_warn("flush: ignoring a mark on a malformed key");
		return 0;
	}
	if (rc < 0)
		return rc;
	r->n_mops++;
	return 0;
}

static int pick_freed_cb(const uint8_t *key, size_t klen, const struct fs_mark *mk, void *arg)
{
	struct round *r = arg;

	(void)mk;
	if (r->n_freed >= MAX_FREED) {
		r->more = true;
		return 1;
	}
	if (klen != CHUNK_ID_LEN)
		return 0;
	memcpy(r->freed[r->n_freed++], key, CHUNK_ID_LEN);
	return 0;
}

static void round_free(struct round *r)
{
	for (size_t i = 0; i < r->n_ups; i++)
		free(r->ups[i].data);
	for (size_t i = 0; i < r->n_mops; i++)
		free(r->mops[i].val);
	free(r->ups);
	free(r->mops);
	free(r->freed);
	free(r->stale);
	free(r->in);
	free(r->ents);
}

/* Step 1. */
static int round_pick(struct round *r)
{
	struct fs_txn t;
	int rc = meta_begin(fs.meta, true, &t);

	if (rc < 0)
		return rc;
	r->t = &t;
	rc = meta_mark_iter(&t, FS_MARK_DATA, pick_data_cb, r);
	if (rc == 0)
		rc = meta_mark_iter(&t, FS_MARK_MIRROR, pick_mirror_cb, r);
	if (rc == 0 && !r->eager)
		rc = meta_mark_iter(&t, FS_MARK_FREED, pick_freed_cb, r);
	for (size_t i = 0; rc == 0 && i < r->n_stale; i++)
		rc = meta_mark_del(&t, FS_MARK_DATA, r->stale[i], 17);
	for (size_t i = 0; rc == 0 && i < r->n_ups; i++) {
		uint8_t key[17];
		size_t kl = mirror_key_chunk(key, r->ups[i].ino, r->ups[i].idx);
		struct fs_mark mk;

		rc = meta_mark_get(&t, FS_MARK_DATA, key, kl, &mk);
		if (rc == 0) {
			mk.uploading = 1;
			rc = meta_mark_set(&t, FS_MARK_DATA, key, kl, &mk);
		}
		for (size_t j = 0; j < r->n_mops; j++)
			if (r->mops[j].klen == kl && memcmp(r->mops[j].key, key, kl) == 0)
				r->mops[j].covered_by_upload = true;
	}
	r->t = NULL;
	if (rc == 0)
		return meta_commit(&t);
	meta_abort(&t);
	return rc;
}

/* Step 2: reads the picked chunks from the cache (under each node's lock:
 * a file moving out of its slab slot is seen before or after the move). */
static int round_read(struct round *r)
{
	struct fs_node *n = NULL;
	int rc = 0;

	for (size_t i = 0; i < r->n_ups && rc == 0; i++) {
		struct up *u = &r->ups[i];

		if (!n || n->ino != u->ino) {
			if (n) {
				pthread_mutex_unlock(&n->lock);
				node_put(n);
			}
			n = node_get(u->ino);
			if (!n)
				return -ENOMEM;
			pthread_mutex_lock(&n->lock);
			rc = node_locate(n);
			if (rc < 0 && rc != -ENOENT)
				break;
			rc = 0;
		}
		u->data = malloc(u->len); /* zeroed only after a short read */
		if (!u->data) {
			rc = -ENOMEM;
			break;
		}
		if (n->fd < 0) {
			log_err("flush: inode %" PRIu64 " chunk %" PRIu64
				": cache file gone before upload; its data is lost",
				u->ino, u->idx);
			u->lost = true;
			continue;
		}
		/* A truncate racing with us shortens the file: the rest stays zero and
		 * the chunk, changed, is marked again. */
		rc = node_pread(n, u->data, u->len, u->idx * fs.chunk_size);
		if (rc == -ENODATA) {
			/* the cache file ends inside the chunk: what it lacks is zero */
			memset(u->data, 0, u->len);
			rc = node_pread(n, u->data, u->len, u->idx * fs.chunk_size);
			if (rc == -ENODATA)
				rc = 0;
		}
		if (rc < 0)
			log_err("flush: reading cache of inode %" PRIu64 ": %s", u->ino,
				strerror(-rc));
	}
	if (n) {
		pthread_mutex_unlock(&n->lock);
		node_put(n);
	}
	return rc;
}

/* Step 4 (success), or the undo of step 1 (failure).  A failed commit keeps
 * its journal: whether the FAT applied it is settled before the next
 * round (journal.c). */
static int round_finish(struct round *r, bool ok)
{
	struct fs_txn t;
	int rc = meta_begin(fs.meta, true, &t);

	if (rc < 0)
		return rc;
	for (size_t i = 0; rc == 0 && i < r->n_ups; i++) {
		struct journal_ent e;

		if (r->ents_ready) {
			e = r->ents[i];
		} else {
			memset(&e, 0, sizeof(e));
			e.ino = r->ups[i].ino;
			e.idx = r->ups[i].idx;
			e.last_seq = r->ups[i].last_seq;
			e.lost = r->ups[i].lost;
		}
		rc = journal_finish_one(&t, &e, ok && r->ents_ready);
	}
	for (size_t i = 0; ok && rc == 0 && i < r->n_mops; i++) {
		struct mop *op = &r->mops[i];
		struct fs_mark mk;

		rc = meta_mark_get(&t, FS_MARK_MIRROR, op->key, op->klen, &mk);
		if (rc == -ENOENT) {
			rc = 0;
			continue;
		}
		if (rc < 0)
			break;
		if (mk.last_seq == op->last_seq) {
			rc = meta_mark_del(&t, FS_MARK_MIRROR, op->key, op->klen);
		} else {
			mk.first_seq = op->last_seq + 1;
			rc = meta_mark_set(&t, FS_MARK_MIRROR, op->key, op->klen, &mk);
		}
	}
	for (size_t i = 0; ok && rc == 0 && i < r->n_freed; i++)
		rc = meta_mark_del(&t, FS_MARK_FREED, r->freed[i], CHUNK_ID_LEN);
	if (ok && rc == 0)
		rc = meta_del_setting(&t, "inflight");
	if (rc == 0)
		return meta_commit(&t);
	meta_abort(&t);
	return rc;
}

/* Steps 2-3. */
static int round_upload_commit(struct round *r, struct alloc_chunk **acp)
{
	struct alloc_session *s = NULL;
	struct alloc_chunk *ac = NULL;
	struct alloc_meta_op *ops = NULL;
	uint8_t(*freed)[CHUNK_ID_LEN] = NULL;
	uint8_t(*vals)[MIRROR_CHUNK_MAX] = NULL;
	size_t n_ac = 0, n_ops = 0, n_freed = 0;
	uint8_t(*keys)[17] = NULL;
	uint64_t bytes = 0;
	int rc;

	rc = round_read(r);
	if (rc < 0)
		return rc;
	ac = calloc(r->n_ups + 1, sizeof(*ac));
	ops = calloc(r->n_mops + r->n_ups + 1, sizeof(*ops));
	freed = calloc(r->n_freed + r->n_ups + 1, CHUNK_ID_LEN);
	vals = calloc(r->n_ups + 1, sizeof(*vals));
	keys = calloc(r->n_ups + 1, sizeof(*keys));
	r->ents = calloc(r->n_ups + 1, sizeof(*r->ents));
	if (!ac || !ops || !freed || !vals || !keys || !r->ents) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < r->n_ups; i++) {
		if (r->ups[i].lost)
			continue;
		ac[n_ac].raw = r->ups[i].data;
		ac[n_ac].raw_len = r->ups[i].len;
		bytes += r->ups[i].len;
		n_ac++;
	}
	if (n_ac) {
		rc = alloc_session_begin(fs.alloc, bytes, &s);
		if (rc < 0) {
			log_warn("flush: allocation of %" PRIu64 " bytes failed: %s", bytes,
				 strerror(-rc));
			goto out;
		}
		rc = alloc_session_put(s, ac, n_ac);
		if (rc < 0) {
			log_warn("flush: uploading %zu chunks failed: %s", n_ac, strerror(-rc));
			alloc_session_abort(s);
			goto out;
		}
	}
	for (size_t i = 0; i < r->n_mops; i++) {
		if (r->mops[i].covered_by_upload)
			continue;
		ops[n_ops].key = r->mops[i].key;
		ops[n_ops].klen = r->mops[i].klen;
		ops[n_ops].val = r->mops[i].val;
		ops[n_ops].vlen = r->mops[i].vlen;
		n_ops++;
	}
	for (size_t i = 0, k = 0; i < r->n_ups; i++) {
		struct up *u = &r->ups[i];
		struct journal_ent *e = &r->ents[i];
		struct alloc_chunk_ref ref;

		e->ino = u->ino;
		e->idx = u->idx;
		e->last_seq = u->last_seq;
		e->lost = u->lost;
		e->had_ref = u->had_ref;
		if (u->had_ref)
			memcpy(e->old_id, u->old.chunk_id, CHUNK_ID_LEN);
		if (u->lost)
			continue;
		memset(&ref, 0, sizeof(ref));
		memcpy(ref.chunk_id, ac[k].chunk_id, CHUNK_ID_LEN);
		ref.stored_len = ac[k].stored_len;
		ref.raw_len = (uint32_t)u->len;
		ref.n_vendors = ac[k].n_vendors;
		memcpy(ref.vendors, ac[k].vendors, sizeof(ref.vendors));
		ref.has_digest = true;
		memcpy(ref.digest, ac[k].digest, CHUNK_DIGEST_LEN);
		e->ref = ref;
		k++;
		ops[n_ops].key = keys[i];
		ops[n_ops].klen = mirror_key_chunk(keys[i], u->ino, u->idx);
		ops[n_ops].val = vals[i];
		ops[n_ops].vlen = mirror_chunk_encode(&ref, vals[i]);
		n_ops++;
		if (u->had_ref)
			memcpy(freed[n_freed++], u->old.chunk_id, CHUNK_ID_LEN);
	}
	r->ents_ready = true;
	for (size_t i = 0; i < r->n_freed; i++)
		memcpy(freed[n_freed++], r->freed[i], CHUNK_ID_LEN);
	/* a crash (or a lost reply) from here on leaves the commit in doubt:
	 * the journal lets the next round or start settle it */
	rc = n_ac ? journal_save(r->ents, r->n_ups) : 0;
	if (rc < 0) {
		log_err("flush: journaling the commit failed: %s", strerror(-rc));
		alloc_session_abort(s);
		goto out;
	}
	rc = alloc_commit(fs.alloc, s, (const uint8_t(*)[CHUNK_ID_LEN])freed, n_freed, ops,
			  n_ops);
	s = NULL;
	if (rc < 0) {
		log_warn(
		    "flush: commit of %zu chunks, %zu metadata changes, %zu frees failed: %s",
		    n_ac, n_ops, n_freed, strerror(-rc));
		goto out;
	}
	log_debug("flush: committed %zu chunks (%" PRIu64
		  " bytes), %zu metadata changes, %zu frees",
		  n_ac, bytes, n_ops, n_freed);
	pthread_mutex_lock(&flush_lock);
	status.commits++;
	status.chunks_uploaded += n_ac;
	status.bytes_uploaded += bytes;
	pthread_mutex_unlock(&flush_lock);
	*acp = ac;
	ac = NULL;
out:
	free(ac);
	free(ops);
	free(freed);
	free(vals);
	free(keys);
	return rc;
}

/* One round; *did_work tells whether anything was committed. */
static int flush_round(bool urgent, bool eager, bool *did_work, bool *more)
{
	struct round r = {.urgent = urgent, .eager = eager && !urgent};
	struct alloc_chunk *ac = NULL;
	int rc, rc2;

	*did_work = false;
	*more = false;
	r.in = malloc(sizeof(*r.in));
	r.mops = calloc(MAX_MIRROR_OPS, sizeof(*r.mops));
	r.freed = calloc(MAX_FREED, CHUNK_ID_LEN);
	if (!r.in || !r.mops || !r.freed) {
		round_free(&r);
		return -ENOMEM;
	}
	rc = journal_recover();
	if (rc < 0) {
		round_free(&r);
		return rc;
	}
	pthread_mutex_lock(&flush_lock);
	r.pressure = dirty_waiters > 0 || atomic_load(&dirty_bytes) > dirty_limit();
	pthread_mutex_unlock(&flush_lock);
	rc = round_pick(&r);
	if (rc < 0) {
		log_err("flush: reading the journal failed: %s", strerror(-rc));
		round_free(&r);
		return rc;
	}
	if (r.n_ups == 0 && r.n_mops == 0 && r.n_freed == 0) {
		round_free(&r);
		dirty_recount();
		return 0;
	}
	rc = round_upload_commit(&r, &ac);
	rc2 = round_finish(&r, rc == 0);
	if (rc2 < 0)
		log_err("flush: recording the commit locally failed: %s", strerror(-rc2));
	*did_work = rc == 0;
	*more = r.more;
	free(ac);
	round_free(&r);
	dirty_recount();
	return rc < 0 ? rc : rc2;
}

static void timed_wait(pthread_cond_t *c, unsigned ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(c, &flush_lock, &ts);
}

/* What the flusher should do now (flush_lock held): 0 nothing yet (*wait_ms:
 * when to look again), 1 an eager round, 2 a full round. */
static int round_due(unsigned *wait_ms)
{
	uint64_t now = now_ms(), since = atomic_load(&pending_since_ms);
	uint64_t quiet_at = atomic_load(&last_change_ms) + QUIET_MS;
	uint64_t age_at = since + fs.cfg.writeback_delay_ms, next;

	if (barrier_waiters || dirty_waiters || atomic_load(&dirty_bytes) >= background_limit())
		return 2;
	if (since && (now >= quiet_at || now >= age_at))
		return 2;
	if (atomic_load(&eager_ready))
		return 1;
	next = since ? MIN(quiet_at, age_at) : now + IDLE_MS;
	*wait_ms = (unsigned)MAX(MIN(next - MIN(next, now), IDLE_MS), RECHECK_MIN_MS);
	return 0;
}

static void *flush_main(void *arg)
{
	unsigned backoff = 0, wait_ms = 0;
	bool again = false, again_eager = false;

	(void)arg;
	pthread_mutex_lock(&flush_lock);
	while (!flush_stopping) {
		bool urgent, eager, did, more;
		int rc, due = 0;

		if (again) {
			due = again_eager ? 1 : 2;
		} else {
			while (!flush_stopping && (due = round_due(&wait_ms)) == 0)
				timed_wait(&flush_cond, wait_ms);
		}
		if (flush_stopping)
			break;
		flush_kicked = false;
		urgent = barrier_waiters > 0;
		eager = due == 1 && !urgent && !dirty_waiters;
		atomic_store(&eager_ready, false);
		if (!eager) /* what changes from now on waits for the next round */
			atomic_store(&pending_since_ms, 0);
		pthread_mutex_unlock(&flush_lock);

		rc = flush_round(urgent, eager, &did, &more);

		pthread_mutex_lock(&flush_lock);
		rounds_done++;
		status.rounds++;
		again = rc == 0 && more;
		again_eager = eager;
		if (rc == 0 && did) {
			/* a commit leaves marks of its own (chunks it replaced, to
			 * free): they go with the next full round */
			uint64_t zero = 0;

			atomic_compare_exchange_strong(&pending_since_ms, &zero, now_ms());
		}
		if (rc < 0) {
			uint64_t zero = 0;

			last_failed_round = rounds_done;
			status.failures++;
			status.last_error = rc;
			/* what the round held is still to do */
			atomic_compare_exchange_strong(&pending_since_ms, &zero, now_ms());
		}
		pthread_cond_broadcast(&flush_done_cond);
		if (rc < 0) {
			backoff = backoff ? MIN(2 * backoff, BACKOFF_MAX_MS) : BACKOFF_MIN_MS;
			log_warn("flush: round failed (%s); retrying in %u ms", strerror(-rc),
				 backoff);
			/* a new barrier (fsync) cuts the wait short */
			flush_kicked = false;
			timed_wait(&flush_cond, backoff);
			atomic_store(&last_change_ms, 0); /* retry at once after the wait */
		} else {
			backoff = 0;
		}
	}
	pthread_mutex_unlock(&flush_lock);
	return NULL;
}

int flush_start(void)
{
	pthread_condattr_t ca;
	int rc;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&flush_cond, &ca);
	pthread_cond_init(&flush_done_cond, &ca);
	pthread_cond_init(&dirty_cond, &ca);
	pthread_condattr_destroy(&ca);
	flush_stopping = false;
	/* marks left by an earlier run go with the first round */
	atomic_store(&pending_since_ms, now_ms());
	rc = pthread_create(&flush_thread, NULL, flush_main, NULL);
	if (rc) {
		log_err("flush: cannot start the flusher thread: %s", strerror(rc));
		return -rc;
	}
	pthread_setname_np(flush_thread, "pstorefs-flush");
	flush_running = true;
	return 0;
}

void flush_stop(void)
{
	if (!flush_running)
		return;
	pthread_mutex_lock(&flush_lock);
	flush_stopping = true;
	pthread_cond_broadcast(&flush_cond);
	pthread_cond_broadcast(&flush_done_cond);
	pthread_cond_broadcast(&dirty_cond);
	pthread_mutex_unlock(&flush_lock);
	pthread_join(flush_thread, NULL);
	flush_running = false;
}

/* A change to commit: noted without waking the flusher, which looks at the
 * clock itself (round_due); the namespace handlers call this per change. */
void flush_kick(void)
{
	note_change();
}

/* Wakes the flusher now (a chunk to upload eagerly, the background limit). */
static void flush_wake(void)
{
	pthread_mutex_lock(&flush_lock);
	flush_kicked = true;
	pthread_cond_signal(&flush_cond);
	pthread_mutex_unlock(&flush_lock);
}

static int pending_before(uint64_t target, bool *pending, uint64_t *count)
{
	struct fs_txn t;
	uint64_t min_seq;
	int rc = meta_begin(fs.meta, false, &t);

	if (rc < 0)
		return rc;
	rc = meta_marks_min_seq(&t, &min_seq, count);
	meta_abort(&t);
	*pending = min_seq <= target;
	return rc;
}

int flush_barrier(unsigned timeout_ms)
{
	uint64_t target, deadline = now_ms() + timeout_ms, count;
	uint64_t start_round;
	bool pending;
	int rc;

	if (fs.cfg.readonly)
		return 0; /* a read-only mount has nothing of its own to commit */
	/* what the barrier promises (copies on live vendors) includes chunks
	 * committed just before their vendor died */
	rc = repair_dead_vendors();
	if (rc < 0)
		log_warn("sync: checking for dead vendors failed: %s", strerror(-rc));
	target = meta_seq_next(fs.meta);
	pthread_mutex_lock(&flush_lock);
	start_round = rounds_done;
	if (!flush_running) {
		pthread_mutex_unlock(&flush_lock);
		return -EIO;
	}
	barrier_waiters++;
	pthread_cond_signal(&flush_cond);
	pthread_mutex_unlock(&flush_lock);
	for (;;) {
		uint64_t seen;

		rc = pending_before(target, &pending, &count);
		if (rc < 0 || !pending)
			break;
		pthread_mutex_lock(&flush_lock);
		seen = rounds_done;
		while (rounds_done == seen && !flush_stopping && now_ms() < deadline) {
			flush_kicked = true;
			pthread_cond_signal(&flush_cond);
			timed_wait(&flush_done_cond, 200);
		}
		if (last_failed_round > start_round) {
			rc = -EIO;
		} else if (flush_stopping) {
			rc = -EIO;
		} else if (rounds_done == seen) {
			rc = -ETIMEDOUT;
		}
		pthread_mutex_unlock(&flush_lock);
		if (rc < 0)
			break;
	}
	pthread_mutex_lock(&flush_lock);
	barrier_waiters--;
	pthread_mutex_unlock(&flush_lock);
	if (rc < 0)
		log_warn("sync: changes not committed to the FAT: %s", strerror(-rc));
	return rc;
}

int flush_dirty_wait(void)
{
	uint64_t deadline, lim = dirty_limit();
	bool logged = false;
	int rc = 0;

	if (atomic_load(&dirty_bytes) <= lim || fs.cfg.readonly)
		return 0;
	deadline = now_ms() + fs.cfg.sync_timeout_ms;
	pthread_mutex_lock(&flush_lock);
	dirty_waiters++;
	while (atomic_load(&dirty_bytes) > lim && flush_running && !flush_stopping) {
		if (now_ms() >= deadline) {
			rc = -EIO;
			break;
		}
		if (!logged) {
			log_debug("write: %" PRIu64 " bytes not yet uploaded (limit %" PRIu64
				  "): waiting for the flusher",
				  atomic_load(&dirty_bytes), lim);
			logged = true;
		}
		flush_kicked = true;
		pthread_cond_signal(&flush_cond);
		timed_wait(&dirty_cond, 200);
	}
	dirty_waiters--;
	pthread_mutex_unlock(&flush_lock);
	if (rc < 0)
		log_err("write: the flusher made no room under dirty_max for %u ms: EIO "
			"(see the log for why uploads fail)",
			fs.cfg.sync_timeout_ms);
	return rc;
}

void flush_get_status(struct flush_status *st)
{
	struct fs_txn t;
	uint64_t min_seq, count = 0;

	if (meta_begin(fs.meta, false, &t) == 0) {
		meta_marks_min_seq(&t, &min_seq, &count);
		meta_abort(&t);
	}
	pthread_mutex_lock(&flush_lock);
	*st = status;
	pthread_mutex_unlock(&flush_lock);
	st->pending_marks = count;
}
