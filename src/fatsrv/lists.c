/*
 * lists.c - paged listings of a volume's FAT: its metadata mirror
 * (MSG_META_LIST) and its committed chunks with their vendors
 * (MSG_CHUNK_LIST), in key order.  A page stops at `limit` items or about
 * FAT_LIST_MAX_BYTES of reply, whichever comes first; `more` says whether to
 * ask again with `after` = the last key (or chunk id) received.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fatsrv.h"

struct list_op {
	struct fat_ctx *fc;
	const Pstore__ListRequest *req;
	size_t limit;
	size_t prefix_len;
	size_t bytes;
	bool more;
	bool full; /* stopped by the byte bound */
	Pstore__MetaListReply *meta;
	Pstore__ChunkListReply *chunks;
};

static int list_check(struct fat_ctx *fc, const Pstore__ListRequest *req, size_t *limit)
{
	if (req->limit > FAT_MAX_LIST)
		return fat_fail(fc, -EINVAL, "limit must be at most %d", FAT_MAX_LIST);
	if (req->after.len > FAT_META_MAX_KEY)
		return fat_fail(fc, -EINVAL, "`after` too long");
	*limit = req->limit ? req->limit : FAT_LIST_DEFAULT;
	return 0;
}

static int meta_cb(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen, void *arg)
{
	struct list_op *op = arg;
	Pstore__MetaListReply *r = op->meta;
	Pstore__MetaOp *m;

	if (r->n_items > 0 && op->bytes + klen + vlen > FAT_LIST_MAX_BYTES) {
		op->full = true;
		return 1;
	}
	m = malloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	pstore__meta_op__init(m);
	r->items[r->n_items++] = m;
	op->bytes += klen + vlen + 16;
	if (fat_bytes_set(&m->key, key + op->prefix_len, klen - op->prefix_len) < 0 ||
	    fat_bytes_set(&m->value, val, vlen) < 0)
		return -ENOMEM;
	return 0;
}

static int meta_fn(struct fat_txn *t, void *arg)
{
	struct list_op *op = arg;
	Pstore__VolumeInfo *vi;
	struct fat_key p, after;
	int rc;

	for (size_t i = 0; i < op->meta->n_items; i++)
		fat_rec_free(op->meta->items[i]);
	op->meta->n_items = 0;
	op->bytes = 0;
	op->full = false;
	rc = fat_volume_load(op->fc, t, op->req->volume, &vi);
	if (rc < 0)
		return rc;
	fat_key_meta_prefix(&p, vi->id.data);
	if (op->req->after.len)
		fat_key_meta(&after, vi->id.data, op->req->after.data, op->req->after.len);
	fat_rec_free(vi);
	op->prefix_len = p.len;
	return fat_txn_scan(t, p.b, p.len, op->req->after.len ? after.b : NULL,
			    op->req->after.len ? after.len : 0, op->limit, meta_cb, op,
			    &op->more);
}

int fat_meta_list(struct fat_ctx *fc, const Pstore__ListRequest *req,
		  Pstore__MetaListReply **out)
{
	struct list_op op = {.fc = fc, .req = req};
	int rc;

	*out = NULL;
	rc = list_check(fc, req, &op.limit);
	if (rc < 0)
		return rc;
	op.meta = malloc(sizeof(*op.meta));
	if (!op.meta)
		return -ENOMEM;
	pstore__meta_list_reply__init(op.meta);
	op.meta->items = calloc(op.limit, sizeof(*op.meta->items));
	if (!op.meta->items) {
		fat_rec_free(op.meta);
		return -ENOMEM;
	}
	rc = fat_store_run(fc->store, true, meta_fn, &op);
	if (rc < 0) {
		fat_rec_free(op.meta);
		return rc;
	}
	op.meta->more = op.more || op.full;
	*out = op.meta;
	return 0;
}

static int chunk_cb(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen, void *arg)
{
	struct list_op *op = arg;
	Pstore__ChunkListReply *r = op->chunks;
	ProtobufCMessage *m;
	int rc;

	(void)key;
	(void)klen;
	if (r->n_chunks > 0 && op->bytes + vlen > FAT_LIST_MAX_BYTES) {
		op->full = true;
		return 1;
	}
	rc = fat_rec_decode(val, vlen, &pstore__chunk_placement__descriptor, &m);
	if (rc < 0)
		return rc;
	r->chunks[r->n_chunks++] = (Pstore__ChunkPlacement *)m;
	op->bytes += vlen + 8;
	return 0;
}

static int chunk_fn(struct fat_txn *t, void *arg)
{
	struct list_op *op = arg;
	Pstore__VolumeInfo *vi;
	struct fat_key p, after;
	int rc;

	for (size_t i = 0; i < op->chunks->n_chunks; i++)
		fat_rec_free(op->chunks->chunks[i]);
	op->chunks->n_chunks = 0;
	op->bytes = 0;
	op->full = false;
	rc = fat_volume_load(op->fc, t, op->req->volume, &vi);
	if (rc < 0)
		return rc;
	fat_key_chunk_prefix(&p, vi->id.data);
	if (op->req->after.len)
		fat_key_chunk(&after, vi->id.data, op->req->after.data);
	fat_rec_free(vi);
	return fat_txn_scan(t, p.b, p.len, op->req->after.len ? after.b : NULL,
			    op->req->after.len ? after.len : 0, op->limit, chunk_cb, op,
			    &op->more);
}

int fat_chunk_list(struct fat_ctx *fc, const Pstore__ListRequest *req,
		   Pstore__ChunkListReply **out)
{
	struct list_op op = {.fc = fc, .req = req};
	int rc;

	*out = NULL;
	rc = list_check(fc, req, &op.limit);
	if (rc < 0)
		return rc;
	if (req->after.len != 0 && req->after.len != CHUNK_ID_LEN)
		return fat_fail(fc, -EINVAL, "`after` must be a 16-byte chunk id");
	op.chunks = malloc(sizeof(*op.chunks));
	if (!op.chunks)
		return -ENOMEM;
	pstore__chunk_list_reply__init(op.chunks);
	op.chunks->chunks = calloc(op.limit, sizeof(*op.chunks->chunks));
	if (!op.chunks->chunks) {
		fat_rec_free(op.chunks);
		return -ENOMEM;
	}
	rc = fat_store_run(fc->store, true, chunk_fn, &op);
	if (rc < 0) {
		fat_rec_free(op.chunks);
		return rc;
	}
	op.chunks->more = op.more || op.full;
	*out = op.chunks;
	return 0;
}
