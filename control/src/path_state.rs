//! PATH_STATE: measurements of one network path.
//!
//! Records: PATH_ID exactly once, METRIC one or more times (path metric
//! types only, each type at most once). A PATH_STATE is a complete
//! snapshot of the path: metrics it does not carry become unknown.

use crate::body_error::BodyError;
use crate::fields::{fixed, metric, not_allowed, once, put_metrics, required};
use crate::ids::PathId;
use crate::message::Kind;
use crate::metric::{Metric, MetricType};
use crate::record::{rt, Record, RecordWriter};

/// The measurements of one path.
#[derive(Debug, Clone, PartialEq)]
pub struct PathState {
    /// The path.
    pub path: PathId,
    /// Its metrics (path_latency, path_jitter, path_available_bw, path_loss).
    pub metrics: Vec<Metric>,
}

impl PathState {
    /// A path state with the given metrics.
    pub fn new(path: PathId, metrics: impl Into<Vec<Metric>>) -> PathState {
        PathState {
            path,
            metrics: metrics.into(),
        }
    }

    /// Metric types a PATH_STATE may carry.
    pub fn allows(t: MetricType) -> bool {
        matches!(
            t,
            MetricType::PathLatency
                | MetricType::PathJitter
                | MetricType::PathAvailableBw
                | MetricType::PathLoss
        )
    }

    pub(crate) fn decode(recs: &[Record<'_>]) -> Result<PathState, BodyError> {
        let kind = Kind::PathState;
        let mut path = None;
        let mut metrics = Vec::new();
        for r in recs {
            match r.rtype {
                rt::PATH_ID => once(&mut path, r.rtype, PathId(u16::from_be_bytes(fixed(r)?)))?,
                rt::METRIC => {
                    let m = metric(kind, r, PathState::allows, &metrics)?;
                    metrics.push(m);
                }
                _ => return Err(not_allowed(kind, r)),
            }
        }
        let path = required(path, kind, rt::PATH_ID)?;
        if metrics.is_empty() {
            return Err(BodyError::NoMetrics { kind });
        }
        Ok(PathState { path, metrics })
    }

    pub(crate) fn encode(&self, w: &mut RecordWriter) -> Result<(), BodyError> {
        w.put(rt::PATH_ID, &self.path.0.to_be_bytes())?;
        put_metrics(w, &self.metrics)
    }
}
