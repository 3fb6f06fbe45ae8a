//! The evaluation's numbers: every run's statistics, the keys `make eval`
//! promises in `summary.json`, the goals checked against them, and how the
//! simulator's results compare.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::runs::{AgentReport, RunStats};

pub use sim::prefix_eval::{PerPolicyLoad, SymmetricKeys};

/// The policies, by their names in the summary, in report order.
pub const POLICIES: [&str; 4] = ["fifo", "least_queue", "llm_d", "intellinode"];
/// The loads, in percent of capacity.
pub const LOADS: [&str; 3] = ["50", "80", "95"];
/// The load the goals are stated at.
pub const GOAL_LOAD: &str = "80";
/// The asymmetric cluster (edge line, far lossy centre).
pub const ASYMMETRIC: &str = "asymmetric";
/// The symmetric cluster (identical nodes, identical clean paths).
pub const SYMMETRIC: &str = "symmetric";

fn asymmetric() -> String {
    ASYMMETRIC.to_owned()
}

/// One run as `scripts/eval.sh` lists it in `runs/index.json`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RunEntry {
    /// `asymmetric` (the default) or `symmetric`.
    #[serde(default = "asymmetric")]
    pub cluster: String,
    /// `fifo`, `least_queue`, `llm_d` or `intellinode`.
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
    /// The nodes' stats (`pktgen serve --stats-json`), relative to the
    /// evaluation directory: their prefix-cache counters.
    #[serde(default)]
    pub nodes: Vec<String>,
}

/// `runs/index.json`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RunIndex {
    /// The asymmetric cluster's capacity, requests/s (the simulator's plan).
    pub capacity_rps: f64,
    /// The symmetric cluster's, when it ran.
    #[serde(default)]
    pub symmetric_capacity_rps: Option<f64>,
    /// The agent's per-request timeout, ms (failures are censored at it).
    pub timeout_ms: f64,
    /// Every run.
    pub runs: Vec<RunEntry>,
}

/// The nodes' prefix caches over a run, summed over the nodes, as their
/// `vllm:prefix_cache_hits` and `vllm:prefix_cache_queries` count: every
/// request's prompt tokens looked up, and those found cached.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct PrefixCounts {
    /// Prompt tokens found cached.
    pub hit_tokens: u64,
    /// Prompt tokens looked up.
    pub queried_tokens: u64,
}

impl PrefixCounts {
    /// Hit tokens over queried tokens (0 with none queried).
    pub fn rate(&self) -> f64 {
        if self.queried_tokens == 0 {
            0.0
        } else {
            self.hit_tokens as f64 / self.queried_tokens as f64
        }
    }

    fn of_node(stats: &Value) -> Option<PrefixCounts> {
        Some(PrefixCounts {
            hit_tokens: stats.get("prefix_cache_hits")?.as_u64()?,
            queried_tokens: stats.get("prefix_cache_queries")?.as_u64()?,
        })
    }
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
    /// The nodes' prefix caches (absent when the index names no nodes).
    pub prefix: Option<PrefixCounts>,
}

/// What `intellisim prefix` measured: shared-prefix agent traffic with
/// the nodes' prefix caches, four policies, asymmetric and symmetric
/// clusters: the simulator's side of every comparison.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SimPrefix {
    /// Asymmetric cluster: short p99 TTFT, ms, policy → load.
    pub short_p99_ttft_ms: PerPolicyLoad,
    /// Asymmetric cluster: long p99 TTFT, ms.
    pub long_p99_ttft_ms: PerPolicyLoad,
    /// Asymmetric cluster: prefix hit rate.
    pub prefix_hit_rate: PerPolicyLoad,
    /// The symmetric cluster.
    pub symmetric: SymmetricKeys,
    /// Issue 15's goals, checked on these numbers.
    pub goals: Vec<Goal>,
}

/// Where the prefix hit rates come from.
pub const PREFIX_SOURCE: &str = "emulation: the nodes' prefix-cache counters \
     (pktgen serve, as vllm:prefix_cache_hits / vllm:prefix_cache_queries), both nodes, \
     every request counted";

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
    /// What is compared, e.g. `asymmetric 80%: fifo / intellinode short
    /// p99 TTFT`.
    pub what: String,
    /// Emulated ratio.
    pub emulation: f64,
    /// Simulated ratio.
    pub simulation: f64,
    /// Both on the same side of 1, or both within [`TIE`] of it.
    pub same_direction: bool,
}

/// Ratios within this of 1 on both sides count as agreeing: neither says
/// one policy is better (a 1.02 against a 0.99 is no disagreement).
pub const TIE: f64 = 0.05;

fn same_direction(e: f64, s: f64) -> bool {
    ((e - 1.0).abs() < TIE && (s - 1.0).abs() < TIE) || ((e > 1.0) == (s > 1.0))
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Asymmetric cluster: short-request p99 TTFT, ms, per policy and load.
    pub short_p99_ttft_ms: PerPolicyLoad,
    /// Asymmetric cluster: long-request p99 TTFT, ms, per policy and load.
    pub long_p99_ttft_ms: PerPolicyLoad,
    /// Asymmetric cluster: prefix hit rate per policy and load (runs whose
    /// nodes' counters were read).
    pub prefix_hit_rate: PerPolicyLoad,
    /// The symmetric cluster at its load (absent when it did not run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symmetric: Option<SymmetricKeys>,
    /// Where `prefix_hit_rate` comes from.
    pub prefix_source: String,
    /// The simulator's numbers for the same clusters and workload
    /// (`intellisim prefix`), and its goals.
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
    /// (`EVAL_POLICIES` / `EVAL_LOADS` / `EVAL_SYMMETRIC` narrowed the
    /// evaluation).
    pub goals_not_checked: Vec<String>,
    /// Simulation against emulation (empty without a simulation).
    pub agreement: Vec<Agreement>,
    /// The failure and recovery run: emulated (if it ran), then
    /// simulated (if given).
    pub failover: Vec<sim::failover::FailoverReport>,
    /// The asymmetric cluster's capacity the loads are fractions of,
    /// requests/s.
    pub capacity_rps: f64,
    /// The symmetric cluster's, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symmetric_capacity_rps: Option<f64>,
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

fn read_value(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
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
            Some(a) => chosen(&read_value(&dir.join(a))?),
            None => BTreeMap::new(),
        };
        let mut prefix = None;
        for node in &entry.nodes {
            let p = dir.join(node);
            let c = PrefixCounts::of_node(&read_value(&p)?)
                .with_context(|| format!("{} has no prefix_cache_hits / _queries", p.display()))?;
            let sum = prefix.get_or_insert_with(PrefixCounts::default);
            sum.hit_tokens += c.hit_tokens;
            sum.queried_tokens += c.queried_tokens;
        }
        runs.push(Run {
            entry: entry.clone(),
            stats: RunStats::of(&report, index.timeout_ms),
            chosen,
            prefix,
        });
    }
    Ok((index, runs))
}

fn find<'a>(runs: &'a [Run], cluster: &str, policy: &str, load: &str) -> Option<&'a Run> {
    runs.iter()
        .find(|r| r.entry.cluster == cluster && r.entry.policy == policy && r.entry.load == load)
}

fn at(m: &PerPolicyLoad, policy: &str, load: &str) -> Option<f64> {
    m.get(policy)?.get(load).copied()
}

/// Short p99, long p99 and prefix hit rate of every run of `cluster`,
/// policy → load.
fn keys(runs: &[Run], cluster: &str) -> SymmetricKeys {
    let mut k = SymmetricKeys {
        short_p99_ttft_ms: PerPolicyLoad::new(),
        long_p99_ttft_ms: PerPolicyLoad::new(),
        prefix_hit_rate: PerPolicyLoad::new(),
    };
    for r in runs.iter().filter(|r| r.entry.cluster == cluster) {
        if r.entry.load == "unloaded" || !POLICIES.contains(&r.entry.policy.as_str()) {
            continue;
        }
        let (p, l) = (r.entry.policy.clone(), r.entry.load.clone());
        k.short_p99_ttft_ms
            .entry(p.clone())
            .or_default()
            .insert(l.clone(), r.stats.short.ttft_ms.p99);
        k.long_p99_ttft_ms
            .entry(p.clone())
            .or_default()
            .insert(l.clone(), r.stats.long.ttft_ms.p99);
        if let Some(c) = r.prefix {
            k.prefix_hit_rate.entry(p).or_default().insert(l, c.rate());
        }
    }
    k
}

/// The shared-prefix goals (issue 15) on `asym` and `sym`, checked by the
/// simulator's own rule ([`sim::prefix_eval::goals`]), and the names of
/// those the runs could not check.
fn prefix_goals(asym: &SymmetricKeys, sym: &SymmetricKeys) -> (Vec<Goal>, Vec<String>) {
    let got: Vec<Goal> = sim::prefix_eval::goals(
        (
            &asym.short_p99_ttft_ms,
            &asym.long_p99_ttft_ms,
            &asym.prefix_hit_rate,
        ),
        sym,
        GOAL_LOAD,
    )
    .into_iter()
    .map(|g| Goal {
        goal: g.goal,
        value: g.value,
        bound: g.bound,
        met: g.met,
    })
    .collect();
    // Every goal there is: the same rule on a full table.
    let full: PerPolicyLoad = POLICIES
        .iter()
        .map(|p| ((*p).to_owned(), [(GOAL_LOAD.to_owned(), 1.0)].into()))
        .collect();
    let all = SymmetricKeys {
        short_p99_ttft_ms: full.clone(),
        long_p99_ttft_ms: full.clone(),
        prefix_hit_rate: full.clone(),
    };
    let missing = sim::prefix_eval::goals((&full, &full, &full), &all, GOAL_LOAD)
        .into_iter()
        .filter(|g| !got.iter().any(|x| x.goal == g.goal))
        .map(|g| {
            let cluster = if g.goal.starts_with(SYMMETRIC) {
                "the symmetric cluster"
            } else {
                "the asymmetric cluster"
            };
            format!(
                "{} (no runs of llm_d, intellinode and the baselines at {GOAL_LOAD}% on {cluster})",
                g.goal
            )
        })
        .collect();
    (got, missing)
}

/// Builds the summary; `sim` is the simulator's output for the same
/// clusters (`intellisim prefix`), if it ran. A narrowed evaluation
/// summarises the runs it made; the goals that need a run it left out are
/// listed as not checked.
pub fn summarise(
    index: &RunIndex,
    runs: Vec<Run>,
    sim: Option<SimPrefix>,
) -> anyhow::Result<Summary> {
    if runs.is_empty() {
        anyhow::bail!("runs/index.json lists no runs");
    }
    let asym = keys(&runs, ASYMMETRIC);
    let sym = keys(&runs, SYMMETRIC);
    let unloaded =
        find(&runs, ASYMMETRIC, "intellinode", "unloaded").map(|r| r.stats.short.ttft_ms.p99);
    let mut long_vs_fifo = BTreeMap::new();
    for load in LOADS {
        let (Some(i), Some(f)) = (
            find(&runs, ASYMMETRIC, "intellinode", load),
            find(&runs, ASYMMETRIC, "fifo", load),
        ) else {
            continue;
        };
        let ratio = if f.stats.long.throughput_tokens_per_s > 0.0 {
            i.stats.long.throughput_tokens_per_s / f.stats.long.throughput_tokens_per_s
        } else {
            0.0
        };
        long_vs_fifo.insert(load.to_owned(), ratio);
    }
    let p = |policy: &str| {
        at(&asym.short_p99_ttft_ms, policy, GOAL_LOAD).ok_or(format!("{policy} at {GOAL_LOAD}%"))
    };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let unloaded_p99 = unloaded.ok_or_else(|| "intellinode unloaded".to_string());
    let long_80 = long_vs_fifo
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
    let (prefix, missing) = prefix_goals(&asym, &sym);
    goals.extend(prefix);
    goals_not_checked.extend(missing);
    let ran_symmetric = runs.iter().any(|r| r.entry.cluster == SYMMETRIC);
    let symmetric = ran_symmetric.then_some(sym);
    let agreement = sim
        .as_ref()
        .map(|s| agreement(&asym, symmetric.as_ref(), s))
        .unwrap_or_default();
    Ok(Summary {
        short_p99_ttft_ms: asym.short_p99_ttft_ms,
        long_p99_ttft_ms: asym.long_p99_ttft_ms,
        prefix_hit_rate: asym.prefix_hit_rate,
        symmetric,
        prefix_source: PREFIX_SOURCE.to_owned(),
        simulated_prefix: sim,
        short_p99_ttft_unloaded_ms: unloaded,
        long_throughput_vs_fifo: long_vs_fifo,
        goals,
        goals_not_checked,
        agreement,
        failover: Vec::new(),
        capacity_rps: index.capacity_rps,
        symmetric_capacity_rps: index.symmetric_capacity_rps,
        runs,
    })
}

/// Every comparison the emulation and the simulation both made: each
/// baseline's short and long p99 TTFT over IntelliNode's (above 1:
/// IntelliNode is better) at every load on each cluster, and IntelliNode's
/// prefix hit rate over llm_d's.
fn agreement(asym: &SymmetricKeys, sym: Option<&SymmetricKeys>, sim: &SimPrefix) -> Vec<Agreement> {
    let mut out = Vec::new();
    let mut compare =
        |what: String, emu: (Option<f64>, Option<f64>), sim: (Option<f64>, Option<f64>)| {
            let r = |(a, b): (Option<f64>, Option<f64>)| match (a, b) {
                (Some(a), Some(b)) if b > 0.0 && a.is_finite() => Some(a / b),
                _ => None,
            };
            if let (Some(e), Some(s)) = (r(emu), r(sim)) {
                out.push(Agreement {
                    what,
                    emulation: e,
                    simulation: s,
                    same_direction: same_direction(e, s),
                });
            }
        };
    let clusters = [
        (ASYMMETRIC, Some(asym), &sim_keys_asym(sim)),
        (SYMMETRIC, sym, &sim.symmetric),
    ];
    for (cluster, emu, simk) in clusters {
        let Some(emu) = emu else { continue };
        for load in LOADS {
            for baseline in ["fifo", "least_queue", "llm_d"] {
                for (class, e, s) in [
                    ("short", &emu.short_p99_ttft_ms, &simk.short_p99_ttft_ms),
                    ("long", &emu.long_p99_ttft_ms, &simk.long_p99_ttft_ms),
                ] {
                    compare(
                        format!("{cluster} {load}%: {baseline} / intellinode {class} p99 TTFT"),
                        (at(e, baseline, load), at(e, "intellinode", load)),
                        (at(s, baseline, load), at(s, "intellinode", load)),
                    );
                }
            }
            compare(
                format!("{cluster} {load}%: intellinode / llm_d prefix hit rate"),
                (
                    at(&emu.prefix_hit_rate, "intellinode", load),
                    at(&emu.prefix_hit_rate, "llm_d", load),
                ),
                (
                    at(&simk.prefix_hit_rate, "intellinode", load),
                    at(&simk.prefix_hit_rate, "llm_d", load),
                ),
            );
        }
    }
    out
}

fn sim_keys_asym(sim: &SimPrefix) -> SymmetricKeys {
    SymmetricKeys {
        short_p99_ttft_ms: sim.short_p99_ttft_ms.clone(),
        long_p99_ttft_ms: sim.long_p99_ttft_ms.clone(),
        prefix_hit_rate: sim.prefix_hit_rate.clone(),
    }
}

/// `intellisim prefix`'s output, read.
pub fn load_sim_prefix(path: &Path) -> anyhow::Result<SimPrefix> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not an `intellisim prefix` report", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_ties_and_same_sides_agree() {
        assert!(same_direction(1.5, 3.0));
        assert!(same_direction(0.5, 0.9));
        assert!(same_direction(1.02, 0.99));
        assert!(!same_direction(1.2, 0.9));
        assert!(!same_direction(1.02, 0.9));
    }
}
