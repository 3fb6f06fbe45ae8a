//! `collector`: see `collector --help` and the `collector` library docs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use collector::config::CollectorConfig;

/// IntelliNode's compute-state collector.
#[derive(Debug, Parser)]
#[command(
    name = "collector",
    version,
    about = "Scrapes inference servers' Prometheus metrics (vLLM, SGLang, TensorRT-LLM, TGI) and pushes sealed NODE_STATE and CAPABILITY to IntelliNode appliances",
    long_about = "Scrapes each [[instances]] metrics_url every interval_ms (default 50) and pushes the \
NODE_STATE it derives (queue = waiting requests, memory utilisation = KV-cache use, GPU utilisation = \
running / concurrency, estimated TTFT = mean of the TTFT histogram's increments since the last scrape) to \
every appliance. A scrape that fails (no connection, timeout_ms passed, HTTP error, a page that is not \
Prometheus text or names no known server) reports the node down at once: queue 1000000, utilisations 1. \
With a [instances.capability] table it reads /v1/models (max_model_len) every capability_interval_ms and \
pushes CAPABILITY. Keys: docs/configuration.md, \"The collector\". Prints `collector: scraping N instances` \
when running; at exit, per-instance counts.",
    after_help = "Example:\n  collector --config collector.toml --stats-json collector.json"
)]
struct Cli {
    /// The TOML config
    #[arg(long, value_name = "FILE.toml")]
    config: PathBuf,
    /// Override the config's interval_ms
    #[arg(long, value_name = "MS")]
    interval_ms: Option<u64>,
    /// Exit after this many seconds (default: until SIGINT/SIGTERM)
    #[arg(long, value_name = "SECONDS")]
    duration_s: Option<f64>,
    /// Write per-instance counters as JSON at exit
    #[arg(long, value_name = "FILE")]
    stats_json: Option<PathBuf>,
}

fn run(cli: &Cli) -> Result<(), String> {
    let mut cfg = CollectorConfig::from_file(&cli.config)?;
    if let Some(i) = cli.interval_ms {
        cfg.interval_ms = i;
        cfg.validate()?;
    }
    let duration = match cli.duration_s {
        Some(d) if d.is_finite() && d > 0.0 => Some(Duration::from_secs_f64(d)),
        Some(d) => {
            return Err(format!(
                "--duration-s {d} must be a positive number of seconds"
            ))
        }
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| format!("cannot handle signals: {e}"))?;
    }
    println!(
        "collector: scraping {} instances every {} ms, pushing to {}",
        cfg.instances.len(),
        cfg.interval_ms,
        cfg.appliances
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let stats = collector::collect::run(&cfg, duration, stop).map_err(|e| e.to_string())?;
    for s in &stats.instances {
        let failures: u64 = s.scrape_failures.values().sum();
        println!(
            "collector: node {} ({}): {} scrapes, {} failed, {} NODE_STATE, {} CAPABILITY",
            s.node, s.metrics_url, s.scrapes_ok, failures, s.node_states, s.capabilities
        );
    }
    if let Some(path) = &cli.stats_json {
        let text = serde_json::to_string_pretty(&stats).map_err(|e| e.to_string())?;
        std::fs::write(path, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("collector: internal error{at}");
        // As a release build (`panic = "abort"`) does, also under the
        // ci-test profile, which unwinds: a panicking thread ends the process.
        if cfg!(panic = "unwind") {
            std::process::abort();
        }
    }));
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("collector: error: {e}");
            ExitCode::FAILURE
        }
    }
}
