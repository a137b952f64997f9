/*
 * upload.c - upload sessions (DESIGN.md steps 3, 5, 6, 8, 9): a provisional
 * allocation (one or more leases with candidate vendors), the upload of each
 * chunk along a replica chain to its first vendor (which forwards it down
 * the chain), replacement of vendors that fail, and the final-FAT commit.
 *
 * A chunk is uploaded by one job on the context's upload pool (workq.c,
 * upload_threads threads): encode (zstd) -> choose a chain (placement.c) ->
 * MSG_CHUNK_PUT to chain[0] -> read which vendors hold a durable copy.
 * Vendors that did not store it are marked failed for the session; the
 * missing copies are sent again, along a new chain of other candidates of
 * the same lease (the chunk id stays: vendors that have it answer
 * idempotently, and the final placement is the union).  When the lease
 * cannot supply a chain any more, the client asks the FAT for another lease
 * (MSG_ALLOC with the failed vendors excluded); a chain never mixes leases,
 * because the chunk header names one lease.  Partial copies left behind by a
 * chunk that had to start over elsewhere are never committed: the FAT's GC
 * owns them.
 *
 * Commit: one CommitRequest on the session's first lease carries every
 * placement (each ChunkPlacement names its own lease), the freed chunks and
 * the metadata; each further lease is then released by a commit of its own
 * with no placement.  Lease renewal runs on the background thread (bg.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aead.h"
#include "alloc_int.h"

#define PUT_TIMEOUT_MS 30000
#define PUT_BUSY_BACKOFF_MS 50 /* first wait after a vendor answered EAGAIN */
#define PUT_ATTEMPTS 12	       /* chains tried per chunk */
#define MAX_GRANTS 16	       /* MSG_ALLOC per session */
#define MAX_CANDIDATES 1024
#define MAX_TOKEN 4096
#define COMMIT_TRIES 3

struct placed {
	uint8_t id[CHUNK_ID_LEN];
	uint64_t size;
	uint64_t lease_id;
	uint32_t vendors[CHUNK_MAX_CHAIN];
	unsigned n;
};

struct alloc_session {
	struct alloc_ctx *a;
	struct alloc_volume vol;
	pthread_mutex_t lock;
	struct place place;	     /* lock */
	uint64_t *leases;	     /* lock: leases[0] is the main lease */
	size_t n_leases;	     /* lock */
	struct placed *placed;	     /* lock */
	size_t n_placed, cap_placed; /* lock */
	uint64_t gen;		     /* lock: bumped when candidates are added */
	uint64_t pending;	     /* lock: raw bytes of chunks still uploading */
	unsigned grants;	     /* grant_lock */
	pthread_mutex_t grant_lock;  /* one MSG_ALLOC at a time */
};

/* ---- allocation ---- */

static uint64_t round_chunks(uint64_t bytes, uint32_t chunk_size)
{
	uint64_t cs = chunk_size ? chunk_size : (4u << 20);
	uint64_t n = bytes / cs + (bytes % cs != 0);

	/* a sealed chunk is CHUNK_SEAL_OVERHEAD bytes longer than its data */
	return MAX(n, (uint64_t)1) * (cs + CHUNK_SEAL_OVERHEAD);
}

/* MSG_ALLOC for `bytes` raw bytes; merges the candidates and registers the
 * lease for renewal.  Caller holds grant_lock (or is alone). */
static int grant(struct alloc_session *s, uint64_t bytes)
{
	struct alloc_ctx *a = s->a;
	Pstore__AllocRequest ar = PSTORE__ALLOC_REQUEST__INIT;
	struct xport_reply rep = {0};
	Pstore__AllocReply *r;
	uint32_t *excl = NULL, *pexcl = NULL;
	uint64_t *nl, len_ms, wall;
	size_t added = 0, n_pexcl = 0, n_failed;
	double score;
	int rc;

	/* path probing: ask for the preferred vendors first (the others
	 * excluded), then for any vendor that did not fail */
	probe_alloc_exclude(a, s->vol.copies, &pexcl, &n_pexcl);
	pthread_mutex_lock(&s->lock);
	n_failed = s->place.n_failed;
	if (n_failed + n_pexcl) {
		excl = malloc((n_failed + n_pexcl) * sizeof(*excl));
		if (excl) {
			memcpy(excl, s->place.failed, n_failed * sizeof(*excl));
			if (n_pexcl)
				memcpy(excl + n_failed, pexcl, n_pexcl * sizeof(*excl));
			ar.n_exclude = n_failed + n_pexcl;
		}
	}
	pthread_mutex_unlock(&s->lock);
	free(pexcl);
	ar.exclude = excl;
	ar.volume = s->vol.name;
	ar.bytes = round_chunks(bytes, s->vol.chunk_size);
	ar.copies = s->vol.copies;
	ar.lease_ms = a->lease_ms;
	rc = alloc_fat_call(a, MSG_ALLOC, &ar.base, &pstore__alloc_reply__descriptor, &rep);
	if (rc == -ENOSPC && n_pexcl && excl) {
		log_info("alloc: the preferred vendors cannot take it; asking for any vendor");
		ar.n_exclude = n_failed;
		rc = alloc_fat_call(a, MSG_ALLOC, &ar.base, &pstore__alloc_reply__descriptor,
				    &rep);
	}
	free(excl);
	if (rc < 0) {
		log_warn("alloc: no allocation of %llu bytes x %u for volume %s: %s",
			 (unsigned long long)ar.bytes, ar.copies, s->vol.name, strerror(-rc));
		return rc;
	}
	r = (Pstore__AllocReply *)rep.msg;
	if (r->lease_id == 0 || r->n_candidates > MAX_CANDIDATES) {
		log_err("alloc: FAT sent an invalid allocation (lease %llu, %zu candidates)",
			(unsigned long long)r->lease_id, r->n_candidates);
		rc = -EBADMSG;
		goto out;
	}
	pthread_mutex_lock(&s->lock);
	nl = realloc(s->leases, (s->n_leases + 1) * sizeof(*nl));
	if (!nl) {
		pthread_mutex_unlock(&s->lock);
		rc = -ENOMEM;
		goto out;
	}
	s->leases = nl;
	s->leases[s->n_leases++] = r->lease_id;
	for (size_t i = 0; i < r->n_candidates; i++) {
		const Pstore__Candidate *c = r->candidates[i];

		if (c->token.len == 0 || c->token.len > MAX_TOKEN ||
		    place_add(&s->place, c->vendor_id, c->address, r->lease_id, c->reserved,
			      c->token.data, c->token.len) < 0) {
			log_warn("alloc: ignoring invalid candidate %u of lease %llu",
				 c->vendor_id, (unsigned long long)r->lease_id);
			continue;
		}
		alloc_vendor_learn(a, c->vendor_id, c->address);
		if (probe_score(a, c->vendor_id, &score)) {
			s->place.spread = probe_spread(a);
			place_rank(&s->place, c->vendor_id, score, c->zone);
		}
		added++;
	}
	s->gen++;
	pthread_mutex_unlock(&s->lock);
	wall = wall_ms();
	len_ms = r->expiry_ms > wall ? r->expiry_ms - wall : a->lease_ms;
	alloc_bg_lease_add(a, s, r->lease_id, (uint32_t)MIN(len_ms, (uint64_t)UINT32_MAX));
	log_debug("alloc: lease %llu: %zu candidates for %llu bytes x %u",
		  (unsigned long long)r->lease_id, added, (unsigned long long)ar.bytes,
		  ar.copies);
out:
	xport_reply_clear(&rep);
	return rc;
}

/* More candidates are needed; asks the FAT unless another upload did since
 * the caller looked (gen). */
static int grant_more(struct alloc_session *s, uint64_t seen_gen, uint64_t at_least)
{
	uint64_t gen, pending;
	int rc = 0;

	pthread_mutex_lock(&s->grant_lock);
	pthread_mutex_lock(&s->lock);
	gen = s->gen;
	pending = s->pending;
	pthread_mutex_unlock(&s->lock);
	if (gen != seen_gen)
		goto out;
	if (s->grants >= MAX_GRANTS) {
		rc = -ENOSPC;
		goto out;
	}
	s->grants++;
	rc = grant(s, MAX(pending, at_least));
out:
	pthread_mutex_unlock(&s->grant_lock);
	return rc;
}

void alloc_session_renewed(struct alloc_session *s, const Pstore__AllocReply *r)
{
	pthread_mutex_lock(&s->lock);
	for (size_t k = 0; k < r->n_candidates; k++) {
		const Pstore__Candidate *c = r->candidates[k];

		if (c->token.len == 0 || c->token.len > MAX_TOKEN)
			continue;
		for (size_t i = 0; i < s->place.n; i++) {
			struct place_cand *pc = &s->place.c[i];
			uint8_t *t;

			if (pc->lease_id != r->lease_id || pc->vendor_id != c->vendor_id)
				continue;
			t = malloc(c->token.len);
			if (!t)
				break;
			memcpy(t, c->token.data, c->token.len);
			free(pc->token);
			pc->token = t;
			pc->token_len = c->token.len;
		}
	}
	pthread_mutex_unlock(&s->lock);
}

static void session_free(struct alloc_session *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_leases; i++)
		alloc_bg_lease_del(s->a, s->leases[i]);
	place_clear(&s->place);
	free(s->leases);
	free(s->placed);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->grant_lock);
	free(s);
}

/* Releases one lease with a placement-free commit. */
static int release_lease(struct alloc_ctx *a, const struct alloc_session *s, uint64_t lease)
{
	Pstore__CommitRequest cr = PSTORE__COMMIT_REQUEST__INIT;
	struct xport_reply rep = {0};
	uint8_t rid[16];
	int rc;

	random_fill(rid, sizeof(rid));
	cr.volume = (char *)s->vol.name;
	cr.lease_id = lease;
	cr.release = true;
	cr.failed_vendors = s->place.failed;
	cr.n_failed_vendors = s->place.n_failed;
	cr.request_id.data = rid;
	cr.request_id.len = sizeof(rid);
	cr.writer_token = atomic_load(&a->writer_token);
	for (int t = 0; t < COMMIT_TRIES; t++) {
		rc = alloc_fat_call(a, MSG_COMMIT, &cr.base, &pstore__commit_reply__descriptor,
				    &rep);
		xport_reply_clear(&rep);
		if (rc == 0 || !alloc_err_transient(rc))
			break;
	}
	if (rc < 0)
		log_warn("alloc: releasing lease %llu failed: %s (it expires by itself)",
			 (unsigned long long)lease, strerror(-rc));
	return rc;
}

int alloc_session_begin(struct alloc_ctx *a, uint64_t bytes, struct alloc_session **out)
{
	struct alloc_session *s;
	int rc;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->a = a;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->grant_lock, NULL);
	place_init(&s->place);
	rc = alloc_volume_get(a, &s->vol);
	if (rc < 0) {
		log_err("alloc: upload session without an open volume");
		goto fail;
	}
	s->grants = 1;
	rc = grant(s, bytes);
	if (rc < 0)
		goto fail;
	if (place_usable(&s->place, 0) < s->vol.copies) {
		log_warn("alloc: the FAT offered %zu usable vendors, volume %s needs %u copies",
			 place_usable(&s->place, 0), s->vol.name, s->vol.copies);
		release_lease(a, s, s->leases[0]);
		rc = -ENOSPC;
		goto fail;
	}
	*out = s;
	return 0;
fail:
	session_free(s);
	return rc;
}

/* ---- one chunk ---- */

struct hop {
	size_t idx;
	uint32_t vendor_id;
	char addr[ALLOC_ADDR_LEN];
	uint8_t *token;
	size_t token_len;
	uint64_t lease_id;
};

/* Chooses and copies out a chain (tokens copied: the candidate array may grow
 * while we send).  0, -ENOSPC, -ENOMEM. */
static int pick_chain(struct alloc_session *s, uint64_t size, unsigned want,
		      uint64_t only_lease, const uint32_t *have, unsigned n_have,
		      struct hop *hops, uint64_t *gen)
{
	size_t idx[CHUNK_MAX_CHAIN];
	int rc;

	pthread_mutex_lock(&s->lock);
	*gen = s->gen;
	rc = place_choose(&s->place, size, want, only_lease, have, n_have, idx);
	if (rc == 0) {
		for (unsigned i = 0; i < want; i++) {
			const struct place_cand *c = &s->place.c[idx[i]];

			hops[i].idx = idx[i];
			hops[i].vendor_id = c->vendor_id;
			memcpy(hops[i].addr, c->addr, sizeof(hops[i].addr));
			hops[i].lease_id = c->lease_id;
			hops[i].token_len = c->token_len;
			hops[i].token = malloc(c->token_len ? c->token_len : 1);
			if (!hops[i].token) {
				for (unsigned j = 0; j <= i; j++) {
					free(hops[j].token);
					hops[j].token = NULL;
				}
				for (unsigned j = 0; j < want; j++)
					place_uncharge(&s->place, idx[j], size);
				rc = -ENOMEM;
				break;
			}
			memcpy(hops[i].token, c->token, c->token_len);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* Sends the chunk along hops[0..n).  Fills stored[] with the hops that hold
 * a durable copy; marks the others failed and gives their charge back. */
static int send_chain(struct alloc_session *s, const struct hop *hops, unsigned n,
		      const struct chunk_hdr *base, const uint8_t *payload, uint32_t *stored,
		      unsigned *n_stored)
{
	struct alloc_ctx *a = s->a;
	Pstore__ChunkPut cp = PSTORE__CHUNK_PUT__INIT;
	Pstore__ChainHop ch[CHUNK_MAX_CHAIN], *chp[CHUNK_MAX_CHAIN];
	struct xport_reply rep = {0};
	struct chunk_hdr h = *base;
	uint8_t hbuf[CHUNK_HDR_LEN];
	char err[160] = "", hex[2 * CHUNK_ID_LEN + 1];
	bool ok[CHUNK_MAX_CHAIN] = {false};
	int rc;

	*n_stored = 0;
	h.lease_id = hops[0].lease_id;
	h.vendor_id = hops[0].vendor_id;
	h.chain_len = (uint8_t)n;
	memset(h.chain, 0, sizeof(h.chain));
	for (unsigned i = 0; i < n; i++) {
		h.chain[i] = hops[i].vendor_id;
		pstore__chain_hop__init(&ch[i]);
		ch[i].vendor_id = hops[i].vendor_id;
		ch[i].address = (char *)hops[i].addr;
		ch[i].token.data = hops[i].token;
		ch[i].token.len = hops[i].token_len;
		chp[i] = &ch[i];
	}
	cp.chain = chp;
	cp.n_chain = n;
	/* the head forwards with less, so it answers before we give up */
	cp.deadline_ms = PUT_TIMEOUT_MS;
	chunk_hdr_encode(&h, hbuf);
	chunk_id_hex(h.chunk_id, hex);
	rc = xport_call2(a->pool, hops[0].addr, MSG_CHUNK_PUT, &cp.base, hbuf, CHUNK_HDR_LEN,
			 payload, h.stored_len, &pstore__chunk_put_reply__descriptor, &rep,
			 PUT_TIMEOUT_MS, err, sizeof(err));
	if (rc < 0) {
		/* the head failed (or refused): nothing is known of the others */
		log_warn("upload: chunk %s to vendor %u (%s): %s%s%s", hex, hops[0].vendor_id,
			 hops[0].addr, strerror(-rc), err[0] ? ": " : "", err);
		if (alloc_err_transient(rc)) {
			xport_pool_forget(a->pool, hops[0].addr);
			vstats_reach(a->vstats, hops[0].vendor_id, false, now_ms());
		}
	} else {
		Pstore__ChunkPutReply *r = (Pstore__ChunkPutReply *)rep.msg;

		vstats_reach(a->vstats, hops[0].vendor_id, true, now_ms());
		/* a hop the chain could not reach is as good as down for us */
		for (size_t k = 0; k < r->n_failed && k < 64; k++)
			for (unsigned i = 1; i < n; i++)
				if (r->failed[k] == hops[i].vendor_id)
					vstats_reach(a->vstats, hops[i].vendor_id, false,
						     now_ms());

		for (size_t k = 0; k < r->n_stored_on && k < 64; k++)
			for (unsigned i = 0; i < n; i++)
				if (r->stored_on[k] == hops[i].vendor_id)
					ok[i] = true;
	}
	pthread_mutex_lock(&s->lock);
	for (unsigned i = 0; i < n; i++) {
		if (ok[i]) {
			stored[(*n_stored)++] = hops[i].vendor_id;
			continue;
		}
		place_uncharge(&s->place, hops[i].idx, h.stored_len);
		/* a hop behind a failed head was not tried: only the head is to
		 * blame; a busy head (EAGAIN: its queue is full) is not failed,
		 * the chunk is tried again after a short backoff */
		if (rc == 0 || (i == 0 && rc != -EAGAIN)) {
			if (rc == 0)
				log_warn("upload: chunk %s: vendor %u did not store it%s%s",
					 hex, hops[i].vendor_id, rep.msg ? ": " : "",
					 rep.msg && ((Pstore__ChunkPutReply *)rep.msg)->detail
					     ? ((Pstore__ChunkPutReply *)rep.msg)->detail
					     : "");
			place_fail(&s->place, hops[i].vendor_id);
		}
	}
	pthread_mutex_unlock(&s->lock);
	xport_reply_clear(&rep);
	return rc;
}

static int record_placed(struct alloc_session *s, const struct alloc_chunk *c,
			 uint64_t lease_id)
{
	struct placed *p;
	int rc = 0;

	pthread_mutex_lock(&s->lock);
	if (s->n_placed == s->cap_placed) {
		size_t ncap = s->cap_placed ? 2 * s->cap_placed : 64;
		struct placed *np = realloc(s->placed, ncap * sizeof(*np));

		if (!np) {
			rc = -ENOMEM;
			goto out;
		}
		s->placed = np;
		s->cap_placed = ncap;
	}
	p = &s->placed[s->n_placed++];
	memcpy(p->id, c->chunk_id, CHUNK_ID_LEN);
	p->size = c->stored_len;
	p->lease_id = lease_id;
	p->n = c->n_vendors;
	memcpy(p->vendors, c->vendors, sizeof(p->vendors));
out:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* A new chunk id and the stored payload of c: compressed, and sealed with
 * the volume key when the volume is encrypted. */
static int encode_chunk(struct alloc_session *s, const struct alloc_chunk *c,
			struct chunk_hdr *h, uint8_t **stored, size_t *stored_len)
{
	struct alloc_ctx *a = s->a;
	int rc;

	memset(h, 0, sizeof(*h));
	chunk_id_new(h->chunk_id);
	h->magic = CHUNK_HDR_MAGIC;
	h->version = CHUNK_HDR_VERSION;
	memcpy(h->owner, s->vol.id, CHUNK_OWNER_LEN);
	h->pieces = (uint8_t)a->pieces;
	if (a->vk) {
		rc = chunk_seal_encode(a->vk, c->raw, c->raw_len, a->zstd_level, h, stored);
		if (rc == 0)
			*stored_len = h->stored_len;
		return rc;
	}
	rc = chunk_encode(c->raw, c->raw_len, a->zstd_level, stored, stored_len, &h->flags,
			  h->digest);
	if (rc < 0)
		return rc;
	h->raw_len = (uint32_t)c->raw_len;
	h->stored_len = (uint32_t)*stored_len;
	return 0;
}

static int upload_chunk(struct alloc_session *s, struct alloc_chunk *c)
{
	unsigned copies = s->vol.copies;
	struct chunk_hdr h;
	uint8_t *stored = NULL;
	size_t stored_len = 0;
	uint32_t have[CHUNK_MAX_CHAIN];
	unsigned n_have = 0;
	uint64_t chunk_lease = 0;
	int rc = -EIO;

	memset(c->vendors, 0, sizeof(c->vendors));
	c->n_vendors = 0;
	/* the FAT refuses empty placements: an empty file has no chunk */
	if (c->raw_len == 0 || c->raw_len > CHUNK_MAX_RAW || !c->raw)
		return -EINVAL;
	rc = encode_chunk(s, c, &h, &stored, &stored_len);
	if (rc < 0)
		return rc;

	rc = -EIO;
	for (int attempt = 0; attempt < PUT_ATTEMPTS && n_have < copies; attempt++) {
		struct hop hops[CHUNK_MAX_CHAIN];
		uint32_t got[CHUNK_MAX_CHAIN];
		unsigned want = copies - n_have, n_got = 0;
		uint64_t gen;

		memset(hops, 0, sizeof(hops));
		rc = pick_chain(s, stored_len, want, chunk_lease, have, n_have, hops, &gen);
		if (rc == -ENOSPC && n_have > 0) {
			/* this lease has no vendor left for the missing copies: start
			 * over under any lease; the partial copies become garbage */
			char hex[2 * CHUNK_ID_LEN + 1];

			chunk_id_hex(h.chunk_id, hex);
			log_info("upload: chunk %s: lease %llu has no replacement vendor, "
				 "uploading it anew",
				 hex, (unsigned long long)chunk_lease);
			/* a new id: sealed anew too (the id picks the chunk's key) */
			free(stored);
			stored = NULL;
			rc = encode_chunk(s, c, &h, &stored, &stored_len);
			if (rc < 0)
				break;
			n_have = 0;
			chunk_lease = 0;
			continue;
		}
		if (rc == -ENOSPC) {
			rc = grant_more(s, gen, c->raw_len);
			if (rc < 0)
				break;
			continue;
		}
		if (rc < 0)
			break;
		rc = send_chain(s, hops, want, &h, stored, got, &n_got);
		for (unsigned i = 0; i < want; i++)
			free(hops[i].token);
		if (rc == -EAGAIN)
			usleep(PUT_BUSY_BACKOFF_MS * 1000u << MIN(attempt, 4));
		for (unsigned i = 0; i < n_got && n_have < CHUNK_MAX_CHAIN; i++)
			have[n_have++] = got[i];
		if (n_got > 0)
			chunk_lease = hops[0].lease_id;
		rc = n_have >= copies ? 0 : -EIO;
	}
	if (n_have < copies && rc >= 0)
		rc = -EIO; /* out of attempts */
	if (n_have >= copies) {
		memcpy(c->chunk_id, h.chunk_id, CHUNK_ID_LEN);
		c->stored_len = stored_len;
		c->flags = h.flags;
		memcpy(c->digest, h.digest, CHUNK_DIGEST_LEN);
		memcpy(c->vendors, have, n_have * sizeof(have[0]));
		c->n_vendors = n_have;
		rc = record_placed(s, c, chunk_lease);
	} else {
		char hex[2 * CHUNK_ID_LEN + 1];

		chunk_id_hex(h.chunk_id, hex);
		log_err("upload: chunk %s stored on %u of %u vendors: %s", hex, n_have, copies,
			strerror(-rc));
	}
	free(stored);
	return rc;
}

/* ---- a batch of chunks on the upload pool ---- */

struct put_batch {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	size_t left;	     /* lock */
};

struct put_job {
	struct alloc_session *s;
	struct alloc_chunk *c;
	struct put_batch *b;
};

static void put_job_run(void *arg)
{
	struct put_job *j = arg;

	j->c->status = upload_chunk(j->s, j->c);
	pthread_mutex_lock(&j->s->lock);
	j->s->pending -= MIN(j->s->pending, (uint64_t)j->c->raw_len);
	pthread_mutex_unlock(&j->s->lock);
	pthread_mutex_lock(&j->b->lock);
	if (--j->b->left == 0)
		pthread_cond_broadcast(&j->b->cond);
	pthread_mutex_unlock(&j->b->lock);
}

static struct workq *get_workq(struct alloc_ctx *a)
{
	struct workq *q;

	pthread_mutex_lock(&a->workq_lock);
	if (!a->workq)
		a->workq = workq_new(a->upload_threads, "alloc-up");
	q = a->workq;
	pthread_mutex_unlock(&a->workq_lock);
	return q;
}

int alloc_session_put(struct alloc_session *s, struct alloc_chunk *chunks, size_t n)
{
	struct put_batch b;
	struct put_job *jobs;
	struct workq *q;
	pthread_condattr_t ca;
	uint64_t total = 0, t0 = now_ms();
	int rc = 0;

	if (!s || (n && !chunks))
		return -EINVAL;
	if (n == 0)
		return 0;
	q = get_workq(s->a);
	if (!q)
		return -ENOMEM;
	jobs = calloc(n, sizeof(*jobs));
	if (!jobs)
		return -ENOMEM;
	pthread_mutex_init(&b.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b.cond, &ca);
	pthread_condattr_destroy(&ca);
	for (size_t i = 0; i < n; i++) {
		chunks[i].status = -EINPROGRESS;
		total += chunks[i].raw_len;
	}
	pthread_mutex_lock(&s->lock);
	s->pending += total;
	pthread_mutex_unlock(&s->lock);
	b.left = n;
	for (size_t i = 0; i < n; i++) {
		int prc;

		jobs[i] = (struct put_job){.s = s, .c = &chunks[i], .b = &b};
		prc = workq_push(q, put_job_run, &jobs[i]);
		if (prc < 0) {
			/* not queued: finish it here as failed */
			chunks[i].status = prc;
			pthread_mutex_lock(&s->lock);
			s->pending -= MIN(s->pending, (uint64_t)chunks[i].raw_len);
			pthread_mutex_unlock(&s->lock);
			pthread_mutex_lock(&b.lock);
			b.left--;
			pthread_mutex_unlock(&b.lock);
		}
	}
	/* every job is bounded (timeouts, PUT_ATTEMPTS, MAX_GRANTS); the timed
	 * wait only lets us say so when it takes unusually long */
	pthread_mutex_lock(&b.lock);
	while (b.left > 0) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 60;
		if (pthread_cond_timedwait(&b.cond, &b.lock, &ts) == ETIMEDOUT)
			log_warn("upload: %zu of %zu chunks still uploading after %llu s",
				 b.left, n, (unsigned long long)((now_ms() - t0) / 1000));
	}
	pthread_mutex_unlock(&b.lock);
	for (size_t i = 0; i < n; i++)
		if (chunks[i].status < 0 && rc == 0)
			rc = chunks[i].status;
	pthread_cond_destroy(&b.cond);
	pthread_mutex_destroy(&b.lock);
	free(jobs);
	log_debug("upload: %zu chunks, %llu bytes in %llu ms: %s", n, (unsigned long long)total,
		  (unsigned long long)(now_ms() - t0), rc ? strerror(-rc) : "ok");
	return rc;
}

/* ---- commit ---- */

int alloc_commit(struct alloc_ctx *a, struct alloc_session *s,
		 const uint8_t (*freed)[CHUNK_ID_LEN], size_t n_freed,
		 const struct alloc_meta_op *meta, size_t n_meta)
{
	Pstore__CommitRequest cr = PSTORE__COMMIT_REQUEST__INIT;
	Pstore__ChunkPlacement *pl = NULL, **plp = NULL;
	Pstore__MetaOp *mo = NULL, **mop = NULL;
	const struct alloc_meta_op *orig = meta;
	struct alloc_meta_op *sealed = NULL;
	ProtobufCBinaryData *fr = NULL;
	struct xport_reply rep = {0};
	struct alloc_volume vol;
	uint8_t rid[16];
	size_t n_placed = 0;
	int rc;

	if ((n_freed && !freed) || (n_meta && !meta)) {
		rc = -EINVAL;
		goto done;
	}
	if (s)
		vol = s->vol;
	else if ((rc = alloc_volume_get(a, &vol)) < 0)
		goto done;
	if (s) {
		pthread_mutex_lock(&s->lock); /* no put may run now; lock for the record */
		n_placed = s->n_placed;
		pthread_mutex_unlock(&s->lock);
	}
	pl = calloc(n_placed + 1, sizeof(*pl));
	plp = calloc(n_placed + 1, sizeof(*plp));
	fr = calloc(n_freed + 1, sizeof(*fr));
	mo = calloc(n_meta + 1, sizeof(*mo));
	mop = calloc(n_meta + 1, sizeof(*mop));
	if (!pl || !plp || !fr || !mo || !mop) {
		rc = -ENOMEM;
		goto done;
	}
	for (size_t i = 0; i < n_placed; i++) {
		pstore__chunk_placement__init(&pl[i]);
		pl[i].chunk_id.data = s->placed[i].id;
		pl[i].chunk_id.len = CHUNK_ID_LEN;
		pl[i].size = s->placed[i].size;
		pl[i].vendors = s->placed[i].vendors;
		pl[i].n_vendors = s->placed[i].n;
		pl[i].lease_id = s->placed[i].lease_id;
		plp[i] = &pl[i];
	}
	for (size_t i = 0; i < n_freed; i++) {
		fr[i].data = (uint8_t *)freed[i];
		fr[i].len = CHUNK_ID_LEN;
	}
	rc = volkey_seal_ops(a, vol.id, meta, n_meta, &sealed);
	if (rc < 0) {
		log_err("alloc: sealing %zu metadata changes failed: %s", n_meta,
			strerror(-rc));
		goto done;
	}
	meta = sealed;
	for (size_t i = 0; i < n_meta; i++) {
		pstore__meta_op__init(&mo[i]);
		mo[i].key.data = (uint8_t *)meta[i].key;
		mo[i].key.len = meta[i].klen;
		if (meta[i].val) {
			mo[i].value.data = (uint8_t *)meta[i].val;
			mo[i].value.len = meta[i].vlen;
		} else {
			mo[i].del = true;
		}
		mop[i] = &mo[i];
	}
	random_fill(rid, sizeof(rid));
	cr.volume = vol.name;
	cr.lease_id = s && s->n_leases ? s->leases[0] : 0;
	cr.placed = plp;
	cr.n_placed = n_placed;
	cr.freed = fr;
	cr.n_freed = n_freed;
	cr.meta = mop;
	cr.n_meta = n_meta;
	cr.release = cr.lease_id != 0;
	if (s) {
		cr.failed_vendors = s->place.failed;
		cr.n_failed_vendors = s->place.n_failed;
	}
	cr.request_id.data = rid;
	cr.request_id.len = sizeof(rid);
	cr.writer_token = atomic_load(&a->writer_token);
	if (protobuf_c_message_get_packed_size(&cr.base) > XPORT_MAX_CTL) {
		log_err("alloc: commit of %zu chunks, %zu freed, %zu metadata changes is too "
			"large for one message",
			n_placed, n_freed, n_meta);
		rc = -EMSGSIZE;
		goto done;
	}
	/* same request id on every try: the FAT applies it once */
	for (int t = 0; t < COMMIT_TRIES; t++) {
		rc = alloc_fat_call(a, MSG_COMMIT, &cr.base, &pstore__commit_reply__descriptor,
				    &rep);
		if (rc == 0 || !alloc_err_transient(rc))
			break;
		log_warn("alloc: commit not acknowledged (%s), sending it again",
			 strerror(-rc));
	}
	if (rc == 0) {
		Pstore__CommitReply *r = (Pstore__CommitReply *)rep.msg;

		pthread_mutex_lock(&a->vol_lock);
		if (a->have_vol && memcmp(a->vol.id, vol.id, CHUNK_OWNER_LEN) == 0 &&
		    r->revision > a->vol.revision)
			a->vol.revision = r->revision;
		pthread_mutex_unlock(&a->vol_lock);
		log_debug("alloc: committed %zu chunks, %zu freed, %zu metadata changes: "
			  "revision %llu",
			  n_placed, n_freed, n_meta, (unsigned long long)r->revision);
	} else {
		log_err("alloc: commit of %zu chunks and %zu metadata changes failed: %s",
			n_placed, n_meta, strerror(-rc));
	}
	xport_reply_clear(&rep);
	/* the further leases have nothing to place: release their reservations;
	 * after a failed commit, the main lease's too (its chunks are garbage) */
	for (size_t i = rc == 0 ? 1 : 0; s && i < s->n_leases; i++)
		release_lease(a, s, s->leases[i]);
done:
	free(pl);
	free(plp);
	free(fr);
	free(mo);
	free(mop);
	volkey_free_ops(orig, sealed, n_meta);
	session_free(s);
	return rc;
}

void alloc_session_abort(struct alloc_session *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_leases; i++)
		release_lease(s->a, s, s->leases[i]);
	session_free(s);
}

void alloc_set_writer_token(struct alloc_ctx *a, uint64_t token)
{
	atomic_store(&a->writer_token, token);
}
