//! What the steering worker counts. One writer (the worker), read by the
//! main lcore, the control thread's stats query and `/metrics`; every
//! update is a relaxed store ([`bump`]), never a locked instruction.
//!
//! Counters are named by what happened, VPP-style: feature sources,
//! decisions and their reasons, rejected candidates by constraint, flows
//! kept and lost, responses translated, and per class the predicted and
//! observed latency that the feedback loop compares.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde_json::{json, Value};
use steer::{ChoiceReason, NoChoice, TrafficClass};

use crate::stats::{bump, quantile, SampleRing};

/// Where a new flow's features came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum FeatureSource {
    /// A valid token-feature TLV.
    Tlv,
    /// A TLV that was malformed (or carried an invalid ID): treated as none.
    TlvMalformed,
    /// Inferred from the HTTP request.
    InferredHttp,
    /// On an inference port, but the payload was not an inferable request.
    InferFailed,
    /// No TLV and no inference: unknown features, class `other`.
    Unknown,
}

impl FeatureSource {
    pub const ALL: [FeatureSource; 5] = [
        FeatureSource::Tlv,
        FeatureSource::TlvMalformed,
        FeatureSource::InferredHttp,
        FeatureSource::InferFailed,
        FeatureSource::Unknown,
    ];
    pub const fn name(self) -> &'static str {
        match self {
            FeatureSource::Tlv => "tlv",
            FeatureSource::TlvMalformed => "tlv_malformed",
            FeatureSource::InferredHttp => "inferred_http",
            FeatureSource::InferFailed => "infer_failed",
            FeatureSource::Unknown => "unknown",
        }
    }
}

/// Flow-table events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum FlowEvent {
    /// A new flow was decided and remembered.
    New,
    /// The table was full: the flow went to its service's overflow
    /// instance, statelessly.
    TableFull,
    /// An idle flow was forgotten.
    Expired,
    /// A request's client tuple matched a flow of another service.
    KeyConflict,
    /// A response was translated back to its VIP.
    ResponseTranslated,
    /// A response from an instance with no flow in the table (translated
    /// anyway, not measured).
    ResponseWithoutFlow,
    /// A request measured end to end (TTFT and completion).
    Measured,
    /// A flow ended without an answer to measure.
    Unanswered,
}

impl FlowEvent {
    pub const ALL: [FlowEvent; 8] = [
        FlowEvent::New,
        FlowEvent::TableFull,
        FlowEvent::Expired,
        FlowEvent::KeyConflict,
        FlowEvent::ResponseTranslated,
        FlowEvent::ResponseWithoutFlow,
        FlowEvent::Measured,
        FlowEvent::Unanswered,
    ];
    pub const fn name(self) -> &'static str {
        match self {
            FlowEvent::New => "new",
            FlowEvent::TableFull => "table_full",
            FlowEvent::Expired => "expired",
            FlowEvent::KeyConflict => "key_conflict",
            FlowEvent::ResponseTranslated => "response_translated",
            FlowEvent::ResponseWithoutFlow => "response_without_flow",
            FlowEvent::Measured => "measured",
            FlowEvent::Unanswered => "unanswered",
        }
    }
}

const REASONS: [ChoiceReason; 5] = [
    ChoiceReason::LowestTtft,
    ChoiceReason::LowestCompletion,
    ChoiceReason::AllOverloaded,
    ChoiceReason::LeastQueue,
    ChoiceReason::RoundRobin,
];
const NO_CHOICE: [NoChoice; 3] = [
    NoChoice::NoCapableInstance,
    NoChoice::NoLiveInstance,
    NoChoice::UnknownService,
];
const REJECTIONS: [&str; 4] = ["capability", "stale_node", "dead_path", "overloaded"];

/// Predicted against observed latency of one class (µs sums).
#[derive(Default)]
pub struct ClassLatency {
    pub measured: AtomicU64,
    pub predicted_ttft_us: AtomicU64,
    pub observed_ttft_us: AtomicU64,
    pub predicted_completion_us: AtomicU64,
    pub observed_completion_us: AtomicU64,
    /// Sum of |predicted − observed| TTFT, µs.
    pub abs_error_ttft_us: AtomicU64,
}

/// One instance's model, as last published by the worker (f64 bits).
#[derive(Default)]
pub struct ModelGauges {
    pub observations: AtomicU64,
    pub ttft_mae_us: AtomicU64,
    pub ttft_bias_us: AtomicU64,
    pub completion_mae_us: AtomicU64,
    pub coefficients: [AtomicU64; 3],
    pub decode_us_per_token: AtomicU64,
}

/// Everything the steering worker counts.
pub struct SteerCounters {
    pub features: [AtomicU64; 5],
    pub flows: [AtomicU64; 8],
    pub reasons: [AtomicU64; REASONS.len()],
    pub no_choice: [AtomicU64; 3],
    pub rejections: [AtomicU64; 4],
    /// `chosen[instance * TrafficClass::COUNT + class]`: new flows.
    pub chosen: Vec<AtomicU64>,
    pub class_latency: [ClassLatency; TrafficClass::COUNT],
    pub models: Vec<ModelGauges>,
    /// Per-flow decision cost, ns.
    pub decision_ns: SampleRing,
    /// Time packets spent in the egress scheduler, µs, by class.
    pub sojourn_us: [SampleRing; TrafficClass::COUNT],
    /// `band_drops[port * COUNT + class]`.
    pub band_drops: Vec<AtomicU64>,
    pub instances: usize,
}

impl SteerCounters {
    pub fn new(instances: usize, ports: usize) -> SteerCounters {
        SteerCounters {
            features: Default::default(),
            flows: Default::default(),
            reasons: Default::default(),
            no_choice: Default::default(),
            rejections: Default::default(),
            chosen: (0..instances * TrafficClass::COUNT)
                .map(|_| AtomicU64::new(0))
                .collect(),
            class_latency: Default::default(),
            models: (0..instances).map(|_| ModelGauges::default()).collect(),
            decision_ns: SampleRing::new(),
            sojourn_us: Default::default(),
            band_drops: (0..ports * TrafficClass::COUNT)
                .map(|_| AtomicU64::new(0))
                .collect(),
            instances,
        }
    }

    #[inline]
    pub fn feature(&self, s: FeatureSource) {
        bump(&self.features[s as usize], 1);
    }

    #[inline]
    pub fn flow(&self, e: FlowEvent) {
        bump(&self.flows[e as usize], 1);
    }

    #[inline]
    pub fn reason(&self, r: ChoiceReason) {
        if let Some(c) = REASONS.iter().position(|x| *x == r) {
            bump(&self.reasons[c], 1);
        }
    }

    #[inline]
    pub fn no_choice(&self, r: NoChoice) {
        if let Some(c) = NO_CHOICE.iter().position(|x| *x == r) {
            bump(&self.no_choice[c], 1);
        }
    }

    pub fn rejections(&self, r: &steer::Rejections) {
        for (c, n) in
            self.rejections
                .iter()
                .zip([r.capability, r.stale_node, r.dead_path, r.overloaded])
        {
            if n > 0 {
                bump(c, u64::from(n));
            }
        }
    }

    #[inline]
    pub fn chosen(&self, instance: u8, class: TrafficClass) {
        let i = usize::from(instance) * TrafficClass::COUNT + class as usize;
        if let Some(c) = self.chosen.get(i) {
            bump(c, 1);
        }
    }

    #[inline]
    pub fn band_drop(&self, port: usize, class: usize) {
        if let Some(c) = self.band_drops.get(port * TrafficClass::COUNT + class) {
            bump(c, 1);
        }
    }

    /// The stats JSON `steer` section. `instances` names them in table
    /// order.
    pub fn to_json(&self, instances: &[String]) -> Value {
        let load = |a: &AtomicU64| a.load(Relaxed);
        let f = |a: &AtomicU64| f64::from_bits(a.load(Relaxed));
        let named = |names: &mut dyn Iterator<Item = &'static str>, counters: &[AtomicU64]| {
            names
                .zip(counters)
                .map(|(n, c)| (n.to_string(), json!(load(c))))
                .collect::<serde_json::Map<_, _>>()
        };
        let mut chosen = serde_json::Map::new();
        for (i, name) in instances.iter().enumerate() {
            let mut per_class = serde_json::Map::new();
            let mut total = 0;
            for class in TrafficClass::ALL {
                let n = self
                    .chosen
                    .get(i * TrafficClass::COUNT + class as usize)
                    .map_or(0, load);
                total += n;
                if n > 0 {
                    per_class.insert(class.name().into(), json!(n));
                }
            }
            per_class.insert("total".into(), json!(total));
            chosen.insert(name.clone(), Value::Object(per_class));
        }
        let mut latency = serde_json::Map::new();
        for class in TrafficClass::ALL {
            let l = &self.class_latency[class as usize];
            let n = load(&l.measured);
            let mut sojourn = self.sojourn_us[class as usize].snapshot();
            let mean = |a: &AtomicU64| {
                if n == 0 {
                    Value::Null
                } else {
                    json!((load(a) as f64 / n as f64 / 1000.0 * 100.0).round() / 100.0)
                }
            };
            latency.insert(
                class.name().into(),
                json!({
                    "measured": n,
                    "predicted_ttft_ms": mean(&l.predicted_ttft_us),
                    "observed_ttft_ms": mean(&l.observed_ttft_us),
                    "ttft_mae_ms": mean(&l.abs_error_ttft_us),
                    "predicted_completion_ms": mean(&l.predicted_completion_us),
                    "observed_completion_ms": mean(&l.observed_completion_us),
                    "egress_wait_us": {
                        "samples": sojourn.len(),
                        "p50": quantile(&mut sojourn, 0.5),
                        "p99": quantile(&mut sojourn, 0.99),
                        "max": quantile(&mut sojourn, 1.0),
                    },
                }),
            );
        }
        let mut models = serde_json::Map::new();
        for (i, name) in instances.iter().enumerate() {
            if let Some(m) = self.models.get(i) {
                models.insert(
                    name.clone(),
                    json!({
                        "observations": load(&m.observations),
                        "ttft_mae_us": f(&m.ttft_mae_us),
                        "ttft_bias_us": f(&m.ttft_bias_us),
                        "completion_mae_us": f(&m.completion_mae_us),
                        "ttft_coefficients": [f(&m.coefficients[0]), f(&m.coefficients[1]), f(&m.coefficients[2])],
                        "decode_us_per_token": f(&m.decode_us_per_token),
                    }),
                );
            }
        }
        let mut decision = self.decision_ns.snapshot();
        json!({
            "features": named(&mut FeatureSource::ALL.iter().map(|s| s.name()), &self.features),
            "flows": named(&mut FlowEvent::ALL.iter().map(|s| s.name()), &self.flows),
            "reasons": named(&mut REASONS.iter().map(|s| s.name()), &self.reasons),
            "no_choice": named(&mut NO_CHOICE.iter().map(|s| s.name()), &self.no_choice),
            "rejected_candidates": named(&mut REJECTIONS.iter().copied(), &self.rejections),
            "chosen": chosen,
            "latency": latency,
            "models": models,
            "decision_ns": {
                "samples": self.decision_ns.count(),
                "p50": quantile(&mut decision, 0.5),
                "p99": quantile(&mut decision, 0.99),
            },
        })
    }
}
