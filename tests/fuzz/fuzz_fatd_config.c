/*
 * fuzz_fatd_config.c - fatd.conf (src/fatsrv/config.c, fat_config_load):
 * the input is written to a file and loaded as pstore-fatd -c FILE does.
 * A loaded config must hold NUL-terminated strings within their fields.
 */
#include <stdlib.h>
#include <string.h>

#include "fatsrv.h"
#include "fuzz_common.h"

static char path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	fuzz_path(path, sizeof(path), "fatd.conf");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fat_config c;
	char host[256];

	fuzz_write_file(path, data, size);
	if (fat_config_load(path, &c) != 0)
		return 0;
	if (!memchr(c.listen, '\0', sizeof(c.listen)) ||
	    !memchr(c.data, '\0', sizeof(c.data)) || !memchr(c.store, '\0', sizeof(c.store)) ||
	    !memchr(c.etcd, '\0', sizeof(c.etcd)) ||
	    !memchr(c.tls_key, '\0', sizeof(c.tls_key)))
		abort();
	fat_listen_host(c.listen, host, sizeof(host));
	return 0;
}
