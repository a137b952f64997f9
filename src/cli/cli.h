/*
 * cli.h - the pstore command-line tool: shared state of one invocation and
 * the prototypes of each file.  main.c parses global options and dispatches;
 * each cmd_*.c implements one family of subcommands; ctl.c talks to a
 * mount's control socket.  Network calls go through src/alloc (FAT) and
 * src/transport; nothing here encodes wire bytes by hand.
 */
#ifndef PSTORE_CLI_H
#define PSTORE_CLI_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct json_object;
struct xport_tls;
struct xport_pool;
struct alloc_ctx;

/* Exit codes of every command. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

#define CLI_MAX_FAT 16

struct cli_conf {
	char path[PATH_MAX]; /* the file it came from */
	char fat[1024];	     /* comma-separated host:port list */
	char volume[64];
	char ca[PATH_MAX];
	char cert[PATH_MAX];
	char key[PATH_MAX];
	char crl[PATH_MAX];		/* [tls] crl, optional */
	char key_file[PATH_MAX];	/* [client] key_file: an encrypted volume's */
	char passphrase_file[PATH_MAX]; /* [client] passphrase_file */
	uint32_t lease_ms;
	int timeout_ms;
};

struct cli {
	const char *conf_arg; /* -c FILE, or NULL */
	struct cli_conf conf;
	bool connected;
	struct xport_tls *tls;
	struct xport_pool *pool;
	struct alloc_ctx *alloc;
	char fat_buf[1024];
	const char *fat_addrs[CLI_MAX_FAT];
	size_t n_fat;
};

/* main.c: loads the config (lookup order -c, $PSTORE_CONFIG,
 * ./.pstore-dev/client.conf, /etc/pstore/client.conf) and opens the TLS
 * context, the connection pool and the alloc context.  0 or -errno (the
 * reason is printed). */
int cli_connect(struct cli *c);
void cli_close(struct cli *c);
/* "4.0 GiB" style; buf of at least 16 bytes. */
const char *cli_human(uint64_t bytes, char *buf, size_t len);

/* out.c: the options of a command taking only [--json] [--help] and no
 * operand.  -1: go on (*json set); else the exit code to return (CLI_OK
 * after --help, CLI_USAGE), usage already printed. */
int cli_opts_json(int argc, char **argv, void (*usage)(FILE *), bool *json);

/* cmd_volume.c: volume create|list|passwd */
int cmd_volume(struct cli *c, int argc, char **argv);
/* cmd_vendors.c: vendors [--json] */
int cmd_vendors(struct cli *c, int argc, char **argv);
/* cmd_locate.c: locate FILE [--json], sync FILE|MOUNT */
int cmd_locate(struct cli *c, int argc, char **argv);
int cmd_sync(struct cli *c, int argc, char **argv);
/* cmd_fsck.c: fsck MOUNT [--json], cache drop MOUNT (through the mount) */
int cmd_fsck(struct cli *c, int argc, char **argv);
int cmd_cache(struct cli *c, int argc, char **argv);
/* cmd_probe.c: probe [--json] [--pin ID] MOUNT */
int cmd_probe(struct cli *c, int argc, char **argv);
/* cmd_fat.c: fat status [--json] */
int cmd_fat(struct cli *c, int argc, char **argv);
/* cmd_ca.c: ca init|issue|revoke|list|crl (no config, no network) */
int cmd_ca(struct cli *c, int argc, char **argv);

/* ctl.c: mount control sockets. */
/* Finds the pstorefs mount holding path: its mountpoint (absolute) and the
 * file's inode.  0, -ENOENT (path missing), -ENOTSUP (not on pstorefs). */
int ctl_find_mount(const char *path, char *mnt, size_t mnt_len, uint64_t *ino);
/* /run/pstore/ctl-<h>.sock for an absolute mountpoint. */
int ctl_socket_path(const char *mnt, char *out, size_t len);
/* Sends one JSON request line, reads one JSON reply line (at most
 * timeout_ms in all).  *reply is owned by the caller (json_object_put).
 * 0, -ECONNREFUSED/-ENOENT (no socket), -ETIMEDOUT, -EBADMSG. */
int ctl_request(const char *mnt, struct json_object *req, int timeout_ms,
		struct json_object **reply);
/* NULL if a reply says "ok": true; else its "error" string, or "no reason
 * given" (a string owned by reply, or static). */
const char *ctl_reply_error(struct json_object *reply);

#endif
