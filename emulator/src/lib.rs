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

/// Makes a panic end in one line an operator can report, not a trace:
/// `PROGRAM: internal error: MESSAGE at FILE:LINE`, and the end of the
/// process, whichever thread panicked. For the emulator's and the traffic
/// generator's binaries.
pub fn one_line_panics(program: &'static str) {
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("{program}: internal error: {msg}{at}");
        // Release builds abort here anyway (`panic = "abort"`); the
        // ci-test profile unwinds, where a panicking thread would end
        // alone. The binaries under test must fail as release ones do.
        if cfg!(panic = "unwind") {
            std::process::abort();
        }
    }));
}
