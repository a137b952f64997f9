/*
 * index.c - the vendor's LMDB index (records in src/proto/vindex.proto):
 * chunk records, bytes accepted per lease, validation receipts, persistent
 * statistics and the device table.  Every write is one durable transaction
 * (no MDB_NOSYNC), so what a commit returned survives kill -9 and power loss.
 * It knows nothing about piece files; store.c writes those first.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "vendor.h"

#define VINDEX_MAP_SIZE (8ull << 30) /* sparse; grows on disk as used */
#define VINDEX_MAX_RECORD (1u << 20)

struct vendor_index {
	MDB_env *env;
	MDB_dbi chunks, leases, receipts, meta;
	bool readonly;
};

static int mdb_err(int rc)
{
	if (rc == 0)
		return 0;
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc == MDB_MAP_FULL)
		return -ENOSPC;
	if (rc > 0)
		return -rc; /* plain errno values */
	log_err("lmdb: %s", mdb_strerror(rc));
	return -EIO;
}

int vindex_open(const char *dir, bool readonly, struct vendor_index **out)
{
	struct vendor_index *ix = calloc(1, sizeof(*ix));
	unsigned flags = MDB_NOTLS | (readonly ? MDB_RDONLY : 0);
	MDB_txn *txn = NULL;
	int rc;

	if (!ix)
		return -ENOMEM;
	ix->readonly = readonly;
	if (!readonly) {
		rc = mkdir_p(dir, 0750);
		if (rc < 0)
			goto fail;
	}
	rc = mdb_err(mdb_env_create(&ix->env));
	if (rc < 0)
		goto fail;
	mdb_env_set_maxdbs(ix->env, 8);
	mdb_env_set_maxreaders(ix->env, 512);
	mdb_env_set_mapsize(ix->env, VINDEX_MAP_SIZE);
	rc = mdb_err(mdb_env_open(ix->env, dir, flags, 0640));
	if (rc < 0)
		goto fail;
	rc = mdb_err(mdb_txn_begin(ix->env, NULL, readonly ? MDB_RDONLY : 0, &txn));
	if (rc < 0)
		goto fail;
	{
		unsigned dflags = readonly ? 0 : MDB_CREATE;

		rc = mdb_err(mdb_dbi_open(txn, "chunks", dflags, &ix->chunks));
		if (!rc)
			rc = mdb_err(mdb_dbi_open(txn, "leases", dflags, &ix->leases));
		if (!rc)
			rc = mdb_err(mdb_dbi_open(txn, "rcpt", dflags, &ix->receipts));
		if (!rc && !readonly) {
			MDB_dbi legacy;

			/* one record per receipt, unbounded: replaced by "rcpt" */
			if (mdb_dbi_open(txn, "receipts", 0, &legacy) == 0)
				rc = mdb_err(mdb_drop(txn, legacy, 1));
		}
		if (!rc)
			rc = mdb_err(mdb_dbi_open(txn, "meta", dflags, &ix->meta));
	}
	if (rc < 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	rc = mdb_err(mdb_txn_commit(txn));
	if (rc < 0)
		goto fail;
	*out = ix;
	return 0;
fail:
	if (ix->env)
		mdb_env_close(ix->env);
	free(ix);
	return rc;
}

void vindex_close(struct vendor_index *ix)
{
	if (!ix)
		return;
	mdb_env_close(ix->env);
	free(ix);
}

/* Packs msg into a malloc'd buffer. */
static int pack_msg(const ProtobufCMessage *msg, MDB_val *v)
{
	size_t n = protobuf_c_message_get_packed_size(msg);

	v->mv_data = malloc(n ? n : 1);
	if (!v->mv_data)
		return -ENOMEM;
	v->mv_size = protobuf_c_message_pack(msg, v->mv_data);
	return 0;
}

static ProtobufCMessage *unpack_val(const ProtobufCMessageDescriptor *d, const MDB_val *v)
{
	if (v->mv_size > VINDEX_MAX_RECORD)
		return NULL;
	return protobuf_c_message_unpack(d, NULL, v->mv_size, v->mv_data);
}

/* ---- statistics (inside a write transaction) ---- */

static int stats_load(MDB_txn *txn, struct vendor_index *ix, Pstore__VStats *s)
{
	MDB_val k = {.mv_size = 5, .mv_data = "stats"}, v;
	Pstore__VStats *u;
	int rc;

	pstore__vstats__init(s);
	rc = mdb_get(txn, ix->meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return mdb_err(rc);
	u = (Pstore__VStats *)unpack_val(&pstore__vstats__descriptor, &v);
	if (!u) {
		log_err("index: statistics record does not decode; starting from zero");
		return 0;
	}
	*s = *u;
	s->base = (ProtobufCMessage)PROTOBUF_C_MESSAGE_INIT(&pstore__vstats__descriptor);
	pstore__vstats__free_unpacked(u, NULL);
	return 0;
}

static int stats_store(MDB_txn *txn, struct vendor_index *ix, const Pstore__VStats *s)
{
	MDB_val k = {.mv_size = 5, .mv_data = "stats"}, v;
	int rc = pack_msg(&s->base, &v);

	if (rc < 0)
		return rc;
	rc = mdb_err(mdb_put(txn, ix->meta, &k, &v, 0));
	free(v.mv_data);
	return rc;
}

int vindex_stats(struct vendor_index *ix, Pstore__VStats *out)
{
	MDB_txn *txn;
	int rc = mdb_err(mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn));

	if (rc < 0)
		return rc;
	rc = stats_load(txn, ix, out);
	mdb_txn_abort(txn);
	return rc;
}

/* ---- device table ---- */

static int devtab_load(MDB_txn *txn, struct vendor_index *ix, Pstore__VDeviceTable **out)
{
	MDB_val k = {.mv_size = 7, .mv_data = "devices"}, v;
	int rc = mdb_get(txn, ix->meta, &k, &v);

	*out = NULL;
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return mdb_err(rc);
	*out = (Pstore__VDeviceTable *)unpack_val(&pstore__vdevice_table__descriptor, &v);
	if (!*out) {
		log_err("index: device table does not decode");
		return -EIO;
	}
	return 0;
}

int vindex_device_table(struct vendor_index *ix, Pstore__VDeviceTable **out)
{
	MDB_txn *txn;
	int rc = mdb_err(mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn));

	if (rc < 0)
		return rc;
	rc = devtab_load(txn, ix, out);
	mdb_txn_abort(txn);
	return rc;
}

int vindex_devices_map(struct vendor_index *ix, char (*paths)[VENDOR_PATH_MAX], size_t n,
		       uint32_t *ids)
{
	Pstore__VDeviceTable *old = NULL, tab = PSTORE__VDEVICE_TABLE__INIT;
	char **all = NULL;
	size_t nall = 0;
	bool changed = false;
	MDB_txn *txn = NULL;
	MDB_val k = {.mv_size = 7, .mv_data = "devices"}, v = {0};
	int rc;

	rc = mdb_err(mdb_txn_begin(ix->env, NULL, 0, &txn));
	if (rc < 0)
		return rc;
	rc = devtab_load(txn, ix, &old);
	if (rc < 0)
		goto out;
	all = calloc((old ? old->n_paths : 0) + n + 1, sizeof(*all));
	if (!all) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; old && i < old->n_paths; i++)
		all[nall++] = old->paths[i];
	for (size_t i = 0; i < n; i++) {
		size_t j;

		for (j = 0; j < nall; j++)
			if (strcmp(all[j], paths[i]) == 0)
				break;
		if (j == nall) {
			all[nall++] = paths[i];
			changed = true;
		}
		ids[i] = (uint32_t)j;
	}
	if (changed) {
		tab.n_paths = nall;
		tab.paths = all;
		rc = pack_msg(&tab.base, &v);
		if (rc < 0)
			goto out;
		rc = mdb_err(mdb_put(txn, ix->meta, &k, &v, 0));
		free(v.mv_data);
		if (rc < 0)
			goto out;
		rc = mdb_err(mdb_txn_commit(txn));
		txn = NULL;
	}
out:
	if (txn)
		mdb_txn_abort(txn);
	free(all);
	if (old)
		pstore__vdevice_table__free_unpacked(old, NULL);
	return rc;
}

/* ---- chunks ---- */

int vindex_chunk_get(struct vendor_index *ix, const uint8_t id[CHUNK_ID_LEN],
		     Pstore__VChunk **out)
{
	MDB_txn *txn;
	MDB_val k = {.mv_size = CHUNK_ID_LEN, .mv_data = (void *)id}, v;
	int rc = mdb_err(mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn));

	if (rc < 0)
		return rc;
	rc = mdb_err(mdb_get(txn, ix->chunks, &k, &v));
	if (rc == 0) {
		*out = (Pstore__VChunk *)unpack_val(&pstore__vchunk__descriptor, &v);
		if (!*out) {
			log_err("index: a chunk record does not decode");
			rc = -EIO;
		}
	}
	mdb_txn_abort(txn);
	return rc;
}

static void lease_key(const uint8_t *owner, uint64_t lease_id, uint8_t key[24])
{
	memcpy(key, owner, CHUNK_OWNER_LEN);
	for (int i = 0; i < 8; i++)
		key[CHUNK_OWNER_LEN + i] = (uint8_t)(lease_id >> (56 - 8 * i));
}

static int lease_load(MDB_txn *txn, struct vendor_index *ix, const uint8_t key[24],
		      Pstore__VLease *l)
{
	MDB_val k = {.mv_size = 24, .mv_data = (void *)key}, v;
	Pstore__VLease *u;
	int rc = mdb_get(txn, ix->leases, &k, &v);

	pstore__vlease__init(l);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return mdb_err(rc);
	u = (Pstore__VLease *)unpack_val(&pstore__vlease__descriptor, &v);
	if (!u)
		return -EIO;
	l->bytes = u->bytes;
	l->expiry_ms = u->expiry_ms;
	pstore__vlease__free_unpacked(u, NULL);
	return 0;
}

int vindex_lease_bytes(struct vendor_index *ix, const uint8_t owner[CHUNK_OWNER_LEN],
		       uint64_t lease_id, uint64_t *bytes)
{
	uint8_t key[24];
	Pstore__VLease l;
	MDB_txn *txn;
	int rc = mdb_err(mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn));

	if (rc < 0)
		return rc;
	lease_key(owner, lease_id, key);
	rc = lease_load(txn, ix, key, &l);
	mdb_txn_abort(txn);
	if (rc == 0)
		*bytes = l.bytes;
	return rc;
}

static bool same_digest(const Pstore__VChunk *a, const Pstore__VChunk *b)
{
	return a->digest.len == b->digest.len &&
	       memcmp(a->digest.data, b->digest.data, a->digest.len) == 0;
}

static void count_received(Pstore__VStats *s, bool from_vendor, uint64_t bytes)
{
	if (from_vendor)
		s->bytes_from_vendors += bytes;
	else
		s->bytes_from_clients += bytes;
}

int vindex_chunk_commit(struct vendor_index *ix, const uint8_t id[CHUNK_ID_LEN],
			const Pstore__VChunk *rec, const struct vindex_commit *c)
{
	MDB_txn *txn = NULL;
	MDB_val k = {.mv_size = CHUNK_ID_LEN, .mv_data = (void *)id}, v, nv = {0};
	Pstore__VStats s;
	int rc, result = 0;

	rc = mdb_err(mdb_txn_begin(ix->env, NULL, 0, &txn));
	if (rc < 0)
		return rc;
	rc = stats_load(txn, ix, &s);
	if (rc < 0)
		goto out;
	rc = mdb_get(txn, ix->chunks, &k, &v);
	if (rc == 0) {
		Pstore__VChunk *old =
		    (Pstore__VChunk *)unpack_val(&pstore__vchunk__descriptor, &v);
		bool same = old && same_digest(old, rec);

		if (old)
			pstore__vchunk__free_unpacked(old, NULL);
		if (!same) {
			rc = -EEXIST;
			goto out;
		}
		result = 1;
	} else if (rc != MDB_NOTFOUND) {
		rc = mdb_err(rc);
		goto out;
	}
	if (result == 0 && c->byte_limit > 0) {
		uint8_t lk[24];
		MDB_val lkv = {.mv_size = 24, .mv_data = lk}, lv;
		Pstore__VLease l;

		lease_key(rec->owner.data, rec->lease_id, lk);
		rc = lease_load(txn, ix, lk, &l);
		if (rc < 0)
			goto out;
		if (l.bytes + rec->stored_len > c->byte_limit) {
			rc = -E2BIG;
			goto out;
		}
		l.bytes += rec->stored_len;
		l.expiry_ms = MAX(l.expiry_ms, c->lease_expiry);
		rc = pack_msg(&l.base, &lv);
		if (rc < 0)
			goto out;
		rc = mdb_err(mdb_put(txn, ix->leases, &lkv, &lv, 0));
		free(lv.mv_data);
		if (rc < 0)
			goto out;
	}
	if (result == 0) {
		rc = pack_msg(&rec->base, &nv);
		if (rc < 0)
			goto out;
		rc = mdb_err(mdb_put(txn, ix->chunks, &k, &nv, 0));
		free(nv.mv_data);
		if (rc < 0)
			goto out;
		s.chunks++;
		s.bytes_stored += rec->stored_len;
		s.pieces += rec->n_pieces;
	}
	count_received(&s, c->from_vendor, rec->stored_len);
	rc = stats_store(txn, ix, &s);
	if (rc < 0)
		goto out;
	rc = mdb_err(mdb_txn_commit(txn));
	txn = NULL;
out:
	if (txn)
		mdb_txn_abort(txn);
	return rc < 0 ? rc : result;
}

int vindex_chunk_delete(struct vendor_index *ix, const uint8_t id[CHUNK_ID_LEN],
			Pstore__VChunk **old)
{
	MDB_txn *txn = NULL;
	MDB_val k = {.mv_size = CHUNK_ID_LEN, .mv_data = (void *)id}, v;
	Pstore__VChunk *rec = NULL;
	Pstore__VStats s;
	int rc;

	rc = mdb_err(mdb_txn_begin(ix->env, NULL, 0, &txn));
	if (rc < 0)
		return rc;
	rc = mdb_err(mdb_get(txn, ix->chunks, &k, &v));
	if (rc < 0)
		goto out;
	rec = (Pstore__VChunk *)unpack_val(&pstore__vchunk__descriptor, &v);
	rc = mdb_err(mdb_del(txn, ix->chunks, &k, NULL));
	if (rc < 0)
		goto out;
	rc = mdb_err(mdb_del(txn, ix->receipts, &k, NULL)); /* its receipts go with it */
	if (rc < 0 && rc != -ENOENT)
		goto out;
	rc = stats_load(txn, ix, &s);
	if (rc < 0)
		goto out;
	if (rec) {
		s.chunks = s.chunks ? s.chunks - 1 : 0;
		s.bytes_stored -= MIN(s.bytes_stored, rec->stored_len);
		s.pieces -= MIN(s.pieces, (uint64_t)rec->n_pieces);
	}
	rc = stats_store(txn, ix, &s);
	if (rc < 0)
		goto out;
	rc = mdb_err(mdb_txn_commit(txn));
	txn = NULL;
out:
	if (txn)
		mdb_txn_abort(txn);
	if (rc == 0 && old)
		*old = rec;
	else if (rec)
		pstore__vchunk__free_unpacked(rec, NULL);
	return rc;
}

int vindex_chunk_foreach(struct vendor_index *ix,
			 int (*fn)(const uint8_t *id, const Pstore__VChunk *rec, void *arg),
			 void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc = mdb_err(mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn));
	int op = MDB_FIRST;

	if (rc < 0)
		return rc;
	rc = mdb_err(mdb_cursor_open(txn, ix->chunks, &cur));
	if (rc < 0)
		goto out;
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		Pstore__VChunk *rec;
		int r;

		op = MDB_NEXT;
		if (k.mv_size != CHUNK_ID_LEN) {
			log_warn("index: skipping a chunk key of %zu bytes", k.mv_size);
			continue;
		}
		rec = (Pstore__VChunk *)unpack_val(&pstore__vchunk__descriptor, &v);
		if (!rec) {
			log_warn("index: skipping a chunk record that does not decode");
			continue;
		}
		r = fn(k.mv_data, rec, arg);
		pstore__vchunk__free_unpacked(rec, NULL);
		if (r) {
			rc = r;
			goto out;
		}
	}
	rc = rc == MDB_NOTFOUND ? 0 : mdb_err(rc);
out:
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}

int vindex_lease_prune(struct vendor_index *ix, uint64_t before_ms)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc, n = 0, op = MDB_FIRST;

	rc = mdb_err(mdb_txn_begin(ix->env, NULL, 0, &txn));
	if (rc < 0)
		return rc;
	rc = mdb_err(mdb_cursor_open(txn, ix->leases, &cur));
	if (rc < 0)
		goto out;
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		Pstore__VLease *l =
		    (Pstore__VLease *)unpack_val(&pstore__vlease__descriptor, &v);
		bool old = !l || l->expiry_ms < before_ms;

		op = MDB_NEXT;
		if (l)
			pstore__vlease__free_unpacked(l, NULL);
		if (old) {
			rc = mdb_err(mdb_cursor_del(cur, 0));
			if (rc < 0)
				goto out;
			n++;
		}
	}
	rc = rc == MDB_NOTFOUND ? 0 : mdb_err(rc);
	if (rc < 0)
		goto out;
	mdb_cursor_close(cur);
	cur = NULL;
	rc = mdb_err(mdb_txn_commit(txn));
	txn = NULL;
out:
	if (cur)
		mdb_cursor_close(cur);
	if (txn)
		mdb_txn_abort(txn);
	return rc < 0 ? rc : n;
}

int vindex_count_received(struct vendor_index *ix, bool from_vendor, uint64_t bytes)
{
	MDB_txn *txn = NULL;
	Pstore__VStats s;
	int rc = mdb_err(mdb_txn_begin(ix->env, NULL, 0, &txn));

	if (rc < 0)
		return rc;
	rc = stats_load(txn, ix, &s);
	if (rc == 0) {
		count_received(&s, from_vendor, bytes);
		rc = stats_store(txn, ix, &s);
	}
	if (rc == 0) {
		rc = mdb_err(mdb_txn_commit(txn));
		txn = NULL;
	}
	if (txn)
		mdb_txn_abort(txn);
	return rc;
}

/* Is the chunk stored, and (owner not NULL) that volume's? */
static bool chunk_stored_for(MDB_txn *txn, struct vendor_index *ix, const uint8_t *id,
			     const uint8_t *owner)
{
	MDB_val k = {.mv_size = CHUNK_ID_LEN, .mv_data = (void *)id}, v;
	Pstore__VChunk *rec;
	bool ok;

	if (mdb_get(txn, ix->chunks, &k, &v) != 0)
		return false;
	if (!owner)
		return true;
	rec = (Pstore__VChunk *)unpack_val(&pstore__vchunk__descriptor, &v);
	if (!rec)
		return false;
	ok = rec->owner.len == CHUNK_OWNER_LEN &&
	     memcmp(rec->owner.data, owner, CHUNK_OWNER_LEN) == 0;
	pstore__vchunk__free_unpacked(rec, NULL);
	return ok;
}

int vindex_receipts_add(struct vendor_index *ix, Pstore__Receipt *const *r, size_t n,
			const char *peer, const uint8_t *owner, size_t *recorded)
{
	MDB_txn *txn = NULL;
	Pstore__VStats s;
	uint64_t now = wall_ms();
	int rc = mdb_err(mdb_txn_begin(ix->env, NULL, 0, &txn));

	*recorded = 0;
	if (rc < 0)
		return rc;
	rc = stats_load(txn, ix, &s);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		Pstore__VReceiptAgg agg = PSTORE__VRECEIPT_AGG__INIT, *old = NULL;
		MDB_val k = {.mv_size = CHUNK_ID_LEN, .mv_data = r[i]->chunk_id.data}, v;

		if (r[i]->chunk_id.len != CHUNK_ID_LEN ||
		    !chunk_stored_for(txn, ix, r[i]->chunk_id.data, owner))
			continue; /* not stored here (any more), or not that volume's */
		if (mdb_get(txn, ix->receipts, &k, &v) == 0) {
			old = (Pstore__VReceiptAgg *)unpack_val(
			    &pstore__vreceipt_agg__descriptor, &v);
			if (old) {
				agg.ok = old->ok;
				agg.bad = old->bad;
				agg.bytes = old->bytes;
			}
		}
		agg.ok += r[i]->ok;
		agg.bad += !r[i]->ok;
		agg.bytes += r[i]->bytes;
		agg.last_ms = now;
		agg.last_peer = (char *)peer;
		rc = pack_msg(&agg.base, &v);
		if (old)
			pstore__vreceipt_agg__free_unpacked(old, NULL);
		if (rc < 0)
			break;
		rc = mdb_err(mdb_put(txn, ix->receipts, &k, &v, 0));
		free(v.mv_data);
		s.receipts++;
		s.receipt_bytes += r[i]->bytes;
		(*recorded)++;
	}
	if (rc == 0)
		rc = stats_store(txn, ix, &s);
	if (rc == 0) {
		rc = mdb_err(mdb_txn_commit(txn));
		txn = NULL;
	}
	if (txn)
		mdb_txn_abort(txn);
	return rc;
}

int vindex_receipts_get(struct vendor_index *ix, const uint8_t id[CHUNK_ID_LEN],
			Pstore__VReceiptAgg **out)
{
	MDB_txn *txn;
	MDB_val k = {.mv_size = CHUNK_ID_LEN, .mv_data = (void *)id}, v;
	int rc = mdb_err(mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn));

	if (rc < 0)
		return rc;
	rc = mdb_err(mdb_get(txn, ix->receipts, &k, &v));
	if (rc == 0) {
		*out = (Pstore__VReceiptAgg *)unpack_val(&pstore__vreceipt_agg__descriptor, &v);
		if (!*out)
			rc = -EIO;
	}
	mdb_txn_abort(txn);
	return rc;
}

int vindex_chunk_confirm(struct vendor_index *ix, const uint8_t id[CHUNK_ID_LEN])
{
	MDB_txn *txn = NULL;
	MDB_val k = {.mv_size = CHUNK_ID_LEN, .mv_data = (void *)id}, v;
	Pstore__VChunk *rec = NULL;
	int rc = mdb_err(mdb_txn_begin(ix->env, NULL, 0, &txn));

	if (rc < 0)
		return rc;
	rc = mdb_err(mdb_get(txn, ix->chunks, &k, &v));
	if (rc < 0)
		goto out;
	rec = (Pstore__VChunk *)unpack_val(&pstore__vchunk__descriptor, &v);
	if (!rec) {
		rc = -EIO;
		goto out;
	}
	if (rec->confirmed)
		goto out;
	rec->confirmed = true;
	rc = pack_msg(&rec->base, &v);
	if (rc < 0)
		goto out;
	rc = mdb_err(mdb_put(txn, ix->chunks, &k, &v, 0));
	free(v.mv_data);
	if (rc == 0) {
		rc = mdb_err(mdb_txn_commit(txn));
		txn = NULL;
	}
out:
	if (txn)
		mdb_txn_abort(txn);
	if (rec)
		pstore__vchunk__free_unpacked(rec, NULL);
	return rc;
}

int vindex_chunk_scan(struct vendor_index *ix, const uint8_t *after, size_t limit,
		      int (*fn)(const uint8_t *id, const Pstore__VChunk *rec, void *arg),
		      void *arg, bool *wrapped)
{
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc = mdb_err(mdb_txn_begin(ix->env, NULL, MDB_RDONLY, &txn));
	int op = MDB_FIRST;
	size_t seen = 0;

	*wrapped = false;
	if (rc < 0)
		return rc;
	rc = mdb_err(mdb_cursor_open(txn, ix->chunks, &cur));
	if (rc < 0)
		goto out;
	if (after) {
		k.mv_size = CHUNK_ID_LEN;
		k.mv_data = (void *)after;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && k.mv_size == CHUNK_ID_LEN &&
		    memcmp(k.mv_data, after, CHUNK_ID_LEN) == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		op = MDB_GET_CURRENT;
		if (rc == MDB_NOTFOUND) {
			*wrapped = true;
			rc = 0;
			goto out;
		}
		if (rc != 0) {
			rc = mdb_err(rc);
			goto out;
		}
	}
	while (seen < limit && (rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		Pstore__VChunk *rec;
		int r;

		op = MDB_NEXT;
		seen++;
		if (k.mv_size != CHUNK_ID_LEN)
			continue;
		rec = (Pstore__VChunk *)unpack_val(&pstore__vchunk__descriptor, &v);
		if (!rec)
			continue;
		r = fn(k.mv_data, rec, arg);
		pstore__vchunk__free_unpacked(rec, NULL);
		if (r) {
			rc = r;
			goto out;
		}
	}
	if (rc == MDB_NOTFOUND) {
		*wrapped = true;
		rc = 0;
	} else {
		rc = mdb_err(rc);
	}
out:
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}
