/*
 * vendor.h - pstore-vendord: structs and prototypes of the vendor node,
 * grouped by the file that implements them.
 *
 *   config.c   vendord.conf (inih), every value checked
 *   index.c    the LMDB piece index: chunk records, per-lease byte counts,
 *              receipts, persistent statistics, the device table
 *   devices.c  device directories: piece paths, free space, placement
 *   store.c    the piece store: durable put, ranged read, delete, recovery
 *   check.c    checks of a chunk put (chain, capability token), no sockets
 *   workq.c    fixed thread pools fed by bounded queues
 *   server.c   request dispatch (libevent loop thread) and handlers
 *   put.c      MSG_CHUNK_PUT: store locally and forward down the chain
 *   fatlink.c  registration and heartbeats to the FAT servers
 *   dump.c     --dump-index
 *   main.c     command line, signals, start and shutdown
 *
 * Errors are negative errno values throughout.
 */
#ifndef PSTORE_VENDOR_H
#define PSTORE_VENDOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "pstore.pb-c.h"
#include "vindex.pb-c.h"

#define VENDOR_MAX_DEVICES 16
#define VENDOR_MAX_FAT 8
#define VENDOR_PATH_MAX 1024
#define VENDOR_ADDR_MAX 256
#define VENDOR_MAX_WORKERS 256
#define VENDOR_MAX_RECEIPTS 10000
#define VENDOR_FORWARD_TIMEOUT_MS 30000 /* longest wait for the next hop */
#define VENDOR_HOP_MARGIN_MS 500	/* kept back per hop from a put's deadline */

/* ---- config.c ---- */

struct vendor_config {
	uint32_t id;
	char listen[VENDOR_ADDR_MAX];
	char address[VENDOR_ADDR_MAX]; /* advertised; defaults to listen */
	char zone[64];
	char devices[VENDOR_MAX_DEVICES][VENDOR_PATH_MAX];
	size_t n_devices;
	uint64_t capacity; /* per device; 0 = the filesystem's size */
	char index[VENDOR_PATH_MAX];
	char fat[VENDOR_MAX_FAT][VENDOR_ADDR_MAX];
	size_t n_fat;
	uint32_t heartbeat_ms;
	unsigned workers;
	int log_level;
	uint64_t bandwidth; /* declared bytes/s, 0 = unknown */
	char tls_ca[VENDOR_PATH_MAX];
	char tls_cert[VENDOR_PATH_MAX];
	char tls_key[VENDOR_PATH_MAX];
	char tls_crl[VENDOR_PATH_MAX]; /* [tls] crl; empty = no CRL */
	char user[64];		       /* [vendor] user: run as this user after binding */
	uint64_t queue_bytes;	       /* request data queued for workers/forwarders, at most */
	uint64_t orphan_grace_ms;      /* age before an unconfirmed chunk is asked about */
};

/* Parses and checks path into cfg.  Device directories that do not exist
 * are created.  On error returns -EINVAL (or -errno of the file) with a
 * "file:line: key: what is wrong" message in err. */
int vendor_config_load(const char *path, struct vendor_config *cfg, char *err, size_t errlen);

/* ---- index.c ---- */

struct vendor_index;

int vindex_open(const char *dir, bool readonly, struct vendor_index **out);
void vindex_close(struct vendor_index *ix);

/* Maps device paths to stable ids (indices into the recorded device table),
 * appending unknown paths to the table. */
int vindex_devices_map(struct vendor_index *ix, char (*paths)[VENDOR_PATH_MAX], size_t n,
		       uint32_t *ids);
/* The recorded device table; *out freed with pstore__vdevice_table__free_unpacked
 * (NULL if none was recorded). */
int vindex_device_table(struct vendor_index *ix, Pstore__VDeviceTable **out);

/* -ENOENT if the chunk is not stored.  Free with pstore__vchunk__free_unpacked. */
int vindex_chunk_get(struct vendor_index *ix, const uint8_t id[CHUNK_ID_LEN],
		     Pstore__VChunk **out);

struct vindex_commit {
	uint64_t byte_limit;   /* of the lease; 0 = do not check nor count */
	uint64_t lease_expiry; /* recorded with the lease */
	bool from_vendor;      /* for the received-bytes statistics */
};
/* Records rec under id in one durable transaction, together with the
 * lease's byte count and the statistics.  Returns 1 (and writes nothing but
 * the received-bytes statistics) if the id is already stored with the same
 * digest, -EEXIST if with another digest, -E2BIG if the lease would exceed
 * its byte limit. */
int vindex_chunk_commit(struct vendor_index *ix, const uint8_t id[CHUNK_ID_LEN],
			const Pstore__VChunk *rec, const struct vindex_commit *c);
/* Removes the record; *old (if not NULL) receives it.  -ENOENT if absent. */
int vindex_chunk_delete(struct vendor_index *ix, const uint8_t id[CHUNK_ID_LEN],
			Pstore__VChunk **old);
/* Calls fn for every chunk record (read transaction); fn returns non-zero
 * to stop, which is returned. */
int vindex_chunk_foreach(struct vendor_index *ix,
			 int (*fn)(const uint8_t *id, const Pstore__VChunk *rec, void *arg),
			 void *arg);

/* Bytes accepted so far under (owner, lease_id). */
int vindex_lease_bytes(struct vendor_index *ix, const uint8_t owner[CHUNK_OWNER_LEN],
		       uint64_t lease_id, uint64_t *bytes);
/* Drops lease records that expired before before_ms; returns how many. */
int vindex_lease_prune(struct vendor_index *ix, uint64_t before_ms);

/* Adds payload bytes received to the statistics (a resend of a stored chunk). */
int vindex_count_received(struct vendor_index *ix, bool from_vendor, uint64_t bytes);
/* Adds receipts (n entries) from peer to the per-chunk counters and bumps
 * the receipt statistics.  Only receipts for chunks stored here and (owner
 * not NULL) belonging to that volume count; the others are skipped.  One
 * record per stored chunk, removed with it: storage stays bounded by the
 * chunks.  *recorded counts the receipts taken. */
int vindex_receipts_add(struct vendor_index *ix, Pstore__Receipt *const *r, size_t n,
			const char *peer, const uint8_t *owner, size_t *recorded);
/* The receipt counters of a chunk; -ENOENT if none.  Free with
 * pstore__vreceipt_agg__free_unpacked. */
int vindex_receipts_get(struct vendor_index *ix, const uint8_t id[CHUNK_ID_LEN],
			Pstore__VReceiptAgg **out);
/* Marks a chunk record confirmed (orphan GC: the FAT has it committed here). */
int vindex_chunk_confirm(struct vendor_index *ix, const uint8_t id[CHUNK_ID_LEN]);
/* Like vindex_chunk_foreach, for at most limit records after the id `after`
 * (exclusive; NULL = from the first).  *wrapped is true when the scan hit the
 * end of the table (the next scan should start from the first again). */
int vindex_chunk_scan(struct vendor_index *ix, const uint8_t *after, size_t limit,
		      int (*fn)(const uint8_t *id, const Pstore__VChunk *rec, void *arg),
		      void *arg, bool *wrapped);
int vindex_stats(struct vendor_index *ix, Pstore__VStats *out);

/* ---- devices.c ---- */

struct vendor_device {
	char path[VENDOR_PATH_MAX];
	uint32_t id;	       /* stable id in the index's device table */
	uint64_t cfg_capacity; /* 0 = the filesystem's size */
	uint64_t used;	       /* bytes of pieces stored here; store lock */
};

/* "<dev>/<2 hex>/<chunk hex>.<i>"; -ENAMETOOLONG if it does not fit. */
int vdev_piece_path(const struct vendor_device *d, const uint8_t id[CHUNK_ID_LEN], unsigned i,
		    char *out, size_t outlen);
/* Capacity and free bytes of a device: statvfs, capped by the configured
 * capacity minus the bytes stored there. */
int vdev_space(const struct vendor_device *d, uint64_t *capacity, uint64_t *free_bytes);
/* Splits len bytes into p pieces: at 4 KiB-aligned offsets with the last
 * piece taking the rest when every piece gets at least 64 KiB (so that the
 * pieces are written with O_DIRECT straight from an aligned buffer), else
 * evenly (the first len % p are one byte longer). */
void vdev_split(uint64_t len, unsigned p, uint64_t *lengths, uint64_t *offsets);
/* Chooses a device (index into devs) for each of p pieces: piece i on
 * (start + i) % n, the first start from `start` on whose devices all pieces
 * fit (free[] per device).  -ENOSPC if none. */
int vdev_place(const uint64_t *free_bytes, size_t n, unsigned start, const uint64_t *lengths,
	       unsigned p, unsigned *dev_of_piece);

/* ---- store.c ---- */

struct vendor_store;

/* Opens the index, maps the devices and removes orphans of interrupted
 * writes (temporary files, piece files without an index record). */
int vstore_open(char (*devices)[VENDOR_PATH_MAX], size_t n_devices, uint64_t capacity,
		const char *index_dir, struct vendor_store **out);
void vstore_close(struct vendor_store *st);
struct vendor_index *vstore_index(struct vendor_store *st);

struct vstore_put {
	const struct chunk_hdr *hdr;
	const uint8_t *hdr_bytes; /* CHUNK_HDR_LEN bytes as received */
	const uint8_t *payload;	  /* hdr->stored_len bytes */
	size_t payload_room;	  /* zero bytes readable after the payload */
	bool from_vendor;
	bool digest_verified; /* the caller already checked the digest */
	uint64_t byte_limit;  /* of the lease (0: unchecked) */
	uint64_t lease_expiry;
};
/* Stores durably.  0 when stored now, 1 when already stored with the same
 * digest (nothing rewritten), -EBADMSG (digest mismatch), -EEXIST (same id,
 * other digest), -E2BIG (lease byte limit), -ENOSPC, -EIO... */
int vstore_put(struct vendor_store *st, const struct vstore_put *p);

/* Reads [off, off+len) of the stored payload (len 0 = to the end) into a
 * malloc'd *buf, after `headroom` bytes left for the caller (so a reply's
 * header goes in front without a copy); *n is the payload bytes read; hdr
 * receives the stored header.  When owner is not NULL and differs from the
 * stored owner, -ENOENT.  -ERANGE if off > stored_len.  A whole read is
 * checked against the digest (-EIO if a piece is corrupt). */
int vstore_read(struct vendor_store *st, const uint8_t id[CHUNK_ID_LEN], const uint8_t *owner,
		uint64_t off, uint64_t len, size_t headroom, uint8_t hdr[CHUNK_HDR_LEN],
		uint8_t **buf, size_t *n, uint64_t *stored_len);
/* Same; verify false skips the digest check of a whole read, for a caller
 * that verifies the chunk itself (ChunkGet.client_verifies). */
int vstore_read_ex(struct vendor_store *st, const uint8_t id[CHUNK_ID_LEN],
		   const uint8_t *owner, uint64_t off, uint64_t len, size_t headroom,
		   bool verify, uint8_t hdr[CHUNK_HDR_LEN], uint8_t **buf, size_t *n,
		   uint64_t *stored_len);
/* Removes the index record, then the pieces.  -ENOENT if not stored. */
int vstore_delete(struct vendor_store *st, const uint8_t id[CHUNK_ID_LEN]);
/* Same, only if the stored chunk belongs to volume owner (16 bytes; NULL =
 * any): -EPERM (nothing removed) when it belongs to another volume. */
int vstore_delete_owned(struct vendor_store *st, const uint8_t id[CHUNK_ID_LEN],
			const uint8_t *owner);
/* Orphan removal (done by vstore_open; exposed for tests).  *removed counts files. */
int vstore_recover(struct vendor_store *st, unsigned *removed);

struct vstore_devinfo {
	char path[VENDOR_PATH_MAX];
	uint64_t capacity;
	uint64_t free_bytes;
};
/* Fills up to max entries; returns the count or -errno. */
int vstore_devices(struct vendor_store *st, struct vstore_devinfo *out, size_t max);

/* ---- check.c ---- */

/* Role and id from a certificate CN "<role>:<id>": 0 or -EINVAL. */
int vcheck_peer(const char *cn, char *role, size_t rolelen, const char **id);
/* The chain of a put against its header: this vendor (self) must be in the
 * header's chain at position k, and put's chain must list exactly
 * hdr.chain[k..] in order (so put->chain[0] is self); every hop has a
 * plausible address and a token.  -EACCES or -EINVAL with a message. */
int vcheck_chain(const Pstore__ChunkPut *put, const struct chunk_hdr *h, uint32_t self,
		 char *err, size_t errlen);
/* The capability of chain[0]: signature by key, vendor == self, owner and
 * lease of the header, not expired at now_wall_ms, and accepted +
 * stored_len within the byte limit.  *tok receives the token.  -EAGAIN (no
 * key yet), -EACCES, -E2BIG, -EBADMSG, with a message. */
int vcheck_token(const struct cap_key *key, const void *tok, size_t toklen,
		 const struct chunk_hdr *h, uint32_t self, uint64_t accepted,
		 uint64_t now_wall_ms, struct cap_token *out, char *err, size_t errlen);

/* Is v in the header's chain after self?  Only those may a forwarded
 * reply report as stored or failed (never self, nor hops before it). */
bool vcheck_downstream(const struct chunk_hdr *h, uint32_t self, uint32_t v);
/* How long to wait for the next hop of a put whose sender waits
 * deadline_ms (0: unknown, VENDOR_FORWARD_TIMEOUT_MS): that less a margin
 * for finishing here; 0 when too little is left to forward at all. */
uint32_t vcheck_forward_budget(uint32_t deadline_ms);

/* ---- readauth.c ---- */

struct vendord;
/* May peer read the chunk g asks for?  admin: yes; client: with a valid
 * read capability for g->owner and itself; nobody else.  0, -EACCES or
 * -EAGAIN (no FAT key yet), with a message in err. */
int vread_authorize(struct vendord *vd, const char *peer, const Pstore__ChunkGet *g,
		    uint64_t now_wall_ms, char *err, size_t errlen);
/* A read capability presented by a client: signed by the FAT, given to
 * peer, not expired; *volume receives the volume it is for.  0, -EACCES or
 * -EAGAIN, with a message. */
int vread_cap_check(struct vendord *vd, const char *peer, const ProtobufCBinaryData *tok,
		    uint64_t now_wall_ms, uint8_t volume[CHUNK_OWNER_LEN], char *err,
		    size_t errlen);

/* ---- workq.c ---- */

struct vworkq;
/* fn runs on a worker; cancelled is true when the queue is being freed
 * before the task could run (fn must still release arg). */
typedef void (*vworkq_fn)(void *arg, bool cancelled);
struct vworkq *vworkq_new(const char *name, unsigned threads, size_t max_queued);
/* -EAGAIN when the queue is full, -ESHUTDOWN when stopping. */
int vworkq_push(struct vworkq *q, vworkq_fn fn, void *arg);
/* Cancels queued tasks, waits for running ones, joins the threads. */
void vworkq_free(struct vworkq *q);

/* ---- server.c, put.c ---- */

struct event_base;
struct xport_req;
struct xport_tls;
struct xport_pool;
struct xport_server;
struct vendor_fatlink;

struct vendord {
	const struct vendor_config *cfg;
	struct vendor_store *store;
	struct event_base *base;
	struct xport_tls *tls_server;
	struct xport_tls *tls_client;
	struct xport_pool *pool;
	struct xport_server *srv;
	struct vworkq *workers;	   /* disk I/O */
	struct vworkq *forwarders; /* blocking calls down the chain */
	pthread_rwlock_t key_lock;
	struct cap_key *fat_key; /* key_lock; NULL until registered */
	uint8_t fat_pub[32];	 /* key_lock */
	struct vendor_fatlink *fatlink;
	struct vprobe *probe;  /* UDP path-probe responder (probe.c); NULL if none */
	uint64_t queued_bytes; /* __atomic: data of admitted requests not yet done */
};

/* The libevent handler given to xport_server_new (arg = struct vendord). */
void vserver_handle(struct xport_req *req, void *arg);
/* MSG_CHUNK_PUT, on a worker thread; replies and frees req, and gives
 * `charged` bytes back to the queue budget once the put (with its forward)
 * is finished. */
void vput_handle(struct vendord *vd, struct xport_req *req, uint64_t charged);
/* The byte budget of queued requests (cfg->queue_bytes): admits n bytes
 * (true) unless that would exceed it while other requests are queued. */
bool vendord_queue_admit(struct vendord *vd, uint64_t n);
void vendord_queue_done(struct vendord *vd, uint64_t n);
/* Installs the FAT public key learnt from a register/heartbeat reply. */
int vendord_set_fat_key(struct vendord *vd, const uint8_t *pub, size_t len);

/* ---- fatlink.c ---- */

/* Starts the registration/heartbeat thread. */
int vfatlink_start(struct vendord *vd, struct vendor_fatlink **out);
/* Stops it (bounded by the current call's timeout). */
void vfatlink_stop(struct vendor_fatlink *fl);
/* Remembers a chunk deleted (for the next hello's `deleted`). */
void vfatlink_note_deleted(struct vendor_fatlink *fl, const uint8_t id[CHUNK_ID_LEN]);

/* ---- probe.c ---- */

struct vprobe;
/* Opens the UDP responder on the listen address (the TLS server's port) and
 * adds it to vd->base.  0 or -errno (logged). */
int vprobe_start(struct vendord *vd, struct vprobe **out);
void vprobe_stop(struct vprobe *p);
/* The 16-byte cookie a peer at peer_addr ("ip:port") must put in its UDP
 * probes.  0 or -EINVAL. */
int vprobe_cookie(const struct vprobe *p, const char *peer_addr, uint8_t out[16]);
uint16_t vprobe_port(const struct vprobe *p);

/* ---- dump.c ---- */

/* Prints the index at dir read-only; json selects the JSON document.
 * Returns 0 or -errno. */
int vdump_index(const char *dir, bool json);

#endif
