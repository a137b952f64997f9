/*
 * fetch.c - reading a committed chunk back (DESIGN.md step 10): its replicas
 * are tried in the order of their current latency estimate (vstats.c); each
 * answer is checked against what the file system remembers (chunk id,
 * owner, sizes) and verified by chunk_decode (digest of the stored payload,
 * then decompression).  Any failure moves on to the next replica; a replica
 * that is corrupt or missing is reported to the FAT (from the background
 * thread).  A verified fetch queues a validation receipt for the vendor that
 * served it.  Hedged requests (a second replica asked when the first is
 * slow) are left to the performance issue.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

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
	rc = xport_call(a->pool, addr, MSG_CHUNK_GET, &cg.base, NULL, 0,
			&pstore__chunk_get_reply__descriptor, &rep, a->timeout_ms, err,
			sizeof(err));
	if (rc < 0) {
		if (rc == -ENOENT)
			*bad = "missing";
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
	    (ref->stored_len && h.stored_len != ref->stored_len) ||
	    h.raw_len != ref->raw_len || rep.data_len - CHUNK_HDR_LEN != h.stored_len) {
		*bad = "header does not match";
		goto out;
	}
	rc = chunk_decode(&h, rep.data + CHUNK_HDR_LEN, h.stored_len, raw);
	if (rc < 0) {
		if (rc == -EBADMSG)
			*bad = "digest mismatch";
		goto out;
	}
	*hout = h;
	rc = 0;
out:
	xport_reply_clear(&rep);
	return rc;
}

int alloc_fetch(struct alloc_ctx *a, const struct alloc_chunk_ref *ref, void *raw)
{
	uint32_t order[CHUNK_MAX_CHAIN];
	struct alloc_volume vol;
	unsigned n;
	int rc;

	if (!ref || !raw || ref->raw_len > CHUNK_MAX_RAW || ref->stored_len > CHUNK_MAX_STORED)
		return -EINVAL;
	rc = alloc_volume_get(a, &vol);
	if (rc < 0)
		return rc;
	n = MIN(ref->n_vendors, (unsigned)CHUNK_MAX_CHAIN);
	if (n == 0)
		return -EIO;
	vstats_order(a->vstats, ref->vendors, n, order, now_ms());
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_us();
		const char *bad = NULL;
		struct chunk_hdr h;

		if (order[i] == 0)
			continue;
		rc = fetch_one(a, &vol, ref, order[i], raw, &h, &bad);
		if (rc == 0) {
			struct receipt r;

			vstats_ok(a->vstats, order[i], now_us() - t0, now_ms());
			memcpy(r.chunk_id, h.chunk_id, CHUNK_ID_LEN);
			r.bytes = h.stored_len;
			memcpy(r.digest, h.digest, CHUNK_DIGEST_LEN);
			r.time_ms = wall_ms();
			if (receipts_add(a->receipts, order[i], &r))
				alloc_bg_kick(a);
			return 0;
		}
		vstats_fail(a->vstats, order[i], now_ms());
		if (bad) {
			char hex[2 * CHUNK_ID_LEN + 1];

			chunk_id_hex(ref->chunk_id, hex);
			log_warn("fetch: chunk %s on vendor %u: %s", hex, order[i], bad);
			alloc_bg_report_bad(a, ref->chunk_id, order[i], bad);
		}
	}
	return -EIO;
}

void alloc_receipts_flush(struct alloc_ctx *a)
{
	receipts_send(a, false, false);
}
