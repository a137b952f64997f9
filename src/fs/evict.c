/*
 * evict.c - the cache size cap: clean chunks (committed, in the cache, not
 * dirty) are evicted, least recently used first, by punching a hole in the
 * cache file and clearing FS_CHUNK_PRESENT, so that a mount can hold far
 * more than its local disk; a later read fetches the chunk again.
 *
 * One thread ("pstorefs-evict") runs a pass every EVICT_IDLE_MS, or at once
 * when the bytes fetched since the last pass may have crossed the cap.  A
 * pass walks every chunk record (O(chunks of the volume): fine up to a few
 * million chunks, a cost to revisit beyond), sums what the cache holds, and
 * when that is above cache_max evicts down to EVICT_LOW_PCT of it.  Dirty
 * chunks are never evicted: flush.c bounds them (dirty_max, and at most half
 * of cache_max).  `pstore cache drop` evicts every clean chunk.
 *
 * Recency is kept in a direct-mapped table of (inode, chunk) -> tick; a
 * chunk not in it counts as the oldest.  Eviction of a chunk takes the
 * node's lock (readers and writers of the inode hold it while they use the
 * cache file), records the chunk as absent, commits, then punches the hole:
 * a crash in between leaves data marked absent, which is only refetched.
 *
 * The reaper ("pstorefs-reap") removes the cache data of purged inodes off
 * the FUSE request: UNLINK, RMDIR, RENAME over a file and the last RELEASE
 * of an unlinked file queue the inode (reap_queue) after their commit, and
 * the thread punches its slab slot or removes its cache file (ext4 freeing
 * blocks was the largest part of an UNLINK).  A late removal is safe because
 * inode numbers are never reused: nothing reads or writes a purged inode's
 * slot or file again.  The queue is bounded (REAP_QUEUE_MAX; beyond it the
 * caller removes the data itself) and a clean stop drains it.  A crash loses
 * what was queued - disk space, never data: <cache>/reap.pending exists while
 * the reaper runs, and a start that finds it first reclaims the data of every
 * inode the store no longer has (cache_reclaim), in the background.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "fs.h"

#define EVICT_IDLE_MS 1000
#define EVICT_LOW_PCT 80
#define EVICT_MIN_GAP_MS 50
#define TOUCH_SLOTS 65536
#define REAP_QUEUE_MAX 16384 /* inodes waiting for the reaper */
#define REAP_BATCH 256
#define REAP_GONE_SLOTS 1024

struct touch {
	uint64_t ino, idx, tick;
};

static pthread_mutex_t touch_lock = PTHREAD_MUTEX_INITIALIZER;
static struct touch *touches; /* touch_lock; TOUCH_SLOTS */
static uint64_t touch_tick;   /* touch_lock */

static pthread_mutex_t evict_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t evict_cond;			      /* evict_lock */
static bool evict_stopping, evict_kicked;		      /* evict_lock */
static pthread_mutex_t pass_lock = PTHREAD_MUTEX_INITIALIZER; /* one pass at a time */
static pthread_t evict_thread;
static bool evict_running;
static _Atomic uint64_t cached_bytes; /* as of the last pass, plus fetches since */

static size_t touch_slot(uint64_t ino, uint64_t idx)
{
	uint64_t h = (ino * 0x9E3779B97F4A7C15ull) ^ (idx * 0xC2B2AE3D27D4EB4Full);

	return (size_t)((h ^ (h >> 29)) % TOUCH_SLOTS);
}

void evict_touch(uint64_t ino, uint64_t idx, uint64_t fetched_bytes)
{
	pthread_mutex_lock(&touch_lock);
	if (touches) {
		struct touch *t = &touches[touch_slot(ino, idx)];

		t->ino = ino;
		t->idx = idx;
		t->tick = ++touch_tick;
	}
	pthread_mutex_unlock(&touch_lock);
	if (fetched_bytes && fs.cfg.cache_max &&
	    atomic_fetch_add(&cached_bytes, fetched_bytes) + fetched_bytes > fs.cfg.cache_max) {
		pthread_mutex_lock(&evict_lock);
		evict_kicked = true;
		pthread_cond_signal(&evict_cond);
		pthread_mutex_unlock(&evict_lock);
	}
}

static uint64_t touch_get(uint64_t ino, uint64_t idx)
{
	uint64_t tick = 0;

	pthread_mutex_lock(&touch_lock);
	if (touches) {
		struct touch *t = &touches[touch_slot(ino, idx)];

		if (t->ino == ino && t->idx == idx)
			tick = t->tick;
	}
	pthread_mutex_unlock(&touch_lock);
	return tick;
}

uint64_t evict_cached_bytes(void)
{
	return atomic_load(&cached_bytes);
}

/* ---- a pass ---- */

struct cand {
	uint64_t ino, idx, len, tick;
};

struct scan {
	struct fs_txn *t;
	uint64_t cached;
	struct cand *c;
	size_t n, cap;
	struct fs_inode *in; /* the inode of the last chunk seen (sizes) */
	uint64_t in_ino;
	bool in_valid;
};

static int scan_cb(uint64_t ino, uint64_t idx, const struct fs_chunk *c, void *arg)
{
	struct scan *sc = arg;
	uint64_t len;
	uint8_t key[17];
	struct fs_mark mk;

	if (!(c->flags & FS_CHUNK_PRESENT))
		return 0;
	if (!(c->flags & FS_CHUNK_REF)) {
		/* never uploaded: the cache holds the only copy, as many bytes as
		 * the file has in this chunk (a 4 KiB file is not a whole chunk:
		 * counting chunk_size made a tree of new small files look like
		 * gigabytes and ran eviction passes back to back) */
		uint64_t start = idx * fs.chunk_size;

		if (sc->in && (!sc->in_valid || sc->in_ino != ino)) {
			sc->in_ino = ino;
			sc->in_valid = meta_inode_get(sc->t, ino, sc->in) == 0;
		}
		len = fs.chunk_size;
		if (sc->in && sc->in_valid)
			len = start >= sc->in->size ? 0 : MIN(len, sc->in->size - start);
		sc->cached += len;
		return 0;
	}
	len = c->ref.raw_len;
	sc->cached += len;
	if (meta_mark_get(sc->t, FS_MARK_DATA, key, mirror_key_chunk(key, ino, idx), &mk) == 0)
		return 0; /* dirty */
	if (sc->n == sc->cap) {
		size_t cap = sc->cap ? 2 * sc->cap : 256;
		struct cand *p = realloc(sc->c, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		sc->c = p;
		sc->cap = cap;
	}
	sc->c[sc->n++] = (struct cand){ino, idx, len, touch_get(ino, idx)};
	return 0;
}

static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->tick != y->tick)
		return x->tick < y->tick ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cand_cmp_ino(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Evicts the candidates c[0..n) of one inode (all have c->ino).  Returns the
 * bytes evicted (>= 0) or -errno. */
static int64_t evict_inode(const struct cand *c, size_t n)
{
	struct fs_node *node = node_get(c[0].ino);
	struct fs_txn t;
	bool *gone = calloc(n, sizeof(*gone));
	int64_t bytes = 0;
	int rc;

	if (!node || !gone) {
		node_put(node);
		free(gone);
		return -ENOMEM;
	}
	pthread_mutex_lock(&node->lock);
	rc = meta_begin(fs.meta, true, &t);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct fs_chunk ch;
		struct fs_mark mk;
		uint8_t key[17];
		size_t kl = mirror_key_chunk(key, c[i].ino, c[i].idx);

		if (meta_chunk_get(&t, c[i].ino, c[i].idx, &ch) < 0 ||
		    (ch.flags & (FS_CHUNK_REF | FS_CHUNK_PRESENT)) !=
			(FS_CHUNK_REF | FS_CHUNK_PRESENT) ||
		    meta_mark_get(&t, FS_MARK_DATA, key, kl, &mk) == 0)
			continue; /* changed since the scan */
		ch.flags &= ~(uint32_t)FS_CHUNK_PRESENT;
		rc = meta_chunk_put(&t, c[i].ino, c[i].idx, &ch, false);
		gone[i] = rc == 0;
	}
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
	if (rc < 0)
		goto out;
	for (size_t i = 0; node_locate(node) >= 0 && i < n; i++) {
		int err;

		if (!gone[i])
			continue;
		err = node_punch(node, c[i].idx * fs.chunk_size, c[i].len);
		if (err < 0) {
			log_warn("cache: punching inode %" PRIu64 " chunk %" PRIu64 ": %s",
				 c[i].ino, c[i].idx, strerror(-err));
			continue; /* marked absent anyway: refetched, never read stale */
		}
		bytes += (int64_t)c[i].len;
	}
out:
	pthread_mutex_unlock(&node->lock);
	node_put(node);
	free(gone);
	return rc < 0 ? rc : bytes;
}

int evict_run(bool all, uint64_t *chunks, uint64_t *bytes)
{
	struct scan sc = {0};
	struct fs_txn t;
	uint64_t goal, freed = 0, n_ev = 0;
	size_t i = 0;
	int rc;

	pthread_mutex_lock(&pass_lock);
	sc.in = malloc(sizeof(*sc.in)); /* NULL: chunks counted whole */
	rc = meta_begin(fs.meta, false, &t);
	if (rc < 0)
		goto out;
	sc.t = &t;
	rc = meta_chunk_iter(&t, scan_cb, &sc);
	meta_abort(&t);
	if (rc < 0)
		goto out;
	atomic_store(&cached_bytes, sc.cached);
	if (!all && (!fs.cfg.cache_max || sc.cached <= fs.cfg.cache_max))
		goto out;
	goal = all ? 0 : fs.cfg.cache_max / 100 * EVICT_LOW_PCT;
	qsort(sc.c, sc.n, sizeof(*sc.c), cand_cmp);
	/* take the oldest until the goal is met, then evict them inode by inode */
	while (i < sc.n && sc.cached - freed > goal)
		freed += sc.c[i++].len;
	sc.n = i;
	freed = 0;
	qsort(sc.c, sc.n, sizeof(*sc.c), cand_cmp_ino);
	for (size_t a = 0; a < sc.n;) {
		size_t b = a;
		int64_t got;

		while (b < sc.n && sc.c[b].ino == sc.c[a].ino)
			b++;
		got = evict_inode(&sc.c[a], b - a);
		if (got < 0) {
			rc = (int)got;
			break;
		}
		freed += (uint64_t)got;
		n_ev += b - a;
		a = b;
	}
	atomic_fetch_sub(&cached_bytes, MIN(freed, atomic_load(&cached_bytes)));
	if (n_ev)
		log_debug("cache: evicted %" PRIu64 " chunks (%" PRIu64 " bytes); %" PRIu64
			  " bytes cached before",
			  n_ev, freed, sc.cached);
out:
	pthread_mutex_unlock(&pass_lock);
	free(sc.in);
	free(sc.c);
	if (chunks)
		*chunks = n_ev;
	if (bytes)
		*bytes = freed;
	return rc;
}

static void *evict_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&evict_lock);
	while (!evict_stopping) {
		struct timespec ts;
		int rc;

		if (!evict_kicked) {
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += EVICT_IDLE_MS / 1000;
			pthread_cond_timedwait(&evict_cond, &evict_lock, &ts);
		}
		if (evict_stopping)
			break;
		evict_kicked = false;
		pthread_mutex_unlock(&evict_lock);
		rc = evict_run(false, NULL, NULL);
		if (rc < 0)
			log_warn("cache: eviction pass failed: %s", strerror(-rc));
		usleep(EVICT_MIN_GAP_MS * 1000); /* kicks come per fetch: bound the pass rate */
		pthread_mutex_lock(&evict_lock);
	}
	pthread_mutex_unlock(&evict_lock);
	return NULL;
}

/* A condition variable timed on CLOCK_MONOTONIC (waits bounded in real time). */
static void cond_init_mono(pthread_cond_t *c)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(c, &ca);
	pthread_condattr_destroy(&ca);
}

/* ---- the reaper ---- */

static pthread_mutex_t reap_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reap_cond;	   /* reap_lock */
static uint64_t reap_ring[REAP_QUEUE_MAX]; /* reap_lock */
static size_t reap_head, reap_len;	   /* reap_lock */
static bool reap_running, reap_stopping;   /* reap_lock */
static bool reap_reclaim;		   /* the last run did not stop cleanly */
static pthread_t reap_thread;
/* The last purged inodes by number modulo REAP_GONE_SLOTS: a hit is exact,
 * as inode numbers are never reused. */
static _Atomic uint64_t reap_gone_tab[REAP_GONE_SLOTS];

bool reap_gone(uint64_t ino)
{
	return ino != 0 && atomic_load(&reap_gone_tab[ino % REAP_GONE_SLOTS]) == ino;
}

void reap_queue(uint64_t ino)
{
	bool queued = false;

	atomic_store(&reap_gone_tab[ino % REAP_GONE_SLOTS], ino);
	pthread_mutex_lock(&reap_lock);
	if (reap_running && !reap_stopping && reap_len < REAP_QUEUE_MAX) {
		reap_ring[(reap_head + reap_len++) % REAP_QUEUE_MAX] = ino;
		if (reap_len == 1)
			pthread_cond_signal(&reap_cond);
		queued = true;
	}
	pthread_mutex_unlock(&reap_lock);
	if (!queued)
		cache_unlink(fs.cache, ino);
}

static void reap_marker(char *buf, size_t len)
{
	snprintf(buf, len, "%s/reap.pending", fs.cfg.cache_dir);
}

static int ino_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Removes the data of n inodes: runs of consecutive numbers in one slab
 * (files created together, deleted together) are punched at once. */
static int reap_batch(uint64_t *ino, size_t n)
{
	int rc = 0;

	qsort(ino, n, sizeof(*ino), ino_cmp);
	for (size_t i = 0, j; i < n; i = j) {
		for (j = i + 1; j < n && ino[j] == ino[j - 1] + 1 &&
				(ino[j] >> CACHE_SLAB_SHIFT) == (ino[i] >> CACHE_SLAB_SHIFT);
		     j++)
			;
		if (cache_unlink_run(fs.cache, ino[i], j - i) < 0)
			rc = -EIO;
		while (j < n && ino[j] == ino[j - 1])
			j++; /* queued twice: gone already */
	}
	return rc;
}

static void *reap_main(void *arg)
{
	uint64_t batch[REAP_BATCH];
	char path[4200];
	bool clean = true;

	(void)arg;
	if (reap_reclaim) {
		uint64_t n = 0;

		clean = cache_reclaim(fs.cache, &n) == 0;
		if (n)
			log_info("cache: reclaimed the data of %" PRIu64
				 " deleted inodes (an unclean stop)",
				 n);
	}
	pthread_mutex_lock(&reap_lock);
	for (;;) {
		size_t n = 0;

		if (reap_len == 0 && reap_stopping)
			break;
		if (reap_len == 0) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += EVICT_IDLE_MS / 1000;
			pthread_cond_timedwait(&reap_cond, &reap_lock, &ts);
			continue;
		}
		while (n < REAP_BATCH && reap_len > 0) {
			batch[n++] = reap_ring[reap_head];
			reap_head = (reap_head + 1) % REAP_QUEUE_MAX;
			reap_len--;
		}
		pthread_mutex_unlock(&reap_lock);
		if (reap_batch(batch, n) < 0)
			clean = false;
		pthread_mutex_lock(&reap_lock);
	}
	pthread_mutex_unlock(&reap_lock);
	/* all queued data is gone: nothing for the next start to reclaim */
	reap_marker(path, sizeof(path));
	if (clean && unlink(path) < 0 && errno != ENOENT)
		log_warn("cache: removing %s: %s", path, strerror(errno));
	return NULL;
}

static int reap_start(void)
{
	char path[4200];
	int fd, rc;

	reap_marker(path, sizeof(path));
	reap_reclaim = access(path, F_OK) == 0;
	if (!reap_reclaim) {
		/* no fsync: a crash of the machine drops the store and wipes the
		 * cache (meta.c), a crash of pstorefs keeps the page cache */
		fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0) {
			log_warn("cache: %s: %s (deletes remove cache data inline)", path,
				 strerror(errno));
			return 0;
		}
		close(fd);
	}
	cond_init_mono(&reap_cond);
	reap_head = reap_len = 0;
	reap_stopping = false;
	rc = pthread_create(&reap_thread, NULL, reap_main, NULL);
	if (rc) {
		log_err("cache: cannot start the reaper thread: %s", strerror(rc));
		return -rc;
	}
	pthread_setname_np(reap_thread, "pstorefs-reap");
	pthread_mutex_lock(&reap_lock);
	reap_running = true;
	pthread_mutex_unlock(&reap_lock);
	return 0;
}

static void reap_stop(void)
{
	pthread_mutex_lock(&reap_lock);
	if (!reap_running) {
		pthread_mutex_unlock(&reap_lock);
		return;
	}
	reap_stopping = true;
	pthread_cond_broadcast(&reap_cond);
	pthread_mutex_unlock(&reap_lock);
	pthread_join(reap_thread, NULL);
	pthread_mutex_lock(&reap_lock);
	reap_running = false;
	pthread_mutex_unlock(&reap_lock);
}

/* ---- start and stop ---- */

int evict_start(void)
{
	int rc;

	pthread_mutex_lock(&touch_lock);
	if (!touches)
		touches = calloc(TOUCH_SLOTS, sizeof(*touches));
	pthread_mutex_unlock(&touch_lock);
	if (!touches)
		return -ENOMEM;
	cond_init_mono(&evict_cond);
	evict_stopping = false;
	rc = pthread_create(&evict_thread, NULL, evict_main, NULL);
	if (rc) {
		log_err("cache: cannot start the eviction thread: %s", strerror(rc));
		return -rc;
	}
	pthread_setname_np(evict_thread, "pstorefs-evict");
	evict_running = true;
	return reap_start();
}

void evict_stop(void)
{
	if (!evict_running)
		return;
	pthread_mutex_lock(&evict_lock);
	evict_stopping = true;
	pthread_cond_broadcast(&evict_cond);
	pthread_mutex_unlock(&evict_lock);
	pthread_join(evict_thread, NULL);
	evict_running = false;
	reap_stop();
}
