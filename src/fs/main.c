/*
 * main.c - pstorefs: command line, client.conf, startup (network, local
 * state, rebuild from the FAT mirror when the state is empty), the mount
 * and the multi-threaded FUSE loop, and an orderly shutdown.
 *
 *   pstorefs [-f] [-d] [-o opt,...] MOUNTPOINT
 *   -o config=FILE,volume=NAME,state=DIR,cache=DIR,log=FILE,no_writeback,
 *      no_allow_other,no_default_permissions,passphrase_file=F,key_file=F
 *   plus FUSE's own -o options, passed through.
 *
 * Without -f the process forks before any thread, LMDB environment or
 * connection exists; the parent waits until the child has mounted (or
 * failed) and exits with its status, so "pstorefs ... && use the mount" is
 * safe.  Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration.
 */
#define FUSE_USE_VERSION 35
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <ini.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "fs.h"
#include "memtune.h"
#include "ops.h"

struct fs_state fs;

#define DEFAULT_CONFIG "/etc/pstore/client.conf"

/* -o options of our own (fuse_opt table); the rest goes to FUSE. */
struct cmd_opts {
	char *config, *volume, *state, *cache, *log;
	int no_writeback;
	int no_allow_other, no_default_permissions;
	char *cache_max, *dirty_max, *writer_lease_ms, *writeback_delay_ms;
	char *passphrase_file, *key_file;
	int ro;
	char *nonopt[2]; /* SOURCE MOUNTPOINT (mount -t fuse.pstorefs) or MOUNTPOINT */
	int n_nonopt;
};

#define OPT(t, p)                                                                              \
	{                                                                                      \
		t, offsetof(struct cmd_opts, p), 1                                             \
	}
static const struct fuse_opt cmd_table[] = {
    OPT("config=%s", config),
    OPT("volume=%s", volume),
    OPT("state=%s", state),
    OPT("cache=%s", cache),
    OPT("log=%s", log),
    OPT("no_writeback", no_writeback),
    OPT("no_allow_other", no_allow_other),
    OPT("no_default_permissions", no_default_permissions),
    OPT("cache_max=%s", cache_max),
    OPT("dirty_max=%s", dirty_max),
    OPT("writer_lease_ms=%s", writer_lease_ms),
    OPT("writeback_delay_ms=%s", writeback_delay_ms),
    OPT("ro", ro),
    OPT("passphrase_file=%s", passphrase_file),
    OPT("key_file=%s", key_file),
    FUSE_OPT_END,
};

/* Keeps the non-option arguments: `pstorefs MOUNTPOINT`, or the form
 * mount(8) uses through mount.fuse3 for fstab entries of type
 * fuse.pstorefs: `pstorefs VOLUME MOUNTPOINT -o ...`. */
static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct cmd_opts *o = data;

	(void)outargs;
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;
	if (o->n_nonopt == 2) {
		fprintf(stderr, "pstorefs: unexpected argument '%s' (see --help)\n", arg);
		return -1;
	}
	o->nonopt[o->n_nonopt] = strdup(arg);
	if (!o->nonopt[o->n_nonopt])
		return -1;
	o->n_nonopt++;
	return 0;
}

static void usage(const char *prog)
{
	printf(
	    "usage: %s [-f] [-d] [-o opt,...] MOUNTPOINT\n"
	    "       %s [-o opt,...] VOLUME MOUNTPOINT   (as mount -t fuse.pstorefs runs it)\n"
	    "Mounts a pstore volume.\n\n"
	    "pstorefs options:\n"
	    "    -o config=FILE     client config (default " DEFAULT_CONFIG ")\n"
	    "    -o volume=NAME     volume to mount (default: [client] volume)\n"
	    "    -o state=DIR       local state: namespace, chunk maps, journal\n"
	    "    -o cache=DIR       local chunk cache\n"
	    "    -o log=FILE        log file when running in the background\n"
	    "                       (default: STATE/pstorefs.log)\n"
	    "    -o no_writeback    do not use the kernel's writeback cache\n"
	    "    -o no_allow_other  as root: only root may use the mount (default:\n"
	    "                       allow_other, every user may)\n"
	    "    -o no_default_permissions\n"
	    "                       no permission checks at all (default: the kernel\n"
	    "                       checks modes, like a local filesystem)\n"
	    "    -o ro              read-only view of what the writer committed\n"
	    "    -o cache_max=SIZE  chunk data the local cache keeps (default 2G)\n"
	    "    -o dirty_max=SIZE  data not yet uploaded before writers wait (default 1G,\n"
	    "                       at most half of cache_max)\n"
	    "    -o writeback_delay_ms=MS  the longest new data waits for writes to pause\n"
	    "                       before it is uploaded (default 30000; fsync never waits)\n"
	    "    -o writer_lease_ms=MS  the volume writer lease (default 30000)\n"
	    "    -o passphrase_file=FILE  an encrypted volume's passphrase (first line);\n"
	    "                       else $PSTORE_PASSPHRASE, else asked on the terminal\n"
	    "    -o key_file=FILE   an encrypted volume's key file\n"
	    "    -V, --version      print the version\n\n"
	    "fstab: VOLUME MOUNTPOINT fuse.pstorefs config=FILE,_netdev 0 0\n"
	    "See pstorefs(8).\n\n",
	    prog, prog);
}

static void cfg_defaults(struct fs_config *c)
{
	memset(c, 0, sizeof(*c));
	c->lease_ms = 60000;
	c->zstd_level = 1;
	c->upload_threads = 8;
	c->pieces = 2;
	c->log_level = LOG_INFO;
	c->batch_bytes = 64u << 20;
	c->batch_inodes = 1000;
	c->sync_timeout_ms = 600000;
	c->writeback = true;
	c->cache_max = UINT64_C(2) << 30;
	c->dirty_max = UINT64_C(1) << 30;
	c->writeback_delay_ms = 30000;
	c->writer_lease_ms = 30000;
	c->refresh_ms = 2000;
}

static int set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
	return *dst ? 0 : -ENOMEM;
}

static int set_uint(const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
	uint64_t x;

	if (parse_size(v, &x) < 0 || x < lo || x > hi)
		return -EINVAL;
	*out = x;
	return 0;
}

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
	struct fs_config *c = user;
	uint64_t v = 0;
	int rc = 0;

	if (strcmp(section, "client") == 0) {
		if (strcmp(name, "fat") == 0)
			rc = set_str(&c->fat, value);
		else if (strcmp(name, "volume") == 0)
			rc = set_str(&c->volume, value);
		else if (strcmp(name, "state") == 0)
			rc = set_str(&c->state_dir, value);
		else if (strcmp(name, "cache") == 0)
			rc = set_str(&c->cache_dir, value);
		else if (strcmp(name, "passphrase_file") == 0)
			rc = set_str(&c->passphrase_file, value);
		else if (strcmp(name, "key_file") == 0)
			rc = set_str(&c->key_file, value);
		else if (strcmp(name, "lease_ms") == 0) {
			if ((rc = set_uint(value, 1000, 3600000, &v)) == 0)
				c->lease_ms = (uint32_t)v;
		} else if (strcmp(name, "zstd_level") == 0) {
			if ((rc = set_uint(value, 0, 19, &v)) == 0)
				c->zstd_level = (int)v;
		} else if (strcmp(name, "upload_threads") == 0) {
			if ((rc = set_uint(value, 1, 256, &v)) == 0)
				c->upload_threads = (unsigned)v;
		} else if (strcmp(name, "pieces") == 0) {
			if ((rc = set_uint(value, 1, CHUNK_MAX_PIECES, &v)) == 0)
				c->pieces = (unsigned)v;
		} else if (strcmp(name, "flush_batch") == 0)
			rc = set_uint(value, 1u << 20, 1u << 30, &c->batch_bytes);
		else if (strcmp(name, "flush_inodes") == 0) {
			if ((rc = set_uint(value, 1, 100000, &v)) == 0)
				c->batch_inodes = (unsigned)v;
		} else if (strcmp(name, "sync_timeout_ms") == 0) {
			if ((rc = set_uint(value, 1000, 86400000, &v)) == 0)
				c->sync_timeout_ms = (unsigned)v;
		} else if (strcmp(name, "cache_max") == 0)
			rc = set_uint(value, 1u << 20, UINT64_C(1) << 50, &c->cache_max);
		else if (strcmp(name, "dirty_max") == 0)
			rc = set_uint(value, 1u << 20, UINT64_C(1) << 50, &c->dirty_max);
		else if (strcmp(name, "writer_lease_ms") == 0) {
			if ((rc = set_uint(value, 1000, 600000, &v)) == 0)
				c->writer_lease_ms = (uint32_t)v;
		} else if (strcmp(name, "writeback_delay_ms") == 0) {
			if ((rc = set_uint(value, 0, 86400000, &v)) == 0)
				c->writeback_delay_ms = (unsigned)v;
		} else if (strcmp(name, "refresh_ms") == 0) {
			if ((rc = set_uint(value, 100, 3600000, &v)) == 0)
				c->refresh_ms = (unsigned)v;
		} else if (strcmp(name, "writeback_cache") == 0)
			rc = parse_bool(value, &c->writeback);
		else if (strcmp(name, "log_level") == 0)
			rc = (c->log_level = log_level_parse(value)) < 0 ? -EINVAL : 0;
		else
			log_debug("config: [client] %s is not for pstorefs; ignored", name);
	} else if (strcmp(section, "tls") == 0) {
		if (strcmp(name, "ca") == 0)
			rc = set_str(&c->tls_ca, value);
		else if (strcmp(name, "cert") == 0)
			rc = set_str(&c->tls_cert, value);
		else if (strcmp(name, "key") == 0)
			rc = set_str(&c->tls_key, value);
		else if (strcmp(name, "crl") == 0)
			rc = set_str(&c->tls_crl, value);
	}
	if (rc < 0) {
		log_err("config: [%s] %s = %s: invalid value", section, name, value);
		return 0;
	}
	return 1;
}

/* Resolves dir (creating it) to an absolute path. */
static int abs_dir(char **dir)
{
	char buf[PATH_MAX];
	int rc = mkdir_p(*dir, 0700);

	if (rc < 0 || !realpath(*dir, buf)) {
		rc = rc < 0 ? rc : -errno;
		log_err("%s: %s", *dir, strerror(-rc));
		return rc;
	}
	return set_str(dir, buf);
}

static int load_config(struct cmd_opts *o)
{
	struct fs_config *c = &fs.cfg;
	const char *file = o->config ? o->config : DEFAULT_CONFIG;
	int rc;

	cfg_defaults(c);
	c->config_file = strdup(file);
	rc = ini_parse(file, ini_cb, c);
	if (rc == -1) {
		log_err("config: cannot open %s (give one with -o config=FILE)", file);
		return -ENOENT;
	}
	if (rc != 0) {
		log_err("config: %s: error on line %d", file, rc);
		return -EINVAL;
	}
	if (o->volume && set_str(&c->volume, o->volume) < 0)
		return -ENOMEM;
	if (o->state && set_str(&c->state_dir, o->state) < 0)
		return -ENOMEM;
	if (o->cache && set_str(&c->cache_dir, o->cache) < 0)
		return -ENOMEM;
	if (o->log && set_str(&c->log_file, o->log) < 0)
		return -ENOMEM;
	/* a secret given on the command line replaces the config's, of either kind */
	if (o->passphrase_file || o->key_file) {
		free(c->passphrase_file);
		free(c->key_file);
		c->passphrase_file = c->key_file = NULL;
		if ((o->passphrase_file &&
		     set_str(&c->passphrase_file, o->passphrase_file) < 0) ||
		    (o->key_file && set_str(&c->key_file, o->key_file) < 0))
			return -ENOMEM;
	}
	if (o->no_writeback)
		c->writeback = false;
	if (o->ro) {
		c->readonly = true;
		/* with the writeback cache the kernel keeps its own file sizes:
		 * a read-only mount must take the writer's */
		c->writeback = false;
	}
	if (o->cache_max &&
	    set_uint(o->cache_max, 1u << 20, UINT64_C(1) << 50, &c->cache_max) < 0) {
		log_err("-o cache_max=%s: give a size of at least 1M (e.g. 64M, 2G)",
			o->cache_max);
		return -EINVAL;
	}
	if (o->dirty_max &&
	    set_uint(o->dirty_max, 1u << 20, UINT64_C(1) << 50, &c->dirty_max) < 0) {
		log_err("-o dirty_max=%s: give a size of at least 1M (e.g. 256M)",
			o->dirty_max);
		return -EINVAL;
	}
	if (o->writer_lease_ms) {
		uint64_t v;

		if (set_uint(o->writer_lease_ms, 1000, 600000, &v) < 0) {
			log_err("-o writer_lease_ms=%s: give 1000..600000", o->writer_lease_ms);
			return -EINVAL;
		}
		c->writer_lease_ms = (uint32_t)v;
	}
	if (o->writeback_delay_ms) {
		uint64_t v;

		if (set_uint(o->writeback_delay_ms, 0, 86400000, &v) < 0) {
			log_err("-o writeback_delay_ms=%s: give 0..86400000",
				o->writeback_delay_ms);
			return -EINVAL;
		}
		c->writeback_delay_ms = (unsigned)v;
	}
	if (!c->volume && set_str(&c->volume, "default") < 0)
		return -ENOMEM;
	if (!c->state_dir && set_str(&c->state_dir, "/var/lib/pstore/client") < 0)
		return -ENOMEM;
	if (!c->cache_dir && set_str(&c->cache_dir, "/var/cache/pstore") < 0)
		return -ENOMEM;
	if (!c->fat || !c->tls_ca || !c->tls_cert || !c->tls_key) {
		log_err("config: %s needs [client] fat and [tls] ca, cert, key", file);
		return -EINVAL;
	}
	if (strlen(c->volume) >= sizeof(fs.vol.name)) {
		log_err("config: volume name too long");
		return -EINVAL;
	}
	return 0;
}

/* "a:1, b:2" -> array of trimmed strings. */
static int split_addrs(char *s, char ***out, size_t *n)
{
	char **v = NULL, *save = NULL, *tok;
	size_t k = 0;

	for (tok = strtok_r(s, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char **nv;
		char *e;

		while (*tok == ' ' || *tok == '\t')
			tok++;
		e = tok + strlen(tok);
		while (e > tok && (e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (!*tok)
			continue;
		nv = realloc(v, (k + 1) * sizeof(*v));
		if (!nv) {
			free(v);
			return -ENOMEM;
		}
		v = nv;
		v[k++] = tok;
	}
	if (k == 0) {
		free(v);
		return -EINVAL;
	}
	*out = v;
	*n = k;
	return 0;
}

static struct xport_tls *net_tls;
static struct xport_pool *net_pool;
static char **fat_addrs;

/* An encrypted volume's key, before anything local or remote changes: a
 * wrong passphrase ends the mount here. */
static int unlock_volume(void)
{
	struct alloc_secret_src src = {.key_file = fs.cfg.key_file,
				       .passphrase_file = fs.cfg.passphrase_file,
				       .env = true,
				       .prompt = true};
	char err[512];
	int rc;

	rc = alloc_volume_unlock(fs.alloc, &src, err, sizeof(err));
	if (rc < 0) {
		log_err("%s; nothing was mounted or changed", err);
		return rc;
	}
	if (alloc_volume_encrypted(fs.alloc))
		log_info("volume %s: encrypted, key opened", fs.vol.name);
	else
		log_warn("volume %s is not encrypted: the FAT and vendors see names and data",
			 fs.vol.name);
	return 0;
}

static int net_open(void)
{
	struct alloc_opts ao = {0};
	size_t n_fat = 0;
	int rc;

	rc = split_addrs(fs.cfg.fat, &fat_addrs, &n_fat);
	if (rc < 0) {
		log_err("config: [client] fat lists no address");
		return rc;
	}
	net_tls = xport_tls_new(fs.cfg.tls_ca, fs.cfg.tls_cert, fs.cfg.tls_key, false);
	if (!net_tls)
		return -EINVAL;
	/* revoked FAT servers and vendors are refused at the handshake */
	if (fs.cfg.tls_crl && fs.cfg.tls_crl[0]) {
		rc = xport_tls_set_crl(net_tls, fs.cfg.tls_ca, fs.cfg.tls_crl);
		if (rc < 0) {
			log_err("config: [tls] crl = %s: %s", fs.cfg.tls_crl, strerror(-rc));
			return rc;
		}
	}
	net_pool = xport_pool_new(net_tls, 4 + fs.cfg.upload_threads);
	if (!net_pool)
		return -ENOMEM;
	ao.fat_addrs = (const char *const *)fat_addrs;
	ao.n_fat = n_fat;
	ao.timeout_ms = 10000;
	ao.lease_ms = fs.cfg.lease_ms;
	ao.zstd_level = fs.cfg.zstd_level;
	ao.upload_threads = fs.cfg.upload_threads;
	ao.pieces = fs.cfg.pieces;
	fs.alloc = alloc_new(net_pool, &ao);
	if (!fs.alloc)
		return -ENOMEM;
	rc = alloc_volume_open(fs.alloc, fs.cfg.volume, &fs.vol);
	if (rc < 0) {
		log_err("volume %s: %s%s", fs.cfg.volume, strerror(-rc),
			rc == -ENOENT ? " (create it with `pstore volume create`)" : "");
		return rc;
	}
	if (fs.vol.chunk_size < 4096 || fs.vol.chunk_size > CHUNK_MAX_RAW) {
		log_err("volume %s: chunk size %u out of range", fs.vol.name,
			fs.vol.chunk_size);
		return -EPROTO;
	}
	fs.chunk_size = fs.vol.chunk_size;
	rc = unlock_volume();
	if (rc < 0)
		return rc;
	/* path probing: [probe] of the same config (docs/probing.md) */
	return alloc_probe_configure(fs.alloc, fs.cfg.config_file);
}

static void net_close(void)
{
	if (fs.alloc)
		alloc_free(fs.alloc);
	if (net_pool)
		xport_pool_free(net_pool);
	if (net_tls)
		xport_tls_free(net_tls);
	free(fat_addrs);
}

/* Opens the local state, checks it belongs to this volume, rebuilds it from
 * the mirror when empty, and recovers what a crash left. */
static int state_open(void)
{
	struct fs_txn t;
	uint8_t vid[CHUNK_OWNER_LEN];
	uint64_t cs = 0, *orphans = NULL;
	size_t n_orphans = 0;
	bool empty;
	int rc;

	rc = meta_open(fs.cfg.state_dir, &fs.meta);
	if (rc == 0)
		rc = cache_open(fs.cfg.cache_dir, &fs.cache);
	if (rc < 0)
		return rc;
	rc = meta_begin(fs.meta, true, &t);
	if (rc < 0)
		return rc;
	rc = meta_get_blob(&t, "volume_id", vid, sizeof(vid));
	if (rc == 0 && memcmp(vid, fs.vol.id, sizeof(vid)) != 0) {
		log_err("state directory %s belongs to another volume than %s",
			fs.cfg.state_dir, fs.vol.name);
		meta_abort(&t);
		return -EINVAL;
	}
	if (rc == 0 && (meta_get_u64(&t, "chunk_size", &cs) < 0 || cs != fs.chunk_size)) {
		log_err("state directory %s: chunk size differs from the volume's",
			fs.cfg.state_dir);
		meta_abort(&t);
		return -EINVAL;
	}
	if (rc == -ENOENT) {
		rc = meta_put_blob(&t, "volume_id", fs.vol.id, sizeof(fs.vol.id));
		if (rc == 0)
			rc = meta_put_u64(&t, "chunk_size", fs.chunk_size);
	}
	if (rc == 0)
		rc = meta_commit(&t);
	else
		meta_abort(&t);
	if (rc < 0)
		return rc;
	empty = meta_is_empty(fs.meta);
	if (empty) {
		/* Cache files left from an earlier state cannot be trusted. */
		rc = cache_wipe(fs.cache);
		if (rc == 0)
			rc = mirror_rebuild();
		if (rc < 0)
			return rc;
	}
	rc = meta_recover(fs.meta, &orphans, &n_orphans);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < n_orphans; i++)
		cache_unlink(fs.cache, orphans[i]);
	if (n_orphans)
		log_info("removed %zu files unlinked while open before the last exit",
			 n_orphans);
	free(orphans);
	return 0;
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Forks; the parent waits for the child's status byte and exits with it. */
static int daemon_fork(int *notify_fd)
{
	int p[2];
	pid_t pid;

	if (pipe(p) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		unsigned char st = 1;
		ssize_t n;

		close(p[1]);
		do
			n = read(p[0], &st, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 ? st : 1);
	}
	close(p[0]);
	setsid();
	*notify_fd = p[1];
	return 0;
}

static void daemon_notify(int *fd, unsigned char status)
{
	if (*fd < 0)
		return;
	(void)write_full(*fd, &status, 1);
	close(*fd);
	*fd = -1;
}

static int redirect_log(void)
{
	char path[PATH_MAX];
	int fd, nul;

	if (fs.cfg.log_file)
		snprintf(path, sizeof(path), "%s", fs.cfg.log_file);
	else
		snprintf(path, sizeof(path), "%s/pstorefs.log", fs.cfg.state_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_err("log file %s: %s", path, strerror(errno));
		return -errno;
	}
	nul = open("/dev/null", O_RDWR);
	if (nul >= 0) {
		dup2(nul, STDIN_FILENO);
		dup2(nul, STDOUT_FILENO);
		if (nul > STDERR_FILENO)
			close(nul);
	}
	dup2(fd, STDERR_FILENO);
	close(fd);
	return 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts copts = {0};
	struct cmd_opts o = {0};
	struct fuse_lowlevel_ops ops = {0};
	struct fuse_session *se = NULL;
	struct fuse_loop_config lc = {0};
	char *mp_abs = NULL;
	int notify = -1, rc, ret = 1;
	bool mounted = false;

	log_init(argv[0], LOG_INFO);
	memtune_apply(0, MEMTUNE_ARENA_MAX); /* before any thread */
	if (fuse_opt_parse(&args, &o, cmd_table, opt_proc) < 0)
		return 2;
	if (o.n_nonopt == 2 && !o.volume) {
		o.volume = o.nonopt[0];
		o.nonopt[0] = NULL;
	}
	if (o.n_nonopt > 0 && fuse_opt_add_arg(&args, o.nonopt[o.n_nonopt - 1]) < 0)
		return 2;
	free(o.nonopt[0]);
	free(o.nonopt[1]);
	if (fuse_parse_cmdline(&args, &copts) != 0)
		return 2;
	if (copts.show_help) {
		usage(argv[0]);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto out_args;
	}
	if (copts.show_version) {
		printf("pstorefs %s (FUSE %s)\n", PSTORE_VERSION, fuse_pkgversion());
		ret = 0;
		goto out_args;
	}
	if (!copts.mountpoint) {
		usage(argv[0]);
		ret = 2;
		goto out_args;
	}
	if (load_config(&o) < 0) {
		ret = 2;
		goto out_args;
	}
	log_set_level(copts.debug ? LOG_DEBUG : fs.cfg.log_level);
	mp_abs = realpath(copts.mountpoint, NULL);
	if (!mp_abs) {
		log_err("mountpoint %s: %s", copts.mountpoint, strerror(errno));
		ret = 2;
		goto out_args;
	}
	snprintf(fs.mountpoint, sizeof(fs.mountpoint), "%s", mp_abs);
	if (abs_dir(&fs.cfg.state_dir) < 0 || abs_dir(&fs.cfg.cache_dir) < 0) {
		ret = 2;
		goto out_args;
	}
	if (fs.cfg.log_file && fs.cfg.log_file[0] != '/') {
		log_err("log=%s: give an absolute path", fs.cfg.log_file);
		ret = 2;
		goto out_args;
	}
	if (!copts.foreground && daemon_fork(&notify) < 0) {
		log_err("fork: %s", strerror(errno));
		goto out_args;
	}
	raise_nofile();
	signal(SIGPIPE, SIG_IGN);

	rc = net_open();
	if (rc == 0)
		rc = refresh_prepare_state();
	if (rc == 0)
		rc = state_open();
	/* one writer per volume: refused while another mount holds the lease */
	if (rc == 0 && !fs.cfg.readonly)
		rc = lease_start();
	if (rc < 0)
		goto out;
	if (fs.cfg.readonly && fuse_opt_add_arg(&args, "-oro") < 0)
		goto out;

	{
		char fsname[256];

		snprintf(fsname, sizeof(fsname), "-ofsname=pstore:%s,subtype=pstorefs%s%s",
			 fs.vol.name, o.no_default_permissions ? "" : ",default_permissions",
			 geteuid() == 0 && !o.no_allow_other ? ",allow_other" : "");
		if (fuse_opt_add_arg(&args, fsname) < 0)
			goto out;
	}
	ops_fill(&ops);
	se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!se)
		goto out;
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	if (fuse_session_mount(se, fs.mountpoint) != 0)
		goto out;
	mounted = true;
	if (fuseio_attach(se) < 0)
		log_warn("cannot hook the FUSE channel: writes will cost a GETXATTR each");
	fs.se = se;
	if ((fs.cfg.readonly ? refresh_start() : flush_start()) < 0 || evict_start() < 0 ||
	    ra_start() < 0 || control_start(fs.mountpoint) < 0)
		goto out;
	if (!copts.foreground) {
		if (redirect_log() < 0)
			goto out;
		if (chdir("/") < 0)
			log_warn("chdir /: %s", strerror(errno));
	}
	memtune_trim_start(MEMTUNE_TRIM_MS); /* failure logged; RSS then stays at its peak */
	daemon_notify(&notify, 0);

	if (copts.singlethread) {
		rc = fuse_session_loop(se);
	} else {
		lc.clone_fd = copts.clone_fd;
		/* UINT_MAX is fuse_parse_cmdline's "not given" */
		lc.max_idle_threads =
		    copts.max_idle_threads == UINT_MAX ? 10 : copts.max_idle_threads;
		rc = fuse_session_loop_mt(se, &lc);
	}
	ret = rc == 0 ? 0 : 1;
out:
	if (se) {
		fuse_remove_signal_handlers(se);
		if (mounted)
			fuse_session_unmount(se);
		/* calls ops.destroy, which waits for the flusher's last commit */
		fuse_session_destroy(se);
	}
	ra_stop();
	flush_stop();
	refresh_stop();
	evict_stop();
	lease_stop(); /* after the last commit */
	control_stop();
	memtune_trim_stop();
	if (fs.meta)
		meta_close(fs.meta);
	cache_close(fs.cache);
	net_close();
	if (ret != 0)
		log_err("pstorefs exits with status %d", ret);
	daemon_notify(&notify, (unsigned char)ret);
out_args:
	free(mp_abs);
	free(copts.mountpoint);
	fuse_opt_free_args(&args);
	return ret;
}
