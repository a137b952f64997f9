/*
 * test_chunk.c - chunk header round trip and rejection of bad headers, the
 * codec (compressible, incompressible, corrupted payloads) and capability
 * token signing/verification (forged, tampered, wrong key).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "chunk.h"
#include "common.h"

static void make_hdr(struct chunk_hdr *h)
{
	memset(h, 0, sizeof(*h));
	chunk_id_new(h->chunk_id);
	random_fill(h->owner, sizeof(h->owner));
	h->lease_id = 0x1122334455667788ull;
	h->vendor_id = 3;
	h->chain_len = 2;
	h->chain[0] = 3;
	h->chain[1] = 9;
	h->pieces = 2;
	h->raw_len = 1000;
	h->stored_len = 1000;
	random_fill(h->digest, sizeof(h->digest));
}

static void test_hdr_roundtrip(void **state)
{
	struct chunk_hdr h, d;
	uint8_t raw[CHUNK_HDR_LEN];

	(void)state;
	make_hdr(&h);
	chunk_hdr_encode(&h, raw);
	assert_int_equal(chunk_hdr_decode(raw, sizeof(raw), &d), 0);
	assert_memory_equal(d.chunk_id, h.chunk_id, CHUNK_ID_LEN);
	assert_int_equal(d.lease_id, h.lease_id);
	assert_int_equal(d.chain[1], 9);
	assert_int_equal(chunk_hdr_chain_pos(&d, 9), 1);
	assert_int_equal(chunk_hdr_chain_pos(&d, 4), -1);
	assert_int_equal(chunk_hdr_decode(raw, sizeof(raw) - 1, &d), -EPROTO);
}

static void test_hdr_rejects(void **state)
{
	struct chunk_hdr h, d;
	uint8_t raw[CHUNK_HDR_LEN];

	(void)state;
	make_hdr(&h);
	h.chain[1] = 3; /* same vendor twice */
	chunk_hdr_encode(&h, raw);
	assert_int_equal(chunk_hdr_decode(raw, sizeof(raw), &d), -EPROTO);
	make_hdr(&h);
	h.pieces = 0;
	chunk_hdr_encode(&h, raw);
	assert_int_equal(chunk_hdr_decode(raw, sizeof(raw), &d), -EPROTO);
	make_hdr(&h);
	h.raw_len = h.stored_len = CHUNK_MAX_RAW + 1;
	chunk_hdr_encode(&h, raw);
	assert_int_equal(chunk_hdr_decode(raw, sizeof(raw), &d), -EMSGSIZE);
	make_hdr(&h);
	h.chain_len = 9;
	chunk_hdr_encode(&h, raw);
	assert_int_equal(chunk_hdr_decode(raw, sizeof(raw), &d), -EPROTO);
	make_hdr(&h);
	h.vendor_id = 9;
	chunk_hdr_encode(&h, raw);
	assert_int_equal(chunk_hdr_decode(raw, sizeof(raw), &d), -EPROTO);
	make_hdr(&h);
	chunk_hdr_encode(&h, raw);
	raw[140] = 1; /* padding must be zero */
	assert_int_equal(chunk_hdr_decode(raw, sizeof(raw), &d), -EPROTO);
	/* random bytes never decode into something accepted by accident */
	for (int i = 0; i < 10000; i++) {
		random_fill(raw, sizeof(raw));
		assert_int_not_equal(chunk_hdr_decode(raw, sizeof(raw), &d), 0);
	}
}

static void roundtrip(const uint8_t *raw, size_t len, bool expect_zstd)
{
	struct chunk_hdr h;
	uint8_t *stored, *back = malloc(len + 1);
	size_t slen;

	memset(&h, 0, sizeof(h));
	assert_int_equal(chunk_encode(raw, len, 1, &stored, &slen, &h.flags, h.digest), 0);
	assert_int_equal(!!(h.flags & CHUNK_F_ZSTD), expect_zstd);
	if (expect_zstd)
		assert_true(slen < len);
	h.raw_len = (uint32_t)len;
	h.stored_len = (uint32_t)slen;
	assert_int_equal(chunk_decode(&h, stored, slen, back), 0);
	assert_memory_equal(back, raw, len);
	stored[slen / 2] ^= 0x40;
	assert_int_equal(chunk_decode(&h, stored, slen, back), -EBADMSG);
	free(stored);
	free(back);
}

static void test_codec(void **state)
{
	size_t len = 4u << 20;
	uint8_t *buf = malloc(len);

	(void)state;
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)("pstore text "[i % 12]);
	roundtrip(buf, len, true);
	random_fill(buf, len);
	roundtrip(buf, len, false);
	roundtrip(buf, 100, false);
	free(buf);
}

static void test_cap_tokens(void **state)
{
	char path[128], path2[128];
	struct cap_key *k, *k2, *pub;
	struct cap_token t = {
	    .vendor_id = 4, .lease_id = 77, .byte_limit = 1 << 20, .expiry_ms = 123456};
	struct cap_token v;
	uint8_t pk[32], *tok;
	size_t len;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/pstore-test-key-%d", (int)getpid());
	snprintf(path2, sizeof(path2), "/tmp/pstore-test-key2-%d", (int)getpid());
	random_fill(t.owner, sizeof(t.owner));
	k = cap_key_load(path, true);
	k2 = cap_key_load(path2, true);
	assert_non_null(k);
	assert_non_null(k2);
	assert_int_equal(cap_key_public(k, pk), 0);
	pub = cap_key_from_public(pk);
	assert_int_equal(cap_token_sign(k, &t, &tok, &len), 0);
	assert_int_equal(cap_token_verify(pub, tok, len, &v), 0);
	assert_int_equal(v.lease_id, 77);
	assert_int_equal(v.vendor_id, 4);
	assert_memory_equal(v.owner, t.owner, sizeof(t.owner));
	/* the public half cannot sign */
	assert_int_equal(cap_token_sign(pub, &t, &tok, &len) < 0, 1);
	/* another key's signature is refused */
	{
		uint8_t *tok2;
		size_t len2;

		assert_int_equal(cap_token_sign(k2, &t, &tok2, &len2), 0);
		assert_int_equal(cap_token_verify(pub, tok2, len2, &v), -EACCES);
		free(tok2);
	}
	/* any flipped byte is refused */
	for (size_t i = 0; i < len; i++) {
		tok[i] ^= 1;
		assert_int_not_equal(cap_token_verify(pub, tok, len, &v), 0);
		tok[i] ^= 1;
	}
	assert_int_equal(cap_token_verify(pub, tok, 0, &v), -EBADMSG);
	free(tok);
	/* reloading the key gives the same public key */
	cap_key_free(k);
	k = cap_key_load(path, false);
	{
		uint8_t pk2[32];

		assert_int_equal(cap_key_public(k, pk2), 0);
		assert_memory_equal(pk, pk2, 32);
	}
	cap_key_free(k);
	cap_key_free(k2);
	cap_key_free(pub);
	unlink(path);
	unlink(path2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hdr_roundtrip),
	    cmocka_unit_test(test_hdr_rejects),
	    cmocka_unit_test(test_codec),
	    cmocka_unit_test(test_cap_tokens),
	};

	log_init("test_chunk", LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
