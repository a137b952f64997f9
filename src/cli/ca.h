/*
 * ca.h - the deployment CA of `pstore ca` (cmd_ca.c: commands and the CA
 * directory; ca_x509.c: keys, certificates and CRLs through OpenSSL).
 */
#ifndef PSTORE_CLI_CA_H
#define PSTORE_CLI_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

enum ca_algo { CA_ALGO_P256 = 0, CA_ALGO_ED25519 = 1 };

#define CA_SERIAL_MAX 80 /* hex digits of a serial number + NUL, with room */

struct ca_revoked {
	char serial[CA_SERIAL_MAX]; /* upper-case hex, no leading zeros */
	int64_t when;		    /* revocation time, seconds since the epoch */
};

EVP_PKEY *ca_key_new(enum ca_algo algo);
/* Writes a PEM private key with mode 0600 (atomically).  0 or -EIO. */
int ca_key_write(EVP_PKEY *k, const char *path);
/* Reads a PEM private key; warns when group or others may read the file. */
EVP_PKEY *ca_key_read(const char *path);
int ca_cert_write(X509 *x, const char *path);
X509 *ca_cert_read(const char *path);
/* Self-signed CA certificate (CA:TRUE, pathlen 0, keyCertSign + cRLSign). */
X509 *ca_make_root(EVP_PKEY *key, const char *cn, unsigned days);
/* Leaf certificate for pub, subject CN = cn, signed by the CA; san is an
 * OpenSSL subjectAltName value ("IP:127.0.0.1,DNS:host") or NULL. */
X509 *ca_make_leaf(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *pub, const char *cn, const char *san,
		   unsigned days);
int ca_serial_hex(const X509 *x, char *out, size_t len);
int ca_cert_cn(const X509 *x, char *out, size_t len);
int ca_cert_not_after(const X509 *x, int64_t *epoch);
/* Signs a CRL (version 2, CRL number, authority key id) listing rev[] and
 * valid for `days`, and writes it to path atomically (mode 0644). */
int ca_crl_write(X509 *ca, EVP_PKEY *ca_key, const struct ca_revoked *rev, size_t n,
		 uint64_t crl_number, unsigned days, const char *path);

#endif
