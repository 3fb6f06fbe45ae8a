//! `agent`: AI agents calling an inference service.
//!
//! A handful of agent hosts (10.0.1.11–16) send chat-completion requests to
//! an inference VIP (10.0.100.1, port 8000). Requests arrive as a Poisson
//! process; each is either a short control command or a long generation
//! prompt (code, reasoning or summarisation, 300–3000 words), and travels
//! either over TCP (handshake, MSS-sized segments, FIN) or over UDP (one
//! datagram when it fits, several otherwise). By default only the client →
//! server direction is generated: the appliance classifies requests.
//!
//! # Options (token-aware steering)
//!
//! Two opt-in [`AgentOptions`] (`pktgen write --workload agent --tlv …
//! --responses`). With neither, [`generate_with`] is [`generate`], byte for
//! byte. Whatever the options, the requests — hosts, start times, HTTP
//! bytes, ISNs and (but see `--responses`) ports — are those of the default
//! workload for the same seed: the options draw their randomness from a
//! second ChaCha8 stream.
//!
//! **`--tlv ipv4|ipv6|mixed`** ([`TlvMode`]). Every client → server packet
//! of a request (TCP SYN, handshake ACK, data segments, FIN; every UDP
//! datagram) carries the token feature TLV of the draft's §5a
//! (docs/wire-format.md §5), with the D flag clear. The ID is
//! [`tokenfeat::extract`] of the request's prompt text with its
//! `max_tokens` ([`request_features`]), so control commands get a few
//! prompt tokens and mostly `immediate_control` (question-like ones such as
//! "what time is it in Tokyo" are `chat`), long prompts hundreds to
//! thousands of prompt tokens. For long prompts the agent also passes the
//! task it asks for as a hint ([`task_hint`]: code → `code_generation`,
//! reasoning → `complex_reasoning`, summarisation → `summarisation`); left
//! to its keyword rules, tokenfeat would call every long prompt code
//! generation, because the filler prose contains "function" and "compile". Carriers, built with
//! `classifier::token_feature_tlv`'s emitters:
//!
//! * `ipv4`: IPv4 option 0x9E (12 bytes, IHL 8);
//! * `ipv6`: the request goes over IPv6 between `fd00:0:0:1::<last octet>`
//!   ([`agent_v6`]) and [`VIP_V6`] (`fd00:0:0:100::1`), with a 16-byte
//!   Hop-by-Hop header carrying option 0x1E; the MACs, ports and HTTP bytes
//!   (`Host:` included) stay as over IPv4;
//! * `mixed`: requests alternate between the two, starting with one chosen
//!   from the seed.
//!
//! TCP segments and UDP datagrams shrink to keep 1500-byte IP packets
//! (1436 / 1412 bytes of TCP payload over IPv4 / IPv6 instead of 1448).
//!
//! **`--agent-hosts N`**. The requests come from N agent hosts instead of
//! six: each request's host is drawn from the second stream among
//! [`agent_host`]`(0..N)`, so everything else about the requests stays as
//! without it (the draws of the responses move on the second stream, so
//! with `--responses` their timing differs). IPv4 only. For traffic that
//! must spread by client address, as the bench's split by RSS does.
//!
//! **`--responses`**. The VIP answers every request with its 5-tuple
//! reversed (IPv6 when the request was). TCP: a SYN-ACK half an RTT after
//! the SYN, one ACK half an RTT after the client's FIN, then the response,
//! then the server's FIN; UDP: the response as datagrams. The response is
//! an HTTP/1.1 `text/event-stream` of chat-completion chunks, one packet
//! per [`TOKENS_PER_PACKET`] (4) output tokens, as many tokens as the
//! features' expected output tokens (the task default capped by
//! `max_tokens`), ending with `data: [DONE]`. Timing models inference:
//!
//! * time to first token, from the last request data packet to the first
//!   response packet: `ttft = 20 ms + prompt_tokens / 5000 tokens/s`
//!   (prefill; [`ttft_ns`]), so 20 ms for a control command and up to about
//!   0.9 s for a 3000-word prompt;
//! * decode at 50 tokens/s per stream: one response packet every 80 ms
//!   ([`RESPONSE_INTERVAL_NS`]).
//!
//! Responses carry no TLV and are not capped by `--max-flow-bytes`; the
//! client does not acknowledge response data. Because connections now
//! last seconds, an agent skips source ports still in use by one of its
//! earlier exchanges (the only way requests differ from the default's). All packets of all flows are
//! merged by timestamp, and generation runs until `--packets` packets
//! precede the next request, so the capture has no gap where requests
//! stopped but responses go on.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use classifier::token_feature_tlv::TokenFeatureTlvRepr;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokenfeat::{encode, TokenFeatures};

use super::flows::{tcp_exchange, udp_exchange, Carrier, Host, Response};
use super::text::WORDS;
use super::{exp_gap_ns, finish, seeded_rng, WorkloadConfig, EPOCH_NS};
use crate::build::BuildError;
use crate::Packet;
pub use llm_requests::{
    control_request_sized, long_request_sized, request_features, task_hint, PromptKind,
    LONG_PROMPT_WORDS, SHORT_OUTPUT_TOKENS, TOKENS_PER_PACKET,
};

/// The inference service's virtual IP.
pub const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 100, 1);
/// The inference service's port, for TCP and UDP alike.
pub const SERVER_PORT: u16 = 8000;
/// The `Host:` header agents send.
pub const HOST_HEADER: &str = "10.0.100.1:8000";

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

/// One HTTP request of the agent population, at most `max_bytes` long
/// (long prompts are trimmed to fit).
pub fn request(rng: &mut ChaCha8Rng, max_bytes: u64) -> (PromptKind, Vec<u8>) {
    if rng.gen_bool(0.55) {
        return control_request(rng, HOST_HEADER);
    }
    long_request(rng, HOST_HEADER, max_bytes)
}

/// A short control-command request to `host` (a `host:port` for the
/// `Host:` header). Draws exactly what [`request`] draws for one.
pub fn control_request(rng: &mut ChaCha8Rng, host: &str) -> (PromptKind, Vec<u8>) {
    control_request_sized(rng, host, SHORT_OUTPUT_TOKENS)
}

/// A long generation request to `host`, at most `max_bytes` long (trimmed
/// to fit). Draws exactly what [`request`] draws for one.
pub fn long_request(rng: &mut ChaCha8Rng, host: &str, max_bytes: u64) -> (PromptKind, Vec<u8>) {
    long_request_sized(rng, host, max_bytes, LONG_PROMPT_WORDS, None)
}

/// Which token feature TLV carrier agents use (`--tlv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum TlvMode {
    /// No TLV: plain IPv4, exactly the default workload.
    #[default]
    None,
    /// Every request over IPv4 with the TLV as IPv4 option 0x9E.
    Ipv4,
    /// Every request over IPv6 with a Hop-by-Hop header carrying option 0x1E.
    Ipv6,
    /// Requests alternate between the IPv4 and IPv6 carriers.
    Mixed,
}

impl fmt::Display for TlvMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlvMode::None => "none",
            TlvMode::Ipv4 => "ipv4",
            TlvMode::Ipv6 => "ipv6",
            TlvMode::Mixed => "mixed",
        })
    }
}

/// The opt-in options of the agent workload. The default (no TLV, no
/// responses) generates exactly what [`generate`] always has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AgentOptions {
    /// Token feature TLV carrier for request packets.
    pub tlv: TlvMode,
    /// Also generate the server's answers.
    pub responses: bool,
    /// Spread the requests over this many agent hosts instead of the six
    /// ([`agent_host`]), each request's host drawn from the second stream
    /// (IPv4 only). `None`: the six.
    pub hosts: Option<u32>,
}

/// Most agent hosts `--agent-hosts` takes.
pub const MAX_AGENT_HOSTS: u32 = 65_000;

/// Agent host `i` of an `--agent-hosts` population: the six hosts first
/// (10.0.1.11–16), then consecutive addresses from 10.1.0.1.
pub fn agent_host(i: u32) -> Ipv4Addr {
    if i < 6 {
        Ipv4Addr::new(10, 0, 1, 11 + i as u8)
    } else {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 1, 0, 1)) + (i - 6))
    }
}

/// The inference VIP's IPv6 address (ULA), used by IPv6 requests.
pub const VIP_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0x100, 0, 0, 0, 1);

/// The IPv6 address (ULA) of the agent whose IPv4 address is `v4`:
/// `fd00:0:0:1::<last octet>`, e.g. 10.0.1.11 → `fd00:0:0:1::b`.
pub fn agent_v6(v4: Ipv4Addr) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0, 0, 1, 0, 0, 0, u16::from(v4.octets()[3]))
}

/// Fixed part of the time to first token (queueing, scheduling, first
/// decode step).
pub const TTFT_BASE_NS: u64 = 20_000_000;
/// Prefill throughput: prompt tokens processed per second.
pub const PREFILL_TOKENS_PER_S: u64 = 5_000;
/// Decode throughput of one stream: output tokens per second.
pub const DECODE_TOKENS_PER_S: u64 = 50;
/// Time to first token for a prompt of `prompt_tokens`:
/// `20 ms + prompt_tokens / 5000 tokens/s`.
pub fn ttft_ns(prompt_tokens: u32) -> u64 {
    TTFT_BASE_NS + u64::from(prompt_tokens) * 1_000_000_000 / PREFILL_TOKENS_PER_S
}

/// Time between response packets: [`TOKENS_PER_PACKET`] tokens at
/// [`DECODE_TOKENS_PER_S`] (80 ms).
pub const RESPONSE_INTERVAL_NS: u64 =
    TOKENS_PER_PACKET as u64 * 1_000_000_000 / DECODE_TOKENS_PER_S;

/// The server's streamed chat-completion answer: `output_tokens` tokens of
/// text as server-sent events, [`TOKENS_PER_PACKET`] per packet; the first
/// packet also carries the HTTP response header and the last `data: [DONE]`.
pub fn response(rng: &mut ChaCha8Rng, features: &TokenFeatures, id: u64) -> Response {
    let tokens = features.output_tokens.max(1);
    let n = tokens.div_ceil(TOKENS_PER_PACKET);
    let mut payloads = Vec::with_capacity(n as usize);
    for i in 0..n {
        let k = (tokens - i * TOKENS_PER_PACKET).min(TOKENS_PER_PACKET);
        let words: Vec<&str> = (0..k)
            .map(|_| WORDS.choose(rng).copied().unwrap_or("the"))
            .collect();
        let chunk = serde_json::json!({
            "id": format!("chatcmpl-{id:016x}"),
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": format!(" {}", words.join(" "))}}],
        });
        let mut p = Vec::new();
        if i == 0 {
            p.extend_from_slice(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                  Cache-Control: no-cache\r\nConnection: close\r\n\r\n",
            );
        }
        p.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
        if i + 1 == n {
            p.extend_from_slice(b"data: [DONE]\n\n");
        }
        payloads.push(p);
    }
    Response {
        first_after_ns: ttft_ns(features.prompt_tokens),
        interval_ns: RESPONSE_INTERVAL_NS,
        payloads,
    }
}

/// Generates `cfg.packets` packets of agent traffic.
pub fn generate(cfg: &WorkloadConfig) -> Result<Vec<Packet>, BuildError> {
    generate_with(cfg, &AgentOptions::default())
}

/// [`generate`] with the opt-in options (see the module documentation).
/// The requests themselves (hosts, times, bytes, and ports unless one is
/// still busy with a response) are those of the default workload for the
/// same seed: everything the options add draws from a second random stream.
pub fn generate_with(cfg: &WorkloadConfig, opts: &AgentOptions) -> Result<Vec<Packet>, BuildError> {
    let mut rng = seeded_rng(cfg.seed, 1);
    let mut aux = seeded_rng(cfg.seed, AUX_STREAM);
    let agents = agents();
    let server = Host::new(VIP);
    let mut out = Vec::with_capacity(cfg.packets + 32);
    let mut t = EPOCH_NS;
    let mut v6_next = aux.gen_bool(0.5);
    // With responses, a request's packets reach far into the future, so
    // generation stops once `cfg.packets` packets are older than the next
    // request (nothing generated later can precede them).
    let mut pending: BinaryHeap<Reverse<u64>> = BinaryHeap::new();
    let mut settled = 0usize;
    let mut n_req = 0u64;
    let mut busy: HashMap<(Ipv4Addr, u16), u64> = HashMap::new();
    loop {
        if !opts.responses && out.len() >= cfg.packets {
            break;
        }
        t += exp_gap_ns(&mut rng, MEAN_REQUEST_GAP_NS);
        if opts.responses {
            while pending.peek().is_some_and(|Reverse(ts)| *ts < t) {
                pending.pop();
                settled += 1;
            }
            if settled >= cfg.packets {
                break;
            }
        }
        let mut agent = agents[rng.gen_range(0..agents.len())];
        if let Some(n) = opts.hosts.filter(|&n| n > 0) {
            agent = Host::new(agent_host(aux.gen_range(0..n.min(MAX_AGENT_HOSTS))));
        }
        let (kind, http) = request(&mut rng, cfg.max_flow_bytes);
        let mut sport = rng.gen_range(32768..61000);
        if opts.responses {
            // Connections now last seconds: like a real stack, never reuse
            // a source port that is still in use.
            while busy.get(&(agent.ip, sport)).is_some_and(|&end| end >= t) {
                sport = if sport == 60999 { 32768 } else { sport + 1 };
            }
        }
        let features = (opts.tlv != TlvMode::None || opts.responses)
            .then(|| request_features(&http, task_hint(kind)));
        let v6 = match opts.tlv {
            TlvMode::None | TlvMode::Ipv4 => false,
            TlvMode::Ipv6 => true,
            TlvMode::Mixed => {
                v6_next = !v6_next;
                !v6_next
            }
        };
        let carrier = Carrier {
            ipv6: v6.then(|| (agent_v6(agent.ip), VIP_V6)),
            tlv: match (opts.tlv, &features) {
                (TlvMode::None, _) | (_, None) => None,
                (_, Some(f)) => Some(TokenFeatureTlvRepr {
                    directed: false,
                    feature_id: encode(f),
                }),
            },
        };
        n_req += 1;
        let resp = match (&features, opts.responses) {
            (Some(f), true) => Some(response(&mut aux, f, cfg.seed << 32 ^ n_req)),
            _ => None,
        };
        let before = out.len();
        if rng.gen_bool(0.6) {
            let rtt = rng.gen_range(50_000..300_000);
            out.extend(tcp_exchange(
                &mut rng,
                agent,
                server,
                sport,
                SERVER_PORT,
                &http,
                t,
                rtt,
                AGENT_GBPS,
                &carrier,
                resp.as_ref(),
            )?);
        } else {
            out.extend(udp_exchange(
                &mut rng,
                agent,
                server,
                sport,
                SERVER_PORT,
                &http,
                t,
                AGENT_GBPS,
                &carrier,
                resp.as_ref(),
            )?);
        }
        if opts.responses {
            pending.extend(out[before..].iter().map(|p| Reverse(p.ts_ns)));
            let end = out[before..].iter().map(|p| p.ts_ns).max().unwrap_or(t);
            busy.insert((agent.ip, sport), end);
        }
    }
    Ok(finish(out, cfg.packets))
}

/// The random stream the options draw from (the requests use stream 1).
const AUX_STREAM: u64 = 0x7463_6c76;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::text::{chat_body, http_post};
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
    fn inference_timing_model() {
        assert_eq!(ttft_ns(0), 20_000_000);
        assert_eq!(ttft_ns(5_000), 1_020_000_000);
        assert_eq!(RESPONSE_INTERVAL_NS, 80_000_000);
        let mut rng = seeded_rng(1, 9);
        let f = request_features(
            &http_post(
                HOST_HEADER,
                &chat_body("llama-3.1-8b-instruct", "turn on the light", 64),
            ),
            None,
        );
        assert_eq!(f.task, tokenfeat::TaskType::ImmediateControl);
        let r = response(&mut rng, &f, 1);
        // 16 output tokens, 4 per packet.
        assert_eq!(r.payloads.len(), 4);
        assert!(r.payloads[0].starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(r.payloads[3].ends_with(b"data: [DONE]\n\n"));
        assert_eq!(r.first_after_ns, ttft_ns(f.prompt_tokens));
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
