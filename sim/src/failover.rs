//! Failure and recovery: how long new flows take to move away from a failed
//! element and to come back once it has recovered, and which requests were
//! lost. [`analyse`] reads a list of requests (when each was decided, where
//! it went, whether it was answered) against a list of failures; it serves
//! the simulated run ([`run_failover`], `intellisim failover`) and the
//! emulated one (`intellieval report`, from the agent's records) alike, so
//! both are measured by one definition.
//!
//! The run ([`crate::config::FailoverTimeline`]): IntelliNode on the eval
//! cluster at one load; the edge node is killed and restarted, then the
//! centre's path is black-holed and restored. The nodes report NODE_STATE
//! and the paths PATH_STATE every report interval (in the emulation, `pktgen
//! serve` and `pktgen wire` do), so a killed node goes quiet and is stale
//! after `max_state_age`, and a black-holed path is reported losing
//! everything.
//!
//! Definitions, per failure of instance `i` (its node, or its only path) at
//! `at`, recovered at `rec`:
//!
//! * **steady class**: the class (short or long) of which the largest share
//!   went to `i` before the first failure; that is the work that should
//!   come back to it;
//! * **away**: the last new flow steered to `i` in `[at, rec)`, minus `at`
//!   (0 if there was none): after it, no new flow went to the failed
//!   element. Goal: at most `max_state_age`;
//! * **back**: the last new flow of the steady class steered elsewhere
//!   after `rec` and before the first one steered to `i` again, minus
//!   `rec` (0 if none). Later choices elsewhere are the decision
//!   balancing load (after a black hole the centre has a backlog), not a
//!   lag. Goal: at most two report intervals. `first_back` is the first
//!   new flow of any class to `i` after `rec`, an upper bound that also
//!   depends on when requests happen to arrive;
//! * **lost in flight**: failed requests steered to `i` before `at` (and
//!   after the previous recovery) that failed at or after `at`, where the
//!   failure time is known: they were on the failed element when it
//!   failed;
//! * **lost after the failure**: failed requests steered to `i` in
//!   `[at, rec)`, before the appliance moved away;
//! * **lost elsewhere**: every other failed request.
//!
//! The loss goal: no request lost except those in flight on the failed
//! element, i.e. lost elsewhere = 0. "In flight on the failed element"
//! counts both kinds above: what it held when it failed, and what the
//! appliance put on it before it moved away. A crashed node cannot be
//! known dead before it goes quiet for long enough, and the away goal
//! allows up to `max_state_age` for that; nothing can save a request
//! sent to a dead process in that window without the client retrying.
//! Both counts are reported apart, so the stricter reading (lost after the
//! failure = 0 too) can be read off as well.

use serde::{Deserialize, Serialize};

use crate::config::EvalCluster;
use crate::eval::{run_config, topology, INTELLINODE, NODE_NAMES};
use crate::world::run;

/// One request as the analysis sees it. Times are ms from the start of
/// arrivals.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Record {
    /// When the appliance decided it (the simulated arrival; the agent's
    /// connect in the emulation).
    pub start_ms: f64,
    /// Short (interactive).
    pub short: bool,
    /// The instance it was steered to, if known.
    pub instance: Option<usize>,
    /// Answered.
    pub ok: bool,
    /// When it completed or failed, if known.
    pub done_ms: Option<f64>,
}

/// One failure of the timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// What happened, for people ("edge node killed").
    pub what: String,
    /// The instance whose node or path failed.
    pub instance: String,
    /// When, ms.
    pub at_ms: f64,
    /// When it recovered (the restart began, the path was restored), ms.
    pub recovered_ms: f64,
}

/// The bounds the goals use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bounds {
    /// NODE_STATE older than this is stale, ms.
    pub max_state_age_ms: f64,
    /// NODE_STATE and PATH_STATE period, ms.
    pub report_interval_ms: f64,
}

/// What the appliance did about one failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// The failure.
    #[serde(flatten)]
    pub failure: Failure,
    /// `short` or `long`.
    pub steady_class: String,
    /// Share of the steady class the instance took before the first
    /// failure.
    pub steady_share: f64,
    /// New flows steered to the instance in `[at, recovered)`.
    pub steered_after_failure: u64,
    /// The last of them, ms after the failure (0: none).
    pub away_ms: f64,
    /// New flows of the steady class steered elsewhere after the
    /// recovery, before the first one steered to the instance again.
    pub steered_elsewhere_after_recovery: u64,
    /// The last of them, ms after the recovery (0: none).
    pub back_ms: f64,
    /// The first new flow to the instance after the recovery, ms after it.
    pub first_back_ms: Option<f64>,
    /// Failed requests steered to the instance before the failure.
    pub lost_in_flight: u64,
    /// Failed requests steered to the instance in `[at, recovered)`.
    pub lost_after_failure: u64,
}

/// A goal and whether it was met.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    /// What is promised.
    pub goal: String,
    /// The measured value.
    pub value: f64,
    /// The bound (at most).
    pub bound: f64,
    /// Met.
    pub met: bool,
}

/// Counts per time bin, for the charts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Bin width, ms.
    pub bin_ms: f64,
    /// Answered requests per second, per instance (by completion time).
    pub answered_rps: Vec<(String, Vec<f64>)>,
    /// Failed requests per second (by failure time, else decision time).
    pub failed_rps: Vec<f64>,
    /// New flows steered per second, per instance (by decision time).
    pub decisions_rps: Vec<(String, Vec<f64>)>,
}

/// Everything [`analyse`] measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailoverReport {
    /// `emulation` or `simulation`.
    pub source: String,
    /// The bounds.
    pub bounds: Bounds,
    /// Requests, answered ones, failed ones.
    pub requests: u64,
    /// Answered.
    pub answered: u64,
    /// Failed.
    pub failed: u64,
    /// Failed requests whose instance is unknown or not a failed one, or
    /// that were steered to it outside its failures.
    pub lost_elsewhere: u64,
    /// Per failure.
    pub responses: Vec<Response>,
    /// The goals.
    pub goals: Vec<Goal>,
    /// Over time.
    pub series: Series,
}

impl FailoverReport {
    /// Whether every goal was met.
    pub fn all_met(&self) -> bool {
        self.goals.iter().all(|g| g.met)
    }
}

fn short_name(short: bool) -> &'static str {
    if short {
        "short"
    } else {
        "long"
    }
}

/// Measures `records` against `failures` (in time order, not
/// overlapping); `instances` names the instances by index.
pub fn analyse(
    source: &str,
    instances: &[&str],
    failures: &[Failure],
    records: &[Record],
    bounds: Bounds,
    bin_ms: f64,
) -> FailoverReport {
    let index = |name: &str| instances.iter().position(|n| *n == name);
    let first_failure = failures
        .iter()
        .map(|f| f.at_ms)
        .fold(f64::INFINITY, f64::min);
    let mut responses = Vec::with_capacity(failures.len());
    // Which failed request each failure accounts for.
    let mut explained = vec![false; records.len()];
    for (k, f) in failures.iter().enumerate() {
        let i = index(&f.instance);
        let on_i = |r: &Record| r.instance.is_some() && r.instance == i;
        let until = failures.get(k + 1).map_or(f64::INFINITY, |next| next.at_ms);
        let (steady_short, steady_share) = [true, false]
            .into_iter()
            .map(|short| {
                let before = records
                    .iter()
                    .filter(|r| r.start_ms < first_failure && r.short == short);
                let (n, on) =
                    before.fold((0u64, 0u64), |(n, on), r| (n + 1, on + u64::from(on_i(r))));
                (short, if n == 0 { 0.0 } else { on as f64 / n as f64 })
            })
            .fold((true, -1.0), |best, c| if c.1 > best.1 { c } else { best });
        let during = |r: &Record| r.start_ms >= f.at_ms && r.start_ms < f.recovered_ms;
        let after = |r: &Record| r.start_ms >= f.recovered_ms && r.start_ms < until;
        let to_failed: Vec<&Record> = records.iter().filter(|r| on_i(r) && during(r)).collect();
        let away_ms = to_failed
            .iter()
            .map(|r| r.start_ms - f.at_ms)
            .fold(0.0, f64::max);
        // Once steady work goes to the element again, it is back: later
        // choices elsewhere are the decision balancing load, not a lag.
        let back_at = records
            .iter()
            .filter(|r| after(r) && r.short == steady_short && on_i(r))
            .map(|r| r.start_ms)
            .fold(until, f64::min);
        let elsewhere: Vec<&Record> = records
            .iter()
            .filter(|r| after(r) && r.start_ms < back_at && r.short == steady_short && !on_i(r))
            .collect();
        let back_ms = elsewhere
            .iter()
            .map(|r| r.start_ms - f.recovered_ms)
            .fold(0.0, f64::max);
        let first_back_ms = records
            .iter()
            .filter(|r| after(r) && on_i(r))
            .map(|r| r.start_ms - f.recovered_ms)
            .reduce(f64::min);
        let (mut lost_in_flight, mut lost_after_failure) = (0u64, 0u64);
        let previous_recovery = k
            .checked_sub(1)
            .and_then(|p| failures.get(p))
            .map_or(f64::NEG_INFINITY, |p| p.recovered_ms);
        for (r, e) in records.iter().zip(explained.iter_mut()) {
            if r.ok || *e || !on_i(r) {
                continue;
            }
            let failed_after = r.done_ms.map_or(true, |d| d >= f.at_ms);
            if r.start_ms >= previous_recovery && r.start_ms < f.at_ms && failed_after {
                lost_in_flight += 1;
                *e = true;
            } else if during(r) {
                lost_after_failure += 1;
                *e = true;
            }
        }
        responses.push(Response {
            failure: f.clone(),
            steady_class: short_name(steady_short).into(),
            steady_share,
            steered_after_failure: to_failed.len() as u64,
            away_ms,
            steered_elsewhere_after_recovery: elsewhere.len() as u64,
            back_ms,
            first_back_ms,
            lost_in_flight,
            lost_after_failure,
        });
    }
    let failed = records.iter().filter(|r| !r.ok).count() as u64;
    let lost_elsewhere = records
        .iter()
        .zip(&explained)
        .filter(|(r, e)| !r.ok && !**e)
        .count() as u64;
    let mut goals = Vec::new();
    for r in &responses {
        let f = &r.failure;
        goals.push(Goal {
            goal: format!("{}: new flows away within max_state_age, ms", f.what),
            value: r.away_ms,
            bound: bounds.max_state_age_ms,
            met: r.away_ms <= bounds.max_state_age_ms,
        });
        goals.push(Goal {
            goal: format!(
                "{}: {} flows back within 2 report intervals, ms",
                f.what, r.steady_class
            ),
            value: r.back_ms,
            bound: 2.0 * bounds.report_interval_ms,
            met: r.back_ms <= 2.0 * bounds.report_interval_ms,
        });
    }
    goals.push(Goal {
        goal: "requests lost other than those on the failed element".into(),
        value: lost_elsewhere as f64,
        bound: 0.0,
        met: lost_elsewhere == 0,
    });
    FailoverReport {
        source: source.into(),
        bounds,
        requests: records.len() as u64,
        answered: records.len() as u64 - failed,
        failed,
        lost_elsewhere,
        responses,
        goals,
        series: series(instances, records, bin_ms),
    }
}

fn series(instances: &[&str], records: &[Record], bin_ms: f64) -> Series {
    let bin_ms = if bin_ms.is_finite() && bin_ms > 0.0 {
        bin_ms
    } else {
        1000.0
    };
    let end = records
        .iter()
        .map(|r| r.done_ms.unwrap_or(r.start_ms).max(r.start_ms))
        .fold(0.0, f64::max);
    let bins = ((end / bin_ms).floor() as usize + 1).min(100_000);
    let per_s = 1000.0 / bin_ms;
    let bin = |t: f64| ((t.max(0.0) / bin_ms) as usize).min(bins - 1);
    let mut answered = vec![vec![0.0; bins]; instances.len()];
    let mut decisions = vec![vec![0.0; bins]; instances.len()];
    let mut failed = vec![0.0; bins];
    for r in records {
        if let Some(i) = r.instance {
            if let Some(d) = decisions.get_mut(i) {
                d[bin(r.start_ms)] += per_s;
            }
        }
        let done = r.done_ms.unwrap_or(r.start_ms);
        if !r.ok {
            failed[bin(done)] += per_s;
        } else if let Some(a) = r.instance.and_then(|i| answered.get_mut(i)) {
            a[bin(done)] += per_s;
        }
    }
    let named = |v: Vec<Vec<f64>>| {
        instances
            .iter()
            .map(|n| n.to_string())
            .zip(v)
            .collect::<Vec<_>>()
    };
    Series {
        bin_ms,
        answered_rps: named(answered),
        failed_rps: failed,
        decisions_rps: named(decisions),
    }
}

/// The timeline's failures in the eval cluster, ms from the start of
/// arrivals.
pub fn failures(c: &EvalCluster) -> Vec<Failure> {
    let t = &c.failover;
    vec![
        Failure {
            what: "edge node killed".into(),
            instance: NODE_NAMES[0].into(),
            at_ms: t.kill_edge_s * 1000.0,
            recovered_ms: t.restart_edge_s * 1000.0,
        },
        Failure {
            what: "centre path black-holed".into(),
            instance: NODE_NAMES[1].into(),
            at_ms: t.cut_internet_s * 1000.0,
            recovered_ms: t.restore_internet_s * 1000.0,
        },
    ]
}

/// The bounds of the eval cluster under the default thresholds.
pub fn bounds(c: &EvalCluster) -> Bounds {
    Bounds {
        max_state_age_ms: control::thresholds::Thresholds::default().max_state_age_ns as f64 / 1e6,
        report_interval_ms: c.report_interval_ms,
    }
}

/// Simulates the failure timeline on the eval cluster: IntelliNode at the
/// timeline's load, nodes reporting NODE_STATE and paths PATH_STATE every
/// report interval (as `pktgen serve` and `pktgen wire` do in the
/// emulation), the edge node failing and restarting, the centre's path
/// losing everything and recovering; then [`analyse`].
pub fn run_failover(c: &EvalCluster, seed: u64) -> Result<FailoverReport, String> {
    c.validate()?;
    let t = &c.failover;
    let rate = c.capacity_rps() * t.load;
    let requests = (rate * t.arrivals_s).ceil().max(1.0) as u64;
    let topo = topology(c, rate, None);
    let ns = |ms: f64| (ms * 1e6).round().max(0.0) as u64;
    let mut cfg = run_config(c, INTELLINODE, seed, requests);
    let origin = cfg.warmup_ns;
    let at = |s: f64| origin + ns(s * 1000.0);
    cfg.probe_interval_ns = Some(cfg.report_interval_ns);
    cfg.node_failures = vec![(at(t.kill_edge_s), vec![0])];
    cfg.node_recoveries = vec![(at(t.restart_edge_s), vec![0])];
    cfg.path_failures = vec![(at(t.cut_internet_s), vec![1])];
    cfg.path_recoveries = vec![(at(t.restore_internet_s), vec![1])];
    cfg.record_requests = true;
    let out = run(&topo, &cfg)?;
    let ms = |t_ns: u64| (t_ns as f64 - origin as f64) / 1e6;
    let records: Vec<Record> = out
        .requests
        .iter()
        .map(|r| Record {
            start_ms: ms(r.arrival_ns),
            short: r.short,
            instance: r.node.map(|n| n as usize),
            ok: r.failed.is_none(),
            done_ms: Some(ms(r.done_ns)),
        })
        .collect();
    Ok(analyse(
        "simulation",
        &NODE_NAMES,
        &failures(c),
        &records,
        bounds(c),
        t.bin_ms,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(start_ms: f64, short: bool, instance: Option<usize>, ok: bool) -> Record {
        Record {
            start_ms,
            short,
            instance,
            ok,
            done_ms: Some(start_ms + 50.0),
        }
    }

    const BOUNDS: Bounds = Bounds {
        max_state_age_ms: 1000.0,
        report_interval_ms: 20.0,
    };

    fn kill() -> Vec<Failure> {
        vec![Failure {
            what: "edge node killed".into(),
            instance: "edge".into(),
            at_ms: 1000.0,
            recovered_ms: 2000.0,
        }]
    }

    #[test]
    fn away_back_and_losses_follow_their_definitions() {
        let records = [
            // Before: short to the edge, long to the centre.
            rec(100.0, true, Some(0), true),
            rec(200.0, true, Some(0), true),
            rec(300.0, false, Some(1), true),
            // In service on the edge when it fails.
            rec(950.0, true, Some(0), false),
            // Steered to the dead edge 120 ms after it failed.
            rec(1120.0, true, Some(0), false),
            rec(1200.0, true, Some(1), true),
            // After the restart: one short request still elsewhere at
            // +30 ms, then back at +45 ms.
            rec(2030.0, true, Some(1), true),
            rec(2045.0, true, Some(0), true),
            // A long request lost on the healthy centre.
            rec(2500.0, false, Some(1), false),
        ];
        let r = analyse("t", &["edge", "centre"], &kill(), &records, BOUNDS, 500.0);
        let e = &r.responses[0];
        assert_eq!(e.steady_class, "short");
        assert_eq!(e.steady_share, 1.0);
        assert_eq!((e.steered_after_failure, e.away_ms), (1, 120.0));
        assert_eq!((e.steered_elsewhere_after_recovery, e.back_ms), (1, 30.0));
        assert_eq!(e.first_back_ms, Some(45.0));
        assert_eq!((e.lost_in_flight, e.lost_after_failure), (1, 1));
        assert_eq!(
            (r.requests, r.answered, r.failed, r.lost_elsewhere),
            (9, 6, 3, 1)
        );
        let met: Vec<(f64, bool)> = r.goals.iter().map(|g| (g.value, g.met)).collect();
        assert_eq!(met, [(120.0, true), (30.0, true), (1.0, false)]);
        // 500 ms bins: 2 answered by the edge in the first bin, i.e. 4/s.
        assert_eq!(r.series.answered_rps[0].1[0], 4.0);
        assert_eq!(r.series.decisions_rps[1].1[2], 2.0);
        assert_eq!(r.series.failed_rps.iter().sum::<f64>(), 6.0);
    }

    #[test]
    fn a_slow_move_away_or_back_misses_its_goal() {
        let records = [
            rec(100.0, true, Some(0), true),
            rec(1900.0, true, Some(0), false),
            rec(2100.0, true, Some(1), true),
        ];
        let r = analyse("t", &["edge", "centre"], &kill(), &records, BOUNDS, 100.0);
        let met: Vec<(f64, bool)> = r.goals.iter().map(|g| (g.value, g.met)).collect();
        assert_eq!(met, [(900.0, true), (100.0, false), (0.0, true)]);
        let late = [
            rec(100.0, true, Some(0), true),
            rec(2001.0, true, Some(0), true),
        ];
        let r = analyse("t", &["edge", "centre"], &kill(), &late, BOUNDS, 100.0);
        assert!(r.all_met(), "{:?}", r.goals);
        assert_eq!(r.responses[0].away_ms, 0.0);
    }
}
