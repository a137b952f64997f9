/*
 * journal.c - the journal of a commit in doubt.  Before the flusher sends a
 * commit that places chunks, the chunks (inode, index, old and new ref) are
 * saved in the local store ("inflight"); the flusher deletes the record in
 * the transaction that records the commit's success.  A record found later
 * (pstorefs died, or the commit's reply was lost) is settled before the next
 * round: the FAT's chunk table says whether the commit's first new chunk is
 * committed (a commit is atomic: one chunk tells for all).  Applied: each
 * chunk record takes its new ref as the flusher would have done; not applied:
 * the marks make the chunks go up again.  No chunk leaks, none is freed twice.
 *
 * The record is raw structs: it never leaves this machine's state directory,
 * and a malformed one is dropped with an error (fsck tells what leaked).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fs.h"

#define INFLIGHT_MAGIC 0x46495350u /* "PSIF" */
#define INFLIGHT_MAX 100000

struct inflight_hdr {
	uint32_t magic, version;
	uint64_t n;
};

/* Step 4 for one chunk: on success (ok) the chunk record takes the new ref
 * unless the chunk was dropped or replaced meanwhile (then the new chunk is
 * garbage to free); the data mark goes unless the chunk changed since the
 * pick.  On failure the mark is just no longer "uploading". */
int journal_finish_one(struct fs_txn *t, const struct journal_ent *e, bool ok)
{
	uint8_t key[17];
	size_t kl = mirror_key_chunk(key, e->ino, e->idx);
	struct fs_mark mk;
	struct fs_chunk c;
	bool same;
	int rc = 0;

	if (ok && !e->lost) {
		rc = meta_chunk_get(t, e->ino, e->idx, &c);
		if (rc < 0 && rc != -ENOENT)
			return rc;
		same = rc == 0 &&
		       ((c.flags & FS_CHUNK_REF)
			    ? e->had_ref && memcmp(c.ref.chunk_id, e->old_id, CHUNK_ID_LEN) == 0
			    : !e->had_ref);
		rc = 0;
		if (same) {
			c.flags |= FS_CHUNK_REF;
			c.ref = e->ref;
			rc = meta_chunk_put(t, e->ino, e->idx, &c, false);
			if (rc == 0)
				repair_note(e->ino, e->idx, &c.ref);
		} else {
			/* dropped or replaced while uploading: the new chunk is
			 * garbage, the mirror key must follow the local state */
			rc = meta_mark(t, FS_MARK_FREED, e->ref.chunk_id, CHUNK_ID_LEN);
			if (rc == 0)
				rc = meta_mark(t, FS_MARK_MIRROR, key, kl);
			if (rc == 0 && e->had_ref)
				rc = meta_mark_del(t, FS_MARK_FREED, e->old_id, CHUNK_ID_LEN);
		}
		if (rc < 0)
			return rc;
	}
	rc = meta_mark_get(t, FS_MARK_DATA, key, kl, &mk);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if ((ok || e->lost) && mk.last_seq == e->last_seq)
		return meta_mark_del(t, FS_MARK_DATA, key, kl);
	if (ok || e->lost)
		mk.first_seq = e->last_seq + 1;
	mk.uploading = 0;
	return meta_mark_set(t, FS_MARK_DATA, key, kl, &mk);
}

/* Journals the chunks about to be committed (before the commit is sent). */
int journal_save(const struct journal_ent *ents, size_t n)
{
	struct inflight_hdr h = {.magic = INFLIGHT_MAGIC, .version = 1};
	size_t len;
	uint8_t *buf;
	struct fs_txn t;
	int rc;

	for (size_t i = 0; i < n; i++)
		h.n += !ents[i].lost;
	if (h.n == 0)
		return 0;
	len = sizeof(h) + h.n * sizeof(struct journal_ent);
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, &h, sizeof(h));
	for (size_t i = 0, k = 0; i < n; i++)
		if (!ents[i].lost)
			memcpy(buf + sizeof(h) + k++ * sizeof(struct journal_ent), &ents[i],
			       sizeof(struct journal_ent));
	rc = meta_begin(fs.meta, true, &t);
	if (rc == 0) {
		rc = meta_put_blob(&t, "inflight", buf, len);
		if (rc == 0)
			rc = meta_commit(&t);
		else
			meta_abort(&t);
	}
	free(buf);
	return rc;
}

/* Is chunk id committed at the FAT?  (The first chunk of the volume's chunk
 * table at or after id.) */
static int fat_has_chunk(const uint8_t *id, bool *has)
{
	Pstore__ListRequest lr = PSTORE__LIST_REQUEST__INIT;
	Pstore__ChunkListReply *cl;
	struct xport_reply rep;
	uint8_t before[CHUNK_ID_LEN];
	int rc;

	memcpy(before, id, CHUNK_ID_LEN);
	for (int i = CHUNK_ID_LEN - 1; i >= 0; i--)
		if (before[i]-- != 0)
			break;
	lr.volume = fs.vol.name;
	lr.after.data = before;
	lr.after.len = CHUNK_ID_LEN;
	lr.limit = 1;
	memset(&rep, 0, sizeof(rep));
	rc = alloc_fat_call(fs.alloc, MSG_CHUNK_LIST, &lr.base,
			    &pstore__chunk_list_reply__descriptor, &rep);
	if (rc < 0)
		return rc;
	cl = (Pstore__ChunkListReply *)rep.msg;
	if (!cl) {
		xport_reply_clear(&rep);
		return -EBADMSG;
	}
	*has = cl->n_chunks > 0 && cl->chunks[0]->chunk_id.len == CHUNK_ID_LEN &&
	       memcmp(cl->chunks[0]->chunk_id.data, id, CHUNK_ID_LEN) == 0;
	xport_reply_clear(&rep);
	return 0;
}

int journal_recover(void)
{
	struct inflight_hdr h;
	const struct journal_ent *ents;
	struct fs_txn t;
	void *buf = NULL;
	size_t len = 0;
	bool applied = false;
	int rc;

	rc = meta_begin(fs.meta, false, &t);
	if (rc < 0)
		return rc;
	rc = meta_get_var(&t, "inflight", &buf, &len);
	meta_abort(&t);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	if (len >= sizeof(h))
		memcpy(&h, buf, sizeof(h));
	if (len < sizeof(h) || h.magic != INFLIGHT_MAGIC || h.version != 1 || h.n == 0 ||
	    h.n > INFLIGHT_MAX || len != sizeof(h) + h.n * sizeof(struct journal_ent)) {
		log_err(
		    "flush: the journal of the last commit is malformed; dropping it (`pstore "
		    "fsck` tells whether chunks leaked)");
		h.n = 0;
	} else {
		/* a commit is atomic: one of its chunks tells for all of them */
		ents = (const struct journal_ent *)((uint8_t *)buf + sizeof(h));
		rc = fat_has_chunk(ents[0].ref.chunk_id, &applied);
		if (rc < 0) {
			log_warn(
			    "flush: cannot ask the FAT whether the last commit was applied: %s",
			    strerror(-rc));
			free(buf);
			return rc;
		}
	}
	rc = meta_begin(fs.meta, true, &t);
	for (uint64_t i = 0; rc == 0 && applied && i < h.n; i++) {
		struct journal_ent e;

		memcpy(&e, (uint8_t *)buf + sizeof(h) + i * sizeof(e), sizeof(e));
		e.lost = 0;
		if (e.ref.n_vendors > CHUNK_MAX_CHAIN)
			continue;
		rc = journal_finish_one(&t, &e, true);
	}
	if (rc == 0)
		rc = meta_del_setting(&t, "inflight");
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
	if (rc == 0 && h.n)
		log_info(
		    "flush: the last commit before the restart (%" PRIu64 " chunks) was %s",
		    h.n,
		    applied ? "applied: local state updated" : "not applied: uploading again");
	free(buf);
	return rc;
}
