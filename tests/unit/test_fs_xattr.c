/*
 * test_fs_xattr.c - pstorefs' extended attributes in the local store and
 * their mirror encoding: get/put/del/list, limits, the dirty marks that
 * carry them to the FAT, their removal with the inode, and hostile mirror
 * keys and values.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fs.h"

struct fs_state fs;

struct ctx {
	char dir[64];
	struct fs_meta *m;
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	strcpy(c->dir, "/tmp/test_fs_xattr.XXXXXX");
	assert_non_null(mkdtemp(c->dir));
	assert_int_equal(meta_open(c->dir, &c->m), 0);
	fs.meta = c->m;
	fs.chunk_size = 4096;
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;
	char cmd[128];

	meta_close(c->m);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", c->dir);
	assert_int_equal(system(cmd), 0);
	free(c);
	return 0;
}

struct names {
	char buf[1024];
	size_t len, total;
};

static int list_cb(const char *name, size_t nlen, size_t vlen, void *arg)
{
	struct names *n = arg;

	memcpy(n->buf + n->len, name, nlen);
	n->buf[n->len + nlen] = ';';
	n->len += nlen + 1;
	n->total += vlen;
	return 0;
}

static int count_marks(const uint8_t *key, size_t klen, const struct fs_mark *mk, void *arg)
{
	(void)mk;
	if (klen > 0 && key[0] == FS_KEY_XATTR)
		(*(int *)arg)++;
	return 0;
}

static void test_store(void **state)
{
	struct ctx *c = *state;
	struct fs_inode *in = calloc(1, sizeof(*in));
	struct names n = {0};
	struct fs_txn t;
	char buf[16];
	size_t len = 0;
	int marks = 0;
	static char big[FS_XATTR_SIZE_MAX + 1];

	in->ino = 7;
	in->mode = S_IFREG | 0644;
	in->nlink = 1;
	assert_int_equal(meta_begin(c->m, true, &t), 0);
	assert_int_equal(meta_inode_put(&t, in, true), 0);
	assert_int_equal(meta_xattr_get(&t, 7, "user.a", NULL, 0, &len), -ENODATA);
	assert_int_equal(meta_xattr_put(&t, 7, "user.a", "hello", 5, true), 0);
	assert_int_equal(meta_xattr_put(&t, 7, "user.empty", "", 0, true), 0);
	assert_int_equal(meta_xattr_put(&t, 8, "user.other", "x", 1, true), 0);
	assert_int_equal(meta_xattr_get(&t, 7, "user.a", NULL, 0, &len), 0);
	assert_int_equal(len, 5);
	assert_int_equal(meta_xattr_get(&t, 7, "user.a", buf, 2, &len), -ERANGE);
	assert_int_equal(meta_xattr_get(&t, 7, "user.a", buf, sizeof(buf), &len), 0);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(meta_xattr_get(&t, 7, "user.empty", buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(meta_xattr_put(&t, 7, "user.big", big, sizeof(big), true), -E2BIG);
	assert_int_equal(meta_xattr_put(&t, 7, "user.big", big, sizeof(big) - 1, true), 0);
	assert_int_equal(meta_xattr_list(&t, 7, list_cb, &n), 0);
	n.buf[n.len] = '\0';
	assert_string_equal(n.buf, "user.a;user.big;user.empty;");
	assert_int_equal(n.total, 5 + FS_XATTR_SIZE_MAX);
	assert_int_equal(meta_xattr_del(&t, 7, "user.big"), 0);
	assert_int_equal(meta_xattr_del(&t, 7, "user.big"), -ENODATA);
	assert_int_equal(meta_mark_iter(&t, FS_MARK_MIRROR, count_marks, &marks), 0);
	assert_int_equal(marks, 4); /* a, empty, big (deleted: still to send), other */
	/* the inode goes: its attributes go (and the FAT is told) */
	assert_int_equal(meta_inode_purge(&t, 7), 0);
	assert_int_equal(meta_xattr_get(&t, 7, "user.a", NULL, 0, &len), -ENODATA);
	assert_int_equal(meta_xattr_get(&t, 8, "user.other", NULL, 0, &len), 0);
	assert_int_equal(meta_commit(&t), 0);
	free(in);
}

static void test_mirror_encoding(void **state)
{
	uint8_t key[FS_KEY_MAX + 8], val[8];
	const uint8_t *v;
	const char *name;
	size_t nlen, vlen, klen;
	uint64_t a, b;

	(void)state;
	klen = mirror_key_xattr(key, 42, "user.k", 6);
	assert_int_equal(mirror_key_parse(key, klen, &a, &b, &name, &nlen), FS_KEY_XATTR);
	assert_int_equal(a, 42);
	assert_int_equal(nlen, 6);
	assert_memory_equal(name, "user.k", 6);
	/* hostile keys: no name, NUL in the name, inode 0, a name too long */
	assert_int_equal(mirror_key_parse(key, 9, &a, &b, &name, &nlen), -EINVAL);
	key[10] = '\0';
	assert_int_equal(mirror_key_parse(key, klen, &a, &b, &name, &nlen), -EINVAL);
	klen = mirror_key_xattr(key, 0, "user.k", 6);
	assert_int_equal(mirror_key_parse(key, klen, &a, &b, &name, &nlen), -EINVAL);
	memset(key, 'n', sizeof(key));
	key[0] = FS_KEY_XATTR;
	assert_int_equal(mirror_key_parse(key, 9 + FS_XATTR_NAME_MAX + 1, &a, &b, &name, &nlen),
			 -EINVAL);
	/* values: version byte, then the bytes */
	assert_int_equal(mirror_xattr_encode("abc", 3, val), 4);
	assert_int_equal(mirror_xattr_decode(val, 4, &v, &vlen), 0);
	assert_int_equal(vlen, 3);
	assert_memory_equal(v, "abc", 3);
	assert_int_equal(mirror_xattr_decode(val, 0, &v, &vlen), -EBADMSG);
	val[0] = 99;
	assert_int_equal(mirror_xattr_decode(val, 4, &v, &vlen), -EBADMSG);
	assert_int_equal(mirror_xattr_decode(val, FS_XATTR_SIZE_MAX + 2, &v, &vlen), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_store, setup, teardown),
	    cmocka_unit_test(test_mirror_encoding),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
