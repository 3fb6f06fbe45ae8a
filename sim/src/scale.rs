//! The `scale` scenario: many sites, shared centre nodes, and failures.
//!
//! Layout for `n` nodes (1,000 by default):
//!
//! * `sites = n / 5` sites (200), each with its own appliance and
//!   `edge_per_site` (4) local edge nodes behind their own low-delay line
//!   (0.5 ms ± 0.1 ms, no loss);
//! * the remaining `n − 4·sites` nodes (200) form a pool of centre nodes;
//!   every site reaches `centre_per_site` (4) of them, spread so that each
//!   centre node is steered onto by 4 appliances that do not see each
//!   other's decisions, over its own WAN path (5–15 ms one way, ± 3 ms,
//!   1% loss);
//! * so every appliance steers over 8 instances, the most a service
//!   takes.
//!
//! Nodes are the eval cluster's edge and centre nodes, the request mix
//! its workload; each site receives the same Poisson rate, together
//! `load` × the pooled capacity ([`crate::config::capacity`] over all edge
//! and all centre nodes, which ignores that a site can use only its own
//! edges, so it is an upper bound). Appliances probe their paths every
//! 100 ms (PATH_STATE with the path's true delay, jitter and loss), and
//! receive their nodes' NODE_STATE every 20 ms over the management
//! network.
//!
//! Failures, at fixed fractions of the expected arrival span:
//!
//! * at 30%, every tenth edge node fails for good (10% of the edge);
//! * at 60%, the WAN of site 1 fails: its four centre paths lose every
//!   packet (its centre nodes stay up and keep reporting).

use std::collections::BTreeMap;

use crate::eval::Variant;
use control::thresholds::Thresholds;
use serde::Serialize;

use crate::config::{capacity, EvalCluster, PathParams, Pool};
use crate::stats::{percentile_ms, ClassSummary};
use crate::world::{run, FailureResponse, Kind, Outcome, RunConfig, SiteSpec, Topology};

/// `intellisim scale`'s knobs.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleOptions {
    /// Nodes in all.
    pub nodes: usize,
    /// Requests in all.
    pub requests: u64,
    /// Seed.
    pub seed: u64,
    /// Arrival rate as a fraction of the pooled capacity.
    pub load: f64,
    /// Edge nodes per site.
    pub edge_per_site: usize,
    /// Centre nodes each site reaches.
    pub centre_per_site: usize,
    /// Node and path parameters and the request mix.
    pub cluster: EvalCluster,
    /// PATH_STATE probing period, ms.
    pub probe_interval_ms: f64,
    /// Width of the windows before and after each failure, s.
    pub window_s: f64,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        ScaleOptions {
            nodes: 1000,
            requests: 1_000_000,
            seed: 1,
            load: 0.7,
            edge_per_site: 4,
            centre_per_site: 4,
            cluster: EvalCluster::default(),
            probe_interval_ms: 100.0,
            window_s: 2.0,
        }
    }
}

/// The layout and schedule a scale run uses.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layout {
    /// Nodes in all.
    pub nodes: usize,
    /// Sites (appliances).
    pub sites: usize,
    /// Edge nodes.
    pub edge_nodes: usize,
    /// Centre nodes.
    pub centre_nodes: usize,
    /// Edge nodes per site.
    pub edge_per_site: usize,
    /// Centre nodes each site reaches.
    pub centre_per_site: usize,
    /// Appliances steering onto each centre node.
    pub sites_per_centre: f64,
    /// Paths.
    pub paths: usize,
    /// Pooled capacity, requests/s.
    pub capacity_rps: f64,
    /// Load, fraction of capacity.
    pub load: f64,
    /// Total arrival rate, requests/s.
    pub rate_rps: f64,
    /// Requests.
    pub requests: u64,
    /// Expected span of arrivals, s.
    pub expected_span_s: f64,
    /// When the edge nodes fail, s.
    pub edge_failure_at_s: f64,
    /// How many.
    pub edge_nodes_failed: usize,
    /// Sites with a failed edge node.
    pub sites_with_failed_edge: usize,
    /// When the WAN fails, s.
    pub wan_failure_at_s: f64,
    /// The site whose WAN fails.
    pub wan_failed_site: usize,
    /// NODE_STATE older than this is stale, ms.
    pub max_state_age_ms: f64,
    /// PATH_STATE period, ms.
    pub probe_interval_ms: f64,
}

/// A built scale scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Its description.
    pub layout: Layout,
    /// The topology.
    pub topology: Topology,
    /// Edge nodes that fail.
    pub failed_nodes: Vec<usize>,
    /// WAN paths that fail.
    pub failed_paths: Vec<usize>,
    /// Failure times, ns.
    pub t_edge_ns: u64,
    /// WAN failure time, ns.
    pub t_wan_ns: u64,
    /// Site of each failed node (for windows).
    pub edge_failure_sites: Vec<usize>,
    opts: ScaleOptions,
}

const SEC: f64 = 1e9;

/// Builds the scenario.
pub fn scenario(o: &ScaleOptions) -> Result<Scenario, String> {
    o.cluster.validate()?;
    let per_site = o.edge_per_site + 1;
    let sites = o.nodes / per_site;
    if sites < 2 || o.edge_per_site == 0 || o.centre_per_site == 0 {
        return Err(format!(
            "--nodes {} is too few for {} edge nodes per site",
            o.nodes, o.edge_per_site
        ));
    }
    if o.edge_per_site + o.centre_per_site > steer::service::MAX_INSTANCES_PER_SERVICE {
        return Err("edge + centre per site must be at most 8".into());
    }
    let edge_nodes = sites * o.edge_per_site;
    let centre_nodes = o.nodes - edge_nodes;
    let centre_per_site = o.centre_per_site.min(centre_nodes);
    if centre_per_site == 0 {
        return Err("no centre nodes".into());
    }
    if !(o.load.is_finite() && o.load > 0.0) {
        return Err("--load must be > 0".into());
    }
    let c = &o.cluster;
    let mut nodes = Vec::with_capacity(o.nodes);
    let mut kinds = Vec::with_capacity(o.nodes);
    for _ in 0..edge_nodes {
        nodes.push(c.nodes.edge);
        kinds.push(Kind::Edge);
    }
    for _ in 0..centre_nodes {
        nodes.push(c.nodes.centre);
        kinds.push(Kind::Centre);
    }
    let cap = capacity(
        &c.workload,
        [
            Pool {
                node: c.nodes.edge,
                count: edge_nodes as u32,
            },
            Pool {
                node: c.nodes.centre,
                count: centre_nodes as u32,
            },
        ],
    );
    let rate = cap.rate_rps * o.load;
    let mut paths = Vec::new();
    let mut site_specs = Vec::with_capacity(sites);
    let mut wan_of_site: Vec<Vec<usize>> = Vec::with_capacity(sites);
    let stride = (centre_nodes / centre_per_site).max(1);
    for s in 0..sites {
        let mut instances = Vec::new();
        for k in 0..o.edge_per_site {
            paths.push(c.paths.line);
            instances.push((s * o.edge_per_site + k, paths.len() - 1));
        }
        let mut wans = Vec::new();
        for k in 0..centre_per_site {
            let centre = edge_nodes + (s + k * stride) % centre_nodes;
            // WAN delays spread over 5–15 ms, deterministically.
            let spread = ((s * 7 + k * 13) % 11) as f64 / 10.0;
            paths.push(PathParams {
                one_way_ms: 5.0 + 10.0 * spread,
                ..c.paths.internet
            });
            wans.push(paths.len() - 1);
            instances.push((centre, paths.len() - 1));
        }
        wan_of_site.push(wans);
        site_specs.push(SiteSpec {
            instances,
            rate_rps: rate / sites as f64,
        });
    }
    let span_s = o.requests as f64 / rate.max(1e-9);
    let warmup_s = c.warmup_ms / 1000.0;
    let t_edge = warmup_s + 0.3 * span_s;
    let t_wan = warmup_s + 0.6 * span_s;
    let failed_nodes: Vec<usize> = (0..edge_nodes).step_by(10).collect();
    let mut edge_failure_sites: Vec<usize> =
        failed_nodes.iter().map(|n| n / o.edge_per_site).collect();
    edge_failure_sites.dedup();
    let wan_site = 1;
    let failed_paths = wan_of_site.get(wan_site).cloned().unwrap_or_default();
    let thresholds = Thresholds::default();
    let layout = Layout {
        nodes: o.nodes,
        sites,
        edge_nodes,
        centre_nodes,
        edge_per_site: o.edge_per_site,
        centre_per_site,
        sites_per_centre: (sites * centre_per_site) as f64 / centre_nodes as f64,
        paths: paths.len(),
        capacity_rps: cap.rate_rps,
        load: o.load,
        rate_rps: rate,
        requests: o.requests,
        expected_span_s: span_s,
        edge_failure_at_s: t_edge,
        edge_nodes_failed: failed_nodes.len(),
        sites_with_failed_edge: edge_failure_sites.len(),
        wan_failure_at_s: t_wan,
        wan_failed_site: wan_site,
        max_state_age_ms: thresholds.max_state_age_ns as f64 / 1e6,
        probe_interval_ms: o.probe_interval_ms,
    };
    Ok(Scenario {
        layout,
        topology: Topology {
            nodes,
            kinds,
            paths,
            sites: site_specs,
            uplinks: Vec::new(),
        },
        failed_nodes,
        failed_paths,
        t_edge_ns: (t_edge * SEC) as u64,
        t_wan_ns: (t_wan * SEC) as u64,
        edge_failure_sites,
        opts: o.clone(),
    })
}

/// Short requests' TTFT in a window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Window {
    /// Short requests that arrived in it.
    pub count: u64,
    /// Of which failed.
    pub failed: u64,
    /// Median TTFT, ms (failures censored at the timeout).
    pub p50_ttft_ms: f64,
    /// p99 TTFT, ms.
    pub p99_ttft_ms: f64,
}

/// Short requests around one failure.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Windows {
    /// `[t − w, t)`.
    pub before: Window,
    /// `[t, t + w)`: before and while the appliances find out.
    pub after: Window,
    /// `[t + max_state_age + 0.5 s, … + w)`: once stale state has aged out.
    pub settled: Window,
}

/// What the appliances did about one failure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureReport {
    /// When, s.
    pub at_s: f64,
    /// Decisions that chose a failed node or path after the failure.
    pub chosen_after_failure: u64,
    /// The last such decision, ms after the failure (`null`: none).
    pub last_chosen_after_ms: Option<f64>,
    /// Requests queued or in service on the failed nodes.
    pub in_service_lost: u64,
    /// Short requests of the affected sites around the failure.
    pub affected_sites: Windows,
    /// Short requests of every site around the failure.
    pub all_sites: Windows,
}

/// One policy's scale results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyReport {
    /// Short (interactive) requests.
    pub short: ClassSummary,
    /// Long (bulk) requests.
    pub long: ClassSummary,
    /// Requests that failed, every class and reason.
    pub failed_requests: u64,
    /// Where short requests went: edge/centre → count.
    pub short_to: BTreeMap<String, u64>,
    /// Where long requests went.
    pub long_to: BTreeMap<String, u64>,
    /// The edge-node failure.
    pub edge_failure: FailureReport,
    /// The WAN failure.
    pub wan_failure: FailureReport,
    /// Decisions made.
    pub decisions: u64,
    /// Events handled.
    pub events: u64,
    /// NODE_STATE and PATH_STATE messages applied.
    pub state_messages: u64,
    /// Simulated time at the end, s.
    pub simulated_s: f64,
    /// Wall time of the run, s (a measurement, set by the caller).
    pub wall_s: Option<f64>,
    /// Decisions per second of wall time (set by the caller).
    pub decisions_per_wall_s: Option<f64>,
}

/// `intellisim scale`'s output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleReport {
    /// Layout and schedule.
    pub layout: Layout,
    /// Seed.
    pub seed: u64,
    /// Policy name → results.
    pub policies: BTreeMap<String, PolicyReport>,
    /// Wall time of every run together, s (set by the caller).
    pub wall_s_total: Option<f64>,
}

fn window(
    samples: &[(u64, u32, bool, u32)],
    keep: impl Fn(u32) -> bool,
    lo: u64,
    hi: u64,
) -> Window {
    let mut v: Vec<u32> = Vec::new();
    let mut failed = 0;
    for &(t, ttft, f, site) in samples {
        if t >= lo && t < hi && keep(site) {
            v.push(ttft);
            failed += u64::from(f);
        }
    }
    v.sort_unstable();
    Window {
        count: v.len() as u64,
        failed,
        p50_ttft_ms: percentile_ms(&v, 0.5),
        p99_ttft_ms: percentile_ms(&v, 0.99),
    }
}

impl Scenario {
    /// The run configuration for a policy.
    pub fn run_config(&self, v: Variant) -> RunConfig {
        let c = &self.opts.cluster;
        let ns = |ms: f64| (ms * 1e6).round().max(0.0) as u64;
        RunConfig {
            policy: v.policy,
            strict_priority: v.strict_priority,
            seed: self.opts.seed,
            requests: self.opts.requests,
            workload: c.workload,
            report_interval_ns: ns(c.report_interval_ms).max(1),
            warmup_ns: ns(c.warmup_ms),
            timeout_ns: ns(c.timeout_ms),
            probe_interval_ns: Some(ns(self.opts.probe_interval_ms).max(1)),
            thresholds: Thresholds::default(),
            node_failures: vec![(self.t_edge_ns, self.failed_nodes.clone())],
            path_failures: vec![(self.t_wan_ns, self.failed_paths.clone())],
            record_timeline: true,
            node_recoveries: Vec::new(),
            path_recoveries: Vec::new(),
            record_requests: false,
        }
    }

    /// Runs one policy.
    pub fn run_policy(&self, v: Variant) -> Result<PolicyReport, String> {
        let cfg = self.run_config(v);
        let mut out = run(&self.topology, &cfg)?;
        Ok(self.report(&mut out))
    }

    fn windows(&self, out: &Outcome, at: u64, keep: &dyn Fn(u32) -> bool) -> Windows {
        let w = (self.opts.window_s * SEC) as u64;
        let settle = (self.layout.max_state_age_ms * 1e6) as u64 + (0.5 * SEC) as u64;
        let tl = &out.short_timeline;
        Windows {
            before: window(tl, keep, at.saturating_sub(w), at),
            after: window(tl, keep, at, at + w),
            settled: window(tl, keep, at + settle, at + settle + w),
        }
    }

    fn failure(
        &self,
        out: &Outcome,
        f: Option<&FailureResponse>,
        at: u64,
        sites: &[usize],
    ) -> FailureReport {
        let f = f.copied().unwrap_or_default();
        let affected = |s: u32| sites.contains(&(s as usize));
        FailureReport {
            at_s: at as f64 / SEC,
            chosen_after_failure: f.chosen_after,
            last_chosen_after_ms: f.last_chosen_after_ns.map(|n| n as f64 / 1e6),
            in_service_lost: f.in_service_lost,
            affected_sites: self.windows(out, at, &affected),
            all_sites: self.windows(out, at, &|_| true),
        }
    }

    fn report(&self, out: &mut Outcome) -> PolicyReport {
        let mut to = [BTreeMap::new(), BTreeMap::new()];
        for (n, c) in out.chosen.iter().enumerate() {
            let kind = self
                .topology
                .kinds
                .get(n)
                .copied()
                .unwrap_or(Kind::Centre)
                .name()
                .to_string();
            for (class, m) in to.iter_mut().enumerate() {
                *m.entry(kind.clone()).or_insert(0) += c.get(class).copied().unwrap_or(0);
            }
        }
        let edge_failure = self.failure(
            out,
            out.node_failures.first(),
            self.t_edge_ns,
            &self.edge_failure_sites,
        );
        let wan_failure = self.failure(
            out,
            out.path_failures.first(),
            self.t_wan_ns,
            &[self.layout.wan_failed_site],
        );
        let (st, ss) = out.short.throughput();
        let (lt, ls) = out.long.throughput();
        let failed = out.short.failures() + out.long.failures();
        let [short_to, long_to] = to;
        PolicyReport {
            short: ClassSummary::of(&mut out.short, st, ss),
            long: ClassSummary::of(&mut out.long, lt, ls),
            failed_requests: failed,
            short_to,
            long_to,
            edge_failure,
            wan_failure,
            decisions: out.decisions,
            events: out.events,
            state_messages: out.state_messages,
            simulated_s: out.end_ns as f64 / SEC,
            wall_s: None,
            decisions_per_wall_s: None,
        }
    }
}
