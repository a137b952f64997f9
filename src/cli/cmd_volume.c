/*
 * cmd_volume.c - `pstore volume create|list|passwd`: volumes live at the
 * FAT server; this file asks for them and prints the answer.  A new volume
 * is encrypted unless --no-encryption: its key is made and wrapped here
 * (src/alloc/volkey.c), under a key file or passphrase the FAT never sees
 * (docs/encryption.md).
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "aead.h"
#include "alloc.h"
#include "cli.h"
#include "common.h"

static void volume_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: pstore [-c FILE] volume create NAME [--copies N] [--chunk-size SIZE]\n"
	    "                [--key-file F | --passphrase-file F | --no-encryption]\n"
	    "       pstore [-c FILE] volume list [--json]\n"
	    "       pstore [-c FILE] volume passwd NAME [--key-file F | --passphrase-file F]\n"
	    "                [--new-key-file F | --new-passphrase-file F]\n"
	    "\n"
	    "  create  makes a volume at the FAT server; --copies: vendors holding each\n"
	    "          chunk (default 2), --chunk-size: e.g. 4M (default 4M, at most 16M).\n"
	    "          The volume is encrypted with a new random key, protected by a key\n"
	    "          file (any 8..4096 bytes, e.g. head -c 32 /dev/urandom > F) or a\n"
	    "          passphrase (first line of --passphrase-file, else $PSTORE_PASSPHRASE,\n"
	    "          else asked twice on the terminal); without options, the key_file or\n"
	    "          passphrase_file of [client] in the config.  Only --no-encryption\n"
	    "          makes a volume whose names and data the FAT and vendors can read.\n"
	    "  list    shows every volume (name, id, copies, chunk size, revision)\n"
	    "  passwd  protects the volume key with a new passphrase or key file (the old\n"
	    "          one as for create; the new one from --new-*, $PSTORE_NEW_PASSPHRASE,\n"
	    "          or the terminal); the data is not re-encrypted\n");
}

/* Options first, then the config's [client] key_file / passphrase_file. */
static void secret_defaults(const struct cli *c, struct alloc_secret_src *src)
{
	if (src->key_file || src->passphrase_file)
		return;
	if (c->conf.key_file[0])
		src->key_file = c->conf.key_file;
	else if (c->conf.passphrase_file[0])
		src->passphrase_file = c->conf.passphrase_file;
}

/* A new volume key wrapped under the secret of src. */
static int make_key(struct cli *c, struct alloc_secret_src *src, const char *name,
		    uint8_t *blob, size_t *blob_len)
{
	uint8_t secret[VKEY_SECRET_MAX + 1];
	char what[96], err[512];
	size_t slen = 0;
	int kind = 0, rc;

	secret_defaults(c, src);
	snprintf(what, sizeof(what), "new volume %s", name);
	rc = alloc_secret_read(src, what, true, secret, &slen, &kind, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "pstore: %s%s\n", err,
			rc == -ENOENT ? " (or --no-encryption for an unencrypted volume)" : "");
		return rc == -ENOENT ? CLI_USAGE : CLI_FAIL;
	}
	rc = alloc_key_new(secret, slen, kind, blob, blob_len);
	vkey_wipe(secret, sizeof(secret));
	if (rc < 0) {
		fprintf(stderr, "pstore: cannot make the volume key: %s\n", strerror(-rc));
		return CLI_FAIL;
	}
	return CLI_OK;
}

static int volume_create(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"copies", required_argument, NULL, 'n'},
	    {"chunk-size", required_argument, NULL, 's'},
	    {"key-file", required_argument, NULL, 'k'},
	    {"passphrase-file", required_argument, NULL, 'p'},
	    {"no-encryption", no_argument, NULL, 'N'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct alloc_secret_src src = {.env = true, .prompt = true};
	uint8_t blob[VKEY_BLOB_MAX];
	size_t blob_len = 0;
	bool plain = false;
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
				fprintf(stderr, "pstore: --copies must be 1..%d\n",
					CHUNK_MAX_CHAIN);
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
		case 'k':
			src.key_file = optarg;
			break;
		case 'p':
			src.passphrase_file = optarg;
			break;
		case 'N':
			plain = true;
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
	if (plain && (src.key_file || src.passphrase_file)) {
		fprintf(stderr, "pstore: --no-encryption takes no key file or passphrase\n");
		return CLI_USAGE;
	}
	if (src.key_file && src.passphrase_file) {
		fprintf(stderr, "pstore: give --key-file or --passphrase-file, not both\n");
		return CLI_USAGE;
	}
	if (strlen(argv[optind]) == 0 || strlen(argv[optind]) >= sizeof(vol.name)) {
		fprintf(stderr, "pstore: volume name must be 1..%zu characters\n",
			sizeof(vol.name) - 1);
		return CLI_USAGE;
	}
	if (cli_connect(c) < 0)
		return CLI_FAIL;
	if (!plain) {
		rc = make_key(c, &src, argv[optind], blob, &blob_len);
		if (rc != CLI_OK)
			return rc;
	}
	rc = alloc_volume_create_keyed(c->alloc, argv[optind], (uint32_t)copies,
				       (uint32_t)chunk_size, plain ? NULL : blob, blob_len,
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
	printf("volume %s created: id %s, copies %u, chunk size %s, %s\n", vol.name, idhex,
	       vol.copies, cli_human(vol.chunk_size, hb, sizeof(hb)),
	       plain ? "NOT encrypted" : "encrypted");
	return CLI_OK;
}

static int volume_list(struct cli *c, int argc, char **argv)
{
	Pstore__Empty req = PSTORE__EMPTY__INIT;
	struct xport_reply rep;
	Pstore__VolumeList *vl;
	bool json = false;
	int rc, ret = CLI_FAIL;

	rc = cli_opts_json(argc, argv, volume_usage, &json);
	if (rc >= 0)
		return rc;
	if (cli_connect(c) < 0)
		return CLI_FAIL;
	memset(&rep, 0, sizeof(rep));
	rc = alloc_fat_call(c->alloc, MSG_VOLUME_LIST, &req.base,
			    &pstore__volume_list__descriptor, &rep);
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
			json_object_object_add(o, "chunk_size",
					       json_object_new_int64(v->chunk_size));
			json_object_object_add(o, "created_ms",
					       json_object_new_uint64(v->created_ms));
			json_object_object_add(o, "revision",
					       json_object_new_uint64(v->revision));
			json_object_object_add(o, "encrypted",
					       json_object_new_boolean(v->key_blob.len > 0));
			json_object_array_add(arr, o);
		}
		json_object_object_add(root, "volumes", arr);
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
		json_object_put(root);
	} else {
		printf("%-20s %-32s %6s %10s %10s\n", "NAME", "ID", "COPIES", "CHUNK",
		       "REVISION");
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

static int volume_passwd(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"key-file", required_argument, NULL, 'k'},
	    {"passphrase-file", required_argument, NULL, 'p'},
	    {"new-key-file", required_argument, NULL, 'K'},
	    {"new-passphrase-file", required_argument, NULL, 'P'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct alloc_secret_src old_src = {.env = true, .prompt = true};
	struct alloc_secret_src new_src = {.prompt = true};
	uint8_t old_secret[VKEY_SECRET_MAX + 1], new_secret[VKEY_SECRET_MAX + 1];
	size_t old_len = 0, new_len = 0;
	int old_kind = 0, new_kind = 0, opt, rc, ret = CLI_FAIL;
	struct alloc_volume vol;
	char what[96], err[512];
	const char *name, *env_new = getenv("PSTORE_NEW_PASSPHRASE");

	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'k':
			old_src.key_file = optarg;
			break;
		case 'p':
			old_src.passphrase_file = optarg;
			break;
		case 'K':
			new_src.key_file = optarg;
			break;
		case 'P':
			new_src.passphrase_file = optarg;
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
	name = argv[optind];
	if (cli_connect(c) < 0)
		return CLI_FAIL;
	rc = alloc_volume_open(c->alloc, name, &vol);
	if (rc < 0) {
		fprintf(stderr, "pstore: volume %s: %s\n", name, strerror(-rc));
		return CLI_FAIL;
	}
	if (vol.key_blob_len == 0) {
		fprintf(stderr,
			"pstore: volume %s is not encrypted: it has no key to protect\n", name);
		return CLI_FAIL;
	}
	secret_defaults(c, &old_src);
	snprintf(what, sizeof(what), "volume %s (current)", name);
	rc = alloc_secret_read(&old_src, what, false, old_secret, &old_len, &old_kind, err,
			       sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "pstore: %s\n", err);
		return CLI_FAIL;
	}
	snprintf(what, sizeof(what), "volume %s (new)", name);
	if (!new_src.key_file && !new_src.passphrase_file && env_new && env_new[0]) {
		new_kind = VKEY_PASSPHRASE;
		new_len = strlen(env_new);
		rc = new_len >= VKEY_SECRET_MIN && new_len <= VKEY_SECRET_MAX ? 0 : -EINVAL;
		if (rc == 0)
			memcpy(new_secret, env_new, new_len);
		else
			snprintf(err, sizeof(err), "PSTORE_NEW_PASSPHRASE must be %d..%d bytes",
				 VKEY_SECRET_MIN, VKEY_SECRET_MAX);
	} else {
		rc = alloc_secret_read(&new_src, what, true, new_secret, &new_len, &new_kind,
				       err, sizeof(err));
	}
	if (rc < 0) {
		fprintf(stderr, "pstore: %s\n", err);
		goto out;
	}
	rc = alloc_volume_rekey(c->alloc, name, vol.key_blob, vol.key_blob_len, old_secret,
				old_len, new_secret, new_len, new_kind);
	if (rc == -EACCES)
		fprintf(stderr, "pstore: volume %s: wrong current %s; nothing changed\n", name,
			vkey_blob_kind(vol.key_blob, vol.key_blob_len) == VKEY_KEYFILE
			    ? "key file"
			    : "passphrase");
	else if (rc == -ESTALE)
		fprintf(stderr, "pstore: volume %s: its key was changed meanwhile; try again\n",
			name);
	else if (rc < 0)
		fprintf(stderr, "pstore: volume %s: cannot change its key: %s\n", name,
			strerror(-rc));
	else {
		printf("volume %s: key now protected by the new %s (data unchanged)\n", name,
		       new_kind == VKEY_KEYFILE ? "key file" : "passphrase");
		ret = CLI_OK;
	}
out:
	vkey_wipe(old_secret, sizeof(old_secret));
	vkey_wipe(new_secret, sizeof(new_secret));
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
	if (strcmp(argv[1], "passwd") == 0)
		return volume_passwd(c, argc - 1, argv + 1);
	fprintf(stderr, "pstore: unknown volume command '%s'\n", argv[1]);
	volume_usage(stderr);
	return CLI_USAGE;
}
