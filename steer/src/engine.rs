//! The steering engine: everything token-aware steering decides, as
//! quinn-proto is to quinn. It owns the flow table, the per-instance
//! latency models, the flows steered since each node's last report and the
//! baselines' round-robin turns. It is fed parsed packets (their bytes, for
//! the NAT it applies in place), the control plane's view and the time, and
//! returns a [`Verdict`]: which port and band the packet leaves by, or why
//! it is refused. The data plane's worker applies verdicts to mbufs; the
//! simulator drives the same engine's flow-level half ([`Engine::decide`],
//! [`Engine::learn`]) without packets.
//!
//! ```text
//! request  ──► flow table hit? ──yes──► that flow's instance and path
//!                   │no
//!                   ▼
//!   features: TLV │ HTTP inference │ unknown ──► decide ──► remember ──► DNAT
//!
//! response ──► SNAT back to the VIP ──► its flow: time the answer, learn
//! ```
//!
//! One engine per worker lcore, so nothing in it is shared or locked; the
//! flows a worker owns are those whose client-side key hashes to it
//! ([`Engine::owner`]), so both directions of a flow meet the same engine.
//! Everything is allocated in [`Engine::new`]; per packet nothing
//! allocates and nothing panics.

use std::net::IpAddr;
use std::sync::Arc;

use classifier::tcp::{TcpFlags, TcpPacket};
use classifier::token_feature::decode as decode_feature_id;
use classifier::{
    IpProtocol, ParsedPacket, TaskType, TlvLookup, TlvMalformed, TokenFeatures, Urgency,
};
use control::DataplaneView;
use predictor::InstanceModel;

use crate::decision::{Choice, Decider, NoChoice, Policy, Predicted, Rejections};
use crate::feedback::{Measured, Phase};
use crate::flow_table::{ClientKey, FlowEntry, FlowTable, InsertError};
use crate::infer::{infer_http, InferLimits, Inference};
use crate::rewrite::{rewrite_destination, rewrite_source};
use crate::service::{ServiceTable, MAX_SERVICES};
use crate::stats::{FeatureSource, FlowEvent, SteerCounters};
use crate::{SinceReport, TrafficClass};

/// Flows the ageing sweep visits per [`Engine::expire`] call.
pub const EXPIRE_BUDGET: usize = 64;

/// The egress band of what no flow or class applies to (non-service
/// traffic, responses without a flow, overflow).
pub const OTHER_BAND: u8 = TrafficClass::Other as u8;

/// How an engine behaves; the same for every worker.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// How new flows choose an instance and path.
    pub policy: Policy,
    /// Service ports on which a request without a TLV has its features
    /// inferred from its HTTP payload.
    pub infer_http_ports: Vec<u16>,
    /// How much of a payload the inference reads.
    pub infer_limits: InferLimits,
    /// Flows the affinity table holds.
    pub flow_table_size: usize,
    /// A flow idle this long is forgotten (and its answer measured).
    pub flow_idle_ns: u64,
    /// Keys the flow table's hash. Every engine of one appliance uses the
    /// same seed, so all agree on which owns a flow.
    pub seed: u64,
}

/// A packet's client-side flow key, its hash, and the service (request) or
/// instance (response) it belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Keyed {
    /// The client side of the flow, the same from both directions.
    pub key: ClientKey,
    /// The key's hash (which worker owns it, and where the table keeps it).
    pub hash: u32,
    /// Service index for a request, instance index for a response.
    pub owner: u8,
}

/// Why a packet was refused. The frame may be dropped; state is unchanged
/// except for what the counters say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No live, capable instance can serve the request.
    NoInstance,
    /// The NAT rewrite was refused (see [`crate::rewrite::RewriteError`]).
    RewriteFailed,
}

/// What to do with a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not steering's business (no flow, no service): leave by the ingress
    /// port's default route unchanged, in the `other` band.
    Pass,
    /// Steered (and rewritten in place): leave by `port`, or by the
    /// default route when `None` (responses, towards the agents), in
    /// egress band `band` (a [`TrafficClass`] index).
    Send {
        /// Egress port, or `None` for the ingress port's default.
        port: Option<u16>,
        /// Egress band.
        band: u8,
    },
    /// Refused.
    Drop(Refusal),
}

/// Features assumed for a request nobody described.
const UNKNOWN_FEATURES: TokenFeatures = TokenFeatures {
    prompt_tokens: 0,
    output_tokens: 0,
    task: TaskType::Chat,
    urgency: Urgency::Normal,
    explicit_urgency: false,
};

/// A cycle counter and its period, for timing decisions (the data plane
/// passes the TSC); without one, decisions are not timed.
pub type CostClock = (fn() -> u64, f64);

/// One worker's steering state.
pub struct Engine {
    table: Arc<ServiceTable>,
    config: EngineConfig,
    flows: FlowTable,
    models: Vec<InstanceModel>,
    since_report: SinceReport,
    /// Decisions made per service: the baselines' round-robin turn.
    turns: [u32; MAX_SERVICES],
    counters: Arc<SteerCounters>,
    cost_clock: Option<CostClock>,
}

impl Engine {
    /// An engine over `table`, learning from `models` (one per instance, as
    /// [`crate::feedback::instance_models`] builds them) and counting into
    /// `counters`, which only this engine writes.
    pub fn new(
        table: Arc<ServiceTable>,
        config: EngineConfig,
        models: Vec<InstanceModel>,
        counters: Arc<SteerCounters>,
    ) -> Engine {
        Engine {
            flows: FlowTable::new(config.flow_table_size, config.seed),
            table,
            config,
            models,
            since_report: SinceReport::default(),
            turns: [0; MAX_SERVICES],
            counters,
            cost_clock: None,
        }
    }

    /// Times every decision with `clock` into the counters' `decision_ns`.
    pub fn with_cost_clock(mut self, clock: CostClock) -> Engine {
        self.cost_clock = Some(clock);
        self
    }

    /// The counters this engine writes.
    pub fn counters(&self) -> &SteerCounters {
        &self.counters
    }

    /// Each instance's latency model, as learnt so far.
    pub fn models(&self) -> &[InstanceModel] {
        &self.models
    }

    /// Flows held.
    pub fn flows(&self) -> usize {
        self.flows.len()
    }

    /// Which of `workers` owns the flow with this hash: the high bits, so
    /// the choice is independent of the table slot (the low bits).
    #[inline]
    pub fn owner(hash: u32, workers: usize) -> usize {
        flowtab::owner(hash, workers)
    }

    /// The flow key of a parsed packet and, for a request (`from_agents`),
    /// its service, for a response its instance; `None` for what steering
    /// does not handle (fragments, anything but TCP and UDP, and what is
    /// neither to a service nor from an instance).
    #[inline]
    pub fn key_of(&self, p: &ParsedPacket, from_agents: bool) -> Option<Keyed> {
        let flow = p.flow.filter(|_| !p.is_fragment())?;
        if flow.protocol != IpProtocol::TCP && flow.protocol != IpProtocol::UDP {
            return None;
        }
        let (key, owner) = if from_agents {
            let service = self.table.service_for(flow.dst_ip(), flow.dst_port)?;
            let key = ClientKey {
                addr: flow.src_addr,
                port: flow.src_port,
                service_port: flow.dst_port,
                protocol: flow.protocol.0,
            };
            (key, service)
        } else {
            let instance = self.table.instance_for(flow.src_ip(), flow.src_port)?;
            let key = ClientKey {
                addr: flow.dst_addr,
                port: flow.dst_port,
                service_port: flow.src_port,
                protocol: flow.protocol.0,
            };
            (key, instance)
        };
        Some(Keyed {
            key,
            hash: self.flows.hash(&key),
            owner,
        })
    }

    /// Touches the table lines a lookup of `hash` will read (see
    /// [`FlowTable::warm`]).
    #[inline]
    pub fn warm(&self, hash: u32) -> u32 {
        self.flows.warm(hash)
    }

    /// A request from the agents: its flow's choice, or a new decision;
    /// the frame is rewritten towards the chosen instance.
    pub fn request(
        &mut self,
        frame: &mut [u8],
        p: &ParsedPacket,
        keyed: Keyed,
        view: &DataplaneView,
        now_ns: u64,
    ) -> Verdict {
        let Keyed {
            key,
            hash,
            owner: service,
        } = keyed;
        let payload_len = p.payload.len;
        let short_tokens = view.thresholds().short_task_tokens;
        let flags = tcp_flags(p, frame);
        let ends = flags.contains(TcpFlags::FIN) || flags.contains(TcpFlags::RST);
        if flags.contains(TcpFlags::SYN) && !flags.contains(TcpFlags::ACK) {
            // A client port reused after its previous connection closed:
            // a new flow, decided on today's state.
            if self
                .flows
                .get_mut_hashed(&key, hash)
                .is_some_and(|e| e.closed)
            {
                self.flows.remove(&key);
            }
        }
        let mut finished = None;
        let hit = match self.flows.touch_hashed(&key, hash, now_ns) {
            Some(entry) if entry.service == service => {
                entry.closed |= ends;
                if entry.class == TrafficClass::Other && payload_len > 0 {
                    // A TLV-less TCP flow was decided at its SYN; its
                    // first payload tells what it is, for the egress band
                    // and the latency model (the instance is already set:
                    // the connection is established with it).
                    if let Some(f) = infer(&self.config, &self.counters, p, frame, key.service_port)
                    {
                        entry.features = f;
                        entry.class = TrafficClass::of(&f, short_tokens);
                    }
                }
                if payload_len > 0 {
                    if let Some(measured) = entry.timing.on_request_payload(now_ns) {
                        finished = Some((*entry, measured));
                    }
                }
                Some(Ok((entry.instance, entry.path, entry.class as u8)))
            }
            Some(_) => Some(Err(())),
            None => None,
        };
        if let Some((e, measured)) = finished {
            self.learn_flow(&e, &measured);
        }
        let (instance, path, band) = match hit {
            Some(Ok(choice)) => choice,
            Some(Err(())) => {
                self.counters.flow(FlowEvent::KeyConflict);
                match self.overflow_choice(service) {
                    Some((i, p)) => (i, p, OTHER_BAND),
                    None => return Verdict::Drop(Refusal::NoInstance),
                }
            }
            None => match self.new_flow(p, frame, key, service, view, now_ns) {
                Some(choice) => choice,
                None => return Verdict::Drop(Refusal::NoInstance),
            },
        };
        let Some((mac, ip, port)) = self.target(instance, path) else {
            return Verdict::Drop(Refusal::NoInstance);
        };
        if rewrite_destination(frame, p, mac, ip).is_err() {
            return Verdict::Drop(Refusal::RewriteFailed);
        }
        Verdict::Send {
            port: Some(port),
            band,
        }
    }

    /// A new flow's features, decision and table entry; `None` when no
    /// instance can take it.
    fn new_flow(
        &mut self,
        p: &ParsedPacket,
        frame: &[u8],
        key: ClientKey,
        service: u8,
        view: &DataplaneView,
        now_ns: u64,
    ) -> Option<(u8, u8, u8)> {
        let short_tokens = view.thresholds().short_task_tokens;
        let (features, class) =
            match features(&self.config, &self.counters, p, frame, key.service_port) {
                Some(f) => (f, TrafficClass::of(&f, short_tokens)),
                None => (UNKNOWN_FEATURES, TrafficClass::Other),
            };
        let choice = self.decide(service, &features, class, view, now_ns).ok()?;
        let mut entry = FlowEntry::new(
            service,
            choice.instance,
            choice.path,
            class,
            features,
            choice.predicted,
            now_ns,
        );
        if p.payload.len > 0 {
            entry.timing.on_request_payload(now_ns);
        }
        match self.flows.insert(key, entry, now_ns) {
            Ok(_) => {
                self.counters.flow(FlowEvent::New);
                self.counters.chosen(choice.instance, class);
                Some((choice.instance, choice.path, class as u8))
            }
            Err(InsertError::Full | InsertError::Exists) => {
                // Stateless from here on: every packet of the flow takes
                // the same overflow instance, so the connection still
                // works; it is only neither steered nor measured.
                self.counters.flow(FlowEvent::TableFull);
                let (i, path) = self.overflow_choice(service)?;
                self.counters.chosen(i, TrafficClass::Other);
                Some((i, path, OTHER_BAND))
            }
        }
    }

    /// Decides an instance and path for a new flow of `service` with these
    /// features, under the configured policy, counting the outcome. The
    /// flow-level entry point: the packet path calls it for a new flow, the
    /// simulator for every request.
    pub fn decide(
        &mut self,
        service: u8,
        features: &TokenFeatures,
        class: TrafficClass,
        view: &DataplaneView,
        now_ns: u64,
    ) -> Result<Choice, NoChoice> {
        let started = self.cost_clock.map(|(clock, _)| clock());
        let mut rejections = Rejections::default();
        self.since_report.refresh(&self.table, view, service);
        let turn = self.turns.get_mut(usize::from(service));
        let decided = Decider {
            table: &self.table,
            view,
            models: &self.models,
            now_ns,
            policy: self.config.policy,
            turn: turn.as_deref().copied().unwrap_or(0),
            unreported: self.since_report.counts(),
        }
        .decide(service, features, class, &mut rejections);
        if let Some(t) = turn {
            *t = t.wrapping_add(1);
        }
        if let Ok(c) = &decided {
            self.since_report.steered(c.instance);
        }
        if let (Some(start), Some((clock, ns_per_cycle))) = (started, self.cost_clock) {
            let ns = clock().wrapping_sub(start) as f64 * ns_per_cycle;
            self.counters
                .decision_ns
                .record(ns.min(f64::from(u32::MAX)) as u32);
        }
        self.counters.rejections(&rejections);
        match &decided {
            Ok(c) => self.counters.reason(c.reason),
            Err(no) => self.counters.no_choice(*no),
        }
        decided
    }

    /// The service's overflow instance and its first path.
    fn overflow_choice(&self, service: u8) -> Option<(u8, u8)> {
        let s = self.table.services().get(usize::from(service))?;
        let inst = self.table.instances().get(usize::from(s.overflow))?;
        Some((s.overflow, *inst.path_indices().first()?))
    }

    /// MAC, address and egress port for an instance over a path.
    fn target(&self, instance: u8, path: u8) -> Option<([u8; 6], IpAddr, u16)> {
        let inst = self.table.instances().get(usize::from(instance))?;
        let path = self.table.paths().get(usize::from(path))?;
        Some((inst.next_hop_mac(path), inst.spec.ip, path.spec.egress_port))
    }

    /// A packet from an instance: translated back to its service's VIP,
    /// and its flow's answer timed.
    pub fn response(
        &mut self,
        frame: &mut [u8],
        p: &ParsedPacket,
        keyed: Keyed,
        now_ns: u64,
    ) -> Verdict {
        let Keyed {
            key,
            hash,
            owner: instance,
        } = keyed;
        let table = &self.table;
        let Some(vip) = table
            .instances()
            .get(usize::from(instance))
            .and_then(|i| table.services().get(usize::from(i.service)))
            .map(|s| s.spec.vip)
        else {
            return Verdict::Pass;
        };
        if rewrite_source(frame, p, None, vip).is_err() {
            return Verdict::Drop(Refusal::RewriteFailed);
        }
        self.counters.flow(FlowEvent::ResponseTranslated);
        let flags = tcp_flags(p, frame);
        let ends = flags.contains(TcpFlags::FIN) || flags.contains(TcpFlags::RST);
        let mut finished = None;
        let band = match self.flows.touch_hashed(&key, hash, now_ns) {
            Some(entry) => {
                if p.payload.len > 0 {
                    entry.timing.on_response_payload(now_ns);
                }
                entry.closed |= ends;
                if ends {
                    if let Some(measured) = entry.timing.on_end() {
                        finished = Some((*entry, measured));
                    }
                }
                entry.class as u8
            }
            None => {
                self.counters.flow(FlowEvent::ResponseWithoutFlow);
                OTHER_BAND
            }
        };
        if let Some((e, measured)) = finished {
            self.learn_flow(&e, &measured);
        }
        Verdict::Send { port: None, band }
    }

    fn learn_flow(&mut self, e: &FlowEntry, measured: &Measured) {
        self.learn(e.instance, e.class, &e.features, &e.predicted, measured);
    }

    /// Feeds one measured request to its instance's model and the class
    /// statistics: the flow-level entry point of the feedback loop.
    pub fn learn(
        &mut self,
        instance: u8,
        class: TrafficClass,
        features: &TokenFeatures,
        predicted: &Predicted,
        measured: &Measured,
    ) {
        self.counters.flow(FlowEvent::Measured);
        let obs = crate::feedback::observation(features, predicted, measured);
        if let Some(model) = self.models.get_mut(usize::from(instance)) {
            model.observe(&obs);
            self.counters.publish_model(usize::from(instance), model);
        }
        self.counters.class_measured(class, predicted, measured);
    }

    /// Ages out idle flows, at most [`EXPIRE_BUDGET`] per call, and learns
    /// from the answers they were still streaming.
    pub fn expire(&mut self, now_ns: u64) {
        let mut finished: [Option<(FlowEntry, Measured)>; EXPIRE_BUDGET] = [None; EXPIRE_BUDGET];
        let mut n = 0usize;
        let mut unanswered = 0u64;
        let removed = self
            .flows
            .expire(now_ns, self.config.flow_idle_ns, EXPIRE_BUDGET, |_, e| {
                let mut timing = e.timing;
                match timing.on_end() {
                    Some(m) => {
                        if let Some(slot) = finished.get_mut(n) {
                            *slot = Some((*e, m));
                            n += 1;
                        }
                    }
                    None if timing.phase == Phase::Requesting => unanswered += 1,
                    None => {}
                }
            });
        self.counters.flows_n(FlowEvent::Expired, removed as u64);
        self.counters.flows_n(FlowEvent::Unanswered, unanswered);
        for (e, m) in finished.iter().take(n).flatten() {
            self.learn_flow(e, m);
        }
    }
}

/// A new flow's features: a valid TLV, else inference where configured.
fn features(
    config: &EngineConfig,
    counters: &SteerCounters,
    p: &ParsedPacket,
    frame: &[u8],
    service_port: u16,
) -> Option<TokenFeatures> {
    match classifier::find_token_feature(frame, p) {
        TlvLookup::Present { id, .. } => match decode_feature_id(id) {
            Ok(f) => {
                counters.feature(FeatureSource::Tlv);
                return Some(f);
            }
            Err(e) => counters.tlv_malformed(TlvMalformed::of_feature_error(e)),
        },
        TlvLookup::Malformed(why) => counters.tlv_malformed(why),
        TlvLookup::Absent => {}
    }
    if p.payload.len == 0 {
        // A TCP SYN: nothing to infer from yet.
        counters.feature(FeatureSource::Unknown);
        return None;
    }
    let inferred = infer(config, counters, p, frame, service_port);
    if inferred.is_none() {
        counters.feature(FeatureSource::Unknown);
    }
    inferred
}

/// Bounded inference from a payload, on configured ports.
fn infer(
    config: &EngineConfig,
    counters: &SteerCounters,
    p: &ParsedPacket,
    frame: &[u8],
    service_port: u16,
) -> Option<TokenFeatures> {
    if !config.infer_http_ports.contains(&service_port) {
        return None;
    }
    match infer_http(p.payload(frame), &config.infer_limits) {
        Inference::Inferred(r) => {
            counters.feature(FeatureSource::InferredHttp);
            Some(r.features)
        }
        _ => {
            counters.feature(FeatureSource::InferFailed);
            None
        }
    }
}

/// A TCP segment's flags (none for anything else).
fn tcp_flags(p: &ParsedPacket, frame: &[u8]) -> TcpFlags {
    if p.ip_protocol != Some(IpProtocol::TCP) {
        return TcpFlags::default();
    }
    TcpPacket::new_checked(p.l4(frame)).map_or(TcpFlags::default(), |t| t.flags())
}
