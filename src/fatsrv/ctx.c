/*
 * ctx.c - the FAT server's context (store, signing key, tunables) and the
 * small helpers every logic file uses to fail with a message and to fill
 * reply fields the way protobuf-c's unpacker would (one malloc per pointer).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "fatsrv.h"

int fat_ctx_init(struct fat_ctx *fc, struct fat_store *store, struct cap_key *key)
{
	memset(fc, 0, sizeof(*fc));
	fc->store = store;
	fc->key = key;
	if (key && cap_key_public(key, fc->pubkey) < 0)
		return -EINVAL;
	fc->lease_max_ms = 60000;
	fc->vendor_timeout_ms = 6000;
	fc->heartbeat_ms = 1000;
	fc->lease_retention_ms = 3600u * 1000u;
	fc->request_retention_ms = 24u * 3600u * 1000u;
	fc->clock = wall_ms;
	return 0;
}

void fat_ctx_fini(struct fat_ctx *fc)
{
	fat_store_close(fc->store);
	cap_key_free(fc->key);
	fc->store = NULL;
	fc->key = NULL;
}

int fat_fail(struct fat_ctx *fc, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fc->err, sizeof(fc->err), fmt, ap);
	va_end(ap);
	return code;
}

char *fat_strdup(const char *s)
{
	char *d = strdup(s ? s : "");

	if (!d)
		abort(); /* as protobuf-c's own allocator does on OOM, one place */
	return d;
}

int fat_bytes_set(ProtobufCBinaryData *b, const void *data, size_t len)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	if (len == 0)
		return 0;
	b->data = malloc(len);
	if (!b->data)
		return -ENOMEM;
	memcpy(b->data, data, len);
	b->len = len;
	return 0;
}
