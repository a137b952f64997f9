/*
 * test_fs_mirror.c - the metadata mirror encoding of pstorefs: round trips
 * of keys, inodes, dirents and chunk refs, and rejection of truncated,
 * padded and hostile values (what comes back from the FAT is untrusted).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fs.h"

struct fs_state fs; /* mirror.c's rebuild uses it; not exercised here */

static void sample_inode(struct fs_inode *in)
{
	memset(in, 0, sizeof(*in));
	in->ino = 42;
	in->mode = S_IFREG | 0644;
	in->uid = 1000;
	in->gid = 100;
	in->nlink = 2;
	in->size = 123456789;
	in->atime = (struct fs_time){1700000000, 1};
	in->mtime = (struct fs_time){1700000001, 999999999};
	in->ctime = (struct fs_time){-5, 0};
}

static void test_inode_roundtrip(void **state)
{
	struct fs_inode in, out;
	uint8_t buf[MIRROR_INODE_MAX];
	size_t n;

	(void)state;
	sample_inode(&in);
	n = mirror_inode_encode(&in, buf);
	assert_int_equal(mirror_inode_decode(buf, n, 42, &out), 0);
	assert_int_equal(out.ino, 42);
	assert_int_equal(out.mode, in.mode);
	assert_int_equal(out.uid, 1000);
	assert_int_equal(out.gid, 100);
	assert_int_equal(out.nlink, 2);
	assert_int_equal(out.size, in.size);
	assert_int_equal(out.mtime.nsec, 999999999);
	assert_int_equal(out.ctime.sec, -5);

	/* symlink with its target */
	in.mode = S_IFLNK | 0777;
	strcpy(in.target, "../some/where");
	in.target_len = (uint16_t)strlen(in.target);
	in.size = in.target_len;
	n = mirror_inode_encode(&in, buf);
	assert_int_equal(mirror_inode_decode(buf, n, 42, &out), 0);
	assert_string_equal(out.target, "../some/where");

	/* a directory */
	sample_inode(&in);
	in.mode = S_IFDIR | 0755;
	in.size = 0;
	in.parent = 1;
	n = mirror_inode_encode(&in, buf);
	assert_int_equal(mirror_inode_decode(buf, n, 42, &out), 0);
	assert_int_equal(out.parent, 1);
}

static void test_inode_hostile(void **state)
{
	struct fs_inode in, out;
	uint8_t buf[MIRROR_INODE_MAX + 8];
	size_t n;

	(void)state;
	sample_inode(&in);
	n = mirror_inode_encode(&in, buf);
	/* every truncation and one byte too many */
	for (size_t l = 0; l < n; l++)
		assert_int_equal(mirror_inode_decode(buf, l, 42, &out), -EBADMSG);
	buf[n] = 0;
	assert_int_equal(mirror_inode_decode(buf, n + 1, 42, &out), -EBADMSG);
	/* inode number 0 */
	assert_int_equal(mirror_inode_decode(buf, n, 0, &out), -EBADMSG);
	/* unknown version */
	buf[0] = 2;
	assert_int_equal(mirror_inode_decode(buf, n, 42, &out), -EBADMSG);
	buf[0] = 1;
	/* nanoseconds out of range */
	in.mtime.nsec = 1000000000u;
	n = mirror_inode_encode(&in, buf);
	assert_int_equal(mirror_inode_decode(buf, n, 42, &out), -EBADMSG);
	/* unknown file type and stray mode bits */
	sample_inode(&in);
	in.mode = 0170000 | 0644; /* not a type we create */
	n = mirror_inode_encode(&in, buf);
	assert_int_equal(mirror_inode_decode(buf, n, 42, &out), -EBADMSG);
	in.mode = S_IFCHR | 0644;
	n = mirror_inode_encode(&in, buf);
	assert_int_equal(mirror_inode_decode(buf, n, 42, &out), -EBADMSG);
	/* target on a regular file; symlink without a target */
	sample_inode(&in);
	in.target_len = 3;
	memcpy(in.target, "abc", 3);
	n = mirror_inode_encode(&in, buf);
	assert_int_equal(mirror_inode_decode(buf, n, 42, &out), -EBADMSG);
	sample_inode(&in);
	in.mode = S_IFLNK | 0777;
	in.size = 0;
	n = mirror_inode_encode(&in, buf);
	assert_int_equal(mirror_inode_decode(buf, n, 42, &out), -EBADMSG);
	/* a target length beyond the buffer */
	sample_inode(&in);
	n = mirror_inode_encode(&in, buf);
	buf[n - 2] = 0xff;
	buf[n - 1] = 0xff;
	assert_int_equal(mirror_inode_decode(buf, n, 42, &out), -EBADMSG);
	/* absurd size */
	sample_inode(&in);
	in.size = UINT64_MAX;
	n = mirror_inode_encode(&in, buf);
	assert_int_equal(mirror_inode_decode(buf, n, 42, &out), -EBADMSG);
	/* directory that is its own parent */
	sample_inode(&in);
	in.mode = S_IFDIR | 0755;
	in.size = 0;
	in.parent = 42;
	n = mirror_inode_encode(&in, buf);
	assert_int_equal(mirror_inode_decode(buf, n, 42, &out), -EBADMSG);
}

static void test_dirent(void **state)
{
	struct fs_dirent_val d = {.ino = 77, .type = S_IFDIR}, out;
	uint8_t buf[MIRROR_DIRENT_LEN + 1];
	size_t n;

	(void)state;
	n = mirror_dirent_encode(&d, buf);
	assert_int_equal(n, MIRROR_DIRENT_LEN);
	assert_int_equal(mirror_dirent_decode(buf, n, &out), 0);
	assert_int_equal(out.ino, 77);
	assert_int_equal(out.type, S_IFDIR);
	assert_int_equal(mirror_dirent_decode(buf, n - 1, &out), -EBADMSG);
	assert_int_equal(mirror_dirent_decode(buf, n + 1, &out), -EBADMSG);
	d.ino = 0;
	mirror_dirent_encode(&d, buf);
	assert_int_equal(mirror_dirent_decode(buf, n, &out), -EBADMSG);
	d.ino = FS_ROOT_INO; /* nothing may link to the root */
	mirror_dirent_encode(&d, buf);
	assert_int_equal(mirror_dirent_decode(buf, n, &out), -EBADMSG);
	d.ino = 5;
	d.type = 0644;
	mirror_dirent_encode(&d, buf);
	assert_int_equal(mirror_dirent_decode(buf, n, &out), -EBADMSG);
}

static void sample_ref(struct alloc_chunk_ref *r)
{
	memset(r, 0, sizeof(*r));
	for (int i = 0; i < CHUNK_ID_LEN; i++)
		r->chunk_id[i] = (uint8_t)(i + 1);
	r->stored_len = 1000;
	r->raw_len = 4096;
	r->n_vendors = 3;
	r->vendors[0] = 4;
	r->vendors[1] = 1;
	r->vendors[2] = 9;
}

static void test_chunk(void **state)
{
	struct alloc_chunk_ref r, out;
	uint8_t buf[MIRROR_CHUNK_MAX + 4];
	size_t n;

	(void)state;
	sample_ref(&r);
	n = mirror_chunk_encode(&r, buf);
	assert_int_equal(mirror_chunk_decode(buf, n, &out), 0);
	assert_memory_equal(out.chunk_id, r.chunk_id, CHUNK_ID_LEN);
	assert_int_equal(out.stored_len, 1000);
	assert_int_equal(out.raw_len, 4096);
	assert_int_equal(out.n_vendors, 3);
	assert_int_equal(out.vendors[2], 9);
	for (size_t l = 0; l < n; l++)
		assert_int_equal(mirror_chunk_decode(buf, l, &out), -EBADMSG);
	assert_int_equal(mirror_chunk_decode(buf, n + 4, &out), -EBADMSG);

	r.vendors[2] = 4; /* duplicate vendor */
	n = mirror_chunk_encode(&r, buf);
	assert_int_equal(mirror_chunk_decode(buf, n, &out), -EBADMSG);
	sample_ref(&r);
	r.vendors[1] = 0;
	n = mirror_chunk_encode(&r, buf);
	assert_int_equal(mirror_chunk_decode(buf, n, &out), -EBADMSG);
	sample_ref(&r);
	r.raw_len = CHUNK_MAX_RAW + 1;
	n = mirror_chunk_encode(&r, buf);
	assert_int_equal(mirror_chunk_decode(buf, n, &out), -EBADMSG);
	sample_ref(&r);
	r.stored_len = 0;
	n = mirror_chunk_encode(&r, buf);
	assert_int_equal(mirror_chunk_decode(buf, n, &out), -EBADMSG);
	sample_ref(&r);
	memset(r.chunk_id, 0, CHUNK_ID_LEN);
	n = mirror_chunk_encode(&r, buf);
	assert_int_equal(mirror_chunk_decode(buf, n, &out), -EBADMSG);
	/* a vendor count larger than what follows, and larger than the chain */
	sample_ref(&r);
	n = mirror_chunk_encode(&r, buf);
	buf[1 + CHUNK_ID_LEN + 12] = 4;
	assert_int_equal(mirror_chunk_decode(buf, n, &out), -EBADMSG);
	buf[1 + CHUNK_ID_LEN + 12] = 200;
	assert_int_equal(mirror_chunk_decode(buf, n, &out), -EBADMSG);
}

static void test_keys(void **state)
{
	uint8_t key[FS_KEY_MAX + 8];
	uint64_t a, b;
	const char *name;
	size_t nlen, n;

	(void)state;
	n = mirror_key_inode(key, 0x0102030405060708ull);
	assert_int_equal(mirror_key_parse(key, n, &a, &b, &name, &nlen), FS_KEY_INODE);
	assert_true(a == 0x0102030405060708ull);
	n = mirror_key_chunk(key, 7, 9);
	assert_int_equal(mirror_key_parse(key, n, &a, &b, &name, &nlen), FS_KEY_CHUNK);
	assert_int_equal(a, 7);
	assert_int_equal(b, 9);
	n = mirror_key_dirent(key, 3, "hello", 5);
	assert_int_equal(mirror_key_parse(key, n, &a, &b, &name, &nlen), FS_KEY_DIRENT);
	assert_int_equal(a, 3);
	assert_int_equal(nlen, 5);
	assert_memory_equal(name, "hello", 5);

	/* hostile keys */
	assert_int_equal(mirror_key_parse(key, 5, &a, &b, &name, &nlen), -EINVAL);
	n = mirror_key_dirent(key, 3, "a/b", 3);
	assert_int_equal(mirror_key_parse(key, n, &a, &b, &name, &nlen), -EINVAL);
	n = mirror_key_dirent(key, 3, "..", 2);
	assert_int_equal(mirror_key_parse(key, n, &a, &b, &name, &nlen), -EINVAL);
	n = mirror_key_dirent(key, 3, "x\0y", 3);
	assert_int_equal(mirror_key_parse(key, n, &a, &b, &name, &nlen), -EINVAL);
	n = mirror_key_dirent(key, 3, "", 0);
	assert_int_equal(mirror_key_parse(key, n, &a, &b, &name, &nlen), -EINVAL);
	memset(key + 9, 'x', FS_NAME_MAX + 1);
	assert_int_equal(mirror_key_parse(key, 9 + FS_NAME_MAX + 1, &a, &b, &name, &nlen),
			 -EINVAL);
	n = mirror_key_inode(key, 0);
	assert_int_equal(mirror_key_parse(key, n, &a, &b, &name, &nlen), -EINVAL);
	n = mirror_key_inode(key, 5);
	assert_int_equal(mirror_key_parse(key, n + 1, &a, &b, &name, &nlen), -EINVAL);
	key[0] = 'z';
	assert_int_equal(mirror_key_parse(key, n, &a, &b, &name, &nlen), -EINVAL);
}

/* Random bytes never crash a decoder, and whatever decodes re-encodes to the
 * same bytes. */
static void test_fuzz(void **state)
{
	uint8_t buf[MIRROR_INODE_MAX], re[MIRROR_INODE_MAX];
	struct fs_inode in;
	struct alloc_chunk_ref r;
	struct fs_dirent_val d;

	(void)state;
	srand(1);
	for (int i = 0; i < 200000; i++) {
		size_t len = (size_t)rand() % 120;

		for (size_t j = 0; j < len; j++)
			buf[j] = (uint8_t)rand();
		if (len)
			buf[0] = 1;
		if (mirror_inode_decode(buf, len, 9, &in) == 0) {
			assert_int_equal(mirror_inode_encode(&in, re), len);
			assert_memory_equal(re, buf, len);
		}
		if (mirror_chunk_decode(buf, len, &r) == 0) {
			assert_int_equal(mirror_chunk_encode(&r, re), len);
			assert_memory_equal(re, buf, len);
		}
		if (mirror_dirent_decode(buf, len, &d) == 0)
			assert_int_equal(len, MIRROR_DIRENT_LEN);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_inode_roundtrip),
	    cmocka_unit_test(test_inode_hostile),
	    cmocka_unit_test(test_dirent),
	    cmocka_unit_test(test_chunk),
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_fuzz),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
