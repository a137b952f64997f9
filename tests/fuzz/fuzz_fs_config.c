/*
 * fuzz_fs_config.c - client.conf as pstorefs reads it (load_config and the
 * FAT address split in src/fs/main.c).  Those are static functions of the
 * daemon's main.c, so this target compiles that file itself (its main()
 * renamed) instead of changing it; the input is written to a file and
 * loaded as `pstorefs -o config=FILE` does.
 */
#define main pstorefs_main
#include "../../src/fs/main.c"
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

static void cfg_free(struct fs_config *c)
{
	char **s[] = {&c->config_file, &c->volume,  &c->state_dir,	 &c->cache_dir,
		      &c->log_file,    &c->fat,	    &c->tls_ca,		 &c->tls_cert,
		      &c->tls_key,     &c->tls_crl, &c->passphrase_file, &c->key_file};

	for (size_t i = 0; i < ARRAY_SIZE(s); i++) {
		free(*s[i]);
		*s[i] = NULL;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cmd_opts o = {.config = path};
	char **addrs = NULL, *fat;
	size_t n = 0;

	fuzz_write_file(path, data, size);
	if (load_config(&o) == 0 && fs.cfg.fat) {
		fat = strdup(fs.cfg.fat);
		if (fat && split_addrs(fat, &addrs, &n) == 0) {
			for (size_t i = 0; i < n; i++)
				if (addrs[i][0] == '\0')
					abort();
			free(addrs);
		}
		free(fat);
	}
	cfg_free(&fs.cfg);
	return 0;
}
