/*
 * test_memtune.c - the allocator settings (memtune.c): arguments checked,
 * one trim thread at a time, and free memory left in holes of an arena
 * (which free() alone does not return) goes back to the kernel within a
 * few trim intervals.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"
#include "memtune.h"

#define BIG ((size_t)4 << 20)
#define NBIG 16

/* RssAnon of this process in KiB, or -1. */
static long rss_anon_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* AddressSanitizer replaces glibc's malloc (and keeps freed blocks in its
 * quarantine): there is no glibc arena to trim. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

static void test_args(void **state)
{
	(void)state;
	assert_int_equal(memtune_trim_start(50), -EINVAL);
#ifdef UNDER_ASAN
	/* mallopt is refused: the allocator is AddressSanitizer's */
	assert_int_equal(memtune_apply(0, MEMTUNE_ARENA_MAX), -EINVAL);
#else
	assert_int_equal(memtune_apply(0, MEMTUNE_ARENA_MAX), 0);
#endif
	assert_int_equal(setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2", 1), 0);
	assert_int_equal(memtune_apply(0, 1000000), 0); /* the operator's choice wins */
	assert_int_equal(unsetenv("GLIBC_TUNABLES"), 0);
	memtune_trim_stop(); /* not started: no-op */
}

/* Big buffers separated by small live ones: freeing the big ones leaves
 * holes inside the arena, not at its top. */
static void *holes(void *arg)
{
	void *big[NBIG], **small = arg;
	void *volatile first = malloc(BIG); /* volatile: not optimised away */

	free(first); /* an mmapped block freed: glibc raises its mmap threshold past BIG */
	for (int i = 0; i < NBIG; i++) {
		big[i] = malloc(BIG);
		small[i] = malloc(64);
		if (!big[i] || !small[i])
			return NULL;
		memset(big[i], 0x5a, BIG);
	}
	for (int i = 0; i < NBIG; i++)
		free(big[i]);
	return arg;
}

static void test_trim(void **state)
{
	void *small[NBIG], *ret = NULL;
	pthread_t t;
	long before, after = -1;

	(void)state;
#ifdef UNDER_ASAN
	print_message(
	    "AddressSanitizer build: glibc's allocator is not in use, nothing to trim\n");
	skip();
#endif
	assert_int_equal(pthread_create(&t, NULL, holes, small), 0);
	assert_int_equal(pthread_join(t, &ret), 0);
	assert_non_null(ret);
	before = rss_anon_kib();
	assert_true(before > 0);
	assert_int_equal(memtune_trim_start(100), 0);
	assert_int_equal(memtune_trim_start(100), -EALREADY);
	for (int i = 0; i < 50; i++) { /* up to 5 s */
		usleep(100000);
		after = rss_anon_kib();
		if (before - after >= (long)(NBIG / 2 * BIG / 1024))
			break;
	}
	memtune_trim_stop();
	print_message("RssAnon %ld KiB with the holes, %ld KiB after trims\n", before, after);
	assert_true(before - after >= (long)(NBIG / 2 * BIG / 1024));
	for (int i = 0; i < NBIG; i++)
		free(small[i]);
	assert_int_equal(memtune_trim_start(100), 0); /* restartable */
	memtune_trim_stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_args),
	    cmocka_unit_test(test_trim),
	};

	log_init("test_memtune", LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
