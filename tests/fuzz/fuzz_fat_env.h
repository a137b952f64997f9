/*
 * fuzz_fat_env.h - a FAT server context for the fatd fuzz targets: the real
 * FAT logic on a real LMDB store in the scratch directory, seeded through
 * the logic itself with three vendors, volume "vol", a live lease with one
 * committed chunk and an applied commit.  The store is put back to that
 * seeded state every FUZZ_FAT_RESET inputs (a copy of the seeded file), so
 * it cannot grow without bound and a crash needs at most that many inputs
 * of history.
 */
#ifndef PSTORE_FUZZ_FAT_ENV_H
#define PSTORE_FUZZ_FAT_ENV_H

#include "fatsrv.h"

#define FUZZ_FAT_RESET 256
#define FUZZ_FAT_T0 1700000000000ull /* the fake wall clock starts here */

struct fuzz_fat {
	struct fat_ctx fc;
	uint64_t now; /* fake wall clock (ms) */
	uint8_t vol_id[FAT_VOLUME_ID_LEN];
	uint64_t lease_id;	  /* live lease of "vol" */
	uint8_t chunk_id[16];	  /* committed under lease_id on vendors 1, 2 */
	uint8_t request_id[16]; /* the applied commit */
	unsigned inputs;	  /* since the last reset */
};

/* The environment, created on first call. */
struct fuzz_fat *fuzz_fat_env(void);
/* Counts an input; every FUZZ_FAT_RESET inputs, back to the seeded store
 * and clock. */
void fuzz_fat_next(struct fuzz_fat *f);

#endif
