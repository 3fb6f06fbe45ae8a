//! The load of one compute node in canonical units.

use crate::metric::{Metric, MetricType};
use crate::prefix_cache::PrefixCacheTotals;

/// Latest load of a node; `None` = not reported in the last NODE_STATE.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NodeMetrics {
    /// GPU utilisation as a ratio.
    pub gpu_util: Option<f64>,
    /// GPU memory utilisation as a ratio.
    pub mem_util: Option<f64>,
    /// Requests queued.
    pub queue_len: Option<f64>,
    /// Estimated time to first token, microseconds.
    pub est_ttft_us: Option<f64>,
    /// Current prefill throughput, tokens per second.
    pub tokens_per_s_prefill: Option<f64>,
    /// Current decode throughput, tokens per second.
    pub tokens_per_s_decode: Option<f64>,
    /// The prefix-cache increments of every report so far, summed (not
    /// reset by a report without them: they count events, not state).
    pub prefix_cache: PrefixCacheTotals,
}

impl NodeMetrics {
    /// Normalises validated metrics.
    pub fn from_metrics(metrics: &[Metric]) -> NodeMetrics {
        let mut n = NodeMetrics::default();
        for m in metrics {
            let v = Some(m.normalised());
            match m.metric_type {
                MetricType::GpuUtilisation => n.gpu_util = v,
                MetricType::GpuMemoryUtilisation => n.mem_util = v,
                MetricType::QueueLength => n.queue_len = v,
                MetricType::EstTtft => n.est_ttft_us = v,
                MetricType::TokensPerSPrefill => n.tokens_per_s_prefill = v,
                MetricType::TokensPerSDecode => n.tokens_per_s_decode = v,
                _ => {}
            }
        }
        n
    }
}
