/*
 * fuzz_crypt.h - what the client-side encryption targets (fuzz_vkey_blob,
 * fuzz_mirror_open, fuzz_chunk_open) and their seed generator share: a fixed
 * volume key, volume id and key file, and a sealer that puts arbitrary
 * plaintext under a valid AES-256-GCM tag exactly as src/chunk/aead.c would
 * (same key derivation, nonce layout and associated data).
 *
 * A FAT or vendor cannot forge a tag without the volume key, so raw inputs
 * only reach the length checks and the tag comparison; the sealer lets the
 * targets also fuzz what aead.c parses after a tag verified (the mirror
 * record, the zstd frame of a chunk), as a client holding the key, or a
 * bug in the encoder, could produce it.
 */
#ifndef PSTORE_FUZZ_CRYPT_H
#define PSTORE_FUZZ_CRYPT_H

#include <stddef.h>
#include <stdint.h>

#include "aead.h"
#include "chunk.h"

/* The fixed volume key of the targets, its subkeys (derived once), the
 * volume id bound into mirror values, and the key file that wraps it. */
extern const uint8_t fuzz_crypt_master[VKEY_LEN];
extern const uint8_t fuzz_crypt_owner[CHUNK_OWNER_LEN];
extern const uint8_t fuzz_crypt_keyfile[32];
const struct vkey *fuzz_crypt_vkey(void);

/* AES-256-GCM of plain (len bytes) under the mirror value key with the
 * associated data of hkey: out gets nonce || ciphertext || tag (len + 28
 * bytes).  Aborts on an OpenSSL failure. */
void fuzz_mirror_seal_raw(const uint8_t hkey[VKEY_MIRROR_KEY_LEN], const uint8_t *plain,
			  size_t len, uint8_t *out);
/* The same for a chunk payload: the per-chunk key and the header's identity
 * fields of h as associated data (flags, raw_len and stored_len are bound:
 * set them first; the digest is not). */
void fuzz_chunk_seal_raw(const struct chunk_hdr *h, const uint8_t *plain, size_t len,
			 uint8_t *out);

#endif
