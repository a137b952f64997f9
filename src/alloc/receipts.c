/*
 * receipts.c - validation receipts (DESIGN.md step 11): after a verified
 * fetch the client tells the vendor that served it that the data arrived
 * intact.  Receipts queue per vendor and travel in batches (MSG_RECEIPTS):
 * when RECEIPT_BATCH are queued for a vendor (the background thread is
 * kicked), every RECEIPT_FLUSH_MS from the background thread, on
 * alloc_receipts_flush and on alloc_free.
 *
 * Receipts are accounting, not data: a queue is bounded (the oldest are
 * dropped beyond RECEIPT_QUEUE_MAX) and a batch that cannot be delivered is
 * put back once and retried with the next flush.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_int.h"

struct rqueue {
	uint32_t vendor_id;
	struct receipt *r; /* ring would be cheaper; batches are small, memmove is fine */
	size_t n, cap;
};

struct receipts {
	pthread_mutex_t lock;
	struct rqueue *q; /* lock */
	size_t n, cap;	  /* lock */
};

struct receipts *receipts_new(void)
{
	struct receipts *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	pthread_mutex_init(&r->lock, NULL);
	return r;
}

void receipts_free(struct receipts *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->q[i].r);
	free(r->q);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static struct rqueue *queue_of(struct receipts *r, uint32_t vendor_id)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->q[i].vendor_id == vendor_id)
			return &r->q[i];
	if (r->n == r->cap) {
		size_t ncap = r->cap ? 2 * r->cap : 8;
		struct rqueue *nq = realloc(r->q, ncap * sizeof(*nq));

		if (!nq)
			return NULL;
		r->q = nq;
		r->cap = ncap;
	}
	memset(&r->q[r->n], 0, sizeof(r->q[0]));
	r->q[r->n].vendor_id = vendor_id;
	return &r->q[r->n++];
}

/* Makes room for `more` receipts; drops the oldest beyond the bound. */
static int reserve(struct rqueue *q, size_t more)
{
	if (more > RECEIPT_QUEUE_MAX)
		more = RECEIPT_QUEUE_MAX;
	if (q->n + more > RECEIPT_QUEUE_MAX) {
		size_t drop = q->n + more - RECEIPT_QUEUE_MAX;

		memmove(q->r, q->r + drop, (q->n - drop) * sizeof(*q->r));
		q->n -= drop;
	}
	if (q->n + more > q->cap) {
		size_t ncap = q->cap ? q->cap : RECEIPT_BATCH;
		struct receipt *nr;

		while (ncap < q->n + more)
			ncap *= 2;
		nr = realloc(q->r, ncap * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		q->r = nr;
		q->cap = ncap;
	}
	return 0;
}

bool receipts_add(struct receipts *r, uint32_t vendor_id, const struct receipt *rc)
{
	struct rqueue *q;
	bool full = false;

	pthread_mutex_lock(&r->lock);
	q = queue_of(r, vendor_id);
	if (q && reserve(q, 1) == 0) {
		q->r[q->n++] = *rc;
		full = q->n >= RECEIPT_BATCH;
	}
	pthread_mutex_unlock(&r->lock);
	return full;
}

size_t receipts_vendors(struct receipts *r, bool full_only, uint32_t *ids, size_t max)
{
	size_t got = 0;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n && got < max; i++)
		if (r->q[i].n > 0 && (!full_only || r->q[i].n >= RECEIPT_BATCH))
			ids[got++] = r->q[i].vendor_id;
	pthread_mutex_unlock(&r->lock);
	return got;
}

size_t receipts_take(struct receipts *r, uint32_t vendor_id, bool full_only,
		     struct receipt *out, size_t max)
{
	size_t got = 0;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++) {
		struct rqueue *q = &r->q[i];

		if (q->vendor_id != vendor_id)
			continue;
		if (q->n == 0 || (full_only && q->n < RECEIPT_BATCH))
			break;
		got = MIN(q->n, max);
		memcpy(out, q->r, got * sizeof(*out));
		memmove(q->r, q->r + got, (q->n - got) * sizeof(*q->r));
		q->n -= got;
		break;
	}
	pthread_mutex_unlock(&r->lock);
	return got;
}

void receipts_putback(struct receipts *r, uint32_t vendor_id, const struct receipt *in,
		      size_t n)
{
	struct rqueue *q;

	pthread_mutex_lock(&r->lock);
	q = queue_of(r, vendor_id);
	if (q) {
		/* put back only what fits without dropping newer receipts */
		size_t room = q->n < RECEIPT_QUEUE_MAX ? RECEIPT_QUEUE_MAX - q->n : 0;
		size_t keep = MIN(n, room);

		if (keep && reserve(q, keep) == 0) {
			memmove(q->r + keep, q->r, q->n * sizeof(*q->r));
			memcpy(q->r, in + (n - keep), keep * sizeof(*q->r));
			q->n += keep;
		}
	}
	pthread_mutex_unlock(&r->lock);
}

size_t receipts_pending(struct receipts *r)
{
	size_t n = 0;

	pthread_mutex_lock(&r->lock);
	for (size_t i = 0; i < r->n; i++)
		n += r->q[i].n;
	pthread_mutex_unlock(&r->lock);
	return n;
}

static int send_batch(struct alloc_ctx *a, uint32_t vendor_id, const struct receipt *b,
		      size_t n)
{
	Pstore__ReceiptBatch batch = PSTORE__RECEIPT_BATCH__INIT;
	Pstore__Receipt rs[RECEIPT_BATCH], *rp[RECEIPT_BATCH];
	struct xport_reply rep = {0};
	char addr[ALLOC_ADDR_LEN];
	uint8_t tok[CAP_READ_TOKEN_MAX];
	size_t toklen = 0;
	int rc;

	if (n > RECEIPT_BATCH)
		return -EINVAL;
	rc = alloc_vendor_addr(a, vendor_id, addr, sizeof(addr));
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		pstore__receipt__init(&rs[i]);
		rs[i].chunk_id.data = (uint8_t *)b[i].chunk_id;
		rs[i].chunk_id.len = CHUNK_ID_LEN;
		rs[i].bytes = b[i].bytes;
		rs[i].digest.data = (uint8_t *)b[i].digest;
		rs[i].digest.len = CHUNK_DIGEST_LEN;
		rs[i].ok = true;
		rs[i].time_ms = b[i].time_ms;
		rp[i] = &rs[i];
	}
	batch.n_receipts = n;
	batch.receipts = rp;
	/* vendors take receipts only from readers of the chunks' volume */
	if (alloc_read_token(a, false, tok, &toklen) == 0) {
		batch.read_token.data = tok;
		batch.read_token.len = toklen;
	}
	/* short timeout: the background thread also renews leases */
	rc = xport_call(a->pool, addr, MSG_RECEIPTS, &batch.base, NULL, 0, NULL, &rep,
			MIN(a->timeout_ms, RECEIPT_TIMEOUT_MS), NULL, 0);
	xport_reply_clear(&rep);
	if (rc < 0 && alloc_err_transient(rc))
		vstats_fail(a->vstats, vendor_id, now_ms());
	return rc;
}

int receipts_send(struct alloc_ctx *a, bool full_only, bool skip_failing)
{
	struct receipt batch[RECEIPT_BATCH];
	uint32_t ids[256];
	size_t n_ids = receipts_vendors(a->receipts, full_only, ids, ARRAY_SIZE(ids));
	int first = 0;

	for (size_t v = 0; v < n_ids; v++) {
		bool penalized = false;

		/* a vendor that fails calls now keeps its receipts for later */
		vstats_estimate(a->vstats, ids[v], now_ms(), &penalized);
		if (skip_failing && penalized)
			continue;
		/* bounded: what is queued now, plus what arrives meanwhile up to a limit */
		for (int k = 0; k < RECEIPT_QUEUE_MAX / RECEIPT_BATCH; k++) {
			size_t n =
			    receipts_take(a->receipts, ids[v], full_only, batch, RECEIPT_BATCH);
			int rc;

			if (n == 0)
				break;
			rc = send_batch(a, ids[v], batch, n);
			if (rc < 0) {
				log_debug("receipts: %zu for vendor %u not sent: %s", n, ids[v],
					  strerror(-rc));
				receipts_putback(a->receipts, ids[v], batch, n);
				if (!first)
					first = rc;
				break;
			}
		}
	}
	return first;
}
