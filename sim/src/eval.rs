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
use crate::world::{run, Kind, Outcome, RunConfig, SiteSpec, Topology, Uplink, UplinkReport};

/// A policy as the evaluation runs it: how the appliance decides, and
/// whether its egress ports serve interactive work first. The same pairs
/// as `scripts/eval.sh` configures the emulated appliance with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Variant {
    /// Name in the output.
    pub name: &'static str,
    /// The decision.
    pub policy: Policy,
    /// `[steer] strict_priority`.
    pub strict_priority: bool,
}

/// Round robin, every port one FIFO: nothing is prioritised anywhere
/// (nodes always serve FIFO).
pub const FIFO: Variant = Variant {
    name: "fifo",
    policy: Policy::RoundRobin,
    strict_priority: false,
};
/// The Gateway API Inference Extension's scorers: no network awareness, so
/// no egress priority either.
pub const LEAST_QUEUE: Variant = Variant {
    name: "least_queue",
    policy: Policy::LeastQueue,
    strict_priority: false,
};
/// llm-d's default endpoint picker (queue, KV-cache and approximate
/// prefix scorers): no network awareness, so no egress priority either.
pub const LLM_D: Variant = Variant {
    name: "llm_d",
    policy: Policy::LlmD,
    strict_priority: false,
};
/// The product: token-aware joint steering, interactive band first.
pub const INTELLINODE: Variant = Variant {
    name: "intellinode",
    policy: Policy::TokenAware,
    strict_priority: true,
};

/// The policies compared, in report order.
pub const POLICIES: [Variant; 3] = [FIFO, LEAST_QUEUE, INTELLINODE];

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

/// The simulated cluster at a total arrival rate; with `uplink_mbps`, both
/// paths leave the appliance through one egress port of that rate.
pub fn topology(c: &EvalCluster, rate_rps: f64, uplink_mbps: Option<f64>) -> Topology {
    Topology {
        nodes: vec![c.nodes.edge, c.nodes.centre],
        kinds: vec![Kind::Edge, Kind::Centre],
        paths: vec![c.paths.line, c.paths.internet],
        sites: vec![SiteSpec {
            instances: vec![(0, 0), (1, 1)],
            rate_rps,
        }],
        uplinks: uplink_mbps
            .map(|rate_mbps| Uplink {
                rate_mbps,
                paths: vec![0, 1],
            })
            .into_iter()
            .collect(),
    }
}

/// One run's configuration.
pub fn run_config(c: &EvalCluster, v: Variant, seed: u64, requests: u64) -> RunConfig {
    let ns = |ms: f64| (ms * 1e6).round().max(0.0) as u64;
    RunConfig {
        policy: v.policy,
        strict_priority: v.strict_priority,
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
        node_recoveries: Vec::new(),
        path_recoveries: Vec::new(),
        record_requests: false,
    }
}

/// How `intellisim eval` runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalOptions {
    /// Base seed.
    pub seed: u64,
    /// Requests per run; `None`: as many as the emulation sends,
    /// `rate × run_seconds`, at least 40.
    pub requests: Option<u64>,
    /// Independent replications pooled per policy and load.
    pub replications: u32,
    /// Both paths behind one shaped egress port of this rate, Mbit/s
    /// (`None`: unshaped ports, as in the emulation).
    pub uplink_mbps: Option<f64>,
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
    /// The shaped uplink, pooled over replications, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uplink: Option<UplinkJson>,
}

/// What the shaped uplink did, over every replication.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UplinkJson {
    /// Its rate, Mbit/s.
    pub rate_mbps: f64,
    /// Time spent sending over the time requests arrived.
    pub utilisation: f64,
    /// Packets refused by a full band.
    pub dropped_packets: u64,
    /// Most packets queued at once.
    pub max_queued_packets: usize,
    /// Interactive packets' mean and largest wait in the egress queue, ms.
    pub interactive_wait_mean_ms: f64,
    /// See `interactive_wait_mean_ms`.
    pub interactive_wait_max_ms: f64,
    /// Every other packet's mean and largest wait, ms.
    pub bulk_wait_mean_ms: f64,
    /// See `bulk_wait_mean_ms`.
    pub bulk_wait_max_ms: f64,
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
    v: Variant,
    load_key: &str,
    load: f64,
    opt: &EvalOptions,
) -> Result<RunSummary, String> {
    let rate = c.capacity_rps() * load;
    let requests = opt
        .requests
        .unwrap_or_else(|| ((rate * c.run_seconds).ceil() as u64).max(40));
    let topo = topology(c, rate, opt.uplink_mbps);
    let mut short = ClassStats::default();
    let mut long = ClassStats::default();
    let (mut short_tokens, mut short_span, mut long_tokens, mut long_span) = (0, 0.0, 0, 0.0);
    let mut chosen = [[0u64; 2]; 2];
    let mut decisions = 0;
    let mut models = Vec::new();
    let mut uplink = UplinkReport::default();
    for rep in 0..opt.replications.max(1) {
        let cfg = run_config(c, v, seed_for(opt.seed, load_key, rep), requests);
        let out: Outcome = run(&topo, &cfg)?;
        if let Some(u) = out.uplinks.first() {
            uplink.sent_bytes += u.sent_bytes;
            uplink.busy_ns += u.busy_ns;
            uplink.dropped_packets += u.dropped_packets;
            uplink.max_queued_packets = uplink.max_queued_packets.max(u.max_queued_packets);
            for (acc, w) in [
                (&mut uplink.interactive_wait, u.interactive_wait),
                (&mut uplink.bulk_wait, u.bulk_wait),
            ] {
                acc.0 += w.0;
                acc.1 += w.1;
                acc.2 = acc.2.max(w.2);
            }
        }
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
    // Over the time requests arrive (the warm-up and the drain after the
    // last arrival would dilute it).
    let arrivals_ns = f64::from(opt.replications.max(1)) * requests as f64 / rate * 1e9;
    let ms = |ns: u64| ns as f64 / 1e6;
    let mean_ms = |w: (u64, u64, u64)| if w.1 > 0 { ms(w.0) / w.1 as f64 } else { 0.0 };
    let uplink = opt.uplink_mbps.map(|rate_mbps| UplinkJson {
        rate_mbps,
        utilisation: if arrivals_ns > 0.0 {
            uplink.busy_ns as f64 / arrivals_ns
        } else {
            0.0
        },
        dropped_packets: uplink.dropped_packets,
        max_queued_packets: uplink.max_queued_packets,
        interactive_wait_mean_ms: mean_ms(uplink.interactive_wait),
        interactive_wait_max_ms: ms(uplink.interactive_wait.2),
        bulk_wait_mean_ms: mean_ms(uplink.bulk_wait),
        bulk_wait_max_ms: ms(uplink.bulk_wait.2),
    });
    Ok(RunSummary {
        policy: v.name.to_string(),
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
        uplink,
    })
}

/// Every policy at every load, and IntelliNode nearly idle.
pub fn run_eval(c: &EvalCluster, opt: &EvalOptions) -> Result<EvalReport, String> {
    c.validate()?;
    let mut runs: BTreeMap<String, BTreeMap<String, RunSummary>> = BTreeMap::new();
    let mut short_p99: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for v in POLICIES {
        let per = runs.entry(v.name.to_string()).or_default();
        for &load in &c.loads {
            let key = EvalCluster::load_key(load);
            let r = run_one(c, v, &key, load, opt)?;
            short_p99
                .entry(v.name.to_string())
                .or_default()
                .insert(key.clone(), r.short.ttft_ms.p99);
            per.insert(key, r);
        }
    }
    let unloaded = run_one(c, INTELLINODE, "unloaded", c.unloaded_load, opt)?;
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
