/*
 * test_alloc_placement.c - the choice of replica chains (src/alloc/placement.c):
 * distinct vendors, rotation of chain heads, reservations respected, failed
 * vendors replaced, one lease per chain.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "alloc_int.h"

#define MiB (1u << 20)

static void add(struct place *p, uint32_t id, uint64_t lease, uint64_t reserved)
{
	char addr[32];
	uint8_t tok[8] = {(uint8_t)id};

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", 7100 + id);
	assert_int_equal(place_add(p, id, addr, lease, reserved, tok, sizeof(tok)), 0);
}

static void test_distinct_and_charged(void **state)
{
	struct place p;
	size_t out[CHUNK_MAX_CHAIN];

	(void)state;
	place_init(&p);
	for (uint32_t id = 1; id <= 4; id++)
		add(&p, id, 1, 100 * MiB);
	for (int k = 0; k < 30; k++) {
		assert_int_equal(place_choose(&p, 4 * MiB, 3, 0, NULL, 0, out), 0);
		assert_int_not_equal(p.c[out[0]].vendor_id, p.c[out[1]].vendor_id);
		assert_int_not_equal(p.c[out[0]].vendor_id, p.c[out[2]].vendor_id);
		assert_int_not_equal(p.c[out[1]].vendor_id, p.c[out[2]].vendor_id);
	}
	uint64_t total = 0;
	for (size_t i = 0; i < p.n; i++)
		total += p.c[i].charged;
	assert_int_equal(total, 30 * 3 * 4 * MiB);
	/* more hops than vendors is impossible */
	assert_int_equal(place_choose(&p, 1, 5, 0, NULL, 0, out), -ENOSPC);
	place_clear(&p);
}

static void test_heads_rotate(void **state)
{
	struct place p;
	size_t out[2];
	unsigned heads[5] = {0};

	(void)state;
	place_init(&p);
	for (uint32_t id = 1; id <= 4; id++)
		add(&p, id, 7, 1000 * MiB);
	for (int k = 0; k < 40; k++) {
		assert_int_equal(place_choose(&p, MiB, 2, 0, NULL, 0, out), 0);
		heads[p.c[out[0]].vendor_id]++;
	}
	/* every candidate gets first copies, evenly */
	for (uint32_t id = 1; id <= 4; id++)
		assert_int_equal(heads[id], 10);
	/* and the same total load */
	for (size_t i = 0; i < p.n; i++)
		assert_int_equal(p.c[i].charged, 20 * MiB);
	place_clear(&p);
}

static void test_reservations_respected(void **state)
{
	struct place p;
	size_t out[2];

	(void)state;
	place_init(&p);
	add(&p, 1, 1, 8 * MiB);
	add(&p, 2, 1, 100 * MiB);
	add(&p, 3, 1, 100 * MiB);
	for (int k = 0; k < 20; k++) {
		if (place_choose(&p, 4 * MiB, 2, 0, NULL, 0, out) < 0)
			break;
	}
	for (size_t i = 0; i < p.n; i++)
		assert_true(p.c[i].charged <= p.c[i].reserved);
	assert_int_equal(p.c[0].charged, 8 * MiB); /* vendor 1 full, never above */
	/* a chunk larger than any room left */
	assert_int_equal(place_choose(&p, 200 * MiB, 1, 0, NULL, 0, out), -ENOSPC);
	/* giving back a charge makes room again */
	place_uncharge(&p, 0, 4 * MiB);
	assert_int_equal(p.c[0].charged, 4 * MiB);
	place_clear(&p);
}

static void test_failed_replaced(void **state)
{
	struct place p;
	size_t out[2];
	uint32_t have[1];

	(void)state;
	place_init(&p);
	for (uint32_t id = 1; id <= 4; id++)
		add(&p, id, 1, 100 * MiB);
	assert_int_equal(place_fail(&p, 2), 0);
	assert_int_equal(place_fail(&p, 2), 0);
	assert_int_equal(p.n_failed, 1);
	assert_true(place_is_failed(&p, 2));
	for (int k = 0; k < 20; k++) {
		assert_int_equal(place_choose(&p, MiB, 2, 0, NULL, 0, out), 0);
		assert_int_not_equal(p.c[out[0]].vendor_id, 2);
		assert_int_not_equal(p.c[out[1]].vendor_id, 2);
	}
	/* a missing copy: one more vendor, not one that holds it, same lease */
	have[0] = 1;
	for (int k = 0; k < 10; k++) {
		assert_int_equal(place_choose(&p, MiB, 1, 1, have, 1, out), 0);
		assert_int_not_equal(p.c[out[0]].vendor_id, 1);
		assert_int_not_equal(p.c[out[0]].vendor_id, 2);
	}
	/* with 3 of 4 failed, a 2-chain is impossible */
	place_fail(&p, 3);
	place_fail(&p, 4);
	assert_int_equal(place_usable(&p, MiB), 1);
	assert_int_equal(place_choose(&p, MiB, 2, 0, NULL, 0, out), -ENOSPC);
	/* a new lease brings fresh candidates; a failed vendor stays failed */
	add(&p, 3, 2, 100 * MiB);
	add(&p, 5, 2, 100 * MiB);
	add(&p, 6, 2, 100 * MiB);
	assert_true(p.c[p.n - 3].failed);
	assert_int_equal(place_choose(&p, MiB, 2, 0, NULL, 0, out), 0);
	assert_int_equal(p.c[out[0]].lease_id, 2);
	assert_int_equal(p.c[out[1]].lease_id, 2);
	assert_true(p.c[out[0]].vendor_id >= 5 && p.c[out[1]].vendor_id >= 5);
	place_clear(&p);
}

static void test_one_lease_per_chain(void **state)
{
	struct place p;
	size_t out[2];

	(void)state;
	place_init(&p);
	/* lease 1 has one vendor with room, lease 2 another: no mixed chain */
	add(&p, 1, 1, 100 * MiB);
	add(&p, 2, 2, 100 * MiB);
	assert_int_equal(place_choose(&p, MiB, 2, 0, NULL, 0, out), -ENOSPC);
	add(&p, 3, 2, 100 * MiB);
	assert_int_equal(place_choose(&p, MiB, 2, 0, NULL, 0, out), 0);
	assert_int_equal(p.c[out[0]].lease_id, 2);
	assert_int_equal(p.c[out[1]].lease_id, 2);
	/* only_lease restricts the choice */
	assert_int_equal(place_choose(&p, MiB, 1, 1, NULL, 0, out), 0);
	assert_int_equal(p.c[out[0]].vendor_id, 1);
	/* the same vendor under the same lease is not added twice */
	add(&p, 3, 2, 100 * MiB);
	assert_int_equal(p.n, 3);
	/* bad candidates are refused */
	assert_int_equal(place_add(&p, 0, "a:1", 1, 1, NULL, 0), -EINVAL);
	assert_int_equal(place_add(&p, 9, "", 1, 1, NULL, 0), -EINVAL);
	assert_int_equal(place_add(&p, 9, "a:1", 0, 1, NULL, 0), -EINVAL);
	place_clear(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_distinct_and_charged),
	    cmocka_unit_test(test_heads_rotate),
	    cmocka_unit_test(test_reservations_respected),
	    cmocka_unit_test(test_failed_replaced),
	    cmocka_unit_test(test_one_lease_per_chain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
