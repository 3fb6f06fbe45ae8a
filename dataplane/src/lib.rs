//! IntelliNode's data plane: the DPDK runtime (EAL, mempools, ports, lcores),
//! per-lcore counters and the packet pipelines that run on worker lcores.
//!
//! Only [`dpdk`] contains `unsafe`; everything else is safe Rust over it.
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod config;
pub mod control_plane;
pub mod ctl;
pub mod ctl_messages;
pub mod dpdk;
pub mod metrics;
pub mod pipeline;
pub mod predictor_core;
pub mod preflight;
pub mod probe;
pub mod report;
pub mod runtime;
pub mod stats;
pub mod steer_config;
pub mod telemetry;
pub mod tensor_config;
