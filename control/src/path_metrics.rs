//! The state of one path in canonical units.

use crate::metric::{Metric, MetricType};

/// Latest measurements of a path; `None` = not reported in the last
/// PATH_STATE.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PathMetrics {
    /// Latency in microseconds.
    pub latency_us: Option<f64>,
    /// Jitter in microseconds.
    pub jitter_us: Option<f64>,
    /// Available bandwidth in bits per second.
    pub avail_bw_bps: Option<f64>,
    /// Loss as a ratio (0..=1).
    pub loss_ratio: Option<f64>,
}

impl PathMetrics {
    /// Normalises validated metrics; types that do not describe a path are
    /// ignored (validation already refused them).
    pub fn from_metrics(metrics: &[Metric]) -> PathMetrics {
        let mut p = PathMetrics::default();
        for m in metrics {
            let v = Some(m.normalised());
            match m.metric_type {
                MetricType::PathLatency => p.latency_us = v,
                MetricType::PathJitter => p.jitter_us = v,
                MetricType::PathAvailableBw => p.avail_bw_bps = v,
                MetricType::PathLoss => p.loss_ratio = v,
                _ => {}
            }
        }
        p
    }

    /// Whether the path loses more than `max_loss`, the POLICY's
    /// `max_path_loss_ratio`: no pipeline chooses such a path. Unknown
    /// loss is no evidence of loss.
    pub fn too_lossy(&self, max_loss: f64) -> bool {
        self.loss_ratio.is_some_and(|l| l > max_loss)
    }

    /// The path's cost if it may be chosen: latency known and loss not above
    /// `max_loss` (unknown loss counts as no evidence of loss). Unknown
    /// jitter adds nothing.
    pub fn cost(&self, max_loss: f64, jitter_weight: f64) -> Option<f64> {
        let latency = self.latency_us?;
        if self.too_lossy(max_loss) {
            return None;
        }
        Some(latency + jitter_weight * self.jitter_us.unwrap_or(0.0))
    }
}
