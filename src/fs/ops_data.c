/*
 * ops_data.c - data calls beyond read and write: fallocate (mode 0,
 * KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE) and the relatime-like atime policy of
 * reads.
 *
 * There is no preallocation: a chunk exists once written, so fallocate mode
 * 0 only extends the size (the new range is a hole that reads as zeros and
 * is never uploaded), and KEEP_SIZE alone does nothing.  PUNCH_HOLE drops
 * the chunks it covers entirely (their committed copies are freed with the
 * next commit) and zeroes the partly covered ones in the cache, which makes
 * them dirty like a write.
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "fs.h"
#include "ops.h"

#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif

#define ATIME_REFRESH_SEC (24 * 3600)

static bool time_le(const struct fs_time *a, const struct fs_time *b)
{
	return a->sec < b->sec || (a->sec == b->sec && a->nsec <= b->nsec);
}

void ops_relatime(uint64_t ino, const struct fs_inode *seen)
{
	struct fs_inode *in;
	struct fs_time now;
	struct fs_txn t;
	int rc;

	fs_time_now(&now);
	if (!time_le(&seen->atime, &seen->mtime) && !time_le(&seen->atime, &seen->ctime) &&
	    now.sec - seen->atime.sec < ATIME_REFRESH_SEC)
		return;
	in = malloc(sizeof(*in));
	if (!in)
		return;
	rc = meta_begin(fs.meta, true, &t);
	if (rc == 0) {
		rc = meta_inode_get(&t, ino, in);
		if (rc == 0) {
			in->atime = now;
			rc = meta_inode_put(&t, in, true);
		}
		if (rc == 0)
			rc = meta_commit(&t);
		else
			meta_abort(&t);
	}
	if (rc < 0)
		log_warn("atime of inode %" PRIu64 ": %s", ino, strerror(-rc));
	else if (fs.se)
		/* the kernel keeps attributes long (ops_attr_timeout): it must
		 * learn this change it did not make (attributes only: off < 0) */
		fuse_lowlevel_notify_inval_inode(fs.se, ino, -1, 0);
	free(in);
}

/* n locked.  Zeroes [from, to) of the file (to <= size): whole chunks are
 * dropped, partial ones fetched, zeroed in the cache and marked dirty. */
static int punch_locked(struct fs_node *n, struct fs_inode *in, uint64_t from, uint64_t to)
{
	uint64_t cs = fs.chunk_size, first = from / cs, last = (to - 1) / cs;
	struct fs_txn t;
	uint8_t *zero = NULL;
	int fd, rc = 0;

	/* only the first and the last chunk can be partly covered */
	if (from > first * cs || to < MIN(first * cs + cs, in->size))
		rc = fs_fetch_chunk(n, in, first);
	if (rc == 0 && last != first && to < MIN(last * cs + cs, in->size))
		rc = fs_fetch_chunk(n, in, last);
	if (rc < 0)
		return rc;
	fd = node_fd(n, in->size);
	if (fd < 0)
		return fd;
	/* the cache file: a hole where the file has one */
	if (node_punch(n, from, to - from) < 0) {
		zero = calloc(1, cs);
		if (!zero)
			return -ENOMEM;
		for (uint64_t p = from; p < to && rc == 0; p += MIN(cs, to - p))
			rc = node_pwrite(n, zero, MIN(cs, to - p), p);
		free(zero);
		if (rc < 0)
			return rc;
	}
	rc = meta_begin(fs.meta, true, &t);
	if (rc < 0)
		return rc;
	for (uint64_t i = first; i <= last && rc == 0; i++) {
		uint64_t s = i * cs, e = MIN(s + cs, in->size);
		struct fs_chunk c;

		if (from <= s && to >= e) {
			rc = meta_chunk_drop(&t, n->ino, i);
			continue;
		}
		rc = meta_chunk_get(&t, n->ino, i, &c);
		if (rc == -ENOENT) {
			/* a hole stays a hole */
			rc = 0;
			continue;
		}
		if (rc == 0) {
			c.flags |= FS_CHUNK_PRESENT;
			rc = meta_chunk_put(&t, n->ino, i, &c, false);
		}
		if (rc == 0)
			rc = meta_chunk_dirty(&t, n->ino, i);
	}
	if (rc == 0)
		rc = meta_inode_get(&t, n->ino, in);
	if (rc == 0) {
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
	return rc;
}

static int punch(uint64_t ino, uint64_t off, uint64_t len)
{
	struct fs_node *n = node_get(ino);
	struct fs_inode *in = malloc(sizeof(*in));
	int rc;

	if (!n || !in) {
		rc = -ENOMEM;
		goto out;
	}
	pthread_mutex_lock(&n->lock);
	rc = fs_get_inode(ino, in);
	if (rc == 0 && (in->mode & S_IFMT) != S_IFREG)
		rc = (in->mode & S_IFMT) == S_IFDIR ? -EISDIR : -ENODEV;
	if (rc == 0 && off < in->size)
		rc = punch_locked(n, in, off, MIN(in->size, off + len));
	pthread_mutex_unlock(&n->lock);
out:
	free(in);
	if (n)
		node_put(n);
	if (rc == 0)
		flush_kick();
	return rc;
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	struct fs_inode *in = NULL;
	uint64_t end;
	int rc = 0;

	(void)fi;
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE))
		rc = -EOPNOTSUPP;
	else if (offset < 0 || length <= 0)
		rc = -EINVAL;
	else if ((uint64_t)offset + (uint64_t)length > (UINT64_C(1) << 62))
		rc = -EFBIG;
	if (rc < 0)
		goto out;
	end = (uint64_t)offset + (uint64_t)length;
	if (mode & FALLOC_FL_PUNCH_HOLE) {
		rc = (mode & FALLOC_FL_KEEP_SIZE)
			 ? punch(ino, (uint64_t)offset, (uint64_t)length)
			 : -EOPNOTSUPP;
		goto out;
	}
	in = malloc(sizeof(*in));
	rc = in ? fs_get_inode(ino, in) : -ENOMEM;
	if (rc == 0 && (in->mode & S_IFMT) != S_IFREG)
		rc = (in->mode & S_IFMT) == S_IFDIR ? -EISDIR : -ENODEV;
	/* no preallocation: mode 0 only moves the end of the file */
	if (rc == 0 && !(mode & FALLOC_FL_KEEP_SIZE) && end > in->size)
		rc = fs_truncate(ino, end);
out:
	free(in);
	fuse_reply_err(req, -rc);
}

void ops_fill_data(struct fuse_lowlevel_ops *ops)
{
	ops->fallocate = op_fallocate;
}
