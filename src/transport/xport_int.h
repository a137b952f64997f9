/*
 * xport_int.h - what the transport's own files share; not for other modules.
 */
#ifndef PSTORE_XPORT_INT_H
#define PSTORE_XPORT_INT_H

#include <stdbool.h>

#include <openssl/ssl.h>
#include <protobuf-c/protobuf-c.h>

struct xport_tls {
	SSL_CTX *ctx;
	bool server;
};

/* Subject CN of the verified peer certificate, "" if none. */
void xport_peer_cn(SSL *ssl, char *out, size_t len);

/* Serializes msg (may be NULL: empty control part) into a malloc'd buffer. */
int xport_pack(const ProtobufCMessage *msg, uint8_t **out, size_t *len);

#endif
