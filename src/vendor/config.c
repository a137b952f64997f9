/*
 * config.c - reads vendord.conf (INI, docs/ARCHITECTURE.md) with inih and
 * checks every value.  Errors name the file, the line and the key.  Device
 * directories are created when missing; nothing else touches the disk.
 */
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "vendor.h"

enum cfg_key {
	K_ID,
	K_LISTEN,
	K_ADDRESS,
	K_ZONE,
	K_DEVICES,
	K_CAPACITY,
	K_INDEX,
	K_FAT,
	K_HEARTBEAT,
	K_WORKERS,
	K_LOG_LEVEL,
	K_BANDWIDTH,
	K_CA,
	K_CERT,
	K_KEY,
	K_CRL,
	K_USER,
	K_QUEUE_BYTES,
	K_ORPHAN_GRACE,
	K_COUNT
};

static const struct {
	const char *section;
	const char *name;
} cfg_keys[K_COUNT] = {
    [K_ID] = {"vendor", "id"},
    [K_LISTEN] = {"vendor", "listen"},
    [K_ADDRESS] = {"vendor", "address"},
    [K_ZONE] = {"vendor", "zone"},
    [K_DEVICES] = {"vendor", "devices"},
    [K_CAPACITY] = {"vendor", "capacity"},
    [K_INDEX] = {"vendor", "index"},
    [K_FAT] = {"vendor", "fat"},
    [K_HEARTBEAT] = {"vendor", "heartbeat_ms"},
    [K_WORKERS] = {"vendor", "workers"},
    [K_LOG_LEVEL] = {"vendor", "log_level"},
    [K_BANDWIDTH] = {"vendor", "bandwidth"},
    [K_CA] = {"tls", "ca"},
    [K_CERT] = {"tls", "cert"},
    [K_KEY] = {"tls", "key"},
    [K_CRL] = {"tls", "crl"},
    [K_USER] = {"vendor", "user"},
    [K_QUEUE_BYTES] = {"vendor", "queue_bytes"},
    [K_ORPHAN_GRACE] = {"vendor", "orphan_grace_ms"},
};

struct cfg_parse {
	const char *file;
	FILE *fp;
	int line;
	struct vendor_config *cfg;
	bool seen[K_COUNT];
	char *err;
	size_t errlen;
	bool failed;
};

/* inih reads line by line through this reader, which lets us know the line
 * number of every key (the Debian build has no INI_HANDLER_LINENO). */
static char *cfg_reader(char *str, int num, void *stream)
{
	struct cfg_parse *p = stream;
	char *r = fgets(str, num, p->fp);

	if (r)
		p->line++;
	return r;
}

static int cfg_fail(struct cfg_parse *p, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int cfg_fail(struct cfg_parse *p, const char *key, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (p->failed)
		return 0;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->line > 0)
		snprintf(p->err, p->errlen, "%s:%d: %s: %s", p->file, p->line, key, msg);
	else
		snprintf(p->err, p->errlen, "%s: %s: %s", p->file, key, msg);
	p->failed = true;
	return 0;
}

static int cfg_copy(struct cfg_parse *p, const char *key, const char *v, char *dst,
		    size_t dstlen)
{
	size_t n = strlen(v);

	if (n == 0)
		return cfg_fail(p, key, "empty value");
	if (n >= dstlen)
		return cfg_fail(p, key, "value longer than %zu characters", dstlen - 1);
	memcpy(dst, v, n + 1);
	return 1;
}

static char *cfg_trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

static int cfg_hostport(struct cfg_parse *p, const char *key, const char *v)
{
	char host[VENDOR_ADDR_MAX];
	uint16_t port;

	if (parse_hostport(v, host, sizeof(host), &port) < 0)
		return cfg_fail(p, key, "'%s' is not host:port (port 1..65535)", v);
	return 1;
}

/* Splits a comma-separated list into dst entries; returns the count or -1. */
static int cfg_list(struct cfg_parse *p, const char *key, const char *v, char *dst,
		    size_t dstlen, size_t max)
{
	char buf[VENDOR_MAX_DEVICES * VENDOR_PATH_MAX];
	char *rest, *tok;
	size_t n = 0;

	if (strlen(v) >= sizeof(buf)) {
		cfg_fail(p, key, "list too long");
		return -1;
	}
	strcpy(buf, v);
	rest = buf;
	while ((tok = strsep(&rest, ",")) != NULL) {
		char *t = cfg_trim(tok);

		if (*t == '\0') {
			cfg_fail(p, key, "empty entry in the list");
			return -1;
		}
		if (n >= max) {
			cfg_fail(p, key, "more than %zu entries", max);
			return -1;
		}
		if (strlen(t) >= dstlen) {
			cfg_fail(p, key, "entry '%.40s...' longer than %zu characters", t,
				 dstlen - 1);
			return -1;
		}
		strcpy(dst + n * dstlen, t);
		n++;
	}
	if (n == 0) {
		cfg_fail(p, key, "empty list");
		return -1;
	}
	return (int)n;
}

static int cfg_devices(struct cfg_parse *p, const char *key, const char *v)
{
	struct vendor_config *c = p->cfg;
	int n = cfg_list(p, key, v, &c->devices[0][0], VENDOR_PATH_MAX, VENDOR_MAX_DEVICES);

	if (n < 0)
		return 0;
	for (int i = 0; i < n; i++) {
		const char *d = c->devices[i];

		if (d[0] != '/')
			return cfg_fail(p, key, "'%s' is not an absolute path", d);
		for (int j = 0; j < i; j++)
			if (strcmp(c->devices[j], d) == 0)
				return cfg_fail(p, key, "'%s' is listed twice", d);
	}
	c->n_devices = (size_t)n;
	return 1;
}

static int cfg_number(struct cfg_parse *p, const char *key, const char *v, uint64_t min,
		      uint64_t max, uint64_t *out)
{
	uint64_t x;

	if (parse_u64(v, &x) < 0)
		return cfg_fail(p, key, "'%s' is not an unsigned integer", v);
	if (x < min || x > max)
		return cfg_fail(p, key, "%llu is out of range %llu..%llu",
				(unsigned long long)x, (unsigned long long)min,
				(unsigned long long)max);
	*out = x;
	return 1;
}

static int cfg_handler(void *user, const char *section, const char *name, const char *value)
{
	struct cfg_parse *p = user;
	struct vendor_config *c = p->cfg;
	char key[128];
	int k;
	uint64_t x;

	if (p->failed)
		return 1;
	snprintf(key, sizeof(key), "[%s] %s", section, name);
	for (k = 0; k < K_COUNT; k++)
		if (strcmp(section, cfg_keys[k].section) == 0 &&
		    strcmp(name, cfg_keys[k].name) == 0)
			break;
	if (k == K_COUNT)
		return cfg_fail(p, key, "unknown key (see pstore-vendord(8))"), 1;
	if (p->seen[k])
		return cfg_fail(p, key, "given twice"), 1;
	p->seen[k] = true;

	switch (k) {
	case K_ID:
		if (cfg_number(p, key, value, 1, UINT32_MAX, &x))
			c->id = (uint32_t)x;
		break;
	case K_LISTEN:
		if (cfg_copy(p, key, value, c->listen, sizeof(c->listen)))
			cfg_hostport(p, key, value);
		break;
	case K_ADDRESS:
		if (cfg_copy(p, key, value, c->address, sizeof(c->address)))
			cfg_hostport(p, key, value);
		break;
	case K_ZONE:
		cfg_copy(p, key, value, c->zone, sizeof(c->zone));
		break;
	case K_DEVICES:
		cfg_devices(p, key, value);
		break;
	case K_CAPACITY:
		if (parse_size(value, &c->capacity) < 0)
			cfg_fail(p, key, "'%s' is not a size (e.g. 0, 500G, 1T)", value);
		break;
	case K_INDEX:
		if (cfg_copy(p, key, value, c->index, sizeof(c->index)) && value[0] != '/')
			cfg_fail(p, key, "'%s' is not an absolute path", value);
		break;
	case K_FAT: {
		int n = cfg_list(p, key, value, &c->fat[0][0], VENDOR_ADDR_MAX, VENDOR_MAX_FAT);

		if (n < 0)
			break;
		c->n_fat = (size_t)n;
		for (int i = 0; i < n; i++)
			if (!cfg_hostport(p, key, c->fat[i]))
				break;
		break;
	}
	case K_HEARTBEAT:
		if (cfg_number(p, key, value, 100, 600000, &x))
			c->heartbeat_ms = (uint32_t)x;
		break;
	case K_WORKERS:
		if (cfg_number(p, key, value, 1, VENDOR_MAX_WORKERS, &x))
			c->workers = (unsigned)x;
		break;
	case K_LOG_LEVEL:
		c->log_level = log_level_parse(value);
		if (c->log_level < 0)
			cfg_fail(p, key, "'%s' is not one of error, warn, info, debug", value);
		break;
	case K_BANDWIDTH:
		if (parse_size(value, &c->bandwidth) < 0)
			cfg_fail(p, key, "'%s' is not a size in bytes/s (e.g. 100M)", value);
		break;
	case K_CA:
		cfg_copy(p, key, value, c->tls_ca, sizeof(c->tls_ca));
		break;
	case K_CERT:
		cfg_copy(p, key, value, c->tls_cert, sizeof(c->tls_cert));
		break;
	case K_KEY:
		cfg_copy(p, key, value, c->tls_key, sizeof(c->tls_key));
		break;
	case K_CRL:
		cfg_copy(p, key, value, c->tls_crl, sizeof(c->tls_crl));
		break;
	case K_USER:
		cfg_copy(p, key, value, c->user, sizeof(c->user));
		break;
	case K_QUEUE_BYTES:
		if (parse_size(value, &c->queue_bytes) < 0 || c->queue_bytes < (1u << 20))
			cfg_fail(p, key, "'%s' is not a size of at least 1M (e.g. 256M)",
				 value);
		break;
	case K_ORPHAN_GRACE:
		if (cfg_number(p, key, value, 1000, 30ull * 24 * 3600 * 1000, &x))
			c->orphan_grace_ms = x;
		break;
	}
	return 1;
}

static void cfg_defaults(struct vendor_config *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->zone, "default");
	c->heartbeat_ms = 1000;
	c->workers = 4;
	c->log_level = LOG_INFO;
	c->queue_bytes = 256u << 20;
	c->orphan_grace_ms = 600000;
}

/* Every device must be a directory we can create and write into. */
static int cfg_check_devices(struct cfg_parse *p)
{
	for (size_t i = 0; i < p->cfg->n_devices; i++) {
		const char *d = p->cfg->devices[i];
		struct stat st;
		int rc;

		if (stat(d, &st) == 0) {
			if (!S_ISDIR(st.st_mode))
				return cfg_fail(p, "[vendor] devices",
						"'%s' is not a directory", d);
			continue;
		}
		rc = mkdir_p(d, 0750);
		if (rc < 0)
			return cfg_fail(p, "[vendor] devices", "cannot create '%s': %s", d,
					strerror(-rc));
	}
	return 1;
}

int vendor_config_load(const char *path, struct vendor_config *cfg, char *err, size_t errlen)
{
	static const enum cfg_key required[] = {K_ID,  K_LISTEN, K_DEVICES, K_INDEX,
						K_FAT, K_CA,	 K_CERT,    K_KEY};
	struct cfg_parse p = {.file = path, .cfg = cfg, .err = err, .errlen = errlen};
	int rc;

	cfg_defaults(cfg);
	if (errlen)
		err[0] = '\0';
	p.fp = fopen(path, "re");
	if (!p.fp) {
		rc = -errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
		return rc;
	}
	rc = ini_parse_stream(cfg_reader, &p, cfg_handler, &p);
	fclose(p.fp);
	if (rc != 0 && !p.failed) {
		p.line = rc > 0 ? rc : 0;
		cfg_fail(&p, "syntax",
			 rc > 0 ? "not 'key = value' nor '[section]'" : "cannot read the file");
	}
	p.line = 0;
	for (size_t i = 0; !p.failed && i < ARRAY_SIZE(required); i++)
		if (!p.seen[required[i]])
			cfg_fail(&p, cfg_keys[required[i]].name, "missing in [%s]",
				 cfg_keys[required[i]].section);
	if (!p.failed && cfg->address[0] == '\0')
		strcpy(cfg->address, cfg->listen);
	if (!p.failed)
		cfg_check_devices(&p);
	return p.failed ? -EINVAL : 0;
}
