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
    /// Split a pcap over RX queues as a NIC's RSS on an address or the 4-tuple would
    #[command(
        long_about = "Splits a pcap over N receive queues the way a NIC configured as \
docs/architecture.md (RSS on a real NIC) spreads it: the Toeplitz hash of one IP address \
field (the source, or the destination), or of the TCP/UDP 4-tuple, under --key, read through a redirection table whose \
entry j names queue (j mod 128) mod N. Frames without those fields go to queue 0. \
Writes PREFIX-q0.pcap ... PREFIX-q<N-1>.pcap and prints the packets and distinct addresses \
per queue.",
        after_help = "Example:\n  pktgen rss-split agent.pcap --queues 2 --field source \\\n      --key 6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa -o agent"
    )]
    RssSplit(RssSplitArgs),
    /// `serve`, `agent` and `wire`: the emulator's subcommands, the same
    /// code as `emulator serve|agent|wire` (kept here for scripts that
    /// call `pktgen serve`)
    #[command(flatten)]
    Emulator(emulator::cli::Command),
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

/// `pktgen rss-split`.
#[derive(Debug, Args)]
pub struct RssSplitArgs {
    /// The pcap to split
    #[arg(value_name = "FILE.pcap")]
    pub input: PathBuf,
    /// The RSS key: 80 hexadecimal digits (colons between byte pairs allowed)
    #[arg(long)]
    pub key: String,
    /// Receive queues
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub queues: u16,
    /// The address field hashed
    #[arg(long, value_enum, default_value_t = RssField::Source)]
    pub field: RssField,
    /// Output prefix: writes PREFIX-q<i>.pcap
    #[arg(short, long, value_name = "PREFIX")]
    pub output: PathBuf,
}

/// What RSS hashes (`--field`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RssField {
    /// The source address (a steering port facing the agents).
    Source,
    /// The destination address (a steering port facing the instances).
    Destination,
    /// The TCP/UDP 4-tuple: source and destination address, source and
    /// destination port (a tensor host port).
    Ports,
}

/// The bytes a NIC hashes for `field` in `frame`, in wire order, if it
/// has them: an address, or the 4-tuple (addresses, then ports).
pub fn rss_input(frame: &[u8], field: RssField) -> Option<Vec<u8>> {
    let p = classifier::parse(frame).ok()?;
    let (src, dst) = match p.l3_kind {
        classifier::L3Kind::Ipv4 => (12..16, 16..20),
        classifier::L3Kind::Ipv6 => (8..24, 24..40),
        _ => return None,
    };
    let at = usize::from(p.l3_offset);
    let addr = |r: std::ops::Range<usize>| frame.get(at + r.start..at + r.end);
    match field {
        RssField::Source => addr(src).map(<[u8]>::to_vec),
        RssField::Destination => addr(dst).map(<[u8]>::to_vec),
        RssField::Ports => {
            let f = p.flow.filter(|_| !p.is_fragment())?;
            let mut v = addr(src)?.to_vec();
            v.extend_from_slice(addr(dst)?);
            v.extend_from_slice(&f.src_port.to_be_bytes());
            v.extend_from_slice(&f.dst_port.to_be_bytes());
            Some(v)
        }
    }
}

/// The queue a NIC hashing `field` under `toeplitz` delivers `frame` to
/// (queue 0 when it has nothing to hash).
pub fn rss_queue(
    toeplitz: &flowtab::rss::Toeplitz,
    field: RssField,
    queues: usize,
    frame: &[u8],
) -> usize {
    rss_input(frame, field).map_or(0, |i| flowtab::rss::owner(toeplitz.hash(&i), queues))
}

/// `pktgen rss-split`: one pcap per queue, and a line per queue.
pub fn run_rss_split(args: &RssSplitArgs, out: &mut dyn Write) -> Result<(), Error> {
    let key =
        flowtab::rss::parse_key(&args.key).map_err(|e| Error::Usage(format!("--key: {e}")))?;
    let toeplitz = flowtab::rss::Toeplitz::new(&key);
    let queues = usize::from(args.queues);
    let mut split: Vec<(Vec<crate::Packet>, std::collections::HashSet<Vec<u8>>)> =
        (0..queues).map(|_| Default::default()).collect();
    for r in pcap::read_file(&args.input)? {
        let q = rss_queue(&toeplitz, args.field, queues, &r.data);
        if let Some((packets, addresses)) = split.get_mut(q) {
            if let Some(a) = rss_input(&r.data, args.field) {
                addresses.insert(a);
            }
            packets.push(crate::Packet {
                ts_ns: r.ts_ns,
                data: r.data,
            });
        }
    }
    for (q, (packets, addresses)) in split.iter().enumerate() {
        let path = PathBuf::from(format!("{}-q{q}.pcap", args.output.display()));
        pcap::write_file(&path, TsResolution::Micro, packets)?;
        writeln!(
            out,
            "queue {q}: {} packets of {} distinct hash inputs -> {}",
            packets.len(),
            addresses.len(),
            path.display()
        )?;
    }
    Ok(())
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
    /// agent only: spread the requests over N agent hosts (10.0.1.11–16,
    /// then 10.1.0.1 onwards) instead of six; IPv4 only
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(agent::MAX_AGENT_HOSTS)))]
    pub agent_hosts: Option<u32>,
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

impl From<emulator::cli::Error> for Error {
    fn from(e: emulator::cli::Error) -> Self {
        match e {
            emulator::cli::Error::Output(e) => Error::Output(e),
            emulator::cli::Error::Usage(e) => Error::Usage(e),
            emulator::cli::Error::Live(e) => Error::Live(e),
        }
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
            "--tlv, --responses and --agent-hosts apply to the agent workload only, not {kind}"
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
        Command::RssSplit(args) => run_rss_split(&args, out),
        Command::Emulator(command) => emulator::cli::run(command, out).map_err(Error::from),
    }
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
                hosts: None,
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
    if args.agent_hosts.is_some() && matches!(args.tlv, TlvMode::Ipv6 | TlvMode::Mixed) {
        return Err(Error::Usage(
            "--agent-hosts is IPv4 only: use --tlv ipv4 or none".into(),
        ));
    }
    let opts = AgentOptions {
        tlv: args.tlv,
        responses: args.responses,
        hosts: args.agent_hosts,
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
    if let Some(n) = opts.hosts {
        summary.push_str(&format!(", from {n} agent hosts"));
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
