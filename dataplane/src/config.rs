//! The appliance's TOML configuration.
//!
//! Unknown keys are errors (a typo must never silently fall back to a
//! default), and every error is one line naming the file, the position and
//! the problem.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::dpdk::MAX_BURST;

/// Which packet pipeline the workers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineKind {
    /// Transparent bump-in-the-wire: every frame entering one port of a pair
    /// leaves the other, unchanged.
    Forward,
}

impl fmt::Display for PipelineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PipelineKind::Forward => "forward",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
        Config::parse(&text).map_err(|e| ConfigError(format!("config {}: {}", path.display(), e.0)))
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

    /// Every port a pair names, in ascending order.
    pub fn ports_used(&self) -> Vec<u16> {
        let set: BTreeSet<u16> = self.pairs.iter().flat_map(|p| p.ports).collect();
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
    fn shipped_examples_parse() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for f in ["examples/forward.toml", "bench/forward-bench.toml"] {
            Config::load(&root.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }
}
