/*
 * cmd_fsck.c - commands that run inside a mount through its control socket
 * (src/fs/control.c):
 *
 *   pstore fsck MOUNT [--json]     sync, then check the FAT mirror and chunk
 *                                  table and the mount's local state
 *                                  (src/fs/fsck.c); exit 0 clean, 1 errors
 *   pstore cache drop MOUNT        evict every clean chunk from the mount's
 *                                  cache (dirty data stays)
 */
#include <errno.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common.h"

#define FSCK_TIMEOUT_MS (30 * 60 * 1000)

static int mount_of(const char *path, char *mnt, size_t len)
{
	uint64_t ino;
	int rc = ctl_find_mount(path, mnt, len, &ino);

	if (rc == -ENOENT)
		fprintf(stderr, "pstore: %s: no such file or directory\n", path);
	else if (rc < 0)
		fprintf(stderr, "pstore: %s is not on a pstorefs mount\n", path);
	return rc;
}

static int ask(const char *mnt, const char *op, int timeout_ms, json_object **reply)
{
	json_object *req = json_object_new_object();
	const char *err;
	int rc;

	json_object_object_add(req, "op", json_object_new_string(op));
	rc = ctl_request(mnt, req, timeout_ms, reply);
	json_object_put(req);
	if (rc < 0) {
		fprintf(stderr, "pstore: %s: control socket of the mount: %s%s\n", mnt,
			strerror(-rc),
			rc == -ENOENT || rc == -ECONNREFUSED ? " (is pstorefs running?)" : "");
		return rc;
	}
	err = ctl_reply_error(*reply);
	if (err) {
		fprintf(stderr, "pstore: %s: %s failed: %s\n", mnt, op, err);
		json_object_put(*reply);
		*reply = NULL;
		return -EIO;
	}
	return 0;
}

static void print_list(json_object *r, const char *field, const char *label)
{
	json_object *arr;

	if (!json_object_object_get_ex(r, field, &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(arr); i++)
		printf("%s: %s\n", label,
		       json_object_get_string(json_object_array_get_idx(arr, i)));
}

static uint64_t get_u64(json_object *r, const char *field)
{
	json_object *j;

	return json_object_object_get_ex(r, field, &j) ? (uint64_t)json_object_get_int64(j) : 0;
}

int cmd_fsck(struct cli *c, int argc, char **argv)
{
	const char *path = NULL;
	bool json = false;
	char mnt[PATH_MAX];
	json_object *r = NULL, *jc;
	bool clean;

	(void)c;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			printf(
			    "usage: pstore fsck MOUNT [--json]\n"
			    "Commits everything the mount holds, then checks the volume's FAT\n"
			    "mirror (dangling entries, link counts, chunk maps) against the "
			    "FAT's\n"
			    "chunk table (missing chunks, leaks, chunks without live vendors) "
			    "and\n"
			    "the mount's local state.  Exit 0 clean, 1 errors found.\n");
			return CLI_OK;
		} else if (!path && argv[i][0] != '-') {
			path = argv[i];
		} else {
			fprintf(stderr, "usage: pstore fsck MOUNT [--json]\n");
			return CLI_USAGE;
		}
	}
	if (!path) {
		fprintf(stderr, "usage: pstore fsck MOUNT [--json]\n");
		return CLI_USAGE;
	}
	if (mount_of(path, mnt, sizeof(mnt)) < 0 || ask(mnt, "fsck", FSCK_TIMEOUT_MS, &r) < 0)
		return CLI_FAIL;
	clean = json_object_object_get_ex(r, "clean", &jc) && json_object_get_boolean(jc);
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(r, JSON_C_TO_STRING_PLAIN));
	} else {
		print_list(r, "errors", "error");
		print_list(r, "warnings", "warning");
		printf("%s: %" PRIu64 " inodes, %" PRIu64 " mirror entries, %" PRIu64
		       " chunks at the FAT: %" PRIu64 " errors, %" PRIu64 " warnings%s\n",
		       mnt, get_u64(r, "inodes"), get_u64(r, "mirror_entries"),
		       get_u64(r, "fat_chunks"), get_u64(r, "n_errors"),
		       get_u64(r, "n_warnings"), clean ? " (clean)" : "");
	}
	json_object_put(r);
	return clean ? CLI_OK : CLI_FAIL;
}

int cmd_cache(struct cli *c, int argc, char **argv)
{
	char mnt[PATH_MAX], b1[32], b2[32];
	json_object *r = NULL;

	(void)c;
	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		printf("usage: pstore cache drop MOUNT\n"
		       "Evicts every clean chunk from the mount's local cache (data not yet\n"
		       "uploaded stays); later reads fetch from the vendors.\n");
		return CLI_OK;
	}
	if (argc != 3 || strcmp(argv[1], "drop") != 0) {
		fprintf(stderr, "usage: pstore cache drop MOUNT\n");
		return CLI_USAGE;
	}
	if (mount_of(argv[2], mnt, sizeof(mnt)) < 0 || ask(mnt, "cache_drop", 600000, &r) < 0)
		return CLI_FAIL;
	printf("%s: dropped %" PRIu64 " chunks (%s); %s still cached\n", mnt,
	       get_u64(r, "chunks"), cli_human(get_u64(r, "bytes"), b1, sizeof(b1)),
	       cli_human(get_u64(r, "cached"), b2, sizeof(b2)));
	json_object_put(r);
	return CLI_OK;
}
