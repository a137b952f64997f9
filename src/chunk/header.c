/*
 * header.c - encoding and validation of the binary chunk header, chunk ids
 * and payload digests.  The layout is documented in chunk.h; this is the only
 * code that lays it out.
 */
#include <errno.h>
#include <string.h>

#include <openssl/sha.h>

#include "chunk.h"
#include "common.h"

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

void chunk_hdr_encode(const struct chunk_hdr *h, uint8_t out[CHUNK_HDR_LEN])
{
	memset(out, 0, CHUNK_HDR_LEN);
	put32(out + 0, CHUNK_HDR_MAGIC);
	put16(out + 4, CHUNK_HDR_VERSION);
	put16(out + 6, h->flags);
	memcpy(out + 8, h->chunk_id, CHUNK_ID_LEN);
	memcpy(out + 24, h->owner, CHUNK_OWNER_LEN);
	put64(out + 40, h->lease_id);
	put32(out + 48, h->vendor_id);
	out[52] = h->chain_len;
	out[53] = h->pieces;
	for (int i = 0; i < CHUNK_MAX_CHAIN; i++)
		put32(out + 56 + 4 * i, i < h->chain_len ? h->chain[i] : 0);
	put32(out + 88, h->raw_len);
	put32(out + 92, h->stored_len);
	memcpy(out + 96, h->digest, CHUNK_DIGEST_LEN);
}

int chunk_hdr_decode(const uint8_t *in, size_t len, struct chunk_hdr *h)
{
	if (len < CHUNK_HDR_LEN)
		return -EPROTO;
	memset(h, 0, sizeof(*h));
	h->magic = get32(in);
	h->version = get16(in + 4);
	h->flags = get16(in + 6);
	if (h->magic != CHUNK_HDR_MAGIC || h->version != CHUNK_HDR_VERSION)
		return -EPROTO;
	if (h->flags & ~CHUNK_F_KNOWN)
		return -EPROTO;
	memcpy(h->chunk_id, in + 8, CHUNK_ID_LEN);
	memcpy(h->owner, in + 24, CHUNK_OWNER_LEN);
	h->lease_id = get64(in + 40);
	h->vendor_id = get32(in + 48);
	h->chain_len = in[52];
	h->pieces = in[53];
	h->reserved = get16(in + 54);
	if (h->chain_len < 1 || h->chain_len > CHUNK_MAX_CHAIN)
		return -EPROTO;
	if (h->pieces < 1 || h->pieces > CHUNK_MAX_PIECES || h->reserved != 0)
		return -EPROTO;
	for (int i = 0; i < CHUNK_MAX_CHAIN; i++) {
		h->chain[i] = get32(in + 56 + 4 * i);
		if (i >= h->chain_len ? h->chain[i] != 0 : h->chain[i] == 0)
			return -EPROTO;
		for (int j = 0; j < i && i < h->chain_len; j++)
			if (h->chain[j] == h->chain[i])
				return -EPROTO;
	}
	if (h->chain[0] != h->vendor_id)
		return -EPROTO;
	h->raw_len = get32(in + 88);
	h->stored_len = get32(in + 92);
	if (h->raw_len > CHUNK_MAX_RAW || h->stored_len > CHUNK_MAX_STORED)
		return -EMSGSIZE;
	if (!(h->flags & CHUNK_F_ZSTD) && !(h->flags & CHUNK_F_ENCRYPTED) &&
	    h->stored_len != h->raw_len)
		return -EPROTO;
	memcpy(h->digest, in + 96, CHUNK_DIGEST_LEN);
	for (int i = 128; i < CHUNK_HDR_LEN; i++)
		if (in[i] != 0)
			return -EPROTO;
	return 0;
}

int chunk_hdr_chain_pos(const struct chunk_hdr *h, uint32_t vendor_id)
{
	for (int i = 0; i < h->chain_len && i < CHUNK_MAX_CHAIN; i++)
		if (h->chain[i] == vendor_id)
			return i;
	return -1;
}

void chunk_id_new(uint8_t id[CHUNK_ID_LEN])
{
	random_fill(id, CHUNK_ID_LEN);
}

void chunk_id_hex(const uint8_t id[CHUNK_ID_LEN], char out[2 * CHUNK_ID_LEN + 1])
{
	hex_encode(id, CHUNK_ID_LEN, out);
}

void chunk_digest(const void *buf, size_t len, uint8_t out[CHUNK_DIGEST_LEN])
{
	SHA256(buf, len, out);
}
