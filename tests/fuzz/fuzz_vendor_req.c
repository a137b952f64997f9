/*
 * fuzz_vendor_req.c - every request pstore-vendord serves, handled as the
 * daemon handles a frame: vserver_handle sorts it, a worker thread runs the
 * handler (put: peer, chunk header, chain, capability token, lease byte
 * count and digest checks, then the durable store and the forward down the
 * chain; get: ranged reads; receipts), and the reply is packed as the
 * transport packs it.  Forwards fail at once (no network), as if the next
 * vendor were down.
 *
 * Input: byte 0 picks the frame type, byte 1 the peer certificate name,
 * bytes 2-3 the control part's length (little-endian, clipped to what is
 * left); then the control part, then the data part.  The seed corpus has a
 * put with a valid token and chain, gets of the stored chunk, receipts and
 * a ping.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_vendor_env.h"
#include "msgtype.h"
#include "xport.h"

static const uint16_t types[] = {MSG_CHUNK_PUT, MSG_CHUNK_GET, MSG_RECEIPTS,
				 MSG_PING,	MSG_ALLOC,     MSG_ERROR};
static const char *const peers[] = {"client:alice", "vendor:2", "vendor:1", "admin:root",
				    "fat:1",	    "nocolon",	":x"};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	fuzz_vendor_env();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vendord *vd = fuzz_vendor_env();
	struct xport_req *req;
	size_t ctl_len;
	uint16_t type;

	if (size < 4)
		return 0;
	type = data[0] < sizeof(types) / sizeof(types[0]) ? types[data[0]] : data[0];
	ctl_len = (size_t)(data[2] | data[3] << 8);
	if (ctl_len > size - 4)
		ctl_len = size - 4;
	req = fuzz_req_new(type, peers[data[1] % (sizeof(peers) / sizeof(peers[0]))], data + 4,
			   ctl_len, data + 4 + ctl_len, size - 4 - ctl_len);
	vserver_handle(req, vd);
	fuzz_req_wait();
	return 0;
}
