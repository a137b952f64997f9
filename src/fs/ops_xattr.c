/*
 * ops_xattr.c - FUSE handlers for extended attributes: setxattr, getxattr,
 * listxattr, removexattr.
 *
 * Attributes live in the local LMDB namespace under 'x' keys (meta.c) and are
 * mirrored to the FAT like inodes, so a fresh mount gets them back.  The
 * user.*, trusted.* and security.* namespaces are stored as given (the
 * kernel checks who may touch which one); system.* (POSIX ACLs) is refused
 * with EOPNOTSUPP, because pstorefs does not enforce ACLs.
 *
 * Limits are Linux's: names up to 255 bytes (ERANGE beyond), values up to
 * 64 KiB (E2BIG), and the list of one inode's names up to 64 KiB (ENOSPC
 * when a new name would not fit).
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "common.h"
#include "fs.h"
#include "ops.h"

#define XATTR_LIST_LIMIT 65536

static int check_xattr_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0)
		return -EINVAL;
	if (len > FS_XATTR_NAME_MAX)
		return -ERANGE;
	if (strncmp(name, "user.", 5) == 0 || strncmp(name, "trusted.", 8) == 0 ||
	    strncmp(name, "security.", 9) == 0)
		return 0;
	return -EOPNOTSUPP;
}

struct list_acc {
	char *buf; /* NULL: only count */
	size_t cap;
	size_t len;
};

static int list_cb(const char *name, size_t nlen, size_t vlen, void *arg)
{
	struct list_acc *a = arg;

	(void)vlen;
	if (a->buf) {
		if (a->len + nlen + 1 > a->cap)
			return -ERANGE;
		memcpy(a->buf + a->len, name, nlen);
		a->buf[a->len + nlen] = '\0';
	}
	a->len += nlen + 1;
	return 0;
}

/* Updates ctime of ino in t (an attribute changed). */
static int touch_ctime(struct fs_txn *t, uint64_t ino)
{
	struct fs_inode *in = malloc(sizeof(*in));
	int rc = in ? meta_inode_get(t, ino, in) : -ENOMEM;

	if (rc == 0) {
		fs_time_now(&in->ctime);
		rc = meta_inode_put(t, in, true);
	}
	free(in);
	return rc;
}

static int inode_exists(struct fs_txn *t, uint64_t ino)
{
	struct fs_inode *in = malloc(sizeof(*in));
	int rc = in ? meta_inode_get(t, ino, in) : -ENOMEM;

	free(in);
	return rc;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct fs_txn t;
	size_t old = 0;
	int rc = check_xattr_name(name), exists;

	if (rc == 0 && size > FS_XATTR_SIZE_MAX)
		rc = -E2BIG;
	if (rc == 0 && (flags & ~(XATTR_CREATE | XATTR_REPLACE)))
		rc = -EINVAL;
	if (rc == 0)
		rc = meta_begin(fs.meta, true, &t);
	if (rc < 0)
		goto out;
	rc = inode_exists(&t, ino);
	if (rc < 0)
		goto abort;
	exists = meta_xattr_get(&t, ino, name, NULL, 0, &old);
	if (exists < 0 && exists != -ENODATA) {
		rc = exists;
		goto abort;
	}
	if ((flags & XATTR_CREATE) && exists == 0) {
		rc = -EEXIST;
		goto abort;
	}
	if ((flags & XATTR_REPLACE) && exists == -ENODATA) {
		rc = -ENODATA;
		goto abort;
	}
	if (exists == -ENODATA) {
		struct list_acc a = {0};

		rc = meta_xattr_list(&t, ino, list_cb, &a);
		if (rc == 0 && a.len + strlen(name) + 1 > XATTR_LIST_LIMIT)
			rc = -ENOSPC;
		if (rc < 0)
			goto abort;
	}
	rc = meta_xattr_put(&t, ino, name, value, size, true);
	if (rc == 0)
		rc = touch_ctime(&t, ino);
	if (rc < 0)
		goto abort;
	rc = meta_commit(&t);
	if (rc == 0)
		flush_kick();
	goto out;
abort:
	meta_abort(&t);
out:
	fuse_reply_err(req, -rc);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs_txn t;
	char *buf = NULL;
	size_t len = 0;
	int rc = check_xattr_name(name);

	if (rc == -EOPNOTSUPP)
		rc = -ENODATA; /* nothing is stored there */
	if (rc == 0 && size > 0 && !(buf = malloc(MIN(size, (size_t)FS_XATTR_SIZE_MAX))))
		rc = -ENOMEM;
	if (rc == 0)
		rc = meta_begin(fs.meta, false, &t);
	if (rc == 0) {
		rc = meta_xattr_get(&t, ino, name, buf, MIN(size, (size_t)FS_XATTR_SIZE_MAX),
				    &len);
		if (rc == -ENODATA && inode_exists(&t, ino) == -ENOENT)
			rc = -ENOENT;
		meta_abort(&t);
	}
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else
		fuse_reply_buf(req, buf, len);
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct list_acc a = {0};
	struct fs_txn t;
	int rc = 0;

	if (size > 0) {
		a.cap = MIN(size, (size_t)XATTR_LIST_LIMIT);
		a.buf = malloc(a.cap);
		if (!a.buf)
			rc = -ENOMEM;
	}
	if (rc == 0)
		rc = meta_begin(fs.meta, false, &t);
	if (rc == 0) {
		rc = inode_exists(&t, ino);
		if (rc == 0)
			rc = meta_xattr_list(&t, ino, list_cb, &a);
		meta_abort(&t);
	}
	if (rc == 0 && a.len > XATTR_LIST_LIMIT)
		rc = -E2BIG;
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else if (size == 0)
		fuse_reply_xattr(req, a.len);
	else
		fuse_reply_buf(req, a.buf, a.len);
	free(a.buf);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fs_txn t;
	int rc = check_xattr_name(name);

	if (rc == -EOPNOTSUPP)
		rc = -ENODATA;
	if (rc == 0)
		rc = meta_begin(fs.meta, true, &t);
	if (rc < 0)
		goto out;
	rc = inode_exists(&t, ino);
	if (rc == 0)
		rc = meta_xattr_del(&t, ino, name);
	if (rc == 0)
		rc = touch_ctime(&t, ino);
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
	if (rc == 0)
		flush_kick();
out:
	fuse_reply_err(req, -rc);
}

void ops_fill_xattr(struct fuse_lowlevel_ops *ops)
{
	ops->setxattr = op_setxattr;
	ops->getxattr = op_getxattr;
	ops->listxattr = op_listxattr;
	ops->removexattr = op_removexattr;
}
