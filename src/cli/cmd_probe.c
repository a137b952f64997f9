/*
 * cmd_probe.c - `pstore probe [--json] [--pin ID] MOUNT`: how the pstorefs
 * serving MOUNT sees each candidate vendor through path probing (RTT,
 * hops, availability, free space, load, score, and the verdict with its
 * reason), asked over the mount's control socket (op "probe").  The
 * scoring itself lives in src/alloc/score.c; see docs/probing.md.
 */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pstore probe [--json] [--pin ID] [--timeout MS] MOUNT\n"
		"\n"
		"Each candidate vendor as the mount's path probing sees it: RTT (median of\n"
		"UDP probes), hop count, availability, free space, load, score and the\n"
		"verdict: chosen (new chunks go there), standby, or discarded with the\n"
		"reason.  --pin ID sends the mount's reads to vendor ID whenever it holds a\n"
		"replica (diagnostics; --pin 0 restores the normal choice).\n");
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "";
}

static double jdbl(json_object *o, const char *k, bool *have)
{
	json_object *v;

	*have = json_object_object_get_ex(o, k, &v) && v;
	return *have ? json_object_get_double(v) : 0;
}

static void print_table(json_object *r)
{
	json_object *vs;
	char fbuf[16];
	bool have;

	if (!json_object_object_get_ex(r, "vendors", &vs) ||
	    !json_object_is_type(vs, json_type_array))
		return;
	printf("%-6s %-21s %-10s %9s %4s %6s %10s %4s %6s  %s\n", "VENDOR", "ADDRESS", "ZONE",
	       "RTT(ms)", "HOPS", "AVAIL", "FREE", "LOAD", "SCORE", "VERDICT");
	for (size_t i = 0; i < json_object_array_length(vs); i++) {
		json_object *v = json_object_array_get_idx(vs, i);
		double rtt = jdbl(v, "rtt_ms", &have);
		char rtts[16] = "-", hops[8] = "-";
		bool hh;
		double h = jdbl(v, "hops", &hh);
		const char *reason = jstr(v, "reason");

		if (have)
			snprintf(rtts, sizeof(rtts), "%.2f", rtt);
		if (hh)
			snprintf(hops, sizeof(hops), "%d", (int)h);
		printf("%-6s %-21s %-10s %9s %4s %6.2f %10s %4d %6.3f  %s%s%s\n", jstr(v, "id"),
		       jstr(v, "address"), jstr(v, "zone"), rtts, hops,
		       jdbl(v, "availability", &have),
		       cli_human((uint64_t)jdbl(v, "free", &have), fbuf, sizeof(fbuf)),
		       (int)jdbl(v, "load", &have), jdbl(v, "score", &have), jstr(v, "verdict"),
		       reason[0] ? ": " : "", reason);
	}
}

int cmd_probe(struct cli *c, int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"pin", required_argument, NULL, 'p'},
	    {"timeout", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	json_object *req, *reply = NULL;
	const char *err;
	char mnt[PATH_MAX];
	uint64_t ino, v, pin = 0;
	bool json = false, set_pin = false;
	int timeout_ms = 10000, opt, rc;

	(void)c;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			json = true;
			break;
		case 'p':
			if (parse_u64(optarg, &pin) < 0 || pin > UINT32_MAX) {
				fprintf(stderr, "pstore: --pin wants a vendor id\n");
				return CLI_USAGE;
			}
			set_pin = true;
			break;
		case 't':
			if (parse_u64(optarg, &v) < 0 || v == 0 || v > INT_MAX) {
				fprintf(stderr, "pstore: --timeout wants milliseconds\n");
				return CLI_USAGE;
			}
			timeout_ms = (int)v;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return CLI_USAGE;
	}
	rc = ctl_find_mount(argv[optind], mnt, sizeof(mnt), &ino);
	if (rc < 0) {
		fprintf(stderr, "pstore: %s: %s\n", argv[optind],
			rc == -ENOTSUP ? "not on a pstorefs mount" : strerror(-rc));
		return CLI_FAIL;
	}
	req = json_object_new_object();
	json_object_object_add(req, "op", json_object_new_string("probe"));
	if (set_pin)
		json_object_object_add(req, "pin", json_object_new_int64((int64_t)pin));
	rc = ctl_request(mnt, req, timeout_ms, &reply);
	json_object_put(req);
	if (rc < 0) {
		fprintf(stderr, "pstore: control socket of mount %s: %s\n", mnt, strerror(-rc));
		return CLI_FAIL;
	}
	err = ctl_reply_error(reply);
	if (err) {
		fprintf(stderr, "pstore: %s: %s\n", mnt, err);
		json_object_put(reply);
		return CLI_FAIL;
	}
	if (json)
		printf("%s\n", json_object_to_json_string_ext(reply, JSON_C_TO_STRING_PLAIN));
	else
		print_table(reply);
	json_object_put(reply);
	return CLI_OK;
}
