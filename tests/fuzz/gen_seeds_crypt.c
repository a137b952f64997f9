/*
 * gen_seeds_crypt.c - the seed corpora of the encryption targets, made with
 * src/chunk/aead.c's own encoders and the fixed keys of fuzz_crypt.c:
 * DIR/vkey_blob/ (a key-file blob with its key file, a passphrase blob, a
 * short blob), DIR/mirror_open/ (sealed inode-like and dirent-like entries
 * as the FAT returns them, and their plaintext records), DIR/chunk_open/
 * (sealed payloads, zstd and raw, and their plaintexts).  Input layouts:
 * see each target.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aead.h"
#include "chunk.h"
#include "common.h"
#include "fuzz_common.h"
#include "fuzz_crypt.h"

static const char *root;

static void seed(const char *target, const char *name, uint8_t b0, const void *a, size_t alen,
		 const void *b, size_t blen)
{
	char dir[1024], path[1200];
	uint8_t *buf = malloc(1 + alen + blen);

	if (!buf)
		abort();
	buf[0] = b0;
	if (alen)
		memcpy(buf + 1, a, alen);
	if (blen)
		memcpy(buf + 1 + alen, b, blen);
	snprintf(dir, sizeof(dir), "%s/%s", root, target);
	if (mkdir_p(dir, 0755) < 0)
		abort();
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fuzz_write_file(path, buf, 1 + alen + blen);
	free(buf);
}

static void blobs(void)
{
	static const char pass[] = "correct horse battery";
	uint8_t blob[VKEY_BLOB_LEN];

	if (vkey_wrap(fuzz_crypt_master, VKEY_KEYFILE, fuzz_crypt_keyfile,
		      sizeof(fuzz_crypt_keyfile), blob) != 0)
		abort();
	seed("vkey_blob", "keyfile", VKEY_BLOB_LEN, blob, sizeof(blob), fuzz_crypt_keyfile,
	     sizeof(fuzz_crypt_keyfile));
	seed("vkey_blob", "keyfile_wrong", VKEY_BLOB_LEN, blob, sizeof(blob), pass,
	     sizeof(pass) - 1);
	seed("vkey_blob", "short", 40, blob, 40, NULL, 0);
	if (vkey_wrap(fuzz_crypt_master, VKEY_PASSPHRASE, pass, sizeof(pass) - 1, blob) != 0)
		abort();
	seed("vkey_blob", "passphrase", VKEY_BLOB_LEN, blob, sizeof(blob), pass,
	     sizeof(pass) - 1);
}

/* A mirror entry: sealed as the FAT keeps it (mode 0), and its plaintext
 * record (mode 1). */
static void mirror(const char *name, const void *key, size_t klen, const void *val, size_t vlen)
{
	uint8_t hkey[VKEY_MIRROR_KEY_LEN], *sval = NULL, *plain;
	const uint8_t *k, *v;
	size_t slen, kl, vl;
	char n[64];
	uint8_t pre[1 + VKEY_MIRROR_KEY_LEN];

	if (vkey_mirror_seal(fuzz_crypt_vkey(), fuzz_crypt_owner, key, klen, val, vlen, hkey,
			     &sval, &slen) != 0)
		abort();
	pre[0] = VKEY_MIRROR_KEY_LEN;
	memcpy(pre + 1, hkey, VKEY_MIRROR_KEY_LEN);
	snprintf(n, sizeof(n), "%s_sealed", name);
	seed("mirror_open", n, 0, pre, sizeof(pre), sval, slen);
	if (vkey_mirror_open(fuzz_crypt_vkey(), fuzz_crypt_owner, hkey, sizeof(hkey), sval,
			     slen, &plain, &k, &kl, &v, &vl) != 0)
		abort();
	snprintf(n, sizeof(n), "%s_plain", name);
	seed("mirror_open", n, 1, plain, 7 + kl + vl, NULL, 0);
	free(plain);
	free(sval);
}

static void chunk(const char *name, const void *raw, size_t raw_len, int level)
{
	struct chunk_hdr h = {0};
	uint8_t *stored = NULL, hdr[CHUNK_HDR_LEN], *plain;
	char n[64];
	size_t plen;

	h.magic = CHUNK_HDR_MAGIC;
	h.version = CHUNK_HDR_VERSION;
	memset(h.chunk_id, 0x11, CHUNK_ID_LEN);
	memcpy(h.owner, fuzz_crypt_owner, CHUNK_OWNER_LEN);
	h.lease_id = 7;
	h.vendor_id = 1;
	h.chain_len = 2;
	h.chain[0] = 1;
	h.chain[1] = 2;
	h.pieces = 1;
	if (chunk_seal_encode(fuzz_crypt_vkey(), raw, raw_len, level, &h, &stored) != 0)
		abort();
	chunk_hdr_encode(&h, hdr);
	snprintf(n, sizeof(n), "%s_sealed", name);
	seed("chunk_open", n, 0, hdr, sizeof(hdr), stored, h.stored_len);
	snprintf(n, sizeof(n), "%s_nokey", name);
	seed("chunk_open", n, 2, hdr, sizeof(hdr), stored, h.stored_len);
	/* the plaintext the sealer puts under the tag: compressed or raw bytes */
	if (chunk_compress(raw, raw_len, level, 0, &plain, &plen, &h.flags) != 0)
		abort();
	chunk_hdr_encode(&h, hdr);
	snprintf(n, sizeof(n), "%s_plain", name);
	seed("chunk_open", n, 1, hdr, sizeof(hdr), plain, plen);
	free(plain);
	free(stored);
}

int main(int argc, char **argv)
{
	static uint8_t text[3000];
	uint8_t noise[200];

	if (argc != 2) {
		fprintf(stderr, "usage: fuzz_gen_seeds_crypt CORPUS_DIR\n");
		return 2;
	}
	root = argv[1];
	blobs();
	mirror("inode", "\x01\0\0\0\0\0\0\0\x05", 9, "mode=0644 size=9000 mtime=1700000000",
	       36);
	mirror("dirent", "\x02\0\0\0\0\0\0\0\x01hello.txt", 18, "\0\0\0\0\0\0\0\x05\x08", 9);
	for (size_t i = 0; i < sizeof(text); i++)
		text[i] = (uint8_t) "pstore chunk "[i % 13];
	for (size_t i = 0; i < sizeof(noise); i++)
		noise[i] = (uint8_t)(i * 151 + 7);
	chunk("zstd", text, sizeof(text), 3);
	chunk("raw", noise, sizeof(noise), 3);
	chunk("empty", noise, 0, 3);
	return 0;
}
