//! The `prefix` scenario: shared-prefix agent traffic on two clusters,
//! four policies, with the nodes' prefix caches modelled
//! ([`crate::prefix_cache`]).
//!
//! * **Workload.** The eval cluster's short control commands and long
//!   prompts, plus agent calls ([`crate::AgentMix`]): 20 personas, each a
//!   system prompt and tools of 2,000–8,000 tokens named in the request
//!   (token-feature layout version 2), in multi-turn sessions whose
//!   history grows. Agent calls are long (bulk chat) work.
//! * **Clusters.** `asymmetric` is the emulated eval cluster (an edge
//!   node over a clean line, a centre node over a far, lossy internet
//!   path). `symmetric` is [`SymmetricCluster`]: identical nodes behind
//!   identical clean paths, where the network cannot help and only the
//!   compute and prefix choices count.
//! * **Policies.** `fifo` (round robin), `least_queue`, `llm_d` (llm-d's
//!   queue 2, KV cache 2, approximate prefix 3 scorers, no network
//!   awareness) and `intellinode` (token-aware, with prefix-cache
//!   affinity), each at 50, 80 and 95% of the cluster's capacity on a cold
//!   cache ([`crate::config::Workload::long_mean`]); the symmetric cluster
//!   at 80%. Every policy sees the same arrivals, sessions and sizes.
//! * **Collector.** Every report interval each node's hit and query
//!   counters are read as a collector scrapes `vllm:prefix_cache_hits` and
//!   `_queries`, and their increments correct the appliance's prefix
//!   record ([`steer::Engine::correct_prefix_cache`]).
//!
//! The prefix hit rate is the nodes' hit tokens over queried prompt
//! tokens, all requests counted, as vLLM's counters give it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{capacity, AgentMix, EvalCluster, NodeParams, PathParams, Pool, Workload};
use crate::eval::{run_config, Variant, FIFO, INTELLINODE, LEAST_QUEUE, LLM_D};
use crate::stats::{ClassStats, ClassSummary};
use crate::world::{run, Kind, SiteSpec, Topology};

/// The policies compared, in report order.
pub const PREFIX_POLICIES: [Variant; 4] = [FIFO, LEAST_QUEUE, LLM_D, INTELLINODE];

/// Identical nodes behind identical clean paths.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SymmetricCluster {
    /// Every node.
    pub node: NodeParams,
    /// How many.
    pub nodes: usize,
    /// Every path.
    pub path: PathParams,
}

impl Default for SymmetricCluster {
    fn default() -> Self {
        SymmetricCluster {
            node: NodeParams {
                base_ttft_ms: 30.0,
                prefill_tps: 10_000.0,
                decode_tps: 400.0,
                concurrency: 16,
                // About a dozen personas' prefixes: a node cannot cache
                // all twenty, so where a prefix goes matters.
                kv_tokens: 65_536,
            },
            // Two, as `make eval` emulates it: the same two node
            // namespaces and wires as the asymmetric cluster.
            nodes: 2,
            path: PathParams {
                one_way_ms: 1.0,
                jitter_ms: 0.1,
                loss: 0.0,
            },
        }
    }
}

/// The scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefixScenario {
    /// The asymmetric cluster (its workload with the agents).
    pub asymmetric: EvalCluster,
    /// The symmetric cluster (same workload, report interval, timeout).
    pub symmetric: SymmetricCluster,
    /// The load the symmetric cluster runs at.
    pub symmetric_load: f64,
}

impl Default for PrefixScenario {
    fn default() -> Self {
        let mut asymmetric = EvalCluster::default();
        asymmetric.workload.agent_fraction = 0.4;
        asymmetric.workload.agents = AgentMix::default();
        PrefixScenario {
            asymmetric,
            symmetric: SymmetricCluster::default(),
            symmetric_load: 0.8,
        }
    }
}

/// A cluster as the runs see it.
struct Cluster {
    name: &'static str,
    nodes: Vec<NodeParams>,
    kinds: Vec<Kind>,
    paths: Vec<PathParams>,
    capacity_rps: f64,
}

impl Cluster {
    fn asymmetric(c: &EvalCluster) -> Cluster {
        Cluster {
            name: "asymmetric",
            nodes: vec![c.nodes.edge, c.nodes.centre],
            kinds: vec![Kind::Edge, Kind::Centre],
            paths: vec![c.paths.line, c.paths.internet],
            capacity_rps: c.capacity_rps(),
        }
    }

    fn symmetric(s: &SymmetricCluster, w: &Workload) -> Cluster {
        let n = s.nodes.max(2);
        let half = (n / 2) as u32;
        let cap = capacity(
            w,
            [
                Pool {
                    node: s.node,
                    count: half,
                },
                Pool {
                    node: s.node,
                    count: n as u32 - half,
                },
            ],
        );
        Cluster {
            name: "symmetric",
            nodes: vec![s.node; n],
            kinds: vec![Kind::Centre; n],
            paths: vec![s.path; n],
            capacity_rps: cap.rate_rps,
        }
    }

    fn topology(&self, rate_rps: f64) -> Topology {
        Topology {
            nodes: self.nodes.clone(),
            kinds: self.kinds.clone(),
            paths: self.paths.clone(),
            sites: vec![SiteSpec {
                instances: (0..self.nodes.len()).map(|i| (i, i)).collect(),
                rate_rps,
            }],
            uplinks: Vec::new(),
        }
    }
}

/// What `intellisim plan` says of the symmetric cluster: its nodes and
/// paths, how many, the load it runs at and its capacity.
#[derive(Debug, Clone, Serialize)]
pub struct SymmetricPlan {
    /// The cluster.
    #[serde(flatten)]
    pub cluster: SymmetricCluster,
    /// The load it runs at, fraction of its capacity.
    pub load: f64,
    /// Its capacity, requests/s, for the asymmetric cluster's workload.
    pub capacity_rps: f64,
}

/// What `intellisim plan` prints: the asymmetric cluster with the
/// shared-prefix agents in its workload ([`crate::eval::Plan`]), and the
/// symmetric cluster. `make eval` emulates both from it.
#[derive(Debug, Clone, Serialize)]
pub struct PrefixPlan {
    /// The asymmetric cluster.
    #[serde(flatten)]
    pub asymmetric: crate::eval::Plan,
    /// The symmetric cluster.
    pub symmetric: SymmetricPlan,
    /// The capacity of the asymmetric cluster without the agents,
    /// requests/s: the failure run's (`intellisim failover` runs the
    /// cluster without agents, and so does `make eval`'s failure run).
    pub failover_capacity_rps: f64,
}

/// The plan of a scenario.
pub fn plan(s: &PrefixScenario) -> PrefixPlan {
    let sym = Cluster::symmetric(&s.symmetric, &s.asymmetric.workload);
    PrefixPlan {
        asymmetric: crate::eval::plan(&s.asymmetric),
        symmetric: SymmetricPlan {
            cluster: s.symmetric,
            load: s.symmetric_load,
            capacity_rps: sym.capacity_rps,
        },
        failover_capacity_rps: EvalCluster {
            workload: Workload {
                agent_fraction: 0.0,
                ..s.asymmetric.workload
            },
            ..s.asymmetric.clone()
        }
        .capacity_rps(),
    }
}

/// How `intellisim prefix` runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrefixOptions {
    /// Base seed.
    pub seed: u64,
    /// Requests per run; `None`: rate × the cluster's `run_seconds`.
    pub requests: Option<u64>,
    /// Independent replications pooled per policy and load.
    pub replications: u32,
}

/// One policy at one load on one cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefixRun {
    /// Arrival rate, requests/s.
    pub rate_rps: f64,
    /// Requests per replication.
    pub requests_per_replication: u64,
    /// Short (interactive) requests.
    pub short: ClassSummary,
    /// Long requests: long prompts and agent calls.
    pub long: ClassSummary,
    /// Prompt tokens found cached over prompt tokens queried, all nodes.
    pub prefix_hit_rate: f64,
    /// Requests steered to each node: `[short, long]`.
    pub chosen: Vec<[u64; 2]>,
}

/// A goal and whether the simulation meets it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrefixGoal {
    /// What is promised.
    pub goal: String,
    /// The measured ratio.
    pub value: f64,
    /// The bound.
    pub bound: f64,
    /// Met.
    pub met: bool,
}

/// policy → load → value.
pub type PerPolicyLoad = BTreeMap<String, BTreeMap<String, f64>>;

/// The symmetric cluster's keys.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct SymmetricKeys {
    /// Short p99 TTFT, ms, policy → load.
    pub short_p99_ttft_ms: PerPolicyLoad,
    /// Long p99 TTFT, ms.
    pub long_p99_ttft_ms: PerPolicyLoad,
    /// Prefix hit rate.
    pub prefix_hit_rate: PerPolicyLoad,
}

/// `intellisim prefix`'s output.
#[derive(Debug, Clone, Serialize)]
pub struct PrefixReport {
    /// The scenario.
    pub scenario: PrefixScenario,
    /// Capacity of each cluster, requests/s.
    pub capacity_rps: BTreeMap<String, f64>,
    /// Base seed.
    pub seed: u64,
    /// Replications pooled per run.
    pub replications: u32,
    /// Asymmetric cluster: short p99 TTFT, ms, policy → load.
    pub short_p99_ttft_ms: PerPolicyLoad,
    /// Asymmetric cluster: long p99 TTFT, ms.
    pub long_p99_ttft_ms: PerPolicyLoad,
    /// Asymmetric cluster: prefix hit rate.
    pub prefix_hit_rate: PerPolicyLoad,
    /// The symmetric cluster at its load.
    pub symmetric: SymmetricKeys,
    /// The goals, checked.
    pub goals: Vec<PrefixGoal>,
    /// cluster → policy → load → run.
    pub runs: BTreeMap<String, BTreeMap<String, BTreeMap<String, PrefixRun>>>,
}

fn seed_for(base: u64, load_key: &str, replication: u32) -> u64 {
    let load: u64 = load_key.parse().unwrap_or(0);
    base.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(load << 20)
        .wrapping_add(u64::from(replication))
        ^ 0x5052_4546
}

fn run_one(
    s: &PrefixScenario,
    cluster: &Cluster,
    v: Variant,
    load_key: &str,
    load: f64,
    opt: &PrefixOptions,
) -> Result<PrefixRun, String> {
    let rate = cluster.capacity_rps * load;
    let requests = opt
        .requests
        .unwrap_or_else(|| ((rate * s.asymmetric.run_seconds).ceil() as u64).max(40));
    let topo = cluster.topology(rate);
    let (mut short, mut long) = (ClassStats::default(), ClassStats::default());
    let (mut st, mut ss, mut lt, mut ls) = (0, 0.0, 0, 0.0);
    let (mut hits, mut queried) = (0u64, 0u64);
    let mut chosen = vec![[0u64; 2]; cluster.nodes.len()];
    for rep in 0..opt.replications.max(1) {
        let cfg = run_config(
            &s.asymmetric,
            v,
            seed_for(opt.seed, load_key, rep),
            requests,
        );
        let out = run(&topo, &cfg)?;
        let (t, sp) = out.short.throughput();
        st += t;
        ss += sp;
        let (t, sp) = out.long.throughput();
        lt += t;
        ls += sp;
        short.merge(&out.short);
        long.merge(&out.long);
        hits += out.prefix_hit_tokens;
        queried += out.prefix_queried_tokens;
        for (acc, n) in chosen.iter_mut().zip(&out.chosen) {
            acc[0] += n[0];
            acc[1] += n[1];
        }
    }
    Ok(PrefixRun {
        rate_rps: rate,
        requests_per_replication: requests,
        short: ClassSummary::of(&mut short, st, ss),
        long: ClassSummary::of(&mut long, lt, ls),
        prefix_hit_rate: if queried > 0 {
            hits as f64 / queried as f64
        } else {
            0.0
        },
        chosen,
    })
}

fn keys(
    runs: &BTreeMap<String, BTreeMap<String, PrefixRun>>,
) -> (PerPolicyLoad, PerPolicyLoad, PerPolicyLoad) {
    let mut short = PerPolicyLoad::new();
    let mut long = PerPolicyLoad::new();
    let mut hit = PerPolicyLoad::new();
    for (policy, per) in runs {
        for (load, r) in per {
            short
                .entry(policy.clone())
                .or_default()
                .insert(load.clone(), r.short.ttft_ms.p99);
            long.entry(policy.clone())
                .or_default()
                .insert(load.clone(), r.long.ttft_ms.p99);
            hit.entry(policy.clone())
                .or_default()
                .insert(load.clone(), r.prefix_hit_rate);
        }
    }
    (short, long, hit)
}

fn at(m: &PerPolicyLoad, policy: &str, load: &str) -> Option<f64> {
    m.get(policy)?.get(load).copied()
}

/// The goals of the shared-prefix evaluation (issue 15), at 80%.
pub fn goals(
    asym: (&PerPolicyLoad, &PerPolicyLoad, &PerPolicyLoad),
    sym: &SymmetricKeys,
    load: &str,
) -> Vec<PrefixGoal> {
    let mut out = Vec::new();
    let mut goal = |what: String, value: Option<f64>, bound: f64, at_most: bool| {
        if let Some(value) = value.filter(|v| v.is_finite()) {
            out.push(PrefixGoal {
                goal: what,
                value,
                bound,
                met: if at_most {
                    value <= bound
                } else {
                    value >= bound
                },
            });
        }
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    let (a_short, a_long, a_hit) = asym;
    goal(
        format!("asymmetric {load}%: llm_d / intellinode short p99 TTFT, at least"),
        ratio(at(a_short, "llm_d", load), at(a_short, "intellinode", load)),
        1.5,
        false,
    );
    for (what, m) in [
        ("short", &sym.short_p99_ttft_ms),
        ("long", &sym.long_p99_ttft_ms),
    ] {
        goal(
            format!("symmetric {load}%: intellinode / llm_d {what} p99 TTFT, at most"),
            ratio(at(m, "intellinode", load), at(m, "llm_d", load)),
            1.1,
            true,
        );
    }
    for (cluster, long, hit) in [
        ("asymmetric", a_long, a_hit),
        ("symmetric", &sym.long_p99_ttft_ms, &sym.prefix_hit_rate),
    ] {
        let best = match (at(long, "least_queue", load), at(long, "llm_d", load)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        goal(
            format!(
                "{cluster} {load}%: intellinode long p99 TTFT / the better of least_queue and llm_d, at most"
            ),
            ratio(at(long, "intellinode", load), best),
            1.1,
            true,
        );
        goal(
            format!("{cluster} {load}%: intellinode / llm_d prefix hit rate, at least"),
            ratio(at(hit, "intellinode", load), at(hit, "llm_d", load)),
            0.9,
            false,
        );
    }
    out
}

/// Every policy at every load on the asymmetric cluster, and at the
/// symmetric load on the symmetric one.
pub fn run_prefix(s: &PrefixScenario, opt: &PrefixOptions) -> Result<PrefixReport, String> {
    s.asymmetric.validate()?;
    let asym = Cluster::asymmetric(&s.asymmetric);
    let sym = Cluster::symmetric(&s.symmetric, &s.asymmetric.workload);
    let mut runs: BTreeMap<String, BTreeMap<String, BTreeMap<String, PrefixRun>>> = BTreeMap::new();
    let sym_key = EvalCluster::load_key(s.symmetric_load);
    for v in PREFIX_POLICIES {
        for &load in &s.asymmetric.loads {
            let key = EvalCluster::load_key(load);
            let r = run_one(s, &asym, v, &key, load, opt)?;
            runs.entry(asym.name.into())
                .or_default()
                .entry(v.name.into())
                .or_default()
                .insert(key, r);
        }
        let r = run_one(s, &sym, v, &sym_key, s.symmetric_load, opt)?;
        runs.entry(sym.name.into())
            .or_default()
            .entry(v.name.into())
            .or_default()
            .insert(sym_key.clone(), r);
    }
    let empty = BTreeMap::new();
    let (short, long, hit) = keys(runs.get(asym.name).unwrap_or(&empty));
    let (s_short, s_long, s_hit) = keys(runs.get(sym.name).unwrap_or(&empty));
    let symmetric = SymmetricKeys {
        short_p99_ttft_ms: s_short,
        long_p99_ttft_ms: s_long,
        prefix_hit_rate: s_hit,
    };
    let goals = goals((&short, &long, &hit), &symmetric, &sym_key);
    Ok(PrefixReport {
        scenario: s.clone(),
        capacity_rps: [
            (asym.name.to_string(), asym.capacity_rps),
            (sym.name.to_string(), sym.capacity_rps),
        ]
        .into_iter()
        .collect(),
        seed: opt.seed,
        replications: opt.replications.max(1),
        short_p99_ttft_ms: short,
        long_p99_ttft_ms: long,
        prefix_hit_rate: hit,
        symmetric,
        goals,
        runs,
    })
}
