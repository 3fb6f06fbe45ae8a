//! `[tensor]`: tensor-aware scheduling of RoCEv2 traffic
//! (`pipeline = "tensor"`): QP thresholds, the egress schedulers, the
//! compute nodes whose power weights WDRR, and the overlay paths that
//! sliced tensors travel to the peer appliance.
//!
//! ```toml
//! pipeline = "tensor"
//! [[pairs]]
//! ports = [0, 1]                 # hosts on port 0; what is not RoCEv2 passes to 1
//!
//! [tensor]
//! host_port = 0
//! local_ip = "192.0.2.1"         # this appliance's overlay address
//! key_file = "meta.key"          # control-plane key the metadata MAC key is derived from
//!
//! [[tensor.nodes]]
//! name = "gpu-a"
//! ip = "10.10.0.2"
//! weight = 4                     # compute power, relative: the WDRR weight
//!
//! [[tensor.paths]]               # none: route mode (no overlay)
//! id = 1
//! port = 1
//! next_hop_mac = "02:00:00:00:01:01"
//! remote_ip = "192.0.2.2"        # the peer appliance
//! capacity_mbps = 10000
//! latency_us = 5
//! ```
//!
//! Everything is checked here, before EAL starts, and each problem is one
//! line naming the field.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Deserialize;

use tensor::QpThresholds;

use crate::config::ConfigError;
use crate::ctl_messages::parse_mac;
use crate::steer_config::{egress_rates_valid, MAC_EXPECTED};

/// Largest QP table (entries).
pub const MAX_QP_TABLE: usize = 1 << 22;
/// Most paths and nodes (what a prediction snapshot describes).
pub const MAX_PATHS: usize = tensor::prediction::MAX_PREDICTED_PATHS;
/// Most compute nodes.
pub const MAX_NODES: usize = tensor::prediction::MAX_PREDICTED_NODES;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorConfig {
    /// The port the GPU hosts are on: their RoCEv2 traffic enters here
    /// (and is overlaid when paths exist); decapsulated traffic leaves here.
    pub host_port: u16,
    /// This appliance's overlay address (outer IPv4 source).
    #[serde(default)]
    pub local_ip: Option<Ipv4Addr>,
    /// Outer Ethernet source of overlay frames.
    #[serde(default = "default_local_mac")]
    pub local_mac: String,
    /// Geneve virtual network identifier of the overlay.
    #[serde(default = "default_vni")]
    pub vni: u32,
    /// A control-plane key file (64 hex characters, mode 0600), relative to
    /// the config file; the metadata MAC key is derived from it. Both
    /// appliances of an overlay name the same key.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Identifies the key inside the MAC option (for rotation).
    #[serde(default = "default_key_id")]
    pub key_id: u8,
    /// Check the ICRC of every RoCEv2 packet from the hosts; a bad one is a
    /// counted drop (`icrc_bad`), as a RoCE NIC would discard it.
    #[serde(default = "default_true")]
    pub validate_icrc: bool,
    /// With `validate_icrc`, check the ICRC of one RoCEv2 packet in this
    /// many per worker (the first included; default 16); 1 checks every
    /// packet. A packet not checked is forwarded as if it had passed (the
    /// receiving RoCE NIC checks it anyway).
    #[serde(default = "default_icrc_check_every")]
    pub icrc_check_every: u32,
    /// The RSS key the host port hashes a QP's UDP 4-tuple with, 80
    /// hexadecimal digits; unset, one is drawn at random per process.
    /// Which worker owns a QP is the queue this hash selects
    /// (`flowtab::rss`).
    #[serde(default)]
    pub rss_key: Option<String>,
    /// Decrement the IPv4 TTL (router mode); a TTL that would reach 0 is a
    /// counted drop.
    #[serde(default)]
    pub decrement_ttl: bool,
    /// Mark ECN CE on ECN-capable packets queued behind more than this many
    /// packets on their egress port (DCQCN's switch role); 0 never marks.
    #[serde(default = "default_ecn_mark")]
    pub ecn_mark_packets: u32,
    /// Packets each strict band, and the WDRR stage, of an egress port hold.
    #[serde(default = "default_band_limit")]
    pub band_limit_packets: u32,
    /// SMALL_FLOW QPs below this rate go to the first strict band, faster
    /// ones to the second (the draft's "prioritised by arrival rate").
    #[serde(default = "default_small_split")]
    pub small_rate_split_mbps: f64,
    /// QPs the appliance holds; with several workers each holds an even
    /// share (the QPs its key hash gives it).
    #[serde(default = "default_qp_table")]
    pub qp_table_size: usize,
    /// Feature records each worker's FIFO to the predictor core holds.
    #[serde(default = "default_fifo")]
    pub feature_fifo_size: usize,
    /// CPU the predictor thread is pinned to (default: the last CPU).
    #[serde(default)]
    pub predictor_cpu: Option<usize>,
    /// Reorder buffer: packets held per stream, streams (the appliance's,
    /// shared out among workers like `qp_table_size`), and how long a gap
    /// is waited for before it counts as lost.
    #[serde(default = "default_reorder_window")]
    pub reorder_window: usize,
    #[serde(default = "default_reorder_streams")]
    pub reorder_streams: usize,
    #[serde(default = "default_reorder_timeout_us")]
    pub reorder_timeout_us: u64,
    /// An in-network reducer (its id) that all-reduce traffic may be
    /// offloaded to; absent, the offload decision is always "host".
    #[serde(default)]
    pub offload_reducer: Option<u16>,
    /// Smallest slice of a sliced message, bytes.
    #[serde(default = "default_min_slice")]
    pub min_slice_bytes: u64,
    #[serde(default)]
    pub qp: QpConfig,
    /// Shape egress ports to a line rate (Mbit/s).
    #[serde(default)]
    pub egress: Vec<crate::steer_config::EgressConfig>,
    #[serde(default)]
    pub nodes: Vec<NodeConfig>,
    #[serde(default)]
    pub paths: Vec<PathConfig>,
}

/// `[tensor.qp]`: the QP state machine's thresholds (`tensor::QpThresholds`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QpConfig {
    #[serde(default = "default_large_message")]
    pub large_message_bytes: u64,
    #[serde(default = "default_large_rate")]
    pub large_rate_mbps: f64,
    #[serde(default = "default_exit_ratio")]
    pub exit_ratio: f64,
    #[serde(default = "default_rate_tau_us")]
    pub rate_tau_us: u64,
    #[serde(default = "default_idle_ms")]
    pub idle_timeout_ms: u64,
}

impl Default for QpConfig {
    fn default() -> Self {
        let d = QpThresholds::default();
        QpConfig {
            large_message_bytes: d.large_message_bytes,
            large_rate_mbps: d.large_rate_bps / 1e6,
            exit_ratio: d.exit_ratio,
            rate_tau_us: d.rate_tau_ns / 1000,
            idle_timeout_ms: d.idle_timeout_ns / 1_000_000,
        }
    }
}

/// `[[tensor.nodes]]`: a compute node and its power.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub name: String,
    pub ip: Ipv4Addr,
    /// Relative compute power (1 to 65535): the WDRR weight of LARGE flows
    /// towards it, until its COMPUTE_CAPABILITY TLV says otherwise.
    pub weight: u16,
    /// Node id carried in COMPUTE_CAPABILITY TLVs.
    #[serde(default)]
    pub id: u32,
    /// Behind this appliance: its capability is announced to the peer.
    #[serde(default)]
    pub local: bool,
    /// What its GPUs absorb, Mbit/s (for the backlog prediction).
    #[serde(default = "default_node_capacity")]
    pub capacity_mbps: f64,
}

/// `[[tensor.paths]]`: an overlay path to the peer appliance.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathConfig {
    pub id: u8,
    pub port: u16,
    pub next_hop_mac: String,
    pub remote_ip: Ipv4Addr,
    pub capacity_mbps: f64,
    #[serde(default)]
    pub latency_us: f64,
}

fn default_local_mac() -> String {
    "02:00:00:00:00:01".into()
}
fn default_vni() -> u32 {
    0x4E4F // "NO"(de)
}
fn default_key_id() -> u8 {
    1
}
fn default_true() -> bool {
    true
}
fn default_icrc_check_every() -> u32 {
    // One in 16: the receiving RoCE NIC checks every ICRC and discards a
    // bad packet whatever the appliance does, so here the check measures
    // the corruption rate (`icrc_checked`, `icrc_bad`) rather than guards
    // delivery, and checking every packet costs the worker about a fifth
    // of its rate (docs/performance.md). `1` checks every packet.
    16
}
fn default_ecn_mark() -> u32 {
    256
}
fn default_band_limit() -> u32 {
    1024
}
fn default_small_split() -> f64 {
    1000.0
}
fn default_qp_table() -> usize {
    65_536
}
fn default_fifo() -> usize {
    16_384
}
fn default_reorder_window() -> usize {
    256
}
fn default_reorder_streams() -> usize {
    64
}
fn default_reorder_timeout_us() -> u64 {
    1_000
}
fn default_min_slice() -> u64 {
    256 * 1024
}
fn default_large_message() -> u64 {
    QpThresholds::default().large_message_bytes
}
fn default_large_rate() -> f64 {
    QpThresholds::default().large_rate_bps / 1e6
}
fn default_exit_ratio() -> f64 {
    QpThresholds::default().exit_ratio
}
fn default_rate_tau_us() -> u64 {
    QpThresholds::default().rate_tau_ns / 1000
}
fn default_idle_ms() -> u64 {
    QpThresholds::default().idle_timeout_ns / 1_000_000
}
fn default_node_capacity() -> f64 {
    100_000.0
}

/// A path, checked: the engine's own description of it.
pub use tensor::engine::OverlayPath as TensorPath;

impl TensorConfig {
    /// The configured RSS key, if any.
    pub fn rss_key(&self) -> Result<Option<[u8; flowtab::rss::RSS_KEY_LEN]>, ConfigError> {
        crate::config::rss_key("tensor.rss_key", self.rss_key.as_deref())
    }

    /// The QP thresholds, checked.
    pub fn thresholds(&self) -> Result<QpThresholds, ConfigError> {
        let q = &self.qp;
        let th = QpThresholds {
            large_message_bytes: q.large_message_bytes,
            large_rate_bps: q.large_rate_mbps * 1e6,
            exit_ratio: q.exit_ratio,
            rate_tau_ns: q.rate_tau_us.saturating_mul(1000),
            idle_timeout_ns: q.idle_timeout_ms.saturating_mul(1_000_000),
        };
        // The thresholds' own check names their fields in ns and bit/s;
        // these name the keys as written.
        if q.large_message_bytes == 0 {
            return Err(ConfigError::at_least("tensor.qp.large_message_bytes", 0, 1));
        }
        if !(q.large_rate_mbps.is_finite() && q.large_rate_mbps > 0.0) {
            return Err(ConfigError::expected(
                "tensor.qp.large_rate_mbps",
                "a number > 0",
                q.large_rate_mbps,
            ));
        }
        if !(q.exit_ratio > 0.0 && q.exit_ratio <= 1.0) {
            return Err(ConfigError::expected(
                "tensor.qp.exit_ratio",
                "a number > 0 and <= 1",
                q.exit_ratio,
            ));
        }
        if q.rate_tau_us == 0 {
            return Err(ConfigError::at_least("tensor.qp.rate_tau_us", 0, 1));
        }
        if q.idle_timeout_ms == 0 {
            return Err(ConfigError::at_least("tensor.qp.idle_timeout_ms", 0, 1));
        }
        th.validate()
            .map_err(|e| ConfigError(format!("tensor.qp: {e}")))?;
        Ok(th)
    }

    /// The paths, checked.
    pub fn paths(&self) -> Result<Vec<TensorPath>, ConfigError> {
        let mut out: Vec<TensorPath> = Vec::with_capacity(self.paths.len());
        for (n, p) in self.paths.iter().enumerate() {
            let key = |k: &str| format!("tensor.paths[{n}].{k}");
            if out.iter().any(|q| q.id == p.id) {
                return Err(ConfigError(format!(
                    "`{}`: path id {} is used twice",
                    key("id"),
                    p.id
                )));
            }
            let mac = parse_mac(&p.next_hop_mac).ok_or_else(|| {
                ConfigError::expected(
                    key("next_hop_mac"),
                    MAC_EXPECTED,
                    format_args!("{:?}", p.next_hop_mac),
                )
            })?;
            if !(p.capacity_mbps.is_finite() && p.capacity_mbps > 0.0) {
                return Err(ConfigError::expected(
                    key("capacity_mbps"),
                    "a number > 0",
                    p.capacity_mbps,
                ));
            }
            if !(p.latency_us.is_finite() && p.latency_us >= 0.0) {
                return Err(ConfigError::expected(
                    key("latency_us"),
                    "a number >= 0",
                    p.latency_us,
                ));
            }
            if p.port == self.host_port {
                return Err(ConfigError::expected(
                    key("port"),
                    "a port other than tensor.host_port (overlay paths leave by other ports)",
                    p.port,
                ));
            }
            out.push(TensorPath {
                id: p.id,
                port: p.port,
                next_hop_mac: mac,
                remote_ip: p.remote_ip,
                capacity_bps: p.capacity_mbps * 1e6,
                latency_ns: (p.latency_us * 1000.0) as u64,
            });
        }
        Ok(out)
    }

    /// The overlay's outer source MAC.
    pub fn local_mac(&self) -> Result<[u8; 6], ConfigError> {
        parse_mac(&self.local_mac).ok_or_else(|| {
            ConfigError::expected(
                "tensor.local_mac",
                MAC_EXPECTED,
                format_args!("{:?}", self.local_mac),
            )
        })
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.thresholds()?;
        self.local_mac()?;
        self.rss_key()?;
        let paths = self.paths()?;
        if paths.len() > MAX_PATHS {
            return Err(ConfigError::expected(
                "tensor.paths",
                format_args!("at most {MAX_PATHS} paths"),
                paths.len(),
            ));
        }
        if !paths.is_empty() {
            if self.local_ip.is_none() {
                return Err(ConfigError(
                    "[[tensor.paths]] need `tensor.local_ip` (the outer source)".into(),
                ));
            }
            if self.key_file.is_none() {
                return Err(ConfigError(
                    "[[tensor.paths]] need `tensor.key_file`: metadata TLVs are always authenticated".into(),
                ));
            }
        }
        if self.nodes.len() > MAX_NODES {
            return Err(ConfigError::expected(
                "tensor.nodes",
                format_args!("at most {MAX_NODES} nodes"),
                self.nodes.len(),
            ));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if n.weight == 0 {
                return Err(ConfigError::range(
                    format_args!("tensor.nodes[{i}].weight"),
                    0,
                    1,
                    u16::MAX,
                ));
            }
            if !(n.capacity_mbps.is_finite() && n.capacity_mbps > 0.0) {
                return Err(ConfigError::expected(
                    format_args!("tensor.nodes[{i}].capacity_mbps"),
                    "a number > 0",
                    n.capacity_mbps,
                ));
            }
            if self.nodes[..i].iter().any(|m| m.ip == n.ip) {
                return Err(ConfigError(format!(
                    "`tensor.nodes[{i}].ip`: {} is used by an earlier node",
                    n.ip
                )));
            }
        }
        for (key, value, lo, hi) in [
            ("qp_table_size", self.qp_table_size, 1, MAX_QP_TABLE),
            ("feature_fifo_size", self.feature_fifo_size, 64, 1 << 20),
            ("reorder_window", self.reorder_window, 2, 65_536),
            ("reorder_streams", self.reorder_streams, 1, 1 << 20),
        ] {
            if !(lo..=hi).contains(&value) {
                return Err(ConfigError::range(
                    format_args!("tensor.{key}"),
                    value,
                    lo,
                    hi,
                ));
            }
        }
        if !(1..=1 << 20).contains(&self.icrc_check_every) {
            return Err(ConfigError::range(
                "tensor.icrc_check_every",
                self.icrc_check_every,
                1,
                1 << 20,
            ));
        }
        if !(1..=sched::MAX_BAND_LIMIT).contains(&self.band_limit_packets) {
            return Err(ConfigError::range(
                "tensor.band_limit_packets",
                self.band_limit_packets,
                1,
                sched::MAX_BAND_LIMIT,
            ));
        }
        if !(self.small_rate_split_mbps.is_finite() && self.small_rate_split_mbps > 0.0) {
            return Err(ConfigError::expected(
                "tensor.small_rate_split_mbps",
                "a number > 0",
                self.small_rate_split_mbps,
            ));
        }
        if self.reorder_timeout_us == 0 {
            return Err(ConfigError::at_least("tensor.reorder_timeout_us", 0, 1));
        }
        if self.min_slice_bytes < 4096 {
            return Err(ConfigError::at_least(
                "tensor.min_slice_bytes",
                self.min_slice_bytes,
                4096,
            ));
        }
        if self.vni > 0x00FF_FFFF {
            return Err(ConfigError::range("tensor.vni", self.vni, 0, 0x00FF_FFFF));
        }
        egress_rates_valid("tensor", &self.egress)
    }

    /// Every port the pipeline uses besides its pairs.
    pub fn ports(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self.paths.iter().map(|p| p.port).collect();
        v.push(self.host_port);
        v
    }

    /// The configured rate of `port`, if shaped.
    pub fn rate_mbps(&self, port: u16) -> Option<f64> {
        self.egress
            .iter()
            .find(|e| e.port == port)
            .map(|e| e.rate_mbps)
    }
}
