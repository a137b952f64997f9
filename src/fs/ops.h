/*
 * ops.h - what the FUSE handler files (ops_ns.c, ops_file.c) share; only
 * they include fuse_lowlevel.h.
 */
#ifndef PSTORE_FS_OPS_H
#define PSTORE_FS_OPS_H

#include <fuse_lowlevel.h>

#include "fs.h"

/* Creates name in parent (regular file, directory, symlink, fifo, socket)
 * owned by the caller; fills e.  0 or -errno. */
int ops_make(fuse_req_t req, fuse_ino_t parent, const char *name, uint32_t mode, uint32_t rdev,
	     const char *target, struct fuse_entry_param *e);
void ops_fill_entry(const struct fs_inode *in, struct fuse_entry_param *e);
/* How long the kernel may keep attributes and names (entries, and absent
 * names): long on a read-write mount, which is the volume's only writer, so
 * every change goes through this kernel; short on a read-only one, which
 * follows the writer (refresh.c).  A change the kernel cannot see (atime set
 * by a read) invalidates the inode's attributes itself. */
double ops_attr_timeout(void);
void ops_stat(const struct fs_inode *in, struct stat *st);
/* Opens ino for fi (and replies open, or create when e is given). */
void ops_open_node(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		   const struct fuse_entry_param *e);
void ops_release_node(struct fs_node *n, int flags);

void ops_fill_file(struct fuse_lowlevel_ops *ops);
void ops_fill_ns(struct fuse_lowlevel_ops *ops);
void ops_fill_xattr(struct fuse_lowlevel_ops *ops); /* ops_xattr.c */
void ops_fill_data(struct fuse_lowlevel_ops *ops);  /* ops_data.c */
/* After a read of ino (seen: its inode then): atime = now when it is not
 * newer than mtime or ctime, or a day old (relatime). */
void ops_relatime(uint64_t ino, const struct fs_inode *seen);

/* Clears setuid, and setgid when group-executable (as the kernel would on
 * write, truncate or chown); true if the mode changed. */
bool ops_kill_suid(struct fs_inode *in);

/* fuseio.c: the session's /dev/fuse I/O; after fuse_session_mount.  It
 * answers INIT with FUSE_HANDLE_KILLPRIV_V2 when the kernel offers it. */
int fuseio_attach(struct fuse_session *se);
bool fuseio_killpriv_v2(void);

#endif
