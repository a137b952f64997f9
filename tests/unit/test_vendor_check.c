/*
 * test_vendor_check.c - what a vendor checks before storing a chunk, called
 * without a socket: the capability token (forged signature, wrong vendor,
 * wrong owner, wrong lease, expired, over the byte limit, no FAT key yet,
 * garbage) and the replica chain against the chunk header.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"
#include "vendor.h"

#define SELF 2

static char dir[64];
static struct cap_key *fat, *forger;
static struct chunk_hdr hdr;
static char err[256];

static void sign(struct cap_key *k, uint32_t vendor, const uint8_t *owner, uint64_t lease,
		 uint64_t limit, uint64_t expiry, uint8_t **tok, size_t *len)
{
	struct cap_token t = {
	    .vendor_id = vendor, .lease_id = lease, .byte_limit = limit, .expiry_ms = expiry};

	memcpy(t.owner, owner, CHUNK_OWNER_LEN);
	assert_int_equal(cap_token_sign(k, &t, tok, len), 0);
}

static int check(struct cap_key *k, uint32_t vendor, const uint8_t *owner, uint64_t lease,
		 uint64_t limit, uint64_t expiry, uint64_t accepted)
{
	uint8_t *tok;
	size_t len;
	struct cap_token out;
	int rc;

	sign(k, vendor, owner, lease, limit, expiry, &tok, &len);
	rc = vcheck_token(fat, tok, len, &hdr, SELF, accepted, wall_ms(), &out, err,
			  sizeof(err));
	free(tok);
	return rc;
}

static void test_token_valid(void **state)
{
	(void)state;
	assert_int_equal(
	    check(fat, SELF, hdr.owner, hdr.lease_id, 1 << 20, wall_ms() + 60000, 0), 0);
	/* exactly at the limit */
	assert_int_equal(
	    check(fat, SELF, hdr.owner, hdr.lease_id, 4096 + 100, wall_ms() + 60000, 100), 0);
}

static void test_token_forged(void **state)
{
	(void)state;
	assert_int_equal(
	    check(forger, SELF, hdr.owner, hdr.lease_id, 1 << 20, wall_ms() + 60000, 0),
	    -EACCES);
	assert_non_null(strstr(err, "signature"));
}

static void test_token_wrong_vendor(void **state)
{
	(void)state;
	assert_int_equal(
	    check(fat, SELF + 1, hdr.owner, hdr.lease_id, 1 << 20, wall_ms() + 60000, 0),
	    -EACCES);
	assert_non_null(strstr(err, "vendor"));
}

static void test_token_wrong_owner(void **state)
{
	uint8_t other[CHUNK_OWNER_LEN] = {0xee};

	(void)state;
	assert_int_equal(check(fat, SELF, other, hdr.lease_id, 1 << 20, wall_ms() + 60000, 0),
			 -EACCES);
	assert_non_null(strstr(err, "owner"));
}

static void test_token_wrong_lease(void **state)
{
	(void)state;
	assert_int_equal(
	    check(fat, SELF, hdr.owner, hdr.lease_id + 1, 1 << 20, wall_ms() + 60000, 0),
	    -EACCES);
	assert_non_null(strstr(err, "lease"));
}

static void test_token_expired(void **state)
{
	(void)state;
	assert_int_equal(check(fat, SELF, hdr.owner, hdr.lease_id, 1 << 20, wall_ms() - 1, 0),
			 -EACCES);
	assert_non_null(strstr(err, "expired"));
}

static void test_token_over_limit(void **state)
{
	(void)state;
	assert_int_equal(check(fat, SELF, hdr.owner, hdr.lease_id, 4095, wall_ms() + 60000, 0),
			 -E2BIG);
	assert_int_equal(
	    check(fat, SELF, hdr.owner, hdr.lease_id, 8192, wall_ms() + 60000, 4097), -E2BIG);
	/* accepted beyond the limit must not wrap around */
	assert_int_equal(
	    check(fat, SELF, hdr.owner, hdr.lease_id, 10, wall_ms() + 60000, 1u << 30), -E2BIG);
}

static void test_token_no_key_or_garbage(void **state)
{
	uint8_t junk[64];
	struct cap_token out;
	uint8_t *tok;
	size_t len;

	(void)state;
	sign(fat, SELF, hdr.owner, hdr.lease_id, 1 << 20, wall_ms() + 60000, &tok, &len);
	assert_int_equal(
	    vcheck_token(NULL, tok, len, &hdr, SELF, 0, wall_ms(), &out, err, sizeof(err)),
	    -EAGAIN);
	free(tok);
	random_fill(junk, sizeof(junk));
	assert_int_equal(vcheck_token(fat, junk, sizeof(junk), &hdr, SELF, 0, wall_ms(), &out,
				      err, sizeof(err)),
			 -EBADMSG);
	assert_int_equal(
	    vcheck_token(fat, junk, 0, &hdr, SELF, 0, wall_ms(), &out, err, sizeof(err)),
	    -EBADMSG);
}

/* ---- chain ---- */

static Pstore__ChainHop hops[4];
static Pstore__ChainHop *phops[4];
static uint8_t dummy_tok[8] = {1};

static Pstore__ChunkPut *make_put(const uint32_t *ids, size_t n)
{
	static Pstore__ChunkPut put;
	static char addrs[4][32];

	pstore__chunk_put__init(&put);
	for (size_t i = 0; i < n; i++) {
		pstore__chain_hop__init(&hops[i]);
		hops[i].vendor_id = ids[i];
		snprintf(addrs[i], sizeof(addrs[i]), "127.0.0.1:%u", 7100 + ids[i]);
		hops[i].address = addrs[i];
		hops[i].token.data = dummy_tok;
		hops[i].token.len = sizeof(dummy_tok);
		phops[i] = &hops[i];
	}
	put.n_chain = n;
	put.chain = phops;
	return &put;
}

static void test_chain(void **state)
{
	static const uint32_t head[] = {2, 5, 7}, mid[] = {5, 7}, wrongorder[] = {2, 7, 5},
			      shorter[] = {2, 5}, notme[] = {5, 7, 2};
	struct chunk_hdr h = hdr;
	Pstore__ChunkPut *p;

	(void)state;
	h.vendor_id = 2;
	h.chain_len = 3;
	h.chain[0] = 2;
	h.chain[1] = 5;
	h.chain[2] = 7;
	assert_int_equal(vcheck_chain(make_put(head, 3), &h, 2, err, sizeof(err)), 0);
	/* a forwarded put: vendor 5 gets the rest of the chain */
	assert_int_equal(vcheck_chain(make_put(mid, 2), &h, 5, err, sizeof(err)), 0);
	assert_int_equal(vcheck_chain(make_put(wrongorder, 3), &h, 2, err, sizeof(err)),
			 -EINVAL);
	assert_int_equal(vcheck_chain(make_put(shorter, 2), &h, 2, err, sizeof(err)), -EINVAL);
	assert_int_equal(vcheck_chain(make_put(notme, 3), &h, 2, err, sizeof(err)), -EINVAL);
	assert_int_equal(vcheck_chain(make_put(head, 3), &h, 9, err, sizeof(err)), -EACCES);
	assert_int_equal(vcheck_chain(make_put(head, 0), &h, 2, err, sizeof(err)), -EINVAL);
	p = make_put(head, 3);
	hops[1].address = "nowhere";
	assert_int_equal(vcheck_chain(p, &h, 2, err, sizeof(err)), -EINVAL);
	p = make_put(head, 3);
	hops[0].token.len = 0;
	assert_int_equal(vcheck_chain(p, &h, 2, err, sizeof(err)), -EACCES);
}

/* A forwarded reply may report only hops after this vendor (M4). */
static void test_downstream(void **state)
{
	struct chunk_hdr h = hdr;

	(void)state;
	h.chain_len = 3;
	h.chain[0] = 2;
	h.chain[1] = 5;
	h.chain[2] = 7;
	assert_true(vcheck_downstream(&h, 2, 5));
	assert_true(vcheck_downstream(&h, 2, 7));
	assert_true(vcheck_downstream(&h, 5, 7));
	assert_false(vcheck_downstream(&h, 5, 2)); /* upstream */
	assert_false(vcheck_downstream(&h, 5, 5)); /* self */
	assert_false(vcheck_downstream(&h, 7, 5));
	assert_false(vcheck_downstream(&h, 2, 9)); /* not in the chain */
	assert_false(vcheck_downstream(&h, 9, 7)); /* we are not in it */
}

/* Each hop waits less than its sender (M7). */
static void test_forward_budget(void **state)
{
	uint32_t d = 30000;

	(void)state;
	assert_true(vcheck_forward_budget(0) < VENDOR_FORWARD_TIMEOUT_MS);
	assert_int_equal(vcheck_forward_budget(0), vcheck_forward_budget(30000));
	assert_int_equal(vcheck_forward_budget(UINT32_MAX), vcheck_forward_budget(30000));
	for (int hop = 0; hop < CHUNK_MAX_CHAIN - 1; hop++) {
		uint32_t next = vcheck_forward_budget(d);

		assert_true(next + VENDOR_HOP_MARGIN_MS <= d);
		d = next;
	}
	assert_int_equal(vcheck_forward_budget(900), 0); /* too little left to forward */
	assert_int_equal(vcheck_forward_budget(1), 0);
}

static void test_peer(void **state)
{
	char role[16];
	const char *id;

	(void)state;
	assert_int_equal(vcheck_peer("client:alice", role, sizeof(role), &id), 0);
	assert_string_equal(role, "client");
	assert_string_equal(id, "alice");
	assert_int_equal(vcheck_peer("vendor", role, sizeof(role), &id), -EINVAL);
	assert_int_equal(vcheck_peer(":3", role, sizeof(role), &id), -EINVAL);
	assert_int_equal(vcheck_peer("vendor:", role, sizeof(role), &id), -EINVAL);
	assert_int_equal(vcheck_peer("averyveryverylongrole:1", role, sizeof(role), &id),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_token_valid),
	    cmocka_unit_test(test_token_forged),
	    cmocka_unit_test(test_token_wrong_vendor),
	    cmocka_unit_test(test_token_wrong_owner),
	    cmocka_unit_test(test_token_wrong_lease),
	    cmocka_unit_test(test_token_expired),
	    cmocka_unit_test(test_token_over_limit),
	    cmocka_unit_test(test_token_no_key_or_garbage),
	    cmocka_unit_test(test_chain),
	    cmocka_unit_test(test_downstream),
	    cmocka_unit_test(test_forward_budget),
	    cmocka_unit_test(test_peer),
	};
	char path[128], cmd[128];
	int rc;

	log_init("test_vendor_check", LOG_ERR);
	snprintf(dir, sizeof(dir), "/tmp/pstore-vcheck-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof(path), "%s/fat.key", dir);
	fat = cap_key_load(path, true);
	snprintf(path, sizeof(path), "%s/forger.key", dir);
	forger = cap_key_load(path, true);
	if (!fat || !forger)
		return 1;
	memset(&hdr, 0, sizeof(hdr));
	chunk_id_new(hdr.chunk_id);
	random_fill(hdr.owner, CHUNK_OWNER_LEN);
	hdr.lease_id = 4242;
	hdr.vendor_id = SELF;
	hdr.chain_len = 1;
	hdr.chain[0] = SELF;
	hdr.stored_len = 4096;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	cap_key_free(fat);
	cap_key_free(forger);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
