/*
 * test_cli_ctl.c - the CLI's side of the mount control socket (src/cli/ctl.c):
 * the socket path derived from the mountpoint, finding the mount of a file,
 * and one request/reply exchange with a real unix socket server thread
 * (including a server that never answers: the wait is bounded).
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli.h"
#include "common.h"

static void test_socket_path(void **state)
{
	char p[128];

	(void)state;
	assert_int_equal(ctl_socket_path("/mnt/pstore", p, sizeof(p)), 0);
	/* python3 -c "import hashlib;print(hashlib.sha256(b'/mnt/pstore').hexdigest()[:32])" */
	assert_string_equal(p, "/run/pstore/ctl-ae5f1d4c66c910d5d339dc9a9e1a390b.sock");
	assert_int_equal(ctl_socket_path("/mnt/pstore", p, 20), -ENAMETOOLONG);
}

static void test_find_mount(void **state)
{
	char mnt[PATH_MAX];
	uint64_t ino;

	(void)state;
	assert_int_equal(ctl_find_mount("/nonexistent/file", mnt, sizeof(mnt), &ino), -ENOENT);
	/* /proc is never pstorefs */
	assert_int_equal(ctl_find_mount("/proc/self", mnt, sizeof(mnt), &ino), -ENOTSUP);
}

struct server {
	int fd;
	const char *reply; /* NULL: read the request and stay silent */
	char request[512];
};

static void *serve_one(void *arg)
{
	struct server *s = arg;
	int c = accept(s->fd, NULL, NULL);
	ssize_t n;

	if (c < 0)
		return NULL;
	/* a request is one line; it may arrive in several reads */
	size_t got = 0;

	while (got < sizeof(s->request) - 1) {
		n = read(c, s->request + got, sizeof(s->request) - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (memchr(s->request, '\n', got))
			break;
	}
	s->request[got] = '\0';
	if (s->reply)
		assert_true(write(c, s->reply, strlen(s->reply)) == (ssize_t)strlen(s->reply));
	else
		usleep(500 * 1000);
	close(c);
	return NULL;
}

/* Runs one exchange against a server on the socket of a made-up mountpoint. */
static int exchange(const char *reply, int timeout_ms, struct server *s, json_object **out)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char mnt[64];
	json_object *req = json_object_new_object();
	pthread_t th;
	int rc;

	snprintf(mnt, sizeof(mnt), "/nonexistent/pstore-unit-%d", (int)getpid());
	assert_int_equal(ctl_socket_path(mnt, sa.sun_path, sizeof(sa.sun_path)), 0);
	assert_int_equal(mkdir_p("/run/pstore", 0700), 0);
	unlink(sa.sun_path);
	memset(s, 0, sizeof(*s));
	s->reply = reply;
	s->fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(s->fd >= 0);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->fd, 1), 0);
	assert_int_equal(pthread_create(&th, NULL, serve_one, s), 0);
	json_object_object_add(req, "op", json_object_new_string("locate"));
	json_object_object_add(req, "ino", json_object_new_int64(42));
	rc = ctl_request(mnt, req, timeout_ms, out);
	pthread_join(th, NULL);
	json_object_put(req);
	close(s->fd);
	unlink(sa.sun_path);
	return rc;
}

static void test_request_reply(void **state)
{
	struct server s;
	json_object *r = NULL, *v;

	(void)state;
	assert_int_equal(exchange("{\"ok\":true,\"chunks\":[]}\n", 5000, &s, &r), 0);
	assert_string_equal(s.request, "{\"op\":\"locate\",\"ino\":42}\n");
	assert_true(json_object_object_get_ex(r, "ok", &v) && json_object_get_boolean(v));
	json_object_put(r);
}

static void test_bad_and_missing_replies(void **state)
{
	struct server s;
	json_object *r = NULL;
	uint64_t t0;

	(void)state;
	assert_int_equal(exchange("this is not json\n", 5000, &s, &r), -EBADMSG);
	assert_null(r);
	assert_int_equal(exchange("[1,2,3]\n", 5000, &s, &r), -EBADMSG);
	assert_int_equal(exchange("", 5000, &s, &r), -EBADMSG);
	t0 = now_ms();
	assert_int_equal(exchange(NULL, 200, &s, &r), -ETIMEDOUT);
	assert_true(now_ms() - t0 < 2000);
}

static void test_no_socket(void **state)
{
	json_object *req = json_object_new_object(), *r = NULL;

	(void)state;
	assert_int_equal(ctl_request("/nonexistent/never-mounted", req, 1000, &r), -ENOENT);
	json_object_put(req);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_socket_path),
	    cmocka_unit_test(test_find_mount),
	    cmocka_unit_test(test_request_reply),
	    cmocka_unit_test(test_bad_and_missing_replies),
	    cmocka_unit_test(test_no_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
