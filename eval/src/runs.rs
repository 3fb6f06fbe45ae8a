//! One run = one policy at one load: the agent's per-request report, read
//! back and summarised per request class.
//!
//! Every latency here is what an open-loop user sees: from the request's
//! scheduled arrival, so connection set-up, SYN retransmissions on a lossy
//! path and the agent's own lateness all count. A request that failed
//! (timed out, refused) is counted, and for percentiles it is censored at
//! the agent's timeout: it did not get its answer within that time, and
//! leaving it out would flatter whichever policy lost it.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One request as `pktgen agent --out` writes it (the fields used here).
#[derive(Debug, Clone, Deserialize)]
pub struct AgentRequest {
    /// `short` or `long`.
    pub class: String,
    /// Planned arrival, ms from the run's start.
    pub scheduled_ms: f64,
    /// Scheduled arrival → first response byte, ms.
    #[serde(default)]
    pub arrival_ttft_ms: Option<f64>,
    /// Scheduled arrival → last response byte, ms.
    #[serde(default)]
    pub arrival_completion_ms: Option<f64>,
    /// Output tokens received.
    #[serde(default)]
    pub output_tokens: Option<u64>,
    /// Why it failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// `pktgen agent --out`.
#[derive(Debug, Clone, Deserialize)]
pub struct AgentReport {
    /// Every request.
    pub requests: Vec<AgentRequest>,
}

impl AgentReport {
    /// Reads a report.
    pub fn load(path: &Path) -> anyhow::Result<AgentReport> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not an agent report", path.display()))
    }
}

/// p50, p99 and the mean of a sample, ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Percentiles {
    /// Median (nearest rank).
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Mean.
    pub mean: f64,
}

/// The nearest-rank `q`-quantile of sorted values (`q` in 0..=1).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Percentiles {
    /// Of `values` (any order).
    pub fn of(values: &[f64]) -> Percentiles {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let mean = if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        };
        Percentiles {
            p50: quantile(&v, 0.50),
            p99: quantile(&v, 0.99),
            mean,
        }
    }
}

/// One class of one run.
#[derive(Debug, Clone, Serialize)]
pub struct ClassStats {
    /// Requests sent.
    pub requests: usize,
    /// Requests answered in full.
    pub completed: usize,
    /// Requests that failed (censored at the timeout in the percentiles).
    pub failed: usize,
    /// Time to first token from the scheduled arrival, ms.
    pub ttft_ms: Percentiles,
    /// Completion time from the scheduled arrival, ms.
    pub completion_ms: Percentiles,
    /// Output tokens of completed requests per second, from the first
    /// scheduled arrival of the class to its last completion.
    pub throughput_tokens_per_s: f64,
    /// Completed requests per second over the same span.
    pub throughput_requests_per_s: f64,
    /// Every TTFT, sorted (for the CDF charts).
    #[serde(skip)]
    pub ttft_sorted: Vec<f64>,
}

impl ClassStats {
    /// Summarises the requests of `class` in `report`; failures are
    /// censored at `timeout_ms`.
    pub fn of(report: &AgentReport, class: &str, timeout_ms: f64) -> ClassStats {
        let reqs: Vec<&AgentRequest> = report
            .requests
            .iter()
            .filter(|r| r.class == class)
            .collect();
        let done = |r: &&&AgentRequest| r.error.is_none() && r.arrival_completion_ms.is_some();
        let censor = |v: Option<f64>, r: &AgentRequest| match (v, &r.error) {
            (Some(v), None) => v,
            _ => timeout_ms,
        };
        let mut ttft: Vec<f64> = reqs.iter().map(|r| censor(r.arrival_ttft_ms, r)).collect();
        let completion: Vec<f64> = reqs
            .iter()
            .map(|r| censor(r.arrival_completion_ms, r))
            .collect();
        let completed: Vec<&&AgentRequest> = reqs.iter().filter(done).collect();
        let first = reqs
            .iter()
            .map(|r| r.scheduled_ms)
            .fold(f64::INFINITY, f64::min);
        let last = completed
            .iter()
            .map(|r| r.scheduled_ms + r.arrival_completion_ms.unwrap_or(0.0))
            .fold(f64::NEG_INFINITY, f64::max);
        let span_s = (last - first) / 1000.0;
        let tokens: u64 = completed.iter().map(|r| r.output_tokens.unwrap_or(0)).sum();
        let (tps, rps) = if span_s.is_finite() && span_s > 0.0 {
            (tokens as f64 / span_s, completed.len() as f64 / span_s)
        } else {
            (0.0, 0.0)
        };
        ttft.sort_by(f64::total_cmp);
        ClassStats {
            requests: reqs.len(),
            completed: completed.len(),
            failed: reqs.len() - completed.len(),
            ttft_ms: Percentiles::of(&ttft),
            completion_ms: Percentiles::of(&completion),
            throughput_tokens_per_s: tps,
            throughput_requests_per_s: rps,
            ttft_sorted: ttft,
        }
    }
}

/// One run, both classes.
#[derive(Debug, Clone, Serialize)]
pub struct RunStats {
    /// Short (interactive) requests.
    pub short: ClassStats,
    /// Long (bulk) requests.
    pub long: ClassStats,
}

impl RunStats {
    /// Summarises an agent report.
    pub fn of(report: &AgentReport, timeout_ms: f64) -> RunStats {
        RunStats {
            short: ClassStats::of(report, "short", timeout_ms),
            long: ClassStats::of(report, "long", timeout_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(
        class: &str,
        at: f64,
        ttft: Option<f64>,
        done: Option<f64>,
        tokens: u64,
    ) -> AgentRequest {
        AgentRequest {
            class: class.into(),
            scheduled_ms: at,
            arrival_ttft_ms: ttft,
            arrival_completion_ms: done,
            output_tokens: Some(tokens),
            error: if done.is_some() {
                None
            } else {
                Some("timed out".into())
            },
        }
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert_eq!(quantile(&[], 0.99), 0.0);
    }

    #[test]
    fn classes_are_summarised_apart_and_failures_are_censored() {
        let report = AgentReport {
            requests: vec![
                req("short", 0.0, Some(10.0), Some(20.0), 8),
                req("short", 100.0, Some(30.0), Some(50.0), 8),
                req("short", 200.0, None, None, 0),
                req("long", 0.0, Some(100.0), Some(1000.0), 500),
                req("long", 500.0, Some(120.0), Some(1500.0), 700),
            ],
        };
        let s = RunStats::of(&report, 5000.0);
        assert_eq!(
            (s.short.requests, s.short.completed, s.short.failed),
            (3, 2, 1)
        );
        assert_eq!(s.short.ttft_ms.p99, 5000.0);
        assert_eq!(s.short.ttft_ms.p50, 30.0);
        assert_eq!(s.short.ttft_sorted, vec![10.0, 30.0, 5000.0]);
        // Long: 1200 tokens from 0 ms to 2000 ms.
        assert_eq!(s.long.completed, 2);
        assert!((s.long.throughput_tokens_per_s - 600.0).abs() < 1e-9);
        assert!((s.long.throughput_requests_per_s - 1.0).abs() < 1e-9);
        assert_eq!(s.long.completion_ms.p50, 1000.0);
    }
}
