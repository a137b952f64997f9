/*
 * alloc.h - the client side of the network: everything pstorefs (and the
 * pstore CLI) asks of FAT servers and vendors.
 *
 *  - fat client: calls to the FAT servers with failover over every configured
 *    address (fatclient.c);
 *  - upload sessions: provisional allocation (a lease with candidate vendors
 *    and their capability tokens), placement of each chunk's replica chain on
 *    distinct vendors, parallel pipelined uploads with failover to another
 *    candidate, and the final-FAT commit (upload.c, placement.c);
 *  - reads: fetching a chunk from the fastest live replica with fallback to
 *    the others, verification, decompression, and batched validation receipts
 *    (fetch.c, receipts.c), with per-vendor latency tracking (vstats.c).
 *
 * It knows nothing about inodes or files: the file system hands it raw chunk
 * data and opaque metadata operations.  All functions are thread-safe unless
 * noted; errors are negative errno values.
 */
#ifndef PSTORE_ALLOC_H
#define PSTORE_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "pstore.pb-c.h"
#include "xport.h"

struct alloc_ctx;

struct alloc_opts {
	const char *const *fat_addrs; /* "host:port", n_fat entries */
	size_t n_fat;
	int timeout_ms;		 /* per call; default 10000 */
	uint32_t lease_ms;	 /* requested lease length; default 60000 */
	int zstd_level;		 /* default 1; 0 disables compression */
	unsigned upload_threads; /* parallel chunk uploads; default 8 */
	unsigned pieces;	 /* pieces per chunk asked of vendors; default 2 */
};

/* The volume the context works on (filled by alloc_volume_open). */
struct alloc_volume {
	char name[64];
	uint8_t id[CHUNK_OWNER_LEN];
	uint32_t copies;
	uint32_t chunk_size;
	uint64_t revision;
	/* read capability the FAT gave with the volume (vendors check it) */
	uint8_t read_token[CAP_READ_TOKEN_MAX];
	size_t read_token_len;
	uint64_t read_token_ms; /* wall clock when it was obtained */
	/* the wrapped volume key (empty: an unencrypted volume; volkey.c) */
	uint8_t key_blob[256];
	size_t key_blob_len;
};

/* Takes a reference to pool (which must outlive the context). */
struct alloc_ctx *alloc_new(struct xport_pool *pool, const struct alloc_opts *opts);
void alloc_free(struct alloc_ctx *a);

/* ---- FAT calls (fatclient.c) ---- */

/* Generic call to the FAT cluster: tries each address in turn (starting with
 * the last one that worked), with backoff, until one answers or all failed
 * timeout-wise.  Errors the server reports (ENOENT, EEXIST, ENOSPC...) are
 * returned at once, not retried. */
int alloc_fat_call(struct alloc_ctx *a, uint16_t type, const ProtobufCMessage *req,
		   const ProtobufCMessageDescriptor *resp_desc, struct xport_reply *out);
/* The same; when the server answers with an error, its message goes to
 * errbuf (may be NULL). */
int alloc_fat_call_err(struct alloc_ctx *a, uint16_t type, const ProtobufCMessage *req,
		       const ProtobufCMessageDescriptor *resp_desc, struct xport_reply *out,
		       char *errbuf, size_t errlen);

int alloc_volume_create(struct alloc_ctx *a, const char *name, uint32_t copies,
			uint32_t chunk_size, struct alloc_volume *out);
/* The same with a wrapped volume key (volkey.c makes it). */
int alloc_volume_create_keyed(struct alloc_ctx *a, const char *name, uint32_t copies,
			      uint32_t chunk_size, const uint8_t *key_blob, size_t blob_len,
			      struct alloc_volume *out);
/* Looks the volume up and makes it the context's volume. */
int alloc_volume_open(struct alloc_ctx *a, const char *name, struct alloc_volume *out);
const struct alloc_volume *alloc_volume(const struct alloc_ctx *a);

/* Pages through the volume's metadata mirror; cb is called for each key
 * (value NULL never happens: deleted keys are not listed).  A non-zero return
 * of cb stops and is returned. */
typedef int (*alloc_meta_cb)(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
			     void *arg);
int alloc_meta_list(struct alloc_ctx *a, alloc_meta_cb cb, void *arg);
/* The same, counting in *unopened the entries of an encrypted volume that do
 * not open with its key (tampered with, or not written by its clients):
 * they are never handed to cb. */
int alloc_meta_list_counted(struct alloc_ctx *a, alloc_meta_cb cb, void *arg,
			    uint64_t *unopened);

/* Cluster-wide capacity, for statfs. */
int alloc_statfs(struct alloc_ctx *a, uint64_t *capacity, uint64_t *free, uint64_t *used);

/* Vendor id -> address, refreshed from MSG_VENDOR_LIST when an id is unknown
 * or at most every few seconds.  0 or -ENOENT. */
int alloc_vendor_addr(struct alloc_ctx *a, uint32_t vendor_id, char *addr, size_t len);

/* ---- uploads (upload.c) ---- */

/* One chunk to upload.  The caller fills raw/raw_len; alloc fills the rest. */
struct alloc_chunk {
	const void *raw;
	size_t raw_len;
	/* out */
	uint8_t chunk_id[CHUNK_ID_LEN];
	uint64_t stored_len;
	uint16_t flags;
	uint32_t vendors[CHUNK_MAX_CHAIN];
	unsigned n_vendors;		  /* == copies on success */
	uint8_t digest[CHUNK_DIGEST_LEN]; /* of the stored payload (the header's) */
	int status;			  /* 0 or -errno */
};

struct alloc_session; /* one lease: provisional FAT + what was placed under it */

/* Asks the FAT for a provisional allocation big enough for `bytes` raw bytes
 * (times copies), renewing the lease in the background while it is open. */
int alloc_session_begin(struct alloc_ctx *a, uint64_t bytes, struct alloc_session **out);
/* Compresses, heads and uploads n chunks in parallel (replica chains of
 * `copies` distinct vendors, pipeline-forwarded).  A vendor that fails is
 * replaced by another candidate (and by a fresh allocation if the candidates
 * run out) and recorded as failed.  Returns 0 when every chunk is stored on
 * `copies` vendors, otherwise the first error (each chunk's status says
 * which).  May be called several times per session. */
int alloc_session_put(struct alloc_session *s, struct alloc_chunk *chunks, size_t n);

/* A metadata change to commit with the final FAT (key/value opaque). */
struct alloc_meta_op {
	const uint8_t *key;
	size_t klen;
	const uint8_t *val; /* NULL: delete key */
	size_t vlen;
};

/* Commits the final FAT of the session (every chunk placed by _put), the
 * chunks no longer referenced (freed, 16-byte ids) and the metadata
 * operations in one atomic FAT transaction, and releases the lease's unused
 * reservations.  The session is freed whatever the result.  s may be NULL
 * for a metadata-only commit.  Retried with the same request id on timeout
 * so that it is applied once. */
int alloc_commit(struct alloc_ctx *a, struct alloc_session *s,
		 const uint8_t (*freed)[CHUNK_ID_LEN], size_t n_freed,
		 const struct alloc_meta_op *meta, size_t n_meta);
/* The volume writer lease's fencing token, sent with every commit from now
 * on (0: none; src/fs/lease.c keeps it). */
void alloc_set_writer_token(struct alloc_ctx *a, uint64_t token);
/* Abandons the session: reservations are released at once (commit with no
 * placement), chunks uploaded under it become garbage for the FAT's GC. */
void alloc_session_abort(struct alloc_session *s);

/* True when this context's recent calls could not reach the vendor (its
 * last connection-level failure is within window_ms and no call reached it
 * since): the client's own view, faster than the FAT's heartbeat timeout. */
bool alloc_vendor_unreachable(struct alloc_ctx *a, uint32_t vendor_id, uint64_t window_ms);

/* ---- reads (fetch.c, receipts.c) ---- */

/* A committed chunk as the file system remembers it. */
struct alloc_chunk_ref {
	uint8_t chunk_id[CHUNK_ID_LEN];
	uint64_t stored_len;
	uint32_t raw_len;
	uint32_t vendors[CHUNK_MAX_CHAIN];
	unsigned n_vendors;
	/* the digest of the stored payload when it was committed: a replica
	 * whose header says otherwise is not the chunk that was written */
	bool has_digest;
	uint8_t digest[CHUNK_DIGEST_LEN];
};

/* Fetches the whole chunk from the replica with the best current latency,
 * falling back to the others on error, timeout or digest mismatch (a bad
 * replica is reported to the FAT).  Verifies and decompresses into raw
 * (at least ref->raw_len bytes).  Queues a validation receipt for the vendor
 * that served it (sent in batches).  0, -EIO when no replica could serve. */
int alloc_fetch(struct alloc_ctx *a, const struct alloc_chunk_ref *ref, void *raw);

/* Sends queued validation receipts now (also done periodically and on free). */
void alloc_receipts_flush(struct alloc_ctx *a);

/* ---- the volume key (volkey.c; docs/encryption.md) ----
 * An encrypted volume's chunks are sealed before upload and opened after
 * fetch, and its metadata mirror is sealed in alloc_commit and opened in
 * alloc_meta_list: callers see plaintext on this side only. */

/* Where the secret protecting a volume key comes from, in this order:
 * key_file, passphrase_file, $PSTORE_PASSPHRASE (env), the terminal
 * (prompt, when stdin is one). */
struct alloc_secret_src {
	const char *key_file;	     /* the whole file (8..4096 bytes) */
	const char *passphrase_file; /* its first line */
	bool env;
	bool prompt;
};
/* Reads the secret into buf (4097 bytes), *kind = VKEY_KEYFILE or
 * VKEY_PASSPHRASE (aead.h); confirm: ask twice on the terminal.  0,
 * -ENOENT (no source at all), -EINVAL (too short or long), -errno; a
 * message for the user in err. */
int alloc_secret_read(const struct alloc_secret_src *src, const char *what, bool confirm,
		      uint8_t *buf, size_t *len, int *kind, char *err, size_t errlen);
/* A new volume key wrapped under the secret (blob of VKEY_BLOB_LEN). */
int alloc_key_new(const uint8_t *secret, size_t len, int kind, uint8_t *blob, size_t *blob_len);
/* Opens the context's volume key with the secret from src and turns
 * encryption on (nothing to do for an unencrypted volume).  Call once,
 * before other threads use the context.  0, -EACCES (wrong passphrase or
 * key file), -ENOENT (no secret given), -EBADMSG; a message in err. */
int alloc_volume_unlock(struct alloc_ctx *a, const struct alloc_secret_src *src, char *err,
			size_t errlen);
bool alloc_volume_encrypted(const struct alloc_ctx *a);
/* `pstore volume passwd`: the volume key out of old_blob (with old_secret),
 * wrapped under new_secret, swapped at the FAT if the blob is still
 * old_blob.  -EACCES (wrong old secret), -ESTALE (changed meanwhile). */
int alloc_volume_rekey(struct alloc_ctx *a, const char *name, const uint8_t *old_blob,
		       size_t old_len, const uint8_t *old_secret, size_t old_slen,
		       const uint8_t *new_secret, size_t new_slen, int new_kind);

/* ---- path probing (probe.c, score.c; docs/probing.md) ---- */

/* [probe] of client.conf; defaults in alloc_probe_conf_defaults. */
struct alloc_probe_conf {
	bool enabled;	      /* probe at all (default true) */
	uint32_t interval_ms; /* between probe rounds (2000) */
	uint32_t probes;      /* UDP probes per vendor per round (5) */
	uint32_t timeout_ms;  /* wait for a ping or a probe reply (1000) */
	double w_rtt, w_hops, w_avail, w_free, w_load; /* weights (4, 1, 2, 1, 1) */
	double rtt_ref_ms;			       /* RTT that scores 0.5 (10) */
	double load_ref;	   /* load (requests in flight) that scores 0.5 (8) */
	double min_score;	   /* discard below (0.2) */
	double min_avail;	   /* discard below (0.9) ... */
	uint32_t min_samples;	   /* ... once this many probes were sent (10) */
	double max_rtt_ms;	   /* discard above (1000) */
	uint32_t max_silent;	   /* discard after this many lost probes in a row (5) */
	double avail_halflife;	   /* probes after which an outcome weighs half (50) */
	double spread;		   /* near-equal band below the best score (0.15) */
	bool hedge;		   /* hedged reads (true) */
	double hedge_factor;	   /* hedge after p95 * factor + hedge_min_ms (2) */
	uint32_t hedge_min_ms;	   /* (5) */
	uint32_t hedge_default_ms; /* bound without latency history (200) */
	uint32_t hedge_threads;	   /* fetch attempts running at once, at most (64) */
};

void alloc_probe_conf_defaults(struct alloc_probe_conf *c);
/* Defaults, then [probe] of file.  0, -ENOENT (no file), -EINVAL with a
 * message in err. */
int alloc_probe_conf_load(const char *file, struct alloc_probe_conf *c, char *err,
			  size_t errlen);
/* Starts probing the FAT's vendors (a background thread) and scored
 * placement, reads and hedging.  Call once, before other threads use the
 * context.  0 or -errno. */
int alloc_probe_start(struct alloc_ctx *a, const struct alloc_probe_conf *c);
/* Loads [probe] of config_file and starts probing unless it is disabled.
 * A bad [probe] section is an error (-EINVAL, logged). */
int alloc_probe_configure(struct alloc_ctx *a, const char *config_file);

struct json_object;
/* The candidate vendors as probing sees them (docs/probing.md); a new
 * reference, NULL when probing is off. */
struct json_object *alloc_probe_report(struct alloc_ctx *a);
/* Reads of chunks with a replica on vendor_id go to it alone, without
 * hedging (tests and diagnostics); 0 restores the normal choice. */
void alloc_probe_pin(struct alloc_ctx *a, uint32_t vendor_id);

#endif
