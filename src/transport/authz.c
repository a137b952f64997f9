/*
 * authz.c - who the peer is and whether its certificate still counts: the
 * role parser of certificate CNs ("<role>:<id>") and certificate
 * revocation lists.
 *
 * With a CRL configured (xport_tls_set_crl), every new TLS connection
 * verifies the peer's chain against a store holding the CA and the CRL with
 * X509_V_FLAG_CRL_CHECK, so a revoked certificate fails the handshake.  The
 * store is replaced, never changed in place: a reload builds a new one and
 * swaps the pointer under a mutex; each SSL object holds its own reference
 * (SSL_set1_verify_cert_store), so handshakes in flight on other threads
 * keep the store they started with.  The CRL file is reloaded when it
 * changes (checked at most once a second, when a connection is made), and
 * on demand (xport_tls_reload_crl, SIGHUP in the daemons).  A CRL whose
 * signature is not the CA's, or that has expired, is refused: the previous
 * one stays in force.  Servers re-check an established connection's peer
 * against a newer CRL before its next request (xport_tls_crl_generation,
 * xport_tls_peer_revoked) and close it if the certificate was revoked.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "common.h"
#include "xport.h"
#include "xport_int.h"

#define XPORT_CRL_CHECK_MS 1000
#define XPORT_CRL_MAX 64 /* CRLs in one file */

struct xport_crl {
	pthread_mutex_t mu; /* protects everything below */
	char ca[PATH_MAX];
	char path[PATH_MAX];
	X509_STORE *store; /* CA + CRL, CRL_CHECK; one reference is ours */
	struct stat st;	   /* of the file loaded into store */
	uint64_t checked_ms;
	uint64_t crl_number; /* of the loaded CRL, for the logs */
	uint64_t generation; /* bumped by every load */
	unsigned revoked;
};

static const char *const role_names[] = {
    [XPORT_ROLE_FAT] = "fat",
    [XPORT_ROLE_VENDOR] = "vendor",
    [XPORT_ROLE_CLIENT] = "client",
    [XPORT_ROLE_ADMIN] = "admin",
};

int xport_peer_role(const char *cn, const char **id)
{
	const char *colon = cn ? strchr(cn, ':') : NULL;

	if (!colon || colon[1] == '\0')
		return -EACCES;
	for (size_t r = 1; r < ARRAY_SIZE(role_names); r++) {
		size_t n = strlen(role_names[r]);

		if ((size_t)(colon - cn) == n && memcmp(cn, role_names[r], n) == 0) {
			if (id)
				*id = colon + 1;
			return (int)r;
		}
	}
	return -EACCES;
}

const char *xport_role_name(int role)
{
	if (role <= 0 || (size_t)role >= ARRAY_SIZE(role_names))
		return "none";
	return role_names[role];
}

void xport_key_mode_check(const char *key_file)
{
	struct stat st;

	if (key_file && stat(key_file, &st) == 0 && (st.st_mode & 077))
		log_warn("private key %s may be read by others (mode %03o): chmod 600 it",
			 key_file, (unsigned)(st.st_mode & 0777));
}

static void crl_log_ssl(const char *what, const char *file)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "no details");
	log_err("%s %s: %s", what, file, buf);
	ERR_clear_error();
}

/* Every certificate of the CA file. */
static STACK_OF(X509) * read_cas(const char *ca_file)
{
	STACK_OF(X509) *cas = sk_X509_new_null();
	FILE *f = fopen(ca_file, "r");
	X509 *x;

	if (!f || !cas) {
		if (f)
			fclose(f);
		sk_X509_free(cas);
		return NULL;
	}
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
		if (!sk_X509_push(cas, x)) {
			X509_free(x);
			break;
		}
	ERR_clear_error(); /* the end of the file */
	fclose(f);
	if (sk_X509_num(cas) == 0) {
		sk_X509_free(cas);
		return NULL;
	}
	return cas;
}

/* Checks one CRL: signed by a CA of cas, not expired. */
static int crl_check(X509_CRL *crl, STACK_OF(X509) * cas, const char *path)
{
	const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
	bool signed_ok = false;

	for (int i = 0; i < sk_X509_num(cas) && !signed_ok; i++) {
		X509 *ca = sk_X509_value(cas, i);

		if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) == 0 &&
		    X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1)
			signed_ok = true;
	}
	ERR_clear_error();
	if (!signed_ok) {
		log_err("CRL %s is not signed by the CA: ignored", path);
		return -EACCES;
	}
	if (next && X509_cmp_current_time(next) <= 0) {
		log_err("CRL %s has expired (re-sign it with `pstore ca crl` and copy it here)",
			path);
		return -EKEYEXPIRED;
	}
	return 0;
}

/* A new store with the CA file and every CRL of path. */
static int build_store(struct xport_crl *c, X509_STORE **out, uint64_t *number,
		       unsigned *revoked)
{
	X509_STORE *store = X509_STORE_new();
	STACK_OF(X509) *cas = read_cas(c->ca);
	FILE *f = NULL;
	X509_CRL *crl;
	int n = 0, rc = -EINVAL;

	*number = 0;
	*revoked = 0;
	if (!store || !cas) {
		log_err("cannot read the CA certificates of %s", c->ca);
		goto out;
	}
	if (X509_STORE_load_file(store, c->ca) != 1) {
		crl_log_ssl("cannot load CA", c->ca);
		goto out;
	}
	f = fopen(c->path, "r");
	if (!f) {
		rc = -errno;
		log_err("cannot open CRL %s: %s", c->path, strerror(errno));
		goto out;
	}
	while (n < XPORT_CRL_MAX && (crl = PEM_read_X509_CRL(f, NULL, NULL, NULL)) != NULL) {
		ASN1_INTEGER *num;
		STACK_OF(X509_REVOKED) *rev = X509_CRL_get_REVOKED(crl);

		rc = crl_check(crl, cas, c->path);
		if (rc == 0 && X509_STORE_add_crl(store, crl) != 1) {
			crl_log_ssl("cannot use CRL", c->path);
			rc = -EINVAL;
		}
		num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
		if (num) {
			uint64_t v;

			if (ASN1_INTEGER_get_uint64(&v, num) == 1 && v > *number)
				*number = v;
			ASN1_INTEGER_free(num);
		}
		*revoked += rev ? (unsigned)sk_X509_REVOKED_num(rev) : 0;
		X509_CRL_free(crl);
		if (rc < 0)
			goto out;
		n++;
	}
	ERR_clear_error();
	if (n == 0) {
		log_err("CRL %s holds no CRL", c->path);
		rc = -EINVAL;
		goto out;
	}
	X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	*out = store;
	store = NULL;
	rc = 0;
out:
	if (f)
		fclose(f);
	sk_X509_pop_free(cas, X509_free);
	X509_STORE_free(store);
	return rc;
}

/* Loads the file into a new store and swaps it in.  Caller holds c->mu. */
static int crl_load_locked(struct xport_crl *c, const struct stat *st)
{
	X509_STORE *store = NULL;
	uint64_t number;
	unsigned revoked;
	int rc = build_store(c, &store, &number, &revoked);

	if (rc < 0)
		return rc;
	X509_STORE_free(c->store);
	c->store = store;
	c->st = *st;
	c->crl_number = number;
	c->revoked = revoked;
	c->generation++;
	log_info("CRL %s loaded (number %llu, %u revoked certificates)", c->path,
		 (unsigned long long)number, revoked);
	return 0;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Caller holds c->mu. */
static int crl_reload_locked(struct xport_crl *c, bool force)
{
	struct stat st;

	c->checked_ms = now_ms();
	if (stat(c->path, &st) < 0) {
		log_err("CRL %s: %s (the previous CRL stays in force)", c->path,
			strerror(errno));
		return -errno;
	}
	if (!force && same_file(&st, &c->st))
		return 0;
	return crl_load_locked(c, &st);
}

int xport_tls_set_crl(struct xport_tls *tls, const char *ca_file, const char *crl_file)
{
	struct xport_crl *c;
	struct stat st;
	int rc;

	if (!tls || !ca_file || !crl_file || !*crl_file)
		return -EINVAL;
	if (strlen(ca_file) >= PATH_MAX || strlen(crl_file) >= PATH_MAX)
		return -ENAMETOOLONG;
	if (tls->crl)
		return -EEXIST;
	if (stat(crl_file, &st) < 0) {
		log_err("CRL %s: %s", crl_file, strerror(errno));
		return -errno;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->mu, NULL);
	snprintf(c->ca, sizeof(c->ca), "%s", ca_file);
	snprintf(c->path, sizeof(c->path), "%s", crl_file);
	rc = crl_load_locked(c, &st);
	if (rc < 0) {
		xport_crl_free(c);
		return rc;
	}
	c->checked_ms = now_ms();
	tls->crl = c;
	return 0;
}

int xport_tls_reload_crl(struct xport_tls *tls)
{
	int rc;

	if (!tls || !tls->crl)
		return 0;
	pthread_mutex_lock(&tls->crl->mu);
	rc = crl_reload_locked(tls->crl, true);
	pthread_mutex_unlock(&tls->crl->mu);
	return rc;
}

void xport_crl_free(struct xport_crl *c)
{
	if (!c)
		return;
	X509_STORE_free(c->store);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

SSL *xport_tls_ssl_new(struct xport_tls *tls)
{
	SSL *ssl = SSL_new(tls->ctx);
	struct xport_crl *c = tls->crl;

	if (!ssl || !c)
		return ssl;
	pthread_mutex_lock(&c->mu);
	if (now_ms() - c->checked_ms >= XPORT_CRL_CHECK_MS)
		crl_reload_locked(c, false);
	if (SSL_set1_verify_cert_store(ssl, c->store) != 1) {
		pthread_mutex_unlock(&c->mu);
		SSL_free(ssl);
		return NULL;
	}
	pthread_mutex_unlock(&c->mu);
	X509_VERIFY_PARAM_set_flags(SSL_get0_param(ssl), X509_V_FLAG_CRL_CHECK);
	return ssl;
}

uint64_t xport_tls_crl_generation(struct xport_tls *tls)
{
	struct xport_crl *c = tls ? tls->crl : NULL;
	uint64_t g;

	if (!c)
		return 0;
	pthread_mutex_lock(&c->mu);
	if (now_ms() - c->checked_ms >= XPORT_CRL_CHECK_MS)
		crl_reload_locked(c, false);
	g = c->generation;
	pthread_mutex_unlock(&c->mu);
	return g;
}

bool xport_tls_peer_revoked(struct xport_tls *tls, SSL *ssl)
{
	struct xport_crl *c = tls ? tls->crl : NULL;
	X509 *peer = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	STACK_OF(X509) *chain = ssl ? SSL_get_peer_cert_chain(ssl) : NULL;
	X509_STORE_CTX *ctx;
	X509_STORE *store;
	bool revoked = false;

	if (!c || !peer)
		return false;
	pthread_mutex_lock(&c->mu);
	store = c->store;
	X509_STORE_up_ref(store);
	pthread_mutex_unlock(&c->mu);
	ctx = X509_STORE_CTX_new();
	if (ctx && X509_STORE_CTX_init(ctx, store, peer, chain) == 1) {
		X509_STORE_CTX_set_purpose(ctx, tls->server ? X509_PURPOSE_SSL_CLIENT
							    : X509_PURPOSE_SSL_SERVER);
		if (X509_verify_cert(ctx) != 1 &&
		    X509_STORE_CTX_get_error(ctx) == X509_V_ERR_CERT_REVOKED)
			revoked = true;
	}
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return revoked;
}
