/*
 * probe.c - the vendor's UDP path-probe responder (format: probe_wire.h).
 *
 * A UDP socket on the listen address and port, read on the event loop
 * thread.  A request is answered only if it is well formed, names this
 * vendor, and carries a cookie this process handed to the sender's IP
 * address over TLS (MSG_PING, see vprobe_cookie).  The reply has the
 * request's size (no amplification) and leaves with IP TTL PROBE_TTL, so
 * that clients count hops from the TTL they receive.  Replies are rate
 * limited twice: a token bucket for the whole responder and one per source
 * address (a small hash table; colliding sources share a bucket, which only
 * makes the limit stricter).  Everything else is dropped silently and
 * counted.
 *
 * Cookies: HMAC-SHA256(secret, epoch || peer IP text), truncated to 16
 * bytes; the secret is random per process, the epoch is 10 minutes of the
 * monotonic clock, and the current and previous epochs are accepted.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common.h"
#include "probe_wire.h"
#include "vendor.h"
#include "xport.h"

#define COOKIE_EPOCH_MS 600000u
#define RATE_ALL 2000 /* replies/s, whole responder */
#define BURST_ALL 400
#define RATE_SRC 200 /* replies/s per source address */
#define BURST_SRC 50
#define SRC_BUCKETS 1024
#define BATCH 64 /* datagrams read per wake-up */

struct bucket {
	double tokens;
	uint64_t last_us;
};

struct vprobe {
	struct vendord *vd;
	int fd;
	uint16_t port;
	struct event *ev;
	uint8_t secret[32];
	struct bucket all;					      /* loop thread only */
	struct bucket src[SRC_BUCKETS];				      /* loop thread only */
	uint64_t answered, dropped_bad, dropped_cookie, dropped_rate; /* loop thread */
};

static bool take(struct bucket *b, double rate, double burst, uint64_t now)
{
	if (b->last_us == 0) {
		b->tokens = burst;
	} else if (now > b->last_us) {
		b->tokens += (double)(now - b->last_us) * rate / 1e6;
		if (b->tokens > burst)
			b->tokens = burst;
	}
	b->last_us = now;
	if (b->tokens < 1.0)
		return false;
	b->tokens -= 1.0;
	return true;
}

static void cookie_at(const struct vprobe *p, uint64_t epoch, const char *ip,
		      uint8_t out[PROBE_COOKIE_LEN])
{
	uint8_t msg[8 + INET6_ADDRSTRLEN], mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	size_t iplen = strnlen(ip, INET6_ADDRSTRLEN);

	probe_put64(msg, epoch);
	memcpy(msg + 8, ip, iplen);
	if (!HMAC(EVP_sha256(), p->secret, sizeof(p->secret), msg, 8 + iplen, mac, &maclen) ||
	    maclen < PROBE_COOKIE_LEN) {
		memset(out, 0, PROBE_COOKIE_LEN); /* never matches: a zero cookie is refused */
		return;
	}
	memcpy(out, mac, PROBE_COOKIE_LEN);
}

/* The IP text of "ip:port" / "[ip]:port" as the transport formats peers. */
static int peer_ip(const char *peer_addr, char *ip, size_t len)
{
	uint16_t port;

	return parse_hostport(peer_addr, ip, len, &port);
}

int vprobe_cookie(const struct vprobe *p, const char *peer_addr, uint8_t out[PROBE_COOKIE_LEN])
{
	char ip[INET6_ADDRSTRLEN + 1];

	if (!p || peer_ip(peer_addr, ip, sizeof(ip)) < 0)
		return -EINVAL;
	cookie_at(p, now_ms() / COOKIE_EPOCH_MS, ip, out);
	return 0;
}

uint16_t vprobe_port(const struct vprobe *p)
{
	return p ? p->port : 0;
}

static bool cookie_ok(const struct vprobe *p, const char *ip, const uint8_t *c)
{
	static const uint8_t zero[PROBE_COOKIE_LEN];
	uint64_t epoch = now_ms() / COOKIE_EPOCH_MS;
	uint8_t want[PROBE_COOKIE_LEN];

	if (memcmp(c, zero, PROBE_COOKIE_LEN) == 0)
		return false;
	for (int back = 0; back < 2 && back <= (int)epoch; back++) {
		cookie_at(p, epoch - (uint64_t)back, ip, want);
		if (CRYPTO_memcmp(want, c, PROBE_COOKIE_LEN) == 0)
			return true;
	}
	return false;
}

static uint32_t src_hash(const char *ip)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *ip; ip++)
		h = (h ^ (uint8_t)*ip) * 16777619u;
	return h % SRC_BUCKETS;
}

static void answer(struct vprobe *p, const uint8_t *buf, ssize_t n,
		   const struct sockaddr_storage *ss, socklen_t sl)
{
	struct probe_msg m, r;
	uint8_t out[PROBE_LEN];
	char ip[INET6_ADDRSTRLEN];
	uint64_t now = now_us();

	if (n < 0 || !probe_decode(buf, (size_t)n, PROBE_MAGIC_REQ, &m) ||
	    m.vendor_id != p->vd->cfg->id) {
		p->dropped_bad++;
		return;
	}
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof(ip));
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip,
			  sizeof(ip));
	else {
		p->dropped_bad++;
		return;
	}
	if (!cookie_ok(p, ip, m.cookie)) {
		p->dropped_cookie++;
		return;
	}
	if (!take(&p->src[src_hash(ip)], RATE_SRC, BURST_SRC, now) ||
	    !take(&p->all, RATE_ALL, BURST_ALL, now)) {
		p->dropped_rate++;
		return;
	}
	memset(&r, 0, sizeof(r));
	r.magic = PROBE_MAGIC_REP;
	r.version = PROBE_VERSION;
	r.vendor_id = p->vd->cfg->id;
	r.seq = m.seq;
	memcpy(r.nonce, m.nonce, PROBE_NONCE_LEN);
	r.t_send = m.t_send;
	r.load = p->vd->srv ? xport_server_inflight(p->vd->srv) : 0;
	probe_encode(&r, out);
	if (sendto(p->fd, out, PROBE_LEN, MSG_DONTWAIT, (const struct sockaddr *)ss, sl) ==
	    PROBE_LEN)
		p->answered++;
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	struct vprobe *p = arg;

	(void)what;
	for (int i = 0; i < BATCH; i++) {
		uint8_t buf[PROBE_LEN + 1];
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		ssize_t n =
		    recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&ss, &sl);

		if (n < 0)
			break; /* EAGAIN, or an ICMP error of an earlier reply */
		answer(p, buf, n, &ss, sl);
	}
}

int vprobe_start(struct vendord *vd, struct vprobe **out)
{
	struct addrinfo hints = {0}, *ai = NULL;
	char host[VENDOR_ADDR_MAX], port[8];
	uint16_t lport;
	struct vprobe *p;
	int one = 1, ttl = PROBE_TTL, rc;

	*out = NULL;
	if (parse_hostport(vd->cfg->listen, host, sizeof(host), &lport) < 0) {
		log_err("probe: cannot parse listen address %s", vd->cfg->listen);
		return -EINVAL;
	}
	if (vd->srv && xport_server_port(vd->srv))
		lport = xport_server_port(vd->srv);
	snprintf(port, sizeof(port), "%u", lport);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_PASSIVE;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0 || !ai) {
		log_err("probe: %s: %s", vd->cfg->listen, gai_strerror(rc));
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		freeaddrinfo(ai);
		return -ENOMEM;
	}
	p->vd = vd;
	p->port = lport;
	random_fill(p->secret, sizeof(p->secret));
	p->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0)
		goto fail_errno;
	setsockopt(p->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		rc = setsockopt(p->fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &ttl, sizeof(ttl));
	else
		rc = setsockopt(p->fd, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
	if (rc < 0 || bind(p->fd, ai->ai_addr, ai->ai_addrlen) < 0)
		goto fail_errno;
	p->ev = event_new(vd->base, p->fd, EV_READ | EV_PERSIST, on_read, p);
	if (!p->ev || event_add(p->ev, NULL) < 0) {
		rc = -ENOMEM;
		goto fail;
	}
	freeaddrinfo(ai);
	log_info("probe: answering UDP path probes on %s (port %u)", host, lport);
	*out = p;
	return 0;
fail_errno:
	rc = -errno;
	log_err("probe: UDP socket on %s:%u: %s", host, lport, strerror(errno));
fail:
	freeaddrinfo(ai);
	vprobe_stop(p);
	return rc;
}

void vprobe_stop(struct vprobe *p)
{
	if (!p)
		return;
	if (p->ev)
		event_free(p->ev);
	if (p->fd >= 0)
		close(p->fd);
	if (p->answered || p->dropped_bad || p->dropped_cookie || p->dropped_rate)
		log_info("probe: %llu answered, dropped %llu malformed, %llu without cookie, "
			 "%llu over the rate",
			 (unsigned long long)p->answered, (unsigned long long)p->dropped_bad,
			 (unsigned long long)p->dropped_cookie,
			 (unsigned long long)p->dropped_rate);
	OPENSSL_cleanse(p->secret, sizeof(p->secret));
	free(p);
}
