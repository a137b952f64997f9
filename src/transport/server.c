/*
 * server.c - the server half of the transport: a libevent listener, one
 * bufferevent_openssl per connection, frames cut out of the input buffer and
 * handed to the daemon's handler as struct xport_req.
 *
 * Replies may come from any thread, but only the loop thread touches a
 * bufferevent (an SSL object must not be used from two threads): a reply is
 * queued on the server and the loop thread is woken to write it out.  A
 * connection is reference counted (each pending request and each queued
 * reply holds a reference), so a reply racing with the peer's disconnect is
 * dropped.
 * A connection that sends a bad frame is closed; other connections are not
 * affected.  Each connection may have at most XPORT_CONN_MAX_INFLIGHT
 * requests being handled; beyond that it is not read until replies go out.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>

#include <openssl/err.h>

#include "common.h"
#include "pstore.pb-c.h"
#include "xport.h"
#include "xport_int.h"

#define XPORT_CONN_MAX_INFLIGHT 8
#define XPORT_IDLE_TIMEOUT_S 300
#define XPORT_MAX_CONNS 4096
/* Aligned receive buffers kept for reuse (a fresh 4 MiB buffer costs 1024
 * page faults and as many zeroed pages; a vendor receives a chunk every few
 * milliseconds during a sequential write). */
#define XPORT_SPARE_BUFS 4

__attribute__((constructor)) static void xport_server_global_init(void)
{
	evthread_use_pthreads();
}

/* A reply (or a close order) waiting for the loop thread. */
struct xport_outq {
	struct xport_outq *next;
	struct xport_conn *conn; /* holds a reference */
	uint8_t *buf;		 /* whole frame; NULL = close the connection */
	size_t len;
};

struct xport_server {
	struct event_base *base;
	struct xport_tls *tls;
	struct evconnlistener *listener;
	struct event *wake; /* activated when outq gets items */
	xport_handler_fn fn;
	void *arg;
	uint16_t port;
	atomic_uint inflight; /* requests handed out and not yet answered */
	atomic_uint nconns;
	pthread_mutex_t mu; /* protects outq, conns */
	struct xport_outq *outq_head, *outq_tail;
	struct xport_conn *conns; /* open connections (loop thread adds/removes) */
	size_t data_align, data_align_off, data_align_min; /* xport_server_align_data */
	pthread_mutex_t spare_mu; /* protects spare, spare_len, nspare */
	void *spare[XPORT_SPARE_BUFS];
	size_t spare_len[XPORT_SPARE_BUFS];
	unsigned nspare;
};

struct xport_conn {
	struct xport_conn *next, *prev; /* srv->conns, under srv->mu */
	pthread_mutex_t mu;		/* protects closed, inflight */
	struct bufferevent *bev;	/* loop thread only; NULL once closed */
	bool closed;
	bool doomed; /* a close order is queued: read no more */
	unsigned inflight;
	atomic_int refs;
	struct xport_server *srv;
	char peer[128];
	char peer_addr[64];
	uint64_t crl_gen; /* loop thread: CRL the peer was last checked against */
};

static void conn_unref(struct xport_conn *c)
{
	if (atomic_fetch_sub(&c->refs, 1) == 1) {
		pthread_mutex_destroy(&c->mu);
		free(c);
	}
}

/* Loop thread only: closes c (idempotent) and drops its own reference. */
static void conn_close(struct xport_conn *c)
{
	struct xport_server *srv = c->srv;
	bool was_open;

	pthread_mutex_lock(&c->mu);
	was_open = !c->closed;
	c->closed = true;
	pthread_mutex_unlock(&c->mu);
	if (!was_open)
		return;
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	pthread_mutex_lock(&srv->mu);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&srv->mu);
	atomic_fetch_sub(&srv->nconns, 1);
	conn_unref(c); /* the connection's own reference */
}

/* Any thread: hands a frame (or, with buf NULL, a close order) to the loop. */
static void conn_enqueue(struct xport_conn *c, uint8_t *buf, size_t len)
{
	struct xport_server *srv = c->srv;
	struct xport_outq *q = calloc(1, sizeof(*q));

	if (!q) {
		free(buf);
		return;
	}
	atomic_fetch_add(&c->refs, 1);
	q->conn = c;
	q->buf = buf;
	q->len = len;
	pthread_mutex_lock(&srv->mu);
	if (srv->outq_tail)
		srv->outq_tail->next = q;
	else
		srv->outq_head = q;
	srv->outq_tail = q;
	pthread_mutex_unlock(&srv->mu);
	event_active(srv->wake, EV_READ, 0);
}

static void outq_free_cb(const void *data, size_t len, void *arg)
{
	(void)len;
	(void)arg;
	free((void *)data);
}

static void conn_read_cb(struct bufferevent *bev, void *arg);

/* Loop thread: writes queued replies, executes close orders, and resumes
 * reading on connections that were over their in-flight limit. */
static void outq_drain(evutil_socket_t fd, short what, void *arg)
{
	struct xport_server *srv = arg;
	struct xport_outq *q;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&srv->mu);
	q = srv->outq_head;
	srv->outq_head = srv->outq_tail = NULL;
	pthread_mutex_unlock(&srv->mu);
	while (q) {
		struct xport_outq *next = q->next;
		struct xport_conn *c = q->conn;
		bool closed;

		pthread_mutex_lock(&c->mu);
		closed = c->closed;
		pthread_mutex_unlock(&c->mu);
		if (!q->buf) {
			conn_close(c);
		} else if (closed || !c->bev ||
			   evbuffer_add_reference(bufferevent_get_output(c->bev), q->buf,
						  q->len, outq_free_cb, NULL) < 0) {
			free(q->buf);
		} else {
			bufferevent_enable(c->bev, EV_READ);
			/* frames already buffered while over the in-flight limit */
			if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
				conn_read_cb(c->bev, c);
		}
		conn_unref(c);
		free(q);
		q = next;
	}
}

/* An aligned receive buffer of at least len bytes from the spares, or NULL. */
static void *spare_take(struct xport_server *srv, size_t len, size_t *got)
{
	void *buf = NULL;

	pthread_mutex_lock(&srv->spare_mu);
	for (unsigned i = 0; i < srv->nspare; i++) {
		/* not one much larger than asked: it would pin memory */
		if (srv->spare_len[i] >= len && srv->spare_len[i] / 2 <= len) {
			buf = srv->spare[i];
			*got = srv->spare_len[i];
			srv->nspare--;
			srv->spare[i] = srv->spare[srv->nspare];
			srv->spare_len[i] = srv->spare_len[srv->nspare];
			break;
		}
	}
	pthread_mutex_unlock(&srv->spare_mu);
	return buf;
}

/* Keeps an aligned receive buffer for reuse, or frees it. */
static void spare_put(struct xport_server *srv, void *buf, size_t len)
{
	pthread_mutex_lock(&srv->spare_mu);
	if (srv->nspare < XPORT_SPARE_BUFS) {
		srv->spare[srv->nspare] = buf;
		srv->spare_len[srv->nspare] = len;
		srv->nspare++;
		buf = NULL;
	}
	pthread_mutex_unlock(&srv->spare_mu);
	free(buf);
}

/* srv: where an aligned receive buffer goes back to (NULL: freed). */
static void req_free(struct xport_server *srv, struct xport_req *req)
{
	free(req->ctl);
	if (req->data_mem_len && srv)
		spare_put(srv, req->data_mem, req->data_mem_len);
	else
		free(req->data_mem);
	free(req);
}

/* req->data for data_len bytes: plain malloc, or the aligned layout of
 * xport_server_align_data.  0 or -ENOMEM. */
static int req_alloc_data(struct xport_server *srv, struct xport_req *req)
{
	size_t a = srv->data_align, len = req->data_len, pre, total, got = 0;
	uint8_t *mem;

	if (len == 0)
		return 0;
	if (a == 0 || len < srv->data_align_min) {
		req->data_mem = req->data = malloc(len);
		return req->data ? 0 : -ENOMEM;
	}
	pre = (a - srv->data_align_off % a) % a;
	total = (pre + len + a - 1) / a * a;
	mem = spare_take(srv, total, &got);
	if (!mem) {
		if (posix_memalign((void **)&mem, a, total) != 0)
			return -ENOMEM;
		got = total;
	}
	req->data_mem = mem;
	req->data_mem_len = got;
	req->data = mem + pre;
	req->data_room = total - pre - len;
	memset(req->data + len, 0, req->data_room);
	return 0;
}

static void conn_read_frames(struct xport_conn *c, struct bufferevent *bev);

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct xport_conn *c = arg;

	/* Handlers may close the connection; keep it alive while we read. */
	atomic_fetch_add(&c->refs, 1);
	conn_read_frames(c, bev);
	conn_unref(c);
}

static void conn_read_frames(struct xport_conn *c, struct bufferevent *bev)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	for (;;) {
		uint8_t raw[XPORT_FRAME_HDR_LEN];
		struct xport_frame_hdr h;
		struct xport_req *req;
		size_t need;
		int rc;

		bool full;

		pthread_mutex_lock(&c->mu);
		full = c->inflight >= XPORT_CONN_MAX_INFLIGHT;
		if (c->closed || c->doomed) {
			pthread_mutex_unlock(&c->mu);
			return;
		}
		pthread_mutex_unlock(&c->mu);
		if (full) {
			bufferevent_disable(bev, EV_READ);
			return;
		}
		if (evbuffer_get_length(in) < XPORT_FRAME_HDR_LEN)
			return;
		evbuffer_copyout(in, raw, sizeof(raw));
		rc = xport_frame_decode(raw, &h);
		if (rc < 0 || (h.type & XPORT_REPLY_BIT)) {
			log_warn("%s (%s): bad frame header (%s), closing", c->peer_addr,
				 c->peer, rc < 0 ? strerror(-rc) : "reply type");
			conn_close(c);
			return;
		}
		need = XPORT_FRAME_HDR_LEN + (size_t)h.ctl_len + h.data_len;
		if (evbuffer_get_length(in) < need)
			return;
		/* A certificate revoked since the handshake ends the connection. */
		if (xport_tls_crl_generation(c->srv->tls) != c->crl_gen) {
			c->crl_gen = xport_tls_crl_generation(c->srv->tls);
			if (xport_tls_peer_revoked(c->srv->tls,
						   bufferevent_openssl_get_ssl(bev))) {
				log_warn("%s (%s): certificate revoked, closing", c->peer_addr,
					 c->peer);
				conn_close(c);
				return;
			}
		}
		if (c->peer[0] == '\0') {
			SSL *ssl = bufferevent_openssl_get_ssl(bev);

			if (ssl)
				xport_peer_cn(ssl, c->peer, sizeof(c->peer));
		}
		req = calloc(1, sizeof(*req));
		if (!req)
			goto nomem;
		req->type = h.type;
		req->req_id = h.req_id;
		req->ctl_len = h.ctl_len;
		req->data_len = h.data_len;
		req->ctl = malloc(h.ctl_len + 1);
		if (!req->ctl || req_alloc_data(c->srv, req) < 0) {
			req_free(NULL, req);
			goto nomem;
		}
		evbuffer_drain(in, XPORT_FRAME_HDR_LEN);
		evbuffer_remove(in, req->ctl, h.ctl_len);
		if (h.data_len)
			evbuffer_remove(in, req->data, h.data_len);
		snprintf(req->peer, sizeof(req->peer), "%s", c->peer);
		snprintf(req->peer_addr, sizeof(req->peer_addr), "%s", c->peer_addr);
		atomic_fetch_add(&c->refs, 1);
		req->conn = c;
		pthread_mutex_lock(&c->mu);
		c->inflight++;
		pthread_mutex_unlock(&c->mu);
		atomic_fetch_add(&c->srv->inflight, 1);
		c->srv->fn(req, c->srv->arg);
		/* The handler may have doomed this connection (xport_req_abort). */
		pthread_mutex_lock(&c->mu);
		if (c->closed || c->doomed) {
			pthread_mutex_unlock(&c->mu);
			return;
		}
		pthread_mutex_unlock(&c->mu);
	}
nomem:
	log_err("%s: out of memory reading a frame, closing", c->peer_addr);
	conn_close(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct xport_conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_ERROR) {
		unsigned long e;

		while ((e = bufferevent_get_openssl_error(bev)) != 0) {
			char buf[256];

			ERR_error_string_n(e, buf, sizeof(buf));
			log_info("%s: TLS: %s", c->peer_addr, buf);
		}
	}
	if (what & BEV_EVENT_TIMEOUT)
		log_debug("%s: idle timeout", c->peer_addr);
	conn_close(c);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	struct xport_server *srv = arg;
	struct timeval tv = {XPORT_IDLE_TIMEOUT_S, 0};
	struct xport_conn *c;
	char host[INET6_ADDRSTRLEN] = "?";
	int one = 1;
	SSL *ssl;

	(void)l;
	(void)salen;
	if (atomic_load(&srv->nconns) >= XPORT_MAX_CONNS) {
		log_warn("too many connections, refusing one");
		evutil_closesocket(fd);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c = calloc(1, sizeof(*c));
	ssl = xport_tls_ssl_new(srv->tls);
	if (c)
		c->crl_gen = xport_tls_crl_generation(srv->tls);
	if (!c || !ssl) {
		free(c);
		SSL_free(ssl);
		evutil_closesocket(fd);
		return;
	}
	pthread_mutex_init(&c->mu, NULL);
	atomic_init(&c->refs, 1);
	c->srv = srv;
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		snprintf(c->peer_addr, sizeof(c->peer_addr), "%s:%u", host,
			 ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		snprintf(c->peer_addr, sizeof(c->peer_addr), "[%s]:%u", host,
			 ntohs(in6->sin6_port));
	}
	c->bev =
	    bufferevent_openssl_socket_new(srv->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
					   BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (!c->bev) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		pthread_mutex_destroy(&c->mu);
		free(c);
		return;
	}
	atomic_fetch_add(&srv->nconns, 1);
	pthread_mutex_lock(&srv->mu);
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	pthread_mutex_unlock(&srv->mu);
	bufferevent_openssl_set_allow_dirty_shutdown(c->bev, 1);
	bufferevent_setcb(c->bev, conn_read_cb, NULL, conn_event_cb, c);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();

	(void)l;
	(void)arg;
	log_err("accept: %s", evutil_socket_error_to_string(err));
}

/* "host:port" or "[v6]:port" with a numeric host; port 0 lets the kernel pick. */
static int parse_listen_addr(const char *s, struct sockaddr_storage *ss, int *len)
{
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	char host[128], port[8];
	const char *colon = strrchr(s, ':');
	size_t hl;

	if (!colon || colon == s || strlen(colon + 1) == 0 || strlen(colon + 1) > 5)
		return -EINVAL;
	hl = (size_t)(colon - s);
	if (s[0] == '[' && hl >= 2 && s[hl - 1] == ']') {
		s++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	snprintf(port, sizeof(port), "%s", colon + 1);
	if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
		return -EINVAL;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = (int)res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

struct xport_server *xport_server_new(struct event_base *base, struct xport_tls *tls,
				      const char *listen_addr, xport_handler_fn fn, void *arg)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	struct xport_server *srv;

	memset(&ss, 0, sizeof(ss));
	if (parse_listen_addr(listen_addr, &ss, &sslen) < 0) {
		log_err("bad listen address '%s' (want host:port)", listen_addr);
		return NULL;
	}
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return NULL;
	srv->base = base;
	srv->tls = tls;
	pthread_mutex_init(&srv->mu, NULL);
	pthread_mutex_init(&srv->spare_mu, NULL);
	srv->wake = event_new(base, -1, 0, outq_drain, srv);
	if (!srv->wake) {
		free(srv);
		return NULL;
	}
	srv->fn = fn;
	srv->arg = arg;
	srv->listener = evconnlistener_new_bind(base, accept_cb, srv,
						LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
						    LEV_OPT_CLOSE_ON_EXEC,
						512, (struct sockaddr *)&ss, sslen);
	if (!srv->listener) {
		log_err("cannot listen on %s: %s", listen_addr, strerror(errno));
		event_free(srv->wake);
		free(srv);
		return NULL;
	}
	evconnlistener_set_error_cb(srv->listener, accept_error_cb);
	{
		struct sockaddr_storage bound;
		socklen_t blen = sizeof(bound);
		int fd = evconnlistener_get_fd(srv->listener);

		if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0)
			srv->port = ntohs(bound.ss_family == AF_INET6
					      ? ((struct sockaddr_in6 *)&bound)->sin6_port
					      : ((struct sockaddr_in *)&bound)->sin_port);
	}
	return srv;
}

uint16_t xport_server_port(const struct xport_server *srv)
{
	return srv->port;
}

void xport_server_align_data(struct xport_server *srv, size_t align, size_t offset,
			     size_t min_len)
{
	if (align == 0 || (align & (align - 1)) != 0 || align > (64u << 10))
		align = 0;
	srv->data_align = align;
	srv->data_align_off = offset;
	srv->data_align_min = min_len;
}

unsigned xport_server_inflight(const struct xport_server *srv)
{
	return atomic_load(&((struct xport_server *)srv)->inflight);
}

/* Loop thread (or after the loop stopped): closes every connection and
 * drops queued replies.  Requests still held by workers keep their
 * connection object alive until they are answered (then dropped). */
void xport_server_free(struct xport_server *srv)
{
	if (!srv)
		return;
	evconnlistener_free(srv->listener);
	outq_drain(-1, 0, srv);
	while (srv->conns)
		conn_close(srv->conns);
	event_free(srv->wake);
	pthread_mutex_destroy(&srv->mu);
	for (unsigned i = 0; i < srv->nspare; i++)
		free(srv->spare[i]);
	pthread_mutex_destroy(&srv->spare_mu);
	free(srv);
}

/* Finishes a request: releases the in-flight slot and the reference, and
 * frees it.  If the connection had stopped reading, it reads again. */
static void req_done(struct xport_req *req)
{
	struct xport_conn *c = req->conn;
	struct xport_server *srv = c->srv; /* c may be freed by conn_unref */

	pthread_mutex_lock(&c->mu);
	if (c->inflight > 0)
		c->inflight--;
	pthread_mutex_unlock(&c->mu);
	atomic_fetch_sub(&srv->inflight, 1);
	conn_unref(c);
	req_free(srv, req);
}

static int send_frame(struct xport_req *req, uint16_t type, const uint8_t *ctl, size_t ctl_len,
		      const void *data, size_t data_len)
{
	struct xport_frame_hdr h = {.type = type,
				    .req_id = req->req_id,
				    .ctl_len = (uint32_t)ctl_len,
				    .data_len = (uint32_t)data_len};
	size_t len = XPORT_FRAME_HDR_LEN + ctl_len + data_len;
	uint8_t *buf;

	if (ctl_len > XPORT_MAX_CTL || data_len > XPORT_MAX_DATA)
		return -EMSGSIZE;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	xport_frame_encode(&h, buf);
	if (ctl_len)
		memcpy(buf + XPORT_FRAME_HDR_LEN, ctl, ctl_len);
	if (data_len)
		memcpy(buf + XPORT_FRAME_HDR_LEN + ctl_len, data, data_len);
	conn_enqueue(req->conn, buf, len);
	return 0;
}

int xport_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *len)
{
	size_t n = msg ? protobuf_c_message_get_packed_size(msg) : 0;

	*out = malloc(n ? n : 1);
	if (!*out)
		return -ENOMEM;
	if (n)
		protobuf_c_message_pack(msg, *out);
	*len = n;
	return 0;
}

int xport_reply(struct xport_req *req, const ProtobufCMessage *msg, const void *data,
		size_t data_len)
{
	uint8_t *ctl;
	size_t ctl_len;
	int rc = xport_pack(msg, &ctl, &ctl_len);

	if (rc == 0) {
		rc = send_frame(req, (uint16_t)(req->type | XPORT_REPLY_BIT), ctl, ctl_len,
				data, data_len);
		free(ctl);
	}
	req_done(req);
	return rc;
}

int xport_reply_error(struct xport_req *req, int code, const char *fmt, ...)
{
	Pstore__Error err = PSTORE__ERROR__INIT;
	char msg[512];
	va_list ap;
	uint8_t *ctl;
	size_t ctl_len;
	int rc;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (code < 0)
		code = -code;
	err.code = code ? code : EIO;
	err.message = msg;
	log_debug("%s (%s): type %u -> error %d: %s", req->peer_addr, req->peer, req->type,
		  err.code, msg);
	rc = xport_pack(&err.base, &ctl, &ctl_len);
	if (rc == 0) {
		rc = send_frame(req, MSG_ERROR, ctl, ctl_len, NULL, 0);
		free(ctl);
	}
	req_done(req);
	return rc;
}

void xport_req_abort(struct xport_req *req)
{
	log_warn("%s (%s): dropping connection after a bad request (type %u)", req->peer_addr,
		 req->peer, req->type);
	pthread_mutex_lock(&req->conn->mu);
	req->conn->doomed = true;
	pthread_mutex_unlock(&req->conn->mu);
	conn_enqueue(req->conn, NULL, 0);
	req_done(req);
}

ProtobufCMessage *xport_req_unpack(const struct xport_req *req,
				   const ProtobufCMessageDescriptor *desc)
{
	return protobuf_c_message_unpack(desc, NULL, req->ctl_len, req->ctl);
}
