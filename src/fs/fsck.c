/*
 * fsck.c - `pstore fsck MOUNT` (control op "fsck"): checks the volume's FAT
 * metadata mirror and chunk table against each other, and this mount's
 * local state against the mirror.
 *
 * A read-write mount first commits everything (a sync barrier), so that in
 * a quiet mount the FAT and the local state must agree exactly.  Findings:
 *
 *   errors    dirents whose parent or child inode is missing, or whose type
 *             differs from the child's; inodes no dirent names (nlink > 0);
 *             wrong link counts (files: dirents naming them; directories:
 *             2 + subdirectories); chunk keys of missing or non-regular
 *             inodes or past the end of the file; chunks referenced but not
 *             in the FAT's chunk table; chunks in the table that nothing
 *             references (leaks); chunks no live vendor holds; malformed
 *             entries; local state different from the FAT after the sync
 *   warnings  chunks held by fewer live vendors than the volume's copies;
 *             inodes with nlink 0 (a file unlinked while open); changes the
 *             sync could not commit
 *
 * Everything is read into memory (O(entries of the volume)); it is a check
 * for an operator, not a hot path.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "fs.h"

#define FSCK_MAX_LISTED 200

struct ino_info {
	uint64_t ino, size;
	uint32_t mode, nlink;
	uint32_t links, subdirs; /* counted from dirents */
};

struct fat_chunk {
	uint8_t id[CHUNK_ID_LEN];
	uint32_t vendors[CHUNK_MAX_CHAIN];
	unsigned n_vendors;
	bool referenced;
};

struct fsck {
	json_object *errors, *warnings;
	uint64_t n_errors, n_warnings;
	struct mirror_kvs mir, local;
	struct ino_info *inodes;
	size_t n_inodes;
	struct fat_chunk *chunks;
	size_t n_chunks, cap_chunks;
	uint32_t *alive;
	size_t n_alive;
};

static void finding(struct fsck *f, bool error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void finding(struct fsck *f, bool error, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	uint64_t *n = error ? &f->n_errors : &f->n_warnings;

	if (++*n > FSCK_MAX_LISTED)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_object_array_add(error ? f->errors : f->warnings, json_object_new_string(buf));
}

static int ino_cmp(const void *a, const void *b)
{
	uint64_t x = ((const struct ino_info *)a)->ino, y = ((const struct ino_info *)b)->ino;

	return (x > y) - (x < y);
}

static struct ino_info *ino_find(struct fsck *f, uint64_t ino)
{
	struct ino_info k = {.ino = ino};

	return f->n_inodes ? bsearch(&k, f->inodes, f->n_inodes, sizeof(k), ino_cmp) : NULL;
}

static int chunk_cmp(const void *a, const void *b)
{
	return memcmp(((const struct fat_chunk *)a)->id, ((const struct fat_chunk *)b)->id,
		      CHUNK_ID_LEN);
}

static struct fat_chunk *chunk_find(struct fsck *f, const uint8_t *id)
{
	struct fat_chunk k;

	memcpy(k.id, id, CHUNK_ID_LEN);
	return f->n_chunks ? bsearch(&k, f->chunks, f->n_chunks, sizeof(k), chunk_cmp) : NULL;
}

/* The volume's chunk table, paged. */
static int list_fat_chunks(struct fsck *f)
{
	uint8_t after[CHUNK_ID_LEN];
	bool have_after = false, more = true;

	while (more) {
		Pstore__ListRequest lr = PSTORE__LIST_REQUEST__INIT;
		Pstore__ChunkListReply *cl;
		struct xport_reply rep;
		int rc;

		lr.volume = fs.vol.name;
		if (have_after) {
			lr.after.data = after;
			lr.after.len = CHUNK_ID_LEN;
		}
		lr.limit = 1000;
		memset(&rep, 0, sizeof(rep));
		rc = alloc_fat_call(fs.alloc, MSG_CHUNK_LIST, &lr.base,
				    &pstore__chunk_list_reply__descriptor, &rep);
		if (rc < 0)
			return rc;
		cl = (Pstore__ChunkListReply *)rep.msg;
		if (!cl) {
			xport_reply_clear(&rep);
			return -EBADMSG;
		}
		for (size_t i = 0; i < cl->n_chunks; i++) {
			const Pstore__ChunkPlacement *p = cl->chunks[i];
			struct fat_chunk *c;

			if (p->chunk_id.len != CHUNK_ID_LEN)
				continue;
			if (f->n_chunks == f->cap_chunks) {
				size_t cap = f->cap_chunks ? 2 * f->cap_chunks : 1024;
				struct fat_chunk *np = realloc(f->chunks, cap * sizeof(*np));

				if (!np) {
					xport_reply_clear(&rep);
					return -ENOMEM;
				}
				f->chunks = np;
				f->cap_chunks = cap;
			}
			c = &f->chunks[f->n_chunks++];
			memset(c, 0, sizeof(*c));
			memcpy(c->id, p->chunk_id.data, CHUNK_ID_LEN);
			c->n_vendors = (unsigned)MIN(p->n_vendors, (size_t)CHUNK_MAX_CHAIN);
			for (unsigned v = 0; v < c->n_vendors; v++)
				c->vendors[v] = p->vendors[v];
			memcpy(after, p->chunk_id.data, CHUNK_ID_LEN);
			have_after = true;
		}
		more = cl->more && cl->n_chunks > 0;
		xport_reply_clear(&rep);
	}
	qsort(f->chunks, f->n_chunks, sizeof(*f->chunks), chunk_cmp);
	return 0;
}

static int list_alive(struct fsck *f)
{
	struct xport_reply rep;
	Pstore__VendorListReply *vl;
	int rc;

	memset(&rep, 0, sizeof(rep));
	rc = alloc_fat_call(fs.alloc, MSG_VENDOR_LIST, NULL,
			    &pstore__vendor_list_reply__descriptor, &rep);
	if (rc < 0)
		return rc;
	vl = (Pstore__VendorListReply *)rep.msg;
	f->alive = vl ? calloc(vl->n_vendors + 1, sizeof(*f->alive)) : NULL;
	if (!f->alive) {
		xport_reply_clear(&rep);
		return vl ? -ENOMEM : -EBADMSG;
	}
	for (size_t i = 0; i < vl->n_vendors; i++)
		if (vl->vendors[i]->alive)
			f->alive[f->n_alive++] = vl->vendors[i]->id;
	xport_reply_clear(&rep);
	return 0;
}

static unsigned live_copies(struct fsck *f, const struct fat_chunk *c)
{
	unsigned n = 0;

	for (unsigned i = 0; i < c->n_vendors; i++)
		for (size_t j = 0; j < f->n_alive; j++)
			n += f->alive[j] == c->vendors[i];
	return n;
}

/* Pass 1: inodes. */
static int collect_inodes(struct fsck *f)
{
	f->inodes = calloc(f->mir.n + 1, sizeof(*f->inodes));
	if (!f->inodes)
		return -ENOMEM;
	for (size_t i = 0; i < f->mir.n; i++) {
		struct mirror_kv *x = &f->mir.v[i];
		uint64_t a, b;
		const char *nm;
		size_t nl;
		struct fs_inode *in;

		if (mirror_key_parse(x->key, x->klen, &a, &b, &nm, &nl) != FS_KEY_INODE)
			continue;
		in = malloc(sizeof(*in));
		if (!in)
			return -ENOMEM;
		if (mirror_inode_decode(x->val, x->vlen, a, in) < 0) {
			finding(f, true,
				"inode %" PRIu64 ": malformed record in the FAT mirror", a);
		} else {
			struct ino_info *ii = &f->inodes[f->n_inodes++];

			ii->ino = a;
			ii->mode = in->mode;
			ii->nlink = in->nlink;
			ii->size = in->size;
		}
		free(in);
	}
	qsort(f->inodes, f->n_inodes, sizeof(*f->inodes), ino_cmp);
	return 0;
}

/* Pass 2: dirents, chunk keys, xattrs. */
static void check_entries(struct fsck *f)
{
	for (size_t i = 0; i < f->mir.n; i++) {
		struct mirror_kv *x = &f->mir.v[i];
		uint64_t a, b;
		const char *nm;
		size_t nl;
		int kind = mirror_key_parse(x->key, x->klen, &a, &b, &nm, &nl);
		struct ino_info *p, *c;

		if (kind == FS_KEY_DIRENT) {
			struct fs_dirent_val d;

			if (mirror_dirent_decode(x->val, x->vlen, &d) < 0) {
				finding(f, true,
					"dirent %.*s in directory %" PRIu64 ": malformed",
					(int)MIN(nl, (size_t)64), nm, a);
				continue;
			}
			p = ino_find(f, a);
			c = ino_find(f, d.ino);
			if (!p || (p->mode & S_IFMT) != S_IFDIR)
				finding(f, true,
					"dangling dirent %.*s: directory %" PRIu64 " %s",
					(int)MIN(nl, (size_t)64), nm, a,
					p ? "is not a directory" : "is missing");
			if (!c) {
				finding(f, true,
					"dangling dirent %.*s in %" PRIu64 ": inode %" PRIu64
					" is missing",
					(int)MIN(nl, (size_t)64), nm, a, d.ino);
				continue;
			}
			if ((c->mode & S_IFMT) != d.type)
				finding(f, true,
					"dirent %.*s in %" PRIu64
					": type differs from inode %" PRIu64,
					(int)MIN(nl, (size_t)64), nm, a, d.ino);
			c->links++;
			if (p && (c->mode & S_IFMT) == S_IFDIR)
				p->subdirs++;
		} else if (kind == FS_KEY_CHUNK) {
			struct alloc_chunk_ref ref;
			struct fat_chunk *fc;
			unsigned live;

			if (mirror_chunk_decode(x->val, x->vlen, &ref) < 0) {
				finding(f, true,
					"chunk %" PRIu64 " of inode %" PRIu64 ": malformed", b,
					a);
				continue;
			}
			c = ino_find(f, a);
			if (!c || (c->mode & S_IFMT) != S_IFREG)
				finding(f, true,
					"chunk %" PRIu64 " of inode %" PRIu64 ": the inode %s",
					b, a, c ? "is not a regular file" : "is missing");
			else if (b * fs.chunk_size >= c->size)
				finding(f, true,
					"chunk %" PRIu64 " of inode %" PRIu64
					" lies past the end of the file (%" PRIu64 " bytes)",
					b, a, c->size);
			fc = chunk_find(f, ref.chunk_id);
			if (!fc) {
				char hex[2 * CHUNK_ID_LEN + 1];

				chunk_id_hex(ref.chunk_id, hex);
				finding(f, true,
					"chunk %s (inode %" PRIu64 " index %" PRIu64
					") is referenced but not in the FAT",
					hex, a, b);
				continue;
			}
			fc->referenced = true;
			live = live_copies(f, fc);
			if (live == 0 || live < fs.vol.copies) {
				char hex[2 * CHUNK_ID_LEN + 1];

				chunk_id_hex(ref.chunk_id, hex);
				finding(f, live == 0,
					"chunk %s (inode %" PRIu64 " index %" PRIu64
					"): %u of %u copies on live vendors",
					hex, a, b, live, fs.vol.copies);
			}
		} else if (kind == FS_KEY_XATTR) {
			if (!ino_find(f, a))
				finding(f, true,
					"xattr of inode %" PRIu64 ": the inode is missing", a);
		} else if (kind != FS_KEY_INODE) {
			finding(f, true, "malformed key in the FAT mirror (%zu bytes)",
				x->klen);
		}
	}
}

static void check_links(struct fsck *f)
{
	struct ino_info *root = ino_find(f, FS_ROOT_INO);

	if (!root || (root->mode & S_IFMT) != S_IFDIR)
		finding(f, true, "the root directory is %s",
			root ? "not a directory" : "missing");
	for (size_t i = 0; i < f->n_inodes; i++) {
		struct ino_info *ii = &f->inodes[i];
		bool dir = (ii->mode & S_IFMT) == S_IFDIR;
		uint32_t want = dir ? 2 + ii->subdirs : ii->links;

		if (ii->ino != FS_ROOT_INO && ii->links == 0) {
			finding(f, ii->nlink != 0, "inode %" PRIu64 " (nlink %u) has no name%s",
				ii->ino, ii->nlink, ii->nlink ? "" : ": unlinked while open");
			continue;
		}
		if (dir && ii->ino != FS_ROOT_INO && ii->links != 1)
			finding(f, true, "directory %" PRIu64 " has %u names", ii->ino,
				ii->links);
		if (ii->nlink != want)
			finding(f, true, "inode %" PRIu64 ": link count %u, expected %u",
				ii->ino, ii->nlink, want);
	}
	for (size_t i = 0; i < f->n_chunks; i++) {
		char hex[2 * CHUNK_ID_LEN + 1];

		if (f->chunks[i].referenced)
			continue;
		chunk_id_hex(f->chunks[i].id, hex);
		finding(f, true, "chunk %s is in the FAT but nothing references it (leak)",
			hex);
	}
}

static int local_chunk_cb(uint64_t ino, uint64_t idx, const struct fs_chunk *c, void *arg)
{
	uint8_t key[17], val[MIRROR_CHUNK_MAX];

	if (!(c->flags & FS_CHUNK_REF))
		return 0;
	return mirror_kvs_add(arg, key, mirror_key_chunk(key, ino, idx), val,
			      mirror_chunk_encode(&c->ref, val));
}

/* This mount's local state against the mirror (after the sync). */
static int check_local(struct fsck *f)
{
	struct fs_txn t;
	int rc = meta_begin(fs.meta, false, &t);

	if (rc < 0)
		return rc;
	rc = meta_ns_iter(&t, mirror_kvs_add_cb, &f->local);
	if (rc == 0)
		rc = meta_chunk_iter(&t, local_chunk_cb, &f->local);
	meta_abort(&t);
	if (rc < 0)
		return rc;
	mirror_kvs_sort(&f->local);
	for (size_t i = 0; i < f->local.n; i++) {
		const struct mirror_kv *l = &f->local.v[i],
				       *m = mirror_kvs_find(&f->mir, l->key, l->klen);

		if (!m || m->vlen != l->vlen || memcmp(m->val, l->val, l->vlen) != 0)
			finding(f, true, "local state differs from the FAT: key '%c' %s",
				l->key[0], m ? "has another value" : "is missing at the FAT");
	}
	for (size_t i = 0; i < f->mir.n; i++) {
		const struct mirror_kv *m = &f->mir.v[i];

		if (!mirror_kvs_find(&f->local, m->key, m->klen))
			finding(f, true,
				"local state differs from the FAT: key '%c' is only at the FAT",
				m->key[0]);
	}
	return 0;
}

json_object *fsck_run(bool sync_first)
{
	struct fsck f = {0};
	json_object *r = json_object_new_object();
	uint64_t unopened = 0;
	bool synced = false;
	int rc = 0;

	f.errors = json_object_new_array();
	f.warnings = json_object_new_array();
	if (sync_first && !fs.cfg.readonly) {
		rc = flush_barrier(fs.cfg.sync_timeout_ms);
		if (rc < 0)
			finding(&f, false,
				"sync before the check failed (%s): uncommitted changes are "
				"not checked",
				strerror(-rc));
		synced = rc == 0;
	}
	rc = alloc_meta_list_counted(fs.alloc, mirror_kvs_add_cb, &f.mir, &unopened);
	if (rc == 0 && unopened)
		finding(&f, true,
			"%" PRIu64 " metadata mirror entries do not open with the volume key "
			"(tampered with at the FAT, or not written by this volume's clients)",
			unopened);
	if (rc == 0)
		rc = list_fat_chunks(&f);
	if (rc == 0)
		rc = list_alive(&f);
	if (rc == 0) {
		mirror_kvs_sort(&f.mir);
		rc = collect_inodes(&f);
	}
	if (rc == 0) {
		check_entries(&f);
		check_links(&f);
		if (synced)
			rc = check_local(&f);
	}
	if (rc < 0) {
		json_object_put(f.errors);
		json_object_put(f.warnings);
		json_object_object_add(r, "ok", json_object_new_boolean(0));
		json_object_object_add(r, "error", json_object_new_string(strerror(-rc)));
	} else {
		json_object_object_add(r, "ok", json_object_new_boolean(1));
		json_object_object_add(r, "clean", json_object_new_boolean(f.n_errors == 0));
		json_object_object_add(r, "volume", json_object_new_string(fs.vol.name));
		json_object_object_add(r, "n_errors", json_object_new_uint64(f.n_errors));
		json_object_object_add(r, "n_warnings", json_object_new_uint64(f.n_warnings));
		json_object_object_add(r, "errors", f.errors);
		json_object_object_add(r, "warnings", f.warnings);
		json_object_object_add(r, "inodes", json_object_new_uint64(f.n_inodes));
		json_object_object_add(r, "mirror_entries", json_object_new_uint64(f.mir.n));
		json_object_object_add(r, "fat_chunks", json_object_new_uint64(f.n_chunks));
		json_object_object_add(r, "local_checked", json_object_new_boolean(synced));
	}
	mirror_kvs_free(&f.mir);
	mirror_kvs_free(&f.local);
	free(f.inodes);
	free(f.chunks);
	free(f.alive);
	return r;
}
