/*
 * fuzz_fat_records.c - records of the FAT store (src/fatsrv/records.c and
 * the logic reading them) as if the store's disk or an etcd member were
 * hostile: the fuzzed bytes replace one seeded record, then the operations
 * that decode and use that record run on it.
 *
 * Input: byte 0 picks the record (0 vendor 1, 1 volume "vol", 2 the live
 * lease, 3 the committed chunk's placement, 4 the applied commit); the rest
 * is the record's value.  The seed corpus has each record as the logic
 * wrote it.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_fat_env.h"

struct put_arg {
	const struct fat_key *k;
	const uint8_t *val;
	size_t len;
};

static int put_fn(struct fat_txn *t, void *arg)
{
	struct put_arg *a = arg;

	return fat_txn_put(t, a->k->b, a->k->len, a->val, a->len);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	fuzz_fat_env();
	return 0;
}

static void vendor_ops(struct fuzz_fat *f)
{
	Pstore__VendorListReply *vl = NULL;
	Pstore__StatfsReply *sf = NULL;
	Pstore__VendorHello h = PSTORE__VENDOR_HELLO__INIT;
	Pstore__VendorHelloReply *hr = NULL;

	if (fat_vendor_list(&f->fc, &vl) == 0)
		fat_rec_free(vl);
	if (fat_statfs(&f->fc, &sf) == 0)
		fat_rec_free(sf);
	h.vendor_id = 1;
	h.address = "127.0.0.1:7101";
	h.zone = "z1";
	if (fat_vendor_hello(&f->fc, &h, &hr) == 0)
		fat_rec_free(hr);
}

static void volume_ops(struct fuzz_fat *f)
{
	Pstore__VolumeInfo *vi = NULL;
	Pstore__VolumeList *vl = NULL;
	Pstore__AllocRequest a = PSTORE__ALLOC_REQUEST__INIT;
	Pstore__AllocReply *ar = NULL;
	Pstore__ListRequest l = PSTORE__LIST_REQUEST__INIT;
	Pstore__MetaListReply *ml = NULL;
	Pstore__ChunkListReply *cl = NULL;

	if (fat_volume_get(&f->fc, "vol", &vi) == 0)
		fat_rec_free(vi);
	if (fat_volume_list(&f->fc, &vl) == 0)
		fat_rec_free(vl);
	a.volume = "vol";
	a.bytes = 4096;
	a.copies = 2;
	a.lease_ms = 1000;
	if (fat_alloc(&f->fc, &a, &ar) == 0)
		fat_rec_free(ar);
	l.volume = "vol";
	if (fat_meta_list(&f->fc, &l, &ml) == 0)
		fat_rec_free(ml);
	if (fat_chunk_list(&f->fc, &l, &cl) == 0)
		fat_rec_free(cl);
}

static void commit(struct fuzz_fat *f, const uint8_t *request_id, bool place, bool free_seeded)
{
	Pstore__CommitRequest c = PSTORE__COMMIT_REQUEST__INIT;
	Pstore__CommitReply *cr = NULL;
	Pstore__ChunkPlacement cp = PSTORE__CHUNK_PLACEMENT__INIT, *cpp = &cp;
	ProtobufCBinaryData freed = {.len = 16, .data = f->chunk_id};
	uint8_t chunk[16], rid[16];
	uint32_t vendors[2] = {1, 2};

	memset(chunk, 0xc2, sizeof(chunk));
	memset(rid, 0xe2, sizeof(rid));
	c.volume = "vol";
	c.lease_id = f->lease_id;
	if (place) {
		cp.chunk_id.data = chunk;
		cp.chunk_id.len = 16;
		cp.size = 4096;
		cp.vendors = vendors;
		cp.n_vendors = 2;
		cp.lease_id = f->lease_id;
		c.placed = &cpp;
		c.n_placed = 1;
	}
	if (free_seeded) {
		c.freed = &freed;
		c.n_freed = 1;
	}
	c.request_id.data = (uint8_t *)(request_id ? request_id : rid);
	c.request_id.len = 16;
	if (fat_commit(&f->fc, &c, &cr) == 0)
		fat_rec_free(cr);
}

static void lease_ops(struct fuzz_fat *f)
{
	Pstore__LeaseRenew r = PSTORE__LEASE_RENEW__INIT;
	Pstore__AllocReply *ar = NULL;

	r.volume = "vol";
	r.lease_id = f->lease_id;
	r.lease_ms = 30000;
	if (fat_lease_renew(&f->fc, &r, &ar) == 0)
		fat_rec_free(ar);
	commit(f, NULL, true, false);
	f->now += 120000; /* past the lease: expiry releases it */
	fat_lease_expire(&f->fc, NULL);
}

static void chunk_ops(struct fuzz_fat *f)
{
	Pstore__ListRequest l = PSTORE__LIST_REQUEST__INIT;
	Pstore__ChunkListReply *cl = NULL;
	Pstore__BadReplica b = PSTORE__BAD_REPLICA__INIT;

	l.volume = "vol";
	if (fat_chunk_list(&f->fc, &l, &cl) == 0)
		fat_rec_free(cl);
	b.volume = "vol";
	b.chunk_id.data = f->chunk_id;
	b.chunk_id.len = 16;
	b.vendor_id = 1;
	b.reason = "fuzz";
	fat_report_bad(&f->fc, &b);
	commit(f, NULL, false, true);
}

static void request_ops(struct fuzz_fat *f)
{
	commit(f, f->request_id, false, false);
	f->now += 48ull * 3600 * 1000; /* past the retention: GC drops it */
	fat_gc_requests(&f->fc, 100, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_fat *f = fuzz_fat_env();
	struct fat_key k;
	struct put_arg a = {.k = &k, .val = data + 1, .len = size - 1};
	uint8_t kind;

	if (size < 1 || data[0] > 4)
		return 0;
	kind = data[0];
	/* Every input changes the store: start each from the seeded state
	 * after a few, so that later inputs still meet a sane record set. */
	fuzz_fat_next(f);
	switch (kind) {
	case 0:
		fat_key_vendor(&k, 1);
		break;
	case 1:
		if (fat_key_volume(&k, "vol") < 0)
			abort();
		break;
	case 2:
		fat_key_lease(&k, f->lease_id);
		break;
	case 3:
		fat_key_chunk(&k, f->vol_id, f->chunk_id);
		break;
	default:
		fat_key_request(&k, f->request_id);
		break;
	}
	if (fat_store_run(f->fc.store, false, put_fn, &a) != 0)
		return 0;
	switch (kind) {
	case 0:
		vendor_ops(f);
		break;
	case 1:
		volume_ops(f);
		break;
	case 2:
		lease_ops(f);
		break;
	case 3:
		chunk_ops(f);
		break;
	default:
		request_ops(f);
		break;
	}
	return 0;
}
