/*
 * main.c - pstore-vendord: command line, start-up (config, piece store and
 * recovery, TLS, worker pools, server, FAT link), signals and an orderly
 * shutdown.  Runs in the foreground and logs to stderr.
 */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "memtune.h"
#include "vendor.h"
#include "xport.h"

#define DEFAULT_CONFIG "/etc/pstore/vendord.conf"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: pstore-vendord [-c FILE] [-n] [-d] [-h] [-V] [--dump-index [--json]]\n"
		"  -c, --config FILE  configuration (default " DEFAULT_CONFIG ")\n"
		"  -n, --check        check the configuration and exit\n"
		"  -d, --debug        debug logging\n"
		"  --dump-index       print the piece index (read-only, works while running)\n"
		"  --json             with --dump-index: a JSON document\n"
		"  -h, --help         this help\n"
		"  -V, --version      version\n"
		"See pstore-vendord(8).\n");
}

static void on_signal(evutil_socket_t sig, short ev, void *arg)
{
	struct event_base *base = arg;

	(void)ev;
	log_info("signal %d: shutting down", (int)sig);
	event_base_loopexit(base, NULL);
}

/* SIGHUP: reload the CRL of both directions (also reloaded when it changes). */
static void on_sighup(evutil_socket_t sig, short ev, void *arg)
{
	struct vendord *vd = arg;

	(void)sig;
	(void)ev;
	log_info("SIGHUP: reloading the CRL");
	xport_tls_reload_crl(vd->tls_server);
	xport_tls_reload_crl(vd->tls_client);
}

static int run(const struct vendor_config *cfg)
{
	struct vendord vd = {.cfg = cfg};
	struct event *sigterm = NULL, *sigint = NULL, *sighup = NULL;
	int rc = 1;

	pthread_rwlock_init(&vd.key_lock, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (vstore_open((char(*)[VENDOR_PATH_MAX])cfg->devices, cfg->n_devices, cfg->capacity,
			cfg->index, &vd.store) < 0)
		goto out;
	vd.tls_server = xport_tls_new(cfg->tls_ca, cfg->tls_cert, cfg->tls_key, true);
	vd.tls_client = xport_tls_new(cfg->tls_ca, cfg->tls_cert, cfg->tls_key, false);
	if (!vd.tls_server || !vd.tls_client)
		goto out;
	if (cfg->tls_crl[0] &&
	    (xport_tls_set_crl(vd.tls_server, cfg->tls_ca, cfg->tls_crl) < 0 ||
	     xport_tls_set_crl(vd.tls_client, cfg->tls_ca, cfg->tls_crl) < 0))
		goto out; /* logged by the transport */
	vd.pool = xport_pool_new(vd.tls_client, 4);
	vd.workers = vworkq_new("worker", cfg->workers, 1024);
	/* Forwards wait on the network; more of them than workers keeps
	 * crossing chains from exhausting them. */
	vd.forwarders = vworkq_new("forward", MAX(cfg->workers * 4, 16u), 1024);
	vd.base = event_base_new();
	if (!vd.pool || !vd.workers || !vd.forwarders || !vd.base) {
		log_err("cannot set up the pools and the event loop");
		goto out;
	}
	vd.srv = xport_server_new(vd.base, vd.tls_server, cfg->listen, vserver_handle, &vd);
	if (!vd.srv) {
		log_err("cannot listen on %s", cfg->listen);
		goto out;
	}
	/* chunk payloads (after the header) land 4 KiB-aligned for O_DIRECT */
	xport_server_align_data(vd.srv, 4096, CHUNK_HDR_LEN, 64u << 10);
	if (vprobe_start(&vd, &vd.probe) < 0)
		log_warn("no UDP path probes: clients measure this vendor over TLS only");
	sigterm = evsignal_new(vd.base, SIGTERM, on_signal, vd.base);
	sigint = evsignal_new(vd.base, SIGINT, on_signal, vd.base);
	if (!sigterm || !sigint || evsignal_add(sigterm, NULL) < 0 ||
	    evsignal_add(sigint, NULL) < 0) {
		log_err("cannot install signal handlers");
		goto out;
	}
	sighup = evsignal_new(vd.base, SIGHUP, on_sighup, &vd);
	if (!sighup || evsignal_add(sighup, NULL) < 0) {
		log_err("cannot install the SIGHUP handler");
		goto out;
	}
	/* Sockets are bound: give up root before talking to anyone. */
	if (privdrop_to(cfg->user) < 0)
		goto out;
	if (vfatlink_start(&vd, &vd.fatlink) < 0) {
		log_err("cannot start the FAT link thread");
		goto out;
	}
	log_info("vendor %u listening on %s (advertised %s, %zu devices)", cfg->id, cfg->listen,
		 cfg->address, cfg->n_devices);
	if (event_base_dispatch(vd.base) < 0)
		log_err("event loop failed");
	else
		rc = 0;
out:
	/* Stop taking work, finish (or refuse) what is queued, then close. */
	vfatlink_stop(vd.fatlink);
	vworkq_free(vd.workers);
	vworkq_free(vd.forwarders);
	vprobe_stop(vd.probe);
	xport_server_free(vd.srv);
	if (sigterm)
		event_free(sigterm);
	if (sigint)
		event_free(sigint);
	if (sighup)
		event_free(sighup);
	if (vd.base)
		event_base_free(vd.base);
	xport_pool_free(vd.pool);
	xport_tls_free(vd.tls_client);
	xport_tls_free(vd.tls_server);
	vstore_close(vd.store);
	cap_key_free(vd.fat_key);
	pthread_rwlock_destroy(&vd.key_lock);
	if (rc == 0)
		log_info("stopped");
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'n'},
	    {"debug", no_argument, NULL, 'd'},	      {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},      {"dump-index", no_argument, NULL, 1},
	    {"json", no_argument, NULL, 2},	      {NULL, 0, NULL, 0},
	};
	const char *config = DEFAULT_CONFIG;
	bool check = false, debug = false, dump = false, json = false;
	static struct vendor_config cfg; /* large: keep off the stack */
	char err[1024];
	int c;

	log_init(argv[0], LOG_INFO);
	while ((c = getopt_long(argc, argv, "c:ndhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 'n':
			check = true;
			break;
		case 'd':
			debug = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("pstore-vendord %s\n", PSTORE_VERSION);
			return 0;
		case 1:
			dump = true;
			break;
		case 2:
			json = true;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || (json && !dump)) {
		usage(stderr);
		return 2;
	}
	if (vendor_config_load(config, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "pstore-vendord: %s\n", err);
		return 2;
	}
	log_set_level(debug ? LOG_DEBUG : cfg.log_level);
	if (check) {
		printf("%s: configuration ok\n", config);
		return 0;
	}
	if (dump)
		return vdump_index(cfg.index, json) < 0 ? 1 : 0;
	memtune_apply(0, MEMTUNE_ARENA_MAX); /* before any thread */
	memtune_trim_start(MEMTUNE_TRIM_MS); /* failure logged; RSS then stays at its peak */
	c = run(&cfg);
	memtune_trim_stop();
	return c;
}
