//! Empirical flow-size distributions.
//!
//! [`WEB_SEARCH`] is the flow-size distribution measured in a production
//! web-search cluster by Alizadeh et al., "Data Center TCP (DCTCP)",
//! SIGCOMM 2010, in the form distributed with the pFabric and HPCC
//! simulators (`WebSearch_distribution.txt`): byte counts with their
//! cumulative probability. Heavy-tailed — half the flows are under about
//! 73 KB while the largest reach 30 MB — which is exactly the mice/elephant
//! contrast the in-network scheduler has to handle (mean about 1.7 MB).
//!
//! Sampling is by inverse transform with linear interpolation between the
//! published points, as those simulators do.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A piecewise-linear CDF given as `(bytes, cumulative probability)` points,
/// with probabilities non-decreasing from 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowSizeCdf {
    points: &'static [(u64, f64)],
}

/// DCTCP web-search flow sizes (Alizadeh et al., SIGCOMM 2010).
pub const WEB_SEARCH: FlowSizeCdf = FlowSizeCdf {
    points: &[
        (0, 0.0),
        (10_000, 0.15),
        (20_000, 0.2),
        (30_000, 0.3),
        (50_000, 0.4),
        (80_000, 0.53),
        (200_000, 0.6),
        (1_000_000, 0.7),
        (2_000_000, 0.8),
        (5_000_000, 0.9),
        (10_000_000, 0.97),
        (30_000_000, 1.0),
    ],
};

impl FlowSizeCdf {
    /// The size at cumulative probability `p` (clamped to [0, 1]), at least 1 byte.
    pub fn quantile(&self, p: f64) -> u64 {
        let p = p.clamp(0.0, 1.0);
        let pts = self.points;
        for w in pts.windows(2) {
            let ((b0, c0), (b1, c1)) = (w[0], w[1]);
            if p <= c1 {
                if c1 <= c0 {
                    return b1.max(1);
                }
                let frac = (p - c0) / (c1 - c0);
                let bytes = b0 as f64 + frac * (b1 as f64 - b0 as f64);
                return (bytes.round() as u64).max(1);
            }
        }
        pts.last().map_or(1, |&(b, _)| b.max(1))
    }

    /// Draws one flow size.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> u64 {
        self.quantile(rng.gen::<f64>())
    }

    /// The mean of the distribution (exact for the piecewise-linear form).
    pub fn mean(&self) -> f64 {
        self.points
            .windows(2)
            .map(|w| (w[1].1 - w[0].1) * (w[0].0 + w[1].0) as f64 / 2.0)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_hit_the_published_points() {
        assert_eq!(WEB_SEARCH.quantile(0.15), 10_000);
        assert_eq!(WEB_SEARCH.quantile(0.53), 80_000);
        assert_eq!(WEB_SEARCH.quantile(1.0), 30_000_000);
        // Median: 50 000 + (0.1 / 0.13) × 30 000.
        assert_eq!(WEB_SEARCH.quantile(0.5), 73_077);
        assert_eq!(WEB_SEARCH.quantile(0.0), 1);
        assert_eq!(WEB_SEARCH.quantile(2.0), 30_000_000);
        // Monotone.
        let mut prev = 0;
        for i in 0..=1000 {
            let q = WEB_SEARCH.quantile(f64::from(i) / 1000.0);
            assert!(q >= prev);
            prev = q;
        }
        // A 1.7 MB mean against a 73 KB median: the tail carries the bytes.
        assert!(
            (WEB_SEARCH.mean() - 1_711_250.0).abs() < 1.0,
            "{}",
            WEB_SEARCH.mean()
        );
    }
}
