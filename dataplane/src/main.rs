//! `intellinode`: the appliance's command-line entry point.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use dataplane::runtime::{self, RunOptions};

#[derive(Parser)]
#[command(
    name = "intellinode",
    version,
    about = "A DPDK bump-in-the-wire that reads what AI traffic is and steers it",
    long_about = "IntelliNode sits in the wire between AI agents or GPU clusters and the network. \
Poll-mode worker lcores receive bursts from DPDK ports, run the configured pipeline, and \
transmit on the paired port. Every packet is either forwarded or dropped under a named, \
counted reason.",
    after_help = "Examples:\n  intellinode run --config examples/forward.toml --duration 10 -- \\\n      --no-huge -m 512 --no-pci -l 0,1 --file-prefix in0 \\\n      --vdev net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap --vdev net_null0,no-rx=1"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the data plane on the DPDK ports EAL creates
    #[command(
        long_about = "Initialise DPDK's EAL from the arguments after `--`, configure every port named in the \
config's [[pairs]] with one RX and one TX queue per worker lcore (RSS when there are several), and \
run the configured pipeline until --duration elapses, the workers have been idle for --until-idle \
or SIGINT/SIGTERM arrives. Ports are numbered \
in the order EAL creates them (the order of --vdev arguments for virtual devices). The first EAL \
lcore runs statistics; every other lcore runs one worker.",
        after_help = "Exit status: 0 on a clean run, 1 on any error (printed as one line)."
    )]
    Run(RunArgs),
    /// Talk to a running appliance: send state, capability and policy, query stats and state
    #[command(
        long_about = "The operator's and orchestrator's client. Every message is sealed with this peer's key \
(XChaCha20-Poly1305, read from --key-file, never from the command line) and carries a fresh sequence \
number and origin time, so the appliance can authenticate it, refuse replays and measure how fast the \
update reaches its workers. Queries wait for the sealed reply and print it.",
        after_help = "Examples:\n  intellinode ctl keygen orch.key\n  intellinode ctl --key-file orch.key --key-id 1 path-state --path 1 --latency-us 250 --jitter-us 20 --loss 0.001\n  intellinode ctl --key-file orch.key --key-id 1 policy --path 1,1,02:00:00:00:00:0a,edge --route 10.9.0.0/16=1,2\n  intellinode ctl --key-file orch.key --key-id 1 query stats --json"
    )]
    Ctl(dataplane::ctl::CtlArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// TOML configuration: pipeline, burst size, port pairs
    #[arg(long, value_name = "FILE")]
    config: PathBuf,

    /// Stop after this many seconds (default: run until SIGINT/SIGTERM)
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    duration: Option<Duration>,

    /// Also stop once every worker has been idle for SECS with no packet
    /// held (rx + generated = tx + drops): a replayed capture has gone
    /// through and everything it queued has left or been dropped
    #[arg(long, value_name = "SECS", value_parser = parse_secs)]
    until_idle: Option<Duration>,

    /// Print per-port rates every SECS seconds; 0 turns live output off
    #[arg(long, value_name = "SECS", default_value = "1", value_parser = parse_secs)]
    stats_interval: Duration,

    /// Write the final counters as JSON to FILE at exit
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,

    /// DPDK EAL arguments, e.g. `-l 0,1 --no-huge -m 512 --vdev net_null0`
    #[arg(last = true, value_name = "EAL_ARGS")]
    eal_args: Vec<String>,
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(0.0..=1e9).contains(&v) {
        return Err(format!("`{s}` is not a duration between 0 and 1e9 seconds"));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Release builds abort on a panic (`panic = "abort"`). The ci-test profile
/// that `make test` builds unwinds, so that its test binaries and the
/// binaries the end-to-end tests drive share one build of every library;
/// there a panic in a helper thread (control, metrics, probe, predictor)
/// would end only that thread. Abort after the usual message instead, so
/// the binary under test fails the way a release one does.
fn abort_on_panic() {
    if cfg!(panic = "unwind") {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            report(info);
            std::process::abort();
        }));
    }
}

fn main() -> ExitCode {
    abort_on_panic();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => runtime::run(&RunOptions {
            config: a.config,
            duration: a.duration,
            until_idle: a.until_idle,
            stats_interval: a.stats_interval,
            stats_json: a.stats_json,
            eal_args: a.eal_args,
        })
        .map(|_| ()),
        Command::Ctl(a) => dataplane::ctl::run(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` joins the context chain on one line: "a: b: c".
            eprintln!("intellinode: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
