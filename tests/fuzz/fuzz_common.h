/*
 * fuzz_common.h - what the libFuzzer targets of tests/fuzz share: a private
 * scratch directory (tmpfs when there is one), quiet logging, the fixed
 * Ed25519 key every target and the seed generator sign capability tokens
 * with, and the fake server side of the transport (fuzz_xport.c) that the
 * handler-level targets use instead of sockets.
 *
 * Targets do their expensive setup once (LLVMFuzzerInitialize or a first
 * call), never per input, so that each runs well over 100,000 inputs in 30 s.
 */
#ifndef PSTORE_FUZZ_COMMON_H
#define PSTORE_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk.h"

/* Seed of the fuzzing key (the generator signs seed tokens with it). */
extern const uint8_t fuzz_key_seed[32];

/* A directory of this process, created on first use and removed at exit
 * (rm -r).  Aborts if it cannot be made. */
const char *fuzz_tmpdir(void);
/* tmpdir/name into out (size len); aborts if it does not fit. */
void fuzz_path(char *out, size_t len, const char *name);
/* Writes data to path (truncating); aborts on failure. */
void fuzz_write_file(const char *path, const void *data, size_t size);
/* Logging off, unless FUZZ_LOG=error|warn|info|debug is set (to look at a
 * crash input). */
void fuzz_quiet(void);
/* The fuzzing key pair (private key: fuzz_key_seed), loaded once. */
struct cap_key *fuzz_key(void);

/* ---- fuzz_xport.c: the server side of src/transport without sockets ----
 * A handler receives a struct xport_req made by fuzz_req_new and replies
 * through xport_reply / xport_reply_error (replaced here: the reply is
 * packed exactly as the real transport would, checked to fit a frame, and
 * dropped).  Replies may come from another thread (vendor workers):
 * fuzz_req_wait blocks until the request was answered (or aborted). */
struct xport_req;
struct xport_req *fuzz_req_new(uint16_t type, const char *peer, const uint8_t *ctl,
			       size_t ctl_len, const uint8_t *data, size_t data_len);
/* Waits until every request made so far was answered; aborts after 10 s
 * (a handler that never replies is a bug worth a crash report). */
void fuzz_req_wait(void);
/* Replies seen: total and how many were MSG_ERROR. */
extern unsigned long fuzz_replies, fuzz_errors;

#endif
