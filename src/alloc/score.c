/*
 * score.c - the one scoring function of path probing, its configuration
 * ([probe] of client.conf) and the verdict on each candidate vendor.
 *
 *   score = (w_rtt   * rtt_ref / (rtt_ref + rtt_ms)
 *          + w_hops  * 1 / (1 + hops)
 *          + w_avail * availability
 *          + w_free  * free / capacity
 *          + w_load  * load_ref / (load_ref + load))
 *         / (w_rtt + w_hops + w_avail + w_free + w_load)
 *
 * Every term is in [0, 1], so the score is too; 1 is a vendor next door,
 * always answering, empty and idle.  Unknown terms (no RTT or hop count yet)
 * count 0.5.  A vendor is discarded, with the first reason that applies, when
 * it is not alive at the FAT server, missed the last max_silent probes in a
 * row, has an availability below min_avail (after min_samples probes), an
 * RTT above max_rtt_ms, no free space, or a score below min_score.
 *
 * Pure functions without locks or I/O: probe.c feeds them, the unit tests
 * drive them.
 */
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_int.h"

void alloc_probe_conf_defaults(struct alloc_probe_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->enabled = true;
	c->interval_ms = 2000;
	c->probes = 5;
	c->timeout_ms = 1000;
	c->w_rtt = 4;
	c->w_hops = 1;
	c->w_avail = 2;
	c->w_free = 1;
	c->w_load = 1;
	c->rtt_ref_ms = 10;
	c->load_ref = 8;
	c->min_score = 0.2;
	c->min_avail = 0.9;
	c->min_samples = 10;
	c->max_rtt_ms = 1000;
	c->max_silent = 5;
	c->avail_halflife = 50;
	c->spread = 0.15;
	c->hedge = true;
	c->hedge_factor = 2;
	c->hedge_min_ms = 5;
	c->hedge_default_ms = 200;
	c->hedge_threads = 64;
}

struct conf_parse {
	struct alloc_probe_conf *c;
	char *err;
	size_t errlen;
	int line_err;
};

static int set_dbl(const char *v, double lo, double hi, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	if (errno || end == v || *end || !isfinite(d) || d < lo || d > hi)
		return -EINVAL;
	*out = d;
	return 0;
}

static int set_u32(const char *v, uint64_t lo, uint64_t hi, uint32_t *out)
{
	uint64_t x;

	if (parse_u64(v, &x) < 0 || x < lo || x > hi)
		return -EINVAL;
	*out = (uint32_t)x;
	return 0;
}

static int conf_cb(void *user, const char *section, const char *name, const char *value)
{
	struct conf_parse *cp = user;
	struct alloc_probe_conf *c = cp->c;
	int rc = 0;

	if (strcmp(section, "probe") != 0)
		return 1;
	if (strcmp(name, "enabled") == 0)
		rc = parse_bool(value, &c->enabled);
	else if (strcmp(name, "interval_ms") == 0)
		rc = set_u32(value, 100, 3600000, &c->interval_ms);
	else if (strcmp(name, "probes") == 0)
		rc = set_u32(value, 1, PROBE_MAX_PER_ROUND, &c->probes);
	else if (strcmp(name, "timeout_ms") == 0)
		rc = set_u32(value, 10, 60000, &c->timeout_ms);
	else if (strcmp(name, "w_rtt") == 0)
		rc = set_dbl(value, 0, 1000, &c->w_rtt);
	else if (strcmp(name, "w_hops") == 0)
		rc = set_dbl(value, 0, 1000, &c->w_hops);
	else if (strcmp(name, "w_avail") == 0)
		rc = set_dbl(value, 0, 1000, &c->w_avail);
	else if (strcmp(name, "w_free") == 0)
		rc = set_dbl(value, 0, 1000, &c->w_free);
	else if (strcmp(name, "w_load") == 0)
		rc = set_dbl(value, 0, 1000, &c->w_load);
	else if (strcmp(name, "rtt_ref_ms") == 0)
		rc = set_dbl(value, 0.01, 100000, &c->rtt_ref_ms);
	else if (strcmp(name, "load_ref") == 0)
		rc = set_dbl(value, 0.01, 1e6, &c->load_ref);
	else if (strcmp(name, "min_score") == 0)
		rc = set_dbl(value, 0, 1, &c->min_score);
	else if (strcmp(name, "min_avail") == 0)
		rc = set_dbl(value, 0, 1, &c->min_avail);
	else if (strcmp(name, "min_samples") == 0)
		rc = set_u32(value, 1, 100000, &c->min_samples);
	else if (strcmp(name, "max_rtt_ms") == 0)
		rc = set_dbl(value, 0.01, 1e6, &c->max_rtt_ms);
	else if (strcmp(name, "max_silent") == 0)
		rc = set_u32(value, 1, 100000, &c->max_silent);
	else if (strcmp(name, "avail_halflife") == 0)
		rc = set_dbl(value, 1, 1e6, &c->avail_halflife);
	else if (strcmp(name, "spread") == 0)
		rc = set_dbl(value, 0, 1, &c->spread);
	else if (strcmp(name, "hedge") == 0)
		rc = parse_bool(value, &c->hedge);
	else if (strcmp(name, "hedge_factor") == 0)
		rc = set_dbl(value, 1, 100, &c->hedge_factor);
	else if (strcmp(name, "hedge_min_ms") == 0)
		rc = set_u32(value, 0, 60000, &c->hedge_min_ms);
	else if (strcmp(name, "hedge_default_ms") == 0)
		rc = set_u32(value, 1, 60000, &c->hedge_default_ms);
	else if (strcmp(name, "hedge_threads") == 0)
		rc = set_u32(value, 1, 4096, &c->hedge_threads);
	else
		rc = -ENOENT;
	if (rc < 0 && !cp->line_err) {
		snprintf(cp->err, cp->errlen, "[probe] %s = %s: %s", name, value,
			 rc == -ENOENT ? "unknown key" : "invalid value");
		cp->line_err = 1;
	}
	return 1;
}

int alloc_probe_conf_load(const char *file, struct alloc_probe_conf *c, char *err,
			  size_t errlen)
{
	struct conf_parse cp = {.c = c, .err = err, .errlen = errlen};
	int rc;

	alloc_probe_conf_defaults(c);
	if (errlen)
		err[0] = '\0';
	rc = ini_parse(file, conf_cb, &cp);
	if (rc < 0) {
		snprintf(err, errlen, "cannot open %s", file);
		return -ENOENT;
	}
	if (rc > 0) {
		snprintf(err, errlen, "%s: error on line %d", file, rc);
		return -EINVAL;
	}
	if (cp.line_err)
		return -EINVAL;
	if (c->w_rtt + c->w_hops + c->w_avail + c->w_free + c->w_load <= 0) {
		snprintf(err, errlen, "[probe] every weight is 0");
		return -EINVAL;
	}
	return 0;
}

void score_compute(const struct alloc_probe_conf *c, const struct score_in *in,
		   struct score_out *out)
{
	double wsum = c->w_rtt + c->w_hops + c->w_avail + c->w_free + c->w_load;

	memset(out, 0, sizeof(*out));
	out->c_rtt = in->rtt_ms >= 0 ? c->rtt_ref_ms / (c->rtt_ref_ms + in->rtt_ms) : 0.5;
	out->c_hops = in->hops >= 0 ? 1.0 / (1.0 + in->hops) : 0.5;
	out->c_avail = in->samples ? in->avail : 0.5;
	out->c_free =
	    in->capacity ? (double)MIN(in->free, in->capacity) / (double)in->capacity : 0;
	out->c_load = c->load_ref / (c->load_ref + in->load);
	out->score = wsum > 0 ? (c->w_rtt * out->c_rtt + c->w_hops * out->c_hops +
				 c->w_avail * out->c_avail + c->w_free * out->c_free +
				 c->w_load * out->c_load) /
				    wsum
			      : 0;
	if (!in->alive)
		snprintf(out->reason, sizeof(out->reason), "not alive at the FAT server");
	else if (in->silent >= c->max_silent)
		snprintf(out->reason, sizeof(out->reason), "no answer to the last %u probes",
			 in->silent);
	else if (in->samples >= c->min_samples && in->avail < c->min_avail)
		snprintf(out->reason, sizeof(out->reason),
			 "availability %.2f < %.2f (%u of the last %u probes answered)",
			 in->avail, c->min_avail, in->recent_ok, in->recent_sent);
	else if (in->rtt_ms > c->max_rtt_ms)
		snprintf(out->reason, sizeof(out->reason), "RTT %.1f ms > %.1f ms", in->rtt_ms,
			 c->max_rtt_ms);
	else if (in->free == 0)
		snprintf(out->reason, sizeof(out->reason), "no free space");
	else if (out->score < c->min_score)
		snprintf(out->reason, sizeof(out->reason), "score %.3f < %.3f", out->score,
			 c->min_score);
	out->discard = out->reason[0] != '\0';
}

/* Best first; ties by id so that every client ranks alike. */
static int rank_cmp(const void *x, const void *y)
{
	const struct score_rank *a = x, *b = y;

	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	return a->vendor_id < b->vendor_id ? -1 : a->vendor_id > b->vendor_id;
}

static bool zone_in(const struct score_rank *r, const size_t *set, size_t n, const char *zone)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(r[set[i]].zone, zone) == 0)
			return true;
	return false;
}

size_t score_prefer(struct score_rank *r, size_t n, unsigned copies, double spread)
{
	size_t keep = 0, max_keep, set[SCORE_MAX_PREFER], n_set = 0;
	size_t zones = 0, set_zones = 0;

	for (size_t i = 0; i < n; i++)
		r[i].preferred = false;
	qsort(r, n, sizeof(*r), rank_cmp);
	for (size_t i = 0; i < n; i++)
		if (!r[i].discard)
			keep++;
	if (keep == 0)
		return 0;
	max_keep = MIN((size_t)copies + 2, (size_t)SCORE_MAX_PREFER);
	/* the near-equal band of the best usable one, at least copies + 1 */
	for (size_t i = 0; i < n; i++) {
		if (r[i].discard)
			continue;
		if (n_set == 0 || r[i].score >= r[set[0]].score * (1.0 - spread) ||
		    n_set < (size_t)copies + 1) {
			if (n_set < max_keep)
				set[n_set++] = i;
		}
	}
	/* failure domains: when zones are declared, make the set span as many
	 * zones as copies need, trading its worst members for the best of a
	 * missing zone */
	for (size_t i = 0; i < n; i++) {
		bool seen = false;

		if (r[i].discard)
			continue;
		for (size_t j = 0; j < i; j++)
			if (!r[j].discard && strcmp(r[j].zone, r[i].zone) == 0)
				seen = true;
		if (!seen)
			zones++;
	}
	for (size_t i = 0; i < n_set; i++) {
		bool seen = false;

		for (size_t j = 0; j < i; j++)
			if (strcmp(r[set[j]].zone, r[set[i]].zone) == 0)
				seen = true;
		if (!seen)
			set_zones++;
	}
	while (zones >= 2 && set_zones < MIN(zones, (size_t)copies)) {
		size_t add = n, drop = n_set;

		for (size_t i = 0; i < n && add == n; i++)
			if (!r[i].discard && !zone_in(r, set, n_set, r[i].zone))
				add = i;
		if (add == n)
			break;
		if (n_set < max_keep) {
			set[n_set++] = add;
			set_zones++;
			continue;
		}
		/* drop the worst member whose zone is held by another member */
		for (size_t k = n_set; k-- > 0 && drop == n_set;) {
			unsigned same = 0;

			for (size_t j = 0; j < n_set; j++)
				if (strcmp(r[set[j]].zone, r[set[k]].zone) == 0)
					same++;
			if (same > 1)
				drop = k;
		}
		if (drop == n_set)
			break;
		set[drop] = add;
		set_zones++;
	}
	for (size_t i = 0; i < n_set; i++)
		r[set[i]].preferred = true;
	return n_set;
}
