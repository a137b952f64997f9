/*
 * fuzz_vendor_env.c - the vendor of the vendord fuzz targets
 * (fuzz_vendor_env.h).  One chunk (fuzz_stored_id) is stored at start so
 * that gets and resends find something.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fuzz_common.h"
#include "fuzz_vendor_env.h"

static struct vendor_config cfg;
static struct vendord vd;
static bool ready;

static void store_seed_chunk(void)
{
	static const char payload[] = "a chunk the fuzzer finds already stored";
	struct chunk_hdr h = {0};
	uint8_t hb[CHUNK_HDR_LEN];
	struct vstore_put p = {0};
	int rc;

	h.flags = 0;
	memcpy(h.chunk_id, fuzz_stored_id, CHUNK_ID_LEN);
	memcpy(h.owner, fuzz_owner, CHUNK_OWNER_LEN);
	h.lease_id = FUZZ_LEASE_ID;
	h.vendor_id = FUZZ_VENDOR_ID;
	h.chain_len = 1;
	h.pieces = 3;
	h.chain[0] = FUZZ_VENDOR_ID;
	h.raw_len = h.stored_len = sizeof(payload);
	chunk_digest(payload, sizeof(payload), h.digest);
	chunk_hdr_encode(&h, hb);
	p.hdr = &h;
	p.hdr_bytes = hb;
	p.payload = (const uint8_t *)payload;
	rc = vstore_put(vd.store, &p);
	if (rc < 0) {
		fprintf(stderr, "fuzz: storing the seed chunk: %s\n", strerror(-rc));
		abort();
	}
}

struct vendord *fuzz_vendor_env(void)
{
	char index[VENDOR_PATH_MAX];
	uint8_t pub[32];
	int rc;

	if (ready)
		return &vd;
	cfg.id = FUZZ_VENDOR_ID;
	snprintf(cfg.listen, sizeof(cfg.listen), "127.0.0.1:7101");
	snprintf(cfg.address, sizeof(cfg.address), "127.0.0.1:7101");
	fuzz_path(cfg.devices[0], VENDOR_PATH_MAX, "d0");
	fuzz_path(cfg.devices[1], VENDOR_PATH_MAX, "d1");
	cfg.n_devices = 2;
	fuzz_path(index, sizeof(index), "index");
	for (size_t i = 0; i < cfg.n_devices; i++)
		if (mkdir_p(cfg.devices[i], 0700) < 0)
			abort();
	rc = vstore_open(cfg.devices, cfg.n_devices, 0, index, &vd.store);
	if (rc < 0) {
		fprintf(stderr, "fuzz: vstore_open: %s\n", strerror(-rc));
		abort();
	}
	vd.cfg = &cfg;
	vd.workers = vworkq_new("fuzz-disk", 1, 64);
	vd.forwarders = vworkq_new("fuzz-fwd", 1, 64);
	if (!vd.workers || !vd.forwarders)
		abort();
	pthread_rwlock_init(&vd.key_lock, NULL);
	if (cap_key_public(fuzz_key(), pub) < 0 || vendord_set_fat_key(&vd, pub, 32) < 0)
		abort();
	store_seed_chunk();
	ready = true;
	return &vd;
}
