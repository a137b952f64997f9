/*
 * gen_seeds_fs.c - the seed corpus of fuzz_mirror (DIR/mirror/): an inode,
 * a symlink, a dirent and a chunk ref, encoded by src/fs/mirror.c.  Input
 * layout: key length, key, value (see fuzz_mirror.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "fs.h"
#include "fuzz_common.h"

struct fs_state fs; /* defined by pstorefs' main.c; mirror_rebuild (not fuzzed) uses it */

static const char *root;

static void seed(const char *name, const uint8_t *key, size_t klen, const uint8_t *val,
		 size_t vlen)
{
	static uint8_t buf[1 + FS_KEY_MAX + MIRROR_INODE_MAX];
	char dir[1024], path[1200];

	buf[0] = (uint8_t)klen;
	memcpy(buf + 1, key, klen);
	memcpy(buf + 1 + klen, val, vlen);
	snprintf(dir, sizeof(dir), "%s/mirror", root);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (mkdir_p(dir, 0755) < 0)
		abort();
	fuzz_write_file(path, buf, 1 + klen + vlen);
}

int main(int argc, char **argv)
{
	static struct fs_inode in;
	static uint8_t val[MIRROR_INODE_MAX];
	uint8_t key[FS_KEY_MAX];
	struct fs_dirent_val d = {.ino = 5, .type = S_IFREG};
	struct alloc_chunk_ref r = {
	    .stored_len = 4000, .raw_len = 9000, .n_vendors = 2, .vendors = {1, 3}};
	size_t kl, vl;

	if (argc != 2) {
		fprintf(stderr, "usage: fuzz_gen_seeds_fs CORPUS_DIR\n");
		return 2;
	}
	root = argv[1];
	in.mode = S_IFREG | 0644;
	in.nlink = 1;
	in.size = 9000;
	in.parent = 1;
	in.mtime.sec = 1700000000;
	in.mtime.nsec = 5;
	kl = mirror_key_inode(key, 5);
	vl = mirror_inode_encode(&in, val);
	seed("inode", key, kl, val, vl);
	in.mode = S_IFLNK | 0777;
	in.target_len = 6;
	memcpy(in.target, "../dir", 7);
	in.size = 6;
	kl = mirror_key_inode(key, 6);
	vl = mirror_inode_encode(&in, val);
	seed("symlink", key, kl, val, vl);
	kl = mirror_key_dirent(key, 1, "file.txt", 8);
	vl = mirror_dirent_encode(&d, val);
	seed("dirent", key, kl, val, vl);
	memset(r.chunk_id, 0x42, sizeof(r.chunk_id));
	kl = mirror_key_chunk(key, 5, 0);
	vl = mirror_chunk_encode(&r, val);
	seed("chunk", key, kl, val, vl);
	return 0;
}
