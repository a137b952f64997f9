/*
 * xport_int.h - what the transport's own files share; not for other modules.
 */
#ifndef PSTORE_XPORT_INT_H
#define PSTORE_XPORT_INT_H

#include <stdbool.h>

#include <openssl/ssl.h>
#include <protobuf-c/protobuf-c.h>

struct xport_crl;

struct xport_tls {
	SSL_CTX *ctx;
	bool server;
	struct xport_crl *crl; /* authz.c: CRL checking, NULL if none */
};

/* authz.c: a new SSL object of tls, verifying peers against the current
 * CRL when one is configured (reloaded first if the file changed). */
SSL *xport_tls_ssl_new(struct xport_tls *tls);
void xport_crl_free(struct xport_crl *c);
/* The CRL's load count (0 without a CRL), after reloading it if the file
 * changed (checked at most once a second). */
uint64_t xport_tls_crl_generation(struct xport_tls *tls);
/* True if the peer certificate of an established ssl is revoked by the
 * current CRL. */
bool xport_tls_peer_revoked(struct xport_tls *tls, SSL *ssl);
/* Warns (log) when a private key file may be read by group or others. */
void xport_key_mode_check(const char *key_file);

/* Subject CN of the verified peer certificate, "" if none. */
void xport_peer_cn(SSL *ssl, char *out, size_t len);

/* Serializes msg (may be NULL: empty control part) into a malloc'd buffer. */
int xport_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *len);

#endif
