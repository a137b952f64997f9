/*
 * fetch.c - reading a committed chunk back (DESIGN.md step 10): its replicas
 * are tried in the order of their current latency estimate (vstats.c); each
 * answer is checked against what the file system remembers (chunk id,
 * owner, sizes, the digest committed with the chunk) and verified by
 * chunk_open_decode (digest of the stored payload, then, on an encrypted
 * volume, the AEAD tag under the chunk's key, then decompression).  Any
 * failure moves on to the next replica; a replica that is corrupt or
 * missing is reported to the FAT (from the background thread).  A verified fetch queues a
 * validation receipt for the vendor that served it.  With path probing (probe.c) the order is
 * the live score and reads are hedged: when the chosen replica has not answered within its
 * bound (p95 of its recent fetch times x hedge_factor + hedge_min_ms), the
 * next replica is asked too and the first verified answer is taken.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aead.h"
#include "alloc_int.h"

/* One attempt at one vendor.  *bad is set when the vendor answered with data
 * that is wrong (or said it has no such chunk): a replica to report. */
static int fetch_one(struct alloc_ctx *a, const struct alloc_volume *vol,
		     const struct alloc_chunk_ref *ref, uint32_t vendor_id, void *raw,
		     struct chunk_hdr *hout, const char **bad)
{
	Pstore__ChunkGet cg = PSTORE__CHUNK_GET__INIT;
	struct xport_reply rep = {0};
	char addr[ALLOC_ADDR_LEN], err[160] = "";
	struct chunk_hdr h;
	int rc;

	*bad = NULL;
	rc = alloc_vendor_addr(a, vendor_id, addr, sizeof(addr));
	if (rc < 0) {
		log_debug("fetch: no address for vendor %u: %s", vendor_id, strerror(-rc));
		return rc;
	}
	cg.chunk_id.data = (uint8_t *)ref->chunk_id;
	cg.chunk_id.len = CHUNK_ID_LEN;
	cg.owner.data = (uint8_t *)vol->id;
	cg.owner.len = CHUNK_OWNER_LEN;
	cg.offset = 0;
	cg.length = 0;
	/* the reply is checked below (committed digest, AEAD tag): the vendor
	 * need not hash the chunk first */
	cg.client_verifies = true;
	/* The read capability; one fresh one more if the vendor refuses it. */
	for (int attempt = 0; attempt < 2; attempt++) {
		uint8_t tok[CAP_READ_TOKEN_MAX];
		size_t toklen = 0;

		if (alloc_read_token(a, attempt > 0, tok, &toklen) == 0) {
			cg.read_token.data = tok;
			cg.read_token.len = toklen;
		}
		rc = xport_call(a->pool, addr, MSG_CHUNK_GET, &cg.base, NULL, 0,
				&pstore__chunk_get_reply__descriptor, &rep, a->timeout_ms, err,
				sizeof(err));
		cg.read_token.data = NULL;
		cg.read_token.len = 0;
		if (rc != -EACCES)
			break;
		xport_reply_clear(&rep);
	}
	if (rc < 0) {
		if (rc == -ENOENT)
			*bad = "missing";
		/* the vendor answered that it cannot read its copy back (its
		 * pieces fail the digest, or its disk fails): a bad replica */
		else if (rc == -EIO && err[0])
			*bad = "the vendor cannot read its copy";
		if (alloc_err_transient(rc))
			xport_pool_forget(a->pool, addr);
		log_debug("fetch: vendor %u (%s): %s%s%s", vendor_id, addr, strerror(-rc),
			  err[0] ? ": " : "", err);
		goto out;
	}
	rc = -EBADMSG;
	if (!rep.data || rep.data_len < CHUNK_HDR_LEN ||
	    chunk_hdr_decode(rep.data, rep.data_len, &h) < 0) {
		*bad = "bad header";
		goto out;
	}
	if (memcmp(h.chunk_id, ref->chunk_id, CHUNK_ID_LEN) != 0 ||
	    memcmp(h.owner, vol->id, CHUNK_OWNER_LEN) != 0 ||
	    (ref->stored_len && h.stored_len != ref->stored_len) || h.raw_len != ref->raw_len ||
	    rep.data_len - CHUNK_HDR_LEN != h.stored_len) {
		*bad = "header does not match";
		goto out;
	}
	/* the digest committed with the chunk, not only the vendor's own word */
	if (ref->has_digest && memcmp(h.digest, ref->digest, CHUNK_DIGEST_LEN) != 0) {
		*bad = "digest differs from the committed one";
		goto out;
	}
	rc = chunk_open_decode(a->vk, &h, rep.data + CHUNK_HDR_LEN, h.stored_len, raw);
	if (rc < 0) {
		if (rc == -EBADMSG)
			*bad = a->vk ? "digest or seal mismatch" : "digest mismatch";
		else if (rc == -EPROTO)
			*bad = a->vk ? "not encrypted" : "encrypted";
		goto out;
	}
	*hout = h;
	rc = 0;
out:
	xport_reply_clear(&rep);
	return rc;
}

/* Bookkeeping of one finished attempt (any thread). */
static void attempt_done(struct alloc_ctx *a, const struct alloc_chunk_ref *ref,
			 uint32_t vendor_id, int rc, const char *bad, uint64_t t0,
			 const struct chunk_hdr *h, bool won)
{
	uint64_t us = now_us() - t0;

	probe_read_end(a, vendor_id, rc == 0, us, rc == 0 ? h->stored_len : 0, won);
	if (rc == 0) {
		vstats_ok(a->vstats, vendor_id, us, now_ms());
		if (won) {
			struct receipt r;

			memcpy(r.chunk_id, h->chunk_id, CHUNK_ID_LEN);
			r.bytes = h->stored_len;
			memcpy(r.digest, h->digest, CHUNK_DIGEST_LEN);
			r.time_ms = wall_ms();
			if (receipts_add(a->receipts, vendor_id, &r))
				alloc_bg_kick(a);
		}
		return;
	}
	vstats_fail(a->vstats, vendor_id, now_ms());
	if (bad) {
		char hex[2 * CHUNK_ID_LEN + 1];

		chunk_id_hex(ref->chunk_id, hex);
		log_warn("fetch: chunk %s on vendor %u: %s", hex, vendor_id, bad);
		alloc_bg_report_bad(a, ref->chunk_id, vendor_id, bad);
	}
}

/* One replica after the other, in the calling thread. */
static int fetch_serial(struct alloc_ctx *a, const struct alloc_volume *vol,
			const struct alloc_chunk_ref *ref, const uint32_t *order, unsigned n,
			void *raw)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_us();
		const char *bad = NULL;
		struct chunk_hdr h;
		int rc;

		if (order[i] == 0)
			continue;
		probe_read_begin(a, order[i]);
		rc = fetch_one(a, vol, ref, order[i], raw, &h, &bad);
		attempt_done(a, ref, order[i], rc, bad, t0, &h, rc == 0);
		if (rc == 0)
			return 0;
	}
	return -EIO;
}

/* ---- hedged reads ----
 * Each attempt runs on a detached thread with its own buffer; the caller
 * waits for the first verified answer, asks the next replica when the
 * current one has not answered within its hedge bound (or failed), and
 * returns as soon as one attempt wins.  The losers are not interrupted
 * (a blocking call cannot be): they finish within the call timeout, their
 * data is dropped, and the last one out frees the race.  Threads are
 * counted (probe_thread_get) so that their number stays bounded and
 * alloc_free waits for them. */
struct race;

struct attempt {
	struct race *r;
	uint32_t vendor_id;
	uint8_t *buf;
	struct chunk_hdr h;
	int rc;
	bool done;
};

struct race {
	struct alloc_ctx *a;
	struct alloc_volume vol;
	struct alloc_chunk_ref ref;
	pthread_mutex_t lock;
	pthread_cond_t cond;		     /* CLOCK_MONOTONIC */
	struct attempt att[CHUNK_MAX_CHAIN]; /* lock */
	unsigned n_att;			     /* lock */
	unsigned running;		     /* lock */
	struct attempt *winner;		     /* lock */
	bool caller_gone;		     /* lock */
	unsigned refs;			     /* lock: caller + running attempts */
};

static void race_unref(struct race *r)
{
	bool last;

	pthread_mutex_lock(&r->lock);
	last = --r->refs == 0;
	pthread_mutex_unlock(&r->lock);
	if (!last)
		return;
	for (unsigned i = 0; i < r->n_att; i++)
		free(r->att[i].buf);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static void *attempt_main(void *arg)
{
	struct attempt *at = arg;
	struct race *r = at->r;
	struct alloc_ctx *a = r->a;
	uint64_t t0 = now_us();
	const char *bad = NULL;
	bool won = false;
	int rc;

	rc = fetch_one(a, &r->vol, &r->ref, at->vendor_id, at->buf, &at->h, &bad);
	pthread_mutex_lock(&r->lock);
	at->rc = rc;
	at->done = true;
	r->running--;
	if (rc == 0 && !r->winner && !r->caller_gone) {
		r->winner = at;
		won = true;
	}
	pthread_cond_broadcast(&r->cond);
	pthread_mutex_unlock(&r->lock);
	attempt_done(a, &r->ref, at->vendor_id, rc, bad, t0, &at->h, won);
	race_unref(r);
	probe_thread_put(a);
	return NULL;
}

/* Starts an attempt on vendor_id; false when no thread could be had. */
static bool race_start(struct race *r, uint32_t vendor_id)
{
	struct alloc_ctx *a = r->a;
	struct attempt *at;
	pthread_attr_t pa;
	pthread_t t;
	bool ok = false;

	if (!probe_thread_get(a))
		return false;
	pthread_mutex_lock(&r->lock);
	at = &r->att[r->n_att];
	memset(at, 0, sizeof(*at));
	at->r = r;
	at->vendor_id = vendor_id;
	at->buf = malloc(MAX((size_t)r->ref.raw_len, (size_t)1));
	if (at->buf) {
		r->n_att++;
		r->running++;
		r->refs++;
	}
	pthread_mutex_unlock(&r->lock);
	if (!at->buf) {
		probe_thread_put(a);
		return false;
	}
	probe_read_begin(a, vendor_id);
	pthread_attr_init(&pa);
	pthread_attr_setdetachstate(&pa, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&pa, 256 * 1024);
	ok = pthread_create(&t, &pa, attempt_main, at) == 0;
	pthread_attr_destroy(&pa);
	if (!ok) {
		probe_read_end(a, vendor_id, false, 0, 0, false);
		pthread_mutex_lock(&r->lock);
		r->n_att--; /* the slot is ours alone: nobody saw it */
		r->running--;
		r->refs--;
		pthread_mutex_unlock(&r->lock);
		free(at->buf);
		at->buf = NULL;
		probe_thread_put(a);
	}
	return ok;
}

static void deadline_ts(struct timespec *ts, uint64_t at_us)
{
	ts->tv_sec = (time_t)(at_us / 1000000u);
	ts->tv_nsec = (long)(at_us % 1000000u) * 1000;
}

static int fetch_hedged(struct alloc_ctx *a, const struct alloc_volume *vol,
			const struct alloc_chunk_ref *ref, const uint32_t *order, unsigned n,
			void *raw)
{
	pthread_condattr_t ca;
	struct race *r;
	struct attempt *w = NULL;
	unsigned next = 0;
	uint64_t hedge_at;
	int rc = -EIO;

	r = calloc(1, sizeof(*r));
	if (!r)
		return fetch_serial(a, vol, ref, order, n, raw);
	r->a = a;
	r->vol = *vol;
	r->ref = *ref;
	r->refs = 1;
	pthread_mutex_init(&r->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (!race_start(r, order[next])) {
		race_unref(r);
		return fetch_serial(a, vol, ref, order, n, raw);
	}
	hedge_at = now_us() + probe_hedge_bound_us(a, order[next]);
	next++;
	pthread_mutex_lock(&r->lock);
	for (;;) {
		struct timespec ts;
		uint64_t now;

		if (r->winner) {
			w = r->winner;
			break;
		}
		now = now_us();
		if (next < n && (r->running == 0 || now >= hedge_at)) {
			uint32_t slow = r->att[r->n_att - 1].vendor_id;
			bool hedge = r->running > 0;

			pthread_mutex_unlock(&r->lock);
			if (hedge)
				probe_note_hedge(a, slow);
			if (!race_start(r, order[next])) {
				/* no thread: wait for what runs, then try the rest here */
				pthread_mutex_lock(&r->lock);
				if (r->running == 0)
					break;
				hedge_at = UINT64_MAX;
				continue;
			}
			hedge_at = now_us() + probe_hedge_bound_us(a, order[next]);
			next++;
			pthread_mutex_lock(&r->lock);
			continue;
		}
		if (r->running == 0)
			break; /* every replica failed */
		if (next < n && hedge_at != UINT64_MAX) {
			deadline_ts(&ts, hedge_at);
			pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		} else {
			/* every attempt is bounded by the call timeout */
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&r->cond, &r->lock, &ts);
		}
	}
	r->caller_gone = true;
	pthread_mutex_unlock(&r->lock);
	if (w) {
		/* the winner is done and nobody else touches its buffer */
		memcpy(raw, w->buf, ref->raw_len);
		if (w != &r->att[0])
			probe_note_hedge_win(a, w->vendor_id);
		rc = 0;
	} else if (next < n) {
		rc = fetch_serial(a, vol, ref, order + next, n - next, raw);
	}
	race_unref(r);
	return rc;
}

int alloc_fetch(struct alloc_ctx *a, const struct alloc_chunk_ref *ref, void *raw)
{
	uint32_t order[CHUNK_MAX_CHAIN];
	struct alloc_volume vol;
	unsigned n;
	bool hedge = false;
	int rc;

	if (!ref || !raw || ref->raw_len > CHUNK_MAX_RAW || ref->stored_len > CHUNK_MAX_STORED)
		return -EINVAL;
	rc = alloc_volume_get(a, &vol);
	if (rc < 0)
		return rc;
	n = MIN(ref->n_vendors, (unsigned)CHUNK_MAX_CHAIN);
	if (n == 0)
		return -EIO;
	n = probe_read_order(a, ref->vendors, n, order, &hedge);
	if (hedge && n > 1)
		return fetch_hedged(a, &vol, ref, order, n, raw);
	return fetch_serial(a, &vol, ref, order, n, raw);
}

void alloc_receipts_flush(struct alloc_ctx *a)
{
	receipts_send(a, false, false);
}
