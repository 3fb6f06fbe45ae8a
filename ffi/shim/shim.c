#include "shim.h"

int shim_errno(void) { return rte_errno; }

uint16_t shim_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t shim_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *shim_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int shim_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **pkts, unsigned int n)
{
	return rte_pktmbuf_alloc_bulk(mp, pkts, n);
}

void shim_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

char *shim_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_prepend(m, len); }

char *shim_pktmbuf_adj(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_adj(m, len); }

char *shim_pktmbuf_append(struct rte_mbuf *m, uint16_t len) { return rte_pktmbuf_append(m, len); }

void shim_pktmbuf_reset(struct rte_mbuf *m) { rte_pktmbuf_reset(m); }

void shim_prefetch0(const volatile void *p) { rte_prefetch0(p); }

uint64_t shim_rdtsc(void) { return rte_rdtsc(); }

uint64_t shim_tsc_hz(void) { return rte_get_tsc_hz(); }

unsigned int shim_lcore_id(void) { return rte_lcore_id(); }

unsigned int shim_mempool_avail_count(const struct rte_mempool *mp) { return rte_mempool_avail_count(mp); }

uint64_t shim_rss_hf_ip(void) { return RTE_ETH_RSS_IP; }
uint64_t shim_rss_hf_udp(void) { return RTE_ETH_RSS_UDP; }
uint64_t shim_rss_hf_tcp(void) { return RTE_ETH_RSS_TCP; }
uint64_t shim_rss_hf_l3(void) { return RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_IPV6 | RTE_ETH_RSS_FRAG_IPV6; }
uint64_t shim_rss_hf_l3_src_only(void) { return RTE_ETH_RSS_L3_SRC_ONLY; }
uint64_t shim_rss_hf_l3_dst_only(void) { return RTE_ETH_RSS_L3_DST_ONLY; }
uint64_t shim_rx_offload_ipv4_cksum(void) { return RTE_ETH_RX_OFFLOAD_IPV4_CKSUM; }
