//! The appliance's TOML configuration.
//!
//! Unknown keys are errors (a typo must never silently fall back to a
//! default), and every error is one line naming the file, the position and
//! the problem.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::dpdk::MAX_BURST;
use crate::steer_config::SteerConfig;
use crate::tensor_config::TensorConfig;

mod diagnose;
#[cfg(test)]
mod reference;

pub(crate) use diagnose::one_of;

/// Which packet pipeline the workers run: the `pipeline` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineKind {
    /// Transparent bump-in-the-wire: every frame entering one port of a pair
    /// leaves the other, unchanged.
    Forward,
    /// Token-aware steering (`[steer]`): requests to a service VIP go to
    /// the instance and path chosen for their token features and the live
    /// state; everything else is forwarded as by `forward`.
    Steer,
    /// Tensor-aware scheduling of RoCEv2 traffic (`[tensor]`): QP states,
    /// strict bands for small flows, WDRR by compute power for large ones,
    /// and, with overlay paths, slicing over several paths to a peer
    /// appliance that restores the order.
    Tensor,
}

impl PipelineKind {
    pub const ALL: [PipelineKind; 3] = [
        PipelineKind::Forward,
        PipelineKind::Steer,
        PipelineKind::Tensor,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            PipelineKind::Forward => "forward",
            PipelineKind::Steer => "steer",
            PipelineKind::Tensor => "tensor",
        }
    }
}

impl fmt::Display for PipelineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl<'de> Deserialize<'de> for PipelineKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(diagnose::OneOf::new(
            PipelineKind::ALL.map(|k| (k.name(), k)),
        ))
    }
}

/// The pipeline the workers run, with its own section: one value, so a
/// pipeline and its section cannot disagree.
#[derive(Debug, Clone, PartialEq)]
pub enum Pipeline {
    Forward,
    Steer(SteerConfig),
    Tensor(TensorConfig),
}

impl Pipeline {
    pub fn kind(&self) -> PipelineKind {
        match self {
            Pipeline::Forward => PipelineKind::Forward,
            Pipeline::Steer(_) => PipelineKind::Steer,
            Pipeline::Tensor(_) => PipelineKind::Tensor,
        }
    }
}

impl fmt::Display for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind().name())
    }
}

/// The configuration, checked: what the appliance runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The pipeline and its section (`pipeline` and `[steer]` or `[tensor]`).
    pub pipeline: Pipeline,
    /// Packets per rx/tx burst (1 to 64).
    pub burst_size: u16,
    /// Microseconds a worker sleeps after a pass over its queues that moved
    /// no packet; 0 (the default) polls without pause. For cores shared with
    /// the kernel, e.g. `net_af_packet` on a small machine, where a spinning
    /// worker starves the softirq work that feeds it (OVS-DPDK's
    /// `pmd-sleep-max` addresses the same problem). Never sleeps while
    /// traffic flows.
    pub idle_sleep_us: u32,
    pub ports: PortDefaults,
    /// Port pairs: what enters one leaves the other.
    pub pairs: Vec<PairConfig>,
    /// The orchestration channel; absent means no control plane.
    pub control: Option<ControlConfig>,
    /// Prometheus exposition; absent means no metrics endpoint.
    pub metrics: Option<MetricsConfig>,
    /// Active path measurement and reflection; absent means neither.
    pub probe: Option<ProbeConfig>,
}

/// The file as written. `pipeline` names the pipeline and `[steer]` or
/// `[tensor]` is its section; [`Config::from_file`] joins them into one
/// [`Pipeline`] or says which section is missing or extra.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    pipeline: PipelineKind,
    #[serde(default = "default_burst")]
    burst_size: u16,
    #[serde(default)]
    idle_sleep_us: u32,
    #[serde(default)]
    ports: PortDefaults,
    pairs: Vec<PairConfig>,
    #[serde(default)]
    control: Option<ControlConfig>,
    #[serde(default)]
    metrics: Option<MetricsConfig>,
    #[serde(default)]
    probe: Option<ProbeConfig>,
    #[serde(default)]
    steer: Option<SteerConfig>,
    #[serde(default)]
    tensor: Option<TensorConfig>,
}

/// The keys of the top level, for the hint when one is written under a
/// section by mistake (the reference test keeps this list true).
pub(crate) const TOP_LEVEL_KEYS: [&str; 10] = [
    "pipeline",
    "burst_size",
    "idle_sleep_us",
    "ports",
    "pairs",
    "control",
    "metrics",
    "probe",
    "steer",
    "tensor",
];

/// `[probe]`: measure paths by probing a reflector, and/or be one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// Probe every target this often.
    #[serde(default = "default_probe_interval_ms")]
    pub interval_ms: u64,
    /// A probe unanswered this long counts as lost.
    #[serde(default = "default_probe_timeout_ms")]
    pub timeout_ms: u64,
    /// Probes the loss ratio is computed over.
    #[serde(default = "default_probe_window")]
    pub window: usize,
    /// UDP port probes use (both ends).
    #[serde(default = "default_probe_port")]
    pub udp_port: u16,
    /// Turn probes from other appliances around (reflector mode).
    #[serde(default)]
    pub reflect: bool,
    /// Key that signs our probes (64 hex characters, mode 0600); only this
    /// appliance needs it. Relative to the config file.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Source address of our probes.
    #[serde(default)]
    pub src_ip: Option<Ipv4Addr>,
    /// Paths to measure.
    #[serde(default)]
    pub targets: Vec<ProbeTarget>,
}

/// `[[probe.targets]]`: a path (as defined by policy) and the reflector
/// at its far end.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeTarget {
    pub path: u16,
    pub dst_ip: Ipv4Addr,
}

fn default_probe_interval_ms() -> u64 {
    100
}
fn default_probe_timeout_ms() -> u64 {
    500
}
fn default_probe_window() -> usize {
    20
}
fn default_probe_port() -> u16 {
    control::probe::DEFAULT_PROBE_PORT
}

impl ProbeConfig {
    fn validate(&self, has_control: bool) -> Result<(), ConfigError> {
        if !(1..=60_000).contains(&self.interval_ms) {
            return Err(ConfigError::range(
                "probe.interval_ms",
                self.interval_ms,
                1,
                60_000,
            ));
        }
        if self.timeout_ms == 0 {
            return Err(ConfigError::at_least("probe.timeout_ms", 0, 1));
        }
        if !(1..=1000).contains(&self.window) {
            return Err(ConfigError::range("probe.window", self.window, 1, 1000));
        }
        if self.targets.is_empty() && !self.reflect {
            return Err(ConfigError(
                "[probe] does nothing: add [[probe.targets]] or set reflect = true".into(),
            ));
        }
        if !self.targets.is_empty() {
            if self.key_file.is_none() {
                return Err(ConfigError(
                    "[probe] has targets but no `probe.key_file` to sign probes with".into(),
                ));
            }
            if self.src_ip.is_none() {
                return Err(ConfigError(
                    "[probe] has targets but no `probe.src_ip`".into(),
                ));
            }
            if !has_control {
                return Err(ConfigError(
                    "[probe] targets need [control]: measurements become control state".into(),
                ));
            }
        }
        Ok(())
    }
}

/// `[control]`: the authenticated, encrypted orchestration channel.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    /// UDP address the control thread listens on.
    #[serde(default = "default_control_listen")]
    pub listen: SocketAddr,
    /// Largest datagram accepted; bigger ones are dropped as `oversized`.
    #[serde(default = "default_max_datagram")]
    pub max_datagram: usize,
    /// State older than this counts as unknown (milliseconds).
    #[serde(default = "default_max_state_age_ms")]
    pub max_state_age_ms: u64,
    /// Messages whose origin time is older than this are `stale` (seconds).
    #[serde(default = "default_max_message_age_s")]
    pub max_message_age_s: u64,
    /// Who may talk to the appliance, with which key and rights.
    pub peers: Vec<PeerConfig>,
}

/// `[[control.peers]]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Key id carried in every datagram from this peer.
    pub id: u32,
    pub name: String,
    /// File holding the peer's 32-byte key as 64 hex characters, mode 0600.
    /// Relative paths are relative to the config file.
    pub key_file: PathBuf,
    /// Any of "state", "capability", "policy", "query".
    pub roles: Vec<String>,
    /// Node ids this peer may report or announce for; absent means any.
    #[serde(default)]
    pub nodes: Option<Vec<u16>>,
    /// Path ids this peer may set state or policy for; absent means any.
    /// A restricted peer may not replace the whole policy.
    #[serde(default)]
    pub paths: Option<Vec<u16>>,
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// HTTP address for `GET /metrics`; loopback by default.
    #[serde(default = "default_metrics_listen")]
    pub listen: SocketAddr,
}

/// Roles a peer may hold.
pub const PEER_ROLES: [&str; 4] = ["state", "capability", "policy", "query"];

fn default_control_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7470))
}
fn default_metrics_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9470))
}
fn default_max_datagram() -> usize {
    4096
}
fn default_max_state_age_ms() -> u64 {
    1000
}
fn default_max_message_age_s() -> u64 {
    30
}

/// Settings applied to every port.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortDefaults {
    /// RX descriptors per queue; the driver may round to its limits.
    pub rx_descriptors: u16,
    /// TX descriptors per queue.
    pub tx_descriptors: u16,
    /// Mbufs in the packet pool; 0 sizes it from ports, queues and descriptors.
    pub mbufs: u32,
}

impl Default for PortDefaults {
    fn default() -> Self {
        PortDefaults {
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            mbufs: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairConfig {
    /// Exactly two ports (an array of any other length is an error, not
    /// truncated).
    #[serde(deserialize_with = "two_ports")]
    pub ports: [u16; 2],
}

fn two_ports<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u16; 2], D::Error> {
    let ports = Vec::<u16>::deserialize(d)?;
    <[u16; 2]>::try_from(ports.as_slice())
        .map_err(|_| serde::de::Error::invalid_length(ports.len(), &"an array of 2 port numbers"))
}

/// A worker asleep longer than this would overflow its RX ring at any
/// useful rate.
pub const MAX_IDLE_SLEEP_US: u32 = 10_000;

fn default_burst() -> u16 {
    32
}

/// A configuration problem, displayed as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A pipeline's `rss_key` (`flowtab::rss::parse_key`'s spelling), if set;
/// `key` names it in the complaint.
pub fn rss_key(
    key: &str,
    text: Option<&str>,
) -> Result<Option<[u8; flowtab::rss::RSS_KEY_LEN]>, ConfigError> {
    text.map(|t| {
        flowtab::rss::parse_key(t)
            .map_err(|why| ConfigError::expected(key, why, format_args!("\"{t}\"")))
    })
    .transpose()
}

impl ConfigError {
    /// "`key` must be `expected`, found `found`": the one shape of every
    /// complaint about a value.
    pub fn expected(
        key: impl fmt::Display,
        expected: impl fmt::Display,
        found: impl fmt::Display,
    ) -> ConfigError {
        ConfigError(format!("`{key}` must be {expected}, found {found}"))
    }

    /// A number below `lo` (and there is no upper limit).
    pub fn at_least(
        key: impl fmt::Display,
        found: impl fmt::Display,
        lo: impl fmt::Display,
    ) -> ConfigError {
        ConfigError::expected(key, format_args!("at least {lo}"), found)
    }

    /// A number outside `lo..=hi`.
    pub fn range(
        key: impl fmt::Display,
        found: impl fmt::Display,
        lo: impl fmt::Display,
        hi: impl fmt::Display,
    ) -> ConfigError {
        ConfigError::expected(key, format_args!("from {lo} to {hi}"), found)
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(format!(
                "config {}: cannot read: {}",
                path.display(),
                io_reason(&e)
            ))
        })?;
        let mut config = Config::parse(&text)
            .map_err(|e| ConfigError(format!("config {}: {}", path.display(), e.0)))?;
        config.resolve_paths(path.parent().unwrap_or(Path::new(".")));
        Ok(config)
    }

    /// Parses and validates TOML text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let file: ConfigFile = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| diagnose::describe(text, &e))?;
        let config = Config::from_file(file)?;
        config.validate()?;
        Ok(config)
    }

    /// Joins `pipeline` and its section into one [`Pipeline`].
    fn from_file(file: ConfigFile) -> Result<Config, ConfigError> {
        let kind = file.pipeline;
        let pipeline = match (kind, file.steer, file.tensor) {
            (PipelineKind::Forward, None, None) => Pipeline::Forward,
            (PipelineKind::Steer, Some(steer), None) => Pipeline::Steer(steer),
            (PipelineKind::Tensor, None, Some(tensor)) => Pipeline::Tensor(tensor),
            (PipelineKind::Steer, None, _) => {
                return Err(ConfigError(
                    "pipeline = \"steer\" needs a [steer] section (agent_port, paths, instances, services)"
                        .into(),
                ))
            }
            (PipelineKind::Tensor, _, None) => {
                return Err(ConfigError(
                    "pipeline = \"tensor\" needs a [tensor] section (at least host_port)".into(),
                ))
            }
            (_, Some(_), _) => {
                return Err(ConfigError(format!(
                    "[steer] is only used by pipeline = \"steer\", but pipeline = \"{kind}\""
                )))
            }
            (_, _, Some(_)) => {
                return Err(ConfigError(format!(
                    "[tensor] is only used by pipeline = \"tensor\", but pipeline = \"{kind}\""
                )))
            }
        };
        Ok(Config {
            pipeline,
            burst_size: file.burst_size,
            idle_sleep_us: file.idle_sleep_us,
            ports: file.ports,
            pairs: file.pairs,
            control: file.control,
            metrics: file.metrics,
            probe: file.probe,
        })
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.burst_size == 0 || usize::from(self.burst_size) > MAX_BURST {
            return Err(ConfigError::range(
                "burst_size",
                self.burst_size,
                1,
                MAX_BURST,
            ));
        }
        if self.idle_sleep_us > MAX_IDLE_SLEEP_US {
            return Err(ConfigError::range(
                "idle_sleep_us",
                self.idle_sleep_us,
                0,
                MAX_IDLE_SLEEP_US,
            ));
        }
        if self.ports.rx_descriptors == 0 {
            return Err(ConfigError::range("ports.rx_descriptors", 0, 1, u16::MAX));
        }
        if self.ports.tx_descriptors == 0 {
            return Err(ConfigError::range("ports.tx_descriptors", 0, 1, u16::MAX));
        }
        if self.pairs.is_empty() {
            return Err(ConfigError(
                "no [[pairs]]: name at least one port pair, e.g. ports = [0, 1]".into(),
            ));
        }
        if let Some(control) = &self.control {
            control.validate()?;
        }
        if let Some(probe) = &self.probe {
            probe.validate(self.control.is_some())?;
        }
        match &self.pipeline {
            Pipeline::Forward => {}
            Pipeline::Steer(steer) => {
                steer.build()?;
                if self.probe.is_some() {
                    return Err(ConfigError(
                        "[probe] does not run with pipeline = \"steer\" yet: report path state over [control] (PATH_STATE)".into(),
                    ));
                }
                if self.peer_of(steer.agent_port).is_none() {
                    return Err(ConfigError(format!(
                        "`steer.agent_port` must be a port of a [[pairs]] entry (its peer gets the agents' traffic that is not for a service), found {p}",
                        p = steer.agent_port
                    )));
                }
            }
            Pipeline::Tensor(t) => {
                t.validate()?;
                if self.probe.is_some() {
                    return Err(ConfigError(
                        "[probe] does not run with pipeline = \"tensor\" yet".into(),
                    ));
                }
                if self.peer_of(t.host_port).is_none() {
                    return Err(ConfigError(format!(
                        "`tensor.host_port` must be a port of a [[pairs]] entry (its peer gets the hosts' traffic that is not RoCEv2, and all of it in route mode), found {p}",
                        p = t.host_port
                    )));
                }
            }
        }
        let mut seen = BTreeSet::new();
        for (i, pair) in self.pairs.iter().enumerate() {
            let [a, b] = pair.ports;
            if a == b {
                return Err(ConfigError::expected(
                    format_args!("pairs[{i}].ports"),
                    "two different ports",
                    format_args!("[{a}, {b}], which joins port{a} to itself"),
                ));
            }
            for p in [a, b] {
                if !seen.insert(p) {
                    return Err(ConfigError(format!(
                        "`pairs[{i}].ports`: port{p} appears in more than one pair"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Resolves relative key paths against the config file's directory.
    fn resolve_paths(&mut self, base: &Path) {
        if let Some(probe) = &mut self.probe {
            if let Some(k) = &mut probe.key_file {
                if k.is_relative() {
                    *k = base.join(&*k);
                }
            }
        }
        if let Pipeline::Tensor(t) = &mut self.pipeline {
            if let Some(k) = &mut t.key_file {
                if k.is_relative() {
                    *k = base.join(&*k);
                }
            }
        }
        if let Some(control) = &mut self.control {
            for peer in &mut control.peers {
                if peer.key_file.is_relative() {
                    peer.key_file = base.join(&peer.key_file);
                }
            }
        }
    }

    /// Every port a pair or a steering path names, in ascending order.
    pub fn ports_used(&self) -> Vec<u16> {
        let mut set: BTreeSet<u16> = self.pairs.iter().flat_map(|p| p.ports).collect();
        match &self.pipeline {
            Pipeline::Forward => {}
            Pipeline::Steer(steer) => set.extend(steer.ports()),
            Pipeline::Tensor(tensor) => set.extend(tensor.ports()),
        }
        set.into_iter().collect()
    }

    /// The port paired with `port`, if any.
    pub fn peer_of(&self, port: u16) -> Option<u16> {
        self.pairs.iter().find_map(|p| match p.ports {
            [a, b] if a == port => Some(b),
            [a, b] if b == port => Some(a),
            _ => None,
        })
    }
}

impl ControlConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !(64..=65000).contains(&self.max_datagram) {
            return Err(ConfigError::range(
                "control.max_datagram",
                self.max_datagram,
                64,
                65000,
            ));
        }
        if self.max_state_age_ms == 0 {
            return Err(ConfigError::at_least("control.max_state_age_ms", 0, 1));
        }
        if self.peers.is_empty() {
            return Err(ConfigError(
                "[control] has no [[control.peers]]: nobody could talk to it".into(),
            ));
        }
        let mut ids = BTreeSet::new();
        for (i, peer) in self.peers.iter().enumerate() {
            if peer.id == 0 {
                // The appliance's own: its probe measurements are applied
                // as peer 0 (docs/wire-format.md §3.1).
                return Err(ConfigError::expected(
                    format_args!("control.peers[{i}].id"),
                    "from 1 to 4294967295 (0 is the appliance's own id)",
                    0,
                ));
            }
            if !ids.insert(peer.id) {
                return Err(ConfigError(format!(
                    "`control.peers[{i}].id`: control peer id {} is used twice",
                    peer.id
                )));
            }
            if peer.roles.is_empty() {
                return Err(ConfigError(format!(
                    "`control.peers[{i}].roles`: control peer {} ({}) has no roles",
                    peer.id, peer.name
                )));
            }
            if let Some(bad) = peer
                .roles
                .iter()
                .find(|r| !PEER_ROLES.contains(&r.as_str()))
            {
                return Err(ConfigError(format!(
                    "`control.peers[{i}].roles`: control peer {} ({}): unknown role `{bad}`, expected one of {}",
                    peer.id,
                    peer.name,
                    PEER_ROLES.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// `io::Error`'s text without the "(os error N)" suffix.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORWARD: &str = "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1]\n";

    #[test]
    fn minimal_forward_config_gets_defaults() {
        let c = Config::parse(FORWARD).unwrap();
        assert_eq!(c.pipeline, Pipeline::Forward);
        assert_eq!(c.burst_size, 32);
        assert_eq!(c.idle_sleep_us, 0);
        assert_eq!(c.ports, PortDefaults::default());
        assert_eq!(c.peer_of(0), Some(1));
        assert_eq!(c.peer_of(1), Some(0));
        assert_eq!(c.peer_of(2), None);
        assert_eq!(c.ports_used(), vec![0, 1]);
    }

    #[test]
    fn unknown_key_names_key_section_line_and_nearest() {
        let e = Config::parse("pipeline = \"forward\"\nburst = 8\n[[pairs]]\nports = [0, 1]\n")
            .unwrap_err();
        assert_eq!(
            e.0,
            "unknown key `burst` at the top level: did you mean `burst_size`? (line 2, column 1)"
        );
    }

    #[test]
    fn a_table_written_as_an_array_of_tables_is_named() {
        for (text, want) in [
            (
                "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1]\n[[ports]]\nmbufs = 4095\n",
                "`ports` must be a table, found an array (a table is written [ports], not [[ports]]) (line 4, column 1)",
            ),
            (
                "pipeline = \"tensor\"\n[[pairs]]\nports = [0, 1]\n[tensor]\nhost_port = 0\n[[tensor.qp]]\nexit_ratio = 0.5\n",
                "`tensor.qp` must be a table, found an array (a table is written [tensor.qp], not [[tensor.qp]]) (line 6, column 1)",
            ),
        ] {
            assert_eq!(Config::parse(text).unwrap_err().0, want);
        }
    }

    #[test]
    fn unknown_key_in_table_is_rejected() {
        let e = Config::parse(
            "pipeline = \"forward\"\n[ports]\nrx_desc = 8\n[[pairs]]\nports = [0, 1]\n",
        )
        .unwrap_err();
        assert_eq!(
            e.0,
            "unknown key `rx_desc` in [ports]: did you mean `rx_descriptors`? (line 3, column 1)"
        );
    }

    #[test]
    fn unknown_pipeline_is_rejected() {
        let e = Config::parse("pipeline = \"teleport\"\n[[pairs]]\nports = [0, 1]\n").unwrap_err();
        assert_eq!(
            e.0,
            "`pipeline` must be one of \"forward\", \"steer\", \"tensor\" (a string), found \"teleport\" (line 1, column 12)"
        );
    }

    #[test]
    fn pipeline_and_section_are_one_choice() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let steer = std::fs::read_to_string(root.join("examples/steer.toml")).unwrap();
        let c = Config::parse(&steer).unwrap();
        assert_eq!(c.pipeline.kind(), PipelineKind::Steer);
        assert!(matches!(c.pipeline, Pipeline::Steer(_)));
        assert_eq!(c.pipeline.to_string(), "steer");

        let as_forward = steer.replacen("pipeline = \"steer\"", "pipeline = \"forward\"", 1);
        assert_ne!(as_forward, steer);
        assert_eq!(
            Config::parse(&as_forward).unwrap_err().0,
            "[steer] is only used by pipeline = \"steer\", but pipeline = \"forward\""
        );
        let as_tensor = steer.replacen("pipeline = \"steer\"", "pipeline = \"tensor\"", 1);
        assert_eq!(
            Config::parse(&as_tensor).unwrap_err().0,
            "pipeline = \"tensor\" needs a [tensor] section (at least host_port)"
        );
        let e = Config::parse("pipeline = \"steer\"\n[[pairs]]\nports = [0, 1]\n").unwrap_err();
        assert!(
            e.0.starts_with("pipeline = \"steer\" needs a [steer] section"),
            "{e}"
        );
        let e = Config::parse(
            "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1]\n[tensor]\nhost_port = 0\n",
        )
        .unwrap_err();
        assert_eq!(
            e.0,
            "[tensor] is only used by pipeline = \"tensor\", but pipeline = \"forward\""
        );
        let c = Config::parse(
            "pipeline = \"tensor\"\n[[pairs]]\nports = [0, 1]\n[tensor]\nhost_port = 0\n",
        )
        .unwrap();
        assert!(matches!(&c.pipeline, Pipeline::Tensor(t) if t.host_port == 0));
        assert_eq!(c.ports_used(), vec![0, 1]);
    }

    #[test]
    fn semantic_errors() {
        for (text, want) in [
            ("pipeline = \"forward\"\npairs = []\n", "no [[pairs]]"),
            (
                "pipeline = \"forward\"\n[[pairs]]\nports = [1, 1]\n",
                "`pairs[0].ports` must be two different ports, found [1, 1], which joins port1 to itself",
            ),
            (
                "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1]\n[[pairs]]\nports = [1, 2]\n",
                "`pairs[1].ports`: port1 appears in more than one pair",
            ),
            (
                "pipeline = \"forward\"\nburst_size = 0\n[[pairs]]\nports = [0, 1]\n",
                "`burst_size` must be from 1 to 64, found 0",
            ),
            (
                "pipeline = \"forward\"\nburst_size = 65\n[[pairs]]\nports = [0, 1]\n",
                "`burst_size` must be from 1 to 64, found 65",
            ),
            (
                "pipeline = \"forward\"\nidle_sleep_us = 20000\n[[pairs]]\nports = [0, 1]\n",
                "`idle_sleep_us` must be from 0 to 10000, found 20000",
            ),
            (
                "pipeline = \"forward\"\n[ports]\nrx_descriptors = 0\n[[pairs]]\nports = [0, 1]\n",
                "`ports.rx_descriptors` must be from 1 to 65535, found 0",
            ),
            (
                "pipeline = \"forward\"\n[[pairs]]\nports = [0]\n",
                "`pairs[0].ports` must be an array of 2 port numbers, found 1 element (line 3",
            ),
            (
                "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1, 2]\n",
                "`pairs[0].ports` must be an array of 2 port numbers, found 3 elements (line 3",
            ),
            (
                "pipeline = \"forward\"\n[[pairs]]\nports = [0, 70000]\n",
                "`pairs[0].ports[1]` must be an integer from 0 to 65535, found 70000 (line 3",
            ),
        ] {
            let e = Config::parse(text).unwrap_err();
            assert!(e.0.contains(want), "{text:?}: got {e}, want {want}");
            assert!(!e.0.contains('\n'), "{e}");
        }
    }

    #[test]
    fn control_and_metrics_sections() {
        let text = "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1]\n[control]\nlisten = \"127.0.0.1:7000\"\n\
                    [[control.peers]]\nid = 7\nname = \"orch\"\nkey_file = \"k/orch.key\"\nroles = [\"state\", \"query\"]\n\
                    [metrics]\n";
        let c = Config::parse(text).unwrap();
        let control = c.control.clone().unwrap();
        assert_eq!(control.listen.port(), 7000);
        assert_eq!(control.max_state_age_ms, 1000);
        assert_eq!(control.peers[0].roles, vec!["state", "query"]);
        assert_eq!(control.peers[0].paths, None);
        let restricted = text.replace(
            "roles = [\"state\", \"query\"]\n",
            "roles = [\"state\", \"query\"]\nnodes = [5]\npaths = [1, 2]\n",
        );
        let peer = &Config::parse(&restricted).unwrap().control.unwrap().peers[0];
        assert_eq!(peer.nodes, Some(vec![5]));
        assert_eq!(peer.paths, Some(vec![1, 2]));
        assert_eq!(c.metrics.unwrap().listen, "127.0.0.1:9470".parse().unwrap());

        let bad_role = text.replace("\"query\"", "\"root\"");
        assert!(Config::parse(&bad_role)
            .unwrap_err()
            .0
            .contains("`control.peers[0].roles`: control peer 7 (orch): unknown role `root`"));
        let no_peers = "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1]\n[control]\npeers = []\n";
        assert!(Config::parse(no_peers)
            .unwrap_err()
            .0
            .contains("no [[control.peers]]"));
        let zero = text.replacen("id = 7", "id = 0", 1);
        assert!(Config::parse(&zero)
            .unwrap_err()
            .0
            .contains("`control.peers[0].id` must be from 1 to 4294967295 (0 is the appliance's own id), found 0"));
        let dup = format!("{text}[[control.peers]]\nid = 7\nname = \"x\"\nkey_file = \"y\"\nroles = [\"state\"]\n");
        assert!(Config::parse(&dup.replace("[metrics]\n", ""))
            .unwrap_err()
            .0
            .contains("`control.peers[1].id`: control peer id 7 is used twice"));
        assert_eq!(
            Config::parse(&text.replace("key_file", "key")).unwrap_err().0,
            "unknown key `key` in [[control.peers]] (`control.peers[0]`): did you mean `key_file`? (line 9, column 1)"
        );
        assert_eq!(
            Config::parse(&text.replace("key_file", "zzz")).unwrap_err().0,
            "unknown key `zzz` in [[control.peers]] (`control.peers[0]`): expected one of `id`, `name`, `key_file`, `roles`, `nodes`, `paths` (line 9, column 1)"
        );
    }

    #[test]
    fn probe_section() {
        let base = "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1]\n";
        let c = Config::parse(&format!("{base}[probe]\nreflect = true\n")).unwrap();
        let p = c.probe.unwrap();
        assert!(p.reflect && p.targets.is_empty());
        assert_eq!((p.interval_ms, p.udp_port), (100, 7471));
        for (extra, want) in [
            ("[probe]\n", "does nothing"),
            ("[probe]\n[[probe.targets]]\npath = 1\ndst_ip = \"192.0.2.2\"\n", "no `probe.key_file`"),
            ("[probe]\nkey_file = \"k\"\n[[probe.targets]]\npath = 1\ndst_ip = \"192.0.2.2\"\n", "no `probe.src_ip`"),
            ("[probe]\nkey_file = \"k\"\nsrc_ip = \"192.0.2.1\"\n[[probe.targets]]\npath = 1\ndst_ip = \"192.0.2.2\"\n", "need [control]"),
            ("[probe]\nreflect = true\ninterval_ms = 0\n", "`probe.interval_ms` must be from 1 to 60000, found 0"),
            ("[probe]\nreflect = true\ndst = 1\n", "unknown key `dst` in [probe]"),
        ] {
            let e = Config::parse(&format!("{base}{extra}")).unwrap_err();
            assert!(e.0.contains(want), "{extra:?}: {e}");
        }
    }

    #[test]
    fn shipped_examples_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for f in ["examples/forward.toml", "bench/forward-bench.toml"] {
            Config::load(&root.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }

    #[test]
    fn steer_policy_is_chosen_by_name_and_an_unknown_one_is_named() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let base = std::fs::read_to_string(root.join("examples/steer.toml")).unwrap();
        let steer = |c: Config| match c.pipeline {
            Pipeline::Steer(s) => s,
            other => panic!("pipeline {other}, not steer"),
        };
        assert_eq!(
            steer(Config::parse(&base).unwrap()).policy,
            steer::Policy::TokenAware
        );
        for p in steer::Policy::ALL {
            let text = base.replacen(
                "[steer]\n",
                &format!("[steer]\npolicy = \"{}\"\n", p.name()),
                1,
            );
            assert_eq!(steer(Config::parse(&text).unwrap()).policy, p);
        }
        let text = base.replacen("[steer]\n", "[steer]\npolicy = \"fifo\"\n", 1);
        let e = Config::parse(&text).unwrap_err();
        assert!(
            e.0.starts_with("`steer.policy` must be one of \"token_aware\", \"least_queue\", \"round_robin\", \"llm_d\" (a string), found \"fifo\" (line "),
            "{e}"
        );
    }
}
