/*
 * etcd_http.c - a small blocking HTTP/1.1 client over mutual TLS for etcd's
 * v3 JSON gateway: POST a JSON body, read a Content-Length or chunked reply,
 * keep the connection alive, fail over across endpoints.  Also the lease
 * calls and base64/JSON helpers.  It deliberately does no pipelining, no
 * redirects and no HTTP/2: one request at a time per connection, which is
 * all fatd's loop thread needs.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "common.h"
#include "etcd.h"

#define ETCD_MAX_HEADER 16384

struct etcd_ep {
	char url[300];
	char host[256];
	char port[8];
};

struct etcd_conn {
	SSL_CTX *ctx;
	struct etcd_ep eps[ETCD_MAX_ENDPOINTS];
	size_t n_eps;
	size_t cur; /* endpoint of the open connection, or the next to try */
	int fd;
	SSL *ssl;
	unsigned timeout_ms, deadline_ms;
	/* read buffer of the open connection */
	char *buf;
	size_t len, cap;
};

/* ---- base64 and JSON helpers ---- */

json_object *etcd_b64(const void *data, size_t len)
{
	size_t n = 4 * ((len + 2) / 3) + 1;
	char *s = malloc(n);
	json_object *o;

	if (!s)
		return NULL;
	EVP_EncodeBlock((unsigned char *)s, data, (int)len);
	o = json_object_new_string(s);
	free(s);
	return o;
}

int etcd_unb64(json_object *o, uint8_t **out, size_t *len)
{
	const char *s = o ? json_object_get_string(o) : "";
	size_t sl = s ? strlen(s) : 0;
	uint8_t *b;
	int n;

	*out = NULL;
	*len = 0;
	if (sl % 4 != 0 || sl > ETCD_MAX_REPLY)
		return -EIO;
	b = malloc(sl / 4 * 3 + 1);
	if (!b)
		return -ENOMEM;
	n = sl ? EVP_DecodeBlock(b, (const unsigned char *)s, (int)sl) : 0;
	if (n < 0) {
		free(b);
		return -EIO;
	}
	/* EVP_DecodeBlock counts the padding as bytes */
	if (sl >= 1 && s[sl - 1] == '=')
		n--;
	if (sl >= 2 && s[sl - 2] == '=')
		n--;
	b[n] = '\0';
	*out = b;
	*len = (size_t)n;
	return 0;
}

int64_t etcd_i64(json_object *o, const char *field, int64_t def)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, field, &v))
		return def;
	errno = 0;
	return json_object_get_int64(v);
}

uint64_t etcd_u64(json_object *o, const char *field, uint64_t def)
{
	json_object *v;
	uint64_t n;

	if (!o || !json_object_object_get_ex(o, field, &v))
		return def;
	if (json_object_is_type(v, json_type_string))
		return parse_u64(json_object_get_string(v), &n) == 0 ? n : def;
	return json_object_get_uint64(v);
}

/* ---- connection ---- */

static int parse_endpoint(const char *s, size_t n, struct etcd_ep *ep)
{
	char tmp[300];
	const char *hp;
	char *colon;

	if (n >= sizeof(tmp) || n < 9)
		return -EINVAL;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (strncmp(tmp, "https://", 8) != 0)
		return -EINVAL;
	memcpy(ep->url, tmp, n + 1);
	hp = tmp + 8;
	colon = strrchr(hp, ':');
	if (!colon || colon == hp || strlen(colon + 1) == 0 ||
	    strlen(colon + 1) >= sizeof(ep->port))
		return -EINVAL;
	*colon = '\0';
	if (strlen(hp) >= sizeof(ep->host))
		return -EINVAL;
	for (const char *p = colon + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;
	strcpy(ep->host, hp);
	strcpy(ep->port, colon + 1);
	/* [v6]: strip the brackets for getaddrinfo */
	if (ep->host[0] == '[') {
		size_t hl = strlen(ep->host);

		if (hl < 3 || ep->host[hl - 1] != ']')
			return -EINVAL;
		memmove(ep->host, ep->host + 1, hl - 2);
		ep->host[hl - 2] = '\0';
	}
	return 0;
}

int etcd_conn_new(const char *endpoints, const char *ca, const char *cert, const char *key,
		  unsigned timeout_ms, unsigned deadline_ms, struct etcd_conn **out)
{
	struct etcd_conn *c;
	const char *p = endpoints;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->timeout_ms = timeout_ms ? timeout_ms : 2000;
	c->deadline_ms = deadline_ms > c->timeout_ms ? deadline_ms : c->timeout_ms;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		while (n > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			n--;
		}
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n > 0) {
			if (c->n_eps == ETCD_MAX_ENDPOINTS ||
			    parse_endpoint(p, n, &c->eps[c->n_eps]) < 0) {
				log_err("etcd: bad endpoint list '%s' (expected up to %d "
					"https://host:port, comma-separated)",
					endpoints, ETCD_MAX_ENDPOINTS);
				free(c);
				return -EINVAL;
			}
			c->n_eps++;
		}
		if (!end)
			break;
		p = end + 1;
	}
	if (c->n_eps == 0) {
		log_err("etcd: no endpoint given");
		free(c);
		return -EINVAL;
	}
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ctx || SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_load_verify_locations(c->ctx, ca, NULL) != 1 ||
	    SSL_CTX_use_certificate_chain_file(c->ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(c->ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(c->ctx) != 1) {
		unsigned long e = ERR_get_error();

		log_err("etcd: TLS setup with ca %s, cert %s, key %s failed: %s", ca, cert, key,
			e ? ERR_reason_error_string(e) : "?");
		ERR_clear_error();
		SSL_CTX_free(c->ctx);
		free(c);
		return -EINVAL;
	}
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_mode(c->ctx, SSL_MODE_AUTO_RETRY);
	c->cur = (size_t)(random_u64() % c->n_eps); /* spread fatd over the members */
	*out = c;
	return 0;
}

static void conn_close(struct etcd_conn *c)
{
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	c->len = 0;
}

void etcd_conn_free(struct etcd_conn *c)
{
	if (!c)
		return;
	conn_close(c);
	SSL_CTX_free(c->ctx);
	free(c->buf);
	free(c);
}

size_t etcd_conn_endpoints(const struct etcd_conn *c)
{
	return c->n_eps;
}

const char *etcd_conn_endpoint(const struct etcd_conn *c, size_t i)
{
	return i < c->n_eps ? c->eps[i].url : NULL;
}

static void set_timeouts(int fd, unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Non-blocking connect bounded by timeout_ms; the socket is blocking after. */
static int tcp_connect(const struct etcd_ep *ep, unsigned timeout_ms)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai, *a;
	int fd = -1, rc, one = 1, last = EHOSTUNREACH;

	rc = getaddrinfo(ep->host, ep->port, &hints, &ai);
	if (rc != 0)
		return -EHOSTUNREACH;
	for (a = ai; a; a = a->ai_next) {
		struct pollfd pfd;
		int err = 0;
		socklen_t el = sizeof(err);

		fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
			    a->ai_protocol);
		if (fd < 0)
			continue;
		rc = connect(fd, a->ai_addr, a->ai_addrlen);
		if (rc < 0 && errno == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			rc = poll(&pfd, 1, (int)timeout_ms);
			if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 &&
			    err == 0)
				rc = 0;
			else
				errno = rc == 0 ? ETIMEDOUT : err ? err : EIO;
			if (rc != 0)
				rc = -1;
		}
		if (rc == 0)
			break;
		last = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0)
		return -last;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	set_timeouts(fd, timeout_ms);
	return fd;
}

static int conn_open(struct etcd_conn *c)
{
	struct etcd_ep *ep = &c->eps[c->cur];
	X509_VERIFY_PARAM *vp;
	int fd;

	fd = tcp_connect(ep, c->timeout_ms);
	if (fd < 0)
		return fd;
	c->fd = fd;
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl)
		goto fail;
	vp = SSL_get0_param(c->ssl);
	/* the member's certificate must name the address we dialled */
	if (X509_VERIFY_PARAM_set1_ip_asc(vp, ep->host) != 1) {
		if (X509_VERIFY_PARAM_set1_host(vp, ep->host, 0) != 1)
			goto fail;
		SSL_set_tlsext_host_name(c->ssl, ep->host);
	}
	if (SSL_set_fd(c->ssl, fd) != 1 || SSL_connect(c->ssl) != 1) {
		unsigned long e = ERR_get_error();

		log_warn("etcd: TLS handshake with %s failed: %s", ep->url,
			 e ? ERR_reason_error_string(e) : "timeout or closed");
		goto fail;
	}
	ERR_clear_error();
	return 0;
fail:
	ERR_clear_error();
	conn_close(c);
	return -ECONNREFUSED;
}

static int ssl_write_all(struct etcd_conn *c, const char *p, size_t n)
{
	while (n > 0) {
		int w = SSL_write(c->ssl, p, (int)MIN(n, (size_t)1 << 20));

		if (w <= 0) {
			ERR_clear_error();
			return -EIO;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads more bytes into c->buf; -ETIMEDOUT past deadline (now_ms clock). */
static int fill(struct etcd_conn *c, uint64_t deadline)
{
	int r;

	if (now_ms() > deadline)
		return -ETIMEDOUT;
	if (c->cap - c->len < 65536) {
		size_t ncap = c->cap ? c->cap * 2 : 262144;
		char *nb;

		if (ncap > ETCD_MAX_REPLY + ETCD_MAX_HEADER + 65536)
			return -E2BIG;
		nb = realloc(c->buf, ncap);
		if (!nb)
			return -ENOMEM;
		c->buf = nb;
		c->cap = ncap;
	}
	r = SSL_read(c->ssl, c->buf + c->len, (int)(c->cap - c->len - 1));
	if (r <= 0) {
		int e = SSL_get_error(c->ssl, r);

		ERR_clear_error();
		if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -ETIMEDOUT;
		return -EIO;
	}
	c->len += (size_t)r;
	c->buf[c->len] = '\0';
	return 0;
}

static char *find_crlf(char *p, char *end)
{
	for (; p + 1 < end; p++)
		if (p[0] == '\r' && p[1] == '\n')
			return p;
	return NULL;
}

/* Reads one HTTP reply: *status, body (malloc'd, NUL-terminated), *close
 * when the server will close the connection. */
static int read_reply(struct etcd_conn *c, uint64_t deadline, int *status, char **body,
		      size_t *blen, bool *closing)
{
	char *hend = NULL, *p, *line;
	size_t hlen, clen = 0, have;
	bool chunked = false, has_clen = false;
	char *out = NULL;
	size_t olen = 0;
	int rc;

	*closing = false;
	while (!(hend = c->len >= 4 ? strstr(c->buf, "\r\n\r\n") : NULL)) {
		if (c->len > ETCD_MAX_HEADER)
			return -EIO;
		rc = fill(c, deadline);
		if (rc < 0)
			return rc;
	}
	hlen = (size_t)(hend - c->buf) + 4;
	if (sscanf(c->buf, "HTTP/1.%*d %d", status) != 1)
		return -EIO;
	line = strstr(c->buf, "\r\n") + 2;
	while (line < hend) {
		char *e = find_crlf(line, hend + 2);

		if (!e)
			break;
		*e = '\0';
		if (strncasecmp(line, "Content-Length:", 15) == 0) {
			uint64_t v;

			p = line + 15;
			while (*p == ' ')
				p++;
			if (parse_u64(p, &v) < 0 || v > ETCD_MAX_REPLY)
				return -EIO;
			clen = (size_t)v;
			has_clen = true;
		} else if (strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
			chunked = strcasestr(line + 18, "chunked") != NULL;
		} else if (strncasecmp(line, "Connection:", 11) == 0) {
			if (strcasestr(line + 11, "close"))
				*closing = true;
		}
		line = e + 2;
	}
	/* drop the header from the buffer */
	memmove(c->buf, c->buf + hlen, c->len - hlen + 1);
	c->len -= hlen;
	if (!chunked && !has_clen) {
		/* body runs to the end of the connection */
		*closing = true;
		for (;;) {
			rc = fill(c, deadline);
			if (rc == -EIO)
				break;
			if (rc < 0)
				return rc;
		}
		has_clen = true;
		clen = c->len;
	}
	if (has_clen && !chunked) {
		while (c->len < clen) {
			rc = fill(c, deadline);
			if (rc < 0)
				return rc;
		}
		out = malloc(clen + 1);
		if (!out)
			return -ENOMEM;
		memcpy(out, c->buf, clen);
		out[clen] = '\0';
		olen = clen;
		memmove(c->buf, c->buf + clen, c->len - clen + 1);
		c->len -= clen;
		goto done;
	}
	/* chunked */
	have = 0;
	for (;;) {
		char *e;
		unsigned long long csz;
		char *endp;

		while (!(e = find_crlf(c->buf, c->buf + c->len))) {
			if (c->len > 1024) {
				free(out);
				return -EIO;
			}
			rc = fill(c, deadline);
			if (rc < 0) {
				free(out);
				return rc;
			}
		}
		errno = 0;
		csz = strtoull(c->buf, &endp, 16);
		if (errno || endp == c->buf || csz > ETCD_MAX_REPLY ||
		    have + csz > ETCD_MAX_REPLY) {
			free(out);
			return -EIO;
		}
		hlen = (size_t)(e - c->buf) + 2;
		/* chunk data and its CRLF (the last chunk: the final CRLF) */
		while (c->len < hlen + csz + 2) {
			rc = fill(c, deadline);
			if (rc < 0) {
				free(out);
				return rc;
			}
		}
		if (csz > 0) {
			char *no = realloc(out, have + csz + 1);

			if (!no) {
				free(out);
				return -ENOMEM;
			}
			out = no;
			memcpy(out + have, c->buf + hlen, csz);
			have += csz;
			out[have] = '\0';
		}
		memmove(c->buf, c->buf + hlen + csz + 2, c->len - (hlen + csz + 2) + 1);
		c->len -= hlen + csz + 2;
		if (csz == 0)
			break; /* no trailers are sent by etcd */
	}
	if (!out) {
		out = malloc(1);
		if (!out)
			return -ENOMEM;
		out[0] = '\0';
	}
	olen = have;
done:
	*body = out;
	*blen = olen;
	return 0;
}

/* grpc-gateway error codes -> errno; *retry when another member may do. */
static int map_error(const struct etcd_conn *c, int status, json_object *reply, bool *retry)
{
	json_object *m = NULL;
	const char *msg = "";
	int64_t code = etcd_i64(reply, "code", -1);

	if (reply && (json_object_object_get_ex(reply, "error", &m) ||
		      json_object_object_get_ex(reply, "message", &m)))
		msg = json_object_get_string(m);
	*retry = false;
	if (code == 14 || code == 4 || strstr(msg, "leader") || strstr(msg, "timed out") ||
	    status == 503 || status == 502) {
		*retry = true;
		log_debug("etcd: %s: %s (trying another member)", c->eps[c->cur].url, msg);
		return -ETIMEDOUT;
	}
	log_warn("etcd: %s answered HTTP %d: %s", c->eps[c->cur].url, status, msg);
	if (strstr(msg, "too many operations") || strstr(msg, "too large"))
		return -E2BIG;
	if (strstr(msg, "compacted"))
		return -ERANGE;
	if (code == 3)
		return -EINVAL;
	if (code == 5)
		return -ENOENT;
	return -EIO;
}

/* One request on the current endpoint, (re)connecting as needed. *retry
 * says whether another endpoint may succeed. */
static int attempt(struct etcd_conn *c, const char *path, const char *body, size_t blen,
		   json_object **reply, bool *retry)
{
	char head[512];
	int n, status = 0, rc;
	char *rbody = NULL;
	size_t rlen = 0;
	bool closing = false, fresh = false;
	uint64_t deadline = now_ms() + c->timeout_ms;
	json_object *j;
	struct etcd_ep *ep;

	*retry = true;
	*reply = NULL;
again:
	ep = &c->eps[c->cur];
	if (!c->ssl) {
		rc = conn_open(c);
		if (rc < 0)
			return rc;
		fresh = true;
	}
	n = snprintf(head, sizeof(head),
		     "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n",
		     path, ep->host, ep->port, blen);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -EINVAL;
	rc = ssl_write_all(c, head, (size_t)n);
	if (rc == 0)
		rc = ssl_write_all(c, body, blen);
	if (rc == 0)
		rc = read_reply(c, deadline, &status, &rbody, &rlen, &closing);
	if (rc < 0) {
		conn_close(c);
		/* a kept-alive connection the server closed meanwhile: once more */
		if (!fresh && rc == -EIO) {
			fresh = true;
			goto again;
		}
		return rc;
	}
	if (closing)
		conn_close(c);
	j = json_tokener_parse(rbody);
	free(rbody);
	if (status != 200) {
		rc = map_error(c, status, j, retry);
		json_object_put(j);
		if (*retry)
			conn_close(c);
		return rc;
	}
	if (!j || !json_object_is_type(j, json_type_object)) {
		json_object_put(j);
		log_warn("etcd: %s%s: reply is not a JSON object", ep->url, path);
		*retry = false;
		return -EIO;
	}
	/* a streaming call's reply is {"result": ...} or {"error": ...} */
	{
		json_object *e;

		if (json_object_object_get_ex(j, "error", &e) &&
		    json_object_is_type(e, json_type_object)) {
			rc = map_error(c, 500, e, retry);
			json_object_put(j);
			return rc;
		}
	}
	*reply = j;
	return 0;
}

int etcd_call(struct etcd_conn *c, const char *path, json_object *req, json_object **reply)
{
	const char *body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	size_t blen = strlen(body);
	uint64_t deadline = now_ms() + c->deadline_ms;
	unsigned backoff = 50;
	int rc = -ETIMEDOUT;

	for (unsigned tries = 0;; tries++) {
		bool retry;

		rc = attempt(c, path, body, blen, reply, &retry);
		if (rc == 0 || !retry)
			return rc;
		conn_close(c);
		log_debug("etcd: %s%s failed (%s), next member", c->eps[c->cur].url, path,
			  strerror(-rc));
		c->cur = (c->cur + 1) % c->n_eps;
		if (now_ms() + backoff >= deadline)
			break;
		/* back off once every member was tried */
		if ((tries + 1) % c->n_eps == 0) {
			struct timespec ts = {.tv_sec = backoff / 1000,
					      .tv_nsec = (long)(backoff % 1000) * 1000000L};

			nanosleep(&ts, NULL);
			backoff = MIN(backoff * 2, 1000u);
		}
	}
	log_warn("etcd: no member answered %s within %u ms: %s", path, c->deadline_ms,
		 strerror(-rc));
	return rc == -EHOSTUNREACH || rc == -ECONNREFUSED ? -EHOSTUNREACH : -ETIMEDOUT;
}

int etcd_call_one(struct etcd_conn *c, size_t i, const char *path, json_object *req,
		  json_object **reply)
{
	const char *body = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	size_t saved = c->cur;
	bool retry;
	int rc;

	if (i >= c->n_eps)
		return -EINVAL;
	if (c->cur != i) {
		conn_close(c);
		c->cur = i;
	}
	rc = attempt(c, path, body, strlen(body), reply, &retry);
	if (saved != i) {
		conn_close(c);
		c->cur = saved;
	}
	return rc;
}

/* ---- leases ---- */

int etcd_lease_grant(struct etcd_conn *c, int64_t ttl_s, int64_t *id)
{
	json_object *req = json_object_new_object(), *rep = NULL;
	int rc;

	json_object_object_add(req, "TTL", json_object_new_int64(ttl_s));
	json_object_object_add(req, "ID", json_object_new_int64(0));
	rc = etcd_call(c, "/v3/lease/grant", req, &rep);
	json_object_put(req);
	if (rc < 0)
		return rc;
	*id = etcd_i64(rep, "ID", 0);
	json_object_put(rep);
	return *id ? 0 : -EIO;
}

int etcd_lease_keepalive(struct etcd_conn *c, int64_t id, int64_t *ttl_left)
{
	json_object *req = json_object_new_object(), *rep = NULL, *res;
	int rc;

	json_object_object_add(req, "ID", json_object_new_int64(id));
	rc = etcd_call(c, "/v3/lease/keepalive", req, &rep);
	json_object_put(req);
	if (rc < 0)
		return rc;
	*ttl_left = 0;
	if (json_object_object_get_ex(rep, "result", &res))
		*ttl_left = etcd_i64(res, "TTL", 0);
	json_object_put(rep);
	return 0;
}

int etcd_lease_revoke(struct etcd_conn *c, int64_t id)
{
	json_object *req = json_object_new_object(), *rep = NULL;
	int rc;

	json_object_object_add(req, "ID", json_object_new_int64(id));
	rc = etcd_call(c, "/v3/lease/revoke", req, &rep);
	json_object_put(req);
	json_object_put(rep);
	return rc;
}
