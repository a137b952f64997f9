/*
 * cluster.c - what makes several fatd instances interchangeable in front of
 * one etcd cluster: opening the store the config names (LMDB or etcd), one
 * signing key for the whole cluster (kept in etcd, so a token signed by any
 * fatd verifies at every vendor), the leader-gated housekeeping, and the
 * status that `pstore fat status` shows.  With store = lmdb all of this
 * reduces to the single-server behaviour.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "etcd.h"
#include "fatsrv.h"

#define SIGNING_KEY "sys/signing.key"
#define SIGNING_KEY_MAX 4096
#define ETCD_TIMEOUT_MS 2000  /* one attempt on one member */
#define ETCD_DEADLINE_MS 8000 /* a call, across members and an election */

int fat_cluster_open_store(const struct fat_config *cfg, struct fat_store **out)
{
	struct etcd_conn *conn = NULL;
	int rc;

	if (strcmp(cfg->store, "etcd") != 0)
		return fat_store_open_lmdb(cfg->data, cfg->map_size, out);
	rc = etcd_conn_new(cfg->etcd, cfg->etcd_ca[0] ? cfg->etcd_ca : cfg->tls_ca,
			   cfg->etcd_cert[0] ? cfg->etcd_cert : cfg->tls_cert,
			   cfg->etcd_key[0] ? cfg->etcd_key : cfg->tls_key, ETCD_TIMEOUT_MS,
			   ETCD_DEADLINE_MS, &conn);
	if (rc < 0)
		return rc;
	rc = fat_store_open_etcd(conn, cfg->etcd_prefix, out);
	if (rc == 0)
		log_info("FAT store: etcd at %s (prefix %s)", cfg->etcd, cfg->etcd_prefix);
	return rc;
}

struct keyop {
	const char *path;
	char *mine; /* this fatd's key file, when the cluster has none yet */
	size_t mine_len;
	uint8_t *theirs;
	size_t theirs_len;
};

static int key_fn(struct fat_txn *t, void *arg)
{
	struct keyop *op = arg;
	const void *v;
	size_t vl;
	int rc;

	free(op->theirs);
	op->theirs = NULL;
	rc = fat_txn_get(t, SIGNING_KEY, strlen(SIGNING_KEY), &v, &vl);
	if (rc == 0) {
		if (vl == 0 || vl > SIGNING_KEY_MAX)
			return -EIO;
		op->theirs = malloc(vl);
		if (!op->theirs)
			return -ENOMEM;
		memcpy(op->theirs, v, vl);
		op->theirs_len = vl;
		return 0;
	}
	if (rc != -ENOENT)
		return rc;
	return fat_txn_put(t, SIGNING_KEY, strlen(SIGNING_KEY), op->mine, op->mine_len);
}

static int write_key_file(const char *path, const uint8_t *b, size_t len)
{
	char tmp[4200];
	FILE *f;
	int ok;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return -ENAMETOOLONG;
	unlink(tmp);
	f = fopen(tmp, "wx");
	if (!f)
		return -errno;
	chmod(tmp, 0600);
	ok = fwrite(b, 1, len, f) == len;
	ok = fflush(f) == 0 && ok;
	ok = fsync(fileno(f)) == 0 && ok;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, path) < 0) {
		unlink(tmp);
		return -EIO;
	}
	return 0;
}

int fat_cluster_signing_key(struct fat_store *s, const char *key_path)
{
	struct keyop op = {.path = key_path};
	struct cap_key *k;
	int rc;

	if (!fat_store_etcd_conn(s))
		return 0; /* LMDB: the key file is this server's own */
	/* our own key (created if missing) is offered when the cluster has none */
	k = cap_key_load(key_path, true);
	if (!k) {
		log_err("cannot load or create the signing key %s", key_path);
		return -EIO;
	}
	cap_key_free(k);
	rc = read_file(key_path, SIGNING_KEY_MAX, &op.mine, &op.mine_len);
	if (rc < 0) {
		log_err("cannot read %s: %s", key_path, strerror(-rc));
		return rc;
	}
	rc = fat_store_run(s, false, key_fn, &op);
	if (rc == 0 && op.theirs) {
		if (op.theirs_len != op.mine_len ||
		    memcmp(op.theirs, op.mine, op.mine_len) != 0) {
			rc = write_key_file(key_path, op.theirs, op.theirs_len);
			if (rc == 0)
				log_info("signing key: took the FAT cluster's key into %s",
					 key_path);
			else
				log_err("cannot write %s: %s", key_path, strerror(-rc));
		}
	} else if (rc == 0) {
		log_info("signing key: this fatd's key is now the FAT cluster's");
	} else {
		log_err("cannot agree on the cluster's signing key in etcd: %s", strerror(-rc));
	}
	free(op.mine);
	free(op.theirs);
	return rc;
}

int fat_cluster_start(struct fat_ctx *fc, const struct fat_config *cfg)
{
	unsigned ttl_s = (cfg->leader_ttl_ms + 999) / 1000;
	int rc;

	fc->id = cfg->id;
	if (!fat_store_etcd_conn(fc->store))
		return 0;
	rc = fat_leader_new(fc->store, cfg->id, ttl_s < 2 ? 2 : ttl_s, &fc->leader);
	if (rc < 0)
		return rc;
	fat_leader_tick(fc->leader);
	return 0;
}

void fat_cluster_stop(struct fat_ctx *fc)
{
	if (!fc->leader)
		return;
	fat_leader_resign(fc->leader);
	fat_leader_free(fc->leader);
	fc->leader = NULL;
}

bool fat_cluster_housekeeping_begin(struct fat_ctx *fc)
{
	if (!fc->leader)
		return true;
	fat_leader_tick(fc->leader);
	return fat_leader_is_me(fc->leader);
}

void fat_cluster_housekeeping_end(struct fat_ctx *fc, int rc)
{
	if (!fc->leader)
		return;
	if (rc == -ESTALE)
		fat_leader_stale(fc->leader);
	fat_leader_unfence(fc->leader);
}
