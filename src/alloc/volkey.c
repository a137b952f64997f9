/*
 * volkey.c - the volume key on the client (docs/encryption.md): reading the
 * secret that protects it (key file, passphrase file, $PSTORE_PASSPHRASE,
 * or the terminal without echo), making and re-wrapping it, opening it for
 * a mounted volume, and the one place where the metadata mirror is sealed
 * on its way to the FAT (alloc_commit) and opened on its way back
 * (alloc_meta_list).  The cryptography itself is src/chunk/aead.c; chunk
 * payloads are sealed in upload.c and opened in fetch.c with a->vk.
 *
 * Secrets are never logged; buffers that held them are wiped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "aead.h"
#include "alloc_int.h"

#define SECRET_BUF (VKEY_SECRET_MAX + 1)

/* The whole file (key file) or its first line (passphrase file). */
static int secret_from_file(const char *path, bool first_line, uint8_t *buf, size_t *len,
			    char *err, size_t errlen)
{
	char *data = NULL;
	size_t n = 0;
	int rc;

	rc = read_file(path, VKEY_SECRET_MAX + 2, &data, &n);
	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", path,
			 rc == -EFBIG ? "too large" : strerror(-rc));
		return rc;
	}
	if (first_line) {
		char *nl = memchr(data, '\n', n);

		if (nl)
			n = (size_t)(nl - data);
		if (n && data[n - 1] == '\r')
			n--;
	}
	if (n > VKEY_SECRET_MAX) {
		snprintf(err, errlen, "%s: over %d bytes", path, VKEY_SECRET_MAX);
		rc = -EINVAL;
	} else {
		memcpy(buf, data, n);
		*len = n;
	}
	vkey_wipe(data, n);
	free(data);
	return rc;
}

/* One line from the terminal, echo off.  0, -ENOTTY, -EIO. */
static int prompt_line(const char *prompt, uint8_t *buf, size_t *len)
{
	struct termios old, quiet;
	char line[SECRET_BUF + 2];
	FILE *tty;
	size_t n;
	int fd, rc = 0;

	fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -ENOTTY;
	tty = fdopen(fd, "r+");
	if (!tty) {
		close(fd);
		return -EIO;
	}
	if (tcgetattr(fd, &old) < 0) {
		fclose(tty);
		return -ENOTTY;
	}
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	fputs(prompt, tty);
	fflush(tty);
	(void)tcsetattr(fd, TCSAFLUSH, &quiet);
	if (!fgets(line, sizeof(line), tty))
		rc = -EIO;
	(void)tcsetattr(fd, TCSAFLUSH, &old);
	fputs("\n", tty);
	fclose(tty);
	if (rc < 0)
		return rc;
	n = strcspn(line, "\r\n");
	if (n > VKEY_SECRET_MAX) {
		vkey_wipe(line, sizeof(line));
		return -EINVAL;
	}
	memcpy(buf, line, n);
	*len = n;
	vkey_wipe(line, sizeof(line));
	return 0;
}

int alloc_secret_read(const struct alloc_secret_src *src, const char *what, bool confirm,
		      uint8_t *buf, size_t *len, int *kind, char *err, size_t errlen)
{
	const char *env = src->env ? getenv("PSTORE_PASSPHRASE") : NULL;
	int rc;

	*len = 0;
	err[0] = '\0';
	if (src->key_file && src->key_file[0]) {
		*kind = VKEY_KEYFILE;
		rc = secret_from_file(src->key_file, false, buf, len, err, errlen);
	} else if (src->passphrase_file && src->passphrase_file[0]) {
		*kind = VKEY_PASSPHRASE;
		rc = secret_from_file(src->passphrase_file, true, buf, len, err, errlen);
	} else if (env && env[0]) {
		*kind = VKEY_PASSPHRASE;
		*len = strlen(env);
		rc = *len <= VKEY_SECRET_MAX ? 0 : -EINVAL;
		if (rc == 0)
			memcpy(buf, env, *len);
		else
			snprintf(err, errlen, "PSTORE_PASSPHRASE is over %d bytes",
				 VKEY_SECRET_MAX);
	} else if (src->prompt && isatty(STDIN_FILENO)) {
		char prompt[160];
		uint8_t again[SECRET_BUF];
		size_t alen = 0;

		*kind = VKEY_PASSPHRASE;
		snprintf(prompt, sizeof(prompt), "Passphrase for %s: ", what);
		rc = prompt_line(prompt, buf, len);
		if (rc == 0 && confirm) {
			snprintf(prompt, sizeof(prompt), "Passphrase for %s (again): ", what);
			rc = prompt_line(prompt, again, &alen);
			if (rc == 0 && (alen != *len || memcmp(again, buf, alen) != 0)) {
				snprintf(err, errlen, "the passphrases differ");
				rc = -EINVAL;
			}
			vkey_wipe(again, sizeof(again));
		}
		if (rc < 0 && !err[0])
			snprintf(err, errlen, "cannot read a passphrase from the terminal: %s",
				 strerror(-rc));
	} else {
		snprintf(err, errlen,
			 "%s needs a passphrase or key file: give a key file or passphrase "
			 "file, or set PSTORE_PASSPHRASE",
			 what);
		return -ENOENT;
	}
	if (rc == 0 && *len < VKEY_SECRET_MIN) {
		snprintf(err, errlen, "the %s is too short (at least %d bytes)",
			 *kind == VKEY_KEYFILE ? "key file" : "passphrase", VKEY_SECRET_MIN);
		rc = -EINVAL;
	}
	if (rc < 0)
		vkey_wipe(buf, SECRET_BUF);
	return rc;
}

int alloc_key_new(const uint8_t *secret, size_t len, int kind, uint8_t *blob, size_t *blob_len)
{
	uint8_t master[VKEY_LEN];
	int rc;

	random_fill(master, sizeof(master));
	rc = vkey_wrap(master, (enum vkey_kind)kind, secret, len, blob);
	vkey_wipe(master, sizeof(master));
	if (rc == 0)
		*blob_len = VKEY_BLOB_LEN;
	return rc;
}

static const char *kind_name(int kind)
{
	return kind == VKEY_KEYFILE ? "a key file" : "a passphrase";
}

/* Opens blob with the secret of src; master out.  Messages in err. */
static int open_blob(const char *name, const uint8_t *blob, size_t blen,
		     const struct alloc_secret_src *src, uint8_t master[VKEY_LEN], char *err,
		     size_t errlen)
{
	uint8_t secret[SECRET_BUF];
	char what[96];
	size_t slen = 0;
	int bkind, kind = 0, rc;

	bkind = vkey_blob_kind(blob, blen);
	if (bkind < 0) {
		snprintf(err, errlen, "volume %s: its wrapped key is malformed", name);
		return bkind;
	}
	snprintf(what, sizeof(what), "volume %s", name);
	rc = alloc_secret_read(src, what, false, secret, &slen, &kind, err, errlen);
	if (rc < 0)
		return rc;
	if (kind != bkind) {
		snprintf(err, errlen, "volume %s is protected by %s, and %s was given", name,
			 kind_name(bkind), kind_name(kind));
		rc = -EACCES;
		goto out;
	}
	rc = vkey_unwrap(blob, blen, secret, slen, master);
	if (rc == -EACCES)
		snprintf(err, errlen, "volume %s: wrong %s", name,
			 bkind == VKEY_KEYFILE ? "key file" : "passphrase");
	else if (rc < 0)
		snprintf(err, errlen, "volume %s: cannot open its key: %s", name,
			 strerror(-rc));
out:
	vkey_wipe(secret, sizeof(secret));
	return rc;
}

int alloc_volume_unlock(struct alloc_ctx *a, const struct alloc_secret_src *src, char *err,
			size_t errlen)
{
	struct alloc_volume vol;
	uint8_t master[VKEY_LEN];
	struct vkey *vk;
	int rc;

	err[0] = '\0';
	rc = alloc_volume_get(a, &vol);
	if (rc < 0) {
		snprintf(err, errlen, "no volume opened");
		return rc;
	}
	if (vol.key_blob_len == 0)
		return 0; /* an unencrypted volume */
	rc = open_blob(vol.name, vol.key_blob, vol.key_blob_len, src, master, err, errlen);
	if (rc < 0)
		return rc;
	vk = malloc(sizeof(*vk));
	if (!vk) {
		rc = -ENOMEM;
	} else {
		rc = vkey_derive(master, vk);
		if (rc < 0)
			free(vk);
	}
	vkey_wipe(master, sizeof(master));
	if (rc < 0) {
		snprintf(err, errlen, "volume %s: cannot derive its keys: %s", vol.name,
			 strerror(-rc));
		return rc;
	}
	volkey_free(a);
	a->vk = vk;
	return 0;
}

bool alloc_volume_encrypted(const struct alloc_ctx *a)
{
	return a->vk != NULL;
}

int alloc_volume_rekey(struct alloc_ctx *a, const char *name, const uint8_t *old_blob,
		       size_t old_len, const uint8_t *old_secret, size_t old_slen,
		       const uint8_t *new_secret, size_t new_slen, int new_kind)
{
	Pstore__VolumeKeySet ks = PSTORE__VOLUME_KEY_SET__INIT;
	struct xport_reply rep = {0};
	uint8_t master[VKEY_LEN], blob[VKEY_BLOB_LEN];
	int rc;

	rc = vkey_unwrap(old_blob, old_len, old_secret, old_slen, master);
	if (rc < 0)
		return rc;
	rc = vkey_wrap(master, (enum vkey_kind)new_kind, new_secret, new_slen, blob);
	vkey_wipe(master, sizeof(master));
	if (rc < 0)
		return rc;
	ks.volume = (char *)name;
	ks.old_blob.data = (uint8_t *)old_blob;
	ks.old_blob.len = old_len;
	ks.key_blob.data = blob;
	ks.key_blob.len = sizeof(blob);
	rc = alloc_fat_call(a, MSG_VOLUME_KEY_SET, &ks.base, &pstore__volume_info__descriptor,
			    &rep);
	xport_reply_clear(&rep);
	return rc;
}

void volkey_free(struct alloc_ctx *a)
{
	if (a->vk) {
		vkey_wipe(a->vk, sizeof(*a->vk));
		free(a->vk);
		a->vk = NULL;
	}
}

/* ---- the mirror ---- */

int volkey_seal_ops(struct alloc_ctx *a, const uint8_t owner[CHUNK_OWNER_LEN],
		    const struct alloc_meta_op *meta, size_t n, struct alloc_meta_op **out)
{
	struct alloc_meta_op *ops;
	int rc = 0;

	if (!a->vk || n == 0) {
		*out = (struct alloc_meta_op *)meta; /* not written through */
		return 0;
	}
	ops = calloc(n, sizeof(*ops));
	if (!ops)
		return -ENOMEM;
	for (size_t i = 0; i < n && rc == 0; i++) {
		uint8_t *hk = malloc(VKEY_MIRROR_KEY_LEN), *sv = NULL;
		size_t sl = 0;

		if (!hk) {
			rc = -ENOMEM;
			break;
		}
		ops[i].key = hk;
		ops[i].klen = VKEY_MIRROR_KEY_LEN;
		rc = vkey_mirror_seal(a->vk, owner, meta[i].key, meta[i].klen, meta[i].val,
				      meta[i].vlen, hk, meta[i].val ? &sv : NULL, &sl);
		ops[i].val = sv; /* NULL for a delete */
		ops[i].vlen = sl;
	}
	if (rc < 0) {
		volkey_free_ops(meta, ops, n);
		return rc;
	}
	*out = ops;
	return 0;
}

void volkey_free_ops(const struct alloc_meta_op *meta, struct alloc_meta_op *ops, size_t n)
{
	if (!ops || ops == meta)
		return;
	for (size_t i = 0; i < n; i++) {
		free((void *)ops[i].key);
		free((void *)ops[i].val);
	}
	free(ops);
}

int volkey_open_item(struct alloc_ctx *a, const uint8_t owner[CHUNK_OWNER_LEN],
		     const uint8_t *hkey, size_t hklen, const uint8_t *sval, size_t slen,
		     uint8_t **plain, const uint8_t **key, size_t *klen, const uint8_t **val,
		     size_t *vlen)
{
	*plain = NULL;
	if (!a->vk) {
		*key = hkey;
		*klen = hklen;
		*val = sval;
		*vlen = slen;
		return 0;
	}
	return vkey_mirror_open(a->vk, owner, hkey, hklen, sval, slen, plain, key, klen, val,
				vlen);
}
