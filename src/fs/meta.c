/*
 * meta.c - pstorefs' local store (LMDB under the state directory): the
 * namespace (inodes, dirents), chunk records (committed ref + whether the
 * cache file holds the data), and the journal of what the FAT does not have
 * yet: dirty marks on mirror keys, on chunks to upload, and chunk ids to
 * free.  Every change is one LMDB transaction, so a crash of pstorefs leaves
 * either the old or the new state.
 *
 * Databases:
 *   ns      mirror keys 'i'/'d'/'x' -> mirror-encoded inode/dirent/xattr
 *           (mirror.c)
 *   chunks  'c' keys -> flags(u32) + mirror-encoded ref (when FS_CHUNK_REF)
 *   dirty   mirror keys -> struct fs_mark (the key must be re-sent)
 *   dchunks 'c' keys -> struct fs_mark (the chunk's data must be uploaded)
 *   freed   chunk id -> struct fs_mark (to free with the next commit)
 *   meta    settings: volume_id, chunk_size, next_ino
 *
 * Sequence numbers order changes: the flusher clears a mark only if nothing
 * changed it since it was read, and a barrier waits for every mark older
 * than itself.  The counter is in memory, restarted above the largest one
 * found at open.
 *
 * Durability: MDB_NOSYNC.  A commit writes its pages into the page cache
 * and returns (no fsync: a metadata change costs microseconds, not a disk
 * flush), which survives a crash of pstorefs.  A crash of the machine could
 * leave the store torn, so it must be detected: while the store is open, a
 * marker file "unsynced" holding the kernel's boot id is on disk (written
 * and fsynced before the environment opens, removed after the final
 * mdb_env_sync of a clean close).  An open that finds the marker of another
 * boot knows the machine stopped with unsynced changes: it removes the
 * store, which is then rebuilt from the FAT (main.c: an empty store), and
 * what fsync acknowledged is there (docs/semantics.md).  Without a readable
 * boot id the store falls back to MDB_NOMETASYNC (a data fsync per commit).
 *
 * Under MDB_NOSYNC the map is also writable (MDB_WRITEMAP): a commit changes
 * pages in place instead of pwrite()ing a copy of every dirty page (a
 * setattr-sized transaction went from ~30 us to ~7 us, an unlink from ~60 us
 * to ~9 us).  The file is then sized to the map (sparse), and a write into
 * a hole of it that the disk cannot back would be a SIGBUS instead of an
 * error: so every write transaction first makes sure that the file has
 * blocks reserved (fallocate) META_ROOM bytes past its last used page, and
 * fails with ENOSPC when it cannot.  Only a single transaction growing the
 * store by more than META_ROOM (a rebuild of a large volume) can outrun it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "fs.h"

enum { DB_NS, DB_CHUNKS, DB_DIRTY, DB_DCHUNKS, DB_FREED, DB_META, DB_N };
static const char *const db_names[DB_N] = {"ns", "chunks", "dirty", "dchunks", "freed", "meta"};

struct fs_meta {
	MDB_env *env;
	MDB_dbi dbi[DB_N];
	_Atomic uint64_t seq;
	char *dir;
	bool nosync; /* MDB_NOSYNC under the "unsynced" marker */
	/* MDB_WRITEMAP (with nosync): the data file and where its reserved
	 * blocks end (the LMDB writer lock) */
	bool writemap;
	int fd;
	size_t psize;
	uint64_t reserved;
};

#define META_ROOM (UINT64_C(8) << 20)

/* ---- machine-crash detection for MDB_NOSYNC ---- */

#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"
#define BOOT_ID_LEN 36
#define UNSYNCED_NAME "unsynced"

/* Reads a boot id (36 characters) from path; 0 or -errno. */
static int read_boot_id(const char *path, char id[BOOT_ID_LEN + 1])
{
	char buf[64];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < BOOT_ID_LEN)
		return -EINVAL;
	memcpy(id, buf, BOOT_ID_LEN);
	id[BOOT_ID_LEN] = '\0';
	return 0;
}

static int drop_store(const char *dir)
{
	for (const char *const *f = (const char *const[]){"data.mdb", "lock.mdb", NULL}; *f;
	     f++) {
		char path[4200];

		snprintf(path, sizeof(path), "%s/%s", dir, *f);
		if (unlink(path) < 0 && errno != ENOENT) {
			log_err("removing %s: %s", path, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

/* Before the environment opens: a marker of another boot means the machine
 * stopped while the store had unsynced commits, so the store is dropped
 * (rebuilt from the FAT).  Then the marker of this boot is made durable.
 * Returns 1 when NOSYNC may be used, 0 when not (no boot id), or -errno. */
static int unsynced_begin(const char *dir)
{
	char path[4200], cur[BOOT_ID_LEN + 1], old[BOOT_ID_LEN + 1];
	int fd, rc;

	if (read_boot_id(BOOT_ID_PATH, cur) < 0) {
		log_warn("local store: no boot id (%s): every commit is synced", BOOT_ID_PATH);
		return 0;
	}
	snprintf(path, sizeof(path), "%s/" UNSYNCED_NAME, dir);
	rc = read_boot_id(path, old);
	if (rc == 0 && strcmp(old, cur) != 0) {
		log_warn(
		    "local store %s: the machine stopped while it had unsynced changes; "
		    "dropping it to rebuild from the FAT (what fsync acknowledged is there; "
		    "changes never synced are lost)",
		    dir);
		rc = drop_store(dir);
		if (rc < 0)
			return rc;
	} else if (rc < 0 && rc != -ENOENT) {
		/* a torn marker: which boot wrote it is unknown, so assume another */
		log_warn("local store %s: unreadable %s marker; dropping the store to rebuild "
			 "from the FAT",
			 dir, UNSYNCED_NAME);
		rc = drop_store(dir);
		if (rc < 0)
			return rc;
		rc = -ENOENT; /* write a marker of this boot below */
	}
	if (rc == 0 && strcmp(old, cur) == 0)
		return 1; /* a restart after a crash of pstorefs: the page cache kept it all */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	cur[BOOT_ID_LEN] = '\n';
	rc = write_full(fd, cur, BOOT_ID_LEN + 1);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0)
		rc = fsync_dir(dir);
	if (rc < 0) {
		log_err("local store: writing %s: %s", path, strerror(-rc));
		return rc;
	}
	return 1;
}

/* After a clean close's final sync: the store on disk is whole. */
static void unsynced_end(const char *dir)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/" UNSYNCED_NAME, dir);
	if (unlink(path) == 0)
		(void)fsync_dir(dir);
}

static int mdb_err(int rc, const char *what)
{
	if (rc == 0)
		return 0;
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc == MDB_MAP_FULL || rc == MDB_TXN_FULL)
		return -ENOSPC;
	if (rc > 0)
		return -rc;
	log_err("lmdb: %s: %s", what, mdb_strerror(rc));
	return -EIO;
}

static MDB_dbi mark_dbi(struct fs_meta *m, int db)
{
	return m->dbi[db == FS_MARK_MIRROR ? DB_DIRTY
		      : db == FS_MARK_DATA ? DB_DCHUNKS
					   : DB_FREED];
}

static int scan_max_seq(struct fs_meta *m, MDB_txn *txn, uint64_t *max)
{
	for (int db = 0; db < FS_MARK_N; db++) {
		MDB_cursor *cur;
		MDB_val k, v;
		MDB_cursor_op op = MDB_FIRST;
		int rc = mdb_cursor_open(txn, mark_dbi(m, db), &cur);

		if (rc)
			return mdb_err(rc, "cursor");
		while (mdb_cursor_get(cur, &k, &v, op) == 0) {
			struct fs_mark mk;

			op = MDB_NEXT;

			if (v.mv_size == sizeof(mk)) {
				memcpy(&mk, v.mv_data, sizeof(mk));
				*max = MAX(*max, mk.last_seq);
			}
		}
		mdb_cursor_close(cur);
	}
	return 0;
}

int meta_open(const char *dir, struct fs_meta **out)
{
	struct fs_meta *m = calloc(1, sizeof(*m));
	MDB_txn *txn = NULL;
	uint64_t max = 0;
	int rc;

	if (!m)
		return -ENOMEM;
	rc = mkdir_p(dir, 0700);
	if (rc < 0) {
		log_err("state directory %s: %s", dir, strerror(-rc));
		free(m);
		return rc;
	}
	rc = unsynced_begin(dir);
	if (rc < 0) {
		free(m);
		return rc;
	}
	m->nosync = rc == 1;
	m->dir = strdup(dir);
	if (!m->dir) {
		free(m);
		return -ENOMEM;
	}
	rc = mdb_env_create(&m->env);
	if (rc)
		goto fail;
	mdb_env_set_maxdbs(m->env, DB_N);
	/* Sparse on Linux: the map only reserves address space. */
	rc = mdb_env_set_mapsize(m->env, (size_t)64 << 30);
	if (rc)
		goto fail;
	m->writemap = m->nosync;
	rc = mdb_env_open(m->env, dir,
			  MDB_NOTLS | (m->nosync ? MDB_NOSYNC | MDB_WRITEMAP : MDB_NOMETASYNC),
			  0600);
	if (rc)
		goto fail;
	if (m->writemap) {
		MDB_stat st;

		rc = mdb_env_get_fd(m->env, &m->fd);
		if (rc == 0)
			rc = mdb_env_stat(m->env, &st);
		if (rc)
			goto fail;
		m->psize = st.ms_psize;
	}
	rc = mdb_txn_begin(m->env, NULL, 0, &txn);
	if (rc)
		goto fail;
	for (int i = 0; i < DB_N; i++) {
		rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &m->dbi[i]);
		if (rc)
			goto fail;
	}
	rc = scan_max_seq(m, txn, &max);
	if (rc < 0) {
		mdb_txn_abort(txn);
		meta_close(m);
		return rc;
	}
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if (rc)
		goto fail;
	atomic_store(&m->seq, max + 1);
	*out = m;
	return 0;
fail:
	log_err("lmdb: opening %s: %s", dir, mdb_strerror(rc));
	if (txn)
		mdb_txn_abort(txn);
	meta_close(m);
	return rc > 0 ? -rc : -EIO;
}

void meta_close(struct fs_meta *m)
{
	if (!m)
		return;
	if (m->env) {
		int rc = mdb_env_sync(m->env, 1);

		mdb_env_close(m->env);
		if (rc == 0 && m->nosync)
			unsynced_end(m->dir);
		else if (rc)
			log_err("lmdb: final sync: %s", mdb_strerror(rc));
	}
	free(m->dir);
	free(m);
}

uint64_t meta_seq_next(struct fs_meta *m)
{
	return atomic_fetch_add(&m->seq, 1);
}

bool meta_nosync(const struct fs_meta *m)
{
	return m->nosync;
}

/* Writable map: blocks reserved META_ROOM past the last used page, so that
 * the transaction's new pages cannot meet a full disk as a SIGBUS.  Called
 * with the writer lock held (in a write transaction). */
static int reserve_room(struct fs_meta *m)
{
	MDB_envinfo info;
	uint64_t need;

	if (!m->writemap || mdb_env_info(m->env, &info) != 0)
		return 0;
	need = ((uint64_t)info.me_last_pgno + 1) * m->psize + META_ROOM;
	if (need <= m->reserved)
		return 0;
	need += META_ROOM; /* a step: not one fallocate per transaction */
	if (fallocate(m->fd, FALLOC_FL_KEEP_SIZE, (off_t)m->reserved,
		      (off_t)(need - m->reserved)) < 0) {
		int err = errno;

		if (err == EOPNOTSUPP) {
			m->writemap = false; /* nothing to reserve with: plain holes */
			return 0;
		}
		log_err("lmdb: reserving %" PRIu64 " bytes for the store: %s", need,
			strerror(err));
		return err == ENOSPC ? -ENOSPC : -EIO;
	}
	m->reserved = need;
	return 0;
}

int meta_begin(struct fs_meta *m, bool write, struct fs_txn *t)
{
	int rc;

	t->m = m;
	t->write = write;
	rc = mdb_err(mdb_txn_begin(m->env, NULL, write ? 0 : MDB_RDONLY, &t->txn), "begin");
	if (rc == 0 && write) {
		rc = reserve_room(m);
		if (rc < 0) {
			mdb_txn_abort(t->txn);
			t->txn = NULL;
		}
	}
	return rc;
}

int meta_commit(struct fs_txn *t)
{
	int rc = mdb_txn_commit(t->txn);

	t->txn = NULL;
	return mdb_err(rc, "commit");
}

void meta_abort(struct fs_txn *t)
{
	if (t->txn)
		mdb_txn_abort(t->txn);
	t->txn = NULL;
}

bool meta_is_empty(struct fs_meta *m)
{
	struct fs_txn t;
	struct fs_inode *in = malloc(sizeof(*in));
	bool empty = true;

	if (!in)
		return false;
	if (meta_begin(m, false, &t) == 0) {
		empty = meta_inode_get(&t, FS_ROOT_INO, in) == -ENOENT;
		meta_abort(&t);
	}
	free(in);
	return empty;
}

void fs_time_now(struct fs_time *t)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	t->sec = ts.tv_sec;
	t->nsec = (uint32_t)ts.tv_nsec;
}

/* ---- settings ---- */

int meta_get_blob(struct fs_txn *t, const char *name, void *buf, size_t len)
{
	MDB_val k = {strlen(name), (void *)name}, v;
	int rc = mdb_get(t->txn, t->m->dbi[DB_META], &k, &v);

	if (rc)
		return mdb_err(rc, "get setting");
	if (v.mv_size != len)
		return -EBADMSG;
	memcpy(buf, v.mv_data, len);
	return 0;
}

int meta_put_blob(struct fs_txn *t, const char *name, const void *buf, size_t len)
{
	MDB_val k = {strlen(name), (void *)name}, v = {len, (void *)buf};

	return mdb_err(mdb_put(t->txn, t->m->dbi[DB_META], &k, &v, 0), "put setting");
}

int meta_get_u64(struct fs_txn *t, const char *name, uint64_t *v)
{
	return meta_get_blob(t, name, v, sizeof(*v));
}

int meta_put_u64(struct fs_txn *t, const char *name, uint64_t v)
{
	return meta_put_blob(t, name, &v, sizeof(v));
}

int meta_alloc_ino(struct fs_txn *t, uint64_t *ino)
{
	uint64_t next;
	int rc = meta_get_u64(t, "next_ino", &next);

	if (rc == -ENOENT)
		next = FS_ROOT_INO + 1;
	else if (rc < 0)
		return rc;
	if (next < FS_ROOT_INO + 1)
		next = FS_ROOT_INO + 1;
	*ino = next;
	return meta_put_u64(t, "next_ino", next + 1);
}

/* ---- marks ---- */

int meta_mark_get(struct fs_txn *t, int db, const uint8_t *key, size_t klen, struct fs_mark *mk)
{
	MDB_val k = {klen, (void *)key}, v;
	int rc = mdb_get(t->txn, mark_dbi(t->m, db), &k, &v);

	if (rc)
		return mdb_err(rc, "get mark");
	if (v.mv_size != sizeof(*mk))
		return -EBADMSG;
	memcpy(mk, v.mv_data, sizeof(*mk));
	return 0;
}

int meta_mark_set(struct fs_txn *t, int db, const uint8_t *key, size_t klen,
		  const struct fs_mark *mk)
{
	MDB_val k = {klen, (void *)key}, v = {sizeof(*mk), (void *)mk};

	return mdb_err(mdb_put(t->txn, mark_dbi(t->m, db), &k, &v, 0), "put mark");
}

int meta_mark(struct fs_txn *t, int db, const uint8_t *key, size_t klen)
{
	struct fs_mark mk;
	uint64_t seq = meta_seq_next(t->m);
	int rc = meta_mark_get(t, db, key, klen, &mk);

	if (rc == -ENOENT || rc == -EBADMSG)
		mk.first_seq = seq;
	else if (rc < 0)
		return rc;
	mk.last_seq = seq;
	mk.uploading = 0;
	return meta_mark_set(t, db, key, klen, &mk);
}

int meta_mark_del(struct fs_txn *t, int db, const uint8_t *key, size_t klen)
{
	MDB_val k = {klen, (void *)key};
	int rc = mdb_del(t->txn, mark_dbi(t->m, db), &k, NULL);

	return rc == MDB_NOTFOUND ? 0 : mdb_err(rc, "del mark");
}

int meta_mark_iter(struct fs_txn *t, int db, meta_mark_cb cb, void *arg)
{
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_cursor_op op = MDB_FIRST;
	int rc = mdb_cursor_open(t->txn, mark_dbi(t->m, db), &cur);

	if (rc)
		return mdb_err(rc, "cursor");
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		struct fs_mark mk;

		op = MDB_NEXT;
		if (v.mv_size != sizeof(mk))
			continue;
		memcpy(&mk, v.mv_data, sizeof(mk));
		rc = cb(k.mv_data, k.mv_size, &mk, arg);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND || rc == 1)
		return 0;
	return rc < 0 ? rc : mdb_err(rc, "iterate marks");
}

int meta_marks_min_seq(struct fs_txn *t, uint64_t *min_seq, uint64_t *count)
{
	*min_seq = UINT64_MAX;
	*count = 0;
	for (int db = 0; db < FS_MARK_N; db++) {
		MDB_cursor *cur;
		MDB_val k, v;
		MDB_cursor_op op = MDB_FIRST;
		int rc = mdb_cursor_open(t->txn, mark_dbi(t->m, db), &cur);

		if (rc)
			return mdb_err(rc, "cursor");
		while (mdb_cursor_get(cur, &k, &v, op) == 0) {
			struct fs_mark mk;

			op = MDB_NEXT;
			if (v.mv_size != sizeof(mk))
				continue;
			memcpy(&mk, v.mv_data, sizeof(mk));
			*min_seq = MIN(*min_seq, mk.first_seq);
			(*count)++;
		}
		mdb_cursor_close(cur);
	}
	return 0;
}

/* ---- inodes and dirents ---- */

int meta_inode_get(struct fs_txn *t, uint64_t ino, struct fs_inode *in)
{
	uint8_t key[9];
	MDB_val k = {mirror_key_inode(key, ino), key}, v;
	int rc = mdb_get(t->txn, t->m->dbi[DB_NS], &k, &v);

	if (rc)
		return mdb_err(rc, "get inode");
	rc = mirror_inode_decode(v.mv_data, v.mv_size, ino, in);
	if (rc < 0)
		log_err("local store: inode %" PRIu64 " record is corrupt", ino);
	return rc < 0 ? -EIO : 0;
}

int meta_inode_put(struct fs_txn *t, const struct fs_inode *in, bool mark)
{
	uint8_t key[9], val[MIRROR_INODE_MAX];
	MDB_val k = {mirror_key_inode(key, in->ino), key};
	MDB_val v = {mirror_inode_encode(in, val), val};
	int rc = mdb_err(mdb_put(t->txn, t->m->dbi[DB_NS], &k, &v, 0), "put inode");

	if (rc == 0 && mark)
		rc = meta_mark(t, FS_MARK_MIRROR, key, k.mv_size);
	return rc;
}

int meta_dirent_get(struct fs_txn *t, uint64_t parent, const char *name,
		    struct fs_dirent_val *d)
{
	uint8_t key[FS_KEY_MAX];
	size_t nlen = strlen(name);
	MDB_val k, v;
	int rc;

	if (nlen > FS_NAME_MAX)
		return -ENAMETOOLONG;
	k.mv_size = mirror_key_dirent(key, parent, name, nlen);
	k.mv_data = key;
	rc = mdb_get(t->txn, t->m->dbi[DB_NS], &k, &v);
	if (rc)
		return mdb_err(rc, "get dirent");
	return mirror_dirent_decode(v.mv_data, v.mv_size, d) < 0 ? -EIO : 0;
}

int meta_dirent_put(struct fs_txn *t, uint64_t parent, const char *name,
		    const struct fs_dirent_val *d, bool mark)
{
	uint8_t key[FS_KEY_MAX], val[MIRROR_DIRENT_LEN];
	size_t nlen = strlen(name);
	MDB_val k, v = {mirror_dirent_encode(d, val), val};
	int rc;

	if (nlen > FS_NAME_MAX)
		return -ENAMETOOLONG;
	k.mv_size = mirror_key_dirent(key, parent, name, nlen);
	k.mv_data = key;
	rc = mdb_err(mdb_put(t->txn, t->m->dbi[DB_NS], &k, &v, 0), "put dirent");
	if (rc == 0 && mark)
		rc = meta_mark(t, FS_MARK_MIRROR, key, k.mv_size);
	return rc;
}

int meta_dirent_del(struct fs_txn *t, uint64_t parent, const char *name)
{
	uint8_t key[FS_KEY_MAX];
	size_t nlen = strlen(name);
	MDB_val k;
	int rc;

	if (nlen > FS_NAME_MAX)
		return -ENAMETOOLONG;
	k.mv_size = mirror_key_dirent(key, parent, name, nlen);
	k.mv_data = key;
	rc = mdb_err(mdb_del(t->txn, t->m->dbi[DB_NS], &k, NULL), "del dirent");
	if (rc == 0)
		rc = meta_mark(t, FS_MARK_MIRROR, key, k.mv_size);
	return rc;
}

int meta_dir_list(struct fs_txn *t, uint64_t dir, meta_dirent_cb cb, void *arg)
{
	uint8_t start[9];
	MDB_cursor *cur;
	MDB_val k = {mirror_key_dirent(start, dir, "", 0), start}, v;
	MDB_cursor_op op = MDB_SET_RANGE;
	int rc = mdb_cursor_open(t->txn, t->m->dbi[DB_NS], &cur);

	if (rc)
		return mdb_err(rc, "cursor");
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		struct fs_dirent_val d;

		op = MDB_NEXT;
		if (k.mv_size < 10 || memcmp(k.mv_data, start, 9) != 0)
			break;
		if (mirror_dirent_decode(v.mv_data, v.mv_size, &d) < 0)
			continue;
		rc = cb((const char *)k.mv_data + 9, k.mv_size - 9, &d, arg);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND || rc == 0 || rc == 1)
		return 0;
	return rc < 0 ? rc : mdb_err(rc, "list dir");
}

static int dir_nonempty_cb(const char *name, size_t nlen, const struct fs_dirent_val *d,
			   void *arg)
{
	(void)name, (void)nlen, (void)d;
	*(bool *)arg = true;
	return 1;
}

int meta_dir_empty(struct fs_txn *t, uint64_t dir)
{
	bool any = false;
	int rc = meta_dir_list(t, dir, dir_nonempty_cb, &any);

	return rc < 0 ? rc : any ? -ENOTEMPTY : 0;
}

int meta_inode_iter(struct fs_txn *t, meta_inode_cb cb, void *arg)
{
	uint8_t start[1] = {FS_KEY_INODE};
	MDB_cursor *cur;
	MDB_val k = {1, start}, v;
	MDB_cursor_op op = MDB_SET_RANGE;
	struct fs_inode *in = malloc(sizeof(*in));
	uint64_t a, b;
	const char *nm;
	size_t nl;
	int rc;

	if (!in)
		return -ENOMEM;
	rc = mdb_cursor_open(t->txn, t->m->dbi[DB_NS], &cur);
	if (rc) {
		free(in);
		return mdb_err(rc, "cursor");
	}
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		if (mirror_key_parse(k.mv_data, k.mv_size, &a, &b, &nm, &nl) != FS_KEY_INODE)
			break;
		if (mirror_inode_decode(v.mv_data, v.mv_size, a, in) < 0)
			continue;
		rc = cb(in, arg);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	free(in);
	if (rc == MDB_NOTFOUND || rc == 0 || rc == 1)
		return 0;
	return rc < 0 ? rc : mdb_err(rc, "iterate inodes");
}

/* ---- chunks ---- */

static int chunk_decode_local(const MDB_val *v, struct fs_chunk *c)
{
	if (v->mv_size < 4)
		return -EIO;
	memcpy(&c->flags, v->mv_data, 4);
	memset(&c->ref, 0, sizeof(c->ref));
	if (c->flags & FS_CHUNK_REF)
		return mirror_chunk_decode((const uint8_t *)v->mv_data + 4, v->mv_size - 4,
					   &c->ref) < 0
			   ? -EIO
			   : 0;
	return v->mv_size == 4 ? 0 : -EIO;
}

int meta_chunk_get(struct fs_txn *t, uint64_t ino, uint64_t idx, struct fs_chunk *c)
{
	uint8_t key[17];
	MDB_val k = {mirror_key_chunk(key, ino, idx), key}, v;
	int rc = mdb_get(t->txn, t->m->dbi[DB_CHUNKS], &k, &v);

	if (rc)
		return mdb_err(rc, "get chunk");
	return chunk_decode_local(&v, c);
}

int meta_chunk_put(struct fs_txn *t, uint64_t ino, uint64_t idx, const struct fs_chunk *c,
		   bool mark_mirror)
{
	uint8_t key[17], val[4 + MIRROR_CHUNK_MAX];
	size_t vlen = 4;
	MDB_val k = {mirror_key_chunk(key, ino, idx), key}, v;
	int rc;

	memcpy(val, &c->flags, 4);
	if (c->flags & FS_CHUNK_REF)
		vlen += mirror_chunk_encode(&c->ref, val + 4);
	v.mv_size = vlen;
	v.mv_data = val;
	rc = mdb_err(mdb_put(t->txn, t->m->dbi[DB_CHUNKS], &k, &v, 0), "put chunk");
	if (rc == 0 && mark_mirror)
		rc = meta_mark(t, FS_MARK_MIRROR, key, k.mv_size);
	return rc;
}

int meta_chunk_dirty(struct fs_txn *t, uint64_t ino, uint64_t idx)
{
	uint8_t key[17];

	return meta_mark(t, FS_MARK_DATA, key, mirror_key_chunk(key, ino, idx));
}

int meta_chunks_drop(struct fs_txn *t, uint64_t ino, uint64_t from)
{
	uint8_t start[17];
	MDB_cursor *cur;
	MDB_val k = {mirror_key_chunk(start, ino, from), start}, v;
	int rc = mdb_cursor_open(t->txn, t->m->dbi[DB_CHUNKS], &cur);

	if (rc)
		return mdb_err(rc, "cursor");
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)) == 0) {
		struct fs_chunk c;
		uint8_t key[17];

		if (k.mv_size != 17 || memcmp(k.mv_data, start, 9) != 0)
			break;
		memcpy(key, k.mv_data, 17);
		if (chunk_decode_local(&v, &c) == 0 && (c.flags & FS_CHUNK_REF)) {
			rc = meta_mark(t, FS_MARK_FREED, c.ref.chunk_id, CHUNK_ID_LEN);
			if (rc == 0)
				rc = meta_mark(t, FS_MARK_MIRROR, key, 17);
			if (rc < 0)
				goto out;
		}
		rc = meta_mark_del(t, FS_MARK_DATA, key, 17);
		if (rc < 0)
			goto out;
		rc = mdb_cursor_del(cur, 0);
		if (rc) {
			rc = mdb_err(rc, "del chunk");
			goto out;
		}
		k.mv_size = 17;
		k.mv_data = start;
	}
	rc = rc == MDB_NOTFOUND || rc == 0 ? 0 : mdb_err(rc, "drop chunks");
out:
	mdb_cursor_close(cur);
	return rc;
}

int meta_chunk_drop(struct fs_txn *t, uint64_t ino, uint64_t idx)
{
	uint8_t key[17];
	MDB_val k = {mirror_key_chunk(key, ino, idx), key}, v;
	struct fs_chunk c;
	int rc = mdb_get(t->txn, t->m->dbi[DB_CHUNKS], &k, &v);

	if (rc == MDB_NOTFOUND)
		return meta_mark_del(t, FS_MARK_DATA, key, 17);
	if (rc)
		return mdb_err(rc, "get chunk");
	if (chunk_decode_local(&v, &c) == 0 && (c.flags & FS_CHUNK_REF)) {
		rc = meta_mark(t, FS_MARK_FREED, c.ref.chunk_id, CHUNK_ID_LEN);
		if (rc == 0)
			rc = meta_mark(t, FS_MARK_MIRROR, key, 17);
		if (rc < 0)
			return rc;
	}
	rc = meta_mark_del(t, FS_MARK_DATA, key, 17);
	if (rc < 0)
		return rc;
	return mdb_err(mdb_del(t->txn, t->m->dbi[DB_CHUNKS], &k, NULL), "del chunk");
}

/* ---- extended attributes: 'x' ino name -> mirror_xattr_encode(value) ---- */

int meta_xattr_get(struct fs_txn *t, uint64_t ino, const char *name, void *buf, size_t cap,
		   size_t *len)
{
	uint8_t key[FS_KEY_MAX];
	size_t nlen = strlen(name);
	const uint8_t *val;
	MDB_val k, v;
	int rc;

	if (nlen == 0 || nlen > FS_XATTR_NAME_MAX)
		return nlen ? -ERANGE : -EINVAL;
	k.mv_size = mirror_key_xattr(key, ino, name, nlen);
	k.mv_data = key;
	rc = mdb_get(t->txn, t->m->dbi[DB_NS], &k, &v);
	if (rc == MDB_NOTFOUND)
		return -ENODATA;
	if (rc)
		return mdb_err(rc, "get xattr");
	if (mirror_xattr_decode(v.mv_data, v.mv_size, &val, len) < 0)
		return -EIO;
	if (buf && cap) {
		if (cap < *len)
			return -ERANGE;
		memcpy(buf, val, *len);
	}
	return 0;
}

int meta_xattr_put(struct fs_txn *t, uint64_t ino, const char *name, const void *val,
		   size_t len, bool mark)
{
	uint8_t key[FS_KEY_MAX];
	size_t nlen = strlen(name);
	MDB_val k, v;
	uint8_t *enc;
	int rc;

	if (nlen == 0 || nlen > FS_XATTR_NAME_MAX)
		return nlen ? -ERANGE : -EINVAL;
	if (len > FS_XATTR_SIZE_MAX)
		return -E2BIG;
	enc = malloc(len + 1);
	if (!enc)
		return -ENOMEM;
	k.mv_size = mirror_key_xattr(key, ino, name, nlen);
	k.mv_data = key;
	v.mv_size = mirror_xattr_encode(val, len, enc);
	v.mv_data = enc;
	rc = mdb_err(mdb_put(t->txn, t->m->dbi[DB_NS], &k, &v, 0), "put xattr");
	free(enc);
	if (rc == 0 && mark)
		rc = meta_mark(t, FS_MARK_MIRROR, key, k.mv_size);
	return rc;
}

int meta_xattr_del(struct fs_txn *t, uint64_t ino, const char *name)
{
	uint8_t key[FS_KEY_MAX];
	size_t nlen = strlen(name);
	MDB_val k;
	int rc;

	if (nlen == 0 || nlen > FS_XATTR_NAME_MAX)
		return nlen ? -ERANGE : -EINVAL;
	k.mv_size = mirror_key_xattr(key, ino, name, nlen);
	k.mv_data = key;
	rc = mdb_del(t->txn, t->m->dbi[DB_NS], &k, NULL);
	if (rc == MDB_NOTFOUND)
		return -ENODATA;
	if (rc)
		return mdb_err(rc, "del xattr");
	return meta_mark(t, FS_MARK_MIRROR, key, k.mv_size);
}

int meta_xattr_list(struct fs_txn *t, uint64_t ino, meta_xattr_cb cb, void *arg)
{
	uint8_t start[9];
	MDB_cursor *cur;
	MDB_val k = {mirror_key_xattr(start, ino, "", 0), start}, v;
	MDB_cursor_op op = MDB_SET_RANGE;
	int rc = mdb_cursor_open(t->txn, t->m->dbi[DB_NS], &cur);

	if (rc)
		return mdb_err(rc, "cursor");
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		const uint8_t *val;
		size_t vlen;

		op = MDB_NEXT;
		if (k.mv_size < 10 || memcmp(k.mv_data, start, 9) != 0)
			break;
		if (mirror_xattr_decode(v.mv_data, v.mv_size, &val, &vlen) < 0)
			continue;
		rc = cb((const char *)k.mv_data + 9, k.mv_size - 9, vlen, arg);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND || rc == 0 || rc == 1)
		return 0;
	return rc < 0 ? rc : mdb_err(rc, "list xattrs");
}

/* Deletes every xattr of ino (the inode goes), marking the mirror keys. */
static int xattrs_drop(struct fs_txn *t, uint64_t ino)
{
	uint8_t start[9];
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(t->txn, t->m->dbi[DB_NS], &cur);

	if (rc)
		return mdb_err(rc, "cursor");
	mirror_key_xattr(start, ino, "", 0);
	for (;;) {
		uint8_t key[FS_KEY_MAX];
		size_t klen;

		k.mv_size = 9;
		k.mv_data = start;
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
		if (rc || k.mv_size < 10 || k.mv_size > FS_KEY_MAX ||
		    memcmp(k.mv_data, start, 9))
			break;
		klen = k.mv_size;
		memcpy(key, k.mv_data, klen);
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
		rc = meta_mark(t, FS_MARK_MIRROR, key, klen);
		if (rc < 0)
			goto out;
	}
	rc = rc == MDB_NOTFOUND || rc == 0 ? 0 : mdb_err(rc, "drop xattrs");
out:
	mdb_cursor_close(cur);
	return rc;
}

int meta_ns_raw(struct fs_txn *t, const uint8_t *key, size_t klen, uint8_t **val, size_t *vlen)
{
	MDB_val k = {klen, (void *)key}, v;
	int rc = mdb_get(t->txn, t->m->dbi[DB_NS], &k, &v);

	*val = NULL;
	*vlen = 0;
	if (rc)
		return mdb_err(rc, "get");
	*val = malloc(v.mv_size ? v.mv_size : 1);
	if (!*val)
		return -ENOMEM;
	memcpy(*val, v.mv_data, v.mv_size);
	*vlen = v.mv_size;
	return 0;
}

int meta_inode_purge(struct fs_txn *t, uint64_t ino)
{
	uint8_t key[9];
	MDB_val k = {mirror_key_inode(key, ino), key};
	int rc = meta_chunks_drop(t, ino, 0);

	if (rc == 0)
		rc = xattrs_drop(t, ino);

	if (rc < 0)
		return rc;
	rc = mdb_del(t->txn, t->m->dbi[DB_NS], &k, NULL);
	if (rc && rc != MDB_NOTFOUND)
		return mdb_err(rc, "del inode");
	return meta_mark(t, FS_MARK_MIRROR, key, 9);
}

int meta_dirents_check(struct fs_txn *t, uint64_t *dropped)
{
	uint8_t start[1] = {FS_KEY_DIRENT};
	MDB_cursor *cur;
	MDB_val k = {1, start}, v;
	MDB_cursor_op op = MDB_SET_RANGE;
	int rc = mdb_cursor_open(t->txn, t->m->dbi[DB_NS], &cur);

	*dropped = 0;
	if (rc)
		return mdb_err(rc, "cursor");
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		struct fs_dirent_val d;
		uint8_t ikey[9];
		MDB_val ik = {9, ikey}, iv;
		bool bad;

		/* after mdb_cursor_del, MDB_NEXT yields the entry that followed */
		op = MDB_NEXT;
		if (k.mv_size < 1 || ((uint8_t *)k.mv_data)[0] != FS_KEY_DIRENT)
			break;
		bad = k.mv_size < 10 || mirror_dirent_decode(v.mv_data, v.mv_size, &d) < 0;
		if (!bad) {
			mirror_key_inode(ikey, d.ino);
			bad = mdb_get(t->txn, t->m->dbi[DB_NS], &ik, &iv) != 0;
		}
		if (!bad) {
			ikey[0] = FS_KEY_INODE;
			memcpy(ikey + 1, (uint8_t *)k.mv_data + 1, 8);
			bad = mdb_get(t->txn, t->m->dbi[DB_NS], &ik, &iv) != 0;
		}
		if (bad) {
			rc = mdb_cursor_del(cur, 0);
			if (rc)
				break;
			(*dropped)++;
		}
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || rc == 0 ? 0 : mdb_err(rc, "check dirents");
}

/* ---- recovery after a restart ---- */

struct recover {
	struct fs_txn *t;
	uint64_t *orphans;
	size_t n, cap;
};

static int recover_mark_cb(const uint8_t *key, size_t klen, const struct fs_mark *mk, void *arg)
{
	struct recover *r = arg;
	struct fs_mark m2 = *mk;

	if (!mk->uploading)
		return 0;
	m2.uploading = 0;
	return meta_mark_set(r->t, FS_MARK_DATA, key, klen, &m2);
}

static int recover_inode_cb(const struct fs_inode *in, void *arg)
{
	struct recover *r = arg;

	if (in->nlink != 0 || in->ino == FS_ROOT_INO)
		return 0;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 64;
		uint64_t *o = realloc(r->orphans, cap * sizeof(*o));

		if (!o)
			return -ENOMEM;
		r->orphans = o;
		r->cap = cap;
	}
	r->orphans[r->n++] = in->ino;
	return 0;
}

int meta_recover(struct fs_meta *m, uint64_t **orphans, size_t *n_orphans)
{
	struct fs_txn t;
	struct recover r = {.t = &t};
	int rc = meta_begin(m, true, &t);

	*orphans = NULL;
	*n_orphans = 0;
	if (rc < 0)
		return rc;
	rc = meta_mark_iter(&t, FS_MARK_DATA, recover_mark_cb, &r);
	if (rc == 0)
		rc = meta_inode_iter(&t, recover_inode_cb, &r);
	for (size_t i = 0; rc == 0 && i < r.n; i++)
		rc = meta_inode_purge(&t, r.orphans[i]);
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
	if (rc < 0) {
		free(r.orphans);
		return rc;
	}
	*orphans = r.orphans;
	*n_orphans = r.n;
	return 0;
}

/* ---- whole-store walks (evict.c, fsck.c, refresh.c) ---- */

int meta_chunk_iter(struct fs_txn *t, meta_chunk_cb cb, void *arg)
{
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_cursor_op op = MDB_FIRST;
	int rc = mdb_cursor_open(t->txn, t->m->dbi[DB_CHUNKS], &cur);

	if (rc)
		return mdb_err(rc, "cursor");
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		struct fs_chunk c;
		uint64_t ino, idx;
		const char *nm;
		size_t nl;

		op = MDB_NEXT;
		if (mirror_key_parse(k.mv_data, k.mv_size, &ino, &idx, &nm, &nl) !=
			FS_KEY_CHUNK ||
		    chunk_decode_local(&v, &c) < 0)
			continue;
		rc = cb(ino, idx, &c, arg);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND || rc == 0 || rc == 1)
		return 0;
	return rc < 0 ? rc : mdb_err(rc, "iterate chunks");
}

int meta_ns_iter(struct fs_txn *t, meta_raw_cb cb, void *arg)
{
	MDB_cursor *cur;
	MDB_val k, v;
	MDB_cursor_op op = MDB_FIRST;
	int rc = mdb_cursor_open(t->txn, t->m->dbi[DB_NS], &cur);

	if (rc)
		return mdb_err(rc, "cursor");
	while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0) {
		op = MDB_NEXT;
		rc = cb(k.mv_data, k.mv_size, v.mv_data, v.mv_size, arg);
		if (rc != 0)
			break;
	}
	mdb_cursor_close(cur);
	if (rc == MDB_NOTFOUND || rc == 0 || rc == 1)
		return 0;
	return rc < 0 ? rc : mdb_err(rc, "iterate namespace");
}

int meta_mark_count(struct fs_txn *t, int db, uint64_t *n)
{
	MDB_stat st;
	int rc = mdb_stat(t->txn, mark_dbi(t->m, db), &st);

	if (rc)
		return mdb_err(rc, "stat");
	*n = st.ms_entries;
	return 0;
}

int meta_clear_all(struct fs_txn *t)
{
	static const int dbs[] = {DB_NS, DB_CHUNKS, DB_DIRTY, DB_DCHUNKS, DB_FREED};

	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		int rc = mdb_drop(t->txn, t->m->dbi[dbs[i]], 0);

		if (rc)
			return mdb_err(rc, "clear");
	}
	return 0;
}

int meta_clear_marks(struct fs_txn *t)
{
	static const int dbs[] = {DB_DIRTY, DB_DCHUNKS, DB_FREED};

	for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		int rc = mdb_drop(t->txn, t->m->dbi[dbs[i]], 0);

		if (rc)
			return mdb_err(rc, "clear marks");
	}
	return 0;
}

int meta_del_setting(struct fs_txn *t, const char *name)
{
	MDB_val k = {strlen(name), (void *)name};
	int rc = mdb_del(t->txn, t->m->dbi[DB_META], &k, NULL);

	return rc == MDB_NOTFOUND ? 0 : mdb_err(rc, "del setting");
}

int meta_get_var(struct fs_txn *t, const char *name, void **buf, size_t *len)
{
	MDB_val k = {strlen(name), (void *)name}, v;
	int rc = mdb_get(t->txn, t->m->dbi[DB_META], &k, &v);

	*buf = NULL;
	*len = 0;
	if (rc)
		return mdb_err(rc, "get setting");
	*buf = malloc(v.mv_size ? v.mv_size : 1);
	if (!*buf)
		return -ENOMEM;
	memcpy(*buf, v.mv_data, v.mv_size);
	*len = v.mv_size;
	return 0;
}
