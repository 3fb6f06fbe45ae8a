//! The `eval` scenario: the emulated cluster of `make eval`, simulated.
//!
//! One appliance, one service, `edge` over `line` and `centre` over
//! `internet`, nodes reporting NODE_STATE every `report_interval_ms` over
//! a management network (no delay, no loss; the emulation's management
//! veths), no path probing (the emulated appliance has none either, so it
//! steers on the configured path priors). For every policy and load the
//! run is replicated with independent seeds and the replications pooled;
//! every policy sees the same arrivals and request sizes at a given load
//! (common random numbers), as the emulation's agent replays the same
//! seeded load for each policy.

use std::collections::BTreeMap;

use serde::Serialize;
use steer::Policy;

use crate::config::{capacity, Capacity, EvalCluster, Pool};
use crate::stats::{ClassStats, ClassSummary};
use crate::world::{run, Kind, Outcome, RunConfig, SiteSpec, Topology};

/// The policies, by their names in the output, in report order: FIFO is
/// round robin (nodes always serve FIFO; nothing is prioritised).
pub const POLICIES: [(&str, Policy); 3] = [
    ("fifo", Policy::RoundRobin),
    ("least_queue", Policy::LeastQueue),
    ("intellinode", Policy::TokenAware),
];

/// Node names in the eval topology, by index.
pub const NODE_NAMES: [&str; 2] = ["edge", "centre"];

/// What `intellisim plan` prints: the cluster, its capacity and the rate
/// of every load.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The cluster.
    #[serde(flatten)]
    pub cluster: EvalCluster,
    /// [`EvalCluster::capacity_rps`].
    pub capacity_rps: f64,
    /// The split that achieves it (share of each class on the edge).
    pub capacity_split: Capacity,
    /// Arrival rate per load key ("unloaded", "50", ...), requests/s.
    pub rates_rps: BTreeMap<String, f64>,
}

/// The plan of a cluster.
pub fn plan(c: &EvalCluster) -> Plan {
    let cap = capacity(
        &c.workload,
        [
            Pool {
                node: c.nodes.edge,
                count: 1,
            },
            Pool {
                node: c.nodes.centre,
                count: 1,
            },
        ],
    );
    let mut rates = BTreeMap::new();
    rates.insert("unloaded".to_string(), cap.rate_rps * c.unloaded_load);
    for l in &c.loads {
        rates.insert(EvalCluster::load_key(*l), cap.rate_rps * l);
    }
    Plan {
        cluster: c.clone(),
        capacity_rps: cap.rate_rps,
        capacity_split: cap,
        rates_rps: rates,
    }
}

/// The simulated cluster at a total arrival rate.
pub fn topology(c: &EvalCluster, rate_rps: f64) -> Topology {
    Topology {
        nodes: vec![c.nodes.edge, c.nodes.centre],
        kinds: vec![Kind::Edge, Kind::Centre],
        paths: vec![c.paths.line, c.paths.internet],
        sites: vec![SiteSpec {
            instances: vec![(0, 0), (1, 1)],
            rate_rps,
        }],
    }
}

/// One run's configuration.
pub fn run_config(c: &EvalCluster, policy: Policy, seed: u64, requests: u64) -> RunConfig {
    let ns = |ms: f64| (ms * 1e6).round().max(0.0) as u64;
    RunConfig {
        policy,
        seed,
        requests,
        workload: c.workload,
        report_interval_ns: ns(c.report_interval_ms).max(1),
        warmup_ns: ns(c.warmup_ms),
        timeout_ns: ns(c.timeout_ms),
        probe_interval_ns: None,
        thresholds: control::thresholds::Thresholds::default(),
        node_failures: Vec::new(),
        path_failures: Vec::new(),
        record_timeline: false,
    }
}

/// How `intellisim eval` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalOptions {
    /// Base seed.
    pub seed: u64,
    /// Requests per run; `None`: as many as the emulation sends,
    /// `rate × run_seconds`, at least 40.
    pub requests: Option<u64>,
    /// Independent replications pooled per policy and load.
    pub replications: u32,
}

/// An instance's latency model after a run (the first replication).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelJson {
    /// Instance name.
    pub instance: String,
    /// Observations learned from.
    pub samples: u64,
    /// Mean absolute error of the compute-TTFT prediction, ms.
    pub ttft_mae_ms: f64,
    /// Its mean signed error (predicted − observed), ms.
    pub ttft_bias_ms: f64,
    /// Learned `[base µs, µs per 1000 prompt tokens, µs per queued request]`.
    pub coefficients: [f64; 3],
}

/// One policy at one load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// Policy name.
    pub policy: String,
    /// Load key.
    pub load: String,
    /// Load as a fraction of capacity.
    pub load_fraction: f64,
    /// Arrival rate, requests/s.
    pub rate_rps: f64,
    /// Requests per replication.
    pub requests_per_replication: u64,
    /// Replications pooled.
    pub replications: u32,
    /// Short (interactive) requests.
    pub short: ClassSummary,
    /// Long (bulk) requests.
    pub long: ClassSummary,
    /// Where short requests went: instance → requests.
    pub short_to: BTreeMap<String, u64>,
    /// Where long requests went.
    pub long_to: BTreeMap<String, u64>,
    /// Decisions made.
    pub decisions: u64,
    /// The models at the end of the first replication.
    pub models: Vec<ModelJson>,
}

/// `intellisim eval`'s output.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The cluster and its capacity.
    pub plan: Plan,
    /// Base seed.
    pub seed: u64,
    /// policy → load → results.
    pub runs: BTreeMap<String, BTreeMap<String, RunSummary>>,
    /// Short p99 TTFT, ms, policy → load (as the emulation's summary).
    pub short_p99_ttft_ms: BTreeMap<String, BTreeMap<String, f64>>,
    /// IntelliNode's short p99 TTFT nearly idle, ms.
    pub short_p99_ttft_unloaded_ms: f64,
    /// IntelliNode's long throughput over FIFO's, per load.
    pub long_throughput_vs_fifo: BTreeMap<String, f64>,
}

fn seed_for(base: u64, load_key: &str, replication: u32) -> u64 {
    // Per load like the emulation (seed = base + load), independent per
    // replication; the same for every policy.
    let load: u64 = load_key.parse().unwrap_or(0);
    base.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(load << 20)
        .wrapping_add(u64::from(replication))
}

/// Runs one policy at one load.
pub fn run_one(
    c: &EvalCluster,
    name: &str,
    policy: Policy,
    load_key: &str,
    load: f64,
    opt: &EvalOptions,
) -> Result<RunSummary, String> {
    let rate = c.capacity_rps() * load;
    let requests = opt
        .requests
        .unwrap_or_else(|| ((rate * c.run_seconds).ceil() as u64).max(40));
    let topo = topology(c, rate);
    let mut short = ClassStats::default();
    let mut long = ClassStats::default();
    let (mut short_tokens, mut short_span, mut long_tokens, mut long_span) = (0, 0.0, 0, 0.0);
    let mut chosen = [[0u64; 2]; 2];
    let mut decisions = 0;
    let mut models = Vec::new();
    for rep in 0..opt.replications.max(1) {
        let cfg = run_config(c, policy, seed_for(opt.seed, load_key, rep), requests);
        let out: Outcome = run(&topo, &cfg)?;
        let (t, s) = out.short.throughput();
        short_tokens += t;
        short_span += s;
        let (t, s) = out.long.throughput();
        long_tokens += t;
        long_span += s;
        short.merge(&out.short);
        long.merge(&out.long);
        for (acc, n) in chosen.iter_mut().zip(&out.chosen) {
            acc[0] += n[0];
            acc[1] += n[1];
        }
        decisions += out.decisions;
        if rep == 0 {
            models = out
                .models
                .iter()
                .map(|m| ModelJson {
                    instance: NODE_NAMES.get(m.node).copied().unwrap_or("?").to_string(),
                    samples: m.samples,
                    ttft_mae_ms: m.ttft_mae_us / 1000.0,
                    ttft_bias_ms: m.ttft_bias_us / 1000.0,
                    coefficients: m.coefficients,
                })
                .collect();
        }
    }
    let to = |class: usize| {
        NODE_NAMES
            .iter()
            .zip(&chosen)
            .map(|(n, c)| (n.to_string(), c[class]))
            .collect()
    };
    Ok(RunSummary {
        policy: name.to_string(),
        load: load_key.to_string(),
        load_fraction: load,
        rate_rps: rate,
        requests_per_replication: requests,
        replications: opt.replications.max(1),
        short: ClassSummary::of(&mut short, short_tokens, short_span),
        long: ClassSummary::of(&mut long, long_tokens, long_span),
        short_to: to(0),
        long_to: to(1),
        decisions,
        models,
    })
}

/// Every policy at every load, and IntelliNode nearly idle.
pub fn run_eval(c: &EvalCluster, opt: &EvalOptions) -> Result<EvalReport, String> {
    c.validate()?;
    let mut runs: BTreeMap<String, BTreeMap<String, RunSummary>> = BTreeMap::new();
    let mut short_p99: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for (name, policy) in POLICIES {
        let per = runs.entry(name.to_string()).or_default();
        for &load in &c.loads {
            let key = EvalCluster::load_key(load);
            let r = run_one(c, name, policy, &key, load, opt)?;
            short_p99
                .entry(name.to_string())
                .or_default()
                .insert(key.clone(), r.short.ttft_ms.p99);
            per.insert(key, r);
        }
    }
    let unloaded = run_one(
        c,
        "intellinode",
        Policy::TokenAware,
        "unloaded",
        c.unloaded_load,
        opt,
    )?;
    let unloaded_p99 = unloaded.short.ttft_ms.p99;
    if let Some(per) = runs.get_mut("intellinode") {
        per.insert("unloaded".to_string(), unloaded);
    }
    let mut vs_fifo = BTreeMap::new();
    for &load in &c.loads {
        let key = EvalCluster::load_key(load);
        let tp = |p: &str| {
            runs.get(p)
                .and_then(|m| m.get(&key))
                .map(|r| r.long.throughput_tokens_per_s)
        };
        if let (Some(i), Some(f)) = (tp("intellinode"), tp("fifo")) {
            vs_fifo.insert(key, if f > 0.0 { i / f } else { 0.0 });
        }
    }
    Ok(EvalReport {
        plan: plan(c),
        seed: opt.seed,
        runs,
        short_p99_ttft_ms: short_p99,
        short_p99_ttft_unloaded_ms: unloaded_p99,
        long_throughput_vs_fifo: vs_fifo,
    })
}
