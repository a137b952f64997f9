/*
 * fuzz_mirror.c - the metadata mirror decoder of pstorefs (src/fs/mirror.c):
 * keys and values come back from the FAT server when a client rebuilds its
 * local state, so they are hostile.  Input: byte 0 is the key length (mod
 * the input), then the key, then the value, as rebuild_item sees one item.
 * Anything accepted must re-encode to the same bytes and respect the
 * bounds the local store relies on.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs.h"
#include "fuzz_common.h"

struct fs_state fs; /* defined by pstorefs' main.c; mirror_rebuild (not fuzzed) uses it */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	return 0;
}

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);

	if (d && n)
		memcpy(d, p, n);
	return d;
}

static void check_value(int kind, uint64_t a, const uint8_t *val, size_t vlen)
{
	static struct fs_inode in; /* 4 KiB: not on the stack */
	static uint8_t out[MIRROR_INODE_MAX];
	struct fs_dirent_val d;
	struct alloc_chunk_ref r;
	size_t n;

	switch (kind) {
	case FS_KEY_INODE:
		if (mirror_inode_decode(val, vlen, a, &in) != 0)
			return;
		if (in.target_len > FS_SYMLINK_MAX || in.target[in.target_len] != '\0')
			abort();
		n = mirror_inode_encode(&in, out);
		if (n != vlen || memcmp(out, val, n) != 0)
			abort();
		break;
	case FS_KEY_DIRENT:
		if (mirror_dirent_decode(val, vlen, &d) != 0)
			return;
		n = mirror_dirent_encode(&d, out);
		if (n != vlen || memcmp(out, val, n) != 0)
			abort();
		break;
	case FS_KEY_CHUNK:
		if (mirror_chunk_decode(val, vlen, &r) != 0)
			return;
		if (r.n_vendors < 1 || r.n_vendors > CHUNK_MAX_CHAIN)
			abort();
		n = mirror_chunk_encode(&r, out);
		if (n > MIRROR_CHUNK_MAX || n != vlen || memcmp(out, val, n) != 0)
			abort();
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *key, *val, kbuf[FS_KEY_MAX + 1];
	size_t klen, vlen, nlen, n;
	uint64_t a, b;
	const char *name;
	int kind;

	if (size < 1)
		return 0;
	klen = data[0] % size;
	vlen = size - 1 - klen;
	key = dup_exact(data + 1, klen);
	val = dup_exact(data + 1 + klen, vlen);
	if (!key || !val)
		goto out;
	kind = mirror_key_parse(key, klen, &a, &b, &name, &nlen);
	if (kind < 0)
		goto out;
	switch (kind) {
	case FS_KEY_INODE:
		n = mirror_key_inode(kbuf, a);
		break;
	case FS_KEY_DIRENT:
		if (nlen == 0 || nlen > FS_NAME_MAX || name != (const char *)key + 9)
			abort();
		n = mirror_key_dirent(kbuf, a, name, nlen);
		break;
	case FS_KEY_CHUNK:
		n = mirror_key_chunk(kbuf, a, b);
		break;
	default:
		goto out; /* a kind this target has no round-trip check for (e.g. xattrs) */
	}
	if (n != klen || memcmp(kbuf, key, n) != 0)
		abort();
	check_value(kind, a, val, vlen);
out:
	free(key);
	free(val);
	return 0;
}
