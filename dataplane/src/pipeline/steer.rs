//! The `steer` pipeline: token-aware steering of agents' LLM requests.
//!
//! Per packet, on the worker lcore:
//!
//! ```text
//! agent port ──► parse ──► service VIP? ──no──► pair's peer (as `forward`)
//!                            │yes
//!                            ▼
//!                 flow table hit? ──yes──► that flow's instance and path
//!                            │no
//!                            ▼
//!        features: TLV │ HTTP inference │ unknown
//!                            ▼
//!        decide (steer::Decider) ──► remember the flow ──► DNAT to instance
//!                            ▼
//!        egress scheduler of the path's port (band = traffic class)
//!
//! compute port ──► from an instance? ──► SNAT back to the VIP, time the
//!                                         answer, scheduler of the agent port
//! ```
//!
//! Every egress port has a [`sched::Scheduler`]: the interactive class is a
//! strict band served first, the bulk classes share by DRR with weights
//! from the config or a POLICY's class weights. Packets wait there only
//! when the port is busy (its TX ring refuses, or it is shaped to a line
//! rate), which is exactly when short work must not queue behind long.
//!
//! The worker owns the flow table, the per-instance latency models and the
//! schedulers, so none of them needs a lock; it is therefore the only
//! worker (`pipeline = "steer"` runs on one worker lcore, so that a flow's
//! responses, which RSS may hash to another queue, meet its table).
//! Allocation happens once, in [`SteerWorker::new`]; per packet there is
//! none, and nothing panics.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use classifier::ethernet::EthernetError;
use classifier::tcp::{TcpFlags, TcpPacket};
use classifier::token_feature::decode as decode_feature_id;
use classifier::{parse, IpProtocol, ParseError, ParsedPacket, TlvLookup};
use classifier::{TaskType, TokenFeatures, Urgency};
use predictor::InstanceModel;
use sched::Scheduler;
use steer::feedback::Measured;
use steer::infer::{infer_http, InferLimits, Inference};
use steer::rewrite::{rewrite_destination, rewrite_source};
use steer::{
    ClientKey, Decider, FlowEntry, FlowTable, InsertError, Rejections, ServiceTable, TrafficClass,
};

use super::egress::{count_drop, send_pending, Shaper};
use super::steer_counters::{FeatureSource, FlowEvent, SteerCounters};
use super::{QueueRoute, WorkerConf};
use crate::control_plane::PublishedView;
use crate::dpdk::{rdtsc, Mbuf, MbufBurst, MAX_BURST, MAX_PORTS};
use crate::stats::{bump, Decision, DropReason, LcoreCounters};
use crate::steer_config::SteerConfig;

/// What every steering worker shares (read-only) with the runtime.
pub struct SteerShared {
    pub config: SteerConfig,
    pub table: ServiceTable,
    pub counters: Arc<SteerCounters>,
    pub tsc_hz: u64,
    /// Each instance's latency model as configured; the worker learns on
    /// its own copy.
    pub models: Vec<InstanceModel>,
    /// Keys the flow table's hash, so agents cannot choose colliding flows.
    pub seed: u64,
}

/// Flows the ageing sweep visits per round.
const EXPIRE_BUDGET: usize = 64;
/// Time between ageing rounds: 64 entries every 100 µs sweeps a 64 Ki-flow
/// table in about 0.1 s, far finer than any idle timeout, for a cost per
/// packet that rounds to nothing at line rate.
const EXPIRE_EVERY_NS: u64 = 100_000;
/// How many packets ahead to prefetch.
const PREFETCH_AHEAD: usize = 3;
/// Sent when no flow or class applies (non-service traffic, unknown
/// responses).
const OTHER_BAND: usize = TrafficClass::Other as usize;

/// A packet's flow key, its hash, and the service (request) or instance
/// (response) it belongs to.
#[derive(Clone, Copy)]
struct Keyed {
    key: ClientKey,
    hash: u32,
    owner: u8,
}

/// Where a packet goes.
#[derive(Clone, Copy)]
enum Fate {
    Send { port: usize, band: usize },
    Drop(DropReason),
}

/// One egress port's queueing.
struct Egress {
    /// Items: the packet, its enqueue TSC and its class (the band, except
    /// in FIFO mode where every class shares band 0).
    sched: Scheduler<(Mbuf, u64, u8)>,
    /// Dequeued but refused by the TX ring: sent first next time, in order.
    pending: MbufBurst,
    shaper: Option<Shaper>,
}

/// The steering worker's private state.
pub struct SteerWorker<'a> {
    shared: &'a SteerShared,
    counters: &'a SteerCounters,
    lcore: &'a LcoreCounters,
    flows: FlowTable,
    models: Vec<InstanceModel>,
    egress: Vec<Option<Egress>>,
    infer_limits: InferLimits,
    idle_ns: u64,
    /// Control view version whose class weights the schedulers use.
    weights_version: u64,
    ns_per_cycle: f64,
    /// Parse results of the burst being processed.
    parsed: Vec<Result<ParsedPacket, ParseError>>,
    /// Decisions made per service: the baselines' round-robin turn.
    turns: [u32; steer::service::MAX_SERVICES],
    /// Flows steered to each instance since its node last reported.
    since_report: steer::SinceReport,
}

/// Builds the model of each instance from its configured priors; a prior
/// the model refuses is a configuration error, reported before launch.
pub fn instance_models(
    config: &SteerConfig,
    table: &ServiceTable,
) -> Result<Vec<InstanceModel>, String> {
    steer::feedback::instance_models(table, config.queue_wait_us_per_request)
        .map_err(|e| format!("steer: {e}"))
}

impl<'a> SteerWorker<'a> {
    pub fn new(conf: &'a WorkerConf, shared: &'a SteerShared) -> SteerWorker<'a> {
        let cfg = &shared.config;
        let ports = conf.started_ports.len();
        let egress = (0..ports)
            .map(|p| {
                if !conf.started_ports.get(p).copied().unwrap_or(false) {
                    return None;
                }
                let sched_config = steer::egress::band_config(
                    cfg.strict_priority,
                    |c| cfg.class_weight(c),
                    cfg.band_limit_packets,
                );
                let sched = Scheduler::new(&sched_config).ok()?;
                let shaper = cfg
                    .egress
                    .iter()
                    .find(|e| usize::from(e.port) == p)
                    .map(|e| Shaper::new(e.rate_mbps, shared.tsc_hz));
                Some(Egress {
                    sched,
                    pending: MbufBurst::new(),
                    shaper,
                })
            })
            .collect();
        SteerWorker {
            shared,
            counters: &shared.counters,
            lcore: &conf.counters,
            flows: FlowTable::new(cfg.flow_table_size, shared.seed),
            models: shared.models.clone(),
            egress,
            infer_limits: InferLimits {
                max_scan_bytes: cfg.infer_max_scan_bytes,
            },
            idle_ns: cfg.flow_idle_timeout_ms.saturating_mul(1_000_000),
            weights_version: u64::MAX,
            ns_per_cycle: 1e9 / shared.tsc_hz.max(1) as f64,
            turns: [0; steer::service::MAX_SERVICES],
            since_report: steer::SinceReport::default(),
            parsed: vec![
                Err(ParseError::Ethernet(EthernetError::Truncated {
                    available: 0
                }));
                MAX_BURST
            ],
        }
    }

    /// Applies a POLICY's class weights to every port's DRR bands, once per
    /// view version.
    fn apply_class_weights(&mut self, v: &PublishedView) {
        if v.version == self.weights_version || !self.shared.config.strict_priority {
            return;
        }
        self.weights_version = v.version;
        for class in TrafficClass::ALL
            .into_iter()
            .filter(|c| !c.is_interactive())
        {
            let weight = v
                .view
                .class_weight(class as u8)
                .unwrap_or_else(|| self.shared.config.class_weight(class));
            for e in self.egress.iter_mut().flatten() {
                let _ = e
                    .sched
                    .set_quantum(class.band(), steer::egress::class_quantum(weight));
            }
        }
    }

    /// Decides every packet of a burst and queues it on its egress port.
    pub fn process_burst(
        &mut self,
        route: &QueueRoute,
        burst: &mut MbufBurst,
        view: Option<&PublishedView>,
        now_ns: u64,
    ) {
        if let Some(v) = view {
            self.apply_class_weights(v);
        }
        let empty = control::DataplaneView::default();
        let dv = view.map_or(&empty, |v| &v.view);
        let rx_port = usize::from(route.rx_port.0);
        let default_port = usize::from(route.tx_port.0);
        let from_agents = route.rx_port.0 == self.shared.config.agent_port;
        let received = burst.len() as u64;
        let mut fates = [Fate::Drop(DropReason::TxQueueFull); MAX_BURST];
        let mut lengths = [0u32; MAX_BURST];
        let mut decisions = [0u64; Decision::COUNT];
        let packets = burst.as_mut_slice();
        // Pass 1: parse every packet and hash its flow key; pass 2: touch
        // the flow-table lines all those lookups will read, so their cache
        // misses overlap instead of queueing one per packet; pass 3: decide.
        // The worker's own array (taken and put back, no allocation): parse
        // results are written straight into it, not built on the stack and
        // copied, which cost more than the parse itself.
        let mut parsed = std::mem::take(&mut self.parsed);
        let mut keyed: [Option<Keyed>; MAX_BURST] = [None; MAX_BURST];
        for m in packets.iter().take(PREFETCH_AHEAD) {
            m.prefetch_data();
        }
        for (i, (slot, key)) in parsed
            .iter_mut()
            .zip(keyed.iter_mut())
            .enumerate()
            .take(packets.len())
        {
            if let Some(ahead) = packets.get(i + PREFETCH_AHEAD) {
                ahead.prefetch_data();
            }
            let Some(m) = packets.get(i) else { continue };
            *slot = parse(m.data());
            if let Ok(p) = slot {
                *key = self.key_of(p, from_agents);
            }
        }
        let mut warm = 0u32;
        for k in keyed.iter().flatten() {
            warm ^= self.flows.warm(k.hash);
        }
        core::hint::black_box(warm);
        for i in 0..packets.len() {
            let (Some(m), Some(fate), Some(len)) =
                (packets.get_mut(i), fates.get_mut(i), lengths.get_mut(i))
            else {
                continue;
            };
            *len = m.pkt_len();
            // What steering does not handle goes to the default port
            // unchanged: unparsable frames, fragments, and anything not
            // to a service (from the agents) or from an instance (towards
            // them).
            let pass = Fate::Send {
                port: default_port,
                band: OTHER_BAND,
            };
            let (f, d) = match (
                parsed.get(i).and_then(|r| r.as_ref().ok()),
                keyed.get(i).copied().flatten(),
            ) {
                (None, _) => (pass, Some(Decision::Unparsed)),
                (Some(p), _) if p.flow.is_none() || p.is_fragment() => {
                    (pass, Some(Decision::Unparsed))
                }
                (Some(_), None) => (pass, Some(Decision::NoEntry)),
                (Some(p), Some(k)) if from_agents => self.request(m, p, k, dv, now_ns),
                (Some(p), Some(k)) => self.response(m, p, k, now_ns, default_port),
            };
            *fate = f;
            if let Some(d) = d {
                decisions[d as usize] += 1;
            }
        }

        self.parsed = parsed;
        let enqueue_tsc = rdtsc();
        // A port with nothing queued, nothing refused and no shaper is
        // idle: its packets skip the scheduler and go straight to the TX
        // burst, as a Linux qdisc bypasses an empty queue. Order among
        // them cannot matter, since all of them leave now.
        let mut idle = [false; MAX_PORTS];
        for (flag, e) in idle.iter_mut().zip(&self.egress) {
            *flag = e
                .as_ref()
                .is_some_and(|e| e.sched.is_empty() && e.pending.is_empty() && e.shaper.is_none());
        }
        let mut dropped = [0u64; DropReason::COUNT];
        let mut rx_bytes = 0u64;
        let mut i = 0usize;
        let egress = &mut self.egress;
        let counters = self.counters;
        let strict = self.shared.config.strict_priority;
        burst.drain_into(|m| {
            let fate = fates
                .get(i)
                .copied()
                .unwrap_or(Fate::Drop(DropReason::TxQueueFull));
            let len = lengths.get(i).copied().unwrap_or(0);
            i += 1;
            rx_bytes += u64::from(len);
            match fate {
                Fate::Drop(reason) => {
                    dropped[reason as usize] += 1;
                    drop(m);
                }
                Fate::Send { port, band } => {
                    let class = band as u8;
                    let band = steer::egress::scheduler_band(strict, band);
                    match egress.get_mut(port).and_then(|e| e.as_mut()) {
                        Some(e) => {
                            let m = if idle.get(port).copied().unwrap_or(false) {
                                match e.pending.push(m) {
                                    Ok(()) => return,
                                    Err(m) => m,
                                }
                            } else {
                                m
                            };
                            if let Err(rejected) =
                                e.sched.enqueue(band, (m, enqueue_tsc, class), len)
                            {
                                counters.band_drop(port, usize::from(class));
                                dropped[DropReason::SchedQueueFull as usize] += 1;
                                drop(rejected.item);
                            }
                        }
                        None => {
                            dropped[DropReason::TxQueueFull as usize] += 1;
                            drop(m);
                        }
                    }
                }
            }
        });
        if let Some(rx) = self.lcore.ports.get(rx_port) {
            bump(&rx.rx_packets, received);
            bump(&rx.rx_bytes, rx_bytes);
            for (c, n) in rx.drops.iter().zip(dropped) {
                if n > 0 {
                    bump(c, n);
                }
            }
        }
        for (c, n) in self.lcore.decisions.iter().zip(decisions) {
            if n > 0 {
                bump(c, n);
            }
        }
    }

    /// The flow key of a parsed packet, and for a request its service;
    /// `None` for what steering does not handle (fragments, anything but
    /// TCP and UDP, and what is not to a service or from an instance).
    fn key_of(&self, p: &ParsedPacket, from_agents: bool) -> Option<Keyed> {
        let flow = p.flow.filter(|_| !p.is_fragment())?;
        if flow.protocol != IpProtocol::TCP && flow.protocol != IpProtocol::UDP {
            return None;
        }
        let table = &self.shared.table;
        let (key, owner) = if from_agents {
            let service = table.service_for(flow.dst_ip(), flow.dst_port)?;
            let key = ClientKey {
                addr: flow.src_addr,
                port: flow.src_port,
                service_port: flow.dst_port,
                protocol: flow.protocol.0,
            };
            (key, service)
        } else {
            let instance = table.instance_for(flow.src_ip(), flow.src_port)?;
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

    /// A packet from the agents.
    fn request(
        &mut self,
        m: &mut Mbuf,
        p: &ParsedPacket,
        keyed: Keyed,
        view: &control::DataplaneView,
        now_ns: u64,
    ) -> (Fate, Option<Decision>) {
        let Keyed {
            key,
            hash,
            owner: service,
        } = keyed;
        let payload_len = p.payload.len;
        let short_tokens = view.thresholds().short_task_tokens;
        let flags = tcp_flags(p, m.data());
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
        let (shared, counters, limits) = (self.shared, self.counters, &self.infer_limits);
        let mut finished = None;
        let hit = match self.flows.touch_hashed(&key, hash, now_ns) {
            Some(entry) if entry.service == service => {
                entry.closed |= ends;
                if entry.class == TrafficClass::Other && payload_len > 0 {
                    // A TLV-less TCP flow was decided at its SYN; its
                    // first payload tells what it is, for the egress band
                    // and the latency model (the instance is already set:
                    // the connection is established with it).
                    if let Some(f) = infer(shared, counters, limits, p, m.data(), key.service_port)
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
                Some(Ok((entry.instance, entry.path, entry.class.band())))
            }
            Some(_) => Some(Err(())),
            None => None,
        };
        if let Some((e, measured)) = finished {
            self.learn(&e, &measured);
        }
        let (instance, path, band) = match hit {
            Some(Ok(choice)) => choice,
            Some(Err(())) => {
                self.counters.flow(FlowEvent::KeyConflict);
                match self.overflow_choice(service) {
                    Some((i, p)) => (i, p, OTHER_BAND),
                    None => return (Fate::Drop(DropReason::NoInstance), None),
                }
            }
            None => match self.new_flow(p, m.data(), key, service, view, now_ns) {
                Ok(choice) => choice,
                Err(reason) => return (Fate::Drop(reason), None),
            },
        };
        let Some((mac, ip, port)) = self.target(instance, path) else {
            return (Fate::Drop(DropReason::NoInstance), None);
        };
        if rewrite_destination(m.data_mut(), p, mac, ip).is_err() {
            return (Fate::Drop(DropReason::RewriteFailed), None);
        }
        (Fate::Send { port, band }, Some(Decision::Steered))
    }

    /// Features of a new flow, decision, and its table entry.
    fn new_flow(
        &mut self,
        p: &ParsedPacket,
        frame: &[u8],
        key: ClientKey,
        service: u8,
        view: &control::DataplaneView,
        now_ns: u64,
    ) -> Result<(u8, u8, usize), DropReason> {
        let short_tokens = view.thresholds().short_task_tokens;
        let found = features(
            self.shared,
            self.counters,
            &self.infer_limits,
            p,
            frame,
            key.service_port,
        );
        let (features, class) = match found {
            Some(f) => (f, TrafficClass::of(&f, short_tokens)),
            None => (UNKNOWN_FEATURES, TrafficClass::Other),
        };
        let mut rejections = Rejections::default();
        let started = rdtsc();
        let turn = self.turns.get_mut(usize::from(service));
        self.since_report.refresh(&self.shared.table, view, service);
        let decided = Decider {
            table: &self.shared.table,
            view,
            models: &self.models,
            now_ns,
            policy: self.shared.config.policy,
            turn: turn.as_deref().copied().unwrap_or(0),
            unreported: self.since_report.counts(),
        }
        .decide(service, &features, class, &mut rejections);
        if let Some(t) = turn {
            *t = t.wrapping_add(1);
        }
        if let Ok(c) = &decided {
            self.since_report.steered(c.instance);
        }
        let cycles = rdtsc().wrapping_sub(started);
        self.counters
            .decision_ns
            .record((cycles as f64 * self.ns_per_cycle).min(u32::MAX as f64) as u32);
        self.counters.rejections(&rejections);
        let choice = match decided {
            Ok(c) => c,
            Err(no) => {
                self.counters.no_choice(no);
                return Err(DropReason::NoInstance);
            }
        };
        self.counters.reason(choice.reason);
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
                Ok((choice.instance, choice.path, class.band()))
            }
            Err(InsertError::Full | InsertError::Exists) => {
                // Stateless from here on: every packet of the flow takes
                // the same overflow instance, so the connection still
                // works; it is only neither steered nor measured.
                self.counters.flow(FlowEvent::TableFull);
                let (i, path) = self
                    .overflow_choice(service)
                    .ok_or(DropReason::NoInstance)?;
                self.counters.chosen(i, TrafficClass::Other);
                Ok((i, path, OTHER_BAND))
            }
        }
    }

    /// The service's overflow instance and its first path.
    fn overflow_choice(&self, service: u8) -> Option<(u8, u8)> {
        let table = &self.shared.table;
        let s = table.services().get(usize::from(service))?;
        let inst = table.instances().get(usize::from(s.overflow))?;
        Some((s.overflow, *inst.path_indices().first()?))
    }

    /// MAC, address and egress port for an instance over a path.
    fn target(&self, instance: u8, path: u8) -> Option<([u8; 6], std::net::IpAddr, usize)> {
        let table = &self.shared.table;
        let inst = table.instances().get(usize::from(instance))?;
        let path = table.paths().get(usize::from(path))?;
        Some((
            inst.next_hop_mac(path),
            inst.spec.ip,
            usize::from(path.spec.egress_port),
        ))
    }

    /// A packet from the compute side.
    fn response(
        &mut self,
        m: &mut Mbuf,
        p: &ParsedPacket,
        keyed: Keyed,
        now_ns: u64,
        default_port: usize,
    ) -> (Fate, Option<Decision>) {
        let Keyed {
            key,
            hash,
            owner: instance,
        } = keyed;
        let table = &self.shared.table;
        let Some(vip) = table
            .instances()
            .get(usize::from(instance))
            .and_then(|i| table.services().get(usize::from(i.service)))
            .map(|s| s.spec.vip)
        else {
            let pass = Fate::Send {
                port: default_port,
                band: OTHER_BAND,
            };
            return (pass, Some(Decision::NoEntry));
        };
        if rewrite_source(m.data_mut(), p, None, vip).is_err() {
            return (Fate::Drop(DropReason::RewriteFailed), None);
        }
        self.counters.flow(FlowEvent::ResponseTranslated);
        let flags = tcp_flags(p, m.data());
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
                entry.class.band()
            }
            None => {
                self.counters.flow(FlowEvent::ResponseWithoutFlow);
                OTHER_BAND
            }
        };
        if let Some((e, measured)) = finished {
            self.learn(&e, &measured);
        }
        (
            Fate::Send {
                port: default_port,
                band,
            },
            Some(Decision::Steered),
        )
    }

    /// Feeds one measured request to its instance's model and the class
    /// statistics.
    fn learn(&mut self, e: &FlowEntry, measured: &Measured) {
        self.counters.flow(FlowEvent::Measured);
        let obs = steer::feedback::observation(&e.features, &e.predicted, measured);
        if let Some(model) = self.models.get_mut(usize::from(e.instance)) {
            model.observe(&obs);
            if let Some(g) = self.counters.models.get(usize::from(e.instance)) {
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
        }
        if let Some(l) = self.counters.class_latency.get(e.class as usize) {
            let us = |v: f64| v.max(0.0).min(u64::MAX as f64 / 2.0) as u64;
            bump(&l.measured, 1);
            bump(&l.predicted_ttft_us, us(e.predicted.ttft_us));
            bump(&l.observed_ttft_us, us(measured.ttft_us));
            bump(&l.predicted_completion_us, us(e.predicted.completion_us));
            bump(&l.observed_completion_us, us(measured.completion_us));
            bump(
                &l.abs_error_ttft_us,
                us((e.predicted.ttft_us - measured.ttft_us).abs()),
            );
        }
    }

    /// Ages out idle flows (bounded work per call).
    pub fn expire(&mut self, now_ns: u64) {
        let mut finished: [Option<(FlowEntry, Measured)>; EXPIRE_BUDGET] = [None; EXPIRE_BUDGET];
        let mut n = 0usize;
        let mut unanswered = 0u64;
        let removed = self
            .flows
            .expire(now_ns, self.idle_ns, EXPIRE_BUDGET, |_, e| {
                let mut timing = e.timing;
                match timing.on_end() {
                    Some(m) => {
                        if let Some(slot) = finished.get_mut(n) {
                            *slot = Some((*e, m));
                            n += 1;
                        }
                    }
                    None if timing.phase == steer::feedback::Phase::Requesting => unanswered += 1,
                    None => {}
                }
            });
        for _ in 0..removed {
            self.counters.flow(FlowEvent::Expired);
        }
        if unanswered > 0 {
            bump(
                &self.counters.flows[FlowEvent::Unanswered as usize],
                unanswered,
            );
        }
        for (e, m) in finished.iter().take(n).flatten() {
            self.learn(e, m);
        }
    }

    /// Sends what each egress port may send now: its refused packets first,
    /// then its scheduler's order, within its shaper's budget. Returns
    /// whether anything was sent.
    pub fn transmit(&mut self, queue: u16, ignore_shaping: bool) -> bool {
        let mut any = false;
        let now = rdtsc();
        let ns_per_cycle = self.ns_per_cycle;
        for (port, slot) in self.egress.iter_mut().enumerate() {
            let Some(e) = slot.as_mut() else { continue };
            if e.pending.is_empty() && e.sched.is_empty() {
                continue;
            }
            if e.pending.is_empty() {
                if let Some(s) = e.shaper.as_mut() {
                    s.refill(now);
                }
                while e.pending.len() < MAX_BURST {
                    let budget_left =
                        ignore_shaping || e.shaper.as_ref().map_or(true, |s| s.tokens > 0.0);
                    if !budget_left {
                        break;
                    }
                    let Some((_, (m, enqueued, class), len)) = e.sched.dequeue() else {
                        break;
                    };
                    if let Some(s) = e.shaper.as_mut() {
                        s.tokens -= f64::from(len);
                    }
                    let waited_us = now.wrapping_sub(enqueued) as f64 * ns_per_cycle / 1000.0;
                    if let Some(ring) = self.counters.sojourn_us.get(usize::from(class)) {
                        ring.record(waited_us.min(u32::MAX as f64) as u32);
                    }
                    if let Err(m) = e.pending.push(m) {
                        drop(m); // cannot happen: bounded by MAX_BURST above
                    }
                }
            }
            any |= send_pending(&mut e.pending, port, queue, self.lcore);
        }
        any
    }

    /// Packets still queued or pending.
    pub fn backlog(&self) -> usize {
        self.egress
            .iter()
            .flatten()
            .map(|e| e.sched.len() + e.pending.len())
            .sum()
    }

    /// At shutdown: whatever could not be sent is freed and counted as a
    /// drop on the port it entered by, so rx = tx + drops still holds.
    pub fn discard_backlog(&mut self) {
        for e in self.egress.iter_mut().flatten() {
            while let Some((_, (m, _, _), _)) = e.sched.dequeue() {
                count_drop(self.lcore, m, DropReason::ShutdownBacklog);
            }
            e.pending
                .drain_into(|m| count_drop(self.lcore, m, DropReason::ShutdownBacklog));
        }
    }
}

/// A new flow's features: a valid TLV, else inference where configured.
fn features(
    shared: &SteerShared,
    counters: &SteerCounters,
    limits: &InferLimits,
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
            Err(_) => counters.feature(FeatureSource::TlvMalformed),
        },
        TlvLookup::Malformed(_) => counters.feature(FeatureSource::TlvMalformed),
        TlvLookup::Absent => {}
    }
    if p.payload.len == 0 {
        // A TCP SYN: nothing to infer from yet.
        counters.feature(FeatureSource::Unknown);
        return None;
    }
    let inferred = infer(shared, counters, limits, p, frame, service_port);
    if inferred.is_none() {
        counters.feature(FeatureSource::Unknown);
    }
    inferred
}

/// Bounded inference from the first payload, on configured ports.
fn infer(
    shared: &SteerShared,
    counters: &SteerCounters,
    limits: &InferLimits,
    p: &ParsedPacket,
    frame: &[u8],
    service_port: u16,
) -> Option<TokenFeatures> {
    if !shared.config.infer_http_ports.contains(&service_port) {
        return None;
    }
    match infer_http(p.payload(frame), limits) {
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

/// Features assumed for a request nobody described.
const UNKNOWN_FEATURES: TokenFeatures = TokenFeatures {
    prompt_tokens: 0,
    output_tokens: 0,
    task: TaskType::Chat,
    urgency: Urgency::Normal,
    explicit_urgency: false,
};

/// A TCP segment's flags (none for anything else).
fn tcp_flags(p: &ParsedPacket, frame: &[u8]) -> TcpFlags {
    if p.ip_protocol != Some(IpProtocol::TCP) {
        return TcpFlags::default();
    }
    TcpPacket::new_checked(p.l4(frame)).map_or(TcpFlags::default(), |t| t.flags())
}

/// Runs the steering pipeline until `conf.stop` is set.
pub fn run(conf: &WorkerConf, shared: &SteerShared) {
    let counters = &*conf.counters;
    let mut worker = SteerWorker::new(conf, shared);
    let mut burst = MbufBurst::new();
    let mut view_cache = conf
        .control
        .as_ref()
        .map(|c| arc_swap::Cache::new(Arc::clone(c)));
    let mut poll_started = rdtsc();
    let mut poll_was_busy = false;
    let queue = conf.routes.first().map_or(0, |r| r.queue);
    let mut last_expire_ns = 0u64;
    counters.loop_start_tsc.store(poll_started, Relaxed);
    while !conf.stop.load(Relaxed) {
        let now = rdtsc();
        if poll_was_busy {
            bump(&counters.busy_cycles, now.wrapping_sub(poll_started));
        }
        poll_started = now;
        let now_ns = conf.clock.now_ns();
        let mut moved = 0usize;
        for route in &conf.routes {
            let received = burst.rx_burst(route.rx_port, route.queue, conf.burst_size);
            if received == 0 {
                continue;
            }
            moved += received;
            let view = view_cache.as_mut().map(|c| &**c.load());
            worker.process_burst(route, &mut burst, view, now_ns);
        }
        bump(&counters.busy_packets, moved as u64);
        let sent = worker.transmit(queue, false);
        if now_ns.wrapping_sub(last_expire_ns) >= EXPIRE_EVERY_NS {
            last_expire_ns = now_ns;
            worker.expire(now_ns);
        }
        poll_was_busy = moved > 0 || sent;
        if moved == 0 && !sent && !conf.idle_sleep.is_zero() && worker.backlog() == 0 {
            std::thread::sleep(conf.idle_sleep);
        }
    }
    // Drain: keep sending (unshaped) while the ports take packets, then
    // count what is left.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    while worker.backlog() > 0 && std::time::Instant::now() < deadline {
        if !worker.transmit(queue, true) {
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
    }
    worker.discard_backlog();
    let end = rdtsc();
    if poll_was_busy {
        bump(&counters.busy_cycles, end.wrapping_sub(poll_started));
    }
    counters.loop_end_tsc.store(end, Relaxed);
}
