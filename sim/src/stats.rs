//! What a run measures, per class of request, as an open-loop user sees
//! it: from the request's arrival to its first token and to its last,
//! network both ways and loss penalties included.

use serde::Serialize;

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailReason {
    /// The decision had no capable live instance.
    NoChoice = 0,
    /// Its node failed before it was answered, or it was sent to a failed
    /// node.
    NodeFailed = 1,
    /// The path lost it beyond what TCP recovers within the timeout.
    Unreachable = 2,
    /// Answered, but after the user's timeout.
    Timeout = 3,
}

impl FailReason {
    /// Every reason.
    pub const ALL: [FailReason; 4] = [
        FailReason::NoChoice,
        FailReason::NodeFailed,
        FailReason::Unreachable,
        FailReason::Timeout,
    ];

    /// Stable name.
    pub const fn name(self) -> &'static str {
        match self {
            FailReason::NoChoice => "no_choice",
            FailReason::NodeFailed => "node_failed",
            FailReason::Unreachable => "unreachable",
            FailReason::Timeout => "timeout",
        }
    }
}

/// Raw measurements of one class.
#[derive(Debug, Clone, Default)]
pub struct ClassStats {
    /// Requests that arrived.
    pub arrived: u64,
    /// Requests answered within the timeout.
    pub completed: u64,
    /// Failures by [`FailReason`] index.
    pub failed: [u64; 4],
    /// TTFT of every request, µs; failures censored at the timeout.
    pub ttft_us: Vec<u32>,
    /// Completion of every request, µs; failures censored at the timeout.
    pub completion_us: Vec<u32>,
    /// Output tokens of completed requests.
    pub output_tokens: u64,
    /// First arrival, ns.
    pub first_arrival_ns: Option<u64>,
    /// Last completion, ns.
    pub last_completion_ns: u64,
}

fn to_us(ns: u64) -> u32 {
    u32::try_from(ns / 1000).unwrap_or(u32::MAX)
}

impl ClassStats {
    /// A request arrived at `t0`.
    pub fn arrive(&mut self, t0: u64) {
        self.arrived += 1;
        if self.first_arrival_ns.is_none() {
            self.first_arrival_ns = Some(t0);
        }
    }

    /// A request was answered.
    pub fn complete(&mut self, ttft_ns: u64, completion_ns: u64, output_tokens: u32, at_ns: u64) {
        self.completed += 1;
        self.ttft_us.push(to_us(ttft_ns));
        self.completion_us.push(to_us(completion_ns));
        self.output_tokens += u64::from(output_tokens);
        self.last_completion_ns = self.last_completion_ns.max(at_ns);
    }

    /// A request failed; its latencies count as the timeout.
    pub fn fail(&mut self, reason: FailReason, timeout_ns: u64) {
        if let Some(f) = self.failed.get_mut(reason as usize) {
            *f += 1;
        }
        self.ttft_us.push(to_us(timeout_ns));
        self.completion_us.push(to_us(timeout_ns));
    }

    /// Failures of every reason.
    pub fn failures(&self) -> u64 {
        self.failed.iter().sum()
    }

    /// Adds another run's measurements (replications are pooled).
    pub fn merge(&mut self, o: &ClassStats) {
        self.arrived += o.arrived;
        self.completed += o.completed;
        for (a, b) in self.failed.iter_mut().zip(o.failed) {
            *a += b;
        }
        self.ttft_us.extend_from_slice(&o.ttft_us);
        self.completion_us.extend_from_slice(&o.completion_us);
        self.output_tokens += o.output_tokens;
    }

    /// Output tokens of completed requests per second, from the first
    /// arrival to the last completion.
    pub fn throughput(&self) -> (u64, f64) {
        let span = self
            .first_arrival_ns
            .map_or(0, |f| self.last_completion_ns.saturating_sub(f));
        (self.output_tokens, span as f64 / 1e9)
    }
}

/// Nearest-rank percentile of `sorted` (µs), in ms; 0 when empty.
pub fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted.get(i).map_or(0.0, |v| f64::from(*v) / 1000.0)
}

/// p50 and p99 of a latency, ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// Of µs samples (sorted in place).
    pub fn of(samples: &mut [u32]) -> Percentiles {
        samples.sort_unstable();
        let mean = if samples.is_empty() {
            0.0
        } else {
            samples.iter().map(|v| f64::from(*v)).sum::<f64>() / samples.len() as f64 / 1000.0
        };
        Percentiles {
            p50: percentile_ms(samples, 0.5),
            p99: percentile_ms(samples, 0.99),
            mean,
        }
    }
}

/// One class's results, as written to JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassSummary {
    /// Requests that arrived.
    pub count: u64,
    /// Answered within the timeout.
    pub completed: u64,
    /// Failed (every reason).
    pub failures: u64,
    /// Failures by reason.
    pub failures_by_reason: std::collections::BTreeMap<&'static str, u64>,
    /// TTFT from arrival, ms (failures censored at the timeout).
    pub ttft_ms: Percentiles,
    /// Completion from arrival, ms (failures censored at the timeout).
    pub completion_ms: Percentiles,
    /// Output tokens of completed requests per second of the run (first
    /// arrival to last completion).
    pub throughput_tokens_per_s: f64,
}

impl ClassSummary {
    /// Summarises pooled runs: `spans_s` is the sum of the runs' spans.
    pub fn of(s: &mut ClassStats, tokens: u64, spans_s: f64) -> ClassSummary {
        ClassSummary {
            count: s.arrived,
            completed: s.completed,
            failures: s.failures(),
            failures_by_reason: FailReason::ALL
                .iter()
                .map(|r| (r.name(), s.failed.get(*r as usize).copied().unwrap_or(0)))
                .collect(),
            ttft_ms: Percentiles::of(&mut s.ttft_us),
            completion_ms: Percentiles::of(&mut s.completion_us),
            throughput_tokens_per_s: if spans_s > 0.0 {
                tokens as f64 / spans_s
            } else {
                0.0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile_ms(&v, 0.5), 50.0);
        assert_eq!(percentile_ms(&v, 0.99), 99.0);
        assert_eq!(percentile_ms(&v, 1.0), 100.0);
        assert_eq!(percentile_ms(&[], 0.5), 0.0);
    }
}
