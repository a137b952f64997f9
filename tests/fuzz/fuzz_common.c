/*
 * fuzz_common.c - scratch directory, quiet logging and the fixed key shared
 * by the fuzz targets (fuzz_common.h).
 */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "fuzz_common.h"
#include "fuzz_vendor_env.h"

const uint8_t fuzz_key_seed[32] = {
    0x70, 0x73, 0x74, 0x6f, 0x72, 0x65, 0x2d, 0x66, 0x75, 0x7a, 0x7a,
    0x2d, 0x6b, 0x65, 0x79, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
    0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11,
};

const uint8_t fuzz_owner[CHUNK_OWNER_LEN] = {0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
					     0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f};
const uint8_t fuzz_stored_id[CHUNK_ID_LEN] = {0x5e, 0xed, 0x5e, 0xed, 0x5e, 0xed, 0x5e, 0xed,
					      0x5e, 0xed, 0x5e, 0xed, 0x5e, 0xed, 0x5e, 0xed};

static char tmpdir[256];
static pid_t tmpdir_owner;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void tmpdir_cleanup(void)
{
	if (tmpdir[0] && getpid() == tmpdir_owner)
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_tmpdir(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	if (tmpdir[0])
		return tmpdir;
	snprintf(tmpdir, sizeof(tmpdir), "%s/pstore-fuzz.XXXXXX", base);
	if (!mkdtemp(tmpdir)) {
		perror("fuzz: mkdtemp");
		abort();
	}
	tmpdir_owner = getpid();
	atexit(tmpdir_cleanup);
	return tmpdir;
}

void fuzz_path(char *out, size_t len, const char *name)
{
	int n = snprintf(out, len, "%s/%s", fuzz_tmpdir(), name);

	if (n < 0 || (size_t)n >= len)
		abort();
}

void fuzz_write_file(const char *path, const void *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || write_full(fd, data, size) < 0) {
		perror(path);
		abort();
	}
	close(fd);
}

void fuzz_quiet(void)
{
	const char *lvl = getenv("FUZZ_LOG");

	log_init("fuzz", -1);
	if (lvl && log_level_parse(lvl) >= 0)
		log_set_level(log_level_parse(lvl));
}

struct cap_key *fuzz_key(void)
{
	static struct cap_key *key;
	char path[512];

	if (key)
		return key;
	fuzz_path(path, sizeof(path), "fuzz.key");
	fuzz_write_file(path, fuzz_key_seed, sizeof(fuzz_key_seed));
	key = cap_key_load(path, false);
	if (!key)
		abort();
	return key;
}
