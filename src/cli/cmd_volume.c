/*
 * cmd_volume.c - `pstore volume create|list`: volumes live at the FAT
 * server; this file only asks for them and prints the answer.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "cli.h"
#include "common.h"

static void volume_usage(FILE *f)
{
	fprintf(f, "usage: pstore [-c FILE] volume create NAME [--copies N] [--chunk-size SIZE]\n"
		   "       pstore [-c FILE] volume list [--json]\n"
		   "\n"
		   "  create  makes a volume at the FAT server; --copies: vendors holding each\n"
		   "          chunk (default 2), --chunk-size: e.g. 4M (default 4M, at most 16M)\n"
		   "  list    shows every volume (name, id, copies, chunk size, revision)\n");
}

static int volume_create(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"copies", required_argument, NULL, 'n'},
		{"chunk-size", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct alloc_volume vol;
	uint64_t copies = 2, chunk_size = 4u << 20;
	char idhex[2 * CHUNK_OWNER_LEN + 1], hb[32];
	int opt, rc;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'n':
			if (parse_u64(optarg, &copies) < 0 || copies < 1 ||
			    copies > CHUNK_MAX_CHAIN) {
				fprintf(stderr, "pstore: --copies must be 1..%d\n", CHUNK_MAX_CHAIN);
				return CLI_USAGE;
			}
			break;
		case 's':
			if (parse_size(optarg, &chunk_size) < 0 || chunk_size < 4096 ||
			    chunk_size > CHUNK_MAX_RAW) {
				fprintf(stderr, "pstore: --chunk-size must be 4k..16M\n");
				return CLI_USAGE;
			}
			break;
		case 'h':
			volume_usage(stdout);
			return CLI_OK;
		default:
			volume_usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind + 1 != argc) {
		volume_usage(stderr);
		return CLI_USAGE;
	}
	if (strlen(argv[optind]) == 0 || strlen(argv[optind]) >= sizeof(vol.name)) {
		fprintf(stderr, "pstore: volume name must be 1..%zu characters\n",
			sizeof(vol.name) - 1);
		return CLI_USAGE;
	}
	if (cli_connect(c) < 0)
		return CLI_FAIL;
	rc = alloc_volume_create(c->alloc, argv[optind], (uint32_t)copies, (uint32_t)chunk_size,
				 &vol);
	if (rc < 0) {
		if (rc == -EEXIST)
			fprintf(stderr, "pstore: volume %s already exists\n", argv[optind]);
		else
			fprintf(stderr, "pstore: cannot create volume %s: %s\n", argv[optind],
				strerror(-rc));
		return CLI_FAIL;
	}
	hex_encode(vol.id, sizeof(vol.id), idhex);
	printf("volume %s created: id %s, copies %u, chunk size %s\n", vol.name, idhex,
	       vol.copies, cli_human(vol.chunk_size, hb, sizeof(hb)));
	return CLI_OK;
}

static int volume_list(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	Pstore__Empty req = PSTORE__EMPTY__INIT;
	struct xport_reply rep;
	Pstore__VolumeList *vl;
	bool json = false;
	int opt, rc, ret = CLI_FAIL;

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = true;
			break;
		case 'h':
			volume_usage(stdout);
			return CLI_OK;
		default:
			volume_usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind != argc) {
		volume_usage(stderr);
		return CLI_USAGE;
	}
	if (cli_connect(c) < 0)
		return CLI_FAIL;
	memset(&rep, 0, sizeof(rep));
	rc = alloc_fat_call(c->alloc, MSG_VOLUME_LIST, &req.base, &pstore__volume_list__descriptor,
			    &rep);
	if (rc < 0) {
		fprintf(stderr, "pstore: cannot list volumes: %s\n", strerror(-rc));
		return CLI_FAIL;
	}
	vl = (Pstore__VolumeList *)rep.msg;
	if (!vl) {
		fprintf(stderr, "pstore: empty reply to the volume list\n");
		goto out;
	}
	if (json) {
		json_object *root = json_object_new_object(), *arr = json_object_new_array();

		for (size_t i = 0; i < vl->n_volumes; i++) {
			const Pstore__VolumeInfo *v = vl->volumes[i];
			json_object *o = json_object_new_object();
			char idhex[2 * CHUNK_OWNER_LEN + 1] = "";

			if (v->id.len == CHUNK_OWNER_LEN)
				hex_encode(v->id.data, v->id.len, idhex);
			json_object_object_add(o, "name", json_object_new_string(v->name));
			json_object_object_add(o, "id", json_object_new_string(idhex));
			json_object_object_add(o, "copies", json_object_new_int64(v->copies));
			json_object_object_add(o, "chunk_size", json_object_new_int64(v->chunk_size));
			json_object_object_add(o, "created_ms",
					       json_object_new_uint64(v->created_ms));
			json_object_object_add(o, "revision", json_object_new_uint64(v->revision));
			json_object_array_add(arr, o);
		}
		json_object_object_add(root, "volumes", arr);
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
		json_object_put(root);
	} else {
		printf("%-20s %-32s %6s %10s %10s\n", "NAME", "ID", "COPIES", "CHUNK", "REVISION");
		for (size_t i = 0; i < vl->n_volumes; i++) {
			const Pstore__VolumeInfo *v = vl->volumes[i];
			char idhex[2 * CHUNK_OWNER_LEN + 1] = "-", hb[32];

			if (v->id.len == CHUNK_OWNER_LEN)
				hex_encode(v->id.data, v->id.len, idhex);
			printf("%-20s %-32s %6u %10s %10llu\n", v->name, idhex, v->copies,
			       cli_human(v->chunk_size, hb, sizeof(hb)),
			       (unsigned long long)v->revision);
		}
	}
	ret = CLI_OK;
out:
	xport_reply_clear(&rep);
	return ret;
}

int cmd_volume(struct cli *c, int argc, char **argv)
{
	if (argc < 2) {
		volume_usage(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		volume_usage(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "create") == 0)
		return volume_create(c, argc - 1, argv + 1);
	if (strcmp(argv[1], "list") == 0)
		return volume_list(c, argc - 1, argv + 1);
	fprintf(stderr, "pstore: unknown volume command '%s'\n", argv[1]);
	volume_usage(stderr);
	return CLI_USAGE;
}
