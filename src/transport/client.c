/*
 * client.c - the client half of the transport: blocking TLS connections with
 * a deadline on every wait, kept in a pool of idle connections per address.
 *
 * One call = one request frame and one reply frame on a connection owned by
 * the calling thread for the duration of the call.  A connection on which
 * anything failed is closed, never put back.  A reused idle connection that
 * the server closed meanwhile (idle timeout, restart) fails before any reply
 * byte arrives; such a call is retried once on a fresh connection.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common.h"
#include "pstore.pb-c.h"
#include "xport.h"
#include "xport_int.h"

/* Frames carrying at least this much data are sent corked (see exchange). */
#define XPORT_CORK_MIN (64u << 10)
#define XPORT_TIMEOUT_SLACK_MS 50

struct xport_cconn {
	struct xport_cconn *next;
	char addr[128];
	char peer[128]; /* subject CN the server presented */
	int fd;
	SSL *ssl;
	uint64_t tmo_deadline, tmo_at; /* conn_timeout: last deadline set, and when */
};

/* Who must answer at an address (xport_pool_expect). */
struct xport_expect {
	char addr[128];
	char peer[XPORT_EXPECT_MAX];
};

struct xport_pool {
	struct xport_tls *tls;
	unsigned max_idle;
	pthread_mutex_t mu; /* protects idle, next_id, expect */
	struct xport_cconn *idle;
	uint64_t next_id;
	struct xport_expect *expect;
	size_t n_expect, cap_expect;
};

/* Does a server certificate CN match the expectation ("role:" = any id of
 * that role, else the exact CN)? */
static bool peer_matches(const char *cn, const char *want)
{
	size_t n = strlen(want);

	if (n > 0 && want[n - 1] == ':')
		return strncmp(cn, want, n) == 0 && cn[n] != '\0';
	return strcmp(cn, want) == 0;
}

/* Copies the expectation for addr into want (empty: none).  pool->mu held. */
static void expect_get(struct xport_pool *pool, const char *addr, char *want, size_t len)
{
	want[0] = '\0';
	for (size_t i = 0; i < pool->n_expect; i++)
		if (strcmp(pool->expect[i].addr, addr) == 0) {
			snprintf(want, len, "%s", pool->expect[i].peer);
			return;
		}
}

int xport_pool_expect(struct xport_pool *pool, const char *addr, const char *peer)
{
	struct xport_expect *e = NULL;
	int rc = 0;

	if (!addr || strlen(addr) >= sizeof(e->addr) ||
	    (peer && strlen(peer) >= sizeof(e->peer)))
		return -EINVAL;
	pthread_mutex_lock(&pool->mu);
	for (size_t i = 0; i < pool->n_expect; i++)
		if (strcmp(pool->expect[i].addr, addr) == 0)
			e = &pool->expect[i];
	if (!peer || !peer[0]) {
		if (e)
			*e = pool->expect[--pool->n_expect];
		goto out;
	}
	if (!e) {
		if (pool->n_expect == pool->cap_expect) {
			size_t nc = pool->cap_expect ? pool->cap_expect * 2 : 16;
			struct xport_expect *ne = realloc(pool->expect, nc * sizeof(*ne));

			if (!ne) {
				rc = -ENOMEM;
				goto out;
			}
			pool->expect = ne;
			pool->cap_expect = nc;
		}
		e = &pool->expect[pool->n_expect++];
		snprintf(e->addr, sizeof(e->addr), "%s", addr);
	}
	snprintf(e->peer, sizeof(e->peer), "%s", peer);
out:
	pthread_mutex_unlock(&pool->mu);
	return rc;
}

/* The expectation of a call: the caller's (expect) or the pool's for addr. */
static void want_of(struct xport_pool *pool, const char *addr, const char *expect, char *want,
		    size_t len)
{
	if (expect && expect[0]) {
		snprintf(want, len, "%s", expect);
		return;
	}
	pthread_mutex_lock(&pool->mu);
	expect_get(pool, addr, want, len);
	pthread_mutex_unlock(&pool->mu);
}

/* 0, or -EACCES (logged) when the server at c is not who is expected there
 * (want; "" = anyone of the CA): any CA-signed certificate (a client's)
 * must not pass for the FAT or a vendor. */
static int peer_check(const struct xport_cconn *c, const char *want)
{
	if (!want[0] || peer_matches(c->peer, want))
		return 0;
	log_err("the server at %s presented certificate '%s', expected '%s%s': refused",
		c->addr, c->peer[0] ? c->peer : "(no CN)", want,
		want[strlen(want) - 1] == ':' ? "<id>" : "");
	return -EACCES;
}

static void cconn_close(struct xport_cconn *c)
{
	if (!c)
		return;
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static int set_timeout(int fd, uint64_t deadline)
{
	uint64_t now = now_ms();
	uint64_t left = deadline > now ? deadline - now : 1;
	struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};

	if (deadline <= now)
		return -ETIMEDOUT;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return 0;
}

/* The socket timeouts of a call's reads and writes, refreshed at most every
 * XPORT_TIMEOUT_SLACK_MS: with partial writes a chunk is sent one 16 KiB
 * record per SSL_write, and two setsockopt calls per record were a measured
 * cost.  A syscall may then block up to the slack past the deadline. */
static int conn_timeout(struct xport_cconn *c, uint64_t deadline)
{
	uint64_t now = now_ms();
	int rc;

	if (deadline <= now)
		return -ETIMEDOUT;
	if (c->tmo_deadline == deadline && now - c->tmo_at < XPORT_TIMEOUT_SLACK_MS)
		return 0;
	rc = set_timeout(c->fd, deadline);
	if (rc == 0) {
		c->tmo_deadline = deadline;
		c->tmo_at = now;
	}
	return rc;
}

static int tcp_connect(const char *addr, uint64_t deadline, int *out)
{
	char host[256], portstr[8];
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL, *ai;
	uint16_t port;
	int rc, last = -ECONNREFUSED;

	if (parse_hostport(addr, host, sizeof(host), &port) < 0)
		return -EINVAL;
	snprintf(portstr, sizeof(portstr), "%u", port);
	hints.ai_flags = AI_NUMERICSERV;
	rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0)
		return -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		int one = 1, err = 0;
		socklen_t elen = sizeof(err);

		if (fd < 0) {
			last = -errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			last = -errno;
			close(fd);
			continue;
		}
		for (;;) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			uint64_t now = now_ms();
			int n;

			if (now >= deadline) {
				err = ETIMEDOUT;
				break;
			}
			n = poll(&p, 1, (int)(deadline - now));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				err = n == 0 ? ETIMEDOUT : errno;
				break;
			}
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen);
			break;
		}
		if (err) {
			last = -err;
			close(fd);
			continue;
		}
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		*out = fd;
		freeaddrinfo(res);
		return 0;
	}
	freeaddrinfo(res);
	return last;
}

static int cconn_open(struct xport_pool *pool, const char *addr, const char *want,
		      uint64_t deadline, struct xport_cconn **out)
{
	struct xport_cconn *c = calloc(1, sizeof(*c));
	int rc;

	if (!c)
		return -ENOMEM;
	c->fd = -1;
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	rc = tcp_connect(addr, deadline, &c->fd);
	if (rc < 0)
		goto fail;
	c->ssl = xport_tls_ssl_new(pool->tls);
	if (!c->ssl) {
		rc = -ENOMEM;
		goto fail;
	}
	SSL_set_fd(c->ssl, c->fd);
	set_timeout(c->fd, deadline);
	if (SSL_connect(c->ssl) != 1) {
		unsigned long e = ERR_get_error();
		char buf[256] = "handshake failed";

		if (e)
			ERR_error_string_n(e, buf, sizeof(buf));
		ERR_clear_error();
		rc = now_ms() >= deadline ? -ETIMEDOUT : -EPROTO;
		log_debug("TLS to %s: %s", addr, buf);
		goto fail;
	}
	xport_peer_cn(c->ssl, c->peer, sizeof(c->peer));
	rc = peer_check(c, want);
	if (rc < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	cconn_close(c);
	return rc;
}

/* Writes len bytes; 0 or -errno. */
static int ssl_write_all(struct xport_cconn *c, const void *buf, size_t len, uint64_t deadline)
{
	const uint8_t *p = buf;

	while (len > 0) {
		size_t n = 0;
		int rc;

		if (conn_timeout(c, deadline) < 0)
			return -ETIMEDOUT;
		rc = SSL_write_ex(c->ssl, p, MIN(len, (size_t)1 << 20), &n);
		if (rc != 1) {
			int e = SSL_get_error(c->ssl, rc);

			ERR_clear_error();
			if ((e == SSL_ERROR_SYSCALL || e == SSL_ERROR_WANT_WRITE) &&
			    (errno == EAGAIN || errno == EWOULDBLOCK))
				return -ETIMEDOUT;
			return -ECONNRESET;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* Reads exactly len bytes; 0, -ETIMEDOUT, or -ECONNRESET (EOF / error). */
static int ssl_read_all(struct xport_cconn *c, void *buf, size_t len, uint64_t deadline)
{
	uint8_t *p = buf;

	while (len > 0) {
		size_t n = 0;
		int rc;

		if (conn_timeout(c, deadline) < 0)
			return -ETIMEDOUT;
		rc = SSL_read_ex(c->ssl, p, len, &n);
		if (rc != 1) {
			int e = SSL_get_error(c->ssl, rc);

			ERR_clear_error();
			if ((e == SSL_ERROR_SYSCALL || e == SSL_ERROR_WANT_READ) &&
			    (errno == EAGAIN || errno == EWOULDBLOCK))
				return -ETIMEDOUT;
			return -ECONNRESET;
		}
		p += n;
		len -= n;
	}
	return 0;
}

struct xport_pool *xport_pool_new(struct xport_tls *tls, unsigned max_idle)
{
	struct xport_pool *pool = calloc(1, sizeof(*pool));

	if (!pool)
		return NULL;
	pool->tls = tls;
	pool->max_idle = max_idle ? max_idle : 4;
	pthread_mutex_init(&pool->mu, NULL);
	random_fill(&pool->next_id, sizeof(pool->next_id));
	pool->next_id &= 0xffffffffffffull;
	return pool;
}

void xport_pool_free(struct xport_pool *pool)
{
	if (!pool)
		return;
	while (pool->idle) {
		struct xport_cconn *c = pool->idle;

		pool->idle = c->next;
		cconn_close(c);
	}
	pthread_mutex_destroy(&pool->mu);
	free(pool->expect);
	free(pool);
}

static struct xport_cconn *pool_take(struct xport_pool *pool, const char *addr)
{
	struct xport_cconn **pp, *c = NULL;

	pthread_mutex_lock(&pool->mu);
	for (pp = &pool->idle; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->addr, addr) == 0) {
			c = *pp;
			*pp = c->next;
			c->next = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&pool->mu);
	return c;
}

static void pool_put(struct xport_pool *pool, struct xport_cconn *c)
{
	unsigned n = 0;

	pthread_mutex_lock(&pool->mu);
	for (struct xport_cconn *i = pool->idle; i; i = i->next)
		if (strcmp(i->addr, c->addr) == 0)
			n++;
	if (n < pool->max_idle) {
		c->next = pool->idle;
		pool->idle = c;
		c = NULL;
	}
	pthread_mutex_unlock(&pool->mu);
	cconn_close(c);
}

void xport_pool_forget(struct xport_pool *pool, const char *addr)
{
	struct xport_cconn *c;

	while ((c = pool_take(pool, addr)) != NULL)
		cconn_close(c);
}

void xport_reply_clear(struct xport_reply *r)
{
	if (r->msg)
		protobuf_c_message_free_unpacked(r->msg, NULL);
	free(r->ctl);
	free(r->data);
	memset(r, 0, sizeof(*r));
}

/* One exchange on c.  *got_bytes tells whether any reply byte arrived. */
static int exchange(struct xport_pool *pool, struct xport_cconn *c, uint16_t type,
		    const uint8_t *ctl, size_t ctl_len, const void *d1, size_t l1,
		    const void *d2, size_t l2, const ProtobufCMessageDescriptor *resp_desc,
		    struct xport_reply *out, uint64_t deadline, char *errbuf, size_t errlen,
		    bool *got_bytes)
{
	struct xport_frame_hdr h = {
	    .type = type, .ctl_len = (uint32_t)ctl_len, .data_len = (uint32_t)(l1 + l2)};
	uint8_t raw[XPORT_FRAME_HDR_LEN];
	int rc, one = 1, zero = 0;
	bool cork;

	pthread_mutex_lock(&pool->mu);
	h.req_id = ++pool->next_id;
	pthread_mutex_unlock(&pool->mu);
	xport_frame_encode(&h, raw);
	*got_bytes = false;
	/* A large frame is corked: its TLS records (16 KiB each, one write()
	 * apiece) leave in full-size segments instead of one pushed segment
	 * per record, which costs the receiver a wakeup each. */
	cork = l1 + l2 >= XPORT_CORK_MIN;
	if (cork)
		(void)setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &one, sizeof(one));
	rc = ssl_write_all(c, raw, sizeof(raw), deadline);
	if (rc == 0 && ctl_len)
		rc = ssl_write_all(c, ctl, ctl_len, deadline);
	if (rc == 0 && l1)
		rc = ssl_write_all(c, d1, l1, deadline);
	if (rc == 0 && l2)
		rc = ssl_write_all(c, d2, l2, deadline);
	if (cork) /* uncorking sends what is left now */
		(void)setsockopt(c->fd, IPPROTO_TCP, TCP_CORK, &zero, sizeof(zero));
	if (rc < 0)
		return rc;
	rc = ssl_read_all(c, raw, 1, deadline);
	if (rc < 0)
		return rc;
	*got_bytes = true;
	rc = ssl_read_all(c, raw + 1, sizeof(raw) - 1, deadline);
	if (rc < 0)
		return rc;
	{
		struct xport_frame_hdr rh;

		if (xport_frame_decode(raw, &rh) < 0 || rh.req_id != h.req_id ||
		    (rh.type != (type | XPORT_REPLY_BIT) && rh.type != MSG_ERROR))
			return -EPROTO;
		out->type = rh.type;
		out->ctl_len = rh.ctl_len;
		out->data_len = rh.data_len;
		out->ctl = malloc(rh.ctl_len + 1);
		out->data = rh.data_len ? malloc(rh.data_len) : NULL;
		if (!out->ctl || (rh.data_len && !out->data))
			return -ENOMEM;
		rc = ssl_read_all(c, out->ctl, rh.ctl_len, deadline);
		if (rc == 0 && rh.data_len)
			rc = ssl_read_all(c, out->data, rh.data_len, deadline);
		if (rc < 0)
			return rc;
	}
	if (out->type == MSG_ERROR) {
		Pstore__Error *e = pstore__error__unpack(NULL, out->ctl_len, out->ctl);
		int code = EIO;

		if (e && e->code > 0 && e->code < 4096)
			code = e->code;
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "%s",
				 e && e->message ? e->message : strerror(code));
		if (e)
			pstore__error__free_unpacked(e, NULL);
		return -code;
	}
	if (resp_desc) {
		out->msg = protobuf_c_message_unpack(resp_desc, NULL, out->ctl_len, out->ctl);
		if (!out->msg)
			return -EBADMSG;
	}
	return 0;
}

int xport_call2(struct xport_pool *pool, const char *addr, uint16_t type,
		const ProtobufCMessage *msg, const void *d1, size_t l1, const void *d2,
		size_t l2, const ProtobufCMessageDescriptor *resp_desc, struct xport_reply *out,
		int timeout_ms, char *errbuf, size_t errlen)
{
	return xport_call2_expect(pool, addr, NULL, type, msg, d1, l1, d2, l2, resp_desc, out,
				  timeout_ms, errbuf, errlen);
}

int xport_call2_expect(struct xport_pool *pool, const char *addr, const char *expect,
		       uint16_t type, const ProtobufCMessage *msg, const void *d1, size_t l1,
		       const void *d2, size_t l2, const ProtobufCMessageDescriptor *resp_desc,
		       struct xport_reply *out, int timeout_ms, char *errbuf, size_t errlen)
{
	uint64_t deadline = now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 10000);
	char want[XPORT_EXPECT_MAX];
	uint8_t *ctl;
	size_t ctl_len;
	int rc, attempt;

	memset(out, 0, sizeof(*out));
	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (l1 + l2 > XPORT_MAX_DATA)
		return -EMSGSIZE;
	rc = xport_pack(msg, &ctl, &ctl_len);
	if (rc < 0)
		return rc;
	if (ctl_len > XPORT_MAX_CTL) {
		free(ctl);
		return -EMSGSIZE;
	}
	want_of(pool, addr, expect, want, sizeof(want));
	for (attempt = 0; attempt < 2; attempt++) {
		/* The retry always opens a fresh connection: the other idle ones
		 * to this address are likely as stale as the first. */
		struct xport_cconn *c = attempt == 0 ? pool_take(pool, addr) : NULL;
		bool reused = c != NULL, got = false;

		/* an idle connection to someone else than expected now (the
		 * address changed hands): not reused */
		if (c && want[0] && !peer_matches(c->peer, want)) {
			cconn_close(c);
			c = NULL;
			reused = false;
		}

		if (!c) {
			rc = cconn_open(pool, addr, want, deadline, &c);
			if (rc < 0)
				break;
		}
		rc = exchange(pool, c, type, ctl, ctl_len, d1, l1, d2, l2, resp_desc, out,
			      deadline, errbuf, errlen, &got);
		if (rc == 0 || (rc < 0 && out->type == MSG_ERROR)) {
			pool_put(pool, c);
			break;
		}
		cconn_close(c);
		xport_reply_clear(out);
		/* A stale idle connection: the server closed it before we asked. */
		if (!(reused && !got && rc == -ECONNRESET))
			break;
		xport_pool_forget(pool, addr);
	}
	free(ctl);
	if (rc < 0 && out->type != MSG_ERROR)
		log_debug("call type %u to %s: %s", type, addr, strerror(-rc));
	return rc;
}

int xport_call(struct xport_pool *pool, const char *addr, uint16_t type,
	       const ProtobufCMessage *msg, const void *data, size_t data_len,
	       const ProtobufCMessageDescriptor *resp_desc, struct xport_reply *out,
	       int timeout_ms, char *errbuf, size_t errlen)
{
	return xport_call2(pool, addr, type, msg, data, data_len, NULL, 0, resp_desc, out,
			   timeout_ms, errbuf, errlen);
}
