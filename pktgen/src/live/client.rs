//! `pktgen agent`: an open-loop load generator over real TCP sockets.
//!
//! Requests come from the agent workload's generators (short control
//! commands and long generation prompts, [`agent::control_request`] and
//! [`agent::long_request`]), arrive as a Poisson process (or at a fixed
//! interval), and each runs on its own thread at its arrival time, at most
//! `max_inflight` at once. With `--tlv ipv4` the socket carries the token
//! feature TLV (IPv4 option 0x9E) of the request's features on every packet.
//!
//! TTFT is measured from the moment the last request byte was written to
//! the first response body byte of a `data:` event; completion runs to
//! `data: [DONE]` (or EOF when the server never says it).

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use classifier::token_feature_tlv::{emit_ipv4_option_area, TokenFeatureTlvRepr};
use rand::Rng;
use serde::Serialize;
use tokenfeat::TokenFeatures;

use crate::workload::agent::{self, PromptKind};
use crate::workload::seeded_rng;
use crate::workload::text::LongTask;

/// Token feature TLV carrier for `pktgen agent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SocketTlv {
    /// No TLV.
    #[default]
    None,
    /// IPv4 option 0x9E set on the socket (IP_OPTIONS).
    Ipv4,
}

/// How requests arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrivals {
    /// Poisson, this many requests per second.
    Poisson(f64),
    /// One every this long.
    Fixed(Duration),
}

/// What `pktgen agent` does.
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
            PromptKind::Long(_) => "long",
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
    let host = cfg.target.to_string();
    let mut rng = seeded_rng(cfg.seed, 0x6c69_7665);
    let mut at = Duration::ZERO;
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
            let (kind, http) = if rng.gen_bool(cfg.short_fraction.clamp(0.0, 1.0)) {
                agent::control_request(&mut rng, &host)
            } else {
                agent::long_request(&mut rng, &host, tokenfeat::MAX_REQUEST_LEN as u64)
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
    /// What the agent asked for: `control`, `code`, `reasoning`,
    /// `summarisation`.
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
    /// Request bytes written.
    pub bytes_sent: usize,
    /// Response bytes read (head included).
    pub bytes_received: usize,
    /// `data:` events received (`[DONE]` excluded).
    pub chunks: usize,
    /// HTTP status code.
    pub status: Option<u16>,
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
    /// Seed.
    pub seed: u64,
    /// Wall time of the run, seconds.
    pub duration_s: f64,
    /// Every request, by id.
    pub requests: Vec<RequestResult>,
    /// Per-class summaries.
    pub classes: Classes,
}

impl AgentReport {
    fn summarise(requests: &[RequestResult], class: &str) -> ClassSummary {
        let of: Vec<&RequestResult> = requests.iter().filter(|r| r.class == class).collect();
        let ok: Vec<&&RequestResult> = of.iter().filter(|r| r.ok()).collect();
        ClassSummary {
            count: of.len(),
            ok: ok.len(),
            errors: of.len() - ok.len(),
            ttft_ms: Percentiles::of(ok.iter().filter_map(|r| r.ttft_ms).collect()),
            completion_ms: Percentiles::of(ok.iter().filter_map(|r| r.completion_ms).collect()),
        }
    }

    /// A few lines for people.
    pub fn render(&self) -> String {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let mut s = format!(
            "agent → {}: {} requests in {:.2} s, TLV {}\n",
            self.target,
            self.requests.len(),
            self.duration_s,
            self.tlv
        );
        for (name, c) in [("short", &self.classes.short), ("long", &self.classes.long)] {
            s.push_str(&format!(
                "  {name:5} {:4} sent, {:4} ok, {:3} errors; TTFT ms p50 {} p99 {} mean {}; completion ms p50 {} p99 {}\n",
                c.count,
                c.ok,
                c.errors,
                f(c.ttft_ms.p50),
                f(c.ttft_ms.p99),
                f(c.ttft_ms.mean),
                f(c.completion_ms.p50),
                f(c.completion_ms.p99),
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

/// Runs one request; `start` is the run's start.
pub fn run_one(cfg: &AgentConfig, req: &PlannedRequest, start: Instant) -> RequestResult {
    let began = Instant::now();
    let mut r = RequestResult {
        id: req.id,
        class: req.class(),
        prompt: match req.kind {
            PromptKind::Control => "control",
            PromptKind::Long(t) => long_task_name(t),
        },
        task: req.features.task.name(),
        prompt_tokens: req.features.prompt_tokens,
        expected_output_tokens: req.features.output_tokens,
        max_tokens: req.max_tokens,
        tlv: cfg.tlv == SocketTlv::Ipv4,
        feature_id: format!("{:016x}", tokenfeat::encode(&req.features).0),
        scheduled_ms: ms(req.at),
        start_ms: ms(began - start),
        connect_ms: None,
        ttft_ms: None,
        completion_ms: None,
        bytes_sent: 0,
        bytes_received: 0,
        chunks: 0,
        status: None,
        local: None,
        error: None,
    };
    if let Err(e) = exchange(cfg, req, began, &mut r) {
        r.error = Some(e);
    }
    r
}

fn exchange(
    cfg: &AgentConfig,
    req: &PlannedRequest,
    began: Instant,
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
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "timed out after {:.1} s",
                cfg.timeout.as_secs_f64()
            ));
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(format!(
                    "timed out after {:.1} s",
                    cfg.timeout.as_secs_f64()
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("receive: {e}")),
        };
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
            }
            // Count complete events since the last scan.
            while let Some(i) = find(&buf[scanned..], b"\n\n") {
                let event = &buf[scanned..scanned + i];
                if event.starts_with(b"data: [DONE]") {
                    done = true;
                } else if event.starts_with(b"data:") {
                    r.chunks += 1;
                }
                scanned += i + 2;
            }
            if done {
                r.completion_ms = Some(ms(now - sent));
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
        r.completion_ms = Some(ms(sent.elapsed()));
        return Err("connection closed before data: [DONE]".into());
    }
    Ok(())
}

/// Runs the whole load: every request at its time, on its own thread.
pub fn run(cfg: &AgentConfig) -> AgentReport {
    let planned = plan(cfg);
    let cfg = Arc::new(cfg.clone());
    let results = Arc::new(Mutex::new(Vec::with_capacity(planned.len())));
    let inflight = Arc::new((Mutex::new(0usize), Condvar::new()));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(planned.len());
    for req in planned {
        let at = start + req.at;
        let now = Instant::now();
        if at > now {
            std::thread::sleep(at - now);
        }
        {
            let (m, cv) = &*inflight;
            let mut n = m.lock().unwrap_or_else(|e| e.into_inner());
            while *n >= cfg.max_inflight.max(1) {
                n = cv.wait(n).unwrap_or_else(|e| e.into_inner());
            }
            *n += 1;
        }
        let (cfg, results, inflight) = (
            Arc::clone(&cfg),
            Arc::clone(&results),
            Arc::clone(&inflight),
        );
        let h = std::thread::Builder::new()
            .name(format!("agent-{}", req.id))
            .stack_size(256 * 1024)
            .spawn(move || {
                let r = run_one(&cfg, &req, start);
                results.lock().unwrap_or_else(|e| e.into_inner()).push(r);
                let (m, cv) = &*inflight;
                *m.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
                cv.notify_one();
            });
        match h {
            Ok(h) => handles.push(h),
            Err(e) => panic!("cannot start a request thread: {e}"),
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
        seed: cfg.seed,
        duration_s: start.elapsed().as_secs_f64(),
        requests,
        classes,
    }
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
}
