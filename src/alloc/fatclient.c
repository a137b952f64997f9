/*
 * fatclient.c - the context and every plain call to the FAT servers: failover
 * over the configured addresses, volumes, the metadata mirror listing,
 * statfs, and the vendor id -> address cache.  Upload sessions (upload.c)
 * and reads (fetch.c) build on alloc_fat_call.
 *
 * Failover: a call starts with the address that answered last; a
 * connection-level failure (timeout, refused, reset, TLS/frame error) moves
 * to the next address, with a short backoff after each full round, until
 * about 3 x timeout has passed.  An error the server reports (ENOENT,
 * ENOSPC, EACCES...) is the answer and is returned at once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc_int.h"

#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_LEASE_MS 60000
#define DEFAULT_UPLOAD_THREADS 8
#define DEFAULT_PIECES 2
#define META_PAGE 1000
#define VADDR_MIN_REFRESH_MS 2000 /* an unknown id refreshes at most this often */
#define VADDR_MAX_AGE_MS 30000	  /* a known address is re-checked after this */
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000

bool alloc_err_transient(int rc)
{
	switch (-rc) {
	case ETIMEDOUT:
	case ECONNREFUSED:
	case EPROTO:
	case ECONNRESET:
	case ECONNABORTED:
	case EPIPE:
	case EHOSTUNREACH:
	case ENETUNREACH:
		return true;
	default:
		return false;
	}
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
			      .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

struct alloc_ctx *alloc_new(struct xport_pool *pool, const struct alloc_opts *opts)
{
	struct alloc_ctx *a;

	if (!pool || !opts || opts->n_fat == 0 || !opts->fat_addrs) {
		log_err("alloc: no FAT server address configured");
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	pthread_mutex_init(&a->fat_lock, NULL);
	pthread_mutex_init(&a->vol_lock, NULL);
	pthread_mutex_init(&a->vaddr_lock, NULL);
	pthread_mutex_init(&a->vaddr_refresh_lock, NULL);
	pthread_mutex_init(&a->workq_lock, NULL);
	a->pool = pool;
	a->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
	a->lease_ms = opts->lease_ms ? opts->lease_ms : DEFAULT_LEASE_MS;
	a->zstd_level = opts->zstd_level >= 0 ? opts->zstd_level : 1;
	a->upload_threads =
	    opts->upload_threads ? MIN(opts->upload_threads, 256u) : DEFAULT_UPLOAD_THREADS;
	a->pieces = opts->pieces ? opts->pieces : DEFAULT_PIECES;
	if (a->pieces > CHUNK_MAX_PIECES)
		a->pieces = CHUNK_MAX_PIECES;
	a->fat_addrs = calloc(opts->n_fat, sizeof(char *));
	if (!a->fat_addrs)
		goto fail;
	for (size_t i = 0; i < opts->n_fat; i++) {
		const char *s = opts->fat_addrs[i];

		if (!s || !s[0] || strlen(s) >= ALLOC_ADDR_LEN) {
			log_err("alloc: bad FAT server address '%s'", s ? s : "");
			goto fail;
		}
		a->fat_addrs[i] = strdup(s);
		if (!a->fat_addrs[i])
			goto fail;
		a->n_fat++;
		/* only a FAT server's certificate may answer there */
		if (xport_pool_expect(a->pool, s, "fat:") < 0)
			goto fail;
	}
	a->vstats = vstats_new();
	a->receipts = receipts_new();
	if (!a->vstats || !a->receipts)
		goto fail;
	if (alloc_bg_start(a) < 0)
		goto fail;
	return a;
fail:
	alloc_free(a);
	return NULL;
}

void alloc_free(struct alloc_ctx *a)
{
	if (!a)
		return;
	probe_free(a); /* before what its fetch threads use */
	alloc_bg_stop(a);
	workq_free(a->workq);
	if (a->receipts && a->vstats)
		receipts_send(a, false, true);
	receipts_free(a->receipts);
	vstats_free(a->vstats);
	volkey_free(a); /* after every thread that seals or opens */
	for (size_t i = 0; i < a->n_fat; i++)
		free(a->fat_addrs[i]);
	free(a->fat_addrs);
	free(a->vaddrs);
	free(a->leases);
	free(a->bad);
	pthread_mutex_destroy(&a->fat_lock);
	pthread_mutex_destroy(&a->vol_lock);
	pthread_mutex_destroy(&a->vaddr_lock);
	pthread_mutex_destroy(&a->vaddr_refresh_lock);
	pthread_mutex_destroy(&a->workq_lock);
	free(a);
}

int alloc_fat_call(struct alloc_ctx *a, uint16_t type, const ProtobufCMessage *req,
		   const ProtobufCMessageDescriptor *resp_desc, struct xport_reply *out)
{
	return alloc_fat_call_err(a, type, req, resp_desc, out, NULL, 0);
}

int alloc_fat_call_err(struct alloc_ctx *a, uint16_t type, const ProtobufCMessage *req,
		       const ProtobufCMessageDescriptor *resp_desc, struct xport_reply *out,
		       char *errbuf, size_t errlen)
{
	uint64_t start = now_ms();
	uint64_t deadline = start + 3 * (uint64_t)a->timeout_ms;
	uint64_t backoff = BACKOFF_MIN_MS;
	size_t idx, first, tries = 0;
	int rc = -ETIMEDOUT;
	static const Pstore__Empty empty = PSTORE__EMPTY__INIT;

	if (!req)
		req = &empty.base;
	pthread_mutex_lock(&a->fat_lock);
	idx = first = a->fat_good;
	pthread_mutex_unlock(&a->fat_lock);
	for (;;) {
		char err[256] = "";
		uint64_t now = now_ms();
		int t;

		if (now >= deadline && tries > 0)
			break;
		t = (int)MIN((uint64_t)a->timeout_ms, deadline > now ? deadline - now : 1);
		if (t < 100)
			t = 100;
		memset(out, 0, sizeof(*out));
		rc = xport_call(a->pool, a->fat_addrs[idx % a->n_fat], type, req, NULL, 0,
				resp_desc, out, t, err, sizeof(err));
		tries++;
		if (rc == 0) {
			pthread_mutex_lock(&a->fat_lock);
			a->fat_good = idx % a->n_fat;
			pthread_mutex_unlock(&a->fat_lock);
			return 0;
		}
		xport_reply_clear(out);
		/* EIO/EAGAIN: that FAT server could not reach or agree with its
		 * store (etcd); another one may (calls are idempotent) */
		if (!alloc_err_transient(rc) && rc != -EIO && rc != -EAGAIN) {
			if (errbuf && errlen)
				snprintf(errbuf, errlen, "%s", err[0] ? err : strerror(-rc));
			log_debug("alloc: FAT %s answered type %u with %s%s%s",
				  a->fat_addrs[idx % a->n_fat], type, strerror(-rc),
				  err[0] ? ": " : "", err);
			return rc;
		}
		log_debug("alloc: FAT %s unreachable for type %u: %s",
			  a->fat_addrs[idx % a->n_fat], type, strerror(-rc));
		idx++;
		if (idx % a->n_fat == first % a->n_fat) {
			/* a full round failed: back off before the next one */
			now = now_ms();
			if (now + backoff >= deadline)
				break;
			sleep_ms(backoff);
			backoff = MIN(backoff * 2, (uint64_t)BACKOFF_MAX_MS);
		}
	}
	log_warn("alloc: no FAT server answered (type %u, %zu tries in %llu ms): %s", type,
		 tries, (unsigned long long)(now_ms() - start), strerror(-rc));
	return rc;
}

/* ---- volumes ---- */

static int volume_from_msg(const Pstore__VolumeInfo *vi, struct alloc_volume *out)
{
	if (!vi || !vi->name || !vi->name[0] || strlen(vi->name) >= sizeof(out->name) ||
	    vi->id.len != CHUNK_OWNER_LEN || vi->copies < 1 || vi->copies > CHUNK_MAX_CHAIN ||
	    vi->chunk_size < 1 || vi->chunk_size > CHUNK_MAX_RAW) {
		log_err("alloc: FAT sent an invalid volume description");
		return -EBADMSG;
	}
	memset(out, 0, sizeof(*out));
	snprintf(out->name, sizeof(out->name), "%s", vi->name);
	memcpy(out->id, vi->id.data, CHUNK_OWNER_LEN);
	out->copies = vi->copies;
	out->chunk_size = vi->chunk_size;
	out->revision = vi->revision;
	if (vi->read_token.len > 0 && vi->read_token.len <= sizeof(out->read_token)) {
		memcpy(out->read_token, vi->read_token.data, vi->read_token.len);
		out->read_token_len = vi->read_token.len;
		out->read_token_ms = wall_ms();
	}
	if (vi->key_blob.len > sizeof(out->key_blob)) {
		log_err("alloc: FAT sent an oversized volume key blob");
		return -EBADMSG;
	}
	if (vi->key_blob.len)
		memcpy(out->key_blob, vi->key_blob.data, vi->key_blob.len);
	out->key_blob_len = vi->key_blob.len;
	return 0;
}

int alloc_read_token(struct alloc_ctx *a, bool force, uint8_t *tok, size_t *len)
{
	struct alloc_volume v;
	int rc = alloc_volume_get(a, &v);

	if (rc < 0)
		return rc;
	if (force || v.read_token_len == 0 ||
	    wall_ms() - v.read_token_ms > ALLOC_READ_TOKEN_REFRESH_MS) {
		Pstore__VolumeGet vg = PSTORE__VOLUME_GET__INIT;
		struct xport_reply rep = {0};
		struct alloc_volume fresh;

		vg.name = v.name;
		rc = alloc_fat_call(a, MSG_VOLUME_GET, &vg.base,
				    &pstore__volume_info__descriptor, &rep);
		if (rc == 0)
			rc = volume_from_msg((Pstore__VolumeInfo *)rep.msg, &fresh);
		xport_reply_clear(&rep);
		if (rc == 0 && fresh.read_token_len > 0 &&
		    memcmp(fresh.id, v.id, CHUNK_OWNER_LEN) == 0) {
			/* only the token: the rest of the volume is the caller's business */
			pthread_mutex_lock(&a->vol_lock);
			memcpy(a->vol.read_token, fresh.read_token, fresh.read_token_len);
			a->vol.read_token_len = fresh.read_token_len;
			a->vol.read_token_ms = fresh.read_token_ms;
			pthread_mutex_unlock(&a->vol_lock);
			v = fresh;
		} else if (rc == 0) {
			rc = -EBADMSG;
		}
		if (rc < 0 && v.read_token_len == 0)
			return rc;
	}
	memcpy(tok, v.read_token, v.read_token_len);
	*len = v.read_token_len;
	return 0;
}

int alloc_volume_create(struct alloc_ctx *a, const char *name, uint32_t copies,
			uint32_t chunk_size, struct alloc_volume *out)
{
	return alloc_volume_create_keyed(a, name, copies, chunk_size, NULL, 0, out);
}

int alloc_volume_create_keyed(struct alloc_ctx *a, const char *name, uint32_t copies,
			      uint32_t chunk_size, const uint8_t *key_blob, size_t blob_len,
			      struct alloc_volume *out)
{
	Pstore__VolumeInfo vi = PSTORE__VOLUME_INFO__INIT;
	struct xport_reply rep = {0};
	struct alloc_volume v;
	int rc;

	if (!name || !name[0] || strlen(name) >= sizeof(v.name) || copies < 1 ||
	    copies > CHUNK_MAX_CHAIN || chunk_size < 1 || chunk_size > CHUNK_MAX_RAW)
		return -EINVAL;
	vi.name = (char *)name;
	vi.copies = copies;
	vi.chunk_size = chunk_size;
	vi.key_blob.data = (uint8_t *)key_blob;
	vi.key_blob.len = key_blob ? blob_len : 0;
	rc = alloc_fat_call(a, MSG_VOLUME_CREATE, &vi.base, &pstore__volume_info__descriptor,
			    &rep);
	if (rc < 0)
		return rc;
	rc = volume_from_msg((Pstore__VolumeInfo *)rep.msg, &v);
	xport_reply_clear(&rep);
	if (rc == 0 && v.key_blob_len != (key_blob ? blob_len : 0)) {
		log_err("alloc: the FAT did not keep the volume's key blob");
		rc = -EPROTO;
	}
	if (rc == 0 && out)
		*out = v;
	return rc;
}

int alloc_volume_open(struct alloc_ctx *a, const char *name, struct alloc_volume *out)
{
	Pstore__VolumeGet vg = PSTORE__VOLUME_GET__INIT;
	struct xport_reply rep = {0};
	struct alloc_volume v;
	int rc;

	if (!name || !name[0] || strlen(name) >= sizeof(v.name))
		return -EINVAL;
	vg.name = (char *)name;
	rc =
	    alloc_fat_call(a, MSG_VOLUME_GET, &vg.base, &pstore__volume_info__descriptor, &rep);
	if (rc < 0)
		return rc;
	rc = volume_from_msg((Pstore__VolumeInfo *)rep.msg, &v);
	xport_reply_clear(&rep);
	if (rc < 0)
		return rc;
	if (strcmp(v.name, name) != 0) {
		log_err("alloc: asked for volume '%s', FAT answered '%s'", name, v.name);
		return -EBADMSG;
	}
	pthread_mutex_lock(&a->vol_lock);
	a->vol = v;
	a->have_vol = true;
	pthread_mutex_unlock(&a->vol_lock);
	if (out)
		*out = v;
	return 0;
}

const struct alloc_volume *alloc_volume(const struct alloc_ctx *a)
{
	/* set once by alloc_volume_open, before the file system serves requests */
	return a->have_vol ? &a->vol : NULL;
}

int alloc_volume_get(struct alloc_ctx *a, struct alloc_volume *out)
{
	int rc = 0;

	pthread_mutex_lock(&a->vol_lock);
	if (a->have_vol)
		*out = a->vol;
	else
		rc = -ENOENT;
	pthread_mutex_unlock(&a->vol_lock);
	return rc;
}

/* ---- metadata mirror, statfs ---- */

static int key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, MIN(al, bl));

	if (c)
		return c;
	return al < bl ? -1 : al > bl;
}

/* One listed entry to cb, opened when the volume is encrypted. */
static int list_item(struct alloc_ctx *a, const struct alloc_volume *vol,
		     const Pstore__MetaOp *m, alloc_meta_cb cb, void *arg, uint64_t *unopened)
{
	const uint8_t *key, *val;
	size_t klen, vlen;
	uint8_t *plain = NULL;
	int rc;

	rc = volkey_open_item(a, vol->id, m->key.data, m->key.len, m->value.data, m->value.len,
			      &plain, &key, &klen, &val, &vlen);
	if (rc == -EBADMSG) {
		/* not ours, or tampered with at the FAT: like a malformed entry */
		log_warn("alloc: a metadata mirror entry does not open with the volume key; "
			 "ignored");
		(*unopened)++;
		return 0;
	}
	if (rc == 0)
		rc = cb(key, klen, val, vlen, arg);
	free(plain);
	return rc;
}

int alloc_meta_list(struct alloc_ctx *a, alloc_meta_cb cb, void *arg)
{
	uint64_t unopened = 0;

	return alloc_meta_list_counted(a, cb, arg, &unopened);
}

int alloc_meta_list_counted(struct alloc_ctx *a, alloc_meta_cb cb, void *arg,
			    uint64_t *unopened)
{
	struct alloc_volume vol;
	uint8_t *after = NULL;
	size_t after_len = 0;
	int rc;

	rc = alloc_volume_get(a, &vol);
	if (rc < 0)
		return rc;
	for (;;) {
		Pstore__ListRequest lr = PSTORE__LIST_REQUEST__INIT;
		struct xport_reply rep = {0};
		Pstore__MetaListReply *ml;
		bool more;

		lr.volume = vol.name;
		lr.after.data = after;
		lr.after.len = after_len;
		lr.limit = META_PAGE;
		rc = alloc_fat_call(a, MSG_META_LIST, &lr.base,
				    &pstore__meta_list_reply__descriptor, &rep);
		if (rc < 0)
			break;
		ml = (Pstore__MetaListReply *)rep.msg;
		if (ml->n_items > META_PAGE || (ml->more && ml->n_items == 0)) {
			log_err("alloc: FAT sent a bad metadata page (%zu items)", ml->n_items);
			rc = -EBADMSG;
		}
		for (size_t i = 0; rc == 0 && i < ml->n_items; i++) {
			Pstore__MetaOp *m = ml->items[i];

			/* keys must ascend, or paging could loop forever */
			if (after_len || after) {
				if (key_cmp(m->key.data, m->key.len, after, after_len) <= 0) {
					log_err("alloc: FAT sent metadata keys out of order");
					rc = -EBADMSG;
					break;
				}
			}
			free(after);
			after = malloc(m->key.len ? m->key.len : 1);
			if (!after) {
				rc = -ENOMEM;
				break;
			}
			memcpy(after, m->key.data, m->key.len);
			after_len = m->key.len;
			if (m->del)
				continue;
			rc = list_item(a, &vol, m, cb, arg, unopened);
		}
		more = ml->more;
		xport_reply_clear(&rep);
		if (rc != 0 || !more)
			break;
	}
	free(after);
	return rc;
}

int alloc_statfs(struct alloc_ctx *a, uint64_t *capacity, uint64_t *free_b, uint64_t *used)
{
	struct xport_reply rep = {0};
	Pstore__StatfsReply *sr;
	int rc;

	rc = alloc_fat_call(a, MSG_STATFS, NULL, &pstore__statfs_reply__descriptor, &rep);
	if (rc < 0)
		return rc;
	sr = (Pstore__StatfsReply *)rep.msg;
	if (capacity)
		*capacity = sr->capacity;
	if (free_b)
		*free_b = sr->free;
	if (used)
		*used = sr->used;
	xport_reply_clear(&rep);
	return 0;
}

/* ---- vendor addresses ---- */

static int vaddr_find(struct alloc_ctx *a, uint32_t id, char *addr, size_t len)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&a->vaddr_lock);
	for (size_t i = 0; i < a->n_vaddrs; i++)
		if (a->vaddrs[i].id == id) {
			snprintf(addr, len, "%s", a->vaddrs[i].addr);
			rc = strlen(a->vaddrs[i].addr) < len ? 0 : -ENAMETOOLONG;
			break;
		}
	pthread_mutex_unlock(&a->vaddr_lock);
	return rc;
}

/* Caller holds vaddr_lock. */
static int vaddr_set_locked(struct alloc_ctx *a, uint32_t id, const char *addr)
{
	struct vaddr_ent *ne;
	char who[32];

	/* only that vendor's certificate may answer at its address */
	snprintf(who, sizeof(who), "vendor:%u", id);
	if (xport_pool_expect(a->pool, addr, who) < 0)
		return -ENOMEM;

	for (size_t i = 0; i < a->n_vaddrs; i++)
		if (a->vaddrs[i].id == id) {
			snprintf(a->vaddrs[i].addr, sizeof(a->vaddrs[i].addr), "%s", addr);
			return 0;
		}
	ne = realloc(a->vaddrs, (a->n_vaddrs + 1) * sizeof(*ne));
	if (!ne)
		return -ENOMEM;
	a->vaddrs = ne;
	ne[a->n_vaddrs].id = id;
	snprintf(ne[a->n_vaddrs].addr, sizeof(ne[a->n_vaddrs].addr), "%s", addr);
	a->n_vaddrs++;
	return 0;
}

void alloc_vendor_learn(struct alloc_ctx *a, uint32_t vendor_id, const char *addr)
{
	if (vendor_id == 0 || !addr || !addr[0] || strlen(addr) >= ALLOC_ADDR_LEN)
		return;
	pthread_mutex_lock(&a->vaddr_lock);
	vaddr_set_locked(a, vendor_id, addr);
	pthread_mutex_unlock(&a->vaddr_lock);
}

static int vaddr_refresh(struct alloc_ctx *a, uint64_t min_age_ms)
{
	struct xport_reply rep = {0};
	Pstore__VendorListReply *vl;
	uint64_t last;
	int rc;

	pthread_mutex_lock(&a->vaddr_refresh_lock);
	pthread_mutex_lock(&a->vaddr_lock);
	last = a->vaddr_refresh_ms;
	pthread_mutex_unlock(&a->vaddr_lock);
	if (last && now_ms() - last < min_age_ms) {
		rc = 0; /* someone refreshed recently (maybe while we waited) */
		goto out;
	}
	rc = alloc_fat_call(a, MSG_VENDOR_LIST, NULL, &pstore__vendor_list_reply__descriptor,
			    &rep);
	pthread_mutex_lock(&a->vaddr_lock);
	a->vaddr_refresh_ms = now_ms();
	if (rc == 0) {
		vl = (Pstore__VendorListReply *)rep.msg;
		for (size_t i = 0; i < vl->n_vendors; i++) {
			const Pstore__VendorRecord *r = vl->vendors[i];

			if (r->id == 0 || !r->address || !r->address[0] ||
			    strlen(r->address) >= ALLOC_ADDR_LEN)
				continue;
			vaddr_set_locked(a, r->id, r->address);
		}
	}
	pthread_mutex_unlock(&a->vaddr_lock);
	xport_reply_clear(&rep);
out:
	pthread_mutex_unlock(&a->vaddr_refresh_lock);
	return rc;
}

int alloc_vendor_addr(struct alloc_ctx *a, uint32_t vendor_id, char *addr, size_t len)
{
	uint64_t last;
	int rc;

	if (vendor_id == 0 || !addr || len == 0)
		return -EINVAL;
	pthread_mutex_lock(&a->vaddr_lock);
	last = a->vaddr_refresh_ms;
	pthread_mutex_unlock(&a->vaddr_lock);
	if (last == 0 || now_ms() - last >= VADDR_MAX_AGE_MS)
		vaddr_refresh(a, VADDR_MAX_AGE_MS);
	rc = vaddr_find(a, vendor_id, addr, len);
	if (rc != -ENOENT)
		return rc;
	vaddr_refresh(a, VADDR_MIN_REFRESH_MS);
	return vaddr_find(a, vendor_id, addr, len);
}

bool alloc_vendor_unreachable(struct alloc_ctx *a, uint32_t vendor_id, uint64_t window_ms)
{
	return vstats_unreachable(a->vstats, vendor_id, window_ms, now_ms());
}
