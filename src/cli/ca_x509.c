/*
 * ca_x509.c - the deployment CA's cryptography, on OpenSSL's C API: key
 * pairs (P-256 or Ed25519), the self-signed CA certificate, leaf
 * certificates whose subject CN is "<role>:<id>", and CRLs.  Files are
 * written atomically (temporary file + rename) and private keys with mode
 * 0600.  The CA directory's layout and the commands are cmd_ca.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "common.h"

static void ssl_err(const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "unknown error");
	fprintf(stderr, "pstore ca: %s: %s\n", what, buf);
	ERR_clear_error();
}

EVP_PKEY *ca_key_new(enum ca_algo algo)
{
	EVP_PKEY *k = algo == CA_ALGO_ED25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
					      : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	if (!k)
		ssl_err("key generation");
	return k;
}

/* Opens path.tmp for writing with mode, as a stdio stream. */
static FILE *tmp_open(const char *path, char *tmp, size_t tmplen, mode_t mode)
{
	int fd;
	FILE *f;

	if ((size_t)snprintf(tmp, tmplen, "%s.tmp", path) >= tmplen)
		return NULL;
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		fprintf(stderr, "pstore ca: cannot create %s: %s\n", tmp, strerror(errno));
		return NULL;
	}
	/* The umask must not widen nor narrow what we ask for. */
	if (fchmod(fd, mode) < 0) {
		close(fd);
		unlink(tmp);
		return NULL;
	}
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(tmp);
	}
	return f;
}

/* fflush + fsync + fclose + rename; 0 or -EIO (the temporary is removed). */
static int tmp_commit(FILE *f, const char *tmp, const char *path, bool ok)
{
	if (ok && (fflush(f) != 0 || fsync(fileno(f)) != 0))
		ok = false;
	if (fclose(f) != 0)
		ok = false;
	if (!ok || rename(tmp, path) < 0) {
		fprintf(stderr, "pstore ca: cannot write %s\n", path);
		unlink(tmp);
		return -EIO;
	}
	return 0;
}

int ca_key_write(EVP_PKEY *k, const char *path)
{
	char tmp[4200];
	FILE *f = tmp_open(path, tmp, sizeof(tmp), 0600);

	if (!f)
		return -EIO;
	return tmp_commit(f, tmp, path,
			  PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1);
}

EVP_PKEY *ca_key_read(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;
	struct stat st;

	if (!f) {
		fprintf(stderr, "pstore ca: cannot open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 077))
		fprintf(stderr,
			"pstore ca: warning: %s is readable by others (mode %03o); "
			"chmod 600 it\n",
			path, (unsigned)(st.st_mode & 0777));
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!k)
		ssl_err(path);
	return k;
}

int ca_cert_write(X509 *x, const char *path)
{
	char tmp[4200];
	FILE *f = tmp_open(path, tmp, sizeof(tmp), 0644);

	if (!f)
		return -EIO;
	return tmp_commit(f, tmp, path, PEM_write_X509(f, x) == 1);
}

X509 *ca_cert_read(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	if (!f) {
		fprintf(stderr, "pstore ca: cannot open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		ssl_err(path);
	return x;
}

/* Digest for signing: Ed25519 signs the message itself (no digest). */
static const EVP_MD *sign_md(EVP_PKEY *k)
{
	return EVP_PKEY_get_id(k) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok;

	if (!e) {
		ssl_err(value);
		return -EINVAL;
	}
	ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok ? 0 : -ENOMEM;
}

/* A random positive 127-bit serial number. */
static int set_serial(X509 *x)
{
	BIGNUM *bn = BN_new();
	int ok = bn && BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1 &&
		 !BN_is_zero(bn) && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));

	BN_free(bn);
	return ok ? 0 : -EIO;
}

static int set_validity(X509 *x, unsigned days)
{
	/* Five minutes of slack for clocks a little behind ours. */
	if (!X509_gmtime_adj(X509_getm_notBefore(x), -300) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL))
		return -EINVAL;
	return 0;
}

static X509_NAME *name_cn(const char *cn)
{
	X509_NAME *n = X509_NAME_new();

	if (n && !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
					     -1, -1, 0)) {
		X509_NAME_free(n);
		return NULL;
	}
	return n;
}

X509 *ca_make_root(EVP_PKEY *key, const char *cn, unsigned days)
{
	X509 *x = X509_new();
	X509_NAME *n = name_cn(cn);
	X509V3_CTX ctx;

	if (!x || !n || !X509_set_version(x, 2) || set_serial(x) < 0 ||
	    set_validity(x, days) < 0 || !X509_set_subject_name(x, n) ||
	    !X509_set_issuer_name(x, n) || !X509_set_pubkey(x, key))
		goto fail;
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
	    add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    add_ext(x, &ctx, NID_subject_key_identifier, "hash") < 0)
		goto fail;
	if (!X509_sign(x, key, sign_md(key))) {
		ssl_err("signing the CA certificate");
		goto fail;
	}
	X509_NAME_free(n);
	return x;
fail:
	X509_NAME_free(n);
	X509_free(x);
	return NULL;
}

X509 *ca_make_leaf(X509 *ca, EVP_PKEY *ca_key, EVP_PKEY *pub, const char *cn, const char *san,
		   unsigned days)
{
	X509 *x = X509_new();
	X509_NAME *n = name_cn(cn);
	X509V3_CTX ctx;

	if (!x || !n || !X509_set_version(x, 2) || set_serial(x) < 0 ||
	    set_validity(x, days) < 0 || !X509_set_subject_name(x, n) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(ca)) || !X509_set_pubkey(x, pub))
		goto fail;
	/* Never outlive the CA: a chain with an expired CA does not verify anyway. */
	if (ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca)) > 0 &&
	    !X509_set1_notAfter(x, X509_get0_notAfter(ca)))
		goto fail;
	X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
	if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") < 0 ||
	    add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
	    add_ext(x, &ctx, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") < 0)
		goto fail;
	if (san && *san && add_ext(x, &ctx, NID_subject_alt_name, san) < 0)
		goto fail;
	if (!X509_sign(x, ca_key, sign_md(ca_key))) {
		ssl_err("signing the certificate");
		goto fail;
	}
	X509_NAME_free(n);
	return x;
fail:
	X509_NAME_free(n);
	X509_free(x);
	return NULL;
}

int ca_serial_hex(const X509 *x, char *out, size_t len)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	const char *h = hex;
	int rc = 0;

	/* The same spelling as cmd_ca.c's normalized serials: no leading zeros. */
	while (h && h[0] == '0' && h[1] != '\0')
		h++;
	if (!h || strlen(h) >= len)
		rc = -EINVAL;
	else
		strcpy(out, h);
	OPENSSL_free(hex);
	BN_free(bn);
	return rc;
}

int ca_cert_cn(const X509 *x, char *out, size_t len)
{
	out[0] = '\0';
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, out, (int)len) <
	    0)
		return -EINVAL;
	return 0;
}

int ca_cert_not_after(const X509 *x, int64_t *epoch)
{
	struct tm tm;

	if (!ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm))
		return -EINVAL;
	*epoch = (int64_t)timegm(&tm);
	return 0;
}

int ca_crl_write(X509 *ca, EVP_PKEY *ca_key, const struct ca_revoked *rev, size_t n,
		 uint64_t crl_number, unsigned days, const char *path)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = ASN1_TIME_new();
	ASN1_INTEGER *num = ASN1_INTEGER_new();
	X509V3_CTX ctx;
	X509_EXTENSION *e = NULL;
	char tmp[4200];
	FILE *f;
	int rc = -EIO;

	if (!crl || !t || !num || !X509_CRL_set_version(crl, 1) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca)) ||
	    !X509_gmtime_adj(t, 0) || !X509_CRL_set1_lastUpdate(crl, t) ||
	    !X509_time_adj_ex(t, (int)days, 0, NULL) || !X509_CRL_set1_nextUpdate(crl, t))
		goto out;
	for (size_t i = 0; i < n; i++) {
		X509_REVOKED *r = X509_REVOKED_new();
		BIGNUM *bn = NULL;
		ASN1_INTEGER *serial = NULL;
		ASN1_TIME *when = ASN1_TIME_new();
		bool ok = r && when && BN_hex2bn(&bn, rev[i].serial) > 0 &&
			  (serial = BN_to_ASN1_INTEGER(bn, NULL)) != NULL &&
			  ASN1_TIME_set(when, (time_t)rev[i].when) &&
			  X509_REVOKED_set_serialNumber(r, serial) &&
			  X509_REVOKED_set_revocationDate(r, when) &&
			  X509_CRL_add0_revoked(crl, r);

		BN_free(bn);
		ASN1_INTEGER_free(serial);
		ASN1_TIME_free(when);
		if (!ok) {
			X509_REVOKED_free(r);
			fprintf(stderr, "pstore ca: bad revoked serial '%s'\n", rev[i].serial);
			goto out;
		}
	}
	X509_CRL_sort(crl);
	X509V3_set_ctx(&ctx, ca, NULL, NULL, crl, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
	if (!e || !X509_CRL_add_ext(crl, e, -1) || !ASN1_INTEGER_set_uint64(num, crl_number) ||
	    !X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0))
		goto out;
	if (!X509_CRL_sign(crl, ca_key, sign_md(ca_key))) {
		ssl_err("signing the CRL");
		goto out;
	}
	f = tmp_open(path, tmp, sizeof(tmp), 0644);
	if (!f)
		goto out;
	rc = tmp_commit(f, tmp, path, PEM_write_X509_CRL(f, crl) == 1);
out:
	if (rc < 0 && ERR_peek_error())
		ssl_err("making the CRL");
	X509_EXTENSION_free(e);
	ASN1_INTEGER_free(num);
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	return rc;
}
