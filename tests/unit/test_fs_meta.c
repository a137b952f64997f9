/*
 * test_fs_meta.c - pstorefs' local LMDB store: namespace records, chunk
 * records, the journal of dirty marks and pending frees, recovery after a
 * restart; each test on a fresh store in a temporary directory.
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

	strcpy(c->dir, "/tmp/test_fs_meta.XXXXXX");
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

static void make_inode(struct fs_inode *in, uint64_t ino, uint32_t mode)
{
	memset(in, 0, sizeof(*in));
	in->ino = ino;
	in->mode = mode;
	in->nlink = (mode & S_IFMT) == S_IFDIR ? 2 : 1;
	in->parent = (mode & S_IFMT) == S_IFDIR ? FS_ROOT_INO : 0;
	fs_time_now(&in->mtime);
}

static uint64_t count_marks(struct fs_meta *m, uint64_t *min_seq)
{
	struct fs_txn t;
	uint64_t n, mn;

	assert_int_equal(meta_begin(m, false, &t), 0);
	assert_int_equal(meta_marks_min_seq(&t, &mn, &n), 0);
	meta_abort(&t);
	if (min_seq)
		*min_seq = mn;
	return n;
}

static int collect_cb(const char *name, size_t nlen, const struct fs_dirent_val *d, void *arg)
{
	char *out = arg;

	(void)d;
	strncat(out, name, nlen);
	strcat(out, ",");
	return 0;
}

static void test_namespace(void **state)
{
	struct ctx *c = *state;
	struct fs_inode *in = malloc(sizeof(*in));
	struct fs_dirent_val d = {.type = S_IFREG}, got;
	struct fs_txn t;
	char names[256] = "";
	uint64_t ino;

	assert_true(meta_is_empty(c->m));
	assert_int_equal(meta_begin(c->m, true, &t), 0);
	make_inode(in, FS_ROOT_INO, S_IFDIR | 0755);
	assert_int_equal(meta_inode_put(&t, in, true), 0);
	assert_int_equal(meta_alloc_ino(&t, &ino), 0);
	assert_int_equal(ino, 2);
	assert_int_equal(meta_alloc_ino(&t, &ino), 0);
	assert_int_equal(ino, 3);
	make_inode(in, 2, S_IFREG | 0644);
	assert_int_equal(meta_inode_put(&t, in, true), 0);
	d.ino = 2;
	assert_int_equal(meta_dirent_put(&t, FS_ROOT_INO, "b", &d, true), 0);
	assert_int_equal(meta_dirent_put(&t, FS_ROOT_INO, "a", &d, true), 0);
	/* an entry of another directory must not show up in the listing */
	assert_int_equal(meta_dirent_put(&t, 2, "zz", &d, true), 0);
	assert_int_equal(meta_commit(&t), 0);
	assert_false(meta_is_empty(c->m));

	assert_int_equal(meta_begin(c->m, false, &t), 0);
	assert_int_equal(meta_dirent_get(&t, FS_ROOT_INO, "a", &got), 0);
	assert_int_equal(got.ino, 2);
	assert_int_equal(meta_dirent_get(&t, FS_ROOT_INO, "c", &got), -ENOENT);
	assert_int_equal(meta_dir_list(&t, FS_ROOT_INO, collect_cb, names), 0);
	assert_string_equal(names, "a,b,");
	assert_int_equal(meta_dir_empty(&t, FS_ROOT_INO), -ENOTEMPTY);
	assert_int_equal(meta_dir_empty(&t, 99), 0);
	assert_int_equal(meta_inode_get(&t, 2, in), 0);
	assert_int_equal(in->mode, S_IFREG | 0644);
	meta_abort(&t);

	{
		char longname[FS_NAME_MAX + 2];

		memset(longname, 'x', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';
		assert_int_equal(meta_begin(c->m, true, &t), 0);
		assert_int_equal(meta_dirent_put(&t, FS_ROOT_INO, longname, &d, true),
				 -ENAMETOOLONG);
		assert_int_equal(meta_dirent_del(&t, FS_ROOT_INO, "a"), 0);
		assert_int_equal(meta_dirent_del(&t, FS_ROOT_INO, "a"), -ENOENT);
		assert_int_equal(meta_commit(&t), 0);
	}
	/* root, inode 2, three dirents (a's deletion re-marks its key) */
	assert_int_equal(count_marks(c->m, NULL), 5);
	free(in);
}

static void test_chunks_and_frees(void **state)
{
	struct ctx *c = *state;
	struct fs_txn t;
	struct fs_chunk ch, got;
	struct fs_mark mk;
	uint8_t key[17];
	uint64_t before, min_seq;

	memset(&ch, 0, sizeof(ch));
	ch.flags = FS_CHUNK_REF | FS_CHUNK_PRESENT;
	ch.ref.chunk_id[0] = 0xaa;
	ch.ref.stored_len = 100;
	ch.ref.raw_len = 4096;
	ch.ref.n_vendors = 2;
	ch.ref.vendors[0] = 1;
	ch.ref.vendors[1] = 2;
	assert_int_equal(meta_begin(c->m, true, &t), 0);
	for (uint64_t i = 0; i < 4; i++) {
		ch.ref.chunk_id[1] = (uint8_t)i;
		assert_int_equal(meta_chunk_put(&t, 5, i, &ch, false), 0);
	}
	/* a chunk of another inode stays */
	assert_int_equal(meta_chunk_put(&t, 6, 0, &ch, false), 0);
	assert_int_equal(meta_chunk_dirty(&t, 5, 3), 0);
	assert_int_equal(meta_commit(&t), 0);
	before = count_marks(c->m, NULL);
	assert_int_equal(before, 1);

	/* truncate to 2 chunks: chunks 2 and 3 freed, their keys re-sent */
	assert_int_equal(meta_begin(c->m, true, &t), 0);
	assert_int_equal(meta_chunks_drop(&t, 5, 2), 0);
	assert_int_equal(meta_chunk_get(&t, 5, 1, &got), 0);
	assert_int_equal(got.ref.chunk_id[1], 1);
	assert_int_equal(got.ref.n_vendors, 2);
	assert_int_equal(meta_chunk_get(&t, 5, 2, &got), -ENOENT);
	assert_int_equal(meta_chunk_get(&t, 6, 0, &got), 0);
	ch.ref.chunk_id[1] = 2;
	assert_int_equal(meta_mark_get(&t, FS_MARK_FREED, ch.ref.chunk_id, CHUNK_ID_LEN, &mk),
			 0);
	assert_int_equal(meta_mark_get(&t, FS_MARK_DATA, key, mirror_key_chunk(key, 5, 3), &mk),
			 -ENOENT);
	assert_int_equal(
	    meta_mark_get(&t, FS_MARK_MIRROR, key, mirror_key_chunk(key, 5, 3), &mk), 0);
	assert_int_equal(meta_commit(&t), 0);
	/* 2 frees + 2 mirror keys; the data mark of chunk 3 is gone */
	assert_int_equal(count_marks(c->m, &min_seq), 4);

	/* marks keep their oldest sequence and take the newest */
	assert_int_equal(meta_begin(c->m, true, &t), 0);
	assert_int_equal(meta_chunk_dirty(&t, 5, 0), 0);
	assert_int_equal(meta_mark_get(&t, FS_MARK_DATA, key, mirror_key_chunk(key, 5, 0), &mk),
			 0);
	{
		uint64_t first = mk.first_seq;

		assert_int_equal(meta_chunk_dirty(&t, 5, 0), 0);
		assert_int_equal(meta_mark_get(&t, FS_MARK_DATA, key, 17, &mk), 0);
		assert_int_equal(mk.first_seq, first);
		assert_true(mk.last_seq > first);
	}
	mk.uploading = 1;
	assert_int_equal(meta_mark_set(&t, FS_MARK_DATA, key, 17, &mk), 0);
	assert_int_equal(meta_commit(&t), 0);
}

static void test_purge_and_recover(void **state)
{
	struct ctx *c = *state;
	struct fs_inode *in = malloc(sizeof(*in));
	struct fs_txn t;
	struct fs_chunk ch;
	struct fs_mark mk;
	uint8_t key[17];
	uint64_t *orphans;
	size_t n;

	memset(&ch, 0, sizeof(ch));
	ch.flags = FS_CHUNK_REF;
	ch.ref.chunk_id[0] = 0x77;
	ch.ref.stored_len = 10;
	ch.ref.raw_len = 10;
	ch.ref.n_vendors = 1;
	ch.ref.vendors[0] = 3;
	assert_int_equal(meta_begin(c->m, true, &t), 0);
	make_inode(in, FS_ROOT_INO, S_IFDIR | 0755);
	assert_int_equal(meta_inode_put(&t, in, true), 0);
	make_inode(in, 9, S_IFREG | 0600);
	in->nlink = 0; /* unlinked while open, then pstorefs died */
	in->size = 10;
	assert_int_equal(meta_inode_put(&t, in, true), 0);
	assert_int_equal(meta_chunk_put(&t, 9, 0, &ch, false), 0);
	make_inode(in, 10, S_IFREG | 0600);
	assert_int_equal(meta_inode_put(&t, in, true), 0);
	assert_int_equal(meta_chunk_dirty(&t, 10, 0), 0);
	mirror_key_chunk(key, 10, 0);
	assert_int_equal(meta_mark_get(&t, FS_MARK_DATA, key, 17, &mk), 0);
	mk.uploading = 1; /* an upload in progress at the crash */
	assert_int_equal(meta_mark_set(&t, FS_MARK_DATA, key, 17, &mk), 0);
	assert_int_equal(meta_commit(&t), 0);

	/* reopen, as after a restart */
	meta_close(c->m);
	assert_int_equal(meta_open(c->dir, &c->m), 0);
	fs.meta = c->m;
	assert_int_equal(meta_recover(c->m, &orphans, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(orphans[0], 9);
	free(orphans);

	assert_int_equal(meta_begin(c->m, false, &t), 0);
	assert_int_equal(meta_inode_get(&t, 9, in), -ENOENT);
	assert_int_equal(meta_chunk_get(&t, 9, 0, &ch), -ENOENT);
	ch.ref.chunk_id[0] = 0x77; /* its committed chunk is to be freed */
	assert_int_equal(meta_mark_get(&t, FS_MARK_FREED, ch.ref.chunk_id, CHUNK_ID_LEN, &mk),
			 0);
	assert_int_equal(meta_mark_get(&t, FS_MARK_DATA, key, 17, &mk), 0);
	assert_int_equal(mk.uploading, 0);
	assert_int_equal(meta_inode_get(&t, 10, in), 0);
	meta_abort(&t);

	/* sequence numbers continue above what the store holds */
	assert_true(meta_seq_next(c->m) > mk.last_seq);
	free(in);
}

static void test_settings(void **state)
{
	struct ctx *c = *state;
	struct fs_txn t;
	uint8_t id[16] = {1, 2, 3}, got[16];
	uint64_t v;

	assert_int_equal(meta_begin(c->m, true, &t), 0);
	assert_int_equal(meta_get_u64(&t, "chunk_size", &v), -ENOENT);
	assert_int_equal(meta_put_u64(&t, "chunk_size", 4096), 0);
	assert_int_equal(meta_put_blob(&t, "volume_id", id, sizeof(id)), 0);
	assert_int_equal(meta_commit(&t), 0);
	assert_int_equal(meta_begin(c->m, false, &t), 0);
	assert_int_equal(meta_get_u64(&t, "chunk_size", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(meta_get_blob(&t, "volume_id", got, sizeof(got)), 0);
	assert_memory_equal(got, id, sizeof(id));
	assert_int_equal(meta_get_blob(&t, "volume_id", got, 8), -EBADMSG);
	meta_abort(&t);
}

/* Under MDB_NOSYNC the map is writable: the data file is sized to the map
 * (sparse), and write transactions reserve real blocks ahead of the pages
 * they may use, so that a full disk is ENOSPC and not a SIGBUS. */
static void test_writable_map_reserves_blocks(void **state)
{
	struct ctx *c = *state;
	struct fs_inode *in = malloc(sizeof(*in));
	struct fs_txn t;
	struct stat st;
	char path[128];

	assert_non_null(in);
	if (!meta_nosync(c->m)) {
		free(in);
		skip(); /* no boot id here: plain NOMETASYNC, no writable map */
	}
	for (int i = 0; i < 50; i++) {
		assert_int_equal(meta_begin(c->m, true, &t), 0);
		for (int j = 0; j < 100; j++) {
			make_inode(in, 1000 + (uint64_t)(i * 100 + j), S_IFREG | 0644);
			assert_int_equal(meta_inode_put(&t, in, true), 0);
		}
		assert_int_equal(meta_commit(&t), 0);
	}
	snprintf(path, sizeof(path), "%s/data.mdb", c->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_true((uint64_t)st.st_blocks * 512 >= (UINT64_C(8) << 20));
	assert_true((uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size);
	assert_int_equal(meta_begin(c->m, false, &t), 0);
	assert_int_equal(meta_inode_get(&t, 1000 + 4999, in), 0);
	assert_int_equal(in->ino, 1000 + 4999);
	meta_abort(&t);
	free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_namespace, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chunks_and_frees, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_purge_and_recover, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_writable_map_reserves_blocks, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
