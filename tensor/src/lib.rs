//! # tensor — tensor-aware scheduling of RoCEv2 traffic, without I/O
//!
//! The in-network scheduling draft has the data plane read what RoCEv2
//! traffic is, predict the next few milliseconds, and schedule by it. This
//! crate holds that logic as pure functions of bytes, timestamps and state,
//! so the DPDK pipeline, the tests and a simulator all drive the same code:
//!
//! * [`qp_state`]: the per-QP state machine (§3.1) and its thresholds;
//! * [`qp_table`]: the fixed-capacity table of QPs the workers keep;
//! * [`feature`]: what workers hand the predictor core over the feature FIFO;
//! * [`predict`] and [`prediction`]: the predictor core (§3.2) and the
//!   snapshot it publishes; [`trace`] generates traces to measure it on;
//! * [`plan`]: path sets, slice counts and the offload decision (§3.3);
//! * [`path_state`]: the overlay paths as PATH_STATE last measured them;
//! * [`geneve`], [`metadata`] and [`encap`]: the overlay between two
//!   appliances, with fragment routing and authenticated metadata TLVs
//!   (§3.4, §4, §5);
//! * [`reorder`]: restoring the original order of sliced traffic;
//! * [`engine`]: all of the above put together, one engine per worker: it
//!   takes parsed packets, lengths and time and returns verdicts (egress
//!   port, queueing, overlay header, or a drop with its reason);
//! * [`egress`]: one egress port's strict bands and WDRR stage, with the
//!   rule that a QP never overtakes its own packets;
//! * [`stats`]: what an engine and its worker's port schedulers count.
//!
//! Like `steer`, nothing here allocates or panics per packet, and the data
//! plane owns the clock.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod egress;
pub mod encap;
pub mod engine;
pub mod feature;
pub mod geneve;
pub mod metadata;
pub mod path_state;
pub mod plan;
pub mod predict;
pub mod prediction;
pub mod qp_state;
pub mod qp_table;
pub mod reorder;
pub mod stats;
pub mod trace;

pub use feature::{FeatureRecord, SemanticFeatures, SemanticSource, TensorType};
pub use prediction::{Predictions, HORIZONS, HORIZONS_MS};
pub use qp_state::{QpFlow, QpState, QpThresholds, ThresholdError, Transition};
