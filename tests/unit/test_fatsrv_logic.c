/*
 * test_fatsrv_logic.c - the FAT logic without the network, on a real LMDB
 * store: volumes, vendor registration, grants (reservations, candidates,
 * tokens), commits (reservations become used, the rest released), retried
 * commits applied once, frees and pending deletions, lease expiry and
 * renewal, metadata and chunk listings with paging, statfs, bad-replica
 * reports, peer names, and an invariant check under many random
 * grants/commits/expiries: used + reserved never exceeds capacity and
 * every reservation is accounted for.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"
#include "fatsrv.h"

static uint64_t fake_now = 1700000000000ull;
static uint64_t fake_clock(void)
{
	return fake_now;
}

struct fx {
	char dir[64];
	struct fat_ctx fc;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct fat_store *s;
	struct cap_key *k;
	char path[128];

	strcpy(f->dir, "/tmp/test_fatsrv_logic.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(fat_store_open_lmdb(f->dir, 256u << 20, &s), 0);
	snprintf(path, sizeof(path), "%s/signing.key", f->dir);
	k = cap_key_load(path, true);
	assert_non_null(k);
	assert_int_equal(fat_ctx_init(&f->fc, s, k), 0);
	f->fc.clock = fake_clock;
	f->fc.lease_max_ms = 60000;
	f->fc.vendor_timeout_ms = 6000;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	fat_ctx_fini(&f->fc);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* ---- helpers ---- */

static void hello(struct fat_ctx *fc, uint32_t id, uint64_t cap, ProtobufCBinaryData *deleted,
		  size_t n_deleted, Pstore__VendorHelloReply **out)
{
	Pstore__VendorHello h = PSTORE__VENDOR_HELLO__INIT;
	Pstore__DeviceInfo d = PSTORE__DEVICE_INFO__INIT, *dp = &d;
	Pstore__VendorHelloReply *r;
	char addr[32];

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", 7100 + id);
	h.vendor_id = id;
	h.address = addr;
	h.zone = "z1";
	d.path = "/srv/d0";
	d.capacity = cap;
	d.free = cap;
	h.devices = &dp;
	h.n_devices = 1;
	h.deleted = deleted;
	h.n_deleted = n_deleted;
	assert_int_equal(fat_vendor_hello(fc, &h, &r), 0);
	assert_int_equal(r->fat_pubkey.len, 32);
	if (out)
		*out = r;
	else
		fat_rec_free(r);
}

static Pstore__VendorRecord *vendor(struct fat_ctx *fc, uint32_t id)
{
	Pstore__VendorListReply *vl;
	Pstore__VendorRecord *v = NULL;

	assert_int_equal(fat_vendor_list(fc, &vl), 0);
	for (size_t i = 0; i < vl->n_vendors; i++) {
		if (vl->vendors[i]->id == id) {
			v = vl->vendors[i];
			vl->vendors[i] = vl->vendors[--vl->n_vendors];
			break;
		}
	}
	fat_rec_free(vl);
	assert_non_null(v);
	return v;
}

static uint64_t vendor_field(struct fat_ctx *fc, uint32_t id, int which)
{
	Pstore__VendorRecord *v = vendor(fc, id);
	uint64_t r = which == 0 ? v->reserved : which == 1 ? v->used : v->chunks;

	fat_rec_free(v);
	return r;
}
#define RESERVED(fc, id) vendor_field(fc, id, 0)
#define USED(fc, id) vendor_field(fc, id, 1)
#define CHUNKS(fc, id) vendor_field(fc, id, 2)

static Pstore__VolumeInfo *mkvol(struct fat_ctx *fc, const char *name, uint32_t copies)
{
	Pstore__VolumeInfo req = PSTORE__VOLUME_INFO__INIT, *vi;

	req.name = (char *)name;
	req.copies = copies;
	assert_int_equal(fat_volume_create(fc, &req, &vi), 0);
	return vi;
}

static Pstore__AllocReply *alloc(struct fat_ctx *fc, const char *vol, uint64_t bytes,
				 uint32_t lease_ms, int expect)
{
	Pstore__AllocRequest req = PSTORE__ALLOC_REQUEST__INIT;
	Pstore__AllocReply *r = NULL;

	req.volume = (char *)vol;
	req.bytes = bytes;
	req.lease_ms = lease_ms;
	assert_int_equal(fat_alloc(fc, &req, &r), expect);
	return r;
}

struct commit_b {
	Pstore__CommitRequest req;
	Pstore__ChunkPlacement pl[16];
	Pstore__ChunkPlacement *plp[16];
	uint32_t vendors[16][8];
	uint8_t ids[16][16];
	uint8_t rid[16];
};

static void cb_init(struct commit_b *b, const char *vol, uint64_t lease, bool release)
{
	memset(b, 0, sizeof(*b));
	pstore__commit_request__init(&b->req);
	b->req.volume = (char *)vol;
	b->req.lease_id = lease;
	b->req.release = release;
	b->req.placed = b->plp;
	random_fill(b->rid, sizeof(b->rid));
	b->req.request_id.data = b->rid;
	b->req.request_id.len = sizeof(b->rid);
}

static uint8_t *cb_place(struct commit_b *b, uint64_t size, uint32_t v1, uint32_t v2)
{
	size_t i = b->req.n_placed++;
	Pstore__ChunkPlacement *p = &b->pl[i];

	pstore__chunk_placement__init(p);
	random_fill(b->ids[i], 16);
	p->chunk_id.data = b->ids[i];
	p->chunk_id.len = 16;
	p->size = size;
	b->vendors[i][0] = v1;
	b->vendors[i][1] = v2;
	p->vendors = b->vendors[i];
	p->n_vendors = v2 ? 2 : 1;
	b->plp[i] = p;
	return b->ids[i];
}

static uint64_t commit(struct fat_ctx *fc, struct commit_b *b, int expect)
{
	Pstore__CommitReply *r = NULL;
	uint64_t rev;

	assert_int_equal(fat_commit(fc, &b->req, &r), expect);
	if (expect < 0)
		return 0;
	rev = r->revision;
	fat_rec_free(r);
	return rev;
}

/* ---- tests ---- */

static void test_volumes(void **state)
{
	struct fx *f = *state;
	Pstore__VolumeInfo req = PSTORE__VOLUME_INFO__INIT, *vi, *g;
	Pstore__VolumeList *vl;

	req.name = "vol-1.a_b";
	assert_int_equal(fat_volume_create(&f->fc, &req, &vi), 0);
	assert_int_equal(vi->copies, 2);
	assert_int_equal(vi->chunk_size, 4u << 20);
	assert_int_equal(vi->id.len, 16);
	assert_int_equal(fat_volume_create(&f->fc, &req, &g), -EEXIST);
	assert_int_equal(fat_volume_get(&f->fc, "vol-1.a_b", &g), 0);
	assert_memory_equal(g->id.data, vi->id.data, 16);
	fat_rec_free(g);
	assert_int_equal(fat_volume_get(&f->fc, "nope", &g), -ENOENT);
	assert_int_equal(fat_volume_get(&f->fc, "bad/name", &g), -EINVAL);
	fat_rec_free(vi);

	req.name = "";
	assert_int_equal(fat_volume_create(&f->fc, &req, &vi), -EINVAL);
	req.name = "a b";
	assert_int_equal(fat_volume_create(&f->fc, &req, &vi), -EINVAL);
	req.name = "0123456789012345678901234567890123456789012345678901234567890123";
	assert_int_equal(fat_volume_create(&f->fc, &req, &vi), -EINVAL); /* 64 chars */
	req.name = "ok";
	req.copies = 9;
	assert_int_equal(fat_volume_create(&f->fc, &req, &vi), -EINVAL);
	req.copies = 1;
	req.chunk_size = 3u << 20;
	assert_int_equal(fat_volume_create(&f->fc, &req, &vi), -EINVAL);
	req.chunk_size = 32u << 10;
	assert_int_equal(fat_volume_create(&f->fc, &req, &vi), -EINVAL);
	req.chunk_size = 32u << 20;
	assert_int_equal(fat_volume_create(&f->fc, &req, &vi), -EINVAL);
	req.chunk_size = 64u << 10;
	assert_int_equal(fat_volume_create(&f->fc, &req, &vi), 0);
	fat_rec_free(vi);

	assert_int_equal(fat_volume_list(&f->fc, &vl), 0);
	assert_int_equal(vl->n_volumes, 2);
	fat_rec_free(vl);
}

static void test_vendor_hello(void **state)
{
	struct fx *f = *state;
	Pstore__VendorHello h = PSTORE__VENDOR_HELLO__INIT;
	Pstore__VendorHelloReply *r;
	Pstore__VendorRecord *v;
	uint8_t pub[32];

	hello(&f->fc, 3, 1000, NULL, 0, &r);
	assert_int_equal(cap_key_public(f->fc.key, pub), 0);
	assert_memory_equal(r->fat_pubkey.data, pub, 32);
	assert_int_equal(r->heartbeat_ms, f->fc.heartbeat_ms);
	assert_int_equal(r->n_delete_orders, 0);
	fat_rec_free(r);
	v = vendor(&f->fc, 3);
	assert_string_equal(v->address, "127.0.0.1:7103");
	assert_string_equal(v->zone, "z1");
	assert_int_equal(v->capacity, 1000);
	assert_int_equal(v->n_devices, 1);
	assert_true(v->alive);
	fat_rec_free(v);
	/* silent too long: not alive */
	fake_now += 7000;
	v = vendor(&f->fc, 3);
	assert_false(v->alive);
	fat_rec_free(v);
	hello(&f->fc, 3, 2000, NULL, 0, NULL);
	v = vendor(&f->fc, 3);
	assert_true(v->alive);
	assert_int_equal(v->capacity, 2000);
	fat_rec_free(v);

	/* bad hellos */
	h.vendor_id = 0;
	h.address = "127.0.0.1:1";
	assert_int_equal(fat_vendor_hello(&f->fc, &h, &r), -EINVAL);
	h.vendor_id = 4;
	h.address = "no port";
	assert_int_equal(fat_vendor_hello(&f->fc, &h, &r), -EINVAL);
}

static void test_peer_split(void **state)
{
	char role[16];
	const char *id;

	(void)state;
	assert_int_equal(fat_peer_split("vendor:3", role, sizeof(role), &id), 0);
	assert_string_equal(role, "vendor");
	assert_string_equal(id, "3");
	assert_int_equal(fat_peer_split("vendor", role, sizeof(role), &id), -EACCES);
	assert_int_equal(fat_peer_split(":3", role, sizeof(role), &id), -EACCES);
	assert_int_equal(fat_peer_split("client:", role, sizeof(role), &id), -EACCES);
	assert_int_equal(fat_peer_split("averyveryverylongrole:1", role, sizeof(role), &id),
			 -EACCES);
}

static void test_alloc_reserves(void **state)
{
	struct fx *f = *state;
	Pstore__AllocRequest req = PSTORE__ALLOC_REQUEST__INIT;
	Pstore__AllocReply *r;
	Pstore__VolumeInfo *vi;
	struct cap_token tok;
	uint32_t excl[] = {1};
	uint8_t pub[32];
	struct cap_key *pk;

	vi = mkvol(&f->fc, "v", 2);
	/* no vendors yet */
	r = alloc(&f->fc, "v", 1000, 0, -ENOSPC);
	hello(&f->fc, 1, 1u << 20, NULL, 0, NULL);
	r = alloc(&f->fc, "v", 1000, 0, -ENOSPC); /* one vendor, two copies */
	for (uint32_t id = 2; id <= 6; id++)
		hello(&f->fc, id, 1u << 20, NULL, 0, NULL);
	r = alloc(&f->fc, "nope", 1000, 0, -ENOENT);
	r = alloc(&f->fc, "v", 0, 0, -EINVAL);

	r = alloc(&f->fc, "v", 1000, 5000, 0);
	assert_int_equal(r->n_candidates, 4); /* copies + 2 */
	assert_int_equal(r->expiry_ms, fake_now + 5000);
	assert_int_not_equal(r->lease_id, 0);
	assert_int_equal(cap_key_public(f->fc.key, pub), 0);
	pk = cap_key_from_public(pub);
	for (size_t i = 0; i < r->n_candidates; i++) {
		Pstore__Candidate *c = r->candidates[i];

		assert_int_equal(c->reserved, 1000);
		assert_int_equal(RESERVED(&f->fc, c->vendor_id), 1000);
		assert_int_equal(cap_token_verify(pk, c->token.data, c->token.len, &tok), 0);
		assert_memory_equal(tok.owner, vi->id.data, 16);
		assert_int_equal(tok.vendor_id, c->vendor_id);
		assert_int_equal(tok.lease_id, r->lease_id);
		assert_int_equal(tok.byte_limit, 1000);
		assert_int_equal(tok.expiry_ms, r->expiry_ms);
		for (size_t j = 0; j < i; j++)
			assert_int_not_equal(r->candidates[j]->vendor_id, c->vendor_id);
	}
	cap_key_free(pk);
	fat_rec_free(r);

	/* lease length is capped */
	r = alloc(&f->fc, "v", 10, 10u * 60000u, 0);
	assert_int_equal(r->expiry_ms, fake_now + f->fc.lease_max_ms);
	fat_rec_free(r);

	/* excluded and dead vendors are not candidates */
	req.volume = "v";
	req.bytes = 10;
	req.copies = 1;
	req.exclude = excl;
	req.n_exclude = 1;
	assert_int_equal(fat_alloc(&f->fc, &req, &r), 0);
	assert_int_equal(r->n_candidates, 3);
	for (size_t i = 0; i < r->n_candidates; i++)
		assert_int_not_equal(r->candidates[i]->vendor_id, 1);
	fat_rec_free(r);
	fake_now += 3000;
	for (uint32_t id = 1; id <= 2; id++)
		hello(&f->fc, id, 1u << 20, NULL, 0, NULL);
	fake_now += 4000; /* 3..6 silent for 7 s */
	req.n_exclude = 0;
	req.copies = 3;
	assert_int_equal(fat_alloc(&f->fc, &req, &r), -ENOSPC);
	req.copies = 2;
	assert_int_equal(fat_alloc(&f->fc, &req, &r), 0);
	assert_int_equal(r->n_candidates, 2);
	fat_rec_free(r);
	fat_rec_free(vi);
}

static void test_alloc_partial_space(void **state)
{
	struct fx *f = *state;
	Pstore__AllocReply *r;
	Pstore__VolumeInfo *vi = mkvol(&f->fc, "v", 1);

	hello(&f->fc, 1, 300, NULL, 0, NULL);
	hello(&f->fc, 2, 1000, NULL, 0, NULL);
	r = alloc(&f->fc, "v", 500, 0, 0);
	assert_int_equal(r->n_candidates, 2);
	assert_int_equal(r->candidates[0]->vendor_id, 2); /* most space first */
	assert_int_equal(r->candidates[0]->reserved, 500);
	assert_int_equal(r->candidates[1]->reserved, 300);
	fat_rec_free(r);
	assert_int_equal(RESERVED(&f->fc, 1), 300);
	/* vendor 1 is full now */
	r = alloc(&f->fc, "v", 500, 0, 0);
	assert_int_equal(r->n_candidates, 1);
	assert_int_equal(r->candidates[0]->vendor_id, 2);
	fat_rec_free(r);
	assert_int_equal(RESERVED(&f->fc, 2), 1000);
	r = alloc(&f->fc, "v", 1, 0, -ENOSPC);
	fat_rec_free(vi);
}

static void test_commit_converts_and_releases(void **state)
{
	struct fx *f = *state;
	Pstore__VolumeInfo *vi = mkvol(&f->fc, "v", 2), *g;
	Pstore__AllocReply *r;
	struct commit_b b;
	uint32_t a, c, others[2];

	for (uint32_t id = 1; id <= 4; id++)
		hello(&f->fc, id, 1u << 20, NULL, 0, NULL);
	r = alloc(&f->fc, "v", 1000, 0, 0);
	assert_int_equal(r->n_candidates, 4);
	a = r->candidates[0]->vendor_id;
	c = r->candidates[1]->vendor_id;
	others[0] = r->candidates[2]->vendor_id;
	others[1] = r->candidates[3]->vendor_id;

	/* a commit without release: placed bytes become used, the rest stays */
	cb_init(&b, "v", r->lease_id, false);
	cb_place(&b, 600, a, c);
	assert_int_equal(commit(&f->fc, &b, 0), 1);
	assert_int_equal(USED(&f->fc, a), 600);
	assert_int_equal(USED(&f->fc, c), 600);
	assert_int_equal(CHUNKS(&f->fc, a), 1);
	assert_int_equal(RESERVED(&f->fc, a), 400);
	assert_int_equal(RESERVED(&f->fc, others[0]), 1000);
	/* the same request again: the stored answer, nothing counted twice */
	assert_int_equal(commit(&f->fc, &b, 0), 1);
	assert_int_equal(USED(&f->fc, a), 600);
	assert_int_equal(RESERVED(&f->fc, a), 400);

	/* bad placements are refused and change nothing */
	cb_init(&b, "v", r->lease_id, false);
	cb_place(&b, 100, a, a);
	commit(&f->fc, &b, -EINVAL);
	cb_init(&b, "v", r->lease_id, false);
	cb_place(&b, 100, a, 99);
	commit(&f->fc, &b, -EINVAL);
	cb_init(&b, "v", r->lease_id, false);
	cb_place(&b, 0, a, c);
	commit(&f->fc, &b, -EINVAL);
	cb_init(&b, "v", r->lease_id + 1, false);
	cb_place(&b, 100, a, c);
	commit(&f->fc, &b, -ENOENT);
	cb_init(&b, "nope", r->lease_id, false);
	commit(&f->fc, &b, -ENOENT);
	assert_int_equal(USED(&f->fc, a), 600);

	/* the final commit releases everything left */
	cb_init(&b, "v", r->lease_id, true);
	cb_place(&b, 300, c, others[0]);
	assert_int_equal(commit(&f->fc, &b, 0), 2);
	for (uint32_t id = 1; id <= 4; id++)
		assert_int_equal(RESERVED(&f->fc, id), 0);
	assert_int_equal(USED(&f->fc, c), 900);
	assert_int_equal(USED(&f->fc, others[0]), 300);
	assert_int_equal(USED(&f->fc, others[1]), 0);
	assert_int_equal(fat_volume_get(&f->fc, "v", &g), 0);
	assert_int_equal(g->revision, 2);
	fat_rec_free(g);
	/* the lease is gone for renewal */
	{
		Pstore__LeaseRenew lr = PSTORE__LEASE_RENEW__INIT;
		Pstore__AllocReply *rr;

		lr.volume = "v";
		lr.lease_id = r->lease_id;
		assert_int_equal(fat_lease_renew(&f->fc, &lr, &rr), -ENOENT);
	}
	fat_rec_free(r);
	fat_rec_free(vi);
}

static void test_failed_vendors_released(void **state)
{
	struct fx *f = *state;
	Pstore__VolumeInfo *vi = mkvol(&f->fc, "v", 1);
	Pstore__AllocReply *r;
	struct commit_b b;
	uint32_t failed;

	for (uint32_t id = 1; id <= 3; id++)
		hello(&f->fc, id, 1u << 20, NULL, 0, NULL);
	r = alloc(&f->fc, "v", 1000, 0, 0);
	failed = r->candidates[0]->vendor_id;
	cb_init(&b, "v", r->lease_id, false);
	b.req.failed_vendors = &failed;
	b.req.n_failed_vendors = 1;
	cb_place(&b, 10, r->candidates[1]->vendor_id, 0);
	commit(&f->fc, &b, 0);
	assert_int_equal(RESERVED(&f->fc, failed), 0);
	assert_int_equal(RESERVED(&f->fc, r->candidates[1]->vendor_id), 990);
	assert_int_equal(RESERVED(&f->fc, r->candidates[2]->vendor_id), 1000);
	fat_rec_free(r);
	fat_rec_free(vi);
}

static void test_free_and_pending_deletions(void **state)
{
	struct fx *f = *state;
	Pstore__VolumeInfo *vi = mkvol(&f->fc, "v", 2);
	Pstore__VendorHelloReply *hr;
	Pstore__AllocReply *r;
	struct commit_b b;
	ProtobufCBinaryData freed, del[2];
	uint8_t id[16];

	hello(&f->fc, 1, 1u << 20, NULL, 0, NULL);
	hello(&f->fc, 2, 1u << 20, NULL, 0, NULL);
	r = alloc(&f->fc, "v", 1000, 0, 0);
	cb_init(&b, "v", r->lease_id, true);
	memcpy(id, cb_place(&b, 500, 1, 2), 16);
	commit(&f->fc, &b, 0);
	fat_rec_free(r);
	assert_int_equal(USED(&f->fc, 1), 500);

	cb_init(&b, "v", 0, false);
	freed.data = id;
	freed.len = 16;
	b.req.freed = &freed;
	b.req.n_freed = 1;
	commit(&f->fc, &b, 0);
	assert_int_equal(USED(&f->fc, 1), 0);
	assert_int_equal(USED(&f->fc, 2), 0);
	assert_int_equal(CHUNKS(&f->fc, 2), 0);
	/* freeing again is harmless */
	random_fill(b.rid, 16);
	commit(&f->fc, &b, 0);
	assert_int_equal(USED(&f->fc, 1), 0);

	/* both vendors are told to delete it until they say they did */
	hello(&f->fc, 1, 1u << 20, NULL, 0, &hr);
	assert_int_equal(hr->n_delete_orders, 1);
	assert_int_equal(hr->delete_orders[0]->chunk_id.len, 16);
	assert_memory_equal(hr->delete_orders[0]->chunk_id.data, id, 16);
	/* the order names the volume the chunk belongs to */
	assert_int_equal(hr->delete_orders[0]->owner.len, 16);
	assert_memory_equal(hr->delete_orders[0]->owner.data, vi->id.data, 16);
	assert_int_equal(hr->n_delete_chunks, 0);
	fat_rec_free(hr);
	hello(&f->fc, 1, 1u << 20, NULL, 0, &hr);
	assert_int_equal(hr->n_delete_orders, 1);
	fat_rec_free(hr);
	del[0] = freed;
	hello(&f->fc, 1, 1u << 20, del, 1, &hr);
	assert_int_equal(hr->n_delete_orders, 0);
	fat_rec_free(hr);
	hello(&f->fc, 2, 1u << 20, NULL, 0, &hr);
	assert_int_equal(hr->n_delete_orders, 1);
	fat_rec_free(hr);
	fat_rec_free(vi);
}

static void test_many_pending_deletions(void **state)
{
	struct fx *f = *state;
	Pstore__VolumeInfo *vi = mkvol(&f->fc, "v", 1);
	Pstore__VendorHelloReply *hr;
	Pstore__AllocReply *r;
	ProtobufCBinaryData freed[15];
	struct commit_b b;
	uint8_t ids[15][16];

	hello(&f->fc, 1, 1u << 30, NULL, 0, NULL);
	for (int round = 0; round < 6; round++) {
		r = alloc(&f->fc, "v", 1u << 20, 0, 0);
		cb_init(&b, "v", r->lease_id, true);
		for (int i = 0; i < 15; i++)
			memcpy(ids[i], cb_place(&b, 100, 1, 0), 16);
		commit(&f->fc, &b, 0);
		fat_rec_free(r);
		cb_init(&b, "v", 0, false);
		for (int i = 0; i < 15; i++) {
			freed[i].data = ids[i];
			freed[i].len = 16;
		}
		b.req.freed = freed;
		b.req.n_freed = 15;
		commit(&f->fc, &b, 0);
	}
	assert_int_equal(USED(&f->fc, 1), 0);
	hello(&f->fc, 1, 1u << 30, NULL, 0, &hr);
	assert_int_equal(hr->n_delete_orders, 90);
	/* the vendor confirms them all: nothing pending any more */
	{
		Pstore__VendorHelloReply *hr2;
		ProtobufCBinaryData done[90];

		for (size_t i = 0; i < 90; i++)
			done[i] = hr->delete_orders[i]->chunk_id;
		hello(&f->fc, 1, 1u << 30, done, 90, &hr2);
		assert_int_equal(hr2->n_delete_orders, 0);
		fat_rec_free(hr2);
	}
	fat_rec_free(hr);
	fat_rec_free(vi);
}

static void test_expiry_and_renew(void **state)
{
	struct fx *f = *state;
	Pstore__VolumeInfo *vi = mkvol(&f->fc, "v", 1);
	Pstore__LeaseRenew lr = PSTORE__LEASE_RENEW__INIT;
	Pstore__AllocReply *r, *r2, *rr;
	struct commit_b b;
	unsigned n;
	uint32_t a;

	hello(&f->fc, 1, 1u << 20, NULL, 0, NULL);
	hello(&f->fc, 2, 1u << 20, NULL, 0, NULL);
	r = alloc(&f->fc, "v", 1000, 1000, 0);
	r2 = alloc(&f->fc, "v", 100, 1000, 0);
	a = r->candidates[0]->vendor_id;
	assert_int_equal(RESERVED(&f->fc, 1), 1100);

	/* renewing r2 keeps it past the expiry of r */
	fake_now += 800;
	lr.volume = "v";
	lr.lease_id = r2->lease_id;
	lr.lease_ms = 1000;
	assert_int_equal(fat_lease_renew(&f->fc, &lr, &rr), 0);
	assert_int_equal(rr->expiry_ms, fake_now + 1000);
	assert_int_equal(rr->n_candidates, 2);
	assert_int_equal(rr->candidates[0]->reserved, 100);
	fat_rec_free(rr);
	lr.volume = "other";
	assert_int_equal(fat_lease_renew(&f->fc, &lr, &rr), -ENOENT);

	assert_int_equal(fat_lease_expire(&f->fc, &n), 0);
	assert_int_equal(n, 0);
	fake_now += 300;
	assert_int_equal(fat_lease_expire(&f->fc, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(RESERVED(&f->fc, 1), 100);
	assert_int_equal(RESERVED(&f->fc, 2), 100);
	lr.volume = "v";
	lr.lease_id = r->lease_id;
	assert_int_equal(fat_lease_renew(&f->fc, &lr, &rr), -ENOENT);

	/* a late commit is still recorded and counted, reservations untouched */
	cb_init(&b, "v", r->lease_id, true);
	cb_place(&b, 700, a, 0);
	commit(&f->fc, &b, 0);
	assert_int_equal(USED(&f->fc, a), 700);
	assert_int_equal(RESERVED(&f->fc, a), 100);

	fake_now += 1000;
	assert_int_equal(fat_lease_expire(&f->fc, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(RESERVED(&f->fc, 1), 0);
	assert_int_equal(RESERVED(&f->fc, 2), 0);
	/* after the retention the records go; expiring again finds nothing */
	fake_now += f->fc.lease_retention_ms + 1;
	assert_int_equal(fat_lease_expire(&f->fc, &n), 0);
	assert_int_equal(n, 0);
	cb_init(&b, "v", r->lease_id, false);
	cb_place(&b, 1, a, 0);
	commit(&f->fc, &b, -ENOENT);
	fat_rec_free(r);
	fat_rec_free(r2);
	fat_rec_free(vi);
}

static void test_meta_and_chunk_lists(void **state)
{
	struct fx *f = *state;
	Pstore__VolumeInfo *vi = mkvol(&f->fc, "v", 1), *w = mkvol(&f->fc, "w", 1);
	Pstore__ListRequest lr = PSTORE__LIST_REQUEST__INIT;
	Pstore__MetaListReply *ml;
	Pstore__ChunkListReply *cl;
	Pstore__AllocReply *r;
	Pstore__MetaOp ops[30], *opp[30];
	char keys[30][8], big[600];
	struct commit_b b;
	size_t total = 0;
	uint8_t last[16];

	for (int i = 0; i < 30; i++) {
		pstore__meta_op__init(&ops[i]);
		snprintf(keys[i], sizeof(keys[i]), "k%02d", i);
		ops[i].key.data = (uint8_t *)keys[i];
		ops[i].key.len = 3;
		ops[i].value.data = (uint8_t *)"value";
		ops[i].value.len = 5;
		opp[i] = &ops[i];
	}
	cb_init(&b, "v", 0, false);
	b.req.meta = opp;
	b.req.n_meta = 30;
	commit(&f->fc, &b, 0);
	/* delete one, overwrite one */
	cb_init(&b, "v", 0, false);
	ops[5].del = true;
	ops[6].value.data = (uint8_t *)"new";
	ops[6].value.len = 3;
	b.req.meta = &opp[5];
	b.req.n_meta = 2;
	commit(&f->fc, &b, 0);

	lr.volume = "v";
	lr.limit = 10;
	assert_int_equal(fat_meta_list(&f->fc, &lr, &ml), 0);
	assert_int_equal(ml->n_items, 10);
	assert_true(ml->more);
	assert_memory_equal(ml->items[0]->key.data, "k00", 3);
	assert_memory_equal(ml->items[5]->key.data, "k06", 3);
	assert_memory_equal(ml->items[5]->value.data, "new", 3);
	{
		Pstore__MetaListReply *ml2;

		lr.after = ml->items[9]->key;
		assert_int_equal(fat_meta_list(&f->fc, &lr, &ml2), 0);
		assert_int_equal(ml2->n_items, 10);
		assert_memory_equal(ml2->items[0]->key.data, "k11", 3); /* k05 is gone */
		fat_rec_free(ml2);
		fat_rec_free(ml);
	}
	/* page through everything */
	lr.after.len = 0;
	{
		uint8_t after[8];
		bool more = true;

		while (more) {
			assert_int_equal(fat_meta_list(&f->fc, &lr, &ml), 0);
			total += ml->n_items;
			more = ml->more;
			if (ml->n_items) {
				memcpy(after, ml->items[ml->n_items - 1]->key.data, 3);
				lr.after.data = after;
				lr.after.len = 3;
			}
			fat_rec_free(ml);
		}
	}
	assert_int_equal(total, 29);
	/* other volume: empty */
	lr.volume = "w";
	lr.after.len = 0;
	assert_int_equal(fat_meta_list(&f->fc, &lr, &ml), 0);
	assert_int_equal(ml->n_items, 0);
	assert_false(ml->more);
	fat_rec_free(ml);
	lr.limit = FAT_MAX_LIST + 1;
	assert_int_equal(fat_meta_list(&f->fc, &lr, &ml), -EINVAL);

	/* keys too long for the backend are refused with a clear error */
	memset(big, 'x', sizeof(big));
	cb_init(&b, "v", 0, false);
	ops[0].key.data = (uint8_t *)big;
	ops[0].key.len = sizeof(big);
	b.req.meta = opp;
	b.req.n_meta = 1;
	commit(&f->fc, &b, -EINVAL);
	assert_non_null(strstr(f->fc.err, "metadata key"));

	/* chunks */
	hello(&f->fc, 1, 1u << 30, NULL, 0, NULL);
	r = alloc(&f->fc, "v", 1u << 20, 0, 0);
	cb_init(&b, "v", r->lease_id, true);
	for (int i = 0; i < 12; i++)
		cb_place(&b, 1000 + (uint64_t)i, 1, 0);
	commit(&f->fc, &b, 0);
	fat_rec_free(r);
	lr.volume = "v";
	lr.limit = 5;
	lr.after.len = 0;
	total = 0;
	for (int page = 0; page < 3; page++) {
		assert_int_equal(fat_chunk_list(&f->fc, &lr, &cl), 0);
		total += cl->n_chunks;
		assert_int_equal(cl->more, page < 2);
		for (size_t i = 0; i < cl->n_chunks; i++) {
			assert_int_equal(cl->chunks[i]->n_vendors, 1);
			assert_int_equal(cl->chunks[i]->vendors[0], 1);
			if (i > 0 || page > 0)
				assert_true(memcmp(cl->chunks[i]->chunk_id.data, last, 16) > 0);
			memcpy(last, cl->chunks[i]->chunk_id.data, 16);
		}
		lr.after.data = last;
		lr.after.len = 16;
		fat_rec_free(cl);
	}
	assert_int_equal(total, 12);
	lr.volume = "w";
	lr.after.len = 0;
	assert_int_equal(fat_chunk_list(&f->fc, &lr, &cl), 0);
	assert_int_equal(cl->n_chunks, 0);
	fat_rec_free(cl);
	fat_rec_free(vi);
	fat_rec_free(w);
}

static void test_statfs_and_bad(void **state)
{
	struct fx *f = *state;
	Pstore__VolumeInfo *vi = mkvol(&f->fc, "v", 1);
	Pstore__BadReplica br = PSTORE__BAD_REPLICA__INIT;
	Pstore__StatfsReply *st;
	Pstore__AllocReply *r;
	Pstore__VendorRecord *v;
	struct commit_b b;
	uint8_t *id;

	hello(&f->fc, 1, 10000, NULL, 0, NULL);
	hello(&f->fc, 2, 10000, NULL, 0, NULL);
	r = alloc(&f->fc, "v", 1000, 0, 0);
	cb_init(&b, "v", r->lease_id, false);
	id = cb_place(&b, 400, 1, 0);
	commit(&f->fc, &b, 0);
	assert_int_equal(fat_statfs(&f->fc, &st), 0);
	assert_int_equal(st->capacity, 20000);
	assert_int_equal(st->used, 400);
	assert_int_equal(st->reserved, 1600);
	assert_int_equal(st->free, 20000 - 2000);
	assert_int_equal(st->vendors_alive, 2);
	fat_rec_free(st);

	br.volume = "v";
	br.chunk_id.data = id;
	br.chunk_id.len = 16;
	br.vendor_id = 1;
	br.reason = "digest mismatch";
	assert_int_equal(fat_report_bad(&f->fc, &br), 0);
	v = vendor(&f->fc, 1);
	assert_int_equal(v->bad_replicas, 1);
	fat_rec_free(v);
	br.vendor_id = 2; /* holds no copy */
	assert_int_equal(fat_report_bad(&f->fc, &br), -ENOENT);

	fake_now += 10000; /* everyone silent */
	assert_int_equal(fat_statfs(&f->fc, &st), 0);
	assert_int_equal(st->capacity, 0);
	assert_int_equal(st->vendors_alive, 0);
	fat_rec_free(st);
	fat_rec_free(r);
	fat_rec_free(vi);
}

/* Sum of remaining over unreleased leases, per vendor, straight from the store. */
struct inv {
	uint64_t res[16];
};

static int inv_cb(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen, void *arg)
{
	struct inv *iv = arg;
	ProtobufCMessage *m;
	Pstore__FatLease *l;

	(void)key;
	(void)klen;
	assert_int_equal(fat_rec_decode(val, vlen, &pstore__fat_lease__descriptor, &m), 0);
	l = (Pstore__FatLease *)m;
	if (!l->released)
		for (size_t i = 0; i < l->n_res; i++)
			iv->res[l->res[i]->vendor_id] += l->res[i]->remaining;
	fat_rec_free(l);
	return 0;
}

static void check_invariants(struct fat_ctx *fc, uint32_t n_vendors, uint64_t *used_expect)
{
	struct fat_txn *t;
	struct inv iv = {0};

	assert_int_equal(fat_txn_begin(fc->store, true, &t), 0);
	assert_int_equal(fat_txn_scan(t, "l/", 2, NULL, 0, 0, inv_cb, &iv, NULL), 0);
	fat_txn_abort(t);
	for (uint32_t id = 1; id <= n_vendors; id++) {
		Pstore__VendorRecord *v = vendor(fc, id);

		assert_true(v->used + v->reserved <= v->capacity);
		assert_int_equal(v->reserved, iv.res[id]);
		assert_int_equal(v->used, used_expect[id]);
		fat_rec_free(v);
	}
}

static void test_random_invariant(void **state)
{
	struct fx *f = *state;
	Pstore__VolumeInfo *vi = mkvol(&f->fc, "v", 2);
	struct {
		uint64_t id;
		uint64_t expiry;
		uint32_t vend[8];
		uint64_t left[8];
		size_t n;
	} leases[64];
	size_t n_leases = 0;
	uint64_t used[16] = {0};
	const uint32_t nv = 6;
	unsigned seed = 12345;

	for (uint32_t id = 1; id <= nv; id++)
		hello(&f->fc, id, 50000 + id * 10000, NULL, 0, NULL);
	for (int step = 0; step < 600; step++) {
		unsigned what = (unsigned)rand_r(&seed) % 10;

		if (step % 50 == 0) /* keep everyone alive */
			for (uint32_t id = 1; id <= nv; id++)
				hello(&f->fc, id, 50000 + id * 10000, NULL, 0, NULL);
		if (what < 4 && n_leases < ARRAY_SIZE(leases)) {
			uint64_t bytes = 1 + (uint64_t)rand_r(&seed) % 20000;
			Pstore__AllocReply *r = NULL;
			Pstore__AllocRequest req = PSTORE__ALLOC_REQUEST__INIT;
			int rc;

			req.volume = "v";
			req.bytes = bytes;
			req.lease_ms = 1000 + (uint32_t)rand_r(&seed) % 5000;
			rc = fat_alloc(&f->fc, &req, &r);
			assert_true(rc == 0 || rc == -ENOSPC);
			if (rc == 0) {
				leases[n_leases].id = r->lease_id;
				leases[n_leases].expiry = r->expiry_ms;
				leases[n_leases].n = r->n_candidates;
				for (size_t i = 0; i < r->n_candidates; i++) {
					leases[n_leases].vend[i] = r->candidates[i]->vendor_id;
					leases[n_leases].left[i] = r->candidates[i]->reserved;
				}
				n_leases++;
				fat_rec_free(r);
			}
		} else if (what < 8 && n_leases > 0) {
			size_t li = (size_t)rand_r(&seed) % n_leases;
			bool release = rand_r(&seed) % 2;
			struct commit_b b;
			size_t i = (size_t)rand_r(&seed) % leases[li].n;
			size_t j = (i + 1) % leases[li].n;
			uint64_t size = MIN(leases[li].left[i], leases[li].left[j]) / 2;
			Pstore__CommitReply *cr = NULL;
			int rc;

			/* placing under an expired lease may overbook (the data is
			 * on the vendors anyway): test_expiry_and_renew covers it */
			if (fake_now >= leases[li].expiry)
				size = 0;
			cb_init(&b, "v", leases[li].id, release);
			if (size > 0 && leases[li].n >= 2)
				cb_place(&b, size, leases[li].vend[i], leases[li].vend[j]);
			rc = fat_commit(&f->fc, &b.req, &cr);
			fat_rec_free(cr);
			if (rc == 0 && b.req.n_placed) {
				leases[li].left[i] -= size;
				leases[li].left[j] -= size;
				used[leases[li].vend[i]] += size;
				used[leases[li].vend[j]] += size;
			}
			/* -ENOENT: the lease expired and was purged meanwhile */
			assert_true(rc == 0 || rc == -ENOENT);
			if (release || rc != 0)
				leases[li] = leases[--n_leases];
		} else {
			fake_now += (uint64_t)rand_r(&seed) % 700;
			assert_int_equal(fat_lease_expire(&f->fc, NULL), 0);
		}
		check_invariants(&f->fc, nv, used);
	}
	/* everything expires in the end: nothing stays reserved */
	fake_now += 3600u * 1000u;
	for (uint32_t id = 1; id <= nv; id++)
		hello(&f->fc, id, 50000 + id * 10000, NULL, 0, NULL);
	assert_int_equal(fat_lease_expire(&f->fc, NULL), 0);
	for (uint32_t id = 1; id <= nv; id++)
		assert_int_equal(RESERVED(&f->fc, id), 0);
	check_invariants(&f->fc, nv, used);
	fat_rec_free(vi);
}

static void test_gc_requests(void **state)
{
	struct fx *f = *state;
	Pstore__VolumeInfo *vi = mkvol(&f->fc, "v", 1);
	struct commit_b b;
	uint8_t rid[16];
	unsigned n;

	cb_init(&b, "v", 0, false);
	memcpy(rid, b.rid, 16);
	assert_int_equal(commit(&f->fc, &b, 0), 1);
	assert_int_equal(fat_gc_requests(&f->fc, 100, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(commit(&f->fc, &b, 0), 1); /* still idempotent */
	fake_now += f->fc.request_retention_ms + 1;
	assert_int_equal(fat_gc_requests(&f->fc, 100, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(commit(&f->fc, &b, 0), 2); /* forgotten: applied again */
	fat_rec_free(vi);
}

/* A chunk id committed in one volume cannot be placed in another (vendors
 * key chunks by id alone); once freed there, it can. */
static void test_chunk_id_one_volume(void **state)
{
	struct fx *f = *state;
	Pstore__VolumeInfo *va = mkvol(&f->fc, "va", 1), *vb = mkvol(&f->fc, "vb", 1);
	Pstore__AllocReply *ra, *rb;
	struct commit_b b;
	ProtobufCBinaryData freed;
	uint8_t id[16];

	hello(&f->fc, 1, 1u << 20, NULL, 0, NULL);
	ra = alloc(&f->fc, "va", 1000, 0, 0);
	rb = alloc(&f->fc, "vb", 1000, 0, 0);
	cb_init(&b, "va", ra->lease_id, false);
	memcpy(id, cb_place(&b, 100, 1, 0), 16);
	commit(&f->fc, &b, 0);
	cb_init(&b, "vb", rb->lease_id, false);
	cb_place(&b, 100, 1, 0);
	memcpy(b.ids[0], id, 16);
	commit(&f->fc, &b, -EEXIST);
	assert_int_equal(CHUNKS(&f->fc, 1), 1);

	cb_init(&b, "va", 0, false);
	freed.data = id;
	freed.len = 16;
	b.req.freed = &freed;
	b.req.n_freed = 1;
	commit(&f->fc, &b, 0);
	cb_init(&b, "vb", rb->lease_id, false);
	cb_place(&b, 100, 1, 0);
	memcpy(b.ids[0], id, 16);
	commit(&f->fc, &b, 0);
	fat_rec_free(ra);
	fat_rec_free(rb);
	fat_rec_free(va);
	fat_rec_free(vb);
}

static Pstore__VendorHelloReply *hello_q(struct fat_ctx *fc, uint32_t id,
					 Pstore__ChunkQuery **q, size_t nq)
{
	Pstore__VendorHello h = PSTORE__VENDOR_HELLO__INIT;
	Pstore__DeviceInfo d = PSTORE__DEVICE_INFO__INIT, *dp = &d;
	Pstore__VendorHelloReply *r = NULL;
	char addr[32];

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", 7100 + id);
	h.vendor_id = id;
	h.address = addr;
	d.path = "/srv/d0";
	d.capacity = 1u << 20;
	d.free = 1u << 20;
	h.devices = &dp;
	h.n_devices = 1;
	h.queries = q;
	h.n_queries = nq;
	assert_int_equal(fat_vendor_hello(fc, &h, &r), 0);
	return r;
}

/* Orphan GC: a vendor asks about chunks it stored long ago.  Committed on
 * it -> confirmed; lease still open -> no answer; lease closed and not
 * committed there -> orphan, and the lease takes no placement any more. */
static void test_orphan_queries(void **state)
{
	struct fx *f = *state;
	Pstore__VolumeInfo *vi = mkvol(&f->fc, "v", 1);
	Pstore__ChunkQuery q[3], *qp[3];
	Pstore__VendorHelloReply *hr;
	Pstore__AllocReply *r;
	struct commit_b b;
	uint8_t committed[16], lost[16], elsewhere[16];

	hello(&f->fc, 1, 1u << 20, NULL, 0, NULL);
	hello(&f->fc, 2, 1u << 20, NULL, 0, NULL);
	r = alloc(&f->fc, "v", 10000, 0, 0);
	cb_init(&b, "v", r->lease_id, false);
	memcpy(committed, cb_place(&b, 100, 1, 0), 16);
	memcpy(elsewhere, cb_place(&b, 100, 2, 0), 16);
	commit(&f->fc, &b, 0);
	random_fill(lost, 16);
	for (int i = 0; i < 3; i++) {
		pstore__chunk_query__init(&q[i]);
		q[i].owner = vi->id;
		q[i].lease_id = r->lease_id;
		q[i].chunk_id.len = 16;
		qp[i] = &q[i];
	}
	q[0].chunk_id.data = committed;
	q[1].chunk_id.data = lost;
	q[2].chunk_id.data = elsewhere; /* committed, but not on vendor 1 */

	hr = hello_q(&f->fc, 1, qp, 3);
	assert_int_equal(hr->n_confirmed, 1);
	assert_memory_equal(hr->confirmed[0].data, committed, 16);
	assert_int_equal(hr->n_orphans, 0); /* lease open */
	fat_rec_free(hr);

	/* release the lease: the lost and the misplaced copy are orphans */
	cb_init(&b, "v", r->lease_id, true);
	commit(&f->fc, &b, 0);
	hr = hello_q(&f->fc, 1, qp + 1, 2);
	assert_int_equal(hr->n_confirmed, 0);
	assert_int_equal(hr->n_orphans, 2);
	assert_memory_equal(hr->orphans[0]->chunk_id.data, lost, 16);
	assert_memory_equal(hr->orphans[0]->owner.data, vi->id.data, 16);
	assert_memory_equal(hr->orphans[1]->chunk_id.data, elsewhere, 16);
	fat_rec_free(hr);

	/* a lease the FAT does not know is never a reason to delete */
	q[1].lease_id = r->lease_id ^ 0x5a5a5a5a;
	hr = hello_q(&f->fc, 1, qp + 1, 1);
	assert_int_equal(hr->n_orphans, 0);
	assert_int_equal(hr->n_confirmed, 0);
	fat_rec_free(hr);
	q[1].lease_id = r->lease_id;

	/* a late commit of the orphan is refused: the vendor is deleting it */
	cb_init(&b, "v", r->lease_id, false);
	cb_place(&b, 100, 1, 0);
	memcpy(b.ids[0], lost, 16);
	commit(&f->fc, &b, -ESTALE);

	/* malformed queries are refused whole */
	q[1].owner.len = 3;
	{
		Pstore__VendorHello h = PSTORE__VENDOR_HELLO__INIT;

		h.vendor_id = 1;
		h.address = "127.0.0.1:7101";
		h.queries = qp;
		h.n_queries = 2;
		assert_int_equal(fat_vendor_hello(&f->fc, &h, &hr), -EINVAL);
	}
	fat_rec_free(r);
	fat_rec_free(vi);
}

/* A late placement under a released lease takes free room or is refused:
 * used + reserved never exceeds the capacity (L3). */
static void test_late_placement_no_overcommit(void **state)
{
	struct fx *f = *state;
	Pstore__VolumeInfo *vi = mkvol(&f->fc, "v", 1);
	Pstore__AllocReply *a, *b;
	struct commit_b c;

	hello(&f->fc, 1, 1000, NULL, 0, NULL);
	a = alloc(&f->fc, "v", 1000, 0, 0);
	cb_init(&c, "v", a->lease_id, true);
	cb_place(&c, 600, 1, 0);
	commit(&f->fc, &c, 0);
	assert_int_equal(USED(&f->fc, 1), 600);
	assert_int_equal(RESERVED(&f->fc, 1), 0);
	b = alloc(&f->fc, "v", 400, 0, 0);
	assert_int_equal(RESERVED(&f->fc, 1), 400);

	/* the released lease's bytes are lease b's now: no room */
	cb_init(&c, "v", a->lease_id, false);
	cb_place(&c, 300, 1, 0);
	commit(&f->fc, &c, -ENOSPC);
	assert_int_equal(USED(&f->fc, 1) + RESERVED(&f->fc, 1), 1000);

	/* once b gives its reservation back there is room again */
	cb_init(&c, "v", b->lease_id, true);
	commit(&f->fc, &c, 0);
	cb_init(&c, "v", a->lease_id, false);
	cb_place(&c, 300, 1, 0);
	commit(&f->fc, &c, 0);
	assert_int_equal(USED(&f->fc, 1), 900);
	assert_true(USED(&f->fc, 1) + RESERVED(&f->fc, 1) <= 1000);
	fat_rec_free(a);
	fat_rec_free(b);
	fat_rec_free(vi);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_volumes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vendor_hello, setup, teardown),
	    cmocka_unit_test(test_peer_split),
	    cmocka_unit_test_setup_teardown(test_alloc_reserves, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_alloc_partial_space, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_commit_converts_and_releases, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_vendors_released, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_free_and_pending_deletions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many_pending_deletions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_expiry_and_renew, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta_and_chunk_lists, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_statfs_and_bad, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_random_invariant, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_gc_requests, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_chunk_id_one_volume, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_orphan_queries, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_late_placement_no_overcommit, setup, teardown),
	};

	log_init("test_fatsrv_logic", LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
