/*
 * main.c - pstore-fatd: command line, start-up (config, FAT store, signing
 * key, TLS, listener), the libevent loop with its timers (lease expiry,
 * housekeeping) and a clean shutdown on SIGINT/SIGTERM.  Requests are
 * handled on the loop thread (dispatch.c): LMDB transactions are short.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common.h"
#include "etcd.h"
#include "fatsrv.h"
#include "xport.h"

#define FATD_DEFAULT_CONFIG "/etc/pstore/fatd.conf"
#define FATD_EXPIRE_MS 500
#define FATD_GC_MS 60000

static void usage(FILE *f)
{
	fprintf(f, "usage: pstore-fatd [-c FILE] [-n] [-d] [-h] [-V]\n"
		   "The pstore FAT server: vendor registry, volumes, leases, commits.\n"
		   "  -c, --config FILE  configuration (default " FATD_DEFAULT_CONFIG ")\n"
		   "  -n, --check        check the configuration and exit\n"
		   "  -d, --debug        debug logging\n"
		   "  -h, --help         this help\n"
		   "  -V, --version      print the version\n"
		   "Runs in the foreground and logs to stderr.  See pstore-fatd(8).\n");
}

struct fatd {
	struct fat_ctx fc;
	struct event_base *base;
	unsigned ticks;
};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct fatd *d = arg;

	(void)what;
	log_info("signal %d: shutting down", (int)sig);
	event_base_loopbreak(d->base);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct fatd *d = arg;

	int rc;

	(void)fd;
	(void)what;
	/* with etcd, only the elected leader does the serial housekeeping */
	if (!fat_cluster_housekeeping_begin(&d->fc))
		return;
	rc = fat_lease_expire(&d->fc, NULL);
	if (rc != -ESTALE && ++d->ticks % (FATD_GC_MS / FATD_EXPIRE_MS) == 0)
		rc = fat_gc_requests(&d->fc, 1000, NULL);
	fat_cluster_housekeeping_end(&d->fc, rc);
}

/* SIGHUP: reload the CRL (it is also reloaded when the file changes). */
static void on_sighup(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	log_info("SIGHUP: reloading the CRL");
	xport_tls_reload_crl(arg);
}

static int run(const struct fat_config *cfg)
{
	struct fatd d = {0};
	struct fat_store *store = NULL;
	struct cap_key *key = NULL;
	struct xport_tls *tls = NULL;
	struct xport_server *srv = NULL;
	struct event *sigint = NULL, *sigterm = NULL, *tick = NULL, *sighup = NULL;
	struct timeval tv = {.tv_sec = 0, .tv_usec = FATD_EXPIRE_MS * 1000};
	char path[PATH_MAX], host[128];
	uint16_t port;
	int rc, ret = 1;

	rc = fat_cluster_open_store(cfg, &store);
	if (rc < 0)
		goto out;
	if ((size_t)snprintf(path, sizeof(path), "%s/signing.key", cfg->data) >= sizeof(path)) {
		log_err("data path too long");
		goto out;
	}
	if (mkdir_p(cfg->data, 0700) < 0 || fat_cluster_signing_key(store, path) < 0) {
		log_err("cannot set up the signing key in %s", cfg->data);
		goto out;
	}
	key = cap_key_load(path, true);
	if (!key) {
		log_err("cannot load or create the signing key %s", path);
		goto out;
	}
	rc = fat_ctx_init(&d.fc, store, key);
	store = NULL;
	key = NULL;
	if (rc < 0) {
		log_err("bad signing key %s", path);
		goto out;
	}
	d.fc.lease_max_ms = cfg->lease_max_ms;
	d.fc.vendor_timeout_ms = cfg->vendor_timeout_ms;
	d.fc.heartbeat_ms = cfg->heartbeat_ms;
	if (fat_cluster_start(&d.fc, cfg) < 0) {
		log_err("cannot join the FAT leader election");
		goto out;
	}

	tls = xport_tls_new(cfg->tls_ca, cfg->tls_cert, cfg->tls_key, true);
	if (!tls)
		goto out;
	if (cfg->tls_crl[0] && xport_tls_set_crl(tls, cfg->tls_ca, cfg->tls_crl) < 0)
		goto out; /* logged by the transport */
	d.base = event_base_new();
	if (!d.base) {
		log_err("cannot create the event loop");
		goto out;
	}
	sigint = evsignal_new(d.base, SIGINT, on_signal, &d);
	sigterm = evsignal_new(d.base, SIGTERM, on_signal, &d);
	sighup = evsignal_new(d.base, SIGHUP, on_sighup, tls);
	if (!sighup || evsignal_add(sighup, NULL) < 0) {
		log_err("cannot set up the SIGHUP event");
		goto out;
	}
	tick = event_new(d.base, -1, EV_PERSIST, on_tick, &d);
	if (!sigint || !sigterm || !tick || evsignal_add(sigint, NULL) < 0 ||
	    evsignal_add(sigterm, NULL) < 0 || event_add(tick, &tv) < 0) {
		log_err("cannot set up signal and timer events");
		goto out;
	}
	/* leases that expired while we were down are released before serving */
	if (fat_cluster_housekeeping_begin(&d.fc))
		fat_cluster_housekeeping_end(&d.fc, fat_lease_expire(&d.fc, NULL));
	srv = xport_server_new(d.base, tls, cfg->listen, fat_dispatch, &d.fc);
	if (!srv)
		goto out; /* logged by the transport */
	if (fat_listen_host(cfg->listen, host, sizeof(host)) < 0)
		goto out;
	port = xport_server_port(srv);
	if (privdrop_to(cfg->user) < 0)
		goto out;
	if (strchr(host, ':'))
		log_info("listening on [%s]:%u", host, (unsigned)port);
	else
		log_info("listening on %s:%u", host, (unsigned)port);
	if (event_base_dispatch(d.base) < 0) {
		log_err("event loop failed");
		goto out;
	}
	ret = 0;
	log_info("stopped");
out:
	xport_server_free(srv);
	if (tick)
		event_free(tick);
	if (sigint)
		event_free(sigint);
	if (sigterm)
		event_free(sigterm);
	if (sighup)
		event_free(sighup);
	if (d.base)
		event_base_free(d.base);
	xport_tls_free(tls);
	fat_cluster_stop(&d.fc);
	fat_ctx_fini(&d.fc);
	fat_store_close(store);
	cap_key_free(key);
	return ret;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'n'},
	    {"debug", no_argument, NULL, 'd'},	      {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
	};
	const char *config = FATD_DEFAULT_CONFIG;
	bool check = false, debug = false;
	struct fat_config cfg;
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
			printf("pstore-fatd %s\n", PSTORE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "pstore-fatd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (fat_config_load(config, &cfg) < 0)
		return 2;
	log_set_level(debug ? LOG_DEBUG : cfg.log_level);
	if (check) {
		printf("%s: configuration ok\n", config);
		return 0;
	}
	return run(&cfg);
}
