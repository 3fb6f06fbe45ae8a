//! `pktgen serve`: an inference-node emulator over real TCP sockets.
//!
//! Every connection gets a thread. A request (HTTP/1.1 POST with
//! `Content-Length`, OpenAI chat-completions JSON) is read whole, then:
//!
//! 1. sleep the one-way path delay (`--delay-ms` ± `--jitter-ms`);
//! 2. wait for one of `--concurrency` batch slots (FIFO queue,
//!    Mutex + Condvar); the slot is held until the response is finished;
//! 3. prefill: sleep `--base-ttft-ms` + prompt tokens / `--prefill-tps`;
//! 4. sleep the path delay again (the way back), then answer `200 OK`,
//!    `text/event-stream`, one `data:` chunk per 4 output tokens at
//!    `--decode-tps`, `data: [DONE]`, and close.
//!
//! Prompt tokens are `tokenfeat`'s count of the request's prompt text;
//! output tokens are `max_tokens`, or tokenfeat's default for the task when
//! the request has none. `GET /state` answers `{name, queue_len, active,
//! served, concurrency}` at once.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;

use crate::workload::agent::{self, TOKENS_PER_PACKET};
use crate::workload::seeded_rng;

/// Largest request accepted (headers and body).
const MAX_REQUEST: usize = 1 << 20;

/// What `pktgen serve` emulates.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
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
    /// Connection number, from 0.
    pub id: u64,
    /// The client's address.
    pub peer: String,
    /// Milliseconds from server start to the request being read.
    pub arrived_ms: f64,
    /// Place in the wait queue on arrival: 0 when a batch slot was free,
    /// n when n − 1 requests were already waiting.
    pub queue_position: usize,
    /// Prompt tokens counted.
    pub prompt_tokens: u32,
    /// Output tokens streamed.
    pub output_tokens: u32,
    /// Task type tokenfeat saw.
    pub task: String,
    /// Path delay applied each way, milliseconds.
    pub delay_ms: f64,
    /// Time waiting for a batch slot, milliseconds.
    pub queue_wait_ms: f64,
    /// Prefill time (base + prompt / prefill rate), milliseconds.
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
    /// Seconds the server ran.
    pub uptime_s: f64,
    /// Requests completed without error.
    pub served: u64,
    /// Requests that failed (bad request, client gone).
    pub errors: u64,
    /// `GET /state` requests answered.
    pub state_queries: u64,
    /// Longest the wait queue got.
    pub max_queue_len: usize,
    /// Every inference request, in completion order.
    pub requests: Vec<ServiceRecord>,
}

#[derive(Debug, Default)]
struct Sched {
    active: usize,
    queue: VecDeque<u64>,
    max_queue: usize,
}

/// The server's shared state.
#[derive(Debug)]
pub struct Node {
    cfg: ServeConfig,
    start: Instant,
    sched: Mutex<Sched>,
    cv: Condvar,
    served: AtomicU64,
    errors: AtomicU64,
    state_queries: AtomicU64,
    open: AtomicUsize,
    records: Mutex<Vec<ServiceRecord>>,
}

/// `(queue_len, active, served)` right now.
pub type Snapshot = (usize, usize, u64);

impl Node {
    fn new(cfg: ServeConfig) -> Self {
        Node {
            cfg,
            start: Instant::now(),
            sched: Mutex::new(Sched::default()),
            cv: Condvar::new(),
            served: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            state_queries: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            records: Mutex::new(Vec::new()),
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

    /// The estimated TTFT of a new short request: queued and active work
    /// ahead of it, plus base (for NODE_STATE reports).
    pub fn est_ttft_ms(&self) -> f64 {
        let (q, a, _) = self.snapshot();
        let waiting = if a + q >= self.cfg.concurrency {
            (a + q + 1 - self.cfg.concurrency) as f64
        } else {
            0.0
        };
        self.cfg.base_ttft_ms * (1.0 + waiting)
    }

    /// Waits for a batch slot, FIFO. Returns the request's place in the
    /// wait queue on arrival: 0 when a slot was free, n when it was n-th.
    fn acquire(&self, ticket: u64) -> usize {
        let mut s = self.lock();
        if s.queue.is_empty() && s.active < self.cfg.concurrency {
            s.active += 1;
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
        drop(s);
        // The next in line may fit too.
        self.cv.notify_all();
        ahead + 1
    }

    fn release(&self) {
        let mut s = self.lock();
        s.active -= 1;
        drop(s);
        self.cv.notify_all();
    }

    fn stats(&self) -> ServeStats {
        let max_queue = self.lock().max_queue;
        let mut requests = self
            .records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        requests.sort_by_key(|r| r.id);
        ServeStats {
            name: self.cfg.name.clone(),
            listen: self.cfg.listen.to_string(),
            concurrency: self.cfg.concurrency,
            prefill_tps: self.cfg.prefill_tps,
            decode_tps: self.cfg.decode_tps,
            base_ttft_ms: self.cfg.base_ttft_ms,
            delay_ms: self.cfg.delay_ms,
            jitter_ms: self.cfg.jitter_ms,
            uptime_s: self.start.elapsed().as_secs_f64(),
            served: self.served.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            state_queries: self.state_queries.load(Ordering::Relaxed),
            max_queue_len: max_queue,
            requests,
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one HTTP request (head and `Content-Length` body).
fn read_request(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16384];
    let mut need: Option<usize> = None;
    loop {
        if need.is_none() {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad("head not UTF-8"))?;
                let mut len = 0usize;
                for line in head.split("\r\n").skip(1) {
                    if let Some((k, v)) = line.split_once(':') {
                        if k.trim().eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().map_err(|_| bad("bad Content-Length"))?;
                        }
                    }
                }
                need = Some(end + 4 + len);
            }
        }
        if let Some(n) = need {
            if n > MAX_REQUEST {
                return Err(bad("request too large"));
            }
            if buf.len() >= n {
                buf.truncate(n);
                return Ok(buf);
            }
        } else if buf.len() > MAX_REQUEST {
            return Err(bad("request head too large"));
        }
        let k = stream.read(&mut chunk)?;
        if k == 0 {
            return Err(bad("connection closed before the request was complete"));
        }
        buf.extend_from_slice(&chunk[..k]);
    }
}

fn reply(stream: &mut TcpStream, status: &str, ctype: &str, body: &str) -> io::Result<()> {
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(msg.as_bytes())
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Handles one connection (one request).
fn handle(node: &Node, id: u64, mut stream: TcpStream, peer: SocketAddr) {
    let cfg = &node.cfg;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let _ = stream.set_nodelay(true);
    let req = match read_request(&mut stream) {
        Ok(r) => r,
        Err(_) => return,
    };
    let arrived = Instant::now();
    if req.starts_with(b"GET /state") {
        node.state_queries.fetch_add(1, Ordering::Relaxed);
        let (queue_len, active, served) = node.snapshot();
        let body = serde_json::json!({
            "name": cfg.name,
            "queue_len": queue_len,
            "active": active,
            "served": served,
            "concurrency": cfg.concurrency,
        })
        .to_string();
        let _ = reply(&mut stream, "200 OK", "application/json", &body);
        return;
    }
    let mut record = ServiceRecord {
        id,
        peer: peer.to_string(),
        arrived_ms: ms(arrived - node.start),
        queue_position: 0,
        prompt_tokens: 0,
        output_tokens: 0,
        task: String::new(),
        delay_ms: 0.0,
        queue_wait_ms: 0.0,
        prefill_ms: 0.0,
        ttft_ms: 0.0,
        total_ms: 0.0,
        error: None,
    };
    let finish = |mut record: ServiceRecord, err: Option<String>| {
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
    };
    let Some(parsed) = tokenfeat::parse_openai_request(&req) else {
        let _ = reply(
            &mut stream,
            "400 Bad Request",
            "application/json",
            "{\"error\":\"expected an OpenAI chat-completions POST with Content-Length\"}",
        );
        finish(record, Some("bad request".into()));
        return;
    };
    let features = parsed.features(None);
    let output_tokens = parsed
        .max_tokens
        .unwrap_or_else(|| tokenfeat::default_output_tokens(features.task, features.prompt_tokens))
        .max(1);
    record.prompt_tokens = features.prompt_tokens;
    record.output_tokens = output_tokens;
    record.task = features.task.name().to_string();

    let mut rng = seeded_rng(cfg.seed, id);
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
    record.queue_position = node.acquire(id);
    let started = Instant::now();
    record.queue_wait_ms = ms(started - queued);
    let prefill = cfg.model_ttft(features.prompt_tokens);
    record.prefill_ms = ms(prefill);
    // Prefill, then the answer's way out.
    sleep_until(started + prefill + delay);

    let mut f = features;
    f.output_tokens = output_tokens;
    let payloads = agent::response(&mut rng, &f, id).payloads;
    let interval = Duration::from_secs_f64(f64::from(TOKENS_PER_PACKET) / cfg.decode_tps);
    let t0 = Instant::now();
    record.ttft_ms = ms(t0 - arrived);
    let mut err = None;
    for (i, p) in payloads.iter().enumerate() {
        sleep_until(t0 + interval * u32::try_from(i).unwrap_or(u32::MAX));
        if let Err(e) = stream.write_all(p) {
            err = Some(format!("client gone: {e}"));
            break;
        }
    }
    let _ = stream.flush();
    let _ = stream.shutdown(std::net::Shutdown::Write);
    node.release();
    finish(record, err);
}

/// Loads the tokenizer and binds `cfg.listen`; the returned listener's
/// address has the real port when the configured one is 0.
pub fn bind(cfg: &ServeConfig) -> io::Result<TcpListener> {
    // Load the tokenizer now, not inside the first request's TTFT.
    let _ = tokenfeat::count_tokens("warm up the tokenizer");
    TcpListener::bind(cfg.listen)
}

/// Serves on `listener` until `stop` is set or `cfg.duration` passes, then
/// waits up to a second for open connections and returns the stats (also
/// written to `cfg.stats_json`).
pub fn serve(
    mut cfg: ServeConfig,
    listener: TcpListener,
    stop: Arc<AtomicBool>,
) -> io::Result<ServeStats> {
    cfg.listen = listener.local_addr()?;
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
    let mut next_id = 0u64;
    while !stop.load(Ordering::Relaxed) && deadline.map_or(true, |d| Instant::now() < d) {
        match listener.accept() {
            Ok((stream, peer)) => {
                let _ = stream.set_nonblocking(false);
                let id = next_id;
                next_id += 1;
                let node = Arc::clone(&node);
                node.open.fetch_add(1, Ordering::SeqCst);
                std::thread::Builder::new()
                    .name(format!("serve-{id}"))
                    .spawn(move || {
                        handle(&node, id, stream, peer);
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
    let grace = Instant::now() + Duration::from_secs(1);
    while node.open.load(Ordering::SeqCst) > 0 && Instant::now() < grace {
        std::thread::sleep(Duration::from_millis(5));
    }
    if let Some(h) = reporter {
        let _ = h.join();
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
    fn slots_are_fifo_and_the_queue_is_counted() {
        let node = Arc::new(Node::new(ServeConfig {
            concurrency: 1,
            ..ServeConfig::default()
        }));
        assert_eq!(node.acquire(0), 0);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut hs = Vec::new();
        for t in 1..=3u64 {
            let (n, order) = (Arc::clone(&node), Arc::clone(&order));
            hs.push(std::thread::spawn(move || {
                let pos = n.acquire(t);
                order.lock().unwrap().push((t, pos));
                std::thread::sleep(Duration::from_millis(5));
                n.release();
            }));
            // Arrive in ticket order.
            while node.snapshot().0 < t as usize {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        assert_eq!(node.snapshot(), (3, 1, 0));
        node.release();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![(1, 1), (2, 2), (3, 3)]);
        assert_eq!(node.snapshot(), (0, 0, 0));
        assert_eq!(node.stats().max_queue_len, 3);
    }
}
