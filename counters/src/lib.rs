//! # counters — single-writer statistics for per-lcore state
//!
//! Every worker lcore (and every sans-IO engine it drives) owns its
//! counters and is their only writer, so an update is a relaxed load and
//! store — a plain `add` to memory on x86, no locked instruction — and the
//! main lcore sums all writers' counters off the fast path. This is
//! Katran's and VPP's habit: nothing written by two cores on the fast
//! path. Recording never allocates, locks or panics.

#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

/// Adds to a counter that only the calling lcore writes.
#[inline(always)]
pub fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Relaxed).wrapping_add(n), Relaxed);
}

/// The most recent latency samples (microseconds) written by one lcore:
/// a fixed ring, so recording never allocates. Readers take whatever is
/// there; an occasional torn read of a sample being overwritten is harmless
/// for percentiles.
pub struct SampleRing {
    samples: Box<[AtomicU32]>,
    written: AtomicU64,
    /// Samples a merged ring counts but did not keep (their writers'
    /// rings had already overwritten them).
    uncounted: AtomicU64,
}

impl SampleRing {
    pub const CAPACITY: usize = 4096;

    pub fn new() -> Self {
        SampleRing {
            samples: (0..Self::CAPACITY).map(|_| AtomicU32::new(0)).collect(),
            written: AtomicU64::new(0),
            uncounted: AtomicU64::new(0),
        }
    }

    /// Records one sample; single writer.
    #[inline]
    pub fn record(&self, micros: u32) {
        let n = self.written.load(Relaxed);
        if let Some(slot) = self.samples.get((n % Self::CAPACITY as u64) as usize) {
            slot.store(micros, Relaxed);
        }
        self.written.store(n + 1, Relaxed);
    }

    /// Samples recorded since start.
    pub fn count(&self) -> u64 {
        self.written.load(Relaxed) + self.uncounted.load(Relaxed)
    }

    /// One ring holding what several writers recorded (for reading off
    /// the fast path): their samples, as many as fit, and their total count.
    pub fn merged<'a>(parts: impl IntoIterator<Item = &'a SampleRing>) -> SampleRing {
        let merged = SampleRing::new();
        let mut total = 0u64;
        for part in parts {
            for s in part.snapshot() {
                merged.record(s);
            }
            total += part.count();
        }
        let recorded = merged.written.load(Relaxed);
        merged
            .uncounted
            .store(total.saturating_sub(recorded), Relaxed);
        merged
    }

    /// The samples currently held (the last `CAPACITY` at most).
    pub fn snapshot(&self) -> Vec<u32> {
        let n = self.written.load(Relaxed).min(Self::CAPACITY as u64) as usize;
        self.samples[..n].iter().map(|s| s.load(Relaxed)).collect()
    }
}

impl Default for SampleRing {
    fn default() -> Self {
        SampleRing::new()
    }
}

/// A latency histogram with fixed bucket bounds, monotonic counters and a
/// single writer: what Prometheus expects of a histogram, without
/// allocation or locks on the recording side.
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

/// Upper bounds (µs, inclusive) of the histogram buckets; above the last
/// counts only in `+Inf` (the total).
pub const LATENCY_BUCKETS_US: [u64; 12] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 100_000, 1_000_000,
];

impl LatencyHistogram {
    pub fn new() -> Self {
        LatencyHistogram {
            buckets: Default::default(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    #[inline]
    pub fn record(&self, micros: u64) {
        if let Some(i) = LATENCY_BUCKETS_US.iter().position(|&b| micros <= b) {
            bump(&self.buckets[i], 1);
        }
        bump(&self.count, 1);
        bump(&self.sum_us, micros);
    }

    /// Cumulative bucket counts (as exposed), total count and sum in µs.
    pub fn read(&self) -> ([u64; LATENCY_BUCKETS_US.len()], u64, u64) {
        let mut cumulative = [0u64; LATENCY_BUCKETS_US.len()];
        let mut running = 0;
        for (c, b) in cumulative.iter_mut().zip(&self.buckets) {
            running += b.load(Relaxed);
            *c = running;
        }
        (
            cumulative,
            self.count.load(Relaxed),
            self.sum_us.load(Relaxed),
        )
    }
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

/// The value at quantile `q` (0..=1) of `samples`, sorting them.
pub fn quantile(samples: &mut [u32], q: f64) -> Option<u32> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let idx = ((samples.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
    samples.get(idx).copied()
}
