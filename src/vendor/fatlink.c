/*
 * fatlink.c - the vendor's link to the FAT servers, on its own thread
 * ("fatlink") so the loop never blocks: register (VendorHello) with the
 * first FAT server that answers, then heartbeat every heartbeat_ms with
 * devices, free space, statistics, the chunks deleted since the last
 * hello and (orphan GC) queries about old chunks not yet known committed.
 * A reply carries the FAT's public key (installed for capability checks),
 * chunks to delete (each with the volume it must belong to), orphans to
 * delete and the queried chunks the FAT confirms.  FAT failures rotate to the next address
 * with backoff and are logged once per outage.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "vendor.h"
#include "xport.h"

#define FATLINK_CALL_TIMEOUT_MS 5000
#define FATLINK_MAX_DELETED 10000 /* ids per hello (the FAT's bound) */
#define FATLINK_BACKOFF_MAX_MS 5000
#define FATLINK_PRUNE_EVERY_MS 60000
#define FATLINK_LEASE_KEEP_MS (3600u * 1000u) /* lease records kept after expiry */
#define FATLINK_MAX_QUERIES 256	    /* orphan-GC chunk queries per hello (FAT: <= 1000) */
#define FATLINK_SCAN_PER_HELLO 4096 /* chunk records looked at per hello */

struct vendor_fatlink {
	struct vendord *vd;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond;		  /* stop requested */
	bool stop;			  /* lock */
	uint8_t (*deleted)[CHUNK_ID_LEN]; /* lock: to report in the next hello */
	size_t ndeleted, capdeleted;	  /* lock */
	uint8_t scan_after[CHUNK_ID_LEN]; /* fatlink thread: orphan-GC scan cursor */
	bool scan_have_cursor;		  /* fatlink thread */
};

void vfatlink_note_deleted(struct vendor_fatlink *fl, const uint8_t id[CHUNK_ID_LEN])
{
	pthread_mutex_lock(&fl->lock);
	if (fl->ndeleted == fl->capdeleted) {
		size_t nc = fl->capdeleted ? fl->capdeleted * 2 : 64;
		void *nb = realloc(fl->deleted, nc * CHUNK_ID_LEN);

		if (!nb) {
			/* The FAT asks again for what we could not report. */
			pthread_mutex_unlock(&fl->lock);
			return;
		}
		fl->deleted = nb;
		fl->capdeleted = nc;
	}
	memcpy(fl->deleted[fl->ndeleted++], id, CHUNK_ID_LEN);
	pthread_mutex_unlock(&fl->lock);
}

/* Waits ms or until stop; returns true if stopping. */
static bool fl_sleep(struct vendor_fatlink *fl, uint64_t ms)
{
	struct timespec dl;
	bool stop;

	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += (time_t)(ms / 1000);
	dl.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&fl->lock);
	while (!fl->stop && pthread_cond_timedwait(&fl->cond, &fl->lock, &dl) != ETIMEDOUT)
		;
	stop = fl->stop;
	pthread_mutex_unlock(&fl->lock);
	return stop;
}

struct hello_buf {
	Pstore__VendorHello h;
	Pstore__VendorStats stats;
	Pstore__DeviceInfo dev[VENDOR_MAX_DEVICES];
	Pstore__DeviceInfo *pdev[VENDOR_MAX_DEVICES];
	struct vstore_devinfo info[VENDOR_MAX_DEVICES];
	ProtobufCBinaryData *deleted;
	uint8_t (*del_ids)[CHUNK_ID_LEN];
	Pstore__ChunkQuery q[FATLINK_MAX_QUERIES];
	Pstore__ChunkQuery *pq[FATLINK_MAX_QUERIES];
	uint8_t q_ids[FATLINK_MAX_QUERIES][CHUNK_ID_LEN];
	uint8_t q_owners[FATLINK_MAX_QUERIES][CHUNK_OWNER_LEN];
};

struct query_scan {
	struct hello_buf *b;
	uint64_t before_ms; /* stored before this: old enough to ask about */
	uint8_t last[CHUNK_ID_LEN];
	bool have_last;
};

static int query_cb(const uint8_t *id, const Pstore__VChunk *rec, void *arg)
{
	struct query_scan *qs = arg;
	struct hello_buf *b = qs->b;
	size_t i = b->h.n_queries;

	memcpy(qs->last, id, CHUNK_ID_LEN);
	qs->have_last = true;
	if (rec->confirmed || rec->time_ms > qs->before_ms || rec->lease_id == 0 ||
	    rec->owner.len != CHUNK_OWNER_LEN)
		return 0;
	pstore__chunk_query__init(&b->q[i]);
	memcpy(b->q_ids[i], id, CHUNK_ID_LEN);
	memcpy(b->q_owners[i], rec->owner.data, CHUNK_OWNER_LEN);
	b->q[i].chunk_id.data = b->q_ids[i];
	b->q[i].chunk_id.len = CHUNK_ID_LEN;
	b->q[i].owner.data = b->q_owners[i];
	b->q[i].owner.len = CHUNK_OWNER_LEN;
	b->q[i].lease_id = rec->lease_id;
	b->pq[i] = &b->q[i];
	b->h.n_queries = i + 1;
	return b->h.n_queries == FATLINK_MAX_QUERIES; /* full: stop here */
}

/* Orphan GC: asks the FAT about chunks stored more than orphan_grace_ms
 * ago that it has not confirmed committed here, a bounded slice of the
 * index per hello, resuming where the last one stopped. */
static void queries_build(struct vendor_fatlink *fl, struct hello_buf *b)
{
	struct query_scan qs = {.b = b};
	uint64_t w = wall_ms();
	bool wrapped = false;
	int rc;

	b->h.n_queries = 0;
	b->h.queries = b->pq;
	if (w < fl->vd->cfg->orphan_grace_ms)
		return;
	qs.before_ms = w - fl->vd->cfg->orphan_grace_ms;
	rc = vindex_chunk_scan(vstore_index(fl->vd->store),
			       fl->scan_have_cursor ? fl->scan_after : NULL,
			       FATLINK_SCAN_PER_HELLO, query_cb, &qs, &wrapped);
	if (rc < 0) {
		log_warn("orphan scan of the index: %s", strerror(-rc));
		return;
	}
	if (wrapped || !qs.have_last) {
		fl->scan_have_cursor = false;
	} else {
		memcpy(fl->scan_after, qs.last, CHUNK_ID_LEN);
		fl->scan_have_cursor = true;
	}
}

static void hello_build(struct vendor_fatlink *fl, struct hello_buf *b)
{
	struct vendord *vd = fl->vd;
	const struct vendor_config *cfg = vd->cfg;
	Pstore__VStats vs;
	int n;

	pstore__vendor_hello__init(&b->h);
	pstore__vendor_stats__init(&b->stats);
	b->h.vendor_id = cfg->id;
	b->h.address = (char *)cfg->address;
	b->h.zone = (char *)cfg->zone;
	b->h.bandwidth = cfg->bandwidth;
	n = vstore_devices(vd->store, b->info, VENDOR_MAX_DEVICES);
	for (int i = 0; i < n; i++) {
		pstore__device_info__init(&b->dev[i]);
		b->dev[i].path = b->info[i].path;
		b->dev[i].capacity = b->info[i].capacity;
		b->dev[i].free = MIN(b->info[i].free_bytes, b->info[i].capacity);
		b->pdev[i] = &b->dev[i];
	}
	b->h.n_devices = n > 0 ? (size_t)n : 0;
	b->h.devices = b->pdev;
	if (vindex_stats(vstore_index(vd->store), &vs) == 0) {
		b->stats.chunks = vs.chunks;
		b->stats.bytes_stored = vs.bytes_stored;
		b->stats.bytes_from_clients = vs.bytes_from_clients;
		b->stats.bytes_from_vendors = vs.bytes_from_vendors;
		b->stats.receipts = vs.receipts;
		b->stats.receipt_bytes = vs.receipt_bytes;
		b->stats.pieces = vs.pieces;
	}
	b->stats.load = vd->srv ? xport_server_inflight(vd->srv) : 0;
	b->h.stats = &b->stats;
	queries_build(fl, b);

	/* A snapshot of the deleted ids; removed from the list once the FAT has them. */
	b->deleted = NULL;
	b->del_ids = NULL;
	pthread_mutex_lock(&fl->lock);
	n = (int)MIN(fl->ndeleted, (size_t)FATLINK_MAX_DELETED);
	if (n > 0) {
		b->deleted = calloc((size_t)n, sizeof(*b->deleted));
		b->del_ids = malloc((size_t)n * CHUNK_ID_LEN);
		if (b->deleted && b->del_ids) {
			memcpy(b->del_ids, fl->deleted, (size_t)n * CHUNK_ID_LEN);
			for (int i = 0; i < n; i++) {
				b->deleted[i].data = b->del_ids[i];
				b->deleted[i].len = CHUNK_ID_LEN;
			}
			b->h.n_deleted = (size_t)n;
			b->h.deleted = b->deleted;
		}
	}
	pthread_mutex_unlock(&fl->lock);
}

static void hello_sent(struct vendor_fatlink *fl, struct hello_buf *b, bool ok)
{
	if (ok && b->h.n_deleted > 0) {
		pthread_mutex_lock(&fl->lock);
		/* New ids were only appended after the snapshot. */
		memmove(fl->deleted, fl->deleted + b->h.n_deleted,
			(fl->ndeleted - b->h.n_deleted) * CHUNK_ID_LEN);
		fl->ndeleted -= b->h.n_deleted;
		pthread_mutex_unlock(&fl->lock);
	}
	free(b->deleted);
	free(b->del_ids);
}

/* Deletes the chunks of orders whose stored owner matches.  A chunk of
 * another volume under the same id is left alone (the order was meant for
 * a copy that is gone) and reported done, so the FAT forgets the order. */
static unsigned apply_orders(struct vendor_fatlink *fl, Pstore__DeleteOrder *const *o, size_t n,
			     bool note, const char *what)
{
	unsigned done = 0;

	n = MIN(n, (size_t)FATLINK_MAX_DELETED);
	for (size_t i = 0; i < n; i++) {
		const ProtobufCBinaryData *id = &o[i]->chunk_id;
		int rc;

		if (id->len != CHUNK_ID_LEN)
			continue;
		if (o[i]->owner.len != CHUNK_OWNER_LEN) {
			/* an order from before owners were recorded: not
			 * carried out (orphan GC finds the chunk), acknowledged */
			if (note)
				vfatlink_note_deleted(fl, id->data);
			continue;
		}
		rc = vstore_delete_owned(fl->vd->store, id->data, o[i]->owner.data);
		if (rc == -EPERM) {
			char hex[2 * CHUNK_ID_LEN + 1];

			chunk_id_hex(id->data, hex);
			log_warn("the FAT ordered chunk %s deleted for a volume it does not "
				 "belong to; kept",
				 hex);
		}
		if (rc == 0 || rc == -ENOENT || rc == -EPERM) {
			if (note)
				vfatlink_note_deleted(fl, id->data);
			done += rc == 0;
		} else {
			log_warn("deleting a chunk %s: %s", what, strerror(-rc));
		}
	}
	return done;
}

static void apply_reply(struct vendor_fatlink *fl, const Pstore__VendorHelloReply *r)
{
	struct vendord *vd = fl->vd;
	unsigned done;

	if (vendord_set_fat_key(vd, r->fat_pubkey.data, r->fat_pubkey.len) < 0)
		log_err("the FAT's reply carries no valid public key (%zu bytes)",
			r->fat_pubkey.len);
	if (r->n_delete_chunks > 0)
		log_warn("the FAT sent %zu delete orders without an owner; ignored",
			 r->n_delete_chunks);
	done = apply_orders(fl, r->delete_orders, r->n_delete_orders, true, "the FAT freed");
	if (done)
		log_info("deleted %u chunks freed by the FAT", done);
	/* orphan GC answers: not reported back (the FAT has no order for them) */
	done = apply_orders(fl, r->orphans, r->n_orphans, false, "never committed");
	if (done)
		log_info("deleted %u chunks whose lease closed without a commit", done);
	for (size_t i = 0; i < MIN(r->n_confirmed, (size_t)FATLINK_MAX_DELETED); i++) {
		int rc;

		if (r->confirmed[i].len != CHUNK_ID_LEN)
			continue;
		rc = vindex_chunk_confirm(vstore_index(vd->store), r->confirmed[i].data);
		if (rc < 0 && rc != -ENOENT)
			log_warn("recording a confirmed chunk: %s", strerror(-rc));
	}
}

static void *fatlink_main(void *arg)
{
	struct vendor_fatlink *fl = arg;
	struct vendord *vd = fl->vd;
	const struct vendor_config *cfg = vd->cfg;
	uint64_t backoff = 100, interval = cfg->heartbeat_ms, last_prune = 0;
	size_t cur = 0, fails_in_round = 0;
	bool registered = false, outage = false;

	for (;;) {
		struct hello_buf b;
		struct xport_reply rep = {0};
		char err[256] = "";
		uint16_t type = registered ? MSG_VENDOR_HEARTBEAT : MSG_VENDOR_REGISTER;
		const char *addr = cfg->fat[cur];
		int rc;

		hello_build(fl, &b);
		rc = xport_call(vd->pool, addr, type, &b.h.base, NULL, 0,
				&pstore__vendor_hello_reply__descriptor, &rep,
				FATLINK_CALL_TIMEOUT_MS, err, sizeof(err));
		hello_sent(fl, &b, rc == 0 && rep.msg);
		if (rc == 0 && rep.msg) {
			const Pstore__VendorHelloReply *r = (Pstore__VendorHelloReply *)rep.msg;

			if (!registered)
				log_info("registered with the FAT server at %s", addr);
			else if (outage)
				log_info("FAT server at %s answers again", addr);
			registered = true;
			outage = false;
			backoff = 100;
			fails_in_round = 0;
			if (r->heartbeat_ms >= 100 && r->heartbeat_ms <= 600000)
				interval = r->heartbeat_ms;
			apply_reply(fl, r);
			xport_reply_clear(&rep);
			if (now_ms() - last_prune >= FATLINK_PRUNE_EVERY_MS) {
				uint64_t w = wall_ms();

				last_prune = now_ms();
				if (w > FATLINK_LEASE_KEEP_MS)
					vindex_lease_prune(vstore_index(vd->store),
							   w - FATLINK_LEASE_KEEP_MS);
			}
			if (fl_sleep(fl, interval))
				break;
			continue;
		}
		xport_reply_clear(&rep);
		if (!outage)
			log_warn("FAT server %s: %s%s (retrying; logged once per outage)", addr,
				 err[0] ? err : strerror(rc < 0 ? -rc : EBADMSG),
				 cfg->n_fat > 1 ? ", trying the next one" : "");
		outage = true;
		if (rc < 0 && rc != -ETIMEDOUT && rc != -ECONNREFUSED && rc != -EPROTO)
			registered = false; /* the FAT refused us: say hello again */
		cur = (cur + 1) % cfg->n_fat;
		if (++fails_in_round < cfg->n_fat)
			continue;
		fails_in_round = 0;
		if (fl_sleep(fl, backoff))
			break;
		backoff = MIN(backoff * 2, (uint64_t)FATLINK_BACKOFF_MAX_MS);
	}
	return NULL;
}

int vfatlink_start(struct vendord *vd, struct vendor_fatlink **out)
{
	struct vendor_fatlink *fl = calloc(1, sizeof(*fl));
	pthread_condattr_t ca;

	if (!fl)
		return -ENOMEM;
	fl->vd = vd;
	/* only a FAT server's certificate may answer at the FAT addresses */
	for (size_t i = 0; i < vd->cfg->n_fat; i++) {
		if (xport_pool_expect(vd->pool, vd->cfg->fat[i], "fat:") < 0) {
			free(fl);
			return -ENOMEM;
		}
	}
	pthread_mutex_init(&fl->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fl->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&fl->thread, NULL, fatlink_main, fl) != 0) {
		vfatlink_stop(fl);
		return -EAGAIN;
	}
	fl->started = true;
	pthread_setname_np(fl->thread, "fatlink");
	*out = fl;
	return 0;
}

void vfatlink_stop(struct vendor_fatlink *fl)
{
	if (!fl)
		return;
	pthread_mutex_lock(&fl->lock);
	fl->stop = true;
	pthread_cond_broadcast(&fl->cond);
	pthread_mutex_unlock(&fl->lock);
	if (fl->started)
		pthread_join(fl->thread, NULL);
	pthread_cond_destroy(&fl->cond);
	pthread_mutex_destroy(&fl->lock);
	free(fl->deleted);
	free(fl);
}
