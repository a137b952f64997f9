/*
 * dump.c - `pstore-vendord --dump-index [--json]`: prints the piece index
 * read-only (LMDB readers never block the running daemon): every chunk with
 * its owner, size and pieces (device path, length), and the statistics.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "vendor.h"

struct dump_ctx {
	const Pstore__VDeviceTable *devs;
	json_object *chunks; /* NULL for text output */
};

static const char *dev_path(const struct dump_ctx *c, uint32_t id)
{
	if (c->devs && id < c->devs->n_paths)
		return c->devs->paths[id];
	return "?";
}

static int dump_chunk(const uint8_t *id, const Pstore__VChunk *rec, void *arg)
{
	struct dump_ctx *c = arg;
	char hex[2 * CHUNK_ID_LEN + 1], owner[2 * CHUNK_OWNER_LEN + 1] = "?";

	chunk_id_hex(id, hex);
	if (rec->owner.len == CHUNK_OWNER_LEN)
		hex_encode(rec->owner.data, CHUNK_OWNER_LEN, owner);
	if (c->chunks) {
		json_object *o = json_object_new_object(), *pcs = json_object_new_array();

		json_object_object_add(o, "chunk_id", json_object_new_string(hex));
		json_object_object_add(o, "owner", json_object_new_string(owner));
		json_object_object_add(o, "lease_id", json_object_new_uint64(rec->lease_id));
		json_object_object_add(o, "stored_len",
				       json_object_new_uint64(rec->stored_len));
		json_object_object_add(o, "raw_len", json_object_new_uint64(rec->raw_len));
		json_object_object_add(
		    o, "source",
		    json_object_new_string(
			rec->source == PSTORE__VSOURCE__VSOURCE_VENDOR ? "vendor" : "client"));
		json_object_object_add(o, "time_ms", json_object_new_uint64(rec->time_ms));
		for (size_t i = 0; i < rec->n_pieces; i++) {
			json_object *p = json_object_new_object();

			json_object_object_add(
			    p, "device",
			    json_object_new_string(dev_path(c, rec->pieces[i]->device)));
			json_object_object_add(p, "length",
					       json_object_new_uint64(rec->pieces[i]->length));
			json_object_object_add(p, "offset",
					       json_object_new_uint64(rec->pieces[i]->offset));
			json_object_array_add(pcs, p);
		}
		json_object_object_add(o, "pieces", pcs);
		json_object_array_add(c->chunks, o);
		return 0;
	}
	printf("%s owner %s stored %llu raw %llu pieces %zu (%s)\n", hex, owner,
	       (unsigned long long)rec->stored_len, (unsigned long long)rec->raw_len,
	       rec->n_pieces,
	       rec->source == PSTORE__VSOURCE__VSOURCE_VENDOR ? "from vendor" : "from client");
	for (size_t i = 0; i < rec->n_pieces; i++)
		printf("  piece %zu: %s length %llu offset %llu\n", i,
		       dev_path(c, rec->pieces[i]->device),
		       (unsigned long long)rec->pieces[i]->length,
		       (unsigned long long)rec->pieces[i]->offset);
	return 0;
}

int vdump_index(const char *dir, bool json)
{
	struct vendor_index *ix = NULL;
	Pstore__VDeviceTable *devs = NULL;
	Pstore__VStats st;
	struct dump_ctx c = {0};
	json_object *root = NULL;
	int rc;

	rc = vindex_open(dir, true, &ix);
	if (rc < 0) {
		fprintf(stderr, "pstore-vendord: cannot open the index at %s: %s\n", dir,
			strerror(-rc));
		return rc;
	}
	rc = vindex_device_table(ix, &devs);
	if (rc < 0)
		goto out;
	c.devs = devs;
	rc = vindex_stats(ix, &st);
	if (rc < 0)
		goto out;
	if (json) {
		root = json_object_new_object();
		c.chunks = json_object_new_array();
	}
	rc = vindex_chunk_foreach(ix, dump_chunk, &c);
	if (rc < 0)
		goto out;
	if (json) {
		json_object *s = json_object_new_object();

		json_object_object_add(root, "chunks", c.chunks);
		c.chunks = NULL;
		json_object_object_add(s, "chunks", json_object_new_uint64(st.chunks));
		json_object_object_add(s, "bytes_stored",
				       json_object_new_uint64(st.bytes_stored));
		json_object_object_add(s, "pieces", json_object_new_uint64(st.pieces));
		json_object_object_add(s, "bytes_from_clients",
				       json_object_new_uint64(st.bytes_from_clients));
		json_object_object_add(s, "bytes_from_vendors",
				       json_object_new_uint64(st.bytes_from_vendors));
		json_object_object_add(s, "receipts", json_object_new_uint64(st.receipts));
		json_object_object_add(s, "receipt_bytes",
				       json_object_new_uint64(st.receipt_bytes));
		json_object_object_add(root, "stats", s);
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
	} else {
		printf("stats: chunks %llu pieces %llu bytes_stored %llu from_clients %llu "
		       "from_vendors %llu receipts %llu receipt_bytes %llu\n",
		       (unsigned long long)st.chunks, (unsigned long long)st.pieces,
		       (unsigned long long)st.bytes_stored,
		       (unsigned long long)st.bytes_from_clients,
		       (unsigned long long)st.bytes_from_vendors,
		       (unsigned long long)st.receipts, (unsigned long long)st.receipt_bytes);
	}
out:
	if (rc < 0)
		fprintf(stderr, "pstore-vendord: reading the index: %s\n", strerror(-rc));
	if (c.chunks)
		json_object_put(c.chunks);
	if (root)
		json_object_put(root);
	if (devs)
		pstore__vdevice_table__free_unpacked(devs, NULL);
	vindex_close(ix);
	return rc;
}
