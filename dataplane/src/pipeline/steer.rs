//! The `steer` pipeline: token-aware steering of agents' LLM requests, on
//! any number of worker lcores.
//!
//! Per burst, on each worker:
//!
//! ```text
//! flow walk ──► flow key ──► owned by another worker? ──yes──► its handoff ring
//! (other shapes:                  │no
//!  full parse)                      ▼
//!    steer::Engine: request (decide or follow the flow, DNAT)
//!                   response (SNAT back to the VIP, time the answer)
//!                   fragment (the first decides, the others follow;
//!                             one ahead of its first is held here)
//!                   neither (the pair's peer, unchanged)
//!                              ▼
//!    egress port: own TX queue (idle port), own scheduler (busy port),
//!                 or the port's one scheduler on its owner (shaped port)
//! ```
//!
//! A TCP/UDP packet is located by [`flow_walk::walk`] and, unless the
//! engine declines it (what delayed binding takes), decided by
//! [`Engine::handle_walked`] without a full parse; anything else is
//! parsed and goes to [`Engine::handle`].
//!
//! All decisions are [`steer::Engine`]'s; this module applies its verdicts
//! to mbufs. A flow belongs to the worker its client address hashes to
//! ([`steer::Engine::owner`]), so a request, its NATed response and every
//! fragment of either meet the same engine whichever queue each arrived
//! on. A fragment the engine holds (it came before its datagram's first)
//! waits here, in the slot the engine named, until the engine hands it
//! back released or timed out.
//!
//! Egress: the interactive class is a strict band served first, the bulk
//! classes share by DRR ([`sched::Scheduler`]). An unshaped port is served
//! by each worker on its own TX queue, queueing only what the TX ring
//! refuses. A shaped port (`[[steer.egress]] rate_mbps`) is a link slower
//! than the workers, where queues build; it has exactly one scheduler, on
//! its owner worker, which the other workers feed through a bounded ring
//! (DPDK's `qos_sched` design), so priority and DRR shares hold across all
//! workers. The ports are [`super::port::Ports`], as the tensor
//! pipeline's are, with the steering bands as their discipline
//! ([`SteerQueue`]). Allocation happens once, in [`SteerPipeline::new`]; per packet
//! there is none, and nothing panics.

use std::sync::Arc;

use classifier::ethernet::EthernetError;
use classifier::flow_walk;
use classifier::{parse, FlowPacket, ParseError, ParsedPacket};
use predictor::InstanceModel;
use sched::Scheduler;
use steer::engine::{Engine, EngineConfig, Refusal, Steerable, Verdict, OTHER_BAND};
use steer::fragment::{FragmentLimits, Treatment, Unhold};
use steer::infer::InferLimits;
use steer::splice::SpliceLimits;
use steer::stats::SteerCounters;
use steer::{ServiceTable, TrafficClass};

use super::egress::{count_drop, Shaper};
use super::port::{waited_us, Discipline, Ports, SharedPort};
use super::{Arrival, Handoff, Pipeline, QueueRoute, Tick, WorkerConf};
use crate::control_plane::PublishedView;
use crate::dpdk::{prefetch, rdtsc, Mbuf, MbufBurst, Mempool, MAX_BURST};
use crate::stats::{bump, Decision, DropReason, LcoreCounters};
use crate::steer_config::SteerConfig;

/// What every steering worker shares (read-only, but for the rings) with
/// the runtime.
pub struct SteerShared {
    pub config: SteerConfig,
    pub table: Arc<ServiceTable>,
    /// One counter block per worker, in worker order.
    pub counters: Vec<Arc<SteerCounters>>,
    pub tsc_hz: u64,
    /// Each instance's latency model as configured; every engine learns on
    /// its own copy.
    pub models: Vec<InstanceModel>,
    /// Per port: the shaped port's single scheduler, its owner worker and
    /// the ring that feeds it (`None` for unshaped ports). An item's meta
    /// is its traffic class.
    pub shaped: Vec<Option<SharedPort<u8>>>,
    /// Keys the flow tables' hash, so agents cannot choose colliding flows.
    pub seed: u64,
    /// The RSS key the ports hash client addresses with: every engine
    /// computes a flow's owner under it ([`EngineConfig::rss_key`]).
    pub rss_key: [u8; flowtab::rss::RSS_KEY_LEN],
    /// The packet pool the segments the engine builds (delayed binding's
    /// SYN-ACKs, ACKs, SYNs and replays) are allocated from.
    pub pool: Option<Arc<Mempool>>,
}

impl SteerShared {
    pub fn new(
        config: &SteerConfig,
        workers: usize,
        ports: usize,
        tsc_hz: u64,
        seed: u64,
        rss_key: [u8; flowtab::rss::RSS_KEY_LEN],
    ) -> Result<SteerShared, String> {
        let table = config.build().map_err(|e| e.to_string())?;
        let models = steer::feedback::instance_models(&table, config.queue_wait_us_per_request)
            .map_err(|e| format!("steer: {e}"))?;
        let counters = (0..workers.max(1))
            .map(|_| Arc::new(SteerCounters::new(table.instances().len(), ports)))
            .collect();
        let bands = TrafficClass::COUNT * config.band_limit_packets as usize;
        let shaped = (0..ports)
            .map(|p| {
                config
                    .egress
                    .iter()
                    .any(|e| usize::from(e.port) == p)
                    .then(|| SharedPort::new(p, workers, bands))
            })
            .collect();
        Ok(SteerShared {
            config: config.clone(),
            table: Arc::new(table),
            counters,
            tsc_hz,
            models,
            shaped,
            seed,
            rss_key,
            pool: None,
        })
    }

    /// Gives the workers the pool to build segments in.
    pub fn with_pool(mut self, pool: Arc<Mempool>) -> SteerShared {
        self.pool = Some(pool);
        self
    }

    /// Frees and counts what is left in the shaped ports' rings, once every
    /// worker has stopped.
    pub fn discard_feeds(&self, lcore: &LcoreCounters) {
        for port in self.shaped.iter().flatten() {
            port.discard(lcore);
        }
    }

    /// Instance names in table order.
    pub fn instance_names(&self) -> Vec<String> {
        self.table
            .instances()
            .iter()
            .map(|i| i.spec.name.clone())
            .collect()
    }
}

/// A steering port's queue on one worker: the interactive class a strict
/// band, the bulk classes sharing by DRR (one FIFO band when strict
/// priority is off). An item is the packet, its enqueue TSC and its class.
struct SteerQueue {
    sched: Scheduler<(Mbuf, u64, u8)>,
    strict_priority: bool,
}

impl Discipline for SteerQueue {
    /// The packet's traffic class.
    type Meta = u8;
    type Counters = SteerCounters;

    fn enqueue(
        &mut self,
        port: usize,
        m: Mbuf,
        class: u8,
        len: u32,
        tsc: u64,
        c: &SteerCounters,
    ) -> Result<(), (Mbuf, DropReason)> {
        let band = steer::egress::scheduler_band(self.strict_priority, usize::from(class));
        self.sched
            .enqueue(band, (m, tsc, class), len)
            .map_err(|rejected| {
                c.band_drop(port, usize::from(class));
                (rejected.item.0, DropReason::SchedQueueFull)
            })
    }

    /// An idle port's packet waited for nothing: no sojourn is recorded.
    fn bypassed(&self, _port: usize, _class: &u8, _len: u32, _c: &SteerCounters) {}

    fn feed_refused(port: usize, class: &u8, c: &SteerCounters) {
        c.band_drop(port, usize::from(*class));
    }

    fn dequeue(
        &mut self,
        _port: usize,
        now_tsc: u64,
        ns_per_cycle: f64,
        c: &SteerCounters,
    ) -> Option<(Mbuf, u32)> {
        let (_, (m, enqueued, class), len) = self.sched.dequeue()?;
        if let Some(ring) = c.sojourn_us.get(usize::from(class)) {
            ring.record(waited_us(now_tsc, enqueued, ns_per_cycle));
        }
        Some((m, len))
    }

    fn discard(&mut self) -> Option<Mbuf> {
        self.sched.dequeue().map(|(_, (m, _, _), _)| m)
    }

    fn len(&self) -> usize {
        self.sched.len()
    }
}

/// A packet's fate after the engine.
#[derive(Clone, Copy)]
enum Fate {
    Send {
        port: usize,
        band: u8,
    },
    HandOff(usize),
    /// Kept in this slot of [`SteerPipeline::held`].
    Hold(u32),
    Drop(DropReason),
}

/// The drop reason of an engine's refusal.
fn drop_reason(r: Refusal) -> DropReason {
    match r {
        Refusal::NoInstance => DropReason::NoInstance,
        Refusal::RewriteFailed => DropReason::RewriteFailed,
        Refusal::FragmentTableFull => DropReason::FragmentTableFull,
        Refusal::FragmentHoldFull => DropReason::FragmentHoldFull,
        Refusal::SpliceRefused => DropReason::SpliceRefused,
    }
}

/// A packet's fate and the decision it counts as, from the engine's verdict.
#[inline(always)]
fn fate_of(verdict: Verdict, default_port: usize) -> (Fate, Option<Decision>) {
    match verdict {
        Verdict::Pass => (
            Fate::Send {
                port: default_port,
                band: OTHER_BAND,
            },
            Some(Decision::NoEntry),
        ),
        Verdict::Send { port, band } => (
            Fate::Send {
                port: port.map_or(default_port, usize::from),
                band,
            },
            Some(Decision::Steered),
        ),
        // Counted as decided when it is released.
        Verdict::Hold { slot } => (Fate::Hold(slot), None),
        Verdict::Drop(r) => (Fate::Drop(drop_reason(r)), None),
        // Taken by the appliance: accounted as a drop of its own reason,
        // so rx = tx + drops holds.
        Verdict::Consumed => (Fate::Drop(DropReason::SpliceConsumed), None),
    }
}

/// The steering pipeline of one worker.
pub struct SteerPipeline<'a> {
    conf: &'a WorkerConf,
    shared: &'a SteerShared,
    engine: Engine,
    counters: Arc<SteerCounters>,
    ports: Ports<'a, SteerQueue>,
    /// Control view version whose class weights the schedulers use.
    weights_version: u64,
    /// Parse results of the burst in hand, written in place (taken and put
    /// back each burst, never reallocated): for the packets the flow walk
    /// did not locate.
    parsed: Vec<Result<ParsedPacket, ParseError>>,
    /// The flow walk's results of the burst in hand ([`flow_walk::walk`]),
    /// kept the same way: `Some` for a located TCP/UDP packet.
    walked: Vec<Option<FlowPacket>>,
    /// Each packet's flow key, from its walk or parse, kept the same way
    /// (an array of them on the stack was zeroed every burst, for a
    /// pass that writes every packet's anyway).
    keyed: Vec<Option<Steerable>>,
    /// Fragments the engine holds until their first fragment comes, by
    /// the slot it named (one per [`Engine::hold_slots`]).
    held: Vec<Option<Mbuf>>,
    /// What the engine decides by without a control plane: no reports,
    /// the configured priors (built once, not per burst).
    no_view: control::DataplaneView,
}

impl<'a> SteerPipeline<'a> {
    pub fn new(conf: &'a WorkerConf, shared: &'a SteerShared) -> SteerPipeline<'a> {
        let cfg = &shared.config;
        let me = conf.handoff.me;
        let counters = shared
            .counters
            .get(me)
            .or_else(|| shared.counters.first())
            .map_or_else(|| Arc::new(SteerCounters::new(0, 0)), Arc::clone);
        let ports = Ports::new(
            &conf.started_ports,
            &shared.shaped,
            me,
            shared.tsc_hz,
            |_| {
                let bands = steer::egress::band_config(
                    cfg.strict_priority,
                    |c| cfg.class_weight(c),
                    cfg.band_limit_packets,
                );
                Some(SteerQueue {
                    sched: Scheduler::new(&bands).ok()?,
                    strict_priority: cfg.strict_priority,
                })
            },
            |p| {
                cfg.egress
                    .iter()
                    .find(|e| usize::from(e.port) == p)
                    .map(|e| Shaper::new(e.rate_mbps, shared.tsc_hz))
            },
        );
        let engine = Engine::new(
            Arc::clone(&shared.table),
            EngineConfig {
                policy: cfg.policy,
                infer_http_ports: cfg.infer_http_ports.clone(),
                infer_limits: InferLimits {
                    max_scan_bytes: cfg.infer_max_scan_bytes,
                },
                // The configured size is the appliance's: each worker
                // owns an even share of the flows, so holds that share.
                flow_table_size: cfg.flow_table_size.div_ceil(conf.handoff.workers()),
                flow_idle_ns: cfg.flow_idle_timeout_ms.saturating_mul(1_000_000),
                seed: shared.seed,
                rss_key: shared.rss_key,
                fragments: FragmentLimits::default(),
                // Like the flows: each worker records the prefixes of the
                // clients it owns.
                prefixes: steer::PrefixLimits {
                    capacity: cfg.prefix_record_size.div_ceil(conf.handoff.workers()),
                    ttl_ns: cfg.prefix_ttl_ms.saturating_mul(1_000_000),
                    balance_queue: cfg.prefix_balance_queue,
                },
                // The configured bounds are the appliance's: each worker
                // holds an even share, like the flow table.
                splice: cfg.splice_tlv_less.then(|| SpliceLimits {
                    connections: cfg.splice_connections.div_ceil(conf.handoff.workers()),
                    request_max_bytes: cfg.splice_request_max_bytes,
                    buffer_bytes: cfg.splice_buffer_bytes.div_ceil(conf.handoff.workers()),
                    request_timeout_ns: cfg.splice_request_timeout_ms.saturating_mul(1_000_000),
                    retransmit_ns: cfg.splice_retransmit_ms.saturating_mul(1_000_000),
                    retransmit_tries: cfg.splice_retransmit_tries,
                    idle_ns: cfg.flow_idle_timeout_ms.saturating_mul(1_000_000),
                }),
            },
            shared.models.clone(),
            Arc::clone(&counters),
        )
        .with_cost_clock((rdtsc, 1e9 / shared.tsc_hz.max(1) as f64));
        let held = (0..engine.hold_slots()).map(|_| None).collect();
        SteerPipeline {
            conf,
            shared,
            held,
            engine,
            counters,
            ports,
            weights_version: u64::MAX,
            parsed: vec![
                Err(ParseError::Ethernet(EthernetError::Truncated {
                    available: 0
                }));
                MAX_BURST
            ],
            walked: vec![None; MAX_BURST],
            keyed: vec![None; MAX_BURST],
            no_view: control::DataplaneView::default(),
        }
    }

    fn lcore(&self) -> &'a LcoreCounters {
        &self.conf.counters
    }

    /// Sends or drops the held fragments the engine hands back: released
    /// by their first fragment's decision, or timed out.
    fn take_unheld(&mut self) {
        while let Some(u) = self.engine.next_unheld() {
            let Some(m) = self.held.get_mut(u.slot as usize).and_then(Option::take) else {
                continue;
            };
            match u.fate {
                Unhold::TimedOut => count_drop(self.lcore(), m, DropReason::FragmentTimeout),
                Unhold::Released(t) => self.send_released(m, t),
            }
        }
    }

    /// A released fragment: rewritten as its first fragment decided, and
    /// queued like any packet of its ingress port (whose receive counted
    /// it when it was held).
    fn send_released(&mut self, mut m: Mbuf, t: Treatment) {
        let lcore = self.lcore();
        let rx = m.rx_port();
        let default_port = self
            .conf
            .routes
            .iter()
            .find(|r| r.rx_port == rx)
            .map(|r| usize::from(r.tx_port.0));
        let verdict = match parse(m.data()) {
            Ok(p) => self.engine.apply(m.data_mut(), &p, t),
            // It parsed when it was held, and nothing changed it since.
            Err(_) => Verdict::Drop(Refusal::RewriteFailed),
        };
        let (port, band, decision) = match verdict {
            Verdict::Send { port, band } => (
                port.map(usize::from).or(default_port),
                band,
                Decision::Steered,
            ),
            Verdict::Pass => (default_port, OTHER_BAND, Decision::NoEntry),
            Verdict::Drop(r) => return count_drop(lcore, m, drop_reason(r)),
            // `apply` never holds nor consumes.
            Verdict::Hold { .. } | Verdict::Consumed => {
                return count_drop(lcore, m, DropReason::FragmentHoldFull)
            }
        };
        let Some(port) = port else {
            return count_drop(lcore, m, DropReason::TxQueueFull);
        };
        if let Some(c) = lcore.decisions.get(decision as usize) {
            bump(c, 1);
        }
        if let Err(reason) = self.ports.enqueue(port, m, band, &self.counters) {
            if let Some(p) = lcore.ports.get(usize::from(rx.0)) {
                bump(&p.drops[reason as usize], 1);
            }
        }
    }

    /// Sends the segments the engine built (delayed binding): each
    /// written straight into a fresh mbuf, queued like a forwarded packet
    /// of its port and band, and counted as generated on that port, so
    /// that rx + generated = tx + drops. Towards the agents they leave by
    /// the agent port; `agent_side` is the port that faces them from
    /// the instances' side (the ingress pair's peer is not it).
    fn send_built(&mut self, _agent_side: usize) {
        let Some(pool) = self.shared.pool.as_deref() else {
            return;
        };
        let agent_port = usize::from(self.shared.config.agent_port);
        while self.engine.transmit_pending() {
            let Ok(mut m) = Mbuf::alloc(pool) else {
                // No mbuf now: the segments stay queued in the engine
                // until the next burst or housekeeping.
                return;
            };
            let Some(room) = m.extend(BUILT_FRAME_ROOM) else {
                return;
            };
            let Some(t) = self.engine.poll_transmit(room) else {
                return;
            };
            m.truncate(t.len);
            let port = t.port.map_or(agent_port, usize::from);
            let lcore = self.lcore();
            if let Some(p) = lcore.ports.get(port) {
                bump(&p.generated_packets, 1);
            }
            if let Err(reason) = self.ports.enqueue(port, m, t.band, &self.counters) {
                if let Some(p) = self.lcore().ports.get(port) {
                    bump(&p.drops[reason as usize], 1);
                }
            }
        }
    }

    fn handoff(&self) -> &'a Handoff {
        &self.conf.handoff
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
            for q in self.ports.disciplines_mut() {
                let _ = q
                    .sched
                    .set_quantum(class.band(), steer::egress::class_quantum(weight));
            }
        }
    }
}

impl Pipeline for SteerPipeline<'_> {
    fn process(
        &mut self,
        route: &QueueRoute,
        burst: &mut MbufBurst,
        tick: &Tick<'_>,
        arrival: Arrival,
    ) {
        if let Some(v) = tick.view {
            self.apply_class_weights(v);
        }
        let now_ns = tick.now_ns;
        let dv = tick.view.map_or(&self.no_view, |v| &v.view);
        let rx_port = usize::from(route.rx_port.0);
        let default_port = usize::from(route.tx_port.0);
        let from_agents = route.rx_port.0 == self.shared.config.agent_port;
        let handoff = self.handoff();
        let workers = handoff.workers();
        let me = handoff.me;
        let received = burst.len() as u64;
        let mut lengths = [0u32; MAX_BURST];
        let mut decisions = [0u64; Decision::COUNT];
        let packets = burst.as_mut_slice();
        // Pass 1: locate every packet's headers: the flow walk for the
        // TCP/UDP packets it covers (no `ParsedPacket` built), the full
        // parse for the rest. Pass 2: key each packet's flow, and prefetch
        // the flow-table slot of each flow this worker owns. Pass 3, as
        // the burst gives its mbufs up: prefetch the entry of the flow
        // `ENTRY_AHEAD` packets on, then decide this packet (on the walk's
        // fast path where the flow decides alone) and queue it. A burst's
        // table misses so overlap instead of queueing one per packet
        // (DPDK's `rte_hash_lookup_bulk` stages); and a walk's result is
        // read back a whole burst after it was written, by when its stores
        // have left the store buffer (read at once, its address bytes,
        // written in pieces, stalled every load that spans them). Results
        // are written straight into the worker's own arrays (taken and put
        // back, no allocation).
        let mut parsed = std::mem::take(&mut self.parsed);
        let mut walked = std::mem::take(&mut self.walked);
        // Past the burst's end, `keyed` holds an earlier burst's keys.
        let mut keyed = std::mem::take(&mut self.keyed);
        // The worker a packet is handed to (`NOT_HANDED`: this one's, or
        // nobody's), known from its key in pass 2, so that only this
        // worker's table lines are prefetched.
        let mut hand_to = [NOT_HANDED; MAX_BURST];
        for m in packets.iter().take(PREFETCH_AHEAD) {
            m.prefetch_data();
        }
        for (i, ((slot, w), len)) in parsed
            .iter_mut()
            .zip(walked.iter_mut())
            .zip(lengths.iter_mut())
            .enumerate()
            .take(packets.len())
        {
            if let Some(ahead) = packets.get(i + PREFETCH_AHEAD) {
                ahead.prefetch_data();
            }
            let Some(m) = packets.get(i) else { continue };
            // Read while the mbuf's header is in the cache for `data`.
            *len = m.pkt_len();
            let nic_verified = route.nic_checks_ipv4 && m.rx_ip_checksum_good();
            flow_walk::walk_into(m.data(), nic_verified, w);
            if w.is_none() {
                *slot = parse(m.data());
            }
        }
        for (((slot, w), key), to) in parsed
            .iter()
            .zip(walked.iter())
            .zip(keyed.iter_mut())
            .zip(hand_to.iter_mut())
            .take(packets.len())
        {
            *key = match w {
                Some(w) => self
                    .engine
                    .key_of_walked(w, from_agents)
                    .map(Steerable::Flow),
                None => slot
                    .as_ref()
                    .ok()
                    .and_then(|p| self.engine.key_of(p, from_agents)),
            };
            let Some(k) = key.as_ref() else { continue };
            if workers > 1 {
                let owner = Engine::owner(self.engine.worker_hash(k), workers);
                if owner != me {
                    *to = owner;
                    continue;
                }
            }
            self.engine.prefetch_slot(k, prefetch);
        }
        // Stage two for the first packets now (their slots were prefetched
        // early in pass 2); for the rest, `ENTRY_AHEAD` packets before
        // each is decided, so that every slot has arrived when it is read.
        let prefetch_entry = |engine: &Engine, i: usize| {
            if i as u64 >= received {
                return;
            }
            if let (Some(Some(k)), Some(&NOT_HANDED)) = (keyed.get(i), hand_to.get(i)) {
                engine.prefetch_state(k, from_agents, prefetch);
            }
        };
        for i in 0..ENTRY_AHEAD {
            prefetch_entry(&self.engine, i);
        }
        // What steering does not handle goes to the default port
        // unchanged: unparsable frames, and anything not to a service
        // (from the agents) or from an instance (towards them), or a
        // fragment of neither a VIP's nor an instance's datagram.
        let pass = Fate::Send {
            port: default_port,
            band: OTHER_BAND,
        };
        let mut dropped = [0u64; DropReason::COUNT];
        let mut rx_bytes = 0u64;
        let lcore = self.lcore();
        // Pass 3: each packet decided and, at once, queued, handed over,
        // held or dropped, as the burst gives its mbufs up in order.
        for (at, mut m) in burst.drain().enumerate() {
            prefetch_entry(&self.engine, at + ENTRY_AHEAD);
            let len = lengths.get(at).copied().unwrap_or(0);
            rx_bytes += u64::from(len);
            let (w, k) = (
                walked.get(at).and_then(Option::as_ref),
                keyed.get(at).and_then(Option::as_ref),
            );
            let fate = match hand_to.get(at) {
                Some(&to) if to != NOT_HANDED => Fate::HandOff(to),
                _ => {
                    let fast = match (w, k) {
                        (Some(w), Some(Steerable::Flow(kf))) => {
                            self.engine
                                .handle_walked(m.data_mut(), w, kf, from_agents, dv, now_ns)
                        }
                        _ => None,
                    };
                    let (f, d) = match (fast, w, k) {
                        (Some(verdict), _, _) => fate_of(verdict, default_port),
                        // Walked, but not steering's.
                        (None, Some(_), None) => (pass, Some(Decision::NoEntry)),
                        (None, walked, k) => {
                            // The full path: parsed in pass 1, or now for a
                            // walked packet the fast path declined (the walk
                            // and the parse agree on what they both locate).
                            let mut slot = parsed.get_mut(at);
                            if let (Some(_), Some(slot)) = (walked, slot.as_deref_mut()) {
                                *slot = parse(m.data());
                            }
                            match (slot.and_then(|s| s.as_ref().ok()), k) {
                                (None, _) => (pass, Some(Decision::Unparsed)),
                                (Some(p), _) if p.flow.is_none() => {
                                    (pass, Some(Decision::Unparsed))
                                }
                                (Some(_), None) => (pass, Some(Decision::NoEntry)),
                                (Some(p), Some(k)) => fate_of(
                                    self.engine.handle(
                                        m.data_mut(),
                                        p,
                                        *k,
                                        from_agents,
                                        dv,
                                        now_ns,
                                    ),
                                    default_port,
                                ),
                            }
                        }
                    };
                    if let Some(d) = d {
                        decisions[d as usize] += 1;
                    }
                    f
                }
            };
            let refused = match fate {
                Fate::Drop(reason) => {
                    drop(m);
                    Some(reason)
                }
                Fate::HandOff(owner) => {
                    handoff.send(owner, m, lcore);
                    None
                }
                Fate::Hold(slot) => match self.held.get_mut(slot as usize) {
                    Some(free @ None) => {
                        *free = Some(m);
                        None
                    }
                    // The engine names only free slots.
                    _ => {
                        drop(m);
                        Some(DropReason::FragmentHoldFull)
                    }
                },
                Fate::Send { port, band } => {
                    self.ports.enqueue(port, m, band, &self.counters).err()
                }
            };
            if let Some(reason) = refused {
                dropped[reason as usize] += 1;
            }
        }
        self.walked = walked;
        self.parsed = parsed;
        self.keyed = keyed;
        if let Some(rx) = lcore.ports.get(rx_port) {
            if arrival == Arrival::Wire {
                bump(&rx.rx_packets, received);
                bump(&rx.rx_bytes, rx_bytes);
            }
            for (c, n) in rx.drops.iter().zip(dropped) {
                if n > 0 {
                    bump(c, n);
                }
            }
        }
        for (c, n) in lcore.decisions.iter().zip(decisions) {
            if n > 0 {
                bump(c, n);
            }
        }
        self.take_unheld();
        self.send_built(default_port);
    }

    fn transmit(&mut self, ignore_shaping: bool) -> bool {
        self.ports.transmit(
            self.conf.queue(),
            ignore_shaping,
            &self.conf.counters,
            &self.counters,
        )
    }

    fn housekeeping(&mut self, now_ns: u64) {
        self.engine.expire(now_ns);
        self.take_unheld();
        self.send_built(0);
    }

    fn backlog(&self) -> usize {
        self.ports.backlog()
    }

    /// Whatever could not be sent is freed and counted as a drop on the
    /// port it entered by, so rx = tx + drops still holds. Fragments still
    /// held for a first fragment that never came are not backlog (no
    /// drain would send them); they are counted here.
    fn finish(&mut self) {
        let lcore = self.lcore();
        for m in self.held.iter_mut().filter_map(Option::take) {
            count_drop(lcore, m, DropReason::ShutdownBacklog);
        }
        self.ports.finish(lcore, &self.counters);
    }
}

/// Bytes of the mbuf handed to the engine for one built frame: Ethernet,
/// IPv4, TCP with options, and a 1460-byte segment, within the 2048-byte
/// data room of the pool's mbufs.
const BUILT_FRAME_ROOM: u16 = 14 + 20 + 60 + 1460;

/// How many packets ahead to prefetch.
const PREFETCH_AHEAD: usize = 3;

/// How many packets ahead of its decision a flow's table entry is
/// prefetched (stage two): about a DRAM latency of deciding.
const ENTRY_AHEAD: usize = 8;

/// A packet this worker keeps (see `hand_to` in [`SteerPipeline::process`]).
const NOT_HANDED: usize = usize::MAX;

/// Runs the steering pipeline until `conf.stop` is set.
pub fn run(conf: &WorkerConf, shared: &SteerShared) {
    let mut pipeline = SteerPipeline::new(conf, shared);
    super::run(conf, &mut pipeline);
}
