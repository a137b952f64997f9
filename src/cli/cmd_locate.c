/*
 * cmd_locate.c - `pstore locate FILE` and `pstore sync FILE|MOUNT`: questions
 * put to the pstorefs process serving a file, over its control socket
 * (ctl.c).  The mount knows its chunk maps; the FAT server is not asked.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common.h"

static void locate_usage(FILE *f)
{
	fprintf(f,
		"usage: pstore locate FILE [--json] [--timeout MS]\n"
		"\n"
		"For each chunk of FILE (a file on a pstorefs mount): its index in the file,\n"
		"chunk id, stored size and the vendors holding a copy.  Chunks not yet\n"
		"uploaded show no vendors; `pstore sync FILE` uploads them first.\n");
}

static void sync_usage(FILE *f)
{
	fprintf(
	    f, "usage: pstore sync FILE|MOUNT [--timeout MS]\n"
	       "\n"
	       "Stores everything written to the mount so far on its full number of copies\n"
	       "and commits it to the FAT server (like syncfs).  Default timeout 600000 ms.\n");
}

/* Shared option parsing: --json, --timeout, --help; one positional. */
static int parse_args(int argc, char **argv, bool *json, int *timeout_ms, void (*usage)(FILE *),
		      const char **path)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	uint64_t v;
	int opt;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			if (!json) {
				usage(stderr);
				return CLI_USAGE;
			}
			*json = true;
			break;
		case 't':
			if (parse_u64(optarg, &v) < 0 || v == 0 || v > INT_MAX) {
				fprintf(stderr, "pstore: --timeout wants milliseconds\n");
				return CLI_USAGE;
			}
			*timeout_ms = (int)v;
			break;
		case 'h':
			usage(stdout);
			return -1;
		default:
			usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return CLI_USAGE;
	}
	*path = argv[optind];
	return CLI_OK;
}

/* Sends {"op":op[,"ino":ino]} to the mount of path; prints errors. */
static int ask_mount(const char *path, const char *op, bool with_ino, int timeout_ms,
		     json_object **reply, char *mnt, size_t mnt_len, uint64_t *ino)
{
	json_object *req;
	const char *msg;
	int rc;

	rc = ctl_find_mount(path, mnt, mnt_len, ino);
	if (rc == -ENOTSUP) {
		fprintf(stderr, "pstore: %s is not on a pstorefs mount\n", path);
		return CLI_FAIL;
	}
	if (rc < 0) {
		fprintf(stderr, "pstore: %s: %s\n", path, strerror(-rc));
		return CLI_FAIL;
	}
	req = json_object_new_object();
	json_object_object_add(req, "op", json_object_new_string(op));
	if (with_ino)
		json_object_object_add(req, "ino", json_object_new_uint64(*ino));
	else /* the mount waits as long as we do */
		json_object_object_add(req, "timeout_ms", json_object_new_int64(timeout_ms));
	rc = ctl_request(mnt, req, timeout_ms, reply);
	json_object_put(req);
	if (rc < 0) {
		char sock[128] = "";

		ctl_socket_path(mnt, sock, sizeof(sock));
		fprintf(stderr, "pstore: control socket %s of mount %s: %s\n", sock, mnt,
			strerror(-rc));
		return CLI_FAIL;
	}
	msg = ctl_reply_error(*reply);
	if (msg) {
		fprintf(stderr, "pstore: %s: %s\n", path, msg);
		json_object_put(*reply);
		*reply = NULL;
		return CLI_FAIL;
	}
	return CLI_OK;
}

static void print_chunks(json_object *chunks)
{
	size_t n = json_object_array_length(chunks);

	printf("%6s  %-32s %12s %12s  %s\n", "INDEX", "CHUNK", "STORED", "RAW", "VENDORS");
	for (size_t i = 0; i < n; i++) {
		json_object *c = json_object_array_get_idx(chunks, i), *v;
		char vendors[256] = "";
		size_t vl = 0;

		if (json_object_object_get_ex(c, "vendors", &v) &&
		    json_object_is_type(v, json_type_array)) {
			for (size_t k = 0; k < json_object_array_length(v) && vl < 200; k++) {
				int w = snprintf(vendors + vl, sizeof(vendors) - vl, "%s%lld",
						 k ? "," : "",
						 (long long)json_object_get_int64(
						     json_object_array_get_idx(v, k)));
				if (w > 0)
					vl += (size_t)w;
			}
		}
		printf("%6lld  %-32s %12lld %12lld  %s\n",
		       json_object_object_get_ex(c, "index", &v)
			   ? (long long)json_object_get_int64(v)
			   : -1LL,
		       json_object_object_get_ex(c, "chunk_id", &v) ? json_object_get_string(v)
								    : "?",
		       json_object_object_get_ex(c, "stored", &v)
			   ? (long long)json_object_get_int64(v)
			   : 0LL,
		       json_object_object_get_ex(c, "raw", &v)
			   ? (long long)json_object_get_int64(v)
			   : 0LL,
		       vl ? vendors : "-");
	}
}

int cmd_locate(struct cli *c, int argc, char **argv)
{
	json_object *reply = NULL, *chunks;
	char mnt[PATH_MAX];
	const char *path;
	bool json = false;
	int timeout_ms = 30000, rc;
	uint64_t ino;

	(void)c;
	rc = parse_args(argc, argv, &json, &timeout_ms, locate_usage, &path);
	if (rc != CLI_OK)
		return rc < 0 ? CLI_OK : rc;
	rc = ask_mount(path, "locate", true, timeout_ms, &reply, mnt, sizeof(mnt), &ino);
	if (rc != CLI_OK)
		return rc;
	if (!json_object_object_get_ex(reply, "chunks", &chunks) ||
	    !json_object_is_type(chunks, json_type_array)) {
		fprintf(stderr, "pstore: mount %s gave no chunk list\n", mnt);
		json_object_put(reply);
		return CLI_FAIL;
	}
	if (json) {
		json_object *out = json_object_new_object();

		json_object_object_add(out, "file", json_object_new_string(path));
		json_object_object_add(out, "mount", json_object_new_string(mnt));
		json_object_object_add(out, "ino", json_object_new_uint64(ino));
		json_object_object_add(out, "chunks", json_object_get(chunks));
		printf("%s\n", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PRETTY));
		json_object_put(out);
	} else {
		printf("%s (inode %llu on %s): %zu chunks\n", path, (unsigned long long)ino,
		       mnt, json_object_array_length(chunks));
		print_chunks(chunks);
	}
	json_object_put(reply);
	return CLI_OK;
}

int cmd_sync(struct cli *c, int argc, char **argv)
{
	json_object *reply = NULL;
	char mnt[PATH_MAX];
	const char *path;
	int timeout_ms = 600000, rc;
	uint64_t ino;

	(void)c;
	rc = parse_args(argc, argv, NULL, &timeout_ms, sync_usage, &path);
	if (rc != CLI_OK)
		return rc < 0 ? CLI_OK : rc;
	rc = ask_mount(path, "sync", false, timeout_ms, &reply, mnt, sizeof(mnt), &ino);
	if (rc != CLI_OK)
		return rc;
	printf("%s: synced\n", mnt);
	json_object_put(reply);
	return CLI_OK;
}
