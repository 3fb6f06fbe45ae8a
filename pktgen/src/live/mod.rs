//! Kernel-socket tools: `pktgen serve` (an inference-node emulator over TCP
//! and UDP), `pktgen agent` (an open-loop client measuring TTFT) and
//! `pktgen wire` (a delay/jitter/loss path emulator between two
//! interfaces), for experiments through the appliance over real sockets
//! rather than pcaps.

pub mod client;
pub mod datagram;
pub mod delay_line;
pub mod http;
pub mod report;
pub mod serve;
mod sock;
pub mod wire;
