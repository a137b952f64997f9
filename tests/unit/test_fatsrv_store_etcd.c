/*
 * test_fatsrv_store_etcd.c - the FAT store suite of test_fatsrv_store.c run
 * unchanged on the etcd backend (a real single-member etcd on 127.0.0.1
 * with mutual TLS, started here), then what only a shared store has: two
 * FAT servers (two connections) racing, where commit must return -EAGAIN
 * on any change to what a txn read or scanned, snapshot reads, the leader
 * fence, leases, and failover past a dead endpoint.
 *
 * Skipped (exit 77) only when the `etcd` binary is missing.
 */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include "etcd.h"

static char etcd_dir[64];
static char etcd_url[64];
static pid_t etcd_pid;
static char pki_ca[128], pki_cert[128], pki_key[128];

static int etcd_test_open(const char *dir, struct fat_store **out);

/* The LMDB suite, with the store opened on etcd instead.  Each fixture's
 * fresh temporary dir becomes its key prefix, so tests start empty. */
#define fat_store_open_lmdb(dir, size, out) etcd_test_open(dir, out)
#define main store_suite_main
#include "test_fatsrv_store.c"
#undef main
#undef fat_store_open_lmdb

static struct etcd_conn *conn_to(const char *endpoints)
{
	struct etcd_conn *c = NULL;

	assert_int_equal(etcd_conn_new(endpoints, pki_ca, pki_cert, pki_key, 2000, 6000, &c),
			 0);
	return c;
}

static int etcd_test_open(const char *dir, struct fat_store **out)
{
	char prefix[96];

	snprintf(prefix, sizeof(prefix), "%s/", dir);
	return fat_store_open_etcd(conn_to(etcd_url), prefix, out);
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) < 0)
		abort();
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static void stop_etcd(void)
{
	char cmd[128];

	if (etcd_pid > 0) {
		kill(etcd_pid, SIGKILL);
		waitpid(etcd_pid, NULL, 0);
		etcd_pid = 0;
	}
	if (etcd_dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf %s", etcd_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "cannot remove %s\n", etcd_dir);
		etcd_dir[0] = '\0';
	}
}

/* 0 when started and answering; 77 when etcd is not installed */
static int start_etcd(void)
{
	char src[] = __FILE__, cmd[512], data[128], log[128], peer[64], cluster[128];
	int cport = free_port(), pport = free_port();
	struct fat_store *s = NULL;

	if (system("command -v etcd >/dev/null 2>&1") != 0) {
		printf(
		    "SKIP: the etcd binary is not installed (apt-get install etcd-server)\n");
		return 77;
	}
	strcpy(etcd_dir, "/tmp/test_fatsrv_etcd.XXXXXX");
	if (!mkdtemp(etcd_dir))
		return 1;
	snprintf(cmd, sizeof(cmd), "sh %s/pki.sh %s/pki test:etcd fat:1", dirname(src),
		 etcd_dir);
	if (system(cmd) != 0) {
		fprintf(stderr, "pki.sh failed\n");
		return 1;
	}
	snprintf(pki_ca, sizeof(pki_ca), "%s/pki/ca.crt", etcd_dir);
	snprintf(pki_cert, sizeof(pki_cert), "%s/pki/fat_1.crt", etcd_dir);
	snprintf(pki_key, sizeof(pki_key), "%s/pki/fat_1.key", etcd_dir);
	snprintf(etcd_url, sizeof(etcd_url), "https://127.0.0.1:%d", cport);
	snprintf(peer, sizeof(peer), "https://127.0.0.1:%d", pport);
	snprintf(cluster, sizeof(cluster), "t=%s", peer);
	snprintf(data, sizeof(data), "%s/data", etcd_dir);
	snprintf(log, sizeof(log), "%s/etcd.log", etcd_dir);
	etcd_pid = fork();
	if (etcd_pid < 0)
		return 1;
	if (etcd_pid == 0) {
		char crt[128], key[128];
		FILE *f = freopen(log, "w", stderr);

		(void)f;
		snprintf(crt, sizeof(crt), "%s/pki/test_etcd.crt", etcd_dir);
		snprintf(key, sizeof(key), "%s/pki/test_etcd.key", etcd_dir);
		execlp("etcd", "etcd", "--name", "t", "--data-dir", data,
		       "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
		       "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		       "--initial-cluster", cluster, "--initial-cluster-state", "new",
		       "--cert-file", crt, "--key-file", key, "--client-cert-auth",
		       "--trusted-ca-file", pki_ca, "--peer-cert-file", crt, "--peer-key-file",
		       key, "--peer-client-cert-auth", "--peer-trusted-ca-file", pki_ca,
		       "--max-txn-ops", "10000", "--max-request-bytes", "16777216", "--logger",
		       "zap", "--log-level", "warn", (char *)NULL);
		_exit(127);
	}
	atexit(stop_etcd);
	/* wait until it answers (over TLS, with our client certificate) */
	for (int i = 0; i < 100; i++) {
		struct etcd_conn *c = NULL;
		struct timespec ts = {.tv_nsec = 100000000L};

		if (etcd_conn_new(etcd_url, pki_ca, pki_cert, pki_key, 500, 500, &c) == 0 &&
		    fat_store_open_etcd(c, "probe/", &s) == 0) {
			fat_store_close(s);
			return 0;
		}
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "etcd did not come up; see %s\n", log);
	return 1;
}

/* ---- what only a shared store has ---- */

struct pair {
	char pfx[64];
	struct fat_store *a, *b; /* two FAT servers on one etcd */
};

static int pair_setup(void **state)
{
	static unsigned n;
	struct pair *p = calloc(1, sizeof(*p));

	snprintf(p->pfx, sizeof(p->pfx), "pair%u.%ld/", n++, (long)getpid());
	assert_int_equal(fat_store_open_etcd(conn_to(etcd_url), p->pfx, &p->a), 0);
	assert_int_equal(fat_store_open_etcd(conn_to(etcd_url), p->pfx, &p->b), 0);
	*state = p;
	return 0;
}

static int pair_teardown(void **state)
{
	struct pair *p = *state;

	fat_store_close(p->a);
	fat_store_close(p->b);
	free(p);
	return 0;
}

static void commit_put(struct fat_store *s, const char *k, const char *v)
{
	struct fat_txn *t;

	assert_int_equal(fat_txn_begin(s, false, &t), 0);
	put_s(t, k, v);
	assert_int_equal(fat_txn_commit(t), 0);
}

static void commit_del(struct fat_store *s, const char *k)
{
	struct fat_txn *t;

	assert_int_equal(fat_txn_begin(s, false, &t), 0);
	assert_int_equal(fat_txn_del(t, k, strlen(k)), 0);
	assert_int_equal(fat_txn_commit(t), 0);
}

static void test_conflict_on_read(void **state)
{
	struct pair *p = *state;
	struct fat_txn *t;

	/* read absent, the other server creates it: conflict */
	assert_int_equal(fat_txn_begin(p->a, false, &t), 0);
	expect_absent(t, "k");
	commit_put(p->b, "k", "b");
	put_s(t, "k", "a");
	assert_int_equal(fat_txn_commit(t), -EAGAIN);
	/* read a value, the other server changes it: conflict, nothing applied */
	assert_int_equal(fat_txn_begin(p->a, false, &t), 0);
	expect_val(t, "k", "b");
	commit_put(p->b, "k", "b2");
	put_s(t, "k", "a");
	put_s(t, "other", "x");
	assert_int_equal(fat_txn_commit(t), -EAGAIN);
	assert_int_equal(fat_txn_begin(p->a, true, &t), 0);
	expect_val(t, "k", "b2");
	expect_absent(t, "other");
	fat_txn_abort(t);
	/* the other server deletes what we read: conflict */
	assert_int_equal(fat_txn_begin(p->a, false, &t), 0);
	expect_val(t, "k", "b2");
	commit_del(p->b, "k");
	put_s(t, "x", "1");
	assert_int_equal(fat_txn_commit(t), -EAGAIN);
	/* a change to a key we did not read is no conflict */
	assert_int_equal(fat_txn_begin(p->a, false, &t), 0);
	expect_absent(t, "k");
	commit_put(p->b, "unrelated", "1");
	put_s(t, "k", "mine");
	assert_int_equal(fat_txn_commit(t), 0);
}

static int count_cb(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen, void *arg)
{
	(void)key;
	(void)klen;
	(void)val;
	(void)vlen;
	(*(int *)arg)++;
	return 0;
}

static void test_conflict_on_scan(void **state)
{
	struct pair *p = *state;
	struct fat_txn *t;
	int n = 0;

	/* a key appears in a scanned range */
	assert_int_equal(fat_txn_begin(p->a, false, &t), 0);
	assert_int_equal(fat_txn_scan(t, "r/", 2, NULL, 0, 0, count_cb, &n, NULL), 0);
	assert_int_equal(n, 0);
	commit_put(p->b, "r/new", "1");
	put_s(t, "decided", "empty");
	assert_int_equal(fat_txn_commit(t), -EAGAIN);
	/* a scanned key disappears */
	n = 0;
	assert_int_equal(fat_txn_begin(p->a, false, &t), 0);
	assert_int_equal(fat_txn_scan(t, "r/", 2, NULL, 0, 0, count_cb, &n, NULL), 0);
	assert_int_equal(n, 1);
	commit_del(p->b, "r/new");
	put_s(t, "decided", "one");
	assert_int_equal(fat_txn_commit(t), -EAGAIN);
	/* a change outside the scanned range is no conflict; nor one past a
	 * limited scan's last key */
	commit_put(p->b, "r/a", "1");
	commit_put(p->b, "r/b", "1");
	n = 0;
	assert_int_equal(fat_txn_begin(p->a, false, &t), 0);
	assert_int_equal(fat_txn_scan(t, "r/", 2, NULL, 0, 1, count_cb, &n, NULL), 0);
	assert_int_equal(n, 1);
	commit_put(p->b, "s/x", "1");
	commit_put(p->b, "r/c", "1");
	put_s(t, "decided", "first");
	assert_int_equal(fat_txn_commit(t), 0);
}

static void test_snapshot(void **state)
{
	struct pair *p = *state;
	struct fat_txn *t;
	int n = 0;

	commit_put(p->b, "a", "1");
	commit_put(p->b, "b", "1");
	assert_int_equal(fat_txn_begin(p->a, true, &t), 0);
	expect_val(t, "a", "1");
	commit_put(p->b, "b", "2");
	commit_put(p->b, "c", "2");
	expect_val(t, "b", "1"); /* read at the txn's snapshot */
	expect_absent(t, "c");
	assert_int_equal(fat_txn_scan(t, "", 0, NULL, 0, 0, count_cb, &n, NULL), 0);
	assert_int_equal(n, 2);
	fat_txn_abort(t);
}

struct incr {
	struct pair *p;
	int calls;
};

/* increments "n"; on its first run the other server sneaks in a change */
static int incr_fn(struct fat_txn *t, void *arg)
{
	struct incr *in = arg;
	const void *v;
	size_t vl;
	char buf[32];
	long n = 0;
	int rc;

	in->calls++;
	rc = fat_txn_get(t, "n", 1, &v, &vl);
	if (rc == 0) {
		memcpy(buf, v, MIN(vl, sizeof(buf) - 1));
		buf[MIN(vl, sizeof(buf) - 1)] = '\0';
		n = strtol(buf, NULL, 10);
	} else if (rc != -ENOENT) {
		return rc;
	}
	if (in->calls == 1) {
		snprintf(buf, sizeof(buf), "%ld", n + 10);
		commit_put(in->p->b, "n", buf);
	}
	snprintf(buf, sizeof(buf), "%ld", n + 1);
	return fat_txn_put(t, "n", 1, buf, strlen(buf));
}

static void test_run_reruns_on_conflict(void **state)
{
	struct pair *p = *state;
	struct incr in = {.p = p};
	struct fat_txn *t;

	assert_int_equal(fat_store_run(p->a, false, incr_fn, &in), 0);
	assert_int_equal(in.calls, 2);
	assert_int_equal(fat_txn_begin(p->a, true, &t), 0);
	expect_val(t, "n", "11"); /* 10 from the other server, then our +1 */
	fat_txn_abort(t);
}

static void test_fence(void **state)
{
	struct pair *p = *state;
	struct fat_txn *t;
	char fk[128];
	json_object *req = json_object_new_object(), *rep = NULL, *kvs;
	int64_t crev;

	commit_put(p->b, "leader", "1");
	assert_int_equal(fat_store_etcd_key(p->a, "leader", fk, sizeof(fk)), 0);
	json_object_object_add(req, "key", etcd_b64(fk, strlen(fk)));
	assert_int_equal(etcd_call(fat_store_etcd_conn(p->a), "/v3/kv/range", req, &rep), 0);
	assert_true(json_object_object_get_ex(rep, "kvs", &kvs));
	crev = etcd_i64(json_object_array_get_idx(kvs, 0), "create_revision", 0);
	assert_true(crev > 0);
	json_object_put(rep);
	json_object_put(req);

	assert_int_equal(fat_store_etcd_fence(p->a, fk, crev), 0);
	commit_put(p->a, "fenced", "1"); /* fence holds */
	commit_put(p->b, "leader", "2"); /* same key, same create_revision */
	commit_put(p->a, "fenced", "2");
	commit_del(p->b, "leader"); /* the role is gone */
	assert_int_equal(fat_txn_begin(p->a, false, &t), 0);
	put_s(t, "fenced", "3");
	assert_int_equal(fat_txn_commit(t), -ESTALE);
	commit_put(p->b, "leader", "3"); /* recreated: a new create_revision */
	assert_int_equal(fat_txn_begin(p->a, false, &t), 0);
	put_s(t, "fenced", "3");
	assert_int_equal(fat_txn_commit(t), -ESTALE);
	assert_int_equal(fat_store_etcd_fence(p->a, NULL, 0), 0);
	commit_put(p->a, "fenced", "4");
}

static void test_lease(void **state)
{
	struct pair *p = *state;
	struct etcd_conn *c = fat_store_etcd_conn(p->a);
	int64_t id = 0, ttl = 0;

	assert_int_equal(etcd_lease_grant(c, 5, &id), 0);
	assert_true(id != 0);
	assert_int_equal(etcd_lease_keepalive(c, id, &ttl), 0);
	assert_true(ttl > 0 && ttl <= 5);
	/* keep-alive works on the same connection again */
	assert_int_equal(etcd_lease_keepalive(c, id, &ttl), 0);
	assert_true(ttl > 0);
	assert_int_equal(etcd_lease_revoke(c, id), 0);
	assert_int_equal(etcd_lease_keepalive(c, id, &ttl), 0);
	assert_int_equal(ttl, 0);
}

static void test_failover_endpoint(void **state)
{
	struct pair *p = *state;
	char eps[256];
	struct fat_store *s;
	struct fat_txn *t;
	struct etcd_conn *bad = NULL;

	/* the first two members are dead (nothing listens there) */
	snprintf(eps, sizeof(eps), "https://127.0.0.1:%d,https://127.0.0.1:%d,%s", free_port(),
		 free_port(), etcd_url);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(fat_store_open_etcd(conn_to(eps), p->pfx, &s), 0);
		commit_put(s, "via", "failover");
		assert_int_equal(fat_txn_begin(p->b, true, &t), 0);
		expect_val(t, "via", "failover");
		fat_txn_abort(t);
		fat_store_close(s);
	}
	/* a bad endpoint list is refused */
	assert_int_equal(
	    etcd_conn_new("http://127.0.0.1:1", pki_ca, pki_cert, pki_key, 100, 100, &bad),
	    -EINVAL);
	assert_null(bad);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_conflict_on_read, pair_setup, pair_teardown),
	    cmocka_unit_test_setup_teardown(test_conflict_on_scan, pair_setup, pair_teardown),
	    cmocka_unit_test_setup_teardown(test_snapshot, pair_setup, pair_teardown),
	    cmocka_unit_test_setup_teardown(test_run_reruns_on_conflict, pair_setup,
					    pair_teardown),
	    cmocka_unit_test_setup_teardown(test_fence, pair_setup, pair_teardown),
	    cmocka_unit_test_setup_teardown(test_lease, pair_setup, pair_teardown),
	    cmocka_unit_test_setup_teardown(test_failover_endpoint, pair_setup, pair_teardown),
	};
	int rc = start_etcd(), failed;

	if (rc != 0)
		return rc;
	failed = store_suite_main(); /* the same suite as the LMDB backend's */
	failed += cmocka_run_group_tests_name("etcd_shared", tests, NULL, NULL);
	stop_etcd();
	return failed ? 1 : 0;
}
