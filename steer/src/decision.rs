//! The joint path and compute-node decision for a new flow (draft §4.3,
//! §5c).
//!
//! For every instance of the addressed service and every path that reaches
//! it, the decision predicts:
//!
//! ```text
//! net_us        = 2 × (latency_us + jitter_weight × jitter_us)   request out, first token back
//! compute_us    = max(model.compute_ttft(prompt, queue_len), node est_ttft_us)
//! ttft_us       = net_us + compute_us
//! completion_us = ttft_us + model.decode(output tokens)
//! ```
//!
//! `model` is the instance's online [`predictor::InstanceModel`]: queue
//! wait plus prefill of the prompt at the node's rate, starting from the
//! configured priors and corrected by every observed request. Path numbers
//! are the control plane's fresh PATH_STATE, or the configured prior while
//! a path has never been measured. Node queue length and estimated TTFT
//! are the fresh NODE_STATE, or an empty queue while a node has never
//! reported.
//!
//! Hard constraints come first; a candidate that fails one is not scored:
//!
//! 1. the capability (a fresh CAPABILITY announcement, else the config)
//!    must serve the task type and fit prompt plus output tokens;
//! 2. the node must not be stale: it reported once and then went quiet
//!    past `max_state_age`, which is how a failed node looks;
//! 3. the path must not be stale and its loss must be at most
//!    `max_path_loss_ratio`;
//! 4. the node's queue must be below its `max_queue` (overloaded).
//!
//! Among the rest, interactive work takes the lowest `ttft_us`; bulk work
//! the lowest `completion_us`, which already favours ample compute (decode
//! rate) and short queues. Ties keep configuration order. If every capable
//! live candidate is overloaded, the least loaded of them is taken and the
//! choice says so; if no capable live candidate exists, there is no choice
//! and the caller counts the request.
//!
//! The decision reads only the immutable view and the caller's models: no
//! lock, no allocation, at most `MAX_INSTANCES_PER_SERVICE ×
//! MAX_PATHS_PER_INSTANCE` candidates.

use classifier::TokenFeatures;
use control::timed::Freshness;
use control::view::DataplaneView;
use predictor::InstanceModel;

use crate::class::TrafficClass;
use crate::service::{task_bit, ServiceTable};

/// Why the winning candidate won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChoiceReason {
    /// Lowest predicted TTFT (interactive work).
    LowestTtft,
    /// Lowest predicted completion time (bulk work).
    LowestCompletion,
    /// Every capable live candidate was overloaded: the least loaded one.
    AllOverloaded,
}

impl ChoiceReason {
    /// Stable name for counters.
    pub const fn name(self) -> &'static str {
        match self {
            ChoiceReason::LowestTtft => "lowest_ttft",
            ChoiceReason::LowestCompletion => "lowest_completion",
            ChoiceReason::AllOverloaded => "all_overloaded",
        }
    }
}

/// Why no candidate could be chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoChoice {
    /// No instance serves the task type and context length.
    NoCapableInstance,
    /// Capable instances exist but their nodes or every path to them are
    /// stale or lossy.
    NoLiveInstance,
    /// The service index is not in the table.
    UnknownService,
}

impl NoChoice {
    /// Stable name for counters.
    pub const fn name(self) -> &'static str {
        match self {
            NoChoice::NoCapableInstance => "no_capable_instance",
            NoChoice::NoLiveInstance => "no_live_instance",
            NoChoice::UnknownService => "unknown_service",
        }
    }
}

/// The predictions behind a choice, kept with the flow so the observed
/// latency can be compared with them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Predicted {
    /// Network round trip part, µs.
    pub net_us: f64,
    /// Compute part of the TTFT, µs.
    pub compute_ttft_us: f64,
    /// TTFT, µs.
    pub ttft_us: f64,
    /// Completion time, µs.
    pub completion_us: f64,
    /// The node's queue length the prediction assumed.
    pub queue_len: f64,
}

/// The outcome of a decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    /// Index into [`ServiceTable::instances`].
    pub instance: u8,
    /// Index into [`ServiceTable::paths`].
    pub path: u8,
    /// Why.
    pub reason: ChoiceReason,
    /// What was predicted for the winner.
    pub predicted: Predicted,
    /// Candidates (instance × path) scored.
    pub scored: u8,
}

/// Counts of candidates rejected by each hard constraint in one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rejections {
    /// Capability does not cover task or context.
    pub capability: u8,
    /// Node state stale.
    pub stale_node: u8,
    /// Path stale or lossy.
    pub dead_path: u8,
    /// Node queue at or past `max_queue`.
    pub overloaded: u8,
}

/// What a decision reads: the services, the control plane's snapshot, the
/// per-instance models (indexed like [`ServiceTable::instances`]; an
/// instance without a model is skipped) and the time.
#[derive(Debug, Clone, Copy)]
pub struct Decider<'a> {
    /// Services, instances and paths.
    pub table: &'a ServiceTable,
    /// Live path, node and capability state.
    pub view: &'a DataplaneView,
    /// Latency models.
    pub models: &'a [InstanceModel],
    /// Monotonic time the view's ages compare with.
    pub now_ns: u64,
}

impl Decider<'_> {
    /// Decides an instance and path for a new flow of `service`, counting
    /// rejected candidates into `rejections`.
    pub fn decide(
        &self,
        service: u8,
        features: &TokenFeatures,
        class: TrafficClass,
        rejections: &mut Rejections,
    ) -> Result<Choice, NoChoice> {
        decide(self, service, features, class, rejections)
    }
}

fn decide(
    d: &Decider<'_>,
    service: u8,
    features: &TokenFeatures,
    class: TrafficClass,
    rejections: &mut Rejections,
) -> Result<Choice, NoChoice> {
    let Decider {
        table,
        view,
        models,
        now_ns,
    } = *d;
    let svc = table
        .services()
        .get(usize::from(service))
        .ok_or(NoChoice::UnknownService)?;
    let t = view.thresholds();
    let context = features.total_tokens();
    let task = task_bit(features.task);
    let mut best: Option<(f64, Choice)> = None;
    // The least-loaded overloaded candidate, kept in case nothing else
    // qualifies: (queue fill ratio, choice).
    let mut least_loaded: Option<(f64, Choice)> = None;
    let mut scored = 0u8;
    let mut capable_seen = false;

    for &ii in svc.instance_indices() {
        let (Some(inst), Some(model)) = (
            table.instances().get(usize::from(ii)),
            models.get(usize::from(ii)),
        ) else {
            continue;
        };
        let cap = &inst.spec.capability;
        let live_cap = view.capability(inst.spec.node, now_ns).fresh().copied();
        let task_types = live_cap.map_or(cap.task_types, |c| c.task_types);
        let max_context = live_cap
            .and_then(|c| c.max_context_tokens)
            .map_or(f64::from(cap.max_context_tokens), |m| m);
        if !task_types.contains(task) || f64::from(context) > max_context {
            rejections.capability = rejections.capability.saturating_add(1);
            continue;
        }
        capable_seen = true;
        let (queue_len, est_ttft_us) = match view.node_state(inst.spec.node, now_ns) {
            Freshness::Fresh(m) => (
                m.queue_len
                    .filter(|q| q.is_finite() && *q >= 0.0)
                    .unwrap_or(0.0),
                m.est_ttft_us.filter(|e| e.is_finite() && *e >= 0.0),
            ),
            Freshness::Stale { .. } => {
                rejections.stale_node = rejections.stale_node.saturating_add(1);
                continue;
            }
            Freshness::Unknown => (0.0, None),
        };
        let prediction = model.predict(features.prompt_tokens, features.output_tokens, queue_len);
        let compute_ttft_us = est_ttft_us.map_or(prediction.compute_ttft_us, |e| {
            e.max(prediction.compute_ttft_us)
        });
        let decode_us = (prediction.completion_us - prediction.compute_ttft_us).max(0.0);
        let overloaded = queue_len >= f64::from(cap.max_queue);

        for &pi in inst.path_indices() {
            let Some(path) = table.paths().get(usize::from(pi)) else {
                continue;
            };
            let (latency_us, jitter_us) = match view.path_report(path.spec.id, now_ns) {
                Freshness::Fresh(m) => {
                    if m.loss_ratio.is_some_and(|l| l > t.max_path_loss_ratio) {
                        rejections.dead_path = rejections.dead_path.saturating_add(1);
                        continue;
                    }
                    (
                        m.latency_us.unwrap_or(path.spec.prior_latency_us),
                        m.jitter_us.unwrap_or(path.spec.prior_jitter_us),
                    )
                }
                Freshness::Stale { .. } => {
                    rejections.dead_path = rejections.dead_path.saturating_add(1);
                    continue;
                }
                Freshness::Unknown => (path.spec.prior_latency_us, path.spec.prior_jitter_us),
            };
            let net_us = 2.0 * (latency_us + t.jitter_weight * jitter_us);
            let ttft_us = net_us + compute_ttft_us;
            let predicted = Predicted {
                net_us,
                compute_ttft_us,
                ttft_us,
                completion_us: ttft_us + decode_us,
                queue_len,
            };
            let (score, reason) = if class.is_interactive() {
                (predicted.ttft_us, ChoiceReason::LowestTtft)
            } else {
                (predicted.completion_us, ChoiceReason::LowestCompletion)
            };
            let choice = Choice {
                instance: ii,
                path: pi,
                reason,
                predicted,
                scored: 0,
            };
            scored = scored.saturating_add(1);
            if overloaded {
                rejections.overloaded = rejections.overloaded.saturating_add(1);
                let fill = queue_len / f64::from(cap.max_queue);
                // Least loaded first, then the better score.
                let better = least_loaded.as_ref().map_or(true, |(f, c)| {
                    fill < *f || (fill == *f && score < score_of(class, c))
                });
                if better {
                    least_loaded = Some((fill, choice));
                }
                continue;
            }
            // Strictly lower only: on a tie the earlier candidate stays.
            if best.as_ref().map_or(true, |(s, _)| score < *s) {
                best = Some((score, choice));
            }
        }
    }
    match (best, least_loaded) {
        (Some((_, c)), _) => Ok(Choice { scored, ..c }),
        (None, Some((_, c))) => Ok(Choice {
            scored,
            reason: ChoiceReason::AllOverloaded,
            ..c
        }),
        (None, None) if capable_seen => Err(NoChoice::NoLiveInstance),
        (None, None) => Err(NoChoice::NoCapableInstance),
    }
}

fn score_of(class: TrafficClass, c: &Choice) -> f64 {
    if class.is_interactive() {
        c.predicted.ttft_us
    } else {
        c.predicted.completion_us
    }
}
