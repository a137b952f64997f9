/*
 * gen_seeds.c - writes the seed corpora of the fuzz targets into
 * DIR/<target>/ (tests/fuzz/run --seeds runs it on tests/fuzz/corpus):
 * small valid inputs made with the project's own encoders (frame and chunk
 * headers, protobuf messages, tokens signed with the fuzzing key, records
 * as the FAT logic writes them).  gen_seeds_fs.c does the fs mirror.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "common.h"
#include "frame.h"
#include "fuzz_common.h"
#include "fuzz_fat_env.h"
#include "fuzz_vendor_env.h"
#include "msgtype.h"
#include "vindex.pb-c.h"

static const char *root;

static void seed(const char *target, const char *name, const void *a, size_t alen,
		 const void *b, size_t blen)
{
	char dir[1024], path[1200];
	uint8_t *buf = malloc(alen + blen + 1);

	if (!buf)
		abort();
	memcpy(buf, a, alen);
	if (blen)
		memcpy(buf + alen, b, blen);
	snprintf(dir, sizeof(dir), "%s/%s", root, target);
	if (mkdir_p(dir, 0755) < 0)
		abort();
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fuzz_write_file(path, buf, alen + blen);
	free(buf);
}

/* prefix bytes + packed message */
static void seed_msg(const char *target, const char *name, const uint8_t *pre, size_t plen,
		     const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len + 1);

	if (!buf)
		abort();
	protobuf_c_message_pack(m, buf);
	seed(target, name, pre, plen, buf, len);
	free(buf);
}

static void frames(void)
{
	struct xport_frame_hdr h = {
	    .type = MSG_CHUNK_PUT, .req_id = 7, .ctl_len = 40, .data_len = 4240};
	uint8_t b[XPORT_FRAME_HDR_LEN];

	xport_frame_encode(&h, b);
	seed("frame", "put", b, sizeof(b), NULL, 0);
	h.type = MSG_ALLOC | XPORT_REPLY_BIT;
	h.data_len = 0;
	xport_frame_encode(&h, b);
	seed("frame", "reply", b, sizeof(b), NULL, 0);
}

static void make_hdr(struct chunk_hdr *h, const uint8_t *id, uint8_t chain_len,
		     const void *stored, size_t stored_len, size_t raw_len, uint16_t flags)
{
	memset(h, 0, sizeof(*h));
	h->flags = flags;
	memcpy(h->chunk_id, id, CHUNK_ID_LEN);
	memcpy(h->owner, fuzz_owner, CHUNK_OWNER_LEN);
	h->lease_id = FUZZ_LEASE_ID;
	h->vendor_id = FUZZ_VENDOR_ID;
	h->chain_len = chain_len;
	h->pieces = 4;
	for (uint8_t i = 0; i < chain_len; i++)
		h->chain[i] = FUZZ_VENDOR_ID + i;
	h->raw_len = (uint32_t)raw_len;
	h->stored_len = (uint32_t)stored_len;
	chunk_digest(stored, stored_len, h->digest);
}

static void chunks(void)
{
	static const char plain[] = "plain payload, stored as it is";
	char raw[2000];
	uint8_t hb[CHUNK_HDR_LEN], *z = NULL, dg[CHUNK_DIGEST_LEN];
	uint8_t id[CHUNK_ID_LEN] = {1, 2, 3};
	struct chunk_hdr h;
	size_t zlen;
	uint16_t flags;

	make_hdr(&h, id, 1, plain, sizeof(plain), sizeof(plain), 0);
	chunk_hdr_encode(&h, hb);
	seed("chunk_hdr", "plain", hb, sizeof(hb), plain, sizeof(plain));
	for (size_t i = 0; i < sizeof(raw); i++)
		raw[i] = "pstore "[i % 7];
	if (chunk_encode(raw, sizeof(raw), 3, &z, &zlen, &flags, dg) != 0 ||
	    !(flags & CHUNK_F_ZSTD))
		abort();
	make_hdr(&h, id, 3, z, zlen, sizeof(raw), flags);
	chunk_hdr_encode(&h, hb);
	seed("chunk_hdr", "zstd", hb, sizeof(hb), z, zlen);
	free(z);
}

static uint8_t *token(uint32_t vendor, size_t *len)
{
	struct cap_token t = {.vendor_id = vendor,
			      .lease_id = FUZZ_LEASE_ID,
			      .byte_limit = FUZZ_TOKEN_LIMIT,
			      .expiry_ms = FUZZ_TOKEN_EXPIRY};
	uint8_t *buf;

	memcpy(t.owner, fuzz_owner, CHUNK_OWNER_LEN);
	if (cap_token_sign(fuzz_key(), &t, &buf, len) != 0)
		abort();
	return buf;
}

static void tokens(void)
{
	Pstore__CapToken ct = PSTORE__CAP_TOKEN__INIT;
	uint8_t mode = 0, *tok;
	size_t len;

	tok = token(FUZZ_VENDOR_ID, &len);
	seed("cap_token", "signed", &mode, 1, tok, len);
	free(tok);
	mode = 1;
	ct.owner.data = (uint8_t *)fuzz_owner;
	ct.owner.len = CHUNK_OWNER_LEN;
	ct.vendor_id = 3;
	ct.lease_id = 9;
	ct.byte_limit = 1u << 20;
	ct.expiry_ms = FUZZ_TOKEN_EXPIRY;
	seed_msg("cap_token", "body", &mode, 1, &ct.base);
}

/* vendor_req input: type index, peer index, ctl_len (LE16), ctl, data */
static void vendor_seed(const char *name, uint8_t type_idx, uint8_t peer_idx,
			const ProtobufCMessage *m, const void *data, size_t dlen)
{
	size_t clen = m ? protobuf_c_message_get_packed_size(m) : 0;
	uint8_t *buf = malloc(4 + clen + dlen + 1);

	if (!buf || clen > 0xffff)
		abort();
	buf[0] = type_idx;
	buf[1] = peer_idx;
	buf[2] = (uint8_t)clen;
	buf[3] = (uint8_t)(clen >> 8);
	if (m)
		protobuf_c_message_pack(m, buf + 4);
	if (dlen)
		memcpy(buf + 4 + clen, data, dlen);
	seed("vendor_req", name, buf, 4 + clen + dlen, NULL, 0);
	free(buf);
}

static void vendor(void)
{
	static const char payload[] = "a chunk put by the seed corpus, forwarded to vendor 2";
	Pstore__ChunkPut put = PSTORE__CHUNK_PUT__INIT;
	Pstore__ChainHop h1 = PSTORE__CHAIN_HOP__INIT, h2 = PSTORE__CHAIN_HOP__INIT;
	Pstore__ChainHop *hops[2] = {&h1, &h2};
	Pstore__ChunkGet get = PSTORE__CHUNK_GET__INIT;
	Pstore__ReceiptBatch rb = PSTORE__RECEIPT_BATCH__INIT;
	Pstore__Receipt rc = PSTORE__RECEIPT__INIT, *rcp = &rc;
	uint8_t id[CHUNK_ID_LEN] = {0xab, 0xcd}, data[CHUNK_HDR_LEN + sizeof(payload)];
	uint8_t dg[CHUNK_DIGEST_LEN];
	struct chunk_hdr h;
	size_t l1, l2;

	make_hdr(&h, id, 2, payload, sizeof(payload), sizeof(payload), 0);
	chunk_hdr_encode(&h, data);
	memcpy(data + CHUNK_HDR_LEN, payload, sizeof(payload));
	h1.vendor_id = FUZZ_VENDOR_ID;
	h1.address = "127.0.0.1:7101";
	h1.token.data = token(FUZZ_VENDOR_ID, &l1);
	h1.token.len = l1;
	h2.vendor_id = FUZZ_VENDOR_NEXT;
	h2.address = "127.0.0.1:7102";
	h2.token.data = token(FUZZ_VENDOR_NEXT, &l2);
	h2.token.len = l2;
	put.chain = hops;
	put.n_chain = 2;
	vendor_seed("put-chain", 0, 0, &put.base, data, sizeof(data));
	put.n_chain = 1;
	h.chain_len = 1;
	h.chain[1] = 0;
	chunk_hdr_encode(&h, data);
	vendor_seed("put-one", 0, 1, &put.base, data, sizeof(data));
	free(h1.token.data);
	free(h2.token.data);

	get.chunk_id.data = (uint8_t *)fuzz_stored_id;
	get.chunk_id.len = CHUNK_ID_LEN;
	get.owner.data = (uint8_t *)fuzz_owner;
	get.owner.len = CHUNK_OWNER_LEN;
	vendor_seed("get", 1, 0, &get.base, NULL, 0);
	get.offset = 5;
	get.length = 9;
	vendor_seed("get-range", 1, 1, &get.base, NULL, 0);

	memset(dg, 0x11, sizeof(dg));
	rc.chunk_id.data = (uint8_t *)fuzz_stored_id;
	rc.chunk_id.len = CHUNK_ID_LEN;
	rc.bytes = 100;
	rc.digest.data = dg;
	rc.digest.len = sizeof(dg);
	rc.ok = true;
	rc.time_ms = 1700000000000ull;
	rb.receipts = &rcp;
	rb.n_receipts = 1;
	vendor_seed("receipts", 2, 0, &rb.base, NULL, 0);
	vendor_seed("ping", 3, 0, NULL, NULL, 0);
}

static void vindex(void)
{
	Pstore__VChunk c = PSTORE__VCHUNK__INIT;
	Pstore__VPiece p0 = PSTORE__VPIECE__INIT, p1 = PSTORE__VPIECE__INIT,
		       *pp[2] = {&p0, &p1};
	Pstore__VLease l = PSTORE__VLEASE__INIT;
	Pstore__VStats s = PSTORE__VSTATS__INIT;
	Pstore__VReceipt r = PSTORE__VRECEIPT__INIT;
	Pstore__VDeviceTable d = PSTORE__VDEVICE_TABLE__INIT;
	char *paths[2] = {"/srv/d0", "/srv/d1"};
	uint8_t hb[CHUNK_HDR_LEN], dg[CHUNK_DIGEST_LEN], kind;
	uint8_t id[CHUNK_ID_LEN] = {0xf0, 0x22, 0xf0, 0x22};
	struct chunk_hdr h;
	static const char payload[] = "0123456789abcdef0123";

	make_hdr(&h, id, 1, payload, sizeof(payload), sizeof(payload), 0);
	chunk_hdr_encode(&h, hb);
	memcpy(dg, h.digest, sizeof(dg));
	c.owner.data = (uint8_t *)fuzz_owner;
	c.owner.len = CHUNK_OWNER_LEN;
	c.lease_id = FUZZ_LEASE_ID;
	c.header.data = hb;
	c.header.len = sizeof(hb);
	c.stored_len = c.raw_len = sizeof(payload);
	c.digest.data = dg;
	c.digest.len = sizeof(dg);
	p0.device = 0;
	p0.length = 10;
	p1.device = 1;
	p1.offset = 10;
	p1.length = sizeof(payload) - 10;
	c.pieces = pp;
	c.n_pieces = 2;
	c.time_ms = 1700000000000ull;
	kind = 0;
	seed_msg("vindex", "vchunk", &kind, 1, &c.base);
	kind = 1;
	l.bytes = 4096;
	l.expiry_ms = FUZZ_TOKEN_EXPIRY;
	seed_msg("vindex", "vlease", &kind, 1, &l.base);
	kind = 2;
	s.chunks = 3;
	s.bytes_stored = 1000;
	s.pieces = 9;
	seed_msg("vindex", "vstats", &kind, 1, &s.base);
	kind = 3;
	r.chunk_id.data = id;
	r.chunk_id.len = CHUNK_ID_LEN;
	r.bytes = 20;
	r.ok = true;
	r.peer = "client:alice";
	seed_msg("vindex", "vreceipt", &kind, 1, &r.base);
	kind = 4;
	d.paths = paths;
	d.n_paths = 2;
	seed_msg("vindex", "vdevices", &kind, 1, &d.base);
}

/* fat_dispatch input: type index, peer index, clock byte, ctl */
static void fat_seed(const char *name, uint8_t type_idx, uint8_t peer_idx,
		     const ProtobufCMessage *m)
{
	uint8_t pre[3] = {type_idx, peer_idx, 0};

	if (m)
		seed_msg("fat_dispatch", name, pre, 3, m);
	else
		seed("fat_dispatch", name, pre, 3, NULL, 0);
}

static void fat(void)
{
	struct fuzz_fat *f = fuzz_fat_env();
	Pstore__VendorHello vh = PSTORE__VENDOR_HELLO__INIT;
	Pstore__DeviceInfo dev = PSTORE__DEVICE_INFO__INIT, *devp = &dev;
	Pstore__VolumeInfo vi = PSTORE__VOLUME_INFO__INIT;
	Pstore__VolumeGet vg = PSTORE__VOLUME_GET__INIT;
	Pstore__AllocRequest ar = PSTORE__ALLOC_REQUEST__INIT;
	Pstore__LeaseRenew lr = PSTORE__LEASE_RENEW__INIT;
	Pstore__CommitRequest cr = PSTORE__COMMIT_REQUEST__INIT;
	Pstore__ChunkPlacement cp = PSTORE__CHUNK_PLACEMENT__INIT, *cpp = &cp;
	Pstore__MetaOp mo = PSTORE__META_OP__INIT, *mop = &mo;
	Pstore__ListRequest lq = PSTORE__LIST_REQUEST__INIT;
	Pstore__BadReplica br = PSTORE__BAD_REPLICA__INIT;
	ProtobufCBinaryData freed = {.len = 16, .data = f->chunk_id};
	uint8_t chunk[16], rid[16], key[9] = {'i', 0, 0, 0, 0, 0, 0, 0, 2}, val[3] = {1, 2, 3};
	uint32_t vendors[2] = {1, 3};
	struct fat_key k;
	struct fat_txn *t;
	const void *v;
	size_t vlen;
	uint8_t kind;

	/* indices into fuzz_fat_dispatch.c's types[] and peers[] */
	vh.vendor_id = 1;
	vh.address = "127.0.0.1:7101";
	vh.zone = "z1";
	dev.path = "/srv/d0";
	dev.capacity = dev.free = 1u << 30;
	vh.devices = &devp;
	vh.n_devices = 1;
	vh.deleted = &freed;
	vh.n_deleted = 1;
	fat_seed("register", 0, 2, &vh.base);
	fat_seed("heartbeat", 1, 2, &vh.base);
	vi.name = "vol2";
	vi.copies = 2;
	vi.chunk_size = 4u << 20;
	fat_seed("volume-create", 2, 0, &vi.base);
	vg.name = "vol";
	fat_seed("volume-get", 3, 0, &vg.base);
	fat_seed("volume-list", 4, 1, NULL);
	ar.volume = "vol";
	ar.bytes = 1u << 20;
	ar.copies = 2;
	ar.lease_ms = 30000;
	ar.exclude = &vendors[1];
	ar.n_exclude = 1;
	fat_seed("alloc", 5, 0, &ar.base);
	lr.volume = "vol";
	lr.lease_id = f->lease_id;
	lr.lease_ms = 30000;
	fat_seed("lease-renew", 6, 0, &lr.base);
	memset(chunk, 0xc3, sizeof(chunk));
	memset(rid, 0xe3, sizeof(rid));
	cp.chunk_id.data = chunk;
	cp.chunk_id.len = 16;
	cp.size = 4096;
	cp.vendors = vendors;
	cp.n_vendors = 2;
	cp.lease_id = f->lease_id;
	mo.key.data = key;
	mo.key.len = sizeof(key);
	mo.value.data = val;
	mo.value.len = sizeof(val);
	cr.volume = "vol";
	cr.lease_id = f->lease_id;
	cr.placed = &cpp;
	cr.n_placed = 1;
	cr.freed = &freed;
	cr.n_freed = 1;
	cr.meta = &mop;
	cr.n_meta = 1;
	cr.release = true;
	cr.request_id.data = rid;
	cr.request_id.len = 16;
	fat_seed("commit", 7, 0, &cr.base);
	cr.request_id.data = f->request_id;
	fat_seed("commit-retried", 7, 1, &cr.base);
	lq.volume = "vol";
	lq.limit = 10;
	fat_seed("meta-list", 8, 0, &lq.base);
	fat_seed("chunk-list", 9, 0, &lq.base);
	fat_seed("vendor-list", 10, 1, NULL);
	fat_seed("statfs", 11, 0, NULL);
	br.volume = "vol";
	br.chunk_id.data = f->chunk_id;
	br.chunk_id.len = 16;
	br.vendor_id = 1;
	br.reason = "digest mismatch";
	fat_seed("report-bad", 12, 0, &br.base);
	fat_seed("fat-status", 13, 1, NULL);

	/* fat_records: each record as the logic wrote it */
	if (fat_txn_begin(f->fc.store, true, &t) != 0)
		abort();
	for (kind = 0; kind <= 4; kind++) {
		static const char *const names[] = {"vendor", "volume", "lease", "chunk",
						    "request"};

		switch (kind) {
		case 0:
			fat_key_vendor(&k, 1);
			break;
		case 1:
			fat_key_volume(&k, "vol");
			break;
		case 2:
			fat_key_lease(&k, f->lease_id);
			break;
		case 3:
			fat_key_chunk(&k, f->vol_id, f->chunk_id);
			break;
		default:
			fat_key_request(&k, f->request_id);
			break;
		}
		if (fat_txn_get(t, k.b, k.len, &v, &vlen) != 0) {
			fprintf(stderr, "gen_seeds: record %s missing\n", names[kind]);
			abort();
		}
		seed("fat_records", names[kind], &kind, 1, v, vlen);
	}
	fat_txn_abort(t);
}

static void text(const char *target, const char *name, const char *s)
{
	seed(target, name, s, strlen(s), NULL, 0);
}

static void configs(void)
{
	text("fatd_config", "lmdb",
	     "[fatd]\nid = 1\nlisten = 127.0.0.1:7000\ndata = /var/lib/pstore/fatd\n"
	     "lease_max_ms = 60000\nvendor_timeout_ms = 6000\nheartbeat_ms = 1000\n"
	     "map_size = 16G\nlog_level = info\nstore = lmdb\n"
	     "[tls]\nca = /etc/pstore/pki/ca.crt\ncert = /etc/pstore/pki/fatd.crt\n"
	     "key = /etc/pstore/pki/fatd.key\n");
	text("fatd_config", "etcd",
	     "[fatd]\nid = 2\nlisten = [::1]:7000\ndata = /tmp/f\nstore = etcd\n"
	     "etcd = https://127.0.0.1:2379,https://127.0.0.1:2479\netcd_prefix = pstore/\n"
	     "etcd_ca = /a\netcd_cert = /b\netcd_key = /c\nleader_ttl_ms = 5000\n"
	     "[tls]\nca = /a\ncert = /b\nkey = /c\n");
	text("vendord_config", "vendor",
	     "[vendor]\nid = 1\nlisten = 127.0.0.1:7101\naddress = 127.0.0.1:7101\n"
	     "zone = default\ndevices = /srv/pstore/d0, /srv/pstore/d1\ncapacity = 10G\n"
	     "index = /var/lib/pstore/vendor\nfat = 127.0.0.1:7000, 127.0.0.1:7001\n"
	     "heartbeat_ms = 1000\nworkers = 4\nlog_level = info\nbandwidth = 100M\n"
	     "[tls]\nca = /etc/pstore/pki/ca.crt\ncert = /etc/pstore/pki/v1.crt\n"
	     "key = /etc/pstore/pki/v1.key\n");
	static const char client[] =
	    "[client]\nfat = 127.0.0.1:7000, [::1]:7001\nvolume = default\n"
	    "state = /var/lib/pstore/client\ncache = /var/cache/pstore\nlease_ms = 60000\n"
	    "zstd_level = 1\nupload_threads = 8\npieces = 2\nflush_batch = 64M\n"
	    "flush_inodes = 1000\nsync_timeout_ms = 600000\nwriteback_cache = yes\n"
	    "log_level = info\n[tls]\nca = /etc/pstore/pki/ca.crt\n"
	    "cert = /etc/pstore/pki/client.crt\nkey = /etc/pstore/pki/client.key\n";
	text("fs_config", "client", client);
	text("cli_config", "client", client);
}

static void ctl(void)
{
	text("ctl_reply", "locate",
	     "{\"ok\":true,\"chunks\":[{\"index\":0,\"chunk_id\":"
	     "\"000102030405060708090a0b0c0d0e0f\",\"stored\":4096,\"raw\":8192,"
	     "\"vendors\":[1,3]},{\"index\":1,\"chunk_id\":\"ff\",\"stored\":1,\"raw\":1,"
	     "\"vendors\":[]}]}\n");
	text("ctl_reply", "error", "{\"ok\":false,\"error\":\"no such inode\"}\n");
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fuzz_gen_seeds CORPUS_DIR\n");
		return 2;
	}
	root = argv[1];
	fuzz_quiet();
	frames();
	chunks();
	tokens();
	vendor();
	vindex();
	fat();
	configs();
	ctl();
	return 0;
}
