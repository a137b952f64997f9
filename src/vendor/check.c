/*
 * check.c - the checks a vendor makes before it stores a chunk: who the
 * peer is, whether the put's replica chain agrees with the chunk header,
 * and whether the capability token of this hop allows the write.  Plain
 * functions on decoded values (no sockets, no disk), so the unit tests call
 * them directly.  The lease's byte count is the caller's (the index).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "vendor.h"

static int fail(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(int rc, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

int vcheck_peer(const char *cn, char *role, size_t rolelen, const char **id)
{
	const char *colon = strchr(cn, ':');
	size_t n;

	if (!colon || colon == cn || colon[1] == '\0')
		return -EINVAL;
	n = (size_t)(colon - cn);
	if (n >= rolelen)
		return -EINVAL;
	memcpy(role, cn, n);
	role[n] = '\0';
	if (id)
		*id = colon + 1;
	return 0;
}

int vcheck_chain(const Pstore__ChunkPut *put, const struct chunk_hdr *h, uint32_t self,
		 char *err, size_t errlen)
{
	int pos = chunk_hdr_chain_pos(h, self);
	char host[VENDOR_ADDR_MAX];
	uint16_t port;

	if (pos < 0)
		return fail(-EACCES, err, errlen, "vendor %u is not in the chunk's chain",
			    self);
	if (put->n_chain == 0 || put->n_chain > CHUNK_MAX_CHAIN)
		return fail(-EINVAL, err, errlen, "chain of %zu hops (1..%d)", put->n_chain,
			    CHUNK_MAX_CHAIN);
	if (put->n_chain != (size_t)(h->chain_len - pos))
		return fail(-EINVAL, err, errlen,
			    "put chain has %zu hops, header chain from vendor %u has %d",
			    put->n_chain, self, h->chain_len - pos);
	for (size_t i = 0; i < put->n_chain; i++) {
		const Pstore__ChainHop *hop = put->chain[i];

		if (!hop)
			return fail(-EINVAL, err, errlen, "empty hop %zu", i);
		if (hop->vendor_id != h->chain[pos + (int)i])
			return fail(-EINVAL, err, errlen,
				    "hop %zu is vendor %u, the header says %u", i,
				    hop->vendor_id, h->chain[pos + (int)i]);
		if (hop->token.len == 0 || hop->token.len > 4096)
			return fail(-EACCES, err, errlen, "hop %zu has no valid token", i);
		/* Our own address is not used; the next hops' must be usable. */
		if (i > 0 && (!hop->address || strlen(hop->address) >= sizeof(host) ||
			      parse_hostport(hop->address, host, sizeof(host), &port) < 0))
			return fail(-EINVAL, err, errlen, "hop %zu has a bad address", i);
	}
	return 0;
}

int vcheck_token(const struct cap_key *key, const void *tok, size_t toklen,
		 const struct chunk_hdr *h, uint32_t self, uint64_t accepted,
		 uint64_t now_wall_ms, struct cap_token *out, char *err, size_t errlen)
{
	struct cap_token t;
	int rc;

	if (!key)
		return fail(-EAGAIN, err, errlen,
			    "not registered with a FAT server yet; retry later");
	rc = cap_token_verify(key, tok, toklen, &t);
	if (rc == -EACCES)
		return fail(-EACCES, err, errlen, "capability signature is not the FAT's");
	if (rc < 0)
		return fail(-EBADMSG, err, errlen, "capability token does not decode");
	if (t.vendor_id != self)
		return fail(-EACCES, err, errlen, "capability is for vendor %u, not %u",
			    t.vendor_id, self);
	if (memcmp(t.owner, h->owner, CHUNK_OWNER_LEN) != 0)
		return fail(-EACCES, err, errlen, "capability is for another owner");
	if (t.lease_id != h->lease_id)
		return fail(-EACCES, err, errlen, "capability is for lease %llu, not %llu",
			    (unsigned long long)t.lease_id, (unsigned long long)h->lease_id);
	if (t.expiry_ms <= now_wall_ms)
		return fail(-EACCES, err, errlen, "capability expired %llu ms ago",
			    (unsigned long long)(now_wall_ms - t.expiry_ms));
	if (accepted > t.byte_limit || h->stored_len > t.byte_limit - accepted)
		return fail(-E2BIG, err, errlen,
			    "lease byte limit %llu reached (%llu accepted, %u more asked)",
			    (unsigned long long)t.byte_limit, (unsigned long long)accepted,
			    h->stored_len);
	if (out)
		*out = t;
	return 0;
}

bool vcheck_downstream(const struct chunk_hdr *h, uint32_t self, uint32_t v)
{
	int me = chunk_hdr_chain_pos(h, self), pos = chunk_hdr_chain_pos(h, v);

	return me >= 0 && pos > me;
}

uint32_t vcheck_forward_budget(uint32_t deadline_ms)
{
	uint32_t margin;

	if (deadline_ms == 0 || deadline_ms > VENDOR_FORWARD_TIMEOUT_MS)
		deadline_ms = VENDOR_FORWARD_TIMEOUT_MS;
	/* time to finish the local copy and get the reply back upstream */
	margin = deadline_ms / 8 + VENDOR_HOP_MARGIN_MS;
	return deadline_ms > margin + VENDOR_HOP_MARGIN_MS ? deadline_ms - margin : 0;
}
