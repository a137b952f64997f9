/*
 * test_alloc_score.c - the scoring function, the preferred set (score.c)
 * and ranked, zone-aware placement (placement.c), driven directly.
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

#include "alloc_int.h"

#define MiB (1u << 20)

static struct score_in healthy(double rtt, int hops)
{
	struct score_in in = {0};

	in.alive = true;
	in.rtt_ms = rtt;
	in.hops = hops;
	in.avail = 1.0;
	in.samples = 50;
	in.recent_ok = in.recent_sent = 20;
	in.free = 50;
	in.capacity = 100;
	return in;
}

static void test_score_orders_by_path(void **state)
{
	struct alloc_probe_conf c;
	struct score_out a, b, d;
	struct score_in in;

	(void)state;
	alloc_probe_conf_defaults(&c);
	in = healthy(1, 0);
	score_compute(&c, &in, &a);
	in = healthy(20, 2);
	score_compute(&c, &in, &b);
	in = healthy(150, 2);
	score_compute(&c, &in, &d);
	assert_true(a.score > b.score && b.score > d.score);
	assert_false(a.discard || b.discard || d.discard);
	assert_true(a.score > 0 && a.score <= 1);
	/* rtt_ref scores 0.5 */
	in = healthy(c.rtt_ref_ms, 0);
	score_compute(&c, &in, &a);
	assert_true(a.c_rtt > 0.499 && a.c_rtt < 0.501);
}

static void test_discard_reasons(void **state)
{
	struct alloc_probe_conf c;
	struct score_out o;
	struct score_in in;

	(void)state;
	alloc_probe_conf_defaults(&c);
	in = healthy(1, 0);
	in.alive = false;
	score_compute(&c, &in, &o);
	assert_true(o.discard);
	assert_non_null(strstr(o.reason, "not alive"));
	in = healthy(1, 0);
	in.silent = c.max_silent;
	score_compute(&c, &in, &o);
	assert_non_null(strstr(o.reason, "no answer to the last"));
	in = healthy(1, 0);
	in.avail = 0.7;
	in.recent_ok = 14;
	score_compute(&c, &in, &o);
	assert_non_null(strstr(o.reason, "availability 0.70"));
	in.samples = c.min_samples - 1; /* too few probes to judge */
	score_compute(&c, &in, &o);
	assert_false(o.discard);
	in = healthy(c.max_rtt_ms + 1, 0);
	score_compute(&c, &in, &o);
	assert_non_null(strstr(o.reason, "RTT"));
	in = healthy(1, 0);
	in.free = 0;
	score_compute(&c, &in, &o);
	assert_non_null(strstr(o.reason, "no free space"));
	c.min_score = 0.99;
	in = healthy(50, 3);
	score_compute(&c, &in, &o);
	assert_non_null(strstr(o.reason, "score"));
}

static void test_conf_load(void **state)
{
	struct alloc_probe_conf c;
	char path[] = "/tmp/test_alloc_score.XXXXXX", err[256];
	int fd = mkstemp(path);
	FILE *f;

	(void)state;
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fprintf(f, "[client]\nfat = x\n[probe]\nw_rtt = 8\nspread = 0.3\nhedge = false\n");
	fclose(f);
	assert_int_equal(alloc_probe_conf_load(path, &c, err, sizeof(err)), 0);
	assert_true(c.w_rtt == 8 && c.spread == 0.3 && !c.hedge && c.w_hops == 1);
	f = fopen(path, "w");
	fprintf(f, "[probe]\nw_rtt = lots\n");
	fclose(f);
	assert_int_equal(alloc_probe_conf_load(path, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "w_rtt"));
	f = fopen(path, "w");
	fprintf(f, "[probe]\nbogus = 1\n");
	fclose(f);
	assert_int_equal(alloc_probe_conf_load(path, &c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "unknown key"));
	unlink(path);
}

static void test_prefer_best_and_zones(void **state)
{
	struct score_rank r[6];
	size_t n;

	(void)state;
	memset(r, 0, sizeof(r));
	for (int i = 0; i < 6; i++) {
		r[i].vendor_id = (uint32_t)i + 1;
		r[i].score = 0.9 - 0.1 * i;
		snprintf(r[i].zone, sizeof(r[i].zone), "%s", i < 3 ? "a" : "b");
	}
	r[1].discard = true;
	/* copies 2: three best usable (1, 3, 4), and zone b is in */
	n = score_prefer(r, 6, 2, 0.15);
	assert_int_equal(n, 3);
	for (int i = 0; i < 6; i++) {
		bool want = r[i].vendor_id == 1 || r[i].vendor_id == 3 || r[i].vendor_id == 4;

		assert_int_equal(r[i].preferred, want);
	}
	/* zone a only among the best four: the best of zone b joins the set */
	for (int i = 0; i < 6; i++) {
		r[i].vendor_id = (uint32_t)i + 1;
		r[i].score = 0.9 - 0.1 * i;
		r[i].discard = false;
		snprintf(r[i].zone, sizeof(r[i].zone), "%s", i < 4 ? "a" : "b");
	}
	n = score_prefer(r, 6, 2, 0.15);
	assert_int_equal(n, 4); /* room up to copies + 2: the zone-b vendor is added */
	{
		bool has_b = false;

		for (int i = 0; i < 6; i++)
			if (r[i].preferred && strcmp(r[i].zone, "b") == 0)
				has_b = true;
		assert_true(has_b);
	}
}

static void add(struct place *p, uint32_t id, const char *zone, double score)
{
	char addr[32];
	uint8_t tok[8] = {(uint8_t)id};

	snprintf(addr, sizeof(addr), "127.0.0.1:%u", 7100 + id);
	assert_int_equal(place_add(p, id, addr, 1, 1000 * MiB, tok, sizeof(tok)), 0);
	place_rank(p, id, score, zone);
}

static void test_ranked_placement(void **state)
{
	struct place p;
	size_t out[CHUNK_MAX_CHAIN];
	unsigned heads[8] = {0}, on[8] = {0};

	(void)state;
	/* 1 and 2 near-equal best, 3 a bit behind, 4 far behind */
	place_init(&p);
	p.spread = 0.15;
	add(&p, 1, "z", 0.90);
	add(&p, 2, "z", 0.88);
	add(&p, 3, "z", 0.70);
	add(&p, 4, "z", 0.30);
	for (int k = 0; k < 40; k++) {
		assert_int_equal(place_choose(&p, MiB, 2, 0, NULL, 0, out), 0);
		heads[p.c[out[0]].vendor_id]++;
		on[p.c[out[0]].vendor_id]++;
		on[p.c[out[1]].vendor_id]++;
	}
	/* heads spread over the near-equal pair, nothing on the far ones */
	assert_true(heads[1] >= 15 && heads[2] >= 15);
	assert_int_equal(on[3] + on[4], 0);
	place_clear(&p);

	/* zones: the two best share zone a; every chain spans both zones */
	place_init(&p);
	p.spread = 0.15;
	add(&p, 1, "a", 0.90);
	add(&p, 2, "a", 0.90);
	add(&p, 3, "b", 0.60);
	add(&p, 4, "b", 0.60);
	for (int k = 0; k < 40; k++) {
		assert_int_equal(place_choose(&p, MiB, 2, 0, NULL, 0, out), 0);
		assert_string_not_equal(p.c[out[0]].zone, p.c[out[1]].zone);
	}
	/* a replacement hop for a chunk already on vendor 1 (zone a) is in b */
	{
		uint32_t have = 1;

		for (int k = 0; k < 10; k++) {
			assert_int_equal(place_choose(&p, MiB, 1, 0, &have, 1, out), 0);
			assert_string_equal(p.c[out[0]].zone, "b");
		}
	}
	place_clear(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_score_orders_by_path),
	    cmocka_unit_test(test_discard_reasons),
	    cmocka_unit_test(test_conf_load),
	    cmocka_unit_test(test_prefer_best_and_zones),
	    cmocka_unit_test(test_ranked_placement),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
