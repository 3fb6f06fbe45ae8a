//! The `pktgen` command line.
//!
//! Subcommands are variants of [`Command`], each with its own `Args` struct
//! and `run_*` function; [`run`] dispatches. The DPDK `send` subcommand is
//! added the same way: a `Send(SendArgs)` variant and a match arm, without
//! touching `write` or `inspect`.

use std::fmt;
use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::build::BuildError;
use crate::live::client::{
    self, AgentConfig, Arrivals, LoadOptions, SocketTlv, Transport, WorkloadSizes,
};
use crate::live::delay_line::LineConfig;
use crate::live::serve::{self, ServeConfig};
use crate::pcap::{self, PcapError, PcapReader, TsResolution, LINKTYPE_ETHERNET};
use crate::stats::Stats;
use crate::workload::agent::{self, AgentOptions, TlvMode};
use crate::workload::{self, WorkloadConfig, WorkloadKind};

/// IntelliNode traffic generator.
#[derive(Debug, Parser)]
#[command(
    name = "pktgen",
    version,
    about = "IntelliNode traffic generator: reproducible pcap workloads and capture inspection",
    long_about = "IntelliNode traffic generator.\n\n\
        `write` generates a reproducible workload — AI-agent LLM requests, RoCEv2 \
        training traffic, a mix of both with web-search flow sizes, or the \
        edge-case conformance set — and writes it as a classic pcap file. \
        `inspect` classifies every frame of a pcap with the appliance's own parser \
        and prints per-class counts.",
    after_help = "Examples:\n  \
        pktgen write --workload mix --seed 1 --packets 100000 -o mix.pcap\n  \
        pktgen write --workload edge-cases -o edge.pcap\n  \
        pktgen inspect mix.pcap"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a workload and write it to a pcap file
    Write(WriteArgs),
    /// Classify every frame of a pcap file and print per-class counts
    Inspect(InspectArgs),
    /// DPDK mode: replay a workload on one port, receive on another, measure
    #[command(
        long_about = "DPDK mode. Loads a workload (a pcap, or one generated on the fly), transmits it in a \
loop on --tx-port at full rate or --rate-pps, and receives on --rx-port. Every frame carries a \
16-byte TSC stamp after its last byte (see docs/wire-format.md), so what comes back is matched \
and timed: the report gives Mpps, Gbit/s, loss, reordering and latency percentiles. The \
arguments after `--` go to DPDK's EAL; its first lcore waits, the second runs the generator.",
        after_help = "Examples:\n  pktgen send --pcap mix.pcap --tx-port 0 --rx-port 1 --duration 5 -- \\\n      --no-huge -m 512 --no-pci -l 0,1 --file-prefix gen \\\n      --vdev net_af_packet0,iface=vethA --vdev net_af_packet1,iface=vethB"
    )]
    Send(SendArgs),
    /// Emulate an inference node over real TCP (HTTP/1.1, streamed answers)
    #[command(
        long_about = "OpenAI-compatible inference-node emulator over kernel TCP sockets. Answers \
POST /v1/chat/completions and /v1/completions (HTTP/1.1 keep-alive or HTTP/1.0; Content-Length or \
chunked bodies; Expect: 100-continue): after the path delay, a FIFO wait for one of --concurrency \
batch slots, and --base-ttft-ms + prompt tokens / --prefill-tps of prefill, it decodes max_tokens \
tokens (or tokenfeat's default for the task) at --decode-tps: \"stream\": true gets \
text/event-stream chat.completion.chunk events (4 tokens each) and `data: [DONE]`, \"stream\": false \
one chat.completion JSON with usage. GET /v1/models lists --name. `GET /state` returns \
{name, queue_len, active, served, concurrency, gpu_util, kv_util, est_ttft_ms}. With --udp it \
also serves the INUD datagram protocol (docs/wire-format.md §8) on that address, with the same \
model and the same batch slots. Prints `listening on ADDR` first.",
        after_help = "Examples:\n  pktgen serve --listen 10.0.2.1:8000 --name edge --concurrency 4\n  \
pktgen serve --listen 10.0.3.1:8000 --name centre --delay-ms 20 --jitter-ms 2 --stats-json centre.json"
    )]
    Serve(ServeArgs),
    /// Open-loop load generator: AI-agent requests over TCP, TTFT per class
    #[command(
        long_about = "Open-loop client. Sends --requests chat-completion requests (short control \
commands and long prompts from the agent workload) to --target at Poisson arrivals (--rate) or a \
fixed --interval-ms, each on its own connection and thread, and measures TTFT (last request byte \
written to the first `data:` byte) and completion (to `data: [DONE]`). With --tlv ipv4 every \
packet of a request's connection carries the token feature TLV as IPv4 option 0x9E \
(setsockopt IP_OPTIONS; needs root or CAP_NET_RAW).",
        after_help = "Examples:\n  pktgen agent --target 10.0.100.1:8000 --requests 200 --rate 20 --tlv ipv4 --out run.json"
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
        after_help = "Example:\n  ip netns exec w pktgen wire --a wa --b wb --delay-ms 20 --jitter-ms 2 --loss 0.01 --stats-json wire.json"
    )]
    Wire(WireArgs),
}

/// `pktgen wire`.
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

/// `pktgen serve`.
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
    /// tokens of the requests in service / this
    #[arg(long, default_value_t = crate::live::serve::DEFAULT_KV_TOKENS, value_name = "TOKENS")]
    pub kv_tokens: u64,
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

/// `pktgen agent`.
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
}

/// `pktgen send`.
#[derive(Debug, Args)]
pub struct SendArgs {
    /// Workload pcap to replay
    #[arg(long, value_name = "FILE.pcap", conflicts_with = "workload")]
    pub pcap: Option<PathBuf>,
    /// Generate this workload instead of reading a pcap
    #[arg(short, long, value_enum)]
    pub workload: Option<WorkloadKind>,
    /// Seed for --workload
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Packets to generate for --workload
    #[arg(short = 'n', long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub packets: u64,
    /// agent only: put the token feature TLV (token-aware steering draft
    /// §5a) in every request packet — `ipv4`: IPv4 option 0x9E; `ipv6`:
    /// requests over IPv6 (fd00::/8 addresses) with a Hop-by-Hop option
    /// 0x1E; `mixed`: alternating per request. The ID is what `tokenfeat`
    /// extracts from the prompt and max_tokens (long prompts also give the
    /// agent's task as a hint)
    #[arg(long, value_enum, default_value_t = TlvMode::None, value_name = "CARRIER")]
    pub tlv: TlvMode,
    /// agent only: also generate the server's answers (TCP: SYN-ACK, ACK,
    /// the streamed response, FIN; UDP: response datagrams), the first after
    /// a time to first token of 20 ms + prompt tokens / 5000 per second,
    /// then one packet per 4 output tokens at 50 tokens per second
    #[arg(long)]
    pub responses: bool,
    /// DPDK port to transmit on
    #[arg(long, default_value_t = 0)]
    pub tx_port: u16,
    /// DPDK port to receive on (may equal --tx-port for a loopback device)
    #[arg(long, default_value_t = 1)]
    pub rx_port: u16,
    /// Seconds to transmit
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Stop after this many packets
    #[arg(long)]
    pub count: Option<u64>,
    /// Packets per second (default: as fast as the port accepts them)
    #[arg(long)]
    pub rate_pps: Option<f64>,
    /// Packets per transmit burst (1 to 64)
    #[arg(long, default_value_t = 32)]
    pub burst: usize,
    /// Milliseconds to keep receiving after the last transmit
    #[arg(long, default_value_t = 300)]
    pub drain_ms: u64,
    /// Also write the report as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// DPDK EAL arguments
    #[arg(last = true, value_name = "EAL_ARGS")]
    pub eal_args: Vec<String>,
}

/// `pktgen write`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Traffic to generate
    #[arg(short, long, value_enum)]
    pub workload: WorkloadKind,
    /// Seed of the generator: the same seed gives a byte-identical file
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of packets to write [default: 10000; edge-cases is a fixed set]
    #[arg(short = 'n', long, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub packets: Option<u64>,
    /// Cap on the bytes of any one flow or RDMA message, to keep files small
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_flow_bytes: u64,
    /// Write nanosecond timestamps (default: microseconds, which every tool reads)
    #[arg(long)]
    pub nanosecond: bool,
    /// agent only: put the token feature TLV (token-aware steering draft
    /// §5a) in every request packet — `ipv4`: IPv4 option 0x9E; `ipv6`:
    /// requests over IPv6 (fd00::/8 addresses) with a Hop-by-Hop option
    /// 0x1E; `mixed`: alternating per request. The ID is what `tokenfeat`
    /// extracts from the prompt and max_tokens (long prompts also give the
    /// agent's task as a hint)
    #[arg(long, value_enum, default_value_t = TlvMode::None, value_name = "CARRIER")]
    pub tlv: TlvMode,
    /// agent only: also generate the server's answers (TCP: SYN-ACK, ACK,
    /// the streamed response, FIN; UDP: response datagrams), the first after
    /// a time to first token of 20 ms + prompt tokens / 5000 per second,
    /// then one packet per 4 output tokens at 50 tokens per second
    #[arg(long)]
    pub responses: bool,
    /// Output pcap file
    #[arg(short, long, value_name = "FILE.pcap")]
    pub output: PathBuf,
}

/// `pktgen inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The pcap file to read
    #[arg(value_name = "FILE.pcap")]
    pub file: PathBuf,
    /// Skip verifying UDP/TCP checksums and RoCEv2 ICRCs
    #[arg(long)]
    pub no_checksums: bool,
}

/// Why a subcommand failed; printed as one line after `pktgen: error: `.
#[derive(Debug)]
pub enum Error {
    /// Reading or writing a pcap file.
    Pcap(PcapError),
    /// A workload asked an emitter for something unrepresentable (a bug).
    Build(BuildError),
    /// The capture is not Ethernet.
    NotEthernet {
        /// The file.
        file: String,
        /// Its link type.
        linktype: u32,
    },
    /// Writing the report to stdout.
    Output(io::Error),
    /// DPDK mode failed (EAL, ports, arguments).
    Send(String),
    /// Options that do not go together.
    Usage(String),
    /// `serve` or `agent` failed (sockets, files, every request failing).
    Live(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Pcap(e) => e.fmt(f),
            Error::Build(e) => write!(f, "internal: generating the workload failed while {e}"),
            Error::NotEthernet { file, linktype } => write!(
                f,
                "pcap {file}: link type {linktype} is not Ethernet ({LINKTYPE_ETHERNET}); only Ethernet captures can be classified"
            ),
            Error::Output(e) => write!(f, "writing the report: {e}"),
            Error::Send(e) | Error::Usage(e) | Error::Live(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for Error {}

impl From<PcapError> for Error {
    fn from(e: PcapError) -> Self {
        Error::Pcap(e)
    }
}

impl From<BuildError> for Error {
    fn from(e: BuildError) -> Self {
        Error::Build(e)
    }
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Output(e)
    }
}

/// Generates `kind` with the agent options `opts`, which only `agent`
/// accepts.
fn generate(
    kind: WorkloadKind,
    cfg: &WorkloadConfig,
    opts: &AgentOptions,
) -> Result<Vec<crate::Packet>, Error> {
    if kind == WorkloadKind::Agent {
        return Ok(agent::generate_with(cfg, opts)?);
    }
    if *opts != AgentOptions::default() {
        return Err(Error::Usage(format!(
            "--tlv and --responses apply to the agent workload only, not {kind}"
        )));
    }
    Ok(workload::generate(kind, cfg)?)
}

/// Runs `command`, writing its report to `out`.
pub fn run(command: Command, out: &mut dyn Write) -> Result<(), Error> {
    match command {
        Command::Write(args) => run_write(&args, out),
        Command::Inspect(args) => run_inspect(&args, out),
        Command::Send(args) => run_send(&args, out),
        Command::Serve(args) => run_serve(&args, out),
        Command::Agent(args) => run_agent(&args, out),
        Command::Wire(args) => run_wire(&args, out),
    }
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
) -> Result<crate::live::wire::Cut, Error> {
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

/// `pktgen wire`: open both interfaces, print `wire: bridging A <-> B`,
/// bridge until the duration ends or SIGINT/SIGTERM, print the counts.
pub fn run_wire(args: &WireArgs, out: &mut dyn Write) -> Result<(), Error> {
    use crate::live::wire;
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

/// `pktgen serve`: listen, print `listening on ADDR`, serve until the
/// duration ends or SIGINT/SIGTERM, print a one-line summary.
pub fn run_serve(args: &ServeArgs, out: &mut dyn Write) -> Result<(), Error> {
    let duration = duration_option("--duration-s", args.duration_s)?;
    let report = match (args.report_to, &args.key_file, args.key_id, args.node) {
        (Some(to), Some(key_file), Some(key_id), Some(node)) => {
            Some(crate::live::report::ReportConfig {
                to,
                key_file: key_file.clone(),
                key_id,
                node,
                interval: std::time::Duration::from_millis(args.interval_ms.max(1)),
            })
        }
        _ => None,
    };
    let cfg = ServeConfig {
        listen: args.listen,
        udp: args.udp,
        kv_tokens: args.kv_tokens,
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

/// `pktgen agent`: send the load, print per-class summaries, write --out.
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

/// `pktgen send`: load the workload, run the generator, print the report.
pub fn run_send(args: &SendArgs, out: &mut dyn Write) -> Result<(), Error> {
    let frames: Vec<Vec<u8>> = match (&args.pcap, args.workload) {
        (Some(path), _) => pcap::read_file(path)?.into_iter().map(|r| r.data).collect(),
        (None, Some(kind)) => {
            let cfg = WorkloadConfig {
                seed: args.seed,
                packets: usize::try_from(args.packets).unwrap_or(usize::MAX),
                ..WorkloadConfig::default()
            };
            let opts = AgentOptions {
                tlv: args.tlv,
                responses: args.responses,
            };
            generate(kind, &cfg, &opts)?
                .into_iter()
                .map(|p| p.data)
                .collect()
        }
        (None, None) => {
            return Err(Error::Send(
                "give a workload: --pcap FILE or --workload KIND".into(),
            ))
        }
    };
    if !(args.duration.is_finite() && args.duration > 0.0) {
        return Err(Error::Send(format!(
            "--duration {} must be a positive number of seconds",
            args.duration
        )));
    }
    if args.rate_pps.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
        return Err(Error::Send("--rate-pps must be a positive number".into()));
    }
    let opts = crate::send::SendOptions {
        tx_port: args.tx_port,
        rx_port: args.rx_port,
        duration: std::time::Duration::from_secs_f64(args.duration),
        count: args.count,
        rate_pps: args.rate_pps,
        burst: args.burst,
        drain: std::time::Duration::from_millis(args.drain_ms),
    };
    let report = crate::send::run(frames, &opts, &args.eal_args)
        .map_err(|e| Error::Send(format!("{e:#}")))?;
    writeln!(out, "{}", report.render())?;
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::Send(format!("encoding the report: {e}")))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| Error::Send(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

/// `pktgen write`: generate, write the pcap, print a one-paragraph summary.
pub fn run_write(args: &WriteArgs, out: &mut dyn Write) -> Result<(), Error> {
    let defaults = WorkloadConfig::default();
    let cfg = WorkloadConfig {
        seed: args.seed,
        packets: args.packets.map_or(defaults.packets, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        }),
        max_flow_bytes: args.max_flow_bytes,
    };
    let opts = AgentOptions {
        tlv: args.tlv,
        responses: args.responses,
    };
    let packets = generate(args.workload, &cfg, &opts)?;
    let resolution = if args.nanosecond {
        TsResolution::Nano
    } else {
        TsResolution::Micro
    };
    pcap::write_file(&args.output, resolution, &packets)?;

    let mut stats = Stats::new(false);
    for p in &packets {
        stats.add(p.ts_ns, &p.data);
    }
    let mut summary = stats.summary(&args.output.display().to_string());
    summary.push_str(&format!(" Workload {}, seed {}", args.workload, args.seed));
    if opts.tlv != TlvMode::None {
        summary.push_str(&format!(", token feature TLV {}", opts.tlv));
    }
    if opts.responses {
        summary.push_str(", with server responses");
    }
    if args.workload == WorkloadKind::EdgeCases {
        summary.push_str(" (a fixed set: --packets and --seed do not apply)");
    }
    summary.push('.');
    writeln!(out, "{summary}")?;
    Ok(())
}

/// `pktgen inspect`: classify every record and print the table. A corrupt
/// file still gets the counts of what was read before the error.
pub fn run_inspect(args: &InspectArgs, out: &mut dyn Write) -> Result<(), Error> {
    let name = args.file.display().to_string();
    let reader = PcapReader::open(&args.file)?;
    if reader.linktype() != LINKTYPE_ETHERNET {
        return Err(Error::NotEthernet {
            file: name,
            linktype: reader.linktype(),
        });
    }
    let mut stats = Stats::new(!args.no_checksums);
    let mut failure = None;
    for rec in reader {
        match rec {
            Ok(r) => stats.add(r.ts_ns, &r.data),
            Err(e) => failure = Some(e),
        }
    }
    write!(out, "{}", stats.table(&name))?;
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
