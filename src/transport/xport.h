/*
 * xport.h - pstore's framed RPC over mutual TLS 1.3.
 *
 * Servers (pstore-fatd, pstore-vendord) run a libevent loop with
 * bufferevent_openssl; each complete frame becomes a struct xport_req handed
 * to the daemon's handler on the loop thread.  A handler either replies at
 * once or keeps the request, passes it to a worker thread and replies from
 * there: xport_reply* is thread-safe, and a reply to a connection that has
 * closed is dropped quietly.  Every request must be answered or freed exactly
 * once (xport_reply* frees it).
 *
 * Clients (pstorefs worker threads, the CLI, a vendor forwarding a chunk)
 * use blocking calls with a deadline through a per-address connection pool:
 * FUSE handlers are blocking by nature, and a pool of idle TLS connections
 * keeps handshakes off the hot path.
 *
 * Peers are identified by the subject CN of their certificate, which the dev
 * CA (and later `pstore ca`) sets to "<role>:<id>", e.g. "vendor:3".
 */
#ifndef PSTORE_XPORT_H
#define PSTORE_XPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "frame.h"
#include "msgtype.h"

struct event_base;
struct xport_tls;
struct xport_server;
struct xport_conn;
struct xport_pool;

/* ---- TLS contexts (tls.c) ---- */

/* Loads the CA bundle, our certificate and key; TLS 1.3 only, peer
 * certificate required and verified on both sides.  NULL on error (logged). */
struct xport_tls *xport_tls_new(const char *ca_file, const char *cert_file,
				const char *key_file, bool server);
void xport_tls_free(struct xport_tls *tls);

/* ---- certificates: roles and revocation (authz.c) ---- */

/* Verify peers against the CRL(s) in crl_file too (X509_V_FLAG_CRL_CHECK):
 * a revoked certificate fails the handshake.  The file must be signed by a
 * CA of ca_file and not expired.  It is reloaded when it changes (checked
 * at most once a second, as connections are made) and by
 * xport_tls_reload_crl; a bad new file is refused and the old CRL stays.
 * 0 or -errno (logged). */
int xport_tls_set_crl(struct xport_tls *tls, const char *ca_file, const char *crl_file);
/* Reloads the CRL now (SIGHUP).  0 (also when no CRL is set) or -errno. */
int xport_tls_reload_crl(struct xport_tls *tls);

enum xport_role {
	XPORT_ROLE_FAT = 1,
	XPORT_ROLE_VENDOR = 2,
	XPORT_ROLE_CLIENT = 3,
	XPORT_ROLE_ADMIN = 4,
};
/* Role of a peer certificate CN "<role>:<id>" (enum xport_role, > 0) and a
 * pointer to its id within cn; -EACCES for anything else (no colon, empty
 * id, unknown role). */
int xport_peer_role(const char *cn, const char **id);
const char *xport_role_name(int role);

/* ---- server side (server.c) ---- */

struct xport_req {
	struct xport_conn *conn; /* owned reference; released by reply/free */
	uint16_t type;
	uint64_t req_id;
	uint8_t *ctl; /* ctl_len bytes, owned */
	size_t ctl_len;
	uint8_t *data; /* data_len bytes, owned */
	size_t data_len;
	size_t data_room;    /* zero bytes readable after data + data_len */
	void *data_mem;	     /* the allocation holding data (freed with req) */
	size_t data_mem_len; /* its size when it is an aligned receive buffer */
	char peer[128];	     /* subject CN of the peer certificate */
	char peer_addr[64];  /* remote ip:port */
};

typedef void (*xport_handler_fn)(struct xport_req *req, void *arg);

/* Listens on "host:port" (port 0 picks one; see xport_server_port). */
struct xport_server *xport_server_new(struct event_base *base, struct xport_tls *tls,
				      const char *listen_addr, xport_handler_fn fn, void *arg);
uint16_t xport_server_port(const struct xport_server *srv);
/* Data parts of at least min_len bytes are then received into memory where
 * data + offset is aligned to align (a power of two, at most 64 KiB), zero-
 * padded up to the next multiple of align after the data (req->data_room
 * says how many bytes): a vendor writes a chunk's payload from there with
 * O_DIRECT without copying it. */
void xport_server_align_data(struct xport_server *srv, size_t align, size_t offset,
			     size_t min_len);
void xport_server_free(struct xport_server *srv);
/* Requests currently being handled (for the vendor's reported load). */
unsigned xport_server_inflight(const struct xport_server *srv);

/* Reply with type | XPORT_REPLY_BIT.  Thread-safe.  Frees req.  data may be
 * NULL.  The buffers are copied. */
int xport_reply(struct xport_req *req, const ProtobufCMessage *msg, const void *data,
		size_t data_len);
/* Reply MSG_ERROR with a positive errno code and a message.  Frees req. */
int xport_reply_error(struct xport_req *req, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Drop a request without replying and close its connection (hostile peer). */
void xport_req_abort(struct xport_req *req);
/* Unpack req->ctl as desc; NULL if it does not decode (caller replies EBADMSG). */
ProtobufCMessage *xport_req_unpack(const struct xport_req *req,
				   const ProtobufCMessageDescriptor *desc);

/* ---- client side (client.c, pool.c) ---- */

struct xport_reply {
	uint16_t type;
	uint8_t *ctl;
	size_t ctl_len;
	uint8_t *data; /* raw data part, owned; NULL if none */
	size_t data_len;
	ProtobufCMessage *msg; /* unpacked reply, when a descriptor was given */
};
void xport_reply_clear(struct xport_reply *r);

/* A pool of blocking TLS connections to any number of addresses.
 * max_idle: idle connections kept per address.  Thread-safe. */
struct xport_pool *xport_pool_new(struct xport_tls *tls, unsigned max_idle);
void xport_pool_free(struct xport_pool *pool);

/* One call: sends (type, msg, data) to addr and waits for the reply for at
 * most timeout_ms.  On success returns 0 and fills *out (unpacking the control
 * part as resp_desc when it is not NULL).  Errors: -ETIMEDOUT, -ECONNREFUSED,
 * -EPROTO (bad frame or TLS failure), -EBADMSG (undecodable reply) or, when
 * the peer replied MSG_ERROR, minus its code (with the message copied to
 * errbuf when errbuf is not NULL).  A connection that failed is never reused. */
int xport_call(struct xport_pool *pool, const char *addr, uint16_t type,
	       const ProtobufCMessage *msg, const void *data, size_t data_len,
	       const ProtobufCMessageDescriptor *resp_desc, struct xport_reply *out,
	       int timeout_ms, char *errbuf, size_t errlen);

/* Same, with the data part given as two pieces (header + payload), so that a
 * chunk is sent without being copied into one buffer. */
int xport_call2(struct xport_pool *pool, const char *addr, uint16_t type,
		const ProtobufCMessage *msg, const void *d1, size_t l1, const void *d2,
		size_t l2, const ProtobufCMessageDescriptor *resp_desc, struct xport_reply *out,
		int timeout_ms, char *errbuf, size_t errlen);

/* Drops idle connections to addr (after the peer is known to be gone). */
void xport_pool_forget(struct xport_pool *pool, const char *addr);

/* Who the server at addr must be: its certificate CN must equal peer
 * ("vendor:3"), or, when peer ends with ':' ("fat:"), have that role and a
 * non-empty id.  Calls to addr then fail with -EACCES (logged) after the
 * handshake when another certificate answers (a client:'s, say, since every
 * certificate of the deployment CA verifies).  NULL or "" removes the
 * expectation; addresses without one accept any certificate of the CA.
 * 0, -EINVAL (too long) or -ENOMEM. */
#define XPORT_EXPECT_MAX 64
int xport_pool_expect(struct xport_pool *pool, const char *addr, const char *peer);

/* xport_call2 with the expected server given for this call only (same
 * forms as xport_pool_expect; NULL = the pool's expectation for addr), for
 * addresses a peer named (a vendor forwarding down a client's chain). */
int xport_call2_expect(struct xport_pool *pool, const char *addr, const char *expect,
		       uint16_t type, const ProtobufCMessage *msg, const void *d1, size_t l1,
		       const void *d2, size_t l2, const ProtobufCMessageDescriptor *resp_desc,
		       struct xport_reply *out, int timeout_ms, char *errbuf, size_t errlen);

#endif
