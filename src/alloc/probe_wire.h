/*
 * probe_wire.h - the UDP path probe: the one binary format shared by the
 * client's prober (src/alloc/probe.c) and the vendor's responder
 * (src/vendor/probe.c).
 *
 * A probe is one 64-byte datagram to the vendor's listen port (UDP); the
 * reply is one 64-byte datagram back, never larger than the request, so the
 * responder cannot amplify.  The request carries a cookie the vendor handed
 * out over TLS (MSG_PING -> PingReply.probe_cookie), bound to the client's
 * IP address: a vendor answers only peers that hold a TLS connection to it.
 * The client checks that the reply echoes its random nonce, so a forged
 * reply cannot fake a measurement.  The vendor sends replies with IP TTL
 * PROBE_TTL (IPv6: hop limit), so the client derives the hop count from
 * the TTL it receives (IP_RECVTTL).
 *
 * All integers little-endian.  Encoding and decoding are here and nowhere
 * else.
 */
#ifndef PSTORE_PROBE_WIRE_H
#define PSTORE_PROBE_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PROBE_LEN 64
#define PROBE_MAGIC_REQ 0x51505350u /* "PSPQ" */
#define PROBE_MAGIC_REP 0x41505350u /* "PSPA" */
#define PROBE_VERSION 1
#define PROBE_TTL 64 /* initial TTL / hop limit of replies */
#define PROBE_COOKIE_LEN 16
#define PROBE_NONCE_LEN 16

/* Layout (offsets):
 *   0 magic u32     4 version u8   5 reserved u8[3]
 *   8 vendor_id u32 (the vendor asked; a reply names itself)
 *  12 seq u32
 *  16 nonce[16]     (echoed)
 *  32 cookie[16]    (request) / load u32 + reserved (reply)
 *  48 t_send u64    (client clock, echoed)
 *  56 reserved u64 (zero)
 */
struct probe_msg {
	uint32_t magic;
	uint8_t version;
	uint32_t vendor_id;
	uint32_t seq;
	uint8_t nonce[PROBE_NONCE_LEN];
	uint8_t cookie[PROBE_COOKIE_LEN]; /* request only */
	uint32_t load;			  /* reply only */
	uint64_t t_send;
};

static inline void probe_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void probe_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t probe_get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static inline uint64_t probe_get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Writes m to buf[PROBE_LEN]; the magic decides request or reply. */
static inline void probe_encode(const struct probe_msg *m, uint8_t *buf)
{
	memset(buf, 0, PROBE_LEN);
	probe_put32(buf, m->magic);
	buf[4] = m->version;
	probe_put32(buf + 8, m->vendor_id);
	probe_put32(buf + 12, m->seq);
	memcpy(buf + 16, m->nonce, PROBE_NONCE_LEN);
	if (m->magic == PROBE_MAGIC_REQ)
		memcpy(buf + 32, m->cookie, PROBE_COOKIE_LEN);
	else
		probe_put32(buf + 32, m->load);
	probe_put64(buf + 48, m->t_send);
}

/* Decodes exactly PROBE_LEN bytes of the given magic; false if malformed. */
static inline bool probe_decode(const uint8_t *buf, size_t len, uint32_t magic,
				struct probe_msg *m)
{
	if (len != PROBE_LEN || probe_get32(buf) != magic || buf[4] != PROBE_VERSION)
		return false;
	memset(m, 0, sizeof(*m));
	m->magic = magic;
	m->version = buf[4];
	m->vendor_id = probe_get32(buf + 8);
	m->seq = probe_get32(buf + 12);
	memcpy(m->nonce, buf + 16, PROBE_NONCE_LEN);
	if (magic == PROBE_MAGIC_REQ)
		memcpy(m->cookie, buf + 32, PROBE_COOKIE_LEN);
	else
		m->load = probe_get32(buf + 32);
	m->t_send = probe_get64(buf + 48);
	return true;
}

#endif
