//! `emulator agent`: an open-loop load generator over real TCP or UDP
//! sockets.
//!
//! Requests come from the agent workload's generators (short control
//! commands and long generation prompts, [`agent::control_request_sized`]
//! and [`agent::long_request_sized`], sized by [`WorkloadSizes`]), arrive as
//! a Poisson process (or at a fixed interval), and each runs on its own
//! thread at its arrival time, at most `max_inflight` at once (keep it
//! large: a request waiting for a free place is late, and its lateness
//! shows in `arrival_*`). With `--tlv ipv4` the socket carries the token
//! feature TLV (IPv4 option 0x9E) of the request's features on every packet.
//!
//! Over TCP, TTFT is measured from the moment the last request byte was
//! written to the first response body byte of a `data:` event; completion
//! runs to `data: [DONE]` (or EOF when the server never says it). Over UDP
//! ([`Transport::Udp`], the protocol of [`super::datagram`]) the request is
//! one datagram, TTFT runs to the first token datagram and completion to
//! the one flagged last. There is no retransmission: a lost request or
//! last datagram ends in a timeout, a gap in the token sequence numbers in
//! an error naming how many were lost. Requests longer than one datagram
//! fail without being sent.
//!
//! `arrival_ttft_ms` and `arrival_completion_ms` count from the request's
//! *scheduled* arrival instead, so connection set-up (SYN retransmissions
//! included) and any lateness of the agent count, as an open-loop user
//! sees them.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use classifier::token_feature_tlv::{emit_ipv4_option_area, TokenFeatureTlvRepr};
use rand::Rng;
use serde::Serialize;
use tokenfeat::TokenFeatures;

use super::datagram::{self, Datagram};
use llm_requests::agents::{self, AgentMix, Persona, Sessions};
use llm_requests::seeded_rng;

/// The generator stream of the agent personas' sizes.
const PERSONA_STREAM: u64 = 0x7065_7273;
use llm_requests::text::LongTask;
use llm_requests::{self as agent, PromptKind};

/// Token feature TLV carrier for `emulator agent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SocketTlv {
    /// No TLV.
    #[default]
    None,
    /// IPv4 option 0x9E set on the socket (IP_OPTIONS).
    Ipv4,
}

/// What carries the requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Transport {
    /// HTTP/1.1 over a TCP connection per request.
    #[default]
    Tcp,
    /// The INUD datagram protocol (docs/wire-format.md §8).
    Udp,
}

impl Transport {
    /// `tcp` or `udp`.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// An inclusive range `LO-HI` (or a single `N`) from the command line.
pub fn parse_size_range(text: &str) -> Result<(u64, u64), String> {
    let number = |t: &str| {
        t.trim()
            .parse::<u64>()
            .map_err(|_| format!("{text:?} is not LO-HI with whole numbers (e.g. 64-256)"))
    };
    let (lo, hi) = match text.split_once('-') {
        Some((lo, hi)) => (number(lo)?, number(hi)?),
        None => {
            let n = number(text)?;
            (n, n)
        }
    };
    if lo > hi {
        return Err(format!("{text:?}: LO {lo} is above HI {hi}"));
    }
    if lo == 0 {
        return Err(format!("{text:?}: sizes start at 1"));
    }
    Ok((lo, hi))
}

/// Shared-prefix agent calls mixed into the load.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentLoad {
    /// Share of all requests that are agent calls; the short fraction
    /// splits the rest (as the simulator's `Workload::agent_fraction`).
    pub fraction: f64,
    /// The personas and sessions.
    pub mix: AgentMix,
}

/// Request sizes; `None` keeps the default workload's, draw for draw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkloadSizes {
    /// `max_tokens` of short requests (default 64–256).
    pub short_output_tokens: Option<RangeInclusive<u32>>,
    /// `max_tokens` of long requests (default 1024, 2048, 3072 or 4096).
    pub long_output_tokens: Option<RangeInclusive<u32>>,
    /// Words of long prompts (default 300–3000).
    pub long_prompt_words: Option<RangeInclusive<usize>>,
    /// Agent calls (default none).
    pub agents: Option<AgentLoad>,
}

/// What `emulator agent` does beyond [`AgentConfig`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadOptions {
    /// TCP or UDP.
    pub transport: Transport,
    /// Request sizes.
    pub sizes: WorkloadSizes,
}

/// How requests arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrivals {
    /// Poisson, this many requests per second.
    Poisson(f64),
    /// One every this long.
    Fixed(Duration),
}

/// What `emulator agent` does.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The service VIP.
    pub target: SocketAddr,
    /// Requests to send.
    pub requests: usize,
    /// Arrival process.
    pub arrivals: Arrivals,
    /// Fraction of short control commands.
    pub short_fraction: f64,
    /// Seed: the same seed gives the same requests at the same offsets.
    pub seed: u64,
    /// TLV carrier.
    pub tlv: SocketTlv,
    /// Local address to bind.
    pub bind: Option<IpAddr>,
    /// Per-request timeout (connect, and the whole exchange).
    pub timeout: Duration,
    /// Most requests in flight at once.
    pub max_inflight: usize,
}

/// One planned request.
#[derive(Debug, Clone)]
pub struct PlannedRequest {
    /// Index, from 0.
    pub id: usize,
    /// Offset of its arrival from the start.
    pub at: Duration,
    /// Control command or long prompt.
    pub kind: PromptKind,
    /// The whole HTTP request.
    pub http: Vec<u8>,
    /// tokenfeat's features of it (what the TLV carries).
    pub features: TokenFeatures,
    /// Its `max_tokens`.
    pub max_tokens: Option<u32>,
}

impl PlannedRequest {
    /// `short` or `long`.
    pub fn class(&self) -> &'static str {
        match self.kind {
            PromptKind::Control => "short",
            // Agent calls are bulk chat work, long as in the simulator.
            PromptKind::Long(_) | PromptKind::Agent => "long",
        }
    }

    /// The IPv4 option area for its TLV.
    pub fn ip_options(&self) -> Vec<u8> {
        ipv4_option_bytes(&self.features)
    }
}

/// The IPv4 option area (a multiple of 4 bytes) carrying the token feature
/// TLV of `features`, D flag clear: `classifier`'s emitter, padded.
pub fn ipv4_option_bytes(features: &TokenFeatures) -> Vec<u8> {
    let repr = TokenFeatureTlvRepr {
        directed: false,
        feature_id: tokenfeat::encode(features),
    };
    let mut buf = [0u8; 40];
    let n = emit_ipv4_option_area(&repr, &[], &mut buf).unwrap_or(0);
    buf[..n].to_vec()
}

fn long_task_name(t: LongTask) -> &'static str {
    match t {
        LongTask::CodeGeneration => "code",
        LongTask::Reasoning => "reasoning",
        LongTask::Summarisation => "summarisation",
    }
}

/// The requests and arrival offsets of `cfg` (deterministic in the seed).
pub fn plan(cfg: &AgentConfig) -> Vec<PlannedRequest> {
    plan_with(cfg, &WorkloadSizes::default())
}

/// [`plan`] with request sizes from `sizes`.
pub fn plan_with(cfg: &AgentConfig, sizes: &WorkloadSizes) -> Vec<PlannedRequest> {
    let host = cfg.target.to_string();
    let mut rng = seeded_rng(cfg.seed, 0x6c69_7665);
    let mut at = Duration::ZERO;
    // The personas are drawn once, on their own stream, and rendered once;
    // sessions are drawn from the arrival stream, as the simulator's are
    // from its site's.
    let agents = sizes.agents.as_ref().filter(|a| a.fraction > 0.0);
    let personas = agents
        .map(|a| {
            let tokens = a
                .mix
                .persona_tokens(&mut seeded_rng(cfg.seed, PERSONA_STREAM));
            Persona::all(cfg.seed, &tokens)
                .into_iter()
                .zip(tokens)
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let persona_tokens: Vec<u32> = personas.iter().map(|(_, t)| *t).collect();
    let mut sessions = Sessions::new(0);
    (0..cfg.requests)
        .map(|id| {
            if id > 0 {
                at += match cfg.arrivals {
                    Arrivals::Fixed(d) => d,
                    Arrivals::Poisson(rate) => {
                        let u: f64 = rng.gen();
                        Duration::from_secs_f64(-(1.0 - u).ln() / rate)
                    }
                };
            }
            if let Some(a) = agents.filter(|a| rng.gen::<f64>() < a.fraction) {
                let call = sessions.next_call(&mut rng, &a.mix, &persona_tokens);
                let persona = personas.get(call.persona as usize).map(|(p, _)| p);
                let body = persona
                    .map(|p| agents::agent_body(&call, p, cfg.seed))
                    .unwrap_or_default();
                let features = agents::agent_features(body.as_bytes(), a.mix.name_prefix)
                    .unwrap_or_else(|| agent::request_features(body.as_bytes(), None));
                return PlannedRequest {
                    id,
                    at,
                    kind: PromptKind::Agent,
                    http: agent::text::http_post(&host, &body),
                    features,
                    max_tokens: Some(call.output_tokens),
                };
            }
            let (kind, http) = if rng.gen_bool(cfg.short_fraction.clamp(0.0, 1.0)) {
                let max_tokens = sizes
                    .short_output_tokens
                    .clone()
                    .unwrap_or(agent::SHORT_OUTPUT_TOKENS);
                agent::control_request_sized(&mut rng, &host, max_tokens)
            } else {
                agent::long_request_sized(
                    &mut rng,
                    &host,
                    tokenfeat::MAX_REQUEST_LEN as u64,
                    sizes
                        .long_prompt_words
                        .clone()
                        .unwrap_or(agent::LONG_PROMPT_WORDS),
                    sizes.long_output_tokens.clone(),
                )
            };
            let features = agent::request_features(&http, agent::task_hint(kind));
            let max_tokens = tokenfeat::parse_openai_request(&http).and_then(|r| r.max_tokens);
            PlannedRequest {
                id,
                at,
                kind,
                http,
                features,
                max_tokens,
            }
        })
        .collect()
}

/// The outcome of one request, as written to `--out`.
#[derive(Debug, Clone, Serialize)]
pub struct RequestResult {
    /// Index, from 0.
    pub id: usize,
    /// `short` or `long`.
    pub class: &'static str,
    /// `tcp` or `udp`.
    pub transport: &'static str,
    /// What the agent asked for: `control`, `code`, `reasoning`,
    /// `summarisation`, `agent` (a shared-prefix agent call).
    pub prompt: &'static str,
    /// tokenfeat's task type.
    pub task: &'static str,
    /// tokenfeat's prompt tokens.
    pub prompt_tokens: u32,
    /// tokenfeat's expected output tokens.
    pub expected_output_tokens: u32,
    /// The request's `max_tokens`.
    pub max_tokens: Option<u32>,
    /// Whether the socket carried the TLV.
    pub tlv: bool,
    /// The 64-bit token feature ID, hex.
    pub feature_id: String,
    /// Planned arrival, ms from the run's start.
    pub scheduled_ms: f64,
    /// Actual start (connect), ms from the run's start.
    pub start_ms: f64,
    /// Connect time, ms.
    pub connect_ms: Option<f64>,
    /// Last request byte written → first `data:` byte, ms.
    pub ttft_ms: Option<f64>,
    /// Last request byte written → `data: [DONE]` (or EOF), ms.
    pub completion_ms: Option<f64>,
    /// Scheduled arrival → first response data byte (TCP) or first token
    /// datagram (UDP), ms.
    pub arrival_ttft_ms: Option<f64>,
    /// Scheduled arrival → `data: [DONE]` (TCP) or the last token
    /// datagram (UDP), ms.
    pub arrival_completion_ms: Option<f64>,
    /// Output tokens received: words of the streamed chunks' text (the
    /// server's emulated tokens), or the token datagrams' counts.
    pub output_tokens: Option<u32>,
    /// Request bytes written.
    pub bytes_sent: usize,
    /// Response bytes read (head included).
    pub bytes_received: usize,
    /// `data:` events received (`[DONE]` excluded).
    pub chunks: usize,
    /// HTTP status code.
    pub status: Option<u16>,
    /// The node that answered, from the response's `X-Node` header
    /// (`emulator serve --name`).
    pub node: Option<String>,
    /// Local address used.
    pub local: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
}

impl RequestResult {
    /// Completed without error.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// p50, p99 and mean of a set of milliseconds (null when empty).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Percentiles {
    /// Median (nearest rank).
    pub p50: Option<f64>,
    /// 99th percentile (nearest rank).
    pub p99: Option<f64>,
    /// Mean.
    pub mean: Option<f64>,
}

impl Percentiles {
    /// Of `v`.
    pub fn of(mut v: Vec<f64>) -> Self {
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        Percentiles {
            p50: Some(rank(0.50)),
            p99: Some(rank(0.99)),
            mean: Some(v.iter().sum::<f64>() / v.len() as f64),
        }
    }
}

/// Per-class summary.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ClassSummary {
    /// Requests of the class.
    pub count: usize,
    /// Completed.
    pub ok: usize,
    /// Failed.
    pub errors: usize,
    /// TTFT of completed requests.
    pub ttft_ms: Percentiles,
    /// Completion time of completed requests.
    pub completion_ms: Percentiles,
    /// Scheduled arrival → first token, completed requests.
    pub arrival_ttft_ms: Percentiles,
    /// Scheduled arrival → completion, completed requests.
    pub arrival_completion_ms: Percentiles,
    /// Output tokens received by completed requests.
    pub output_tokens: u64,
    /// `output_tokens` / (last completion − first scheduled arrival of
    /// the class), per second; null without a completed request.
    pub throughput_tokens_per_s: Option<f64>,
}

/// Both classes.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Classes {
    /// Control commands.
    pub short: ClassSummary,
    /// Long prompts.
    pub long: ClassSummary,
}

/// What `--out` holds.
#[derive(Debug, Clone, Serialize)]
pub struct AgentReport {
    /// The target.
    pub target: String,
    /// TLV carrier.
    pub tlv: &'static str,
    /// `tcp` or `udp`.
    pub transport: &'static str,
    /// Seed.
    pub seed: u64,
    /// When the run started (the origin of `scheduled_ms` and
    /// `start_ms`), ms since the Unix epoch.
    pub start_unix_ms: f64,
    /// Wall time of the run, seconds.
    pub duration_s: f64,
    /// Requests that had to wait for `max_inflight` to start: each one
    /// made the load less open-loop (its lateness is in `arrival_*`).
    pub held_by_max_inflight: usize,
    /// Every request, by id.
    pub requests: Vec<RequestResult>,
    /// Per-class summaries.
    pub classes: Classes,
}

impl AgentReport {
    fn summarise(requests: &[RequestResult], class: &str) -> ClassSummary {
        let of: Vec<&RequestResult> = requests.iter().filter(|r| r.class == class).collect();
        let ok: Vec<&&RequestResult> = of.iter().filter(|r| r.ok()).collect();
        let output_tokens: u64 = ok
            .iter()
            .filter_map(|r| r.output_tokens)
            .map(u64::from)
            .sum();
        let first_arrival = of.iter().map(|r| r.scheduled_ms).reduce(f64::min);
        let last_completion = ok
            .iter()
            .filter_map(|r| r.arrival_completion_ms.map(|c| r.scheduled_ms + c))
            .reduce(f64::max);
        let throughput_tokens_per_s = match (first_arrival, last_completion) {
            (Some(first), Some(last)) if last > first => {
                Some(output_tokens as f64 / ((last - first) / 1000.0))
            }
            _ => None,
        };
        ClassSummary {
            count: of.len(),
            ok: ok.len(),
            errors: of.len() - ok.len(),
            ttft_ms: Percentiles::of(ok.iter().filter_map(|r| r.ttft_ms).collect()),
            completion_ms: Percentiles::of(ok.iter().filter_map(|r| r.completion_ms).collect()),
            arrival_ttft_ms: Percentiles::of(ok.iter().filter_map(|r| r.arrival_ttft_ms).collect()),
            arrival_completion_ms: Percentiles::of(
                ok.iter().filter_map(|r| r.arrival_completion_ms).collect(),
            ),
            output_tokens,
            throughput_tokens_per_s,
        }
    }

    /// A few lines for people.
    pub fn render(&self) -> String {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let mut s = format!(
            "agent → {} over {}: {} requests in {:.2} s, TLV {}\n",
            self.target,
            self.transport,
            self.requests.len(),
            self.duration_s,
            self.tlv
        );
        for (name, c) in [("short", &self.classes.short), ("long", &self.classes.long)] {
            s.push_str(&format!(
                "  {name:5} {:4} sent, {:4} ok, {:3} errors; TTFT ms p50 {} p99 {} mean {}; completion ms p50 {} p99 {}; from arrival: TTFT p99 {}, completion p99 {}; {} tokens/s\n",
                c.count,
                c.ok,
                c.errors,
                f(c.ttft_ms.p50),
                f(c.ttft_ms.p99),
                f(c.ttft_ms.mean),
                f(c.completion_ms.p50),
                f(c.completion_ms.p99),
                f(c.arrival_ttft_ms.p99),
                f(c.arrival_completion_ms.p99),
                f(c.throughput_tokens_per_s),
            ));
        }
        if self.held_by_max_inflight > 0 {
            s.push_str(&format!(
                "  warning: {} requests started late, held by --max-inflight\n",
                self.held_by_max_inflight
            ));
        }
        if let Some(e) = self.requests.iter().find_map(|r| r.error.as_ref()) {
            s.push_str(&format!("  first error: {e}\n"));
        }
        s
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Opens the connection for `req` as `cfg` says.
fn connect(cfg: &AgentConfig, req: &PlannedRequest) -> io::Result<TcpStream> {
    let opts = match cfg.tlv {
        SocketTlv::Ipv4 => req.ip_options(),
        SocketTlv::None => Vec::new(),
    };
    match (cfg.target, cfg.bind) {
        (SocketAddr::V4(t), bind) if !opts.is_empty() || bind.is_some() => {
            let bind = match bind {
                None => None,
                Some(IpAddr::V4(b)) => Some(b),
                Some(IpAddr::V6(b)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("--bind {b} is IPv6 but the target is IPv4"),
                    ))
                }
            };
            super::sock::connect_v4(t, bind, &opts, cfg.timeout)
        }
        (SocketAddr::V6(_), _) if !opts.is_empty() || cfg.bind.is_some() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--tlv ipv4 and --bind need an IPv4 --target",
        )),
        (t, _) => TcpStream::connect_timeout(&t, cfg.timeout),
    }
}

/// The record of `req` before it runs.
fn blank_result(
    cfg: &AgentConfig,
    transport: Transport,
    req: &PlannedRequest,
    began: Instant,
    start: Instant,
) -> RequestResult {
    RequestResult {
        id: req.id,
        class: req.class(),
        transport: transport.name(),
        prompt: match req.kind {
            PromptKind::Control => "control",
            PromptKind::Agent => "agent",
            PromptKind::Long(t) => long_task_name(t),
        },
        task: req.features.task.name(),
        prompt_tokens: req.features.prompt_tokens,
        expected_output_tokens: req.features.output_tokens,
        max_tokens: req.max_tokens,
        tlv: cfg.tlv == SocketTlv::Ipv4,
        feature_id: format!("{:016x}", tokenfeat::encode(&req.features).0),
        scheduled_ms: ms(req.at),
        start_ms: ms(began.saturating_duration_since(start)),
        connect_ms: None,
        ttft_ms: None,
        completion_ms: None,
        arrival_ttft_ms: None,
        arrival_completion_ms: None,
        output_tokens: None,
        bytes_sent: 0,
        bytes_received: 0,
        chunks: 0,
        status: None,
        node: None,
        local: None,
        error: None,
    }
}

/// Runs one request over TCP; `start` is the run's start.
pub fn run_one(cfg: &AgentConfig, req: &PlannedRequest, start: Instant) -> RequestResult {
    run_one_over(cfg, Transport::Tcp, req, start)
}

/// Runs one request over `transport`; `start` is the run's start.
pub fn run_one_over(
    cfg: &AgentConfig,
    transport: Transport,
    req: &PlannedRequest,
    start: Instant,
) -> RequestResult {
    let began = Instant::now();
    let mut r = blank_result(cfg, transport, req, began, start);
    let scheduled = start + req.at;
    let outcome = match transport {
        Transport::Tcp => exchange(cfg, req, began, scheduled, &mut r),
        Transport::Udp => exchange_udp(cfg, req, began, scheduled, &mut r),
    };
    if let Err(e) = outcome {
        r.error = Some(e);
    }
    r
}

/// Milliseconds from `from` to `to`, zero when `to` is earlier.
fn ms_since(to: Instant, from: Instant) -> f64 {
    ms(to.saturating_duration_since(from))
}

/// Tokens in one `data:` event: the words of its delta text (the server
/// emulates one token per word).
fn event_tokens(event: &[u8]) -> u32 {
    let json = event.strip_prefix(b"data:").unwrap_or(event);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(json) else {
        return 0;
    };
    let text = v["choices"][0]["delta"]["content"].as_str().unwrap_or("");
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

fn exchange(
    cfg: &AgentConfig,
    req: &PlannedRequest,
    began: Instant,
    scheduled: Instant,
    r: &mut RequestResult,
) -> Result<(), String> {
    let deadline = began + cfg.timeout;
    let mut stream = connect(cfg, req).map_err(|e| format!("connect: {e}"))?;
    r.connect_ms = Some(ms(began.elapsed()));
    r.local = stream.local_addr().ok().map(|a| a.to_string());
    let _ = stream.set_nodelay(true);
    stream
        .set_write_timeout(Some(cfg.timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(&req.http)
        .map_err(|e| format!("send: {e}"))?;
    let sent = Instant::now();
    r.bytes_sent = req.http.len();

    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 16384];
    let mut body_at: Option<usize> = None;
    let mut scanned = 0usize;
    let mut done = false;
    let mut tokens = 0u32;
    loop {
        let read = read_before(
            deadline,
            cfg.timeout,
            |t| stream.set_read_timeout(t),
            || (&stream).read(&mut chunk),
        )?;
        let Some(n) = read else { continue };
        let now = Instant::now();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        r.bytes_received = buf.len();
        if body_at.is_none() {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let status = std::str::from_utf8(&buf[..end])
                    .ok()
                    .and_then(|h| h.split(' ').nth(1))
                    .and_then(|c| c.parse::<u16>().ok());
                r.status = status;
                r.node = header(&buf[..end], "x-node").map(str::to_string);
                if status != Some(200) {
                    return Err(format!(
                        "HTTP status {}",
                        status.map_or("?".into(), |s| s.to_string())
                    ));
                }
                body_at = Some(end + 4);
                scanned = end + 4;
            }
        }
        if let Some(b) = body_at {
            if r.ttft_ms.is_none() && find(&buf[b..], b"data:").is_some() {
                r.ttft_ms = Some(ms(now - sent));
                r.arrival_ttft_ms = Some(ms_since(now, scheduled));
            }
            // Count complete events since the last scan.
            while let Some(i) = find(&buf[scanned..], b"\n\n") {
                let event = &buf[scanned..scanned + i];
                if event.starts_with(b"data: [DONE]") {
                    done = true;
                } else if event.starts_with(b"data:") {
                    r.chunks += 1;
                    tokens = tokens.saturating_add(event_tokens(event));
                }
                scanned += i + 2;
            }
            r.output_tokens = Some(tokens);
            if done {
                r.completion_ms = Some(ms(now - sent));
                r.arrival_completion_ms = Some(ms_since(now, scheduled));
                break;
            }
        }
    }
    if r.status.is_none() {
        return Err("connection closed before a response".into());
    }
    if r.ttft_ms.is_none() {
        return Err("no data: event in the response".into());
    }
    if r.completion_ms.is_none() {
        let now = Instant::now();
        r.completion_ms = Some(ms(now - sent));
        r.arrival_completion_ms = Some(ms_since(now, scheduled));
        return Err("connection closed before data: [DONE]".into());
    }
    Ok(())
}

/// The value of header `name` (lower case) in an HTTP response head.
fn header<'a>(head: &'a [u8], name: &str) -> Option<&'a str> {
    std::str::from_utf8(head)
        .ok()?
        .split("\r\n")
        .skip(1)
        .find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
}

/// One read that gives up at `deadline` (the request's `timeout` after it
/// began): the bytes read, `None` when a signal interrupted it (read
/// again), or the error to record.
fn read_before(
    deadline: Instant,
    timeout: Duration,
    set_read_timeout: impl FnOnce(Option<Duration>) -> io::Result<()>,
    read: impl FnOnce() -> io::Result<usize>,
) -> Result<Option<usize>, String> {
    let timed_out = || format!("timed out after {:.1} s", timeout.as_secs_f64());
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(timed_out());
    }
    set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
    match read() {
        Ok(n) => Ok(Some(n)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(timed_out())
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
        Err(e) => Err(format!("receive: {e}")),
    }
}

/// The UDP socket for `req`: bound to `cfg.bind` (or any address of the
/// target's family), TLV set as `cfg.tlv` says, connected to the target.
fn udp_socket(cfg: &AgentConfig, req: &PlannedRequest) -> io::Result<UdpSocket> {
    let local: IpAddr = match (cfg.bind, cfg.target) {
        (Some(ip), _) => ip,
        (None, SocketAddr::V4(_)) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (None, SocketAddr::V6(_)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket = UdpSocket::bind(SocketAddr::new(local, 0))?;
    if cfg.tlv == SocketTlv::Ipv4 {
        super::sock::set_ip_options(&socket, &req.ip_options())?;
    }
    socket.connect(cfg.target)?;
    Ok(socket)
}

/// The JSON body of an HTTP request (all of it when it has no head).
fn http_body(http: &[u8]) -> &[u8] {
    match find(http, b"\r\n\r\n") {
        Some(end) => &http[end + 4..],
        None => http,
    }
}

fn exchange_udp(
    cfg: &AgentConfig,
    req: &PlannedRequest,
    began: Instant,
    scheduled: Instant,
    r: &mut RequestResult,
) -> Result<(), String> {
    let deadline = began + cfg.timeout;
    let id = req.id as u64;
    let request = datagram::encode_request(id, http_body(&req.http))?;
    let socket = udp_socket(cfg, req).map_err(|e| format!("socket: {e}"))?;
    r.local = socket.local_addr().ok().map(|a| a.to_string());
    socket.send(&request).map_err(|e| format!("send: {e}"))?;
    let sent = Instant::now();
    r.bytes_sent = request.len();

    let mut buf = [0u8; 2048];
    let mut tokens = 0u32;
    let mut received = 0u64;
    let mut last_seq: Option<u32> = None;
    while last_seq.is_none() {
        let read = read_before(
            deadline,
            cfg.timeout,
            |t| socket.set_read_timeout(t),
            || socket.recv(&mut buf),
        )?;
        let Some(n) = read else { continue };
        let now = Instant::now();
        r.bytes_received += n;
        match datagram::decode(&buf[..n]) {
            Ok(Datagram::Tokens {
                id: got,
                seq,
                count,
                last,
                ..
            }) if got == id => {
                if r.ttft_ms.is_none() {
                    r.ttft_ms = Some(ms(now - sent));
                    r.arrival_ttft_ms = Some(ms_since(now, scheduled));
                }
                received += 1;
                r.chunks += 1;
                tokens = tokens.saturating_add(u32::from(count));
                r.output_tokens = Some(tokens);
                if last {
                    r.completion_ms = Some(ms(now - sent));
                    r.arrival_completion_ms = Some(ms_since(now, scheduled));
                    last_seq = Some(seq);
                }
            }
            Ok(Datagram::Error { id: got, message }) if got == id => {
                return Err(format!(
                    "server refused the request: {}",
                    String::from_utf8_lossy(message)
                ));
            }
            // Not ours, or not a datagram of the protocol: ignore it.
            _ => {}
        }
    }
    let expected = last_seq.map_or(0, |s| u64::from(s) + 1);
    if received < expected {
        return Err(format!(
            "lost {} of {expected} token datagrams (UDP has no retransmission)",
            expected - received
        ));
    }
    Ok(())
}

/// Runs the whole load over TCP: every request at its time, on its own
/// thread.
pub fn run(cfg: &AgentConfig) -> AgentReport {
    run_with(cfg, &LoadOptions::default())
}

/// [`run`] with the transport and request sizes of `opts`.
pub fn run_with(cfg: &AgentConfig, opts: &LoadOptions) -> AgentReport {
    let planned = plan_with(cfg, &opts.sizes);
    let transport = opts.transport;
    let cfg = Arc::new(cfg.clone());
    let results = Arc::new(Mutex::new(Vec::with_capacity(planned.len())));
    let inflight = Arc::new((Mutex::new(0usize), Condvar::new()));
    let start = Instant::now();
    let start_unix_ms = unix_ms();
    let mut handles = Vec::with_capacity(planned.len());
    let mut held_by_max_inflight = 0usize;
    for req in planned {
        let at = start + req.at;
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        {
            let (m, cv) = &*inflight;
            let mut n = m.lock().unwrap_or_else(|e| e.into_inner());
            if *n >= cfg.max_inflight.max(1) {
                held_by_max_inflight += 1;
            }
            while *n >= cfg.max_inflight.max(1) {
                n = cv.wait(n).unwrap_or_else(|e| e.into_inner());
            }
            *n += 1;
        }
        // Kept in case the thread cannot start: the request still gets
        // its record, with the reason.
        let mut unstarted = blank_result(&cfg, transport, &req, Instant::now(), start);
        let (cfg, results, inflight) = (
            Arc::clone(&cfg),
            Arc::clone(&results),
            Arc::clone(&inflight),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("agent-{}", req.id))
            .stack_size(256 * 1024)
            .spawn({
                let (results, inflight) = (Arc::clone(&results), Arc::clone(&inflight));
                move || {
                    let r = run_one_over(&cfg, transport, &req, start);
                    results.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                    let (m, cv) = &*inflight;
                    *m.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
                    cv.notify_one();
                }
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                unstarted.error = Some(format!("cannot start a request thread: {e}"));
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(unstarted);
                let (m, cv) = &*inflight;
                *m.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
                cv.notify_one();
            }
        }
    }
    for h in handles {
        let _ = h.join();
    }
    let mut requests = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    requests.sort_by_key(|r| r.id);
    let classes = Classes {
        short: AgentReport::summarise(&requests, "short"),
        long: AgentReport::summarise(&requests, "long"),
    };
    AgentReport {
        target: cfg.target.to_string(),
        tlv: match cfg.tlv {
            SocketTlv::None => "none",
            SocketTlv::Ipv4 => "ipv4",
        },
        transport: transport.name(),
        seed: cfg.seed,
        start_unix_ms,
        duration_s: start.elapsed().as_secs_f64(),
        held_by_max_inflight,
        requests,
        classes,
    }
}

/// The wall clock, ms since the Unix epoch.
fn unix_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Checks that this process may set the TLV as an IP option (opens a socket
/// and sets it, without connecting), so `--tlv ipv4` fails once, up front,
/// with the reason.
pub fn check_ip_options(features: &TokenFeatures) -> io::Result<()> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
    super::sock::set_ip_options(&s, &ipv4_option_bytes(features))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_found_by_name_in_any_case() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nx-NODE:  edge \r\nConnection: close";
        assert_eq!(header(head, "x-node"), Some("edge"));
        assert_eq!(header(head, "connection"), Some("close"));
        assert_eq!(header(head, "x-missing"), None);
        // The status line is not a header.
        assert_eq!(header(b"HTTP/1.1 200 OK", "http/1.1 200 ok"), None);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!(p.p50, Some(50.0));
        assert_eq!(p.p99, Some(99.0));
        assert_eq!(p.mean, Some(50.5));
        let one = Percentiles::of(vec![7.0]);
        assert_eq!((one.p50, one.p99), (Some(7.0), Some(7.0)));
        assert!(Percentiles::of(Vec::new()).p50.is_none());
    }

    #[test]
    fn plans_are_deterministic_and_respect_the_mix() {
        let cfg = AgentConfig {
            target: "10.0.100.1:8000".parse().unwrap(),
            requests: 200,
            arrivals: Arrivals::Poisson(100.0),
            short_fraction: 0.7,
            seed: 5,
            tlv: SocketTlv::Ipv4,
            bind: None,
            timeout: Duration::from_secs(1),
            max_inflight: 1,
        };
        let a = plan(&cfg);
        let b = plan(&cfg);
        assert_eq!(a.len(), 200);
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x.http == y.http && x.at == y.at));
        let short = a.iter().filter(|p| p.class() == "short").count();
        assert!((110..=170).contains(&short), "{short} short of 200");
        // Poisson at 100/s: 199 gaps of 10 ms on average.
        let span = a.last().unwrap().at.as_secs_f64();
        assert!((1.4..2.6).contains(&span), "{span}");
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
        let host = "Host: 10.0.100.1:8000\r\n";
        assert!(a
            .iter()
            .all(|p| String::from_utf8_lossy(&p.http).contains(host)));
        let fixed = plan(&AgentConfig {
            arrivals: Arrivals::Fixed(Duration::from_millis(3)),
            requests: 3,
            ..cfg
        });
        assert_eq!(fixed[2].at, Duration::from_millis(6));
    }

    fn base_cfg() -> AgentConfig {
        AgentConfig {
            target: "10.0.100.1:8000".parse().unwrap(),
            requests: 300,
            arrivals: Arrivals::Poisson(100.0),
            short_fraction: 0.5,
            seed: 11,
            tlv: SocketTlv::None,
            bind: None,
            timeout: Duration::from_secs(1),
            max_inflight: 1,
        }
    }

    #[test]
    fn size_ranges_parse_or_say_what_is_wrong() {
        assert_eq!(parse_size_range("64-256"), Ok((64, 256)));
        assert_eq!(parse_size_range(" 8 - 8 "), Ok((8, 8)));
        assert_eq!(parse_size_range("32"), Ok((32, 32)));
        for bad in ["", "-", "a-b", "5-", "-5", "9-3", "0-4", "1-2-3", "1.5-2"] {
            let e = parse_size_range(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        assert!(parse_size_range("9-3").unwrap_err().contains("above"));
    }

    #[test]
    fn default_sizes_keep_the_plan_byte_identical() {
        let cfg = base_cfg();
        let a = plan(&cfg);
        let b = plan_with(
            &cfg,
            &WorkloadSizes {
                short_output_tokens: Some(agent::SHORT_OUTPUT_TOKENS),
                long_output_tokens: None,
                long_prompt_words: Some(agent::LONG_PROMPT_WORDS),
                agents: None,
            },
        );
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x.http == y.http && x.at == y.at));
    }

    #[test]
    fn sizes_set_max_tokens_and_prompt_length() {
        let cfg = base_cfg();
        let sizes = WorkloadSizes {
            short_output_tokens: Some(8..=16),
            long_output_tokens: Some(100..=200),
            long_prompt_words: Some(40..=60),
            agents: None,
        };
        let p = plan_with(&cfg, &sizes);
        let default = plan(&cfg);
        let (mut short, mut long) = (0, 0);
        for r in &p {
            let max = r.max_tokens.unwrap();
            if r.class() == "short" {
                short += 1;
                assert!((8..=16).contains(&max), "short max_tokens {max}");
            } else {
                long += 1;
                assert!((100..=200).contains(&max), "long max_tokens {max}");
                assert!(
                    r.http.len() < 1500,
                    "{} bytes for 40-60 words",
                    r.http.len()
                );
            }
        }
        assert!(short > 100 && long > 100, "{short} short, {long} long");
        let longest_default = default
            .iter()
            .filter(|r| r.class() == "long")
            .map(|r| r.http.len())
            .max()
            .unwrap();
        assert!(longest_default > 1500, "{longest_default}");
    }

    #[test]
    fn agent_calls_share_their_persona_prefix_on_the_wire() {
        let cfg = AgentConfig {
            requests: 600,
            ..base_cfg()
        };
        let sizes = WorkloadSizes {
            agents: Some(AgentLoad {
                fraction: 0.4,
                mix: AgentMix::default(),
            }),
            ..WorkloadSizes::default()
        };
        let p = plan_with(&cfg, &sizes);
        assert_eq!(
            p.iter().map(|r| &r.http).collect::<Vec<_>>(),
            plan_with(&cfg, &sizes)
                .iter()
                .map(|r| &r.http)
                .collect::<Vec<_>>(),
            "same seed, same requests"
        );
        let calls: Vec<&PlannedRequest> =
            p.iter().filter(|r| r.kind == PromptKind::Agent).collect();
        let share = calls.len() as f64 / p.len() as f64;
        assert!((0.3..0.5).contains(&share), "{share} agent calls");
        let mut prefixes = std::collections::HashMap::new();
        for r in &calls {
            assert_eq!(r.class(), "long");
            let prefix = r.features.prefix.expect("agent calls name their prefix");
            assert!(prefix.tokens >= 1500, "{} prefix tokens", prefix.tokens);
            assert!(r.features.prompt_tokens > prefix.tokens);
            // The TLV on the socket carries layout version 2.
            let opts = r.ip_options();
            assert_eq!(opts[0], 0x9E);
            assert_eq!(tokenfeat::encode(&r.features).version(), 2);
            *prefixes.entry(prefix).or_insert(0) += 1;
        }
        // 20 personas, each used again and again.
        assert!(
            prefixes.len() <= 20 && prefixes.len() >= 15,
            "{}",
            prefixes.len()
        );
        assert!(prefixes.values().any(|&n| n >= 5));
        // Short and long requests go on as before between the calls.
        assert!(p.iter().any(|r| r.kind == PromptKind::Control));
    }

    #[test]
    fn data_events_count_their_words_as_tokens() {
        let e = br#"data: {"choices":[{"index":0,"delta":{"content":" a bb ccc d"}}]}"#;
        assert_eq!(event_tokens(e), 4);
        assert_eq!(event_tokens(b"data: not json"), 0);
        assert_eq!(event_tokens(b"data: {}"), 0);
    }

    fn result(
        class: &'static str,
        scheduled_ms: f64,
        done_after: Option<f64>,
        tokens: u32,
    ) -> RequestResult {
        let cfg = base_cfg();
        let req = &plan(&AgentConfig {
            requests: 1,
            ..cfg.clone()
        })[0];
        let now = Instant::now();
        let mut r = blank_result(&cfg, Transport::Tcp, req, now, now);
        r.class = class;
        r.scheduled_ms = scheduled_ms;
        r.output_tokens = Some(tokens);
        match done_after {
            Some(c) => {
                r.arrival_ttft_ms = Some(c / 2.0);
                r.arrival_completion_ms = Some(c);
            }
            None => r.error = Some("timed out".into()),
        }
        r
    }

    #[test]
    fn class_summary_counts_tokens_and_throughput_of_completed_requests() {
        let rs = vec![
            result("short", 1000.0, Some(500.0), 40),
            result("short", 1200.0, Some(1800.0), 60),
            result("short", 1100.0, None, 1000),
            result("long", 0.0, Some(100.0), 7),
        ];
        let s = AgentReport::summarise(&rs, "short");
        assert_eq!((s.count, s.ok, s.errors), (3, 2, 1));
        assert_eq!(s.output_tokens, 100);
        // First arrival 1000 ms, last completion 1200 + 1800 = 3000 ms.
        let t = s.throughput_tokens_per_s.unwrap();
        assert!((t - 50.0).abs() < 1e-9, "{t}");
        assert_eq!(s.arrival_completion_ms.p99, Some(1800.0));
        assert_eq!(s.arrival_ttft_ms.p50, Some(250.0));
        let none = AgentReport::summarise(&[result("long", 0.0, None, 3)], "long");
        assert_eq!(none.throughput_tokens_per_s, None);
        assert_eq!(none.output_tokens, 0);
    }

    #[test]
    fn udp_refuses_requests_longer_than_one_datagram_without_sending() {
        // The target would answer nothing: the error comes first.
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let cfg = AgentConfig {
            target: socket.local_addr().unwrap(),
            requests: 40,
            short_fraction: 0.0,
            ..base_cfg()
        };
        let req = plan(&cfg).into_iter().next().unwrap();
        let r = run_one_over(&cfg, Transport::Udp, &req, Instant::now());
        assert!(
            r.error.as_deref().unwrap().contains("does not fit"),
            "{:?}",
            r.error
        );
        socket.set_nonblocking(true).unwrap();
        assert!(socket.recv(&mut [0u8; 16]).is_err(), "a datagram was sent");
    }
}
