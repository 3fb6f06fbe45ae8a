//! The evaluation's numbers: every run's statistics, the keys `make eval`
//! promises in `summary.json`, the goals checked against them, and how the
//! simulator's results compare.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::runs::{AgentReport, RunStats};

/// The policies, by their names in the summary, in report order.
pub const POLICIES: [&str; 3] = ["fifo", "least_queue", "intellinode"];
/// The loads, in percent of capacity.
pub const LOADS: [&str; 3] = ["50", "80", "95"];
/// The load the goals are stated at.
pub const GOAL_LOAD: &str = "80";

/// One run as `scripts/eval.sh` lists it in `runs/index.json`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RunEntry {
    /// `fifo`, `least_queue` or `intellinode`.
    pub policy: String,
    /// `unloaded`, `50`, `80` or `95`.
    pub load: String,
    /// Offered arrival rate, requests/s.
    pub rate_rps: f64,
    /// Requests sent.
    pub requests: usize,
    /// The agent's report, relative to the evaluation directory.
    pub agent: String,
    /// The appliance's final stats, relative to the evaluation directory.
    #[serde(default)]
    pub appliance: Option<String>,
}

/// `runs/index.json`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RunIndex {
    /// The cluster's capacity, requests/s (the simulator's plan).
    pub capacity_rps: f64,
    /// The agent's per-request timeout, ms (failures are censored at it).
    pub timeout_ms: f64,
    /// Every run.
    pub runs: Vec<RunEntry>,
}

/// A run, loaded.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// As listed.
    pub entry: RunEntry,
    /// Per-class statistics.
    pub stats: RunStats,
    /// New flows per instance and class, from the appliance's stats.
    pub chosen: BTreeMap<String, BTreeMap<String, u64>>,
}

/// policy → load → value.
pub type PerPolicyLoad = BTreeMap<String, BTreeMap<String, f64>>;

/// The symmetric cluster's keys (`intellisim prefix`'s `symmetric`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SymmetricPrefix {
    /// Short p99 TTFT, ms, policy → load.
    pub short_p99_ttft_ms: PerPolicyLoad,
    /// Long p99 TTFT, ms.
    pub long_p99_ttft_ms: PerPolicyLoad,
    /// Prefix hit rate.
    pub prefix_hit_rate: PerPolicyLoad,
}

/// What `intellisim prefix` measured: shared-prefix agent traffic with
/// the nodes' prefix caches, four policies, asymmetric and symmetric
/// clusters.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SimPrefix {
    /// Asymmetric cluster: short p99 TTFT, ms, policy → load.
    pub short_p99_ttft_ms: PerPolicyLoad,
    /// Asymmetric cluster: long p99 TTFT, ms.
    pub long_p99_ttft_ms: PerPolicyLoad,
    /// Asymmetric cluster: prefix hit rate.
    pub prefix_hit_rate: PerPolicyLoad,
    /// The symmetric cluster.
    pub symmetric: SymmetricPrefix,
    /// Issue 15's goals, checked on these numbers.
    pub goals: Vec<Goal>,
}

/// Where the prefix-cache keys of the summary come from.
pub const PREFIX_SOURCE: &str = "simulator (intellisim prefix): the emulated nodes have no      prefix cache yet, so the emulated runs carry no shared-prefix agents";

/// A goal and whether it was met.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Goal {
    /// What is promised.
    pub goal: String,
    /// The measured value.
    pub value: f64,
    /// The bound it is compared with.
    pub bound: f64,
    /// Met.
    pub met: bool,
}

/// Emulation against simulation for one comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    /// What is compared, e.g. `fifo / intellinode short p99 TTFT at 80%`.
    pub what: String,
    /// Emulated ratio.
    pub emulation: f64,
    /// Simulated ratio.
    pub simulation: f64,
    /// Both on the same side of 1.
    pub same_direction: bool,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Short-request p99 TTFT, ms, per policy and load.
    pub short_p99_ttft_ms: BTreeMap<String, BTreeMap<String, f64>>,
    /// Long-request p99 TTFT, ms, per policy and load.
    pub long_p99_ttft_ms: BTreeMap<String, BTreeMap<String, f64>>,
    /// Prefix hit rate per policy and load on the asymmetric cluster
    /// (from [`Summary::prefix_source`]; absent without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_hit_rate: Option<PerPolicyLoad>,
    /// The symmetric cluster at 80% (from [`Summary::prefix_source`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symmetric: Option<SymmetricPrefix>,
    /// Where `prefix_hit_rate`, `symmetric` and `simulated_prefix` come from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_source: Option<String>,
    /// The shared-prefix scenario's short and long p99 TTFT for all four
    /// policies (`llm_d` included) and its goals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub simulated_prefix: Option<SimPrefix>,
    /// Short-request p99 TTFT with the system nearly idle, ms (null when
    /// that run was left out).
    pub short_p99_ttft_unloaded_ms: Option<f64>,
    /// IntelliNode's long-request throughput over FIFO's, per load.
    pub long_throughput_vs_fifo: BTreeMap<String, f64>,
    /// The goals at 80% load that the runs made could check.
    pub goals: Vec<Goal>,
    /// The goals they could not, each with the runs it lacks
    /// (`EVAL_POLICIES` / `EVAL_LOADS` narrowed the evaluation).
    pub goals_not_checked: Vec<String>,
    /// Simulation against emulation (empty without a simulation).
    pub agreement: Vec<Agreement>,
    /// The failure and recovery run: emulated (if it ran), then
    /// simulated (if given).
    pub failover: Vec<sim::failover::FailoverReport>,
    /// The capacity the loads are fractions of, requests/s.
    pub capacity_rps: f64,
    /// Every run's statistics.
    pub runs: Vec<Run>,
}

fn chosen(appliance: &Value) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    if let Some(m) = appliance
        .pointer("/steer/chosen")
        .and_then(Value::as_object)
    {
        for (inst, classes) in m {
            let per: BTreeMap<String, u64> = classes
                .as_object()
                .map(|c| {
                    c.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                        .collect()
                })
                .unwrap_or_default();
            out.insert(inst.clone(), per);
        }
    }
    out
}

/// Loads every run listed in `dir/runs/index.json`.
pub fn load_runs(dir: &Path) -> anyhow::Result<(RunIndex, Vec<Run>)> {
    let index_path = dir.join("runs/index.json");
    let text = std::fs::read_to_string(&index_path)
        .with_context(|| format!("cannot read {}", index_path.display()))?;
    let index: RunIndex = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a run index", index_path.display()))?;
    let mut runs = Vec::new();
    for entry in &index.runs {
        let report = AgentReport::load(&dir.join(&entry.agent))?;
        let chosen = match &entry.appliance {
            Some(a) => {
                let p = dir.join(a);
                let text = std::fs::read_to_string(&p)
                    .with_context(|| format!("cannot read {}", p.display()))?;
                chosen(
                    &serde_json::from_str(&text)
                        .with_context(|| format!("{} is not JSON", p.display()))?,
                )
            }
            None => BTreeMap::new(),
        };
        runs.push(Run {
            entry: entry.clone(),
            stats: RunStats::of(&report, index.timeout_ms),
            chosen,
        });
    }
    Ok((index, runs))
}

fn find<'a>(runs: &'a [Run], policy: &str, load: &str) -> Option<&'a Run> {
    runs.iter()
        .find(|r| r.entry.policy == policy && r.entry.load == load)
}

/// The summary keys simulation and emulation are compared on, from a
/// JSON object that has them (the simulator's output, or this summary
/// itself).
#[derive(Debug, Clone, Deserialize)]
pub struct Keys {
    /// As in [`Summary`].
    pub short_p99_ttft_ms: BTreeMap<String, BTreeMap<String, f64>>,
    /// As in [`Summary`].
    pub long_throughput_vs_fifo: BTreeMap<String, f64>,
}

impl Keys {
    fn p99(&self, policy: &str, load: &str) -> Option<f64> {
        self.short_p99_ttft_ms.get(policy)?.get(load).copied()
    }
}

/// Builds the summary; `sim` is the simulator's output for the same
/// cluster, if it ran. A narrowed evaluation summarises the runs it made;
/// the goals that need a run it left out are listed as not checked.
pub fn summarise(index: &RunIndex, runs: Vec<Run>, sim: Option<&Keys>) -> anyhow::Result<Summary> {
    if runs.is_empty() {
        anyhow::bail!("runs/index.json lists no runs");
    }
    let mut short: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut long: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for policy in POLICIES {
        for load in LOADS {
            if let Some(run) = find(&runs, policy, load) {
                short
                    .entry(policy.to_owned())
                    .or_default()
                    .insert(load.to_owned(), run.stats.short.ttft_ms.p99);
                long.entry(policy.to_owned())
                    .or_default()
                    .insert(load.to_owned(), run.stats.long.ttft_ms.p99);
            }
        }
    }
    let unloaded = find(&runs, "intellinode", "unloaded").map(|r| r.stats.short.ttft_ms.p99);
    let mut long_vs_fifo = BTreeMap::new();
    for load in LOADS {
        let (Some(i), Some(f)) = (find(&runs, "intellinode", load), find(&runs, "fifo", load))
        else {
            continue;
        };
        let ratio = if f.stats.long.throughput_tokens_per_s > 0.0 {
            i.stats.long.throughput_tokens_per_s / f.stats.long.throughput_tokens_per_s
        } else {
            0.0
        };
        long_vs_fifo.insert(load.to_owned(), ratio);
    }
    let keys = Keys {
        short_p99_ttft_ms: short,
        long_throughput_vs_fifo: long_vs_fifo,
    };
    let p = |policy: &str| {
        keys.p99(policy, GOAL_LOAD)
            .ok_or(format!("{policy} at {GOAL_LOAD}%"))
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let unloaded_p99 = unloaded.ok_or_else(|| "intellinode unloaded".to_string());
    let long_80 = keys
        .long_throughput_vs_fifo
        .get(GOAL_LOAD)
        .copied()
        .ok_or(format!("fifo and intellinode at {GOAL_LOAD}%"));
    let candidates: [(&str, Result<f64, String>, f64, bool); 4] = [
        (
            "intellinode short p99 TTFT / unloaded, at most",
            p("intellinode").and_then(|i| Ok(ratio(i, unloaded_p99.clone()?))),
            1.2,
            true,
        ),
        (
            "fifo / intellinode short p99 TTFT, at least",
            p("fifo").and_then(|f| Ok(ratio(f, p("intellinode")?))),
            5.0,
            false,
        ),
        (
            "intellinode / fifo long throughput, at least",
            long_80,
            0.95,
            false,
        ),
        (
            "least_queue / intellinode short p99 TTFT, at least",
            p("least_queue").and_then(|l| Ok(ratio(l, p("intellinode")?))),
            1.5,
            false,
        ),
    ];
    let mut goals = Vec::new();
    let mut goals_not_checked = Vec::new();
    for (goal, value, bound, at_most) in candidates {
        match value {
            Ok(value) => goals.push(Goal {
                goal: goal.to_owned(),
                value,
                bound,
                met: if at_most {
                    value <= bound
                } else {
                    value >= bound
                },
            }),
            Err(missing) => goals_not_checked.push(format!("{goal} (no run of {missing})")),
        }
    }
    let agreement = sim.map(|s| agreement(&keys, s)).unwrap_or_default();
    Ok(Summary {
        short_p99_ttft_ms: keys.short_p99_ttft_ms,
        long_p99_ttft_ms: long,
        prefix_hit_rate: None,
        symmetric: None,
        prefix_source: None,
        simulated_prefix: None,
        short_p99_ttft_unloaded_ms: unloaded,
        long_throughput_vs_fifo: keys.long_throughput_vs_fifo,
        goals,
        goals_not_checked,
        agreement,
        failover: Vec::new(),
        capacity_rps: index.capacity_rps,
        runs,
    })
}

/// Each baseline's short p99 over IntelliNode's, and IntelliNode's long
/// throughput over FIFO's, emulated and simulated, at every load.
fn agreement(emu: &Keys, sim: &Keys) -> Vec<Agreement> {
    let mut out = Vec::new();
    for load in LOADS {
        for baseline in ["fifo", "least_queue"] {
            let ratio = |k: &Keys| match (k.p99(baseline, load), k.p99("intellinode", load)) {
                (Some(b), Some(i)) if i > 0.0 => Some(b / i),
                _ => None,
            };
            if let (Some(e), Some(s)) = (ratio(emu), ratio(sim)) {
                out.push(Agreement {
                    what: format!("{baseline} / intellinode short p99 TTFT at {load}%"),
                    emulation: e,
                    simulation: s,
                    same_direction: (e > 1.0) == (s > 1.0),
                });
            }
        }
        if let (Some(e), Some(s)) = (
            emu.long_throughput_vs_fifo.get(load),
            sim.long_throughput_vs_fifo.get(load),
        ) {
            out.push(Agreement {
                what: format!("intellinode / fifo long throughput at {load}%"),
                emulation: *e,
                simulation: *s,
                // Throughput "agrees" when both keep within 5% of FIFO or
                // both fall on the same side of it.
                same_direction: ((*e - 1.0).abs() < 0.05 && (*s - 1.0).abs() < 0.05)
                    || ((*e > 1.0) == (*s > 1.0)),
            });
        }
    }
    out
}

/// Adds the shared-prefix scenario's numbers: `prefix_hit_rate` and
/// `symmetric` at the top (as issue 15 names them), all of it under
/// `simulated_prefix`, and where they come from.
pub fn attach_prefix(s: &mut Summary, p: SimPrefix) {
    s.prefix_hit_rate = Some(p.prefix_hit_rate.clone());
    s.symmetric = Some(p.symmetric.clone());
    s.prefix_source = Some(PREFIX_SOURCE.to_owned());
    s.simulated_prefix = Some(p);
}

/// `intellisim prefix`'s output, read.
pub fn load_sim_prefix(path: &Path) -> anyhow::Result<SimPrefix> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not an `intellisim prefix` report", path.display()))
}

/// The simulator's keys from its output file.
pub fn load_sim(path: &Path) -> anyhow::Result<Keys> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    // The keys may sit at the top or under "summary".
    let obj = if v.get("short_p99_ttft_ms").is_some() {
        v
    } else {
        v.get("summary").cloned().unwrap_or(Value::Null)
    };
    serde_json::from_value(obj)
        .with_context(|| format!("{} lacks the summary keys", path.display()))
}
