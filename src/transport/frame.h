/*
 * frame.h - the one place where pstore's frame layout is defined.
 *
 * A frame is a fixed 24-byte header (little-endian) followed by ctl_len bytes
 * of a protobuf-c control message and data_len bytes of raw data.  Both
 * lengths are bounded; a frame breaking a bound closes the connection.
 */
#ifndef PSTORE_FRAME_H
#define PSTORE_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define XPORT_FRAME_MAGIC 0x46545350u /* "PSTF" */
#define XPORT_FRAME_VERSION 1
#define XPORT_FRAME_HDR_LEN 24
#define XPORT_MAX_CTL (8u << 20)   /* largest control message */
#define XPORT_MAX_DATA (20u << 20) /* largest raw data part (a chunk + header) */
#define XPORT_REPLY_BIT 0x8000u

struct xport_frame_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint64_t req_id;
	uint32_t ctl_len;
	uint32_t data_len;
};

/* Encodes h into out[XPORT_FRAME_HDR_LEN]. */
void xport_frame_encode(const struct xport_frame_hdr *h, uint8_t *out);
/* Decodes and checks magic, version and bounds: 0, or -EPROTO / -EMSGSIZE. */
int xport_frame_decode(const uint8_t *in, struct xport_frame_hdr *h);

#endif
