/*
 * test_transport.c - the transport end to end in one process: a libevent TLS
 * server on 127.0.0.1 in a thread, pooled blocking clients calling it.
 * Certificates come from a throwaway CA made by pki.sh.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "common.h"
#include "pstore.pb-c.h"
#include "xport.h"

static char pki[256];
static char addr[64];
static struct event_base *base;
static pthread_t loop_thread;
static struct xport_server *srv;
static struct xport_tls *stls, *ctls;

static void *worker_reply(void *arg)
{
	struct xport_req *req = arg;
	Pstore__VolumeGet *in =
	    (Pstore__VolumeGet *)xport_req_unpack(req, &pstore__volume_get__descriptor);
	Pstore__VolumeInfo out = PSTORE__VOLUME_INFO__INIT;

	usleep(1000);
	out.name = in ? in->name : "";
	out.copies = (uint32_t)req->data_len;
	xport_reply(req, &out.base, req->data, req->data_len);
	if (in)
		pstore__volume_get__free_unpacked(in, NULL);
	return NULL;
}

/* MSG_VOLUME_GET echoes the name and data from a worker thread; MSG_PING
 * answers at once; MSG_STATFS answers with an error; others abort. */
static void handler(struct xport_req *req, void *arg)
{
	pthread_t t;

	(void)arg;
	switch (req->type) {
	case MSG_VOLUME_GET:
		pthread_create(&t, NULL, worker_reply, req);
		pthread_detach(t);
		break;
	case MSG_PING: {
		Pstore__Empty e = PSTORE__EMPTY__INIT;

		xport_reply(req, &e.base, NULL, 0);
		break;
	}
	case MSG_STATFS:
		xport_reply_error(req, ENOSPC, "peer %s is full", req->peer);
		break;
	default:
		xport_req_abort(req);
	}
}

static void *loop_main(void *arg)
{
	(void)arg;
	event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static char *pki_file(const char *name)
{
	static char buf[8][320];
	static int i;

	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", pki, name);
	return buf[i];
}

static int setup(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(pki, sizeof(pki), "/tmp/pstore-test-pki-%d", (int)getpid());
	snprintf(cmd, sizeof(cmd), "%s/pki.sh %s fat:1 client:t",
		 getenv("PKI_SH_DIR") ? getenv("PKI_SH_DIR") : ".", pki);
	if (system(cmd) != 0)
		return -1;
	stls = xport_tls_new(pki_file("ca.crt"), pki_file("fat_1.crt"), pki_file("fat_1.key"),
			     true);
	ctls = xport_tls_new(pki_file("ca.crt"), pki_file("client_t.crt"),
			     pki_file("client_t.key"), false);
	if (!stls || !ctls)
		return -1;
	base = event_base_new();
	srv = xport_server_new(base, stls, "127.0.0.1:0", handler, NULL);
	if (!srv)
		return -1;
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", xport_server_port(srv));
	pthread_create(&loop_thread, NULL, loop_main, NULL);
	return 0;
}

static int teardown(void **state)
{
	char cmd[512];

	(void)state;
	event_base_loopbreak(base);
	pthread_join(loop_thread, NULL);
	xport_server_free(srv);
	/* closed bufferevents are finalized by the loop */
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_free(base);
	xport_tls_free(stls);
	xport_tls_free(ctls);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", pki);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_call_roundtrip(void **state)
{
	struct xport_pool *pool = xport_pool_new(ctls, 2);
	Pstore__VolumeGet req = PSTORE__VOLUME_GET__INIT;
	struct xport_reply r;
	size_t big = 5u << 20;
	uint8_t *data = malloc(big);

	(void)state;
	random_fill(data, big);
	req.name = "hello";
	for (int i = 0; i < 3; i++) {
		size_t len = i == 2 ? big : (size_t)i * 1000;
		Pstore__VolumeInfo *vi;

		assert_int_equal(xport_call(pool, addr, MSG_VOLUME_GET, &req.base, data, len,
					    &pstore__volume_info__descriptor, &r, 5000, NULL,
					    0),
				 0);
		vi = (Pstore__VolumeInfo *)r.msg;
		assert_string_equal(vi->name, "hello");
		assert_int_equal(vi->copies, len);
		assert_int_equal(r.data_len, len);
		assert_memory_equal(r.data, data, len);
		xport_reply_clear(&r);
	}
	free(data);
	xport_pool_free(pool);
}

/* The client checks who answers: any certificate of the CA verifies, so an
 * address's expected role (or exact CN) is checked after the handshake.
 * The server here is fat:1. */
static void test_expected_peer(void **state)
{
	struct xport_pool *pool = xport_pool_new(ctls, 2);
	Pstore__Empty e = PSTORE__EMPTY__INIT;
	struct xport_reply r;

	(void)state;
	assert_int_equal(xport_pool_expect(pool, addr, "fat:"), 0);
	assert_int_equal(
	    xport_call(pool, addr, MSG_PING, &e.base, NULL, 0, NULL, &r, 5000, NULL, 0), 0);
	xport_reply_clear(&r);
	/* the idle connection is not reused for someone else */
	assert_int_equal(xport_pool_expect(pool, addr, "vendor:3"), 0);
	assert_int_equal(
	    xport_call(pool, addr, MSG_PING, &e.base, NULL, 0, NULL, &r, 5000, NULL, 0),
	    -EACCES);
	xport_reply_clear(&r);
	assert_int_equal(xport_pool_expect(pool, addr, "fat:2"), 0);
	assert_int_equal(
	    xport_call(pool, addr, MSG_PING, &e.base, NULL, 0, NULL, &r, 5000, NULL, 0),
	    -EACCES);
	xport_reply_clear(&r);
	assert_int_equal(xport_pool_expect(pool, addr, "fat:1"), 0);
	assert_int_equal(
	    xport_call(pool, addr, MSG_PING, &e.base, NULL, 0, NULL, &r, 5000, NULL, 0), 0);
	xport_reply_clear(&r);
	/* a per-call expectation wins over the pool's */
	assert_int_equal(xport_call2_expect(pool, addr, "client:", MSG_PING, &e.base, NULL, 0,
					    NULL, 0, NULL, &r, 5000, NULL, 0),
			 -EACCES);
	xport_reply_clear(&r);
	assert_int_equal(xport_call2_expect(pool, addr, "fat:1", MSG_PING, &e.base, NULL, 0,
					    NULL, 0, NULL, &r, 5000, NULL, 0),
			 0);
	xport_reply_clear(&r);
	/* "fat:" needs an id; no expectation: anyone of the CA */
	assert_int_equal(xport_pool_expect(pool, addr, "fat"), 0);
	assert_int_equal(
	    xport_call(pool, addr, MSG_PING, &e.base, NULL, 0, NULL, &r, 5000, NULL, 0),
	    -EACCES);
	xport_reply_clear(&r);
	assert_int_equal(xport_pool_expect(pool, addr, NULL), 0);
	assert_int_equal(
	    xport_call(pool, addr, MSG_PING, &e.base, NULL, 0, NULL, &r, 5000, NULL, 0), 0);
	xport_reply_clear(&r);
	xport_pool_free(pool);
}

static void test_error_reply(void **state)
{
	struct xport_pool *pool = xport_pool_new(ctls, 2);
	Pstore__Empty e = PSTORE__EMPTY__INIT;
	struct xport_reply r;
	char err[128];

	(void)state;
	assert_int_equal(xport_call(pool, addr, MSG_STATFS, &e.base, NULL, 0, NULL, &r, 5000,
				    err, sizeof(err)),
			 -ENOSPC);
	assert_string_equal(err, "peer client:t is full");
	xport_reply_clear(&r);
	/* the connection stays usable after an error reply */
	assert_int_equal(
	    xport_call(pool, addr, MSG_PING, &e.base, NULL, 0, NULL, &r, 5000, NULL, 0), 0);
	xport_reply_clear(&r);
	xport_pool_free(pool);
}

static void test_abort_then_serve(void **state)
{
	struct xport_pool *pool = xport_pool_new(ctls, 2);
	Pstore__Empty e = PSTORE__EMPTY__INIT;
	struct xport_reply r;

	(void)state;
	assert_int_equal(
	    xport_call(pool, addr, MSG_COMMIT, &e.base, NULL, 0, NULL, &r, 3000, NULL, 0),
	    -ECONNRESET);
	xport_reply_clear(&r);
	assert_int_equal(
	    xport_call(pool, addr, MSG_PING, &e.base, NULL, 0, NULL, &r, 3000, NULL, 0), 0);
	xport_reply_clear(&r);
	xport_pool_free(pool);
}

static void test_garbage_and_plaintext(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct xport_pool *pool = xport_pool_new(ctls, 2);
	Pstore__Empty e = PSTORE__EMPTY__INIT;
	struct xport_reply r;
	char junk[4096], buf[64];
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	(void)state;
	sa.sin_port = htons(xport_server_port(srv));
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	random_fill(junk, sizeof(junk));
	(void)!write(fd, junk, sizeof(junk));
	/* the server closes a connection that is not TLS */
	{
		struct timeval tv = {5, 0};

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		while (read(fd, buf, sizeof(buf)) > 0)
			;
	}
	close(fd);
	assert_int_equal(
	    xport_call(pool, addr, MSG_PING, &e.base, NULL, 0, NULL, &r, 3000, NULL, 0), 0);
	xport_reply_clear(&r);
	xport_pool_free(pool);
}

static void test_refused_and_timeout(void **state)
{
	struct xport_pool *pool = xport_pool_new(ctls, 2);
	Pstore__Empty e = PSTORE__EMPTY__INIT;
	struct xport_reply r;
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	char a[64];
	uint64_t t0;

	(void)state;
	/* a listener that never answers: the call gives up at its deadline */
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	listen(lfd, 4);
	getsockname(lfd, (struct sockaddr *)&sa, &sl);
	snprintf(a, sizeof(a), "127.0.0.1:%u", ntohs(sa.sin_port));
	t0 = now_ms();
	assert_int_equal(
	    xport_call(pool, a, MSG_PING, &e.base, NULL, 0, NULL, &r, 300, NULL, 0),
	    -ETIMEDOUT);
	assert_true(now_ms() - t0 < 2000);
	close(lfd);
	xport_reply_clear(&r);
	assert_int_equal(
	    xport_call(pool, a, MSG_PING, &e.base, NULL, 0, NULL, &r, 300, NULL, 0),
	    -ECONNREFUSED);
	xport_reply_clear(&r);
	xport_pool_free(pool);
}

struct par {
	struct xport_pool *pool;
	int ok;
};

static void *par_main(void *arg)
{
	struct par *p = arg;
	Pstore__VolumeGet req = PSTORE__VOLUME_GET__INIT;
	uint8_t data[10000];

	req.name = "x";
	random_fill(data, sizeof(data));
	for (int i = 0; i < 50; i++) {
		struct xport_reply r;

		if (xport_call(p->pool, addr, MSG_VOLUME_GET, &req.base, data, sizeof(data),
			       &pstore__volume_info__descriptor, &r, 5000, NULL, 0) == 0 &&
		    r.data_len == sizeof(data) && memcmp(r.data, data, sizeof(data)) == 0)
			p->ok++;
		xport_reply_clear(&r);
	}
	return NULL;
}

static void test_parallel_callers(void **state)
{
	struct xport_pool *pool = xport_pool_new(ctls, 4);
	pthread_t t[8];
	struct par p[8];

	(void)state;
	for (int i = 0; i < 8; i++) {
		p[i] = (struct par){pool, 0};
		pthread_create(&t[i], NULL, par_main, &p[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(p[i].ok, 50);
	}
	xport_pool_free(pool);
}

static void test_frame_bounds(void **state)
{
	struct xport_frame_hdr h = {.type = MSG_PING, .req_id = 7, .ctl_len = 3, .data_len = 9};
	uint8_t raw[XPORT_FRAME_HDR_LEN];
	struct xport_frame_hdr d;

	(void)state;
	xport_frame_encode(&h, raw);
	assert_int_equal(xport_frame_decode(raw, &d), 0);
	assert_int_equal(d.req_id, 7);
	assert_int_equal(d.data_len, 9);
	h.data_len = XPORT_MAX_DATA + 1;
	xport_frame_encode(&h, raw);
	assert_int_equal(xport_frame_decode(raw, &d), -EMSGSIZE);
	raw[0] ^= 1;
	assert_int_equal(xport_frame_decode(raw, &d), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_frame_bounds),
	    cmocka_unit_test(test_call_roundtrip),
	    cmocka_unit_test(test_error_reply),
	    cmocka_unit_test(test_expected_peer),
	    cmocka_unit_test(test_abort_then_serve),
	    cmocka_unit_test(test_garbage_and_plaintext),
	    cmocka_unit_test(test_refused_and_timeout),
	    cmocka_unit_test(test_parallel_callers),
	};

	log_init("test_transport", getenv("XPORT_DEBUG") ? LOG_DEBUG : LOG_WARN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
