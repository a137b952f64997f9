/*
 * fuzz_cli_config.c - client.conf as the pstore CLI reads it (conf_load and
 * split_fat in src/cli/main.c).  Those are static functions of the tool's
 * main.c, so this target compiles that file itself (its main() renamed)
 * instead of changing it; the input is written to a file and loaded as
 * `pstore -c FILE` does.
 */
#define main pstore_cli_main
#include "../../src/cli/main.c"
#undef main

#include "fuzz_common.h"

static char path[512];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_quiet();
	fuzz_path(path, sizeof(path), "client.conf");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cli c;

	fuzz_write_file(path, data, size);
	memset(&c, 0, sizeof(c));
	if (conf_load(path, &c.conf) != 0)
		return 0;
	if (!memchr(c.conf.fat, '\0', sizeof(c.conf.fat)) || c.conf.lease_ms == 0)
		abort();
	if (split_fat(&c) == 0 && (c.n_fat < 1 || c.n_fat > CLI_MAX_FAT))
		abort();
	return 0;
}
