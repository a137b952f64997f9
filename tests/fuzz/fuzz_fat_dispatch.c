/*
 * fuzz_fat_dispatch.c - every control message pstore-fatd receives, handled
 * exactly as the daemon handles a frame: fat_dispatch (type check, protobuf
 * unpack, authorization by the peer's certificate name, the FAT logic on a
 * real LMDB store, the reply packed as the transport packs it).
 *
 * Input: byte 0 picks the frame type, byte 1 the peer certificate name,
 * byte 2 how far the fake clock moves (seconds; bit 7 also runs lease expiry
 * and the applied-commit GC, as fatd's timers do); the rest is the control
 * part of the frame.  The seed corpus has one valid message of each type.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_fat_env.h"
#include "msgtype.h"
#include "xport.h"

static const uint16_t types[] = {
    MSG_VENDOR_REGISTER, MSG_VENDOR_HEARTBEAT, MSG_VOLUME_CREATE,
    MSG_VOLUME_GET,	 MSG_VOLUME_LIST,      MSG_ALLOC,
    MSG_LEASE_RENEW,	 MSG_COMMIT,	       MSG_META_LIST,
    MSG_CHUNK_LIST,	 MSG_VENDOR_LIST,      MSG_STATFS,
    MSG_REPORT_BAD,	 MSG_FAT_STATUS,       MSG_CHUNK_PUT,
    MSG_ERROR,
};

static const char *const peers[] = {
    "client:alice", "admin:root", "vendor:1", "vendor:2", "vendor:3",
    "vendor:9",	    "fat:1",	  "vendor:x", "nocolon",  ":",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	fuzz_fat_env();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_fat *f = fuzz_fat_env();
	struct xport_req *req;
	uint16_t type;

	if (size < 3)
		return 0;
	fuzz_fat_next(f);
	type = data[0] < sizeof(types) / sizeof(types[0]) ? types[data[0]] : data[0];
	req = fuzz_req_new(type, peers[data[1] % (sizeof(peers) / sizeof(peers[0]))], data + 3,
			   size - 3, NULL, 0);
	f->now += (uint64_t)(data[2] & 0x7f) * 1000;
	fat_dispatch(req, &f->fc);
	fuzz_req_wait();
	if (data[2] & 0x80) {
		fat_lease_expire(&f->fc, NULL);
		fat_gc_requests(&f->fc, 100, NULL);
	}
	return 0;
}
