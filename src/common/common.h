/*
 * common.h - small, boring helpers shared by every pstore binary: logging,
 * time, randomness, hex, file I/O that retries short reads and writes,
 * size parsing and host:port parsing.  Nothing here knows about chunks,
 * vendors or the FAT.
 */
#ifndef PSTORE_COMMON_H
#define PSTORE_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* log.c */
enum log_level { LOG_ERR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };
void log_init(const char *prog, int level);
void log_set_level(int level);
int log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -1 if unknown. */
int log_level_parse(const char *s);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                         \
	do {                                                                                   \
		if (log_get_level() >= LOG_DEBUG)                                              \
			log_msg(LOG_DEBUG, __VA_ARGS__);                                       \
	} while (0)

/* util.c */
uint64_t now_ms(void);	/* CLOCK_MONOTONIC in milliseconds */
uint64_t now_us(void);	/* CLOCK_MONOTONIC in microseconds */
uint64_t wall_ms(void); /* CLOCK_REALTIME in milliseconds */
/* Cryptographically strong random bytes; aborts if the kernel cannot give them. */
void random_fill(void *buf, size_t len);
uint64_t random_u64(void);
/* Writes 2*len hex digits and a NUL into out (size >= 2*len+1). */
void hex_encode(const uint8_t *in, size_t len, char *out);
/* Decodes exactly 2*len hex digits; returns 0 or -EINVAL. */
int hex_decode(const char *in, uint8_t *out, size_t len);
/* Full read/write at an offset, retrying on EINTR and short transfers.
 * Return 0, or -errno; pread_full returns -ENODATA on early EOF. */
int pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
int pread_full(int fd, void *buf, size_t len, uint64_t off);
int write_full(int fd, const void *buf, size_t len);
/* Reads a whole small file (<= max bytes) into a malloc'd, NUL-terminated buffer. */
int read_file(const char *path, size_t max, char **out, size_t *out_len);
/* mkdir -p with mode; 0 or -errno. */
int mkdir_p(const char *path, unsigned mode);
/* fsync of the directory holding path (or path itself if it is a directory). */
int fsync_dir(const char *dir);
/* "4M", "512k", "10G", "123" -> bytes.  0 or -EINVAL/-ERANGE. */
int parse_size(const char *s, uint64_t *out);
/* "true/yes/on/1" and "false/no/off/0"; 0 or -EINVAL. */
int parse_bool(const char *s, bool *out);
/* Splits "host:port" or "[v6]:port" into host (size hostlen) and port; 0 or -EINVAL. */
int parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);
/* Parses an unsigned decimal integer fully; 0 or -EINVAL/-ERANGE. */
int parse_u64(const char *s, uint64_t *out);

/* privdrop.c: as root, switch to user (its uid, gid, no other groups) for
 * good.  Empty user, not root, or no such user: logs why and returns 0
 * without a change.  -errno if the switch fails. */
int privdrop_to(const char *user);

#endif
