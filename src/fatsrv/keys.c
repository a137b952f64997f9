/*
 * keys.c - builds the FAT store's keys; the layout is documented in
 * fatsrv.h.  Integers are big-endian so that keys sort numerically.
 */
#include <errno.h>
#include <string.h>

#include "fatsrv.h"

static void put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

uint32_t fat_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

uint64_t fat_be64(const uint8_t *p)
{
	return (uint64_t)fat_be32(p) << 32 | fat_be32(p + 4);
}

static void key_start(struct fat_key *k, const char *prefix)
{
	k->len = strlen(prefix);
	memcpy(k->b, prefix, k->len);
}

static void key_add(struct fat_key *k, const void *p, size_t n)
{
	memcpy(k->b + k->len, p, n);
	k->len += n;
}

void fat_key_vendor_prefix(struct fat_key *k)
{
	key_start(k, "v/");
}

void fat_key_vendor(struct fat_key *k, uint32_t id)
{
	key_start(k, "v/");
	put_be32(k->b + k->len, id);
	k->len += 4;
}

void fat_key_volume_prefix(struct fat_key *k)
{
	key_start(k, "vol/");
}

int fat_key_volume(struct fat_key *k, const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 255)
		return -EINVAL;
	key_start(k, "vol/");
	key_add(k, name, n);
	return 0;
}

void fat_key_chunk_prefix(struct fat_key *k, const uint8_t *vol_id)
{
	key_start(k, "c/");
	key_add(k, vol_id, FAT_VOLUME_ID_LEN);
}

void fat_key_chunk(struct fat_key *k, const uint8_t *vol_id, const uint8_t *chunk_id)
{
	fat_key_chunk_prefix(k, vol_id);
	key_add(k, chunk_id, CHUNK_ID_LEN);
}

void fat_key_chunk_owner(struct fat_key *k, const uint8_t *chunk_id)
{
	key_start(k, "o/");
	key_add(k, chunk_id, CHUNK_ID_LEN);
}

void fat_key_meta_prefix(struct fat_key *k, const uint8_t *vol_id)
{
	key_start(k, "m/");
	key_add(k, vol_id, FAT_VOLUME_ID_LEN);
}

int fat_key_meta(struct fat_key *k, const uint8_t *vol_id, const void *key, size_t klen)
{
	if (klen == 0 || klen > FAT_META_MAX_KEY)
		return -EINVAL;
	fat_key_meta_prefix(k, vol_id);
	key_add(k, key, klen);
	return 0;
}

void fat_key_lease(struct fat_key *k, uint64_t id)
{
	key_start(k, "l/");
	put_be64(k->b + k->len, id);
	k->len += 8;
}

void fat_key_lease_index_prefix(struct fat_key *k)
{
	key_start(k, "x/");
}

void fat_key_lease_index(struct fat_key *k, uint64_t time_ms, uint64_t id)
{
	key_start(k, "x/");
	put_be64(k->b + k->len, time_ms);
	put_be64(k->b + k->len + 8, id);
	k->len += 16;
}

void fat_key_pending_prefix(struct fat_key *k, uint32_t vendor_id)
{
	key_start(k, "d/");
	put_be32(k->b + k->len, vendor_id);
	k->len += 4;
}

void fat_key_pending(struct fat_key *k, uint32_t vendor_id, const uint8_t *chunk_id)
{
	fat_key_pending_prefix(k, vendor_id);
	key_add(k, chunk_id, CHUNK_ID_LEN);
}

void fat_key_request_prefix(struct fat_key *k)
{
	key_start(k, "r/");
}

void fat_key_request(struct fat_key *k, const uint8_t *request_id)
{
	key_start(k, "r/");
	key_add(k, request_id, FAT_REQUEST_ID_LEN);
}
