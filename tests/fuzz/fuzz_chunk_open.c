/*
 * fuzz_chunk_open.c - opening a chunk payload of an encrypted volume
 * (src/chunk/aead.c chunk_open_decode, called by src/alloc/fetch.c with the
 * mount's volume key): a vendor sends the header and the stored payload, so
 * both are hostile.
 *
 * Input: byte 0 selects the mode, then 144 header bytes (chunk_hdr_decode
 * must accept them), then the payload.
 *  - bit 0 clear: the payload as a vendor sends it; as in fuzz_chunk_hdr the
 *    digest is fixed up when stored_len matches (a vendor can always do
 *    that), so the flag checks, length checks and the tag comparison run.
 *    Bit 1 set: no volume key (chunk_open_decode falls back to chunk_decode,
 *    as for an unencrypted volume).
 *  - bit 0 set: the rest is the plaintext (the zstd frame, or raw data)
 *    that fuzz_crypt.c seals with the chunk's key for this header (flags
 *    and raw_len from the input, stored_len and digest made to fit), so the
 *    decompression after a verified tag is fuzzed too.
 * Accepted payloads re-seal (chunk_seal_encode) and re-open to the same
 * bytes (up to 64 KiB, to keep the rate up).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aead.h"
#include "chunk.h"
#include "fuzz_common.h"
#include "fuzz_crypt.h"

#define RESEAL_MAX (64u << 10)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	fuzz_crypt_vkey();
	return 0;
}

static void reseal(const struct chunk_hdr *h0, const uint8_t *raw)
{
	const struct vkey *vk = fuzz_crypt_vkey();
	struct chunk_hdr h = *h0;
	uint8_t *stored = NULL, *back;

	if (h.raw_len > RESEAL_MAX)
		return;
	back = malloc(h.raw_len ? h.raw_len : 1);
	if (!back || chunk_seal_encode(vk, raw, h.raw_len, 1, &h, &stored) != 0 ||
	    !(h.flags & CHUNK_F_ENCRYPTED) ||
	    chunk_open_decode(vk, &h, stored, h.stored_len, back) != 0 ||
	    (h.raw_len && memcmp(back, raw, h.raw_len) != 0))
		abort();
	free(back);
	free(stored);
}

static void open_one(const struct vkey *vk, const struct chunk_hdr *h, const uint8_t *stored,
		     size_t stored_len, const uint8_t *plain)
{
	uint8_t *raw = malloc(h->raw_len ? h->raw_len : 1); /* as fetch.c sizes it */
	int rc;

	if (!raw)
		return;
	rc = chunk_open_decode(vk, h, stored, stored_len, raw);
	if (rc == 0 && vk) {
		if (!(h->flags & CHUNK_F_ENCRYPTED) || stored_len < CHUNK_SEAL_OVERHEAD)
			abort(); /* an encrypted volume took a payload in clear */
		if (plain && !(h->flags & CHUNK_F_ZSTD) &&
		    (stored_len - CHUNK_SEAL_OVERHEAD != h->raw_len ||
		     memcmp(raw, plain, h->raw_len) != 0))
			abort();
		reseal(h, raw);
	} else if (rc == 0 && (h->flags & CHUNK_F_ENCRYPTED)) {
		abort(); /* no key, yet a sealed payload opened */
	} else if (rc != 0 && rc != -EBADMSG && rc != -EPROTO && rc != -ENOMEM && rc != -EIO) {
		abort();
	}
	free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chunk_hdr h;
	uint8_t mode, *stored;
	size_t len;

	if (size < 1 + CHUNK_HDR_LEN)
		return 0;
	mode = data[0];
	if (chunk_hdr_decode(data + 1, CHUNK_HDR_LEN, &h) != 0)
		return 0;
	data += 1 + CHUNK_HDR_LEN;
	len = size - 1 - CHUNK_HDR_LEN;
	if (mode & 1) {
		if (len + CHUNK_SEAL_OVERHEAD > CHUNK_MAX_STORED)
			return 0;
		h.flags |= CHUNK_F_ENCRYPTED;
		h.stored_len = (uint32_t)(len + CHUNK_SEAL_OVERHEAD);
		stored = malloc(h.stored_len);
		if (!stored)
			return 0;
		fuzz_chunk_seal_raw(&h, data, len, stored);
		chunk_digest(stored, h.stored_len, h.digest);
		open_one(fuzz_crypt_vkey(), &h, stored, h.stored_len, data);
	} else {
		stored = malloc(len ? len : 1);
		if (!stored)
			return 0;
		memcpy(stored, data, len);
		if (len == h.stored_len)
			chunk_digest(stored, len, h.digest);
		open_one((mode & 2) ? NULL : fuzz_crypt_vkey(), &h, stored, len, NULL);
	}
	free(stored);
	return 0;
}
