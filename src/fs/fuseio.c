/*
 * fuseio.c - the session's /dev/fuse I/O (libfuse's custom-io hook), there
 * for one reason: to answer the kernel's INIT with FUSE_HANDLE_KILLPRIV_V2,
 * which libfuse 3.14 cannot ask for.
 *
 * Why: a filesystem with xattrs otherwise gets a GETXATTR(security.capability)
 * before every write(2), because the kernel must know whether to drop file
 * capabilities; with KILLPRIV_V2 the superblock is SB_NOSEC, the kernel
 * remembers that an inode has nothing to kill, and pstorefs clears
 * setuid/setgid itself (ops_file.c: writes not coming from the page cache,
 * truncate and chown, as FUSE_HANDLE_KILLPRIV_V2 asks).
 *
 * Reads and writes are plain read(2)/writev(2) on the session's fd; the
 * only change is to the flags word of the one INIT reply, and only when the
 * kernel offered the flag.
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common.h"
#include "fs.h"
#include "ops.h"

static _Atomic uint64_t init_unique;  /* unique of the INIT request, 0 if none yet */
static _Atomic uint32_t init_offered; /* the kernel's INIT flags */
static atomic_bool init_done;
static atomic_bool killpriv_v2;

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);

	(void)userdata;
	if (n >= (ssize_t)(sizeof(struct fuse_in_header) +
			   offsetof(struct fuse_init_in, flags) + sizeof(uint32_t)) &&
	    !atomic_load(&init_done)) {
		const struct fuse_in_header *h = buf;

		if (h->opcode == FUSE_INIT) {
			const struct fuse_init_in *in = (const void *)(h + 1);

			atomic_store(&init_offered, in->flags);
			atomic_store(&init_unique, h->unique);
		}
	}
	return n;
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct fuse_init_out out;
	struct iovec v[2];
	uint64_t u = atomic_load(&init_unique);

	(void)userdata;
	if (u && !atomic_load(&init_done) && count == 2 &&
	    iov[0].iov_len == sizeof(struct fuse_out_header) &&
	    iov[1].iov_len >= offsetof(struct fuse_init_out, flags) + sizeof(uint32_t) &&
	    iov[1].iov_len <= sizeof(out)) {
		const struct fuse_out_header *oh = iov[0].iov_base;

		if (oh->unique == u && oh->error == 0) {
			atomic_store(&init_done, true);
			memset(&out, 0, sizeof(out));
			memcpy(&out, iov[1].iov_base, iov[1].iov_len);
			if (atomic_load(&init_offered) & FUSE_HANDLE_KILLPRIV_V2) {
				out.flags |= FUSE_HANDLE_KILLPRIV_V2;
				out.flags &= ~(uint32_t)FUSE_HANDLE_KILLPRIV;
				atomic_store(&killpriv_v2, true);
				log_info("kernel: FUSE_HANDLE_KILLPRIV_V2 on (no GETXATTR per "
					 "write)");
			}
			v[0] = iov[0];
			v[1].iov_base = &out;
			v[1].iov_len = iov[1].iov_len;
			return writev(fd, v, 2);
		}
	}
	return writev(fd, iov, count);
}

int fuseio_attach(struct fuse_session *se)
{
	static const struct fuse_custom_io io = {.read = io_read, .writev = io_writev};
	int fd = fuse_session_fd(se);

	if (fd < 0 || fuse_session_custom_io(se, &io, fd) != 0)
		return -EINVAL;
	return 0;
}

bool fuseio_killpriv_v2(void)
{
	return atomic_load(&killpriv_v2);
}
