/*
 * codec.c - raw chunk data <-> stored payload.  zstd is used when it saves
 * at least 1/16 of the size; a quick trial on a sample skips data that does
 * not compress (media, archives, ciphertext) so it costs almost nothing.
 * Encryption (CHUNK_F_ENCRYPTED) is aead.c's: it seals between
 * chunk_compress and the digest, and opens before chunk_decompress.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "chunk.h"
#include "common.h"

#define SAMPLE_LEN (64u << 10)

/* Compress a 64 KiB sample from the middle; worth it below 7/8 of the size. */
static bool worth_compressing(const uint8_t *raw, size_t raw_len, int level)
{
	size_t off, n, bound, got;
	void *tmp;
	bool ok;

	if (raw_len < 4096)
		return true;
	n = MIN(raw_len, SAMPLE_LEN);
	off = (raw_len - n) / 2;
	bound = ZSTD_compressBound(n);
	tmp = malloc(bound);
	if (!tmp)
		return false;
	got = ZSTD_compress(tmp, bound, raw + off, n, level);
	ok = !ZSTD_isError(got) && got < n - n / 8;
	free(tmp);
	return ok;
}

int chunk_compress_into(const void *raw, size_t raw_len, int level, size_t head, size_t tail,
			uint8_t **out, size_t *out_len, uint16_t *flags)
{
	uint8_t *buf;
	size_t len;

	*out = NULL;
	*flags = 0;
	if (raw_len > CHUNK_MAX_RAW || head > CHUNK_MAX_STORED || tail > CHUNK_MAX_STORED)
		return -EMSGSIZE;
	if (level > 0 && raw_len > 0 && worth_compressing(raw, raw_len, level)) {
		size_t bound = ZSTD_compressBound(raw_len);

		buf = malloc(head + bound + tail);
		if (!buf)
			return -ENOMEM;
		len = ZSTD_compress(buf + head, bound, raw, raw_len, level);
		if (!ZSTD_isError(len) && len < raw_len - raw_len / 16) {
			*flags = CHUNK_F_ZSTD;
			*out = buf;
			*out_len = len;
			return 1;
		}
		free(buf);
	}
	buf = malloc(head + raw_len + tail ? head + raw_len + tail : 1);
	if (!buf)
		return -ENOMEM;
	*out = buf;
	*out_len = raw_len;
	return 0;
}

int chunk_compress(const void *raw, size_t raw_len, int level, size_t room, uint8_t **out,
		   size_t *out_len, uint16_t *flags)
{
	int rc = chunk_compress_into(raw, raw_len, level, 0, room, out, out_len, flags);

	if (rc == 0 && raw_len > 0)
		memcpy(*out, raw, raw_len);
	return rc < 0 ? rc : 0;
}

int chunk_encode(const void *raw, size_t raw_len, int level, uint8_t **out, size_t *out_len,
		 uint16_t *flags, uint8_t digest[CHUNK_DIGEST_LEN])
{
	int rc = chunk_compress(raw, raw_len, level, 0, out, out_len, flags);

	if (rc == 0)
		chunk_digest(*out, *out_len, digest);
	return rc;
}

int chunk_decompress(uint16_t flags, const void *stored, size_t stored_len, void *raw,
		     size_t raw_len)
{
	if (flags & CHUNK_F_ZSTD) {
		unsigned long long want = ZSTD_getFrameContentSize(stored, stored_len);
		size_t got;

		if (want != raw_len)
			return -EBADMSG;
		got = ZSTD_decompress(raw, raw_len, stored, stored_len);
		if (ZSTD_isError(got) || got != raw_len)
			return -EBADMSG;
		return 0;
	}
	if (stored_len != raw_len)
		return -EBADMSG;
	memcpy(raw, stored, stored_len);
	return 0;
}

int chunk_decode(const struct chunk_hdr *h, const void *stored, size_t stored_len, void *raw)
{
	uint8_t d[CHUNK_DIGEST_LEN];

	if (stored_len != h->stored_len)
		return -EBADMSG;
	chunk_digest(stored, stored_len, d);
	if (memcmp(d, h->digest, CHUNK_DIGEST_LEN) != 0)
		return -EBADMSG;
	if (h->flags & CHUNK_F_ENCRYPTED)
		return -EPROTO; /* needs the volume key: chunk_open_payload (aead.h) */
	return chunk_decompress(h->flags, stored, stored_len, raw, h->raw_len);
}
