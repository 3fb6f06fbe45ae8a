//! `emulator serve`: an inference-node emulator over real TCP sockets that
//! the official OpenAI SDK and curl talk to as they would to an
//! OpenAI-compatible server.
//!
//! Every connection gets a thread (at most [`MAX_CONNECTIONS`]; more get
//! `503`). Requests are read by [`super::http`]: HTTP/1.1 keep-alive and
//! HTTP/1.0, `Content-Length` or chunked bodies, `Expect: 100-continue`.
//! `POST /v1/chat/completions` (and `/v1/completions`) then:
//!
//! 1. sleep the one-way path delay (`--delay-ms` ± `--jitter-ms`);
//! 2. wait for one of `--concurrency` batch slots (FIFO queue,
//!    Mutex + Condvar); the slot is held until the response is finished;
//! 3. prefill: sleep `--base-ttft-ms` + prompt tokens not in the prefix
//!    cache / `--prefill-tps`;
//! 4. sleep the path delay again (the way back), then decode at
//!    `--decode-tps`: with `"stream": true`, `text/event-stream` with one
//!    `chat.completion.chunk` event per 4 output tokens and `data: [DONE]`
//!    (chunked on a kept connection, else ended by the close); with
//!    `"stream": false`, one `chat.completion` JSON with `usage` when the
//!    last token is decoded.
//!
//! Every answer names the node in `X-Node: NAME` (`--name`), so an agent
//! behind the appliance can tell which instance answered.
//! `GET /v1/models` lists one model, `--name`. Errors are OpenAI-shaped
//! (`{"error": {"message", "type", "param", "code"}}`) with their status.
//! Each request is recorded on its own in the stats, with its `peer`.
//!
//! `GET /metrics` is vLLM's Prometheus exposition ([`crate::vllm_metrics`]):
//! queue, running, KV-cache use, the prefix cache's queries and hits, and
//! the TTFT histogram with vLLM's buckets. `GET /v1/models` also gives
//! `max_model_len` (`--max-model-len`), as vLLM does.
//!
//! A prefix cache ([`crate::prefix_cache`], vLLM's 16-token chained
//! blocks, LRU-bounded by `--kv-tokens`) is looked up when a request gets
//! its slot: its cached leading tokens skip prefill.
//!
//! Prompt tokens are `tokenfeat`'s count of the request's prompt text;
//! output tokens are `max_tokens`, or tokenfeat's default for the task when
//! the request has none. `GET /state` answers `{name, queue_len, active,
//! served, concurrency, gpu_util, kv_util, est_ttft_ms}` at once.
//!
//! With `--udp ADDR` the node also answers the datagram protocol of
//! [`super::datagram`] (docs/wire-format.md §8) on that address, besides
//! the TCP listener: the same delay, batch-slot queue and prefill, then one
//! token datagram per 4 output tokens at `--decode-tps`, the last flagged.
//! A request id already in service for the same peer is ignored (counted
//! as a duplicate); datagrams that do not decode are counted and ignored;
//! a request longer than one datagram or not OpenAI JSON gets an error
//! datagram.
//!
//! Load, as `/state` and NODE_STATE reports give it ([`Node::load`]):
//! GPU utilisation = busy batch slots / `--concurrency`; KV-cache
//! utilisation = prompt + output tokens of the requests holding a slot /
//! `--kv-tokens`, at most 1; and the estimated TTFT of a new short request
//! (see [`Node::est_ttft_ms`]).

use std::collections::{HashSet, VecDeque};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::datagram::{self, Datagram, DecodeError};
use super::http;
use crate::prefix_cache::PrefixCache;
use crate::vllm_metrics::{self, TtftHistogram, VllmSnapshot};
use llm_requests::seeded_rng;
use llm_requests::text::WORDS;
use llm_requests::TOKENS_PER_PACKET;

/// Largest request body accepted, after transfer decoding: an agent's
/// request with a long history and its tool definitions fits.
const MAX_REQUEST: usize = 4 << 20;

/// Connections served at once; more get `503 Service Unavailable`.
const MAX_CONNECTIONS: usize = 1024;

/// How long a connection may stay silent, within a request or between
/// keep-alive requests, and how long a write may block.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Prompt tokens of the typical short request the TTFT estimate is for: a
/// control command ("turn on the light") is a handful of tokens; 16 leaves
/// room for a system prompt.
pub const TYPICAL_SHORT_PROMPT_TOKENS: u32 = 16;

/// Output tokens assumed for the slot hold time before any request has
/// finished (then the observed mean takes over).
const ASSUMED_OUTPUT_TOKENS: u32 = 128;

/// Default `--kv-tokens`: 16 sequences of a 4096-token context.
pub const DEFAULT_KV_TOKENS: u64 = 16 * 4096;

/// Default `--max-model-len`: the longest context `/v1/models` announces.
pub const DEFAULT_MAX_MODEL_LEN: u32 = 32_768;

/// RNG stream offset of UDP requests, so that their draws never repeat a
/// TCP request's.
const UDP_RNG_STREAM: u64 = 1 << 40;

/// What `emulator serve` emulates.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on (TCP).
    pub listen: SocketAddr,
    /// Also serve the datagram protocol on this UDP address.
    pub udp: Option<SocketAddr>,
    /// KV-cache capacity in tokens, the denominator of KV utilisation and
    /// the bound of the prefix cache.
    pub kv_tokens: u64,
    /// The longest context, tokens, as `GET /v1/models` gives it.
    pub max_model_len: u32,
    /// Node name, reported in `/state` and the stats.
    pub name: String,
    /// Prefill throughput, prompt tokens per second.
    pub prefill_tps: f64,
    /// Decode throughput per stream, output tokens per second.
    pub decode_tps: f64,
    /// Fixed part of the time to first token, milliseconds.
    pub base_ttft_ms: f64,
    /// Batch slots: requests served at once.
    pub concurrency: usize,
    /// Emulated one-way path delay, milliseconds.
    pub delay_ms: f64,
    /// Uniform jitter around the delay (±), milliseconds.
    pub jitter_ms: f64,
    /// Stop after this long (default: until SIGINT/SIGTERM).
    pub duration: Option<Duration>,
    /// Where to write the stats at exit.
    pub stats_json: Option<PathBuf>,
    /// Seed for jitter and the response text.
    pub seed: u64,
    /// Optional NODE_STATE reporting to the appliance.
    pub report: Option<super::report::ReportConfig>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            udp: None,
            kv_tokens: DEFAULT_KV_TOKENS,
            max_model_len: DEFAULT_MAX_MODEL_LEN,
            name: "edge".into(),
            prefill_tps: 5000.0,
            decode_tps: 50.0,
            base_ttft_ms: 5.0,
            concurrency: 8,
            delay_ms: 0.0,
            jitter_ms: 0.0,
            duration: None,
            stats_json: None,
            seed: 1,
            report: None,
        }
    }
}

impl ServeConfig {
    /// Checks the numbers.
    pub fn validate(&self) -> Result<(), String> {
        let pos = |v: f64, n: &str| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(format!("{n} {v} must be a positive number"))
            }
        };
        let nonneg = |v: f64, n: &str| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(format!("{n} {v} must be zero or more"))
            }
        };
        pos(self.prefill_tps, "--prefill-tps")?;
        pos(self.decode_tps, "--decode-tps")?;
        nonneg(self.base_ttft_ms, "--base-ttft-ms")?;
        nonneg(self.delay_ms, "--delay-ms")?;
        nonneg(self.jitter_ms, "--jitter-ms")?;
        if self.concurrency == 0 {
            return Err("--concurrency must be at least 1".into());
        }
        if self.kv_tokens == 0 {
            return Err("--kv-tokens must be at least 1".into());
        }
        Ok(())
    }

    /// The modelled time to first token (without queueing or path delay)
    /// for `prompt_tokens`.
    pub fn model_ttft(&self, prompt_tokens: u32) -> Duration {
        Duration::from_secs_f64(
            self.base_ttft_ms / 1000.0 + f64::from(prompt_tokens) / self.prefill_tps,
        )
    }
}

/// One served (or failed) request, as written to `--stats-json`.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRecord {
    /// Request number in arrival order over both transports, from 0.
    pub id: u64,
    /// `tcp` or `udp`.
    pub transport: &'static str,
    /// The request id the client chose (UDP only).
    pub client_id: Option<u64>,
    /// The client's address.
    pub peer: String,
    /// Milliseconds from server start to the request being read.
    pub arrived_ms: f64,
    /// Place in the wait queue on arrival: 0 when a batch slot was free,
    /// n when n − 1 requests were already waiting.
    pub queue_position: usize,
    /// Prompt tokens counted.
    pub prompt_tokens: u32,
    /// Of those, found in the prefix cache (prefill skipped them).
    pub cached_tokens: u64,
    /// Output tokens streamed.
    pub output_tokens: u32,
    /// Task type tokenfeat saw.
    pub task: String,
    /// Path delay applied each way, milliseconds.
    pub delay_ms: f64,
    /// Time waiting for a batch slot, milliseconds.
    pub queue_wait_ms: f64,
    /// Prefill time (base + uncached prompt tokens / prefill rate),
    /// milliseconds.
    pub prefill_ms: f64,
    /// From the request read to the first response byte, milliseconds.
    pub ttft_ms: f64,
    /// From the request read to the last byte, milliseconds.
    pub total_ms: f64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// What `--stats-json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct ServeStats {
    /// Node name.
    pub name: String,
    /// Listening address.
    pub listen: String,
    /// UDP listening address, when serving UDP.
    pub udp_listen: Option<String>,
    /// KV-cache capacity, tokens.
    pub kv_tokens: u64,
    /// Batch slots.
    pub concurrency: usize,
    /// Prefill tokens/s.
    pub prefill_tps: f64,
    /// Decode tokens/s per stream.
    pub decode_tps: f64,
    /// Base TTFT, ms.
    pub base_ttft_ms: f64,
    /// One-way delay, ms.
    pub delay_ms: f64,
    /// Jitter, ms.
    pub jitter_ms: f64,
    /// When the server started (it reports NODE_STATE from then on), ms
    /// since the Unix epoch.
    pub started_unix_ms: f64,
    /// Seconds the server ran.
    pub uptime_s: f64,
    /// Requests completed without error.
    pub served: u64,
    /// Requests that failed (bad request, client gone).
    pub errors: u64,
    /// Connections refused with 503 (too many open).
    pub refused: u64,
    /// `GET /state` requests answered.
    pub state_queries: u64,
    /// Longest the wait queue got.
    pub max_queue_len: usize,
    /// Prompt tokens looked up in the prefix cache, as
    /// `vllm:prefix_cache_queries` counts them.
    pub prefix_cache_queries: u64,
    /// Of those, found cached (`vllm:prefix_cache_hits`).
    pub prefix_cache_hits: u64,
    /// UDP request datagrams received (duplicates, oversized and
    /// malformed ones included).
    pub udp_datagrams: u64,
    /// UDP datagrams that did not decode, or were not requests.
    pub udp_malformed: u64,
    /// UDP requests longer than one datagram (answered with an error).
    pub udp_oversize: u64,
    /// UDP requests ignored because the same peer's id was in service.
    pub udp_duplicates: u64,
    /// Every inference request, in completion order.
    pub requests: Vec<ServiceRecord>,
}

#[derive(Debug)]
struct Sched {
    /// The prefix cache, looked up as a request gets its slot.
    prefix: PrefixCache,
    /// Times to first token at the node, for `/metrics`.
    ttft: TtftHistogram,
    active: usize,
    queue: VecDeque<u64>,
    max_queue: usize,
    /// Prompt + output tokens of the requests holding a slot.
    kv_held: u64,
    /// Slot hold times of finished requests, for the wait estimate.
    hold_total: Duration,
    holds: u64,
}

/// The node's load at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NodeLoad {
    /// Requests waiting for a slot.
    pub queue_len: usize,
    /// Busy slots.
    pub active: usize,
    /// Requests served.
    pub served: u64,
    /// Busy slots / concurrency.
    pub gpu_util: f64,
    /// KV tokens held / `--kv-tokens`, at most 1.
    pub kv_util: f64,
    /// [`Node::est_ttft_ms`].
    pub est_ttft_ms: f64,
}

#[derive(Debug, Default)]
struct UdpCounters {
    datagrams: AtomicU64,
    malformed: AtomicU64,
    oversize: AtomicU64,
    duplicates: AtomicU64,
}

/// The server's shared state.
#[derive(Debug)]
pub struct Node {
    cfg: ServeConfig,
    start: Instant,
    start_unix_ms: f64,
    sched: Mutex<Sched>,
    cv: Condvar,
    served: AtomicU64,
    errors: AtomicU64,
    /// Connections answered 503 because [`MAX_CONNECTIONS`] were open.
    refused: AtomicU64,
    state_queries: AtomicU64,
    open: AtomicUsize,
    records: Mutex<Vec<ServiceRecord>>,
    next_id: AtomicU64,
    udp: UdpCounters,
    /// (peer, client id) of UDP requests in service.
    udp_in_service: Mutex<HashSet<(SocketAddr, u64)>>,
}

/// `(queue_len, active, served)` right now.
pub type Snapshot = (usize, usize, u64);

impl Node {
    fn new(cfg: ServeConfig) -> Self {
        let kv_tokens = cfg.kv_tokens;
        Node {
            cfg,
            start: Instant::now(),
            start_unix_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            sched: Mutex::new(Sched {
                prefix: PrefixCache::new(kv_tokens),
                ttft: TtftHistogram::default(),
                active: 0,
                queue: VecDeque::new(),
                max_queue: 0,
                kv_held: 0,
                hold_total: Duration::ZERO,
                holds: 0,
            }),
            cv: Condvar::new(),
            served: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            state_queries: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            records: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            udp: UdpCounters::default(),
            udp_in_service: Mutex::new(HashSet::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sched> {
        self.sched.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue length, busy slots and requests served.
    pub fn snapshot(&self) -> Snapshot {
        let s = self.lock();
        (s.queue.len(), s.active, self.served.load(Ordering::Relaxed))
    }

    /// Utilisations, queue and TTFT estimate, from one consistent look.
    pub fn load(&self) -> NodeLoad {
        let s = self.lock();
        let concurrency = self.cfg.concurrency.max(1);
        NodeLoad {
            queue_len: s.queue.len(),
            active: s.active,
            served: self.served.load(Ordering::Relaxed),
            gpu_util: s.active as f64 / concurrency as f64,
            kv_util: (s.kv_held as f64 / self.cfg.kv_tokens.max(1) as f64).min(1.0),
            est_ttft_ms: self.est_ttft_locked(&s),
        }
    }

    /// The estimated TTFT, in milliseconds, of a new short request
    /// arriving now (path delay excluded: the appliance measures paths):
    ///
    /// `base + TYPICAL_SHORT_PROMPT_TOKENS / prefill_tps
    ///  + max(0, queue_len + active + 1 − concurrency) × mean_hold / concurrency`
    ///
    /// The last term is the wait for a slot: the request needs that many
    /// slots to free up before it, and with `concurrency` slots busy one
    /// frees up every `mean_hold / concurrency` on average. `mean_hold` is
    /// the mean slot hold time (queue exit to last token) of the requests
    /// finished so far; before the first, that of a typical short prompt
    /// with [`ASSUMED_OUTPUT_TOKENS`] output tokens.
    pub fn est_ttft_ms(&self) -> f64 {
        let s = self.lock();
        self.est_ttft_locked(&s)
    }

    fn est_ttft_locked(&self, s: &Sched) -> f64 {
        let concurrency = self.cfg.concurrency.max(1);
        let prefill = ms(self.cfg.model_ttft(TYPICAL_SHORT_PROMPT_TOKENS));
        let mean_hold_ms = if s.holds > 0 {
            ms(s.hold_total) / s.holds as f64
        } else {
            prefill + f64::from(ASSUMED_OUTPUT_TOKENS) / self.cfg.decode_tps * 1000.0
        };
        let ahead = (s.queue.len() + s.active + 1).saturating_sub(concurrency);
        prefill + ahead as f64 * mean_hold_ms / concurrency as f64
    }

    /// Waits for a batch slot, FIFO, and holds `kv_tokens` of KV cache
    /// while it has it. Returns the request's place in the wait queue on
    /// arrival: 0 when a slot was free, n when it was n-th.
    fn acquire(&self, ticket: u64, kv_tokens: u64) -> usize {
        let mut s = self.lock();
        if s.queue.is_empty() && s.active < self.cfg.concurrency {
            s.active += 1;
            s.kv_held += kv_tokens;
            return 0;
        }
        let ahead = s.queue.len();
        s.queue.push_back(ticket);
        s.max_queue = s.max_queue.max(s.queue.len());
        while !(s.queue.front() == Some(&ticket) && s.active < self.cfg.concurrency) {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.queue.pop_front();
        s.active += 1;
        s.kv_held += kv_tokens;
        drop(s);
        // The next in line may fit too.
        self.cv.notify_all();
        ahead + 1
    }

    /// Looks a request that just got its slot up in the prefix cache and
    /// caches its blocks; returns its prompt tokens found cached.
    fn admit_prefix(&self, prompt_ids: &[u32]) -> u64 {
        self.lock().prefix.admit(prompt_ids)
    }

    /// Records a time to first token at the node for `/metrics`.
    fn observe_ttft(&self, ttft: Duration) {
        self.lock().ttft.observe(ttft.as_secs_f64());
    }

    /// What `GET /metrics` shows now.
    pub fn vllm_snapshot(&self) -> VllmSnapshot {
        let s = self.lock();
        VllmSnapshot {
            model_name: self.cfg.name.clone(),
            running: s.active,
            waiting: s.queue.len(),
            kv_cache_usage: (s.kv_held as f64 / self.cfg.kv_tokens.max(1) as f64).min(1.0),
            prefix_cache_queries: s.prefix.queries,
            prefix_cache_hits: s.prefix.hits,
            num_gpu_blocks: s.prefix.capacity_blocks() as u64,
            ttft: s.ttft.clone(),
        }
    }

    /// Frees the slot and KV cache [`Node::acquire`] took, `held` after.
    fn release(&self, kv_tokens: u64, held: Duration) {
        let mut s = self.lock();
        s.active = s.active.saturating_sub(1);
        s.kv_held = s.kv_held.saturating_sub(kv_tokens);
        s.hold_total += held;
        s.holds += 1;
        drop(s);
        self.cv.notify_all();
    }

    fn stats(&self) -> ServeStats {
        let (max_queue, prefix_cache_queries, prefix_cache_hits) = {
            let s = self.lock();
            (s.max_queue, s.prefix.queries, s.prefix.hits)
        };
        let mut requests = self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        requests.sort_by_key(|r| r.id);
        ServeStats {
            name: self.cfg.name.clone(),
            listen: self.cfg.listen.to_string(),
            udp_listen: self.cfg.udp.map(|a| a.to_string()),
            kv_tokens: self.cfg.kv_tokens,
            concurrency: self.cfg.concurrency,
            prefill_tps: self.cfg.prefill_tps,
            decode_tps: self.cfg.decode_tps,
            base_ttft_ms: self.cfg.base_ttft_ms,
            delay_ms: self.cfg.delay_ms,
            jitter_ms: self.cfg.jitter_ms,
            started_unix_ms: self.start_unix_ms,
            uptime_s: self.start.elapsed().as_secs_f64(),
            served: self.served.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            state_queries: self.state_queries.load(Ordering::Relaxed),
            max_queue_len: max_queue,
            prefix_cache_queries,
            prefix_cache_hits,
            udp_datagrams: self.udp.datagrams.load(Ordering::Relaxed),
            udp_malformed: self.udp.malformed.load(Ordering::Relaxed),
            udp_oversize: self.udp.oversize.load(Ordering::Relaxed),
            udp_duplicates: self.udp.duplicates.load(Ordering::Relaxed),
            requests,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// A new, empty record of a request read at `arrived`.
fn new_record(
    node: &Node,
    id: u64,
    transport: &'static str,
    peer: SocketAddr,
    arrived: Instant,
) -> ServiceRecord {
    ServiceRecord {
        id,
        transport,
        client_id: None,
        peer: peer.to_string(),
        arrived_ms: ms(arrived - node.start),
        queue_position: 0,
        prompt_tokens: 0,
        cached_tokens: 0,
        output_tokens: 0,
        task: String::new(),
        delay_ms: 0.0,
        queue_wait_ms: 0.0,
        prefill_ms: 0.0,
        ttft_ms: 0.0,
        total_ms: 0.0,
        error: None,
    }
}

/// Counts and stores a finished request.
fn finish(node: &Node, mut record: ServiceRecord, arrived: Instant, err: Option<String>) {
    record.total_ms = ms(arrived.elapsed());
    if err.is_some() {
        node.errors.fetch_add(1, Ordering::Relaxed);
    } else {
        node.served.fetch_add(1, Ordering::Relaxed);
    }
    record.error = err;
    node.records
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(record);
}

/// What a parsed request asks of the model.
struct Job {
    features: tokenfeat::TokenFeatures,
    /// The prompt's token ids, for the prefix cache.
    prompt_ids: Vec<u32>,
}

/// The `tools` array of a JSON request body, as sent, if it has one: the
/// chat template puts tool definitions in the prompt ahead of the
/// conversation, so they belong to the cached prefix.
fn tools_json(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get("tools")
        .filter(|t| !t.is_null())
        .map(|t| t.to_string())
}

impl Job {
    /// The job of `parsed`, whose body had `tools` (see [`tools_json`]).
    fn of(parsed: &tokenfeat::ParsedRequest, tools: Option<&str>) -> Job {
        let mut features = parsed.features(None);
        features.output_tokens = parsed
            .max_tokens
            .unwrap_or_else(|| {
                tokenfeat::default_output_tokens(features.task, features.prompt_tokens)
            })
            .max(1);
        Job {
            features,
            prompt_ids: tokenfeat::token_ids(&cache_text(parsed, tools)),
        }
    }
}

/// What the prefix cache keys on: the tools, then the messages, each once.
/// `prompt_text` counts the tools too, after the messages (tokenfeat's
/// order, for counting); they are taken off there, or a request would be
/// looked up with its tool definitions twice, the second copy after the
/// conversation where it can never be a cached prefix.
fn cache_text(parsed: &tokenfeat::ParsedRequest, tools: Option<&str>) -> String {
    match tools {
        Some(t) => {
            let messages = parsed
                .prompt_text
                .strip_suffix(t)
                .map_or(parsed.prompt_text.as_str(), |m| {
                    m.strip_suffix('\n').unwrap_or(m)
                });
            format!("{t}\n{messages}")
        }
        None => parsed.prompt_text.clone(),
    }
}

/// Runs `job` through the model: the way in, a batch slot, prefill, the way
/// back, then `make_chunks`' chunks sent with `send` at the decode rate.
/// The error is the client's, when it went away.
fn serve_job(
    node: &Node,
    job: &Job,
    record: &mut ServiceRecord,
    arrived: Instant,
    mut rng: ChaCha8Rng,
    make_chunks: impl FnOnce(&mut ChaCha8Rng, &tokenfeat::TokenFeatures) -> Vec<Vec<u8>>,
    mut send: impl FnMut(&[u8]) -> io::Result<()>,
) -> Option<String> {
    let cfg = &node.cfg;
    let f = &job.features;
    record.prompt_tokens = f.prompt_tokens;
    record.output_tokens = f.output_tokens;
    record.task = f.task.name().to_string();
    let delay = if cfg.jitter_ms > 0.0 {
        (cfg.delay_ms + rng.gen_range(-cfg.jitter_ms..=cfg.jitter_ms)).max(0.0)
    } else {
        cfg.delay_ms
    };
    record.delay_ms = delay;
    let delay = Duration::from_secs_f64(delay / 1000.0);

    // The request's way in.
    std::thread::sleep(delay);
    let queued = Instant::now();
    let kv_tokens = u64::from(f.prompt_tokens) + u64::from(f.output_tokens);
    record.queue_position = node.acquire(record.id, kv_tokens);
    let started = Instant::now();
    record.queue_wait_ms = ms(started - queued);
    record.cached_tokens = node.admit_prefix(&job.prompt_ids);
    let uncached = u64::from(f.prompt_tokens).saturating_sub(record.cached_tokens);
    let prefill = cfg.model_ttft(u32::try_from(uncached).unwrap_or(u32::MAX));
    record.prefill_ms = ms(prefill);
    // vLLM's TTFT runs from the request's arrival at the server to its
    // first token, so the emulated path delays are not in it.
    node.observe_ttft(started + prefill - queued);
    // Prefill, then the answer's way out.
    sleep_until(started + prefill + delay);

    let chunks = make_chunks(&mut rng, f);
    let interval = Duration::from_secs_f64(f64::from(TOKENS_PER_PACKET) / cfg.decode_tps);
    let t0 = Instant::now();
    record.ttft_ms = ms(t0 - arrived);
    let mut err = None;
    for (i, chunk) in chunks.iter().enumerate() {
        sleep_until(t0 + interval * u32::try_from(i).unwrap_or(u32::MAX));
        if let Err(e) = send(chunk) {
            err = Some(format!("client gone: {e}"));
            break;
        }
    }
    node.release(kv_tokens, started.elapsed());
    err
}

/// How an answer is framed on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `Content-Length` (whole answers) or `Transfer-Encoding: chunked`
    /// (streams): the connection can carry the next request.
    KeepAlive,
    /// The answer ends when the connection closes (HTTP/1.0 streams, and
    /// whatever the client asked to close).
    Close,
}

/// What a completion request asked for, beyond the model's work.
struct Answer {
    /// `/chat/completions` (messages) rather than `/completions` (prompt).
    chat: bool,
    stream: bool,
    model: String,
    /// `--name`, for `X-Node`.
    node: String,
    created: u64,
    /// The request's `max_tokens`, to tell `length` from `stop`.
    max_tokens: Option<u32>,
    framing: Framing,
}

impl Answer {
    fn id(&self, id: u64) -> String {
        if self.chat {
            format!("chatcmpl-{id:016x}")
        } else {
            format!("cmpl-{id:016x}")
        }
    }

    fn finish_reason(&self, output_tokens: u32) -> &'static str {
        if self.max_tokens == Some(output_tokens) {
            "length"
        } else {
            "stop"
        }
    }

    /// The bytes to send, one element per [`TOKENS_PER_PACKET`] tokens at
    /// the decode rate: SSE events for a stream (the first also carries the
    /// response head, the last `data: [DONE]`), or nothing until the last,
    /// which is the whole JSON answer.
    fn chunks(&self, rng: &mut ChaCha8Rng, f: &tokenfeat::TokenFeatures, id: u64) -> Vec<Vec<u8>> {
        let tokens = f.output_tokens.max(1);
        let n = tokens.div_ceil(TOKENS_PER_PACKET);
        let texts: Vec<String> = (0..n)
            .map(|i| {
                let k = (tokens - i * TOKENS_PER_PACKET).min(TOKENS_PER_PACKET);
                let words: Vec<&str> = (0..k)
                    .map(|_| WORDS.choose(rng).copied().unwrap_or("the"))
                    .collect();
                format!(" {}", words.join(" "))
            })
            .collect();
        let finish = self.finish_reason(tokens);
        if !self.stream {
            let text: String = texts.concat();
            let choice = if self.chat {
                serde_json::json!({"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": finish})
            } else {
                serde_json::json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish})
            };
            let body = serde_json::json!({
                "id": self.id(id),
                "object": if self.chat { "chat.completion" } else { "text_completion" },
                "created": self.created,
                "model": self.model,
                "choices": [choice],
                "usage": {
                    "prompt_tokens": f.prompt_tokens,
                    "completion_tokens": tokens,
                    "total_tokens": f.prompt_tokens + tokens,
                },
            })
            .to_string();
            let mut out = vec![Vec::new(); n as usize];
            if let Some(last) = out.last_mut() {
                *last = head(
                    &self.node,
                    "200 OK",
                    "application/json",
                    Some(body.len()),
                    self.framing,
                );
                last.extend_from_slice(body.as_bytes());
            }
            return out;
        }
        let last = texts.len().saturating_sub(1);
        texts
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let reason = if i == last { Some(finish) } else { None };
                let choice = if self.chat {
                    let delta = if i == 0 {
                        serde_json::json!({"role": "assistant", "content": text})
                    } else {
                        serde_json::json!({"content": text})
                    };
                    serde_json::json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": reason})
                } else {
                    serde_json::json!({"index": 0, "text": text, "logprobs": null, "finish_reason": reason})
                };
                let event = serde_json::json!({
                    "id": self.id(id),
                    "object": if self.chat { "chat.completion.chunk" } else { "text_completion" },
                    "created": self.created,
                    "model": self.model,
                    "choices": [choice],
                });
                let mut data = format!("data: {event}\n\n");
                if i == last {
                    data.push_str("data: [DONE]\n\n");
                }
                let mut out = if i == 0 {
                    head(&self.node, "200 OK", "text/event-stream", None, self.framing)
                } else {
                    Vec::new()
                };
                match self.framing {
                    Framing::KeepAlive => {
                        out.extend_from_slice(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes());
                        if i == last {
                            out.extend_from_slice(b"0\r\n\r\n");
                        }
                    }
                    Framing::Close => out.extend_from_slice(data.as_bytes()),
                }
                out
            })
            .collect()
    }
}

/// A response head: with `length` a whole answer, without one a stream
/// (chunked when the connection is kept, else delimited by the close).
///
/// `X-Node: NAME` (`--name`) names the node, so an agent behind the
/// appliance can tell which instance answered.
fn head(node: &str, status: &str, ctype: &str, length: Option<usize>, framing: Framing) -> Vec<u8> {
    let mut h = format!("HTTP/1.1 {status}\r\nX-Node: {node}\r\nContent-Type: {ctype}\r\n");
    match length {
        Some(len) => h.push_str(&format!("Content-Length: {len}\r\n")),
        None => h.push_str("Cache-Control: no-cache\r\n"),
    }
    match (length, framing) {
        (None, Framing::KeepAlive) => h.push_str("Transfer-Encoding: chunked\r\n"),
        (_, Framing::Close) => h.push_str("Connection: close\r\n"),
        (Some(_), Framing::KeepAlive) => h.push_str("Connection: keep-alive\r\n"),
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// A whole JSON answer.
fn reply(
    stream: &mut TcpStream,
    node: &str,
    status: &str,
    body: &str,
    framing: Framing,
) -> io::Result<()> {
    let mut msg = head(node, status, "application/json", Some(body.len()), framing);
    msg.extend_from_slice(body.as_bytes());
    stream.write_all(&msg)
}

/// An error in the shape of OpenAI's API errors.
fn error_body(message: &str, kind: &str) -> String {
    serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
        .to_string()
}

/// The paths that take a completion request: `true` for chat.
fn completion_path(path: &str) -> Option<bool> {
    match path.trim_end_matches('/') {
        "/v1/chat/completions" | "/chat/completions" => Some(true),
        "/v1/completions" | "/completions" => Some(false),
        _ => None,
    }
}

/// Handles one connection: requests one after another while the client
/// keeps it (HTTP/1.1 keep-alive), each answered and recorded on its own.
fn handle(node: &Node, mut stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_nodelay(true);
    let mut reader = http::RequestReader::new(http::Limits {
        max_head: 64 * 1024,
        max_body: MAX_REQUEST,
    });
    loop {
        let req = match reader.next(&mut stream) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                if let Some(status) = e.status() {
                    node.errors.fetch_add(1, Ordering::Relaxed);
                    let body = error_body(&e.to_string(), "invalid_request_error");
                    let _ = reply(&mut stream, &node.cfg.name, status, &body, Framing::Close);
                }
                return;
            }
        };
        let framing = if req.keep_alive {
            Framing::KeepAlive
        } else {
            Framing::Close
        };
        let kept = answer(node, &req, &mut stream, peer, framing).is_ok();
        if !kept || framing == Framing::Close {
            let _ = stream.flush();
            let _ = stream.shutdown(std::net::Shutdown::Write);
            return;
        }
    }
}

/// Answers one request.
fn answer(
    node: &Node,
    req: &http::Request,
    stream: &mut TcpStream,
    peer: SocketAddr,
    framing: Framing,
) -> io::Result<()> {
    let cfg = &node.cfg;
    let arrived = Instant::now();
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/state") => {
            node.state_queries.fetch_add(1, Ordering::Relaxed);
            let load = node.load();
            let body = serde_json::json!({
                "name": cfg.name,
                "queue_len": load.queue_len,
                "active": load.active,
                "served": load.served,
                "concurrency": cfg.concurrency,
                "gpu_util": load.gpu_util,
                "kv_util": load.kv_util,
                "est_ttft_ms": load.est_ttft_ms,
            })
            .to_string();
            return reply(stream, &cfg.name, "200 OK", &body, framing);
        }
        ("GET", "/metrics") => {
            let body = vllm_metrics::render(&node.vllm_snapshot());
            let mut msg = head(
                &cfg.name,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                Some(body.len()),
                framing,
            );
            msg.extend_from_slice(body.as_bytes());
            return stream.write_all(&msg);
        }
        ("GET", "/v1/models" | "/models") => {
            let body = serde_json::json!({
                "object": "list",
                "data": [{
                    "id": cfg.name,
                    "object": "model",
                    "created": unix_now(),
                    "owned_by": "intellinode-emulator",
                    "root": cfg.name,
                    "parent": null,
                    "max_model_len": cfg.max_model_len,
                }],
            })
            .to_string();
            return reply(stream, &cfg.name, "200 OK", &body, framing);
        }
        ("POST", path) if completion_path(path).is_some() => {}
        (_, path)
            if completion_path(path).is_some()
                || ["/state", "/v1/models", "/metrics"].contains(&path) =>
        {
            let body = error_body(
                &format!("{} is not allowed on {path}", req.method),
                "invalid_request_error",
            );
            return reply(stream, &cfg.name, "405 Method Not Allowed", &body, framing);
        }
        (_, path) => {
            let body = error_body(&format!("no route for {path}"), "invalid_request_error");
            return reply(stream, &cfg.name, "404 Not Found", &body, framing);
        }
    }
    let chat = completion_path(&req.path) == Some(true);
    let id = node.next_id.fetch_add(1, Ordering::Relaxed);
    let mut record = new_record(node, id, "tcp", peer, arrived);
    let json_body = req.header("content-type").map_or(true, |t| {
        t.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .eq_ignore_ascii_case("application/json")
    });
    let parsed = tokenfeat::parse_openai_json(&req.body).filter(|_| json_body);
    let Some(parsed) = parsed else {
        let body = error_body(
            "expected an OpenAI completion request: a JSON body with `messages` (chat) or `prompt`",
            "invalid_request_error",
        );
        finish(node, record, arrived, Some("bad request".into()));
        return reply(stream, &cfg.name, "400 Bad Request", &body, framing);
    };
    let how = Answer {
        chat,
        stream: parsed.stream,
        model: parsed.model.clone().unwrap_or_else(|| cfg.name.clone()),
        node: cfg.name.clone(),
        created: unix_now(),
        max_tokens: parsed.max_tokens,
        framing,
    };
    let job = Job::of(&parsed, tools_json(&req.body).as_deref());
    let err = serve_job(
        node,
        &job,
        &mut record,
        arrived,
        seeded_rng(cfg.seed, id),
        |rng, f| how.chunks(rng, f, id),
        |chunk| stream.write_all(chunk),
    );
    let failed = err.is_some();
    finish(node, record, arrived, err);
    if failed {
        return Err(io::Error::new(io::ErrorKind::BrokenPipe, "client gone"));
    }
    Ok(())
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The token datagrams answering UDP request `client_id`: one per
/// [`TOKENS_PER_PACKET`] tokens, each with that many words of text.
fn token_datagrams(
    rng: &mut ChaCha8Rng,
    f: &tokenfeat::TokenFeatures,
    client_id: u64,
) -> Vec<Vec<u8>> {
    let tokens = f.output_tokens.max(1);
    let n = tokens.div_ceil(TOKENS_PER_PACKET);
    (0..n)
        .map(|i| {
            let k = (tokens - i * TOKENS_PER_PACKET).min(TOKENS_PER_PACKET);
            let text: String = (0..k)
                .map(|_| format!(" {}", WORDS.choose(rng).copied().unwrap_or("the")))
                .collect();
            datagram::encode_tokens(
                client_id,
                i,
                u16::try_from(k).unwrap_or(u16::MAX),
                i + 1 == n,
                &text,
            )
        })
        .collect()
}

/// Serves one UDP request (on its own thread).
fn handle_udp(
    node: &Node,
    socket: &UdpSocket,
    peer: SocketAddr,
    client_id: u64,
    body: &[u8],
    arrived: Instant,
) {
    let id = node.next_id.fetch_add(1, Ordering::Relaxed);
    let mut record = new_record(node, id, "udp", peer, arrived);
    record.client_id = Some(client_id);
    let err = match tokenfeat::parse_openai_request(body) {
        None => {
            let msg = "expected an OpenAI chat-completions JSON body";
            let _ = socket.send_to(&datagram::encode_error(client_id, msg), peer);
            Some("bad request".into())
        }
        Some(parsed) => serve_job(
            node,
            &Job::of(&parsed, None),
            &mut record,
            arrived,
            seeded_rng(node.cfg.seed, UDP_RNG_STREAM + id),
            |rng, f| token_datagrams(rng, f, client_id),
            |d| socket.send_to(d, peer).map(|_| ()),
        ),
    };
    finish(node, record, arrived, err);
    node.udp_in_service
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&(peer, client_id));
}

/// Receives UDP requests until `stop` is set, each served on its own
/// thread.
fn udp_loop(node: &Arc<Node>, socket: &Arc<UdpSocket>, stop: &AtomicBool) -> io::Result<()> {
    // A bigger buffer than any valid datagram, so oversized ones are seen
    // whole and told apart.
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let (n, peer) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            // An ICMP error from an earlier answer's peer: not ours to fix.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
            Err(e) => return Err(e),
        };
        let arrived = Instant::now();
        let counters = &node.udp;
        counters.datagrams.fetch_add(1, Ordering::Relaxed);
        let (client_id, body) = match datagram::decode(&buf[..n]) {
            Ok(Datagram::Request { id, body, .. }) => (id, body.to_vec()),
            Err(DecodeError::TooLong(Some(id))) => {
                counters.oversize.fetch_add(1, Ordering::Relaxed);
                let msg = format!("request longer than {} bytes", datagram::MAX_DATAGRAM);
                let _ = socket.send_to(&datagram::encode_error(id, &msg), peer);
                continue;
            }
            Ok(_) | Err(_) => {
                counters.malformed.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        let fresh = node
            .udp_in_service
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((peer, client_id));
        if !fresh {
            counters.duplicates.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let (node, socket) = (Arc::clone(node), Arc::clone(socket));
        node.open.fetch_add(1, Ordering::SeqCst);
        let spawned = std::thread::Builder::new()
            .name(format!("serve-udp-{client_id}"))
            .spawn({
                let node = Arc::clone(&node);
                move || {
                    handle_udp(&node, &socket, peer, client_id, &body, arrived);
                    node.open.fetch_sub(1, Ordering::SeqCst);
                }
            });
        if spawned.is_err() {
            node.open.fetch_sub(1, Ordering::SeqCst);
            node.errors.fetch_add(1, Ordering::Relaxed);
            node.udp_in_service
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&(peer, client_id));
        }
    }
    Ok(())
}

/// Loads the tokenizer and binds `cfg.listen`; the returned listener's
/// address has the real port when the configured one is 0.
pub fn bind(cfg: &ServeConfig) -> io::Result<TcpListener> {
    // Load the tokenizer now, not inside the first request's TTFT.
    let _ = tokenfeat::count_tokens("warm up the tokenizer");
    TcpListener::bind(cfg.listen)
}

/// Binds `cfg.udp`, when set.
pub fn bind_udp(cfg: &ServeConfig) -> io::Result<Option<UdpSocket>> {
    cfg.udp.map(UdpSocket::bind).transpose()
}

/// [`serve_with`] without UDP.
pub fn serve(
    cfg: ServeConfig,
    listener: TcpListener,
    stop: Arc<AtomicBool>,
) -> io::Result<ServeStats> {
    serve_with(cfg, listener, None, stop)
}

/// Serves on `listener` (and `udp`, when given) until `stop` is set or
/// `cfg.duration` passes, then waits up to a second for open requests and
/// returns the stats (also written to `cfg.stats_json`).
pub fn serve_with(
    mut cfg: ServeConfig,
    listener: TcpListener,
    udp: Option<UdpSocket>,
    stop: Arc<AtomicBool>,
) -> io::Result<ServeStats> {
    cfg.listen = listener.local_addr()?;
    cfg.udp = match &udp {
        Some(s) => Some(s.local_addr()?),
        None => None,
    };
    listener.set_nonblocking(true)?;

    let node = Arc::new(Node::new(cfg.clone()));
    let deadline = cfg.duration.map(|d| node.start + d);
    let reporter = match &cfg.report {
        Some(r) => Some(super::report::spawn(
            r.clone(),
            Arc::clone(&node),
            Arc::clone(&stop),
        )?),
        None => None,
    };
    let udp_thread = match udp {
        Some(socket) => {
            socket.set_read_timeout(Some(Duration::from_millis(20)))?;
            let socket = Arc::new(socket);
            let (node, stop) = (Arc::clone(&node), Arc::clone(&stop));
            Some(
                std::thread::Builder::new()
                    .name("serve-udp".into())
                    .spawn(move || udp_loop(&node, &socket, &stop))?,
            )
        }
        None => None,
    };
    while !stop.load(Ordering::Relaxed) && deadline.map_or(true, |d| Instant::now() < d) {
        match listener.accept() {
            Ok((mut stream, peer)) => {
                let _ = stream.set_nonblocking(false);
                if node.open.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                    // Bounded: a flood of connections gets a quick 503, not
                    // a thread each.
                    node.refused.fetch_add(1, Ordering::Relaxed);
                    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
                    let body = error_body("too many connections", "server_error");
                    let _ = reply(
                        &mut stream,
                        &node.cfg.name,
                        "503 Service Unavailable",
                        &body,
                        Framing::Close,
                    );
                    continue;
                }
                let node = Arc::clone(&node);
                node.open.fetch_add(1, Ordering::SeqCst);
                std::thread::Builder::new()
                    .name(format!("serve-{peer}"))
                    .spawn(move || {
                        handle(&node, stream, peer);
                        node.open.fetch_sub(1, Ordering::SeqCst);
                    })?;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let udp_result = udp_thread.map(|h| {
        h.join()
            .unwrap_or_else(|_| Err(io::Error::other("the UDP thread panicked")))
    });
    let grace = Instant::now() + Duration::from_secs(1);
    while node.open.load(Ordering::SeqCst) > 0 && Instant::now() < grace {
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Some(h) = reporter {
        let _ = h.join();
    }
    if let Some(Err(e)) = udp_result {
        return Err(io::Error::new(e.kind(), format!("UDP: {e}")));
    }
    let stats = node.stats();
    if let Some(path) = &cfg.stats_json {
        let text = serde_json::to_string_pretty(&stats).map_err(io::Error::other)?;
        std::fs::write(path, text + "\n").map_err(|e| {
            io::Error::new(e.kind(), format!("cannot write {}: {e}", path.display()))
        })?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_cache_sees_the_tools_once_then_the_messages() {
        let body = br#"{"model":"m","messages":[{"role":"system","content":"You are the lights agent."},{"role":"user","content":"dim the hall"}],"tools":[{"type":"function","function":{"name":"set_light"}}],"max_tokens":8}"#;
        let parsed = tokenfeat::parse_openai_json(body).unwrap();
        let tools = tools_json(body).unwrap();
        let text = cache_text(&parsed, Some(&tools));
        assert_eq!(
            text,
            format!("{tools}\nYou are the lights agent.\ndim the hall")
        );
        assert_eq!(text.matches("set_light").count(), 1);
        // As many tokens looked up as the request has.
        let job = Job::of(&parsed, Some(&tools));
        let counted = job.features.prompt_tokens as usize;
        assert!(
            job.prompt_ids.len().abs_diff(counted) <= 2,
            "{} ids, {counted} tokens",
            job.prompt_ids.len()
        );
        let plain =
            tokenfeat::parse_openai_json(br#"{"messages":[{"role":"user","content":"hi"}]}"#)
                .unwrap();
        assert_eq!(cache_text(&plain, None), "hi");
    }

    #[test]
    fn the_response_head_names_the_node_streamed_or_whole() {
        let f = tokenfeat::TokenFeatures {
            output_tokens: 8,
            ..tokenfeat::extract("turn on the light", &tokenfeat::Hints::default())
        };
        for stream in [true, false] {
            let how = Answer {
                chat: true,
                stream,
                model: "m".into(),
                node: "centre".into(),
                created: 0,
                max_tokens: Some(8),
                framing: Framing::KeepAlive,
            };
            let chunks = how.chunks(&mut seeded_rng(1, 1), &f, 1);
            let first = chunks.iter().find(|c| !c.is_empty()).unwrap();
            let head = String::from_utf8_lossy(first);
            assert!(
                head.starts_with("HTTP/1.1 200 OK\r\nX-Node: centre\r\n"),
                "{head}"
            );
        }
    }

    #[test]
    fn slots_are_fifo_and_the_queue_is_counted() {
        let node = Arc::new(Node::new(ServeConfig {
            concurrency: 1,
            ..ServeConfig::default()
        }));
        assert_eq!(node.acquire(0, 0), 0);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut hs = Vec::new();
        for t in 1..=3u64 {
            let (n, order) = (Arc::clone(&node), Arc::clone(&order));
            hs.push(std::thread::spawn(move || {
                let pos = n.acquire(t, 0);
                order.lock().unwrap().push((t, pos));
                std::thread::sleep(Duration::from_millis(5));
                n.release(0, Duration::ZERO);
            }));
            // Arrive in ticket order.
            while node.snapshot().0 < t as usize {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(node.snapshot(), (3, 1, 0));
        node.release(0, Duration::ZERO);
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![(1, 1), (2, 2), (3, 3)]);
        assert_eq!(node.snapshot(), (0, 0, 0));
        assert_eq!(node.stats().max_queue_len, 3);
    }

    fn node(concurrency: usize, kv_tokens: u64) -> Node {
        Node::new(ServeConfig {
            concurrency,
            kv_tokens,
            base_ttft_ms: 5.0,
            prefill_tps: 1000.0,
            decode_tps: 100.0,
            ..ServeConfig::default()
        })
    }

    #[test]
    fn load_counts_busy_slots_and_held_kv_tokens() {
        let n = node(4, 1000);
        let idle = n.load();
        assert_eq!((idle.gpu_util, idle.kv_util), (0.0, 0.0));
        assert_eq!(n.acquire(1, 300), 0);
        assert_eq!(n.acquire(2, 500), 0);
        let l = n.load();
        assert_eq!((l.active, l.gpu_util, l.kv_util), (2, 0.5, 0.8));
        assert_eq!(n.acquire(3, 400), 0);
        assert_eq!(n.load().kv_util, 1.0, "clamped");
        n.release(300, Duration::from_millis(10));
        let l = n.load();
        assert_eq!((l.active, l.gpu_util, l.kv_util), (2, 0.5, 0.9));
    }

    #[test]
    fn est_ttft_is_prefill_plus_the_expected_wait_for_a_slot() {
        let n = node(2, 1000);
        // 5 ms base + 16 tokens at 1000 tokens/s.
        assert!((n.est_ttft_ms() - 21.0).abs() < 1e-9, "{}", n.est_ttft_ms());
        n.acquire(1, 10);
        assert!(
            (n.est_ttft_ms() - 21.0).abs() < 1e-9,
            "a slot is still free"
        );
        n.acquire(2, 10);
        // Nothing finished yet: a hold is assumed to be the prefill plus
        // 128 tokens at 100/s (1301 ms); one of two slots must free up.
        assert!((n.est_ttft_ms() - (21.0 + 1301.0 / 2.0)).abs() < 1e-9);
        n.release(10, Duration::from_millis(100));
        n.acquire(3, 10);
        assert!((n.est_ttft_ms() - (21.0 + 100.0 / 2.0)).abs() < 1e-6);
        assert!((n.load().est_ttft_ms - n.est_ttft_ms()).abs() < 1e-9);
    }

    #[test]
    fn udp_answers_are_token_datagrams_ending_with_the_last_flag() {
        let f = tokenfeat::TokenFeatures {
            output_tokens: 10,
            ..tokenfeat::extract("turn on the light", &tokenfeat::Hints::default())
        };
        let ds = token_datagrams(&mut seeded_rng(1, 2), &f, 77);
        assert_eq!(ds.len(), 3);
        let mut total = 0;
        for (i, d) in ds.iter().enumerate() {
            let Ok(Datagram::Tokens {
                id,
                seq,
                count,
                last,
                text,
            }) = datagram::decode(d)
            else {
                panic!("datagram {i} does not decode")
            };
            assert_eq!((id, seq, last), (77, i as u32, i == 2));
            let words = std::str::from_utf8(text)
                .unwrap()
                .split_whitespace()
                .count();
            assert_eq!(words, usize::from(count));
            total += u32::from(count);
        }
        assert_eq!(total, 10);
    }

    #[test]
    fn udp_serves_an_id_once_and_counts_what_it_ignores() {
        let cfg = ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            udp: Some("127.0.0.1:0".parse().unwrap()),
            base_ttft_ms: 150.0,
            decode_tps: 1000.0,
            duration: Some(Duration::from_millis(1200)),
            ..ServeConfig::default()
        };
        let listener = bind(&cfg).unwrap();
        let udp = bind_udp(&cfg).unwrap().unwrap();
        let server = udp.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let h = std::thread::spawn(move || serve_with(cfg, listener, Some(udp), stop));
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(server).unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(600)))
            .unwrap();
        let body = llm_requests::text::chat_body("m", "turn on the light", 8);
        let request = datagram::encode_request(5, body.as_bytes()).unwrap();
        client.send(&request).unwrap();
        // Still in service (150 ms of prefill): ignored.
        client.send(&request).unwrap();
        client.send(b"not a datagram").unwrap();
        let mut oversize = datagram::encode_request(6, &[b'x'; 1384]).unwrap();
        oversize.push(b'x');
        client.send(&oversize).unwrap();

        let mut buf = [0u8; 2048];
        let (mut seqs, mut tokens, mut refused) = (Vec::new(), 0u32, false);
        while let Ok(n) = client.recv(&mut buf) {
            match datagram::decode(&buf[..n]).unwrap() {
                Datagram::Tokens {
                    id: 5,
                    seq,
                    count,
                    last,
                    ..
                } => {
                    seqs.push((seq, last));
                    tokens += u32::from(count);
                }
                Datagram::Error { id: 6, message } => {
                    assert!(String::from_utf8_lossy(message).contains("1400"));
                    refused = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(refused, "no error for the oversized request");
        assert_eq!(seqs, vec![(0, false), (1, true)], "served once, in order");
        assert_eq!(tokens, 8);
        let stats = h.join().unwrap().unwrap();
        assert_eq!(stats.udp_datagrams, 4);
        assert_eq!(stats.udp_duplicates, 1);
        assert_eq!(stats.udp_malformed, 1);
        assert_eq!(stats.udp_oversize, 1);
        assert_eq!(stats.served, 1);
        assert_eq!(stats.requests[0].transport, "udp");
        assert_eq!(stats.requests[0].client_id, Some(5));
    }
}
