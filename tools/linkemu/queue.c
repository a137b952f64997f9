/*
 * queue.c - one direction of pstore-linkemu's emulated link: loss, the
 * bounded queue, the token bucket and the delay line, plus the random
 * number generator they draw from.  No I/O and no clock: the caller passes
 * the time, so the unit test drives it with made-up times.
 *
 * Order: a packet is first dropped with probability `loss`; then refused if
 * `limit` packets are already held (tail drop); then waits in FIFO order for
 * tokens (rate); once released it gets delay + jitter and waits in the delay
 * line.  Without `reorder` a packet's due time is never earlier than the
 * previous packet's, so jitter delays but never reorders (like a real link
 * with variable queueing); with `reorder` each packet keeps its own due time.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "linkemu.h"

/* ------------------------------------------------------------ random numbers */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void lemu_rng_seed(struct lemu_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t lemu_rng_next(struct lemu_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double lemu_rng_double(struct lemu_rng *r)
{
	return (double)(lemu_rng_next(r) >> 11) * 0x1.0p-53;
}

double lemu_rng_normal(struct lemu_rng *r)
{
	double u1 = 1.0 - lemu_rng_double(r); /* (0, 1]: log() stays finite */
	double u2 = lemu_rng_double(r);

	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* ------------------------------------------------------------ the delay heap */

static bool pkt_before(const struct lemu_pkt *a, const struct lemu_pkt *b)
{
	return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->seq < b->seq);
}

static void heap_push(struct lemu_dir *d, struct lemu_pkt *p)
{
	uint32_t i = d->heap_len++;

	while (i > 0) {
		uint32_t up = (i - 1) / 2;
		if (!pkt_before(p, d->heap[up]))
			break;
		d->heap[i] = d->heap[up];
		i = up;
	}
	d->heap[i] = p;
}

static struct lemu_pkt *heap_pop(struct lemu_dir *d)
{
	struct lemu_pkt *top = d->heap[0];
	struct lemu_pkt *last = d->heap[--d->heap_len];
	uint32_t i = 0, n = d->heap_len;

	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = i;
		const struct lemu_pkt *best = last;
		if (l < n && pkt_before(d->heap[l], best)) {
			m = l;
			best = d->heap[l];
		}
		if (r < n && pkt_before(d->heap[r], best))
			m = r;
		if (m == i)
			break;
		d->heap[i] = d->heap[m];
		i = m;
	}
	if (n > 0)
		d->heap[i] = last;
	return top;
}

/* ------------------------------------------------------------ one direction */

int lemu_dir_init(struct lemu_dir *d, const struct lemu_params *p, uint64_t seed, uint64_t now)
{
	memset(d, 0, sizeof(*d));
	if (p->limit == 0 || p->loss < 0.0 || p->loss > 1.0)
		return -EINVAL;
	d->p = *p;
	if (d->p.rate && d->p.burst == 0) {
		/* 10 ms worth of rate, but at least two full-size Ethernet frames */
		d->p.burst = d->p.rate / 100;
		if (d->p.burst < 3028)
			d->p.burst = 3028;
	}
	lemu_rng_seed(&d->rng, seed);
	d->fifo = calloc(p->limit, sizeof(*d->fifo));
	d->heap = calloc(p->limit, sizeof(*d->heap));
	if (!d->fifo || !d->heap) {
		lemu_dir_free(d);
		return -ENOMEM;
	}
	d->tokens = (double)d->p.burst;
	d->tokens_ns = now;
	return 0;
}

void lemu_dir_free(struct lemu_dir *d)
{
	if (d->fifo) {
		for (uint32_t i = 0; i < d->fifo_len; i++)
			free(d->fifo[(d->fifo_head + i) % d->p.limit]);
	}
	if (d->heap) {
		for (uint32_t i = 0; i < d->heap_len; i++)
			free(d->heap[i]);
	}
	free(d->fifo);
	free(d->heap);
	d->fifo = NULL;
	d->heap = NULL;
	d->fifo_len = d->heap_len = 0;
}

uint32_t lemu_dir_held(const struct lemu_dir *d)
{
	return d->fifo_len + d->heap_len;
}

/* Puts a packet released at `t` into the delay line. */
static void schedule(struct lemu_dir *d, struct lemu_pkt *pkt, uint64_t t)
{
	double delay = (double)d->p.delay_ns;

	if (d->p.jitter_ns) {
		double j = (double)d->p.jitter_ns;
		if (d->p.dist == LEMU_DIST_NORMAL)
			delay += j * lemu_rng_normal(&d->rng);
		else
			delay += j * (2.0 * lemu_rng_double(&d->rng) - 1.0);
		if (delay < 0.0)
			delay = 0.0;
	}
	pkt->due_ns = t + (uint64_t)delay;
	if (!d->p.reorder) {
		if (pkt->due_ns < d->last_due)
			pkt->due_ns = d->last_due;
		d->last_due = pkt->due_ns;
	}
	heap_push(d, pkt);
}

/* Tokens needed before the FIFO head may go: a packet larger than the
 * bucket goes once the bucket is full (tokens then go negative). */
static double tokens_needed(const struct lemu_dir *d, const struct lemu_pkt *pkt)
{
	return pkt->len < d->p.burst ? (double)pkt->len : (double)d->p.burst;
}

/* Refills the bucket up to `now` and releases what the tokens pay for. */
static void shape(struct lemu_dir *d, uint64_t now)
{
	if (!d->p.rate)
		return;
	if (now > d->tokens_ns) {
		d->tokens += (double)(now - d->tokens_ns) * (double)d->p.rate / 1e9;
		if (d->tokens > (double)d->p.burst)
			d->tokens = (double)d->p.burst;
		d->tokens_ns = now;
	}
	while (d->fifo_len > 0) {
		struct lemu_pkt *head = d->fifo[d->fifo_head];
		if (d->tokens < tokens_needed(d, head))
			break;
		d->tokens -= (double)head->len;
		d->fifo_head = (d->fifo_head + 1) % d->p.limit;
		d->fifo_len--;
		schedule(d, head, now);
	}
}

int lemu_dir_push(struct lemu_dir *d, uint64_t now, const void *data, uint32_t len,
		  bool no_loss)
{
	struct lemu_pkt *pkt;

	d->c.rx_pkts++;
	d->c.rx_bytes += len;
	if (!no_loss && d->p.loss > 0.0 && lemu_rng_double(&d->rng) < d->p.loss) {
		d->c.drop_loss++;
		return 0;
	}
	if (lemu_dir_held(d) >= d->p.limit) {
		d->c.drop_queue++;
		return 0;
	}
	pkt = malloc(sizeof(*pkt) + len);
	if (!pkt)
		return -ENOMEM;
	pkt->seq = d->seq++;
	pkt->len = len;
	memcpy(pkt->data, data, len);
	if (!d->p.rate) {
		schedule(d, pkt, now);
		return 1;
	}
	d->fifo[(d->fifo_head + d->fifo_len) % d->p.limit] = pkt;
	d->fifo_len++;
	shape(d, now);
	return 1;
}

struct lemu_pkt *lemu_dir_pop(struct lemu_dir *d, uint64_t now)
{
	shape(d, now);
	if (d->heap_len == 0 || d->heap[0]->due_ns > now)
		return NULL;
	return heap_pop(d);
}

uint64_t lemu_dir_next(const struct lemu_dir *d)
{
	uint64_t next = UINT64_MAX;

	if (d->heap_len > 0)
		next = d->heap[0]->due_ns;
	if (d->p.rate && d->fifo_len > 0) {
		const struct lemu_pkt *head = d->fifo[d->fifo_head];
		double missing = tokens_needed(d, head) - d->tokens;
		uint64_t t = d->tokens_ns;
		if (missing > 0.0)
			t += (uint64_t)ceil(missing * 1e9 / (double)d->p.rate);
		if (t < next)
			next = t;
	}
	return next;
}
