/*
 * fuzz_crypt.c - the fixed key material of the encryption targets and a
 * sealer of arbitrary plaintext (see fuzz_crypt.h).  The key derivation and
 * associated data repeat src/chunk/aead.c's on purpose: if aead.c changes
 * its format, the seeds stop opening and fuzz_mirror_open / fuzz_chunk_open
 * abort on their self-check at start-up.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "fuzz_crypt.h"

const uint8_t fuzz_crypt_master[VKEY_LEN] = "pstore fuzz volume key, fixed!!";
const uint8_t fuzz_crypt_owner[CHUNK_OWNER_LEN] = "fuzz-volume-id!";
const uint8_t fuzz_crypt_keyfile[32] = "pstore fuzz key file bytes 0123";

const struct vkey *fuzz_crypt_vkey(void)
{
	static struct vkey vk;
	static int done;

	if (!done) {
		if (vkey_derive(fuzz_crypt_master, &vk) != 0)
			abort();
		done = 1;
	}
	return &vk;
}

static void gcm(const uint8_t key[VKEY_LEN], const uint8_t *aad, size_t aad_len,
		const uint8_t *plain, size_t len, uint8_t *out)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n;

	/* a fixed nonce: the target never seals two plaintexts for a real volume */
	memset(out, 0x5a, CHUNK_SEAL_NONCE);
	if (!c || EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, out) != 1 ||
	    EVP_EncryptUpdate(c, NULL, &n, aad, (int)aad_len) != 1 ||
	    (len && EVP_EncryptUpdate(c, out + CHUNK_SEAL_NONCE, &n, plain, (int)len) != 1) ||
	    EVP_EncryptFinal_ex(c, out + CHUNK_SEAL_NONCE + len, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, CHUNK_SEAL_TAG,
				out + CHUNK_SEAL_NONCE + len) != 1)
		abort();
	EVP_CIPHER_CTX_free(c);
}

void fuzz_mirror_seal_raw(const uint8_t hkey[VKEY_MIRROR_KEY_LEN], const uint8_t *plain,
			  size_t len, uint8_t *out)
{
	static const char tag[] = "pstore mirror v1";
	uint8_t aad[sizeof(tag) - 1 + CHUNK_OWNER_LEN + VKEY_MIRROR_KEY_LEN];

	memcpy(aad, tag, sizeof(tag) - 1);
	memcpy(aad + sizeof(tag) - 1, fuzz_crypt_owner, CHUNK_OWNER_LEN);
	memcpy(aad + sizeof(tag) - 1 + CHUNK_OWNER_LEN, hkey, VKEY_MIRROR_KEY_LEN);
	gcm(fuzz_crypt_vkey()->value, aad, sizeof(aad), plain, len, out);
}

void fuzz_chunk_seal_raw(const struct chunk_hdr *h, const uint8_t *plain, size_t len,
			 uint8_t *out)
{
	static const char tag[] = "pstore chunk v1";
	uint8_t info[sizeof(tag) - 1 + CHUNK_OWNER_LEN + CHUNK_ID_LEN], key[VKEY_LEN];
	uint8_t aad[CHUNK_HDR_LEN];
	struct chunk_hdr a = *h;
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[4];

	memcpy(info, tag, sizeof(tag) - 1);
	memcpy(info + sizeof(tag) - 1, h->owner, CHUNK_OWNER_LEN);
	memcpy(info + sizeof(tag) - 1 + CHUNK_OWNER_LEN, h->chunk_id, CHUNK_ID_LEN);
	params[0] =
	    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(
	    OSSL_KDF_PARAM_KEY, (void *)fuzz_crypt_vkey()->chunk, VKEY_LEN);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, sizeof(info));
	params[3] = OSSL_PARAM_construct_end();
	if (!kctx || EVP_KDF_derive(kctx, key, VKEY_LEN, params) != 1)
		abort();
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	a.lease_id = 0;
	a.vendor_id = 0;
	a.chain_len = 0;
	a.pieces = 0;
	a.reserved = 0;
	memset(a.chain, 0, sizeof(a.chain));
	memset(a.digest, 0, sizeof(a.digest));
	chunk_hdr_encode(&a, aad);
	gcm(key, aad, sizeof(aad), plain, len, out);
}
