/*
 * store.c - the vendor's piece store.  A chunk's payload is cut into pieces
 * spread over the devices; the pieces are written to temporary names
 * (large ones with O_DIRECT, small ones through the page cache with the
 * writeback started at once), fsynced, renamed and their directories
 * fsynced, and only then is the chunk's record committed to the LMDB index.
 * A chunk exists when its record does: at start every temporary file and
 * every piece file without a record (an interrupted write) is removed, so kill -9 at any moment
 * loses nothing that was acknowledged and leaves nothing half-written.
 *
 * Operations on one chunk id are serialised (the busy set); different
 * chunks proceed in parallel on the worker threads.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "vendor.h"

#define VSTORE_BUSY_WAIT_MS 60000

struct vendor_store {
	struct vendor_index *ix;
	size_t ndev;
	struct vendor_device devs[VENDOR_MAX_DEVICES]; /* .used under lock */
	pthread_mutex_t lock;
	pthread_cond_t released;       /* a busy id was released */
	unsigned next_start;	       /* lock: rotation of the first device */
	uint8_t (*busy)[CHUNK_ID_LEN]; /* lock: ids being written or deleted */
	size_t nbusy, capbusy;
};

struct vendor_index *vstore_index(struct vendor_store *st)
{
	return st->ix;
}

static ssize_t busy_find(struct vendor_store *st, const uint8_t *id)
{
	for (size_t i = 0; i < st->nbusy; i++)
		if (memcmp(st->busy[i], id, CHUNK_ID_LEN) == 0)
			return (ssize_t)i;
	return -1;
}

/* Waits (bounded) until no other thread works on id, then claims it. */
static int busy_acquire(struct vendor_store *st, const uint8_t *id)
{
	struct timespec dl;
	int rc = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += VSTORE_BUSY_WAIT_MS / 1000;
	pthread_mutex_lock(&st->lock);
	while (busy_find(st, id) >= 0) {
		if (pthread_cond_timedwait(&st->released, &st->lock, &dl) == ETIMEDOUT) {
			rc = -EBUSY;
			goto out;
		}
	}
	if (st->nbusy == st->capbusy) {
		size_t nc = st->capbusy ? st->capbusy * 2 : 16;
		void *nb = realloc(st->busy, nc * CHUNK_ID_LEN);

		if (!nb) {
			rc = -ENOMEM;
			goto out;
		}
		st->busy = nb;
		st->capbusy = nc;
	}
	memcpy(st->busy[st->nbusy++], id, CHUNK_ID_LEN);
out:
	pthread_mutex_unlock(&st->lock);
	return rc;
}

static void busy_release(struct vendor_store *st, const uint8_t *id)
{
	ssize_t i;

	pthread_mutex_lock(&st->lock);
	i = busy_find(st, id);
	if (i >= 0) {
		memmove(st->busy[i], st->busy[i + 1],
			(st->nbusy - (size_t)i - 1) * CHUNK_ID_LEN);
		st->nbusy--;
	}
	pthread_cond_broadcast(&st->released);
	pthread_mutex_unlock(&st->lock);
}

static struct vendor_device *dev_by_id(struct vendor_store *st, uint32_t id)
{
	for (size_t i = 0; i < st->ndev; i++)
		if (st->devs[i].id == id)
			return &st->devs[i];
	return NULL;
}

static void used_add(struct vendor_store *st, const Pstore__VChunk *rec, bool add)
{
	pthread_mutex_lock(&st->lock);
	for (size_t i = 0; i < rec->n_pieces; i++) {
		struct vendor_device *d = dev_by_id(st, rec->pieces[i]->device);

		if (!d)
			continue;
		if (add)
			d->used += rec->pieces[i]->length;
		else
			d->used -= MIN(d->used, rec->pieces[i]->length);
	}
	pthread_mutex_unlock(&st->lock);
}

static int used_sum_cb(const uint8_t *id, const Pstore__VChunk *rec, void *arg)
{
	(void)id;
	used_add(arg, rec, true);
	return 0;
}

/* ---- writing ---- */

/* Pieces of at least this many bytes are written with O_DIRECT: on the
 * measured machine the kernel's copy into the page cache
 * (copy_folio_from_iter_atomic) was 40 % of a vendor's CPU during a
 * sequential write, and a vendor does not read back what it just stored.
 * The transport receives a chunk's payload 4 KiB-aligned and zero-padded
 * (xport_server_align_data) and vdev_split cuts large pieces at aligned
 * offsets, so a piece is written straight from the received buffer; any
 * other buffer is copied into an aligned one first.  Smaller pieces, and
 * file systems that refuse O_DIRECT, take the page cache. */
#define PIECE_DIRECT_MIN (64u << 10)
#define PIECE_ALIGN 4096u

/* Creates tmp with len bytes of buf; returns its fd (not yet fsynced) or
 * -errno.  room: zero bytes readable after buf + len. */
static int piece_create(const char *tmp, const uint8_t *buf, size_t len, size_t room)
{
	size_t alen = (len + PIECE_ALIGN - 1) / PIECE_ALIGN * PIECE_ALIGN;
	bool in_place = (uintptr_t)buf % PIECE_ALIGN == 0 && alen - len <= room;
	void *abuf = NULL;
	int fd = -1, rc;

	if (len >= PIECE_DIRECT_MIN &&
	    (in_place || posix_memalign(&abuf, PIECE_ALIGN, alen) == 0)) {
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_DIRECT, 0640);
		if (fd >= 0) {
			if (abuf) {
				memcpy(abuf, buf, len);
				memset((uint8_t *)abuf + len, 0, alen - len);
			}
			rc = write_full(fd, abuf ? abuf : buf, alen);
			if (rc == 0 && alen != len && ftruncate(fd, (off_t)len) < 0)
				rc = -errno;
			free(abuf);
			if (rc == 0)
				return fd;
			close(fd);
			if (rc != -EINVAL)
				return rc;
		} else {
			free(abuf);
			if (errno != EINVAL)
				return -errno;
		}
	}
	/* the page cache: small piece, or O_DIRECT refused (EINVAL) */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	rc = write_full(fd, buf, len);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	/* start the writeback now; the fsync waits for it */
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	return fd;
}

/* Writes the np pieces of a chunk durably under their final names: every
 * piece is written to its temporary name and its writeback started first,
 * then each is fsynced, renamed, and each distinct directory fsynced - the
 * pieces' disk writes overlap instead of one fsync waiting for the next
 * piece's write.  On failure nothing of the chunk is left. */
static int pieces_write(struct vendor_store *st, const uint8_t *id, unsigned np,
			const unsigned *dev_of, const uint8_t *payload, size_t room,
			const uint64_t *offsets, const uint64_t *lengths)
{
	struct piece_names {
		char path[VENDOR_PATH_MAX + 64], tmp[VENDOR_PATH_MAX + 80];
		char dir[VENDOR_PATH_MAX + 64];
	} *pn = calloc(np, sizeof(*pn));
	int fds[CHUNK_MAX_PIECES];
	unsigned opened = 0, renamed = 0;
	int rc = 0;

	if (!pn)
		return -ENOMEM;
	for (unsigned i = 0; i < np && rc == 0; i++) {
		const struct vendor_device *d = &st->devs[dev_of[i]];
		char *slash;
		size_t len;

		rc = vdev_piece_path(d, id, i, pn[i].path, sizeof(pn[i].path));
		if (rc < 0)
			break;
		len = strlen(pn[i].path);
		memcpy(pn[i].tmp, pn[i].path, len);
		memcpy(pn[i].tmp + len, ".tmp", 5);
		memcpy(pn[i].dir, pn[i].path, len + 1);
		slash = strrchr(pn[i].dir, '/');
		*slash = '\0';
		if (mkdir(pn[i].dir, 0750) == 0) {
			rc = fsync_dir(d->path);
			if (rc < 0)
				break;
		} else if (errno != EEXIST) {
			rc = -errno;
			break;
		}
		/* only the last piece ends at the payload's zero padding */
		fds[i] = piece_create(pn[i].tmp, payload + offsets[i], lengths[i],
				      i + 1 == np ? room : 0);
		if (fds[i] < 0) {
			rc = fds[i];
			opened = i + 1; /* its tmp may exist */
			break;
		}
		opened = i + 1;
	}
	for (unsigned i = 0; i < opened; i++) {
		if (fds[i] < 0)
			continue;
		if (rc == 0 && fsync(fds[i]) < 0)
			rc = -errno;
		if (close(fds[i]) < 0 && rc == 0)
			rc = -errno;
	}
	for (unsigned i = 0; i < np && rc == 0; i++) {
		if (rename(pn[i].tmp, pn[i].path) < 0)
			rc = -errno;
		else
			renamed = i + 1;
	}
	for (unsigned i = 0; i < np && rc == 0; i++) {
		bool seen = false;

		for (unsigned j = 0; j < i && !seen; j++)
			seen = strcmp(pn[i].dir, pn[j].dir) == 0;
		if (!seen)
			rc = fsync_dir(pn[i].dir);
	}
	if (rc < 0) {
		for (unsigned i = 0; i < opened; i++) {
			unlink(pn[i].tmp);
			if (i < renamed)
				unlink(pn[i].path);
		}
	}
	free(pn);
	return rc;
}

static void pieces_unlink(struct vendor_store *st, const uint8_t *id, const Pstore__VChunk *rec,
			  size_t n)
{
	char path[VENDOR_PATH_MAX + 64];

	for (size_t i = 0; i < n; i++) {
		struct vendor_device *d = dev_by_id(st, rec->pieces[i]->device);

		if (d && vdev_piece_path(d, id, (unsigned)i, path, sizeof(path)) == 0 &&
		    unlink(path) < 0 && errno != ENOENT)
			log_warn("unlink %s: %s", path, strerror(errno));
	}
}

int vstore_put(struct vendor_store *st, const struct vstore_put *p)
{
	const struct chunk_hdr *h = p->hdr;
	unsigned np = MIN(MAX(h->pieces, 1u), (unsigned)CHUNK_MAX_PIECES);
	uint64_t lengths[CHUNK_MAX_PIECES], offsets[CHUNK_MAX_PIECES];
	uint64_t free_bytes[VENDOR_MAX_DEVICES];
	unsigned dev_of[CHUNK_MAX_PIECES], start;
	Pstore__VPiece pieces[CHUNK_MAX_PIECES], *ppieces[CHUNK_MAX_PIECES];
	Pstore__VChunk rec = PSTORE__VCHUNK__INIT;
	struct vindex_commit c = {.byte_limit = p->byte_limit,
				  .lease_expiry = p->lease_expiry,
				  .from_vendor = p->from_vendor};
	uint8_t digest[CHUNK_DIGEST_LEN];
	Pstore__VChunk *old = NULL;
	size_t written = 0;
	bool reserved = false;
	int rc;

	if (!p->digest_verified) {
		chunk_digest(p->payload, h->stored_len, digest);
		if (memcmp(digest, h->digest, CHUNK_DIGEST_LEN) != 0)
			return -EBADMSG;
	}
	rc = busy_acquire(st, h->chunk_id);
	if (rc < 0)
		return rc;

	rc = vindex_chunk_get(st->ix, h->chunk_id, &old);
	if (rc == 0) {
		/* Same id, digest and owner: a resend.  Another volume's chunk
		 * with this id is not ours to vouch for (nor to share). */
		bool same = old->digest.len == CHUNK_DIGEST_LEN &&
			    memcmp(old->digest.data, h->digest, CHUNK_DIGEST_LEN) == 0 &&
			    old->owner.len == CHUNK_OWNER_LEN &&
			    memcmp(old->owner.data, h->owner, CHUNK_OWNER_LEN) == 0;

		pstore__vchunk__free_unpacked(old, NULL);
		if (!same) {
			rc = -EEXIST;
			goto out;
		}
		rc = vindex_count_received(st->ix, p->from_vendor, h->stored_len);
		rc = rc < 0 ? rc : 1;
		goto out;
	}
	if (rc != -ENOENT)
		goto out;

	vdev_split(h->stored_len, np, lengths, offsets);
	pthread_mutex_lock(&st->lock);
	for (size_t d = 0; d < st->ndev; d++) {
		uint64_t cap;

		if (vdev_space(&st->devs[d], &cap, &free_bytes[d]) < 0)
			free_bytes[d] = 0;
	}
	start = st->next_start++;
	rc = vdev_place(free_bytes, st->ndev, start % (unsigned)st->ndev, lengths, np, dev_of);
	if (rc == 0) {
		for (unsigned i = 0; i < np; i++)
			st->devs[dev_of[i]].used += lengths[i];
		reserved = true;
	}
	pthread_mutex_unlock(&st->lock);
	if (rc < 0)
		goto out;

	for (unsigned i = 0; i < np; i++) {
		pstore__vpiece__init(&pieces[i]);
		pieces[i].device = st->devs[dev_of[i]].id;
		pieces[i].length = lengths[i];
		pieces[i].offset = offsets[i];
		ppieces[i] = &pieces[i];
	}
	rec.owner.data = (uint8_t *)h->owner;
	rec.owner.len = CHUNK_OWNER_LEN;
	rec.lease_id = h->lease_id;
	rec.header.data = (uint8_t *)p->hdr_bytes;
	rec.header.len = CHUNK_HDR_LEN;
	rec.stored_len = h->stored_len;
	rec.raw_len = h->raw_len;
	rec.flags = h->flags;
	rec.digest.data = (uint8_t *)h->digest;
	rec.digest.len = CHUNK_DIGEST_LEN;
	rec.n_pieces = np;
	rec.pieces = ppieces;
	rec.source =
	    p->from_vendor ? PSTORE__VSOURCE__VSOURCE_VENDOR : PSTORE__VSOURCE__VSOURCE_CLIENT;
	rec.time_ms = wall_ms();

	rc = pieces_write(st, h->chunk_id, np, dev_of, p->payload, p->payload_room, offsets,
			  lengths);
	if (rc < 0) {
		log_err("writing the %u pieces of a chunk: %s", np, strerror(-rc));
		goto out;
	}
	written = np;
	rc = vindex_chunk_commit(st->ix, h->chunk_id, &rec, &c);
	if (rc == 0)
		reserved = false; /* the bytes stay counted as used */
out:
	if (rc < 0 && written > 0)
		pieces_unlink(st, h->chunk_id, &rec, written);
	if (reserved) {
		pthread_mutex_lock(&st->lock);
		for (unsigned i = 0; i < np; i++)
			st->devs[dev_of[i]].used -= MIN(st->devs[dev_of[i]].used, lengths[i]);
		pthread_mutex_unlock(&st->lock);
	}
	busy_release(st, h->chunk_id);
	return rc;
}

/* ---- reading, deleting ---- */

static int piece_read(struct vendor_store *st, const uint8_t *id, unsigned i,
		      const Pstore__VPiece *pc, uint8_t *out, uint64_t len, uint64_t off)
{
	struct vendor_device *d = dev_by_id(st, pc->device);
	char path[VENDOR_PATH_MAX + 64];
	int fd, rc;

	if (!d) {
		log_err("piece %u is on device %u, which is not configured", i, pc->device);
		return -EIO;
	}
	rc = vdev_piece_path(d, id, i, path, sizeof(path));
	if (rc < 0)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		log_err("open %s: %s", path, strerror(errno));
		return rc == -ENOENT ? -EIO : rc;
	}
	rc = pread_full(fd, out, len, off);
	close(fd);
	if (rc < 0) {
		log_err("read %s: %s", path, strerror(-rc));
		return -EIO;
	}
	return 0;
}

int vstore_read(struct vendor_store *st, const uint8_t id[CHUNK_ID_LEN], const uint8_t *owner,
		uint64_t off, uint64_t len, size_t headroom, uint8_t hdr[CHUNK_HDR_LEN],
		uint8_t **buf, size_t *n, uint64_t *stored_len)
{
	return vstore_read_ex(st, id, owner, off, len, headroom, true, hdr, buf, n, stored_len);
}

int vstore_read_ex(struct vendor_store *st, const uint8_t id[CHUNK_ID_LEN],
		   const uint8_t *owner, uint64_t off, uint64_t len, size_t headroom,
		   bool verify, uint8_t hdr[CHUNK_HDR_LEN], uint8_t **buf, size_t *n,
		   uint64_t *stored_len)
{
	Pstore__VChunk *rec = NULL;
	uint8_t *mem = NULL, *out;
	uint64_t end, expect = 0;
	int rc = vindex_chunk_get(st->ix, id, &rec);

	if (rc < 0)
		return rc;
	if (owner && (rec->owner.len != CHUNK_OWNER_LEN ||
		      memcmp(rec->owner.data, owner, CHUNK_OWNER_LEN) != 0)) {
		rc = -ENOENT;
		goto out;
	}
	if (rec->header.len != CHUNK_HDR_LEN || rec->stored_len > CHUNK_MAX_STORED) {
		log_err("index: chunk record with a bad header or size");
		rc = -EIO;
		goto out;
	}
	if (off > rec->stored_len) {
		rc = -ERANGE;
		goto out;
	}
	if (len == 0 || len > rec->stored_len - off)
		len = rec->stored_len - off;
	end = off + len;
	if (len > CHUNK_MAX_STORED || headroom > CHUNK_MAX_STORED) {
		rc = -EINVAL;
		goto out;
	}
	mem = malloc(headroom + len + 1);
	if (!mem) {
		rc = -ENOMEM;
		goto out;
	}
	out = mem + headroom;
	for (size_t i = 0; i < rec->n_pieces; i++) {
		const Pstore__VPiece *pc = rec->pieces[i];
		uint64_t ps = pc->offset, pe = pc->offset + pc->length, a, b;

		if (ps != expect || pe < ps || pe > rec->stored_len) {
			log_err("index: chunk record with inconsistent pieces");
			rc = -EIO;
			goto out;
		}
		expect = pe;
		a = MAX(ps, off);
		b = MIN(pe, end);
		if (a >= b)
			continue;
		rc = piece_read(st, id, (unsigned)i, pc, out + (a - off), b - a, a - ps);
		if (rc < 0)
			goto out;
	}
	if (expect != rec->stored_len) {
		log_err("index: pieces do not cover the chunk");
		rc = -EIO;
		goto out;
	}
	if (verify && off == 0 && len == rec->stored_len) {
		uint8_t dg[CHUNK_DIGEST_LEN];

		/* A whole read is verified, so a corrupted piece sends the
		 * client to another replica instead of handing it garbage
		 * (unless the caller verifies the chunk itself). */
		chunk_digest(out, len, dg);
		if (rec->digest.len != CHUNK_DIGEST_LEN ||
		    memcmp(dg, rec->digest.data, CHUNK_DIGEST_LEN) != 0) {
			char hex[2 * CHUNK_ID_LEN + 1];

			chunk_id_hex(id, hex);
			log_err("chunk %s: stored pieces do not match the digest", hex);
			rc = -EIO;
			goto out;
		}
	}
	memcpy(hdr, rec->header.data, CHUNK_HDR_LEN);
	*buf = mem;
	*n = len;
	mem = NULL;
out:
	if (rec && rc != -ENOENT)
		*stored_len = rec->stored_len;
	free(mem);
	pstore__vchunk__free_unpacked(rec, NULL);
	return rc;
}

int vstore_delete(struct vendor_store *st, const uint8_t id[CHUNK_ID_LEN])
{
	return vstore_delete_owned(st, id, NULL);
}

int vstore_delete_owned(struct vendor_store *st, const uint8_t id[CHUNK_ID_LEN],
			const uint8_t *owner)
{
	Pstore__VChunk *rec = NULL;
	int rc = busy_acquire(st, id);

	if (rc < 0)
		return rc;
	if (owner) {
		rc = vindex_chunk_get(st->ix, id, &rec);
		if (rc == 0 && (rec->owner.len != CHUNK_OWNER_LEN ||
				memcmp(rec->owner.data, owner, CHUNK_OWNER_LEN) != 0))
			rc = -EPERM;
		if (rec)
			pstore__vchunk__free_unpacked(rec, NULL);
		rec = NULL;
		if (rc < 0)
			goto out;
	}
	rc = vindex_chunk_delete(st->ix, id, &rec);
	if (rc == 0 && rec) {
		pieces_unlink(st, id, rec, rec->n_pieces);
		used_add(st, rec, false);
		pstore__vchunk__free_unpacked(rec, NULL);
	}
out:
	busy_release(st, id);
	return rc;
}

/* ---- recovery ---- */

/* Is name "<32 hex>.<i>" naming a piece the index knows on device d? */
static bool piece_known(struct vendor_store *st, const struct vendor_device *d,
			const char *name, bool *ours)
{
	uint8_t id[CHUNK_ID_LEN];
	Pstore__VChunk *rec = NULL;
	char *end;
	unsigned long i;
	bool known;
	char hex[2 * CHUNK_ID_LEN + 1];
	int rc;

	*ours = false;
	if (strlen(name) < 2 * CHUNK_ID_LEN + 2 || name[2 * CHUNK_ID_LEN] != '.')
		return false;
	memcpy(hex, name, 2 * CHUNK_ID_LEN);
	hex[2 * CHUNK_ID_LEN] = '\0';
	if (hex_decode(hex, id, CHUNK_ID_LEN) < 0)
		return false;
	errno = 0;
	i = strtoul(name + 2 * CHUNK_ID_LEN + 1, &end, 10);
	if (*end != '\0' || errno || name[2 * CHUNK_ID_LEN + 1] == '\0')
		return false;
	*ours = true;
	rc = vindex_chunk_get(st->ix, id, &rec);
	if (rc == -ENOENT)
		return false;
	if (rc < 0) {
		/* an unreadable record is not a missing one: keep the piece */
		log_warn("index: chunk %s: %s; keeping its piece %s", hex, strerror(-rc), name);
		*ours = false;
		return false;
	}
	known = i < rec->n_pieces && rec->pieces[i]->device == d->id;
	pstore__vchunk__free_unpacked(rec, NULL);
	return known;
}

static int recover_dir(struct vendor_store *st, const struct vendor_device *d, const char *dir,
		       unsigned *removed)
{
	DIR *dp = opendir(dir);
	struct dirent *de;
	char path[VENDOR_PATH_MAX + 300];
	size_t nl;

	if (!dp)
		return -errno;
	while ((de = readdir(dp)) != NULL) {
		bool ours, drop;

		if (de->d_name[0] == '.')
			continue;
		nl = strlen(de->d_name);
		if (nl > 4 && strcmp(de->d_name + nl - 4, ".tmp") == 0) {
			drop = true;
		} else {
			drop = !piece_known(st, d, de->d_name, &ours) && ours;
		}
		if (!drop)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) == 0) {
			(*removed)++;
			log_info("removed %s (left by an interrupted write)", path);
		} else {
			log_warn("unlink %s: %s", path, strerror(errno));
		}
	}
	closedir(dp);
	return 0;
}

int vstore_recover(struct vendor_store *st, unsigned *removed)
{
	*removed = 0;
	for (size_t i = 0; i < st->ndev; i++) {
		const struct vendor_device *d = &st->devs[i];

		for (unsigned b = 0; b < 256; b++) {
			char dir[VENDOR_PATH_MAX + 8];
			int rc;

			snprintf(dir, sizeof(dir), "%s/%02x", d->path, b);
			rc = recover_dir(st, d, dir, removed);
			if (rc < 0 && rc != -ENOENT)
				return rc;
		}
	}
	return 0;
}

/* ---- lifecycle ---- */

int vstore_open(char (*devices)[VENDOR_PATH_MAX], size_t n_devices, uint64_t capacity,
		const char *index_dir, struct vendor_store **out)
{
	struct vendor_store *st;
	uint32_t ids[VENDOR_MAX_DEVICES];
	unsigned removed = 0;
	int rc;

	if (n_devices == 0 || n_devices > VENDOR_MAX_DEVICES)
		return -EINVAL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->released, NULL);
	rc = vindex_open(index_dir, false, &st->ix);
	if (rc < 0) {
		log_err("index %s: %s", index_dir, strerror(-rc));
		goto fail;
	}
	rc = vindex_devices_map(st->ix, devices, n_devices, ids);
	if (rc < 0)
		goto fail;
	st->ndev = n_devices;
	for (size_t i = 0; i < n_devices; i++) {
		snprintf(st->devs[i].path, sizeof(st->devs[i].path), "%s", devices[i]);
		st->devs[i].id = ids[i];
		st->devs[i].cfg_capacity = capacity;
		rc = mkdir_p(devices[i], 0750);
		if (rc < 0) {
			log_err("device %s: %s", devices[i], strerror(-rc));
			goto fail;
		}
	}
	rc = vindex_chunk_foreach(st->ix, used_sum_cb, st);
	if (rc < 0)
		goto fail;
	rc = vstore_recover(st, &removed);
	if (rc < 0) {
		log_err("removing orphan pieces: %s", strerror(-rc));
		goto fail;
	}
	if (removed)
		log_info("removed %u files left by interrupted writes", removed);
	st->next_start = (unsigned)(random_u64() % n_devices);
	*out = st;
	return 0;
fail:
	vstore_close(st);
	return rc;
}

void vstore_close(struct vendor_store *st)
{
	if (!st)
		return;
	vindex_close(st->ix);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->released);
	free(st->busy);
	free(st);
}

int vstore_devices(struct vendor_store *st, struct vstore_devinfo *out, size_t max)
{
	size_t n = MIN(max, st->ndev);

	pthread_mutex_lock(&st->lock);
	for (size_t i = 0; i < n; i++) {
		snprintf(out[i].path, sizeof(out[i].path), "%s", st->devs[i].path);
		if (vdev_space(&st->devs[i], &out[i].capacity, &out[i].free_bytes) < 0) {
			out[i].capacity = 0;
			out[i].free_bytes = 0;
		}
	}
	pthread_mutex_unlock(&st->lock);
	return (int)n;
}
