/*
 * placement.c - the provisional FAT as the client sees it: the candidate
 * vendors of a session's leases, how many bytes each may still take, which
 * ones failed, and the choice of a replica chain for a chunk.
 *
 * Rules: a chain holds distinct vendors of ONE lease (the chunk header names
 * a single lease, and each hop's token must be of that lease); every hop has
 * room for the chunk within its reservation; chain heads rotate over the
 * candidates so that all of them receive first copies (the client's uplink
 * then spreads over all vendors).  With path probing (probe.c), candidates
 * carry a score and a zone (place_rank): heads then rotate among the
 * near-equal best only, the chain is filled best first, and no two copies
 * share a zone when the lease's candidates span enough zones (see
 * choose_ranked).  Pure bookkeeping without locks or I/O:
 * the session's lock protects a struct place, and the unit tests drive it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc_int.h"

void place_init(struct place *p)
{
	memset(p, 0, sizeof(*p));
}

void place_clear(struct place *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->c[i].token);
	free(p->c);
	free(p->failed);
	memset(p, 0, sizeof(*p));
}

bool place_is_failed(const struct place *p, uint32_t vendor_id)
{
	for (size_t i = 0; i < p->n_failed; i++)
		if (p->failed[i] == vendor_id)
			return true;
	return false;
}

int place_add(struct place *p, uint32_t vendor_id, const char *addr, uint64_t lease_id,
	      uint64_t reserved, const uint8_t *token, size_t token_len)
{
	struct place_cand *c;

	if (vendor_id == 0 || !addr || !addr[0] || strlen(addr) >= ALLOC_ADDR_LEN ||
	    lease_id == 0)
		return -EINVAL;
	for (size_t i = 0; i < p->n; i++)
		if (p->c[i].vendor_id == vendor_id && p->c[i].lease_id == lease_id)
			return 0;
	if (p->n == p->cap) {
		size_t ncap = p->cap ? 2 * p->cap : 8;
		struct place_cand *nc = realloc(p->c, ncap * sizeof(*nc));

		if (!nc)
			return -ENOMEM;
		p->c = nc;
		p->cap = ncap;
	}
	c = &p->c[p->n];
	memset(c, 0, sizeof(*c));
	if (token_len) {
		c->token = malloc(token_len);
		if (!c->token)
			return -ENOMEM;
		memcpy(c->token, token, token_len);
		c->token_len = token_len;
	}
	c->vendor_id = vendor_id;
	snprintf(c->addr, sizeof(c->addr), "%s", addr);
	c->lease_id = lease_id;
	c->reserved = reserved;
	c->failed = place_is_failed(p, vendor_id);
	p->n++;
	return 0;
}

static bool in_list(const uint32_t *l, unsigned n, uint32_t v)
{
	for (unsigned i = 0; i < n; i++)
		if (l[i] == v)
			return true;
	return false;
}

static bool eligible(const struct place_cand *c, uint64_t lease, uint64_t size,
		     const uint32_t *avoid, unsigned n_avoid)
{
	return c->lease_id == lease && !c->failed && c->charged <= c->reserved &&
	       c->reserved - c->charged >= size && !in_list(avoid, n_avoid, c->vendor_id);
}

void place_rank(struct place *p, uint32_t vendor_id, double score, const char *zone)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->c[i].vendor_id == vendor_id) {
			p->c[i].ranked = true;
			p->c[i].score = score;
			snprintf(p->c[i].zone, sizeof(p->c[i].zone), "%s", zone ? zone : "");
		}
}

static const char *zone_of(const struct place *p, uint32_t vendor_id)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->c[i].vendor_id == vendor_id)
			return p->c[i].zone;
	return "";
}

/* Ranked lease: eligible candidates best first; the head rotates among the
 * near-equal ones (score >= best * (1 - spread), at least `want` of them),
 * the other hops follow in rotation, then by score.  When the lease's
 * candidates (with the copies already held, avoid[]) span at least
 * want + n_avoid zones, every hop is in a zone not yet used. */
static int choose_ranked(struct place *p, uint64_t lease, uint64_t size, unsigned want,
			 const uint32_t *avoid, unsigned n_avoid, size_t *out)
{
	size_t *e, n_e = 0, pool, pick[CHUNK_MAX_CHAIN], zones = 0;
	const char *used[2 * CHUNK_MAX_CHAIN];
	unsigned got = 0, n_used = 0;
	bool zoned;
	int rc = -ENOSPC;

	e = malloc(p->n * sizeof(*e));
	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < p->n; i++) {
		bool dup = false;

		if (!eligible(&p->c[i], lease, size, avoid, n_avoid))
			continue;
		for (size_t j = 0; j < n_e; j++)
			if (p->c[e[j]].vendor_id == p->c[i].vendor_id)
				dup = true;
		if (dup)
			continue;
		/* insertion by score, stable */
		size_t k = n_e++;

		while (k > 0 && p->c[e[k - 1]].score < p->c[i].score) {
			e[k] = e[k - 1];
			k--;
		}
		e[k] = i;
	}
	if (n_e < want)
		goto out;
	for (unsigned j = 0; j < n_avoid && n_used < 2 * CHUNK_MAX_CHAIN; j++)
		used[n_used++] = zone_of(p, avoid[j]);
	/* distinct zones among the candidates and the copies held */
	for (size_t i = 0; i < n_e + n_used; i++) {
		const char *z = i < n_e ? p->c[e[i]].zone : used[i - n_e];
		bool seen = false;

		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(z, j < n_e ? p->c[e[j]].zone : used[j - n_e]) == 0;
		if (!seen)
			zones++;
	}
	zoned = zones >= 2 && zones >= (size_t)want + n_avoid;
	for (pool = 1; pool < n_e; pool++)
		if (p->c[e[pool]].score < p->c[e[0]].score * (1.0 - p->spread))
			break;
	pool = MAX(pool, (size_t)want);
	for (size_t k = 0; k < n_e && got < want; k++) {
		/* pool members in rotation from next_head, then the rest by score */
		size_t i = k < pool ? e[(p->next_head + k) % pool] : e[k];
		bool clash = false;

		for (unsigned j = 0; zoned && j < n_used && !clash; j++)
			clash = strcmp(used[j], p->c[i].zone) == 0;
		if (clash)
			continue;
		pick[got++] = i;
		if (n_used < 2 * CHUNK_MAX_CHAIN)
			used[n_used++] = p->c[i].zone;
	}
	if (got < want)
		goto out;
	for (unsigned j = 0; j < want; j++) {
		p->c[pick[j]].charged += size;
		out[j] = pick[j];
	}
	p->next_head++;
	rc = 0;
out:
	free(e);
	return rc;
}

/* Tries one lease: the head is the first eligible candidate at or after
 * next_head, the other hops follow it in candidate order. */
static int choose_in_lease(struct place *p, uint64_t lease, uint64_t size, unsigned want,
			   const uint32_t *avoid, unsigned n_avoid, size_t *out)
{
	size_t pick[CHUNK_MAX_CHAIN];
	unsigned got = 0;
	size_t start = p->next_head % p->n;

	for (size_t i = 0; i < p->n; i++)
		if (p->c[i].lease_id == lease && p->c[i].ranked)
			return choose_ranked(p, lease, size, want, avoid, n_avoid, out);
	for (size_t k = 0; k < p->n && got < want; k++) {
		size_t i = (start + k) % p->n;
		bool dup = false;

		if (!eligible(&p->c[i], lease, size, avoid, n_avoid))
			continue;
		for (unsigned j = 0; j < got; j++)
			if (p->c[pick[j]].vendor_id == p->c[i].vendor_id)
				dup = true;
		if (!dup)
			pick[got++] = i;
	}
	if (got < want)
		return -ENOSPC; /* out[] untouched */
	for (unsigned j = 0; j < want; j++) {
		p->c[pick[j]].charged += size;
		out[j] = pick[j];
	}
	p->next_head = pick[0] + 1;
	return 0;
}

int place_choose(struct place *p, uint64_t size, unsigned want, uint64_t only_lease,
		 const uint32_t *avoid, unsigned n_avoid, size_t *out)
{
	if (want == 0 || want > CHUNK_MAX_CHAIN || p->n == 0)
		return -ENOSPC;
	if (only_lease)
		return choose_in_lease(p, only_lease, size, want, avoid, n_avoid, out);
	/* leases in the order they were granted: older reservations first */
	for (size_t i = 0; i < p->n; i++) {
		bool seen = false;

		for (size_t j = 0; j < i; j++)
			if (p->c[j].lease_id == p->c[i].lease_id)
				seen = true;
		if (seen)
			continue;
		if (choose_in_lease(p, p->c[i].lease_id, size, want, avoid, n_avoid, out) == 0)
			return 0;
	}
	return -ENOSPC;
}

void place_uncharge(struct place *p, size_t idx, uint64_t size)
{
	if (idx >= p->n)
		return;
	p->c[idx].charged = p->c[idx].charged >= size ? p->c[idx].charged - size : 0;
}

int place_fail(struct place *p, uint32_t vendor_id)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->c[i].vendor_id == vendor_id)
			p->c[i].failed = true;
	if (place_is_failed(p, vendor_id))
		return 0;
	if (p->n_failed == p->cap_failed) {
		size_t ncap = p->cap_failed ? 2 * p->cap_failed : 8;
		uint32_t *nf = realloc(p->failed, ncap * sizeof(*nf));

		if (!nf)
			return -ENOMEM;
		p->failed = nf;
		p->cap_failed = ncap;
	}
	p->failed[p->n_failed++] = vendor_id;
	return 0;
}

size_t place_usable(const struct place *p, uint64_t size)
{
	size_t n = 0;

	for (size_t i = 0; i < p->n; i++)
		if (!p->c[i].failed && p->c[i].charged <= p->c[i].reserved &&
		    p->c[i].reserved - p->c[i].charged >= size)
			n++;
	return n;
}
