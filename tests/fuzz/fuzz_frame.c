/*
 * fuzz_frame.c - the frame header decoder (src/transport/frame.c), as the
 * server and client loops call it on the first 24 bytes of every frame.
 * Accepted headers must respect the bounds and re-encode to the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xport_frame_hdr h;
	uint8_t in[XPORT_FRAME_HDR_LEN], out[XPORT_FRAME_HDR_LEN];

	if (size < XPORT_FRAME_HDR_LEN)
		return 0;
	/* An exact-size copy: ASan catches any read past the header. */
	memcpy(in, data, sizeof(in));
	if (xport_frame_decode(in, &h) != 0)
		return 0;
	if (h.magic != XPORT_FRAME_MAGIC || h.version != XPORT_FRAME_VERSION || h.type == 0 ||
	    h.ctl_len > XPORT_MAX_CTL || h.data_len > XPORT_MAX_DATA)
		abort();
	xport_frame_encode(&h, out);
	if (memcmp(in, out, sizeof(in)) != 0)
		abort();
	return 0;
}
