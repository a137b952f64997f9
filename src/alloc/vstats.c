/*
 * vstats.c - a live latency estimate per vendor, used to order the replicas
 * of a chunk before fetching it (DESIGN.md step 10: "picks the fastest
 * replica per chunk from live measurements").
 *
 * Each successful call updates an EWMA (alpha 1/4) of its duration.  A
 * failure pushes the vendor behind every healthy one for a while: 1 s after
 * the first consecutive failure, doubling up to 60 s; a success clears it.
 * A vendor never tried gets the mean of the known estimates, so that it is
 * neither preferred blindly nor starved.  Probing (DESIGN.md step 4) will
 * feed the same table.  A small array under one mutex: there are tens of
 * vendors, not thousands (O(n) lookups, fine until it is not).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_int.h"

#define PENALTY_MIN_MS 1000
#define PENALTY_MAX_MS 60000
#define VSTATS_MAX 4096 /* vendors remembered; beyond that the oldest entry is reused */

struct vent {
	uint32_t id;
	uint64_t ewma_us;	/* 0 = no sample yet */
	unsigned fails;		/* consecutive failures */
	uint64_t penalty_until; /* monotonic ms */
	uint64_t last_ms;	/* last update, for reuse */
	uint64_t down_ms;	/* last connection-level failure (0: none) */
	uint64_t up_ms;		/* last call that reached the vendor */
};

struct vstats {
	pthread_mutex_t lock;
	struct vent *e; /* lock */
	size_t n, cap;	/* lock */
};

struct vstats *vstats_new(void)
{
	struct vstats *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	pthread_mutex_init(&v->lock, NULL);
	return v;
}

void vstats_free(struct vstats *v)
{
	if (!v)
		return;
	pthread_mutex_destroy(&v->lock);
	free(v->e);
	free(v);
}

static struct vent *find(struct vstats *v, uint32_t id)
{
	for (size_t i = 0; i < v->n; i++)
		if (v->e[i].id == id)
			return &v->e[i];
	return NULL;
}

static struct vent *get(struct vstats *v, uint32_t id, uint64_t now)
{
	struct vent *e = find(v, id);

	if (e)
		return e;
	if (v->n == v->cap && v->cap < VSTATS_MAX) {
		size_t ncap = v->cap ? 2 * v->cap : 16;
		struct vent *ne = realloc(v->e, ncap * sizeof(*ne));

		if (ne) {
			v->e = ne;
			v->cap = ncap;
		}
	}
	if (v->n < v->cap) {
		e = &v->e[v->n++];
	} else if (v->n > 0) {
		e = &v->e[0];
		for (size_t i = 1; i < v->n; i++)
			if (v->e[i].last_ms < e->last_ms)
				e = &v->e[i];
	} else {
		return NULL;
	}
	memset(e, 0, sizeof(*e));
	e->id = id;
	e->last_ms = now;
	return e;
}

void vstats_ok(struct vstats *v, uint32_t vendor_id, uint64_t elapsed_us, uint64_t now)
{
	struct vent *e;

	if (elapsed_us == 0)
		elapsed_us = 1;
	pthread_mutex_lock(&v->lock);
	e = get(v, vendor_id, now);
	if (e) {
		e->ewma_us = e->ewma_us ? (3 * e->ewma_us + elapsed_us) / 4 : elapsed_us;
		e->fails = 0;
		e->penalty_until = 0;
		e->last_ms = now;
	}
	pthread_mutex_unlock(&v->lock);
}

void vstats_fail(struct vstats *v, uint32_t vendor_id, uint64_t now)
{
	struct vent *e;

	pthread_mutex_lock(&v->lock);
	e = get(v, vendor_id, now);
	if (e) {
		uint64_t pen = PENALTY_MIN_MS;

		for (unsigned i = 0; i < e->fails && pen < PENALTY_MAX_MS; i++)
			pen *= 2;
		if (e->fails < 32)
			e->fails++;
		e->penalty_until = now + MIN(pen, PENALTY_MAX_MS);
		e->last_ms = now;
	}
	pthread_mutex_unlock(&v->lock);
}

void vstats_reach(struct vstats *v, uint32_t vendor_id, bool reached, uint64_t now)
{
	struct vent *e;

	pthread_mutex_lock(&v->lock);
	e = get(v, vendor_id, now);
	if (e) {
		if (reached)
			e->up_ms = now;
		else
			e->down_ms = now;
		e->last_ms = now;
	}
	pthread_mutex_unlock(&v->lock);
}

bool vstats_unreachable(struct vstats *v, uint32_t vendor_id, uint64_t window_ms, uint64_t now)
{
	struct vent *e;
	bool down = false;

	pthread_mutex_lock(&v->lock);
	e = find(v, vendor_id);
	if (e && e->down_ms && e->down_ms >= e->up_ms && now - e->down_ms <= window_ms)
		down = true;
	pthread_mutex_unlock(&v->lock);
	return down;
}

uint64_t vstats_estimate(struct vstats *v, uint32_t vendor_id, uint64_t now, bool *penalized)
{
	struct vent *e;
	uint64_t est = 0;
	bool pen = false;

	pthread_mutex_lock(&v->lock);
	e = find(v, vendor_id);
	if (e) {
		est = e->ewma_us;
		pen = e->penalty_until > now;
	}
	pthread_mutex_unlock(&v->lock);
	if (penalized)
		*penalized = pen;
	return est;
}

struct okey {
	uint32_t id;
	unsigned pos; /* position in the input: ties keep it */
	bool penalized;
	uint64_t until; /* penalty end, when penalized */
	uint64_t est;
};

static bool before(const struct okey *a, const struct okey *b)
{
	if (a->penalized != b->penalized)
		return !a->penalized;
	if (a->penalized && a->until != b->until)
		return a->until < b->until; /* the one back soonest first */
	if (!a->penalized && a->est != b->est)
		return a->est < b->est;
	return a->pos < b->pos;
}

void vstats_order(struct vstats *v, const uint32_t *in, unsigned n, uint32_t *out, uint64_t now)
{
	struct okey k[CHUNK_MAX_CHAIN];
	uint64_t sum = 0, cnt = 0, neutral;

	if (n > CHUNK_MAX_CHAIN)
		n = CHUNK_MAX_CHAIN;
	pthread_mutex_lock(&v->lock);
	for (size_t i = 0; i < v->n; i++)
		if (v->e[i].ewma_us) {
			sum += v->e[i].ewma_us;
			cnt++;
		}
	neutral = cnt ? sum / cnt : 0;
	for (unsigned i = 0; i < n; i++) {
		struct vent *e = find(v, in[i]);

		k[i].id = in[i];
		k[i].pos = i;
		k[i].penalized = e && e->penalty_until > now;
		k[i].until = e ? e->penalty_until : 0;
		k[i].est = e && e->ewma_us ? e->ewma_us : neutral;
	}
	pthread_mutex_unlock(&v->lock);
	/* insertion sort: n <= CHUNK_MAX_CHAIN, stable */
	for (unsigned i = 1; i < n; i++) {
		struct okey t = k[i];
		unsigned j = i;

		while (j > 0 && before(&t, &k[j - 1])) {
			k[j] = k[j - 1];
			j--;
		}
		k[j] = t;
	}
	for (unsigned i = 0; i < n; i++)
		out[i] = k[i].id;
}
