/*
 * memtune.h - allocator settings of a long-running daemon: bounded arenas
 * set once at startup, and a thread that gives the memory glibc keeps in
 * its arenas after a burst of chunk-size buffers back to the kernel.
 */
#ifndef PSTORE_MEMTUNE_H
#define PSTORE_MEMTUNE_H

#include <stddef.h>

/* What pstorefs uses (docs/performance.md, "Memory", round 3). */
#define MEMTUNE_ARENA_MAX 4
#define MEMTUNE_TRIM_MS 5000

/*
 * Before any thread starts: caps glibc's malloc arenas at arena_max (0 keeps
 * glibc's default of 8 per core) and, when mmap_threshold is not 0, fixes
 * the mmap threshold there (which stops glibc from raising it dynamically).
 * When $GLIBC_TUNABLES sets any glibc.malloc tunable the operator's choice
 * wins and nothing is changed.  Returns 0, or -EINVAL when glibc refuses a
 * setting (the others are still applied).
 */
int memtune_apply(size_t mmap_threshold, int arena_max);

/*
 * Starts a thread that calls malloc_trim(0) every interval_ms (>= 100): the
 * free memory of every arena goes back to the kernel (MADV_DONTNEED), so
 * RSS follows what is allocated, a few seconds late, instead of the peak.
 * Call after fork.  Returns 0 or -errno.  memtune_trim_stop joins it (no-op
 * when it was not started).
 */
int memtune_trim_start(unsigned interval_ms);
void memtune_trim_stop(void);

#endif
