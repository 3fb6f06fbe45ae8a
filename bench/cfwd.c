/* SPDX-License-Identifier: Apache-2.0
 *
 * cfwd: the C baseline for IntelliNode's forwarding benchmark.
 *
 * It does exactly the work the Rust "forward" pipeline does and nothing more:
 * one worker lcore, ports 0 and 1 paired, rx_burst on one port, tx_burst the
 * same mbufs out of the other, free whatever the TX ring refused. No MAC
 * rewriting, no header parsing: IntelliNode is a transparent bump in the wire,
 * so any extra per-packet work here would flatter the Rust number.
 *
 * Usage: cfwd [EAL args] -- --duration SECS [--burst N] [--json FILE]
 *
 * Prints one JSON object on stdout:
 *   {"rx_packets":N,"tx_packets":N,"dropped":N,"duration_secs":F,"mpps":F}
 * Any failure prints one line "cfwd: error: ..." on stderr and exits 1.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_common.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

/* Sizes fixed by the benchmark contract so both forwarders run identically. */
#define NB_MBUFS 8191        /* 2^n - 1 is the most memory-efficient ring size */
#define MBUF_CACHE 256
#define NB_DESC 1024
#define MAX_BURST 512
#define NB_PORTS 2

/* Plain (non-atomic) counters, one cache line per lcore so that the worker
 * never shares a line with anybody. Main only reads them after the worker has
 * been joined by rte_eal_wait_lcore(), which is a full synchronisation point. */
struct lcore_stats {
	uint64_t rx;
	uint64_t tx;
	uint64_t dropped;
	uint64_t tsc_start;
	uint64_t tsc_end;
} __rte_cache_aligned;

static struct lcore_stats stats[RTE_MAX_LCORE];

/* Set by main (timer or signal); polled by the worker once per loop. */
static volatile int force_quit;
static volatile sig_atomic_t got_signal;

static unsigned int burst = 32;

static void
die(const char *fmt, ...)
{
	va_list ap;

	fputs("cfwd: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void
on_signal(int sig)
{
	(void)sig;
	got_signal = 1;
}

static int
worker_main(void *arg)
{
	struct lcore_stats *st = &stats[rte_lcore_id()];
	struct rte_mbuf *pkts[MAX_BURST];
	const uint16_t nb = (uint16_t)burst;
	uint16_t p, n, sent;

	(void)arg;
	st->tsc_start = rte_rdtsc();
	while (!force_quit) {
		for (p = 0; p < NB_PORTS; p++) {
			n = rte_eth_rx_burst(p, 0, pkts, nb);
			if (n == 0)
				continue;
			sent = rte_eth_tx_burst(p ^ 1, 0, pkts, n);
			if (unlikely(sent < n))
				rte_pktmbuf_free_bulk(&pkts[sent], n - sent);
			st->rx += n;
			st->tx += sent;
			st->dropped += n - sent;
		}
	}
	st->tsc_end = rte_rdtsc();
	return 0;
}

static void
port_init(uint16_t port, struct rte_mempool *pool)
{
	struct rte_eth_conf conf;
	struct rte_eth_dev_info info;
	uint16_t nb_rxd = NB_DESC, nb_txd = NB_DESC;
	int ret;

	memset(&conf, 0, sizeof(conf));
	ret = rte_eth_dev_info_get(port, &info);
	if (ret != 0)
		die("port %u: rte_eth_dev_info_get: %s", port, rte_strerror(-ret));
	ret = rte_eth_dev_configure(port, 1, 1, &conf);
	if (ret != 0)
		die("port %u: rte_eth_dev_configure: %s", port, rte_strerror(-ret));
	/* Clamp to what the driver supports; vdevs accept 1024 but be honest. */
	ret = rte_eth_dev_adjust_nb_rx_tx_desc(port, &nb_rxd, &nb_txd);
	if (ret != 0)
		die("port %u: rte_eth_dev_adjust_nb_rx_tx_desc: %s", port,
		    rte_strerror(-ret));
	ret = rte_eth_rx_queue_setup(port, 0, nb_rxd,
				     rte_eth_dev_socket_id(port), NULL, pool);
	if (ret != 0)
		die("port %u: rte_eth_rx_queue_setup: %s", port, rte_strerror(-ret));
	ret = rte_eth_tx_queue_setup(port, 0, nb_txd,
				     rte_eth_dev_socket_id(port), NULL);
	if (ret != 0)
		die("port %u: rte_eth_tx_queue_setup: %s", port, rte_strerror(-ret));
	ret = rte_eth_dev_start(port);
	if (ret != 0)
		die("port %u: rte_eth_dev_start: %s", port, rte_strerror(-ret));
	/* Virtual devices often lack promiscuous mode; that is fine. */
	ret = rte_eth_promiscuous_enable(port);
	if (ret != 0 && ret != -ENOTSUP)
		die("port %u: rte_eth_promiscuous_enable: %s", port,
		    rte_strerror(-ret));
}

static double
parse_positive(const char *opt, const char *s, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v > 0) || v > max)
		die("invalid value for %s: '%s'", opt, s);
	return v;
}

static unsigned int
parse_burst(const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v == 0 || v > MAX_BURST)
		die("invalid value for --burst: '%s' (1..%d)", s, MAX_BURST);
	return (unsigned int)v;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"duration", required_argument, NULL, 'd'},
		{"burst", required_argument, NULL, 'b'},
		{"json", required_argument, NULL, 'j'},
		{NULL, 0, NULL, 0},
	};
	const char *json_path = NULL;
	FILE *json_file = NULL;
	double duration = 0, secs, mpps;
	struct rte_mempool *pool;
	struct lcore_stats *st;
	struct timespec tick = {0, 10 * 1000 * 1000};
	uint64_t deadline;
	unsigned int worker;
	uint16_t port;
	char json[256];
	int ret, opt;

	ret = rte_eal_init(argc, argv);
	if (ret < 0)
		die("rte_eal_init: %s", rte_strerror(rte_errno));
	argc -= ret;
	argv += ret;

	/* argv[0] is now the last EAL token (or "--"); getopt skips it. */
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			duration = parse_positive("--duration", optarg, 86400);
			break;
		case 'b':
			burst = parse_burst(optarg);
			break;
		case 'j':
			json_path = optarg;
			break;
		default:
			die("unknown or incomplete option '%s' (usage: cfwd [EAL args] -- --duration SECS [--burst N] [--json FILE])",
			    argv[optind - 1]);
		}
	}
	if (optind < argc)
		die("unexpected argument '%s'", argv[optind]);
	if (duration <= 0)
		die("--duration SECS is required");
	/* Open the report file now: a bad path should fail before the run. */
	if (json_path != NULL) {
		json_file = fopen(json_path, "w");
		if (json_file == NULL)
			die("cannot open %s: %s", json_path, strerror(errno));
	}

	if (rte_eth_dev_count_avail() != NB_PORTS)
		die("need exactly %d ports, found %u (check the --vdev/PCI args and EAL's log above)",
		    NB_PORTS, rte_eth_dev_count_avail());
	for (port = 0; port < NB_PORTS; port++)
		if (!rte_eth_dev_is_valid_port(port))
			die("port %u does not exist", port);

	worker = rte_get_next_lcore(-1, 1, 0);
	if (worker >= RTE_MAX_LCORE)
		die("need a worker lcore besides the main one (e.g. -l 0,1)");

	pool = rte_pktmbuf_pool_create("cfwd_pool", NB_MBUFS, MBUF_CACHE, 0,
				       RTE_MBUF_DEFAULT_BUF_SIZE,
				       rte_socket_id());
	if (pool == NULL)
		die("rte_pktmbuf_pool_create: %s", rte_strerror(rte_errno));

	for (port = 0; port < NB_PORTS; port++)
		port_init(port, pool);

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	ret = rte_eal_remote_launch(worker_main, NULL, worker);
	if (ret != 0)
		die("rte_eal_remote_launch on lcore %u: %s", worker,
		    rte_strerror(-ret));

	/* Main just sleeps; 10 ms granularity is plenty against a
	 * multi-second run, and the worker measures its own time anyway. */
	deadline = rte_get_tsc_cycles() +
		   (uint64_t)(duration * (double)rte_get_tsc_hz());
	while (!got_signal && rte_get_tsc_cycles() < deadline)
		nanosleep(&tick, NULL);
	force_quit = 1;
	rte_eal_wait_lcore(worker);

	for (port = 0; port < NB_PORTS; port++) {
		rte_eth_dev_stop(port);
		rte_eth_dev_close(port);
	}

	st = &stats[worker];
	secs = (double)(st->tsc_end - st->tsc_start) / (double)rte_get_tsc_hz();
	mpps = secs > 0 ? (double)st->tx / secs / 1e6 : 0.0;
	snprintf(json, sizeof(json),
		 "{\"rx_packets\":%" PRIu64 ",\"tx_packets\":%" PRIu64
		 ",\"dropped\":%" PRIu64 ",\"duration_secs\":%.6f,\"mpps\":%.6f}",
		 st->rx, st->tx, st->dropped, secs, mpps);
	printf("%s\n", json);
	fflush(stdout);

	if (json_file != NULL &&
	    (fprintf(json_file, "%s\n", json) < 0 || fclose(json_file) != 0))
		die("cannot write %s: %s", json_path, strerror(errno));

	rte_mempool_free(pool);
	rte_eal_cleanup();
	return 0;
}
