/*
 * fuzz_xport.c - the server side of src/transport for the handler-level
 * fuzz targets: requests are made in memory (no TLS, no libevent) and
 * replies are packed exactly as server.c packs them, checked against the
 * frame bounds, and dropped.  Linking this file instead of pstore_transport
 * is what lets fat_dispatch and vserver_handle run on fuzzed control
 * messages without a socket.  Client calls (a vendor forwarding down its
 * chain) fail at once with -ECONNREFUSED, as if the next vendor were down.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"
#include "fuzz_common.h"
#include "pstore.pb-c.h"
#include "xport.h"

unsigned long fuzz_replies, fuzz_errors;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static unsigned long outstanding; /* mu */

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
	uint8_t *d = malloc(n ? n : 1);

	if (!d)
		abort();
	if (n)
		memcpy(d, p, n);
	return d;
}

struct xport_req *fuzz_req_new(uint16_t type, const char *peer, const uint8_t *ctl,
			       size_t ctl_len, const uint8_t *data, size_t data_len)
{
	struct xport_req *r = calloc(1, sizeof(*r));

	if (!r)
		abort();
	r->type = type;
	r->req_id = 1;
	/* Exact-size copies, so ASan sees any read past the received bytes. */
	r->ctl = dup_bytes(ctl, ctl_len);
	r->ctl_len = ctl_len;
	r->data = data_len ? dup_bytes(data, data_len) : NULL;
	r->data_len = data_len;
	snprintf(r->peer, sizeof(r->peer), "%s", peer);
	snprintf(r->peer_addr, sizeof(r->peer_addr), "127.0.0.1:1");
	pthread_mutex_lock(&mu);
	outstanding++;
	pthread_mutex_unlock(&mu);
	return r;
}

void fuzz_req_wait(void)
{
	struct timespec dl;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	pthread_mutex_lock(&mu);
	while (outstanding > 0) {
		if (pthread_cond_timedwait(&cv, &mu, &dl) == ETIMEDOUT) {
			fprintf(stderr, "fuzz: a request was not answered within 10 s\n");
			abort();
		}
	}
	pthread_mutex_unlock(&mu);
}

static void req_done(struct xport_req *req, bool error)
{
	free(req->ctl);
	free(req->data);
	free(req);
	pthread_mutex_lock(&mu);
	fuzz_replies++;
	if (error)
		fuzz_errors++;
	if (outstanding == 0) {
		fprintf(stderr, "fuzz: a request was answered twice\n");
		abort();
	}
	if (--outstanding == 0)
		pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

/* Packs msg as the transport would and checks the frame bounds. */
static int pack_check(const ProtobufCMessage *msg, size_t data_len)
{
	size_t len = msg ? protobuf_c_message_get_packed_size(msg) : 0;
	uint8_t *buf = malloc(len ? len : 1);

	if (!buf)
		return -ENOMEM;
	if (msg && protobuf_c_message_pack(msg, buf) != len) {
		fprintf(stderr, "fuzz: reply packed to another size than announced\n");
		abort();
	}
	free(buf);
	if (len > XPORT_MAX_CTL || data_len > XPORT_MAX_DATA)
		return -EMSGSIZE;
	return 0;
}

int xport_reply(struct xport_req *req, const ProtobufCMessage *msg, const void *data,
		size_t data_len)
{
	int rc = pack_check(msg, data_len);

	/* Touch every byte of the data part, as send would. */
	if (data_len) {
		volatile uint8_t x = 0;

		for (size_t i = 0; i < data_len; i++)
			x ^= ((const uint8_t *)data)[i];
		(void)x;
	}
	log_debug("fuzz: type %u from %s -> reply", req->type, req->peer);
	req_done(req, false);
	return rc;
}

int xport_reply_error(struct xport_req *req, int code, const char *fmt, ...)
{
	Pstore__Error err = PSTORE__ERROR__INIT;
	char msg[512];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	err.code = code < 0 ? -code : code ? code : EIO;
	err.message = msg;
	log_debug("fuzz: type %u from %s -> error %d: %s", req->type, req->peer, err.code, msg);
	rc = pack_check(&err.base, 0);
	req_done(req, true);
	return rc;
}

void xport_req_abort(struct xport_req *req)
{
	req_done(req, true);
}

ProtobufCMessage *xport_req_unpack(const struct xport_req *req,
				   const ProtobufCMessageDescriptor *desc)
{
	return protobuf_c_message_unpack(desc, NULL, req->ctl_len, req->ctl);
}

int xport_call2(struct xport_pool *pool, const char *addr, uint16_t type,
		const ProtobufCMessage *msg, const void *d1, size_t l1, const void *d2,
		size_t l2, const ProtobufCMessageDescriptor *resp_desc, struct xport_reply *out,
		int timeout_ms, char *errbuf, size_t errlen)
{
	(void)pool;
	(void)addr;
	(void)type;
	(void)d1;
	(void)d2;
	(void)resp_desc;
	(void)timeout_ms;
	if (pack_check(msg, l1 + l2) < 0)
		return -EMSGSIZE;
	memset(out, 0, sizeof(*out));
	if (errbuf && errlen)
		snprintf(errbuf, errlen, "connection refused (fuzzing)");
	return -ECONNREFUSED;
}

int xport_call2_expect(struct xport_pool *pool, const char *addr, const char *expect,
		       uint16_t type, const ProtobufCMessage *msg, const void *d1, size_t l1,
		       const void *d2, size_t l2, const ProtobufCMessageDescriptor *resp_desc,
		       struct xport_reply *out, int timeout_ms, char *errbuf, size_t errlen)
{
	(void)expect;
	return xport_call2(pool, addr, type, msg, d1, l1, d2, l2, resp_desc, out, timeout_ms,
			   errbuf, errlen);
}

int xport_pool_expect(struct xport_pool *pool, const char *addr, const char *peer)
{
	(void)pool;
	(void)addr;
	(void)peer;
	return 0;
}

void xport_reply_clear(struct xport_reply *r)
{
	if (r->msg)
		protobuf_c_message_free_unpacked(r->msg, NULL);
	free(r->ctl);
	free(r->data);
	memset(r, 0, sizeof(*r));
}

/* No listening server: no port, nothing in flight (the vendor reports its
 * load and address from these). */
uint16_t xport_server_port(const struct xport_server *srv)
{
	(void)srv;
	return 0;
}

unsigned xport_server_inflight(const struct xport_server *srv)
{
	(void)srv;
	return 0;
}
