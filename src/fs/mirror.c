/*
 * mirror.c - the one encoding of pstorefs' metadata, used for the FAT's
 * per-volume metadata mirror (opaque keys and values) and, identically, for
 * the local LMDB namespace; plus the rebuild of an empty local state from the
 * mirror, and the in-memory (key, value) lists with which fsck.c and
 * refresh.c compare the mirror with the local state.
 *
 * Keys:   'i' ino(be64)                  -> inode record
 *         'd' parent(be64) name          -> dirent record
 *         'c' ino(be64) index(be64)      -> committed chunk ref
 *         'x' ino(be64) name             -> extended attribute value
 * Values: version byte (1), then big-endian fixed fields.  Every decoder
 * checks the exact length, the version and each field's range: what comes
 * back from the FAT is treated as hostile.
 *
 * On an encrypted volume these keys and values never reach the FAT as they
 * are: src/alloc/volkey.c seals every key (HMAC) and value (AEAD) in
 * alloc_commit and opens them in alloc_meta_list (docs/encryption.md), so
 * the rebuild, fsck and read-only refresh here see the plaintext encoding.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "fs.h"

#define MIRROR_VERSION 1

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

size_t mirror_key_inode(uint8_t *key, uint64_t ino)
{
	key[0] = FS_KEY_INODE;
	put_be64(key + 1, ino);
	return 9;
}

size_t mirror_key_dirent(uint8_t *key, uint64_t parent, const char *name, size_t nlen)
{
	key[0] = FS_KEY_DIRENT;
	put_be64(key + 1, parent);
	memcpy(key + 9, name, nlen);
	return 9 + nlen;
}

size_t mirror_key_chunk(uint8_t *key, uint64_t ino, uint64_t idx)
{
	key[0] = FS_KEY_CHUNK;
	put_be64(key + 1, ino);
	put_be64(key + 9, idx);
	return 17;
}

size_t mirror_key_xattr(uint8_t *key, uint64_t ino, const char *name, size_t nlen)
{
	key[0] = FS_KEY_XATTR;
	put_be64(key + 1, ino);
	memcpy(key + 9, name, nlen);
	return 9 + nlen;
}

int mirror_key_parse(const uint8_t *key, size_t klen, uint64_t *a, uint64_t *b,
		     const char **name, size_t *nlen)
{
	if (klen < 9)
		return -EINVAL;
	*a = get_be64(key + 1);
	*b = 0;
	*name = NULL;
	*nlen = 0;
	switch (key[0]) {
	case FS_KEY_INODE:
		return klen == 9 && *a != 0 ? FS_KEY_INODE : -EINVAL;
	case FS_KEY_CHUNK:
		if (klen != 17 || *a == 0)
			return -EINVAL;
		*b = get_be64(key + 9);
		return FS_KEY_CHUNK;
	case FS_KEY_DIRENT:
		if (klen < 10 || klen > FS_KEY_MAX || *a == 0)
			return -EINVAL;
		*name = (const char *)key + 9;
		*nlen = klen - 9;
		if (memchr(*name, '/', *nlen) || memchr(*name, '\0', *nlen))
			return -EINVAL;
		if ((*nlen == 1 && (*name)[0] == '.') ||
		    (*nlen == 2 && (*name)[0] == '.' && (*name)[1] == '.'))
			return -EINVAL;
		return FS_KEY_DIRENT;
	case FS_KEY_XATTR:
		if (klen < 10 || klen > 9 + FS_XATTR_NAME_MAX || *a == 0)
			return -EINVAL;
		*name = (const char *)key + 9;
		*nlen = klen - 9;
		if (memchr(*name, '\0', *nlen))
			return -EINVAL;
		return FS_KEY_XATTR;
	default:
		return -EINVAL;
	}
}

/* Inode: ver(1) mode uid gid nlink rdev (5x4) size parent (2x8)
 * atime mtime ctime (3x(8+4)) target_len(2) target  = 75 + target_len */
#define INODE_FIXED 75
_Static_assert(INODE_FIXED + FS_SYMLINK_MAX <= MIRROR_INODE_MAX, "inode bound");

size_t mirror_inode_encode(const struct fs_inode *in, uint8_t *out)
{
	uint8_t *p = out;
	const struct fs_time *ts[3] = {&in->atime, &in->mtime, &in->ctime};

	*p++ = MIRROR_VERSION;
	put_be32(p, in->mode), p += 4;
	put_be32(p, in->uid), p += 4;
	put_be32(p, in->gid), p += 4;
	put_be32(p, in->nlink), p += 4;
	put_be32(p, in->rdev), p += 4;
	put_be64(p, in->size), p += 8;
	put_be64(p, in->parent), p += 8;
	for (int i = 0; i < 3; i++) {
		put_be64(p, (uint64_t)ts[i]->sec), p += 8;
		put_be32(p, ts[i]->nsec), p += 4;
	}
	p[0] = (uint8_t)(in->target_len >> 8);
	p[1] = (uint8_t)in->target_len;
	p += 2;
	memcpy(p, in->target, in->target_len);
	p += in->target_len;
	return (size_t)(p - out);
}

int mirror_inode_decode(const uint8_t *buf, size_t len, uint64_t ino, struct fs_inode *out)
{
	const uint8_t *p = buf;
	struct fs_time *ts[3] = {&out->atime, &out->mtime, &out->ctime};
	uint32_t type;

	if (len < INODE_FIXED || buf[0] != MIRROR_VERSION || ino == 0)
		return -EBADMSG;
	memset(out, 0, offsetof(struct fs_inode, target));
	out->ino = ino;
	p++;
	out->mode = get_be32(p), p += 4;
	out->uid = get_be32(p), p += 4;
	out->gid = get_be32(p), p += 4;
	out->nlink = get_be32(p), p += 4;
	out->rdev = get_be32(p), p += 4;
	out->size = get_be64(p), p += 8;
	out->parent = get_be64(p), p += 8;
	for (int i = 0; i < 3; i++) {
		ts[i]->sec = (int64_t)get_be64(p), p += 8;
		ts[i]->nsec = get_be32(p), p += 4;
		if (ts[i]->nsec >= 1000000000u)
			return -EBADMSG;
	}
	out->target_len = (uint16_t)(p[0] << 8 | p[1]);
	p += 2;
	if (out->target_len > FS_SYMLINK_MAX || len != INODE_FIXED + (size_t)out->target_len)
		return -EBADMSG;
	memcpy(out->target, p, out->target_len);
	out->target[out->target_len] = '\0';

	type = out->mode & S_IFMT;
	if (out->mode & ~(uint32_t)(S_IFMT | 07777))
		return -EBADMSG;
	if (type != S_IFREG && type != S_IFDIR && type != S_IFLNK && type != S_IFIFO &&
	    type != S_IFSOCK && type != S_IFCHR && type != S_IFBLK)
		return -EBADMSG;
	if ((type == S_IFLNK) != (out->target_len > 0))
		return -EBADMSG;
	if (memchr(out->target, '\0', out->target_len))
		return -EBADMSG;
	if (out->size > (UINT64_C(1) << 62) || out->nlink > (1u << 30))
		return -EBADMSG;
	if (type != S_IFREG && type != S_IFLNK && out->size != 0 && type != S_IFDIR)
		return -EBADMSG;
	if (type == S_IFLNK && out->size != out->target_len)
		return -EBADMSG;
	if (type == S_IFDIR && ino != FS_ROOT_INO && (out->parent == 0 || out->parent == ino))
		return -EBADMSG;
	return 0;
}

size_t mirror_dirent_encode(const struct fs_dirent_val *d, uint8_t *out)
{
	out[0] = MIRROR_VERSION;
	put_be64(out + 1, d->ino);
	put_be32(out + 9, d->type);
	return MIRROR_DIRENT_LEN;
}

int mirror_dirent_decode(const uint8_t *buf, size_t len, struct fs_dirent_val *out)
{
	if (len != MIRROR_DIRENT_LEN || buf[0] != MIRROR_VERSION)
		return -EBADMSG;
	out->ino = get_be64(buf + 1);
	out->type = get_be32(buf + 9);
	if (out->ino == 0 || out->ino == FS_ROOT_INO || (out->type & ~(uint32_t)S_IFMT) ||
	    out->type == 0)
		return -EBADMSG;
	return 0;
}

/* Chunk ref: version 1, or 2 when it carries the digest committed with the
 * chunk (appended after the vendors; fetch.c checks replicas against it). */
#define MIRROR_CHUNK_DIGEST_VERSION 2

size_t mirror_chunk_encode(const struct alloc_chunk_ref *r, uint8_t *out)
{
	uint8_t *p = out;

	*p++ = r->has_digest ? MIRROR_CHUNK_DIGEST_VERSION : MIRROR_VERSION;
	memcpy(p, r->chunk_id, CHUNK_ID_LEN), p += CHUNK_ID_LEN;
	put_be64(p, r->stored_len), p += 8;
	put_be32(p, r->raw_len), p += 4;
	*p++ = (uint8_t)r->n_vendors;
	for (unsigned i = 0; i < r->n_vendors; i++)
		put_be32(p, r->vendors[i]), p += 4;
	if (r->has_digest) {
		memcpy(p, r->digest, CHUNK_DIGEST_LEN);
		p += CHUNK_DIGEST_LEN;
	}
	return (size_t)(p - out);
}

int mirror_chunk_decode(const uint8_t *buf, size_t len, struct alloc_chunk_ref *out)
{
	const uint8_t *p = buf;
	static const uint8_t zero[CHUNK_ID_LEN];

	size_t dlen;

	if (len < 1 + CHUNK_ID_LEN + 13 ||
	    (buf[0] != MIRROR_VERSION && buf[0] != MIRROR_CHUNK_DIGEST_VERSION))
		return -EBADMSG;
	memset(out, 0, sizeof(*out));
	out->has_digest = buf[0] == MIRROR_CHUNK_DIGEST_VERSION;
	dlen = out->has_digest ? CHUNK_DIGEST_LEN : 0;
	p++;
	memcpy(out->chunk_id, p, CHUNK_ID_LEN), p += CHUNK_ID_LEN;
	out->stored_len = get_be64(p), p += 8;
	out->raw_len = get_be32(p), p += 4;
	out->n_vendors = *p++;
	if (memcmp(out->chunk_id, zero, CHUNK_ID_LEN) == 0)
		return -EBADMSG;
	if (out->n_vendors < 1 || out->n_vendors > CHUNK_MAX_CHAIN ||
	    len != (size_t)(p - buf) + 4 * out->n_vendors + dlen)
		return -EBADMSG;
	if (out->raw_len == 0 || out->raw_len > CHUNK_MAX_RAW || out->stored_len == 0 ||
	    out->stored_len > CHUNK_MAX_STORED)
		return -EBADMSG;
	for (unsigned i = 0; i < out->n_vendors; i++, p += 4) {
		out->vendors[i] = get_be32(p);
		if (out->vendors[i] == 0)
			return -EBADMSG;
		for (unsigned j = 0; j < i; j++)
			if (out->vendors[j] == out->vendors[i])
				return -EBADMSG;
	}
	if (dlen)
		memcpy(out->digest, p, CHUNK_DIGEST_LEN);
	return 0;
}

size_t mirror_xattr_encode(const void *val, size_t len, uint8_t *out)
{
	out[0] = MIRROR_VERSION;
	if (len)
		memcpy(out + 1, val, len);
	return len + 1;
}

int mirror_xattr_decode(const uint8_t *buf, size_t len, const uint8_t **val, size_t *vlen)
{
	if (len < 1 || len > 1 + FS_XATTR_SIZE_MAX || buf[0] != MIRROR_VERSION)
		return -EBADMSG;
	*val = buf + 1;
	*vlen = len - 1;
	return 0;
}

/* ---- rebuild ---- */

struct rebuild {
	struct fs_txn t;
	uint64_t max_ino;
	uint64_t n_inodes, n_dirents, n_chunks, n_bad;
};

static int rebuild_item(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
			void *arg)
{
	struct rebuild *rb = arg;
	uint64_t a, b;
	const char *name;
	size_t nlen;
	int kind, rc;

	kind = mirror_key_parse(key, klen, &a, &b, &name, &nlen);
	if (kind == FS_KEY_INODE) {
		struct fs_inode *in = malloc(sizeof(*in));

		if (!in)
			return -ENOMEM;
		rc = mirror_inode_decode(val, vlen, a, in);
		if (rc == 0) {
			rc = meta_inode_put(&rb->t, in, false);
			if (rc == 0) {
				rb->n_inodes++;
				rb->max_ino = MAX(rb->max_ino, a);
			}
		}
		free(in);
	} else if (kind == FS_KEY_DIRENT) {
		struct fs_dirent_val d;
		char nm[FS_NAME_MAX + 1];

		memcpy(nm, name, nlen);
		nm[nlen] = '\0';
		rc = mirror_dirent_decode(val, vlen, &d);
		if (rc == 0 && (rc = meta_dirent_put(&rb->t, a, nm, &d, false)) == 0)
			rb->n_dirents++;
	} else if (kind == FS_KEY_CHUNK) {
		struct fs_chunk c = {.flags = FS_CHUNK_REF};

		rc = mirror_chunk_decode(val, vlen, &c.ref);
		if (rc == 0 && c.ref.raw_len > fs.chunk_size)
			rc = -EBADMSG;
		if (rc == 0 && b > (UINT64_C(1) << 62) / fs.chunk_size)
			rc = -EBADMSG;
		if (rc == 0 && (rc = meta_chunk_put(&rb->t, a, b, &c, false)) == 0)
			rb->n_chunks++;
	} else if (kind == FS_KEY_XATTR) {
		char nm[FS_XATTR_NAME_MAX + 1];
		const uint8_t *xv;
		size_t xlen;

		memcpy(nm, name, nlen);
		nm[nlen] = '\0';
		rc = mirror_xattr_decode(val, vlen, &xv, &xlen);
		if (rc == 0)
			rc = meta_xattr_put(&rb->t, a, nm, xv, xlen, false);
	} else {
		rc = -EBADMSG;
	}
	if (rc == -EBADMSG || rc == -EINVAL) {
		rb->n_bad++;
		log_warn("mirror: ignoring a malformed key or value (key kind %d, %zu bytes)",
			 klen ? key[0] : 0, vlen);
		return 0;
	}
	return rc;
}

/* Second pass: drop what does not hang together (dirents to missing inodes,
 * chunks of missing inodes or beyond the end of their file). */
struct rebuild_check {
	struct fs_txn *t;
	uint64_t dropped;
};

static int check_inode(const struct fs_inode *in, void *arg)
{
	struct rebuild_check *ck = arg;
	int rc;

	if ((in->mode & S_IFMT) == S_IFREG) {
		uint64_t nchunks = (in->size + fs.chunk_size - 1) / fs.chunk_size;

		rc = meta_chunks_drop(ck->t, in->ino, nchunks);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int mirror_rebuild(void)
{
	struct rebuild rb = {0};
	struct rebuild_check ck = {0};
	struct fs_inode *root = NULL;
	uint64_t next = 0;
	int rc;

	log_info("local state is empty: rebuilding volume %s from the FAT mirror", fs.vol.name);
	rc = meta_begin(fs.meta, true, &rb.t);
	if (rc < 0)
		return rc;
	rc = alloc_meta_list(fs.alloc, rebuild_item, &rb);
	if (rc < 0) {
		log_err("mirror: listing the metadata mirror failed: %s", strerror(-rc));
		goto fail;
	}
	ck.t = &rb.t;
	rc = meta_inode_iter(&rb.t, check_inode, &ck);
	if (rc < 0)
		goto fail;
	rc = meta_dirents_check(&rb.t, &ck.dropped);
	if (rc < 0)
		goto fail;
	if (ck.dropped)
		log_warn("mirror: dropped %" PRIu64 " entries naming a missing inode",
			 ck.dropped);
	root = malloc(sizeof(*root));
	if (!root) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = meta_inode_get(&rb.t, FS_ROOT_INO, root);
	if (rc == -ENOENT || (rc == 0 && (root->mode & S_IFMT) != S_IFDIR)) {
		/* A new volume (or one whose root never reached the FAT). */
		memset(root, 0, sizeof(*root));
		root->ino = FS_ROOT_INO;
		root->mode = S_IFDIR | 0755;
		root->uid = getuid();
		root->gid = getgid();
		root->nlink = 2;
		root->parent = FS_ROOT_INO;
		fs_time_now(&root->mtime);
		root->atime = root->ctime = root->mtime;
		rc = meta_inode_put(&rb.t, root, true);
	}
	if (rc < 0)
		goto fail;
	rc = meta_get_u64(&rb.t, "next_ino", &next);
	if (rc == -ENOENT)
		next = 0;
	else if (rc < 0)
		goto fail;
	rc = meta_put_u64(&rb.t, "next_ino", MAX(next, MAX(rb.max_ino + 1, FS_ROOT_INO + 1)));
	if (rc < 0)
		goto fail;
	rc = meta_commit(&rb.t);
	free(root);
	if (rc < 0)
		return rc;
	log_info("mirror: rebuilt %" PRIu64 " inodes, %" PRIu64 " dirents, %" PRIu64
		 " chunks (%" PRIu64 " malformed entries ignored)",
		 rb.n_inodes, rb.n_dirents, rb.n_chunks, rb.n_bad);
	return 0;
fail:
	free(root);
	meta_abort(&rb.t);
	return rc;
}

/* ---- an in-memory list of mirror (key, value) pairs (fsck, refresh) ---- */

int mirror_kvs_add(struct mirror_kvs *s, const uint8_t *key, size_t klen, const uint8_t *val,
		   size_t vlen)
{
	struct mirror_kv *x;

	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 1024;
		struct mirror_kv *p = realloc(s->v, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		s->v = p;
		s->cap = cap;
	}
	x = &s->v[s->n];
	x->key = malloc(klen + 1);
	x->val = malloc(vlen + 1);
	if (!x->key || !x->val) {
		free(x->key);
		free(x->val);
		return -ENOMEM;
	}
	memcpy(x->key, key, klen);
	memcpy(x->val, val, vlen);
	x->klen = klen;
	x->vlen = vlen;
	s->n++;
	return 0;
}

int mirror_kvs_add_cb(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
		      void *arg)
{
	return mirror_kvs_add(arg, key, klen, val, vlen);
}

static int kv_cmp(const void *a, const void *b)
{
	const struct mirror_kv *x = a, *y = b;
	int c = memcmp(x->key, y->key, MIN(x->klen, y->klen));

	return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

void mirror_kvs_sort(struct mirror_kvs *s)
{
	if (s->n)
		qsort(s->v, s->n, sizeof(*s->v), kv_cmp);
}

const struct mirror_kv *mirror_kvs_find(const struct mirror_kvs *s, const uint8_t *key,
					size_t klen)
{
	struct mirror_kv k = {.key = (uint8_t *)key, .klen = klen};

	return s->n ? bsearch(&k, s->v, s->n, sizeof(*s->v), kv_cmp) : NULL;
}

void mirror_kvs_free(struct mirror_kvs *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->v[i].key);
		free(s->v[i].val);
	}
	free(s->v);
	memset(s, 0, sizeof(*s));
}
