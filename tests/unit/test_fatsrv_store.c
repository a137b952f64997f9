/*
 * test_fatsrv_store.c - the FAT store interface on its LMDB backend: put,
 * get, delete, abort drops changes, commit keeps them (also across a
 * reopen), read-only transactions refuse writes, ordered prefix scans with
 * exclusive start, limits and the `more` flag, and key length bounds.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"
#include "store.h"

struct fx {
	char dir[64];
	struct fat_store *s;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	strcpy(f->dir, "/tmp/test_fatsrv_store.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(fat_store_open_lmdb(f->dir, 64u << 20, &f->s), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	fat_store_close(f->s);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void put_s(struct fat_txn *t, const char *k, const char *v)
{
	assert_int_equal(fat_txn_put(t, k, strlen(k), v, strlen(v)), 0);
}

static void expect_val(struct fat_txn *t, const char *k, const char *v)
{
	const void *val;
	size_t len;

	assert_int_equal(fat_txn_get(t, k, strlen(k), &val, &len), 0);
	assert_int_equal(len, strlen(v));
	assert_memory_equal(val, v, len);
}

static void expect_absent(struct fat_txn *t, const char *k)
{
	const void *val;
	size_t len;

	assert_int_equal(fat_txn_get(t, k, strlen(k), &val, &len), -ENOENT);
}

static void test_put_get_commit_abort(void **state)
{
	struct fx *f = *state;
	struct fat_txn *t;

	assert_int_equal(fat_txn_begin(f->s, false, &t), 0);
	put_s(t, "a", "1");
	put_s(t, "b", "2");
	expect_val(t, "a", "1"); /* a txn sees its own writes */
	assert_int_equal(fat_txn_commit(t), 0);

	assert_int_equal(fat_txn_begin(f->s, false, &t), 0);
	put_s(t, "a", "changed");
	put_s(t, "c", "3");
	assert_int_equal(fat_txn_del(t, "b", 1), 0);
	expect_absent(t, "b");
	fat_txn_abort(t);

	assert_int_equal(fat_txn_begin(f->s, true, &t), 0);
	expect_val(t, "a", "1");
	expect_val(t, "b", "2");
	expect_absent(t, "c");
	assert_int_equal(fat_txn_put(t, "x", 1, "y", 1), -EROFS);
	assert_int_equal(fat_txn_del(t, "a", 1), -EROFS);
	fat_txn_abort(t);

	assert_int_equal(fat_txn_begin(f->s, false, &t), 0);
	assert_int_equal(fat_txn_del(t, "nope", 4), -ENOENT);
	assert_int_equal(fat_txn_del(t, "a", 1), 0);
	assert_int_equal(fat_txn_commit(t), 0);

	/* durable across a reopen */
	fat_store_close(f->s);
	assert_int_equal(fat_store_open_lmdb(f->dir, 64u << 20, &f->s), 0);
	assert_int_equal(fat_txn_begin(f->s, true, &t), 0);
	expect_absent(t, "a");
	expect_val(t, "b", "2");
	fat_txn_abort(t);
}

struct collect {
	char keys[64][32];
	size_t n;
	size_t stop_at; /* 0 = never */
};

static int collect_cb(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
		      void *arg)
{
	struct collect *c = arg;

	(void)val;
	(void)vlen;
	assert_true(klen < sizeof(c->keys[0]));
	memcpy(c->keys[c->n], key, klen);
	c->keys[c->n][klen] = '\0';
	c->n++;
	return c->stop_at && c->n == c->stop_at ? 1 : 0;
}

static void test_scan(void **state)
{
	struct fx *f = *state;
	struct fat_txn *t;
	struct collect c;
	bool more;
	static const char *keys[] = {"p/a", "p/b", "p/c", "p/d", "p", "q/a", "o/z", "p0"};

	assert_int_equal(fat_txn_begin(f->s, false, &t), 0);
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		put_s(t, keys[i], "v");
	assert_int_equal(fat_txn_commit(t), 0);

	assert_int_equal(fat_txn_begin(f->s, true, &t), 0);
	/* whole prefix, in order */
	memset(&c, 0, sizeof(c));
	assert_int_equal(fat_txn_scan(t, "p/", 2, NULL, 0, 0, collect_cb, &c, &more), 0);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.keys[0], "p/a");
	assert_string_equal(c.keys[3], "p/d");
	assert_false(more);
	/* limit and more */
	memset(&c, 0, sizeof(c));
	assert_int_equal(fat_txn_scan(t, "p/", 2, NULL, 0, 2, collect_cb, &c, &more), 0);
	assert_int_equal(c.n, 2);
	assert_true(more);
	/* exclusive start from the last key seen */
	memset(&c, 0, sizeof(c));
	assert_int_equal(fat_txn_scan(t, "p/", 2, "p/b", 3, 2, collect_cb, &c, &more), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.keys[0], "p/c");
	assert_string_equal(c.keys[1], "p/d");
	assert_false(more);
	/* start key absent: next one after it */
	memset(&c, 0, sizeof(c));
	assert_int_equal(fat_txn_scan(t, "p/", 2, "p/bb", 4, 0, collect_cb, &c, &more), 0);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.keys[0], "p/c");
	/* start key before the prefix */
	memset(&c, 0, sizeof(c));
	assert_int_equal(fat_txn_scan(t, "p/", 2, "a", 1, 0, collect_cb, &c, NULL), 0);
	assert_int_equal(c.n, 4);
	/* start key after the prefix: nothing */
	memset(&c, 0, sizeof(c));
	assert_int_equal(fat_txn_scan(t, "p/", 2, "p/z", 3, 0, collect_cb, &c, &more), 0);
	assert_int_equal(c.n, 0);
	assert_false(more);
	/* callback stops the scan */
	memset(&c, 0, sizeof(c));
	c.stop_at = 1;
	assert_int_equal(fat_txn_scan(t, "p/", 2, NULL, 0, 0, collect_cb, &c, &more), 0);
	assert_int_equal(c.n, 1);
	assert_false(more);
	/* empty prefix: everything */
	memset(&c, 0, sizeof(c));
	assert_int_equal(fat_txn_scan(t, "", 0, NULL, 0, 0, collect_cb, &c, NULL), 0);
	assert_int_equal(c.n, ARRAY_SIZE(keys));
	assert_string_equal(c.keys[0], "o/z");
	/* no key with that prefix */
	memset(&c, 0, sizeof(c));
	assert_int_equal(fat_txn_scan(t, "zz", 2, NULL, 0, 0, collect_cb, &c, &more), 0);
	assert_int_equal(c.n, 0);
	fat_txn_abort(t);
}

static int fail_cb(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen, void *arg)
{
	(void)key;
	(void)klen;
	(void)val;
	(void)vlen;
	(void)arg;
	return -EIO;
}

static void test_bounds(void **state)
{
	struct fx *f = *state;
	struct fat_txn *t;
	uint8_t big[2048];
	const void *v;
	size_t vl;

	memset(big, 'k', sizeof(big));
	assert_true(f->s->max_key >= 400);
	assert_int_equal(fat_txn_begin(f->s, false, &t), 0);
	assert_int_equal(fat_txn_put(t, big, f->s->max_key, "v", 1), 0);
	assert_int_equal(fat_txn_put(t, big, f->s->max_key + 1, "v", 1), -EINVAL);
	assert_int_equal(fat_txn_get(t, big, f->s->max_key + 1, &v, &vl), -ENOENT);
	assert_int_equal(fat_txn_put(t, big, 0, "v", 1), -EINVAL);
	/* a failing callback fails the scan */
	assert_int_equal(fat_txn_scan(t, "k", 1, NULL, 0, 0, fail_cb, NULL, NULL), -EIO);
	/* a 1 MiB value round-trips */
	{
		size_t n = 1u << 20;
		uint8_t *val = malloc(n);

		random_fill(val, n);
		assert_int_equal(fat_txn_put(t, "big", 3, val, n), 0);
		assert_int_equal(fat_txn_get(t, "big", 3, &v, &vl), 0);
		assert_int_equal(vl, n);
		assert_memory_equal(v, val, n);
		free(val);
	}
	assert_int_equal(fat_txn_commit(t), 0);
}

struct run_arg {
	int calls;
	int fail_with;
};

static int run_fn(struct fat_txn *t, void *arg)
{
	struct run_arg *a = arg;

	a->calls++;
	if (fat_txn_put(t, "run", 3, "x", 1) < 0)
		return -EIO;
	if (a->fail_with && a->calls < 3)
		return a->fail_with;
	return 0;
}

static void test_run(void **state)
{
	struct fx *f = *state;
	struct run_arg a = {0};
	struct fat_txn *t;
	const void *v;
	size_t vl;

	/* an error aborts: nothing written */
	a.fail_with = -EINVAL;
	assert_int_equal(fat_store_run(f->s, false, run_fn, &a), -EINVAL);
	assert_int_equal(a.calls, 1);
	assert_int_equal(fat_txn_begin(f->s, true, &t), 0);
	assert_int_equal(fat_txn_get(t, "run", 3, &v, &vl), -ENOENT);
	fat_txn_abort(t);
	/* -EAGAIN runs again on a fresh transaction */
	a.calls = 0;
	a.fail_with = -EAGAIN;
	assert_int_equal(fat_store_run(f->s, false, run_fn, &a), 0);
	assert_int_equal(a.calls, 3);
	assert_int_equal(fat_txn_begin(f->s, true, &t), 0);
	assert_int_equal(fat_txn_get(t, "run", 3, &v, &vl), 0);
	fat_txn_abort(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_put_get_commit_abort, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_scan, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_run, setup, teardown),
	};

	log_init("test_fatsrv_store", LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
