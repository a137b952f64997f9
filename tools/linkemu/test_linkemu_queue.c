/*
 * test_linkemu_queue.c - unit tests of one pstore-linkemu direction
 * (queue.c): delay, jitter with and without reordering, loss ratio and
 * its exemption, the queue limit, the token bucket's rate, seeding.
 * Time is made up: the tests pass nanosecond stamps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "linkemu.h"

#define MS 1000000ull

static struct lemu_params params(void)
{
	struct lemu_params p;

	memset(&p, 0, sizeof(p));
	p.limit = 100000;
	return p;
}

/* Pops everything by jumping from event to event; returns the number popped
 * and the time of the last one. */
static uint32_t drain(struct lemu_dir *d, uint64_t *last_t, uint64_t *seqs, uint32_t max)
{
	uint32_t n = 0;
	uint64_t t;

	while ((t = lemu_dir_next(d)) != UINT64_MAX) {
		struct lemu_pkt *p;
		while ((p = lemu_dir_pop(d, t)) != NULL) {
			assert_true(p->due_ns <= t);
			if (seqs && n < max)
				seqs[n] = p->seq;
			n++;
			*last_t = t;
			free(p);
		}
	}
	return n;
}

static void test_plain_passes_at_once(void **state)
{
	struct lemu_dir d;
	struct lemu_params p = params();
	unsigned char pkt[100] = {1, 2, 3};
	struct lemu_pkt *out;

	(void)state;
	assert_int_equal(lemu_dir_init(&d, &p, 1, 0), 0);
	assert_int_equal(lemu_dir_push(&d, 5, pkt, sizeof(pkt), false), 1);
	assert_int_equal(lemu_dir_next(&d), 5);
	out = lemu_dir_pop(&d, 5);
	assert_non_null(out);
	assert_int_equal(out->len, sizeof(pkt));
	assert_memory_equal(out->data, pkt, sizeof(pkt));
	free(out);
	assert_null(lemu_dir_pop(&d, 6));
	assert_int_equal(lemu_dir_next(&d), UINT64_MAX);
	lemu_dir_free(&d);
}

static void test_delay_holds_packet(void **state)
{
	struct lemu_dir d;
	struct lemu_params p = params();
	unsigned char pkt[60] = {0};
	struct lemu_pkt *out;

	(void)state;
	p.delay_ns = 40 * MS;
	assert_int_equal(lemu_dir_init(&d, &p, 1, 0), 0);
	assert_int_equal(lemu_dir_push(&d, 1000, pkt, sizeof(pkt), false), 1);
	assert_null(lemu_dir_pop(&d, 1000 + 40 * MS - 1));
	assert_int_equal(lemu_dir_next(&d), 1000 + 40 * MS);
	out = lemu_dir_pop(&d, 1000 + 40 * MS);
	assert_non_null(out);
	free(out);
	lemu_dir_free(&d);
}

static void jitter_run(bool reorder, enum lemu_dist dist, uint32_t *inversions,
		       uint64_t *min_lat, uint64_t *max_lat)
{
	struct lemu_dir d;
	struct lemu_params p = params();
	unsigned char pkt[64] = {0};
	uint64_t t = 0;

	p.delay_ns = 50 * MS;
	p.jitter_ns = 20 * MS;
	p.reorder = reorder;
	p.dist = dist;
	assert_int_equal(lemu_dir_init(&d, &p, 42, 0), 0);
	*inversions = 0;
	*min_lat = UINT64_MAX;
	*max_lat = 0;
	uint64_t last_seq = 0;
	bool first = true;
	/* 2000 packets, one per ms, popped as time advances */
	for (uint32_t i = 0; i < 2000 || lemu_dir_held(&d) > 0; i++) {
		struct lemu_pkt *out;
		if (i < 2000)
			assert_int_equal(lemu_dir_push(&d, t, pkt, sizeof(pkt), false), 1);
		while ((out = lemu_dir_pop(&d, t)) != NULL) {
			uint64_t sent = out->seq * MS;
			uint64_t lat = t - sent;
			if (!first && out->seq < last_seq)
				(*inversions)++;
			first = false;
			last_seq = out->seq;
			if (lat < *min_lat)
				*min_lat = lat;
			if (lat > *max_lat)
				*max_lat = lat;
			free(out);
		}
		t += MS;
	}
	lemu_dir_free(&d);
}

static void test_jitter_keeps_order_by_default(void **state)
{
	uint32_t inv;
	uint64_t lo, hi;

	(void)state;
	jitter_run(false, LEMU_DIST_UNIFORM, &inv, &lo, &hi);
	assert_int_equal(inv, 0);
	assert_true(lo >= 30 * MS);
	assert_true(hi > 60 * MS); /* jitter did something */
}

static void test_jitter_reorders_when_asked(void **state)
{
	uint32_t inv;
	uint64_t lo, hi;

	(void)state;
	jitter_run(true, LEMU_DIST_UNIFORM, &inv, &lo, &hi);
	assert_true(inv > 100);
	assert_true(lo >= 30 * MS);
	assert_true(hi <= 71 * MS);
}

static void test_normal_jitter_is_bounded_below(void **state)
{
	uint32_t inv;
	uint64_t lo, hi;

	(void)state;
	jitter_run(true, LEMU_DIST_NORMAL, &inv, &lo, &hi);
	assert_true(hi > 80 * MS); /* beyond +-1.5 sigma: a normal tail */
	assert_true(lo < 20 * MS);
}

static void test_loss_ratio_and_exemption(void **state)
{
	struct lemu_dir d;
	struct lemu_params p = params();
	unsigned char pkt[64] = {0};
	uint64_t last = 0;
	uint32_t n;

	(void)state;
	p.loss = 0.30;
	p.limit = 200000;
	assert_int_equal(lemu_dir_init(&d, &p, 7, 0), 0);
	for (int i = 0; i < 100000; i++)
		lemu_dir_push(&d, 0, pkt, sizeof(pkt), false);
	assert_true(d.c.drop_loss > 29000 && d.c.drop_loss < 31000);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(lemu_dir_push(&d, 0, pkt, sizeof(pkt), true), 1);
	assert_true(d.c.drop_loss < 31000);
	n = drain(&d, &last, NULL, 0);
	assert_int_equal(n, 101000 - d.c.drop_loss);
	lemu_dir_free(&d);
}

static void test_limit_drops_tail(void **state)
{
	struct lemu_dir d;
	struct lemu_params p = params();
	unsigned char pkt[64] = {0};
	uint64_t seqs[16], last = 0;

	(void)state;
	p.limit = 10;
	p.delay_ns = MS;
	assert_int_equal(lemu_dir_init(&d, &p, 7, 0), 0);
	for (int i = 0; i < 15; i++)
		lemu_dir_push(&d, 0, pkt, sizeof(pkt), false);
	assert_int_equal(d.c.drop_queue, 5);
	assert_int_equal(lemu_dir_held(&d), 10);
	assert_int_equal(drain(&d, &last, seqs, 16), 10);
	for (int i = 0; i < 10; i++)
		assert_int_equal(seqs[i], i);
	/* room again */
	assert_int_equal(lemu_dir_push(&d, last, pkt, sizeof(pkt), false), 1);
	lemu_dir_free(&d);
}

static void test_rate_paces_packets(void **state)
{
	struct lemu_dir d;
	struct lemu_params p = params();
	unsigned char pkt[1000] = {0};
	uint64_t seqs[200], last = 0;

	(void)state;
	p.rate = 1000000; /* 1 MB/s */
	p.burst = 3028;
	assert_int_equal(lemu_dir_init(&d, &p, 7, 0), 0);
	for (int i = 0; i < 200; i++)
		assert_int_equal(lemu_dir_push(&d, 0, pkt, sizeof(pkt), false), 1);
	assert_int_equal(drain(&d, &last, seqs, 200), 200);
	for (int i = 0; i < 200; i++)
		assert_int_equal(seqs[i], i);
	/* 200 kB at 1 MB/s with a 3 kB head start: ~197 ms */
	assert_true(last >= 196 * MS && last <= 198 * MS);
	lemu_dir_free(&d);
}

static void test_rate_then_delay(void **state)
{
	struct lemu_dir d;
	struct lemu_params p = params();
	unsigned char pkt[1500] = {0};
	uint64_t last = 0;

	(void)state;
	p.rate = 150000; /* 100 full packets per second */
	p.burst = 1514;
	p.delay_ns = 30 * MS;
	assert_int_equal(lemu_dir_init(&d, &p, 7, 0), 0);
	for (int i = 0; i < 11; i++)
		lemu_dir_push(&d, 0, pkt, sizeof(pkt), false);
	assert_int_equal(drain(&d, &last, NULL, 0), 11);
	/* the 11th leaves the bucket after 10 * 10 ms, then 30 ms of delay */
	assert_true(last >= 129 * MS && last <= 131 * MS);
	lemu_dir_free(&d);
}

static void test_seed_reproducible(void **state)
{
	struct lemu_rng a, b, c;
	int same = 0;

	(void)state;
	lemu_rng_seed(&a, 99);
	lemu_rng_seed(&b, 99);
	lemu_rng_seed(&c, 100);
	for (int i = 0; i < 100; i++) {
		uint64_t x = lemu_rng_next(&a);
		assert_int_equal(x, lemu_rng_next(&b));
		same += x == lemu_rng_next(&c);
	}
	assert_int_equal(same, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_passes_at_once),
	    cmocka_unit_test(test_delay_holds_packet),
	    cmocka_unit_test(test_jitter_keeps_order_by_default),
	    cmocka_unit_test(test_jitter_reorders_when_asked),
	    cmocka_unit_test(test_normal_jitter_is_bounded_below),
	    cmocka_unit_test(test_loss_ratio_and_exemption),
	    cmocka_unit_test(test_limit_drops_tail),
	    cmocka_unit_test(test_rate_paces_packets),
	    cmocka_unit_test(test_rate_then_delay),
	    cmocka_unit_test(test_seed_reproducible),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
