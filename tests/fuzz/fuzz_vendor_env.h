/*
 * fuzz_vendor_env.h - a vendor (struct vendord) for the vendord fuzz
 * targets: id 1, a real piece store (two device directories and the LMDB
 * index in the scratch directory), one disk worker and one forwarder
 * thread, and the fuzzing key as the FAT's key.  The seed generator builds
 * its puts and gets for this vendor with the constants below.
 */
#ifndef PSTORE_FUZZ_VENDOR_ENV_H
#define PSTORE_FUZZ_VENDOR_ENV_H

#include "vendor.h"

#define FUZZ_VENDOR_ID 1
#define FUZZ_VENDOR_NEXT 2 /* the next vendor of seeded chains */
#define FUZZ_LEASE_ID 77
#define FUZZ_TOKEN_EXPIRY 4102444800000ull /* 2100-01-01: seeds never expire */
#define FUZZ_TOKEN_LIMIT (1ull << 40)
extern const uint8_t fuzz_owner[CHUNK_OWNER_LEN];
extern const uint8_t fuzz_stored_id[CHUNK_ID_LEN]; /* stored at start */

struct vendord *fuzz_vendor_env(void);

#endif
