/*
 * fuzz_ctl_reply.c - the CLI's side of a mount's control socket: the reply
 * line read by ctl_request (src/cli/ctl.c) over a real unix socket, and the
 * chunk table `pstore locate` prints from it (print_chunks, a static
 * function of src/cli/cmd_locate.c, which this target therefore compiles
 * itself).  A thread of this process plays the mount: it reads the request
 * line and answers with the fuzzed bytes, then closes.
 *
 * The socket lives where the CLI looks for it, /run/pstore/ctl-<h>.sock,
 * for a mountpoint path unique to this process (nothing is mounted).
 */
#include "../../src/cli/cmd_locate.c"

#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char mnt[128];
static const uint8_t *reply;
static size_t reply_len;
static sem_t served;
static int lfd = -1;

static void *mount_main(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		char c;

		if (fd < 0)
			continue;
		while (recv(fd, &c, 1, 0) == 1 && c != '\n')
			;
		for (size_t off = 0; off < reply_len;) {
			ssize_t w = send(fd, reply + off, reply_len - off, MSG_NOSIGNAL);

			if (w <= 0)
				break; /* the CLI stopped reading after a newline */
			off += (size_t)w;
		}
		close(fd);
		sem_post(&served);
	}
	return NULL;
}

static void remove_socket(void)
{
	char sock[108];

	if (ctl_socket_path(mnt, sock, sizeof(sock)) == 0)
		unlink(sock);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	pthread_t t;

	(void)argc;
	(void)argv;
	fuzz_quiet();
	snprintf(mnt, sizeof(mnt), "/nonexistent/pstore-fuzz-%d", (int)getpid());
	if (mkdir_p("/run/pstore", 0755) < 0 ||
	    ctl_socket_path(mnt, sa.sun_path, sizeof(sa.sun_path)) < 0) {
		fprintf(stderr, "fuzz_ctl_reply: needs a writable /run/pstore\n");
		abort();
	}
	unlink(sa.sun_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 16) < 0) {
		perror("fuzz_ctl_reply: socket");
		abort();
	}
	atexit(remove_socket);
	sem_init(&served, 0, 0);
	if (pthread_create(&t, NULL, mount_main, NULL) != 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_object *req = json_object_new_object(), *r = NULL, *chunks, *ok, *err;
	struct timespec dl;
	int rc;

	reply = data;
	reply_len = size;
	json_object_object_add(req, "op", json_object_new_string("locate"));
	json_object_object_add(req, "ino", json_object_new_uint64(12));
	rc = ctl_request(mnt, req, 5000, &r);
	json_object_put(req);
	if (rc == 0) {
		if (!r || !json_object_is_type(r, json_type_object))
			abort();
		/* What cmd_locate reads from a reply. */
		if (json_object_object_get_ex(r, "ok", &ok))
			(void)json_object_get_boolean(ok);
		if (json_object_object_get_ex(r, "error", &err))
			(void)json_object_get_string(err);
		if (json_object_object_get_ex(r, "chunks", &chunks) &&
		    json_object_is_type(chunks, json_type_array))
			print_chunks(chunks);
		json_object_put(r);
	}
	/* The mount thread has finished with this input before the next one. */
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 10;
	while (sem_timedwait(&served, &dl) != 0)
		if (errno == ETIMEDOUT) {
			fprintf(stderr, "fuzz_ctl_reply: the mount thread did not answer\n");
			abort();
		}
	return 0;
}
