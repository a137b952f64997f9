/*
 * fuzz_fat_env.c - the seeded FAT context of the fatd fuzz targets
 * (fuzz_fat_env.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fuzz_common.h"
#include "fuzz_fat_env.h"

static struct fuzz_fat env;
static char store_dir[512], template_file[600];

static uint64_t fake_clock(void)
{
	return env.now;
}

static void must(int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "fuzz: seeding the FAT store: %s: %s (%s)\n", what,
			strerror(rc < 0 ? -rc : rc), env.fc.err);
		abort();
	}
}

static void copy_file(const char *from, const char *to)
{
	char *buf = NULL;
	size_t len = 0;

	must(read_file(from, 1u << 30, &buf, &len), "read store file");
	fuzz_write_file(to, buf, len);
	free(buf);
}

static void hello(uint32_t id)
{
	Pstore__VendorHello h = PSTORE__VENDOR_HELLO__INIT;
	Pstore__DeviceInfo d = PSTORE__DEVICE_INFO__INIT, *dp = &d;
	Pstore__VendorHelloReply *r = NULL;
	char addr[32];

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", 7100 + id);
	h.vendor_id = id;
	h.address = addr;
	h.zone = id == 3 ? "z2" : "z1";
	d.path = "/srv/d0";
	d.capacity = d.free = 1ull << 30;
	h.devices = &dp;
	h.n_devices = 1;
	must(fat_vendor_hello(&env.fc, &h, &r), "hello");
	fat_rec_free(r);
}

static void seed(void)
{
	Pstore__VolumeInfo vreq = PSTORE__VOLUME_INFO__INIT, *vi = NULL;
	Pstore__AllocRequest areq = PSTORE__ALLOC_REQUEST__INIT;
	Pstore__AllocReply *ar = NULL;
	Pstore__CommitRequest creq = PSTORE__COMMIT_REQUEST__INIT;
	Pstore__CommitReply *cr = NULL;
	Pstore__ChunkPlacement cp = PSTORE__CHUNK_PLACEMENT__INIT, *cpp = &cp;
	Pstore__MetaOp mo = PSTORE__META_OP__INIT, *mop = &mo;
	uint32_t vendors[2];
	uint8_t key[9] = {'i', 0, 0, 0, 0, 0, 0, 0, 1}, val[8] = {1};

	for (uint32_t id = 1; id <= 3; id++)
		hello(id);
	vreq.name = "vol";
	vreq.copies = 2;
	must(fat_volume_create(&env.fc, &vreq, &vi), "volume create");
	if (vi->id.len != FAT_VOLUME_ID_LEN)
		abort();
	memcpy(env.vol_id, vi->id.data, FAT_VOLUME_ID_LEN);
	fat_rec_free(vi);

	areq.volume = "vol";
	areq.bytes = 1u << 20;
	areq.copies = 2;
	areq.lease_ms = 60000;
	must(fat_alloc(&env.fc, &areq, &ar), "alloc");
	if (ar->n_candidates < 2)
		abort();
	env.lease_id = ar->lease_id;
	vendors[0] = ar->candidates[0]->vendor_id;
	vendors[1] = ar->candidates[1]->vendor_id;
	fat_rec_free(ar);

	memset(env.chunk_id, 0xc1, sizeof(env.chunk_id));
	memset(env.request_id, 0xe1, sizeof(env.request_id));
	cp.chunk_id.data = env.chunk_id;
	cp.chunk_id.len = 16;
	cp.size = 4096;
	cp.vendors = vendors;
	cp.n_vendors = 2;
	cp.lease_id = env.lease_id;
	mo.key.data = key;
	mo.key.len = sizeof(key);
	mo.value.data = val;
	mo.value.len = sizeof(val);
	creq.volume = "vol";
	creq.lease_id = env.lease_id;
	creq.placed = &cpp;
	creq.n_placed = 1;
	creq.meta = &mop;
	creq.n_meta = 1;
	creq.request_id.data = env.request_id;
	creq.request_id.len = 16;
	must(fat_commit(&env.fc, &creq, &cr), "commit");
	fat_rec_free(cr);
}

static void open_store(void)
{
	struct fat_store *s;

	must(fat_store_open_lmdb(store_dir, 256u << 20, &s), "open store");
	env.fc.store = s;
}

struct fuzz_fat *fuzz_fat_env(void)
{
	char path[600];

	if (env.fc.key)
		return &env;
	fuzz_path(store_dir, sizeof(store_dir), "fat");
	fuzz_path(template_file, sizeof(template_file), "fat-seeded.mdb");
	must(mkdir_p(store_dir, 0700), "mkdir");
	must(fat_ctx_init(&env.fc, NULL, fuzz_key()), "ctx init");
	env.fc.clock = fake_clock;
	env.now = FUZZ_FAT_T0;
	open_store();
	seed();
	fat_store_close(env.fc.store);
	snprintf(path, sizeof(path), "%s/data.mdb", store_dir);
	copy_file(path, template_file);
	open_store();
	return &env;
}

void fuzz_fat_next(struct fuzz_fat *f)
{
	char path[600];

	if (++f->inputs < FUZZ_FAT_RESET)
		return;
	f->inputs = 0;
	fat_store_close(f->fc.store);
	snprintf(path, sizeof(path), "%s/data.mdb", store_dir);
	copy_file(template_file, path);
	open_store();
	f->now = FUZZ_FAT_T0;
	f->fc.gc_have_cursor = false;
}
