/*
 * fuzz_vendord_config.c - vendord.conf (src/vendor/config.c,
 * vendor_config_load): the input is written to a file and loaded as
 * pstore-vendord -c FILE does.  The loader creates missing device
 * directories; this target is linked with --wrap=mkdir_p so that fuzzed
 * paths are checked but never created.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "vendor.h"

static char path[512];
unsigned long fuzz_mkdirs;

/* The loader's mkdir_p: accept an absolute path, create nothing. */
int __wrap_mkdir_p(const char *p, unsigned mode);
int __wrap_mkdir_p(const char *p, unsigned mode)
{
	(void)mode;
	fuzz_mkdirs += strlen(p) > 0;
	return p[0] == '/' ? 0 : -EINVAL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	fuzz_path(path, sizeof(path), "vendord.conf");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct vendor_config c;
	char err[512];

	fuzz_write_file(path, data, size);
	if (vendor_config_load(path, &c, err, sizeof(err)) != 0) {
		if (!memchr(err, '\0', sizeof(err)))
			abort();
		return 0;
	}
	if (c.id == 0 || c.n_devices < 1 || c.n_devices > VENDOR_MAX_DEVICES || c.n_fat < 1 ||
	    c.n_fat > VENDOR_MAX_FAT || c.workers < 1 || c.workers > VENDOR_MAX_WORKERS)
		abort();
	for (size_t i = 0; i < c.n_devices; i++)
		if (c.devices[i][0] != '/' || !memchr(c.devices[i], '\0', VENDOR_PATH_MAX))
			abort();
	return 0;
}
