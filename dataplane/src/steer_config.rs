//! `[steer]`: services, instances and paths for token-aware steering
//! (`pipeline = "steer"`), and the egress scheduler's shape.
//!
//! ```toml
//! [steer]
//! policy = "token_aware"         # or the baselines least_queue, round_robin, llm_d
//! agent_port = 0                 # agents are on this port
//! infer_http_ports = [8000]      # infer features of TLV-less requests here
//!
//! [[steer.paths]]
//! id = 1
//! name = "low-delay line"
//! egress_port = 1
//! next_hop_mac = "02:00:00:00:02:02"
//! latency_us = 500               # prior until PATH_STATE reports
//! jitter_us = 50
//!
//! [[steer.instances]]
//! name = "edge-small"
//! node = 1
//! ip = "10.0.2.2"
//! paths = [1]
//! model_class = "small_edge"
//! task_types = ["immediate_control", "chat"]
//! max_context_tokens = 8192
//! prefill_tokens_per_s = 2000
//! decode_tokens_per_s = 40
//! concurrency = 2
//!
//! [[steer.services]]
//! name = "chat"
//! vip = "10.0.100.1"
//! ports = [8000]
//! instances = ["edge-small", "centre-large"]
//! ```
//!
//! Everything is validated into a [`steer::ServiceTable`] before EAL
//! starts, so a bad reference is a one-line error naming it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;

use control::capability::ModelClass;
use control::ids::{NodeId, PathId};
use control::task_types::TaskTypes;
use steer::service::{InstanceCapability, InstanceSpec, PathSpec, ServiceSpec};
use steer::{Policy, ServiceTable, TrafficClass};

use crate::config::ConfigError;
use crate::ctl_messages::parse_mac;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SteerConfig {
    /// The port agents (clients) are on: requests enter here, responses
    /// leave here.
    pub agent_port: u16,
    /// The RSS key the steering ports hash the client address with, 80
    /// hexadecimal digits (colons between byte pairs allowed); unset, one
    /// is drawn at random per process. Which worker owns a flow is the
    /// queue this hash selects (`flowtab::rss`).
    #[serde(default)]
    pub rss_key: Option<String>,
    /// Flows the affinity tables hold, in all: each of W workers holds
    /// `flow_table_size / W` (rounded up) of the flows it owns; new flows
    /// beyond its share go to their service's overflow instance,
    /// statelessly, and are counted.
    #[serde(default = "default_flow_table_size")]
    pub flow_table_size: usize,
    /// A flow idle this long is forgotten (and its answer, if under way,
    /// measured).
    #[serde(default = "default_flow_idle_timeout_ms")]
    pub flow_idle_timeout_ms: u64,
    /// Service ports on which a request without a token-feature TLV has its
    /// features inferred from the first payload (HTTP/1.1 POST, OpenAI
    /// chat-completions JSON).
    #[serde(default)]
    pub infer_http_ports: Vec<u16>,
    /// Bytes of that payload the inference may scan.
    #[serde(default = "default_infer_max_scan_bytes")]
    pub infer_max_scan_bytes: usize,
    /// Delayed binding on `infer_http_ports`: a TCP request without a TLV
    /// is decided on its whole HTTP request, read by the appliance, not
    /// at its SYN (`steer::splice`). `false` decides it at its SYN and
    /// infers from its first payload only.
    #[serde(default = "default_true")]
    pub splice_tlv_less: bool,
    /// Connections between handshake and close that delayed binding holds,
    /// in all (each of W workers holds `/ W`, rounded up).
    #[serde(default = "default_splice_connections")]
    pub splice_connections: usize,
    /// Bytes of one request buffered before it is decided anyway.
    #[serde(default = "default_splice_request_max_bytes")]
    pub splice_request_max_bytes: usize,
    /// Bytes of all request buffers, in all (each worker `/ W`).
    #[serde(default = "default_splice_buffer_bytes")]
    pub splice_buffer_bytes: usize,
    /// From a spliced connection's handshake to its complete request.
    #[serde(default = "default_splice_request_timeout_ms")]
    pub splice_request_timeout_ms: u64,
    /// First retransmission timeout towards the instance, doubled per try.
    #[serde(default = "default_splice_retransmit_ms")]
    pub splice_retransmit_ms: u64,
    /// Tries of the SYN and of the replay to the instance before both
    /// sides are reset.
    #[serde(default = "default_splice_retransmit_tries")]
    pub splice_retransmit_tries: u8,
    /// How new flows choose an instance and path: `token_aware` (the
    /// product), or a baseline kept for evaluation: `least_queue` (queue
    /// and KV-cache scorers, no network awareness), `round_robin`, or
    /// `llm_d` (llm-d's queue, KV-cache and approximate prefix scorers).
    #[serde(default, deserialize_with = "policy_by_name")]
    pub policy: Policy,
    /// (instance, shared prefix) pairs the prefix records hold, in all:
    /// each of W workers holds `prefix_record_size / W` (rounded up).
    #[serde(default = "default_prefix_record_size")]
    pub prefix_record_size: usize,
    /// A prefix not sent to an instance for this long is assumed evicted
    /// from its cache.
    #[serde(default = "default_prefix_ttl_ms")]
    pub prefix_ttl_ms: u64,
    /// Bounded load: a candidate whose queue exceeds the service's shortest
    /// live queue by more than this many requests gets no prefix affinity.
    #[serde(default = "default_prefix_balance_queue")]
    pub prefix_balance_queue: f64,
    /// Serve the interactive class strictly first on every egress port.
    /// `false` makes each port one FIFO (for comparison only).
    #[serde(default = "default_true")]
    pub strict_priority: bool,
    /// Packets each egress band may hold before it drops (counted).
    #[serde(default = "default_band_limit")]
    pub band_limit_packets: u32,
    /// DRR weight of each bulk class (`bulk_chat`, `bulk_code`,
    /// `bulk_summarisation`, `bulk_reasoning`, `other`); 1 if unset. A
    /// POLICY's class weight for the class id overrides it.
    #[serde(default)]
    pub class_weights: BTreeMap<String, u16>,
    /// Shape egress ports to a rate (Mbit/s), e.g. the bandwidth of the
    /// line behind them; unshaped ports send as fast as the NIC takes.
    #[serde(default)]
    pub egress: Vec<EgressConfig>,
    /// Queue-wait prior per request a node reports queued, µs.
    #[serde(default = "default_queue_wait_us")]
    pub queue_wait_us_per_request: f64,
    pub paths: Vec<PathConfig>,
    pub instances: Vec<InstanceConfig>,
    pub services: Vec<ServiceConfig>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EgressConfig {
    pub port: u16,
    pub rate_mbps: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathConfig {
    pub id: u16,
    pub name: String,
    pub egress_port: u16,
    pub next_hop_mac: String,
    #[serde(default)]
    pub latency_us: f64,
    #[serde(default)]
    pub jitter_us: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    pub name: String,
    pub node: u16,
    pub ip: IpAddr,
    /// The instance's own MAC, when it is directly attached to its path.
    #[serde(default)]
    pub mac: Option<String>,
    pub paths: Vec<u16>,
    pub model_class: String,
    pub task_types: Vec<String>,
    pub max_context_tokens: u32,
    pub prefill_tokens_per_s: f64,
    pub decode_tokens_per_s: f64,
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    #[serde(default = "default_base_ttft_us")]
    pub base_ttft_us: f64,
    /// Reported queue length at which the node takes no new flow; default
    /// four times its concurrency.
    #[serde(default)]
    pub max_queue: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    pub vip: IpAddr,
    #[serde(default)]
    pub ports: Vec<u16>,
    pub instances: Vec<String>,
    #[serde(default)]
    pub overflow_instance: Option<String>,
}

fn policy_by_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Policy, D::Error> {
    crate::config::one_of(d, Policy::ALL.map(|p| (p.name(), p)))
}

fn default_flow_table_size() -> usize {
    65_536
}
fn default_flow_idle_timeout_ms() -> u64 {
    30_000
}
fn default_infer_max_scan_bytes() -> usize {
    2048
}
fn default_prefix_record_size() -> usize {
    steer::PrefixLimits::default().capacity
}
fn default_prefix_ttl_ms() -> u64 {
    steer::PrefixLimits::default().ttl_ns / 1_000_000
}
fn default_prefix_balance_queue() -> f64 {
    steer::PrefixLimits::default().balance_queue
}
fn default_splice_connections() -> usize {
    4096
}
fn default_splice_request_max_bytes() -> usize {
    272 * 1024
}
fn default_splice_buffer_bytes() -> usize {
    32 * 1024 * 1024
}
fn default_splice_request_timeout_ms() -> u64 {
    5_000
}
fn default_splice_retransmit_ms() -> u64 {
    200
}
fn default_splice_retransmit_tries() -> u8 {
    5
}
fn default_true() -> bool {
    true
}
fn default_band_limit() -> u32 {
    512
}
fn default_queue_wait_us() -> f64 {
    20_000.0
}
fn default_concurrency() -> u32 {
    1
}
fn default_base_ttft_us() -> f64 {
    5_000.0
}

/// What a MAC address key must look like.
pub(crate) const MAC_EXPECTED: &str = "a MAC address (a string such as \"02:00:00:00:00:01\")";

/// Largest flow table (entries).
pub const MAX_FLOW_TABLE: usize = 1 << 24;

impl SteerConfig {
    /// The configured RSS key, if any.
    pub fn rss_key(&self) -> Result<Option<[u8; flowtab::rss::RSS_KEY_LEN]>, ConfigError> {
        crate::config::rss_key("steer.rss_key", self.rss_key.as_deref())
    }

    /// Checks what serde cannot and builds the service table.
    pub fn build(&self) -> Result<ServiceTable, ConfigError> {
        let e = |m: String| ConfigError(format!("steer: {m}"));
        self.rss_key()?;
        if !(1..=MAX_FLOW_TABLE).contains(&self.flow_table_size) {
            return Err(ConfigError::range(
                "steer.flow_table_size",
                self.flow_table_size,
                1,
                MAX_FLOW_TABLE,
            ));
        }
        if self.flow_idle_timeout_ms == 0 {
            return Err(ConfigError::at_least("steer.flow_idle_timeout_ms", 0, 1));
        }
        if !(1..=MAX_FLOW_TABLE).contains(&self.prefix_record_size) {
            return Err(ConfigError::range(
                "steer.prefix_record_size",
                self.prefix_record_size,
                1,
                MAX_FLOW_TABLE,
            ));
        }
        if self.prefix_ttl_ms == 0 {
            return Err(ConfigError::at_least("steer.prefix_ttl_ms", 0, 1));
        }
        if !(self.prefix_balance_queue.is_finite() && self.prefix_balance_queue >= 0.0) {
            return Err(ConfigError::expected(
                "steer.prefix_balance_queue",
                "a number >= 0",
                self.prefix_balance_queue,
            ));
        }
        if !(64..=65_536).contains(&self.infer_max_scan_bytes) {
            return Err(ConfigError::range(
                "steer.infer_max_scan_bytes",
                self.infer_max_scan_bytes,
                64,
                65_536,
            ));
        }
        let ranges: [(&str, u64, u64, u64); 6] = [
            (
                "steer.splice_connections",
                self.splice_connections as u64,
                1,
                1 << 20,
            ),
            (
                "steer.splice_request_max_bytes",
                self.splice_request_max_bytes as u64,
                1024,
                64 << 20,
            ),
            (
                "steer.splice_buffer_bytes",
                self.splice_buffer_bytes as u64,
                16 * 1024,
                1 << 32,
            ),
            (
                "steer.splice_request_timeout_ms",
                self.splice_request_timeout_ms,
                1,
                3_600_000,
            ),
            (
                "steer.splice_retransmit_ms",
                self.splice_retransmit_ms,
                1,
                60_000,
            ),
            (
                "steer.splice_retransmit_tries",
                u64::from(self.splice_retransmit_tries),
                1,
                16,
            ),
        ];
        for (key, value, lo, hi) in ranges {
            if !(lo..=hi).contains(&value) {
                return Err(ConfigError::range(key, value, lo, hi));
            }
        }
        if !(1..=sched::MAX_BAND_LIMIT).contains(&self.band_limit_packets) {
            return Err(ConfigError::range(
                "steer.band_limit_packets",
                self.band_limit_packets,
                1,
                sched::MAX_BAND_LIMIT,
            ));
        }
        if !(self.queue_wait_us_per_request.is_finite() && self.queue_wait_us_per_request >= 0.0) {
            return Err(ConfigError::expected(
                "steer.queue_wait_us_per_request",
                "a number >= 0",
                self.queue_wait_us_per_request,
            ));
        }
        for (name, weight) in &self.class_weights {
            if bulk_class(name).is_none() {
                return Err(ConfigError(format!(
                    "unknown key `{name}` in [steer.class_weights]: expected one of {}",
                    bulk_class_names().join(", ")
                )));
            }
            if *weight == 0 {
                return Err(ConfigError::range(
                    format_args!("steer.class_weights.{name}"),
                    0,
                    1,
                    u16::MAX,
                ));
            }
        }
        egress_rates_valid("steer", &self.egress)?;
        let mut paths = Vec::new();
        for (n, p) in self.paths.iter().enumerate() {
            let mac = parse_mac(&p.next_hop_mac).ok_or_else(|| {
                ConfigError::expected(
                    format_args!("steer.paths[{n}].next_hop_mac"),
                    MAC_EXPECTED,
                    format_args!("{:?}", p.next_hop_mac),
                )
            })?;
            paths.push(PathSpec {
                id: PathId(p.id),
                name: p.name.clone(),
                egress_port: p.egress_port,
                next_hop_mac: mac,
                prior_latency_us: p.latency_us,
                prior_jitter_us: p.jitter_us,
            });
        }
        let mut instances = Vec::new();
        for (n, i) in self.instances.iter().enumerate() {
            let model_class: ModelClass = i.model_class.parse().map_err(|_| {
                ConfigError::expected(
                    format_args!("steer.instances[{n}].model_class"),
                    "one of \"small_edge\", \"large_centre\"",
                    format_args!("{:?}", i.model_class),
                )
            })?;
            let task_types: TaskTypes = i.task_types.join(",").parse().map_err(|x| {
                ConfigError(format!(
                    "`steer.instances[{n}].task_types` (instance {}): {x}",
                    i.name
                ))
            })?;
            if task_types.bits() == 0 {
                return Err(ConfigError(format!(
                    "`steer.instances[{n}].task_types` (instance {}) names no task type",
                    i.name
                )));
            }
            let mac = match &i.mac {
                None => None,
                Some(m) => Some(parse_mac(m).ok_or_else(|| {
                    ConfigError::expected(
                        format_args!("steer.instances[{n}].mac"),
                        MAC_EXPECTED,
                        format_args!("{m:?}"),
                    )
                })?),
            };
            instances.push(InstanceSpec {
                name: i.name.clone(),
                node: NodeId(i.node),
                ip: i.ip,
                mac,
                paths: i.paths.iter().copied().map(PathId).collect(),
                capability: InstanceCapability {
                    model_class,
                    task_types,
                    max_context_tokens: i.max_context_tokens,
                    prefill_tokens_per_s: i.prefill_tokens_per_s,
                    decode_tokens_per_s: i.decode_tokens_per_s,
                    concurrency: i.concurrency,
                    base_ttft_us: i.base_ttft_us,
                    max_queue: i.max_queue.unwrap_or(i.concurrency.saturating_mul(4)),
                },
            });
        }
        let services = self
            .services
            .iter()
            .map(|s| ServiceSpec {
                name: s.name.clone(),
                vip: s.vip,
                ports: s.ports.clone(),
                instances: s.instances.clone(),
                overflow_instance: s.overflow_instance.clone(),
            })
            .collect();
        let table = ServiceTable::build(paths, instances, services).map_err(|x| e(x.0))?;
        if let Some(n) = self
            .paths
            .iter()
            .position(|p| p.egress_port == self.agent_port)
        {
            return Err(ConfigError::expected(
                format_args!("steer.paths[{n}].egress_port"),
                "a port other than steer.agent_port (requests would go back to the agents)",
                self.agent_port,
            ));
        }
        Ok(table)
    }

    /// DRR weight of a bulk class.
    pub fn class_weight(&self, class: TrafficClass) -> u16 {
        self.class_weights
            .iter()
            .find(|(n, _)| bulk_class(n) == Some(class))
            .map_or(1, |(_, w)| *w)
    }

    /// Every port steering uses: the agent port and every egress port.
    pub fn ports(&self) -> Vec<u16> {
        let mut v: Vec<u16> = self.paths.iter().map(|p| p.egress_port).collect();
        v.push(self.agent_port);
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// `[[steer.egress]]` and `[[tensor.egress]]`: every rate positive.
pub(crate) fn egress_rates_valid(
    section: &str,
    egress: &[EgressConfig],
) -> Result<(), ConfigError> {
    for (i, eg) in egress.iter().enumerate() {
        if !(eg.rate_mbps.is_finite() && eg.rate_mbps > 0.0) {
            return Err(ConfigError::expected(
                format_args!("{section}.egress[{i}].rate_mbps"),
                "a number > 0",
                eg.rate_mbps,
            ));
        }
    }
    Ok(())
}

/// The names `class_weights` takes.
fn bulk_class_names() -> Vec<&'static str> {
    TrafficClass::ALL
        .into_iter()
        .filter(|c| !c.is_interactive())
        .map(|c| c.name())
        .collect()
}

fn bulk_class(name: &str) -> Option<TrafficClass> {
    TrafficClass::ALL
        .into_iter()
        .filter(|c| !c.is_interactive())
        .find(|c| c.name() == name)
}
