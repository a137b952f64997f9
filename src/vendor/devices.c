/*
 * devices.c - the vendor's device directories: where a piece file lives,
 * how much room a device offers, how a payload is cut into pieces and which
 * device each piece goes to.  Pure functions apart from statvfs; locking is
 * the caller's (store.c).
 */
#include <errno.h>
#include <stdio.h>
#include <sys/statvfs.h>

#include "common.h"
#include "vendor.h"

int vdev_piece_path(const struct vendor_device *d, const uint8_t id[CHUNK_ID_LEN], unsigned i,
		    char *out, size_t outlen)
{
	char hex[2 * CHUNK_ID_LEN + 1];
	int n;

	chunk_id_hex(id, hex);
	n = snprintf(out, outlen, "%s/%.2s/%s.%u", d->path, hex, hex, i);
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

int vdev_space(const struct vendor_device *d, uint64_t *capacity, uint64_t *free_bytes)
{
	struct statvfs sv;
	uint64_t cap, avail;

	if (statvfs(d->path, &sv) < 0)
		return -errno;
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	cap = d->cfg_capacity ? d->cfg_capacity : (uint64_t)sv.f_blocks * sv.f_frsize;
	/* What we already stored counts against what we offer. */
	avail = MIN(avail, cap > d->used ? cap - d->used : 0);
	*capacity = cap;
	*free_bytes = avail;
	return 0;
}

void vdev_split(uint64_t len, unsigned p, uint64_t *lengths, uint64_t *offsets)
{
	const uint64_t align = 4096, min_piece = 64u << 10;
	uint64_t base = len / p, extra = len % p, off = 0;

	if (p > 1 && base >= min_piece && base >= p * align) {
		/* (p - 1) * unit < len, as unit <= base + align and base >= p * align */
		uint64_t unit = (base + (extra ? 1 : 0) + align - 1) / align * align;

		for (unsigned i = 0; i < p; i++) {
			lengths[i] = i + 1 < p ? unit : len - off;
			offsets[i] = off;
			off += lengths[i];
		}
		return;
	}
	for (unsigned i = 0; i < p; i++) {
		lengths[i] = base + (i < extra ? 1 : 0);
		offsets[i] = off;
		off += lengths[i];
	}
}

int vdev_place(const uint64_t *free_bytes, size_t n, unsigned start, const uint64_t *lengths,
	       unsigned p, unsigned *dev_of_piece)
{
	uint64_t need[VENDOR_MAX_DEVICES];

	if (n == 0 || n > VENDOR_MAX_DEVICES)
		return -EINVAL;
	for (size_t t = 0; t < n; t++) {
		unsigned s = (unsigned)((start + t) % n);
		bool fits = true;

		for (size_t d = 0; d < n; d++)
			need[d] = 0;
		for (unsigned i = 0; i < p; i++)
			need[(s + i) % n] += lengths[i];
		for (size_t d = 0; d < n && fits; d++)
			if (need[d] > free_bytes[d])
				fits = false;
		if (!fits)
			continue;
		for (unsigned i = 0; i < p; i++)
			dev_of_piece[i] = (unsigned)((s + i) % n);
		return 0;
	}
	return -ENOSPC;
}
