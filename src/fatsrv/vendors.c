/*
 * vendors.c - the comprehensive FAT of vendors: register/heartbeat
 * (VendorHello upserts what the vendor reports and hands back the chunks it
 * must delete), the vendor list, cluster statfs and bad-replica reports.
 *
 * What the vendor reports (address, zone, devices, stats) is replaced on
 * every hello; what the FAT accounts (used, reserved, chunks, bad_replicas)
 * is only changed by leases.c and commit.c.  The peer's identity is checked
 * by dispatch.c before it gets here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fatsrv.h"

#define VENDOR_MAX_ADDR 127
#define VENDOR_MAX_ZONE 63
#define VENDOR_MAX_PATH 4095

static int check_hello(struct fat_ctx *fc, const Pstore__VendorHello *h)
{
	char host[VENDOR_MAX_ADDR + 1];
	uint16_t port;

	if (h->vendor_id == 0)
		return fat_fail(fc, -EINVAL, "vendor id 0 is invalid");
	if (strlen(h->address) > VENDOR_MAX_ADDR ||
	    parse_hostport(h->address, host, sizeof(host), &port) < 0 || port == 0)
		return fat_fail(fc, -EINVAL, "bad vendor address '%.64s'", h->address);
	if (strlen(h->zone) > VENDOR_MAX_ZONE)
		return fat_fail(fc, -EINVAL, "zone name too long");
	if (h->n_devices > FAT_MAX_DEVICES)
		return fat_fail(fc, -EINVAL, "too many devices (%zu > %d)", h->n_devices,
				FAT_MAX_DEVICES);
	for (size_t i = 0; i < h->n_devices; i++) {
		if (strlen(h->devices[i]->path) > VENDOR_MAX_PATH)
			return fat_fail(fc, -EINVAL, "device path too long");
		if (h->devices[i]->free > h->devices[i]->capacity)
			return fat_fail(fc, -EINVAL, "device %zu: free > capacity", i);
	}
	if (h->n_deleted > FAT_MAX_DELETES)
		return fat_fail(fc, -EINVAL, "too many deleted chunk ids");
	if (h->n_queries > FAT_MAX_QUERIES)
		return fat_fail(fc, -EINVAL, "too many chunk queries (%zu > %u)", h->n_queries,
				FAT_MAX_QUERIES);
	for (size_t i = 0; i < h->n_queries; i++)
		if (h->queries[i]->chunk_id.len != CHUNK_ID_LEN ||
		    h->queries[i]->owner.len != FAT_VOLUME_ID_LEN ||
		    h->queries[i]->lease_id == 0)
			return fat_fail(fc, -EINVAL, "chunk query %zu is malformed", i);
	for (size_t i = 0; i < h->n_deleted; i++)
		if (h->deleted[i].len != CHUNK_ID_LEN)
			return fat_fail(fc, -EINVAL, "deleted chunk id %zu is not 16 bytes", i);
	return 0;
}

/* Replaces what the vendor reports in v by what h says. */
static int apply_hello(Pstore__VendorRecord *v, const Pstore__VendorHello *h, uint64_t now)
{
	uint64_t cap = 0, free_b = 0;

	free(v->address == protobuf_c_empty_string ? NULL : v->address);
	v->address = fat_strdup(h->address);
	free(v->zone == protobuf_c_empty_string ? NULL : v->zone);
	v->zone = fat_strdup(h->zone[0] ? h->zone : "default");
	for (size_t i = 0; i < v->n_devices; i++)
		fat_rec_free(v->devices[i]);
	free(v->devices);
	v->devices = NULL;
	v->n_devices = 0;
	if (h->n_devices > 0) {
		v->devices = calloc(h->n_devices, sizeof(*v->devices));
		if (!v->devices)
			return -ENOMEM;
	}
	for (size_t i = 0; i < h->n_devices; i++) {
		Pstore__DeviceInfo *d = malloc(sizeof(*d));

		if (!d)
			return -ENOMEM;
		pstore__device_info__init(d);
		d->path = fat_strdup(h->devices[i]->path);
		d->capacity = h->devices[i]->capacity;
		d->free = h->devices[i]->free;
		v->devices[v->n_devices++] = d;
		/* saturate: a hostile vendor must not wrap the totals */
		cap = cap + d->capacity < cap ? UINT64_MAX : cap + d->capacity;
		free_b = free_b + d->free < free_b ? UINT64_MAX : free_b + d->free;
	}
	v->capacity = cap;
	v->free = free_b;
	if (h->stats) {
		if (!v->stats) {
			v->stats = malloc(sizeof(*v->stats));
			if (!v->stats)
				return -ENOMEM;
		}
		*v->stats = *h->stats;
		v->stats->base.n_unknown_fields = 0;
		v->stats->base.unknown_fields = NULL;
	}
	v->last_seen_ms = now;
	v->alive = false; /* computed on read */
	return 0;
}

struct hello_op {
	struct fat_ctx *fc;
	const Pstore__VendorHello *h;
	Pstore__VendorHelloReply *r;
	size_t cap; /* of r->delete_orders */
	bool is_new;
};

/* Appends {id, owner} to *arr (n, cap); owner may be empty (len 0). */
static int order_add(Pstore__DeleteOrder ***arr, size_t *n, size_t *cap, const uint8_t *id,
		     const uint8_t *owner, size_t olen)
{
	Pstore__DeleteOrder *o;

	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		Pstore__DeleteOrder **a = realloc(*arr, nc * sizeof(*a));

		if (!a)
			return -ENOMEM;
		*arr = a;
		*cap = nc;
	}
	o = malloc(sizeof(*o));
	if (!o)
		return -ENOMEM;
	pstore__delete_order__init(o);
	(*arr)[(*n)++] = o;
	if (fat_bytes_set(&o->chunk_id, id, CHUNK_ID_LEN) < 0 ||
	    fat_bytes_set(&o->owner, owner, olen) < 0)
		return -ENOMEM;
	return 0;
}

static int pending_cb(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
		      void *arg)
{
	struct hello_op *op = arg;
	Pstore__VendorHelloReply *r = op->r;

	if (klen != 2 + 4 + CHUNK_ID_LEN)
		return 0; /* not ours; keys.c never makes such a key */
	/* the owner recorded by the commit that freed it (empty: older record) */
	return order_add(&r->delete_orders, &r->n_delete_orders, &op->cap, key + 6, val,
			 vlen == FAT_VOLUME_ID_LEN ? vlen : 0);
}

static void reply_reset(Pstore__VendorHelloReply *r)
{
	for (size_t i = 0; i < r->n_delete_orders; i++)
		fat_rec_free(r->delete_orders[i]);
	r->n_delete_orders = 0;
	for (size_t i = 0; i < r->n_orphans; i++)
		fat_rec_free(r->orphans[i]);
	r->n_orphans = 0;
	for (size_t i = 0; i < r->n_confirmed; i++) {
		free(r->confirmed[i].data);
		r->confirmed[i].data = NULL;
	}
	r->n_confirmed = 0;
	free(r->confirmed);
	r->confirmed = NULL;
}

/* Orphan GC: answers the vendor's queries about chunks it stored long ago
 * under a lease whose commit it has not seen.  Committed with this vendor
 * -> confirmed; lease released and not committed here -> orphan, and the
 * lease is marked swept so no late commit can place a chunk the vendor is
 * deleting; lease still open, or unknown (purged after its retention, or
 * a FAT store restored from an old copy) -> no answer. */
static int answer_queries(struct hello_op *op, struct fat_txn *t)
{
	const Pstore__VendorHello *h = op->h;
	Pstore__VendorHelloReply *r = op->r;
	size_t cap_orphans = 0;
	int rc;

	if (h->n_queries == 0)
		return 0;
	r->confirmed = calloc(h->n_queries, sizeof(*r->confirmed));
	if (!r->confirmed)
		return -ENOMEM;
	for (size_t i = 0; i < h->n_queries; i++) {
		const Pstore__ChunkQuery *q = h->queries[i];
		Pstore__ChunkPlacement *cp = NULL;
		Pstore__FatLease *l = NULL;
		struct fat_key k;
		bool here = false;

		fat_key_chunk(&k, q->owner.data, q->chunk_id.data);
		rc = fat_rec_get(t, &k, &pstore__chunk_placement__descriptor,
				 (ProtobufCMessage **)&cp);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		for (size_t j = 0; rc == 0 && j < cp->n_vendors; j++)
			here |= cp->vendors[j] == h->vendor_id;
		fat_rec_free(cp);
		if (here) {
			rc = fat_bytes_set(&r->confirmed[r->n_confirmed], q->chunk_id.data,
					   CHUNK_ID_LEN);
			if (rc < 0)
				return rc;
			r->n_confirmed++;
			continue;
		}
		rc = fat_lease_load(t, q->lease_id, &l);
		if (rc == -ENOENT)
			continue; /* unknown here (purged, or a FAT store that lost
				   * state): never a reason to delete data */
		if (rc < 0)
			return rc;
		if (!l->released) {
			fat_rec_free(l);
			continue; /* still open: it may yet be committed */
		}
		if (!l->swept) {
			l->swept = true;
			fat_key_lease(&k, l->id);
			rc = fat_rec_put(t, &k, &l->base);
			if (rc < 0) {
				fat_rec_free(l);
				return rc;
			}
		}
		fat_rec_free(l);
		rc = order_add(&r->orphans, &r->n_orphans, &cap_orphans, q->chunk_id.data,
			       q->owner.data, CHUNK_OWNER_LEN);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int hello_fn(struct fat_txn *t, void *arg)
{
	struct hello_op *op = arg;
	Pstore__VendorRecord *v = NULL;
	struct fat_key k;
	int rc;

	reply_reset(op->r);
	rc = fat_vendor_load(t, op->h->vendor_id, &v);
	op->is_new = rc == -ENOENT;
	if (rc == -ENOENT) {
		v = malloc(sizeof(*v));
		if (!v)
			return -ENOMEM;
		pstore__vendor_record__init(v);
		v->id = op->h->vendor_id;
	} else if (rc < 0) {
		return fat_fail(op->fc, rc, "cannot read vendor %u", op->h->vendor_id);
	}
	rc = apply_hello(v, op->h, op->fc->clock());
	if (rc == 0)
		rc = fat_vendor_save(t, v);
	fat_rec_free(v);
	if (rc < 0)
		return fat_fail(op->fc, rc, "cannot store vendor %u", op->h->vendor_id);
	for (size_t i = 0; i < op->h->n_deleted; i++) {
		fat_key_pending(&k, op->h->vendor_id, op->h->deleted[i].data);
		rc = fat_txn_del(t, k.b, k.len);
		if (rc < 0 && rc != -ENOENT)
			return fat_fail(op->fc, rc, "cannot update pending deletions");
	}
	fat_key_pending_prefix(&k, op->h->vendor_id);
	rc = fat_txn_scan(t, k.b, k.len, NULL, 0, FAT_MAX_DELETES, pending_cb, op, NULL);
	if (rc < 0)
		return fat_fail(op->fc, rc, "cannot list pending deletions");
	rc = answer_queries(op, t);
	if (rc < 0)
		return fat_fail(op->fc, rc, "cannot answer chunk queries");
	return 0;
}

int fat_vendor_hello(struct fat_ctx *fc, const Pstore__VendorHello *req,
		     Pstore__VendorHelloReply **out)
{
	struct hello_op op = {.fc = fc, .h = req};
	Pstore__VendorHelloReply *r;
	int rc;

	*out = NULL;
	rc = check_hello(fc, req);
	if (rc < 0)
		return rc;
	r = malloc(sizeof(*r));
	if (!r)
		return -ENOMEM;
	pstore__vendor_hello_reply__init(r);
	if (fat_bytes_set(&r->fat_pubkey, fc->pubkey, 32) < 0) {
		fat_rec_free(r);
		return -ENOMEM;
	}
	r->heartbeat_ms = fc->heartbeat_ms;
	op.r = r;
	rc = fat_store_run(fc->store, false, hello_fn, &op);
	if (rc < 0) {
		fat_rec_free(r);
		return rc;
	}
	if (op.is_new)
		log_info("vendor %u registered at %s (zone %s, %zu devices)", req->vendor_id,
			 req->address, req->zone[0] ? req->zone : "default", req->n_devices);
	if (req->n_deleted > 0)
		log_debug("vendor %u deleted %zu chunks", req->vendor_id, req->n_deleted);
	*out = r;
	return 0;
}

/* ---- vendor list and statfs ---- */

struct vlist_op {
	struct fat_ctx *fc;
	uint64_t now;
	Pstore__VendorListReply *r;
	size_t cap;
};

static int vlist_cb(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen, void *arg)
{
	struct vlist_op *op = arg;
	Pstore__VendorListReply *r = op->r;
	ProtobufCMessage *m;
	int rc;

	(void)key;
	(void)klen;
	if (r->n_vendors == op->cap) {
		size_t cap = op->cap ? op->cap * 2 : 16;
		Pstore__VendorRecord **a = realloc(r->vendors, cap * sizeof(*a));

		if (!a)
			return -ENOMEM;
		r->vendors = a;
		op->cap = cap;
	}
	rc = fat_rec_decode(val, vlen, &pstore__vendor_record__descriptor, &m);
	if (rc < 0)
		return rc;
	r->vendors[r->n_vendors] = (Pstore__VendorRecord *)m;
	r->vendors[r->n_vendors]->alive =
	    fat_vendor_alive(op->fc, r->vendors[r->n_vendors], op->now);
	r->n_vendors++;
	return 0;
}

static int vlist_fn(struct fat_txn *t, void *arg)
{
	struct vlist_op *op = arg;
	struct fat_key p;

	for (size_t i = 0; i < op->r->n_vendors; i++)
		fat_rec_free(op->r->vendors[i]);
	op->r->n_vendors = 0;
	fat_key_vendor_prefix(&p);
	return fat_txn_scan(t, p.b, p.len, NULL, 0, 0, vlist_cb, op, NULL);
}

int fat_vendor_list(struct fat_ctx *fc, Pstore__VendorListReply **out)
{
	struct vlist_op op = {.fc = fc, .now = fc->clock()};
	int rc;

	*out = NULL;
	op.r = malloc(sizeof(*op.r));
	if (!op.r)
		return -ENOMEM;
	pstore__vendor_list_reply__init(op.r);
	rc = fat_store_run(fc->store, true, vlist_fn, &op);
	if (rc < 0) {
		fat_rec_free(op.r);
		return fat_fail(fc, rc, "cannot list vendors");
	}
	*out = op.r;
	return 0;
}

int fat_statfs(struct fat_ctx *fc, Pstore__StatfsReply **out)
{
	Pstore__VendorListReply *vl;
	Pstore__StatfsReply *r;
	int rc;

	*out = NULL;
	rc = fat_vendor_list(fc, &vl);
	if (rc < 0)
		return rc;
	r = malloc(sizeof(*r));
	if (!r) {
		fat_rec_free(vl);
		return -ENOMEM;
	}
	pstore__statfs_reply__init(r);
	for (size_t i = 0; i < vl->n_vendors; i++) {
		const Pstore__VendorRecord *v = vl->vendors[i];

		r->used += v->used;
		r->reserved += v->reserved;
		if (!v->alive)
			continue;
		r->vendors_alive++;
		r->capacity += v->capacity;
		r->free += MIN(fat_vendor_available(v), v->free);
	}
	fat_rec_free(vl);
	*out = r;
	return 0;
}

/* ---- bad replicas ---- */

struct bad_op {
	struct fat_ctx *fc;
	const Pstore__BadReplica *req;
};

static int bad_fn(struct fat_txn *t, void *arg)
{
	struct bad_op *op = arg;
	Pstore__VolumeInfo *vi = NULL;
	Pstore__VendorRecord *v = NULL;
	Pstore__ChunkPlacement *cp = NULL;
	struct fat_key k;
	bool listed = false;
	int rc;

	rc = fat_volume_load(op->fc, t, op->req->volume, &vi);
	if (rc < 0)
		return rc;
	fat_key_chunk(&k, vi->id.data, op->req->chunk_id.data);
	fat_rec_free(vi);
	rc = fat_rec_get(t, &k, &pstore__chunk_placement__descriptor, (ProtobufCMessage **)&cp);
	if (rc == 0) {
		for (size_t i = 0; i < cp->n_vendors; i++)
			listed |= cp->vendors[i] == op->req->vendor_id;
		fat_rec_free(cp);
	}
	if (!listed)
		return fat_fail(op->fc, -ENOENT,
				"vendor %u holds no committed copy of that chunk",
				op->req->vendor_id);
	rc = fat_vendor_load(t, op->req->vendor_id, &v);
	if (rc < 0)
		return fat_fail(op->fc, rc, "no vendor %u", op->req->vendor_id);
	v->bad_replicas++;
	rc = fat_vendor_save(t, v);
	fat_rec_free(v);
	return rc;
}

int fat_report_bad(struct fat_ctx *fc, const Pstore__BadReplica *req)
{
	struct bad_op op = {.fc = fc, .req = req};
	char hex[2 * CHUNK_ID_LEN + 1];
	int rc;

	if (req->chunk_id.len != CHUNK_ID_LEN)
		return fat_fail(fc, -EINVAL, "chunk id must be 16 bytes");
	if (strlen(req->reason) > 1024)
		return fat_fail(fc, -EINVAL, "reason too long");
	rc = fat_store_run(fc->store, false, bad_fn, &op);
	if (rc < 0)
		return rc;
	chunk_id_hex(req->chunk_id.data, hex);
	log_warn("bad replica reported: volume %s chunk %s on vendor %u: %s", req->volume, hex,
		 req->vendor_id, req->reason[0] ? req->reason : "(no reason given)");
	return 0;
}
