/*
 * fuzz_chunk_hdr.c - the binary chunk header (chunk_hdr_decode) and the
 * payload decoder (chunk_decode), on what a vendor receives in a put and a
 * client receives from a get: 144 header bytes, then the stored payload.
 *
 * A sender controls both the header and the payload, so it can always make
 * the digest match; the target does the same (it puts the payload's
 * SHA-256 into the decoded header) so that the zstd path is fuzzed, not
 * only the digest comparison.  Accepted headers must re-encode to the same
 * bytes and respect every bound chunk.h promises.
 */
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	return 0;
}

static void check_hdr(const struct chunk_hdr *h, const uint8_t *in)
{
	uint8_t out[CHUNK_HDR_LEN];

	if (h->chain_len < 1 || h->chain_len > CHUNK_MAX_CHAIN || h->pieces < 1 ||
	    h->pieces > CHUNK_MAX_PIECES || h->raw_len > CHUNK_MAX_RAW ||
	    h->stored_len > CHUNK_MAX_STORED || h->chain[0] != h->vendor_id ||
	    (h->flags & ~CHUNK_F_KNOWN))
		abort();
	for (int i = 0; i < h->chain_len; i++)
		if (chunk_hdr_chain_pos(h, h->chain[i]) != i)
			abort(); /* duplicate vendor in the chain */
	chunk_hdr_encode(h, out);
	if (memcmp(in, out, CHUNK_HDR_LEN) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct chunk_hdr h;
	uint8_t *hdr, *stored, *raw;
	size_t stored_len;
	int rc;

	if (size < CHUNK_HDR_LEN)
		return 0;
	hdr = malloc(CHUNK_HDR_LEN);
	if (!hdr)
		return 0;
	memcpy(hdr, data, CHUNK_HDR_LEN);
	rc = chunk_hdr_decode(hdr, CHUNK_HDR_LEN, &h);
	if (rc != 0) {
		free(hdr);
		return 0;
	}
	check_hdr(&h, hdr);
	free(hdr);

	stored_len = size - CHUNK_HDR_LEN;
	stored = malloc(stored_len ? stored_len : 1);
	if (!stored)
		return 0;
	memcpy(stored, data + CHUNK_HDR_LEN, stored_len);
	if (stored_len == h.stored_len)
		chunk_digest(stored, stored_len, h.digest);
	/* raw: exactly raw_len bytes, as the client's fetch allocates it. */
	raw = malloc(h.raw_len ? h.raw_len : 1);
	if (raw) {
		rc = chunk_decode(&h, stored, stored_len, raw);
		if (rc == 0 && !(h.flags & CHUNK_F_ZSTD) &&
		    memcmp(raw, stored, stored_len) != 0)
			abort();
		free(raw);
	}
	free(stored);
	return 0;
}
