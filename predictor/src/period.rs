//! Period detection for bursty, periodic load (draft §3.2, "the arrival
//! time of the next batch of periodic tensor traffic").
//!
//! Why: data-parallel training repeats the same pattern every iteration:
//! a compute gap with little traffic, then an all-reduce burst, every `P`
//! milliseconds give or take some jitter. A predictor that knows `P` and
//! where the current iteration started can say what the next milliseconds
//! look like far better than "the same as the last millisecond", which is
//! wrong at every burst edge.
//!
//! [`PeriodDetector`] is fed one value per fixed-width time bin (bytes or
//! bits/s seen in the bin) and keeps the last `K` bins in a ring allocated
//! once in [`PeriodDetector::new`]. It works on **burst onsets**:
//!
//! 1. An adaptive threshold separates quiet from busy bins. `peak` follows
//!    the series' maxima (jumps up at once, decays towards `base` by
//!    `1/K` of the spread per bin) and `base` its minima (drops at once,
//!    rises towards `peak` at the same slow rate), so the two settle at the
//!    quiet level and the burst level. A bin is *busy* above
//!    `base + ½·spread`, *quiet* below `base + ¼·spread` (the gap is
//!    hysteresis, so a dip inside a burst is not a new burst).
//! 2. An *onset* is a busy bin after at least two quiet bins. Nothing is an
//!    onset while the spread is under a quarter of `peak`: a constant (or
//!    slightly noisy constant) series has no bursts.
//! 3. The last [`INTERVALS`] inter-onset intervals are kept. Their median
//!    `m` is robust to a spurious onset; intervals within 15 % of `m` are
//!    *inliers*, and the period is the mean of the inliers.
//! 4. `confidence = inlier fraction × (1 − mean |inlier − period| / (0.2 ·
//!    period))`, clamped to 0..1, and faded to 0 once no onset has been
//!    seen for more than two periods (training stopped). A period is
//!    reported when at least three intervals are known and the confidence
//!    is at least ½. On random noise onsets are irregular, so inliers are
//!    few and spread out and the confidence stays low.
//! 5. Period changes: when the three most recent intervals agree with each
//!    other (within 10 %) but not with the median, the older intervals are
//!    dropped, so a new period is reported after three iterations instead
//!    of after half the interval ring has turned over. An interval longer
//!    than `K/3` bins (a pause, a gap in the data) clears the history: the
//!    ring could not hold the three periods that `seasonal` reads anyway.
//!
//! [`PeriodDetector::seasonal`] answers "what will the bin `a` bins from
//! now hold?" from history: the target's phase within the iteration is
//! `(bins since the last onset + a) mod P`, and the value is the mean of the
//! bins at that phase after each of the last [`SEASONS`] onsets (those that
//! are already in the past and still in the ring). Aligning on the onsets
//! rather than on "exactly `P` bins ago" keeps the bursts in step despite
//! jitter, and averaging a few iterations smooths per-iteration noise.
//!
//! Cost: `push` is O(1) plus a sort of at most [`INTERVALS`] numbers when an
//! onset occurs; `seasonal` reads at most [`SEASONS`] bins. No allocation
//! after `new`, no panic, non-finite values are ignored (counted), negative
//! values are clamped to 0 (loads are never negative). An autocorrelation
//! search would cost O(K) per candidate period per evaluation; onsets give
//! the same answer for burst trains at O(1).

use core::fmt;

/// Inter-onset intervals remembered.
pub const INTERVALS: usize = 8;
/// Past iterations averaged by [`PeriodDetector::seasonal`].
pub const SEASONS: usize = 3;

/// Smallest ring accepted by [`PeriodDetector::new`]: a period needs at
/// least two quiet bins and one busy bin, three times over.
pub const MIN_HISTORY: usize = 16;
/// Largest ring accepted (a sanity bound on the one allocation).
pub const MAX_HISTORY: usize = 1 << 20;

const MIN_QUIET_BINS: u32 = 2;
const BUSY_FRACTION: f64 = 0.5;
const QUIET_FRACTION: f64 = 0.25;
const MIN_RELATIVE_SPREAD: f64 = 0.25;
const INLIER_TOLERANCE: f64 = 0.15;
const AGREE_TOLERANCE: f64 = 0.10;
const DISPERSION_SCALE: f64 = 0.2;
const MIN_CONFIDENCE: f64 = 0.5;
const MIN_INTERVALS: usize = 3;

/// The ring size given to [`PeriodDetector::new`] is out of range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistoryError {
    /// The size asked for.
    pub bins: usize,
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "period detector history of {} bins is outside {MIN_HISTORY}..={MAX_HISTORY}",
            self.bins
        )
    }
}

impl std::error::Error for HistoryError {}

/// Detects the period of a bursty series fed one bin at a time; see the
/// module documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct PeriodDetector {
    ring: Vec<f64>,
    /// Bins pushed so far; the last one is `pushed − 1`.
    pushed: u64,
    base: f64,
    peak: f64,
    quiet_run: u32,
    /// Absolute bin indices of the most recent onsets, newest last.
    onsets: [u64; SEASONS],
    onset_count: usize,
    intervals: [f64; INTERVALS],
    interval_count: usize,
    period: f64,
    raw_confidence: f64,
    rejected: u64,
}

impl PeriodDetector {
    /// A detector remembering the last `history_bins` bins (the only
    /// allocation). The longest detectable period is a third of that.
    pub fn new(history_bins: usize) -> Result<Self, HistoryError> {
        if !(MIN_HISTORY..=MAX_HISTORY).contains(&history_bins) {
            return Err(HistoryError { bins: history_bins });
        }
        Ok(Self {
            ring: vec![0.0; history_bins],
            pushed: 0,
            base: 0.0,
            peak: 0.0,
            quiet_run: 0,
            onsets: [0; SEASONS],
            onset_count: 0,
            intervals: [0.0; INTERVALS],
            interval_count: 0,
            period: 0.0,
            raw_confidence: 0.0,
            rejected: 0,
        })
    }

    /// Bins of history kept.
    pub fn history_bins(&self) -> usize {
        self.ring.len()
    }

    /// Longest period that can be detected, bins.
    pub fn max_period_bins(&self) -> usize {
        self.ring.len() / 3
    }

    /// Bins pushed so far.
    pub fn bins(&self) -> u64 {
        self.pushed
    }

    /// Values ignored because they were not finite.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    fn slot(&self, bin: u64) -> Option<usize> {
        let len = self.ring.len() as u64;
        if len == 0 {
            return None;
        }
        usize::try_from(bin % len).ok()
    }

    /// Folds in the value of the bin that just ended. Non-finite values are
    /// ignored (the bin is not counted), negative ones are taken as 0.
    pub fn push(&mut self, bin_value: f64) {
        if !bin_value.is_finite() {
            self.rejected = self.rejected.saturating_add(1);
            return;
        }
        let x = bin_value.max(0.0);
        let bin = self.pushed;
        if let Some(i) = self.slot(bin) {
            if let Some(cell) = self.ring.get_mut(i) {
                *cell = x;
            }
        }
        self.pushed = self.pushed.saturating_add(1);

        if bin == 0 {
            self.base = x;
            self.peak = x;
            return;
        }
        // Slow convergence of the envelope: ~K bins to forget a level, so it
        // spans several periods and a single quiet gap does not collapse it.
        let rate = 1.0 / self.ring.len() as f64;
        let spread = (self.peak - self.base).max(0.0);
        self.peak = if x >= self.peak {
            x
        } else {
            self.peak - rate * spread
        };
        self.base = if x <= self.base {
            x
        } else {
            self.base + rate * spread
        };
        let spread = (self.peak - self.base).max(0.0);
        let significant = spread > MIN_RELATIVE_SPREAD * self.peak && spread > 0.0;
        let busy = significant && x >= self.base + BUSY_FRACTION * spread;
        let quiet = !significant || x < self.base + QUIET_FRACTION * spread;
        if busy {
            if self.quiet_run >= MIN_QUIET_BINS {
                self.onset(bin);
            }
            self.quiet_run = 0;
        } else if quiet {
            self.quiet_run = self.quiet_run.saturating_add(1);
        }
    }

    fn onset(&mut self, bin: u64) {
        if let Some(&prev) = self.onsets.last().filter(|_| self.onset_count > 0) {
            let gap = bin.saturating_sub(prev);
            if gap as f64 > self.max_period_bins() as f64 {
                self.interval_count = 0;
            } else {
                self.push_interval(gap as f64);
            }
        }
        self.onsets.rotate_left(1);
        if let Some(last) = self.onsets.last_mut() {
            *last = bin;
        }
        self.onset_count = (self.onset_count + 1).min(SEASONS);
        self.recompute();
    }

    fn push_interval(&mut self, interval: f64) {
        if self.interval_count < INTERVALS {
            if let Some(cell) = self.intervals.get_mut(self.interval_count) {
                *cell = interval;
            }
            self.interval_count += 1;
        } else {
            self.intervals.rotate_left(1);
            if let Some(cell) = self.intervals.last_mut() {
                *cell = interval;
            }
        }
        self.adopt_new_period();
    }

    /// Drops the older intervals when the newest three agree on a period the
    /// median does not (module docs, step 5).
    fn adopt_new_period(&mut self) {
        let n = self.interval_count;
        if n <= MIN_INTERVALS {
            return;
        }
        let recent = match self.intervals.get(n - MIN_INTERVALS..n) {
            Some(r) => r,
            None => return,
        };
        let mean = recent.iter().sum::<f64>() / MIN_INTERVALS as f64;
        let agree = mean > 0.0
            && recent
                .iter()
                .all(|v| (v - mean).abs() <= AGREE_TOLERANCE * mean);
        let median = self.median();
        if agree && (mean - median).abs() > INLIER_TOLERANCE * median {
            let mut kept = [0.0; INTERVALS];
            for (k, v) in kept.iter_mut().zip(recent.iter()) {
                *k = *v;
            }
            self.intervals = kept;
            self.interval_count = MIN_INTERVALS;
        }
    }

    fn median(&self) -> f64 {
        let n = self.interval_count.min(INTERVALS);
        let mut sorted = self.intervals;
        let used = match sorted.get_mut(..n) {
            Some(s) => s,
            None => return 0.0,
        };
        used.sort_unstable_by(f64::total_cmp);
        if n == 0 {
            return 0.0;
        }
        let lo = used.get((n - 1) / 2).copied().unwrap_or(0.0);
        let hi = used.get(n / 2).copied().unwrap_or(0.0);
        0.5 * (lo + hi)
    }

    fn recompute(&mut self) {
        let n = self.interval_count.min(INTERVALS);
        if n < MIN_INTERVALS {
            self.period = 0.0;
            self.raw_confidence = 0.0;
            return;
        }
        let median = self.median();
        let used = self.intervals.get(..n).unwrap_or(&[]);
        let mut inliers = 0usize;
        let mut sum = 0.0;
        for v in used {
            if (v - median).abs() <= INLIER_TOLERANCE * median {
                inliers += 1;
                sum += v;
            }
        }
        if inliers == 0 || median <= 0.0 {
            self.period = 0.0;
            self.raw_confidence = 0.0;
            return;
        }
        let period = sum / inliers as f64;
        let dispersion = used
            .iter()
            .filter(|v| (*v - median).abs() <= INLIER_TOLERANCE * median)
            .map(|v| (v - period).abs())
            .sum::<f64>()
            / inliers as f64;
        let fraction = inliers as f64 / n as f64;
        let tightness = 1.0 - dispersion / (DISPERSION_SCALE * period);
        self.period = period;
        self.raw_confidence = (fraction * tightness).clamp(0.0, 1.0);
    }

    fn last_onset(&self) -> Option<u64> {
        if self.onset_count == 0 {
            None
        } else {
            self.onsets.last().copied()
        }
    }

    /// Bins since the last onset (0: the last bin pushed was an onset),
    /// `None` before the first onset.
    pub fn bins_since_onset(&self) -> Option<u64> {
        let last = self.last_onset()?;
        Some(self.pushed.saturating_sub(1).saturating_sub(last))
    }

    /// Index (counted from the first bin pushed, 0-based) of the last onset.
    pub fn last_onset_bin(&self) -> Option<u64> {
        self.last_onset()
    }

    /// How well one period explains the recent onsets, 0..1 (see the
    /// module docs); 0 while no period is known or once bursts stopped.
    pub fn confidence(&self) -> f64 {
        if self.period <= 0.0 {
            return 0.0;
        }
        let since = self.bins_since_onset().unwrap_or(u64::MAX) as f64;
        // Fade from 2 to 3 periods without an onset: the series stopped
        // repeating, but one late burst should not wipe the estimate.
        let fade = (3.0 - since / self.period).clamp(0.0, 1.0);
        (self.raw_confidence * fade).clamp(0.0, 1.0)
    }

    /// The detected period in bins, when at least three intervals are known
    /// and the confidence is at least ½.
    pub fn period_bins(&self) -> Option<f64> {
        if self.interval_count >= MIN_INTERVALS && self.confidence() >= MIN_CONFIDENCE {
            Some(self.period)
        } else {
            None
        }
    }

    /// The value of bin `back` bins before the last one pushed (`0`: the
    /// last one), if still in the ring.
    pub fn recent(&self, back: usize) -> Option<f64> {
        let back = back as u64;
        if back >= self.pushed || back >= self.ring.len() as u64 {
            return None;
        }
        let bin = self.pushed - 1 - back;
        self.slot(bin).and_then(|i| self.ring.get(i).copied())
    }

    /// Mean of the last `n` bins (fewer if fewer were pushed), `None` if
    /// none were.
    pub fn recent_mean(&self, n: usize) -> Option<f64> {
        let mut sum = 0.0;
        let mut count = 0usize;
        for back in 0..n.min(self.ring.len()) {
            match self.recent(back) {
                Some(v) => {
                    sum += v;
                    count += 1;
                }
                None => break,
            }
        }
        if count == 0 {
            None
        } else {
            Some(sum / count as f64)
        }
    }

    /// The expected value of the bin `ahead_bins` from now (`1`: the next
    /// bin to be pushed), read from up to [`SEASONS`] past iterations at
    /// the same phase; `None` without a period or without such history.
    pub fn seasonal(&self, ahead_bins: u64) -> Option<f64> {
        let period = self.period_bins()?;
        let p = period.round() as u64;
        let last = self.last_onset()?;
        if p == 0 {
            return None;
        }
        let newest = self.pushed.checked_sub(1)?;
        let target = newest.saturating_add(ahead_bins);
        let phase = target.saturating_sub(last) % p;
        let oldest_kept = self.pushed.saturating_sub(self.ring.len() as u64);
        let mut sum = 0.0;
        let mut count = 0u32;
        for (k, onset) in self.onsets.iter().enumerate().rev() {
            if k + self.onset_count < SEASONS {
                break;
            }
            let bin = onset.saturating_add(phase);
            if bin > newest || bin < oldest_kept {
                continue;
            }
            if let Some(v) = self.slot(bin).and_then(|i| self.ring.get(i)) {
                sum += v;
                count += 1;
            }
        }
        if count == 0 {
            // Younger than one full iteration since the first usable onset:
            // fall back to exactly one period back.
            let bin = target.checked_sub(p)?;
            if bin > newest || bin < oldest_kept {
                return None;
            }
            return self.slot(bin).and_then(|i| self.ring.get(i).copied());
        }
        Some(sum / f64::from(count))
    }

    /// Mean of [`seasonal`](Self::seasonal) over `len` bins starting
    /// `first_ahead` bins from now; `None` if any of them is unknown.
    pub fn seasonal_mean(&self, first_ahead: u64, len: u64) -> Option<f64> {
        if len == 0 {
            return None;
        }
        let mut sum = 0.0;
        for a in first_ahead..first_ahead.saturating_add(len) {
            sum += self.seasonal(a)?;
        }
        Some(sum / len as f64)
    }
}
