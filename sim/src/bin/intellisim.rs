//! `intellisim`: the deterministic steering simulator's command line.
//!
//! ```text
//! intellisim plan
//! intellisim eval  [--requests N] [--replications R] [--seed S] [--out FILE]
//! intellisim scale [--nodes N] [--requests N] [--load F] [--seed S] [--policies a,b] [--out FILE]
//! intellisim failover [--seed S] [--out FILE]
//! intellisim uplink [--load F] [--utilisation F] [--requests N] [--replications R] [--seed S] [--out FILE]
//! intellisim prefix [--requests N] [--replications R] [--seed S] [--no-prefix-names] [--out FILE]
//! ```
//!
//! * `prefix` writes [`sim::prefix_eval::PrefixReport`]: shared-prefix
//!   agent traffic with the nodes' prefix caches modelled, on the
//!   asymmetric (eval) and a symmetric cluster, for `fifo`,
//!   `least_queue`, `llm_d` and `intellinode`: `short_p99_ttft_ms`,
//!   `long_p99_ttft_ms` and `prefix_hit_rate` per policy and load
//!   (asymmetric), `symmetric.{short_p99_ttft_ms,long_p99_ttft_ms,prefix_hit_rate}`
//!   at 80%, `goals[]`, `capacity_rps` and every run under `runs`.
//!   Without `--requests`, runs are rate × run_seconds, replicated 10
//!   times.
//!
//! * `plan` prints [`sim::eval::Plan`]: the [`sim::EvalCluster`] fields
//!   (`nodes.{edge,centre}.{base_ttft_ms,prefill_tps,decode_tps,concurrency,kv_tokens}`,
//!   `paths.{line,internet}.{one_way_ms,jitter_ms,loss}`, `workload.*`,
//!   `report_interval_ms`, `loads`, `unloaded_load`, `run_seconds`,
//!   `warmup_ms`, `timeout_ms`, `failover.{load,kill_edge_s,restart_edge_s,
//!   cut_internet_s,restore_internet_s,arrivals_s,bin_ms}`), plus `capacity_rps`, `capacity_split`
//!   and `rates_rps` per load key, of the cluster `prefix` calls
//!   asymmetric (its `workload` has the shared-prefix agents:
//!   `agent_fraction`, `agents.{personas,prefix_tokens,user_tokens,
//!   output_tokens,turns,open_sessions,name_prefix}`); and `symmetric`
//!   ([`sim::prefix_eval::SymmetricPlan`]: `node.*`, `nodes`, `path.*`,
//!   `load`, `capacity_rps`). `make eval` emulates both clusters from it.
//! * `eval` writes [`sim::eval::EvalReport`]: `plan`, `seed`,
//!   `runs.{fifo,least_queue,intellinode}.{50,80,95}` (and
//!   `runs.intellinode.unloaded`), each with `short` and `long`
//!   (`count`, `completed`, `failures`, `failures_by_reason`,
//!   `ttft_ms.{p50,p99,mean}`, `completion_ms.{p50,p99,mean}`,
//!   `throughput_tokens_per_s`), `short_to`/`long_to` per instance,
//!   `decisions` and `models`; and the emulation's summary keys
//!   `short_p99_ttft_ms.{policy}.{load}`, `short_p99_ttft_unloaded_ms`,
//!   `long_throughput_vs_fifo.{load}`. Without `--requests`, every run
//!   has as many requests as the emulation sends (rate × run_seconds, at
//!   least 40) and is replicated 30 times with independent seeds.
//! * `scale` writes [`sim::scale::ScaleReport`]: `layout`, `seed`,
//!   `policies.{fifo,least_queue,intellinode}` with `short`, `long`,
//!   `failed_requests`, `short_to`/`long_to` per node kind,
//!   `edge_failure` and `wan_failure` (`chosen_after_failure`,
//!   `last_chosen_after_ms`, `in_service_lost`, and short-request
//!   `before`/`after`/`settled` windows for the affected sites and all
//!   sites), `decisions`, `events`, `state_messages`, `simulated_s`,
//!   `wall_s` and `decisions_per_wall_s`; and `wall_s_total`. Wall times
//!   are measured here, outside the simulation, and are the only
//!   fields that differ between two runs with the same seed.
//! * `failover` writes [`sim::failover::FailoverReport`] for the plan's
//!   failure timeline: `source`, `bounds`, `requests`, `answered`,
//!   `failed`, `lost_elsewhere`, `responses[]` (per failure: `what`,
//!   `instance`, `at_ms`, `recovered_ms`, `steady_class`, `away_ms`,
//!   `back_ms`, `first_back_ms`, the flows counted and the losses),
//!   `goals[]` and `series` (answered, failed and decided per second).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{anyhow, Context};
use clap::{Args, Parser, Subcommand};
use sim::eval::{run_eval, EvalOptions, POLICIES};
use sim::scale::{scenario, ScaleOptions, ScaleReport};
use sim::uplink::{run_uplink, UplinkOptions};
use sim::EvalCluster;

#[derive(Parser)]
#[command(
    name = "intellisim",
    about = "Deterministic discrete-event simulator of IntelliNode's steering"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// How the eval cluster's runs are replicated and written (`eval`,
/// `uplink`).
#[derive(Args)]
struct Replicated {
    /// Requests per run (default: as many as the emulation sends,
    /// rate × run_seconds, replicated).
    #[arg(long)]
    requests: Option<u64>,
    /// Independent replications per run, pooled (default: 1 with
    /// --requests, else 30).
    #[arg(long)]
    replications: Option<u32>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the JSON here (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
}

impl Replicated {
    /// One long run when the user sized it, else the emulation's size 30
    /// times.
    fn replications(&self) -> u32 {
        self.replications
            .unwrap_or(if self.requests.is_some() { 1 } else { 30 })
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the eval cluster (with the shared-prefix agents), its
    /// capacity and per-load rates, and the symmetric cluster, as JSON.
    Plan,
    /// Simulate the emulated cluster: three policies at every load.
    Eval {
        #[command(flatten)]
        runs: Replicated,
    },
    /// The eval cluster behind one busy shaped egress port: strict
    /// priority against a FIFO port.
    Uplink {
        /// Arrival rate as a fraction of the cluster's compute capacity.
        #[arg(long, default_value_t = 0.8)]
        load: f64,
        /// Share of the uplink's time the requests take; sets its rate.
        #[arg(long, default_value_t = 0.8)]
        utilisation: f64,
        #[command(flatten)]
        runs: Replicated,
    },
    /// The eval cluster's failure timeline: the edge node killed and
    /// restarted, the centre's path black-holed and restored.
    Failover {
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write the JSON here (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Shared-prefix agent traffic, the nodes' prefix caches, four
    /// policies on an asymmetric and a symmetric cluster.
    Prefix {
        #[command(flatten)]
        runs: Replicated,
        /// Agents send layout version 1, without their shared prefix (for
        /// comparison).
        #[arg(long)]
        no_prefix_names: bool,
    },
    /// Many sites, shared centre nodes, node and path failures.
    Scale {
        /// Nodes in all.
        #[arg(long, default_value_t = 1000)]
        nodes: usize,
        /// Requests in all.
        #[arg(long, default_value_t = 1_000_000)]
        requests: u64,
        /// Arrival rate as a fraction of the pooled capacity.
        #[arg(long, default_value_t = 0.7)]
        load: f64,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Only these policies (fifo, least_queue, intellinode).
        #[arg(long, value_delimiter = ',')]
        policies: Vec<String>,
        /// Write the JSON here (default: stdout).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

fn write(out: Option<PathBuf>, json: String) -> anyhow::Result<()> {
    match out {
        Some(p) => {
            std::fs::write(&p, json + "\n").with_context(|| format!("cannot write {}", p.display()))
        }
        None => {
            println!("{json}");
            Ok(())
        }
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Plan => {
            // The cluster `make eval` emulates: the asymmetric one with the
            // shared-prefix agents, and the symmetric one, as `prefix`
            // simulates them.
            let s = sim::prefix_eval::PrefixScenario::default();
            s.asymmetric.validate().map_err(|e| anyhow!(e))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&sim::prefix_eval::plan(&s))?
            );
        }
        Cmd::Eval { runs } => {
            let c = EvalCluster::default();
            let opt = EvalOptions {
                seed: runs.seed,
                requests: runs.requests,
                replications: runs.replications(),
                uplink_mbps: None,
            };
            let began = Instant::now();
            let r = run_eval(&c, &opt).map_err(|e| anyhow!(e))?;
            for (p, per) in &r.short_p99_ttft_ms {
                let v: Vec<String> = per
                    .iter()
                    .map(|(l, v)| format!("{l}%: {v:.1} ms"))
                    .collect();
                eprintln!("intellisim: {p:<12} short p99 TTFT {}", v.join(", "));
            }
            eprintln!(
                "intellisim: unloaded short p99 TTFT {:.1} ms; long throughput vs fifo {:?}; {:.1} s",
                r.short_p99_ttft_unloaded_ms,
                r.long_throughput_vs_fifo,
                began.elapsed().as_secs_f64()
            );
            write(runs.out, serde_json::to_string_pretty(&r)?)?;
        }
        Cmd::Uplink {
            load,
            utilisation,
            runs,
        } => {
            let opt = UplinkOptions {
                seed: runs.seed,
                requests: runs.requests,
                replications: runs.replications(),
                load,
                utilisation,
            };
            let began = Instant::now();
            let r = run_uplink(&EvalCluster::default(), &opt).map_err(|e| anyhow!(e))?;
            eprintln!(
                "intellisim: uplink {:.2} Mbit/s ({:.2} offered), {:.1} requests/s",
                r.uplink_mbps, r.offered_mbps, r.rate_rps
            );
            for (name, p99) in &r.short_p99_ttft_ms {
                eprintln!("intellisim: {name:<22} short p99 TTFT {p99:.1} ms");
            }
            eprintln!(
                "intellisim: intellinode, unshaped      short p99 TTFT {:.1} ms ({:.1} s wall)",
                r.intellinode_unshaped_short_p99_ttft_ms,
                began.elapsed().as_secs_f64()
            );
            write(runs.out, serde_json::to_string_pretty(&r)?)?;
        }
        Cmd::Prefix {
            runs,
            no_prefix_names,
        } => {
            let began = Instant::now();
            let opt = sim::prefix_eval::PrefixOptions {
                seed: runs.seed,
                requests: runs.requests,
                replications: runs.replications.unwrap_or(if runs.requests.is_some() {
                    1
                } else {
                    10
                }),
            };
            let mut scenario = sim::prefix_eval::PrefixScenario::default();
            scenario.asymmetric.workload.agents.name_prefix = !no_prefix_names;
            let r = sim::prefix_eval::run_prefix(&scenario, &opt).map_err(|e| anyhow!(e))?;
            for g in &r.goals {
                eprintln!(
                    "intellisim: {} {:.2} (bound {}): {}",
                    g.goal,
                    g.value,
                    g.bound,
                    if g.met { "met" } else { "MISSED" }
                );
            }
            eprintln!(
                "intellisim: prefix scenario in {:.1} s",
                began.elapsed().as_secs_f64()
            );
            write(runs.out, serde_json::to_string_pretty(&r)?)?;
        }
        Cmd::Failover { seed, out } => {
            let began = Instant::now();
            let r = sim::failover::run_failover(&EvalCluster::default(), seed)
                .map_err(|e| anyhow!(e))?;
            for x in &r.responses {
                eprintln!(
                    "intellisim: {:<24} away after {:.1} ms ({} new flows to it), {} flows back after {:.1} ms; lost {} in flight, {} after the failure",
                    x.failure.what,
                    x.away_ms,
                    x.steered_after_failure,
                    x.steady_class,
                    x.back_ms,
                    x.lost_in_flight,
                    x.lost_after_failure
                );
            }
            eprintln!(
                "intellisim: failover {} requests, {} failed, {} lost elsewhere; goals {}; {:.2} s wall",
                r.requests,
                r.failed,
                r.lost_elsewhere,
                if r.all_met() { "met" } else { "NOT all met" },
                began.elapsed().as_secs_f64()
            );
            write(out, serde_json::to_string_pretty(&r)?)?;
        }
        Cmd::Scale {
            nodes,
            requests,
            load,
            seed,
            policies,
            out,
        } => {
            let opt = ScaleOptions {
                nodes,
                requests,
                load,
                seed,
                ..ScaleOptions::default()
            };
            let sc = scenario(&opt).map_err(|e| anyhow!(e))?;
            let l = &sc.layout;
            eprintln!(
                "intellisim: {} nodes ({} edge, {} centre), {} sites, capacity {:.0} req/s, {:.0} req/s, {} requests over ~{:.1} s",
                l.nodes, l.edge_nodes, l.centre_nodes, l.sites, l.capacity_rps, l.rate_rps, l.requests, l.expected_span_s
            );
            let mut report = ScaleReport {
                layout: sc.layout.clone(),
                seed,
                policies: Default::default(),
                wall_s_total: None,
            };
            let all = Instant::now();
            for v in POLICIES {
                let name = v.name;
                if !policies.is_empty() && !policies.iter().any(|p| p == name) {
                    continue;
                }
                let began = Instant::now();
                let mut r = sc.run_policy(v).map_err(|e| anyhow!(e))?;
                let wall = began.elapsed().as_secs_f64();
                r.wall_s = Some(wall);
                r.decisions_per_wall_s = Some(r.decisions as f64 / wall.max(1e-9));
                eprintln!(
                    "intellisim: {name:<12} short p99 TTFT {:.1} ms, long p99 completion {:.0} ms, {} failed, {:.1} s wall, {:.0} decisions/s",
                    r.short.ttft_ms.p99,
                    r.long.completion_ms.p99,
                    r.failed_requests,
                    wall,
                    r.decisions as f64 / wall.max(1e-9)
                );
                report.policies.insert(name.to_string(), r);
            }
            report.wall_s_total = Some(all.elapsed().as_secs_f64());
            eprintln!(
                "intellisim: total {:.1} s wall",
                all.elapsed().as_secs_f64()
            );
            write(out, serde_json::to_string_pretty(&report)?)?;
        }
    }
    Ok(())
}
