/*
 * readauth.c - who may read a chunk (MSG_CHUNK_GET).  A client: peer must
 * present a read capability (chunk.h, cap_read_*) signed by the FAT server
 * for the chunk's owner (the volume id the request names, which the store
 * compares with the chunk's header) and for the peer's own certificate CN,
 * not expired.  admin: peers may read any chunk.  Vendors and anyone else
 * may not read chunks (no vendor-to-vendor reads exist).  The same read
 * capability admits a client's validation receipts (vread_cap_check).
 *
 * A client sends the same capability with every read until it renews it
 * (every 20 minutes), and its Ed25519 signature check was a quarter of a
 * vendor's CPU during cold reads of small files: the last VREAD_SEEN
 * capabilities that verified are remembered (the token's exact bytes and the
 * FAT key that verified them), so a repeat costs a comparison.  Expiry,
 * volume and peer are still checked on every request.
 */
#include <errno.h>
#include <pthread.h>
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

#define VREAD_SEEN 32
struct vread_seen {
	size_t len; /* 0: empty */
	uint8_t tok[CAP_READ_TOKEN_MAX];
	uint8_t pub[32]; /* the FAT key it verified under */
	struct cap_read r;
	uint64_t used;
};
static struct vread_seen vread_seen[VREAD_SEEN]; /* vread_seen_lock */
static uint64_t vread_clock;			 /* vread_seen_lock */
static pthread_mutex_t vread_seen_lock = PTHREAD_MUTEX_INITIALIZER;

/* cap_read_verify under the current FAT key, or the remembered result of
 * the same bytes verified under the same key; -EAGAIN without a key. */
static int verify_cached(struct vendord *vd, const uint8_t *tok, size_t len, struct cap_read *r)
{
	struct vread_seen *e = NULL, *victim = &vread_seen[0];
	uint8_t pub[32];
	int rc = 1;

	pthread_rwlock_rdlock(&vd->key_lock);
	if (!vd->fat_key) {
		pthread_rwlock_unlock(&vd->key_lock);
		return -EAGAIN;
	}
	memcpy(pub, vd->fat_pub, sizeof(pub));
	if (len > 0 && len <= CAP_READ_TOKEN_MAX) {
		pthread_mutex_lock(&vread_seen_lock);
		for (size_t i = 0; i < VREAD_SEEN && !e; i++) {
			struct vread_seen *c = &vread_seen[i];

			if (c->len == len && memcmp(c->pub, pub, sizeof(pub)) == 0 &&
			    memcmp(c->tok, tok, len) == 0)
				e = c;
			else if (c->used < victim->used)
				victim = c;
		}
		if (e) {
			*r = e->r;
			e->used = ++vread_clock;
			rc = 0;
		}
		pthread_mutex_unlock(&vread_seen_lock);
	}
	if (rc != 0)
		rc = cap_read_verify(vd->fat_key, tok, len, r);
	pthread_rwlock_unlock(&vd->key_lock);
	if (rc == 0 && !e && len > 0 && len <= CAP_READ_TOKEN_MAX) {
		pthread_mutex_lock(&vread_seen_lock);
		victim->len = len;
		memcpy(victim->tok, tok, len);
		memcpy(victim->pub, pub, sizeof(pub));
		victim->r = *r;
		victim->used = ++vread_clock;
		pthread_mutex_unlock(&vread_seen_lock);
	}
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
	rc = verify_cached(vd, tok->data, tok->len, &r);
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
	rc = verify_cached(vd, g->read_token.data, g->read_token.len, &r);
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
