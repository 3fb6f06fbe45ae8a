//! Reproducible workloads.
//!
//! Every workload is a pure function of a [`WorkloadConfig`]: the same seed
//! gives byte-identical packets on every machine, because all randomness
//! comes from one [`ChaCha8Rng`] seeded from the `u64` (never from the
//! thread RNG or the clock), and timestamps are counted from the fixed
//! [`EPOCH_NS`].
//!
//! | workload | what it models | module |
//! |---|---|---|
//! | `agent` | AI agents sending OpenAI-style chat requests to an inference VIP over TCP and UDP | [`agent`] |
//! | `roce` | ring all-reduce between GPU hosts over RoCEv2 RC (RDMA WRITE, SEND, ACK) | [`roce`] |
//! | `mix` | both, flow sizes drawn from the DCTCP web-search distribution | [`mix`] |
//! | `edge-cases` | a fixed conformance set of odd and malformed frames | [`edge_cases`] |
//!
//! Frames never exceed 1518 bytes (1522 with one VLAN tag), so each fits a
//! 2048-byte mbuf even with the 16-byte latency trailer `pktgen send` adds.

pub mod agent;
pub mod cdf;
pub mod edge_cases;
pub mod flows;
pub mod mix;
pub mod roce;
/// The prompt text and HTTP requests, shared with the emulator.
pub use llm_requests::text;

use std::fmt;

use rand_chacha::ChaCha8Rng;

use crate::build::BuildError;
use crate::Packet;

/// Timestamp of the first packet of every workload: 2025-06-15 14:13:20 UTC.
/// A fixed origin keeps files byte-identical across runs.
pub const EPOCH_NS: u64 = 1_750_000_000_000_000_000;

/// Largest untagged frame a workload emits (1500-byte MTU + 14 + FCS room).
pub const MAX_FRAME: usize = 1518;

/// The workloads `pktgen write` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum WorkloadKind {
    /// Agent LLM requests (HTTP/JSON over TCP and UDP).
    Agent,
    /// RoCEv2 training traffic (ring all-reduce bursts).
    Roce,
    /// Agent and RoCEv2 flows with web-search flow sizes.
    Mix,
    /// The conformance set: VLAN/QinQ, options, extension headers,
    /// fragments, ARP, RoCEv2 over IPv4/IPv6, and malformed frames.
    EdgeCases,
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkloadKind::Agent => "agent",
            WorkloadKind::Roce => "roce",
            WorkloadKind::Mix => "mix",
            WorkloadKind::EdgeCases => "edge-cases",
        })
    }
}

/// Knobs shared by all workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadConfig {
    /// Seed of the ChaCha8 generator.
    pub seed: u64,
    /// Number of packets to produce (the capture is the first `packets`
    /// packets of the generated timeline; `edge-cases` ignores it).
    pub packets: usize,
    /// Upper bound on the bytes of any one flow or message, so that large
    /// draws from heavy-tailed distributions keep pcaps small.
    pub max_flow_bytes: u64,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            seed: 1,
            packets: 10_000,
            max_flow_bytes: 1_000_000,
        }
    }
}

/// Generates the packets of `kind`, in timestamp order.
pub fn generate(kind: WorkloadKind, cfg: &WorkloadConfig) -> Result<Vec<Packet>, BuildError> {
    match kind {
        WorkloadKind::Agent => agent::generate(cfg),
        WorkloadKind::Roce => roce::generate(cfg),
        WorkloadKind::Mix => mix::generate(cfg),
        WorkloadKind::EdgeCases => Ok(edge_cases::edge_cases()?
            .into_iter()
            .map(|c| c.packet)
            .collect()),
    }
}

pub use llm_requests::seeded_rng;

/// Orders a timeline by timestamp (stable, so generation order breaks ties
/// deterministically) and keeps the first `limit` packets.
pub(crate) fn finish(mut packets: Vec<Packet>, limit: usize) -> Vec<Packet> {
    packets.sort_by_key(|p| p.ts_ns);
    packets.truncate(limit);
    packets
}

/// Time a frame occupies a link of `gbps`, counting preamble, FCS and the
/// inter-frame gap (24 bytes) as a real NIC does.
pub(crate) fn wire_time_ns(frame_len: usize, gbps: u64) -> u64 {
    ((frame_len as u64 + 24) * 8).div_ceil(gbps.max(1))
}

/// An exponentially distributed gap with the given mean, for Poisson arrivals.
pub(crate) fn exp_gap_ns(rng: &mut ChaCha8Rng, mean_ns: f64) -> u64 {
    use rand::Rng;
    let u: f64 = rng.gen();
    (-(1.0 - u).ln() * mean_ns) as u64
}
