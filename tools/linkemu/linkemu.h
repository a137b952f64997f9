/*
 * linkemu.h - pstore-linkemu, the userspace link emulator of tools/netlab.
 *
 * The kernels pstore is tested on have no netem qdisc, so delay, jitter,
 * loss and rate are applied by this small program: it owns two TUN/TAP
 * devices (each may live in a different network namespace) and moves every
 * packet read from one to the other, per direction through a `struct
 * lemu_dir`: loss, a bounded queue, a token bucket and a delay line.
 *
 * queue.c holds the per-direction logic (no I/O, unit-tested);
 * linkemu.c holds options, devices, the poll loop and signals.
 */
#ifndef PSTORE_LINKEMU_H
#define PSTORE_LINKEMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LEMU_NS_PER_SEC 1000000000ull

enum lemu_dist { LEMU_DIST_UNIFORM = 0, LEMU_DIST_NORMAL = 1 };

/* What one direction of the link does to its packets. */
struct lemu_params {
	uint64_t delay_ns;  /* fixed one-way delay */
	uint64_t jitter_ns; /* uniform: +-jitter; normal: standard deviation */
	enum lemu_dist dist;
	bool reorder;	/* let jitter reorder packets (default: keep order) */
	double loss;	/* drop probability, 0..1, independent per packet */
	uint64_t rate;	/* token bucket rate, bytes/s; 0 = unlimited */
	uint64_t burst; /* bucket size, bytes (0 = default, see lemu_dir_init) */
	uint32_t limit; /* packets held at most (queue + delay line) */
};

struct lemu_counters {
	uint64_t rx_pkts, rx_bytes; /* read from the input device */
	uint64_t tx_pkts, tx_bytes; /* written to the output device */
	uint64_t drop_loss;	    /* dropped by the loss probability */
	uint64_t drop_queue;	    /* dropped because `limit` packets were held */
	uint64_t write_errors;	    /* writes the output device refused */
};

/* xoshiro256** state; seeded through splitmix64. */
struct lemu_rng {
	uint64_t s[4];
};

void lemu_rng_seed(struct lemu_rng *r, uint64_t seed);
uint64_t lemu_rng_next(struct lemu_rng *r);
/* Uniform in [0, 1). */
double lemu_rng_double(struct lemu_rng *r);
/* Standard normal (Box-Muller). */
double lemu_rng_normal(struct lemu_rng *r);

/* One packet held by a direction; `data` follows the struct. */
struct lemu_pkt {
	uint64_t due_ns; /* when it leaves the delay line */
	uint64_t seq;	 /* arrival order, breaks ties in the heap */
	uint32_t len;
	unsigned char data[];
};

/*
 * One direction of the link.  Packets pass: loss -> queue admission (at most
 * `limit` held, tail drop) -> token bucket (FIFO waiting for tokens) ->
 * delay line (min-heap on due time).  Times are CLOCK_MONOTONIC ns, given
 * by the caller so that the logic is testable without clocks.
 */
struct lemu_dir {
	struct lemu_params p;
	struct lemu_rng rng;
	struct lemu_pkt **fifo; /* ring of `p.limit` slots: waiting for tokens */
	uint32_t fifo_head, fifo_len;
	struct lemu_pkt **heap; /* `p.limit` slots: the delay line */
	uint32_t heap_len;
	double tokens;	    /* bytes; may go negative after a packet > burst */
	uint64_t tokens_ns; /* when `tokens` was last brought up to date */
	uint64_t last_due;  /* due time of the last scheduled packet */
	uint64_t seq;
	struct lemu_counters c;
};

/* Copies `p`; fills the default burst.  0 or -ENOMEM / -EINVAL. */
int lemu_dir_init(struct lemu_dir *d, const struct lemu_params *p, uint64_t seed, uint64_t now);
/* Frees every packet still held and the arrays. */
void lemu_dir_free(struct lemu_dir *d);
/*
 * Offers a packet read at `now` (copied).  `no_loss` exempts it from the
 * loss probability (netlab's ARP frames).  Returns 1 if accepted, 0 if
 * dropped (counted), -ENOMEM.
 */
int lemu_dir_push(struct lemu_dir *d, uint64_t now, const void *data, uint32_t len,
		  bool no_loss);
/*
 * Takes the next packet whose time has come (moving packets from the token
 * bucket into the delay line first), or NULL.  The caller owns it: free().
 */
struct lemu_pkt *lemu_dir_pop(struct lemu_dir *d, uint64_t now);
/* The next time something happens in this direction; UINT64_MAX if idle. */
uint64_t lemu_dir_next(const struct lemu_dir *d);
/* Packets held (token bucket queue + delay line). */
uint32_t lemu_dir_held(const struct lemu_dir *d);

#endif
