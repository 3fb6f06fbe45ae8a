//! Building state and capability messages from plain numbers: the one
//! implementation behind `intellinode ctl`, the emulator's own reports and
//! the compute-state collector, so all three send the same records for
//! the same facts.
//!
//! Each `*Fields` struct holds what a sender knows, every measurement
//! optional; [`NodeStateFields::message`] and friends turn it into a
//! [`Message`] with one raw (L0) metric per known value, or say which
//! values were all missing. Values are not validated here: sealing does
//! that ([`crate::Sender::seal`]), with the same rules as the receiver.

use core::fmt;

use crate::capability::{Capability, ModelClass};
use crate::ids::{NodeId, PathId};
use crate::message::Message;
use crate::metric::{Metric, MetricType, Source, Unit};
use crate::node_state::NodeState;
use crate::path_state::PathState;
use crate::task_types::TaskTypes;

/// A raw, current metric from `source`.
pub fn metric(metric_type: MetricType, unit: Unit, source: Source, value: f64) -> Metric {
    Metric::new(metric_type, unit, value).with_source(source)
}

/// Why no message could be built: every measurement was absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NothingToSend {
    /// The message kind's name, e.g. `node-state`.
    pub kind: &'static str,
    /// The fields of which at least one is needed, as `ctl` flags.
    pub needs: &'static str,
}

impl fmt::Display for NothingToSend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} needs at least one of {}", self.kind, self.needs)
    }
}

impl std::error::Error for NothingToSend {}

/// What a sender knows about one path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PathStateFields {
    /// The path.
    pub path: u16,
    /// One-way latency, microseconds.
    pub latency_us: Option<f64>,
    /// Jitter, microseconds.
    pub jitter_us: Option<f64>,
    /// Available bandwidth, bit/s.
    pub bandwidth_bps: Option<f64>,
    /// Loss ratio, 0 to 1.
    pub loss: Option<f64>,
    /// Where the values come from.
    pub source: Source,
}

impl PathStateFields {
    /// The PATH_STATE carrying every known value.
    pub fn message(&self) -> Result<Message, NothingToSend> {
        let src = self.source;
        let metrics: Vec<Metric> = [
            (MetricType::PathLatency, Unit::Microseconds, self.latency_us),
            (MetricType::PathJitter, Unit::Microseconds, self.jitter_us),
            (
                MetricType::PathAvailableBw,
                Unit::BitsPerSecond,
                self.bandwidth_bps,
            ),
            (MetricType::PathLoss, Unit::Ratio, self.loss),
        ]
        .into_iter()
        .filter_map(|(t, u, v)| v.map(|v| metric(t, u, src, v)))
        .collect();
        if metrics.is_empty() {
            return Err(NothingToSend {
                kind: "path-state",
                needs: "--latency-us, --jitter-us, --bandwidth-bps, --loss",
            });
        }
        Ok(Message::PathState(PathState::new(
            PathId(self.path),
            metrics,
        )))
    }
}

/// What a sender knows about one compute node's load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeStateFields {
    /// The node.
    pub node: u16,
    /// GPU utilisation, 0 to 1.
    pub gpu_util: Option<f64>,
    /// GPU memory (KV-cache) utilisation, 0 to 1.
    pub mem_util: Option<f64>,
    /// Requests waiting.
    pub queue: Option<f64>,
    /// Estimated time to first token, milliseconds.
    pub ttft_ms: Option<f64>,
    /// Where the values come from.
    pub source: Source,
}

impl NodeStateFields {
    /// The NODE_STATE carrying every known value.
    pub fn message(&self) -> Result<Message, NothingToSend> {
        let src = self.source;
        let metrics: Vec<Metric> = [
            (MetricType::GpuUtilisation, Unit::Ratio, self.gpu_util),
            (MetricType::GpuMemoryUtilisation, Unit::Ratio, self.mem_util),
            (MetricType::QueueLength, Unit::Count, self.queue),
            (MetricType::EstTtft, Unit::Milliseconds, self.ttft_ms),
        ]
        .into_iter()
        .filter_map(|(t, u, v)| v.map(|v| metric(t, u, src, v)))
        .collect();
        if metrics.is_empty() {
            return Err(NothingToSend {
                kind: "node-state",
                needs: "--gpu-util, --mem-util, --queue, --ttft-ms",
            });
        }
        Ok(Message::NodeState(NodeState::new(
            NodeId(self.node),
            metrics,
        )))
    }
}

/// What a compute node can serve, as a sender announces it.
#[derive(Debug, Clone, PartialEq)]
pub struct CapabilityFields {
    /// The node.
    pub node: u16,
    /// Model name.
    pub model: String,
    /// Size class.
    pub class: ModelClass,
    /// Accelerator kind, e.g. `A100`.
    pub accelerator: String,
    /// Task types served.
    pub tasks: TaskTypes,
    /// Longest context, tokens.
    pub max_context: u32,
    /// Prefill rate, tokens per second.
    pub prefill_tps: f64,
    /// Decode rate of one stream, tokens per second.
    pub decode_tps: f64,
    /// Batch slots, when known.
    pub concurrency: Option<u32>,
}

impl CapabilityFields {
    /// The CAPABILITY message (nominal metrics: they are what the node is
    /// configured for, not what was measured).
    pub fn message(&self) -> Message {
        let mut cap = Capability::new(
            NodeId(self.node),
            self.model.clone(),
            self.class,
            self.accelerator.clone(),
            self.tasks,
        );
        let nominal = Source::Nominal;
        cap.metrics.extend([
            metric(
                MetricType::MaxContextTokens,
                Unit::Tokens,
                nominal,
                f64::from(self.max_context),
            ),
            metric(
                MetricType::TokensPerSPrefill,
                Unit::TokensPerSecond,
                nominal,
                self.prefill_tps,
            ),
            metric(
                MetricType::TokensPerSDecode,
                Unit::TokensPerSecond,
                nominal,
                self.decode_tps,
            ),
        ]);
        if let Some(c) = self.concurrency {
            cap.metrics.push(metric(
                MetricType::ConcurrencyLimit,
                Unit::Count,
                nominal,
                f64::from(c),
            ));
        }
        Message::Capability(cap)
    }
}

/// CLOCK_REALTIME in nanoseconds: what `origin_time_ns` carries and what
/// the receiver's freshness check compares it with (0 before 1970).
pub fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_state_carries_exactly_the_known_values() {
        let f = NodeStateFields {
            node: 4,
            gpu_util: Some(0.5),
            mem_util: None,
            queue: Some(3.0),
            ttft_ms: Some(42.0),
            source: Source::Measured,
        };
        let Message::NodeState(s) = f.message().unwrap() else {
            panic!("not a NODE_STATE")
        };
        assert_eq!(s.node, NodeId(4));
        let types: Vec<MetricType> = s.metrics.iter().map(|m| m.metric_type).collect();
        assert_eq!(
            types,
            [
                MetricType::GpuUtilisation,
                MetricType::QueueLength,
                MetricType::EstTtft
            ]
        );
        assert_eq!(s.metrics[2].normalised(), 42_000.0);
        let none = NodeStateFields {
            gpu_util: None,
            queue: None,
            ttft_ms: None,
            ..f
        };
        assert!(none.message().unwrap_err().to_string().contains("--queue"));
    }

    #[test]
    fn capability_metrics_are_nominal() {
        let f = CapabilityFields {
            node: 1,
            model: "m".into(),
            class: ModelClass::SmallEdge,
            accelerator: "A100".into(),
            tasks: TaskTypes::CHAT,
            max_context: 8192,
            prefill_tps: 5000.0,
            decode_tps: 50.0,
            concurrency: Some(8),
        };
        let Message::Capability(c) = f.message() else {
            panic!("not a CAPABILITY")
        };
        assert_eq!(c.metrics.len(), 4);
        assert!(c.metrics.iter().all(|m| m.source == Source::Nominal));
    }
}
