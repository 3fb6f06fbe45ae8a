//! # emulator — an inference cluster over kernel sockets, without DPDK
//!
//! `emulator serve` (an OpenAI-compatible inference-node emulator over TCP
//! and UDP, with vLLM's `/metrics`), `emulator agent` (an open-loop client
//! measuring TTFT) and `emulator wire` (a delay/jitter/loss path emulator
//! between two interfaces), for experiments through the appliance over
//! real sockets rather than pcaps. `pktgen serve|agent|wire` run the same
//! code ([`cli::run`]).

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod client;
pub mod datagram;
pub mod delay_line;
pub mod http;
pub mod prefix_cache;
pub mod report;
pub mod serve;
mod sock;
pub mod vllm_metrics;
pub mod wire;
