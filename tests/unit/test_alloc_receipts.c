/*
 * test_alloc_receipts.c - validation receipt queues (src/alloc/receipts.c):
 * a batch is due at RECEIPT_BATCH per vendor, batches come out oldest first,
 * a failed batch is put back in order, queues are bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "alloc_int.h"

static struct receipt mk(uint32_t n)
{
	struct receipt r;

	memset(&r, 0, sizeof(r));
	memcpy(r.chunk_id, &n, sizeof(n));
	r.bytes = n;
	return r;
}

static void test_batch_due(void **state)
{
	struct receipts *r = receipts_new();
	struct receipt out[RECEIPT_BATCH];
	uint32_t ids[4];

	(void)state;
	for (uint32_t i = 0; i < RECEIPT_BATCH - 1; i++) {
		struct receipt x = mk(i);

		assert_false(receipts_add(r, 7, &x));
	}
	struct receipt one = mk(1000);
	assert_false(receipts_add(r, 8, &one));
	assert_int_equal(receipts_vendors(r, true, ids, 4), 0);
	assert_int_equal(receipts_vendors(r, false, ids, 4), 2);
	assert_int_equal(receipts_take(r, 7, true, out, RECEIPT_BATCH), 0);
	struct receipt last = mk(RECEIPT_BATCH - 1);
	assert_true(receipts_add(r, 7, &last));
	assert_int_equal(receipts_vendors(r, true, ids, 4), 1);
	assert_int_equal(ids[0], 7);
	assert_int_equal(receipts_take(r, 7, true, out, RECEIPT_BATCH), RECEIPT_BATCH);
	for (uint32_t i = 0; i < RECEIPT_BATCH; i++)
		assert_int_equal(out[i].bytes, i);
	assert_int_equal(receipts_pending(r), 1);
	/* the periodic flush takes what is there */
	assert_int_equal(receipts_take(r, 8, false, out, RECEIPT_BATCH), 1);
	assert_int_equal(out[0].bytes, 1000);
	assert_int_equal(receipts_pending(r), 0);
	receipts_free(r);
}

static void test_putback_order(void **state)
{
	struct receipts *r = receipts_new();
	struct receipt out[RECEIPT_BATCH];

	(void)state;
	for (uint32_t i = 0; i < 10; i++) {
		struct receipt x = mk(i);

		receipts_add(r, 3, &x);
	}
	assert_int_equal(receipts_take(r, 3, false, out, 4), 4);
	/* two more arrive while the batch is in flight, then it fails */
	struct receipt a = mk(10), b = mk(11);
	receipts_add(r, 3, &a);
	receipts_add(r, 3, &b);
	receipts_putback(r, 3, out, 4);
	assert_int_equal(receipts_take(r, 3, false, out, RECEIPT_BATCH), 12);
	for (uint32_t i = 0; i < 12; i++)
		assert_int_equal(out[i].bytes, i);
	receipts_free(r);
}

static void test_bounded(void **state)
{
	struct receipts *r = receipts_new();
	struct receipt out[RECEIPT_BATCH];

	(void)state;
	for (uint32_t i = 0; i < RECEIPT_QUEUE_MAX + 100; i++) {
		struct receipt x = mk(i);

		receipts_add(r, 1, &x);
	}
	assert_int_equal(receipts_pending(r), RECEIPT_QUEUE_MAX);
	/* the oldest were dropped */
	assert_int_equal(receipts_take(r, 1, false, out, 1), 1);
	assert_int_equal(out[0].bytes, 100);
	/* a putback into a full queue does not push out newer receipts */
	struct receipt x = mk(999999);
	receipts_add(r, 1, &x);
	receipts_putback(r, 1, out, 1);
	assert_int_equal(receipts_pending(r), RECEIPT_QUEUE_MAX);
	receipts_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_batch_due),
	    cmocka_unit_test(test_putback_order),
	    cmocka_unit_test(test_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
