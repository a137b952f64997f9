/*
 * aead.c - the volume key's cryptography (see aead.h and docs/encryption.md):
 * key wrapping, chunk payload sealing, mirror sealing.  OpenSSL 3 only
 * (EVP_KDF "SCRYPT" and "HKDF", AES-256-GCM, HMAC-SHA256).
 *
 * Wrapped key blob (VKEY_BLOB_LEN = 88 bytes):
 *   0 "PSVK"  4 version(1)=1  5 kind(1)  6 log2 N(1)  7 r(1)  8 p(1)
 *   9 zero(3)  12 salt(16)  28 nonce(12)  40 sealed key(32)  72 tag(16)
 * The first 28 bytes are the associated data.  A blob comes from the FAT,
 * so its KDF parameters are bounded before use (memory 128 * r * N at most
 * 256 MiB).
 *
 * Chunk payload: nonce(12) || AES-256-GCM(compressed or raw data) || tag(16)
 * under HKDF-SHA256(chunk subkey, info "pstore chunk v1" || owner || chunk
 * id).  The nonce is random: every chunk id gets its own key and is sealed
 * once, so even a repeated nonce would not meet the same key twice.  The
 * associated data is the header with the fields that differ between
 * replicas (lease, vendor, chain, pieces) and the digest zeroed: magic,
 * version, flags, chunk id, owner, raw and stored length are bound.
 *
 * Mirror value: nonce(12) || AES-256-GCM(plain) || tag(16), plain =
 * version(1)=1 klen(2) key vlen(4) value, zero-padded to a multiple of 64
 * bytes (lengths of names and values are not exact at the FAT); the
 * associated data is "pstore mirror v1" || owner || HMAC key, so a value
 * cannot be moved under another key or volume.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "aead.h"
#include "common.h"

#define BLOB_MAGIC "PSVK"
#define BLOB_VERSION 1
#define BLOB_AAD_LEN 28
#define SALT_LEN 16
#define SCRYPT_LOG2N 15 /* 32 MiB, ~0.1 s: the default for new passphrases */
#define SCRYPT_R 8
#define SCRYPT_P 1
#define SCRYPT_MAXMEM (256u << 20)
#define MIRROR_PAD 64
#define MIRROR_VERSION 1
#define MIRROR_AAD "pstore mirror v1"
#define CHUNK_INFO "pstore chunk v1"

void vkey_wipe(void *p, size_t len)
{
	OPENSSL_cleanse(p, len);
}

/* HKDF-SHA256 (extract and expand) into out (32 bytes). */
static int hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt, size_t salt_len,
		const uint8_t *info, size_t info_len, uint8_t out[VKEY_LEN])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[5], *p = params;
	int rc = -EIO;

	if (!kctx)
		goto out;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikm_len);
	if (salt_len)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt,
							 salt_len);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, info_len);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, VKEY_LEN, params) == 1)
		rc = 0;
out:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

static int scrypt(const void *pass, size_t plen, const uint8_t *salt, unsigned log2n,
		  uint32_t r, uint32_t p_, uint8_t out[VKEY_LEN])
{
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	OSSL_PARAM params[7], *p = params;
	uint64_t n = UINT64_C(1) << log2n, maxmem = SCRYPT_MAXMEM + (1u << 20);
	int rc = -EIO;

	if (!kctx)
		goto out;
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)pass, plen);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, SALT_LEN);
	*p++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	*p++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r);
	*p++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p_);
	*p++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, VKEY_LEN, params) == 1)
		rc = 0;
out:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	return rc;
}

/* AES-256-GCM; out gets len bytes, tag 16 bytes. */
static int gcm_seal(const uint8_t key[VKEY_LEN], const uint8_t nonce[CHUNK_SEAL_NONCE],
		    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
		    uint8_t *out, uint8_t tag[CHUNK_SEAL_TAG])
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n, rc = -EIO;

	if (!c || len > INT32_MAX || aad_len > INT32_MAX)
		goto out;
	if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) != 1 ||
	    (aad_len && EVP_EncryptUpdate(c, NULL, &n, aad, (int)aad_len) != 1) ||
	    (len && EVP_EncryptUpdate(c, out, &n, in, (int)len) != 1) ||
	    EVP_EncryptFinal_ex(c, out + len, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, CHUNK_SEAL_TAG, tag) != 1)
		goto out;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(c);
	return rc;
}

/* 0, -EBADMSG (tag mismatch), -EIO. */
static int gcm_open(const uint8_t key[VKEY_LEN], const uint8_t nonce[CHUNK_SEAL_NONCE],
		    const uint8_t *aad, size_t aad_len, const uint8_t *in, size_t len,
		    const uint8_t tag[CHUNK_SEAL_TAG], uint8_t *out)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n, rc = -EIO;

	if (!c || len > INT32_MAX || aad_len > INT32_MAX)
		goto out;
	if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce) != 1 ||
	    (aad_len && EVP_DecryptUpdate(c, NULL, &n, aad, (int)aad_len) != 1) ||
	    (len && EVP_DecryptUpdate(c, out, &n, in, (int)len) != 1) ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, CHUNK_SEAL_TAG, (void *)tag) != 1)
		goto out;
	rc = EVP_DecryptFinal_ex(c, out + len, &n) == 1 ? 0 : -EBADMSG;
out:
	EVP_CIPHER_CTX_free(c);
	if (rc < 0 && len)
		vkey_wipe(out, len);
	return rc;
}

int vkey_derive(const uint8_t master[VKEY_LEN], struct vkey *out)
{
	static const char *const info[3] = {"pstore chunk key", "pstore mirror name key",
					    "pstore mirror value key"};
	uint8_t *dst[3] = {out->chunk, out->name, out->value};

	for (int i = 0; i < 3; i++) {
		int rc = hkdf(master, VKEY_LEN, NULL, 0, (const uint8_t *)info[i],
			      strlen(info[i]), dst[i]);

		if (rc < 0) {
			vkey_wipe(out, sizeof(*out));
			return rc;
		}
	}
	return 0;
}

/* ---- wrapped key ---- */

static int blob_kek(const uint8_t *blob, const void *secret, size_t slen, uint8_t kek[VKEY_LEN])
{
	static const char info[] = "pstore key file";

	if (blob[5] == VKEY_PASSPHRASE)
		return scrypt(secret, slen, blob + 12, blob[6], blob[7], blob[8], kek);
	return hkdf(secret, slen, blob + 12, SALT_LEN, (const uint8_t *)info, sizeof(info) - 1,
		    kek);
}

int vkey_blob_kind(const uint8_t *blob, size_t blen)
{
	if (!blob || blen != VKEY_BLOB_LEN || memcmp(blob, BLOB_MAGIC, 4) != 0 ||
	    blob[4] != BLOB_VERSION || blob[9] || blob[10] || blob[11])
		return -EBADMSG;
	if (blob[5] == VKEY_KEYFILE)
		return blob[6] || blob[7] || blob[8] ? -EBADMSG : VKEY_KEYFILE;
	if (blob[5] != VKEY_PASSPHRASE)
		return -EBADMSG;
	/* hostile parameters must not make us burn memory or time */
	if (blob[6] < 10 || blob[6] > 20 || blob[7] < 1 || blob[7] > 32 || blob[8] < 1 ||
	    blob[8] > 4 || (UINT64_C(128) * blob[7] << blob[6]) > SCRYPT_MAXMEM)
		return -EBADMSG;
	return VKEY_PASSPHRASE;
}

int vkey_wrap(const uint8_t master[VKEY_LEN], enum vkey_kind kind, const void *secret,
	      size_t slen, uint8_t blob[VKEY_BLOB_LEN])
{
	uint8_t kek[VKEY_LEN];
	int rc;

	if (!secret || slen < VKEY_SECRET_MIN || slen > VKEY_SECRET_MAX ||
	    (kind != VKEY_PASSPHRASE && kind != VKEY_KEYFILE))
		return -EINVAL;
	memset(blob, 0, VKEY_BLOB_LEN);
	memcpy(blob, BLOB_MAGIC, 4);
	blob[4] = BLOB_VERSION;
	blob[5] = (uint8_t)kind;
	if (kind == VKEY_PASSPHRASE) {
		blob[6] = SCRYPT_LOG2N;
		blob[7] = SCRYPT_R;
		blob[8] = SCRYPT_P;
	}
	random_fill(blob + 12, SALT_LEN);
	random_fill(blob + 28, CHUNK_SEAL_NONCE);
	rc = blob_kek(blob, secret, slen, kek);
	if (rc == 0)
		rc = gcm_seal(kek, blob + 28, blob, BLOB_AAD_LEN, master, VKEY_LEN, blob + 40,
			      blob + 72);
	vkey_wipe(kek, sizeof(kek));
	return rc;
}

int vkey_unwrap(const uint8_t *blob, size_t blen, const void *secret, size_t slen,
		uint8_t master[VKEY_LEN])
{
	uint8_t kek[VKEY_LEN];
	int rc;

	rc = vkey_blob_kind(blob, blen);
	if (rc < 0)
		return rc;
	if (!secret || slen == 0 || slen > VKEY_SECRET_MAX)
		return -EACCES;
	rc = blob_kek(blob, secret, slen, kek);
	if (rc == 0)
		rc = gcm_open(kek, blob + 28, blob, BLOB_AAD_LEN, blob + 40, VKEY_LEN,
			      blob + 72, master);
	vkey_wipe(kek, sizeof(kek));
	return rc == -EBADMSG ? -EACCES : rc;
}

/* ---- chunks ---- */

static int chunk_key(const struct vkey *vk, const struct chunk_hdr *h, uint8_t key[VKEY_LEN])
{
	uint8_t info[sizeof(CHUNK_INFO) - 1 + CHUNK_OWNER_LEN + CHUNK_ID_LEN];
	size_t n = sizeof(CHUNK_INFO) - 1;

	memcpy(info, CHUNK_INFO, n);
	memcpy(info + n, h->owner, CHUNK_OWNER_LEN);
	memcpy(info + n + CHUNK_OWNER_LEN, h->chunk_id, CHUNK_ID_LEN);
	return hkdf(vk->chunk, VKEY_LEN, NULL, 0, info, sizeof(info), key);
}

/* The header's identity fields, as associated data. */
static void chunk_aad(const struct chunk_hdr *h, uint8_t aad[CHUNK_HDR_LEN])
{
	struct chunk_hdr a = *h;

	a.lease_id = 0;
	a.vendor_id = 0;
	a.chain_len = 0;
	a.pieces = 0;
	a.reserved = 0;
	memset(a.chain, 0, sizeof(a.chain));
	memset(a.digest, 0, sizeof(a.digest));
	chunk_hdr_encode(&a, aad);
}

int chunk_seal_encode(const struct vkey *vk, const void *raw, size_t raw_len, int level,
		      struct chunk_hdr *h, uint8_t **out)
{
	uint8_t key[VKEY_LEN], aad[CHUNK_HDR_LEN], *buf = NULL;
	const uint8_t *plain;
	size_t len;
	uint16_t flags;
	int rc;

	*out = NULL;
	/* room for the nonce before and the tag after the payload; data that
	 * does not compress is not copied: the cipher reads it from raw */
	rc = chunk_compress_into(raw, raw_len, level, CHUNK_SEAL_NONCE, CHUNK_SEAL_TAG, &buf,
				 &len, &flags);
	if (rc < 0)
		return rc;
	plain = rc == 1 ? buf + CHUNK_SEAL_NONCE : (const uint8_t *)raw;
	if (len + CHUNK_SEAL_OVERHEAD > CHUNK_MAX_STORED) {
		free(buf);
		return -EMSGSIZE;
	}
	h->flags = flags | CHUNK_F_ENCRYPTED;
	h->raw_len = (uint32_t)raw_len;
	h->stored_len = (uint32_t)(len + CHUNK_SEAL_OVERHEAD);
	rc = chunk_key(vk, h, key);
	if (rc < 0)
		goto fail;
	chunk_aad(h, aad);
	/* nonce || ciphertext || tag */
	random_fill(buf, CHUNK_SEAL_NONCE);
	rc = gcm_seal(key, buf, aad, sizeof(aad), plain, len, buf + CHUNK_SEAL_NONCE,
		      buf + CHUNK_SEAL_NONCE + len);
	vkey_wipe(key, sizeof(key));
	if (rc < 0)
		goto fail;
	chunk_digest(buf, h->stored_len, h->digest);
	*out = buf;
	return 0;
fail:
	free(buf);
	return rc;
}

int chunk_open_decode(const struct vkey *vk, const struct chunk_hdr *h, const void *stored,
		      size_t stored_len, void *raw)
{
	const uint8_t *in = stored;
	uint8_t key[VKEY_LEN], aad[CHUNK_HDR_LEN], d[CHUNK_DIGEST_LEN], *plain;
	size_t len;
	int rc;

	if (!vk)
		return chunk_decode(h, stored, stored_len, raw);
	if (stored_len != h->stored_len)
		return -EBADMSG;
	chunk_digest(stored, stored_len, d);
	if (memcmp(d, h->digest, CHUNK_DIGEST_LEN) != 0)
		return -EBADMSG;
	/* an encrypted volume takes nothing in clear: a vendor could forge it */
	if (!(h->flags & CHUNK_F_ENCRYPTED) || stored_len < CHUNK_SEAL_OVERHEAD)
		return -EPROTO;
	len = stored_len - CHUNK_SEAL_OVERHEAD;
	if (!(h->flags & CHUNK_F_ZSTD) && len != h->raw_len)
		return -EBADMSG;
	rc = chunk_key(vk, h, key);
	if (rc < 0)
		return rc;
	chunk_aad(h, aad);
	/* stored data decrypts straight into raw; a zstd frame needs a buffer */
	plain = (h->flags & CHUNK_F_ZSTD) ? malloc(len ? len : 1) : raw;
	if (!plain) {
		vkey_wipe(key, sizeof(key));
		return -ENOMEM;
	}
	rc = gcm_open(key, in, aad, sizeof(aad), in + CHUNK_SEAL_NONCE, len,
		      in + CHUNK_SEAL_NONCE + len, plain);
	vkey_wipe(key, sizeof(key));
	if (rc == 0 && (h->flags & CHUNK_F_ZSTD))
		rc = chunk_decompress(h->flags, plain, len, raw, h->raw_len);
	if (plain != raw)
		free(plain);
	return rc;
}

/* ---- mirror ---- */

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static int mirror_hkey(const struct vkey *vk, const uint8_t *key, size_t klen,
		       uint8_t hkey[VKEY_MIRROR_KEY_LEN])
{
	unsigned int n = 0;

	if (!HMAC(EVP_sha256(), vk->name, VKEY_LEN, key, klen, hkey, &n) ||
	    n != VKEY_MIRROR_KEY_LEN)
		return -EIO;
	return 0;
}

static void mirror_aad(const uint8_t owner[CHUNK_OWNER_LEN], const uint8_t *hkey, uint8_t *aad)
{
	size_t n = sizeof(MIRROR_AAD) - 1;

	memcpy(aad, MIRROR_AAD, n);
	memcpy(aad + n, owner, CHUNK_OWNER_LEN);
	memcpy(aad + n + CHUNK_OWNER_LEN, hkey, VKEY_MIRROR_KEY_LEN);
}

#define MIRROR_AAD_LEN (sizeof(MIRROR_AAD) - 1 + CHUNK_OWNER_LEN + VKEY_MIRROR_KEY_LEN)

int vkey_mirror_seal(const struct vkey *vk, const uint8_t owner[CHUNK_OWNER_LEN],
		     const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
		     uint8_t hkey[VKEY_MIRROR_KEY_LEN], uint8_t **sval, size_t *slen)
{
	uint8_t aad[MIRROR_AAD_LEN], *plain = NULL, *out = NULL;
	size_t plen;
	int rc;

	if (klen == 0 || klen > UINT16_MAX || vlen > (1u << 24))
		return -EINVAL;
	rc = mirror_hkey(vk, key, klen, hkey);
	if (rc < 0 || !val)
		return rc;
	plen = 1 + 2 + klen + 4 + vlen;
	plen = (plen + MIRROR_PAD - 1) / MIRROR_PAD * MIRROR_PAD;
	plain = calloc(1, plen);
	out = malloc(plen + CHUNK_SEAL_OVERHEAD);
	if (!plain || !out) {
		rc = -ENOMEM;
		goto fail;
	}
	plain[0] = MIRROR_VERSION;
	put_be(plain + 1, klen, 2);
	memcpy(plain + 3, key, klen);
	put_be(plain + 3 + klen, vlen, 4);
	if (vlen)
		memcpy(plain + 7 + klen, val, vlen);
	mirror_aad(owner, hkey, aad);
	random_fill(out, CHUNK_SEAL_NONCE);
	rc = gcm_seal(vk->value, out, aad, sizeof(aad), plain, plen, out + CHUNK_SEAL_NONCE,
		      out + CHUNK_SEAL_NONCE + plen);
	if (rc < 0)
		goto fail;
	vkey_wipe(plain, plen);
	free(plain);
	*sval = out;
	*slen = plen + CHUNK_SEAL_OVERHEAD;
	return 0;
fail:
	if (plain)
		vkey_wipe(plain, plen);
	free(plain);
	free(out);
	return rc;
}

int vkey_mirror_open(const struct vkey *vk, const uint8_t owner[CHUNK_OWNER_LEN],
		     const uint8_t *hkey, size_t hklen, const uint8_t *sval, size_t slen,
		     uint8_t **plain, const uint8_t **key, size_t *klen, const uint8_t **val,
		     size_t *vlen)
{
	uint8_t aad[MIRROR_AAD_LEN], check[VKEY_MIRROR_KEY_LEN], *p;
	size_t plen, kl, vl;
	int rc;

	*plain = NULL;
	if (hklen != VKEY_MIRROR_KEY_LEN || slen < CHUNK_SEAL_OVERHEAD + MIRROR_PAD ||
	    (slen - CHUNK_SEAL_OVERHEAD) % MIRROR_PAD != 0)
		return -EBADMSG;
	plen = slen - CHUNK_SEAL_OVERHEAD;
	p = malloc(plen);
	if (!p)
		return -ENOMEM;
	mirror_aad(owner, hkey, aad);
	rc = gcm_open(vk->value, sval, aad, sizeof(aad), sval + CHUNK_SEAL_NONCE, plen,
		      sval + CHUNK_SEAL_NONCE + plen, p);
	if (rc < 0)
		goto fail;
	rc = -EBADMSG;
	if (p[0] != MIRROR_VERSION)
		goto fail;
	kl = (size_t)get_be(p + 1, 2);
	if (kl == 0 || 3 + kl + 4 > plen)
		goto fail;
	vl = (size_t)get_be(p + 3 + kl, 4);
	if (vl > plen - (7 + kl))
		goto fail;
	/* the value must be the one of this key, and the padding zero */
	if (mirror_hkey(vk, p + 3, kl, check) < 0 ||
	    CRYPTO_memcmp(check, hkey, VKEY_MIRROR_KEY_LEN) != 0)
		goto fail;
	for (size_t i = 7 + kl + vl; i < plen; i++)
		if (p[i])
			goto fail;
	*plain = p;
	*key = p + 3;
	*klen = kl;
	*val = p + 7 + kl;
	*vlen = vl;
	return 0;
fail:
	vkey_wipe(p, plen);
	free(p);
	return rc;
}
