/*
 * server.c - request dispatch of pstore-vendord.  The handler runs on the
 * libevent loop thread and only sorts requests: a ping is answered at once,
 * chunk puts, gets and receipts go to the worker pool (disk I/O never runs
 * on the loop), anything else is refused with EOPNOTSUPP.  The get and
 * receipt handlers live here; the put (with forwarding) is put.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "vendor.h"
#include "xport.h"

struct vtask {
	struct vendord *vd;
	struct xport_req *req;
	uint64_t charged; /* bytes of the queue budget this request holds */
};

bool vendord_queue_admit(struct vendord *vd, uint64_t n)
{
	uint64_t cur = __atomic_load_n(&vd->queued_bytes, __ATOMIC_RELAXED);

	do {
		/* a request larger than the budget still gets through alone */
		if (cur > 0 && (cur + n < cur || cur + n > vd->cfg->queue_bytes))
			return false;
	} while (!__atomic_compare_exchange_n(&vd->queued_bytes, &cur, cur + n, false,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return true;
}

void vendord_queue_done(struct vendord *vd, uint64_t n)
{
	__atomic_fetch_sub(&vd->queued_bytes, n, __ATOMIC_RELAXED);
}

int vendord_set_fat_key(struct vendord *vd, const uint8_t *pub, size_t len)
{
	struct cap_key *k, *old = NULL;

	if (!pub || len != 32)
		return -EINVAL;
	pthread_rwlock_rdlock(&vd->key_lock);
	if (vd->fat_key && memcmp(vd->fat_pub, pub, 32) == 0) {
		pthread_rwlock_unlock(&vd->key_lock);
		return 0;
	}
	pthread_rwlock_unlock(&vd->key_lock);
	k = cap_key_from_public(pub);
	if (!k)
		return -EINVAL;
	pthread_rwlock_wrlock(&vd->key_lock);
	old = vd->fat_key;
	vd->fat_key = k;
	memcpy(vd->fat_pub, pub, 32);
	pthread_rwlock_unlock(&vd->key_lock);
	if (old)
		log_warn("the FAT signing key changed");
	cap_key_free(old);
	return 0;
}

static void handle_get(struct vendord *vd, struct xport_req *req)
{
	Pstore__ChunkGet *g =
	    (Pstore__ChunkGet *)xport_req_unpack(req, &pstore__chunk_get__descriptor);
	Pstore__ChunkGetReply r = PSTORE__CHUNK_GET_REPLY__INIT;
	uint8_t hdr[CHUNK_HDR_LEN], *buf = NULL;
	uint64_t stored_len = 0;
	size_t n = 0;
	int rc;

	if (!g) {
		xport_reply_error(req, EBADMSG, "ChunkGet does not decode");
		return;
	}
	if (g->chunk_id.len != CHUNK_ID_LEN || g->owner.len != CHUNK_OWNER_LEN) {
		xport_reply_error(req, EINVAL, "chunk id and owner must be 16 bytes");
		goto out;
	}
	{
		char err[256];

		rc = vread_authorize(vd, req->peer, g, wall_ms(), err, sizeof(err));
		if (rc < 0) {
			log_debug("read refused to %s: %s", req->peer, err);
			xport_reply_error(req, -rc, "%s", err);
			goto out;
		}
	}
	/* a client that verifies the digest and seal itself (and reports a bad
	 * replica) is not made to wait for a second hash of the chunk here */
	rc = vstore_read_ex(vd->store, g->chunk_id.data, g->owner.data, g->offset, g->length,
			    CHUNK_HDR_LEN, !g->client_verifies, hdr, &buf, &n, &stored_len);
	if (rc < 0) {
		if (rc == -ENOENT)
			xport_reply_error(req, ENOENT, "no such chunk");
		else if (rc == -ERANGE)
			xport_reply_error(req, ERANGE, "offset beyond the chunk's %llu bytes",
					  (unsigned long long)stored_len);
		else
			xport_reply_error(req, -rc, "reading the chunk failed: %s",
					  strerror(-rc));
		goto out;
	}
	memcpy(buf, hdr, CHUNK_HDR_LEN);
	r.stored_len = stored_len;
	r.offset = g->offset;
	xport_reply(req, &r.base, buf, CHUNK_HDR_LEN + n);
out:
	free(buf);
	pstore__chunk_get__free_unpacked(g, NULL);
}

static void handle_receipts(struct vendord *vd, struct xport_req *req)
{
	Pstore__ReceiptBatch *b =
	    (Pstore__ReceiptBatch *)xport_req_unpack(req, &pstore__receipt_batch__descriptor);
	Pstore__Empty e = PSTORE__EMPTY__INIT;
	int role = xport_peer_role(req->peer, NULL);
	uint8_t volume[CHUNK_OWNER_LEN];
	size_t recorded = 0;
	char err[256];
	int rc;

	if (!b) {
		xport_reply_error(req, EBADMSG, "ReceiptBatch does not decode");
		return;
	}
	/* Receipts come from readers: admin:, or a client: with a read
	 * capability; they count only for this volume's chunks stored here. */
	if (role != XPORT_ROLE_CLIENT && role != XPORT_ROLE_ADMIN) {
		xport_reply_error(req, EACCES, "peer '%.64s' may not send receipts", req->peer);
		goto out;
	}
	if (role == XPORT_ROLE_CLIENT) {
		rc = vread_cap_check(vd, req->peer, &b->read_token, wall_ms(), volume, err,
				     sizeof(err));
		if (rc < 0) {
			xport_reply_error(req, -rc, "receipts refused: %s", err);
			goto out;
		}
	}
	if (b->n_receipts > VENDOR_MAX_RECEIPTS) {
		xport_reply_error(req, E2BIG, "%zu receipts in one batch (at most %d)",
				  b->n_receipts, VENDOR_MAX_RECEIPTS);
		goto out;
	}
	for (size_t i = 0; i < b->n_receipts; i++) {
		const Pstore__Receipt *r = b->receipts[i];

		if (r->chunk_id.len != CHUNK_ID_LEN ||
		    (r->digest.len != 0 && r->digest.len != CHUNK_DIGEST_LEN) ||
		    r->bytes > CHUNK_MAX_STORED) {
			xport_reply_error(req, EINVAL, "receipt %zu is malformed", i);
			goto out;
		}
	}
	rc = vindex_receipts_add(vstore_index(vd->store), b->receipts, b->n_receipts, req->peer,
				 role == XPORT_ROLE_CLIENT ? volume : NULL, &recorded);
	if (rc == 0 && recorded < b->n_receipts)
		log_debug("%zu of %zu receipts from %s were for chunks not stored here",
			  b->n_receipts - recorded, b->n_receipts, req->peer);
	if (rc < 0)
		xport_reply_error(req, -rc, "recording receipts failed: %s", strerror(-rc));
	else
		xport_reply(req, &e.base, NULL, 0);
out:
	pstore__receipt_batch__free_unpacked(b, NULL);
}

static void vtask_run(void *arg, bool cancelled)
{
	struct vtask *t = arg;
	struct xport_req *req = t->req;

	if (cancelled) {
		xport_reply_error(req, ESHUTDOWN, "vendor is shutting down");
		vendord_queue_done(t->vd, t->charged);
		free(t);
		return;
	}
	switch (req->type) {
	case MSG_CHUNK_PUT:
		vput_handle(t->vd, req, t->charged);
		t->charged = 0; /* the put gives it back when its forward is done */
		break;
	case MSG_CHUNK_GET:
		handle_get(t->vd, req);
		break;
	case MSG_RECEIPTS:
		handle_receipts(t->vd, req);
		break;
	default:
		xport_reply_error(req, EOPNOTSUPP, "unsupported request type %u", req->type);
		break;
	}
	vendord_queue_done(t->vd, t->charged);
	free(t);
}

void vserver_handle(struct xport_req *req, void *arg)
{
	struct vendord *vd = arg;
	struct vtask *t;
	int rc;

	switch (req->type) {
	case MSG_PING: {
		/* RTT probe over the data connection; hands out the UDP probe cookie */
		Pstore__PingReply pr = PSTORE__PING_REPLY__INIT;
		uint8_t cookie[16];

		pr.vendor_id = vd->cfg->id;
		pr.load = vd->srv ? xport_server_inflight(vd->srv) : 0;
		if (vd->probe && vprobe_cookie(vd->probe, req->peer_addr, cookie) == 0) {
			pr.probe_cookie.data = cookie;
			pr.probe_cookie.len = sizeof(cookie);
			pr.probe_port = vprobe_port(vd->probe);
		}
		xport_reply(req, &pr.base, NULL, 0);
		return;
	}
	case MSG_CHUNK_PUT:
	case MSG_CHUNK_GET:
	case MSG_RECEIPTS:
		break;
	default:
		xport_reply_error(req, EOPNOTSUPP, "request type %u is not served by a vendor",
				  req->type);
		return;
	}
	t = malloc(sizeof(*t));
	if (!t) {
		xport_reply_error(req, ENOMEM, "out of memory");
		return;
	}
	t->vd = vd;
	t->req = req;
	t->charged = (uint64_t)req->ctl_len + req->data_len;
	if (!vendord_queue_admit(vd, t->charged)) {
		free(t);
		xport_reply_error(req, EAGAIN, "vendor busy (request queue full), retry");
		return;
	}
	rc = vworkq_push(vd->workers, vtask_run, t);
	if (rc < 0) {
		vendord_queue_done(vd, t->charged);
		free(t);
		xport_reply_error(req, rc == -EAGAIN ? EAGAIN : ESHUTDOWN,
				  rc == -EAGAIN ? "vendor busy, retry"
						: "vendor is shutting down");
	}
}
