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

/// Which packet pipeline the workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
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

impl fmt::Display for PipelineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PipelineKind::Forward => "forward",
            PipelineKind::Steer => "steer",
            PipelineKind::Tensor => "tensor",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub pipeline: PipelineKind,
    /// Packets per rx/tx burst (1 to 64).
    #[serde(default = "default_burst")]
    pub burst_size: u16,
    /// Microseconds a worker sleeps after a pass over its queues that moved
    /// no packet; 0 (the default) polls without pause. For cores shared with
    /// the kernel, e.g. `net_af_packet` on a small machine, where a spinning
    /// worker starves the softirq work that feeds it (OVS-DPDK's
    /// `pmd-sleep-max` addresses the same problem). Never sleeps while
    /// traffic flows.
    #[serde(default)]
    pub idle_sleep_us: u32,
    #[serde(default)]
    pub ports: PortDefaults,
    /// Port pairs: what enters one leaves the other.
    pub pairs: Vec<PairConfig>,
    /// The orchestration channel; absent means no control plane.
    #[serde(default)]
    pub control: Option<ControlConfig>,
    /// Prometheus exposition; absent means no metrics endpoint.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    /// Active path measurement and reflection; absent means neither.
    #[serde(default)]
    pub probe: Option<ProbeConfig>,
    /// Token-aware steering; required by, and only allowed with,
    /// `pipeline = "steer"`.
    #[serde(default)]
    pub steer: Option<crate::steer_config::SteerConfig>,
    /// Tensor-aware scheduling; required by, and only allowed with,
    /// `pipeline = "tensor"`.
    #[serde(default)]
    pub tensor: Option<crate::tensor_config::TensorConfig>,
}

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
            return Err(ConfigError(format!(
                "probe.interval_ms = {} is out of range (1 to 60000)",
                self.interval_ms
            )));
        }
        if self.timeout_ms == 0 {
            return Err(ConfigError("probe.timeout_ms must be at least 1".into()));
        }
        if !(1..=1000).contains(&self.window) {
            return Err(ConfigError(format!(
                "probe.window = {} is out of range (1 to 1000)",
                self.window
            )));
        }
        if self.targets.is_empty() && !self.reflect {
            return Err(ConfigError(
                "[probe] does nothing: add [[probe.targets]] or set reflect = true".into(),
            ));
        }
        if !self.targets.is_empty() {
            if self.key_file.is_none() {
                return Err(ConfigError(
                    "[probe] has targets but no key_file to sign probes with".into(),
                ));
            }
            if self.src_ip.is_none() {
                return Err(ConfigError("[probe] has targets but no src_ip".into()));
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
    pub ports: [u16; 2],
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
        let config: Config = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim().replace('\n', " ");
            match e.span() {
                Some(span) => {
                    let (line, col) = line_col(text, span.start);
                    ConfigError(format!("line {line}, column {col}: {msg}"))
                }
                None => ConfigError(msg),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.burst_size == 0 || usize::from(self.burst_size) > MAX_BURST {
            return Err(ConfigError(format!(
                "burst_size = {} is out of range (1 to {MAX_BURST})",
                self.burst_size
            )));
        }
        if self.idle_sleep_us > MAX_IDLE_SLEEP_US {
            return Err(ConfigError(format!(
                "idle_sleep_us = {} is out of range (0 to {MAX_IDLE_SLEEP_US})",
                self.idle_sleep_us
            )));
        }
        if self.ports.rx_descriptors == 0 || self.ports.tx_descriptors == 0 {
            return Err(ConfigError(
                "ports.rx_descriptors and ports.tx_descriptors must be at least 1".into(),
            ));
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
        match (self.pipeline, &self.steer) {
            (PipelineKind::Steer, None) => {
                return Err(ConfigError(
                    "pipeline = \"steer\" needs a [steer] section (services, instances, paths)"
                        .into(),
                ))
            }
            (PipelineKind::Forward, Some(_)) => {
                return Err(ConfigError(
                    "[steer] is only used by pipeline = \"steer\"".into(),
                ))
            }
            (PipelineKind::Steer, Some(steer)) => {
                steer.build()?;
                if self.probe.is_some() {
                    return Err(ConfigError(
                        "[probe] does not run with pipeline = \"steer\" yet: report path state over [control] (PATH_STATE)".into(),
                    ));
                }
                if self.peer_of(steer.agent_port).is_none() {
                    return Err(ConfigError(format!(
                        "steer.agent_port = {p} must be in a [[pairs]] entry: its peer gets the agents' traffic that is not for a service",
                        p = steer.agent_port
                    )));
                }
            }
            (PipelineKind::Forward, None) | (PipelineKind::Tensor, _) => {}
        }
        match (self.pipeline, &self.tensor) {
            (PipelineKind::Tensor, None) => {
                return Err(ConfigError(
                    "pipeline = \"tensor\" needs a [tensor] section (at least host_port)".into(),
                ))
            }
            (PipelineKind::Tensor, Some(t)) => {
                t.validate()?;
                if self.steer.is_some() {
                    return Err(ConfigError(
                        "[steer] is only used by pipeline = \"steer\"".into(),
                    ));
                }
                if self.probe.is_some() {
                    return Err(ConfigError(
                        "[probe] does not run with pipeline = \"tensor\" yet".into(),
                    ));
                }
                if self.peer_of(t.host_port).is_none() {
                    return Err(ConfigError(format!(
                        "tensor.host_port = {p} must be in a [[pairs]] entry: its peer gets the hosts' traffic that is not RoCEv2 (and all of it in route mode)",
                        p = t.host_port
                    )));
                }
            }
            (_, Some(_)) => {
                return Err(ConfigError(
                    "[tensor] is only used by pipeline = \"tensor\"".into(),
                ))
            }
            (_, None) => {}
        }
        let mut seen = BTreeSet::new();
        for pair in &self.pairs {
            let [a, b] = pair.ports;
            if a == b {
                return Err(ConfigError(format!(
                    "pair [{a}, {b}] joins port{a} to itself"
                )));
            }
            for p in [a, b] {
                if !seen.insert(p) {
                    return Err(ConfigError(format!(
                        "port{p} appears in more than one pair"
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
        if let Some(k) = self.tensor.as_mut().and_then(|t| t.key_file.as_mut()) {
            if k.is_relative() {
                *k = base.join(&*k);
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
        if let Some(steer) = &self.steer {
            set.extend(steer.ports());
        }
        if let Some(tensor) = &self.tensor {
            set.extend(tensor.ports());
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
            return Err(ConfigError(format!(
                "control.max_datagram = {} is out of range (64 to 65000)",
                self.max_datagram
            )));
        }
        if self.max_state_age_ms == 0 {
            return Err(ConfigError(
                "control.max_state_age_ms must be at least 1".into(),
            ));
        }
        if self.peers.is_empty() {
            return Err(ConfigError(
                "[control] has no [[control.peers]]: nobody could talk to it".into(),
            ));
        }
        let mut ids = BTreeSet::new();
        for peer in &self.peers {
            if !ids.insert(peer.id) {
                return Err(ConfigError(format!(
                    "control peer id {} is used twice",
                    peer.id
                )));
            }
            if peer.roles.is_empty() {
                return Err(ConfigError(format!(
                    "control peer {} ({}) has no roles",
                    peer.id, peer.name
                )));
            }
            if let Some(bad) = peer
                .roles
                .iter()
                .find(|r| !PEER_ROLES.contains(&r.as_str()))
            {
                return Err(ConfigError(format!(
                    "control peer {} ({}): unknown role `{bad}`, expected one of {}",
                    peer.id,
                    peer.name,
                    PEER_ROLES.join(", ")
                )));
            }
        }
        Ok(())
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
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
        assert_eq!(c.pipeline, PipelineKind::Forward);
        assert_eq!(c.burst_size, 32);
        assert_eq!(c.idle_sleep_us, 0);
        assert_eq!(c.ports, PortDefaults::default());
        assert_eq!(c.peer_of(0), Some(1));
        assert_eq!(c.peer_of(1), Some(0));
        assert_eq!(c.peer_of(2), None);
        assert_eq!(c.ports_used(), vec![0, 1]);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = Config::parse("pipeline = \"forward\"\nburst = 8\n[[pairs]]\nports = [0, 1]\n")
            .unwrap_err();
        assert!(
            e.0.starts_with("line 2, column 1: unknown field `burst`"),
            "{e}"
        );
        assert!(!e.0.contains('\n'));
    }

    #[test]
    fn unknown_key_in_table_is_rejected() {
        let e = Config::parse(
            "pipeline = \"forward\"\n[ports]\nrx_desc = 8\n[[pairs]]\nports = [0, 1]\n",
        )
        .unwrap_err();
        assert!(e.0.contains("unknown field `rx_desc`"), "{e}");
    }

    #[test]
    fn unknown_pipeline_is_rejected() {
        let e = Config::parse("pipeline = \"teleport\"\n[[pairs]]\nports = [0, 1]\n").unwrap_err();
        assert!(e.0.contains("teleport"), "{e}");
        assert!(e.0.contains("forward"), "{e}");
    }

    #[test]
    fn semantic_errors() {
        for (text, want) in [
            ("pipeline = \"forward\"\npairs = []\n", "no [[pairs]]"),
            (
                "pipeline = \"forward\"\n[[pairs]]\nports = [1, 1]\n",
                "to itself",
            ),
            (
                "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1]\n[[pairs]]\nports = [1, 2]\n",
                "port1 appears in more than one pair",
            ),
            (
                "pipeline = \"forward\"\nburst_size = 0\n[[pairs]]\nports = [0, 1]\n",
                "burst_size = 0",
            ),
            (
                "pipeline = \"forward\"\nburst_size = 65\n[[pairs]]\nports = [0, 1]\n",
                "burst_size = 65",
            ),
            (
                "pipeline = \"forward\"\nidle_sleep_us = 20000\n[[pairs]]\nports = [0, 1]\n",
                "idle_sleep_us = 20000",
            ),
            (
                "pipeline = \"forward\"\n[ports]\nrx_descriptors = 0\n[[pairs]]\nports = [0, 1]\n",
                "rx_descriptors",
            ),
            ("pipeline = \"forward\"\n[[pairs]]\nports = [0]\n", "line 3"),
            (
                "pipeline = \"forward\"\n[[pairs]]\nports = [0, 70000]\n",
                "line 3",
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
        let control = c.control.unwrap();
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
            .contains("unknown role `root`"));
        let no_peers = "pipeline = \"forward\"\n[[pairs]]\nports = [0, 1]\n[control]\npeers = []\n";
        assert!(Config::parse(no_peers)
            .unwrap_err()
            .0
            .contains("no [[control.peers]]"));
        let dup = format!("{text}[[control.peers]]\nid = 7\nname = \"x\"\nkey_file = \"y\"\nroles = [\"state\"]\n");
        assert!(Config::parse(&dup.replace("[metrics]\n", ""))
            .unwrap_err()
            .0
            .contains("used twice"));
        assert!(Config::parse(&text.replace("key_file", "key"))
            .unwrap_err()
            .0
            .contains("unknown field `key`"));
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
            ("[probe]\n[[probe.targets]]\npath = 1\ndst_ip = \"192.0.2.2\"\n", "no key_file"),
            ("[probe]\nkey_file = \"k\"\n[[probe.targets]]\npath = 1\ndst_ip = \"192.0.2.2\"\n", "no src_ip"),
            ("[probe]\nkey_file = \"k\"\nsrc_ip = \"192.0.2.1\"\n[[probe.targets]]\npath = 1\ndst_ip = \"192.0.2.2\"\n", "need [control]"),
            ("[probe]\nreflect = true\ninterval_ms = 0\n", "interval_ms = 0"),
            ("[probe]\nreflect = true\ndst = 1\n", "unknown field `dst`"),
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
        let steer = |c: Config| c.steer.unwrap();
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
        assert!(e.0.contains("policy \"fifo\" is not token_aware"), "{e}");
        assert!(!e.0.contains('\n'), "{e}");
    }
}
