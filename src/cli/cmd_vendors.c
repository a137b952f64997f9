/*
 * cmd_vendors.c - `pstore vendors [--json]`: every vendor in the FAT
 * server's registry (MSG_VENDOR_LIST) with its capacity, reservations, use
 * and traffic counters, as a table or as JSON for scripts and tests.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "cli.h"
#include "common.h"

static void vendors_usage(FILE *f)
{
	fprintf(f, "usage: pstore [-c FILE] vendors [--json]\n"
		   "\n"
		   "Lists every vendor the FAT server knows: id, address, alive, capacity,\n"
		   "free, reserved (held by open leases), used (committed chunks), chunks,\n"
		   "bytes received from clients and from other vendors (chain forwarding),\n"
		   "and validation receipts recorded.  --json prints {\"vendors\": [...]}.\n");
}

static json_object *vendor_json(const Pstore__VendorRecord *v)
{
	const Pstore__VendorStats *s = v->stats;
	json_object *o = json_object_new_object(), *devs = json_object_new_array();

	json_object_object_add(o, "id", json_object_new_int64(v->id));
	json_object_object_add(o, "address", json_object_new_string(v->address));
	json_object_object_add(o, "zone", json_object_new_string(v->zone));
	json_object_object_add(o, "alive", json_object_new_boolean(v->alive));
	json_object_object_add(o, "last_seen_ms", json_object_new_uint64(v->last_seen_ms));
	json_object_object_add(o, "capacity", json_object_new_uint64(v->capacity));
	json_object_object_add(o, "free", json_object_new_uint64(v->free));
	json_object_object_add(o, "reserved", json_object_new_uint64(v->reserved));
	json_object_object_add(o, "used", json_object_new_uint64(v->used));
	json_object_object_add(o, "chunks", json_object_new_uint64(v->chunks));
	json_object_object_add(o, "bad_replicas", json_object_new_uint64(v->bad_replicas));
	json_object_object_add(o, "bytes_from_clients",
			       json_object_new_uint64(s ? s->bytes_from_clients : 0));
	json_object_object_add(o, "bytes_from_vendors",
			       json_object_new_uint64(s ? s->bytes_from_vendors : 0));
	json_object_object_add(o, "receipts", json_object_new_uint64(s ? s->receipts : 0));
	json_object_object_add(o, "receipt_bytes",
			       json_object_new_uint64(s ? s->receipt_bytes : 0));
	json_object_object_add(o, "stored_chunks", json_object_new_uint64(s ? s->chunks : 0));
	json_object_object_add(o, "bytes_stored",
			       json_object_new_uint64(s ? s->bytes_stored : 0));
	json_object_object_add(o, "pieces", json_object_new_uint64(s ? s->pieces : 0));
	json_object_object_add(o, "load", json_object_new_int64(s ? s->load : 0));
	for (size_t i = 0; i < v->n_devices; i++) {
		json_object *d = json_object_new_object();

		json_object_object_add(d, "path", json_object_new_string(v->devices[i]->path));
		json_object_object_add(d, "capacity",
				       json_object_new_uint64(v->devices[i]->capacity));
		json_object_object_add(d, "free", json_object_new_uint64(v->devices[i]->free));
		json_object_array_add(devs, d);
	}
	json_object_object_add(o, "devices", devs);
	return o;
}

static void vendor_row(const Pstore__VendorRecord *v)
{
	const Pstore__VendorStats *s = v->stats;
	char cap[32], fr[32], res[32], used[32], fc[32], fv[32];

	printf("%4u %-21s %-5s %10s %10s %10s %10s %7llu %10s %10s %8llu %5llu\n", v->id,
	       v->address, v->alive ? "yes" : "NO", cli_human(v->capacity, cap, sizeof(cap)),
	       cli_human(v->free, fr, sizeof(fr)), cli_human(v->reserved, res, sizeof(res)),
	       cli_human(v->used, used, sizeof(used)), (unsigned long long)v->chunks,
	       cli_human(s ? s->bytes_from_clients : 0, fc, sizeof(fc)),
	       cli_human(s ? s->bytes_from_vendors : 0, fv, sizeof(fv)),
	       (unsigned long long)(s ? s->receipts : 0), (unsigned long long)v->bad_replicas);
}

int cmd_vendors(struct cli *c, int argc, char **argv)
{
	Pstore__Empty req = PSTORE__EMPTY__INIT;
	Pstore__VendorListReply *vl;
	struct xport_reply rep;
	bool json = false;
	int rc, ret = CLI_FAIL;

	rc = cli_opts_json(argc, argv, vendors_usage, &json);
	if (rc >= 0)
		return rc;
	if (cli_connect(c) < 0)
		return CLI_FAIL;
	memset(&rep, 0, sizeof(rep));
	rc = alloc_fat_call(c->alloc, MSG_VENDOR_LIST, &req.base,
			    &pstore__vendor_list_reply__descriptor, &rep);
	if (rc < 0) {
		fprintf(stderr, "pstore: cannot list vendors (FAT %s): %s\n", c->conf.fat,
			strerror(-rc));
		return CLI_FAIL;
	}
	vl = (Pstore__VendorListReply *)rep.msg;
	if (!vl) {
		fprintf(stderr, "pstore: empty reply to the vendor list\n");
		goto out;
	}
	if (json) {
		json_object *root = json_object_new_object(), *arr = json_object_new_array();

		for (size_t i = 0; i < vl->n_vendors; i++)
			json_object_array_add(arr, vendor_json(vl->vendors[i]));
		json_object_object_add(root, "vendors", arr);
		printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
		json_object_put(root);
	} else {
		printf("%4s %-21s %-5s %10s %10s %10s %10s %7s %10s %10s %8s %5s\n", "ID",
		       "ADDRESS", "ALIVE", "CAPACITY", "FREE", "RESERVED", "USED", "CHUNKS",
		       "FROM-CLNT", "FROM-VEND", "RECEIPTS", "BAD");
		for (size_t i = 0; i < vl->n_vendors; i++)
			vendor_row(vl->vendors[i]);
	}
	ret = CLI_OK;
out:
	xport_reply_clear(&rep);
	return ret;
}
