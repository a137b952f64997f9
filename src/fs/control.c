/*
 * control.c - the mount's control socket (docs/ARCHITECTURE.md, "Mount
 * control socket"): /run/pstore/ctl-<32 hex of SHA-256(mountpoint)>.sock,
 * mode 0600, one JSON request line -> one JSON reply line, then close.
 *
 *   {"op":"locate","ino":N}  chunks of a file: committed ones with their
 *                            vendors, dirty ones with "dirty":true
 *   {"op":"sync"}            waits until everything is committed to the FAT
 *                            (optional "timeout_ms")
 *   {"op":"status"}          volume, flusher counters, pending changes
 *   {"op":"cache_drop"}      evicts every clean chunk from the cache
 *   {"op":"fsck"}            syncs, then checks FAT mirror, chunk table and
 *                            local state (fsck.c)
 *
 * One listener thread; each connection gets a short-lived detached thread so
 * that a long sync does not hold up status or locate.
 */
#include <errno.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common.h"
#include "fs.h"

#define CTL_DIR "/run/pstore"
#define CTL_LINE_MAX 4096
#define CTL_IO_TIMEOUT_S 10

static int ctl_fd = -1;
static char ctl_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
static pthread_t ctl_thread;
static _Atomic bool ctl_stopping;
static bool ctl_running;
static _Atomic int ctl_conns; /* connection threads running */

static json_object *reply_error(const char *msg)
{
	json_object *r = json_object_new_object();

	json_object_object_add(r, "ok", json_object_new_boolean(0));
	json_object_object_add(r, "error", json_object_new_string(msg));
	return r;
}

static json_object *do_locate(json_object *req)
{
	json_object *jino, *r, *chunks;
	struct fs_inode *in = NULL;
	struct fs_txn t;
	uint64_t ino, nchunks;
	int rc;

	if (!json_object_object_get_ex(req, "ino", &jino) ||
	    !json_object_is_type(jino, json_type_int))
		return reply_error("locate needs \"ino\" (an inode number)");
	ino = (uint64_t)json_object_get_uint64(jino);
	in = malloc(sizeof(*in));
	if (!in)
		return reply_error("out of memory");
	rc = meta_begin(fs.meta, false, &t);
	if (rc < 0) {
		free(in);
		return reply_error(strerror(-rc));
	}
	rc = meta_inode_get(&t, ino, in);
	if (rc < 0) {
		meta_abort(&t);
		free(in);
		return reply_error(rc == -ENOENT ? "no such inode" : strerror(-rc));
	}
	r = json_object_new_object();
	chunks = json_object_new_array();
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "size", json_object_new_uint64(in->size));
	json_object_object_add(r, "chunk_size", json_object_new_int64(fs.chunk_size));
	nchunks =
	    (in->mode & S_IFMT) == S_IFREG ? (in->size + fs.chunk_size - 1) / fs.chunk_size : 0;
	for (uint64_t i = 0; i < nchunks; i++) {
		struct fs_chunk c;
		struct fs_mark mk;
		uint8_t key[17];
		size_t kl = mirror_key_chunk(key, ino, i);
		bool dirty = meta_mark_get(&t, FS_MARK_DATA, key, kl, &mk) == 0;
		bool has = meta_chunk_get(&t, ino, i, &c) == 0;
		json_object *jc;

		if (!dirty && !(has && (c.flags & FS_CHUNK_REF)))
			continue; /* a hole */
		jc = json_object_new_object();
		json_object_object_add(jc, "index", json_object_new_uint64(i));
		if (dirty) {
			json_object_object_add(jc, "dirty", json_object_new_boolean(1));
		} else {
			char hex[2 * CHUNK_ID_LEN + 1];
			json_object *jv = json_object_new_array();

			chunk_id_hex(c.ref.chunk_id, hex);
			json_object_object_add(jc, "chunk_id", json_object_new_string(hex));
			json_object_object_add(jc, "stored",
					       json_object_new_uint64(c.ref.stored_len));
			json_object_object_add(jc, "raw",
					       json_object_new_uint64(c.ref.raw_len));
			for (unsigned v = 0; v < c.ref.n_vendors && v < CHUNK_MAX_CHAIN; v++)
				json_object_array_add(jv,
						      json_object_new_int64(c.ref.vendors[v]));
			json_object_object_add(jc, "vendors", jv);
			json_object_object_add(
			    jc, "present",
			    json_object_new_boolean(!!(c.flags & FS_CHUNK_PRESENT)));
		}
		json_object_array_add(chunks, jc);
	}
	meta_abort(&t);
	free(in);
	json_object_object_add(r, "chunks", chunks);
	return r;
}

static json_object *do_sync(json_object *req)
{
	json_object *jt, *r;
	unsigned timeout = fs.cfg.sync_timeout_ms;
	int rc;

	if (json_object_object_get_ex(req, "timeout_ms", &jt) &&
	    json_object_is_type(jt, json_type_int)) {
		int64_t v = json_object_get_int64(jt);

		if (v > 0 && v < 24 * 3600 * 1000)
			timeout = (unsigned)v;
	}
	rc = flush_barrier(timeout);
	if (rc < 0)
		return reply_error(rc == -ETIMEDOUT ? "timed out waiting for the FAT commit"
						    : "commit to the FAT failed (see the log)");
	r = json_object_new_object();
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	return r;
}

static json_object *do_status(void)
{
	struct flush_status st;
	json_object *r = json_object_new_object();

	flush_get_status(&st);
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "volume", json_object_new_string(fs.vol.name));
	json_object_object_add(r, "mountpoint", json_object_new_string(fs.mountpoint));
	json_object_object_add(r, "chunk_size", json_object_new_int64(fs.chunk_size));
	json_object_object_add(r, "copies", json_object_new_int64(fs.vol.copies));
	json_object_object_add(r, "pending", json_object_new_uint64(st.pending_marks));
	json_object_object_add(r, "rounds", json_object_new_uint64(st.rounds));
	json_object_object_add(r, "commits", json_object_new_uint64(st.commits));
	json_object_object_add(r, "failures", json_object_new_uint64(st.failures));
	json_object_object_add(r, "chunks_uploaded",
			       json_object_new_uint64(st.chunks_uploaded));
	json_object_object_add(r, "bytes_uploaded", json_object_new_uint64(st.bytes_uploaded));
	json_object_object_add(r, "cached_bytes", json_object_new_uint64(evict_cached_bytes()));
	json_object_object_add(r, "readonly", json_object_new_boolean(fs.cfg.readonly));
	json_object_object_add(
	    r, "last_error",
	    json_object_new_string(st.last_error ? strerror(-st.last_error) : ""));
	return r;
}

/* {"op":"cache_drop"}: evicts every clean chunk (evict.c). */
static json_object *do_cache_drop(void)
{
	uint64_t chunks = 0, bytes = 0;
	json_object *r;
	int rc = evict_run(true, &chunks, &bytes);

	ra_slots_drop(); /* chunks the readahead holds in memory go too */
	if (rc < 0)
		return reply_error(strerror(-rc));
	r = json_object_new_object();
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	json_object_object_add(r, "chunks", json_object_new_uint64(chunks));
	json_object_object_add(r, "bytes", json_object_new_uint64(bytes));
	json_object_object_add(r, "cached", json_object_new_uint64(evict_cached_bytes()));
	return r;
}

/* {"op":"probe"[,"pin":ID]}: path probing's view of the vendors
 * (docs/probing.md); "pin" sends reads to one vendor (0: normal). */
static json_object *do_probe(json_object *req)
{
	json_object *jpin, *r;
	int64_t pin;

	if (json_object_object_get_ex(req, "pin", &jpin)) {
		pin = json_object_get_int64(jpin);
		if (!json_object_is_type(jpin, json_type_int) || pin < 0 || pin > UINT32_MAX)
			return reply_error("pin wants a vendor id (0: none)");
		alloc_probe_pin(fs.alloc, (uint32_t)pin);
	}
	r = alloc_probe_report(fs.alloc);
	if (!r)
		return reply_error("path probing is off ([probe] enabled = false)");
	json_object_object_add(r, "ok", json_object_new_boolean(1));
	return r;
}

static json_object *handle(const char *line)
{
	json_object *req = json_tokener_parse(line), *jop, *r;
	const char *op;

	if (!req || !json_object_is_type(req, json_type_object)) {
		if (req)
			json_object_put(req);
		return reply_error("request is not a JSON object");
	}
	if (!json_object_object_get_ex(req, "op", &jop) ||
	    !json_object_is_type(jop, json_type_string)) {
		json_object_put(req);
		return reply_error("request needs \"op\"");
	}
	op = json_object_get_string(jop);
	if (strcmp(op, "locate") == 0)
		r = do_locate(req);
	else if (strcmp(op, "sync") == 0)
		r = do_sync(req);
	else if (strcmp(op, "status") == 0)
		r = do_status();
	else if (strcmp(op, "cache_drop") == 0)
		r = do_cache_drop();
	else if (strcmp(op, "fsck") == 0)
		r = fsck_run(true);
	else if (strcmp(op, "probe") == 0)
		r = do_probe(req);
	else
		r = reply_error("unknown op (locate, sync, status, cache_drop, fsck, probe)");
	json_object_put(req);
	return r;
}

static void *conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char line[CTL_LINE_MAX + 1];
	size_t len = 0;
	json_object *r;
	const char *out;

	while (len < CTL_LINE_MAX) {
		ssize_t got = read(fd, line + len, CTL_LINE_MAX - len);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		len += (size_t)got;
		if (memchr(line, '\n', len))
			break;
	}
	line[len] = '\0';
	if (len == 0 || !memchr(line, '\n', len + 1)) {
		if (len >= CTL_LINE_MAX)
			r = reply_error("request line too long");
		else if (len == 0)
			goto out;
		else
			r = handle(line); /* peer closed its side without a newline */
	} else {
		*strchr(line, '\n') = '\0';
		r = handle(line);
	}
	out = json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN);
	if (write_full(fd, out, strlen(out)) == 0)
		(void)write_full(fd, "\n", 1);
	json_object_put(r);
out:
	close(fd);
	atomic_fetch_sub(&ctl_conns, 1);
	return NULL;
}

static void *ctl_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&ctl_stopping)) {
		struct pollfd p = {.fd = ctl_fd, .events = POLLIN};
		struct timeval tv = {.tv_sec = CTL_IO_TIMEOUT_S};
		pthread_attr_t at;
		pthread_t th;
		int c;

		if (poll(&p, 1, 500) <= 0)
			continue;
		c = accept4(ctl_fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		atomic_fetch_add(&ctl_conns, 1);
		if (pthread_create(&th, &at, conn_main, (void *)(intptr_t)c) != 0) {
			atomic_fetch_sub(&ctl_conns, 1);
			close(c);
		}
		pthread_attr_destroy(&at);
	}
	return NULL;
}

int control_start(const char *mountpoint)
{
	uint8_t md[32];
	unsigned mdlen = 0;
	char hex[33];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int rc;

	if (!EVP_Digest(mountpoint, strlen(mountpoint), md, &mdlen, EVP_sha256(), NULL) ||
	    mdlen != 32) {
		log_err("control: SHA-256 failed");
		return -EIO;
	}
	hex_encode(md, 16, hex);
	if (mkdir(CTL_DIR, 0755) < 0 && errno != EEXIST) {
		rc = -errno;
		log_err("control: creating %s: %s", CTL_DIR, strerror(errno));
		return rc;
	}
	snprintf(ctl_path, sizeof(ctl_path), "%s/ctl-%s.sock", CTL_DIR, hex);
	strcpy(sa.sun_path, ctl_path);
	ctl_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl_fd < 0)
		return -errno;
	unlink(ctl_path); /* left over by a pstorefs that died on this mountpoint */
	if (bind(ctl_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(ctl_path, 0600) < 0 ||
	    listen(ctl_fd, 16) < 0) {
		rc = -errno;
		log_err("control: socket %s: %s", ctl_path, strerror(errno));
		close(ctl_fd);
		ctl_fd = -1;
		return rc;
	}
	atomic_store(&ctl_stopping, false);
	rc = pthread_create(&ctl_thread, NULL, ctl_main, NULL);
	if (rc) {
		close(ctl_fd);
		ctl_fd = -1;
		unlink(ctl_path);
		return -rc;
	}
	pthread_setname_np(ctl_thread, "pstorefs-ctl");
	ctl_running = true;
	log_info("control socket %s", ctl_path);
	return 0;
}

void control_stop(void)
{
	if (!ctl_running)
		return;
	atomic_store(&ctl_stopping, true);
	pthread_join(ctl_thread, NULL);
	/* a connection still in a sync returns once the flusher has stopped */
	for (int i = 0; i < 100 && atomic_load(&ctl_conns) > 0; i++)
		usleep(50000);
	close(ctl_fd);
	ctl_fd = -1;
	unlink(ctl_path);
	ctl_running = false;
}
