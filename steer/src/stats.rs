//! What a steering engine counts. One writer (the worker lcore driving the
//! engine), read off the fast path by the main lcore, the control thread's
//! stats query and `/metrics`; every update is a relaxed store
//! ([`counters::bump`]), never a locked instruction. With several workers
//! every engine has its own block, and readers add them up ([`SteerCounters::sum`]).
//!
//! Counters are named by what happened, VPP-style: feature sources,
//! decisions and their reasons, rejected candidates by constraint, flows
//! kept and lost, responses translated, and per class the predicted and
//! observed latency that the feedback loop compares, and what became of
//! fragments.

#![allow(missing_docs)]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use counters::{bump, SampleRing};

use predictor::InstanceModel;

use crate::{ChoiceReason, Measured, NoChoice, Predicted, Rejections, TrafficClass};

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

/// What happened to pieces of fragmented datagrams (see
/// [`crate::fragment`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum FragmentEvent {
    /// A first fragment decided and sent (rewritten) to an instance or
    /// back to the agents.
    Steered,
    /// A later fragment sent, passed or dropped as its first fragment
    /// decided, on arrival.
    Followed,
    /// A later fragment held because it came before its first.
    Held,
    /// A held fragment released by its first fragment's decision.
    Released,
    /// A held fragment dropped because its first fragment did not come in
    /// time.
    TimedOut,
    /// A later fragment dropped because the hold was full (for its
    /// datagram or the worker).
    HoldFull,
    /// A later fragment dropped because its datagram had no entry and the
    /// fragment table no room.
    TableFull,
}

impl FragmentEvent {
    pub const ALL: [FragmentEvent; 7] = [
        FragmentEvent::Steered,
        FragmentEvent::Followed,
        FragmentEvent::Held,
        FragmentEvent::Released,
        FragmentEvent::TimedOut,
        FragmentEvent::HoldFull,
        FragmentEvent::TableFull,
    ];
    pub const fn name(self) -> &'static str {
        match self {
            FragmentEvent::Steered => "steered",
            FragmentEvent::Followed => "followed",
            FragmentEvent::Held => "held",
            FragmentEvent::Released => "released",
            FragmentEvent::TimedOut => "timed_out",
            FragmentEvent::HoldFull => "hold_full",
            FragmentEvent::TableFull => "table_full",
        }
    }

    /// True for the events that are drops.
    pub const fn is_drop(self) -> bool {
        matches!(
            self,
            FragmentEvent::TimedOut | FragmentEvent::HoldFull | FragmentEvent::TableFull
        )
    }
}

/// What delayed binding did ([`crate::splice`]). The `refused`,
/// `timeout`, `aborted`, `exhausted` and `*_full` / `*_bound` events are
/// the counted fallbacks of its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum SpliceEvent {
    /// A TLV-less SYN answered with a cookie SYN-ACK (no state kept).
    SynAnswered,
    /// A handshake ACK with a valid cookie: a connection opened.
    Accepted,
    /// An ACK without a connection whose cookie is invalid or expired:
    /// answered with a RST.
    CookieInvalid,
    /// A valid cookie but no free connection slot: answered with a RST.
    TableFull,
    /// A client segment buffered (and ACKed) before the decision.
    Buffered,
    /// A client segment whose bytes were all buffered already: re-ACKed.
    Duplicate,
    /// A client segment after a gap: dropped (the client retransmits).
    OutOfOrder,
    /// Client data after the decision, before the instance answered:
    /// dropped (the client retransmits).
    EarlyData,
    /// A request reached the per-connection bound: decided on what was
    /// read.
    RequestBound,
    /// The buffer pool ran out: decided on what was read.
    PoolBound,
    /// `HTTP/1.1 100 Continue` sent by the appliance.
    ContinueSent,
    /// No complete request within the request timeout: client reset.
    RequestTimeout,
    /// The client closed or reset before its request was decided.
    ClientAborted,
    /// A request decided and the instance's SYN sent.
    Decided,
    /// No instance could take a decided request, or the flow table had
    /// no room for it (then also counted as the flow event `table_full`):
    /// client reset.
    NoInstance,
    /// The instance's SYN-ACK came: replay under way.
    Connected,
    /// The instance reset the connection attempt: client reset.
    InstanceRefused,
    /// The SYN or the replay retransmitted.
    Retransmit,
    /// The SYN or the replay unanswered after every try: both reset.
    RetransmitExhausted,
    /// The replay fully acknowledged: the connection is spliced.
    Spliced,
    /// A later request on a spliced keep-alive connection read.
    KeepAliveRequest,
    /// A spliced connection's client bytes came after a gap: its later
    /// requests are no longer read (they keep the last class).
    ReadingLost,
    /// A spliced connection closed (FIN both ways or RST).
    Closed,
    /// A spliced connection forgotten after being idle.
    Expired,
    /// A segment to send found the transmit queue full (lost; TCP
    /// retransmission recovers).
    TxQueueFull,
    /// Segments the appliance built and handed out to send.
    Sent,
}

impl SpliceEvent {
    pub const ALL: [SpliceEvent; 26] = [
        SpliceEvent::SynAnswered,
        SpliceEvent::Accepted,
        SpliceEvent::CookieInvalid,
        SpliceEvent::TableFull,
        SpliceEvent::Buffered,
        SpliceEvent::Duplicate,
        SpliceEvent::OutOfOrder,
        SpliceEvent::EarlyData,
        SpliceEvent::RequestBound,
        SpliceEvent::PoolBound,
        SpliceEvent::ContinueSent,
        SpliceEvent::RequestTimeout,
        SpliceEvent::ClientAborted,
        SpliceEvent::Decided,
        SpliceEvent::NoInstance,
        SpliceEvent::Connected,
        SpliceEvent::InstanceRefused,
        SpliceEvent::Retransmit,
        SpliceEvent::RetransmitExhausted,
        SpliceEvent::Spliced,
        SpliceEvent::KeepAliveRequest,
        SpliceEvent::ReadingLost,
        SpliceEvent::Closed,
        SpliceEvent::Expired,
        SpliceEvent::TxQueueFull,
        SpliceEvent::Sent,
    ];
    pub const fn name(self) -> &'static str {
        match self {
            SpliceEvent::SynAnswered => "syn_answered",
            SpliceEvent::Accepted => "accepted",
            SpliceEvent::CookieInvalid => "cookie_invalid",
            SpliceEvent::TableFull => "table_full",
            SpliceEvent::Buffered => "buffered",
            SpliceEvent::Duplicate => "duplicate",
            SpliceEvent::OutOfOrder => "out_of_order",
            SpliceEvent::EarlyData => "early_data",
            SpliceEvent::RequestBound => "request_bound",
            SpliceEvent::PoolBound => "pool_bound",
            SpliceEvent::ContinueSent => "continue_sent",
            SpliceEvent::RequestTimeout => "request_timeout",
            SpliceEvent::ClientAborted => "client_aborted",
            SpliceEvent::Decided => "decided",
            SpliceEvent::NoInstance => "no_instance",
            SpliceEvent::Connected => "connected",
            SpliceEvent::InstanceRefused => "instance_refused",
            SpliceEvent::Retransmit => "retransmit",
            SpliceEvent::RetransmitExhausted => "retransmit_exhausted",
            SpliceEvent::Spliced => "spliced",
            SpliceEvent::KeepAliveRequest => "keepalive_request",
            SpliceEvent::ReadingLost => "reading_lost",
            SpliceEvent::Closed => "closed",
            SpliceEvent::Expired => "expired",
            SpliceEvent::TxQueueFull => "tx_queue_full",
            SpliceEvent::Sent => "sent",
        }
    }
}

pub const REASONS: [ChoiceReason; 6] = [
    ChoiceReason::LowestTtft,
    ChoiceReason::LowestCompletion,
    ChoiceReason::AllOverloaded,
    ChoiceReason::LeastQueue,
    ChoiceReason::RoundRobin,
    ChoiceReason::LlmD,
];
pub const NO_CHOICE: [NoChoice; 3] = [
    NoChoice::NoCapableInstance,
    NoChoice::NoLiveInstance,
    NoChoice::UnknownService,
];
pub const REJECTIONS: [&str; 4] = ["capability", "stale_node", "dead_path", "overloaded"];

/// Predicted against observed latency of the requests measured in one
/// class, or on one instance (µs sums).
#[derive(Default)]
pub struct LatencySums {
    pub measured: AtomicU64,
    pub predicted_ttft_us: AtomicU64,
    pub observed_ttft_us: AtomicU64,
    pub predicted_completion_us: AtomicU64,
    pub observed_completion_us: AtomicU64,
    /// Sum of |predicted − observed| TTFT, µs.
    pub abs_error_ttft_us: AtomicU64,
}

impl LatencySums {
    fn add(&self, predicted: &Predicted, measured: &Measured) {
        let us = |v: f64| v.max(0.0).min(u64::MAX as f64 / 2.0) as u64;
        bump(&self.measured, 1);
        bump(&self.predicted_ttft_us, us(predicted.ttft_us));
        bump(&self.observed_ttft_us, us(measured.ttft_us));
        bump(&self.predicted_completion_us, us(predicted.completion_us));
        bump(&self.observed_completion_us, us(measured.completion_us));
        bump(
            &self.abs_error_ttft_us,
            us((predicted.ttft_us - measured.ttft_us).abs()),
        );
    }

    /// Adds `other`'s sums to these (readers only).
    fn accumulate(&self, other: &LatencySums) {
        for (a, b) in [
            (&self.measured, &other.measured),
            (&self.predicted_ttft_us, &other.predicted_ttft_us),
            (&self.observed_ttft_us, &other.observed_ttft_us),
            (
                &self.predicted_completion_us,
                &other.predicted_completion_us,
            ),
            (&self.observed_completion_us, &other.observed_completion_us),
            (&self.abs_error_ttft_us, &other.abs_error_ttft_us),
        ] {
            bump(a, b.load(Relaxed));
        }
    }
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
    /// Node reports with prefix-cache counters this engine applied.
    pub prefix_cache_reports: AtomicU64,
    /// The prefix record's hit-ratio scale after the last of them (f64
    /// bits; meaningful once `prefix_cache_reports` > 0, 1 before).
    pub prefix_cache_scale: AtomicU64,
}

/// Everything the steering worker counts. Line-aligned, as
/// `LcoreCounters` is: the workers' blocks are allocated one after
/// another, and no line may hold two workers' counters.
#[repr(align(64))]
pub struct SteerCounters {
    pub features: [AtomicU64; 5],
    /// Malformed token-feature TLVs by their code
    /// ([`classifier::TlvMalformed::CODES`]); they add up to the
    /// `tlv_malformed` feature source.
    pub tlv_malformed: [AtomicU64; classifier::TlvMalformed::CODES.len()],
    pub flows: [AtomicU64; 8],
    pub fragments: [AtomicU64; FragmentEvent::ALL.len()],
    pub splice: [AtomicU64; SpliceEvent::ALL.len()],
    /// Spliced connections held now (a gauge).
    pub splice_connections: AtomicU64,
    /// Request-buffer bytes in use now (a gauge).
    pub splice_buffer_bytes: AtomicU64,
    pub reasons: [AtomicU64; REASONS.len()],
    pub no_choice: [AtomicU64; 3],
    pub rejections: [AtomicU64; 4],
    /// `chosen[instance * TrafficClass::COUNT + class]`: new flows.
    pub chosen: Vec<AtomicU64>,
    pub class_latency: [LatencySums; TrafficClass::COUNT],
    /// The same sums per instance, in table order: how each instance's
    /// model predicts against what it delivers.
    pub instance_latency: Vec<LatencySums>,
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
            tlv_malformed: Default::default(),
            flows: Default::default(),
            fragments: Default::default(),
            splice: Default::default(),
            splice_connections: AtomicU64::new(0),
            splice_buffer_bytes: AtomicU64::new(0),
            reasons: Default::default(),
            no_choice: Default::default(),
            rejections: Default::default(),
            chosen: (0..instances * TrafficClass::COUNT)
                .map(|_| AtomicU64::new(0))
                .collect(),
            class_latency: Default::default(),
            instance_latency: (0..instances).map(|_| LatencySums::default()).collect(),
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

    /// A malformed token-feature TLV, treated as none and counted as the
    /// `tlv_malformed` source and under its code.
    #[inline]
    pub fn tlv_malformed(&self, why: classifier::TlvMalformed) {
        self.feature(FeatureSource::TlvMalformed);
        if let Some(c) = self.tlv_malformed.get(why.index()) {
            bump(c, 1);
        }
    }

    #[inline]
    pub fn flow(&self, e: FlowEvent) {
        bump(&self.flows[e as usize], 1);
    }

    #[inline]
    pub fn flows_n(&self, e: FlowEvent, n: u64) {
        if n > 0 {
            bump(&self.flows[e as usize], n);
        }
    }

    #[inline]
    pub fn fragment(&self, e: FragmentEvent) {
        bump(&self.fragments[e as usize], 1);
    }

    #[inline]
    pub fn fragments_n(&self, e: FragmentEvent, n: u64) {
        if n > 0 {
            bump(&self.fragments[e as usize], n);
        }
    }

    #[inline]
    pub fn splice(&self, e: SpliceEvent) {
        bump(&self.splice[e as usize], 1);
    }

    /// The splicer's gauges: connections held, buffer bytes in use.
    pub fn splice_gauges(&self, connections: u64, buffer_bytes: u64) {
        self.splice_connections.store(connections, Relaxed);
        self.splice_buffer_bytes.store(buffer_bytes, Relaxed);
    }

    /// Publishes an instance's model after it learnt (f64 bits).
    pub fn publish_model(&self, instance: usize, model: &InstanceModel) {
        let Some(g) = self.models.get(instance) else {
            return;
        };
        let t = model.ttft_error();
        let c = model.completion_error();
        g.observations.store(model.samples(), Relaxed);
        g.ttft_mae_us.store(t.mae.to_bits(), Relaxed);
        g.ttft_bias_us.store(t.bias.to_bits(), Relaxed);
        g.completion_mae_us.store(c.mae.to_bits(), Relaxed);
        for (slot, v) in g.coefficients.iter().zip(model.ttft_coefficients()) {
            slot.store(v.to_bits(), Relaxed);
        }
        g.decode_us_per_token
            .store(model.decode_us_per_token().to_bits(), Relaxed);
    }

    /// A node report with prefix-cache counters was applied to
    /// `instance`'s record, which now scales its expected hits by `scale`.
    pub fn prefix_cache_report(&self, instance: usize, scale: f64) {
        if let Some(g) = self.models.get(instance) {
            bump(&g.prefix_cache_reports, 1);
            g.prefix_cache_scale.store(scale.to_bits(), Relaxed);
        }
    }

    /// Adds one request measured on `instance` to its class's and its
    /// instance's predicted-against-observed sums.
    pub fn measured(
        &self,
        instance: usize,
        class: TrafficClass,
        predicted: &Predicted,
        measured: &Measured,
    ) {
        for sums in [
            self.class_latency.get(class as usize),
            self.instance_latency.get(instance),
        ]
        .into_iter()
        .flatten()
        {
            sums.add(predicted, measured);
        }
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

    pub fn rejections(&self, r: &Rejections) {
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
}

impl SteerCounters {
    /// One block holding the totals of several engines' blocks, for the
    /// readers (never on the fast path). Counters add up. Each engine
    /// learns its own latency models from the flows it owns, so a model's
    /// observations add up, its errors are averaged weighted by
    /// observations, and its coefficients are those of the engine that has
    /// seen the most.
    pub fn sum<'a>(parts: impl IntoIterator<Item = &'a SteerCounters> + Clone) -> SteerCounters {
        let first = parts.clone().into_iter().next();
        let instances = first.map_or(0, |c| c.instances);
        let ports = first.map_or(0, |c| c.band_drops.len() / TrafficClass::COUNT);
        let total = SteerCounters::new(instances, ports);
        let add = |into: &[AtomicU64], from: &[AtomicU64]| {
            for (a, b) in into.iter().zip(from) {
                bump(a, b.load(Relaxed));
            }
        };
        for part in parts.clone() {
            add(&total.features, &part.features);
            add(&total.tlv_malformed, &part.tlv_malformed);
            add(&total.flows, &part.flows);
            add(&total.fragments, &part.fragments);
            add(&total.splice, &part.splice);
            bump(
                &total.splice_connections,
                part.splice_connections.load(Relaxed),
            );
            bump(
                &total.splice_buffer_bytes,
                part.splice_buffer_bytes.load(Relaxed),
            );
            add(&total.reasons, &part.reasons);
            add(&total.no_choice, &part.no_choice);
            add(&total.rejections, &part.rejections);
            add(&total.chosen, &part.chosen);
            add(&total.band_drops, &part.band_drops);
            for (t, l) in total
                .class_latency
                .iter()
                .zip(&part.class_latency)
                .chain(total.instance_latency.iter().zip(&part.instance_latency))
            {
                t.accumulate(l);
            }
        }
        let f = |a: &AtomicU64| f64::from_bits(a.load(Relaxed));
        for (i, m) in total.models.iter().enumerate() {
            let gauges: Vec<&ModelGauges> = parts
                .clone()
                .into_iter()
                .filter_map(|p| p.models.get(i))
                .collect();
            let n: u64 = gauges.iter().map(|g| g.observations.load(Relaxed)).sum();
            m.observations.store(n, Relaxed);
            let weighted = |field: fn(&ModelGauges) -> &AtomicU64| {
                if n == 0 {
                    return 0.0;
                }
                gauges
                    .iter()
                    .map(|g| f(field(g)) * g.observations.load(Relaxed) as f64)
                    .sum::<f64>()
                    / n as f64
            };
            m.ttft_mae_us
                .store(weighted(|g| &g.ttft_mae_us).to_bits(), Relaxed);
            m.ttft_bias_us
                .store(weighted(|g| &g.ttft_bias_us).to_bits(), Relaxed);
            m.completion_mae_us
                .store(weighted(|g| &g.completion_mae_us).to_bits(), Relaxed);
            // Every engine corrects its own record from the same node
            // reports: the reports add up, the scales are averaged over
            // the engines that applied any.
            let corrected: Vec<&&ModelGauges> = gauges
                .iter()
                .filter(|g| g.prefix_cache_reports.load(Relaxed) > 0)
                .collect();
            let reports: u64 = corrected
                .iter()
                .map(|g| g.prefix_cache_reports.load(Relaxed))
                .sum();
            m.prefix_cache_reports.store(reports, Relaxed);
            if !corrected.is_empty() {
                let mean = corrected
                    .iter()
                    .map(|g| f(&g.prefix_cache_scale))
                    .sum::<f64>()
                    / corrected.len() as f64;
                m.prefix_cache_scale.store(mean.to_bits(), Relaxed);
            }
            if let Some(best) = gauges.iter().max_by_key(|g| g.observations.load(Relaxed)) {
                for (a, b) in m.coefficients.iter().zip(&best.coefficients) {
                    a.store(b.load(Relaxed), Relaxed);
                }
                m.decode_us_per_token
                    .store(best.decode_us_per_token.load(Relaxed), Relaxed);
            }
        }
        SteerCounters {
            decision_ns: SampleRing::merged(parts.clone().into_iter().map(|p| &p.decision_ns)),
            sojourn_us: core::array::from_fn(|c| {
                SampleRing::merged(
                    parts
                        .clone()
                        .into_iter()
                        .filter_map(|p| p.sojourn_us.get(c)),
                )
            }),
            ..total
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn predicted(ttft_us: f64) -> Predicted {
        Predicted {
            ttft_us,
            completion_us: 2.0 * ttft_us,
            ..Predicted::default()
        }
    }

    fn measured(ttft_us: f64) -> Measured {
        Measured {
            ttft_us,
            completion_us: 3.0 * ttft_us,
            response_packets: 1,
        }
    }

    #[test]
    fn measured_requests_add_to_their_class_and_instance_and_sum_over_workers() {
        let (a, b) = (SteerCounters::new(2, 1), SteerCounters::new(2, 1));
        a.measured(1, TrafficClass::ALL[0], &predicted(100.0), &measured(150.0));
        b.measured(1, TrafficClass::ALL[0], &predicted(300.0), &measured(200.0));
        b.measured(0, TrafficClass::ALL[1], &predicted(50.0), &measured(50.0));
        // Out of range: ignored, not a panic.
        b.measured(7, TrafficClass::ALL[1], &predicted(1.0), &measured(1.0));
        let total = SteerCounters::sum([&a, &b]);
        let read = |l: &LatencySums| {
            (
                l.measured.load(Relaxed),
                l.predicted_ttft_us.load(Relaxed),
                l.observed_ttft_us.load(Relaxed),
                l.abs_error_ttft_us.load(Relaxed),
            )
        };
        assert_eq!(read(&total.instance_latency[1]), (2, 400, 350, 150));
        assert_eq!(read(&total.instance_latency[0]), (1, 50, 50, 0));
        assert_eq!(read(&total.class_latency[0]), (2, 400, 350, 150));
        assert_eq!(read(&total.class_latency[1]), (2, 51, 51, 0));
    }
}
