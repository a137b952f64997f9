/*
 * repair.c - re-replication, by the client, of chunks it committed recently
 * on a vendor that has died since.
 *
 * alloc replaces a vendor that fails during an upload, but a chunk stored
 * and committed just before its vendor died keeps one copy too few.  While
 * the chunk is still in this mount's cache the cheapest repair is here: the
 * chunk is marked dirty again, so the flusher uploads it under a new id on
 * live vendors and frees the old one.  Sync barriers (fsync, `pstore sync`,
 * unmount) run the check first, so that what they promise ("stored on
 * `copies` vendors") holds for what this mount wrote in the last minutes.
 *
 * Scope: only chunks this process committed in the last REPAIR_WINDOW_MS
 * (a bounded ring in memory).  Repairing older chunks, or chunks not in the
 * cache, is the FAT's job (a later issue).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fs.h"

#define REPAIR_RING 65536
#define REPAIR_WINDOW_MS (15 * 60 * 1000)
#define REPAIR_SILENT_MS 3000 /* a vendor not heard of for this long is dead */
/* ... and so is one our own uploads could not reach lately, even while the
 * FAT has not timed it out yet (a sync right after the death) */
#define REPAIR_UNREACHABLE_MS 60000

struct recent {
	uint64_t ino, idx;
	uint64_t at_ms;
	uint8_t chunk_id[CHUNK_ID_LEN];
	uint32_t vendors[CHUNK_MAX_CHAIN];
	unsigned n_vendors;
};

static pthread_mutex_t repair_lock = PTHREAD_MUTEX_INITIALIZER;
static struct recent *ring;	 /* repair_lock; REPAIR_RING entries */
static size_t ring_head, ring_n; /* repair_lock */

void repair_note(uint64_t ino, uint64_t idx, const struct alloc_chunk_ref *ref)
{
	struct recent *r;

	pthread_mutex_lock(&repair_lock);
	if (!ring)
		ring = calloc(REPAIR_RING, sizeof(*ring));
	if (ring) {
		r = &ring[(ring_head + ring_n) % REPAIR_RING];
		if (ring_n == REPAIR_RING)
			ring_head = (ring_head + 1) % REPAIR_RING;
		else
			ring_n++;
		r->ino = ino;
		r->idx = idx;
		r->at_ms = now_ms();
		memcpy(r->chunk_id, ref->chunk_id, CHUNK_ID_LEN);
		r->n_vendors = MIN(ref->n_vendors, (unsigned)CHUNK_MAX_CHAIN);
		memcpy(r->vendors, ref->vendors, sizeof(r->vendors));
	}
	pthread_mutex_unlock(&repair_lock);
}

/* Vendor ids the FAT reports dead (or silent), or that this mount's uploads
 * could not reach lately.  *out malloc'd. */
static int dead_vendors(uint32_t **out, size_t *n)
{
	Pstore__Empty req = PSTORE__EMPTY__INIT;
	struct xport_reply rep;
	Pstore__VendorListReply *vl;
	uint64_t now = wall_ms();
	int rc;

	*out = NULL;
	*n = 0;
	memset(&rep, 0, sizeof(rep));
	rc = alloc_fat_call(fs.alloc, MSG_VENDOR_LIST, &req.base,
			    &pstore__vendor_list_reply__descriptor, &rep);
	if (rc < 0)
		return rc;
	vl = (Pstore__VendorListReply *)rep.msg;
	if (!vl) {
		xport_reply_clear(&rep);
		return -EBADMSG;
	}
	*out = calloc(vl->n_vendors + 1, sizeof(**out));
	if (!*out) {
		xport_reply_clear(&rep);
		return -ENOMEM;
	}
	for (size_t i = 0; i < vl->n_vendors; i++) {
		const Pstore__VendorRecord *v = vl->vendors[i];

		if (!v->alive ||
		    (v->last_seen_ms && now > v->last_seen_ms &&
		     now - v->last_seen_ms > REPAIR_SILENT_MS) ||
		    alloc_vendor_unreachable(fs.alloc, v->id, REPAIR_UNREACHABLE_MS))
			(*out)[(*n)++] = v->id;
	}
	xport_reply_clear(&rep);
	return 0;
}

static bool on_dead(const struct recent *r, const uint32_t *dead, size_t n_dead)
{
	for (unsigned i = 0; i < r->n_vendors; i++)
		for (size_t j = 0; j < n_dead; j++)
			if (r->vendors[i] == dead[j])
				return true;
	return false;
}

int repair_dead_vendors(void)
{
	uint32_t *dead = NULL;
	size_t n_dead = 0, marked = 0;
	struct fs_txn t;
	uint64_t now = now_ms();
	int rc;

	pthread_mutex_lock(&repair_lock);
	while (ring_n && now - ring[ring_head].at_ms > REPAIR_WINDOW_MS) {
		ring_head = (ring_head + 1) % REPAIR_RING;
		ring_n--;
	}
	rc = ring_n == 0;
	pthread_mutex_unlock(&repair_lock);
	if (rc)
		return 0;
	rc = dead_vendors(&dead, &n_dead);
	if (rc < 0 || n_dead == 0) {
		free(dead);
		return rc;
	}
	rc = meta_begin(fs.meta, true, &t);
	if (rc < 0) {
		free(dead);
		return rc;
	}
	pthread_mutex_lock(&repair_lock);
	for (size_t k = 0; rc == 0 && k < ring_n; k++) {
		struct recent *r = &ring[(ring_head + k) % REPAIR_RING];
		struct fs_chunk c;

		if (r->n_vendors == 0 || !on_dead(r, dead, n_dead))
			continue;
		r->n_vendors = 0; /* handled: never again */
		if (meta_chunk_get(&t, r->ino, r->idx, &c) < 0 || !(c.flags & FS_CHUNK_REF) ||
		    !(c.flags & FS_CHUNK_PRESENT) ||
		    memcmp(c.ref.chunk_id, r->chunk_id, CHUNK_ID_LEN) != 0)
			continue;
		rc = meta_chunk_dirty(&t, r->ino, r->idx);
		marked += rc == 0;
	}
	pthread_mutex_unlock(&repair_lock);
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
	free(dead);
	if (rc == 0 && marked)
		log_info(
		    "repair: %zu recently committed chunks lost a vendor; uploading them again",
		    marked);
	return rc;
}
