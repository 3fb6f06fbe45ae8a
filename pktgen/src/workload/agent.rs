//! `agent`: AI agents calling an inference service.
//!
//! A handful of agent hosts (10.0.1.11–16) send chat-completion requests to
//! an inference VIP (10.0.100.1, port 8000). Requests arrive as a Poisson
//! process; each is either a short control command or a long generation
//! prompt (code, reasoning or summarisation, 300–3000 words), and travels
//! either over TCP (handshake, MSS-sized segments, FIN) or over UDP (one
//! datagram when it fits, several otherwise). Only the client → server
//! direction is generated: the appliance classifies requests, and responses
//! are a different workload.

use std::net::Ipv4Addr;

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::flows::{tcp_request, udp_request, Host};
use super::text::{chat_body, control_prompt, http_post, long_prompt, sized_request, LongTask};
use super::{exp_gap_ns, finish, seeded_rng, WorkloadConfig, EPOCH_NS};
use crate::build::BuildError;
use crate::Packet;

/// The inference service's virtual IP.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 100, 1);
/// The inference service's port, for TCP and UDP alike.
pub const SERVER_PORT: u16 = 8000;
/// The `Host:` header agents send.
pub const HOST_HEADER: &str = "10.0.100.1:8000";

const CONTROL_MODEL: &str = "llama-3.1-8b-instruct";
const LONG_MODELS: &[&str] = &[
    "llama-3.1-70b-instruct",
    "qwen2.5-coder-32b-instruct",
    "deepseek-r1-distill-llama-70b",
];

/// Mean gap between requests across all agents.
const MEAN_REQUEST_GAP_NS: f64 = 400_000.0;
/// Agents sit on 10 Gb/s links.
const AGENT_GBPS: u64 = 10;

/// The agent hosts.
pub fn agents() -> Vec<Host> {
    (11..=16)
        .map(|i| Host::new(Ipv4Addr::new(10, 0, 1, i)))
        .collect()
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PromptKind {
    /// A short control command.
    Control,
    /// A long generation prompt.
    Long(LongTask),
}

/// One HTTP request of the agent population, at most `max_bytes` long
/// (long prompts are trimmed to fit).
pub fn request(rng: &mut ChaCha8Rng, max_bytes: u64) -> (PromptKind, Vec<u8>) {
    let max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    if rng.gen_bool(0.55) {
        let body = chat_body(CONTROL_MODEL, control_prompt(rng), rng.gen_range(64..=256));
        return (PromptKind::Control, http_post(HOST_HEADER, &body));
    }
    let task = *[
        LongTask::CodeGeneration,
        LongTask::Reasoning,
        LongTask::Summarisation,
    ]
    .choose(rng)
    .unwrap_or(&LongTask::Reasoning);
    let model = LONG_MODELS.choose(rng).copied().unwrap_or(LONG_MODELS[0]);
    let words = rng.gen_range(300..=3000);
    let body = chat_body(
        model,
        &long_prompt(rng, task, words),
        rng.gen_range(1..=4) * 1024,
    );
    let req = http_post(HOST_HEADER, &body);
    if req.len() > max_bytes {
        (
            PromptKind::Long(task),
            sized_request(rng, HOST_HEADER, model, max_bytes),
        )
    } else {
        (PromptKind::Long(task), req)
    }
}

/// Generates `cfg.packets` packets of agent traffic.
pub fn generate(cfg: &WorkloadConfig) -> Result<Vec<Packet>, BuildError> {
    let mut rng = seeded_rng(cfg.seed, 1);
    let agents = agents();
    let server = Host::new(VIP);
    let mut out = Vec::with_capacity(cfg.packets + 32);
    let mut t = EPOCH_NS;
    while out.len() < cfg.packets {
        t += exp_gap_ns(&mut rng, MEAN_REQUEST_GAP_NS);
        let agent = agents[rng.gen_range(0..agents.len())];
        let (_, http) = request(&mut rng, cfg.max_flow_bytes);
        let sport = rng.gen_range(32768..61000);
        if rng.gen_bool(0.6) {
            let rtt = rng.gen_range(50_000..300_000);
            out.extend(tcp_request(
                &mut rng,
                agent,
                server,
                sport,
                SERVER_PORT,
                &http,
                t,
                rtt,
                AGENT_GBPS,
            )?);
        } else {
            out.extend(udp_request(
                &mut rng,
                agent,
                server,
                sport,
                SERVER_PORT,
                &http,
                t,
                AGENT_GBPS,
            )?);
        }
    }
    Ok(finish(out, cfg.packets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use classifier::{parse, IpProtocol};

    #[test]
    fn mixes_tcp_udp_control_and_long() {
        let cfg = WorkloadConfig {
            packets: 600,
            ..WorkloadConfig::default()
        };
        let pkts = generate(&cfg).unwrap();
        assert_eq!(pkts.len(), 600);
        let parsed: Vec<_> = pkts.iter().map(|p| parse(&p.data).unwrap()).collect();
        let tcp = parsed
            .iter()
            .filter(|p| p.ip_protocol == Some(IpProtocol::TCP))
            .count();
        let udp = parsed
            .iter()
            .filter(|p| p.ip_protocol == Some(IpProtocol::UDP))
            .count();
        assert!(tcp > 100 && udp > 50, "tcp {tcp} udp {udp}");
        assert!(parsed
            .iter()
            .all(|p| p.flow.unwrap().dst_port == SERVER_PORT));
        // Both short single-datagram requests and multi-datagram ones.
        assert!(pkts.iter().any(|p| p.data.len() < 400));
        assert!(pkts.iter().any(|p| p.data.len() == 1514));
    }

    #[test]
    fn max_flow_bytes_caps_requests() {
        let mut rng = seeded_rng(5, 1);
        for _ in 0..50 {
            let (_, r) = request(&mut rng, 2000);
            assert!(r.len() <= 2000, "{}", r.len());
        }
    }
}
