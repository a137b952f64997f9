/*
 * etcd.h - the FAT server's link to an etcd cluster: a small blocking
 * HTTP/1.1 client over mutual TLS (OpenSSL) for etcd's v3 JSON gateway
 * (etcd_http.c), the etcd FAT store backend with its leases and leader
 * fence (store_etcd.c), and the leader election among fatd instances
 * (leader.c).
 *
 * Everything here is blocking with bounded waits and is used from one
 * thread (fatd's loop thread) per struct etcd_conn.  Endpoints fail over:
 * a call that cannot reach a member, times out, or gets "no leader" moves to
 * the next endpoint, with a short backoff, until its deadline.
 */
#ifndef PSTORE_FATSRV_ETCD_H
#define PSTORE_FATSRV_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "pstore.pb-c.h"
#include "store.h"

#define ETCD_MAX_ENDPOINTS 16
#define ETCD_MAX_REPLY (96u << 20) /* largest reply body accepted */

/* ---- etcd_http.c ---- */
struct etcd_conn;

/* endpoints: "https://host:port,https://host:port,..." (1..ETCD_MAX_ENDPOINTS);
 * ca/cert/key: PEM files for mutual TLS; timeout_ms bounds each attempt,
 * deadline_ms a whole call with its failovers. */
int etcd_conn_new(const char *endpoints, const char *ca, const char *cert, const char *key,
		  unsigned timeout_ms, unsigned deadline_ms, struct etcd_conn **out);
void etcd_conn_free(struct etcd_conn *c);
size_t etcd_conn_endpoints(const struct etcd_conn *c);
/* "https://host:port" of endpoint i */
const char *etcd_conn_endpoint(const struct etcd_conn *c, size_t i);

/* POSTs req (JSON) to path ("/v3/kv/range") and parses the reply into
 * *reply (caller puts it).  Fails over across endpoints.  Errors: -ETIMEDOUT
 * or -EHOSTUNREACH (no member answered in time), -EIO (bad reply), or the
 * mapping of etcd's error (logged): -E2BIG (request too large / too many
 * ops), -ERANGE (revision compacted), -EINVAL. */
int etcd_call(struct etcd_conn *c, const char *path, json_object *req, json_object **reply);
/* Same, on endpoint i only, one attempt (member status). */
int etcd_call_one(struct etcd_conn *c, size_t i, const char *path, json_object *req,
		  json_object **reply);

/* base64 helpers (etcd's gateway carries keys and values in base64) */
json_object *etcd_b64(const void *data, size_t len);
/* Decodes a base64 JSON string into a malloc'd buffer (NUL-terminated
 * beyond *len).  An absent object decodes to an empty buffer. */
int etcd_unb64(json_object *o, uint8_t **out, size_t *len);
/* An int64 field (the gateway sends them as strings); def when absent. */
int64_t etcd_i64(json_object *o, const char *field, int64_t def);
/* An uint64 field (member ids do not fit an int64). */
uint64_t etcd_u64(json_object *o, const char *field, uint64_t def);

/* ---- store_etcd.c ---- */
/* Opens the FAT store on etcd.  prefix (e.g. "pstore/") is put before every
 * FAT key so that one etcd cluster may hold other data too; it must not be
 * empty.  Takes ownership of conn (also on failure). */
int fat_store_open_etcd(struct etcd_conn *conn, const char *prefix, struct fat_store **out);
/* The store's connection (for leases and status); NULL for another backend. */
struct etcd_conn *fat_store_etcd_conn(struct fat_store *s);
/* Prefixed etcd key of a FAT-level key, into buf (size bytes). */
int fat_store_etcd_key(struct fat_store *s, const char *key, char *buf, size_t size);
/* While a fence is set, every commit also requires that the etcd key `key`
 * (full etcd key) still has create_revision rev; when it does not, commit
 * returns -ESTALE (the leader key is gone: a serial role was lost).  key
 * NULL clears the fence. */
int fat_store_etcd_fence(struct fat_store *s, const char *key, int64_t rev);

/* Leases (etcd_http.c): grant a lease of ttl_s seconds; keep it alive
 * (*ttl_left is 0 when it has expired); revoke it. */
int etcd_lease_grant(struct etcd_conn *c, int64_t ttl_s, int64_t *id);
int etcd_lease_keepalive(struct etcd_conn *c, int64_t id, int64_t *ttl_left);
int etcd_lease_revoke(struct etcd_conn *c, int64_t id);

/* ---- leader.c ---- */
/* One fatd among those sharing an etcd cluster holds the leader key
 * ("<prefix>sys/leader", value = fatd id, attached to a lease of ttl_s);
 * only it runs the serial housekeeping (lease expiry, gc).  The leader
 * renews its lease every tick; it believes itself leader only while its
 * last successful renewal is younger than the TTL (minus a margin), and its
 * housekeeping commits are fenced on the leader key's create_revision, so
 * two fatd can never both act as leader. */
struct fat_leader;
int fat_leader_new(struct fat_store *s, uint32_t my_id, unsigned ttl_s,
		   struct fat_leader **out);
void fat_leader_free(struct fat_leader *l);
/* Campaigns or renews; call about every 500 ms.  Never blocks longer than
 * the connection's deadline. */
void fat_leader_tick(struct fat_leader *l);
/* True while this fatd holds the leader key (and its lease is fresh); then
 * it also sets the store fence, which fat_leader_unfence() clears after the
 * leader's work.  fat_leader_stale(): a fenced commit got -ESTALE. */
bool fat_leader_is_me(struct fat_leader *l);
void fat_leader_unfence(struct fat_leader *l);
void fat_leader_stale(struct fat_leader *l);
/* Id of the fatd holding the leader key (0 = none), as last seen. */
uint32_t fat_leader_id(const struct fat_leader *l);
/* Gives the role up (revokes the lease) at shutdown. */
void fat_leader_resign(struct fat_leader *l);

/* ---- cluster.c ---- */
struct fat_config;
struct fat_ctx;
/* Opens the FAT store cfg names: LMDB in cfg->data, or etcd. */
int fat_cluster_open_store(const struct fat_config *cfg, struct fat_store **out);
/* etcd: makes key_path hold the one signing key of the FAT cluster (this
 * fatd's own becomes it when the cluster has none yet).  LMDB: nothing. */
int fat_cluster_signing_key(struct fat_store *s, const char *key_path);
/* After fat_ctx_init: records the id and, with etcd, joins the election. */
int fat_cluster_start(struct fat_ctx *fc, const struct fat_config *cfg);
void fat_cluster_stop(struct fat_ctx *fc);
/* Around the serial housekeeping (lease expiry, GC): begin says whether
 * this fatd may do it now (always with LMDB; only the leader with etcd,
 * fenced); end takes the housekeeping's result. */
bool fat_cluster_housekeeping_begin(struct fat_ctx *fc);
void fat_cluster_housekeeping_end(struct fat_ctx *fc, int rc);

/* ---- status.c ---- */
/* MSG_FAT_STATUS: this fatd, the leader role and every etcd member. */
int fat_cluster_status(struct fat_ctx *fc, Pstore__FatStatusReply **out);

#endif
