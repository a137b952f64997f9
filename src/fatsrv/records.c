/*
 * records.c - protobuf records in the FAT store: decode on read, encode on
 * write, and the vendor record helpers several logic files share.
 */
#include <errno.h>
#include <stdlib.h>

#include "common.h"
#include "fatsrv.h"

int fat_rec_decode(const uint8_t *val, size_t vlen, const ProtobufCMessageDescriptor *desc,
		   ProtobufCMessage **out)
{
	*out = protobuf_c_message_unpack(desc, NULL, vlen, val);
	if (!*out) {
		log_err("store: undecodable %s record (%zu bytes)", desc->name, vlen);
		return -EIO;
	}
	return 0;
}

int fat_rec_get(struct fat_txn *t, const struct fat_key *k,
		const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
	const void *val;
	size_t vlen;
	int rc;

	*out = NULL;
	rc = fat_txn_get(t, k->b, k->len, &val, &vlen);
	if (rc < 0)
		return rc;
	return fat_rec_decode(val, vlen, desc, out);
}

int fat_rec_put(struct fat_txn *t, const struct fat_key *k, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t stackbuf[1024];
	uint8_t *buf = len <= sizeof(stackbuf) ? stackbuf : malloc(len);
	int rc;

	if (!buf)
		return -ENOMEM;
	protobuf_c_message_pack(m, buf);
	rc = fat_txn_put(t, k->b, k->len, buf, len);
	if (buf != stackbuf)
		free(buf);
	return rc;
}

void fat_rec_free(void *m)
{
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
}

int fat_vendor_load(struct fat_txn *t, uint32_t id, Pstore__VendorRecord **out)
{
	struct fat_key k;

	fat_key_vendor(&k, id);
	return fat_rec_get(t, &k, &pstore__vendor_record__descriptor, (ProtobufCMessage **)out);
}

int fat_vendor_save(struct fat_txn *t, const Pstore__VendorRecord *v)
{
	struct fat_key k;

	fat_key_vendor(&k, v->id);
	return fat_rec_put(t, &k, &v->base);
}

bool fat_vendor_alive(const struct fat_ctx *fc, const Pstore__VendorRecord *v, uint64_t now)
{
	return v->last_seen_ms + fc->vendor_timeout_ms > now &&
	       v->last_seen_ms <= now + fc->vendor_timeout_ms;
}

uint64_t fat_vendor_available(const Pstore__VendorRecord *v)
{
	uint64_t taken = v->used + v->reserved;

	return taken >= v->capacity ? 0 : v->capacity - taken;
}
