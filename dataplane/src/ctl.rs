//! `intellinode ctl`: the operator's and orchestrator's client.
//!
//! It builds control messages from flags, seals them with the peer's key
//! (read from a file, never from the command line), sends them over UDP and,
//! for queries, waits for the sealed reply and prints it, human-readable or
//! as JSON.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use control::{Key, Message, Sender};

use crate::control_plane::realtime_ns;

#[derive(Args, Debug)]
pub struct CtlArgs {
    /// The appliance's control address
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:7470",
        value_name = "ADDR"
    )]
    pub server: SocketAddr,

    /// File with this peer's key (64 hex characters, mode 0600); required
    /// for everything but keygen
    #[arg(long, global = true, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// This peer's key id, as configured in the appliance's [[control.peers]]
    #[arg(long, global = true, value_name = "ID")]
    pub key_id: Option<u32>,

    /// Print results as JSON
    #[arg(long, global = true)]
    pub json: bool,

    /// How long to wait for a query's reply
    #[arg(long, global = true, default_value_t = 1000, value_name = "MS")]
    pub timeout_ms: u64,

    #[command(subcommand)]
    pub command: CtlCommand,
}

#[derive(Subcommand, Debug)]
pub enum CtlCommand {
    /// Report a network path's state (latency, jitter, bandwidth, loss)
    PathState(PathStateArgs),
    /// Report a compute node's state (GPU load, memory, queue, TTFT)
    NodeState(NodeStateArgs),
    /// Announce a compute node's capability (needs the `capability` role)
    Capability(CapabilityArgs),
    /// Install paths, forwarding entries, class weights and thresholds
    Policy(PolicyArgs),
    /// Send every message described in a TOML file, in order
    #[command(
        long_about = "Send every message described in a TOML file, in file order: \
[[path_state]], [[node_state]], [[capability]] and [[policy]] tables with the same keys as the \
corresponding subcommands' flags (underscores for dashes). Unknown keys are errors; nothing is \
sent unless the whole file is valid."
    )]
    Apply {
        #[arg(value_name = "FILE.toml")]
        file: PathBuf,
    },
    /// Ask the appliance for its stats, state or feedback
    Query {
        #[arg(value_enum)]
        what: QueryWhat,
    },
    /// Send path-state updates at a fixed rate (benchmarks, soak tests)
    Stream(StreamArgs),
    /// Write a new random key to FILE (mode 0600) and print its hex
    Keygen {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}

#[derive(Args, Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathStateArgs {
    #[arg(long)]
    pub path: u16,
    /// One-way latency in microseconds
    #[arg(long)]
    pub latency_us: Option<f64>,
    /// Jitter in microseconds
    #[arg(long)]
    pub jitter_us: Option<f64>,
    /// Available bandwidth in bits per second
    #[arg(long)]
    pub bandwidth_bps: Option<f64>,
    /// Loss ratio, 0 to 1
    #[arg(long)]
    pub loss: Option<f64>,
    /// How the values were obtained
    #[arg(long, value_enum, default_value_t = Source::Measured)]
    #[serde(default)]
    pub source: Source,
}

#[derive(Args, Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeStateArgs {
    #[arg(long)]
    pub node: u16,
    /// GPU utilisation, 0 to 1
    #[arg(long)]
    pub gpu_util: Option<f64>,
    /// GPU memory utilisation, 0 to 1
    #[arg(long)]
    pub mem_util: Option<f64>,
    /// Requests waiting
    #[arg(long)]
    pub queue: Option<f64>,
    /// Estimated time to first token, milliseconds
    #[arg(long)]
    pub ttft_ms: Option<f64>,
    #[arg(long, value_enum, default_value_t = Source::Measured)]
    #[serde(default)]
    pub source: Source,
}

#[derive(Args, Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityArgs {
    #[arg(long)]
    pub node: u16,
    /// Model name, e.g. llama-3-8b
    #[arg(long)]
    pub model: String,
    /// Model class
    #[arg(long, value_enum)]
    pub class: ModelClass,
    /// Accelerator kind, e.g. A100
    #[arg(long)]
    pub accelerator: String,
    /// Task types served, comma-separated: immediate_control, chat, code_generation, summarisation, complex_reasoning
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// Longest context, tokens
    #[arg(long)]
    pub max_context: u32,
    /// Prefill rate, tokens per second
    #[arg(long)]
    pub prefill_tps: f64,
    /// Decode rate, tokens per second
    #[arg(long)]
    pub decode_tps: f64,
    /// Requests served concurrently
    #[arg(long)]
    pub concurrency: Option<u32>,
}

#[derive(Args, Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyArgs {
    /// Replace the whole policy instead of updating entries
    #[arg(long)]
    #[serde(default)]
    pub replace: bool,
    /// A path: ID,EGRESS_PORT,NEXT_HOP_MAC[,NAME]
    #[arg(long = "path", value_name = "ID,PORT,MAC[,NAME]")]
    #[serde(default)]
    pub paths: Vec<String>,
    /// A forwarding entry: PREFIX=PATH[,PATH...], candidates in preference order
    #[arg(long = "route", value_name = "PREFIX=PATHS")]
    #[serde(default)]
    pub routes: Vec<String>,
    /// A class weight: CLASS=WEIGHT
    #[arg(long = "class-weight", value_name = "CLASS=WEIGHT")]
    #[serde(default)]
    pub class_weights: Vec<String>,
    /// A threshold: NAME=VALUE (max_state_age_ms, max_path_loss_ratio, jitter_weight, short_task_tokens)
    #[arg(long = "threshold", value_name = "NAME=VALUE")]
    #[serde(default)]
    pub thresholds: Vec<String>,
}

/// `ctl apply`'s file: tables of the subcommands' fields.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageFile {
    #[serde(default)]
    pub path_state: Vec<PathStateArgs>,
    #[serde(default)]
    pub node_state: Vec<NodeStateArgs>,
    #[serde(default)]
    pub capability: Vec<CapabilityArgs>,
    #[serde(default)]
    pub policy: Vec<PolicyArgs>,
}

impl MessageFile {
    /// Every message the file describes, validated; one line per problem.
    pub fn messages(path: &std::path::Path) -> Result<Vec<Message>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow!(
                "{}: cannot read: {}",
                path.display(),
                crate::config::io_reason(&e)
            )
        })?;
        let file: MessageFile = toml::from_str(&text).map_err(|e| {
            anyhow!(
                "{}: {}",
                path.display(),
                e.message().trim().replace('\n', " ")
            )
        })?;
        let mut out = Vec::new();
        for a in file.path_state {
            out.push(
                crate::ctl_messages::build(&CtlCommand::PathState(a))
                    .map_err(|e| anyhow!("{}: {e}", path.display()))?,
            );
        }
        for a in file.node_state {
            out.push(
                crate::ctl_messages::build(&CtlCommand::NodeState(a))
                    .map_err(|e| anyhow!("{}: {e}", path.display()))?,
            );
        }
        for a in file.capability {
            out.push(
                crate::ctl_messages::build(&CtlCommand::Capability(a))
                    .map_err(|e| anyhow!("{}: {e}", path.display()))?,
            );
        }
        for a in file.policy {
            out.push(
                crate::ctl_messages::build(&CtlCommand::Policy(a))
                    .map_err(|e| anyhow!("{}: {e}", path.display()))?,
            );
        }
        if out.is_empty() {
            bail!(
                "{}: no [[path_state]], [[node_state]], [[capability]] or [[policy]] table",
                path.display()
            );
        }
        Ok(out)
    }
}

#[derive(Args, Debug, Clone)]
pub struct StreamArgs {
    /// Messages per second
    #[arg(long, default_value_t = 10_000.0)]
    pub rate: f64,
    /// Seconds to stream
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Path ids to cycle through (PATH_STATE updates: a latency)
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub paths: Vec<u16>,
    /// Node ids to cycle through as well (NODE_STATE updates: a short
    /// queue), interleaved with the paths
    #[arg(long, value_delimiter = ',')]
    pub nodes: Vec<u16>,
}

#[derive(ValueEnum, Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Nominal,
    Estimated,
    #[default]
    Measured,
}

#[derive(ValueEnum, Debug, Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelClass {
    Edge,
    Centre,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum QueryWhat {
    Stats,
    State,
    Feedback,
}

/// Runs a `ctl` command.
pub fn run(args: &CtlArgs) -> Result<()> {
    if let CtlCommand::Keygen { file } = &args.command {
        return keygen(file);
    }
    let key_file = args
        .key_file
        .as_ref()
        .ok_or_else(|| anyhow!("--key-file is required"))?;
    let key_id = args.key_id.ok_or_else(|| anyhow!("--key-id is required"))?;
    let key = Key::from_file(key_file).map_err(|e| anyhow!("{e}"))?;
    // Sequence numbers start from the wall clock in microseconds, so every
    // new `ctl` process starts above the appliance's replay window.
    let mut sender = Sender::new(key_id, key, realtime_ns() / 1000);
    let socket = UdpSocket::bind(if args.server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .context("ctl: cannot open a UDP socket")?;
    socket
        .connect(args.server)
        .with_context(|| format!("ctl: cannot reach {}", args.server))?;

    match &args.command {
        CtlCommand::Query { what } => {
            let message = crate::ctl_messages::query(*what);
            let (seq, datagram) = seal(&mut sender, &message)?;
            socket.send(&datagram).context("ctl: send")?;
            let reply = wait_reply(
                &socket,
                &sender,
                seq,
                Duration::from_millis(args.timeout_ms),
                args.server,
            )?;
            let value: serde_json::Value =
                serde_json::from_str(&reply).context("ctl: the reply is not JSON")?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&value).unwrap_or(reply));
            } else {
                print!("{}", crate::ctl_messages::render_reply(*what, &value));
            }
            Ok(())
        }
        CtlCommand::Stream(s) => stream(&socket, &mut sender, s, args.json),
        CtlCommand::Apply { file } => {
            let messages = MessageFile::messages(file)?;
            for message in &messages {
                let (seq, datagram) = seal(&mut sender, message)?;
                socket
                    .send(&datagram)
                    .with_context(|| format!("ctl: cannot send to {}", args.server))?;
                if !args.json {
                    println!(
                        "sent {} (seq {seq}, {} bytes) to {}",
                        message.kind().name(),
                        datagram.len(),
                        args.server
                    );
                }
            }
            if args.json {
                println!("{}", serde_json::json!({"sent": messages.len()}));
            }
            Ok(())
        }
        other => {
            let message = crate::ctl_messages::build(other)?;
            let (seq, datagram) = seal(&mut sender, &message)?;
            socket
                .send(&datagram)
                .with_context(|| format!("ctl: cannot send to {}", args.server))?;
            let kind = message.kind().name();
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"sent": kind, "seq": seq, "bytes": datagram.len()})
                );
            } else {
                println!(
                    "sent {kind} (seq {seq}, {} bytes) to {}",
                    datagram.len(),
                    args.server
                );
            }
            Ok(())
        }
    }
}

/// Seals `message` with the next sequence number; returns both.
fn seal(sender: &mut Sender, message: &Message) -> Result<(u64, Vec<u8>)> {
    let seq = sender
        .next_seq()
        .ok_or_else(|| anyhow!("ctl: sequence numbers exhausted"))?;
    let datagram = sender
        .seal(message, realtime_ns())
        .map_err(|e| anyhow!("ctl: cannot seal the message: {e}"))?;
    Ok((seq, datagram))
}

fn wait_reply(
    socket: &UdpSocket,
    sender: &Sender,
    seq: u64,
    timeout: Duration,
    server: SocketAddr,
) -> Result<String> {
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("no reply from {server} within {} ms (is intellinode running with [control], and is this peer allowed to query?)", timeout.as_millis());
        }
        socket.set_read_timeout(Some(left)).context("ctl socket")?;
        match socket.recv(&mut buf) {
            Ok(n) => match sender.open_reply(&buf[..n], seq, realtime_ns()) {
                Ok(text) => return Ok(text),
                // The appliance did answer, but its clock and ours are too
                // far apart to trust the answer's age: waiting cannot help.
                Err(e @ control::Reject::Stale(_)) => {
                    bail!("the reply from {server} is refused: {e} (are both hosts' clocks right?)")
                }
                // A datagram that does not open under our key, or answers
                // another query, is not our reply: keep waiting.
                Err(_) => {}
            },
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => bail!("no reply from {server}: {e}"),
        }
    }
}

fn stream(socket: &UdpSocket, sender: &mut Sender, s: &StreamArgs, json: bool) -> Result<()> {
    if !(s.rate.is_finite() && s.rate > 0.0 && s.duration.is_finite() && s.duration > 0.0) {
        bail!("--rate and --duration must be positive");
    }
    if s.paths.is_empty() {
        bail!("--paths needs at least one path id");
    }
    let total = (s.rate * s.duration) as u64;
    // One turn visits every path, then every node.
    let turn = (s.paths.len() + s.nodes.len()) as u64;
    let start = Instant::now();
    let (mut sent, mut node_states, mut errors) = (0u64, 0u64, 0u64);
    while sent < total {
        // Send everything due by now, then sleep a little: pacing in 1 ms
        // steps keeps the rate exact without a busy loop.
        let due = ((start.elapsed().as_secs_f64() * s.rate) as u64).min(total);
        while sent < due {
            let slot = (sent % turn) as usize;
            let message = match s.paths.get(slot) {
                Some(&path) => {
                    crate::ctl_messages::path_state_update(path, 100.0 + (sent % 1000) as f64)
                }
                None => {
                    node_states += 1;
                    let node = s.nodes[slot - s.paths.len()];
                    crate::ctl_messages::node_state_update(node, (sent % 4) as f64)
                }
            };
            match seal(sender, &message) {
                Ok((_, datagram)) if socket.send(&datagram).is_ok() => {}
                _ => errors += 1,
            }
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    let secs = start.elapsed().as_secs_f64();
    let path_states = sent - node_states;
    if json {
        println!(
            "{}",
            serde_json::json!({"sent": sent, "path_states": path_states, "node_states": node_states,
                "errors": errors, "secs": secs, "rate": sent as f64 / secs})
        );
    } else if node_states == 0 {
        println!(
            "streamed {sent} path-state updates in {secs:.2} s ({:.0}/s), {errors} send errors",
            sent as f64 / secs
        );
    } else {
        println!(
            "streamed {sent} updates ({path_states} path-state, {node_states} node-state) in {secs:.2} s ({:.0}/s), {errors} send errors",
            sent as f64 / secs
        );
    }
    Ok(())
}

fn keygen(file: &std::path::Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let key = Key::generate();
    // `keygen keys/orch.key` on a fresh checkout: the directory is made
    // (readable by its owner only, as what it holds).
    if let Some(dir) = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| {
                anyhow!(
                    "cannot create directory {} for the key file: {e}",
                    dir.display()
                )
            })?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| {
            anyhow!(
                "cannot create key file {}: {}",
                file.display(),
                crate::config::io_reason(&e)
            )
        })?;
    writeln!(f, "{}", key.to_hex()).with_context(|| format!("cannot write {}", file.display()))?;
    println!("wrote a new key to {} (mode 0600)", file.display());
    Ok(())
}
