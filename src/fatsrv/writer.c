/*
 * writer.c - the volume writer lease: one read-write mount per volume.
 *
 * The record "w/" volume_id -> FatWriter names the holder (a session id the
 * mount keeps in its state directory, and its certificate CN), a fencing
 * token and an expiry.  MSG_WRITER_ACQUIRE grants the lease when there is
 * no live holder, or renews it for the same session; a different session
 * gets EBUSY while the lease is alive.  Every new grant to a session that
 * did not hold the record takes token + 1, so a writer that lost its lease
 * (paused, partitioned) is fenced: commit.c calls fat_writer_check, which
 * refuses a commit whose token is not the record's (ESTALE), and a commit
 * without a token while a lease is alive (EBUSY).  An expired lease no one
 * took over still accepts its holder's token.
 *
 * Each operation is one store transaction on the store interface, so both
 * backends (LMDB, etcd) run it; expiry is wall-clock time at the FAT.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fatsrv.h"

#define WRITER_SESSION_LEN 16
#define WRITER_LEASE_MIN_MS 1000
#define WRITER_LEASE_MAX_MS 600000

static void key_writer(struct fat_key *k, const uint8_t *vol_id)
{
	memcpy(k->b, "w/", 2);
	memcpy(k->b + 2, vol_id, FAT_VOLUME_ID_LEN);
	k->len = 2 + FAT_VOLUME_ID_LEN;
}

struct writer_op {
	struct fat_ctx *fc;
	const Pstore__WriterLease *req;
	const char *peer;
	bool release;
	Pstore__WriterLeaseReply *out;
};

static int writer_fn(struct fat_txn *t, void *arg)
{
	struct writer_op *op = arg;
	struct fat_ctx *fc = op->fc;
	const Pstore__WriterLease *req = op->req;
	Pstore__VolumeInfo *vi = NULL;
	Pstore__FatWriter *w = NULL, nw = PSTORE__FAT_WRITER__INIT;
	struct fat_key k;
	uint64_t now = fc->clock();
	bool mine, alive;
	int rc;

	op->out->token = 0;
	op->out->expiry_ms = 0;
	if (op->out->holder != protobuf_c_empty_string)
		free(op->out->holder);
	op->out->holder = NULL;
	rc = fat_volume_load(fc, t, req->volume, &vi);
	if (rc < 0)
		return rc;
	key_writer(&k, vi->id.data);
	fat_rec_free(vi);
	rc = fat_rec_get(t, &k, &pstore__fat_writer__descriptor, (ProtobufCMessage **)&w);
	if (rc < 0 && rc != -ENOENT)
		return fat_fail(fc, rc, "cannot read the writer lease");
	mine = w && w->session.len == req->session.len &&
	       memcmp(w->session.data, req->session.data, req->session.len) == 0;
	alive = w && w->expiry_ms > now;
	if (op->release) {
		if (!mine || w->token != req->token) {
			fat_rec_free(w);
			return 0; /* nothing of the caller's to release */
		}
		w->expiry_ms = 0;
		op->out->token = w->token;
		rc = fat_rec_put(t, &k, &w->base);
		fat_rec_free(w);
		return rc < 0 ? fat_fail(fc, rc, "cannot store the writer lease") : 0;
	}
	if (w && alive && !mine) {
		uint64_t left = w->expiry_ms - now;

		rc = fat_fail(
		    fc, -EBUSY,
		    "volume %s is mounted read-write by %s (writer lease expires in "
		    "%" PRIu64 ".%" PRIu64 " s unless renewed); mount it read-only with -o ro",
		    req->volume, w->holder ? w->holder : "?", left / 1000, (left % 1000) / 100);
		fat_rec_free(w);
		return rc;
	}
	nw.session = req->session;
	nw.holder = (char *)op->peer;
	/* the same session keeps its token while no one else took the lease */
	nw.token = w ? (mine ? w->token : w->token + 1) : 1;
	if (mine && req->token && req->token != w->token) {
		fat_rec_free(w);
		return fat_fail(fc, -ESTALE, "writer lease token %" PRIu64 " is stale",
				req->token);
	}
	nw.expiry_ms = now + MIN(MAX(req->lease_ms, WRITER_LEASE_MIN_MS), WRITER_LEASE_MAX_MS);
	fat_rec_free(w);
	rc = fat_rec_put(t, &k, &nw.base);
	if (rc < 0)
		return fat_fail(fc, rc, "cannot store the writer lease");
	op->out->token = nw.token;
	op->out->expiry_ms = nw.expiry_ms;
	op->out->holder = fat_strdup(op->peer);
	return op->out->holder ? 0 : -ENOMEM;
}

int fat_writer_lease(struct fat_ctx *fc, const Pstore__WriterLease *req, const char *peer,
		     bool release, Pstore__WriterLeaseReply **out)
{
	struct writer_op op = {.fc = fc, .req = req, .peer = peer, .release = release};
	int rc;

	*out = NULL;
	if (!req->volume || !fat_volume_name_ok(req->volume))
		return fat_fail(fc, -EINVAL, "bad volume name");
	if (req->session.len != WRITER_SESSION_LEN)
		return fat_fail(fc, -EINVAL, "writer session must be %d bytes",
				WRITER_SESSION_LEN);
	op.out = malloc(sizeof(*op.out));
	if (!op.out)
		return -ENOMEM;
	pstore__writer_lease_reply__init(op.out);
	op.out->holder = NULL;
	rc = fat_store_run(fc->store, false, writer_fn, &op);
	if (rc == 0 && !op.out->holder && !(op.out->holder = fat_strdup("")))
		rc = -ENOMEM;
	if (rc < 0) {
		fat_rec_free(op.out);
		return rc;
	}
	if (!release)
		log_debug("writer lease of %s: %s, token %" PRIu64, req->volume, peer,
			  op.out->token);
	*out = op.out;
	return 0;
}

int fat_writer_check(struct fat_ctx *fc, struct fat_txn *t, const Pstore__VolumeInfo *vi,
		     uint64_t token)
{
	Pstore__FatWriter *w = NULL;
	struct fat_key k;
	int rc;

	key_writer(&k, vi->id.data);
	rc = fat_rec_get(t, &k, &pstore__fat_writer__descriptor, (ProtobufCMessage **)&w);
	if (rc == -ENOENT)
		return token ? fat_fail(fc, -ESTALE,
					"writer token %" PRIu64
					" is stale: volume %s has no writer lease",
					token, vi->name)
			     : 0;
	if (rc < 0)
		return fat_fail(fc, rc, "cannot read the writer lease");
	if (token == 0) {
		bool alive = w->expiry_ms > fc->clock();

		rc = alive ? fat_fail(fc, -EBUSY,
				      "volume %s has a live writer (%s): commits need "
				      "its writer token",
				      vi->name, w->holder ? w->holder : "?")
			   : 0;
	} else if (token != w->token) {
		rc = fat_fail(fc, -ESTALE,
			      "writer token %" PRIu64 " of volume %s is stale "
			      "(another mount took the writer lease)",
			      token, vi->name);
	}
	fat_rec_free(w);
	return rc;
}
