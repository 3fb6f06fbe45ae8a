//! # control — IntelliNode's control-plane signalling protocol (sans-IO)
//!
//! Orchestrators and compute-node agents tell the appliance how the network
//! and the compute nodes are doing (PATH_STATE, NODE_STATE, CAPABILITY) and
//! how to steer (POLICY); operators ask it questions (QUERY/REPLY). Every
//! message travels in one UDP datagram (default port [`DEFAULT_PORT`]),
//! authenticated and encrypted with XChaCha20-Poly1305 under a per-peer
//! pre-shared key, replay-protected by a per-peer sliding window and
//! checked for freshness; the byte layout is in `docs/wire-format.md` §3.
//!
//! This crate has no sockets, threads or clocks: callers pass datagrams and
//! timestamps in and get values and decisions out, like `classifier`. The
//! data plane's control thread owns the socket, the clock and the snapshot
//! publication; `intellinode ctl` owns its socket too.
//!
//! ## The flow
//!
//! ```text
//!  client                         appliance control thread              workers
//!  Sender::seal(msg) --UDP-->  Receiver::accept(bytes, realtime)
//!                                 -> Accepted { peer_id, seq, message }
//!                              ControlState::apply(peer, msg, mono)
//!                                 -> Applied (affects_view?)
//!                              ControlState::view(version, mono) --publish-->  DataplaneView::choose_path(dst, mono)
//!  Sender::open_reply  <--UDP-- Receiver::seal_reply(peer, seq, json, ...)
//! ```
//!
//! ## Guarantees
//!
//! * Nothing panics on any input; property tests feed random, truncated and
//!   bit-flipped datagrams, and random plaintexts sealed with a valid key.
//! * A rejected datagram changes nothing: the replay window moves only after
//!   authentication, decoding, validation, freshness and authorisation all
//!   passed.
//! * Every rejection is a [`Reject`] variant with a stable counter name
//!   ([`RejectCode::as_str`]).
//! * State is read through [`Freshness`]: past `max_state_age` an entry is
//!   `Stale`, never silently used.
//! * Reading a [`DataplaneView`] does not allocate (tested with a counting
//!   allocator).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod aead;
mod fields;

pub mod applied;
pub mod body_error;
pub mod capability;
pub mod compose;
pub mod header;
pub mod ids;
pub mod key;
pub mod message;
pub mod metric;
pub mod node_metrics;
pub mod node_state;
pub mod path_metrics;
pub mod path_state;
pub mod peer;
pub mod policy;
pub mod prefix;
pub mod prefix_cache;
pub mod probe;
pub mod query;
pub mod receiver;
pub mod record;
pub mod reject;
pub mod replay;
pub mod reply;
pub mod roles;
pub mod seal_error;
pub mod sender;
pub mod state;
mod state_json;
pub mod task_types;
pub mod thresholds;
pub mod timed;
pub mod view;

pub use applied::{Applied, PolicyChange};
pub use body_error::{BodyError, TextProblem};
pub use capability::{Capability, ModelClass};
pub use compose::{realtime_ns, CapabilityFields, NodeStateFields, PathStateFields};
pub use header::{DEFAULT_MAX_DATAGRAM, DEFAULT_PORT, MAX_REPLY_DATAGRAM};
pub use ids::{NodeId, PathId};
pub use key::{Key, KeyError, KeyProblem};
pub use message::{Decoded, Kind, Message};
pub use metric::{Level, Metric, MetricError, MetricType, Source, Statistic, Unit};
pub use node_metrics::NodeMetrics;
pub use node_state::NodeState;
pub use path_metrics::PathMetrics;
pub use path_state::PathState;
pub use peer::PeerConfig;
pub use policy::{ClassWeight, FwdEntry, PathDef, Policy};
pub use prefix::{IpPrefix, PrefixError};
pub use prefix_cache::{PrefixCacheCounts, PrefixCacheTotals};
pub use query::{Query, QueryWhat};
pub use receiver::{Accepted, ConfigError, Receiver, ReceiverConfig};
pub use reject::{AuthzError, HeaderProblem, Reject, RejectCode, StaleProblem};
pub use replay::{ReplayError, ReplayWindow};
pub use reply::Reply;
pub use roles::Roles;
pub use seal_error::SealError;
pub use sender::{initial_seq, Sender};
pub use state::ControlState;
pub use task_types::TaskTypes;
pub use thresholds::{Threshold, ThresholdId, Thresholds};
pub use timed::{Freshness, Timed};
pub use view::{ChoiceReason, DataplaneView, PathChoice, ViewPath};
