/*
 * probe.c - path probing (DESIGN.md step 4): what the client knows of each
 * vendor's path, and the prober thread that keeps it current.
 *
 * Every interval_ms the prober (thread "alloc-probe"):
 *  1. asks the FAT for its vendor list (address, zone, alive, free space,
 *     capacity, load);
 *  2. pings each listed vendor over its TLS data connection (MSG_PING): the
 *     RTT of the data path, and the cookie its UDP responder wants;
 *  3. sends `probes` UDP probes (probe_wire.h) to every vendor with a
 *     cookie, reads the replies with their TTL (IP_RECVTTL), and records
 *     each probe as answered (RTT sample, hop count = PROBE_TTL - TTL) or
 *     lost, into a decaying availability record;
 *  4. scores every vendor (score.c) and marks the preferred set for the
 *     volume's number of copies.
 * Reads add what they see: per-vendor fetch latencies (for the hedge
 * bound), bytes served, failures (into availability), reads in flight.
 *
 * Uploads use the result through probe_alloc_exclude (upload.c asks the FAT
 * for candidates among the preferred vendors) and probe_score (placement
 * ranks them); reads through probe_read_order and probe_hedge_bound_us
 * (fetch.c).  One mutex guards the table; the prober does its network I/O
 * without it.  O(n) lookups: tens of vendors, not thousands.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc_int.h"
#include "probe_wire.h"

#define RTT_WIN 16 /* UDP RTT samples kept per vendor */
#define LAT_WIN 32 /* fetch latencies kept per vendor (hedge bound) */
#define MAX_VENDORS 1024
#define GAP_MS 2 /* between a vendor's successive probes of one round */

struct pvendor {
	uint32_t id;
	char addr[ALLOC_ADDR_LEN];
	char zone[64];
	bool listed, alive;
	uint64_t free, capacity;
	uint32_t load;
	/* TLS ping */
	double ping_ms; /* last; < 0 unknown */
	uint8_t cookie[PROBE_COOKIE_LEN];
	bool have_cookie;
	uint16_t udp_port;
	/* UDP probes */
	uint32_t rtt_us[RTT_WIN];
	unsigned n_rtt, rtt_pos;
	int hops;	      /* < 0 unknown */
	double succ_w, tot_w; /* decayed answered / sent */
	uint32_t samples, silent;
	uint64_t recent; /* bit i: the i-th last probe was answered */
	unsigned n_recent;
	/* reads */
	uint32_t lat_us[LAT_WIN];
	unsigned n_lat, lat_pos;
	unsigned inflight;
	bool stalled; /* missed a hedge bound; cleared when a read ends */
	uint64_t reads, read_bytes, read_fail, hedges, hedge_wins;
	/* verdict of the last round */
	struct score_out so;
	bool scored, preferred;
};

struct probe {
	struct alloc_ctx *a;
	struct alloc_probe_conf conf; /* read-only after start */
	double decay;		      /* per probe: 0.5^(1/halflife) */
	pthread_t thr;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC: stop, thread slots */
	bool stop;	     /* lock */
	struct pvendor *v;   /* lock */
	size_t n, cap;	     /* lock */
	uint64_t rounds;     /* lock */
	unsigned copies;     /* lock: of the last round's volume */
	uint32_t pin;	     /* lock */
	unsigned threads;    /* lock: fetch threads running */
	uint32_t seq;	     /* prober thread only */
};

/* ---- the table (lock held) ---- */

static struct pvendor *pv_find(struct probe *p, uint32_t id)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->v[i].id == id)
			return &p->v[i];
	return NULL;
}

static struct pvendor *pv_get(struct probe *p, uint32_t id)
{
	struct pvendor *v = pv_find(p, id);

	if (v)
		return v;
	if (p->n >= MAX_VENDORS)
		return NULL;
	if (p->n == p->cap) {
		size_t ncap = p->cap ? 2 * p->cap : 16;
		struct pvendor *nv = realloc(p->v, ncap * sizeof(*nv));

		if (!nv)
			return NULL;
		p->v = nv;
		p->cap = ncap;
	}
	v = &p->v[p->n++];
	memset(v, 0, sizeof(*v));
	v->id = id;
	v->ping_ms = -1;
	v->hops = -1;
	return v;
}

static void outcome(struct probe *p, struct pvendor *v, bool ok)
{
	v->succ_w = v->succ_w * p->decay + (ok ? 1.0 : 0.0);
	v->tot_w = v->tot_w * p->decay + 1.0;
	if (v->samples < UINT32_MAX)
		v->samples++;
	v->silent = ok ? 0 : (v->silent < UINT32_MAX ? v->silent + 1 : v->silent);
	v->recent = (v->recent << 1) | (ok ? 1u : 0u);
	if (v->n_recent < 64)
		v->n_recent++;
}

static int cmp_u32(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;

	return a < b ? -1 : a > b;
}

/* The q-quantile (0..1) of the first n of ring[]; 0 if empty. */
static uint32_t quantile(const uint32_t *ring, unsigned n, double q)
{
	uint32_t s[LAT_WIN > RTT_WIN ? LAT_WIN : RTT_WIN];
	unsigned k;

	if (n == 0)
		return 0;
	memcpy(s, ring, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_u32);
	k = (unsigned)ceil(q * n);
	return s[k ? k - 1 : 0];
}

/* Median UDP RTT, else the last ping, in ms; < 0 when unknown. */
static double rtt_ms(const struct pvendor *v)
{
	if (v->n_rtt)
		return quantile(v->rtt_us, v->n_rtt, 0.5) / 1000.0;
	return v->ping_ms;
}

static void score_all(struct probe *p)
{
	struct score_rank *r = calloc(p->n ? p->n : 1, sizeof(*r));
	size_t k = 0;

	for (size_t i = 0; i < p->n; i++) {
		struct pvendor *v = &p->v[i];
		struct score_in in = {0};
		unsigned bits = MIN(v->n_recent, 20u);

		in.alive = v->listed && v->alive;
		in.rtt_ms = rtt_ms(v);
		in.hops = v->hops;
		in.avail = v->tot_w > 0 ? v->succ_w / v->tot_w : 0;
		in.samples = v->samples;
		in.silent = v->silent;
		in.recent_sent = bits;
		for (unsigned b = 0; b < bits; b++)
			in.recent_ok += (v->recent >> b) & 1u;
		in.free = v->free;
		in.capacity = v->capacity;
		in.load = v->load;
		score_compute(&p->conf, &in, &v->so);
		v->scored = true;
		v->preferred = false;
		if (r && v->listed) {
			r[k].vendor_id = v->id;
			r[k].score = v->so.score;
			r[k].discard = v->so.discard;
			snprintf(r[k].zone, sizeof(r[k].zone), "%s", v->zone);
			k++;
		}
	}
	if (!r)
		return;
	score_prefer(r, k, p->copies, p->conf.spread);
	for (size_t i = 0; i < k; i++) {
		struct pvendor *v = pv_find(p, r[i].vendor_id);

		if (v)
			v->preferred = r[i].preferred;
	}
	free(r);
}

/* ---- one round (prober thread) ---- */

struct target {
	uint32_t id;
	char addr[ALLOC_ADDR_LEN];
	uint8_t cookie[PROBE_COOKIE_LEN];
	bool udp;
	uint16_t port;
	struct sockaddr_storage ss;
	socklen_t sl;
	uint8_t nonce[PROBE_NONCE_LEN];
	uint32_t seq0;
	uint64_t sent_us[PROBE_MAX_PER_ROUND];
	uint32_t rtt_us[PROBE_MAX_PER_ROUND];
	int ttl[PROBE_MAX_PER_ROUND];
	bool sent[PROBE_MAX_PER_ROUND], got[PROBE_MAX_PER_ROUND];
	/* ping */
	bool ping_ok;
	double ping_ms;
	Pstore__PingReply pr;
	uint8_t pr_cookie[PROBE_COOKIE_LEN];
	bool pr_cookie_ok;
};

static int refresh_vendors(struct probe *p)
{
	struct xport_reply rep = {0};
	Pstore__VendorListReply *r;
	int rc;

	rc = alloc_fat_call(p->a, MSG_VENDOR_LIST, NULL, &pstore__vendor_list_reply__descriptor,
			    &rep);
	if (rc < 0) {
		log_debug("probe: no vendor list: %s", strerror(-rc));
		return rc;
	}
	r = (Pstore__VendorListReply *)rep.msg;
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < p->n; i++)
		p->v[i].listed = false;
	for (size_t i = 0; i < r->n_vendors && i < MAX_VENDORS; i++) {
		const Pstore__VendorRecord *vr = r->vendors[i];
		struct pvendor *v;
		uint64_t avail;

		if (vr->id == 0 || !vr->address || !vr->address[0] ||
		    strlen(vr->address) >= ALLOC_ADDR_LEN)
			continue;
		/* the address book (and who must answer there: vendor:<id>) */
		alloc_vendor_learn(p->a, vr->id, vr->address);
		v = pv_get(p, vr->id);
		if (!v)
			break;
		if (strcmp(v->addr, vr->address) != 0) {
			snprintf(v->addr, sizeof(v->addr), "%s", vr->address);
			v->have_cookie = false;
		}
		snprintf(v->zone, sizeof(v->zone), "%s", vr->zone ? vr->zone : "");
		v->listed = true;
		v->alive = vr->alive;
		v->capacity = vr->capacity;
		avail = vr->capacity > vr->used + vr->reserved
			    ? vr->capacity - vr->used - vr->reserved
			    : 0;
		v->free = MIN(vr->free, avail);
		v->load = vr->stats ? vr->stats->load : 0;
	}
	pthread_mutex_unlock(&p->lock);
	xport_reply_clear(&rep);
	return 0;
}

static void ping_one(struct probe *p, struct target *t)
{
	Pstore__Empty e = PSTORE__EMPTY__INIT;
	struct xport_reply rep = {0};
	uint64_t t0 = now_us();
	int rc;

	rc =
	    xport_call(p->a->pool, t->addr, MSG_PING, &e.base, NULL, 0,
		       &pstore__ping_reply__descriptor, &rep, (int)p->conf.timeout_ms, NULL, 0);
	if (rc < 0) {
		if (alloc_err_transient(rc))
			xport_pool_forget(p->a->pool, t->addr);
		log_debug("probe: ping vendor %u (%s): %s", t->id, t->addr, strerror(-rc));
		return;
	}
	t->ping_ok = true;
	t->ping_ms = (double)(now_us() - t0) / 1000.0;
	if (rep.msg) {
		const Pstore__PingReply *pr = (const Pstore__PingReply *)rep.msg;

		if (pr->probe_cookie.len == PROBE_COOKIE_LEN && pr->probe_port > 0 &&
		    pr->probe_port <= 65535) {
			memcpy(t->pr_cookie, pr->probe_cookie.data, PROBE_COOKIE_LEN);
			t->pr_cookie_ok = true;
			t->port = (uint16_t)pr->probe_port;
		}
	}
	xport_reply_clear(&rep);
}

static bool resolve(struct target *t)
{
	struct addrinfo hints = {0}, *ai = NULL;
	char host[ALLOC_ADDR_LEN], port[8];
	uint16_t tport;

	if (parse_hostport(t->addr, host, sizeof(host), &tport) < 0)
		return false;
	snprintf(port, sizeof(port), "%u", t->port);
	hints.ai_socktype = SOCK_DGRAM;
	if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
		return false;
	if (ai->ai_addrlen <= sizeof(t->ss)) {
		memcpy(&t->ss, ai->ai_addr, ai->ai_addrlen);
		t->sl = ai->ai_addrlen;
	}
	freeaddrinfo(ai);
	return t->sl > 0;
}

static int udp_socket(int family)
{
	int one = 1, fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof(one));
	else
		setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof(one));
	return fd;
}

/* Reads every pending reply on fd into the targets. */
static void drain(int fd, struct target *t, size_t n, unsigned probes)
{
	for (;;) {
		uint8_t buf[PROBE_LEN + 1];
		union {
			char b[CMSG_SPACE(sizeof(int)) * 4];
			struct cmsghdr align;
		} cb;
		struct iovec iov = {.iov_base = buf, .iov_len = sizeof(buf)};
		struct msghdr mh = {0};
		struct cmsghdr *cm;
		struct probe_msg m;
		uint64_t now;
		int ttl = -1;
		ssize_t got;

		mh.msg_iov = &iov;
		mh.msg_iovlen = 1;
		mh.msg_control = cb.b;
		mh.msg_controllen = sizeof(cb.b);
		got = recvmsg(fd, &mh, MSG_DONTWAIT);
		if (got < 0) {
			if (errno == EINTR || errno == ECONNREFUSED)
				continue; /* an ICMP error of an earlier probe */
			return;
		}
		now = now_us();
		if (!probe_decode(buf, (size_t)got, PROBE_MAGIC_REP, &m))
			continue;
		for (cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
			if ((cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_TTL) ||
			    (cm->cmsg_level == IPPROTO_IPV6 &&
			     cm->cmsg_type == IPV6_HOPLIMIT)) {
				int v;

				memcpy(&v, CMSG_DATA(cm), sizeof(v));
				ttl = v;
			}
		}
		for (size_t i = 0; i < n; i++) {
			struct target *x = &t[i];
			uint32_t k = m.seq - x->seq0;

			if (!x->udp || x->id != m.vendor_id || k >= probes || !x->sent[k] ||
			    x->got[k] || x->sent_us[k] != m.t_send ||
			    memcmp(x->nonce, m.nonce, PROBE_NONCE_LEN) != 0)
				continue;
			x->got[k] = true;
			x->rtt_us[k] = (uint32_t)MIN(now - x->sent_us[k], (uint64_t)UINT32_MAX);
			x->ttl[k] = ttl;
			break;
		}
	}
}

static bool all_in(const struct target *t, size_t n, unsigned probes)
{
	for (size_t i = 0; i < n; i++)
		for (unsigned k = 0; k < probes; k++)
			if (t[i].udp && t[i].sent[k] && !t[i].got[k])
				return false;
	return true;
}

static void udp_round(struct probe *p, struct target *t, size_t n)
{
	unsigned probes = MIN(p->conf.probes, (unsigned)PROBE_MAX_PER_ROUND);
	int fd4 = -1, fd6 = -1;
	uint64_t deadline;

	for (size_t i = 0; i < n; i++) {
		if (!t[i].udp)
			continue;
		if (!resolve(&t[i])) {
			t[i].udp = false;
			continue;
		}
		if (t[i].ss.ss_family == AF_INET6 && fd6 < 0)
			fd6 = udp_socket(AF_INET6);
		else if (t[i].ss.ss_family == AF_INET && fd4 < 0)
			fd4 = udp_socket(AF_INET);
		random_fill(t[i].nonce, sizeof(t[i].nonce));
		t[i].seq0 = p->seq;
		p->seq += probes;
	}
	for (unsigned k = 0; k < probes; k++) {
		for (size_t i = 0; i < n; i++) {
			struct target *x = &t[i];
			struct probe_msg m = {0};
			uint8_t buf[PROBE_LEN];
			int fd = x->ss.ss_family == AF_INET6 ? fd6 : fd4;

			if (!x->udp || fd < 0)
				continue;
			m.magic = PROBE_MAGIC_REQ;
			m.version = PROBE_VERSION;
			m.vendor_id = x->id;
			m.seq = x->seq0 + k;
			memcpy(m.nonce, x->nonce, PROBE_NONCE_LEN);
			memcpy(m.cookie, x->cookie, PROBE_COOKIE_LEN);
			m.t_send = now_us();
			probe_encode(&m, buf);
			x->sent_us[k] = m.t_send;
			/* a send the path refuses counts as a lost probe */
			(void)sendto(fd, buf, PROBE_LEN, MSG_DONTWAIT,
				     (struct sockaddr *)&x->ss, x->sl);
			x->sent[k] = true;
		}
		/* listen between sends so that replies are timed when they arrive */
		for (uint64_t until = now_ms() + GAP_MS; now_ms() < until;) {
			struct pollfd pf[2] = {{.fd = fd4, .events = POLLIN},
					       {.fd = fd6, .events = POLLIN}};

			if (poll(pf, 2, (int)GAP_MS) > 0) {
				if (fd4 >= 0)
					drain(fd4, t, n, probes);
				if (fd6 >= 0)
					drain(fd6, t, n, probes);
			}
		}
	}
	deadline = now_ms() + p->conf.timeout_ms;
	while (!all_in(t, n, probes)) {
		struct pollfd pf[2] = {{.fd = fd4, .events = POLLIN},
				       {.fd = fd6, .events = POLLIN}};
		uint64_t now = now_ms();

		if (now >= deadline)
			break;
		if (poll(pf, 2, (int)MIN(deadline - now, (uint64_t)100)) > 0) {
			if (fd4 >= 0)
				drain(fd4, t, n, probes);
			if (fd6 >= 0)
				drain(fd6, t, n, probes);
		}
		pthread_mutex_lock(&p->lock);
		if (p->stop) {
			pthread_mutex_unlock(&p->lock);
			break;
		}
		pthread_mutex_unlock(&p->lock);
	}
	if (fd4 >= 0)
		close(fd4);
	if (fd6 >= 0)
		close(fd6);
}

static void probe_round(struct probe *p)
{
	struct alloc_volume vol;
	struct target *t = NULL;
	size_t n = 0;

	refresh_vendors(p);
	pthread_mutex_lock(&p->lock);
	if (p->n)
		t = calloc(p->n, sizeof(*t));
	for (size_t i = 0; t && i < p->n; i++) {
		if (!p->v[i].listed)
			continue;
		t[n].id = p->v[i].id;
		memcpy(t[n].addr, p->v[i].addr, sizeof(t[n].addr));
		memcpy(t[n].cookie, p->v[i].cookie, PROBE_COOKIE_LEN);
		t[n].udp = p->v[i].have_cookie;
		t[n].port = p->v[i].udp_port;
		n++;
	}
	pthread_mutex_unlock(&p->lock);
	for (size_t i = 0; i < n; i++) {
		ping_one(p, &t[i]);
		if (t[i].pr_cookie_ok) {
			memcpy(t[i].cookie, t[i].pr_cookie, PROBE_COOKIE_LEN);
			t[i].udp = true;
		}
		pthread_mutex_lock(&p->lock);
		if (p->stop) {
			pthread_mutex_unlock(&p->lock);
			goto out;
		}
		pthread_mutex_unlock(&p->lock);
	}
	udp_round(p, t, n);
	pthread_mutex_lock(&p->lock);
	for (size_t i = 0; i < n; i++) {
		struct pvendor *v = pv_find(p, t[i].id);
		unsigned probes = MIN(p->conf.probes, (unsigned)PROBE_MAX_PER_ROUND);

		if (!v)
			continue;
		if (t[i].ping_ok)
			v->ping_ms = t[i].ping_ms;
		if (t[i].pr_cookie_ok) {
			memcpy(v->cookie, t[i].pr_cookie, PROBE_COOKIE_LEN);
			v->have_cookie = true;
			v->udp_port = t[i].port;
		}
		if (!t[i].udp) {
			/* no UDP responder (or no cookie yet): the ping is the probe */
			outcome(p, v, t[i].ping_ok);
			continue;
		}
		for (unsigned k = 0; k < probes; k++) {
			if (!t[i].sent[k])
				continue;
			outcome(p, v, t[i].got[k]);
			if (!t[i].got[k])
				continue;
			v->rtt_us[v->rtt_pos] = t[i].rtt_us[k];
			v->rtt_pos = (v->rtt_pos + 1) % RTT_WIN;
			if (v->n_rtt < RTT_WIN)
				v->n_rtt++;
			if (t[i].ttl[k] > 0 && t[i].ttl[k] <= PROBE_TTL)
				v->hops = PROBE_TTL - t[i].ttl[k];
		}
	}
	pthread_mutex_unlock(&p->lock);
out:
	free(t);
	pthread_mutex_lock(&p->lock);
	if (alloc_volume_get(p->a, &vol) == 0 && vol.copies)
		p->copies = vol.copies;
	score_all(p);
	p->rounds++;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static void *prober_main(void *arg)
{
	struct probe *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct timespec ts;
		uint64_t ns;

		pthread_mutex_unlock(&p->lock);
		probe_round(p);
		pthread_mutex_lock(&p->lock);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ns = (uint64_t)ts.tv_nsec + (uint64_t)p->conf.interval_ms * 1000000u;
		ts.tv_sec += (time_t)(ns / 1000000000u);
		ts.tv_nsec = (long)(ns % 1000000000u);
		while (!p->stop && pthread_cond_timedwait(&p->cond, &p->lock, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ---- start, stop ---- */

int alloc_probe_start(struct alloc_ctx *a, const struct alloc_probe_conf *c)
{
	struct probe *p;
	pthread_condattr_t ca;
	int rc;

	if (a->probe)
		return -EALREADY;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->a = a;
	p->conf = *c;
	p->decay = pow(0.5, 1.0 / c->avail_halflife);
	p->copies = 2;
	random_fill(&p->seq, sizeof(p->seq));
	pthread_mutex_init(&p->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&p->thr, NULL, prober_main, p);
	if (rc != 0) {
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return -rc;
	}
	pthread_setname_np(p->thr, "alloc-probe");
	p->started = true;
	a->probe = p;
	log_info("probe: probing vendors every %u ms (%u UDP probes each; weights rtt %g hops "
		 "%g avail %g free %g load %g)",
		 c->interval_ms, c->probes, c->w_rtt, c->w_hops, c->w_avail, c->w_free,
		 c->w_load);
	return 0;
}

int alloc_probe_configure(struct alloc_ctx *a, const char *config_file)
{
	struct alloc_probe_conf c;
	char err[256];
	int rc;

	rc = alloc_probe_conf_load(config_file, &c, err, sizeof(err));
	if (rc < 0) {
		log_err("config: %s", err);
		return rc;
	}
	if (!c.enabled) {
		log_info("probe: disabled by [probe] enabled = false");
		return 0;
	}
	return alloc_probe_start(a, &c);
}

void probe_free(struct alloc_ctx *a)
{
	struct probe *p = a->probe;
	uint64_t until;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (p->started)
		pthread_join(p->thr, NULL);
	/* fetch threads are bounded by the call timeout; wait for them */
	until = now_ms() + 3 * (uint64_t)a->timeout_ms + 1000;
	pthread_mutex_lock(&p->lock);
	while (p->threads > 0 && now_ms() < until) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&p->cond, &p->lock, &ts);
	}
	if (p->threads > 0) {
		/* cannot happen with bounded calls; leaking beats a use after free */
		log_err("probe: %u fetch threads did not finish; leaving the table",
			p->threads);
		pthread_mutex_unlock(&p->lock);
		return;
	}
	pthread_mutex_unlock(&p->lock);
	a->probe = NULL;
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p->v);
	free(p);
}

/* ---- what uploads and reads ask ---- */

int probe_alloc_exclude(struct alloc_ctx *a, unsigned copies, uint32_t **ids, size_t *n)
{
	struct probe *p = a->probe;
	struct score_rank *r;
	size_t k = 0, m = 0, usable = 0;

	*ids = NULL;
	*n = 0;
	if (!p)
		return 0;
	pthread_mutex_lock(&p->lock);
	if (p->rounds == 0 || p->n == 0) {
		pthread_mutex_unlock(&p->lock);
		return 0;
	}
	r = calloc(p->n, sizeof(*r));
	*ids = calloc(p->n, sizeof(**ids));
	if (!r || !*ids) {
		pthread_mutex_unlock(&p->lock);
		free(r);
		free(*ids);
		*ids = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; i < p->n; i++) {
		const struct pvendor *v = &p->v[i];

		if (!v->listed || !v->scored)
			continue;
		r[k].vendor_id = v->id;
		r[k].score = v->so.score;
		r[k].discard = v->so.discard;
		snprintf(r[k].zone, sizeof(r[k].zone), "%s", v->zone);
		k++;
	}
	pthread_mutex_unlock(&p->lock);
	score_prefer(r, k, copies, p->conf.spread);
	for (size_t i = 0; i < k; i++)
		if (r[i].preferred)
			usable++;
	if (usable >= copies)
		for (size_t i = 0; i < k; i++)
			if (!r[i].preferred)
				(*ids)[m++] = r[i].vendor_id;
	free(r);
	*n = m;
	if (m == 0) {
		free(*ids);
		*ids = NULL;
	}
	return 0;
}

bool probe_score(struct alloc_ctx *a, uint32_t vendor_id, double *score)
{
	struct probe *p = a->probe;
	struct pvendor *v;
	bool ok = false;

	if (!p)
		return false;
	pthread_mutex_lock(&p->lock);
	v = pv_find(p, vendor_id);
	if (v && v->scored) {
		*score = v->so.discard ? 0 : v->so.score;
		ok = true;
	}
	pthread_mutex_unlock(&p->lock);
	return ok;
}

double probe_spread(struct alloc_ctx *a)
{
	return a->probe ? a->probe->conf.spread : 0;
}

struct rkey {
	uint32_t id;
	unsigned pos;
	bool bad;
	double cost;
};

unsigned probe_read_order(struct alloc_ctx *a, const uint32_t *in, unsigned n, uint32_t *out,
			  bool *hedge)
{
	struct probe *p = a->probe;
	struct rkey k[CHUNK_MAX_CHAIN];
	uint64_t now = now_ms();

	n = MIN(n, (unsigned)CHUNK_MAX_CHAIN);
	*hedge = false;
	if (!p) {
		vstats_order(a->vstats, in, n, out, now);
		return n;
	}
	pthread_mutex_lock(&p->lock);
	if (p->pin) {
		for (unsigned i = 0; i < n; i++)
			if (in[i] == p->pin) {
				out[0] = p->pin;
				pthread_mutex_unlock(&p->lock);
				return 1;
			}
	}
	for (unsigned i = 0; i < n; i++) {
		struct pvendor *v = pv_find(p, in[i]);
		bool pen = false;
		uint64_t est = vstats_estimate(a->vstats, in[i], now, &pen);
		double cost = 0;

		if (v && v->n_lat)
			cost = quantile(v->lat_us, v->n_lat, 0.5);
		else if (v && rtt_ms(v) >= 0)
			cost = rtt_ms(v) * 1000.0;
		else
			cost = (double)est;
		k[i].id = in[i];
		k[i].pos = i;
		k[i].bad = pen || (v && ((v->scored && v->so.discard) || v->stalled));
		k[i].cost = cost * (1.0 + (v ? v->inflight : 0));
	}
	*hedge = p->conf.hedge;
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 1; i < n; i++) {
		struct rkey t = k[i];
		unsigned j = i;

		while (j > 0 && (t.bad != k[j - 1].bad
				     ? !t.bad
				     : (t.cost != k[j - 1].cost ? t.cost < k[j - 1].cost
								: t.pos < k[j - 1].pos))) {
			k[j] = k[j - 1];
			j--;
		}
		k[j] = t;
	}
	for (unsigned i = 0; i < n; i++)
		out[i] = k[i].id;
	return n;
}

static uint64_t bound_us(const struct probe *p, const struct pvendor *v)
{
	uint64_t b;

	if (!v || v->n_lat < 4)
		return (uint64_t)p->conf.hedge_default_ms * 1000;
	b = (uint64_t)(quantile(v->lat_us, v->n_lat, 0.95) * p->conf.hedge_factor) +
	    (uint64_t)p->conf.hedge_min_ms * 1000;
	return b;
}

uint64_t probe_hedge_bound_us(struct alloc_ctx *a, uint32_t vendor_id)
{
	struct probe *p = a->probe;
	uint64_t b;

	if (!p)
		return UINT64_MAX;
	pthread_mutex_lock(&p->lock);
	b = bound_us(p, pv_find(p, vendor_id));
	pthread_mutex_unlock(&p->lock);
	return b;
}

void probe_read_begin(struct alloc_ctx *a, uint32_t vendor_id)
{
	struct probe *p = a->probe;
	struct pvendor *v;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	v = pv_get(p, vendor_id);
	if (v)
		v->inflight++;
	pthread_mutex_unlock(&p->lock);
}

void probe_read_end(struct alloc_ctx *a, uint32_t vendor_id, bool ok, uint64_t us,
		    uint64_t bytes, bool won)
{
	struct probe *p = a->probe;
	struct pvendor *v;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	v = pv_find(p, vendor_id);
	if (v) {
		if (v->inflight)
			v->inflight--;
		v->stalled = false; /* it answered (or gave up): judge it afresh */
		outcome(p, v, ok);
		if (ok) {
			v->lat_us[v->lat_pos] = (uint32_t)MIN(us, (uint64_t)UINT32_MAX);
			v->lat_pos = (v->lat_pos + 1) % LAT_WIN;
			if (v->n_lat < LAT_WIN)
				v->n_lat++;
		} else {
			v->read_fail++;
		}
		if (won) {
			v->reads++;
			v->read_bytes += bytes;
		}
	}
	pthread_mutex_unlock(&p->lock);
}

void probe_note_hedge(struct alloc_ctx *a, uint32_t slow_vendor)
{
	struct probe *p = a->probe;
	struct pvendor *v;

	if (!p)
		return;
	/* it missed its bound: behind the others until it answers again */
	vstats_fail(a->vstats, slow_vendor, now_ms());
	pthread_mutex_lock(&p->lock);
	v = pv_find(p, slow_vendor);
	if (v) {
		v->hedges++;
		v->stalled = true;
	}
	pthread_mutex_unlock(&p->lock);
}

void probe_note_hedge_win(struct alloc_ctx *a, uint32_t vendor_id)
{
	struct probe *p = a->probe;
	struct pvendor *v;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	v = pv_find(p, vendor_id);
	if (v)
		v->hedge_wins++;
	pthread_mutex_unlock(&p->lock);
}

bool probe_thread_get(struct alloc_ctx *a)
{
	struct probe *p = a->probe;
	bool ok = false;

	if (!p)
		return false;
	pthread_mutex_lock(&p->lock);
	if (!p->stop && p->threads < p->conf.hedge_threads) {
		p->threads++;
		ok = true;
	}
	pthread_mutex_unlock(&p->lock);
	return ok;
}

void probe_thread_put(struct alloc_ctx *a)
{
	struct probe *p = a->probe;

	pthread_mutex_lock(&p->lock);
	if (p->threads)
		p->threads--;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void alloc_probe_pin(struct alloc_ctx *a, uint32_t vendor_id)
{
	struct probe *p = a->probe;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->pin = vendor_id;
	pthread_mutex_unlock(&p->lock);
}

/* ---- the report (pstore probe) ---- */

static json_object *jdbl(double d, int decimals)
{
	char buf[32];

	snprintf(buf, sizeof(buf), "%.*f", decimals, d);
	return json_object_new_double_s(d, buf);
}

static const char *verdict(const struct pvendor *v)
{
	if (!v->scored)
		return "unprobed";
	if (v->so.discard)
		return "discarded";
	return v->preferred ? "chosen" : "standby";
}

json_object *alloc_probe_report(struct alloc_ctx *a)
{
	struct probe *p = a->probe;
	json_object *r, *arr, *w;

	if (!p)
		return NULL;
	r = json_object_new_object();
	arr = json_object_new_array();
	w = json_object_new_object();
	pthread_mutex_lock(&p->lock);
	json_object_object_add(r, "rounds", json_object_new_uint64(p->rounds));
	json_object_object_add(r, "copies", json_object_new_int64(p->copies));
	json_object_object_add(r, "interval_ms", json_object_new_int64(p->conf.interval_ms));
	json_object_object_add(r, "pin", json_object_new_int64(p->pin));
	json_object_object_add(w, "rtt", jdbl(p->conf.w_rtt, 3));
	json_object_object_add(w, "hops", jdbl(p->conf.w_hops, 3));
	json_object_object_add(w, "avail", jdbl(p->conf.w_avail, 3));
	json_object_object_add(w, "free", jdbl(p->conf.w_free, 3));
	json_object_object_add(w, "load", jdbl(p->conf.w_load, 3));
	json_object_object_add(r, "weights", w);
	for (size_t i = 0; i < p->n; i++) {
		const struct pvendor *v = &p->v[i];
		json_object *o = json_object_new_object(), *t = json_object_new_object();
		double rtt = rtt_ms(v);
		unsigned bits = MIN(v->n_recent, 20u), ok = 0;
		char why[192];

		if (!v->listed)
			continue;
		for (unsigned b = 0; b < bits; b++)
			ok += (v->recent >> b) & 1u;
		json_object_object_add(o, "id", json_object_new_int64(v->id));
		json_object_object_add(o, "address", json_object_new_string(v->addr));
		json_object_object_add(o, "zone", json_object_new_string(v->zone));
		json_object_object_add(o, "alive", json_object_new_boolean(v->alive));
		json_object_object_add(o, "rtt_ms", rtt >= 0 ? jdbl(rtt, 3) : NULL);
		json_object_object_add(o, "ping_ms",
				       v->ping_ms >= 0 ? jdbl(v->ping_ms, 3) : NULL);
		json_object_object_add(o, "udp", json_object_new_boolean(v->have_cookie));
		json_object_object_add(o, "hops",
				       v->hops >= 0 ? json_object_new_int(v->hops) : NULL);
		json_object_object_add(o, "availability",
				       jdbl(v->tot_w > 0 ? v->succ_w / v->tot_w : 0, 3));
		json_object_object_add(o, "probes", json_object_new_int64(v->samples));
		json_object_object_add(o, "recent_answered", json_object_new_int64(ok));
		json_object_object_add(o, "recent_sent", json_object_new_int64(bits));
		json_object_object_add(o, "lost_in_a_row", json_object_new_int64(v->silent));
		json_object_object_add(o, "free", json_object_new_uint64(v->free));
		json_object_object_add(o, "capacity", json_object_new_uint64(v->capacity));
		json_object_object_add(o, "load", json_object_new_int64(v->load));
		json_object_object_add(o, "score", jdbl(v->so.score, 4));
		json_object_object_add(t, "rtt", jdbl(v->so.c_rtt, 4));
		json_object_object_add(t, "hops", jdbl(v->so.c_hops, 4));
		json_object_object_add(t, "avail", jdbl(v->so.c_avail, 4));
		json_object_object_add(t, "free", jdbl(v->so.c_free, 4));
		json_object_object_add(t, "load", jdbl(v->so.c_load, 4));
		json_object_object_add(o, "terms", t);
		json_object_object_add(o, "verdict", json_object_new_string(verdict(v)));
		if (v->so.discard)
			snprintf(why, sizeof(why), "%s", v->so.reason);
		else if (v->scored && !v->preferred)
			snprintf(why, sizeof(why),
				 "score %.3f: outside the preferred set (the best, at least "
				 "copies + 1 = %u, within %.0f%% of the top score)",
				 v->so.score, p->copies + 1, p->conf.spread * 100);
		else
			why[0] = '\0';
		json_object_object_add(o, "reason", json_object_new_string(why));
		json_object_object_add(o, "hedge_ms", jdbl(bound_us(p, v) / 1000.0, 1));
		json_object_object_add(o, "reads", json_object_new_uint64(v->reads));
		json_object_object_add(o, "read_bytes", json_object_new_uint64(v->read_bytes));
		json_object_object_add(o, "read_failures",
				       json_object_new_uint64(v->read_fail));
		json_object_object_add(o, "inflight", json_object_new_int64(v->inflight));
		json_object_object_add(o, "stalled", json_object_new_boolean(v->stalled));
		json_object_object_add(o, "hedges", json_object_new_uint64(v->hedges));
		json_object_object_add(o, "hedge_wins", json_object_new_uint64(v->hedge_wins));
		json_object_array_add(arr, o);
	}
	pthread_mutex_unlock(&p->lock);
	json_object_object_add(r, "vendors", arr);
	return r;
}
