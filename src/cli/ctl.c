/*
 * ctl.c - the CLI's side of a mount's control socket (docs/ARCHITECTURE.md,
 * "Mount control socket"): finding the pstorefs mount a file lives on from
 * /proc/self/mountinfo, the socket path derived from the mountpoint, and one
 * JSON request / one JSON reply line with a bounded wait.
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"

#define CTL_DIR "/run/pstore"
#define CTL_MAX_REPLY (16u << 20)

/* mountinfo escapes ' ', '\t', '\n' and '\\' as \ooo. */
static void unescape(char *s)
{
	char *w = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*w++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*w++ = *s++;
		}
	}
	*w = '\0';
}

static bool is_pstorefs(const char *fstype, const char *source)
{
	if (strcmp(fstype, "fuse.pstorefs") == 0)
		return true;
	return strncmp(fstype, "fuse", 4) == 0 && strstr(source, "pstore") != NULL;
}

int ctl_find_mount(const char *path, char *mnt, size_t mnt_len, uint64_t *ino)
{
	struct stat st;
	char *line = NULL;
	size_t cap = 0;
	FILE *f;
	int rc = -ENOTSUP;

	if (stat(path, &st) < 0)
		return -errno;
	*ino = (uint64_t)st.st_ino;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		/* id parent major:minor root mountpoint opts... - fstype source superopts */
		char *sep = strstr(line, " - "), *save = NULL, *tok, *mp = NULL, *fstype,
		     *source;
		unsigned maj, min;
		int field = 0;
		bool dev_ok = false;

		if (!sep)
			continue;
		*sep = '\0';
		for (tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
			if (field == 2)
				dev_ok = sscanf(tok, "%u:%u", &maj, &min) == 2 &&
					 makedev(maj, min) == st.st_dev;
			else if (field == 4)
				mp = tok;
			field++;
		}
		if (!dev_ok || !mp)
			continue;
		save = NULL;
		fstype = strtok_r(sep + 3, " \n", &save);
		source = fstype ? strtok_r(NULL, " \n", &save) : NULL;
		if (!fstype || !source || !is_pstorefs(fstype, source))
			continue;
		unescape(mp);
		if (strlen(mp) >= mnt_len) {
			rc = -ENAMETOOLONG;
			break;
		}
		strcpy(mnt, mp);
		rc = 0;
		break;
	}
	free(line);
	fclose(f);
	return rc;
}

int ctl_socket_path(const char *mnt, char *out, size_t len)
{
	uint8_t md[32];
	unsigned mdlen = 0;
	char hex[33];
	int n;

	if (EVP_Digest(mnt, strlen(mnt), md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		return -EIO;
	hex_encode(md, 16, hex);
	n = snprintf(out, len, "%s/ctl-%s.sock", CTL_DIR, hex);
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* Waits for fd to be ready for events until deadline (now_ms() clock). */
static int ctl_wait(int fd, short events, uint64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};

	for (;;) {
		uint64_t now = now_ms();
		int r;

		if (now >= deadline)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)MIN(deadline - now, (uint64_t)INT_MAX));
		if (r > 0)
			return 0;
		if (r == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int ctl_request(const char *mnt, struct json_object *req, int timeout_ms,
		struct json_object **reply)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	char *buf = NULL, *nl;
	size_t len = 0, cap = 0, off = 0, tlen = strlen(text);
	int fd = -1, rc;

	*reply = NULL;
	rc = ctl_socket_path(mnt, sa.sun_path, sizeof(sa.sun_path));
	if (rc < 0)
		return rc;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		goto out;
	}
	while (off <= tlen) {
		/* the request text, then its newline */
		const char *p = off < tlen ? text + off : "\n";
		size_t n = off < tlen ? tlen - off : 1;
		ssize_t w;

		rc = ctl_wait(fd, POLLOUT, deadline);
		if (rc < 0)
			goto out;
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			rc = -errno;
			goto out;
		}
		off += (size_t)w;
	}
	for (;;) {
		ssize_t r;

		if (cap - len < 4096) {
			char *nb;

			if (cap >= CTL_MAX_REPLY) {
				rc = -EMSGSIZE;
				goto out;
			}
			cap = cap ? cap * 2 : 65536;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nb;
		}
		rc = ctl_wait(fd, POLLIN, deadline);
		if (rc < 0)
			goto out;
		r = recv(fd, buf + len, cap - len, 0);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		buf[len] = '\0';
		if (memchr(buf, '\n', len))
			break;
	}
	if (!buf || len == 0) {
		rc = -EBADMSG;
		goto out;
	}
	buf[len] = '\0';
	nl = strchr(buf, '\n');
	if (nl)
		*nl = '\0';
	*reply = json_tokener_parse(buf);
	rc = (*reply && json_object_is_type(*reply, json_type_object)) ? 0 : -EBADMSG;
	if (rc < 0 && *reply) {
		json_object_put(*reply);
		*reply = NULL;
	}
out:
	free(buf);
	close(fd);
	return rc;
}

const char *ctl_reply_error(struct json_object *reply)
{
	json_object *ok, *err;

	if (json_object_object_get_ex(reply, "ok", &ok) && json_object_get_boolean(ok))
		return NULL;
	return json_object_object_get_ex(reply, "error", &err) ? json_object_get_string(err)
							       : "no reason given";
}
