//! Kernel-socket tools: `pktgen serve` (an inference-node emulator) and
//! `pktgen agent` (an open-loop client measuring TTFT), for experiments
//! through the appliance over real TCP connections rather than pcaps.

pub mod client;
pub mod report;
pub mod serve;
mod sock;
