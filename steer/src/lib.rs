//! # steer — token-aware traffic steering, without I/O
//!
//! Agents' LLM requests carry token features (draft §5a: a TLV in the IP
//! header, or inferred from the HTTP body). This crate turns those
//! features, the configured services and the control plane's live state
//! into decisions, the way `classifier` turns bytes into headers:
//!
//! * [`service`]: services (VIPs), their instances (models on compute
//!   nodes) and the paths that reach them;
//! * [`class`]: interactive versus bulk work, and the egress band;
//! * [`egress`]: the egress scheduler's bands for steered traffic;
//! * [`decision`]: the joint instance-and-path choice for a new flow;
//! * [`since_report`]: the flows steered to each instance that its node's
//!   last load report cannot show yet;
//! * [`flow_table`]: per-flow affinity, so every packet of a flow follows
//!   its first packet's choice and responses find their flow;
//! * [`fragment`]: the fragments of a steered datagram follow its first
//!   fragment's decision, held (bounded) when they come before it;
//! * [`rewrite`]: the NAT that sends a request to the chosen instance and
//!   makes its response look like it came from the VIP;
//! * [`infer`]: bounded feature inference from an HTTP request;
//! * [`engine`]: the per-worker engine that owns the flow table, models
//!   and turns, is fed parsed packets and time, and returns verdicts;
//! * [`stats`]: what an engine counts, summed over workers by readers;
//! * [`feedback`]: passive TTFT and completion measurement that trains the
//!   per-instance [`predictor::InstanceModel`].
//!
//! The data plane owns packets, clocks and threads; everything here takes
//! byte slices, timestamps and state, and returns decisions. Nothing on the
//! per-packet path allocates or panics.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod body_prefix;
pub mod class;
pub mod cookie;
pub mod decision;
pub mod egress;
pub mod engine;
pub mod feedback;
pub mod flow_table;
pub mod fragment;
pub mod http;
pub mod infer;
pub mod prefix;
pub mod rewrite;
pub mod service;
pub mod since_report;
pub mod splice;
pub mod stats;

pub use class::TrafficClass;
pub use decision::{Choice, ChoiceReason, Decider, NoChoice, Policy, Predicted, Rejections};
pub use engine::{Engine, EngineConfig, FragmentKeyed, Keyed, Refusal, Steerable, Verdict};
pub use feedback::{Measured, RequestTiming};
pub use flow_table::{ClientKey, FlowEntry, FlowTable, InsertError};
pub use prefix::{PrefixLimits, PrefixRecord};
pub use service::{ServiceError, ServiceTable};
pub use since_report::SinceReport;
