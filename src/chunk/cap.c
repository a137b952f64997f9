/*
 * cap.c - capability tokens: the FAT server signs what a vendor may store
 * (owner, vendor, lease, byte limit, expiry) with Ed25519; vendors verify.
 * Keys are raw 32-byte Ed25519 keys (private key file mode 0600).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "chunk.h"
#include "common.h"
#include "pstore.pb-c.h"

struct cap_key {
	EVP_PKEY *pkey;
	bool has_private;
};

#define CAP_SIG_LEN 64
#define CAP_TOKEN_MAX 512

static struct cap_key *cap_key_wrap(EVP_PKEY *pkey, bool priv)
{
	struct cap_key *k;

	if (!pkey)
		return NULL;
	k = calloc(1, sizeof(*k));
	if (!k) {
		EVP_PKEY_free(pkey);
		return NULL;
	}
	k->pkey = pkey;
	k->has_private = priv;
	return k;
}

struct cap_key *cap_key_load(const char *path, bool create)
{
	uint8_t raw[32];
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		char tmp[4096], dir[4096], *slash;

		/* Written whole under a temporary name, then linked in and the
		 * directory fsynced: a crash leaves either no key or the whole
		 * key, durably (never an empty file, never a lost entry). */
		if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp) ||
		    snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
			log_err("%s: path too long", path);
			return NULL;
		}
		slash = strrchr(dir, '/');
		if (slash)
			*(slash == dir ? slash + 1 : slash) = '\0';
		else
			snprintf(dir, sizeof(dir), ".");
		random_fill(raw, sizeof(raw));
		unlink(tmp); /* left by a crash before the link */
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			log_err("%s: cannot create signing key: %s", path, strerror(errno));
			return NULL;
		}
		rc = write_full(fd, raw, sizeof(raw));
		if (rc == 0 && fsync(fd) < 0)
			rc = -errno;
		close(fd);
		if (rc == 0 && link(tmp, path) < 0)
			rc = -errno;
		unlink(tmp);
		if (rc == 0)
			rc = fsync_dir(dir);
		if (rc == -EEXIST) /* another process created it meanwhile */
			return cap_key_load(path, false);
		if (rc < 0) {
			log_err("%s: cannot write signing key: %s", path, strerror(-rc));
			return NULL;
		}
		log_info("created signing key %s", path);
	} else {
		if (fd < 0) {
			log_err("%s: %s", path, strerror(errno));
			return NULL;
		}
		rc = pread_full(fd, raw, sizeof(raw), 0);
		close(fd);
		if (rc < 0) {
			log_err("%s: not a 32-byte Ed25519 key", path);
			return NULL;
		}
	}
	return cap_key_wrap(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, 32),
			    true);
}

struct cap_key *cap_key_from_public(const uint8_t pub[32])
{
	return cap_key_wrap(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, 32),
			    false);
}

int cap_key_public(const struct cap_key *k, uint8_t pub[32])
{
	size_t len = 32;

	if (EVP_PKEY_get_raw_public_key(k->pkey, pub, &len) != 1 || len != 32)
		return -EINVAL;
	return 0;
}

void cap_key_free(struct cap_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

int cap_token_sign(const struct cap_key *k, const struct cap_token *t, uint8_t **out,
		   size_t *out_len)
{
	Pstore__CapToken ct = PSTORE__CAP_TOKEN__INIT;
	Pstore__SignedToken st = PSTORE__SIGNED_TOKEN__INIT;
	uint8_t body[256], sig[CAP_SIG_LEN];
	size_t blen, siglen = sizeof(sig);
	EVP_MD_CTX *md;
	int rc = -EIO;

	if (!k->has_private)
		return -EINVAL;
	ct.owner.data = (uint8_t *)t->owner;
	ct.owner.len = CHUNK_OWNER_LEN;
	ct.vendor_id = t->vendor_id;
	ct.lease_id = t->lease_id;
	ct.byte_limit = t->byte_limit;
	ct.expiry_ms = t->expiry_ms;
	blen = pstore__cap_token__get_packed_size(&ct);
	if (blen > sizeof(body))
		return -EMSGSIZE;
	pstore__cap_token__pack(&ct, body);
	md = EVP_MD_CTX_new();
	if (!md)
		return -ENOMEM;
	if (EVP_DigestSignInit(md, NULL, NULL, NULL, k->pkey) != 1 ||
	    EVP_DigestSign(md, sig, &siglen, body, blen) != 1 || siglen != CAP_SIG_LEN)
		goto out;
	st.body.data = body;
	st.body.len = blen;
	st.sig.data = sig;
	st.sig.len = siglen;
	*out_len = pstore__signed_token__get_packed_size(&st);
	*out = malloc(*out_len);
	if (!*out) {
		rc = -ENOMEM;
		goto out;
	}
	pstore__signed_token__pack(&st, *out);
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	return rc;
}

int cap_token_verify(const struct cap_key *k, const void *buf, size_t len, struct cap_token *t)
{
	Pstore__SignedToken *st = NULL;
	Pstore__CapToken *ct = NULL;
	EVP_MD_CTX *md = NULL;
	int rc = -EBADMSG;

	if (!buf || len == 0 || len > CAP_TOKEN_MAX)
		return -EBADMSG;
	st = pstore__signed_token__unpack(NULL, len, buf);
	if (!st || st->sig.len != CAP_SIG_LEN || st->body.len == 0 || st->body.len > 256)
		goto out;
	md = EVP_MD_CTX_new();
	if (!md) {
		rc = -ENOMEM;
		goto out;
	}
	if (EVP_DigestVerifyInit(md, NULL, NULL, NULL, k->pkey) != 1 ||
	    EVP_DigestVerify(md, st->sig.data, st->sig.len, st->body.data, st->body.len) != 1) {
		rc = -EACCES;
		goto out;
	}
	ct = pstore__cap_token__unpack(NULL, st->body.len, st->body.data);
	if (!ct || ct->owner.len != CHUNK_OWNER_LEN)
		goto out;
	memcpy(t->owner, ct->owner.data, CHUNK_OWNER_LEN);
	t->vendor_id = ct->vendor_id;
	t->lease_id = ct->lease_id;
	t->byte_limit = ct->byte_limit;
	t->expiry_ms = ct->expiry_ms;
	rc = 0;
out:
	if (ct)
		pstore__cap_token__free_unpacked(ct, NULL);
	if (st)
		pstore__signed_token__free_unpacked(st, NULL);
	EVP_MD_CTX_free(md);
	return rc;
}

int cap_key_sign_raw(const struct cap_key *k, const void *msg, size_t len, uint8_t sig[64])
{
	EVP_MD_CTX *md;
	size_t siglen = CAP_SIG_LEN;
	int rc = -EIO;

	if (!k->has_private)
		return -EINVAL;
	md = EVP_MD_CTX_new();
	if (!md)
		return -ENOMEM;
	if (EVP_DigestSignInit(md, NULL, NULL, NULL, k->pkey) == 1 &&
	    EVP_DigestSign(md, sig, &siglen, msg, len) == 1 && siglen == CAP_SIG_LEN)
		rc = 0;
	EVP_MD_CTX_free(md);
	return rc;
}

int cap_key_verify_raw(const struct cap_key *k, const void *msg, size_t len,
		       const uint8_t sig[64])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int rc = -EACCES;

	if (!md)
		return -ENOMEM;
	if (EVP_DigestVerifyInit(md, NULL, NULL, NULL, k->pkey) == 1 &&
	    EVP_DigestVerify(md, sig, CAP_SIG_LEN, msg, len) == 1)
		rc = 0;
	EVP_MD_CTX_free(md);
	return rc;
}
