/*
 * alloc_int.h - what the files of src/alloc share and nobody else sees: the
 * context, the pure bookkeeping pieces (placement, latency estimates,
 * receipt queues) that the unit tests drive directly, the worker pool and
 * the background thread.  Grouped by the file that implements them.
 */
#ifndef PSTORE_ALLOC_INT_H
#define PSTORE_ALLOC_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alloc.h"
#include "common.h"

#define ALLOC_ADDR_LEN 128

/* ---- placement.c: candidates of a session and the choice of chains ----
 * Pure bookkeeping, no locking (the session's lock protects it). */
struct place_cand {
	uint32_t vendor_id;
	char addr[ALLOC_ADDR_LEN];
	uint64_t lease_id; /* the lease that reserved this space */
	uint64_t reserved; /* bytes per copy granted by the FAT */
	uint64_t charged;  /* bytes placed or in flight on it */
	uint8_t *token;	   /* serialized SignedToken, owned */
	size_t token_len;
	bool failed;  /* unusable for the rest of the session */
	bool ranked;  /* score/zone set by place_rank (path probing) */
	double score; /* probe score, higher is better */
	char zone[64];
};

struct place {
	struct place_cand *c;
	size_t n, cap;
	size_t next_head; /* rotation of chain heads */
	uint32_t *failed; /* failed vendor ids, deduplicated */
	size_t n_failed, cap_failed;
	double spread; /* near-equal band of scores (ranked candidates) */
};

void place_init(struct place *p);
void place_clear(struct place *p);
/* Adds one candidate of lease_id (copies the token).  A vendor already known
 * under the same lease is ignored; a failed vendor stays failed.  0, -EINVAL
 * (bad id/address), -ENOMEM. */
int place_add(struct place *p, uint32_t vendor_id, const char *addr, uint64_t lease_id,
	      uint64_t reserved, const uint8_t *token, size_t token_len);
/* Chooses `want` distinct usable candidates of one lease (only_lease, or any
 * lease when 0) with at least `size` bytes left, none of them in avoid[];
 * rotates the head so that every candidate gets first copies.  On success
 * charges size to each, writes candidate indexes to out[want] and returns 0;
 * -ENOSPC when no lease can supply that many. */
int place_choose(struct place *p, uint64_t size, unsigned want, uint64_t only_lease,
		 const uint32_t *avoid, unsigned n_avoid, size_t *out);
/* Sets the probe score and zone of every candidate of the vendor.  Once a
 * lease has ranked candidates, place_choose takes chain heads in rotation
 * among the near-equal best (score >= best * (1 - spread), at least `want`
 * of them), fills the chain by score, and never puts two copies in one zone
 * when the lease's candidates span enough zones. */
void place_rank(struct place *p, uint32_t vendor_id, double score, const char *zone);
/* Gives back a charge (the copy was not stored). */
void place_uncharge(struct place *p, size_t idx, uint64_t size);
/* Marks every candidate of the vendor failed and records it; 0 or -ENOMEM. */
int place_fail(struct place *p, uint32_t vendor_id);
bool place_is_failed(const struct place *p, uint32_t vendor_id);
/* Usable candidates (not failed) with at least size bytes left. */
size_t place_usable(const struct place *p, uint64_t size);

/* ---- vstats.c: live latency estimate per vendor ----
 * EWMA of call times; a failure pushes a vendor back for a while (doubling
 * with consecutive failures); untried vendors get the mean of the known
 * estimates.  Thread-safe. */
struct vstats;
struct vstats *vstats_new(void);
void vstats_free(struct vstats *v);
void vstats_ok(struct vstats *v, uint32_t vendor_id, uint64_t elapsed_us, uint64_t now);
void vstats_fail(struct vstats *v, uint32_t vendor_id, uint64_t now);
/* Writes in[] ordered best first to out[] (n entries); ties keep in[] order.
 * now is in ms (now_ms()). */
void vstats_order(struct vstats *v, const uint32_t *in, unsigned n, uint32_t *out,
		  uint64_t now);
/* Records whether a call reached the vendor (any answer, even an error
 * reply) or failed at the connection level (refused, reset, timed out). */
void vstats_reach(struct vstats *v, uint32_t vendor_id, bool reached, uint64_t now);
/* True when the vendor's last connection-level failure is within window_ms
 * and nothing has reached it since. */
bool vstats_unreachable(struct vstats *v, uint32_t vendor_id, uint64_t window_ms, uint64_t now);
/* Current estimate in µs (0 if unknown) and whether it is penalized. */
uint64_t vstats_estimate(struct vstats *v, uint32_t vendor_id, uint64_t now, bool *penalized);

/* ---- score.c: the scoring function and the preferred set ---- */
#define PROBE_MAX_PER_ROUND 64
#define SCORE_MAX_PREFER 16

struct score_in {
	bool alive;			 /* at the FAT server */
	double rtt_ms;			 /* < 0: unknown */
	int hops;			 /* < 0: unknown */
	double avail;			 /* decayed share of answered probes */
	uint32_t samples;		 /* probes sent so far */
	uint32_t silent;		 /* probes lost in a row */
	uint32_t recent_ok, recent_sent; /* the last probes, for the reason text */
	uint64_t free, capacity;
	uint32_t load;
};

struct score_out {
	double score;
	double c_rtt, c_hops, c_avail, c_free, c_load; /* the terms, each in [0, 1] */
	bool discard;
	char reason[128]; /* why discarded ("" if not) */
};

void score_compute(const struct alloc_probe_conf *c, const struct score_in *in,
		   struct score_out *out);

struct score_rank {
	uint32_t vendor_id;
	double score;
	bool discard;
	char zone[64];
	bool preferred; /* out */
};
/* Sorts r best first and marks the preferred set: the usable vendors whose
 * score is within `spread` of the best, at least copies + 1 and at most
 * copies + 2 of them, made to span min(zones, copies) zones when zones are
 * declared (two or more distinct zone names).  Returns its size. */
size_t score_prefer(struct score_rank *r, size_t n, unsigned copies, double spread);

/* ---- probe.c: the prober and the live view of each vendor ----
 * NULL-safe: every function does nothing (or the neutral thing) when
 * probing is off (a->probe == NULL). */
struct probe;
void probe_free(struct alloc_ctx *a);
/* Vendors the FAT should not offer to a session of `copies` copies: the
 * discarded ones and the usable ones outside the preferred set.  *ids is
 * malloc'd (free it); 0 with *n = 0 when there is nothing to say. */
int probe_alloc_exclude(struct alloc_ctx *a, unsigned copies, uint32_t **ids, size_t *n);
/* Score of a vendor (false when unknown; 0 when discarded). */
bool probe_score(struct alloc_ctx *a, uint32_t vendor_id, double *score);
/* The configured near-equal band (for place.spread). */
double probe_spread(struct alloc_ctx *a);
/* Orders replicas for a read: usable before discarded/penalized, then by
 * expected latency times (1 + reads in flight) so that concurrent reads
 * spread over near-equal replicas.  *hedge says whether hedging applies.
 * Returns how many of out[] to try (1 when a replica is pinned). */
unsigned probe_read_order(struct alloc_ctx *a, const uint32_t *in, unsigned n, uint32_t *out,
			  bool *hedge);
/* Time after which a read on vendor_id gets a hedge, in µs. */
uint64_t probe_hedge_bound_us(struct alloc_ctx *a, uint32_t vendor_id);
void probe_read_begin(struct alloc_ctx *a, uint32_t vendor_id);
/* bytes: stored bytes served (0 if it failed); won: its data was used. */
void probe_read_end(struct alloc_ctx *a, uint32_t vendor_id, bool ok, uint64_t us,
		    uint64_t bytes, bool won);
/* A hedge was sent because slow_vendor missed its bound (it is pushed
 * behind the other replicas for a while); a hedge answered first. */
void probe_note_hedge(struct alloc_ctx *a, uint32_t slow_vendor);
void probe_note_hedge_win(struct alloc_ctx *a, uint32_t vendor_id);
/* A slot for one more fetch thread (false: run synchronously). */
bool probe_thread_get(struct alloc_ctx *a);
void probe_thread_put(struct alloc_ctx *a);

/* ---- receipts.c: validation receipt queues, one per vendor ---- */
#define RECEIPT_BATCH 64
#define RECEIPT_QUEUE_MAX 4096 /* per vendor; the oldest are dropped beyond */
#define RECEIPT_FLUSH_MS 2000
#define RECEIPT_TIMEOUT_MS 3000

struct receipt {
	uint8_t chunk_id[CHUNK_ID_LEN];
	uint64_t bytes;
	uint8_t digest[CHUNK_DIGEST_LEN];
	uint64_t time_ms;
};

struct receipts;
struct receipts *receipts_new(void);
void receipts_free(struct receipts *r);
/* Queues one receipt; returns true when the vendor's queue holds a full batch. */
bool receipts_add(struct receipts *r, uint32_t vendor_id, const struct receipt *rc);
/* Vendors with a full batch (full_only) or anything queued; up to max ids. */
size_t receipts_vendors(struct receipts *r, bool full_only, uint32_t *ids, size_t max);
/* Takes up to max of the oldest receipts of a vendor (nothing if full_only
 * and its queue holds less than a batch); returns how many. */
size_t receipts_take(struct receipts *r, uint32_t vendor_id, bool full_only,
		     struct receipt *out, size_t max);
/* Puts a batch back after a failed send (at the front, as room allows). */
void receipts_putback(struct receipts *r, uint32_t vendor_id, const struct receipt *in,
		      size_t n);
size_t receipts_pending(struct receipts *r);
/* Sends batches (all queues, or only full ones) to the vendors, skipping
 * vendors that failed recently when skip_failing; 0 or the first error.
 * Network part, uses the context. */
int receipts_send(struct alloc_ctx *a, bool full_only, bool skip_failing);

/* ---- workq.c: fixed pool of upload threads fed by a queue ---- */
struct workq;
typedef void (*workq_fn)(void *arg);
struct workq *workq_new(unsigned threads, const char *name);
/* Queues fn(arg); 0 or -ENOMEM / -ESHUTDOWN. */
int workq_push(struct workq *q, workq_fn fn, void *arg);
/* Runs the queued jobs, then joins the threads. */
void workq_free(struct workq *q);

/* ---- the context (fatclient.c) ---- */
struct alloc_session;

struct alloc_lease_ent {
	uint64_t lease_id;
	struct alloc_session *s; /* alive while the entry exists (see bg.c) */
	uint64_t next_renew_ms;	 /* monotonic */
	uint32_t renew_every_ms;
};

struct vaddr_ent {
	uint32_t id;
	char addr[ALLOC_ADDR_LEN];
};

struct bad_report {
	uint8_t chunk_id[CHUNK_ID_LEN];
	uint32_t vendor_id;
	char reason[64];
};

struct alloc_ctx {
	struct xport_pool *pool;
	char **fat_addrs;
	size_t n_fat;
	int timeout_ms;
	uint32_t lease_ms;
	int zstd_level;
	unsigned upload_threads;
	unsigned pieces;

	pthread_mutex_t fat_lock;
	size_t fat_good; /* fat_lock: index of the last address that answered */

	pthread_mutex_t vol_lock;
	struct alloc_volume vol; /* vol_lock; set by alloc_volume_open */
	bool have_vol;		 /* vol_lock */

	pthread_mutex_t vaddr_lock;
	struct vaddr_ent *vaddrs;	    /* vaddr_lock */
	size_t n_vaddrs;		    /* vaddr_lock */
	uint64_t vaddr_refresh_ms;	    /* vaddr_lock: monotonic time of the last refresh */
	pthread_mutex_t vaddr_refresh_lock; /* serializes refreshes */

	_Atomic uint64_t writer_token; /* fencing token sent with every commit */
	struct vstats *vstats;
	struct probe *probe; /* set once by alloc_probe_start before other threads */
	struct receipts *receipts;
	struct workq *workq; /* created on first alloc_session_put */
	pthread_mutex_t workq_lock;

	/* background thread: lease renewal, receipts, bad-replica reports */
	pthread_t bg;
	bool bg_started;
	pthread_mutex_t bg_lock;
	pthread_cond_t bg_cond;		/* CLOCK_MONOTONIC */
	bool bg_stop;			/* bg_lock */
	bool bg_kick;			/* bg_lock: a receipt queue is full */
	struct alloc_lease_ent *leases; /* bg_lock: leases of open sessions */
	size_t n_leases, cap_leases;	/* bg_lock */
	struct bad_report *bad;		/* bg_lock: reports waiting to be sent */
	size_t n_bad, cap_bad;		/* bg_lock */

	struct vkey *vk; /* set once by alloc_volume_unlock; NULL: clear */
};

/* Copies the volume (0 or -ENOENT when none was opened). */
int alloc_volume_get(struct alloc_ctx *a, struct alloc_volume *out);
/* The volume's read capability for vendors (copied to tok, at least
 * CAP_READ_TOKEN_MAX bytes): asks the FAT for a fresh one when force is set
 * or it is older than ALLOC_READ_TOKEN_REFRESH_MS (the FAT's last well
 * before it expires).  0 or -errno (no token at all). */
#define ALLOC_READ_TOKEN_REFRESH_MS (20u * 60u * 1000u)
int alloc_read_token(struct alloc_ctx *a, bool force, uint8_t *tok, size_t *len);
/* Remembers an address for a vendor (from a candidate list). */
void alloc_vendor_learn(struct alloc_ctx *a, uint32_t vendor_id, const char *addr);
/* True for errors worth trying elsewhere or again (connection-level). */
bool alloc_err_transient(int rc);

/* ---- upload.c ---- */
/* Takes the fresh tokens of a lease renewal (called by bg.c with bg_lock held). */
void alloc_session_renewed(struct alloc_session *s, const Pstore__AllocReply *r);

/* ---- volkey.c: sealing the mirror (the volume key is a->vk) ---- */
/* Sealed copies of meta[] (keys hashed, values sealed) into *out, whose
 * buffers volkey_free_ops releases.  Unencrypted volumes: *out = meta. */
int volkey_seal_ops(struct alloc_ctx *a, const uint8_t owner[CHUNK_OWNER_LEN],
		    const struct alloc_meta_op *meta, size_t n, struct alloc_meta_op **out);
void volkey_free_ops(const struct alloc_meta_op *meta, struct alloc_meta_op *ops, size_t n);
/* Opens one listed entry: *plain (malloc'd) holds what key/val point into.
 * Unencrypted volumes: the entry itself, *plain NULL.  0 or -EBADMSG. */
int volkey_open_item(struct alloc_ctx *a, const uint8_t owner[CHUNK_OWNER_LEN],
		     const uint8_t *hkey, size_t hklen, const uint8_t *sval, size_t slen,
		     uint8_t **plain, const uint8_t **key, size_t *klen, const uint8_t **val,
		     size_t *vlen);
void volkey_free(struct alloc_ctx *a);

/* ---- bg.c: the background thread ---- */
int alloc_bg_start(struct alloc_ctx *a);
void alloc_bg_stop(struct alloc_ctx *a);
/* Registers / forgets a lease of session s to renew at half its length.
 * A session forgets its leases before it is freed. */
int alloc_bg_lease_add(struct alloc_ctx *a, struct alloc_session *s, uint64_t lease_id,
		       uint32_t lease_len_ms);
void alloc_bg_lease_del(struct alloc_ctx *a, uint64_t lease_id);
void alloc_bg_kick(struct alloc_ctx *a);
void alloc_bg_report_bad(struct alloc_ctx *a, const uint8_t chunk_id[CHUNK_ID_LEN],
			 uint32_t vendor_id, const char *reason);

#endif
