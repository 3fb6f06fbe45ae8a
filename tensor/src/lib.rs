//! # tensor — tensor-aware scheduling of RoCEv2 traffic, without I/O
//!
//! The in-network scheduling draft (§3.1) has the data plane track every
//! RoCEv2 queue pair (QP) through a small state machine, so that the
//! scheduler can serve delay-sensitive small flows first and share the
//! rest by weighted DRR. This crate holds that logic as pure functions of
//! packets' lengths, BTH opcodes and timestamps:
//!
//! * [`qp_state`]: the per-QP state machine and the thresholds that drive
//!   it ([`QpThresholds`], documented and configurable).
//!
//! Like `steer`, nothing here allocates or panics per packet, and the data
//! plane owns the clock.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod qp_state;

pub use qp_state::{QpFlow, QpState, QpThresholds, ThresholdError, Transition};
