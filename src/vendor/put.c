/*
 * put.c - MSG_CHUNK_PUT: check the request (peer, chain, capability,
 * lease byte count, digest), then store the chunk locally on this worker
 * while a forwarder thread sends it to the next vendor of the chain.
 * Whichever of the two finishes last replies: ChunkPutReply with this
 * vendor plus what the downstream stored, or an error if the local copy
 * failed.  Nothing is stored when a check fails.  A worker never waits on
 * the network, so chains that cross each other cannot starve the workers.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "vendor.h"
#include "xport.h"

struct vput_op {
	struct vendord *vd;
	struct xport_req *req; /* owned until the reply */
	Pstore__ChunkPut *put;
	struct chunk_hdr hdr;
	pthread_mutex_t lock;
	int pending;		    /* lock: parts not finished (local, forward) */
	int local_rc;		    /* lock */
	int fwd_rc;		    /* lock: 0 or -errno of the call */
	Pstore__ChunkPutReply *fwd; /* lock: the downstream's reply */
	char fwd_err[256];
	uint64_t charged;	/* queue budget held until the op is freed */
	uint32_t fwd_budget_ms; /* how long the forward may wait (ChunkPut deadline) */
};

static void op_free(struct vput_op *op)
{
	vendord_queue_done(op->vd, op->charged);
	if (op->fwd)
		pstore__chunk_put_reply__free_unpacked(op->fwd, NULL);
	if (op->put)
		pstore__chunk_put__free_unpacked(op->put, NULL);
	pthread_mutex_destroy(&op->lock);
	free(op);
}

static bool id_listed(const uint32_t *ids, size_t n, uint32_t id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/* Sends the reply once the local store and the forward are both done. */
static void op_reply(struct vput_op *op)
{
	struct vendord *vd = op->vd;
	Pstore__ChunkPutReply r = PSTORE__CHUNK_PUT_REPLY__INIT;
	uint32_t stored[CHUNK_MAX_CHAIN], failed[CHUNK_MAX_CHAIN];
	char detail[512] = "";
	size_t ns = 0, nf = 0;
	uint32_t next = op->put->n_chain > 1 ? op->put->chain[1]->vendor_id : 0;

	if (op->local_rc < 0) {
		int e = -op->local_rc;

		xport_reply_error(op->req, e, "storing the chunk failed: %s", strerror(e));
		op->req = NULL;
		return;
	}
	stored[ns++] = vd->cfg->id;
	if (next && op->fwd_rc == 0 && op->fwd) {
		/* Only vendors further down this chain can be reported. */
		for (size_t i = 0; i < op->fwd->n_stored_on && ns < CHUNK_MAX_CHAIN; i++) {
			uint32_t v = op->fwd->stored_on[i];

			if (vcheck_downstream(&op->hdr, vd->cfg->id, v) &&
			    !id_listed(stored, ns, v))
				stored[ns++] = v;
		}
		for (size_t i = 0; i < op->fwd->n_failed && nf < CHUNK_MAX_CHAIN; i++) {
			uint32_t v = op->fwd->failed[i];

			if (vcheck_downstream(&op->hdr, vd->cfg->id, v) &&
			    !id_listed(failed, nf, v) && !id_listed(stored, ns, v))
				failed[nf++] = v;
		}
		if (op->fwd->detail && op->fwd->detail[0])
			snprintf(detail, sizeof(detail), "%.500s", op->fwd->detail);
	} else if (next) {
		failed[nf++] = next;
		snprintf(detail, sizeof(detail), "forward to vendor %u failed: %s", next,
			 op->fwd_err);
	}
	/* Hops that answered neither stored nor failed count as failed. */
	for (size_t i = 1; next && i < op->put->n_chain && nf < CHUNK_MAX_CHAIN; i++) {
		uint32_t v = op->put->chain[i]->vendor_id;

		if (!id_listed(stored, ns, v) && !id_listed(failed, nf, v))
			failed[nf++] = v;
	}
	r.n_stored_on = ns;
	r.stored_on = stored;
	r.n_failed = nf;
	r.failed = failed;
	r.detail = detail;
	xport_reply(op->req, &r.base, NULL, 0);
	op->req = NULL;
}

/* One part finished; the last one replies and frees. */
static void op_part_done(struct vput_op *op)
{
	bool last;

	pthread_mutex_lock(&op->lock);
	last = --op->pending == 0;
	pthread_mutex_unlock(&op->lock);
	if (!last)
		return;
	op_reply(op);
	op_free(op);
}

static void forward_run(void *arg, bool cancelled)
{
	struct vput_op *op = arg;
	Pstore__ChunkPut fwd = PSTORE__CHUNK_PUT__INIT;
	struct xport_reply rep = {0};
	const struct xport_req *req = op->req;
	const char *addr = op->put->chain[1]->address;
	char err[256] = "";
	int rc;

	if (cancelled) {
		rc = -ESHUTDOWN;
		snprintf(err, sizeof(err), "vendor shutting down");
	} else {
		char who[32];

		/* the next hop's address must be answered by that vendor */
		snprintf(who, sizeof(who), "vendor:%u", op->put->chain[1]->vendor_id);
		fwd.n_chain = op->put->n_chain - 1;
		fwd.chain = op->put->chain + 1;
		fwd.from_vendor = true;
		/* the next hop gets less time than we have, so that we can still
		 * answer our sender in time when it does not answer */
		fwd.deadline_ms = vcheck_forward_budget(op->fwd_budget_ms);
		rc =
		    xport_call2_expect(op->vd->pool, addr, who, MSG_CHUNK_PUT, &fwd.base,
				       req->data, CHUNK_HDR_LEN, req->data + CHUNK_HDR_LEN,
				       op->hdr.stored_len, &pstore__chunk_put_reply__descriptor,
				       &rep, (int)op->fwd_budget_ms, err, sizeof(err));
		if (rc < 0 && err[0] == '\0')
			snprintf(err, sizeof(err), "%s", strerror(-rc));
	}
	pthread_mutex_lock(&op->lock);
	op->fwd_rc = rc;
	if (rc == 0) {
		op->fwd = (Pstore__ChunkPutReply *)rep.msg;
		rep.msg = NULL;
	}
	snprintf(op->fwd_err, sizeof(op->fwd_err), "%s", err);
	pthread_mutex_unlock(&op->lock);
	xport_reply_clear(&rep);
	if (rc < 0)
		log_warn("forwarding to vendor %u at %s failed: %s",
			 op->put->chain[1]->vendor_id, addr, err);
	op_part_done(op);
}

/* Every check before anything is stored; replies the error itself and
 * returns false when the put is refused. */
static bool put_checks(struct vput_op *op, bool *from_vendor, struct cap_token *tok)
{
	struct vendord *vd = op->vd;
	struct xport_req *req = op->req;
	const struct chunk_hdr *h = &op->hdr;
	Pstore__VChunk *old = NULL;
	char role[32], err[256];
	uint64_t accepted = 0;
	uint8_t digest[CHUNK_DIGEST_LEN];
	int rc;

	if (vcheck_peer(req->peer, role, sizeof(role), NULL) < 0 ||
	    (strcmp(role, "client") != 0 && strcmp(role, "vendor") != 0)) {
		xport_reply_error(req, EACCES, "peer '%s' may not store chunks", req->peer);
		return false;
	}
	*from_vendor = op->put->from_vendor && strcmp(role, "vendor") == 0;
	if (req->data_len < CHUNK_HDR_LEN ||
	    chunk_hdr_decode(req->data, req->data_len, &op->hdr) < 0) {
		xport_reply_error(req, EBADMSG, "bad chunk header");
		return false;
	}
	if (req->data_len != CHUNK_HDR_LEN + (size_t)h->stored_len) {
		xport_reply_error(req, EBADMSG, "data is %zu bytes, the header says %u + %u",
				  req->data_len, CHUNK_HDR_LEN, h->stored_len);
		return false;
	}
	rc = vcheck_chain(op->put, h, vd->cfg->id, err, sizeof(err));
	if (rc < 0) {
		xport_reply_error(req, -rc, "%s", err);
		return false;
	}
	rc = vindex_lease_bytes(vstore_index(vd->store), h->owner, h->lease_id, &accepted);
	if (rc < 0) {
		xport_reply_error(req, EIO, "index: %s", strerror(-rc));
		return false;
	}
	/* A resend of a chunk already stored does not count twice. */
	if (vindex_chunk_get(vstore_index(vd->store), h->chunk_id, &old) == 0) {
		if (old->digest.len == CHUNK_DIGEST_LEN &&
		    memcmp(old->digest.data, h->digest, CHUNK_DIGEST_LEN) == 0 &&
		    old->owner.len == CHUNK_OWNER_LEN &&
		    memcmp(old->owner.data, h->owner, CHUNK_OWNER_LEN) == 0)
			accepted -= MIN(accepted, (uint64_t)h->stored_len);
		pstore__vchunk__free_unpacked(old, NULL);
	}
	pthread_rwlock_rdlock(&vd->key_lock);
	rc = vcheck_token(vd->fat_key, op->put->chain[0]->token.data,
			  op->put->chain[0]->token.len, h, vd->cfg->id, accepted, wall_ms(),
			  tok, err, sizeof(err));
	pthread_rwlock_unlock(&vd->key_lock);
	if (rc < 0) {
		xport_reply_error(req, -rc, "%s", err);
		return false;
	}
	chunk_digest(req->data + CHUNK_HDR_LEN, h->stored_len, digest);
	if (memcmp(digest, h->digest, CHUNK_DIGEST_LEN) != 0) {
		xport_reply_error(req, EBADMSG, "payload does not match the header's digest");
		return false;
	}
	return true;
}

void vput_handle(struct vendord *vd, struct xport_req *req, uint64_t charged)
{
	struct vput_op *op = calloc(1, sizeof(*op));
	struct cap_token tok;
	struct vstore_put sp = {0};
	bool from_vendor = false;
	int rc;

	if (!op) {
		xport_reply_error(req, ENOMEM, "out of memory");
		vendord_queue_done(vd, charged);
		return;
	}
	op->vd = vd;
	op->charged = charged;
	op->req = req;
	pthread_mutex_init(&op->lock, NULL);
	op->put = (Pstore__ChunkPut *)xport_req_unpack(req, &pstore__chunk_put__descriptor);
	if (!op->put) {
		xport_reply_error(req, EBADMSG, "ChunkPut does not decode");
		op_free(op);
		return;
	}
	if (!put_checks(op, &from_vendor, &tok)) {
		op_free(op);
		return;
	}

	op->pending = 1;
	op->fwd_budget_ms = vcheck_forward_budget(op->put->deadline_ms);
	if (op->put->n_chain > 1 && op->fwd_budget_ms == 0) {
		op->fwd_rc = -ETIMEDOUT;
		snprintf(op->fwd_err, sizeof(op->fwd_err), "no time left to forward");
	} else if (op->put->n_chain > 1) {
		op->pending = 2;
		rc = vworkq_push(vd->forwarders, forward_run, op);
		if (rc < 0) {
			op->pending = 1;
			op->fwd_rc = rc;
			snprintf(op->fwd_err, sizeof(op->fwd_err), "%s",
				 rc == -EAGAIN ? "too many forwards in flight" : strerror(-rc));
		}
	}

	sp.hdr = &op->hdr;
	sp.hdr_bytes = req->data;
	sp.payload = req->data + CHUNK_HDR_LEN;
	sp.payload_room = req->data_room;
	sp.from_vendor = from_vendor;
	sp.digest_verified = true;
	sp.byte_limit = tok.byte_limit;
	sp.lease_expiry = tok.expiry_ms;
	rc = vstore_put(vd->store, &sp);
	if (rc < 0) {
		char hex[2 * CHUNK_ID_LEN + 1];

		chunk_id_hex(op->hdr.chunk_id, hex);
		log_warn("chunk %s from %s: %s", hex, req->peer, strerror(-rc));
		if (rc != -EBADMSG && rc != -EEXIST && rc != -E2BIG && rc != -ENOSPC &&
		    rc != -EBUSY)
			rc = -EIO;
	}
	pthread_mutex_lock(&op->lock);
	op->local_rc = rc < 0 ? rc : 0;
	pthread_mutex_unlock(&op->lock);
	op_part_done(op);
}
