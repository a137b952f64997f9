/*
 * cache.c - the local chunk cache and the table of inodes in use.
 *
 * Each regular file's data lives in one sparse cache file of the file's full
 * size, <cache>/<ino as 16 hex digits>; which chunks of it are valid is in
 * the chunk records of meta.c (FS_CHUNK_PRESENT, or no committed ref at all:
 * then the cache file is the only copy).  Nothing is evicted yet: the cache
 * holds every file read or written through this mount (a later issue).
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

struct fs_cache {
	char *dir;
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
	*out = c;
	return 0;
}

void cache_close(struct fs_cache *c)
{
	if (!c)
		return;
	free(c->dir);
	free(c);
}

void cache_path(const struct fs_cache *c, uint64_t ino, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%016" PRIx64, c->dir, ino);
}

static bool is_cache_name(const char *name)
{
	if (strlen(name) != 16)
		return false;
	for (int i = 0; i < 16; i++)
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

int cache_unlink(struct fs_cache *c, uint64_t ino)
{
	char path[4200];

	cache_path(c, ino, path, sizeof(path));
	if (unlink(path) < 0 && errno != ENOENT) {
		log_warn("cache: removing %s: %s", path, strerror(errno));
		return -errno;
	}
	return 0;
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
	if (n->fd >= 0)
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

/* Opens the cache file of a locked node.  A missing cache file while the
 * store says chunks are present means the cache directory was emptied under
 * us: those chunks are refetched (committed) or lost (never uploaded). */
int node_fd(struct fs_node *n, uint64_t size)
{
	char path[4200];
	struct stat st;
	int fd;

	if (n->fd >= 0)
		return n->fd;
	cache_path(fs.cache, n->ino, path, sizeof(path));
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		struct fs_txn t;
		uint64_t nchunks = (size + fs.chunk_size - 1) / fs.chunk_size;
		int rc;

		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			goto fail;
		/* Forget "present" flags the new, empty file cannot honour. */
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
	}
	if (fd < 0)
		goto fail;
	if (fstat(fd, &st) < 0 || ((uint64_t)st.st_size != size && ftruncate(fd, (off_t)size) < 0)) {
		int err = errno;

		close(fd);
		log_err("cache: sizing %s: %s", path, strerror(err));
		return -err;
	}
	n->fd = fd;
	return fd;
fail:
	log_err("cache: opening %s: %s", path, strerror(errno));
	return -errno;
}
