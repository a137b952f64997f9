/*
 * out.c - what the pstore subcommands that list something share: parsing
 * the options of a command that takes only [--json] [--help] and no operand
 * (vendors, fat status, volume list).
 */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"

int cli_opts_json(int argc, char **argv, void (*usage)(FILE *), bool *json)
{
	static const struct option longopts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	*json = false;
	optind = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			*json = true;
			break;
		case 'h':
			usage(stdout);
			return CLI_OK;
		default:
			usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return CLI_USAGE;
	}
	return -1;
}
