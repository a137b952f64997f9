/*
 * linkemu.c - pstore-linkemu: a userspace link emulator between two TUN or
 * TAP devices, for tools/netlab on kernels without the netem qdisc.
 *
 * The program attaches to device A and device B (each optionally in its own
 * named network namespace, entered only while the device is opened), then
 * loops: packets read from A go through the a->b direction (queue.c) and are
 * written to B when due, and the other way round.  It is a wire, not a
 * router: it never looks at or changes IP headers, so TTLs are untouched.
 * One thread, poll() on both devices, a timerfd armed for the next due
 * packet and a signalfd (SIGUSR1 prints counters, SIGTERM/SIGINT/SIGHUP end
 * the program, printing counters).  It does not configure addresses, routes
 * or link state: that is netlab's job.
 *
 * Exit status: 0 after a terminating signal, 1 runtime failure (device
 * cannot be opened, device vanished), 2 usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "linkemu.h"

#define PROG "pstore-linkemu"
#define MAX_FRAME 65536
#define READ_BATCH 64 /* packets read per device per loop turn: fairness */

enum { MODE_TUN = 0, MODE_TAP = 1 };

struct side {
	const char *dev;
	const char *netns;
	int fd;
};

struct options {
	struct side a, b;
	int mode;
	struct lemu_params p[2]; /* [0] = a->b, [1] = b->a */
	uint64_t seed;
	bool seed_set;
	const char *tag;
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: " PROG " --dev-a NAME --dev-b NAME [options]\n"
	    "Moves packets between two TUN/TAP devices with delay, jitter, loss and rate.\n"
	    "\n"
	    "  --dev-a NAME, --dev-b NAME   the two devices (created if missing, else "
	    "attached)\n"
	    "  --netns-a NS, --netns-b NS   open that device in network namespace NS\n"
	    "                               (a name under /run/netns or a path)\n"
	    "  --mode tun|tap               device type (default tun: IP packets)\n"
	    "  --delay MS                   one-way delay per direction (default 0)\n"
	    "  --jitter MS                  uniform: +-MS; normal: standard deviation (default "
	    "0)\n"
	    "  --dist uniform|normal        jitter distribution (default uniform)\n"
	    "  --reorder                    let jitter reorder packets (default: order kept)\n"
	    "  --loss PCT                   drop probability in percent (default 0)\n"
	    "  --rate BYTES_PER_S           token bucket rate (default 0 = unlimited)\n"
	    "  --burst BYTES                bucket size (default max(rate/100, 3028))\n"
	    "  --limit PKTS                 packets held per direction, tail drop (default "
	    "1000)\n"
	    "  --seed N                     random seed (default: from the clock; printed)\n"
	    "  --tag TEXT                   label for the log lines (netlab uses it to find "
	    "us)\n"
	    "  --ab-OPT, --ba-OPT           delay, jitter, dist, loss, rate, burst, limit for\n"
	    "                               one direction only (a->b or b->a)\n"
	    "  -h, --help                   this text\n"
	    "\n"
	    "SIGUSR1 prints the counters to stderr; SIGTERM/SIGINT print them and exit 0.\n"
	    "Exit status: 0 ok, 1 runtime failure, 2 usage error.\n");
}

static int usage_error(const char *fmt, const char *a, const char *b)
{
	fprintf(stderr, PROG ": ");
	fprintf(stderr, fmt, a, b);
	fprintf(stderr, " (see --help)\n");
	return -EINVAL;
}

static int parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
		return usage_error("%s: not a number in range: '%s'", opt, s);
	*out = v;
	return 0;
}

static int parse_u64(const char *opt, const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	if (*s == '-' || *s == '\0')
		return usage_error("%s: expected a non-negative integer, got '%s'", opt, s);
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return usage_error("%s: expected an integer in range, got '%s'", opt, s);
	*out = v;
	return 0;
}

/* Parameters settable for both directions or one. */
enum param { P_DELAY, P_JITTER, P_DIST, P_LOSS, P_RATE, P_BURST, P_LIMIT, P_COUNT };
static const char *const param_names[P_COUNT] = {"delay", "jitter", "dist", "loss",
						 "rate",  "burst",  "limit"};

/* Long option values: 1000 + 3 * param + scope (0 both, 1 a->b, 2 b->a). */
enum {
	OPT_PARAM = 1000,
	OPT_DEV_A = 300,
	OPT_DEV_B,
	OPT_NS_A,
	OPT_NS_B,
	OPT_MODE,
	OPT_SEED,
	OPT_TAG,
	OPT_REORDER
};

static int set_param(struct lemu_params *p, enum param which, const char *opt, const char *v)
{
	double d;
	uint64_t u;
	int r;

	switch (which) {
	case P_DELAY:
	case P_JITTER:
		if ((r = parse_double(opt, v, 0.0, 3600e3, &d)) < 0)
			return r;
		if (which == P_DELAY)
			p->delay_ns = (uint64_t)llround(d * 1e6);
		else
			p->jitter_ns = (uint64_t)llround(d * 1e6);
		return 0;
	case P_DIST:
		if (strcmp(v, "uniform") == 0)
			p->dist = LEMU_DIST_UNIFORM;
		else if (strcmp(v, "normal") == 0)
			p->dist = LEMU_DIST_NORMAL;
		else
			return usage_error("%s: expected uniform or normal, got '%s'", opt, v);
		return 0;
	case P_LOSS:
		if ((r = parse_double(opt, v, 0.0, 100.0, &d)) < 0)
			return r;
		p->loss = d / 100.0;
		return 0;
	case P_RATE:
		if ((r = parse_u64(opt, v, 100ull << 30, &u)) < 0)
			return r;
		p->rate = u;
		return 0;
	case P_BURST:
		if ((r = parse_u64(opt, v, 1ull << 30, &u)) < 0)
			return r;
		if (u > 0 && u < 1514)
			return usage_error("%s: at least 1514 bytes (one frame), got '%s'", opt,
					   v);
		p->burst = u;
		return 0;
	case P_LIMIT:
		if ((r = parse_u64(opt, v, 1u << 20, &u)) < 0)
			return r;
		if (u == 0)
			return usage_error("%s: must be at least 1, got '%s'", opt, v);
		p->limit = (uint32_t)u;
		return 0;
	default:
		return -EINVAL;
	}
}

static int parse_options(int argc, char **argv, struct options *o)
{
	static const char *const scope_prefix[3] = {"", "ab-", "ba-"};
	static char names[P_COUNT * 3][16];
	struct option lo[P_COUNT * 3 + 16];
	const char *values[P_COUNT][3] = {{0}};
	int n = 0, c, r;
	bool reorder = false;

	memset(o, 0, sizeof(*o));
	o->a.fd = o->b.fd = -1;
	for (int pi = 0; pi < P_COUNT; pi++) {
		for (int s = 0; s < 3; s++) {
			snprintf(names[pi * 3 + s], sizeof(names[0]), "%s%s", scope_prefix[s],
				 param_names[pi]);
			lo[n++] = (struct option){names[pi * 3 + s], required_argument, NULL,
						  OPT_PARAM + pi * 3 + s};
		}
	}
	lo[n++] = (struct option){"dev-a", required_argument, NULL, OPT_DEV_A};
	lo[n++] = (struct option){"dev-b", required_argument, NULL, OPT_DEV_B};
	lo[n++] = (struct option){"netns-a", required_argument, NULL, OPT_NS_A};
	lo[n++] = (struct option){"netns-b", required_argument, NULL, OPT_NS_B};
	lo[n++] = (struct option){"mode", required_argument, NULL, OPT_MODE};
	lo[n++] = (struct option){"seed", required_argument, NULL, OPT_SEED};
	lo[n++] = (struct option){"tag", required_argument, NULL, OPT_TAG};
	lo[n++] = (struct option){"reorder", no_argument, NULL, OPT_REORDER};
	lo[n++] = (struct option){"help", no_argument, NULL, 'h'};
	lo[n++] = (struct option){NULL, 0, NULL, 0};

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 1;
		case OPT_DEV_A:
			o->a.dev = optarg;
			break;
		case OPT_DEV_B:
			o->b.dev = optarg;
			break;
		case OPT_NS_A:
			o->a.netns = optarg;
			break;
		case OPT_NS_B:
			o->b.netns = optarg;
			break;
		case OPT_MODE:
			if (strcmp(optarg, "tun") == 0)
				o->mode = MODE_TUN;
			else if (strcmp(optarg, "tap") == 0)
				o->mode = MODE_TAP;
			else
				return usage_error("%s: expected tun or tap, got '%s'",
						   "--mode", optarg);
			break;
		case OPT_SEED:
			if ((r = parse_u64("--seed", optarg, UINT64_MAX, &o->seed)) < 0)
				return r;
			o->seed_set = true;
			break;
		case OPT_TAG:
			o->tag = optarg;
			break;
		case OPT_REORDER:
			reorder = true;
			break;
		case '?':
			return usage_error("unknown option or missing value: %s%s",
					   argv[optind - 1], "");
		default:
			if (c >= OPT_PARAM && c < OPT_PARAM + P_COUNT * 3)
				values[(c - OPT_PARAM) / 3][(c - OPT_PARAM) % 3] = optarg;
			else
				return usage_error("unexpected option %s%s", argv[optind - 1],
						   "");
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'%s", argv[optind], "");
	if (!o->a.dev || !o->b.dev)
		return usage_error("--dev-a and --dev-b are required%s%s", "", "");
	if (strlen(o->a.dev) >= IFNAMSIZ || strlen(o->b.dev) >= IFNAMSIZ)
		return usage_error("device names have at most 15 characters%s%s", "", "");
	if (strcmp(o->a.dev, o->b.dev) == 0 &&
	    ((!o->a.netns && !o->b.netns) ||
	     (o->a.netns && o->b.netns && strcmp(o->a.netns, o->b.netns) == 0)))
		return usage_error("--dev-a and --dev-b name the same device '%s'%s", o->a.dev,
				   "");

	/* both-direction values first, then the per-direction overrides */
	for (int dir = 0; dir < 2; dir++) {
		o->p[dir].limit = 1000;
		o->p[dir].reorder = reorder;
		for (int s = 0; s < 3; s += (s == 0 ? 1 + dir : 3)) {
			for (int pi = 0; pi < P_COUNT; pi++) {
				char opt[24];
				if (!values[pi][s])
					continue;
				snprintf(opt, sizeof(opt), "--%s", names[pi * 3 + s]);
				if ((r = set_param(&o->p[dir], pi, opt, values[pi][s])) < 0)
					return r;
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------------ devices */

static int enter_netns(const char *ns)
{
	char path[PATH_MAX];
	int fd, r = 0;

	if (strchr(ns, '/'))
		snprintf(path, sizeof(path), "%s", ns);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		fprintf(stderr, PROG ": network namespace %s: %s\n", path, strerror(errno));
		return r;
	}
	if (setns(fd, CLONE_NEWNET) < 0) {
		r = -errno;
		fprintf(stderr, PROG ": setns %s: %s\n", path, strerror(errno));
	}
	close(fd);
	return r;
}

/* Opens side `s` (in its namespace, if any) and returns to `home_ns`. */
static int side_open(struct side *s, int mode, int home_ns)
{
	struct ifreq ifr;
	int r = 0;

	if (s->netns && (r = enter_netns(s->netns)) < 0)
		return r;
	s->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (s->fd < 0) {
		r = -errno;
		fprintf(stderr, PROG ": /dev/net/tun: %s\n", strerror(errno));
		goto out;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = (short)((mode == MODE_TAP ? IFF_TAP : IFF_TUN) | IFF_NO_PI);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", s->dev);
	if (ioctl(s->fd, TUNSETIFF, &ifr) < 0) {
		r = -errno;
		fprintf(stderr, PROG ": attach to %s%s%s: %s%s\n", s->dev,
			s->netns ? " in " : "", s->netns ? s->netns : "", strerror(errno),
			errno == EINVAL ? " (is it a device of the other mode?)" : "");
		close(s->fd);
		s->fd = -1;
	}
out:
	if (s->netns && setns(home_ns, CLONE_NEWNET) < 0 && r == 0) {
		r = -errno;
		fprintf(stderr, PROG ": setns back: %s\n", strerror(errno));
	}
	return r;
}

/* ------------------------------------------------------------ the loop */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * LEMU_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void print_counters(const struct options *o, const struct lemu_dir dir[2])
{
	static const char *const names[2] = {"a->b", "b->a"};

	for (int i = 0; i < 2; i++) {
		const struct lemu_counters *c = &dir[i].c;
		fprintf(stderr,
			PROG "[%s]: %s rx=%llu rx_bytes=%llu tx=%llu tx_bytes=%llu "
			     "drop_loss=%llu drop_queue=%llu write_errors=%llu held=%u\n",
			o->tag ? o->tag : "", names[i], (unsigned long long)c->rx_pkts,
			(unsigned long long)c->rx_bytes, (unsigned long long)c->tx_pkts,
			(unsigned long long)c->tx_bytes, (unsigned long long)c->drop_loss,
			(unsigned long long)c->drop_queue, (unsigned long long)c->write_errors,
			lemu_dir_held(&dir[i]));
	}
	fflush(stderr);
}

/* Ethernet frames that are not IPv4/IPv6 (ARP) are exempt from loss. */
static bool exempt_from_loss(int mode, const unsigned char *buf, ssize_t n)
{
	unsigned type;

	if (mode != MODE_TAP || n < 14)
		return false;
	type = (unsigned)buf[12] << 8 | buf[13];
	return type != 0x0800 && type != 0x86dd;
}

/* Reads up to READ_BATCH packets from `in` into `d`.  0, or -errno when the
 * device is gone or memory ran out. */
static int drain_input(const struct options *o, struct side *in, struct lemu_dir *d,
		       unsigned char *buf)
{
	for (int i = 0; i < READ_BATCH; i++) {
		ssize_t n = read(in->fd, buf, MAX_FRAME);
		int r;
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			r = -errno;
			fprintf(stderr, PROG "[%s]: read %s: %s\n", o->tag ? o->tag : "",
				in->dev, strerror(errno));
			return r;
		}
		if (n == 0)
			return 0;
		r = lemu_dir_push(d, now_ns(), buf, (uint32_t)n,
				  exempt_from_loss(o->mode, buf, n));
		if (r < 0)
			return r;
	}
	return 0;
}

static void send_due(struct side *out, struct lemu_dir *d, uint64_t now)
{
	struct lemu_pkt *p;

	while ((p = lemu_dir_pop(d, now)) != NULL) {
		if (write(out->fd, p->data, p->len) == (ssize_t)p->len) {
			d->c.tx_pkts++;
			d->c.tx_bytes += p->len;
		} else {
			d->c.write_errors++;
		}
		free(p);
	}
}

static int arm_timer(int tfd, uint64_t at)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	if (at != UINT64_MAX) {
		if (at == 0)
			at = 1; /* 0 would disarm */
		its.it_value.tv_sec = (time_t)(at / LEMU_NS_PER_SEC);
		its.it_value.tv_nsec = (long)(at % LEMU_NS_PER_SEC);
	}
	return timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) < 0 ? -errno : 0;
}

static int run(struct options *o, struct lemu_dir dir[2], int sfd, int tfd)
{
	unsigned char *buf = malloc(MAX_FRAME);
	struct side *in[2] = {&o->a, &o->b}, *out[2] = {&o->b, &o->a};
	uint64_t armed = UINT64_MAX;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		struct pollfd pfd[4] = {{.fd = o->a.fd, .events = POLLIN},
					{.fd = o->b.fd, .events = POLLIN},
					{.fd = tfd, .events = POLLIN},
					{.fd = sfd, .events = POLLIN}};
		uint64_t now = now_ns(), next;

		for (int i = 0; i < 2; i++)
			send_due(out[i], &dir[i], now);
		next = lemu_dir_next(&dir[0]);
		if (lemu_dir_next(&dir[1]) < next)
			next = lemu_dir_next(&dir[1]);
		if (next != armed) {
			if ((r = arm_timer(tfd, next)) < 0) {
				fprintf(stderr, PROG ": timerfd: %s\n", strerror(-r));
				break;
			}
			armed = next;
		}
		/* No timeout needed: the timerfd is armed whenever a packet is held,
		 * and signals arrive through the signalfd. */
		if (poll(pfd, 4, -1) < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			fprintf(stderr, PROG ": poll: %s\n", strerror(errno));
			break;
		}
		if (pfd[3].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGUSR1) {
					print_counters(o, dir);
				} else {
					fprintf(stderr, PROG "[%s]: signal %u, exiting\n",
						o->tag ? o->tag : "", si.ssi_signo);
					break;
				}
			}
		}
		if (pfd[2].revents & POLLIN) {
			uint64_t ticks;
			if (read(tfd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
				fprintf(stderr, PROG ": timerfd read: %s\n", strerror(errno));
			armed = UINT64_MAX; /* expired: rearm on the next turn */
		}
		for (int i = 0; i < 2; i++) {
			if (!pfd[i].revents)
				continue;
			if ((r = drain_input(o, in[i], &dir[i], buf)) < 0)
				goto out;
		}
	}
out:
	free(buf);
	return r;
}

int main(int argc, char **argv)
{
	struct options o;
	struct lemu_dir dir[2];
	sigset_t mask;
	int r, home_ns = -1, sfd = -1, tfd = -1, status = 1;
	bool dir_ok[2] = {false, false};

	r = parse_options(argc, argv, &o);
	if (r > 0)
		return 0;
	if (r < 0)
		return 2;
	if (!o.seed_set)
		o.seed = now_ns() ^ ((uint64_t)getpid() << 32);

	/* wakeups as close to the due time as the timer allows */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
	    (sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0 ||
	    (tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)) < 0) {
		fprintf(stderr, PROG ": signalfd/timerfd: %s\n", strerror(errno));
		goto cleanup;
	}
	signal(SIGPIPE, SIG_IGN);
	home_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (home_ns < 0) {
		fprintf(stderr, PROG ": /proc/self/ns/net: %s\n", strerror(errno));
		goto cleanup;
	}
	if (side_open(&o.a, o.mode, home_ns) < 0 || side_open(&o.b, o.mode, home_ns) < 0)
		goto cleanup;
	for (int i = 0; i < 2; i++) {
		/* different streams per direction, both fixed by --seed */
		if ((r = lemu_dir_init(&dir[i], &o.p[i],
				       o.seed + (uint64_t)i * 0x5851f42d4c957f2dull,
				       now_ns())) < 0) {
			fprintf(stderr, PROG ": %s\n", strerror(-r));
			goto cleanup;
		}
		dir_ok[i] = true;
	}
	for (int i = 0; i < 2; i++) {
		const struct lemu_params *p = &dir[i].p;
		fprintf(stderr,
			PROG "[%s]: %s delay=%.3fms jitter=%.3fms dist=%s%s loss=%.3f%% "
			     "rate=%llu burst=%llu limit=%u\n",
			o.tag ? o.tag : "", i == 0 ? "a->b" : "b->a", (double)p->delay_ns / 1e6,
			(double)p->jitter_ns / 1e6,
			p->dist == LEMU_DIST_NORMAL ? "normal" : "uniform",
			p->reorder ? " reorder" : "", p->loss * 100.0,
			(unsigned long long)p->rate, (unsigned long long)p->burst, p->limit);
	}
	fprintf(stderr, PROG "[%s]: ready a=%s%s%s b=%s%s%s mode=%s seed=%llu pid=%d\n",
		o.tag ? o.tag : "", o.a.dev, o.a.netns ? "@" : "", o.a.netns ? o.a.netns : "",
		o.b.dev, o.b.netns ? "@" : "", o.b.netns ? o.b.netns : "",
		o.mode == MODE_TAP ? "tap" : "tun", (unsigned long long)o.seed, (int)getpid());
	fflush(stderr);

	r = run(&o, dir, sfd, tfd);
	print_counters(&o, dir);
	status = r < 0 ? 1 : 0;
cleanup:
	for (int i = 0; i < 2; i++) {
		if (dir_ok[i])
			lemu_dir_free(&dir[i]);
	}
	if (o.a.fd >= 0)
		close(o.a.fd);
	if (o.b.fd >= 0)
		close(o.b.fd);
	if (home_ns >= 0)
		close(home_ns);
	if (sfd >= 0)
		close(sfd);
	if (tfd >= 0)
		close(tfd);
	return status;
}
