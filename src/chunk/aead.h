/*
 * aead.h - what a volume key does, on the client only (docs/encryption.md):
 *
 *  - the wrapped key: a volume key (32 random bytes) sealed with AES-256-GCM
 *    under a key-encryption key derived from a passphrase (scrypt) or a key
 *    file (HKDF); the blob travels with the volume (VolumeInfo.key_blob) so
 *    the FAT keeps it without being able to open it;
 *  - chunk payloads: compress, then seal with AES-256-GCM under a per-chunk
 *    key HKDF(volume key, owner || chunk id), the chunk's identity fields of
 *    the header as associated data; the header's digest covers the
 *    ciphertext, so vendors still verify what they store;
 *  - the metadata mirror: a mirror key becomes HMAC-SHA256 of it, the value
 *    an AEAD-sealed record holding the plaintext key and value (padded), so
 *    the FAT sees neither names, structure, sizes nor attributes.
 *
 * Nothing here touches the network or files; callers keep the key material
 * and wipe it (vkey_wipe) when done.
 */
#ifndef PSTORE_AEAD_H
#define PSTORE_AEAD_H

#include <stddef.h>
#include <stdint.h>

#include "chunk.h"

#define VKEY_LEN 32
#define CHUNK_SEAL_NONCE 12
#define CHUNK_SEAL_TAG 16
#define CHUNK_SEAL_OVERHEAD (CHUNK_SEAL_NONCE + CHUNK_SEAL_TAG)
#define VKEY_BLOB_LEN 88     /* the wrapped key, see aead.c */
#define VKEY_BLOB_MAX 256    /* what a VolumeInfo.key_blob may be at most */
#define VKEY_SECRET_MAX 4096 /* longest passphrase or key file */
#define VKEY_SECRET_MIN 8    /* shortest */
#define VKEY_MIRROR_KEY_LEN 32

/* The subkeys of one volume key (vkey_derive). */
struct vkey {
	uint8_t chunk[VKEY_LEN]; /* input of the per-chunk HKDF */
	uint8_t name[VKEY_LEN];	 /* HMAC key of mirror keys */
	uint8_t value[VKEY_LEN]; /* AES-256-GCM key of mirror values */
};

enum vkey_kind {
	VKEY_PASSPHRASE = 1, /* scrypt */
	VKEY_KEYFILE = 2,    /* HKDF over the file's bytes */
};

/* Zeroes key material (not optimized away). */
void vkey_wipe(void *p, size_t len);
int vkey_derive(const uint8_t master[VKEY_LEN], struct vkey *out);

/* Seals master under secret (slen bytes, VKEY_SECRET_MIN..MAX) into blob
 * (VKEY_BLOB_LEN bytes).  0, -EINVAL, -EIO (OpenSSL). */
int vkey_wrap(const uint8_t master[VKEY_LEN], enum vkey_kind kind, const void *secret,
	      size_t slen, uint8_t blob[VKEY_BLOB_LEN]);
/* The kind of a blob, or -EBADMSG when it is not one. */
int vkey_blob_kind(const uint8_t *blob, size_t blen);
/* Opens a blob: 0, -EBADMSG (not a blob, or KDF parameters out of bounds),
 * -EACCES (wrong passphrase or key file), -EIO. */
int vkey_unwrap(const uint8_t *blob, size_t blen, const void *secret, size_t slen,
		uint8_t master[VKEY_LEN]);

/* Compress-then-encrypt: h has magic, version, chunk_id and owner set; fills
 * flags (CHUNK_F_ENCRYPTED, maybe CHUNK_F_ZSTD), raw_len, stored_len and the
 * digest of the sealed payload.  *out is malloc'd (h->stored_len bytes). */
int chunk_seal_encode(const struct vkey *vk, const void *raw, size_t raw_len, int level,
		      struct chunk_hdr *h, uint8_t **out);
/* The reverse: digest, then (vk set) the AEAD and decompression into raw
 * (h->raw_len bytes).  With vk an unencrypted payload is refused, without vk
 * an encrypted one.  0, -EBADMSG (digest, tag or zstd), -EPROTO (flags). */
int chunk_open_decode(const struct vkey *vk, const struct chunk_hdr *h, const void *stored,
		      size_t stored_len, void *raw);

/* Mirror sealing.  Key: HMAC-SHA256(name key, key) into hkey.  Value (when
 * val is not NULL): *sval malloc'd, *slen bytes.  owner (the volume id) is
 * bound into every sealed value. */
int vkey_mirror_seal(const struct vkey *vk, const uint8_t owner[CHUNK_OWNER_LEN],
		     const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
		     uint8_t hkey[VKEY_MIRROR_KEY_LEN], uint8_t **sval, size_t *slen);
/* Opens a sealed value found under hkey: *plain is malloc'd and holds the
 * key and value that *key / *val point into.  0 or -EBADMSG (wrong key,
 * tampered, moved under another key, malformed). */
int vkey_mirror_open(const struct vkey *vk, const uint8_t owner[CHUNK_OWNER_LEN],
		     const uint8_t *hkey, size_t hklen, const uint8_t *sval, size_t slen,
		     uint8_t **plain, const uint8_t **key, size_t *klen, const uint8_t **val,
		     size_t *vlen);

#endif
