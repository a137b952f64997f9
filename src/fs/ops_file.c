/*
 * ops_file.c - FUSE handlers for file data: create, open, read, write,
 * release, fsync, and the truncate used by setattr; plus init and
 * destroy of the session.
 *
 * Data goes through the inode's cache file (cache.c).  A write marks the
 * chunks it touches dirty in the same LMDB transaction that records the new
 * size, so the flusher (flush.c) uploads them later; a read of a committed
 * chunk the cache does not hold fetches it first (alloc_fetch), or reads it
 * from the readahead's slot that holds it (readahead.c).  A partial
 * write or a truncate into such a chunk fetches it too, because chunks are
 * uploaded whole.  The node lock orders these per inode.
 *
 * Writers never wait for the network (except for that read-modify-write
 * fetch); fsync waits for the flusher's commit.
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "fs.h"
#include "ops.h"

static uint64_t chunk_len_at(uint64_t size, uint64_t idx)
{
	uint64_t start = idx * fs.chunk_size;

	return start >= size ? 0 : MIN((uint64_t)fs.chunk_size, size - start);
}

/* n locked: marks chunk idx present (its bytes are in the cache file). */
static int mark_present(struct fs_node *n, uint64_t idx, uint64_t len)
{
	struct fs_chunk c;
	struct fs_txn t;
	int rc = meta_begin(fs.meta, true, &t);

	if (rc < 0)
		return rc;
	rc = meta_chunk_get(&t, n->ino, idx, &c);
	if (rc == 0) {
		c.flags |= FS_CHUNK_PRESENT;
		rc = meta_chunk_put(&t, n->ino, idx, &c, false);
	}
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
	if (rc == 0)
		evict_touch(n->ino, idx, len);
	return rc;
}

/* n locked.  Fetches committed chunk idx into the cache file and marks it
 * present; *fetched (if given) tells whether it had to. */
static int fetch_chunk(struct fs_node *n, const struct fs_inode *in, uint64_t idx,
		       bool *fetched)
{
	struct fs_txn t;
	struct fs_chunk c;
	uint8_t *buf = NULL;
	uint64_t len = chunk_len_at(in->size, idx);
	int fd, rc;

	evict_touch(n->ino, idx, 0); /* recency for the cache cap (evict.c) */
	/* The cache file first: when it is missing (the cache directory was
	 * emptied while the mount was stopped), node_fd clears the "present"
	 * flags it cannot honour, so the check below fetches instead of
	 * serving the new, empty file's zeros. */
	fd = node_fd(n, in->size);
	if (fd < 0)
		return fd;
	rc = meta_begin(fs.meta, false, &t);
	if (rc < 0)
		return rc;
	rc = meta_chunk_get(&t, n->ino, idx, &c);
	meta_abort(&t);
	if (rc == -ENOENT ||
	    (rc == 0 && (!(c.flags & FS_CHUNK_REF) || (c.flags & FS_CHUNK_PRESENT))))
		return 0;
	if (rc < 0)
		return rc;
	if (len == 0)
		return 0;
	/* what the file has of this chunk, not a whole chunk: a small file's
	 * fetch should not map and unmap chunk_size bytes */
	buf = malloc(MAX((size_t)len, (size_t)c.ref.raw_len));
	if (!buf)
		return -ENOMEM;
	rc = alloc_fetch(fs.alloc, &c.ref, buf);
	if (rc < 0) {
		char hex[2 * CHUNK_ID_LEN + 1];

		chunk_id_hex(c.ref.chunk_id, hex);
		log_err("read: inode %" PRIu64 " chunk %" PRIu64 " (%s): fetch failed: %s",
			n->ino, idx, hex, strerror(-rc));
		rc = -EIO;
		goto out;
	}
	if (c.ref.raw_len < len)
		memset(buf + c.ref.raw_len, 0, len - c.ref.raw_len);
	fd = node_fd(n, in->size);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	rc = node_pwrite(n, buf, len, idx * fs.chunk_size);
	if (rc < 0) {
		log_err("cache: writing inode %" PRIu64 ": %s", n->ino, strerror(-rc));
		goto out;
	}
	rc = mark_present(n, idx, len);
	if (rc == 0 && fetched)
		*fetched = true;
out:
	free(buf);
	return rc;
}

int fs_fetch_chunk(struct fs_node *n, const struct fs_inode *in, uint64_t idx)
{
	return fetch_chunk(n, in, idx, NULL);
}

int fs_get_inode(uint64_t ino, struct fs_inode *in)
{
	struct fs_txn t;
	int rc = meta_begin(fs.meta, false, &t);

	if (rc < 0)
		return rc;
	rc = meta_inode_get(&t, ino, in);
	meta_abort(&t);
	return rc;
}

/* A committed chunk that is present in the cache but clean holds bytes that
 * exist only in the page cache (fetches are not synced: reads must stay
 * fast).  Once a partial write makes it dirty, the flusher will upload the
 * cache file's copy and free the committed one, so those bytes must be
 * durable first: after a machine crash the chunk would otherwise be uploaded
 * with holes where the fetched data was.  One fdatasync per clean -> dirty
 * transition of a partially written chunk; dirty chunks do not pay again. */
static int sync_clean_edges(struct fs_node *n, int fd, uint64_t first, uint64_t last,
			    uint64_t from, uint64_t to)
{
	uint64_t idxs[2] = {first, last};
	bool need = false;
	struct fs_txn t;
	int rc;

	/* under MDB_NOSYNC a machine crash drops the local store and the cache
	 * (meta.c), so no cache byte can be uploaded after one */
	if (meta_nosync(fs.meta))
		return 0;
	rc = meta_begin(fs.meta, false, &t);
	if (rc < 0)
		return rc;
	for (int i = 0; i < (first == last ? 1 : 2) && !need; i++) {
		uint64_t start = idxs[i] * fs.chunk_size;
		struct fs_chunk c;
		struct fs_mark mk;
		uint8_t key[17];

		if (from <= start && to >= start + fs.chunk_size)
			continue; /* wholly overwritten: nothing old survives */
		if (meta_chunk_get(&t, n->ino, idxs[i], &c) < 0 ||
		    (c.flags & (FS_CHUNK_REF | FS_CHUNK_PRESENT)) !=
			(FS_CHUNK_REF | FS_CHUNK_PRESENT))
			continue;
		need = meta_mark_get(&t, FS_MARK_DATA, key,
				     mirror_key_chunk(key, n->ino, idxs[i]), &mk) == -ENOENT;
	}
	meta_abort(&t);
	if (need && fdatasync(fd) < 0) {
		rc = -errno;
		log_err("cache: syncing inode %" PRIu64 ": %s", n->ino, strerror(errno));
		return rc;
	}
	return 0;
}

/* Fetches chunk idx unless [from, to) covers all of its bytes below size. */
static int fetch_unless_covered(struct fs_node *n, const struct fs_inode *in, uint64_t idx,
				uint64_t from, uint64_t to)
{
	uint64_t start = idx * fs.chunk_size, len = chunk_len_at(in->size, idx);

	if (len == 0 || (from <= start && to >= start + len))
		return 0;
	return fs_fetch_chunk(n, in, idx);
}

int fs_truncate(uint64_t ino, uint64_t size)
{
	struct fs_node *n = node_get(ino);
	struct fs_inode *in = malloc(sizeof(*in));
	struct fs_txn t;
	uint64_t cs = fs.chunk_size;
	int fd, rc;

	if (!n || !in) {
		rc = -ENOMEM;
		goto out_free;
	}
	pthread_mutex_lock(&n->lock);
	rc = fs_get_inode(ino, in);
	if (rc < 0)
		goto out;
	if ((in->mode & S_IFMT) != S_IFREG) {
		rc = (in->mode & S_IFMT) == S_IFDIR ? -EISDIR : -EINVAL;
		goto out;
	}
	if (size > (UINT64_C(1) << 62)) {
		rc = -EFBIG;
		goto out;
	}
	if (size < in->size && size % cs) {
		rc = fs_fetch_chunk(n, in, size / cs);
		if (rc < 0)
			goto out;
	}
	fd = node_fd(n, in->size);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	rc = node_resize(n, size);
	if (rc < 0) {
		log_err("cache: truncating inode %" PRIu64 ": %s", ino, strerror(-rc));
		goto out;
	}
	rc = meta_begin(fs.meta, true, &t);
	if (rc < 0)
		goto out;
	rc = meta_inode_get(&t, ino, in);
	if (rc == 0 && size < in->size) {
		struct fs_chunk c;

		rc = meta_chunks_drop(&t, ino, (size + cs - 1) / cs);
		if (rc == 0 && size % cs && meta_chunk_get(&t, ino, size / cs, &c) == 0) {
			c.flags |= FS_CHUNK_PRESENT;
			rc = meta_chunk_put(&t, ino, size / cs, &c, false);
			if (rc == 0)
				rc = meta_chunk_dirty(&t, ino, size / cs);
		}
	}
	if (rc == 0) {
		in->size = size;
		fs_time_now(&in->mtime);
		in->ctime = in->mtime;
		rc = meta_inode_put(&t, in, true);
	}
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
	if (rc == 0)
		n->written = true;
out:
	pthread_mutex_unlock(&n->lock);
out_free:
	free(in);
	node_put(n);
	if (rc == 0)
		flush_kick();
	return rc;
}

/* ---- handlers ---- */

void ops_open_node(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		   const struct fuse_entry_param *e)
{
	struct fs_node *n = node_get(ino);

	if (!n) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	node_open(n, (fi->flags & O_ACCMODE) != O_RDONLY);
	fi->fh = (uintptr_t)n;
	/* This mount is the volume's only writer: cached pages stay valid
	 * (a read-only mount follows the writer: refresh.c). */
	fi->keep_cache = !fs.cfg.readonly;
	if (e) {
		if (fuse_reply_create(req, e, fi) == -ENOENT)
			ops_release_node(n, fi->flags);
	} else if (fuse_reply_open(req, fi) == -ENOENT) {
		ops_release_node(n, fi->flags);
	}
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_inode *in = malloc(sizeof(*in));
	int rc;

	rc = in ? fs_get_inode(ino, in) : -ENOMEM;
	if (rc == 0 && (in->mode & S_IFMT) == S_IFDIR)
		rc = -EISDIR;
	else if (rc == 0 && (in->mode & S_IFMT) != S_IFREG)
		rc = -EINVAL;
	/* atomic O_TRUNC: the kernel leaves the truncation to open */
	if (rc == 0 && (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY)
		rc = fs_truncate(ino, 0);
	free(in);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	ops_open_node(req, ino, fi, NULL);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	int rc = ops_make(req, parent, name, (mode & 07777) | S_IFREG, 0, NULL, &e);

	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	ops_open_node(req, e.ino, fi, &e);
}

/* n locked: whether chunk idx is still the committed chunk id, absent from
 * the cache, with *len bytes in the file (0 when not, or on an error). */
static bool still_absent(struct fs_node *n, struct fs_inode *in, uint64_t idx,
			 const uint8_t *id, uint64_t *len)
{
	struct fs_chunk c;
	struct fs_txn t;
	int rc = fs_get_inode(n->ino, in);

	*len = 0;
	if (rc == 0 && node_fd(n, in->size) < 0)
		rc = -EIO;
	if (rc == 0)
		rc = meta_begin(fs.meta, false, &t);
	if (rc < 0)
		return false;
	rc = meta_chunk_get(&t, n->ino, idx, &c);
	meta_abort(&t);
	if (rc < 0 || (c.flags & (FS_CHUNK_REF | FS_CHUNK_PRESENT)) != FS_CHUNK_REF ||
	    memcmp(c.ref.chunk_id, id, CHUNK_ID_LEN) != 0)
		return false;
	*len = chunk_len_at(in->size, idx);
	return *len > 0;
}

/* n locked: bytes [off, off + len) of chunk idx from data (raw_len bytes of
 * it, zeros after) into the cache file, through the page cache. */
static int put_range(struct fs_node *n, uint64_t idx, const uint8_t *data, uint64_t raw_len,
		     uint64_t off, uint64_t len)
{
	static const uint8_t zeros[64 << 10];
	uint64_t base = idx * fs.chunk_size;
	int rc = 0;

	if (off < raw_len) {
		uint64_t k = MIN(len, raw_len - off);

		rc = node_pwrite(n, data + off, (size_t)k, base + off);
		off += k;
		len -= k;
	}
	while (rc == 0 && len > 0) {
		uint64_t k = MIN(len, (uint64_t)sizeof(zeros));

		rc = node_pwrite(n, zeros, (size_t)k, base + off);
		off += k;
		len -= k;
	}
	return rc;
}

#define INSTALL_PIECE (512u << 10)

/* A chunk a sequential stream fetched (slot s) into n's cache file with
 * O_DIRECT, INSTALL_PIECE bytes per hold of the node lock: the reader is
 * served from the slot meanwhile.  Each piece first checks that the chunk
 * is still the same committed chunk absent from the cache (a write,
 * truncate or fetch in between installs or replaces it itself: then this
 * stops) and that the node still uses the same cache file; the chunk is
 * marked present after the last piece.  Bytes the direct write cannot take
 * (an unaligned tail, zeros past the raw chunk) go through the page cache. */
static int install_direct(struct fs_node *n, struct fs_inode *in, uint64_t idx,
			  const uint8_t *id, const struct ra_slot *s, uint64_t raw_len)
{
	struct stat st0, st;
	uint64_t len = 0, off = 0;
	int dfd = -1, rc = 0;

	for (;;) {
		uint64_t k, direct;

		pthread_mutex_lock(&n->lock);
		if (!still_absent(n, in, idx, id, &len) || n->slab || off > len) {
			rc = -ESTALE;
		} else if (dfd < 0) {
			char path[64];

			snprintf(path, sizeof(path), "/proc/self/fd/%d", n->fd);
			dfd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
			if (dfd < 0 || fstat(n->fd, &st0) < 0)
				rc = -errno;
		} else if (fstat(n->fd, &st) < 0 || st.st_ino != st0.st_ino ||
			   st.st_dev != st0.st_dev) {
			rc = -ESTALE; /* another cache file: not ours to fill */
		}
		if (rc < 0) {
			pthread_mutex_unlock(&n->lock);
			break;
		}
		k = MIN((uint64_t)INSTALL_PIECE, len - off);
		direct = off < raw_len ? MIN(k, raw_len - off) & ~(uint64_t)4095 : 0;
		if (direct)
			rc = pwrite_full(dfd, ra_slot_data(s, off, (size_t)direct),
					 (size_t)direct, idx * fs.chunk_size + off);
		if (rc == 0 && k > direct)
			rc = put_range(n, idx, ra_slot_data(s, 0, (size_t)raw_len), raw_len,
				       off + direct, k - direct);
		off += k;
		if (rc == 0 && off == len)
			rc = mark_present(n, idx, len);
		pthread_mutex_unlock(&n->lock);
		if (rc < 0 || off == len)
			break;
	}
	if (dfd >= 0)
		close(dfd);
	return rc;
}

/* Sequential readahead (readahead.c): fetches committed chunk idx of ino
 * without holding the node lock during the transfer, so that the reader
 * and other prefetches go on meanwhile, into a readahead slot that serves
 * readers as soon as the fetch is verified.  It installs the chunk into
 * the cache file under the lock only if it is still the same committed
 * chunk absent from the cache - the state in which no write, truncate or
 * punch has put bytes of its own there (each of those fetches first or
 * marks the chunk present).  A stream's chunk is installed with O_DIRECT
 * behind the reader, or not at all when RA_INSTALLS installs already run
 * (the slot serves it while it lasts). */
int fs_prefetch_chunk(uint64_t ino, uint64_t idx, bool stream)
{
	struct fs_node *n = node_get(ino);
	struct fs_inode *in = malloc(sizeof(*in));
	struct ra_slot *s = NULL;
	struct fs_chunk c;
	uint8_t *buf = NULL, *data;
	uint64_t len = 0, cap;
	bool fresh = false, absent = false;
	int rc = 0;

	if (!n || !in) {
		rc = n ? -ENOMEM : -ENOENT;
		goto out;
	}
	pthread_mutex_lock(&n->lock);
	rc = fs_get_inode(ino, in);
	if (rc == 0 && node_fd(n, in->size) >= 0) {
		struct fs_txn t;

		rc = meta_begin(fs.meta, false, &t);
		if (rc == 0) {
			rc = meta_chunk_get(&t, ino, idx, &c);
			meta_abort(&t);
		}
		len = chunk_len_at(in->size, idx);
		absent = rc == 0 && len > 0 &&
			 (c.flags & (FS_CHUNK_REF | FS_CHUNK_PRESENT)) == FS_CHUNK_REF;
	}
	pthread_mutex_unlock(&n->lock);
	if (!absent) {
		rc = rc == -ENOENT ? 0 : rc;
		goto out;
	}
	s = ra_slot_claim(c.ref.chunk_id, c.ref.raw_len, &fresh);
	if (s) {
		data = ra_slot_buf(s);
		if (fresh) {
			rc = alloc_fetch(fs.alloc, &c.ref, data);
			ra_slot_filled(s, rc == 0);
		}
	} else {
		cap = MAX(len, (uint64_t)c.ref.raw_len);
		data = buf = malloc((size_t)cap);
		rc = buf ? alloc_fetch(fs.alloc, &c.ref, buf) : -ENOMEM;
	}
	ra_chunk_fetched(ino, idx); /* a waiting reader goes on (from the slot) */
	if (rc < 0)
		goto out;
	if (s && stream) {
		if (ra_install_begin()) {
			rc = install_direct(n, in, idx, c.ref.chunk_id, s, c.ref.raw_len);
			ra_install_end();
			if (rc != -EINVAL)
				goto out;
			/* no O_DIRECT on the cache's file system: the page cache */
		} else {
			goto out; /* the disk is behind: served from memory only */
		}
	}
	pthread_mutex_lock(&n->lock);
	rc = still_absent(n, in, idx, c.ref.chunk_id, &len) ? 0 : -ESTALE;
	if (rc == 0)
		rc = put_range(n, idx, data, c.ref.raw_len, 0, len);
	if (rc == 0)
		rc = mark_present(n, idx, len);
	pthread_mutex_unlock(&n->lock);
out:
	if (rc == -ESTALE)
		rc = 0; /* changed meanwhile: not ours to install */
	ra_slot_put(s);
	free(buf);
	free(in);
	if (n)
		node_put(n);
	return rc;
}

/* n locked, its cache file open: the bytes [off, off + len) of the file
 * (in, as of now).  A committed chunk absent from the cache is read from a
 * readahead slot holding it, else fetched into the cache file first
 * (*fetched set).  A single slot covering all of the range is returned in
 * *one, referenced, for a reply without a copy (buf is then untouched). */
static int read_range(struct fs_node *n, const struct fs_inode *in, uint8_t *buf, uint64_t off,
		      size_t len, struct ra_slot **one, bool *fetched)
{
	uint64_t end = off + len;
	int rc = 0;

	*one = NULL;
	for (uint64_t i = off / fs.chunk_size; rc == 0 && off < end; i++) {
		uint64_t k = MIN(end, (i + 1) * fs.chunk_size) - off;
		struct ra_slot *s = NULL;
		struct fs_chunk c;
		struct fs_txn t;

		rc = meta_begin(fs.meta, false, &t);
		if (rc < 0)
			break;
		if (meta_chunk_get(&t, n->ino, i, &c) == 0 &&
		    (c.flags & (FS_CHUNK_REF | FS_CHUNK_PRESENT)) == FS_CHUNK_REF)
			s = ra_slot_find(c.ref.chunk_id);
		meta_abort(&t);
		if (s && k == len && ra_slot_data(s, off % fs.chunk_size, (size_t)k)) {
			*one = s;
			return 0;
		}
		if (s) {
			ra_slot_read(s, buf, off % fs.chunk_size, (size_t)k);
			ra_slot_put(s);
		} else {
			rc = fetch_chunk(n, in, i, fetched);
			if (rc == 0)
				rc = node_pread(n, buf, (size_t)k, off);
		}
		buf += k;
		off += k;
	}
	return rc;
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_node *n = (struct fs_node *)(uintptr_t)fi->fh;
	struct fs_inode *in = malloc(sizeof(*in));
	struct ra_slot *one = NULL;
	uint8_t *buf = NULL;
	uint64_t end;
	uint64_t seq_last = 0;
	bool fetched = false, small = false, stream = false;
	/* n may be released as soon as the reply is sent: keep its number */
	const uint64_t nino = n->ino;
	int fd, rc;

	(void)ino;
	if (!in) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* a chunk the sequential readahead is fetching: wait for it rather
	 * than fetching it a second time */
	if (off >= 0 && size > 0)
		ra_wait_chunks(n->ino, (uint64_t)off / fs.chunk_size,
			       ((uint64_t)off + size - 1) / fs.chunk_size);
	pthread_mutex_lock(&n->lock);
	rc = fs_get_inode(n->ino, in);
	if (rc < 0)
		goto out;
	if (off < 0 || (uint64_t)off >= in->size || size == 0) {
		size = 0;
		goto out;
	}
	end = MIN(in->size, (uint64_t)off + size);
	size = (size_t)(end - (uint64_t)off);
	/* the cache file first: node_fd clears "present" flags a missing
	 * file cannot honour, so that read_range fetches those chunks */
	fd = node_fd(n, in->size);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	buf = malloc(size);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	rc = read_range(n, in, buf, (uint64_t)off, size, &one, &fetched);
	if (rc == -ENODATA) {
		log_err("cache: inode %" PRIu64 " cache file shorter than the file", n->ino);
		rc = -EIO;
	}
	if (rc < 0)
		goto out;
	ops_relatime(n->ino, in);
	/* entering a chunk of a multi-chunk file (or a cold read in one):
	 * the next chunks are fetched in the background */
	stream = (uint64_t)off % fs.chunk_size < size;
	if (in->size > fs.chunk_size && (fetched || stream))
		seq_last = (in->size - 1) / fs.chunk_size;
	small = off == 0 && ra_small(in->size);
out:
	pthread_mutex_unlock(&n->lock);
	free(in);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else if (one)
		fuse_reply_buf(
		    req, (const char *)ra_slot_data(one, (uint64_t)off % fs.chunk_size, size),
		    size);
	else
		fuse_reply_buf(req, (const char *)buf, size);
	ra_slot_put(one);
	free(buf);
	if (rc == 0 && small)
		ra_note_read(nino, fetched); /* readahead.c: the next small files */
	if (rc == 0 && seq_last)
		ra_note_chunks(nino, ((uint64_t)off + size - 1) / fs.chunk_size, seq_last,
			       stream);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fs_node *n = (struct fs_node *)(uintptr_t)fi->fh;
	struct fs_inode *in = malloc(sizeof(*in));
	struct fs_txn t;
	uint64_t from = (uint64_t)off, to, first, last;
	int fd, rc;

	(void)ino;
	if (!in) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (off < 0 || (uint64_t)off + size > (UINT64_C(1) << 62)) {
		free(in);
		fuse_reply_err(req, EFBIG);
		return;
	}
	if (size == 0) {
		free(in);
		fuse_reply_write(req, 0);
		return;
	}
	to = from + size;
	first = from / fs.chunk_size;
	last = (to - 1) / fs.chunk_size;
	/* dirty data is bounded: wait for the flusher (flush.c) */
	rc = flush_dirty_wait();
	if (rc < 0) {
		free(in);
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&n->lock);
	rc = fs_get_inode(n->ino, in);
	if (rc == 0)
		rc = fetch_unless_covered(n, in, first, from, to);
	if (rc == 0 && last != first)
		rc = fetch_unless_covered(n, in, last, from, to);
	if (rc < 0)
		goto out;
	fd = node_fd(n, in->size);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	rc = sync_clean_edges(n, fd, first, last, from, to);
	if (rc < 0)
		goto out;
	rc = node_pwrite(n, data, size, from);
	if (rc < 0) {
		log_err("cache: writing inode %" PRIu64 ": %s", n->ino, strerror(-rc));
		goto out;
	}
	rc = meta_begin(fs.meta, true, &t);
	if (rc < 0)
		goto out;
	rc = meta_inode_get(&t, n->ino, in);
	for (uint64_t i = first; rc == 0 && i <= last; i++) {
		struct fs_chunk c;

		rc = meta_chunk_get(&t, n->ino, i, &c);
		if (rc == -ENOENT) {
			memset(&c, 0, sizeof(c));
			rc = 0;
		}
		if (rc == 0 && !(c.flags & FS_CHUNK_PRESENT)) {
			c.flags |= FS_CHUNK_PRESENT;
			rc = meta_chunk_put(&t, n->ino, i, &c, false);
		}
		if (rc == 0)
			rc = meta_chunk_dirty(&t, n->ino, i);
	}
	if (rc == 0) {
		in->size = MAX(in->size, to);
		fs_time_now(&in->mtime);
		in->ctime = in->mtime;
		/* Writes from the page cache come without a caller; with
		 * KILLPRIV_V2 the kernel writes through (writepage = 0) when
		 * setuid/setgid must go (fuseio.c). */
		if (!fi->writepage && fuse_req_ctx(req)->uid != 0)
			ops_kill_suid(in);
		rc = meta_inode_put(&t, in, true);
	}
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
	if (rc == 0) {
		n->written = true;
		flush_note_write(n->ino, first, last, size);
		evict_touch(n->ino, last, size);
	}
out:
	pthread_mutex_unlock(&n->lock);
	free(in);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, size);
}

/* Last close of an unlinked file: its data goes now. */
static void purge_if_orphan(uint64_t ino)
{
	struct fs_inode *in = malloc(sizeof(*in));
	struct fs_txn t;
	bool purged = false;
	int rc;

	if (!in)
		return;
	/* most closes are of linked files: a read transaction tells, and the
	 * writer lock is taken only for an orphan */
	rc = meta_begin(fs.meta, false, &t);
	if (rc < 0)
		goto out;
	rc = meta_inode_get(&t, ino, in);
	meta_abort(&t);
	if (rc < 0 || in->nlink != 0)
		goto out;
	rc = meta_begin(fs.meta, true, &t);
	if (rc < 0)
		goto out;
	rc = meta_inode_get(&t, ino, in);
	if (rc == 0 && in->nlink == 0 && !node_is_open(ino)) {
		rc = meta_inode_purge(&t, ino);
		purged = rc == 0;
	}
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
	if (rc == 0 && purged)
		reap_queue(ino);
out:
	free(in);
}

void ops_release_node(struct fs_node *n, int flags)
{
	unsigned left;
	bool written;

	node_release(n, (flags & O_ACCMODE) != O_RDONLY, &left);
	pthread_mutex_lock(&n->lock);
	written = n->written;
	if (left == 0)
		n->written = false;
	pthread_mutex_unlock(&n->lock);
	if (left == 0)
		purge_if_orphan(n->ino);
	node_put(n);
	if (written)
		flush_kick();
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	ops_release_node((struct fs_node *)(uintptr_t)fi->fh, fi->flags);
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int rc;

	(void)ino, (void)datasync, (void)fi;
	rc = flush_barrier(fs.cfg.sync_timeout_ms);
	fuse_reply_err(req, rc == 0 ? 0 : EIO);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (fs.cfg.writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	conn->max_write = 1u << 20;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	ra_note_init(); /* readahead.c: the kernel's window, after this reply */
	log_info("mounted volume %s at %s (chunk size %u, writeback cache %s)", fs.vol.name,
		 fs.mountpoint, fs.chunk_size,
		 (conn->want & FUSE_CAP_WRITEBACK_CACHE) ? "on" : "off");
}

static void op_destroy(void *userdata)
{
	int rc;

	(void)userdata;
	log_info("unmounting: committing everything not yet in the FAT");
	rc = flush_barrier(fs.cfg.sync_timeout_ms);
	if (rc < 0)
		log_err(
		    "unmount: not everything could be committed (%s); the local state keeps "
		    "it and the next mount retries",
		    strerror(-rc));
}

void ops_fill_file(struct fuse_lowlevel_ops *ops)
{
	ops->init = op_init;
	ops->destroy = op_destroy;
	ops->create = op_create;
	ops->open = op_open;
	ops->read = op_read;
	ops->write = op_write;
	/* no flush handler: close hands the data to the local cache and the
	 * flusher takes it from there (docs/semantics.md); libfuse answers
	 * ENOSYS once and the kernel stops sending FLUSH, one round trip less
	 * per close (it still writes the file's dirty pages back first) */
	ops->release = op_release;
	ops->fsync = op_fsync;
}
