/*
 * frame.c - encoding and bounds checking of frame headers (frame.h).
 */
#include <errno.h>
#include <string.h>

#include "frame.h"

void xport_frame_encode(const struct xport_frame_hdr *h, uint8_t *out)
{
	uint32_t v32[2] = {h->ctl_len, h->data_len};

	for (int i = 0; i < 4; i++)
		out[i] = (uint8_t)(XPORT_FRAME_MAGIC >> (8 * i));
	out[4] = XPORT_FRAME_VERSION & 0xff;
	out[5] = XPORT_FRAME_VERSION >> 8;
	out[6] = (uint8_t)h->type;
	out[7] = (uint8_t)(h->type >> 8);
	for (int i = 0; i < 8; i++)
		out[8 + i] = (uint8_t)(h->req_id >> (8 * i));
	for (int j = 0; j < 2; j++)
		for (int i = 0; i < 4; i++)
			out[16 + 4 * j + i] = (uint8_t)(v32[j] >> (8 * i));
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

int xport_frame_decode(const uint8_t *in, struct xport_frame_hdr *h)
{
	h->magic = rd32(in);
	h->version = (uint16_t)(in[4] | in[5] << 8);
	h->type = (uint16_t)(in[6] | in[7] << 8);
	h->req_id = (uint64_t)rd32(in + 8) | (uint64_t)rd32(in + 12) << 32;
	h->ctl_len = rd32(in + 16);
	h->data_len = rd32(in + 20);
	if (h->magic != XPORT_FRAME_MAGIC || h->version != XPORT_FRAME_VERSION || h->type == 0)
		return -EPROTO;
	if (h->ctl_len > XPORT_MAX_CTL || h->data_len > XPORT_MAX_DATA)
		return -EMSGSIZE;
	return 0;
}
