/*
 * main.c - entry point of `pstore`: global options, config lookup, the
 * connection to the FAT servers, and dispatch to the subcommands.
 *
 * Config lookup order: -c FILE, $PSTORE_CONFIG, ./.pstore-dev/client.conf,
 * /etc/pstore/client.conf.  Only the [client] fat/volume/lease_ms keys and
 * the [tls] section matter here; unknown keys are left to pstorefs.
 */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "cli.h"
#include "common.h"
#include "xport.h"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: pstore [-c FILE] [-d] COMMAND [ARGS]\n"
	    "\n"
	    "commands:\n"
	    "  volume create NAME [--copies N] [--chunk-size SIZE]   create a volume\n"
	    "         [--key-file F | --passphrase-file F | --no-encryption]\n"
	    "  volume list [--json]                                  list volumes\n"
	    "  volume passwd NAME           protect a volume's key with a new passphrase\n"
	    "  vendors [--json]             every vendor the FAT server knows\n"
	    "  locate FILE [--json]         where each chunk of FILE (on a mount) lives\n"
	    "  sync FILE|MOUNT              store everything written so far (fsync of the "
	    "mount)\n"
	    "  fsck MOUNT [--json]          check namespace and chunk maps against the FAT\n"
	    "  cache drop MOUNT             evict every clean chunk from the mount's cache\n"
	    "  fat status [--json]          every FAT server and etcd member, leader, "
	    "revision\n"
	    "  probe [--json] MOUNT         candidate vendors as the mount's path probing sees "
	    "them\n"
	    "  ca init|issue|revoke|list|crl   the deployment CA (see pstore ca --help)\n"
	    "\n"
	    "options:\n"
	    "  -c FILE   client config (default: $PSTORE_CONFIG, ./.pstore-dev/client.conf,\n"
	    "            /etc/pstore/client.conf)\n"
	    "  -d        debug logging\n"
	    "  -h        this help; `pstore COMMAND --help` for a command\n"
	    "  -V        version\n"
	    "\n"
	    "exit status: 0 ok, 1 failure, 2 usage error\n");
}

const char *cli_human(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)bytes;
	size_t u = 0;

	while (v >= 1024.0 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[u]);
	return buf;
}

static int copy_str(char *dst, size_t len, const char *src)
{
	if (strlen(src) >= len)
		return 0;
	strcpy(dst, src);
	return 1;
}

/* inih handler: 1 = ok, 0 = error (bad value). */
static int conf_handler(void *user, const char *section, const char *name, const char *value)
{
	struct cli_conf *cf = user;
	uint64_t v;

	if (strcmp(section, "client") == 0) {
		if (strcmp(name, "fat") == 0)
			return copy_str(cf->fat, sizeof(cf->fat), value);
		if (strcmp(name, "volume") == 0)
			return copy_str(cf->volume, sizeof(cf->volume), value);
		if (strcmp(name, "key_file") == 0)
			return copy_str(cf->key_file, sizeof(cf->key_file), value);
		if (strcmp(name, "passphrase_file") == 0)
			return copy_str(cf->passphrase_file, sizeof(cf->passphrase_file),
					value);
		if (strcmp(name, "lease_ms") == 0) {
			if (parse_u64(value, &v) < 0 || v == 0 || v > UINT32_MAX)
				return 0;
			cf->lease_ms = (uint32_t)v;
		}
		return 1;
	}
	if (strcmp(section, "tls") == 0) {
		if (strcmp(name, "ca") == 0)
			return copy_str(cf->ca, sizeof(cf->ca), value);
		if (strcmp(name, "cert") == 0)
			return copy_str(cf->cert, sizeof(cf->cert), value);
		if (strcmp(name, "key") == 0)
			return copy_str(cf->key, sizeof(cf->key), value);
		if (strcmp(name, "crl") == 0)
			return copy_str(cf->crl, sizeof(cf->crl), value);
	}
	return 1;
}

static const char *conf_find(const char *arg)
{
	static const char *const fallback[] = {"./.pstore-dev/client.conf",
					       "/etc/pstore/client.conf"};
	const char *env = getenv("PSTORE_CONFIG");

	if (arg)
		return arg;
	if (env && *env)
		return env;
	for (size_t i = 0; i < ARRAY_SIZE(fallback); i++)
		if (access(fallback[i], R_OK) == 0)
			return fallback[i];
	return NULL;
}

static int conf_load(const char *arg, struct cli_conf *cf)
{
	const char *path = conf_find(arg);
	int line;

	memset(cf, 0, sizeof(*cf));
	cf->lease_ms = 60000;
	cf->timeout_ms = 5000;
	if (!path) {
		fprintf(stderr,
			"pstore: no config: give -c FILE or set PSTORE_CONFIG "
			"(looked for ./.pstore-dev/client.conf and /etc/pstore/client.conf)\n");
		return -ENOENT;
	}
	if (!copy_str(cf->path, sizeof(cf->path), path))
		return -ENAMETOOLONG;
	line = ini_parse(path, conf_handler, cf);
	if (line < 0) {
		fprintf(stderr, "pstore: cannot read config %s: %s\n", path, strerror(errno));
		return -ENOENT;
	}
	if (line > 0) {
		fprintf(stderr, "pstore: %s:%d: bad line or value\n", path, line);
		return -EINVAL;
	}
	if (!cf->fat[0] || !cf->ca[0] || !cf->cert[0] || !cf->key[0]) {
		fprintf(stderr, "pstore: %s: needs [client] fat and [tls] ca, cert, key\n",
			path);
		return -EINVAL;
	}
	return 0;
}

/* Splits conf.fat into trimmed addresses. */
static int split_fat(struct cli *c)
{
	char *save = NULL, *tok;

	memcpy(c->fat_buf, c->conf.fat, sizeof(c->fat_buf));
	c->n_fat = 0;
	for (tok = strtok_r(c->fat_buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char host[256], *end;
		uint16_t port;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		end = tok + strlen(tok);
		while (end > tok && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (!*tok)
			continue;
		if (parse_hostport(tok, host, sizeof(host), &port) < 0) {
			fprintf(stderr, "pstore: %s: bad FAT address '%s' (want host:port)\n",
				c->conf.path, tok);
			return -EINVAL;
		}
		if (c->n_fat == CLI_MAX_FAT) {
			fprintf(stderr, "pstore: %s: more than %d FAT servers\n", c->conf.path,
				CLI_MAX_FAT);
			return -EINVAL;
		}
		c->fat_addrs[c->n_fat++] = tok;
	}
	if (c->n_fat == 0) {
		fprintf(stderr, "pstore: %s: no FAT server in [client] fat\n", c->conf.path);
		return -EINVAL;
	}
	return 0;
}

int cli_connect(struct cli *c)
{
	struct alloc_opts opts;
	int rc;

	if (c->connected)
		return 0;
	rc = conf_load(c->conf_arg, &c->conf);
	if (rc < 0)
		return rc;
	rc = split_fat(c);
	if (rc < 0)
		return rc;
	c->tls = xport_tls_new(c->conf.ca, c->conf.cert, c->conf.key, false);
	if (!c->tls) {
		fprintf(stderr,
			"pstore: cannot load TLS files of %s (ca %s, cert %s, key %s)\n",
			c->conf.path, c->conf.ca, c->conf.cert, c->conf.key);
		rc = -EINVAL;
		goto fail;
	}
	if (c->conf.crl[0] && xport_tls_set_crl(c->tls, c->conf.ca, c->conf.crl) < 0) {
		fprintf(stderr, "pstore: cannot use the CRL %s of %s\n", c->conf.crl,
			c->conf.path);
		rc = -EINVAL;
		goto fail;
	}
	c->pool = xport_pool_new(c->tls, 1);
	if (!c->pool) {
		rc = -ENOMEM;
		goto fail;
	}
	memset(&opts, 0, sizeof(opts));
	opts.fat_addrs = c->fat_addrs;
	opts.n_fat = c->n_fat;
	opts.timeout_ms = c->conf.timeout_ms;
	opts.lease_ms = c->conf.lease_ms;
	opts.zstd_level = 1;
	opts.upload_threads = 1;
	opts.pieces = 2;
	c->alloc = alloc_new(c->pool, &opts);
	if (!c->alloc) {
		fprintf(stderr, "pstore: cannot set up the FAT client\n");
		rc = -ENOMEM;
		goto fail;
	}
	c->connected = true;
	return 0;
fail:
	cli_close(c);
	return rc;
}

void cli_close(struct cli *c)
{
	if (c->alloc)
		alloc_free(c->alloc);
	if (c->pool)
		xport_pool_free(c->pool);
	if (c->tls)
		xport_tls_free(c->tls);
	c->alloc = NULL;
	c->pool = NULL;
	c->tls = NULL;
	c->connected = false;
}

static const struct {
	const char *name;
	int (*fn)(struct cli *c, int argc, char **argv);
} commands[] = {
    {"volume", cmd_volume}, {"vendors", cmd_vendors}, {"locate", cmd_locate},
    {"sync", cmd_sync},	    {"fsck", cmd_fsck},	      {"cache", cmd_cache},
    {"fat", cmd_fat},	    {"probe", cmd_probe},     {"ca", cmd_ca},
};

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"debug", no_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct cli c;
	int opt, rc;

	memset(&c, 0, sizeof(c));
	log_init("pstore", LOG_WARN);
	/* '+': stop at the first non-option so subcommands parse their own. */
	while ((opt = getopt_long(argc, argv, "+c:dhV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			c.conf_arg = optarg;
			break;
		case 'd':
			log_set_level(LOG_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		case 'V':
			printf("pstore %s\n", PSTORE_VERSION);
			return CLI_OK;
		default:
			usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0 || strcmp(argv[optind], "--help") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			rc = commands[i].fn(&c, argc - optind, argv + optind);
			cli_close(&c);
			return rc;
		}
	}
	fprintf(stderr, "pstore: unknown command '%s' (see pstore --help)\n", argv[optind]);
	return CLI_USAGE;
}
