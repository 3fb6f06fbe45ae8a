//! The joint path and compute-node decision for a new flow (draft §4.3,
//! §5c).
//!
//! For every instance of the addressed service and every path that reaches
//! it, the decision predicts:
//!
//! ```text
//! net_us        = 2 × (latency_us + jitter_weight × jitter_us)   request out, first token back
//! compute_us    = model.compute_ttft(prompt, queue_len)
//!                 (max with the node's est_ttft_us when it reports no queue)
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
//! A node's estimated TTFT is the mean of its recent requests' TTFTs
//! (what a collector reads from a TTFT histogram), whatever their
//! prompts: a node that has just prefilled long uncached prompts reports a
//! high one. As a floor under this request's prediction it would make that
//! node look slow to a short request that would find a free slot there,
//! and would give back to a prefix-cache hit the prefill it skips. The
//! queue length measures the wait itself, so the estimate is the floor
//! only for a node that reports no queue length, where it is the one sign
//! of load.
//!
//! The queue length is the node's report plus the flows this appliance
//! steered to it since that report which cannot have found a free batch
//! slot ([`crate::SinceReport`]): between reports every decision reads the
//! same numbers, and a node that has just failed looks as idle as its last
//! report until the report goes stale.
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
//! rate) and short queues. Two candidates whose scores and network parts
//! are both within [`NEAR_TIE`] of each other are a tie: what separates
//! them is the compute prediction alone, by less than the online model's
//! error. For interactive work the scores may also differ by up to the
//! smaller of the two models' mean absolute TTFT error, once both have
//! [`TIE_ERROR_SAMPLES`] measured requests behind it: two identical
//! nodes' models drift apart by a few milliseconds of noise, and without
//! it every short request would go to the one that drifted low while its
//! batch slots filled. (Bulk scores keep the 2%: a prefix-cache skip is
//! what separates them, and it must not be lost in a completion model's
//! larger error.) The less loaded one (queue, then busy batch slots with the flows
//! steered since the report) wins a tie; equal load keeps configuration
//! order. Without that, identical nodes would all lose to the first one
//! until it queued, and the first request of every shared prefix would
//! land there too. Candidates behind different paths are never a tie: the
//! network part is measured, and a path that looks as fast may still be
//! the lossier one. If every capable
//! live candidate is overloaded, the least loaded of them is taken and the
//! choice says so; if no capable live candidate exists, there is no choice
//! and the caller counts the request.
//!
//! That is [`Policy::TokenAware`]. Two baselines share the same
//! constraints on capability and node liveness, so an evaluation compares
//! only how they choose, and neither looks at the network: they always take
//! an instance's first path, whatever its state.
//!
//! * [`Policy::LeastQueue`] scores every live capable instance the way the
//!   Kubernetes Gateway API Inference Extension's endpoint picker does,
//!   with its queue scorer and KV-cache scorer at equal weight:
//!   `(max_q − q)/(max_q − min_q) + (1 − kv_util)`, where `q` is the
//!   node's reported queue length (1 for every instance when the queues
//!   are all equal) and `kv_util` its reported memory (KV-cache)
//!   utilisation, 0 when unreported. The highest score wins; ties go round
//!   robin, starting from the caller's `turn`.
//! * [`Policy::RoundRobin`] takes the `turn`-th live capable instance
//!   (modulo their number): with a per-service counter in the caller,
//!   plain round robin.
//!
//! * [`Policy::LlmD`] is llm-d's default endpoint picker without its
//!   network-blind parts changed: the same queue and KV-cache scorers plus
//!   the approximate prefix-cache scorer, weighted queue 2, KV cache 2,
//!   prefix 3 — the `default-plugins.yaml` scheduling profile of the
//!   Gateway API Inference Extension's EPP that llm-d's inference scheduler
//!   ships (`queue-scorer` 2, `kv-cache-utilization-scorer` 2,
//!   `prefix-cache-scorer` 3; found reproduced in llm-d guides and in
//!   operators that mirror the upstream default). The prefix score is the
//!   share of the prompt the [`PrefixRecord`] expects cached on the
//!   instance (0 to 1), as llm-d's approximate scorer scores matched
//!   blocks over the prompt's blocks. The highest weighted sum wins; ties
//!   go round robin.
//!
//! # Prefix-cache affinity
//!
//! When the request names a shared prefix ([`classifier::SharedPrefix`],
//! layout version 2) and the caller passes its [`PrefixRecord`], the
//! token-aware prediction of each candidate subtracts the prefill it
//! expects to skip: the model predicts the compute TTFT of
//! `prompt − expected cached tokens`, i.e. the cached tokens times the
//! model's learnt per-token prefill, and the [`Predicted::cached_tokens`]
//! it assumed is kept with the flow. Such a request does not teach the
//! model ([`crate::Engine::learn`]): what the node really found cached is
//! not known here. **Bounded load**: a candidate whose queue
//! (with the flows steered since its report) exceeds the shortest live
//! queue of the service by more than [`crate::prefix::PrefixLimits::balance_queue`] gets
//! no skip, so a hot prefix spills to other nodes once its node is
//! visibly busier than the rest instead of piling up there.
//!
//! The baselines still fill in the token-aware prediction for what they
//! chose, so the appliance measures and learns from their flows exactly as
//! from its own.
//!
//! The decision reads only the immutable view and the caller's models: no
//! lock, no allocation, at most `MAX_INSTANCES_PER_SERVICE ×
//! MAX_PATHS_PER_INSTANCE` candidates.

use classifier::TokenFeatures;
use control::timed::Freshness;
use control::view::DataplaneView;
use predictor::InstanceModel;

use crate::class::TrafficClass;
use crate::prefix::PrefixRecord;
use crate::service::{task_bit, ServiceTable, MAX_INSTANCES_PER_SERVICE};

/// Why the winning candidate won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChoiceReason {
    /// Lowest predicted TTFT (interactive work).
    LowestTtft,
    /// Lowest predicted completion time (bulk work).
    LowestCompletion,
    /// Every capable live candidate was overloaded: the least loaded one.
    AllOverloaded,
    /// Baseline: the best queue and KV-cache score ([`Policy::LeastQueue`]).
    LeastQueue,
    /// Baseline: the next live capable instance ([`Policy::RoundRobin`]).
    RoundRobin,
    /// Baseline: llm-d's weighted queue, KV-cache and prefix scorers
    /// ([`Policy::LlmD`]).
    LlmD,
}

impl ChoiceReason {
    /// Stable name for counters.
    pub const fn name(self) -> &'static str {
        match self {
            ChoiceReason::LowestTtft => "lowest_ttft",
            ChoiceReason::LowestCompletion => "lowest_completion",
            ChoiceReason::AllOverloaded => "all_overloaded",
            ChoiceReason::LeastQueue => "least_queue",
            ChoiceReason::RoundRobin => "round_robin",
            ChoiceReason::LlmD => "llm_d",
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
    /// Prompt tokens the prediction expected the node's prefix cache to
    /// hold (not prefilled).
    pub cached_tokens: f64,
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

/// How a decision chooses among the candidates that meet the constraints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// Joint path and node choice by predicted TTFT or completion.
    #[default]
    TokenAware,
    /// Baseline: queue and KV-cache scorers, no network awareness.
    LeastQueue,
    /// Baseline: round robin over live capable instances.
    RoundRobin,
    /// Baseline: llm-d's default scorers (queue, KV cache, approximate
    /// prefix), no network awareness.
    LlmD,
}

impl Policy {
    /// Every policy.
    pub const ALL: [Policy; 4] = [
        Policy::TokenAware,
        Policy::LeastQueue,
        Policy::RoundRobin,
        Policy::LlmD,
    ];

    /// Stable name, as in the configuration.
    pub const fn name(self) -> &'static str {
        match self {
            Policy::TokenAware => "token_aware",
            Policy::LeastQueue => "least_queue",
            Policy::RoundRobin => "round_robin",
            Policy::LlmD => "llm_d",
        }
    }
}

impl core::str::FromStr for Policy {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Policy::ALL.into_iter().find(|p| p.name() == s).ok_or(())
    }
}

/// What a decision reads: the services, the control plane's snapshot, the
/// per-instance models (indexed like [`ServiceTable::instances`]; an
/// instance without a model is skipped), the time and the policy.
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
    /// How to choose.
    pub policy: Policy,
    /// The baselines' rotation: the caller's count of decisions for this
    /// service (ignored by [`Policy::TokenAware`]).
    pub turn: u32,
    /// Flows the caller steered to each instance since its node's last
    /// report ([`crate::SinceReport::counts`]; an empty slice when not
    /// tracked). Token-aware steering only: the baselines read what the
    /// nodes report and nothing else.
    pub unreported: &'a [u32],
    /// Where shared prefixes were recently sent (`None`: no prefix-cache
    /// affinity).
    pub prefixes: Option<&'a PrefixRecord>,
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
        match self.policy {
            Policy::TokenAware => decide(self, service, features, class, rejections),
            Policy::LeastQueue | Policy::RoundRobin | Policy::LlmD => {
                decide_baseline(self, service, features, rejections)
            }
        }
    }
}

/// A live capable instance as the constraints common to every policy see it.
#[derive(Debug, Clone, Copy, Default)]
struct Live {
    instance: u8,
    queue_len: f64,
    /// The node's estimated TTFT, kept only when it reported no queue
    /// length (see the module's documentation).
    est_ttft_us: Option<f64>,
    kv_util: f64,
    /// Busy batch slots / slots, as reported.
    gpu_util: Option<f64>,
    /// Whether the node's state is a fresh report (not unknown).
    reported: bool,
}

/// Why an instance is not a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotLive {
    /// Not in the table, or without a model.
    Missing,
    /// Cannot serve the task or the context (counted).
    Incapable,
    /// Capable, but its node is stale (counted).
    Stale,
}

/// Applies the capability and node-liveness constraints to one instance of
/// the service, counting what they reject.
fn live_instance(
    d: &Decider<'_>,
    ii: u8,
    features: &TokenFeatures,
    rejections: &mut Rejections,
) -> Result<Live, NotLive> {
    let inst = d
        .table
        .instances()
        .get(usize::from(ii))
        .ok_or(NotLive::Missing)?;
    d.models.get(usize::from(ii)).ok_or(NotLive::Missing)?;
    let cap = &inst.spec.capability;
    let live_cap = d.view.capability(inst.spec.node, d.now_ns).fresh().copied();
    let task_types = live_cap.map_or(cap.task_types, |c| c.task_types);
    let max_context = live_cap
        .and_then(|c| c.max_context_tokens)
        .map_or(f64::from(cap.max_context_tokens), |m| m);
    if !task_types.contains(task_bit(features.task))
        || f64::from(features.total_tokens()) > max_context
    {
        rejections.capability = rejections.capability.saturating_add(1);
        return Err(NotLive::Incapable);
    }
    let usable = |v: Option<f64>| v.filter(|x| x.is_finite() && *x >= 0.0);
    match d.view.node_state(inst.spec.node, d.now_ns) {
        Freshness::Fresh(m) => Ok(Live {
            instance: ii,
            queue_len: usable(m.queue_len).unwrap_or(0.0),
            est_ttft_us: usable(m.est_ttft_us).filter(|_| usable(m.queue_len).is_none()),
            kv_util: usable(m.mem_util).map_or(0.0, |u| u.min(1.0)),
            gpu_util: usable(m.gpu_util).map(|u| u.min(1.0)),
            reported: true,
        }),
        Freshness::Stale { .. } => {
            rejections.stale_node = rejections.stale_node.saturating_add(1);
            Err(NotLive::Stale)
        }
        Freshness::Unknown => Ok(Live {
            instance: ii,
            ..Live::default()
        }),
    }
}

/// The token-aware prediction for `live` over path `pi`, given the path's
/// one-way latency and jitter and the prompt tokens expected cached there.
fn predict(
    d: &Decider<'_>,
    live: &Live,
    features: &TokenFeatures,
    latency_us: f64,
    jitter_us: f64,
    cached_tokens: f64,
) -> Option<Predicted> {
    let model = d.models.get(usize::from(live.instance))?;
    let cached_tokens = cached_tokens.clamp(0.0, f64::from(features.prompt_tokens));
    // The model is linear in the prompt: predicting for the uncached tokens
    // subtracts exactly the cached tokens times its per-token prefill.
    let prediction = model.predict(
        features.prompt_tokens - cached_tokens as u32,
        features.output_tokens,
        live.queue_len,
    );
    let compute_ttft_us = live.est_ttft_us.map_or(prediction.compute_ttft_us, |e| {
        e.max(prediction.compute_ttft_us)
    });
    let decode_us = (prediction.completion_us - prediction.compute_ttft_us).max(0.0);
    let net_us = 2.0 * (latency_us + d.view.thresholds().jitter_weight * jitter_us);
    let ttft_us = net_us + compute_ttft_us;
    Some(Predicted {
        net_us,
        compute_ttft_us,
        ttft_us,
        completion_us: ttft_us + decode_us,
        queue_len: live.queue_len,
        cached_tokens,
    })
}

/// The prefill `live` is expected to skip for this request: its prefix's
/// cached tokens there, unless bounded load withholds the affinity because
/// its queue exceeds the shortest by more than the bound.
fn expected_skip(
    d: &Decider<'_>,
    live: &Live,
    features: &TokenFeatures,
    shortest_queue: f64,
) -> f64 {
    let (Some(record), Some(prefix)) = (d.prefixes, features.prefix.as_ref()) else {
        return 0.0;
    };
    if live.queue_len > shortest_queue + record.limits().balance_queue {
        return 0.0;
    }
    record.expected_cached_tokens(live.instance, prefix, d.now_ns)
}

/// The shortest queue (with unreported flows) among the service's live
/// capable instances; only needed, and only computed, when the request
/// names a prefix the record can match.
fn shortest_live_queue(d: &Decider<'_>, service_instances: &[u8], features: &TokenFeatures) -> f64 {
    if d.prefixes.is_none() || features.prefix.is_none() {
        return 0.0;
    }
    let mut scratch = Rejections::default();
    let mut shortest = f64::INFINITY;
    for &ii in service_instances {
        let (Ok(live), Some(inst)) = (
            live_instance(d, ii, features, &mut scratch),
            d.table.instances().get(usize::from(ii)),
        ) else {
            continue;
        };
        let unreported = d.unreported.get(usize::from(ii)).copied().unwrap_or(0);
        let q = queue_with_unreported(&live, inst.spec.capability.concurrency, unreported);
        shortest = shortest.min(q);
    }
    if shortest.is_finite() {
        shortest
    } else {
        0.0
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
        now_ns,
        ..
    } = *d;
    let svc = table
        .services()
        .get(usize::from(service))
        .ok_or(NoChoice::UnknownService)?;
    let t = view.thresholds();
    // (score, load, choice) of the best candidate so far.
    let mut best: Option<(f64, f64, Choice)> = None;
    // The least-loaded overloaded candidate, kept in case nothing else
    // qualifies: (queue fill ratio, choice).
    let mut least_loaded: Option<(f64, Choice)> = None;
    let mut scored = 0u8;
    let mut capable_seen = false;
    let shortest_queue = shortest_live_queue(d, svc.instance_indices(), features);

    for &ii in svc.instance_indices() {
        let live = live_instance(d, ii, features, rejections);
        capable_seen |= matches!(live, Ok(_) | Err(NotLive::Stale));
        let (Ok(mut live), Some(inst)) = (live, table.instances().get(usize::from(ii))) else {
            continue;
        };
        let unreported = d.unreported.get(usize::from(ii)).copied().unwrap_or(0);
        live.queue_len = queue_with_unreported(&live, inst.spec.capability.concurrency, unreported);
        let max_queue = inst.spec.capability.max_queue;
        let overloaded = live.queue_len >= f64::from(max_queue);
        let skip = expected_skip(d, &live, features, shortest_queue);
        let load = load_of(&live, inst.spec.capability.concurrency, unreported);

        for &pi in inst.path_indices() {
            let Some(path) = table.paths().get(usize::from(pi)) else {
                continue;
            };
            let (latency_us, jitter_us) = match view.path_report(path.spec.id, now_ns) {
                Freshness::Fresh(m) => {
                    if m.too_lossy(t.max_path_loss_ratio) {
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
            let Some(predicted) = predict(d, &live, features, latency_us, jitter_us, skip) else {
                continue;
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
                let fill = live.queue_len / f64::from(max_queue);
                // Least loaded first, then the better score.
                let better = least_loaded.as_ref().map_or(true, |(f, c)| {
                    fill < *f || (fill == *f && score < score_of(class, c))
                });
                if better {
                    least_loaded = Some((fill, choice));
                }
                continue;
            }
            // Clearly lower wins; within NEAR_TIE the less loaded wins;
            // otherwise (and on equal load) the earlier candidate stays.
            let near = |a: f64, b: f64| (a - b).abs() <= NEAR_TIE * a.abs().max(b.abs());
            let better = best.as_ref().map_or(true, |(s, l, c)| {
                let within_error = class.is_interactive()
                    && (score - s).abs() <= ttft_error_between(d, ii, c.instance);
                let tie =
                    (near(score, *s) || within_error) && near(predicted.net_us, c.predicted.net_us);
                if tie {
                    load < *l
                } else {
                    score < *s
                }
            });
            if better {
                best = Some((score, load, choice));
            }
        }
    }
    match (best, least_loaded) {
        (Some((_, _, c)), _) => Ok(Choice { scored, ..c }),
        (None, Some((_, c))) => Ok(Choice {
            scored,
            reason: ChoiceReason::AllOverloaded,
            ..c
        }),
        (None, None) if capable_seen => Err(NoChoice::NoLiveInstance),
        (None, None) => Err(NoChoice::NoCapableInstance),
    }
}

/// The reported queue plus the flows steered since the report that cannot
/// have found a free batch slot: the slots the report showed free
/// (`concurrency × (1 − gpu_util)`; all of them when it showed an empty
/// queue without a utilisation, none when it showed a queue) absorb the
/// first ones. A node that never reported keeps its queue of 0: there is
/// no report to count from.
fn queue_with_unreported(live: &Live, concurrency: u32, unreported: u32) -> f64 {
    if !live.reported || unreported == 0 {
        return live.queue_len;
    }
    let slots = f64::from(concurrency);
    let free = match live.gpu_util {
        Some(busy) => slots * (1.0 - busy),
        None if live.queue_len > 0.0 => 0.0,
        None => slots,
    };
    live.queue_len + (f64::from(unreported) - free).max(0.0)
}

fn score_of(class: TrafficClass, c: &Choice) -> f64 {
    if class.is_interactive() {
        c.predicted.ttft_us
    } else {
        c.predicted.completion_us
    }
}

/// llm-d's default scheduling profile: `queue-scorer` 2,
/// `kv-cache-utilization-scorer` 2, `prefix-cache-scorer` 3.
pub const LLM_D_WEIGHTS: LlmDWeights = LlmDWeights {
    queue: 2.0,
    kv_cache: 2.0,
    prefix: 3.0,
};

/// The weights of [`Policy::LlmD`]'s scorers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LlmDWeights {
    /// Queue scorer.
    pub queue: f64,
    /// KV-cache utilisation scorer.
    pub kv_cache: f64,
    /// Approximate prefix-cache scorer.
    pub prefix: f64,
}

/// Relative difference under which two token-aware scores, and their
/// network parts, are a tie that load decides.
pub const NEAR_TIE: f64 = 0.02;

/// Measured requests each of two models needs before its TTFT error
/// widens an interactive tie.
pub const TIE_ERROR_SAMPLES: u64 = 16;

/// The smaller of two instances' mean absolute TTFT errors, µs, or 0 while
/// either has fewer than [`TIE_ERROR_SAMPLES`] measurements.
fn ttft_error_between(d: &Decider<'_>, a: u8, b: u8) -> f64 {
    let mae = |i: u8| {
        d.models
            .get(usize::from(i))
            .map(|m| m.ttft_error())
            .filter(|e| e.count >= TIE_ERROR_SAMPLES && e.mae.is_finite())
            .map(|e| e.mae)
    };
    match (mae(a), mae(b)) {
        (Some(x), Some(y)) => x.min(y),
        _ => 0.0,
    }
}

/// How loaded a candidate looks, for breaking near-ties: queued requests
/// plus the share of its batch slots busy at the report or taken since.
fn load_of(live: &Live, concurrency: u32, unreported: u32) -> f64 {
    let slots = f64::from(concurrency.max(1));
    let busy = live.gpu_util.unwrap_or(0.0) + f64::from(unreported) / slots;
    live.queue_len + busy.min(1.0)
}

/// [`Policy::LeastQueue`], [`Policy::RoundRobin`] and [`Policy::LlmD`]: the
/// same constraints on capability and node liveness, then a choice that
/// ignores the network.
fn decide_baseline(
    d: &Decider<'_>,
    service: u8,
    features: &TokenFeatures,
    rejections: &mut Rejections,
) -> Result<Choice, NoChoice> {
    let svc = d
        .table
        .services()
        .get(usize::from(service))
        .ok_or(NoChoice::UnknownService)?;
    let mut live = [Live::default(); MAX_INSTANCES_PER_SERVICE];
    let mut n = 0usize;
    let mut capable_seen = false;
    for &ii in svc.instance_indices() {
        let found = live_instance(d, ii, features, rejections);
        capable_seen |= matches!(found, Ok(_) | Err(NotLive::Stale));
        if let (Ok(l), Some(slot)) = (found, live.get_mut(n)) {
            *slot = l;
            n += 1;
        }
    }
    let live = live.get(..n).unwrap_or(&[]);
    if live.is_empty() {
        return Err(if capable_seen {
            NoChoice::NoLiveInstance
        } else {
            NoChoice::NoCapableInstance
        });
    }
    let start = d.turn as usize % live.len();
    let rotated = (0..live.len()).filter_map(|k| live.get((start + k) % live.len()));
    let (min_q, max_q) = live.iter().fold((f64::MAX, 0.0f64), |(lo, hi), l| {
        (lo.min(l.queue_len), hi.max(l.queue_len))
    });
    // The Inference Extension's queue scorer: 1 for the shortest queue, 0
    // for the longest, 1 for all when they are equal.
    let queue_score = |l: &Live| {
        if max_q > min_q {
            (max_q - l.queue_len) / (max_q - min_q)
        } else {
            1.0
        }
    };
    let (picked, reason) = match d.policy {
        Policy::LeastQueue | Policy::LlmD => {
            let prefix_score = |l: &Live| match (d.prefixes, features.prefix.as_ref()) {
                (Some(r), Some(p)) if features.prompt_tokens > 0 => (r
                    .expected_cached_tokens(l.instance, p, d.now_ns)
                    / f64::from(features.prompt_tokens))
                .clamp(0.0, 1.0),
                _ => 0.0,
            };
            let score = |l: &Live| match d.policy {
                Policy::LlmD => {
                    let w = LLM_D_WEIGHTS;
                    w.queue * queue_score(l)
                        + w.kv_cache * (1.0 - l.kv_util)
                        + w.prefix * prefix_score(l)
                }
                _ => queue_score(l) + (1.0 - l.kv_util),
            };
            // Strictly higher only: a tie stays with the earlier one in
            // the rotation, so ties are served round robin.
            let best = rotated.fold(None::<(f64, &Live)>, |best, l| {
                let s = score(l);
                match best {
                    Some((b, _)) if s <= b => best,
                    _ => Some((s, l)),
                }
            });
            let reason = if d.policy == Policy::LlmD {
                ChoiceReason::LlmD
            } else {
                ChoiceReason::LeastQueue
            };
            (best.map(|(_, l)| l), reason)
        }
        Policy::RoundRobin | Policy::TokenAware => (live.get(start), ChoiceReason::RoundRobin),
    };
    let picked = picked.ok_or(NoChoice::NoLiveInstance)?;
    let inst = d
        .table
        .instances()
        .get(usize::from(picked.instance))
        .ok_or(NoChoice::NoLiveInstance)?;
    let pi = *inst
        .path_indices()
        .first()
        .ok_or(NoChoice::NoLiveInstance)?;
    let path = d
        .table
        .paths()
        .get(usize::from(pi))
        .ok_or(NoChoice::NoLiveInstance)?;
    // The prediction the appliance will later score against what it
    // observes: the path's configured priors, since the baselines do not
    // read path state.
    let skip = match (d.prefixes, features.prefix.as_ref()) {
        (Some(r), Some(p)) => r.expected_cached_tokens(picked.instance, p, d.now_ns),
        _ => 0.0,
    };
    let predicted = predict(
        d,
        picked,
        features,
        path.spec.prior_latency_us,
        path.spec.prior_jitter_us,
        skip,
    )
    .unwrap_or_default();
    Ok(Choice {
        instance: picked.instance,
        path: pi,
        reason,
        predicted,
        scored: u8::try_from(live.len()).unwrap_or(u8::MAX),
    })
}
