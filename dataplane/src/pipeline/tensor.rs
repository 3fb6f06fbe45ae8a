//! The `tensor` pipeline: tensor-aware scheduling of RoCEv2 traffic (the
//! in-network scheduling draft, §3.1–§3.4), on any number of worker lcores.
//!
//! ```text
//! host port ──► parse ──► RoCEv2 QP? ──no──► pair's peer, best effort
//!                            │yes
//!                            ▼
//!        owned by another worker? ──yes──► its handoff ring
//!                            │no
//!                            ▼
//!        tensor::engine::Engine::host: ICRC, QP state, semantics, class,
//!        plan and slice, TTL/ECN rewrite, metadata ──► Verdict
//!                            ▼
//!        prepend + write the Geneve header (overlay) ──► egress port
//!
//! overlay port ──► addressed to the overlay? ──no──► pair's peer
//!        ──► Engine::classify_network: outer checks (a failure is a drop,
//!            counted by its code), inner QP ──► owner? ──no──► handoff
//!        ──► verify MAC ──► strip the outer headers ──► Engine::accept_overlay
//!            (reorder by stream sequence) ──► host port
//!
//! every egress port: tensor::egress::PortQueue — strict bands
//!   SMALL (slow) > SMALL (fast) > DRAINING, then WDRR per QP weighted by
//!   the target's compute power; a shaped port has one, on its owner
//!   worker, fed by the others (pipeline::port)
//! ```
//!
//! Every decision is the engine's; this module applies its verdicts to
//! mbufs. A QP belongs to the worker its key hashes to
//! ([`tensor::engine::owner`]): on the host side the RoCEv2 flow key, on
//! the decapsulating side the inner frame's, which is the same key, so
//! every packet of a QP and every slice of its messages meet one engine.
//! Allocation happens in [`TensorWorker::new`]; per packet there is none,
//! and nothing panics.

use std::sync::Arc;

use arc_swap::ArcSwap;
use classifier::ethernet::EthernetError;
use classifier::{parse, ParseError, ParsedPacket, RocePacket};
use crossbeam_queue::ArrayQueue;
use tensor::egress::{PortQueue, QueueMeta};
use tensor::engine::{
    Delivery, Engine, EngineConfig, NetworkClass, Node, NodeWeights, Qp, Refusal, Verdict,
};
use tensor::metadata::{MetadataKey, MetadataKeys};
use tensor::stats::{PredictorCounters, TensorCounters};
use tensor::{FeatureRecord, Predictions};

use super::egress::Shaper;
use super::port::{waited_us, Discipline, Ports, SharedPort};
use super::{Arrival, Handoff, Pipeline, QueueRoute, Tick, WorkerConf};
use crate::control_plane::PublishedView;
use crate::dpdk::{prefetch, Mbuf, MbufBurst, MAX_BURST};
use crate::stats::{bump, DropReason, LcoreCounters};
use crate::tensor_config::{TensorConfig, TensorPath};

pub use tensor::engine::derive_metadata_key;

/// What every tensor worker shares with the runtime and the predictor.
pub struct TensorShared {
    pub config: TensorConfig,
    /// The engines' configuration (tables sized for the whole appliance).
    pub engine: EngineConfig,
    /// Learnt compute capabilities, shared by every engine.
    pub weights: NodeWeights,
    pub paths: Vec<TensorPath>,
    /// One counter block per worker, in worker order.
    pub counters: Vec<Arc<TensorCounters>>,
    /// The predictor thread's own counters.
    pub predictor: Arc<PredictorCounters>,
    /// The feature FIFOs to the predictor core, one per worker.
    pub fifos: Vec<Arc<ArrayQueue<FeatureRecord>>>,
    /// The predictor core's latest snapshot.
    pub predictions: Arc<ArcSwap<Predictions>>,
    /// Per port: the shaped port's single scheduler (`None` unshaped).
    pub shaped: Vec<Option<SharedPort<QueueMeta>>>,
    pub tsc_hz: u64,
}

impl TensorShared {
    /// Frees and counts what is left in the shaped ports' rings, once every
    /// worker has stopped.
    pub fn discard_feeds(&self, lcore: &LcoreCounters) {
        for port in self.shaped.iter().flatten() {
            port.discard(lcore);
        }
    }
}

/// How often a worker looks at its paths' and nodes' reports again when no
/// new view came: a report's age is checked against `max_state_age` (1 s
/// by default) to this precision.
const VIEW_RECHECK_NS: u64 = 1_000_000;

/// How many packets ahead to prefetch.
const PREFETCH_AHEAD: usize = 3;

/// A tensor port queue holding mbufs, counting into a worker's block.
struct TensorQueue(PortQueue<Mbuf>);

impl Discipline for TensorQueue {
    type Meta = QueueMeta;
    type Counters = TensorCounters;

    fn enqueue(
        &mut self,
        port: usize,
        m: Mbuf,
        meta: QueueMeta,
        len: u32,
        tsc: u64,
        c: &TensorCounters,
    ) -> Result<(), (Mbuf, DropReason)> {
        match self.0.enqueue(m, meta, len, tsc) {
            Ok(class) => {
                c.queued(port, class);
                Ok(())
            }
            Err(full) => {
                c.queued(port, full.class);
                Err((full.item, DropReason::SchedQueueFull))
            }
        }
    }

    fn bypassed(&self, port: usize, meta: &QueueMeta, len: u32, c: &TensorCounters) {
        c.queued(port, meta.class);
        c.sent(port, meta.class, len);
    }

    /// Counted as queued, as a packet a full band refuses is.
    fn feed_refused(port: usize, meta: &QueueMeta, c: &TensorCounters) {
        c.queued(port, meta.class);
    }

    fn dequeue(
        &mut self,
        port: usize,
        now_tsc: u64,
        ns_per_cycle: f64,
        c: &TensorCounters,
    ) -> Option<(Mbuf, u32)> {
        let d = self.0.dequeue()?;
        if let Some(ring) = c.sojourn_us.get(d.class as usize) {
            ring.record(waited_us(now_tsc, d.queued_at, ns_per_cycle));
        }
        c.sent(port, d.class, d.len);
        Some((d.item, d.len))
    }

    fn discard(&mut self) -> Option<Mbuf> {
        self.0.dequeue().map(|d| d.item)
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

/// What to do with one packet of a burst, decided in the first pass.
#[derive(Clone, Copy)]
enum Seen {
    /// Host side: its QP, if RoCEv2 (the packet itself in `roce`).
    Host(Option<Qp>),
    /// Network side.
    Network(NetworkClass),
    /// Did not parse.
    Unparsed,
}

/// The tensor pipeline of one worker.
pub struct TensorWorker<'a> {
    shared: &'a TensorShared,
    lcore: &'a LcoreCounters,
    handoff: &'a Handoff,
    counters: Arc<TensorCounters>,
    engine: Engine<Mbuf>,
    ports: Ports<'a, TensorQueue>,
    fifo: Arc<ArrayQueue<FeatureRecord>>,
    /// The predictor's latest snapshot, reloaded only when it changed.
    predictions: arc_swap::Cache<Arc<ArcSwap<Predictions>>, Arc<Predictions>>,
    /// Parse results of the burst in hand (network side), written in
    /// place (taken and put back each burst, never reallocated).
    parsed: Vec<Result<ParsedPacket, ParseError>>,
    /// The RoCEv2 packets of the burst in hand (host side), likewise.
    roce: Vec<Option<RocePacket>>,
    /// This worker's TX queue on every port.
    queue: u16,
    /// The control-plane view the overlay paths and nodes were last
    /// observed in, and when (`Engine::observe_view`).
    view_seen: (u64, u64),
}

impl<'a> TensorWorker<'a> {
    pub fn new(conf: &'a WorkerConf, shared: &'a TensorShared) -> TensorWorker<'a> {
        let cfg = &shared.config;
        let me = conf.handoff.me;
        let workers = conf.handoff.workers();
        let counters = shared
            .counters
            .get(me)
            .or_else(|| shared.counters.first())
            .map_or_else(|| Arc::new(TensorCounters::new(0, 0)), Arc::clone);
        // The configured sizes are the appliance's: each worker owns an
        // even share of the QPs, so holds that share.
        let mut engine_cfg = shared.engine.clone();
        engine_cfg.qp_table_size = engine_cfg.qp_table_size.div_ceil(workers);
        engine_cfg.reorder_streams = engine_cfg.reorder_streams.div_ceil(workers);
        let engine = Engine::new(engine_cfg, shared.weights.clone(), Arc::clone(&counters));
        let band_limit = cfg.band_limit_packets;
        let max_flows = cfg.qp_table_size;
        let ports = Ports::new(
            &conf.started_ports,
            &shared.shaped,
            me,
            shared.tsc_hz,
            |_| PortQueue::new(band_limit, max_flows).ok().map(TensorQueue),
            |p| {
                cfg.rate_mbps(p as u16)
                    .map(|r| Shaper::new(r, shared.tsc_hz))
            },
        );
        let fifo = shared
            .fifos
            .get(me)
            .or_else(|| shared.fifos.first())
            .map_or_else(|| Arc::new(ArrayQueue::new(1)), Arc::clone);
        TensorWorker {
            shared,
            lcore: &conf.counters,
            handoff: &conf.handoff,
            counters,
            engine,
            ports,
            fifo,
            predictions: arc_swap::Cache::new(Arc::clone(&shared.predictions)),
            parsed: vec![
                Err(ParseError::Ethernet(EthernetError::Truncated {
                    available: 0
                }));
                MAX_BURST
            ],
            roce: vec![None; MAX_BURST],
            queue: conf.queue(),
            view_seen: (0, 0),
        }
    }

    /// Takes the control plane's path and node reports into the engine
    /// when the view changed, and at least every [`VIEW_RECHECK_NS`]
    /// (a report goes stale with no new view).
    fn observe_view(&mut self, v: &PublishedView, now_ns: u64) {
        let (version, at_ns) = self.view_seen;
        if v.version != version || now_ns.saturating_sub(at_ns) >= VIEW_RECHECK_NS {
            self.engine.observe_view(&v.view, now_ns);
            self.view_seen = (v.version, now_ns);
        }
    }

    /// Handles every packet of a burst: classifies, hands off what another
    /// worker owns, rewrites, encapsulates or decapsulates, and queues it
    /// on its egress port.
    pub fn process_burst(
        &mut self,
        route: &QueueRoute,
        burst: &mut MbufBurst,
        now_ns: u64,
        arrival: Arrival,
    ) {
        let rx_port = usize::from(route.rx_port.0);
        let from_hosts = route.rx_port.0 == self.shared.config.host_port;
        let default_port = route.tx_port.0;
        let host_port = self.engine.host_port();
        let received = burst.len() as u64;
        let predictions = **self.predictions.load();
        let workers = self.handoff.workers();
        let me = self.handoff.me;
        // Pass 1: parse every packet (prefetching ahead), find its QP, and
        // warm the QP table lines the lookups will read, so their misses
        // overlap.
        let mut parsed = std::mem::take(&mut self.parsed);
        let mut roce = std::mem::take(&mut self.roce);
        let mut seen = [Seen::Unparsed; MAX_BURST];
        // Each packet's owner worker (this one for what has no QP).
        let mut owners = [me; MAX_BURST];
        {
            let packets = burst.as_slice();
            for m in packets.iter().take(PREFETCH_AHEAD) {
                m.prefetch_data();
            }
            for (i, ((slot, r), s)) in parsed
                .iter_mut()
                .zip(roce.iter_mut())
                .zip(seen.iter_mut())
                .enumerate()
                .take(packets.len())
            {
                if let Some(ahead) = packets.get(i + PREFETCH_AHEAD) {
                    ahead.prefetch_data();
                }
                let Some(m) = packets.get(i) else { continue };
                *s = if from_hosts {
                    // The RoCEv2 walk; a frame it does not cover gets the
                    // full parse, which decides. Either way a packet
                    // without a QP goes best effort, like an unparsed one.
                    let nic_verified = route.nic_checks_ipv4 && m.rx_ip_checksum_good();
                    *r = classifier::roce::walk_received(m.data(), nic_verified).or_else(|| {
                        parse(m.data())
                            .ok()
                            .as_ref()
                            .and_then(RocePacket::from_parsed)
                    });
                    Seen::Host(r.as_ref().map(|r| self.engine.qp_of_roce(r)))
                } else {
                    *slot = parse(m.data());
                    let p = slot.as_ref().ok();
                    Seen::Network(self.engine.classify_network(m.data(), p))
                };
            }
            if workers > 1 {
                for (s, o) in seen.iter().zip(owners.iter_mut()).take(packets.len()) {
                    match s {
                        Seen::Host(Some(qp)) => *o = self.engine.owner_of(qp, workers),
                        Seen::Network(NetworkClass::Overlay(ov)) => {
                            *o = self.engine.owner_of(&ov.qp, workers)
                        }
                        _ => {}
                    }
                }
            }
            // Only this worker's QPs: another worker's are handed over
            // without a lookup here, and fetching their lines in this
            // worker's table would only cost misses. Every slot first,
            // then every entry, so that a burst's misses overlap.
            let ours = || {
                seen.iter()
                    .zip(&owners)
                    .take(packets.len())
                    .filter_map(|(s, &o)| match s {
                        Seen::Host(Some(qp)) if o == me => Some(qp.hash),
                        _ => None,
                    })
            };
            for hash in ours() {
                self.engine.prefetch_slot(hash, prefetch);
            }
            for hash in ours() {
                self.engine.prefetch_state(hash, prefetch);
            }
        }
        // Pass 2: decide and queue, in arrival order.
        let mut dropped = [0u64; DropReason::COUNT];
        let mut rx_bytes = 0u64;
        let mut i = 0usize;
        let engine = &mut self.engine;
        let ports = &mut self.ports;
        let counters = &*self.counters;
        let lcore = self.lcore;
        let handoff = self.handoff;
        burst.drain_into(|mut m| {
            let s = seen.get(i).copied().unwrap_or(Seen::Unparsed);
            let to = owners.get(i).copied().unwrap_or(me);
            let r = roce.get(i).and_then(Option::as_ref);
            i += 1;
            rx_bytes += u64::from(m.pkt_len());
            let outcome = match s {
                Seen::Unparsed | Seen::Network(NetworkClass::Pass) => ports.enqueue(
                    usize::from(default_port),
                    m,
                    QueueMeta::BEST_EFFORT,
                    counters,
                ),
                Seen::Host(Some(_)) | Seen::Network(NetworkClass::Overlay(_)) if to != me => {
                    handoff.send(to, m, lcore);
                    Ok(())
                }
                Seen::Host(qp) => match (qp, r) {
                    // Not RoCEv2 (or, cannot happen, a QP without its
                    // packet): best effort on the default route.
                    (None, _) | (_, None) => ports.enqueue(
                        usize::from(default_port),
                        m,
                        QueueMeta::BEST_EFFORT,
                        counters,
                    ),
                    (Some(qp), Some(r)) => {
                        let depth = |port: u16| ports.depth(usize::from(port));
                        let verdict = engine.host_roce(
                            m.data_mut(),
                            r,
                            qp,
                            rx_port as u16,
                            default_port,
                            now_ns,
                            &predictions,
                            &depth,
                        );
                        match verdict {
                            Verdict::Drop(r) => Err(drop_reason(r)),
                            Verdict::Send(send) => {
                                let encapsulated = match send.encap {
                                    None => Ok(()),
                                    Some(e) => encapsulate(engine, &mut m, &e),
                                };
                                match encapsulated {
                                    Ok(()) => ports.enqueue(
                                        usize::from(send.port),
                                        m,
                                        send.queue,
                                        counters,
                                    ),
                                    Err(r) => Err(drop_reason(r)),
                                }
                            }
                        }
                    }
                },
                Seen::Network(NetworkClass::Drop(r)) => Err(drop_reason(r)),
                Seen::Network(NetworkClass::Overlay(o)) => {
                    let verified = engine.verify_overlay(m.data(), &o);
                    let stripped = u16::try_from(o.header_len).ok().is_some_and(|h| m.adj(h));
                    if stripped {
                        let inner_len = m.pkt_len();
                        let mut deliver =
                            |d: Delivery<Mbuf>| deliver_to(ports, host_port, d, counters, lcore);
                        engine
                            .accept_overlay(
                                &o,
                                &verified,
                                m,
                                inner_len,
                                rx_port as u16,
                                now_ns,
                                &mut deliver,
                            )
                            .map_err(|(m, r)| {
                                drop(m);
                                drop_reason(r)
                            })
                    } else {
                        Err(DropReason::OverlayMalformed)
                    }
                }
            };
            if let Err(reason) = outcome {
                if let Some(d) = dropped.get_mut(reason as usize) {
                    *d += 1;
                }
            }
        });
        self.parsed = parsed;
        self.roce = roce;
        let fifo = &self.fifo;
        self.engine.drain_features(now_ns, |r| fifo.push(r).is_ok());
        if let Some(rx) = self.lcore.ports.get(rx_port) {
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
    }

    /// Every delivery the engine releases goes to the host port.
    fn with_deliveries(
        &mut self,
        f: impl FnOnce(&mut Engine<Mbuf>, &mut dyn FnMut(Delivery<Mbuf>)),
    ) {
        let host_port = self.engine.host_port();
        let ports = &mut self.ports;
        let counters = &*self.counters;
        let lcore = self.lcore;
        let mut deliver = |d: Delivery<Mbuf>| deliver_to(ports, host_port, d, counters, lcore);
        f(&mut self.engine, &mut deliver);
    }
}

/// Prepends and writes a packet's overlay header.
fn encapsulate(
    engine: &Engine<Mbuf>,
    m: &mut Mbuf,
    e: &tensor::engine::Encap,
) -> Result<(), Refusal> {
    let inner_len = m.pkt_len() as usize;
    let hlen = u16::try_from(e.header_len()).map_err(|_| Refusal::EncapNoRoom)?;
    let Some(hdr) = m.prepend(hlen) else {
        return Err(Refusal::EncapNoRoom);
    };
    engine.write_encap(hdr, inner_len, e).inspect_err(|_| {
        let _ = m.adj(hlen);
    })
}

/// Queues a decapsulated packet on the host port. It may come out of the
/// reorder buffer long after its burst, so a refusal is counted here, on
/// the port it entered by.
fn deliver_to(
    ports: &mut Ports<'_, TensorQueue>,
    host_port: u16,
    d: Delivery<Mbuf>,
    counters: &TensorCounters,
    lcore: &LcoreCounters,
) {
    let rx_port = usize::from(d.item.rx_port().0);
    if let Err(reason) = ports.enqueue(usize::from(host_port), d.item, d.queue, counters) {
        if let Some(rx) = lcore.ports.get(rx_port) {
            bump(&rx.drops[reason as usize], 1);
        }
    }
}

fn drop_reason(r: Refusal) -> DropReason {
    match r {
        Refusal::IcrcBad => DropReason::IcrcBad,
        Refusal::IcrcUnreadable => DropReason::IcrcUnreadable,
        Refusal::TtlExpired => DropReason::TtlExpired,
        Refusal::NoPath => DropReason::NoPath,
        Refusal::EncapNoRoom => DropReason::EncapNoRoom,
        Refusal::OverlayMalformed => DropReason::OverlayMalformed,
        Refusal::InnerUnparsable => DropReason::InnerUnparsable,
        Refusal::ReorderLate => DropReason::ReorderLate,
        Refusal::ReorderDuplicate => DropReason::ReorderDuplicate,
        Refusal::ReorderNoStream => DropReason::ReorderNoStream,
    }
}

impl Pipeline for TensorWorker<'_> {
    fn process(
        &mut self,
        route: &QueueRoute,
        burst: &mut MbufBurst,
        tick: &Tick<'_>,
        arrival: Arrival,
    ) {
        if let Some(v) = tick.view {
            self.observe_view(v, tick.now_ns);
        }
        self.process_burst(route, burst, tick.now_ns, arrival);
    }

    fn transmit(&mut self, ignore_shaping: bool) -> bool {
        self.ports
            .transmit(self.queue, ignore_shaping, self.lcore, &self.counters)
    }

    /// Ages out idle QPs, gives up on reorder gaps that waited too long,
    /// and hands the predictor the records of a feature window that ended
    /// with no packet after it.
    fn housekeeping(&mut self, now_ns: u64) {
        self.with_deliveries(|engine, mut out| engine.housekeeping(now_ns, &mut out));
        let fifo = &self.fifo;
        self.engine.drain_features(now_ns, |r| fifo.push(r).is_ok());
    }

    /// Packets still queued, pending or held for reordering.
    fn backlog(&self) -> usize {
        self.ports.backlog() + self.engine.held()
    }

    /// Whatever the reorder buffer holds is delivered in order (its gaps
    /// will not be filled any more), then drained with the rest.
    fn stopping(&mut self) {
        self.with_deliveries(|engine, mut out| engine.flush(&mut out));
        let fifo = &self.fifo;
        self.engine.flush_features(|r| fifo.push(r).is_ok());
    }

    fn finish(&mut self) {
        self.ports.finish(self.lcore, &self.counters);
    }
}

/// Runs the tensor pipeline until `conf.stop` is set.
pub fn run(conf: &WorkerConf, shared: &TensorShared) {
    let mut worker = TensorWorker::new(conf, shared);
    super::run(conf, &mut worker);
}

/// Builds what the tensor workers and the predictor thread share, checking
/// everything that can fail (key file, thresholds, predictor) before EAL
/// launches anything. `seed` keys the QP tables' hash; `rss_key` is the
/// host port's RSS key, which places QPs on workers.
pub fn build_shared(
    cfg: &TensorConfig,
    nb_ports: usize,
    workers: usize,
    seed: u64,
    rss_key: [u8; flowtab::rss::RSS_KEY_LEN],
) -> anyhow::Result<(TensorShared, tensor::predict::PredictorConfig)> {
    let thresholds = cfg.thresholds()?;
    let paths = cfg.paths()?;
    let local_mac = cfg.local_mac()?;
    let (signing_key, keys) = match &cfg.key_file {
        Some(f) => {
            let control_key =
                control::key::Key::from_file(f).map_err(|e| anyhow::anyhow!("[tensor]: {e}"))?;
            let k: MetadataKey = derive_metadata_key(&control_key, cfg.key_id);
            let mut keys = MetadataKeys::new();
            keys.insert(k.clone())
                .map_err(|e| anyhow::anyhow!("[tensor]: metadata key: {e}"))?;
            (Some(k), keys)
        }
        None => (None, MetadataKeys::new()),
    };
    let predictor = crate::predictor_core::predictor_config(cfg, &paths)?;
    let workers = workers.max(1);
    let nodes: Vec<Node> = cfg
        .nodes
        .iter()
        .map(|n| Node {
            id: n.id,
            ip: n.ip,
            weight: n.weight,
            local: n.local,
        })
        .collect();
    let engine = EngineConfig {
        thresholds,
        host_port: cfg.host_port,
        paths: paths.clone(),
        nodes: nodes.clone(),
        validate_icrc: cfg.validate_icrc,
        icrc_check_every: cfg.icrc_check_every,
        decrement_ttl: cfg.decrement_ttl,
        ecn_mark_packets: cfg.ecn_mark_packets,
        small_rate_split_bps: cfg.small_rate_split_mbps * 1e6,
        min_slice_bytes: cfg.min_slice_bytes,
        offload_reducer: cfg.offload_reducer,
        local_ip: cfg.local_ip,
        local_mac,
        vni: cfg.vni,
        signing_key,
        keys,
        qp_table_size: cfg.qp_table_size,
        reorder_streams: cfg.reorder_streams,
        reorder_window: cfg.reorder_window,
        reorder_timeout_ns: cfg.reorder_timeout_us.saturating_mul(1000),
        seed,
        rss_key,
        feature_window_ns: predictor.bin_ns,
    };
    // A shaped port's ring holds what its scheduler can: its three strict
    // bands and the WDRR stage.
    let ring = 4 * cfg.band_limit_packets as usize;
    let shaped = (0..nb_ports)
        .map(|p| {
            cfg.rate_mbps(p as u16)
                .map(|_| SharedPort::new(p, workers, ring))
        })
        .collect();
    let shared = TensorShared {
        config: cfg.clone(),
        engine,
        weights: NodeWeights::new(&nodes),
        counters: (0..workers)
            .map(|_| Arc::new(TensorCounters::new(paths.len(), nb_ports)))
            .collect(),
        predictor: Arc::new(PredictorCounters::default()),
        fifos: (0..workers)
            .map(|_| Arc::new(ArrayQueue::new(cfg.feature_fifo_size)))
            .collect(),
        predictions: Arc::new(ArcSwap::from_pointee(Predictions::default())),
        shaped,
        tsc_hz: crate::dpdk::tsc_hz(),
        paths,
    };
    Ok((shared, predictor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_its_drop_reason() {
        for (r, d) in [
            (Refusal::IcrcBad, DropReason::IcrcBad),
            (Refusal::OverlayMalformed, DropReason::OverlayMalformed),
            (Refusal::ReorderLate, DropReason::ReorderLate),
        ] {
            assert_eq!(drop_reason(r), d);
        }
    }
}
