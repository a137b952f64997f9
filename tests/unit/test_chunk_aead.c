/*
 * test_chunk_aead.c - the volume key's cryptography (src/chunk/aead.c): key
 * wrapping (passphrase, key file, wrong secret, hostile blobs), sealed chunk
 * payloads (round trip compressible and not, every byte flipped is caught,
 * header fields bound, no plaintext in the payload, no cleartext accepted on
 * an encrypted volume) and sealed mirror entries (round trip, tampering,
 * moving a value under another key or volume).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aead.h"
#include "chunk.h"
#include "common.h"

static const char pass[] = "correct horse battery staple";

static void test_wrap_passphrase(void **state)
{
	uint8_t master[VKEY_LEN], back[VKEY_LEN], blob[VKEY_BLOB_LEN], bad[VKEY_BLOB_LEN];

	(void)state;
	random_fill(master, sizeof(master));
	assert_int_equal(vkey_wrap(master, VKEY_PASSPHRASE, pass, strlen(pass), blob), 0);
	assert_int_equal(vkey_blob_kind(blob, sizeof(blob)), VKEY_PASSPHRASE);
	assert_int_equal(vkey_unwrap(blob, sizeof(blob), pass, strlen(pass), back), 0);
	assert_memory_equal(master, back, VKEY_LEN);
	/* wrong passphrase */
	assert_int_equal(vkey_unwrap(blob, sizeof(blob), "wrong passphrase", 16, back),
			 -EACCES);
	/* a tampered salt or parameter: the key does not come out */
	memcpy(bad, blob, sizeof(bad));
	bad[12] ^= 1;
	assert_int_equal(vkey_unwrap(bad, sizeof(bad), pass, strlen(pass), back), -EACCES);
	/* hostile KDF parameters are refused before any work */
	memcpy(bad, blob, sizeof(bad));
	bad[6] = 30;
	assert_int_equal(vkey_unwrap(bad, sizeof(bad), pass, strlen(pass), back), -EBADMSG);
	memcpy(bad, blob, sizeof(bad));
	bad[7] = 200;
	assert_int_equal(vkey_blob_kind(bad, sizeof(bad)), -EBADMSG);
	assert_int_equal(vkey_blob_kind(blob, sizeof(blob) - 1), -EBADMSG);
	memcpy(bad, blob, sizeof(bad));
	bad[0] = 'X';
	assert_int_equal(vkey_blob_kind(bad, sizeof(bad)), -EBADMSG);
	/* too short a secret cannot wrap */
	assert_int_equal(vkey_wrap(master, VKEY_PASSPHRASE, "short", 5, blob), -EINVAL);
}

static void test_wrap_keyfile(void **state)
{
	uint8_t master[VKEY_LEN], back[VKEY_LEN], blob[VKEY_BLOB_LEN], kf[32];

	(void)state;
	random_fill(master, sizeof(master));
	random_fill(kf, sizeof(kf));
	assert_int_equal(vkey_wrap(master, VKEY_KEYFILE, kf, sizeof(kf), blob), 0);
	assert_int_equal(vkey_blob_kind(blob, sizeof(blob)), VKEY_KEYFILE);
	assert_int_equal(vkey_unwrap(blob, sizeof(blob), kf, sizeof(kf), back), 0);
	assert_memory_equal(master, back, VKEY_LEN);
	kf[31] ^= 0x80;
	assert_int_equal(vkey_unwrap(blob, sizeof(blob), kf, sizeof(kf), back), -EACCES);
}

static void make_hdr(struct chunk_hdr *h)
{
	memset(h, 0, sizeof(*h));
	h->magic = CHUNK_HDR_MAGIC;
	h->version = CHUNK_HDR_VERSION;
	chunk_id_new(h->chunk_id);
	random_fill(h->owner, sizeof(h->owner));
}

static struct vkey *new_vkey(void)
{
	uint8_t master[VKEY_LEN];
	struct vkey *vk = malloc(sizeof(*vk));

	assert_non_null(vk);
	random_fill(master, sizeof(master));
	assert_int_equal(vkey_derive(master, vk), 0);
	return vk;
}

static void seal_roundtrip(size_t len, bool compressible)
{
	struct vkey *vk = new_vkey(), *other = new_vkey();
	uint8_t *raw = malloc(len), *back = malloc(len), *stored = NULL;
	struct chunk_hdr h, h2;
	static const char marker[] = "MARKER-in-the-clear-0123456789";

	assert_non_null(raw);
	assert_non_null(back);
	if (compressible) {
		for (size_t i = 0; i < len; i++)
			raw[i] = (uint8_t)marker[i % (sizeof(marker) - 1)];
	} else {
		random_fill(raw, len);
		memcpy(raw, marker, MIN(len, sizeof(marker) - 1));
	}
	make_hdr(&h);
	assert_int_equal(chunk_seal_encode(vk, raw, len, 1, &h, &stored), 0);
	assert_true(h.flags & CHUNK_F_ENCRYPTED);
	assert_int_equal(!!(h.flags & CHUNK_F_ZSTD), compressible);
	assert_int_equal(h.raw_len, len);
	if (!compressible)
		assert_int_equal(h.stored_len, len + CHUNK_SEAL_OVERHEAD);
	if (len >= 16)
		assert_null(memmem(stored, h.stored_len, marker, MIN(len, sizeof(marker) - 1)));
	assert_int_equal(chunk_open_decode(vk, &h, stored, h.stored_len, back), 0);
	assert_memory_equal(raw, back, len);
	/* fields that differ between replicas are not bound */
	h2 = h;
	h2.vendor_id = 7;
	h2.chain_len = 1;
	h2.chain[0] = 7;
	h2.lease_id = 99;
	assert_int_equal(chunk_open_decode(vk, &h2, stored, h.stored_len, back), 0);
	/* identity fields are: another owner or chunk id (digest made to match) */
	h2 = h;
	h2.owner[0] ^= 1;
	assert_int_equal(chunk_open_decode(vk, &h2, stored, h.stored_len, back), -EBADMSG);
	h2 = h;
	h2.chunk_id[5] ^= 1;
	assert_int_equal(chunk_open_decode(vk, &h2, stored, h.stored_len, back), -EBADMSG);
	/* the wrong volume key */
	assert_int_equal(chunk_open_decode(other, &h, stored, h.stored_len, back), -EBADMSG);
	/* without a key: refused, and an unencrypted chunk on an encrypted volume too */
	assert_int_equal(chunk_open_decode(NULL, &h, stored, h.stored_len, back), -EPROTO);
	/* a byte flipped with the digest fixed up (a vendor forging): the tag fails */
	for (size_t i = 0; i < h.stored_len; i += 1 + h.stored_len / 97) {
		stored[i] ^= 0x40;
		h2 = h;
		chunk_digest(stored, h.stored_len, h2.digest);
		assert_int_equal(chunk_open_decode(vk, &h2, stored, h.stored_len, back),
				 -EBADMSG);
		/* and without the fix-up: the digest */
		assert_int_equal(chunk_open_decode(vk, &h, stored, h.stored_len, back),
				 -EBADMSG);
		stored[i] ^= 0x40;
	}
	free(stored);
	free(raw);
	free(back);
	free(vk);
	free(other);
}

static void test_chunk_seal(void **state)
{
	(void)state;
	seal_roundtrip(1, false);
	seal_roundtrip(4096, false);
	seal_roundtrip(256 << 10, true);
	seal_roundtrip(300 << 10, false);
}

static void test_chunk_clear_refused(void **state)
{
	struct vkey *vk = new_vkey();
	uint8_t raw[1000], back[1000], *stored = NULL;
	size_t slen;
	struct chunk_hdr h;

	(void)state;
	random_fill(raw, sizeof(raw));
	make_hdr(&h);
	h.raw_len = sizeof(raw);
	assert_int_equal(chunk_encode(raw, sizeof(raw), 1, &stored, &slen, &h.flags, h.digest),
			 0);
	h.stored_len = (uint32_t)slen;
	assert_int_equal(chunk_open_decode(vk, &h, stored, slen, back), -EPROTO);
	assert_int_equal(chunk_open_decode(NULL, &h, stored, slen, back), 0);
	free(stored);
	free(vk);
}

static void test_mirror_seal(void **state)
{
	struct vkey *vk = new_vkey(), *other = new_vkey();
	uint8_t owner[CHUNK_OWNER_LEN], owner2[CHUNK_OWNER_LEN];
	uint8_t hk[VKEY_MIRROR_KEY_LEN], hk2[VKEY_MIRROR_KEY_LEN], *sv = NULL, *sv2 = NULL,
								   *plain;
	const uint8_t *k, *v;
	size_t sl, sl2, kl, vl;
	static const uint8_t key[] = "d\0\0\0\0\0\0\0\1secret-name.txt";
	static const uint8_t val[] = "\1value";

	(void)state;
	random_fill(owner, sizeof(owner));
	memcpy(owner2, owner, sizeof(owner));
	owner2[0] ^= 1;
	assert_int_equal(vkey_mirror_seal(vk, owner, key, sizeof(key) - 1, val, sizeof(val) - 1,
					  hk, &sv, &sl),
			 0);
	assert_int_equal(sl % 64, CHUNK_SEAL_OVERHEAD);
	assert_null(memmem(sv, sl, "secret", 6));
	assert_null(memmem(hk, sizeof(hk), "secret", 6));
	assert_int_equal(
	    vkey_mirror_open(vk, owner, hk, sizeof(hk), sv, sl, &plain, &k, &kl, &v, &vl), 0);
	assert_int_equal(kl, sizeof(key) - 1);
	assert_memory_equal(k, key, kl);
	assert_int_equal(vl, sizeof(val) - 1);
	assert_memory_equal(v, val, vl);
	free(plain);
	/* the same key always hashes the same (deletes find it); a key only */
	assert_int_equal(
	    vkey_mirror_seal(vk, owner, key, sizeof(key) - 1, NULL, 0, hk2, NULL, NULL), 0);
	assert_memory_equal(hk, hk2, sizeof(hk));
	/* another volume key, another volume, another slot, a flipped byte */
	assert_int_equal(
	    vkey_mirror_open(other, owner, hk, sizeof(hk), sv, sl, &plain, &k, &kl, &v, &vl),
	    -EBADMSG);
	assert_int_equal(
	    vkey_mirror_open(vk, owner2, hk, sizeof(hk), sv, sl, &plain, &k, &kl, &v, &vl),
	    -EBADMSG);
	assert_int_equal(vkey_mirror_seal(vk, owner, (const uint8_t *)"i12345678", 9, val, 1,
					  hk2, &sv2, &sl2),
			 0);
	assert_int_equal(
	    vkey_mirror_open(vk, owner, hk2, sizeof(hk2), sv, sl, &plain, &k, &kl, &v, &vl),
	    -EBADMSG);
	assert_int_equal(
	    vkey_mirror_open(vk, owner, hk, sizeof(hk), sv2, sl2, &plain, &k, &kl, &v, &vl),
	    -EBADMSG);
	for (size_t i = 0; i < sl; i++) {
		sv[i] ^= 1;
		assert_int_equal(vkey_mirror_open(vk, owner, hk, sizeof(hk), sv, sl, &plain, &k,
						  &kl, &v, &vl),
				 -EBADMSG);
		sv[i] ^= 1;
	}
	assert_int_equal(
	    vkey_mirror_open(vk, owner, hk, sizeof(hk), sv, sl - 1, &plain, &k, &kl, &v, &vl),
	    -EBADMSG);
	assert_int_equal(
	    vkey_mirror_open(vk, owner, hk, sizeof(hk) - 1, sv, sl, &plain, &k, &kl, &v, &vl),
	    -EBADMSG);
	free(sv);
	free(sv2);
	free(vk);
	free(other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wrap_passphrase), cmocka_unit_test(test_wrap_keyfile),
	    cmocka_unit_test(test_chunk_seal),	    cmocka_unit_test(test_chunk_clear_refused),
	    cmocka_unit_test(test_mirror_seal),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
