//! NODE_STATE: the current load of one compute node.
//!
//! Records: NODE_ID exactly once, METRIC one or more times (gpu_utilisation,
//! gpu_memory_utilisation, queue_length, est_ttft, tokens_per_s_prefill,
//! tokens_per_s_decode; each type at most once), PREFIX_CACHE at most once
//! (an optional extension, [`crate::prefix_cache`]). Like PATH_STATE it is
//! a complete snapshot: metrics it does not carry become unknown.
//! PREFIX_CACHE is the exception: it reports increments, which add up.

use crate::body_error::BodyError;
use crate::fields::{fixed, metric, not_allowed, once, put_metrics, required};
use crate::ids::NodeId;
use crate::message::Kind;
use crate::metric::{Metric, MetricType};
use crate::prefix_cache::PrefixCacheCounts;
use crate::record::{rt, Record, RecordWriter};

/// The load of one compute node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeState {
    /// The node.
    pub node: NodeId,
    /// Its metrics.
    pub metrics: Vec<Metric>,
    /// Its prefix cache's counter increments since the sender's previous
    /// report, when the sender scrapes them.
    pub prefix_cache: Option<PrefixCacheCounts>,
}

impl NodeState {
    /// A node state with the given metrics.
    pub fn new(node: NodeId, metrics: impl Into<Vec<Metric>>) -> NodeState {
        NodeState {
            node,
            metrics: metrics.into(),
            prefix_cache: None,
        }
    }

    /// The same state with a PREFIX_CACHE record.
    pub fn with_prefix_cache(mut self, counts: PrefixCacheCounts) -> NodeState {
        self.prefix_cache = Some(counts);
        self
    }

    /// Metric types a NODE_STATE may carry.
    pub fn allows(t: MetricType) -> bool {
        matches!(
            t,
            MetricType::GpuUtilisation
                | MetricType::GpuMemoryUtilisation
                | MetricType::QueueLength
                | MetricType::EstTtft
                | MetricType::TokensPerSPrefill
                | MetricType::TokensPerSDecode
        )
    }

    pub(crate) fn decode(recs: &[Record<'_>]) -> Result<NodeState, BodyError> {
        let kind = Kind::NodeState;
        let mut node = None;
        let mut metrics = Vec::new();
        let mut prefix_cache = None;
        for r in recs {
            match r.rtype {
                rt::NODE_ID => once(&mut node, r.rtype, NodeId(u16::from_be_bytes(fixed(r)?)))?,
                rt::METRIC => {
                    let m = metric(kind, r, NodeState::allows, &metrics)?;
                    metrics.push(m);
                }
                rt::PREFIX_CACHE => {
                    once(&mut prefix_cache, r.rtype, PrefixCacheCounts::decode(r)?)?
                }
                _ => return Err(not_allowed(kind, r)),
            }
        }
        let node = required(node, kind, rt::NODE_ID)?;
        if metrics.is_empty() {
            return Err(BodyError::NoMetrics { kind });
        }
        Ok(NodeState {
            node,
            metrics,
            prefix_cache,
        })
    }

    pub(crate) fn encode(&self, w: &mut RecordWriter) -> Result<(), BodyError> {
        w.put(rt::NODE_ID, &self.node.0.to_be_bytes())?;
        put_metrics(w, &self.metrics)?;
        if let Some(c) = &self.prefix_cache {
            c.validate()?;
            w.put(rt::PREFIX_CACHE, &c.encode())?;
        }
        Ok(())
    }
}
