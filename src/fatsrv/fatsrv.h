/*
 * fatsrv.h - pstore-fatd: the FAT server's structs and prototypes, grouped
 * by the file that defines them.
 *
 * The FAT logic (vendors.c, volumes.c, leases.c, commit.c, lists.c, gc.c)
 * works on decoded protobuf messages and a struct fat_store; it knows
 * nothing about sockets, so the unit tests call it directly.  dispatch.c
 * turns frames into those calls (and checks who may make them), main.c runs
 * the libevent loop.  Every FAT change is one store transaction (see
 * store.h for what that means for the etcd backend).
 *
 * Replies built by the logic have every pointer malloc'd exactly as
 * protobuf-c's unpacker does it, so one protobuf_c_message_free_unpacked(m,
 * NULL) frees a reply whole.
 *
 * Key layout of the FAT store (binary; be = big-endian so keys sort by
 * number; built by keys.c only):
 *   "v/" be32 vendor_id                -> VendorRecord (alive is computed on read)
 *   "vol/" name                        -> VolumeInfo (revision = last commit)
 *   "c/" volume_id(16) chunk_id(16)    -> ChunkPlacement (committed chunks)
 *   "o/" chunk_id(16)                  -> volume_id(16): the volume a committed
 *                                         chunk id belongs to (one volume per id)
 *   "m/" volume_id(16) key             -> raw value (the volume's metadata mirror)
 *   "l/" be64 lease_id                 -> FatLease
 *   "x/" be64 time_ms be64 lease_id    -> empty: lease expiry index (for a live
 *                                         lease its expiry, for a released one
 *                                         the end of its retention)
 *   "d/" be32 vendor_id chunk_id(16)   -> volume_id(16) of the chunk: the vendor
 *                                         must delete it (if it is that volume's)
 *   "r/" request_id(16)                -> FatRequest (applied commits)
 *   "w/" volume_id(16)                 -> FatWriter (volume writer lease, writer.c)
 */
#ifndef PSTORE_FATSRV_H
#define PSTORE_FATSRV_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "fatstore.pb-c.h"
#include "pstore.pb-c.h"
#include "store.h"

#define FAT_ERRLEN 256
#define FAT_VOLUME_ID_LEN 16
#define FAT_REQUEST_ID_LEN 16
#define FAT_MAX_COPIES 8
#define FAT_MAX_DEVICES 64
#define FAT_MAX_LIST 10000 /* items per list reply */
#define FAT_LIST_DEFAULT 1000
#define FAT_LIST_MAX_BYTES (4u << 20) /* a list reply stays well below XPORT_MAX_CTL */
#define FAT_META_MAX_VAL (1u << 20)
#define FAT_META_MAX_KEY 1024u /* and whatever the backend allows (LMDB: 511 - 18) */
#define FAT_META_MAX_OPS 100000u
#define FAT_MAX_PLACED 100000u /* placements per commit */
#define FAT_MAX_FREED 100000u
#define FAT_MAX_DELETES 10000u /* chunk ids per hello reply, and per hello */
#define FAT_MAX_QUERIES 1000u  /* orphan-GC chunk queries per hello */
#define FAT_MAX_ALLOC_BYTES (1ull << 40)

/* Tunables, from fatd.conf (config.c). */
struct fat_config {
	uint32_t id;
	char listen[128];
	char data[512];
	uint32_t lease_max_ms;
	uint32_t vendor_timeout_ms;
	uint32_t heartbeat_ms;
	uint64_t map_size;
	int log_level;
	char tls_ca[512];
	char tls_cert[512];
	char tls_key[512];
	char tls_crl[512]; /* [tls] crl: revoked certificates (empty = none) */
	char user[64];	   /* [fatd] user: run as this user after binding */
	/* the FAT store (cluster.c): "lmdb" in data, or "etcd" */
	char store[8];
	char etcd[1024];       /* etcd client URLs, comma-separated (store = etcd) */
	char etcd_prefix[128]; /* put before every FAT key in etcd */
	char etcd_ca[512];     /* TLS to etcd; empty = the [tls] files */
	char etcd_cert[512];
	char etcd_key[512];
	uint32_t leader_ttl_ms; /* lease of the leader key (store = etcd) */
};

/* The server's state.  Used from the loop thread only. */
struct fat_ctx {
	struct fat_store *store;
	struct cap_key *key; /* signs capability tokens */
	uint8_t pubkey[32];
	uint32_t lease_max_ms;
	uint32_t vendor_timeout_ms;
	uint32_t heartbeat_ms;
	uint64_t lease_retention_ms;	       /* released leases kept this long */
	uint64_t request_retention_ms;	       /* applied commit ids kept this long */
	uint64_t (*clock)(void);	       /* wall clock in ms; tests replace it */
	char err[FAT_ERRLEN];		       /* message of the last failed operation */
	uint8_t gc_cursor[FAT_REQUEST_ID_LEN]; /* where gc.c's last pass stopped */
	bool gc_have_cursor;
	uint32_t id;		   /* this fatd's id (fat status) */
	struct fat_leader *leader; /* store = etcd: the leader election (leader.c) */
};

/* ---- config.c ---- */
void fat_config_defaults(struct fat_config *c);
/* Parses path into c; on error logs "file:line: key: why" and returns -EINVAL
 * (-ENOENT if the file cannot be read). */
int fat_config_load(const char *path, struct fat_config *c);
/* Host part of a listen address "host:port" (port 0 allowed).  0 or -EINVAL. */
int fat_listen_host(const char *listen, char *host, size_t hostlen);

/* ---- ctx.c ---- */
/* Takes ownership of store and key. */
int fat_ctx_init(struct fat_ctx *fc, struct fat_store *store, struct cap_key *key);
void fat_ctx_fini(struct fat_ctx *fc);
/* Sets fc->err and returns code (a negative errno). */
int fat_fail(struct fat_ctx *fc, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
char *fat_strdup(const char *s);
int fat_bytes_set(ProtobufCBinaryData *b, const void *data, size_t len);

/* ---- keys.c ---- */
struct fat_key {
	size_t len;
	uint8_t b[1100];
};
void fat_key_vendor(struct fat_key *k, uint32_t id);
void fat_key_vendor_prefix(struct fat_key *k);
int fat_key_volume(struct fat_key *k, const char *name);
void fat_key_volume_prefix(struct fat_key *k);
void fat_key_chunk(struct fat_key *k, const uint8_t *vol_id, const uint8_t *chunk_id);
void fat_key_chunk_prefix(struct fat_key *k, const uint8_t *vol_id);
int fat_key_meta(struct fat_key *k, const uint8_t *vol_id, const void *key, size_t klen);
void fat_key_chunk_owner(struct fat_key *k, const uint8_t *chunk_id);
void fat_key_meta_prefix(struct fat_key *k, const uint8_t *vol_id);
void fat_key_lease(struct fat_key *k, uint64_t id);
void fat_key_lease_index(struct fat_key *k, uint64_t time_ms, uint64_t id);
void fat_key_lease_index_prefix(struct fat_key *k);
void fat_key_pending(struct fat_key *k, uint32_t vendor_id, const uint8_t *chunk_id);
void fat_key_pending_prefix(struct fat_key *k, uint32_t vendor_id);
void fat_key_request(struct fat_key *k, const uint8_t *request_id);
void fat_key_request_prefix(struct fat_key *k);
uint32_t fat_be32(const uint8_t *p);
uint64_t fat_be64(const uint8_t *p);

/* ---- records.c ---- */
/* Reads and decodes a record: 0, -ENOENT, or -EIO (undecodable, logged). */
int fat_rec_get(struct fat_txn *t, const struct fat_key *k,
		const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);
int fat_rec_put(struct fat_txn *t, const struct fat_key *k, const ProtobufCMessage *m);
int fat_rec_decode(const uint8_t *val, size_t vlen, const ProtobufCMessageDescriptor *desc,
		   ProtobufCMessage **out);
void fat_rec_free(void *m);
int fat_vendor_load(struct fat_txn *t, uint32_t id, Pstore__VendorRecord **out);
int fat_vendor_save(struct fat_txn *t, const Pstore__VendorRecord *v);
bool fat_vendor_alive(const struct fat_ctx *fc, const Pstore__VendorRecord *v, uint64_t now);
/* capacity - used - reserved, clipped at 0 */
uint64_t fat_vendor_available(const Pstore__VendorRecord *v);

/* ---- vendors.c ---- */
int fat_vendor_hello(struct fat_ctx *fc, const Pstore__VendorHello *req,
		     Pstore__VendorHelloReply **out);
int fat_vendor_list(struct fat_ctx *fc, Pstore__VendorListReply **out);
int fat_statfs(struct fat_ctx *fc, Pstore__StatfsReply **out);
int fat_report_bad(struct fat_ctx *fc, const Pstore__BadReplica *req);

/* ---- volumes.c ---- */
bool fat_volume_name_ok(const char *name);
int fat_volume_create(struct fat_ctx *fc, const Pstore__VolumeInfo *req,
		      Pstore__VolumeInfo **out);
int fat_volume_get(struct fat_ctx *fc, const char *name, Pstore__VolumeInfo **out);
int fat_volume_list(struct fat_ctx *fc, Pstore__VolumeList **out);
/* `pstore volume passwd`: swaps the wrapped volume key (compare-and-swap on
 * the old one); replies with the volume. */
#define FAT_KEY_BLOB_MAX 256
int fat_volume_key_set(struct fat_ctx *fc, const Pstore__VolumeKeySet *req,
		       Pstore__VolumeInfo **out);
/* In a transaction: -ENOENT (with fc->err set) if the volume does not exist. */
int fat_volume_load(struct fat_ctx *fc, struct fat_txn *t, const char *name,
		    Pstore__VolumeInfo **out);

/* ---- leases.c ---- */
int fat_alloc(struct fat_ctx *fc, const Pstore__AllocRequest *req, Pstore__AllocReply **out);
int fat_lease_renew(struct fat_ctx *fc, const Pstore__LeaseRenew *req,
		    Pstore__AllocReply **out);
/* Releases every lease whose expiry passed and drops released leases past
 * their retention.  *n_expired (may be NULL) counts released leases. */
int fat_lease_expire(struct fat_ctx *fc, unsigned *n_expired);
/* In a transaction: gives back what lease l still reserves, marks it
 * released and re-indexes it at now + retention.  Saves the lease. */
int fat_lease_release(struct fat_ctx *fc, struct fat_txn *t, Pstore__FatLease *l);
int fat_lease_load(struct fat_txn *t, uint64_t id, Pstore__FatLease **out);

/* ---- commit.c ---- */
int fat_commit(struct fat_ctx *fc, const Pstore__CommitRequest *req, Pstore__CommitReply **out);

/* ---- writer.c: the volume writer lease ("w/" volume_id -> FatWriter) ---- */
/* Acquires or renews (release = false), or releases the writer lease. */
int fat_writer_lease(struct fat_ctx *fc, const Pstore__WriterLease *req, const char *peer,
		     bool release, Pstore__WriterLeaseReply **out);
/* In a commit's transaction: 0 if a commit with this fencing token may
 * change the volume, -ESTALE / -EBUSY (fc->err set) otherwise. */
int fat_writer_check(struct fat_ctx *fc, struct fat_txn *t, const Pstore__VolumeInfo *vi,
		     uint64_t token);

/* ---- lists.c ---- */
int fat_meta_list(struct fat_ctx *fc, const Pstore__ListRequest *req,
		  Pstore__MetaListReply **out);
int fat_chunk_list(struct fat_ctx *fc, const Pstore__ListRequest *req,
		   Pstore__ChunkListReply **out);

/* ---- gc.c ---- */
/* Drops applied-commit records older than the retention, at most `batch`
 * per call.  *n (may be NULL) counts them. */
int fat_gc_requests(struct fat_ctx *fc, unsigned batch, unsigned *n);

/* ---- dispatch.c ---- */
struct xport_req;
/* The xport handler: decodes, authorizes, calls the logic, replies. */
void fat_dispatch(struct xport_req *req, void *arg);
/* "vendor:3" -> role "vendor", id "3".  0 or -EACCES. */
int fat_peer_split(const char *peer, char *role, size_t rlen, const char **id);

/* ---- owner.c ---- */
/* Volume ownership of client requests: records the creator as owner of a
 * new volume (rewrites msg), refuses (-EACCES, fc->err set) a client: peer
 * naming a volume it does not own.  0 otherwise. */
int fat_owner_check(struct fat_ctx *fc, const struct xport_req *req, ProtobufCMessage *msg);
/* Drops from list the volumes the peer may not see (admin: sees all). */
void fat_owner_filter_list(const struct xport_req *req, Pstore__VolumeList *list);
/* Puts a read capability for the peer (FAT_READ_TOKEN_MS) into a
 * VOLUME_GET/CREATE reply. */
#define FAT_READ_TOKEN_MS (3600u * 1000u)
int fat_owner_read_token(struct fat_ctx *fc, const struct xport_req *req,
			 Pstore__VolumeInfo *vi);

#endif
