/*
 * leases.c - provisional allocations: MSG_ALLOC picks candidate vendors,
 * reserves bytes on each and records the lease; MSG_LEASE_RENEW extends it;
 * the expiry timer (fat_lease_expire) gives back what expired leases still
 * reserve.  Capability tokens are signed here, after the transaction, from
 * what it decided.
 *
 * Invariant: a vendor's `reserved` is the sum of `remaining` over the
 * unreleased leases that name it.  A grant takes at most what is available
 * (capacity - used - reserved), so as long as commits place no more on a
 * vendor than its token allows, used + reserved never exceeds capacity.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fatsrv.h"

#define LEASE_MAX_EXCLUDE 1024
#define LEASE_EXPIRE_BATCH 256

int fat_lease_load(struct fat_txn *t, uint64_t id, Pstore__FatLease **out)
{
	struct fat_key k;

	fat_key_lease(&k, id);
	return fat_rec_get(t, &k, &pstore__fat_lease__descriptor, (ProtobufCMessage **)out);
}

static int lease_save(struct fat_txn *t, const Pstore__FatLease *l)
{
	struct fat_key k;

	fat_key_lease(&k, l->id);
	return fat_rec_put(t, &k, &l->base);
}

/* Moves the lease's entry in the expiry index to time_ms. */
static int lease_reindex(struct fat_txn *t, Pstore__FatLease *l, uint64_t time_ms)
{
	struct fat_key k;
	int rc;

	if (l->index_ms) {
		fat_key_lease_index(&k, l->index_ms, l->id);
		rc = fat_txn_del(t, k.b, k.len);
		if (rc < 0 && rc != -ENOENT)
			return rc;
	}
	l->index_ms = time_ms;
	fat_key_lease_index(&k, time_ms, l->id);
	return fat_txn_put(t, k.b, k.len, "", 0);
}

int fat_lease_release(struct fat_ctx *fc, struct fat_txn *t, Pstore__FatLease *l)
{
	int rc;

	if (l->released)
		return 0;
	for (size_t i = 0; i < l->n_res; i++) {
		Pstore__FatReservation *r = l->res[i];
		Pstore__VendorRecord *v;

		if (r->remaining == 0)
			continue;
		rc = fat_vendor_load(t, r->vendor_id, &v);
		if (rc == -ENOENT) {
			r->remaining = 0;
			continue;
		}
		if (rc < 0)
			return rc;
		v->reserved -= MIN(v->reserved, r->remaining);
		r->remaining = 0;
		rc = fat_vendor_save(t, v);
		fat_rec_free(v);
		if (rc < 0)
			return rc;
	}
	l->released = true;
	rc = lease_reindex(t, l, fc->clock() + fc->lease_retention_ms);
	if (rc == 0)
		rc = lease_save(t, l);
	return rc;
}

/* ---- grant ---- */

struct cand {
	uint32_t vendor_id;
	uint64_t avail;
	uint64_t tiebreak;
	uint64_t reserved;
	char *address;
	char *zone;
};

struct alloc_op {
	struct fat_ctx *fc;
	const Pstore__AllocRequest *req;
	uint64_t now;
	Pstore__VolumeInfo *vi;
	struct cand *c;
	size_t n, cap;
	uint64_t lease_id, expiry_ms;
};

static void cands_clear(struct alloc_op *op)
{
	for (size_t i = 0; i < op->n; i++) {
		free(op->c[i].address);
		free(op->c[i].zone);
	}
	op->n = 0;
}

static bool excluded(const Pstore__AllocRequest *req, uint32_t id)
{
	for (size_t i = 0; i < req->n_exclude; i++)
		if (req->exclude[i] == id)
			return true;
	return false;
}

static int cand_cb(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen, void *arg)
{
	struct alloc_op *op = arg;
	Pstore__VendorRecord *v;
	ProtobufCMessage *m;
	int rc;

	(void)key;
	(void)klen;
	rc = fat_rec_decode(val, vlen, &pstore__vendor_record__descriptor, &m);
	if (rc < 0)
		return rc;
	v = (Pstore__VendorRecord *)m;
	if (fat_vendor_alive(op->fc, v, op->now) && !excluded(op->req, v->id) &&
	    fat_vendor_available(v) > 0) {
		if (op->n == op->cap) {
			size_t cap = op->cap ? op->cap * 2 : 16;
			struct cand *c = realloc(op->c, cap * sizeof(*c));

			if (!c) {
				fat_rec_free(v);
				return -ENOMEM;
			}
			op->c = c;
			op->cap = cap;
		}
		op->c[op->n++] = (struct cand){
		    .vendor_id = v->id,
		    .avail = fat_vendor_available(v),
		    .tiebreak = random_u64(),
		    .address = fat_strdup(v->address),
		    .zone = fat_strdup(v->zone),
		};
	}
	fat_rec_free(v);
	return 0;
}

/* most available space first; ties in random order so grants spread */
static int cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->avail != y->avail)
		return x->avail > y->avail ? -1 : 1;
	return x->tiebreak < y->tiebreak ? -1 : x->tiebreak > y->tiebreak;
}

static int alloc_fn(struct fat_txn *t, void *arg)
{
	struct alloc_op *op = arg;
	struct fat_ctx *fc = op->fc;
	Pstore__FatLease l = PSTORE__FAT_LEASE__INIT;
	Pstore__FatReservation res[FAT_MAX_COPIES + 2];
	Pstore__FatReservation *resp[FAT_MAX_COPIES + 2];
	Pstore__FatLease *old;
	uint32_t copies, lease_ms;
	struct fat_key k;
	int rc;

	cands_clear(op);
	fat_rec_free(op->vi);
	op->vi = NULL;
	op->now = fc->clock();
	rc = fat_volume_load(fc, t, op->req->volume, &op->vi);
	if (rc < 0)
		return rc;
	copies = op->req->copies ? op->req->copies : op->vi->copies;
	fat_key_vendor_prefix(&k);
	rc = fat_txn_scan(t, k.b, k.len, NULL, 0, 0, cand_cb, op, NULL);
	if (rc < 0)
		return fat_fail(fc, rc, "cannot read vendors");
	if (op->n < copies)
		return fat_fail(fc, -ENOSPC,
				"only %zu vendors alive with free space, %u copies needed",
				op->n, copies);
	qsort(op->c, op->n, sizeof(*op->c), cand_cmp);
	while (op->n > copies + 2) {
		op->n--;
		free(op->c[op->n].address);
		free(op->c[op->n].zone);
	}
	do {
		op->lease_id = random_u64();
		rc = op->lease_id ? fat_lease_load(t, op->lease_id, &old) : 0;
		if (rc == 0 && op->lease_id)
			fat_rec_free(old);
	} while (rc == 0);
	if (rc != -ENOENT)
		return fat_fail(fc, rc, "cannot read leases");
	lease_ms =
	    op->req->lease_ms ? MIN(op->req->lease_ms, fc->lease_max_ms) : fc->lease_max_ms;
	op->expiry_ms = op->now + lease_ms;
	for (size_t i = 0; i < op->n; i++) {
		Pstore__VendorRecord *v;

		rc = fat_vendor_load(t, op->c[i].vendor_id, &v);
		if (rc < 0)
			return fat_fail(fc, rc, "cannot read vendor %u", op->c[i].vendor_id);
		op->c[i].reserved = MIN(fat_vendor_available(v), op->req->bytes);
		v->reserved += op->c[i].reserved;
		rc = fat_vendor_save(t, v);
		fat_rec_free(v);
		if (rc < 0)
			return fat_fail(fc, rc, "cannot store vendor %u", op->c[i].vendor_id);
		pstore__fat_reservation__init(&res[i]);
		res[i].vendor_id = op->c[i].vendor_id;
		res[i].granted = res[i].remaining = op->c[i].reserved;
		resp[i] = &res[i];
	}
	l.id = op->lease_id;
	l.volume_id = op->vi->id;
	l.volume = op->vi->name;
	l.created_ms = op->now;
	l.expiry_ms = op->expiry_ms;
	l.n_res = op->n;
	l.res = resp;
	rc = lease_reindex(t, &l, l.expiry_ms);
	if (rc == 0)
		rc = lease_save(t, &l);
	if (rc < 0)
		return fat_fail(fc, rc, "cannot store lease");
	return 0;
}

/* Builds one Candidate with a signed token. */
static int make_candidate(struct fat_ctx *fc, const uint8_t *vol_id, uint64_t lease_id,
			  uint64_t expiry_ms, uint32_t vendor_id, const char *address,
			  const char *zone, uint64_t reserved, Pstore__Candidate **out)
{
	struct cap_token tok = {
	    .vendor_id = vendor_id,
	    .lease_id = lease_id,
	    .byte_limit = reserved,
	    .expiry_ms = expiry_ms,
	};
	Pstore__Candidate *c = malloc(sizeof(*c));
	int rc;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	pstore__candidate__init(c);
	memcpy(tok.owner, vol_id, CHUNK_OWNER_LEN);
	c->vendor_id = vendor_id;
	c->address = fat_strdup(address);
	c->zone = fat_strdup(zone);
	c->reserved = reserved;
	rc = cap_token_sign(fc->key, &tok, &c->token.data, &c->token.len);
	if (rc < 0) {
		c->token.data = NULL;
		c->token.len = 0;
		fat_rec_free(c);
		return fat_fail(fc, rc, "cannot sign token");
	}
	*out = c;
	return 0;
}

int fat_alloc(struct fat_ctx *fc, const Pstore__AllocRequest *req, Pstore__AllocReply **out)
{
	struct alloc_op op = {.fc = fc, .req = req};
	Pstore__AllocReply *r = NULL;
	int rc;

	*out = NULL;
	if (req->bytes == 0 || req->bytes > FAT_MAX_ALLOC_BYTES)
		return fat_fail(fc, -EINVAL, "bytes must be 1..%llu",
				(unsigned long long)FAT_MAX_ALLOC_BYTES);
	if (req->copies > FAT_MAX_COPIES)
		return fat_fail(fc, -EINVAL, "copies must be 1..%d", FAT_MAX_COPIES);
	if (req->n_exclude > LEASE_MAX_EXCLUDE)
		return fat_fail(fc, -EINVAL, "exclude list too long");
	rc = fat_store_run(fc->store, false, alloc_fn, &op);
	if (rc < 0)
		goto out;
	r = malloc(sizeof(*r));
	if (!r) {
		rc = -ENOMEM;
		goto out;
	}
	pstore__alloc_reply__init(r);
	r->lease_id = op.lease_id;
	r->expiry_ms = op.expiry_ms;
	r->candidates = calloc(op.n, sizeof(*r->candidates));
	if (!r->candidates) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < op.n; i++) {
		rc = make_candidate(fc, op.vi->id.data, op.lease_id, op.expiry_ms,
				    op.c[i].vendor_id, op.c[i].address, op.c[i].zone,
				    op.c[i].reserved, &r->candidates[i]);
		if (rc < 0)
			goto out;
		r->n_candidates++;
	}
	log_debug("lease %016" PRIx64 " granted on %s: %zu candidates x %" PRIu64 " bytes",
		  op.lease_id, req->volume, op.n, req->bytes);
	*out = r;
	r = NULL;
	rc = 0;
out:
	/* a failure after the grant leaves the reservation to the expiry timer */
	fat_rec_free(r);
	cands_clear(&op);
	free(op.c);
	fat_rec_free(op.vi);
	return rc;
}

/* ---- renew ---- */

struct renew_op {
	struct fat_ctx *fc;
	const Pstore__LeaseRenew *req;
	Pstore__FatLease *l;
	Pstore__VendorRecord **v; /* one per reservation; NULL if the vendor is gone */
};

static void renew_clear(struct renew_op *op)
{
	if (op->l && op->v)
		for (size_t i = 0; i < op->l->n_res; i++)
			fat_rec_free(op->v[i]);
	free(op->v);
	op->v = NULL;
	fat_rec_free(op->l);
	op->l = NULL;
}

static int renew_fn(struct fat_txn *t, void *arg)
{
	struct renew_op *op = arg;
	struct fat_ctx *fc = op->fc;
	uint64_t now = fc->clock(), ms;
	int rc;

	renew_clear(op);
	rc = fat_lease_load(t, op->req->lease_id, &op->l);
	if (rc == -ENOENT || (rc == 0 && (op->l->released || op->l->expiry_ms <= now ||
					  strcmp(op->l->volume, op->req->volume) != 0)))
		return fat_fail(fc, -ENOENT, "lease %016" PRIx64 " is gone or expired",
				op->req->lease_id);
	if (rc < 0)
		return fat_fail(fc, rc, "cannot read lease");
	/* The reply's tokens copy the volume id: never trust the record's size. */
	if (op->l->volume_id.len != FAT_VOLUME_ID_LEN)
		return fat_fail(fc, -EIO, "lease %016" PRIx64 " has a corrupt record",
				op->req->lease_id);
	ms = op->req->lease_ms ? MIN(op->req->lease_ms, fc->lease_max_ms) : fc->lease_max_ms;
	op->l->expiry_ms = MAX(op->l->expiry_ms, now + ms);
	rc = lease_reindex(t, op->l, op->l->expiry_ms);
	if (rc == 0)
		rc = lease_save(t, op->l);
	if (rc < 0)
		return fat_fail(fc, rc, "cannot store lease");
	op->v = calloc(op->l->n_res ? op->l->n_res : 1, sizeof(*op->v));
	if (!op->v)
		return -ENOMEM;
	for (size_t i = 0; i < op->l->n_res; i++) {
		rc = fat_vendor_load(t, op->l->res[i]->vendor_id, &op->v[i]);
		if (rc < 0 && rc != -ENOENT)
			return fat_fail(fc, rc, "cannot read vendor");
	}
	return 0;
}

/* The reply carries the lease's new expiry and, for each vendor it still
 * names, a fresh token with that expiry (byte_limit stays the grant). */
int fat_lease_renew(struct fat_ctx *fc, const Pstore__LeaseRenew *req, Pstore__AllocReply **out)
{
	struct renew_op op = {.fc = fc, .req = req};
	Pstore__AllocReply *r = NULL;
	int rc;

	*out = NULL;
	if (req->lease_id == 0)
		return fat_fail(fc, -EINVAL, "lease id 0 is invalid");
	rc = fat_store_run(fc->store, false, renew_fn, &op);
	if (rc < 0)
		goto out;
	r = malloc(sizeof(*r));
	if (!r) {
		rc = -ENOMEM;
		goto out;
	}
	pstore__alloc_reply__init(r);
	r->lease_id = op.l->id;
	r->expiry_ms = op.l->expiry_ms;
	r->candidates = calloc(op.l->n_res ? op.l->n_res : 1, sizeof(*r->candidates));
	if (!r->candidates) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < op.l->n_res; i++) {
		const Pstore__FatReservation *res = op.l->res[i];

		if (!op.v[i] || res->remaining == 0)
			continue;
		rc = make_candidate(fc, op.l->volume_id.data, op.l->id, op.l->expiry_ms,
				    res->vendor_id, op.v[i]->address, op.v[i]->zone,
				    res->granted, &r->candidates[r->n_candidates]);
		if (rc < 0)
			goto out;
		r->n_candidates++;
	}
	*out = r;
	r = NULL;
	rc = 0;
out:
	fat_rec_free(r);
	renew_clear(&op);
	return rc;
}

/* ---- expiry ---- */

struct expire_op {
	struct fat_ctx *fc;
	uint64_t now;
	uint64_t due_ms[LEASE_EXPIRE_BATCH];
	uint64_t due_id[LEASE_EXPIRE_BATCH];
	size_t n_due;
	unsigned released, dropped;
	bool more;
};

static int due_cb(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen, void *arg)
{
	struct expire_op *op = arg;
	uint64_t ms;

	(void)val;
	(void)vlen;
	if (klen != 2 + 16)
		return 0;
	ms = fat_be64(key + 2);
	if (ms > op->now)
		return 1; /* the index is in time order: nothing later is due */
	op->due_ms[op->n_due] = ms;
	op->due_id[op->n_due] = fat_be64(key + 10);
	op->n_due++;
	return 0;
}

static int expire_fn(struct fat_txn *t, void *arg)
{
	struct expire_op *op = arg;
	struct fat_key k;
	int rc;

	op->n_due = 0;
	op->released = op->dropped = 0;
	op->now = op->fc->clock();
	fat_key_lease_index_prefix(&k);
	rc = fat_txn_scan(t, k.b, k.len, NULL, 0, LEASE_EXPIRE_BATCH, due_cb, op, &op->more);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < op->n_due; i++) {
		Pstore__FatLease *l;

		rc = fat_lease_load(t, op->due_id[i], &l);
		if (rc == 0 && l->index_ms != op->due_ms[i]) {
			fat_rec_free(l); /* stale index entry */
			rc = -ENOENT;
		}
		if (rc == -ENOENT) {
			fat_key_lease_index(&k, op->due_ms[i], op->due_id[i]);
			rc = fat_txn_del(t, k.b, k.len);
			if (rc < 0 && rc != -ENOENT)
				return rc;
			continue;
		}
		if (rc < 0)
			return rc;
		if (!l->released) {
			uint64_t held = 0;

			for (size_t j = 0; j < l->n_res; j++)
				held += l->res[j]->remaining;
			rc = fat_lease_release(op->fc, t, l);
			if (rc == 0) {
				op->released++;
				log_info("lease %016" PRIx64
					 " of volume %s expired: released %" PRIu64
					 " reserved bytes on %zu vendors",
					 l->id, l->volume, held, l->n_res);
			}
		} else {
			fat_key_lease_index(&k, l->index_ms, l->id);
			rc = fat_txn_del(t, k.b, k.len);
			if (rc == 0) {
				fat_key_lease(&k, l->id);
				rc = fat_txn_del(t, k.b, k.len);
			}
			op->dropped++;
		}
		fat_rec_free(l);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int fat_lease_expire(struct fat_ctx *fc, unsigned *n_expired)
{
	struct expire_op *op = calloc(1, sizeof(*op));
	unsigned total = 0;
	int rc = 0;

	if (!op)
		return -ENOMEM;
	op->fc = fc;
	/* bounded batches, so one timer tick never holds the loop for long */
	for (int round = 0; round < 16; round++) {
		rc = fat_store_run(fc->store, false, expire_fn, op);
		if (rc < 0) {
			log_err("lease expiry failed: %s", strerror(-rc));
			break;
		}
		total += op->released;
		if (!op->more || op->n_due < LEASE_EXPIRE_BATCH)
			break;
	}
	free(op);
	if (n_expired)
		*n_expired = total;
	return rc;
}
