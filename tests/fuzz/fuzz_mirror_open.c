/*
 * fuzz_mirror_open.c - opening a sealed metadata mirror entry
 * (src/chunk/aead.c vkey_mirror_open, called by src/alloc/volkey.c
 * volkey_open_item for every item the FAT returns to an encrypted mount):
 * the FAT keeps the HMAC'd keys and sealed values, so both are hostile.
 *
 * Input: byte 0 selects the mode.
 *  - even: as the FAT sends it: byte 1 is the key length (0..63), then the
 *    HMAC key, then the sealed value.  Reaches the length checks and the tag
 *    comparison (a FAT cannot forge a tag).
 *  - odd: the rest is the plaintext record (version, key length, key, value
 *    length, value, padding), zero-padded to the 64-byte multiple the format
 *    wants and sealed with the fixed volume key by fuzz_crypt.c; its HMAC
 *    key is computed from the key bytes the record claims (when they are in
 *    bounds), so the record parser after the tag is what gets fuzzed.
 * Accepted entries must lie inside the opened buffer, bind to their HMAC
 * key, and re-seal and re-open to the same key and value.
 */
#include <stdlib.h>
#include <string.h>

#include "aead.h"
#include "fuzz_common.h"
#include "fuzz_crypt.h"

#define PAD 64

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	fuzz_crypt_vkey();
	return 0;
}

static void check_open(const uint8_t *hkey, size_t hklen, const uint8_t *sval, size_t slen,
		       const uint8_t *plain_in)
{
	const struct vkey *vk = fuzz_crypt_vkey();
	uint8_t *plain = NULL, *plain2 = NULL, *sv2 = NULL, hk2[VKEY_MIRROR_KEY_LEN];
	const uint8_t *key, *val, *key2, *val2;
	size_t klen, vlen, klen2, vlen2, sl2, plen;

	if (vkey_mirror_open(vk, fuzz_crypt_owner, hkey, hklen, sval, slen, &plain, &key, &klen,
			     &val, &vlen) != 0) {
		if (plain)
			abort(); /* a failure must not hand out a buffer */
		return;
	}
	plen = slen - CHUNK_SEAL_OVERHEAD;
	if (!plain || hklen != VKEY_MIRROR_KEY_LEN || klen == 0 || key != plain + 3 ||
	    val != key + klen + 4 || 7 + klen + vlen > plen)
		abort();
	if (plain_in && memcmp(plain, plain_in, 7 + klen + vlen) != 0)
		abort();
	/* the same entry, sealed by the encoder, opens to the same thing */
	if (vkey_mirror_seal(vk, fuzz_crypt_owner, key, klen, val, vlen, hk2, &sv2, &sl2) !=
		0 ||
	    memcmp(hk2, hkey, VKEY_MIRROR_KEY_LEN) != 0 ||
	    vkey_mirror_open(vk, fuzz_crypt_owner, hk2, sizeof(hk2), sv2, sl2, &plain2, &key2,
			     &klen2, &val2, &vlen2) != 0 ||
	    klen2 != klen || vlen2 != vlen || memcmp(key2, key, klen) != 0 ||
	    (vlen && memcmp(val2, val, vlen) != 0))
		abort();
	free(plain);
	free(plain2);
	free(sv2);
}

static void raw_mode(const uint8_t *data, size_t size)
{
	uint8_t *hkey, *sval;
	size_t hklen, slen;

	if (size < 1)
		return;
	hklen = data[0] % 64;
	if (hklen > size - 1)
		hklen = size - 1;
	slen = size - 1 - hklen;
	hkey = malloc(hklen ? hklen : 1);
	sval = malloc(slen ? slen : 1);
	if (hkey && sval) {
		memcpy(hkey, data + 1, hklen);
		memcpy(sval, data + 1 + hklen, slen);
		check_open(hkey, hklen, sval, slen, NULL);
	}
	free(hkey);
	free(sval);
}

static void sealed_mode(const uint8_t *data, size_t size)
{
	uint8_t hkey[VKEY_MIRROR_KEY_LEN] = {0}, *plain, *sval;
	size_t plen = (size + PAD - 1) / PAD * PAD, kl;

	if (plen == 0)
		plen = PAD;
	plain = calloc(1, plen);
	sval = malloc(plen + CHUNK_SEAL_OVERHEAD);
	if (!plain || !sval)
		goto out;
	memcpy(plain, data, size);
	kl = size >= 3 ? (size_t)data[1] << 8 | data[2] : 0;
	if (kl > 0 && 3 + kl <= plen &&
	    vkey_mirror_seal(fuzz_crypt_vkey(), fuzz_crypt_owner, plain + 3, kl, NULL, 0, hkey,
			     NULL, NULL) != 0)
		abort();
	fuzz_mirror_seal_raw(hkey, plain, plen, sval);
	check_open(hkey, sizeof(hkey), sval, plen + CHUNK_SEAL_OVERHEAD, plain);
out:
	free(plain);
	free(sval);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		sealed_mode(data + 1, size - 1);
	else
		raw_mode(data + 1, size - 1);
	return 0;
}
