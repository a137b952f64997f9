/*
 * readahead.c - readahead across small files: when a read has to fetch a
 * small file's only chunk from the vendors (a cold read), the next files by
 * inode number are fetched in the background by a few threads, so that a
 * program reading a tree of small files (grep -r, a build, tar c, a backup)
 * finds them in the cache instead of paying a vendor round trip each.
 *
 * Inode numbers are handed out in creation order and never reused, so
 * files created together (a tar x, a checkout, a copied tree) are
 * neighbours, and are most often read together again.  The window slides:
 * a read of a file the readahead brought in moves it on as a cold read
 * does.  Only regular files of one chunk and at most RA_MAX_FILE bytes are
 * fetched, at most RA_WINDOW files ahead of the reader: a mistaken guess
 * costs at most RA_WINDOW * RA_MAX_FILE bytes of fetches, which the cache
 * cap evicts like any clean chunk (evict.c).
 *
 * Sequential readahead of large files: a read entering chunk i of a
 * multi-chunk file queues chunks i+1 .. i+RA_CHUNKS, which the same threads
 * fetch in parallel (each chunk's copies live on their own vendors, so the
 * fetches spread over replicas), without the node lock held during the
 * transfer (fs_prefetch_chunk).  A reader reaching a chunk in flight waits
 * for it instead of fetching it again.
 *
 * Fetched chunks are held in memory (RA_SLOTS buffers of a chunk, keyed by
 * chunk id: a committed chunk's bytes never change, so a slot never goes
 * stale) and a reader is served from there as soon as the fetch is
 * verified, before the chunk is in the cache file.  A chunk a sequential
 * stream brought in is written into the cache file behind the reader with
 * O_DIRECT (filling fresh page-cache pages was the largest cost of a cold
 * sequential read, and the kernel's FUSE page cache keeps what the reader
 * read anyway), by at most RA_INSTALLS threads at a time: a stream faster
 * than the cache disk is cached as far as the disk keeps up, the rest is
 * served from memory and fetched again if read again later.
 *
 * The kernel reads ahead of a sequential reader of the mount in windows of
 * its FUSE device's read_ahead_kb (128 KiB by default: a FUSE round trip
 * per 128 KiB); at start the mount's window is raised to a chunk
 * (RA_KERNEL_MAX at most), where the permissions allow it, once the FUSE
 * handshake is done (its reply would lower it again).  Random readers
 * are not affected (the kernel starts a window small and grows it only
 * for sequential access).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common.h"
#include "fs.h"

#define RA_THREADS 4
#define RA_WINDOW 64
#define RA_QUEUE 256
#define RA_MAX_FILE (256u << 10)
#define RA_SEEN_SLOTS 4096

static pthread_mutex_t ra_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ra_cond;	    /* ra_lock: work queued, or stopping */
static uint64_t ra_queue[RA_QUEUE]; /* ra_lock; a ring */
static size_t ra_head, ra_len;	    /* ra_lock */
static uint64_t ra_next;	    /* ra_lock: the inode after the last queued */
static bool ra_stopping;	    /* ra_lock */
static pthread_t ra_threads[RA_THREADS];
static unsigned ra_nthreads;
/* inodes the readahead brought in (direct-mapped; a collision only stops
 * the window from sliding once) */
static uint64_t ra_seen[RA_SEEN_SLOTS]; /* ra_lock */

#define RA_CHUNKS 4	 /* chunks ahead of a sequential reader */
#define RA_CQUEUE 32	 /* queued chunk fetches */
#define RA_WAIT_MS 30000 /* longest a reader waits for a chunk in flight */
struct ra_chunk {
	uint64_t ino, idx;
	bool stream; /* queued by a sequential reader (installed with O_DIRECT) */
};
static struct ra_chunk ra_cq[RA_CQUEUE];    /* ra_lock; a ring */
static size_t ra_chead, ra_clen;	    /* ra_lock */
static struct ra_chunk ra_busy[RA_THREADS]; /* ra_lock: in flight (ino 0: none) */
static pthread_cond_t ra_done;		    /* ra_lock: a chunk fetch ended */

#define RA_SLOTS (RA_THREADS + RA_CHUNKS) /* chunks held in memory */
#define RA_INSTALLS 1			  /* stream installs at a time */
enum { SLOT_FREE, SLOT_FILLING, SLOT_READY };
struct ra_slot {
	uint8_t id[CHUNK_ID_LEN]; /* ra_lock */
	uint64_t raw_len;	  /* ra_lock; fixed while READY */
	uint8_t *buf;		  /* fs.chunk_size bytes, 4 KiB aligned, kept */
	unsigned refs;		  /* ra_lock */
	int state;		  /* ra_lock */
	uint64_t used;		  /* ra_lock: LRU stamp */
};
static struct ra_slot ra_slots[RA_SLOTS]; /* ra_lock */
static uint64_t ra_clock;		  /* ra_lock */
static unsigned ra_installing;		  /* ra_lock */

struct ra_slot *ra_slot_find(const uint8_t id[CHUNK_ID_LEN])
{
	struct ra_slot *found = NULL;

	pthread_mutex_lock(&ra_lock);
	for (size_t i = 0; i < RA_SLOTS && !found; i++) {
		struct ra_slot *s = &ra_slots[i];

		if (s->state == SLOT_READY && memcmp(s->id, id, CHUNK_ID_LEN) == 0) {
			s->refs++;
			s->used = ++ra_clock;
			found = s;
		}
	}
	pthread_mutex_unlock(&ra_lock);
	return found;
}

void ra_slot_read(const struct ra_slot *s, void *out, uint64_t off, size_t len)
{
	size_t in = off >= s->raw_len ? 0 : (size_t)MIN((uint64_t)len, s->raw_len - off);

	if (in)
		memcpy(out, s->buf + off, in);
	memset((uint8_t *)out + in, 0, len - in);
}

const uint8_t *ra_slot_data(const struct ra_slot *s, uint64_t off, size_t len)
{
	return off + len <= s->raw_len ? s->buf + off : NULL;
}

void ra_slot_put(struct ra_slot *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&ra_lock);
	s->refs--;
	pthread_mutex_unlock(&ra_lock);
}

struct ra_slot *ra_slot_claim(const uint8_t id[CHUNK_ID_LEN], uint64_t raw_len, bool *fresh)
{
	struct ra_slot *s = ra_slot_find(id), *victim = NULL;

	*fresh = false;
	if (s || raw_len > fs.chunk_size)
		return s;
	pthread_mutex_lock(&ra_lock);
	for (size_t i = 0; i < RA_SLOTS; i++) {
		struct ra_slot *c = &ra_slots[i];

		if (c->refs == 0 && c->state != SLOT_FILLING &&
		    (!victim || c->used < victim->used))
			victim = c;
	}
	if (victim && !victim->buf &&
	    posix_memalign((void **)&victim->buf, 4096, fs.chunk_size) != 0) {
		victim->buf = NULL;
		victim = NULL;
	}
	if (victim) {
		memcpy(victim->id, id, CHUNK_ID_LEN);
		victim->raw_len = raw_len;
		victim->state = SLOT_FILLING;
		victim->refs = 1;
		victim->used = ++ra_clock;
		*fresh = true;
	}
	pthread_mutex_unlock(&ra_lock);
	return victim;
}

uint8_t *ra_slot_buf(struct ra_slot *s)
{
	return s->buf;
}

void ra_slot_filled(struct ra_slot *s, bool ok)
{
	pthread_mutex_lock(&ra_lock);
	s->state = ok ? SLOT_READY : SLOT_FREE;
	pthread_mutex_unlock(&ra_lock);
}

void ra_slots_drop(void)
{
	pthread_mutex_lock(&ra_lock);
	for (size_t i = 0; i < RA_SLOTS; i++)
		if (ra_slots[i].state == SLOT_READY && ra_slots[i].refs == 0)
			ra_slots[i].state = SLOT_FREE;
	pthread_mutex_unlock(&ra_lock);
}

bool ra_install_begin(void)
{
	bool ok;

	pthread_mutex_lock(&ra_lock);
	ok = ra_installing < RA_INSTALLS;
	if (ok)
		ra_installing++;
	pthread_mutex_unlock(&ra_lock);
	return ok;
}

void ra_install_end(void)
{
	pthread_mutex_lock(&ra_lock);
	ra_installing--;
	pthread_mutex_unlock(&ra_lock);
}

void ra_chunk_fetched(uint64_t ino, uint64_t idx)
{
	pthread_mutex_lock(&ra_lock);
	for (size_t i = 0; i < RA_THREADS; i++)
		if (ra_busy[i].ino == ino && ra_busy[i].idx == idx)
			ra_busy[i].ino = 0;
	pthread_cond_broadcast(&ra_done);
	pthread_mutex_unlock(&ra_lock);
}

static bool ra_chunk_known(uint64_t ino, uint64_t idx)
{
	for (size_t i = 0; i < ra_clen; i++) {
		const struct ra_chunk *c = &ra_cq[(ra_chead + i) % RA_CQUEUE];

		if (c->ino == ino && c->idx == idx)
			return true;
	}
	for (size_t i = 0; i < RA_THREADS; i++)
		if (ra_busy[i].ino == ino && ra_busy[i].idx == idx)
			return true;
	return false;
}

void ra_note_chunks(uint64_t ino, uint64_t idx, uint64_t last, bool stream)
{
	pthread_mutex_lock(&ra_lock);
	if (ra_nthreads && !ra_stopping) {
		for (uint64_t x = idx + 1; x <= last && x <= idx + RA_CHUNKS; x++) {
			if (ra_clen == RA_CQUEUE)
				break;
			if (!ra_chunk_known(ino, x))
				ra_cq[(ra_chead + ra_clen++) % RA_CQUEUE] =
				    (struct ra_chunk){ino, x, stream};
		}
		pthread_cond_broadcast(&ra_cond);
	}
	pthread_mutex_unlock(&ra_lock);
}

void ra_wait_chunks(uint64_t ino, uint64_t first, uint64_t last)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += RA_WAIT_MS / 1000;
	pthread_mutex_lock(&ra_lock);
	for (;;) {
		bool busy = false;

		for (size_t i = 0; i < RA_THREADS && !busy; i++)
			busy = ra_busy[i].ino == ino && ra_busy[i].idx >= first &&
			       ra_busy[i].idx <= last;
		if (!busy || pthread_cond_timedwait(&ra_done, &ra_lock, &ts) != 0)
			break;
	}
	pthread_mutex_unlock(&ra_lock);
}

bool ra_small(uint64_t size)
{
	return size > 0 && size <= RA_MAX_FILE && size <= fs.chunk_size;
}

static void ra_queue_from(uint64_t ino)
{
	uint64_t x = ra_next > ino && ra_next <= ino + RA_WINDOW ? ra_next : ino + 1;

	for (; x <= ino + RA_WINDOW && ra_len < RA_QUEUE; x++)
		ra_queue[(ra_head + ra_len++) % RA_QUEUE] = x;
	ra_next = x;
	pthread_cond_broadcast(&ra_cond);
}

void ra_note_read(uint64_t ino, bool fetched)
{
	pthread_mutex_lock(&ra_lock);
	if (ra_nthreads && !ra_stopping) {
		if (fetched) {
			ra_queue_from(ino);
		} else if (ra_seen[ino % RA_SEEN_SLOTS] == ino) {
			ra_seen[ino % RA_SEEN_SLOTS] = 0;
			ra_queue_from(ino);
		}
	}
	pthread_mutex_unlock(&ra_lock);
}

/* Fetches ino's chunk 0 when it is a small committed file not in the cache. */
static void ra_fetch(uint64_t ino, struct fs_inode *in)
{
	struct fs_node *n;
	struct fs_chunk c;
	struct fs_txn t;
	int rc = meta_begin(fs.meta, false, &t);

	if (rc < 0)
		return;
	rc = meta_inode_get(&t, ino, in);
	if (rc == 0 && ((in->mode & S_IFMT) != S_IFREG || !ra_small(in->size)))
		rc = -EINVAL;
	if (rc == 0)
		rc = meta_chunk_get(&t, ino, 0, &c);
	meta_abort(&t);
	/* FS_CHUNK_PRESENT is not trusted before node_fd: a cache directory
	 * emptied under the store (pstore cache drop of a stopped mount) is
	 * found out there */
	if (rc < 0 || !(c.flags & FS_CHUNK_REF))
		return;
	n = node_get(ino);
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	/* the inode as of now, under the lock (fs_fetch_chunk re-checks the
	 * chunk: a reader may have fetched it meanwhile) */
	rc = meta_begin(fs.meta, false, &t);
	if (rc == 0) {
		rc = meta_inode_get(&t, ino, in);
		meta_abort(&t);
	}
	if (rc == 0 && in->nlink > 0) {
		int fd = node_fd(n, in->size);

		rc = fd < 0 ? fd : fs_fetch_chunk(n, in, 0);
	}
	pthread_mutex_unlock(&n->lock);
	node_put(n);
	if (rc == 0) {
		pthread_mutex_lock(&ra_lock);
		ra_seen[ino % RA_SEEN_SLOTS] = ino;
		pthread_mutex_unlock(&ra_lock);
	} else {
		log_debug("readahead: inode %" PRIu64 ": %s", ino, strerror(-rc));
	}
}

#define RA_KERNEL_MAX (8u << 20)

/* The mount's FUSE device (major:minor, from /proc/self/mountinfo) gets a
 * kernel readahead window of a chunk; best effort. */
static void ra_kernel_window(void)
{
	char line[8192], dev[32] = "", path[96], kb[32];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	unsigned want = MIN(fs.chunk_size, RA_KERNEL_MAX) >> 10;
	int rc;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char d[32], mp[4097];

		/* id parent major:minor root mountpoint ... - fstype ... */
		if (sscanf(line, "%*s %*s %31s %*s %4096s", d, mp) == 2 &&
		    strcmp(mp, fs.mountpoint) == 0 && strstr(line, " - fuse"))
			snprintf(dev, sizeof(dev), "%s", d); /* the last one is on top */
	}
	fclose(f);
	if (!dev[0] || want <= 128)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", dev);
	f = fopen(path, "we");
	if (!f) {
		log_debug("readahead: cannot set %s: %s", path, strerror(errno));
		return;
	}
	snprintf(kb, sizeof(kb), "%u\n", want);
	rc = fputs(kb, f) < 0 ? -EIO : 0;
	if (fclose(f) != 0 || rc < 0)
		log_debug("readahead: cannot set %s", path);
	else
		log_info("kernel readahead of the mount: %u KiB", want);
}

static atomic_bool ra_inited; /* the FUSE handshake was answered */

void ra_note_init(void)
{
	atomic_store(&ra_inited, true);
}

/* Thread 0, before its first job: the kernel window, once the handshake's
 * reply is through (polled: it follows op_init by microseconds). */
static void ra_window_when_inited(void)
{
	struct timespec ts = {0, 50 * 1000 * 1000};

	for (int i = 0; i < 200 && !atomic_load(&ra_inited); i++)
		nanosleep(&ts, NULL);
	if (!atomic_load(&ra_inited))
		return;
	nanosleep(&ts, NULL);
	ra_kernel_window();
}

static void *ra_main(void *arg)
{
	struct fs_inode *in = malloc(sizeof(*in));
	size_t self = (size_t)(uintptr_t)arg;

	if (self == 0)
		ra_window_when_inited();
	pthread_mutex_lock(&ra_lock);
	while (!ra_stopping && in) {
		uint64_t ino;

		if (ra_clen > 0) {
			struct ra_chunk c = ra_cq[ra_chead];
			int rc;

			ra_chead = (ra_chead + 1) % RA_CQUEUE;
			ra_clen--;
			ra_busy[self] = c;
			pthread_mutex_unlock(&ra_lock);
			rc = fs_prefetch_chunk(c.ino, c.idx, c.stream);
			if (rc < 0)
				log_debug("readahead: inode %" PRIu64 " chunk %" PRIu64 ": %s",
					  c.ino, c.idx, strerror(-rc));
			pthread_mutex_lock(&ra_lock);
			ra_busy[self].ino = 0;
			pthread_cond_broadcast(&ra_done);
			continue;
		}
		if (ra_len == 0) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&ra_cond, &ra_lock, &ts);
			continue;
		}
		ino = ra_queue[ra_head];
		ra_head = (ra_head + 1) % RA_QUEUE;
		ra_len--;
		pthread_mutex_unlock(&ra_lock);
		ra_fetch(ino, in);
		pthread_mutex_lock(&ra_lock);
	}
	pthread_mutex_unlock(&ra_lock);
	free(in);
	return NULL;
}

int ra_start(void)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ra_cond, &ca);
	pthread_cond_init(&ra_done, &ca);
	pthread_condattr_destroy(&ca);
	ra_stopping = false;
	for (unsigned i = 0; i < RA_THREADS; i++) {
		int rc = pthread_create(&ra_threads[i], NULL, ra_main, (void *)(uintptr_t)i);

		if (rc) {
			log_warn("readahead: cannot start a thread: %s", strerror(rc));
			break;
		}
		pthread_setname_np(ra_threads[i], "pstorefs-ra");
		pthread_mutex_lock(&ra_lock);
		ra_nthreads++;
		pthread_mutex_unlock(&ra_lock);
	}
	return 0;
}

void ra_stop(void)
{
	unsigned n;

	pthread_mutex_lock(&ra_lock);
	ra_stopping = true;
	ra_len = 0;
	ra_clen = 0;
	n = ra_nthreads;
	pthread_cond_broadcast(&ra_cond);
	pthread_mutex_unlock(&ra_lock);
	for (unsigned i = 0; i < n; i++)
		pthread_join(ra_threads[i], NULL);
	pthread_mutex_lock(&ra_lock);
	ra_nthreads = 0;
	for (size_t i = 0; i < RA_SLOTS; i++) {
		free(ra_slots[i].buf);
		memset(&ra_slots[i], 0, sizeof(ra_slots[i]));
	}
	pthread_mutex_unlock(&ra_lock);
}
