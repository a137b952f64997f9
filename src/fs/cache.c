/*
 * cache.c - the local chunk cache and the table of inodes in use.
 *
 * A regular file's data lives either in one sparse cache file of the file's
 * full size, <cache>/<ino as 16 hex digits>, or - while the file is no
 * bigger than CACHE_SLOT - in its slot of a shared slab file,
 * <cache>/slab.<ino >> CACHE_SLAB_SHIFT as 8 hex digits>, at (ino &
 * CACHE_SLAB_MASK) * CACHE_SLOT.  A cache file of its own, when it exists,
 * wins; a file that grows beyond its slot moves out (node_leave_slab) and
 * never moves back.  Slabs spare a small file the creation and removal of a
 * file in the cache directory (ext4 inode allocation was a third of the CPU
 * of a create).  Bytes of a slot beyond the end of its file are holes.
 *
 * Which chunks are valid is in the chunk records of meta.c
 * (FS_CHUNK_PRESENT, or no committed ref at all: then the cache is the only
 * copy).  A cache file or slab found missing (the cache directory was
 * emptied) clears the flags it can no longer honour.  evict.c keeps the
 * cache under its cap.
 *
 * The node table holds a struct fs_node per inode in use, with the lock that
 * orders data changes of that inode and its open counts.  Its own lock
 * (node_table_lock) is a leaf: nothing else is taken while holding it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "fs.h"

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif

struct cache_slab {
	uint64_t idx;
	int fd;
	struct cache_slab *next;
};

struct fs_cache {
	char *dir;
	pthread_mutex_t slab_lock; /* a leaf, except for slab_forget's txns */
	struct cache_slab *slabs;  /* slab_lock; open until cache_close */
};

#define NODE_BUCKETS 4096
static pthread_mutex_t node_table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fs_node *node_table[NODE_BUCKETS]; /* node_table_lock */

int cache_open(const char *dir, struct fs_cache **out)
{
	struct fs_cache *c = calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return -ENOMEM;
	rc = mkdir_p(dir, 0700);
	if (rc < 0) {
		log_err("cache directory %s: %s", dir, strerror(-rc));
		free(c);
		return rc;
	}
	c->dir = strdup(dir);
	if (!c->dir) {
		free(c);
		return -ENOMEM;
	}
	pthread_mutex_init(&c->slab_lock, NULL);
	*out = c;
	return 0;
}

void cache_close(struct fs_cache *c)
{
	if (!c)
		return;
	while (c->slabs) {
		struct cache_slab *s = c->slabs;

		c->slabs = s->next;
		close(s->fd);
		free(s);
	}
	pthread_mutex_destroy(&c->slab_lock);
	free(c->dir);
	free(c);
}

void cache_path(const struct fs_cache *c, uint64_t ino, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%016" PRIx64, c->dir, ino);
}

static bool is_cache_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 13 && memcmp(name, "slab.", 5) == 0)
		name += 5, len = 8; /* a slab */
	else if (len == 20 && strcmp(name + 16, ".new") == 0)
		len = 16; /* a move out of a slab that did not finish */
	if (len != 16 && len != 8)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	return true;
}

int cache_wipe(struct fs_cache *c)
{
	DIR *d = opendir(c->dir);
	struct dirent *de;
	unsigned n = 0;

	if (!d)
		return -errno;
	/* open slabs are dropped with their files */
	pthread_mutex_lock(&c->slab_lock);
	while (c->slabs) {
		struct cache_slab *s = c->slabs;

		c->slabs = s->next;
		close(s->fd);
		free(s);
	}
	pthread_mutex_unlock(&c->slab_lock);
	while ((de = readdir(d)) != NULL) {
		if (!is_cache_name(de->d_name))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
			int err = errno;

			log_err("cache: removing %s/%s: %s", c->dir, de->d_name, strerror(err));
			closedir(d);
			return -err;
		}
		n++;
	}
	closedir(d);
	if (n)
		log_info("cache: removed %u stale cache files", n);
	return 0;
}

static int slab_fd(struct fs_cache *c, uint64_t idx, bool create);
static uint64_t slab_index(uint64_t ino);
static uint64_t slab_base(uint64_t ino);

int cache_unlink_run(struct fs_cache *c, uint64_t ino, uint64_t n)
{
	char path[4200];
	int fd = slab_fd(c, slab_index(ino), false), rc = 0;

	if (n == 0 || slab_index(ino + n - 1) != slab_index(ino))
		return -EINVAL;
	/* their slots, in case they had some (cheap when they hold nothing):
	 * one punch for the run, ext4 walks its extent tree once */
	if (fd >= 0 && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				 (off_t)slab_base(ino), (off_t)(n * CACHE_SLOT)) < 0)
		log_warn("cache: emptying the slots of inodes %" PRIu64 "..%" PRIu64 ": %s",
			 ino, ino + n - 1, strerror(errno));
	for (uint64_t i = ino; i < ino + n; i++) {
		cache_path(c, i, path, sizeof(path));
		if (unlink(path) < 0 && errno != ENOENT) {
			rc = -errno;
			log_warn("cache: removing %s: %s", path, strerror(errno));
		}
	}
	return rc;
}

int cache_unlink(struct fs_cache *c, uint64_t ino)
{
	return cache_unlink_run(c, ino, 1);
}

/* true if ino is gone from the store (-ENOENT); any other error keeps it.
 * A transaction of its own, begun after the caller saw the inode's data: a
 * file created meanwhile is in it (its inode commits before its first
 * write), which an older snapshot would miss. */
static bool inode_gone(struct fs_inode *in, uint64_t ino)
{
	struct fs_txn t;
	bool gone;

	if (meta_begin(fs.meta, false, &t) < 0)
		return false;
	gone = meta_inode_get(&t, ino, in) == -ENOENT;
	meta_abort(&t);
	return gone;
}

/* Punches the slots of slab fd (index idx) that hold data of inodes gone
 * from the store; counts them in *n. */
static int reclaim_slab(int fd, uint64_t idx, struct fs_inode *in, uint64_t *n)
{
	off_t off = 0;
	int rc = 0;

	for (;;) {
		off_t data = lseek(fd, off, SEEK_DATA);
		uint64_t slot, ino;

		if (data < 0) {
			rc = errno == ENXIO ? 0 : -errno;
			break;
		}
		slot = (uint64_t)data / CACHE_SLOT;
		if (slot > CACHE_SLAB_MASK)
			break;
		ino = (idx << CACHE_SLAB_SHIFT) | slot;
		if (inode_gone(in, ino)) {
			if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)(slot * CACHE_SLOT), CACHE_SLOT) < 0) {
				rc = -errno;
				break;
			}
			(*n)++;
		}
		off = (off_t)((slot + 1) * CACHE_SLOT);
	}
	return rc;
}

int cache_reclaim(struct fs_cache *c, uint64_t *n_out)
{
	struct fs_inode *in = malloc(sizeof(*in));
	DIR *d = opendir(c->dir);
	struct dirent *de;
	uint64_t n = 0;
	int rc = 0;

	if (!in || !d) {
		rc = in ? -errno : -ENOMEM;
		goto out;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		uint64_t v;
		int fd;

		if (!is_cache_name(de->d_name) || (len != 16 && len != 13))
			continue; /* not ours, or a move out of a slab (cache.c's) */
		v = strtoull(de->d_name + (len == 13 ? 5 : 0), NULL, 16);
		if (len == 16) {
			if (inode_gone(in, v)) {
				if (unlinkat(dirfd(d), de->d_name, 0) == 0)
					n++;
				else if (errno != ENOENT)
					rc = -errno;
			}
			continue;
		}
		fd = openat(dirfd(d), de->d_name, O_RDWR | O_CLOEXEC);
		if (fd < 0) {
			rc = errno == ENOENT ? 0 : -errno;
			continue;
		}
		rc = reclaim_slab(fd, v, in, &n);
		close(fd);
	}
	if (rc < 0)
		log_warn("cache: reclaiming the data of deleted inodes: %s", strerror(-rc));
out:
	if (d)
		closedir(d);
	free(in);
	if (n_out)
		*n_out = n;
	return rc;
}

/* ---- nodes ---- */

struct fs_node *node_get(uint64_t ino)
{
	struct fs_node *n;
	unsigned b = (unsigned)(ino % NODE_BUCKETS);

	pthread_mutex_lock(&node_table_lock);
	for (n = node_table[b]; n; n = n->next)
		if (n->ino == ino)
			break;
	if (n) {
		n->refs++;
	} else {
		n = calloc(1, sizeof(*n));
		if (n) {
			n->ino = ino;
			n->fd = -1;
			n->refs = 1;
			pthread_mutex_init(&n->lock, NULL);
			n->next = node_table[b];
			node_table[b] = n;
		}
	}
	pthread_mutex_unlock(&node_table_lock);
	return n;
}

void node_put(struct fs_node *n)
{
	struct fs_node **pp;
	unsigned b;

	if (!n)
		return;
	b = (unsigned)(n->ino % NODE_BUCKETS);
	pthread_mutex_lock(&node_table_lock);
	if (--n->refs > 0) {
		pthread_mutex_unlock(&node_table_lock);
		return;
	}
	for (pp = &node_table[b]; *pp; pp = &(*pp)->next)
		if (*pp == n) {
			*pp = n->next;
			break;
		}
	pthread_mutex_unlock(&node_table_lock);
	if (n->fd >= 0 && !n->slab)
		close(n->fd);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

void node_open(struct fs_node *n, bool writer)
{
	pthread_mutex_lock(&node_table_lock);
	n->opens++;
	if (writer)
		n->writers++;
	pthread_mutex_unlock(&node_table_lock);
}

void node_release(struct fs_node *n, bool writer, unsigned *opens_left)
{
	pthread_mutex_lock(&node_table_lock);
	if (n->opens > 0)
		n->opens--;
	if (writer && n->writers > 0)
		n->writers--;
	*opens_left = n->opens;
	pthread_mutex_unlock(&node_table_lock);
}

static struct fs_node *node_find_locked(uint64_t ino)
{
	struct fs_node *n;

	for (n = node_table[ino % NODE_BUCKETS]; n; n = n->next)
		if (n->ino == ino)
			return n;
	return NULL;
}

bool node_is_open(uint64_t ino)
{
	struct fs_node *n;
	bool open;

	pthread_mutex_lock(&node_table_lock);
	n = node_find_locked(ino);
	open = n && n->opens > 0;
	pthread_mutex_unlock(&node_table_lock);
	return open;
}

bool node_has_writer(uint64_t ino)
{
	struct fs_node *n;
	bool w;

	pthread_mutex_lock(&node_table_lock);
	n = node_find_locked(ino);
	w = n && n->writers > 0;
	pthread_mutex_unlock(&node_table_lock);
	return w;
}

/* ---- slabs: the data of small files ---- */

static uint64_t slab_index(uint64_t ino)
{
	return ino >> CACHE_SLAB_SHIFT;
}
static uint64_t slab_base(uint64_t ino)
{
	return (ino & CACHE_SLAB_MASK) * CACHE_SLOT;
}

static void slab_path(const struct fs_cache *c, uint64_t idx, char *buf, size_t len)
{
	snprintf(buf, len, "%s/slab.%08" PRIx64, c->dir, idx);
}

struct slab_clear {
	uint64_t lo, hi; /* inodes [lo, hi) */
	uint64_t *ino, *idx;
	size_t n, cap;
};

static int slab_clear_cb(uint64_t ino, uint64_t idx, const struct fs_chunk *c, void *arg)
{
	struct slab_clear *sc = arg;

	if (ino < sc->lo || ino >= sc->hi || !(c->flags & FS_CHUNK_PRESENT))
		return 0;
	if (sc->n == sc->cap) {
		size_t cap = sc->cap ? 2 * sc->cap : 256;
		uint64_t *a = realloc(sc->ino, cap * sizeof(*a)), *b;

		if (!a)
			return -ENOMEM;
		sc->ino = a;
		b = realloc(sc->idx, cap * sizeof(*b));
		if (!b)
			return -ENOMEM;
		sc->idx = b;
		sc->cap = cap;
	}
	sc->ino[sc->n] = ino;
	sc->idx[sc->n++] = idx;
	return 0;
}

/* A slab file had to be created: the "present" flags of the inodes it would
 * hold describe data that is gone (the cache directory was emptied), except
 * for inodes with a cache file of their own. */
static int slab_forget(struct fs_cache *c, uint64_t idx)
{
	struct slab_clear sc = {.lo = idx << CACHE_SLAB_SHIFT,
				.hi = (idx + 1) << CACHE_SLAB_SHIFT};
	struct fs_txn t;
	uint64_t own_ino = 0;
	bool own = false;
	int rc;

	rc = meta_begin(fs.meta, false, &t);
	if (rc < 0)
		return rc;
	rc = meta_chunk_iter(&t, slab_clear_cb, &sc);
	meta_abort(&t);
	if (rc == 0 && sc.n)
		rc = meta_begin(fs.meta, true, &t);
	for (size_t i = 0; rc == 0 && i < sc.n; i++) {
		struct fs_chunk ch;
		char path[4200];

		if (i == 0 || sc.ino[i] != own_ino) {
			own_ino = sc.ino[i];
			cache_path(c, own_ino, path, sizeof(path));
			own = access(path, F_OK) == 0;
		}
		if (own || meta_chunk_get(&t, sc.ino[i], sc.idx[i], &ch) < 0 ||
		    !(ch.flags & FS_CHUNK_PRESENT))
			continue;
		if (!(ch.flags & FS_CHUNK_REF)) {
			log_err("cache: data of inode %" PRIu64 " chunk %" PRIu64
				" was never uploaded and its cache file is gone",
				sc.ino[i], sc.idx[i]);
			continue;
		}
		ch.flags &= ~(uint32_t)FS_CHUNK_PRESENT;
		rc = meta_chunk_put(&t, sc.ino[i], sc.idx[i], &ch, false);
	}
	if (sc.n) {
		if (rc == 0)
			rc = meta_commit(&t);
		else if (t.txn)
			meta_abort(&t);
	}
	free(sc.ino);
	free(sc.idx);
	return rc;
}

/* The fd of slab idx (kept open until cache_close); create: make it if
 * missing, else -ENOENT. */
static int slab_fd(struct fs_cache *c, uint64_t idx, bool create)
{
	char path[4200];
	struct cache_slab *s;
	int fd, rc = 0;

	pthread_mutex_lock(&c->slab_lock);
	for (s = c->slabs; s; s = s->next)
		if (s->idx == idx)
			break;
	if (s) {
		fd = s->fd;
		goto out;
	}
	slab_path(c, idx, path, sizeof(path));
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		/* sized once (sparse): a slot never reads short */
		if (fd >= 0 && ftruncate(fd, (off_t)(CACHE_SLOT << CACHE_SLAB_SHIFT)) < 0)
			rc = -errno;
		if (fd >= 0 && rc == 0)
			rc = slab_forget(c, idx);
		if (rc < 0) {
			log_err("cache: creating %s: %s", path, strerror(-rc));
			close(fd);
			unlink(path);
			fd = rc;
			goto out;
		}
	}
	if (fd < 0) {
		fd = -errno;
		if (fd != -ENOENT)
			log_err("cache: opening %s: %s", path, strerror(-fd));
		goto out;
	}
	s = malloc(sizeof(*s));
	if (!s) {
		close(fd);
		fd = -ENOMEM;
		goto out;
	}
	s->idx = idx;
	s->fd = fd;
	s->next = c->slabs;
	c->slabs = s;
out:
	pthread_mutex_unlock(&c->slab_lock);
	return fd;
}

/* ---- a node's cache data ---- */

static void node_use_slab(struct fs_node *n, int fd)
{
	n->fd = fd;
	n->slab = true;
	n->base = slab_base(n->ino);
}

/* n locked: its own cache file if there is one, else its slot (create: the
 * slab is made if missing).  Nothing is resized. */
static int node_open_data(struct fs_node *n, bool create)
{
	char path[4200];
	int fd;

	if (n->fd >= 0)
		return n->fd;
	cache_path(fs.cache, n->ino, path, sizeof(path));
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		n->fd = fd;
		n->slab = false;
		n->base = 0;
		return fd;
	}
	if (errno != ENOENT) {
		log_err("cache: opening %s: %s", path, strerror(errno));
		return -errno;
	}
	fd = slab_fd(fs.cache, slab_index(n->ino), create);
	if (fd >= 0)
		node_use_slab(n, fd);
	return fd;
}

int node_locate(struct fs_node *n)
{
	return node_open_data(n, false);
}

/* n locked, with no data of its own yet: a new, empty cache file of its own
 * (its "present" flags cannot be honoured: the file is bigger than a slot,
 * so its cache file was removed). */
static int node_own_fresh(struct fs_node *n, uint64_t size)
{
	char path[4200];
	struct fs_txn t;
	uint64_t nchunks = (size + fs.chunk_size - 1) / fs.chunk_size;
	int fd, rc;

	cache_path(fs.cache, n->ino, path, sizeof(path));
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_err("cache: opening %s: %s", path, strerror(errno));
		return -errno;
	}
	rc = meta_begin(fs.meta, true, &t);
	for (uint64_t i = 0; rc == 0 && i < nchunks; i++) {
		struct fs_chunk c;

		if (meta_chunk_get(&t, n->ino, i, &c) < 0 || !(c.flags & FS_CHUNK_PRESENT))
			continue;
		if (!(c.flags & FS_CHUNK_REF)) {
			log_err("cache: data of inode %" PRIu64 " chunk %" PRIu64
				" was never uploaded and its cache file is gone",
				n->ino, i);
			continue;
		}
		c.flags &= ~(uint32_t)FS_CHUNK_PRESENT;
		rc = meta_chunk_put(&t, n->ino, i, &c, false);
	}
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	n->fd = fd;
	n->slab = false;
	n->base = 0;
	return fd;
}

/* n locked, in its slot: moves the slot's bytes to a cache file of its own
 * (complete under a temporary name, then renamed in), then empties the
 * slot.  The flusher reads under the node lock, so it sees one or the
 * other. */
static int node_leave_slab(struct fs_node *n)
{
	char path[4200], tmp[4300];
	uint8_t *buf = malloc(CACHE_SLOT);
	size_t used = CACHE_SLOT;
	int fd = -1, rc;

	if (!buf)
		return -ENOMEM;
	cache_path(fs.cache, n->ino, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.new", path);
	rc = pread_full(n->fd, buf, CACHE_SLOT, n->base);
	if (rc < 0)
		goto out;
	while (used > 0 && buf[used - 1] == 0)
		used--;
	fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	rc = pwrite_full(fd, buf, used, 0);
	if (rc == 0 && ftruncate(fd, CACHE_SLOT) < 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		goto out;
	if (fallocate(n->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)n->base,
		      CACHE_SLOT) < 0)
		log_warn("cache: emptying the slot of inode %" PRIu64 ": %s", n->ino,
			 strerror(errno));
	n->fd = fd;
	n->slab = false;
	n->base = 0;
	fd = -1;
out:
	if (rc < 0) {
		log_err("cache: moving inode %" PRIu64 " to %s: %s", n->ino, path,
			strerror(-rc));
		unlink(tmp);
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	return rc;
}

int node_fd(struct fs_node *n, uint64_t size)
{
	struct stat st;
	int fd;

	if (n->fd < 0) {
		fd = node_open_data(n, true);
		if (fd == -ENOENT || (fd >= 0 && n->slab && size > CACHE_SLOT)) {
			/* a file bigger than a slot has a cache file of its own */
			n->fd = -1;
			fd = node_own_fresh(n, size);
		}
		if (fd < 0)
			return fd;
		if (!n->slab && (fstat(fd, &st) < 0 || ((uint64_t)st.st_size != size &&
							ftruncate(fd, (off_t)size) < 0))) {
			int err = errno;

			log_err("cache: sizing the cache file of inode %" PRIu64 ": %s", n->ino,
				strerror(err));
			close(fd);
			n->fd = -1;
			return -err;
		}
	}
	return n->fd;
}

int node_room(struct fs_node *n, uint64_t size)
{
	if (n->fd < 0)
		return -EBADF;
	if (n->slab && size > CACHE_SLOT)
		return node_leave_slab(n);
	return 0;
}

int node_pread(struct fs_node *n, void *buf, size_t len, uint64_t off)
{
	if (n->fd < 0)
		return -EBADF;
	if (n->slab) {
		/* nothing lies beyond a slot */
		size_t in =
		    off >= CACHE_SLOT ? 0 : (size_t)MIN((uint64_t)len, CACHE_SLOT - off);

		memset((uint8_t *)buf + in, 0, len - in);
		return in ? pread_full(n->fd, buf, in, n->base + off) : 0;
	}
	return pread_full(n->fd, buf, len, off);
}

int node_pwrite(struct fs_node *n, const void *buf, size_t len, uint64_t off)
{
	int rc;

	if (n->fd < 0)
		return -EBADF;
	rc = node_room(n, off + len);
	if (rc < 0)
		return rc;
	return pwrite_full(n->fd, buf, len, n->base + off);
}

int node_punch(struct fs_node *n, uint64_t off, uint64_t len)
{
	if (n->fd < 0)
		return -EBADF;
	if (n->slab) {
		if (off >= CACHE_SLOT)
			return 0;
		len = MIN(len, CACHE_SLOT - off);
	}
	if (len && fallocate(n->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			     (off_t)(n->base + off), (off_t)len) < 0)
		return -errno;
	return 0;
}

int node_resize(struct fs_node *n, uint64_t size)
{
	int rc;

	if (n->fd < 0)
		return -EBADF;
	rc = node_room(n, size);
	if (rc < 0)
		return rc;
	/* a slot keeps zeros beyond the end of its file */
	if (n->slab)
		return size < CACHE_SLOT ? node_punch(n, size, CACHE_SLOT - size) : 0;
	if (ftruncate(n->fd, (off_t)size) < 0)
		return -errno;
	return 0;
}

int node_datasync(struct fs_node *n)
{
	if (n->fd >= 0 && fdatasync(n->fd) < 0)
		return -errno;
	return 0;
}
