/*
 * test_vendor_config.c - vendord.conf parsing: a good file with defaults,
 * and every kind of mistake reported with file:line and the key.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common.h"
#include "vendor.h"

static char dir[64];
static char conf[128];
static struct vendor_config cfg;
static char err[1024];

static int load(const char *text)
{
	FILE *f = fopen(conf, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return vendor_config_load(conf, &cfg, err, sizeof(err));
}

/* A valid file with one line replaced (or appended when `repl` is new). */
static int load_with(const char *key_line, const char *repl)
{
	char text[4096];
	const char *base = "[vendor]\n"
			   "id = 3\n"
			   "listen = 127.0.0.1:7103\n"
			   "devices = %s/d0, %s/d1\n"
			   "capacity = 0 ; device size\n"
			   "index = %s/index\n"
			   "fat = 127.0.0.1:7000, 127.0.0.1:7001\n"
			   "[tls]\n"
			   "ca = /x/ca.crt\n"
			   "cert = /x/v.crt\n"
			   "key = /x/v.key\n";
	char full[4096], *p;

	snprintf(full, sizeof(full), base, dir, dir, dir);
	if (!key_line && !repl)
		return load(full);
	p = key_line ? strstr(full, key_line) : NULL;
	if (p) {
		char *eol = strchr(p, '\n');

		snprintf(text, sizeof(text), "%.*s%s%s", (int)(p - full), full, repl, eol);
	} else {
		snprintf(text, sizeof(text), "%s%s", full, repl);
	}
	return load(text);
}

static void expect_error(const char *line, const char *repl, const char *where,
			 const char *what)
{
	if (load_with(line, repl) != -EINVAL)
		fail_msg("'%s' was accepted", repl);
	if (!strstr(err, where) || !strstr(err, what))
		fail_msg("error '%s' lacks '%s' or '%s'", err, where, what);
}

static void test_good_file(void **state)
{
	struct stat st;
	char d1[128];

	(void)state;
	assert_int_equal(load_with(NULL, NULL), 0);
	assert_int_equal(cfg.id, 3);
	assert_string_equal(cfg.address, "127.0.0.1:7103"); /* defaults to listen */
	assert_string_equal(cfg.zone, "default");
	assert_int_equal(cfg.n_devices, 2);
	assert_int_equal(cfg.n_fat, 2);
	assert_string_equal(cfg.fat[1], "127.0.0.1:7001");
	assert_int_equal(cfg.heartbeat_ms, 1000);
	assert_int_equal(cfg.workers, 4);
	assert_int_equal(cfg.capacity, 0);
	snprintf(d1, sizeof(d1), "%s/d1", dir);
	assert_int_equal(stat(d1, &st), 0); /* created */
	assert_true(S_ISDIR(st.st_mode));
}

static void test_errors_name_line_and_key(void **state)
{
	(void)state;
	expect_error("id = 3", "id = 0", ":2: [vendor] id", "out of range");
	expect_error("id = 3", "id = three", ":2: [vendor] id", "not an unsigned integer");
	expect_error("listen =", "listen = localhost", ":3: [vendor] listen", "host:port");
	expect_error("listen =", "listen = 127.0.0.1:70000", ":3:", "host:port");
	expect_error("capacity =", "capacity = lots", ":5: [vendor] capacity", "not a size");
	expect_error("index =", "index = relative/dir", ":6: [vendor] index", "absolute");
	expect_error("fat =", "fat = 127.0.0.1:7000,,127.0.0.1:7001", ":7: [vendor] fat",
		     "empty entry");
	expect_error("fat =", "fat = nowhere", ":7: [vendor] fat", "host:port");
	expect_error("devices =", "devices = /a, /a", ":4: [vendor] devices", "listed twice");
	expect_error("devices =", "devices = d0", ":4: [vendor] devices", "absolute");
	expect_error(
	    "devices =",
	    "devices = /a1,/a2,/a3,/a4,/a5,/a6,/a7,/a8,/a9,/b1,/b2,/b3,/b4,/b5,/b6,/b7,/b8",
	    ":4: [vendor] devices", "more than 16");
	expect_error(NULL, "[vendor]\nworkers = 0\n", ":13: [vendor] workers", "out of range");
	expect_error(NULL, "[vendor]\nheartbeat_ms = 5\n", "[vendor] heartbeat_ms",
		     "out of range");
	expect_error(NULL, "[vendor]\nlog_level = loud\n", "[vendor] log_level", "not one of");
	expect_error(NULL, "[vendor]\ncolour = blue\n", ":13: [vendor] colour", "unknown key");
	expect_error(NULL, "[vendor]\nid = 4\n", ":13: [vendor] id", "given twice");
	expect_error(NULL, "this is not ini\n", ":12: syntax", "key = value");
	expect_error("key =", "", "key", "missing in [tls]");
}

static void test_device_not_a_directory(void **state)
{
	char text[1024], file[128];
	FILE *f;

	(void)state;
	snprintf(file, sizeof(file), "%s/plainfile", dir);
	f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(text, sizeof(text),
		 "[vendor]\nid = 1\nlisten = 127.0.0.1:1\ndevices = %s\nindex = /tmp/x\n"
		 "fat = 127.0.0.1:2\n[tls]\nca = a\ncert = b\nkey = c\n",
		 file);
	assert_int_equal(load(text), -EINVAL);
	assert_non_null(strstr(err, "not a directory"));
}

static void test_missing_file(void **state)
{
	(void)state;
	assert_int_equal(
	    vendor_config_load("/nonexistent/vendord.conf", &cfg, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "/nonexistent/vendord.conf"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_file),
	    cmocka_unit_test(test_errors_name_line_and_key),
	    cmocka_unit_test(test_device_not_a_directory),
	    cmocka_unit_test(test_missing_file),
	};
	char cmd[128];
	int rc;

	snprintf(dir, sizeof(dir), "/tmp/pstore-vconf-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	snprintf(conf, sizeof(conf), "%s/vendord.conf", dir);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		rc = 1;
	return rc;
}
