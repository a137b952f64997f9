/*
 * test_vendor_store.c - the vendor's piece store on real directories and a
 * real LMDB index: split and reassembly, byte ranges, idempotent resends,
 * corrupt uploads, lease byte limits, deletion, and recovery after a
 * simulated crash (orphan pieces and temporary files left behind).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <lmdb.h>

#include "common.h"
#include "vendor.h"

struct fx {
	char root[256];
	char devs[VENDOR_MAX_DEVICES][VENDOR_PATH_MAX];
	size_t ndev;
	char index[VENDOR_PATH_MAX];
	struct vendor_store *st;
};

struct chunk {
	struct chunk_hdr h;
	uint8_t hb[CHUNK_HDR_LEN];
	uint8_t *payload;
};

static const uint8_t OWNER[CHUNK_OWNER_LEN] = {1, 2,  3,  4,  5,  6,  7,  8,
					       9, 10, 11, 12, 13, 14, 15, 16};

static void chunk_make(struct chunk *c, size_t len, unsigned pieces)
{
	memset(&c->h, 0, sizeof(c->h));
	c->h.magic = CHUNK_HDR_MAGIC;
	c->h.version = CHUNK_HDR_VERSION;
	chunk_id_new(c->h.chunk_id);
	memcpy(c->h.owner, OWNER, CHUNK_OWNER_LEN);
	c->h.lease_id = 77;
	c->h.vendor_id = 1;
	c->h.chain_len = 1;
	c->h.chain[0] = 1;
	c->h.pieces = (uint8_t)pieces;
	c->h.raw_len = (uint32_t)len;
	c->h.stored_len = (uint32_t)len;
	c->payload = malloc(len ? len : 1);
	random_fill(c->payload, len);
	chunk_digest(c->payload, len, c->h.digest);
	chunk_hdr_encode(&c->h, c->hb);
}

static int put(struct fx *f, struct chunk *c, uint64_t limit)
{
	struct vstore_put p = {.hdr = &c->h,
			       .hdr_bytes = c->hb,
			       .payload = c->payload,
			       .byte_limit = limit,
			       .lease_expiry = wall_ms() + 60000};

	return vstore_put(f->st, &p);
}

static int setup_n(void **state, size_t ndev)
{
	struct fx *f = calloc(1, sizeof(*f));

	snprintf(f->root, sizeof(f->root), "/tmp/pstore-vtest-XXXXXX");
	assert_non_null(mkdtemp(f->root));
	f->ndev = ndev;
	for (size_t i = 0; i < ndev; i++)
		snprintf(f->devs[i], VENDOR_PATH_MAX, "%s/dev%zu", f->root, i);
	snprintf(f->index, sizeof(f->index), "%s/index", f->root);
	assert_int_equal(vstore_open(f->devs, ndev, 0, f->index, &f->st), 0);
	*state = f;
	return 0;
}

static int setup4(void **state)
{
	return setup_n(state, 4);
}
static int setup2(void **state)
{
	return setup_n(state, 2);
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[300];

	vstore_close(f->st);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->root);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void read_check(struct fx *f, struct chunk *c, uint64_t off, uint64_t len)
{
	uint8_t hdr[CHUNK_HDR_LEN], *buf = NULL;
	size_t n = 0;
	uint64_t sl = 0,
		 want = len == 0 || off + len > c->h.stored_len ? c->h.stored_len - off : len;

	assert_int_equal(
	    vstore_read(f->st, c->h.chunk_id, OWNER, off, len, 7, hdr, &buf, &n, &sl), 0);
	assert_int_equal(sl, c->h.stored_len);
	assert_int_equal(n, want);
	if (n)
		assert_memory_equal(buf + 7, c->payload + off, n);
	assert_memory_equal(hdr, c->hb, CHUNK_HDR_LEN);
	free(buf);
}

static bool exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0;
}

static void test_split_and_reassemble(void **state)
{
	struct fx *f = *state;
	struct chunk c;
	Pstore__VChunk *rec;
	uint32_t seen = 0;

	chunk_make(&c, 1000003, 3);
	assert_int_equal(put(f, &c, 0), 0);
	assert_int_equal(vindex_chunk_get(vstore_index(f->st), c.h.chunk_id, &rec), 0);
	assert_int_equal(rec->n_pieces, 3);
	for (size_t i = 0; i < rec->n_pieces; i++) {
		char path[VENDOR_PATH_MAX + 64];
		struct vendor_device d = {.id = rec->pieces[i]->device};
		struct stat st;

		/* 4 devices >= 3 pieces: all on distinct devices */
		assert_false(seen & (1u << rec->pieces[i]->device));
		seen |= 1u << rec->pieces[i]->device;
		snprintf(d.path, sizeof(d.path), "%s", f->devs[rec->pieces[i]->device]);
		assert_int_equal(
		    vdev_piece_path(&d, c.h.chunk_id, (unsigned)i, path, sizeof(path)), 0);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal((uint64_t)st.st_size, rec->pieces[i]->length);
	}
	assert_int_equal(
	    rec->pieces[0]->length + rec->pieces[1]->length + rec->pieces[2]->length, 1000003);
	pstore__vchunk__free_unpacked(rec, NULL);
	read_check(f, &c, 0, 0);
	free(c.payload);
}

static void test_more_pieces_than_devices(void **state)
{
	struct fx *f = *state; /* 2 devices */
	struct chunk c;
	Pstore__VChunk *rec;

	chunk_make(&c, 5000, 5);
	assert_int_equal(put(f, &c, 0), 0);
	assert_int_equal(vindex_chunk_get(vstore_index(f->st), c.h.chunk_id, &rec), 0);
	assert_int_equal(rec->n_pieces, 5);
	for (size_t i = 1; i < rec->n_pieces; i++)
		assert_int_not_equal(rec->pieces[i]->device, rec->pieces[i - 1]->device);
	pstore__vchunk__free_unpacked(rec, NULL);
	read_check(f, &c, 0, 0);
	free(c.payload);
}

static void test_ranges(void **state)
{
	struct fx *f = *state;
	struct chunk c;
	uint8_t hdr[CHUNK_HDR_LEN], *buf = NULL;
	size_t n;
	uint64_t sl;
	static const uint64_t r[][2] = {{0, 1},	  {1, 99},   {333, 334}, {332, 2},  {999, 1},
					{500, 0}, {0, 1000}, {10, 5000}, {1000, 0}, {998, 100}};

	chunk_make(&c, 1000, 3); /* pieces 334, 333, 333 */
	assert_int_equal(put(f, &c, 0), 0);
	for (size_t i = 0; i < ARRAY_SIZE(r); i++)
		read_check(f, &c, r[i][0], r[i][1]);
	assert_int_equal(
	    vstore_read(f->st, c.h.chunk_id, OWNER, 1001, 0, 0, hdr, &buf, &n, &sl), -ERANGE);
	/* Another owner does not learn that the chunk exists. */
	{
		uint8_t other[CHUNK_OWNER_LEN] = {9};

		assert_int_equal(
		    vstore_read(f->st, c.h.chunk_id, other, 0, 0, 0, hdr, &buf, &n, &sl),
		    -ENOENT);
	}
	free(c.payload);
}

static void test_empty_chunk(void **state)
{
	struct fx *f = *state;
	struct chunk c;

	chunk_make(&c, 0, 2);
	assert_int_equal(put(f, &c, 0), 0);
	read_check(f, &c, 0, 0);
	free(c.payload);
}

static void test_idempotent_and_conflict(void **state)
{
	struct fx *f = *state;
	struct chunk c, d;
	Pstore__VStats s;
	uint64_t lb;

	chunk_make(&c, 4096, 2);
	assert_int_equal(put(f, &c, 10000), 0);
	assert_int_equal(put(f, &c, 10000), 1); /* resend: stored already */
	assert_int_equal(vindex_lease_bytes(vstore_index(f->st), OWNER, 77, &lb), 0);
	assert_int_equal(lb, 4096); /* not counted twice */
	assert_int_equal(vindex_stats(vstore_index(f->st), &s), 0);
	assert_int_equal(s.chunks, 1);
	assert_int_equal(s.bytes_stored, 4096);
	assert_int_equal(s.bytes_from_clients, 8192); /* both were received */
	/* Same id, other content. */
	chunk_make(&d, 4096, 2);
	memcpy(d.h.chunk_id, c.h.chunk_id, CHUNK_ID_LEN);
	chunk_hdr_encode(&d.h, d.hb);
	assert_int_equal(put(f, &d, 0), -EEXIST);
	read_check(f, &c, 0, 0);
	free(c.payload);
	free(d.payload);
}

/* Chunks are keyed by id alone: another volume can neither claim a stored
 * chunk by resending it (same digest) nor have it deleted. */
static void test_other_owner(void **state)
{
	static const uint8_t OTHER[CHUNK_OWNER_LEN] = {9, 9, 9, 9, 9, 9, 9, 9,
						       9, 9, 9, 9, 9, 9, 9, 9};
	struct fx *f = *state;
	struct chunk c, d;

	chunk_make(&c, 2048, 2);
	assert_int_equal(put(f, &c, 10000), 0);
	d = c;
	memcpy(d.h.owner, OTHER, CHUNK_OWNER_LEN);
	chunk_hdr_encode(&d.h, d.hb);
	assert_int_equal(put(f, &d, 10000), -EEXIST); /* same id and digest, other owner */
	assert_int_equal(vstore_delete_owned(f->st, c.h.chunk_id, OTHER), -EPERM);
	read_check(f, &c, 0, 0);
	assert_int_equal(vstore_delete_owned(f->st, c.h.chunk_id, OWNER), 0);
	assert_int_equal(vstore_delete_owned(f->st, c.h.chunk_id, OWNER), -ENOENT);
	free(c.payload);
}

/* Receipts are counted per stored chunk of the reader's volume: receipts
 * for unknown chunks or another volume's take no space, and a chunk's
 * counters leave with it. */
static void test_receipts_bounded(void **state)
{
	static const uint8_t OTHER[CHUNK_OWNER_LEN] = {9};
	struct fx *f = *state;
	struct vendor_index *ix = vstore_index(f->st);
	Pstore__Receipt r[3], *rp[3];
	Pstore__VReceiptAgg *agg = NULL;
	uint8_t unknown[CHUNK_ID_LEN];
	struct chunk c;
	Pstore__VStats s;
	size_t rec;

	chunk_make(&c, 1000, 1);
	assert_int_equal(put(f, &c, 0), 0);
	chunk_id_new(unknown);
	for (int i = 0; i < 3; i++) {
		pstore__receipt__init(&r[i]);
		r[i].chunk_id.data = c.h.chunk_id;
		r[i].chunk_id.len = CHUNK_ID_LEN;
		r[i].bytes = 1000;
		r[i].ok = true;
		rp[i] = &r[i];
	}
	r[1].chunk_id.data = unknown;
	assert_int_equal(vindex_receipts_add(ix, rp, 3, "client:a", OWNER, &rec), 0);
	assert_int_equal(rec, 2);
	assert_int_equal(vindex_receipts_add(ix, rp, 3, "client:b", OTHER, &rec), 0);
	assert_int_equal(rec, 0);
	assert_int_equal(vindex_receipts_get(ix, unknown, &agg), -ENOENT);
	for (int k = 0; k < 200; k++)
		assert_int_equal(vindex_receipts_add(ix, rp, 1, "client:a", OWNER, &rec), 0);
	assert_int_equal(vindex_receipts_get(ix, c.h.chunk_id, &agg), 0);
	assert_int_equal(agg->ok, 202);
	assert_int_equal(agg->bytes, 202000);
	assert_string_equal(agg->last_peer, "client:a");
	pstore__vreceipt_agg__free_unpacked(agg, NULL);
	assert_int_equal(vindex_stats(ix, &s), 0);
	assert_int_equal(s.receipts, 202);
	assert_int_equal(vstore_delete(f->st, c.h.chunk_id), 0);
	assert_int_equal(vindex_receipts_get(ix, c.h.chunk_id, &agg), -ENOENT);
	free(c.payload);
}

static void test_corrupt_upload_rejected(void **state)
{
	struct fx *f = *state;
	struct chunk c;
	Pstore__VChunk *rec;

	chunk_make(&c, 8192, 2);
	c.payload[100] ^= 1;
	assert_int_equal(put(f, &c, 0), -EBADMSG);
	assert_int_equal(vindex_chunk_get(vstore_index(f->st), c.h.chunk_id, &rec), -ENOENT);
	free(c.payload);
}

static void test_lease_byte_limit(void **state)
{
	struct fx *f = *state;
	struct chunk a, b, c;

	chunk_make(&a, 600, 1);
	chunk_make(&b, 400, 1);
	chunk_make(&c, 1, 1);
	assert_int_equal(put(f, &a, 1000), 0);
	assert_int_equal(put(f, &b, 1000), 0);
	assert_int_equal(put(f, &c, 1000), -E2BIG);
	free(a.payload);
	free(b.payload);
	free(c.payload);
}

static void test_delete(void **state)
{
	struct fx *f = *state;
	struct chunk c;
	uint8_t hdr[CHUNK_HDR_LEN], *buf = NULL;
	size_t n;
	uint64_t sl;
	Pstore__VStats s;
	char path[VENDOR_PATH_MAX + 64];
	struct vendor_device d = {0};

	chunk_make(&c, 3000, 4);
	assert_int_equal(put(f, &c, 0), 0);
	assert_int_equal(vstore_delete(f->st, c.h.chunk_id), 0);
	assert_int_equal(vstore_read(f->st, c.h.chunk_id, OWNER, 0, 0, 0, hdr, &buf, &n, &sl),
			 -ENOENT);
	for (size_t dv = 0; dv < f->ndev; dv++)
		for (unsigned i = 0; i < 4; i++) {
			snprintf(d.path, sizeof(d.path), "%s", f->devs[dv]);
			vdev_piece_path(&d, c.h.chunk_id, i, path, sizeof(path));
			assert_false(exists(path));
		}
	assert_int_equal(vstore_delete(f->st, c.h.chunk_id), -ENOENT);
	assert_int_equal(vindex_stats(vstore_index(f->st), &s), 0);
	assert_int_equal(s.chunks, 0);
	assert_int_equal(s.bytes_stored, 0);
	free(c.payload);
}

static void write_file(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);

	assert_true(fd >= 0);
	assert_int_equal(write_full(fd, s, strlen(s)), 0);
	close(fd);
}

static void test_orphans_removed_after_crash(void **state)
{
	struct fx *f = *state;
	struct chunk kept, lost;
	char p0[VENDOR_PATH_MAX + 64], p1[VENDOR_PATH_MAX + 64], tmp[VENDOR_PATH_MAX + 80];
	char foreign[VENDOR_PATH_MAX + 64];
	struct vendor_device d0 = {0}, d1 = {0};
	unsigned removed;

	chunk_make(&kept, 10000, 2);
	assert_int_equal(put(f, &kept, 0), 0);
	/* What a kill -9 between the piece writes and the index commit leaves:
	 * renamed pieces without a record, and a temporary file. */
	chunk_make(&lost, 10000, 2);
	snprintf(d0.path, sizeof(d0.path), "%s", f->devs[0]);
	snprintf(d1.path, sizeof(d1.path), "%s", f->devs[1]);
	vdev_piece_path(&d0, lost.h.chunk_id, 0, p0, sizeof(p0));
	vdev_piece_path(&d1, lost.h.chunk_id, 1, p1, sizeof(p1));
	snprintf(tmp, sizeof(tmp), "%s.tmp", p1);
	*strrchr(p0, '/') = '\0';
	mkdir(p0, 0750);
	vdev_piece_path(&d0, lost.h.chunk_id, 0, p0, sizeof(p0));
	*strrchr(p1, '/') = '\0';
	mkdir(p1, 0750);
	vdev_piece_path(&d1, lost.h.chunk_id, 1, p1, sizeof(p1));
	write_file(p0, "half a chunk");
	write_file(tmp, "unfinished");
	/* A file that is not ours stays. */
	snprintf(foreign, sizeof(foreign), "%s/README", f->devs[0]);
	write_file(foreign, "operator's note");

	vstore_close(f->st);
	f->st = NULL;
	assert_int_equal(vstore_open(f->devs, f->ndev, 0, f->index, &f->st), 0);
	assert_false(exists(p0));
	assert_false(exists(tmp));
	assert_true(exists(foreign));
	read_check(f, &kept, 0, 0);
	assert_int_equal(vstore_recover(f->st, &removed), 0);
	assert_int_equal(removed, 0);
	free(kept.payload);
	free(lost.payload);
}

/* Recovery removes a piece only when its chunk has no record: a record
 * that cannot be read (here: one that does not decode) keeps its pieces. */
static void test_recovery_keeps_pieces_of_unreadable_records(void **state)
{
	struct fx *f = *state;
	struct chunk c;
	char p0[VENDOR_PATH_MAX + 64];
	struct vendor_device d = {0};
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, v;
	Pstore__VChunk *rec;
	bool found = false;

	chunk_make(&c, 5000, 1);
	assert_int_equal(put(f, &c, 0), 0);
	assert_int_equal(vindex_chunk_get(vstore_index(f->st), c.h.chunk_id, &rec), 0);
	for (size_t i = 0; i < f->ndev; i++) {
		snprintf(d.path, sizeof(d.path), "%s", f->devs[i]);
		vdev_piece_path(&d, c.h.chunk_id, 0, p0, sizeof(p0));
		if (exists(p0)) {
			found = true;
			break;
		}
	}
	pstore__vchunk__free_unpacked(rec, NULL);
	assert_true(found);
	vstore_close(f->st);
	f->st = NULL;

	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 8);
	mdb_env_set_mapsize(env, 8ull << 30);
	assert_int_equal(mdb_env_open(env, f->index, MDB_NOTLS, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "chunks", 0, &dbi), 0);
	k.mv_size = CHUNK_ID_LEN;
	k.mv_data = c.h.chunk_id;
	v.mv_size = 5;
	v.mv_data = "\xff\xff\xff\xff\xff";
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);

	assert_int_equal(vstore_open(f->devs, f->ndev, 0, f->index, &f->st), 0);
	assert_true(exists(p0));
	free(c.payload);
}

static void test_corrupt_piece_on_disk(void **state)
{
	struct fx *f = *state;
	struct chunk c;
	Pstore__VChunk *rec;
	char path[VENDOR_PATH_MAX + 64];
	struct vendor_device d = {0};
	uint8_t hdr[CHUNK_HDR_LEN], *buf = NULL;
	size_t n;
	uint64_t sl;
	int fd;

	chunk_make(&c, 5000, 2);
	assert_int_equal(put(f, &c, 0), 0);
	assert_int_equal(vindex_chunk_get(vstore_index(f->st), c.h.chunk_id, &rec), 0);
	snprintf(d.path, sizeof(d.path), "%s", f->devs[rec->pieces[1]->device]);
	vdev_piece_path(&d, c.h.chunk_id, 1, path, sizeof(path));
	pstore__vchunk__free_unpacked(rec, NULL);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite_full(fd, "X", 1, 10), 0);
	close(fd);
	assert_int_equal(vstore_read(f->st, c.h.chunk_id, OWNER, 0, 0, 0, hdr, &buf, &n, &sl),
			 -EIO);
	free(c.payload);
}

static void test_placement(void **state)
{
	uint64_t freeb[3] = {100, 0, 100}, len[2] = {50, 50};
	unsigned dev[2];

	(void)state;
	/* device 1 is full: placements touching it are skipped */
	assert_int_equal(vdev_place(freeb, 3, 0, len, 2, dev), 0);
	assert_int_equal(dev[0], 2);
	assert_int_equal(dev[1], 0);
	freeb[0] = freeb[2] = 10;
	assert_int_equal(vdev_place(freeb, 3, 0, len, 2, dev), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_split_and_reassemble, setup4, teardown),
	    cmocka_unit_test_setup_teardown(test_more_pieces_than_devices, setup2, teardown),
	    cmocka_unit_test_setup_teardown(test_ranges, setup4, teardown),
	    cmocka_unit_test_setup_teardown(test_empty_chunk, setup2, teardown),
	    cmocka_unit_test_setup_teardown(test_idempotent_and_conflict, setup2, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_upload_rejected, setup2, teardown),
	    cmocka_unit_test_setup_teardown(test_other_owner, setup2, teardown),
	    cmocka_unit_test_setup_teardown(test_receipts_bounded, setup2, teardown),
	    cmocka_unit_test_setup_teardown(test_lease_byte_limit, setup2, teardown),
	    cmocka_unit_test_setup_teardown(test_delete, setup4, teardown),
	    cmocka_unit_test_setup_teardown(test_orphans_removed_after_crash, setup2, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_piece_on_disk, setup2, teardown),
	    cmocka_unit_test_setup_teardown(test_recovery_keeps_pieces_of_unreadable_records,
					    setup2, teardown),
	    cmocka_unit_test(test_placement),
	};

	log_init("test_vendor_store", LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
