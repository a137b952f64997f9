/*
 * tls.c - TLS contexts: TLS 1.3 only, our certificate and key, the
 * deployment CA, and a verified peer certificate required on both sides.
 * Peers are then identified by their certificate's subject CN.
 *
 * Cipher suites: AES-128-GCM first.  It is ~1.4x cheaper per byte than
 * AES-256-GCM with AES-NI, and the channel carries chunk payloads that are
 * already sealed (AES-256-GCM, volume key) and digest-checked by every
 * vendor; docs/security.md says why 128-bit keys suffice for the channel.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common.h"
#include "xport.h"
#include "xport_int.h"

/* In order of preference; both sides set the same list. */
#define TLS13_SUITES                                                                           \
	"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

__attribute__((constructor)) static void xport_tls_global_init(void)
{
	/* A peer closing mid-write must be an error return, not a signal. */
	signal(SIGPIPE, SIG_IGN);
}

static void log_ssl_errors(const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "unknown error");
	log_err("%s %s: %s", what, file ? file : "", buf);
	ERR_clear_error();
}

struct xport_tls *xport_tls_new(const char *ca_file, const char *cert_file,
				const char *key_file, bool server)
{
	struct xport_tls *tls;
	SSL_CTX *ctx;

	if (!ca_file || !cert_file || !key_file) {
		log_err("TLS needs ca, cert and key files");
		return NULL;
	}
	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (!ctx) {
		log_ssl_errors("SSL_CTX_new", NULL);
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	if (SSL_CTX_set_ciphersuites(ctx, TLS13_SUITES) != 1) {
		log_ssl_errors("cannot set the TLS 1.3 cipher suites", NULL);
		goto fail;
	}
	if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
		log_ssl_errors("cannot load CA", ca_file);
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		log_ssl_errors("cannot load certificate", cert_file);
		goto fail;
	}
	xport_key_mode_check(key_file);
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		log_ssl_errors("cannot load key", key_file);
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		log_ssl_errors("key does not match certificate", key_file);
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(ctx, 4);
	SSL_CTX_set_mode(ctx,
			 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (server) {
		/* the server's order wins, so an older client gets AES-128 too */
		SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_num_tickets(ctx, 0);
	}
	tls = calloc(1, sizeof(*tls));
	if (!tls)
		goto fail;
	tls->ctx = ctx;
	tls->server = server;
	return tls;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

void xport_tls_free(struct xport_tls *tls)
{
	if (!tls)
		return;
	SSL_CTX_free(tls->ctx);
	xport_crl_free(tls->crl);
	free(tls);
}

void xport_peer_cn(SSL *ssl, char *out, size_t len)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);

	out[0] = '\0';
	if (!cert)
		return;
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, out,
				      (int)len) < 0)
		out[0] = '\0';
}
