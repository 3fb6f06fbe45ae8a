/*
 * Out-of-line wrappers for DPDK's `static inline` data-path functions.
 *
 * bindgen cannot link against functions that only exist in headers, so each
 * one the Rust side needs gets a one-line exported twin here.  They are called
 * once per burst (rx/tx/free_bulk) or are trivially cheap, so the extra call
 * costs nothing measurable next to the PMD work itself.
 */
#ifndef INTELLINODE_SHIM_H
#define INTELLINODE_SHIM_H

#include <stdint.h>
#include <rte_config.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_prefetch.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ring.h>

int shim_errno(void);
uint16_t shim_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t shim_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *shim_pktmbuf_alloc(struct rte_mempool *mp);
int shim_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **pkts, unsigned int n);
void shim_pktmbuf_free(struct rte_mbuf *m);
char *shim_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *shim_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
char *shim_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
void shim_pktmbuf_reset(struct rte_mbuf *m);
void shim_prefetch0(const volatile void *p);
uint64_t shim_rdtsc(void);
uint64_t shim_tsc_hz(void);
unsigned int shim_lcore_id(void);
unsigned int shim_mempool_avail_count(const struct rte_mempool *mp);

/* RSS hash-function masks are RTE_BIT64() macros, which bindgen cannot evaluate. */
uint64_t shim_rss_hf_ip(void);
uint64_t shim_rss_hf_udp(void);
uint64_t shim_rss_hf_tcp(void);
/* The address-only hash types: IPv4 and IPv6, fragments included. */
uint64_t shim_rss_hf_l3(void);
uint64_t shim_rss_hf_l3_src_only(void);
uint64_t shim_rss_hf_l3_dst_only(void);
/* The receive offload that verifies IPv4 header checksums (an RTE_BIT64() too). */
uint64_t shim_rx_offload_ipv4_cksum(void);

#endif
