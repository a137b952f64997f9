/*
 * refresh.c - read-only mounts (-o ro): a view of what the volume's writer
 * has committed to the FAT, refreshed on a bounded interval.
 *
 * The local state of a read-only mount is a disposable copy of the FAT
 * mirror: it is rebuilt at every start (refresh_prepare_state removes it;
 * a <state>/READONLY marker makes a later read-write mount of the same
 * directory rebuild as well), and a thread ("pstorefs-refresh") polls the
 * volume's revision every refresh_ms.  When it changed, the whole mirror is
 * listed and swapped in with one LMDB transaction; chunks whose id did not
 * change keep their cached data, the cache data of changed chunks is punched
 * out under the inode's lock (held across the swap, so that no reader sees
 * new metadata over old data), and the kernel's caches of what changed are
 * invalidated.  The kernel refuses writes (the mount is MS_RDONLY); the
 * flusher does not run.
 *
 * Both modes take an flock on <state>/lock so that two pstorefs never share
 * a state directory.
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "fs.h"

static int lock_fd = -1;
static pthread_t refresh_thread;
static bool refresh_running;
static pthread_mutex_t refresh_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t refresh_cond;
static bool refresh_stopping; /* refresh_lock */

static void state_file(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", fs.cfg.state_dir, name);
}

int refresh_prepare_state(void)
{
	char path[4200], marker[4200];
	bool wipe;

	state_file(path, sizeof(path), "lock");
	lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock_fd < 0) {
		log_err("%s: %s", path, strerror(errno));
		return -errno;
	}
	if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		log_err("state directory %s is in use by another pstorefs; give each mount its "
			"own (-o state=DIR,cache=DIR)",
			fs.cfg.state_dir);
		close(lock_fd);
		lock_fd = -1;
		return -EBUSY;
	}
	state_file(marker, sizeof(marker), "READONLY");
	wipe = fs.cfg.readonly || access(marker, F_OK) == 0;
	if (!wipe)
		return 0;
	for (const char *const *f = (const char *const[]){"data.mdb", "lock.mdb", NULL}; *f;
	     f++) {
		state_file(path, sizeof(path), *f);
		if (unlink(path) < 0 && errno != ENOENT) {
			log_err("removing %s: %s", path, strerror(errno));
			return -errno;
		}
	}
	if (fs.cfg.readonly) {
		int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

		if (fd < 0) {
			log_err("%s: %s", marker, strerror(errno));
			return -errno;
		}
		close(fd);
	} else {
		unlink(marker);
		log_info("state directory %s was a read-only mount's: rebuilding it",
			 fs.cfg.state_dir);
	}
	return 0;
}

/* ---- one refresh ---- */

/* Local chunk records as items: key = 'c' key, val = flags(4) + chunk id. */
static int local_chunk_cb(uint64_t ino, uint64_t idx, const struct fs_chunk *c, void *arg)
{
	uint8_t key[17], val[4 + CHUNK_ID_LEN];

	memcpy(val, &c->flags, 4);
	memcpy(val + 4, c->ref.chunk_id, CHUNK_ID_LEN);
	return mirror_kvs_add(arg, key, mirror_key_chunk(key, ino, idx), val, sizeof(val));
}

struct touched {
	uint64_t *ino;
	size_t n, cap;
};

static int touched_add(struct touched *t, uint64_t ino)
{
	if (t->n && t->ino[t->n - 1] == ino)
		return 0;
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 64;
		uint64_t *p = realloc(t->ino, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		t->ino = p;
		t->cap = cap;
	}
	t->ino[t->n++] = ino;
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Puts one mirror item into the new local state. */
static int apply_item(struct fs_txn *t, const struct mirror_kv *x,
		      const struct mirror_kvs *old_chunks)
{
	uint64_t a, b;
	const char *name;
	size_t nlen;
	char nm[FS_NAME_MAX + 1];
	int kind = mirror_key_parse(x->key, x->klen, &a, &b, &name, &nlen), rc = -EBADMSG;

	if (kind == FS_KEY_INODE) {
		struct fs_inode *in = malloc(sizeof(*in));

		if (!in)
			return -ENOMEM;
		rc = mirror_inode_decode(x->val, x->vlen, a, in);
		if (rc == 0)
			rc = meta_inode_put(t, in, false);
		free(in);
	} else if (kind == FS_KEY_DIRENT && nlen <= FS_NAME_MAX) {
		struct fs_dirent_val d;

		memcpy(nm, name, nlen);
		nm[nlen] = '\0';
		rc = mirror_dirent_decode(x->val, x->vlen, &d);
		if (rc == 0)
			rc = meta_dirent_put(t, a, nm, &d, false);
	} else if (kind == FS_KEY_XATTR && nlen <= FS_XATTR_NAME_MAX) {
		const uint8_t *v;
		size_t vl;
		char xn[FS_XATTR_NAME_MAX + 1];

		memcpy(xn, name, nlen);
		xn[nlen] = '\0';
		rc = mirror_xattr_decode(x->val, x->vlen, &v, &vl);
		if (rc == 0)
			rc = meta_xattr_put(t, a, xn, v, vl, false);
	} else if (kind == FS_KEY_CHUNK) {
		struct fs_chunk c = {.flags = FS_CHUNK_REF};
		const struct mirror_kv *o;

		rc = mirror_chunk_decode(x->val, x->vlen, &c.ref);
		if (rc == 0 && c.ref.raw_len > fs.chunk_size)
			rc = -EBADMSG;
		o = rc == 0 ? mirror_kvs_find(old_chunks, x->key, x->klen) : NULL;
		if (o && o->vlen == 4 + CHUNK_ID_LEN &&
		    memcmp(o->val + 4, c.ref.chunk_id, CHUNK_ID_LEN) == 0) {
			uint32_t fl;

			memcpy(&fl, o->val, 4);
			c.flags |= fl & FS_CHUNK_PRESENT;
		}
		if (rc == 0)
			rc = meta_chunk_put(t, a, b, &c, false);
	}
	if (rc == -EBADMSG || rc == -EINVAL || rc == -ERANGE || rc == -E2BIG) {
		log_warn("refresh: ignoring a malformed mirror entry (kind %c)",
			 x->klen ? x->key[0] : '?');
		return 0;
	}
	return rc;
}

static uint64_t inode_size(const struct mirror_kvs *it, uint64_t ino, bool *found)
{
	uint8_t key[9];
	size_t kl = mirror_key_inode(key, ino);
	const struct mirror_kv *x = mirror_kvs_find(it, key, kl);
	struct fs_inode *in;
	uint64_t size = 0;

	*found = false;
	if (!x || !(in = malloc(sizeof(*in))))
		return 0;
	if (mirror_inode_decode(x->val, x->vlen, ino, in) == 0) {
		*found = true;
		size = in->size;
	}
	free(in);
	return size;
}

static int do_refresh(void)
{
	struct mirror_kvs mir = {0}, ns = {0}, chunks = {0};
	struct touched inval = {0}, fix = {0};
	struct fs_node **nodes = NULL;
	struct fs_txn t;
	size_t i, j;
	int rc;

	rc = alloc_meta_list(fs.alloc, mirror_kvs_add_cb, &mir);
	if (rc < 0)
		goto out;
	mirror_kvs_sort(&mir);
	rc = meta_begin(fs.meta, false, &t);
	if (rc < 0)
		goto out;
	rc = meta_ns_iter(&t, mirror_kvs_add_cb, &ns);
	if (rc == 0)
		rc = meta_chunk_iter(&t, local_chunk_cb, &chunks);
	meta_abort(&t);
	if (rc < 0)
		goto out;
	/* what changed: namespace keys (kernel caches), chunks (cache data) */
	for (i = 0; rc == 0 && i < ns.n; i++) {
		const struct mirror_kv *x = mirror_kvs_find(&mir, ns.v[i].key, ns.v[i].klen);
		uint64_t a, b;
		const char *name;
		size_t nlen;
		int kind = mirror_key_parse(ns.v[i].key, ns.v[i].klen, &a, &b, &name, &nlen);

		if (x && x->vlen == ns.v[i].vlen && memcmp(x->val, ns.v[i].val, x->vlen) == 0)
			continue;
		if (kind == FS_KEY_DIRENT)
			fuse_lowlevel_notify_inval_entry(fs.se, a, name, nlen);
		else if (kind >= 0)
			rc = touched_add(&inval, a);
	}
	for (i = 0; rc == 0 && i < chunks.n; i++) {
		const struct mirror_kv *x =
		    mirror_kvs_find(&mir, chunks.v[i].key, chunks.v[i].klen);
		struct alloc_chunk_ref ref;
		uint64_t a, b;
		const char *name;
		size_t nlen;
		uint32_t fl;

		mirror_key_parse(chunks.v[i].key, chunks.v[i].klen, &a, &b, &name, &nlen);
		memcpy(&fl, chunks.v[i].val, 4);
		if (x && mirror_chunk_decode(x->val, x->vlen, &ref) == 0 &&
		    memcmp(ref.chunk_id, chunks.v[i].val + 4, CHUNK_ID_LEN) == 0)
			continue;
		rc = touched_add(&inval, a);
		if (rc == 0 && (fl & FS_CHUNK_PRESENT))
			rc = touched_add(&fix, a);
	}
	for (i = 0; rc == 0 && i < mir.n; i++) {
		uint64_t a, b;
		const char *name;
		size_t nlen;

		if (mirror_key_parse(mir.v[i].key, mir.v[i].klen, &a, &b, &name, &nlen) ==
			FS_KEY_CHUNK &&
		    !mirror_kvs_find(&chunks, mir.v[i].key, mir.v[i].klen))
			rc = touched_add(&inval, a);
		else if (nlen && mir.v[i].key[0] == FS_KEY_DIRENT &&
			 !mirror_kvs_find(&ns, mir.v[i].key, mir.v[i].klen))
			fuse_lowlevel_notify_inval_entry(fs.se, a, name, nlen);
	}
	if (rc < 0)
		goto out;
	/* every inode whose attributes or chunks changed gets its cache file
	 * resized and its stale chunks punched out, under its lock */
	for (i = 0; i < inval.n && rc == 0; i++)
		rc = touched_add(&fix, inval.ino[i]);
	if (rc < 0)
		goto out;
	qsort(fix.ino, fix.n, sizeof(*fix.ino), u64_cmp);
	for (i = j = 0; i < fix.n; i++)
		if (j == 0 || fix.ino[j - 1] != fix.ino[i])
			fix.ino[j++] = fix.ino[i];
	fix.n = j;
	nodes = calloc(fix.n + 1, sizeof(*nodes));
	if (!nodes) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < fix.n; i++) {
		nodes[i] = node_get(fix.ino[i]);
		if (!nodes[i]) {
			rc = -ENOMEM;
			goto unlock;
		}
		pthread_mutex_lock(&nodes[i]->lock);
	}
	for (i = 0; i < fix.n; i++) {
		bool found;
		uint64_t size = inode_size(&mir, fix.ino[i], &found);
		int err;

		if (node_locate(nodes[i]) < 0)
			continue;
		/* chunks of this inode that changed or went: punch their data */
		for (j = 0; j < chunks.n; j++) {
			uint64_t a, b;
			const char *name;
			size_t nlen;
			const struct mirror_kv *x;
			struct alloc_chunk_ref ref;

			mirror_key_parse(chunks.v[j].key, chunks.v[j].klen, &a, &b, &name,
					 &nlen);
			if (a != fix.ino[i])
				continue;
			x = mirror_kvs_find(&mir, chunks.v[j].key, chunks.v[j].klen);
			if (x && mirror_chunk_decode(x->val, x->vlen, &ref) == 0 &&
			    memcmp(ref.chunk_id, chunks.v[j].val + 4, CHUNK_ID_LEN) == 0)
				continue;
			(void)node_punch(nodes[i], b * fs.chunk_size, fs.chunk_size);
		}
		if (found && (err = node_resize(nodes[i], size)) < 0)
			log_warn("refresh: resizing the cache of inode %" PRIu64 ": %s",
				 fix.ino[i], strerror(-err));
		if (!found)
			cache_unlink(fs.cache, fix.ino[i]);
	}
	rc = meta_begin(fs.meta, true, &t);
	if (rc < 0)
		goto unlock;
	rc = meta_clear_all(&t);
	for (i = 0; rc == 0 && i < mir.n; i++)
		rc = apply_item(&t, &mir.v[i], &chunks);
	if (rc == 0)
		rc = meta_clear_marks(&t);
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
unlock:
	for (i = 0; i < fix.n && nodes[i]; i++) {
		pthread_mutex_unlock(&nodes[i]->lock);
		node_put(nodes[i]);
	}
	for (i = 0; rc == 0 && i < inval.n; i++)
		fuse_lowlevel_notify_inval_inode(fs.se, inval.ino[i], 0, 0);
out:
	if (rc == 0)
		log_info("refresh: %zu mirror entries, %zu inodes changed", mir.n, inval.n);
	free(nodes);
	free(inval.ino);
	free(fix.ino);
	mirror_kvs_free(&mir);
	mirror_kvs_free(&ns);
	mirror_kvs_free(&chunks);
	return rc;
}

static void *refresh_main(void *arg)
{
	uint64_t last_rev = fs.vol.revision;

	(void)arg;
	pthread_mutex_lock(&refresh_lock);
	while (!refresh_stopping) {
		struct timespec ts;
		struct alloc_volume v;
		int rc;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += fs.cfg.refresh_ms / 1000;
		ts.tv_nsec += (long)(fs.cfg.refresh_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&refresh_cond, &refresh_lock, &ts);
		if (refresh_stopping)
			break;
		pthread_mutex_unlock(&refresh_lock);
		rc = alloc_volume_open(fs.alloc, fs.vol.name, &v);
		if (rc == 0 && v.revision != last_rev) {
			rc = do_refresh();
			if (rc == 0)
				last_rev = v.revision;
		}
		if (rc < 0)
			log_warn("refresh: following volume %s failed: %s; retrying",
				 fs.vol.name, strerror(-rc));
		pthread_mutex_lock(&refresh_lock);
	}
	pthread_mutex_unlock(&refresh_lock);
	return NULL;
}

int refresh_start(void)
{
	pthread_condattr_t ca;
	int rc;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&refresh_cond, &ca);
	pthread_condattr_destroy(&ca);
	refresh_stopping = false;
	rc = pthread_create(&refresh_thread, NULL, refresh_main, NULL);
	if (rc) {
		log_err("cannot start the refresh thread: %s", strerror(rc));
		return -rc;
	}
	pthread_setname_np(refresh_thread, "pstorefs-refresh");
	refresh_running = true;
	log_info("read-only mount of volume %s: following the FAT every %u ms", fs.vol.name,
		 fs.cfg.refresh_ms);
	return 0;
}

void refresh_stop(void)
{
	if (refresh_running) {
		pthread_mutex_lock(&refresh_lock);
		refresh_stopping = true;
		pthread_cond_broadcast(&refresh_cond);
		pthread_mutex_unlock(&refresh_lock);
		pthread_join(refresh_thread, NULL);
		refresh_running = false;
	}
	if (lock_fd >= 0) {
		close(lock_fd);
		lock_fd = -1;
	}
}
