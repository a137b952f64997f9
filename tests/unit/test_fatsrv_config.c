/*
 * test_fatsrv_config.c - fatd.conf parsing: the documented example works
 * (inline comments included), defaults apply, and every bad value, unknown
 * key or section, and missing required key is refused.
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
#include "fatsrv.h"

static const char *base_conf =
    "[fatd]\n"
    "id = 1\n"
    "listen = 127.0.0.1:7000\n"
    "data = /var/lib/pstore/fatd        ; LMDB store + signing.key\n"
    "lease_max_ms = 60000               ; longest lease granted\n"
    "vendor_timeout_ms = 6000           ; a vendor silent this long is not alive\n"
    "log_level = info\n"
    "[tls]\n"
    "ca = /etc/pstore/pki/ca.crt\n"
    "cert = /etc/pstore/pki/fatd.crt\n"
    "key = /etc/pstore/pki/fatd.key\n";

static int load(const char *text, struct fat_config *c)
{
	char path[] = "/tmp/test_fatsrv_config.XXXXXX";
	int fd = mkstemp(path), rc;

	assert_true(fd >= 0);
	assert_int_equal(write_full(fd, text, strlen(text)), 0);
	close(fd);
	rc = fat_config_load(path, c);
	unlink(path);
	return rc;
}

/* base_conf with the line starting with `key =` replaced by `line` (or
 * `line` appended when key is NULL). */
static int load_with(const char *key, const char *line, struct fat_config *c)
{
	char buf[4096] = "";
	const char *p = base_conf;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = (size_t)(nl - p) + 1;

		if (key && strncmp(p, key, strlen(key)) == 0 && p[strlen(key)] == ' ') {
			if (line) {
				strcat(buf, line);
				strcat(buf, "\n");
			}
		} else {
			strncat(buf, p, n);
		}
		p += n;
	}
	if (!key) {
		strcat(buf, line);
		strcat(buf, "\n");
	}
	return load(buf, c);
}

static void test_example(void **state)
{
	struct fat_config c;

	(void)state;
	assert_int_equal(load(base_conf, &c), 0);
	assert_int_equal(c.id, 1);
	assert_string_equal(c.listen, "127.0.0.1:7000");
	assert_string_equal(c.data, "/var/lib/pstore/fatd");
	assert_int_equal(c.lease_max_ms, 60000);
	assert_int_equal(c.vendor_timeout_ms, 6000);
	assert_int_equal(c.heartbeat_ms, 1000);
	assert_int_equal(c.map_size, 16ull << 30);
	assert_int_equal(c.log_level, LOG_INFO);
	assert_string_equal(c.tls_key, "/etc/pstore/pki/fatd.key");
	assert_int_equal(load_with("log_level", "log_level = debug", &c), 0);
	assert_int_equal(c.log_level, LOG_DEBUG);
	assert_int_equal(load_with(NULL, "[fatd]\nmap_size = 1G\nheartbeat_ms = 500", &c), 0);
	assert_int_equal(c.map_size, 1ull << 30);
	assert_int_equal(c.heartbeat_ms, 500);
}

static void test_bad(void **state)
{
	struct fat_config c;

	(void)state;
	assert_int_equal(load_with("id", "id = 0", &c), -EINVAL);
	assert_int_equal(load_with("id", "id = x", &c), -EINVAL);
	assert_int_equal(load_with("listen", "listen = nowhere", &c), -EINVAL);
	assert_int_equal(load_with("listen", NULL, &c), -EINVAL);
	assert_int_equal(load_with("data", NULL, &c), -EINVAL);
	assert_int_equal(load_with("data", "data =", &c), -EINVAL);
	assert_int_equal(load_with("lease_max_ms", "lease_max_ms = 10", &c), -EINVAL);
	assert_int_equal(load_with("lease_max_ms", "lease_max_ms = -5", &c), -EINVAL);
	assert_int_equal(load_with("vendor_timeout_ms", "vendor_timeout_ms = 99999999999", &c),
			 -EINVAL);
	assert_int_equal(load_with("log_level", "log_level = loud", &c), -EINVAL);
	assert_int_equal(load_with("key", NULL, &c), -EINVAL);
	assert_int_equal(load_with(NULL, "[fatd]\nbogus = 1", &c), -EINVAL);
	assert_int_equal(load_with(NULL, "[other]\nx = 1", &c), -EINVAL);
	assert_int_equal(load_with(NULL, "[fatd]\nmap_size = 12q", &c), -EINVAL);
	assert_int_equal(load_with(NULL, "[fatd]\nheartbeat_ms = 6000", &c), -EINVAL);
	assert_int_equal(load_with(NULL, "this is not ini", &c), -EINVAL);
	assert_int_equal(fat_config_load("/nonexistent/fatd.conf", &c), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_example),
	    cmocka_unit_test(test_bad),
	};

	log_init("test_fatsrv_config", LOG_ERR + 0);
	log_set_level(-1); /* the failures are expected: keep the output quiet */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
