//! The `emulator` command line: `serve`, `agent` and `wire`.
//!
//! `pktgen serve|agent|wire` are the same subcommands: pktgen flattens
//! [`Command`] into its own and calls [`run`], so both binaries run this
//! one implementation.

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::client::{
    self, AgentConfig, Arrivals, LoadOptions, SocketTlv, Transport, WorkloadSizes,
};
use crate::delay_line::LineConfig;
use crate::serve::{self, ServeConfig};

/// IntelliNode's inference-cluster emulator.
#[derive(Debug, Parser)]
#[command(
    name = "emulator",
    version,
    about = "IntelliNode's inference-cluster emulator: an OpenAI-compatible inference node, an agent load generator and a path emulator, over kernel sockets",
    after_help = "Examples:\n  \
        emulator serve --listen 10.0.2.1:8000 --name edge --concurrency 4\n  \
        emulator agent --target 10.0.100.1:8000 --requests 200 --rate 20 --tlv ipv4\n  \
        emulator wire --a wa --b wb --delay-ms 20 --jitter-ms 2 --loss 0.01"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Emulate an inference node over real TCP (HTTP/1.1, streamed answers)
    #[command(
        long_about = "OpenAI-compatible inference-node emulator over kernel TCP sockets. Answers \
POST /v1/chat/completions and /v1/completions (HTTP/1.1 keep-alive or HTTP/1.0; Content-Length or \
chunked bodies; Expect: 100-continue): after the path delay, a FIFO wait for one of --concurrency \
batch slots, and --base-ttft-ms + prompt tokens / --prefill-tps of prefill, it decodes max_tokens \
tokens (or tokenfeat's default for the task) at --decode-tps: \"stream\": true gets \
text/event-stream chat.completion.chunk events (4 tokens each) and `data: [DONE]`, \"stream\": false \
one chat.completion JSON with usage. Cached prompt prefixes (vLLM's 16-token chained blocks, LRU \
bounded by --kv-tokens) skip prefill. GET /v1/models lists --name with max_model_len; GET /metrics \
is vLLM's Prometheus exposition (vllm:num_requests_waiting, vllm:kv_cache_usage_perc, \
vllm:time_to_first_token_seconds, vllm:prefix_cache_hits, ...). `GET /state` returns \
{name, queue_len, active, served, concurrency, gpu_util, kv_util, est_ttft_ms}. With --udp it \
also serves the INUD datagram protocol (docs/wire-format.md §8) on that address, with the same \
model and the same batch slots. Prints `listening on ADDR` first.",
        after_help = "Examples:\n  emulator serve --listen 10.0.2.1:8000 --name edge --concurrency 4\n  \
emulator serve --listen 10.0.3.1:8000 --name centre --delay-ms 20 --jitter-ms 2 --stats-json centre.json"
    )]
    Serve(ServeArgs),
    /// Open-loop load generator: AI-agent requests over TCP, TTFT per class
    #[command(
        long_about = "Open-loop client. Sends --requests chat-completion requests (short control \
commands and long prompts from the agent workload, and with --agent-fraction shared-prefix agent \
calls: personas' system prompts and tools, multi-turn sessions) to --target at Poisson arrivals (--rate) or a \
fixed --interval-ms, each on its own connection and thread, and measures TTFT (last request byte \
written to the first `data:` byte) and completion (to `data: [DONE]`). With --tlv ipv4 every \
packet of a request's connection carries the token feature TLV as IPv4 option 0x9E \
(setsockopt IP_OPTIONS; needs root or CAP_NET_RAW).",
        after_help = "Examples:\n  emulator agent --target 10.0.100.1:8000 --requests 200 --rate 20 --tlv ipv4 --out run.json"
    )]
    Agent(AgentArgs),
    /// Path emulator: bridge two interfaces with delay, jitter and loss
    #[command(
        long_about = "User-space path emulator for kernels without tc netem. Bridges --a and --b with \
AF_PACKET raw sockets (promiscuous, needs root): every frame received on one side leaves by the \
other after --delay-ms ± --jitter-ms (uniform, never reordering: a frame never leaves before the \
one ahead of it), or is lost with probability --loss, independently per direction, from --seed. \
At most --queue-frames frames wait per direction; more are dropped and counted apart from the \
emulated loss. Turn the interfaces' offloads off first (ethtool -K IF tso off gso off gro off \
tx off): the wire forwards frames as the kernel hands them over. SIGUSR1 cuts the wire (every \
frame, arriving or on the line, is dropped and counted as cut: a black hole); SIGUSR2 restores it. \
With --report-to it sends a sealed PATH_STATE for --path every --report-interval-ms: latency and \
jitter as configured, loss as configured or 1 while cut. Prints `wire: bridging A <-> B` when ready.",
        after_help = "Example:\n  ip netns exec w emulator wire --a wa --b wb --delay-ms 20 --jitter-ms 2 --loss 0.01 --stats-json wire.json"
    )]
    Wire(WireArgs),
}

/// Why a subcommand failed; printed as one line after `emulator: error: `.
#[derive(Debug)]
pub enum Error {
    /// Writing the report to stdout.
    Output(io::Error),
    /// Options that do not go together.
    Usage(String),
    /// Running failed (sockets, files, every request failing).
    Live(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Output(e) => write!(f, "writing the report: {e}"),
            Error::Usage(e) | Error::Live(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Output(e)
    }
}

/// Runs `command`, writing its report to `out`.
pub fn run(command: Command, out: &mut dyn Write) -> Result<(), Error> {
    match command {
        Command::Serve(args) => run_serve(&args, out),
        Command::Agent(args) => run_agent(&args, out),
        Command::Wire(args) => run_wire(&args, out),
    }
}

/// `emulator wire`.
#[derive(Debug, Args)]
pub struct WireArgs {
    /// First interface
    #[arg(long, value_name = "IFACE")]
    pub a: String,
    /// Second interface
    #[arg(long, value_name = "IFACE")]
    pub b: String,
    /// One-way delay, each direction
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    pub delay_ms: f64,
    /// Uniform jitter (±) on --delay-ms, drawn per frame
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    pub jitter_ms: f64,
    /// Probability that a frame is lost, 0 to 1, each direction
    #[arg(long, default_value_t = 0.0, value_name = "P")]
    pub loss: f64,
    /// Frames held at most per direction; more are dropped (queue_full)
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    pub queue_frames: usize,
    /// Seed of the loss and jitter draws
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Exit after this many seconds (default: run until SIGINT/SIGTERM)
    #[arg(long, value_name = "SECONDS")]
    pub duration_s: Option<f64>,
    /// Write per-direction counters (in, forwarded, lost, queue_full, cut)
    /// and the configuration as JSON at exit
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Push PATH_STATE control messages for this wire's path (latency and
    /// jitter as configured, loss as configured or 1 while cut) to the
    /// appliance's control address
    #[arg(long, value_name = "ADDR", requires_all = ["key_file", "key_id", "path"])]
    pub report_to: Option<std::net::SocketAddr>,
    /// --report-to: this peer's key file (as for `intellinode ctl`)
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// --report-to: this peer's key id
    #[arg(long, value_name = "ID")]
    pub key_id: Option<u32>,
    /// --report-to: the path id to report as
    #[arg(long, value_name = "N")]
    pub path: Option<u16>,
    /// --report-to: reporting period
    #[arg(long, default_value_t = 100, value_name = "MS")]
    pub report_interval_ms: u64,
}

/// `emulator serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0: any free port; see `listening on`)
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:8000")]
    pub listen: std::net::SocketAddr,
    /// Also serve the INUD datagram protocol on this UDP address (the TCP
    /// listener stays)
    #[arg(long, value_name = "IP:PORT")]
    pub udp: Option<std::net::SocketAddr>,
    /// KV-cache capacity in tokens: KV utilisation = prompt + output
    /// tokens of the requests in service / this; also the prefix cache's
    /// bound (LRU, in 16-token blocks)
    #[arg(long, default_value_t = crate::serve::DEFAULT_KV_TOKENS, value_name = "TOKENS")]
    pub kv_tokens: u64,
    /// The longest context, tokens, announced as `max_model_len` by
    /// GET /v1/models (the collector's capability)
    #[arg(long, default_value_t = crate::serve::DEFAULT_MAX_MODEL_LEN, value_name = "TOKENS")]
    pub max_model_len: u32,
    /// Node name, reported by /state and in the stats
    #[arg(long, default_value = "edge")]
    pub name: String,
    /// Prefill throughput, prompt tokens per second
    #[arg(long, default_value_t = 5000.0, value_name = "TOKENS_PER_S")]
    pub prefill_tps: f64,
    /// Decode throughput of one stream, output tokens per second
    #[arg(long, default_value_t = 50.0, value_name = "TOKENS_PER_S")]
    pub decode_tps: f64,
    /// Fixed part of the time to first token, milliseconds
    #[arg(long, default_value_t = 5.0, value_name = "MS")]
    pub base_ttft_ms: f64,
    /// Batch slots; further requests wait in a FIFO queue
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub concurrency: usize,
    /// Emulated one-way path delay, slept before handling the request and
    /// again before the first response byte
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    pub delay_ms: f64,
    /// Uniform jitter (±) on --delay-ms, drawn per request
    #[arg(long, default_value_t = 0.0, value_name = "MS")]
    pub jitter_ms: f64,
    /// Exit after this many seconds (default: run until SIGINT/SIGTERM)
    #[arg(long, value_name = "SECONDS")]
    pub duration_s: Option<f64>,
    /// Write the stats (served, max queue, per-request records) as JSON at exit
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Seed for the jitter and the response text
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Push NODE_STATE control messages (GPU and KV-cache utilisation,
    /// queue length, estimated TTFT) to the appliance's control address
    #[arg(long, value_name = "ADDR", requires_all = ["key_file", "key_id", "node"])]
    pub report_to: Option<std::net::SocketAddr>,
    /// --report-to: this peer's key file (as for `intellinode ctl`)
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// --report-to: this peer's key id
    #[arg(long, value_name = "ID")]
    pub key_id: Option<u32>,
    /// --report-to: the node id to report as
    #[arg(long, value_name = "N")]
    pub node: Option<u16>,
    /// --report-to: reporting period
    #[arg(
        long,
        visible_alias = "report-interval-ms",
        default_value_t = 100,
        value_name = "MS"
    )]
    pub interval_ms: u64,
}

/// `emulator agent`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The service address (VIP) to send requests to
    #[arg(long, value_name = "IP:PORT")]
    pub target: std::net::SocketAddr,
    /// Requests to send
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub requests: usize,
    /// Poisson arrivals at this many requests per second [default: 10 when
    /// --interval-ms is not given either]
    #[arg(long, value_name = "R", conflicts_with = "interval_ms")]
    pub rate: Option<f64>,
    /// Fixed gap between requests instead of --rate
    #[arg(long, value_name = "MS")]
    pub interval_ms: Option<f64>,
    /// Fraction of short control commands (the rest are long prompts)
    #[arg(long, default_value_t = 0.7, value_name = "F")]
    pub short_fraction: f64,
    /// Seed: the same seed sends the same requests at the same times
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Token feature TLV on every packet of a request: `ipv4` sets IPv4
    /// option 0x9E on the socket (needs root or CAP_NET_RAW)
    #[arg(long, value_enum, default_value_t = SocketTlv::None, value_name = "CARRIER")]
    pub tlv: SocketTlv,
    /// Local address to send from
    #[arg(long, value_name = "IP")]
    pub bind: Option<std::net::IpAddr>,
    /// Write every request's record and per-class summaries as JSON
    #[arg(long, value_name = "FILE.json")]
    pub out: Option<PathBuf>,
    /// Per-request timeout (connect and the whole exchange), seconds
    #[arg(long, default_value_t = 120.0, value_name = "SECONDS")]
    pub timeout_s: f64,
    /// Most requests in flight at once; a request over the limit waits,
    /// which makes the load closed-loop, so keep it large
    #[arg(long, default_value_t = 4096, value_name = "N")]
    pub max_inflight: usize,
    /// tcp: HTTP/1.1 per connection; udp: the INUD datagram protocol (one
    /// request datagram, short prompts only, no retransmission)
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    pub transport: Transport,
    /// max_tokens of short requests, drawn uniformly [default: 64-256]
    #[arg(long, value_name = "LO-HI")]
    pub short_output_tokens: Option<String>,
    /// max_tokens of long requests, drawn uniformly [default: 1024, 2048,
    /// 3072 or 4096]
    #[arg(long, value_name = "LO-HI")]
    pub long_output_tokens: Option<String>,
    /// Words of long prompts, drawn uniformly [default: 300-3000]
    #[arg(long, value_name = "LO-HI")]
    pub long_prompt_words: Option<String>,
    /// Share of requests that are shared-prefix agent calls: a persona's
    /// system prompt and tools, its session's earlier turns, a new user
    /// message, the prefix named in the TLV (layout version 2);
    /// --short-fraction splits the rest. Agent calls count as long
    #[arg(long, default_value_t = 0.0, value_name = "F")]
    pub agent_fraction: f64,
    /// --agent-fraction: agent personas (distinct shared prefixes)
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub personas: u32,
    /// --agent-fraction: tokens of a persona's system prompt and tools,
    /// drawn once per persona
    #[arg(long, default_value = "2000-8000", value_name = "LO-HI")]
    pub agent_prefix_tokens: String,
    /// --agent-fraction: tokens of a turn's user message
    #[arg(long, default_value = "20-200", value_name = "LO-HI")]
    pub agent_user_tokens: String,
    /// --agent-fraction: tokens of a turn's answer (its max_tokens; the
    /// history repeats it)
    #[arg(long, default_value = "50-300", value_name = "LO-HI")]
    pub agent_output_tokens: String,
    /// --agent-fraction: turns per session
    #[arg(long, default_value = "2-8", value_name = "LO-HI")]
    pub agent_turns: String,
    /// --agent-fraction: sessions open at once; a call continues one at
    /// random, or starts a new one in a finished one's place
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub agent_sessions: u32,
    /// --agent-fraction: send layout version 1, without the shared prefix
    /// (for comparison)
    #[arg(long)]
    pub no_prefix_names: bool,
}

fn duration_option(
    option: &str,
    seconds: Option<f64>,
) -> Result<Option<std::time::Duration>, Error> {
    match seconds {
        Some(d) if d.is_finite() && d > 0.0 => Ok(Some(std::time::Duration::from_secs_f64(d))),
        Some(d) => Err(Error::Usage(format!(
            "{option} {d} must be a positive number of seconds"
        ))),
        None => Ok(None),
    }
}

fn millis_option(option: &str, ms: f64) -> Result<std::time::Duration, Error> {
    if ms.is_finite() && ms >= 0.0 {
        Ok(std::time::Duration::from_secs_f64(ms / 1000.0))
    } else {
        Err(Error::Usage(format!("{option} {ms} must be zero or more")))
    }
}

/// The agent calls `--agent-fraction` and the `--agent-*` options ask for.
fn agent_load(args: &AgentArgs) -> Result<Option<client::AgentLoad>, Error> {
    if !(0.0..=1.0).contains(&args.agent_fraction) {
        return Err(Error::Usage(format!(
            "--agent-fraction {} must be between 0 and 1",
            args.agent_fraction
        )));
    }
    if args.agent_fraction == 0.0 {
        return Ok(None);
    }
    let range = |option: &str, text: &str| -> Result<[u32; 2], Error> {
        let (lo, hi) =
            client::parse_size_range(text).map_err(|e| Error::Usage(format!("{option} {e}")))?;
        match (u32::try_from(lo), u32::try_from(hi)) {
            (Ok(lo), Ok(hi)) => Ok([lo, hi]),
            _ => Err(Error::Usage(format!("{option} {lo}-{hi} is too large"))),
        }
    };
    let mix = llm_requests::agents::AgentMix {
        personas: args.personas,
        prefix_tokens: range("--agent-prefix-tokens", &args.agent_prefix_tokens)?,
        user_tokens: range("--agent-user-tokens", &args.agent_user_tokens)?,
        output_tokens: range("--agent-output-tokens", &args.agent_output_tokens)?,
        turns: range("--agent-turns", &args.agent_turns)?,
        open_sessions: args.agent_sessions,
        name_prefix: !args.no_prefix_names,
    };
    mix.validate().map_err(Error::Usage)?;
    Ok(Some(client::AgentLoad {
        fraction: args.agent_fraction,
        mix,
    }))
}

/// Registers SIGINT and SIGTERM to set the returned flag.
fn stop_on_signals() -> Result<std::sync::Arc<std::sync::atomic::AtomicBool>, Error> {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, std::sync::Arc::clone(&stop))
            .map_err(|e| Error::Usage(format!("cannot handle signals: {e}")))?;
    }
    Ok(stop)
}

/// How often a pending SIGUSR1/SIGUSR2 is applied to the wire.
const CUT_POLL: std::time::Duration = std::time::Duration::from_millis(1);

/// SIGUSR1 cuts the wire (black hole), SIGUSR2 restores it: the returned
/// flag follows the last signal, within [`CUT_POLL`], until `stop`.
fn cut_on_signals(
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Result<crate::wire::Cut, Error> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let (cut_asked, restore_asked) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    for (sig, flag) in [
        (signal_hook::consts::SIGUSR1, &cut_asked),
        (signal_hook::consts::SIGUSR2, &restore_asked),
    ] {
        signal_hook::flag::register(sig, Arc::clone(flag))
            .map_err(|e| Error::Usage(format!("cannot handle signals: {e}")))?;
    }
    let cut = Arc::new(AtomicBool::new(false));
    let (flag, stop) = (Arc::clone(&cut), Arc::clone(stop));
    std::thread::Builder::new()
        .name("wire-cut".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if cut_asked.swap(false, Ordering::Relaxed) {
                    flag.store(true, Ordering::Relaxed);
                }
                if restore_asked.swap(false, Ordering::Relaxed) {
                    flag.store(false, Ordering::Relaxed);
                }
                std::thread::sleep(CUT_POLL);
            }
        })
        .map_err(|e| Error::Live(format!("wire: cannot start the signal thread: {e}")))?;
    Ok(cut)
}

/// `emulator wire`: open both interfaces, print `wire: bridging A <-> B`,
/// bridge until the duration ends or SIGINT/SIGTERM, print the counts.
pub fn run_wire(args: &WireArgs, out: &mut dyn Write) -> Result<(), Error> {
    use crate::wire;
    let cfg = wire::WireConfig {
        a: args.a.clone(),
        b: args.b.clone(),
        line: LineConfig {
            delay: millis_option("--delay-ms", args.delay_ms)?,
            jitter: millis_option("--jitter-ms", args.jitter_ms)?,
            loss: args.loss,
            capacity: args.queue_frames,
        },
        seed: args.seed,
        duration: duration_option("--duration-s", args.duration_s)?,
        stats_json: args.stats_json.clone(),
        report: match (args.report_to, &args.key_file, args.key_id, args.path) {
            (Some(to), Some(key_file), Some(key_id), Some(path)) => Some(wire::PathReport {
                to,
                key_file: key_file.clone(),
                key_id,
                path,
                interval: std::time::Duration::from_millis(args.report_interval_ms.max(1)),
            }),
            _ => None,
        },
    };
    cfg.line.validate().map_err(Error::Usage)?;
    let sockets = wire::open(&cfg).map_err(|e| Error::Usage(format!("wire: {e}")))?;
    let stop = stop_on_signals()?;
    let cut = cut_on_signals(&stop)?;
    writeln!(
        out,
        "wire: bridging {} <-> {} (delay {} ms ± {} ms, loss {}, queue {} frames, seed {})",
        cfg.a, cfg.b, args.delay_ms, args.jitter_ms, args.loss, args.queue_frames, args.seed
    )?;
    out.flush()?;
    let stats =
        wire::run(&cfg, sockets, stop, cut).map_err(|e| Error::Live(format!("wire: {e}")))?;
    for (name, d) in [
        (format!("{} -> {}", cfg.a, cfg.b), &stats.a_to_b),
        (format!("{} -> {}", cfg.b, cfg.a), &stats.b_to_a),
    ] {
        writeln!(
            out,
            "wire {name}: {} in, {} forwarded, {} lost, {} queue_full, {} send errors, {} cut, {} unsent",
            d.frames_in, d.forwarded, d.lost, d.queue_full, d.send_errors, d.cut, d.unsent_at_exit
        )?;
    }
    Ok(())
}

/// `emulator serve`: listen, print `listening on ADDR`, serve until the
/// duration ends or SIGINT/SIGTERM, print a one-line summary.
pub fn run_serve(args: &ServeArgs, out: &mut dyn Write) -> Result<(), Error> {
    let duration = duration_option("--duration-s", args.duration_s)?;
    let report = match (args.report_to, &args.key_file, args.key_id, args.node) {
        (Some(to), Some(key_file), Some(key_id), Some(node)) => Some(crate::report::ReportConfig {
            to,
            key_file: key_file.clone(),
            key_id,
            node,
            interval: std::time::Duration::from_millis(args.interval_ms.max(1)),
        }),
        _ => None,
    };
    let cfg = ServeConfig {
        listen: args.listen,
        udp: args.udp,
        kv_tokens: args.kv_tokens,
        max_model_len: args.max_model_len,
        name: args.name.clone(),
        prefill_tps: args.prefill_tps,
        decode_tps: args.decode_tps,
        base_ttft_ms: args.base_ttft_ms,
        concurrency: args.concurrency,
        delay_ms: args.delay_ms,
        jitter_ms: args.jitter_ms,
        duration,
        stats_json: args.stats_json.clone(),
        seed: args.seed,
        report,
    };
    cfg.validate().map_err(Error::Usage)?;
    let listener = serve::bind(&cfg)
        .map_err(|e| Error::Usage(format!("cannot listen on {}: {e}", cfg.listen)))?;
    let udp = serve::bind_udp(&cfg).map_err(|e| {
        Error::Usage(format!(
            "cannot listen on UDP {}: {e}",
            cfg.udp.map_or(String::new(), |a| a.to_string())
        ))
    })?;
    let addr = listener.local_addr()?;
    match &udp {
        Some(u) => writeln!(out, "listening on {addr} (UDP {})", u.local_addr()?)?,
        None => writeln!(out, "listening on {addr}")?,
    }
    out.flush()?;
    let stop = stop_on_signals()?;
    let stats = serve::serve_with(cfg, listener, udp, stop)
        .map_err(|e| Error::Live(format!("serve: {e}")))?;
    writeln!(
        out,
        "serve {} on {addr}: {} requests served, {} errors, max queue {}, {:.1} s",
        stats.name, stats.served, stats.errors, stats.max_queue_len, stats.uptime_s
    )?;
    Ok(())
}

/// `emulator agent`: send the load, print per-class summaries, write --out.
pub fn run_agent(args: &AgentArgs, out: &mut dyn Write) -> Result<(), Error> {
    let arrivals = match (args.rate, args.interval_ms) {
        (Some(r), _) if r.is_finite() && r > 0.0 => Arrivals::Poisson(r),
        (Some(r), _) => {
            return Err(Error::Usage(format!(
                "--rate {r} must be a positive number"
            )))
        }
        (None, Some(i)) if i.is_finite() && i >= 0.0 => {
            Arrivals::Fixed(std::time::Duration::from_secs_f64(i / 1000.0))
        }
        (None, Some(i)) => {
            return Err(Error::Usage(format!(
                "--interval-ms {i} must be zero or more"
            )))
        }
        (None, None) => Arrivals::Poisson(10.0),
    };
    if !(0.0..=1.0).contains(&args.short_fraction) {
        return Err(Error::Usage(format!(
            "--short-fraction {} must be between 0 and 1",
            args.short_fraction
        )));
    }
    if !(args.timeout_s.is_finite() && args.timeout_s > 0.0) {
        return Err(Error::Usage(format!(
            "--timeout-s {} must be a positive number",
            args.timeout_s
        )));
    }
    if args.tlv == SocketTlv::Ipv4 {
        if !args.target.is_ipv4() {
            return Err(Error::Usage(format!(
                "--tlv ipv4 needs an IPv4 --target, not {}",
                args.target
            )));
        }
        let probe = tokenfeat::extract("turn on the light", &tokenfeat::Hints::default());
        client::check_ip_options(&probe).map_err(|e| Error::Usage(format!("--tlv ipv4: {e}")))?;
    }
    let range = |option: &str, text: &Option<String>| -> Result<Option<(u64, u64)>, Error> {
        text.as_deref()
            .map(|t| client::parse_size_range(t).map_err(|e| Error::Usage(format!("{option} {e}"))))
            .transpose()
    };
    let tokens = |option: &str,
                  text: &Option<String>|
     -> Result<Option<std::ops::RangeInclusive<u32>>, Error> {
        range(option, text)?
            .map(|(lo, hi)| match (u32::try_from(lo), u32::try_from(hi)) {
                (Ok(lo), Ok(hi)) => Ok(lo..=hi),
                _ => Err(Error::Usage(format!("{option} {lo}-{hi} is too large"))),
            })
            .transpose()
    };
    let sizes = WorkloadSizes {
        short_output_tokens: tokens("--short-output-tokens", &args.short_output_tokens)?,
        long_output_tokens: tokens("--long-output-tokens", &args.long_output_tokens)?,
        long_prompt_words: range("--long-prompt-words", &args.long_prompt_words)?.map(
            |(lo, hi)| {
                usize::try_from(lo).unwrap_or(usize::MAX)
                    ..=usize::try_from(hi).unwrap_or(usize::MAX)
            },
        ),
        agents: agent_load(args)?,
    };
    let opts = LoadOptions {
        transport: args.transport,
        sizes,
    };
    let cfg = AgentConfig {
        target: args.target,
        requests: args.requests,
        arrivals,
        short_fraction: args.short_fraction,
        seed: args.seed,
        tlv: args.tlv,
        bind: args.bind,
        timeout: std::time::Duration::from_secs_f64(args.timeout_s),
        max_inflight: args.max_inflight.max(1),
    };
    let report = client::run_with(&cfg, &opts);
    write!(out, "{}", report.render())?;
    if let Some(path) = &args.out {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::Usage(format!("encoding the report: {e}")))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| Error::Live(format!("cannot write {}: {e}", path.display())))?;
    }
    if !report.requests.is_empty() && report.requests.iter().all(|r| !r.ok()) {
        let first = report.requests.iter().find_map(|r| r.error.clone());
        return Err(Error::Live(format!(
            "all {} requests to {} failed; the first: {}",
            report.requests.len(),
            args.target,
            first.unwrap_or_default()
        )));
    }
    Ok(())
}
