/*
 * bg.c - the context's background thread ("alloc-bg"): renews the leases of
 * open upload sessions at half their length, sends validation receipts
 * (full batches at once when kicked, everything every RECEIPT_FLUSH_MS), and
 * delivers bad-replica reports queued by fetches, so that neither a FUSE
 * read nor a write waits for that bookkeeping.
 *
 * A renewal brings fresh capability tokens (their expiry follows the
 * lease's), handed to the session.  Renewing a lease that a session has just
 * committed is answered with an error by the FAT and is harmless.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc_int.h"

#define BAD_QUEUE_MAX 256
#define RENEW_MIN_MS 200

static void send_bad_reports(struct alloc_ctx *a)
{
	struct alloc_volume vol;

	if (alloc_volume_get(a, &vol) < 0)
		return;
	for (;;) {
		Pstore__BadReplica br = PSTORE__BAD_REPLICA__INIT;
		struct xport_reply rep = {0};
		struct bad_report r;
		int rc;

		pthread_mutex_lock(&a->bg_lock);
		if (a->n_bad == 0 || a->bg_stop) {
			pthread_mutex_unlock(&a->bg_lock);
			return;
		}
		r = a->bad[0];
		memmove(a->bad, a->bad + 1, (a->n_bad - 1) * sizeof(*a->bad));
		a->n_bad--;
		pthread_mutex_unlock(&a->bg_lock);
		br.volume = vol.name;
		br.chunk_id.data = r.chunk_id;
		br.chunk_id.len = CHUNK_ID_LEN;
		br.vendor_id = r.vendor_id;
		br.reason = r.reason;
		rc = alloc_fat_call(a, MSG_REPORT_BAD, &br.base, NULL, &rep);
		xport_reply_clear(&rep);
		if (rc < 0)
			log_warn("alloc: could not report a bad replica on vendor %u: %s",
				 r.vendor_id, strerror(-rc));
	}
}

static void renew_due(struct alloc_ctx *a)
{
	struct alloc_volume vol;

	if (alloc_volume_get(a, &vol) < 0)
		return;
	for (;;) {
		Pstore__LeaseRenew lr = PSTORE__LEASE_RENEW__INIT;
		struct xport_reply rep = {0};
		uint64_t lease = 0, now = now_ms();
		int rc;

		pthread_mutex_lock(&a->bg_lock);
		for (size_t i = 0; i < a->n_leases && !a->bg_stop; i++)
			if (a->leases[i].next_renew_ms <= now) {
				lease = a->leases[i].lease_id;
				/* not again before the next slot, whatever happens */
				a->leases[i].next_renew_ms = now + a->leases[i].renew_every_ms;
				break;
			}
		pthread_mutex_unlock(&a->bg_lock);
		if (!lease)
			return;
		lr.volume = vol.name;
		lr.lease_id = lease;
		lr.lease_ms = a->lease_ms;
		rc = alloc_fat_call(a, MSG_LEASE_RENEW, &lr.base,
				    &pstore__alloc_reply__descriptor, &rep);
		if (rc == 0) {
			Pstore__AllocReply *ar = (Pstore__AllocReply *)rep.msg;
			uint64_t wall = wall_ms();

			log_debug("alloc: lease %llu renewed until %llu",
				  (unsigned long long)lease, (unsigned long long)ar->expiry_ms);
			uint64_t half = ar->expiry_ms > wall ? (ar->expiry_ms - wall) / 2 : 0;

			/* the entry still exists only if its session is alive: the
			 * session forgets its leases (under bg_lock) before it is freed */
			pthread_mutex_lock(&a->bg_lock);
			for (size_t i = 0; i < a->n_leases; i++)
				if (a->leases[i].lease_id == lease) {
					if (half)
						a->leases[i].next_renew_ms =
						    now + MAX(half, (uint64_t)RENEW_MIN_MS);
					alloc_session_renewed(a->leases[i].s, ar);
				}
			pthread_mutex_unlock(&a->bg_lock);
		} else {
			log_warn("alloc: renewing lease %llu failed: %s",
				 (unsigned long long)lease, strerror(-rc));
		}
		xport_reply_clear(&rep);
	}
}

static uint64_t next_wakeup(struct alloc_ctx *a, uint64_t next_flush)
{
	uint64_t t = next_flush;

	for (size_t i = 0; i < a->n_leases; i++)
		t = MIN(t, a->leases[i].next_renew_ms);
	return t;
}

static void *bg_main(void *arg)
{
	struct alloc_ctx *a = arg;
	uint64_t next_flush = now_ms() + RECEIPT_FLUSH_MS;

	pthread_mutex_lock(&a->bg_lock);
	while (!a->bg_stop) {
		uint64_t now = now_ms(), wake = next_wakeup(a, next_flush);
		bool kick = a->bg_kick, bad = a->n_bad > 0;

		if (!kick && !bad && wake > now) {
			struct timespec ts;
			uint64_t wait = MIN(wake - now, (uint64_t)RECEIPT_FLUSH_MS);

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += (time_t)(wait / 1000);
			ts.tv_nsec += (long)(wait % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&a->bg_cond, &a->bg_lock, &ts);
			continue;
		}
		a->bg_kick = false;
		pthread_mutex_unlock(&a->bg_lock);

		renew_due(a);
		if (bad)
			send_bad_reports(a);
		if (now >= next_flush) {
			receipts_send(a, false, true);
			next_flush = now_ms() + RECEIPT_FLUSH_MS;
		} else if (kick) {
			receipts_send(a, true, true);
		}
		pthread_mutex_lock(&a->bg_lock);
	}
	pthread_mutex_unlock(&a->bg_lock);
	return NULL;
}

int alloc_bg_start(struct alloc_ctx *a)
{
	pthread_condattr_t ca;

	pthread_mutex_init(&a->bg_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->bg_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&a->bg, NULL, bg_main, a) != 0) {
		log_err("alloc: cannot start the background thread");
		pthread_cond_destroy(&a->bg_cond);
		pthread_mutex_destroy(&a->bg_lock);
		return -EAGAIN;
	}
	pthread_setname_np(a->bg, "alloc-bg");
	a->bg_started = true;
	return 0;
}

void alloc_bg_stop(struct alloc_ctx *a)
{
	if (!a->bg_started)
		return;
	pthread_mutex_lock(&a->bg_lock);
	a->bg_stop = true;
	pthread_cond_broadcast(&a->bg_cond);
	pthread_mutex_unlock(&a->bg_lock);
	pthread_join(a->bg, NULL);
	a->bg_started = false;
	pthread_cond_destroy(&a->bg_cond);
	pthread_mutex_destroy(&a->bg_lock);
}

int alloc_bg_lease_add(struct alloc_ctx *a, struct alloc_session *s, uint64_t lease_id,
		       uint32_t lease_len_ms)
{
	int rc = 0;
	uint32_t every = MAX(lease_len_ms / 2, (uint32_t)RENEW_MIN_MS);

	pthread_mutex_lock(&a->bg_lock);
	if (a->n_leases == a->cap_leases) {
		size_t ncap = a->cap_leases ? 2 * a->cap_leases : 8;
		struct alloc_lease_ent *nl = realloc(a->leases, ncap * sizeof(*nl));

		if (!nl) {
			rc = -ENOMEM;
			goto out;
		}
		a->leases = nl;
		a->cap_leases = ncap;
	}
	a->leases[a->n_leases].lease_id = lease_id;
	a->leases[a->n_leases].s = s;
	a->leases[a->n_leases].renew_every_ms = every;
	a->leases[a->n_leases].next_renew_ms = now_ms() + every;
	a->n_leases++;
	pthread_cond_signal(&a->bg_cond);
out:
	pthread_mutex_unlock(&a->bg_lock);
	return rc;
}

void alloc_bg_lease_del(struct alloc_ctx *a, uint64_t lease_id)
{
	pthread_mutex_lock(&a->bg_lock);
	for (size_t i = 0; i < a->n_leases; i++)
		if (a->leases[i].lease_id == lease_id) {
			a->leases[i] = a->leases[--a->n_leases];
			break;
		}
	pthread_mutex_unlock(&a->bg_lock);
}

void alloc_bg_kick(struct alloc_ctx *a)
{
	pthread_mutex_lock(&a->bg_lock);
	a->bg_kick = true;
	pthread_cond_signal(&a->bg_cond);
	pthread_mutex_unlock(&a->bg_lock);
}

void alloc_bg_report_bad(struct alloc_ctx *a, const uint8_t chunk_id[CHUNK_ID_LEN],
			 uint32_t vendor_id, const char *reason)
{
	pthread_mutex_lock(&a->bg_lock);
	if (a->n_bad == a->cap_bad && a->cap_bad < BAD_QUEUE_MAX) {
		size_t ncap = a->cap_bad ? 2 * a->cap_bad : 8;
		struct bad_report *nb = realloc(a->bad, ncap * sizeof(*nb));

		if (nb) {
			a->bad = nb;
			a->cap_bad = ncap;
		}
	}
	if (a->n_bad < a->cap_bad) {
		struct bad_report *r = &a->bad[a->n_bad++];

		memcpy(r->chunk_id, chunk_id, CHUNK_ID_LEN);
		r->vendor_id = vendor_id;
		snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
		pthread_cond_signal(&a->bg_cond);
	} else {
		log_warn("alloc: bad-replica report queue full; vendor %u not reported",
			 vendor_id);
	}
	pthread_mutex_unlock(&a->bg_lock);
}
