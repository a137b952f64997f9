/*
 * ops_ns.c - FUSE handlers for the namespace: lookup, getattr, setattr,
 * mknod, mkdir, symlink, readlink, link, unlink, rmdir, rename, the
 * directory handlers, statfs and forget.
 *
 * Each handler is one LMDB transaction (meta.c) that also marks what the FAT
 * mirror must learn; the flusher commits it within about a second.  Inode
 * numbers are the FUSE node ids and never reused, and every inode lives in
 * the store, so forget has nothing to release.  Permission checks are the
 * kernel's (the mount uses default_permissions).
 *
 * setuid/setgid are cleared here on truncate by an unprivileged caller and
 * on chown (the mount handles privilege killing itself: fuseio.c).
 * Extended attributes are in ops_xattr.c.
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common.h"
#include "fs.h"
#include "ops.h"

#define ATTR_TIMEOUT_RO 1.0
#define ATTR_TIMEOUT_RW 86400.0
#define STATFS_CACHE_MS 2000

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

bool ops_kill_suid(struct fs_inode *in)
{
	uint32_t old = in->mode;

	if ((in->mode & S_IFMT) == S_IFDIR)
		return false;
	in->mode &= ~(uint32_t)S_ISUID;
	if ((in->mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		in->mode &= ~(uint32_t)S_ISGID;
	return in->mode != old;
}

void ops_stat(const struct fs_inode *in, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = in->ino;
	st->st_mode = in->mode;
	st->st_nlink = in->nlink;
	st->st_uid = in->uid;
	st->st_gid = in->gid;
	st->st_rdev = in->rdev;
	st->st_size = (off_t)in->size;
	st->st_blksize = 65536;
	st->st_blocks = (blkcnt_t)((in->size + 511) / 512);
	st->st_atim.tv_sec = in->atime.sec;
	st->st_atim.tv_nsec = in->atime.nsec;
	st->st_mtim.tv_sec = in->mtime.sec;
	st->st_mtim.tv_nsec = in->mtime.nsec;
	st->st_ctim.tv_sec = in->ctime.sec;
	st->st_ctim.tv_nsec = in->ctime.nsec;
}

double ops_attr_timeout(void)
{
	return fs.cfg.readonly ? ATTR_TIMEOUT_RO : ATTR_TIMEOUT_RW;
}

void ops_fill_entry(const struct fs_inode *in, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = in->ino;
	e->generation = 1;
	e->attr_timeout = ops_attr_timeout();
	e->entry_timeout = ops_attr_timeout();
	ops_stat(in, &e->attr);
}

static int check_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0)
		return -EINVAL;
	if (len > FS_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* Loads a directory for a change in it. */
static int get_dir(struct fs_txn *t, uint64_t ino, struct fs_inode *dir)
{
	int rc = meta_inode_get(t, ino, dir);

	if (rc == 0 && (dir->mode & S_IFMT) != S_IFDIR)
		rc = -ENOTDIR;
	return rc;
}

static void touch_dir(struct fs_inode *dir)
{
	fs_time_now(&dir->mtime);
	dir->ctime = dir->mtime;
}

/* Two inodes per handler at most: allocated, they would not fit the stack
 * comfortably with their symlink targets. */
struct two_inodes {
	struct fs_inode a, b;
};

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct two_inodes *w = malloc(sizeof(*w));
	struct fuse_entry_param e;
	struct fs_dirent_val d;
	struct fs_txn t;
	int rc;

	rc = w ? check_name(name) : -ENOMEM;
	if (rc == 0)
		rc = meta_begin(fs.meta, false, &t);
	if (rc == 0) {
		rc = meta_dirent_get(&t, parent, name, &d);
		if (rc == 0)
			rc = meta_inode_get(&t, d.ino, &w->a);
		meta_abort(&t);
	}
	if (rc == 0)
		ops_fill_entry(&w->a, &e);
	free(w);
	if (rc == -ENOENT) {
		/* a negative entry: the kernel remembers the name is absent (every
		 * create goes through it, so it stays true on the only writer) */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = ops_attr_timeout();
		fuse_reply_entry(req, &e);
	} else if (rc < 0) {
		fuse_reply_err(req, -rc);
	} else {
		fuse_reply_entry(req, &e);
	}
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino, (void)nlookup;
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	(void)count, (void)forgets;
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_inode *in = malloc(sizeof(*in));
	struct fs_txn t;
	struct stat st;
	int rc;

	(void)fi;
	rc = in ? meta_begin(fs.meta, false, &t) : -ENOMEM;
	if (rc == 0) {
		rc = meta_inode_get(&t, ino, in);
		meta_abort(&t);
	}
	if (rc == 0)
		ops_stat(in, &st);
	free(in);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, ops_attr_timeout());
}

static void set_time(struct fs_time *dst, const struct timespec *src, bool now)
{
	if (now) {
		fs_time_now(dst);
	} else {
		dst->sec = src->tv_sec;
		dst->nsec = (uint32_t)src->tv_nsec;
	}
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct fs_inode *in = malloc(sizeof(*in));
	struct fs_txn t;
	struct stat st;
	int rc = in ? 0 : -ENOMEM;

	(void)fi;
	/* the kernel's ctime update right after the UNLINK of a file's last
	 * link: answered without waiting for the writer lock */
	if (rc == 0 && reap_gone(ino))
		rc = -ENOENT;
	if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE))
		rc = fs_truncate(ino, (uint64_t)attr->st_size);
	if (rc == 0)
		rc = meta_begin(fs.meta, true, &t);
	if (rc < 0)
		goto out;
	rc = meta_inode_get(&t, ino, in);
	if (rc < 0) {
		meta_abort(&t);
		goto out;
	}
	if (to_set & FUSE_SET_ATTR_MODE)
		in->mode = (in->mode & S_IFMT) | ((uint32_t)attr->st_mode & 07777);
	if (to_set & FUSE_SET_ATTR_UID)
		in->uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		in->gid = attr->st_gid;
	/* chown always clears them; truncate when the caller is not root */
	if (!(to_set & FUSE_SET_ATTR_MODE) &&
	    ((to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) ||
	     ((to_set & FUSE_SET_ATTR_SIZE) && ctx->uid != 0)))
		ops_kill_suid(in);
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))
		set_time(&in->atime, &attr->st_atim, to_set & FUSE_SET_ATTR_ATIME_NOW);
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
		set_time(&in->mtime, &attr->st_mtim, to_set & FUSE_SET_ATTR_MTIME_NOW);
	if (to_set & FUSE_SET_ATTR_CTIME)
		set_time(&in->ctime, &attr->st_ctim, false);
	else
		fs_time_now(&in->ctime);
	rc = meta_inode_put(&t, in, true);
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
	if (rc == 0)
		ops_stat(in, &st);
out:
	free(in);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	flush_kick();
	fuse_reply_attr(req, &st, ops_attr_timeout());
}

int ops_make(fuse_req_t req, fuse_ino_t parent, const char *name, uint32_t mode, uint32_t rdev,
	     const char *target, struct fuse_entry_param *e)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct two_inodes *w = malloc(sizeof(*w));
	struct fs_inode *dir, *in;
	struct fs_dirent_val d;
	struct fs_txn t;
	int rc;

	if (!w)
		return -ENOMEM;
	dir = &w->a;
	in = &w->b;
	rc = check_name(name);
	if (rc == 0)
		rc = meta_begin(fs.meta, true, &t);
	if (rc < 0)
		goto out;
	rc = get_dir(&t, parent, dir);
	if (rc == 0) {
		rc = meta_dirent_get(&t, parent, name, &d);
		rc = rc == 0 ? -EEXIST : rc == -ENOENT ? 0 : rc;
	}
	if (rc == 0 && dir->nlink == 0)
		rc = -ENOENT; /* a directory being removed */
	memset(in, 0, offsetof(struct fs_inode, target));
	if (rc == 0)
		rc = meta_alloc_ino(&t, &in->ino);
	if (rc < 0)
		goto abort;
	in->mode = mode;
	in->uid = ctx->uid;
	in->gid = ctx->gid;
	if (dir->mode & S_ISGID) {
		in->gid = dir->gid;
		if ((mode & S_IFMT) == S_IFDIR)
			in->mode |= S_ISGID;
	}
	in->rdev = rdev;
	in->nlink = (mode & S_IFMT) == S_IFDIR ? 2 : 1;
	in->parent = (mode & S_IFMT) == S_IFDIR ? parent : 0;
	fs_time_now(&in->mtime);
	in->atime = in->ctime = in->mtime;
	if (target) {
		in->target_len = (uint16_t)strlen(target);
		memcpy(in->target, target, in->target_len + 1);
		in->size = in->target_len;
	}
	d.ino = in->ino;
	d.type = mode & S_IFMT;
	rc = meta_inode_put(&t, in, true);
	if (rc == 0)
		rc = meta_dirent_put(&t, parent, name, &d, true);
	if (rc == 0) {
		if ((mode & S_IFMT) == S_IFDIR)
			dir->nlink++;
		touch_dir(dir);
		rc = meta_inode_put(&t, dir, true);
	}
	if (rc < 0)
		goto abort;
	rc = meta_commit(&t);
	if (rc == 0) {
		ops_fill_entry(in, e);
		flush_kick();
	}
	goto out;
abort:
	meta_abort(&t);
out:
	free(w);
	return rc;
}

static void reply_make(fuse_req_t req, int rc, const struct fuse_entry_param *e)
{
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, e);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	struct fuse_entry_param e;
	uint32_t type = mode & S_IFMT;
	int rc;

	/* char and block devices: the kernel has checked CAP_MKNOD */
	if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK && type != S_IFCHR &&
	    type != S_IFBLK) {
		fuse_reply_err(req, EPERM);
		return;
	}
	rc = ops_make(req, parent, name, (mode & 07777) | type, (uint32_t)rdev, NULL, &e);
	reply_make(req, rc, &e);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fuse_entry_param e;
	int rc = ops_make(req, parent, name, (mode & 07777) | S_IFDIR, 0, NULL, &e);

	reply_make(req, rc, &e);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	size_t len = strlen(link);
	int rc;

	if (len == 0 || len > FS_SYMLINK_MAX) {
		fuse_reply_err(req, len ? ENAMETOOLONG : EINVAL);
		return;
	}
	rc = ops_make(req, parent, name, S_IFLNK | 0777, 0, link, &e);
	reply_make(req, rc, &e);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_inode *in = malloc(sizeof(*in));
	struct fs_txn t;
	int rc = in ? meta_begin(fs.meta, false, &t) : -ENOMEM;

	if (rc == 0) {
		rc = meta_inode_get(&t, ino, in);
		meta_abort(&t);
	}
	if (rc == 0 && (in->mode & S_IFMT) != S_IFLNK)
		rc = -EINVAL;
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_readlink(req, in->target);
	free(in);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct two_inodes *w = malloc(sizeof(*w));
	struct fuse_entry_param e;
	struct fs_dirent_val d;
	struct fs_txn t;
	int rc = w ? check_name(newname) : -ENOMEM;

	if (rc == 0)
		rc = meta_begin(fs.meta, true, &t);
	if (rc < 0)
		goto out;
	rc = meta_inode_get(&t, ino, &w->a);
	if (rc == 0 && (w->a.mode & S_IFMT) == S_IFDIR)
		rc = -EPERM;
	if (rc == 0 && w->a.nlink == 0)
		rc = -ENOENT;
	if (rc == 0)
		rc = get_dir(&t, newparent, &w->b);
	if (rc == 0) {
		rc = meta_dirent_get(&t, newparent, newname, &d);
		rc = rc == 0 ? -EEXIST : rc == -ENOENT ? 0 : rc;
	}
	if (rc == 0) {
		d.ino = ino;
		d.type = w->a.mode & S_IFMT;
		rc = meta_dirent_put(&t, newparent, newname, &d, true);
	}
	if (rc == 0) {
		w->a.nlink++;
		fs_time_now(&w->a.ctime);
		rc = meta_inode_put(&t, &w->a, true);
	}
	if (rc == 0) {
		touch_dir(&w->b);
		rc = meta_inode_put(&t, &w->b, true);
	}
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
	if (rc == 0) {
		ops_fill_entry(&w->a, &e);
		flush_kick();
	}
out:
	free(w);
	reply_make(req, rc, &e);
}

/* Drops one link of in (its dirent is already gone); purges it when that was
 * the last one and nobody has it open.  *purged tells the caller to remove
 * the cache file after the commit. */
static int drop_link(struct fs_txn *t, struct fs_inode *in, bool *purged)
{
	*purged = false;
	if ((in->mode & S_IFMT) == S_IFDIR)
		in->nlink = 0;
	else if (in->nlink > 0)
		in->nlink--;
	fs_time_now(&in->ctime);
	if (in->nlink == 0 && !node_is_open(in->ino)) {
		*purged = true;
		return meta_inode_purge(t, in->ino);
	}
	return meta_inode_put(t, in, true);
}

static void op_unlink_common(fuse_req_t req, fuse_ino_t parent, const char *name, bool dir)
{
	struct two_inodes *w = malloc(sizeof(*w));
	struct fs_dirent_val d;
	struct fs_txn t;
	bool purged = false;
	int rc = w ? check_name(name) : -ENOMEM;

	if (rc == 0)
		rc = meta_begin(fs.meta, true, &t);
	if (rc < 0)
		goto out;
	rc = get_dir(&t, parent, &w->a);
	if (rc == 0)
		rc = meta_dirent_get(&t, parent, name, &d);
	if (rc == 0)
		rc = meta_inode_get(&t, d.ino, &w->b);
	if (rc == 0 && dir && (w->b.mode & S_IFMT) != S_IFDIR)
		rc = -ENOTDIR;
	if (rc == 0 && !dir && (w->b.mode & S_IFMT) == S_IFDIR)
		rc = -EISDIR;
	if (rc == 0 && dir)
		rc = meta_dir_empty(&t, d.ino);
	if (rc == 0)
		rc = meta_dirent_del(&t, parent, name);
	if (rc == 0)
		rc = drop_link(&t, &w->b, &purged);
	if (rc == 0) {
		if (dir && w->a.nlink > 2)
			w->a.nlink--;
		touch_dir(&w->a);
		rc = meta_inode_put(&t, &w->a, true);
	}
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
	if (rc == 0 && purged)
		reap_queue(d.ino);
	if (rc == 0)
		flush_kick();
out:
	free(w);
	fuse_reply_err(req, -rc);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	op_unlink_common(req, parent, name, false);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	op_unlink_common(req, parent, name, true);
}

/* -EINVAL if dir is ino or below it (moving a directory into itself). */
static int check_not_below(struct fs_txn *t, uint64_t dir, uint64_t ino, struct fs_inode *tmp)
{
	for (unsigned depth = 0; depth < 4096; depth++) {
		int rc;

		if (dir == ino)
			return -EINVAL;
		if (dir == FS_ROOT_INO)
			return 0;
		rc = meta_inode_get(t, dir, tmp);
		if (rc < 0)
			return rc;
		dir = tmp->parent;
	}
	return -ELOOP;
}

struct rename_work {
	struct fs_inode src, dst, sp, dp, tmp;
};

static int do_rename(struct fs_txn *t, struct rename_work *w, uint64_t parent, const char *name,
		     uint64_t newparent, const char *newname, unsigned int flags, bool *purged,
		     uint64_t *purged_ino)
{
	struct fs_dirent_val sd, dd;
	bool src_dir, has_dst;
	int rc;

	rc = get_dir(t, parent, &w->sp);
	if (rc == 0)
		rc = get_dir(t, newparent, &w->dp);
	if (rc == 0)
		rc = meta_dirent_get(t, parent, name, &sd);
	if (rc == 0)
		rc = meta_inode_get(t, sd.ino, &w->src);
	if (rc < 0)
		return rc;
	src_dir = (w->src.mode & S_IFMT) == S_IFDIR;
	rc = meta_dirent_get(t, newparent, newname, &dd);
	if (rc < 0 && rc != -ENOENT)
		return rc;
	has_dst = rc == 0;
	if (has_dst) {
		if (flags & RENAME_NOREPLACE)
			return -EEXIST;
		if (dd.ino == sd.ino)
			return 0; /* the same file: nothing to do */
		rc = meta_inode_get(t, dd.ino, &w->dst);
		if (rc < 0)
			return rc;
		if (src_dir && (w->dst.mode & S_IFMT) != S_IFDIR)
			return -ENOTDIR;
		if (!src_dir && (w->dst.mode & S_IFMT) == S_IFDIR)
			return -EISDIR;
		if (src_dir && (rc = meta_dir_empty(t, dd.ino)) < 0)
			return rc;
	}
	if (src_dir && newparent != parent) {
		rc = check_not_below(t, newparent, sd.ino, &w->tmp);
		if (rc < 0)
			return rc;
	}
	if (has_dst) {
		*purged_ino = dd.ino;
		rc = drop_link(t, &w->dst, purged);
		if (rc < 0)
			return rc;
		if (src_dir)
			w->dp.nlink--;
	}
	rc = meta_dirent_del(t, parent, name);
	if (rc == 0)
		rc = meta_dirent_put(t, newparent, newname, &sd, true);
	if (rc < 0)
		return rc;
	fs_time_now(&w->src.ctime);
	if (src_dir && newparent != parent) {
		w->src.parent = newparent;
		w->sp.nlink--;
		w->dp.nlink++;
	}
	rc = meta_inode_put(t, &w->src, true);
	touch_dir(&w->sp);
	touch_dir(&w->dp);
	if (rc == 0 && newparent != parent)
		rc = meta_inode_put(t, &w->sp, true);
	if (rc == 0)
		rc = meta_inode_put(t, &w->dp, true);
	return rc;
}

/* RENAME_EXCHANGE: both names exist and swap their inodes. */
static int do_exchange(struct fs_txn *t, struct rename_work *w, uint64_t parent,
		       const char *name, uint64_t newparent, const char *newname)
{
	struct fs_dirent_val sd, dd;
	bool src_dir, dst_dir;
	int rc;

	rc = get_dir(t, parent, &w->sp);
	if (rc == 0)
		rc = get_dir(t, newparent, &w->dp);
	if (rc == 0)
		rc = meta_dirent_get(t, parent, name, &sd);
	if (rc == 0)
		rc = meta_dirent_get(t, newparent, newname, &dd);
	if (rc == 0)
		rc = meta_inode_get(t, sd.ino, &w->src);
	if (rc == 0)
		rc = meta_inode_get(t, dd.ino, &w->dst);
	if (rc < 0)
		return rc;
	if (sd.ino == dd.ino)
		return 0;
	src_dir = (w->src.mode & S_IFMT) == S_IFDIR;
	dst_dir = (w->dst.mode & S_IFMT) == S_IFDIR;
	if (newparent != parent) {
		/* neither directory may end up inside itself */
		if (src_dir && (rc = check_not_below(t, newparent, sd.ino, &w->tmp)) < 0)
			return rc;
		if (dst_dir && (rc = check_not_below(t, parent, dd.ino, &w->tmp)) < 0)
			return rc;
	}
	rc = meta_dirent_put(t, parent, name, &dd, true);
	if (rc == 0)
		rc = meta_dirent_put(t, newparent, newname, &sd, true);
	if (rc < 0)
		return rc;
	fs_time_now(&w->src.ctime);
	w->dst.ctime = w->src.ctime;
	if (newparent != parent) {
		if (src_dir) {
			w->src.parent = newparent;
			w->sp.nlink--;
			w->dp.nlink++;
		}
		if (dst_dir) {
			w->dst.parent = parent;
			w->dp.nlink--;
			w->sp.nlink++;
		}
	}
	rc = meta_inode_put(t, &w->src, true);
	if (rc == 0)
		rc = meta_inode_put(t, &w->dst, true);
	touch_dir(&w->sp);
	touch_dir(&w->dp);
	if (rc == 0 && newparent != parent)
		rc = meta_inode_put(t, &w->sp, true);
	if (rc == 0)
		rc = meta_inode_put(t, &w->dp, true);
	return rc;
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct rename_work *w = calloc(1, sizeof(*w));
	struct fs_txn t;
	bool purged = false;
	uint64_t purged_ino = 0;
	int rc = w ? 0 : -ENOMEM;

	if (rc == 0 && ((flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) ||
			(flags == (RENAME_NOREPLACE | RENAME_EXCHANGE))))
		rc = -EINVAL;
	if (rc == 0)
		rc = check_name(name);
	if (rc == 0)
		rc = check_name(newname);
	if (rc == 0)
		rc = meta_begin(fs.meta, true, &t);
	if (rc < 0)
		goto out;
	if (flags & RENAME_EXCHANGE)
		rc = do_exchange(&t, w, parent, name, newparent, newname);
	else
		rc = do_rename(&t, w, parent, name, newparent, newname, flags, &purged,
			       &purged_ino);
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
	if (rc == 0 && purged)
		reap_queue(purged_ino);
	if (rc == 0)
		flush_kick();
out:
	free(w);
	fuse_reply_err(req, -rc);
}

/* ---- directories: a snapshot per open directory, taken at offset 0, so
 * that entries removed while a program walks the directory (rm -r) neither
 * shift nor hide the others. */

struct dir_entry {
	uint64_t ino;
	uint32_t type;
	char *name;
};

struct dir_handle {
	pthread_mutex_t lock;
	struct dir_entry *ents; /* lock */
	size_t n, cap;		/* lock */
};

static void dir_clear(struct dir_handle *h)
{
	for (size_t i = 0; i < h->n; i++)
		free(h->ents[i].name);
	free(h->ents);
	h->ents = NULL;
	h->n = h->cap = 0;
}

static int dir_add(struct dir_handle *h, const char *name, size_t nlen, uint64_t ino,
		   uint32_t type)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? 2 * h->cap : 32;
		struct dir_entry *e = realloc(h->ents, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		h->ents = e;
		h->cap = cap;
	}
	h->ents[h->n].name = strndup(name, nlen);
	if (!h->ents[h->n].name)
		return -ENOMEM;
	h->ents[h->n].ino = ino;
	h->ents[h->n].type = type;
	h->n++;
	return 0;
}

static int dir_list_cb(const char *name, size_t nlen, const struct fs_dirent_val *d, void *arg)
{
	return dir_add(arg, name, nlen, d->ino, d->type);
}

static int dir_snapshot(struct dir_handle *h, uint64_t ino)
{
	struct fs_inode *in = malloc(sizeof(*in));
	struct fs_txn t;
	int rc = in ? meta_begin(fs.meta, false, &t) : -ENOMEM;

	if (rc < 0)
		goto out;
	dir_clear(h);
	rc = get_dir(&t, ino, in);
	if (rc == 0)
		rc = dir_add(h, ".", 1, ino, S_IFDIR);
	if (rc == 0)
		rc = dir_add(h, "..", 2, in->parent ? in->parent : ino, S_IFDIR);
	if (rc == 0)
		rc = meta_dir_list(&t, ino, dir_list_cb, h);
	meta_abort(&t);
out:
	free(in);
	return rc;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_handle *h = calloc(1, sizeof(*h));
	int rc = h ? dir_snapshot(h, ino) : -ENOMEM;

	if (rc < 0) {
		if (h)
			dir_clear(h);
		free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_init(&h->lock, NULL);
	fi->fh = (uintptr_t)h;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		dir_clear(h);
		pthread_mutex_destroy(&h->lock);
		free(h);
	}
}

/* readdir, and readdirplus (plus: each entry carries the child's attributes
 * and counts as a lookup, so that ls -l, find and rm -r need no LOOKUP per
 * name; "." and ".." go without, as the kernel allows). */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct dir_handle *h = (struct dir_handle *)(uintptr_t)fi->fh;
	char *buf = malloc(size ? size : 1);
	struct fs_inode *in = plus ? malloc(sizeof(*in)) : NULL;
	struct fs_txn t;
	bool in_txn = false;
	size_t pos = 0;
	int rc = buf && (in || !plus) ? 0 : -ENOMEM;

	pthread_mutex_lock(&h->lock);
	if (rc == 0 && off == 0)
		rc = dir_snapshot(h, ino); /* rewinddir sees the directory as it is now */
	if (rc == 0 && plus) {
		rc = meta_begin(fs.meta, false, &t);
		in_txn = rc == 0;
	}
	for (size_t i = off < 0 ? h->n : (size_t)off; rc == 0 && i < h->n; i++) {
		struct stat st = {.st_ino = h->ents[i].ino, .st_mode = h->ents[i].type};
		struct fuse_entry_param e;
		size_t need;

		if (!plus) {
			need = fuse_add_direntry(req, buf + pos, size - pos, h->ents[i].name,
						 &st, (off_t)(i + 1));
		} else {
			memset(&e, 0, sizeof(e));
			e.attr = st;
			/* a child removed since the snapshot goes without attributes */
			if (i >= 2 && meta_inode_get(&t, h->ents[i].ino, in) == 0)
				ops_fill_entry(in, &e);
			need = fuse_add_direntry_plus(req, buf + pos, size - pos,
						      h->ents[i].name, &e, (off_t)(i + 1));
		}
		if (need > size - pos)
			break;
		pos += need;
	}
	if (in_txn)
		meta_abort(&t);
	pthread_mutex_unlock(&h->lock);
	free(in);
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_handle *h = (struct dir_handle *)(uintptr_t)fi->fh;

	(void)ino;
	dir_clear(h);
	pthread_mutex_destroy(&h->lock);
	free(h);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int rc;

	(void)ino, (void)datasync, (void)fi;
	rc = flush_barrier(fs.cfg.sync_timeout_ms);
	fuse_reply_err(req, rc == 0 ? 0 : EIO);
}

/* ---- statfs: the vendors' raw capacity and free space (what df shows), at
 * most one FAT call per STATFS_CACHE_MS. */

static pthread_mutex_t statfs_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t statfs_at_ms, statfs_cap, statfs_free; /* statfs_lock */
static bool statfs_valid;			       /* statfs_lock */

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	uint64_t cap, fr, used;
	int rc = 0;

	(void)ino;
	pthread_mutex_lock(&statfs_lock);
	if (!statfs_valid || now_ms() - statfs_at_ms >= STATFS_CACHE_MS) {
		rc = alloc_statfs(fs.alloc, &cap, &fr, &used);
		if (rc == 0) {
			statfs_cap = cap;
			statfs_free = MIN(fr, cap);
			statfs_at_ms = now_ms();
			statfs_valid = true;
		} else {
			log_warn("statfs: asking the FAT failed: %s", strerror(-rc));
		}
	}
	if (statfs_valid)
		rc = 0;
	cap = statfs_cap;
	fr = statfs_free;
	pthread_mutex_unlock(&statfs_lock);
	if (rc < 0) {
		fuse_reply_err(req, EIO);
		return;
	}
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = cap / 4096;
	sv.f_bfree = fr / 4096;
	sv.f_bavail = fr / 4096;
	sv.f_files = UINT32_MAX;
	sv.f_ffree = UINT32_MAX;
	sv.f_favail = UINT32_MAX;
	sv.f_namemax = FS_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

void ops_fill_ns(struct fuse_lowlevel_ops *ops)
{
	ops->lookup = op_lookup;
	ops->forget = op_forget;
	ops->forget_multi = op_forget_multi;
	ops->getattr = op_getattr;
	ops->setattr = op_setattr;
	ops->mknod = op_mknod;
	ops->mkdir = op_mkdir;
	ops->symlink = op_symlink;
	ops->readlink = op_readlink;
	ops->link = op_link;
	ops->unlink = op_unlink;
	ops->rmdir = op_rmdir;
	ops->rename = op_rename;
	ops->opendir = op_opendir;
	ops->readdir = op_readdir;
	ops->readdirplus = op_readdirplus;
	ops->releasedir = op_releasedir;
	ops->fsyncdir = op_fsyncdir;
	ops->statfs = op_statfs;
}

void ops_fill(struct fuse_lowlevel_ops *ops)
{
	ops_fill_ns(ops);
	ops_fill_file(ops);
	ops_fill_xattr(ops);
	ops_fill_data(ops);
}
