/*
 * memtune.c - allocator settings of a long-running daemon (see memtune.h).
 *
 * glibc serves a request of at least the mmap threshold with its own mmap
 * and unmaps it on free; smaller ones come from an arena and stay there
 * after free.  The threshold starts at 128 KiB and rises to the size of any
 * mmapped block that is freed (up to 32 MiB), so after the first freed
 * 4 MiB chunk buffer every later one is carved out of an arena, and with up
 * to 8 arenas per core what stays resident after a burst is about the
 * burst's peak.  Mmapping every chunk buffer instead (a fixed threshold)
 * costs a page fault per 4 KiB of every buffer and an munmap per free; the
 * trim thread keeps the arenas (fast reuse during a burst) and returns
 * their free pages every few seconds.
 */
#include "memtune.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* CLOCK_MONOTONIC */
	pthread_t thread;
	bool running, stop;
	unsigned interval_ms;
} trim = {.lock = PTHREAD_MUTEX_INITIALIZER};

int memtune_apply(size_t mmap_threshold, int arena_max)
{
	const char *tun = getenv("GLIBC_TUNABLES");
	int rc = 0;

	if (tun && strstr(tun, "glibc.malloc.")) {
		log_info("memtune: GLIBC_TUNABLES sets malloc tunables, keeping them");
		return 0;
	}
	if (mmap_threshold > 0 && (mmap_threshold > (size_t)INT32_MAX ||
				   mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold) != 1)) {
		log_warn("memtune: mmap threshold %zu refused", mmap_threshold);
		rc = -EINVAL;
	}
	if (arena_max > 0 && mallopt(M_ARENA_MAX, arena_max) != 1) {
		log_warn("memtune: arena max %d refused", arena_max);
		rc = -EINVAL;
	}
	return rc;
}

static void *trim_main(void *arg)
{
	uint64_t n = 0, released = 0, spent_us = 0;
	struct timespec until;

	(void)arg;
	pthread_mutex_lock(&trim.lock);
	while (!trim.stop) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += trim.interval_ms / 1000;
		until.tv_nsec += (long)(trim.interval_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		while (!trim.stop &&
		       pthread_cond_timedwait(&trim.cond, &trim.lock, &until) != ETIMEDOUT)
			;
		if (trim.stop)
			break;
		pthread_mutex_unlock(&trim.lock);
		uint64_t t0 = now_us();
		released += malloc_trim(0) ? 1 : 0;
		spent_us += now_us() - t0;
		n++;
		pthread_mutex_lock(&trim.lock);
	}
	pthread_mutex_unlock(&trim.lock);
	log_debug("memtune: %llu trims (%llu released memory), %llu us in malloc_trim",
		  (unsigned long long)n, (unsigned long long)released,
		  (unsigned long long)spent_us);
	return NULL;
}

int memtune_trim_start(unsigned interval_ms)
{
	pthread_condattr_t ca;
	int rc;

	if (interval_ms < 100)
		return -EINVAL;
	pthread_mutex_lock(&trim.lock);
	if (trim.running) {
		pthread_mutex_unlock(&trim.lock);
		return -EALREADY;
	}
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&trim.cond, &ca);
	pthread_condattr_destroy(&ca);
	if (rc != 0)
		goto out;
	trim.interval_ms = interval_ms;
	trim.stop = false;
	rc = pthread_create(&trim.thread, NULL, trim_main, NULL);
	if (rc != 0) {
		pthread_cond_destroy(&trim.cond);
		goto out;
	}
	trim.running = true;
out:
	pthread_mutex_unlock(&trim.lock);
	if (rc != 0)
		log_warn("memtune: cannot start the trim thread: %s", strerror(rc));
	return -rc;
}

void memtune_trim_stop(void)
{
	pthread_mutex_lock(&trim.lock);
	if (!trim.running) {
		pthread_mutex_unlock(&trim.lock);
		return;
	}
	trim.stop = true;
	pthread_cond_signal(&trim.cond);
	pthread_mutex_unlock(&trim.lock);
	pthread_join(trim.thread, NULL);
	pthread_mutex_lock(&trim.lock);
	trim.running = false;
	pthread_cond_destroy(&trim.cond);
	pthread_mutex_unlock(&trim.lock);
}
