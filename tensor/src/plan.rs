//! The heuristic scheduling decisions of draft §3.3: which paths a message
//! takes, into how many slices it is cut, and whether an all-reduce is
//! offloaded to an in-network reducer.
//!
//! Everything here is a pure function of small, fixed-size inputs: the
//! paths to the message's destination with their predicted available
//! bandwidth ([`crate::prediction::PathForecast`]), the message's size and
//! semantics, and the target node's predicted backlog. Nothing allocates;
//! with at most [`MAX_PATHS`] paths and [`MAX_SLICES`] slices the work is a
//! few hundred arithmetic operations.
//!
//! # Path set and slices: the objective
//!
//! For a message of `B` bytes, each usable path `i` has a one-way latency
//! `Lᵢ` and a predicted available bandwidth `aᵢ` (bits/s), read at the
//! horizon nearest the message's single-path transfer time
//! `8B / max capacity` (so a 3 ms transfer is planned on the 3 ms forecast),
//! and capped at the path's capacity.
//!
//! A plan is a path set `S` and a slice count `N` (`|S| ≤ N ≤ MAX_SLICES`):
//! the message is cut into `N` slices of `⌈B/N⌉` bytes, each path of `S`
//! gets at least one, and the rest go one by one to the path that would
//! finish them soonest, which spreads the bytes in proportion to the
//! available bandwidth. Path `i` carrying `nᵢ` slices finishes at
//! `Lᵢ + 8·nᵢ·⌈B/N⌉ / aᵢ`, and the plan's objective (ns) is
//!
//! ```text
//!   J(S, N) = w · maxᵢ∈S (Lᵢ + 8·nᵢ·⌈B/N⌉ / aᵢ)   +   (N − 1) · slice_cost_ns
//!             └──── communication time ────┘       └── slicing overhead ──┘
//!   w = 1 − p_backlog · backlog_discount
//! ```
//!
//! The first term is the estimated completion time. The second is the
//! price of slicing: per extra slice an encapsulation, a reorder-buffer
//! hold at the egress appliance, and bandwidth taken from other traffic on
//! another path. The weight `w` is the compute side of the trade-off (the
//! draft asks for an approximation of the Pareto front of compute latency
//! against communication cost): when the target node is likely backlogged
//! (`p_backlog` near 1), it will not start on the tensor the moment it
//! arrives, so finishing the transfer early gains little, and the
//! communication time is discounted while the slicing cost is not. A
//! backlogged target therefore gets fewer paths and slices, leaving the
//! bandwidth to messages whose targets are waiting for them. This weighted
//! sum is the scalarisation; `backlog_discount` moves along the front.
//!
//! # The heuristic
//!
//! * Activations (on the pipeline's critical path), normal traffic, and
//!   messages smaller than `2 × min_slice_bytes` take one path: the one
//!   with the lowest estimated completion time `Lᵢ + 8B/aᵢ`. Slicing them
//!   would add reorder delay to a latency-critical message or cut it below
//!   the useful slice size.
//! * Gradients and parameters of at least `2 × min_slice_bytes` are
//!   candidates for slicing. Paths are sorted by single-path completion
//!   time and the prefixes `S₁ ⊂ S₂ ⊂ …` evaluated (greedy subset growth,
//!   O(P²) with P ≤ 8); the one with the lowest `J` wins, ties going to
//!   fewer paths.
//! * For a set of `k` paths, `N = k × m` with the largest multiplier `m`
//!   such that `N ≤ MAX_SLICES` and every slice is at least
//!   `min_slice_bytes`; a single path takes one slice. Several slices per
//!   path let the proportional split follow unequal bandwidths, and keep
//!   each slice's burst short. A set of `k` paths whose `k` slices would be
//!   smaller than `min_slice_bytes` is not considered.
//! * Unusable paths, and paths whose predicted available bandwidth is
//!   below `min_available_bps` (or not a number), are never chosen. With
//!   none left the plan has 0 slices: the caller falls back and counts it.
//!
//! # In-network reduction
//!
//! For an all-reduce of `B` bytes among `N` nodes:
//!
//! * a ring all-reduce (reduce-scatter then all-gather) has every node send
//!   `2(N−1)/N · B` bytes, in `2(N−1)` dependent steps;
//! * an in-network reduction (every node sends its `B` bytes to the
//!   reducer, which sends the sum back) has every node send `B` bytes, in
//!   two steps.
//!
//! Each node thus saves `(2(N−1)/N − 1) · B = (N−2)/N · B` bytes: nothing
//! for two nodes, approaching half for many. [`offload_decision`] offloads
//! when a reducer is configured, the message is large enough to be worth
//! the detour, there are at least two participants, and either the
//! predicted congestion risk is high (fewer bytes and fewer steps through a
//! congested fabric) or the saving per node reaches `min_saved_bytes`.

use core::fmt;

use crate::feature::{SemanticFeatures, TensorType};
use crate::prediction::{HORIZONS, HORIZONS_MS};

/// Most paths a plan chooses from.
pub const MAX_PATHS: usize = 8;
/// Most slices a message is cut into.
pub const MAX_SLICES: usize = 8;
/// The path id of an unused entry of [`SlicePlan::paths`].
pub const NO_PATH: u8 = u8::MAX;

/// One path to the message's destination.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PathInput {
    /// Path id (what [`SlicePlan::paths`] holds).
    pub id: u8,
    /// Egress port of the path.
    pub port: u8,
    /// One-way latency, ns.
    pub latency_ns: u64,
    /// Capacity, bits/s.
    pub capacity_bps: f64,
    /// Predicted available bandwidth per horizon, bits/s
    /// ([`crate::prediction::PathForecast::available_bps`]).
    pub available_bps: [f32; HORIZONS],
    /// False when the path is down or administratively excluded.
    pub usable: bool,
}

/// The message to plan.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MessageInput {
    /// Message length, bytes.
    pub bytes: u64,
    /// Its semantic features.
    pub tensor: SemanticFeatures,
    /// Compute weight of the target node (its WDRR quantum weight). The
    /// path plan does not use it: it sets the node's bandwidth share in the
    /// scheduler, not the route.
    pub node_weight: u32,
    /// Predicted probability that the target node is backlogged, 0..=1.
    pub node_backlog_probability: f32,
}

/// Tuning of [`plan_message`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanConfig {
    /// Smallest slice worth sending on its own, bytes; messages under twice
    /// this are never sliced.
    pub min_slice_bytes: u64,
    /// Cost of each slice beyond the first, ns (encapsulation, reorder hold,
    /// bandwidth taken from others).
    pub slice_cost_ns: f64,
    /// How much a certainly-backlogged target discounts communication time,
    /// 0..=1 (0: backlog ignored).
    pub backlog_discount: f32,
    /// Paths predicted to have less available bandwidth than this, bits/s,
    /// are not used.
    pub min_available_bps: f64,
}

impl Default for PlanConfig {
    /// 1 MiB slices (the size at which a QP becomes a LARGE_FLOW), 5 µs per
    /// extra slice (a few reorder-buffer holds), backlog discount 0.8, and
    /// paths below 100 Mbit/s available ignored. A 64 MiB gradient over
    /// three 100 Gbit/s paths is then cut into six slices; a 1 MiB one is
    /// not cut.
    fn default() -> Self {
        PlanConfig {
            min_slice_bytes: 1 << 20,
            slice_cost_ns: 5_000.0,
            backlog_discount: 0.8,
            min_available_bps: 100e6,
        }
    }
}

/// Why a [`PlanConfig`] or [`OffloadConfig`] was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PlanConfigError {
    /// `min_slice_bytes` is 0.
    ZeroMinSlice,
    /// `slice_cost_ns` is negative or not a number.
    BadSliceCost(f64),
    /// `backlog_discount` is not in 0..=1.
    BadBacklogDiscount(f32),
    /// `min_available_bps` is negative or not a number.
    BadMinAvailable(f64),
    /// `congestion_threshold` is not in 0..=1.
    BadCongestionThreshold(f32),
}

impl fmt::Display for PlanConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanConfigError::ZeroMinSlice => f.write_str("min_slice_bytes must be at least 1"),
            PlanConfigError::BadSliceCost(c) => {
                write!(f, "slice_cost_ns = {c} must be a number >= 0")
            }
            PlanConfigError::BadBacklogDiscount(d) => {
                write!(f, "backlog_discount = {d} must be in [0, 1]")
            }
            PlanConfigError::BadMinAvailable(a) => {
                write!(f, "min_available_bps = {a} must be a number >= 0")
            }
            PlanConfigError::BadCongestionThreshold(t) => {
                write!(f, "congestion_threshold = {t} must be in [0, 1]")
            }
        }
    }
}

impl std::error::Error for PlanConfigError {}

impl PlanConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), PlanConfigError> {
        if self.min_slice_bytes == 0 {
            return Err(PlanConfigError::ZeroMinSlice);
        }
        if !(self.slice_cost_ns.is_finite() && self.slice_cost_ns >= 0.0) {
            return Err(PlanConfigError::BadSliceCost(self.slice_cost_ns));
        }
        if !(0.0..=1.0).contains(&self.backlog_discount) {
            return Err(PlanConfigError::BadBacklogDiscount(self.backlog_discount));
        }
        if !(self.min_available_bps.is_finite() && self.min_available_bps >= 0.0) {
            return Err(PlanConfigError::BadMinAvailable(self.min_available_bps));
        }
        Ok(())
    }
}

/// A message's plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlicePlan {
    /// Slices, 1..=[`MAX_SLICES`]; 0 when no path is usable.
    pub slices: u8,
    /// Path id of each slice, in slice order; [`NO_PATH`] past `slices`.
    pub paths: [u8; MAX_SLICES],
    /// Bytes per slice (the last may be shorter), `⌈B/N⌉`.
    pub slice_bytes: u64,
    /// The objective `J` of the plan, ns (infinite when no path is usable).
    pub objective_ns: f64,
}

impl SlicePlan {
    /// The plan of a message with no usable path.
    pub const NONE: SlicePlan = SlicePlan {
        slices: 0,
        paths: [NO_PATH; MAX_SLICES],
        slice_bytes: 0,
        objective_ns: f64::INFINITY,
    };

    /// Distinct paths the plan uses.
    pub fn path_count(&self) -> usize {
        let used = self.paths.get(..usize::from(self.slices)).unwrap_or(&[]);
        let mut n = 0;
        for (i, p) in used.iter().enumerate() {
            if !used.get(..i).unwrap_or(&[]).contains(p) {
                n += 1;
            }
        }
        n
    }
}

/// A usable path, as the planner sees it.
#[derive(Debug, Clone, Copy, Default)]
struct Candidate {
    id: u8,
    latency_ns: f64,
    avail_bps: f64,
    /// Single-path completion time of the whole message, ns.
    single_ns: f64,
}

/// Transfer time of `bytes` at `bps`, ns.
fn transfer_ns(bytes: u64, bps: f64) -> f64 {
    bytes as f64 * 8.0 * 1e9 / bps
}

/// The forecast horizon nearest a transfer of `t_ns`.
fn horizon_for(t_ns: f64) -> usize {
    let mut best = 0;
    let mut best_d = f64::INFINITY;
    for (h, ms) in HORIZONS_MS.iter().enumerate() {
        let d = (*ms as f64 * 1e6 - t_ns).abs();
        if d < best_d {
            best = h;
            best_d = d;
        }
    }
    best
}

/// Plans `msg` over `paths` (the first [`MAX_PATHS`] are considered); see
/// the module docs for the objective and the heuristic.
pub fn plan_message(paths: &[PathInput], msg: &MessageInput, cfg: &PlanConfig) -> SlicePlan {
    let bytes = msg.bytes.max(1);
    let paths = paths.get(..paths.len().min(MAX_PATHS)).unwrap_or(&[]);

    let max_cap = paths
        .iter()
        .filter(|p| p.usable && p.capacity_bps.is_finite() && p.capacity_bps > 0.0)
        .fold(0.0f64, |m, p| m.max(p.capacity_bps));
    if max_cap <= 0.0 {
        return SlicePlan::NONE;
    }
    let h = horizon_for(transfer_ns(bytes, max_cap));

    let mut cands = [Candidate::default(); MAX_PATHS];
    let mut n = 0;
    for p in paths {
        let predicted = p.available_bps.get(h).copied().unwrap_or(0.0) as f64;
        // Checked before `min`, which would quietly replace a NaN.
        let avail = predicted.min(p.capacity_bps);
        let good = p.usable
            && predicted.is_finite()
            && avail > 0.0
            && avail >= cfg.min_available_bps
            && p.capacity_bps.is_finite();
        if !good {
            continue;
        }
        let latency_ns = p.latency_ns as f64;
        if let Some(c) = cands.get_mut(n) {
            *c = Candidate {
                id: p.id,
                latency_ns,
                avail_bps: avail,
                single_ns: latency_ns + transfer_ns(bytes, avail),
            };
            n += 1;
        }
    }
    let cands = match cands.get_mut(..n) {
        Some(c) if !c.is_empty() => c,
        _ => return SlicePlan::NONE,
    };
    cands.sort_unstable_by(|a, b| a.single_ns.total_cmp(&b.single_ns));

    let p_backlog = if msg.node_backlog_probability.is_finite() {
        msg.node_backlog_probability.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let w = 1.0 - f64::from(p_backlog) * f64::from(cfg.backlog_discount.clamp(0.0, 1.0));

    let min_slice = cfg.min_slice_bytes.max(1);
    let sliceable = matches!(
        msg.tensor.tensor_type,
        TensorType::Gradient | TensorType::Parameter
    ) && bytes >= min_slice.saturating_mul(2);

    let mut best = single_path_plan(cands.first().copied().unwrap_or_default(), bytes, w);
    if !sliceable {
        return best;
    }
    for k in 2..=cands.len() {
        // Most slices with each at least `min_slice`, a multiple of `k`.
        let most = (bytes / min_slice).min(MAX_SLICES as u64) as usize;
        let slices = most / k * k;
        if slices < k {
            break;
        }
        let Some(set) = cands.get(..k) else {
            break;
        };
        let plan = spread(set, bytes, slices, w, cfg.slice_cost_ns);
        if plan.objective_ns < best.objective_ns {
            best = plan;
        }
    }
    best
}

/// The whole message on one path.
fn single_path_plan(c: Candidate, bytes: u64, w: f64) -> SlicePlan {
    let mut paths = [NO_PATH; MAX_SLICES];
    paths[0] = c.id;
    SlicePlan {
        slices: 1,
        paths,
        slice_bytes: bytes,
        objective_ns: w * c.single_ns,
    }
}

/// `slices` slices over every path of `set`: one each, then each next one
/// to the path that would finish it soonest.
fn spread(set: &[Candidate], bytes: u64, slices: usize, w: f64, slice_cost_ns: f64) -> SlicePlan {
    let slice_bytes = bytes.div_ceil(slices as u64);
    let per_slice_bits = slice_bytes as f64 * 8.0 * 1e9;
    let mut finish = [0.0f64; MAX_PATHS];
    let mut paths = [NO_PATH; MAX_SLICES];
    let mut count = 0;
    for (i, c) in set.iter().enumerate() {
        if let (Some(f), Some(p)) = (finish.get_mut(i), paths.get_mut(count)) {
            *f = c.latency_ns + per_slice_bits / c.avail_bps;
            *p = c.id;
            count += 1;
        }
    }
    while count < slices {
        let mut pick = 0;
        let mut pick_t = f64::INFINITY;
        for (i, c) in set.iter().enumerate() {
            let t = finish.get(i).copied().unwrap_or(f64::INFINITY) + per_slice_bits / c.avail_bps;
            if t < pick_t {
                pick = i;
                pick_t = t;
            }
        }
        if let (Some(f), Some(p), Some(c)) =
            (finish.get_mut(pick), paths.get_mut(count), set.get(pick))
        {
            *f = pick_t;
            *p = c.id;
        }
        count += 1;
    }
    let completion = finish
        .get(..set.len())
        .unwrap_or(&[])
        .iter()
        .fold(0.0f64, |m, &t| m.max(t));
    SlicePlan {
        slices: slices as u8,
        paths,
        slice_bytes,
        objective_ns: w * completion + (slices as f64 - 1.0) * slice_cost_ns,
    }
}

/// Tuning of [`offload_decision`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OffloadConfig {
    /// An in-network reducer (FPGA or edge node) is configured.
    pub reducer_available: bool,
    /// Smallest all-reduce worth the detour through the reducer, bytes.
    pub min_bytes: u64,
    /// Predicted congestion risk (0..=1) at or above which to offload
    /// whatever the saving.
    pub congestion_threshold: f32,
    /// Bytes each node must save (`(N−2)/N · B`) to offload without
    /// congestion.
    pub min_saved_bytes: u64,
}

impl Default for OffloadConfig {
    /// No reducer (one must be configured), 1 MiB messages, congestion risk
    /// 0.5, and 4 MiB saved per node: a 16 MiB all-reduce among four nodes
    /// saves 8 MiB per node and is offloaded, among two it saves nothing.
    fn default() -> Self {
        OffloadConfig {
            reducer_available: false,
            min_bytes: 1 << 20,
            congestion_threshold: 0.5,
            min_saved_bytes: 4 << 20,
        }
    }
}

impl OffloadConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), PlanConfigError> {
        if !(0.0..=1.0).contains(&self.congestion_threshold) {
            return Err(PlanConfigError::BadCongestionThreshold(
                self.congestion_threshold,
            ));
        }
        Ok(())
    }
}

/// Why [`offload_decision`] decided as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OffloadReason {
    /// Not gradient all-reduce traffic: nothing to reduce.
    NotAllReduce,
    /// No reducer is configured.
    NoReducer,
    /// Fewer than two participants.
    FewParticipants,
    /// Smaller than `min_bytes`.
    TooSmall,
    /// Offloaded: the path is predicted congested.
    Congestion,
    /// Offloaded: the traffic saved reaches `min_saved_bytes`.
    TrafficSaving,
    /// Eligible, but neither congested nor saving enough.
    NotWorthIt,
}

/// The offload decision and its reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OffloadDecision {
    /// Offload the Sum/Reduce to the in-network reducer.
    pub offload: bool,
    /// Why.
    pub reason: OffloadReason,
}

/// Bytes each node sends in a ring all-reduce of `bytes` among
/// `participants`: `2(N−1)/N · B` (0 for fewer than two).
pub fn ring_allreduce_bytes_per_node(bytes: u64, participants: u16) -> u64 {
    let n = u128::from(participants);
    if n < 2 {
        return 0;
    }
    let b = u128::from(bytes) * 2 * (n - 1) / n;
    u64::try_from(b).unwrap_or(u64::MAX)
}

/// Bytes each node sends in an in-network reduction of `bytes`: `B` (its
/// contribution, once; the sum comes back from the reducer).
pub fn in_network_bytes_per_node(bytes: u64) -> u64 {
    bytes
}

/// Whether to offload an all-reduce message to the in-network reducer,
/// given the predicted congestion risk on its path and the number of
/// participants; see the module docs. The checks run in the order of
/// [`OffloadReason`], the first that fails giving the reason.
pub fn offload_decision(
    msg: &MessageInput,
    congestion_risk: f32,
    participants: u16,
    cfg: &OffloadConfig,
) -> OffloadDecision {
    let no = |reason| OffloadDecision {
        offload: false,
        reason,
    };
    if !(msg.tensor.tensor_type == TensorType::Gradient && msg.tensor.gradient_sync) {
        return no(OffloadReason::NotAllReduce);
    }
    if !cfg.reducer_available {
        return no(OffloadReason::NoReducer);
    }
    if participants < 2 {
        return no(OffloadReason::FewParticipants);
    }
    if msg.bytes < cfg.min_bytes {
        return no(OffloadReason::TooSmall);
    }
    // NaN compares false: an unknown risk is not congestion.
    if congestion_risk >= cfg.congestion_threshold {
        return OffloadDecision {
            offload: true,
            reason: OffloadReason::Congestion,
        };
    }
    let saved = ring_allreduce_bytes_per_node(msg.bytes, participants)
        .saturating_sub(in_network_bytes_per_node(msg.bytes));
    if saved >= cfg.min_saved_bytes && saved > 0 {
        return OffloadDecision {
            offload: true,
            reason: OffloadReason::TrafficSaving,
        };
    }
    no(OffloadReason::NotWorthIt)
}
