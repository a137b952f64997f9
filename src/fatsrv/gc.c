/*
 * gc.c - housekeeping of the FAT store that no request triggers: applied
 * commit ids ("r/" records, kept so retried commits are idempotent) are
 * dropped once older than the retention.  Expired leases are handled by
 * leases.c; chunks freed by commits become pending deletions there too and
 * are handed to vendors by vendors.c.
 *
 * The scan walks all "r/" records from a cursor kept between calls, a batch
 * at a time: O(records) per full pass, fine at the rate commits arrive; an
 * index by time would make it O(expired) if that ever matters.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fatsrv.h"

struct gc_op {
	struct fat_ctx *fc;
	uint64_t now;
	unsigned batch;
	uint8_t (*old)[FAT_REQUEST_ID_LEN];
	size_t n_old;
	uint8_t last[FAT_REQUEST_ID_LEN];
	bool have_last;
	size_t seen;
	bool more;
};

static int gc_cb(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen, void *arg)
{
	struct gc_op *op = arg;
	ProtobufCMessage *m;
	Pstore__FatRequest *r;

	if (klen != 2 + FAT_REQUEST_ID_LEN)
		return 0;
	memcpy(op->last, key + 2, FAT_REQUEST_ID_LEN);
	op->have_last = true;
	op->seen++;
	if (fat_rec_decode(val, vlen, &pstore__fat_request__descriptor, &m) < 0)
		return 0; /* logged; leave it to a human */
	r = (Pstore__FatRequest *)m;
	if (r->time_ms + op->fc->request_retention_ms < op->now)
		memcpy(op->old[op->n_old++], key + 2, FAT_REQUEST_ID_LEN);
	fat_rec_free(r);
	return 0;
}

static int gc_fn(struct fat_txn *t, void *arg)
{
	struct gc_op *op = arg;
	struct fat_key p, after;
	int rc;

	op->n_old = 0;
	op->seen = 0;
	op->have_last = false;
	op->now = op->fc->clock();
	fat_key_request_prefix(&p);
	if (op->fc->gc_have_cursor)
		fat_key_request(&after, op->fc->gc_cursor);
	rc = fat_txn_scan(t, p.b, p.len, op->fc->gc_have_cursor ? after.b : NULL,
			  op->fc->gc_have_cursor ? after.len : 0, op->batch, gc_cb, op,
			  &op->more);
	for (size_t i = 0; rc == 0 && i < op->n_old; i++) {
		struct fat_key k;

		fat_key_request(&k, op->old[i]);
		rc = fat_txn_del(t, k.b, k.len);
		if (rc == -ENOENT)
			rc = 0;
	}
	return rc;
}

int fat_gc_requests(struct fat_ctx *fc, unsigned batch, unsigned *n)
{
	struct gc_op op = {.fc = fc, .batch = batch ? batch : 1000};
	int rc;

	if (n)
		*n = 0;
	op.old = calloc(op.batch, sizeof(*op.old));
	if (!op.old)
		return -ENOMEM;
	rc = fat_store_run(fc->store, false, gc_fn, &op);
	if (rc == 0) {
		fc->gc_have_cursor = op.more && op.have_last;
		if (fc->gc_have_cursor)
			memcpy(fc->gc_cursor, op.last, sizeof(fc->gc_cursor));
		if (n)
			*n = (unsigned)op.n_old;
		if (op.n_old)
			log_debug("gc: dropped %zu old commit records", op.n_old);
	} else {
		log_err("gc of commit records failed: %s", strerror(-rc));
	}
	free(op.old);
	return rc;
}
