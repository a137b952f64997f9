/*
 * chunk.h - what a chunk is on the wire and on a vendor's disk, shared by the
 * client and the vendor: the fixed binary chunk header, chunk ids, the codec
 * (zstd when it pays, SHA-256 of the stored payload), and the Ed25519
 * capability tokens vendors check before storing.
 *
 * The header is encoded by chunk_hdr_encode/decode only; nothing else lays
 * these bytes out by hand.  The header is immutable once made: every vendor
 * of the replica chain stores the same header, and finds its own position in
 * chain[] by its id.
 */
#ifndef PSTORE_CHUNK_H
#define PSTORE_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHUNK_ID_LEN 16
#define CHUNK_OWNER_LEN 16 /* volume id */
#define CHUNK_DIGEST_LEN 32
#define CHUNK_MAX_CHAIN 8
#define CHUNK_MAX_PIECES 64
#define CHUNK_MAX_RAW (16u << 20) /* largest chunk before compression */
/* largest stored payload: a 16 MiB chunk that did not compress, sealed
 * (CHUNK_SEAL_OVERHEAD, aead.h) fits */
#define CHUNK_MAX_STORED ((16u << 20) + 4096u)
#define CHUNK_HDR_MAGIC 0x48435350u /* "PSCH" */
#define CHUNK_HDR_VERSION 1
#define CHUNK_HDR_LEN 144

enum chunk_flags {
	CHUNK_F_ZSTD = 1u << 0,	     /* payload is zstd-compressed */
	CHUNK_F_ENCRYPTED = 1u << 1, /* payload is AEAD-sealed (security issue) */
};
#define CHUNK_F_KNOWN (CHUNK_F_ZSTD | CHUNK_F_ENCRYPTED)

struct chunk_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t flags;
	uint8_t chunk_id[CHUNK_ID_LEN];
	uint8_t owner[CHUNK_OWNER_LEN];
	uint64_t lease_id;
	uint32_t vendor_id;		  /* the vendor the client sends it to (= chain[0]) */
	uint8_t chain_len;		  /* 1..CHUNK_MAX_CHAIN */
	uint8_t pieces;			  /* re-chunk into at least this many pieces, 1..64 */
	uint16_t reserved;		  /* zero */
	uint32_t chain[CHUNK_MAX_CHAIN];  /* replica chain, vendor ids */
	uint32_t raw_len;		  /* bytes before compression */
	uint32_t stored_len;		  /* payload bytes following the header */
	uint8_t digest[CHUNK_DIGEST_LEN]; /* SHA-256 of the stored payload */
};

/* Wire layout (little-endian), offsets in bytes:
 *   0 magic(4) 4 version(2) 6 flags(2) 8 chunk_id(16) 24 owner(16)
 *  40 lease_id(8) 48 vendor_id(4) 52 chain_len(1) 53 pieces(1) 54 reserved(2)
 *  56 chain(32) 88 raw_len(4) 92 stored_len(4) 96 digest(32) 128 pad(16) 144 */
_Static_assert(CHUNK_HDR_LEN == 144, "chunk header is 144 bytes on the wire");

void chunk_hdr_encode(const struct chunk_hdr *h, uint8_t out[CHUNK_HDR_LEN]);
/* Decodes and validates (magic, version, known flags, chain_len, pieces,
 * lengths within bounds, chain[0] == vendor_id, no duplicate vendor in the
 * chain, reserved and padding zero).  0 or -EPROTO / -EMSGSIZE. */
int chunk_hdr_decode(const uint8_t *in, size_t len, struct chunk_hdr *h);

/* Position of vendor_id in h->chain, or -1. */
int chunk_hdr_chain_pos(const struct chunk_hdr *h, uint32_t vendor_id);

/* New random chunk id. */
void chunk_id_new(uint8_t id[CHUNK_ID_LEN]);
/* 32 hex digits + NUL */
void chunk_id_hex(const uint8_t id[CHUNK_ID_LEN], char out[2 * CHUNK_ID_LEN + 1]);

void chunk_digest(const void *buf, size_t len, uint8_t out[CHUNK_DIGEST_LEN]);

/* ---- codec (codec.c) ----
 * Encode raw data into a stored payload: zstd at `level` when that saves at
 * least 1/16 of the size (a cheap sample test first skips incompressible
 * data), else a copy.  *out is malloc'd; sets *flags (CHUNK_F_ZSTD or 0) and
 * the digest of the stored payload. */
int chunk_encode(const void *raw, size_t raw_len, int level, uint8_t **out, size_t *out_len,
		 uint16_t *flags, uint8_t digest[CHUNK_DIGEST_LEN]);
/* The two halves of chunk_encode/chunk_decode without the digest (aead.c
 * seals between them).  chunk_compress: *out is malloc'd with `room` spare
 * bytes after *out_len; *flags is CHUNK_F_ZSTD or 0.  chunk_decompress:
 * stored (a zstd frame when flags has CHUNK_F_ZSTD, else raw_len bytes) into
 * raw (raw_len bytes): 0 or -EBADMSG. */
int chunk_compress(const void *raw, size_t raw_len, int level, size_t room, uint8_t **out,
		   size_t *out_len, uint16_t *flags);
/* chunk_compress without the copy of data that does not compress: *out is
 * malloc'd with `head` bytes before and `tail` bytes after the payload.
 * Returns 1 when the payload at *out + head is the zstd frame (*out_len
 * bytes, *flags CHUNK_F_ZSTD), 0 when raw was not worth compressing: then
 * nothing is written, *out_len is raw_len and the caller fills the payload
 * from raw (a copy, or a cipher writing there directly); -errno. */
int chunk_compress_into(const void *raw, size_t raw_len, int level, size_t head, size_t tail,
			uint8_t **out, size_t *out_len, uint16_t *flags);
int chunk_decompress(uint16_t flags, const void *stored, size_t stored_len, void *raw,
		     size_t raw_len);
/* Verifies the digest of stored (stored_len bytes) against h, then
 * decompresses into raw (h->raw_len bytes, caller-provided).
 * 0, -EBADMSG (digest mismatch or corrupt zstd), -EPROTO (flags). */
int chunk_decode(const struct chunk_hdr *h, const void *stored, size_t stored_len, void *raw);

/* ---- capability tokens (cap.c) ----
 * Tokens are pstore.SignedToken messages: a serialized pstore.CapToken and an
 * Ed25519 signature over it by the FAT server's key. */
struct cap_token {
	uint8_t owner[CHUNK_OWNER_LEN];
	uint32_t vendor_id;
	uint64_t lease_id;
	uint64_t byte_limit;
	uint64_t expiry_ms; /* wall clock */
};

struct cap_key; /* an Ed25519 key pair or public key */
/* Loads (or, if create is set and the file is missing, creates with mode 0600)
 * a raw 32-byte Ed25519 private key. */
struct cap_key *cap_key_load(const char *path, bool create);
/* Public key only, from 32 raw bytes. */
struct cap_key *cap_key_from_public(const uint8_t pub[32]);
int cap_key_public(const struct cap_key *k, uint8_t pub[32]);
void cap_key_free(struct cap_key *k);

/* Signs t; *out is a malloc'd serialized SignedToken. */
int cap_token_sign(const struct cap_key *k, const struct cap_token *t, uint8_t **out,
		   size_t *out_len);
/* Checks the signature and decodes; does NOT check expiry or fields (the
 * vendor compares them with what it is asked to do).  0, -EBADMSG (does not
 * decode, wrong sizes) or -EACCES (bad signature). */
int cap_token_verify(const struct cap_key *k, const void *buf, size_t len, struct cap_token *t);
/* Raw Ed25519 signature of msg (private key needed) / its check: 0,
 * -EINVAL (no private key), -EACCES (bad signature), -EIO. */
int cap_key_sign_raw(const struct cap_key *k, const void *msg, size_t len, uint8_t sig[64]);
int cap_key_verify_raw(const struct cap_key *k, const void *msg, size_t len,
		       const uint8_t sig[64]);

/* ---- read capabilities (readcap.c) ----
 * A SignedToken over a pstore.ReadCap: which client (certificate CN) may
 * read the chunks of which volume (owner), until when.  The FAT server
 * gives one with every volume lookup; vendors check it before serving a
 * chunk to a client. */
#define CAP_READ_CLIENT_MAX 128
#define CAP_READ_TOKEN_MAX 512
struct cap_read {
	uint8_t volume[CHUNK_OWNER_LEN];
	char client[CAP_READ_CLIENT_MAX];
	uint64_t expiry_ms; /* wall clock */
};
int cap_read_sign(const struct cap_key *k, const struct cap_read *r, uint8_t **out,
		  size_t *out_len);
/* Signature and decoding only (the caller compares the fields): 0,
 * -EBADMSG, -EACCES (bad signature). */
int cap_read_verify(const struct cap_key *k, const void *buf, size_t len, struct cap_read *r);

#endif
