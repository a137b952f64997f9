/*
 * test_alloc_vstats.c - replica ordering by live latency (src/alloc/vstats.c):
 * faster first, failures pushed back for a while, untried vendors neutral,
 * ties in the given order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "alloc_int.h"

static void order3(struct vstats *v, uint32_t a, uint32_t b, uint32_t c, uint64_t now,
		   uint32_t *out)
{
	uint32_t in[3] = {a, b, c};

	vstats_order(v, in, 3, out, now);
}

static void test_faster_first(void **state)
{
	struct vstats *v = vstats_new();
	uint32_t out[3];

	(void)state;
	/* no data at all: the given order */
	order3(v, 1, 2, 3, 1000, out);
	assert_int_equal(out[0], 1);
	assert_int_equal(out[1], 2);
	assert_int_equal(out[2], 3);
	vstats_ok(v, 1, 9000, 1000);
	vstats_ok(v, 2, 1000, 1000);
	vstats_ok(v, 3, 5000, 1000);
	order3(v, 1, 2, 3, 1000, out);
	assert_int_equal(out[0], 2);
	assert_int_equal(out[1], 3);
	assert_int_equal(out[2], 1);
	vstats_free(v);
}

static void test_ewma_moves(void **state)
{
	struct vstats *v = vstats_new();
	uint32_t out[3];

	(void)state;
	vstats_ok(v, 1, 1000, 0);
	vstats_ok(v, 2, 2000, 0);
	assert_int_equal(vstats_estimate(v, 1, 0, NULL), 1000);
	/* vendor 1 becomes slow: a few samples move it behind vendor 2 */
	for (int i = 0; i < 5; i++)
		vstats_ok(v, 1, 10000, 0);
	assert_true(vstats_estimate(v, 1, 0, NULL) > 2000);
	order3(v, 1, 2, 3, 0, out);
	assert_int_equal(out[0], 2);
	vstats_free(v);
}

static void test_untried_neutral(void **state)
{
	struct vstats *v = vstats_new();
	uint32_t out[3];

	(void)state;
	vstats_ok(v, 1, 1000, 0);
	vstats_ok(v, 2, 9000, 0);
	/* vendor 3 untried: mean (5000), between the two */
	order3(v, 2, 3, 1, 0, out);
	assert_int_equal(out[0], 1);
	assert_int_equal(out[1], 3);
	assert_int_equal(out[2], 2);
	vstats_free(v);
}

static void test_failure_pushes_back(void **state)
{
	struct vstats *v = vstats_new();
	uint32_t out[3];
	bool pen;

	(void)state;
	vstats_ok(v, 1, 100, 0);
	vstats_ok(v, 2, 5000, 0);
	vstats_ok(v, 3, 9000, 0);
	vstats_fail(v, 1, 10000);
	vstats_estimate(v, 1, 10000, &pen);
	assert_true(pen);
	order3(v, 1, 2, 3, 10000, out);
	assert_int_equal(out[0], 2);
	assert_int_equal(out[1], 3);
	assert_int_equal(out[2], 1);
	/* after the penalty (1 s for a first failure) it is back in front */
	order3(v, 1, 2, 3, 11001, out);
	assert_int_equal(out[0], 1);
	/* consecutive failures: longer penalties */
	vstats_fail(v, 1, 20000);
	vstats_fail(v, 1, 20000);
	vstats_fail(v, 1, 20000);
	order3(v, 1, 2, 3, 25000, out);
	assert_int_equal(out[2], 1);
	order3(v, 1, 2, 3, 28001, out);
	assert_int_equal(out[0], 1);
	/* two penalized: the one back sooner first */
	vstats_fail(v, 2, 30000);
	vstats_fail(v, 1, 30500);
	order3(v, 1, 2, 3, 30600, out);
	assert_int_equal(out[0], 3);
	assert_int_equal(out[1], 2);
	assert_int_equal(out[2], 1);
	/* a success clears the penalty */
	vstats_ok(v, 1, 100, 30700);
	order3(v, 1, 2, 3, 30700, out);
	assert_int_equal(out[0], 1);
	vstats_free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_faster_first),
	    cmocka_unit_test(test_ewma_moves),
	    cmocka_unit_test(test_untried_neutral),
	    cmocka_unit_test(test_failure_pushes_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
