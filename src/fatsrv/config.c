/*
 * config.c - fatd.conf: INI parsed by inih, every value checked, the first
 * problem reported as "FILE:LINE: [section] key: why".  Defaults live in
 * fat_config_defaults() and are documented in docs/man/pstore-fatd.8.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <ini.h>

#include "common.h"
#include "fatsrv.h"

struct parse_state {
	struct fat_config *c;
	char why[256];
	bool seen_listen, seen_data, seen_ca, seen_cert, seen_key, seen_etcd, seen_other;
};

void fat_config_defaults(struct fat_config *c)
{
	memset(c, 0, sizeof(*c));
	c->id = 1;
	c->lease_max_ms = 60000;
	c->vendor_timeout_ms = 6000;
	c->heartbeat_ms = 1000;
	c->map_size = 16ull << 30;
	c->log_level = LOG_INFO;
	strcpy(c->store, "lmdb");
	strcpy(c->etcd_prefix, "pstore/");
	c->leader_ttl_ms = 5000;
}

static int bad(struct parse_state *ps, const char *section, const char *name, const char *why)
{
	snprintf(ps->why, sizeof(ps->why), "[%s] %s: %s", section, name, why);
	return 0; /* inih: error on this line */
}

static int set_str(struct parse_state *ps, const char *section, const char *name,
		   const char *value, char *dst, size_t size, bool *seen)
{
	if (value[0] == '\0')
		return bad(ps, section, name, "must not be empty");
	if (strlen(value) >= size)
		return bad(ps, section, name, "too long");
	memcpy(dst, value, strlen(value) + 1);
	*seen = true;
	return 1;
}

static int set_u32(struct parse_state *ps, const char *section, const char *name,
		   const char *value, uint64_t lo, uint64_t hi, uint32_t *dst)
{
	uint64_t v;
	char why[96];

	if (parse_u64(value, &v) < 0 || v < lo || v > hi) {
		snprintf(why, sizeof(why), "'%.32s' is not an integer in %llu..%llu", value,
			 (unsigned long long)lo, (unsigned long long)hi);
		return bad(ps, section, name, why);
	}
	*dst = (uint32_t)v;
	return 1;
}

int fat_listen_host(const char *listen, char *host, size_t hostlen)
{
	char tmp[sizeof(((struct fat_config *)0)->listen)];
	size_t n = strlen(listen);
	uint16_t port;

	if (n >= sizeof(tmp))
		return -EINVAL;
	memcpy(tmp, listen, n + 1);
	/* port 0 (the kernel picks one) is fine for a listener */
	if (n >= 2 && strcmp(tmp + n - 2, ":0") == 0)
		tmp[n - 1] = '1';
	return parse_hostport(tmp, host, hostlen, &port);
}

static int on_fatd(struct parse_state *ps, const char *name, const char *value)
{
	struct fat_config *c = ps->c;
	const char *s = "fatd";

	if (strcmp(name, "id") == 0)
		return set_u32(ps, s, name, value, 1, INT32_MAX, &c->id);
	if (strcmp(name, "listen") == 0) {
		char host[128];

		if (fat_listen_host(value, host, sizeof(host)) < 0)
			return bad(ps, s, name, "expected host:port (e.g. 127.0.0.1:7000)");
		return set_str(ps, s, name, value, c->listen, sizeof(c->listen),
			       &ps->seen_listen);
	}
	if (strcmp(name, "data") == 0)
		return set_str(ps, s, name, value, c->data, sizeof(c->data), &ps->seen_data);
	if (strcmp(name, "lease_max_ms") == 0)
		return set_u32(ps, s, name, value, 100, 24u * 3600u * 1000u, &c->lease_max_ms);
	if (strcmp(name, "vendor_timeout_ms") == 0)
		return set_u32(ps, s, name, value, 100, 3600u * 1000u, &c->vendor_timeout_ms);
	if (strcmp(name, "heartbeat_ms") == 0)
		return set_u32(ps, s, name, value, 50, 600u * 1000u, &c->heartbeat_ms);
	if (strcmp(name, "map_size") == 0) {
		uint64_t v;

		if (parse_size(value, &v) < 0 || v < (1u << 20) || v > (1ull << 40))
			return bad(ps, s, name, "expected a size from 1M to 1T (e.g. 16G)");
		c->map_size = v;
		return 1;
	}
	if (strcmp(name, "store") == 0) {
		if (strcmp(value, "lmdb") != 0 && strcmp(value, "etcd") != 0)
			return bad(ps, s, name, "expected lmdb or etcd");
		strcpy(c->store, value);
		return 1;
	}
	if (strcmp(name, "etcd") == 0) {
		if (strncmp(value, "https://", 8) != 0)
			return bad(ps, s, name,
				   "expected https://host:port[,https://host:port...]");
		return set_str(ps, s, name, value, c->etcd, sizeof(c->etcd), &ps->seen_etcd);
	}
	if (strcmp(name, "etcd_prefix") == 0)
		return set_str(ps, s, name, value, c->etcd_prefix, sizeof(c->etcd_prefix),
			       &ps->seen_other);
	if (strcmp(name, "etcd_ca") == 0)
		return set_str(ps, s, name, value, c->etcd_ca, sizeof(c->etcd_ca),
			       &ps->seen_other);
	if (strcmp(name, "etcd_cert") == 0)
		return set_str(ps, s, name, value, c->etcd_cert, sizeof(c->etcd_cert),
			       &ps->seen_other);
	if (strcmp(name, "etcd_key") == 0)
		return set_str(ps, s, name, value, c->etcd_key, sizeof(c->etcd_key),
			       &ps->seen_other);
	if (strcmp(name, "leader_ttl_ms") == 0)
		return set_u32(ps, s, name, value, 2000, 600u * 1000u, &c->leader_ttl_ms);
	if (strcmp(name, "user") == 0)
		return set_str(ps, s, name, value, c->user, sizeof(c->user), &ps->seen_other);
	if (strcmp(name, "log_level") == 0) {
		int l = log_level_parse(value);

		if (l < 0)
			return bad(ps, s, name, "expected error, warn, info or debug");
		c->log_level = l;
		return 1;
	}
	return bad(ps, s, name, "unknown key");
}

static int on_tls(struct parse_state *ps, const char *name, const char *value)
{
	struct fat_config *c = ps->c;

	if (strcmp(name, "ca") == 0)
		return set_str(ps, "tls", name, value, c->tls_ca, sizeof(c->tls_ca),
			       &ps->seen_ca);
	if (strcmp(name, "cert") == 0)
		return set_str(ps, "tls", name, value, c->tls_cert, sizeof(c->tls_cert),
			       &ps->seen_cert);
	if (strcmp(name, "key") == 0)
		return set_str(ps, "tls", name, value, c->tls_key, sizeof(c->tls_key),
			       &ps->seen_key);
	if (strcmp(name, "crl") == 0)
		return set_str(ps, "tls", name, value, c->tls_crl, sizeof(c->tls_crl),
			       &ps->seen_other);
	return bad(ps, "tls", name, "unknown key");
}

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *ps = user;

	if (ps->why[0])
		return 1; /* report the first problem only */
	if (strcmp(section, "fatd") == 0)
		return on_fatd(ps, name, value);
	if (strcmp(section, "tls") == 0)
		return on_tls(ps, name, value);
	return bad(ps, section, name, "unknown section (expected [fatd] or [tls])");
}

int fat_config_load(const char *path, struct fat_config *c)
{
	struct parse_state ps = {.c = c};
	const char *missing = NULL;
	int line;

	fat_config_defaults(c);
	line = ini_parse(path, on_entry, &ps);
	if (line == -1) {
		log_err("%s: cannot open: %s", path, strerror(errno ? errno : ENOENT));
		return -ENOENT;
	}
	if (line == -2) {
		log_err("%s: out of memory", path);
		return -ENOMEM;
	}
	if (line > 0) {
		log_err("%s:%d: %s", path, line, ps.why[0] ? ps.why : "syntax error");
		return -EINVAL;
	}
	if (!ps.seen_listen)
		missing = "[fatd] listen";
	else if (!ps.seen_data)
		missing = "[fatd] data";
	else if (!ps.seen_ca)
		missing = "[tls] ca";
	else if (!ps.seen_cert)
		missing = "[tls] cert";
	else if (!ps.seen_key)
		missing = "[tls] key";
	if (missing) {
		log_err("%s: %s is required", path, missing);
		return -EINVAL;
	}
	if (strcmp(c->store, "etcd") == 0 && !ps.seen_etcd) {
		log_err("%s: [fatd] store = etcd needs etcd = https://host:port,...", path);
		return -EINVAL;
	}
	if (c->heartbeat_ms >= c->vendor_timeout_ms) {
		log_err("%s: [fatd] heartbeat_ms (%u) must be below vendor_timeout_ms (%u)",
			path, c->heartbeat_ms, c->vendor_timeout_ms);
		return -EINVAL;
	}
	return 0;
}
