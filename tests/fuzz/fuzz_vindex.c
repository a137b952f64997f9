/*
 * fuzz_vindex.c - records of a vendor's piece index (src/proto/vindex.proto,
 * src/vendor/index.c) as if the index file were corrupted or forged: the
 * fuzzed bytes are decoded as the index decodes them, and a VChunk that
 * decodes is recorded for a chunk id and then read back, read in part and
 * deleted by the piece store (src/vendor/store.c), which must refuse
 * inconsistent pieces, sizes and devices without touching anything outside
 * its device directories.
 *
 * Input: byte 0 picks the record (0 VChunk, 1 VLease, 2 VStats, 3 VReceipt,
 * 4 VDeviceTable); the rest is the record.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_vendor_env.h"

static const ProtobufCMessageDescriptor *const descs[] = {
    &pstore__vchunk__descriptor,	&pstore__vlease__descriptor,
    &pstore__vstats__descriptor,	&pstore__vreceipt__descriptor,
    &pstore__vdevice_table__descriptor,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	fuzz_vendor_env();
	return 0;
}

static void use_chunk(struct vendord *vd, const Pstore__VChunk *rec)
{
	static const uint8_t id[CHUNK_ID_LEN] = {0xf0, 0x22, 0xf0, 0x22};
	struct vindex_commit c = {0};
	uint8_t hdr[CHUNK_HDR_LEN], *buf = NULL;
	size_t n = 0;
	uint64_t stored_len = 0;
	Pstore__VChunk *back = NULL;

	if (vindex_chunk_commit(vstore_index(vd->store), id, rec, &c) < 0)
		return;
	if (vindex_chunk_get(vstore_index(vd->store), id, &back) == 0)
		pstore__vchunk__free_unpacked(back, NULL);
	if (vstore_read(vd->store, id,
			rec->owner.data && rec->owner.len == CHUNK_OWNER_LEN ? rec->owner.data
									     : NULL,
			0, 0, CHUNK_HDR_LEN, hdr, &buf, &n, &stored_len) == 0)
		free(buf);
	buf = NULL;
	if (vstore_read(vd->store, id, NULL, rec->stored_len / 3, 17, 0, hdr, &buf, &n,
			&stored_len) == 0)
		free(buf);
	vstore_delete(vd->store, id);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vendord *vd = fuzz_vendor_env();
	ProtobufCMessage *m;
	uint8_t *copy, *re;
	size_t len;

	if (size < 1 || data[0] >= sizeof(descs) / sizeof(descs[0]))
		return 0;
	copy = malloc(size - 1 ? size - 1 : 1);
	if (!copy)
		return 0;
	memcpy(copy, data + 1, size - 1);
	m = protobuf_c_message_unpack(descs[data[0]], NULL, size - 1, copy);
	free(copy);
	if (!m)
		return 0;
	/* What decodes must pack again (the index rewrites records). */
	len = protobuf_c_message_get_packed_size(m);
	re = malloc(len ? len : 1);
	if (re && protobuf_c_message_pack(m, re) != len)
		abort();
	free(re);
	if (data[0] == 0)
		use_chunk(vd, (const Pstore__VChunk *)m);
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
