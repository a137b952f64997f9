/*
 * volumes.c - volumes: create (validated name, copies, chunk size; random
 * 16-byte id), get, list.  The revision a volume carries is bumped by
 * commit.c.  The owner recorded at creation is the caller's (dispatch.c
 * fills it in from the certificate); owner.c checks it.  The wrapped volume
 * key (key_blob) is the client's: stored, handed back, swapped by `pstore
 * volume passwd`, never looked into.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fatsrv.h"

#define VOL_DEFAULT_COPIES 2
#define VOL_DEFAULT_CHUNK (4u << 20)
#define VOL_MIN_CHUNK (64u << 10)
#define VOL_MAX_CHUNK (16u << 20)
#define VOL_MAX_LIST 100000

bool fat_volume_name_ok(const char *name)
{
	size_t n = strlen(name);

	if (n < 1 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

int fat_volume_load(struct fat_ctx *fc, struct fat_txn *t, const char *name,
		    Pstore__VolumeInfo **out)
{
	struct fat_key k;
	int rc;

	*out = NULL;
	if (!fat_volume_name_ok(name))
		return fat_fail(fc, -EINVAL, "invalid volume name");
	fat_key_volume(&k, name);
	rc = fat_rec_get(t, &k, &pstore__volume_info__descriptor, (ProtobufCMessage **)out);
	if (rc == -ENOENT)
		return fat_fail(fc, rc, "no volume named %s", name);
	if (rc < 0)
		return fat_fail(fc, rc, "cannot read volume %s", name);
	if ((*out)->id.len != FAT_VOLUME_ID_LEN) {
		fat_rec_free(*out);
		*out = NULL;
		log_err("store: volume %s has a bad id", name);
		return fat_fail(fc, -EIO, "volume %s record is corrupt", name);
	}
	return 0;
}

struct create_op {
	struct fat_ctx *fc;
	const Pstore__VolumeInfo *req;
	Pstore__VolumeInfo *vi;
};

static int create_fn(struct fat_txn *t, void *arg)
{
	struct create_op *op = arg;
	Pstore__VolumeInfo *old = NULL;
	struct fat_key k;
	int rc;

	fat_key_volume(&k, op->req->name);
	rc = fat_rec_get(t, &k, &pstore__volume_info__descriptor, (ProtobufCMessage **)&old);
	if (rc == 0) {
		fat_rec_free(old);
		return fat_fail(op->fc, -EEXIST, "volume %s exists", op->req->name);
	}
	if (rc != -ENOENT)
		return fat_fail(op->fc, rc, "cannot read volume %s", op->req->name);
	rc = fat_rec_put(t, &k, &op->vi->base);
	if (rc < 0)
		return fat_fail(op->fc, rc, "cannot store volume %s", op->req->name);
	return 0;
}

int fat_volume_create(struct fat_ctx *fc, const Pstore__VolumeInfo *req,
		      Pstore__VolumeInfo **out)
{
	struct create_op op = {.fc = fc, .req = req};
	uint8_t id[FAT_VOLUME_ID_LEN];
	Pstore__VolumeInfo *vi;
	uint32_t copies = req->copies ? req->copies : VOL_DEFAULT_COPIES;
	uint32_t cs = req->chunk_size ? req->chunk_size : VOL_DEFAULT_CHUNK;
	int rc;

	*out = NULL;
	if (!fat_volume_name_ok(req->name))
		return fat_fail(fc, -EINVAL,
				"volume name must be 1-63 characters of A-Z a-z 0-9 . _ -");
	if (copies < 1 || copies > FAT_MAX_COPIES)
		return fat_fail(fc, -EINVAL, "copies must be 1..%d", FAT_MAX_COPIES);
	if (cs < VOL_MIN_CHUNK || cs > VOL_MAX_CHUNK || (cs & (cs - 1)) != 0)
		return fat_fail(fc, -EINVAL,
				"chunk size must be a power of two from 64 KiB to 16 MiB");
	if (req->key_blob.len > FAT_KEY_BLOB_MAX)
		return fat_fail(fc, -EINVAL, "wrapped volume key over %u bytes",
				FAT_KEY_BLOB_MAX);
	vi = malloc(sizeof(*vi));
	if (!vi)
		return -ENOMEM;
	pstore__volume_info__init(vi);
	vi->name = fat_strdup(req->name);
	random_fill(id, sizeof(id));
	if (fat_bytes_set(&vi->id, id, sizeof(id)) < 0 ||
	    (req->key_blob.len &&
	     fat_bytes_set(&vi->key_blob, req->key_blob.data, req->key_blob.len) < 0)) {
		fat_rec_free(vi);
		return -ENOMEM;
	}
	vi->owner = fat_strdup(req->owner ? req->owner : "");
	if (!vi->owner) {
		fat_rec_free(vi);
		return -ENOMEM;
	}
	vi->copies = copies;
	vi->chunk_size = cs;
	vi->created_ms = fc->clock();
	vi->revision = 0;
	op.vi = vi;
	rc = fat_store_run(fc->store, false, create_fn, &op);
	if (rc < 0) {
		fat_rec_free(vi);
		return rc;
	}
	log_info("volume %s created (copies %u, chunk size %u, owner %s)", vi->name, copies, cs,
		 vi->owner[0] ? vi->owner : "none");
	*out = vi;
	return 0;
}

struct key_op {
	struct fat_ctx *fc;
	const Pstore__VolumeKeySet *req;
	Pstore__VolumeInfo *vi;
};

static int key_fn(struct fat_txn *t, void *arg)
{
	struct key_op *op = arg;
	const Pstore__VolumeKeySet *req = op->req;
	struct fat_key k;
	int rc;

	fat_rec_free(op->vi);
	op->vi = NULL;
	rc = fat_volume_load(op->fc, t, req->volume, &op->vi);
	if (rc < 0)
		return rc;
	if (op->vi->key_blob.len == 0)
		return fat_fail(op->fc, -EINVAL, "volume %s is not encrypted", req->volume);
	if (op->vi->key_blob.len != req->old_blob.len ||
	    memcmp(op->vi->key_blob.data, req->old_blob.data, req->old_blob.len) != 0)
		return fat_fail(op->fc, -ESTALE,
				"the key of volume %s changed meanwhile; try again",
				req->volume);
	if (fat_bytes_set(&op->vi->key_blob, req->key_blob.data, req->key_blob.len) < 0)
		return -ENOMEM;
	fat_key_volume(&k, req->volume);
	rc = fat_rec_put(t, &k, &op->vi->base);
	if (rc < 0)
		return fat_fail(op->fc, rc, "cannot store volume %s", req->volume);
	return 0;
}

int fat_volume_key_set(struct fat_ctx *fc, const Pstore__VolumeKeySet *req,
		       Pstore__VolumeInfo **out)
{
	struct key_op op = {.fc = fc, .req = req};
	int rc;

	*out = NULL;
	if (!req->volume || !fat_volume_name_ok(req->volume))
		return fat_fail(fc, -EINVAL, "invalid volume name");
	if (req->key_blob.len == 0 || req->key_blob.len > FAT_KEY_BLOB_MAX)
		return fat_fail(fc, -EINVAL, "wrapped volume key must be 1..%u bytes",
				FAT_KEY_BLOB_MAX);
	rc = fat_store_run(fc->store, false, key_fn, &op);
	if (rc < 0) {
		fat_rec_free(op.vi);
		return rc;
	}
	log_info("volume %s: wrapped key replaced", req->volume);
	*out = op.vi;
	return 0;
}

struct get_op {
	struct fat_ctx *fc;
	const char *name;
	Pstore__VolumeInfo *vi;
};

static int get_fn(struct fat_txn *t, void *arg)
{
	struct get_op *op = arg;

	fat_rec_free(op->vi);
	op->vi = NULL;
	return fat_volume_load(op->fc, t, op->name, &op->vi);
}

int fat_volume_get(struct fat_ctx *fc, const char *name, Pstore__VolumeInfo **out)
{
	struct get_op op = {.fc = fc, .name = name};
	int rc = fat_store_run(fc->store, true, get_fn, &op);

	*out = rc < 0 ? NULL : op.vi;
	if (rc < 0)
		fat_rec_free(op.vi);
	return rc;
}

struct list_op {
	Pstore__VolumeList *vl;
	size_t cap;
};

static int list_cb(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen, void *arg)
{
	struct list_op *op = arg;
	Pstore__VolumeList *vl = op->vl;
	ProtobufCMessage *m;
	int rc;

	(void)key;
	(void)klen;
	if (vl->n_volumes == op->cap) {
		size_t cap = op->cap ? op->cap * 2 : 16;
		Pstore__VolumeInfo **v = realloc(vl->volumes, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		vl->volumes = v;
		op->cap = cap;
	}
	rc = fat_rec_decode(val, vlen, &pstore__volume_info__descriptor, &m);
	if (rc < 0)
		return rc;
	vl->volumes[vl->n_volumes++] = (Pstore__VolumeInfo *)m;
	return 0;
}

static int vlist_fn(struct fat_txn *t, void *arg)
{
	struct list_op *op = arg;
	struct fat_key p;

	for (size_t i = 0; i < op->vl->n_volumes; i++)
		fat_rec_free(op->vl->volumes[i]);
	op->vl->n_volumes = 0;
	fat_key_volume_prefix(&p);
	return fat_txn_scan(t, p.b, p.len, NULL, 0, VOL_MAX_LIST, list_cb, op, NULL);
}

int fat_volume_list(struct fat_ctx *fc, Pstore__VolumeList **out)
{
	struct list_op op = {0};
	int rc;

	*out = NULL;
	op.vl = malloc(sizeof(*op.vl));
	if (!op.vl)
		return -ENOMEM;
	pstore__volume_list__init(op.vl);
	rc = fat_store_run(fc->store, true, vlist_fn, &op);
	if (rc < 0) {
		fat_rec_free(op.vl);
		return fat_fail(fc, rc, "cannot list volumes");
	}
	*out = op.vl;
	return 0;
}
