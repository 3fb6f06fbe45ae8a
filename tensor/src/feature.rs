//! What the workers extract from each RoCEv2 packet and hand to the
//! predictor core (draft §3.1 → §3.2, the "featureFIFO").
//!
//! A [`FeatureRecord`] is small and `Copy` so that a worker can push it
//! into a bounded lock-free ring without allocating. Workers coalesce
//! consecutive packets of one QP within a burst into one record (the
//! `packets` and `bytes` fields), so the ring carries one record per run of
//! a QP rather than one per packet.

use crate::qp_state::QpState;

/// What a tensor flow carries (draft §3.1, "AI Semantic Features").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum TensorType {
    /// Not tensor traffic, or nobody said.
    #[default]
    Normal = 0,
    /// Gradients (data-parallel synchronisation, all-reduce).
    Gradient = 1,
    /// Activations (pipeline-parallel forward pass, on the critical path).
    Activation = 2,
    /// Parameters (parameter-server pulls, broadcasts, checkpoints).
    Parameter = 3,
}

impl TensorType {
    /// Every type, in code order.
    pub const ALL: [TensorType; 4] = [
        TensorType::Normal,
        TensorType::Gradient,
        TensorType::Activation,
        TensorType::Parameter,
    ];
    /// Number of types.
    pub const COUNT: usize = 4;

    /// The type with wire code `code`, if defined.
    pub const fn from_code(code: u8) -> Option<TensorType> {
        match code {
            0 => Some(TensorType::Normal),
            1 => Some(TensorType::Gradient),
            2 => Some(TensorType::Activation),
            3 => Some(TensorType::Parameter),
            _ => None,
        }
    }

    /// Stable name for counters, configs and docs.
    pub const fn name(self) -> &'static str {
        match self {
            TensorType::Normal => "normal",
            TensorType::Gradient => "gradient",
            TensorType::Activation => "activation",
            TensorType::Parameter => "parameter",
        }
    }
}

/// Where a flow's semantic features came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum SemanticSource {
    /// Documented heuristics (no metadata TLV).
    #[default]
    Heuristic = 0,
    /// An authenticated metadata TLV.
    Tlv = 1,
    /// A metadata TLV failed authentication: ignored, best effort.
    Forged = 2,
}

/// The AI-semantic features of a flow (draft §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SemanticFeatures {
    /// Gradient, activation, parameter or normal traffic.
    pub tensor_type: TensorType,
    /// Position of the tensor within its batch or iteration (bucket or
    /// micro-batch index), 0 when unknown.
    pub batch_position: u16,
    /// Stage of the model-parallel pipeline, 0 when unknown.
    pub pipeline_stage: u8,
    /// Cross-node gradient synchronisation (all-reduce) traffic.
    pub gradient_sync: bool,
    /// Where these came from.
    pub source: SemanticSource,
}

/// One run of packets of one QP, as a worker saw it.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FeatureRecord {
    /// When the run was seen, ns on the appliance's monotonic clock.
    pub t_ns: u64,
    /// Index of the QP in the worker's QP table (stable while the QP lives).
    pub qp: u32,
    /// Index of the target node in the configured node list
    /// (`u16::MAX` when the destination is not a known node).
    pub node: u16,
    /// Port the packets came in by.
    pub ingress_port: u8,
    /// Port they were queued on.
    pub egress_port: u8,
    /// Path they were sent over (`u8::MAX`: none, not overlaid).
    pub path: u8,
    /// The QP's state after these packets.
    pub state: QpState,
    /// Their semantic features.
    pub semantic: SemanticFeatures,
    /// Packets in the run.
    pub packets: u16,
    /// Bytes in the run (frame lengths).
    pub bytes: u32,
    /// Packets queued on the egress port when the run was queued.
    pub queue_depth: u32,
    /// The QP's rate average, Mbit/s.
    pub rate_mbps: u32,
}
