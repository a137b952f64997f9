/*
 * readauth.c - who may read a chunk (MSG_CHUNK_GET).  A client: peer must
 * present a read capability (chunk.h, cap_read_*) signed by the FAT server
 * for the chunk's owner (the volume id the request names, which the store
 * compares with the chunk's header) and for the peer's own certificate CN,
 * not expired.  admin: peers may read any chunk.  Vendors and anyone else
 * may not read chunks (no vendor-to-vendor reads exist).  The same read
 * capability admits a client's validation receipts (vread_cap_check).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "vendor.h"
#include "xport.h"

static int deny(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int deny(int rc, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return rc;
}

int vread_cap_check(struct vendord *vd, const char *peer, const ProtobufCBinaryData *tok,
		    uint64_t now_wall_ms, uint8_t volume[CHUNK_OWNER_LEN], char *err,
		    size_t errlen)
{
	struct cap_read r;
	int rc;

	if (tok->len == 0)
		return deny(-EACCES, err, errlen, "a read capability is required");
	pthread_rwlock_rdlock(&vd->key_lock);
	if (!vd->fat_key)
		rc = -EAGAIN;
	else
		rc = cap_read_verify(vd->fat_key, tok->data, tok->len, &r);
	pthread_rwlock_unlock(&vd->key_lock);
	if (rc == -EAGAIN)
		return deny(rc, err, errlen,
			    "not registered with a FAT server yet; retry later");
	if (rc == -EACCES)
		return deny(rc, err, errlen, "read capability signature is not the FAT's");
	if (rc < 0)
		return deny(-EACCES, err, errlen, "read capability does not decode");
	if (strcmp(r.client, peer) != 0)
		return deny(-EACCES, err, errlen,
			    "read capability was given to %.64s, not %.64s", r.client, peer);
	if (r.expiry_ms <= now_wall_ms)
		return deny(-EACCES, err, errlen, "read capability expired %llu ms ago",
			    (unsigned long long)(now_wall_ms - r.expiry_ms));
	memcpy(volume, r.volume, CHUNK_OWNER_LEN);
	return 0;
}

int vread_authorize(struct vendord *vd, const char *peer, const Pstore__ChunkGet *g,
		    uint64_t now_wall_ms, char *err, size_t errlen)
{
	struct cap_read r;
	int role = xport_peer_role(peer, NULL);
	int rc;

	if (role == XPORT_ROLE_ADMIN)
		return 0;
	if (role != XPORT_ROLE_CLIENT)
		return deny(-EACCES, err, errlen, "peer '%.64s' may not read chunks", peer);
	if (g->read_token.len == 0)
		return deny(-EACCES, err, errlen, "a read capability is required");
	pthread_rwlock_rdlock(&vd->key_lock);
	if (!vd->fat_key)
		rc = -EAGAIN;
	else
		rc = cap_read_verify(vd->fat_key, g->read_token.data, g->read_token.len, &r);
	pthread_rwlock_unlock(&vd->key_lock);
	if (rc == -EAGAIN)
		return deny(rc, err, errlen,
			    "not registered with a FAT server yet; retry later");
	if (rc == -EACCES)
		return deny(rc, err, errlen, "read capability signature is not the FAT's");
	if (rc < 0)
		return deny(-EACCES, err, errlen, "read capability does not decode");
	if (g->owner.len != CHUNK_OWNER_LEN ||
	    memcmp(r.volume, g->owner.data, CHUNK_OWNER_LEN) != 0)
		return deny(-EACCES, err, errlen, "read capability is for another volume");
	if (strcmp(r.client, peer) != 0)
		return deny(-EACCES, err, errlen,
			    "read capability was given to %.64s, not %.64s", r.client, peer);
	if (r.expiry_ms <= now_wall_ms)
		return deny(-EACCES, err, errlen, "read capability expired %llu ms ago",
			    (unsigned long long)(now_wall_ms - r.expiry_ms));
	return 0;
}
