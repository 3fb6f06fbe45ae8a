//! What the predictor core publishes and the workers read (draft §3.2).
//!
//! The predictor builds a fresh [`Predictions`] every tick and publishes it
//! as one immutable snapshot; a worker reads whichever snapshot is current
//! when its burst starts. Everything is fixed-size so that the snapshot is
//! cheap to copy and never needs a lock.

/// Horizons predicted, in milliseconds ahead of `made_at_ns`.
pub const HORIZONS_MS: [u64; 5] = [1, 2, 3, 4, 5];
/// Number of horizons.
pub const HORIZONS: usize = HORIZONS_MS.len();
/// Ports a snapshot describes (matches the data plane's port limit).
pub const MAX_PREDICTED_PORTS: usize = 8;
/// Paths a snapshot describes.
pub const MAX_PREDICTED_PATHS: usize = 8;
/// Nodes a snapshot describes.
pub const MAX_PREDICTED_NODES: usize = 64;

/// One egress port's next few milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PortForecast {
    /// Offered load, bits/s, per horizon.
    pub load_bps: [f32; HORIZONS],
    /// Queue depth in packets, per horizon.
    pub queue_depth: [f32; HORIZONS],
    /// Probability that the port is congested (offered load above its
    /// capacity, or a queue above its marking threshold), per horizon.
    pub congestion_risk: [f32; HORIZONS],
}

/// One path's next few milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PathForecast {
    /// Bandwidth left for new work, bits/s, per horizon.
    pub available_bps: [f32; HORIZONS],
}

/// The periodic tensor bursts of training iterations.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BurstForecast {
    /// Detected iteration period, ns (0: no period detected).
    pub period_ns: u64,
    /// When the next burst should start, ns on the appliance clock
    /// (0: unknown).
    pub next_burst_ns: u64,
    /// How well the period explains recent history, 0..1.
    pub confidence: f32,
}

/// One compute node's next few milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NodeForecast {
    /// Probability that work queues up at the node's GPUs (arrivals above
    /// what its compute weight lets it absorb), 0..1.
    pub backlog_probability: f32,
}

/// One published snapshot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Predictions {
    /// When it was made, ns on the appliance clock (0: never).
    pub made_at_ns: u64,
    /// Per egress port.
    pub ports: [PortForecast; MAX_PREDICTED_PORTS],
    /// Per configured path.
    pub paths: [PathForecast; MAX_PREDICTED_PATHS],
    /// Iteration bursts.
    pub bursts: BurstForecast,
    /// Per configured node.
    pub nodes: [NodeForecast; MAX_PREDICTED_NODES],
}

impl Default for Predictions {
    fn default() -> Self {
        Predictions {
            made_at_ns: 0,
            ports: [PortForecast::default(); MAX_PREDICTED_PORTS],
            paths: [PathForecast::default(); MAX_PREDICTED_PATHS],
            bursts: BurstForecast::default(),
            nodes: [NodeForecast::default(); MAX_PREDICTED_NODES],
        }
    }
}
