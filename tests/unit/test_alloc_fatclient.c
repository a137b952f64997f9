/*
 * test_alloc_fatclient.c - the FAT client's failover (src/alloc/fatclient.c)
 * over real mutual TLS on loopback: an address that hangs is skipped and
 * the one that answered is tried first afterwards, an error the server
 * reports is returned at once, a call with no server answering gives up
 * within about 3 x timeout; metadata paging follows `more` and refuses keys
 * that do not ascend.  The server here answers a handful of requests the
 * way pstore-fatd does; the real daemon is exercised by the integration
 * tests.  Certificates come from a throwaway CA made by pki.sh.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "alloc.h"
#include "common.h"

#define N_KEYS 7
#define PAGE 3

static char pki[256];
static char live_addr[64], hang_addr[64];
static struct event_base *base;
static pthread_t loop_thread;
static struct xport_server *srv;
static struct xport_tls *stls, *ctls;
static int hang_fd = -1;
static unsigned volume_gets; /* loop thread only writes; read after calls return */
static bool bad_order;

static void reply_volume(struct xport_req *req)
{
	Pstore__VolumeGet *in =
	    (Pstore__VolumeGet *)xport_req_unpack(req, &pstore__volume_get__descriptor);
	Pstore__VolumeInfo out = PSTORE__VOLUME_INFO__INIT;
	uint8_t id[16] = {1, 2, 3};

	__atomic_add_fetch(&volume_gets, 1, __ATOMIC_SEQ_CST);
	if (!in) {
		xport_reply_error(req, EBADMSG, "bad request");
		return;
	}
	if (strcmp(in->name, "missing") == 0) {
		xport_reply_error(req, ENOENT, "no volume %s", in->name);
	} else {
		out.name = in->name;
		out.id.data = id;
		out.id.len = sizeof(id);
		out.copies = 2;
		out.chunk_size = 4u << 20;
		out.revision = 5;
		xport_reply(req, &out.base, NULL, 0);
	}
	pstore__volume_get__free_unpacked(in, NULL);
}

/* Keys "k0".."k6" in pages of PAGE, after the `after` key. */
static void reply_meta(struct xport_req *req)
{
	Pstore__ListRequest *in =
	    (Pstore__ListRequest *)xport_req_unpack(req, &pstore__list_request__descriptor);
	Pstore__MetaListReply out = PSTORE__META_LIST_REPLY__INIT;
	Pstore__MetaOp ops[PAGE], *opp[PAGE];
	char keys[PAGE][8];
	int start = 0;

	if (!in) {
		xport_reply_error(req, EBADMSG, "bad request");
		return;
	}
	if (in->after.len == 2)
		start = in->after.data[1] - '0' + 1;
	for (int i = 0; i < PAGE && start + i < N_KEYS; i++) {
		int k = bad_order ? N_KEYS - 1 - (start + i) : start + i;

		pstore__meta_op__init(&ops[i]);
		snprintf(keys[i], sizeof(keys[i]), "k%d", k);
		ops[i].key.data = (uint8_t *)keys[i];
		ops[i].key.len = 2;
		ops[i].value.data = (uint8_t *)keys[i];
		ops[i].value.len = 2;
		ops[i].del = k == 4; /* a deleted key is not handed to the callback */
		opp[i] = &ops[i];
		out.n_items++;
	}
	out.items = opp;
	out.more = start + PAGE < N_KEYS;
	xport_reply(req, &out.base, NULL, 0);
	pstore__list_request__free_unpacked(in, NULL);
}

static void handler(struct xport_req *req, void *arg)
{
	(void)arg;
	switch (req->type) {
	case MSG_VOLUME_GET:
		reply_volume(req);
		break;
	case MSG_META_LIST:
		reply_meta(req);
		break;
	case MSG_STATFS: {
		Pstore__StatfsReply r = PSTORE__STATFS_REPLY__INIT;

		r.capacity = 100;
		r.free = 40;
		r.used = 60;
		xport_reply(req, &r.base, NULL, 0);
		break;
	}
	default:
		xport_reply_error(req, EOPNOTSUPP, "not in this test");
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

/* A TCP listener that never accepts: connects succeed, TLS never answers. */
static int hanging_listener(char *out, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		return -1;
	snprintf(out, len, "127.0.0.1:%u", ntohs(sa.sin_port));
	return fd;
}

static int setup(void **state)
{
	char cmd[512];

	(void)state;
	log_init("test_alloc_fatclient", LOG_ERR);
	snprintf(pki, sizeof(pki), "/tmp/pstore-test-alloc-pki-%d", (int)getpid());
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
	snprintf(live_addr, sizeof(live_addr), "127.0.0.1:%u", xport_server_port(srv));
	hang_fd = hanging_listener(hang_addr, sizeof(hang_addr));
	if (hang_fd < 0)
		return -1;
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
	event_base_loop(base, EVLOOP_NONBLOCK);
	event_base_free(base);
	xport_tls_free(stls);
	xport_tls_free(ctls);
	close(hang_fd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", pki);
	return system(cmd) == 0 ? 0 : -1;
}

static struct alloc_ctx *ctx(struct xport_pool *pool, const char **addrs, size_t n, int tmo)
{
	struct alloc_opts o = {.fat_addrs = addrs, .n_fat = n, .timeout_ms = tmo};

	return alloc_new(pool, &o);
}

static void test_failover_and_last_good(void **state)
{
	struct xport_pool *pool = xport_pool_new(ctls, 2);
	const char *addrs[] = {hang_addr, live_addr};
	struct alloc_ctx *a = ctx(pool, addrs, 2, 400);
	struct alloc_volume v;
	uint64_t t0;

	(void)state;
	assert_non_null(a);
	t0 = now_ms();
	assert_int_equal(alloc_volume_open(a, "vol", &v), 0);
	assert_true(now_ms() - t0 >= 300); /* the hanging address was tried first */
	assert_string_equal(v.name, "vol");
	assert_int_equal(v.copies, 2);
	assert_int_equal(alloc_volume(a)->chunk_size, 4u << 20);
	/* the address that answered is tried first now: no timeout to wait */
	t0 = now_ms();
	for (int i = 0; i < 5; i++)
		assert_int_equal(alloc_volume_open(a, "vol", &v), 0);
	assert_true(now_ms() - t0 < 300);
	alloc_free(a);
	xport_pool_free(pool);
}

static void test_server_error_at_once(void **state)
{
	struct xport_pool *pool = xport_pool_new(ctls, 2);
	const char *addrs[] = {live_addr, live_addr};
	struct alloc_ctx *a = ctx(pool, addrs, 2, 2000);
	unsigned before = __atomic_load_n(&volume_gets, __ATOMIC_SEQ_CST);
	struct alloc_volume v;

	(void)state;
	assert_int_equal(alloc_volume_open(a, "missing", &v), -ENOENT);
	/* asked once, not once per address */
	assert_int_equal(__atomic_load_n(&volume_gets, __ATOMIC_SEQ_CST) - before, 1);
	assert_null(alloc_volume(a));
	alloc_free(a);
	xport_pool_free(pool);
}

static void test_gives_up_bounded(void **state)
{
	struct xport_pool *pool = xport_pool_new(ctls, 2);
	const char *addrs[] = {hang_addr, "127.0.0.1:1"};
	struct alloc_ctx *a = ctx(pool, addrs, 2, 300);
	struct alloc_volume v;
	uint64_t t0 = now_ms();
	int rc;

	(void)state;
	rc = alloc_volume_open(a, "vol", &v);
	assert_true(rc == -ETIMEDOUT || rc == -ECONNREFUSED);
	/* about 3 x timeout, never much more */
	assert_true(now_ms() - t0 < 3 * 300 + 700);
	alloc_free(a);
	xport_pool_free(pool);
}

struct seen {
	char keys[16][8];
	int n;
};

static int collect(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen, void *arg)
{
	struct seen *s = arg;

	assert_int_equal(klen, vlen);
	assert_memory_equal(key, val, klen);
	if (s->n < 16)
		snprintf(s->keys[s->n++], 8, "%.*s", (int)klen, (const char *)key);
	return 0;
}

static void test_meta_paging_and_statfs(void **state)
{
	struct xport_pool *pool = xport_pool_new(ctls, 2);
	const char *addrs[] = {live_addr};
	struct alloc_ctx *a = ctx(pool, addrs, 1, 2000);
	struct alloc_volume v;
	struct seen s = {0};
	uint64_t cap = 0, fr = 0, used = 0;

	(void)state;
	/* no volume open yet */
	assert_int_equal(alloc_meta_list(a, collect, &s), -ENOENT);
	assert_int_equal(alloc_volume_open(a, "vol", &v), 0);
	bad_order = false;
	assert_int_equal(alloc_meta_list(a, collect, &s), 0);
	assert_int_equal(s.n, N_KEYS - 1); /* k4 is deleted */
	assert_string_equal(s.keys[0], "k0");
	assert_string_equal(s.keys[3], "k3");
	assert_string_equal(s.keys[4], "k5");
	assert_string_equal(s.keys[5], "k6");
	/* a server sending keys that do not ascend could make paging loop */
	bad_order = true;
	memset(&s, 0, sizeof(s));
	assert_int_equal(alloc_meta_list(a, collect, &s), -EBADMSG);
	bad_order = false;
	assert_int_equal(alloc_statfs(a, &cap, &fr, &used), 0);
	assert_int_equal(cap, 100);
	assert_int_equal(fr, 40);
	assert_int_equal(used, 60);
	alloc_free(a);
	xport_pool_free(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_failover_and_last_good),
	    cmocka_unit_test(test_server_error_at_once),
	    cmocka_unit_test(test_gives_up_bounded),
	    cmocka_unit_test(test_meta_paging_and_statfs),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
