/*
 * fuzz_vkey_blob.c - the wrapped volume key (src/chunk/aead.c
 * vkey_blob_kind, vkey_unwrap, as src/alloc/volkey.c open_blob calls them):
 * the blob is VolumeInfo.key_blob, kept and served by the FAT, so it is
 * hostile; the secret is the user's.  Input: byte 0 is the blob length
 * (0..255, cut to what follows), then the blob, then the secret.
 *
 * What runs, and what does not:
 *  - every blob goes through vkey_blob_kind (magic, version, kind, zero
 *    bytes, KDF parameter bounds); vkey_unwrap must agree with it;
 *  - a key-file blob is opened for real with the secret (HKDF + AES-GCM):
 *    tag failures, and on success the key re-wraps and re-opens to itself;
 *  - a passphrase blob is NOT opened: scrypt at its smallest accepted cost
 *    (N = 2^10) runs a few milliseconds under ASan, which would hold the
 *    target far below 100,000 inputs in 30 s.  The target checks instead
 *    that the accepted KDF parameters are within the bounds aead.c promises
 *    (memory 128 * r * N at most 256 MiB) and that vkey_unwrap gets past the
 *    parse (no secret: -EACCES, before any KDF).  scrypt itself is OpenSSL's.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aead.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	return 0;
}

static void check_keyfile(const uint8_t *blob, size_t blen, const uint8_t *secret, size_t slen)
{
	uint8_t master[VKEY_LEN], again[VKEY_LEN], nblob[VKEY_BLOB_LEN];
	int rc;

	if (blob[6] || blob[7] || blob[8])
		abort(); /* a key-file blob carries no KDF parameters */
	rc = vkey_unwrap(blob, blen, secret, slen, master);
	if (rc != 0) {
		if (rc != -EACCES && rc != -EIO)
			abort();
		return;
	}
	if (slen < VKEY_SECRET_MIN)
		return; /* opens, but vkey_wrap would not make such a blob */
	if (vkey_wrap(master, VKEY_KEYFILE, secret, slen, nblob) != 0 ||
	    vkey_blob_kind(nblob, sizeof(nblob)) != VKEY_KEYFILE ||
	    vkey_unwrap(nblob, sizeof(nblob), secret, slen, again) != 0 ||
	    memcmp(master, again, VKEY_LEN) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *blob, *secret, master[VKEY_LEN];
	size_t blen, slen;
	int kind, rc;

	if (size < 1)
		return 0;
	blen = data[0] < size - 1 ? data[0] : size - 1;
	slen = size - 1 - blen;
	blob = malloc(blen ? blen : 1); /* exact sizes: ASan sees any overread */
	secret = malloc(slen ? slen : 1);
	if (!blob || !secret)
		goto out;
	memcpy(blob, data + 1, blen);
	memcpy(secret, data + 1 + blen, slen);
	kind = vkey_blob_kind(blob, blen);
	if (kind < 0) {
		if (kind != -EBADMSG)
			abort();
		/* rejected before any KDF, whatever the secret */
		if (vkey_unwrap(blob, blen, secret, slen, master) != -EBADMSG)
			abort();
		goto out;
	}
	if (blen != VKEY_BLOB_LEN || memcmp(blob, "PSVK", 4) != 0 || blob[4] != 1 || blob[9] ||
	    blob[10] || blob[11] || blob[5] != kind)
		abort();
	if (kind == VKEY_KEYFILE) {
		check_keyfile(blob, blen, secret, slen);
	} else if (kind == VKEY_PASSPHRASE) {
		if (blob[6] < 10 || blob[6] > 20 || blob[7] < 1 || blob[7] > 32 ||
		    blob[8] < 1 || blob[8] > 4 ||
		    (UINT64_C(128) * blob[7] << blob[6]) > (UINT64_C(256) << 20))
			abort();
		rc = vkey_unwrap(blob, blen, NULL, 0, master);
		if (rc != -EACCES)
			abort();
	} else {
		abort();
	}
out:
	free(blob);
	free(secret);
	return 0;
}
