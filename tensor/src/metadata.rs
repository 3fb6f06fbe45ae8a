//! IntelliNode metadata TLVs, carried as Geneve options and authenticated
//! with AES-128-CMAC (draft §3.4 "Data Plane Labels / TLVs", §4, §5).
//!
//! The sending appliance tells the receiving one what a packet is (tensor
//! type, training phase), how it was sliced (fragment routing), what it
//! knows about compute nodes and paths, and what it decided about
//! in-network offload. Each fact is one Geneve option of class
//! [`OPTION_CLASS`]; the byte layouts are in `docs/wire-format.md` §7.
//!
//! # Why a MAC
//!
//! The draft requires integrity protection for these fields: a node that
//! could rewrite "tensor type" could preempt the high-priority queues, and
//! one that could forge a compute capability could attract traffic. So the
//! sender appends a [`MAC`](option_type::MAC) option, last among the
//! IntelliNode options, holding an AES-128-CMAC tag (RFC 4493) over
//!
//! 1. [`flow_key_bytes`] of the *inner* packet's flow key, which binds the
//!    metadata to the flow it describes: copying the valid options of one
//!    flow onto another fails, and
//! 2. every IntelliNode option before the MAC, header included, exactly as
//!    on the wire and in wire order.
//!
//! Options of other classes are neither covered nor interpreted, so other
//! Geneve users (and middleboxes adding their own options) can coexist.
//!
//! # Receiving
//!
//! [`MetadataRepr::parse_verified`] checks in this order, so that nothing
//! unauthenticated is ever decoded: the options area is well formed
//! (`Truncated`); exactly one MAC, with no IntelliNode option after it
//! (`MissingMac`, `MacNotLast`, `BadLength`); the key id is configured
//! (`UnknownKey`); the tag verifies, in constant time (`BadMac`); and only
//! then the fields decode (`BadLength`, `BadValue`, `Duplicate`,
//! `UnknownCritical`). Unknown *non-critical* IntelliNode types are covered
//! by the MAC and otherwise ignored, so that new types can be added without
//! breaking older receivers.
//!
//! There is no replay protection here beyond what the FRAGMENT option's
//! `stream_seq` lets the reorder stage detect: a replayed packet carries
//! metadata that was genuine for its flow.
//!
//! # Cost
//!
//! Nothing allocates. [`MetadataKey`] runs the AES key schedule once, when
//! built, and each packet clones the prepared CMAC state (a copy of the
//! round keys and the two subkeys).

use core::fmt;

use aes::Aes128;
use classifier::{FlowKey, IpVersion};
use cmac::{Cmac, Mac};

use crate::encap::{MBUF_HEADROOM, OUTER_FIXED_LEN};
use crate::feature::{SemanticFeatures, SemanticSource, TensorType};
use crate::geneve::{self, GeneveOptions, OPTION_HEADER_LEN};

/// The Geneve option class of IntelliNode options. RFC 8926 §7 reserves
/// 0xFF00–0xFFFF for Experimental Use; 0x49 is ASCII "I".
pub const OPTION_CLASS: u16 = 0xFF49;

/// IntelliNode option types. The high bit ([`geneve::CRITICAL`]) is set
/// where a receiver that does not understand the option must not act on
/// the packet as if it were absent.
pub mod option_type {
    /// Fragment routing: which slice of which message this is. Critical
    /// because reassembly and reordering depend on it.
    pub const FRAGMENT: u8 = 0x81;
    /// Tensor type, gradient sync, pipeline stage, batch position.
    pub const TENSOR_TYPE: u8 = 0x02;
    /// Training or inference phase and iteration.
    pub const TRAINING_PHASE: u8 = 0x03;
    /// A compute node's advertised capability.
    pub const COMPUTE_CAPABILITY: u8 = 0x04;
    /// The sender's prediction for the path the packet took.
    pub const PATH_PREDICTION: u8 = 0x05;
    /// Whether an operator is offloaded to an in-network reducer.
    pub const OFFLOAD_DECISION: u8 = 0x06;
    /// The authentication tag. Critical: a receiver that cannot check it
    /// must not trust the other options.
    pub const MAC: u8 = 0xFF;
}

/// Data lengths (header excluded) of each option type, bytes.
pub mod data_len {
    /// FRAGMENT.
    pub const FRAGMENT: usize = 12;
    /// TENSOR_TYPE.
    pub const TENSOR_TYPE: usize = 8;
    /// TRAINING_PHASE.
    pub const TRAINING_PHASE: usize = 8;
    /// COMPUTE_CAPABILITY.
    pub const COMPUTE_CAPABILITY: usize = 8;
    /// PATH_PREDICTION.
    pub const PATH_PREDICTION: usize = 8;
    /// OFFLOAD_DECISION.
    pub const OFFLOAD_DECISION: usize = 4;
    /// MAC: key id, 3 reserved bytes, 16-byte tag.
    pub const MAC: usize = 20;
}

/// Length of an AES-128-CMAC tag.
pub const TAG_LEN: usize = 16;

/// Length of [`flow_key_bytes`].
pub const FLOW_KEY_LEN: usize = 44;

/// The most option bytes [`MetadataRepr::emit`] writes: what is left of the
/// mbuf headroom after the fixed outer headers, rounded down to whole
/// 4-byte words (128 − 50 = 78 → 76).
pub const MAX_OPTIONS_LEN: usize = (MBUF_HEADROOM - OUTER_FIXED_LEN) / 4 * 4;

const fn wire(data: usize) -> usize {
    OPTION_HEADER_LEN + data
}

/// The budget the data plane relies on: FRAGMENT, TENSOR_TYPE,
/// TRAINING_PHASE, the largest of the three optional ones, and the MAC.
pub const WORST_CASE_OPTIONS_LEN: usize = wire(data_len::FRAGMENT)
    + wire(data_len::TENSOR_TYPE)
    + wire(data_len::TRAINING_PHASE)
    + wire(data_len::COMPUTE_CAPABILITY)
    + wire(data_len::MAC);

const _: () = assert!(data_len::COMPUTE_CAPABILITY >= data_len::PATH_PREDICTION);
const _: () = assert!(data_len::COMPUTE_CAPABILITY >= data_len::OFFLOAD_DECISION);
const _: () = assert!(WORST_CASE_OPTIONS_LEN <= MAX_OPTIONS_LEN);

/// Everything that can be wrong with IntelliNode metadata, received or to
/// be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataError {
    /// The options area does not split into whole Geneve options.
    Truncated {
        /// Offset of the offending option within the options area.
        offset: usize,
    },
    /// An IntelliNode option has the wrong data length for its type.
    BadLength {
        /// The option type.
        option_type: u8,
        /// Its data length, bytes.
        len: usize,
    },
    /// A field holds a value its type does not allow.
    BadValue {
        /// The option type.
        option_type: u8,
        /// Which field.
        field: &'static str,
        /// The value found.
        value: u32,
    },
    /// The same IntelliNode option appears twice.
    Duplicate(u8),
    /// An unknown IntelliNode option has its critical bit set.
    UnknownCritical(u8),
    /// No MAC option: the metadata is unauthenticated.
    MissingMac,
    /// An IntelliNode option (possibly a second MAC) follows the MAC.
    MacNotLast,
    /// The MAC names a key id that is not configured.
    UnknownKey(u8),
    /// The tag does not verify: tampered, or the wrong flow or key.
    BadMac,
    /// Emit: the options would exceed [`MAX_OPTIONS_LEN`].
    TooLong {
        /// Bytes the options would take.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// Emit: the destination buffer is too short.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes available.
        available: usize,
    },
}

impl MetadataError {
    /// The codes [`MetadataRepr::parse_verified`] can fail with, in the
    /// order of `wire-format.md` §7.5's table (the order it checks them):
    /// the keys of the per-code metadata error counters.
    pub const RECEIVE_CODES: [&'static str; 9] = [
        "meta.truncated",
        "meta.mac_not_last",
        "meta.bad_length",
        "meta.missing_mac",
        "meta.unknown_key",
        "meta.bad_mac",
        "meta.bad_value",
        "meta.duplicate",
        "meta.unknown_critical",
    ];

    /// This error's index in [`Self::RECEIVE_CODES`]; `None` for the
    /// errors only emitting can produce.
    pub const fn receive_index(&self) -> Option<usize> {
        Some(match self {
            MetadataError::Truncated { .. } => 0,
            MetadataError::MacNotLast => 1,
            MetadataError::BadLength { .. } => 2,
            MetadataError::MissingMac => 3,
            MetadataError::UnknownKey(_) => 4,
            MetadataError::BadMac => 5,
            MetadataError::BadValue { .. } => 6,
            MetadataError::Duplicate(_) => 7,
            MetadataError::UnknownCritical(_) => 8,
            MetadataError::TooLong { .. } | MetadataError::BufferTooSmall { .. } => return None,
        })
    }

    /// A stable machine-readable reason, used as a counter key.
    pub const fn code(&self) -> &'static str {
        match self {
            MetadataError::Truncated { .. } => "meta.truncated",
            MetadataError::BadLength { .. } => "meta.bad_length",
            MetadataError::BadValue { .. } => "meta.bad_value",
            MetadataError::Duplicate(_) => "meta.duplicate",
            MetadataError::UnknownCritical(_) => "meta.unknown_critical",
            MetadataError::MissingMac => "meta.missing_mac",
            MetadataError::MacNotLast => "meta.mac_not_last",
            MetadataError::UnknownKey(_) => "meta.unknown_key",
            MetadataError::BadMac => "meta.bad_mac",
            MetadataError::TooLong { .. } => "meta.too_long",
            MetadataError::BufferTooSmall { .. } => "meta.buffer_too_small",
        }
    }

    /// Whether the metadata failed authentication (as opposed to being
    /// malformed): the flow's semantics are then [`SemanticSource::Forged`].
    pub const fn is_auth_failure(&self) -> bool {
        matches!(
            self,
            MetadataError::MissingMac | MetadataError::UnknownKey(_) | MetadataError::BadMac
        )
    }
}

impl fmt::Display for MetadataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            MetadataError::Truncated { offset } => {
                write!(f, "Geneve option at offset {offset} is truncated")
            }
            MetadataError::BadLength { option_type, len } => write!(
                f,
                "IntelliNode option {option_type:#04x} has {len} data bytes, wrong for its type"
            ),
            MetadataError::BadValue {
                option_type,
                field,
                value,
            } => write!(
                f,
                "IntelliNode option {option_type:#04x}: {field} = {value} is not allowed"
            ),
            MetadataError::Duplicate(t) => {
                write!(f, "IntelliNode option {t:#04x} appears more than once")
            }
            MetadataError::UnknownCritical(t) => {
                write!(f, "unknown critical IntelliNode option {t:#04x}")
            }
            MetadataError::MissingMac => write!(f, "IntelliNode options without a MAC option"),
            MetadataError::MacNotLast => {
                write!(f, "an IntelliNode option follows the MAC option")
            }
            MetadataError::UnknownKey(id) => write!(f, "MAC key id {id} is not configured"),
            MetadataError::BadMac => write!(f, "metadata MAC does not verify"),
            MetadataError::TooLong { len, max } => {
                write!(f, "{len} bytes of options exceeds the maximum of {max}")
            }
            MetadataError::BufferTooSmall { needed, available } => write!(
                f,
                "options need {needed} bytes but the buffer has {available}"
            ),
        }
    }
}

impl std::error::Error for MetadataError {}

fn bad_value(option_type: u8, field: &'static str, value: impl Into<u32>) -> MetadataError {
    MetadataError::BadValue {
        option_type,
        field,
        value: value.into(),
    }
}

fn exact<const N: usize>(option_type: u8, data: &[u8]) -> Result<&[u8; N], MetadataError> {
    <&[u8; N]>::try_from(data).map_err(|_| MetadataError::BadLength {
        option_type,
        len: data.len(),
    })
}

/// FRAGMENT: where a packet belongs when a tensor message is sliced over
/// several paths (draft §3.3 "Tensor Slicing", §3.4 "Fragment Routing").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fragment {
    /// The message (tensor transfer) the packet belongs to.
    pub message_id: u32,
    /// Which slice of the message, `< slice_count`.
    pub slice_index: u8,
    /// How many slices (lanes) the message was cut into, 1 to
    /// [`MAX_SLICES`](crate::plan::MAX_SLICES): no plan has more.
    pub slice_count: u8,
    /// The last packet of the whole message.
    pub last: bool,
    /// The path the slice was sent on.
    pub path: u8,
    /// Sequence number of the packet within its overlay stream, wrapping;
    /// what the reorder stage restores the original order by.
    pub stream_seq: u32,
}

const FRAGMENT_LAST: u8 = 0x01;

impl Fragment {
    fn validate(&self) -> Result<(), MetadataError> {
        let t = option_type::FRAGMENT;
        if self.slice_count == 0 || usize::from(self.slice_count) > crate::plan::MAX_SLICES {
            return Err(bad_value(t, "slice_count", self.slice_count));
        }
        if self.slice_index >= self.slice_count {
            return Err(bad_value(t, "slice_index", self.slice_index));
        }
        Ok(())
    }

    fn encode(&self) -> [u8; data_len::FRAGMENT] {
        let [m0, m1, m2, m3] = self.message_id.to_be_bytes();
        let [s0, s1, s2, s3] = self.stream_seq.to_be_bytes();
        let flags = if self.last { FRAGMENT_LAST } else { 0 };
        [
            m0,
            m1,
            m2,
            m3,
            self.slice_index,
            self.slice_count,
            flags,
            self.path,
            s0,
            s1,
            s2,
            s3,
        ]
    }

    fn decode(data: &[u8]) -> Result<Self, MetadataError> {
        let &[m0, m1, m2, m3, slice_index, slice_count, flags, path, s0, s1, s2, s3] =
            exact::<{ data_len::FRAGMENT }>(option_type::FRAGMENT, data)?;
        let f = Fragment {
            message_id: u32::from_be_bytes([m0, m1, m2, m3]),
            slice_index,
            slice_count,
            last: flags & FRAGMENT_LAST != 0,
            path,
            stream_seq: u32::from_be_bytes([s0, s1, s2, s3]),
        };
        f.validate()?;
        Ok(f)
    }
}

/// TENSOR_TYPE: the AI-semantic features of the flow (draft §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TensorTlv {
    /// Gradient, activation, parameter or normal traffic.
    pub tensor_type: TensorType,
    /// Cross-node gradient synchronisation (all-reduce) traffic.
    pub gradient_sync: bool,
    /// Stage of the model-parallel pipeline, 0 when unknown.
    pub pipeline_stage: u8,
    /// Position of the tensor within its batch or iteration.
    pub batch_position: u16,
}

const TENSOR_GRADIENT_SYNC: u8 = 0x01;

impl TensorTlv {
    /// The features this TLV asserts, marked as coming from an
    /// authenticated TLV.
    pub fn semantic(&self) -> SemanticFeatures {
        SemanticFeatures {
            tensor_type: self.tensor_type,
            batch_position: self.batch_position,
            pipeline_stage: self.pipeline_stage,
            gradient_sync: self.gradient_sync,
            source: SemanticSource::Tlv,
        }
    }

    fn encode(&self) -> [u8; data_len::TENSOR_TYPE] {
        let [b0, b1] = self.batch_position.to_be_bytes();
        let flags = if self.gradient_sync {
            TENSOR_GRADIENT_SYNC
        } else {
            0
        };
        [
            self.tensor_type as u8,
            flags,
            self.pipeline_stage,
            0,
            b0,
            b1,
            0,
            0,
        ]
    }

    fn decode(data: &[u8]) -> Result<Self, MetadataError> {
        let t = option_type::TENSOR_TYPE;
        let &[code, flags, pipeline_stage, _, b0, b1, _, _] =
            exact::<{ data_len::TENSOR_TYPE }>(t, data)?;
        let tensor_type =
            TensorType::from_code(code).ok_or_else(|| bad_value(t, "tensor_type", code))?;
        Ok(TensorTlv {
            tensor_type,
            gradient_sync: flags & TENSOR_GRADIENT_SYNC != 0,
            pipeline_stage,
            batch_position: u16::from_be_bytes([b0, b1]),
        })
    }
}

/// What a training or inference job is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum TrainingPhase {
    /// Nobody said.
    #[default]
    Unknown = 0,
    /// Forward pass.
    Forward = 1,
    /// Backward pass.
    Backward = 2,
    /// Optimizer step (parameter update).
    OptimizerStep = 3,
    /// Inference, prompt processing.
    InferencePrefill = 4,
    /// Inference, token generation.
    InferenceDecode = 5,
}

impl TrainingPhase {
    /// The phase with wire code `code`, if defined.
    pub const fn from_code(code: u8) -> Option<TrainingPhase> {
        match code {
            0 => Some(TrainingPhase::Unknown),
            1 => Some(TrainingPhase::Forward),
            2 => Some(TrainingPhase::Backward),
            3 => Some(TrainingPhase::OptimizerStep),
            4 => Some(TrainingPhase::InferencePrefill),
            5 => Some(TrainingPhase::InferenceDecode),
            _ => None,
        }
    }
}

/// TRAINING_PHASE: phase and iteration of the job the flow belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TrainingPhaseTlv {
    /// The phase.
    pub phase: TrainingPhase,
    /// Training iteration (or inference request counter), wrapping.
    pub iteration: u32,
}

impl TrainingPhaseTlv {
    fn encode(&self) -> [u8; data_len::TRAINING_PHASE] {
        let [i0, i1, i2, i3] = self.iteration.to_be_bytes();
        [self.phase as u8, 0, 0, 0, i0, i1, i2, i3]
    }

    fn decode(data: &[u8]) -> Result<Self, MetadataError> {
        let t = option_type::TRAINING_PHASE;
        let &[code, _, _, _, i0, i1, i2, i3] = exact::<{ data_len::TRAINING_PHASE }>(t, data)?;
        let phase = TrainingPhase::from_code(code).ok_or_else(|| bad_value(t, "phase", code))?;
        Ok(TrainingPhaseTlv {
            phase,
            iteration: u32::from_be_bytes([i0, i1, i2, i3]),
        })
    }
}

/// COMPUTE_CAPABILITY: what a compute node offers (draft §3.3,
/// "heterogeneous computing capabilities of target nodes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ComputeCapabilityTlv {
    /// The node, as numbered in the appliances' shared configuration.
    pub node_id: u32,
    /// Relative compute power, ≥ 1 (the WDRR weight of LARGE_FLOWs).
    pub compute_weight: u16,
    /// GPU utilisation, 0–255 for 0–100 %.
    pub gpu_utilisation: u8,
    /// No flag is defined yet: sent as 0, carried as received.
    pub flags: u8,
}

impl ComputeCapabilityTlv {
    fn validate(&self) -> Result<(), MetadataError> {
        if self.compute_weight == 0 {
            return Err(bad_value(
                option_type::COMPUTE_CAPABILITY,
                "compute_weight",
                self.compute_weight,
            ));
        }
        Ok(())
    }

    fn encode(&self) -> [u8; data_len::COMPUTE_CAPABILITY] {
        let [n0, n1, n2, n3] = self.node_id.to_be_bytes();
        let [w0, w1] = self.compute_weight.to_be_bytes();
        [n0, n1, n2, n3, w0, w1, self.gpu_utilisation, self.flags]
    }

    fn decode(data: &[u8]) -> Result<Self, MetadataError> {
        let &[n0, n1, n2, n3, w0, w1, gpu_utilisation, flags] =
            exact::<{ data_len::COMPUTE_CAPABILITY }>(option_type::COMPUTE_CAPABILITY, data)?;
        let c = ComputeCapabilityTlv {
            node_id: u32::from_be_bytes([n0, n1, n2, n3]),
            compute_weight: u16::from_be_bytes([w0, w1]),
            gpu_utilisation,
            flags,
        };
        c.validate()?;
        Ok(c)
    }
}

/// PATH_PREDICTION: the sender's forecast for a path (draft §3.2, "1–5 ms
/// network and congestion predictions").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PathPredictionTlv {
    /// The path.
    pub path_id: u8,
    /// How far ahead the prediction looks, ms.
    pub horizon_ms: u8,
    /// Probability of congestion, 0–255 for 0..1.
    pub congestion_risk: u8,
    /// Predicted available bandwidth, Mbit/s.
    pub available_mbps: u32,
}

impl PathPredictionTlv {
    fn encode(&self) -> [u8; data_len::PATH_PREDICTION] {
        let [b0, b1, b2, b3] = self.available_mbps.to_be_bytes();
        [
            self.path_id,
            self.horizon_ms,
            self.congestion_risk,
            0,
            b0,
            b1,
            b2,
            b3,
        ]
    }

    fn decode(data: &[u8]) -> Result<Self, MetadataError> {
        let &[path_id, horizon_ms, congestion_risk, _, b0, b1, b2, b3] =
            exact::<{ data_len::PATH_PREDICTION }>(option_type::PATH_PREDICTION, data)?;
        Ok(PathPredictionTlv {
            path_id,
            horizon_ms,
            congestion_risk,
            available_mbps: u32::from_be_bytes([b0, b1, b2, b3]),
        })
    }
}

/// The collective operator an offload decision is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum OffloadOp {
    /// Element-wise sum (all-reduce of gradients).
    #[default]
    Sum = 1,
    /// Element-wise maximum.
    Max = 2,
    /// Element-wise minimum.
    Min = 3,
    /// Element-wise product.
    Product = 4,
}

impl OffloadOp {
    /// The operator with wire code `code`, if defined.
    pub const fn from_code(code: u8) -> Option<OffloadOp> {
        match code {
            1 => Some(OffloadOp::Sum),
            2 => Some(OffloadOp::Max),
            3 => Some(OffloadOp::Min),
            4 => Some(OffloadOp::Product),
            _ => None,
        }
    }
}

/// Where the operator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum OffloadDecision {
    /// On the hosts, as without IntelliNode.
    #[default]
    Host = 0,
    /// On the in-network reducer named by the TLV.
    Offload = 1,
}

impl OffloadDecision {
    /// The decision with wire code `code`, if defined.
    pub const fn from_code(code: u8) -> Option<OffloadDecision> {
        match code {
            0 => Some(OffloadDecision::Host),
            1 => Some(OffloadDecision::Offload),
            _ => None,
        }
    }
}

/// OFFLOAD_DECISION: the in-network offload decision (draft §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OffloadDecisionTlv {
    /// The operator.
    pub op: OffloadOp,
    /// Host or reducer.
    pub decision: OffloadDecision,
    /// The reducer (meaningful when offloaded).
    pub reducer_id: u16,
}

impl OffloadDecisionTlv {
    fn encode(&self) -> [u8; data_len::OFFLOAD_DECISION] {
        let [r0, r1] = self.reducer_id.to_be_bytes();
        [self.op as u8, self.decision as u8, r0, r1]
    }

    fn decode(data: &[u8]) -> Result<Self, MetadataError> {
        let t = option_type::OFFLOAD_DECISION;
        let &[op, decision, r0, r1] = exact::<{ data_len::OFFLOAD_DECISION }>(t, data)?;
        Ok(OffloadDecisionTlv {
            op: OffloadOp::from_code(op).ok_or_else(|| bad_value(t, "op", op))?,
            decision: OffloadDecision::from_code(decision)
                .ok_or_else(|| bad_value(t, "decision", decision))?,
            reducer_id: u16::from_be_bytes([r0, r1]),
        })
    }
}

/// The canonical encoding of a flow key that the MAC covers.
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 1 | IP version: 4 or 6 |
/// | 1 | 1 | IP protocol |
/// | 2 | 1 | flags: bit 0 = destination QP present |
/// | 3 | 1 | 0 |
/// | 4 | 16 | source address (IPv4 in mapped form) |
/// | 20 | 16 | destination address (IPv4 in mapped form) |
/// | 36 | 2 | source port |
/// | 38 | 2 | destination port |
/// | 40 | 4 | destination QP (0 when absent) |
///
/// Fixed-size fields and an explicit presence flag make the encoding
/// injective, so two different keys can never feed the MAC the same bytes.
pub fn flow_key_bytes(flow: &FlowKey) -> [u8; FLOW_KEY_LEN] {
    let mut out = [0u8; FLOW_KEY_LEN];
    let version = match flow.version {
        IpVersion::V4 => 4,
        IpVersion::V6 => 6,
    };
    let (present, qpn) = match flow.dest_qpn {
        Some(q) => (1, q),
        None => (0, 0),
    };
    let [sp0, sp1] = flow.src_port.to_be_bytes();
    let [dp0, dp1] = flow.dst_port.to_be_bytes();
    let (head, rest) = out.split_at_mut(4);
    head.copy_from_slice(&[version, flow.protocol.0, present, 0]);
    let (src, rest) = rest.split_at_mut(16);
    src.copy_from_slice(&flow.src_addr);
    let (dst, rest) = rest.split_at_mut(16);
    dst.copy_from_slice(&flow.dst_addr);
    let (ports, qp) = rest.split_at_mut(4);
    ports.copy_from_slice(&[sp0, sp1, dp0, dp1]);
    qp.copy_from_slice(&qpn.to_be_bytes());
    out
}

/// What can be wrong with a key or the key table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyError {
    /// A hex key must be exactly 32 hex digits (16 bytes).
    BadHexLength(usize),
    /// A character that is not a hex digit, at this byte position.
    BadHexDigit(usize),
    /// All [`MetadataKeys::CAPACITY`] slots hold other key ids.
    TableFull,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            KeyError::BadHexLength(n) => {
                write!(f, "an AES-128 key is 32 hex digits, got {n} characters")
            }
            KeyError::BadHexDigit(at) => write!(f, "not a hex digit at position {at}"),
            KeyError::TableFull => write!(
                f,
                "the key table already holds {} keys",
                MetadataKeys::CAPACITY
            ),
        }
    }
}

impl std::error::Error for KeyError {}

/// One metadata authentication key: an id carried in the MAC option and an
/// AES-128 key whose schedule is computed once, here.
#[derive(Clone)]
pub struct MetadataKey {
    id: u8,
    mac: Cmac<Aes128>,
}

impl MetadataKey {
    /// A key from its 16 raw bytes.
    pub fn from_bytes(id: u8, key: [u8; 16]) -> MetadataKey {
        MetadataKey {
            id,
            mac: <Cmac<Aes128> as Mac>::new(&key.into()),
        }
    }

    /// A key from 32 hex digits (either case; surrounding whitespace is
    /// ignored), as configuration files hold it.
    pub fn from_hex(id: u8, hex: &str) -> Result<MetadataKey, KeyError> {
        let hex = hex.trim().as_bytes();
        if hex.len() != 32 {
            return Err(KeyError::BadHexLength(hex.len()));
        }
        let mut key = [0u8; 16];
        for (i, (byte, pair)) in key.iter_mut().zip(hex.chunks_exact(2)).enumerate() {
            let digit = |at: usize| -> Result<u8, KeyError> {
                let c = pair.get(at % 2).copied().unwrap_or(0);
                (c as char)
                    .to_digit(16)
                    .map(|d| d as u8)
                    .ok_or(KeyError::BadHexDigit(at))
            };
            *byte = (digit(2 * i)? << 4) | digit(2 * i + 1)?;
        }
        Ok(MetadataKey::from_bytes(id, key))
    }

    /// The key id carried in the MAC option.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// AES-128-CMAC (RFC 4493) of `message` under this key. The metadata
    /// code feeds the MAC incrementally instead; this is for tests and
    /// tools.
    pub fn cmac(&self, message: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(message);
        mac.finalize().into_bytes().into()
    }

    fn start(&self, flow: &FlowKey) -> Cmac<Aes128> {
        let mut mac = self.mac.clone();
        mac.update(&flow_key_bytes(flow));
        mac
    }
}

impl fmt::Debug for MetadataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetadataKey")
            .field("id", &self.id)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// The keys a receiver accepts, by id: the current one and those being
/// rotated in or out.
#[derive(Debug, Clone, Default)]
pub struct MetadataKeys {
    slots: [Option<MetadataKey>; MetadataKeys::CAPACITY],
}

impl MetadataKeys {
    /// How many keys can be held at once.
    pub const CAPACITY: usize = 4;

    /// No keys: every MAC is [`MetadataError::UnknownKey`].
    pub fn new() -> MetadataKeys {
        MetadataKeys::default()
    }

    /// Adds `key`, replacing any key with the same id.
    pub fn insert(&mut self, key: MetadataKey) -> Result<(), KeyError> {
        let slot = match self.slot_of(key.id) {
            Some(i) => self.slots.get_mut(i),
            None => self.slots.iter_mut().find(|s| s.is_none()),
        };
        match slot {
            Some(s) => {
                *s = Some(key);
                Ok(())
            }
            None => Err(KeyError::TableFull),
        }
    }

    /// Removes the key with `id`; returns whether there was one.
    pub fn remove(&mut self, id: u8) -> bool {
        match self.slot_of(id).and_then(|i| self.slots.get_mut(i)) {
            Some(s) => {
                *s = None;
                true
            }
            None => false,
        }
    }

    /// The key with `id`, if configured.
    pub fn get(&self, id: u8) -> Option<&MetadataKey> {
        self.slots.iter().flatten().find(|k| k.id == id)
    }

    fn slot_of(&self, id: u8) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|k| k.id == id))
    }
}

/// The IntelliNode metadata of one packet; every option is optional.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetadataRepr {
    /// FRAGMENT.
    pub fragment: Option<Fragment>,
    /// TENSOR_TYPE.
    pub tensor: Option<TensorTlv>,
    /// TRAINING_PHASE.
    pub phase: Option<TrainingPhaseTlv>,
    /// COMPUTE_CAPABILITY.
    pub capability: Option<ComputeCapabilityTlv>,
    /// PATH_PREDICTION.
    pub path_prediction: Option<PathPredictionTlv>,
    /// OFFLOAD_DECISION.
    pub offload: Option<OffloadDecisionTlv>,
}

fn opt_len<T>(o: &Option<T>, data: usize) -> usize {
    if o.is_some() {
        wire(data)
    } else {
        0
    }
}

fn put(out: &mut [u8], at: &mut usize, option_type: u8, data: &[u8]) -> Result<(), MetadataError> {
    let available = out.len();
    let dst = out.get_mut(*at..).ok_or(MetadataError::BufferTooSmall {
        needed: *at,
        available,
    })?;
    let n = geneve::emit_option(dst, OPTION_CLASS, option_type, data).map_err(|_| {
        MetadataError::BufferTooSmall {
            needed: *at + wire(data.len()),
            available,
        }
    })?;
    *at += n;
    Ok(())
}

impl MetadataRepr {
    /// Bytes [`emit`](Self::emit) writes, MAC included.
    pub fn emitted_len(&self) -> usize {
        opt_len(&self.fragment, data_len::FRAGMENT)
            + opt_len(&self.tensor, data_len::TENSOR_TYPE)
            + opt_len(&self.phase, data_len::TRAINING_PHASE)
            + opt_len(&self.capability, data_len::COMPUTE_CAPABILITY)
            + opt_len(&self.path_prediction, data_len::PATH_PREDICTION)
            + opt_len(&self.offload, data_len::OFFLOAD_DECISION)
            + wire(data_len::MAC)
    }

    /// Writes the present options, in type order, then the MAC option
    /// computed under `key` over `flow` (the inner packet's flow key) and
    /// those options. Returns the bytes written ([`emitted_len`]).
    ///
    /// Fails, writing nothing, when a field is out of range (so a receiver
    /// would reject it), when the options exceed [`MAX_OPTIONS_LEN`], or
    /// when `out` is too short.
    ///
    /// [`emitted_len`]: Self::emitted_len
    pub fn emit(
        &self,
        out: &mut [u8],
        flow: &FlowKey,
        key: &MetadataKey,
    ) -> Result<usize, MetadataError> {
        let len = self.emitted_len();
        if len > MAX_OPTIONS_LEN {
            return Err(MetadataError::TooLong {
                len,
                max: MAX_OPTIONS_LEN,
            });
        }
        if out.len() < len {
            return Err(MetadataError::BufferTooSmall {
                needed: len,
                available: out.len(),
            });
        }
        if let Some(f) = &self.fragment {
            f.validate()?;
        }
        if let Some(c) = &self.capability {
            c.validate()?;
        }

        let mut at = 0;
        if let Some(f) = &self.fragment {
            put(out, &mut at, option_type::FRAGMENT, &f.encode())?;
        }
        if let Some(t) = &self.tensor {
            put(out, &mut at, option_type::TENSOR_TYPE, &t.encode())?;
        }
        if let Some(p) = &self.phase {
            put(out, &mut at, option_type::TRAINING_PHASE, &p.encode())?;
        }
        if let Some(c) = &self.capability {
            put(out, &mut at, option_type::COMPUTE_CAPABILITY, &c.encode())?;
        }
        if let Some(p) = &self.path_prediction {
            put(out, &mut at, option_type::PATH_PREDICTION, &p.encode())?;
        }
        if let Some(o) = &self.offload {
            put(out, &mut at, option_type::OFFLOAD_DECISION, &o.encode())?;
        }

        let mut mac = key.start(flow);
        mac.update(out.get(..at).unwrap_or(&[]));
        let tag: [u8; TAG_LEN] = mac.finalize().into_bytes().into();
        let mut data = [0u8; data_len::MAC];
        let (head, tail) = data.split_at_mut(4);
        head.copy_from_slice(&[key.id, 0, 0, 0]);
        tail.copy_from_slice(&tag);
        put(out, &mut at, option_type::MAC, &data)?;
        Ok(at)
    }

    /// Authenticates and decodes the IntelliNode options of a Geneve
    /// options area (see the module documentation for the order of the
    /// checks). `flow` is the flow key of the inner packet, `keys` the
    /// configured keys.
    pub fn parse_verified(
        options_area: &[u8],
        flow: &FlowKey,
        keys: &MetadataKeys,
    ) -> Result<MetadataRepr, MetadataError> {
        // Pass 1: structure, and where the MAC is. Nothing is trusted yet.
        let mut mac_data: Option<&[u8; data_len::MAC]> = None;
        let mut it = GeneveOptions::new(options_area);
        loop {
            let offset = it.offset();
            let opt = match it.next() {
                None => break,
                Some(Err(_)) => return Err(MetadataError::Truncated { offset }),
                Some(Ok(o)) => o,
            };
            if opt.class != OPTION_CLASS {
                continue;
            }
            if mac_data.is_some() {
                return Err(MetadataError::MacNotLast);
            }
            if opt.option_type == option_type::MAC {
                mac_data = Some(exact::<{ data_len::MAC }>(option_type::MAC, opt.data)?);
            }
        }
        let mac_data = mac_data.ok_or(MetadataError::MissingMac)?;
        let [key_id, _, _, _, tag @ ..] = mac_data;
        let key_id = *key_id;
        let key = keys.get(key_id).ok_or(MetadataError::UnknownKey(key_id))?;

        // Pass 2: the tag, over the covered bytes exactly as received.
        let mut mac = key.start(flow);
        let mut it = GeneveOptions::new(options_area);
        loop {
            let start = it.offset();
            let Some(Ok(opt)) = it.next() else { break };
            if opt.class != OPTION_CLASS {
                continue;
            }
            if opt.option_type == option_type::MAC {
                break;
            }
            mac.update(options_area.get(start..it.offset()).unwrap_or(&[]));
        }
        mac.verify_slice(tag).map_err(|_| MetadataError::BadMac)?;

        // Pass 3: the fields, now that they are known to be genuine.
        let mut repr = MetadataRepr::default();
        for opt in GeneveOptions::new(options_area) {
            let Ok(opt) = opt else { break };
            if opt.class != OPTION_CLASS {
                continue;
            }
            let t = opt.option_type;
            let d = opt.data;
            match t {
                option_type::MAC => break,
                option_type::FRAGMENT => set(&mut repr.fragment, t, Fragment::decode(d)?)?,
                option_type::TENSOR_TYPE => set(&mut repr.tensor, t, TensorTlv::decode(d)?)?,
                option_type::TRAINING_PHASE => {
                    set(&mut repr.phase, t, TrainingPhaseTlv::decode(d)?)?
                }
                option_type::COMPUTE_CAPABILITY => {
                    set(&mut repr.capability, t, ComputeCapabilityTlv::decode(d)?)?
                }
                option_type::PATH_PREDICTION => {
                    set(&mut repr.path_prediction, t, PathPredictionTlv::decode(d)?)?
                }
                option_type::OFFLOAD_DECISION => {
                    set(&mut repr.offload, t, OffloadDecisionTlv::decode(d)?)?
                }
                _ if t & geneve::CRITICAL != 0 => return Err(MetadataError::UnknownCritical(t)),
                _ => {}
            }
        }
        Ok(repr)
    }
}

fn set<T>(slot: &mut Option<T>, option_type: u8, value: T) -> Result<(), MetadataError> {
    if slot.is_some() {
        return Err(MetadataError::Duplicate(option_type));
    }
    *slot = Some(value);
    Ok(())
}
