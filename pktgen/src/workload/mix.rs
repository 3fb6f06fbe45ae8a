//! `mix`: agent requests and RoCEv2 transfers sharing the wire, with flow
//! sizes from the DCTCP web-search distribution ([`super::cdf::WEB_SEARCH`]).
//!
//! Flows arrive as a Poisson process. Each draws a size from the CDF,
//! capped at `--max-flow-bytes`, and is either an agent request over TCP of
//! that many bytes (an HTTP POST whose prompt is sized to fit), or an RDMA
//! WRITE of that many bytes on one of the RoCE queue pairs (followed by its
//! ACK). Flows are paced at their host's line rate and overlap, so their
//! packets interleave in time the way an aggregation link sees them.

use rand::Rng;

use super::agent::{agents, HOST_HEADER, SERVER_PORT, VIP};
use super::cdf::WEB_SEARCH;
use super::flows::{tcp_request, udp_request, Host, RcConnection};
use super::roce::gpu_hosts;
use super::text::sized_request;
use super::{exp_gap_ns, finish, seeded_rng, WorkloadConfig, EPOCH_NS};
use crate::build::BuildError;
use crate::Packet;

/// Mean gap between flow arrivals.
const MEAN_FLOW_GAP_NS: f64 = 30_000.0;
/// RoCE queue pairs the RDMA flows are spread over.
const ROCE_CONNECTIONS: usize = 64;

/// One drawn flow size, capped.
pub fn flow_size(rng: &mut rand_chacha::ChaCha8Rng, max_flow_bytes: u64) -> u64 {
    WEB_SEARCH.sample(rng).min(max_flow_bytes.max(1))
}

/// Generates `cfg.packets` packets of mixed traffic.
pub fn generate(cfg: &WorkloadConfig) -> Result<Vec<Packet>, BuildError> {
    let mut rng = seeded_rng(cfg.seed, 3);
    let agents = agents();
    let server = Host::new(VIP);
    let gpus = gpu_hosts(8);
    let mut conns: Vec<RcConnection> = (0..ROCE_CONNECTIONS)
        .map(|_| {
            let a = rng.gen_range(0..gpus.len());
            let b = (a + rng.gen_range(1..gpus.len())) % gpus.len();
            RcConnection::new(&mut rng, gpus[a], gpus[b])
        })
        .collect();
    // A QP is a single ordered stream: a new message on it waits for the
    // previous one, as a NIC's send queue would make it.
    let mut conn_free_at = vec![EPOCH_NS; conns.len()];

    let mut out = Vec::with_capacity(cfg.packets + 1024);
    let mut t = EPOCH_NS;
    while out.len() < cfg.packets {
        t += exp_gap_ns(&mut rng, MEAN_FLOW_GAP_NS);
        let size = flow_size(&mut rng, cfg.max_flow_bytes);
        let size_usize = usize::try_from(size).unwrap_or(usize::MAX);
        if rng.gen_bool(0.5) {
            let i = rng.gen_range(0..conns.len());
            let start = t.max(conn_free_at[i]);
            let (pkts, end) = conns[i].write(&mut rng, size_usize, start, 25)?;
            out.extend(pkts);
            let ack_at = end + rng.gen_range(1_500..4_000);
            out.push(conns[i].ack(ack_at)?);
            conn_free_at[i] = ack_at;
        } else {
            let agent = agents[rng.gen_range(0..agents.len())];
            let req = sized_request(&mut rng, HOST_HEADER, "llama-3.1-70b-instruct", size_usize);
            let sport = rng.gen_range(32768..61000);
            if req.len() <= 1472 && rng.gen_bool(0.3) {
                out.extend(udp_request(
                    &mut rng,
                    agent,
                    server,
                    sport,
                    SERVER_PORT,
                    &req,
                    t,
                    10,
                )?);
            } else {
                let rtt = rng.gen_range(50_000..300_000);
                out.extend(tcp_request(
                    &mut rng,
                    agent,
                    server,
                    sport,
                    SERVER_PORT,
                    &req,
                    t,
                    rtt,
                    10,
                )?);
            }
        }
    }
    Ok(finish(out, cfg.packets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use classifier::parse;

    #[test]
    fn both_kinds_interleave() {
        let cfg = WorkloadConfig {
            packets: 4000,
            max_flow_bytes: 200_000,
            ..WorkloadConfig::default()
        };
        let pkts = generate(&cfg).unwrap();
        assert_eq!(pkts.len(), 4000);
        let roce: Vec<bool> = pkts
            .iter()
            .map(|p| parse(&p.data).unwrap().bth.is_some())
            .collect();
        let n_roce = roce.iter().filter(|&&r| r).count();
        assert!(n_roce > 500 && n_roce < 3500, "{n_roce}");
        // Interleaved, not one block after the other.
        let switches = roce.windows(2).filter(|w| w[0] != w[1]).count();
        assert!(switches > 50, "{switches}");
        assert!(pkts.windows(2).all(|w| w[0].ts_ns <= w[1].ts_ns));
    }
}
