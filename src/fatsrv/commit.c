/*
 * commit.c - the final FAT: MSG_COMMIT applies, in one transaction, the
 * chunks a client placed (reservations become used space), the chunks it no
 * longer references (used space is given back and the vendors are told to
 * delete them), its metadata mirror changes, and the release of what its
 * lease still reserves; then bumps the volume's revision.
 *
 * A commit carrying a request id is applied once: a retry gets the stored
 * revision back.  A placement under a lease that expired is still recorded
 * (the data is on the vendors) and counted as used when the vendor has free
 * room for it (the reservation was given back by the expiry and may be
 * someone else's now); otherwise it is refused with ENOSPC, as is any
 * placement under a lease whose uncommitted chunks orphan GC deleted
 * (swept, ESTALE).  So used + reserved never exceeds a vendor's capacity
 * through commits.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fatsrv.h"

#define COMMIT_MAX_LEASES 64 /* distinct leases one commit may place under */

struct commit_op {
	struct fat_ctx *fc;
	const Pstore__CommitRequest *req;
	Pstore__VolumeInfo *vi;
	Pstore__FatLease *leases[COMMIT_MAX_LEASES];
	size_t n_leases;
	uint64_t revision;
	bool replayed;
	size_t meta_max_key;
};

static void op_clear(struct commit_op *op)
{
	fat_rec_free(op->vi);
	op->vi = NULL;
	for (size_t i = 0; i < op->n_leases; i++)
		fat_rec_free(op->leases[i]);
	op->n_leases = 0;
}

/* The lease with this id, loaded once per transaction. */
static int get_lease(struct commit_op *op, struct fat_txn *t, uint64_t id,
		     Pstore__FatLease **out)
{
	int rc;

	for (size_t i = 0; i < op->n_leases; i++) {
		if (op->leases[i]->id == id) {
			*out = op->leases[i];
			return 0;
		}
	}
	if (op->n_leases == COMMIT_MAX_LEASES)
		return fat_fail(op->fc, -E2BIG, "a commit may place under at most %d leases",
				COMMIT_MAX_LEASES);
	rc = fat_lease_load(t, id, out);
	if (rc == -ENOENT)
		return fat_fail(op->fc, -ENOENT, "lease %016" PRIx64 " is unknown", id);
	if (rc < 0)
		return fat_fail(op->fc, rc, "cannot read lease");
	if ((*out)->volume_id.len != op->vi->id.len ||
	    memcmp((*out)->volume_id.data, op->vi->id.data, op->vi->id.len) != 0) {
		fat_rec_free(*out);
		return fat_fail(op->fc, -EINVAL,
				"lease %016" PRIx64 " belongs to another volume", id);
	}
	op->leases[op->n_leases++] = *out;
	return 0;
}

static Pstore__FatReservation *lease_res(Pstore__FatLease *l, uint32_t vendor_id)
{
	for (size_t i = 0; i < l->n_res; i++)
		if (l->res[i]->vendor_id == vendor_id)
			return l->res[i];
	return NULL;
}

static bool same_placement(const Pstore__ChunkPlacement *a, const Pstore__ChunkPlacement *b)
{
	if (a->size != b->size || a->n_vendors != b->n_vendors)
		return false;
	for (size_t i = 0; i < a->n_vendors; i++) {
		bool found = false;

		for (size_t j = 0; j < b->n_vendors; j++)
			found |= a->vendors[i] == b->vendors[j];
		if (!found)
			return false;
	}
	return true;
}

static int place_one(struct commit_op *op, struct fat_txn *t, const Pstore__ChunkPlacement *p)
{
	struct fat_ctx *fc = op->fc;
	Pstore__ChunkPlacement rec = PSTORE__CHUNK_PLACEMENT__INIT, *old = NULL;
	uint64_t lease_id = p->lease_id ? p->lease_id : op->req->lease_id;
	Pstore__FatLease *l;
	struct fat_key k;
	int rc;

	if (p->chunk_id.len != CHUNK_ID_LEN)
		return fat_fail(fc, -EINVAL, "chunk id must be 16 bytes");
	if (p->size == 0 || p->size > CHUNK_MAX_STORED)
		return fat_fail(fc, -EINVAL, "chunk size %" PRIu64 " out of range", p->size);
	if (p->n_vendors == 0 || p->n_vendors > CHUNK_MAX_CHAIN)
		return fat_fail(fc, -EINVAL, "a chunk needs 1..%d vendors", CHUNK_MAX_CHAIN);
	if (lease_id == 0)
		return fat_fail(fc, -EINVAL, "a placement needs a lease");
	rc = get_lease(op, t, lease_id, &l);
	if (rc < 0)
		return rc;
	if (l->swept)
		return fat_fail(fc, -ESTALE,
				"lease %016" PRIx64
				" closed long ago and its uncommitted chunks "
				"were deleted; upload again",
				lease_id);
	for (size_t i = 0; i < p->n_vendors; i++) {
		for (size_t j = 0; j < i; j++)
			if (p->vendors[i] == p->vendors[j])
				return fat_fail(fc, -EINVAL,
						"vendor %u listed twice for a chunk",
						p->vendors[i]);
		if (!lease_res(l, p->vendors[i]))
			return fat_fail(fc, -EINVAL,
					"vendor %u is not a candidate of lease %016" PRIx64,
					p->vendors[i], lease_id);
	}
	/* A chunk id belongs to one volume: vendors key chunks by id alone, so
	 * a second volume placing the id could make them delete the first's. */
	fat_key_chunk_owner(&k, p->chunk_id.data);
	{
		const void *val;
		size_t vlen;

		rc = fat_txn_get(t, k.b, k.len, &val, &vlen);
		if (rc == 0 && (vlen != FAT_VOLUME_ID_LEN ||
				memcmp(val, op->vi->id.data, FAT_VOLUME_ID_LEN) != 0))
			return fat_fail(fc, -EEXIST, "chunk id is committed in another volume");
		if (rc < 0 && rc != -ENOENT)
			return fat_fail(fc, rc, "cannot read chunk owner");
	}
	fat_key_chunk(&k, op->vi->id.data, p->chunk_id.data);
	rc =
	    fat_rec_get(t, &k, &pstore__chunk_placement__descriptor, (ProtobufCMessage **)&old);
	if (rc == 0) {
		bool same = same_placement(old, p);

		fat_rec_free(old);
		if (same)
			return 0; /* already recorded, already counted */
		return fat_fail(fc, -EEXIST, "chunk already committed with another placement");
	}
	if (rc != -ENOENT)
		return fat_fail(fc, rc, "cannot read chunk");
	for (size_t i = 0; i < p->n_vendors; i++) {
		Pstore__FatReservation *res = lease_res(l, p->vendors[i]);
		uint64_t conv = l->released ? 0 : MIN(res->remaining, p->size);
		Pstore__VendorRecord *v;

		rc = fat_vendor_load(t, p->vendors[i], &v);
		if (rc < 0)
			return fat_fail(fc, rc, "cannot read vendor %u", p->vendors[i]);
		/* Bytes beyond what the lease still reserves (a late commit under
		 * a released lease, or more than was reserved) take free room, or
		 * are refused: used + reserved never exceeds the capacity. */
		if (p->size > conv && p->size - conv > fat_vendor_available(v)) {
			uint64_t excess = p->size - conv;

			fat_rec_free(v);
			return fat_fail(fc, -ENOSPC,
					"vendor %u has no room for %" PRIu64
					" bytes beyond lease %016" PRIx64
					"'s reservation; upload again under a new lease",
					p->vendors[i], excess, l->id);
		}
		if (!l->released && p->size > res->remaining)
			log_warn("lease %016" PRIx64 ": vendor %u got %" PRIu64
				 " bytes over its reservation",
				 l->id, v->id, p->size - res->remaining);
		res->remaining -= conv;
		v->reserved -= MIN(v->reserved, conv);
		v->used += p->size;
		v->chunks++;
		rc = fat_vendor_save(t, v);
		fat_rec_free(v);
		if (rc < 0)
			return fat_fail(fc, rc, "cannot store vendor");
	}
	rec.chunk_id = p->chunk_id;
	rec.size = p->size;
	rec.n_vendors = p->n_vendors;
	rec.vendors = p->vendors;
	rec.lease_id = lease_id;
	rc = fat_rec_put(t, &k, &rec.base);
	if (rc == 0) {
		fat_key_chunk_owner(&k, p->chunk_id.data);
		rc = fat_txn_put(t, k.b, k.len, op->vi->id.data, FAT_VOLUME_ID_LEN);
	}
	return rc < 0 ? fat_fail(fc, rc, "cannot store chunk") : 0;
}

static int free_one(struct commit_op *op, struct fat_txn *t, const ProtobufCBinaryData *id)
{
	struct fat_ctx *fc = op->fc;
	Pstore__ChunkPlacement *cp;
	struct fat_key k;
	int rc;

	if (id->len != CHUNK_ID_LEN)
		return fat_fail(fc, -EINVAL, "freed chunk id must be 16 bytes");
	fat_key_chunk(&k, op->vi->id.data, id->data);
	rc = fat_rec_get(t, &k, &pstore__chunk_placement__descriptor, (ProtobufCMessage **)&cp);
	if (rc == -ENOENT)
		return 0; /* never committed or already freed */
	if (rc < 0)
		return fat_fail(fc, rc, "cannot read chunk");
	rc = fat_txn_del(t, k.b, k.len);
	if (rc == 0) {
		fat_key_chunk_owner(&k, id->data);
		rc = fat_txn_del(t, k.b, k.len);
		if (rc == -ENOENT)
			rc = 0; /* committed before the owner index existed */
	}
	for (size_t i = 0; rc == 0 && i < cp->n_vendors; i++) {
		Pstore__VendorRecord *v;

		rc = fat_vendor_load(t, cp->vendors[i], &v);
		if (rc == 0) {
			v->used -= MIN(v->used, cp->size);
			v->chunks -= v->chunks > 0;
			rc = fat_vendor_save(t, v);
			fat_rec_free(v);
		} else if (rc == -ENOENT) {
			rc = 0;
		}
		if (rc == 0) {
			/* the owner goes with the order: the vendor checks it */
			fat_key_pending(&k, cp->vendors[i], id->data);
			rc = fat_txn_put(t, k.b, k.len, op->vi->id.data, FAT_VOLUME_ID_LEN);
		}
	}
	fat_rec_free(cp);
	return rc < 0 ? fat_fail(fc, rc, "cannot free chunk") : 0;
}

static int meta_one(struct commit_op *op, struct fat_txn *t, const Pstore__MetaOp *m)
{
	struct fat_key k;
	int rc;

	if (m->key.len == 0 || m->key.len > op->meta_max_key)
		return fat_fail(op->fc, -EINVAL, "metadata key must be 1..%zu bytes",
				op->meta_max_key);
	if (m->value.len > FAT_META_MAX_VAL)
		return fat_fail(op->fc, -EINVAL, "metadata value over %u bytes",
				FAT_META_MAX_VAL);
	rc = fat_key_meta(&k, op->vi->id.data, m->key.data, m->key.len);
	if (rc < 0)
		return fat_fail(op->fc, rc, "bad metadata key");
	if (m->del) {
		rc = fat_txn_del(t, k.b, k.len);
		if (rc == -ENOENT)
			rc = 0;
	} else {
		rc = fat_txn_put(t, k.b, k.len, m->value.data, m->value.len);
	}
	return rc < 0 ? fat_fail(op->fc, rc, "cannot store metadata") : 0;
}

/* Gives back what the lease still reserves on the vendors that failed. */
static int release_failed(struct commit_op *op, struct fat_txn *t, Pstore__FatLease *l)
{
	for (size_t i = 0; i < op->req->n_failed_vendors; i++) {
		Pstore__FatReservation *res = lease_res(l, op->req->failed_vendors[i]);
		Pstore__VendorRecord *v;
		int rc;

		if (!res || res->remaining == 0 || l->released)
			continue;
		rc = fat_vendor_load(t, res->vendor_id, &v);
		if (rc == 0) {
			v->reserved -= MIN(v->reserved, res->remaining);
			rc = fat_vendor_save(t, v);
			fat_rec_free(v);
		}
		if (rc < 0 && rc != -ENOENT)
			return fat_fail(op->fc, rc, "cannot store vendor");
		res->remaining = 0;
	}
	return 0;
}

static int commit_fn(struct fat_txn *t, void *arg)
{
	struct commit_op *op = arg;
	struct fat_ctx *fc = op->fc;
	const Pstore__CommitRequest *req = op->req;
	Pstore__FatRequest done = PSTORE__FAT_REQUEST__INIT, *prev;
	Pstore__FatLease *main_lease = NULL;
	struct fat_key k;
	int rc;

	op_clear(op);
	op->replayed = false;
	rc = fat_volume_load(fc, t, req->volume, &op->vi);
	if (rc < 0)
		return rc;
	if (req->request_id.len) {
		fat_key_request(&k, req->request_id.data);
		rc = fat_rec_get(t, &k, &pstore__fat_request__descriptor,
				 (ProtobufCMessage **)&prev);
		if (rc == 0) {
			bool same_vol =
			    prev->volume_id.len == op->vi->id.len &&
			    memcmp(prev->volume_id.data, op->vi->id.data, op->vi->id.len) == 0;

			op->revision = prev->revision;
			fat_rec_free(prev);
			if (!same_vol)
				return fat_fail(fc, -EINVAL,
						"request id reused on another volume");
			op->replayed = true;
			return 0;
		}
		if (rc != -ENOENT)
			return fat_fail(fc, rc, "cannot read request record");
	}
	/* one writer per volume: the fencing token of the writer lease */
	rc = fat_writer_check(fc, t, op->vi, req->writer_token);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < req->n_placed; i++) {
		rc = place_one(op, t, req->placed[i]);
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < req->n_freed; i++) {
		rc = free_one(op, t, &req->freed[i]);
		if (rc < 0)
			return rc;
	}
	for (size_t i = 0; i < req->n_meta; i++) {
		rc = meta_one(op, t, req->meta[i]);
		if (rc < 0)
			return rc;
	}
	if (req->lease_id) {
		rc = get_lease(op, t, req->lease_id, &main_lease);
		if (rc == -ENOENT && req->n_placed == 0) {
			rc = 0; /* nothing placed: a purged lease is nothing to release */
			main_lease = NULL;
		}
		if (rc < 0)
			return rc;
		if (main_lease) {
			rc = release_failed(op, t, main_lease);
			if (rc == 0 && req->release)
				rc = fat_lease_release(fc, t, main_lease);
			if (rc < 0)
				return fat_fail(fc, rc, "cannot release lease");
		}
	}
	for (size_t i = 0; i < op->n_leases; i++) {
		/* leases changed by placements (remaining) and not saved by a release */
		if (op->leases[i] == main_lease && req->release)
			continue;
		fat_key_lease(&k, op->leases[i]->id);
		rc = fat_rec_put(t, &k, &op->leases[i]->base);
		if (rc < 0)
			return fat_fail(fc, rc, "cannot store lease");
	}
	op->vi->revision++;
	op->revision = op->vi->revision;
	fat_key_volume(&k, op->vi->name);
	rc = fat_rec_put(t, &k, &op->vi->base);
	if (rc < 0)
		return fat_fail(fc, rc, "cannot store volume");
	if (req->request_id.len) {
		done.volume_id = op->vi->id;
		done.revision = op->revision;
		done.time_ms = fc->clock();
		fat_key_request(&k, req->request_id.data);
		rc = fat_rec_put(t, &k, &done.base);
		if (rc < 0)
			return fat_fail(fc, rc, "cannot store request record");
	}
	return 0;
}

int fat_commit(struct fat_ctx *fc, const Pstore__CommitRequest *req, Pstore__CommitReply **out)
{
	struct commit_op op = {.fc = fc, .req = req};
	Pstore__CommitReply *r;
	int rc;

	*out = NULL;
	if (req->request_id.len != 0 && req->request_id.len != FAT_REQUEST_ID_LEN)
		return fat_fail(fc, -EINVAL, "request id must be 16 bytes");
	if (req->n_placed > FAT_MAX_PLACED || req->n_freed > FAT_MAX_FREED ||
	    req->n_meta > FAT_META_MAX_OPS || req->n_failed_vendors > 1024)
		return fat_fail(fc, -E2BIG, "commit too large");
	/* "m/" + volume id + key must fit the backend's keys */
	op.meta_max_key =
	    MIN((size_t)FAT_META_MAX_KEY, fc->store->max_key - 2 - FAT_VOLUME_ID_LEN);
	rc = fat_store_run(fc->store, false, commit_fn, &op);
	if (rc == 0) {
		r = malloc(sizeof(*r));
		if (!r) {
			rc = -ENOMEM;
		} else {
			pstore__commit_reply__init(r);
			r->revision = op.revision;
			*out = r;
			if (op.replayed)
				log_info("commit on %s replayed (revision %" PRIu64 ")",
					 req->volume, op.revision);
			else
				log_debug("commit on %s: revision %" PRIu64 ", %zu placed, %zu "
					  "freed, %zu meta",
					  req->volume, op.revision, req->n_placed, req->n_freed,
					  req->n_meta);
		}
	}
	op_clear(&op);
	return rc;
}
