/*
 * fuzz_cap_token.c - capability tokens (cap_token_verify), as a vendor
 * receives them in a put's chain.  The first byte picks the mode:
 *   even: the rest is a SignedToken from the wire, verified with the FAT key
 *         (a forged, truncated or oversized token must be refused);
 *   odd:  the rest is a CapToken body, which the target signs with the key
 *         and verifies, so that the decoding behind the signature check
 *         (field sizes) is fuzzed too.
 * A wire token that verifies must round-trip: re-signing its fields and
 * verifying again gives the same fields.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "chunk.h"
#include "fuzz_common.h"
#include "pstore.pb-c.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	fuzz_key();
	return 0;
}

static void roundtrip(const struct cap_token *t)
{
	struct cap_token t2;
	uint8_t *buf = NULL;
	size_t len = 0;

	if (cap_token_sign(fuzz_key(), t, &buf, &len) != 0)
		abort();
	memset(&t2, 0, sizeof(t2));
	if (cap_token_verify(fuzz_key(), buf, len, &t2) != 0 ||
	    memcmp(t->owner, t2.owner, CHUNK_OWNER_LEN) != 0 || t->vendor_id != t2.vendor_id ||
	    t->lease_id != t2.lease_id || t->byte_limit != t2.byte_limit ||
	    t->expiry_ms != t2.expiry_ms)
		abort();
	free(buf);
}

/* Wraps body (any bytes) into a SignedToken with a valid signature by the
 * FAT key, as only the FAT could: what cap_token_verify then decodes behind
 * the signature check is the fuzzed body itself. */
static uint8_t *sign_body(const uint8_t *body, size_t blen, size_t *out_len)
{
	static EVP_PKEY *pkey;
	Pstore__SignedToken st = PSTORE__SIGNED_TOKEN__INIT;
	uint8_t sig[64], *buf = NULL;
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md;

	if (!pkey)
		pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, fuzz_key_seed, 32);
	md = EVP_MD_CTX_new();
	if (!pkey || !md)
		abort();
	if (EVP_DigestSignInit(md, NULL, NULL, NULL, pkey) != 1 ||
	    EVP_DigestSign(md, sig, &siglen, body, blen) != 1)
		abort();
	EVP_MD_CTX_free(md);
	st.body.data = (uint8_t *)body;
	st.body.len = blen;
	st.sig.data = sig;
	st.sig.len = siglen;
	*out_len = pstore__signed_token__get_packed_size(&st);
	buf = malloc(*out_len);
	if (!buf)
		return NULL;
	pstore__signed_token__pack(&st, buf);
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cap_token t;
	uint8_t *buf;
	size_t len;

	if (size < 1)
		return 0;
	if ((data[0] & 1) == 0) {
		len = size - 1;
		buf = malloc(len ? len : 1);
		if (!buf)
			return 0;
		memcpy(buf, data + 1, len);
	} else {
		buf = sign_body(data + 1, size - 1, &len);
		if (!buf)
			return 0;
	}
	memset(&t, 0, sizeof(t));
	/* The round trip costs two more Ed25519 operations: only for tokens
	 * from the wire, not for every body the target signed itself. */
	if (cap_token_verify(fuzz_key(), buf, len, &t) == 0 && (data[0] & 1) == 0)
		roundtrip(&t);
	free(buf);
	return 0;
}
