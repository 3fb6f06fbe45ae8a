//! The predictor core (draft §3.2, "State Prediction Layer"): turns the
//! feature records the workers push into a [`Predictions`] snapshot of the
//! next 1..5 ms.
//!
//! # Time
//!
//! The core owns no clock. It cuts time into bins of `bin_ns` (default
//! 100 µs; a divisor of 1 ms, so that `B = 1 ms / bin_ns` bins make a
//! millisecond). [`PredictorCore::observe`] adds a record to the open bin;
//! [`PredictorCore::tick`] closes every bin that ended by `now_ns` and
//! returns the snapshot made after the last one. Call `tick(record.t_ns)`
//! before `observe(record)` so each record lands in its own bin. Bins
//! without records are zeros. After a long silence at most
//! `max_catchup_bins` bins are replayed (enough to flush the whole
//! history with zeros); the rest are skipped, so one `tick` has bounded
//! cost.
//!
//! # What is predicted, per egress port
//!
//! Every load below is *offered* load in bits/s. The **window load**
//! `W(t)` of a port is its mean load over the 1 ms ending at `t`. At the
//! end `t` of each bin, for each horizon `h` = 1..5 ms, the core predicts
//! `W(t + h)`: the load of the millisecond `[t + h − 1 ms, t + h)`.
//!
//! Three estimates are combined, all normalised by the port's capacity:
//!
//! * **Seasonal** `S_h`: the port's [`PeriodDetector`] (fed each bin's
//!   load) reads the same millisecond of the last few training iterations,
//!   phase-aligned on burst onsets (see `predictor::period`).
//! * **Last window** `L = W(t)` and **level** `E`: a slow EWMA of the bin
//!   load (α = 1/(20·B), about 20 ms of memory).
//! * A **linear model** per port and horizon, fitted online by recursive
//!   least squares ([`Rls`], λ = 0.995 by default, ≈ 200 bins ≈ 20 ms of
//!   memory):
//!
//!   ```text
//!   x_h = [1, L, c·S_h + (1 − c)·L, E]        c = detector confidence (0 without a period)
//!   Ŵ_h = θ_h · x_h,  clamped to [0, 2]       (× capacity → bits/s)
//!   ```
//!
//!   θ starts at `[0, 0, 1, 0]`: before anything is learned the prediction
//!   *is* the confidence-weighted seasonal value, which is the last window
//!   when there is no period. The feature vector made at `t` is kept until
//!   `t + h`, when `W(t + h)` is known; the pair then updates θ_h. So the
//!   blend weights of seasonal, last value, level and bias are learned
//!   from what actually happened, per port and per horizon, and follow
//!   changes of the traffic with the forgetting factor. If the model
//!   output is not finite the level `E` is used.
//!
//! Offered load may exceed capacity (that is congestion), hence the clamp
//! at twice the capacity rather than at capacity.
//!
//! **Queue depth**, a fluid model: the backlog starts from the deepest
//! queue reported in the last bin (packets × mean packet size) and each
//! predicted millisecond adds `(Ŵ_h − capacity) · 1 ms`, never below 0;
//! in packets of the port's mean packet size (EWMA).
//!
//! **Congestion risk** `= σ(max(20·(ρ_h − 0.95), 8·(q_h / q_mark − 1)))`
//! with `ρ_h = Ŵ_h / capacity`, `q_h` the predicted queue and `q_mark =
//! queue_mark_packets`: ½ at 95 % load or at the marking threshold, about
//! 0.73 at full load, 0.12 at 85 %, and below 0.001 for an idle port with
//! an empty queue.
//!
//! # Paths, bursts, nodes
//!
//! * A path's available bandwidth is `min(path capacity, port capacity −
//!   Ŵ_h of its port)`, clamped at 0; 0 for a path without a port.
//! * [`BurstForecast`] comes from a detector fed the aggregate load of all
//!   ports: the period, `next_burst_ns` = last onset + period (advanced by
//!   whole periods until it is in the future) and the confidence.
//! * A node's predicted arrivals are its share of the bytes (EWMA over
//!   ≈ 50 bins) times the predicted aggregate load; its backlog
//!   probability is `max_h σ(8·(arrivals_h / node capacity − 1))` (0 for
//!   a node with capacity 0, i.e. not configured).
//!
//! # Accuracy, and the evaluation definitions
//!
//! The core scores itself online on the **aggregate** window load (sum
//! over ports) per horizon with two [`ErrorTracker`]s: the model's
//! prediction `Σ_p Ŵ_h` against `Σ_p W(t + h)`, and the **last-value
//! baseline**, which predicts `Σ_p W(t)` for every horizon (the load of
//! the last completed millisecond). [`PredictorCore::accuracy`] exports
//! both.
//!
//! [`evaluate`] replays a trace and computes, for one horizon `h`, from the
//! end of the first millisecond on (so the baseline is defined):
//!
//! * `mae_model_bps` = mean over bins of `|Σ_p Ŵ_h(t) − Σ_p W(t + h)|`;
//! * `mae_last_value_bps` = mean of `|Σ_p W(t) − Σ_p W(t + h)|`;
//! * a **congestion event** is a (port, bin) with `W_p(t + h) > 0.9 ·
//!   capacity`; the model predicts one when `Ŵ_h > 0.9 · capacity`, the
//!   baseline when `W_p(t) > 0.9 · capacity`; precision = TP / (TP + FP)
//!   and recall = TP / (TP + FN), each 0 when its denominator is 0.
//!
//! # Costs
//!
//! Everything is allocated in [`PredictorCore::new`]: one ring of
//! `history_bins` per port plus one for the aggregate, and the pending
//! feature vectors of the last `5·B + 1` bins. `observe` is O(1); closing a
//! bin costs per port `5 × (B seasonal reads × 3 iterations + one 4×4 RLS
//! update)`. Neither allocates nor panics.

use core::fmt;

use predictor::{ErrorSummary, ErrorTracker, Ewma, ParamError, PeriodDetector, Rls};

use crate::feature::FeatureRecord;
use crate::prediction::{
    BurstForecast, Predictions, HORIZONS, HORIZONS_MS, MAX_PREDICTED_NODES, MAX_PREDICTED_PATHS,
    MAX_PREDICTED_PORTS,
};

const NS_PER_MS: u64 = 1_000_000;
const FEATURES: usize = 4;
/// Offered load is clamped to this multiple of the port capacity.
pub const MAX_LOAD_FACTOR: f64 = 2.0;
/// Window load above this fraction of capacity counts as a congestion
/// event in [`evaluate`].
pub const CONGESTION_FRACTION: f64 = 0.9;
const MAX_QUEUE_PACKETS: f64 = 1.0e7;
const DEFAULT_PACKET_BYTES: f64 = 1500.0;

/// How the predictor core is set up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictorConfig {
    /// Bin width, ns: a divisor of 1 ms between 10 µs and 1 ms.
    pub bin_ns: u64,
    /// Capacity of each egress port, bits/s (> 0).
    pub port_capacity_bps: [f64; MAX_PREDICTED_PORTS],
    /// The egress port each path leaves by (`None`: path not configured).
    pub path_port: [Option<u8>; MAX_PREDICTED_PATHS],
    /// Capacity of each path, bits/s (≥ 0).
    pub path_capacity_bps: [f64; MAX_PREDICTED_PATHS],
    /// What each node's GPUs absorb, bits/s, from its compute weight
    /// (≥ 0; 0: not configured, never backlogged).
    pub node_capacity_bps: [f64; MAX_PREDICTED_NODES],
    /// Queue depth at which a port marks (congestion threshold), packets
    /// (> 0).
    pub queue_mark_packets: f64,
    /// Bins of history per detector (≥ 6 ms of bins; 3 iterations of the
    /// longest period to detect).
    pub history_bins: usize,
    /// RLS forgetting factor, 0 < λ ≤ 1.
    pub rls_lambda: f64,
    /// Most bins one `tick` replays (≥ 1).
    pub max_catchup_bins: u64,
}

impl Default for PredictorConfig {
    /// 100 µs bins, 100 Gbit/s ports, path `i` on port `i` at 100 Gbit/s,
    /// 100 Gbit/s nodes, marking at 200 packets, 512 bins (51.2 ms) of
    /// history, λ = 0.995, catch-up of 512 bins.
    fn default() -> Self {
        let mut path_port = [None; MAX_PREDICTED_PATHS];
        for (i, p) in path_port.iter_mut().enumerate() {
            *p = u8::try_from(i).ok();
        }
        Self {
            bin_ns: 100_000,
            port_capacity_bps: [100.0e9; MAX_PREDICTED_PORTS],
            path_port,
            path_capacity_bps: [100.0e9; MAX_PREDICTED_PATHS],
            node_capacity_bps: [100.0e9; MAX_PREDICTED_NODES],
            queue_mark_packets: 200.0,
            history_bins: 512,
            rls_lambda: 0.995,
            max_catchup_bins: 512,
        }
    }
}

/// A [`PredictorConfig`] field is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictError {
    /// `bin_ns` is not a divisor of 1 ms in 10 µs..=1 ms.
    BinWidth,
    /// A port capacity is not finite and > 0 (the port index).
    PortCapacity(usize),
    /// A path's port is not below [`MAX_PREDICTED_PORTS`] (the path index).
    PathPort(usize),
    /// A path capacity is not finite and ≥ 0 (the path index).
    PathCapacity(usize),
    /// A node capacity is not finite and ≥ 0 (the node index).
    NodeCapacity(usize),
    /// `queue_mark_packets` is not finite and > 0.
    QueueMark,
    /// `history_bins` is too small for 6 ms or too large.
    History,
    /// `max_catchup_bins` is 0.
    Catchup,
    /// A model parameter (λ) was refused.
    Model(ParamError),
}

impl fmt::Display for PredictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PredictError::BinWidth => f.write_str("bin_ns must divide 1 ms and be 10 us..=1 ms"),
            PredictError::PortCapacity(i) => write!(f, "port {i} capacity must be finite and > 0"),
            PredictError::PathPort(i) => write!(f, "path {i} port out of range"),
            PredictError::PathCapacity(i) => write!(f, "path {i} capacity must be finite, >= 0"),
            PredictError::NodeCapacity(i) => write!(f, "node {i} capacity must be finite, >= 0"),
            PredictError::QueueMark => f.write_str("queue_mark_packets must be finite and > 0"),
            PredictError::History => f.write_str("history_bins out of range"),
            PredictError::Catchup => f.write_str("max_catchup_bins must be >= 1"),
            PredictError::Model(e) => write!(f, "model parameter: {e}"),
        }
    }
}

impl std::error::Error for PredictError {}

/// Online accuracy of the aggregate load prediction, per horizon
/// (index `i` is [`HORIZONS_MS`]`[i]`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct AccuracySummary {
    /// The model's errors, bits/s.
    pub model: [ErrorSummary; HORIZONS],
    /// The last-value baseline's errors, bits/s.
    pub last_value: [ErrorSummary; HORIZONS],
}

struct PortModel {
    detector: PeriodDetector,
    level: Ewma,
    packet_bytes: Ewma,
    rls: [Rls<FEATURES>; HORIZONS],
}

#[derive(Clone, Copy)]
struct Pending {
    bin: Option<u64>,
    x: [[[f64; FEATURES]; HORIZONS]; MAX_PREDICTED_PORTS],
    aggregate_model: [f64; HORIZONS],
    aggregate_last: f64,
}

const EMPTY_PENDING: Pending = Pending {
    bin: None,
    x: [[[0.0; FEATURES]; HORIZONS]; MAX_PREDICTED_PORTS],
    aggregate_model: [0.0; HORIZONS],
    aggregate_last: 0.0,
};

fn sigmoid(z: f64) -> f64 {
    if z.is_nan() {
        return 0.0;
    }
    1.0 / (1.0 + (-z).exp())
}

fn finite_or(v: f64, fallback: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        fallback
    }
}

/// The predictor core; see the module docs.
pub struct PredictorCore {
    cfg: PredictorConfig,
    bins_per_ms: u64,
    /// Start of the open bin; `None` until the first record or tick.
    open_start_ns: Option<u64>,
    /// Index of the open bin since the first one.
    open_bin: u64,
    /// Start time of the detectors' bin 0 (they skip what `tick` skips).
    detector_origin_ns: u64,
    port_bytes: [f64; MAX_PREDICTED_PORTS],
    port_packets: [f64; MAX_PREDICTED_PORTS],
    port_queue: [u32; MAX_PREDICTED_PORTS],
    node_bytes: [f64; MAX_PREDICTED_NODES],
    ports: Vec<PortModel>,
    aggregate: PeriodDetector,
    node_share: [Ewma; MAX_PREDICTED_NODES],
    queue_now: [f64; MAX_PREDICTED_PORTS],
    window_bps: [f64; MAX_PREDICTED_PORTS],
    pending: Vec<Pending>,
    model_error: [ErrorTracker; HORIZONS],
    last_value_error: [ErrorTracker; HORIZONS],
    snapshot: Predictions,
    skipped_bins: u64,
}

impl PredictorCore {
    /// Validates `cfg` and allocates all the state the core will ever use.
    pub fn new(cfg: PredictorConfig) -> Result<Self, PredictError> {
        if !(10_000..=NS_PER_MS).contains(&cfg.bin_ns) || NS_PER_MS % cfg.bin_ns != 0 {
            return Err(PredictError::BinWidth);
        }
        let bins_per_ms = NS_PER_MS / cfg.bin_ns;
        for (i, c) in cfg.port_capacity_bps.iter().enumerate() {
            if !(c.is_finite() && *c > 0.0) {
                return Err(PredictError::PortCapacity(i));
            }
        }
        for (i, p) in cfg.path_port.iter().enumerate() {
            if p.is_some_and(|p| usize::from(p) >= MAX_PREDICTED_PORTS) {
                return Err(PredictError::PathPort(i));
            }
        }
        for (i, c) in cfg.path_capacity_bps.iter().enumerate() {
            if !(c.is_finite() && *c >= 0.0) {
                return Err(PredictError::PathCapacity(i));
            }
        }
        for (i, c) in cfg.node_capacity_bps.iter().enumerate() {
            if !(c.is_finite() && *c >= 0.0) {
                return Err(PredictError::NodeCapacity(i));
            }
        }
        if !(cfg.queue_mark_packets.is_finite() && cfg.queue_mark_packets > 0.0) {
            return Err(PredictError::QueueMark);
        }
        if cfg.max_catchup_bins == 0 {
            return Err(PredictError::Catchup);
        }
        let min_history = usize::try_from(6 * bins_per_ms).unwrap_or(usize::MAX);
        if cfg.history_bins < min_history {
            return Err(PredictError::History);
        }
        let detector = || PeriodDetector::new(cfg.history_bins).map_err(|_| PredictError::History);
        let level_alpha = 1.0 / (20.0 * bins_per_ms as f64);
        let mut ports = Vec::with_capacity(MAX_PREDICTED_PORTS);
        for _ in 0..MAX_PREDICTED_PORTS {
            let rls =
                Rls::new(cfg.rls_lambda, [0.0, 0.0, 1.0, 0.0], 1.0).map_err(PredictError::Model)?;
            ports.push(PortModel {
                detector: detector()?,
                level: Ewma::with_initial(level_alpha, 0.0).map_err(PredictError::Model)?,
                packet_bytes: Ewma::with_initial(0.05, DEFAULT_PACKET_BYTES)
                    .map_err(PredictError::Model)?,
                rls: [rls; HORIZONS],
            });
        }
        let share = Ewma::with_initial(0.02, 0.0).map_err(PredictError::Model)?;
        let pending_len = usize::try_from(HORIZONS as u64 * bins_per_ms + 1)
            .map_err(|_| PredictError::BinWidth)?;
        Ok(Self {
            cfg,
            bins_per_ms,
            open_start_ns: None,
            open_bin: 0,
            detector_origin_ns: 0,
            port_bytes: [0.0; MAX_PREDICTED_PORTS],
            port_packets: [0.0; MAX_PREDICTED_PORTS],
            port_queue: [0; MAX_PREDICTED_PORTS],
            node_bytes: [0.0; MAX_PREDICTED_NODES],
            ports,
            aggregate: detector()?,
            node_share: [share; MAX_PREDICTED_NODES],
            queue_now: [0.0; MAX_PREDICTED_PORTS],
            window_bps: [0.0; MAX_PREDICTED_PORTS],
            pending: vec![EMPTY_PENDING; pending_len],
            model_error: [ErrorTracker::new(); HORIZONS],
            last_value_error: [ErrorTracker::new(); HORIZONS],
            snapshot: Predictions::default(),
            skipped_bins: 0,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &PredictorConfig {
        &self.cfg
    }

    fn start(&mut self, t_ns: u64) -> u64 {
        match self.open_start_ns {
            Some(s) => s,
            None => {
                let s = t_ns - t_ns % self.cfg.bin_ns;
                self.open_start_ns = Some(s);
                self.detector_origin_ns = s;
                s
            }
        }
    }

    /// When the open bin closes (`None` before the first record or tick).
    pub fn next_close_ns(&self) -> Option<u64> {
        self.open_start_ns
            .map(|s| s.saturating_add(self.cfg.bin_ns))
    }

    /// Adds one record to the open bin (the first record or tick starts the
    /// clock). Records for a port, path or node beyond the snapshot's limits
    /// count only where they fit.
    pub fn observe(&mut self, rec: &FeatureRecord) {
        self.start(rec.t_ns);
        let bytes = f64::from(rec.bytes);
        let port = usize::from(rec.egress_port);
        if let Some(b) = self.port_bytes.get_mut(port) {
            *b += bytes;
        }
        if let Some(p) = self.port_packets.get_mut(port) {
            *p += f64::from(rec.packets);
        }
        if let Some(q) = self.port_queue.get_mut(port) {
            *q = (*q).max(rec.queue_depth);
        }
        if let Some(n) = self.node_bytes.get_mut(usize::from(rec.node)) {
            *n += bytes;
        }
    }

    /// Closes every bin that ended by `now_ns` and returns the snapshot made
    /// after the last one, or `None` if no bin closed.
    pub fn tick(&mut self, now_ns: u64) -> Option<Predictions> {
        let mut start = self.start(now_ns);
        let bin_ns = self.cfg.bin_ns;
        let mut closed = 0u64;
        while now_ns.saturating_sub(start) >= bin_ns {
            if closed >= self.cfg.max_catchup_bins {
                // The history is all zeros by now: skip the rest at once,
                // moving the detectors' origin so onset times stay right.
                let skip = (now_ns - start) / bin_ns;
                start = start.saturating_add(skip.saturating_mul(bin_ns));
                self.open_bin = self.open_bin.saturating_add(skip);
                self.detector_origin_ns = self
                    .detector_origin_ns
                    .saturating_add(skip.saturating_mul(bin_ns));
                self.skipped_bins = self.skipped_bins.saturating_add(skip);
                break;
            }
            self.close_bin(start.saturating_add(bin_ns));
            start = start.saturating_add(bin_ns);
            self.open_bin = self.open_bin.saturating_add(1);
            closed += 1;
        }
        self.open_start_ns = Some(start);
        if closed > 0 {
            Some(self.snapshot)
        } else {
            None
        }
    }

    /// The last snapshot made.
    pub fn snapshot(&self) -> &Predictions {
        &self.snapshot
    }

    /// Bins skipped (not replayed) after long silences.
    pub fn skipped_bins(&self) -> u64 {
        self.skipped_bins
    }

    /// Mean offered load of `port` over the millisecond ending at the last
    /// closed bin, bits/s (0 for ports beyond the limit).
    pub fn window_load_bps(&self, port: usize) -> f64 {
        self.window_bps.get(port).copied().unwrap_or(0.0)
    }

    /// The online accuracy of the aggregate load prediction.
    pub fn accuracy(&self) -> AccuracySummary {
        let mut out = AccuracySummary::default();
        for (o, t) in out.model.iter_mut().zip(self.model_error.iter()) {
            *o = t.summary();
        }
        for (o, t) in out.last_value.iter_mut().zip(self.last_value_error.iter()) {
            *o = t.summary();
        }
        out
    }

    fn pending_slot(&self, bin: u64) -> Option<usize> {
        let len = self.pending.len() as u64;
        if len == 0 {
            return None;
        }
        usize::try_from(bin % len).ok()
    }

    fn close_bin(&mut self, end_ns: u64) {
        let bin = self.open_bin;
        let bin_s = self.cfg.bin_ns as f64 * 1e-9;
        let bpm = self.bins_per_ms;
        let bpm_len = usize::try_from(bpm).unwrap_or(usize::MAX);

        // 1. Fold the bin into the detectors and levels.
        let mut aggregate_bps = 0.0;
        for (p, model) in self.ports.iter_mut().enumerate() {
            let bytes = self.port_bytes.get(p).copied().unwrap_or(0.0);
            let packets = self.port_packets.get(p).copied().unwrap_or(0.0);
            let cap = self.cfg.port_capacity_bps.get(p).copied().unwrap_or(1.0);
            let bps = bytes * 8.0 / bin_s;
            aggregate_bps += bps;
            model.detector.push(bps);
            model.level.update(bps / cap);
            if packets > 0.0 {
                model.packet_bytes.update(bytes / packets);
            }
            if let Some(q) = self.queue_now.get_mut(p) {
                *q = f64::from(self.port_queue.get(p).copied().unwrap_or(0));
            }
            if let Some(w) = self.window_bps.get_mut(p) {
                *w = model.detector.recent_mean(bpm_len).unwrap_or(0.0);
            }
        }
        self.aggregate.push(aggregate_bps);
        let node_total: f64 = self.node_bytes.iter().sum();
        if node_total > 0.0 {
            for (share, bytes) in self.node_share.iter_mut().zip(self.node_bytes.iter()) {
                share.update(bytes / node_total);
            }
        }
        self.port_bytes = [0.0; MAX_PREDICTED_PORTS];
        self.port_packets = [0.0; MAX_PREDICTED_PORTS];
        self.port_queue = [0; MAX_PREDICTED_PORTS];
        self.node_bytes = [0.0; MAX_PREDICTED_NODES];

        // 2. Learn from the predictions whose target window just completed.
        let aggregate_window: f64 = self.window_bps.iter().sum();
        for (h, ms) in HORIZONS_MS.iter().enumerate() {
            let Some(made) = bin.checked_sub(ms * bpm) else {
                continue;
            };
            let Some(entry) = self
                .pending_slot(made)
                .and_then(|i| self.pending.get(i))
                .filter(|e| e.bin == Some(made))
            else {
                continue;
            };
            let entry = *entry;
            for (p, model) in self.ports.iter_mut().enumerate() {
                let cap = self.cfg.port_capacity_bps.get(p).copied().unwrap_or(1.0);
                let target = self.window_bps.get(p).copied().unwrap_or(0.0) / cap;
                if let (Some(rls), Some(x)) = (
                    model.rls.get_mut(h),
                    entry.x.get(p).and_then(|xs| xs.get(h)),
                ) {
                    rls.update(x, target);
                }
            }
            if let Some(t) = self.model_error.get_mut(h) {
                t.record(
                    entry.aggregate_model.get(h).copied().unwrap_or(0.0),
                    aggregate_window,
                );
            }
            if let Some(t) = self.last_value_error.get_mut(h) {
                t.record(entry.aggregate_last, aggregate_window);
            }
        }

        // 3. Predict from here.
        let mut snap = Predictions {
            made_at_ns: end_ns,
            ..Predictions::default()
        };
        let mut pending = EMPTY_PENDING;
        pending.bin = Some(bin);
        pending.aggregate_last = aggregate_window;
        let mut aggregate_load = [0.0f64; HORIZONS];
        let mut port_load = [[0.0f64; HORIZONS]; MAX_PREDICTED_PORTS];
        for (p, model) in self.ports.iter().enumerate() {
            let cap = self.cfg.port_capacity_bps.get(p).copied().unwrap_or(1.0);
            let last = self.window_bps.get(p).copied().unwrap_or(0.0) / cap;
            let level = model.level.value().unwrap_or(0.0);
            let confidence = model.detector.confidence();
            let packet_bytes = model
                .packet_bytes
                .value()
                .unwrap_or(DEFAULT_PACKET_BYTES)
                .max(64.0);
            let mut backlog_bytes = self.queue_now.get(p).copied().unwrap_or(0.0) * packet_bytes;
            let max_backlog = MAX_QUEUE_PACKETS * packet_bytes;
            for (h, ms) in HORIZONS_MS.iter().enumerate() {
                let seasonal = model
                    .detector
                    .seasonal_mean((ms - 1) * bpm + 1, bpm)
                    .map(|s| s / cap);
                let blended = match seasonal {
                    Some(s) => confidence * s + (1.0 - confidence) * last,
                    None => last,
                };
                let x = [1.0, last, blended, level];
                let raw = model.rls.get(h).map_or(f64::NAN, |r| r.predict(&x));
                let norm = finite_or(raw, level).clamp(0.0, MAX_LOAD_FACTOR);
                let load = norm * cap;
                if let Some(slot) = pending.x.get_mut(p).and_then(|xs| xs.get_mut(h)) {
                    *slot = x;
                }
                if let Some(a) = aggregate_load.get_mut(h) {
                    *a += load;
                }
                if let Some(l) = port_load.get_mut(p).and_then(|l| l.get_mut(h)) {
                    *l = load;
                }
                backlog_bytes = (backlog_bytes + (load - cap) * 1e-3 / 8.0).clamp(0.0, max_backlog);
                let queue = backlog_bytes / packet_bytes;
                let z = f64::max(
                    20.0 * (norm - 0.95),
                    8.0 * (queue / self.cfg.queue_mark_packets - 1.0),
                );
                if let Some(f) = snap.ports.get_mut(p) {
                    if let Some(v) = f.load_bps.get_mut(h) {
                        *v = load as f32;
                    }
                    if let Some(v) = f.queue_depth.get_mut(h) {
                        *v = queue as f32;
                    }
                    if let Some(v) = f.congestion_risk.get_mut(h) {
                        *v = sigmoid(z) as f32;
                    }
                }
            }
        }
        pending.aggregate_model = aggregate_load;

        for (i, path) in snap.paths.iter_mut().enumerate() {
            let Some(port) = self.cfg.path_port.get(i).copied().flatten() else {
                continue;
            };
            let port = usize::from(port);
            let path_cap = self.cfg.path_capacity_bps.get(i).copied().unwrap_or(0.0);
            let port_cap = self.cfg.port_capacity_bps.get(port).copied().unwrap_or(0.0);
            for (h, v) in path.available_bps.iter_mut().enumerate() {
                let load = port_load
                    .get(port)
                    .and_then(|l| l.get(h))
                    .copied()
                    .unwrap_or(0.0);
                *v = (port_cap - load).min(path_cap).max(0.0) as f32;
            }
        }

        for (i, node) in snap.nodes.iter_mut().enumerate() {
            let cap = self.cfg.node_capacity_bps.get(i).copied().unwrap_or(0.0);
            let share = self
                .node_share
                .get(i)
                .and_then(|s| s.value())
                .unwrap_or(0.0);
            if cap <= 0.0 || share <= 0.0 {
                continue;
            }
            let worst = aggregate_load
                .iter()
                .map(|a| sigmoid(8.0 * (share * a / cap - 1.0)))
                .fold(0.0, f64::max);
            node.backlog_probability = worst.clamp(0.0, 1.0) as f32;
        }

        snap.bursts = self.burst_forecast(end_ns);
        if let Some(slot) = self.pending_slot(bin).and_then(|i| self.pending.get_mut(i)) {
            *slot = pending;
        }
        self.snapshot = snap;
    }

    fn burst_forecast(&self, now_ns: u64) -> BurstForecast {
        let (Some(period), Some(onset)) = (
            self.aggregate.period_bins(),
            self.aggregate.last_onset_bin(),
        ) else {
            return BurstForecast::default();
        };
        let bin_ns = self.cfg.bin_ns as f64;
        let period_ns = period * bin_ns;
        if !(period_ns.is_finite() && period_ns >= 1.0) {
            return BurstForecast::default();
        }
        let onset_ns = self.detector_origin_ns as f64 + onset as f64 * bin_ns;
        let mut next = onset_ns + period_ns;
        if next <= now_ns as f64 {
            let behind = (now_ns as f64 - next) / period_ns;
            next += (behind.floor() + 1.0) * period_ns;
        }
        BurstForecast {
            period_ns: period_ns.round() as u64,
            next_burst_ns: if next.is_finite() { next as u64 } else { 0 },
            confidence: self.aggregate.confidence() as f32,
        }
    }
}

/// What [`evaluate`] measured, for one horizon; definitions in the module
/// docs.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Accuracy {
    /// Mean absolute error of the model on the aggregate window load, bits/s.
    pub mae_model_bps: f64,
    /// Same for the last-value baseline, bits/s.
    pub mae_last_value_bps: f64,
    /// Bins scored.
    pub samples: u64,
    /// (port, bin) pairs that were congestion events.
    pub congestion_events: u64,
    /// Precision of the model's congestion calls.
    pub congestion_precision: f64,
    /// Recall of the model's congestion calls.
    pub congestion_recall: f64,
    /// Precision of the baseline's congestion calls.
    pub congestion_precision_last_value: f64,
    /// Recall of the baseline's congestion calls.
    pub congestion_recall_last_value: f64,
}

#[derive(Default, Clone, Copy)]
struct Confusion {
    tp: u64,
    fp: u64,
    fn_: u64,
}

impl Confusion {
    fn add(&mut self, predicted: bool, actual: bool) {
        match (predicted, actual) {
            (true, true) => self.tp += 1,
            (true, false) => self.fp += 1,
            (false, true) => self.fn_ += 1,
            (false, false) => {}
        }
    }

    fn ratio(num: u64, den: u64) -> f64 {
        if den == 0 {
            0.0
        } else {
            num as f64 / den as f64
        }
    }

    fn precision(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fp)
    }

    fn recall(&self) -> f64 {
        Self::ratio(self.tp, self.tp + self.fn_)
    }
}

/// Replays `records` (sorted by time) through a [`PredictorCore`] built
/// from `cfg` and scores the prediction for `horizon_ms` (1..=5) as
/// defined in the module docs. Returns all zeros if `cfg` is invalid, the
/// horizon is not predicted, or there is nothing to score. Allocates (it
/// keeps the per-bin series); it is a measuring tool, not the fast path.
pub fn evaluate(records: &[FeatureRecord], cfg: &PredictorConfig, horizon_ms: u64) -> Accuracy {
    let Some(h) = HORIZONS_MS.iter().position(|&m| m == horizon_ms) else {
        return Accuracy::default();
    };
    let Ok(mut core) = PredictorCore::new(*cfg) else {
        return Accuracy::default();
    };
    let mut windows: Vec<[f64; MAX_PREDICTED_PORTS]> = Vec::new();
    let mut predicted: Vec<[f64; MAX_PREDICTED_PORTS]> = Vec::new();
    let mut record = |core: &PredictorCore, snap: &Predictions| {
        let mut w = [0.0; MAX_PREDICTED_PORTS];
        let mut p = [0.0; MAX_PREDICTED_PORTS];
        for (i, (wi, pi)) in w.iter_mut().zip(p.iter_mut()).enumerate() {
            *wi = core.window_load_bps(i);
            *pi = snap
                .ports
                .get(i)
                .and_then(|f| f.load_bps.get(h))
                .map_or(0.0, |v| f64::from(*v));
        }
        windows.push(w);
        predicted.push(p);
    };
    for r in records {
        while let Some(close) = core.next_close_ns().filter(|c| *c <= r.t_ns) {
            if let Some(snap) = core.tick(close) {
                record(&core, &snap);
            }
        }
        core.observe(r);
    }
    if let Some(close) = core.next_close_ns() {
        if let Some(snap) = core.tick(close) {
            record(&core, &snap);
        }
    }

    let bpm = usize::try_from(NS_PER_MS / cfg.bin_ns).unwrap_or(1);
    let ahead = bpm * usize::try_from(horizon_ms).unwrap_or(1);
    let mut model_error = ErrorTracker::new();
    let mut last_error = ErrorTracker::new();
    let mut model_cm = Confusion::default();
    let mut last_cm = Confusion::default();
    let mut events = 0u64;
    for t in bpm.saturating_sub(1)..windows.len() {
        let (Some(now), Some(pred), Some(target)) =
            (windows.get(t), predicted.get(t), windows.get(t + ahead))
        else {
            continue;
        };
        model_error.record(pred.iter().sum(), target.iter().sum());
        last_error.record(now.iter().sum(), target.iter().sum());
        for (p, cap) in cfg.port_capacity_bps.iter().enumerate() {
            let threshold = CONGESTION_FRACTION * cap;
            let actual = target.get(p).is_some_and(|v| *v > threshold);
            events += u64::from(actual);
            model_cm.add(pred.get(p).is_some_and(|v| *v > threshold), actual);
            last_cm.add(now.get(p).is_some_and(|v| *v > threshold), actual);
        }
    }
    Accuracy {
        mae_model_bps: model_error.mae(),
        mae_last_value_bps: last_error.mae(),
        samples: model_error.count(),
        congestion_events: events,
        congestion_precision: model_cm.precision(),
        congestion_recall: model_cm.recall(),
        congestion_precision_last_value: last_cm.precision(),
        congestion_recall_last_value: last_cm.recall(),
    }
}
